//! Clients that stall: a connection that does not finish its headers or
//! its body within the limits is closed, and the guest waiting on the body
//! is let go. The limits are set to one second here so the tests are quick.

use std::time::{Duration, Instant};

use spin_auth_host::Limits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(1);
/// Slack for a loaded machine: a connection still open this long after its
/// limit is counted as held open.
const SLACK: Duration = Duration::from_secs(4);

fn start_with_short_limits() -> Fixture {
    try_start(FixtureOptions {
        limits: Limits {
            header_read_timeout: LIMIT,
            body_read_timeout: LIMIT,
            ..Limits::default()
        },
        ..FixtureOptions::default()
    })
    .expect("the fixture app starts")
}

/// Writes `sent`, then reads until the server closes the connection, for at
/// most `LIMIT + SLACK`. Returns what the server sent and when it closed,
/// or `None` if it kept the connection open.
async fn send_and_wait_for_close(fixture: &Fixture, sent: &[u8]) -> Option<(String, Duration)> {
    let mut stream = TcpStream::connect(fixture.host.address()).await.unwrap();
    let started = Instant::now();
    stream.write_all(sent).await.unwrap();
    let mut received = Vec::new();
    let read = tokio::time::timeout(LIMIT + SLACK, async {
        let mut buffer = [0u8; 4096];
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    read.ok().map(|()| {
        (
            String::from_utf8_lossy(&received).into_owned(),
            started.elapsed(),
        )
    })
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_headers_is_closed() {
    let fixture = start_with_short_limits();
    let partial = b"GET /exact HTTP/1.1\r\nHost: 127.0.0.1\r\nx-fixture-echo: 1\r\n";
    let (answer, after) = send_and_wait_for_close(&fixture, partial)
        .await
        .expect("the host closes the connection");
    assert!(
        after >= LIMIT - Duration::from_millis(100),
        "closed after {after:?}"
    );
    assert!(!answer.contains(" 200 "), "{answer}");

    // A connection that sends nothing at all is closed the same way.
    let (answer, after) = send_and_wait_for_close(&fixture, b"")
        .await
        .expect("the host closes an idle connection");
    assert!(
        after >= LIMIT - Duration::from_millis(100),
        "closed after {after:?}"
    );
    assert!(!answer.contains(" 200 "), "{answer}");
}

#[tokio::test]
async fn a_connection_that_never_finishes_its_body_is_closed_and_the_guest_let_go() {
    let fixture = start_with_short_limits();
    let short = b"POST /short-body HTTP/1.1\r\nHost: 127.0.0.1\r\nx-fixture-echo: 1\r\n\
                  Content-Length: 100\r\n\r\n123456789";
    let (answer, after) = send_and_wait_for_close(&fixture, short)
        .await
        .expect("the host closes the connection");
    assert!(
        after >= LIMIT - Duration::from_millis(100),
        "closed after {after:?}"
    );
    // The guest never saw a whole body, so it could not echo the request.
    assert!(answer.starts_with("HTTP/1.1 500 "), "{answer:?}");
    // Its request ended: the instance went back to the pool.
    let logs = fixture.log_lines();
    assert!(
        logs.iter()
            .any(|line| line.starts_with("POST /short-body 500 ")),
        "{logs:?}"
    );
    // And the host goes on serving.
    assert_eq!(fixture.echo("/exact").await["method"], "GET");
}

#[tokio::test]
async fn a_slow_client_within_the_limits_is_served() {
    let fixture = start_with_short_limits();
    let mut stream = TcpStream::connect(fixture.host.address()).await.unwrap();
    let pause = LIMIT / 3;
    stream
        .write_all(b"POST /slow HTTP/1.1\r\nHost: 127.0.0.1\r\nx-fixture-echo: 1\r\n")
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    stream
        .write_all(b"Content-Length: 10\r\nConnection: close\r\n\r\n12345")
        .await
        .unwrap();
    tokio::time::sleep(pause).await;
    stream.write_all(b"67890").await.unwrap();
    let mut answer = String::new();
    tokio::time::timeout(LIMIT + SLACK, stream.read_to_string(&mut answer))
        .await
        .expect("an answer in time")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("\"method\":\"POST\""), "{answer}");
}
