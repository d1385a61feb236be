//! Weisfeiler–Lehman colours that outlive one encoder pass.
//!
//! Sampling runs the edge encoder over the whole growing graph at every
//! denoising step (16 per layer for TPU Tile), and the two pooled encoders
//! (layer sizes, node attributes) over it once per layer. Between two
//! passes only the noisy edges into the newest layer change, or one layer
//! is added. A node's state after k rounds depends only on its k-hop
//! neighbourhood, so most (colour, depth) states of a pass were already
//! computed by an earlier one: on the reference-size TPU Tile checkpoint,
//! 32 graphs at 134 nodes, the 368 edge passes see 3.5 million distinct
//! depth-1..4 colours, of which 1.2 million are new to the run (2.9× fewer;
//! 2.4× counting only the colours of the pass before).
//!
//! [`ColourCache`] keeps the colours of a run: each (depth, colour) is a
//! row of a table that the encoder fills once ([`EncoderTables`], filled by
//! `BiMPNNEncoder::f_forward_cached`), keyed as [`super::compress`] keys
//! colours (its own row at depth k − 1 and the sorted rows of its
//! predecessors and successors), with the depth-0 key a stable graph id and
//! the category row. [`ColourCache::pass`] colours one pass's nodes and
//! lists only the colours it has not seen, with their messages in rows of
//! the tables; the encoder computes just those. When a table grows past
//! three times the colours of the last pass (plus 1,024 rows), the cache
//! keeps only those colours ([`ColourCache::compact`]), moved to the front
//! of the same tables, so memory stays within a small multiple of one pass
//! and tables are seldom reallocated (fresh memory costs page faults).
//! Keys and rows are deterministic (rows in order of first appearance,
//! compaction keeps their order).

use rustc_hash::FxHashMap;

use tch::{Device, Kind, TchError, Tensor};

use super::compress::Adjacency;
use super::layers::BiMPNNEncoder;

/// The colours one pass has not seen before, and every node's final row.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CachedPass {
    /// `K`, the number of message-passing rounds.
    pub depth: usize,
    /// For depth `0..=K`: the row of the pass's first new colour (the
    /// table's length before the pass).
    pub first_new: Vec<i64>,
    /// For depth `0..=K`: how many colours are new.
    pub num_new: Vec<i64>,
    /// A representative node (pass-local id) of each new depth-0 colour.
    pub rep0: Vec<i64>,
    /// For depth `k = 1..=K` (index `k − 1`): each new colour's own row at depth k − 1.
    pub self_row: Vec<Vec<i64>>,
    /// For depth k: forward message sources (rows at depth k − 1), one per predecessor.
    pub fwd_src: Vec<Vec<i64>>,
    /// Targets of `fwd_src`: the index of the new colour within the pass's new ones.
    pub fwd_dst: Vec<Vec<i64>>,
    /// For depth k: backward message sources (rows at depth k − 1), one per successor.
    pub bwd_src: Vec<Vec<i64>>,
    /// Targets of `bwd_src`.
    pub bwd_dst: Vec<Vec<i64>>,
    /// Each node's row at depth K.
    pub node_row: Vec<i64>,
}

/// The colour keys of one sampling run, per depth, and the rows they name.
#[derive(Debug)]
pub struct ColourCache {
    depth: usize,
    /// Per depth `0..=K`: key → row.
    rows: Vec<FxHashMap<Vec<i64>, i64>>,
    /// Per depth: the rows the last pass used, ascending.
    last_used: Vec<Vec<i64>>,
    /// Compaction starts above `factor × used + slack` rows at some depth.
    factor: usize,
    slack: usize,
}

impl ColourCache {
    /// An empty cache for an encoder of `depth` rounds.
    pub fn new(depth: usize) -> Self {
        ColourCache::with_limits(depth, 3, 1024)
    }

    /// A cache that compacts above `factor × used + slack` rows (tests use
    /// small limits to exercise compaction).
    pub fn with_limits(depth: usize, factor: usize, slack: usize) -> Self {
        ColourCache {
            depth,
            rows: vec![FxHashMap::default(); depth + 1],
            last_used: vec![Vec::new(); depth + 1],
            factor,
            slack,
        }
    }

    /// The encoder's number of rounds.
    pub fn depth(&self) -> usize {
        self.depth
    }

