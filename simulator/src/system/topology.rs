//! Logical topologies the collective algorithms walk: rings (one per network
//! dimension, or one over all NPUs for the `one*` algorithms) and the binary
//! trees of the double-binary-tree all-reduce.
//!
//! Rank ids are global NPU ids. Dimension 0 varies fastest, as in the network.

/// Which way a ring phase sends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// To the next index.
    Clockwise,
    /// To the previous index.
    Anticlockwise,
}

/// A ring of `size` NPUs: members `base + i * offset`, or an explicit member
/// list (communicator groups, in the order the group file lists them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ring {
    /// Members in the ring.
    pub size: u32,
    /// Id of the member with index 0.
    pub base: u32,
    /// Id distance between consecutive members.
    pub offset: u32,
    /// Index of the owning NPU.
    pub index: u32,
    /// Explicit members (then `base` and `offset` are unused).
    pub members: Option<std::rc::Rc<[u32]>>,
}

impl Ring {
    /// The ring of `id` in a dimension of `size` NPUs whose ids step by `offset`.
    pub fn of(id: u32, size: u32, offset: u32) -> Ring {
        let index = (id % (offset * size)) / offset;
        Ring { size, base: id - index * offset, offset, index, members: None }
    }

    /// The ring over an explicit member list; `None` when `id` is not a member.
    pub fn of_members(id: u32, members: &[u32]) -> Option<Ring> {
        let index = members.iter().position(|&m| m == id)? as u32;
        Some(Ring { size: members.len() as u32, base: 0, offset: 1, index, members: Some(members.into()) })
    }

    fn index_of(&self, node: u32) -> u32 {
        match &self.members {
            Some(m) => m.iter().position(|&x| x == node).unwrap_or(0) as u32,
            None => (node - self.base) / self.offset,
        }
    }

    fn at(&self, index: u32) -> u32 {
        match &self.members {
            Some(m) => m[index as usize],
            None => self.base + index * self.offset,
        }
    }

    /// The member `node` sends to in `dir`.
    pub fn receiver(&self, node: u32, dir: Direction) -> u32 {
        let i = self.index_of(node);
        match dir {
            Direction::Clockwise => self.at((i + 1) % self.size),
            Direction::Anticlockwise => self.at((i + self.size - 1) % self.size),
        }
    }

    /// The member `node` receives from in `dir`.
    pub fn sender(&self, node: u32, dir: Direction) -> u32 {
        let opposite = match dir {
            Direction::Clockwise => Direction::Anticlockwise,
            Direction::Anticlockwise => Direction::Clockwise,
        };
        self.receiver(node, opposite)
    }
}

/// Role of a node in a binary tree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeRole {
    /// The dummy root with one child.
    Root,
    /// A node with two children.
    Intermediate,
    /// A node without children.
    Leaf,
}

/// One NPU's place in a double-binary-tree half.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeNode {
    /// Its role.
    pub role: TreeRole,
    /// Parent id (none for the root).
    pub parent: Option<u32>,
    /// Left child id.
    pub left: Option<u32>,
    /// Right child id.
    pub right: Option<u32>,
}

/// Which of the two trees: the dummy root to the right of a complete subtree
/// (ids by in-order walk, so the root gets the largest id) or to its left.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TreeKind {
    /// Root has the largest id; the subtree is its left child.
    RootMax,
    /// Root has the smallest id; the subtree is its right child.
    RootMin,
}

