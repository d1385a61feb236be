//! Scale benchmark against ASTRA-sim: runs the oracle's category-E cases (and
//! any case named on the command line), checks that every rank's finish time
//! equals ASTRA-sim's, and reports Strata's wall time next to the ASTRA-sim wall
//! time recorded in the case's `case.json` on the same machine type.
//!
//! `cargo bench -p simulator --bench oracle_scale` (all E cases with stored
//! traces), or `cargo bench -p simulator --bench oracle_scale -- E_chain64x1000_Ring64`.
//! Wall time includes loading the traces. Each case runs `STRATA_BENCH_RUNS`
//! times (default 1) and the best run counts. `STRATA_BENCH_NO_SYMMETRY=1`
//! simulates every rank even where one representative rank or replica would
//! do (the rank-symmetry reduction, see the README), to compare both in one sitting;
//! `events` is the number of events actually processed.

use std::path::{Path, PathBuf};
use std::time::Instant;

use simulator::run::{simulate, RunRequest};
use simulator::sim::BackendKind;

/// The allocator the `strata` binary uses, so the times are the binary's.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn cases_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/oracle/cases")
}

fn request(dir: &Path, case: &serde_json::Value) -> RunRequest {
    let mut req = RunRequest::new(dir.join("workload"), dir.join("network.yml"), dir.join("system.json"));
    req.memory = Some(dir.join("memory.json")).filter(|p| p.exists());
    req.comm_group = Some(dir.join("comm_group.json")).filter(|p| p.exists());
    if case["backend"] == "congestion_aware" {
        req.backend = BackendKind::CongestionAware;
    }
    for arg in case["extra_args"].as_array().into_iter().flatten().filter_map(|a| a.as_str()) {
        if let Some(v) = arg.strip_prefix("--num-queues-per-dim=") {
            req.num_queues_per_dim = v.parse().expect("queues per dim");
        } else if let Some(v) = arg.strip_prefix("--injection-scale=") {
            req.injection_scale = v.parse().expect("injection scale");
        } else if arg == "--rendezvous-protocol=true" {
            req.rendezvous = true;
        }
    }
    req
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| !a.starts_with("--")).collect();
    let runs: usize = std::env::var("STRATA_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let symmetry = std::env::var("STRATA_BENCH_NO_SYMMETRY").map_or(true, |v| v.is_empty() || v == "0");
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .expect("oracle cases folder")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| if args.is_empty() { n.starts_with("E_") } else { args.iter().any(|a| n.contains(a.as_str())) })
        .collect();
    names.sort();
    println!(
        "{:<62} {:>6} {:>11} {:>11} {:>8} {:>12}  result",
        "case", "ranks", "astra-sim", "strata", "speedup", "events"
    );
    let mut ratios = Vec::new();
    for name in names {
        let dir = cases_dir().join(&name);
        let case: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("case.json")).expect("case.json"))
                .expect("case json");
        if !dir.join("workload.0.et").exists() {
            println!("{name:<62} (traces not stored: only workload_sha256.txt; skipped)");
            continue;
        }
        let want: Vec<Option<u64>> = case["astra_sim_cycles_per_rank"]
            .as_array()
            .map(|a| a.iter().map(|x| x.as_u64()).collect())
            .unwrap_or_default();
        let astra = case["astra_sim_wall_s"].as_f64().unwrap_or(f64::NAN);
        let req = RunRequest { symmetry, ..request(&dir, &case) };
        let mut best = f64::INFINITY;
        let mut verdict = String::new();
        let mut events = 0;
        for _ in 0..runs {
            let t0 = Instant::now();
            let result = simulate(&req);
            best = best.min(t0.elapsed().as_secs_f64());
            events = result.as_ref().map_or(0, |r| r.events);
            verdict = match result {
                Ok(r) if r.ranks.iter().map(|x| x.finish_ns).collect::<Vec<_>>() == want => {
                    if r.reduced { "identical (reduced: one representative rank or replica)" } else { "identical" }
                        .to_string()
                }
                Ok(_) => "MISMATCH".to_string(),
                Err(e) => format!("error: {}", e.to_string().lines().next().unwrap_or_default()),
            };
        }
        let ratio = astra / best;
        ratios.push(ratio);
        println!(
            "{name:<62} {:>6} {:>10.2}s {:>10.3}s {:>7.1}x {:>12}  {verdict}",
            case["npus"].as_u64().unwrap_or(0),
            astra,
            best,
            ratio,
            events
        );
    }
    if !ratios.is_empty() {
        let geo = (ratios.iter().map(|r| r.ln()).sum::<f64>() / ratios.len() as f64).exp();
        println!("geometric mean speedup over ASTRA-sim: {geo:.1}x ({} cases)", ratios.len());
    }
}
