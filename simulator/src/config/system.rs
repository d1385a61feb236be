//! The system layer's settings: chunking, scheduling, collective algorithms,
//! per-step delays, the compute model.
//!
//! The ASTRA-sim form is the JSON that `Sys::initialize_sys` reads (ASTRA-sim
//! 518bd513, with `CollectiveImplLookup::setup_collective_impl_from_config`
//! for the algorithm lists). Every key it parses is read here, with the C++
//! field's type and ASTRA-sim's default when the key is absent:
//!
//! | key | field | absent in ASTRA-sim (`Sys::Sys`) |
//! |---|---|---|
//! | `scheduling-policy` | [`SystemConfig::scheduling_policy`] | uninitialised; LIFO here (enum value 0) |
//! | `collective-optimization` | [`SystemConfig::collective_optimization`] | uninitialised; baseline here (value 0) |
//! | `active-chunks-per-dimension` | [`SystemConfig::active_chunks_per_dimension`] | 1 |
//! | `preferred-dataset-splits` | [`SystemConfig::preferred_dataset_splits`] | 0, so the first collective divides by zero: required here |
//! | `endpoint-delay` | [`SystemConfig::endpoint_delay_ns`] | 10, *not* multiplied by `--injection-scale` |
//! | `local-reduction-delay` | [`SystemConfig::local_reduction_delay_ns`] | 1 |
//! | `model-shared-bus` | [`SystemConfig::model_shared_bus`] | false (only exactly 1 turns it on) |
//! | `L`, `o`, `g`, `G` | [`SystemConfig::loggp`] | 0 |
//! | `peak-perf` | [`SystemConfig::peak_perf_tflops`] | 0 |
//! | `local-mem-bw` | [`SystemConfig::local_mem_bw_gbps`] | 0 |
//! | `roofline-enabled`, `trace-enabled`, `replay-only`, `track-local-mem` | bool fields | false |
//! | `local-mem-trace-filename` | [`SystemConfig::local_mem_trace_filename`] | `local_mem_trace` |
//! | `*-implementation` | [`SystemConfig::implementations`] | none: using that collective is an error |
//! | `*-implementation-custom` | [`SystemConfig::custom_implementations`] | none |
//! | `per-node-custom-implementation` | [`SystemConfig::per_node_custom_implementation`] | none |
//!
//! `boost-mode` appears in every ASTRA-sim example but is not parsed; it is
//! accepted silently. Keys older ASTRA-sim versions read (`packet-routing`,
//! `injection-policy`, `intra-dimension-scheduling`,
//! `inter-dimension-scheduling`) and unknown keys are warned about.
//!
//! The native TOML form names the same settings in snake_case with units
//! (see `configs/system/ring_lifo.toml`).

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{ConfigError, Result};
use super::network::NetworkConfig;
use super::paths::resolve_config_path;
use super::reader::{parse_json, quote, Keys};
use super::{format_for, parse_toml, read_text, ConfigFormat, Origin};

/// How streams of different collectives are ordered in a queue
/// (`Sys::get_priority`). In workload-driven runs it never changes the cycle
/// count (one collective in flight per rank), but it is kept for fidelity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SchedulingPolicy {
    /// Newer collectives first (`priority_counter++`). ASTRA-sim name `LIFO`.
    #[default]
    Lifo,
    /// Older collectives first (`priority_counter--`). ASTRA-sim name `FIFO`.
    Fifo,
    /// The node's `comm_priority`. ASTRA-sim name `EXPLICIT`.
    Explicit,
}

impl SchedulingPolicy {
    /// The ASTRA-sim spelling.
    pub fn astra_name(self) -> &'static str {
        match self {
            SchedulingPolicy::Lifo => "LIFO",
            SchedulingPolicy::Fifo => "FIFO",
            SchedulingPolicy::Explicit => "EXPLICIT",
        }
    }
}

/// How a multi-dimensional collective is split into per-dimension phases
/// (`Sys::generate_collective`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CollectiveOptimization {
    /// The same collective on every dimension in turn. ASTRA-sim `baseline`.
    #[default]
    Baseline,
    /// All-reduce as reduce-scatter up, all-reduce on the last dimension,
    /// all-gather down. ASTRA-sim `localBWAware`; TOML `local-bw-aware`.
    #[serde(rename = "local-bw-aware")]
    LocalBwAware,
}

impl CollectiveOptimization {
    /// The ASTRA-sim spelling.
    pub fn astra_name(self) -> &'static str {
        match self {
            CollectiveOptimization::Baseline => "baseline",
            CollectiveOptimization::LocalBwAware => "localBWAware",
        }
    }
}

/// The four collectives that have an algorithm setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Collective {
    /// All-reduce.
    AllReduce,
    /// All-gather.
    AllGather,
    /// Reduce-scatter.
    ReduceScatter,
    /// All-to-all.
    AllToAll,
}

impl Collective {
    /// All four, in ASTRA-sim's usual key order.
    pub const ALL: [Collective; 4] =
        [Collective::AllReduce, Collective::AllGather, Collective::ReduceScatter, Collective::AllToAll];

    fn stem(self) -> &'static str {
        match self {
            Collective::AllReduce => "all-reduce",
            Collective::AllGather => "all-gather",
            Collective::ReduceScatter => "reduce-scatter",
            Collective::AllToAll => "all-to-all",
        }
    }

    fn native(self) -> &'static str {
        match self {
            Collective::AllReduce => "all_reduce",
            Collective::AllGather => "all_gather",
            Collective::ReduceScatter => "reduce_scatter",
            Collective::AllToAll => "all_to_all",
        }
    }

    /// ASTRA-sim's key for the per-dimension list (`all-reduce-implementation`).
    pub fn implementation_key(self) -> String {
        format!("{}-implementation", self.stem())
    }

    /// ASTRA-sim's key for the custom ET prefix (`all-reduce-implementation-custom`).
    pub fn custom_key(self) -> String {
        format!("{}-implementation-custom", self.stem())
    }
}

/// A value per collective.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PerCollective<T> {
    /// For all-reduce.
    pub all_reduce: T,
    /// For all-gather.
    pub all_gather: T,
    /// For reduce-scatter.
    pub reduce_scatter: T,
    /// For all-to-all.
    pub all_to_all: T,
}

