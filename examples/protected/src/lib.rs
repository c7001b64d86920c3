//! A route of another Spin app, protected by spin-auth: `GET /hello`
//! answers the caller's user id and roles when the Bearer token verifies
//! against the service's JWKS, and 401 (RFC 6750) otherwise.

use spin_auth_verifier::Verifier;
use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::{http_component, variables};

#[http_component]
async fn handle(request: Request) -> anyhow::Result<impl IntoResponse> {
    let verifier = Verifier::new(variables::get("auth_jwks_url")?)
        .with_issuer(variables::get("auth_issuer")?)
        .with_audience(variables::get("auth_audience")?);
    let authorization = request
        .header("authorization")
        .and_then(|value| value.as_str());
    Ok(match verifier.verify_authorization(authorization).await {
        Ok(claims) => {
            let body = serde_json::json!({
                "hello": claims.subject,
                "roles": claims.roles,
            });
            Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(body.to_string())
                .build()
        }
        Err(error) => {
            // The cause of a 503 goes to the log, not to the client.
            eprintln!("protected: {error}");
            let mut response = Response::builder();
            response
                .status(error.status())
                .header("content-type", "application/problem+json");
            if error.status() == 401 {
                response.header("www-authenticate", error.www_authenticate());
            }
            let detail = match error.status() {
                401 => error.to_string(),
                _ => "the token cannot be checked right now".to_owned(),
            };
            response
                .body(serde_json::json!({"status": error.status(), "detail": detail}).to_string())
                .build()
        }
    })
}
