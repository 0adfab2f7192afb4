//! Endpoints from a Service: an `Endpoint` whose `spec.service` names a
//! Kubernetes Service gets its ClusterLoadAssignment filled from that
//! Service's `discovery.k8s.io/v1` EndpointSlices. Pure: no I/O.
//!
//! The result is the object's `spec.config` (cluster name, policy, …) with
//! `endpoints` written in, as proto3 JSON; it then goes through the same
//! conversion and validation as any written config. The output depends only
//! on what Envoy would see (sorted, duplicates merged), so a slice change that
//! does not change the endpoints (a label, a reordering, a slice split in two)
//! yields the same resource, the same version, and no write.

use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Deserialize;
use serde_json::{json, Value};

use bootes_proto::ResourceType;

use crate::model::BootesObject;
use crate::service_ref::{ServicePort, ServiceRef};
use bootes_envoy::convert::{ConfigError, CONFIG_PATH};

/// Label naming the Service an EndpointSlice belongs to.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// API version and kind of the slices read.
pub const SLICE_API_VERSION: &str = "discovery.k8s.io/v1";
pub const SLICE_KIND: &str = "EndpointSlice";
/// Topology keys of the (deprecated) per-endpoint topology map.
const ZONE_KEY: &str = "topology.kubernetes.io/zone";
const REGION_KEY: &str = "topology.kubernetes.io/region";

/// Where an Endpoint's addresses come from: written in `spec.config.endpoints`
/// or taken from the Service named by `spec.service` — exactly one of them.
pub fn check_source(config: &Value, service: Option<&ServiceRef>) -> Vec<ConfigError> {
    let listed = config.get("endpoints").is_some();
    match (listed, service) {
        (true, Some(_)) => vec![ConfigError::new(
            "spec.service",
            format!(
                "an Endpoint takes its endpoints from {CONFIG_PATH}.endpoints or from spec.service, not both"
            ),
        )],
        (false, None) => vec![ConfigError::new(
            "spec",
            format!(
                "an Endpoint needs {CONFIG_PATH}.endpoints (addresses written out) or spec.service (a Service whose EndpointSlices give them)"
            ),
        )],
        (false, Some(service)) => service.check(),
        (true, None) => Vec::new(),
    }
}

/// Identity of an EndpointSlice.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SliceKey {
    pub namespace: String,
    pub name: String,
}

impl std::fmt::Display for SliceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "EndpointSlice {}/{}", self.namespace, self.name)
    }
}

/// An EndpointSlice, reduced to what the load assignment needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointSlice {
    pub key: SliceKey,
    /// The Service it belongs to (its `kubernetes.io/service-name` label).
    pub service: String,
    /// `IPv4`, `IPv6` or `FQDN`.
    pub address_type: String,
    pub ports: Vec<SlicePort>,
    pub endpoints: Vec<SliceEndpoint>,
}

#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SlicePort {
    /// The Service port's name; empty for a Service's single unnamed port.
    #[serde(default)]
    pub name: Option<String>,
    /// Absent means "all ports", which names no port Envoy could use.
    #[serde(default)]
    pub port: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SliceEndpoint {
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default)]
    pub conditions: Conditions,
    #[serde(default)]
    pub zone: Option<String>,
    #[serde(default)]
    pub deprecated_topology: BTreeMap<String, String>,
}

/// Endpoint conditions; absent ones take Kubernetes' documented defaults.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
pub struct Conditions {
    #[serde(default)]
    pub ready: Option<bool>,
    #[serde(default)]
    pub serving: Option<bool>,
    #[serde(default)]
    pub terminating: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSlice {
    #[serde(default)]
    metadata: RawMeta,
    #[serde(default)]
    address_type: String,
    #[serde(default)]
    ports: Option<Vec<SlicePort>>,
    #[serde(default)]
    endpoints: Option<Vec<SliceEndpoint>>,
}

#[derive(Default, Deserialize)]
struct RawMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl EndpointSlice {
    /// Reads a `discovery.k8s.io/v1` EndpointSlice object (JSON, as the API
    /// serves it or as a manifest document gives it). `default_namespace`
    /// applies when the object names none. Fields Bootes does not use are
    /// ignored; the error names the field (the caller names the slice).
    pub fn from_object(value: Value, default_namespace: &str) -> Result<Self, String> {
        let raw: RawSlice = serde_json::from_value(value).map_err(|e| e.to_string())?;
        let namespace = raw
            .metadata
            .namespace
            .filter(|ns| !ns.is_empty())
            .unwrap_or_else(|| default_namespace.to_string());
        let key = SliceKey {
            namespace,
            name: raw.metadata.name,
        };
        if key.name.is_empty() {
            return Err("metadata.name: an EndpointSlice needs a name".into());
        }
        let service = raw
            .metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .filter(|s| !s.is_empty())
            .cloned()
            .ok_or_else(|| {
                format!(
                    "metadata.labels: the {SERVICE_NAME_LABEL} label is required (it names the Service)"
                )
            })?;
        if !matches!(raw.address_type.as_str(), "IPv4" | "IPv6" | "FQDN") {
            return Err(format!(
                "addressType: {:?} is not IPv4, IPv6 or FQDN",
                raw.address_type
            ));
        }
        Ok(Self {
            key,
            service,
            address_type: raw.address_type,
            ports: raw.ports.unwrap_or_default(),
            endpoints: raw.endpoints.unwrap_or_default(),
        })
    }

