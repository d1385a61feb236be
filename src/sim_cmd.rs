//! `strata sim`: turns the command line into a `simulator::run::RunRequest`,
//! runs it, and prints the per-rank table (or ASTRA-sim's finish lines). It
//! writes `--report` and `--trace` only after a run that finished.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use simulator::error::SimError;
use simulator::report::{RankReport, Report};
use simulator::run::{load, RunRequest};
use simulator::sim::{BackendKind, Simulation};
use simulator::util::write_atomic;

use crate::cli::{Backend, SimArgs};
use crate::format;

/// Above this many ranks the table shows a summary and the first and last few ranks.
const FULL_TABLE_RANKS: usize = 32;
/// Ranks shown at each end of a summarized table.
const EDGE_RANKS: usize = 4;

/// Runs `strata sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    for out in [&args.report, &args.trace].into_iter().flatten() {
        check_writable(out)?;
    }
    if let (Some(report), Some(trace)) = (&args.report, &args.trace) {
        if same_output(report, trace) {
            bail!("--report and --trace both name {}: give each its own file", report.display());
        }
    }
    if args.logging_folder.is_some() || args.logging_configuration.is_some() {
        tracing::info!("--logging-folder and --logging-configuration are ignored: strata logs to stderr");
    }
    let req = request(&args);
    let t0 = Instant::now();
    let spec = load(&req)?;
    let loaded = t0.elapsed();
    let t1 = Instant::now();
    let mut report = match Simulation::new(spec)?.run() {
        Ok(r) => r,
        Err(e @ SimError::Stalled { .. }) => {
            eprintln!("strata: error: {}", e.to_string().trim_end());
            for out in [&args.report, &args.trace].into_iter().flatten() {
                // A file already there is an earlier run's: left alone, but named
                // as such, so that a script reading it is not misled.
                let earlier = if out.is_file() { " (the file there is an earlier run's)" } else { "" };
                eprintln!("strata: nothing written to {}: the run did not finish{earlier}", out.display());
            }
            return Ok(ExitCode::from(1));
        }
        Err(e @ SimError::TimeOverflow { .. }) => {
            bail!("{e} (network {}, system {})", req.network.display(), req.system.display())
        }
        Err(e) => return Err(e.into()),
    };
    let simulated = t1.elapsed();
    let timeline = report.timeline.take();

    let mut out = std::io::stdout().lock();
    if args.astra_log {
        write!(out, "{}", astra_log(&report))?;
    } else {
        write!(out, "{}", table(&report))?;
        writeln!(
            out,
            "{} events{}; loaded {} ranks in {}, simulated in {} ({} events/s)",
            format::count(report.events),
            if report.reduced { " (one representative rank or replica stood for all)" } else { "" },
            report.ranks.len(),
            format::elapsed(loaded),
            format::elapsed(simulated),
            format::count((report.events as f64 / simulated.max(Duration::from_micros(1)).as_secs_f64()) as u64),
        )?;
    }
    out.flush()?;

    if let Some(path) = &args.report {
        write_atomic(path, |w| {
            serde_json::to_writer_pretty(&mut *w, &report)?;
            writeln!(w)
        })?;
        format::status(format_args!("wrote report {}", path.display()));
    }
    if let Some(path) = &args.trace {
        let spans = timeline.unwrap_or_default();
        let written = write_atomic(path, |w| simulator::trace::write_chrome_trace(w, report.ranks.len(), &spans));
        if let Err(e) = written {
            // The outputs of a run come together or not at all.
            if let Some(report) = &args.report {
                // The file written, not a link to it nor a device.
                let target = simulator::util::link_target(report);
                if std::fs::metadata(&target).is_ok_and(|m| m.is_file()) && std::fs::remove_file(&target).is_ok() {
                    eprintln!("strata: removed {}: the trace could not be written", target.display());
                }
            }
            return Err(e.into());
        }
        format::status(format_args!(
            "wrote trace {} ({} spans; open it at ui.perfetto.dev)",
            path.display(),
            format::count(spans.len() as u64)
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// The library request for the command line (ASTRA-sim's `empty` comm group means none).
fn request(args: &SimArgs) -> RunRequest {
    let mut req = RunRequest::new(&args.workload, &args.network, &args.system);
    req.memory = args.memory.clone();
    req.comm_group = args.comm_group.clone().filter(|p| p.as_os_str() != "empty");
    req.backend = match args.backend {
        Backend::CongestionUnaware => BackendKind::CongestionUnaware,
        Backend::CongestionAware => BackendKind::CongestionAware,
    };
    req.num_queues_per_dim = args.num_queues_per_dim;
    req.injection_scale = args.injection_scale;
    req.compute_scale = args.compute_scale;
    req.comm_scale = args.comm_scale;
    req.rendezvous = args.rendezvous_protocol;
    req.record_timeline = args.trace.is_some();
    req.slots = simulator::workload::HardwareSlots { cpu: args.cpu_slots, gpu: args.gpu_slots, comm: args.comm_slots };
    req.reissue_after_skip = args.reissue_after_skip;
    req.symmetry = !args.no_symmetry;
    req
}

/// Whether two output paths name the same file (through links and `..`;
/// for files not yet there, their folders are compared).
fn same_output(a: &Path, b: &Path) -> bool {
    let (a, b) = (&simulator::util::link_target(a), &simulator::util::link_target(b));
    // Devices (two names of one terminal) may take both streams.
    if [a, b].iter().any(|p| std::fs::metadata(p).is_ok_and(|m| !m.is_file() && !m.is_dir())) {
        return false;
    }
    let resolve = |p: &Path| {
        std::fs::canonicalize(p).ok().or_else(|| {
            let parent = p.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            Some(std::fs::canonicalize(parent).ok()?.join(p.file_name()?))
        })
    };
    a == b || matches!((resolve(a), resolve(b)), (Some(x), Some(y)) if x == y)
}

/// Fails before a long run if an output file could not be written afterwards.
pub(crate) fn check_writable(path: &Path) -> anyhow::Result<()> {
    // Through a symbolic link, what matters is where it points.
    let path = &simulator::util::link_target(path);
    if path.is_dir() {
        bail!("{}: is a folder; expected a file name for the output", path.display());
    }
    let parent = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let meta = std::fs::metadata(parent)
        .with_context(|| format!("{}: cannot write the output into {}", path.display(), parent.display()))?;
    if !meta.is_dir() {
        bail!("{}: cannot write the output: {} is not a folder", path.display(), parent.display());
    }
    Ok(())
}

/// ASTRA-sim's per-rank finish lines, in rank order.
fn astra_log(report: &Report) -> String {
    let mut s = String::new();
    for r in &report.ranks {
        if let (Some(f), Some(e)) = (r.finish_ns, r.exposed_comm_ns) {
            s += &format!("sys[{}] finished, {f} cycles, exposed communication {e} cycles.\n", r.rank);
        }
    }
    s
}

/// The per-rank table (a summary plus the first and last ranks when there are many) and totals.
fn table(report: &Report) -> String {
    let ranks = &report.ranks;
    let cpu = ranks.iter().any(|r| r.cpu_ns > 0);
    let mut head = vec!["rank", "finish", "compute"];
    if cpu {
        head.push("cpu");
    }
    head.extend(["communication", "exposed comm", "overlap"]);
    let cells = |label: String, v: [Option<u64>; 6]| -> Vec<String> {
        let mut c = vec![label];
        for (i, x) in v.iter().enumerate() {
            if i == 2 && !cpu {
                continue;
            }
            c.push(x.map_or_else(|| "-".to_string(), format::nanos));
        }
        c
    };
    let values = |r: &RankReport| {
        [r.finish_ns, Some(r.compute_ns), Some(r.cpu_ns), Some(r.comm_ns), r.exposed_comm_ns, Some(r.overlap_ns)]
    };
    let mut rows: Vec<Vec<String>> = vec![head.iter().map(|h| h.to_string()).collect()];
    if ranks.len() <= FULL_TABLE_RANKS {
        rows.extend(ranks.iter().map(|r| cells(r.rank.to_string(), values(r))));
    } else {
        for (name, pick) in [("min", 0.0), ("median", 0.5), ("max", 1.0)] {
            let mut v = [None; 6];
            for (col, slot) in v.iter_mut().enumerate() {
                let mut xs: Vec<u64> = ranks.iter().filter_map(|r| values(r)[col]).collect();
                xs.sort_unstable();
                *slot = (!xs.is_empty()).then(|| xs[((xs.len() - 1) as f64 * pick) as usize]);
            }
            rows.push(cells(name.to_string(), v));
        }
        rows.push(vec![String::new()]);
        rows.extend(ranks[..EDGE_RANKS].iter().map(|r| cells(r.rank.to_string(), values(r))));
        rows.push(vec![format!("... {} more", ranks.len() - 2 * EDGE_RANKS)]);
        rows.extend(ranks[ranks.len() - EDGE_RANKS..].iter().map(|r| cells(r.rank.to_string(), values(r))));
    }
    let ncols = rows[0].len();
    let widths: Vec<usize> = (0..ncols)
        .map(|c| rows.iter().filter(|r| r.len() == ncols).map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut s = String::new();
    for r in &rows {
        if r.len() != ncols {
            s += r[0].trim_end();
            s.push('\n');
            continue;
        }
        let line: Vec<String> = r.iter().zip(&widths).map(|(c, w)| format!("{c:>w$}")).collect();
        s += line.join("  ").trim_end();
        s.push('\n');
    }
    let last = ranks.iter().filter(|r| r.finish_ns == Some(report.makespan_ns)).map(|r| r.rank).next();
    let sum = |f: fn(&RankReport) -> u64| format::nanos(ranks.iter().map(f).fold(0u64, u64::saturating_add));
    s += &format!(
        "\nmakespan {} ({} ns{}) on {} ranks, {}\n",
        format::nanos(report.makespan_ns),
        format::count(report.makespan_ns),
        last.map_or(String::new(), |r| format!(", rank {r}")),
        ranks.len(),
        report.backend
    );
    s += &format!(
        "summed over ranks: compute {}{}, communication {}, exposed communication {}, overlap {}\n",
        sum(|r| r.compute_ns),
        if cpu { format!(", cpu {}", sum(|r| r.cpu_ns)) } else { String::new() },
        sum(|r| r.comm_ns),
        sum(|r| r.exposed_comm_ns.unwrap_or(0)),
        sum(|r| r.overlap_ns),
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rank(rank: u32, finish: u64) -> RankReport {
        RankReport {
            rank,
            finish_ns: Some(finish),
            exposed_comm_ns: Some(finish / 2),
            compute_ns: finish / 2,
            ..Default::default()
        }
    }

    #[test]
    fn astra_log_lines() {
        let report = Report { makespan_ns: 20, ranks: vec![rank(0, 10), rank(1, 20)], ..Default::default() };
        assert_eq!(
            astra_log(&report),
            "sys[0] finished, 10 cycles, exposed communication 5 cycles.\n\
             sys[1] finished, 20 cycles, exposed communication 10 cycles.\n"
        );
    }

    #[test]
    fn many_ranks_are_summarized() {
        let ranks: Vec<RankReport> = (0..40).map(|r| rank(r, 1000 + r as u64)).collect();
        let t = table(&Report { makespan_ns: 1039, ranks, ..Default::default() });
        assert!(t.contains("median") && t.contains("... 32 more"), "{t}");
        assert!(t.contains("rank 39"), "{t}");
        assert_eq!(t.lines().filter(|l| l.trim_start().starts_with("39 ")).count(), 1, "{t}");
    }
}
