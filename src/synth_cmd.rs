//! `strata synth ...`: front end of the `synth` crate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use synth::device::{Device, Precision};
use synth::train::{DataSource, DeviceChoice, Progress, TrainSpec};
use tracing::level_filters::LevelFilter;

use crate::cli::{
    DeviceArg, EvalArgs, GenerateArgs, PrecisionArg, RefitPriorsArgs, RuntimeArgs, SplitArg, StepsArgs, SynthCommand,
    TrainArgs,
};

/// Runs one `synth` subcommand.
pub fn run(cmd: SynthCommand) -> anyhow::Result<ExitCode> {
    synth::device::retain_freed_memory();
    match cmd {
        SynthCommand::Runtime => {
            println!("{}", synth::device::runtime_summary());
            println!("default device: {:?}", synth::device::default_device());
            Ok(ExitCode::SUCCESS)
        }
        SynthCommand::Train(args) => train(args),
        SynthCommand::Generate(args) => generate(args),
        SynthCommand::Eval(args) => eval(args),
        SynthCommand::RefitPriors(args) => refit_priors(args),
    }
}

/// Applies `--threads` (process-wide) and `--precision` (this thread, the
/// one that trains or samples) and resolves `--device`. Warns when bf16 products would be emulated on this CPU.
fn apply_runtime(r: &RuntimeArgs) -> anyhow::Result<Device> {
    if let Some(n) = r.threads {
        if let Ok(cores) = std::thread::available_parallelism() {
            if n as usize > cores.get() {
                tracing::warn!(
                    "--threads {n}: this machine runs {cores} threads at once; libtorch's threads then wait on \
                     each other, so expect it to be slower than with --threads {cores}"
                );
            }
        }
        synth::device::set_cpu_threads(n as usize);
    }
    let device = device_choice(r.device).resolve().context("--device")?;
    let precision = match r.precision {
        PrecisionArg::Fp32 => Precision::Fp32,
        PrecisionArg::Bf16 => Precision::Bf16,
    };
    if precision == Precision::Bf16 && device == Device::Cpu && !synth::device::cpu_has_native_bf16() {
        tracing::warn!(
            "--precision bf16: this CPU has no AVX-512 BF16 instructions, so libtorch emulates the bfloat16 \
             products; expect them to be slower than fp32"
        );
    }
    synth::device::set_precision(precision);
    Ok(device)
}

/// The library's device choice for a `--device` value.
fn device_choice(arg: DeviceArg) -> DeviceChoice {
    match arg {
        DeviceArg::Auto => DeviceChoice::Auto,
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
    }
}

/// Turns the flags into a [`TrainSpec`] (no I/O beyond telling the data folder's kind).
fn train_spec(args: &TrainArgs, device: Device) -> anyhow::Result<TrainSpec> {
    Ok(TrainSpec {
        config: args.config.clone(),
        data: DataSource::detect(&args.data)?,
        out: args.out.clone(),
        seed: args.seed,
        device,
        max_epochs: args.epochs.map(|n| n as usize),
        resume: args.resume,
        max_graphs: args.max_graphs.map(|n| n as usize),
    })
}

