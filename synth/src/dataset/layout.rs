//! Which parallelism dimension a communication runs over: the rank layout, the
//! comm-group file, and the per-rank context that resolves `pg_name`s to a
//! [`CommKind`] (tokenizing) and back (detokenizing).
//!
//! # Rank layout
//!
//! STG numbers ranks with the data-parallel coordinate fastest, then tensor,
//! then sequence (STG's `cp`), then expert (MoE only), then pipeline stage:
//! `rank = dp_i + dp·(tp_i + tp·(sp_i + sp·(ep_i + ep·stage)))`. For a non-MoE
//! model STG multiplies `tp` by `ep` (`--ep 2` behaves exactly like `tp×2`), so
//! [`ParallelLayout::from_degrees`] folds `ep` into the tensor degree there.
//!
//! # Resolving a group
//!
//! A group from the comm-group file (`{"<pg_name>": [ranks]}`, ASTRA-sim's
//! `--comm-group-configuration`) gets its kind from the coordinates its members
//! share:
//!
//! 1. two or more members: the coordinates that vary across the members. One
//!    dimension → that kind (DATA, TENSOR, SEQUENCE, EXPERT, or PIPELINE for a
//!    collective over stages); several → MIXED.
//! 2. one member (STG writes size-1 groups for degree-1 dimensions): the
//!    group's position in the file. STG writes the groups of one dimension
//!    together, dp first, then tp, then cp, then ep: `R/dp` groups, then `R/tp`,
//!    `R/sp`, `R/ep`. If the file's group count matches that scheme (with or
//!    without the ep block), the position gives the dimension; otherwise the
//!    group is UNKNOWN.
//! 3. without a layout, every named group is UNKNOWN.
//!
//! A collective without `pg_name` runs over all ranks: WORLD. SEND / RECV are
//! PIPELINE; where the peer sits is the separate [`PeerStage`] feature.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::error::{DatasetError, Result};
use super::vocab::{CommKind, PeerStage};

/// Parallel degrees of a workload, as they shape the rank numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ParallelLayout {
    /// Data-parallel degree.
    pub dp: u32,
    /// Tensor-parallel degree as the graph sees it (tp·ep for non-MoE STG models).
    pub tp: u32,
    /// Sequence / context-parallel degree.
    pub sp: u32,
    /// Expert-parallel degree (1 for non-MoE models).
    pub ep: u32,
    /// Pipeline stages.
    pub pp: u32,
    /// Whether the comm-group file has a block of expert groups (STG writes
    /// one for MoE models, even at ep = 1).
    pub ep_groups: bool,
}

/// The most ranks a layout may have (2^20): one trace file per rank is
/// written and simulated, and rank ids must fit 32 bits with room to spare.
pub const MAX_RANKS: u32 = 1 << 20;

/// The five coordinates of a rank, in numbering order.
const DIMS: [CommKind; 5] =
    [CommKind::Data, CommKind::Tensor, CommKind::Sequence, CommKind::Expert, CommKind::Pipeline];

impl ParallelLayout {
    /// The layout of an STG workload from its flags: for MoE (`moe = true`) the
    /// expert degree is its own dimension; otherwise it multiplies tp.
    /// Degrees of 0 are an error naming the flag.
    pub fn from_degrees(dp: u32, tp: u32, sp: u32, ep: u32, pp: u32, moe: bool) -> Result<Self> {
        for (name, v) in [("dp", dp), ("tp", tp), ("sp", sp), ("ep", ep), ("pp", pp)] {
            if v == 0 {
                return Err(DatasetError::mismatch("parallel layout", format!("{name} = 0, expected a degree >= 1")));
            }
        }
        let ranks = [dp, tp, sp, ep, pp].iter().map(|&v| u64::from(v)).product::<u64>();
        if ranks > u64::from(MAX_RANKS) {
            return Err(DatasetError::mismatch(
                "parallel layout",
                format!("dp·tp·sp·ep·pp = {dp}·{tp}·{sp}·{ep}·{pp} = {ranks} ranks, at most {MAX_RANKS} are supported"),
            ));
        }
        let (tp, ep) = if moe { (tp, ep) } else { (tp * ep, 1) };
        Ok(ParallelLayout { dp, tp, sp, ep, pp, ep_groups: moe })
    }

    fn degrees(&self) -> [u32; 5] {
        [self.dp, self.tp, self.sp, self.ep, self.pp]
    }

