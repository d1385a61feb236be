//! Typed access to node attributes.
//!
//! Producers disagree on attribute kinds: `is_cpu_op` is a `bool_val` from Chakra's
//! tools but an `int32_val` from symbolic_tensor_graph, `comm_size` an `int64_val`
//! today and a `uint64_val` in older converter output. The accessors here accept any
//! integer kind for an integer attribute and an integer for a boolean one, log one
//! warning per (attribute, kind) pair they had to convert, and never turn a present
//! value into 0: a value of the wrong shape (a string, a list, an out-of-range
//! number, an attribute with no value set) is an [`AttrError`].

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

use super::schema::{AttrValue, Node};

/// The kind of value an attribute holds: the name of the proto `oneof` member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum AttrKind {
    Double,
    DoubleList,
    Float,
    FloatList,
    Int32,
    Int32List,
    Int64,
    Int64List,
    Uint32,
    Uint32List,
    Uint64,
    Uint64List,
    Sint32,
    Sint32List,
    Sint64,
    Sint64List,
    Fixed32,
    Fixed32List,
    Fixed64,
    Fixed64List,
    Sfixed32,
    Sfixed32List,
    Sfixed64,
    Sfixed64List,
    Bool,
    BoolList,
    String,
    StringList,
    Bytes,
    BytesList,
}

impl AttrKind {
    /// The proto field name, e.g. `int64_val`.
    pub fn field_name(self) -> &'static str {
        use AttrKind::*;
        match self {
            Double => "double_val",
            DoubleList => "double_list",
            Float => "float_val",
            FloatList => "float_list",
            Int32 => "int32_val",
            Int32List => "int32_list",
            Int64 => "int64_val",
            Int64List => "int64_list",
            Uint32 => "uint32_val",
            Uint32List => "uint32_list",
            Uint64 => "uint64_val",
            Uint64List => "uint64_list",
            Sint32 => "sint32_val",
            Sint32List => "sint32_list",
            Sint64 => "sint64_val",
            Sint64List => "sint64_list",
            Fixed32 => "fixed32_val",
            Fixed32List => "fixed32_list",
            Fixed64 => "fixed64_val",
            Fixed64List => "fixed64_list",
            Sfixed32 => "sfixed32_val",
            Sfixed32List => "sfixed32_list",
            Sfixed64 => "sfixed64_val",
            Sfixed64List => "sfixed64_list",
            Bool => "bool_val",
            BoolList => "bool_list",
            String => "string_val",
            StringList => "string_list",
            Bytes => "bytes_val",
            BytesList => "bytes_list",
        }
    }
}

impl AttrValue {
    /// Which oneof member this is.
    pub fn kind(&self) -> AttrKind {
        use AttrValue as V;
        match self {
            V::DoubleVal(_) => AttrKind::Double,
            V::DoubleList(_) => AttrKind::DoubleList,
            V::FloatVal(_) => AttrKind::Float,
            V::FloatList(_) => AttrKind::FloatList,
            V::Int32Val(_) => AttrKind::Int32,
            V::Int32List(_) => AttrKind::Int32List,
            V::Int64Val(_) => AttrKind::Int64,
            V::Int64List(_) => AttrKind::Int64List,
            V::Uint32Val(_) => AttrKind::Uint32,
            V::Uint32List(_) => AttrKind::Uint32List,
            V::Uint64Val(_) => AttrKind::Uint64,
            V::Uint64List(_) => AttrKind::Uint64List,
            V::Sint32Val(_) => AttrKind::Sint32,
            V::Sint32List(_) => AttrKind::Sint32List,
            V::Sint64Val(_) => AttrKind::Sint64,
            V::Sint64List(_) => AttrKind::Sint64List,
            V::Fixed32Val(_) => AttrKind::Fixed32,
            V::Fixed32List(_) => AttrKind::Fixed32List,
            V::Fixed64Val(_) => AttrKind::Fixed64,
            V::Fixed64List(_) => AttrKind::Fixed64List,
            V::Sfixed32Val(_) => AttrKind::Sfixed32,
            V::Sfixed32List(_) => AttrKind::Sfixed32List,
            V::Sfixed64Val(_) => AttrKind::Sfixed64,
            V::Sfixed64List(_) => AttrKind::Sfixed64List,
            V::BoolVal(_) => AttrKind::Bool,
            V::BoolList(_) => AttrKind::BoolList,
            V::StringVal(_) => AttrKind::String,
            V::StringList(_) => AttrKind::StringList,
            V::BytesVal(_) => AttrKind::Bytes,
            V::BytesList(_) => AttrKind::BytesList,
        }
    }

    /// The value as a signed 128-bit integer when it is a scalar integer or bool.
    fn as_integer(&self) -> Option<i128> {
        use AttrValue as V;
        Some(match *self {
            V::Int32Val(v) | V::Sint32Val(v) | V::Sfixed32Val(v) => v as i128,
            V::Int64Val(v) | V::Sint64Val(v) | V::Sfixed64Val(v) => v as i128,
            V::Uint32Val(v) | V::Fixed32Val(v) => v as i128,
            V::Uint64Val(v) | V::Fixed64Val(v) => v as i128,
            V::BoolVal(b) => b as i128,
            _ => return None,
        })
    }
}

