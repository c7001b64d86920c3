//! Delivering the outbox: each due message is claimed (so two instances
//! do not send it at once), posted to `mail_url` as JSON `{from, to,
//! subject, text, html}` with `Authorization: Bearer <mail_api_key>`, and
//! marked delivered on a 2xx. Anything else (no answer, a timeout, another
//! status) keeps it, with the error and a later time to try again.
//!
//! Delivery is at least once: a message the mail API accepted but that
//! could not be marked delivered (the database down at that moment, the
//! instance stopped) is sent again once its claim runs out, with the same
//! `Idempotency-Key` for mail APIs that deduplicate.
//!
//! It runs after a response has been sent (see
//! [`crate::component::after_response`]), so no client waits for a mail
//! server, and it is bounded: a few messages per run, and timeouts on
//! every request.

use spin_sdk::wit::wasi::http0_2_0::outgoing_handler;
use spin_sdk::wit::wasi::http0_2_0::types::{
    Fields, Method, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};

use crate::clock::{self, Timestamp};
use crate::config::MailSettings;
use crate::store::{Outbox, QueuedMail};

/// Messages one run delivers at most.
const BATCH: i64 = 10;
/// How long a claim lasts: longer than one delivery attempt should take
/// (both timeouts below, the body and the outcome's write). An attempt
/// that outlasts it anyway cannot undo the claim that took over.
const LEASE_SECONDS: i64 = 60;
/// Time allowed to connect, and then for the first byte of the answer.
const CONNECT_TIMEOUT_NS: u64 = 5_000_000_000;
const FIRST_BYTE_TIMEOUT_NS: u64 = 10_000_000_000;
/// Wait before the first retry; doubled for each failed attempt, up to an hour.
const FIRST_RETRY_SECONDS: i64 = 30;
const LAST_RETRY_SECONDS: i64 = 3_600;

/// When to try again after `attempts` failed attempts.
pub fn next_attempt(now: Timestamp, attempts: i64) -> Timestamp {
    let exponent = attempts.clamp(1, 16) - 1;
    now + (FIRST_RETRY_SECONDS << exponent).min(LAST_RETRY_SECONDS)
}

/// Delivers what is due. Without `mail_url` (the embedded default),
/// messages stay in the outbox: they were printed to the log when stored.
pub fn deliver_due(outbox: &dyn Outbox, settings: &MailSettings) {
    let Some(url) = &settings.mail_url else {
        return;
    };
    let due = match outbox.due(clock::now(), BATCH) {
        Ok(due) => due,
        Err(error) => {
            eprintln!("mail: cannot read the outbox: {error:?}");
            return;
        }
    };
    for id in due {
        // Each message is claimed just before it is posted, so a lease
        // covers one attempt (its timeouts) and not the batch's earlier ones.
        let now = clock::now();
        let mail = match outbox.claim(&id, now, now + LEASE_SECONDS) {
            Ok(Some(mail)) => mail,
            Ok(None) => continue,
            Err(error) => {
                eprintln!("mail: cannot claim message {id}: {error:?}");
                return;
            }
        };
        let outcome = post(url, settings, &mail);
        let recorded = match &outcome {
            Ok(()) => outbox.delivered(&mail.id, clock::now()),
            Err(error) => outbox.failed(&mail, error, next_attempt(clock::now(), mail.attempts)),
        };
        match (outcome, recorded) {
            (Ok(()), Ok(())) => eprintln!("mail: delivered message {}", mail.id),
            (Err(error), Ok(())) => {
                eprintln!(
                    "mail: message {} not delivered, kept for a retry: {error}",
                    mail.id
                )
            }
            (_, Err(error)) => eprintln!("mail: cannot record message {}: {error:?}", mail.id),
        }
    }
}

