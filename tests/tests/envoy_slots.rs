//! The extension slot table (envoy/data/extension_slots.txt) against the
//! real Envoy: every (slot, type) pair it lists is taken by
//! `envoy --mode validate` in a minimal config, and a sample of pairs it
//! does not list (types of the other slots) is refused for the slot, as
//! Bootes refuses them.
//!
//! "Taken" means Envoy does not refuse the type for its place. The minimal
//! config leaves the extension's own fields empty, so Envoy may still refuse
//! the extension's contents (a required field, say): that says nothing of
//! the slot and is not counted.

use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use anyhow::{ensure, Context, Result};
use bootes_envoy::convert::slots::{misfit, types, Slot};
use bootes_tests::harness::{find_envoy, test_dir};
use serde_json::{json, Value};

/// Envoy's words for a type that does not fit its place.
const SLOT_REFUSALS: &[&str] = &[
    "Didn't find a registered implementation",
    "doesn't support virtual host or route specific configurations",
    "could not find @type",
];

fn typed(name: &str) -> Value {
    json!({"@type": format!("type.googleapis.com/{name}")})
}

const ROUTER: &str = "envoy.extensions.filters.http.router.v3.Router";

fn cluster(transport_socket: Option<Value>) -> Value {
    let mut c = json!({"name": "c", "connect_timeout": "1s", "load_assignment": {"cluster_name": "c",
        "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address":
            {"address": "127.0.0.1", "port_value": 1}}}}]}]}});
    if let Some(ts) = transport_socket {
        c["transport_socket"] = json!({"name": "t", "typed_config": ts});
    }
    c
}

fn tcp_listener(chain: Value, listener_filters: Value) -> Value {
    json!({"name": "l", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
        "listener_filters": listener_filters, "filter_chains": [chain]})
}

fn tcp_proxy() -> Value {
    json!({"name": "tcp", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
        "stat_prefix": "t", "cluster": "c"}})
}

/// An HTTP connection manager; `edit` changes its config, `route` its route.
fn hcm(edit: impl FnOnce(&mut Value), route: impl FnOnce(&mut Value)) -> Value {
    let mut r = json!({"match": {"prefix": "/"}, "route": {"cluster": "c"}});
    route(&mut r);
    let mut h = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "h",
        "route_config": {"virtual_hosts": [{"name": "v", "domains": ["*"], "routes": [r]}]},
        "http_filters": [{"name": "r", "typed_config": typed(ROUTER)}]});
    edit(&mut h);
    json!({"name": "h", "typed_config": h})
}

/// A bootstrap with `ty` (empty) in `slot`.
fn bootstrap(slot: Slot, ty: &str) -> Value {
    let t = typed(ty);
    let (listener, transport) = match slot {
        Slot::Network => (
            tcp_listener(
                json!({"filters": [{"name": "x", "typed_config": t}]}),
                json!([]),
            ),
            None,
        ),
        Slot::Http => (
            tcp_listener(
                json!({"filters": [hcm(|h| {
                    let router = h["http_filters"][0].clone();
                    h["http_filters"] = json!([{"name": "x", "typed_config": t}, router]);
                }, |_| {})]}),
                json!([]),
            ),
            None,
        ),
        Slot::Listener => (
            tcp_listener(
                json!({"filters": [tcp_proxy()]}),
                json!([{"name": "x", "typed_config": t}]),
            ),
            None,
        ),
        Slot::UdpListener => (
            json!({"name": "u", "address": {"socket_address": {"protocol": "UDP",
                "address": "127.0.0.1", "port_value": 10001}},
                "listener_filters": [{"name": "x", "typed_config": t}]}),
            None,
        ),
        Slot::AccessLogger => (
            tcp_listener(
                json!({"filters": [hcm(|h| h["access_log"] = json!([{"name": "a", "typed_config": t}]), |_| {})]}),
                json!([]),
            ),
            None,
        ),
        Slot::UpstreamTransport => (
            tcp_listener(json!({"filters": [tcp_proxy()]}), json!([])),
            Some(t),
        ),
        Slot::DownstreamTransport => (
            tcp_listener(
                json!({"filters": [tcp_proxy()], "transport_socket": {"name": "t", "typed_config": t}}),
                json!([]),
            ),
            None,
        ),
        Slot::Tracer => (
            tcp_listener(
                json!({"filters": [hcm(|h| h["tracing"] = json!({"provider": {"name": "t", "typed_config": t}}), |_| {})]}),
                json!([]),
            ),
            None,
        ),
        Slot::RetryHostPredicate => (
            tcp_listener(
                json!({"filters": [hcm(|_| {}, |r| r["route"]["retry_policy"] =
                    json!({"retry_host_predicate": [{"name": "p", "typed_config": t}]}))]}),
                json!([]),
            ),
            None,
        ),
        Slot::RetryPriority => (
            tcp_listener(
                json!({"filters": [hcm(|_| {}, |r| r["route"]["retry_policy"] =
                    json!({"retry_priority": {"name": "p", "typed_config": t}}))]}),
                json!([]),
            ),
            None,
        ),
        Slot::PerRoute => (
            tcp_listener(
                json!({"filters": [hcm(|_| {}, |r| r["typed_per_filter_config"] = json!({"x": t}))]}),
                json!([]),
            ),
            None,
        ),
    };
    json!({"static_resources": {"clusters": [cluster(transport)], "listeners": [listener]}})
}

