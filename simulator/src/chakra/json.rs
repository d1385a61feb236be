//! JSON forms of a Chakra ET.
//!
//! * **Document form** (what `strata et convert X.et X.json` writes): one JSON
//!   document `{"format": "chakra-et-json", "version": 1, "metadata": {..} | null,
//!   "nodes": [..]}` whose messages use the proto3 JSON mapping (lowerCamelCase keys,
//!   enum names, `{"name": "comm_size", "int64Val": 1048576}` attributes). It keeps
//!   everything the binary form keeps (which oneof member an attribute uses, a present
//!   but empty `inputs`, unknown enum values as numbers), so converting it back gives
//!   the original `.et` bytes. 64-bit integers are written as plain JSON numbers;
//!   strings are accepted too. An attribute may have no value key (symbolic_tensor_graph
//!   writes `inputs` and `outputs` so), except one Chakra defines with a value
//!   (`comm_size`, `comm_type`, `is_cpu_op`, ...): reading that is an error naming the node.
//! * **jsonizer form** (`chakra_jsonizer`): `MessageToJson(metadata)` followed by
//!   `MessageToJson(node)` for every node, concatenated, so the file as a whole is not
//!   one JSON value. Read only.
//! * **Feeder form**: `{"workload_graph": [{"Id", "Name", "NodeType", "runtime",
//!   "data_deps", "ctrl_deps"/"ctrlDeps", "is_cpu_op", "comm_type", ...}], ...}` as
//!   read by Chakra's JSON feeder. Read only; attributes become the kinds Chakra's
//!   binary tools write.

use std::path::Path;

use base64::Engine as _;
use serde_json::{json, Map, Value};

use super::attr::canonical_kind;
use super::codec::EtTrace;
use super::error::{ChakraError, Result};
use super::schema::*;

/// The `format` tag of the document form.
pub const DOCUMENT_FORMAT: &str = "chakra-et-json";

/// Which JSON form a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JsonForm {
    /// Strata's single-document form.
    Document,
    /// Concatenated proto3-JSON messages from `chakra_jsonizer`.
    Jsonizer,
    /// The feeder's `workload_graph` form.
    Feeder,
    /// A PyTorch host execution trace (see [`super::convert::pytorch`]).
    PytorchHost,
}

/// Reads the JSON values of a file: one, or several concatenated (jsonizer output).
pub fn read_values(path: &Path) -> Result<Vec<Value>> {
    if path.is_dir() {
        return Err(ChakraError::IsDirectory { path: path.to_path_buf() });
    }
    let bytes = std::fs::read(path).map_err(|e| ChakraError::io(path, "cannot open", e))?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ChakraError::Empty { path: path.to_path_buf() });
    }
    let mut values = Vec::new();
    for v in serde_json::Deserializer::from_slice(&bytes).into_iter::<Value>() {
        let v = v.map_err(|e| {
            ChakraError::format(path, format!("line {} column {}", e.line(), e.column()), format!("invalid JSON: {e}"))
        })?;
        values.push(v);
    }
    Ok(values)
}

/// Tells which form a file's JSON values are in.
pub fn detect_form(values: &[Value]) -> Option<JsonForm> {
    let first = values.first()?.as_object()?;
    if values.len() == 1 {
        if first.get("format").and_then(Value::as_str) == Some(DOCUMENT_FORMAT) {
            return Some(JsonForm::Document);
        }
        if first.contains_key("workload_graph") {
            return Some(JsonForm::Feeder);
        }
        if first.contains_key("schema") && first.get("nodes").is_some_and(Value::is_array) {
            return Some(JsonForm::PytorchHost);
        }
    }
    // A jsonizer stream starts with the metadata message (or a node, for legacy input).
    let keys_ok = |o: &Map<String, Value>| {
        o.keys().all(|k| NODE_KEYS.contains(&k.as_str()) || METADATA_KEYS.contains(&k.as_str()))
    };
    values.iter().all(|v| v.as_object().is_some_and(keys_ok)).then_some(JsonForm::Jsonizer)
}

const NODE_KEYS: &[&str] = &[
    "id",
    "name",
    "type",
    "ctrlDeps",
    "ctrl_deps",
    "dataDeps",
    "data_deps",
    "startTimeMicros",
    "start_time_micros",
    "durationMicros",
    "duration_micros",
    "inputs",
    "outputs",
    "attr",
];
const METADATA_KEYS: &[&str] = &["version", "attr"];

