//! `strata et convert | validate | stats` end to end on real traces.

use simulator::chakra::{self, AttrValue, AttributeProto, EtTrace, GlobalMetadata, Node, NodeType};

use crate::util::{repo, shared, strata, Dir};

const ALLREDUCE0: &str = "traces/allreduce_8npus/allreduce.0.et";
const CUSTOM0: &str = "traces/custom_allreduce_8npus/custom_allreduce.0.et";

#[test]
fn convert_et_to_json_and_back_is_byte_exact() {
    let dir = Dir::new();
    let src = repo(CUSTOM0);
    let json = dir.path("c.json");
    let back = dir.path("c.et");
    strata(args!["et", "convert", src, json]).ok();
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("\"format\": \"chakra-et-json\""), "{}", &text[..200]);
    assert!(text.contains("COMM_SEND_NODE") && text.contains("\"int32Val\""), "readable enum and kinds");
    strata(args!["et", "convert", json, back]).ok();
    assert_eq!(std::fs::read(&back).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn gzip_is_written_by_extension_and_detected_by_magic() {
    let dir = Dir::new();
    let src = repo(CUSTOM0);
    let gz = dir.path("c.et.gz");
    strata(args!["et", "convert", src, gz]).ok();
    let gz_bytes = std::fs::read(&gz).unwrap();
    assert_eq!(&gz_bytes[..2], &[0x1f, 0x8b]);
    // Same gzip content under a plain .et name: detected by its magic bytes.
    let disguised = dir.create("disguised.et", &gz_bytes);
    let plain = dir.path("plain.et");
    strata(args!["et", "convert", disguised, plain]).ok();
    assert_eq!(std::fs::read(&plain).unwrap(), std::fs::read(&src).unwrap());
}

#[test]
fn unknown_output_extension_is_refused_and_nothing_is_written() {
    let dir = Dir::new();
    let src = repo(ALLREDUCE0);
    let out = dir.path("out.bin");
    let msg = strata(args!["et", "convert", src, out]).fails();
    assert!(msg.contains("out.bin") && msg.contains(".et, .et.gz or .json"), "{msg}");
    assert!(dir.listing().is_empty(), "{:?}", dir.listing());
}

#[test]
fn text_workload_converts_to_valid_per_rank_traces() {
    let dir = Dir::new();
    let prefix = dir.path("resnet");
    let txt = repo("traces/text/Resnet50_DataParallel.txt");
    strata(args!["et", "convert", txt, prefix, "--npus", "4"]).ok();
    assert_eq!(dir.listing(), ["resnet.0.et", "resnet.1.et", "resnet.2.et", "resnet.3.et"]);
    strata(args!["et", "validate", prefix]).ok();
    // Every layer of the text file carries one weight-gradient ALLREDUCE; the
    // converted rank holds them all, with the text file's byte counts.
    let text = std::fs::read_to_string(&txt).unwrap();
    let wg_bytes: u64 = text.lines().skip(2).filter_map(|l| l.split_whitespace().nth(10)?.parse::<u64>().ok()).sum();
    let stats = strata(args!["et", "stats", dir.path("resnet.0.et"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(stats.ok()).unwrap();
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["count"], 54);
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["bytes"], wg_bytes);
}

#[test]
fn text_workload_without_npus_explains_what_is_missing() {
    let dir = Dir::new();
    let txt = repo("traces/text/microAllReduce.txt");
    let msg = strata(args!["et", "convert", txt, dir.path("x")]).fails();
    assert!(msg.contains("--npus"), "{msg}");
}

#[test]
fn pytorch_host_trace_converts_to_a_valid_trace() {
    let dir = Dir::new();
    let out = dir.path("host.et");
    let src = repo("traces/pytorch/host_2ranks_rank0.json");
    strata(args!["et", "convert", src, out]).ok();
    let trace = chakra::read_et_file(&out).unwrap();
    assert!(!trace.nodes.is_empty());
    strata(args!["et", "validate", out]).ok();
}

#[test]
fn validate_accepts_the_sample_workloads() {
    let out = strata(args![
        "et",
        "validate",
        repo("traces/allreduce_8npus/allreduce"),
        repo("traces/custom_allreduce_8npus"),
    ]);
    let stdout = out.ok();
    assert!(stdout.contains("16 files checked, 0 with errors"), "{stdout}");
}

fn attr(name: &str, v: AttrValue) -> AttributeProto {
    AttributeProto { name: name.into(), doc_string: String::new(), value: Some(v) }
}

#[test]
fn validate_reports_file_node_and_problem_and_exits_1() {
    let dir = Dir::new();
    let node = |id: u64, name: &str, deps: Vec<u64>| Node {
        id,
        name: name.into(),
        r#type: NodeType::CompNode as i32,
        data_deps: deps,
        duration_micros: 5,
        ..Default::default()
    };
    let coll = Node {
        id: 4,
        name: "grad_sync".into(),
        r#type: NodeType::CommCollNode as i32,
        attr: vec![attr("comm_type", AttrValue::Int64Val(12))],
        ..Default::default()
    };
    let trace = EtTrace {
        metadata: Some(GlobalMetadata { version: "1.0.0".into(), attr: vec![] }),
        nodes: vec![
            node(1, "fwd", vec![3]),
            node(2, "bwd", vec![1]),
            node(3, "opt", vec![2]),
            coll,
            node(1, "dup", vec![77]),
        ],
    };
    let path = dir.path("bad.0.et");
    chakra::write_trace(&path, &trace).unwrap();
    let run = strata(args!["et", "validate", path]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    let out = &run.stdout;
    assert!(out.contains("bad.0.et: error: node 1 (fwd): dependency cycle through nodes 1 -> 2 -> 3 -> 1"), "{out}");
    assert!(out.contains("node 4 (grad_sync): comm_type 12 is not a CollectiveCommType"), "{out}");
    assert!(out.contains("node 4 (grad_sync): COMM_COLL_NODE needs attribute `comm_size`"), "{out}");
    assert!(out.contains("node 1 (dup): duplicate id"), "{out}");
    assert!(out.contains("node 1 (dup): data_deps names node 77 which is not in this file"), "{out}");
    let json = strata(args!["et", "validate", path, "--json"]);
    assert_eq!(json.code, Some(1));
    let v: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    let kinds: Vec<&str> = v[0]["findings"].as_array().unwrap().iter().map(|f| f["kind"].as_str().unwrap()).collect();
    for k in ["cycle", "duplicate-id", "missing-dependency", "missing-attribute", "bad-attribute"] {
        assert!(kinds.contains(&k), "{k} not in {kinds:?}");
    }
    // Converting it still works (to look at it), with a warning about the repeated id.
    let run = strata(args!["et", "convert", path, dir.path("bad.json")]);
    assert!(
        run.ok().is_empty() && run.stderr.contains("1 node(s) repeat an earlier node's id (the first: id 1)"),
        "{run:#?}"
    );
}

#[test]
fn validate_flags_legacy_files_as_warnings_only() {
    let p = shared("public-traces/astra-sim__astra-sim/runs/example/workload/resnet50_DataParallel.0.et");
    let out = strata(args!["et", "validate", p]);
    assert!(out.ok().contains("0 errors, 1 warnings"), "{out:#?}");
    assert!(out.stdout.contains("no GlobalMetadata"));
    let strict = strata(args!["et", "validate", p, "--deny-warnings"]);
    assert_eq!(strict.code, Some(1));
}

/// The MSCCL ring all-reduce XML (custom_allreduce.xml) gives every GPU 14 send
/// steps and 14 receive steps, 7 of them receive-reduce-copy; the ET made from it
/// has a send or receive node per step plus a compute node per reduction, all in
/// one chain (one thread block).
#[test]
fn stats_counts_match_the_msccl_source() {
    let xml = std::fs::read_to_string(shared(
        "public-traces/astra-sim__astra-sim/examples/system/custom_collectives/custom_ring_allreduce_8npus_1MB/custom_allreduce.xml",
    ))
    .unwrap();
    let gpu0 = &xml[xml.find("<gpu id=\"0\"").unwrap()..xml.find("<gpu id=\"1\"").unwrap()];
    let sends = gpu0.matches("type=\"s\"").count() as u64;
    let recvs = (gpu0.matches("type=\"r\"").count() + gpu0.matches("type=\"rrc\"").count()) as u64;
    let run = strata(args!["et", "stats", repo(CUSTOM0), "--json"]);
    let v: serde_json::Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(v[0]["sends"]["count"], sends);
    assert_eq!(v[0]["recvs"]["count"], recvs);
    let reductions = gpu0.matches("type=\"rrc\"").count() as u64;
    assert_eq!(v[0]["nodes_by_type"]["COMP_NODE"], reductions);
    assert_eq!(v[0]["nodes"], sends + recvs + reductions);
    assert_eq!(v[0]["layers"], sends + recvs + reductions);
    let human = strata(args!["et", "stats", repo(CUSTOM0)]);
    assert!(human.ok().contains("sends"), "{}", human.stdout);
}

#[test]
fn stats_of_the_allreduce_microbenchmark() {
    let run = strata(args!["et", "stats", repo(ALLREDUCE0), "--json"]);
    let v: serde_json::Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(v[0]["nodes"], 1);
    assert_eq!(v[0]["layers"], 1);
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["count"], 1);
}

/// Edits the JSON form of an oracle case's rank trace: `edit` gets the document.
fn edited_oracle_trace(dir: &Dir, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> std::path::PathBuf {
    let json = dir.path(&format!("{name}.json"));
    strata(args!["et", "convert", shared("oracle/cases/C_fanout_fanin_Ring8/workload.0.et"), json]).ok();
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    edit(&mut doc);
    std::fs::write(&json, serde_json::to_string_pretty(&doc).unwrap()).unwrap();
    let et = dir.path(&format!("{name}.et"));
    strata(args!["et", "convert", json, et]).ok();
    et
}

/// Totals past u64::MAX are reported as the maximum and named as overflowed,
/// never wrapped (a u64::MAX comm_size made ALL_REDUCE total 4194303 bytes).
#[test]
fn stats_totals_saturate_and_say_so_instead_of_wrapping() {
    let dir = Dir::new();
    // Node 5 is an ALL_REDUCE of 1 MiB, node 7 one of 4 MiB; nodes 0..=4 are a
    // fan-out / fan-in of compute nodes, 3 of them on the critical path.
    let et = edited_oracle_trace(&dir, "big", |doc| {
        let nodes = doc["nodes"].as_array_mut().unwrap();
        assert_eq!(nodes[5]["attr"][2]["name"], "comm_size");
        nodes[5]["attr"][2] = serde_json::json!({"name": "comm_size", "uint64Val": u64::MAX});
        for n in nodes.iter_mut().filter(|n| n["type"] == "COMP_NODE") {
            n["durationMicros"] = serde_json::json!(1u64 << 62);
        }
    });
    let run = strata(args!["et", "stats", et, "--json"]);
    let v: serde_json::Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["count"], 2);
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["bytes"], u64::MAX);
    assert_eq!(v[0]["duration_micros"], u64::MAX);
    assert_eq!(v[0]["critical_path_micros"], u64::MAX);
    let overflowed: Vec<&str> = v[0]["overflowed"].as_array().unwrap().iter().map(|f| f.as_str().unwrap()).collect();
    assert_eq!(
        overflowed,
        [
            "collectives.ALL_REDUCE.bytes",
            "critical_path_micros",
            "duration_micros",
            "duration_micros_by_type.COMP_NODE"
        ]
    );
    assert!(
        run.stderr.contains("big.et: totals past 2^64 - 1, shown as that maximum: collectives.ALL_REDUCE.bytes"),
        "{run:#?}"
    );
    let text = strata(args!["et", "stats", et]);
    let out = text.ok();
    assert!(out.contains("ALL_REDUCE                 2   more than 16384.00 PiB (overflow)"), "{out}");
    assert!(out.contains("critical path    more than 18446744073709.55 s (overflow) over 5 nodes"), "{out}");
    // The unedited trace has no overflow: exact totals and an empty list.
    let run = strata(args!["et", "stats", shared("oracle/cases/C_fanout_fanin_Ring8/workload.0.et"), "--json"]);
    let v: serde_json::Value = serde_json::from_str(run.ok()).unwrap();
    assert_eq!(v[0]["collectives"]["ALL_REDUCE"]["bytes"], 5 << 20);
    assert_eq!(v[0]["overflowed"], serde_json::json!([]));
}

/// Converting a text workload to a prefix that held a larger workload removes
/// the larger one's extra ranks (with a warning): `PREFIX` then names exactly
/// the new workload, where 8-then-4 ranks used to leave ranks 4..=7 behind.
#[test]
fn text_workload_over_a_larger_one_removes_its_extra_ranks() {
    let dir = Dir::new();
    let txt = dir.create("ok.txt", "MICRO\n1\nconv1 -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 1048576 5\n");
    let prefix = dir.path("p");
    let run = strata(args!["et", "convert", txt, prefix, "--npus", "8"]);
    run.ok();
    assert!(!run.stderr.contains("removed"), "{run:#?}");
    let run = strata(args!["et", "convert", txt, prefix, "--npus", "4"]);
    run.ok();
    let expect = format!(
        "warning: removed 4 rank file(s) of an earlier workload under {} ({} first; more ranks, or .et.gz copies)",
        prefix.display(),
        dir.path("p.4.et").display()
    );
    assert!(run.stderr.contains(&expect), "{run:#?}");
    assert_eq!(dir.listing(), ["ok.txt", "p.0.et", "p.1.et", "p.2.et", "p.3.et"]);
    assert!(strata(args!["et", "validate", prefix]).ok().contains("4 files checked, 0 with errors"));
}

/// `validate --json` gives each key once per file: `path`, `nodes`,
/// `findings` for a file it read (`path` used to appear twice), `path`,
/// `read_error` for one it could not read.
#[test]
fn validate_json_writes_each_key_once() {
    let dir = Dir::new();
    let bad = dir.create("empty.0.et", b"");
    let run = strata(args!["et", "validate", "--json", repo(ALLREDUCE0), bad]);
    assert_eq!(run.code, Some(1), "{run:#?}");
    assert_eq!(run.stdout.matches("\"path\"").count(), 2, "{}", run.stdout);
    let v: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    let keys = |i: usize| v[i].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(0), ["path", "nodes", "findings"]);
    assert_eq!(v[0]["path"], repo(ALLREDUCE0).display().to_string());
    assert_eq!(keys(1), ["path", "read_error"]);
    assert!(v[1]["read_error"].as_str().unwrap().contains("empty.0.et: the file is empty"), "{v}");
}

