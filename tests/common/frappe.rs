//! A test double of the Frappe v15 REST API (Frappe CRM), served by axum on
//! `127.0.0.1:0` inside the test process, for the real `frappe-crm-mcp` server
//! (`tests/frappe_mcp.rs`; what that server sends is in `tests/frappe/README.md`).
//!
//! What it models, as Frappe v15 does it:
//! * token auth: `Authorization: token <api_key>:<api_secret>`; a wrong key or secret is
//!   401 `AuthenticationError`, no credentials at all (Guest) is 403 `PermissionError`;
//! * `/api/resource/{doctype}`: `GET` a list (`fields`, `filters`, `limit_page_length`
//!   (alias `limit`), `limit_start`, `order_by`), `POST` a new document;
//!   `/api/resource/{doctype}/{name}`: `GET`, `PUT` (merge the given fields and save),
//!   `DELETE` — for `CRM Lead`, `FCRM Note` and `CRM Lead Status`; every answer is the
//!   `{"data": …}` envelope;
//! * errors as Frappe's JSON: `exc_type`, `exception` and `_server_messages` (a JSON
//!   string of a list of JSON strings, each `{"message", "title", "indicator",
//!   "raise_exception"}`): 404 `DoesNotExistError` for an unknown name or doctype, 417
//!   `LinkValidationError` (a `ValidationError`) for a lead status that is not a
//!   `CRM Lead Status` (Frappe CRM's `status` is a Link field: New, Contacted, Nurture,
//!   Qualified, Unqualified, Junk), 417 `ValidationError` for a `no_of_employees` outside
//!   its Select options, 417 `MandatoryError` for a lead without `first_name`;
//! * names: `CRM-LEAD-<year>-<00001>` for leads, a 10-character hash for notes;
//!   `lead_name` is recomputed from salutation/first/middle/last name on every save.
//!
//! For the tests: a request log ([`FrappeDouble::requests`], every request including
//! refused ones), seeding ([`FrappeDouble::seed_lead`], [`FrappeDouble::seed_sample_leads`]
//! from `tests/frappe/leads.json`) and a switch that makes every write fail with 417
//! ([`FrappeDouble::refuse_writes`]). Not modelled: `/api/method/…` (404),
//! `or_filters`, `group_by`, child tables, permissions beyond the token, the `exc`
//! traceback.

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

/// The API key and secret the double accepts (`token KEY:SECRET`).
pub const API_KEY: &str = "strata-test-frappe-key";
pub const API_SECRET: &str = "strata-test-frappe-SECRET-5f0e2c";

/// Frappe CRM's default lead statuses (`CRM Lead Status` documents), in their order.
pub const LEAD_STATUSES: [&str; 6] = [
    "New",
    "Contacted",
    "Nurture",
    "Qualified",
    "Unqualified",
    "Junk",
];

/// The options of `CRM Lead.no_of_employees` (a Select field).
pub const EMPLOYEE_RANGES: [&str; 6] = ["1-10", "11-50", "51-200", "201-500", "501-1000", "1000+"];

/// Doctypes that exist for a `DocType` link (`FCRM Note.reference_doctype`).
const KNOWN_DOCTYPES: [&str; 6] = [
    "CRM Lead",
    "CRM Deal",
    "FCRM Note",
    "CRM Lead Status",
    "Contact",
    "CRM Organization",
];

/// Doctypes the double stores.
const STORED_DOCTYPES: [&str; 3] = ["CRM Lead", "FCRM Note", "CRM Lead Status"];

/// The fields of a `CRM Lead` a GET returns (null unless set), after the standard ones.
const LEAD_FIELDS: [&str; 22] = [
    "naming_series",
    "salutation",
    "first_name",
    "middle_name",
    "last_name",
    "lead_name",
    "gender",
    "lead_owner",
    "status",
    "source",
    "organization",
    "no_of_employees",
    "website",
    "job_title",
    "annual_revenue",
    "industry",
    "territory",
    "email",
    "mobile_no",
    "phone",
    "converted",
    "image",
];