/// Reads any of the JSON forms except the PyTorch host trace into a trace.
pub fn read_json_trace(path: impl AsRef<Path>) -> Result<EtTrace> {
    let path = path.as_ref();
    let values = read_values(path)?;
    match detect_form(&values) {
        Some(JsonForm::Document) => document_to_trace(&values[0], path),
        Some(JsonForm::Jsonizer) => jsonizer_to_trace(&values, path),
        Some(JsonForm::Feeder) => feeder_to_trace(&values[0], path),
        Some(JsonForm::PytorchHost) => Err(ChakraError::format(
            path,
            "top level",
            "this is a PyTorch host execution trace; convert it with `strata et convert` (chakra::convert::pytorch)",
        )),
        None => Err(ChakraError::format(
            path,
            "top level",
            format!(
                "not a Chakra ET in JSON: expected a {{\"format\": \"{DOCUMENT_FORMAT}\", ...}} document, \
                 chakra_jsonizer output, or a feeder {{\"workload_graph\": [...]}} file"
            ),
        )),
    }
}

/// Renders a trace in the document form (pretty-printed, trailing newline).
pub fn trace_to_json_string(trace: &EtTrace) -> String {
    let doc = json!({
        "format": DOCUMENT_FORMAT,
        "version": 1,
        "metadata": trace.metadata.as_ref().map(metadata_to_json),
        "nodes": trace.nodes.iter().map(node_to_json).collect::<Vec<_>>(),
    });
    let mut s = serde_json::to_string_pretty(&doc).expect("a Value always serializes");
    s.push('\n');
    s
}

/// Writes a trace in the document form, atomically.
pub fn write_json_trace(path: impl AsRef<Path>, trace: &EtTrace) -> Result<()> {
    stage_json_trace(path, trace)?.commit()
}

/// Writes what [`write_json_trace`] writes, staged: it appears at `path` on
/// [`StagedFile::commit`](crate::util::StagedFile::commit).
pub fn stage_json_trace(path: impl AsRef<Path>, trace: &EtTrace) -> Result<crate::util::StagedFile> {
    let text = trace_to_json_string(trace);
    crate::util::stage_file(path.as_ref(), |w| w.write_all(text.as_bytes()))
}

// ---------------------------------------------------------------- to JSON

/// The proto3 JSON mapping of a GlobalMetadata.
pub fn metadata_to_json(meta: &GlobalMetadata) -> Value {
    let mut o = Map::new();
    if !meta.version.is_empty() {
        o.insert("version".into(), meta.version.clone().into());
    }
    if !meta.attr.is_empty() {
        o.insert("attr".into(), meta.attr.iter().map(attr_to_json).collect());
    }
    Value::Object(o)
}

/// The proto3 JSON mapping of a Node (id, name and type always present).
pub fn node_to_json(node: &Node) -> Value {
    let mut o = Map::new();
    o.insert("id".into(), node.id.into());
    o.insert("name".into(), node.name.clone().into());
    o.insert(
        "type".into(),
        match node.node_type() {
            Some(t) => t.proto_name().into(),
            None => node.r#type.into(),
        },
    );
    if !node.ctrl_deps.is_empty() {
        o.insert("ctrlDeps".into(), node.ctrl_deps.clone().into());
    }
    if !node.data_deps.is_empty() {
        o.insert("dataDeps".into(), node.data_deps.clone().into());
    }
    if node.start_time_micros != 0 {
        o.insert("startTimeMicros".into(), node.start_time_micros.into());
    }
    if node.duration_micros != 0 {
        o.insert("durationMicros".into(), node.duration_micros.into());
    }
    for (key, io) in [("inputs", &node.inputs), ("outputs", &node.outputs)] {
        if let Some(io) = io {
            let mut m = Map::new();
            for (k, v) in [("values", &io.values), ("shapes", &io.shapes), ("types", &io.types)] {
                if !v.is_empty() {
                    m.insert(k.into(), v.clone().into());
                }
            }
            o.insert(key.into(), Value::Object(m));
        }
    }
    if !node.attr.is_empty() {
        o.insert("attr".into(), node.attr.iter().map(attr_to_json).collect());
    }
    Value::Object(o)
}

fn double_json(v: f64) -> Value {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        // serde_json turns non-finite values into null; finite ones print exactly.
        Value::from(v)
    }
}

