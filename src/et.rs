//! `strata et ...`: convert, validate and summarize Chakra traces.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use serde::Serialize;
use simulator::chakra::{self, convert, json::JsonForm, stats::TraceStats, validate::Findings, EtTrace, TraceFormat};

use crate::cli::{ConvertArgs, EtCommand, StatsArgs, ValidateArgs};
use crate::format;

/// Runs one `et` subcommand.
pub fn run(cmd: EtCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        EtCommand::Convert(args) => convert_cmd(args),
        EtCommand::Validate(args) => validate_cmd(args),
        EtCommand::Stats(args) => stats_cmd(args),
    }
}

/// What an input file holds, as far as conversion is concerned.
enum Source {
    Trace,
    Text,
    PytorchHost,
}

fn classify(input: &Path, npus: Option<u32>) -> anyhow::Result<Source> {
    let ext = input.extension().and_then(|e| e.to_str()).unwrap_or_default().to_ascii_lowercase();
    if npus.is_some() || ext == "txt" {
        return Ok(Source::Text);
    }
    if TraceFormat::from_path(input) == TraceFormat::Json {
        if let Ok(values) = chakra::json::read_values(input) {
            if chakra::json::detect_form(&values) == Some(JsonForm::PytorchHost) {
                return Ok(Source::PytorchHost);
            }
        }
    }
    Ok(Source::Trace)
}

