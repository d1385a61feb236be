//! ASTRA-sim 1.0 text workloads → per-rank Chakra ETs.
//!
//! Reproduces `chakra_converter Text --input F --output PREFIX --num-npus N --num-passes P`
//! (mlcommons/chakra `src/converter/text_converter.py`) in two steps: [`TextWorkload::parse`]
//! turns the file into a typed workload and reports every problem with the file, the line
//! and what was expected; [`TextWorkload::to_traces`] builds one [`EtTrace`] per rank.
//! [`convert_text_workload`] does both.
//!
//! # Input
//!
//! ```text
//! MODEL                        parallelism (HYBRID_DLRM[_ENHANCED] also take the last bottom layer)
//! 6                            number of layer lines
//! name -1 fwd_comp fwd_comm_type fwd_comm_size ig_comp ig_comm_type ig_comm_size wg_comp wg_comm_type wg_comm_size wg_update
//! ...
//! ```
//!
//! Columns are separated by any whitespace; CRLF line ends, trailing whitespace, blank
//! lines and columns after the twelfth are accepted (real files have all of them). The
//! second column is reserved (ASTRA-sim 1.0's dependency, always `-1`) and ignored, as
//! Chakra does. Comm types are `NONE`, `ALLREDUCE`, `ALLTOALL`, `ALLGATHER` and
//! `REDUCESCATTER`. A `HYBRID_CUSTOMIZED` file carries each layer's own parallelism in a
//! thirteenth column: `DATA`, `MODEL`, `HYBRID_DATA_MODEL` or `HYBRID_MODEL_DATA` (see the
//! HYBRID_CUSTOMIZED section below).
//!
//! # Output (what Chakra writes)
//!
//! * Each rank's trace starts with a GlobalMetadata without `version` whose attributes are
//!   `schema` = [`SCHEMA_VERSION`] and `input_file` = the input text with line ends turned
//!   into `\n` (Python's text mode), both `string_val`.
//! * Node ids count up across ranks: rank `r` starts where rank `r - 1` stopped.
//! * Compute nodes are `COMP_NODE_<layer>_<FWD|BWD_IG|BWD_WG>` with the compute time in
//!   `duration_micros` and no attributes. Collectives are `COMM_COLL_NODE_<layer>_<TYPE>`
//!   with `comm_type` and `comm_size` (bytes), both `int64_val`. No `is_cpu_op`, no
//!   `involved_dim`, dependencies in `data_deps` only.
//! * `NONE` becomes `comm_type` 0 (ALL_REDUCE) wherever the parallelism places a
//!   collective anyway (MICRO, DATA's weight gradient, MODEL's and the hybrids' forward and
//!   input gradient, DLRM's embedding input gradient; in HYBRID_CUSTOMIZED, as the layer's
//!   own parallelism places them), with the size from the file.
//!
//! Per pass, with `L` layers (except in MICRO, a pass's forward waits for the same layer's
//! weight gradient, or its collective, of the previous pass):
//!
//! | parallelism | collectives | nodes per pass |
//! |---|---|---|
//! | `MICRO` | the weight-gradient collective of each layer, no dependencies | `L` |
//! | `DATA` | weight gradient; backward is WG, its collective, then IG (none for layer 0) | `4L - 1` |
//! | `MODEL` | forward and input gradient (none for layer 0); backward is IG, its collective, WG | `5L - 1` |
//! | `HYBRID_DATA_MODEL`, `HYBRID_MODEL_DATA` | all three (no IG collective for layer 0); the first names its IG collectives `<layer>_IG_COMM__<TYPE>` | `6L - 1` |
//! | `HYBRID_DLRM[_ENHANCED] n` | forward `ALLTOALL`s, weight gradients other than `NONE`, and layer 0's input-gradient collective after layer `n + 1`'s input gradient | varies |
//! | `HYBRID_CUSTOMIZED` | each layer's as for its own parallelism (none on IG for layer 0); every layer's backward is IG, its collective, WG, its collective | `3L` + collectives |
//!
//! In all but MICRO and DLRM a layer's forward waits for the previous layer's forward
//! collective, or its forward compute where it has none, and a layer's backward starts after
//! the next layer's last backward compute and that layer's input-gradient collective (the
//! last layer's after the last forward node).
//!
//! # HYBRID_CUSTOMIZED
//!
//! Chakra's converter has no rule for it (it stops with "Unsupported parallelism type"), so
//! the rule here is ASTRA-sim 1.0's (astra-sim/astra-sim before 2.0,
//! `astra-sim/workload/Workload.cc`: `initialize_workload`, `decode_involved_dimensions`,
//! `iterate_hybrid_parallel_customized`; `Layer.cc`: `issue_*_comm`), written with Chakra's
//! node conventions:
//!
//! * ASTRA-sim runs every layer through one loop, the same as `HYBRID_DATA_MODEL`'s: forward
//!   compute then its collective, which the next layer waits for; backward from the last
//!   layer, input-gradient compute, its collective (none for layer 0), weight-gradient
//!   compute, its collective, and the previous layer's input gradient waits for this layer's
//!   input-gradient collective; the next pass's forward of a layer waits for its
//!   weight-gradient collective. Here that is the `HYBRID_DATA_MODEL` layout above, for every
//!   layer, so each layer has all three computes, layer 0 included, and a `DATA` layer's
//!   backward is IG then WG (a `DATA` file's is WG then IG).
//! * The thirteenth column only chooses the network dimensions each of the layer's three
//!   collectives spans: `DATA` puts the weight gradient on all dimensions and the forward and
//!   input gradient on none, `MODEL` the reverse, the hybrids split the dimensions between the
//!   model-parallel phases (forward, input gradient) and the data-parallel one (weight
//!   gradient). A collective that spans no dimension is not issued ("all dims disabled").
//!   So a `DATA` layer has a weight-gradient collective only, a `MODEL` layer forward and
//!   input-gradient collectives, a hybrid layer all three: what a file of that parallelism
//!   gives the layer.
//! * Each collective is written as a file of the layer's parallelism writes it: its name
//!   (`<layer>_IG_COMM__<TYPE>` for a `HYBRID_DATA_MODEL` layer's input gradient), `NONE` as
//!   ALL_REDUCE wherever the layer's parallelism places a collective, and the order of a
//!   forward compute's dependencies (the previous pass first for the hybrids, the previous
//!   layer first for `DATA` and `MODEL`). A forward waits for the previous pass's
//!   weight-gradient collective, or its weight-gradient compute where the layer has none.
//!
//! A `HYBRID_CUSTOMIZED` file whose layers all name `MODEL`, `HYBRID_DATA_MODEL` or
//! `HYBRID_MODEL_DATA` therefore converts to the same nodes as a file of that parallelism.
//! ASTRA-sim 1.0 itself issues nothing for `NONE` (here, as in Chakra's rules, a placed
//! `NONE` is an ALL_REDUCE of the given size), and it spreads a hybrid layer's collectives
//! over disjoint network dimensions, which a Chakra trace does not record.
//!
//! # Deviations from Chakra
//!
//! Chakra's converter accepts some inputs it then mishandles; these are errors here:
//! unknown comm types (Chakra silently writes ALL_REDUCE), a layer count that disagrees
//! with the layer lines (Chakra ignores the count), negative or non-numeric values, a DLRM
//! last bottom layer of 0 or a DLRM layer 0 whose forward collective is not `ALLTOALL`
//! (Chakra crashes on both), and zero NPUs or passes (Chakra writes empty traces). Blank
//! lines are skipped (Chakra fails on them), and ASTRA-sim 1.0's header form
//! `HYBRID_DLRM DLRM_LAST_BOTTOM_LAYER: n` is accepted besides Chakra's `HYBRID_DLRM n`.
//! A `HYBRID_CUSTOMIZED` layer whose thirteenth column is missing or names another
//! parallelism is an error naming the file and the line (ASTRA-sim 1.0 treats an unknown
//! name as a layer without collectives).

use std::path::{Path, PathBuf};

use crate::chakra::codec::EtTrace;
use crate::chakra::error::{ChakraError, Result};
use crate::chakra::schema::{AttrValue, AttributeProto, CollectiveCommType, GlobalMetadata, Node, NodeType};

/// The `schema` attribute the converter writes into each trace's GlobalMetadata: the value
/// of the Chakra revision that made the ASTRA-sim tutorial traces (MICRO 2024), which these
/// traces reproduce byte for byte. Chakra revisions differ here (a later one writes
/// `1.0.2-chakra.1.0.0`, an earlier one wrote `comm_size` as `uint64_val`).
pub const SCHEMA_VERSION: &str = "1.0.2-chakra.0.0.4";

/// Largest text workload read, in bytes (real ones are a few KiB).
pub const MAX_INPUT_BYTES: u64 = 64 << 20;

/// Largest number of nodes one conversion may create, summed over all ranks (each rank's
/// trace counts as one more), so that a mistyped NPU or pass count fails instead of
/// exhausting memory.
pub const MAX_TOTAL_NODES: u64 = 50_000_000;

/// Largest total size of the `input_file` metadata copies (one per rank), in bytes.
pub const MAX_TOTAL_METADATA_BYTES: u64 = 4 << 30;

/// Options of the text converter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TextOptions {
    /// Number of ranks (NPUs) to write a trace for (`--num-npus`); at least 1.
    pub npus: u32,
    /// Number of training passes (iterations) per rank (`--num-passes`); at least 1.
    pub passes: u32,
}

/// Converts the text workload at `path` into one trace per rank (index = rank).
pub fn convert_text_workload(path: &Path, opts: &TextOptions) -> Result<Vec<EtTrace>> {
    check_options(path, opts)?;
    TextWorkload::read(path)?.to_traces(opts)
}

/// The parallelism named on the first line of a text workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parallelism {
    /// `MICRO`: only each layer's weight-gradient collective, unconnected.
    Micro,
    /// `DATA`: a weight-gradient collective per layer.
    Data,
    /// `MODEL`: forward and input-gradient collectives.
    Model,
    /// `HYBRID_DATA_MODEL`: forward, input-gradient and weight-gradient collectives.
    HybridDataModel,
    /// `HYBRID_MODEL_DATA`: as [`Parallelism::HybridDataModel`], with plain collective names.
    HybridModelData,
    /// `HYBRID_DLRM n`: embedding all-to-alls plus data-parallel MLP layers.
    HybridDlrm {
        /// Index of the last bottom-MLP layer (`n`); the next layer waits for layer 0's
        /// forward all-to-all.
        last_bottom_layer: usize,
    },
    /// `HYBRID_DLRM_ENHANCED n`: converted exactly like [`Parallelism::HybridDlrm`].
    HybridDlrmEnhanced {
        /// Index of the last bottom-MLP layer.
        last_bottom_layer: usize,
    },
    /// `HYBRID_CUSTOMIZED`: each layer names its own parallelism ([`LayerParallelism`]),
    /// which decides its collectives; every layer runs the hybrid backward order.
    HybridCustomized,
}