impl<T> PerCollective<T> {
    /// The value for `c`.
    pub fn get(&self, c: Collective) -> &T {
        match c {
            Collective::AllReduce => &self.all_reduce,
            Collective::AllGather => &self.all_gather,
            Collective::ReduceScatter => &self.reduce_scatter,
            Collective::AllToAll => &self.all_to_all,
        }
    }

    fn get_mut(&mut self, c: Collective) -> &mut T {
        match c {
            Collective::AllReduce => &mut self.all_reduce,
            Collective::AllGather => &mut self.all_gather,
            Collective::ReduceScatter => &mut self.reduce_scatter,
            Collective::AllToAll => &mut self.all_to_all,
        }
    }
}

/// A native collective algorithm for one network dimension
/// (`CollectiveImplLookup.cc`). The `One*` variants flatten every dimension
/// into one logical ring (`GeneralComplexTopology`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CollectiveImpl {
    /// `ring`: a ring over the dimension's NPUs.
    Ring,
    /// `oneRing`.
    OneRing,
    /// `direct` / `directN`: every peer at once, at most `window` in flight
    /// (`None`: unlimited, ASTRA-sim's window -1).
    Direct {
        /// Destinations in flight; `None` for all of them.
        window: Option<u32>,
    },
    /// `oneDirect` / `oneDirectN`.
    OneDirect {
        /// Destinations in flight; `None` for all of them.
        window: Option<u32>,
    },
    /// `halvingDoubling`.
    HalvingDoubling,
    /// `oneHalvingDoubling`.
    OneHalvingDoubling,
    /// `doubleBinaryTree` (all-reduce only).
    DoubleBinaryTree,
}

const ASTRA_IMPL_NAMES: &str = "ring, oneRing, direct, direct<N> (window N, e.g. direct4), oneDirect, \
oneDirect<N>, halvingDoubling, oneHalvingDoubling, doubleBinaryTree";
const NATIVE_IMPL_NAMES: &str = "ring, one-ring, direct, direct-<N> (window N, e.g. direct-4), \
one-direct, one-direct-<N>, halving-doubling, one-halving-doubling, double-binary-tree";

impl CollectiveImpl {
    /// Parses an ASTRA-sim name exactly as ASTRA-sim 518bd513 does. A window
    /// is read like `stoi(name.substr(6, 5))` (9 for `oneDirect`): leading
    /// blanks and a sign are allowed, digits after the fifth character and
    /// anything after the digits are ignored (with a warning). A window of -1
    /// means unlimited, as in ASTRA-sim; 0 or another negative number would
    /// never finish the collective in ASTRA-sim, so it is an error.
    ///
    /// On failure the `Err` says what was expected.
    pub fn from_astra_name(name: &str) -> std::result::Result<(CollectiveImpl, Option<String>), String> {
        match name {
            "ring" => Ok((CollectiveImpl::Ring, None)),
            "oneRing" => Ok((CollectiveImpl::OneRing, None)),
            "doubleBinaryTree" => Ok((CollectiveImpl::DoubleBinaryTree, None)),
            "halvingDoubling" => Ok((CollectiveImpl::HalvingDoubling, None)),
            "oneHalvingDoubling" => Ok((CollectiveImpl::OneHalvingDoubling, None)),
            _ if name.starts_with("direct") => {
                let (window, warning) = stoi_window(name, "direct".len())?;
                Ok((CollectiveImpl::Direct { window }, warning))
            }
            _ if name.starts_with("oneDirect") => {
                let (window, warning) = stoi_window(name, "oneDirect".len())?;
                Ok((CollectiveImpl::OneDirect { window }, warning))
            }
            _ => Err(format!("one of {ASTRA_IMPL_NAMES}")),
        }
    }

    /// Parses a native (kebab-case) name; on failure the `Err` says what was
    /// expected.
    pub fn from_native_name(name: &str) -> std::result::Result<CollectiveImpl, String> {
        let windowed = |rest: &str| -> std::result::Result<Option<u32>, String> {
            if rest.is_empty() {
                return Ok(None);
            }
            match rest.strip_prefix('-').map(str::parse::<u32>) {
                Some(Ok(w)) if w >= 1 && w <= i32::MAX as u32 => Ok(Some(w)),
                _ => Err(format!("one of {NATIVE_IMPL_NAMES}, with a window of at least 1")),
            }
        };
        match name {
            "ring" => Ok(CollectiveImpl::Ring),
            "one-ring" => Ok(CollectiveImpl::OneRing),
            "halving-doubling" => Ok(CollectiveImpl::HalvingDoubling),
            "one-halving-doubling" => Ok(CollectiveImpl::OneHalvingDoubling),
            "double-binary-tree" => Ok(CollectiveImpl::DoubleBinaryTree),
            _ if name.starts_with("direct") => {
                Ok(CollectiveImpl::Direct { window: windowed(&name["direct".len()..])? })
            }
            _ if name.starts_with("one-direct") => {
                Ok(CollectiveImpl::OneDirect { window: windowed(&name["one-direct".len()..])? })
            }
            _ => Err(format!("one of {NATIVE_IMPL_NAMES}")),
        }
    }

    /// The ASTRA-sim spelling (`direct4`, `oneRing`, ...).
    pub fn astra_name(self) -> String {
        match self {
            CollectiveImpl::Ring => "ring".into(),
            CollectiveImpl::OneRing => "oneRing".into(),
            CollectiveImpl::Direct { window: None } => "direct".into(),
            CollectiveImpl::Direct { window: Some(w) } => format!("direct{w}"),
            CollectiveImpl::OneDirect { window: None } => "oneDirect".into(),
            CollectiveImpl::OneDirect { window: Some(w) } => format!("oneDirect{w}"),
            CollectiveImpl::HalvingDoubling => "halvingDoubling".into(),
            CollectiveImpl::OneHalvingDoubling => "oneHalvingDoubling".into(),
            CollectiveImpl::DoubleBinaryTree => "doubleBinaryTree".into(),
        }
    }

