//! Publishing plugin versions through the API and reviewing their capability surface
//! (issue 21, first slice). A published version is stored content-addressed in the
//! database with its manifest, checked as a local load would check it, and compared with
//! the version it would replace (see [`crate::plugins::release`]); a changed surface
//! waits for an admin's approval (`release.require_approval`). Every publish (accepted or
//! refused), approval and rejection is audited (`capability = "release"`) with the id of
//! the key that did it.

use super::published::{against_of, doc_view, stored_surface, version_body};
use crate::audit::AuditRecord;
use crate::config::RequireApproval;
use crate::db::{InsertedVersion, NewReleaseVersion, ReleaseStatus};
use crate::plugins::release::{PublishError, Surface, SurfaceDiff};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::{AppState, RequestId};
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::Deserialize;
use serde_json::{json, Value};

/// The parts of a publish request (`multipart/form-data`). Besides `manifest` and
/// `component`, a layer sends each file its manifest's `[schemas]` names as one more part
/// whose name is the file's path relative to the plugin directory (e.g.
/// `name="schemas/output.json"`, as written, not in the RFC 5987 `name*=` form).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
pub struct PublishForm {
    /// The plugin's `plugin.toml`, as text.
    manifest: String,
    /// The component (`plugin.wasm`), as bytes.
    #[schema(value_type = String, format = Binary)]
    component: Vec<u8>,
}

/// Most files (besides manifest and component) one publish may carry.
const MAX_PUBLISH_FILES: usize = 64;

#[allow(clippy::too_many_arguments)]
fn audit(
    st: &AppState,
    caller: &Caller,
    request_id: Option<&RequestId>,
    name: &str,
    version: &str,
    operation: &str,
    allowed: bool,
    detail: String,
) {
    st.audit.record(AuditRecord {
        at: crate::domain::now_ms(),
        plugin: name.to_string(),
        plugin_version: version.to_string(),
        capability: "release".into(),
        operation: operation.into(),
        target: Some(format!("key:{}", caller.key_id)),
        allowed,
        detail: Some(crate::audit::audit_target(&format!(
            "{detail}; by key {:?} ({})",
            caller.name, caller.key_id
        ))),
        request_id: request_id.map(|r| r.0.to_string()),
        count: 1,
        ..AuditRecord::default()
    });
}

/// Reads one part to its end, refusing more than `max` bytes.
async fn read_part(
    mut field: axum::extract::multipart::Field<'_>,
    max: u64,
    what: &str,
    key: &str,
) -> ApiResult<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(chunk) = field.chunk().await.map_err(|e| {
        ApiError::new(
            e.status(),
            format!("cannot read part {what}: {}", e.body_text()),
        )
    })? {
        if (out.len() + chunk.len()) as u64 > max {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("part {what} is over the limit of {max} bytes ({key})"),
            ));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// Publish a plugin version: `multipart/form-data` with the parts `manifest` (plugin.toml