    /// Total ranks: dp·tp·sp·ep·pp.
    pub fn ranks(&self) -> u32 {
        self.degrees().iter().product()
    }

    /// Ranks per pipeline stage: dp·tp·sp·ep.
    pub fn ranks_per_stage(&self) -> u32 {
        self.ranks() / self.pp
    }

    /// A rank's pipeline stage.
    pub fn stage(&self, rank: u32) -> u32 {
        rank / self.ranks_per_stage()
    }

    /// A rank's coordinates (dp, tp, sp, ep, stage).
    pub fn coords(&self, rank: u32) -> [u32; 5] {
        let mut out = [0u32; 5];
        let mut r = rank;
        for (o, d) in out.iter_mut().zip(self.degrees()) {
            *o = r % d;
            r /= d;
        }
        out
    }

    /// The rank with the same in-stage offset as `rank`, in `stage`.
    pub fn rank_in_stage(&self, rank: u32, stage: u32) -> u32 {
        let rps = self.ranks_per_stage();
        (rank % rps) + stage * rps
    }
}

/// The comm-group file: groups in file order, each a `pg_name` and its ranks.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommGroups {
    /// `(pg_name, ranks)` in file order.
    pub groups: Vec<(String, Vec<u32>)>,
}

impl CommGroups {
    /// Reads a comm-group JSON file (`{"<pg_name>": [ranks], ...}`).
    pub fn read(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DatasetError::io(path, "cannot read", e))?;
        CommGroups::parse(&text, path)
    }

    /// Parses comm-group JSON; `path` is only used in errors.
    pub fn parse(text: &str, path: &Path) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| DatasetError::format(path, format!("line {}", e.line()), e.to_string()))?;
        let serde_json::Value::Object(map) = value else {
            return Err(DatasetError::format(path, "top level", "expected an object {\"<pg_name>\": [ranks]}"));
        };
        let mut groups = Vec::with_capacity(map.len());
        for (name, members) in map {
            let list = members.as_array().ok_or_else(|| {
                DatasetError::format(path, format!("group {name:?}"), "expected a list of rank numbers")
            })?;
            let ranks = list
                .iter()
                .map(|v| v.as_u64().and_then(|r| u32::try_from(r).ok()))
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| {
                    DatasetError::format(path, format!("group {name:?}"), "expected non-negative rank numbers")
                })?;
            groups.push((name, ranks));
        }
        Ok(CommGroups { groups })
    }

    /// The ranks of a group, by `pg_name`.
    pub fn members(&self, name: &str) -> Option<&[u32]> {
        self.groups.iter().find(|(n, _)| n == name).map(|(_, r)| r.as_slice())
    }
}

/// Resolves a group's kind (see the module docs).
fn group_kind(layout: &ParallelLayout, groups: &CommGroups, position: usize) -> CommKind {
    let members = &groups.groups[position].1;
    if members.is_empty() || members.iter().any(|&r| r >= layout.ranks()) {
        return CommKind::Unknown;
    }
    if members.len() > 1 {
        let coords: Vec<[u32; 5]> = members.iter().map(|&r| layout.coords(r)).collect();
        let varying: Vec<CommKind> =
            (0..5).filter(|&d| coords.iter().any(|c| c[d] != coords[0][d])).map(|d| DIMS[d]).collect();
        return match varying.as_slice() {
            [one] => *one,
            [] => CommKind::Unknown, // repeated members
            _ => CommKind::Mixed,
        };
    }
    // A single member: the position in STG's dp / tp / cp / ep block order.
    let r = layout.ranks();
    let mut blocks =
        vec![(CommKind::Data, r / layout.dp), (CommKind::Tensor, r / layout.tp), (CommKind::Sequence, r / layout.sp)];
    if layout.ep_groups {
        blocks.push((CommKind::Expert, r / layout.ep));
    }
    let total: u32 = blocks.iter().map(|b| b.1).sum();
    if total as usize != groups.groups.len() {
        return CommKind::Unknown;
    }
    let mut start = 0usize;
    for (kind, count) in blocks {
        if position < start + count as usize {
            return kind;
        }
        start += count as usize;
    }
    CommKind::Unknown
}

/// What tokenizing and detokenizing one rank's trace needs to know about its
/// place in the workload: the rank, the layout and the comm groups.
#[derive(Clone, Debug, Default)]
pub struct RankContext {
    rank: u32,
    layout: Option<ParallelLayout>,
    groups: CommGroups,
    kind_of: HashMap<String, CommKind>,
    other_stage: Option<u32>,
}