    /// The native spelling (`direct-4`, `one-ring`, ...).
    pub fn native_name(self) -> String {
        match self {
            CollectiveImpl::Ring => "ring".into(),
            CollectiveImpl::OneRing => "one-ring".into(),
            CollectiveImpl::Direct { window: None } => "direct".into(),
            CollectiveImpl::Direct { window: Some(w) } => format!("direct-{w}"),
            CollectiveImpl::OneDirect { window: None } => "one-direct".into(),
            CollectiveImpl::OneDirect { window: Some(w) } => format!("one-direct-{w}"),
            CollectiveImpl::HalvingDoubling => "halving-doubling".into(),
            CollectiveImpl::OneHalvingDoubling => "one-halving-doubling".into(),
            CollectiveImpl::DoubleBinaryTree => "double-binary-tree".into(),
        }
    }

    /// True for the `one*` variants, which span every dimension at once.
    pub fn spans_all_dims(self) -> bool {
        matches!(self, CollectiveImpl::OneRing | CollectiveImpl::OneDirect { .. } | CollectiveImpl::OneHalvingDoubling)
    }
}

impl fmt::Display for CollectiveImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.astra_name())
    }
}

impl Serialize for CollectiveImpl {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(&self.native_name())
    }
}

impl<'de> Deserialize<'de> for CollectiveImpl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let name = String::deserialize(d)?;
        CollectiveImpl::from_native_name(&name)
            .map_err(|expected| serde::de::Error::custom(format!("expected {expected}, got {}", quote(&name))))
    }
}

/// The window of `direct<N>`: C++ `stoi(name.substr(prefix, 5))`.
fn stoi_window(name: &str, prefix: usize) -> std::result::Result<(Option<u32>, Option<String>), String> {
    let bytes = name.as_bytes();
    if bytes.len() == prefix {
        return Ok((None, None));
    }
    let expected =
        || format!("{} followed by a window of at least 1 (or nothing for an unlimited window)", &name[..prefix]);
    let field = &bytes[prefix..bytes.len().min(prefix + 5)];
    let mut i = 0;
    while i < field.len() && matches!(field[i], b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r') {
        i += 1;
    }
    let mut negative = false;
    if i < field.len() && (field[i] == b'+' || field[i] == b'-') {
        negative = field[i] == b'-';
        i += 1;
    }
    let digits_start = i;
    let mut value: i64 = 0;
    while i < field.len() && field[i].is_ascii_digit() {
        value = value * 10 + i64::from(field[i] - b'0');
        i += 1;
    }
    if i == digits_start {
        return Err(expected());
    }
    if negative {
        value = -value;
    }
    let clean = digits_start == 0 && prefix + i == bytes.len();
    let window = match value {
        -1 => None,
        w if w >= 1 => Some(w as u32),
        _ => return Err(expected()),
    };
    let warning = if !clean {
        Some(format!(
            "ASTRA-sim reads the window of {} as stoi({:?}) = {value}, ignoring the other characters",
            quote(name),
            String::from_utf8_lossy(field)
        ))
    } else if value == -1 {
        Some(format!("{} means an unlimited window (ASTRA-sim's -1)", quote(name)))
    } else {
        None
    };
    Ok((window, warning))
}

/// LogGP parameters of the shared-bus model (`MemBus`, `LogGP.cc`), used only
/// when [`SystemConfig::model_shared_bus`] is on. ASTRA-sim stores them as
/// C++ `float`, and so does this struct.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogGp {
    /// `L`: latency in ns.
    #[serde(default)]
    pub latency_ns: f32,
    /// `o`: per-message overhead in ns.
    #[serde(default)]
    pub overhead_ns: f32,
    /// `g`: gap between messages in ns.
    #[serde(default)]
    pub gap_ns: f32,
    /// `G`: gap per byte in ns.
    #[serde(default)]
    pub gap_per_byte_ns: f32,
}

/// The validated system-layer settings.
///
/// Fields are public to read and to adjust in code; values read from a file
/// have passed the checks described on each field.
#[derive(Debug, Clone, PartialEq)]
pub struct SystemConfig {
    /// `scheduling-policy`. Default LIFO.
    pub scheduling_policy: SchedulingPolicy,
    /// `collective-optimization`. Default baseline.
    pub collective_optimization: CollectiveOptimization,
    /// `active-chunks-per-dimension`: streams running at once per queue is
    /// `ceil(active / queues_per_dim[0])`. At least 1 (0 would never run a
    /// stream). Default 1.
    pub active_chunks_per_dimension: u32,
    /// `preferred-dataset-splits`: chunks per collective (`chunk = size /
    /// splits`). At least 1; required.
    pub preferred_dataset_splits: u32,
    /// `endpoint-delay` in ns as written (truncated to a whole number, as
    /// ASTRA-sim's `int` does); `None` when the key is absent. Use
    /// [`SystemConfig::communication_delay_ns`] for the value ASTRA-sim uses.
    pub endpoint_delay_ns: Option<u32>,
    /// `local-reduction-delay`: ns per 100 bytes reduced, used only by the
    /// LogGP shared bus. Default 1.
    pub local_reduction_delay_ns: u32,
    /// `model-shared-bus`: on only when the value is exactly 1.
    pub model_shared_bus: bool,
    /// `L`, `o`, `g`, `G`.
    pub loggp: LogGp,
    /// `peak-perf` in TFLOPS (1e12 FLOP/s) for the roofline model. `None`
    /// when absent (ASTRA-sim: 0).
    pub peak_perf_tflops: Option<f64>,
    /// `local-mem-bw` in GB/s with decimal GB (1e9 bytes/s), for reductions
    /// and the roofline model. `None` when absent (ASTRA-sim: 0). Use
    /// [`SystemConfig::local_mem_bw_bytes_per_s`], which refuses a missing or
    /// zero value with the file and key named.
    pub local_mem_bw_gbps: Option<f64>,
    /// `roofline-enabled`: compute time from the roofline model instead of
    /// the trace's durations.
    pub roofline_enabled: bool,
    /// `trace-enabled`: debug log lines per issue and callback.
    pub trace_enabled: bool,
    /// `replay-only`: every node takes its recorded duration.
    pub replay_only: bool,
    /// `track-local-mem`: record per-tensor local memory use.
    pub track_local_mem: bool,
    /// `local-mem-trace-filename`: where the local memory trace goes.
    /// Default `local_mem_trace`.
    pub local_mem_trace_filename: String,
    /// `<collective>-implementation`: one algorithm per network dimension,
    /// dimension 0 first. Empty when the key is absent (then using that
    /// collective natively is an error, as in ASTRA-sim).
    pub implementations: PerCollective<Vec<CollectiveImpl>>,
    /// `<collective>-implementation-custom`: the Chakra ET prefix of a custom
    /// algorithm (one ET per rank: `<prefix>.<rank>.et`), as written. Takes
    /// precedence over the native list. See
    /// [`SystemConfig::custom_et_prefix`] for the resolved path.
    pub custom_implementations: PerCollective<Option<String>>,
    /// `per-node-custom-implementation`: a YAML file mapping Chakra node ids
    /// to ET prefixes, as written. See
    /// [`SystemConfig::per_node_custom_implementations`].
    pub per_node_custom_implementation: Option<String>,
    origin: Origin,
}

