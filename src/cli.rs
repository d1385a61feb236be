//! Command-line definitions (clap derive). These structs only describe and
//! validate what the user typed; the command modules turn them into library calls.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Simulate distributed ML training from Chakra execution traces, and generate what-if traces.
#[derive(Debug, Parser)]
#[command(name = "strata", version, about, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
    /// Print more detail on stderr (repeat for debug output).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Print only errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
}

/// Top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read, convert, check and summarize Chakra execution traces.
    #[command(subcommand)]
    Et(EtCommand),
    /// Simulate a workload (one Chakra ET per rank) on a system and network, as ASTRA-sim does.
    #[command(long_about = SIM_ABOUT)]
    Sim(SimArgs),
    /// The LayerDAG trace generator (libtorch).
    #[cfg(feature = "synth")]
    #[command(subcommand)]
    Synth(SynthCommand),
}

const SIM_ABOUT: &str = "Simulate a workload (one Chakra ET per rank) on a system and network, as ASTRA-sim does.\n\n\
    Reads ASTRA-sim's own input files (network YAML, system JSON, remote-memory JSON, comm-group JSON) or \
    Strata's native TOML forms, and accepts ASTRA-sim's command-line flags, so an ASTRA-sim command line runs \
    unchanged with `strata sim` in place of the binary. Simulated time is integer nanoseconds (ASTRA-sim's \
    cycles).\n\n\
    Prints a per-rank table (finish time, GPU compute, communication, exposed communication, overlap), or \
    ASTRA-sim's `sys[i] finished` lines with --astra-log. --report and --trace are written only after a run \
    that finished.\n\n\
    Exit status: 0 when every rank finished; 1 when the run stalled (the diagnosis on stderr names the ranks \
    and the nodes that wait, and what they wait for); 2 on bad input.";

