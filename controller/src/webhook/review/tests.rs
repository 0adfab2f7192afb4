//! Reviews in the exact JSON the API server sends (kube-standin's
//! `review_request`, which its webhook calls use too).

use kube_standin::admission::{review_request, Attributes, Operation, Verb};
use serde_json::{json, Value};

use super::*;
use bootes_core::index::Index;
use bootes_core::model::BootesObject;
use kube::core::DynamicObject;

use crate::source::kube::object_from_dynamic;

fn cluster(name: &str, config: Value) -> Value {
    json!({
        "apiVersion": "bootes.io/v1",
        "kind": "Cluster",
        "metadata": {"name": name, "namespace": "shop", "uid": format!("uid-{name}"), "generation": 1,
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"config": config},
    })
}

fn route(name: &str, to: &str) -> Value {
    json!({
        "apiVersion": "bootes.io/v1",
        "kind": "Route",
        "metadata": {"name": name, "namespace": "shop", "generation": 1},
        "spec": {"config": {"name": name, "virtual_hosts": [{"name": "v", "domains": ["*"],
            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": to}}]}]}},
    })
}

fn good_cluster_config(name: &str) -> Value {
    json!({"name": name, "connect_timeout": "1s", "type": "STATIC",
           "load_assignment": {"cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint":
               {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8080}}}}]}]}})
}

fn attrs(kind: &str, plural: &str, name: &str, operation: Operation, dry_run: bool) -> Attributes {
    Attributes {
        group: "bootes.io".into(),
        version: "v1".into(),
        kind: kind.into(),
        resource: plural.into(),
        sub_resource: None,
        namespace: Some("shop".into()),
        name: name.into(),
        operation,
        verb: match operation {
            Operation::Create => Verb::Post,
            Operation::Update => Verb::Patch,
        },
        dry_run,
    }
}

fn ask(views: &Views, review: &Value) -> Answer {
    answer(views, review.to_string().as_bytes()).expect("a well-formed review")
}

/// Views in which `objects` are known, as the reconcile loop publishes them.
fn views_with(objects: &[Value]) -> Views {
    let views = Views::default();
    let mut index = Index::new();
    for o in objects {
        let kind = ResourceType::from_kind(o["kind"].as_str().unwrap()).unwrap();
        let dynamic: DynamicObject = serde_json::from_value(o.clone()).unwrap();
        let object: BootesObject = object_from_dynamic(kind, &dynamic).unwrap();
        index.apply_object(object);
    }
    views.publish(&index);
    views
}

#[test]
fn an_invalid_create_is_denied_in_the_words_of_validate() {
    let bad = cluster("db", json!({"name": "db", "conect_timeout": "1s"}));
    let review = review_request(
        "7e0a-1",
        &attrs("Cluster", "clusters", "db", Operation::Create, false),
        &bad,
        None,
    );
    let a = ask(&Views::default(), &review);
    assert_eq!(a.verdict, Verdict::Denied);
    assert!(!a.response.allowed);
    assert_eq!(a.response.uid, "7e0a-1");
    assert_eq!(a.response.result.code, 400);
    // `validate` on the same object, as a file: the same line after its source.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("db.yaml");
    std::fs::write(&file, serde_yaml::to_string(&bad).unwrap()).unwrap();
    let outcome =
        bootes_core::validate::check(std::slice::from_ref(&file), &Default::default(), None);
    assert_eq!(outcome.errors.len(), 1, "{outcome:?}");
    let line = outcome.errors[0]
        .strip_prefix(&format!("{}: ", file.display()))
        .unwrap();
    assert_eq!(a.response.result.message, line);
    assert!(
        line.starts_with("Cluster shop/db: spec.config.conect_timeout: unknown field"),
        "{line}"
    );
    // The body is an AdmissionReview the API server reads.
    let body: Value = serde_json::from_slice(&a.body()).unwrap();
    assert_eq!(body["apiVersion"], "admission.k8s.io/v1");
    assert_eq!(body["kind"], "AdmissionReview");
    assert_eq!(body["response"]["uid"], "7e0a-1");
    assert_eq!(body["response"]["allowed"], false);
    assert_eq!(body["response"]["status"]["message"], line);
}

#[test]
fn updates_and_dry_runs_are_judged_on_the_new_object() {
    let old = cluster("db", good_cluster_config("db"));
    let mut new = cluster("db", json!({"name": "db", "connect_timeout": "250ms"}));
    new["metadata"]["generation"] = json!(2);
    for dry_run in [false, true] {
        let review = review_request(
            "u-2",
            &attrs("Cluster", "clusters", "db", Operation::Update, dry_run),
            &new,
            Some(&old),
        );
        assert_eq!(review["request"]["oldObject"], old);
        assert_eq!(review["request"]["dryRun"], dry_run);
        let a = ask(&views_with(std::slice::from_ref(&old)), &review);
        assert_eq!(a.verdict, Verdict::Denied, "dry run {dry_run}");
        assert!(
            a.response
                .result
                .message
                .contains("spec.config.connect_timeout: \"250ms\" is not a duration"),
            "{}",
            a.response.result.message
        );
        // Back to a valid spec: allowed.
        let fixed = review_request(
            "u-3",
            &attrs("Cluster", "clusters", "db", Operation::Update, dry_run),
            &old,
            Some(&new),
        );
        let a = ask(&views_with(std::slice::from_ref(&old)), &fixed);
        assert_eq!(a.verdict, Verdict::Allowed, "{:?}", a.response.warnings);
        assert!(a.response.allowed);
        assert_eq!(a.response.warnings, None);
    }
}

