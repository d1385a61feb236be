//! `strata sim` end to end: ASTRA-sim's command line on oracle cases gives
//! ASTRA-sim's own finish lines; the report and the Perfetto trace are sound;
//! bad inputs and stalled runs fail cleanly and say why.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::util::{repo, shared, strata, Dir};

fn case_dir(name: &str) -> PathBuf {
    shared(&format!("oracle/cases/{name}"))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// `--flag=value`, as ASTRA-sim's scripts write it.
fn eq(flag: &str, value: &Path) -> OsString {
    let mut s = OsString::from(format!("{flag}="));
    s.push(value);
    s
}

/// ASTRA-sim's command line for an oracle case (case.json's `command`), with absolute paths.
fn astra_command(name: &str) -> Vec<OsString> {
    let dir = case_dir(name);
    let case = read_json(&dir.join("case.json"));
    let mut args = args![
        "sim",
        eq("--workload-configuration", &dir.join("workload")),
        eq("--system-configuration", &dir.join("system.json")),
        eq("--network-configuration", &dir.join("network.yml")),
        eq("--remote-memory-configuration", &dir.join("memory.json")),
    ];
    if let Some(cg) = case["comm_group"].as_str() {
        args.push(eq("--comm-group-configuration", &dir.join(cg)));
    } else {
        args.push("--comm-group-configuration=empty".into());
    }
    if case["backend"] == "congestion_aware" {
        args.extend(args!["--backend", "congestion-aware"]);
    }
    for extra in case["extra_args"].as_array().into_iter().flatten() {
        args.push(extra.as_str().expect("extra_args are strings").into());
    }
    args
}

/// The `sys[i] finished, ...` lines of ASTRA-sim's output (without spdlog's
/// prefix), in rank order.
fn astra_finish_lines(name: &str) -> Vec<String> {
    let text = std::fs::read_to_string(case_dir(name).join("astra_sim_stdout.txt")).expect("astra_sim_stdout.txt");
    let mut lines: BTreeMap<u32, String> = BTreeMap::new();
    for line in text.lines() {
        let Some(at) = line.find("sys[") else { continue };
        let rest = &line[at..];
        let Some(close) = rest.find("] finished, ") else { continue };
        let rank: u32 = rest[4..close].parse().expect("rank number");
        lines.insert(rank, rest.trim_end().to_string());
    }
    lines.into_values().collect()
}

/// Runs a case with ASTRA-sim's flags and checks `--astra-log` against
/// ASTRA-sim's output and `--report` against case.json.
#[track_caller]
fn check_case(name: &str) {
    let dir = Dir::new();
    let report_path = dir.path("report.json");
    let mut args = astra_command(name);
    args.extend(args!["--astra-log", "--report", &report_path]);
    let run = strata(&args);
    let want = astra_finish_lines(name);
    assert!(!want.is_empty(), "{name}: no finish lines in astra_sim_stdout.txt");
    let got: Vec<&str> = run.ok().lines().collect();
    assert_eq!(got, want, "{name}: --astra-log differs from ASTRA-sim's output");

    let case = read_json(&case_dir(name).join("case.json"));
    let report = read_json(&report_path);
    let column =
        |v: &Value, key: &str| -> Vec<Value> { v.as_array().unwrap().iter().map(|r| r[key].clone()).collect() };
    assert_eq!(column(&report["ranks"], "finish_ns"), *case["astra_sim_cycles_per_rank"].as_array().unwrap(), "{name}");
    assert_eq!(
        column(&report["ranks"], "exposed_comm_ns"),
        *case["astra_sim_exposed_comm_per_rank"].as_array().unwrap(),
        "{name}"
    );
    let ranks = report["ranks"].as_array().unwrap();
    assert_eq!(column(&report["ranks"], "rank"), (0..ranks.len()).map(Value::from).collect::<Vec<_>>());
    for key in ["compute_ns", "comm_ns"] {
        assert!(ranks.iter().all(|r| r[key].is_u64()), "{name}: {key} missing");
    }
    let makespan = ranks.iter().filter_map(|r| r["finish_ns"].as_u64()).max();
    assert_eq!(report["makespan_ns"].as_u64(), makespan, "{name}");
    assert!(report["events"].as_u64().unwrap() > 0, "{name}");
}

#[test]
fn sim_ring_all_reduce_matches_astra_sim() {
    check_case("A_all_reduce_Ring8_1M_ring_s4_a1_LIFO_lbw_u");
}

#[test]
fn sim_multi_dim_with_queues_matches_astra_sim() {
    // --num-queues-per-dim=2 comes from the case's extra_args.
    check_case("B_ar_Ring8xSwitch8_1M_lbw_queues2");
    check_case("B_ar_Ring2xFC4xSwitch8_64M_mixed_lbw");
}

#[test]
fn sim_congestion_aware_matches_astra_sim() {
    check_case("A_all_reduce_Ring16_64M_ring_s16_a2_LIFO_base_a");
}

#[test]
fn sim_comm_groups_match_astra_sim() {
    check_case("D_stg_llama_dp2_tp2_pp2_L4_FC4xSwitch2");
}

#[test]
fn sim_scale_flags_match_astra_sim() {
    // --compute-scale=2 --comm-scale=0.5 --injection-scale=3
    check_case("C_chain8x10_scales_Ring8");
}

#[test]
fn sim_prints_a_table_with_native_flags() {
    let run = strata(args![
        "sim",
        "--workload",
        repo("traces/allreduce_8npus/allreduce"),
        "--network",
        repo("topologies/Ring_8npus.yml"),
        "--system",
        repo("configs/system/ring_lifo.json"),
    ]);
    let out = run.ok();
    let header = out.lines().next().unwrap();
    for col in ["rank", "finish", "compute", "exposed comm", "overlap"] {
        assert!(header.contains(col), "{out}");
    }
    let rows: Vec<&str> = out.lines().skip(1).take_while(|l| !l.trim().is_empty()).collect();
    assert_eq!(rows.len(), 8, "{out}");
    assert!(rows.iter().all(|r| r.contains("64.44 µs")), "{out}");
    assert!(out.contains("makespan 64.44 µs (64,440 ns"), "{out}");
    assert!(out.contains(" events") && out.contains("simulated in"), "{out}");
}

#[test]
fn sim_summarizes_many_ranks() {
    let name = "A_all_gather_Ring64_64M_ring_s1_a1_LIFO_base_u";
    let out = strata(astra_command(name)).ok().to_string();
    assert!(out.contains("median") && out.contains("... 56 more"), "{out}");
    assert!(out.lines().count() < 20, "{out}");
}

#[test]
fn sim_workload_folder_is_accepted() {
    let dir = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let run = strata(args![
        "sim",
        "--workload",
        &dir,
        "--network",
        dir.join("network.yml"),
        "--system",
        dir.join("system.json"),
        "--astra-log",
    ]);
    assert_eq!(run.ok().lines().count(), 4, "{run:#?}");
}

/// Checks a Chrome/Perfetto trace: one named process per rank, every X event
/// on a named thread, and no two events of one thread overlapping.
#[test]
fn sim_trace_is_perfetto_json() {
    let name = "C_overlap_compchain_commchain_FC8";
    let dir = Dir::new();
    let (trace_path, report_path) = (dir.path("trace.json"), dir.path("report.json"));
    let mut args = astra_command(name);
    args.extend(args!["--trace", &trace_path, "--report", &report_path]);
    strata(&args).ok();
    let doc = read_json(&trace_path);
    let report = read_json(&report_path);
    assert!(report.get("timeline").is_none(), "the report should not carry the timeline");
    let npus = report["ranks"].as_array().unwrap().len();
    let events = doc["traceEvents"].as_array().expect("traceEvents");

    let mut processes: BTreeMap<u64, String> = BTreeMap::new();
    let mut threads: BTreeMap<(u64, u64), String> = BTreeMap::new();
    let mut tracks: BTreeMap<(u64, u64), Vec<(i64, i64)>> = BTreeMap::new();
    let mut last_end: BTreeMap<u64, i64> = BTreeMap::new();
    for e in events {
        let (pid, tid) = (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap());
        match e["ph"].as_str().unwrap() {
            "M" if e["name"] == "process_name" => {
                processes.insert(pid, e["args"]["name"].as_str().unwrap().to_string());
            }
            "M" if e["name"] == "thread_name" => {
                threads.insert((pid, tid), e["args"]["name"].as_str().unwrap().to_string());
            }
            "M" => {}
            "X" => {
                assert!(e["name"].is_string() && e["args"]["node"].is_u64(), "{e}");
                // µs floats from integer ns: back to ns to compare exactly.
                let ts = (e["ts"].as_f64().unwrap() * 1e3).round() as i64;
                let dur = (e["dur"].as_f64().unwrap() * 1e3).round() as i64;
                assert!(dur >= 0, "{e}");
                tracks.entry((pid, tid)).or_default().push((ts, ts + dur));
                let end = last_end.entry(pid).or_default();
                *end = (*end).max(ts + dur);
            }
            other => panic!("unexpected phase {other}"),
        }
    }
    let want: BTreeMap<u64, String> = (0..npus as u64).map(|r| (r, format!("rank {r}"))).collect();
    assert_eq!(processes, want);
    let names: std::collections::BTreeSet<&str> = threads.values().map(|s| s.as_str()).collect();
    assert!(names.contains("GPU compute") && names.contains("communication"), "{names:?}");
    for (key, spans) in &mut tracks {
        assert!(threads.contains_key(key), "events on an unnamed thread {key:?}");
        spans.sort();
        for w in spans.windows(2) {
            assert!(w[0].1 <= w[1].0, "overlapping events on {key:?}: {:?} and {:?}", w[0], w[1]);
        }
    }
    // Every rank's last event ends at its finish time.
    for r in report["ranks"].as_array().unwrap() {
        let rank = r["rank"].as_u64().unwrap();
        assert_eq!(last_end.get(&rank).copied(), r["finish_ns"].as_i64(), "rank {rank}");
    }
}

// ---- bad input ---------------------------------------------------------

/// The base command for a 4-NPU case, with `--report` into `dir`.
fn ring4(dir: &Dir, workload: &Path, network: &Path) -> Vec<OsString> {
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    args![
        "sim",
        eq("--workload-configuration", workload),
        eq("--network-configuration", network),
        eq("--system-configuration", &case.join("system.json")),
        "--report",
        dir.path("report.json"),
    ]
}

/// Fails cleanly, mentions every `needles`, and leaves no report behind.
#[track_caller]
fn assert_fails(dir: &Dir, args: Vec<OsString>, needles: &[&str]) -> String {
    let run = strata(args);
    let msg = run.fails();
    assert_eq!(run.code, Some(2), "{run:#?}");
    for n in needles {
        assert!(msg.contains(n), "expected {n:?} in:\n{msg}");
    }
    assert!(!dir.path("report.json").exists(), "a report was written for a failed run");
    msg
}

/// The four rank traces of the oracle case `from`, each passed through
/// `edit(rank, trace)`, written to `w/workload.<rank>.et` in `dir`; returns
/// the workload prefix.
fn edited_ring4_workload(dir: &Dir, from: &Path, edit: impl Fn(u32, &mut simulator::chakra::EtTrace)) -> PathBuf {
    std::fs::create_dir_all(dir.path("w")).unwrap();
    for r in 0..4 {
        let mut t = simulator::chakra::read_trace(from.join(format!("workload.{r}.et"))).unwrap();
        edit(r, &mut t);
        simulator::chakra::write_trace(dir.path(&format!("w/workload.{r}.et")), &t).unwrap();
    }
    dir.path("w/workload")
}

#[test]
fn sim_wrong_workload_prefix() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    assert_fails(&dir, ring4(&dir, &case.join("wrokload"), &case.join("network.yml")), &["wrokload"]);
}

