//! The bridge between Spin's `wasi:http` types and [`crate::http`]: read
//! the request (refusing a body over the limit before buffering it), run a
//! handler, write the response. A handler's error becomes problem+json, so
//! no error ever reaches Spin (which would answer 500 with a backtrace).

use std::cell::RefCell;

use futures::{SinkExt, StreamExt};
use spin_sdk::http::{Headers, IncomingRequest, OutgoingResponse, ResponseOutparam};

use crate::error::ApiError;
use crate::http::{MAX_BODY_BYTES, Request, Response};

thread_local! {
    /// Work a handler put off until its response has gone out.
    static AFTER_RESPONSE: RefCell<Vec<Box<dyn FnOnce()>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `work` once the response has been sent, in this same instance:
/// the client does not wait for it (mail delivery), and a difference in
/// work cannot show in the response's timing (a reset link for an account
/// that may not exist). Its failures go to the log.
pub fn after_response(work: impl FnOnce() + 'static) {
    AFTER_RESPONSE.with(|queue| queue.borrow_mut().push(Box::new(work)));
}

/// Serves one request with `handler`, then runs what it put off.
pub async fn serve(
    incoming: IncomingRequest,
    outparam: ResponseOutparam,
    handler: impl FnOnce(Request) -> Result<Response, ApiError>,
) {
    let response = match read_request(incoming).await {
        Ok(request) => handler(request).unwrap_or_else(|error| crate::problem::response(&error)),
        Err(error) => crate::problem::response(&error),
    };
    write_response(outparam, response.stored_only_if_marked()).await;
    while let Some(work) = AFTER_RESPONSE.with(|queue| queue.borrow_mut().pop()) {
        work();
    }
}

async fn read_request(incoming: IncomingRequest) -> Result<Request, ApiError> {
    let method = incoming.method().to_string().to_ascii_uppercase();
    let path_with_query = incoming.path_with_query().unwrap_or_else(|| "/".to_owned());
    let (path, query) = match path_with_query.split_once('?') {
        Some((path, query)) => (path.to_owned(), query.to_owned()),
        None => (path_with_query, String::new()),
    };
    let headers: Vec<(String, String)> = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| {
            (
                name.to_ascii_lowercase(),
                String::from_utf8_lossy(&value).into_owned(),
            )
        })
        .collect();
    let declared_length = headers
        .iter()
        .find(|(name, _)| name == "content-length")
        .and_then(|(_, value)| value.trim().parse::<usize>().ok());
    if declared_length.is_some_and(|length| length > MAX_BODY_BYTES) {
        return Err(ApiError::PayloadTooLarge);
    }
    let mut body = Vec::new();
    let mut stream = incoming.into_body_stream();
    while let Some(chunk) = stream.next().await {
        let chunk =
            chunk.map_err(|_| ApiError::malformed("The request body could not be read."))?;
        if body.len() + chunk.len() > MAX_BODY_BYTES {
            return Err(ApiError::PayloadTooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    let request = Request {
        method,
        path,
        query,
        headers,
        body,
    };
    request.refuse_content_coding()?;
    Ok(request)
}

async fn write_response(outparam: ResponseOutparam, response: Response) {
    let mut headers: Vec<(String, Vec<u8>)> = response
        .headers
        .into_iter()
        .map(|(name, value)| (name, value.into_bytes()))
        .collect();
    // RFC 9110 section 8.6: no Content-Length on a 204, which has no body.
    if response.status != 204 {
        headers.push((
            "content-length".to_owned(),
            response.body.len().to_string().into_bytes(),
        ));
    }
    let fields = Headers::from_list(&headers).unwrap_or_else(|_| Headers::new());
    let outgoing = OutgoingResponse::new(fields);
    let _ = outgoing.set_status_code(response.status);
    let mut body = outgoing.take_body();
    outparam.set(outgoing);
    if !response.body.is_empty() {
        let _ = body.send(response.body).await;
    }
    let _ = body.close().await;
}