/// Native TOML form of [`SystemConfig`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SystemToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    scheduling_policy: Option<SchedulingPolicy>,
    #[serde(skip_serializing_if = "Option::is_none")]
    collective_optimization: Option<CollectiveOptimization>,
    #[serde(skip_serializing_if = "Option::is_none")]
    active_chunks_per_dimension: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    preferred_dataset_splits: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    endpoint_delay_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_reduction_delay_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_shared_bus: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    peak_perf_tflops: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_mem_bw_gbps: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    roofline_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_enabled: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replay_only: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    track_local_mem: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_mem_trace_filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    loggp: Option<LogGp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    implementations: Option<ImplsToml>,
    #[serde(skip_serializing_if = "Option::is_none")]
    custom_implementations: Option<CustomToml>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImplsToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    all_reduce: Option<Vec<CollectiveImpl>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    all_gather: Option<Vec<CollectiveImpl>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reduce_scatter: Option<Vec<CollectiveImpl>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    all_to_all: Option<Vec<CollectiveImpl>>,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CustomToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    all_reduce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    all_gather: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reduce_scatter: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    all_to_all: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_node: Option<String>,
}

impl ImplsToml {
    fn get(&self, c: Collective) -> &Option<Vec<CollectiveImpl>> {
        match c {
            Collective::AllReduce => &self.all_reduce,
            Collective::AllGather => &self.all_gather,
            Collective::ReduceScatter => &self.reduce_scatter,
            Collective::AllToAll => &self.all_to_all,
        }
    }
}

impl CustomToml {
    fn get(&self, c: Collective) -> &Option<String> {
        match c {
            Collective::AllReduce => &self.all_reduce,
            Collective::AllGather => &self.all_gather,
            Collective::ReduceScatter => &self.reduce_scatter,
            Collective::AllToAll => &self.all_to_all,
        }
    }
}

/// Keys `Sys::initialize_sys` and `CollectiveImplLookup` read.
const KNOWN_KEYS: [&str; 27] = [
    "scheduling-policy",
    "collective-optimization",
    "local-reduction-delay",
    "active-chunks-per-dimension",
    "L",
    "o",
    "g",
    "G",
    "endpoint-delay",
    "model-shared-bus",
    "preferred-dataset-splits",
    "peak-perf",
    "local-mem-bw",
    "roofline-enabled",
    "trace-enabled",
    "replay-only",
    "track-local-mem",
    "local-mem-trace-filename",
    "all-reduce-implementation",
    "all-gather-implementation",
    "reduce-scatter-implementation",
    "all-to-all-implementation",
    "all-reduce-implementation-custom",
    "all-gather-implementation-custom",
    "reduce-scatter-implementation-custom",
    "all-to-all-implementation-custom",
    "per-node-custom-implementation",
];
/// In every ASTRA-sim example, read by nothing.
const SILENT_KEYS: [&str; 1] = ["boost-mode"];
/// Read by older ASTRA-sim versions only.
const LEGACY_KEYS: [&str; 4] =
    ["packet-routing", "injection-policy", "intra-dimension-scheduling", "inter-dimension-scheduling"];

/// Settings as read, before the checks shared by both forms.
#[derive(Default)]
struct Raw {
    scheduling_policy: Option<SchedulingPolicy>,
    collective_optimization: Option<CollectiveOptimization>,
    active_chunks: Option<i64>,
    splits: Option<i64>,
    endpoint_delay: Option<i64>,
    local_reduction_delay: Option<i64>,
    model_shared_bus: bool,
    loggp: [Option<f64>; 4],
    peak_perf: Option<f64>,
    local_mem_bw: Option<f64>,
    roofline: bool,
    trace: bool,
    replay_only: bool,
    track_local_mem: bool,
    trace_filename: Option<String>,
    implementations: PerCollective<Option<Vec<CollectiveImpl>>>,
    custom: PerCollective<Option<String>>,
    per_node: Option<String>,
}

impl SystemConfig {
    /// Settings with ASTRA-sim's defaults and the given number of chunks per
    /// collective, ring on one dimension for every collective, built in code.
    pub fn new(preferred_dataset_splits: u32) -> SystemConfig {
        let ring = vec![CollectiveImpl::Ring];
        SystemConfig {
            scheduling_policy: SchedulingPolicy::Lifo,
            collective_optimization: CollectiveOptimization::Baseline,
            active_chunks_per_dimension: 1,
            preferred_dataset_splits: preferred_dataset_splits.max(1),
            endpoint_delay_ns: None,
            local_reduction_delay_ns: 1,
            model_shared_bus: false,
            loggp: LogGp::default(),
            peak_perf_tflops: None,
            local_mem_bw_gbps: None,
            roofline_enabled: false,
            trace_enabled: false,
            replay_only: false,
            track_local_mem: false,
            local_mem_trace_filename: "local_mem_trace".to_string(),
            implementations: PerCollective {
                all_reduce: ring.clone(),
                all_gather: ring.clone(),
                reduce_scatter: ring.clone(),
                all_to_all: ring,
            },
            custom_implementations: PerCollective::default(),
            per_node_custom_implementation: None,
            origin: Origin::new(Path::new("(system config built in code)"), ConfigFormat::NativeToml),
        }
    }

    /// Reads a system config: `.json` as ASTRA-sim's system JSON, `.toml` as
    /// Strata's native form.
    pub fn load(path: impl AsRef<Path>) -> Result<SystemConfig> {
        let path = path.as_ref();
        let format = format_for(
            path,
            "system config",
            &[ConfigFormat::AstraJson, ConfigFormat::NativeToml],
            ".json (ASTRA-sim system config) or .toml (native)",
        )?;
        let text = read_text(path)?;
        match format {
            ConfigFormat::NativeToml => SystemConfig::from_toml_str(&text, path),
            _ => SystemConfig::from_json_str(&text, path),
        }
    }