#[test]
fn sim_network_npus_differ_from_rank_count() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let net = dir.create("ring8.yml", "topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ 500 ]\n");
    assert_fails(&dir, ring4(&dir, &case.join("workload"), &net), &["ring8.yml", "4 rank traces", "8 NPUs"]);
}

/// The congestion-aware backend on a network of two dimensions names the file.
#[test]
fn sim_congestion_aware_on_two_dimensions_names_the_network() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let net = dir.create(
        "ring2x2.yml",
        "topology: [ Ring, Ring ]\nnpus_count: [ 2, 2 ]\nbandwidth: [ 50, 50 ]\nlatency: [ 500, 500 ]\n",
    );
    let mut args = ring4(&dir, &case.join("workload"), &net);
    args.extend(args!["--backend", "congestion-aware"]);
    assert_fails(&dir, args, &["ring2x2.yml", "2 dimensions", "--backend congestion-unaware"]);
}

#[test]
fn sim_unknown_backend() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let mut args = ring4(&dir, &case.join("workload"), &case.join("network.yml"));
    args.extend(args!["--backend", "garnet"]);
    assert_fails(&dir, args, &["garnet", "congestion-unaware", "congestion-aware"]);
}

#[test]
fn sim_corrupt_trace() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    for r in 0..4 {
        let mut bytes = std::fs::read(case.join(format!("workload.{r}.et"))).unwrap();
        if r == 2 {
            bytes.truncate(bytes.len() - 5);
        }
        dir.create(&format!("w/workload.{r}.et"), bytes);
    }
    assert_fails(
        &dir,
        ring4(&dir, &dir.path("w/workload"), &case.join("network.yml")),
        &["workload.2.et", "truncated"],
    );
}