fn convert_cmd(args: ConvertArgs) -> anyhow::Result<ExitCode> {
    let out = &args.output;
    match classify(&args.input, args.npus)? {
        Source::Text => {
            let Some(npus) = args.npus else {
                bail!("{}: a text workload needs the number of NPUs: add --npus N", args.input.display());
            };
            let opts = convert::text::TextOptions { npus, passes: args.passes };
            let traces = convert::text::convert_text_workload(&args.input, &opts)?;
            let written = chakra::write_workload(out, &traces)?;
            if let Some(first) = written.stale_removed.first() {
                tracing::warn!(
                    "removed {} rank file(s) of an earlier workload under {} ({} first; more ranks, or .et.gz \
                     copies), which would have been read with this one",
                    written.stale_removed.len(),
                    out.display(),
                    first.display()
                );
            }
            let nodes: usize = traces.iter().map(|t| t.nodes.len()).sum();
            format::status(format_args!(
                "wrote {} ranks ({} nodes) to {}.<rank>.et",
                traces.len(),
                format::count(nodes as u64),
                out.display()
            ));
        }
        Source::PytorchHost => {
            let trace = convert::pytorch::convert_pytorch_host(&args.input)?;
            chakra::write_trace(out, &trace)?;
            format::status(format_args!("wrote {} ({} nodes)", out.display(), format::count(trace.nodes.len() as u64)));
        }
        Source::Trace => {
            let trace = chakra::read_trace(&args.input)?;
            // Converted as written (a broken trace may be converted to look
            // at it), but said: sim refuses repeated ids.
            let mut seen = std::collections::HashSet::with_capacity(trace.nodes.len());
            let repeats: Vec<u64> = trace.nodes.iter().map(|n| n.id).filter(|id| !seen.insert(*id)).collect();
            if let Some(first) = repeats.first() {
                tracing::warn!(
                    "{}: {} node(s) repeat an earlier node's id (the first: id {first}); converted as written, but \
                     `strata sim` refuses such a trace (`strata et validate` lists them)",
                    args.input.display(),
                    repeats.len()
                );
            }
            chakra::write_trace(out, &trace)?;
            format::status(format_args!("wrote {} ({} nodes)", out.display(), format::count(trace.nodes.len() as u64)));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Expands every argument into per-rank files, failing on the first bad
/// argument (the library's error names it and says what was looked for).
fn expand_all(inputs: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for input in inputs {
        files.extend(chakra::expand_workload(input)?.into_iter().map(|f| f.path));
    }
    Ok(files)
}

/// One file's result; in JSON `{"path", "nodes", "findings"}` when it was read
/// and `{"path", "read_error"}` when it could not be.
#[derive(Serialize)]
#[serde(untagged)]
enum ValidateEntry {
    /// The file was read and checked.
    Checked(Findings),
    /// The file could not be read at all.
    Unreadable { path: PathBuf, read_error: String },
}

impl ValidateEntry {
    fn findings(&self) -> Option<&Findings> {
        match self {
            ValidateEntry::Checked(f) => Some(f),
            ValidateEntry::Unreadable { .. } => None,
        }
    }

    fn read_error(&self) -> Option<&str> {
        match self {
            ValidateEntry::Checked(_) => None,
            ValidateEntry::Unreadable { read_error, .. } => Some(read_error),
        }
    }
}

fn validate_cmd(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let files = expand_all(&args.inputs)?;
    let mut entries = Vec::with_capacity(files.len());
    for path in files {
        entries.push(match chakra::read_trace(&path) {
            Ok(trace) => ValidateEntry::Checked(chakra::validate::validate_trace(&trace, &path)),
            Err(e) => ValidateEntry::Unreadable { path, read_error: e.to_string() },
        });
    }
    let mut failed = false;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    for e in &entries {
        let errors = e.findings().map_or(0, Findings::errors);
        let warnings = e.findings().map_or(0, Findings::warnings);
        failed |= e.read_error().is_some() || errors > 0 || (args.deny_warnings && warnings > 0);
        if args.json {
            continue;
        }
        let f = match e {
            ValidateEntry::Unreadable { read_error, .. } => {
                writeln!(out, "{read_error}")?;
                continue;
            }
            ValidateEntry::Checked(f) => f,
        };
        for finding in f.findings.iter().take(args.max_findings) {
            writeln!(out, "{}: {finding}", f.path.display())?;
        }
        if f.findings.len() > args.max_findings {
            writeln!(
                out,
                "{}: ... and {} more findings (--max-findings to show more)",
                f.path.display(),
                f.findings.len() - args.max_findings
            )?;
        }
        let verdict = if errors == 0 && warnings == 0 {
            "ok".to_string()
        } else {
            format!("{errors} errors, {warnings} warnings")
        };
        writeln!(out, "{}: {} nodes, {verdict}", f.path.display(), format::count(f.nodes as u64))?;
    }
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
    } else if entries.len() > 1 {
        let bad =
            entries.iter().filter(|e| e.read_error().is_some() || e.findings().is_some_and(|f| f.errors() > 0)).count();
        writeln!(out, "{} files checked, {bad} with errors", entries.len())?;
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

#[derive(Serialize)]
struct StatsEntry {
    path: PathBuf,
    #[serde(flatten)]
    stats: TraceStats,
}

fn stats_cmd(args: StatsArgs) -> anyhow::Result<ExitCode> {
    let files = expand_all(&args.inputs)?;
    let mut entries = Vec::with_capacity(files.len());
    for path in files {
        let trace: EtTrace = chakra::read_trace(&path)?;
        let stats = chakra::stats::trace_stats(&trace);
        if !stats.overflowed.is_empty() {
            tracing::warn!(
                "{}: totals past 2^64 - 1, shown as that maximum: {}",
                path.display(),
                stats.overflowed.join(", ")
            );
        }
        entries.push(StatsEntry { stats, path });
    }
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &entries)?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for (i, e) in entries.iter().enumerate() {
        if i > 0 {
            writeln!(out)?;
        }
        print_stats(&mut out, &e.path, &e.stats)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// A total for the text report: `render(value)`, or, when the total `field`
/// overflowed (see [`TraceStats::overflowed`]), a statement that it exceeds the
/// largest value rather than that (saturated) value dressed up as a measurement.
fn total(s: &TraceStats, field: &str, value: u64, render: fn(u64) -> String) -> String {
    if s.is_overflowed(field) {
        format!("more than {} (overflow)", render(u64::MAX))
    } else {
        render(value)
    }
}

fn print_stats(out: &mut impl Write, path: &Path, s: &TraceStats) -> std::io::Result<()> {
    let version = match s.version.as_deref() {
        None => "legacy file: no metadata".to_string(),
        Some("") => "no version string".to_string(),
        Some(v) => format!("version {v}"),
    };
    writeln!(out, "{}  ({version})", path.display())?;
    writeln!(out, "  nodes            {}", format::count(s.nodes))?;
    for (ty, n) in &s.nodes_by_type {
        let dur = s.duration_micros_by_type.get(ty).copied().unwrap_or(0);
        let dur = total(s, &format!("duration_micros_by_type.{ty}"), dur, format::micros);
        writeln!(out, "    {ty:<18} {:>9}   duration {dur}", format::count(*n))?;
    }
    if !s.collectives.is_empty() {
        writeln!(out, "  collectives")?;
        for (ty, t) in &s.collectives {
            let bytes = total(s, &format!("collectives.{ty}.bytes"), t.bytes, format::bytes);
            writeln!(out, "    {ty:<18} {:>9}   {bytes}", format::count(t.count))?;
        }
    }
    if s.sends.count + s.recvs.count > 0 {
        let sent = total(s, "sends.bytes", s.sends.bytes, format::bytes);
        let received = total(s, "recvs.bytes", s.recvs.bytes, format::bytes);
        writeln!(out, "  sends            {:>9}   {sent}", format::count(s.sends.count))?;
        writeln!(out, "  receives         {:>9}   {received}", format::count(s.recvs.count))?;
    }
    writeln!(
        out,
        "  dependencies     {} data, {} ctrl; {} roots, {} leaves{}",
        format::count(s.data_deps),
        format::count(s.ctrl_deps),
        format::count(s.roots),
        format::count(s.leaves),
        if s.missing_deps > 0 { format!(", {} on missing ids", s.missing_deps) } else { String::new() }
    )?;
    match (s.layers, s.critical_path_micros, s.critical_path_nodes) {
        (Some(l), Some(c), Some(n)) => {
            writeln!(out, "  layers           {}", format::count(l))?;
            let c = total(s, "critical_path_micros", c, format::micros);
            writeln!(out, "  critical path    {c} over {} nodes", format::count(n))?;
        }
        _ => writeln!(out, "  layers           n/a (the dependencies contain a cycle)")?,
    }
    writeln!(
        out,
        "  durations        {} total, {} on CPU compute",
        total(s, "duration_micros", s.duration_micros, format::micros),
        total(s, "cpu_compute_micros", s.cpu_compute_micros, format::micros)
    )?;
    if s.num_ops > 0 {
        writeln!(out, "  compute ops      {}", total(s, "num_ops", s.num_ops, format::count))?;
    }
    if s.comp_without_cost > 0 {
        writeln!(out, "  compute nodes with neither duration nor num_ops: {}", format::count(s.comp_without_cost))?;
    }
    Ok(())
}
