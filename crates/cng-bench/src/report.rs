//! Results, as JSON (everything) and Markdown (the tables people read): per target,
//! its figures and what it adds over the direct baseline; ratios of cng against the
//! baseline and against each peer; the goals, met or not.

use serde::Serialize;

/// Non-streaming figures at one concurrency.
#[derive(Debug, Clone, Serialize, Default)]
pub struct JsonRun {
    pub concurrency: usize,
    pub requests: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub rps: f64,
    pub p50_us: Option<u32>,
    pub p99_us: Option<u32>,
    /// Over the direct baseline at the same concurrency (None for the baseline).
    pub added_p50_us: Option<i64>,
    pub added_p99_us: Option<i64>,
    /// CPU time of the target's process tree per request (utime+stime, /proc/<pid>/stat).
    pub cpu_us_per_request: Option<f64>,
}

/// Streaming figures at one concurrency.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StreamRun {
    pub concurrency: usize,
    pub streams: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub streams_per_s: f64,
    pub ttfb_p50_us: Option<u32>,
    pub ttfb_p99_us: Option<u32>,
    pub added_ttfb_p50_us: Option<i64>,
    pub added_ttfb_p99_us: Option<i64>,
    pub total_p50_us: Option<u32>,
    pub cpu_us_per_stream: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct TargetResult {
    pub name: String,
    /// The process charged with its CPU and memory.
    pub process: String,
    /// The direct target it is compared to (None for a baseline).
    pub baseline: Option<String>,
    pub available: bool,
    /// Why it was not measured, when it was not.
    pub reason: Option<String>,
    pub idle_rss_kb: Option<u64>,
    pub peak_rss_kb: Option<u64>,
    pub json: Vec<JsonRun>,
    pub stream: Vec<StreamRun>,
    pub loadavg_before: String,
    pub loadavg_after: String,
}

