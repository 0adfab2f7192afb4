use super::*;
use serde_json::json;

fn dynamic(kind: &str, ns: &str, name: &str, spec: serde_json::Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "bootes.io/v1",
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": ns,
            "uid": format!("uid-{name}"),
            "generation": 4,
            "resourceVersion": "17",
            "creationTimestamp": "2024-05-06T07:08:09Z",
        },
        "spec": spec,
    }))
    .unwrap()
}

fn cluster(ns: &str, name: &str, timeout: &str) -> DynamicObject {
    dynamic(
        "Cluster",
        ns,
        name,
        json!({"workloadSelector": {"labels": {"app": "foo"}},
               "config": {"name": name, "connect_timeout": timeout, "type": "EDS",
                          "eds_cluster_config": {"eds_config": {"ads": {}}}}}),
    )
}

fn pod_meta(ns: &str, name: &str, labels: serde_json::Value) -> KubePod {
    serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": format!("pod-{name}"), "labels": labels},
    }))
    .unwrap()
}

fn slice(ns: &str, name: &str, service: Option<&str>, ips: &[&str]) -> DynamicObject {
    let labels = match service {
        Some(s) => json!({"kubernetes.io/service-name": s}),
        None => json!({}),
    };
    let endpoints: Vec<_> = ips.iter().map(|ip| json!({"addresses": [ip]})).collect();
    serde_json::from_value(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {"name": name, "namespace": ns, "labels": labels},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080}],
        "endpoints": endpoints,
    }))
    .unwrap()
}

fn key(kind: ResourceType, ns: &str, name: &str) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: ns.into(),
        name: name.into(),
    }
}

/// A state that has listed everything: `objects` of Cluster, no other
/// objects, and `pods`.
fn started(objects: Vec<DynamicObject>, pods: Vec<KubePod>) -> (KubeState, Vec<SourceEvent>) {
    let mut state = KubeState::new(ObservedStatuses::default());
    let mut out = Vec::new();
    for kind in crd::KINDS {
        out.extend(state.object_event(kind, Event::Init));
        if kind == ResourceType::Cluster {
            for o in &objects {
                out.extend(state.object_event(kind, Event::InitApply(o.clone())));
            }
        }
        out.extend(state.object_event(kind, Event::InitDone));
    }
    out.extend(state.pod_event(Event::Init));
    for p in pods {
        out.extend(state.pod_event(Event::InitApply(p)));
    }
    out.extend(state.pod_event(Event::InitDone));
    out.extend(state.slice_event(Event::Init));
    out.extend(state.slice_event(Event::InitDone));
    (state, out)
}

fn describe(events: &[SourceEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            SourceEvent::ResetObjects(o) => {
                let mut keys: Vec<String> = o.iter().map(|o| o.key.to_string()).collect();
                keys.sort();
                format!("reset objects [{}]", keys.join(", "))
            }
            SourceEvent::ResetPods(p) => {
                let mut ids: Vec<String> = p.iter().map(Pod::node_id).collect();
                ids.sort();
                format!("reset pods [{}]", ids.join(", "))
            }
            SourceEvent::ApplyObject(o) => format!("apply {}", o.key),
            SourceEvent::DeleteObject(k) => format!("delete {k}"),
            SourceEvent::ApplyPod(p) => format!("apply pod {} {:?}", p.node_id(), p.labels),
            SourceEvent::DeletePod(k) => format!("delete pod {}.{}", k.name, k.namespace),
            SourceEvent::ResetSlices(s) => {
                let mut keys: Vec<String> = s.iter().map(|s| s.key.to_string()).collect();
                keys.sort();
                format!("reset slices [{}]", keys.join(", "))
            }
            SourceEvent::ApplySlice(s) => {
                format!("apply {} of {} {:?}", s.key, s.service, s.endpoints.len())
            }
            SourceEvent::DeleteSlice(k) => format!("delete {k}"),
            SourceEvent::Problem(p) => format!("problem {p}"),
            other => format!("{other:?}"),
        })
        .collect()
}

