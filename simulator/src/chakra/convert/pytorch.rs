//! PyTorch host execution trace JSON → Chakra ET, following Chakra's
//! `chakra_converter PyTorch` (mlcommons/chakra `src/converter/pytorch_converter.py`
//! and `pytorch_node.py`).
//!
//! The input is what PyTorch's `ExecutionTraceObserver` writes (schemas
//! `1.0.2-chakra.0.0.4` … `1.1.1-chakra.0.0.4`): `{"schema", "pid", "time",
//! "start_ts", "finish_ts", "nodes": [...]}`, every node carrying `id`, `name`,
//! `ctrl_deps` (the id of the calling op), `inputs`/`outputs` (`values`, `shapes`,
//! `types`) and `attrs` (`[{"name", "type", "value"}]`). The same function reads the
//! host + device form that `chakra_trace_link` writes, whose extra node fields
//! (`cat`, `exclusive_dur`, `stream`, `pg_name`, `inter_thread_dep`) mark GPU kernels
//! and carry timings. An attribute in `attrs` with one of those names overrides the
//! field, as Chakra's `setattr` loop does.
//!
//! Conversion rules (as Chakra applies them):
//!
//! * **Which nodes.** Every host op becomes a node; a GPU kernel (a node with a
//!   non-null `cat`) becomes one only as the child of a converted host op. Nodes are
//!   written in id order, after a GlobalMetadata with no version and the attributes
//!   `schema`, `time` (`string_val`) and `pid`, `start_ts`, `finish_ts` (`uint64_val`).
//! * **Types.** A name containing `process_group:init` → METADATA_NODE. A GPU kernel
//!   whose name contains `ncclDevKernel_SendRecv` → COMM_SEND_NODE / COMM_RECV_NODE
//!   when the launching op's name (or, under `record_param_comms`, its caller's name)
//!   contains `send` / `recv`; any other kernel whose name contains `ncclKernel` or
//!   `ncclDevKernel` → COMM_COLL_NODE. Everything else → COMP_NODE.
//! * **Attributes.** `rf_id`, `fw_parent`, `seq_id`, `scope`, `tid`, `fw_tid`
//!   (`int64_val`) and `op_schema` (`string_val`) as found in `attrs`, then
//!   `is_cpu_op` (`bool_val`, false for GPU kernels) and `stream` (`int64_val`, 0 when
//!   the node has none). Collectives add `comm_type` (by substring of the kernel name
//!   with `_`/`-` removed, case-folded: `allreduce`, `alltoall`, `allgather`,
//!   `reducescatter`, `broadcast`; a SendRecv kernel counts as all-to-all), and
//!   collectives, sends and receives add `comm_size` (Σ num_elem × elem_bytes of the
//!   input tensors, `int64_val`) and `pg_name` (`string_val`, only when non-empty; a
//!   SendRecv kernel takes it from its `record_param_comms` parent).
//! * **IOInfo.** `inputs`/`outputs` hold Python `str()` renderings of the JSON lists,
//!   e.g. `"[[5, 6, 0, 1, 4, 'cpu']]"`, reproduced here (single-quoted strings, `True`,
//!   `None`, Python float `repr`).
//! * **Durations.** `exclusive_dur` truncated to whole µs (0 without a device trace,
//!   and 0 for any `Optimizer.step`); start times are not set.
//! * **Dependencies.** `ctrl_deps` holds the caller's id when the caller came earlier
//!   in the file (Chakra converts in file order and only links to converted nodes).
//!   From each thread root (`[pytorch|profiler|execution_trace|thread]`) the call tree
//!   is walked depth-first, children in id order, and every host op gets a data
//!   dependency on the host op visited just before it (plus its `inter_thread_dep`); a
//!   GPU kernel depends on the last host op visited before it, and collectives of one
//!   `pg_name` are chained in visit order. Nodes left with no data dependency and no
//!   dependent (the `[...|process]` annotation, trees not under a thread root) are
//!   dropped; Chakra does so silently, here every dropped node other than the process
//!   annotation (and an empty thread annotation) is warned about by id: one warning per
//!   node whose `ctrl_deps` names a node not in the file (with the ops it called), one
//!   listing any others.
//! * **Cycles** are an error naming the nodes of one cycle: in the data dependencies,
//!   and in the call tree, where callers that form a cycle, or a node other than the
//!   `[...|process]` annotation that names itself as its caller, could never be reached
//!   from a thread root.
//!
//! A host-only trace has no GPU kernels, so it converts to COMP and METADATA nodes
//! only: the `record_param_comms` and `nccl:*` host ops stay compute nodes without
//! `comm_*` attributes, and every duration is 0.
//!
//! Differences from Chakra, all on inputs Chakra rejects or mishandles: a missing
//! standard attribute or top-level `pid`/`time`/`start_ts`/`finish_ts` is omitted
//! instead of crashing; an unknown `schema` is converted with a warning instead of
//! refused; `sync_dep` is ignored (Chakra only honours it when the earlier node's start
//! time is smaller, and it never sets start times); a `ctrl_deps` or
//! `inter_thread_dep` naming a node not in the output is dropped rather than written
//! dangling; duplicate ids are an error rather than the last one silently winning;
//! a tensor value PyTorch wrote as a placeholder string (`"<None>"`) counts 0 bytes.

use std::collections::HashMap;
use std::path::Path;

use serde_json::{Map, Value};

use crate::chakra::codec::EtTrace;
use crate::chakra::error::{ChakraError, Result};
use crate::chakra::json::read_json_values;
use crate::chakra::schema::{AttrValue, AttributeProto, CollectiveCommType, GlobalMetadata, IoInfo, Node, NodeType};

/// Names of the per-thread root annotations the dependency walk starts from.
const ROOT_NAMES: [&str; 2] =
    ["[pytorch|profiler|execution_graph|thread]", "[pytorch|profiler|execution_trace|thread]"];

/// Names of the process annotation at the top of the call tree, its own caller.
const PROCESS_NAMES: [&str; 2] =
    ["[pytorch|profiler|execution_graph|process]", "[pytorch|profiler|execution_trace|process]"];

/// Schema families Chakra's converter reads (any `-chakra.*` suffix).
const KNOWN_SCHEMAS: [&str; 5] = ["1.0.2-chakra.", "1.0.3-chakra.", "1.0.4-chakra.", "1.1.0-chakra.", "1.1.1-chakra."];

/// Integer attributes copied from `attrs`, in the order Chakra writes them.
const INT_ATTRS: [&str; 6] = ["rf_id", "fw_parent", "seq_id", "scope", "tid", "fw_tid"];

/// Collective kinds by substring of the normalized kernel name, in Chakra's order.
const COMM_KEYWORDS: [(&str, CollectiveCommType); 5] = [
    ("allreduce", CollectiveCommType::AllReduce),
    ("alltoall", CollectiveCommType::AllToAll),
    ("allgather", CollectiveCommType::AllGather),
    ("reducescatter", CollectiveCommType::ReduceScatter),
    ("broadcast", CollectiveCommType::Broadcast),
];

/// Converts the PyTorch host execution trace at `path` into a Chakra ET.
///
/// Also accepts the host + device JSON written by `chakra_trace_link`. Errors name
/// the file and, for a bad node, its position and id (`nodes[12] (id 30).inputs`).
pub fn convert_pytorch_host(path: &Path) -> Result<EtTrace> {
    let values = read_json_values(path)?;
    match values.as_slice() {
        [doc] => convert_document(doc, path),
        _ => Err(ChakraError::format(
            path,
            "top level",
            format!(
                "found {} concatenated JSON values; expected one PyTorch host execution trace object",
                values.len()
            ),
        )),
    }
}

/// One input node, parsed.
struct HostNode<'a> {
    id: u64,
    name: &'a str,
    parent: Option<u64>,
    inputs: Io<'a>,
    outputs: Io<'a>,
    /// The standard attributes present, in Chakra's order.
    attrs: Vec<AttributeProto>,
    /// Has a non-null `cat`: a GPU kernel from a linked device trace.
    gpu: bool,
    exclusive_dur: u64,
    inter_thread_dep: Option<u64>,
    /// `None` only when the node says `"stream": null`.
    stream: Option<i64>,
    pg_name: String,
}

impl HostNode<'_> {
    fn is_metadata(&self) -> bool {
        self.name.contains("process_group:init")
    }

    /// Chakra's GPU_OP: a kernel that is not a metadata node.
    fn is_gpu_op(&self) -> bool {
        self.gpu && !self.is_metadata()
    }
}

/// The three lists of an `inputs` or `outputs` object.
struct Io<'a> {
    values: &'a Vec<Value>,
    shapes: &'a Vec<Value>,
    types: &'a Vec<Value>,
}

/// Where in the file a node is, for error messages.
#[derive(Clone, Copy)]
struct Loc<'p> {
    path: &'p Path,
    index: usize,
    id: Option<u64>,
}

impl Loc<'_> {
    fn err(&self, field: &str, what: impl Into<String>) -> ChakraError {
        let node = match self.id {
            Some(id) => format!("nodes[{}] (id {id})", self.index),
            None => format!("nodes[{}]", self.index),
        };
        let location = if field.is_empty() { node } else { format!("{node}.{field}") };
        ChakraError::format(self.path, location, what)
    }
}

