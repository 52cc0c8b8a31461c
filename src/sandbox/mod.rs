//! The sandbox: prepare everything on the host, clone into new namespaces, write the id maps,
//! let the child set up and exec, and wait for it while forwarding signals.
//!
//! Stages (see docs/ARCHITECTURE.md): host (plan → `ChildSpec`, clone, id maps, wait) →
//! child set-up (`init::setup`: mounts, binfmt, pivot_root) → PID 1 (`init::run_init`) →
//! command (`init::exec_command`: drop privileges, seccomp, execve). Everything between
//! clone and exec calls the kernel through `sys::Sys` and allocates nothing.

pub mod binfmt;
pub mod init;
pub mod mounts;
#[cfg(test)]
mod recording;
pub mod spec;
pub mod sys;

use std::ffi::CString;
use std::io::Read;
use std::os::fd::{AsRawFd, IntoRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::errno::Errno;

use crate::idmap::{self, IdMap};
use spec::{cpath, Network, Spec};
use sys::{Kernel, Sys};

/// cargo-for-arm could not set the sandbox up (documented in the README and `--help`).
pub const EXIT_SETUP: i32 = 125;
/// The command exists but could not be executed.
pub const EXIT_NOT_EXECUTABLE: i32 = 126;
/// The command was not found in the rootfs.
pub const EXIT_NOT_FOUND: i32 = 127;

/// Signals the tool passes on to the command (through PID 1, which forwards them too).
pub const FORWARDED: [i32; 6] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

/// Everything the child needs, computed before clone.
pub struct ChildSpec {
    pub rootfs: CString,
    pub mounts: Vec<mounts::MountOp>,
    pub workdir: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    pub exec_candidates: Vec<CString>,
    pub path_shown: String,
    pub full_map: bool,
    pub new_net: bool,
    pub keep_caps: bool,
    /// Cover the rootfs with a throwaway overlay (stored rootfs are never modified).
    pub ephemeral: bool,
    /// BPF programs installed just before execve.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    pub interactive: bool,
    pub go_fd: RawFd,
    pub report_fd: RawFd,
    /// When set, the command's stderr goes to this pipe (the tool reads it to draw a status
    /// line under cargo's output).
    pub stderr_fd: Option<RawFd>,
}

/// How the sandboxed command ended, as the tool should exit.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Outcome {
    pub code: i32,
    /// A failure of cargo-for-arm itself (set-up or exec), already worded for the user.
    pub error: Option<String>,
    /// A signal (Ctrl-C, SIGTERM …) was forwarded during the run: never retry it.
    pub interrupted: bool,
    /// The supervisor killed the sandbox (a hang).
    pub killed: bool,
}

/// Forking from a multi-threaded process can leave the child stuck on a lock another thread
/// held; the sandbox is always entered from a single thread.
///
/// A thread that has just been joined (the HTTP client's runtime thread after a qemu or rootfs
/// fetch) can still be counted for a moment: `pthread_join` returns when the kernel clears the
/// thread's id, before the kernel has released it. So a count above one is read again for a
/// while before it is called an error; a thread that is really still running stays counted.
/// `when` ends the error: "entering the sandbox", "starting the guard".
pub(crate) fn assert_single_threaded(when: &str) -> Result<()> {
    settle_threads(thread_count, SETTLE_READS, Duration::from_millis(10), when)
}

/// How often [`assert_single_threaded`] reads the count before it gives up (about 2 s).
const SETTLE_READS: u32 = 200;

fn thread_count() -> Result<String> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("Threads:"))
        .map(|t| t.trim().to_string())
        .unwrap_or_default())
}

fn settle_threads(
    mut count: impl FnMut() -> Result<String>,
    reads: u32,
    pause: Duration,
    when: &str,
) -> Result<()> {
    let mut threads = count()?;
    for _ in 1..reads {
        if threads == "1" {
            return Ok(());
        }
        std::thread::sleep(pause);
        threads = count()?;
    }
    if threads != "1" {
        bail!("internal error: cargo-for-arm has {threads} threads when {when}");
    }
    Ok(())
}

fn is_foreground_tty() -> bool {
    // SAFETY: terminal queries on fd 0.
    unsafe { libc::isatty(0) == 1 && libc::tcgetpgrp(0) == libc::getpgrp() }
}