/// A dependency on a node that is not in the file, a self-dependency and a
/// cycle leave nodes that can never be issued: ASTRA-sim reports such a rank
/// finished without them (its termination test ignores pending nodes), a
/// silently wrong time. strata refuses the trace, naming the file and node.
#[test]
fn sim_unissuable_dependencies_are_errors() {
    let (case, traces) =
        (case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u"), case_dir("C_cpu_gpu_overlap_Ring4"));
    let base = simulator::chakra::read_trace(traces.join("workload.2.et")).unwrap();
    assert!(base.nodes.len() >= 2, "the case has {} nodes", base.nodes.len());
    let (a, b) = (base.nodes[0].id, base.nodes[1].id);
    type Edit = Box<dyn Fn(&mut simulator::chakra::EtTrace)>;
    let cases: [(&str, Edit, Vec<String>); 3] = [
        ("missing", Box::new(|t| t.nodes[1].data_deps.push(999_999)), vec!["data_deps names node 999999".into()]),
        ("self", Box::new(move |t| t.nodes[0].ctrl_deps.push(a)), vec![format!("cycle through nodes {a} -> {a}")]),
        (
            "cycle",
            Box::new(move |t| {
                t.nodes[1].data_deps = vec![a];
                t.nodes[0].data_deps = vec![b];
            }),
            vec!["dependency cycle through nodes".into(), format!("{a}"), format!("{b}")],
        ),
    ];
    for (name, edit, says) in cases {
        let dir = Dir::new();
        let w = edited_ring4_workload(&dir, &traces, |r, t| {
            if r == 2 {
                edit(t)
            }
        });
        let mut needles = vec!["workload.2.et"];
        needles.extend(says.iter().map(String::as_str));
        let msg = assert_fails(&dir, ring4(&dir, &w, &case.join("network.yml")), &needles);
        assert!(!msg.contains("finish"), "{name}: {msg}");
    }
}

/// `--report` and `--trace` naming one file is refused before the run; an
/// output path that is a symbolic link writes the file it points to and
/// keeps the link.
#[test]
fn sim_outputs_that_collide_or_are_links() {
    let dir = Dir::new();
    let same = dir.path("out.json");
    let mut args = astra_command("C_overlap_compchain_commchain_FC8");
    args.extend(args!["--report", &same, "--trace", dir.path("./out.json")]);
    let run = strata(args);
    let msg = run.fails();
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert!(msg.contains("--report and --trace both name"), "{msg}");
    assert!(!same.exists());
    #[cfg(unix)]
    {
        let target = dir.create("kept/report.json", "old");
        let link = dir.path("link.json");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut args = astra_command("C_overlap_compchain_commchain_FC8");
        args.extend(args!["--report", &link]);
        strata(args).ok();
        assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        assert!(read_json(&target)["ranks"].is_array());
        // A trace that cannot be written (a full device, through a link so
        // that nothing of the machine's is at stake) takes the report with
        // it: the file written is removed, the link to it stays.
        if Path::new("/dev/full").exists() {
            let full = dir.path("full.json");
            std::os::unix::fs::symlink("/dev/full", &full).unwrap();
            let mut args = astra_command("C_overlap_compchain_commchain_FC8");
            args.extend(args!["--report", &link, "--trace", &full]);
            let run = strata(args);
            let msg = run.fails();
            assert!(msg.contains("full.json") && msg.contains("removed"), "{msg}");
            assert!(!target.exists(), "the report of a run whose trace failed was kept");
            assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
            assert!(std::fs::symlink_metadata(&full).unwrap().file_type().is_symlink());
        }
    }
}

/// A time past 64-bit nanoseconds is an error, not a saturated finish time
/// (a compute node of 2^62 µs), and so is an endpoint delay scaled past
/// ASTRA-sim's 32-bit one.
#[test]
fn sim_times_out_of_range_are_errors() {
    let dir = Dir::new();
    let (case, traces) =
        (case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u"), case_dir("C_cpu_gpu_overlap_Ring4"));
    let w = edited_ring4_workload(&dir, &traces, |_, t| {
        let comp = t.nodes.iter_mut().find(|n| n.r#type == simulator::chakra::NodeType::CompNode as i32).unwrap();
        comp.duration_micros = 1 << 62;
    });
    assert_fails(
        &dir,
        ring4(&dir, &w, &case.join("network.yml")),
        &["passed 2^64 ns", "workload.0.et", "network.yml", "system.json"],
    );
    let mut args = ring4(&dir, &case.join("workload"), &case.join("network.yml"));
    args.extend(args!["--injection-scale", "1e300"]);
    assert_fails(&dir, args, &["--injection-scale 1e300", "endpoint-delay", "system.json"]);
}

/// A custom-collective prefix that cannot be read names the system file and
/// its key, not only the folder it looked in.
#[test]
fn sim_unreadable_custom_collective_names_the_key() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let mut system = read_json(&case.join("system.json"));
    system["all-reduce-implementation-custom"] = serde_json::json!(["nonexist/custom"]);
    let path = dir.create("system.json", system.to_string());
    let args = args![
        "sim",
        eq("--workload-configuration", &case.join("workload")),
        eq("--network-configuration", &case.join("network.yml")),
        eq("--system-configuration", &path),
    ];
    assert_fails(&dir, args, &["system.json", "`all-reduce-implementation-custom`", "nonexist/custom"]);
}

/// `-q` leaves stderr to errors: no "wrote ..." lines from sim or et convert,
/// which print them without it.
#[test]
fn quiet_runs_print_no_status_lines() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let sim = ring4(&dir, &case.join("workload"), &case.join("network.yml"));
    let convert = args!["et", "convert", case.join("workload.0.et"), dir.path("w0.json")];
    for args in [sim, convert] {
        let loud = strata(args.clone());
        assert!(loud.stderr.contains("wrote "), "{loud:#?}");
        let mut quiet = args!["-q"];
        quiet.extend(args);
        let run = strata(quiet);
        assert_eq!((run.code, run.stderr.as_str()), (Some(0), ""), "{run:#?}");
    }
}

/// Rank traces without nodes simulate (to 0 ns), with one warning naming them.
#[test]
fn sim_empty_traces_are_warned_about() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let w = edited_ring4_workload(&dir, &case, |_, t| t.nodes.clear());
    let run = strata(ring4(&dir, &w, &case.join("network.yml")));
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("workload.0.et and 3 other rank files: no nodes"), "{}", run.stderr);
}

