//! Where objects and pods come from. Every source feeds the same index
//! through [`SourceEvent`](bootes_core::source::SourceEvent)s.

pub mod dir;
pub mod kube;
pub mod node_status;
