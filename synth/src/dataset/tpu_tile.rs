//! Reader for the reference's TPU Tile dataset as JSON Lines.
//!
//! One graph per line: `{"src": [...], "dst": [...], "x": [...], "y": float}`,
//! 0-based edge lists, one op-type id per node in `0..47`
//! ([`TPU_TILE_OP_TYPES`]; the dummy category is 47), and `y` the normalized
//! runtime averaged over compiler configurations, used raw as the scalar
//! condition ([`super::conditioning::scalar_condition`]). The files hold the
//! reference's `val` and `test` splits (its `train` split is not public), so
//! `val` stands in for training and `test` for validation when comparing with
//! the reference implementation.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;

use super::dag::Dag;
use super::error::{DatasetError, Result};

/// Op-type categories of TPU Tile (`MPNNTrainer` hard-codes `[47]`).
pub const TPU_TILE_OP_TYPES: u32 = 47;

/// One TPU Tile graph.
#[derive(Clone, Debug, PartialEq)]
pub struct TpuTileGraph {
    /// The DAG: one feature, the op type.
    pub dag: Dag,
    /// The graph label.
    pub y: f64,
}

#[derive(Deserialize)]
struct Line {
    src: Vec<i64>,
    dst: Vec<i64>,
    x: Vec<i64>,
    y: f64,
}

/// Reads a TPU Tile JSONL file. Errors name the file and line.
pub fn read_tpu_tile(path: &Path) -> Result<Vec<TpuTileGraph>> {
    let file = std::fs::File::open(path).map_err(|e| DatasetError::io(path, "cannot open", e))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line.map_err(|e| DatasetError::io(path, "cannot read", e))?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(parse_line(&line, path, i + 1)?);
    }
    Ok(out)
}

