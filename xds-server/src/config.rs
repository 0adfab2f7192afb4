//! The server's configuration: its command-line flags (docs/DESIGN.md §9), also
//! built directly by tests.

use std::net::SocketAddr;
use std::time::Duration;

/// Everything the server needs to start, read from the command line (each
/// flag also from its `BOOTES_*` environment variable) or built by a test.
#[derive(Debug, clap::Args)]
pub struct Config {
    #[command(flatten)]
    pub etcd: bootes_etcd::args::EtcdArgs,
    /// gRPC listen address (xDS).
    #[arg(long, env = "BOOTES_LISTEN", default_value = "0.0.0.0:18000")]
    pub listen: SocketAddr,
    /// Admin listen address (/livez, /readyz, /metrics).
    #[arg(long, env = "BOOTES_ADMIN_LISTEN", default_value = "0.0.0.0:19000")]
    pub admin_listen: SocketAddr,
    /// On SIGTERM, streams end at random points within this period.
    #[arg(long, env = "BOOTES_DRAIN_PERIOD", value_parser = parse_seconds, default_value = "5")]
    pub drain_period: Duration,
    /// Connections older than this get a GOAWAY and each of their streams
    /// ends at a random point within the following fifth of the age, so
    /// clients reconnect, spread out, to any replica: after a scale-up the
    /// new replicas take their share within about 1.2× the age (seconds;
    /// 0: never).
    #[arg(long, env = "BOOTES_MAX_CONNECTION_AGE", value_parser = parse_seconds, default_value = "1800")]
    pub max_connection_age: Duration,
    /// Name of this replica in `status/` keys (default: hostname and process ID).
    #[arg(long, env = "BOOTES_REPLICA_ID")]
    pub replica_id: Option<String>,
    /// TTL of the lease on this replica's `status/` keys (seconds).
    #[arg(long, env = "BOOTES_STATUS_LEASE_TTL", value_parser = parse_seconds, default_value = "15")]
    pub status_lease_ttl: Duration,
    #[command(flatten)]
    pub tls: TlsArgs,
    #[command(flatten)]
    pub limits: LimitArgs,
}

/// TLS on the xDS port and who may read what (docs/SECURITY.md).
#[derive(Debug, clap::Args)]
pub struct TlsArgs {
    /// Server certificate chain (PEM). With it, the xDS port speaks TLS only.
    /// Re-read when it changes.
    #[arg(long, env = "BOOTES_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,
    /// Private key of --tls-cert (PEM).
    #[arg(long, env = "BOOTES_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// CA bundle (PEM) for client certificates. With it, every client must
    /// present a certificate it signed (mutual TLS), and a stream may only
    /// claim a node ID its certificate authorizes.
    #[arg(long, env = "BOOTES_TLS_CLIENT_CA", requires = "tls_cert")]
    pub tls_client_ca: Option<std::path::PathBuf>,
    /// How often the TLS files are checked for changes (seconds).
    #[arg(long, env = "BOOTES_TLS_RELOAD_INTERVAL", value_parser = parse_seconds, default_value = "10")]
    pub tls_reload_interval: Duration,
    /// Only SPIFFE IDs of this trust domain authorize nodes (default: any
    /// the client CA signed).
    #[arg(long, env = "BOOTES_SPIFFE_TRUST_DOMAIN")]
    pub spiffe_trust_domain: Option<String>,
    /// Serve Secrets (SDS) to clients that did not authenticate with a
    /// certificate. Anyone who can reach the port can then read every
    /// node's private keys: for local demos only.
    #[arg(long, env = "BOOTES_ALLOW_UNAUTHENTICATED_SECRETS")]
    pub allow_unauthenticated_secrets: bool,
    /// Listener serving CSDS (and only CSDS) to whoever reaches it; `off` to
    /// have none. Keep it on loopback or an operator-only network.
    #[arg(long, env = "BOOTES_CSDS_LISTEN", default_value = "127.0.0.1:18001", value_parser = parse_optional_addr)]
    pub csds_listen: OptionalAddr,
    /// Certificate names (SPIFFE ID, URI or DNS SAN) that may use CSDS on
    /// the xDS port (needs --tls-client-ca). Comma separated.
    #[arg(long, env = "BOOTES_CSDS_OPERATORS", value_delimiter = ',')]
    pub csds_operator: Vec<String>,
}

