//! The library's front door: load a run described by file paths (ASTRA-sim's
//! inputs or Strata's TOML forms), then simulate it.
//!
//! ```no_run
//! use simulator::run::{RunRequest, simulate};
//! let req = RunRequest::new("traces/allreduce_8npus/allreduce", "topologies/Ring_8npus.yml", "configs/system/ring_lifo.json");
//! let report = simulate(&req)?;
//! println!("makespan {} ns", report.makespan_ns);
//! # Ok::<(), simulator::error::SimError>(())
//! ```

use std::path::{Path, PathBuf};

use crate::chakra;
use crate::config::{Collective, CommGroups, MemoryConfig, MemoryType, NetworkConfig, SystemConfig};
use crate::error::SimError;
use crate::report::Report;
use crate::sim::{BackendKind, SimSpec, Simulation};
use crate::system::CollKind;
use crate::system::SysParams;
use crate::workload::Workload;

/// A simulation described by its input files and ASTRA-sim's run options.
#[derive(Clone, Debug, PartialEq)]
pub struct RunRequest {
    /// `PREFIX` naming `PREFIX.<rank>.et`, or a folder of such files.
    pub workload: PathBuf,
    /// Network config (ASTRA-sim YAML or native TOML).
    pub network: PathBuf,
    /// System config (ASTRA-sim JSON or native TOML).
    pub system: PathBuf,
    /// Remote memory config, if any.
    pub memory: Option<PathBuf>,
    /// Communicator groups (ASTRA-sim's comm-group JSON), if any.
    pub comm_group: Option<PathBuf>,
    /// Network model.
    pub backend: BackendKind,
    /// `--num-queues-per-dim` (default 1).
    pub num_queues_per_dim: u32,
    /// `--injection-scale`: multiplies the endpoint delay (default 1).
    pub injection_scale: f64,
    /// `--compute-scale`: accepted for compatibility; ASTRA-sim ignores it too.
    pub compute_scale: f64,
    /// `--comm-scale`: accepted for compatibility; ASTRA-sim ignores it too.
    pub comm_scale: f64,
    /// `--rendezvous-protocol`.
    pub rendezvous: bool,
    /// Record every node's span (for `--trace`).
    pub record_timeline: bool,
    /// Hardware slots per rank (ASTRA-sim: one CPU, one GPU, one communication op).
    pub slots: crate::workload::HardwareSlots,
    /// Issue what a skipped node freed right away (corrects ASTRA-sim; off by default).
    pub reissue_after_skip: bool,
    /// Simulate one representative rank when every rank is symmetric (on by
    /// default; the results are the same, see [`SimSpec::symmetry`]).
    pub symmetry: bool,
}

impl RunRequest {
    /// A request with ASTRA-sim's defaults for everything but the three required files.
    pub fn new(workload: impl Into<PathBuf>, network: impl Into<PathBuf>, system: impl Into<PathBuf>) -> RunRequest {
        RunRequest {
            workload: workload.into(),
            network: network.into(),
            system: system.into(),
            memory: None,
            comm_group: None,
            backend: BackendKind::CongestionUnaware,
            num_queues_per_dim: 1,
            injection_scale: 1.0,
            compute_scale: 1.0,
            comm_scale: 1.0,
            rendezvous: false,
            record_timeline: false,
            slots: Default::default(),
            reissue_after_skip: false,
            symmetry: true,
        }
    }
}

