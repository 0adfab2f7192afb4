//! Everything Bootes does with etcd that is not specific to the controller or
//! the xds-server.
//!
//! * [`args`] — the etcd flags of every command (endpoints, prefix, TLS,
//!   authentication, the secret key file).
//! * [`mod@connect`] — the one way to open a client (endpoints, timeouts,
//!   keep-alive, TLS, authentication).
//! * [`members`] — the channel under every client: one connection per
//!   etcd member, requests to members that answer, failed ones set aside
//!   and probed in the background.
//! * [`security`] — the etcd TLS and authentication flags.
//! * [`lease`] — keeping a lease alive, and noticing when it is lost.
//! * [`mod@list`] — a prefix read in pages at one revision, so that any amount
//!   of data can be listed.
//! * [`watch`] — watches resumed on another member from their revision
//!   when one breaks, and the one list-then-watch loop, relisting when a
//!   watch cannot go on.
//! * [`backoff`] — the one retry policy (exponential, with jitter).
//! * [`txn`] — transactions fenced on leadership.
//!
//! Every client this crate makes decodes messages of any size etcd sends
//! (tonic's default limit of 4 MiB would refuse large lists and watch
//! responses).

pub mod args;
pub mod backoff;
pub mod connect;
pub mod lease;
pub mod list;
pub mod members;
pub mod security;
pub mod txn;
pub mod watch;

pub use etcd_client;

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Etcd(#[from] etcd_client::Error),
    #[error("etcd cancelled the watch (compacted revision {compact_revision}): {reason}")]
    WatchCancelled {
        compact_revision: i64,
        reason: String,
    },
    #[error("the etcd watch ended")]
    WatchEnded,
    /// The fence comparison failed: another replica leads now.
    #[error("not the leader anymore: the write was refused")]
    NotLeader,
}

/// Whether `e` says the requested revision was compacted away (etcd's
/// `ErrCompacted`; tonic reports a message over its decoding limit with the
/// same code, hence the message check).
pub fn is_compacted(e: &etcd_client::Error) -> bool {
    matches!(e, etcd_client::Error::GRpcStatus(s)
        if s.code() == tonic::Code::OutOfRange && s.message().contains("compacted"))
}
