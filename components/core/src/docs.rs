//! The API's documentation: the OpenAPI 3.1 document, and Swagger UI to
//! read and try it. Swagger UI's files come from the `swagger-ui-redist`
//! crate and are served by the app itself, so the page works offline and
//! loads nothing from a CDN.

use crate::error::ApiError;
use crate::http::Response;

/// The OpenAPI document, as served at `/openapi.json`.
pub const OPENAPI_JSON: &str = include_str!("../docs/openapi.json");
const INDEX_HTML: &str = include_str!("../docs/index.html");
const INIT_JS: &str = include_str!("../docs/init.js");

/// Scripts only from this origin; Swagger UI sets inline styles and shows
/// inline images.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

/// `GET /openapi.json`.
pub fn openapi() -> Response {
    Response::new(200)
        .header("content-type", "application/json")
        .header("cache-control", "no-cache")
        .body(OPENAPI_JSON.as_bytes().to_vec())
}

/// `GET /docs` and `GET /docs/<file>`.
pub fn asset(path: &str) -> Result<Response, ApiError> {
    let name = path.trim_start_matches("/docs").trim_start_matches('/');
    let (content_type, body): (&str, &[u8]) = match name {
        "" | "index.html" => ("text/html; charset=utf-8", INDEX_HTML.as_bytes()),
        "init.js" => ("text/javascript; charset=utf-8", INIT_JS.as_bytes()),
        _ => {
            let file = swagger_ui_redist::SwaggerUi::static_files()
                .iter()
                .find(|(file, _)| file.file_name() == name)
                .ok_or(ApiError::NotFound("not_found"))?;
            (content_type_of(name), file.1)
        }
    };
    Ok(Response::new(200)
        .header("content-type", content_type)
        .header("content-security-policy", CONTENT_SECURITY_POLICY)
        .header("x-content-type-options", "nosniff")
        .header("cache-control", "public, max-age=3600")
        .body(body.to_vec()))
}

fn content_type_of(name: &str) -> &'static str {
    match name.rsplit('.').next() {
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("png") => "image/png",
        Some("html") => "text/html; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_document_is_openapi_3_1_json() {
        let document: serde_json::Value = serde_json::from_str(OPENAPI_JSON).unwrap();
        assert_eq!(document["openapi"], "3.1.0");
        assert_eq!(
            document["components"]["securitySchemes"]["oauth2"]["flows"]["password"]["tokenUrl"],
            "/auth/login"
        );
    }

    #[test]
    fn every_page_asset_is_served_with_its_type() {
        for (name, kind) in [
            ("/docs", "text/html"),
            ("/docs/init.js", "text/javascript"),
            ("/docs/swagger-ui-bundle.js", "text/javascript"),
            ("/docs/swagger-ui-standalone-preset.js", "text/javascript"),
            ("/docs/swagger-ui.css", "text/css"),
            ("/docs/index.css", "text/css"),
            ("/docs/favicon-32x32.png", "image/png"),
        ] {
            let response = asset(name).unwrap();
            assert!(
                response
                    .header_value("content-type")
                    .unwrap()
                    .starts_with(kind),
                "{name}"
            );
            assert!(!response.body.is_empty(), "{name}");
        }
        assert!(asset("/docs/../../etc/passwd").is_err());
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for text in [INDEX_HTML, INIT_JS] {
            assert!(!text.contains("http://") && !text.contains("https://"));
        }
    }
}