/// `strata synth train`: a progress bar per model (sub-model, epoch, loss)
/// and one summary line per epoch on stderr; nothing with `-q`.
fn train(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let device = apply_runtime(&args.runtime)?;
    let spec = train_spec(&args, device)?;
    // `-q` sets the global level to errors only: then no bar and no lines.
    let quiet = LevelFilter::current() < LevelFilter::WARN;
    let say = |bar: &ProgressBar, line: String| {
        if !quiet {
            bar.suspend(|| eprintln!("{line}"));
        }
    };
    let style = ProgressStyle::with_template("{prefix:>10} [{bar:30}] {pos}/{len} {msg}")
        .expect("a valid template")
        .progress_chars("=> ");
    let mut bar = ProgressBar::hidden();
    let mut on_progress = |p: Progress| {
        match p {
        Progress::Loaded { train_graphs, validation_graphs, parameters } => say(
            &bar,
            format!(
                "strata: training on {train_graphs} graphs, validating on {validation_graphs}; parameters {} / {} / {} (layer sizes / nodes / edges)",
                parameters[0], parameters[1], parameters[2]
            ),
        ),
        Progress::Start { sub_model, epochs_done, max_epochs, batches, val_loss } => {
            bar.finish_and_clear();
            let remaining = (max_epochs - epochs_done) as u64 * batches as u64;
            bar = if quiet {
                ProgressBar::hidden()
            } else {
                ProgressBar::with_draw_target(Some(remaining), ProgressDrawTarget::stderr())
            };
            bar.set_style(style.clone());
            bar.set_prefix(sub_model.name());
            say(
                &bar,
                format!(
                    "strata: {sub_model}: epochs {}..={max_epochs}, {batches} batches each, validation loss {val_loss:.4} at the start",
                    epochs_done + 1
                ),
            );
        }
        Progress::Batch { epoch, loss, .. } => {
            bar.set_message(format!("epoch {epoch} loss {loss:.4}"));
            bar.inc(1);
        }
        Progress::Epoch(e) => say(
            &bar,
            format!(
                "strata: {} epoch {}/{}: train loss {:.4}, validation loss {:.4}{}{} (best {:.4}), {:.2} s ({:.2} s training, {:.2} s validation)",
                e.sub_model,
                e.epoch,
                e.max_epochs,
                e.train_loss,
                e.val_loss,
                e.accuracy.map(|a| format!(", accuracy of a sampled size {a:.4}")).unwrap_or_default(),
                if e.improved { " *" } else { "" },
                e.best_val_loss,
                e.seconds,
                e.train_seconds,
                e.val_seconds
            ),
        ),
        Progress::Skip { sub_model, reason } => say(&bar, format!("strata: {sub_model}: nothing to do ({reason})")),
        Progress::Warning { message } => bar.suspend(|| tracing::warn!("{message}")),
        Progress::CheckpointFailed { error } => {
            bar.suspend(|| tracing::warn!("checkpoint not saved, training goes on: {error}"))
        }
        _ => {}
    }
    };
    let result = synth::train::train(&spec, &mut on_progress);
    bar.finish_and_clear();
    let report =
        result.with_context(|| format!("training with {} on {}", spec.config.display(), spec.data.path().display()))?;
    for r in &report.sub_models {
        let mean = if r.epoch_seconds.is_empty() {
            0.0
        } else {
            r.epoch_seconds.iter().sum::<f64>() / r.epoch_seconds.len() as f64
        };
        println!(
            "{}: {} epochs ({} this run, {:.2} s each){}; validation loss {:.4} untrained, {:.4} kept (epoch {})",
            r.sub_model,
            r.epochs,
            r.epochs_run,
            mean,
            if r.stopped_early { ", stopped early" } else { "" },
            r.initial_val_loss,
            r.best_val_loss,
            r.best_epoch
        );
    }
    print_priors(report.size_prior.as_ref(), &report.magnitude_prior);
    println!("model written to {} in {:.1} s", spec.out.display(), report.seconds);
    Ok(ExitCode::SUCCESS)
}

/// `strata synth refit-priors`: new size and magnitude priors for a checkpoint, weights untouched.
fn refit_priors(args: RefitPriorsArgs) -> anyhow::Result<ExitCode> {
    let source = DataSource::detect(&args.data)?;
    let report = synth::train::refit_priors(&args.model, &source)
        .with_context(|| format!("refitting the priors of {} on {}", args.model.display(), args.data.display()))?;
    print_priors(report.size_prior.as_ref(), &report.magnitude_prior);
    println!("priors written to {}", args.model.join(synth::model::layer_dag::CONFIG_FILE).display());
    Ok(ExitCode::SUCCESS)
}

/// One line per prior figure: median relative errors on the train and validation splits.
fn print_priors(size_prior: Option<&synth::train::SizePriorReport>, magnitude_prior: &[(&str, f64, f64)]) {
    if let Some(p) = size_prior {
        println!(
            "size prior: median relative error of the predicted depth {:.1} % (train) / {:.1} % (validation), of the node count {:.1} % / {:.1} %",
            100.0 * p.train.0,
            100.0 * p.validation.0,
            100.0 * p.train.1,
            100.0 * p.validation.1
        );
        if let Some((train, validation)) = p.forward_send {
            println!(
                "size prior: median relative error of the predicted layer of the sends to the next stage {:.1} % (train) / {:.1} % (validation)",
                100.0 * train,
                100.0 * validation
            );
        }
    }
    for (name, train, validation) in magnitude_prior {
        println!(
            "magnitude prior: median relative error of the predicted {name} {:.1} % (train) / {:.1} % (validation)",
            100.0 * train,
            100.0 * validation
        );
    }
}

/// The environment variable naming the model used when `--model` is not given.
pub const MODEL_ENV: &str = "STRATA_MODEL";