fn parse_line(line: &str, path: &Path, number: usize) -> Result<TpuTileGraph> {
    let at = format!("line {number}");
    let l: Line = serde_json::from_str(line).map_err(|e| DatasetError::format(path, &at, e.to_string()))?;
    let x =
        l.x.iter()
            .map(|&v| u32::try_from(v).ok())
            .collect::<Option<Vec<u32>>>()
            .ok_or_else(|| DatasetError::format(path, &at, "x holds a negative op type"))?;
    // The models read y in fp32.
    if !(l.y as f32).is_finite() {
        return Err(DatasetError::format(
            path,
            &at,
            format!("y = {:e}, expected a finite number within fp32's range (±3.4e38)", l.y),
        ));
    }
    let dag_error = |source| DatasetError::Dag { origin: format!("{} {at}", path.display()), source };
    let dag = Dag::from_signed(vec![TPU_TILE_OP_TYPES], x, &l.src, &l.dst).map_err(dag_error)?;
    dag.layering().map_err(dag_error)?;
    Ok(TpuTileGraph { dag, y: l.y })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::conditioning::scalar_condition;
    use crate::dataset::streams::LayerDagData;
    use crate::dataset::test_data::{TPU_TEST, TPU_VAL};
    use simulator::chakra::stats::trace_stats;
    use simulator::chakra::{EtTrace, Node};

    fn as_trace(dag: &Dag) -> EtTrace {
        let mut nodes: Vec<Node> = (0..dag.num_nodes() as u64).map(|id| Node { id, ..Default::default() }).collect();
        for (s, d) in dag.edges() {
            nodes[d as usize].data_deps.push(s as u64);
        }
        EtTrace { metadata: None, nodes }
    }

    struct Summary {
        graphs: usize,
        mean_layers: f64,
        max_layers: usize,
        max_width: usize,
        counts: (usize, usize, usize),
        avg_in_deg: f64,
    }

    fn summarize(path: &str) -> Summary {
        let graphs = read_tpu_tile(Path::new(path)).unwrap();
        let layerings: Vec<_> = graphs.iter().map(|g| g.dag.layering().unwrap()).collect();
        let layers: Vec<usize> = layerings.iter().map(|l| l.num_layers()).collect();
        // The layer count equals the longest path that the simulator's trace
        // statistics compute separately, on the graph written as a trace.
        for (g, l) in graphs.iter().zip(&layers) {
            assert_eq!(trace_stats(&as_trace(&g.dag)).layers, Some(*l as u64));
        }
        let dags: Vec<Dag> = graphs.iter().map(|g| g.dag.clone()).collect();
        let y: Vec<Vec<f32>> = graphs.iter().map(|g| scalar_condition(g.y)).collect();
        let data = LayerDagData::new(&dags, &y).unwrap();
        for (g, l) in layerings.iter().enumerate() {
            assert_eq!(data.graphs.layer_sizes(g), l.sizes());
        }
        let stats = data.graphs.stats();
        Summary {
            graphs: graphs.len(),
            mean_layers: layers.iter().sum::<usize>() as f64 / graphs.len() as f64,
            max_layers: layers.iter().copied().max().unwrap(),
            max_width: stats.max_layer_size,
            counts: (data.node_count.len(), data.node_attr.len(), data.edge.len()),
            avg_in_deg: stats.avg_in_deg,
        }
    }

    /// layerdag.md §1.4 / §5 and the data's SOURCES.txt: val has 630 graphs,
    /// 11.33 layers on average (max 27, widest layer 20), giving 7768 / 7138 /
    /// 6508 examples and an average in-degree of 1.0737.
    #[test]
    fn tpu_tile_val_matches_the_reference_counts() {
        let s = summarize(TPU_VAL);
        assert_eq!(s.graphs, 630);
        assert!((s.mean_layers - 11.33).abs() < 0.005, "mean layers {}", s.mean_layers);
        assert_eq!((s.max_layers, s.max_width), (27, 20));
        assert_eq!(s.counts, (7768, 7138, 6508));
        assert!((s.avg_in_deg - 1.0737).abs() < 5e-5, "avg in-degree {}", s.avg_in_deg);
    }

    /// The test split: 631 graphs, 11.5 layers on average (max 72, widest 21),
    /// 7907 / 7276 / 6645 examples.
    #[test]
    fn tpu_tile_test_matches_the_reference_counts() {
        let s = summarize(TPU_TEST);
        assert_eq!(s.graphs, 631);
        assert!((s.mean_layers - 11.5).abs() < 0.05, "mean layers {}", s.mean_layers);
        assert_eq!((s.max_layers, s.max_width), (72, 21));
        assert_eq!(s.counts, (7907, 7276, 6645));
    }

    #[test]
    fn bad_lines_name_file_and_line() {
        let p = Path::new("t.jsonl");
        let err = parse_line(r#"{"src": [0], "dst": [5], "x": [1, 2], "y": 1.0}"#, p, 3).unwrap_err().to_string();
        assert!(err.contains("t.jsonl line 3") && err.contains("outside 0..2"), "{err}");
        let err = parse_line(r#"{"src": [0], "dst": [1], "x": [1, 47], "y": 1.0}"#, p, 4).unwrap_err().to_string();
        assert!(err.contains("line 4") && err.contains("below 47"), "{err}");
        let err = parse_line(r#"{"src": [0], "x": [1], "y": 1.0}"#, p, 5).unwrap_err().to_string();
        assert!(err.contains("line 5") && err.contains("dst"), "{err}");
        assert!(parse_line(r#"{"src": [], "dst": [], "x": [-1], "y": 1.0}"#, p, 6).is_err());
        let err = parse_line(r#"{"src": [0, 1], "dst": [1, 0], "x": [1, 2], "y": 1.0}"#, p, 7).unwrap_err().to_string();
        assert!(err.contains("t.jsonl line 7") && err.contains("cycle"), "{err}");
        let err = parse_line(r#"{"src": [0], "dst": [1], "x": [1, 2], "y": 1e39}"#, p, 8).unwrap_err().to_string();
        assert!(err.contains("line 8") && err.contains("1e39"), "{err}");
        assert!(read_tpu_tile(Path::new("/nonexistent/t.jsonl")).unwrap_err().to_string().contains("cannot open"));
    }
}