/// A converted node and the input node it came from.
struct OutNode {
    src: usize,
    node: Node,
}

fn convert_document(doc: &Value, path: &Path) -> Result<EtTrace> {
    let top = |what: String| ChakraError::format(path, "top level", what);
    let obj = doc.as_object().ok_or_else(|| {
        top(format!(
            "found {}; expected a PyTorch host execution trace object {{\"schema\", \"pid\", \"nodes\": [...], ...}}",
            kind(doc)
        ))
    })?;
    let schema = match obj.get("schema") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => return Err(ChakraError::format(path, "schema", format!("found {}; expected a string", kind(v)))),
        None => return Err(top("missing key `schema`; expected a PyTorch host execution trace".into())),
    };
    if !KNOWN_SCHEMAS.iter().any(|p| schema.starts_with(p)) {
        tracing::warn!(
            "{}: schema \"{schema}\" is not one Chakra's converter reads (1.0.2 … 1.1.1-chakra.*); converting anyway",
            path.display()
        );
    }
    let metadata = metadata_from(obj, schema, path)?;
    let raw_nodes = match obj.get("nodes") {
        Some(Value::Array(a)) => a,
        Some(v) => {
            return Err(ChakraError::format(path, "nodes", format!("found {}; expected an array of nodes", kind(v))))
        }
        None => return Err(top("missing key `nodes` (the array of operator nodes)".into())),
    };

    let mut nodes = Vec::with_capacity(raw_nodes.len());
    let mut index_of: HashMap<u64, usize> = HashMap::with_capacity(raw_nodes.len());
    for (i, raw) in raw_nodes.iter().enumerate() {
        let loc = Loc { path, index: i, id: None };
        let node = parse_node(raw, loc)?;
        if let Some(&first) = index_of.get(&node.id) {
            let loc = Loc { id: Some(node.id), ..loc };
            return Err(loc.err("id", format!("id {} is also used by nodes[{first}]; expected unique ids", node.id)));
        }
        index_of.insert(node.id, i);
        nodes.push(node);
    }

    check_call_tree(&nodes, &index_of, path)?;

    // The call tree, in file order (Chakra's children and gpu_children lists).
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    let mut gpu_children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        if let Some(&p) = n.parent.and_then(|p| index_of.get(&p)) {
            children[p].push(i);
            if n.gpu {
                gpu_children[p].push(i);
            }
        }
    }

    // Convert host ops in file order, each followed by the kernels it launched.
    let mut slot_of: Vec<Option<usize>> = vec![None; nodes.len()];
    let mut out: Vec<OutNode> = Vec::with_capacity(nodes.len());
    for i in 0..nodes.len() {
        if nodes[i].is_gpu_op() {
            continue;
        }
        convert_node(i, &mut nodes, &index_of, &mut slot_of, &mut out, path)?;
        for &g in &gpu_children[i] {
            if slot_of[g].is_none() && nodes[g].is_gpu_op() {
                convert_node(g, &mut nodes, &index_of, &mut slot_of, &mut out, path)?;
            }
        }
    }

    let slot_by_id: HashMap<u64, usize> = out.iter().enumerate().map(|(s, o)| (o.node.id, s)).collect();
    let roots: Vec<usize> = (0..out.len()).filter(|&s| ROOT_NAMES.contains(&out[s].node.name.as_str())).collect();
    let mut walk = Walk { visited: vec![0; out.len()], generation: 0 };
    for root in roots {
        walk.chain(root, &nodes, &children, &slot_of, &slot_by_id, &mut out);
    }

    let kept = drop_dangling(out);
    let mut kept_nodes: Vec<Node> = kept.into_iter().map(|o| o.node).collect();
    kept_nodes.sort_by_key(|n| n.id);
    let ids: HashMap<u64, usize> = kept_nodes.iter().enumerate().map(|(i, n)| (n.id, i)).collect();
    for n in &mut kept_nodes {
        n.ctrl_deps.retain(|d| ids.contains_key(d));
    }
    check_acyclic(&kept_nodes, &ids, path)?;
    warn_dropped(&nodes, &index_of, &children, &ids, path);
    Ok(EtTrace { metadata: Some(metadata), nodes: kept_nodes })
}

/// Whether `n` is the process annotation, which PyTorch makes its own caller:
/// the root of the call tree, above the thread roots. Chakra drops it.
fn is_process_root(n: &HostNode<'_>) -> bool {
    n.parent == Some(n.id) && PROCESS_NAMES.contains(&n.name)
}