impl RankContext {
    /// A context for `rank`. Without a layout, named groups resolve to UNKNOWN
    /// and peers to [`PeerStage::Other`].
    pub fn new(rank: u32, layout: Option<ParallelLayout>, groups: Option<CommGroups>) -> Self {
        let groups = groups.unwrap_or_default();
        let mut kind_of = HashMap::with_capacity(groups.groups.len());
        for (i, (name, _)) in groups.groups.iter().enumerate() {
            let kind = match &layout {
                Some(l) => group_kind(l, &groups, i),
                None => CommKind::Unknown,
            };
            kind_of.entry(name.clone()).or_insert(kind);
        }
        RankContext { rank, layout, groups, kind_of, other_stage: None }
    }

    /// This context, writing [`PeerStage::Other`] peers in `stage` (the
    /// stage this rank's stage exchanges its non-neighbour messages with,
    /// such as the output head's stage and the last one) instead of the
    /// default of [`Self::peer_for`].
    pub fn with_other_peer_stage(mut self, stage: u32) -> Self {
        self.other_stage = Some(stage);
        self
    }

    /// A context knowing nothing: rank 0, no layout, no groups.
    pub fn standalone() -> Self {
        RankContext::default()
    }

    /// The rank.
    pub fn rank(&self) -> u32 {
        self.rank
    }

    /// The layout, when known.
    pub fn layout(&self) -> Option<&ParallelLayout> {
        self.layout.as_ref()
    }

    /// The comm groups (empty when none were given).
    pub fn groups(&self) -> &CommGroups {
        &self.groups
    }

    /// The rank's pipeline stage, when the layout is known.
    pub fn stage(&self) -> Option<u32> {
        self.layout.as_ref().map(|l| l.stage(self.rank))
    }

    /// The kind of a collective's `pg_name` (WORLD when absent).
    pub fn kind_of_group(&self, pg_name: Option<&str>) -> CommKind {
        match pg_name {
            None => CommKind::World,
            Some(name) => self.kind_of.get(name).copied().unwrap_or(CommKind::Unknown),
        }
    }

    /// The `pg_name` to write for a collective of `kind`: the first group of
    /// that kind that holds this rank. `None` (no `pg_name`, i.e. WORLD) for
    /// WORLD, MIXED, UNKNOWN, NONE, or when no such group exists.
    pub fn group_for(&self, kind: CommKind) -> Option<&str> {
        if matches!(kind, CommKind::None | CommKind::World | CommKind::Mixed | CommKind::Unknown) {
            return None;
        }
        self.groups
            .groups
            .iter()
            .find(|(name, members)| self.kind_of.get(name) == Some(&kind) && members.contains(&self.rank))
            .map(|(name, _)| name.as_str())
    }

    /// Where a point-to-point peer sits relative to this rank's stage.
    pub fn peer_stage(&self, peer: u32) -> PeerStage {
        let Some(l) = &self.layout else { return PeerStage::Other };
        if peer >= l.ranks() {
            return PeerStage::Other;
        }
        let (me, other) = (l.stage(self.rank) as i64, l.stage(peer) as i64);
        match other - me {
            1 => PeerStage::Next,
            -1 => PeerStage::Prev,
            _ => PeerStage::Other,
        }
    }

