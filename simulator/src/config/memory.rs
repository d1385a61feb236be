//! Remote (expansion) memory, reached by the workload's MEM nodes.
//!
//! The ASTRA-sim form is the JSON read by
//! `extern/remote_memory_backend/analytical/AnalyticalRemoteMemory.cc`:
//!
//! | key | meaning | absent in ASTRA-sim |
//! |---|---|---|
//! | `memory-type` | `NO_MEMORY_EXPANSION`, `PER_NPU_MEMORY_EXPANSION`, `PER_NODE_MEMORY_EXPANSION` or `MEMORY_POOL` | uninitialised; no expansion here, with a warning |
//! | `remote-mem-latency` | ns per access, stored in a `uint64_t` | 0 |
//! | `remote-mem-bw` | GB/s with decimal GB, stored in a `uint64_t` (a fraction is cut off) and multiplied by 1e9 | 0 |
//! | `num-nodes` | nodes sharing one memory each (per-node type only) | 0 |
//! | `num-npus-per-node` | NPUs per node (per-node type only); NPU `i` is on node `i / num-npus-per-node` | 0 |
//!
//! An access takes `remote-mem-latency + size / (remote-mem-bw × 1e9) × 1e9`
//! ns. No expansion: any MEM node is fatal. Per NPU: accesses never wait. Per
//! node: one access at a time per node, the rest queue in FIFO order. Memory
//! pool: one access at a time overall.
//!
//! Native form (`.toml`): `memory_type` (`no-memory-expansion`,
//! `per-npu-memory-expansion`, `per-node-memory-expansion`, `memory-pool`),
//! `remote_mem_latency_ns`, `remote_mem_bw_gbps`, `num_nodes`,
//! `num_npus_per_node`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::error::{ConfigError, Result};
use super::network::NetworkConfig;
use super::reader::{parse_json, quote, Keys};
use super::{format_for, parse_toml, read_text, ConfigFormat, Origin};

/// How remote memory is organised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MemoryType {
    /// No remote memory: a MEM node is an error (`NO_MEMORY_EXPANSION`).
    #[default]
    NoMemoryExpansion,
    /// Each NPU has its own remote memory; accesses never wait
    /// (`PER_NPU_MEMORY_EXPANSION`).
    PerNpuMemoryExpansion,
    /// Each node of `num_npus_per_node` NPUs shares one memory, one access at
    /// a time (`PER_NODE_MEMORY_EXPANSION`).
    PerNodeMemoryExpansion,
    /// One memory for everyone, one access at a time (`MEMORY_POOL`).
    MemoryPool,
}

impl MemoryType {
    /// Every type, in ASTRA-sim's enum order.
    pub const ALL: [MemoryType; 4] = [
        MemoryType::NoMemoryExpansion,
        MemoryType::PerNodeMemoryExpansion,
        MemoryType::PerNpuMemoryExpansion,
        MemoryType::MemoryPool,
    ];

    /// The ASTRA-sim spelling (`PER_NPU_MEMORY_EXPANSION`, ...).
    pub fn astra_name(self) -> &'static str {
        match self {
            MemoryType::NoMemoryExpansion => "NO_MEMORY_EXPANSION",
            MemoryType::PerNpuMemoryExpansion => "PER_NPU_MEMORY_EXPANSION",
            MemoryType::PerNodeMemoryExpansion => "PER_NODE_MEMORY_EXPANSION",
            MemoryType::MemoryPool => "MEMORY_POOL",
        }
    }

    /// True for every type that has remote memory.
    pub fn has_remote_memory(self) -> bool {
        self != MemoryType::NoMemoryExpansion
    }
}

impl fmt::Display for MemoryType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.astra_name())
    }
}

/// The validated remote memory settings.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryConfig {
    /// `memory-type`.
    pub memory_type: MemoryType,
    /// `remote-mem-latency`: ns added to every access.
    pub remote_mem_latency_ns: u64,
    /// `remote-mem-bw` in GB/s with decimal GB (1e9 bytes/s), a whole number
    /// as ASTRA-sim stores it. Greater than 0 for every type with remote
    /// memory (each access divides by it); 0 when there is none.
    pub remote_mem_bw_gbps: u64,
    /// `num-nodes` and `num-npus-per-node` for
    /// [`MemoryType::PerNodeMemoryExpansion`] (both at least 1); `None` for
    /// the other types, which ignore them.
    pub per_node: Option<PerNodeLayout>,
    origin: Origin,
}

/// How NPUs are grouped into nodes for per-node memory expansion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PerNodeLayout {
    /// `num-nodes`.
    pub num_nodes: u32,
    /// `num-npus-per-node`.
    pub num_npus_per_node: u32,
}