    /// Parses ASTRA-sim's system JSON; `path` is used in messages and to
    /// resolve the paths written inside.
    pub fn from_json_str(text: &str, path: &Path) -> Result<SystemConfig> {
        let doc = parse_json(text, path)?;
        let keys = Keys::root(&doc, path)?;
        keys.warn_unknown("system", &KNOWN_KEYS, &SILENT_KEYS, &LEGACY_KEYS);
        let scheduling_policy = match keys.string("scheduling-policy")? {
            None => None,
            Some("LIFO") => Some(SchedulingPolicy::Lifo),
            Some("FIFO") => Some(SchedulingPolicy::Fifo),
            Some("EXPLICIT") => Some(SchedulingPolicy::Explicit),
            Some(other) => {
                return Err(ConfigError::invalid(
                    path,
                    "scheduling-policy",
                    "one of LIFO, FIFO, EXPLICIT",
                    quote(other),
                ))
            }
        };
        let collective_optimization = match keys.string("collective-optimization")? {
            None => None,
            Some("baseline") => Some(CollectiveOptimization::Baseline),
            Some("localBWAware") => Some(CollectiveOptimization::LocalBwAware),
            Some(other) => {
                return Err(ConfigError::invalid(
                    path,
                    "collective-optimization",
                    "one of baseline, localBWAware",
                    quote(other),
                ))
            }
        };
        let mut raw = Raw {
            scheduling_policy,
            collective_optimization,
            local_reduction_delay: keys.int("local-reduction-delay")?,
            active_chunks: keys.int("active-chunks-per-dimension")?,
            loggp: [keys.number("L")?, keys.number("o")?, keys.number("g")?, keys.number("G")?],
            endpoint_delay: keys.int("endpoint-delay")?,
            model_shared_bus: match keys.get("model-shared-bus") {
                None => false,
                Some(Value::Bool(b)) => *b,
                Some(_) => keys.int("model-shared-bus")? == Some(1),
            },
            splits: keys.int("preferred-dataset-splits")?,
            peak_perf: keys.number("peak-perf")?,
            local_mem_bw: keys.number("local-mem-bw")?,
            roofline: keys.flag("roofline-enabled")?.unwrap_or(false),
            trace: keys.flag("trace-enabled")?.unwrap_or(false),
            replay_only: keys.flag("replay-only")?.unwrap_or(false),
            track_local_mem: keys.flag("track-local-mem")?.unwrap_or(false),
            trace_filename: keys.string("local-mem-trace-filename")?.map(str::to_string),
            ..Raw::default()
        };

        for c in Collective::ALL {
            let key = c.implementation_key();
            if let Some(names) = keys.string_list(&key)? {
                let mut list = Vec::with_capacity(names.len());
                for (i, name) in names.iter().enumerate() {
                    let (imp, warning) = CollectiveImpl::from_astra_name(name)
                        .map_err(|expected| ConfigError::invalid(path, format!("{key}[{i}]"), expected, quote(name)))?;
                    if let Some(w) = warning {
                        tracing::warn!("{}: key `{key}[{i}]`: {w}", path.display());
                    }
                    list.push(imp);
                }
                *raw.implementations.get_mut(c) = Some(list);
            }
            let key = c.custom_key();
            if let Some(prefixes) = keys.string_list(&key)? {
                if prefixes.len() != 1 {
                    return Err(ConfigError::invalid(
                        path,
                        &key,
                        "a list of exactly one Chakra ET prefix (one custom ET covers every dimension)",
                        format!("a list of {} item(s)", prefixes.len()),
                    ));
                }
                *raw.custom.get_mut(c) = Some(prefixes[0].to_string());
            }
        }
        raw.per_node = keys.string("per-node-custom-implementation")?.map(str::to_string);
        build(Origin::new(path, ConfigFormat::AstraJson), raw)
    }