/// Arguments of `strata sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Workload: PREFIX names PREFIX.<rank>.et (as ASTRA-sim does), or a folder of such files.
    #[arg(long, visible_alias = "workload-configuration", value_name = "PREFIX")]
    pub workload: PathBuf,
    /// Network config: ASTRA-sim's YAML or Strata's TOML.
    #[arg(long, visible_alias = "network-configuration", value_name = "FILE")]
    pub network: PathBuf,
    /// System config: ASTRA-sim's JSON or Strata's TOML.
    #[arg(long, visible_alias = "system-configuration", value_name = "FILE")]
    pub system: PathBuf,
    /// Remote memory config: ASTRA-sim's JSON or Strata's TOML.
    #[arg(long, visible_alias = "remote-memory-configuration", value_name = "FILE")]
    pub memory: Option<PathBuf>,
    /// Communicator groups: ASTRA-sim's JSON ({"<pg_name>": [ranks]}); `empty` means none.
    #[arg(long, visible_alias = "comm-group-configuration", value_name = "FILE")]
    pub comm_group: Option<PathBuf>,
    /// Network model.
    #[arg(long, value_enum, default_value_t = Backend::CongestionUnaware)]
    pub backend: Backend,
    /// Write the report as JSON (makespan, per-rank times, event count).
    #[arg(long, value_name = "FILE.json")]
    pub report: Option<PathBuf>,
    /// Write a Chrome/Perfetto trace: a process per rank, tracks for GPU compute,
    /// CPU compute and communication (open it at ui.perfetto.dev or chrome://tracing).
    #[arg(long, value_name = "FILE.json")]
    pub trace: Option<PathBuf>,
    /// Print ASTRA-sim's `sys[i] finished, N cycles, exposed communication M cycles.`
    /// lines, in rank order, instead of the table.
    #[arg(long)]
    pub astra_log: bool,
    /// Compute ops each rank may run at once on its CPU (ASTRA-sim: 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub cpu_slots: u32,
    /// Compute ops each rank may run at once on its GPU (ASTRA-sim: 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub gpu_slots: u32,
    /// Communication ops (collectives, sends) each rank may have in flight (ASTRA-sim: 1).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub comm_slots: u32,
    /// Issue the nodes a skipped node (metadata, invalid, roofline with tensor_size 0)
    /// frees right away. ASTRA-sim waits for another node to complete first, so a rank
    /// whose only progress was such a node never finishes; off by default for parity.
    #[arg(long)]
    pub reissue_after_skip: bool,
    /// Simulate every rank even when all ranks are symmetric. By default a run whose
    /// ranks share one trace (and qualify, see the README) simulates one representative
    /// rank; the results are the same.
    #[arg(long)]
    pub no_symmetry: bool,
    /// Queues per network dimension (ASTRA-sim's --num-queues-per-dim).
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "ASTRA-sim options",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub num_queues_per_dim: u32,
    /// Multiplies the endpoint delay (ASTRA-sim's --injection-scale).
    #[arg(long, value_name = "X", default_value_t = 1.0, help_heading = "ASTRA-sim options", value_parser = scale)]
    pub injection_scale: f64,
    /// Accepted and ignored, as ASTRA-sim ignores it.
    #[arg(long, value_name = "X", default_value_t = 1.0, help_heading = "ASTRA-sim options", value_parser = scale)]
    pub compute_scale: f64,
    /// Accepted and ignored, as ASTRA-sim ignores it.
    #[arg(long, value_name = "X", default_value_t = 1.0, help_heading = "ASTRA-sim options", value_parser = scale)]
    pub comm_scale: f64,
    /// Rendezvous send/receive protocol: `--rendezvous-protocol` or `=true|false`.
    #[arg(long, value_name = "BOOL", help_heading = "ASTRA-sim options", num_args = 0..=1,
          require_equals = true, default_value_t = false, default_missing_value = "true",
          action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub rendezvous_protocol: bool,
    /// Accepted and ignored (ASTRA-sim's log folder): Strata logs to stderr (-v for more).
    #[arg(long, value_name = "DIR", help_heading = "ASTRA-sim options")]
    pub logging_folder: Option<PathBuf>,
    /// Accepted and ignored (ASTRA-sim's spdlog config): Strata logs to stderr (-v for more).
    #[arg(long, value_name = "FILE", help_heading = "ASTRA-sim options")]
    pub logging_configuration: Option<PathBuf>,
}

/// `--backend` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// Closed-form delays, no link contention (ASTRA-sim's AstraSim_Analytical_Congestion_Unaware).
    #[value(alias = "congestion_unaware", alias = "unaware")]
    CongestionUnaware,
    /// Per-link queues on one-dimensional topologies (AstraSim_Analytical_Congestion_Aware).
    #[value(alias = "congestion_aware", alias = "aware")]
    CongestionAware,
}

/// A finite, non-negative scale factor.
fn scale(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(format!("expected a non-negative number, got `{s}`")),
    }
}

/// `strata et ...`
#[derive(Debug, Subcommand)]
pub enum EtCommand {
    /// Convert a trace between forms: .et, .et.gz and .json by extension; also
    /// ASTRA-sim 1.0 text workloads (with --npus) and PyTorch host execution traces.
    #[command(long_about = "Convert a trace between forms.\n\n\
        The output form follows OUT's extension: .et (binary), .et.gz (gzip) or .json \
        (a readable document that converts back to identical .et bytes).\n\n\
        Inputs: binary .et/.et.gz (gzip detected by content), any Chakra JSON form \
        (strata's document, chakra_jsonizer output, feeder `workload_graph`), a PyTorch \
        host execution trace (.json), or an ASTRA-sim 1.0 text workload (.txt, or any \
        file with --npus), which becomes OUT.<rank>.et for every rank.")]
    Convert(ConvertArgs),
    /// Check traces for duplicate ids, dangling dependencies, cycles, unknown
    /// enum values and missing or mistyped attributes. Exit 0 when clean, 1 with findings.
    Validate(ValidateArgs),
    /// Summarize traces: nodes by type, collectives with bytes, dependencies,
    /// layer count, critical path and duration sums.
    Stats(StatsArgs),
}

