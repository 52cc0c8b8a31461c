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
        if let Some(p) = read_proc(&dir) {
            out.insert(pid, p);
        }
    }
    out
}

/// One process's sample from its `/proc/<pid>` directory (`None` once it is gone).
fn read_proc(dir: &Path) -> Option<Proc> {
    let (state, comm, cpu) = parse_stat(&std::fs::read_to_string(dir.join("stat")).ok()?)?;
    let io = std::fs::read_to_string(dir.join("io"))
        .map(|t| parse_io(&t))
        .unwrap_or(0);
    Some(Proc {
        state,
        comm,
        cpu,
        io,
    })
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

/// The tool's exit code when a run hung and every retry hung too.
pub const EXIT_HUNG: i32 = 124;

/// A live status line under cargo's output on a terminal: elapsed time, crates compiled,
/// the crate in progress. cargo's lines pass through whole; the status line is erased before
/// each one and drawn again after, so it never splits or overwrites them.
pub struct StatusLine {
    start: Instant,
    pending: Vec<u8>,
    compiled: u32,
    current: Option<String>,
    shown: bool,
}

/// Remove ANSI escape sequences (cargo colours its verbs).
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

impl StatusLine {
    pub fn new() -> StatusLine {
        StatusLine {
            start: Instant::now(),
            pending: Vec::new(),
            compiled: 0,
            current: None,
            shown: false,
        }
    }

    /// Account for one line of cargo's output.
    pub fn observe_line(&mut self, line: &str) {
        let plain = strip_ansi(line);
        let mut words = plain.split_whitespace();
        if words.next() == Some("Compiling") {
            self.compiled += 1;
            self.current = words.next().map(str::to_string);
        }
    }

    pub fn text(&self, width: usize) -> String {
        let t = self.start.elapsed().as_secs();
        let mut s = format!(
            "    Building {}:{:02} | {} crates compiled",
            t / 60,
            t % 60,
            self.compiled
        );
        if let Some(c) = &self.current {
            s.push_str(&format!(" | last started: {c}"));
        }
        s.chars().take(width.saturating_sub(1).max(20)).collect()
    }

    fn write(bytes: &[u8]) {
        use std::io::Write;
        let mut e = std::io::stderr().lock();
        let _ = e.write_all(bytes);
        let _ = e.flush();
    }

    fn clear(&mut self) {
        if self.shown {
            Self::write(b"\r\x1b[2K");
            self.shown = false;
        }
    }

    fn draw(&mut self) {
        let width = terminal_width();
        self.clear();
        Self::write(format!("\x1b[36m{}\x1b[0m", self.text(width)).as_bytes());
        self.shown = true;
    }

    pub fn output(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        let Some(last_nl) = self.pending.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let lines: Vec<u8> = self.pending.drain(..=last_nl).collect();
        self.clear();
        Self::write(&lines);
        for line in String::from_utf8_lossy(&lines).lines() {
            self.observe_line(line);
        }
        self.draw();
    }

    pub fn finish(&mut self) {
        self.clear();
        let rest = std::mem::take(&mut self.pending);
        Self::write(&rest);
    }
}

fn terminal_width() -> usize {
    let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ fills a winsize.
    if unsafe { libc::ioctl(2, libc::TIOCGWINSZ, &mut ws) } == 0 && ws.ws_col > 0 {
        ws.ws_col as usize
    } else {
        80
    }
}

/// The watcher of a supervised run: heartbeat, and the status line when asked.
struct RunWatcher<'a> {
    heartbeat: Option<Heartbeat>,
    timeout: Duration,
    status: Option<StatusLine>,
    /// Asked every second: true ends the run (whoever wanted it is gone).
    abort: &'a mut dyn FnMut() -> bool,
    aborted: bool,
}

impl crate::sandbox::Watcher for RunWatcher<'_> {
    fn tick(&mut self, pid: i32) -> bool {
        if (self.abort)() {
            self.aborted = true;
            return true;
        }
        let Some(hb) = self.heartbeat.as_mut() else {
            if let Some(s) = self.status.as_mut() {
                s.draw();
            }
            return false;
        };
        let hung = hb.observe(Instant::now(), sample(pid));
        if let Some(s) = self.status.as_mut() {
            if hung {
                s.clear();
            } else {
                s.draw();
            }
        }
        if hung {
            eprintln!(
                "cargo-for-arm: no progress (CPU, I/O, processes) for {}s: the run is hung. Alive:\n{}",
                self.timeout.as_secs(),
                hb.describe().trim_end()
            );
        }
        hung
    }

    fn stderr(&mut self, bytes: &[u8]) {
        match self.status.as_mut() {
            Some(s) => s.output(bytes),
            None => StatusLine::write(bytes),
        }
    }

    fn finish(&mut self) {
        if let Some(s) = self.status.as_mut() {
            s.finish();
        }
    }
}