/// Checks the call tree `ctrl_deps` describes (each node names its caller):
/// a node that is its own caller (other than the process annotation) or
/// callers that form a cycle are errors naming the nodes, as such nodes can
/// never be reached from a thread root and would be dropped without a trace.
fn check_call_tree(nodes: &[HostNode<'_>], index_of: &HashMap<u64, usize>, path: &Path) -> Result<()> {
    const NEW: u8 = 0;
    const ON_CHAIN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    let mut chain: Vec<usize> = Vec::new();
    let name = |i: usize| format!("{} ({})", nodes[i].id, nodes[i].name);
    for start in 0..nodes.len() {
        // Follow callers up from `start` until a node already checked, the
        // top of the tree or a caller not in the file.
        chain.clear();
        let mut i = start;
        while state[i] == NEW {
            state[i] = ON_CHAIN;
            chain.push(i);
            let n = &nodes[i];
            let Some(p) = n.parent else { break };
            if p == n.id {
                if is_process_root(n) {
                    break;
                }
                return Err(Loc { path, index: i, id: Some(n.id) }.err(
                    "ctrl_deps",
                    format!(
                        "node {} ({}) names itself as its caller; only the process annotation {} is its own \
                         caller, expected the id of the op or thread annotation that called it",
                        n.id, n.name, PROCESS_NAMES[1]
                    ),
                ));
            }
            let Some(&caller) = index_of.get(&p) else { break };
            if state[caller] == ON_CHAIN {
                let from = chain.iter().position(|&c| c == caller).expect("on the chain");
                let mut cycle: Vec<String> = chain[from..].iter().map(|&c| name(c)).collect();
                cycle.push(name(caller));
                return Err(Loc { path, index: caller, id: Some(nodes[caller].id) }.err(
                    "ctrl_deps",
                    format!(
                        "the callers form a cycle: {} (each node's ctrl_deps names the next); expected every \
                         node's callers to lead up to a thread annotation",
                        cycle.join(" -> ")
                    ),
                ));
            }
            i = caller;
        }
        for &c in &chain {
            state[c] = DONE;
        }
    }
    Ok(())
}

/// Warns about every input node the conversion left out (`kept` holds the ids
/// written), other than the process and empty thread annotations Chakra drops
/// too: one warning per node whose caller is not in the file (with how many of
/// its callees went with it), and one listing any others, which no thread
/// annotation reaches, by id.
fn warn_dropped(
    nodes: &[HostNode<'_>],
    index_of: &HashMap<u64, usize>,
    children: &[Vec<usize>],
    kept: &HashMap<u64, usize>,
    path: &Path,
) {
    let dropped: Vec<bool> = nodes.iter().map(|n| !kept.contains_key(&n.id)).collect();
    let mut reported = vec![false; nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        let Some(caller) = n.parent.filter(|p| dropped[i] && !index_of.contains_key(p)) else { continue };
        let mut stack = vec![i];
        let mut with = 0usize;
        while let Some(v) = stack.pop() {
            reported[v] = true;
            with += usize::from(v != i);
            stack.extend(children[v].iter().copied().filter(|&c| dropped[c] && !reported[c]));
        }
        let callees = match with {
            0 => String::new(),
            1 => " with the 1 op it called".to_string(),
            k => format!(" with the {k} ops it called"),
        };
        tracing::warn!(
            "{}: nodes[{i}] (id {}, {}): ctrl_deps names node {caller}, which is not in the file; dropped{callees}, \
             as no thread annotation reaches it",
            path.display(),
            n.id,
            n.name
        );
    }
    let mut others: Vec<usize> = (0..nodes.len())
        .filter(|&i| dropped[i] && !reported[i])
        .filter(|&i| !PROCESS_NAMES.contains(&nodes[i].name) && !ROOT_NAMES.contains(&nodes[i].name))
        .collect();
    others.sort_unstable_by_key(|&i| nodes[i].id);
    if !others.is_empty() {
        const SHOWN: usize = 10;
        let mut list: Vec<String> =
            others.iter().take(SHOWN).map(|&i| format!("{} ({})", nodes[i].id, nodes[i].name)).collect();
        if others.len() > SHOWN {
            list.push(format!("and {} more", others.len() - SHOWN));
        }
        tracing::warn!(
            "{}: {} nodes dropped as no thread annotation ({}) reaches them through ctrl_deps: {}",
            path.display(),
            others.len(),
            ROOT_NAMES[1],
            list.join(", ")
        );
    }
}

/// The GlobalMetadata Chakra writes: no version, five attributes.
fn metadata_from(obj: &Map<String, Value>, schema: &str, path: &Path) -> Result<GlobalMetadata> {
    let mut attr = vec![attribute("schema", AttrValue::StringVal(schema.to_string()))];
    for key in ["pid", "time", "start_ts", "finish_ts"] {
        let Some(v) = obj.get(key) else { continue };
        let value = if key == "time" {
            match v {
                Value::String(s) => AttrValue::StringVal(s.clone()),
                _ => return Err(ChakraError::format(path, key, format!("found {}; expected a string", kind(v)))),
            }
        } else {
            match v.as_u64() {
                Some(u) => AttrValue::Uint64Val(u),
                None => {
                    return Err(ChakraError::format(
                        path,
                        key,
                        format!("found {}; expected a non-negative integer", kind(v)),
                    ))
                }
            }
        };
        attr.push(attribute(key, value));
    }
    Ok(GlobalMetadata { version: String::new(), attr })
}

fn parse_node<'a>(raw: &'a Value, loc: Loc<'_>) -> Result<HostNode<'a>> {
    let obj = raw.as_object().ok_or_else(|| loc.err("", format!("found {}; expected a node object", kind(raw))))?;
    let id = match obj.get("id") {
        Some(v) => {
            v.as_u64().ok_or_else(|| loc.err("id", format!("found {}; expected a non-negative integer", kind(v))))?
        }
        None => return Err(loc.err("", "missing key `id`; expected a node id")),
    };
    let loc = Loc { id: Some(id), ..loc };
    let name = match obj.get("name") {
        Some(Value::String(s)) => s.as_str(),
        Some(v) => return Err(loc.err("name", format!("found {}; expected a string", kind(v)))),
        None => return Err(loc.err("", "missing key `name`; expected the operator name")),
    };
    let parent = match obj.get("ctrl_deps") {
        Some(Value::Null) => None,
        Some(v) => Some(v.as_u64().ok_or_else(|| {
            loc.err("ctrl_deps", format!("found {}; expected the id of the calling node (an integer)", kind(v)))
        })?),
        None => return Err(loc.err(
            "",
            "missing key `ctrl_deps` (the calling node's id); is this a PyTorch host trace of schema 1.0.2 or later?",
        )),
    };
    let inputs = parse_io(obj, "inputs", loc)?;
    let outputs = parse_io(obj, "outputs", loc)?;

    // Standard attributes, plus attrs that override node fields (Chakra's setattr).
    let mut ints: [Option<i64>; 6] = [None; 6];
    let mut op_schema = None;
    let mut overrides: HashMap<&str, (String, &Value)> = HashMap::new();
    if let Some(list) = obj.get("attrs") {
        let list = list
            .as_array()
            .ok_or_else(|| loc.err("attrs", format!("found {}; expected an array of attributes", kind(list))))?;
        for (k, a) in list.iter().enumerate() {
            let field = format!("attrs[{k}]");
            let a = a
                .as_object()
                .ok_or_else(|| loc.err(&field, format!("found {}; expected {{\"name\", \"value\"}}", kind(a))))?;
            let attr_name = match a.get("name") {
                Some(Value::String(s)) => s.as_str(),
                Some(v) => {
                    return Err(loc.err(&format!("{field}.name"), format!("found {}; expected a string", kind(v))))
                }
                None => return Err(loc.err(&field, "missing key `name`")),
            };
            let value_field = format!("{field}.value");
            let value =
                a.get("value").ok_or_else(|| loc.err(&field, format!("attribute `{attr_name}` has no `value`")))?;
            if let Some(pos) = INT_ATTRS.iter().position(|n| *n == attr_name) {
                let v = value.as_i64().ok_or_else(|| {
                    loc.err(&value_field, format!("`{attr_name}` is {}; expected a 64-bit signed integer", kind(value)))
                })?;
                ints[pos] = Some(v);
            } else if attr_name == "op_schema" {
                match value {
                    Value::String(s) => op_schema = Some(s.clone()),
                    _ => {
                        return Err(loc.err(&value_field, format!("`op_schema` is {}; expected a string", kind(value))))
                    }
                }
            } else if let Some(key) =
                ["cat", "exclusive_dur", "inter_thread_dep", "stream", "pg_name"].into_iter().find(|k| *k == attr_name)
            {
                overrides.insert(key, (value_field, value));
            }
        }
    }
    let field = |key: &'static str| -> Option<(String, &Value)> {
        overrides.get(key).map(|(f, v)| (f.clone(), *v)).or_else(|| obj.get(key).map(|v| (key.to_string(), v)))
    };

    let gpu = matches!(field("cat"), Some((_, v)) if !v.is_null());
    let exclusive_dur = match field("exclusive_dur") {
        None | Some((_, Value::Null)) => 0,
        Some((f, v)) => whole_micros(v).ok_or_else(|| {
            loc.err(&f, format!("found {}; expected a non-negative duration in microseconds", kind(v)))
        })?,
    };
    let inter_thread_dep = match field("inter_thread_dep") {
        None | Some((_, Value::Null)) => None,
        Some((f, v)) => match v.as_u64() {
            Some(0) => None,
            Some(d) => Some(d),
            None => return Err(loc.err(&f, format!("found {}; expected a node id", kind(v)))),
        },
    };
    let stream = match field("stream") {
        None => Some(0),
        Some((_, Value::Null)) => None,
        Some((f, v)) => {
            Some(v.as_i64().ok_or_else(|| loc.err(&f, format!("found {}; expected an integer stream id", kind(v))))?)
        }
    };
    let pg_name = match field("pg_name") {
        None | Some((_, Value::Null)) => String::new(),
        Some((_, Value::String(s))) => s.clone(),
        Some((_, Value::Number(n))) => n.to_string(),
        Some((f, v)) => return Err(loc.err(&f, format!("found {}; expected a process-group name", kind(v)))),
    };

    let mut attrs: Vec<AttributeProto> =
        INT_ATTRS.iter().zip(ints).filter_map(|(n, v)| v.map(|v| attribute(n, AttrValue::Int64Val(v)))).collect();
    if let Some(s) = op_schema {
        attrs.push(attribute("op_schema", AttrValue::StringVal(s)));
    }
    Ok(HostNode { id, name, parent, inputs, outputs, attrs, gpu, exclusive_dur, inter_thread_dep, stream, pg_name })
}

fn parse_io<'a>(obj: &'a Map<String, Value>, key: &str, loc: Loc<'_>) -> Result<Io<'a>> {
    let io = match obj.get(key) {
        Some(Value::Object(o)) => o,
        Some(v) => {
            return Err(loc.err(key, format!("found {}; expected an object with `values`, `shapes`, `types`", kind(v))))
        }
        None => return Err(loc.err("", format!("missing key `{key}`; expected {{\"values\", \"shapes\", \"types\"}}"))),
    };
    let list = |k: &str| -> Result<&'a Vec<Value>> {
        match io.get(k) {
            Some(Value::Array(a)) => Ok(a),
            Some(v) => Err(loc.err(&format!("{key}.{k}"), format!("found {}; expected an array", kind(v)))),
            None => Err(loc.err(key, format!("missing key `{k}`; expected an array"))),
        }
    };
    Ok(Io { values: list("values")?, shapes: list("shapes")?, types: list("types")? })
}

/// Python's `int()` of a JSON duration: whole microseconds, truncated.
fn whole_micros(v: &Value) -> Option<u64> {
    if let Some(u) = v.as_u64() {
        return Some(u);
    }
    let f = v.as_f64()?;
    // `as` saturates; the bound keeps values that do not fit out.
    (f > -1.0 && f < u64::MAX as f64).then_some(f.max(0.0) as u64)
}