/// Arguments of `strata et convert`.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// Input trace.
    pub input: PathBuf,
    /// Output file (.et, .et.gz, .json); for a text workload, the prefix of OUT.<rank>.et.
    pub output: PathBuf,
    /// Treat the input as an ASTRA-sim 1.0 text workload for this many NPUs.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub npus: Option<u32>,
    /// Training passes (iterations) to emit for a text workload.
    #[arg(long, value_name = "P", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub passes: u32,
}

/// Arguments of `strata et validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// Trace files, workload prefixes (PREFIX names PREFIX.<rank>.et) or folders.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Print findings as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Count warnings as findings for the exit status.
    #[arg(long)]
    pub deny_warnings: bool,
    /// Show at most this many findings per file (all are counted).
    #[arg(long, value_name = "N", default_value_t = 20)]
    pub max_findings: usize,
}

/// Arguments of `strata et stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Trace files, workload prefixes (PREFIX names PREFIX.<rank>.et) or folders.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
    /// Print statistics as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

/// `strata synth ...`
#[cfg(feature = "synth")]
#[derive(Debug, Subcommand)]
pub enum SynthCommand {
    /// Show the libtorch runtime the generator uses (version, CPU threads, CUDA devices).
    Runtime,
    /// Train the three LayerDAG models (layer sizes, node attributes, edges) one after the other.
    #[command(long_about = TRAIN_ABOUT)]
    Train(TrainArgs),
    /// Generate a multi-rank what-if workload (one Chakra ET per rank + comm groups) from a trained model.
    #[command(long_about = GENERATE_ABOUT)]
    Generate(GenerateArgs),
    /// Evaluate a trained model against held-out real workloads: validity, structure MMDs, simulated time error.
    #[command(long_about = EVAL_ABOUT)]
    Eval(EvalArgs),
    /// Refit a checkpoint's size and magnitude priors on its training data (config.json only; weights untouched).
    #[command(long_about = REFIT_ABOUT)]
    RefitPriors(RefitPriorsArgs),
}

#[cfg(feature = "synth")]
const REFIT_ABOUT: &str =
    "Refit a checkpoint's size and magnitude priors on its training data (config.json only; weights untouched).\n\n\
    The priors only steer sampling (the depth and node count of a stage graph, its compute and communication \
    totals) and are fitted in closed form on the data, so a checkpoint can take up a better prior without \
    retraining its networks. --data must be the data the checkpoint was trained on: the vocabularies, marginals, \
    normalization and bucket values it gives must equal the checkpoint's, or nothing is written. config.json is \
    replaced whole (written to a temporary file first). Prints the new priors' median relative errors.";

/// `strata synth refit-priors`.
#[cfg(feature = "synth")]
#[derive(Debug, Args)]
pub struct RefitPriorsArgs {
    /// The checkpoint folder whose config.json is rewritten.
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: PathBuf,
    /// The data it was trained on (a corpus folder with SPLIT.txt).
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
}