#[test]
fn sim_missing_config_file() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    assert_fails(&dir, ring4(&dir, &case.join("workload"), &dir.path("no_network.yml")), &["no_network.yml"]);
}

/// ASTRA-sim drains its event queue and exits 0 with no rank finished; strata
/// names the ranks and the nodes that wait, exits 1 and writes no report.
#[test]
fn sim_stalled_run_is_diagnosed() {
    let dir = Dir::new();
    let (report_path, trace_path) = (dir.path("report.json"), dir.path("trace.json"));
    let mut args = astra_command("C_roofline_int64_tszero_cpu_Ring4");
    args.extend(args!["--report", &report_path, "--trace", &trace_path]);
    let run = strata(args);
    let msg = run.fails();
    assert_eq!(run.code, Some(1), "{run:#?}");
    for needle in [
        "stalled",
        "4 of 4 ranks did not finish",
        "rank 0",
        "rank 3",
        "workload.0.et",
        "node 2 (comp2",
        "waiting on",
        "node 1 (comp1) freed it when it was skipped as a roofline compute node with tensor_size 0",
        "--reissue-after-skip",
    ] {
        assert!(msg.contains(needle), "expected {needle:?} in:\n{msg}");
    }
    assert!(msg.contains("nothing written to") && msg.contains("report.json"), "{msg}");
    assert!(!msg.contains("earlier run"), "{msg}");
    assert!(!report_path.exists() && !trace_path.exists(), "partial output was written");
    assert!(dir.listing().is_empty(), "left behind: {:?}", dir.listing());
    // An earlier run's report stays, and the message says whose it is.
    std::fs::write(&report_path, "{}").unwrap();
    let mut args = astra_command("C_roofline_int64_tszero_cpu_Ring4");
    args.extend(args!["--report", &report_path]);
    let msg = strata(args).fails();
    let want = format!(
        "nothing written to {}: the run did not finish (the file there is an earlier run's)",
        report_path.display()
    );
    assert!(msg.contains(&want), "{msg}");
    assert_eq!(std::fs::read_to_string(&report_path).unwrap(), "{}");
}

