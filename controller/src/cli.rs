//! The command line (docs/DESIGN.md §9): these names are an interface users script
//! against. Every flag also reads a `BOOTES_*` environment variable.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Debug, Parser)]
#[command(
    name = "bootes-controller",
    version,
    about = "Bootes controller: Bootes objects and pods in, validated Envoy snapshots in etcd out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format.
    #[arg(long, global = true, env = "BOOTES_LOG_FORMAT", value_enum, default_value_t = bootes_runtime::logging::LogFormat::Text)]
    pub log_format: bootes_runtime::logging::LogFormat,
}

impl Cli {
    /// Parses the command line, exiting as clap does on any error, including
    /// a missing `--etcd-endpoints` for the commands that talk to etcd.
    pub fn parse_args() -> Self {
        Self::try_parse_args(std::env::args_os()).unwrap_or_else(|e| e.exit())
    }

    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        let cli = Self::try_parse_from(args)?;
        match &cli.command {
            Command::Run(a) => a.etcd.require(Cli::command())?,
            Command::Inspect(a) => a.common.etcd.require(Cli::command())?,
            Command::Validate(_) | Command::Crds | Command::WebhookCert(_) => {}
        }
        Ok(cli)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Watch objects and pods and keep the snapshots in etcd up to date.
    Run(Box<RunArgs>),
    /// Check manifests offline (no etcd, no cluster); exit 1 on any error.
    Validate(ValidateArgs),
    /// Print the CustomResourceDefinitions of every Bootes kind (YAML, generated from the Rust types).
    Crds,
    /// Show what is in etcd, decoded: nodes, groups, a node's snapshot, or two nodes' difference.
    Inspect(InspectArgs),
    /// Write a self-signed certificate for the admission webhook's Service and the caBundle patch of its ValidatingWebhookConfiguration (for clusters without cert-manager).
    WebhookCert(WebhookCertArgs),
}

/// How to reach etcd: the flags every Bootes command shares.
use bootes_etcd::args::EtcdArgs;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Read objects and pods from this directory (YAML, watched) instead of Kubernetes.
    #[arg(long, env = "BOOTES_MANIFESTS")]
    pub manifests: Option<PathBuf>,
    /// Serve /metrics, /livez and /readyz here.
    #[arg(long, env = "BOOTES_METRICS_ADDR", default_value = "127.0.0.1:9090")]
    pub metrics_addr: SocketAddr,
    /// Lease TTL of the leader key: how long a dead leader blocks a takeover.
    #[arg(long, env = "BOOTES_LEADER_LEASE_TTL", value_parser = parse_duration, default_value = "5s")]
    pub leader_lease_ttl: Duration,
    /// Name of this replica in the leader key (default: hostname and process ID).
    #[arg(long, env = "BOOTES_IDENTITY")]
    pub identity: Option<String>,
    /// How often the manifest directory is scanned for changes.
    #[arg(long, env = "BOOTES_POLL_INTERVAL", value_parser = parse_duration, default_value = "200ms")]
    pub poll_interval: Duration,
    /// Quiet time that ends a burst of changes before it is written.
    #[arg(long, env = "BOOTES_DEBOUNCE", value_parser = parse_duration, default_value = "100ms")]
    pub debounce: Duration,
    /// How long a change on a quiet controller (no change for --max-delay) waits for another before it is written alone; another within it starts a burst, written as --debounce and --max-delay say. Set to --debounce for a plain trailing debounce.
    #[arg(long, env = "BOOTES_FIRST_DEBOUNCE", value_parser = parse_duration, default_value = "20ms")]
    pub first_debounce: Duration,
    /// Longest a burst of changes may delay a write.
    #[arg(long, env = "BOOTES_MAX_DELAY", value_parser = parse_duration, default_value = "1s")]
    pub max_delay: Duration,
    /// Clusters the Envoys' bootstrap defines, which no Bootes object provides: `NAME` (every namespace) or `NAMESPACE/NAME`, comma separated. Routes to them count as resolved (docs/VALIDATION.md).
    #[arg(long, env = "BOOTES_BOOTSTRAP_CLUSTERS", value_delimiter = ',', value_name = "[NAMESPACE/]NAME", value_parser = parse_bootstrap_cluster)]
    pub bootstrap_clusters: Vec<String>,
    /// An Envoy binary (the version the fleet runs) that judges each changed group's snapshot, `envoy --mode validate` on a bootstrap built from it, before it is written: a snapshot Envoy rejects is not written (its nodes keep the previous one) and the object whose resource Envoy rejects gets Accepted=False, reason EnvoyRejected (README, "Envoy in the loop").
    #[arg(long, env = "BOOTES_ENVOY_VALIDATE", value_name = "PATH")]
    pub envoy_validate: Option<PathBuf>,
    /// Envoys run at once by --envoy-validate.
    #[arg(
        long,
        env = "BOOTES_ENVOY_VALIDATE_PARALLEL",
        default_value_t = 2,
        value_name = "N"
    )]
    pub envoy_validate_parallel: usize,
    /// How long one `envoy --mode validate` may take before it is killed: its group is not written (EnvoyUnavailable) and judged again later.
    #[arg(long, env = "BOOTES_ENVOY_VALIDATE_TIMEOUT", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub envoy_validate_timeout: Duration,
    #[command(flatten)]
    pub webhook: WebhookArgs,
}