fn b64(bytes: &[u8]) -> Value {
    base64::engine::general_purpose::STANDARD.encode(bytes).into()
}

fn list<T: Clone>(values: &[T], f: impl Fn(T) -> Value) -> Value {
    json!({ "values": values.iter().cloned().map(f).collect::<Vec<_>>() })
}

fn attr_to_json(a: &AttributeProto) -> Value {
    use AttrValue as V;
    let mut o = Map::new();
    o.insert("name".into(), a.name.clone().into());
    if !a.doc_string.is_empty() {
        o.insert("docString".into(), a.doc_string.clone().into());
    }
    if let Some(v) = &a.value {
        let (key, val) = match v {
            V::DoubleVal(x) => ("doubleVal", double_json(*x)),
            V::DoubleList(l) => ("doubleList", list(&l.values, double_json)),
            V::FloatVal(x) => ("floatVal", double_json(*x as f64)),
            V::FloatList(l) => ("floatList", list(&l.values, |x| double_json(x as f64))),
            V::Int32Val(x) => ("int32Val", (*x).into()),
            V::Int32List(l) => ("int32List", list(&l.values, Value::from)),
            V::Int64Val(x) => ("int64Val", (*x).into()),
            V::Int64List(l) => ("int64List", list(&l.values, Value::from)),
            V::Uint32Val(x) => ("uint32Val", (*x).into()),
            V::Uint32List(l) => ("uint32List", list(&l.values, Value::from)),
            V::Uint64Val(x) => ("uint64Val", (*x).into()),
            V::Uint64List(l) => ("uint64List", list(&l.values, Value::from)),
            V::Sint32Val(x) => ("sint32Val", (*x).into()),
            V::Sint32List(l) => ("sint32List", list(&l.values, Value::from)),
            V::Sint64Val(x) => ("sint64Val", (*x).into()),
            V::Sint64List(l) => ("sint64List", list(&l.values, Value::from)),
            V::Fixed32Val(x) => ("fixed32Val", (*x).into()),
            V::Fixed32List(l) => ("fixed32List", list(&l.values, Value::from)),
            V::Fixed64Val(x) => ("fixed64Val", (*x).into()),
            V::Fixed64List(l) => ("fixed64List", list(&l.values, Value::from)),
            V::Sfixed32Val(x) => ("sfixed32Val", (*x).into()),
            V::Sfixed32List(l) => ("sfixed32List", list(&l.values, Value::from)),
            V::Sfixed64Val(x) => ("sfixed64Val", (*x).into()),
            V::Sfixed64List(l) => ("sfixed64List", list(&l.values, Value::from)),
            V::BoolVal(x) => ("boolVal", (*x).into()),
            V::BoolList(l) => ("boolList", list(&l.values, Value::from)),
            V::StringVal(x) => ("stringVal", x.clone().into()),
            V::StringList(l) => ("stringList", list(&l.values, Value::from)),
            V::BytesVal(x) => ("bytesVal", b64(x)),
            V::BytesList(l) => ("bytesList", json!({ "values": l.values.iter().map(|b| b64(b)).collect::<Vec<_>>() })),
        };
        o.insert(key.into(), val);
    }
    Value::Object(o)
}

// ---------------------------------------------------------------- from JSON

/// Context for parsing one JSON message: the file and a JSON path for errors.
struct Ctx<'a> {
    path: &'a Path,
    at: String,
}

impl Ctx<'_> {
    fn err(&self, what: impl Into<String>) -> ChakraError {
        ChakraError::format(self.path, self.at.clone(), what)
    }
    fn sub(&self, key: &str) -> Ctx<'_> {
        Ctx { path: self.path, at: format!("{}.{key}", self.at) }
    }
}

/// Looks up a key by its lowerCamelCase or snake_case name.
fn field<'v>(o: &'v Map<String, Value>, camel: &str, snake: &str) -> Option<&'v Value> {
    o.get(camel).or_else(|| o.get(snake))
}

fn as_u64(v: &Value, cx: &Ctx) -> Result<u64> {
    match v {
        Value::Number(n) => n.as_u64().ok_or_else(|| cx.err(format!("expected an unsigned integer, got {n}"))),
        Value::String(s) => s.parse().map_err(|_| cx.err(format!("expected an unsigned integer, got \"{s}\""))),
        other => Err(cx.err(format!("expected an unsigned integer, got {}", kind(other)))),
    }
}

