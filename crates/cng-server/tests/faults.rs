//! Fault injection and abuse, end to end: the real server (in-process, or the `cng`
//! binary where a crash or the logs are the point) in front of the fake upstream or a
//! raw scripted TCP upstream that misbehaves on purpose.
//!
//! Every scenario checks three things: the documented client-visible result (the table
//! in docs/reliability.md), that nothing hangs (every wait is bounded), and that nothing
//! leaks: after the run the server holds no connection and no request
//! ([`cng_server::serve::InFlight`]) and the upstream connections it opened are closed.
//!
//! Adding a scenario: script the upstream with [`RawUpstream`] (or a `!directive` of
//! the fake upstream), send the request with [`Srv::post`], assert the answer, then
//! `srv.settled().await`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code"
)]

use std::collections::HashSet;
use std::future::Future;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cng_server::cli::ServeArgs;
use cng_server::{Running, UpstreamEnv};
use cng_testkit::{FakeUpstream, fixtures_dir};
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const ADMIN: &str = "cng-faults-admin-key-0000000000000000000000000";
const TOKEN: &str = "cf-token-faults-secret";
/// No scenario may take longer than this.
const BOUND: Duration = Duration::from_secs(20);

// ---------------------------------------------------------------------------------------
// A raw upstream that misbehaves on purpose

