//! Parity with ASTRA-sim on real inputs, through the library:
//!
//! - every oracle case (`../shared/data/oracle/cases`): per-rank finish and
//!   exposed-communication times equal ASTRA-sim's; the cases ASTRA-sim failed
//!   on either complete or fail cleanly; the features not implemented yet are
//!   listed in [`NOT_YET_SUPPORTED`];
//! - every corpus workload with ASTRA-sim reference times
//!   (`../shared/data/corpus/astra_sim_reference.csv`) on its reference system.
//!
//! The two slowest oracle cases run in their own test, `oracle_parity_slow_cases`
//! (see [`SLOW_CASES`]).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde_json::Value;
use simulator::error::SimError;
use simulator::report::Report;
use simulator::run::{simulate, RunRequest};
use simulator::sim::BackendKind;

use crate::util::{shared, Dir};

/// Oracle cases that use features the library rejects with "not supported yet".
/// The test fails if one of them starts to run (check it, then remove it here)
/// or if any other case reports "not supported yet".
///
/// Empty now: the MSCCL custom collective cases (`D_msccl_custom_ar_Ring8_*`)
/// and `--rendezvous-protocol` were listed here until the library learned them;
/// the custom collective cases are now exact and the rendezvous one stalls with
/// a diagnosis, as ASTRA-sim deadlocks on it.
const NOT_YET_SUPPORTED: &[&str] = &[];

