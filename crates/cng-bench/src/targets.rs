//! The processes the harness drives: its mock upstream, `cng` (once per upstream
//! shape), and the peer gateways when installed (LiteLLM proxy, Portkey gateway). Each
//! is a child process with its output in the run's directory; each target names the
//! process whose CPU and memory it is charged with and the direct baseline it is
//! compared to.

use std::fs::File;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{AUTHORIZATION, HeaderName, HeaderValue};

use crate::load::{self, Spec};

/// The model cng and the Workers AI peers are asked for (legacy chat schema).
pub const WA_MODEL: &str = "@cf/meta/llama-3.1-8b-instruct";
/// The model name on OpenAI-shaped routes.
pub const OA_MODEL: &str = "bench-model";
/// The account id in the mock's Workers AI paths.
pub const ACCOUNT: &str = "bench";
/// What the upstream is given as its token (never checked by the mock).
pub const UPSTREAM_TOKEN: &str = "bench-upstream-token";
/// LiteLLM's master key (clients must send it, like cng's keys).
pub const LITELLM_MASTER: &str = "sk-bench-litellm-master";

/// Upstream shape a target speaks to (and the direct baseline it is compared to).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    WorkersAi,
    OpenAi,
}

impl Shape {
    pub fn baseline(self) -> &'static str {
        match self {
            Shape::WorkersAi => "direct-workers-ai",
            Shape::OpenAi => "direct-openai",
        }
    }
}

/// A running child process, killed on drop.
pub struct Proc {
    pub name: String,
    pub child: Child,
    pub log: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Last lines of its log, for error messages.
    pub fn log_tail(&self, n: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    }

