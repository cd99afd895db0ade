//! Stored scores: list, per lead (latest + history), human override.

use crate::db::{OverrideTarget, ScoreFilter, ScoreSort};
use crate::domain::{Priority, ScoreOverride, StoredScore};
use crate::server::auth::Caller;
use crate::server::error::{ApiError, ApiResult};
use crate::server::json::ApiJson;
use crate::server::AppState;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::{Deserialize, Serialize};

#[derive(Deserialize, utoipa::IntoParams)]
pub struct ScoresQuery {
    pub priority: Option<Priority>,
    pub min_score: Option<f64>,
    /// Exact `plugin@version`.
    pub strategy: Option<String>,
    /// newest (default), oldest, highest, lowest.
    #[param(pattern = "^(newest|oldest|highest|lowest)$")]
    pub sort: Option<String>,
    pub limit: Option<i64>,
    pub offset: Option<i64>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ScorePage {
    pub items: Vec<StoredScore>,
    pub limit: i64,
    pub offset: i64,
}

/// Scores with filters, sorting and pagination.
#[utoipa::path(get, path = "/api/v1/leads/scores", tag = "scores", params(ScoresQuery),
    responses((status = 200, body = ScorePage), (status = 400, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn list(
    State(st): State<AppState>,
    Query(q): Query<ScoresQuery>,
) -> ApiResult<Json<ScorePage>> {
    let sort = match q.sort.as_deref().unwrap_or("newest") {
        "newest" => ScoreSort::NewestFirst,
        "oldest" => ScoreSort::OldestFirst,
        "highest" => ScoreSort::HighestScore,
        "lowest" => ScoreSort::LowestScore,
        other => {
            return Err(ApiError::bad_request(format!(
                "sort {other:?}: use newest, oldest, highest or lowest"
            )))
        }
    };
    if q.min_score.is_some_and(|m| !m.is_finite()) {
        return Err(ApiError::bad_request("min_score must be a number"));
    }
    let limit = q.limit.unwrap_or(50).clamp(1, 1000);
    let offset = q.offset.unwrap_or(0).max(0);
    let filter = ScoreFilter {
        lead_id: None,
        priority: q.priority,
        min_score: q.min_score,
        strategy: q.strategy,
        since_ms: None,
        sort,
        limit,
        offset,
    };
    Ok(Json(ScorePage {
        items: st.db.list_scores(&filter).await?,
        limit,
        offset,
    }))
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct LeadScores {
    pub lead_id: String,
    /// `null` for a stored lead never scored.
    pub latest: Option<StoredScore>,
    /// Newest first, the latest included.
    pub history: Vec<StoredScore>,
}

/// The latest score of a lead, with its history (a stored lead never scored has none:
/// `latest` is null; an unknown lead is 404).
#[utoipa::path(get, path = "/api/v1/leads/scores/{lead_id}", tag = "scores", params(("lead_id" = String, Path)),
    responses((status = 200, body = LeadScores), (status = 404, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn of_lead(
    State(st): State<AppState>,
    Path(lead_id): Path<String>,
) -> ApiResult<Json<LeadScores>> {
    let history = st.db.latest_scores(&lead_id, 100).await?;
    let latest = history.first().cloned();
    if latest.is_none() && st.db.get_lead(&lead_id).await?.is_none() {
        return Err(ApiError::not_found(format!("no lead {lead_id:?}")));
    }
    Ok(Json(LeadScores {
        lead_id,
        latest,
        history,
    }))
}

// Documented by `OverrideBody`, which adds the rule "a score or a priority (or both)".
/// A human override of a score.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OverrideRequest {
    /// Corrected score, 0–100.
    #[schema(minimum = 0.0, maximum = 100.0)]
    pub score: Option<f64>,
    pub priority: Option<Priority>,
    /// Why; required: not only blanks (space, tab, line breaks).
    #[schema(pattern = r"[^\t\n\x0b\x0c\r ]")]
    pub reason: String,
}

/// The OpenAPI schema of [`OverrideRequest`] (component `OverrideRequest`): its fields
/// (derived) and, what a derive cannot say, that a non-null `score` or a non-null
/// `priority` is required: `allOf: [fields, anyOf: [{score}, {priority}]]`.
pub struct OverrideBody;

impl utoipa::PartialSchema for OverrideBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ObjectBuilder, Type};
        use utoipa::openapi::Ref;
        let given = |field: &str, schema: utoipa::openapi::RefOr<_>| {
            ObjectBuilder::new()
                .property(field, schema)
                .required(field)
                .build()
        };
        let score = ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(0.0))
            .maximum(Some(100.0))
            .build();
        AllOfBuilder::new()
            .item(<OverrideRequest as utoipa::PartialSchema>::schema())
            .item::<utoipa::openapi::schema::Schema>(
                AnyOfBuilder::new()
                    .item(given("score", score.into()))
                    .item(given(
                        "priority",
                        Ref::from_schema_name(<Priority as utoipa::ToSchema>::name()).into(),
                    ))
                    .description(Some("A score, a priority or both (not null)."))
                    .build()
                    .into(),
            )
            .into()
    }
}

impl utoipa::ToSchema for OverrideBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "OverrideRequest".into()
    }

    fn schemas(
        schemas: &mut Vec<(
            String,
            utoipa::openapi::RefOr<utoipa::openapi::schema::Schema>,
        )>,
    ) {
        <OverrideRequest as utoipa::ToSchema>::schemas(schemas);
    }
}

/// Record a human override of the lead's latest score. Stored beside the machine score,
/// which is never changed, so it can serve as feedback.
#[utoipa::path(put, path = "/api/v1/leads/scores/{lead_id}/override", tag = "scores",
    params(("lead_id" = String, Path)), request_body = OverrideBody,
    responses((status = 200, body = StoredScore), (status = 404, body = crate::server::error::Problem),
              (status = 409, body = crate::server::error::Problem, description = "The lead is stored but has no score yet"),
              (status = 422, body = crate::server::error::Problem)),
    security(("api_key" = [])))]
pub async fn set_override(
    State(st): State<AppState>,
    Path(lead_id): Path<String>,
    Extension(caller): Extension<Caller>,
    ApiJson(req): ApiJson<OverrideRequest>,
) -> ApiResult<Json<StoredScore>> {
    if req
        .reason
        .chars()
        .all(|c| matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c'))
    {
        return Err(ApiError::unprocessable("reason is required"));
    }
    if req.score.is_none() && req.priority.is_none() {
        return Err(ApiError::unprocessable("give a score, a priority or both"));
    }
    if req.score.is_some_and(|s| !(0.0..=100.0).contains(&s)) {
        return Err(ApiError::unprocessable("score must be within 0-100"));
    }
    let ov = ScoreOverride {
        value: req.score,
        priority: req.priority,
        by: caller.name.clone(),
        reason: req.reason,
        at: crate::domain::now_ms(),
    };
    let id = match st
        .db
        .set_override(&OverrideTarget::LatestOfLead(lead_id.clone()), &ov)
        .await
    {
        Ok(id) => id,
        // A stored lead never scored: the lead is there, the score to override is not yet.
        Err(e) if e.is_not_found() && st.db.get_lead(&lead_id).await?.is_some() => {
            return Err(ApiError::new(
                axum::http::StatusCode::CONFLICT,
                format!("lead {lead_id:?} has no score yet to override; score or qualify it first"),
            ))
        }
        Err(e) => return Err(e.into()),
    };
    let stored = st
        .db
        .get_score(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no score for lead {lead_id:?}")))?;
    Ok(Json(stored))
}