const NOTE_FIELDS: [&str; 4] = ["title", "content", "reference_doctype", "reference_docname"];

/// One request as the double received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub method: String,
    /// The percent-decoded path, e.g. `/api/resource/CRM Lead/CRM-LEAD-2026-00001`.
    pub path: String,
    /// The decoded query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The JSON body, if there was one (`Value::String` holding the text if not JSON).
    pub body: Option<Value>,
    /// The status the double answered.
    pub status: u16,
    /// The JSON body the double answered (`{"data": …}` or Frappe's error).
    pub response: Value,
}

impl Logged {
    /// The first value of query parameter `key`.
    pub fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Query parameter `key` parsed as JSON (`fields`, `filters`).
    pub fn param_json(&self, key: &str) -> Option<Value> {
        self.param(key).and_then(|v| serde_json::from_str(v).ok())
    }

    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "DELETE")
    }
}

#[derive(Default)]
struct Inner {
    /// doctype → documents in insertion order.
    docs: BTreeMap<String, Vec<Map<String, Value>>>,
    log: Vec<Logged>,
    refuse_writes: Option<String>,
    /// Last timestamp handed out (microseconds since the epoch), kept strictly rising.
    last_micros: i64,
}

struct Shared {
    inner: Mutex<Inner>,
}