/// Ranks that disagree on a collective (rank 3 all-reduces 512 bytes, the
/// others 1,024) wait on each other forever; the diagnosis names the node and
/// which ranks run which version of it.
#[test]
fn sim_collectives_the_ranks_disagree_on_are_named() {
    let dir = Dir::new();
    let case = case_dir("A_all_reduce_Ring4_1K_ring_s1_a1_FIFO_base_u");
    let w = edited_ring4_workload(&dir, &case, |r, t| {
        if r == 3 {
            let size = t.nodes[0].attr.iter_mut().find(|a| a.name == "comm_size").unwrap();
            size.value = Some(simulator::chakra::AttrValue::Int64Val(512));
        }
    });
    let run = strata(ring4(&dir, &w, &case.join("network.yml")));
    let msg = run.fails();
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert!(
        msg.contains("the ranks disagree on their collective #1 over all ranks")
            && msg.contains("ALL_REDUCE of 512 bytes on ranks 3")
            && msg.contains("ALL_REDUCE of 1024 bytes on ranks 0-2"),
        "{msg}"
    );
}

/// ASTRA-sim's own microbenchmark traces (examples/workload/microbenchmarks) on
/// Ring networks of 50 GB/s and 500 ns with its Ring_4chunks system config give
/// the cycle counts astra-sim-semantics.md §3 records from real ASTRA-sim runs:
/// 64440 (8-NPU all-reduce), 323560 (16-NPU all-gather), 22240 (4-NPU
/// reduce-scatter), 125480 (8-NPU all-to-all).
#[test]
fn public_microbenchmarks_match_documented_astra_sim_cycles() {
    let dir = Dir::new();
    let system = dir.create(
        "Ring_4chunks.json",
        r#"{"scheduling-policy": "LIFO", "endpoint-delay": 10, "active-chunks-per-dimension": 1,
            "preferred-dataset-splits": 4, "all-reduce-implementation": ["ring"], "all-gather-implementation": ["ring"],
            "reduce-scatter-implementation": ["ring"], "all-to-all-implementation": ["ring"],
            "collective-optimization": "localBWAware", "local-mem-bw": 1600, "boost-mode": 0,
            "roofline-enabled": 0, "peak-perf": 900}"#,
    );
    for (coll, npus, cycles) in
        [("all_reduce", 8, 64440), ("all_gather", 16, 323560), ("reduce_scatter", 4, 22240), ("all_to_all", 8, 125480)]
    {
        let network = dir.create(
            &format!("Ring_{npus}.yml"),
            format!("topology: [ Ring ]\nnpus_count: [ {npus} ]\nbandwidth: [ 50.0 ]\nlatency: [ 500.0 ]\n"),
        );
        let prefix = shared(&format!(
            "public-traces/astra-sim__astra-sim/examples/workload/microbenchmarks/{coll}/{npus}npus_1MB/{coll}"
        ));
        let run =
            strata(args!["sim", "--workload", &prefix, "--network", &network, "--system", &system, "--astra-log"]);
        let out = run.ok();
        let want: String = (0..npus)
            .map(|r| format!("sys[{r}] finished, {cycles} cycles, exposed communication {cycles} cycles.\n"))
            .collect();
        assert_eq!(out, want, "{coll} on {npus} NPUs");
    }
}