type Script = Arc<dyn Fn(TcpStream) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A TCP server that reads one request per connection, then runs a script on the
/// socket. Counts connections still open (closed = the peer hung up, or the script
/// ended), so a test can see the gateway let go of the upstream.
struct RawUpstream {
    addr: SocketAddr,
    open: Arc<AtomicUsize>,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for RawUpstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Reads one HTTP request head and its Content-Length body.
async fn read_request(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let Ok(n) = s.read(&mut chunk).await else {
            return buf;
        };
        if n == 0 {
            return buf;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            while buf.len() < end + 4 + len {
                match s.read(&mut chunk).await {
                    Ok(0) | Err(_) => return buf,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            return buf;
        }
    }
}

/// Waits until the peer closes (or 30 s).
async fn until_peer_closes(s: &mut TcpStream) {
    let mut b = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match s.read(&mut b).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
}

impl RawUpstream {
    async fn start(script: Script) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let open = Arc::new(AtomicUsize::new(0));
        let accepted = Arc::new(AtomicUsize::new(0));
        let (o, a) = (open.clone(), accepted.clone());
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    continue;
                };
                o.fetch_add(1, Ordering::SeqCst);
                a.fetch_add(1, Ordering::SeqCst);
                let script = script.clone();
                let o = o.clone();
                tokio::spawn(async move {
                    let _ = read_request(&mut s).await;
                    script(s).await;
                    o.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        RawUpstream {
            addr,
            open,
            accepted,
            task,
        }
    }

    fn api_base(&self) -> String {
        format!("http://{}/client/v4", self.addr)
    }

    /// Waits (bounded) for every upstream connection to be closed.
    async fn all_closed(&self) {
        let t = Instant::now();
        while self.open.load(Ordering::SeqCst) > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "the gateway still holds {} upstream connection(s)",
                self.open.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Scripts answer one request per connection: `connection: close` keeps the gateway's
/// pool from sending a second one on it.
const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n";

fn chunk(data: &str) -> Vec<u8> {
    format!("{:x}\r\n{data}\r\n", data.len()).into_bytes()
}

fn event(text: &str) -> String {
    format!("data: {}\n\n", json!({"response": text}))
}

// ---------------------------------------------------------------------------------------
// The server under test

struct Srv {
    running: Running,
    _dir: tempfile::TempDir,
}

fn args(dir: &Path) -> ServeArgs {
    ServeArgs::local(dir.to_path_buf())
}

impl Srv {
    async fn start(api_base: String) -> Srv {
        let dir = tempfile::tempdir().unwrap();
        let env = UpstreamEnv {
            account_id: Some("acct".into()),
            api_token: Some(TOKEN.into()),
            api_base: Some(api_base),
            upstream_key: None,
            admin_key: Some(ADMIN.into()),
            master_key: None,
            analytics_token: None,
        };
        let running = cng_server::start(args(dir.path()), env).await.unwrap();
        Srv { running, _dir: dir }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.running.addr)
    }

    /// A client that keeps no idle connection, so "nothing open" is checkable.
    fn client() -> reqwest::Client {
        reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .timeout(BOUND)
            .build()
            .unwrap()
    }

    async fn post(&self, body: Value) -> reqwest::Response {
        Self::client()
            .post(self.url("/v1/chat/completions"))
            .bearer_auth(ADMIN)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    /// Waits (bounded) until the server holds no connection and no request.
    async fn settled(&self) {
        let f = self.running.in_flight();
        let t = Instant::now();
        while f.connections() > 0 || f.requests() > 0 {
            assert!(
                t.elapsed() < Duration::from_secs(5),
                "leak: {} connection(s), {} request(s) still in flight",
                f.connections(),
                f.requests()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

fn chat(text: &str, stream: bool) -> Value {
    json!({"model": "@cf/meta/llama-3.1-8b-instruct", "stream": stream,
           "messages": [{"role": "user", "content": text}]})
}

async fn error_of(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let v: Value = r.json().await.unwrap();
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{v}"
    );
    assert!(!v.to_string().contains(TOKEN), "no secret in errors: {v}");
    (status, v)
}

/// The SSE body, bounded in time.
async fn sse(r: reqwest::Response) -> String {
    let bytes = tokio::time::timeout(BOUND, r.bytes())
        .await
        .expect("the stream ends (no hang)")
        .unwrap();
    String::from_utf8(bytes.to_vec()).unwrap()
}

fn assert_error_then_done(sse: &str, code: &str) {
    assert!(sse.contains("\"error\""), "an error event: {sse}");
    assert!(sse.contains(code), "error code {code}: {sse}");
    assert!(sse.ends_with("data: [DONE]\n\n"), "ends with [DONE]: {sse}");
    for e in sse.split("\n\n").filter(|e| !e.is_empty()) {
        let d = e.strip_prefix("data: ").unwrap();
        if d != "[DONE]" {
            serde_json::from_str::<Value>(d).unwrap();
        }
    }
}

// ---------------------------------------------------------------------------------------
// Upstream faults

#[tokio::test]
async fn connection_refused_is_a_502_unreachable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let srv = Srv::start(format!("http://127.0.0.1:{port}/client/v4")).await;
    let t = Instant::now();
    for stream in [false, true] {
        let (status, v) = error_of(srv.post(chat("hello", stream)).await).await;
        assert_eq!(status, 502);
        assert_eq!(v["error"]["type"], "api_error");
        assert_eq!(v["error"]["code"], "upstream_unreachable");
    }
    assert!(t.elapsed() < Duration::from_secs(10), "retries are bounded");
    srv.settled().await;
}

#[tokio::test]
async fn reset_mid_stream_ends_with_an_error_event() {
    let up = RawUpstream::start(Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let _ = s.write_all(SSE_HEAD).await;
            for t in ["Hel", "lo"] {
                let _ = s.write_all(&chunk(&event(t))).await;
            }
            let _ = s.flush().await;
            tokio::time::sleep(Duration::from_millis(50)).await;
            // RST, not FIN.
            #[allow(deprecated, reason = "SO_LINGER 0 is how a test sends a reset")]
            let _ = s.set_linger(Some(Duration::ZERO));
            drop(s);
        })
    }))
    .await;
    let srv = Srv::start(up.api_base()).await;
    let r = srv.post(chat("hello", true)).await;
    assert_eq!(r.status(), 200);
    let body = sse(r).await;
    assert!(
        body.contains("\"content\":\"Hel\""),
        "what came before the reset is delivered: {body}"
    );
    assert_error_then_done(&body, "upstream");
    srv.settled().await;
    up.all_closed().await;
}

#[tokio::test]
async fn stalled_stream_is_cut_by_the_idle_timeout() {
    let up = RawUpstream::start(Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let _ = s.write_all(SSE_HEAD).await;
            let _ = s.write_all(&chunk(&event("one"))).await;
            // Then silence, with the connection open, until the gateway hangs up.
            until_peer_closes(&mut s).await;
        })
    }))
    .await;
    let srv = Srv::start(up.api_base()).await;
    let t = Instant::now();
    let body = sse(srv.post(chat("hello", true)).await).await;
    let took = t.elapsed();
    assert_error_then_done(&body, "upstream_timeout");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "idle timeout 1 s fired after {took:?}"
    );
    srv.settled().await;
    up.all_closed().await;
}