impl Parallelism {
    /// The first-line keyword, e.g. `HYBRID_DATA_MODEL`.
    pub fn keyword(self) -> &'static str {
        match self {
            Parallelism::Micro => "MICRO",
            Parallelism::Data => "DATA",
            Parallelism::Model => "MODEL",
            Parallelism::HybridDataModel => "HYBRID_DATA_MODEL",
            Parallelism::HybridModelData => "HYBRID_MODEL_DATA",
            Parallelism::HybridDlrm { .. } => "HYBRID_DLRM",
            Parallelism::HybridDlrmEnhanced { .. } => "HYBRID_DLRM_ENHANCED",
            Parallelism::HybridCustomized => "HYBRID_CUSTOMIZED",
        }
    }

    /// The DLRM last bottom layer, `None` for the other kinds.
    pub fn last_bottom_layer(self) -> Option<usize> {
        match self {
            Parallelism::HybridDlrm { last_bottom_layer } | Parallelism::HybridDlrmEnhanced { last_bottom_layer } => {
                Some(last_bottom_layer)
            }
            _ => None,
        }
    }
}

/// Keywords accepted on the first line, for error messages.
const PARALLELISM_KEYWORDS: &str = "MICRO, DATA, MODEL, HYBRID_DATA_MODEL, HYBRID_MODEL_DATA, \
     HYBRID_DLRM <last bottom layer>, HYBRID_DLRM_ENHANCED <last bottom layer> or HYBRID_CUSTOMIZED";

/// A layer's own parallelism in a `HYBRID_CUSTOMIZED` workload (thirteenth column): which
/// of the layer's phases communicate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LayerParallelism {
    /// `DATA`: a weight-gradient collective only.
    Data,
    /// `MODEL`: forward and input-gradient collectives.
    Model,
    /// `HYBRID_DATA_MODEL`: all three, the input gradient's named `<layer>_IG_COMM__<TYPE>`.
    HybridDataModel,
    /// `HYBRID_MODEL_DATA`: all three.
    HybridModelData,
}

impl LayerParallelism {
    /// The column's keyword, e.g. `MODEL`.
    pub fn keyword(self) -> &'static str {
        match self {
            LayerParallelism::Data => "DATA",
            LayerParallelism::Model => "MODEL",
            LayerParallelism::HybridDataModel => "HYBRID_DATA_MODEL",
            LayerParallelism::HybridModelData => "HYBRID_MODEL_DATA",
        }
    }

    fn from_keyword(word: &str) -> Option<Self> {
        [Self::Data, Self::Model, Self::HybridDataModel, Self::HybridModelData]
            .into_iter()
            .find(|p| p.keyword() == word)
    }
}

/// How one layer of a DATA, MODEL, hybrid or HYBRID_CUSTOMIZED workload is laid out: which
/// phases have a collective and in which order its nodes come and depend on each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct LayerLayout {
    /// A forward collective after the forward compute; the next layer's forward waits for it.
    fwd_comm: bool,
    /// An input-gradient collective after the input-gradient compute (never for layer 0);
    /// the previous layer's backward waits for it.
    ig_comm: bool,
    /// A weight-gradient collective after the weight-gradient compute; the next pass's
    /// forward waits for it (for the weight-gradient compute where there is none).
    wg_comm: bool,
    /// Backward is WG, its collective, then IG (no IG for layer 0), as in Chakra's DATA
    /// rule; otherwise IG, its collective, then WG and its collective.
    wg_first: bool,
    /// A forward compute lists the previous pass's node before the previous layer's (the
    /// hybrid rules) instead of after it (DATA, MODEL).
    previous_pass_first: bool,
    /// Put between the layer name and the type in the input-gradient collective's name.
    ig_suffix: &'static str,
}

impl LayerLayout {
    /// Chakra's DATA rule.
    const DATA: LayerLayout = LayerLayout {
        fwd_comm: false,
        ig_comm: false,
        wg_comm: true,
        wg_first: true,
        previous_pass_first: false,
        ig_suffix: "",
    };
    /// Chakra's MODEL rule.
    const MODEL: LayerLayout = LayerLayout {
        fwd_comm: true,
        ig_comm: true,
        wg_comm: false,
        wg_first: false,
        previous_pass_first: false,
        ig_suffix: "",
    };
    /// Chakra's HYBRID_MODEL_DATA rule.
    const HYBRID_MODEL_DATA: LayerLayout = LayerLayout {
        fwd_comm: true,
        ig_comm: true,
        wg_comm: true,
        wg_first: false,
        previous_pass_first: true,
        ig_suffix: "",
    };
    /// Chakra's HYBRID_DATA_MODEL rule: HYBRID_MODEL_DATA's with other IG collective names.
    const HYBRID_DATA_MODEL: LayerLayout = LayerLayout { ig_suffix: "_IG_COMM_", ..Self::HYBRID_MODEL_DATA };

    /// The layout of every layer of a file of parallelism `p`; `None` for MICRO, DLRM and
    /// HYBRID_CUSTOMIZED, whose layers are not all alike.
    fn whole_file(p: Parallelism) -> Option<LayerLayout> {
        match p {
            Parallelism::Data => Some(Self::DATA),
            Parallelism::Model => Some(Self::MODEL),
            Parallelism::HybridDataModel => Some(Self::HYBRID_DATA_MODEL),
            Parallelism::HybridModelData => Some(Self::HYBRID_MODEL_DATA),
            _ => None,
        }
    }

    /// The layout of a HYBRID_CUSTOMIZED layer of parallelism `p`: that parallelism's
    /// collectives, in the backward order ASTRA-sim 1.0 runs every such layer in (IG first).
    fn customized(p: LayerParallelism) -> LayerLayout {
        match p {
            LayerParallelism::Data => LayerLayout { wg_first: false, ..Self::DATA },
            LayerParallelism::Model => Self::MODEL,
            LayerParallelism::HybridDataModel => Self::HYBRID_DATA_MODEL,
            LayerParallelism::HybridModelData => Self::HYBRID_MODEL_DATA,
        }
    }

    /// Nodes one pass gives layer `index`.
    fn nodes(self, index: usize) -> u64 {
        let first = index == 0;
        let comps = if self.wg_first && first { 2 } else { 3 };
        comps + u64::from(self.fwd_comm) + u64::from(self.ig_comm && !first) + u64::from(self.wg_comm)
    }
}

/// A collective named in a layer line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommKind {
    /// `NONE`: no collective (written as ALL_REDUCE where Chakra places one anyway).
    None,
    /// `ALLREDUCE`
    AllReduce,
    /// `ALLTOALL`
    AllToAll,
    /// `ALLGATHER`
    AllGather,
    /// `REDUCESCATTER`
    ReduceScatter,
}

impl CommKind {
    /// The keyword as written in the file; also the suffix of the collective's node name.
    pub fn keyword(self) -> &'static str {
        match self {
            CommKind::None => "NONE",
            CommKind::AllReduce => "ALLREDUCE",
            CommKind::AllToAll => "ALLTOALL",
            CommKind::AllGather => "ALLGATHER",
            CommKind::ReduceScatter => "REDUCESCATTER",
        }
    }

    /// The `comm_type` Chakra writes: `NONE` becomes ALL_REDUCE (value 0).
    pub fn collective(self) -> CollectiveCommType {
        match self {
            CommKind::None | CommKind::AllReduce => CollectiveCommType::AllReduce,
            CommKind::AllToAll => CollectiveCommType::AllToAll,
            CommKind::AllGather => CollectiveCommType::AllGather,
            CommKind::ReduceScatter => CollectiveCommType::ReduceScatter,
        }
    }

    fn from_keyword(word: &str) -> Option<Self> {
        [Self::None, Self::AllReduce, Self::AllToAll, Self::AllGather, Self::ReduceScatter]
            .into_iter()
            .find(|c| c.keyword() == word)
    }
}

/// One phase (forward, input gradient or weight gradient) of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase {
    /// Compute time as written (ASTRA-sim 1.0 cycles); becomes `duration_micros` unchanged.
    pub comp_time: u64,
    /// The phase's collective.
    pub comm: CommKind,
    /// The collective's size in bytes (at most `i64::MAX`, as it is written as `int64_val`).
    pub comm_size: u64,
}

/// One layer line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextLayer {
    /// Layer name (first column), used in node names.
    pub name: String,
    /// 1-based line number in the file.
    pub line: usize,
    /// Forward pass (columns 3–5).
    pub fwd: Phase,
    /// Input-gradient pass (columns 6–8).
    pub ig: Phase,
    /// Weight-gradient pass (columns 9–11).
    pub wg: Phase,
    /// Weight-update time (column 12); parsed but not converted, as in Chakra.
    pub wg_update_time: u64,
    /// The layer's own parallelism (column 13), only in `HYBRID_CUSTOMIZED` workloads.
    pub parallelism: Option<LayerParallelism>,
}

/// A parsed and validated ASTRA-sim 1.0 text workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TextWorkload {
    /// The file it came from (named in later errors).
    pub path: PathBuf,
    /// The whole input with line ends normalised to `\n`: the `input_file` metadata.
    pub text: String,
    /// The first line's parallelism.
    pub parallelism: Parallelism,
    /// The layers in file order.
    pub layers: Vec<TextLayer>,
}

/// Names of the twelve layer columns, for error messages (1-based column `i` is `[i - 1]`).
const COLUMNS: [&str; 12] = [
    "name",
    "reserved",
    "fwd_comp",
    "fwd_comm_type",
    "fwd_comm_size",
    "ig_comp",
    "ig_comm_type",
    "ig_comm_size",
    "wg_comp",
    "wg_comm_type",
    "wg_comm_size",
    "wg_update",
];

impl TextWorkload {
    /// Reads and parses the text workload at `path`.
    pub fn read(path: &Path) -> Result<TextWorkload> {
        let meta = std::fs::metadata(path).map_err(|e| ChakraError::io(path, "cannot open", e))?;
        if meta.is_dir() {
            return Err(ChakraError::IsDirectory { path: path.to_path_buf() });
        }
        if meta.len() > MAX_INPUT_BYTES {
            return Err(ChakraError::format(
                path,
                "file",
                format!(
                    "{} bytes; expected an ASTRA-sim 1.0 text workload of at most {MAX_INPUT_BYTES} bytes",
                    meta.len()
                ),
            ));
        }
        let bytes = std::fs::read(path).map_err(|e| ChakraError::io(path, "cannot read", e))?;
        let text = String::from_utf8(bytes).map_err(|e| {
            let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
            let line = 1 + valid.iter().filter(|&&b| b == b'\n').count();
            ChakraError::format(path, format!("line {line}"), "invalid UTF-8; expected an ASTRA-sim 1.0 text workload")
        })?;
        TextWorkload::parse(&text, path)
    }