#[cfg(feature = "synth")]
const EVAL_ABOUT: &str =
    "Evaluate a trained model against held-out real workloads: validity, structure MMDs, simulated time error.\n\n\
    For every workload of the corpus split (validation by default), the model generates --count workloads with \
    that workload's own generator flags (config.json `flags`, so the same rank count), and:\n\
    - validity: every generated rank file decodes, is acyclic, has the attributes its node types need (the checks \
    of `strata et validate`), and the workload simulates to completion on the corpus reference system \
    (reference-system/: system.json, memory.json, a Switch of R NPUs) with its generated comm groups;\n\
    - structure: squared MMD between generated and real rank graphs (one per pipeline stage) of the in-degree, \
    out-degree, layer-width (nodes per Kahn layer) and node-type distributions, with the Gaussian \
    total-variation kernel (sigma 1) on normalized per-graph histograms, as GraphRNN/GRAN evaluations do; \
    0 means identical, the largest possible value is 2 - 2e^-1/2 = 0.787;\n\
    - timing: the simulated iteration time (makespan) of the real and the generated workload on the reference \
    system, and the relative error |gen - real| / real, with its median and 90th percentile over workloads; \
    where the time went, the same for the GPU compute time and the exposed communication time summed over \
    ranks, with how many generated workloads came out longer in each. One-rank workloads run as both ranks of a 2-NPU switch (they have no communication); incomplete corpus \
    workloads (pruned ranks) have no timing figure.\n\n\
    --baseline adds the MMDs between the real graphs of the evaluated split and those of the other split, a scale \
    for the generated figures. Prints one row per workload and a summary on stdout, progress on stderr; \
    --json FILE writes the full report (written atomically). Deterministic for a seed on the CPU.\n\n\
    Exit status: 0 when every generated workload is valid; 1 when some are not (the report says which and why); \
    2 on bad input (a missing model folder, a corrupt checkpoint, an unreadable corpus, an empty split).";

/// Which corpus split `strata synth eval` compares against.
#[cfg(feature = "synth")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum SplitArg {
    /// The training workloads (how well the model fits what it saw).
    Train,
    /// The held-out validation workloads.
    Validation,
}

/// Arguments of `strata synth eval`.
#[cfg(feature = "synth")]
#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Trained model folder (from `strata synth train`); default: $STRATA_MODEL, else the shipped models/default.
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// The corpus folder (SPLIT.txt, workloads/, reference-system/).
    #[arg(long, value_name = "DIR", default_value = "../shared/data/corpus")]
    pub data: PathBuf,
    /// The split to compare against.
    #[arg(long, value_enum, default_value_t = SplitArg::Validation)]
    pub split: SplitArg,
    /// Generated workloads per real workload, 1 to 1000.
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub count: u64,
    /// Seed of the sampler (workload i of the split uses S + i).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Evaluate only the first N workloads of the split (SPLIT.txt order).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_workloads: Option<u64>,
    /// Cap on nodes per generated pipeline-stage graph (default: the model's own limits).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_nodes: Option<u64>,
    /// Generate without the checkpoint's size prior (see `strata synth generate --help`).
    #[arg(long)]
    pub no_size_prior: bool,
    /// Keep the sampled magnitudes as drawn (see `strata synth generate --help`).
    #[arg(long)]
    pub no_magnitude_prior: bool,
    /// Reverse diffusion steps per layer.
    #[command(flatten)]
    pub steps: StepsArgs,
    /// Write the full report as JSON.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Keep the generated workloads in DIR (default: a temporary folder, removed at the end).
    #[arg(long, value_name = "DIR")]
    pub keep: Option<PathBuf>,
    /// Also compute the MMDs between the real graphs of this split and of the other split.
    #[arg(long)]
    pub baseline: bool,
    /// Where and how the model runs.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[cfg(feature = "synth")]