/// The oracle case ASTRA-sim never finishes (a roofline node with tensor_size 0
/// is skipped and its successors are never issued) completes with
/// `--reissue-after-skip`, later than the point where the default run stalls.
#[test]
fn reissue_after_skip_finishes_the_case_astra_sim_cannot() {
    let case = shared("oracle/cases/C_roofline_int64_tszero_cpu_Ring4");
    let base = args![
        "sim",
        "--workload",
        case.join("workload"),
        "--network",
        case.join("network.yml"),
        "--system",
        case.join("system.json"),
        "--astra-log"
    ];
    let stalled = strata(base.clone());
    assert_eq!(stalled.code, Some(1), "{stalled:#?}");
    let stall_ns: u64 = stalled
        .stderr
        .split("stalled at ")
        .nth(1)
        .and_then(|s| s.split(' ').next())
        .and_then(|s| s.parse().ok())
        .expect("the stall time is reported");
    let mut fixed = base;
    fixed.push("--reissue-after-skip".into());
    let run = strata(fixed);
    let out = run.ok();
    assert_eq!(out.lines().count(), 4, "{out}");
    for line in out.lines() {
        let cycles: u64 =
            line.split(", ").nth(1).and_then(|s| s.split(' ').next()).and_then(|s| s.parse().ok()).unwrap();
        assert!(cycles > stall_ns, "{line} vs stall at {stall_ns}");
    }
}

