//! The TPU Tile check: trains the reference-size LayerDAG config on
//! `tpu_tile_val`, validates on `tpu_tile_test`, samples 32 graphs conditioned
//! on the first 32 test labels, and prints everything next to the reference
//! implementation's numbers on the same 2-core machine type.
//!
//! ```text
//! OMP_NUM_THREADS=2 cargo bench -p synth --bench tpu_tile
//! ```
//!
//! Environment: `STRATA_TPU_EPOCHS` (default 3), `STRATA_TPU_THREADS`
//! (libtorch intra-op threads, default 2, the reference's
//! `torch.set_num_threads(2)`), `STRATA_TPU_DATA` (default
//! `../shared/data/tpu-tile` from the workspace root), `STRATA_TPU_ONLY`
//! (comma-separated sub-models to train, e.g. `node_count`; default all),
//! `STRATA_TPU_SAMPLE` (`0` skips sampling, `fixed` samples only at the
//! reference's sizes), `STRATA_TPU_SAMPLE_FROM` (a
//! checkpoint folder: only sample from it), `STRATA_TPU_PER_NODE` (`1` runs
//! the encoders once per node instead of once per colour, to measure that),
//! `STRATA_TPU_SEED` (training seed, default 0), `STRATA_TPU_WINDOWS`
//! (`loader.layer_window` of the three sub-models, e.g. `1,1,1` for the
//! reference's example-by-example shuffling; default the config's), `STRATA_TPU_KEEP` (a folder
//! to move the trained checkpoint to, for `STRATA_TPU_SAMPLE_FROM`), `STRATA_TPU_PRECISION`
//! (`fp32`, the default, or `bf16`: `synth::device::Precision` of the matrix products),
//! `STRATA_TPU_STEPS` (`NODE,EDGE` reverse diffusion steps per layer when sampling, e.g.
//! `32,8`; default every step, 64 and 16: `synth::sample::DenoisingSteps`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use synth::dataset::conditioning::scalar_condition;
use synth::dataset::tpu_tile::read_tpu_tile;
use synth::model::{LayerDag, ModelConfig};
use synth::sample::{sample_layered, DenoisingSteps, SampleOptions};
use synth::train::{load_data, train_on_kinds, DataSource, Progress, SubModelKind, TrainSpec};
use tch::Device;

/// One epoch of the reference implementation: train loss, validation metric
/// (layer-size: accuracy of a sampled size; the others: NLL), train s,
/// validation s.
struct RefEpoch {
    train_loss: f64,
    metric: f64,
    train_s: f64,
    val_s: f64,
}

/// The reference implementation (github.com/Graph-COM/LayerDAG at fbbbd13, PyTorch
/// 2.1.2 + DGL 2.1.0, torch.set_num_threads(2), seed 0) on an otherwise idle
/// 2-core machine of this type, as tabulated in
/// ../shared/data/tpu-tile/SOURCES.txt. Index 0 of each row is epoch 1.
const REF_LAYER_SIZE: [RefEpoch; 3] = [
    RefEpoch { train_loss: 2.2234, metric: 0.2335, train_s: 14.9, val_s: 5.5 },
    RefEpoch { train_loss: 1.6486, metric: 0.3365, train_s: 13.9, val_s: 5.6 },
    RefEpoch { train_loss: 1.2474, metric: 0.4362, train_s: 14.0, val_s: 5.7 },
];
/// Layer-size validation NLL after each epoch (SOURCES.txt, in parentheses).
const REF_LAYER_SIZE_NLL: [f64; 3] = [1.8516, 1.6727, 1.3424];
const REF_NODE_ATTR: [RefEpoch; 3] = [
    RefEpoch { train_loss: 1.7072, metric: 1.3321, train_s: 79.5, val_s: 23.0 },
    RefEpoch { train_loss: 1.1187, metric: 1.1119, train_s: 79.1, val_s: 22.8 },
    RefEpoch { train_loss: 0.9549, metric: 0.9766, train_s: 78.9, val_s: 23.1 },
];
const REF_EDGE: [RefEpoch; 3] = [
    RefEpoch { train_loss: 0.2016, metric: 0.1239, train_s: 27.9, val_s: 11.6 },
    RefEpoch { train_loss: 0.0934, metric: 0.0728, train_s: 27.6, val_s: 11.4 },
    RefEpoch { train_loss: 0.0608, metric: 0.0565, train_s: 29.0, val_s: 11.3 },
];
/// Untrained validation NLL and its time (SOURCES.txt, "epoch 0"), node-attr and edge.
const REF_UNTRAINED: [(f64, f64); 2] = [(3.8036, 28.1), (0.6743, 10.5)];
/// Sampling 32 graphs with the 3-epoch models: seconds, mean nodes, mean
/// layers, op-type TV distance to the test split (SOURCES.txt).
const REF_SAMPLE_3EPOCH: (f64, f64, f64, f64) = (192.3, 134.0, 24.0, 0.372);
/// The same with the weights the reference's own loop keeps (layer-size after
/// 3 epochs, the other two after 2).
const REF_SAMPLE_KEPT: (f64, f64, f64, f64) = (75.3, 81.0, 16.0, 0.251);
/// Op-type TV distance between the val and test splits (SOURCES.txt).
const REF_SPLIT_TV: f64 = 0.019;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("synth sits in the workspace").to_path_buf()
}

