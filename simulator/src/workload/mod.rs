//! The per-rank trace feeder: nodes with the attributes the simulator needs,
//! dependency resolution and the hardware slots that gate issue.
//!
//! Semantics follow ASTRA-sim's feeder: data and control dependencies both
//! count (their union); a node is free when all its parents finished; free
//! nodes are issued in ascending node id; a dependency on an id that is not in
//! the file is never satisfied (reported when the run stalls). Slots: one CPU
//! compute op, one GPU compute op and one GPU communication op (collective or
//! send) in flight per rank; receives, memory and metadata nodes need none.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::chakra::attr;
use crate::chakra::{CollectiveCommType, EtTrace, Node, NodeType};
use crate::error::SimError;

/// Communication attributes of a node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct CommAttrs {
    /// Collective type (collectives only).
    pub coll: Option<CollectiveCommType>,
    /// Bytes (`comm_size`).
    pub size: u64,
    /// Sending rank (`comm_src`).
    pub src: Option<u32>,
    /// Receiving rank (`comm_dst`).
    pub dst: Option<u32>,
    /// Message tag (`comm_tag`).
    pub tag: u32,
    /// Explicit priority (`comm_priority`).
    pub priority: i64,
    /// Communicator group (`pg_name`), `None` for all ranks.
    pub group: Option<String>,
    /// Which network dimensions a collective spans (`involved_dim`).
    pub involved_dims: Option<Vec<bool>>,
}

/// One node as the simulator sees it.
#[derive(Clone, Debug)]
pub struct WorkNode {
    /// Node id from the trace.
    pub id: u64,
    /// Node name.
    pub name: String,
    /// Node type (unknown values are rejected at load).
    pub kind: NodeType,
    /// `is_cpu_op`.
    pub is_cpu: bool,
    /// Recorded duration in µs.
    pub duration_us: u64,
    /// `num_ops` (roofline).
    pub num_ops: u64,
    /// `tensor_size` (roofline, memory nodes).
    pub tensor_size: u64,
    /// Communication attributes.
    pub comm: CommAttrs,
    /// Process groups a PyTorch metadata node declares (`pg_name`, ranks;
    /// empty ranks mean all), read from its `inputs.values` as ASTRA-sim does.
    pub process_groups: Vec<(String, Vec<u32>)>,
}

/// Lifecycle of a node.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeState {
    /// Waiting for parents.
    Pending,
    /// All parents finished; not issued yet.
    Free,
    /// Issued, not finished.
    Running,
    /// Finished.
    Done,
}

/// One rank's workload.
#[derive(Clone, Default)]
pub struct Workload {
    /// The file it came from.
    pub path: PathBuf,
    /// Nodes in file order.
    pub nodes: Vec<WorkNode>,
    /// CSR children: `children[child_start[i]..child_start[i+1]]`.
    child_start: Vec<u32>,
    children: Vec<u32>,
    /// Parents not yet finished.
    parents_left: Vec<u32>,
    /// Node state.
    pub state: Vec<NodeState>,
    /// Free nodes by (id, index), ascending id, one set per [`SlotClass`].
    free: [BTreeSet<(u64, u32)>; 4],
    /// When each node became free, in issue rounds (see [`Workload::begin_issue`]).
    free_round: Vec<u64>,
    /// Issue rounds begun so far.
    round: u64,
    /// Nodes issued and not finished.
    pub running: u32,
    /// Compute ops in flight on the CPU.
    pub cpu_busy: u32,
    /// Compute ops in flight on the GPU.
    pub gpu_busy: u32,
    /// Communication ops (collectives, sends) in flight.
    pub comm_busy: u32,
    /// GPU compute time issued so far (ns), for exposed communication.
    pub tics_gpu_ops: u64,
    /// CPU compute time issued so far (ns).
    pub tics_cpu_ops: u64,
    /// Time the rank finished, once it has.
    pub finished_at: Option<u64>,
    /// Nodes finished without running, as ASTRA-sim skips them (metadata,
    /// invalid, roofline compute with `tensor_size` 0), for the diagnosis.
    pub skipped: Vec<u32>,
    /// Issue time of each node (for intervals).
    pub issued_at: Vec<u64>,
    /// How many nodes of each class may be in flight at once.
    pub slots: HardwareSlots,
    /// Each node's slot class, kept apart from `nodes` so that scanning the
    /// free nodes for an available slot touches one byte per node.
    class: Vec<SlotClass>,
}