/// A running double; the server stops when this is dropped.
pub struct FrappeDouble {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FrappeDouble {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FrappeDouble {
    /// Starts the double on a free loopback port, with the six lead statuses and no leads.
    pub async fn start() -> FrappeDouble {
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner::default()),
        });
        {
            let mut g = shared.inner.lock().unwrap();
            for (i, s) in LEAD_STATUSES.iter().enumerate() {
                let now = g.now();
                let mut doc = standard_fields("CRM Lead Status", s, &now);
                doc.insert("lead_status".into(), json!(s));
                doc.insert("position".into(), json!(i + 1));
                doc.insert("color".into(), json!("gray"));
                g.docs
                    .entry("CRM Lead Status".into())
                    .or_default()
                    .push(doc);
            }
        }
        let app = Router::new()
            .route("/api/resource/{doctype}", get(list_docs).post(create_doc))
            .route(
                "/api/resource/{doctype}/{name}",
                get(get_doc).put(update_doc).delete(delete_doc),
            )
            .fallback(not_found)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FrappeDouble { addr, shared, task }
    }

    /// The site's base URL, e.g. `http://127.0.0.1:41234` (what `FRAPPE_URL` takes).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The environment `frappe-crm-mcp` needs to use this double (`FRAPPE_URL`,
    /// `FRAPPE_API_KEY`, `FRAPPE_API_SECRET`), plus FastMCP's settings that keep its
    /// start-up quiet and off the network (no banner, no update check against PyPI, log
    /// level WARNING).
    pub fn mcp_env(&self) -> BTreeMap<String, String> {
        [
            ("FRAPPE_URL", self.url()),
            ("FRAPPE_API_KEY", API_KEY.to_string()),
            ("FRAPPE_API_SECRET", API_SECRET.to_string()),
            ("FASTMCP_SHOW_SERVER_BANNER", "false".to_string()),
            ("FASTMCP_CHECK_FOR_UPDATES", "off".to_string()),
            ("FASTMCP_LOG_LEVEL", "WARNING".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// The Frappe-shaped leads of `tests/frappe/leads.json`.
    pub fn sample_leads() -> Vec<Value> {
        serde_json::from_str(include_str!("../frappe/leads.json")).expect("tests/frappe/leads.json")
    }

    /// Seeds every lead of [`FrappeDouble::sample_leads`]; returns their names.
    pub fn seed_sample_leads(&self) -> Vec<String> {
        Self::sample_leads()
            .into_iter()
            .map(|l| self.seed_lead(l))
            .collect()
    }

    /// Stores a `CRM Lead` as given (a JSON object of its fields), bypassing validation;
    /// `name` is generated when absent, `lead_name` computed when absent. Returns the name.
    pub fn seed_lead(&self, lead: Value) -> String {
        let Value::Object(fields) = lead else {
            panic!("a lead is a JSON object")
        };
        let mut g = self.shared.inner.lock().unwrap();
        let name = match fields.get("name").and_then(Value::as_str) {
            Some(n) => n.to_string(),
            None => g.next_lead_name(),
        };
        assert!(
            g.find("CRM Lead", &name).is_none(),
            "lead {name} is already seeded"
        );
        let now = g.now();
        let mut doc = new_lead(&name, &now);
        for (k, v) in fields {
            if k != "name" {
                doc.insert(k, v);
            }
        }
        if doc.get("lead_name").is_none_or(Value::is_null) {
            set_lead_name(&mut doc);
        }
        g.docs.entry("CRM Lead".into()).or_default().push(doc);
        name
    }

    /// A stored document, as a GET would return it.
    pub fn doc(&self, doctype: &str, name: &str) -> Option<Value> {
        let g = self.shared.inner.lock().unwrap();
        g.find(doctype, name)
            .map(|i| Value::Object(g.docs[doctype][i].clone()))
    }

    /// A stored lead.
    pub fn lead(&self, name: &str) -> Option<Value> {
        self.doc("CRM Lead", name)
    }

    /// Every stored document of `doctype`, in insertion order.
    pub fn docs(&self, doctype: &str) -> Vec<Value> {
        let g = self.shared.inner.lock().unwrap();
        g.docs
            .get(doctype)
            .map(|d| d.iter().cloned().map(Value::Object).collect())
            .unwrap_or_default()
    }

    /// The stored `FCRM Note`s.
    pub fn notes(&self) -> Vec<Value> {
        self.docs("FCRM Note")
    }

    /// Every request received so far, in order.
    pub fn requests(&self) -> Vec<Logged> {
        self.shared.inner.lock().unwrap().log.clone()
    }

    /// The POST, PUT and DELETE requests received so far.
    pub fn writes(&self) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(Logged::is_write)
            .collect()
    }

    /// Forgets the requests logged so far.
    pub fn clear_requests(&self) {
        self.shared.inner.lock().unwrap().log.clear();
    }

    /// `Some(message)`: every POST, PUT and DELETE (after authentication) fails with 417
    /// `ValidationError` carrying `message`, and changes nothing — a CRM that refuses the
    /// write. `None`: writes work again.
    pub fn refuse_writes(&self, message: Option<&str>) {
        self.shared.inner.lock().unwrap().refuse_writes = message.map(str::to_string);
    }
}

impl Inner {
    fn now(&mut self) -> String {
        let mut micros = chrono::Utc::now().timestamp_micros();
        if micros <= self.last_micros {
            micros = self.last_micros + 1;
        }
        self.last_micros = micros;
        chrono::DateTime::from_timestamp_micros(micros)
            .unwrap()
            .format("%Y-%m-%d %H:%M:%S%.6f")
            .to_string()
    }

    fn find(&self, doctype: &str, name: &str) -> Option<usize> {
        self.docs
            .get(doctype)?
            .iter()
            .position(|d| d.get("name").and_then(Value::as_str) == Some(name))
    }

    /// `CRM-LEAD-<year>-<n>`, one above the highest number of this year in the store.
    fn next_lead_name(&self) -> String {
        use chrono::Datelike;
        let prefix = format!("CRM-LEAD-{}-", chrono::Utc::now().year());
        let max = self
            .docs
            .get("CRM Lead")
            .into_iter()
            .flatten()
            .filter_map(|d| {
                d.get("name")?
                    .as_str()?
                    .strip_prefix(&prefix)?
                    .parse::<u32>()
                    .ok()
            })
            .max()
            .unwrap_or(0);
        format!("{prefix}{:05}", max + 1)
    }
}

fn standard_fields(doctype: &str, name: &str, now: &str) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    m.insert("owner".into(), json!("Administrator"));
    m.insert("creation".into(), json!(now));
    m.insert("modified".into(), json!(now));
    m.insert("modified_by".into(), json!("Administrator"));
    m.insert("docstatus".into(), json!(0));
    m.insert("idx".into(), json!(0));
    m.insert("doctype".into(), json!(doctype));
    m
}