/// The scale cases: 81 M and 92 M events. With the simulator optimized in test
/// builds (`[profile.dev.package.simulator]` in Cargo.toml) they take about
/// 18 s and 23 s side by side on a 2-core machine, fast enough to run with
/// every `cargo test`; a test of their own lets the harness overlap them with
/// the other tests. Unoptimized they would take many minutes.
const SLOW_CASES: &[&str] = &["E_chain64x1000_Ring64", "E_ar_sweep_1024_Ring1024"];

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The run ASTRA-sim did for a case (case.json's `command` and `extra_args`).
fn oracle_request(dir: &Path, case: &Value) -> RunRequest {
    let mut req = RunRequest::new(dir.join("workload"), dir.join("network.yml"), dir.join("system.json"));
    req.memory = Some(dir.join("memory.json"));
    req.comm_group = case["comm_group"].as_str().map(|f| dir.join(f));
    req.backend = match case["backend"].as_str() {
        Some("congestion_unaware") => BackendKind::CongestionUnaware,
        Some("congestion_aware") => BackendKind::CongestionAware,
        other => panic!("{}: unknown backend {other:?}", dir.display()),
    };
    for arg in case["extra_args"].as_array().into_iter().flatten() {
        let arg = arg.as_str().expect("extra_args are strings");
        let (flag, value) = arg.split_once('=').unwrap_or((arg, "true"));
        let num = || value.parse::<f64>().unwrap_or_else(|_| panic!("{}: bad {arg}", dir.display()));
        match flag {
            "--num-queues-per-dim" => req.num_queues_per_dim = value.parse().expect("queues"),
            "--injection-scale" => req.injection_scale = num(),
            "--compute-scale" => req.compute_scale = num(),
            "--comm-scale" => req.comm_scale = num(),
            "--rendezvous-protocol" => req.rendezvous = value == "true",
            _ => panic!("{}: extra argument {arg} is not handled by this test", dir.display()),
        }
    }
    req
}

/// How one case went.
enum Outcome {
    Exact,
    /// Exact, by one representative rank or replica, and equal to the full simulation.
    ExactReduced,
    FailedCaseCompleted,
    FailedCaseDiagnosed(String),
    NotYetSupported,
    Skipped(String),
    Mismatch(String),
}

fn u64s(v: &Value) -> Vec<Option<u64>> {
    v.as_array().map(|a| a.iter().map(Value::as_u64).collect()).unwrap_or_default()
}

/// Where two per-rank lists differ, briefly.
fn diff(what: &str, want: &[Option<u64>], got: &[Option<u64>]) -> Option<String> {
    if want == got {
        return None;
    }
    if want.len() != got.len() {
        return Some(format!("{what}: {} ranks expected, got {}", want.len(), got.len()));
    }
    let bad: Vec<usize> = (0..want.len()).filter(|&r| want[r] != got[r]).collect();
    let shown: Vec<String> =
        bad.iter().take(4).map(|&r| format!("rank {r}: want {:?}, got {:?}", want[r], got[r])).collect();
    Some(format!(
        "{what} differs on {} of {} ranks ({}{})",
        bad.len(),
        want.len(),
        shown.join("; "),
        if bad.len() > 4 { "; ..." } else { "" }
    ))
}

fn run_case(dir: &Path) -> Outcome {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let case = read_json(&dir.join("case.json"));
    if !dir.join("workload.0.et").exists() {
        return Outcome::Skipped(format!("{name}: workload files not stored (see its workload_sha256.txt)"));
    }
    let req = oracle_request(dir, &case);
    let result = match catch_unwind(AssertUnwindSafe(|| simulate(&req))) {
        Ok(r) => r,
        Err(_) => return Outcome::Mismatch(format!("{name}: the simulator panicked")),
    };
    if let Some(reduced) = result.as_ref().ok().filter(|r| r.reduced) {
        // One representative rank stood for all: the full simulation must agree
        // on every per-rank field.
        let full_req = RunRequest { symmetry: false, ..req.clone() };
        match catch_unwind(AssertUnwindSafe(|| simulate(&full_req))) {
            Ok(Ok(full)) if full.reduced => {
                return Outcome::Mismatch(format!("{name}: symmetry = false still reduced the run"))
            }
            Ok(Ok(full)) => {
                if full.ranks != reduced.ranks || full.makespan_ns != reduced.makespan_ns {
                    let got: Vec<Option<u64>> = reduced.ranks.iter().map(|r| r.finish_ns).collect();
                    let want: Vec<Option<u64>> = full.ranks.iter().map(|r| r.finish_ns).collect();
                    let why = diff("finish", &want, &got).unwrap_or_else(|| "another per-rank field".into());
                    return Outcome::Mismatch(format!("{name}: the reduced run differs from the full run: {why}"));
                }
            }
            Ok(Err(e)) => {
                return Outcome::Mismatch(format!("{name}: the full run fails where the reduced one completed: {e}"))
            }
            Err(_) => return Outcome::Mismatch(format!("{name}: the simulator panicked (full run)")),
        }
    }
    let reduced = result.as_ref().is_ok_and(|r| r.reduced);
    let status_ok = case["status"] == "ok";
    let listed = NOT_YET_SUPPORTED.contains(&name.as_str());
    let not_supported = |e: &SimError| matches!(e, SimError::Setup(m) if m.contains("not supported yet"));
    let outcome = match &result {
        Err(e) if not_supported(e) => {
            if listed {
                Outcome::NotYetSupported
            } else {
                Outcome::Mismatch(format!("{name}: {e} (add it to NOT_YET_SUPPORTED only if that is expected)"))
            }
        }
        _ if listed => {
            let now = match &result {
                Ok(report) if status_ok => match compare(&name, &case, report) {
                    Outcome::Exact => "completes with ASTRA-sim's exact times".to_string(),
                    Outcome::Mismatch(m) => format!("completes, but {m}"),
                    _ => unreachable!("compare gives Exact or Mismatch"),
                },
                Ok(_) => "completes (ASTRA-sim failed on it)".to_string(),
                Err(e) => format!("fails with: {}", first_lines(&e.to_string(), 3)),
            };
            Outcome::Mismatch(format!(
                "{name}: listed in NOT_YET_SUPPORTED but no longer reports \"not supported yet\"; it {now}; \
                 check it and remove it from the list"
            ))
        }
        Ok(report) if status_ok => compare(&name, &case, report),
        Ok(_) => Outcome::FailedCaseCompleted,
        Err(e) if status_ok => Outcome::Mismatch(format!("{name}: {}", first_lines(&e.to_string(), 6))),
        Err(e) => Outcome::FailedCaseDiagnosed(first_lines(&e.to_string(), 2)),
    };
    match outcome {
        Outcome::Exact if reduced => Outcome::ExactReduced,
        other => other,
    }
}

fn compare(name: &str, case: &Value, report: &Report) -> Outcome {
    let finish: Vec<Option<u64>> = report.ranks.iter().map(|r| r.finish_ns).collect();
    let exposed: Vec<Option<u64>> = report.ranks.iter().map(|r| r.exposed_comm_ns).collect();
    let problems: Vec<String> = [
        diff("finish", &u64s(&case["astra_sim_cycles_per_rank"]), &finish),
        diff("exposed communication", &u64s(&case["astra_sim_exposed_comm_per_rank"]), &exposed),
    ]
    .into_iter()
    .flatten()
    .collect();
    if problems.is_empty() {
        Outcome::Exact
    } else {
        Outcome::Mismatch(format!("{name}: {}", problems.join("; ")))
    }
}

fn first_lines(s: &str, n: usize) -> String {
    s.lines().take(n).collect::<Vec<_>>().join(" | ")
}

/// Runs `jobs` on all cores (each call returns a line to print and whether it failed).
fn par_map<T: Sync, R: Send>(jobs: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let out: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::new());
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(jobs.len().max(1));
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs.get(i) else { break };
                let r = f(job);
                out.lock().unwrap().push((i, r));
            });
        }
    });
    let mut out = out.into_inner().unwrap();
    out.sort_by_key(|(i, _)| *i);
    out.into_iter().map(|(_, r)| r).collect()
}