#[tokio::test]
async fn slow_trickle_under_the_idle_timeout_is_delivered_incrementally() {
    let up = RawUpstream::start(Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let _ = s.write_all(SSE_HEAD).await;
            for t in ["a", "b", "c", "d"] {
                let _ = s.write_all(&chunk(&event(t))).await;
                tokio::time::sleep(Duration::from_millis(400)).await;
            }
            let _ = s.write_all(&chunk("data: [DONE]\n\n")).await;
            let _ = s.write_all(b"0\r\n\r\n").await;
            until_peer_closes(&mut s).await;
        })
    }))
    .await;
    let srv = Srv::start(up.api_base()).await;
    let t = Instant::now();
    let r = srv.post(chat("hello", true)).await;
    let mut stream = r.bytes_stream();
    let mut first = None;
    let mut text = String::new();
    while let Some(b) = tokio::time::timeout(BOUND, stream.next()).await.unwrap() {
        first.get_or_insert(t.elapsed());
        text.push_str(&String::from_utf8_lossy(&b.unwrap()));
    }
    let total = t.elapsed();
    assert!(!text.contains("\"error\""), "{text}");
    assert!(text.ends_with("data: [DONE]\n\n"));
    assert!(
        first.unwrap() + Duration::from_millis(1000) < total,
        "first bytes at {first:?}, end at {total:?}: not buffered"
    );
    srv.settled().await;
}

#[tokio::test]
async fn storm_of_429_with_retry_after() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let t = Instant::now();
    let calls = (0..40).map(|i| {
        let srv = &srv;
        async move {
            let r = srv
                .post(chat(&format!("!status 429 3040 storm {i}"), i % 2 == 0))
                .await;
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let (status, v) = error_of(r).await;
            (status, v, retry_after)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for (status, v, retry_after) in &results {
        assert_eq!(*status, 429);
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert!(
            retry_after.is_some(),
            "the client is told when to come back"
        );
    }
    // A JSON request is tried 3 times (1 + 2 retries), a stream once (its answer may
    // already have started): cng does not amplify a storm.
    assert_eq!(fake.requests().len(), 20 * 3 + 20);
    assert!(t.elapsed() < BOUND, "honouring Retry-After stays bounded");
    srv.settled().await;
}

#[tokio::test]
async fn invalid_json_from_upstream_is_a_502() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let (status, v) = error_of(srv.post(chat("!garbage", false)).await).await;
    assert_eq!(status, 502);
    assert_eq!(v["error"]["type"], "api_error");
    srv.settled().await;
}

#[tokio::test]
async fn wrong_content_type_from_upstream() {
    let up = RawUpstream::start(Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let body = "<html><body>502 Bad Gateway (a proxy page)</body></html>";
            let head = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\nconnection: close\r\ncontent-length: {}\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes()).await;
            let _ = s.write_all(body.as_bytes()).await;
            until_peer_closes(&mut s).await;
        })
    }))
    .await;
    let srv = Srv::start(up.api_base()).await;
    // A JSON request answered with HTML: an OpenAI-shaped 502, never the HTML.
    let (status, v) = error_of(srv.post(chat("hello", false)).await).await;
    assert_eq!(status, 502, "{v}");
    assert!(!v.to_string().contains("<html>"));
    // A stream request answered with HTML: no `text/html` passes through as events.
    let r = srv.post(chat("hello", true)).await;
    let status = r.status().as_u16();
    let text = sse(r).await;
    assert!(!text.contains("<html>"), "{text}");
    if status == 200 {
        assert_error_then_done(&text, "upstream");
    } else {
        assert_eq!(status, 502, "{text}");
    }
    srv.settled().await;
}

