//! The physical network: one entry per dimension, dimension 0 first (the
//! fastest-varying part of an NPU id, as ASTRA-sim's `MultiDimTopology`
//! numbers NPUs).
//!
//! ASTRA-sim form (`NetworkParser.cpp` of astra-network-analytical, read with
//! yaml-cpp), four lists of equal length:
//!
//! ```yaml
//! topology: [ Ring ]      # Ring | FullyConnected | Switch
//! npus_count: [ 8 ]       # whole number > 1
//! bandwidth: [ 50.0 ]     # GB/s, > 0 (the network's GB are 2^30 bytes)
//! latency: [ 500.0 ]      # ns, >= 0
//! ```
//!
//! Native form (`.toml`): an array of tables `[[dims]]` with `topology`
//! (`ring`, `fully-connected`, `switch`), `npus`, `bandwidth_gbps`, `latency_ns`.
//!
//! Units as ASTRA-sim uses them: the analytical backend converts bandwidth with
//! `bw * 2^30 / 1e9` bytes per ns (binary GB), and latency is per hop in ns.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value as Yaml;

use super::error::{ConfigError, Result};
use super::reader::quote;
use super::{format_for, parse_toml, read_text, ConfigFormat, Origin};

/// The building block of one network dimension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Topology {
    /// A bidirectional ring: hop count `min(d, N-d)` between two NPUs.
    Ring,
    /// A direct link between every pair: one hop.
    FullyConnected,
    /// Every NPU on one switch: two hops.
    Switch,
}

impl Topology {
    /// Every topology, in ASTRA-sim's order.
    pub const ALL: [Topology; 3] = [Topology::Ring, Topology::FullyConnected, Topology::Switch];

    /// The name ASTRA-sim's YAML uses (`Ring`, `FullyConnected`, `Switch`).
    pub fn astra_name(self) -> &'static str {
        match self {
            Topology::Ring => "Ring",
            Topology::FullyConnected => "FullyConnected",
            Topology::Switch => "Switch",
        }
    }

    /// The name Strata's TOML uses (`ring`, `fully-connected`, `switch`).
    pub fn native_name(self) -> &'static str {
        match self {
            Topology::Ring => "ring",
            Topology::FullyConnected => "fully-connected",
            Topology::Switch => "switch",
        }
    }

    /// Parses an ASTRA-sim name; like ASTRA-sim, only the exact spelling counts.
    pub fn from_astra_name(name: &str) -> Option<Topology> {
        Topology::ALL.into_iter().find(|t| t.astra_name() == name)
    }
}

impl fmt::Display for Topology {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.astra_name())
    }
}

/// One dimension of the network.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkDim {
    /// How the NPUs of this dimension are connected.
    pub topology: Topology,
    /// NPUs in this dimension (at least 2; 1 only as the single dimension of a one-NPU machine).
    pub npus: u32,
    /// Link bandwidth in GB/s, where the analytical backend's GB is 2^30 bytes
    /// (`bw_GBps_to_Bpns(bw) = bw * 2^30 / 1e9`). Positive and finite.
    pub bandwidth_gbps: f64,
    /// Latency per hop in ns. Non-negative and finite.
    pub latency_ns: f64,
}

/// The physical network: one [`NetworkDim`] per dimension, dimension 0 first.
#[derive(Debug, Clone, PartialEq)]
pub struct NetworkConfig {
    /// The dimensions, at least one.
    pub dims: Vec<NetworkDim>,
    origin: Origin,
}

/// Native TOML form of [`NetworkConfig`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct NetworkToml {
    dims: Vec<DimToml>,
}

/// Native TOML form of [`NetworkDim`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DimToml {
    topology: Topology,
    npus: i64,
    bandwidth_gbps: f64,
    latency_ns: f64,
}

const KNOWN_YAML_KEYS: [&str; 4] = ["topology", "npus_count", "bandwidth", "latency"];

impl NetworkConfig {
    /// Builds a network from dimensions given in code, with the same checks as
    /// a file gets.
    pub fn new(dims: Vec<NetworkDim>) -> Result<NetworkConfig> {
        let origin = Origin::new(Path::new("(network built in code)"), ConfigFormat::NativeToml);
        let raw = dims.into_iter().map(|d| (d.topology, i64::from(d.npus), d.bandwidth_gbps, d.latency_ns)).collect();
        validate(origin, raw)
    }

    /// Reads a network config: `.yml`/`.yaml` as ASTRA-sim's analytical YAML,
    /// `.toml` as Strata's native form.
    pub fn load(path: impl AsRef<Path>) -> Result<NetworkConfig> {
        let path = path.as_ref();
        let format = format_for(
            path,
            "network config",
            &[ConfigFormat::AstraYaml, ConfigFormat::NativeToml],
            ".yml or .yaml (ASTRA-sim analytical network) or .toml (native)",
        )?;
        let text = read_text(path)?;
        match format {
            ConfigFormat::NativeToml => NetworkConfig::from_toml_str(&text, path),
            _ => NetworkConfig::from_yaml_str(&text, path),
        }
    }