/// A JSON attribute without a value key converts when Chakra gives its name
/// no value: real symbolic_tensor_graph traces (the corpus) carry value-less
/// `outputs` and `inputs` attributes, and their JSON form converts back to the
/// same bytes.
#[test]
fn value_less_attributes_of_real_traces_still_convert() {
    let dir = Dir::new();
    let src = shared("corpus/workloads/w000_llama_mp_L4_d1024_dp1tp2pp2sp1/workload.0.et");
    let json = dir.path("w.json");
    strata(args!["et", "convert", src, json]).ok();
    let text = std::fs::read_to_string(&json).unwrap();
    assert!(text.contains("{\n          \"name\": \"outputs\"\n        }"), "no value-less attribute in the sample");
    let back = dir.path("w.et");
    strata(args!["et", "convert", json, back]).ok();
    assert_eq!(std::fs::read(back).unwrap(), std::fs::read(src).unwrap());
}

/// The repository's PyTorch host trace with `ctrl_deps` (each node's caller)
/// of the nodes `ids` set to `callers`, written to `name`.
fn host_trace_with_callers(dir: &Dir, name: &str, ids: &[u64], callers: &[u64]) -> std::path::PathBuf {
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("traces/pytorch/host_2ranks_rank0.json")).unwrap()).unwrap();
    for n in doc["nodes"].as_array_mut().unwrap() {
        if let Some(k) = ids.iter().position(|&id| n["id"] == id) {
            n["ctrl_deps"] = serde_json::json!(callers[k]);
        }
    }
    dir.create(name, doc.to_string())
}