fn new_lead(name: &str, now: &str) -> Map<String, Value> {
    let mut doc = standard_fields("CRM Lead", name, now);
    for f in LEAD_FIELDS {
        doc.insert(f.into(), Value::Null);
    }
    doc.insert("naming_series".into(), json!("CRM-LEAD-.YYYY.-"));
    doc.insert("status".into(), json!("New"));
    doc.insert("annual_revenue".into(), json!(0.0));
    doc.insert("converted".into(), json!(0));
    doc
}

/// Frappe CRM's `set_full_name`: salutation, first, middle and last name joined.
fn set_lead_name(doc: &mut Map<String, Value>) {
    let parts: Vec<&str> = ["salutation", "first_name", "middle_name", "last_name"]
        .iter()
        .filter_map(|k| doc.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .collect();
    if !parts.is_empty() {
        let full = parts.join(" ");
        doc.insert("lead_name".into(), json!(full));
    }
}

// ---------------------------------------------------------------------------------------
// Errors, Frappe-shaped

struct FrappeError {
    status: StatusCode,
    exc_type: &'static str,
    message: Option<String>,
    /// The text after `frappe.exceptions.<Type>: ` (defaults to `message`).
    exception: Option<String>,
}

impl FrappeError {
    fn new(status: StatusCode, exc_type: &'static str, message: impl Into<String>) -> Self {
        FrappeError {
            status,
            exc_type,
            message: Some(message.into()),
            exception: None,
        }
    }

    fn not_found(doctype: &str, name: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            format!("{doctype} {name} not found"),
        )
    }

    fn validation(exc_type: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::EXPECTATION_FAILED, exc_type, message)
    }

    fn body(&self) -> Value {
        let detail = self.exception.as_ref().or(self.message.as_ref());
        let mut body = json!({
            "exception": match detail {
                Some(d) => format!("frappe.exceptions.{}: {d}", self.exc_type),
                None => format!("frappe.exceptions.{}", self.exc_type),
            },
            "exc_type": self.exc_type,
        });
        if let Some(m) = &self.message {
            let msg = json!({
                "message": m,
                "title": "Message",
                "indicator": "red",
                "raise_exception": 1,
                "__frappe_exc_id": format!("{:016x}", rand::random::<u64>()),
            });
            body["_server_messages"] = json!(serde_json::to_string(&[msg.to_string()]).unwrap());
        }
        body
    }
}

// ---------------------------------------------------------------------------------------
// Handlers

type St = State<Arc<Shared>>;

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What every handler does first: parse the body, check the token, and log the request
/// (with the status it will get, filled in by [`finish`]). Returns the log index.
fn begin(
    shared: &Shared,
    method: &Method,
    uri: &Uri,
    query: &[(String, String)],
    headers: &HeaderMap,
    body: &Bytes,
) -> (usize, Result<Option<Value>, FrappeError>) {
    let parsed = if body.is_empty() {
        None
    } else {
        Some(
            serde_json::from_slice::<Value>(body)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(body).into_owned())),
        )
    };
    let mut g = shared.inner.lock().unwrap();
    g.log.push(Logged {
        method: method.to_string(),
        path: percent_decode(uri.path()),
        query: query.to_vec(),
        body: parsed.clone(),
        status: 0,
        response: Value::Null,
    });
    let idx = g.log.len() - 1;
    drop(g);
    (idx, authenticate(headers).map(|()| parsed))
}