/// text) and `component` (plugin.wasm bytes), and for a layer one part per file its
/// `[schemas]` names, named by the file's relative path (`schemas/output.json`); those
/// files are stored by their sha256 with the version and laid out beside the manifest
/// on every replica that serves it. The checks of a local load run first
/// (manifest, name, size, component validity, imports vs declared vs granted, smoke
/// tests): a failure is 422 naming it (413 for a component over
/// `release.max_artifact_bytes`). The same version published again with other bytes is
/// 409; with the same bytes, 200 with the stored version. Otherwise the component is
/// stored by its sha256 and the version recorded (201): `approved`, or
/// `awaiting-approval` when its capability surface differs from the released version's
/// (else the version live on this host; see `release.require_approval`). Publishing does
/// not make a version live.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/versions", tag = "releases",
    params(("name" = String, Path)),
    request_body(content = PublishForm, content_type = "multipart/form-data"),
    responses((status = 201, body = Object), (status = 200, body = Object),
              (status = 409, body = crate::server::error::Problem),
              (status = 413, body = crate::server::error::Problem),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn publish(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    request_id: Option<Extension<RequestId>>,
    multipart: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<Value>)> {
    let rid = request_id.as_ref().map(|e| &e.0);
    let mut multipart = multipart.map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let release = st.manager.config().release.clone();
    let (mut manifest, mut component) = (None, None);
    let mut files = std::collections::BTreeMap::new();
    loop {
        let field = multipart.next_field().await.map_err(|e| {
            ApiError::new(
                e.status(),
                format!("malformed multipart body: {}", e.body_text()),
            )
        })?;
        let Some(field) = field else { break };
        match field.name() {
            Some("manifest") => {
                manifest = Some(
                    read_part(
                        field,
                        crate::manifest::MAX_MANIFEST_BYTES,
                        "manifest",
                        "manifest size",
                    )
                    .await?,
                )
            }
            Some("component") => {
                component = Some(
                    read_part(
                        field,
                        release.max_artifact_bytes,
                        "component",
                        "release.max_artifact_bytes",
                    )
                    .await?,
                )
            }
            Some(file) if crate::plugins::release::is_plain_relative(file) => {
                if files.len() >= MAX_PUBLISH_FILES {
                    return Err(ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        format!("a publish carries at most {MAX_PUBLISH_FILES} files"),
                    ));
                }
                let file = file.to_string();
                let bytes = read_part(
                    field,
                    crate::manifest::MAX_MANIFEST_BYTES,
                    &file,
                    "schema file size",
                )
                .await?;
                files.insert(file, bytes);
            }
            other => {
                return Err(ApiError::unprocessable(format!(
                    "unknown part {:?}: send `manifest` (plugin.toml), `component` \
                     (plugin.wasm) and each file the manifest's [schemas] names, under its \
                     relative path",
                    other.unwrap_or("")
                )))
            }
        }
    }
    let (Some(manifest), Some(component)) = (manifest, component) else {
        return Err(ApiError::unprocessable(
            "a publish needs the parts `manifest` (plugin.toml) and `component` (plugin.wasm)",
        ));
    };
    let manifest_text = String::from_utf8(manifest.clone())
        .map_err(|_| ApiError::unprocessable("the manifest part is not UTF-8 text"))?;

    let plugin = match st
        .manager
        .check_published(&name, &manifest, component.clone(), &files)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            let status = match &e {
                PublishError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            let detail = format!("publish refused: {e}");
            audit(
                &st,
                &caller,
                rid,
                &name,
                "",
                "publish",
                false,
                detail.clone(),
            );
            return Err(ApiError::new(status, detail));
        }
    };
    let version = plugin.version().to_string();
    let sha256 = plugin.sha256.clone();

    // A version number names one set of bytes, whichever source has it.
    if let Some(live) = st.manager.registry().slot(&name).and_then(|s| s.live()) {
        if live.version() == version && live.sha256 != sha256 && st.manager.dir_of(&name).is_some()
        {
            let detail = format!(
                "{name}@{version} is live on this host from the plugins directory with sha256 {}; these bytes have sha256 {sha256}: publish them under a new version",
                live.sha256
            );
            audit(
                &st,
                &caller,
                rid,
                &name,
                &version,
                "publish",
                false,
                detail.clone(),
            );
            return Err(ApiError::new(StatusCode::CONFLICT, detail));
        }
    }

    // What it is compared with: the released version, else the live local one.
    let surface = Surface::of(&plugin.manifest, &plugin.imports);
    let mut baseline: Option<(Value, Surface)> = None;
    if let Some(state) = st.db.get_release_state(&name).await? {
        if let Some(rec) = st.db.get_release_version(&name, &state.version).await? {
            if let Some(s) = stored_surface(&rec) {
                baseline = Some((
                    against_of("released", Some(&rec.version), Some(&rec.sha256)),
                    s,
                ));
            }
        }
    }
    if baseline.is_none() {
        if let Some(live) = st.manager.registry().slot(&name).and_then(|s| s.live()) {
            baseline = Some((
                against_of("local", Some(live.version()), Some(&live.sha256)),
                Surface::of(&live.manifest, &live.imports),
            ));
        }
    }
    let (against, changes, changed) = match &baseline {
        Some((against, old)) => {
            let d = SurfaceDiff::between(old, &surface);
            let changed = !d.is_empty();
            (against.clone(), d, changed)
        }
        None => (
            against_of("none", None, None),
            SurfaceDiff::between(&Surface::default(), &surface),
            surface.reaches_out(),
        ),
    };
    let status = match release.require_approval {
        RequireApproval::Always => ReleaseStatus::AwaitingApproval,
        RequireApproval::Never => ReleaseStatus::Approved,
        RequireApproval::Changes if changed => ReleaseStatus::AwaitingApproval,
        RequireApproval::Changes => ReleaseStatus::Approved,
    };
    let text = changes.text();
    let doc = json!({
        "against": against,
        "changed": changed,
        "changes": changes,
        "text": text,
        "surface": surface,
    });

    let stored_sha = st.db.store_artifact(&component).await?;
    debug_assert_eq!(stored_sha, sha256);
    let mut file_shas = std::collections::BTreeMap::new();
    for (file, bytes) in &files {
        file_shas.insert(file.clone(), st.db.store_artifact(bytes).await?);
    }
    let inserted = st
        .db
        .insert_release_version(&NewReleaseVersion {
            name: name.clone(),
            version: version.clone(),
            sha256: sha256.clone(),
            manifest: manifest_text,
            status,
            diff: Some(doc.to_string()),
            published_by: Some(caller.key_id.clone()),
            files: file_shas,
        })
        .await;
    match inserted {
        Ok(InsertedVersion::Inserted) => {
            audit(
                &st,
                &caller,
                rid,
                &name,
                &version,
                "publish",
                true,
                format!("published sha256 {sha256}: {}", status.as_str()),
            );
            tracing::info!(plugin = %name, %version, %sha256, status = status.as_str(), key = %caller.key_id, "plugin version published");
            let rec = st.db.get_release_version(&name, &version).await?;
            let mut body = version_body(rec.as_ref().ok_or_else(|| {
                ApiError::internal(format!("{name}@{version} vanished after it was stored"))
            })?);
            body["diff"] = doc_view(&doc);
            Ok((StatusCode::CREATED, Json(body)))
        }
        Ok(InsertedVersion::Existing(rec)) => Ok((StatusCode::OK, Json(version_body(&rec)))),
        Err(e) if e.is_conflict() => {
            let detail = e.to_string();
            audit(
                &st,
                &caller,
                rid,
                &name,
                &version,
                "publish",
                false,
                detail.clone(),
            );
            Err(ApiError::new(StatusCode::CONFLICT, detail))
        }
        Err(e) => Err(e.into()),
    }
}