/// Converts one input node into the next output slot (Chakra's
/// `convert_json_to_protobuf_node`, plus the communication attributes).
fn convert_node(
    i: usize,
    nodes: &mut [HostNode<'_>],
    index_of: &HashMap<u64, usize>,
    slot_of: &mut [Option<usize>],
    out: &mut Vec<OutNode>,
    path: &Path,
) -> Result<()> {
    let loc = Loc { path, index: i, id: Some(nodes[i].id) };
    let node_type = node_type(i, nodes, index_of);
    let n = &nodes[i];
    let mut node = Node {
        id: n.id,
        name: n.name.to_string(),
        r#type: node_type as i32,
        duration_micros: if n.name.contains("Optimizer.step") { 0 } else { n.exclusive_dur },
        inputs: Some(io_info(&n.inputs)),
        outputs: Some(io_info(&n.outputs)),
        attr: n.attrs.clone(),
        ..Default::default()
    };
    if let Some(&p) = n.parent.and_then(|p| index_of.get(&p)) {
        if slot_of[p].is_some() {
            node.ctrl_deps.push(nodes[p].id);
        }
    }
    node.attr.push(attribute("is_cpu_op", AttrValue::BoolVal(!n.gpu)));
    if let Some(stream) = n.stream {
        node.attr.push(attribute("stream", AttrValue::Int64Val(stream)));
    }
    if n.is_gpu_op() {
        let comm = matches!(node_type, NodeType::CommCollNode | NodeType::CommSendNode | NodeType::CommRecvNode);
        if node_type == NodeType::CommCollNode {
            let ct = collective_type(n.name).ok_or_else(|| {
                loc.err(
                    "name",
                    format!(
                        "NCCL kernel `{}` names no known collective; expected allreduce, alltoall, allgather, \
                         reducescatter, broadcast or SendRecv in the name",
                        n.name
                    ),
                )
            })?;
            node.attr.push(attribute("comm_type", AttrValue::Int64Val(ct as i64)));
        }
        if comm {
            node.attr.push(attribute("comm_size", AttrValue::Int64Val(comm_size(&n.inputs, loc)?)));
            if !n.pg_name.is_empty() {
                node.attr.push(attribute("pg_name", AttrValue::StringVal(n.pg_name.clone())));
            }
        }
    }
    slot_of[i] = Some(out.len());
    out.push(OutNode { src: i, node });
    Ok(())
}

/// Chakra's node-type rules; a SendRecv kernel may take its parent's `pg_name`.
fn node_type(i: usize, nodes: &mut [HostNode<'_>], index_of: &HashMap<u64, usize>) -> NodeType {
    let n = &nodes[i];
    if n.is_metadata() {
        return NodeType::MetadataNode;
    }
    if !n.gpu {
        return NodeType::CompNode;
    }
    if n.name.contains("ncclDevKernel_SendRecv") {
        let parent = n.parent.and_then(|p| index_of.get(&p)).copied();
        let mut keyword = "";
        let mut inherited = None;
        if let Some(p) = parent {
            let pn = &nodes[p];
            if pn.name == "record_param_comms" {
                keyword = pn.parent.and_then(|g| index_of.get(&g)).map_or("", |&g| nodes[g].name);
                if !pn.pg_name.is_empty() {
                    inherited = Some(pn.pg_name.clone());
                }
            } else {
                keyword = pn.name;
            }
        }
        if let Some(pg) = inherited {
            nodes[i].pg_name = pg;
        }
        if keyword.contains("send") {
            return NodeType::CommSendNode;
        }
        if keyword.contains("recv") {
            return NodeType::CommRecvNode;
        }
        if keyword.contains("nccl:all_to_all") {
            return NodeType::CommCollNode;
        }
    }
    let name = nodes[i].name;
    if name.contains("ncclKernel") || name.contains("ncclDevKernel") {
        NodeType::CommCollNode
    } else {
        NodeType::CompNode
    }
}

/// The collective a kernel name stands for (Chakra's `get_collective_comm_type`).
fn collective_type(name: &str) -> Option<CollectiveCommType> {
    let normalized: String = name.chars().filter(|c| *c != '_' && *c != '-').flat_map(char::to_lowercase).collect();
    COMM_KEYWORDS
        .iter()
        .find(|(k, _)| normalized.contains(k))
        .map(|(_, t)| *t)
        .or_else(|| name.contains("ncclDevKernel_SendRecv").then_some(CollectiveCommType::AllToAll))
}

/// Σ num_elem × elem_bytes over the tensor inputs (`Tensor(...)` and
/// `GenericList[Tensor...]` types), as Chakra's `comm_size`.
fn comm_size(io: &Io<'_>, loc: Loc<'_>) -> Result<i64> {
    let mut total: u128 = 0;
    for (k, (value, ty)) in io.values.iter().zip(io.types.iter()).enumerate() {
        let ty = ty.as_str().ok_or_else(|| {
            loc.err(&format!("inputs.types[{k}]"), format!("found {}; expected a type string", kind(ty)))
        })?;
        if !ty.contains("Tensor") {
            continue;
        }
        let field = format!("inputs.values[{k}]");
        if ty.starts_with("GenericList[Tensor") {
            let list = value.as_array().ok_or_else(|| {
                loc.err(&field, format!("found {} for type {ty}; expected a list of tensors", kind(value)))
            })?;
            for t in list {
                let bytes = tensor_bytes(t).ok_or_else(|| bad_tensor(loc, &field, t))?;
                total = total.saturating_add(bytes);
            }
        } else {
            let bytes = tensor_bytes(value).ok_or_else(|| bad_tensor(loc, &field, value))?;
            total = total.saturating_add(bytes);
        }
    }
    i64::try_from(total)
        .map_err(|_| loc.err("inputs", format!("communication size {total} bytes does not fit a 64-bit integer")))
}

fn bad_tensor(loc: Loc<'_>, field: &str, v: &Value) -> ChakraError {
    loc.err(
        field,
        format!("found {}; expected a tensor [tensor_id, storage_id, offset, num_elem, elem_bytes, device]", kind(v)),
    )
}

/// Bytes of one tensor value; a placeholder string (`"<None>"`) counts 0.
fn tensor_bytes(v: &Value) -> Option<u128> {
    match v {
        Value::String(_) => Some(0),
        Value::Array(a) if a.len() >= 5 => Some(a[3].as_u64()? as u128 * a[4].as_u64()? as u128),
        _ => None,
    }
}

/// The dependency walk of Chakra's `convert_ctrl_dep_to_data_dep`.
struct Walk {
    /// `generation` of the walk that visited each slot.
    visited: Vec<u32>,
    generation: u32,
}

impl Walk {
    fn chain(
        &mut self,
        root: usize,
        nodes: &[HostNode<'_>],
        children: &[Vec<usize>],
        slot_of: &[Option<usize>],
        slot_by_id: &HashMap<u64, usize>,
        out: &mut [OutNode],
    ) {
        self.generation += 1;
        let generation = self.generation;
        let mut stack = vec![root];
        let mut last_host: Option<u64> = None;
        let mut last_any: Option<u64> = None;
        let mut last_coll: HashMap<&str, u64> = HashMap::new();
        while let Some(slot) = stack.pop() {
            let src = out[slot].src;
            let n = &nodes[src];
            let id = out[slot].node.id;
            if out[slot].node.r#type == NodeType::CommCollNode as i32 {
                if let Some(prev) = last_coll.insert(n.pg_name.as_str(), id) {
                    out[slot].node.data_deps.push(prev);
                }
            }
            if self.visited[slot] == generation {
                continue;
            }
            self.visited[slot] = generation;
            let deps = &mut out[slot].node.data_deps;
            if n.is_gpu_op() {
                if let Some(a) = last_any.filter(|a| !deps.contains(a)) {
                    deps.push(a);
                }
                last_any = last_host;
            } else {
                if let Some(d) = n.inter_thread_dep {
                    if !slot_by_id.contains_key(&d) {
                        tracing::warn!("node {id}: inter_thread_dep {d} names no converted node; ignored");
                    } else if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
                if let Some(p) = last_host.filter(|p| !deps.contains(p)) {
                    deps.push(p);
                }
                last_host = Some(id);
                last_any = Some(id);
            }
            let mut kids: Vec<(u64, usize)> =
                children[src].iter().filter_map(|&c| slot_of[c].map(|s| (nodes[c].id, s))).collect();
            kids.sort_unstable_by_key(|k| std::cmp::Reverse(k.0));
            stack.extend(kids.into_iter().filter(|&(_, s)| self.visited[s] != generation).map(|(_, s)| s));
        }
    }
}

/// Drops nodes with no data dependency that nothing depends on.
fn drop_dangling(out: Vec<OutNode>) -> Vec<OutNode> {
    let needed: std::collections::HashSet<u64> = out.iter().flat_map(|o| o.node.data_deps.iter().copied()).collect();
    out.into_iter().filter(|o| !o.node.data_deps.is_empty() || needed.contains(&o.node.id)).collect()
}

/// Fails with the nodes of one cycle if the data dependencies are not a DAG.
fn check_acyclic(nodes: &[Node], ids: &HashMap<u64, usize>, path: &Path) -> Result<()> {
    const NEW: u8 = 0;
    const OPEN: u8 = 1;
    const DONE: u8 = 2;
    let mut state = vec![NEW; nodes.len()];
    for start in 0..nodes.len() {
        if state[start] != NEW {
            continue;
        }
        // (node, next dependency to look at); the stack is the current path.
        let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
        state[start] = OPEN;
        while let Some(&mut (v, ref mut next)) = stack.last_mut() {
            let Some(&dep) = nodes[v].data_deps.get(*next) else {
                state[v] = DONE;
                stack.pop();
                continue;
            };
            *next += 1;
            let Some(&w) = ids.get(&dep) else { continue };
            match state[w] {
                NEW => {
                    state[w] = OPEN;
                    stack.push((w, 0));
                }
                OPEN => {
                    let from = stack.iter().position(|&(u, _)| u == w).unwrap_or(0);
                    let mut cycle: Vec<String> =
                        stack[from..].iter().map(|&(u, _)| format!("{} ({})", nodes[u].id, nodes[u].name)).collect();
                    cycle.push(format!("{} ({})", nodes[w].id, nodes[w].name));
                    return Err(ChakraError::format(
                        path,
                        format!("node {}", nodes[w].id),
                        format!(
                            "cyclic data dependency: {}; each node depends on the next, expected a DAG",
                            cycle.join(" -> ")
                        ),
                    ));
                }
                _ => {}
            }
        }
    }
    Ok(())
}

fn attribute(name: &str, value: AttrValue) -> AttributeProto {
    AttributeProto { name: name.to_string(), doc_string: String::new(), value: Some(value) }
}

fn io_info(io: &Io<'_>) -> IoInfo {
    IoInfo { values: py_str_list(io.values), shapes: py_str_list(io.shapes), types: py_str_list(io.types) }
}

/// A short name of a JSON value's kind, for error messages.
fn kind(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => format!("the boolean {b}"),
        Value::Number(n) => format!("the number {n}"),
        Value::String(s) if s.len() <= 40 => format!("the string {s:?}"),
        Value::String(_) => "a string".into(),
        Value::Array(_) => "an array".into(),
        Value::Object(_) => "an object".into(),
    }
}

// ------------------------------------------------------- Python str()

fn py_str_list(items: &[Value]) -> String {
    let mut s = String::new();
    py_list(items, &mut s);
    s
}

fn py_list(items: &[Value], out: &mut String) {
    out.push('[');
    for (k, v) in items.iter().enumerate() {
        if k > 0 {
            out.push_str(", ");
        }
        py_repr(v, out);
    }
    out.push(']');
}

/// Python's `repr()` of the value `json.load` makes of `v`.
fn py_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match (n.as_u64(), n.as_i64(), n.as_f64()) {
            (Some(u), _, _) => out.push_str(&u.to_string()),
            (_, Some(i), _) => out.push_str(&i.to_string()),
            (_, _, Some(f)) => py_float(f, out),
            _ => out.push_str(&n.to_string()),
        },
        Value::String(s) => py_str_repr(s, out),
        Value::Array(a) => py_list(a, out),
        Value::Object(o) => {
            out.push('{');
            for (k, (key, val)) in o.iter().enumerate() {
                if k > 0 {
                    out.push_str(", ");
                }
                py_str_repr(key, out);
                out.push_str(": ");
                py_repr(val, out);
            }
            out.push('}');
        }
    }
}