    /// The peer rank to write for a point-to-point node: the rank with the same
    /// in-stage offset in the next / previous stage (wrapping around), and for
    /// OTHER the stage set by [`Self::with_other_peer_stage`] or else the
    /// first stage after the next one (going round) that is adjacent to
    /// neither side, falling back to the rank itself. Without a layout the
    /// peer is rank 0.
    pub fn peer_for(&self, rel: PeerStage) -> u32 {
        let Some(l) = &self.layout else { return 0 };
        let (s, pp) = (l.stage(self.rank), l.pp);
        let stage = match (rel, self.other_stage.filter(|&t| t < pp)) {
            (PeerStage::Next, _) => (s + 1) % pp,
            (PeerStage::Prev, _) => (s + pp - 1) % pp,
            (PeerStage::Other, Some(t)) => t,
            (PeerStage::None | PeerStage::Other, _) => {
                (2..pp).map(|k| (s + k) % pp).find(|&t| t + 1 != s && t != s + 1 && t != s).unwrap_or(s)
            }
        };
        l.rank_in_stage(self.rank, stage)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w000_groups() -> CommGroups {
        let text = r#"{"1": [0], "2": [1], "3": [2], "4": [3], "5": [0, 1], "6": [2, 3], "7": [0], "8": [1], "9": [2], "10": [3]}"#;
        CommGroups::parse(text, Path::new("workload.json")).unwrap()
    }

    #[test]
    fn groups_resolve_by_members_and_by_position() {
        let layout = ParallelLayout::from_degrees(1, 2, 1, 1, 2, false).unwrap();
        let ctx = RankContext::new(2, Some(layout), Some(w000_groups()));
        assert_eq!(ctx.kind_of_group(Some("5")), CommKind::Tensor);
        assert_eq!(ctx.kind_of_group(Some("1")), CommKind::Data);
        assert_eq!(ctx.kind_of_group(Some("9")), CommKind::Sequence);
        assert_eq!(ctx.kind_of_group(Some("77")), CommKind::Unknown);
        assert_eq!(ctx.kind_of_group(None), CommKind::World);
        assert_eq!(ctx.group_for(CommKind::Tensor), Some("6"));
        assert_eq!(ctx.group_for(CommKind::Data), Some("3"));
        assert_eq!(ctx.group_for(CommKind::Sequence), Some("9"));
        assert_eq!(ctx.group_for(CommKind::Expert), None);
        assert_eq!(ctx.stage(), Some(1));
        assert_eq!(ctx.peer_stage(0), PeerStage::Prev);
        assert_eq!(ctx.peer_for(PeerStage::Prev), 0);
        let r0 = RankContext::new(1, Some(layout), Some(w000_groups()));
        assert_eq!(r0.peer_stage(3), PeerStage::Next);
        assert_eq!(r0.peer_for(PeerStage::Next), 3);
        let none = RankContext::new(0, None, Some(w000_groups()));
        assert_eq!(none.kind_of_group(Some("5")), CommKind::Unknown);
        assert_eq!(none.peer_stage(3), PeerStage::Other);
    }

    #[test]
    fn layouts_fold_ep_into_tp_for_dense_models() {
        let dense = ParallelLayout::from_degrees(1, 2, 1, 2, 2, false).unwrap();
        assert_eq!((dense.tp, dense.ep, dense.ranks()), (4, 1, 8));
        let moe = ParallelLayout::from_degrees(2, 2, 1, 2, 2, true).unwrap();
        assert_eq!(moe.coords(13), [1, 0, 0, 1, 1]);
        assert_eq!(moe.stage(13), 1);
        assert!(ParallelLayout::from_degrees(0, 1, 1, 1, 1, false).is_err());
        // Products that overflow 32 bits (or exceed the rank limit) are errors, not wrapped counts.
        let e = ParallelLayout::from_degrees(1_073_741_825, 4, 1, 1, 1, false).unwrap_err().to_string();
        assert!(e.contains("4294967300 ranks"), "{e}");
        assert!(ParallelLayout::from_degrees(1 << 10, 1 << 10, 1, 1, 1, false).is_ok());
        assert!(ParallelLayout::from_degrees(1 << 10, 1 << 10, 1, 2, 1, true).is_err());
        let four = ParallelLayout::from_degrees(1, 1, 1, 1, 4, false).unwrap();
        let ctx = RankContext::new(3, Some(four), None);
        let other = ctx.peer_for(PeerStage::Other);
        assert_eq!(ctx.peer_stage(other), PeerStage::Other);
        assert_eq!(other, 1);
        // The output head on stage 0 of 4 exchanges with the last stage, which
        // the default would not pick.
        assert_eq!(ctx.clone().with_other_peer_stage(0).peer_for(PeerStage::Other), 0);
        assert_eq!(RankContext::new(0, Some(four), None).with_other_peer_stage(3).peer_for(PeerStage::Other), 3);
        assert_eq!(ctx.clone().with_other_peer_stage(0).peer_for(PeerStage::Next), 0);
        assert_eq!(ctx.with_other_peer_stage(7).peer_for(PeerStage::Other), 1, "a stage that does not exist");
    }

    #[test]
    fn bad_group_files_name_the_problem() {
        let err = CommGroups::parse(r#"{"1": [0, -1]}"#, Path::new("g.json")).unwrap_err().to_string();
        assert!(err.contains("g.json") && err.contains("\"1\""), "{err}");
        assert!(CommGroups::parse("[1]", Path::new("g.json")).is_err());
        assert!(CommGroups::parse("{", Path::new("g.json")).is_err());
    }
}
