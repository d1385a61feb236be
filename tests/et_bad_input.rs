//! Bad input gets a clear error naming the file and the problem, a non-zero
//! exit and no output file; never a panic.

use crate::util::{repo, shared, strata, Dir};

/// Runs `et stats` and `et convert` on `path`; both must fail cleanly, mention
/// the file and `expect`, and leave no output behind.
#[track_caller]
fn assert_rejected(dir: &Dir, path: &std::path::Path, expect: &str) {
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let stats = strata(args!["et", "stats", path]).fails();
    assert!(stats.contains(&name) && stats.contains(expect), "stats said: {stats}");
    let out = dir.path("out.json");
    let conv = strata(args!["et", "convert", path, out]).fails();
    assert!(conv.contains(&name) && conv.contains(expect), "convert said: {conv}");
    assert!(!out.exists(), "a half-written output was left behind");
    let val = strata(args!["et", "validate", path]);
    assert_eq!(val.code, Some(1), "{val:#?}");
    assert!(val.stdout.contains(expect), "{val:#?}");
}

fn sample() -> Vec<u8> {
    std::fs::read(repo("traces/custom_allreduce_8npus/custom_allreduce.0.et")).unwrap()
}

/// A valid metadata message followed by `node` as one length-prefixed message.
fn with_node(node: &[u8]) -> Vec<u8> {
    let mut v = vec![0x07, 0x0a, 0x05];
    v.extend_from_slice(b"1.0.0");
    v.push(node.len() as u8);
    v.extend_from_slice(node);
    v
}

#[test]
fn empty_file() {
    let dir = Dir::new();
    let p = dir.create("empty.et", b"");
    assert_rejected(&dir, &p, "the file is empty");
}

#[test]
fn truncated_file() {
    let dir = Dir::new();
    let bytes = sample();
    let p = dir.create("cut.et", &bytes[..bytes.len() - 7]);
    assert_rejected(&dir, &p, "(truncated file?)");
}

#[test]
fn truncated_inside_a_length_prefix() {
    let dir = Dir::new();
    let mut bytes = with_node(&[0x08, 0x01]);
    bytes.push(0x80); // a varint continuation byte, then EOF
    let p = dir.create("cutprefix.et", &bytes);
    assert_rejected(&dir, &p, "ends inside a length prefix");
}

#[test]
fn malformed_varint() {
    let dir = Dir::new();
    let p = dir.create("varint.et", [0xffu8; 12]);
    assert_rejected(&dir, &p, "varint longer than 10 bytes");
}

#[test]
fn length_prefix_larger_than_the_file() {
    let dir = Dir::new();
    let mut bytes = with_node(&[0x08, 0x01]);
    bytes.extend_from_slice(&[0xff, 0xff, 0xff, 0x7f, 0x08]); // claims ~268 MB
    let p = dir.create("huge.et", &bytes);
    assert_rejected(&dir, &p, "length prefix says 268435455 bytes but the stream ends after 1");
}

#[test]
fn wrong_wire_type() {
    let dir = Dir::new();
    // Node.id (field 1) must be a varint; here it is length-delimited.
    let p = dir.create("wire.et", with_node(&[0x0a, 0x01, 0x41]));
    assert_rejected(&dir, &p, "invalid wire type");
}

#[test]
fn non_utf8_string() {
    let dir = Dir::new();
    // Node.name (field 2) holding the bytes ff fe.
    let p = dir.create("utf8.et", with_node(&[0x08, 0x01, 0x12, 0x02, 0xff, 0xfe]));
    assert_rejected(&dir, &p, "not UTF-8");
}

#[test]
fn corrupt_and_truncated_gzip() {
    let dir = Dir::new();
    let p = dir.create("garbage.et.gz", [0x1f, 0x8b, 0x08, 0x00, 0xde, 0xad, 0xbe, 0xef, 0x00, 0x01, 0x02]);
    assert_rejected(&dir, &p, "gzip");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, &sample()).unwrap();
    let gz = gz.finish().unwrap();
    let p = dir.create("half.et.gz", &gz[..gz.len() / 2]);
    assert_rejected(&dir, &p, "gzip");
}

#[test]
fn directory_and_missing_file() {
    let dir = Dir::new();
    let sub = dir.path("folder.et");
    std::fs::create_dir(&sub).unwrap();
    let conv = strata(args!["et", "convert", sub, dir.path("o.json")]).fails();
    assert!(conv.contains("folder.et: is a directory"), "{conv}");
    let missing = dir.path("nope.et");
    let conv = strata(args!["et", "convert", missing, dir.path("o.json")]).fails();
    assert!(conv.contains("nope.et: cannot open: No such file"), "{conv}");
    let stats = strata(args!["et", "stats", missing]).fails();
    assert_eq!(stats, format!("strata: error: {}: no such file or folder\n", missing.display()));
}