impl TargetResult {
    pub fn json_at(&self, c: usize) -> Option<&JsonRun> {
        self.json.iter().find(|r| r.concurrency == c)
    }
    pub fn stream_at(&self, c: usize) -> Option<&StreamRun> {
        self.stream.iter().find(|r| r.concurrency == c)
    }
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Soak {
    pub target: String,
    pub seconds: u64,
    pub concurrency: usize,
    pub streams: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub cpu_us_per_stream: Option<f64>,
    /// (seconds since start, RSS KiB), one a second.
    pub rss_samples: Vec<(f64, u64)>,
    /// RSS after the first tenth of the run (the warm-up), at the end, and the most seen.
    pub rss_start_kb: u64,
    pub rss_end_kb: u64,
    pub rss_max_kb: u64,
}

impl Soak {
    /// Flat: the end is within 10% (and 4 MiB) of the warmed-up start.
    pub fn flat(&self) -> bool {
        let grow = self.rss_end_kb.saturating_sub(self.rss_start_kb);
        grow <= 4096 || (grow as f64) <= self.rss_start_kb as f64 * 0.10
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Goal {
    pub goal: String,
    pub measured: String,
    pub met: Option<bool>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Ratio {
    /// "cng-openai ÷ litellm-openai"
    pub comparison: String,
    pub rps_c1: Option<f64>,
    pub rps_c32: Option<f64>,
    pub rps_c128: Option<f64>,
    pub cpu_per_request: Option<f64>,
    pub cpu_per_stream: Option<f64>,
    pub peak_rss: Option<f64>,
    pub added_p50_c1: Option<f64>,
    pub added_ttfb_p50_c1: Option<f64>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    pub loadavg_start: String,
    pub loadavg_end: String,
    pub git: String,
    pub date: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Report {
    pub machine: Machine,
    pub phase_seconds: f64,
    pub concurrency: Vec<usize>,
    pub stream_concurrency: Vec<usize>,
    pub stream_events: usize,
    pub targets: Vec<TargetResult>,
    pub soak: Option<Soak>,
    pub ratios: Vec<Ratio>,
    pub goals: Vec<Goal>,
}

/// The pairs compared: cng against its baseline and against each peer of the same shape.
const COMPARISONS: [(&str, &str); 6] = [
    ("cng-workers-ai", "direct-workers-ai"),
    ("cng-openai", "direct-openai"),
    ("cng-workers-ai", "litellm-workers-ai"),
    ("cng-workers-ai", "portkey-workers-ai"),
    ("cng-openai", "litellm-openai"),
    ("cng-openai", "portkey-openai"),
];

fn div(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    match (a, b) {
        (Some(a), Some(b)) if b.abs() > f64::EPSILON => Some(a / b),
        _ => None,
    }
}

impl Report {
    pub fn target(&self, name: &str) -> Option<&TargetResult> {
        self.targets.iter().find(|t| t.name == name && t.available)
    }

    /// Fills the added latencies (target − its baseline, same concurrency).
    pub fn fill_added(&mut self) {
        let baselines: Vec<TargetResult> = self
            .targets
            .iter()
            .filter(|t| t.baseline.is_none())
            .cloned()
            .collect();
        for t in &mut self.targets {
            let Some(b) = t
                .baseline
                .as_deref()
                .and_then(|n| baselines.iter().find(|x| x.name == n))
            else {
                continue;
            };
            let sub = |a: Option<u32>, b: Option<u32>| Some(i64::from(a?) - i64::from(b?));
            for r in &mut t.json {
                if let Some(br) = b.json_at(r.concurrency) {
                    r.added_p50_us = sub(r.p50_us, br.p50_us);
                    r.added_p99_us = sub(r.p99_us, br.p99_us);
                }
            }
            for r in &mut t.stream {
                if let Some(br) = b.stream_at(r.concurrency) {
                    r.added_ttfb_p50_us = sub(r.ttfb_p50_us, br.ttfb_p50_us);
                    r.added_ttfb_p99_us = sub(r.ttfb_p99_us, br.ttfb_p99_us);
                }
            }
        }
    }

    pub fn fill_ratios(&mut self) {
        let mut out = Vec::new();
        for (a, b) in COMPARISONS {
            let (Some(ta), Some(tb)) = (self.target(a), self.target(b)) else {
                continue;
            };
            let rps = |c: usize| div(ta.json_at(c).map(|r| r.rps), tb.json_at(c).map(|r| r.rps));
            let f = |x: Option<i64>| x.map(|v| v as f64);
            out.push(Ratio {
                comparison: format!("{a} ÷ {b}"),
                rps_c1: rps(1),
                rps_c32: rps(32),
                rps_c128: rps(128),
                cpu_per_request: div(
                    ta.json_at(32).and_then(|r| r.cpu_us_per_request),
                    tb.json_at(32).and_then(|r| r.cpu_us_per_request),
                ),
                cpu_per_stream: div(
                    ta.stream_at(32).and_then(|r| r.cpu_us_per_stream),
                    tb.stream_at(32).and_then(|r| r.cpu_us_per_stream),
                ),
                peak_rss: div(
                    ta.peak_rss_kb.map(|v| v as f64),
                    tb.peak_rss_kb.map(|v| v as f64),
                ),
                added_p50_c1: div(
                    f(ta.json_at(1).and_then(|r| r.added_p50_us)),
                    f(tb.json_at(1).and_then(|r| r.added_p50_us)),
                ),
                added_ttfb_p50_c1: div(
                    f(ta.stream_at(1).and_then(|r| r.added_ttfb_p50_us)),
                    f(tb.stream_at(1).and_then(|r| r.added_ttfb_p50_us)),
                ),
            });
        }
        self.ratios = out;
    }

    /// The goals for cng (its Workers AI REST mode: the product's main path).
    pub fn fill_goals(&mut self) {
        let t = self.target("cng-workers-ai");
        let cpu_req = t
            .and_then(|t| t.json_at(32))
            .and_then(|r| r.cpu_us_per_request);
        let cpu_stream = t
            .and_then(|t| t.stream_at(32))
            .and_then(|r| r.cpu_us_per_stream);
        let added = t.and_then(|t| t.json_at(1)).and_then(|r| r.added_p50_us);
        let idle = t.and_then(|t| t.idle_rss_kb);
        let mut goals = vec![
            goal(
                "gateway CPU ≤ 15 µs per non-streaming chat request (c32)",
                cpu_req.map(|v| format!("{v:.1} µs")),
                cpu_req.map(|v| v <= 15.0),
            ),
            goal(
                "gateway CPU ≤ 40 µs per 21-event stream (c32)",
                cpu_stream.map(|v| format!("{v:.1} µs")),
                cpu_stream.map(|v| v <= 40.0),
            ),
            goal(
                "added p50 latency ≤ 50 µs at c1",
                added.map(|v| format!("{v} µs")),
                added.map(|v| v <= 50),
            ),
            goal(
                "RSS < 30 MB at idle",
                idle.map(|v| format!("{:.1} MB", v as f64 * 1024.0 / 1e6)),
                idle.map(|v| (v as f64 * 1024.0) < 30e6),
            ),
        ];
        let soak = self.soak.as_ref();
        goals.push(goal(
            "RSS flat during the streaming soak",
            soak.map(|s| {
                format!(
                    "{} s at c{}: {:.1} → {:.1} MB (max {:.1})",
                    s.seconds,
                    s.concurrency,
                    s.rss_start_kb as f64 * 1024.0 / 1e6,
                    s.rss_end_kb as f64 * 1024.0 / 1e6,
                    s.rss_max_kb as f64 * 1024.0 / 1e6
                )
            }),
            soak.map(Soak::flat),
        ));
        self.goals = goals;
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let m = &self.machine;
        s.push_str(&format!(
            "# cng load harness — {}\n\nMachine: {} CPUs ({}), git {}. Load average at start: `{}`; at end: `{}`.\n\
             Each phase runs {:.0} s, closed loop, HTTP/1.1 keep-alive; streams are {} events. \
             Added = target − direct upstream at the same concurrency. CPU = utime+stime of the \
             target's process tree from /proc/<pid>/stat (10 ms ticks) over the phase.\n\n",
            m.date, m.nproc, m.cpu, m.git, m.loadavg_start, m.loadavg_end,
            self.phase_seconds, self.stream_events
        ));
        s.push_str("## Non-streaming chat\n\n| target | req/s c1 | req/s c32 | req/s c128 | p50 c1 (added) | p99 c1 (added) | p50 c32 (added) | CPU µs/req c1 | CPU µs/req c32 | idle RSS MB | peak RSS MB | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for t in &self.targets {
            if !t.available {
                continue;
            }
            let r = |c: usize| t.json_at(c);
            let rps = |c: usize| r(c).map_or("—".into(), |r| format!("{:.0}", r.rps));
            let lat = |v: Option<u32>, a: Option<i64>| match (v, a) {
                (Some(v), Some(a)) => format!("{v} µs ({a:+})"),
                (Some(v), None) => format!("{v} µs"),
                _ => "—".into(),
            };
            let cpu = |c: usize| {
                r(c).and_then(|r| r.cpu_us_per_request)
                    .map_or("—".into(), |v| format!("{v:.1}"))
            };
            let errors: u64 = t.json.iter().map(|r| r.errors).sum();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.name,
                rps(1),
                rps(32),
                rps(128),
                lat(
                    r(1).and_then(|r| r.p50_us),
                    r(1).and_then(|r| r.added_p50_us)
                ),
                lat(
                    r(1).and_then(|r| r.p99_us),
                    r(1).and_then(|r| r.added_p99_us)
                ),
                lat(
                    r(32).and_then(|r| r.p50_us),
                    r(32).and_then(|r| r.added_p50_us)
                ),
                cpu(1),
                cpu(32),
                mb(t.idle_rss_kb),
                mb(t.peak_rss_kb),
                errors
            ));
        }
        s.push_str("\n## Streaming chat\n\n| target | TTFB p50 c1 (added) | TTFB p99 c1 (added) | stream p50 c1 | streams/s c32 | CPU µs/stream c1 | CPU µs/stream c32 | errors |\n|---|---:|---:|---:|---:|---:|---:|---:|\n");
        for t in &self.targets {
            if !t.available {
                continue;
            }
            let r = |c: usize| t.stream_at(c);
            let lat = |v: Option<u32>, a: Option<i64>| match (v, a) {
                (Some(v), Some(a)) => format!("{v} µs ({a:+})"),
                (Some(v), None) => format!("{v} µs"),
                _ => "—".into(),
            };
            let cpu = |c: usize| {
                r(c).and_then(|r| r.cpu_us_per_stream)
                    .map_or("—".into(), |v| format!("{v:.1}"))
            };
            let errors: u64 = t.stream.iter().map(|r| r.errors).sum();
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} |\n",
                t.name,
                lat(
                    r(1).and_then(|r| r.ttfb_p50_us),
                    r(1).and_then(|r| r.added_ttfb_p50_us)
                ),
                lat(
                    r(1).and_then(|r| r.ttfb_p99_us),
                    r(1).and_then(|r| r.added_ttfb_p99_us)
                ),
                r(1).and_then(|r| r.total_p50_us)
                    .map_or("—".into(), |v| format!("{v} µs")),
                r(32).map_or("—".into(), |r| format!("{:.0}", r.streams_per_s)),
                cpu(1),
                cpu(32),
                errors
            ));
        }
        s.push_str("\n## Ratios (cng ÷ other: above 1 is better for throughput, below 1 is better for costs)\n\n| comparison | req/s c1 | req/s c32 | req/s c128 | CPU/req c32 | CPU/stream c32 | peak RSS | added p50 c1 | added TTFB p50 c1 |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.ratios {
            let x = |v: Option<f64>| v.map_or("—".into(), |v| format!("{v:.2}×"));
            s.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |\n",
                r.comparison,
                x(r.rps_c1),
                x(r.rps_c32),
                x(r.rps_c128),
                x(r.cpu_per_request),
                x(r.cpu_per_stream),
                x(r.peak_rss),
                x(r.added_p50_c1),
                x(r.added_ttfb_p50_c1)
            ));
        }
        let missing: Vec<&TargetResult> = self.targets.iter().filter(|t| !t.available).collect();
        if !missing.is_empty() {
            s.push_str("\n## Not measured\n\n");
            for t in missing {
                s.push_str(&format!(
                    "- **{}**: {}\n",
                    t.name,
                    t.reason.as_deref().unwrap_or("unknown reason")
                ));
            }
        }
        s.push_str("\n## Errors seen\n\n");
        let mut any = false;
        for t in &self.targets {
            for e in t
                .json
                .iter()
                .filter_map(|r| r.first_error.as_ref())
                .chain(t.stream.iter().filter_map(|r| r.first_error.as_ref()))
                .take(1)
            {
                any = true;
                s.push_str(&format!("- {}: {}\n", t.name, e));
            }
        }
        if !any {
            s.push_str("none\n");
        }
        if let Some(k) = &self.soak {
            s.push_str(&format!(
                "\n## Soak\n\n{} streaming at c{} for {} s: {} streams, {} errors, CPU {} µs/stream; RSS {} MB after warm-up → {} MB at the end (max {} MB).\n",
                k.target,
                k.concurrency,
                k.seconds,
                k.streams,
                k.errors,
                k.cpu_us_per_stream.map_or("—".into(), |v| format!("{v:.1}")),
                mb(Some(k.rss_start_kb)),
                mb(Some(k.rss_end_kb)),
                mb(Some(k.rss_max_kb)),
            ));
        }
        s.push_str("\n## Goals (cng-workers-ai)\n\n| goal | measured | met |\n|---|---|---|\n");
        for g in &self.goals {
            s.push_str(&format!(
                "| {} | {} | {} |\n",
                g.goal,
                g.measured,
                match g.met {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "not measured",
                }
            ));
        }
        s
    }
}

fn goal(goal: &str, measured: Option<String>, met: Option<bool>) -> Goal {
    Goal {
        goal: goal.to_string(),
        measured: measured.unwrap_or_else(|| "not measured".into()),
        met,
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("—".into(), |v| format!("{:.1}", v as f64 * 1024.0 / 1e6))
}