    /// Rows in the table of each depth.
    pub fn num_rows(&self) -> Vec<usize> {
        self.rows.iter().map(FxHashMap::len).collect()
    }

    /// Colours the `n = group.len()` nodes with category rows `x` (`[n][f]`
    /// flattened), stable graph ids `group` (the same id in every pass for
    /// the same graph and conditioning row) and edges `src → dst` (pass-local
    /// ids), adding the colours it has not seen.
    ///
    /// # Panics
    /// If the lengths disagree or an edge names a node outside `0..n`.
    pub fn pass(&mut self, x: &[i64], f: usize, group: &[i64], src: &[i64], dst: &[i64]) -> CachedPass {
        let n = group.len();
        assert_eq!(x.len(), n * f, "x holds {} values for {n} nodes of {f} features", x.len());
        assert_eq!(src.len(), dst.len(), "edge lists of different lengths");
        let adj = Adjacency::new(n, src, dst);
        let depth = self.depth;
        let mut out = CachedPass { depth, ..Default::default() };
        let mut used: Vec<Vec<bool>> = Vec::with_capacity(depth + 1);
        let mut row = vec![0i64; n];
        let mut key: Vec<i64> = Vec::new();
        let mut tmp: Vec<i64> = Vec::new();
        for k in 0..=depth {
            let table = &mut self.rows[k];
            let first = table.len() as i64;
            out.first_new.push(first);
            let (mut self_row, mut fs, mut fd, mut bs, mut bd) = (vec![], vec![], vec![], vec![], vec![]);
            let mut next = vec![0i64; n];
            for v in 0..n {
                let (ps, ss) = (adj.preds(v), adj.succs(v));
                if k == 0 {
                    key.clear();
                    key.push(group[v]);
                    key.extend_from_slice(&x[v * f..(v + 1) * f]);
                } else {
                    adj.refine_key(v, &row, |c| c as i64, &mut key, &mut tmp);
                }
                next[v] = match table.get(&key) {
                    Some(&r) => r,
                    None => {
                        let r = table.len() as i64;
                        table.insert(key.clone(), r);
                        let new = r - first;
                        if k == 0 {
                            out.rep0.push(v as i64);
                        } else {
                            self_row.push(row[v]);
                            for &u in ps {
                                fs.push(row[u]);
                                fd.push(new);
                            }
                            for &w in ss {
                                bs.push(row[w]);
                                bd.push(new);
                            }
                        }
                        r
                    }
                };
            }
            out.num_new.push(table.len() as i64 - first);
            if k > 0 {
                out.self_row.push(self_row);
                out.fwd_src.push(fs);
                out.fwd_dst.push(fd);
                out.bwd_src.push(bs);
                out.bwd_dst.push(bd);
            }
            let mut u = vec![false; table.len()];
            for &r in &next {
                u[r as usize] = true;
            }
            used.push(u);
            row = next;
        }
        self.last_used =
            used.iter().map(|u| u.iter().enumerate().filter(|(_, &b)| b).map(|(r, _)| r as i64).collect()).collect();
        out.node_row = row;
        out
    }

    /// When a table has grown past its limit, keeps only the colours the
    /// last pass used, renumbered in their order, and returns the kept rows
    /// per depth (ascending) for the tables to keep the same rows.
    pub fn compact(&mut self) -> Option<Vec<Vec<i64>>> {
        let over = self.rows.iter().zip(&self.last_used).any(|(t, u)| t.len() > self.factor * u.len() + self.slack);
        if !over {
            return None;
        }
        let keep = std::mem::take(&mut self.last_used);
        let mut remap_prev: Vec<i64> = Vec::new();
        for (k, kept) in keep.iter().enumerate() {
            let old = std::mem::take(&mut self.rows[k]);
            let mut remap = vec![-1i64; old.len()];
            for (new, &r) in kept.iter().enumerate() {
                remap[r as usize] = new as i64;
            }
            let mut table = FxHashMap::with_capacity_and_hasher(kept.len(), Default::default());
            for (mut key, r) in old {
                let nr = remap[r as usize];
                if nr < 0 {
                    continue;
                }
                if k > 0 {
                    // Own row, count, then predecessor and successor rows:
                    // all used by the last pass, so all kept; the remap is
                    // increasing, so the lists stay sorted.
                    key[0] = remap_prev[key[0] as usize];
                    for c in key.iter_mut().skip(2) {
                        *c = remap_prev[*c as usize];
                    }
                }
                table.insert(key, nr);
            }
            self.rows[k] = table;
            remap_prev = remap;
        }
        self.last_used = keep.iter().map(|k| (0..k.len() as i64).collect()).collect();
        Some(keep)
    }
}