/// The kind each well-known attribute is written with by current Chakra tools;
/// reading another kind logs a one-time warning.
pub fn canonical_kind(name: &str) -> Option<AttrKind> {
    Some(match name {
        "is_cpu_op" => AttrKind::Bool,
        "num_ops" | "comm_type" | "comm_size" => AttrKind::Int64,
        "tensor_size" => AttrKind::Uint64,
        "comm_src" | "comm_dst" | "comm_tag" | "comm_priority" => AttrKind::Int32,
        "pg_name" | "op_type" => AttrKind::String,
        "involved_dim" => AttrKind::BoolList,
        _ => return None,
    })
}

/// Why an attribute could not be read as the requested type.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum AttrError {
    /// The attribute is present but none of its value fields is set.
    #[error("attribute `{name}` is present but has no value; expected {expected}")]
    NoValue {
        /// Attribute name.
        name: String,
        /// What was expected.
        expected: &'static str,
    },
    /// The value is of a kind that cannot be converted.
    #[error("attribute `{name}` is a {got}; expected {expected}")]
    WrongKind {
        /// Attribute name.
        name: String,
        /// What was expected.
        expected: &'static str,
        /// The proto field that was set.
        got: &'static str,
    },
    /// The integer does not fit the requested type.
    #[error("attribute `{name}` = {value} is out of range; expected {expected}")]
    OutOfRange {
        /// Attribute name.
        name: String,
        /// The value found.
        value: i128,
        /// What was expected.
        expected: &'static str,
    },
}

fn warn_converted(name: &str, got: AttrKind) {
    let Some(canonical) = canonical_kind(name) else { return };
    if canonical == got {
        return;
    }
    // Process-wide so that a million nodes with the same quirk give one line.
    static SEEN: OnceLock<Mutex<HashSet<(String, AttrKind)>>> = OnceLock::new();
    let mut seen = SEEN.get_or_init(Default::default).lock().unwrap_or_else(|p| p.into_inner());
    if seen.insert((name.to_string(), got)) {
        tracing::warn!(
            "attribute `{name}` written as {} (Chakra writes {}); converted",
            got.field_name(),
            canonical.field_name()
        );
    }
}

fn value_of<'a>(node: &'a Node, name: &str, expected: &'static str) -> Result<Option<&'a AttrValue>, AttrError> {
    match node.attr(name) {
        None => Ok(None),
        Some(a) => match &a.value {
            None => Err(AttrError::NoValue { name: name.into(), expected }),
            Some(v) => Ok(Some(v)),
        },
    }
}

fn integer(node: &Node, name: &str, expected: &'static str) -> Result<Option<i128>, AttrError> {
    let Some(v) = value_of(node, name, expected)? else { return Ok(None) };
    match v.as_integer() {
        Some(i) if !matches!(v, AttrValue::BoolVal(_)) => {
            warn_converted(name, v.kind());
            Ok(Some(i))
        }
        _ => Err(AttrError::WrongKind { name: name.into(), expected, got: v.kind().field_name() }),
    }
}

/// Reads an integer attribute of any integer kind as `i64`.
pub fn get_i64(node: &Node, name: &str) -> Result<Option<i64>, AttrError> {
    const EXPECTED: &str = "an integer that fits in int64";
    integer(node, name, EXPECTED)?
        .map(|v| {
            i64::try_from(v).map_err(|_| AttrError::OutOfRange { name: name.into(), value: v, expected: EXPECTED })
        })
        .transpose()
}

/// Reads a non-negative integer attribute of any integer kind as `u64`.
pub fn get_u64(node: &Node, name: &str) -> Result<Option<u64>, AttrError> {
    const EXPECTED: &str = "a non-negative integer";
    integer(node, name, EXPECTED)?
        .map(|v| {
            u64::try_from(v).map_err(|_| AttrError::OutOfRange { name: name.into(), value: v, expected: EXPECTED })
        })
        .transpose()
}

/// Reads an integer attribute of any integer kind as `i32`.
pub fn get_i32(node: &Node, name: &str) -> Result<Option<i32>, AttrError> {
    const EXPECTED: &str = "an integer that fits in int32";
    integer(node, name, EXPECTED)?
        .map(|v| {
            i32::try_from(v).map_err(|_| AttrError::OutOfRange { name: name.into(), value: v, expected: EXPECTED })
        })
        .transpose()
}

/// Reads a boolean attribute: a `bool_val`, or an integer 0 or 1.
pub fn get_bool(node: &Node, name: &str) -> Result<Option<bool>, AttrError> {
    const EXPECTED: &str = "a bool (or an integer 0 or 1)";
    let Some(v) = value_of(node, name, EXPECTED)? else { return Ok(None) };
    if let AttrValue::BoolVal(b) = v {
        return Ok(Some(*b));
    }
    match v.as_integer() {
        Some(i @ (0 | 1)) => {
            warn_converted(name, v.kind());
            Ok(Some(i == 1))
        }
        Some(i) => Err(AttrError::OutOfRange { name: name.into(), value: i, expected: EXPECTED }),
        None => Err(AttrError::WrongKind { name: name.into(), expected: EXPECTED, got: v.kind().field_name() }),
    }
}