/// Envoy's error for a bootstrap (`None`: accepted).
fn envoy_error(envoy: &Path, dir: &Path, i: usize, config: &Value) -> Result<Option<String>> {
    let path = dir.join(format!("slot-{i:04}.json"));
    std::fs::write(&path, serde_json::to_vec(config)?)?;
    let out = Command::new(envoy)
        .args(["--mode", "validate", "--log-level", "critical", "-c"])
        .arg(&path)
        .output()
        .with_context(|| format!("running {}", envoy.display()))?;
    if out.status.success() {
        return Ok(None);
    }
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    Ok(Some(text.split_whitespace().collect::<Vec<_>>().join(" ")))
}

fn refused_for_the_slot(error: &Option<String>) -> bool {
    error
        .as_deref()
        .is_some_and(|e| SLOT_REFUSALS.iter().any(|r| e.contains(r)))
}

#[test]
fn every_listed_pair_is_taken_by_envoy_and_unlisted_ones_are_refused() -> Result<()> {
    let envoy = find_envoy()?;
    let dir = test_dir("slots")?;
    // (slot, type, listed)
    let mut cases: Vec<(Slot, &str, bool)> = Vec::new();
    for slot in Slot::ALL {
        for ty in types(slot) {
            cases.push((slot, ty, true));
        }
        // Two types of every other slot that this one does not list.
        for other in Slot::ALL.iter().filter(|o| **o != slot) {
            let wrong = types(*other).iter().filter(|t| !types(slot).contains(*t));
            for ty in wrong.take(2) {
                cases.push((slot, ty, false));
            }
        }
    }
    let next = AtomicUsize::new(0);
    let errors: Mutex<Vec<(usize, Result<Option<String>>)>> = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some((slot, ty, _)) = cases.get(i) else {
                    break;
                };
                let e = envoy_error(&envoy, dir.path(), i, &bootstrap(*slot, ty));
                errors.lock().unwrap().push((i, e));
            });
        }
    });
    let mut errors = errors.into_inner().unwrap();
    errors.sort_by_key(|(i, _)| *i);
    let mut wrong = Vec::new();
    let (mut listed, mut unlisted) = (0, 0);
    for (i, error) in errors {
        let (slot, ty, is_listed) = cases[i];
        let error = error?;
        let refused = refused_for_the_slot(&error);
        let bootes = misfit(&[slot], ty);
        if is_listed {
            listed += 1;
            if refused || bootes.is_some() {
                wrong.push(format!(
                    "{slot:?} {ty}: listed, but Envoy says {error:?}, Bootes {bootes:?}"
                ));
            }
        } else {
            unlisted += 1;
            if !refused || bootes.is_none() {
                wrong.push(format!(
                    "{slot:?} {ty}: not listed, but Envoy says {error:?}, Bootes {bootes:?}"
                ));
            }
        }
    }
    eprintln!(
        "slot pairs: {listed} listed, {unlisted} not listed; {} wrong",
        wrong.len()
    );
    ensure!(
        wrong.is_empty(),
        "the table disagrees with Envoy:\n{}",
        wrong.join("\n")
    );
    Ok(())
}

/// A minimal valid config of each terminal filter of
/// envoy/data/filter_order.txt.
fn terminal_config(ty: &str) -> Value {
    let mut t = typed(ty);
    match ty.rsplit('.').next() {
        Some("TcpProxy") => {
            t["stat_prefix"] = json!("t");
            t["cluster"] = json!("c");
        }
        Some("HttpConnectionManager") => return hcm(|_| {}, |_| {})["typed_config"].clone(),
        _ => {}
    }
    t
}

/// A bootstrap with `filters` as the chain of their kind.
fn chain_bootstrap(ty: &str, filters: Value) -> Value {
    let listener = if ty.starts_with("envoy.extensions.filters.http.") {
        tcp_listener(
            json!({"filters": [hcm(|h| h["http_filters"] = filters, |_| {})]}),
            json!([]),
        )
    } else {
        tcp_listener(json!({ "filters": filters }), json!([]))
    };
    json!({"static_resources": {"clusters": [cluster(None)], "listeners": [listener]}})
}

/// The filter order table: every non-terminal type alone in its chain makes
/// Envoy say so; every terminal type is taken alone, and refused before
/// another.
#[test]
fn the_filter_order_table_agrees_with_envoy() -> Result<()> {
    use bootes_envoy::convert::filter_order::listed;
    let envoy = find_envoy()?;
    let dir = test_dir("filter-order")?;
    let mut cases: Vec<(String, Value, &str)> = Vec::new();
    for ty in listed(false) {
        let alone = json!([{"name": "x", "typed_config": typed(ty)}]);
        cases.push((
            format!("{ty} alone"),
            chain_bootstrap(ty, alone),
            "non-terminal filter named x",
        ));
    }
    for ty in listed(true) {
        let f = json!({"name": "x", "typed_config": terminal_config(ty)});
        cases.push((format!("{ty} alone"), chain_bootstrap(ty, json!([f])), ""));
        cases.push((
            format!("{ty} twice"),
            chain_bootstrap(ty, json!([f, f])),
            "terminal filter named x",
        ));
    }
    let mut wrong = Vec::new();
    for (i, (what, config, words)) in cases.iter().enumerate() {
        let error = envoy_error(&envoy, dir.path(), 1000 + i, config)?;
        let ok = match (words.is_empty(), &error) {
            (true, None) => true,
            (false, Some(e)) => {
                e.contains(words) && e.contains("must be the last") != words.starts_with("non")
            }
            _ => false,
        };
        if !ok {
            wrong.push(format!("{what}: Envoy says {error:?}"));
        }
    }
    eprintln!("filter order: {} cases, {} wrong", cases.len(), wrong.len());
    ensure!(wrong.is_empty(), "{}", wrong.join("\n"));
    Ok(())
}
