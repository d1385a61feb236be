//! Tests of the config layer: every config of the ASTRA-sim oracle suite
//! parses to the values its text holds, the native samples equal their
//! ASTRA-sim twins, and bad input gives an error that names the file and the
//! key, never a panic.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::comm_group::stoi;
use super::*;

const CASES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/oracle/cases");
const ROOT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");

/// Every case folder of the oracle suite, sorted.
fn case_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(CASES)
        .expect("oracle cases folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs
}

/// The files called `name` in the case folders.
fn case_files(name: &str) -> Vec<PathBuf> {
    case_dirs().into_iter().map(|d| d.join(name)).filter(|p| p.is_file()).collect()
}

/// The items of `key: [ a, b ]` in the YAML text, split at commas.
fn yaml_list(text: &str, key: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} line"));
    let inner = &line[line.find('[').unwrap() + 1..line.find(']').unwrap()];
    inner.split(',').map(|s| s.trim().to_string()).collect()
}

fn sample(rel: &str) -> PathBuf {
    Path::new(ROOT).join(rel)
}

fn err_text<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// Asserts that `msg` names the file and the key.
fn assert_names(msg: &str, file: &str, key: &str) {
    assert!(msg.contains(file), "message does not name the file {file}: {msg}");
    assert!(msg.contains(key), "message does not name the key {key}: {msg}");
}

// ---------------------------------------------------------------- oracle files

#[test]
fn oracle_suite_is_there() {
    let n = case_dirs().len();
    assert!(n >= 79, "expected the 79 oracle cases, found {n} under {CASES}");
    assert_eq!(case_files("network.yml").len(), n);
    assert_eq!(case_files("system.json").len(), n);
    assert_eq!(case_files("memory.json").len(), n);
    assert!(case_files("comm_group.json").len() >= 11);
}

#[test]
fn oracle_network_configs_parse_to_their_text() {
    for path in case_files("network.yml") {
        let text = std::fs::read_to_string(&path).unwrap();
        let net = NetworkConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let topo = yaml_list(&text, "topology");
        let npus = yaml_list(&text, "npus_count");
        let bw = yaml_list(&text, "bandwidth");
        let lat = yaml_list(&text, "latency");
        assert_eq!(net.dims.len(), topo.len(), "{}", path.display());
        let mut total = 1u32;
        for (i, d) in net.dims.iter().enumerate() {
            assert_eq!(d.topology.astra_name(), topo[i], "{}", path.display());
            assert_eq!(d.npus, npus[i].parse::<u32>().unwrap(), "{}", path.display());
            assert_eq!(d.bandwidth_gbps, bw[i].parse::<f64>().unwrap(), "{}", path.display());
            assert_eq!(d.latency_ns, lat[i].parse::<f64>().unwrap(), "{}", path.display());
            total *= d.npus;
        }
        assert_eq!(net.total_npus(), total);
        // The case's own record of its size agrees.
        let case: Value =
            serde_json::from_str(&std::fs::read_to_string(path.with_file_name("case.json")).unwrap()).unwrap();
        if let Some(n) = case.get("npus").and_then(Value::as_u64) {
            assert_eq!(u64::from(net.total_npus()), n, "{}", path.display());
        }
    }
}

#[test]
fn oracle_network_spot_checks() {
    let net =
        NetworkConfig::load(Path::new(CASES).join("A_all_reduce_Switch8_1M_hgx_h100_validated_a/network.yml")).unwrap();
    assert_eq!(
        net.dims,
        vec![NetworkDim { topology: Topology::Switch, npus: 8, bandwidth_gbps: 400.0, latency_ns: 936.25 }]
    );
    let net = NetworkConfig::load(
        Path::new(CASES).join("E_ladder_stg_gpt_L2_tp8_pp2_dp16_256r_Switch8xRing16xSwitch2/network.yml"),
    )
    .unwrap();
    assert_eq!(net.npus_per_dim(), vec![8, 16, 2]);
    assert_eq!(net.total_npus(), 256);
    assert_eq!(
        net.dims.iter().map(|d| d.topology).collect::<Vec<_>>(),
        vec![Topology::Switch, Topology::Ring, Topology::Switch]
    );
}

#[test]
fn oracle_system_configs_parse_to_their_text() {
    for path in case_files("system.json") {
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let sys = SystemConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let at = |k: &str| raw.get(k);
        assert_eq!(
            sys.scheduling_policy.astra_name(),
            at("scheduling-policy").and_then(Value::as_str).unwrap_or("LIFO"),
            "{}",
            path.display()
        );
        assert_eq!(
            u64::from(sys.preferred_dataset_splits),
            at("preferred-dataset-splits").and_then(Value::as_u64).unwrap()
        );
        assert_eq!(
            u64::from(sys.active_chunks_per_dimension),
            at("active-chunks-per-dimension").and_then(Value::as_u64).unwrap_or(1)
        );
        assert_eq!(
            sys.endpoint_delay_ns.map(u64::from),
            at("endpoint-delay").and_then(Value::as_u64),
            "{}",
            path.display()
        );
        assert_eq!(sys.local_mem_bw_gbps, at("local-mem-bw").and_then(Value::as_f64));
        assert_eq!(sys.peak_perf_tflops, at("peak-perf").and_then(Value::as_f64));
        assert_eq!(sys.roofline_enabled, at("roofline-enabled").and_then(Value::as_i64).unwrap_or(0) != 0);
        if let Some(opt) = at("collective-optimization").and_then(Value::as_str) {
            assert_eq!(sys.collective_optimization.astra_name(), opt);
        }
        for c in Collective::ALL {
            let written: Vec<String> = at(&c.implementation_key())
                .and_then(Value::as_array)
                .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
                .unwrap_or_default();
            let parsed: Vec<String> = sys.implementations.get(c).iter().map(|i| i.astra_name()).collect();
            assert_eq!(parsed, written, "{}", path.display());
            let custom = at(&c.custom_key()).and_then(|v| v[0].as_str()).map(str::to_string);
            assert_eq!(sys.custom_implementations.get(c), &custom);
        }
    }
}