fn clone_error(e: Errno) -> anyhow::Error {
    let fix = match e {
        Errno::ENOSPC => "the user namespace limit is reached: check 'sysctl user.max_user_namespaces' (0 disables them; set it to e.g. 15000)",
        Errno::EPERM => "unprivileged user namespaces are disabled: on Debian 'sysctl kernel.unprivileged_userns_clone=1'; inside a container its seccomp profile may forbid them",
        Errno::EINVAL => "this kernel lacks one of the namespaces needed (user, mount, pid, uts, ipc)",
        _ => "run 'cargo for-arm doctor'",
    };
    anyhow::anyhow!("user namespaces unavailable: clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID...) => {e:?} ({}); {fix}", e.desc())
}

/// `clone(flags)` without a new stack: like fork, into the new namespaces. 0 in the child.
fn clone_fork(flags: libc::c_int) -> Result<i32> {
    // SAFETY: clone without a new stack behaves like fork; callers clone from one thread or
    // only make system calls in the child.
    let pid = unsafe {
        libc::syscall(
            libc::SYS_clone,
            (flags | libc::SIGCHLD) as libc::c_ulong,
            0usize,
            0usize,
            0usize,
            0usize,
        )
    };
    if pid < 0 {
        return Err(clone_error(Errno::last()));
    }
    Ok(pid as i32)
}

/// Prepare the child's specification from a plan.
fn child_spec(
    plan: &Spec,
    go_fd: RawFd,
    report_fd: RawFd,
    stderr_fd: Option<RawFd>,
) -> Result<ChildSpec> {
    let envp = plan
        .env
        .iter()
        .map(|(k, v)| CString::new(format!("{k}={v}")).context("environment has NUL"))
        .collect::<Result<Vec<_>>>()?;
    let path = plan
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    Ok(ChildSpec {
        rootfs: cpath(&plan.rootfs)?,
        mounts: mounts::mount_plan(plan)?,
        workdir: cpath(&plan.workdir)?,
        argv: plan
            .argv
            .iter()
            .map(|a| CString::new(a.as_str()).context("argument contains NUL"))
            .collect::<Result<_>>()?,
        envp,
        exec_candidates: init::exec_candidates(&plan.argv[0], &path),
        path_shown: path,
        full_map: matches!(plan.idmap, IdMap::Full { .. }),
        new_net: plan.network == Network::None,
        keep_caps: plan.keep_caps(),
        ephemeral: plan.ephemeral(),
        seccomp: plan.seccomp.clone(),
        interactive: is_foreground_tty(),
        go_fd,
        report_fd,
        stderr_fd,
    })
}

/// A sandbox that has been started: PID 1's host pid and the report pipe.
pub struct Running {
    pub pid: i32,
    report: OwnedFd,
    interactive: bool,
    stderr: Option<OwnedFd>,
}

/// What the host does while a sandbox runs.
pub trait Watcher {
    /// About once a second; true kills the whole sandbox.
    fn tick(&mut self, _pid: i32) -> bool {
        false
    }
    /// Bytes the command wrote to its stderr, when it was piped (`spawn(.., Stderr::Piped)`).
    fn stderr(&mut self, _bytes: &[u8]) {}
    /// The run ended; the last bytes were passed to `stderr`.
    fn finish(&mut self) {}
}

/// Enter the sandbox and start the command. Signals in `FORWARDED` and SIGCHLD are blocked
/// on return; the caller waits with [`Running::wait`]. With `pipe_stderr` the command's
/// stderr is a pipe the watcher reads.
/// Where the command's stderr goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stderr {
    /// The tool's own stderr.
    Inherit,
    /// A pipe the watcher reads (for the status line under cargo's output).
    Piped,
}

pub fn spawn(plan: &Spec, stderr: Stderr) -> Result<Running> {
    let pipe_stderr = stderr == Stderr::Piped;
    let (go_rd, go_wr) = sys::pipe()?;
    let (rep_rd, rep_wr) = sys::pipe()?;
    let err_pipe = pipe_stderr.then(sys::pipe).transpose()?;
    let spec = child_spec(
        plan,
        go_rd.as_raw_fd(),
        rep_wr.as_raw_fd(),
        err_pipe.as_ref().map(|(_, w)| w.as_raw_fd()),
    )?;
    // The pointer arrays execve takes: the child builds nothing.
    let exec_args = init::ExecArgs::new(&spec);
    let blocked = sys::sigset(FORWARDED.into_iter().chain([libc::SIGCHLD, libc::SIGTTOU]));
    // SAFETY: changing our own signal mask; the child inherits it and PID 1 waits on it.
    unsafe { libc::sigprocmask(libc::SIG_BLOCK, &blocked, std::ptr::null_mut()) };
    assert_single_threaded("entering the sandbox")?;
    let mut flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWUTS
        | libc::CLONE_NEWIPC;
    if plan.network == Network::None {
        flags |= libc::CLONE_NEWNET;
    }
    let pid = clone_fork(flags)?;
    if pid == 0 {
        // From here to execve the child calls the kernel only through `sys`.
        Kernel.close(go_wr.into_raw_fd());
        Kernel.close(rep_rd.into_raw_fd());
        init::child_main(&spec, &exec_args);
    }
    drop(go_rd);
    drop(rep_wr);
    let stderr = err_pipe.map(|(r, w)| {
        drop(w);
        // SAFETY: making our read end non-blocking.
        unsafe { libc::fcntl(r.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) };
        r
    });
    if let Err(e) = idmap::write_maps(&plan.idmap, pid) {
        // SAFETY: killing and reaping our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
            libc::waitpid(pid, std::ptr::null_mut(), 0);
        }
        return Err(e);
    }
    Kernel
        .write_all(go_wr.as_raw_fd(), &[1])
        .context("starting the sandbox")?;
    Ok(Running {
        pid,
        report: rep_rd,
        interactive: spec.interactive,
        stderr,
    })
}

