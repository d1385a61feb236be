//! The Chakra ET protobuf schema (`ChakraProtoMsg`, Chakra 1.0.0), written by hand
//! with `prost` derives so that no `protoc` is needed at build time.
//!
//! Field numbers, types and names follow `schema/protobuf/et_def.proto` of
//! mlcommons/chakra. prost's encoder is canonical (field-number order, proto3
//! defaults omitted, oneof members always emitted, numeric lists packed), which is
//! exactly how every real producer writes, so decode → encode is byte-exact.

/// Scalar or list value of an [`AttributeProto`]; the proto `oneof value`.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum AttrValue {
    /// `double_val = 3`
    #[prost(double, tag = "3")]
    DoubleVal(f64),
    /// `double_list = 4`
    #[prost(message, tag = "4")]
    DoubleList(DoubleList),
    /// `float_val = 5`
    #[prost(float, tag = "5")]
    FloatVal(f32),
    /// `float_list = 6`
    #[prost(message, tag = "6")]
    FloatList(FloatList),
    /// `int32_val = 7`
    #[prost(int32, tag = "7")]
    Int32Val(i32),
    /// `int32_list = 8`
    #[prost(message, tag = "8")]
    Int32List(Int32List),
    /// `int64_val = 9`
    #[prost(int64, tag = "9")]
    Int64Val(i64),
    /// `int64_list = 10`
    #[prost(message, tag = "10")]
    Int64List(Int64List),
    /// `uint32_val = 11`
    #[prost(uint32, tag = "11")]
    Uint32Val(u32),
    /// `uint32_list = 12`
    #[prost(message, tag = "12")]
    Uint32List(Uint32List),
    /// `uint64_val = 13`
    #[prost(uint64, tag = "13")]
    Uint64Val(u64),
    /// `uint64_list = 14`
    #[prost(message, tag = "14")]
    Uint64List(Uint64List),
    /// `sint32_val = 15`
    #[prost(sint32, tag = "15")]
    Sint32Val(i32),
    /// `sint32_list = 16`
    #[prost(message, tag = "16")]
    Sint32List(Sint32List),
    /// `sint64_val = 17`
    #[prost(sint64, tag = "17")]
    Sint64Val(i64),
    /// `sint64_list = 18`
    #[prost(message, tag = "18")]
    Sint64List(Sint64List),
    /// `fixed32_val = 19`
    #[prost(fixed32, tag = "19")]
    Fixed32Val(u32),
    /// `fixed32_list = 20`
    #[prost(message, tag = "20")]
    Fixed32List(Fixed32List),
    /// `fixed64_val = 21`
    #[prost(fixed64, tag = "21")]
    Fixed64Val(u64),
    /// `fixed64_list = 22`
    #[prost(message, tag = "22")]
    Fixed64List(Fixed64List),
    /// `sfixed32_val = 23`
    #[prost(sfixed32, tag = "23")]
    Sfixed32Val(i32),
    /// `sfixed32_list = 24`
    #[prost(message, tag = "24")]
    Sfixed32List(Sfixed32List),
    /// `sfixed64_val = 25`
    #[prost(sfixed64, tag = "25")]
    Sfixed64Val(i64),
    /// `sfixed64_list = 26`
    #[prost(message, tag = "26")]
    Sfixed64List(Sfixed64List),
    /// `bool_val = 27`
    #[prost(bool, tag = "27")]
    BoolVal(bool),
    /// `bool_list = 28`
    #[prost(message, tag = "28")]
    BoolList(BoolList),
    /// `string_val = 29`
    #[prost(string, tag = "29")]
    StringVal(String),
    /// `string_list = 30`
    #[prost(message, tag = "30")]
    StringList(StringList),
    /// `bytes_val = 31`
    #[prost(bytes = "vec", tag = "31")]
    BytesVal(Vec<u8>),
    /// `bytes_list = 32`
    #[prost(message, tag = "32")]
    BytesList(BytesList),
}

macro_rules! list_message {
    ($(#[$doc:meta] $name:ident, $kind:ident, $ty:ty;)*) => {$(
        #[$doc]
        #[derive(Clone, PartialEq, prost::Message)]
        pub struct $name {
            /// The list's elements (`repeated ... values = 1`).
            #[prost($kind, repeated, tag = "1")]
            pub values: Vec<$ty>,
        }
    )*};
}

