//! The target runner of native mode: how ARM programs that cargo starts (tests, `cargo run`,
//! benches) run in a sandbox rooted at the ARM rootfs while cargo itself runs in the tools
//! sandbox.
//!
//! A sandbox cannot start another one (its seccomp policy refuses new user namespaces, and
//! the ARM rootfs would have to be set up from inside). So the tool keeps a small service on
//! the host: before the tools sandbox starts it forks a process that listens on a Unix socket
//! bound into the sandbox. cargo's `CARGO_TARGET_<TRIPLE>_RUNNER` is cargo-for-arm itself
//! (bound read-only into the sandbox) with the hidden subcommand `__run-target`, which sends
//! the program, its arguments, working directory and environment, and its stdin, stdout and
//! stderr (SCM_RIGHTS) to the service, then waits for the exit code. For each request the
//! service forks a handler that starts the program in a fresh ARM sandbox under the heartbeat,
//! with the project bound at the same path, and answers with the exit code. When the client
//! goes away (Ctrl-C, a killed build), the handler kills its sandbox.
//!
//! The service runs only what the sandbox could already run: programs inside the ARM
//! sandbox, with the binds the build already has.

use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::sandbox::spec::{guest_path, Spec, SpecBuilder};

/// Where the service's directory (with its socket) appears inside the tools sandbox.
pub const GUEST_DIR: &str = "/run/cargo-for-arm/runner";
/// Where cargo-for-arm itself appears inside the tools sandbox.
pub const GUEST_EXE: &str = "/run/cargo-for-arm/bin/cargo-for-arm";
/// The client finds the socket here (set by the tool in the tools sandbox).
pub const SOCKET_ENV: &str = "CARGO_FOR_ARM_RUNNER_SOCKET";
/// A request larger than this is refused (arguments and environment of one program).
const MAX_REQUEST: u32 = 4 << 20;

/// The runner command line cargo is given.
pub fn runner_command() -> String {
    format!("{GUEST_EXE} __run-target")
}

#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Request {
    pub argv: Vec<String>,
    pub cwd: String,
    pub env: Vec<(String, String)>,
}

/// Variables of the build that must not reach the ARM program: the tools sandbox's own
/// PATH and HOME, the loader's, and the cross settings for the host compiler.
pub fn forwarded(name: &str) -> bool {
    const EXACT: [&str; 4] = ["PATH", "HOME", "CARGO_HOME", "PKG_CONFIG_ALLOW_CROSS"];
    const PREFIXES: [&str; 9] = [
        "LD_",
        "CC_",
        "CXX_",
        "AR_",
        "CARGO_TARGET_",
        "CARGO_BUILD_",
        "PKG_CONFIG_SYSROOT_DIR_",
        "PKG_CONFIG_LIBDIR_",
        "CARGO_FOR_ARM_",
    ];
    !EXACT.contains(&name) && !PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The service: a forked process; killed (with every run it started) on drop.
pub struct Service {
    pid: i32,
    dir: PathBuf,
}

impl Service {
    /// Listen on `dir/sock` and fork the service. `template` is the sandbox of ARM runs: each
    /// request sets its command, working directory and environment. Programs and
    /// working directories must lie under one of `allowed` (the binds they run with).
    pub fn start(
        dir: &Path,
        template: SpecBuilder,
        allowed: Vec<PathBuf>,
        hang_timeout: Option<Duration>,
        retries: u32,
    ) -> Result<Service> {
        let _ = std::fs::remove_dir_all(dir);
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // Only the user may reach the socket.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
        let listener = UnixListener::bind(dir.join("sock"))
            .with_context(|| format!("listening on {}/sock", dir.display()))?;
        // SAFETY: the tool is single-threaded here (the sandbox is entered the same way); the
        // child only runs the service loop and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork => {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            // SAFETY: die with the tool.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            serve(listener, &template, &allowed, hang_timeout, retries);
        }
        Ok(Service {
            pid,
            dir: dir.to_path_buf(),
        })
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        // SAFETY: killing and reaping our own child; its handlers and their sandboxes die
        // with it (PR_SET_PDEATHSIG at every level).
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn serve(
    listener: UnixListener,
    template: &SpecBuilder,
    allowed: &[PathBuf],
    hang_timeout: Option<Duration>,
    retries: u32,
) -> ! {
    loop {
        let stream = listener.accept();
        // Reap finished handlers.
        // SAFETY: non-blocking waits for our own children.
        while unsafe { libc::waitpid(-1, std::ptr::null_mut(), libc::WNOHANG) } > 0 {}
        let Ok((stream, _)) = stream else { continue };
        // SAFETY: the service is single-threaded; the handler runs one request and exits.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            // SAFETY: die with the service.
            unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
            drop(listener);
            let code = handle(stream, template, allowed, hang_timeout, retries);
            // SAFETY: leave without running the tool's destructors (they belong to it).
            unsafe { libc::_exit(code) };
        }
    }
}

/// Receive a request: a 4-byte length with the three descriptors, then the JSON body.
fn receive(stream: &mut UnixStream) -> Result<(Request, Vec<OwnedFd>)> {
    let mut len = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let (got, fds) = {
        let mut iov = [IoSliceMut::new(&mut len)];
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        )
        .context("receiving a runner request")?;
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("reading the descriptors")? {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: the kernel gave us these descriptors; we own them now.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        (msg.bytes, fds)
    };
    if got != 4 {
        stream.read_exact(&mut len[got..])?;
    }
    if fds.len() != 3 {
        bail!("a runner request must carry stdin, stdout and stderr");
    }
    let n = u32::from_le_bytes(len);
    if n > MAX_REQUEST {
        bail!("runner request of {n} bytes is too large");
    }
    let mut body = vec![0u8; n as usize];
    stream.read_exact(&mut body)?;
    let req: Request = serde_json::from_slice(&body).context("a malformed runner request")?;
    Ok((req, fds))
}

/// Check a request against the binds and turn it into a sandbox of its own.
pub fn plan_for(template: &SpecBuilder, allowed: &[PathBuf], req: Request) -> Result<Spec> {
    let exe = req
        .argv
        .first()
        .context("a runner request without a program")?;
    let under = |p: &Path| allowed.iter().any(|a| p.starts_with(a));
    let exe_path = guest_path(Path::new(exe)).with_context(|| format!("program {exe}"))?;
    if !under(&exe_path) {
        bail!(
            "{exe} is outside the project and target directories, so the ARM sandbox cannot see it"
        );
    }
    let cwd = guest_path(Path::new(&req.cwd))
        .ok()
        .filter(|c| under(c))
        .unwrap_or_else(|| allowed.first().cloned().unwrap_or_else(|| "/".into()));
    let mut b = template.clone().argv(req.argv).workdir(cwd);
    for (k, v) in req.env {
        if !forwarded(&k) || k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            continue;
        }
        b = b.env(k, v);
    }
    b.build()
}

