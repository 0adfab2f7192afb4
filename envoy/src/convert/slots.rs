//! Extension slots: the `typed_config` types Envoy takes in each place an
//! extension goes (network, HTTP and listener filters, access loggers,
//! transport sockets, tracers, retry predicates, per-route configs, ...).
//!
//! The table is data (envoy/data/extension_slots.txt, its source named
//! there). A type fits a slot when the table lists it there. A type the
//! table lists only elsewhere, or a type outside `envoy.extensions.` the
//! table does not list at all, does not fit: Envoy finds no implementation
//! for it. A type under `envoy.extensions.` the table does not know (a
//! contrib extension, say) is left to Envoy, so that the table can never
//! refuse what an Envoy build with more extensions takes.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use prost_reflect::Value;

/// The table, as shipped.
pub const TABLE: &str = include_str!("../../data/extension_slots.txt");

/// The places a `typed_config` goes, by the table's section names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Network,
    Http,
    Listener,
    UdpListener,
    AccessLogger,
    UpstreamTransport,
    DownstreamTransport,
    Tracer,
    RetryHostPredicate,
    RetryPriority,
    PerRoute,
}

impl Slot {
    pub const ALL: [Slot; 11] = [
        Slot::Network,
        Slot::Http,
        Slot::Listener,
        Slot::UdpListener,
        Slot::AccessLogger,
        Slot::UpstreamTransport,
        Slot::DownstreamTransport,
        Slot::Tracer,
        Slot::RetryHostPredicate,
        Slot::RetryPriority,
        Slot::PerRoute,
    ];

    /// The section of the table.
    pub fn section(self) -> &'static str {
        match self {
            Slot::Network => "envoy.filters.network",
            Slot::Http => "envoy.filters.http",
            Slot::Listener => "envoy.filters.listener",
            Slot::UdpListener => "envoy.filters.udp_listener",
            Slot::AccessLogger => "envoy.access_loggers",
            Slot::UpstreamTransport => "envoy.transport_sockets.upstream",
            Slot::DownstreamTransport => "envoy.transport_sockets.downstream",
            Slot::Tracer => "envoy.tracers",
            Slot::RetryHostPredicate => "envoy.retry_host_predicates",
            Slot::RetryPriority => "envoy.retry_priorities",
            Slot::PerRoute => "per_route",
        }
    }

    /// What a type of the slot is, in words.
    pub fn what(self) -> &'static str {
        match self {
            Slot::Network => "a network filter",
            Slot::Http => "an HTTP filter",
            Slot::Listener => "a listener filter",
            Slot::UdpListener => "a UDP listener filter",
            Slot::AccessLogger => "an access logger",
            Slot::UpstreamTransport => "an upstream (cluster) transport socket",
            Slot::DownstreamTransport => "a downstream (listener) transport socket",
            Slot::Tracer => "a tracer",
            Slot::RetryHostPredicate => "a retry host predicate",
            Slot::RetryPriority => "a retry priority",
            Slot::PerRoute => "a per-route config of an HTTP filter that takes one",
        }
    }
}

/// Section name → the message full names listed in it.
pub fn table() -> &'static BTreeMap<&'static str, BTreeSet<&'static str>> {
    static PARSED: OnceLock<BTreeMap<&'static str, BTreeSet<&'static str>>> = OnceLock::new();
    PARSED.get_or_init(|| sections(TABLE))
}

/// A data file of `[section]` lines, each followed by names, one a line
/// (`#` starts a comment line): section → names.
pub(crate) fn sections(text: &'static str) -> BTreeMap<&'static str, BTreeSet<&'static str>> {
    let mut out: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut section = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name);
            out.entry(name).or_default();
        } else if let Some(s) = section {
            out.entry(s).or_default().insert(line);
        }
    }
    out
}

/// The types a slot takes.
pub fn types(slot: Slot) -> &'static BTreeSet<&'static str> {
    table()
        .get(slot.section())
        .expect("every slot has a section in extension_slots.txt")
}

/// The per-route wrapper, whose `config` is checked as a per-route config.
const FILTER_CONFIG: &str = "envoy.config.route.v3.FilterConfig";

/// Why the type `name` does not fit any of `slots` (`None`: it fits, or is
/// left to Envoy).
pub fn misfit(slots: &[Slot], name: &str) -> Option<String> {
    if slots.iter().any(|s| types(*s).contains(name))
        || (slots.contains(&Slot::PerRoute) && name == FILTER_CONFIG)
    {
        return None;
    }
    let elsewhere: Vec<&str> = Slot::ALL
        .iter()
        .filter(|s| !slots.contains(s) && types(**s).contains(name))
        .map(|s| s.what())
        .collect();
    let expected = slots
        .iter()
        .map(|s| s.what())
        .collect::<Vec<_>>()
        .join(" or ");
    if !elsewhere.is_empty() {
        Some(format!(
            "{name} is {}, not {expected}",
            elsewhere.join(" and ")
        ))
    } else if !name.starts_with("envoy.extensions.") {
        Some(format!("{name} is not {expected}"))
    } else {
        None
    }
}

/// [`misfit`] for an `Any` value (an empty `Any` is another rule's
/// business).
pub fn any_misfit(slots: &[Slot], any: &Value) -> Option<String> {
    let any = any.as_message()?;
    let url = crate::any::type_url(any);
    let name = crate::any::message_name(&url)?;
    misfit(slots, name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_has_types_and_every_type_is_in_the_envoy_api() {
        let pool = bootes_proto::envoy::descriptor_pool();
        for slot in Slot::ALL {
            assert!(!types(slot).is_empty(), "{slot:?}");
            for name in types(slot) {
                assert!(
                    pool.get_message_by_name(name).is_some(),
                    "{slot:?}: {name} is not a message of the Envoy API"
                );
            }
        }
    }

    #[test]
    fn types_fit_their_slots_only() {
        let router = "envoy.extensions.filters.http.router.v3.Router";
        let hcm =
            "envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
        assert_eq!(misfit(&[Slot::Http], router), None);
        assert_eq!(misfit(&[Slot::Network], hcm), None);
        let e = misfit(&[Slot::Network], router).unwrap();
        assert!(e.contains("is an HTTP filter, not a network filter"), "{e}");
        assert!(misfit(&[Slot::PerRoute], router).is_some());
        assert_eq!(misfit(&[Slot::PerRoute], FILTER_CONFIG), None);
        // Outside the extensions: not an extension at all.
        assert!(misfit(&[Slot::Http], "google.protobuf.Struct").is_some());
        // An extension the table does not know is Envoy's to judge.
        assert_eq!(
            misfit(
                &[Slot::Http],
                "envoy.extensions.filters.http.not_listed.v3.X"
            ),
            None
        );
    }
}