    pub fn exited(&mut self) -> Option<String> {
        match self.child.try_wait() {
            Ok(Some(status)) => Some(format!("exited with {status}")),
            _ => None,
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // Every child is also its own process group leader: peers fork workers.
        let pid = self.child.id();
        let _ = Command::new("kill")
            .args(["-s", "TERM", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(3);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{pid}")])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A free loopback port (bound, then released for the child to take).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

pub fn spawn(name: &str, mut cmd: Command, out_dir: &Path) -> Result<Proc, String> {
    use std::os::unix::process::CommandExt;
    let log = out_dir.join(format!("{name}.log"));
    let f = File::create(&log).map_err(|e| format!("{}: {e}", log.display()))?;
    let f2 = f.try_clone().map_err(|e| e.to_string())?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(f))
        .stderr(Stdio::from(f2))
        .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start {name}: {e}"))?;
    Ok(Proc {
        name: name.to_string(),
        child,
        log,
    })
}

/// One thing to measure: a route through a process.
pub struct Target {
    pub name: String,
    pub shape: Shape,
    /// Direct targets are the baseline; they are charged with the mock's process.
    pub direct: bool,
    pub json: Arc<Spec>,
    pub stream: Arc<Spec>,
}

fn header(name: &'static str, value: &str) -> Result<(HeaderName, HeaderValue), String> {
    Ok((
        HeaderName::from_static(name),
        HeaderValue::from_str(value).map_err(|e| e.to_string())?,
    ))
}

fn bearer(value: &str) -> Result<(HeaderName, HeaderValue), String> {
    Ok((
        AUTHORIZATION,
        HeaderValue::from_str(&format!("Bearer {value}")).map_err(|e| e.to_string())?,
    ))
}

/// The chat request every target gets (OpenAI shape), with or without `stream`.
pub fn openai_body(model: &str, stream: bool) -> Bytes {
    let body = serde_json::json!({
        "model": model,
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello in one short sentence."}
        ],
        "max_tokens": 64,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

/// The same request in Workers AI's own input shape (for the direct baseline).
pub fn workers_ai_body(stream: bool) -> Bytes {
    let body = serde_json::json!({
        "messages": [
            {"role": "system", "content": "You are a concise assistant."},
            {"role": "user", "content": "Say hello in one short sentence."}
        ],
        "max_tokens": 64,
        "stream": stream,
    });
    Bytes::from(body.to_string())
}

fn pair(
    name: &str,
    shape: Shape,
    direct: bool,
    addr: SocketAddr,
    path: &str,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: impl Fn(bool) -> Bytes,
) -> Target {
    let spec = |stream: bool| {
        Arc::new(Spec {
            addr,
            path: path.to_string(),
            headers: headers.clone(),
            body: body(stream),
            stream,
        })
    };
    Target {
        name: name.to_string(),
        shape,
        direct,
        json: spec(false),
        stream: spec(true),
    }
}

pub fn direct_targets(mock: SocketAddr) -> Result<Vec<Target>, String> {
    Ok(vec![
        pair(
            "direct-workers-ai",
            Shape::WorkersAi,
            true,
            mock,
            &format!("/client/v4/accounts/{ACCOUNT}/ai/run/{WA_MODEL}"),
            vec![bearer(UPSTREAM_TOKEN)?],
            workers_ai_body,
        ),
        pair(
            "direct-openai",
            Shape::OpenAi,
            true,
            mock,
            "/v1/chat/completions",
            vec![bearer(UPSTREAM_TOKEN)?],
            |s| openai_body(OA_MODEL, s),
        ),
    ])
}

/// `cng serve` in front of the mock, in the given shape, with a client key created by
/// `cng keys create` (so every request pays a real key lookup in the store).
pub fn start_cng(
    cng: &Path,
    shape: Shape,
    mock: SocketAddr,
    out_dir: &Path,
) -> Result<(Proc, Target), String> {
    let label = match shape {
        Shape::WorkersAi => "cng-workers-ai",
        Shape::OpenAi => "cng-openai",
    };
    let data = out_dir.join(format!("{label}-data"));
    let _ = std::fs::remove_dir_all(&data);
    let created = Command::new(cng)
        .args(["keys", "create", "--name", "bench", "--data"])
        .arg(&data)
        .output()
        .map_err(|e| format!("cannot run {}: {e}", cng.display()))?;
    if !created.status.success() {
        return Err(format!(
            "cng keys create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        ));
    }
    let key = String::from_utf8_lossy(&created.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .trim()
        .to_string();
    let port = free_port().map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(cng);
    cmd.arg("serve")
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data")
        .arg(&data)
        .env("CNG_ADMIN_KEY", "cng-bench-admin-key-not-used-by-the-load")
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT)
        .env("CLOUDFLARE_API_TOKEN", UPSTREAM_TOKEN)
        .env("CNG_CF_API_BASE", format!("http://{mock}/client/v4"))
        .env_remove("CNG_UPSTREAM")
        .env_remove("CNG_LOG");
    let model = match shape {
        Shape::WorkersAi => WA_MODEL,
        Shape::OpenAi => {
            cmd.arg("--upstream").arg(format!("http://{mock}/v1"));
            cmd.env("CNG_UPSTREAM_KEY", UPSTREAM_TOKEN);
            OA_MODEL
        }
    };
    let proc = spawn(label, cmd, out_dir)?;
    let target = pair(
        label,
        shape,
        false,
        addr,
        "/v1/chat/completions",
        vec![bearer(&key)?],
        |s| openai_body(model, s),
    );
    Ok((proc, target))
}

/// Where the peers are installed (`crates/cng-bench/peers/setup.sh`).
pub struct PeersDir(pub PathBuf);

impl PeersDir {
    /// Why a peer is not installed, if its setup wrote a reason.
    pub fn unavailable(&self, peer: &str) -> Option<String> {
        std::fs::read_to_string(self.0.join(format!("{peer}.unavailable")))
            .ok()
            .map(|s| s.trim().to_string())
    }
}

/// LiteLLM proxy with two routes: `bench-model` → the mock's OpenAI route, and
/// `@cf/meta/llama-3.1-8b-instruct` → its `cloudflare/` provider on the mock's Workers
/// AI route. One worker process, a master key, no database, no telemetry.
pub fn start_litellm(
    peers: &PeersDir,
    mock: SocketAddr,
    out_dir: &Path,
) -> Result<(Proc, Vec<Target>), String> {
    if let Some(why) = peers.unavailable("litellm") {
        return Err(why);
    }
    let bin = peers.0.join("litellm/bin/litellm");
    if !bin.exists() {
        return Err(format!(
            "not installed ({} is missing): run crates/cng-bench/peers/setup.sh",
            bin.display()
        ));
    }
    let config = out_dir.join("litellm.yaml");
    let yaml = format!(
        "model_list:\n\
         \x20 - model_name: {OA_MODEL}\n\
         \x20   litellm_params:\n\
         \x20     model: openai/{OA_MODEL}\n\
         \x20     api_base: http://{mock}/v1\n\
         \x20     api_key: {UPSTREAM_TOKEN}\n\
         \x20 - model_name: \"{WA_MODEL}\"\n\
         \x20   litellm_params:\n\
         \x20     model: \"cloudflare/{WA_MODEL}\"\n\
         \x20     api_base: http://{mock}/client/v4/accounts/{ACCOUNT}/ai/run/\n\
         \x20     api_key: {UPSTREAM_TOKEN}\n\
         general_settings:\n\
         \x20 master_key: {LITELLM_MASTER}\n\
         litellm_settings:\n\
         \x20 telemetry: false\n\
         \x20 drop_params: true\n"
    );
    std::fs::write(&config, yaml).map_err(|e| e.to_string())?;
    let port = free_port().map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new(&bin);
    cmd.arg("--config")
        .arg(&config)
        .args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .args(["--num_workers", "1"])
        // Offline: the bundled model cost map, no telemetry, no update checks.
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("LITELLM_TELEMETRY", "False")
        .env("LITELLM_LOG", "ERROR")
        .env("NO_DOCS", "True")
        .env(
            "CLOUDFLARE_API_BASE",
            format!("http://{mock}/client/v4/accounts/{ACCOUNT}/ai/run/"),
        )
        .env("CLOUDFLARE_API_KEY", UPSTREAM_TOKEN)
        .env("CLOUDFLARE_ACCOUNT_ID", ACCOUNT);
    let proc = spawn("litellm", cmd, out_dir)?;
    let auth = vec![bearer(LITELLM_MASTER)?];
    let targets = vec![
        pair(
            "litellm-openai",
            Shape::OpenAi,
            false,
            addr,
            "/v1/chat/completions",
            auth.clone(),
            |s| openai_body(OA_MODEL, s),
        ),
        pair(
            "litellm-workers-ai",
            Shape::WorkersAi,
            false,
            addr,
            "/v1/chat/completions",
            auth,
            |s| openai_body(WA_MODEL, s),
        ),
    ];
    Ok((proc, targets))
}

/// Portkey's open-source gateway (Node), headless, routed per request by headers:
/// provider `openai` with the mock as custom host, and provider `workers-ai` with the
/// mock's Workers AI route as custom host. It has no client keys of its own.
pub fn start_portkey(
    peers: &PeersDir,
    mock: SocketAddr,
    out_dir: &Path,
) -> Result<(Proc, Vec<Target>), String> {
    if let Some(why) = peers.unavailable("portkey") {
        return Err(why);
    }
    let script = peers
        .0
        .join("portkey/node_modules/@portkey-ai/gateway/build/start-server.js");
    if !script.exists() {
        return Err(format!(
            "not installed ({} is missing): run crates/cng-bench/peers/setup.sh",
            script.display()
        ));
    }
    let port = free_port().map_err(|e| e.to_string())?;
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut cmd = Command::new("node");
    cmd.arg(&script)
        .arg(format!("--port={port}"))
        .arg("--headless")
        .env("NODE_ENV", "production");
    let proc = spawn("portkey", cmd, out_dir)?;
    let openai = vec![
        bearer(UPSTREAM_TOKEN)?,
        header("x-portkey-provider", "openai")?,
        header("x-portkey-custom-host", &format!("http://{mock}/v1"))?,
    ];
    let workers = vec![
        bearer(UPSTREAM_TOKEN)?,
        header("x-portkey-provider", "workers-ai")?,
        header("x-portkey-workers-ai-account-id", ACCOUNT)?,
        header(
            "x-portkey-custom-host",
            &format!("http://{mock}/client/v4/accounts/{ACCOUNT}/ai/run"),
        )?,
    ];
    let targets = vec![
        pair(
            "portkey-openai",
            Shape::OpenAi,
            false,
            addr,
            "/v1/chat/completions",
            openai,
            |s| openai_body(OA_MODEL, s),
        ),
        pair(
            "portkey-workers-ai",
            Shape::WorkersAi,
            false,
            addr,
            "/v1/chat/completions",
            workers,
            |s| openai_body(WA_MODEL, s),
        ),
    ];
    Ok((proc, targets))
}

/// Waits until the target answers a good non-streaming request (or the process dies
/// or `timeout` passes: then says why, with the end of its log).
pub async fn wait_ready(proc: &mut Proc, target: &Target, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(exit) = proc.exited() {
            return Err(format!("{} {exit}; log: {}", proc.name, proc.log_tail(6)));
        }
        let last = match load::probe(&target.json).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        if Instant::now() > deadline {
            return Err(format!(
                "{} did not answer within {} s (last: {last}); log: {}",
                proc.name,
                timeout.as_secs(),
                proc.log_tail(6)
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