/// Python's float `repr`: shortest round-trip digits, exponent form when the
/// decimal exponent is below -4 or at least 16 (`1e-05`, `1e+16`, `0.0001`, `1.0`).
fn py_float(f: f64, out: &mut String) {
    if f.is_nan() {
        out.push_str("nan");
        return;
    }
    if f.is_infinite() {
        out.push_str(if f > 0.0 { "inf" } else { "-inf" });
        return;
    }
    if f.is_sign_negative() {
        out.push('-');
    }
    let sci = format!("{:e}", f.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    let decpt = exp + 1;
    if decpt <= -4 || decpt > 16 {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!("e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.unsigned_abs()));
    } else if decpt <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', decpt.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let decpt = decpt as usize;
        if decpt >= digits.len() {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', decpt - digits.len()));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt]);
            out.push('.');
            out.push_str(&digits[decpt..]);
        }
    }
}

/// Python's `repr()` of a `str`: single quotes unless the text has a `'` and no
/// `"`, backslash escapes for the quote, `\\`, `\t`, `\n`, `\r` and non-printable
/// characters. Printability of non-ASCII characters is approximated (control, format,
/// separator and private-use characters are escaped; unassigned ones are kept).
fn py_str_repr(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') { '"' } else { '\'' };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if py_printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
        }
    }
    out.push(quote);
}

fn py_printable(c: char) -> bool {
    if c.is_ascii() {
        return (' '..='~').contains(&c);
    }
    let u = c as u32;
    let format_char = matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x890..=0x891 | 0x8E2 | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD
        | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F);
    let private_or_nonchar = matches!(u, 0xE000..=0xF8FF | 0xF0000..=0x10FFFF | 0xFFFE | 0xFFFF);
    !(c.is_control() || c.is_whitespace() || format_char || private_or_nonchar)
}

#[cfg(test)]
mod tests {
    use std::collections::{HashMap, HashSet};
    use std::path::{Path, PathBuf};

    use serde_json::{json, Value};

    use super::*;