/// `-v` says when one representative rank stood for all; `--no-symmetry`
/// simulates every rank, with the same finish lines and the same report
/// (apart from the events processed).
#[test]
fn sim_symmetry_is_reported_and_can_be_turned_off() {
    let name = "C_chain8x10_comp10us_ar1M_Ring8";
    let dir = Dir::new();
    let run = |extra: &[&str], report: &str| {
        let mut args = args!["-v"];
        args.extend(astra_command(name));
        args.extend(args!["--astra-log", "--report", dir.path(report)]);
        args.extend(extra.iter().map(OsString::from));
        strata(&args)
    };
    let reduced = run(&[], "reduced.json");
    let full = run(&["--no-symmetry"], "full.json");
    let message = "all 8 ranks symmetric: simulated one representative";
    assert!(reduced.stderr.contains(message), "{reduced:#?}");
    assert!(!full.stderr.contains(message), "{full:#?}");
    assert_eq!(reduced.ok(), full.ok());
    assert_eq!(reduced.ok().lines().collect::<Vec<_>>(), astra_finish_lines(name));
    let mut a = read_json(&dir.path("reduced.json"));
    let mut b = read_json(&dir.path("full.json"));
    assert!(a["events"].as_u64() < b["events"].as_u64(), "the representative processes fewer events");
    a["events"] = Value::Null;
    b["events"] = Value::Null;
    assert_eq!(a, b);
}