/// Whether a run draws the live status line (the command's stderr is then piped through
/// the tool).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Status {
    /// The command writes to the tool's stderr directly.
    #[default]
    Plain,
    /// A status line under cargo's output.
    Line,
}

/// How a run is supervised.
#[derive(Debug, Clone, Copy, Default)]
pub struct Supervision {
    /// No progress for this long is a hang; None waits without supervision.
    pub hang_timeout: Option<Duration>,
    /// How many more times a hung run is started again.
    pub retries: u32,
    pub status: Status,
}

/// Start a run with `once` until it ends without hanging: a hung one (killed by the
/// heartbeat) is started again at most `how.retries` more times, an interrupted one never;
/// when every attempt hung, the exit code is [`EXIT_HUNG`].
fn with_retries(
    how: Supervision,
    what: &str,
    mut once: impl FnMut() -> anyhow::Result<crate::sandbox::Outcome>,
) -> anyhow::Result<crate::sandbox::Outcome> {
    let mut attempt = 0;
    loop {
        let mut outcome = once()?;
        if !outcome.killed || outcome.interrupted {
            return Ok(outcome);
        }
        if attempt >= how.retries {
            eprintln!(
                "cargo-for-arm: giving up after {} hung attempt(s)",
                attempt + 1
            );
            outcome.code = EXIT_HUNG;
            return Ok(outcome);
        }
        attempt += 1;
        eprintln!(
            "cargo-for-arm: killed the hung {what}; retrying ({attempt}/{})",
            how.retries
        );
    }
}

/// Run a plan under the heartbeat: a hung run is killed (with everything in its namespace)
/// and started again, at most `how.retries` more times. A run that was interrupted (Ctrl-C,
/// SIGTERM) is never retried, nor one ended because `abort` answered true (asked every
/// second: whoever wanted the run is gone).
pub fn supervise(
    plan: &crate::sandbox::spec::Spec,
    how: Supervision,
    abort: &mut dyn FnMut() -> bool,
) -> anyhow::Result<crate::sandbox::Outcome> {
    with_retries(how, "sandbox", || {
        let stderr = match how.status {
            Status::Line => crate::sandbox::Stderr::Piped,
            Status::Plain => crate::sandbox::Stderr::Inherit,
        };
        let running = crate::sandbox::spawn(plan, stderr)?;
        let mut watcher = RunWatcher {
            heartbeat: how.hang_timeout.map(Heartbeat::new),
            timeout: how.hang_timeout.unwrap_or_default(),
            status: (how.status == Status::Line).then(StatusLine::new),
            abort: &mut *abort,
            aborted: false,
        };
        let mut outcome = running.wait(&mut watcher)?;
        if watcher.aborted {
            outcome.interrupted = true;
            outcome.code = 128 + libc::SIGKILL;
        }
        Ok(outcome)
    })
}

/// [`supervise`], never aborted.
pub fn run(
    plan: &crate::sandbox::spec::Spec,
    how: Supervision,
) -> anyhow::Result<crate::sandbox::Outcome> {
    supervise(plan, how, &mut || false)
}

/// The processes below `root` (by parent links; not `root`, the guard, whose own waiting is
/// no progress of the build): what the heartbeat samples in a run without a pid namespace,
/// whose guard is a child subreaper, so orphans stay below it.
pub fn sample_tree(root: i32) -> BTreeMap<u32, Proc> {
    let mut out = BTreeMap::new();
    for pid in descendants(root) {
        let dir = Path::new("/proc").join(pid.to_string());
        if let Some(p) = read_proc(&dir) {
            out.insert(pid, p);
        }
    }
    out
}

/// Every process whose chain of parents reaches `root` (not `root` itself).
pub fn descendants(root: i32) -> Vec<u32> {
    let mut parent = BTreeMap::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for e in entries.flatten() {
            let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            let ppid = std::fs::read_to_string(e.path().join("stat"))
                .ok()
                .and_then(|t| {
                    let rest = t[t.rfind(')')? + 1..].to_string();
                    rest.split_whitespace().nth(1)?.parse::<u32>().ok()
                });
            if let Some(pp) = ppid {
                parent.insert(pid, pp);
            }
        }
    }
    parent
        .keys()
        .copied()
        .filter(|&p| {
            let mut cur = p;
            for _ in 0..4096 {
                match parent.get(&cur) {
                    Some(&pp) if pp == root as u32 => return true,
                    Some(&pp) if pp > 1 => cur = pp,
                    _ => return false,
                }
            }
            false
        })
        .collect()
}