/// Places `id` in the tree of `size` NPUs with ids `start + k * stride`
/// (in-order positions k). `size` must be a power of two.
pub fn tree_node(kind: TreeKind, size: u32, start: u32, stride: u32, id: u32) -> TreeNode {
    debug_assert!(size.is_power_of_two() && size >= 2);
    let pos = (id - start) / stride;
    let to_id = |p: u32| start + p * stride;
    // The complete subtree holds size-1 in-order positions; its own in-order
    // positions are shifted by one for RootMin (the root comes first).
    let sub_n = size - 1;
    let (root_pos, shift) = match kind {
        TreeKind::RootMax => (sub_n, 0),
        TreeKind::RootMin => (0, 1),
    };
    let sub_root = sub_n / 2; // in-order position of the subtree's root
    if pos == root_pos {
        let child = Some(to_id(sub_root + shift));
        return match kind {
            TreeKind::RootMax => TreeNode { role: TreeRole::Root, parent: None, left: child, right: None },
            TreeKind::RootMin => TreeNode { role: TreeRole::Root, parent: None, left: None, right: child },
        };
    }
    let p = pos - shift; // position inside the complete subtree, 0..sub_n
                         // In a complete tree over in-order positions 0..n, a node at p has height h
                         // where 2^h is the lowest set bit of p+1; children at p ± 2^(h-1).
    let low = (p + 1) & (p + 1).wrapping_neg();
    let parent = if p == sub_root {
        Some(to_id(root_pos))
    } else {
        // The parent sits at p + low or p - low, whichever is at the next height.
        let up = p + low;
        let down = p.wrapping_sub(low);
        let parent_pos = if ((up + 1) & (up + 1).wrapping_neg()) == low * 2 && up < sub_n { up } else { down };
        Some(to_id(parent_pos + shift))
    };
    if low == 1 {
        TreeNode { role: TreeRole::Leaf, parent, left: None, right: None }
    } else {
        let half = low / 2;
        TreeNode {
            role: TreeRole::Intermediate,
            parent,
            left: Some(to_id(p - half + shift)),
            right: Some(to_id(p + half + shift)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ring_neighbours_in_a_dimension() {
        // Dimension 1 of a 4x3 machine: rank 6 is (2, 1); its ring is 2, 6, 10.
        let r = Ring::of(6, 3, 4);
        assert_eq!((r.base, r.index), (2, 1));
        assert_eq!(r.receiver(6, Direction::Clockwise), 10);
        assert_eq!(r.sender(6, Direction::Clockwise), 2);
        assert_eq!(r.receiver(10, Direction::Clockwise), 2);
        assert_eq!(r.receiver(2, Direction::Anticlockwise), 10);
    }

    /// astra-sim-system-layer.md §3.4: N=8 DBMAX has leaves 0,2,4,6; 1 (0,2),
    /// 5 (4,6); 3 (1,5); root 7 with the single child 3. DBMIN: root 0 with the
    /// single child 4; 4 has children 2 and 6.
    #[test]
    fn double_binary_tree_shapes_for_8() {
        let n = |k, id| tree_node(k, 8, 0, 1, id);
        for leaf in [0, 2, 4, 6] {
            assert_eq!(n(TreeKind::RootMax, leaf).role, TreeRole::Leaf);
        }
        assert_eq!(
            n(TreeKind::RootMax, 1),
            TreeNode { role: TreeRole::Intermediate, parent: Some(3), left: Some(0), right: Some(2) }
        );
        assert_eq!(n(TreeKind::RootMax, 5).parent, Some(3));
        assert_eq!(
            n(TreeKind::RootMax, 3),
            TreeNode { role: TreeRole::Intermediate, parent: Some(7), left: Some(1), right: Some(5) }
        );
        assert_eq!(
            n(TreeKind::RootMax, 7),
            TreeNode { role: TreeRole::Root, parent: None, left: Some(3), right: None }
        );
        assert_eq!(n(TreeKind::RootMax, 0).parent, Some(1));
        assert_eq!(
            n(TreeKind::RootMin, 0),
            TreeNode { role: TreeRole::Root, parent: None, left: None, right: Some(4) }
        );
        assert_eq!(
            n(TreeKind::RootMin, 4),
            TreeNode { role: TreeRole::Intermediate, parent: Some(0), left: Some(2), right: Some(6) }
        );
        assert_eq!(n(TreeKind::RootMin, 2).left, Some(1));
        assert_eq!(n(TreeKind::RootMin, 7).role, TreeRole::Leaf);
        assert_eq!(n(TreeKind::RootMin, 7).parent, Some(6));
        // Strided: dimension 1 of 2x4 (ids 1,3,5,7).
        assert_eq!(tree_node(TreeKind::RootMax, 4, 1, 2, 7).role, TreeRole::Root);
        assert_eq!(tree_node(TreeKind::RootMax, 4, 1, 2, 3).left, Some(1));
    }

    #[test]
    fn trees_are_consistent_for_many_sizes() {
        for size in [2u32, 4, 8, 16, 32, 64] {
            for kind in [TreeKind::RootMax, TreeKind::RootMin] {
                let nodes: Vec<TreeNode> = (0..size).map(|i| tree_node(kind, size, 0, 1, i)).collect();
                assert_eq!(nodes.iter().filter(|n| n.role == TreeRole::Root).count(), 1);
                for (i, n) in nodes.iter().enumerate() {
                    for c in [n.left, n.right].into_iter().flatten() {
                        assert_eq!(nodes[c as usize].parent, Some(i as u32), "size {size} {kind:?} node {i}");
                    }
                    if let Some(p) = n.parent {
                        let pn = nodes[p as usize];
                        assert!(pn.left == Some(i as u32) || pn.right == Some(i as u32));
                    }
                }
            }
        }
    }
}