/// Nodes the PyTorch converter cannot place under a thread are no longer
/// dropped in silence (262 → 260 or 261 nodes, exit 0, nothing said): callers
/// in a cycle and a node that is its own caller are errors naming the nodes, a
/// caller missing from the file is a warning naming the node, its caller and
/// the callees dropped with it. The real trace converts with no warning.
#[test]
fn pytorch_nodes_off_the_call_tree_are_reported() {
    let dir = Dir::new();
    let out = dir.path("host.et");
    let run = strata(args!["et", "convert", repo("traces/pytorch/host_2ranks_rank0.json"), out]);
    run.ok();
    assert_eq!(run.stderr, format!("wrote {} (262 nodes)\n", out.display()), "{run:#?}");

    // aten::empty (4) and aten::to (7) made each other's caller.
    let cyc = host_trace_with_callers(&dir, "cycle.json", &[4, 7], &[7, 4]);
    let failed = dir.path("failed.et");
    let msg = strata(args!["et", "convert", cyc, failed]).fails();
    assert!(
        msg.contains(
            "cycle.json: nodes[2] (id 4).ctrl_deps: the callers form a cycle: 4 (aten::empty) -> 7 (aten::to) -> 4 \
             (aten::empty)"
        ),
        "{msg}"
    );
    let own = host_trace_with_callers(&dir, "self.json", &[7], &[7]);
    let msg = strata(args!["et", "convert", own, failed]).fails();
    assert!(
        msg.contains("self.json: nodes[3] (id 7).ctrl_deps: node 7 (aten::to) names itself as its caller"),
        "{msg}"
    );
    assert!(!failed.exists(), "no output on error");

    // aten::detach_ (9), which called detach_ (10), has a caller not in the file.
    let orphan = host_trace_with_callers(&dir, "orphan.json", &[9], &[999_999]);
    let run = strata(args!["et", "convert", orphan, out]);
    run.ok();
    assert!(
        run.stderr.contains(
            "orphan.json: nodes[6] (id 9, aten::detach_): ctrl_deps names node 999999, which is not in the \
             file; dropped with the 1 op it called, as no thread annotation reaches it"
        ),
        "{run:#?}"
    );
    assert!(run.stderr.starts_with("strata: warning: ") && run.stderr.contains("(260 nodes)"), "{run:#?}");
    // A node with no caller at all (null) is listed by id.
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&orphan).unwrap()).unwrap();
    doc["nodes"][6]["ctrl_deps"] = serde_json::Value::Null;
    let none = dir.create("none.json", doc.to_string());
    let run = strata(args!["et", "convert", none, out]);
    run.ok();
    assert!(
        run.stderr.contains(
            "none.json: 2 nodes dropped as no thread annotation ([pytorch|profiler|execution_trace|thread]) \
             reaches them through ctrl_deps: 9 (aten::detach_), 10 (detach_)"
        ),
        "{run:#?}"
    );
}