const GENERATE_ABOUT: &str =
    "Generate a multi-rank what-if workload (one Chakra ET per rank + comm groups) from a trained model.\n\n\
    --set KEY=VALUE takes the generator flags of the corpus's config.json (model_type, num_stacks, dmodel, dff, \
    head, kvhead, seq, batch, micro_batch, dvocal, dp, tp, pp, sp, ep, experts, kexperts, weight_sharded, \
    activation_recompute, tpsp, mixed_precision, chakra_schema_version); unset keys take the corpus defaults \
    (its sweep base: llama, mixed precision, 4 layers, dmodel 1024, dff 4096, 16 heads, 4 kv heads, seq 512, \
    batch 2, micro-batch 1, dp 1, tp 2, pp 2). --ranks must equal dp·tp·pp·sp·ep. Values outside the training \
    range are what-if questions: allowed, with a warning saying how far outside they are.\n\n\
    One graph per pipeline stage is sampled (all in one batch); every rank of a stage gets its stage's graph \
    with its own communicators, and SEND/RECV are paired across stage boundaries, so the workload is \
    consistent and simulates. Writes PREFIX.<rank>.et per rank and PREFIX.json (the comm groups, for \
    `strata sim --comm-group-configuration`); with --count K, PREFIX_<k>.<rank>.et and PREFIX_<k>.json.\n\n\
    Each stage graph ends at the depth and node count the checkpoint's size prior predicts from the flags \
    (fitted on the corpus train split; --no-size-prior turns it off), the model's own stop, or --max-nodes, \
    whichever comes first. Its compute and communication totals (num_ops and tensor_size of compute nodes, \
    comm_size of collectives and of sends) are moved to the ones the checkpoint's magnitude prior predicts, \
    by whole octaves (--no-magnitude-prior keeps the sampled sizes as drawn). Node types and attributes keep \
    to what the layout can hold: no collectives without a communicator of two or more ranks, sends and \
    receives only towards stages that exist.\n\n\
    Without --model the model shipped in the repository (models/default, trained by `strata synth train \
    --config configs/synth/default.toml`) is used; STRATA_MODEL=DIR overrides it. Exit status: 0 when written; 2 on bad input (unknown --set key, impossible value such as \
    tp=0, --ranks that disagrees with the flags, a corrupt checkpoint).";

/// Arguments of `strata synth generate`.
#[cfg(feature = "synth")]
#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Trained model folder (from `strata synth train`); default: $STRATA_MODEL, else the shipped models/default.
    #[arg(long, value_name = "MODEL_DIR")]
    pub model: Option<PathBuf>,
    /// A generator flag, KEY=VALUE (repeatable), e.g. --set num_stacks=48 --set tp=8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// Total ranks; must equal dp·tp·pp·sp·ep of the flags.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub ranks: u32,
    /// Output prefix: writes PREFIX.<rank>.et and PREFIX.json.
    #[arg(long, value_name = "PREFIX")]
    pub out: PathBuf,
    /// Number of workloads, 1 to 1000, sampled in one batch (PREFIX_<k>.<rank>.et when more than one).
    #[arg(long, value_name = "K", default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub count: u64,
    /// Seed of the sampler (same seed, model and flags: same bytes on the CPU).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Cap on nodes per pipeline-stage graph (default: the model's own limits).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_nodes: Option<u64>,
    /// Let the model alone decide when each stage graph ends: ignore the size prior (the depth and node
    /// count the checkpoint predicts from the flags), within --max-nodes and the model's deepest layer.
    #[arg(long)]
    pub no_size_prior: bool,
    /// Keep every sampled num_ops / tensor_size / comm_size bucket as drawn: do not shift them so that the
    /// stage's totals match the checkpoint's magnitude prior.
    #[arg(long)]
    pub no_magnitude_prior: bool,
    /// Reverse diffusion steps per layer.
    #[command(flatten)]
    pub steps: StepsArgs,
    /// Where and how the model runs.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[cfg(feature = "synth")]
const TRAIN_ABOUT: &str =
    "Train the three LayerDAG models (layer sizes, node attributes, edges) one after the other.\n\n\
    Each model trains with Adam (the config's lr and amsgrad) over shuffled batches, is validated after every \
    epoch, stops early after `general.patience` epochs without improvement, and keeps its best weights. \
    --data is a corpus folder (holding SPLIT.txt: train and validation workloads) or a TPU Tile folder \
    (tpu_tile_val.jsonl trains, tpu_tile_test.jsonl validates).\n\n\
    MODEL_DIR receives config.json and weights.safetensors (the checkpoint `strata synth` commands read), \
    last.safetensors, optimizer.safetensors and train_state.json (what --resume continues from: the last weights, \
    Adam's state and the counters, so that a resumed run goes on exactly as an uninterrupted one). One summary \
    line per epoch goes to stderr. Exit status: 0 when training finished; 2 on bad input (an unknown config key, an empty dataset, an \
    unreadable folder), with a message naming the file.";