impl Running {
    /// Read what the command wrote to the piped stderr, if any, without blocking.
    fn drain(&mut self, w: &mut dyn Watcher) {
        let Some(fd) = &self.stderr else { return };
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: reading into a stack buffer from our non-blocking pipe.
            let n = unsafe { libc::read(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len()) };
            if n <= 0 {
                break;
            }
            w.stderr(&buf[..n as usize]);
        }
    }

    /// Wait for PID 1, forwarding signals, feeding the watcher; when its `tick` answers
    /// true the whole sandbox is killed (PID 1 dies, and with it its namespace).
    pub fn wait(mut self, w: &mut dyn Watcher) -> Result<Outcome> {
        let set = sys::sigset(FORWARDED.into_iter().chain([libc::SIGCHLD]));
        let (mut interrupted, mut killed) = (false, false);
        let mut next_tick = Instant::now() + Duration::from_secs(1);
        // PID 1's exit wakes the poll too (a pidfd is readable once the process is gone), so
        // the end of a short run is seen at once, not at the next 250 ms tick.
        // SAFETY: pidfd_open of our own child; -1 (an old kernel) leaves the plain sleep.
        let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, self.pid, 0) } as i32;
        // SAFETY: a new descriptor, owned here alone.
        let pidfd = (pidfd >= 0)
            .then(|| unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(pidfd) });
        let status = loop {
            // Sleep until output arrives, PID 1 exits or 250 ms pass (signals are blocked;
            // they wait for us).
            self.poll_stderr(250, pidfd.as_ref().map_or(-1, |f| f.as_raw_fd()));
            self.drain(w);
            interrupted |= self.forward_pending(&set);
            let mut status = 0;
            // SAFETY: non-blocking reap of our child.
            if unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) } == self.pid {
                break status;
            }
            if Instant::now() >= next_tick {
                next_tick = Instant::now() + Duration::from_secs(1);
                if !killed && w.tick(self.pid) {
                    killed = true;
                    // SAFETY: killing our own child, PID 1 of the sandbox.
                    unsafe { libc::kill(self.pid, libc::SIGKILL) };
                }
            }
        };
        let mut outcome = self.finish(w, status);
        outcome.interrupted = interrupted;
        outcome.killed = killed;
        Ok(outcome)
    }

    /// Wait up to `ms` milliseconds for output on the piped stderr or the exit of PID 1
    /// (`pidfd`; or just sleep).
    fn poll_stderr(&self, ms: i32, pidfd: i32) {
        let mut pfd = [
            libc::pollfd {
                fd: self.stderr.as_ref().map_or(-1, |f| f.as_raw_fd()),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: pidfd,
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds on the stack (fd -1 is ignored by poll).
        unsafe { libc::poll(pfd.as_mut_ptr(), 2, ms) };
    }

    /// Collect the pending blocked signals without waiting and forward all but SIGCHLD to
    /// PID 1; whether any was forwarded.
    fn forward_pending(&self, set: &libc::sigset_t) -> bool {
        let zero = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        let mut forwarded = false;
        loop {
            // SAFETY: collecting pending blocked signals without waiting.
            let sig = unsafe { libc::sigtimedwait(set, std::ptr::null_mut(), &zero) };
            if sig <= 0 {
                return forwarded;
            }
            if sig != libc::SIGCHLD {
                forwarded = true;
                // SAFETY: forwarding to our own child.
                unsafe { libc::kill(self.pid, sig) };
            }
        }
    }

    /// PID 1 is gone, and with it everything in the namespace: pass on the last output,
    /// take the terminal back, and read the report.
    fn finish(mut self, w: &mut dyn Watcher, status: i32) -> Outcome {
        self.drain(w);
        w.finish();
        if self.interactive {
            // SAFETY: take the terminal back (SIGTTOU is blocked).
            unsafe { libc::tcsetpgrp(0, libc::getpgrp()) };
        }
        let mut text = String::new();
        std::fs::File::from(self.report)
            .read_to_string(&mut text)
            .ok();
        interpret(status, &text)
    }
}

/// Turn PID 1's wait status and the report lines into the tool's outcome.
pub fn interpret(status: i32, report: &str) -> Outcome {
    for line in report.lines() {
        let mut parts = line.splitn(3, '\t');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("setup"), Some(msg), None) => {
                return Outcome {
                    code: EXIT_SETUP,
                    error: Some(format!("setting up the sandbox: {msg}")),
                    ..Outcome::default()
                }
            }
            (Some("exec"), Some(code), Some(msg)) => {
                return Outcome {
                    code: code.parse().unwrap_or(EXIT_SETUP),
                    error: Some(msg.to_string()),
                    ..Outcome::default()
                }
            }
            _ => {}
        }
    }
    Outcome {
        code: sys::exit_code(status).unwrap_or(EXIT_SETUP),
        ..Outcome::default()
    }
}

