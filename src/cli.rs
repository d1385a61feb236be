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
    /// The LayerDAG trace generator (libtorch).
    #[cfg(feature = "synth")]
    #[command(subcommand)]
    Synth(SynthCommand),
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn convert_takes_npus_and_passes() {
        let cli = Cli::try_parse_from(["strata", "et", "convert", "a.txt", "out/a", "--npus", "8", "--passes", "2"]).unwrap();
        let Command::Et(EtCommand::Convert(args)) = cli.command else { panic!("not convert") };
        assert_eq!((args.npus, args.passes), (Some(8), 2));
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
