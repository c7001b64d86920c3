//! `wasi:http/outgoing-handler`: outbound HTTP, as Spin allows it.
//!
//! A request goes out only if the component's `allowed_outbound_hosts`
//! lists its scheme, host and port (a URL without a port means the scheme's
//! well-known one); anything else is refused with `HttpRequestDenied`, the
//! error Spin gives, before any connection is made. A request the guest
//! sends without an authority (Spin's "self request") is refused the same
//! way: this host does not route requests back into the app.
//!
//! The sending itself is wasmtime-wasi-http's `default_send_request`
//! (HTTP/1.1, TLS with the webpki roots). Its timeouts are the guest's
//! `request-options`, capped by the host's [`HttpTimeouts`], so a server
//! that never answers cannot keep an instance from the pool for long.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

use super::ComponentContext;

/// The longest the host lets an outbound request wait, whatever the guest
/// asks for; also what applies when the guest sets no timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpTimeouts {
    /// To open the connection (TCP, then TLS). Default 10 s.
    pub connect: Duration,
    /// From sending the request to the response's status and headers.
    /// Default 30 s.
    pub first_byte: Duration,
    /// Between two chunks of the response body. Default 30 s.
    pub between_bytes: Duration,
}

impl Default for HttpTimeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(30),
            between_bytes: Duration::from_secs(30),
        }
    }
}

impl HttpTimeouts {
    /// The guest's options, each capped by (or, when unset, replaced with)
    /// the host's ceiling.
    pub fn apply(&self, guest: Option<RequestOptions>) -> RequestOptions {
        let guest = guest.unwrap_or_default();
        let cap = |asked: Option<Duration>, ceiling: Duration| {
            Some(asked.map_or(ceiling, |asked| asked.min(ceiling)))
        };
        RequestOptions {
            connect_timeout: cap(guest.connect_timeout, self.connect),
            first_byte_timeout: cap(guest.first_byte_timeout, self.first_byte),
            between_bytes_timeout: cap(guest.between_bytes_timeout, self.between_bytes),
        }
    }
}

/// The outbound HTTP policy of one request's component.
pub struct OutboundHttp {
    component: Arc<ComponentContext>,
    timeouts: HttpTimeouts,
}

impl OutboundHttp {
    /// The policy for `component`, with the host's `timeouts`.
    pub fn new(component: Arc<ComponentContext>, timeouts: HttpTimeouts) -> Self {
        Self {
            component,
            timeouts,
        }
    }
}

type SendFuture = Box<
    dyn Future<
            Output = Result<
                (
                    http::Response<WasiBody>,
                    Box<dyn Future<Output = Result<(), Error>> + Send>,
                ),
                Error,
            >,
        > + Send,
>;

impl WasiHttpHooks for OutboundHttp {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        // Errors the guest meets while reading the response; there is
        // nothing the host would do with them.
        _response_errors: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> SendFuture {
        // wasmtime-wasi-http writes a request without an authority (a Spin
        // "self request") as `https://:443/...`: no host, refused.
        let has_host = request.uri().host().is_some_and(|host| !host.is_empty());
        let allowed = has_host
            && self
                .component
                .allowed_hosts
                .check_url(&request.uri().to_string(), "https")
                .is_ok();
        let options = self.timeouts.apply(options);
        Box::new(async move {
            // The guest asked for a destination it was not given: its
            // fault, and Spin's answer.
            if !allowed {
                return Err(Error::HttpRequestDenied);
            }
            let (response, io) =
                wasmtime_wasi_http::default_send_request(request, Some(options)).await?;
            Ok((
                response.map(BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = Result<(), Error>> + Send>,
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ceilings() -> HttpTimeouts {
        HttpTimeouts {
            connect: SECOND,
            first_byte: 2 * SECOND,
            between_bytes: 3 * SECOND,
        }
    }

    #[test]
    fn without_guest_options_the_ceilings_apply() {
        let applied = ceilings().apply(None);
        assert_eq!(applied.connect_timeout, Some(SECOND));
        assert_eq!(applied.first_byte_timeout, Some(2 * SECOND));
        assert_eq!(applied.between_bytes_timeout, Some(3 * SECOND));
    }

    #[test]
    fn a_guest_may_ask_for_less_but_not_more() {
        let applied = ceilings().apply(Some(RequestOptions {
            connect_timeout: Some(SECOND / 2),
            first_byte_timeout: Some(60 * SECOND),
            between_bytes_timeout: None,
        }));
        assert_eq!(applied.connect_timeout, Some(SECOND / 2));
        assert_eq!(applied.first_byte_timeout, Some(2 * SECOND));
        assert_eq!(applied.between_bytes_timeout, Some(3 * SECOND));
    }
}
