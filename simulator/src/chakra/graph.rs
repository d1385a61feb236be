//! The dependency graph of one trace: node ids mapped to dense indices, with
//! data and control dependencies as edges from prerequisite to dependent.
//!
//! Used by validation and statistics (cold paths), so it is built on petgraph;
//! the simulator's hot path keeps its own CSR arrays.

use std::collections::hash_map::Entry;
use std::collections::HashMap;

use petgraph::algo::{tarjan_scc, toposort};
use petgraph::graph::{DiGraph, NodeIndex};

use super::schema::Node;

/// Which list a dependency came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DepKind {
    /// `data_deps`
    Data,
    /// `ctrl_deps`
    Ctrl,
}

/// A dependency that names no node of the trace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MissingDep {
    /// Index of the dependent node in file order.
    pub node: usize,
    /// The id that does not exist.
    pub dep: u64,
    /// Which list it is in.
    pub kind: DepKind,
}

/// Dense dependency graph over a trace's nodes (graph index = file order).
pub struct DepGraph {
    /// Edge `a → b` means b depends on a.
    pub graph: DiGraph<(), DepKind, u32>,
    /// id → index of the first node with that id.
    pub index_of: HashMap<u64, usize>,
    /// Indices of nodes whose id repeats an earlier node's.
    pub duplicates: Vec<usize>,
    /// Dependencies on ids that are not in the trace.
    pub missing: Vec<MissingDep>,
}

impl DepGraph {
    /// Builds the graph; duplicate ids resolve to their first node.
    pub fn build(nodes: &[Node]) -> DepGraph {
        let mut index_of = HashMap::with_capacity(nodes.len());
        let mut duplicates = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            match index_of.entry(n.id) {
                Entry::Occupied(_) => duplicates.push(i),
                Entry::Vacant(slot) => {
                    slot.insert(i);
                }
            }
        }
        let edges: usize = nodes.iter().map(|n| n.data_deps.len() + n.ctrl_deps.len()).sum();
        let mut graph = DiGraph::with_capacity(nodes.len(), edges);
        for _ in nodes {
            graph.add_node(());
        }
        let mut missing = Vec::new();
        for (i, n) in nodes.iter().enumerate() {
            for (deps, kind) in [(&n.data_deps, DepKind::Data), (&n.ctrl_deps, DepKind::Ctrl)] {
                for &d in deps {
                    match index_of.get(&d) {
                        Some(&j) => {
                            graph.add_edge(NodeIndex::new(j), NodeIndex::new(i), kind);
                        }
                        None => missing.push(MissingDep { node: i, dep: d, kind }),
                    }
                }
            }
        }
        DepGraph { graph, index_of, duplicates, missing }
    }

    /// A topological order of node indices, or one cycle (node indices in
    /// dependency order, the last depending on... the first) when there is none.
    pub fn topo_order(&self) -> Result<Vec<usize>, Vec<usize>> {
        match toposort(&self.graph, None) {
            Ok(order) => Ok(order.into_iter().map(NodeIndex::index).collect()),
            Err(_) => Err(self.find_cycle().unwrap_or_default()),
        }
    }

    /// One dependency cycle, if the graph has any.
    pub fn find_cycle(&self) -> Option<Vec<usize>> {
        // A self-loop is the shortest cycle.
        if let Some(e) = self.graph.raw_edges().iter().find(|e| e.source() == e.target()) {
            return Some(vec![e.source().index()]);
        }
        let scc = tarjan_scc(&self.graph).into_iter().find(|c| c.len() > 1)?;
        let members: std::collections::HashSet<NodeIndex<u32>> = scc.iter().copied().collect();
        // Walk successors inside the component until a node repeats.
        let start = *scc.iter().min()?;
        let mut path = vec![start];
        let mut pos: HashMap<NodeIndex<u32>, usize> = HashMap::from([(start, 0)]);
        let mut cur = start;
        loop {
            let next = self.graph.neighbors(cur).filter(|n| members.contains(n)).min()?;
            if let Some(&p) = pos.get(&next) {
                return Some(path[p..].iter().map(|n| n.index()).collect());
            }
            pos.insert(next, path.len());
            path.push(next);
            cur = next;
        }
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.graph.node_count()
    }

    /// Whether the trace has no nodes.
    pub fn is_empty(&self) -> bool {
        self.graph.node_count() == 0
    }

    /// Indices of the nodes that depend on `i`.
    pub fn dependents(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors(NodeIndex::new(i)).map(NodeIndex::index)
    }

    /// Indices of the nodes `i` depends on (existing ones only).
    pub fn prerequisites(&self, i: usize) -> impl Iterator<Item = usize> + '_ {
        self.graph.neighbors_directed(NodeIndex::new(i), petgraph::Direction::Incoming).map(NodeIndex::index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: u64, deps: &[u64]) -> Node {
        Node { id, data_deps: deps.to_vec(), ..Default::default() }
    }

    #[test]
    fn finds_a_cycle_and_missing_and_duplicate_ids() {
        let nodes = vec![node(1, &[]), node(2, &[1, 4]), node(3, &[2]), node(4, &[3]), node(2, &[]), node(9, &[77])];
        let g = DepGraph::build(&nodes);
        assert_eq!(g.duplicates, vec![4]);
        assert_eq!(g.index_of[&2], 1);
        assert_eq!(g.missing, vec![MissingDep { node: 5, dep: 77, kind: DepKind::Data }]);
        let cycle = g.topo_order().unwrap_err();
        let mut ids: Vec<u64> = cycle.iter().map(|&i| nodes[i].id).collect();
        ids.sort();
        assert_eq!(ids, vec![2, 3, 4]);
    }

    #[test]
    fn orders_an_acyclic_graph() {
        let nodes = vec![node(3, &[2]), node(2, &[1]), node(1, &[])];
        let order = DepGraph::build(&nodes).topo_order().unwrap();
        assert_eq!(order, vec![2, 1, 0]);
    }
}