/// Bounds on what one client can cost (docs/SECURITY.md).
#[derive(Debug, clap::Args)]
pub struct LimitArgs {
    /// A connection must finish TCP, TLS and the HTTP/2 preface within this
    /// (seconds), or it is closed.
    #[arg(long, env = "BOOTES_HANDSHAKE_TIMEOUT", value_parser = parse_seconds, default_value = "10")]
    pub handshake_timeout: Duration,
    /// HTTP/2 PING interval on idle connections (seconds).
    #[arg(long, env = "BOOTES_HTTP2_KEEPALIVE_INTERVAL", value_parser = parse_seconds, default_value = "30")]
    pub http2_keepalive_interval: Duration,
    /// A connection whose PING is not answered within this is closed (seconds).
    #[arg(long, env = "BOOTES_HTTP2_KEEPALIVE_TIMEOUT", value_parser = parse_seconds, default_value = "10")]
    pub http2_keepalive_timeout: Duration,
    /// Connections held at once (including handshakes); more are refused.
    #[arg(long, env = "BOOTES_MAX_CONNECTIONS", default_value_t = 10_000)]
    pub max_connections: usize,
    /// Connections the kernel queues for the xDS port until they are
    /// accepted (capped by net.core.somaxconn). A reconnect storm larger
    /// than this, arriving faster than the accept thread empties it, gets
    /// resets.
    #[arg(long, env = "BOOTES_LISTEN_BACKLOG", default_value_t = 4096)]
    pub listen_backlog: u32,
    /// New xDS streams set up per second at most (0: no bound). One
    /// second's worth is admitted at once; beyond it a new stream waits for
    /// its turn, up to --new-stream-max-wait, or is refused with UNAVAILABLE
    /// (the client retries with back-off). The default admits a storm of a
    /// full replica (10,000 streams) within 1 s without refusing any.
    #[arg(
        long,
        env = "BOOTES_MAX_NEW_STREAMS_PER_SECOND",
        default_value_t = 5_000
    )]
    pub max_new_streams_per_second: u32,
    /// Longest a new stream waits for its turn before it is refused (seconds).
    #[arg(long, env = "BOOTES_NEW_STREAM_MAX_WAIT", value_parser = parse_seconds, default_value = "1")]
    pub new_stream_max_wait: Duration,
    /// Concurrent HTTP/2 streams per connection.
    #[arg(long, env = "BOOTES_MAX_STREAMS_PER_CONNECTION", default_value_t = 100)]
    pub max_streams_per_connection: u32,
    /// Largest request message (bytes).
    #[arg(long, env = "BOOTES_MAX_REQUEST_BYTES", default_value_t = 4 << 20)]
    pub max_request_bytes: usize,
    /// Resource names one request may carry.
    #[arg(long, env = "BOOTES_MAX_RESOURCE_NAMES", default_value_t = 10_000)]
    pub max_resource_names: usize,
    /// NACK details are cut to this many bytes on receipt (logs, metrics,
    /// CSDS, etcd and object status only see the cut text).
    #[arg(long, env = "BOOTES_MAX_NACK_DETAIL_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_NACK_DETAIL)]
    pub max_nack_detail_bytes: usize,
    /// Longest node ID accepted (bytes).
    #[arg(long, env = "BOOTES_MAX_NODE_ID_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_NODE_ID)]
    pub max_node_id_bytes: usize,
    /// At most one round of `status/` writes per interval (seconds); changes
    /// in between are coalesced.
    #[arg(long, env = "BOOTES_STATUS_WRITE_INTERVAL", value_parser = parse_seconds, default_value = "1")]
    pub status_write_interval: Duration,
    /// Largest `status/` record (bytes; etcd's request limit is 1.5 MiB).
    #[arg(long, env = "BOOTES_MAX_STATUS_RECORD_BYTES", default_value_t = bootes_proto::limits::DEFAULT_MAX_STATUS_RECORD, value_parser = parse_record_bound)]
    pub max_status_record_bytes: usize,
}

fn parse_record_bound(s: &str) -> Result<usize, String> {
    let n: usize = s.parse().map_err(|e| format!("{s:?}: {e}"))?;
    if !(1024..=1 << 20).contains(&n) {
        return Err(format!(
            "{n}: must be between 1024 and 1048576 (etcd's request limit is 1.5 MiB)"
        ));
    }
    Ok(n)
}

/// An address, or `off`.
#[derive(Clone, Copy, Debug)]
pub struct OptionalAddr(pub Option<SocketAddr>);

fn parse_optional_addr(s: &str) -> Result<OptionalAddr, String> {
    if s == "off" {
        return Ok(OptionalAddr(None));
    }
    s.parse()
        .map(|a| OptionalAddr(Some(a)))
        .map_err(|e| format!("{s:?}: expected HOST:PORT or off ({e})"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    let secs: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("{s:?}: expected seconds, e.g. 5 or 2.5s"))?;
    Duration::try_from_secs_f64(secs).map_err(|e| e.to_string())
}
