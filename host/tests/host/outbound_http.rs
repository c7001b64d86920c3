//! `wasi:http/outgoing-handler`: a guest reaches the HTTP servers its
//! `allowed_outbound_hosts` lists and no other, and a server that never
//! answers holds it only until the host's ceiling (or the guest's own,
//! shorter timeout).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use spin_auth_host::Limits;
use spin_auth_host::outbound::http::HttpTimeouts;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::helpers::*;

/// A server on 127.0.0.1 that counts its connections and, if `answer`,
/// replies `200 hello from <path>` to each request; otherwise it reads the
/// request and never answers. It stops with the test's runtime.
struct Server {
    address: SocketAddr,
    connections: Arc<AtomicUsize>,
}

async fn server(answer: bool) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let counter = connections.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                if !answer {
                    // Hold the connection until the client gives up.
                    let _ = stream.read(&mut buffer).await;
                    return;
                }
                let text = String::from_utf8_lossy(&request).into_owned();
                let path = text.split_whitespace().nth(1).unwrap_or("?").to_owned();
                let body = format!("hello from {path}");
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    Server {
        address,
        connections,
    }
}

/// A server on 127.0.0.1 that answers each request with the request itself
/// (its head and a `content-length` body) as the response body.
async fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = Vec::new();
                let mut buffer = [0u8; 1024];
                let head_end = loop {
                    if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
                        break end + 4;
                    }
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&request[..head_end]).to_ascii_lowercase();
                let chunked = head.contains("\r\ntransfer-encoding: chunked");
                let length: usize = head
                    .lines()
                    .find_map(|line| line.strip_prefix("content-length:"))
                    .and_then(|value| value.trim().parse().ok())
                    .unwrap_or(0);
                let complete = |request: &[u8]| {
                    if chunked {
                        request[head_end..].ends_with(b"0\r\n\r\n")
                    } else {
                        request.len() >= head_end + length
                    }
                };
                while !complete(&request) {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => request.extend_from_slice(&buffer[..n]),
                    }
                }
                let body = if chunked {
                    dechunk(&request[head_end..])
                } else {
                    request[head_end..].to_vec()
                };
                request.truncate(head_end);
                request.extend_from_slice(&body);
                let mut response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    request.len()
                )
                .into_bytes();
                response.extend_from_slice(&request);
                let _ = stream.write_all(&response).await;
            });
        }
    });
    address
}

/// The data of a `transfer-encoding: chunked` body.
fn dechunk(mut chunked: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size = std::str::from_utf8(&chunked[..line_end])
            .ok()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        data.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
    data
}

/// The fixture app with `allowed` as its `http_allowed` variable, which
/// its manifest lists as `"{{ http_allowed }}"`.
fn fixture_allowing(allowed: &str, timeouts: HttpTimeouts) -> Fixture {
    let mut options = FixtureOptions {
        limits: Limits {
            outbound_http: timeouts,
            ..Limits::default()
        },
        ..FixtureOptions::default()
    };
    options
        .environment
        .push(("SPIN_VARIABLE_HTTP_ALLOWED".into(), allowed.into()));
    try_start(options).expect("the fixture app starts")
}

/// What the guest got; the whole call is bounded, so a host that ignored
/// its timeouts fails the test instead of hanging it.
async fn guest_get(fixture: &Fixture, call: Value) -> Value {
    tokio::time::timeout(Duration::from_secs(30), fixture.post_json("/http", call))
        .await
        .expect("the guest answers within 30 s")
}