    /// The number of this slice's port named by `port`: `None` when the
    /// slice has no such port (it serves other ports of the Service), an
    /// error naming the field when it has one that is not a port number.
    fn port_number(&self, port: &ServicePort) -> Option<Result<u16, ConfigError>> {
        let (i, found) = self.ports.iter().enumerate().find(|(_, p)| match port {
            ServicePort::Name(name) => p.name.as_deref().unwrap_or("") == name,
            ServicePort::Number(n) => p.port == Some(*n),
        })?;
        Some(
            found
                .port
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
                .ok_or_else(|| {
                    let what = match found.port {
                        Some(n) => format!("{n} is not a port number (1-65535)"),
                        None => "absent (\"all ports\"): no port Envoy could connect to".into(),
                    };
                    self.problem(
                        &format!("ports[{i}].port"),
                        format!("{what}; the slice's endpoints are left out"),
                    )
                }),
        )
    }

    /// Why `endpoint` (number `i`) has no address Envoy can use, if so.
    fn address_problem(&self, i: usize, endpoint: &SliceEndpoint) -> Result<IpAddr, ConfigError> {
        let Some(first) = endpoint.addresses.first() else {
            return Err(self.problem(
                &format!("endpoints[{i}].addresses"),
                "no address; this endpoint is left out",
            ));
        };
        let field = format!("endpoints[{i}].addresses[0]");
        let ip = first.parse::<IpAddr>().map_err(|_| {
            self.problem(
                &field,
                format!(
                    "{first:?} is not an {} address; this endpoint is left out",
                    self.address_type
                ),
            )
        })?;
        let family = match ip {
            IpAddr::V4(_) => "IPv4",
            IpAddr::V6(_) => "IPv6",
        };
        if family != self.address_type {
            return Err(self.problem(
                &field,
                format!(
                    "{first:?} is an {family} address in an {} slice (addressType); this endpoint is left out",
                    self.address_type
                ),
            ));
        }
        Ok(ip)
    }

    /// A problem with `field` of this slice, as the Endpoint that uses it
    /// reports it (at `spec.service`, naming the slice and the field).
    fn problem(&self, field: &str, message: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(SERVICE_PATH, format!("{}: {field}: {message}", self.key))
    }
}

/// Where an Endpoint reports the problems of its Service's slices.
const SERVICE_PATH: &str = "spec.service";

/// At most this many slice problems are reported per Endpoint; a last line
/// counts the rest (a Service with thousands of malformed endpoints must not
/// make a status larger than the object).
pub const MAX_SLICE_WARNINGS: usize = 5;

/// How an endpoint takes part, from its conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Health {
    /// Ready: takes new requests.
    Healthy,
    /// Terminating but still serving: finishes what it has, no new requests.
    Draining,
}

impl Health {
    /// `ready` and `serving` default to true, `terminating` to false (the
    /// EndpointSlice API's rules for absent conditions). Not ready and not
    /// serving-while-terminating: left out.
    fn of(c: &Conditions) -> Option<Self> {
        let ready = c.ready.unwrap_or(true);
        let serving = c.serving.unwrap_or(true);
        let terminating = c.terminating.unwrap_or(false);
        if ready {
            Some(Health::Healthy)
        } else if serving && terminating {
            Some(Health::Draining)
        } else {
            None
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Health::Healthy => "HEALTHY",
            Health::Draining => "DRAINING",
        }
    }
}

/// (region, zone) of an endpoint; empty strings when unknown.
type Locality = (String, String);

/// The load assignment of an Endpoint that names a Service.
#[derive(Clone, Debug, PartialEq)]
pub struct LoadAssignment {
    /// `spec.config` with `endpoints` filled in.
    pub config: Value,
    /// How many lb_endpoints it has.
    pub endpoints: usize,
    /// What of the slices could not be used, naming each slice and field
    /// (at most [`MAX_SLICE_WARNINGS`], then a line counting the rest).
    pub warnings: Vec<ConfigError>,
}