/// One table of rows per depth, `[rows, width]` each, grown by appending
/// (capacity doubles, so appends copy each row O(1) times).
#[derive(Debug)]
pub struct EncoderTables {
    tables: Vec<Tensor>,
    len: Vec<i64>,
    /// Per depth below K, the encoder's stacked weights and biases for the
    /// rows' product (constant over a run, stacked by the first pass).
    pub(crate) stacked: Vec<(Tensor, Tensor)>,
}

impl EncoderTables {
    /// Empty tables of the given widths (one per depth) on `device`.
    pub fn new(widths: &[i64], device: Device) -> Result<Self, TchError> {
        let tables =
            widths.iter().map(|&w| Tensor::f_zeros([0, w], (Kind::Float, device))).collect::<Result<Vec<_>, _>>()?;
        Ok(EncoderTables { len: vec![0; tables.len()], tables, stacked: Vec::new() })
    }

    /// Number of depths.
    pub fn depths(&self) -> usize {
        self.tables.len()
    }

    /// The filled rows of depth `k`.
    pub fn rows(&self, k: usize) -> Result<Tensor, TchError> {
        self.tables[k].f_narrow(0, 0, self.len[k])
    }

    /// Adds `n` rows to depth `k` at row `expect` (the pass's `first_new`)
    /// and returns them (`[n, width]`, uninitialized) for the encoder to
    /// write, or reports a table out of step with its cache.
    pub fn push_rows(&mut self, k: usize, expect: i64, n: i64) -> Result<Tensor, TchError> {
        let len = self.len[k];
        if expect != len {
            return Err(TchError::Shape(format!("table {k} has {len} rows, the colour cache expects {expect}")));
        }
        if len + n > self.tables[k].size()[0] {
            self.reserve(k, len + n)?;
        }
        self.len[k] = len + n;
        self.tables[k].f_narrow(0, len, n)
    }

    /// Moves depth `k`'s rows to a table of at least twice `rows` rows
    /// (rows past the filled ones are left uninitialized).
    fn reserve(&mut self, k: usize, rows: i64) -> Result<(), TchError> {
        let (len, old) = (self.len[k], &self.tables[k]);
        let grown = Tensor::f_empty([(2 * rows).max(64), old.size()[1]], (old.kind(), old.device()))?;
        grown.f_narrow(0, 0, len)?.f_copy_(&old.f_narrow(0, 0, len)?)?;
        self.tables[k] = grown;
        Ok(())
    }

    /// Keeps the rows [`ColourCache::compact`] kept, moved to the front of
    /// the same tables (no new table: fresh memory costs page faults).
    pub fn compact(&mut self, keep: &[Vec<i64>]) -> Result<(), TchError> {
        for (k, rows) in keep.iter().enumerate() {
            let idx = Tensor::from_slice(rows).to_device(self.tables[k].device());
            let kept = self.rows(k)?.f_index_select(0, &idx)?;
            self.tables[k].f_narrow(0, 0, rows.len() as i64)?.f_copy_(&kept)?;
            self.len[k] = rows.len() as i64;
        }
        Ok(())
    }
}

/// One run's [`ColourCache`] and the [`EncoderTables`] its rows index.
#[derive(Debug)]
pub struct EncoderCache {
    /// The colour keys.
    pub colours: ColourCache,
    /// The encoder's rows.
    pub tables: EncoderTables,
}

impl EncoderCache {
    /// An empty cache for `encoder` whose final rows are its hidden
    /// activations (`finish` the identity), on `device`.
    pub fn new(encoder: &BiMPNNEncoder, device: Device) -> Result<Self, TchError> {
        let widths = encoder.cached_table_widths(encoder.hidden_size());
        Ok(EncoderCache { colours: ColourCache::new(encoder.depth()), tables: EncoderTables::new(&widths, device)? })
    }