/// The shipped model's folder, relative to the repository root.
pub const DEFAULT_MODEL: &str = "models/default";

/// The model folder to use: `--model`, else `$STRATA_MODEL`, else the
/// shipped `models/default` found next to the executable (a checkout's
/// `target/<profile>/strata` looks two folders up) or in the source tree
/// this binary was built from.
pub fn resolve_model(flag: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(dir) = flag {
        return Ok(dir.to_path_buf());
    }
    if let Some(dir) = std::env::var_os(MODEL_ENV).filter(|v| !v.is_empty()) {
        let dir = PathBuf::from(dir);
        if !dir.is_dir() {
            anyhow::bail!("{MODEL_ENV}={}: no such model folder (unset it to use the shipped model)", dir.display());
        }
        return Ok(dir);
    }
    let mut looked = Vec::new();
    let exe_roots: Option<Vec<PathBuf>> =
        std::env::current_exe().ok().map(|exe| exe.ancestors().skip(1).take(4).map(Path::to_path_buf).collect());
    let roots: Vec<PathBuf> =
        exe_roots.unwrap_or_default().into_iter().chain([PathBuf::from(env!("CARGO_MANIFEST_DIR"))]).collect();
    for root in roots {
        let dir = root.join(DEFAULT_MODEL);
        if dir.join("config.json").is_file() {
            return Ok(dir);
        }
        looked.push(dir.display().to_string());
    }
    anyhow::bail!(
        "no --model given, {MODEL_ENV} is not set and no shipped model was found (looked in {}); \
         train one with `strata synth train --config configs/synth/default.toml --data <corpus> --out DIR`",
        looked.join(", ")
    )
}

/// `strata synth generate`: warnings for what-if values, then one line per written workload.
fn generate(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let device = apply_runtime(&args.runtime)?;
    let model = resolve_model(args.model.as_deref())?;
    tracing::info!("model: {}", model.display());
    // A bar over the sampled layers (drawn only on a terminal, never with -q).
    let bar = stderr_bar("sampling", "{prefix:>10} [{bar:30}] layer {pos}/{len} {elapsed}");
    let hook = bar.clone();
    let spec = synth::generate::GenerateSpec {
        model,
        sets: args.sets.clone(),
        ranks: args.ranks,
        out: args.out.clone(),
        count: args.count as usize,
        seed: args.seed,
        device,
        max_nodes: args.max_nodes.map(|n| n as usize),
        ignore_size_prior: args.no_size_prior,
        ignore_magnitude_prior: args.no_magnitude_prior,
        steps: denoising_steps(&args.steps),
        progress: Some(synth::sample::SampleProgress(std::sync::Arc::new(move |built, deepest| {
            hook.set_length(deepest as u64);
            hook.set_position(built as u64);
        }))),
    };
    let workloads = args.count as usize;
    let report = synth::generate::generate_with(&spec, &mut |warnings| {
        for w in warnings {
            tracing::warn!("{w}");
        }
        tracing::info!("sampling {workloads} workload(s), one graph per pipeline stage each");
    });
    bar.finish_and_clear();
    let report = report?;
    for w in &report.workloads {
        for (stage, shifts) in w.magnitude_shifts.iter().enumerate().filter(|(_, s)| s.iter().any(|&k| k != 0)) {
            tracing::info!(
                "{} stage {stage}: magnitude prior shifted num_ops by {:+}, tensor_size by {:+}, collective comm_size by {:+}, send comm_size by {:+} octaves (then single nodes by one more)",
                w.prefix.display(),
                shifts[0],
                shifts[1],
                shifts[2],
                shifts[3]
            );
        }
        if let Some(cap) = args.max_nodes {
            if let Some(most) = w.nodes_per_stage.iter().copied().filter(|&n| n > cap as usize).max() {
                tracing::warn!(
                    "{}: a stage graph has {most} nodes, above --max-nodes {cap}: a pipelined stage needs its \
                     pipeline messages (4 per micro-batch in a middle stage, 6 with the output head) and one node per layer \
                     before any cap",
                    w.prefix.display()
                );
            }
        }
        if w.stale_rank_files > 0 {
            tracing::warn!(
                "removed {} rank file(s) of an earlier workload under {} (more ranks, or .et.gz copies), which \
                 would have been read with this one",
                w.stale_rank_files,
                w.prefix.display()
            );
        }
        let c = &w.conversions;
        let ranks = match w.rank_files.len() {
            1 => "0".to_string(),
            n => format!("{{0..{}}}", n - 1),
        };
        println!(
            "wrote {}.{ranks}.et and {} ({} nodes per stage; {} send/recv pairs, {} dependencies cut to keep them acyclic, {} added from backward receives, {} backward sends anchored to their micro-batch; {} collectives regrouped, {} gradient all-reduces placed, {} activation collectives put in line; made compute nodes: {} unmatched send/recv, {} cyclic pairs, {} collectives, {} other nodes; {} unseen sizes clamped, {} comm sizes raised, {} tensor sizes set)",
            w.prefix.display(),
            w.comm_groups.display(),
            w.nodes_per_stage.iter().map(|n| n.to_string()).collect::<Vec<_>>().join("/"),
            c.p2p_pairs,
            c.p2p_edges_cut,
            c.p2p_edges_added,
            c.p2p_sends_anchored,
            c.collectives_regrouped,
            c.gradient_all_reduces_placed,
            c.activation_collectives_inlined,
            c.p2p_unmatched,
            c.p2p_cyclic,
            c.collectives + c.collectives_dropped,
            c.other_types,
            c.magnitudes_clamped,
            c.comm_sizes_raised,
            c.tensor_sizes_set
        );
    }
    let ranks = report.layout.ranks();
    let noun = if ranks == 1 { "rank" } else { "ranks" };
    println!("{} workload(s) of {ranks} {noun} in {:.1} s", report.workloads.len(), report.seconds);
    Ok(ExitCode::SUCCESS)
}

