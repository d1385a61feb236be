//! The categorical vocabularies a Chakra ET node is tokenized into.
//!
//! Each ET node becomes one row of [`NUM_ET_FEATURES`] categorical ids, one per
//! [`EtFeature`]. The ids are **stable**: they are part of checkpoints, so a
//! value's id never changes and new values are only ever appended. Every
//! vocabulary is fixed (it does not depend on the training data), so some ids
//! never occur in a given corpus; their marginal frequency is then 0, which the
//! node diffusion handles (it only ever moves mass to categories with non-zero
//! marginal). The dummy category of the LayerDAG start node is the vocabulary
//! size (`C_f`), one past the last real id, as in the reference.
//!
//! # Features (column order of a node row)
//!
//! | # | feature | classes | source |
//! |---|---|---|---|
//! | 0 | [`NodeTypeToken`] | 8 | `Node.type` |
//! | 1 | [`CollectiveToken`] | 11 | `comm_type` of COMM_COLL nodes |
//! | 2 | [`CommKind`] | 9 | `pg_name` resolved through the comm-group file and the parallel layout |
//! | 3 | comm size, [`Magnitude`] | 66 | `comm_size` (STG writes an element count there; ASTRA-sim reads bytes) |
//! | 4 | num ops, [`Magnitude`] | 66 | `num_ops` (FLOPs of a compute node) |
//! | 5 | tensor size, [`Magnitude`] | 66 | `tensor_size` (bytes; the roofline's memory term) |
//! | 6 | duration, [`Magnitude`] | 66 | `duration_micros` (0, proto3's "unset", is ABSENT) |
//! | 7 | [`CpuOpToken`] | 3 | `is_cpu_op` |
//! | 8 | [`OpTypeToken`] | 10 | `op_type` (STG's compute kind) |
//! | 9 | [`PeerStage`] | 4 | `comm_dst` / `comm_src` of SEND / RECV nodes, relative to the rank's pipeline stage |
//!
//! # Node type (feature 0)
//!
//! | id | value |
//! |---|---|
//! | 0 | COMP_NODE |
//! | 1 | COMM_COLL_NODE |
//! | 2 | COMM_SEND_NODE |
//! | 3 | COMM_RECV_NODE |
//! | 4 | MEM_LOAD_NODE |
//! | 5 | MEM_STORE_NODE |
//! | 6 | METADATA_NODE |
//! | 7 | INVALID_NODE |
//!
//! # Collective type (feature 1)
//!
//! | id | value |
//! |---|---|
//! | 0 | NONE (not a collective, or no `comm_type`) |
//! | 1 | ALL_REDUCE |
//! | 2 | REDUCE |
//! | 3 | ALL_GATHER |
//! | 4 | GATHER |
//! | 5 | SCATTER |
//! | 6 | BROADCAST |
//! | 7 | ALL_TO_ALL |
//! | 8 | REDUCE_SCATTER |
//! | 9 | REDUCE_SCATTER_BLOCK |
//! | 10 | BARRIER |
//!
//! Id = Chakra's `CollectiveCommType` value + 1.
//!
//! # Communicator kind (feature 2)
//!
//! | id | value | meaning |
//! |---|---|---|
//! | 0 | NONE | not a communication node |
//! | 1 | DATA | the group varies only the data-parallel coordinate |
//! | 2 | TENSOR | only the tensor-parallel coordinate (for non-MoE models STG folds `ep` into it: degree tp·ep) |
//! | 3 | PIPELINE | SEND / RECV (point to point between stages), or a collective over a pipeline group |
//! | 4 | SEQUENCE | only the sequence / context-parallel (`sp`, STG's `cp`) coordinate |
//! | 5 | EXPERT | only the expert-parallel coordinate (MoE) |
//! | 6 | WORLD | a collective with no `pg_name`: ASTRA-sim runs it over all ranks |
//! | 7 | MIXED | the group varies several coordinates |
//! | 8 | UNKNOWN | `pg_name` names no known group, or no layout was given to resolve it |
//!
//! See [`super::layout`] for how a group is resolved.
//!
//! # Magnitudes (features 3–6)
//!
//! One log2 bucketing for every size-like value, covering all of `u64` with
//! no saturation:
//!
//! | id | values |
//! |---|---|
//! | 0 | ABSENT (attribute not set) |
//! | 1 | 0 |
//! | 2 + k | 2^k ≤ v < 2^(k+1), k = 0..=63 |
//!
//! The inverse maps a bucket to a representative value inside it:
//! [`Representatives`] fitted on data (the median of the observed values of
//! that bucket), or 2^k for a bucket never observed.
//!
//! # is_cpu_op (feature 7)
//!
//! | id | value |
//! |---|---|
//! | 0 | ABSENT |
//! | 1 | false |
//! | 2 | true |
//!
//! # op_type (feature 8)
//!
//! | id | value | STG meaning (corpus NOTES.md) |
//! |---|---|---|
//! | 0 | NONE | no `op_type` attribute |
//! | 1 | M | matmul |
//! | 2 | E | element-wise |
//! | 3 | A | add |
//! | 4 | SLICE | slice |
//! | 5 | CUSTOM | custom kernels, e.g. the fused attention |
//! | 6 | E2 | an MoE-only kind |
//! | 7 | B | an MoE-only kind |
//! | 8 | R | an MoE-only kind |
//! | 9 | OTHER | any other string; written back as `OTHER` |
//!
//! # Peer stage (feature 9)
//!
//! | id | value | meaning |
//! |---|---|---|
//! | 0 | NONE | not a SEND / RECV node |
//! | 1 | NEXT | the peer's pipeline stage is the rank's stage + 1 |
//! | 2 | PREV | the peer's stage is the rank's stage − 1 |
//! | 3 | OTHER | any other stage (STG's wrap-around placement), or no layout to tell |