/// The validating admission webhook (manifests/webhook.yaml), served by
/// every replica.
#[derive(Debug, Args)]
pub struct WebhookArgs {
    /// Serve the validating admission webhook (HTTPS) here; needs --webhook-cert and --webhook-key.
    #[arg(long, env = "BOOTES_WEBHOOK_LISTEN", requires_all = ["webhook_cert", "webhook_key"])]
    pub webhook_listen: Option<SocketAddr>,
    /// The webhook's certificate chain (PEM), re-read when it changes.
    #[arg(long, env = "BOOTES_WEBHOOK_CERT", requires = "webhook_listen")]
    pub webhook_cert: Option<PathBuf>,
    /// The webhook's private key (PEM), re-read when it changes.
    #[arg(long, env = "BOOTES_WEBHOOK_KEY", requires = "webhook_listen")]
    pub webhook_key: Option<PathBuf>,
    /// How often the certificate and key files are checked for changes.
    #[arg(long, env = "BOOTES_WEBHOOK_RELOAD_INTERVAL", value_parser = parse_duration, default_value = "10s")]
    pub webhook_reload_interval: Duration,
    /// Largest AdmissionReview body accepted, in bytes; a larger one is refused (413).
    #[arg(long, env = "BOOTES_WEBHOOK_MAX_BODY", default_value_t = 3 * 1024 * 1024)]
    pub webhook_max_body: usize,
}