/// The state of one issue round (see [`Workload::begin_issue`]).
#[derive(Clone, Copy, Debug)]
pub struct IssueRound {
    round: u64,
    /// The last node yielded (id, index).
    last: Option<(u64, u32)>,
}

/// Which hardware slot a node occupies while it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum SlotClass {
    None,
    Cpu,
    Gpu,
    Comm,
}

impl SlotClass {
    fn of(n: &WorkNode) -> SlotClass {
        match n.kind {
            NodeType::CompNode if n.is_cpu => SlotClass::Cpu,
            NodeType::CompNode => SlotClass::Gpu,
            NodeType::CommCollNode | NodeType::CommSendNode => SlotClass::Comm,
            _ => SlotClass::None,
        }
    }
}

/// Per-rank hardware slots: how many compute ops on the CPU, compute ops on the
/// GPU and communication ops (collectives, sends) may be in flight at once.
/// ASTRA-sim fixes all three at 1 ("TODO: parametrize"); receives need none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HardwareSlots {
    /// CPU compute ops in flight.
    pub cpu: u32,
    /// GPU compute ops in flight.
    pub gpu: u32,
    /// Communication ops in flight.
    pub comm: u32,
}

impl Default for HardwareSlots {
    fn default() -> Self {
        HardwareSlots { cpu: 1, gpu: 1, comm: 1 }
    }
}

/// Whether Kahn's algorithm over the CSR children reaches every node.
fn is_acyclic(parents_left: &[u32], child_start: &[u32], children: &[u32]) -> bool {
    let mut left = parents_left.to_vec();
    let mut ready: Vec<u32> = (0..left.len() as u32).filter(|&i| left[i as usize] == 0).collect();
    let mut reached = 0usize;
    while let Some(p) = ready.pop() {
        reached += 1;
        for &c in &children[child_start[p as usize] as usize..child_start[p as usize + 1] as usize] {
            left[c as usize] -= 1;
            if left[c as usize] == 0 {
                ready.push(c);
            }
        }
    }
    reached == left.len()
}

fn node_err(path: &Path, node: &Node, what: impl Into<String>) -> SimError {
    SimError::Node { path: path.to_path_buf(), node: node.id, name: node.name.clone(), what: what.into() }
}

/// Every node attribute [`Workload::from_trace`] reads.
const READ_ATTRS: [&[u8]; 11] = [
    b"is_cpu_op",
    b"num_ops",
    b"tensor_size",
    b"comm_type",
    b"comm_size",
    b"comm_priority",
    b"pg_name",
    b"involved_dim",
    b"comm_src",
    b"comm_dst",
    b"comm_tag",
];