    /// Parses ASTRA-sim's analytical network YAML; `path` is used in messages.
    pub fn from_yaml_str(text: &str, path: &Path) -> Result<NetworkConfig> {
        let origin = Origin::new(path, ConfigFormat::AstraYaml);
        let doc: Yaml = serde_yaml_ng::from_str(text).map_err(|e| {
            let location =
                e.location().map(|l| format!("line {}, column {}: ", l.line(), l.column())).unwrap_or_default();
            ConfigError::syntax(path, "YAML", location, e.to_string())
        })?;
        let Yaml::Mapping(map) = &doc else {
            return Err(ConfigError::invalid(
                path,
                "(top level)",
                "a YAML mapping with the lists topology, npus_count, bandwidth and latency",
                describe_yaml(&doc),
            ));
        };
        for key in map.keys() {
            match key.as_str() {
                Some(k) if KNOWN_YAML_KEYS.contains(&k) => {}
                _ => tracing::warn!(
                    "{}: unknown network key `{}` is ignored (ASTRA-sim's analytical backend ignores it too); known keys: {}",
                    path.display(),
                    key.as_str().map_or_else(|| describe_yaml(key), str::to_string),
                    KNOWN_YAML_KEYS.join(", ")
                ),
            }
        }
        let list = |key: &str| -> Result<&Vec<Yaml>> {
            match map.get(key) {
                None => Err(ConfigError::missing(path, key, "a list with one entry per network dimension")),
                Some(Yaml::Sequence(items)) => Ok(items),
                Some(other) => Err(ConfigError::invalid(
                    path,
                    key,
                    "a list with one entry per network dimension, such as [ 8 ]",
                    describe_yaml(other),
                )),
            }
        };
        let topologies = list("topology")?;
        let npus = list("npus_count")?;
        let bandwidths = list("bandwidth")?;
        let latencies = list("latency")?;
        if topologies.is_empty() {
            return Err(ConfigError::invalid(path, "topology", "at least one dimension", "an empty list"));
        }
        for (key, items) in [("npus_count", npus), ("bandwidth", bandwidths), ("latency", latencies)] {
            if items.len() != topologies.len() {
                return Err(ConfigError::invalid(
                    path,
                    key,
                    format!("a list of {} item(s), one per entry of `topology`", topologies.len()),
                    format!("a list of {} item(s)", items.len()),
                ));
            }
        }
        let mut raw = Vec::with_capacity(topologies.len());
        for i in 0..topologies.len() {
            let topology = match &topologies[i] {
                Yaml::String(s) => Topology::from_astra_name(s).ok_or_else(|| {
                    ConfigError::invalid(
                        path,
                        format!("topology[{i}]"),
                        "one of Ring, FullyConnected, Switch (exact spelling)",
                        quote(s),
                    )
                })?,
                other => {
                    return Err(ConfigError::invalid(
                        path,
                        format!("topology[{i}]"),
                        "one of Ring, FullyConnected, Switch",
                        describe_yaml(other),
                    ))
                }
            };
            let n = match &npus[i] {
                Yaml::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or_default(),
                other => {
                    return Err(ConfigError::invalid(
                        path,
                        format!("npus_count[{i}]"),
                        "a whole number greater than 1",
                        describe_yaml(other),
                    ))
                }
            };
            let bw = yaml_number(path, &format!("bandwidth[{i}]"), &bandwidths[i], "a bandwidth in GB/s")?;
            let lat = yaml_number(path, &format!("latency[{i}]"), &latencies[i], "a latency in ns")?;
            raw.push((topology, n, bw, lat));
        }
        validate(origin, raw)
    }

    /// Parses the native TOML form; `path` is used in messages.
    pub fn from_toml_str(text: &str, path: &Path) -> Result<NetworkConfig> {
        let origin = Origin::new(path, ConfigFormat::NativeToml);
        let doc: NetworkToml = parse_toml(text, path)?;
        if doc.dims.is_empty() {
            return Err(ConfigError::invalid(path, "dims", "at least one [[dims]] table", "an empty list"));
        }
        let raw = doc.dims.into_iter().map(|d| (d.topology, d.npus, d.bandwidth_gbps, d.latency_ns)).collect();
        validate(origin, raw)
    }

    /// The number of NPUs: the product of every dimension's `npus`.
    pub fn total_npus(&self) -> u32 {
        // Validation guarantees the product fits (it is at most i32::MAX).
        self.dims.iter().map(|d| d.npus).product()
    }

    /// NPUs per dimension, dimension 0 first.
    pub fn npus_per_dim(&self) -> Vec<u32> {
        self.dims.iter().map(|d| d.npus).collect()
    }

