//! Double-binary-tree all-reduce: reduce up one tree, broadcast down it. Each
//! stream alternates between the two trees (see [`super::super::topology`]).
//! Every message is the whole chunk. Ranks finish at different times: the root
//! as the broadcast starts, intermediates as they forward, leaves last.

use super::super::topology::{TreeNode, TreeRole};
use super::{Action, AlgoEvent};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Begin,
    SendingDataToParent,
    WaitingDataFromParent,
    End,
    WaitingForTwoChildData,
    WaitingForOneChildData,
    SendingDataToChilds,
}

/// State of one double-binary-tree phase on one rank.
pub(crate) struct DoubleBinaryTree {
    node: TreeNode,
    size: u64,
    pub(crate) final_size: u64,
    state: State,
    reductions: u32,
}

impl DoubleBinaryTree {
    /// This rank's part of an all-reduce of `data_size` bytes over one tree.
    pub(crate) fn new(node: TreeNode, data_size: u64) -> DoubleBinaryTree {
        DoubleBinaryTree { node, size: data_size, final_size: data_size, state: State::Begin, reductions: 0 }
    }

    pub(crate) fn run(&mut self, ev: AlgoEvent, out: &mut Vec<Action>) {
        use State::*;
        let size = self.size;
        let parent = self.node.parent.unwrap_or(0);
        let (left, right) = (self.node.left, self.node.right);
        match (self.node.role, self.state) {
            (TreeRole::Leaf, Begin) => {
                out.push(Action::Bundle { processed: false, size });
                self.state = SendingDataToParent;
            }
            (TreeRole::Leaf, SendingDataToParent) => {
                out.push(Action::Send { dst: parent, size });
                out.push(Action::Recv { src: parent, size });
                self.state = WaitingDataFromParent;
            }
            (TreeRole::Leaf, WaitingDataFromParent) => {
                out.push(Action::Bundle { processed: false, size });
                self.state = End;
            }
            (TreeRole::Leaf, End) => out.push(Action::Exit),
            (TreeRole::Intermediate, Begin) => {
                self.state = WaitingForTwoChildData;
                for child in [left, right].into_iter().flatten() {
                    out.push(Action::Recv { src: child, size });
                }
            }
            (TreeRole::Intermediate, WaitingForTwoChildData) if ev == AlgoEvent::PacketReceived => {
                out.push(Action::Bundle { processed: true, size });
                self.state = WaitingForOneChildData;
            }
            (TreeRole::Intermediate, WaitingForOneChildData) if ev == AlgoEvent::PacketReceived => {
                out.push(Action::Bundle { processed: true, size });
                self.state = SendingDataToParent;
            }
            (TreeRole::Intermediate, _) if self.reductions < 1 && ev == AlgoEvent::General => {
                self.reductions += 1;
            }
            (TreeRole::Intermediate, SendingDataToParent) => {
                self.state = WaitingDataFromParent;
                out.push(Action::Send { dst: parent, size });
                out.push(Action::Recv { src: parent, size });
            }
            (TreeRole::Intermediate, WaitingDataFromParent) if ev == AlgoEvent::PacketReceived => {
                out.push(Action::Bundle { processed: true, size });
                self.state = SendingDataToChilds;
            }
            (TreeRole::Intermediate, SendingDataToChilds) => {
                for child in [left, right].into_iter().flatten() {
                    out.push(Action::Send { dst: child, size });
                }
                out.push(Action::Exit);
            }
            (TreeRole::Root, Begin) => {
                self.state = WaitingForOneChildData;
                let child = left.or(right).unwrap_or(0);
                out.push(Action::Recv { src: child, size });
            }
            (TreeRole::Root, WaitingForOneChildData) => {
                out.push(Action::Bundle { processed: true, size });
                self.state = SendingDataToChilds;
            }
            (TreeRole::Root, SendingDataToChilds) => {
                let child = left.or(right).unwrap_or(0);
                out.push(Action::Send { dst: child, size });
                out.push(Action::Exit);
            }
            _ => {}
        }
    }
}