#[test]
fn converts_an_original_bootes_object() {
    let o = object_from_dynamic(ResourceType::Cluster, &cluster("foo", "c", "1s")).unwrap();
    assert_eq!(o.key, key(ResourceType::Cluster, "foo", "c"));
    assert_eq!(o.uid, "uid-c");
    assert_eq!(o.generation, 4);
    assert_eq!(o.created.as_deref(), Some("2024-05-06T07:08:09Z"));
    assert_eq!(o.selector.unwrap()["app"], "foo");
    assert_eq!(o.config["connect_timeout"], "1s");

    // No selector selects the namespace; an empty one too.
    let all = dynamic("Route", "foo", "r", json!({"config": {"name": "r"}}));
    assert_eq!(
        object_from_dynamic(ResourceType::Route, &all)
            .unwrap()
            .selector,
        None
    );
    let empty = dynamic(
        "Route",
        "foo",
        "r",
        json!({"workloadSelector": {}, "config": {}}),
    );
    let o = object_from_dynamic(ResourceType::Route, &empty).unwrap();
    assert_eq!(o.selector, Some(BTreeMap::new()));
}

#[test]
fn malformed_objects_are_errors_naming_the_object_and_field() {
    let cases = [
        (json!(null), "spec: missing"),
        (json!({"workloadSelector": {}}), "spec.config: missing"),
        (
            json!({"config": {}, "workloadSelectr": {}}),
            "workloadSelectr",
        ),
        (
            json!({"config": {}, "workloadSelector": {"labels": {"app": 1}}}),
            "spec:",
        ),
        (
            json!({"config": {}, "workloadSelector": {"matchLabels": {}}}),
            "matchLabels",
        ),
        (json!("a string"), "spec:"),
    ];
    for (spec, expected) in cases {
        let mut o = dynamic("Cluster", "foo", "bad", spec.clone());
        if spec.is_null() {
            o.data.as_object_mut().unwrap().remove("spec");
        }
        let e = object_from_dynamic(ResourceType::Cluster, &o).unwrap_err();
        assert!(e.starts_with("Cluster foo/bad: "), "{e}");
        assert!(e.contains(expected), "{spec}: {e}");
    }
    let mut nameless = cluster("foo", "c", "1s");
    nameless.metadata.namespace = None;
    assert!(object_from_dynamic(ResourceType::Cluster, &nameless)
        .unwrap_err()
        .contains("namespace"));
}

#[test]
fn pods_give_name_labels_uid_and_service_account() {
    let p = pod_from_kube(&pod_meta("foo", "envoy-0", json!({"app": "foo"}))).unwrap();
    assert_eq!(p.node_id(), "envoy-0.foo");
    assert_eq!(p.uid, "pod-envoy-0");
    assert_eq!(p.labels["app"], "foo");
    assert_eq!(p.service_account, "default", "unset: the default account");
    let with_sa: KubePod = serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "n"},
        "spec": {"serviceAccountName": "edge", "containers": []}}))
    .unwrap();
    assert_eq!(pod_from_kube(&with_sa).unwrap().service_account, "edge");
    let bare: KubePod =
        serde_json::from_value(json!({"metadata": {"name": "p", "namespace": "n"}})).unwrap();
    let p = pod_from_kube(&bare).unwrap();
    assert!(p.labels.is_empty());
    assert_eq!(p.uid, "n/p");
    let nameless: KubePod =
        serde_json::from_value(json!({"metadata": {"namespace": "n"}})).unwrap();
    assert!(pod_from_kube(&nameless).is_err());
}

#[test]
fn nothing_is_sent_until_every_watcher_listed_then_one_complete_picture() {
    let mut state = KubeState::new(ObservedStatuses::default());
    let mut out = Vec::new();
    out.extend(state.pod_event(Event::Init));
    out.extend(state.pod_event(Event::InitApply(pod_meta(
        "foo",
        "envoy-0",
        json!({"app": "foo"}),
    ))));
    out.extend(state.pod_event(Event::InitDone));
    for kind in crd::KINDS {
        out.extend(state.object_event(kind, Event::Init));
        if kind == ResourceType::Cluster {
            out.extend(state.object_event(kind, Event::InitApply(cluster("foo", "a", "1s"))));
        }
        assert!(out.is_empty(), "{:?}", describe(&out));
        out.extend(state.object_event(kind, Event::InitDone));
        // Changes between lists are folded into the first picture.
        if kind == ResourceType::Cluster {
            out.extend(state.object_event(kind, Event::Apply(cluster("foo", "b", "1s"))));
        }
    }
    assert!(out.is_empty(), "{:?}", describe(&out));
    out.extend(state.slice_event(Event::Init));
    out.extend(state.slice_event(Event::InitApply(slice(
        "foo",
        "web-1",
        Some("web"),
        &["10.0.0.1"],
    ))));
    out.extend(state.slice_event(Event::InitDone));
    assert_eq!(
        describe(&out),
        [
            "reset slices [EndpointSlice foo/web-1]",
            "reset objects [Cluster foo/a, Cluster foo/b]",
            "reset pods [envoy-0.foo]"
        ]
    );
}