fn as_i64(v: &Value, cx: &Ctx) -> Result<i64> {
    match v {
        Value::Number(n) => n.as_i64().ok_or_else(|| cx.err(format!("expected an integer, got {n}"))),
        Value::String(s) => s.parse().map_err(|_| cx.err(format!("expected an integer, got \"{s}\""))),
        other => Err(cx.err(format!("expected an integer, got {}", kind(other)))),
    }
}

fn as_i32(v: &Value, cx: &Ctx) -> Result<i32> {
    let x = as_i64(v, cx)?;
    i32::try_from(x).map_err(|_| cx.err(format!("expected a 32-bit integer, got {x}")))
}

fn as_u32(v: &Value, cx: &Ctx) -> Result<u32> {
    let x = as_u64(v, cx)?;
    u32::try_from(x).map_err(|_| cx.err(format!("expected a 32-bit unsigned integer, got {x}")))
}

fn as_f64(v: &Value, cx: &Ctx) -> Result<f64> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| cx.err("expected a number")),
        Value::String(s) => match s.as_str() {
            "NaN" => Ok(f64::NAN),
            "Infinity" => Ok(f64::INFINITY),
            "-Infinity" => Ok(f64::NEG_INFINITY),
            _ => s.parse().map_err(|_| cx.err(format!("expected a number, got \"{s}\""))),
        },
        other => Err(cx.err(format!("expected a number, got {}", kind(other)))),
    }
}

fn as_bool(v: &Value, cx: &Ctx) -> Result<bool> {
    v.as_bool().ok_or_else(|| cx.err(format!("expected true or false, got {}", kind(v))))
}

fn as_string(v: &Value, cx: &Ctx) -> Result<String> {
    v.as_str().map(str::to_owned).ok_or_else(|| cx.err(format!("expected a string, got {}", kind(v))))
}

fn as_bytes(v: &Value, cx: &Ctx) -> Result<Vec<u8>> {
    let s = v.as_str().ok_or_else(|| cx.err(format!("expected base64 text, got {}", kind(v))))?;
    base64::engine::general_purpose::STANDARD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::URL_SAFE.decode(s))
        .map_err(|e| cx.err(format!("expected base64 text: {e}")))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A JSON value as written (`99`, `"1"`, `null`), shortened past 40 characters.
fn shown(v: &Value) -> String {
    let text = v.to_string();
    match text.char_indices().nth(40) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

fn as_object<'v>(v: &'v Value, cx: &Ctx) -> Result<&'v Map<String, Value>> {
    v.as_object().ok_or_else(|| cx.err(format!("expected an object, got {}", kind(v))))
}

fn array_of<T>(v: &Value, cx: &Ctx, f: impl Fn(&Value, &Ctx) -> Result<T>) -> Result<Vec<T>> {
    let arr = v.as_array().ok_or_else(|| cx.err(format!("expected an array, got {}", kind(v))))?;
    arr.iter().enumerate().map(|(i, x)| f(x, &Ctx { path: cx.path, at: format!("{}[{i}]", cx.at) })).collect()
}

fn list_values<T>(v: &Value, cx: &Ctx, f: impl Fn(&Value, &Ctx) -> Result<T>) -> Result<Vec<T>> {
    let o = as_object(v, cx)?;
    match o.get("values") {
        None => Ok(Vec::new()),
        Some(vals) => array_of(vals, &cx.sub("values"), f),
    }
}

fn reject_unknown(o: &Map<String, Value>, known: &[&str], cx: &Ctx) -> Result<()> {
    match o.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(cx.err(format!("unknown key `{k}`; expected one of {}", known.join(", ")))),
        None => Ok(()),
    }
}