fn authenticate(headers: &HeaderMap) -> Result<(), FrappeError> {
    let Some(h) = headers.get("authorization") else {
        // Guest: no permission on CRM documents.
        return Err(FrappeError::new(
            StatusCode::FORBIDDEN,
            "PermissionError",
            "Not permitted",
        ));
    };
    let ok = h
        .to_str()
        .ok()
        .and_then(|v| v.strip_prefix("token "))
        .is_some_and(|t| t == format!("{API_KEY}:{API_SECRET}"));
    if ok {
        Ok(())
    } else {
        Err(FrappeError {
            status: StatusCode::UNAUTHORIZED,
            exc_type: "AuthenticationError",
            message: None,
            exception: None,
        })
    }
}

fn finish(shared: &Shared, idx: usize, r: Result<Value, FrappeError>) -> Response {
    let (status, body) = match r {
        Ok(data) => (StatusCode::OK, json!({ "data": data })),
        Err(e) => (e.status, e.body()),
    };
    {
        let mut g = shared.inner.lock().unwrap();
        g.log[idx].status = status.as_u16();
        g.log[idx].response = body.clone();
    }
    (status, Json(body)).into_response()
}

fn check_doctype(doctype: &str) -> Result<(), FrappeError> {
    if STORED_DOCTYPES.contains(&doctype) {
        Ok(())
    } else {
        Err(FrappeError::not_found("DocType", doctype))
    }
}

async fn not_found(
    State(shared): St,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|_| {
        Err(FrappeError::new(
            StatusCode::NOT_FOUND,
            "DoesNotExistError",
            format!(
                "{} is not modelled by the test double",
                percent_decode(uri.path())
            ),
        ))
    });
    finish(&shared, idx, r)
}

async fn list_docs(
    State(shared): St,
    Path(doctype): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|_| {
        check_doctype(&doctype)?;
        let g = shared.inner.lock().unwrap();
        list(
            g.docs.get(&doctype).map(Vec::as_slice).unwrap_or(&[]),
            &query,
        )
    });
    finish(&shared, idx, r)
}