fn handle(
    mut stream: UnixStream,
    template: &SpecBuilder,
    allowed: &[PathBuf],
    hang_timeout: Option<Duration>,
    retries: u32,
) -> i32 {
    let (req, fds) = match receive(&mut stream) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cargo-for-arm: runner: {e:#}");
            return 1;
        }
    };
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: making the received descriptors our stdin, stdout and stderr.
        unsafe { libc::dup2(fd.as_raw_fd(), i as RawFd) };
    }
    drop(fds);
    let code = match plan_for(template, allowed, req) {
        Err(e) => {
            eprintln!("error: cargo-for-arm runner: {e:#}");
            crate::sandbox::EXIT_SETUP
        }
        Ok(plan) => {
            let peer = stream.as_raw_fd();
            let mut gone = move || {
                let mut p = libc::pollfd {
                    fd: peer,
                    events: libc::POLLRDHUP,
                    revents: 0,
                };
                // SAFETY: polling one descriptor we own, without waiting.
                unsafe { libc::poll(&mut p, 1, 0) };
                p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0
            };
            match crate::supervise::run_supervised_until(
                &plan,
                hang_timeout,
                retries,
                false,
                &mut gone,
            ) {
                Ok(o) => {
                    if let Some(e) = &o.error {
                        eprintln!("error: {e}");
                    }
                    o.code
                }
                Err(e) => {
                    eprintln!("error: cargo-for-arm runner: {e:#}");
                    crate::sandbox::EXIT_SETUP
                }
            }
        }
    };
    let _ = stream.write_all(&code.to_le_bytes());
    0
}

/// `cargo-for-arm __run-target PROGRAM [ARGS]`: cargo's target runner inside the tools
/// sandbox. Sends the request and exits with the program's code.
pub fn client(mut argv: Vec<String>) -> Result<i32> {
    let sock = std::env::var(SOCKET_ENV).unwrap_or_else(|_| format!("{GUEST_DIR}/sock"));
    let mut stream = UnixStream::connect(&sock).with_context(|| {
        format!("connecting to the runner service at {sock} (__run-target works only inside a native-mode build)")
    })?;
    let cwd = std::env::current_dir()
        .map(|d| d.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/".into());
    // cargo names the program relative to its working directory (`cargo run`).
    if let Some(exe) = argv
        .first_mut()
        .filter(|e| e.contains('/') && !e.starts_with('/'))
    {
        *exe = Path::new(&cwd).join(&*exe).to_string_lossy().into_owned();
    }
    let env = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| forwarded(k))
        .collect();
    let body = serde_json::to_vec(&Request { argv, cwd, env })?;
    let len = (body.len() as u32).to_le_bytes();
    let fds = [0, 1, 2];
    let sent = sendmsg::<()>(
        stream.as_raw_fd(),
        &[IoSlice::new(&len)],
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    )
    .context("sending the request to the runner service")?;
    if sent != 4 {
        stream.write_all(&len[sent..])?;
    }
    stream.write_all(&body)?;
    let mut code = [0u8; 4];
    stream
        .read_exact(&mut code)
        .context("the runner service ended without an exit code")?;
    Ok(i32::from_le_bytes(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_build_environment_stays_in_the_build() {
        for k in [
            "PATH",
            "HOME",
            "LD_PRELOAD",
            "CC_armv7_unknown_linux_gnueabihf",
            "CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER",
            "CARGO_BUILD_TARGET",
            "PKG_CONFIG_SYSROOT_DIR_aarch64-unknown-linux-gnu",
            "CARGO_FOR_ARM_RUNNER_SOCKET",
        ] {
            assert!(!forwarded(k), "{k}");
        }
        for k in [
            "CARGO_MANIFEST_DIR",
            "CARGO_PKG_NAME",
            "RUST_BACKTRACE",
            "TERM",
            "MY_TEST_VAR",
        ] {
            assert!(forwarded(k), "{k}");
        }
    }
}
