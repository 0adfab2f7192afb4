//! helpers

pub mod harness;