fn oracle_cases() -> Vec<PathBuf> {
    let root = shared("oracle/cases");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.join("case.json").is_file())
        .collect();
    dirs.sort();
    dirs
}

/// Runs the cases, prints one line each and the counts, and fails with every
/// mismatch. Returns the cases run by one representative rank or replica.
fn check_oracle(cases: &[PathBuf]) -> Vec<String> {
    let t0 = Instant::now();
    let outcomes = par_map(cases, |dir| {
        let t = Instant::now();
        (run_case(dir), t.elapsed())
    });
    let (mut exact, mut completed, mut diagnosed, mut unsupported, mut skipped) = (0, 0, 0, 0, 0);
    let mut mismatches = Vec::new();
    let mut reduced = Vec::new();
    for (dir, (outcome, took)) in cases.iter().zip(&outcomes) {
        let name = dir.file_name().unwrap().to_string_lossy();
        let line = match outcome {
            Outcome::Exact => {
                exact += 1;
                "exact".to_string()
            }
            Outcome::ExactReduced => {
                exact += 1;
                reduced.push(name.to_string());
                "exact (one representative rank; the full run agrees)".to_string()
            }
            Outcome::FailedCaseCompleted => {
                completed += 1;
                "ASTRA-sim failed; strata completed it".to_string()
            }
            Outcome::FailedCaseDiagnosed(why) => {
                diagnosed += 1;
                format!("ASTRA-sim failed; strata stopped with: {why}")
            }
            Outcome::NotYetSupported => {
                unsupported += 1;
                "not supported yet".to_string()
            }
            Outcome::Skipped(why) => {
                skipped += 1;
                format!("skipped: {why}")
            }
            Outcome::Mismatch(m) => {
                mismatches.push(m.clone());
                format!("MISMATCH: {m}")
            }
        };
        println!("{name:<66} {:>8.2}s  {line}", took.as_secs_f64());
    }
    println!(
        "oracle: {} cases in {:.1}s: {exact} exact ({} reduced to one representative rank or replica), {completed} ASTRA-sim-failed cases completed, {diagnosed} \
         ASTRA-sim-failed cases diagnosed, {unsupported} not supported yet, {skipped} skipped, {} mismatches",
        cases.len(),
        t0.elapsed().as_secs_f64(),
        reduced.len(),
        mismatches.len()
    );
    assert!(
        mismatches.is_empty(),
        "{} oracle case(s) differ from ASTRA-sim:\n  {}",
        mismatches.len(),
        mismatches.join("\n  ")
    );
    reduced
}

