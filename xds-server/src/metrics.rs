//! Prometheus metrics of the xds-server, served on the admin listener.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use bootes_proto::ResourceType;
use bootes_xds::session::Protocol;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: &'static str,
}

/// The `variant` label of a stream: state of the world or delta.
pub const SOTW: &str = <bootes_xds::sotw::SotwStream as Protocol>::VARIANT;
pub const DELTA: &str = <bootes_xds::delta::DeltaStream as Protocol>::VARIANT;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VariantLabel {
    pub variant: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabel {
    pub op: &'static str,
}

/// The `op` label of `bootes_xds_etcd_errors_total`: the list-then-watch of
/// the prefix, and the `status/` records (lease and writes).
pub const ETCD_WATCH: &str = "watch";
pub const ETCD_STATUS: &str = "status";

#[derive(Debug)]
pub struct Metrics {
    pub registry: Registry,
    pub connected_streams: Family<VariantLabel, Gauge>,
    pub pushes: Family<TypeLabel, Counter>,
    pub nacks: Family<TypeLabel, Counter>,
    pub acks: Family<TypeLabel, Counter>,
    /// From the etcd change being applied to the response being handed to the stream.
    pub push_latency: Histogram,
    /// From a snapshot change arriving (its etcd revision applied) to each
    /// stream's ACK of it, by type.
    pub ack_convergence: Family<TypeLabel, Histogram>,
    pub encodes: Counter,
    pub etcd_revision: Gauge,
    /// Revisions between etcd's current revision and the last one applied.
    pub etcd_watch_lag: Gauge,
    pub etcd_connected: Gauge,
    pub nodes: Gauge,
    pub snapshots: Gauge,
    /// etcd values refused (undecodable, or disagreeing with their key).
    pub etcd_rejected: Counter,
    /// Connections closed before gRPC: max connections, failed or slow
    /// handshakes, clients gone mid-handshake, failed accepts.
    pub refused_connections: Family<ReasonLabel, Counter>,
    /// Streams and requests refused: node not authorized, secrets to an
    /// unauthenticated stream, too many names, CSDS without operator identity.
    pub denied: Family<ReasonLabel, Counter>,
    /// Failed etcd requests, by [`OpLabel`].
    pub etcd_errors: Family<OpLabel, Counter>,
    /// Nodes whose `status/` record waits to be written.
    pub status_backlog: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let connected_streams = Family::<VariantLabel, Gauge>::default();
        let pushes = Family::<TypeLabel, Counter>::default();
        let nacks = Family::<TypeLabel, Counter>::default();
        let acks = Family::<TypeLabel, Counter>::default();
        let push_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
        ]);
        let (encodes, etcd_revision, etcd_watch_lag, etcd_connected, nodes, snapshots) =
            Default::default();
        let (refused_connections, denied) = Default::default();
        let mut r = Registry::with_prefix("bootes_xds");
        r.register(
            "connected_streams",
            "Open xDS streams",
            connected_streams.clone(),
        );
        r.register("pushes", "Discovery responses sent", pushes.clone());
        r.register("nacks", "Responses rejected by clients", nacks.clone());
        r.register("acks", "Responses accepted by clients", acks.clone());
        r.register(
            "push_latency_seconds",
            "From an etcd change applied to the response handed to the stream",
            push_latency.clone(),
        );
        let ack_convergence = Family::<TypeLabel, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
            ])
        });
        r.register(
            "ack_convergence_seconds",
            "From a snapshot change arriving at this replica (its etcd revision applied) to each stream's ACK of it, by type",
            ack_convergence.clone(),
        );
        let m = Self {
            registry: Registry::default(),
            ack_convergence,
            connected_streams,
            pushes,
            nacks,
            acks,
            push_latency,
            encodes,
            etcd_revision,
            etcd_watch_lag,
            etcd_connected,
            nodes,
            snapshots,
            etcd_rejected: Counter::default(),
            refused_connections,
            denied,
            etcd_errors: Family::default(),
            status_backlog: Gauge::default(),
        };
        r.register(
            "response_encodings",
            "Responses encoded (each shared by every stream that sends it)",
            m.encodes.clone(),
        );
        r.register(
            "etcd_revision",
            "Last etcd revision applied",
            m.etcd_revision.clone(),
        );
        r.register(
            "etcd_watch_lag_revisions",
            "etcd's revision minus the last revision applied, at the last watch response",
            m.etcd_watch_lag.clone(),
        );
        r.register(
            "etcd_connected",
            "1 while the etcd watch is established",
            m.etcd_connected.clone(),
        );
        r.register("nodes", "Node bindings loaded", m.nodes.clone());
        r.register("snapshots", "Snapshots loaded", m.snapshots.clone());
        r.register(
            "etcd_rejected_values",
            "etcd values refused (undecodable, or not what their key names); the previous value stays",
            m.etcd_rejected.clone(),
        );
        // Every series exists from the start, at 0, as Prometheus users
        // expect (a series that appears with its first event hides that event
        // from rate() and from alerts on absence).
        for ty in ResourceType::ALL {
            let label = TypeLabel {
                r#type: ty.short_name(),
            };
            for family in [&m.pushes, &m.nacks, &m.acks] {
                let _ = family.get_or_create(&label);
            }
        }
        for variant in [SOTW, DELTA] {
            let _ = m.connected_streams.get_or_create(&VariantLabel { variant });
        }
        r.register(
            "refused_connections",
            "Connections closed before gRPC, by reason (max_connections, handshake_failed, handshake_timeout, peer_closed, accept_failed)",
            m.refused_connections.clone(),
        );
        r.register(
            "denied",
            "Streams and requests refused by policy, by reason",
            m.denied.clone(),
        );
        r.register(
            "etcd_errors",
            "Failed etcd requests by operation: watch (listing and watching the prefix), status (the status/ records' lease and writes)",
            m.etcd_errors.clone(),
        );
        for op in [ETCD_WATCH, ETCD_STATUS] {
            let _ = m.etcd_errors.get_or_create(&OpLabel { op });
        }
        r.register(
            "status_backlog",
            "Nodes whose status/ record (ACKs, NACKs) waits to be written to etcd: every node of this replica while etcd fails",
            m.status_backlog.clone(),
        );
        Self { registry: r, ..m }
    }

    /// Streams connected now, of both variants.
    pub fn streams(&self) -> usize {
        [SOTW, DELTA]
            .into_iter()
            .map(|variant| {
                self.connected_streams
                    .get_or_create(&VariantLabel { variant })
                    .get()
            })
            .sum::<i64>()
            .max(0) as usize
    }

    pub fn etcd_error(&self, op: &'static str) {
        self.etcd_errors.get_or_create(&OpLabel { op }).inc();
    }

    pub fn encode(&self) -> String {
        bootes_runtime::admin::encode(&self.registry)
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_series_is_present_at_zero_before_any_stream() {
        let text = Metrics::new().encode();
        let has = |line: &str| text.lines().any(|l| l == line);
        for ty in ResourceType::ALL {
            let t = ty.short_name();
            for family in ["pushes", "nacks", "acks"] {
                let line = format!(r#"bootes_xds_{family}_total{{type="{t}"}} 0"#);
                assert!(has(&line), "no {line:?} in\n{text}");
            }
        }
        for variant in ["sotw", "delta"] {
            let line = format!(r#"bootes_xds_connected_streams{{variant="{variant}"}} 0"#);
            assert!(has(&line), "no {line:?} in\n{text}");
        }
        for op in ["watch", "status"] {
            let line = format!(r#"bootes_xds_etcd_errors_total{{op="{op}"}} 0"#);
            assert!(has(&line), "no {line:?} in\n{text}");
        }
        assert!(has("bootes_xds_status_backlog 0"), "{text}");
    }
}