#[derive(Debug, Args)]
pub struct WebhookCertArgs {
    /// Directory to write tls.crt, tls.key and cabundle-patch.json to.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// The webhook's Service: the certificate names SERVICE.NAMESPACE.svc.
    #[arg(long, default_value = "bootes-webhook")]
    pub service: String,
    /// Namespace of the Service (and of the Secret to create).
    #[arg(long, default_value = "bootes-system")]
    pub namespace: String,
    /// The Secret the printed command creates (manifests/webhook/ mounts bootes-webhook-tls).
    #[arg(long, default_value = "bootes-webhook-tls")]
    pub secret: String,
    /// The ValidatingWebhookConfiguration the printed command patches.
    #[arg(long, default_value = "bootes")]
    pub configuration: String,
    /// Another DNS name for the certificate (repeatable).
    #[arg(long)]
    pub dns: Vec<String>,
    /// An IP address for the certificate (repeatable), for a webhook reached by `url`.
    #[arg(long)]
    pub ip: Vec<std::net::IpAddr>,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365)]
    pub days: u32,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// A manifest file, a directory (searched for *.yaml, *.yml, *.json), or - for stdin.
    #[arg(short = 'f', long = "filename", required = true)]
    pub files: Vec<PathBuf>,
    /// Clusters the Envoys' bootstrap defines, which no Bootes object provides: `NAME` (every namespace) or `NAMESPACE/NAME`, comma separated. Routes to them count as resolved (docs/VALIDATION.md).
    #[arg(long, env = "BOOTES_BOOTSTRAP_CLUSTERS", value_delimiter = ',', value_name = "[NAMESPACE/]NAME", value_parser = parse_bootstrap_cluster)]
    pub bootstrap_clusters: Vec<String>,
    /// An Envoy binary to judge what would be served, too: every group's snapshot goes to `envoy --mode validate` in a bootstrap built from it, and what Envoy rejects is an error of the object whose resource it rejects (docs/VALIDATION.md, "Envoy in the loop").
    #[arg(long = "envoy", value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// Envoys run at once by --envoy.
    #[arg(long = "envoy-parallel", default_value_t = 2, value_name = "N")]
    pub envoy_parallel: usize,
    /// How long one `envoy --mode validate` may take before it is killed (an error on the objects of its group).
    #[arg(long = "envoy-timeout", default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub envoy_timeout: std::time::Duration,
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    #[command(subcommand)]
    pub command: InspectCommand,
    #[command(flatten)]
    pub common: InspectCommon,
}

#[derive(Debug, Subcommand)]
pub enum InspectCommand {
    /// Every node: its group (snapshot), resource counts, and what it ACKed or NACKed on each xds-server replica.
    Nodes,
    /// Every snapshot: namespace, version, the objects that made it, and the nodes bound to it.
    Groups,
    /// Everything one node receives, every resource decoded, with the object it came from.
    Snapshot {
        /// Node ID (`<pod-name>.<namespace>`).
        #[arg(value_name = "NODE_ID")]
        node: String,
    },
    /// Per type, the resources only one of two nodes receives and those they receive in different versions.
    Diff {
        /// Node ID of the first node.
        #[arg(value_name = "NODE_A")]
        a: String,
        /// Node ID of the second node.
        #[arg(value_name = "NODE_B")]
        b: String,
    },
    /// Per object (all, or those named): its generation in etcd and the nodes it targets, running it, pending, rejected (with Envoy's message) and not connected.
    Rollout {
        /// Objects to show (default: every object in etcd), e.g. Cluster/demo/web.
        #[arg(value_name = "KIND/NAMESPACE/NAME", value_parser = crate::inspect::rollout::parse_object)]
        objects: Vec<bootes_core::model::ObjectKey>,
        /// Wait until the objects are Programmed (exit 0), printing progress; exit 1 when one is Rejected, 2 on timeout.
        #[arg(long)]
        wait: bool,
        /// How long --wait waits.
        #[arg(long, value_parser = parse_duration, default_value = "5m")]
        timeout: Duration,
        /// With --wait: the generation to wait for (e.g. metadata.generation after `kubectl apply`); an older one in etcd counts as not there yet.
        #[arg(long, value_name = "N")]
        generation: Option<i64>,
    },
}