use serde::{Deserialize, Serialize};
use simulator::chakra::{CollectiveCommType, NodeType};

/// Number of categorical features per ET node.
pub const NUM_ET_FEATURES: usize = 10;

/// Classes of a [`Magnitude`] feature: ABSENT, zero, and one per power of two of `u64`.
pub const MAGNITUDE_CLASSES: u32 = 66;

/// One column of an ET node row.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EtFeature {
    /// Column 0: [`NodeTypeToken`].
    NodeType = 0,
    /// Column 1: [`CollectiveToken`].
    Collective = 1,
    /// Column 2: [`CommKind`].
    CommKind = 2,
    /// Column 3: `comm_size` as a [`Magnitude`].
    CommSize = 3,
    /// Column 4: `num_ops` as a [`Magnitude`].
    NumOps = 4,
    /// Column 5: `tensor_size` as a [`Magnitude`].
    TensorSize = 5,
    /// Column 6: `duration_micros` as a [`Magnitude`].
    Duration = 6,
    /// Column 7: [`CpuOpToken`].
    IsCpuOp = 7,
    /// Column 8: [`OpTypeToken`].
    OpType = 8,
    /// Column 9: [`PeerStage`].
    PeerStage = 9,
}

impl EtFeature {
    /// Every feature in column order.
    pub const ALL: [EtFeature; NUM_ET_FEATURES] = [
        EtFeature::NodeType,
        EtFeature::Collective,
        EtFeature::CommKind,
        EtFeature::CommSize,
        EtFeature::NumOps,
        EtFeature::TensorSize,
        EtFeature::Duration,
        EtFeature::IsCpuOp,
        EtFeature::OpType,
        EtFeature::PeerStage,
    ];

    /// The four magnitude features, in column order.
    pub const MAGNITUDES: [EtFeature; 4] =
        [EtFeature::CommSize, EtFeature::NumOps, EtFeature::TensorSize, EtFeature::Duration];

