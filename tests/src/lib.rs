//! helpers

pub mod harness;
pub mod kubectl;
pub mod standin;