#[test]
fn oracle_parity() {
    let cases: Vec<PathBuf> = oracle_cases()
        .into_iter()
        .filter(|d| !SLOW_CASES.contains(&d.file_name().unwrap().to_string_lossy().as_ref()))
        .collect();
    assert!(cases.len() >= 75, "expected the oracle cases under {}", shared("oracle/cases").display());
    check_oracle(&cases);
}

#[test]
fn oracle_parity_slow_cases() {
    let cases: Vec<PathBuf> = SLOW_CASES.iter().map(|n| shared(&format!("oracle/cases/{n}"))).collect();
    check_oracle(&cases);
}

/// ASTRA-sim's per-rank finish times for the corpus workloads on the
/// reference system of `corpus/NOTES.md`: a 1-D Switch of R NPUs (400 GB/s,
/// 936.25 ns), `reference-system/system.json` and `memory.json`, and the
/// workload's own `workload.json` as the comm groups. Every workload with
/// reference times is complete (dropped ranks only occur in incomplete
/// folders, which have no reference row); identical ranks are hard links, so
/// every `workload.<rank>.et` is present. Only finish times are given.
#[test]
fn corpus_parity() {
    let corpus = shared("corpus");
    let csv = std::fs::read_to_string(corpus.join("astra_sim_reference.csv")).expect("astra_sim_reference.csv");
    let template = std::fs::read_to_string(corpus.join("reference-system/network.yml.template")).expect("template");
    assert!(template.contains("[ R ]"), "network.yml.template changed: {template}");
    let tmp = Dir::new();
    let mut rows: Vec<(String, u32, Vec<Option<u64>>)> = Vec::new();
    let mut header = None;
    let mut not_ok = 0;
    for line in csv.lines() {
        let cols: Vec<&str> = line.split(',').collect();
        let Some(h) = &header else {
            header = Some(cols.iter().map(|s| s.to_string()).collect::<Vec<_>>());
            assert_eq!(cols[..5], ["id", "ranks", "status", "makespan_ns", "per_rank"], "csv header");
            continue;
        };
        assert_eq!(cols.len(), h.len(), "csv row {line}");
        if cols[2] != "ok" {
            not_ok += 1;
            continue;
        }
        let per_rank = cols[4].split_whitespace().map(|x| Some(x.parse().expect("per_rank"))).collect();
        rows.push((cols[0].to_string(), cols[1].parse().expect("ranks"), per_rank));
    }
    let t0 = Instant::now();
    let outcomes = par_map(&rows, |(id, ranks, want)| {
        let dir = corpus.join("workloads").join(id);
        let missing: Vec<u32> = (0..*ranks).filter(|r| !dir.join(format!("workload.{r}.et")).exists()).collect();
        if !missing.is_empty() {
            return Err(format!("{id}: rank files missing: {missing:?}"));
        }
        let network = tmp.create(&format!("{id}.network.yml"), template.replace("[ R ]", &format!("[ {ranks} ]")));
        let mut req = RunRequest::new(dir.join("workload"), network, corpus.join("reference-system/system.json"));
        req.memory = Some(corpus.join("reference-system/memory.json"));
        req.comm_group = Some(dir.join("workload.json"));
        match catch_unwind(AssertUnwindSafe(|| simulate(&req))) {
            Err(_) => Err(format!("{id}: the simulator panicked")),
            Ok(Err(e)) => Err(format!("{id}: {}", first_lines(&e.to_string(), 6))),
            Ok(Ok(report)) => {
                let got: Vec<Option<u64>> = report.ranks.iter().map(|r| r.finish_ns).collect();
                diff("finish", want, &got).map_or(Ok(()), |d| Err(format!("{id}: {d}")))?;
                if !report.reduced {
                    return Ok(false);
                }
                // A reduced run must equal the full simulation on every per-rank field.
                match simulate(&RunRequest { symmetry: false, ..req.clone() }) {
                    Ok(full) if full.ranks == report.ranks && full.makespan_ns == report.makespan_ns => Ok(true),
                    Ok(_) => Err(format!("{id}: the reduced run differs from the full run")),
                    Err(e) => Err(format!("{id}: the full run fails where the reduced one completed: {e}")),
                }
            }
        }
    });
    let reduced = outcomes.iter().filter(|o| matches!(o, Ok(true))).count();
    let mismatches: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
    println!(
        "corpus: {} of {} workloads exact in {:.1}s ({reduced} reduced, each equal to its full run; {not_ok} rows without reference times: one-rank workloads)",
        rows.len() - mismatches.len(),
        rows.len(),
        t0.elapsed().as_secs_f64()
    );
    assert!(
        mismatches.is_empty(),
        "{} corpus workload(s) differ from ASTRA-sim:\n  {}",
        mismatches.len(),
        mismatches.iter().map(|s| s.as_str()).collect::<Vec<_>>().join("\n  ")
    );
}

