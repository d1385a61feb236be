//! `strata synth ...`: front end of the `synth` crate.

use std::process::ExitCode;

use crate::cli::SynthCommand;

/// Runs one `synth` subcommand.
pub fn run(cmd: SynthCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SynthCommand::Runtime => {
            println!("{}", synth::device::runtime_summary());
            println!("default device: {:?}", synth::device::default_device());
            Ok(ExitCode::SUCCESS)
        }
    }
}
