use bootes_proto::ResourceType;
use serde_json::json;

use super::*;
use bootes_envoy::convert;

/// A slice of Service `web` in namespace `foo` from its API JSON.
fn slice(name: &str, address_type: &str, ports: Value, endpoints: Value) -> EndpointSlice {
    EndpointSlice::from_object(
        json!({
            "apiVersion": SLICE_API_VERSION, "kind": SLICE_KIND,
            "metadata": {"name": name, "namespace": "foo",
                         "labels": {SERVICE_NAME_LABEL: "web"}},
            "addressType": address_type,
            "ports": ports,
            "endpoints": endpoints,
        }),
        "default",
    )
    .unwrap()
}

fn http_port() -> Value {
    json!([{"name": "http", "port": 8080, "protocol": "TCP"},
           {"name": "metrics", "port": 9090, "protocol": "TCP"}])
}

fn ready(ip: &str) -> Value {
    json!({"addresses": [ip], "conditions": {"ready": true, "serving": true, "terminating": false}})
}

fn config() -> Value {
    json!({"cluster_name": "web", "policy": {"overprovisioning_factor": 140}})
}

fn by_name(name: &str) -> ServicePort {
    ServicePort::Name(name.into())
}

/// (address, port, health) of every lb_endpoint, with its zone.
fn flat(config: &Value) -> Vec<(String, u64, String, String)> {
    let mut out = Vec::new();
    for group in config["endpoints"].as_array().unwrap() {
        let zone = group["locality"]["zone"].as_str().unwrap_or("").to_string();
        for lb in group["lb_endpoints"].as_array().unwrap() {
            let sa = &lb["endpoint"]["address"]["socket_address"];
            out.push((
                sa["address"].as_str().unwrap().to_string(),
                sa["port_value"].as_u64().unwrap(),
                lb["health_status"].as_str().unwrap().to_string(),
                zone.clone(),
            ));
        }
    }
    out
}

fn healthy(ip: &str, port: u64) -> (String, u64, String, String) {
    (ip.into(), port, "HEALTHY".into(), String::new())
}

#[test]
fn keeps_the_config_and_adds_one_endpoint_per_ready_address_on_the_named_port() {
    let s = slice(
        "web-1",
        "IPv4",
        http_port(),
        json!([ready("10.0.0.2"), ready("10.0.0.1")]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&s]);
    assert_eq!(la.config["cluster_name"], "web");
    assert_eq!(la.config["policy"], json!({"overprovisioning_factor": 140}));
    assert_eq!(la.endpoints, 2);
    assert_eq!(
        flat(&la.config),
        [healthy("10.0.0.1", 8080), healthy("10.0.0.2", 8080)]
    );
    // The other port of the same slice, by name.
    let la = load_assignment(&config(), &by_name("metrics"), &[&s]);
    assert_eq!(flat(&la.config)[0].1, 9090);
}

#[test]
fn a_port_number_selects_the_slice_port_with_that_number() {
    let s = slice("web-1", "IPv4", http_port(), json!([ready("10.0.0.1")]));
    let la = load_assignment(&config(), &ServicePort::Number(9090), &[&s]);
    assert_eq!(flat(&la.config), [healthy("10.0.0.1", 9090)]);
    // A Service's single unnamed port is found by number, or by the empty name.
    let unnamed = slice(
        "web-2",
        "IPv4",
        json!([{"port": 80}]),
        json!([ready("10.0.0.3")]),
    );
    let la = load_assignment(&config(), &ServicePort::Number(80), &[&unnamed]);
    assert_eq!(la.endpoints, 1);
    let la = load_assignment(&config(), &by_name(""), &[&unnamed]);
    assert_eq!(la.endpoints, 1);
}

#[test]
fn a_slice_without_the_port_contributes_nothing() {
    let s = slice("web-1", "IPv4", http_port(), json!([ready("10.0.0.1")]));
    for port in [by_name("grpc"), ServicePort::Number(80)] {
        let la = load_assignment(&config(), &port, &[&s]);
        assert_eq!(la.endpoints, 0);
        assert_eq!(la.config["endpoints"], json!([]));
    }
    // A port without a number ("all ports") names nothing Envoy could dial.
    let all = slice(
        "web-2",
        "IPv4",
        json!([{"name": "http"}]),
        json!([ready("10.0.0.1")]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&all]);
    assert_eq!(la.endpoints, 0);
    assert_eq!(
        messages(&la),
        [
            r#"EndpointSlice foo/web-2: ports[0].port: absent ("all ports"): no port Envoy could connect to; the slice's endpoints are left out"#
        ]
    );
    // A slice that simply lacks the port serves other ports: no warning.
    let la = load_assignment(&config(), &by_name("grpc"), &[&s]);
    assert!(la.warnings.is_empty(), "{:?}", la.warnings);
}