#[test]
fn a_kind_whose_crd_is_missing_counts_as_empty() {
    let mut state = KubeState::new(ObservedStatuses::default());
    let not_found = || {
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(kube::core::Status {
            code: 404,
            message: "the server could not find the requested resource".into(),
            ..Default::default()
        })))
    };
    let mut out = state.pod_event(Event::Init);
    out.extend(state.pod_event(Event::InitDone));
    out.extend(state.slice_event(Event::Init));
    out.extend(state.slice_event(Event::InitDone));
    for kind in crd::KINDS {
        if kind == ResourceType::ScopedRoute {
            out.extend(state.object_error(kind, &not_found()));
            continue;
        }
        out.extend(state.object_event(kind, Event::Init));
        out.extend(state.object_event(kind, Event::InitDone));
    }
    assert_eq!(
        describe(&out),
        ["reset slices []", "reset objects []", "reset pods []"]
    );
    // Other errors do not change anything; the watcher retries.
    let other = watcher::Error::NoResourceVersion;
    assert!(state.object_error(ResourceType::Cluster, &other).is_empty());
    assert!(state
        .object_error(ResourceType::ScopedRoute, &not_found())
        .is_empty());
    // Once the CRD is installed its objects arrive.
    let sr = dynamic("ScopedRoute", "foo", "s", json!({"config": {"name": "s"}}));
    let mut out = state.object_event(ResourceType::ScopedRoute, Event::Init);
    out.extend(state.object_event(ResourceType::ScopedRoute, Event::InitApply(sr)));
    out.extend(state.object_event(ResourceType::ScopedRoute, Event::InitDone));
    assert_eq!(describe(&out), ["apply ScopedRoute foo/s"]);
}

#[test]
fn changes_after_the_first_picture_go_out_one_by_one() {
    let (mut state, _) = started(vec![cluster("foo", "a", "1s")], vec![]);
    let c = ResourceType::Cluster;
    assert_eq!(
        describe(&state.object_event(c, Event::Apply(cluster("foo", "a", "2s")))),
        ["apply Cluster foo/a"]
    );
    // The same object again (a status write, a resync): nothing to do.
    assert!(state
        .object_event(c, Event::Apply(cluster("foo", "a", "2s")))
        .is_empty());
    assert_eq!(
        describe(&state.object_event(c, Event::Delete(cluster("foo", "a", "2s")))),
        ["delete Cluster foo/a"]
    );
    // Deleting what is not known is not an event.
    assert!(state
        .object_event(c, Event::Delete(cluster("foo", "a", "2s")))
        .is_empty());
}

#[test]
fn a_malformed_object_is_reported_and_its_last_good_version_stays() {
    let (mut state, _) = started(vec![cluster("foo", "a", "1s")], vec![]);
    let c = ResourceType::Cluster;
    let broken = dynamic("Cluster", "foo", "a", json!({"workloadSelector": {}}));
    let out = describe(&state.object_event(c, Event::Apply(broken.clone())));
    assert_eq!(out, ["problem Cluster foo/a: spec.config: missing"]);
    // A relist that still has it broken keeps the last good version too.
    let mut out = state.object_event(c, Event::Init);
    out.extend(state.object_event(c, Event::InitApply(broken)));
    out.extend(state.object_event(c, Event::InitDone));
    assert_eq!(
        describe(&out),
        ["problem Cluster foo/a: spec.config: missing"]
    );
    // A broken object never seen before is only reported.
    let new = dynamic("Cluster", "foo", "new", json!(null));
    let out = describe(&state.object_event(c, Event::Apply(new)));
    assert_eq!(out, ["problem Cluster foo/new: spec: missing"]);
    // Fixed: applied.
    let out = describe(&state.object_event(c, Event::Apply(cluster("foo", "a", "3s"))));
    assert_eq!(out, ["apply Cluster foo/a"]);
}