    /// The column index.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short name (`node_type`, `comm_size`, ...).
    pub fn name(self) -> &'static str {
        match self {
            EtFeature::NodeType => "node_type",
            EtFeature::Collective => "collective",
            EtFeature::CommKind => "comm_kind",
            EtFeature::CommSize => "comm_size",
            EtFeature::NumOps => "num_ops",
            EtFeature::TensorSize => "tensor_size",
            EtFeature::Duration => "duration",
            EtFeature::IsCpuOp => "is_cpu_op",
            EtFeature::OpType => "op_type",
            EtFeature::PeerStage => "peer_stage",
        }
    }

    /// Number of real categories (the dummy category is this value).
    pub fn cardinality(self) -> u32 {
        match self {
            EtFeature::NodeType => NodeTypeToken::ALL.len() as u32,
            EtFeature::Collective => 1 + CollectiveCommType::ALL.len() as u32,
            EtFeature::CommKind => CommKind::ALL.len() as u32,
            EtFeature::CommSize | EtFeature::NumOps | EtFeature::TensorSize | EtFeature::Duration => MAGNITUDE_CLASSES,
            EtFeature::IsCpuOp => 3,
            EtFeature::OpType => OpTypeToken::ALL.len() as u32,
            EtFeature::PeerStage => PeerStage::ALL.len() as u32,
        }
    }

    /// The position of this feature among [`EtFeature::MAGNITUDES`], if it is one.
    pub fn magnitude_slot(self) -> Option<usize> {
        EtFeature::MAGNITUDES.iter().position(|&m| m == self)
    }
}

/// The per-feature class counts of an ET node row, in column order.
pub fn et_cardinalities() -> Vec<u32> {
    EtFeature::ALL.iter().map(|f| f.cardinality()).collect()
}

/// Feature 0: the node type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NodeTypeToken;

impl NodeTypeToken {
    /// Node types in id order.
    pub const ALL: [NodeType; 8] = [
        NodeType::CompNode,
        NodeType::CommCollNode,
        NodeType::CommSendNode,
        NodeType::CommRecvNode,
        NodeType::MemLoadNode,
        NodeType::MemStoreNode,
        NodeType::MetadataNode,
        NodeType::InvalidNode,
    ];

    /// The id of a node type.
    pub fn id(t: NodeType) -> u32 {
        NodeTypeToken::ALL.iter().position(|&x| x == t).unwrap_or(0) as u32
    }

    /// The node type of an id, `None` when out of range.
    pub fn from_id(id: u32) -> Option<NodeType> {
        NodeTypeToken::ALL.get(id as usize).copied()
    }
}

/// Feature 1: the collective type, with 0 for "none".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CollectiveToken;

impl CollectiveToken {
    /// The id for "no collective".
    pub const NONE: u32 = 0;

    /// The id of a collective type (its Chakra value + 1).
    pub fn id(c: Option<CollectiveCommType>) -> u32 {
        c.map_or(0, |c| c as u32 + 1)
    }

    /// The collective of an id: `Some(None)` for NONE, `None` when out of range.
    pub fn from_id(id: u32) -> Option<Option<CollectiveCommType>> {
        if id == 0 {
            return Some(None);
        }
        CollectiveCommType::ALL.get(id as usize - 1).copied().map(Some)
    }
}

/// Feature 2: which parallelism dimension a communication runs over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommKind {
    /// Not a communication node.
    None = 0,
    /// Data parallel.
    Data = 1,
    /// Tensor parallel (tp·ep for non-MoE STG models).
    Tensor = 2,
    /// Pipeline parallel (SEND / RECV).
    Pipeline = 3,
    /// Sequence / context parallel.
    Sequence = 4,
    /// Expert parallel (MoE).
    Expert = 5,
    /// All ranks (a collective without `pg_name`).
    World = 6,
    /// A group spanning several parallel dimensions.
    Mixed = 7,
    /// A group that cannot be resolved.
    Unknown = 8,
}