/// Where the generator's model runs (train, generate, eval).
#[cfg(feature = "synth")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DeviceArg {
    /// The first CUDA GPU when libtorch sees one, else the CPU.
    Auto,
    /// The CPU (runs are reproducible bit for bit).
    Cpu,
    /// The first CUDA GPU (an error when there is none).
    Cuda,
}

/// How the matrix products of `strata synth train / generate / eval` are computed.
#[cfg(feature = "synth")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum PrecisionArg {
    /// fp32 throughout.
    Fp32,
    /// Linear layers on bfloat16 inputs, accumulated in fp32; everything else fp32.
    Bf16,
}

/// How many reverse diffusion steps sampling takes per layer (generate and eval).
#[cfg(feature = "synth")]
#[derive(Clone, Copy, Debug, Args)]
pub struct StepsArgs {
    /// Node-attribute denoising steps per layer (default: every step of the model's schedule, its `T`: 8 for
    /// the shipped model, 64 for TPU Tile). Fewer jump ahead along the schedule exactly: faster, less faithful.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub node_steps: Option<u32>,
    /// Edge denoising steps per layer (default: every step of the model's schedule, its `T`: 4 for the shipped
    /// model, 16 for TPU Tile).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub edge_steps: Option<u32>,
}

/// Where and how the generator's model runs (shared by train, generate and eval).
#[cfg(feature = "synth")]
#[derive(Clone, Copy, Debug, Args)]
pub struct RuntimeArgs {
    /// Where the model runs.
    #[arg(long, value_enum, default_value_t = DeviceArg::Auto)]
    pub device: DeviceArg,
    /// CPU threads libtorch may use, 1 to 1024 (default: its own choice, usually one per core; more threads
    /// than cores only slow it down, with a warning). Results on the CPU are reproducible bit for bit for the
    /// same thread count.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub threads: Option<u32>,
    /// Precision of the linear layers' matrix products: bf16 rounds their inputs to bfloat16 and accumulates in
    /// fp32 (about twice as fast on CPUs with AVX-512 BF16 or AMX and on recent GPUs, slower elsewhere; weights,
    /// optimizer state and every other operation stay fp32). Reproducible, but not the fp32 results.
    #[arg(long, value_enum, default_value_t = PrecisionArg::Fp32)]
    pub precision: PrecisionArg,
}