#[test]
fn oracle_system_spot_checks() {
    let sys = SystemConfig::load(
        Path::new(CASES).join("A_all_gather_FullyConnected8_64M_direct_s4_a2_FIFO_base_a/system.json"),
    )
    .unwrap();
    assert_eq!(sys.scheduling_policy, SchedulingPolicy::Fifo);
    assert_eq!(sys.collective_optimization, CollectiveOptimization::Baseline);
    assert_eq!(sys.active_chunks_per_dimension, 2);
    assert_eq!(sys.preferred_dataset_splits, 4);
    assert_eq!(sys.implementations.all_gather, vec![CollectiveImpl::Direct { window: None }]);
    assert_eq!(sys.communication_delay_ns(1.0), 10);
    assert_eq!(sys.local_mem_bw_bytes_per_s().unwrap(), 1600.0 * 1e9);

    // The endpoint-delay 0 case: kept as 0, not replaced by the default.
    let sys =
        SystemConfig::load(Path::new(CASES).join("A_all_reduce_Ring4_64M_ring_s1_a1_LIFO_base_u_ep0/system.json"))
            .unwrap();
    assert_eq!(sys.endpoint_delay_ns, Some(0));
    assert_eq!(sys.communication_delay_ns(3.0), 0);

    // The custom collective case: no native lists, one custom ET prefix that
    // resolves next to the config (the tests do not run inside the case).
    let path = Path::new(CASES).join("D_msccl_custom_ar_Ring8_unaware/system.json");
    let sys = SystemConfig::load(&path).unwrap();
    assert!(sys.implementations.all_reduce.is_empty());
    assert_eq!(sys.custom_implementations.all_reduce.as_deref(), Some("custom/custom_allreduce"));
    assert_eq!(sys.peak_perf_tflops, None);
    assert_eq!(sys.endpoint_delay_ns, None);
    assert_eq!(sys.communication_delay_ns(3.0), 10, "absent endpoint-delay is 10 and unscaled");
    assert_eq!(
        sys.custom_et_prefix(Collective::AllReduce).unwrap(),
        path.parent().unwrap().join("custom/custom_allreduce")
    );
    let e = err_text(sys.implementation(Collective::AllGather));
    assert_names(&e, "D_msccl_custom_ar_Ring8_unaware/system.json", "all-gather-implementation");

    // Roofline on, with both rates.
    let sys = SystemConfig::load(Path::new(CASES).join("C_roofline_uint64_Switch8/system.json")).unwrap();
    assert!(sys.roofline_enabled);
    assert!(sys.peak_perf_flops().unwrap() > 0.0);
}

#[test]
fn oracle_memory_configs_parse() {
    for path in case_files("memory.json") {
        let mem = MemoryConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert_eq!(mem.memory_type.astra_name(), raw["memory-type"].as_str().unwrap());
        assert_eq!(mem.memory_type, MemoryType::NoMemoryExpansion);
        assert_eq!(mem, MemoryConfig::none());
    }
}

#[test]
fn oracle_comm_groups_parse_to_their_text() {
    for path in case_files("comm_group.json") {
        let groups = CommGroups::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let raw: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        let obj = raw.as_object().unwrap();
        assert_eq!(groups.len(), obj.len(), "{}", path.display());
        for (key, ranks) in obj {
            let want: Vec<u32> = ranks.as_array().unwrap().iter().map(|r| r.as_u64().unwrap() as u32).collect();
            assert_eq!(groups.get(key), Some(want.as_slice()), "{} group {key}", path.display());
        }
        // Every rank exists in the case's network.
        let net = NetworkConfig::load(path.with_file_name("network.yml")).unwrap();
        groups.check_against_network(&net).unwrap();
    }
}

#[test]
fn oracle_comm_group_zero_is_kept() {
    let g = CommGroups::load(Path::new(CASES).join("D_ericdinging_test1_comm_group_Ring2/comm_group.json")).unwrap();
    assert_eq!(g.groups()[0].key, "0");
    assert_eq!(g.groups()[0].id, Some(0));
    assert_eq!(g.get("0"), Some(&[0u32, 1][..]));
    // ASTRA-sim reads pg_name "0.0" with stoi: group 0.
    assert_eq!(g.get("0.0"), Some(&[0u32, 1][..]));
}

#[test]
fn oracle_configs_round_trip_through_both_forms() {
    for dir in case_dirs() {
        let net = NetworkConfig::load(dir.join("network.yml")).unwrap();
        let toml = net.to_toml_string();
        assert_eq!(NetworkConfig::from_toml_str(&toml, Path::new("x.toml")).unwrap(), net, "{toml}");
        let yaml = net.to_astra_yaml();
        assert_eq!(NetworkConfig::from_yaml_str(&yaml, Path::new("x.yml")).unwrap(), net, "{yaml}");

        let sys = SystemConfig::load(dir.join("system.json")).unwrap();
        let toml = sys.to_toml_string();
        assert_eq!(SystemConfig::from_toml_str(&toml, Path::new("x.toml")).unwrap(), sys, "{toml}");
        let json = sys.to_astra_json().to_string();
        assert_eq!(SystemConfig::from_json_str(&json, Path::new("x.json")).unwrap(), sys, "{json}");
        sys.check_against_network(&net).unwrap();

        let mem = MemoryConfig::load(dir.join("memory.json")).unwrap();
        let toml = mem.to_toml_string();
        assert_eq!(MemoryConfig::from_toml_str(&toml, Path::new("x.toml")).unwrap(), mem, "{toml}");
        let json = mem.to_astra_json().to_string();
        assert_eq!(MemoryConfig::from_json_str(&json, Path::new("x.json")).unwrap(), mem, "{json}");
    }
}

// ---------------------------------------------------------------- samples