impl WorkNode {
    fn from_node(node: &Node, path: &Path) -> Result<WorkNode, SimError> {
        let kind = node.node_type().ok_or_else(|| {
            node_err(path, node, format!("node type {} is not a Chakra NodeType (expected 0..=7)", node.r#type))
        })?;
        let bad = |e: attr::AttrError| node_err(path, node, e.to_string());
        let is_cpu = attr::get_bool(node, "is_cpu_op").map_err(bad)?.unwrap_or(false);
        let mut w = WorkNode {
            id: node.id,
            name: String::new(),
            kind,
            is_cpu,
            duration_us: node.duration_micros,
            num_ops: 0,
            tensor_size: 0,
            comm: CommAttrs::default(),
            process_groups: Vec::new(),
        };
        let rank = |name: &str| -> Result<Option<u32>, SimError> {
            match attr::get_i64(node, name).map_err(bad)? {
                None => Ok(None),
                Some(v) => u32::try_from(v).map(Some).map_err(|_| {
                    node_err(path, node, format!("attribute `{name}` = {v}; expected a rank number >= 0"))
                }),
            }
        };
        match kind {
            NodeType::CompNode => {
                w.num_ops = attr::get_u64(node, "num_ops").map_err(bad)?.unwrap_or(0);
                w.tensor_size = attr::get_u64(node, "tensor_size").map_err(bad)?.unwrap_or(0);
            }
            NodeType::MemLoadNode | NodeType::MemStoreNode => {
                w.tensor_size = attr::get_u64(node, "tensor_size")
                    .map_err(bad)?
                    .ok_or_else(|| node_err(path, node, "memory node needs attribute `tensor_size` (bytes)"))?;
            }
            NodeType::CommCollNode => {
                let ty = attr::get_i64(node, "comm_type")
                    .map_err(bad)?
                    .ok_or_else(|| node_err(path, node, "COMM_COLL_NODE needs attribute `comm_type`"))?;
                let coll =
                    i32::try_from(ty).ok().and_then(|t| CollectiveCommType::try_from(t).ok()).ok_or_else(|| {
                        node_err(path, node, format!("comm_type {ty} is not a CollectiveCommType (expected 0..=9)"))
                    })?;
                w.comm.coll = Some(coll);
                w.comm.size = attr::get_u64(node, "comm_size").map_err(bad)?.unwrap_or(0);
                if coll != CollectiveCommType::Broadcast && node.attr("comm_size").is_none() {
                    return Err(node_err(path, node, "COMM_COLL_NODE needs attribute `comm_size` (bytes)"));
                }
                w.comm.priority = attr::get_i64(node, "comm_priority").map_err(bad)?.unwrap_or(0);
                w.comm.group = attr::get_str(node, "pg_name").map_err(bad)?.map(str::to_owned);
                if let Some(a) = node.attr("involved_dim") {
                    match &a.value {
                        Some(crate::chakra::AttrValue::BoolList(l)) => w.comm.involved_dims = Some(l.values.clone()),
                        _ => {
                            return Err(node_err(
                                path,
                                node,
                                "attribute `involved_dim` must be a bool_list (ASTRA-sim exits on any other kind)",
                            ))
                        }
                    }
                }
            }
            NodeType::CommSendNode | NodeType::CommRecvNode => {
                w.comm.size = attr::get_u64(node, "comm_size")
                    .map_err(bad)?
                    .ok_or_else(|| node_err(path, node, "send/recv node needs attribute `comm_size` (bytes)"))?;
                w.comm.src = rank("comm_src")?;
                w.comm.dst = rank("comm_dst")?;
                w.comm.tag = match attr::get_i64(node, "comm_tag").map_err(bad)? {
                    Some(t) => u32::try_from(t)
                        .map_err(|_| node_err(path, node, format!("comm_tag {t}; expected a non-negative tag")))?,
                    None => return Err(node_err(path, node, "send/recv node needs attribute `comm_tag`")),
                };
                w.comm.group = attr::get_str(node, "pg_name").map_err(bad)?.map(str::to_owned);
            }
            NodeType::MetadataNode => {
                if let Some(io) = &node.inputs {
                    w.process_groups = parse_process_groups(&io.values);
                }
            }
            NodeType::InvalidNode => {}
        }
        Ok(w)
    }
}

/// Reads PyTorch's process-group description from a metadata node's
/// `inputs.values`, e.g. `['[{"pg_name": "1", "ranks": [0, 1], ...}]']`: like
/// ASTRA-sim, the two outer characters on each side are dropped and the rest
/// parsed as JSON; anything that does not parse declares nothing.
pub fn parse_process_groups(values: &str) -> Vec<(String, Vec<u32>)> {
    if values.len() < 4 || !values.is_char_boundary(2) || !values.is_char_boundary(values.len() - 2) {
        return Vec::new();
    }
    let inner = &values[2..values.len() - 2];
    let Ok(serde_json::Value::Array(items)) = serde_json::from_str::<serde_json::Value>(inner) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| {
            let name = item.get("pg_name")?.as_str()?.to_string();
            let ranks = item
                .get("ranks")?
                .as_array()?
                .iter()
                .map(|r| r.as_u64().and_then(|r| u32::try_from(r).ok()))
                .collect::<Option<Vec<u32>>>()?;
            Some((name, ranks))
        })
        .collect()
}

impl Workload {
    /// Whether [`Workload::from_trace`] reads the node attribute `name`; the
    /// others may be dropped while decoding (see [`crate::chakra::EtReader::keep_attrs`]).
    pub fn reads_attr(name: &[u8]) -> bool {
        READ_ATTRS.contains(&name)
    }

