//! The HTTP layer: routes Kubernetes API paths onto the [`Store`], negotiates
//! response shapes, and streams watches. Thin by design; the rules live in the store.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

use super::admission::{self, Verb};
use super::discovery;
use super::error::ApiError;
use super::present::{self, negotiate, Shape};
use super::schema::FieldValidation;
use super::selector::Selectors;
use super::store::{watch_view, Deleted, EventType, PatchKind, Store, Subresource, Target};
use super::time::now_unix;

/// Server settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// How often a watch that allows bookmarks gets a BOOKMARK event.
    pub bookmark_interval: Duration,
    /// How many events the history keeps before the oldest are dropped (410 Gone).
    pub history_limit: usize,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            bookmark_interval: Duration::from_secs(1),
            history_limit: 10_000,
        }
    }
}

/// Shared server state.
pub struct App {
    store: Mutex<Store>,
    revision: watch::Sender<u64>,
    /// Bumped by `POST /standin/close-watches`: every open watch ends.
    close_watches: watch::Sender<u64>,
    options: Options,
    address: String,
}

impl App {
    pub fn new(options: Options, address: SocketAddr) -> Arc<Self> {
        let store = Store::new(options.history_limit);
        let (revision, _) = watch::channel(store.revision());
        Arc::new(Self {
            store: Mutex::new(store),
            revision,
            close_watches: watch::channel(0).0,
            options,
            address: address.to_string(),
        })
    }

    fn store(&self) -> MutexGuard<'_, Store> {
        // A panic while holding the lock leaves consistent data (operations only
        // commit at their end), so a poisoned lock is still usable.
        self.store.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn notify(&self, revision: u64) {
        self.revision.send_replace(revision);
    }
}

/// The router serving the whole API.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .fallback(handle)
        .layer(DefaultBodyLimit::max(64 * 1024 * 1024))
        .with_state(app)
}

/// Serves on a bound listener until the future is dropped.
pub async fn serve(listener: tokio::net::TcpListener, options: Options) -> std::io::Result<()> {
    let addr = listener.local_addr()?;
    axum::serve(listener, router(App::new(options, addr))).await
}