#[test]
fn sample_networks_toml_equals_yaml() {
    for name in ["Ring_8npus", "Switch8xRing4"] {
        let yaml = NetworkConfig::load(sample(&format!("topologies/{name}.yml"))).unwrap();
        let toml = NetworkConfig::load(sample(&format!("topologies/{name}.toml"))).unwrap();
        assert_eq!(toml, yaml, "{name}");
    }
    let ring = NetworkConfig::load(sample("topologies/Ring_8npus.toml")).unwrap();
    assert_eq!(ring.total_npus(), 8);
    let two = NetworkConfig::load(sample("topologies/Switch8xRing4.toml")).unwrap();
    assert_eq!(two.total_npus(), 32);
    assert_eq!(two.dims[0].latency_ns, 936.25);
    // The sample 32-NPU network matches the oracle's hgx32 case.
    let oracle = NetworkConfig::load(Path::new(CASES).join("B_ar_Switch8xRing4_64M_lbw_hgx32/network.yml")).unwrap();
    assert_eq!(two, oracle);
}

#[test]
fn sample_system_toml_equals_json() {
    let json = SystemConfig::load(sample("configs/system/ring_lifo.json")).unwrap();
    let toml = SystemConfig::load(sample("configs/system/ring_lifo.toml")).unwrap();
    assert_eq!(toml, json);
    // And both equal the oracle's ring / LIFO / 4 splits / localBWAware case.
    let oracle =
        SystemConfig::load(Path::new(CASES).join("A_all_reduce_Ring8_1M_ring_s4_a1_LIFO_lbw_u/system.json")).unwrap();
    assert_eq!(json, oracle);
    let net = NetworkConfig::load(sample("topologies/Switch8xRing4.toml")).unwrap();
    // One algorithm per list, two dimensions: refused with the key named.
    let e = err_text(json.check_against_network(&net));
    assert_names(&e, "ring_lifo.json", "all-reduce-implementation");
    let e = err_text(toml.check_against_network(&net));
    assert_names(&e, "ring_lifo.toml", "implementations.all_reduce");
}

#[test]
fn sample_memory_toml_equals_json() {
    let json = MemoryConfig::load(sample("configs/memory/no_memory_expansion.json")).unwrap();
    let toml = MemoryConfig::load(sample("configs/memory/no_memory_expansion.toml")).unwrap();
    assert_eq!(toml, json);
    assert_eq!(json, MemoryConfig::none());
    let per_node = MemoryConfig::load(sample("configs/memory/per_node_expansion.toml")).unwrap();
    assert_eq!(per_node.memory_type, MemoryType::PerNodeMemoryExpansion);
    assert_eq!(per_node.per_node, Some(PerNodeLayout { num_nodes: 4, num_npus_per_node: 8 }));
    assert_eq!(per_node.remote_mem_bw_bytes_per_s(), 100_000_000_000);
    let net = NetworkConfig::load(sample("topologies/Switch8xRing4.toml")).unwrap();
    per_node.check_against_network(&net).unwrap();
    let small = NetworkConfig::load(sample("topologies/Ring_8npus.toml")).unwrap();
    per_node.check_against_network(&small).unwrap();
    let mut short = per_node.clone();
    short.per_node = Some(PerNodeLayout { num_nodes: 2, num_npus_per_node: 8 });
    assert_names(&err_text(short.check_against_network(&net)), "per_node_expansion.toml", "num_nodes");
}

// ---------------------------------------------------------------- network errors

const NET: &str = "bad/network.yml";

fn net_yaml(text: &str) -> Result<NetworkConfig> {
    NetworkConfig::from_yaml_str(text, Path::new(NET))
}

fn net_toml(text: &str) -> Result<NetworkConfig> {
    NetworkConfig::from_toml_str(text, Path::new("bad/network.toml"))
}

#[test]
fn network_error_mismatched_list_lengths() {
    let e =
        err_text(net_yaml("topology: [ Ring, Switch ]\nnpus_count: [ 8 ]\nbandwidth: [ 50, 50 ]\nlatency: [ 1, 1 ]\n"));
    assert_names(&e, NET, "npus_count");
    assert!(e.contains("2 item(s)") && e.contains("1 item(s)"), "{e}");
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ 1, 2 ]\n"));
    assert_names(&e, NET, "latency");
}

#[test]
fn network_error_npus_count_one() {
    let e = err_text(net_yaml(
        "topology: [ Ring, Ring ]\nnpus_count: [ 8, 1 ]\nbandwidth: [ 50, 50 ]\nlatency: [ 1, 1 ]\n",
    ));
    assert_names(&e, NET, "npus_count[1]");
    assert!(e.contains("from 2 to 2147483647"), "{e}");
    let e = err_text(net_toml("[[dims]]\ntopology = \"ring\"\nnpus = 0\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n"));
    assert_names(&e, "bad/network.toml", "dims[0].npus");
    // One NPU alone is a machine without a network, in either format.
    let one = net_yaml("topology: [ Switch ]\nnpus_count: [ 1 ]\nbandwidth: [ 50 ]\nlatency: [ 1 ]\n").unwrap();
    assert_eq!((one.total_npus(), one.npus_per_dim()), (1, vec![1]));
    let one = net_toml("[[dims]]\ntopology = \"ring\"\nnpus = 1\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n").unwrap();
    assert_eq!(one.total_npus(), 1);
}

#[test]
fn network_error_negative_latency_and_zero_bandwidth() {
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ -1 ]\n"));
    assert_names(&e, NET, "latency[0]");
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 0 ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "bandwidth[0]");
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ .inf ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "bandwidth[0]");
    // Zero latency is valid.
    net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ 0 ]\n").unwrap();
}

