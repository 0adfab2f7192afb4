//! Proof of leadership that every write of the controller's leader carries
//! (docs/DESIGN.md §1: one leader writes). etcd checks it in the same transaction, so a
//! deposed leader's write fails even before it notices.

/// The leader key and its create revision when this replica won it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fence {
    pub key: String,
    pub create_revision: i64,
}
