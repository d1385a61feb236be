//! `strata`: the command-line front end. It parses arguments, calls the
//! `simulator` and `synth` libraries, formats their results and maps errors to
//! exit codes; no simulation or model logic lives here.

mod cli;
mod et;
mod format;
mod sim_cmd;
#[cfg(feature = "synth")]
mod synth_cmd;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// mimalloc instead of the system allocator: the simulator allocates many small,
/// short-lived objects (trace nodes while loading, per-collective plans); with
/// glibc's malloc, allocation was about a tenth of the instructions of a run.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match run(cli) {
        Ok(code) => code,
        Err(err) => {
            // A closed pipe (`strata et stats ... | head`) is not a failure.
            if err
                .chain()
                .any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe))
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("strata: error: {}", error_message(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes on one line, each cause once: the library
/// errors name their source in their own message, so a cause already
/// spelled out by the error above it is not repeated.
fn error_message(err: &anyhow::Error) -> String {
    let mut msg = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if !msg.contains(&text) {
            if !msg.is_empty() {
                msg.push_str(": ");
            }
            msg.push_str(&text);
        }
    }
    msg
}

/// Dispatches a parsed command line; each arm is a short call into a module.
fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Et(cmd) => et::run(cmd),
        Command::Sim(args) => sim_cmd::run(args),
        #[cfg(feature = "synth")]
        Command::Synth(cmd) => synth_cmd::run(cmd),
    }
}

/// Warnings and progress go to stderr through `tracing`, as `strata: warning: ...`
/// lines; `-v` shows more, `-q` hides warnings.
fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => tracing::Level::ERROR,
        (false, 0) => tracing::Level::WARN,
        (false, 1) => tracing::Level::INFO,
        (false, _) => tracing::Level::DEBUG,
    };
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_max_level(level).event_format(PlainFormat).init();
}

/// `strata: <level>: <message>` without timestamps or targets.
struct PlainFormat;

impl<S, N> tracing_subscriber::fmt::FormatEvent<S, N> for PlainFormat
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let level = match *event.metadata().level() {
            tracing::Level::ERROR => "error",
            tracing::Level::WARN => "warning",
            tracing::Level::INFO => "info",
            _ => "debug",
        };
        write!(writer, "strata: {level}: ")?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}