list_message! {
    /// `DoubleList`
    DoubleList, double, f64;
    /// `FloatList`
    FloatList, float, f32;
    /// `Int32List`
    Int32List, int32, i32;
    /// `Int64List`
    Int64List, int64, i64;
    /// `Uint32List`
    Uint32List, uint32, u32;
    /// `Uint64List`
    Uint64List, uint64, u64;
    /// `Sint32List`
    Sint32List, sint32, i32;
    /// `Sint64List`
    Sint64List, sint64, i64;
    /// `Fixed32List`
    Fixed32List, fixed32, u32;
    /// `Fixed64List`
    Fixed64List, fixed64, u64;
    /// `Sfixed32List`
    Sfixed32List, sfixed32, i32;
    /// `Sfixed64List`
    Sfixed64List, sfixed64, i64;
    /// `BoolList`
    BoolList, bool, bool;
    /// `StringList`
    StringList, string, String;
}

/// `BytesList`
#[derive(Clone, PartialEq, prost::Message)]
pub struct BytesList {
    /// The list's elements (`repeated bytes values = 1`).
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub values: Vec<Vec<u8>>,
}

/// A named attribute of a node or of the global metadata.
#[derive(Clone, PartialEq, prost::Message)]
pub struct AttributeProto {
    /// Attribute name, e.g. `comm_size`.
    #[prost(string, tag = "1")]
    pub name: String,
    /// Free-form documentation string (rarely used).
    #[prost(string, tag = "2")]
    pub doc_string: String,
    /// The value; `None` when the producer set no member of the oneof.
    #[prost(
        oneof = "AttrValue",
        tags = "3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32"
    )]
    pub value: Option<AttrValue>,
}

/// The first message of a current-format `.et` file.
#[derive(Clone, PartialEq, prost::Message)]
pub struct GlobalMetadata {
    /// Schema version, e.g. `"1.0.0"`.
    #[prost(string, tag = "1")]
    pub version: String,
    /// Free-form attributes.
    #[prost(message, repeated, tag = "2")]
    pub attr: Vec<AttributeProto>,
}

/// Python-`str()` renderings of an operator's inputs or outputs.
#[derive(Clone, PartialEq, prost::Message)]
pub struct IoInfo {
    /// Values, e.g. `"[[4, 5, 0, 64, 4, 'cuda:0']]"`.
    #[prost(string, tag = "1")]
    pub values: String,
    /// Shapes.
    #[prost(string, tag = "2")]
    pub shapes: String,
    /// Types.
    #[prost(string, tag = "3")]
    pub types: String,
}

/// One node of an execution trace.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Node {
    /// Node id, unique within the file (not across ranks).
    #[prost(uint64, tag = "1")]
    pub id: u64,
    /// Operator name.
    #[prost(string, tag = "2")]
    pub name: String,
    /// A [`NodeType`] value; kept as the raw integer so unknown values survive a round trip.
    #[prost(enumeration = "NodeType", tag = "3")]
    pub r#type: i32,
    /// Control dependencies (ids of nodes that must finish first).
    #[prost(uint64, repeated, tag = "4")]
    pub ctrl_deps: Vec<u64>,
    /// Data dependencies (ids of nodes that must finish first).
    #[prost(uint64, repeated, tag = "5")]
    pub data_deps: Vec<u64>,
    /// Start time in the original run (µs).
    #[prost(uint64, tag = "6")]
    pub start_time_micros: u64,
    /// Measured duration (µs); compute nodes replay it.
    #[prost(uint64, tag = "7")]
    pub duration_micros: u64,
    /// Operator inputs.
    #[prost(message, optional, tag = "8")]
    pub inputs: Option<IoInfo>,
    /// Operator outputs.
    #[prost(message, optional, tag = "9")]
    pub outputs: Option<IoInfo>,
    /// Attributes (`comm_type`, `comm_size`, `is_cpu_op`, ...).
    #[prost(message, repeated, tag = "10")]
    pub attr: Vec<AttributeProto>,
}

/// `Tensor`: defined by the schema, written by no known producer.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Tensor {
    /// Tensor id.
    #[prost(uint64, tag = "1")]
    pub tensor_id: u64,
    /// Storage id.
    #[prost(uint64, tag = "2")]
    pub storage_id: u64,
    /// Offset into the storage.
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    /// Element count.
    #[prost(uint64, tag = "4")]
    pub num_elem: u64,
    /// Bytes per element.
    #[prost(uint64, tag = "5")]
    pub elem_bytes: u64,
    /// Device string.
    #[prost(string, tag = "6")]
    pub device: String,
}

/// Kind of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum NodeType {
    /// Unset / invalid; ASTRA-sim skips it.
    InvalidNode = 0,
    /// Metadata only; takes no time.
    MetadataNode = 1,
    /// Remote memory load.
    MemLoadNode = 2,
    /// Remote memory store.
    MemStoreNode = 3,
    /// Computation.
    CompNode = 4,
    /// Point-to-point send.
    CommSendNode = 5,
    /// Point-to-point receive.
    CommRecvNode = 6,
    /// Collective communication.
    CommCollNode = 7,
}