/// Fills `config`'s `endpoints` from `slices` (the Service's EndpointSlices,
/// in any order): one lb_endpoint per usable address on `port`, grouped by
/// locality, sorted. The rest of `config` is kept as written.
///
/// * Ready endpoints are HEALTHY; serving-but-terminating ones DRAINING; the
///   others are left out.
/// * An endpoint's first address is used (Kubernetes: the addresses of one
///   endpoint are fungible); one that is not an IP of the slice's address
///   type is left out, as are FQDN slices (an EDS cluster takes IPs only)
///   and slices whose port is not a port number: each is a warning naming
///   the slice and the field, never a silent skip. IPv4 and IPv6 slices of a
///   dual-stack Service both contribute.
/// * The locality's zone is the endpoint's `zone` (else
///   `topology.kubernetes.io/zone` of its topology), its region
///   `topology.kubernetes.io/region` when given.
/// * The same address and port in two slices (as while a slice is split)
///   is one endpoint, with the better health.
pub fn load_assignment(
    config: &Value,
    port: &ServicePort,
    slices: &[&EndpointSlice],
) -> LoadAssignment {
    let mut best: BTreeMap<(IpAddr, u16), (Health, Locality)> = BTreeMap::new();
    let mut warnings = Vec::new();
    for slice in slices {
        let port_number = match slice.port_number(port) {
            None => continue,
            Some(Ok(n)) => n,
            Some(Err(problem)) => {
                warnings.push(problem);
                continue;
            }
        };
        if slice.address_type == "FQDN" {
            warnings.push(slice.problem(
                "addressType",
                "FQDN slices are not used (an EDS cluster takes IP addresses); the slice's endpoints are left out",
            ));
            continue;
        }
        for (i, endpoint) in slice.endpoints.iter().enumerate() {
            // Checked whatever the endpoint's conditions: a malformed
            // endpoint is named even while it is not ready.
            let ip = match slice.address_problem(i, endpoint) {
                Ok(ip) => ip,
                Err(problem) => {
                    warnings.push(problem);
                    continue;
                }
            };
            let Some(health) = Health::of(&endpoint.conditions) else {
                continue;
            };
            let locality = locality_of(endpoint);
            let candidate = (health, locality);
            best.entry((ip, port_number))
                .and_modify(|seen| {
                    if candidate < *seen {
                        *seen = candidate.clone();
                    }
                })
                .or_insert(candidate);
        }
    }
    if warnings.len() > MAX_SLICE_WARNINGS {
        let more = warnings.len() - MAX_SLICE_WARNINGS;
        warnings.truncate(MAX_SLICE_WARNINGS);
        warnings.push(ConfigError::new(
            SERVICE_PATH,
            format!("{more} more EndpointSlice problems not shown"),
        ));
    }

    let endpoints = best.len();
    let mut by_locality: BTreeMap<Locality, Vec<Value>> = BTreeMap::new();
    for ((ip, port_number), (health, locality)) in best {
        by_locality.entry(locality).or_default().push(json!({
            "endpoint": {"address": {"socket_address": {
                "address": ip.to_string(),
                "port_value": port_number,
            }}},
            "health_status": health.as_str(),
        }));
    }
    let groups: Vec<Value> = by_locality
        .into_iter()
        .map(|((region, zone), lb_endpoints)| {
            let mut group = json!({"lb_endpoints": lb_endpoints});
            if !region.is_empty() || !zone.is_empty() {
                let mut locality = serde_json::Map::new();
                if !region.is_empty() {
                    locality.insert("region".into(), region.into());
                }
                if !zone.is_empty() {
                    locality.insert("zone".into(), zone.into());
                }
                group["locality"] = Value::Object(locality);
            }
            group
        })
        .collect();

    let mut config = config.clone();
    if let Value::Object(map) = &mut config {
        map.insert("endpoints".into(), Value::Array(groups));
    }
    LoadAssignment {
        config,
        endpoints,
        warnings,
    }
}

/// What an object is converted from when it is not its `spec.config` as
/// written (`None`, not a copy of it: 100 KB objects): for an Endpoint
/// naming a Service, that config with the endpoints of `slices` (every
/// slice of the object's namespace may be given; those of other Services
/// are ignored). `endpoints` counts the generated lb_endpoints.
/// The one evaluation `run` and `validate` share.
pub fn effective_config<'a>(
    object: &BootesObject,
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Result<Option<LoadAssignment>, Vec<ConfigError>> {
    let is_endpoint = object.key.kind == ResourceType::Endpoint;
    let errors = match (&object.service, is_endpoint) {
        (Some(_), false) => vec![ConfigError::new(
            "spec.service",
            "only an Endpoint takes its endpoints from a Service",
        )],
        (service, true) => check_source(&object.config, service.as_ref()),
        (None, false) => Vec::new(),
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let Some(service) = &object.service else {
        return Ok(None);
    };
    let own: Vec<&EndpointSlice> = slices
        .into_iter()
        .filter(|s| s.key.namespace == object.key.namespace && s.service == service.name)
        .collect();
    Ok(Some(load_assignment(&object.config, &service.port, &own)))
}

fn locality_of(endpoint: &SliceEndpoint) -> Locality {
    let topology = |key: &str| {
        endpoint
            .deprecated_topology
            .get(key)
            .cloned()
            .unwrap_or_default()
    };
    let zone = endpoint
        .zone
        .clone()
        .filter(|z| !z.is_empty())
        .unwrap_or_else(|| topology(ZONE_KEY));
    (topology(REGION_KEY), zone)
}

#[cfg(test)]
mod tests;