#[test]
fn network_error_unknown_topology() {
    let e = err_text(net_yaml("topology: [ Torus ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "topology[0]");
    assert!(e.contains("Ring, FullyConnected, Switch") && e.contains("Torus"), "{e}");
    // ASTRA-sim matches the exact spelling only.
    let e = err_text(net_yaml("topology: [ ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "topology[0]");
    let e = err_text(net_toml("[[dims]]\ntopology = \"torus\"\nnpus = 8\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n"));
    assert_names(&e, "bad/network.toml", "dims[0].topology");
}

#[test]
fn network_error_wrong_value_kinds() {
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ fast ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "bandwidth[0]");
    assert!(e.contains("string \"fast\""), "{e}");
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8.5 ]\nbandwidth: [ 5 ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "npus_count[0]");
    let e = err_text(net_yaml("topology: Ring\nnpus_count: [ 8 ]\nbandwidth: [ 5 ]\nlatency: [ 1 ]\n"));
    assert_names(&e, NET, "topology");
    let e =
        err_text(net_toml("[[dims]]\ntopology = \"ring\"\nnpus = \"eight\"\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n"));
    assert_names(&e, "bad/network.toml", "dims[0].npus");
    assert!(e.contains("line 3"), "{e}");
}

#[test]
fn network_error_missing_key_and_bad_documents() {
    let e = err_text(net_yaml("topology: [ Ring ]\nnpus_count: [ 8 ]\nbandwidth: [ 50 ]\n"));
    assert_names(&e, NET, "latency");
    assert!(e.contains("missing"), "{e}");
    assert_names(&err_text(net_yaml("")), NET, "top level");
    assert_names(&err_text(net_yaml("- 1\n- 2\n")), NET, "top level");
    assert_names(&err_text(net_yaml("topology: []\nnpus_count: []\nbandwidth: []\nlatency: []\n")), NET, "topology");
    let e = err_text(net_yaml("topology: [ Ring\n"));
    assert!(e.contains(NET) && e.contains("YAML"), "{e}");
    assert_names(&err_text(net_toml("dims = []\n")), "bad/network.toml", "dims");
    assert_names(&err_text(NetworkConfig::new(vec![])), "built in code", "dims");
}

#[test]
fn network_error_unknown_toml_key() {
    let e = err_text(net_toml(
        "[[dims]]\ntopology = \"ring\"\nnpus = 8\nbandwidth = 5.0\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n",
    ));
    assert_names(&e, "bad/network.toml", "bandwidth");
    assert!(e.contains("unknown field"), "{e}");
    let e = err_text(net_toml(
        "name = \"x\"\n[[dims]]\ntopology = \"ring\"\nnpus = 8\nbandwidth_gbps = 5.0\nlatency_ns = 1.0\n",
    ));
    assert_names(&e, "bad/network.toml", "name");
}

#[test]
fn network_unknown_yaml_key_is_accepted() {
    let net = net_yaml("topology: [ Ring ]\nnpus_count: [ 4 ]\nbandwidth: [ 5 ]\nlatency: [ 1 ]\nextra: 3\n").unwrap();
    assert_eq!(net.total_npus(), 4);
}

#[test]
fn network_total_npus_overflow_is_refused() {
    let e = err_text(net_yaml(
        "topology: [ Ring, Ring, Ring ]\nnpus_count: [ 65536, 65536, 2 ]\nbandwidth: [ 1, 1, 1 ]\nlatency: [ 1, 1, 1 ]\n",
    ));
    assert_names(&e, NET, "npus_count");
}

// ---------------------------------------------------------------- system errors

const SYS: &str = "bad/system.json";

fn sys_json(text: &str) -> Result<SystemConfig> {
    SystemConfig::from_json_str(text, Path::new(SYS))
}

fn sys_toml(text: &str) -> Result<SystemConfig> {
    SystemConfig::from_toml_str(text, Path::new("bad/system.toml"))
}

#[test]
fn system_error_unknown_algorithm() {
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "all-reduce-implementation": ["ring", "tree"]}"#));
    assert_names(&e, SYS, "all-reduce-implementation[1]");
    assert!(e.contains("halvingDoubling") && e.contains("doubleBinaryTree") && e.contains("\"tree\""), "{e}");
    let e = err_text(sys_toml("preferred_dataset_splits = 4\n[implementations]\nall_gather = [\"ring\", \"tree\"]\n"));
    assert_names(&e, "bad/system.toml", "implementations.all_gather[1]");
    assert!(e.contains("halving-doubling"), "{e}");
    // camelCase is the ASTRA-sim spelling, not the native one.
    let e = err_text(sys_toml("preferred_dataset_splits = 4\n[implementations]\nall_gather = [\"halvingDoubling\"]\n"));
    assert_names(&e, "bad/system.toml", "implementations.all_gather[0]");
}

#[test]
fn system_error_missing_or_zero_preferred_dataset_splits() {
    let e = err_text(sys_json(r#"{"scheduling-policy": "LIFO"}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    assert!(e.contains("missing") && e.contains("divides by zero"), "{e}");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 0}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    // A setting given twice (JSON keeps only the last) is refused, naming it.
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "preferred-dataset-splits": 8}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    assert!(e.contains("each key defined once"), "{e}");
    // So many chunks that simulating them would take hours.
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 1000000}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    assert!(e.contains("at most 16384") && e.contains("1000000"), "{e}");
    let e = err_text(sys_toml("scheduling_policy = \"fifo\"\n"));
    assert_names(&e, "bad/system.toml", "preferred_dataset_splits");
}

#[test]
fn system_error_wrong_value_kinds() {
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "endpoint-delay": "10"}"#));
    assert_names(&e, SYS, "endpoint-delay");
    assert!(e.contains("string \"10\""), "{e}");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": "4"}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "local-mem-bw": "fast"}"#));
    assert_names(&e, SYS, "local-mem-bw");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "all-reduce-implementation": "ring"}"#));
    assert_names(&e, SYS, "all-reduce-implementation");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "all-reduce-implementation": [3]}"#));
    assert_names(&e, SYS, "all-reduce-implementation[0]");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "roofline-enabled": "yes"}"#));
    assert_names(&e, SYS, "roofline-enabled");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "scheduling-policy": 1}"#));
    assert_names(&e, SYS, "scheduling-policy");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 99999999999}"#));
    assert_names(&e, SYS, "preferred-dataset-splits");
    let e = err_text(sys_toml("preferred_dataset_splits = \"4\"\n"));
    assert_names(&e, "bad/system.toml", "preferred_dataset_splits");
    let e = err_text(sys_toml("preferred_dataset_splits = 4.5\n"));
    assert_names(&e, "bad/system.toml", "preferred_dataset_splits");
    assert_names(&err_text(sys_json("[1, 2]")), SYS, "top level");
    let e = err_text(sys_json("{\"preferred-dataset-splits\": 4,"));
    assert!(e.contains(SYS) && e.contains("JSON") && e.contains("line 1"), "{e}");
}

