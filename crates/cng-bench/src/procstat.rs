//! What a process (and its children) cost, read from `/proc`: CPU time from
//! `/proc/<pid>/stat` (utime + stime, which include threads that have exited), resident
//! memory from `/proc/<pid>/status` (`VmRSS` now, `VmHWM` peak). Peers such as LiteLLM
//! may fork workers, so every figure covers the process tree.

use std::fs;

/// Clock ticks per second for `/proc/<pid>/stat` (`getconf CLK_TCK`; 100 on Linux for
/// every architecture the harness runs on).
const TICKS_PER_SEC: u64 = 100;

/// `pid` and all its descendants.
pub fn tree(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut parents: Vec<(u32, u32)> = Vec::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for e in dir.flatten() {
            let Some(p) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
                continue;
            };
            if let Some(stat) = read_stat(p) {
                parents.push((p, stat.ppid));
            }
        }
    }
    let mut i = 0;
    while i < all.len() {
        let parent = all[i];
        for (p, pp) in &parents {
            if *pp == parent && !all.contains(p) {
                all.push(*p);
            }
        }
        i += 1;
    }
    all
}

struct Stat {
    ppid: u32,
    ticks: u64,
}

fn read_stat(pid: u32) -> Option<Stat> {
    let s = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: split after the last ')'.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = f.get(1)?.parse().ok()?;
    let utime: u64 = f.get(11)?.parse().ok()?;
    let stime: u64 = f.get(12)?.parse().ok()?;
    Some(Stat {
        ppid,
        ticks: utime + stime,
    })
}

/// CPU time used so far by the tree, in microseconds (10 ms resolution).
pub fn cpu_us(pids: &[u32]) -> u64 {
    pids.iter()
        .filter_map(|p| read_stat(*p))
        .map(|s| s.ticks * 1_000_000 / TICKS_PER_SEC)
        .sum()
}

fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Resident memory now, summed over the tree, in KiB.
pub fn rss_kb(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| status_kb(*p, "VmRSS:")).sum()
}

/// Peak resident memory, summed over the tree (each process's own peak), in KiB.
pub fn peak_rss_kb(pids: &[u32]) -> u64 {
    pids.iter().filter_map(|p| status_kb(*p, "VmHWM:")).sum()
}

/// The 1-minute load average and the whole `/proc/loadavg` line.
pub fn loadavg() -> (f64, String) {
    let s = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let one = s
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    (one, s.trim().to_string())
}

/// The CPU model (first `model name` of `/proc/cpuinfo`).
pub fn cpu_model() -> String {
    fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        // Burn a little CPU so the counter is not trivially zero on a fresh process.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        assert!(x != 1);
        assert!(cpu_us(&[me]) > 0);
        assert!(rss_kb(&[me]) > 0);
        assert!(peak_rss_kb(&[me]) >= rss_kb(&[me]));
        assert!(tree(me).contains(&me));
    }
}