    /// Parses workload text; `path` is only used in error messages.
    pub fn parse(text: &str, path: &Path) -> Result<TextWorkload> {
        // Python's text mode turns "\r\n" and "\r" into "\n"; the metadata keeps that form.
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let err = |line: usize, what: String| ChakraError::format(path, format!("line {line}"), what);
        let mut lines = text.split('\n').enumerate().map(|(i, l)| (i + 1, l));

        let header = lines.next().map_or("", |(_, l)| l);
        let header = header.strip_prefix('\u{feff}').unwrap_or(header);
        let parallelism = parse_parallelism(header).map_err(|what| err(1, what))?;

        let count = match lines.next() {
            Some((_, l)) => parse_count(l).map_err(|what| err(2, what))?,
            None => return Err(err(2, "the file ends here; expected the number of layer lines".into())),
        };

        let customized = parallelism == Parallelism::HybridCustomized;
        let mut layers = Vec::new();
        for (line, content) in lines {
            let cols: Vec<&str> = content.split_whitespace().collect();
            if cols.is_empty() {
                continue;
            }
            layers.push(parse_layer(&cols, line, customized).map_err(|what| err(line, what))?);
        }
        if layers.len() != count {
            let lines = match (layers.first(), layers.last()) {
                (Some(a), Some(b)) => format!(" (lines {}-{})", a.line, b.line),
                _ => String::new(),
            };
            return Err(err(
                2,
                format!(
                    "the layer count is {count} but the file has {} layer lines{lines}; expected them to agree",
                    layers.len()
                ),
            ));
        }
        if layers.is_empty() {
            return Err(err(2, "the layer count is 0; expected at least one layer".into()));
        }
        if let Some(lbl) = parallelism.last_bottom_layer() {
            if lbl < layers.len() && layers[0].fwd.comm != CommKind::AllToAll {
                return Err(err(
                    layers[0].line,
                    format!(
                        "{}: layer {lbl} (the last bottom layer) waits for layer 0's forward all-to-all; \
                         expected ALLTOALL in column 4 (fwd_comm_type), found {}",
                        parallelism.keyword(),
                        layers[0].fwd.comm.keyword()
                    ),
                ));
            }
        }
        Ok(TextWorkload { path: path.to_path_buf(), text, parallelism, layers })
    }

    /// Number of nodes one pass of one rank produces (for a HYBRID_CUSTOMIZED layer without
    /// its parallelism, which [`TextWorkload::to_traces`] refuses, none).
    pub fn nodes_per_pass(&self) -> u64 {
        let l = self.layers.len() as u64;
        match self.parallelism {
            Parallelism::Micro => l,
            Parallelism::Data
            | Parallelism::Model
            | Parallelism::HybridDataModel
            | Parallelism::HybridModelData
            | Parallelism::HybridCustomized => {
                (0..self.layers.len()).filter_map(|i| Some(self.layout(i)?.nodes(i))).sum()
            }
            Parallelism::HybridDlrm { last_bottom_layer } | Parallelism::HybridDlrmEnhanced { last_bottom_layer } => {
                let a2a = self.layers.iter().filter(|x| x.fwd.comm == CommKind::AllToAll).count();
                let wg = self.layers.iter().filter(|x| x.wg.comm != CommKind::None).count();
                let embedding_ig = last_bottom_layer.checked_add(1).is_some_and(|n| n < self.layers.len());
                (3 * l).saturating_sub(1) + a2a as u64 + wg as u64 + u64::from(embedding_ig)
            }
        }
    }

    /// The layout of layer `index`: the file's for DATA, MODEL and the hybrids, the layer's
    /// own for HYBRID_CUSTOMIZED; `None` for MICRO and DLRM, and for a HYBRID_CUSTOMIZED
    /// layer without its parallelism.
    fn layout(&self, index: usize) -> Option<LayerLayout> {
        match self.parallelism {
            Parallelism::HybridCustomized => self.layers[index].parallelism.map(LayerLayout::customized),
            p => LayerLayout::whole_file(p),
        }
    }

    /// Builds one trace per rank (index = rank), as Chakra's converter writes them.
    pub fn to_traces(&self, opts: &TextOptions) -> Result<Vec<EtTrace>> {
        check_options(&self.path, opts)?;
        // The fields are public, so re-check what parsing guarantees.
        if self.parallelism == Parallelism::HybridCustomized {
            if let Some(l) = self.layers.iter().find(|l| l.parallelism.is_none()) {
                return Err(ChakraError::format(
                    &self.path,
                    format!("line {}", l.line),
                    "HYBRID_CUSTOMIZED: the layer has no parallelism of its own; expected \
                     column 13 (parallelism) to be DATA, MODEL, HYBRID_DATA_MODEL or \
                     HYBRID_MODEL_DATA",
                ));
            }
        }
        if self.layers.is_empty() {
            return Err(ChakraError::format(&self.path, "line 2", "no layers; expected at least one"));
        }
        if let Some(l) = self.layers.iter().find(|l| [l.fwd, l.ig, l.wg].iter().any(|p| p.comm_size > i64::MAX as u64))
        {
            return Err(ChakraError::format(
                &self.path,
                format!("line {}", l.line),
                format!("a comm size does not fit comm_size (int64); expected at most {}", i64::MAX),
            ));
        }
        let per_rank = self.nodes_per_pass().saturating_mul(u64::from(opts.passes));
        // Count each rank's trace like one more node, so that many tiny ranks are bounded too.
        let total = per_rank.saturating_add(1).saturating_mul(u64::from(opts.npus));
        let metadata_bytes = (self.text.len() as u64).saturating_mul(u64::from(opts.npus));
        if total > MAX_TOTAL_NODES || metadata_bytes > MAX_TOTAL_METADATA_BYTES {
            return Err(ChakraError::format(
                &self.path,
                "options",
                format!(
                    "{} NPUs x {} passes would create {total} nodes and {metadata_bytes} bytes of \
                     metadata; expected at most {MAX_TOTAL_NODES} nodes and {MAX_TOTAL_METADATA_BYTES} bytes",
                    opts.npus, opts.passes
                ),
            ));
        }
        let metadata = GlobalMetadata {
            version: String::new(),
            attr: vec![string_attr("schema", SCHEMA_VERSION), string_attr("input_file", &self.text)],
        };
        // Empty for MICRO and DLRM; every layer has one otherwise (checked above).
        let layouts: Vec<LayerLayout> = (0..self.layers.len()).map_while(|i| self.layout(i)).collect();
        let mut next_id = 0u64;
        let mut traces = Vec::with_capacity(opts.npus as usize);
        for _ in 0..opts.npus {
            let mut rank = RankBuilder {
                layers: &self.layers,
                next_id: &mut next_id,
                nodes: Vec::with_capacity(per_rank as usize),
                emitted: vec![Emitted::default(); self.layers.len()],
            };
            for _ in 0..opts.passes {
                match self.parallelism {
                    Parallelism::Micro => rank.micro_pass(),
                    Parallelism::HybridDlrm { last_bottom_layer }
                    | Parallelism::HybridDlrmEnhanced { last_bottom_layer } => rank.dlrm_pass(last_bottom_layer),
                    Parallelism::Data
                    | Parallelism::Model
                    | Parallelism::HybridDataModel
                    | Parallelism::HybridModelData
                    | Parallelism::HybridCustomized => rank.layered_pass(&layouts),
                }
            }
            traces.push(EtTrace { metadata: Some(metadata.clone()), nodes: rank.nodes });
        }
        Ok(traces)
    }
}

fn check_options(path: &Path, opts: &TextOptions) -> Result<()> {
    if opts.npus == 0 {
        return Err(ChakraError::format(path, "options", "0 NPUs; expected at least 1 (--num-npus)"));
    }
    if opts.passes == 0 {
        return Err(ChakraError::format(path, "options", "0 passes; expected at least 1 (--num-passes)"));
    }
    Ok(())
}

fn string_attr(name: &str, value: &str) -> AttributeProto {
    AttributeProto {
        name: name.to_owned(),
        doc_string: String::new(),
        value: Some(AttrValue::StringVal(value.to_owned())),
    }
}

fn int64_attr(name: &str, value: i64) -> AttributeProto {
    AttributeProto { name: name.to_owned(), doc_string: String::new(), value: Some(AttrValue::Int64Val(value)) }
}

/// Parses the first line.
fn parse_parallelism(line: &str) -> std::result::Result<Parallelism, String> {
    let mut words = line.split_whitespace();
    let Some(keyword) = words.next() else {
        return Err(format!("the line is empty; expected the parallelism: {PARALLELISM_KEYWORDS}"));
    };
    let dlrm = |enhanced: bool, rest: Vec<&str>| -> std::result::Result<Parallelism, String> {
        // Chakra writes `HYBRID_DLRM 3`; ASTRA-sim 1.0 files say `DLRM_LAST_BOTTOM_LAYER: 3`.
        let value = match rest.as_slice() {
            ["DLRM_LAST_BOTTOM_LAYER:", v, ..] => Some(*v),
            [v, ..] if *v != "DLRM_LAST_BOTTOM_LAYER:" => Some(*v),
            _ => None,
        };
        let Some(value) = value else {
            return Err(format!(
                "{keyword} needs the index of the last bottom layer; expected `{keyword} <n>` \
                 or `{keyword} DLRM_LAST_BOTTOM_LAYER: <n>`"
            ));
        };
        let n: usize = value.parse().map_err(|_| {
            format!("{keyword}: expected the last bottom layer as a non-negative integer, found {value:?}")
        })?;
        if n == 0 {
            return Err(format!(
                "{keyword}: the last bottom layer is 0; expected at least 1 (layer 0 is the embedding \
                 layer whose forward all-to-all the top layers wait for)"
            ));
        }
        Ok(if enhanced {
            Parallelism::HybridDlrmEnhanced { last_bottom_layer: n }
        } else {
            Parallelism::HybridDlrm { last_bottom_layer: n }
        })
    };
    // Further words (ASTRA-sim 1.0 options such as `model_parallel_NPU_group: 8`) are ignored.
    match keyword {
        "MICRO" => Ok(Parallelism::Micro),
        "DATA" => Ok(Parallelism::Data),
        "MODEL" => Ok(Parallelism::Model),
        "HYBRID_DATA_MODEL" => Ok(Parallelism::HybridDataModel),
        "HYBRID_MODEL_DATA" => Ok(Parallelism::HybridModelData),
        "HYBRID_DLRM" => dlrm(false, words.collect()),
        "HYBRID_DLRM_ENHANCED" => dlrm(true, words.collect()),
        "HYBRID_CUSTOMIZED" => Ok(Parallelism::HybridCustomized),
        "HYBRID_TRANSFORMER" | "HYBRID_TRANSFORMER_FWD_IN_BCKWD" | "DISTRIBUTED_INFERENCE" => Err(format!(
            "{keyword} is an ASTRA-sim 1.0 parallelism that Chakra's text converter does not \
                 support; expected {PARALLELISM_KEYWORDS}"
        )),
        other => Err(format!("unknown parallelism {other:?}; expected {PARALLELISM_KEYWORDS}")),
    }
}

