//! Publishing through the API in tests: the one builder of the `multipart/form-data` body
//! of `POST /api/v1/plugins/{name}/versions` (manifest, component, a layer's schema files)
//! and the request itself.

use reqwest::StatusCode;
use serde_json::Value;
use std::path::Path;

/// The publish body: `manifest` text, `component` bytes and each file under its
/// relative path (`schemas/output.json`).
pub fn form(
    manifest: &str,
    wasm: Vec<u8>,
    files: &[(String, Vec<u8>)],
) -> reqwest::multipart::Form {
    // Part names as they are (a schema file's has a `/`), as `strata plugin publish` sends.
    let mut form = reqwest::multipart::Form::new()
        .percent_encode_noop()
        .part(
            "manifest",
            reqwest::multipart::Part::text(manifest.to_string()).file_name("plugin.toml"),
        )
        .part(
            "component",
            reqwest::multipart::Part::bytes(wasm).file_name("plugin.wasm"),
        );
    for (path, bytes) in files {
        form = form.part(path.clone(), reqwest::multipart::Part::bytes(bytes.clone()));
    }
    form
}

/// The schema files a plugin directory's manifest names, as (relative path, bytes).
pub fn schema_files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let text = std::fs::read(dir.join("plugin.toml")).unwrap();
    let manifest = strata::manifest::Manifest::from_bytes(&text, &dir.join("plugin.toml")).unwrap();
    strata::plugins::release::schema_files(&manifest.schemas)
        .into_iter()
        .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
        .collect()
}

/// The publish body of a built plugin directory as it is: plugin.toml, plugin.wasm and
/// its schema files.
pub fn dir_form(dir: &Path) -> reqwest::multipart::Form {
    form(
        &std::fs::read_to_string(dir.join("plugin.toml")).unwrap(),
        std::fs::read(dir.join("plugin.wasm")).unwrap(),
        &schema_files(dir),
    )
}

/// POSTs `form` as a publish of `name` to the server at `base` with `key`: the status,
/// the content type and the JSON body.
pub async fn publish(
    base: &str,
    key: &str,
    name: &str,
    form: reqwest::multipart::Form,
) -> (StatusCode, String, Value) {
    let res = reqwest::Client::new()
        .post(format!("{base}/api/v1/plugins/{name}/versions"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .await
        .unwrap();
    answer(res).await
}

/// An answer's status, content type and JSON body (null when it has none).
pub async fn answer(res: reqwest::Response) -> (StatusCode, String, Value) {
    let status = res.status();
    let ct = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    (status, ct, res.json().await.unwrap_or(Value::Null))
}