/// Reads and checks every input of a run.
pub fn load(req: &RunRequest) -> Result<SimSpec, SimError> {
    let network = NetworkConfig::load(&req.network)?;
    if req.backend == BackendKind::CongestionAware && network.dims.len() > 1 {
        return Err(SimError::Setup(format!(
            "{}: {} dimensions, but the congestion-aware backend models one-dimensional topologies only (as \
             ASTRA-sim's does): use --backend congestion-unaware, or one dimension",
            req.network.display(),
            network.dims.len()
        )));
    }
    let system = SystemConfig::load(&req.system)?;
    system.check_against_network(&network)?;
    let memory = match &req.memory {
        Some(m) => {
            let memory = MemoryConfig::load(m)?;
            if memory.memory_type != MemoryType::NoMemoryExpansion {
                memory.check_against_network(&network)?;
            }
            Some(memory)
        }
        None => None,
    };
    if system.per_node_custom_implementation.is_some() {
        return Err(SimError::Setup(format!(
            "{}: per-node-custom-implementation is not supported yet",
            req.system.display()
        )));
    }
    let groups = req.comm_group.as_ref().map(CommGroups::load).transpose()?;
    if let Some(g) = &groups {
        g.check_against_network(&network)?;
    }
    let total = network.total_npus();
    let files = chakra::expand_workload(&req.workload)?;
    if files.len() as u64 != total as u64 {
        return Err(SimError::Setup(format!(
            "{}: found {} rank traces but the network {} has {total} NPUs; expected {}.0.et ... {}.{}.et",
            req.workload.display(),
            files.len(),
            req.network.display(),
            req.workload.display(),
            req.workload.display(),
            total.saturating_sub(1)
        )));
    }
    let paths: Vec<PathBuf> = files.into_iter().map(|f| f.path).collect();
    let (workloads, identical_ranks) = load_workloads(&paths)?;
    let empty: Vec<&Workload> = workloads.iter().filter(|w| w.nodes.is_empty()).collect();
    if let Some(first) = empty.first() {
        tracing::warn!(
            "{}{}: no nodes, so the rank does nothing and finishes at 0 ns",
            first.path.display(),
            if empty.len() > 1 { format!(" and {} other rank files", empty.len() - 1) } else { String::new() }
        );
    }
    if let Some(d) = system.endpoint_delay_ns {
        // ASTRA-sim converts the product to a C int; beyond it the delay is undefined.
        let scaled = f64::from(d) * req.injection_scale;
        if scaled > f64::from(i32::MAX) {
            return Err(SimError::Setup(format!(
                "--injection-scale {:e} times endpoint-delay {d} ns of {} is {scaled:e} ns, past the 32-bit endpoint \
                 delay ASTRA-sim computes with ({} ns)",
                req.injection_scale,
                req.system.display(),
                i32::MAX
            )));
        }
    }
    let params = SysParams::from_config(&system, network.dims.len(), req.injection_scale, req.num_queues_per_dim)?;
    let mut custom = std::collections::HashMap::new();
    for (c, kind) in [
        (Collective::AllReduce, CollKind::AllReduce),
        (Collective::AllGather, CollKind::AllGather),
        (Collective::ReduceScatter, CollKind::ReduceScatter),
        (Collective::AllToAll, CollKind::AllToAll),
    ] {
        if let Some(prefix) = system.custom_et_prefix(c) {
            let files = chakra::expand_workload(&prefix).map_err(|e| {
                SimError::Setup(format!(
                    "{}: `{}` names the custom collective traces {}, which cannot be read: {e}",
                    req.system.display(),
                    c.custom_key(),
                    prefix.display()
                ))
            })?;
            let paths: Vec<PathBuf> = files.into_iter().map(|f| f.path).collect();
            custom.insert(kind, load_workloads(&paths)?.0);
        }
    }
    Ok(SimSpec {
        workloads,
        network: network.dims.clone(),
        backend: req.backend,
        params,
        groups,
        record_timeline: req.record_timeline,
        custom,
        rendezvous: req.rendezvous,
        memory,
        slots: req.slots,
        reissue_after_skip: req.reissue_after_skip,
        identical_ranks,
        symmetry: req.symmetry,
    })
}

