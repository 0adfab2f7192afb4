//! Filter order: a chain of network filters (a filter chain) or of HTTP
//! filters (an HTTP connection manager) ends with a terminal filter (the
//! TCP proxy, the HTTP connection manager, the router, …), and only there.
//!
//! Which filters are terminal is data (envoy/data/filter_order.txt, its
//! source named there); a filter it does not list is left to Envoy.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;

use prost_reflect::{DynamicMessage, ReflectMessage};

use super::rule::{is_set, values};

/// The table, as shipped.
pub const TABLE: &str = include_str!("../../data/filter_order.txt");

fn table() -> &'static BTreeMap<&'static str, BTreeSet<&'static str>> {
    static PARSED: OnceLock<BTreeMap<&'static str, BTreeSet<&'static str>>> = OnceLock::new();
    PARSED.get_or_init(|| super::slots::sections(TABLE))
}

/// The types the table lists as terminal (`true`) or not (`false`).
pub fn listed(terminal: bool) -> &'static BTreeSet<&'static str> {
    let section = if terminal { "terminal" } else { "non_terminal" };
    table()
        .get(section)
        .expect("filter_order.txt has both sections")
}

/// Whether the type is terminal, when the table says.
pub fn is_terminal(name: &str) -> Option<bool> {
    if listed(true).contains(name) {
        Some(true)
    } else if listed(false).contains(name) {
        Some(false)
    } else {
        None
    }
}

/// A filter of a chain: where it is, and its type when Bootes may judge it
/// (not for a filter from `config_discovery`, nor an optional HTTP filter,
/// which Envoy may skip).
struct Link {
    at: String,
    ty: Option<String>,
}

fn links(chain: &DynamicMessage, field: &str) -> Vec<Link> {
    values(chain, field)
        .into_iter()
        .map(|(at, v)| {
            let ty = v.as_message().and_then(|f| {
                let optional = f.descriptor().get_field_by_name("is_optional").is_some()
                    && is_set(f, "is_optional");
                if is_set(f, "config_discovery") || optional {
                    return None;
                }
                let (_, any) = values(f, "typed_config").into_iter().next()?;
                let url = crate::any::type_url(any.as_message()?);
                crate::any::message_name(&url).map(str::to_owned)
            });
            Link { at, ty }
        })
        .collect()
}

/// A terminal filter that is not the last of `field`'s chain.
fn terminal_not_last(chain: &DynamicMessage, field: &str) -> Option<(String, String)> {
    let links = links(chain, field);
    let n = links.len();
    links.into_iter().take(n.saturating_sub(1)).find_map(|l| {
        let ty = l.ty?;
        (is_terminal(&ty) == Some(true)).then(|| {
            (
                l.at,
                format!("{ty} is a terminal filter: it must be the last of the {n} filters"),
            )
        })
    })
}

/// A last filter of `field`'s chain that is not terminal.
fn last_not_terminal(chain: &DynamicMessage, field: &str) -> Option<(String, String)> {
    let last = links(chain, field).pop()?;
    let ty = last.ty?;
    (is_terminal(&ty) == Some(false)).then(|| {
        (
            last.at,
            format!("{ty} is not a terminal filter: the last filter must be one (the router, the TCP proxy, the HTTP connection manager, …)"),
        )
    })
}

pub(crate) fn network_terminal_not_last(chain: &DynamicMessage) -> Option<(String, String)> {
    terminal_not_last(chain, "filters")
}

pub(crate) fn network_last_not_terminal(chain: &DynamicMessage) -> Option<(String, String)> {
    last_not_terminal(chain, "filters")
}

pub(crate) fn http_terminal_not_last(hcm: &DynamicMessage) -> Option<(String, String)> {
    terminal_not_last(hcm, "http_filters")
}

pub(crate) fn http_last_not_terminal(hcm: &DynamicMessage) -> Option<(String, String)> {
    last_not_terminal(hcm, "http_filters")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_type_is_in_the_envoy_api_and_in_one_section() {
        let pool = bootes_proto::envoy::descriptor_pool();
        for terminal in [true, false] {
            for name in listed(terminal) {
                assert!(pool.get_message_by_name(name).is_some(), "{name}");
                assert_eq!(is_terminal(name), Some(terminal), "{name}");
            }
        }
        assert!(listed(true).intersection(listed(false)).next().is_none());
    }
}