/// A path that names nothing gets one line saying so; the workload-prefix
/// reading is mentioned only for a name that could be a prefix. It used to say
/// "expected a trace file…: /x.et: /x.et: workload: no file named x.et.<rank>.et…".
#[test]
fn validate_of_a_missing_path_says_it_does_not_exist() {
    let dir = Dir::new();
    let file = dir.path("nonexist.et");
    let run = strata(args!["et", "validate", file]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_eq!(run.fails(), format!("strata: error: {}: no such file or folder\n", file.display()));
    let prefix = dir.path("nonexist");
    let msg = strata(args!["et", "validate", prefix]).fails();
    let expect = format!(
        "strata: error: {}: no such file or folder, nor a workload prefix: no file named nonexist.<rank>.et or \
         nonexist.<rank>.et.gz in {}\n",
        prefix.display(),
        dir.path("").display().to_string().trim_end_matches('/')
    );
    assert_eq!(msg, expect);
    let nested = dir.path("no/such/folder/w");
    let msg = strata(args!["et", "validate", nested]).fails();
    assert_eq!(msg, format!("strata: error: {}: no such file or folder\n", nested.display()));
}

#[test]
fn bad_json_names_the_place() {
    let dir = Dir::new();
    let p = dir.create("broken.json", "{\"format\": \"chakra-et-json\", \"version\": 1, \"nodes\": [");
    assert_rejected(&dir, &p, "invalid JSON");
    let p =
        dir.create("kinds.json", r#"{"format": "chakra-et-json", "version": 1, "nodes": [{"id": 1}, {"id": "abc"}]}"#);
    assert_rejected(&dir, &p, "nodes[1].id: expected an unsigned integer, got \"abc\"");
    let p = dir.create(
        "attr.json",
        r#"{"format": "chakra-et-json", "version": 1, "nodes": [{"id": 1, "attr": [{"name": "x", "int32Val": 5000000000}]}]}"#,
    );
    assert_rejected(&dir, &p, "nodes[0].attr[0].int32Val: expected a 32-bit integer");
    let p = dir.create("other.json", r#"{"hello": "world"}"#);
    assert_rejected(&dir, &p, "not a Chakra ET in JSON");
}

/// The JSON form of a real trace (an oracle case's rank 0).
fn oracle_json(dir: &Dir) -> serde_json::Value {
    let json = dir.path("rank0.json");
    strata(args!["et", "convert", shared("oracle/cases/C_fanout_fanin_Ring8/workload.0.et"), json]).ok();
    let doc = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    std::fs::remove_file(json).unwrap();
    doc
}

/// A wrong or missing document version names the file, the key and the value
/// as JSON (it used to read "got Some(99)").
#[test]
fn wrong_document_version_names_file_key_and_value() {
    let dir = Dir::new();
    let mut doc = oracle_json(&dir);
    doc["version"] = serde_json::json!(99);
    let p = dir.create("v99.json", doc.to_string());
    assert_rejected(&dir, &p, "v99.json: $.version: expected document version 1, got 99");
    doc["version"] = serde_json::json!("1");
    let p = dir.create("vstr.json", doc.to_string());
    assert_rejected(&dir, &p, "vstr.json: $.version: expected document version 1, got \"1\"");
    doc.as_object_mut().unwrap().remove("version");
    let p = dir.create("vnone.json", doc.to_string());
    assert_rejected(&dir, &p, "vnone.json: $: missing key `version`; expected document version 1");
}

/// An attribute Chakra defines with a value (here `comm_size` of the
/// collective node 5) but given none is refused, naming the node and the
/// attribute; it used to convert silently.
#[test]
fn attribute_without_its_value_names_node_and_attribute() {
    let dir = Dir::new();
    let mut doc = oracle_json(&dir);
    assert_eq!(doc["nodes"][5]["attr"][2]["name"], "comm_size");
    doc["nodes"][5]["attr"][2] = serde_json::json!({"name": "comm_size"});
    let p = dir.create("noval.json", doc.to_string());
    assert_rejected(
        &dir,
        &p,
        "noval.json: nodes[5].attr[2]: node 5 (coll5): attribute `comm_size` has no value; expected a value key such as int64Val",
    );
}

#[test]
fn bad_text_workloads_name_the_line() {
    let dir = Dir::new();
    let p = dir.create("bad.txt", "DATA\n2\nconv1 -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 1024 5\n");
    let msg = strata(args!["et", "convert", p, dir.path("o"), "--npus", "2"]).fails();
    assert!(msg.contains("bad.txt"), "{msg}");
    let p = dir.create("kind.txt", "SIDEWAYS\n1\nconv1 -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 1024 5\n");
    let msg = strata(args!["et", "convert", p, dir.path("o"), "--npus", "2"]).fails();
    assert!(msg.contains("kind.txt") && msg.contains("line 1"), "{msg}");
    let p = dir.create("zero.txt", "DATA\n1\nconv1 -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 1024 5\n");
    let msg = strata(args!["et", "convert", p, dir.path("o"), "--npus", "0"]).fails();
    assert!(msg.contains("npus") || msg.contains("NPU"), "{msg}");
    assert!(!dir.path("o.0.et").exists());
}

/// A folder in the way of one rank file of a text workload's conversion fails
/// before any rank is written (ranks 0 and 1 used to be left behind).
#[test]
fn text_workload_with_a_folder_in_the_way_writes_nothing() {
    let dir = Dir::new();
    let txt = dir.create("ok.txt", "MICRO\n1\nconv1 -1 5 NONE 0 5 NONE 0 5 ALLREDUCE 1048576 5\n");
    std::fs::create_dir(dir.path("p.2.et")).unwrap();
    let run = strata(args!["et", "convert", txt, dir.path("p"), "--npus", "4"]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    let msg = run.fails();
    assert!(msg.contains(&format!("{}: is a directory, expected a file", dir.path("p.2.et").display())), "{msg}");
    assert_eq!(dir.listing(), ["ok.txt", "p.2.et"]);
}