/// Parses the second line.
fn parse_count(line: &str) -> std::result::Result<usize, String> {
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        [n] => {
            n.parse().map_err(|_| format!("expected the number of layer lines as a non-negative integer, found {n:?}"))
        }
        [] => Err("the line is empty; expected the number of layer lines".into()),
        _ => Err(format!("expected only the number of layer lines, found {} words ({:?} ...)", words.len(), words[0])),
    }
}

/// Parses one layer line split into columns.
fn parse_layer(cols: &[&str], line: usize, customized: bool) -> std::result::Result<TextLayer, String> {
    let needed = if customized { 13 } else { 12 };
    if cols.len() < needed {
        let extra = if customized { " parallelism" } else { "" };
        return Err(format!("{} columns; expected {needed}: {}{extra}", cols.len(), COLUMNS.join(" ")));
    }
    let number = |i: usize, what: &str| -> std::result::Result<u64, String> {
        cols[i].parse().map_err(|_| {
            format!("column {} ({}): expected a non-negative integer {what}, found {:?}", i + 1, COLUMNS[i], cols[i])
        })
    };
    let size = |i: usize| -> std::result::Result<u64, String> {
        let v = number(i, "size in bytes")?;
        if v > i64::MAX as u64 {
            return Err(format!(
                "column {} ({}): {v} does not fit comm_size (int64); expected at most {}",
                i + 1,
                COLUMNS[i],
                i64::MAX
            ));
        }
        Ok(v)
    };
    let comm = |i: usize| -> std::result::Result<CommKind, String> {
        CommKind::from_keyword(cols[i]).ok_or_else(|| {
            format!(
                "column {} ({}): unknown comm type {:?}; expected NONE, ALLREDUCE, ALLTOALL, ALLGATHER \
                 or REDUCESCATTER",
                i + 1,
                COLUMNS[i],
                cols[i]
            )
        })
    };
    let phase = |first: usize| -> std::result::Result<Phase, String> {
        Ok(Phase { comp_time: number(first, "compute time")?, comm: comm(first + 1)?, comm_size: size(first + 2)? })
    };
    let parallelism = if customized {
        Some(LayerParallelism::from_keyword(cols[12]).ok_or_else(|| {
            format!(
                "column 13 (parallelism): unknown layer parallelism {:?}; expected DATA, MODEL, \
                 HYBRID_DATA_MODEL or HYBRID_MODEL_DATA",
                cols[12]
            )
        })?)
    } else {
        None
    };
    Ok(TextLayer {
        name: cols[0].to_owned(),
        line,
        fwd: phase(2)?,
        ig: phase(5)?,
        wg: phase(8)?,
        wg_update_time: number(11, "weight-update time")?,
        parallelism,
    })
}

/// The ids of the nodes last emitted for one layer; reset for each rank, kept across passes.
#[derive(Clone, Copy, Debug, Default)]
struct Emitted {
    fwd_comp: Option<u64>,
    fwd_comm: Option<u64>,
    ig_comp: Option<u64>,
    ig_comm: Option<u64>,
    wg_comp: Option<u64>,
    wg_comm: Option<u64>,
}

/// Builds one rank's nodes pass by pass, drawing ids from the counter shared by all ranks.
struct RankBuilder<'a> {
    layers: &'a [TextLayer],
    next_id: &'a mut u64,
    nodes: Vec<Node>,
    emitted: Vec<Emitted>,
}

/// Collects the present dependencies in order.
fn deps<const N: usize>(parents: [Option<u64>; N]) -> Vec<u64> {
    parents.into_iter().flatten().collect()
}

