//! helpers

pub mod harness;
pub mod standin;
