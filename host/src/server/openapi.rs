//! The OpenAPI document (built from the handlers' annotations) and the interactive docs.

use axum::Router;
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;
use utoipa_scalar::{Scalar, Servable};

#[derive(OpenApi)]
#[openapi(
    info(title = "Strata", description = "Plugin host for AI-assisted CRM work: leads, scores, plugins, audit."),
    modifiers(&Security)
)]
struct Base;

struct Security;

impl utoipa::Modify for Security {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = doc.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "api_key",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        c.add_security_scheme(
            "api_key_header",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("x-api-key"))),
        );
    }
}

pub fn base() -> utoipa::openapi::OpenApi {
    Base::openapi()
}

/// Makes the document say what the server answers on errors: every error body is
/// `application/problem+json` (utoipa writes `application/json` for `body = Problem`),
/// and every operation may answer any other error status (a `default` problem response:
/// 400 for a query axum cannot parse, 401/403 for keys, 413, 415, 429, 503 …).
pub fn problem_responses(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    const PROBLEM: &str = "application/problem+json";
    let problem_ref = "#/components/schemas/Problem";
    let mut uses_problem = false;
    for item in doc.paths.paths.values_mut() {
        for op in [
            item.get.as_mut(),
            item.put.as_mut(),
            item.post.as_mut(),
            item.delete.as_mut(),
            item.patch.as_mut(),
        ]
        .into_iter()
        .flatten()
        {
            for (status, resp) in op.responses.responses.iter_mut() {
                let utoipa::openapi::RefOr::T(r) = resp else {
                    continue;
                };
                let is_error = status.starts_with('4') || status.starts_with('5');
                if let Some(c) = r.content.shift_remove("application/json") {
                    let key = if is_error {
                        PROBLEM
                    } else {
                        "application/json"
                    };
                    r.content.insert(key.to_string(), c);
                }
            }
            op.responses
                .responses
                .entry("default".into())
                .or_insert_with(|| {
                    uses_problem = true;
                    ResponseBuilder::new()
                        .description("An error, as RFC 9457 problem details")
                        .content(
                            PROBLEM,
                            ContentBuilder::new()
                                .schema(Some(Ref::new(problem_ref)))
                                .build(),
                        )
                        .build()
                        .into()
                });
        }
    }
    if uses_problem {
        let c = doc.components.get_or_insert_with(Default::default);
        if !c.schemas.contains_key("Problem") {
            use utoipa::PartialSchema;
            c.schemas
                .insert("Problem".into(), crate::server::error::Problem::schema());
        }
    }
}

/// `GET /api/openapi.json` and `GET /api/docs`.
pub fn docs_router<S: Clone + Send + Sync + 'static>(
    doc: Arc<utoipa::openapi::OpenApi>,
) -> Router<S> {
    let json = doc.clone();
    Router::new()
        .route(
            "/api/openapi.json",
            axum::routing::get(move || async move { axum::Json((*json).clone()) }),
        )
        .merge(Scalar::with_url("/api/docs", (*doc).clone()))
}
