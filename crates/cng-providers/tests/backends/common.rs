//! A tiny scripted HTTP/1.1 server (tokio + hyper) and a client that records sleeps.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use cng_core::Error;
use cng_core::backend::ByteStream;
use cng_providers::{HttpClient, ReqwestClient, Timeouts};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::sync::mpsc;

pub type Body = BoxBody<Bytes, Infallible>;

pub const TOKEN: &str = "cf-test-token-SECRET-0123456789";

/// One request as the server saw it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: http::Method,
    pub path: String,
    pub headers: http::HeaderMap,
    pub body: Bytes,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

pub struct Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Server {
    /// Serves `handler(attempt, request)` (attempt counts from 0 across connections).
    pub async fn start<F, Fut>(handler: F) -> Server
    where
        F: Fn(usize, Recorded) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<Body>> + Send + 'static,
    {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let handler = Arc::new(handler);
        let recorded = requests.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let handler = handler.clone();
                let recorded = recorded.clone();
                let counter = counter.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                            let handler = handler.clone();
                            let recorded = recorded.clone();
                            let counter = counter.clone();
                            async move {
                                let (parts, body) = req.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                let rec = Recorded {
                                    method: parts.method,
                                    path: parts
                                        .uri
                                        .path_and_query()
                                        .map(|p| p.as_str().to_string())
                                        .unwrap_or_default(),
                                    headers: parts.headers,
                                    body,
                                };
                                recorded.lock().unwrap().push(rec.clone());
                                let n = counter.fetch_add(1, Ordering::SeqCst);
                                Ok::<_, Infallible>(handler(n, rec).await)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Server {
            addr,
            requests,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn hits(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    pub fn request(&self, i: usize) -> Recorded {
        self.requests.lock().unwrap()[i].clone()
    }
}

pub fn raw(status: u16, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(body.into()).boxed())
        .unwrap()
}

pub fn json(status: u16, v: serde_json::Value) -> Response<Body> {
    raw(status, "application/json", serde_json::to_vec(&v).unwrap())
}

/// A Workers AI success envelope around `result`.
pub fn envelope(result: serde_json::Value) -> Response<Body> {
    json(
        200,
        serde_json::json!({"result": result, "success": true, "errors": [], "messages": []}),
    )
}

/// A Workers AI error envelope.
pub fn envelope_error(status: u16, code: u64, message: &str) -> Response<Body> {
    json(
        status,
        serde_json::json!({"result": null, "success": false,
            "errors": [{"code": code, "message": message}], "messages": []}),
    )
}

pub fn with_header(mut resp: Response<Body>, name: &'static str, value: &str) -> Response<Body> {
    resp.headers_mut()
        .insert(name, http::HeaderValue::from_str(value).unwrap());
    resp
}

/// A response whose body is fed chunk by chunk through the returned sender.
pub fn channel(status: u16, content_type: &str) -> (Response<Body>, mpsc::Sender<Bytes>) {
    let (tx, rx) = mpsc::channel::<Bytes>(16);
    let stream = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<_, Infallible>(Frame::data(b)), rx))
    });
    let resp = Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(BodyExt::boxed(StreamBody::new(stream)))
        .unwrap();
    (resp, tx)
}

pub fn timeouts(first_byte_ms: u64, idle_ms: u64) -> Timeouts {
    Timeouts {
        connect: Duration::from_secs(1),
        first_byte: Duration::from_millis(first_byte_ms),
        idle: Duration::from_millis(idle_ms),
    }
}

pub fn client() -> ReqwestClient {
    ReqwestClient::new(timeouts(2000, 2000)).unwrap()
}

/// Sends through `inner` but records backoff sleeps instead of sleeping.
#[derive(Debug, Clone)]
pub struct Recording<H> {
    pub inner: H,
    pub sleeps: Arc<Mutex<Vec<Duration>>>,
}

impl<H> Recording<H> {
    pub fn new(inner: H) -> Self {
        Self {
            inner,
            sleeps: Arc::default(),
        }
    }

    pub fn sleeps(&self) -> Vec<Duration> {
        self.sleeps.lock().unwrap().clone()
    }
}

impl<H: HttpClient> HttpClient for Recording<H> {
    async fn send(&self, req: http::Request<Bytes>) -> Result<http::Response<ByteStream>, Error> {
        self.inner.send(req).await
    }

    async fn sleep(&self, d: Duration) {
        self.sleeps.lock().unwrap().push(d);
    }
}
