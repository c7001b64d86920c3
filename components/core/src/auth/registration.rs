//! Registration: a new account, throttled per client address.

use super::throttling::throttle_address;
use super::{AuthService, Who, role_names};
use crate::api_types::UserBody;
use crate::clock;
use crate::domain::{Email, Password, roles_for};
use crate::error::{ApiError, FieldError};
use crate::http::{JsonFields, Request, Response};
use crate::password::hash_password;
use crate::store::{NewUser, UserStore};
use crate::throttle;

/// Longest first or last name.
const MAX_NAME: usize = 100;

/// A first or last name: at most 100 characters, no control characters
/// (the OpenAPI document states the same); stored trimmed, and an empty
/// name is no name.
fn optional_name(fields: &mut JsonFields, name: &str) -> Option<String> {
    let value = fields.optional_string(name)?;
    if value.chars().count() > MAX_NAME {
        fields.reject(FieldError::new(name, "must be at most 100 characters"));
        return None;
    }
    if value.chars().any(char::is_control) {
        fields.reject(FieldError::new(name, "must not contain control characters"));
        return None;
    }
    let value = value.trim();
    (!value.is_empty()).then(|| value.to_owned())
}

/// `POST /auth/register`: creates an account.
pub fn register(service: &AuthService, request: &Request) -> Result<Response, ApiError> {
    let mut fields = request.json_object()?;
    let email_input = fields.string("email");
    let password_input = fields.string("password");
    let first_name = optional_name(&mut fields, "first_name");
    let last_name = optional_name(&mut fields, "last_name");
    let email = email_input
        .as_deref()
        .and_then(|input| match Email::parse(input) {
            Ok(email) => Some(email),
            Err(reason) => {
                fields.reject(FieldError::new("email", reason));
                None
            }
        });
    let context: Vec<&str> = [
        email.as_ref().map(Email::as_str),
        first_name.as_deref(),
        last_name.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let password =
        password_input
            .as_deref()
            .and_then(|input| match Password::parse(input, &context) {
                Ok(password) => Some(password),
                Err(reason) => {
                    fields.reject(FieldError::new("password", reason));
                    None
                }
            });
    fields.finish()?;
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::Internal(anyhow::anyhow!(
            "validation passed without values"
        )));
    };

    // Every attempt that gets this far counts, taken or not: it is also
    // how one would probe which emails have accounts.
    let ip = request.client_ip(&service.settings.trusted_proxies);
    let now = clock::now();
    let (count, window_left) = service.stores.counters().hit(
        &format!("register:{}", throttle_address(&ip)),
        throttle::REGISTRATION_WINDOW,
        clock::now_millis(),
    )?;
    if let Some(retry_after) = throttle::exhausted(
        count,
        service.settings.registrations_per_ip + 1,
        window_left,
    ) {
        return Err(ApiError::RateLimited { retry_after });
    }

    let hash = hash_password(&password)?;
    let id = crate::random::uuid().to_string();
    let created = service.stores.database.insert_user(&NewUser {
        id: &id,
        email: &email,
        password_hash: &hash,
        first_name: first_name.as_deref(),
        last_name: last_name.as_deref(),
        created_at: now,
    })?;
    if !created {
        return Err(ApiError::Conflict("email_taken"));
    }
    let user = crate::domain::User {
        id: id.clone(),
        email: email.clone(),
        first_name,
        last_name,
        created_at: now,
        email_verified: false,
        mfa_enabled: false,
    };
    super::recovery::send_verification_link(service, &user)?;
    service.audit(
        "register",
        request,
        Who {
            user_id: Some(&id),
            session_id: None,
        },
        None,
    );
    let roles = roles_for(&user, &service.settings.admin_emails);
    Ok(
        Response::json(201, &UserBody::new(&user, role_names(&roles)))
            .header("location", "/auth/me"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::JsonFields;

    /// The OpenAPI document states the name rule as a pattern; the two
    /// must accept the same names.
    #[test]
    fn the_documented_name_pattern_accepts_exactly_what_registration_accepts() {
        let document: serde_json::Value = serde_json::from_str(crate::docs::OPENAPI_JSON).unwrap();
        let schema =
            &document["components"]["schemas"]["RegisterRequest"]["properties"]["first_name"];
        let pattern = regex::Regex::new(schema["pattern"].as_str().unwrap()).unwrap();
        for name in [
            "Ada",
            "",
            "  ",
            "Zoë",
            "tab\there",
            "nul\u{0}",
            "del\u{7f}",
            "c1\u{85}",
            "\u{a0}",
        ] {
            let mut fields = JsonFields::parse(
                serde_json::json!({ "first_name": name })
                    .to_string()
                    .as_bytes(),
            )
            .unwrap();
            optional_name(&mut fields, "first_name");
            assert_eq!(pattern.is_match(name), fields.finish().is_ok(), "{name:?}");
        }
    }
}
