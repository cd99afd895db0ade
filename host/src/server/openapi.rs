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
