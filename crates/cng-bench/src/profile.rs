//! `cng-bench profile`: one cng target, one shape of load, with the counts a change is
//! judged by — CPU µs per request (no tracer attached) and, with `--strace`, system
//! calls per request (`strace -c -f` attached to the `cng` process for a second phase,
//! since tracing slows the process down and inflates its CPU).
//!
//! ```sh
//! target/release/cng-bench profile --stream --concurrency 32 --strace
//! target/release/cng-bench profile --cng /tmp/cng-before --strace   # the other build
//! ```
//!
//! Quicker than the whole harness for A/B runs of one change (run both builds one
//! after the other, and read the load average printed with each figure).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use crate::load;
use crate::procstat;
use crate::targets::{self, Shape};

/// What to profile.
#[derive(Debug, Clone, clap::Args)]
pub struct ProfileArgs {
    /// The upstream shape cng is started with.
    #[arg(long, value_enum, default_value_t = ShapeArg::WorkersAi)]
    shape: ShapeArg,
    /// Streaming requests (21 events) instead of plain JSON answers.
    #[arg(long)]
    stream: bool,
    /// Closed-loop connections.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of each measured phase.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Measured phases without a tracer (the CPU figure is their median).
    #[arg(long, default_value_t = 3)]
    repeat: usize,
    /// Also count system calls per request with `strace -c -f` (a separate phase).
    #[arg(long)]
    strace: bool,
    /// The `cng` binary (default: next to this one).
    #[arg(long)]
    cng: Option<PathBuf>,
    /// Where the processes' logs and data go (default: a temporary directory under
    /// target/bench/profile).
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum ShapeArg {
    WorkersAi,
    Openai,
}

/// One line of `strace -c` output: calls of one system call.
#[derive(Debug, Clone, PartialEq)]
struct SyscallCount {
    name: String,
    calls: u64,
}

/// Reads the table `strace -c` writes: `% time seconds usecs/call calls [errors]
/// syscall`, one row per system call, between dashed lines.
fn parse_strace_summary(text: &str) -> Vec<SyscallCount> {
    let mut out = Vec::new();
    for line in text.lines() {
        let cols: Vec<&str> = line.split_whitespace().collect();
        // Rows start with a percentage; the header and the dashed lines do not.
        if cols.len() < 5 || cols[0].parse::<f64>().is_err() {
            continue;
        }
        let Some(name) = cols.last() else { continue };
        if *name == "total" {
            continue;
        }
        if let Ok(calls) = cols[3].parse::<u64>() {
            out.push(SyscallCount {
                name: (*name).to_string(),
                calls,
            });
        }
    }
    out
}

fn show(v: Option<u32>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

pub async fn run(args: ProfileArgs, exe: &Path, root: &Path) -> Result<(), String> {
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("target/bench/profile"));
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    let cng = args
        .cng
        .clone()
        .unwrap_or_else(|| exe.with_file_name("cng"));
    let shape = match args.shape {
        ShapeArg::WorkersAi => Shape::WorkersAi,
        ShapeArg::Openai => Shape::OpenAi,
    };

    let mock_port = targets::free_port().map_err(|e| e.to_string())?;
    let mock_addr: SocketAddr = ([127, 0, 0, 1], mock_port).into();
    let mut mock_cmd = Command::new(exe);
    mock_cmd.args(["mock", "--listen", &mock_addr.to_string()]);
    let mut mock = targets::spawn("mock", mock_cmd, &out)?;
    let direct = targets::direct_targets(mock_addr)?;
    if let Some(t) = direct.first() {
        targets::wait_ready(&mut mock, t, Duration::from_secs(10)).await?;
    }
    let (mut proc, target) = targets::start_cng(&cng, shape, mock_addr, &out)?;
    targets::wait_ready(&mut proc, &target, Duration::from_secs(30)).await?;
    let spec = if args.stream {
        Arc::clone(&target.stream)
    } else {
        Arc::clone(&target.json)
    };
    let phase = Duration::from_secs_f64(args.seconds);
    let pids = procstat::tree(proc.pid());
    let what = format!(
        "{} {} c{}",
        target.name,
        if args.stream { "stream" } else { "json" },
        args.concurrency
    );

    let _ = load::run(Arc::clone(&spec), args.concurrency, Duration::from_secs(1)).await;
    let mut cpu = Vec::new();
    for _ in 0..args.repeat.max(1) {
        let load_before = procstat::loadavg().1;
        let before = procstat::cpu_us(&pids);
        let p = load::run(Arc::clone(&spec), args.concurrency, phase).await;
        let after = procstat::cpu_us(&pids);
        let per = after.saturating_sub(before) as f64 / p.ok.max(1) as f64;
        let ttfb = if args.stream {
            format!(", TTFB p50 {} µs", show(load::quantile(&p.ttfb_us, 0.5)))
        } else {
            String::new()
        };
        println!(
            "{what}: {:.0}/s, {per:.1} µs CPU each, p50 {} µs{ttfb}, {} errors (load {load_before})",
            p.rps(),
            show(load::quantile(&p.latency_us, 0.5)),
            p.errors,
        );
        if let Some(e) = &p.first_error {
            println!("  first error: {e}");
        }
        cpu.push(per);
    }
    cpu.sort_by(f64::total_cmp);
    if let Some(median) = cpu.get(cpu.len() / 2) {
        println!("{what}: median {median:.1} µs CPU each");
    }

    if args.strace {
        let summary = out.join("strace.txt");
        let mut strace = Command::new("strace")
            .args(["-c", "-f", "-o"])
            .arg(&summary)
            .args(["-p", &proc.pid().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run strace: {e}"))?;
        // Attaching to every thread takes a moment.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let p = load::run(Arc::clone(&spec), args.concurrency, phase).await;
        let _ = Command::new("kill")
            .args(["-s", "INT", &strace.id().to_string()])
            .status();
        let _ = strace.wait();
        let text = std::fs::read_to_string(&summary).unwrap_or_default();
        let mut counts = parse_strace_summary(&text);
        counts.sort_by_key(|c| std::cmp::Reverse(c.calls));
        // The attach pause and the load's ramp-down add a few calls; per-request
        // figures are for comparing builds, not exact.
        let n = p.ok.max(1) as f64;
        println!(
            "{what} under strace: {} answered; system calls per answer (strace -c -f, {}):",
            p.ok,
            summary.display()
        );
        for c in counts.iter().filter(|c| c.calls as f64 / n >= 0.05) {
            println!("  {:<16} {:>7.2}", c.name, c.calls as f64 / n);
        }
    }
    drop(proc);
    drop(mock);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        reason = "test code"
    )]
    use super::*;

    #[test]
    fn reads_strace_summary_rows() {
        let text = "\
% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 45.10    0.120000          10     12000           writev
 20.00    0.050000           5     10000      1000 recvfrom
  0.00    0.000000           0         4           fcntl
------ ----------- ----------- --------- --------- ----------------
100.00    0.170000                 22004      1000 total
";
        let rows = parse_strace_summary(text);
        assert_eq!(
            rows,
            vec![
                SyscallCount {
                    name: "writev".into(),
                    calls: 12000
                },
                SyscallCount {
                    name: "recvfrom".into(),
                    calls: 10000
                },
                SyscallCount {
                    name: "fcntl".into(),
                    calls: 4
                },
            ]
        );
    }
}