/// Reads and converts every rank's trace, spread over the available cores.
///
/// Rank files with identical bytes (symmetric workloads often repeat one file
/// per rank) are decoded once and the result copied. Only files that share
/// their size with another are read up front to compare them; the rest stream
/// from disk as they decode. Also says whether every file has the same bytes.
fn load_workloads(paths: &[PathBuf]) -> Result<(Vec<Workload>, bool), SimError> {
    let (jobs, first_of) = dedupe(paths);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    let per = jobs.len().div_ceil(threads);
    let results: Vec<Vec<Result<Workload, SimError>>> = crossbeam::thread::scope(|s| {
        let handles: Vec<_> = jobs
            .chunks(per.max(1))
            .map(|chunk| {
                s.spawn(move |_| {
                    chunk
                        .iter()
                        .map(|(i, bytes)| match bytes {
                            Some(b) => load_bytes(&paths[*i], b),
                            None => load_one(&paths[*i]),
                        })
                        .collect()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().expect("trace loader thread panicked")).collect()
    })
    .expect("trace loader threads");
    let mut loaded: Vec<Option<Result<Workload, SimError>>> = results.into_iter().flatten().map(Some).collect();
    let mut out: Vec<Workload> = Vec::with_capacity(paths.len());
    for (i, &job) in first_of.iter().enumerate() {
        let first = jobs[job].0;
        if first == i {
            out.push(loaded[job].take().expect("each distinct file is loaded once")?);
        } else {
            let mut w = out[first].clone();
            w.path = paths[i].clone();
            out.push(w);
        }
    }
    let identical = first_of.iter().all(|&j| j == first_of[0]);
    Ok((out, identical))
}

/// Groups rank files by content: the files to decode (index of the first file
/// with that content, its bytes when they were read) and, per file, its job.
type DedupeJobs = (Vec<(usize, Option<Vec<u8>>)>, Vec<usize>);

fn dedupe(paths: &[PathBuf]) -> DedupeJobs {
    let sizes: Vec<Option<u64>> =
        paths.iter().map(|p| std::fs::metadata(p).ok().filter(|m| m.is_file()).map(|m| m.len())).collect();
    let mut same_size: rustc_hash::FxHashMap<u64, usize> = Default::default();
    for s in sizes.iter().flatten() {
        *same_size.entry(*s).or_default() += 1;
    }
    let mut jobs: Vec<(usize, Option<Vec<u8>>)> = Vec::new();
    let mut first_of = Vec::with_capacity(paths.len());
    // Jobs whose bytes are held, by size.
    let mut held: rustc_hash::FxHashMap<u64, Vec<usize>> = Default::default();
    for (i, p) in paths.iter().enumerate() {
        let bytes = match sizes[i] {
            Some(s) if same_size[&s] > 1 => std::fs::read(p).ok().filter(|b| b.len() as u64 == s),
            _ => None,
        };
        let Some(bytes) = bytes else {
            jobs.push((i, None));
            first_of.push(jobs.len() - 1);
            continue;
        };
        let candidates = held.entry(bytes.len() as u64).or_default();
        match candidates.iter().find(|&&j| jobs[j].1.as_deref() == Some(bytes.as_slice())) {
            Some(&j) => first_of.push(j),
            None => {
                jobs.push((i, Some(bytes)));
                candidates.push(jobs.len() - 1);
                first_of.push(jobs.len() - 1);
            }
        }
    }
    (jobs, first_of)
}

/// Loads one rank's trace from its file.
fn load_one(path: &Path) -> Result<Workload, SimError> {
    // Binary traces skip the attributes the simulator never reads (tensor
    // shapes and the like are most of the bytes of generated traces).
    let trace = match chakra::TraceFormat::from_path(path) {
        chakra::TraceFormat::Json => chakra::read_trace(path)?,
        _ => chakra::EtReader::open(path)?.keep_attrs(Workload::reads_attr).read_all()?,
    };
    Workload::from_owned_trace(trace, path)
}

/// Loads one rank's trace from the bytes of its file, as [`load_one`] would.
fn load_bytes(path: &Path, bytes: &[u8]) -> Result<Workload, SimError> {
    let trace = match chakra::TraceFormat::from_path(path) {
        chakra::TraceFormat::Json => return load_one(path),
        _ if bytes.starts_with(&[0x1f, 0x8b]) => {
            let gz = std::io::BufReader::with_capacity(1 << 16, flate2::bufread::MultiGzDecoder::new(bytes));
            chakra::EtReader::new(gz, path)?.keep_attrs(Workload::reads_attr).read_all()?
        }
        _ => chakra::EtReader::new(bytes, path)?.keep_attrs(Workload::reads_attr).read_all()?,
    };
    Workload::from_owned_trace(trace, path)
}

/// Loads and runs a simulation.
pub fn simulate(req: &RunRequest) -> Result<Report, SimError> {
    Simulation::new(load(req)?)?.run()
}