fn reference(kind: SubModelKind) -> &'static [RefEpoch; 3] {
    match kind {
        SubModelKind::NodeCount => &REF_LAYER_SIZE,
        SubModelKind::NodePred => &REF_NODE_ATTR,
        SubModelKind::EdgePred => &REF_EDGE,
    }
}

fn histogram(dags: &[&synth::dataset::Dag], classes: usize) -> Vec<f64> {
    let mut h = vec![0f64; classes];
    for d in dags {
        for &v in d.x() {
            h[v as usize] += 1.0;
        }
    }
    let total: f64 = h.iter().sum();
    h.iter().map(|c| if total > 0.0 { c / total } else { 0.0 }).collect()
}

/// `STRATA_TPU_STEPS=NODE,EDGE`: reverse diffusion steps per layer when
/// sampling (default every step, 64 and 16).
fn denoising_steps() -> DenoisingSteps {
    match std::env::var("STRATA_TPU_STEPS") {
        Ok(v) => {
            let n: Vec<usize> =
                v.split(',').map(|s| s.trim().parse().expect("STRATA_TPU_STEPS: two numbers, e.g. 32,8")).collect();
            assert_eq!(n.len(), 2, "STRATA_TPU_STEPS: node and edge steps, e.g. 32,8");
            DenoisingSteps { node: Some(n[0]), edge: Some(n[1]) }
        }
        Err(_) => DenoisingSteps::default(),
    }
}

fn tv(a: &[f64], b: &[f64]) -> f64 {
    0.5 * a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>()
}

struct Row {
    kind: SubModelKind,
    epoch: usize,
    train_loss: f64,
    metric: f64,
    nll: f64,
    train_s: f64,
    val_s: f64,
}