/// `{"note": "…"}`: why, for the record.
#[derive(Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReviewRequest {
    pub note: Option<String>,
}

/// An admin's review request, as both `approve` and `reject` take it: the version named
/// by the path, the caller, the request id and the optional `{"note": "…"}` body (an
/// empty body or JSON `null` is no note).
pub struct Review {
    st: AppState,
    caller: Caller,
    request_id: Option<RequestId>,
    name: String,
    version: String,
    note: Option<String>,
}

impl axum::extract::FromRequest<AppState> for Review {
    type Rejection = ApiError;

    async fn from_request(req: axum::extract::Request, st: &AppState) -> ApiResult<Self> {
        use axum::extract::FromRequestParts;
        let (mut parts, body) = req.into_parts();
        let Path((name, version)) = Path::<(String, String)>::from_request_parts(&mut parts, st)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let caller =
            parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
                ApiError::internal("review route without an authenticated caller")
            })?;
        let request_id = parts.extensions.get::<RequestId>().cloned();
        let req = axum::extract::Request::from_parts(parts, body);
        let body = axum::body::Bytes::from_request(req, st)
            .await
            .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
        let note = if body.iter().all(u8::is_ascii_whitespace) || body.trim_ascii() == b"null" {
            None
        } else {
            crate::server::json::parse::<ReviewRequest>(&body, st.config.server.json_depth_limit)?
                .note
        };
        Ok(Review::new(
            st.clone(),
            caller,
            request_id,
            name,
            version,
            note,
        ))
    }
}

