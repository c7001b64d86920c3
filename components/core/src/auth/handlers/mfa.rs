//! The second factor's routes: each reads the request into a command,
//! calls its use case in [`crate::auth::second_factor`] and writes the answer.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::json;
use zeroize::Zeroizing;

use super::sign_in::signed_in_response;
use super::{AuthService, ClientInfo, current_password};
use crate::auth::second_factor::{self, Verify};
use crate::clock;
use crate::domain::User;
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::service::{authenticate, random_secret};
use crate::store::UserStore;

/// Settings key of the TOTP sealing key generated for the embedded setup.
const GENERATED_MFA_KEY_SETTING: &str = "generated_mfa_key";

impl AuthService {
    /// The key TOTP secrets are sealed under: `mfa_encryption_key`; on the
    /// embedded database without one, a key generated once and kept there
    /// (as the signing key is). With `database_url` set it must be given:
    /// enrolment is refused as misconfigured until it is.
    fn mfa_key(&self) -> Result<Zeroizing<Vec<u8>>, ApiError> {
        if let Some(key) = &self.settings.mfa_encryption_key {
            return Ok(key.clone());
        }
        if self.config.store.database_url.is_some() {
            return Err(ApiError::Misconfigured {
                variable: "mfa_encryption_key",
                reason: "is required for two-factor sign-in when database_url is set".to_owned(),
            });
        }
        let stored = self.generated_secret(
            GENERATED_MFA_KEY_SETTING,
            "mfa_encryption_key",
            random_secret,
        )?;
        URL_SAFE_NO_PAD
            .decode(stored.as_bytes())
            .map(Zeroizing::new)
            .map_err(|e| ApiError::Internal(anyhow::anyhow!("stored TOTP sealing key: {e}")))
    }

    /// The caller's account, from a live Bearer token.
    fn caller(&self, request: &Request) -> Result<User, ApiError> {
        let claims = authenticate(self, request)?;
        self.stores
            .database
            .user_by_id(&claims.user_id)?
            .ok_or(ApiError::InvalidToken("the account no longer exists"))
    }
}

/// `POST /auth/mfa/totp`: a new pending secret and its `otpauth://` URI.
pub fn enrol_totp(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let user = service.caller(request)?;
    let client = ClientInfo::of(service, request);
    let enrolment = second_factor::begin_enrolment(
        service.use_case_stores().sign_in(),
        &|| service.mfa_key(),
        &service.config.issuer,
        &user,
        client.client(),
        clock::now(),
    )?;
    let body = json!({
        "secret": enrolment.secret.as_str(),
        "otpauth_uri": enrolment.otpauth_uri.as_str(),
    });
    Ok(Response::json(200, &body))
}

/// `POST /auth/mfa/totp/confirm` `{code}`: turns TOTP on; the recovery
/// codes, shown this once.
pub fn confirm_totp(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let user = service.caller(request)?;
    let mut fields = request.json_object()?;
    let code = fields.string("code");
    fields.finish()?;
    let code = code.unwrap_or_default();
    let client = ClientInfo::of(service, request);
    let codes = second_factor::confirm_enrolment(
        service.use_case_stores().sign_in(),
        &service.settings,
        &|| service.mfa_key(),
        &user,
        &code,
        client.client(),
        clock::now(),
    )?;
    let codes: Vec<&str> = codes.iter().map(|code| code.as_str()).collect();
    Ok(Response::json(200, &json!({ "recovery_codes": codes })))
}

/// `DELETE /auth/mfa/totp` `{current_password}`: turns TOTP off.
pub fn disable_totp(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let user = service.caller(request)?;
    let current = current_password(request)?;
    let client = ClientInfo::of(service, request);
    second_factor::disable(
        service.use_case_stores().sign_in(),
        &service.settings,
        &user,
        &current,
        client.client(),
        clock::now(),
    )?;
    Ok(Response::new(204))
}

/// `POST /auth/mfa/verify` `{mfa_token, code}`: completes the login, with
/// the same answer as `POST /auth/login`.
pub fn verify_second_factor(
    service: &AuthService,
    request: &Request,
) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let mfa_token = fields.string("mfa_token");
    let code = fields.string("code");
    fields.finish()?;
    let (mfa_token, code) = (mfa_token.unwrap_or_default(), code.unwrap_or_default());
    let client = ClientInfo::of(service, request);
    let signed_in = second_factor::verify(
        service.use_case_stores().sign_in(),
        &service.settings,
        &service.policy(),
        &|| service.mfa_key(),
        Verify {
            mfa_token: &mfa_token,
            code: &code,
            client: client.client(),
        },
        clock::now(),
    )?;
    signed_in_response(service, &signed_in)
}