/// Arguments of `strata synth train`.
#[cfg(feature = "synth")]
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Model config (TOML), e.g. configs/synth/small.toml or configs/synth/tpu_tile.toml.
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Training data: a corpus folder (with SPLIT.txt) or a TPU Tile folder.
    #[arg(long, value_name = "DIR")]
    pub data: PathBuf,
    /// Output folder for the checkpoint and the training state.
    #[arg(long, value_name = "MODEL_DIR")]
    pub out: PathBuf,
    /// Seed of initialization, shuffles and diffusion noise (a resumed run keeps its own).
    #[arg(long, value_name = "S", default_value_t = 0)]
    pub seed: u64,
    /// Cap every model's total epochs (instead of the config's num_epochs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub epochs: Option<u64>,
    /// Continue the run recorded in MODEL_DIR/train_state.json.
    #[arg(long)]
    pub resume: bool,
    /// Use only the first N graphs of each split (smoke runs).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub max_graphs: Option<u64>,
    /// Where and how the model runs.
    #[command(flatten)]
    pub runtime: RuntimeArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_takes_npus_and_passes() {
        let cli =
            Cli::try_parse_from(["strata", "et", "convert", "a.txt", "out/a", "--npus", "8", "--passes", "2"]).unwrap();
        let Command::Et(EtCommand::Convert(args)) = cli.command else { panic!("not convert") };
        assert_eq!((args.npus, args.passes), (Some(8), 2));
    }

    fn sim(args: &[&str]) -> Result<SimArgs, clap::Error> {
        let base = ["strata", "sim"];
        let cli = Cli::try_parse_from(base.iter().chain(args))?;
        let Command::Sim(a) = cli.command else { panic!("not sim") };
        Ok(a)
    }

    #[test]
    fn sim_takes_astra_sim_flags_with_equals() {
        let a = sim(&[
            "--workload-configuration=w/workload",
            "--system-configuration=system.json",
            "--network-configuration=network.yml",
            "--remote-memory-configuration=memory.json",
            "--comm-group-configuration=empty",
            "--num-queues-per-dim=2",
            "--injection-scale=3",
            "--compute-scale=2",
            "--comm-scale=0.5",
            "--logging-folder=logs",
        ])
        .unwrap();
        assert_eq!(a.workload, PathBuf::from("w/workload"));
        assert_eq!(a.memory, Some(PathBuf::from("memory.json")));
        assert_eq!(a.comm_group, Some(PathBuf::from("empty")));
        assert_eq!((a.num_queues_per_dim, a.injection_scale, a.compute_scale, a.comm_scale), (2, 3.0, 2.0, 0.5));
        assert_eq!(a.backend, Backend::CongestionUnaware);
        assert!(!a.rendezvous_protocol && !a.astra_log);
    }

    #[test]
    fn sim_slots_and_corrections() {
        let cli = Cli::try_parse_from([
            "strata",
            "sim",
            "--workload",
            "w",
            "--network",
            "n.yml",
            "--system",
            "s.json",
            "--gpu-slots",
            "2",
            "--reissue-after-skip",
        ])
        .unwrap();
        let Command::Sim(args) = cli.command else { panic!("not sim") };
        assert_eq!((args.cpu_slots, args.gpu_slots, args.comm_slots), (1, 2, 1));
        assert!(args.reissue_after_skip);
        assert!(Cli::try_parse_from([
            "strata",
            "sim",
            "--workload",
            "w",
            "--network",
            "n",
            "--system",
            "s",
            "--comm-slots",
            "0"
        ])
        .is_err());
    }

    #[test]
    fn sim_backend_values() {
        let req = ["--workload", "w", "--network", "n", "--system", "s"];
        let with = |b: &str| sim(&[&req[..], &["--backend", b]].concat());
        assert_eq!(with("congestion-aware").unwrap().backend, Backend::CongestionAware);
        assert_eq!(with("congestion_unaware").unwrap().backend, Backend::CongestionUnaware);
        assert!(with("garnet").is_err());
        assert!(sim(&req[..4]).is_err(), "--system is required");
    }

    #[test]
    fn sim_rendezvous_is_a_cxxopts_bool() {
        let req = ["--workload", "w", "--network", "n", "--system", "s"];
        let with = |extra: &[&str]| sim(&[&req[..], extra].concat()).map(|a| a.rendezvous_protocol);
        assert!(with(&["--rendezvous-protocol"]).unwrap());
        assert!(with(&["--rendezvous-protocol=true"]).unwrap());
        assert!(!with(&["--rendezvous-protocol=false"]).unwrap());
        assert!(with(&["--rendezvous-protocol=maybe"]).is_err());
        assert!(with(&["--injection-scale=-1"]).is_err());
        assert!(with(&["--num-queues-per-dim=0"]).is_err());
    }

    #[test]
    fn validate_needs_an_input() {
        assert!(Cli::try_parse_from(["strata", "et", "validate"]).is_err());
        let cli = Cli::try_parse_from(["strata", "-q", "et", "validate", "x.et", "y", "--json"]).unwrap();
        assert!(cli.quiet);
        let Command::Et(EtCommand::Validate(args)) = cli.command else { panic!("not validate") };
        assert_eq!(args.inputs.len(), 2);
        assert!(args.json && !args.deny_warnings);
    }
}