async fn get_doc(
    State(shared): St,
    Path((doctype, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|_| {
        check_doctype(&doctype)?;
        let g = shared.inner.lock().unwrap();
        let i = g
            .find(&doctype, &name)
            .ok_or_else(|| FrappeError::not_found(&doctype, &name))?;
        Ok(Value::Object(g.docs[&doctype][i].clone()))
    });
    finish(&shared, idx, r)
}

/// Frappe's `get_request_form_data`: the JSON body, or the JSON string in its `data` key.
fn form_data(body: Option<Value>) -> Result<Map<String, Value>, FrappeError> {
    let body = match body {
        Some(Value::Object(mut m))
            if m.len() == 1 && m.get("data").is_some_and(Value::is_string) =>
        {
            let s = m.remove("data").unwrap();
            serde_json::from_str(s.as_str().unwrap()).unwrap_or(Value::Null)
        }
        Some(v) => v,
        None => Value::Object(Map::new()),
    };
    match body {
        Value::Object(m) => Ok(m),
        _ => Err(FrappeError::validation(
            "ValidationError",
            "The request body must be a JSON object",
        )),
    }
}

fn refused(g: &Inner) -> Result<(), FrappeError> {
    match &g.refuse_writes {
        Some(m) => Err(FrappeError::validation("ValidationError", m.clone())),
        None => Ok(()),
    }
}

/// Field fixes and validations of a save (`doc.insert()` / `doc.save()`).
fn validate(g: &Inner, doctype: &str, doc: &mut Map<String, Value>) -> Result<(), FrappeError> {
    match doctype {
        "CRM Lead" => {
            if doc
                .get("first_name")
                .and_then(Value::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(FrappeError {
                    exception: Some(format!(
                        "[CRM Lead, {}]: first_name",
                        doc.get("name").and_then(Value::as_str).unwrap_or("")
                    )),
                    ..FrappeError::validation(
                        "MandatoryError",
                        "Error: Value missing for CRM Lead: First Name",
                    )
                });
            }
            set_lead_name(doc);
            match doc.get("status") {
                None | Some(Value::Null) => {
                    doc.insert("status".into(), json!("New"));
                }
                Some(Value::String(s)) if g.find("CRM Lead Status", s).is_some() => {}
                Some(other) => {
                    let shown = other
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(other.to_string());
                    return Err(FrappeError::validation(
                        "LinkValidationError",
                        format!("Could not find Status: {shown}"),
                    ));
                }
            }
            match doc.get("no_of_employees") {
                None | Some(Value::Null) => {}
                Some(Value::String(s)) if s.is_empty() || EMPLOYEE_RANGES.contains(&s.as_str()) => {
                }
                Some(other) => {
                    let shown = other
                        .as_str()
                        .map(str::to_string)
                        .unwrap_or(other.to_string());
                    return Err(FrappeError::validation(
                        "ValidationError",
                        format!(
                            "No. of Employees cannot be \"{shown}\". It should be one of \"{}\"",
                            EMPLOYEE_RANGES.join("\", \"")
                        ),
                    ));
                }
            }
        }
        "FCRM Note" => {
            let rdt = doc
                .get("reference_doctype")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !rdt.is_empty() && !KNOWN_DOCTYPES.contains(&rdt) {
                return Err(FrappeError::validation(
                    "LinkValidationError",
                    format!("Could not find Reference Document Type: {rdt}"),
                ));
            }
            let rdn = doc
                .get("reference_docname")
                .and_then(Value::as_str)
                .unwrap_or("");
            if !rdn.is_empty() && STORED_DOCTYPES.contains(&rdt) && g.find(rdt, rdn).is_none() {
                return Err(FrappeError::validation(
                    "LinkValidationError",
                    format!("Could not find Reference Doc: {rdn}"),
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// Keys a client cannot set.
const SYSTEM_FIELDS: [&str; 7] = [
    "name",
    "doctype",
    "owner",
    "creation",
    "modified",
    "modified_by",
    "docstatus",
];

async fn create_doc(
    State(shared): St,
    Path(doctype): Path<String>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|body| {
        check_doctype(&doctype)?;
        let data = form_data(body)?;
        let mut g = shared.inner.lock().unwrap();
        refused(&g)?;
        let now = g.now();
        let mut doc = match doctype.as_str() {
            "CRM Lead" => {
                let name = g.next_lead_name();
                new_lead(&name, &now)
            }
            "FCRM Note" => {
                let mut d = standard_fields(&doctype, &hash10(), &now);
                for f in NOTE_FIELDS {
                    d.insert(f.into(), Value::Null);
                }
                d
            }
            _ => {
                let name = data
                    .get("lead_status")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_string();
                standard_fields(&doctype, &name, &now)
            }
        };
        for (k, v) in data {
            if !SYSTEM_FIELDS.contains(&k.as_str()) {
                doc.insert(k, v);
            }
        }
        validate(&g, &doctype, &mut doc)?;
        g.docs.entry(doctype.clone()).or_default().push(doc.clone());
        Ok(Value::Object(doc))
    });
    finish(&shared, idx, r)
}

async fn update_doc(
    State(shared): St,
    Path((doctype, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|body| {
        check_doctype(&doctype)?;
        let data = form_data(body)?;
        let mut g = shared.inner.lock().unwrap();
        let i = g
            .find(&doctype, &name)
            .ok_or_else(|| FrappeError::not_found(&doctype, &name))?;
        refused(&g)?;
        let mut doc = g.docs[&doctype][i].clone();
        for (k, v) in data {
            if !SYSTEM_FIELDS.contains(&k.as_str()) && k != "flags" {
                doc.insert(k, v);
            }
        }
        validate(&g, &doctype, &mut doc)?;
        let now = g.now();
        doc.insert("modified".into(), json!(now));
        g.docs.get_mut(&doctype).unwrap()[i] = doc.clone();
        Ok(Value::Object(doc))
    });
    finish(&shared, idx, r)
}

async fn delete_doc(
    State(shared): St,
    Path((doctype, name)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (idx, r) = begin(&shared, &method, &uri, &query, &headers, &body);
    let r = r.and_then(|_| {
        check_doctype(&doctype)?;
        let mut g = shared.inner.lock().unwrap();
        let i = g
            .find(&doctype, &name)
            .ok_or_else(|| FrappeError::not_found(&doctype, &name))?;
        refused(&g)?;
        g.docs.get_mut(&doctype).unwrap().remove(i);
        Ok(json!("ok"))
    });
    finish(&shared, idx, r)
}

fn hash10() -> String {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    (0..10)
        .map(|_| ALPHABET[rand::random_range(0..ALPHABET.len())] as char)
        .collect()
}

// ---------------------------------------------------------------------------------------
// Lists: fields, filters, order_by, limit_start, limit_page_length

/// `tabCRM Lead`.`status` or `status` → `status`.
fn bare_field(f: &str) -> String {
    let f = f.trim();
    let f = f.rsplit('.').next().unwrap_or(f);
    f.trim_matches('`').to_string()
}

fn bad_request(message: impl Into<String>) -> FrappeError {
    FrappeError::validation("DataError", message)
}

fn list(docs: &[Map<String, Value>], query: &[(String, String)]) -> Result<Value, FrappeError> {
    let param = |k: &str| query.iter().find(|(q, _)| q == k).map(|(_, v)| v.as_str());
    let fields: Vec<String> = match param("fields") {
        None => vec!["name".into()],
        Some(f) => serde_json::from_str::<Vec<String>>(f)
            .map_err(|e| bad_request(format!("fields: {e}")))?,
    };
    let filters = parse_filters(param("filters"))?;
    let order_by = param("order_by").unwrap_or("modified desc");
    let start: usize = param("limit_start")
        .map(|s| {
            s.parse()
                .map_err(|_| bad_request("limit_start must be an integer"))
        })
        .transpose()?
        .unwrap_or(0);
    let page: usize = match param("limit_page_length").or(param("limit")) {
        None => 20,
        Some("None") | Some("") => 0,
        Some(s) => s
            .parse()
            .map_err(|_| bad_request("limit_page_length must be an integer"))?,
    };
    let mut rows: Vec<&Map<String, Value>> = docs
        .iter()
        .filter(|d| filters.iter().all(|(f, op, v)| matches(d.get(f), op, v)))
        .collect();
    // Sort by the clauses, last first (a stable sort keeps the earlier clauses ruling).
    for clause in order_by.split(',').rev() {
        let mut parts = clause.split_whitespace();
        let Some(field) = parts.next() else { continue };
        let field = bare_field(field);
        let desc = parts.next().is_some_and(|d| d.eq_ignore_ascii_case("desc"));
        rows.sort_by(|a, b| {
            let o = compare(a.get(&field), b.get(&field));
            if desc {
                o.reverse()
            } else {
                o
            }
        });
    }
    let rows = rows.into_iter().skip(start);
    let rows: Vec<_> = if page == 0 {
        rows.collect()
    } else {
        rows.take(page).collect()
    };
    Ok(Value::Array(
        rows.into_iter()
            .map(|d| {
                if fields.iter().any(|f| f.trim() == "*") {
                    return Value::Object(d.clone());
                }
                let mut out = Map::new();
                for f in &fields {
                    let (src, alias) = match f.split_once(" as ") {
                        Some((s, a)) => (bare_field(s), a.trim().to_string()),
                        None => (bare_field(f), bare_field(f)),
                    };
                    out.insert(alias, d.get(&src).cloned().unwrap_or(Value::Null));
                }
                Value::Object(out)
            })
            .collect(),
    ))
}

/// `{"status": "New", "source": ["like", "%web%"]}` or `[["status", "=", "New"], …]`
/// (also `[doctype, field, op, value]`) → (field, op, value).
fn parse_filters(raw: Option<&str>) -> Result<Vec<(String, String, Value)>, FrappeError> {
    let Some(raw) = raw else {
        return Ok(Vec::new());
    };
    let v: Value = serde_json::from_str(raw).map_err(|e| bad_request(format!("filters: {e}")))?;
    let mut out = Vec::new();
    match v {
        Value::Object(m) => {
            for (f, cond) in m {
                match cond {
                    Value::Array(a) if a.len() == 2 && a[0].is_string() => out.push((
                        bare_field(&f),
                        a[0].as_str().unwrap().to_lowercase(),
                        a[1].clone(),
                    )),
                    other => out.push((bare_field(&f), "=".into(), other)),
                }
            }
        }
        Value::Array(list) => {
            for c in list {
                let a = c.as_array().cloned().unwrap_or_default();
                let a = if a.len() == 4 { a[1..].to_vec() } else { a };
                if a.len() != 3 {
                    return Err(bad_request(format!("filters: bad condition {c}")));
                }
                let field = a[0].as_str().unwrap_or_default();
                let op = a[1].as_str().unwrap_or("=").to_lowercase();
                out.push((bare_field(field), op, a[2].clone()));
            }
        }
        Value::Null => {}
        other => return Err(bad_request(format!("filters: {other}"))),
    }
    Ok(out)
}

fn as_text(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

fn compare(a: Option<&Value>, b: Option<&Value>) -> std::cmp::Ordering {
    match (a.and_then(Value::as_f64), b.and_then(Value::as_f64)) {
        (Some(x), Some(y)) => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
        _ => as_text(a).cmp(&as_text(b)),
    }
}

/// SQL `LIKE` with `%` and `_`, case-insensitive (MariaDB's default collation).
fn like(text: &str, pattern: &str) -> bool {
    fn go(t: &[char], p: &[char]) -> bool {
        match p.split_first() {
            None => t.is_empty(),
            Some(('%', rest)) => (0..=t.len()).any(|i| go(&t[i..], rest)),
            Some(('_', rest)) => !t.is_empty() && go(&t[1..], rest),
            Some((c, rest)) => t.first() == Some(c) && go(&t[1..], rest),
        }
    }
    let t: Vec<char> = text.to_lowercase().chars().collect();
    let p: Vec<char> = pattern.to_lowercase().chars().collect();
    go(&t, &p)
}

fn matches(field: Option<&Value>, op: &str, want: &Value) -> bool {
    let have = as_text(field);
    let list = || -> Vec<String> {
        match want {
            Value::Array(a) => a.iter().map(|v| as_text(Some(v))).collect(),
            Value::String(s) => s.split(',').map(|s| s.trim().to_string()).collect(),
            other => vec![as_text(Some(other))],
        }
    };
    match op {
        "=" => have == as_text(Some(want)),
        "!=" => have != as_text(Some(want)),
        "like" => like(&have, &as_text(Some(want))),
        "not like" => !like(&have, &as_text(Some(want))),
        "in" => list().contains(&have),
        "not in" => !list().contains(&have),
        "is" => match as_text(Some(want)).as_str() {
            "set" => !have.is_empty(),
            _ => have.is_empty(),
        },
        ">" | "<" | ">=" | "<=" => {
            let o = compare(field, Some(want));
            match op {
                ">" => o.is_gt(),
                "<" => o.is_lt(),
                ">=" => o.is_ge(),
                _ => o.is_le(),
            }
        }
        _ => false,
    }
}
