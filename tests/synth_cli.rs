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