#[test]
fn system_error_bad_enum_values() {
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "scheduling-policy": "lifo"}"#));
    assert_names(&e, SYS, "scheduling-policy");
    assert!(e.contains("LIFO, FIFO, EXPLICIT"), "{e}");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "collective-optimization": "fast"}"#));
    assert_names(&e, SYS, "collective-optimization");
    let e = err_text(sys_toml("preferred_dataset_splits = 4\nscheduling_policy = \"LIFO\"\n"));
    assert_names(&e, "bad/system.toml", "scheduling_policy");
}

#[test]
fn system_error_unknown_toml_key() {
    let e = err_text(sys_toml("preferred_dataset_splits = 4\nsplits = 4\n"));
    assert_names(&e, "bad/system.toml", "splits");
    assert!(e.contains("unknown field"), "{e}");
    let e = err_text(sys_toml("preferred_dataset_splits = 4\n[implementations]\nall_reduc = [\"ring\"]\n"));
    assert_names(&e, "bad/system.toml", "all_reduc");
    let e = err_text(sys_toml("preferred_dataset_splits = 4\nboost_mode = 0\n"));
    assert_names(&e, "bad/system.toml", "boost_mode");
}

#[test]
fn system_error_values_astra_sim_cannot_run() {
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "active-chunks-per-dimension": 0}"#));
    assert_names(&e, SYS, "active-chunks-per-dimension");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "endpoint-delay": -5}"#));
    assert_names(&e, SYS, "endpoint-delay");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "local-mem-bw": -1}"#));
    assert_names(&e, SYS, "local-mem-bw");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "all-reduce-implementation": []}"#));
    assert_names(&e, SYS, "all-reduce-implementation");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "all-reduce-implementation-custom": ["a", "b"]}"#));
    assert_names(&e, SYS, "all-reduce-implementation-custom");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "roofline-enabled": 1, "local-mem-bw": 100}"#));
    assert_names(&e, SYS, "peak-perf");
    let e = err_text(sys_json(r#"{"preferred-dataset-splits": 4, "roofline-enabled": 1, "peak-perf": 100}"#));
    assert_names(&e, SYS, "local-mem-bw");
    let e = err_text(sys_toml("preferred_dataset_splits = 4\nroofline_enabled = true\nlocal_mem_bw_gbps = 10.0\n"));
    assert_names(&e, "bad/system.toml", "peak_perf_tflops");
    // With replay-only the roofline is never used.
    sys_json(r#"{"preferred-dataset-splits": 4, "roofline-enabled": 1, "replay-only": 1}"#).unwrap();
}

#[test]
fn system_local_mem_bw_is_checked_when_needed() {
    let sys = sys_json(r#"{"preferred-dataset-splits": 4}"#).unwrap();
    let e = err_text(sys.local_mem_bw_bytes_per_s());
    assert_names(&e, SYS, "local-mem-bw");
    let sys = sys_json(r#"{"preferred-dataset-splits": 4, "local-mem-bw": 0}"#).unwrap();
    assert_names(&err_text(sys.local_mem_bw_bytes_per_s()), SYS, "local-mem-bw");
    let sys = sys_toml("preferred_dataset_splits = 4\n").unwrap();
    assert_names(&err_text(sys.local_mem_bw_bytes_per_s()), "bad/system.toml", "local_mem_bw_gbps");
    assert_names(&err_text(sys.peak_perf_flops()), "bad/system.toml", "peak_perf_tflops");
    let sys = sys_json(r#"{"preferred-dataset-splits": 4, "local-mem-bw": 50}"#).unwrap();
    assert_eq!(sys.local_mem_bw_bytes_per_s().unwrap(), 50e9);
}

#[test]
fn system_defaults_are_astra_sims() {
    let sys = sys_json(r#"{"preferred-dataset-splits": 2}"#).unwrap();
    assert_eq!(sys.scheduling_policy, SchedulingPolicy::Lifo);
    assert_eq!(sys.collective_optimization, CollectiveOptimization::Baseline);
    assert_eq!(sys.active_chunks_per_dimension, 1);
    assert_eq!(sys.endpoint_delay_ns, None);
    assert_eq!(sys.communication_delay_ns(1.0), 10);
    assert_eq!(sys.communication_delay_ns(3.0), 10);
    assert_eq!(sys.local_reduction_delay_ns, 1);
    assert!(!sys.model_shared_bus && !sys.roofline_enabled && !sys.replay_only);
    assert!(!sys.trace_enabled && !sys.track_local_mem);
    assert_eq!(sys.local_mem_trace_filename, "local_mem_trace");
    assert_eq!(sys.loggp, LogGp::default());
    assert_eq!(sys.peak_perf_tflops, None);
    assert_eq!(sys.local_mem_bw_gbps, None);
    assert!(Collective::ALL.iter().all(|c| sys.implementations.get(*c).is_empty()));
    // The TOML form with the same single key gives the same settings.
    assert_eq!(sys_toml("preferred_dataset_splits = 2\n").unwrap(), sys);
    // `new` builds the defaults plus ring everywhere.
    let built = SystemConfig::new(2);
    assert_eq!(built.preferred_dataset_splits, 2);
    assert_eq!(built.implementations.all_to_all, vec![CollectiveImpl::Ring]);
}

#[test]
fn system_endpoint_delay_scaling() {
    let sys = sys_json(r#"{"preferred-dataset-splits": 4, "endpoint-delay": 10}"#).unwrap();
    assert_eq!(sys.communication_delay_ns(3.0), 30);
    assert_eq!(sys.communication_delay_ns(0.55), 5, "int(5.5) truncates");
    // A fractional value is truncated to int first, as ASTRA-sim's int field does.
    let sys = sys_json(r#"{"preferred-dataset-splits": 4, "endpoint-delay": 10.7}"#).unwrap();
    assert_eq!(sys.endpoint_delay_ns, Some(10));
    assert_eq!(sys.communication_delay_ns(3.0), 30);
    let case = case_dirs().into_iter().find(|d| d.ends_with("C_chain8x10_scales_Ring8")).unwrap();
    let args = std::fs::read_to_string(case.join("case.json")).unwrap();
    assert!(args.contains("--injection-scale=3"));
    let sys = SystemConfig::load(case.join("system.json")).unwrap();
    assert_eq!(sys.communication_delay_ns(3.0), 30, "check 7: ep = 10 x 3");
}

#[test]
fn system_flags_and_shared_bus() {
    let sys = sys_json(
        r#"{"preferred-dataset-splits": 4, "model-shared-bus": 2, "trace-enabled": 5, "replay-only": true,
            "track-local-mem": 1, "local-mem-trace-filename": "mem/x", "boost-mode": 1,
            "L": 1.5, "o": 2, "g": 3, "G": 0.25, "local-reduction-delay": 7, "_comment": "hi"}"#,
    )
    .unwrap();
    assert!(!sys.model_shared_bus, "only exactly 1 turns the shared bus on");
    assert!(sys.trace_enabled && sys.replay_only && sys.track_local_mem);
    assert_eq!(sys.local_mem_trace_filename, "mem/x");
    assert_eq!(sys.loggp, LogGp { latency_ns: 1.5, overhead_ns: 2.0, gap_ns: 3.0, gap_per_byte_ns: 0.25 });
    assert_eq!(sys.local_reduction_delay_ns, 7);
    let sys = sys_json(r#"{"preferred-dataset-splits": 4, "model-shared-bus": 1}"#).unwrap();
    assert!(sys.model_shared_bus);
    let again = sys_toml(&sys.to_toml_string()).unwrap();
    assert_eq!(again, sys);
}

#[test]
fn system_unknown_and_legacy_json_keys_are_accepted() {
    let sys =
        sys_json(r#"{"preferred-dataset-splits": 4, "intra-dimension-scheduling": "FIFO", "my-key": [1]}"#).unwrap();
    assert_eq!(sys.preferred_dataset_splits, 4);
}

#[test]
fn collective_impl_names_parse_like_astra_sim() {
    let ok = |s: &str| CollectiveImpl::from_astra_name(s).unwrap().0;
    assert_eq!(ok("ring"), CollectiveImpl::Ring);
    assert_eq!(ok("oneRing"), CollectiveImpl::OneRing);
    assert_eq!(ok("direct"), CollectiveImpl::Direct { window: None });
    assert_eq!(ok("direct4"), CollectiveImpl::Direct { window: Some(4) });
    assert_eq!(ok("direct16"), CollectiveImpl::Direct { window: Some(16) });
    assert_eq!(ok("oneDirect"), CollectiveImpl::OneDirect { window: None });
    assert_eq!(ok("oneDirect8"), CollectiveImpl::OneDirect { window: Some(8) });
    assert_eq!(ok("halvingDoubling"), CollectiveImpl::HalvingDoubling);
    assert_eq!(ok("oneHalvingDoubling"), CollectiveImpl::OneHalvingDoubling);
    assert_eq!(ok("doubleBinaryTree"), CollectiveImpl::DoubleBinaryTree);
    // stoi(substr(6, 5)): blanks and a sign first, at most five characters, the rest ignored.
    assert_eq!(ok("direct 8"), CollectiveImpl::Direct { window: Some(8) });
    assert_eq!(ok("direct+3"), CollectiveImpl::Direct { window: Some(3) });
    assert_eq!(ok("direct4x"), CollectiveImpl::Direct { window: Some(4) });
    assert_eq!(ok("direct1234567"), CollectiveImpl::Direct { window: Some(12345) });
    assert_eq!(ok("direct-1"), CollectiveImpl::Direct { window: None });
    assert!(CollectiveImpl::from_astra_name("direct4x").unwrap().1.is_some(), "warns");
    assert!(CollectiveImpl::from_astra_name("direct4").unwrap().1.is_none());
    for bad in ["directX", "direct0", "direct-2", "direct ", "directional", "Ring", "", "oneDirectX", "tree"] {
        assert!(CollectiveImpl::from_astra_name(bad).is_err(), "{bad}");
    }
    // Native names.
    let native = |s: &str| CollectiveImpl::from_native_name(s).unwrap();
    assert_eq!(native("direct-4"), CollectiveImpl::Direct { window: Some(4) });
    assert_eq!(native("one-direct"), CollectiveImpl::OneDirect { window: None });
    assert_eq!(native("double-binary-tree"), CollectiveImpl::DoubleBinaryTree);
    for bad in ["direct4", "direct-0", "direct-", "one-direct-x", "Ring", "oneRing"] {
        assert!(CollectiveImpl::from_native_name(bad).is_err(), "{bad}");
    }
    // Both spellings round-trip.
    for imp in [
        CollectiveImpl::Ring,
        CollectiveImpl::OneRing,
        CollectiveImpl::Direct { window: None },
        CollectiveImpl::Direct { window: Some(7) },
        CollectiveImpl::OneDirect { window: Some(2) },
        CollectiveImpl::HalvingDoubling,
        CollectiveImpl::OneHalvingDoubling,
        CollectiveImpl::DoubleBinaryTree,
    ] {
        assert_eq!(ok(&imp.astra_name()), imp);
        assert_eq!(native(&imp.native_name()), imp);
    }
}

#[test]
fn per_node_custom_implementation_file_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let yaml = dir.path().join("per_node.yml");
    std::fs::write(&yaml, "12: custom/ar\n40: /abs/et\n").unwrap();
    let sys_path = dir.path().join("system.json");
    std::fs::write(&sys_path, r#"{"preferred-dataset-splits": 1, "per-node-custom-implementation": "per_node.yml"}"#)
        .unwrap();
    let sys = SystemConfig::load(&sys_path).unwrap();
    let map = sys.per_node_custom_implementations().unwrap().unwrap();
    assert_eq!(map[&12], dir.path().join("custom/ar"));
    assert_eq!(map[&40], PathBuf::from("/abs/et"));
    std::fs::write(&yaml, "x: custom/ar\n").unwrap();
    assert_names(&err_text(sys.per_node_custom_implementations()), "per_node.yml", "x");
    std::fs::remove_file(&yaml).unwrap();
    assert!(err_text(sys.per_node_custom_implementations()).contains("per_node.yml"));
    assert_eq!(SystemConfig::new(1).per_node_custom_implementations().unwrap(), None);
}

// ---------------------------------------------------------------- memory errors

const MEM: &str = "bad/memory.json";

fn mem_json(text: &str) -> Result<MemoryConfig> {
    MemoryConfig::from_json_str(text, Path::new(MEM))
}

#[test]
fn memory_types_and_keys() {
    let m = mem_json(r#"{"memory-type": "PER_NPU_MEMORY_EXPANSION", "remote-mem-latency": 100, "remote-mem-bw": 50}"#)
        .unwrap();
    assert_eq!(m.memory_type, MemoryType::PerNpuMemoryExpansion);
    assert_eq!(m.remote_mem_latency_ns, 100);
    assert_eq!(m.remote_mem_bw_gbps, 50);
    assert_eq!(m.per_node, None);
    let m = mem_json(r#"{"memory-type": "MEMORY_POOL", "remote-mem-bw": 6.9}"#).unwrap();
    assert_eq!(m.remote_mem_bw_gbps, 6, "ASTRA-sim stores the bandwidth in a uint64_t");
    let m = mem_json(
        r#"{"memory-type": "PER_NODE_MEMORY_EXPANSION", "remote-mem-bw": 10, "num-nodes": 2, "num-npus-per-node": 4}"#,
    )
    .unwrap();
    assert_eq!(m.per_node, Some(PerNodeLayout { num_nodes: 2, num_npus_per_node: 4 }));
    let toml = MemoryConfig::from_toml_str(&m.to_toml_string(), Path::new("m.toml")).unwrap();
    assert_eq!(toml, m);
    // memory-type absent: no expansion (ASTRA-sim leaves it uninitialised).
    assert_eq!(mem_json("{}").unwrap().memory_type, MemoryType::NoMemoryExpansion);
}

#[test]
fn memory_errors_name_file_and_key() {
    let e = err_text(mem_json(r#"{"memory-type": "CXL"}"#));
    assert_names(&e, MEM, "memory-type");
    assert!(e.contains("MEMORY_POOL"), "{e}");
    let e = err_text(mem_json(r#"{"memory-type": "MEMORY_POOL"}"#));
    assert_names(&e, MEM, "remote-mem-bw");
    let e = err_text(mem_json(r#"{"memory-type": "MEMORY_POOL", "remote-mem-bw": 0}"#));
    assert_names(&e, MEM, "remote-mem-bw");
    let e = err_text(mem_json(r#"{"memory-type": "PER_NODE_MEMORY_EXPANSION", "remote-mem-bw": 1, "num-nodes": 2}"#));
    assert_names(&e, MEM, "num-npus-per-node");
    let e = err_text(mem_json(
        r#"{"memory-type": "PER_NODE_MEMORY_EXPANSION", "remote-mem-bw": 1, "num-nodes": 0, "num-npus-per-node": 2}"#,
    ));
    assert_names(&e, MEM, "num-nodes");
    let e = err_text(mem_json(
        r#"{"memory-type": "PER_NPU_MEMORY_EXPANSION", "remote-mem-bw": 1, "remote-mem-latency": -3}"#,
    ));
    assert_names(&e, MEM, "remote-mem-latency");
    let e = err_text(mem_json(r#"{"memory-type": "PER_NPU_MEMORY_EXPANSION", "remote-mem-bw": "fast"}"#));
    assert_names(&e, MEM, "remote-mem-bw");
    let e = err_text(MemoryConfig::from_toml_str("memory_type = \"pool\"\n", Path::new("bad/memory.toml")));
    assert_names(&e, "bad/memory.toml", "memory_type");
    let e = err_text(MemoryConfig::from_toml_str(
        "memory_type = \"memory-pool\"\nremote_mem_bw = 5\n",
        Path::new("bad/memory.toml"),
    ));
    assert_names(&e, "bad/memory.toml", "remote_mem_bw");
}

// ---------------------------------------------------------------- communicator groups

const CG: &str = "bad/comm_group.json";

fn cg(text: &str) -> Result<CommGroups> {
    CommGroups::from_json_str(text, Path::new(CG))
}

#[test]
fn comm_group_lookup_by_pg_name() {
    let g = cg(r#"{"1": [0, 1, 2, 3], "02": [4, 5], "x": [6]}"#).unwrap();
    assert_eq!(g.get("1"), Some(&[0u32, 1, 2, 3][..]));
    assert_eq!(g.get("1.0"), Some(&[0u32, 1, 2, 3][..]), "stoi(\"1.0\") = 1");
    assert_eq!(g.get("2"), Some(&[4u32, 5][..]), "the key \"02\" is group 2");
    assert_eq!(g.get("02"), Some(&[4u32, 5][..]));
    assert_eq!(g.get("x"), Some(&[6u32][..]), "kept as written");
    assert_eq!(g.group("x").unwrap().id, None);
    assert_eq!(g.get("3"), None);
    assert_eq!(g.get(""), None);
    assert_eq!(g.len(), 3);
}

#[test]
fn comm_group_errors() {
    assert_names(&err_text(cg(r#"{"1": [0, 1, 0]}"#)), CG, "`1`");
    assert!(err_text(cg(r#"{"1": [0, 1, 0]}"#)).contains("rank 0 more than once"));
    assert_names(&err_text(cg(r#"{"1": []}"#)), CG, "`1`");
    assert_names(&err_text(cg(r#"{"1": [0, -1]}"#)), CG, "1[1]");
    assert_names(&err_text(cg(r#"{"1": [0, "1"]}"#)), CG, "1[1]");
    assert_names(&err_text(cg(r#"{"1": [0, 1.5]}"#)), CG, "1[1]");
    assert_names(&err_text(cg(r#"{"1": {"ranks": [0]}}"#)), CG, "`1`");
    assert_names(&err_text(cg("[[0, 1]]")), CG, "top level");
    // A group defined twice (JSON objects keep only the last definition).
    let e = err_text(cg(r#"{"1": [0, 1], "2": [2, 3], "1": [4, 5]}"#));
    assert_names(&e, CG, "`1`");
    assert!(e.contains("each group id defined once"), "{e}");
    let g = cg(r#"{"1": [0, 9]}"#).unwrap();
    let net = NetworkConfig::load(sample("topologies/Ring_8npus.toml")).unwrap();
    assert_names(&err_text(g.check_against_network(&net)), CG, "1[1]");
}

#[test]
fn stoi_matches_cpp() {
    assert_eq!(stoi("12"), Some(12));
    assert_eq!(stoi(" 7abc"), Some(7));
    assert_eq!(stoi("-3"), Some(-3));
    assert_eq!(stoi("+4"), Some(4));
    assert_eq!(stoi("0.0"), Some(0));
    assert_eq!(stoi("abc"), None);
    assert_eq!(stoi(""), None);
    assert_eq!(stoi("-"), None);
    assert_eq!(stoi("99999999999"), None, "out of int range");
    assert_eq!(stoi("-2147483648"), Some(-2147483648));
}

// ---------------------------------------------------------------- files and paths

#[test]
fn load_refuses_unknown_extensions_and_missing_files() {
    let e = err_text(NetworkConfig::load("topologies/ring.json"));
    assert!(e.contains("topologies/ring.json") && e.contains(".yml"), "{e}");
    let e = err_text(SystemConfig::load("system.yml"));
    assert!(e.contains("system.yml") && e.contains(".json"), "{e}");
    let e = err_text(MemoryConfig::load("memory"));
    assert!(e.contains("memory") && e.contains(".toml"), "{e}");
    let e = err_text(CommGroups::load("groups.toml"));
    assert!(e.contains("groups.toml"), "{e}");
    let e = err_text(SystemConfig::load("/nonexistent/dir/system.json"));
    assert!(e.contains("/nonexistent/dir/system.json") && e.contains("cannot read"), "{e}");
    assert_eq!(ConfigFormat::from_path(Path::new("a/B.YAML")), Some(ConfigFormat::AstraYaml));
}

#[test]
fn config_paths_resolve_from_cwd_then_config_folder() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("custom")).unwrap();
    std::fs::write(dir.path().join("custom/custom_allreduce.0.et"), b"").unwrap();
    let config = dir.path().join("system.json");
    // Not there from the working directory (the crate folder during tests): next to the config.
    assert_eq!(resolve_config_path("custom/custom_allreduce", &config), dir.path().join("custom/custom_allreduce"));
    // There from the working directory: as written, like ASTRA-sim.
    assert_eq!(resolve_config_path("src", &config), PathBuf::from("src"));
    assert_eq!(resolve_config_path("src/lib", &config), PathBuf::from("src/lib"), "a prefix of src/lib.rs");
    // Absolute: unchanged.
    let abs = dir.path().join("custom/custom_allreduce");
    assert_eq!(resolve_config_path(abs.to_str().unwrap(), Path::new("x.json")), abs);
    // Nowhere: next to the config.
    assert_eq!(resolve_config_path("nowhere/et", &config), dir.path().join("nowhere/et"));
    assert_eq!(resolve_config_path("nowhere", Path::new("system.json")), PathBuf::from("nowhere"));
}

// ---------------------------------------------------------------- no panics

/// Every prefix of every oracle config, and of the samples, parses or fails
/// cleanly.
#[test]
fn truncated_configs_never_panic() {
    let dir = case_dirs().into_iter().find(|d| d.ends_with("D_shuoshuc_T2D_pgplus1_Ring4x4")).unwrap();
    let files = [
        dir.join("network.yml"),
        dir.join("system.json"),
        dir.join("memory.json"),
        dir.join("comm_group.json"),
        sample("topologies/Switch8xRing4.toml"),
        sample("configs/system/ring_lifo.toml"),
        sample("configs/memory/per_node_expansion.toml"),
    ];
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for end in (0..=text.len()).filter(|i| text.is_char_boundary(*i)) {
            parse_any(&text[..end]);
        }
    }
}

/// Runs every parser on `text`; only panics matter.
fn parse_any(text: &str) {
    let p = Path::new("fuzz");
    let _ = NetworkConfig::from_yaml_str(text, p);
    let _ = NetworkConfig::from_toml_str(text, p);
    let _ = SystemConfig::from_json_str(text, p).map(|s| {
        let _ = s.local_mem_bw_bytes_per_s();
        let _ = s.peak_perf_flops();
        let _ = s.communication_delay_ns(f64::MAX);
        let _ = s.communication_delay_ns(f64::NAN);
        let _ = s.to_toml_string();
    });
    let _ = SystemConfig::from_toml_str(text, p).map(|s| s.to_astra_json());
    let _ = MemoryConfig::from_json_str(text, p).map(|m| m.to_toml_string());
    let _ = MemoryConfig::from_toml_str(text, p);
    let _ = CommGroups::from_json_str(text, p).map(|g| g.get(text).is_some());
    let _ = CollectiveImpl::from_astra_name(text);
    let _ = CollectiveImpl::from_native_name(text);
    let _ = stoi(text);
}

mod fuzz {
    use proptest::prelude::*;

    use super::parse_any;

    /// Fragments that make random text look like the real formats.
    const PIECES: &[&str] = &[
        "topology: [",
        "npus_count: [",
        "bandwidth: [",
        "latency: [",
        "]",
        ",",
        "\n",
        " ",
        "Ring",
        "Switch",
        "FullyConnected",
        "-1",
        "0",
        "1",
        "2",
        "1e400",
        "3.5",
        "\"",
        "{",
        "}",
        ":",
        "[[dims]]",
        "topology = ",
        "npus = ",
        "\"ring\"",
        "bandwidth_gbps = ",
        "latency_ns = ",
        "\"preferred-dataset-splits\"",
        "\"all-reduce-implementation\"",
        "\"direct",
        "\"ring\"",
        "\"memory-type\"",
        "\"MEMORY_POOL\"",
        "\"PER_NODE_MEMORY_EXPANSION\"",
        "\"num-nodes\"",
        "true",
        "null",
        "\u{e9}",
        "direct 99999",
    ];

    proptest! {
        #[test]
        fn random_text_never_panics(s in ".{0,200}") {
            parse_any(&s);
        }

        #[test]
        fn format_like_text_never_panics(parts in proptest::collection::vec(0..PIECES.len(), 0..40)) {
            let text: String = parts.iter().map(|i| PIECES[*i]).collect();
            parse_any(&text);
        }
    }
}
