//! `strata synth ...`: front end of the `synth` crate.

use std::process::ExitCode;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use synth::train::{DataSource, DeviceChoice, Progress, TrainSpec};
use tracing::level_filters::LevelFilter;

use crate::cli::{DeviceArg, SynthCommand, TrainArgs};

/// Runs one `synth` subcommand.
pub fn run(cmd: SynthCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SynthCommand::Runtime => {
            println!("{}", synth::device::runtime_summary());
            println!("default device: {:?}", synth::device::default_device());
            Ok(ExitCode::SUCCESS)
        }
        SynthCommand::Train(args) => train(args),
    }
}

/// Turns the flags into a [`TrainSpec`] (no I/O beyond telling the data folder's kind).
fn train_spec(args: &TrainArgs) -> anyhow::Result<TrainSpec> {
    let device = match args.device {
        DeviceArg::Auto => DeviceChoice::Auto,
        DeviceArg::Cpu => DeviceChoice::Cpu,
        DeviceArg::Cuda => DeviceChoice::Cuda,
    }
    .resolve()
    .context("--device")?;
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
    let spec = train_spec(&args)?;
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
                "strata: {} epoch {}/{}: train loss {:.4}, validation loss {:.4}{} (best {:.4}), {:.2} s",
                e.sub_model,
                e.epoch,
                e.max_epochs,
                e.train_loss,
                e.val_loss,
                if e.improved { " *" } else { "" },
                e.best_val_loss,
                e.seconds
            ),
        ),
        Progress::Skip { sub_model, reason } => say(&bar, format!("strata: {sub_model}: nothing to do ({reason})")),
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
    println!("model written to {} in {:.1} s", spec.out.display(), report.seconds);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::cli::{Cli, Command, DeviceArg, SynthCommand};

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
        assert_eq!((a.seed, a.epochs, a.resume, a.device, a.max_graphs), (0, None, false, DeviceArg::Auto, None));
        let a = train(&[&req[..], &["--seed", "5", "--epochs", "3", "--resume", "--device", "cpu"]].concat()).unwrap();
        assert_eq!((a.seed, a.epochs, a.resume, a.device), (5, Some(3), true, DeviceArg::Cpu));
        assert!(train(&[&req[..], &["--epochs", "0"]].concat()).is_err());
        assert!(train(&[&req[..], &["--device", "tpu"]].concat()).is_err());
        assert!(train(&req[..4]).is_err(), "--out is required");
    }
}
