//! Helpers of the end-to-end tests: real etcd, the real binaries, a real
//! Envoy (see [`harness`]).

pub mod ads_client;
pub mod differential;
pub mod harness;
