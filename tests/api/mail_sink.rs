//! A mail API stand-in on 127.0.0.1: it records every message posted to
//! it and answers 202, or 500 while it is told to fail. Stopping it closes
//! the port, as a mail service that is down.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use serde_json::Value;

/// One request the sink received.
#[derive(Debug, Clone)]
pub struct Received {
    pub authorization: Option<String>,
    pub idempotency_key: Option<String>,
    pub body: Value,
}

pub struct MailSink {
    pub address: SocketAddr,
    received: Arc<Mutex<Vec<Received>>>,
    failing: Arc<std::sync::atomic::AtomicBool>,
    server: tokio::task::JoinHandle<()>,
}

impl MailSink {
    pub async fn start() -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let received = Arc::new(Mutex::new(Vec::new()));
        let failing = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let server = tokio::spawn({
            let (received, failing) = (received.clone(), failing.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    let (received, failing) = (received.clone(), failing.clone());
                    tokio::spawn(async move {
                        let service = hyper::service::service_fn(
                            move |request: hyper::Request<hyper::body::Incoming>| {
                                let (received, failing) = (received.clone(), failing.clone());
                                async move {
                                    let header = |name: &str| {
                                        request
                                            .headers()
                                            .get(name)
                                            .and_then(|v| v.to_str().ok())
                                            .map(str::to_owned)
                                    };
                                    let (authorization, idempotency_key) =
                                        (header("authorization"), header("idempotency-key"));
                                    let bytes = request.into_body().collect().await?.to_bytes();
                                    let status =
                                        if failing.load(std::sync::atomic::Ordering::SeqCst) {
                                            500
                                        } else {
                                            received.lock().unwrap().push(Received {
                                                authorization,
                                                idempotency_key,
                                                body: serde_json::from_slice(&bytes)
                                                    .unwrap_or(Value::Null),
                                            });
                                            202
                                        };
                                    Ok::<_, hyper::Error>(
                                        hyper::Response::builder()
                                            .status(status)
                                            .body(Full::new(Bytes::from_static(b"{}")))
                                            .unwrap(),
                                    )
                                }
                            },
                        );
                        let _ = hyper::server::conn::http1::Builder::new()
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
            }
        });
        Self {
            address,
            received,
            failing,
            server,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}/v1/send", self.address)
    }

    /// Answers 500 (the message is not taken) while `failing`.
    pub fn fail(&self, failing: bool) {
        self.failing
            .store(failing, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits (up to 15 s) until `count` messages have arrived.
    pub async fn wait_for(&self, count: usize) -> Vec<Received> {
        for _ in 0..150 {
            let received = self.received();
            if received.len() >= count {
                return received;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!(
            "the mail sink got {} messages, expected {count}",
            self.received().len()
        );
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// The token of the first link to `path` (`/verify-email`,
/// `/reset-password`) in a text.
pub fn link_token(text: &str, path: &str) -> Option<String> {
    let start = text.find(&format!("{path}?token="))? + path.len() + "?token=".len();
    Some(
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect(),
    )
}