/// Native TOML form of [`MemoryConfig`].
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryToml {
    #[serde(skip_serializing_if = "Option::is_none")]
    memory_type: Option<MemoryType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_mem_latency_ns: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_mem_bw_gbps: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_nodes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    num_npus_per_node: Option<i64>,
}

const KNOWN_KEYS: [&str; 5] = ["memory-type", "remote-mem-latency", "remote-mem-bw", "num-nodes", "num-npus-per-node"];

/// The largest `remote-mem-bw` whose product with 1e9 fits ASTRA-sim's `uint64_t`.
const MAX_BW_GBPS: i64 = (u64::MAX / 1_000_000_000) as i64;

impl MemoryConfig {
    /// No remote memory, built in code (what every oracle case uses).
    pub fn none() -> MemoryConfig {
        MemoryConfig {
            memory_type: MemoryType::NoMemoryExpansion,
            remote_mem_latency_ns: 0,
            remote_mem_bw_gbps: 0,
            per_node: None,
            origin: Origin::new(Path::new("(memory config built in code)"), ConfigFormat::NativeToml),
        }
    }

    /// Reads a remote memory config: `.json` as ASTRA-sim's JSON, `.toml` as
    /// Strata's native form.
    pub fn load(path: impl AsRef<Path>) -> Result<MemoryConfig> {
        let path = path.as_ref();
        let format = format_for(
            path,
            "remote memory config",
            &[ConfigFormat::AstraJson, ConfigFormat::NativeToml],
            ".json (ASTRA-sim remote memory config) or .toml (native)",
        )?;
        let text = read_text(path)?;
        match format {
            ConfigFormat::NativeToml => MemoryConfig::from_toml_str(&text, path),
            _ => MemoryConfig::from_json_str(&text, path),
        }
    }

    /// Parses ASTRA-sim's remote memory JSON; `path` is used in messages.
    pub fn from_json_str(text: &str, path: &Path) -> Result<MemoryConfig> {
        let doc = parse_json(text, path)?;
        let keys = Keys::root(&doc, path)?;
        keys.warn_unknown("remote memory", &KNOWN_KEYS, &[], &[]);
        let memory_type = match keys.string("memory-type")? {
            None => None,
            Some(name) => Some(MemoryType::ALL.into_iter().find(|t| t.astra_name() == name).ok_or_else(|| {
                ConfigError::invalid(
                    path,
                    "memory-type",
                    "one of NO_MEMORY_EXPANSION, PER_NPU_MEMORY_EXPANSION, PER_NODE_MEMORY_EXPANSION, MEMORY_POOL",
                    quote(name),
                )
            })?),
        };
        let raw = RawMemory {
            memory_type,
            latency: keys.integer("remote-mem-latency", 0, i64::MAX)?,
            bw: keys.integer("remote-mem-bw", 0, MAX_BW_GBPS)?,
            num_nodes: keys.int("num-nodes")?,
            num_npus_per_node: keys.int("num-npus-per-node")?,
        };
        build(Origin::new(path, ConfigFormat::AstraJson), raw)
    }

    /// Parses the native TOML form; `path` is used in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<MemoryConfig> {
        let doc: MemoryToml = parse_toml(text, path)?;
        let raw = RawMemory {
            memory_type: doc.memory_type,
            latency: doc.remote_mem_latency_ns,
            bw: doc.remote_mem_bw_gbps,
            num_nodes: doc.num_nodes,
            num_npus_per_node: doc.num_npus_per_node,
        };
        build(Origin::new(path, ConfigFormat::NativeToml), raw)
    }

    /// Where this config was read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// `remote-mem-bw` in bytes per second, as ASTRA-sim computes it
    /// (`uint64_t` GB/s × 1e9).
    pub fn remote_mem_bw_bytes_per_s(&self) -> u64 {
        self.remote_mem_bw_gbps.saturating_mul(1_000_000_000)
    }

    /// For per-node expansion, checks that every NPU of `network` falls on a
    /// node (`npu / num_npus_per_node < num_nodes`); ASTRA-sim would index
    /// past its queues otherwise. Call it when the workload has MEM nodes.
    pub fn check_against_network(&self, network: &NetworkConfig) -> Result<()> {
        let Some(layout) = self.per_node else {
            return Ok(());
        };
        let covered = u64::from(layout.num_nodes) * u64::from(layout.num_npus_per_node);
        let total = u64::from(network.total_npus());
        if covered < total {
            return Err(ConfigError::invalid(
                &self.origin.path,
                self.origin.key("num-nodes", "num_nodes"),
                format!(
                    "enough nodes for the {total} NPUs of {} ({} per node)",
                    network.origin().path.display(),
                    layout.num_npus_per_node
                ),
                layout.num_nodes.to_string(),
            ));
        }
        Ok(())
    }

    /// The native TOML form of these settings.
    pub fn to_toml_string(&self) -> String {
        let doc = MemoryToml {
            memory_type: Some(self.memory_type),
            remote_mem_latency_ns: Some(i64::try_from(self.remote_mem_latency_ns).unwrap_or(i64::MAX)),
            remote_mem_bw_gbps: Some(i64::try_from(self.remote_mem_bw_gbps).unwrap_or(i64::MAX)),
            num_nodes: self.per_node.map(|l| i64::from(l.num_nodes)),
            num_npus_per_node: self.per_node.map(|l| i64::from(l.num_npus_per_node)),
        };
        toml::to_string(&doc).unwrap_or_default()
    }

    /// ASTRA-sim's JSON form of these settings.
    pub fn to_astra_json(&self) -> Value {
        let mut obj = Map::new();
        obj.insert("memory-type".into(), json!(self.memory_type.astra_name()));
        if self.memory_type.has_remote_memory() {
            obj.insert("remote-mem-latency".into(), json!(self.remote_mem_latency_ns));
            obj.insert("remote-mem-bw".into(), json!(self.remote_mem_bw_gbps));
        }
        if let Some(l) = self.per_node {
            obj.insert("num-nodes".into(), json!(l.num_nodes));
            obj.insert("num-npus-per-node".into(), json!(l.num_npus_per_node));
        }
        Value::Object(obj)
    }
}

