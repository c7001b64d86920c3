//! What a relying party needs to verify tokens on its own: the public keys
//! (`/.well-known/jwks.json`, RFC 7517) and the discovery document
//! (`/.well-known/openid-configuration`, in the shape of OpenID Connect
//! Discovery 1.0 section 3 and RFC 8414, which generic JWT libraries read).
//!
//! The discovery document's absolute URLs start from `issuer` when it is
//! an `http(s)://` URL (the deployment's public address, fixed by the
//! operator; OpenID Connect wants the issuer to be that URL); otherwise
//! from the scheme and host the client used, where `X-Forwarded-Proto` and
//! `X-Forwarded-Host` count only from `trusted_proxies` (a host that is no
//! host name is a 400).

use serde_json::json;

use super::AuthService;
use crate::error::ApiError;
use crate::http::{Request, Response};

/// How long clients and caches may keep the JWKS, seconds. Short beside a
/// token's lifetime, so a rotation's new key reaches verifiers before the
/// old one leaves the set (drop the previous key no sooner than this plus
/// `access_token_ttl` after the rotation).
pub const JWKS_MAX_AGE: u64 = 300;
/// How long the discovery document may be kept, seconds.
pub const DISCOVERY_MAX_AGE: u64 = 3600;

/// `GET /.well-known/jwks.json`: the keys that verify access tokens;
/// `{"keys": []}` under HS256, whose key is a secret.
pub fn jwks(service: &AuthService) -> Result<Response, ApiError> {
    let keys = service.keys()?.jwks();
    Ok(Response::json(200, &keys)
        .header("cache-control", &format!("public, max-age={JWKS_MAX_AGE}")))
}

/// `GET /.well-known/openid-configuration`.
pub fn openid_configuration(
    service: &AuthService,
    request: &Request,
) -> Result<Response, ApiError> {
    let issuer = &service.config.issuer;
    let base = if issuer.starts_with("https://") || issuer.starts_with("http://") {
        issuer.trim_end_matches('/').to_owned()
    } else {
        // Spin passes on whatever `Host` a client sent; one that is no host
        // name (`a@b`) cannot be the base of the document's links.
        request
            .origin(&service.settings.trusted_proxies)
            .ok_or(ApiError::BadRequest(
                "the Host header (or X-Forwarded-Host) is not a host name, so the links of the \
                 discovery document cannot be made from it",
            ))?
    };
    let document = json!({
        "issuer": issuer,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "token_endpoint": format!("{base}/auth/login"),
        "grant_types_supported": ["password"],
        "response_types_supported": ["token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [service.keys()?.algorithm()],
        "token_endpoint_auth_methods_supported": ["none"],
    });
    Ok(Response::json(200, &document).header(
        "cache-control",
        &format!("public, max-age={DISCOVERY_MAX_AGE}"),
    ))
}
