//! `cng-bench`: the load harness. See docs/performance.md.
//!
//! ```sh
//! scripts/load                 # build, install peers, run everything (~3 min)
//! scripts/load --quick         # shorter phases
//! scripts/load --soak-secs 600 # the 10-minute streaming soak
//! ```
//!
//! One run, one machine: the harness's mock upstream, the upstream directly, `cng serve`
//! (Workers AI REST shape and OpenAI shape), and — when `peers/setup.sh` could install
//! them — LiteLLM proxy and Portkey's gateway in front of the same mock. Targets are
//! measured one after the other, never at the same time.

mod load;
mod mock;
mod procstat;
mod profile;
mod report;
mod targets;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};

use report::{JsonRun, Machine, Report, Soak, StreamRun, TargetResult};
use targets::{PeersDir, Proc, Shape, Target};

#[derive(Debug, Parser)]
#[command(
    name = "cng-bench",
    about = "Load harness: cng vs the upstream directly vs peer gateways"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Cmd>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Run only the mock upstream (the harness starts it as a child process).
    Mock {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: SocketAddr,
    },
    /// One cng target under one load, with CPU and (`--strace`) system calls per
    /// request: for A/B runs of a change (see docs/performance.md).
    Profile(profile::ProfileArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct RunArgs {
    /// Seconds per measured phase.
    #[arg(long, default_value_t = 5.0)]
    seconds: f64,
    /// Short phases (2 s) and a short soak (10 s): a smoke run.
    #[arg(long)]
    quick: bool,
    /// Seconds of the streaming soak on cng (600 for the 10-minute soak; 0 to skip).
    #[arg(long, default_value_t = 30)]
    soak_secs: u64,
    /// Concurrency of the soak.
    #[arg(long, default_value_t = 8)]
    soak_concurrency: usize,
    /// The `cng` binary (default: next to this one, i.e. target/release/cng).
    #[arg(long)]
    cng: Option<PathBuf>,
    /// Do not install or run LiteLLM and Portkey.
    #[arg(long)]
    no_peers: bool,
    /// Where the peers are installed (default: target/bench-peers).
    #[arg(long)]
    peers_dir: Option<PathBuf>,
    /// Output directory (default: target/bench/<UTC time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Wait up to this many seconds for the 1-minute load average to drop below
    /// `--max-load` before starting (other builds may be running).
    #[arg(long, default_value_t = 120)]
    wait_secs: u64,
    #[arg(long, default_value_t = 1.0)]
    max_load: f64,
    /// Only these targets (comma-separated names, e.g. direct-workers-ai,cng-workers-ai).
    #[arg(long, value_delimiter = ',')]
    only: Option<Vec<String>>,
}

const CONCURRENCY: [usize; 3] = [1, 32, 128];
const STREAM_CONCURRENCY: [usize; 2] = [1, 32];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cng-bench: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match cli.command {
        Some(Cmd::Mock { listen }) => match rt.block_on(mock::serve(listen)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cng-bench mock: {e}");
                ExitCode::FAILURE
            }
        },
        Some(Cmd::Profile(args)) => {
            let exe = match std::env::current_exe() {
                Ok(e) => e,
                Err(e) => {
                    eprintln!("cng-bench profile: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(profile::run(args, &exe, &repo_root())) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("cng-bench profile: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        None => match rt.block_on(run(cli.run)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cng-bench: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn sh(cmd: &str, args: &[&str]) -> String {
    Command::new(cmd)
        .args(args)
        .current_dir(repo_root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

async fn run(mut args: RunArgs) -> Result<(), String> {
    if args.quick {
        args.seconds = args.seconds.min(2.0);
        args.soak_secs = args.soak_secs.min(10);
    }
    let phase = Duration::from_secs_f64(args.seconds);
    let root = repo_root();
    let out = args.out.clone().unwrap_or_else(|| {
        root.join("target/bench")
            .join(sh("date", &["-u", "+%Y%m%dT%H%M%SZ"]))
    });
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let cng = args
        .cng
        .clone()
        .unwrap_or_else(|| exe.with_file_name("cng"));
    if !cng.exists() {
        return Err(format!(
            "{} not found: build it first (cargo build --release -p cng-server), or use scripts/load",
            cng.display()
        ));
    }
    let wanted = |name: &str| {
        args.only
            .as_ref()
            .is_none_or(|o| o.iter().any(|n| n == name))
    };

    // Peers: the harness's own setup installs them (idempotent, quick when done).
    let peers = PeersDir(
        args.peers_dir
            .clone()
            .unwrap_or_else(|| root.join("target/bench-peers")),
    );
    if !args.no_peers {
        eprintln!("== installing peers (crates/cng-bench/peers/setup.sh)");
        let status = Command::new(root.join("crates/cng-bench/peers/setup.sh"))
            .arg(&peers.0)
            .status();
        if let Err(e) = status {
            eprintln!("   setup could not run: {e}");
        }
    }

    // Wait for a quiet machine (bounded).
    let waited = Instant::now();
    while procstat::loadavg().0 > args.max_load && waited.elapsed().as_secs() < args.wait_secs {
        eprintln!(
            "   load average {} > {}: waiting ({} s of {} s)",
            procstat::loadavg().1,
            args.max_load,
            waited.elapsed().as_secs(),
            args.wait_secs
        );
        tokio::time::sleep(Duration::from_secs(10)).await;
    }

    let mut report = Report {
        machine: Machine {
            nproc: std::thread::available_parallelism().map_or(0, |n| n.get()),
            cpu: procstat::cpu_model(),
            loadavg_start: procstat::loadavg().1,
            git: format!(
                "{}{}",
                sh("git", &["rev-parse", "--short", "HEAD"]),
                if sh("git", &["status", "--porcelain", "--untracked-files=no"]).is_empty() {
                    ""
                } else {
                    " (+ uncommitted changes)"
                }
            ),
            date: sh("date", &["-u", "+%Y-%m-%d %H:%M UTC"]),
            ..Machine::default()
        },
        phase_seconds: args.seconds,
        concurrency: CONCURRENCY.to_vec(),
        stream_concurrency: STREAM_CONCURRENCY.to_vec(),
        stream_events: mock::STREAM_EVENTS,
        ..Report::default()
    };
    eprintln!("== output in {}", out.display());

    // The mock upstream: a child process, so its CPU is its own.
    let mock_port = targets::free_port().map_err(|e| e.to_string())?;
    let mock_addr: SocketAddr = ([127, 0, 0, 1], mock_port).into();
    let mut mock_cmd = Command::new(&exe);
    mock_cmd.args(["mock", "--listen", &mock_addr.to_string()]);
    let mut mock_proc = targets::spawn("mock", mock_cmd, &out)?;

    for t in targets::direct_targets(mock_addr)? {
        if !wanted(&t.name) {
            continue;
        }
        targets::wait_ready(&mut mock_proc, &t, Duration::from_secs(10)).await?;
        let r = measure(&t, &mock_proc, None, phase).await;
        report.targets.push(r);
    }

    for shape in [Shape::WorkersAi, Shape::OpenAi] {
        let name = match shape {
            Shape::WorkersAi => "cng-workers-ai",
            Shape::OpenAi => "cng-openai",
        };
        if !wanted(name) {
            continue;
        }
        match targets::start_cng(&cng, shape, mock_addr, &out) {
            Ok((mut proc, t)) => {
                match targets::wait_ready(&mut proc, &t, Duration::from_secs(30)).await {
                    Ok(()) => {
                        tokio::time::sleep(Duration::from_millis(500)).await;
                        let idle = procstat::rss_kb(&procstat::tree(proc.pid()));
                        let r = measure(&t, &proc, Some(idle), phase).await;
                        report.targets.push(r);
                        if shape == Shape::WorkersAi && args.soak_secs > 0 {
                            report.soak =
                                Some(soak(&t, &proc, args.soak_secs, args.soak_concurrency).await);
                        }
                    }
                    Err(e) => report.targets.push(unavailable(&t.name, "cng", shape, e)),
                }
            }
            Err(e) => report.targets.push(unavailable(name, "cng", shape, e)),
        }
    }

    if !args.no_peers {
        type Starter = fn(&PeersDir, SocketAddr, &Path) -> Result<(Proc, Vec<Target>), String>;
        let peers_list: [(&str, Starter, [&str; 2], u64); 2] = [
            (
                "litellm",
                targets::start_litellm,
                ["litellm-openai", "litellm-workers-ai"],
                180,
            ),
            (
                "portkey",
                targets::start_portkey,
                ["portkey-openai", "portkey-workers-ai"],
                60,
            ),
        ];
        for (peer, start, names, ready_secs) in peers_list {
            if !names.iter().any(|n| wanted(n)) {
                continue;
            }
            eprintln!("== starting {peer}");
            match start(&peers, mock_addr, &out) {
                Ok((mut proc, ts)) => {
                    let mut idle = None;
                    for t in ts {
                        if !wanted(&t.name) {
                            continue;
                        }
                        match targets::wait_ready(&mut proc, &t, Duration::from_secs(ready_secs))
                            .await
                        {
                            Ok(()) => {
                                if idle.is_none() {
                                    tokio::time::sleep(Duration::from_secs(1)).await;
                                    idle = Some(procstat::rss_kb(&procstat::tree(proc.pid())));
                                }
                                let r = measure(&t, &proc, idle, phase).await;
                                report.targets.push(r);
                            }
                            Err(e) => {
                                eprintln!("   {}: {e}", t.name);
                                report.targets.push(unavailable(&t.name, peer, t.shape, e));
                            }
                        }
                    }
                }
                Err(e) => {
                    eprintln!("   {peer}: {e}");
                    for n in names {
                        let shape = if n.ends_with("openai") {
                            Shape::OpenAi
                        } else {
                            Shape::WorkersAi
                        };
                        report.targets.push(unavailable(n, peer, shape, e.clone()));
                    }
                }
            }
        }
    }
    drop(mock_proc);

    report.machine.loadavg_end = procstat::loadavg().1;
    report.fill_added();
    report.fill_ratios();
    report.fill_goals();
    let md = report.markdown();
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.md"), &md).map_err(|e| e.to_string())?;
    std::fs::write(out.join("results.json"), json).map_err(|e| e.to_string())?;
    println!("{md}");
    eprintln!(
        "== written: {} and results.json",
        out.join("results.md").display()
    );
    Ok(())
}

fn unavailable(name: &str, process: &str, shape: Shape, reason: String) -> TargetResult {
    TargetResult {
        name: name.to_string(),
        process: process.to_string(),
        baseline: Some(shape.baseline().to_string()),
        available: false,
        reason: Some(reason),
        ..TargetResult::default()
    }
}

/// CPU µs per completed request over a phase.
fn per(cpu_before: u64, cpu_after: u64, n: u64) -> Option<f64> {
    (n > 0).then(|| cpu_after.saturating_sub(cpu_before) as f64 / n as f64)
}

/// Measures one target: a warm-up, non-streaming at each concurrency, streaming at
/// each stream concurrency.
async fn measure(
    t: &Target,
    proc: &Proc,
    idle_rss_kb: Option<u64>,
    phase: Duration,
) -> TargetResult {
    eprintln!("== {} (load {})", t.name, procstat::loadavg().1);
    let pids = procstat::tree(proc.pid());
    let mut r = TargetResult {
        name: t.name.clone(),
        process: proc.name.clone(),
        baseline: (!t.direct).then(|| t.shape.baseline().to_string()),
        available: true,
        idle_rss_kb,
        loadavg_before: procstat::loadavg().1,
        ..TargetResult::default()
    };
    // Warm-up: connection pools, lazy statics, JITs (Node, Python).
    let _ = load::run(Arc::clone(&t.json), 8, Duration::from_secs(1)).await;
    let _ = load::run(Arc::clone(&t.stream), 8, Duration::from_millis(500)).await;
    for c in CONCURRENCY {
        let before = procstat::cpu_us(&pids);
        let p = load::run(Arc::clone(&t.json), c, phase).await;
        let after = procstat::cpu_us(&pids);
        eprintln!(
            "   c{c}: {:.0} req/s, p50 {:?} µs, p99 {:?} µs, {} errors",
            p.rps(),
            load::quantile(&p.latency_us, 0.5),
            load::quantile(&p.latency_us, 0.99),
            p.errors
        );
        r.json.push(JsonRun {
            concurrency: c,
            requests: p.ok,
            errors: p.errors,
            first_error: p.first_error.clone(),
            rps: p.rps(),
            p50_us: load::quantile(&p.latency_us, 0.5),
            p99_us: load::quantile(&p.latency_us, 0.99),
            cpu_us_per_request: per(before, after, p.ok),
            ..JsonRun::default()
        });
    }
    for c in STREAM_CONCURRENCY {
        let before = procstat::cpu_us(&pids);
        let p = load::run(Arc::clone(&t.stream), c, phase).await;
        let after = procstat::cpu_us(&pids);
        eprintln!(
            "   stream c{c}: {:.0} streams/s, TTFB p50 {:?} µs, {} errors",
            p.rps(),
            load::quantile(&p.ttfb_us, 0.5),
            p.errors
        );
        r.stream.push(StreamRun {
            concurrency: c,
            streams: p.ok,
            errors: p.errors,
            first_error: p.first_error.clone(),
            streams_per_s: p.rps(),
            ttfb_p50_us: load::quantile(&p.ttfb_us, 0.5),
            ttfb_p99_us: load::quantile(&p.ttfb_us, 0.99),
            total_p50_us: load::quantile(&p.latency_us, 0.5),
            cpu_us_per_stream: per(before, after, p.ok),
            ..StreamRun::default()
        });
    }
    r.peak_rss_kb = Some(procstat::peak_rss_kb(&procstat::tree(proc.pid())));
    r.loadavg_after = procstat::loadavg().1;
    r
}

/// Streams at `concurrency` for `secs`, sampling RSS every second.
async fn soak(t: &Target, proc: &Proc, secs: u64, concurrency: usize) -> Soak {
    eprintln!(
        "== soak: {} streaming at c{concurrency} for {secs} s",
        t.name
    );
    let pids = procstat::tree(proc.pid());
    let before = procstat::cpu_us(&pids);
    let spec = Arc::clone(&t.stream);
    let run = tokio::spawn(load::run(spec, concurrency, Duration::from_secs(secs)));
    let start = Instant::now();
    let mut samples = Vec::new();
    while !run.is_finished() {
        samples.push((
            start.elapsed().as_secs_f64(),
            procstat::rss_kb(&procstat::tree(proc.pid())),
        ));
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let p = run.await.unwrap_or_default();
    let after = procstat::cpu_us(&pids);
    let warm = samples.len() / 10;
    let rss_start_kb = samples.get(warm).map_or(0, |s| s.1);
    let rss_end_kb = samples.last().map_or(0, |s| s.1);
    let rss_max_kb = samples.iter().map(|s| s.1).max().unwrap_or(0);
    Soak {
        target: t.name.clone(),
        seconds: secs,
        concurrency,
        streams: p.ok,
        errors: p.errors,
        first_error: p.first_error,
        cpu_us_per_stream: per(before, after, p.ok),
        rss_samples: samples,
        rss_start_kb,
        rss_end_kb,
        rss_max_kb,
    }
}
