//! The validating admission webhook (`run --webhook-listen`), served by
//! every replica, leader or not.
//!
//! An object is judged by [`bootes_core::validate::review`], the same code
//! path as `validate` and the status conditions, against the objects, pods
//! and EndpointSlices of its namespace as this replica's index last saw
//! them ([`Views`]). Its own problems deny the request; problems that
//! depend on other objects come back as warnings.
//!
//! * [`review`]: an AdmissionReview body in, the answer out;
//! * [`serve`]: HTTPS, the certificate reloaded when its files change;
//! * [`cert`]: `bootes-controller webhook-cert`.

pub mod cert;
pub mod review;
pub mod serve;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use bootes_core::index::Index;
use bootes_core::xref::BootstrapClusters;

/// Per namespace, a copy of the index's part for that namespace, renewed
/// by the reconcile loop when something in the namespace changed (once per
/// burst of changes, as the status conditions are).
#[derive(Clone, Default)]
pub struct Views {
    inner: Arc<RwLock<Published>>,
}

#[derive(Default)]
struct Published {
    /// Whether the index has been published once: before that, nothing is
    /// known about the other objects and only an object's own problems are
    /// reported.
    ready: bool,
    bootstrap: BootstrapClusters,
    stamps: BTreeMap<String, u64>,
    by_namespace: BTreeMap<String, Arc<Index>>,
}

impl Views {
    pub fn new(bootstrap: BootstrapClusters) -> Self {
        let views = Self::default();
        views.inner.write().expect("views lock").bootstrap = bootstrap;
        views
    }

    /// Copies the namespaces of `index` that changed since the last call.
    pub fn publish(&self, index: &Index) {
        let changed: Vec<(String, u64)> = {
            let published = self.inner.read().expect("views lock");
            index
                .namespace_stamps()
                .filter(|(ns, stamp)| published.stamps.get(*ns) != Some(stamp))
                .map(|(ns, stamp)| (ns.to_string(), stamp))
                .collect()
        };
        // Copied outside the lock: reviews go on meanwhile.
        let views: Vec<(String, u64, Arc<Index>)> = changed
            .into_iter()
            .map(|(ns, stamp)| {
                let view = Arc::new(index.namespace_view(&ns));
                (ns, stamp, view)
            })
            .collect();
        let mut published = self.inner.write().expect("views lock");
        for (ns, stamp, view) in views {
            published.stamps.insert(ns.clone(), stamp);
            published.by_namespace.insert(ns, view);
        }
        published.ready = true;
    }

    /// A fresh index of `namespace` to judge an object against, and whether
    /// it knows the other objects yet.
    pub fn view(&self, namespace: &str) -> (Index, bool) {
        let (base, ready, bootstrap) = {
            let published = self.inner.read().expect("views lock");
            (
                published.by_namespace.get(namespace).cloned(),
                published.ready,
                published.bootstrap.clone(),
            )
        };
        let view = match base {
            Some(base) => base.namespace_view(namespace),
            None => {
                let mut index = Index::new();
                index.set_bootstrap_clusters(bootstrap);
                index
            }
        };
        (view, ready)
    }
}