impl CommKind {
    /// Kinds in id order.
    pub const ALL: [CommKind; 9] = [
        CommKind::None,
        CommKind::Data,
        CommKind::Tensor,
        CommKind::Pipeline,
        CommKind::Sequence,
        CommKind::Expert,
        CommKind::World,
        CommKind::Mixed,
        CommKind::Unknown,
    ];

    /// The id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The kind of an id.
    pub fn from_id(id: u32) -> Option<CommKind> {
        CommKind::ALL.get(id as usize).copied()
    }

    /// A short upper-case name (`DATA`, `TENSOR`, ...).
    pub fn name(self) -> &'static str {
        match self {
            CommKind::None => "NONE",
            CommKind::Data => "DATA",
            CommKind::Tensor => "TENSOR",
            CommKind::Pipeline => "PIPELINE",
            CommKind::Sequence => "SEQUENCE",
            CommKind::Expert => "EXPERT",
            CommKind::World => "WORLD",
            CommKind::Mixed => "MIXED",
            CommKind::Unknown => "UNKNOWN",
        }
    }
}

/// Features 3–6: log2 buckets of a non-negative value.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Magnitude;

impl Magnitude {
    /// The id for an absent attribute.
    pub const ABSENT: u32 = 0;
    /// The id for the value 0.
    pub const ZERO: u32 = 1;

    /// The bucket of a value: `ABSENT` for `None`, `ZERO` for 0, else 2 + ⌊log2 v⌋.
    pub fn bucket(v: Option<u64>) -> u32 {
        match v {
            None => Magnitude::ABSENT,
            Some(0) => Magnitude::ZERO,
            Some(v) => 2 + (63 - v.leading_zeros()),
        }
    }

    /// The smallest value of a bucket (`None` for ABSENT or an id out of range).
    pub fn lower_bound(bucket: u32) -> Option<u64> {
        match bucket {
            Magnitude::ABSENT => None,
            Magnitude::ZERO => Some(0),
            b if b < MAGNITUDE_CLASSES => Some(1u64 << (b - 2)),
            _ => None,
        }
    }
}

/// Feature 7: `is_cpu_op`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CpuOpToken;

impl CpuOpToken {
    /// The id of an `is_cpu_op` value (0 absent, 1 false, 2 true).
    pub fn id(v: Option<bool>) -> u32 {
        match v {
            None => 0,
            Some(false) => 1,
            Some(true) => 2,
        }
    }

    /// The value of an id: `Some(None)` for ABSENT, `None` when out of range.
    pub fn from_id(id: u32) -> Option<Option<bool>> {
        match id {
            0 => Some(None),
            1 => Some(Some(false)),
            2 => Some(Some(true)),
            _ => None,
        }
    }
}

/// Feature 8: STG's `op_type` string.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct OpTypeToken;

impl OpTypeToken {
    /// The strings in id order; id 0 (NONE) is the absent attribute and has no string.
    pub const ALL: [&'static str; 10] = ["", "M", "E", "A", "SLICE", "CUSTOM", "E2", "B", "R", "OTHER"];
    /// The id of an unlisted string.
    pub const OTHER: u32 = 9;

    /// The id of an `op_type` value.
    pub fn id(v: Option<&str>) -> u32 {
        match v {
            None => 0,
            Some(s) => OpTypeToken::ALL[1..].iter().position(|&x| x == s).map_or(OpTypeToken::OTHER, |p| p as u32 + 1),
        }
    }

    /// The string written back for an id: `Some(None)` for NONE, `None` when out of range.
    pub fn from_id(id: u32) -> Option<Option<&'static str>> {
        match id {
            0 => Some(None),
            i => OpTypeToken::ALL.get(i as usize).copied().map(Some),
        }
    }
}

/// Feature 9: where a SEND / RECV node's peer sits relative to the rank's pipeline stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerStage {
    /// Not a point-to-point node.
    None = 0,
    /// The next stage (stage + 1).
    Next = 1,
    /// The previous stage (stage − 1).
    Prev = 2,
    /// Any other stage, or unknown.
    Other = 3,
}