fn attr_from_json(v: &Value, cx: &Ctx) -> Result<AttributeProto> {
    use AttrValue as V;
    let o = as_object(v, cx)?;
    let mut attr = AttributeProto::default();
    for (key, val) in o {
        let c = cx.sub(key);
        let value = match key.as_str() {
            "name" => {
                attr.name = as_string(val, &c)?;
                continue;
            }
            "docString" | "doc_string" => {
                attr.doc_string = as_string(val, &c)?;
                continue;
            }
            "doubleVal" | "double_val" => V::DoubleVal(as_f64(val, &c)?),
            "doubleList" | "double_list" => V::DoubleList(DoubleList { values: list_values(val, &c, as_f64)? }),
            "floatVal" | "float_val" => V::FloatVal(as_f64(val, &c)? as f32),
            "floatList" | "float_list" => {
                V::FloatList(FloatList { values: list_values(val, &c, |x, c| Ok(as_f64(x, c)? as f32))? })
            }
            "int32Val" | "int32_val" => V::Int32Val(as_i32(val, &c)?),
            "int32List" | "int32_list" => V::Int32List(Int32List { values: list_values(val, &c, as_i32)? }),
            "int64Val" | "int64_val" => V::Int64Val(as_i64(val, &c)?),
            "int64List" | "int64_list" => V::Int64List(Int64List { values: list_values(val, &c, as_i64)? }),
            "uint32Val" | "uint32_val" => V::Uint32Val(as_u32(val, &c)?),
            "uint32List" | "uint32_list" => V::Uint32List(Uint32List { values: list_values(val, &c, as_u32)? }),
            "uint64Val" | "uint64_val" => V::Uint64Val(as_u64(val, &c)?),
            "uint64List" | "uint64_list" => V::Uint64List(Uint64List { values: list_values(val, &c, as_u64)? }),
            "sint32Val" | "sint32_val" => V::Sint32Val(as_i32(val, &c)?),
            "sint32List" | "sint32_list" => V::Sint32List(Sint32List { values: list_values(val, &c, as_i32)? }),
            "sint64Val" | "sint64_val" => V::Sint64Val(as_i64(val, &c)?),
            "sint64List" | "sint64_list" => V::Sint64List(Sint64List { values: list_values(val, &c, as_i64)? }),
            "fixed32Val" | "fixed32_val" => V::Fixed32Val(as_u32(val, &c)?),
            "fixed32List" | "fixed32_list" => V::Fixed32List(Fixed32List { values: list_values(val, &c, as_u32)? }),
            "fixed64Val" | "fixed64_val" => V::Fixed64Val(as_u64(val, &c)?),
            "fixed64List" | "fixed64_list" => V::Fixed64List(Fixed64List { values: list_values(val, &c, as_u64)? }),
            "sfixed32Val" | "sfixed32_val" => V::Sfixed32Val(as_i32(val, &c)?),
            "sfixed32List" | "sfixed32_list" => {
                V::Sfixed32List(Sfixed32List { values: list_values(val, &c, as_i32)? })
            }
            "sfixed64Val" | "sfixed64_val" => V::Sfixed64Val(as_i64(val, &c)?),
            "sfixed64List" | "sfixed64_list" => {
                V::Sfixed64List(Sfixed64List { values: list_values(val, &c, as_i64)? })
            }
            "boolVal" | "bool_val" => V::BoolVal(as_bool(val, &c)?),
            "boolList" | "bool_list" => V::BoolList(BoolList { values: list_values(val, &c, as_bool)? }),
            "stringVal" | "string_val" => V::StringVal(as_string(val, &c)?),
            "stringList" | "string_list" => V::StringList(StringList { values: list_values(val, &c, as_string)? }),
            "bytesVal" | "bytes_val" => V::BytesVal(as_bytes(val, &c)?),
            "bytesList" | "bytes_list" => V::BytesList(BytesList { values: list_values(val, &c, as_bytes)? }),
            other => {
                return Err(cx.err(format!(
                    "unknown attribute key `{other}`; expected name, docString or one value such as int64Val, boolVal, stringList"
                )))
            }
        };
        if attr.value.is_some() {
            return Err(c.err("an attribute holds one value; a second value key was found"));
        }
        attr.value = Some(value);
    }
    Ok(attr)
}

/// Parses the proto3 JSON mapping of a GlobalMetadata.
fn metadata_from_json(v: &Value, cx: &Ctx) -> Result<GlobalMetadata> {
    let o = as_object(v, cx)?;
    reject_unknown(o, METADATA_KEYS, cx)?;
    Ok(GlobalMetadata {
        version: o.get("version").map(|v| as_string(v, &cx.sub("version"))).transpose()?.unwrap_or_default(),
        attr: o.get("attr").map(|v| array_of(v, &cx.sub("attr"), attr_from_json)).transpose()?.unwrap_or_default(),
    })
}