    const CHAKRA_TEST_TRACE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/public-traces/mlcommons__chakra/tests/data/1.0.2-chakra.0.0.4.tgz.extracted/1.0.2-chakra.0.0.4.json"
    );
    const DEMO4_HOST_TRACE: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/data/public-traces/astra-sim__tutorials/micro2024/chakra-demo/demo4/pytorch_traces/host_0.json"
    );

    fn convert(path: &str) -> EtTrace {
        convert_pytorch_host(Path::new(path)).unwrap_or_else(|e| panic!("{e}"))
    }

    fn convert_json(doc: &Value) -> Result<EtTrace> {
        convert_document(doc, Path::new("mem.json"))
    }

    /// Writes `text` to a temporary file and converts it.
    fn convert_text(text: &str) -> (PathBuf, Result<EtTrace>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trace.json");
        std::fs::write(&path, text).unwrap();
        let result = convert_pytorch_host(&path);
        (path, result)
    }

    fn by_id(trace: &EtTrace) -> HashMap<u64, &Node> {
        trace.nodes.iter().map(|n| (n.id, n)).collect()
    }

    fn attr<'a>(node: &'a Node, name: &str) -> Option<&'a AttrValue> {
        node.attr(name).and_then(|a| a.value.as_ref())
    }

    fn count(trace: &EtTrace, t: NodeType) -> usize {
        trace.nodes.iter().filter(|n| n.node_type() == Some(t)).count()
    }

    /// Ids unique and sorted, every dependency names a node, data deps acyclic.
    fn assert_well_formed(trace: &EtTrace) {
        let ids: HashSet<u64> = trace.nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids.len(), trace.nodes.len(), "duplicate ids");
        assert!(trace.nodes.windows(2).all(|w| w[0].id < w[1].id), "nodes not in id order");
        for n in &trace.nodes {
            for d in n.data_deps.iter().chain(&n.ctrl_deps) {
                assert!(ids.contains(d), "node {} depends on missing {d}", n.id);
            }
        }
        // Kahn's algorithm over data deps must consume every node.
        let mut indeg: HashMap<u64, usize> = trace.nodes.iter().map(|n| (n.id, n.data_deps.len())).collect();
        let mut users: HashMap<u64, Vec<u64>> = HashMap::new();
        for n in &trace.nodes {
            for d in &n.data_deps {
                users.entry(*d).or_default().push(n.id);
            }
        }
        let mut ready: Vec<u64> = indeg.iter().filter(|(_, &d)| d == 0).map(|(&i, _)| i).collect();
        let mut done = 0;
        while let Some(v) = ready.pop() {
            done += 1;
            for u in users.get(&v).into_iter().flatten() {
                let e = indeg.get_mut(u).unwrap();
                *e -= 1;
                if *e == 0 {
                    ready.push(*u);
                }
            }
        }
        assert_eq!(done, trace.nodes.len(), "data dependencies have a cycle");
    }

    /// The call tree of the raw JSON walked depth-first from `root`, children by id.
    fn preorder(doc: &Value, root: u64) -> Vec<u64> {
        let mut children: HashMap<u64, Vec<u64>> = HashMap::new();
        for n in doc["nodes"].as_array().unwrap() {
            let (id, parent) = (n["id"].as_u64().unwrap(), n["ctrl_deps"].as_u64().unwrap());
            if id != parent {
                children.entry(parent).or_default().push(id);
            }
        }
        let (mut order, mut stack) = (Vec::new(), vec![root]);
        while let Some(v) = stack.pop() {
            order.push(v);
            let mut kids = children.get(&v).cloned().unwrap_or_default();
            kids.sort_unstable_by(|a, b| b.cmp(a));
            stack.extend(kids);
        }
        order
    }

    /// Each thread's ops form one chain in call-tree pre-order.
    fn assert_chain(trace: &EtTrace, order: &[u64]) {
        let nodes = by_id(trace);
        assert!(nodes[&order[0]].data_deps.is_empty());
        for w in order.windows(2) {
            assert_eq!(nodes[&w[1]].data_deps, vec![w[0]], "node {}", w[1]);
        }
    }

    fn read_doc(path: &str) -> Value {
        serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
    }

    #[test]
    fn chakra_test_trace_counts_metadata_and_structure() {
        let trace = convert(CHAKRA_TEST_TRACE);
        // 263 input nodes; the `[...|process]` annotation is dangling and dropped.
        assert_eq!(trace.nodes.len(), 262);
        assert_eq!(count(&trace, NodeType::CompNode), 261);
        assert_eq!(count(&trace, NodeType::MetadataNode), 1);
        assert_eq!((trace.nodes[0].id, trace.nodes[261].id), (2, 296));
        assert!(!by_id(&trace).contains_key(&1));
        assert_well_formed(&trace);
        assert_eq!(trace.nodes.iter().filter(|n| !n.ctrl_deps.is_empty()).count(), 91);
        assert!(trace.nodes.iter().all(|n| n.duration_micros == 0 && n.start_time_micros == 0));

        let meta = trace.metadata.as_ref().unwrap();
        assert_eq!(meta.version, "");
        let expect = [
            ("schema", AttrValue::StringVal("1.0.2-chakra.0.0.4".into())),
            ("pid", AttrValue::Uint64Val(788625)),
            ("time", AttrValue::StringVal("2024-03-21 18:54:23".into())),
            ("start_ts", AttrValue::Uint64Val(350785410)),
            ("finish_ts", AttrValue::Uint64Val(350785415)),
        ];
        let got: Vec<(&str, &AttrValue)> =
            meta.attr.iter().map(|a| (a.name.as_str(), a.value.as_ref().unwrap())).collect();
        assert_eq!(got, expect.iter().map(|(n, v)| (*n, v)).collect::<Vec<_>>());
    }

    #[test]
    fn chakra_test_trace_chains_the_call_tree_in_preorder() {
        let trace = convert(CHAKRA_TEST_TRACE);
        let order = preorder(&read_doc(CHAKRA_TEST_TRACE), 2);
        assert_eq!(order.len(), trace.nodes.len());
        assert_chain(&trace, &order);
    }

    #[test]
    fn chakra_test_trace_known_nodes() {
        let trace = convert(CHAKRA_TEST_TRACE);
        let nodes = by_id(&trace);

        let pg = nodes[&3];
        assert_eq!(pg.name, "## process_group:init ##");
        assert_eq!(pg.node_type(), Some(NodeType::MetadataNode));
        assert_eq!((pg.ctrl_deps.as_slice(), pg.data_deps.as_slice()), (&[2][..], &[2][..]));
        let io = pg.inputs.as_ref().unwrap();
        assert_eq!(
            io.values,
            r#"['[{"pg_name": "0", "backend_id": 82149104, "backend_config": "cuda:nccl", "ranks": [], "group_size": 2, "group_count": 1}]']"#
        );
        assert_eq!((io.shapes.as_str(), io.types.as_str()), ("[[]]", "['String']"));

        let empty = nodes[&4];
        assert_eq!(empty.name, "aten::empty");
        assert_eq!(empty.node_type(), Some(NodeType::CompNode));
        assert_eq!((empty.ctrl_deps.as_slice(), empty.data_deps.as_slice()), (&[2][..], &[3][..]));
        let io = empty.inputs.as_ref().unwrap();
        assert_eq!(io.values, "[[1], 6, 0, 'cpu', False, '<None>']");
        assert_eq!(io.shapes, "[[[]], [], [], [], [], []]");
        assert_eq!(io.types, "['GenericList[Int]', 'Int', 'Int', 'Device', 'Bool', 'None']");
        let out = empty.outputs.as_ref().unwrap();
        assert_eq!((out.values.as_str(), out.shapes.as_str()), ("[[5, 6, 0, 1, 4, 'cpu']]", "[[1]]"));
        let names: Vec<&str> = empty.attr.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["rf_id", "fw_parent", "seq_id", "scope", "tid", "fw_tid", "op_schema", "is_cpu_op", "stream"]
        );
        assert_eq!(attr(empty, "rf_id"), Some(&AttrValue::Int64Val(2)));
        assert_eq!(attr(empty, "seq_id"), Some(&AttrValue::Int64Val(-1)));
        assert_eq!(attr(empty, "tid"), Some(&AttrValue::Int64Val(1)));
        assert_eq!(attr(empty, "is_cpu_op"), Some(&AttrValue::BoolVal(true)));
        assert_eq!(attr(empty, "stream"), Some(&AttrValue::Int64Val(0)));
        assert!(
            matches!(attr(empty, "op_schema"), Some(AttrValue::StringVal(s)) if s.starts_with("aten::empty.memory_format("))
        );

        // The host side of an all-gather: record_param_comms → nccl:all_gather. Without
        // the device trace there is no NCCL kernel, so both stay compute nodes.
        let rpc = nodes[&30];
        assert_eq!(rpc.name, "record_param_comms");
        assert_eq!(
            rpc.inputs.as_ref().unwrap().values,
            "[[[14, 15, 0, 1, 4, 'cuda:0']], 12, 82149104, 0, 'all_gather', [], [], 2]"
        );
        let ag = nodes[&31];
        assert_eq!(ag.name, "nccl:all_gather");
        assert_eq!(ag.node_type(), Some(NodeType::CompNode));
        assert_eq!(ag.data_deps, [30]);
        assert!(ag.ctrl_deps.is_empty(), "its caller comes later in the file");
        assert_eq!(attr(ag, "scope"), Some(&AttrValue::Int64Val(7)));
        assert_eq!(ag.attr("comm_size"), None);
        assert_eq!(ag.attr("pg_name"), None);
        let gathers = trace.nodes.iter().filter(|n| n.name == "nccl:all_gather").count();
        assert_eq!(gathers, 10);
        assert_eq!(count(&trace, NodeType::CommCollNode) + count(&trace, NodeType::CommSendNode), 0);
        assert_eq!(count(&trace, NodeType::CommRecvNode), 0);
    }

    #[test]
    fn demo4_host_trace_two_threads_and_known_nodes() {
        let trace = convert(DEMO4_HOST_TRACE);
        assert_eq!(trace.nodes.len(), 4800); // 4801 input nodes minus the process annotation
        assert_eq!(count(&trace, NodeType::CompNode), 4800);
        assert_well_formed(&trace);
        let roots: Vec<u64> = trace.nodes.iter().filter(|n| n.data_deps.is_empty()).map(|n| n.id).collect();
        assert_eq!(roots, [2, 3702]);
        let doc = read_doc(DEMO4_HOST_TRACE);
        let (main, autograd) = (preorder(&doc, 2), preorder(&doc, 3702));
        assert_eq!((main.len(), autograd.len()), (2408, 2392));
        assert_chain(&trace, &main);
        assert_chain(&trace, &autograd);
        let nodes = by_id(&trace);
        for (order, tid) in [(&main, 1), (&autograd, 2)] {
            assert!(order.iter().all(|id| attr(nodes[id], "tid") == Some(&AttrValue::Int64Val(tid))));
        }

        let step = nodes[&3];
        assert_eq!((step.name.as_str(), step.data_deps.as_slice()), ("ProfilerStep#4", &[2][..]));
        let bn = nodes[&1818];
        assert_eq!(bn.name, "aten::batch_norm");
        assert!(bn.inputs.as_ref().unwrap().values.ends_with(", True, 0.1, 1e-05, True]"));
        let rpc = nodes[&464];
        assert_eq!(rpc.name, "record_param_comms");
        assert_eq!(
            rpc.inputs.as_ref().unwrap().values,
            "[[[461, 462, 0, 53120, 4, 'cuda:0']], 31, ['0', 'default_pg'], 0, 'broadcast', [], [], 0, 1, 2]"
        );
        let bcast = nodes[&465];
        assert_eq!((bcast.name.as_str(), bcast.data_deps.as_slice()), ("nccl:broadcast", &[464][..]));
        assert_eq!(bcast.node_type(), Some(NodeType::CompNode));
        let ar = nodes[&3771];
        assert_eq!((ar.name.as_str(), ar.data_deps.as_slice()), ("nccl:all_reduce", &[3770][..]));
        assert_eq!(attr(ar, "tid"), Some(&AttrValue::Int64Val(2)));
        assert_eq!(trace.metadata.as_ref().unwrap().attr[1].value, Some(AttrValue::Uint64Val(3974)));
    }

    #[test]
    fn real_traces_pass_validation() {
        for path in [CHAKRA_TEST_TRACE, DEMO4_HOST_TRACE] {
            let trace = convert(path);
            let findings = crate::chakra::validate::validate_trace(&trace, Path::new(path));
            assert_eq!(findings.errors(), 0, "{findings}");
        }
    }

    /// A host + device trace as `chakra_trace_link` writes it.
    fn linked_trace() -> Value {
        let node = |id: u64, name: &str, parent: u64, extra: Value| {
            let mut n = json!({
                "id": id, "name": name, "ctrl_deps": parent,
                "inputs": {"values": [], "shapes": [], "types": []},
                "outputs": {"values": [], "shapes": [], "types": []},
                "attrs": [{"name": "rf_id", "type": "uint64", "value": id * 10},
                          {"name": "tid", "type": "uint64", "value": 1}],
            });
            for (k, v) in extra.as_object().unwrap() {
                n[k] = v.clone();
            }
            n
        };
        let kernel = |extra: Value| {
            let mut e = json!({"cat": "kernel", "ts": 100});
            for (k, v) in extra.as_object().unwrap() {
                e[k] = v.clone();
            }
            e
        };
        let tensor_in = |values: Value, types: Value| json!({"values": values, "shapes": [], "types": types});
        json!({
            "schema": "1.1.1-chakra.0.0.4", "pid": 7, "time": "2025-01-01 00:00:00",
            "start_ts": 10, "finish_ts": 20,
            "nodes": [
                node(1, "[pytorch|profiler|execution_trace|process]", 1, json!({})),
                node(2, "[pytorch|profiler|execution_trace|thread]", 1, json!({})),
                node(3, "## process_group:init ##", 2, json!({})),
                node(4, "c10d::allreduce_", 2, json!({"exclusive_dur": 5})),
                node(5, "record_param_comms", 4, json!({})),
                node(6, "nccl:all_reduce", 5, json!({})),
                node(7, "ncclDevKernel_AllReduce_Sum_f32_RING_LL(ncclDevKernelArgsStorage<4096ul>)", 6, kernel(json!({
                    "stream": 7, "exclusive_dur": 12.9, "pg_name": "1",
                    "inputs": tensor_in(json!([[10, 11, 0, 1024, 4, "cuda:0"]]), json!(["Tensor(float)"])),
                }))),
                node(8, "aten::mm", 2, json!({})),
                node(9, "void gemm_kernel<float>", 8, kernel(json!({"stream": 7, "exclusive_dur": 30}))),
                node(10, "c10d::allreduce_", 2, json!({})),
                node(11, "nccl:all_reduce", 10, json!({})),
                node(12, "ncclKernel_AllReduce_RING_LL_Sum_float", 11, kernel(json!({
                    "pg_name": "1",
                    "inputs": tensor_in(
                        json!([[[1, 2, 0, 10, 2, "cuda:0"], [3, 4, 0, 6, 4, "cuda:0"]], 3]),
                        json!(["GenericList[Tensor(half),Tensor(float)]", "Int"])),
                }))),
                node(13, "nccl:send", 2, json!({})),
                node(14, "record_param_comms", 13, json!({"attrs": [{"name": "pg_name", "type": "string", "value": "3"}]})),
                node(15, "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)", 14, kernel(json!({
                    "inputs": tensor_in(json!([[5, 6, 0, 8, 4, "cuda:0"]]), json!(["Tensor(float)"])),
                }))),
                node(16, "nccl:recv", 2, json!({})),
                node(17, "ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)", 16, kernel(json!({}))),
                node(18, "Optimizer.step#SGD.step", 2, json!({"exclusive_dur": 100})),
            ],
        })
    }

    #[test]
    fn linked_trace_kernels_become_comm_nodes() {
        let trace = convert_json(&linked_trace()).unwrap();
        assert_well_formed(&trace);
        let ids: Vec<u64> = trace.nodes.iter().map(|n| n.id).collect();
        assert_eq!(ids, (2..=18).collect::<Vec<_>>());
        let nodes = by_id(&trace);
        let ty = |id: u64| nodes[&id].node_type().unwrap();
        assert_eq!(ty(3), NodeType::MetadataNode);
        assert_eq!((ty(7), ty(12)), (NodeType::CommCollNode, NodeType::CommCollNode));
        assert_eq!((ty(9), ty(15), ty(17)), (NodeType::CompNode, NodeType::CommSendNode, NodeType::CommRecvNode));

        let names = |id: u64| nodes[&id].attr.iter().map(|a| a.name.as_str()).collect::<Vec<_>>();
        assert_eq!(names(7), ["rf_id", "tid", "is_cpu_op", "stream", "comm_type", "comm_size", "pg_name"]);
        assert_eq!(attr(nodes[&7], "is_cpu_op"), Some(&AttrValue::BoolVal(false)));
        assert_eq!(attr(nodes[&7], "stream"), Some(&AttrValue::Int64Val(7)));
        assert_eq!(attr(nodes[&7], "comm_type"), Some(&AttrValue::Int64Val(CollectiveCommType::AllReduce as i64)));
        assert_eq!(attr(nodes[&7], "comm_size"), Some(&AttrValue::Int64Val(4096)));
        assert_eq!(attr(nodes[&7], "pg_name"), Some(&AttrValue::StringVal("1".into())));
        assert_eq!(attr(nodes[&12], "comm_size"), Some(&AttrValue::Int64Val(10 * 2 + 6 * 4)));
        assert_eq!(names(15), ["rf_id", "tid", "is_cpu_op", "stream", "comm_size", "pg_name"]);
        assert_eq!(attr(nodes[&15], "pg_name"), Some(&AttrValue::StringVal("3".into())));
        assert_eq!(attr(nodes[&15], "comm_size"), Some(&AttrValue::Int64Val(32)));
        assert_eq!(attr(nodes[&17], "comm_size"), Some(&AttrValue::Int64Val(0)));
        assert_eq!(nodes[&17].attr("pg_name"), None);
        assert_eq!(names(9), ["rf_id", "tid", "is_cpu_op", "stream"]);

        let durations: Vec<(u64, u64)> = [4, 7, 9, 18].iter().map(|&i| (i, nodes[&i].duration_micros)).collect();
        assert_eq!(durations, [(4, 5), (7, 12), (9, 30), (18, 0)]);

        // Host ops chain in pre-order; a kernel follows the last node visited;
        // collectives of one process group are chained.
        let deps: Vec<(u64, Vec<u64>)> = trace.nodes.iter().map(|n| (n.id, n.data_deps.clone())).collect();
        let expect: Vec<(u64, Vec<u64>)> = vec![
            (2, vec![]),
            (3, vec![2]),
            (4, vec![3]),
            (5, vec![4]),
            (6, vec![5]),
            (7, vec![6]),
            (8, vec![6]),
            (9, vec![8]),
            (10, vec![8]),
            (11, vec![10]),
            (12, vec![7, 11]),
            (13, vec![11]),
            (14, vec![13]),
            (15, vec![14]),
            (16, vec![14]),
            (17, vec![16]),
            (18, vec![16]),
        ];
        assert_eq!(deps, expect);
        // The thread's caller (the dropped process node) is not kept as a ctrl dep.
        assert!(nodes[&2].ctrl_deps.is_empty());
        assert_eq!((nodes[&7].ctrl_deps.as_slice(), nodes[&15].ctrl_deps.as_slice()), (&[6][..], &[14][..]));
    }

    #[test]
    fn collective_type_by_kernel_name() {
        let cases = [
            ("ncclDevKernel_AllReduce_Sum_f32_RING_LL", Some(CollectiveCommType::AllReduce)),
            ("ncclKernel_AllGather_RING_LL_Sum_int8_t", Some(CollectiveCommType::AllGather)),
            ("ncclDevKernel_ReduceScatter_Sum_bf16_RING_LL", Some(CollectiveCommType::ReduceScatter)),
            ("ncclDevKernel_Broadcast_RING_LL", Some(CollectiveCommType::Broadcast)),
            ("ncclKernel_all-to-all", Some(CollectiveCommType::AllToAll)),
            ("ncclDevKernel_SendRecv(ncclDevKernelArgsStorage<4096ul>)", Some(CollectiveCommType::AllToAll)),
            ("ncclDevKernel_Reduce_Sum_f32", None),
        ];
        for (name, expect) in cases {
            assert_eq!(collective_type(name), expect, "{name}");
        }
    }

    #[test]
    fn all_to_all_sendrecv_is_a_collective_and_unknown_kernels_are_errors() {
        let mut doc = linked_trace();
        doc["nodes"][12]["name"] = json!("nccl:all_to_all");
        let trace = convert_json(&doc).unwrap();
        let n15 = trace.nodes.iter().find(|n| n.id == 15).unwrap();
        assert_eq!(n15.node_type(), Some(NodeType::CommCollNode));
        assert_eq!(attr(n15, "comm_type"), Some(&AttrValue::Int64Val(CollectiveCommType::AllToAll as i64)));

        doc["nodes"][6]["name"] = json!("ncclDevKernel_Reduce_Sum_f32");
        let err = convert_json(&doc).unwrap_err().to_string();
        assert!(err.contains("mem.json") && err.contains("(id 7)") && err.contains("Reduce_Sum"), "{err}");
    }

    #[test]
    fn python_float_repr() {
        let cases = [
            (0.1, "0.1"),
            (1e-05, "1e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (123.456, "123.456"),
            (-0.0, "-0.0"),
            (0.0, "0.0"),
            (2.5e-10, "2.5e-10"),
            (f64::MAX, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.30000000000000004, "0.30000000000000004"),
            (-1.5, "-1.5"),
            (100.0, "100.0"),
            (12345678901234567.0, "1.2345678901234568e+16"),
        ];
        for (f, expect) in cases {
            let mut s = String::new();
            py_float(f, &mut s);
            assert_eq!(s, expect, "{f:e}");
        }
    }

    #[test]
    fn python_str_repr() {
        let cases = [
            ("it's", r#""it's""#),
            ("a\"b", r#"'a"b'"#),
            ("it's \"x\"", r#"'it\'s "x"'"#),
            ("a\nb\\c\t\r", r"'a\nb\\c\t\r'"),
            ("\u{1}\u{7f}", r"'\x01\x7f'"),
            ("é😀", "'é😀'"),
            ("\u{a0}\u{200b}\u{e000}\u{10ffff}", r"'\xa0\u200b\ue000\U0010ffff'"),
        ];
        for (s, expect) in cases {
            let mut out = String::new();
            py_str_repr(s, &mut out);
            assert_eq!(out, expect, "{s:?}");
        }
        let v = json!([null, true, false, -3, 18446744073709551615u64, 1.0, {"a": [1, "b"]}, []]);
        assert_eq!(
            py_str_list(v.as_array().unwrap()),
            "[None, True, False, -3, 18446744073709551615, 1.0, {'a': [1, 'b']}, []]"
        );
    }

    #[test]
    fn not_json_names_the_file_and_position() {
        let (path, result) = convert_text("{\"schema\": \"1.0.2-chakra.0.0.4\", \"nodes\": [");
        let err = result.unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()) && err.contains("line 1"), "{err}");
        let (_, result) = convert_text("   \n");
        assert!(matches!(result, Err(ChakraError::Empty { .. })));
        let (_, result) = convert_text("{} {}");
        assert!(result.unwrap_err().to_string().contains("2 concatenated JSON values"));
    }

    #[test]
    fn missing_or_mistyped_top_level_keys() {
        let (path, result) = convert_text(r#"{"schema": "1.0.2-chakra.0.0.4", "pid": 1}"#);
        let err = result.unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()) && err.contains("missing key `nodes`"), "{err}");
        let cases = [
            (json!([1, 2]), "expected a PyTorch host execution trace object"),
            (json!({"nodes": []}), "missing key `schema`"),
            (json!({"schema": 1.0, "nodes": []}), "schema: found the number 1.0; expected a string"),
            (json!({"schema": "1.0.2-chakra.0.0.4", "nodes": {}}), "nodes: found an object; expected an array"),
            (json!({"schema": "1.0.2-chakra.0.0.4", "pid": -4, "nodes": []}), "pid: found the number -4"),
            (json!({"schema": "1.0.2-chakra.0.0.4", "time": 5, "nodes": []}), "time: found the number 5"),
        ];
        for (doc, expect) in cases {
            let err = convert_json(&doc).unwrap_err().to_string();
            assert!(err.starts_with("mem.json: ") && err.contains(expect), "{err}");
        }
    }

    #[test]
    fn wrong_node_field_kinds_name_the_node() {
        let cases: [(usize, &str, Value, &str); 9] = [
            (3, "inputs", json!("x"), "nodes[3] (id 4).inputs: found the string \"x\"; expected an object"),
            (3, "outputs", json!({"values": [], "shapes": []}), "nodes[3] (id 4).outputs: missing key `types`"),
            (4, "ctrl_deps", json!("4"), "nodes[4] (id 5).ctrl_deps: found the string \"4\""),
            (4, "name", json!(7), "nodes[4] (id 5).name: found the number 7; expected a string"),
            (
                4,
                "attrs",
                json!([{"name": "rf_id", "value": "9"}]),
                "nodes[4] (id 5).attrs[0].value: `rf_id` is the string \"9\"",
            ),
            (
                4,
                "attrs",
                json!([{"name": "op_schema", "value": 3}]),
                "nodes[4] (id 5).attrs[0].value: `op_schema` is the number 3",
            ),
            (6, "exclusive_dur", json!(-2), "nodes[6] (id 7).exclusive_dur: found the number -2"),
            (6, "stream", json!("s"), "nodes[6] (id 7).stream: found the string \"s\""),
            (
                6,
                "inputs",
                json!({"values": [[1, 2]], "shapes": [], "types": ["Tensor(float)"]}),
                "nodes[6] (id 7).inputs.values[0]: found an array; expected a tensor",
            ),
        ];
        for (index, key, value, expect) in cases {
            let mut doc = linked_trace();
            doc["nodes"][index][key] = value;
            let err = convert_json(&doc).unwrap_err().to_string();
            assert_eq!(err.strip_prefix("mem.json: ").map(|e| e.starts_with(expect)), Some(true), "{err}");
        }
        let mut doc = linked_trace();
        doc["nodes"][5].as_object_mut().unwrap().remove("ctrl_deps");
        let err = convert_json(&doc).unwrap_err().to_string();
        assert!(err.contains("nodes[5] (id 6): missing key `ctrl_deps`"), "{err}");
        doc["nodes"][5] = json!({"name": "x"});
        assert!(convert_json(&doc).unwrap_err().to_string().contains("nodes[5]: missing key `id`"));
        doc["nodes"][5] = json!(4);
        assert!(convert_json(&doc).unwrap_err().to_string().contains("nodes[5]: found the number 4; expected a node"));
    }

    #[test]
    fn duplicate_ids_are_an_error() {
        let mut doc = linked_trace();
        doc["nodes"][9]["id"] = json!(4);
        let err = convert_json(&doc).unwrap_err().to_string();
        assert!(err.contains("nodes[9] (id 4).id: id 4 is also used by nodes[3]"), "{err}");
    }

    #[test]
    fn a_cycle_is_an_error_naming_its_nodes() {
        // aten::a waits (inter-thread) for aten::b, which runs after it on the same thread.
        let op = |id: u64, name: &str, parent: u64| {
            json!({"id": id, "name": name, "ctrl_deps": parent,
                   "inputs": {"values": [], "shapes": [], "types": []},
                   "outputs": {"values": [], "shapes": [], "types": []}, "attrs": []})
        };
        let mut a = op(10, "aten::a", 2);
        a["inter_thread_dep"] = json!(11);
        let doc = json!({"schema": "1.0.3-chakra.0.0.4", "nodes": [
            op(2, "[pytorch|profiler|execution_trace|thread]", 1), a, op(11, "aten::b", 2)]});
        let (path, result) = convert_text(&doc.to_string());
        let err = result.unwrap_err().to_string();
        assert!(err.starts_with(&path.display().to_string()), "{err}");
        assert!(
            err.contains("cyclic data dependency") && err.contains("10 (aten::a)") && err.contains("11 (aten::b)"),
            "{err}"
        );
    }

    const REPO_HOST_TRACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../traces/pytorch/host_2ranks_rank0.json");

    /// The repository's host trace with `ctrl_deps` of the nodes `ids` set to `callers`.
    fn with_callers(ids: &[u64], callers: &[u64]) -> Value {
        let mut doc: Value = serde_json::from_str(&std::fs::read_to_string(REPO_HOST_TRACE).unwrap()).unwrap();
        for n in doc["nodes"].as_array_mut().unwrap() {
            if let Some(k) = ids.iter().position(|&id| n["id"] == id) {
                n["ctrl_deps"] = json!(callers[k]);
            }
        }
        doc
    }

    #[test]
    fn call_tree_cycles_and_self_callers_are_errors_naming_the_nodes() {
        // Real traces: only the process annotation (id 1) is its own caller and
        // it alone is dropped (263 input nodes).
        assert_eq!(convert(REPO_HOST_TRACE).nodes.len(), 262);
        // aten::empty (4) and aten::to (7), both called by the thread annotation,
        // made each other's caller: both used to vanish (260 nodes, exit 0).
        let err = convert_json(&with_callers(&[4, 7], &[7, 4])).unwrap_err().to_string();
        assert!(
            err.starts_with(
                "mem.json: nodes[2] (id 4).ctrl_deps: the callers form a cycle: 4 (aten::empty) -> \
                             7 (aten::to) -> 4 (aten::empty)"
            ),
            "{err}"
        );
        let err = convert_json(&with_callers(&[4], &[4])).unwrap_err().to_string();
        assert!(
            err.starts_with("mem.json: nodes[2] (id 4).ctrl_deps: node 4 (aten::empty) names itself as its caller"),
            "{err}"
        );
        // A longer cycle above a chain of callees is found from any of them.
        let err = convert_json(&with_callers(&[9, 4, 7], &[4, 7, 9])).unwrap_err().to_string();
        assert!(err.contains("the callers form a cycle") && err.contains("9 (aten::detach_)"), "{err}");
    }

    #[test]
    fn a_caller_missing_from_the_file_drops_its_subtree_with_a_warning() {
        // aten::detach_ (9) calls detach_ (10); its caller is made an id not in
        // the file: both are dropped (with a warning, checked end to end).
        let trace = convert_json(&with_callers(&[9], &[999_999])).unwrap();
        assert_well_formed(&trace);
        assert_eq!(trace.nodes.len(), 260);
        assert!(trace.nodes.iter().all(|n| n.id != 9 && n.id != 10));
    }

    #[test]
    fn unknown_schema_and_missing_attributes_still_convert() {
        let doc = json!({"schema": "2.0.0", "nodes": [
            {"id": 5, "name": "[pytorch|profiler|execution_trace|thread]", "ctrl_deps": null,
             "inputs": {"values": [], "shapes": [], "types": []},
             "outputs": {"values": [], "shapes": [], "types": []}},
            {"id": 6, "name": "aten::relu", "ctrl_deps": 5, "stream": null,
             "inputs": {"values": [[1, 2, 0, 4, 4, "cpu"]], "shapes": [[4]], "types": ["Tensor(float)"], "strides": [[1]]},
             "outputs": {"values": [], "shapes": [], "types": []}}]});
        let trace = convert_json(&doc).unwrap();
        assert_eq!(trace.metadata.unwrap().attr.len(), 1);
        let relu = &trace.nodes[1];
        assert_eq!((relu.id, relu.data_deps.as_slice(), relu.ctrl_deps.as_slice()), (6, &[5][..], &[5][..]));
        let names: Vec<&str> = relu.attr.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(names, ["is_cpu_op"]);
    }

    #[test]
    fn no_panic_on_mutated_inputs() {
        let base = linked_trace();
        let replacements = [
            json!(null),
            json!(true),
            json!(-1),
            json!(0),
            json!(1.5),
            json!(1e300),
            json!(u64::MAX),
            json!("x"),
            json!([]),
            json!([[1, 2, 3, 4, 5]]),
            json!({}),
            json!([[u64::MAX, 0, 0, u64::MAX, u64::MAX]]),
        ];
        let node_count = base["nodes"].as_array().unwrap().len();
        let mut runs = 0;
        for i in 0..node_count {
            let keys: Vec<String> = base["nodes"][i].as_object().unwrap().keys().cloned().collect();
            for key in keys.iter().map(String::as_str).chain(["cat", "stream", "pg_name", "inter_thread_dep"]) {
                for value in &replacements {
                    for target in ["", "values", "types"] {
                        let mut doc = base.clone();
                        if target.is_empty() {
                            doc["nodes"][i][key] = value.clone();
                        } else if doc["nodes"][i][key].is_object() {
                            doc["nodes"][i][key][target] = value.clone();
                        } else {
                            continue;
                        }
                        let _ = convert_json(&doc);
                        runs += 1;
                    }
                }
                let mut doc = base.clone();
                doc["nodes"][i].as_object_mut().unwrap().remove(key);
                let _ = convert_json(&doc);
            }
        }
        assert!(runs > 1000);
    }
}