impl PeerStage {
    /// Values in id order.
    pub const ALL: [PeerStage; 4] = [PeerStage::None, PeerStage::Next, PeerStage::Prev, PeerStage::Other];

    /// The id.
    pub fn id(self) -> u32 {
        self as u32
    }

    /// The value of an id.
    pub fn from_id(id: u32) -> Option<PeerStage> {
        PeerStage::ALL.get(id as usize).copied()
    }

    /// Whether an ET node row is a point-to-point node of type `t` (send or
    /// receive) whose peer sits at `self`.
    pub fn is_p2p(self, row: &[i64], t: NodeType) -> bool {
        row.get(EtFeature::NodeType.index()) == Some(&(NodeTypeToken::id(t) as i64))
            && row.get(EtFeature::PeerStage.index()) == Some(&(self.id() as i64))
    }
}

/// Makes an ET token row a compute node, keeping its compute attributes
/// (the communication columns become none or absent).
pub fn make_compute(row: &mut [u32]) {
    row[EtFeature::NodeType.index()] = NodeTypeToken::id(NodeType::CompNode);
    row[EtFeature::Collective.index()] = CollectiveToken::NONE;
    row[EtFeature::CommKind.index()] = CommKind::None.id();
    row[EtFeature::PeerStage.index()] = PeerStage::None.id();
    row[EtFeature::CommSize.index()] = Magnitude::ABSENT;
}

/// Representative values of the magnitude buckets: the inverse of [`Magnitude::bucket`].
///
/// `values[slot][bucket]` (slot = position in [`EtFeature::MAGNITUDES`]) is the
/// value written back for that bucket. Fitted tables hold the median of the
/// values observed in each bucket; a bucket never observed falls back to its
/// lower bound 2^k (exact for the power-of-two sizes common in ML traces). Every
/// representative lies inside its bucket, so re-tokenizing gives the same id.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Representatives {
    /// Per magnitude feature, per bucket, the value to write (`None` for ABSENT).
    pub values: Vec<Vec<Option<u64>>>,
}

impl Default for Representatives {
    /// Lower bounds everywhere: 0 for ZERO, 2^k for bucket 2 + k.
    fn default() -> Self {
        let row: Vec<Option<u64>> = (0..MAGNITUDE_CLASSES).map(Magnitude::lower_bound).collect();
        Representatives { values: vec![row; EtFeature::MAGNITUDES.len()] }
    }
}

impl Representatives {
    /// The value for a bucket of a magnitude feature; `None` for ABSENT, for a
    /// feature that is no magnitude, or for a bucket out of range.
    pub fn value(&self, feature: EtFeature, bucket: u32) -> Option<u64> {
        let slot = feature.magnitude_slot()?;
        self.values.get(slot)?.get(bucket as usize).copied().flatten()
    }

    /// What is wrong with a table read from a file, if anything: it needs
    /// one row per magnitude feature, one value per bucket, each value
    /// inside its bucket (`None` exactly for ABSENT).
    pub fn problem(&self) -> Option<String> {
        if self.values.len() != EtFeature::MAGNITUDES.len() {
            return Some(format!("{} rows, expected {}", self.values.len(), EtFeature::MAGNITUDES.len()));
        }
        for (slot, row) in self.values.iter().enumerate() {
            if row.len() != MAGNITUDE_CLASSES as usize {
                return Some(format!("row {slot} has {} values, expected {MAGNITUDE_CLASSES}", row.len()));
            }
            for (b, &v) in row.iter().enumerate() {
                if Magnitude::bucket(v) != b as u32 {
                    return Some(format!("row {slot}, bucket {b}: value {v:?} lies outside the bucket"));
                }
            }
        }
        None
    }
}

/// Collects observed magnitude values and turns them into [`Representatives`].
#[derive(Clone, Debug, Default)]
pub struct RepresentativeFitter {
    /// `observed[slot][bucket]`: the values seen.
    observed: Vec<Vec<Vec<u64>>>,
}