    /// Parses the native TOML form; `path` is used in messages and to resolve
    /// the paths written inside.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<SystemConfig> {
        let doc: SystemToml = parse_toml(text, path)?;
        let loggp = doc.loggp.unwrap_or_default();
        let impls = doc.implementations.unwrap_or_default();
        let custom = doc.custom_implementations.unwrap_or_default();
        let raw = Raw {
            scheduling_policy: doc.scheduling_policy,
            collective_optimization: doc.collective_optimization,
            active_chunks: doc.active_chunks_per_dimension,
            splits: doc.preferred_dataset_splits,
            endpoint_delay: doc.endpoint_delay_ns,
            local_reduction_delay: doc.local_reduction_delay_ns,
            model_shared_bus: doc.model_shared_bus.unwrap_or(false),
            loggp: [
                Some(f64::from(loggp.latency_ns)),
                Some(f64::from(loggp.overhead_ns)),
                Some(f64::from(loggp.gap_ns)),
                Some(f64::from(loggp.gap_per_byte_ns)),
            ],
            peak_perf: doc.peak_perf_tflops,
            local_mem_bw: doc.local_mem_bw_gbps,
            roofline: doc.roofline_enabled.unwrap_or(false),
            trace: doc.trace_enabled.unwrap_or(false),
            replay_only: doc.replay_only.unwrap_or(false),
            track_local_mem: doc.track_local_mem.unwrap_or(false),
            trace_filename: doc.local_mem_trace_filename,
            implementations: PerCollective {
                all_reduce: impls.get(Collective::AllReduce).clone(),
                all_gather: impls.get(Collective::AllGather).clone(),
                reduce_scatter: impls.get(Collective::ReduceScatter).clone(),
                all_to_all: impls.get(Collective::AllToAll).clone(),
            },
            custom: PerCollective {
                all_reduce: custom.get(Collective::AllReduce).clone(),
                all_gather: custom.get(Collective::AllGather).clone(),
                reduce_scatter: custom.get(Collective::ReduceScatter).clone(),
                all_to_all: custom.get(Collective::AllToAll).clone(),
            },
            per_node: custom.per_node,
        };
        build(Origin::new(path, ConfigFormat::NativeToml), raw)
    }

    /// Where this config was read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The per-bundle endpoint delay in ns that ASTRA-sim uses
    /// (`communication_delay`): `int(endpoint-delay × injection_scale)` when
    /// the key is present, else 10 and *not* scaled. A negative or non-finite
    /// product gives 0.
    pub fn communication_delay_ns(&self, injection_scale: f64) -> u64 {
        match self.endpoint_delay_ns {
            None => 10,
            Some(d) => {
                let x = f64::from(d) * injection_scale;
                if x.is_finite() && x > 0.0 {
                    // C++ double -> int truncates; Rust's `as` truncates and saturates.
                    (x as i32).max(0) as u64
                } else {
                    0
                }
            }
        }
    }

    /// `local-mem-bw` in bytes per second (`GB/s × 1e9`, computed as ASTRA-sim
    /// does). A missing or zero value is an error naming the file and key:
    /// ASTRA-sim would divide by zero in the reduction delay
    /// `3 × (uint64)(size / local_mem_bw × 1e9)` or in the roofline.
    pub fn local_mem_bw_bytes_per_s(&self) -> Result<f64> {
        let key = self.origin.key("local-mem-bw", "local_mem_bw_gbps");
        match self.local_mem_bw_gbps {
            None => Err(ConfigError::missing(
                &self.origin.path,
                key,
                "the local memory bandwidth in GB/s (> 0), needed for reducing collective steps and the roofline model",
            )),
            Some(bw) if !(bw > 0.0 && bw.is_finite()) => Err(ConfigError::invalid(
                &self.origin.path,
                key,
                "a local memory bandwidth in GB/s greater than 0 (reductions divide by it)",
                bw.to_string(),
            )),
            Some(bw) => Ok(bw * 1_000_000_000.0),
        }
    }

    /// `peak-perf` in FLOP/s (`TFLOPS × 1e12`, as ASTRA-sim computes it). A
    /// missing or zero value is an error naming the file and key.
    pub fn peak_perf_flops(&self) -> Result<f64> {
        let key = self.origin.key("peak-perf", "peak_perf_tflops");
        match self.peak_perf_tflops {
            None => Err(ConfigError::missing(
                &self.origin.path,
                key,
                "the peak compute rate in TFLOPS (> 0), needed by the roofline model",
            )),
            Some(p) if !(p > 0.0 && p.is_finite()) => Err(ConfigError::invalid(
                &self.origin.path,
                key,
                "a peak compute rate in TFLOPS greater than 0",
                p.to_string(),
            )),
            Some(p) => Ok(p * 1_000_000_000_000.0),
        }
    }

    /// The native algorithms for `c`, one per dimension; an error naming the
    /// key when the config has none (ASTRA-sim: "No collective implementation
    /// found").
    pub fn implementation(&self, c: Collective) -> Result<&[CollectiveImpl]> {
        let list = self.implementations.get(c);
        if list.is_empty() {
            let native = format!("implementations.{}", c.native());
            return Err(ConfigError::missing(
                &self.origin.path,
                self.origin.key(&c.implementation_key(), &native),
                "one algorithm per network dimension, needed because the workload runs this collective",
            ));
        }
        Ok(list)
    }

    /// The custom ET prefix for `c`, resolved with [`resolve_config_path`]
    /// against this config's file.
    pub fn custom_et_prefix(&self, c: Collective) -> Option<PathBuf> {
        self.custom_implementations.get(c).as_deref().map(|raw| resolve_config_path(raw, &self.origin.path))
    }

    /// Reads the `per-node-custom-implementation` YAML (a mapping from Chakra
    /// node id to ET prefix) and resolves each prefix against the YAML's file.
    /// `Ok(None)` when the key is absent.
    pub fn per_node_custom_implementations(&self) -> Result<Option<BTreeMap<i64, PathBuf>>> {
        let Some(raw) = &self.per_node_custom_implementation else {
            return Ok(None);
        };
        let file = resolve_config_path(raw, &self.origin.path);
        let text = read_text(&file)?;
        let doc: serde_yaml_ng::Value = serde_yaml_ng::from_str(&text).map_err(|e| {
            let location =
                e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
            ConfigError::syntax(&file, "YAML", location, e.to_string())
        })?;
        let serde_yaml_ng::Value::Mapping(map) = doc else {
            return Err(ConfigError::invalid(
                &file,
                "(top level)",
                "a mapping from Chakra node id to custom ET prefix",
                "something else",
            ));
        };
        let mut out = BTreeMap::new();
        for (k, v) in &map {
            let id = match k {
                serde_yaml_ng::Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
                serde_yaml_ng::Value::String(s) if s.trim().parse::<i64>().is_ok() => {
                    s.trim().parse::<i64>().unwrap_or_default()
                }
                other => {
                    return Err(ConfigError::invalid(
                        &file,
                        format!("{other:?}"),
                        "a whole-number Chakra node id as key",
                        "another kind of key",
                    ))
                }
            };
            let prefix = match v {
                serde_yaml_ng::Value::String(s) => s.clone(),
                serde_yaml_ng::Value::Number(n) => n.to_string(),
                _ => {
                    return Err(ConfigError::invalid(
                        &file,
                        id.to_string(),
                        "a Chakra ET prefix (a string)",
                        "another kind of value",
                    ))
                }
            };
            out.insert(id, resolve_config_path(&prefix, &file));
        }
        Ok(Some(out))
    }

    /// Checks the per-dimension lists against a network: a list that is
    /// present must have an entry for every dimension (ASTRA-sim would index
    /// past its end); extra entries are ignored with a warning.
    pub fn check_against_network(&self, network: &NetworkConfig) -> Result<()> {
        let dims = network.dims.len();
        for c in Collective::ALL {
            let list = self.implementations.get(c);
            let key = self.origin.key(&c.implementation_key(), &format!("implementations.{}", c.native()));
            if !list.is_empty() && list.len() < dims {
                return Err(ConfigError::invalid(
                    &self.origin.path,
                    key,
                    format!("one algorithm per network dimension ({dims} for {})", network.origin().path.display()),
                    format!("{} algorithm(s)", list.len()),
                ));
            }
            if list.len() > dims {
                tracing::warn!(
                    "{}: key `{key}`: {} algorithms for a {dims}-dimensional network ({}); the extra ones are unused",
                    self.origin.path.display(),
                    list.len(),
                    network.origin().path.display()
                );
            }
        }
        Ok(())
    }

    /// The native TOML form of these settings.
    pub fn to_toml_string(&self) -> String {
        let opt_list = |v: &Vec<CollectiveImpl>| (!v.is_empty()).then(|| v.clone());
        let doc = SystemToml {
            scheduling_policy: Some(self.scheduling_policy),
            collective_optimization: Some(self.collective_optimization),
            active_chunks_per_dimension: Some(i64::from(self.active_chunks_per_dimension)),
            preferred_dataset_splits: Some(i64::from(self.preferred_dataset_splits)),
            endpoint_delay_ns: self.endpoint_delay_ns.map(i64::from),
            local_reduction_delay_ns: Some(i64::from(self.local_reduction_delay_ns)),
            model_shared_bus: Some(self.model_shared_bus),
            peak_perf_tflops: self.peak_perf_tflops,
            local_mem_bw_gbps: self.local_mem_bw_gbps,
            roofline_enabled: Some(self.roofline_enabled),
            trace_enabled: Some(self.trace_enabled),
            replay_only: Some(self.replay_only),
            track_local_mem: Some(self.track_local_mem),
            local_mem_trace_filename: Some(self.local_mem_trace_filename.clone()),
            loggp: (self.loggp != LogGp::default()).then_some(self.loggp),
            implementations: Some(ImplsToml {
                all_reduce: opt_list(&self.implementations.all_reduce),
                all_gather: opt_list(&self.implementations.all_gather),
                reduce_scatter: opt_list(&self.implementations.reduce_scatter),
                all_to_all: opt_list(&self.implementations.all_to_all),
            }),
            custom_implementations: Some(CustomToml {
                all_reduce: self.custom_implementations.all_reduce.clone(),
                all_gather: self.custom_implementations.all_gather.clone(),
                reduce_scatter: self.custom_implementations.reduce_scatter.clone(),
                all_to_all: self.custom_implementations.all_to_all.clone(),
                per_node: self.per_node_custom_implementation.clone(),
            }),
        };
        toml::to_string(&doc).unwrap_or_default()
    }

    /// ASTRA-sim's JSON form of these settings, for running ASTRA-sim on them.
    pub fn to_astra_json(&self) -> Value {
        let mut obj = Map::new();
        let mut put = |k: &str, v: Value| {
            obj.insert(k.to_string(), v);
        };
        put("scheduling-policy", json!(self.scheduling_policy.astra_name()));
        put("collective-optimization", json!(self.collective_optimization.astra_name()));
        put("active-chunks-per-dimension", json!(self.active_chunks_per_dimension));
        put("preferred-dataset-splits", json!(self.preferred_dataset_splits));
        put("local-reduction-delay", json!(self.local_reduction_delay_ns));
        put("model-shared-bus", json!(i32::from(self.model_shared_bus)));
        put("roofline-enabled", json!(i32::from(self.roofline_enabled)));
        put("trace-enabled", json!(i32::from(self.trace_enabled)));
        put("replay-only", json!(i32::from(self.replay_only)));
        put("track-local-mem", json!(i32::from(self.track_local_mem)));
        put("local-mem-trace-filename", json!(self.local_mem_trace_filename));
        if let Some(d) = self.endpoint_delay_ns {
            obj.insert("endpoint-delay".into(), json!(d));
        }
        if let Some(p) = self.peak_perf_tflops {
            obj.insert("peak-perf".into(), json!(p));
        }
        if let Some(bw) = self.local_mem_bw_gbps {
            obj.insert("local-mem-bw".into(), json!(bw));
        }
        if self.loggp != LogGp::default() {
            let l = self.loggp;
            for (k, v) in [("L", l.latency_ns), ("o", l.overhead_ns), ("g", l.gap_ns), ("G", l.gap_per_byte_ns)] {
                obj.insert(k.into(), json!(v));
            }
        }
        for c in Collective::ALL {
            let list = self.implementations.get(c);
            if !list.is_empty() {
                let names: Vec<String> = list.iter().map(|i| i.astra_name()).collect();
                obj.insert(c.implementation_key(), json!(names));
            }
            if let Some(prefix) = self.custom_implementations.get(c) {
                obj.insert(c.custom_key(), json!([prefix]));
            }
        }
        if let Some(p) = &self.per_node_custom_implementation {
            obj.insert("per-node-custom-implementation".into(), json!(p));
        }
        Value::Object(obj)
    }
}

