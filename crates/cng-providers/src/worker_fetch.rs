//! [`HttpClient`](crate::HttpClient) over `worker::Fetch`, so the HTTP backends
//! ([`RestBackend`](crate::RestBackend), [`OpenAiBackend`](crate::OpenAiBackend)) run
//! in a Cloudflare Worker (feature `worker`, wasm32 only).
//!
//! The same contract as the native client: the future resolves when the response head
//! arrives, the body is a stream read as it comes, a failure before any response is a
//! 502 ([`ErrorKind::Upstream`], retried by the backends), a response head that takes
//! longer than `first_byte` is a 504 (the fetch is aborted), and a body that stalls for
//! longer than `idle` ends with a 504 item. The runtime owns connections and TLS, so
//! there is no connect timeout of our own. Redirects are not followed (a redirect would
//! drop or leak the credential).

use std::time::Duration;

/// The timeouts of [`WorkerFetch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FetchTimeouts {
    /// From sending the request to the response head. Default 120 s.
    pub first_byte: Duration,
    /// The longest wait for the next body chunk. Default 60 s.
    pub idle: Duration,
}

impl Default for FetchTimeouts {
    fn default() -> Self {
        Self {
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// `fetch()` of the Workers runtime, with [`FetchTimeouts`].
#[derive(Debug, Clone, Copy, Default)]
pub struct WorkerFetch {
    timeouts: FetchTimeouts,
}

impl WorkerFetch {
    pub fn new(timeouts: FetchTimeouts) -> Self {
        Self { timeouts }
    }

    pub fn timeouts(&self) -> FetchTimeouts {
        self.timeouts
    }
}

#[cfg(all(feature = "worker", target_arch = "wasm32"))]
mod js {
    use std::pin::Pin;
    use std::task::{Context, Poll};
    use std::time::Duration;

    use bytes::Bytes;
    use cng_core::backend::{ByteStream, MaybeSend};
    use cng_core::{Error, ErrorKind};
    use futures_util::future::{Either, select};
    use futures_util::{FutureExt, Stream, StreamExt};
    use worker::{AbortController, Delay, Fetch, Headers, Method, RequestInit, RequestRedirect};

    use super::WorkerFetch;
    use crate::http::{HttpClient, fmt_secs};

    fn method(m: &http::Method) -> Result<Method, Error> {
        Ok(match *m {
            http::Method::GET => Method::Get,
            http::Method::POST => Method::Post,
            http::Method::PUT => Method::Put,
            http::Method::PATCH => Method::Patch,
            http::Method::DELETE => Method::Delete,
            http::Method::HEAD => Method::Head,
            http::Method::OPTIONS => Method::Options,
            _ => return Err(Error::internal(format!("cannot fetch with method {m}"))),
        })
    }

    /// The host (and port) a request goes to, for messages: never the path or query.
    fn host(uri: &http::Uri) -> String {
        match (uri.host(), uri.port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "(no host)".to_string(),
        }
    }

    impl HttpClient for WorkerFetch {
        async fn send(
            &self,
            req: http::Request<Bytes>,
        ) -> Result<http::Response<ByteStream>, Error> {
            let (parts, body) = req.into_parts();
            let host = host(&parts.uri);
            let mut init = RequestInit::new();
            init.with_method(method(&parts.method)?)
                .with_headers(Headers::from(&parts.headers))
                .with_redirect(RequestRedirect::Manual);
            if !body.is_empty() {
                init.with_body(Some(js_sys::Uint8Array::from(&body[..]).into()));
            }
            let request =
                worker::Request::new_with_init(&parts.uri.to_string(), &init).map_err(|_| {
                    Error::new(
                        ErrorKind::Unavailable,
                        "the configured upstream URL is not a valid URL",
                    )
                    .with_code("upstream_misconfigured")
                })?;
            let controller = AbortController::default();
            let signal = controller.signal();
            let fetch = Fetch::Request(request);
            let first_byte = self.timeouts.first_byte;
            let sent = {
                let send = fetch.send_with_signal(&signal).boxed_local();
                let timer = Delay::from(first_byte);
                match select(send, timer).await {
                    Either::Left((r, _)) => r,
                    Either::Right(((), _)) => {
                        controller.abort();
                        return Err(Error::new(
                            ErrorKind::UpstreamTimeout,
                            format!("upstream did not answer within {}", fmt_secs(first_byte)),
                        )
                        .with_code("upstream_timeout"));
                    }
                }
            };
            let mut resp = sent.map_err(|e| {
                Error::new(
                    ErrorKind::Upstream,
                    format!("the request to the upstream at {host} failed: {e}"),
                )
                .with_code("upstream_unreachable")
            })?;
            let status = http::StatusCode::from_u16(resp.status_code())
                .map_err(|_| Error::upstream("the upstream answered an invalid status"))?;
            let headers = http::HeaderMap::from(resp.headers());
            let body: ByteStream = match resp.stream() {
                Ok(s) => Box::pin(IdleTimeout::new(
                    Box::pin(s.map(|chunk| {
                        chunk.map(Bytes::from).map_err(|e| {
                            Error::new(
                                ErrorKind::Upstream,
                                format!("the upstream connection failed mid-response: {e}"),
                            )
                            .with_code("upstream_error")
                        })
                    })),
                    self.timeouts.idle,
                )),
                // No body (204, HEAD).
                Err(_) => Box::pin(futures_util::stream::empty()),
            };
            let mut out = http::Response::new(body);
            *out.status_mut() = status;
            *out.headers_mut() = headers;
            Ok(out)
        }

        fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
            Delay::from(d)
        }
    }

    /// Ends a body stream with a 504 item when the next chunk takes longer than `idle`;
    /// the timer runs only while the consumer waits on the upstream.
    struct IdleTimeout {
        inner: ByteStream,
        idle: Duration,
        timer: Option<Delay>,
        done: bool,
    }

    impl IdleTimeout {
        fn new(inner: ByteStream, idle: Duration) -> Self {
            Self {
                inner,
                idle,
                timer: None,
                done: false,
            }
        }
    }

    impl Stream for IdleTimeout {
        type Item = Result<Bytes, Error>;

        fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            let this = &mut *self;
            if this.done {
                return Poll::Ready(None);
            }
            match this.inner.as_mut().poll_next(cx) {
                Poll::Ready(item) => {
                    this.timer = None;
                    if !matches!(item, Some(Ok(_))) {
                        this.done = true;
                        this.inner = Box::pin(futures_util::stream::empty());
                    }
                    Poll::Ready(item)
                }
                Poll::Pending => {
                    let idle = this.idle;
                    let timer = this.timer.get_or_insert_with(|| Delay::from(idle));
                    match Pin::new(timer).poll(cx) {
                        Poll::Ready(()) => {
                            this.done = true;
                            this.inner = Box::pin(futures_util::stream::empty());
                            Poll::Ready(Some(Err(Error::new(
                                ErrorKind::UpstreamTimeout,
                                format!("the upstream stalled: no data for {}", fmt_secs(idle)),
                            )
                            .with_code("upstream_timeout"))))
                        }
                        Poll::Pending => Poll::Pending,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_timeouts() {
        let t = WorkerFetch::default().timeouts();
        assert_eq!(t.first_byte, Duration::from_secs(120));
        assert_eq!(t.idle, Duration::from_secs(60));
        let custom = FetchTimeouts {
            first_byte: Duration::from_secs(5),
            idle: Duration::from_secs(1),
        };
        assert_eq!(WorkerFetch::new(custom).timeouts(), custom);
    }
}
