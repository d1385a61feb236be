//! `strata synth ...` end to end (only with the default `synth` feature).

use crate::util::{repo, shared, strata, Dir};

/// A short training run on real TPU Tile graphs writes a loadable checkpoint
/// and the training state; a second fresh run into the same folder is refused.
#[test]
fn synth_train_writes_a_checkpoint() {
    let dir = Dir::new();
    let out = dir.path("model");
    let run = strata(args![
        "-q",
        "synth",
        "train",
        "--config",
        repo("configs/synth/small.toml"),
        "--data",
        shared("tpu-tile"),
        "--out",
        &out,
        "--epochs",
        "1",
        "--max-graphs",
        "8",
        "--device",
        "cpu"
    ]);
    run.ok();
    for f in ["config.json", "weights.safetensors", "train_state.json"] {
        assert!(out.join(f).is_file(), "{f} missing after training: {run:#?}");
    }
    let state: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("train_state.json")).unwrap()).unwrap();
    assert!(state.to_string().contains("seed"), "{state}");
    let again = strata(args![
        "synth",
        "train",
        "--config",
        repo("configs/synth/small.toml"),
        "--data",
        shared("tpu-tile"),
        "--out",
        &out,
        "--epochs",
        "1",
        "--max-graphs",
        "8"
    ]);
    let msg = again.fails();
    assert!(msg.contains("train_state.json") || msg.contains("--resume"), "{msg}");
}

#[test]
fn synth_train_rejects_a_folder_without_data() {
    let dir = Dir::new();
    let empty = dir.path("nothing");
    std::fs::create_dir(&empty).unwrap();
    let msg = strata(args![
        "synth",
        "train",
        "--config",
        repo("configs/synth/small.toml"),
        "--data",
        &empty,
        "--out",
        dir.path("m")
    ])
    .fails();
    assert!(msg.contains("nothing"), "{msg}");
}

/// Train a tiny model on corpus traces, generate a 4-rank what-if workload
/// (dp 2, pp 2), and simulate it on the corpus reference system: the
/// generate → simulate path end to end.
#[test]
fn synth_generate_writes_a_workload_that_simulates() {
    let dir = Dir::new();
    let model = dir.path("model");
    strata(args![
        "-q",
        "synth",
        "train",
        "--config",
        repo("configs/synth/small.toml"),
        "--data",
        shared("corpus"),
        "--out",
        &model,
        "--epochs",
        "1",
        "--max-graphs",
        "4",
        "--device",
        "cpu"
    ])
    .ok();
    let prefix = dir.path("gen/whatif");
    std::fs::create_dir_all(dir.path("gen")).unwrap();
    strata(args![
        "-q", "synth", "generate", "--model", &model, "--set", "dp=2", "--set", "tp=1", "--set", "pp=2", "--ranks",
        "4", "--out", &prefix, "--seed", "3"
    ])
    .ok();
    for r in 0..4 {
        assert!(dir.path(&format!("gen/whatif.{r}.et")).is_file(), "rank {r} missing");
    }
    let groups = dir.path("gen/whatif.json");
    assert!(groups.is_file());
    strata(args!["et", "validate", &prefix]).ok();
    let network = dir.create("net.yml", "topology: [ Ring ]\nnpus_count: [ 4 ]\nbandwidth: [ 50 ]\nlatency: [ 500 ]\n");
    let run = strata(args![
        "sim",
        "--workload",
        &prefix,
        "--network",
        &network,
        "--system",
        shared("corpus/reference-system/system.json"),
        "--comm-group",
        &groups,
        "--astra-log"
    ]);
    assert_eq!(run.ok().lines().count(), 4, "{run:#?}");
    let bad = strata(args!["synth", "generate", "--model", &model, "--set", "tp=0", "--ranks", "4", "--out", &prefix]);
    assert!(bad.fails().contains("tp"), "{bad:#?}");
}