/// The most chunks a collective may be split into: simulating them costs
/// about quadratic time (10^5 took 21 s on a 2-core machine, 10^6 did not
/// finish in a minute).
pub const MAX_DATASET_SPLITS: u32 = 16_384;

/// The checks both forms share, and ASTRA-sim's defaults.
fn build(origin: Origin, raw: Raw) -> Result<SystemConfig> {
    let path = origin.path.clone();
    let key = |astra: &str, native: &str| origin.key(astra, native);

    let scheduling_policy = raw.scheduling_policy.unwrap_or_else(|| {
        tracing::warn!(
            "{}: `{}` is absent; ASTRA-sim leaves it uninitialised, Strata uses LIFO (it does not change cycle counts of workload-driven runs)",
            path.display(),
            key("scheduling-policy", "scheduling_policy")
        );
        SchedulingPolicy::Lifo
    });
    let collective_optimization = raw.collective_optimization.unwrap_or_else(|| {
        tracing::warn!(
            "{}: `{}` is absent; ASTRA-sim leaves it uninitialised, Strata uses baseline",
            path.display(),
            key("collective-optimization", "collective_optimization")
        );
        CollectiveOptimization::Baseline
    });

    let at_least = |v: i64, min: i64, k: String, what: &str| -> Result<u32> {
        if v < min || v > i64::from(i32::MAX) {
            Err(ConfigError::invalid(&path, k, format!("{what}: a whole number of at least {min}"), v.to_string()))
        } else {
            Ok(v as u32)
        }
    };
    let active_chunks_per_dimension = at_least(
        raw.active_chunks.unwrap_or(1),
        1,
        key("active-chunks-per-dimension", "active_chunks_per_dimension"),
        "streams running at once per queue (0 would never run one)",
    )?;
    let splits_key = key("preferred-dataset-splits", "preferred_dataset_splits");
    let preferred_dataset_splits = match raw.splits {
        None => {
            return Err(ConfigError::missing(
                &path,
                splits_key,
                "the number of chunks each collective is split into, at least 1 (without it ASTRA-sim divides by zero at the first collective)",
            ))
        }
        Some(s) if s > i64::from(MAX_DATASET_SPLITS) => {
            return Err(ConfigError::invalid(
                &path,
                splits_key,
                format!(
                    "chunks per collective, at most {MAX_DATASET_SPLITS} (each chunk is simulated as its own stream; \
                     the real configs use 1 to 64)"
                ),
                s.to_string(),
            ))
        }
        Some(s) => at_least(s, 1, splits_key, "chunks per collective (ASTRA-sim divides the size by it)")?,
    };
    let endpoint_delay_ns = match raw.endpoint_delay {
        None => None,
        Some(d) => Some(at_least(d, 0, key("endpoint-delay", "endpoint_delay_ns"), "a delay in ns")?),
    };
    let local_reduction_delay_ns = at_least(
        raw.local_reduction_delay.unwrap_or(1),
        0,
        key("local-reduction-delay", "local_reduction_delay_ns"),
        "a delay in ns per 100 bytes",
    )?;

    let mut loggp_values = [0f32; 4];
    let loggp_keys =
        [("L", "loggp.latency_ns"), ("o", "loggp.overhead_ns"), ("g", "loggp.gap_ns"), ("G", "loggp.gap_per_byte_ns")];
    for ((slot, v), (astra, native)) in loggp_values.iter_mut().zip(raw.loggp).zip(loggp_keys) {
        let v = v.unwrap_or(0.0);
        if !(v.is_finite() && v >= 0.0 && v <= f64::from(f32::MAX)) {
            return Err(ConfigError::invalid(&path, key(astra, native), "a time in ns of at least 0", v.to_string()));
        }
        *slot = v as f32;
    }
    let loggp = LogGp {
        latency_ns: loggp_values[0],
        overhead_ns: loggp_values[1],
        gap_ns: loggp_values[2],
        gap_per_byte_ns: loggp_values[3],
    };

    let non_negative = |v: Option<f64>, k: String, what: &str| -> Result<Option<f64>> {
        match v {
            Some(x) if !(x.is_finite() && x >= 0.0) => {
                Err(ConfigError::invalid(&path, k, format!("{what} of at least 0"), x.to_string()))
            }
            other => Ok(other),
        }
    };
    let peak_perf_tflops =
        non_negative(raw.peak_perf, key("peak-perf", "peak_perf_tflops"), "a compute rate in TFLOPS")?;
    let local_mem_bw_gbps =
        non_negative(raw.local_mem_bw, key("local-mem-bw", "local_mem_bw_gbps"), "a bandwidth in GB/s")?;

    let mut implementations: PerCollective<Vec<CollectiveImpl>> = PerCollective::default();
    let mut custom_implementations: PerCollective<Option<String>> = PerCollective::default();
    for c in Collective::ALL {
        let k = key(&c.implementation_key(), &format!("implementations.{}", c.native()));
        if let Some(list) = raw.implementations.get(c) {
            if list.is_empty() {
                return Err(ConfigError::invalid(
                    &path,
                    k,
                    "one algorithm per network dimension (omit the key instead of leaving it empty)",
                    "an empty list",
                ));
            }
            for (i, imp) in list.iter().enumerate() {
                if *imp == CollectiveImpl::DoubleBinaryTree && c != Collective::AllReduce {
                    tracing::warn!(
                        "{}: key `{k}[{i}]`: ASTRA-sim implements doubleBinaryTree for all-reduce only",
                        path.display()
                    );
                }
                if *imp == CollectiveImpl::HalvingDoubling && c == Collective::AllToAll {
                    tracing::warn!(
                        "{}: key `{k}[{i}]`: ASTRA-sim fails on a halvingDoubling all-to-all (\"unknown communication type for HalvingDoubling\")",
                        path.display()
                    );
                }
            }
            *implementations.get_mut(c) = list.clone();
        }
        let ck = key(&c.custom_key(), &format!("custom_implementations.{}", c.native()));
        if let Some(prefix) = raw.custom.get(c) {
            if prefix.trim().is_empty() {
                return Err(ConfigError::invalid(&path, ck, "a Chakra ET prefix", "an empty string"));
            }
            *custom_implementations.get_mut(c) = Some(prefix.clone());
        }
    }
    if let Some(p) = &raw.per_node {
        if p.trim().is_empty() {
            return Err(ConfigError::invalid(
                &path,
                key("per-node-custom-implementation", "custom_implementations.per_node"),
                "the path of a YAML file mapping node ids to ET prefixes",
                "an empty string",
            ));
        }
    }

    // The roofline divides by both rates: min(local_mem_bw × OI, peak_perf).
    if raw.roofline && !raw.replay_only {
        for (value, astra, native, what) in [
            (peak_perf_tflops, "peak-perf", "peak_perf_tflops", "the peak compute rate in TFLOPS"),
            (local_mem_bw_gbps, "local-mem-bw", "local_mem_bw_gbps", "the local memory bandwidth in GB/s"),
        ] {
            let k = key(astra, native);
            let expected =
                format!("{what}, greater than 0: the roofline model is on and ASTRA-sim would divide by zero");
            match value {
                None => return Err(ConfigError::missing(&path, k, expected)),
                Some(x) if x <= 0.0 => return Err(ConfigError::invalid(&path, k, expected, x.to_string())),
                Some(_) => {}
            }
        }
    }

    Ok(SystemConfig {
        scheduling_policy,
        collective_optimization,
        active_chunks_per_dimension,
        preferred_dataset_splits,
        endpoint_delay_ns,
        local_reduction_delay_ns,
        model_shared_bus: raw.model_shared_bus,
        loggp,
        peak_perf_tflops,
        local_mem_bw_gbps,
        roofline_enabled: raw.roofline,
        trace_enabled: raw.trace,
        replay_only: raw.replay_only,
        track_local_mem: raw.track_local_mem,
        local_mem_trace_filename: raw.trace_filename.unwrap_or_else(|| "local_mem_trace".to_string()),
        implementations,
        custom_implementations,
        per_node_custom_implementation: raw.per_node,
        origin,
    })
}