impl Review {
    /// A review by `caller`: from this route's request, or from elsewhere (the console's
    /// form).
    pub(crate) fn new(
        st: AppState,
        caller: Caller,
        request_id: Option<RequestId>,
        name: String,
        version: String,
        note: Option<String>,
    ) -> Self {
        Review {
            st,
            caller,
            request_id,
            name,
            version,
            note,
        }
    }

    /// Records the decision (`approved` or `rejected`), audits it with the caller's key,
    /// and on approval pins the MCP tools the grant covers.
    async fn decide(self, status: ReleaseStatus) -> ApiResult<Json<Value>> {
        let Review {
            st,
            caller,
            request_id,
            name,
            version,
            note,
        } = self;
        let op = if status == ReleaseStatus::Approved {
            "approve"
        } else {
            "reject"
        };
        let rid = request_id.as_ref();
        let rec = match st
            .db
            .set_release_review(
                &name,
                &version,
                status,
                Some(&caller.key_id),
                note.as_deref(),
            )
            .await
        {
            Ok(rec) => rec,
            Err(e) => {
                if e.is_conflict() {
                    audit(&st, &caller, rid, &name, &version, op, false, e.to_string());
                }
                return Err(e.into());
            }
        };
        let note = note.map(|n| format!(": {n}")).unwrap_or_default();
        audit(
            &st,
            &caller,
            rid,
            &name,
            &version,
            op,
            true,
            format!("{} sha256 {}{note}", rec.status, rec.sha256),
        );
        tracing::info!(plugin = %name, %version, status = %rec.status, key = %caller.key_id, "published plugin version reviewed");
        let mut out = version_body(&rec);
        if status == ReleaseStatus::Approved {
            pin_granted_tools(&st, &caller, &name, &mut out).await;
        }
        Ok(Json(out))
    }
}

/// On approval, the definitions of the MCP tools the operator's grant covers are pinned
/// by hash (`mcp::pins`): a later change of one is refused until an admin approves
/// again. The response lists them (`mcp_pins`), or why they could not be pinned now
/// (`mcp_pins_error`: the approval stands; pin with `POST …/mcp-pins` once the server is up).
async fn pin_granted_tools(st: &AppState, caller: &Caller, name: &str, out: &mut Value) {
    let config = st.manager.config();
    let Some(scope) = config
        .grant(name)
        .filter(|g| {
            g.capabilities
                .contains(&crate::capabilities::Capability::Mcp)
        })
        .map(|g| g.mcp.clone())
    else {
        return;
    };
    match st
        .mcp_pins
        .pin_plugin(name, &scope, &st.mcp, Some(&caller.key_id))
        .await
    {
        Ok(pins) => {
            out["mcp_pins"] = serde_json::json!(pins
                .iter()
                .map(|p| format!("{}/{}", p.server, p.tool))
                .collect::<Vec<_>>())
        }
        Err(e) => out["mcp_pins_error"] = serde_json::json!(e.to_string()),
    }
}

/// Approve a published version (admin): it may be released. Body optional:
/// `{"note": "…"}`. A rejected version cannot be approved (409): publish a new version.
#[utoipa::path(post, path = "/api/v1/plugins/{name}/versions/{version}/approve", tag = "releases",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body(content = Option<ReviewRequest>),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem),
              (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn approve(review: Review) -> ApiResult<Json<Value>> {
    review.decide(ReleaseStatus::Approved).await
}

/// Reject a published version (admin): it is never released. Body optional:
/// `{"note": "…"}`. The released version cannot be rejected (409).
#[utoipa::path(post, path = "/api/v1/plugins/{name}/versions/{version}/reject", tag = "releases",
    params(("name" = String, Path), ("version" = String, Path)),
    request_body(content = Option<ReviewRequest>),
    responses((status = 200, body = Object), (status = 404, body = crate::server::error::Problem),
              (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn reject(review: Review) -> ApiResult<Json<Value>> {
    review.decide(ReleaseStatus::Rejected).await
}
