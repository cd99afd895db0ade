//! The OpenAPI document (built from the handlers' annotations) and the interactive docs.

use axum::Router;
use std::sync::Arc;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::OpenApi;

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

/// Swagger UI (npm `swagger-ui-dist`, see `host/assets/swagger-ui/README.md`), embedded.
const SWAGGER_JS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui-bundle.js");
const SWAGGER_CSS: &[u8] = include_bytes!("../../assets/swagger-ui/swagger-ui.css");

/// The docs page: every asset from this server, no inline script (so a strict
/// `Content-Security-Policy` holds), no validator call.
const DOCS_HTML: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Strata API</title>
<link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/api/docs/swagger-ui-bundle.js"></script>
<script src="/api/docs/init.js"></script>
</body>
</html>
"#;

const DOCS_INIT: &str = r##"window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  validatorUrl: null,
  tryItOutEnabled: false
});
"##;

/// Only this server's own assets, scripts included; nothing inline but styles.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'";

fn asset(
    content_type: &'static str,
    body: &'static [u8],
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    move || {
        use axum::http::header;
        use axum::response::IntoResponse;
        std::future::ready(
            (
                [
                    (header::CONTENT_TYPE, content_type),
                    (header::CACHE_CONTROL, "public, max-age=3600"),
                    (header::CONTENT_SECURITY_POLICY, DOCS_CSP),
                    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
                ],
                body,
            )
                .into_response(),
        )
    }
}

/// `GET /api/openapi.json` and `GET /api/docs` (Swagger UI with its assets under
/// `/api/docs/`, all embedded in the binary: the page works offline).
pub fn docs_router<S: Clone + Send + Sync + 'static>(
    doc: Arc<utoipa::openapi::OpenApi>,
) -> Router<S> {
    use axum::routing::get;
    let json = doc.clone();
    Router::new()
        .route(
            "/api/openapi.json",
            get(move || async move { axum::Json((*json).clone()) }),
        )
        .route(
            "/api/docs",
            get(asset("text/html; charset=utf-8", DOCS_HTML.as_bytes())),
        )
        .route(
            "/api/docs/init.js",
            get(asset(
                "text/javascript; charset=utf-8",
                DOCS_INIT.as_bytes(),
            )),
        )
        .route(
            "/api/docs/swagger-ui-bundle.js",
            get(asset("text/javascript; charset=utf-8", SWAGGER_JS)),
        )
        .route(
            "/api/docs/swagger-ui.css",
            get(asset("text/css; charset=utf-8", SWAGGER_CSS)),
        )
}