/// The warnings' messages (every one is at `spec.service`).
fn messages(la: &LoadAssignment) -> Vec<String> {
    for w in &la.warnings {
        assert_eq!(w.path, "spec.service", "{w}");
    }
    la.warnings.iter().map(|w| w.message.clone()).collect()
}

#[test]
fn a_slice_port_that_is_not_a_port_number_is_named() {
    for (number, what) in [
        (0, "0 is not a port number (1-65535)"),
        (70000, "70000 is not a port number (1-65535)"),
        (-1, "-1 is not a port number (1-65535)"),
    ] {
        let s = slice(
            "web-1",
            "IPv4",
            json!([{"name": "metrics", "port": 9090}, {"name": "http", "port": number}]),
            json!([ready("10.0.0.1")]),
        );
        let la = load_assignment(&config(), &by_name("http"), &[&s]);
        assert_eq!(la.endpoints, 0);
        assert_eq!(
            messages(&la),
            [format!("EndpointSlice foo/web-1: ports[1].port: {what}; the slice's endpoints are left out")]
        );
    }
}

#[test]
fn terminating_but_serving_is_draining_and_not_ready_is_left_out() {
    let s = slice(
        "web-1",
        "IPv4",
        http_port(),
        json!([
            ready("10.0.0.1"),
            {"addresses": ["10.0.0.2"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.0.0.3"], "conditions": {"ready": false, "serving": false, "terminating": true}},
            {"addresses": ["10.0.0.4"], "conditions": {"ready": false, "serving": false, "terminating": false}},
            // Starting up: serving is false too, so not DRAINING either.
            {"addresses": ["10.0.0.5"], "conditions": {"ready": false}},
            // Absent conditions mean ready (the API's rule for nil).
            {"addresses": ["10.0.0.6"]},
        ]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&s]);
    assert_eq!(
        flat(&la.config),
        [
            healthy("10.0.0.1", 8080),
            ("10.0.0.2".into(), 8080, "DRAINING".into(), String::new()),
            healthy("10.0.0.6", 8080),
        ]
    );
    assert_eq!(la.endpoints, 3);
}

#[test]
fn the_zone_becomes_the_locality() {
    let s = slice(
        "web-1",
        "IPv4",
        http_port(),
        json!([
            {"addresses": ["10.0.0.1"], "zone": "zone-b"},
            {"addresses": ["10.0.0.2"], "zone": "zone-a"},
            {"addresses": ["10.0.0.3"],
             "deprecatedTopology": {"topology.kubernetes.io/zone": "zone-a",
                                    "topology.kubernetes.io/region": "r1"}},
            {"addresses": ["10.0.0.4"]},
            // Hints say where an endpoint should be used, not where it is.
            {"addresses": ["10.0.0.5"], "hints": {"forZones": [{"name": "zone-c"}]}},
        ]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&s]);
    let groups = la.config["endpoints"].as_array().unwrap();
    let localities: Vec<&Value> = groups.iter().map(|g| &g["locality"]).collect();
    assert_eq!(
        localities,
        [
            &Value::Null,
            &json!({"zone": "zone-a"}),
            &json!({"zone": "zone-b"}),
            &json!({"region": "r1", "zone": "zone-a"}),
        ]
    );
    let count = |i: usize| groups[i]["lb_endpoints"].as_array().unwrap().len();
    assert_eq!((count(0), count(1), count(2), count(3)), (2, 1, 1, 1));
}

#[test]
fn dual_stack_slices_both_contribute() {
    let v4 = slice("web-v4", "IPv4", http_port(), json!([ready("10.0.0.1")]));
    let v6 = slice("web-v6", "IPv6", http_port(), json!([ready("fd00::1")]));
    let la = load_assignment(&config(), &by_name("http"), &[&v6, &v4]);
    assert_eq!(
        flat(&la.config),
        [healthy("10.0.0.1", 8080), healthy("fd00::1", 8080)]
    );
    // The generated assignment is a valid ClusterLoadAssignment.
    let converted = convert::convert(ResourceType::Endpoint, &la.config).unwrap();
    assert_eq!(converted.name, "web");
}

#[test]
fn addresses_that_are_not_ips_of_the_slice_family_are_skipped() {
    let v4 = slice(
        "web-1",
        "IPv4",
        http_port(),
        json!([ready("fd00::1"), ready("not-an-ip"), {"addresses": []},
               {"addresses": ["10.0.0.1", "10.0.0.9"]}]),
    );
    let fqdn = slice(
        "web-2",
        "FQDN",
        http_port(),
        json!([ready("web.example.com")]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&v4, &fqdn]);
    // Only the first of an endpoint's addresses, and only IPv4 in an IPv4 slice.
    assert_eq!(flat(&la.config), [healthy("10.0.0.1", 8080)]);
    // Each one left out is named: the slice, the field, why.
    assert_eq!(
        messages(&la),
        [
            r#"EndpointSlice foo/web-1: endpoints[0].addresses[0]: "fd00::1" is an IPv6 address in an IPv4 slice (addressType); this endpoint is left out"#,
            r#"EndpointSlice foo/web-1: endpoints[1].addresses[0]: "not-an-ip" is not an IPv4 address; this endpoint is left out"#,
            "EndpointSlice foo/web-1: endpoints[2].addresses: no address; this endpoint is left out",
            "EndpointSlice foo/web-2: addressType: FQDN slices are not used (an EDS cluster takes IP addresses); the slice's endpoints are left out",
        ]
    );
}

#[test]
fn a_malformed_endpoint_is_named_even_while_not_ready() {
    let s = slice(
        "web-1",
        "IPv6",
        http_port(),
        json!([{"addresses": ["10.0.0.300"], "conditions": {"ready": false}}]),
    );
    let la = load_assignment(&config(), &by_name("http"), &[&s]);
    assert_eq!(
        messages(&la),
        [
            r#"EndpointSlice foo/web-1: endpoints[0].addresses[0]: "10.0.0.300" is not an IPv6 address; this endpoint is left out"#
        ]
    );
}

#[test]
fn slice_warnings_are_cut_with_a_line_counting_the_rest() {
    let bad: Vec<Value> = (0..40).map(|i| ready(&format!("bad-{i}"))).collect();
    let s = slice("web-1", "IPv4", http_port(), Value::Array(bad));
    let good = slice("web-2", "IPv4", http_port(), json!([ready("10.0.0.1")]));
    let la = load_assignment(&config(), &by_name("http"), &[&s, &good]);
    assert_eq!(la.endpoints, 1);
    let m = messages(&la);
    assert_eq!(m.len(), MAX_SLICE_WARNINGS + 1);
    assert!(
        m[0].starts_with("EndpointSlice foo/web-1: endpoints[0].addresses[0]: \"bad-0\""),
        "{m:?}"
    );
    assert_eq!(
        m[MAX_SLICE_WARNINGS],
        format!(
            "{} more EndpointSlice problems not shown",
            40 - MAX_SLICE_WARNINGS
        )
    );
}

#[test]
fn an_address_in_two_slices_is_one_endpoint_with_the_better_health() {
    let old = slice(
        "web-1",
        "IPv4",
        http_port(),
        json!([{"addresses": ["10.0.0.1"],
                "conditions": {"ready": false, "serving": true, "terminating": true}}]),
    );
    let new = slice("web-2", "IPv4", http_port(), json!([ready("10.0.0.1")]));
    for slices in [[&old, &new], [&new, &old]] {
        let la = load_assignment(&config(), &by_name("http"), &slices);
        assert_eq!(flat(&la.config), [healthy("10.0.0.1", 8080)]);
    }
}

#[test]
fn order_and_labels_do_not_change_the_result() {
    let a = slice(
        "web-a",
        "IPv4",
        http_port(),
        json!([ready("10.0.0.3"), {"addresses": ["10.0.0.1"], "zone": "z1"}]),
    );
    let b = slice(
        "web-b",
        "IPv4",
        json!([{"name": "metrics", "port": 9090}, {"name": "http", "port": 8080}]),
        json!([{"addresses": ["10.0.0.2"], "zone": "z1"}, ready("10.0.0.10")]),
    );
    let first = load_assignment(&config(), &by_name("http"), &[&a, &b]);

    // Slices, their endpoints and their ports in another order; another label.
    let mut b2 = b.clone();
    b2.endpoints.reverse();
    b2.ports.reverse();
    let mut a2 = a.clone();
    a2.endpoints.reverse();
    let second = load_assignment(&config(), &by_name("http"), &[&b2, &a2]);
    assert_eq!(first, second);

    // The same endpoints in one slice instead of two.
    let mut merged = a.clone();
    merged.endpoints.extend(b.endpoints.clone());
    let third = load_assignment(&config(), &by_name("http"), &[&merged]);
    assert_eq!(first, third);

    let bytes = |la: &LoadAssignment| {
        convert::convert(ResourceType::Endpoint, &la.config)
            .unwrap()
            .value
    };
    assert_eq!(bytes(&first), bytes(&second));
    assert_eq!(bytes(&first), bytes(&third));
    // Numeric order of addresses, not text order.
    let ips: Vec<String> = flat(&first.config).into_iter().map(|e| e.0).collect();
    assert_eq!(ips, ["10.0.0.3", "10.0.0.10", "10.0.0.1", "10.0.0.2"]);
}

#[test]
fn reading_a_slice_needs_a_name_the_service_label_and_an_address_type() {
    let mut object = json!({
        "apiVersion": SLICE_API_VERSION, "kind": SLICE_KIND,
        "metadata": {"name": "web-1", "labels": {SERVICE_NAME_LABEL: "web"},
                     "ownerReferences": [{"kind": "Service", "name": "web"}]},
        "addressType": "IPv4",
        "endpoints": [{"addresses": ["10.0.0.1"], "nodeName": "n1",
                       "targetRef": {"kind": "Pod", "name": "web-0"}}],
    });
    let s = EndpointSlice::from_object(object.clone(), "bar").unwrap();
    assert_eq!(s.key.to_string(), "EndpointSlice bar/web-1");
    assert_eq!(s.service, "web");
    assert!(s.ports.is_empty());
    assert_eq!(s.endpoints[0].addresses, ["10.0.0.1"]);

    object["metadata"]["labels"] = json!({});
    let e = EndpointSlice::from_object(object.clone(), "bar").unwrap_err();
    assert!(e.contains("kubernetes.io/service-name"), "{e}");

    object["metadata"]["labels"] = json!({SERVICE_NAME_LABEL: "web"});
    object["addressType"] = json!("IPv5");
    let e = EndpointSlice::from_object(object.clone(), "bar").unwrap_err();
    assert!(e.contains("addressType") && e.contains("IPv5"), "{e}");

    object["addressType"] = json!("IPv4");
    object["endpoints"] = json!("nope");
    assert!(EndpointSlice::from_object(object, "bar").is_err());
}

#[test]
fn an_endpoint_lists_its_endpoints_or_names_a_service_not_both_nor_neither() {
    let service = ServiceRef {
        name: "web".into(),
        port: by_name("http"),
    };
    let listed = json!({"cluster_name": "web", "endpoints": []});
    let bare = json!({"cluster_name": "web"});
    assert!(check_source(&listed, None).is_empty());
    assert!(check_source(&bare, Some(&service)).is_empty());

    let both = check_source(&listed, Some(&service));
    assert_eq!(both.len(), 1);
    assert_eq!(both[0].path, "spec.service");
    assert!(both[0].message.contains("not both"), "{}", both[0]);

    let neither = check_source(&bare, None);
    assert_eq!(neither.len(), 1);
    assert!(
        neither[0].message.contains("spec.config.endpoints")
            && neither[0].message.contains("spec.service"),
        "{}",
        neither[0]
    );
}

#[test]
fn a_service_reference_needs_a_name_and_a_real_port() {
    let bad = |name: &str, port: ServicePort| {
        ServiceRef {
            name: name.into(),
            port,
        }
        .check()
        .into_iter()
        .map(|e| e.path)
        .collect::<Vec<_>>()
    };
    assert_eq!(bad("", by_name("http")), ["spec.service.name"]);
    assert_eq!(bad("web", by_name("")), ["spec.service.port"]);
    assert_eq!(bad("web", ServicePort::Number(0)), ["spec.service.port"]);
    assert_eq!(
        bad("web", ServicePort::Number(70000)),
        ["spec.service.port"]
    );
    assert!(bad("web", ServicePort::Number(8080)).is_empty());
}

#[test]
fn a_service_port_is_a_name_or_a_number() {
    let r: ServiceRef = serde_yaml::from_str("{name: web, port: http}").unwrap();
    assert_eq!(r.port, by_name("http"));
    let r: ServiceRef = serde_yaml::from_str("{name: web, port: 8080}").unwrap();
    assert_eq!(r.port, ServicePort::Number(8080));
    assert!(serde_yaml::from_str::<ServiceRef>("{name: web, port: http, prot: 1}").is_err());
}