#[test]
fn deletes_and_status_writes_are_always_allowed() {
    let bad = cluster("db", json!({"nope": true}));
    let mut delete = review_request(
        "d",
        &attrs("Cluster", "clusters", "db", Operation::Update, false),
        &Value::Null,
        Some(&bad),
    );
    delete["request"]["operation"] = json!("DELETE");
    delete["request"]["options"]["kind"] = json!("DeleteOptions");
    let a = ask(&Views::default(), &delete);
    assert_eq!(a.verdict, Verdict::Allowed);
    let mut status = attrs("Cluster", "clusters", "db", Operation::Update, false);
    status.sub_resource = Some("status".into());
    let a = ask(
        &Views::default(),
        &review_request("s", &status, &bad, Some(&bad)),
    );
    assert_eq!(a.verdict, Verdict::Allowed);
    assert!(a.response.allowed);
}

#[test]
fn problems_with_other_objects_are_warnings_not_denials() {
    // A route to a cluster no object provides.
    let r = route("r", "web");
    let review = review_request(
        "w",
        &attrs("Route", "routes", "r", Operation::Create, false),
        &r,
        None,
    );
    let a = ask(&views_with(&[]), &review);
    assert_eq!(a.verdict, Verdict::Warned);
    assert!(a.response.allowed);
    let warnings = a.response.warnings.clone().unwrap();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].starts_with("Route shop/r: spec.config.virtual_hosts[0].routes[0].route.cluster: route to cluster \"web\": no Cluster object"),
        "{warnings:?}"
    );
    // Once the cluster exists, nothing to say.
    let with_web = views_with(&[cluster("web", good_cluster_config("web"))]);
    assert_eq!(ask(&with_web, &review).verdict, Verdict::Allowed);
    // Before the replica has seen the other objects, it does not guess.
    assert_eq!(ask(&Views::default(), &review).verdict, Verdict::Allowed);

    // A second object providing the same cluster: a conflict, warned.
    let copy = cluster("web-copy", good_cluster_config("web"));
    let review = review_request(
        "c",
        &attrs("Cluster", "clusters", "web-copy", Operation::Create, false),
        &copy,
        None,
    );
    let a = ask(&with_web, &review);
    assert_eq!(a.verdict, Verdict::Warned);
    let warnings = a.response.warnings.unwrap();
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("Cluster shop/web-copy: spec.config.name: CDS \"web\" is already provided by Cluster shop/web")),
        "{warnings:?}"
    );
}

#[test]
fn malformed_reviews_are_errors_that_say_what_is_wrong() {
    let views = Views::default();
    let err = answer(&views, b"{not json").unwrap_err();
    assert!(
        err.contains("not an admission.k8s.io/v1 AdmissionReview"),
        "{err}"
    );
    let err = answer(
        &views,
        json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"})
            .to_string()
            .as_bytes(),
    )
    .unwrap_err();
    assert!(err.contains("no request"), "{err}");
    let mut old_version = review_request(
        "v",
        &attrs("Cluster", "clusters", "db", Operation::Create, false),
        &cluster("db", good_cluster_config("db")),
        None,
    );
    old_version["apiVersion"] = json!("admission.k8s.io/v1beta1");
    let err = answer(&views, old_version.to_string().as_bytes()).unwrap_err();
    assert!(err.contains("admission.k8s.io/v1beta1"), "{err}");
    let mut no_object = review_request(
        "n",
        &attrs("Cluster", "clusters", "db", Operation::Create, false),
        &Value::Null,
        None,
    );
    no_object["request"]
        .as_object_mut()
        .unwrap()
        .remove("object");
    let err = answer(&views, no_object.to_string().as_bytes()).unwrap_err();
    assert!(err.contains("request.object is missing"), "{err}");
    // A spec that is not a Bootes spec at all is the object's fault: denied,
    // in the words the status of the object read from the API would say.
    let not_bootes = json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
                            "metadata": {"name": "db", "namespace": "shop"}, "spec": {"confg": {}}});
    let a = ask(
        &views,
        &review_request(
            "m",
            &attrs("Cluster", "clusters", "db", Operation::Create, false),
            &not_bootes,
            None,
        ),
    );
    assert_eq!(a.verdict, Verdict::Denied);
    assert!(
        a.response
            .result
            .message
            .starts_with("Cluster shop/db: spec: unknown field `confg`"),
        "{}",
        a.response.result.message
    );
    let from_api = object_from_dynamic(
        ResourceType::Cluster,
        &serde_json::from_value(not_bootes).unwrap(),
    )
    .unwrap_err();
    assert_eq!(a.response.result.message, from_api);
    // A null spec is a missing one, as from the API.
    let a = ask(
        &views,
        &review_request(
            "s",
            &attrs("Cluster", "clusters", "db", Operation::Create, false),
            &json!({"apiVersion": "bootes.io/v1", "kind": "Cluster",
                    "metadata": {"name": "db", "namespace": "shop"}, "spec": null}),
            None,
        ),
    );
    assert_eq!(a.verdict, Verdict::Denied);
    assert_eq!(a.response.result.message, "Cluster shop/db: spec: missing");
}