fn node_type_from_json(v: &Value, cx: &Ctx) -> Result<i32> {
    match v {
        Value::String(s) => NodeType::from_proto_name(s).map(|t| t as i32).ok_or_else(|| {
            cx.err(format!("unknown node type \"{s}\"; expected one of COMP_NODE, COMM_COLL_NODE, COMM_SEND_NODE, COMM_RECV_NODE, MEM_LOAD_NODE, MEM_STORE_NODE, METADATA_NODE, INVALID_NODE or a number"))
        }),
        _ => as_i32(v, cx),
    }
}

fn io_from_json(v: &Value, cx: &Ctx) -> Result<IoInfo> {
    let o = as_object(v, cx)?;
    reject_unknown(o, &["values", "shapes", "types"], cx)?;
    let get = |k: &str| o.get(k).map(|v| as_string(v, &cx.sub(k))).transpose().map(Option::unwrap_or_default);
    Ok(IoInfo { values: get("values")?, shapes: get("shapes")?, types: get("types")? })
}

/// Parses the proto3 JSON mapping of a Node.
fn node_from_json(v: &Value, cx: &Ctx) -> Result<Node> {
    let o = as_object(v, cx)?;
    reject_unknown(o, NODE_KEYS, cx)?;
    let deps = |camel: &str, snake: &str| -> Result<Vec<u64>> {
        field(o, camel, snake).map(|v| array_of(v, &cx.sub(camel), as_u64)).transpose().map(Option::unwrap_or_default)
    };
    let num = |camel: &str, snake: &str| -> Result<u64> {
        field(o, camel, snake).map(|v| as_u64(v, &cx.sub(camel))).transpose().map(Option::unwrap_or_default)
    };
    let node = Node {
        id: num("id", "id")?,
        name: o.get("name").map(|v| as_string(v, &cx.sub("name"))).transpose()?.unwrap_or_default(),
        r#type: o.get("type").map(|v| node_type_from_json(v, &cx.sub("type"))).transpose()?.unwrap_or_default(),
        ctrl_deps: deps("ctrlDeps", "ctrl_deps")?,
        data_deps: deps("dataDeps", "data_deps")?,
        start_time_micros: num("startTimeMicros", "start_time_micros")?,
        duration_micros: num("durationMicros", "duration_micros")?,
        inputs: o.get("inputs").map(|v| io_from_json(v, &cx.sub("inputs"))).transpose()?,
        outputs: o.get("outputs").map(|v| io_from_json(v, &cx.sub("outputs"))).transpose()?,
        attr: o.get("attr").map(|v| array_of(v, &cx.sub("attr"), attr_from_json)).transpose()?.unwrap_or_default(),
    };
    check_values(&node, cx)?;
    Ok(node)
}

/// Fails on an attribute that Chakra defines with a value (`comm_size`,
/// `comm_type`, `is_cpu_op`, ...: those with a [`canonical_kind`]) but that has
/// no value key, most likely a misspelt or forgotten one in a hand-edited file.
/// Other attributes may lack a value: symbolic_tensor_graph writes `inputs` and
/// `outputs` attributes with none, and the document form keeps them.
fn check_values(node: &Node, cx: &Ctx) -> Result<()> {
    let Some((k, a, kind)) = node
        .attr
        .iter()
        .enumerate()
        .filter(|(_, a)| a.value.is_none())
        .find_map(|(k, a)| canonical_kind(&a.name).map(|kind| (k, a, kind)))
    else {
        return Ok(());
    };
    Err(cx.sub(&format!("attr[{k}]")).err(format!(
        "node {} ({}): attribute `{}` has no value; expected a value key such as {}",
        node.id,
        node.name,
        a.name,
        camel_case(kind.field_name())
    )))
}

/// `int64_val` → `int64Val`: the proto3 JSON name of a field.
fn camel_case(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        match c {
            '_' => upper = true,
            c if upper => {
                out.push(c.to_ascii_uppercase());
                upper = false;
            }
            c => out.push(c),
        }
    }
    out
}

fn document_to_trace(doc: &Value, path: &Path) -> Result<EtTrace> {
    let cx = Ctx { path, at: "$".into() };
    let o = as_object(doc, &cx)?;
    reject_unknown(o, &["format", "version", "metadata", "nodes"], &cx)?;
    match o.get("version") {
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => return Err(cx.sub("version").err(format!("expected document version 1, got {}", shown(v)))),
        None => return Err(cx.err("missing key `version`; expected document version 1")),
    }
    let metadata = match o.get("metadata") {
        None | Some(Value::Null) => None,
        Some(m) => Some(metadata_from_json(m, &cx.sub("metadata"))?),
    };
    let nodes = match o.get("nodes") {
        None => return Err(cx.err("missing key `nodes` (an array of nodes)")),
        Some(n) => array_of(n, &Ctx { path, at: "nodes".into() }, node_from_json)?,
    };
    Ok(EtTrace { metadata, nodes })
}