#[tokio::test]
async fn a_listed_server_is_reached_and_an_unlisted_one_is_refused() {
    let listed = server(true).await;
    let unlisted = server(true).await;
    // The entry comes from a variable, through the manifest's template.
    let fixture = fixture_allowing(
        &format!("http://127.0.0.1:{}", listed.address.port()),
        HttpTimeouts::default(),
    );

    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://{}/greeting?x=1", listed.address)}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"status": 200, "body": "hello from /greeting?x=1"})
    );

    // Another port of the same host is not listed.
    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://{}/", unlisted.address)}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"error": "Http(ErrorCode::HttpRequestDenied)"})
    );
    // Neither is another name for the same address, nor another scheme.
    for url in [
        format!("http://localhost:{}/", listed.address.port()),
        format!("https://127.0.0.1:{}/", listed.address.port()),
    ] {
        let answer = guest_get(&fixture, json!({ "url": url })).await;
        assert_eq!(
            answer,
            json!({"error": "Http(ErrorCode::HttpRequestDenied)"}),
            "{url}"
        );
    }
    // Refused before any connection was made.
    assert_eq!(unlisted.connections.load(Ordering::SeqCst), 0);
    assert_eq!(listed.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn without_an_entry_no_http_is_allowed() {
    let target = server(true).await;
    let fixture = start();
    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://{}/", target.address)}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"error": "Http(ErrorCode::HttpRequestDenied)"})
    );
    assert_eq!(target.connections.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_wildcard_port_allows_every_port_of_the_host() {
    let first = server(true).await;
    let second = server(true).await;
    let fixture = fixture_allowing("http://127.0.0.1:*", HttpTimeouts::default());
    for target in [&first, &second] {
        let answer = guest_get(
            &fixture,
            json!({"url": format!("http://{}/p", target.address)}),
        )
        .await;
        assert_eq!(answer, json!({"status": 200, "body": "hello from /p"}));
    }
    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://localhost:{}/p", first.address.port())}),
    )
    .await;
    assert_eq!(
        answer,
        json!({"error": "Http(ErrorCode::HttpRequestDenied)"})
    );
}

#[tokio::test]
async fn a_server_that_never_answers_holds_the_guest_only_until_the_ceiling() {
    let silent = server(false).await;
    let ceiling = Duration::from_secs(1);
    let fixture = fixture_allowing(
        "http://127.0.0.1:*",
        HttpTimeouts {
            first_byte: ceiling,
            ..HttpTimeouts::default()
        },
    );
    let started = Instant::now();
    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://{}/slow", silent.address)}),
    )
    .await;
    let waited = started.elapsed();
    assert_eq!(
        answer,
        json!({"error": "Http(ErrorCode::ConnectionReadTimeout)"})
    );
    assert!(waited >= ceiling, "gave up after {waited:?}");
    assert!(waited < ceiling + Duration::from_secs(4), "{waited:?}");
    assert_eq!(silent.connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_guest_may_ask_for_a_shorter_timeout_than_the_ceiling() {
    let silent = server(false).await;
    let fixture = fixture_allowing(
        "http://127.0.0.1:*",
        HttpTimeouts {
            first_byte: Duration::from_secs(20),
            ..HttpTimeouts::default()
        },
    );
    let started = Instant::now();
    let answer = guest_get(
        &fixture,
        json!({"url": format!("http://{}/slow", silent.address), "first_byte_timeout_ms": 300}),
    )
    .await;
    let waited = started.elapsed();
    let error = answer["error"].as_str().unwrap_or_default();
    assert_eq!(error, "ErrorCode::ConnectionReadTimeout", "{answer}");
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");
}

#[tokio::test]
async fn a_request_back_to_the_app_is_refused_even_by_a_wildcard() {
    // Spin sends a URL without a host (a "self request") to the app itself
    // when allowed_outbound_hosts says `self`; this host does not, and no
    // wildcard entry reaches it.
    let fixture = fixture_allowing("*://*:*", HttpTimeouts::default());
    let answer = guest_get(&fixture, json!({"url": "/exact"})).await;
    assert_eq!(
        answer,
        json!({"error": "Http(ErrorCode::HttpRequestDenied)"})
    );
}

#[tokio::test]
async fn a_request_body_and_headers_reach_the_server() {
    let echo = echo_server().await;
    let fixture = fixture_allowing(
        &format!("http://127.0.0.1:{}", echo.port()),
        HttpTimeouts::default(),
    );
    let body = r#"{"to":"someone@example.com","text":"hello"}"#;
    let answer = guest_get(
        &fixture,
        json!({
            "url": format!("http://{echo}/mail"),
            "body": body,
            "headers": [["authorization", "Bearer k"], ["content-type", "application/json"]],
        }),
    )
    .await;
    assert_eq!(answer["status"], 200, "{answer}");
    let seen = answer["body"].as_str().unwrap_or_default();
    let (head, sent) = seen.split_once("\r\n\r\n").expect("a request head");
    let head = head.to_ascii_lowercase();
    assert!(head.starts_with("post /mail http/1.1\r\n"), "{head}");
    assert!(head.contains("\r\nauthorization: bearer k"), "{head}");
    assert!(
        head.contains("\r\ncontent-type: application/json"),
        "{head}"
    );
    assert!(head.contains(&format!("\r\nhost: {echo}")), "{head}");
    assert_eq!(sent, body);
}