/// Collective kind carried in a node's `comm_type` attribute.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, prost::Enumeration)]
#[repr(i32)]
pub enum CollectiveCommType {
    /// All-reduce.
    AllReduce = 0,
    /// Reduce.
    Reduce = 1,
    /// All-gather.
    AllGather = 2,
    /// Gather.
    Gather = 3,
    /// Scatter.
    Scatter = 4,
    /// Broadcast.
    Broadcast = 5,
    /// All-to-all.
    AllToAll = 6,
    /// Reduce-scatter.
    ReduceScatter = 7,
    /// Reduce-scatter with equal blocks.
    ReduceScatterBlock = 8,
    /// Barrier.
    Barrier = 9,
}

impl NodeType {
    /// Every node type, in value order.
    pub const ALL: [NodeType; 8] = [
        NodeType::InvalidNode,
        NodeType::MetadataNode,
        NodeType::MemLoadNode,
        NodeType::MemStoreNode,
        NodeType::CompNode,
        NodeType::CommSendNode,
        NodeType::CommRecvNode,
        NodeType::CommCollNode,
    ];

    /// The schema's name, e.g. `COMP_NODE`.
    pub fn proto_name(self) -> &'static str {
        match self {
            NodeType::InvalidNode => "INVALID_NODE",
            NodeType::MetadataNode => "METADATA_NODE",
            NodeType::MemLoadNode => "MEM_LOAD_NODE",
            NodeType::MemStoreNode => "MEM_STORE_NODE",
            NodeType::CompNode => "COMP_NODE",
            NodeType::CommSendNode => "COMM_SEND_NODE",
            NodeType::CommRecvNode => "COMM_RECV_NODE",
            NodeType::CommCollNode => "COMM_COLL_NODE",
        }
    }

    /// Parses a schema name such as `COMP_NODE`.
    pub fn from_proto_name(name: &str) -> Option<NodeType> {
        NodeType::ALL.into_iter().find(|t| t.proto_name() == name)
    }
}

impl CollectiveCommType {
    /// Every collective type, in value order.
    pub const ALL: [CollectiveCommType; 10] = [
        CollectiveCommType::AllReduce,
        CollectiveCommType::Reduce,
        CollectiveCommType::AllGather,
        CollectiveCommType::Gather,
        CollectiveCommType::Scatter,
        CollectiveCommType::Broadcast,
        CollectiveCommType::AllToAll,
        CollectiveCommType::ReduceScatter,
        CollectiveCommType::ReduceScatterBlock,
        CollectiveCommType::Barrier,
    ];

    /// The schema's name, e.g. `ALL_REDUCE`.
    pub fn proto_name(self) -> &'static str {
        match self {
            CollectiveCommType::AllReduce => "ALL_REDUCE",
            CollectiveCommType::Reduce => "REDUCE",
            CollectiveCommType::AllGather => "ALL_GATHER",
            CollectiveCommType::Gather => "GATHER",
            CollectiveCommType::Scatter => "SCATTER",
            CollectiveCommType::Broadcast => "BROADCAST",
            CollectiveCommType::AllToAll => "ALL_TO_ALL",
            CollectiveCommType::ReduceScatter => "REDUCE_SCATTER",
            CollectiveCommType::ReduceScatterBlock => "REDUCE_SCATTER_BLOCK",
            CollectiveCommType::Barrier => "BARRIER",
        }
    }

    /// Parses a schema name such as `ALL_REDUCE`.
    pub fn from_proto_name(name: &str) -> Option<CollectiveCommType> {
        CollectiveCommType::ALL.into_iter().find(|t| t.proto_name() == name)
    }
}

impl Node {
    /// The node's type, or `None` for a value outside the schema.
    pub fn node_type(&self) -> Option<NodeType> {
        NodeType::try_from(self.r#type).ok()
    }

    /// The first attribute named `name`, if any.
    pub fn attr(&self, name: &str) -> Option<&AttributeProto> {
        self.attr.iter().find(|a| a.name == name)
    }
}

/// A node name for one-line messages: names longer than 80 characters are
/// cut to their first 77 and `...` (a trace may carry megabytes of name).
pub fn short_name(name: &str) -> std::borrow::Cow<'_, str> {
    const MAX: usize = 80;
    if name.chars().count() <= MAX {
        return std::borrow::Cow::Borrowed(name);
    }
    let head: String = name.chars().take(MAX - 3).collect();
    std::borrow::Cow::Owned(head + "...")
}