/// A command run without a sandbox (isolation rung 3): everything the guard process needs.
pub struct Unsandboxed {
    pub argv: Vec<String>,
    /// The whole environment (nothing else of the tool's reaches the command).
    pub env: Vec<(String, String)>,
    pub workdir: std::path::PathBuf,
    /// The seccomp programs, installed in the guard before the command starts.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    /// Run in the guard after no_new_privs, before seccomp (Landlock): an error stops the run.
    pub restrict: Box<dyn Fn() -> anyhow::Result<()>>,
}

/// The signal the guard gets when the tool dies (PR_SET_PDEATHSIG) or wants the run killed.
const GUARD_KILL: i32 = libc::SIGUSR1;
/// Signals the tool forwards to the guard, which forwards them to the command.
const GUARD_FORWARDED: [i32; 4] = [libc::SIGINT, libc::SIGTERM, libc::SIGHUP, libc::SIGQUIT];

fn sigset(sigs: &[i32]) -> libc::sigset_t {
    // SAFETY: filling a local set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in sigs {
            libc::sigaddset(&mut set, *s);
        }
        set
    }
}

/// Wait up to `ms` for one of `set`; the signal and its si_code.
fn wait_signal(set: &libc::sigset_t, ms: i64) -> Option<(i32, i32)> {
    let ts = libc::timespec {
        tv_sec: ms / 1000,
        tv_nsec: (ms % 1000) * 1_000_000,
    };
    // SAFETY: a zeroed siginfo filled by the kernel.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: waiting for blocked signals.
    let sig = unsafe { libc::sigtimedwait(set, &mut info, &ts) };
    (sig > 0).then_some((sig, info.si_code))
}

fn kill_below(root: i32) {
    for _ in 0..100 {
        let left = descendants(root);
        if left.is_empty() {
            return;
        }
        for pid in left {
            // SAFETY: killing processes below our guard.
            unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        }
        // SAFETY: reaping what was reparented to the guard (a subreaper).
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The guard: a child subreaper with PR_SET_PDEATHSIG, so every process of the run dies with
/// the tool even without a pid namespace. It applies no_new_privs, the restriction (Landlock)
/// and seccomp to itself, starts the command, forwards the signals the tool sends, and when
/// the command ends (or the tool dies, or asks with GUARD_KILL) kills whatever is left below
/// it. Never returns.
fn guard(tool: i32, u: &Unsandboxed) -> ! {
    let fail = |what: &str| -> ! {
        eprintln!("error: {what}");
        // SAFETY: leaving the forked guard.
        unsafe { libc::_exit(crate::sandbox::EXIT_SETUP) }
    };
    // SAFETY: prctl on ourselves.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, GUARD_KILL as libc::c_ulong, 0, 0, 0);
        if libc::getppid() != tool {
            libc::_exit(128 + libc::SIGKILL);
        }
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            fail("prctl(PR_SET_NO_NEW_PRIVS) failed");
        }
    }
    if let Err(e) = (u.restrict)() {
        fail(&format!("{e:#}"));
    }
    for prog in &u.seccomp {
        if let Err(e) = seccompiler::apply_filter(prog) {
            fail(&format!("installing the seccomp policy: {e}"));
        }
    }
    let mut cmd = std::process::Command::new(&u.argv[0]);
    cmd.args(&u.argv[1..])
        .env_clear()
        .envs(u.env.iter().map(|(k, v)| (k, v)))
        .current_dir(&u.workdir);
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: starting {}: {e}", u.argv[0]);
            let code = match e.kind() {
                std::io::ErrorKind::NotFound => 127,
                _ => 126,
            };
            // SAFETY: leaving the forked guard.
            unsafe { libc::_exit(code) }
        }
    };
    let cmd_pid = child.id() as i32;
    let me = std::process::id() as i32;
    let mut set_sigs = vec![libc::SIGCHLD, GUARD_KILL];
    set_sigs.extend(GUARD_FORWARDED);
    let set = sigset(&set_sigs);
    let code = loop {
        match wait_signal(&set, 1000) {
            Some((s, _)) if s == GUARD_KILL => {
                kill_below(me);
                break 128 + libc::SIGKILL;
            }
            // From the tool (kill(2)); a terminal's signals reached the command already.
            Some((s, code)) if GUARD_FORWARDED.contains(&s) && code == libc::SI_USER => {
                // SAFETY: forwarding to our child.
                unsafe { libc::kill(cmd_pid, s) };
            }
            _ => {}
        }
        // SAFETY: plain query.
        if unsafe { libc::getppid() } != tool {
            kill_below(me);
            break 128 + libc::SIGKILL;
        }
        let mut status = 0;
        let mut done = None;
        loop {
            // SAFETY: reaping our children and the orphans given to us.
            let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == cmd_pid {
                done = Some(crate::sandbox::interpret(status, "").code);
            }
        }
        if let Some(code) = done {
            kill_below(me);
            break code;
        }
    };
    // SAFETY: leaving the forked guard.
    unsafe { libc::_exit(code) }
}