    /// Builds the feeder for one rank's trace.
    pub fn from_trace(trace: &EtTrace, path: &Path) -> Result<Workload, SimError> {
        let mut w = Workload::build(trace, path)?;
        for (wn, node) in w.nodes.iter_mut().zip(&trace.nodes) {
            wn.name.clone_from(&node.name);
        }
        Ok(w)
    }

    /// [`Workload::from_trace`] taking the trace, so node names move instead of
    /// being copied.
    pub fn from_owned_trace(mut trace: EtTrace, path: &Path) -> Result<Workload, SimError> {
        let mut w = Workload::build(&trace, path)?;
        for (wn, node) in w.nodes.iter_mut().zip(&mut trace.nodes) {
            wn.name = std::mem::take(&mut node.name);
        }
        Ok(w)
    }

    /// Builds the feeder with empty node names (the callers fill them in).
    fn build(trace: &EtTrace, path: &Path) -> Result<Workload, SimError> {
        let n = trace.nodes.len();
        let mut nodes = Vec::with_capacity(n);
        let mut index: rustc_hash::FxHashMap<u64, u32> = Default::default();
        index.reserve(n);
        for (i, node) in trace.nodes.iter().enumerate() {
            if index.insert(node.id, i as u32).is_some() {
                return Err(node_err(path, node, "duplicate node id; ids must be unique within a rank's file"));
            }
            nodes.push(WorkNode::from_node(node, path)?);
        }
        let mut parents_left = vec![0u32; n];
        let mut edges: Vec<(u32, u32)> = Vec::new();
        let mut missing_parents = Vec::new();
        let mut seen: Vec<u64> = Vec::new();
        for (i, node) in trace.nodes.iter().enumerate() {
            seen.clear();
            for &d in node.data_deps.iter().chain(&node.ctrl_deps) {
                if seen.contains(&d) {
                    continue; // the union counts each parent once
                }
                seen.push(d);
                parents_left[i] += 1;
                match index.get(&d) {
                    Some(&p) => edges.push((p, i as u32)),
                    None => missing_parents.push((i as u32, d)),
                }
            }
        }
        // A node waiting on an id not in the file, or in a cycle, is never
        // issued; ASTRA-sim then reports the rank finished without it (its
        // termination test ignores pending nodes), a silently wrong time.
        if let Some(&(i, d)) = missing_parents.first() {
            let node = &trace.nodes[i as usize];
            let list = if node.data_deps.contains(&d) { "data_deps" } else { "ctrl_deps" };
            return Err(node_err(
                path,
                node,
                format!(
                    "{list} names node {d}, which is not in this file ({} such dependencies in all): the node and \
                     everything after it could never be issued",
                    missing_parents.len()
                ),
            ));
        }
        let mut child_start = vec![0u32; n + 1];
        for &(p, _) in &edges {
            child_start[p as usize + 1] += 1;
        }
        for i in 0..n {
            child_start[i + 1] += child_start[i];
        }
        let mut fill = child_start.clone();
        let mut children = vec![0u32; edges.len()];
        for &(p, c) in &edges {
            children[fill[p as usize] as usize] = c;
            fill[p as usize] += 1;
        }
        if !is_acyclic(&parents_left, &child_start, &children) {
            let cycle = crate::chakra::graph::DepGraph::build(&trace.nodes).find_cycle().unwrap_or_default();
            let ids: Vec<String> = cycle.iter().map(|&i| trace.nodes[i].id.to_string()).collect();
            let first = cycle.first().map_or(&trace.nodes[0], |&i| &trace.nodes[i]);
            return Err(node_err(
                path,
                first,
                format!(
                    "dependency cycle through nodes {} -> {} (each depends on the one before it): these nodes could \
                     never be issued; expected an acyclic graph",
                    ids.join(" -> "),
                    ids.first().map_or("?", String::as_str)
                ),
            ));
        }
        let mut state = vec![NodeState::Pending; n];
        let class: Vec<SlotClass> = nodes.iter().map(SlotClass::of).collect();
        let mut free: [BTreeSet<(u64, u32)>; 4] = Default::default();
        for i in 0..n {
            if parents_left[i] == 0 {
                state[i] = NodeState::Free;
                free[class[i] as usize].insert((nodes[i].id, i as u32));
            }
        }
        Ok(Workload {
            path: path.to_path_buf(),
            child_start,
            children,
            parents_left,
            state,
            free,
            free_round: vec![0; n],
            round: 0,
            running: 0,
            cpu_busy: 0,
            gpu_busy: 0,
            comm_busy: 0,
            tics_gpu_ops: 0,
            tics_cpu_ops: 0,
            finished_at: None,
            skipped: Vec::new(),
            issued_at: vec![0; n],
            slots: HardwareSlots::default(),
            class,
            nodes,
        })
    }