fn jsonizer_to_trace(values: &[Value], path: &Path) -> Result<EtTrace> {
    let mut iter = values.iter().enumerate().peekable();
    let mut metadata = None;
    if let Some((_, first)) = iter.peek() {
        let o = first.as_object().expect("detect_form checked objects");
        let looks_like_node = o.keys().any(|k| !METADATA_KEYS.contains(&k.as_str()));
        if !looks_like_node {
            metadata = Some(metadata_from_json(first, &Ctx { path, at: "message #0".into() })?);
            iter.next();
        }
    }
    let nodes =
        iter.map(|(i, v)| node_from_json(v, &Ctx { path, at: format!("message #{i}") })).collect::<Result<Vec<_>>>()?;
    Ok(EtTrace { metadata, nodes })
}

fn int_attr(name: &str, value: AttrValue) -> AttributeProto {
    AttributeProto { name: name.into(), doc_string: String::new(), value: Some(value) }
}

fn feeder_to_trace(doc: &Value, path: &Path) -> Result<EtTrace> {
    let root = Ctx { path, at: "workload_graph".into() };
    let graph = doc.get("workload_graph").expect("detected by key");
    let nodes = array_of(graph, &root, |v, cx| {
        let o = as_object(v, cx)?;
        let get = |k: &str| o.get(k);
        let mut node = Node {
            id: get("Id").map(|v| as_u64(v, &cx.sub("Id"))).transpose()?.ok_or_else(|| cx.err("missing key `Id`"))?,
            name: get("Name").map(|v| as_string(v, &cx.sub("Name"))).transpose()?.unwrap_or_default(),
            r#type: get("NodeType")
                .map(|v| node_type_from_json(v, &cx.sub("NodeType")))
                .transpose()?
                .ok_or_else(|| cx.err("missing key `NodeType`"))?,
            ..Default::default()
        };
        for (key, target) in [("data_deps", 0), ("dataDeps", 0), ("ctrl_deps", 1), ("ctrlDeps", 1)] {
            if let Some(v) = get(key) {
                let deps = array_of(v, &cx.sub(key), as_u64)?;
                if target == 0 {
                    node.data_deps.extend(deps)
                } else {
                    node.ctrl_deps.extend(deps)
                }
            }
        }
        if let Some(v) = get("runtime") {
            node.duration_micros = as_u64(v, &cx.sub("runtime"))?;
        }
        for (key, val) in o {
            let c = cx.sub(key);
            let attr = match key.as_str() {
                "Id" | "Name" | "NodeType" | "data_deps" | "dataDeps" | "ctrl_deps" | "ctrlDeps" | "runtime" => {
                    continue
                }
                "is_cpu_op" => int_attr(
                    key,
                    AttrValue::BoolVal(match val {
                        Value::Number(_) => as_i64(val, &c)? != 0,
                        _ => as_bool(val, &c)?,
                    }),
                ),
                "num_ops" | "comm_type" | "comm_size" => int_attr(key, AttrValue::Int64Val(as_i64(val, &c)?)),
                "tensor_size" => int_attr(key, AttrValue::Uint64Val(as_u64(val, &c)?)),
                "comm_src" | "comm_dst" | "comm_tag" | "comm_priority" => {
                    int_attr(key, AttrValue::Int32Val(as_i32(val, &c)?))
                }
                "pg_name" => int_attr(key, AttrValue::StringVal(as_string(val, &c)?)),
                "involved_dim" => int_attr(key, AttrValue::BoolList(BoolList { values: array_of(val, &c, as_bool)? })),
                other => return Err(cx.err(format!("unknown feeder key `{other}`"))),
            };
            node.attr.push(attr);
        }
        Ok(node)
    })?;
    Ok(EtTrace { metadata: Some(GlobalMetadata { version: "1.0.0".into(), attr: vec![] }), nodes })
}

/// Crate-internal name used by the converters.
pub(crate) use read_values as read_json_values;

#[cfg(test)]
mod tests {
    use super::*;

