//! The Chakra layer on every real trace in ../shared/data: byte-exact binary
//! round trips, the JSON document form, legacy files and the feeder JSON form.

use simulator::chakra::{self, json, NodeType};

use crate::util::{files_under, shared};

/// Decoding and re-encoding every `.et` of the public traces and of the oracle
/// workloads gives the original bytes.
#[test]
fn every_real_et_round_trips_byte_exactly() {
    let mut files = files_under(&shared("public-traces"), ".et");
    let public = files.len();
    files.extend(files_under(&shared("oracle"), ".et"));
    assert!(public >= 249, "expected the 249 public .et files, found {public}");
    assert!(files.len() > 3000, "expected the oracle workloads too, found {}", files.len());
    let mut mismatches = Vec::new();
    for path in &files {
        let bytes = std::fs::read(path).unwrap();
        let trace = chakra::decode_et_bytes(&bytes, path).unwrap_or_else(|e| panic!("{e}"));
        if chakra::encode_et(&trace) != bytes {
            mismatches.push(path.display().to_string());
        }
    }
    assert!(mismatches.is_empty(), "{} files differ after a round trip: {mismatches:#?}", mismatches.len());
}

/// The streaming reader gives the same nodes as the in-memory decoder.
#[test]
fn streaming_reader_matches_whole_file_decode() {
    let path =
        shared("public-traces/mlcommons__chakra/tests/data/feeder_tests_trace.tar.gz.extracted/tests/data/chakra.0.et");
    let whole = chakra::decode_et_bytes(&std::fs::read(&path).unwrap(), &path).unwrap();
    let mut reader = chakra::EtReader::open(&path).unwrap();
    assert_eq!(reader.metadata(), whole.metadata.as_ref());
    let mut n = 0;
    while let Some(node) = reader.next_node().unwrap() {
        assert_eq!(node, whole.nodes[n]);
        n += 1;
    }
    assert_eq!(n, 3664, "the Chakra feeder test trace has 3664 nodes");
    assert_eq!(whole.nodes.len(), 3664);
}

/// ASTRA-sim's 2023 ResNet-50 traces have no GlobalMetadata; they are read as
/// legacy files, and only they are.
#[test]
fn legacy_files_without_metadata_are_read() {
    let mut legacy = Vec::new();
    for path in files_under(&shared("public-traces"), ".et") {
        let trace = chakra::read_et_file(&path).unwrap();
        if trace.metadata.is_none() {
            assert!(!trace.nodes.is_empty());
            legacy.push(path.file_name().unwrap().to_string_lossy().into_owned());
        }
    }
    assert_eq!(legacy.len(), 64, "{legacy:?}");
    assert!(legacy.iter().all(|n| n.starts_with("resnet50_DataParallel.")), "{legacy:?}");
    let rank0 = chakra::read_et_file(shared(
        "public-traces/astra-sim__astra-sim/runs/example/workload/resnet50_DataParallel.0.et",
    ))
    .unwrap();
    let colls = rank0.nodes.iter().filter(|n| n.node_type() == Some(NodeType::CommCollNode)).count();
    let comps = rank0.nodes.iter().filter(|n| n.node_type() == Some(NodeType::CompNode)).count();
    // chakra-et.md: ResNet-50 DATA gives 161 COMP + 54 COMM_COLL nodes per rank.
    assert_eq!((comps, colls), (161, 54));
}

/// Every public trace survives binary → JSON document → binary unchanged.
#[test]
fn json_document_form_round_trips_every_public_trace() {
    let dir = crate::util::Dir::new();
    for (i, path) in files_under(&shared("public-traces"), ".et").iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let trace = chakra::decode_et_bytes(&bytes, path).unwrap();
        let json_path = dir.path(&format!("t{i}.json"));
        json::write_json_trace(&json_path, &trace).unwrap();
        let back = json::read_json_trace(&json_path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(chakra::encode_et(&back), bytes, "{}", path.display());
    }
}

/// Chakra's feeder test ships the same 3664-node trace as binary and as feeder
/// JSON; both forms read to the same graph and durations.
#[test]
fn feeder_json_matches_the_binary_trace() {
    let tar = shared("public-traces/mlcommons__chakra/tests/data/json_trace.tar.gz");
    let dir = crate::util::Dir::new();
    let json_path = dir.path("chakra.0.json");
    extract_member(&tar, "jsonData/chakra.0.json", &json_path);
    let from_json = json::read_json_trace(&json_path).unwrap();
    let binary = chakra::read_et_file(shared(
        "public-traces/mlcommons__chakra/tests/data/feeder_tests_trace.tar.gz.extracted/tests/data/chakra.0.et",
    ))
    .unwrap();
    assert_eq!(from_json.nodes.len(), binary.nodes.len());
    let by_id: std::collections::HashMap<u64, &chakra::Node> = binary.nodes.iter().map(|n| (n.id, n)).collect();
    let mut same_duration = 0;
    for n in &from_json.nodes {
        let b = by_id.get(&n.id).unwrap_or_else(|| panic!("node {} only in the JSON form", n.id));
        assert_eq!((n.r#type, &n.data_deps), (b.r#type, &b.data_deps), "node {}", n.id);
        same_duration += usize::from(n.duration_micros == b.duration_micros);
        let is_cpu = |x: &chakra::Node| chakra::attr::get_bool(x, "is_cpu_op").unwrap();
        assert_eq!(is_cpu(n), is_cpu(b), "node {}", n.id);
    }
    assert_eq!(same_duration, from_json.nodes.len());
}

/// The small feeder file of Chakra's wrapper tests: 7 nodes, ctrlDeps and runtime.
#[test]
fn small_feeder_json_reads_fields_and_attributes() {
    let t = json::read_json_trace(shared(
        "public-traces/mlcommons__chakra/tests/data/json_trace.tar.gz.extracted/jsonData/small_chakra.0.json",
    ))
    .unwrap();
    assert_eq!(t.nodes.len(), 7);
    let n = &t.nodes[2];
    assert_eq!((n.id, n.r#type, n.duration_micros), (430, NodeType::CompNode as i32, 4));
    assert_eq!((n.ctrl_deps.as_slice(), n.data_deps.as_slice()), (&[429u64][..], &[216u64][..]));
    assert_eq!(chakra::attr::get_bool(n, "is_cpu_op"), Ok(Some(false)));
    assert_eq!(t.nodes[5].data_deps, vec![432, 216, 217]);
}

fn extract_member(tar_gz: &std::path::Path, member: &str, out: &std::path::Path) {
    let status = std::process::Command::new("tar")
        .arg("-xzf")
        .arg(tar_gz)
        .arg("-O")
        .arg(member)
        .stdout(std::fs::File::create(out).unwrap())
        .status()
        .expect("tar runs");
    assert!(status.success());
}