    /// Whether `other` (as loaded, not run) runs the same program as this
    /// workload: the same nodes in the same order with the same attributes and
    /// dependencies (by position), and node ids in the same relative order (free
    /// nodes issue in ascending id). Ids, names and the file path may differ.
    pub fn same_program(&self, other: &Workload) -> bool {
        self.same_program_with(other, |a, b| a == b)
    }

    /// [`Workload::same_program`] with the communication attributes of two
    /// nodes at the same position compared by `same_comm` (which may relate
    /// peers and communicator groups of one rank to those of another).
    pub fn same_program_with(
        &self,
        other: &Workload,
        mut same_comm: impl FnMut(&CommAttrs, &CommAttrs) -> bool,
    ) -> bool {
        let same_node = |(a, b): (&WorkNode, &WorkNode)| {
            a.kind == b.kind
                && a.is_cpu == b.is_cpu
                && a.duration_us == b.duration_us
                && a.num_ops == b.num_ops
                && a.tensor_size == b.tensor_size
                && a.process_groups == b.process_groups
                && same_comm(&a.comm, &b.comm)
        };
        self.nodes.len() == other.nodes.len()
            && self.child_start == other.child_start
            && self.children == other.children
            && self.parents_left == other.parents_left
            && self.class == other.class
            && self.nodes.iter().zip(&other.nodes).all(same_node)
            && self.id_order() == other.id_order()
    }

    /// Node positions in ascending id.
    fn id_order(&self) -> Vec<u32> {
        let mut order: Vec<u32> = (0..self.nodes.len() as u32).collect();
        order.sort_unstable_by_key(|&i| self.nodes[i as usize].id);
        order
    }

    /// A snapshot of the free nodes in ascending id (ASTRA-sim copies the set
    /// before issuing, so nodes freed meanwhile wait for the next call).
    pub fn free_snapshot(&self, out: &mut Vec<u32>) {
        let mut all: Vec<(u64, u32)> = self.free.iter().flatten().copied().collect();
        all.sort_unstable();
        out.clear();
        out.extend(all.into_iter().map(|(_, i)| i));
    }

    /// Whether no node is free.
    pub fn no_free(&self) -> bool {
        self.free.iter().all(BTreeSet::is_empty)
    }

    /// Starts an issue round: [`Workload::next_issuable`] then yields, in
    /// ascending id, the nodes of the free-node snapshot ASTRA-sim takes at
    /// this point whose slot is available when their turn comes. That equals
    /// walking the snapshot and checking each node's state and slot, without
    /// copying the snapshot or visiting nodes whose slot is full. Nodes freed
    /// after this call (by issuing or by nested rounds) are not in the snapshot.
    pub fn begin_issue(&mut self) -> IssueRound {
        self.round += 1;
        IssueRound { round: self.round, last: None }
    }

    /// The next node to issue in `round` (see [`Workload::begin_issue`]).
    pub fn next_issuable(&self, round: &mut IssueRound) -> Option<u32> {
        use std::ops::Bound::{Excluded, Unbounded};
        let mut best: Option<(u64, u32)> = None;
        for class in [SlotClass::None, SlotClass::Cpu, SlotClass::Gpu, SlotClass::Comm] {
            if !self.class_available(class) {
                continue;
            }
            let set = &self.free[class as usize];
            let candidates = match round.last {
                None => set.range(..),
                Some(k) => set.range((Excluded(k), Unbounded)),
            };
            for &k in candidates {
                if best.is_some_and(|b| k >= b) {
                    break;
                }
                if self.free_round[k.1 as usize] < round.round {
                    best = Some(k);
                    break;
                }
            }
        }
        round.last = best.or(round.last);
        best.map(|(_, i)| i)
    }

