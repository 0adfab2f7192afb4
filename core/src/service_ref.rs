//! `spec.service` of an Endpoint: the Service whose EndpointSlices give its
//! endpoints. A part of the model (`model::BootesObject`) that
//! `service_endpoints` reads; a module of its own so neither of those two
//! needs the other both ways.

use serde::{Deserialize, Serialize};

use bootes_envoy::convert::ConfigError;

/// `spec.service` of an Endpoint: which Service, which of its ports.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceRef {
    pub name: String,
    pub port: ServicePort,
}

/// A port of the Service, as its EndpointSlices list it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ServicePort {
    /// The slice port with this number: the port the pods listen on (the
    /// Service's target port; slices do not record the Service's own port).
    Number(i32),
    /// The slice port with this name: the name of the Service's port.
    Name(String),
}

impl ServiceRef {
    /// Problems of the reference itself, with their paths.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        if self.name.is_empty() {
            errors.push(ConfigError::new(
                "spec.service.name",
                "the name of a Service in the object's namespace is required",
            ));
        }
        match &self.port {
            ServicePort::Number(n) if !(1..=65535).contains(n) => errors.push(ConfigError::new(
                "spec.service.port",
                format!("{n} is not a port number (1-65535)"),
            )),
            ServicePort::Name(n) if n.is_empty() => errors.push(ConfigError::new(
                "spec.service.port",
                "a port name or number is required",
            )),
            _ => {}
        }
        errors
    }
}