/// Run `u` without a sandbox under the heartbeat (the processes below the guard), killing
/// and retrying a hung run as [`supervise`] does. The tool must be single-threaded.
pub fn run_unsandboxed(
    u: &Unsandboxed,
    how: Supervision,
) -> anyhow::Result<crate::sandbox::Outcome> {
    with_retries(how, "run", || run_guarded(u, how.hang_timeout))
}

fn run_guarded(u: &Unsandboxed, hang: Option<Duration>) -> anyhow::Result<crate::sandbox::Outcome> {
    if u.argv.is_empty() {
        anyhow::bail!("no command given");
    }
    crate::sandbox::assert_single_threaded("starting the guard")?;
    let mut sigs = vec![libc::SIGCHLD];
    sigs.extend(GUARD_FORWARDED);
    let set = sigset(&sigs);
    // GUARD_KILL too: the guard inherits the mask, so its PR_SET_PDEATHSIG signal (and ours)
    // waits for it instead of ending it before it has killed what is below it.
    sigs.push(GUARD_KILL);
    let blocked = sigset(&sigs);
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: blocking in our own (single) thread; the guard inherits the mask and waits on it.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &blocked, &mut old) };
    let tool = std::process::id() as i32;
    // SAFETY: fork from a single thread.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
        anyhow::bail!("fork failed: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        guard(tool, u);
    }
    let mut hb = hang.map(Heartbeat::new);
    let (mut interrupted, mut killed) = (false, false);
    let mut next_tick = Instant::now() + Duration::from_secs(1);
    let status = loop {
        if let Some((s, _)) = wait_signal(&set, 250) {
            if GUARD_FORWARDED.contains(&s) {
                interrupted = true;
                // SAFETY: forwarding to our guard.
                unsafe { libc::kill(pid, s) };
            }
        }
        let mut status = 0;
        // SAFETY: non-blocking reap of our guard.
        if unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) } == pid {
            break status;
        }
        if Instant::now() >= next_tick {
            next_tick = Instant::now() + Duration::from_secs(1);
            if let (Some(h), false) = (hb.as_mut(), killed) {
                if h.observe(Instant::now(), sample_tree(pid)) {
                    eprintln!(
                        "cargo-for-arm: no progress (CPU, I/O, processes) for {}s: the run is hung. Alive:\n{}",
                        hang.unwrap_or_default().as_secs(),
                        h.describe().trim_end()
                    );
                    killed = true;
                    // SAFETY: asking our guard to kill everything below it.
                    unsafe { libc::kill(pid, GUARD_KILL) };
                }
            }
        }
    };
    // SAFETY: restoring our mask; pending SIGCHLDs are harmless.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    let mut o = crate::sandbox::interpret(status, "");
    o.interrupted = interrupted;
    o.killed = killed;
    Ok(o)
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
    fn status_line_counts_crates_from_coloured_output() {
        let mut st = StatusLine::new();
        st.observe_line("\x1b[1m\x1b[32m   Compiling\x1b[0m itoa v1.0.15");
        st.observe_line("warning: unused variable");
        st.observe_line("   Compiling hello-arm v0.1.0 (/p)");
        assert_eq!(st.compiled, 2);
        let t = st.text(200);
        assert!(
            t.contains("2 crates compiled") && t.ends_with("last started: hello-arm"),
            "{t}"
        );
        assert!(st.text(30).chars().count() <= 29);
        assert_eq!(strip_ansi("\x1b[1;32mok\x1b[0m!"), "ok!");
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
