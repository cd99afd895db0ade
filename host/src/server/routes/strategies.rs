//! Champion and challenger of a strategy (a scorer plugin's name): attach a challenger
//! in shadow or canary mode, read the comparison, promote or detach it. See
//! [`crate::challenger`].

use crate::audit::AuditRecord;
use crate::challenger::Comparison;
use crate::db::challengers::{ChallengerMode, ChallengerRecord, NewChallenger};
use crate::domain::now_ms;
use crate::manifest::PluginKind;
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::json::ApiJson;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

/// A challenger to attach.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttachRequest {
    /// `name@version` of a scorer this replica has (live or kept, e.g. an earlier or a
    /// newer version of the champion, or another scorer), or `name` for its live version.
    #[schema(min_length = 1, max_length = 130, pattern = r"^[^@]+(@[^@]+)?$")]
    pub challenger: String,
    /// `shadow` (default) or `canary`.
    #[serde(default = "shadow")]
    pub mode: ChallengerMode,
    /// Shadow: share of calls scored again (default 1.0). Canary: share of leads served
    /// (default 0.1). More than 0, at most 1.
    #[schema(exclusive_minimum = 0.0, maximum = 1.0)]
    pub share: Option<f64>,
    /// Canary guard rail: error + timeout rate bound (default 0.05).
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub max_error_rate: Option<f64>,
    /// Canary guard rail: PSI bound of the challenger's scores against the champion's
    /// (default 0.25).
    #[schema(exclusive_minimum = 0.0, maximum = 100.0)]
    pub max_psi: Option<f64>,
    /// Results the guard rails judge (default 500). A whole number (`500.0` too).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    pub guard_window: Option<f64>,
    /// Results a side needs before a guard rail judges (default 50).
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100000)]
    pub guard_min_samples: Option<f64>,
}

fn shadow() -> ChallengerMode {
    ChallengerMode::Shadow
}

/// A strategy's attachment.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ChallengerView {
    #[serde(flatten)]
    pub record: ChallengerRecord,
    /// Why this replica cannot run the challenger now, if it cannot.
    pub problem: Option<String>,
}

fn view(st: &AppState, record: ChallengerRecord) -> ChallengerView {
    let problem = st.challengers.resolve(&record).err();
    ChallengerView { record, problem }
}

fn in_range(name: &str, v: f64, low_exclusive: f64, high: f64) -> Result<f64, ApiError> {
    if v.is_finite() && v > low_exclusive && v <= high {
        Ok(v)
    } else {
        Err(ApiError::unprocessable(format!(
            "{name} must be more than {low_exclusive} and at most {high}, not {v}"
        )))
    }
}

/// A whole number of results, 1–100000 (JSON may write it `50` or `50.0`).
fn count(name: &str, v: f64) -> Result<i64, ApiError> {
    if v.fract() != 0.0 {
        return Err(ApiError::unprocessable(format!(
            "{name} must be a whole number, not {v}"
        )));
    }
    Ok(in_range(name, v, 0.0, 100_000.0)? as i64)
}

/// The scorer `name` that is a strategy here.
fn strategy_scorer(st: &AppState, name: &str) -> Result<(), ApiError> {
    let p = st.manager.registry().get(name)?;
    if p.kind() != PluginKind::Scorer {
        return Err(ApiError::unprocessable(format!(
            "{} is a {}; only scorer strategies take a challenger",
            p.id(),
            p.kind().as_str()
        )));
    }
    Ok(())
}

/// Attach (or replace) the challenger of a strategy. The challenger must be a scorer this
/// replica has now, and must differ from the champion's live version.
#[utoipa::path(put, path = "/api/v1/strategies/{name}/challenger", tag = "strategies",
    params(("name" = String, Path, description = "The champion scorer's plugin name")),
    request_body = AttachRequest,
    responses((status = 200, body = ChallengerView),
        (status = 404, body = crate::server::error::Problem, description = "No such strategy, or the challenger named is not loaded or kept here"),
        (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn attach(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<AttachRequest>,
) -> ApiResult<Json<ChallengerView>> {
    strategy_scorer(&st, &name)?;
    let (cname, cversion) = match req.challenger.split_once('@') {
        Some((n, v)) => (n.to_string(), Some(v.to_string())),
        None => (req.challenger.clone(), None),
    };
    if cname.is_empty() || cversion.as_deref() == Some("") {
        return Err(ApiError::unprocessable(
            "challenger must be name@version or name",
        ));
    }
    let challenger =
        crate::challenger::resolve_in(st.manager.registry(), &cname, cversion.as_deref())
            // The challenger named is a resource this replica does not have: 404.
            .map_err(ApiError::not_found)?;
    if challenger.kind() != PluginKind::Scorer {
        return Err(ApiError::unprocessable(format!(
            "challenger {} is a {}, not a scorer",
            challenger.id(),
            challenger.kind().as_str()
        )));
    }
    let champion = st.manager.registry().get(&name)?;
    if champion.sha256 == challenger.sha256 && champion.version() == challenger.version() {
        return Err(ApiError::unprocessable(format!(
            "challenger {} is the champion's live version",
            challenger.id()
        )));
    }
    let share = in_range(
        "share",
        req.share.unwrap_or(match req.mode {
            ChallengerMode::Shadow => 1.0,
            ChallengerMode::Canary => 0.1,
        }),
        0.0,
        1.0,
    )?;
    let record = NewChallenger {
        strategy: name.clone(),
        challenger: cname,
        challenger_version: Some(challenger.version().to_string()),
        mode: req.mode,
        share,
        max_error_rate: match req.max_error_rate {
            Some(v) if (0.0..=1.0).contains(&v) => v,
            Some(v) => {
                return Err(ApiError::unprocessable(format!(
                    "max_error_rate must be within 0-1, not {v}"
                )))
            }
            None => 0.05,
        },
        max_psi: in_range("max_psi", req.max_psi.unwrap_or(0.25), 0.0, 100.0)?,
        guard_window: count("guard_window", req.guard_window.unwrap_or(500.0))?,
        guard_min_samples: count("guard_min_samples", req.guard_min_samples.unwrap_or(50.0))?,
        created_by: Some(caller.key_id.clone()),
    };
    let stored = st.db.attach_challenger(&record).await?;
    st.challengers.refresh().await?;
    audit(
        &st,
        &stored,
        "attach",
        &caller,
        format!("{} at share {share}", record.mode.as_str()),
    );
    Ok(Json(view(&st, stored)))
}

fn audit(st: &AppState, r: &ChallengerRecord, operation: &str, caller: &Caller, detail: String) {
    st.audit.record(AuditRecord {
        at: now_ms(),
        plugin: r.challenger.clone(),
        plugin_version: r.challenger_version.clone().unwrap_or_default(),
        capability: "challenger".into(),
        operation: operation.into(),
        target: Some(format!("strategy:{}", r.strategy)),
        allowed: true,
        detail: Some(format!(
            "{detail} (generation {}) by key {}",
            r.generation, caller.key_id
        )),
        count: 1,
        ..AuditRecord::default()
    });
}

async fn attachment(st: &AppState, name: &str) -> Result<ChallengerRecord, ApiError> {
    st.db
        .get_challenger(name)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("strategy {name:?} has no challenger")))
}

