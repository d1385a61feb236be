//! Everything about the MLCommons Chakra execution-trace format: the schema,
//! the binary and JSON codecs, typed attribute access, validation, statistics
//! and converters from other trace forms.
//!
//! Data flows from files into [`EtTrace`] values here; later stages (the
//! workload feeder) only ever see traces that came through this module.

pub mod attr;
pub mod codec;
pub mod convert;
pub mod error;
pub mod files;
pub mod graph;
pub mod json;
pub mod schema;
pub mod stats;
pub mod validate;

pub use codec::{decode_et_bytes, encode_et, read_et_file, write_et_file, EtReader, EtTrace, EtWriter};
pub use error::{ChakraError, Result};
pub use files::{
    check_output_paths, expand_workload, rank_file_path, read_trace, remove_stale_ranks, stage_trace, write_trace,
    write_workload, RankFile, TraceFormat, WrittenWorkload,
};
pub use schema::{AttrValue, AttributeProto, CollectiveCommType, GlobalMetadata, IoInfo, Node, NodeType};
