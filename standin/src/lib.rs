//! kube-standin: a Kubernetes API server stand-in for tests.
//!
//! No Kubernetes API server can be installed where Bootes is developed and tested, so
//! the tests talk to this in-memory stand-in instead. It speaks enough of the
//! Kubernetes HTTP API for kube-rs clients (watchers, metadata watchers, status
//! patches) and a real `kubectl` (discovery, CRD registration, apply, patch, label,
//! delete, server-side apply, tables):
//!
//! * discovery (`/version`, `/api`, `/api/v1`, `/apis`, `/apis/<group>[/<version>]`),
//!   legacy format only (aggregated discovery requests get the legacy documents);
//! * OpenAPI v3 (`/openapi/v3` and per group-version documents) telling kubectl that
//!   the server validates fields itself;
//! * built-in namespaces, pods, configmaps, secrets, services, serviceaccounts, events,
//!   endpoints, EndpointSlices (`discovery.k8s.io/v1`), persistentvolumeclaims,
//!   deployments, statefulsets, daemonsets, replicasets, jobs, poddisruptionbudgets, networkpolicies, RBAC
//!   roles and bindings, leases (stored as given: no controllers run, so tests write
//!   EndpointSlices themselves), and CustomResourceDefinitions, whose resources are
//!   served once created;
//! * create, get, list, update, merge/JSON/strategic (as merge) patches, server-side
//!   apply (as a merge patch that creates), delete (with finalizers), the status
//!   subresource, label and field selectors, `dryRun=All`;
//! * watches from a resourceVersion with a bounded history, `410 Gone` when it is too
//!   old, bookmarks, `sendInitialEvents`, timeouts;
//! * structural schemas of custom resources: undeclared fields are pruned (with a
//!   warning) or rejected under `fieldValidation=Strict`; `type`, `enum` and
//!   `required` are checked;
//! * `PartialObjectMetadata` and `Table` responses;
//! * ValidatingWebhookConfigurations, called as the API server calls them
//!   (see [`admission`]).
//!
//! Test-only control endpoints (paths no real API server has):
//! * `POST /standin/compact` drops the event history, so that a watch from any
//!   earlier resourceVersion gets 410 Gone (a watch that is open and has kept up
//!   goes on; one that had not yet read the latest events gets 410 too);
//! * `POST /standin/close-watches` ends every open watch, as an API server restart
//!   would; clients re-watch from their last resourceVersion, and after a compaction
//!   that means 410 Gone and a relist.
//!
//! Protobuf request bodies are understood only for what kubectl's typed clients send
//! (`kubectl create namespace|configmap|secret|serviceaccount`); responses are JSON.
//!
//! Not supported: authentication and authorization (anything goes), protobuf
//! responses,
//! pagination (`limit` is ignored, everything comes in one page), real strategic
//! merge semantics (lists are replaced), server-side apply field ownership,
//! mutating admission, defaulting, CEL and format validation of custom resources, version
//! conversion beyond rewriting `apiVersion`, and graceful pod deletion.

//! # Using it from a test
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use kube_standin::client::StandinProcess;
//! // In an integration test of this crate: env!("CARGO_BIN_EXE_kube-standin");
//! // elsewhere: target/debug/kube-standin (built by `cargo build --workspace --bins`).
//! let k8s = StandinProcess::start("target/debug/kube-standin")?;
//! // A real kubectl, with this stand-in's kubeconfig and a private cache directory:
//! let status = k8s.kubectl().args(["create", "namespace", "foo"]).status()?;
//! assert!(status.success());
//! // Processes that use kube-rs `Config::infer()` get `KUBECONFIG=<k8s.kubeconfig>`.
//! println!("{} {}", k8s.url(), k8s.kubeconfig.display());
//! # Ok(()) }
//! ```
//!
//! The binary: `kube-standin --listen 127.0.0.1:0 --write-kubeconfig PATH` prints
//! `listening on ADDR` once it serves (flags: `--bookmark-interval-ms`,
//! `--history-limit`, `--log debug` to log every request).

pub mod admission;
pub mod client;
pub mod discovery;
pub mod error;
pub mod event_versions;
pub mod kubeconfig;
pub mod kubectl;
pub mod patch;
pub mod present;
pub mod proto;
pub mod schema;
pub mod selector;
pub mod server;
pub mod store;
pub mod time;
pub mod types;
