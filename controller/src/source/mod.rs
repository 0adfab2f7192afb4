//! Where objects and pods come from. Every source feeds the same index
//! through [`SourceEvent`]s.

pub mod dir;
pub mod kube;
pub mod node_status;

pub use bootes_core::source::SourceEvent;
