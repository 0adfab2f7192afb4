//! kube-standin: see tests/src/standin/.
fn main() {}