/// Simulates a copy of `case` (`ranks` rank files) with rank `changed`'s
/// compute made longer, built into a request by `request`: the run must not
/// be reduced and must equal the full simulation. Returns it.
fn longer_compute_runs_in_full(
    case: &Path,
    ranks: u32,
    changed: u32,
    request: &dyn Fn(PathBuf) -> RunRequest,
) -> Report {
    let tmp = Dir::new();
    copy_with_longer_compute(case, ranks, changed, &tmp);
    let req = request(tmp.path("workload"));
    let run = simulate(&req).expect("changed case runs");
    assert!(!run.reduced, "rank {changed} differs: every rank must be simulated");
    let full = simulate(&RunRequest { symmetry: false, ..req }).expect("full run");
    assert_eq!(run, full);
    run
}

/// Copies the `ranks` rank traces of `case` into `tmp` with rank `changed`'s
/// first compute node 7 µs longer.
fn copy_with_longer_compute(case: &std::path::Path, ranks: u32, changed: u32, tmp: &Dir) {
    use simulator::chakra::{read_et_file, write_et_file, NodeType};
    for r in 0..ranks {
        let mut trace = read_et_file(case.join(format!("workload.{r}.et"))).expect("rank trace");
        if r == changed {
            let comp = trace.nodes.iter_mut().find(|n| n.r#type == NodeType::CompNode as i32).expect("a compute node");
            comp.duration_micros += 7;
        }
        write_et_file(tmp.path(&format!("workload.{r}.et")), &trace).expect("write rank trace");
    }
}

/// The rank-symmetry reduction needs every rank to run the same trace: with
/// one rank's compute made longer, the run simulates every rank, and the
/// result is the full simulation's.
#[test]
fn symmetry_needs_the_same_trace_on_every_rank() {
    let case = shared("oracle/cases/C_chain8x10_comp10us_ar1M_Ring8");
    let request = |workload: PathBuf| RunRequest::new(workload, case.join("network.yml"), case.join("system.json"));
    let same = simulate(&request(case.join("workload"))).expect("symmetric case runs");
    assert!(same.reduced, "the unchanged case has identical rank files");

    let changed = longer_compute_runs_in_full(&case, 8, 5, &request);
    assert_ne!(changed.ranks, same.ranks, "the longer compute shows in the results");
}

/// The replica reduction needs every data-parallel replica to run a translate
/// of replica 0's program: the STG case is reduced as stored, and with one
/// rank of replica 1 given a longer compute it simulates every rank, with the
/// full simulation's results.
#[test]
fn replica_symmetry_needs_every_replica_the_same() {
    let case = shared("oracle/cases/E_stg_gpt_dp16_tp4_pp4_L8_Switch16xSwitch16");
    let request = |workload: PathBuf| {
        let mut req = RunRequest::new(workload, case.join("network.yml"), case.join("system.json"));
        req.memory = Some(case.join("memory.json"));
        req.comm_group = Some(case.join("comm_group.json"));
        req
    };
    let same = simulate(&request(case.join("workload"))).expect("STG case runs");
    assert!(same.reduced, "the dp replicas of the STG case are translates of each other");
    assert!(same.events < 387_712 / 8, "one replica of 16 ranks is simulated, not 256 ranks: {} events", same.events);

    longer_compute_runs_in_full(&case, 256, 17, &request);
}

/// The replica reduction needs every replica's messages to take the routes of
/// replica 0's: the llama STG traces on a 64 x 2 network are reduced when the
/// first dimension is a switch, and simulated rank by rank on a 64-NPU ring,
/// where the data-parallel ring's closing hop (rank 7 to 0) is 7 hops and the
/// tensor-parallel ring's (24 to 0) 24. Both give the full run's results.
#[test]
fn replica_symmetry_needs_the_same_routes_in_every_replica() {
    let case = shared("oracle/cases/E_stg_llama_mp_dp8_tp4_pp4_L6_mb4_Switch4xRing8xSwitch4");
    let tmp = Dir::new();
    for (first, reduced) in [("Switch", true), ("Ring", false)] {
        let network = tmp.create(
            &format!("{first}.yml"),
            format!("topology: [ {first}, Ring ]\nnpus_count: [ 64, 2 ]\nbandwidth: [ 400, 100 ]\nlatency: [ 936.25, 1000 ]\n"),
        );
        let mut req = RunRequest::new(case.join("workload"), network, case.join("system.json"));
        req.memory = Some(case.join("memory.json"));
        req.comm_group = Some(case.join("comm_group.json"));
        let report = simulate(&req).expect("llama STG runs");
        assert_eq!(report.reduced, reduced, "{first} x Ring");
        let full = simulate(&RunRequest { symmetry: false, ..req }).expect("full run");
        assert!(!full.reduced);
        assert_eq!((report.ranks, report.makespan_ns), (full.ranks, full.makespan_ns), "{first} x Ring");
    }
}

/// Double binary tree is not rank-symmetric (leaves, inner nodes and roots do
/// different work): a case that is reduced with halving-doubling is simulated
/// rank by rank with doubleBinaryTree.
#[test]
fn symmetry_is_not_used_for_double_binary_tree() {
    let case = shared("oracle/cases/A_all_reduce_Switch8_1M_hd_s4_a1_LIFO_base_u");
    let hd = RunRequest::new(case.join("workload"), case.join("network.yml"), case.join("system.json"));
    assert!(simulate(&hd).expect("hd case runs").reduced, "halving-doubling on a switch is reduced");
    let tmp = Dir::new();
    let mut system = read_json(&case.join("system.json"));
    system["all-reduce-implementation"] = serde_json::json!(["doubleBinaryTree"]);
    let dbt = tmp.create("system.json", system.to_string());
    let req = RunRequest { system: dbt, ..hd };
    let report = simulate(&req).expect("dbt case runs");
    assert!(!report.reduced, "double binary tree must not be reduced");
    assert_eq!(report, simulate(&RunRequest { symmetry: false, ..req }).expect("full run"));
}

/// A symmetric run that stalls is diagnosed by the full simulation: the same
/// error, word for word, with the reduction on or off.
#[test]
fn symmetric_stall_is_diagnosed_as_in_the_full_run() {
    let case = shared("oracle/cases/C_roofline_int64_tszero_cpu_Ring4");
    let req = RunRequest::new(case.join("workload"), case.join("network.yml"), case.join("system.json"));
    let stall = |req: &RunRequest| match simulate(req) {
        Err(e @ SimError::Stalled { .. }) => e.to_string(),
        other => panic!("expected a stall, got {other:?}"),
    };
    let reduced = stall(&req);
    assert!(reduced.contains("4 of 4 ranks did not finish"), "{reduced}");
    assert_eq!(reduced, stall(&RunRequest { symmetry: false, ..req }));
}
