//! Mail: the messages the service sends (plain text and HTML, with the
//! app's name and a link), and their delivery from the outbox.
//!
//! Every message is stored in the outbox before anything is sent
//! ([`crate::store::Outbox`]); [`delivery`] then posts due messages to
//! `mail_url` after the response has gone out, and keeps any it could not
//! deliver for a later attempt. Nothing is ever dropped.

pub mod delivery;

use crate::domain::Email;

/// The name messages go out under.
const APP_NAME: &str = "spin-auth";

impl Message {
    /// The message as the outbox stores it.
    pub fn to_store(&self) -> crate::store::NewMail<'_> {
        crate::store::NewMail {
            to: self.to.as_str(),
            subject: &self.subject,
            text: &self.text,
            html: &self.html,
        }
    }
}

/// A message, ready to store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The recipient.
    pub to: Email,
    /// Subject line.
    pub subject: String,
    /// Plain-text body.
    pub text: String,
    /// HTML body; every value in it is escaped.
    pub html: String,
}

/// The link that verifies `to`'s address.
pub fn verification(app_url: &str, to: &Email, token: &str) -> Message {
    let link = format!(
        "{}/verify-email?token={token}",
        app_url.trim_end_matches('/')
    );
    message(
        to,
        format!("Confirm your email address for {APP_NAME}"),
        "Confirm that this address is yours by opening this link (valid for 24 hours):",
        &link,
        "If you did not create an account, ignore this message.",
    )
}

/// The link that sets a new password for `to`'s account.
pub fn password_reset(app_url: &str, to: &Email, token: &str) -> Message {
    let link = format!(
        "{}/reset-password?token={token}",
        app_url.trim_end_matches('/')
    );
    message(
        to,
        format!("Reset your {APP_NAME} password"),
        "Choose a new password by opening this link (valid for 1 hour, once):",
        &link,
        "If you did not ask for this, ignore this message: your password stays as it is.",
    )
}

fn message(to: &Email, subject: String, lead: &str, link: &str, footer: &str) -> Message {
    let text = format!("Hello {to},\n\n{lead}\n\n{link}\n\n{footer}\n\n-- {APP_NAME}\n");
    let html = format!(
        "<!doctype html><html><body><p>Hello {to},</p><p>{lead}</p>\
         <p><a href=\"{href}\">{link_text}</a></p><p>{footer}</p><p>&mdash; {APP_NAME}</p></body></html>",
        to = html_escape::encode_text(to.as_str()),
        lead = html_escape::encode_text(lead),
        href = html_escape::encode_double_quoted_attribute(link),
        link_text = html_escape::encode_text(link),
        footer = html_escape::encode_text(footer),
    );
    Message {
        to: to.clone(),
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_carry_the_token_under_the_app_url() {
        let to = Email::parse("ada@example.com").unwrap();
        let message = verification("https://app.example.com/", &to, "abc_-1");
        assert!(
            message
                .text
                .contains("https://app.example.com/verify-email?token=abc_-1")
        );
        assert!(
            message
                .html
                .contains("href=\"https://app.example.com/verify-email?token=abc_-1\"")
        );
        let reset = password_reset("http://127.0.0.1:3000", &to, "xyz");
        assert!(
            reset
                .text
                .contains("http://127.0.0.1:3000/reset-password?token=xyz")
        );
    }

    #[test]
    fn no_value_reaches_the_html_unescaped() {
        let to = Email::parse("a&b'<x>@example.com")
            .unwrap_or_else(|_| Email::parse("a&b@example.com").unwrap());
        let message = verification("https://x.example/\"><script>", &to, "t");
        assert!(!message.html.contains("<script>"), "{}", message.html);
        assert!(!message.html.contains("a&b@"), "{}", message.html);
    }
}
