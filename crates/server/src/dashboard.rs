//! The web dashboard: the static files of `dashboard/` (HTML, CSS, ES modules, the vendored
//! uPlot and `queries.json`, the PromQL shared with the Grafana dashboard), embedded into the
//! binary at build time so `cargo build` needs no Node step and the binary serves it from any
//! directory.
//!
//! [`routes`] answers `GET /` with `index.html` and `GET /dashboard/{*path}` with the file at
//! `path`, with its content type, an `ETag` (revalidation answers 304) and a cache policy:
//! vendored files may be cached for a day, everything else is revalidated on every load so a new
//! binary's dashboard shows at once. Unknown paths are 404.

use crate::AppState;
use axum::Router;
use axum::body::Body;
use axum::extract::Path;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use include_dir::{Dir, include_dir};

/// The files of `dashboard/` (build.rs reruns the build when they change).
static DASHBOARD: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../../dashboard");

/// The dashboard's routes: `GET /` and `GET /dashboard/{*path}`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/", get(index)).route("/dashboard", get(index)).route("/dashboard/{*path}", get(asset))
}

/// The embedded file at `path` (relative to `dashboard/`), if any.
pub fn file(path: &str) -> Option<&'static [u8]> {
    if path.split('/').any(|part| part.is_empty() || part == "." || part == "..") {
        return None;
    }
    DASHBOARD.get_file(path).map(|f| f.contents())
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    serve(&path, &headers)
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(contents) = file(path) else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "application/json")],
            serde_json::json!({ "error": format!("no such dashboard file: {path}") }).to_string(),
        )
            .into_response();
    };
    let etag = format!("\"{:016x}\"", fnv1a(contents));
    let cache = if path.starts_with("vendor/") { "public, max-age=86400" } else { "no-cache" };
    let fresh = request
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|tag| tag.trim() == etag || tag.trim() == "*"));
    let mut response =
        if fresh { StatusCode::NOT_MODIFIED.into_response() } else { Response::new(Body::from(contents)) };
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type(path)));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, v);
    }
    response
}

/// The content type of a dashboard file, by its extension.
pub fn content_type(path: &str) -> &'static str {
    let ext = path.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase()).unwrap_or_default();
    match ext.as_str() {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        _ => "text/plain; charset=utf-8",
    }
}

/// FNV-1a, 64 bits: a stable fingerprint of a file for its `ETag`.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embeds_the_dashboard() {
        assert!(file("index.html").is_some());
        assert!(file("queries.json").is_some());
        assert!(file("vendor/uplot/uPlot.iife.min.js").is_some());
        assert!(file("../Cargo.toml").is_none());
        assert!(file("nope.js").is_none());
    }

    #[test]
    fn content_types() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("vendor/uplot/uPlot.min.css"), "text/css; charset=utf-8");
        assert_eq!(content_type("queries.json"), "application/json");
        assert_eq!(content_type("vendor/uplot/LICENSE"), "text/plain; charset=utf-8");
    }
}
