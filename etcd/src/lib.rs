//! Everything Bootes does with etcd that is not specific to the controller or
//! the xds-server.
//!
//! * [`connect`] — the one way to open a client (endpoints, timeouts,
//!   keep-alive; TLS and authentication options belong here too).

pub mod connect;

pub use connect::{connect, EtcdConfig};
pub use etcd_client;