impl RankBuilder<'_> {
    fn push(
        &mut self,
        name: String,
        kind: NodeType,
        duration: u64,
        data_deps: Vec<u64>,
        attr: Vec<AttributeProto>,
    ) -> u64 {
        let id = *self.next_id;
        *self.next_id += 1;
        self.nodes.push(Node {
            id,
            name,
            r#type: kind as i32,
            data_deps,
            duration_micros: duration,
            attr,
            ..Node::default()
        });
        id
    }

    /// A compute node `COMP_NODE_<layer>_<phase>`.
    fn comp(&mut self, layer: usize, phase: &str, time: u64, data_deps: Vec<u64>) -> u64 {
        let name = format!("COMP_NODE_{}_{phase}", self.layers[layer].name);
        self.push(name, NodeType::CompNode, time, data_deps, Vec::new())
    }

    /// A collective `COMM_COLL_NODE_<label>_<TYPE>` with `comm_type` and `comm_size`.
    fn coll(&mut self, label: &str, comm: CommKind, size: u64, data_deps: Vec<u64>) -> u64 {
        let name = format!("COMM_COLL_NODE_{label}_{}", comm.keyword());
        // `size` was checked to fit an i64 when parsed.
        let attr = vec![
            int64_attr("comm_type", comm.collective() as i64),
            int64_attr("comm_size", i64::try_from(size).unwrap_or(i64::MAX)),
        ];
        self.push(name, NodeType::CommCollNode, 0, data_deps, attr)
    }

    fn micro_pass(&mut self) {
        let layers = self.layers;
        for l in layers {
            self.coll(&l.name, l.wg.comm, l.wg.comm_size, Vec::new());
        }
    }

    /// DATA, MODEL, the hybrids and HYBRID_CUSTOMIZED: layer `i` as `layouts[i]` says (one
    /// layout per layer).
    fn layered_pass(&mut self, layouts: &[LayerLayout]) {
        let layers = self.layers;
        // What the next node waits for: the last layer's forward collective, or its compute.
        let mut fwd_exit = None;
        for (i, l) in layers.iter().enumerate() {
            let lay = layouts[i];
            let prev_layer = match i.checked_sub(1) {
                Some(p) if layouts[p].fwd_comm => self.emitted[p].fwd_comm,
                Some(p) => self.emitted[p].fwd_comp,
                None => None,
            };
            // Still the previous pass's nodes: this pass's come later.
            let prev_pass = if lay.wg_comm { self.emitted[i].wg_comm } else { self.emitted[i].wg_comp };
            let parents =
                if lay.previous_pass_first { deps([prev_pass, prev_layer]) } else { deps([prev_layer, prev_pass]) };
            let comp = self.comp(i, "FWD", l.fwd.comp_time, parents);
            self.emitted[i].fwd_comp = Some(comp);
            fwd_exit = Some(comp);
            if lay.fwd_comm {
                let comm = self.coll(&l.name, l.fwd.comm, l.fwd.comm_size, vec![comp]);
                self.emitted[i].fwd_comm = Some(comm);
                fwd_exit = Some(comm);
            }
        }
        for i in (0..layers.len()).rev() {
            let lay = layouts[i];
            // A layer's backward starts after the next layer's last backward compute and its
            // input-gradient collective (both of this pass).
            let parents = if i + 1 == layers.len() {
                deps([fwd_exit])
            } else {
                let next = self.emitted[i + 1];
                let last_comp = if layouts[i + 1].wg_first { next.ig_comp } else { next.wg_comp };
                deps([last_comp, next.ig_comm])
            };
            if lay.wg_first {
                self.weight_gradient(i, lay, parents);
                if i != 0 {
                    let wg = self.emitted[i].wg_comp;
                    self.input_gradient(i, lay, deps([wg]));
                }
            } else {
                self.input_gradient(i, lay, parents);
                let ig = self.emitted[i].ig_comp;
                self.weight_gradient(i, lay, deps([ig]));
            }
        }
    }

    /// Layer `i`'s input-gradient compute and, but for layer 0, its collective if it has one.
    fn input_gradient(&mut self, i: usize, lay: LayerLayout, parents: Vec<u64>) {
        let layers = self.layers;
        let l = &layers[i];
        let ig = self.comp(i, "BWD_IG", l.ig.comp_time, parents);
        self.emitted[i].ig_comp = Some(ig);
        if lay.ig_comm && i != 0 {
            let label = format!("{}{}", l.name, lay.ig_suffix);
            let comm = self.coll(&label, l.ig.comm, l.ig.comm_size, vec![ig]);
            self.emitted[i].ig_comm = Some(comm);
        }
    }

    /// Layer `i`'s weight-gradient compute and its collective if it has one.
    fn weight_gradient(&mut self, i: usize, lay: LayerLayout, parents: Vec<u64>) {
        let layers = self.layers;
        let l = &layers[i];
        let wg = self.comp(i, "BWD_WG", l.wg.comp_time, parents);
        self.emitted[i].wg_comp = Some(wg);
        if lay.wg_comm {
            let comm = self.coll(&l.name, l.wg.comm, l.wg.comm_size, vec![wg]);
            self.emitted[i].wg_comm = Some(comm);
        }
    }

    /// HYBRID_DLRM and HYBRID_DLRM_ENHANCED; layer 0 is the embedding layer.
    fn dlrm_pass(&mut self, last_bottom_layer: usize) {
        let layers = self.layers;
        let mut last_fwd = None;
        for (i, l) in layers.iter().enumerate() {
            let previous_pass = self.emitted[i].wg_comm.or(self.emitted[i].wg_comp);
            let prev = if i > 0 { self.emitted[i - 1].fwd_comp } else { None };
            // Parsing checked that layer 0's forward collective, emitted just before, is an all-to-all.
            let embedding = if i == last_bottom_layer { self.emitted[0].fwd_comm } else { None };
            let comp = self.comp(i, "FWD", l.fwd.comp_time, deps([previous_pass, prev, embedding]));
            self.emitted[i].fwd_comp = Some(comp);
            last_fwd = Some(comp);
            if l.fwd.comm == CommKind::AllToAll {
                let comm = self.coll(&l.name, l.fwd.comm, l.fwd.comm_size, vec![comp]);
                self.emitted[i].fwd_comm = Some(comm);
            }
        }
        for i in (0..layers.len()).rev() {
            let l = &layers[i];
            let parents = if i + 1 == layers.len() {
                deps([last_fwd, None])
            } else {
                deps([self.emitted[i + 1].ig_comp, self.emitted[i].ig_comm])
            };
            let wg = self.comp(i, "BWD_WG", l.wg.comp_time, parents);
            self.emitted[i].wg_comp = Some(wg);
            if l.wg.comm != CommKind::None {
                let comm = self.coll(&l.name, l.wg.comm, l.wg.comm_size, vec![wg]);
                self.emitted[i].wg_comm = Some(comm);
            }
            if i != 0 {
                let ig = self.comp(i, "BWD_IG", l.ig.comp_time, vec![wg]);
                self.emitted[i].ig_comp = Some(ig);
                if last_bottom_layer.checked_add(1) == Some(i) {
                    let e = &layers[0];
                    let comm = self.coll(&e.name, e.ig.comm, e.ig.comm_size, vec![ig]);
                    self.emitted[0].ig_comm = Some(comm);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chakra::attr;
    use crate::chakra::codec::{encode_et, read_et_file};

    const TRACES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/public-traces");

    fn text_workload(name: &str) -> PathBuf {
        PathBuf::from(format!("{TRACES}/astra-sim__tutorials/micro2024/chakra-demo/demo2/text_workloads/{name}"))
    }

    fn convert(path: &Path, npus: u32, passes: u32) -> Vec<EtTrace> {
        convert_text_workload(path, &TextOptions { npus, passes }).unwrap_or_else(|e| panic!("{e}"))
    }

    fn parse_err(text: &str) -> String {
        match TextWorkload::parse(text, Path::new("bad.txt")) {
            Ok(w) => panic!("parsed {text:?} into {w:?}"),
            Err(e) => e.to_string(),
        }
    }

    fn comm(node: &Node) -> (i64, i64) {
        let get = |name| attr::get_i64(node, name).ok().flatten().unwrap_or(-1);
        (get("comm_type"), get("comm_size"))
    }

    fn count(trace: &EtTrace, kind: NodeType) -> usize {
        trace.nodes.iter().filter(|n| n.r#type == kind as i32).count()
    }

    fn node<'a>(trace: &'a EtTrace, name: &str, nth: usize) -> &'a Node {
        trace.nodes.iter().filter(|n| n.name == name).nth(nth).unwrap_or_else(|| panic!("no {name} #{nth}"))
    }

    fn id_of(trace: &EtTrace, name: &str, nth: usize) -> u64 {
        node(trace, name, nth).id
    }

    /// Every dependency of a node is an earlier node of the same rank.
    fn assert_deps_point_backwards(traces: &[EtTrace]) {
        for (rank, trace) in traces.iter().enumerate() {
            let mut seen = std::collections::HashSet::new();
            for n in &trace.nodes {
                assert!(n.ctrl_deps.is_empty(), "rank {rank} {}: ctrl deps", n.name);
                for d in &n.data_deps {
                    assert!(seen.contains(d), "rank {rank} {}: dep {d} is not an earlier node", n.name);
                }
                seen.insert(n.id);
            }
        }
    }

    /// Ids count up without gaps across ranks, from 0.
    fn assert_ids_count_across_ranks(traces: &[EtTrace]) {
        let ids: Vec<u64> = traces.iter().flat_map(|t| t.nodes.iter().map(|n| n.id)).collect();
        assert_eq!(ids, (0..ids.len() as u64).collect::<Vec<_>>());
    }

    #[test]
    fn mlp_model_parallel_32_npus_is_byte_identical_to_chakra() {
        // micro2024/astra-sim-demo/demo2/workload/MLP_ModelParallel.<rank>.et were made by
        // `chakra_converter Text --num-npus 32 --num-passes 1` from this very text file.
        let traces = convert(&text_workload("MLP_ModelParallel.txt"), 32, 1);
        assert_eq!(traces.len(), 32);
        for (rank, trace) in traces.iter().enumerate() {
            let path = format!(
                "{TRACES}/astra-sim__tutorials/micro2024/astra-sim-demo/demo2/workload/MLP_ModelParallel.{rank}.et"
            );
            let real = std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            assert!(encode_et(trace) == real, "rank {rank} differs from {path}");
        }
    }

    #[test]
    fn hoti2024_workload_text_gives_the_same_nodes_as_mlp_model_parallel() {
        // The HOTI 2024 file is MLP_ModelParallel.txt with spaces for tabs and LF line ends.
        let hoti = PathBuf::from(format!("{TRACES}/astra-sim__tutorials/hoti2024/demo2/workload_text.txt"));
        let ours = convert(&hoti, 32, 1);
        for (rank, trace) in ours.iter().enumerate() {
            let path = format!(
                "{TRACES}/astra-sim__tutorials/micro2024/astra-sim-demo/demo2/workload/MLP_ModelParallel.{rank}.et"
            );
            let real = read_et_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(trace.nodes, real.nodes, "rank {rank}");
            let text = std::fs::read_to_string(&hoti).unwrap_or_default();
            let meta = trace.metadata.as_ref().map(|m| m.attr.clone()).unwrap_or_default();
            assert_eq!(meta, vec![string_attr("schema", SCHEMA_VERSION), string_attr("input_file", &text)]);
        }
    }

    #[test]
    fn resnet50_data_parallel_matches_historical_astra_sim_traces_node_by_node() {
        // astra-sim/astra-sim runs/example/workload/resnet50_DataParallel.<rank>.et (commit f5d4ddd,
        // 2023) came from a historical converter run with 64 NPUs, 1 pass and 1 network dimension.
        // That version differs from today's in three ways, none of which touch the graph:
        // * no GlobalMetadata (the files start with the first node);
        // * dependencies in `ctrl_deps` where today's converter writes `data_deps`;
        // * an extra `involved_dim` bool_list ([true], one per network dimension) on collectives.
        // Everything else is compared: ids (counting across ranks), names, types, durations,
        // dependency lists, comm_type and comm_size (both int64_val there as here).
        let ours = convert(&text_workload("Resnet50_DataParallel.txt"), 64, 1);
        for (rank, trace) in ours.iter().enumerate() {
            let path = format!("{TRACES}/astra-sim__astra-sim/runs/example/workload/resnet50_DataParallel.{rank}.et");
            let real = read_et_file(&path).unwrap_or_else(|e| panic!("{e}"));
            assert!(real.metadata.is_none(), "{path}: expected a legacy file without metadata");
            assert_eq!(trace.nodes.len(), real.nodes.len(), "{path}");
            for (a, b) in trace.nodes.iter().zip(&real.nodes) {
                assert_eq!((a.id, &a.name, a.r#type), (b.id, &b.name, b.r#type), "{path}");
                assert_eq!(a.duration_micros, b.duration_micros, "{path} {}", a.name);
                assert_eq!(a.data_deps, b.ctrl_deps, "{path} {}", a.name);
                assert!(b.data_deps.is_empty() && a.ctrl_deps.is_empty());
                assert_eq!(comm(a), comm(b), "{path} {}", a.name);
                let extra: Vec<&str> = b.attr.iter().map(|x| x.name.as_str()).collect();
                if b.r#type == NodeType::CommCollNode as i32 {
                    assert_eq!(extra, ["comm_type", "comm_size", "involved_dim"]);
                    assert_eq!(attr::get_bool_list(b, "involved_dim"), Ok(Some(vec![true])));
                    assert!(a.attr("involved_dim").is_none() && a.attr.len() == 2);
                } else {
                    assert!(extra.is_empty() && a.attr.is_empty());
                }
            }
        }
    }

    #[test]
    fn microbenchmarks_have_one_unconnected_collective_per_layer_and_pass() {
        for (file, comm_type) in
            [("microAllReduce.txt", CollectiveCommType::AllReduce), ("microAllToAll.txt", CollectiveCommType::AllToAll)]
        {
            let w = TextWorkload::read(&text_workload(file)).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(w.parallelism, Parallelism::Micro);
            let traces = w.to_traces(&TextOptions { npus: 8, passes: 3 }).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(traces.len(), 8);
            assert_ids_count_across_ranks(&traces);
            for t in &traces {
                assert_eq!(t.nodes.len(), 3);
                for n in &t.nodes {
                    assert_eq!(n.node_type(), Some(NodeType::CommCollNode));
                    assert_eq!(
                        n.name,
                        format!("COMM_COLL_NODE_conv1_{}", file[5..].trim_end_matches(".txt").to_uppercase())
                    );
                    assert!(n.data_deps.is_empty());
                    assert_eq!(comm(n), (comm_type as i64, 1_048_576));
                }
            }
        }
    }

    #[test]
    fn data_parallel_chains_passes_through_weight_gradient_collectives() {
        let traces = convert(&text_workload("Resnet50_DataParallel.txt"), 2, 2);
        assert_ids_count_across_ranks(&traces);
        assert_deps_point_backwards(&traces);
        let t = &traces[1];
        assert_eq!(t.nodes.len(), 2 * 215);
        assert_eq!((count(t, NodeType::CompNode), count(t, NodeType::CommCollNode)), (2 * 161, 2 * 54));
        // Pass 1: layer 0's forward has no parent; pass 2: it waits for pass 1's all-reduce.
        assert!(node(t, "COMP_NODE_conv1_FWD", 0).data_deps.is_empty());
        let second = node(t, "COMP_NODE_layer_64_1_conv4_FWD", 1);
        assert_eq!(
            second.data_deps,
            [id_of(t, "COMP_NODE_conv1_FWD", 1), id_of(t, "COMM_COLL_NODE_layer_64_1_conv4_ALLREDUCE", 0)]
        );
        // Backward: WG, its collective, IG; the first layer has no IG.
        assert_eq!(node(t, "COMP_NODE_fc1000_BWD_WG", 0).data_deps, [id_of(t, "COMP_NODE_fc1000_FWD", 0)]);
        assert_eq!(
            node(t, "COMP_NODE_layer_512_3_conv3_BWD_WG", 0).data_deps,
            [id_of(t, "COMP_NODE_fc1000_BWD_IG", 0)]
        );
        assert!(!t.nodes.iter().any(|n| n.name == "COMP_NODE_conv1_BWD_IG"));
    }

    #[test]
    fn model_parallel_places_forward_and_input_gradient_collectives() {
        let traces = convert(&text_workload("MLP_ModelParallel.txt"), 4, 2);
        assert_ids_count_across_ranks(&traces);
        assert_deps_point_backwards(&traces);
        let t = &traces[3];
        assert_eq!(t.nodes.len(), 2 * 29);
        assert_eq!((count(t, NodeType::CompNode), count(t, NodeType::CommCollNode)), (2 * 18, 2 * 11));
        let gathers = t.nodes.iter().filter(|n| comm(n).0 == CollectiveCommType::AllGather as i64).count();
        assert_eq!(gathers, 2 * 6);
        // No weight-gradient collective; layer 0 has no input-gradient collective.
        assert!(!t.nodes.iter().any(|n| n.name.ends_with("_NONE")));
        assert!(!t.nodes.iter().any(|n| n.name == "COMM_COLL_NODE_layer_64_1_mlp0_ALLREDUCE"));
        // Pass 2's forward waits for the previous layer's forward collective and pass 1's WG.
        assert_eq!(
            node(t, "COMP_NODE_layer_64_1_mlp1_FWD", 1).data_deps,
            [id_of(t, "COMM_COLL_NODE_layer_64_1_mlp0_ALLGATHER", 1), id_of(t, "COMP_NODE_layer_64_1_mlp1_BWD_WG", 0)]
        );
    }

    #[test]
    fn hybrid_parallelisms_place_all_three_collectives() {
        for (file, ig_name) in [
            ("MLP_HybridParallel_Data_Model.txt", "COMM_COLL_NODE_layer_64_2_mlp3_IG_COMM__ALLREDUCE"),
            ("MLP_HybridParallel_Model_Data.txt", "COMM_COLL_NODE_layer_64_2_mlp3_ALLREDUCE"),
        ] {
            let traces = convert(&text_workload(file), 4, 2);
            assert_ids_count_across_ranks(&traces);
            assert_deps_point_backwards(&traces);
            let t = &traces[2];
            assert_eq!(t.nodes.len(), 2 * 35, "{file}");
            assert_eq!((count(t, NodeType::CompNode), count(t, NodeType::CommCollNode)), (2 * 18, 2 * 17));
            let ig = node(t, ig_name, 0);
            assert_eq!(ig.data_deps, [id_of(t, "COMP_NODE_layer_64_2_mlp3_BWD_IG", 0)], "{file}");
            // Pass 2's forward waits for pass 1's WG collective, then the previous forward collective.
            let wg_comm = t
                .nodes
                .iter()
                .filter(|n| n.name == "COMM_COLL_NODE_layer_64_2_mlp3_ALLREDUCE")
                .find(|n| n.data_deps == [id_of(t, "COMP_NODE_layer_64_2_mlp3_BWD_WG", 0)])
                .map(|n| n.id);
            assert_eq!(
                node(t, "COMP_NODE_layer_64_2_mlp3_FWD", 1).data_deps,
                [wg_comm.unwrap_or(u64::MAX), id_of(t, "COMM_COLL_NODE_layer_64_2_mlp2_ALLGATHER", 1)],
                "{file}"
            );
        }
    }

    /// One layer line of the HYBRID_CUSTOMIZED sample, as this test module reads it.
    struct SampleLayer {
        name: String,
        /// Column 13.
        parallelism: String,
        /// Compute time of the forward, input-gradient and weight-gradient phases.
        comp: [u64; 3],
        /// Comm type keyword and size of the same phases.
        comm: [(String, i64); 3],
    }

    /// Node-name suffixes of the three phases, in the order of [`SampleLayer::comp`].
    const PHASES: [&str; 3] = ["FWD", "BWD_IG", "BWD_WG"];

    /// Reads the public HYBRID_CUSTOMIZED sample with a plain split of its columns.
    fn customized_sample() -> (PathBuf, Vec<SampleLayer>) {
        let path = text_workload("sample_per_layer_parallel_HybridCustomized.txt");
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        let mut lines = text.lines().filter(|l| !l.trim().is_empty());
        assert_eq!(lines.next().map(str::trim), Some("HYBRID_CUSTOMIZED"));
        let count = lines.next().and_then(|l| l.trim().parse::<usize>().ok());
        let layers: Vec<SampleLayer> = lines
            .map(|line| {
                let c: Vec<&str> = line.split_whitespace().collect();
                assert_eq!(c.len(), 13, "{line}");
                let num = |i: usize| c[i].parse::<u64>().unwrap_or_else(|e| panic!("{e}"));
                let comm = |i: usize| (c[i].to_owned(), num(i + 1) as i64);
                SampleLayer {
                    name: c[0].to_owned(),
                    parallelism: c[12].to_owned(),
                    comp: [num(2), num(5), num(8)],
                    comm: [comm(3), comm(6), comm(9)],
                }
            })
            .collect();
        assert_eq!(Some(layers.len()), count);
        (path, layers)
    }

    /// The phases (indices into [`PHASES`]) whose collective a layer of this parallelism
    /// issues in ASTRA-sim 1.0 (those whose collective spans some network dimension); layer 0
    /// never has an input-gradient collective.
    fn communicating_phases(parallelism: &str, layer: usize) -> Vec<usize> {
        let phases: &[usize] = match parallelism {
            "DATA" => &[2],
            "MODEL" => &[0, 1],
            "HYBRID_DATA_MODEL" | "HYBRID_MODEL_DATA" => &[0, 1, 2],
            other => panic!("unexpected layer parallelism {other:?}"),
        };
        phases.iter().copied().filter(|&p| !(p == 1 && layer == 0)).collect()
    }

    /// The Chakra `comm_type` of a comm type keyword (NONE, where placed, is an all-reduce).
    fn comm_type_of(keyword: &str) -> i64 {
        let t = match keyword {
            "NONE" | "ALLREDUCE" => CollectiveCommType::AllReduce,
            "ALLTOALL" => CollectiveCommType::AllToAll,
            "ALLGATHER" => CollectiveCommType::AllGather,
            "REDUCESCATTER" => CollectiveCommType::ReduceScatter,
            other => panic!("unexpected comm type {other:?}"),
        };
        t as i64
    }

    /// The name of a sample layer's collective in phase `phase`.
    fn sample_coll_name(l: &SampleLayer, phase: usize) -> String {
        let ig_label = if phase == 1 && l.parallelism == "HYBRID_DATA_MODEL" { "_IG_COMM_" } else { "" };
        format!("COMM_COLL_NODE_{}{ig_label}_{}", l.name, l.comm[phase].0)
    }

    #[test]
    fn hybrid_customized_sample_places_each_layers_collectives_as_the_file_gives_them() {
        let (path, layers) = customized_sample();
        let w = TextWorkload::read(&path).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.parallelism, Parallelism::HybridCustomized);
        let per_layer: Vec<_> = w.layers.iter().map(|l| l.parallelism).collect();
        use LayerParallelism::*;
        assert_eq!(per_layer, [HybridDataModel, HybridModelData, Data, Model, Model, HybridModelData].map(Some));
        // (layer, phase) -> (collective name, comm_type, comm_size), from the file alone.
        let mut expected = std::collections::BTreeMap::new();
        for (i, l) in layers.iter().enumerate() {
            for p in communicating_phases(&l.parallelism, i) {
                let (kind, size) = &l.comm[p];
                expected.insert((l.name.clone(), p), (sample_coll_name(l, p), comm_type_of(kind), *size));
            }
        }
        // 2 + 3 + 1 + 2 + 2 + 3 collectives and three computes per layer.
        assert_eq!(expected.len(), 13);
        let per_pass = 3 * layers.len() + expected.len();
        assert_eq!(per_pass, 31);
        assert_eq!(w.nodes_per_pass(), 31);

        let (npus, passes) = (4, 3);
        let traces = w.to_traces(&TextOptions { npus, passes }).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(traces.len(), npus as usize);
        assert_ids_count_across_ranks(&traces);
        assert_deps_point_backwards(&traces);
        for (rank, t) in traces.iter().enumerate() {
            assert_eq!(t.nodes.len(), passes as usize * per_pass, "rank {rank}");
            let by_id: std::collections::HashMap<u64, &Node> = t.nodes.iter().map(|n| (n.id, n)).collect();
            for (pass, nodes) in t.nodes.chunks(per_pass).enumerate() {
                let at = format!("rank {rank} pass {pass}");
                let mut comps = std::collections::BTreeMap::new();
                let mut colls = std::collections::BTreeMap::new();
                for n in nodes {
                    match n.node_type() {
                        Some(NodeType::CompNode) => {
                            let rest = n.name.strip_prefix("COMP_NODE_").unwrap_or("?");
                            let phase = (0..3).find(|&p| rest.ends_with(&format!("_{}", PHASES[p])));
                            let phase = phase.unwrap_or_else(|| panic!("{at}: {}", n.name));
                            let layer = &rest[..rest.len() - PHASES[phase].len() - 1];
                            let old = comps.insert((layer.to_owned(), phase), n.duration_micros);
                            assert!(old.is_none(), "{at}: a second {}", n.name);
                        }
                        Some(NodeType::CommCollNode) => {
                            // A collective follows the compute of its own layer and phase.
                            let [parent] = n.data_deps[..] else {
                                panic!("{at}: {} has deps {:?}", n.name, n.data_deps)
                            };
                            let parent = by_id.get(&parent).map_or("?", |p| p.name.as_str());
                            let rest = parent.strip_prefix("COMP_NODE_").unwrap_or("?");
                            let phase = (0..3).find(|&p| rest.ends_with(&format!("_{}", PHASES[p])));
                            let phase = phase.unwrap_or_else(|| panic!("{at}: {parent}"));
                            let layer = &rest[..rest.len() - PHASES[phase].len() - 1];
                            let (kind, size) = comm(n);
                            let old = colls.insert((layer.to_owned(), phase), (n.name.clone(), kind, size));
                            assert!(old.is_none(), "{at}: a second collective after {parent}");
                        }
                        other => panic!("{at}: unexpected node type {other:?}"),
                    }
                }
                assert_eq!(colls, expected, "{at}");
                // Every layer has all three computes, with the file's times.
                let want: std::collections::BTreeMap<_, _> =
                    layers.iter().flat_map(|l| (0..3).map(move |p| ((l.name.clone(), p), l.comp[p]))).collect();
                assert_eq!(comps, want, "{at}");
            }
        }
    }

    #[test]
    fn hybrid_customized_sample_chains_layers_by_their_own_collectives() {
        let (path, layers) = customized_sample();
        let traces = convert(&path, 2, 2);
        let t = &traces[1];
        let comp = |layer: usize, phase: usize, pass: usize| {
            id_of(t, &format!("COMP_NODE_{}_{}", layers[layer].name, PHASES[phase]), pass)
        };
        // The collective of a layer and phase in a pass: the one node that follows its compute.
        let coll = |layer: usize, phase: usize, pass: usize| {
            let parent = comp(layer, phase, pass);
            let name = sample_coll_name(&layers[layer], phase);
            let found: Vec<u64> =
                t.nodes.iter().filter(|n| n.name == name && n.data_deps == [parent]).map(|n| n.id).collect();
            assert_eq!(found.len(), 1, "{name} after {parent}");
            found[0]
        };
        // Which nodes depend on a node.
        let children =
            |id: u64| -> Vec<u64> { t.nodes.iter().filter(|n| n.data_deps.contains(&id)).map(|n| n.id).collect() };
        let deps_of = |id: u64| t.nodes.iter().find(|n| n.id == id).map(|n| n.data_deps.clone());
        let (fwd, ig, wg) = (0, 1, 2);
        // Layers: 0 HYBRID_DATA_MODEL, 1 HYBRID_MODEL_DATA, 2 DATA, 3 MODEL, 4 MODEL,
        // 5 HYBRID_MODEL_DATA.
        let kinds: Vec<&str> = layers.iter().map(|l| l.parallelism.as_str()).collect();
        assert_eq!(kinds, ["HYBRID_DATA_MODEL", "HYBRID_MODEL_DATA", "DATA", "MODEL", "MODEL", "HYBRID_MODEL_DATA"]);
        for pass in 0..2usize {
            let prev = pass.checked_sub(1);
            // Forward: each layer waits for the previous layer's forward collective, or its
            // compute where it has none (the DATA layer 2), and for its own previous pass: the
            // weight-gradient collective, or compute for the MODEL layers; the hybrids list
            // the previous pass first.
            let opt = |x: Option<u64>| x.into_iter().collect::<Vec<_>>();
            let mut want = opt(prev.map(|p| coll(0, wg, p)));
            assert_eq!(deps_of(comp(0, fwd, pass)), Some(want), "pass {pass}");
            want = opt(prev.map(|p| coll(1, wg, p)));
            want.push(coll(0, fwd, pass));
            assert_eq!(deps_of(comp(1, fwd, pass)), Some(want), "pass {pass}");
            want = vec![coll(1, fwd, pass)];
            want.extend(prev.map(|p| coll(2, wg, p)));
            assert_eq!(deps_of(comp(2, fwd, pass)), Some(want), "pass {pass}");
            assert_eq!(children(comp(2, fwd, pass)), [comp(3, fwd, pass)]);
            want = vec![comp(2, fwd, pass)];
            want.extend(prev.map(|p| comp(3, wg, p)));
            assert_eq!(deps_of(comp(3, fwd, pass)), Some(want), "pass {pass}");
            want = vec![coll(3, fwd, pass)];
            want.extend(prev.map(|p| comp(4, wg, p)));
            assert_eq!(deps_of(comp(4, fwd, pass)), Some(want), "pass {pass}");
            want = opt(prev.map(|p| coll(5, wg, p)));
            want.push(coll(4, fwd, pass));
            assert_eq!(deps_of(comp(5, fwd, pass)), Some(want), "pass {pass}");

            // Backward, IG before WG in every layer; a layer's IG waits for the next layer's
            // WG compute and IG collective (where it has one).
            assert_eq!(deps_of(comp(5, ig, pass)), Some(vec![coll(5, fwd, pass)]));
            for layer in 0..6 {
                assert_eq!(
                    deps_of(comp(layer, wg, pass)),
                    Some(vec![comp(layer, ig, pass)]),
                    "layer {layer} pass {pass}"
                );
            }
            for layer in [0, 2, 3] {
                let next = layer + 1;
                assert_eq!(
                    deps_of(comp(layer, ig, pass)),
                    Some(vec![comp(next, wg, pass), coll(next, ig, pass)]),
                    "layer {layer} pass {pass}"
                );
            }
            assert_eq!(deps_of(comp(4, ig, pass)), Some(vec![comp(5, wg, pass), coll(5, ig, pass)]));
            // The DATA layer has no IG collective: layer 1's IG waits for its WG alone.
            assert_eq!(deps_of(comp(1, ig, pass)), Some(vec![comp(2, wg, pass)]));
            assert_eq!(children(comp(2, ig, pass)), [comp(2, wg, pass)]);
            // Layer 0 has no IG collective, the MODEL layers no WG collective.
            assert_eq!(children(comp(0, ig, pass)), [comp(0, wg, pass)]);
            for layer in [3, 4] {
                let mut want = vec![comp(layer - 1, ig, pass)];
                if pass == 0 {
                    want.push(comp(layer, fwd, 1));
                }
                assert_eq!(children(comp(layer, wg, pass)), want, "layer {layer}");
            }
            // The pass ends with layer 0's weight-gradient collective.
            let last = &t.nodes[(pass + 1) * 31 - 1];
            assert_eq!(last.id, coll(0, wg, pass));
        }
        assert_ids_count_across_ranks(&traces);
        assert_deps_point_backwards(&traces);
    }

    /// `text` (a whole-file workload) as a HYBRID_CUSTOMIZED one whose layers all say `kind`.
    fn as_customized(text: &str, kind: &str) -> String {
        let mut lines = text.lines().map(str::trim_end);
        let _header = lines.next();
        let mut out = String::from("HYBRID_CUSTOMIZED\n");
        for (i, line) in lines.enumerate() {
            if i == 0 || line.is_empty() {
                out.push_str(&format!("{line}\n"));
            } else {
                out.push_str(&format!("{line} {kind}\n"));
            }
        }
        out
    }

    #[test]
    fn hybrid_customized_layers_of_one_parallelism_convert_like_a_file_of_it() {
        let opts = TextOptions { npus: 3, passes: 2 };
        let nodes = |w: &TextWorkload| -> Vec<Vec<Node>> {
            w.to_traces(&opts).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|t| t.nodes).collect()
        };
        for (file, kind) in [
            ("MLP_ModelParallel.txt", "MODEL"),
            ("MLP_HybridParallel_Data_Model.txt", "HYBRID_DATA_MODEL"),
            ("MLP_HybridParallel_Model_Data.txt", "HYBRID_MODEL_DATA"),
        ] {
            let whole = TextWorkload::read(&text_workload(file)).unwrap_or_else(|e| panic!("{e}"));
            let custom = TextWorkload::parse(&as_customized(&whole.text, kind), Path::new("c.txt"))
                .unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(custom.nodes_per_pass(), whole.nodes_per_pass(), "{file}");
            assert_eq!(nodes(&custom), nodes(&whole), "{file}");
        }
        // DATA layers keep DATA's collectives but run IG before WG, as every HYBRID_CUSTOMIZED
        // layer does in ASTRA-sim 1.0, so layer 0 has an input-gradient compute too.
        let whole = TextWorkload::read(&text_workload("Resnet50_DataParallel.txt")).unwrap_or_else(|e| panic!("{e}"));
        let custom = TextWorkload::parse(&as_customized(&whole.text, "DATA"), Path::new("c.txt"))
            .unwrap_or_else(|e| panic!("{e}"));
        let l = custom.layers.len() as u64;
        assert_eq!(custom.nodes_per_pass(), 4 * l);
        assert_eq!(whole.nodes_per_pass(), 4 * l - 1);
        let (a, b) = (nodes(&custom), nodes(&whole));
        let colls = |t: &[Node]| -> Vec<(String, Vec<AttributeProto>)> {
            t.iter()
                .filter(|n| n.node_type() == Some(NodeType::CommCollNode))
                .map(|n| (n.name.clone(), n.attr.clone()))
                .collect()
        };
        let t = EtTrace { metadata: None, nodes: a[2].clone() };
        assert_eq!(colls(&a[2]), colls(&b[2]));
        assert_eq!(node(&t, "COMP_NODE_fc1000_BWD_IG", 0).data_deps, [id_of(&t, "COMP_NODE_fc1000_FWD", 0)]);
        assert_eq!(node(&t, "COMP_NODE_fc1000_BWD_WG", 0).data_deps, [id_of(&t, "COMP_NODE_fc1000_BWD_IG", 0)]);
        assert_eq!(node(&t, "COMP_NODE_conv1_BWD_WG", 1).data_deps, [id_of(&t, "COMP_NODE_conv1_BWD_IG", 1)]);
    }

    #[test]
    fn hybrid_customized_unknown_layer_parallelism_is_an_error_naming_file_and_line() {
        let (path, _) = customized_sample();
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
        // Line 5 is layer_64_2_mlp2, the DATA layer.
        assert_eq!(text.matches(" DATA ").count(), 1);
        assert!(text.lines().nth(4).is_some_and(|l| l.contains(" DATA ")));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for bad in ["PIPELINE", "MICRO", "HYBRID_DLRM", "data"] {
            let file = dir.path().join(format!("custom_{bad}.txt"));
            std::fs::write(&file, text.replace(" DATA ", &format!(" {bad} "))).unwrap_or_else(|e| panic!("{e}"));
            let err = convert_text_workload(&file, &TextOptions { npus: 2, passes: 1 })
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            let want = format!(
                "{}: line 5: column 13 (parallelism): unknown layer parallelism {bad:?}; expected \
                 DATA, MODEL, HYBRID_DATA_MODEL or HYBRID_MODEL_DATA",
                file.display()
            );
            assert_eq!(err, want);
        }
        // A layer whose parallelism was taken away after parsing is refused by `to_traces`.
        let mut w = TextWorkload::read(&path).unwrap_or_else(|e| panic!("{e}"));
        w.layers[3].parallelism = None;
        let err = w.to_traces(&TextOptions { npus: 1, passes: 1 }).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(
            err.starts_with(&format!("{}: line 6: HYBRID_CUSTOMIZED: the layer has no parallelism", path.display())),
            "{err}"
        );
    }

    /// A small DLRM: embedding (layer 0), two bottom MLP layers, two top MLP layers.
    const DLRM: &str = "HYBRID_DLRM 2\n5\n\
        emb -1 10 ALLTOALL 100 11 ALLTOALL 101 12 NONE 0 1\n\
        bot1 -1 20 NONE 0 21 NONE 0 22 ALLREDUCE 200 1\n\
        bot2 -1 30 NONE 0 31 NONE 0 32 ALLREDUCE 300 1\n\
        top1 -1 40 NONE 0 41 NONE 0 42 ALLREDUCE 400 1\n\
        top2 -1 50 NONE 0 51 NONE 0 52 ALLREDUCE 500 1\n";

    #[test]
    fn dlrm_waits_for_the_embedding_all_to_all() {
        let w = TextWorkload::parse(DLRM, Path::new("dlrm.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(w.parallelism, Parallelism::HybridDlrm { last_bottom_layer: 2 });
        // 5 FWD + 1 A2A + 5 WG + 4 WG all-reduces + 4 IG + 1 embedding IG all-to-all.
        assert_eq!(w.nodes_per_pass(), 20);
        let traces = w.to_traces(&TextOptions { npus: 2, passes: 2 }).unwrap_or_else(|e| panic!("{e}"));
        assert_ids_count_across_ranks(&traces);
        assert_deps_point_backwards(&traces);
        let t = &traces[1];
        assert_eq!(t.nodes.len(), 40);
        let a2a = id_of(t, "COMM_COLL_NODE_emb_ALLTOALL", 0);
        assert_eq!(node(t, "COMM_COLL_NODE_emb_ALLTOALL", 0).data_deps, [id_of(t, "COMP_NODE_emb_FWD", 0)]);
        assert_eq!(node(t, "COMP_NODE_bot2_FWD", 0).data_deps, [id_of(t, "COMP_NODE_bot1_FWD", 0), a2a]);
        // Backward: the embedding's IG all-to-all follows top1's IG (layer last_bottom_layer + 1),
        // and the embedding's WG waits for it; the embedding has no WG collective (NONE).
        let ig_a2a = node(t, "COMM_COLL_NODE_emb_ALLTOALL", 1);
        assert_eq!(ig_a2a.data_deps, [id_of(t, "COMP_NODE_top1_BWD_IG", 0)]);
        assert_eq!(comm(ig_a2a), (CollectiveCommType::AllToAll as i64, 101));
        assert_eq!(node(t, "COMP_NODE_emb_BWD_WG", 0).data_deps, [id_of(t, "COMP_NODE_bot1_BWD_IG", 0), ig_a2a.id]);
        assert!(!t.nodes.iter().any(|n| n.name == "COMM_COLL_NODE_emb_NONE"));
        // Pass 2: a layer waits for its WG all-reduce, or its WG compute when it has none.
        assert_eq!(node(t, "COMP_NODE_emb_FWD", 1).data_deps, [id_of(t, "COMP_NODE_emb_BWD_WG", 0)]);
        assert_eq!(
            node(t, "COMP_NODE_bot1_FWD", 1).data_deps,
            [id_of(t, "COMM_COLL_NODE_bot1_ALLREDUCE", 0), id_of(t, "COMP_NODE_emb_FWD", 1)]
        );
    }

    #[test]
    fn dlrm_accepts_the_astra_sim_header_form_and_the_enhanced_variant() {
        let astra = DLRM.replace("HYBRID_DLRM 2", "HYBRID_DLRM_ENHANCED DLRM_LAST_BOTTOM_LAYER: 2");
        let a = TextWorkload::parse(&astra, Path::new("a.txt")).unwrap_or_else(|e| panic!("{e}"));
        let b = TextWorkload::parse(DLRM, Path::new("a.txt")).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(a.parallelism, Parallelism::HybridDlrmEnhanced { last_bottom_layer: 2 });
        let opts = TextOptions { npus: 1, passes: 1 };
        let nodes = |w: &TextWorkload| w.to_traces(&opts).map(|t| t[0].nodes.clone()).unwrap_or_default();
        assert_eq!(nodes(&a), nodes(&b));
        // A last bottom layer past the end: no embedding synchronisation at all.
        let late = TextWorkload::parse(&DLRM.replace("HYBRID_DLRM 2", "HYBRID_DLRM 9"), Path::new("a.txt"));
        assert_eq!(late.map(|w| w.nodes_per_pass()).ok(), Some(19));
    }

    #[test]
    fn every_sample_converts_with_backward_dependencies_and_global_ids() {
        for (file, per_pass) in [
            ("MLP_HybridParallel_Data_Model.txt", 35),
            ("MLP_HybridParallel_Model_Data.txt", 35),
            ("MLP_ModelParallel.txt", 29),
            ("Resnet50_DataParallel.txt", 215),
            ("microAllReduce.txt", 1),
            ("microAllToAll.txt", 1),
            ("sample_per_layer_parallel_HybridCustomized.txt", 31),
        ] {
            let traces = convert(&text_workload(file), 3, 2);
            assert_ids_count_across_ranks(&traces);
            assert_deps_point_backwards(&traces);
            for t in &traces {
                assert_eq!(t.nodes.len(), 2 * per_pass, "{file}");
                let meta = t.metadata.as_ref().map(|m| (m.version.as_str(), m.attr.len()));
                assert_eq!(meta, Some(("", 2)), "{file}");
                for n in &t.nodes {
                    let names: Vec<&str> = n.attr.iter().map(|a| a.name.as_str()).collect();
                    match n.node_type() {
                        Some(NodeType::CompNode) => assert!(names.is_empty()),
                        Some(NodeType::CommCollNode) => {
                            assert_eq!(names, ["comm_type", "comm_size"]);
                            assert_eq!(n.duration_micros, 0);
                        }
                        other => panic!("{file}: unexpected node type {other:?}"),
                    }
                }
            }
        }
    }

    #[test]
    fn whitespace_line_ends_blank_lines_and_extra_columns_are_tolerated() {
        let plain =
            "MODEL\n2\na -1 1 ALLGATHER 8 2 ALLREDUCE 16 3 NONE 0 4\nb -1 5 ALLGATHER 8 6 ALLREDUCE 16 7 NONE 0 8\n";
        let messy = "\u{feff}MODEL \t \r\n 2\t\t\r\n\r\na\t-1\t1  ALLGATHER\t8 2 ALLREDUCE 16 3 NONE 0 4 extra cols\r\n  \r\nb -1 5 ALLGATHER 8 6 ALLREDUCE 16 7 NONE 0 8";
        let opts = TextOptions { npus: 2, passes: 2 };
        let nodes = |text: &str| {
            let w = TextWorkload::parse(text, Path::new("x.txt")).unwrap_or_else(|e| panic!("{e}"));
            w.to_traces(&opts).unwrap_or_else(|e| panic!("{e}")).into_iter().map(|t| t.nodes).collect::<Vec<_>>()
        };
        assert_eq!(nodes(plain), nodes(messy));
        // Old Mac line ends too; the metadata keeps the text with `\n` line ends.
        let w = TextWorkload::parse(&plain.replace('\n', "\r"), Path::new("x.txt"));
        assert_eq!(w.map(|w| w.text).ok().as_deref(), Some(plain));
    }

    #[test]
    fn bad_inputs_name_the_file_the_line_and_what_was_expected() {
        let layer = "l -1 1 NONE 0 2 NONE 0 3 ALLREDUCE 8 4";
        let cases: Vec<(String, &str, &str)> = vec![
            (String::new(), "line 1", "expected the parallelism"),
            ("   \n1\n".into(), "line 1", "expected the parallelism"),
            (format!("PIPELINE\n1\n{layer}"), "line 1", "unknown parallelism \"PIPELINE\""),
            (format!("data\n1\n{layer}"), "line 1", "expected MICRO, DATA"),
            (format!("HYBRID_TRANSFORMER\n1\n{layer}"), "line 1", "does not support"),
            (format!("HYBRID_DLRM\n1\n{layer}"), "line 1", "last bottom layer"),
            (format!("HYBRID_DLRM x\n1\n{layer}"), "line 1", "non-negative integer, found \"x\""),
            (format!("HYBRID_DLRM 0\n1\n{layer}"), "line 1", "expected at least 1"),
            (format!("HYBRID_DLRM 1\n2\n{layer}\n{layer}"), "line 3", "expected ALLTOALL in column 4"),
            ("DATA".into(), "line 2", "expected the number of layer lines"),
            (format!("DATA\n\n{layer}"), "line 2", "expected the number of layer lines"),
            (format!("DATA\nsix\n{layer}"), "line 2", "found \"six\""),
            (format!("DATA\n1 2\n{layer}"), "line 2", "expected only the number"),
            (format!("DATA\n2\n{layer}"), "line 2", "the layer count is 2 but the file has 1 layer lines (lines 3-3)"),
            (format!("DATA\n1\n{layer}\n{layer}"), "line 2", "the layer count is 1 but the file has 2"),
            ("DATA\n0\n".into(), "line 2", "expected at least one layer"),
            (format!("DATA\n2\n{layer}\nl -1 1 NONE 0 2 NONE 0 3 ALLREDUCE 8"), "line 4", "11 columns; expected 12"),
            (
                format!("DATA\n1\n{}", layer.replace("-1 1", "-1 fast")),
                "line 3",
                "column 3 (fwd_comp): expected a non-negative integer compute time, found \"fast\"",
            ),
            (format!("DATA\n1\n{}", layer.replace(" 2 ", " -2 ")), "line 3", "column 6 (ig_comp)"),
            (
                format!("DATA\n1\n{}", layer.replace("ALLREDUCE", "ALL_REDUCE")),
                "line 3",
                "column 10 (wg_comm_type): unknown comm type \"ALL_REDUCE\"",
            ),
            (format!("DATA\n1\n{}", layer.replace(" 8 ", " 1e6 ")), "line 3", "column 11 (wg_comm_size)"),
            (format!("DATA\n1\n{}", layer.replace(" 8 ", " 9223372036854775808 ")), "line 3", "does not fit comm_size"),
            (format!("DATA\n1\n{layer}").replace(" 4", " x"), "line 3", "column 12 (wg_update)"),
            (format!("HYBRID_CUSTOMIZED\n1\n{layer}"), "line 3", "12 columns; expected 13"),
            (
                format!("HYBRID_CUSTOMIZED\n1\n{layer} PIPE"),
                "line 3",
                "column 13 (parallelism): unknown layer parallelism",
            ),
        ];
        for (text, line, what) in cases {
            let err = parse_err(&text);
            assert!(err.starts_with(&format!("bad.txt: {line}: ")), "{text:?}: {err}");
            assert!(err.contains(what), "{text:?}: {err}");
        }
    }

    #[test]
    fn bad_files_and_options_are_reported_with_the_file() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let good = dir.path().join("good.txt");
        std::fs::write(&good, "MICRO\n1\nl -1 1 NONE 0 2 NONE 0 3 ALLREDUCE 8 4\n").unwrap_or_else(|e| panic!("{e}"));
        let err = |path: &Path, npus, passes| {
            convert_text_workload(path, &TextOptions { npus, passes }).err().map(|e| e.to_string()).unwrap_or_default()
        };
        let shown = good.display().to_string();
        assert!(err(&good, 0, 1).starts_with(&format!("{shown}: options: 0 NPUs")));
        assert!(err(&good, 1, 0).starts_with(&format!("{shown}: options: 0 passes")));
        assert!(err(&good, u32::MAX, u32::MAX).contains("expected at most"));
        assert!(err(&dir.path().join("missing.txt"), 1, 1).contains("missing.txt: cannot open"));
        assert!(err(dir.path(), 1, 1).contains("is a directory"));
        let latin1 = dir.path().join("latin1.txt");
        std::fs::write(&latin1, b"MICRO\n1\nl\xe9 -1 1 NONE 0 2 NONE 0 3 ALLREDUCE 8 4\n")
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            err(&latin1, 1, 1).ends_with("latin1.txt: line 3: invalid UTF-8; expected an ASTRA-sim 1.0 text workload")
        );
    }

    proptest::proptest! {
        #[test]
        fn parsing_and_converting_never_panic(text in "(?s).{0,300}") {
            if let Ok(w) = TextWorkload::parse(&text, Path::new("p.txt")) {
                let _ = w.to_traces(&TextOptions { npus: 2, passes: 2 });
            }
        }

        #[test]
        fn mangled_real_files_never_panic(
            file in proptest::sample::select(vec![
                "MLP_ModelParallel.txt", "MLP_HybridParallel_Data_Model.txt", "microAllToAll.txt",
                "sample_per_layer_parallel_HybridCustomized.txt",
            ]),
            header in proptest::sample::select(vec![
                "MICRO", "DATA", "MODEL", "HYBRID_DATA_MODEL", "HYBRID_MODEL_DATA", "HYBRID_DLRM 1",
                "HYBRID_DLRM_ENHANCED 3", "HYBRID_DLRM 18446744073709551615", "HYBRID_CUSTOMIZED",
            ]),
            cut in 0usize..700,
            junk in "[ \t\r\n0-9A-Z_-]{0,8}",
        ) {
            let text = std::fs::read_to_string(text_workload(file)).unwrap_or_default();
            let body = text.split_once('\n').map_or("", |(_, b)| b);
            let mut mangled = format!("{header}\n{body}");
            let at = (0..=cut.min(mangled.len())).rev().find(|&i| mangled.is_char_boundary(i)).unwrap_or(0);
            mangled.insert_str(at, &junk);
            if let Ok(w) = TextWorkload::parse(&mangled, Path::new("p.txt")) {
                let traces = w.to_traces(&TextOptions { npus: 2, passes: 2 });
                if let Ok(traces) = traces {
                    assert_ids_count_across_ranks(&traces);
                    assert_deps_point_backwards(&traces);
                    let per_rank = w.nodes_per_pass() * 2;
                    assert!(traces.iter().all(|t| t.nodes.len() as u64 == per_rank));
                }
            }
        }
    }
}