/// Flags every `inspect` subcommand shares, accepted before or after it.
#[derive(Debug, Args)]
pub struct InspectCommon {
    #[command(flatten)]
    pub etcd: EtcdArgs,
    /// Output format.
    #[arg(short = 'o', long, global = true, env = "BOOTES_OUTPUT", value_enum, default_value_t = InspectOutput::Yaml)]
    pub output: InspectOutput,
    /// Show secret material (private keys, passwords, …) instead of "[redacted]".
    // The help text, not a link.
    #[allow(rustdoc::broken_intra_doc_links)]
    #[arg(long, global = true, env = "BOOTES_SHOW_SECRETS")]
    pub show_secrets: bool,
    /// Clusters the Envoys' bootstrap defines (as for `run`): references to them are not listed as unresolved.
    #[arg(long, global = true, env = "BOOTES_BOOTSTRAP_CLUSTERS", value_delimiter = ',', value_name = "[NAMESPACE/]NAME", value_parser = parse_bootstrap_cluster)]
    pub bootstrap_clusters: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InspectOutput {
    Yaml,
    Json,
}

/// Checks one `--bootstrap-clusters` entry: `NAME` or `NAMESPACE/NAME`.
fn parse_bootstrap_cluster(s: &str) -> Result<String, String> {
    bootes_core::xref::BootstrapClusters::parse([s])?;
    Ok(s.trim().to_string())
}

/// The clusters `--bootstrap-clusters` declares.
pub fn bootstrap_clusters(entries: &[String]) -> bootes_core::xref::BootstrapClusters {
    // Each entry was checked when parsed.
    bootes_core::xref::BootstrapClusters::parse(entries).unwrap_or_default()
}

/// Parses `250ms`, `2s`, `1m`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map(|i| s.split_at(i))
        .ok_or_else(|| format!("{s:?}: a unit is required (ms, s, m)"))?;
    let n: f64 = num.parse().map_err(|_| format!("{s:?}: not a number"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (ms, s, m)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("{s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    fn inspect(args: &[&str]) -> InspectArgs {
        let argv = ["bootes-controller"].iter().chain(args);
        match Cli::try_parse_args(argv).unwrap().command {
            Command::Inspect(a) => a,
            other => panic!("not inspect: {other:?}"),
        }
    }

    #[test]
    fn inspect_flags_go_before_or_after_the_subcommand() {
        let after = inspect(&[
            "inspect",
            "nodes",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
            "--etcd-prefix",
            "/p/",
            "-o",
            "json",
            "--show-secrets",
        ]);
        let before = inspect(&[
            "inspect",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
            "--etcd-prefix",
            "/p/",
            "-o",
            "json",
            "--show-secrets",
            "nodes",
        ]);
        for a in [&after, &before] {
            assert!(matches!(a.command, InspectCommand::Nodes));
            assert_eq!(a.common.etcd.etcd_endpoints, ["http://127.0.0.1:1"]);
            assert_eq!(a.common.etcd.etcd_prefix, "/p/");
            assert_eq!(a.common.output, InspectOutput::Json);
            assert!(a.common.show_secrets);
        }
        let split = inspect(&[
            "inspect",
            "--etcd-endpoints",
            "http://a:1,http://b:2",
            "snapshot",
            "n.ns",
            "-o",
            "json",
        ]);
        assert!(matches!(split.command, InspectCommand::Snapshot { ref node } if node == "n.ns"));
        assert_eq!(
            split.common.etcd.etcd_endpoints,
            ["http://a:1", "http://b:2"]
        );
        assert_eq!(split.common.output, InspectOutput::Json);
    }

    #[test]
    fn etcd_endpoints_stay_required() {
        for argv in [
            &["bootes-controller", "inspect", "nodes"][..],
            &["bootes-controller", "run", "--manifests", "/tmp"][..],
        ] {
            let err = Cli::try_parse_args(argv).unwrap_err();
            assert_eq!(
                err.kind(),
                clap::error::ErrorKind::MissingRequiredArgument,
                "{argv:?}"
            );
            assert!(err.to_string().contains("--etcd-endpoints"), "{err}");
        }
        // Commands that never touch etcd do not need it.
        assert!(Cli::try_parse_args(["bootes-controller", "crds"]).is_ok());
        assert!(Cli::try_parse_args(["bootes-controller", "validate", "-f", "x.yaml"]).is_ok());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("5").is_err());
        assert!(parse_duration("5h").is_err());
    }
}
