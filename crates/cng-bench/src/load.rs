//! The load generator: N keep-alive HTTP/1.1 connections, each sending one request
//! after the other for a fixed time, timing every request (and, for streams, the first
//! body byte). Closed-loop on purpose: requests/s at concurrency N is what N clients
//! that wait for their answers get.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST, HeaderName, HeaderValue};
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinSet;

/// What to send, and how to tell a good answer.
#[derive(Debug, Clone)]
pub struct Spec {
    pub addr: SocketAddr,
    pub path: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
    pub body: Bytes,
    pub stream: bool,
}

/// The outcome of one phase.
#[derive(Debug, Default)]
pub struct Phase {
    pub ok: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    /// Whole request (until the last body byte), µs, sorted.
    pub latency_us: Vec<u32>,
    /// Until the first body byte, µs, sorted (streams only).
    pub ttfb_us: Vec<u32>,
}

impl Phase {
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// The `q` quantile (0..=1) of sorted values, in µs.
pub fn quantile(sorted: &[u32], q: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted.get(i).copied()
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = stream.set_nodelay(true);
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

fn request(spec: &Spec) -> Result<Request<Full<Bytes>>, String> {
    let mut b = Request::builder()
        .method(Method::POST)
        .uri(spec.path.as_str())
        .header(HOST, spec.addr.to_string())
        .header(CONTENT_TYPE, "application/json");
    for (k, v) in &spec.headers {
        b = b.header(k, v);
    }
    b.body(Full::new(spec.body.clone()))
        .map_err(|e| e.to_string())
}

/// One request: (total µs, first-byte µs).
async fn one(sender: &mut Sender, spec: &Spec) -> Result<(u32, u32), String> {
    let req = request(spec)?;
    sender.ready().await.map_err(|e| e.to_string())?;
    let t0 = Instant::now();
    let resp = sender.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let mut body = resp.into_body();
    let mut first = None;
    let mut tail: Vec<u8> = Vec::new();
    let mut all: Vec<u8> = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| e.to_string())?;
        if let Ok(data) = frame.into_data() {
            if first.is_none() && !data.is_empty() {
                first = Some(t0.elapsed());
            }
            if status.is_success() {
                tail.extend_from_slice(&data);
                let keep = tail.len().saturating_sub(64);
                tail.drain(..keep);
            } else if all.len() < 2048 {
                all.extend_from_slice(&data);
            }
        }
    }
    let total = t0.elapsed();
    if !status.is_success() {
        return Err(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(&all)
                .chars()
                .take(300)
                .collect::<String>()
        ));
    }
    if spec.stream {
        let tail = String::from_utf8_lossy(&tail);
        if !tail.trim_end().ends_with("data: [DONE]") {
            return Err(format!("stream did not end with [DONE]: …{tail}"));
        }
    }
    let us = |d: Duration| u32::try_from(d.as_micros()).unwrap_or(u32::MAX);
    Ok((us(total), us(first.unwrap_or(total))))
}

/// Runs `concurrency` closed-loop clients for `duration`.
pub async fn run(spec: Arc<Spec>, concurrency: usize, duration: Duration) -> Phase {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = JoinSet::new();
    for _ in 0..concurrency {
        let spec = Arc::clone(&spec);
        set.spawn(async move {
            let mut p = Phase::default();
            let mut sender: Option<Sender> = None;
            while Instant::now() < deadline {
                let s = match sender.as_mut() {
                    Some(s) => s,
                    None => match connect(spec.addr).await {
                        Ok(s) => sender.insert(s),
                        Err(e) => {
                            p.errors += 1;
                            p.first_error.get_or_insert(e);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                            continue;
                        }
                    },
                };
                match one(s, &spec).await {
                    Ok((total, first)) => {
                        p.ok += 1;
                        p.latency_us.push(total);
                        if spec.stream {
                            p.ttfb_us.push(first);
                        }
                    }
                    Err(e) => {
                        p.errors += 1;
                        p.first_error.get_or_insert(e);
                        sender = None;
                        // A failing target must not turn the run into a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            p
        });
    }
    let mut total = Phase::default();
    while let Some(res) = set.join_next().await {
        match res {
            Ok(p) => {
                total.ok += p.ok;
                total.errors += p.errors;
                if total.first_error.is_none() {
                    total.first_error = p.first_error;
                }
                total.latency_us.extend(p.latency_us);
                total.ttfb_us.extend(p.ttfb_us);
            }
            Err(e) => {
                total.errors += 1;
                total.first_error.get_or_insert(e.to_string());
            }
        }
    }
    total.elapsed = start.elapsed();
    total.latency_us.sort_unstable();
    total.ttfb_us.sort_unstable();
    total
}

/// One request, for a readiness check or a smoke test: Ok(()) on a good answer.
pub async fn probe(spec: &Spec) -> Result<(), String> {
    let mut s = connect(spec.addr).await?;
    one(&mut s, spec).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(quantile(&v, 0.5), Some(51));
        assert_eq!(quantile(&v, 0.99), Some(99));
        assert_eq!(quantile(&[], 0.5), None);
    }
}