/// Turns the flags of `strata synth eval` into an [`synth::eval::EvalSpec`].
fn eval_spec(args: &EvalArgs, device: Device) -> anyhow::Result<synth::eval::EvalSpec> {
    Ok(synth::eval::EvalSpec {
        model: resolve_model(args.model.as_deref())?,
        data: args.data.clone(),
        split: match args.split {
            SplitArg::Train => synth::dataset::corpus::Split::Train,
            SplitArg::Validation => synth::dataset::corpus::Split::Validation,
        },
        count: args.count as usize,
        seed: args.seed,
        max_workloads: args.max_workloads.map(|n| n as usize),
        max_nodes: args.max_nodes.map(|n| n as usize),
        ignore_size_prior: args.no_size_prior,
        ignore_magnitude_prior: args.no_magnitude_prior,
        device,
        keep: args.keep.clone(),
        baseline: args.baseline,
        steps: denoising_steps(&args.steps),
    })
}

/// The library's step counts for `--node-steps` / `--edge-steps`.
fn denoising_steps(args: &StepsArgs) -> synth::sample::DenoisingSteps {
    synth::sample::DenoisingSteps {
        node: args.node_steps.map(|n| n as usize),
        edge: args.edge_steps.map(|n| n as usize),
    }
}

/// A progress bar on stderr with `prefix` and `template` (drawn only on a
/// terminal; hidden with `-q`).
fn stderr_bar(prefix: &'static str, template: &str) -> ProgressBar {
    let quiet = LevelFilter::current() < LevelFilter::WARN;
    let bar =
        if quiet { ProgressBar::hidden() } else { ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()) };
    bar.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
    bar.set_prefix(prefix);
    bar
}

