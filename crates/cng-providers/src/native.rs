//! [`HttpClient`] over reqwest (rustls) and tokio, for the native `cng` server.
//!
//! Three timeouts, because one total timeout cannot tell a slow stream from a dead
//! one: `connect` (TCP + TLS), `first_byte` (until the response head arrives; a long
//! prompt on a busy model may take a while) and `idle` (the longest gap between two
//! body chunks, so a stream that stalls is ended with a 504 item instead of hanging).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use cng_core::backend::{ByteStream, MaybeSend};
use cng_core::{Error, ErrorKind};
use futures_util::{Stream, StreamExt};
use tokio::time::{Instant, Sleep};

use crate::http::{HttpClient, fmt_secs};

/// The timeouts of [`ReqwestClient`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect plus TLS handshake. Default 10 s.
    pub connect: Duration,
    /// From sending the request to the response head. Default 120 s.
    pub first_byte: Duration,
    /// The longest wait for the next body chunk. Default 60 s.
    pub idle: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
        }
    }
}

/// reqwest (rustls, HTTP/1.1 and HTTP/2, no redirects followed) with [`Timeouts`].
#[derive(Debug, Clone)]
pub struct ReqwestClient {
    client: reqwest::Client,
    timeouts: Timeouts,
}

impl ReqwestClient {
    /// A new connection pool with these timeouts.
    pub fn new(timeouts: Timeouts) -> Result<Self, Error> {
        let client = reqwest::Client::builder()
            .use_rustls_tls()
            .connect_timeout(timeouts.connect)
            // A redirect would turn the POST into a GET or drop the credential: an
            // upstream URL that redirects is a configuration error, reported as such.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("cng/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                Error::internal(format!(
                    "could not build the HTTP client: {}",
                    root_cause(&e)
                ))
            })?;
        Ok(Self { client, timeouts })
    }

    /// Wraps an existing client (its own connect timeout and redirect policy apply;
    /// `timeouts.connect` is then unused).
    pub fn from_client(client: reqwest::Client, timeouts: Timeouts) -> Self {
        Self { client, timeouts }
    }

    pub fn timeouts(&self) -> Timeouts {
        self.timeouts
    }
}

impl HttpClient for ReqwestClient {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<ByteStream>, Error> {
        let host = match (req.uri().host(), req.uri().port_u16()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            _ => "(no host)".to_string(),
        };
        let req = reqwest::Request::try_from(req).map_err(|_| {
            Error::new(
                ErrorKind::Unavailable,
                "the configured upstream URL is not a valid URL",
            )
            .with_code("upstream_misconfigured")
        })?;
        let first_byte = self.timeouts.first_byte;
        let mut resp = match tokio::time::timeout(first_byte, self.client.execute(req)).await {
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::UpstreamTimeout,
                    format!("upstream did not answer within {}", fmt_secs(first_byte)),
                )
                .with_code("upstream_timeout"));
            }
            Ok(Err(e)) => return Err(map_send_error(&e, &host, self.timeouts.connect)),
            Ok(Ok(resp)) => resp,
        };
        let status = resp.status();
        let version = resp.version();
        let headers = std::mem::take(resp.headers_mut());
        let chunks = resp
            .bytes_stream()
            .map(|r| r.map_err(|e| map_body_error(&e)));
        let body: ByteStream = Box::pin(IdleTimeout::new(Box::pin(chunks), self.timeouts.idle));
        let mut out = http::Response::new(body);
        *out.status_mut() = status;
        *out.version_mut() = version;
        *out.headers_mut() = headers;
        Ok(out)
    }

    fn sleep(&self, d: Duration) -> impl Future<Output = ()> + MaybeSend {
        tokio::time::sleep(d)
    }
}

/// The innermost error's text (`Connection refused (os error 111)`, `invalid peer
/// certificate: UnknownIssuer`, `failed to lookup address information: ...`). Never
/// reqwest's own `Display`, which names the full URL.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e.source();
    let mut last = None;
    while let Some(s) = cur {
        last = Some(s);
        cur = s.source();
    }
    match last {
        Some(s) => s.to_string(),
        None => "no further detail".to_string(),
    }
}

fn map_send_error(e: &reqwest::Error, host: &str, connect: Duration) -> Error {
    if e.is_connect() {
        let detail = if e.is_timeout() {
            format!("no connection within {}", fmt_secs(connect))
        } else {
            root_cause(e)
        };
        Error::new(
            ErrorKind::Upstream,
            format!("could not connect to the upstream at {host}: {detail}"),
        )
        .with_code("upstream_unreachable")
    } else {
        Error::new(
            ErrorKind::Upstream,
            format!(
                "the request to the upstream at {host} failed: {}",
                root_cause(e)
            ),
        )
        .with_code("upstream_error")
    }
}

fn map_body_error(e: &reqwest::Error) -> Error {
    Error::new(
        ErrorKind::Upstream,
        format!(
            "the upstream connection failed mid-response: {}",
            root_cause(e)
        ),
    )
    .with_code("upstream_error")
}

/// Ends a body stream with a 504 item when the next chunk takes longer than `idle`.
///
/// The clock runs only while the consumer waits on the upstream (from the poll that
/// found no data), so a slow consumer never causes a spurious timeout.
struct IdleTimeout {
    inner: ByteStream,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    waiting: bool,
    done: bool,
}

impl IdleTimeout {
    fn new(inner: ByteStream, idle: Duration) -> Self {
        Self {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            waiting: false,
            done: false,
        }
    }
}

impl IdleTimeout {
    /// Ends the stream and drops the upstream body now (closing its connection).
    fn finish(&mut self) {
        self.done = true;
        self.inner = Box::pin(futures_util::stream::empty());
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
            Poll::Ready(Some(item)) => {
                this.waiting = false;
                if item.is_err() {
                    this.finish();
                }
                Poll::Ready(Some(item))
            }
            Poll::Ready(None) => {
                this.done = true;
                Poll::Ready(None)
            }
            Poll::Pending => {
                if !this.waiting {
                    this.waiting = true;
                    let deadline = Instant::now() + this.idle;
                    this.sleep.as_mut().reset(deadline);
                }
                match this.sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        this.finish();
                        Poll::Ready(Some(Err(Error::new(
                            ErrorKind::UpstreamTimeout,
                            format!("the upstream stalled: no data for {}", fmt_secs(this.idle)),
                        )
                        .with_code("upstream_timeout"))))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }
}