/// Run `child` in a new user namespace (plus `extra` namespace flags) whose id map `map` the
/// host writes first; return its exit code. `child` runs in a fork-like clone: it should
/// only make system calls or exec (the caller may have had threads).
pub fn in_userns(extra: libc::c_int, map: &IdMap, child: &dyn Fn() -> i32) -> Result<i32> {
    let (go_rd, go_wr) = sys::pipe()?;
    // The child only reads a byte and runs `child`.
    let pid = clone_fork(libc::CLONE_NEWUSER | extra)?;
    if pid == 0 {
        Kernel.close(go_wr.into_raw_fd());
        // Dies with the tool, even when the tool is SIGKILLed mid-unpack.
        init::await_host(&Kernel, go_rd.as_raw_fd());
        Kernel.exit(child());
    }
    drop(go_rd);
    let mapped = idmap::write_maps(map, pid);
    if mapped.is_ok() {
        Kernel.write_all(go_wr.as_raw_fd(), &[1]).ok();
    }
    drop(go_wr);
    let mut status = 0;
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    mapped?;
    Ok(interpret(status, "").code)
}

/// Run this program again with `args`, as root of a user namespace with the `map` (used to
/// unpack and remove trees whose files belong to subordinate ids).
pub fn reexec_in_userns(map: &IdMap, args: &[String]) -> Result<i32> {
    let exe = CString::new("/proc/self/exe").expect("no NUL");
    let argv: Vec<CString> = std::iter::once("cargo-for-arm".to_string())
        .chain(args.iter().cloned())
        .map(|a| CString::new(a).context("argument contains NUL"))
        .collect::<Result<_>>()?;
    let ptrs: Vec<*const libc::c_char> = argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    in_userns(0, map, &|| {
        sys::execv(&exe, &ptrs);
        EXIT_NOT_EXECUTABLE
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_still_being_released_is_waited_for_and_one_that_stays_is_an_error() {
        let mut seen = vec!["1", "2", "3"];
        settle_threads(
            || Ok(seen.pop().unwrap_or("1").to_string()),
            10,
            Duration::ZERO,
            "entering the sandbox",
        )
        .expect("the count fell to one");
        let mut reads = 0;
        let err = settle_threads(
            || {
                reads += 1;
                Ok("2".to_string())
            },
            10,
            Duration::ZERO,
            "entering the sandbox",
        )
        .unwrap_err();
        assert_eq!(reads, 10);
        assert!(
            err.to_string()
                .contains("2 threads when entering the sandbox"),
            "{err}"
        );
    }

    #[test]
    fn outcomes() {
        // Exit 42 passes through; signal 15 becomes 143.
        assert_eq!(
            interpret(42 << 8, ""),
            Outcome {
                code: 42,
                ..Outcome::default()
            }
        );
        assert_eq!(interpret(15, "").code, 143);
        let o = interpret(125 << 8, "setup\tmount(proc, /proc) => EPERM\n");
        assert_eq!(o.code, EXIT_SETUP);
        assert!(o.error.unwrap().contains("mount(proc"));
        let o = interpret(127 << 8, "exec\t127\tfoo: command not found\n");
        assert_eq!(o.code, 127);
    }
}