/// An upstream that answers `status` with a JSON body of `size` bytes (as fast as the
/// gateway reads it).
fn oversized(status: &'static str, size: usize) -> Script {
    Arc::new(move |mut s: TcpStream| {
        Box::pin(async move {
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {size}\r\n\r\n{{\"result\":{{\"response\":\""
            );
            let _ = s.write_all(head.as_bytes()).await;
            let block = vec![b'a'; 64 * 1024];
            let mut sent = 0usize;
            while sent < size {
                if s.write_all(&block).await.is_err() {
                    break;
                }
                sent += block.len();
            }
            until_peer_closes(&mut s).await;
        })
    })
}

#[tokio::test]
async fn oversized_upstream_answers_are_refused_not_buffered() {
    // A 70 MB JSON answer (the limit is 64 MiB), and an error body of 10 MB (the
    // gateway reads at most 1 MiB of an error).
    for (status, size) in [
        ("200 OK", 70usize << 20),
        ("500 Internal Server Error", 10 << 20),
    ] {
        let up = RawUpstream::start(oversized(status, size)).await;
        let srv = Srv::start(up.api_base()).await;
        let t = Instant::now();
        let (code, v) = error_of(srv.post(chat("hello", false)).await).await;
        assert_eq!(code, 502, "{status}: {v}");
        assert!(t.elapsed() < BOUND);
        srv.settled().await;
        up.all_closed().await;
    }
}

#[tokio::test]
async fn a_client_that_goes_away_mid_stream_releases_the_upstream() {
    let up = RawUpstream::start(Arc::new(|mut s: TcpStream| {
        Box::pin(async move {
            let _ = s.write_all(SSE_HEAD).await;
            // Events forever (every 100 ms) until the gateway hangs up.
            for i in 0..600 {
                if s.write_all(&chunk(&event(&format!("{i} ")))).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    }))
    .await;
    let srv = Srv::start(up.api_base()).await;
    let r = srv.post(chat("hello", true)).await;
    let mut stream = r.bytes_stream();
    let _ = stream.next().await.unwrap().unwrap();
    drop(stream);
    srv.settled().await;
    up.all_closed().await;
    assert_eq!(up.accepted.load(Ordering::SeqCst), 1);
}

// ---------------------------------------------------------------------------------------
// Abuse at the HTTP layer (raw TCP against hyper)

/// Sends raw bytes, returns everything the server answers until it closes (or 3 s of
/// silence).
async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let mut b = [0u8; 8192];
    loop {
        match tokio::time::timeout(Duration::from_secs(3), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => out.extend_from_slice(&b[..n]),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn request_smuggling_and_header_injection_are_refused() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let addr = srv.running.addr;
    let smuggled = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    let attacks: Vec<(&str, String)> = vec![
        (
            "CL.TE",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "two Content-Lengths",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 40\r\n\r\n{{}}{smuggled}"),
        ),
        (
            "TE obfuscated",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "TE not last chunked",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n{smuggled}"),
        ),
        (
            "obs-fold",
            "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\r\n b\r\nContent-Length: 0\r\n\r\n".to_string(),
        ),
        (
            "NUL in a header value",
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\0b\r\n\r\n".to_string(),
        ),
        (
            "chunk size overflow",
            format!("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff1\r\n{{}}\r\n0\r\n\r\n"),
        ),
        (
            "space before colon",
            "GET /health HTTP/1.1\r\nHost: x\r\nContent-Length : 5\r\n\r\nhello".to_string(),
        ),
    ];
    for (name, attack) in &attacks {
        let answer = raw(addr, attack.as_bytes()).await;
        let responses = answer.matches("HTTP/1.1 ").count();
        let status: Option<u16> = answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok());
        // Refused (400/501, or the connection closed) — and never a second, smuggled
        // request answered on the same connection.
        assert!(
            status.is_none_or(|s| s == 400 || s == 501 || s == 413),
            "{name}: {answer}"
        );
        assert!(
            responses <= 1,
            "{name}: a smuggled request was answered: {answer}"
        );
        assert!(
            !answer.contains("\"status\":\"ok\"") && !answer.contains("Injected"),
            "{name}: {answer}"
        );
    }
    assert!(fake.requests().is_empty(), "nothing reached the upstream");

    // A bare LF ends a header line (RFC 9112 §2.2 lets a recipient accept it): the
    // "injected" text is a header of its own, never part of a value cng echoes.
    let answer = raw(
        addr,
        b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: abc\nInjected: 1\r\n\r\n",
    )
    .await;
    assert!(
        answer.starts_with("HTTP/1.1 200 ") || answer.starts_with("HTTP/1.1 400 "),
        "{answer}"
    );
    assert!(
        !answer.to_ascii_lowercase().contains("injected"),
        "{answer}"
    );
    if answer.starts_with("HTTP/1.1 200 ") {
        assert!(answer.contains("x-request-id: abc\r\n"), "{answer}");
    }

    // Header values cng echoes are never reflected raw: a request id that is not
    // plain printable ASCII (or is too long) is replaced by a fresh one.
    let long = "a".repeat(300);
    for id in ["<script>", long.as_str()] {
        let r = Srv::client()
            .get(srv.url("/health"))
            .header("x-request-id", id)
            .send()
            .await
            .unwrap();
        let echoed = r.headers()["x-request-id"].to_str().unwrap().to_string();
        assert!(echoed.len() <= 128, "{echoed}");
    }
    // A model name that tries to walk the upstream URL path is refused before it is sent.
    for model in [
        "@cf/meta/../../../../accounts/other/ai/run/@cf/meta/llama-3.1-8b-instruct",
        "@cf/meta/llama-3.1-8b-instruct?x=1",
        "@cf/meta/llama-3.1-8b-instruct#frag",
        "@cf/meta/llama-3.1-8b-instruct%2F..%2F..",
    ] {
        let r = srv
            .post(json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}))
            .await;
        let (status, _) = error_of(r).await;
        assert!(status == 400 || status == 404, "{model}: {status}");
    }
    assert!(fake.requests().is_empty(), "nothing reached the upstream");
    srv.settled().await;
}

#[tokio::test]
async fn path_traversal_on_img_finds_nothing() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let addr = srv.running.addr;
    for path in [
        "/img/../../../../etc/passwd",
        "/img/..%2F..%2F..%2Fetc%2Fpasswd",
        "/img/%2e%2e/%2e%2e/cng.sqlite3",
        "/img/....//....//cng.sqlite3",
        "/img/..\\..\\cng.sqlite3",
        "/img/cng.sqlite3",
        "/img/%00",
        "/img//etc/passwd",
    ] {
        let answer = raw(
            addr,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await;
        let status: u16 = answer
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        assert!(
            status == 400 || status == 404,
            "{path}: expected 400/404, got {answer}"
        );
        assert!(
            !answer.contains("root:") && !answer.contains("SQLite format"),
            "{path}"
        );
        assert!(
            answer.contains("\"error\""),
            "{path}: an OpenAI-shaped error: {answer}"
        );
    }
    srv.settled().await;
}

/// Sends a huge body slowly; returns (status line, bytes sent when the answer came,
/// time to the answer).
async fn slow_huge_body(
    addr: SocketAddr,
    head: String,
    chunked: bool,
) -> (String, usize, Duration) {
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    let sent = Arc::new(AtomicUsize::new(0));
    let sent_w = sent.clone();
    let writer = tokio::spawn(async move {
        if wr.write_all(head.as_bytes()).await.is_err() {
            return;
        }
        let block = vec![b' '; 16 * 1024];
        let framed: Vec<u8> = if chunked {
            let mut v = format!("{:x}\r\n", block.len()).into_bytes();
            v.extend_from_slice(&block);
            v.extend_from_slice(b"\r\n");
            v
        } else {
            block
        };
        // Up to 1 GB, 16 KiB every 5 ms (about 3 MB/s): the sender is slow.
        while sent_w.load(Ordering::SeqCst) < 1 << 30 {
            if wr.write_all(&framed).await.is_err() {
                return;
            }
            sent_w.fetch_add(framed.len(), Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let t = Instant::now();
    let mut answer = Vec::new();
    let mut b = [0u8; 4096];
    let mut at = None;
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut b)).await {
        if n == 0 {
            break;
        }
        at.get_or_insert((sent.load(Ordering::SeqCst), t.elapsed()));
        answer.extend_from_slice(&b[..n]);
        if answer.windows(4).any(|w| w == b"\r\n\r\n") {
            break;
        }
    }
    // The server stops reading: the writer fails (reset) long before 1 GB.
    let _ = tokio::time::timeout(Duration::from_secs(10), writer).await;
    let (bytes, took) = at.unwrap_or((sent.load(Ordering::SeqCst), t.elapsed()));
    let line = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert!(
        sent.load(Ordering::SeqCst) < 64 << 20,
        "the server kept reading: {} bytes accepted",
        sent.load(Ordering::SeqCst)
    );
    (line, bytes, took)
}

#[tokio::test]
async fn a_1gb_body_from_a_slow_sender_is_refused_early() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let addr = srv.running.addr;
    // Declared size over the limit (64 KiB here): 413 before any body byte is read.
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    let (line, sent, took) = slow_huge_body(addr, head, false).await;
    assert!(line.contains(" 413 "), "{line}");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(sent < 1 << 20, "answered after {sent} bytes");
    // Chunked (no declared size): refused once the limit is passed.
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ADMIN}\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
    );
    let (line, sent, took) = slow_huge_body(addr, head, true).await;
    assert!(line.contains(" 413 "), "{line}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(sent < 1 << 20, "answered after {sent} bytes");
    // Without a key, nothing is read at all: 401 first.
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1u64 << 30
    );
    let (line, _, _) = slow_huge_body(addr, head, false).await;
    assert!(line.contains(" 401 "), "{line}");
    assert!(fake.requests().is_empty());
    srv.settled().await;
}

#[tokio::test]
async fn slow_headers_are_cut_off() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let srv = Srv::start(fake.cf_api_base()).await;
    let mut s = TcpStream::connect(srv.running.addr).await.unwrap();
    s.write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let t = Instant::now();
    // One header byte a second: a slowloris client never finishes its headers.
    let closed = loop {
        if t.elapsed() > Duration::from_secs(30) {
            break false;
        }
        if s.write_all(b"X").await.is_err() {
            break true;
        }
        let mut b = [0u8; 512];
        match tokio::time::timeout(Duration::from_secs(1), s.read(&mut b)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break true,
            Ok(Ok(_)) => break true, // an error answer, then close
            Err(_) => {}
        }
    };
    assert!(
        closed,
        "a client that never finishes its headers is cut off"
    );
    assert!(
        t.elapsed() < Duration::from_secs(cng_server::serve::HEADER_READ_TIMEOUT.as_secs() + 5)
    );
    srv.settled().await;
}