fn main() {
    synth::device::retain_freed_memory();
    let epochs = env_usize("STRATA_TPU_EPOCHS", 3);
    let threads = env_usize("STRATA_TPU_THREADS", 2);
    let data_dir = std::env::var("STRATA_TPU_DATA")
        .map(PathBuf::from)
        .unwrap_or_else(|_| workspace_root().join("../shared/data/tpu-tile"));
    let only: Vec<SubModelKind> = match std::env::var("STRATA_TPU_ONLY") {
        Ok(v) => SubModelKind::ALL.into_iter().filter(|k| v.split(',').any(|s| s.trim() == k.name())).collect(),
        Err(_) => SubModelKind::ALL.to_vec(),
    };
    let do_sample = std::env::var("STRATA_TPU_SAMPLE").map(|v| v != "0").unwrap_or(true);
    tch::set_num_threads(threads as i32);
    let precision = match std::env::var("STRATA_TPU_PRECISION").as_deref() {
        Ok("bf16") => synth::device::Precision::Bf16,
        Ok("fp32") | Err(_) => synth::device::Precision::Fp32,
        Ok(other) => panic!("STRATA_TPU_PRECISION: fp32 or bf16, not {other}"),
    };
    synth::device::set_precision(precision);
    let per_node = std::env::var("STRATA_TPU_PER_NODE").is_ok_and(|v| v == "1");
    synth::train::set_per_node_encoders(per_node);
    let config_path = workspace_root().join("configs/synth/tpu_tile.toml");
    let out = std::env::temp_dir().join(format!("strata-bench-tpu-tile-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&out);
    println!(
        "LayerDAG on TPU Tile: {epochs} epochs, libtorch threads {threads}, {precision} products, encoders per {}, \
         data {}",
        if per_node { "node" } else { "colour" },
        data_dir.display()
    );
    println!("machine: {} CPUs; {}", std::thread::available_parallelism().map_or(0, |n| n.get()), load_average());

    if let Ok(dir) = std::env::var("STRATA_TPU_SAMPLE_FROM") {
        // Only sample, from a checkpoint trained elsewhere.
        sample_and_report(&LayerDag::load(Path::new(&dir), Device::Cpu).expect("the checkpoint"), &data_dir);
        return;
    }
    let t_load = Instant::now();
    let source = DataSource::TpuTile(data_dir.clone());
    let data = load_data(&source, None).expect("loading TPU Tile");
    let mut config = ModelConfig::load(&config_path).expect("the tpu_tile config");
    if let Ok(w) = std::env::var("STRATA_TPU_WINDOWS") {
        let w: Vec<usize> =
            w.split(',').map(|v| v.trim().parse().expect("STRATA_TPU_WINDOWS: three numbers")).collect();
        assert_eq!(w.len(), 3, "STRATA_TPU_WINDOWS: one layer window per sub-model, e.g. 1,1,1");
        config.node_count.loader.layer_window = w[0];
        config.node_pred.loader.layer_window = w[1];
        config.edge_pred.loader.layer_window = w[2];
    }
    println!(
        "layer windows (batching runs of one graph's layers): {} / {} / {}",
        config.node_count.loader.layer_window,
        config.node_pred.loader.layer_window,
        config.edge_pred.loader.layer_window
    );
    println!("data loaded in {:.2} s", t_load.elapsed().as_secs_f64());
    let spec = TrainSpec {
        config: config_path.clone(),
        data: source,
        out: out.clone(),
        seed: env_usize("STRATA_TPU_SEED", 0) as u64,
        device: Device::Cpu,
        max_epochs: Some(epochs),
        resume: false,
        max_graphs: None,
    };
    let mut rows: Vec<Row> = Vec::new();
    let mut untrained: Vec<(SubModelKind, f64, f64)> = Vec::new();
    let mut last = Instant::now();
    let train_start = Instant::now();
    let report = train_on_kinds(&spec, config, &data, &only, &mut |p| match p {
        Progress::Loaded { parameters, .. } => {
            println!("parameters {} / {} / {}", parameters[0], parameters[1], parameters[2]);
            last = Instant::now();
        }
        Progress::Start { sub_model, val_loss, .. } => {
            let s = last.elapsed().as_secs_f64();
            println!("{sub_model}: untrained validation NLL {val_loss:.4} ({s:.1} s incl. checkpoint)");
            untrained.push((sub_model, val_loss, s));
            last = Instant::now();
        }
        Progress::Epoch(e) => {
            let metric = e.accuracy.unwrap_or(e.val_loss);
            println!(
                "{} epoch {}: train loss {:.4}, validation {} {:.4}{}, train {:.2} s + validation {:.2} s",
                e.sub_model,
                e.epoch,
                e.train_loss,
                if e.accuracy.is_some() { "accuracy" } else { "NLL" },
                metric,
                if e.accuracy.is_some() { format!(" (NLL {:.4})", e.val_loss) } else { String::new() },
                e.train_seconds,
                e.val_seconds
            );
            rows.push(Row {
                kind: e.sub_model,
                epoch: e.epoch,
                train_loss: e.train_loss,
                metric,
                nll: e.val_loss,
                train_s: e.train_seconds,
                val_s: e.val_seconds,
            });
            last = Instant::now();
        }
        _ => {}
    })
    .expect("training");
    println!("training done in {:.1} s", train_start.elapsed().as_secs_f64());

    println!();
    println!("| model | epoch | train loss (ref) | validation metric (ref) | train s (ref) | validation s (ref) | epoch s (ref) | speed-up |");
    println!("|---|---|---|---|---|---|---|---|");
    for r in &rows {
        let Some(re) = reference(r.kind).get(r.epoch - 1) else {
            println!(
                "| {} | {} | {:.4} | {:.4} | {:.2} | {:.2} | {:.2} | - |",
                r.kind,
                r.epoch,
                r.train_loss,
                r.metric,
                r.train_s,
                r.val_s,
                r.train_s + r.val_s
            );
            continue;
        };
        let metric = if r.kind == SubModelKind::NodeCount {
            format!("acc {:.4} ({:.4}); NLL {:.4} ({:.4})", r.metric, re.metric, r.nll, REF_LAYER_SIZE_NLL[r.epoch - 1])
        } else {
            format!("NLL {:.4} ({:.4})", r.metric, re.metric)
        };
        let (ours, theirs) = (r.train_s + r.val_s, re.train_s + re.val_s);
        println!(
            "| {} | {} | {:.4} ({:.4}) | {} | {:.2} ({:.1}) | {:.2} ({:.1}) | {:.2} ({:.1}) | {:.1}× |",
            r.kind,
            r.epoch,
            r.train_loss,
            re.train_loss,
            metric,
            r.train_s,
            re.train_s,
            r.val_s,
            re.val_s,
            ours,
            theirs,
            theirs / ours
        );
    }
    for (kind, loss, s) in &untrained {
        let reference = match kind {
            SubModelKind::NodePred => format!(" (ref NLL {:.4} in {:.1} s)", REF_UNTRAINED[0].0, REF_UNTRAINED[0].1),
            SubModelKind::EdgePred => format!(" (ref NLL {:.4} in {:.1} s)", REF_UNTRAINED[1].0, REF_UNTRAINED[1].1),
            SubModelKind::NodeCount => String::new(),
        };
        println!("untrained {kind}: validation NLL {loss:.4} in {s:.2} s{reference}");
    }
    for r in &report.sub_models {
        println!("{}: kept epoch {} (validation NLL {:.4})", r.sub_model, r.best_epoch, r.best_val_loss);
    }
    if !do_sample || only.len() != 3 {
        let _ = std::fs::remove_dir_all(&out);
        return;
    }

    sample_and_report(&LayerDag::load(&out, Device::Cpu).expect("the trained checkpoint"), &data_dir);
    match std::env::var("STRATA_TPU_KEEP") {
        Ok(keep) => {
            let _ = std::fs::remove_dir_all(&keep);
            std::fs::rename(&out, &keep).expect("moving the checkpoint to STRATA_TPU_KEEP");
            println!("checkpoint kept in {keep}");
        }
        Err(_) => {
            let _ = std::fs::remove_dir_all(&out);
        }
    }
}

/// Samples 32 graphs conditioned on the first 32 test labels and compares
/// them (and the time) with the reference.
fn sample_and_report(model: &LayerDag, data_dir: &Path) {
    let test = read_tpu_tile(&data_dir.join("tpu_tile_test.jsonl")).expect("the test split");
    let val = read_tpu_tile(&data_dir.join("tpu_tile_val.jsonl")).expect("the val split");
    let conditions: Vec<Vec<f32>> = test.iter().take(32).map(|g| scalar_condition(g.y)).collect();
    let classes = model.data.cardinalities[0] as usize;
    let test_dags: Vec<_> = test.iter().map(|g| &g.dag).collect();
    let h_test = histogram(&test_dags, classes);
    if std::env::var("STRATA_TPU_SAMPLE").is_ok_and(|v| v == "fixed") {
        sample_fixed_sizes(model, &conditions, &h_test);
        return;
    }
    let opts = SampleOptions { seed: 0, steps: denoising_steps(), ..Default::default() };
    let t = Instant::now();
    let sampled = sample_layered(model, &conditions, &opts).expect("sampling");
    let secs = t.elapsed().as_secs_f64();
    let n = sampled.len() as f64;
    let nodes = sampled.iter().map(|s| s.dag.num_nodes()).sum::<usize>() as f64 / n;
    let layers = sampled.iter().map(|s| s.layer_sizes.len()).sum::<usize>() as f64 / n;
    let valid = sampled.iter().filter(|s| is_valid(s)).count();
    let val_dags: Vec<_> = val.iter().map(|g| &g.dag).collect();
    let sample_dags: Vec<_> = sampled.iter().map(|s| &s.dag).collect();
    let dist = tv(&histogram(&sample_dags, classes), &h_test);
    println!();
    println!(
        "sampling {} graphs: {secs:.2} s; {nodes:.1} nodes, {layers:.1} layers on average; {valid}/{} valid; op-type TV to test {dist:.3} (val vs test {:.3}, ref {REF_SPLIT_TV})",
        sampled.len(),
        sampled.len(),
        tv(&histogram(&val_dags, classes), &h_test)
    );
    for (what, r) in [("3-epoch models", REF_SAMPLE_3EPOCH), ("the reference loop's kept weights", REF_SAMPLE_KEPT)] {
        println!(
            "  reference with {what}: {:.1} s for {:.0} nodes, {:.0} layers on average, TV {:.3}: {:.1}× faster here{}",
            r.0,
            r.1,
            r.2,
            r.3,
            r.0 / secs,
            if nodes >= r.1 { " (our graphs are at least as large)" } else { " (our graphs are smaller)" }
        );
    }
    sample_fixed_sizes(model, &conditions, &h_test);
}

/// Samples 32 graphs for `conditions` at the reference's mean graph sizes:
/// layer sizes fixed to its mean node and layer counts (the layer-size model
/// still runs), attributes and edges sampled.
fn sample_fixed_sizes(model: &LayerDag, conditions: &[Vec<f32>], h_test: &[f64]) {
    let n = conditions.len() as f64;
    println!();
    println!(
        "| sampling 32 graphs at a fixed size | layers | nodes | edges | valid | op-type TV to test | ours s | reference s \
         | speed-up |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (what, r) in [("3-epoch models", REF_SAMPLE_3EPOCH), ("kept weights", REF_SAMPLE_KEPT)] {
        let sizes = even_layers(r.1 as usize, r.2 as usize);
        let opts = SampleOptions { seed: 0, layer_sizes: Some(sizes), steps: denoising_steps(), ..Default::default() };
        let t = Instant::now();
        let sampled = sample_layered(model, conditions, &opts).expect("sampling at a fixed size");
        let secs = t.elapsed().as_secs_f64();
        let edges = sampled.iter().map(|s| s.dag.edges().count()).sum::<usize>() as f64 / n;
        let nodes = sampled.iter().map(|s| s.dag.num_nodes()).sum::<usize>() as f64 / n;
        let valid = sampled.iter().filter(|s| is_valid(s)).count();
        let dags: Vec<_> = sampled.iter().map(|s| &s.dag).collect();
        let dist = tv(&histogram(&dags, h_test.len()), h_test);
        println!(
            "| the reference's mean size with its {what} | {:.0} | {nodes:.0} | {edges:.1} | {valid}/{} | {dist:.3} | \
             {secs:.2} | {:.1} | {:.1}× |",
            r.2,
            sampled.len(),
            r.0,
            r.0 / secs
        );
    }
}

/// `layers` layer sizes adding up to `nodes`, as even as possible.
fn even_layers(nodes: usize, layers: usize) -> Vec<usize> {
    (0..layers).map(|i| nodes / layers + usize::from(i < nodes % layers)).collect()
}

/// A sampled graph is valid when it is a DAG (the sampler's [`synth::dataset::Dag`]
/// guarantees it) and every node after the first layer has a predecessor.
fn is_valid(s: &synth::sample::SampledDag) -> bool {
    let layer = s.node_layers();
    let mut has_pred = vec![false; s.dag.num_nodes()];
    for (_, v) in s.dag.edges() {
        has_pred[v as usize] = true;
    }
    s.dag.num_nodes() > 0 && layer.iter().zip(&has_pred).all(|(&l, &p)| l == 1 || p)
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| format!("load average {}", s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")))
        .unwrap_or_default()
}