    fn class_available(&self, class: SlotClass) -> bool {
        match class {
            SlotClass::Cpu => self.cpu_busy < self.slots.cpu,
            SlotClass::Gpu => self.gpu_busy < self.slots.gpu,
            SlotClass::Comm => self.comm_busy < self.slots.comm,
            SlotClass::None => true,
        }
    }

    /// Whether the node's hardware slot is available.
    pub fn slot_available(&self, i: u32) -> bool {
        self.class_available(self.class[i as usize])
    }

    /// Moves a free node to running and occupies its slot.
    pub fn take(&mut self, i: u32, now: u64) {
        let id = self.nodes[i as usize].id;
        self.free[self.class[i as usize] as usize].remove(&(id, i));
        self.state[i as usize] = NodeState::Running;
        self.running += 1;
        self.issued_at[i as usize] = now;
        match self.class[i as usize] {
            SlotClass::Cpu => self.cpu_busy += 1,
            SlotClass::Gpu => self.gpu_busy += 1,
            SlotClass::Comm => self.comm_busy += 1,
            SlotClass::None => {}
        }
    }

    /// Finishes a running node: releases its slot and frees its children.
    pub fn finish(&mut self, i: u32) {
        debug_assert_eq!(self.state[i as usize], NodeState::Running);
        self.state[i as usize] = NodeState::Done;
        self.running -= 1;
        match self.class[i as usize] {
            SlotClass::Cpu => self.cpu_busy -= 1,
            SlotClass::Gpu => self.gpu_busy -= 1,
            SlotClass::Comm => self.comm_busy -= 1,
            SlotClass::None => {}
        }
        let (a, b) = (self.child_start[i as usize] as usize, self.child_start[i as usize + 1] as usize);
        for k in a..b {
            let c = self.children[k] as usize;
            self.parents_left[c] -= 1;
            if self.parents_left[c] == 0 && self.state[c] == NodeState::Pending {
                self.state[c] = NodeState::Free;
                self.free[self.class[c] as usize].insert((self.nodes[c].id, c as u32));
                self.free_round[c] = self.round;
            }
        }
    }

    /// Whether node `c` depends on node `p`.
    pub fn is_child(&self, p: u32, c: u32) -> bool {
        self.children[self.child_start[p as usize] as usize..self.child_start[p as usize + 1] as usize].contains(&c)
    }

    /// Whether the rank is done: nothing free, nothing running, no slot busy.
    pub fn is_complete(&self) -> bool {
        self.no_free() && self.running == 0 && self.cpu_busy == 0 && self.gpu_busy == 0 && self.comm_busy == 0
    }

    /// Nodes never finished, with the unfinished parents each waits on.
    pub fn unfinished(&self) -> Vec<(u32, Vec<u32>)> {
        let n = self.nodes.len();
        let mut waits_on: Vec<Vec<u32>> = vec![Vec::new(); n];
        for p in 0..n {
            if self.state[p] == NodeState::Done {
                continue;
            }
            let (a, b) = (self.child_start[p] as usize, self.child_start[p + 1] as usize);
            for &c in &self.children[a..b] {
                waits_on[c as usize].push(p as u32);
            }
        }
        (0..n as u32)
            .filter(|&i| self.state[i as usize] != NodeState::Done)
            .map(|i| (i, std::mem::take(&mut waits_on[i as usize])))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The metadata node of Chakra's 1.0.2-chakra.0.0.4 host trace, as the
    /// PyTorch converter writes it (Python `str()` of the inputs list).
    #[test]
    fn process_groups_from_pytorch_metadata() {
        let values = r#"['[{"pg_name": "0", "backend_id": 82149104, "backend_config": "cuda:nccl", "ranks": [], "group_size": 2, "group_count": 1}, {"pg_name": "1", "ranks": [0, 1]}]']"#;
        assert_eq!(parse_process_groups(values), vec![("0".to_string(), vec![]), ("1".to_string(), vec![0, 1])]);
        assert!(parse_process_groups("[]").is_empty());
        assert!(parse_process_groups("['not json']").is_empty());
        assert!(parse_process_groups("é").is_empty());
    }
}