// ---------------------------------------------------------------------------------------
// The binary: crash safety, timing and logs

const CNG: &str = env!("CARGO_BIN_EXE_cng");

/// `cng serve` as a child process; returns it and its address (read from stdout).
fn spawn_server(data: &Path, log: &Path, api_base: &str) -> (Child, SocketAddr) {
    let mut child = Command::new(CNG)
        .args(["serve", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env("CNG_ADMIN_KEY", ADMIN)
        .env("CLOUDFLARE_ACCOUNT_ID", "acct")
        .env("CLOUDFLARE_API_TOKEN", TOKEN)
        .env("CNG_CF_API_BASE", api_base)
        .env("CNG_LOG", "debug")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let addr = loop {
        let line = lines.next().expect("cng printed its address").unwrap();
        if let Some(url) = line.split("http://").nth(1) {
            break url.trim().parse().unwrap();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, addr)
}

fn create_key(data: &Path, name: &str) -> Child {
    Command::new(CNG)
        .args(["keys", "create", "--name", name, "--data"])
        .arg(data)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::test]
async fn kill_9_during_concurrent_key_creation_loses_no_acknowledged_write() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cng.log");
    let data = dir.path().join("data");
    let mut acknowledged: Vec<(String, String)> = Vec::new();
    let mut killed = 0;
    for round in 0..3u64 {
        let (mut server, addr) = spawn_server(&data, &log, &fake.cf_api_base());
        // Readers on the server while the writers run.
        let load = tokio::spawn(async move {
            let c = reqwest::Client::new();
            for _ in 0..200 {
                let _ = c
                    .get(format!("http://{addr}/v1/models"))
                    .bearer_auth(ADMIN)
                    .send()
                    .await;
            }
        });
        let mut children: Vec<(String, Child)> = (0..16)
            .map(|i| {
                let name = format!("crash-{round}-{i}");
                let child = create_key(&data, &name);
                (name, child)
            })
            .collect();
        // Kill the server and every second writer at staggered moments mid-flight.
        tokio::time::sleep(Duration::from_millis([3, 10, 25][round as usize])).await;
        server.kill().unwrap();
        for (i, (_, c)) in children.iter_mut().enumerate() {
            if i % 2 == 0 {
                let _ = c.kill();
            }
        }
        let _ = server.wait();
        load.abort();
        for (name, c) in children {
            let out = c.wait_with_output().unwrap();
            if out.status.code().is_none() {
                killed += 1;
            }
            if out.status.success() {
                let key = String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .unwrap()
                    .trim()
                    .to_string();
                assert!(key.starts_with("cng-"));
                acknowledged.push((name, key));
            }
        }
    }
    assert!(!acknowledged.is_empty(), "some writes were acknowledged");
    // The store opens and is sound.
    let conn = rusqlite::Connection::open(data.join(cng_server::store::DB_FILE)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    // Restarted, the server knows every acknowledged key.
    let (mut server, addr) = spawn_server(&data, &log, &fake.cf_api_base());
    let c = reqwest::Client::new();
    for (name, key) in &acknowledged {
        let r = c
            .get(format!("http://{addr}/v1/models"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        assert_eq!(
            r.status(),
            200,
            "acknowledged key {name} works after the crash"
        );
    }
    let listed = Command::new(CNG)
        .args(["keys", "list", "--data"])
        .arg(&data)
        .output()
        .unwrap();
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout);
    for (name, _) in &acknowledged {
        assert!(listed.contains(name.as_str()), "{name} is listed");
    }
    server.kill().unwrap();
    let _ = server.wait();
    eprintln!(
        "{} acknowledged writes survived kill -9 ({killed} writers killed mid-flight)",
        acknowledged.len()
    );
}

fn random_key(rng: &mut u64) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut s = String::from("cng-");
    for _ in 0..43 {
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        s.push(ALPHABET[(*rng % 64) as usize] as char);
    }
    s
}

/// Mann–Whitney U z-score of two samples (ties ranked by position; fine for µs data).
fn mann_whitney_z(a: &[u32], b: &[u32]) -> f64 {
    let mut all: Vec<(u32, bool)> = a
        .iter()
        .map(|&v| (v, true))
        .chain(b.iter().map(|&v| (v, false)))
        .collect();
    all.sort_unstable();
    let r1: f64 = all
        .iter()
        .enumerate()
        .filter(|(_, (_, is_a))| *is_a)
        .map(|(i, _)| (i + 1) as f64)
        .sum();
    let (n1, n2) = (a.len() as f64, b.len() as f64);
    let u1 = r1 - n1 * (n1 + 1.0) / 2.0;
    let mean = n1 * n2 / 2.0;
    let sd = (n1 * n2 * (n1 + n2 + 1.0) / 12.0).sqrt();
    (u1 - mean) / sd
}

fn median(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

#[tokio::test]
async fn ten_thousand_invalid_keys_same_timing_and_never_logged() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let log = dir.path().join("cng.log");
    let created = create_key(&data, "real").wait_with_output().unwrap();
    let real = String::from_utf8_lossy(&created.stdout)
        .lines()
        .last()
        .unwrap()
        .trim()
        .to_string();
    let (mut server, addr) = spawn_server(&data, &log, &fake.cf_api_base());
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(std::process::id());
    // "Wrong": the real key with one character changed (same prefix, same length).
    // "Unknown": a random well-formed key.
    let mut keys: Vec<(bool, String)> = Vec::with_capacity(10_000);
    for i in 0..10_000 {
        if i % 2 == 0 {
            let mut k: Vec<u8> = real.clone().into_bytes();
            let pos = 4 + (i / 2) % 43;
            k[pos] = if k[pos] == b'A' { b'B' } else { b'A' };
            keys.push((true, String::from_utf8(k).unwrap()));
        } else {
            keys.push((false, random_key(&mut rng)));
        }
    }
    let keys = Arc::new(keys);
    let next = Arc::new(AtomicUsize::new(0));
    let workers = (0..4).map(|_| {
        let keys = keys.clone();
        let next = next.clone();
        tokio::spawn(async move {
            let c = reqwest::Client::new();
            let mut wrong = Vec::new();
            let mut unknown = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((is_wrong, key)) = keys.get(i) else {
                    break;
                };
                let req = c
                    .post(format!("http://{addr}/v1/chat/completions"))
                    .header("content-type", "application/json")
                    .body(r#"{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}"#);
                // Every way a key can be sent.
                let req = match i % 3 {
                    0 => req.bearer_auth(key),
                    1 => req.header("x-api-key", key),
                    _ => req.header("api-key", key),
                };
                let t = Instant::now();
                let r = req.send().await.unwrap();
                let status = r.status().as_u16();
                let body = r.bytes().await.unwrap();
                let us = t.elapsed().as_micros() as u32;
                assert_eq!(status, 401);
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_eq!(v["error"]["code"], "invalid_api_key");
                assert!(!String::from_utf8_lossy(&body).contains(key.as_str()));
                if *is_wrong {
                    wrong.push(us)
                } else {
                    unknown.push(us)
                }
            }
            (wrong, unknown)
        })
    });
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    for w in futures_util::future::join_all(workers).await {
        let (a, b) = w.unwrap();
        wrong.extend(a);
        unknown.extend(b);
    }
    assert_eq!(wrong.len() + unknown.len(), 10_000);
    let z = mann_whitney_z(&wrong, &unknown);
    let (mw, mu) = (median(&mut wrong), median(&mut unknown));
    eprintln!(
        "invalid keys: wrong median {mw} µs, unknown median {mu} µs, Mann-Whitney z = {z:.2}"
    );
    // No measurable difference: medians within 10% (or 50 µs) of each other. (A
    // byte-by-byte comparison would show up as a difference growing with the length
    // of the matching prefix; cng looks keys up by SHA-256 hash, so there is none.)
    let diff = mw.abs_diff(mu);
    assert!(
        diff <= 50 || f64::from(diff) <= 0.10 * f64::from(mw.max(mu)),
        "wrong {mw} µs vs unknown {mu} µs (z = {z:.2})"
    );
    // Then: no log line holds a key (or any long piece of one).
    server.kill().unwrap();
    let _ = server.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() >= 10_000, "one log line per request");
    let secrets: HashSet<&str> = keys
        .iter()
        .map(|(_, k)| &k[4..])
        .chain([&real[4..], &ADMIN[4..], TOKEN])
        .collect();
    for line in text.lines() {
        for token in line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_')) {
            let token = token.strip_prefix("cng-").unwrap_or(token);
            assert!(!secrets.contains(token), "a key in the log: {line}");
        }
        for (_, k) in keys.iter().take(50) {
            assert!(
                !line.contains(&k[4..20]),
                "part of a key in the log: {line}"
            );
        }
    }
}

/// Config writes (`PUT /api/config`, read-modify-write with the version) under kill -9:
/// every write that was answered 2xx is in the document after a restart, because each
/// acknowledged document was based on the one before it.
#[tokio::test]
async fn kill_9_during_concurrent_config_writes_loses_no_acknowledged_write() {
    let fake = FakeUpstream::start(&fixtures_dir(), 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cng.log");
    let data = dir.path().join("data");
    let mut acknowledged: Vec<String> = Vec::new();
    for round in 0..3u64 {
        let (mut server, addr) = spawn_server(&data, &log, &fake.cf_api_base());
        let writers: Vec<_> = (0..6)
            .map(|w| {
                tokio::spawn(async move {
                    let c = reqwest::Client::new();
                    let mut acked = Vec::new();
                    for n in 0..1000 {
                        let url = format!("http://{addr}/api/config");
                        let Ok(r) = c.get(&url).bearer_auth(ADMIN).send().await else {
                            break;
                        };
                        let Ok(mut doc) = r.json::<Value>().await else {
                            break;
                        };
                        let alias = format!("crash-{round}-{w}-{n}");
                        doc["aliases"][&alias] = json!("@cf/meta/llama-3.1-8b-instruct");
                        match c.put(&url).bearer_auth(ADMIN).json(&doc).send().await {
                            Ok(r) if r.status().is_success() => acked.push(alias),
                            Ok(r) if r.status() == 409 => {}
                            Ok(r) => panic!("unexpected {}", r.status()),
                            Err(_) => break,
                        }
                    }
                    acked
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis([40, 120, 300][round as usize])).await;
        server.kill().unwrap();
        let _ = server.wait();
        for w in writers {
            acknowledged.extend(w.await.unwrap());
        }
    }
    assert!(!acknowledged.is_empty(), "some writes were acknowledged");
    let conn = rusqlite::Connection::open(data.join(cng_server::store::DB_FILE)).unwrap();
    let check: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(check, "ok");
    drop(conn);
    let (mut server, addr) = spawn_server(&data, &log, &fake.cf_api_base());
    let doc: Value = reqwest::Client::new()
        .get(format!("http://{addr}/api/config"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for alias in &acknowledged {
        assert!(
            doc["aliases"].get(alias).is_some(),
            "acknowledged alias {alias} survived kill -9"
        );
    }
    server.kill().unwrap();
    let _ = server.wait();
    eprintln!(
        "{} acknowledged config writes survived kill -9",
        acknowledged.len()
    );
}