fn json_response(code: u16, body: &Value) -> Response {
    let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

fn error_response(e: &ApiError) -> Response {
    json_response(e.code, &e.status())
}

/// Where a request points.
#[derive(Debug, PartialEq)]
enum Route {
    Root,
    Version,
    Health,
    CoreVersions,
    Groups,
    Group(String),
    Resources(String, String),
    OpenApiIndex,
    OpenApiDoc(String, String),
    Compact,
    CloseWatches,
    Object {
        group: String,
        version: String,
        plural: String,
        namespace: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn object_route(group: &str, version: &str, rest: &[&str]) -> Option<Route> {
    let owned = |s: Option<&&str>| s.map(|s| s.to_string());
    let namespaced = rest.first() == Some(&"namespaces")
        && rest.len() >= 3
        && !(rest.len() == 3 && matches!(rest[2], "status" | "finalize"));
    let (namespace, rest) = if namespaced {
        (Some(rest[1].to_string()), &rest[2..])
    } else {
        (None, rest)
    };
    if rest.is_empty() || rest.len() > 3 {
        return None;
    }
    Some(Route::Object {
        group: group.into(),
        version: version.into(),
        plural: rest[0].into(),
        namespace,
        name: owned(rest.get(1)),
        sub: owned(rest.get(2)),
    })
}

fn route(path: &str) -> Option<Route> {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    Some(match segs.as_slice() {
        [] => Route::Root,
        ["version"] => Route::Version,
        ["healthz" | "livez" | "readyz"] => Route::Health,
        ["api"] => Route::CoreVersions,
        ["api", v] => Route::Resources(String::new(), v.to_string()),
        ["api", v, rest @ ..] => return object_route("", v, rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Resources(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => return object_route(g, v, rest),
        ["openapi", "v3"] => Route::OpenApiIndex,
        ["openapi", "v3", "api", v] => Route::OpenApiDoc(String::new(), v.to_string()),
        ["openapi", "v3", "apis", g, v] => Route::OpenApiDoc(g.to_string(), v.to_string()),
        ["standin", "compact"] => Route::Compact,
        ["standin", "close-watches"] => Route::CloseWatches,
        _ => return None,
    })
}

async fn handle(
    State(app): State<Arc<App>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let response = match admit(&app, &method, &uri, &headers, &body).await {
        Ok(warnings) => {
            let mut response = match dispatch(&app, &method, &uri, &headers, body) {
                Ok(r) => r,
                Err(e) => error_response(&e),
            };
            add_warnings(&mut response, warnings);
            response
        }
        Err(refused) => refused,
    };
    tracing::debug!(
        method = %method,
        uri = %uri,
        status = response.status().as_u16(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "request"
    );
    response
}

/// Runs the validating admission webhooks that apply to a write (see
/// [`admission`]) on the object as the write would store it (found by
/// running it first as a dry run) and the stored one. `Ok`: the warnings
/// to add; `Err`: the refusal to answer instead. A write that fails by
/// itself is not sent to webhooks: the write then fails the same way.
async fn admit(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Vec<String>, Response> {
    let verb = match *method {
        Method::POST => Verb::Post,
        Method::PUT => Verb::Put,
        Method::PATCH => Verb::Patch,
        _ => return Ok(Vec::new()),
    };
    let Some(Route::Object {
        group,
        version,
        plural,
        namespace,
        name,
        sub,
    }) = route(uri.path())
    else {
        return Ok(Vec::new());
    };
    let (configurations, namespace_labels, kind) = {
        let store = app.store();
        let Some(kind) = store
            .find(&group, &version, &plural)
            .map(|rt| rt.kind.clone())
        else {
            return Ok(Vec::new());
        };
        let configurations = store
            .target(
                admission::GROUP,
                admission::VERSION,
                admission::PLURAL,
                None,
            )
            .map(|t| store.list(&t, &Selectors::default()).0)
            .unwrap_or_default();
        if configurations.is_empty() {
            return Ok(Vec::new());
        }
        let labels = namespace
            .as_deref()
            .and_then(|ns| {
                store
                    .get(&store.target("", "v1", "namespaces", None)?, ns)
                    .ok()
            })
            .map(|n| n["metadata"]["labels"].clone())
            .unwrap_or(Value::Null);
        (configurations, labels, kind)
    };
    let mut json_headers = headers.clone();
    json_headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
    let as_json = |r: Result<Response, ApiError>| async move {
        let r = r.ok().filter(|r| r.status().is_success())?;
        let bytes = axum::body::to_bytes(r.into_body(), usize::MAX).await.ok()?;
        serde_json::from_slice::<Value>(&bytes).ok()
    };
    let old = match &name {
        Some(_) => {
            let path: Uri = uri
                .path()
                .parse()
                .map_err(|_| error_response(&ApiError::no_route()))?;
            as_json(dispatch(
                app,
                &Method::GET,
                &path,
                &json_headers,
                Bytes::new(),
            ))
            .await
        }
        None => None,
    };
    let dry_run = uri
        .query()
        .is_some_and(|q| q.split('&').any(|p| p == "dryRun=All"));
    let preview: Uri = match uri.query() {
        Some(q) => format!("{}?{q}&dryRun=All", uri.path()),
        None => format!("{}?dryRun=All", uri.path()),
    }
    .parse()
    .map_err(|_| error_response(&ApiError::no_route()))?;
    let attrs = admission::Attributes {
        group,
        version,
        kind,
        resource: plural,
        sub_resource: sub,
        namespace,
        name: name.unwrap_or_default(),
        operation: match (verb, &old) {
            (Verb::Post, _) | (_, None) => admission::Operation::Create,
            _ => admission::Operation::Update,
        },
        verb,
        dry_run,
    };
    let hooks = admission::matching(&configurations, &attrs, &namespace_labels);
    if hooks.is_empty() {
        return Ok(Vec::new());
    }
    let Some(object) = as_json(dispatch(app, method, &preview, &json_headers, body.clone())).await
    else {
        return Ok(Vec::new());
    };
    let attrs = admission::Attributes {
        name: object["metadata"]["name"]
            .as_str()
            .unwrap_or(&attrs.name)
            .to_string(),
        ..attrs
    };
    admission::admit(&hooks, &attrs, &object, old.as_ref())
        .await
        .map_err(|r| json_response(r.code, &r.status))
}

/// `Warning` headers, as the API server sends them (kubectl prints each as
/// `Warning: TEXT`).
fn add_warnings(response: &mut Response, warnings: Vec<String>) {
    for w in warnings {
        if let Ok(v) = HeaderValue::from_str(&format!("299 - {w:?}")) {
            response.headers_mut().append("Warning", v);
        }
    }
}

fn dispatch(
    app: &Arc<App>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(route) = route(uri.path()) else {
        return Err(ApiError::no_route());
    };
    let query: HashMap<String, String> = Query::try_from_uri(uri)
        .map(|Query(q)| q)
        .map_err(|e| ApiError::bad_request(format!("invalid query string: {e}")))?;
    let get_only = |r: Value| {
        if method == Method::GET {
            Ok(json_response(200, &r))
        } else {
            Err(ApiError::method_not_allowed(format!(
                "{method} is not supported on {}",
                uri.path()
            )))
        }
    };
    match route {
        Route::Root => {
            let paths = [
                "/api",
                "/api/v1",
                "/apis",
                "/openapi/v3",
                "/version",
                "/healthz",
            ];
            get_only(json!({"paths": paths}))
        }
        Route::Version => get_only(discovery::version()),
        Route::Health => Ok((StatusCode::OK, "ok").into_response()),
        Route::CoreVersions => get_only(discovery::core_versions(&app.address)),
        Route::Groups => get_only(discovery::group_list(app.store().types())),
        Route::Group(g) => {
            let doc =
                discovery::api_group(app.store().types(), &g).ok_or_else(ApiError::no_route)?;
            get_only(doc)
        }
        Route::Resources(g, v) => {
            let doc = discovery::resource_list(app.store().types(), &g, &v)
                .ok_or_else(ApiError::no_route)?;
            get_only(doc)
        }
        Route::OpenApiIndex => get_only(discovery::openapi_index(app.store().types())),
        Route::OpenApiDoc(g, v) => {
            let doc = discovery::openapi_doc(app.store().types(), &g, &v)
                .ok_or_else(ApiError::no_route)?;
            get_only(doc)
        }
        Route::Compact => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed("POST /standin/compact"));
            }
            let mut store = app.store();
            store.compact();
            let rev = store.revision();
            Ok(json_response(
                200,
                &json!({"compactedRevision": rev.to_string()}),
            ))
        }
        Route::CloseWatches => {
            if method != Method::POST {
                return Err(ApiError::method_not_allowed("POST /standin/close-watches"));
            }
            let open = app.close_watches.receiver_count();
            app.close_watches.send_modify(|n| *n += 1);
            Ok(json_response(200, &json!({"closedWatches": open})))
        }
        Route::Object {
            group,
            version,
            plural,
            namespace,
            name,
            sub,
        } => {
            let shape = negotiate(headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()))?;
            let target = {
                let store = app.store();
                let rt = store
                    .find(&group, &version, &plural)
                    .ok_or_else(ApiError::no_route)?;
                // Namespaced objects need a namespace (except for list/watch across
                // all namespaces); cluster-scoped ones must not have one.
                let ok = match (&namespace, rt.namespaced) {
                    (Some(_), false) => false,
                    (None, true) => name.is_none(),
                    _ => true,
                };
                if !ok {
                    return Err(ApiError::no_route());
                }
                let mut t = store
                    .target(&group, &version, &plural, namespace.as_deref())
                    .ok_or_else(ApiError::no_route)?;
                t.field_validation =
                    FieldValidation::parse(query.get("fieldValidation").map(String::as_str))
                        .map_err(ApiError::bad_request)?;
                t
            };
            let sub = match sub.as_deref() {
                None => Subresource::Main,
                Some("status") if target.rt.has_status(&version) => Subresource::Status,
                Some(_) => return Err(ApiError::no_route()),
            };
            object_request(app, method, headers, &query, target, name, sub, shape, body)
        }
    }
}

fn flag(query: &HashMap<String, String>, key: &str) -> bool {
    matches!(
        query.get(key).map(String::as_str),
        Some("1" | "true" | "True")
    )
}

#[allow(clippy::too_many_arguments)]
fn object_request(
    app: &Arc<App>,
    method: &Method,
    headers: &HeaderMap,
    query: &HashMap<String, String>,
    target: Target,
    name: Option<String>,
    sub: Subresource,
    shape: Shape,
    body: Bytes,
) -> Result<Response, ApiError> {
    let include = query
        .get("includeObject")
        .map(String::as_str)
        .unwrap_or("Metadata");
    let api_version = target.rt.api_version(&target.version);
    let now = now_unix();
    let dry_run = query.get("dryRun").is_some_and(|v| v == "All");
    let selectors = || {
        Selectors::parse(
            query.get("labelSelector").map(String::as_str),
            query.get("fieldSelector").map(String::as_str),
        )
        .map_err(ApiError::bad_request)
    };
    // Runs a write on the store (or on a copy of it for dry runs), collects its
    // warnings, and wakes watchers.
    let warnings = std::cell::RefCell::new(Vec::new());
    let write = |f: &mut dyn FnMut(&mut Store) -> Result<Value, ApiError>| {
        let mut store = app.store();
        if dry_run {
            let mut copy = store.clone();
            let r = f(&mut copy);
            warnings.borrow_mut().extend(copy.take_warnings());
            return r;
        }
        let before = store.revision();
        let r = f(&mut store);
        warnings.borrow_mut().extend(store.take_warnings());
        let after = store.revision();
        drop(store);
        if after != before {
            app.notify(after);
        }
        r
    };
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_string();
    let body_value = || -> Result<Value, ApiError> {
        if content_type.contains("protobuf") || super::proto::is_protobuf(&body) {
            return super::proto::decode(&body).map_err(ApiError::unsupported_media_type);
        }
        super::store::parse_body(&body)
    };
    let single = |code: u16, obj: Value| {
        let out = present::single(&target.rt, &api_version, obj, shape, include, now);
        Ok(json_response(code, &out))
    };
    let result = match (method.clone(), name) {
        (Method::GET, None) => {
            let sel = selectors()?;
            if flag(query, "watch") {
                return start_watch(app, target, query, sel, shape, include);
            }
            if query
                .get("resourceVersionMatch")
                .is_some_and(|m| m == "Exact")
            {
                if let Some(rv) = query.get("resourceVersion") {
                    let store = app.store();
                    if rv.parse::<u64>().ok() != Some(store.revision()) {
                        return Err(ApiError::expired(rv.parse().unwrap_or(0), store.revision()));
                    }
                }
            }
            let (items, rev) = app.store().list(&target, &sel);
            let out = present::list(&target.rt, &api_version, items, rev, shape, include, now);
            Ok(json_response(200, &out))
        }
        (Method::GET, Some(name)) => {
            if flag(query, "watch") {
                return Err(ApiError::bad_request(
                    "watch a single object with a fieldSelector of metadata.name on the collection",
                ));
            }
            let obj = app.store().get(&target, &name)?;
            single(200, obj)
        }
        (Method::POST, None) => {
            let obj = body_value()?;
            let created = write(&mut |s| s.create(&target, obj.clone()))?;
            single(201, created)
        }
        (Method::PUT, Some(name)) => {
            let obj = body_value()?;
            let updated = write(&mut |s| s.replace(&target, &name, sub, obj.clone()))?;
            single(200, updated)
        }
        (Method::PATCH, Some(name)) => {
            let kind = PatchKind::from_content_type(&content_type).ok_or_else(|| {
                ApiError::unsupported_media_type(format!(
                    "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {content_type})"
                ))
            })?;
            let mut created = false;
            let patched = write(&mut |s| {
                let existed = s.get(&target, &name).is_ok();
                let r = s.patch(&target, &name, sub, kind, &body);
                created = !existed && r.is_ok();
                r
            })?;
            single(if created { 201 } else { 200 }, patched)
        }
        (Method::DELETE, Some(name)) => {
            // DeleteOptions in protobuf (typed clients) are ignored.
            let options = if body.is_empty() || super::proto::is_protobuf(&body) {
                Value::Null
            } else {
                body_value()?
            };
            let mut outcome = None;
            write(&mut |s| {
                let d = s.delete(&target, &name, &options)?;
                outcome = Some(d);
                Ok(Value::Null)
            })?;
            match outcome {
                Some(Deleted::Gone(status, _)) => Ok(json_response(200, &status)),
                Some(Deleted::Pending(obj)) => single(200, obj),
                None => Err(ApiError::internal("delete produced no outcome")),
            }
        }
        (Method::DELETE, None) => {
            let sel = selectors()?;
            let deleted = write(&mut |s| {
                let (items, _) = s.list(&target, &sel);
                let mut gone = Vec::new();
                for o in items {
                    let ns = o["metadata"]["namespace"]
                        .as_str()
                        .unwrap_or("")
                        .to_string();
                    let mut t = target.clone();
                    if t.rt.namespaced {
                        t.namespace = Some(ns);
                    }
                    let n = o["metadata"]["name"].as_str().unwrap_or("").to_string();
                    if let Ok(d) = s.delete(&t, &n, &Value::Null) {
                        gone.push(match d {
                            Deleted::Gone(_, obj) | Deleted::Pending(obj) => obj,
                        });
                    }
                }
                Ok(Value::Array(gone))
            })?;
            let rev = app.store().revision();
            let items = match deleted {
                Value::Array(a) => a,
                _ => Vec::new(),
            };
            let out = present::list(
                &target.rt,
                &api_version,
                items,
                rev,
                Shape::Full,
                include,
                now,
            );
            Ok(json_response(200, &out))
        }
        (m, _) => Err(ApiError::method_not_allowed(format!(
            "{m} is not supported here"
        ))),
    };
    let mut response = result?;
    add_warnings(&mut response, warnings.take());
    Ok(response)
}

/// One line of a watch stream.
fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

struct WatchSpec {
    target: Target,
    selectors: Selectors,
    shape: Shape,
    include: String,
    bookmarks: bool,
}

impl WatchSpec {
    fn render(&self, obj: &Value) -> Value {
        let obj = self.target.present(obj.clone());
        let api_version = self.target.rt.api_version(&self.target.version);
        present::single(
            &self.target.rt,
            &api_version,
            obj,
            self.shape,
            &self.include,
            now_unix(),
        )
    }

    fn bookmark(&self, revision: u64, initial_end: bool) -> Value {
        let mut metadata = json!({"resourceVersion": revision.to_string()});
        if initial_end {
            metadata["annotations"] = json!({"k8s.io/initial-events-end": "true"});
        }
        match self.shape {
            Shape::Metadata(v) => json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": format!("meta.k8s.io/{v}"),
                "metadata": metadata,
            }),
            _ => json!({
                "kind": self.target.rt.kind,
                "apiVersion": self.target.rt.api_version(&self.target.version),
                "metadata": metadata,
            }),
        }
    }
}

fn start_watch(
    app: &Arc<App>,
    target: Target,
    query: &HashMap<String, String>,
    selectors: Selectors,
    shape: Shape,
    include: &str,
) -> Result<Response, ApiError> {
    let rv = query
        .get("resourceVersion")
        .map(String::as_str)
        .unwrap_or("");
    let send_initial = query.get("sendInitialEvents").map(String::as_str);
    let bookmarks = flag(query, "allowWatchBookmarks");
    let timeout = match query.get("timeoutSeconds") {
        Some(t) => Some(Duration::from_secs(t.parse().map_err(|_| {
            ApiError::bad_request(format!("timeoutSeconds: invalid value {t:?}"))
        })?)),
        None => None,
    };
    let initial_events = match send_initial {
        Some("true") => {
            if query.get("resourceVersionMatch").map(String::as_str) != Some("NotOlderThan") {
                return Err(ApiError::unprocessable(
                    "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
                ));
            }
            if !bookmarks {
                return Err(ApiError::unprocessable(
                    "sendInitialEvents requires allowWatchBookmarks=true",
                ));
            }
            true
        }
        Some("false") => false,
        // Legacy semantics: no resourceVersion (or "0") starts with the current state.
        _ => rv.is_empty() || rv == "0",
    };
    let from =
        if initial_events || rv.is_empty() {
            None
        } else {
            Some(rv.parse::<u64>().map_err(|_| {
                ApiError::bad_request(format!("resourceVersion: invalid value {rv:?}"))
            })?)
        };
    let spec = WatchSpec {
        target,
        selectors,
        shape,
        include: include.to_string(),
        bookmarks,
    };
    let mut changes = app.revision.subscribe();
    let mut close = app.close_watches.subscribe();
    // Read the starting state under the lock, so nothing falls between it and the
    // first batch of events.
    let (initial, cursor) = {
        let store = app.store();
        match from {
            Some(n) => (Vec::new(), n),
            None if initial_events => {
                let (items, rev) = store.list(&spec.target, &spec.selectors);
                (items, rev)
            }
            None => (Vec::new(), store.revision()),
        }
    };
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(256);
    let app = app.clone();
    let streaming_list = send_initial == Some("true");
    tokio::spawn(async move {
        let mut cursor = cursor;
        for obj in &initial {
            if tx
                .send(Ok(event_line("ADDED", &spec.render(obj))))
                .await
                .is_err()
            {
                return;
            }
        }
        if streaming_list
            && tx
                .send(Ok(event_line("BOOKMARK", &spec.bookmark(cursor, true))))
                .await
                .is_err()
        {
            return;
        }
        drop(initial);
        let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
        let period = app.options.bookmark_interval.max(Duration::from_millis(10));
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let key = spec.target.storage();
        let mut live = false;
        loop {
            let batch = app.store().events_after(&key, cursor, live);
            live = true;
            match batch {
                Err(e) => {
                    let _ = tx.send(Ok(event_line("ERROR", &e.status()))).await;
                    return;
                }
                Ok((events, upto)) => {
                    for ev in &events {
                        let Some((kind, obj)) =
                            watch_view(ev, spec.target.namespace.as_deref(), &spec.selectors)
                        else {
                            continue;
                        };
                        let kind = match kind {
                            EventType::Added => "ADDED",
                            EventType::Modified => "MODIFIED",
                            EventType::Deleted => "DELETED",
                        };
                        if tx
                            .send(Ok(event_line(kind, &spec.render(obj))))
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                    cursor = upto;
                }
            }
            let expired = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                changed = changes.changed() => {
                    if changed.is_err() {
                        return;
                    }
                }
                _ = ticker.tick(), if spec.bookmarks => {
                    if tx.send(Ok(event_line("BOOKMARK", &spec.bookmark(cursor, false)))).await.is_err() {
                        return;
                    }
                }
                _ = expired => return,
                _ = close.changed() => return,
                _ = tx.closed() => return,
            }
        }
    });
    let mut r = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("no-cache, private"),
    );
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/api"), Some(Route::CoreVersions));
        assert_eq!(
            route("/apis/bootes.io/v1"),
            Some(Route::Resources("bootes.io".into(), "v1".into()))
        );
        assert_eq!(
            route("/api/v1/namespaces/foo"),
            Some(Route::Object {
                group: "".into(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("foo".into()),
                sub: None
            })
        );
        assert_eq!(
            route("/api/v1/namespaces/foo/status"),
            Some(Route::Object {
                group: "".into(),
                version: "v1".into(),
                plural: "namespaces".into(),
                namespace: None,
                name: Some("foo".into()),
                sub: Some("status".into())
            })
        );
        assert_eq!(
            route("/apis/bootes.io/v1/namespaces/foo/clusters/a/status"),
            Some(Route::Object {
                group: "bootes.io".into(),
                version: "v1".into(),
                plural: "clusters".into(),
                namespace: Some("foo".into()),
                name: Some("a".into()),
                sub: Some("status".into())
            })
        );
        assert_eq!(
            route("/apis/bootes.io/v1/namespaces/foo/clusters"),
            Some(Route::Object {
                group: "bootes.io".into(),
                version: "v1".into(),
                plural: "clusters".into(),
                namespace: Some("foo".into()),
                name: None,
                sub: None
            })
        );
        assert_eq!(
            route("/apis/bootes.io/v1/namespaces/foo/clusters/a/status/x"),
            None
        );
        assert_eq!(
            route("/openapi/v3/apis/bootes.io/v1"),
            Some(Route::OpenApiDoc("bootes.io".into(), "v1".into()))
        );
        assert_eq!(route("/nope"), None);
    }
}
