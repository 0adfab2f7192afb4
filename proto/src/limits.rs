//! etcd's limits, which both the controller's plan and the xds-servers'
//! status records must respect.

/// Operations per transaction (etcd's default `--max-txn-ops`).
pub const MAX_TXN_OPS: usize = 128;

/// The largest value written: etcd refuses requests over 1.5 MiB
/// (`--max-request-bytes`), and a put carries its key and framing too.
pub const MAX_VALUE_BYTES: usize = 1_400_000;