    /// Where this config was read from.
    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    /// The native TOML form of this network.
    pub fn to_toml_string(&self) -> String {
        let doc = NetworkToml {
            dims: self
                .dims
                .iter()
                .map(|d| DimToml {
                    topology: d.topology,
                    npus: i64::from(d.npus),
                    bandwidth_gbps: d.bandwidth_gbps,
                    latency_ns: d.latency_ns,
                })
                .collect(),
        };
        toml::to_string(&doc).unwrap_or_default()
    }

    /// ASTRA-sim's YAML form of this network, for running ASTRA-sim on it.
    pub fn to_astra_yaml(&self) -> String {
        let join = |f: &dyn Fn(&NetworkDim) -> String| self.dims.iter().map(f).collect::<Vec<_>>().join(", ");
        format!(
            "topology: [ {} ]\nnpus_count: [ {} ]\nbandwidth: [ {} ]  # GB/s\nlatency: [ {} ]  # ns\n",
            join(&|d| d.topology.astra_name().to_string()),
            join(&|d| d.npus.to_string()),
            join(&|d| format_f64(d.bandwidth_gbps)),
            join(&|d| format_f64(d.latency_ns)),
        )
    }
}

/// Formats a float so that it reads back to the same value (`50.0`, `936.25`).
fn format_f64(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.1}")
    } else {
        format!("{x}")
    }
}

/// A finite YAML number (integer or not).
fn yaml_number(path: &Path, key: &str, v: &Yaml, what: &str) -> Result<f64> {
    match v {
        Yaml::Number(n) => match n.as_f64() {
            Some(x) if x.is_finite() => Ok(x),
            _ => Err(ConfigError::invalid(path, key, format!("{what} (a finite number)"), describe_yaml(v))),
        },
        other => Err(ConfigError::invalid(path, key, format!("{what} (a number)"), describe_yaml(other))),
    }
}

/// A short description of a YAML value for "got ..." in messages.
fn describe_yaml(v: &Yaml) -> String {
    match v {
        Yaml::Null => "nothing (null)".to_string(),
        Yaml::Bool(b) => format!("boolean {b}"),
        Yaml::Number(n) => format!("number {n}"),
        Yaml::String(s) => format!("string {}", quote(s)),
        Yaml::Sequence(s) => format!("a list of {} item(s)", s.len()),
        Yaml::Mapping(_) => "a mapping".to_string(),
        Yaml::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

/// The checks of ASTRA-sim's `NetworkParser::check_validity`, plus an overall
/// NPU count that fits ASTRA-sim's `int`.
fn validate(origin: Origin, raw: Vec<(Topology, i64, f64, f64)>) -> Result<NetworkConfig> {
    let path = origin.path.clone();
    let native = origin.format == ConfigFormat::NativeToml;
    let key = |i: usize, astra: &str, native_key: &str| {
        if native {
            format!("dims[{i}].{native_key}")
        } else {
            format!("{astra}[{i}]")
        }
    };
    if raw.is_empty() {
        return Err(ConfigError::invalid(
            &path,
            if native { "dims" } else { "topology" },
            "at least one network dimension",
            "none",
        ));
    }
    let mut dims = Vec::with_capacity(raw.len());
    let mut total: i64 = 1;
    // One NPU is a machine without a network (ASTRA-sim accepts it too); as
    // one dimension among others it would be no dimension at all.
    let single = raw.len() == 1;
    for (i, (topology, npus, bw, lat)) in raw.into_iter().enumerate() {
        if (npus < 1 || (npus == 1 && !single)) || npus > i64::from(i32::MAX) {
            return Err(ConfigError::invalid(
                &path,
                key(i, "npus_count", "npus"),
                format!(
                    "a whole number from 2 to {} (a dimension of one NPU is not a dimension; one NPU alone is \
                     `npus_count: [ 1 ]` with a single topology entry)",
                    i32::MAX
                ),
                npus.to_string(),
            ));
        }
        if !(bw.is_finite() && bw > 0.0) {
            return Err(ConfigError::invalid(
                &path,
                key(i, "bandwidth", "bandwidth_gbps"),
                "a bandwidth in GB/s greater than 0",
                bw.to_string(),
            ));
        }
        if !(lat.is_finite() && lat >= 0.0) {
            return Err(ConfigError::invalid(
                &path,
                key(i, "latency", "latency_ns"),
                "a latency in ns of at least 0",
                lat.to_string(),
            ));
        }
        total = total.saturating_mul(npus);
        if total > i64::from(i32::MAX) {
            return Err(ConfigError::invalid(
                &path,
                if native { "dims".to_string() } else { "npus_count".to_string() },
                format!("at most {} NPUs in all (ASTRA-sim counts them in an int)", i32::MAX),
                "a larger product",
            ));
        }
        dims.push(NetworkDim { topology, npus: npus as u32, bandwidth_gbps: bw, latency_ns: lat });
    }
    Ok(NetworkConfig { dims, origin })
}