/// `strata synth eval`: a progress bar over workloads on stderr, one row per
/// workload and the summary on stdout, the JSON report with `--json`. Exit 1
/// when a generated workload is invalid.
fn eval(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let device = apply_runtime(&args.runtime)?;
    if let Some(path) = &args.json {
        crate::sim_cmd::check_writable(path).context("--json")?;
    }
    let spec = eval_spec(&args, device)?;
    let bar = stderr_bar("eval", "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed} {msg}");
    let mut on_progress = |p: synth::eval::EvalProgress| match p {
        synth::eval::EvalProgress::Start { workloads } => bar.set_length(workloads as u64),
        synth::eval::EvalProgress::Workload { index, id } => {
            bar.set_position(index as u64);
            bar.set_message(id);
        }
        synth::eval::EvalProgress::Baseline => bar.set_message("baseline: reading the other split"),
        synth::eval::EvalProgress::Warning { message } => bar.suspend(|| tracing::warn!("{message}")),
        _ => {}
    };
    let result = synth::eval::evaluate_with(&spec, &mut on_progress);
    bar.finish_and_clear();
    let report = result.with_context(|| {
        format!("evaluating {} on the {} split of {}", spec.model.display(), spec.split.name(), spec.data.display())
    })?;
    for w in &report.workloads {
        for s in w.samples.iter().filter(|s| !s.validity.valid()) {
            tracing::warn!(
                "{}: generated workload {} is invalid: {}",
                w.id,
                s.prefix.display(),
                s.validity.problems.iter().take(5).cloned().collect::<Vec<_>>().join("; ")
            );
        }
        if let Some(note) = &w.real_note {
            tracing::info!("{}: {note}", w.id);
        }
    }
    print!("{}", eval_table(&report));
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).context("serializing the report")?;
        simulator::util::write_atomic(path, |w| w.write_all(text.as_bytes()))?;
        println!("report written to {}", path.display());
    }
    Ok(if report.all_valid() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The eval report as a table (one row per workload) and summary lines.
fn eval_table(r: &synth::eval::EvalReport) -> String {
    use std::fmt::Write;
    let mmd = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.3}"));
    let four = |m: &synth::eval::StructureMmd| {
        format!(
            "in-degree {}, out-degree {}, layer width {}, node type {}",
            mmd(m.in_degree),
            mmd(m.out_degree),
            mmd(m.layer_width),
            mmd(m.node_type)
        )
    };
    let ms = |v: Option<u64>| v.map_or("-".to_string(), |v| format!("{:.3}", v as f64 / 1e6));
    let pct = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{:.1}%", 100.0 * v));
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<40} {:>5} {:>13} {:>5} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>8}",
        "workload",
        "ranks",
        "nodes r->g",
        "valid",
        "in-deg",
        "out-deg",
        "width",
        "type",
        "real ms",
        "gen ms",
        "rel err"
    );
    for w in &r.workloads {
        let real_nodes = w.real_nodes_per_stage.iter().max().copied().unwrap_or(0);
        let gen_nodes = w.samples.iter().flat_map(|s| s.nodes_per_stage.iter()).max().copied().unwrap_or(0);
        let valid = w.samples.iter().filter(|s| s.validity.valid()).count();
        let mut spans: Vec<u64> = w.samples.iter().filter_map(|s| s.makespan_ns).collect();
        spans.sort_unstable();
        let _ = writeln!(
            out,
            "{:<40} {:>5} {:>13} {:>5} {:>7} {:>7} {:>7} {:>7} {:>9} {:>9} {:>8}",
            w.id,
            w.ranks,
            format!("{real_nodes}->{gen_nodes}"),
            format!("{valid}/{}", w.samples.len()),
            mmd(w.mmd.in_degree),
            mmd(w.mmd.out_degree),
            mmd(w.mmd.layer_width),
            mmd(w.mmd.node_type),
            ms(w.real_makespan_ns),
            ms(spans.get(spans.len() / 2).copied()),
            pct(w.rel_error)
        );
    }
    let s = &r.summary;
    let _ = writeln!(
        out,
        "validity: {} of {} generated workloads valid ({:.1}%), {} rank files",
        s.valid,
        s.generated,
        100.0 * s.validity_rate,
        s.rank_files
    );
    let _ = writeln!(
        out,
        "structure MMD (generated {} vs real {} stage graphs): {}",
        s.generated_graphs,
        s.real_graphs,
        four(&s.mmd)
    );
    if let Some(b) = &r.baseline {
        let _ = writeln!(out, "baseline MMD ({}; {} graphs): {}", b.description, b.other_graphs, four(&b.mmd));
    }
    let e = &s.rel_error;
    let _ = writeln!(
        out,
        "iteration time relative error over {} workloads: median {}, p90 {}, mean {}, max {}",
        e.n,
        pct(e.median),
        pct(e.p90),
        pct(e.mean),
        pct(e.max)
    );
    for (what, c) in [("GPU compute time", &s.compute), ("exposed communication time", &s.exposed_comm)] {
        let _ = writeln!(
            out,
            "{what} (summed over ranks) relative error over {} workloads: median {}, p90 {}; {} generated longer",
            c.rel_error.n,
            pct(c.rel_error.median),
            pct(c.rel_error.p90),
            c.longer
        );
    }
    let _ = writeln!(out, "{} workloads of the {} split evaluated in {:.1} s", s.workloads, r.split, r.seconds);
    out
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command, DeviceArg, PrecisionArg, SplitArg, SynthCommand};

    fn train(args: &[&str]) -> Result<crate::cli::TrainArgs, clap::Error> {
        let base = ["strata", "synth", "train"];
        let cli = Cli::try_parse_from(base.iter().chain(args))?;
        let Command::Synth(SynthCommand::Train(a)) = cli.command else { panic!("not synth train") };
        Ok(a)
    }

    #[test]
    fn train_flags() {
        let req = ["--config", "c.toml", "--data", "d", "--out", "m"];
        let a = train(&req).unwrap();
        assert_eq!(
            (a.seed, a.epochs, a.resume, a.runtime.device, a.max_graphs, a.runtime.precision),
            (0, None, false, DeviceArg::Auto, None, PrecisionArg::Fp32)
        );
        let more = ["--seed", "5", "--epochs", "3", "--resume", "--device", "cpu", "--precision", "bf16"];
        let a = train(&[&req[..], &more[..]].concat()).unwrap();
        assert_eq!(
            (a.seed, a.epochs, a.resume, a.runtime.device, a.runtime.precision),
            (5, Some(3), true, DeviceArg::Cpu, PrecisionArg::Bf16)
        );
        assert!(train(&[&req[..], &["--epochs", "0"]].concat()).is_err());
        assert!(train(&[&req[..], &["--device", "tpu"]].concat()).is_err());
        assert!(train(&[&req[..], &["--precision", "fp16"]].concat()).is_err());
        assert!(train(&req[..4]).is_err(), "--out is required");
    }

    #[test]
    fn generate_flags() {
        let parse = |args: &[&str]| {
            let base = ["strata", "synth", "generate"];
            Cli::try_parse_from(base.iter().chain(args)).map(|cli| match cli.command {
                Command::Synth(SynthCommand::Generate(a)) => a,
                _ => panic!("not synth generate"),
            })
        };
        let a = parse(&["--model", "m", "--set", "tp=8", "--set", "num_stacks=48", "--ranks", "16", "--out", "o/w"])
            .unwrap();
        assert_eq!(a.sets, vec!["tp=8".to_string(), "num_stacks=48".to_string()]);
        assert_eq!((a.ranks, a.count, a.seed, a.max_nodes), (16, 1, 0, None));
        assert_eq!(a.model.as_deref(), Some(std::path::Path::new("m")));
        let a = parse(&["--set", "tp=8", "--ranks", "16", "--out", "o"]).unwrap();
        assert_eq!(a.model, None, "--model is optional: the shipped model is the default");
        assert!(parse(&["--model", "m", "--ranks", "0", "--out", "o"]).is_err());
        assert!(parse(&["--model", "m", "--ranks", "2", "--out", "o", "--count", "0"]).is_err());
        let a = parse(&["--ranks", "2", "--out", "o", "--node-steps", "4", "--edge-steps", "2"]).unwrap();
        assert_eq!((a.steps.node_steps, a.steps.edge_steps), (Some(4), Some(2)));
        assert!(parse(&["--ranks", "2", "--out", "o", "--edge-steps", "0"]).is_err());
    }

    #[test]
    fn eval_flags() {
        let parse = |args: &[&str]| {
            let base = ["strata", "synth", "eval"];
            Cli::try_parse_from(base.iter().chain(args)).map(|cli| match cli.command {
                Command::Synth(SynthCommand::Eval(a)) => a,
                _ => panic!("not synth eval"),
            })
        };
        let a = parse(&["--model", "m"]).unwrap();
        assert_eq!(a.data, std::path::PathBuf::from("../shared/data/corpus"));
        assert_eq!((a.split, a.count, a.seed, a.max_workloads, a.baseline), (SplitArg::Validation, 1, 0, None, false));
        let a =
            parse(&["--model", "m", "--split", "train", "--count", "3", "--max-workloads", "2", "--baseline"]).unwrap();
        assert_eq!((a.split, a.count, a.max_workloads, a.baseline), (SplitArg::Train, 3, Some(2), true));
        assert_eq!(parse(&[]).unwrap().model, None, "--model is optional: the shipped model is the default");
        assert!(parse(&["--model", "m", "--split", "test"]).is_err(), "unknown split");
        assert!(parse(&["--model", "m", "--count", "0"]).is_err());
        assert!(parse(&["--model", "m", "--max-workloads", "0"]).is_err());
    }

    #[test]
    fn an_explicit_model_wins_over_the_default() {
        let m = super::resolve_model(Some(std::path::Path::new("some/where"))).unwrap();
        assert_eq!(m, std::path::PathBuf::from("some/where"));
    }
}