/// `scheme://authority/path` of `mail_url` (checked at configuration to be
/// http or https); hand-split because these three parts are all the
/// wasi:http request needs.
fn parts(url: &str) -> Option<(Scheme, &str, &str)> {
    let (scheme, rest) = url.split_once("://")?;
    let scheme = match scheme {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], &rest[slash..]),
        None => (rest, "/"),
    };
    Some((scheme, authority, path))
}

/// Posts one message; `Ok` only for a 2xx answer.
fn post(url: &str, settings: &MailSettings, mail: &QueuedMail) -> Result<(), String> {
    let (scheme, authority, path) = parts(url).ok_or("mail_url is not an http(s) URL")?;
    let body = serde_json::to_vec(&serde_json::json!({
        "from": settings.mail_from,
        "to": mail.to,
        "subject": mail.subject,
        "text": mail.text,
        "html": mail.html,
    }))
    .map_err(|error| error.to_string())?;
    let mut headers = vec![
        ("content-type".to_owned(), b"application/json".to_vec()),
        (
            "content-length".to_owned(),
            body.len().to_string().into_bytes(),
        ),
        // Mail APIs that honour it send a retried message once.
        ("idempotency-key".to_owned(), mail.id.as_bytes().to_vec()),
    ];
    if let Some(key) = &settings.mail_api_key {
        headers.push((
            "authorization".to_owned(),
            format!("Bearer {}", key.as_str()).into_bytes(),
        ));
    }
    let fields = Fields::from_list(&headers).map_err(|error| format!("headers: {error:?}"))?;
    let request = OutgoingRequest::new(fields);
    let set = |ok: Result<(), ()>, what: &str| ok.map_err(|()| format!("cannot set the {what}"));
    set(request.set_method(&Method::Post), "method")?;
    set(request.set_scheme(Some(&scheme)), "scheme")?;
    set(request.set_authority(Some(authority)), "authority")?;
    set(request.set_path_with_query(Some(path)), "path")?;
    let outgoing_body = request.body().map_err(|()| "no request body")?;
    let options = RequestOptions::new();
    set(
        options.set_connect_timeout(Some(CONNECT_TIMEOUT_NS)),
        "connect timeout",
    )?;
    set(
        options.set_first_byte_timeout(Some(FIRST_BYTE_TIMEOUT_NS)),
        "first-byte timeout",
    )?;
    let pending = outgoing_handler::handle(request, Some(options))
        .map_err(|error| format!("refused: {error:?}"))?;
    {
        let stream = outgoing_body.write().map_err(|()| "no body stream")?;
        // wasi:io lets one blocking write carry at most 4096 bytes.
        for chunk in body.chunks(4096) {
            stream
                .blocking_write_and_flush(chunk)
                .map_err(|error| format!("sending the body: {error:?}"))?;
        }
    }
    OutgoingBody::finish(outgoing_body, None).map_err(|error| format!("finishing: {error:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no answer")?
        .map_err(|()| "the answer was taken twice")?
        .map_err(|error| format!("{error:?}"))?;
    match response.status() {
        200..=299 => Ok(()),
        status => Err(format!("the mail service answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_back_off_from_thirty_seconds_to_an_hour() {
        assert_eq!(next_attempt(0, 1), 30);
        assert_eq!(next_attempt(0, 2), 60);
        assert_eq!(next_attempt(0, 3), 120);
        assert_eq!(next_attempt(0, 10), 3_600);
        assert_eq!(next_attempt(0, 1_000), 3_600);
    }

    #[test]
    fn mail_urls_split_into_what_the_request_needs() {
        let (scheme, authority, path) = parts("https://api.mail.example:8443/v1/send").unwrap();
        assert!(matches!(scheme, Scheme::Https));
        assert_eq!((authority, path), ("api.mail.example:8443", "/v1/send"));
        let (_, authority, path) = parts("http://127.0.0.1:9").unwrap();
        assert_eq!((authority, path), ("127.0.0.1:9", "/"));
        assert!(parts("ftp://x").is_none());
    }
}
