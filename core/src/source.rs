//! What the sources (a directory, Kubernetes, the xds-servers' node status
//! records) tell the index.

use crate::model::{BootesObject, ObjectKey, Pod, PodKey};
use crate::service_endpoints::{EndpointSlice, SliceKey};

#[derive(Debug)]
pub enum SourceEvent {
    /// The complete set of objects (a relist or a directory reload).
    ResetObjects(Vec<BootesObject>),
    /// The complete set of pods.
    ResetPods(Vec<Pod>),
    ApplyObject(BootesObject),
    DeleteObject(ObjectKey),
    ApplyPod(Pod),
    DeletePod(PodKey),
    /// The complete set of EndpointSlices (of Services).
    ResetSlices(Vec<EndpointSlice>),
    ApplySlice(EndpointSlice),
    DeleteSlice(SliceKey),
    /// What the xds-servers recorded for nodes (`status/` in etcd): every
    /// record, after a (re)list.
    ResetNodeStatus(Vec<bootes_proto::store::NodeStatus>),
    /// One record written (`Some`) or gone (`None`).
    NodeStatus {
        node: String,
        replica: String,
        status: Option<bootes_proto::store::NodeStatus>,
    },
    /// A source could not read some input; nothing valid was dropped.
    Problem(String),
}