struct RawMemory {
    memory_type: Option<MemoryType>,
    latency: Option<i64>,
    bw: Option<i64>,
    num_nodes: Option<i64>,
    num_npus_per_node: Option<i64>,
}

fn build(origin: Origin, raw: RawMemory) -> Result<MemoryConfig> {
    let path = origin.path.clone();
    let key = |astra: &str, native: &str| origin.key(astra, native);
    let memory_type = raw.memory_type.unwrap_or_else(|| {
        tracing::warn!(
            "{}: `{}` is absent; ASTRA-sim leaves it uninitialised, Strata uses no memory expansion",
            path.display(),
            key("memory-type", "memory_type")
        );
        MemoryType::NoMemoryExpansion
    });
    let latency = raw.latency.unwrap_or(0);
    if latency < 0 {
        return Err(ConfigError::invalid(
            &path,
            key("remote-mem-latency", "remote_mem_latency_ns"),
            "a latency in ns of at least 0",
            latency.to_string(),
        ));
    }
    let bw = raw.bw.unwrap_or(0);
    if !(0..=MAX_BW_GBPS).contains(&bw) {
        return Err(ConfigError::invalid(
            &path,
            key("remote-mem-bw", "remote_mem_bw_gbps"),
            format!("a bandwidth in GB/s from 0 to {MAX_BW_GBPS}"),
            bw.to_string(),
        ));
    }
    if memory_type.has_remote_memory() && bw == 0 {
        let k = key("remote-mem-bw", "remote_mem_bw_gbps");
        let expected = format!("a bandwidth in GB/s of at least 1 for {memory_type} (every access divides by it)");
        return Err(if raw.bw.is_none() {
            ConfigError::missing(&path, k, expected)
        } else {
            ConfigError::invalid(&path, k, expected, "0")
        });
    }
    let per_node = if memory_type == MemoryType::PerNodeMemoryExpansion {
        let mut values = [0u32; 2];
        for (slot, (v, astra, native, what)) in values.iter_mut().zip([
            (raw.num_nodes, "num-nodes", "num_nodes", "the number of nodes"),
            (raw.num_npus_per_node, "num-npus-per-node", "num_npus_per_node", "NPUs per node"),
        ]) {
            let k = key(astra, native);
            let expected = format!("{what}, at least 1, for {memory_type}");
            match v {
                None => return Err(ConfigError::missing(&path, k, expected)),
                Some(n) if n < 1 || n > i64::from(i32::MAX) => {
                    return Err(ConfigError::invalid(&path, k, expected, n.to_string()))
                }
                Some(n) => *slot = n as u32,
            }
        }
        Some(PerNodeLayout { num_nodes: values[0], num_npus_per_node: values[1] })
    } else {
        for (v, astra, native) in [
            (raw.num_nodes, "num-nodes", "num_nodes"),
            (raw.num_npus_per_node, "num-npus-per-node", "num_npus_per_node"),
        ] {
            if v.is_some() {
                tracing::warn!(
                    "{}: `{}` is ignored: only {} uses it, and this config is {memory_type}",
                    path.display(),
                    key(astra, native),
                    MemoryType::PerNodeMemoryExpansion
                );
            }
        }
        None
    };
    Ok(MemoryConfig {
        memory_type,
        remote_mem_latency_ns: latency as u64,
        remote_mem_bw_gbps: bw as u64,
        per_node,
        origin,
    })
}
