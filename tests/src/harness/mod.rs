//! Test harness for end-to-end tests: real etcd, the real Bootes binaries and
//! a real Envoy, all on 127.0.0.1 with random free ports and temporary
//! directories, so tests can run in parallel.
//!
//! Rules the helpers follow (and tests should too):
//! * every child process is owned by a [`ChildProcess`] that kills it on drop
//!   and keeps its stdout/stderr in files; the tails are printed when the
//!   guard is dropped (libtest shows them only for failing tests);
//! * nothing sleeps a fixed time to let things settle: waiting is always on a
//!   condition with a deadline ([`eventually`]).
//!
//! Tools are found as follows (a missing tool is a clear error, never a skip):
//! * `bootes-controller` / `bootes-xds-server`: `BOOTES_CONTROLLER_BIN` /
//!   `BOOTES_XDS_SERVER_BIN`, else next to the test executable
//!   (`target/<profile>/`), built by `cargo build --bins`;
//! * Envoy: `ENVOY_BIN`, else `${BOOTES_TOOLS_DIR:-$HOME/.cache/bootes-tools}/venv/bin/envoy`,
//!   else `envoy` on `PATH` (`scripts/install-tools.sh` installs it);
//! * etcd: `ETCD_BIN`, else `etcd` on `PATH` (Debian's `etcd-server`);
//! * Prometheus and promtool: `PROMETHEUS_BIN` / `PROMTOOL_BIN`, else on
//!   `PATH` (Debian's `prometheus`).

mod bootes;
mod certs;
mod envoy;
mod etcd;
mod etcd_cluster;
mod http;
mod kube;
mod manifests;
mod metrics;
mod ports;
mod process;
mod prometheus;
mod rendered;
mod stack;
mod upstream;
mod wait;
mod webhook;

pub use bootes::{Controller, XdsServer};
pub use certs::{CertFiles, Issued, San, TestCa};
pub use envoy::{
    bootstrap as envoy_bootstrap, dynamic_clusters, dynamic_endpoints, dynamic_listeners,
    dynamic_route_configs, Envoy, EnvoyOptions, XdsApi, XdsTls,
};
pub use etcd::{run_roles_script, ClientTls, Etcd};
pub use etcd_cluster::{ClusterOptions, EtcdCluster};
pub use http::{http_get, HttpResponse};
pub use kube::{apply_bootes_crds, kubectl, kubectl_apply, kubectl_run, KubectlOutput};
pub use manifests::{
    cluster_eds, endpoint, endpoint_a, endpoint_for_service, endpoint_slice, listener_http, pod,
    route, route_all_to_cluster_a, yaml_stream, ManifestDir, SliceEndpoint, VirtualHost,
};
pub use metrics::{metric, metric_sum};
pub use ports::free_port;
pub use process::{
    cpu_seconds, find_bootes_bin, find_envoy, find_etcd, find_venv_tool, rss_kib, test_dir,
    ChildProcess,
};
pub use prometheus::{
    dashboard_exprs, find_prometheus, find_promtool, metric_names_in, monitoring_dir, rule_exprs,
    rules_spec, write_rules_file, Prometheus,
};
pub use rendered::{
    find_doc, flag_value, flags_of, flags_used, pod_spec, render, repo_dir, workloads, yaml_docs,
    yaml_stream_of, Container,
};
pub use stack::{expect_routed, expect_spread, expect_status, local, Stack};
pub use upstream::Upstream;
pub use wait::{eventually, eventually_with, DEFAULT_TIMEOUT};
pub use webhook::WebhookClient;
