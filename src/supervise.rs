//! Heartbeat supervision, without ptrace: about once a second the CPU time and I/O counters
//! of every process in the sandbox's pid namespace are sampled from /proc. Busy CPU, any I/O
//! (writes to stdout and stderr included: they count in `wchar`), and processes starting or
//! ending are progress. When nothing advances for the hang timeout, the run is hung.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

/// One process's counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proc {
    pub state: char,
    pub comm: String,
    /// utime + stime + cutime + cstime, in clock ticks.
    pub cpu: u64,
    /// rchar + wchar (all reads and writes, pipes and terminals included).
    pub io: u64,
}

/// Parse `/proc/PID/stat`: state and CPU ticks (fields 3 and 14..=17).
pub fn parse_stat(text: &str) -> Option<(char, String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text[open + 1..close].to_string();
    let rest: Vec<&str> = text[close + 1..].split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // rest[0] is field 3 (state); fields 14..=17 are rest[11..=14].
    let cpu = rest
        .get(11..=14)?
        .iter()
        .map(|v| v.parse::<u64>().unwrap_or(0))
        .sum();
    Some((state, comm, cpu))
}

/// Parse `/proc/PID/io`: rchar + wchar.
pub fn parse_io(text: &str) -> u64 {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "rchar" || *k == "wchar")
        .map(|(_, v)| v.trim().parse::<u64>().unwrap_or(0))
        .sum()
}

/// The processes of the pid namespace PID 1 (host pid `init`) leads.
pub fn sample(init: i32) -> BTreeMap<u32, Proc> {
    let mut out = BTreeMap::new();
    let Ok(ns) = std::fs::read_link(format!("/proc/{init}/ns/pid")) else {
        return out;
    };
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return out;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let dir = e.path();
        if std::fs::read_link(dir.join("ns/pid")).ok().as_ref() != Some(&ns) {
            continue;
        }
        let Some((state, comm, cpu)) = std::fs::read_to_string(dir.join("stat"))
            .ok()
            .as_deref()
            .and_then(parse_stat)
        else {
            continue;
        };
        let io = std::fs::read_to_string(dir.join("io"))
            .map(|t| parse_io(&t))
            .unwrap_or(0);
        out.insert(
            pid,
            Proc {
                state,
                comm,
                cpu,
                io,
            },
        );
    }
    out
}

/// Tracks progress between samples.
pub struct Heartbeat {
    timeout: Duration,
    last: BTreeMap<u32, Proc>,
    last_progress: Instant,
}

impl Heartbeat {
    pub fn new(timeout: Duration) -> Heartbeat {
        Heartbeat {
            timeout,
            last: BTreeMap::new(),
            last_progress: Instant::now(),
        }
    }

    /// Feed a sample taken at `now`; true when the run is hung.
    pub fn observe(&mut self, now: Instant, procs: BTreeMap<u32, Proc>) -> bool {
        let moved = procs.len() != self.last.len()
            || procs.iter().any(|(pid, p)| match self.last.get(pid) {
                None => true,
                Some(old) => p.cpu != old.cpu || p.io != old.io,
            });
        if moved {
            self.last_progress = now;
        }
        self.last = procs;
        now.duration_since(self.last_progress) >= self.timeout
    }

    /// What was alive when the run was declared hung.
    pub fn describe(&self) -> String {
        let mut s = String::new();
        for (pid, p) in &self.last {
            let cmd = std::fs::read(Path::new("/proc").join(pid.to_string()).join("cmdline"))
                .map(|c| {
                    String::from_utf8_lossy(&c)
                        .replace('\0', " ")
                        .trim()
                        .to_string()
                })
                .unwrap_or_default();
            s.push_str(&format!(
                "  pid {pid} state {} ({}) cpu {} ticks: {}\n",
                p.state,
                state_name(p.state),
                p.cpu,
                if cmd.is_empty() { &p.comm } else { &cmd }
            ));
        }
        s
    }
}

fn state_name(c: char) -> &'static str {
    match c {
        'R' => "running",
        'S' => "sleeping",
        'D' => "disk wait",
        'T' => "stopped",
        't' => "traced",
        'Z' => "zombie",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(cpu: u64, io: u64) -> Proc {
        Proc {
            state: 'S',
            comm: "x".into(),
            cpu,
            io,
        }
    }

    #[test]
    fn stat_fields() {
        let line =
            "1234 (qemu (arm)) S 1 1234 1234 0 -1 4194560 100 0 0 0 7 3 2 1 20 0 1 0 100 0 0";
        assert_eq!(parse_stat(line), Some(('S', "qemu (arm)".to_string(), 13)));
        assert_eq!(parse_io("rchar: 10\nwchar: 5\nsyscr: 99\n"), 15);
    }

    #[test]
    fn no_progress_for_the_timeout_is_a_hang_and_cpu_is_progress() {
        let t0 = Instant::now();
        let mut hb = Heartbeat::new(Duration::from_secs(10));
        let s = |c, i| BTreeMap::from([(1, p(1, 1)), (2, p(c, i))]);
        assert!(!hb.observe(t0, s(5, 5)));
        assert!(!hb.observe(t0 + Duration::from_secs(9), s(5, 5)));
        // CPU advanced: progress, the clock restarts.
        assert!(!hb.observe(t0 + Duration::from_secs(11), s(6, 5)));
        assert!(!hb.observe(t0 + Duration::from_secs(20), s(6, 5)));
        assert!(hb.observe(t0 + Duration::from_secs(21), s(6, 5)));
        // A new process is progress too.
        let mut more = s(6, 5);
        more.insert(3, p(0, 0));
        assert!(!hb.observe(t0 + Duration::from_secs(22), more));
    }
}

/// The tool's exit code when a run hung and every retry hung too.
pub const EXIT_HUNG: i32 = 124;

/// Run a plan under the heartbeat: a hung run is killed (with everything in its namespace)
/// and started again, at most `retries` more times. A run that was interrupted (Ctrl-C,
/// SIGTERM) is never retried. `hang_timeout: None` waits without supervision.
pub fn run_supervised(
    plan: &crate::plan::RunPlan,
    hang_timeout: Option<Duration>,
    retries: u32,
) -> anyhow::Result<crate::sandbox::Outcome> {
    let mut attempt = 0;
    loop {
        let running = crate::sandbox::spawn(plan)?;
        let mut outcome = match hang_timeout {
            None => running.wait(&mut |_| false)?,
            Some(timeout) => {
                let mut hb = Heartbeat::new(timeout);
                running.wait(&mut |pid| {
                    let hung = hb.observe(Instant::now(), sample(pid));
                    if hung {
                        eprintln!(
                            "cargo-for-arm: no progress (CPU, I/O, processes) for {}s: the run is hung. Alive:\n{}",
                            timeout.as_secs(),
                            hb.describe().trim_end()
                        );
                    }
                    hung
                })?
            }
        };
        if !outcome.killed || outcome.interrupted {
            return Ok(outcome);
        }
        if attempt >= retries {
            eprintln!(
                "cargo-for-arm: giving up after {} hung attempt(s)",
                attempt + 1
            );
            outcome.code = EXIT_HUNG;
            return Ok(outcome);
        }
        attempt += 1;
        eprintln!("cargo-for-arm: killed the hung sandbox; retrying ({attempt}/{retries})");
    }
}