/// Reads a string attribute.
pub fn get_str<'a>(node: &'a Node, name: &str) -> Result<Option<&'a str>, AttrError> {
    const EXPECTED: &str = "a string_val";
    match value_of(node, name, EXPECTED)? {
        None => Ok(None),
        Some(AttrValue::StringVal(s)) => Ok(Some(s)),
        Some(v) => Err(AttrError::WrongKind { name: name.into(), expected: EXPECTED, got: v.kind().field_name() }),
    }
}

/// Reads a list of booleans (`bool_list`, or a list of 0/1 integers).
pub fn get_bool_list(node: &Node, name: &str) -> Result<Option<Vec<bool>>, AttrError> {
    const EXPECTED: &str = "a bool_list";
    let ints: Vec<i128> = match value_of(node, name, EXPECTED)? {
        None => return Ok(None),
        Some(AttrValue::BoolList(l)) => return Ok(Some(l.values.clone())),
        Some(AttrValue::Int32List(l)) => l.values.iter().map(|&v| v as i128).collect(),
        Some(AttrValue::Int64List(l)) => l.values.iter().map(|&v| v as i128).collect(),
        Some(AttrValue::Uint32List(l)) => l.values.iter().map(|&v| v as i128).collect(),
        Some(AttrValue::Uint64List(l)) => l.values.iter().map(|&v| v as i128).collect(),
        Some(v) => {
            return Err(AttrError::WrongKind { name: name.into(), expected: EXPECTED, got: v.kind().field_name() })
        }
    };
    ints.into_iter()
        .map(|i| match i {
            0 | 1 => Ok(i == 1),
            _ => Err(AttrError::OutOfRange { name: name.into(), value: i, expected: "a list of 0/1 values" }),
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chakra::schema::{AttributeProto, BoolList, StringList};

    fn node_with(name: &str, value: Option<AttrValue>) -> Node {
        Node {
            attr: vec![AttributeProto { name: name.into(), doc_string: String::new(), value }],
            ..Default::default()
        }
    }

    #[test]
    fn integer_kinds_convert_and_keep_their_value() {
        for v in [
            AttrValue::Int32Val(7),
            AttrValue::Int64Val(7),
            AttrValue::Uint32Val(7),
            AttrValue::Uint64Val(7),
            AttrValue::Sint64Val(7),
            AttrValue::Fixed64Val(7),
            AttrValue::Sfixed32Val(7),
        ] {
            assert_eq!(get_i64(&node_with("comm_size", Some(v.clone())), "comm_size"), Ok(Some(7)), "{v:?}");
            assert_eq!(get_u64(&node_with("comm_size", Some(v)), "comm_size"), Ok(Some(7)));
        }
    }

    #[test]
    fn is_cpu_op_accepts_an_integer() {
        assert_eq!(get_bool(&node_with("is_cpu_op", Some(AttrValue::Int32Val(0))), "is_cpu_op"), Ok(Some(false)));
        assert_eq!(get_bool(&node_with("is_cpu_op", Some(AttrValue::Int32Val(1))), "is_cpu_op"), Ok(Some(true)));
        assert!(matches!(
            get_bool(&node_with("is_cpu_op", Some(AttrValue::Int32Val(2))), "is_cpu_op"),
            Err(AttrError::OutOfRange { value: 2, .. })
        ));
    }

    #[test]
    fn a_present_value_never_becomes_zero() {
        let s = node_with("comm_size", Some(AttrValue::StringVal("1048576".into())));
        assert!(matches!(get_i64(&s, "comm_size"), Err(AttrError::WrongKind { got: "string_val", .. })));
        let empty = node_with("comm_size", None);
        assert!(matches!(get_i64(&empty, "comm_size"), Err(AttrError::NoValue { .. })));
        let neg = node_with("comm_size", Some(AttrValue::Int64Val(-1)));
        assert!(matches!(get_u64(&neg, "comm_size"), Err(AttrError::OutOfRange { value: -1, .. })));
        let flag = node_with("comm_size", Some(AttrValue::BoolVal(true)));
        assert!(get_i64(&flag, "comm_size").is_err());
        let list = node_with("comm_size", Some(AttrValue::StringList(StringList { values: vec![] })));
        assert!(get_u64(&list, "comm_size").is_err());
    }

    #[test]
    fn missing_is_none_and_lists_read() {
        assert_eq!(get_i64(&Node::default(), "comm_size"), Ok(None));
        let dims = node_with("involved_dim", Some(AttrValue::BoolList(BoolList { values: vec![true, false] })));
        assert_eq!(get_bool_list(&dims, "involved_dim"), Ok(Some(vec![true, false])));
        assert_eq!(get_str(&node_with("pg_name", Some(AttrValue::StringVal("3".into()))), "pg_name"), Ok(Some("3")));
    }
}