#[test]
fn a_relist_of_one_kind_becomes_applies_and_deletes_of_that_kind() {
    let (mut state, _) = started(
        vec![
            cluster("foo", "a", "1s"),
            cluster("foo", "b", "1s"),
            cluster("foo", "c", "1s"),
        ],
        vec![],
    );
    let route = dynamic("Route", "foo", "r", json!({"config": {"name": "r"}}));
    let out = state.object_event(ResourceType::Route, Event::Apply(route));
    assert_eq!(describe(&out), ["apply Route foo/r"]);

    let c = ResourceType::Cluster;
    let mut out = state.object_event(c, Event::Init);
    out.extend(state.object_event(c, Event::InitApply(cluster("foo", "a", "1s"))));
    out.extend(state.object_event(c, Event::InitApply(cluster("foo", "b", "5s"))));
    out.extend(state.object_event(c, Event::InitApply(cluster("foo", "d", "1s"))));
    assert!(out.is_empty());
    out.extend(state.object_event(c, Event::InitDone));
    assert_eq!(
        describe(&out),
        [
            "apply Cluster foo/b",
            "apply Cluster foo/d",
            "delete Cluster foo/c"
        ]
    );
}

#[test]
fn pods_are_applied_relabelled_deleted_and_relisted() {
    let (mut state, out) = started(
        vec![],
        vec![pod_meta("foo", "envoy-0", json!({"app": "a"}))],
    );
    assert_eq!(
        describe(&out),
        [
            "reset slices []",
            "reset objects []",
            "reset pods [envoy-0.foo]"
        ]
    );
    let out = state.pod_event(Event::Apply(pod_meta(
        "foo",
        "envoy-0",
        json!({"app": "b"}),
    )));
    assert_eq!(describe(&out), [r#"apply pod envoy-0.foo {"app": "b"}"#]);
    // Unchanged metadata that matters (e.g. only a status update): nothing.
    assert!(state
        .pod_event(Event::Apply(pod_meta(
            "foo",
            "envoy-0",
            json!({"app": "b"})
        )))
        .is_empty());
    let out = state.pod_event(Event::Apply(pod_meta("bar", "envoy-1", json!({}))));
    assert_eq!(describe(&out), ["apply pod envoy-1.bar {}"]);
    let out = state.pod_event(Event::Delete(pod_meta("foo", "envoy-0", json!({}))));
    assert_eq!(describe(&out), ["delete pod envoy-0.foo"]);

    let mut out = state.pod_event(Event::Init);
    out.extend(state.pod_event(Event::InitApply(pod_meta("bar", "envoy-1", json!({})))));
    out.extend(state.pod_event(Event::InitDone));
    assert!(out.is_empty(), "an identical relist changes nothing");
    let mut out = state.pod_event(Event::Init);
    out.extend(state.pod_event(Event::InitDone));
    assert_eq!(describe(&out), ["reset pods []"]);
}

#[test]
fn statuses_objects_have_are_recorded_and_forgotten() {
    let observed = ObservedStatuses::default();
    let mut state = KubeState::new(observed.clone());
    let mut o = cluster("foo", "a", "1s");
    o.data["status"] = json!({"observedGeneration": 3, "nodes": 2});
    state.object_event(ResourceType::Cluster, Event::Apply(o.clone()));
    let k = key(ResourceType::Cluster, "foo", "a");
    let seen = observed.get(&k).unwrap();
    assert_eq!(seen.uid, "uid-a");
    assert_eq!(seen.status.unwrap().nodes, Some(2));
    state.object_event(ResourceType::Cluster, Event::Delete(o));
    assert_eq!(observed.get(&k), None);
}

#[test]
fn slices_of_services_are_applied_deleted_and_relisted() {
    let (mut state, _) = started(vec![], vec![]);
    let web1 = slice("foo", "web-1", Some("web"), &["10.0.0.1"]);
    assert_eq!(
        describe(&state.slice_event(Event::Apply(web1.clone()))),
        ["apply EndpointSlice foo/web-1 of web 1"]
    );
    // The same slice again (a resync): nothing to do.
    assert!(state.slice_event(Event::Apply(web1.clone())).is_empty());
    let scaled = slice("foo", "web-1", Some("web"), &["10.0.0.1", "10.0.0.2"]);
    assert_eq!(
        describe(&state.slice_event(Event::Apply(scaled))),
        ["apply EndpointSlice foo/web-1 of web 2"]
    );
    // A malformed slice is reported, naming it, and changes nothing.
    let mut bad = slice("foo", "web-2", Some("web"), &[]);
    bad.data["addressType"] = json!("IPv5");
    assert_eq!(
        describe(&state.slice_event(Event::Apply(bad))),
        ["problem EndpointSlice foo/web-2: addressType: \"IPv5\" is not IPv4, IPv6 or FQDN"]
    );
    assert_eq!(
        describe(&state.slice_event(Event::Delete(web1))),
        ["delete EndpointSlice foo/web-1"]
    );
    // A relist with what is already known sends nothing; another list does.
    assert!(state.slice_event(Event::Init).is_empty());
    assert!(state.slice_event(Event::InitDone).is_empty());
    state.slice_event(Event::Init);
    state.slice_event(Event::InitApply(slice("foo", "api-1", Some("api"), &[])));
    assert_eq!(
        describe(&state.slice_event(Event::InitDone)),
        ["reset slices [EndpointSlice foo/api-1]"]
    );
}

#[test]
fn forbidden_slices_count_as_none_and_do_not_block_the_rest() {
    let mut state = KubeState::new(ObservedStatuses::default());
    let forbidden =
        watcher::Error::InitialListFailed(kube::Error::Api(Box::new(kube::core::Status {
            code: 403,
            message: "endpointslices.discovery.k8s.io is forbidden".into(),
            ..Default::default()
        })));
    let mut out = state.slice_error(&forbidden);
    out.extend(state.pod_event(Event::Init));
    out.extend(state.pod_event(Event::InitDone));
    for kind in crd::KINDS {
        out.extend(state.object_event(kind, Event::Init));
        out.extend(state.object_event(kind, Event::InitDone));
    }
    assert_eq!(
        describe(&out),
        ["reset slices []", "reset objects []", "reset pods []"]
    );
    assert!(state.slice_error(&forbidden).is_empty());
    assert!(state
        .slice_error(&watcher::Error::NoResourceVersion)
        .is_empty());
}

async fn next(rx: &mut mpsc::Receiver<SourceEvent>) -> SourceEvent {
    tokio::time::timeout(std::time::Duration::from_secs(30), rx.recv())
        .await
        .expect("an event within 30 s")
        .expect("the source runs")
}

/// The real watchers against the Kubernetes API stand-in (in process), with
/// only one of the nine CRDs installed: the others count as empty, and the
/// first picture arrives (with the EndpointSlices of Services), then changes
/// one by one.
#[tokio::test]
async fn watchers_list_installed_kinds_and_pods_from_the_api() {
    use kube::api::PostParams;

    let client = crd::standin_client(ResourceType::Cluster, "foo").await;
    let pp = PostParams::default();
    let clusters: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        "foo",
        &crd::api_resource(ResourceType::Cluster),
    );
    clusters
        .create(&pp, &cluster("foo", "a", "1s"))
        .await
        .unwrap();
    let pods: Api<KubePod> = Api::namespaced(client.clone(), "foo");
    let pod: KubePod = serde_json::from_value(json!({
        "metadata": {"name": "envoy-0", "namespace": "foo", "labels": {"app": "foo"}},
        "spec": {"containers": [{"name": "envoy", "image": "envoy"}]},
    }))
    .unwrap();
    pods.create(&pp, &pod).await.unwrap();
    let slices: Api<DynamicObject> = Api::namespaced_with(client.clone(), "foo", &slice_resource());
    slices
        .create(&pp, &slice("foo", "web-1", Some("web"), &["10.0.0.1"]))
        .await
        .unwrap();
    // Not a Service's: not watched.
    slices
        .create(&pp, &slice("foo", "other", None, &["10.0.0.9"]))
        .await
        .unwrap();

    let (tx, mut rx) = mpsc::channel(16);
    let observed = ObservedStatuses::default();
    tokio::spawn(run(client.clone(), tx, observed.clone()));
    let first = [
        next(&mut rx).await,
        next(&mut rx).await,
        next(&mut rx).await,
    ];
    assert_eq!(
        describe(&first),
        [
            "reset slices [EndpointSlice foo/web-1]",
            "reset objects [Cluster foo/a]",
            "reset pods [envoy-0.foo]"
        ]
    );
    assert!(observed
        .get(&key(ResourceType::Cluster, "foo", "a"))
        .is_some());

    clusters
        .create(&pp, &cluster("foo", "b", "1s"))
        .await
        .unwrap();
    assert_eq!(describe(&[next(&mut rx).await]), ["apply Cluster foo/b"]);
    pods.delete("envoy-0", &Default::default()).await.unwrap();
    assert_eq!(describe(&[next(&mut rx).await]), ["delete pod envoy-0.foo"]);
    slices
        .create(&pp, &slice("foo", "web-2", Some("web"), &["10.0.0.2"]))
        .await
        .unwrap();
    assert_eq!(
        describe(&[next(&mut rx).await]),
        ["apply EndpointSlice foo/web-2 of web 1"]
    );
    slices.delete("web-1", &Default::default()).await.unwrap();
    assert_eq!(
        describe(&[next(&mut rx).await]),
        ["delete EndpointSlice foo/web-1"]
    );
}