/// The challenger of a strategy, and whether this replica can run it.
#[utoipa::path(get, path = "/api/v1/strategies/{name}/challenger", tag = "strategies",
    params(("name" = String, Path)),
    responses((status = 200, body = ChallengerView), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn get_challenger(
    State(st): State<AppState>,
    Path(name): Path<String>,
) -> ApiResult<Json<ChallengerView>> {
    Ok(Json(view(&st, attachment(&st, &name).await?)))
}

/// Detach the challenger: the champion serves everything; results stay for the comparison.
#[utoipa::path(delete, path = "/api/v1/strategies/{name}/challenger", tag = "strategies",
    params(("name" = String, Path)),
    responses((status = 204), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn detach(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<StatusCode> {
    let r = attachment(&st, &name).await?;
    st.db
        .detach_challenger(
            &name,
            "detached",
            "detached by an operator",
            Some(&caller.key_id),
        )
        .await?;
    st.challengers.refresh().await?;
    audit(&st, &r, "detach", &caller, "detached".into());
    Ok(StatusCode::NO_CONTENT)
}

/// What a promotion did.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Promoted {
    /// `plugin@version` now serving the strategy.
    pub live: String,
    /// `release`: released to every replica (the version was published and approved);
    /// `pin`: made live and pinned on this replica (a version of its plugins directory).
    pub through: String,
}

/// Promote the challenger: it becomes the strategy's live version — through the release
/// flow when the version was published (every replica), else by pinning the kept version
/// on this replica — and is detached. Only another version of the champion's own plugin
/// can be promoted; a different scorer is adopted by naming it as the strategy.
#[utoipa::path(post, path = "/api/v1/strategies/{name}/challenger/promote", tag = "strategies",
    params(("name" = String, Path)),
    responses((status = 200, body = Promoted), (status = 404, body = crate::server::error::Problem),
        (status = 409, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn promote(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Promoted>> {
    let r = attachment(&st, &name).await?;
    if r.challenger != name {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "challenger {} is another plugin than {name}: adopt it by naming it as the strategy (plugins.default_scorer or the request's `strategy`), then detach",
                r.challenger
            ),
        ));
    }
    let version = r.challenger_version.clone().unwrap_or_default();
    let published = st.db.get_release_version(&name, &version).await?.is_some();
    let through = if published {
        let _released = super::release_state::set_release(
            State(st.clone()),
            Path(name.clone()),
            Extension(caller.clone()),
            ApiJson(super::release_state::ReleaseRequest {
                version: version.clone(),
            }),
        )
        .await?;
        "release"
    } else {
        st.manager.pin(&name, Some(&version)).await?;
        "pin"
    };
    st.db
        .detach_challenger(
            &name,
            "promoted",
            &format!("{name}@{version} promoted through {through}"),
            Some(&caller.key_id),
        )
        .await?;
    st.challengers.refresh().await?;
    audit(
        &st,
        &r,
        "promote",
        &caller,
        format!("promoted through {through}"),
    );
    Ok(Json(Promoted {
        live: format!("{name}@{version}"),
        through: through.into(),
    }))
}

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ComparisonQuery {
    /// Window start, milliseconds since the epoch (default: 7 days ago).
    pub since: Option<i64>,
}

/// The comparison of the champion and its challenger over a window: agreement, drift,
/// challenger failures, latency, and AUC / lift@10% of both on the same leads whose
/// outcome is known (`[challenger]` positive and negative statuses, human overrides).
#[utoipa::path(get, path = "/api/v1/strategies/{name}/comparison", tag = "strategies",
    params(("name" = String, Path), ComparisonQuery),
    responses((status = 200, body = Comparison)),
    security(("api_key" = [])))]
pub async fn comparison(
    State(st): State<AppState>,
    Path(name): Path<String>,
    Query(q): Query<ComparisonQuery>,
) -> ApiResult<Json<Comparison>> {
    st.challengers.flush().await;
    let since = q.since.unwrap_or_else(|| now_ms() - 7 * 86_400_000);
    Ok(Json(
        crate::challenger::report::compare(&st.db, st.challengers.settings(), &name, since).await?,
    ))
}