    /// Drops the colours the last pass did not use, from both, once the
    /// tables have grown past the limit ([`ColourCache::compact`]).
    pub fn compact(&mut self) -> Result<(), TchError> {
        match self.colours.compact() {
            Some(keep) => self.tables.compact(&keep),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Twice the same pass: nothing new the second time. One more edge:
    /// new colours only within its reach, depth by depth.
    #[test]
    fn repeated_passes_reuse_colours_and_a_new_edge_recolours_only_its_reach() {
        // A chain 0 → 1 → 2 → 3 → 4, all category 5 but the ends.
        let x = [1, 5, 5, 5, 2];
        let group = [7; 5];
        let (src, dst) = ([0, 1, 2, 3], [1, 2, 3, 4]);
        let mut c = ColourCache::new(2);
        let first = c.pass(&x, 1, &group, &src, &dst);
        assert_eq!(first.num_new, vec![3, 5, 5]);
        assert_eq!(first.first_new, vec![0, 0, 0]);
        assert_eq!(first.rep0, vec![0, 1, 4]);
        let again = c.pass(&x, 1, &group, &src, &dst);
        assert_eq!(again.num_new, vec![0, 0, 0]);
        assert_eq!(again.node_row, first.node_row);
        // 0 → 4 as well: depth 1 changes at 0 and 4, depth 2 also at 1 and 3.
        let more = c.pass(&x, 1, &group, &[0, 1, 2, 3, 0], &[1, 2, 3, 4, 4]);
        assert_eq!(more.num_new, vec![0, 2, 4]);
        assert_eq!(more.first_new, vec![3, 5, 5]);
        // The new depth-2 colour of node 2 is not new: its 1-hop colours are unchanged.
        assert_eq!(more.node_row[2], first.node_row[2]);
        // Messages name rows at the depth below, targets index the new colours.
        assert_eq!(more.self_row[0].len(), 2);
        assert!(more.fwd_dst[1].iter().all(|&d| d < 4));
        assert!(more.fwd_src[1].iter().all(|&s| s < 7));
        // Another group is another colour from depth 0 on.
        let other = c.pass(&x, 1, &[8; 5], &src, &dst);
        assert_eq!(other.num_new, vec![3, 5, 5]);
    }

    /// Compaction keeps the last pass's colours, renumbered, and a pass
    /// after it sees those colours as known.
    #[test]
    fn compaction_keeps_the_last_pass_and_its_keys() {
        let x = [1, 5, 5, 5, 2];
        let group = [0; 5];
        let mut c = ColourCache::with_limits(2, 1, 0);
        let _ = c.pass(&x, 1, &group, &[0, 1, 2, 3], &[1, 2, 3, 4]);
        let last = c.pass(&x, 1, &group, &[0, 1, 2, 3, 0], &[1, 2, 3, 4, 4]);
        let keep = c.compact().expect("over the limit");
        assert_eq!(keep.iter().map(Vec::len).collect::<Vec<_>>(), vec![3, 5, 5]);
        assert_eq!(c.num_rows(), vec![3, 5, 5]);
        // Renumbered in order: the last pass's final rows map through `keep`.
        let again = c.pass(&x, 1, &group, &[0, 1, 2, 3, 0], &[1, 2, 3, 4, 4]);
        assert_eq!(again.num_new, vec![0, 0, 0]);
        for (v, &r) in last.node_row.iter().enumerate() {
            assert_eq!(keep[2][again.node_row[v] as usize], r);
        }
        assert!(c.compact().is_none(), "nothing new, nothing to drop");
    }

    #[test]
    fn tables_grow_append_and_compact() {
        let mut t = EncoderTables::new(&[2], Device::Cpu).unwrap();
        for i in 0..5 {
            let _ = t.push_rows(0, 30 * i, 30).unwrap().fill_(i as f64);
        }
        assert_eq!(t.rows(0).unwrap().size(), vec![150, 2]);
        assert!(t.push_rows(0, 10, 1).is_err(), "the cache expects row 10, the table has 150");
        t.compact(&[vec![0, 31, 149]]).unwrap();
        let v = Vec::<f32>::try_from(t.rows(0).unwrap().select(1, 0)).unwrap();
        assert_eq!(v, vec![0.0, 1.0, 4.0]);
    }
}