    /// `chakra_jsonizer` output: MessageToJson per message, concatenated; 64-bit
    /// integers as strings, enum names, camelCase keys, defaults omitted.
    const JSONIZER: &str = r#"{
  "version": "0.0.4"
}{
  "id": "1",
  "name": "all_reduce_8npus_1MB",
  "type": "COMM_COLL_NODE",
  "attr": [
    {
      "name": "is_cpu_op",
      "boolVal": false
    },
    {
      "name": "comm_type",
      "int64Val": "0"
    },
    {
      "name": "comm_size",
      "int64Val": "1048576"
    }
  ]
}{
  "id": "2",
  "name": "after",
  "type": "COMP_NODE",
  "dataDeps": ["1"],
  "durationMicros": "12"
}"#;

    #[test]
    fn jsonizer_stream_reads_and_matches_the_binary_encoding() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.json");
        std::fs::write(&path, JSONIZER).unwrap();
        let values = read_values(&path).unwrap();
        assert_eq!(detect_form(&values), Some(JsonForm::Jsonizer));
        let t = read_json_trace(&path).unwrap();
        assert_eq!(t.metadata.as_ref().unwrap().version, "0.0.4");
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[1].data_deps, vec![1]);
        assert_eq!(t.nodes[1].duration_micros, 12);
        // The first node is the one of ASTRA-sim's all_reduce.1.et microbenchmark
        // (astra-sim-semantics.md §1.2 decodes it byte by byte): same bytes here.
        let node_bytes = prost::Message::encode_length_delimited_to_vec(&t.nodes[0]);
        let real = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/data/public-traces/astra-sim__astra-sim/examples/workload/microbenchmarks/all_reduce/8npus_1MB/all_reduce.1.et"
        ))
        .unwrap();
        assert_eq!(&real[8..], node_bytes.as_slice());
    }

    /// Writes `text` as `doc.json` in a fresh folder and reads it.
    fn read_doc(text: &str) -> (tempfile::TempDir, Result<EtTrace>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        std::fs::write(&path, text).unwrap();
        let result = read_json_trace(&path);
        (dir, result)
    }

    #[test]
    fn a_wrong_or_missing_document_version_names_the_file_key_and_value() {
        let doc = |version: &str| format!(r#"{{"format": "chakra-et-json",{version} "nodes": []}}"#);
        let cases = [
            (r#" "version": 99,"#, "doc.json: $.version: expected document version 1, got 99"),
            (r#" "version": "1","#, r#"doc.json: $.version: expected document version 1, got "1""#),
            (r#" "version": null,"#, "doc.json: $.version: expected document version 1, got null"),
            ("", "doc.json: $: missing key `version`; expected document version 1"),
        ];
        for (version, expect) in cases {
            let (dir, result) = read_doc(&doc(version));
            let err = result.unwrap_err().to_string();
            let rel = err.strip_prefix(&format!("{}/", dir.path().display()));
            assert_eq!(rel, Some(expect), "{err}");
        }
        assert!(read_doc(&doc(r#" "version": 1,"#)).1.is_ok());
    }

    #[test]
    fn an_attribute_chakra_defines_with_a_value_must_have_one() {
        let doc = |attr: &str| {
            format!(
                r#"{{"format": "chakra-et-json", "version": 1, "nodes": [{{"id": 3, "name": "a"}},
                {{"id": 5, "name": "ar", "type": "COMM_COLL_NODE", "attr": [{{"name": "comm_type", "int64Val": 0}}, {attr}]}}]}}"#
            )
        };
        for (attr, key) in [("comm_size", "int64Val"), ("is_cpu_op", "boolVal"), ("involved_dim", "boolList")] {
            let (_dir, result) = read_doc(&doc(&format!(r#"{{"name": "{attr}"}}"#)));
            let err = result.unwrap_err().to_string();
            let expect = format!(
                "doc.json: nodes[1].attr[1]: node 5 (ar): attribute `{attr}` has no value; expected a value key such as {key}"
            );
            assert!(err.ends_with(&expect), "{err}");
        }
        // Attributes with no defined value may lack one, as in real
        // symbolic_tensor_graph traces (`{"name": "outputs"}`), and round-trip.
        let (_dir, result) = read_doc(&doc(r#"{"name": "outputs"}"#));
        let trace = result.unwrap();
        assert_eq!((trace.nodes[1].attr[1].name.as_str(), &trace.nodes[1].attr[1].value), ("outputs", &None));
        assert_eq!(camel_case("sfixed64_list"), "sfixed64List");
    }
}