impl RepresentativeFitter {
    /// An empty fitter.
    pub fn new() -> Self {
        RepresentativeFitter {
            observed: vec![vec![Vec::new(); MAGNITUDE_CLASSES as usize]; EtFeature::MAGNITUDES.len()],
        }
    }

    /// Records one value of a magnitude feature (ignored for other features).
    pub fn observe(&mut self, feature: EtFeature, value: Option<u64>) {
        let (Some(slot), Some(v)) = (feature.magnitude_slot(), value) else { return };
        if self.observed.is_empty() {
            *self = RepresentativeFitter::new();
        }
        self.observed[slot][Magnitude::bucket(Some(v)) as usize].push(v);
    }

    /// The fitted table: the (lower) median per observed bucket, lower bounds elsewhere.
    pub fn finish(mut self) -> Representatives {
        let mut reps = Representatives::default();
        for (slot, buckets) in self.observed.iter_mut().enumerate() {
            for (b, vals) in buckets.iter_mut().enumerate() {
                if vals.is_empty() {
                    continue;
                }
                vals.sort_unstable();
                reps.values[slot][b] = Some(vals[(vals.len() - 1) / 2]);
            }
        }
        reps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocab_ids_are_stable() {
        assert_eq!(et_cardinalities(), vec![8, 11, 9, 66, 66, 66, 66, 3, 10, 4]);
        assert_eq!(NodeTypeToken::id(NodeType::CompNode), 0);
        assert_eq!(NodeTypeToken::id(NodeType::CommCollNode), 1);
        assert_eq!(NodeTypeToken::id(NodeType::InvalidNode), 7);
        assert_eq!(CollectiveToken::id(Some(CollectiveCommType::AllReduce)), 1);
        assert_eq!(CollectiveToken::id(Some(CollectiveCommType::ReduceScatter)), 8);
        assert_eq!(CollectiveToken::from_id(11), None);
        assert_eq!(CollectiveToken::from_id(0), Some(None));
        assert_eq!(CommKind::Expert.id(), 5);
        assert_eq!(OpTypeToken::id(Some("SLICE")), 4);
        assert_eq!(OpTypeToken::id(Some("conv")), OpTypeToken::OTHER);
        for (i, t) in NodeTypeToken::ALL.iter().enumerate() {
            assert_eq!(NodeTypeToken::from_id(i as u32), Some(*t));
        }
        for f in EtFeature::ALL {
            assert_eq!(EtFeature::ALL[f.index()], f);
        }
    }

    #[test]
    fn magnitude_buckets_and_representatives_round_trip() {
        assert_eq!(Magnitude::bucket(None), 0);
        assert_eq!(Magnitude::bucket(Some(0)), 1);
        assert_eq!(Magnitude::bucket(Some(1)), 2);
        assert_eq!(Magnitude::bucket(Some(3)), 3);
        assert_eq!(Magnitude::bucket(Some(262_144)), 2 + 18);
        assert_eq!(Magnitude::bucket(Some(u64::MAX)), MAGNITUDE_CLASSES - 1);
        let reps = Representatives::default();
        for b in 1..MAGNITUDE_CLASSES {
            let v = reps.value(EtFeature::CommSize, b);
            assert_eq!(Magnitude::bucket(v), b);
        }
        let mut fit = RepresentativeFitter::new();
        for v in [5u64, 6, 7, 1000] {
            fit.observe(EtFeature::NumOps, Some(v));
        }
        let reps = fit.finish();
        assert_eq!(reps.value(EtFeature::NumOps, Magnitude::bucket(Some(5))), Some(6));
        assert_eq!(reps.value(EtFeature::NumOps, Magnitude::bucket(Some(1000))), Some(1000));
        assert_eq!(reps.value(EtFeature::CommSize, Magnitude::bucket(Some(5))), Some(4));
        assert_eq!(reps.value(EtFeature::OpType, 3), None);
    }
}
