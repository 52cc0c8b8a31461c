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
//! stderr (SCM_RIGHTS) to the service, then waits for the answer. For each request the
//! service forks a handler that starts the program in a fresh ARM sandbox under the heartbeat,
//! with the project bound at the same path, and answers with the exit code. When the client
//! goes away (Ctrl-C, a killed build), the handler kills its sandbox.
//!
//! The service runs only what the sandbox could already run: programs inside the ARM
//! sandbox, with the binds the build already has. Everything a client sends is hostile (any
//! build script can connect), so the service holds these limits (docs/SECURITY.md, "The
//! runner service"):
//! - at most [`MAX_HANDLERS`] requests at once; further clients wait in the socket's backlog;
//! - a request must arrive whole within [`REQUEST_TIMEOUT`] of being accepted;
//! - the peer must run as the build's own uid (`SO_PEERCRED`);
//! - the three descriptors must be a regular file, a pipe, a socket, a terminal or one of the
//!   harmless character devices ([`stdio_kind`]): never a directory, an `O_PATH` descriptor or a
//!   kernel object (namespace, pidfd, anonymous inode);
//! - qemu's (`QEMU_*`) and the loader's (`LD_*`, `GLIBC_TUNABLES`) variables are dropped
//!   ([`forwarded`]);
//! - the service and every handler die with their parent (`PR_SET_PDEATHSIG`, checked against
//!   a parent that died before the call).
//!
//! The answer is a stream of frames: [`TICK`] whenever the ARM sandbox made progress (CPU,
//! I/O, processes) since the last look, then [`EXIT`] with the code, or [`REFUSED`] with a
//! message. The client reads them with read(2), whose bytes count in its `/proc/PID/io`: the
//! client runs in the build's pid namespace, so the build's heartbeat sees the ARM program's
//! progress there, and a busy, silent ARM test is not mistaken for a hung build.

use std::collections::BTreeMap;
use std::io::{IoSlice, IoSliceMut, Read, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};
use serde::{Deserialize, Serialize};

use crate::sandbox::binfmt::{self, Binfmt};
use crate::sandbox::spec::{guest_path, Access, Bind, Exec, Spec, SpecBuilder};

/// Where the service's directory (with its socket) appears inside the tools sandbox.
pub const GUEST_DIR: &str = "/run/cargo-for-arm/runner";
/// Where cargo-for-arm itself appears inside the tools sandbox.
pub const GUEST_EXE: &str = "/run/cargo-for-arm/bin/cargo-for-arm";
/// Where the tool's qemu appears inside the ARM sandbox when it is named as the program.
pub const GUEST_QEMU: &str = "/run/cargo-for-arm/qemu";
/// The client finds the socket here (set by the tool in the tools sandbox).
pub const SOCKET_ENV: &str = "CARGO_FOR_ARM_RUNNER_SOCKET";
/// A request larger than this is refused (arguments and environment of one program).
const MAX_REQUEST: u32 = 4 << 20;
/// At most this many requests are handled at once. cargo runs test binaries one at a time
/// (rustdoc's cross-compiled doctests a few at once); a build script that opens connections
/// by the hundred gets this many handlers, and its other clients wait in the socket's
/// backlog until a handler ends.
pub const MAX_HANDLERS: usize = 16;
/// A request must arrive whole this soon after the service accepted it (the real client
/// sends it at once): a client that sends nothing, or half a request, does not hold a
/// handler for longer.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Frame: the ARM sandbox made progress since the last one (CPU, I/O, processes).
pub const TICK: u8 = b'.';
/// Frame: the program's exit code follows (i32, little endian); the last frame.
pub const EXIT: u8 = b'X';
/// Frame: the request was refused or could not run; a length (u32, little endian) and the
/// message follow; the last frame.
pub const REFUSED: u8 = b'E';
/// The longest message of a [`REFUSED`] frame the client reads.
const MAX_MESSAGE: u32 = 64 << 10;

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
/// PATH and HOME, the cross settings for the host compiler, the loader's (`LD_*`,
/// `GLIBC_TUNABLES`) and qemu's (`QEMU_*`: qemu-user reads them from the guest's
/// environment: `QEMU_LD_PREFIX`, `QEMU_STRACE`, `QEMU_LOG_FILENAME`, `QEMU_GUEST_BASE` …).
/// Both the client and the service apply it: the service because any client can be
/// hand-made.
pub fn forwarded(name: &str) -> bool {
    const EXACT: [&str; 5] = [
        "PATH",
        "HOME",
        "CARGO_HOME",
        "PKG_CONFIG_ALLOW_CROSS",
        "GLIBC_TUNABLES",
    ];
    const PREFIXES: [&str; 10] = [
        "LD_",
        "QEMU_",
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

/// Make the calling child of `parent` die with it: `PR_SET_PDEATHSIG`, and, since the parent
/// may have died between the fork and that call (then nothing would ever signal us), a check
/// that it is still our parent.
pub(super) fn die_with(parent: i32) {
    // SAFETY: plain prctl and getppid; _exit leaves without running the parent's destructors.
    unsafe {
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0);
        if libc::getppid() != parent {
            libc::_exit(1);
        }
    }
}

impl Service {
    /// Listen on `dir/sock` and fork the service. `template` is the sandbox of ARM runs: each
    /// request sets its command, working directory and environment. Programs and
    /// working directories must lie under one of `allowed` (the binds they run with).
    /// `dir` lies in the build's own run directory, which the build removes at the end and
    /// the next build removes if the tool died (`build::RunDir`).
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
        // SAFETY: getpid cannot fail.
        let tool = unsafe { libc::getpid() };
        // SAFETY: the tool is single-threaded here (the sandbox is entered the same way); the
        // child only runs the service loop and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork => {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            die_with(tool);
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

/// Reap ended handlers: the number reaped. With `block`, wait for at least one; `None` when
/// there is no child left to wait for.
fn reap(block: bool) -> Option<usize> {
    let mut n = 0;
    loop {
        let flags = if block && n == 0 { 0 } else { libc::WNOHANG };
        // SAFETY: waiting for our own children.
        let r = unsafe { libc::waitpid(-1, std::ptr::null_mut(), flags) };
        if r > 0 {
            n += 1;
        } else if r < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted
        {
            continue;
        } else if r < 0 && n == 0 {
            return None;
        } else {
            return Some(n);
        }
    }
}

fn serve(
    listener: UnixListener,
    template: &SpecBuilder,
    allowed: &[PathBuf],
    hang_timeout: Option<Duration>,
    retries: u32,
) -> ! {
    // SAFETY: getpid cannot fail.
    let service = unsafe { libc::getpid() };
    let mut live = 0usize;
    loop {
        live = live.saturating_sub(reap(false).unwrap_or(live));
        // Every slot taken: accept nobody until a handler ends.
        while live >= MAX_HANDLERS {
            live = live.saturating_sub(reap(true).unwrap_or(live));
        }
        let stream = match listener.accept() {
            Ok((s, _)) => s,
            Err(_) => {
                // EMFILE and the like: do not spin.
                std::thread::sleep(Duration::from_millis(100));
                continue;
            }
        };
        // SAFETY: the service is single-threaded; the handler runs one request and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            answer_refused(
                &stream,
                &format!(
                    "cannot start a handler: fork => {}",
                    std::io::Error::last_os_error()
                ),
            );
            continue;
        }
        if pid == 0 {
            die_with(service);
            drop(listener);
            handle(stream, template, allowed, hang_timeout, retries);
            // SAFETY: leave without running the tool's destructors (they belong to it).
            unsafe { libc::_exit(0) };
        }
        live += 1;
    }
}

fn timed_out() -> anyhow::Error {
    anyhow::anyhow!(
        "no complete request within {} s of connecting: closed",
        REQUEST_TIMEOUT.as_secs()
    )
}

/// Let the next read on `stream` wait until `deadline` at most.
fn wait_until(stream: &UnixStream, deadline: Instant) -> Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    stream.set_read_timeout(Some(left))?;
    Ok(())
}

/// `read_exact` that gives up at `deadline`.
fn read_by(mut stream: &UnixStream, buf: &mut [u8], deadline: Instant) -> Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        wait_until(stream, deadline)?;
        match stream.read(&mut buf[filled..]) {
            Ok(0) => bail!("the client hung up in the middle of its request"),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err(timed_out())
            }
            Err(e) => return Err(e).context("reading a runner request"),
        }
    }
    Ok(())
}

/// Receive a request: a 4-byte length with the three descriptors, then the JSON body, all
/// of it by `deadline`.
fn receive(stream: &UnixStream, deadline: Instant) -> Result<(Request, Vec<OwnedFd>)> {
    let mut len = [0u8; 4];
    let mut space = nix::cmsg_space!([RawFd; 3]);
    let (got, fds, truncated) = loop {
        wait_until(stream, deadline)?;
        let mut iov = [IoSliceMut::new(&mut len)];
        let msg = match recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(m) => m,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(nix::errno::Errno::EAGAIN) => return Err(timed_out()),
            Err(e) => return Err(e).context("receiving a runner request"),
        };
        let mut fds = Vec::new();
        for c in msg.cmsgs().context("reading the descriptors")? {
            if let ControlMessageOwned::ScmRights(v) = c {
                // SAFETY: the kernel gave us these descriptors; we own them now.
                fds.extend(v.into_iter().map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }));
            }
        }
        break (msg.bytes, fds, msg.flags.contains(MsgFlags::MSG_CTRUNC));
    };
    if got == 0 {
        bail!("the client hung up without a request");
    }
    if truncated || fds.len() != 3 {
        bail!("a runner request must carry exactly three descriptors: stdin, stdout and stderr");
    }
    read_by(stream, &mut len[got..], deadline)?;
    let n = u32::from_le_bytes(len);
    if n > MAX_REQUEST {
        bail!("runner request of {n} bytes is too large");
    }
    let mut body = vec![0u8; n as usize];
    read_by(stream, &mut body, deadline)?;
    let req: Request = serde_json::from_slice(&body).context("a malformed runner request")?;
    Ok((req, fds))
}

/// The client must run as the build's own uid. The socket's directory is the user's alone,
/// so nobody else should get this far; this is the second lock.
fn check_peer(stream: &UnixStream) -> Result<()> {
    let cred = nix::sys::socket::getsockopt(stream, nix::sys::socket::sockopt::PeerCredentials)
        .context("reading the client's credentials (SO_PEERCRED)")?;
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if cred.uid() != me {
        bail!(
            "refused: the client runs as uid {}, not as the build's uid {me}",
            cred.uid()
        );
    }
    Ok(())
}

/// Filesystems whose "regular files" are kernel objects, never a program's stdio.
const KERNEL_OBJECT_FS: [(i64, &str); 3] = [
    (0x6e73_6673, "a namespace"),
    (0x5049_4446, "a pidfd"),
    (
        0x0904_1934,
        "an anonymous inode (eventfd, signalfd, epoll, …)",
    ),
];

/// What a received stdio descriptor is, if the ARM program may have it: a regular file, a
/// pipe, a socket, a terminal, or /dev/null, zero, full, random or urandom. Never a
/// directory (a way out of the ARM sandbox's view: `openat(fd, "..")`), an `O_PATH`
/// descriptor, a block device or a kernel object.
pub fn stdio_kind(fd: BorrowedFd<'_>) -> Result<&'static str, String> {
    let raw = fd.as_raw_fd();
    // SAFETY: F_GETFL on a descriptor we own.
    let flags = unsafe { libc::fcntl(raw, libc::F_GETFL) };
    if flags < 0 {
        return Err(format!("fcntl => {}", std::io::Error::last_os_error()));
    }
    if flags & libc::O_PATH != 0 {
        return Err("an O_PATH descriptor".into());
    }
    // SAFETY: fstat into a zeroed stat buffer.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    if unsafe { libc::fstat(raw, &mut st) } != 0 {
        return Err(format!("fstat => {}", std::io::Error::last_os_error()));
    }
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => {
            // SAFETY: fstatfs into a zeroed buffer.
            let mut fs: libc::statfs = unsafe { std::mem::zeroed() };
            if unsafe { libc::fstatfs(raw, &mut fs) } != 0 {
                return Err(format!("fstatfs => {}", std::io::Error::last_os_error()));
            }
            match KERNEL_OBJECT_FS
                .iter()
                .find(|(m, _)| *m == fs.f_type as i64)
            {
                Some((_, what)) => Err(what.to_string()),
                None => Ok("a regular file"),
            }
        }
        libc::S_IFIFO => Ok("a pipe"),
        libc::S_IFSOCK => Ok("a socket"),
        libc::S_IFCHR => {
            // SAFETY: isatty on a descriptor we own.
            if unsafe { libc::isatty(raw) } == 1 {
                return Ok("a terminal");
            }
            // The memory devices the sandbox's /dev has: null, zero, full, random, urandom.
            let (major, minor) = (libc::major(st.st_rdev), libc::minor(st.st_rdev));
            if major == 1 && [3, 5, 7, 8, 9].contains(&minor) {
                Ok("a memory device")
            } else {
                Err(format!("the character device {major}:{minor}"))
            }
        }
        libc::S_IFDIR => Err("a directory".into()),
        libc::S_IFBLK => Err("a block device".into()),
        libc::S_IFLNK => Err("a symbolic link".into()),
        _ => Err("an anonymous kernel object".into()),
    }
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
    let (mut b, argv) = match template.exec() {
        // No binfmt handler of the tool's own (rungs 1 and 2): the tool's static qemu is
        // named as the program, bound read-only. On rung 1 the host's registration would
        // take the program by name, but its qemu may be one that deadlocks (Debian 12's 7.2).
        Exec::Qemu { path, binfmt, .. } if *binfmt != Binfmt::Private => (
            template
                .clone()
                .bind(Bind::new(path, GUEST_QEMU, Access::ReadOnly)),
            binfmt::qemu_argv(GUEST_QEMU, &req.argv),
        ),
        _ => (template.clone(), req.argv),
    };
    b = b.argv(argv).workdir(cwd);
    for (k, v) in req.env {
        if !forwarded(&k) || k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
            continue;
        }
        b = b.env(k, v);
    }
    b.build()
}

/// Send one frame to the client, never blocking and never raising SIGPIPE: false when the
/// client is gone.
fn send_frame(peer: RawFd, frame: &[u8]) -> bool {
    // SAFETY: sending from a buffer we own on a socket we own.
    let n = unsafe {
        libc::send(
            peer,
            frame.as_ptr().cast(),
            frame.len(),
            libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
        )
    };
    n >= 0 || std::io::Error::last_os_error().kind() == std::io::ErrorKind::WouldBlock
}

fn answer_refused(stream: &UnixStream, message: &str) {
    let text = message.as_bytes();
    let text = &text[..text.len().min(MAX_MESSAGE as usize)];
    let mut frame = vec![REFUSED];
    frame.extend((text.len() as u32).to_le_bytes());
    frame.extend(text);
    let _ = (&*stream).write_all(&frame);
}

/// The progress of a handler's ARM sandbox, as the heartbeat measures it (CPU and I/O of
/// its processes, processes starting or ending), looked at between ticks.
struct Progress {
    /// This handler's pid and pid namespace.
    me: i32,
    ns: Option<PathBuf>,
    /// PID 1 of the current attempt's sandbox, once found.
    init: Option<i32>,
    last: BTreeMap<u32, crate::supervise::Proc>,
}

impl Progress {
    fn new() -> Progress {
        Progress {
            // SAFETY: getpid cannot fail.
            me: unsafe { libc::getpid() },
            ns: std::fs::read_link("/proc/self/ns/pid").ok(),
            init: None,
            last: BTreeMap::new(),
        }
    }

    /// Whether `pid` is a child of this handler in another pid namespace: PID 1 of its
    /// sandbox (and not an unrelated process that got a dead one's pid).
    fn is_sandbox(&self, pid: i32) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let ppid = stat
            .rfind(')')
            .and_then(|i| stat[i + 1..].split_whitespace().nth(1))
            .and_then(|p| p.parse::<i32>().ok());
        ppid == Some(self.me)
            && std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok() != self.ns
            && self.ns.is_some()
    }

    fn find_init(&self) -> Option<i32> {
        std::fs::read_dir("/proc")
            .ok()?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
            .find(|&pid| self.is_sandbox(pid))
    }

    /// True when the sandbox moved since the last call.
    fn advanced(&mut self) -> bool {
        if !self.init.is_some_and(|p| self.is_sandbox(p)) {
            self.init = self.find_init();
        }
        let procs = self.init.map(crate::supervise::sample).unwrap_or_default();
        let moved = procs.len() != self.last.len()
            || procs.iter().any(|(pid, p)| {
                self.last
                    .get(pid)
                    .is_none_or(|old| old.cpu != p.cpu || old.io != p.io)
            });
        self.last = procs;
        moved
    }
}

/// One request, start to end: checks, the ARM sandbox, the answer.
fn handle(
    stream: UnixStream,
    template: &SpecBuilder,
    allowed: &[PathBuf],
    hang_timeout: Option<Duration>,
    retries: u32,
) {
    match run_request(&stream, template, allowed, hang_timeout, retries) {
        Ok(code) => {
            let mut frame = vec![EXIT];
            frame.extend(code.to_le_bytes());
            let _ = (&stream).write_all(&frame);
        }
        Err(e) => answer_refused(&stream, &format!("{e:#}")),
    }
}

fn run_request(
    stream: &UnixStream,
    template: &SpecBuilder,
    allowed: &[PathBuf],
    hang_timeout: Option<Duration>,
    retries: u32,
) -> Result<i32> {
    check_peer(stream)?;
    let (req, fds) = receive(stream, Instant::now() + REQUEST_TIMEOUT)?;
    stream.set_read_timeout(None)?;
    for (fd, name) in fds.iter().zip(["stdin", "stdout", "stderr"]) {
        if let Err(what) = stdio_kind(fd.as_fd()) {
            bail!("refused: the {name} sent is {what}, not a file, pipe, socket or terminal");
        }
    }
    let plan = plan_for(template, allowed, req)?;
    for (i, fd) in fds.iter().enumerate() {
        // SAFETY: making the received descriptors our stdin, stdout and stderr.
        unsafe { libc::dup2(fd.as_raw_fd(), i as RawFd) };
    }
    drop(fds);
    let peer = stream.as_raw_fd();
    // Only a supervised build needs to hear of progress.
    let mut progress = hang_timeout.map(|_| Progress::new());
    let mut gone = move || {
        let mut p = libc::pollfd {
            fd: peer,
            events: libc::POLLRDHUP,
            revents: 0,
        };
        // SAFETY: polling one descriptor we own, without waiting.
        unsafe { libc::poll(&mut p, 1, 0) };
        if p.revents & (libc::POLLRDHUP | libc::POLLHUP | libc::POLLERR) != 0 {
            return true;
        }
        let advanced = progress.as_mut().is_some_and(Progress::advanced);
        advanced && !send_frame(peer, &[TICK])
    };
    let how = crate::supervise::Supervision {
        hang_timeout,
        retries,
        status: crate::supervise::Status::Plain,
    };
    let o = crate::supervise::supervise(&plan, how, &mut gone)?;
    if let Some(e) = &o.error {
        eprintln!("error: {e}");
    }
    if o.code != 0 {
        if let Some(note) = without_binfmt_note(template) {
            crate::ui::note(note);
        }
    }
    Ok(o.code)
}

/// The note after an ARM program failed where no binfmt handler exists (rung 2): one that
/// executes another ARM program gets ENOEXEC there.
fn without_binfmt_note(template: &SpecBuilder) -> Option<String> {
    match template.exec() {
        Exec::Qemu {
            path,
            binfmt: Binfmt::None { .. },
            ..
        } => {
            let arch = arch_of_qemu(path).unwrap_or_else(|| "ARM".into());
            Some(binfmt::enoexec_note(&arch))
        }
        _ => None,
    }
}

/// `qemu-aarch64` → `aarch64` (the tool's qemus are named after the architecture).
fn arch_of_qemu(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let a = name.strip_prefix("qemu-")?;
    Some(a.strip_suffix("-static").unwrap_or(a).to_string())
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
    // The answer is read with read(2) (a File's reads), not recv(2): only read(2) counts in
    // this process's /proc/PID/io, where the build's heartbeat sees the ARM program's ticks.
    let mut answer = std::fs::File::from(OwnedFd::from(stream));
    let ended = "the runner service ended without an exit code";
    loop {
        let mut tag = [0u8; 1];
        answer.read_exact(&mut tag).context(ended)?;
        match tag[0] {
            TICK => {}
            EXIT => {
                let mut code = [0u8; 4];
                answer.read_exact(&mut code).context(ended)?;
                return Ok(i32::from_le_bytes(code));
            }
            REFUSED => {
                let mut n = [0u8; 4];
                answer.read_exact(&mut n).context(ended)?;
                let mut text = Vec::new();
                let n = u32::from_le_bytes(n).min(MAX_MESSAGE);
                Read::take(&mut answer, n.into()).read_to_end(&mut text)?;
                eprintln!(
                    "error: cargo-for-arm runner: {}",
                    String::from_utf8_lossy(&text)
                );
                return Ok(crate::sandbox::EXIT_SETUP);
            }
            t => bail!("the runner service sent an unknown frame {t:#04x}"),
        }
    }
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
            "LD_LIBRARY_PATH",
            "LD_AUDIT",
            "GLIBC_TUNABLES",
            "QEMU_LD_PREFIX",
            "QEMU_STRACE",
            "QEMU_LOG_FILENAME",
            "QEMU_GUEST_BASE",
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

    fn kind(fd: &impl AsFd) -> Result<&'static str, String> {
        stdio_kind(fd.as_fd())
    }

    #[test]
    fn only_files_pipes_sockets_terminals_and_memory_devices_are_stdio() {
        let dir = std::env::temp_dir();
        let file = std::fs::File::open("/proc/self/exe").unwrap();
        assert_eq!(kind(&file), Ok("a regular file"));
        let (r, w) = nix::unistd::pipe().unwrap();
        assert_eq!(kind(&r), Ok("a pipe"));
        assert_eq!(kind(&w), Ok("a pipe"));
        let (a, _b) = UnixStream::pair().unwrap();
        assert_eq!(kind(&a), Ok("a socket"));
        let null = std::fs::File::open("/dev/null").unwrap();
        assert_eq!(kind(&null), Ok("a memory device"));
        // A directory, opened as std does for any path.
        let d = std::fs::File::open(&dir).unwrap();
        assert_eq!(kind(&d), Err("a directory".to_string()));
        // O_PATH, of a file or of a directory.
        for p in [Path::new("/proc/self/exe"), dir.as_path()] {
            use std::os::unix::fs::OpenOptionsExt;
            let f = std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_PATH)
                .open(p)
                .unwrap();
            assert_eq!(kind(&f), Err("an O_PATH descriptor".to_string()));
        }
        // Kernel objects: a namespace, an eventfd.
        let ns = std::fs::File::open("/proc/self/ns/pid").unwrap();
        assert_eq!(kind(&ns), Err("a namespace".to_string()));
        // SAFETY: a new eventfd, owned at once.
        let ev = unsafe { OwnedFd::from_raw_fd(libc::eventfd(0, libc::EFD_CLOEXEC)) };
        assert!(kind(&ev).is_err(), "{:?}", kind(&ev));
    }

    fn send_header(s: &UnixStream, len: u32, fds: &[RawFd]) {
        sendmsg::<()>(
            s.as_raw_fd(),
            &[IoSlice::new(&len.to_le_bytes())],
            &[ControlMessage::ScmRights(fds)],
            MsgFlags::empty(),
            None,
        )
        .unwrap();
    }

    #[test]
    fn a_request_arrives_whole_by_its_deadline_or_not_at_all() {
        let soon = || Instant::now() + Duration::from_millis(200);
        // Nothing sent.
        let (svc, _client) = UnixStream::pair().unwrap();
        let e = receive(&svc, soon()).unwrap_err().to_string();
        assert!(e.contains("no complete request"), "{e}");
        // The header and descriptors, then half of the body.
        let (svc, mut client) = UnixStream::pair().unwrap();
        send_header(&client, 100, &[0, 1, 2]);
        client.write_all(b"{\"argv\":").unwrap();
        let e = receive(&svc, soon()).unwrap_err().to_string();
        assert!(e.contains("no complete request"), "{e}");
        // Hung up half-way.
        let (svc, client) = UnixStream::pair().unwrap();
        send_header(&client, 100, &[0, 1, 2]);
        drop(client);
        let e = receive(&svc, soon()).unwrap_err().to_string();
        assert!(e.contains("hung up"), "{e}");
        // Two descriptors, or four.
        for fds in [&[0, 1][..], &[0, 1, 2, 2][..]] {
            let (svc, client) = UnixStream::pair().unwrap();
            send_header(&client, 2, fds);
            let e = receive(&svc, soon()).unwrap_err().to_string();
            assert!(e.contains("exactly three descriptors"), "{e}");
        }
        // A whole request.
        let (svc, mut client) = UnixStream::pair().unwrap();
        let body = serde_json::to_vec(&Request {
            argv: vec!["/p/t".into()],
            cwd: "/p".into(),
            env: vec![],
        })
        .unwrap();
        send_header(&client, body.len() as u32, &[0, 1, 2]);
        client.write_all(&body).unwrap();
        let (req, fds) = receive(&svc, soon()).unwrap();
        assert_eq!((req.argv.len(), fds.len()), (1, 3));
    }

    #[test]
    fn without_a_private_binfmt_qemu_is_named_as_the_program() {
        use crate::idmap::MapMode;
        use crate::sandbox::binfmt::HostEntry;
        use crate::sandbox::spec::Root;
        let dir = std::env::temp_dir()
            .canonicalize()
            .unwrap()
            .join(format!("cfa-runner-qemu-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("root")).unwrap();
        std::fs::create_dir_all(dir.join("proj")).unwrap();
        let qemu = dir.join("qemu-arm");
        std::fs::write(&qemu, b"").unwrap();
        let template = |binfmt: Binfmt| {
            SpecBuilder::new(
                Root::dir(dir.join("root")),
                Exec::Qemu {
                    path: qemu.clone(),
                    register_line: vec![],
                    binfmt,
                },
            )
            .map(MapMode::Single)
            .seccomp(crate::seccomp::Policy::Off)
        };
        let req = || Request {
            argv: vec![dir.join("proj/t").display().to_string(), "--x".into()],
            cwd: dir.join("proj").display().to_string(),
            env: vec![],
        };
        let allowed = [dir.join("proj")];
        let prog = dir.join("proj/t").display().to_string();
        // Rung 0: the program by name, through the private binfmt_misc.
        let plan = plan_for(&template(Binfmt::Private), &allowed, req()).unwrap();
        assert_eq!(plan.argv, [prog.as_str(), "--x"]);
        assert!(plan.binds.iter().all(|b| b.guest != Path::new(GUEST_QEMU)));
        // Rungs 1 and 2: the tool's own qemu, bound read-only, argv[0] kept.
        let host = Binfmt::Host(HostEntry {
            name: "qemu-arm".into(),
            interpreter: "/usr/bin/qemu-arm-static".into(),
            flags: "F".into(),
        });
        for b in [
            host,
            Binfmt::None {
                empty_private: true,
            },
        ] {
            let plan = plan_for(&template(b), &allowed, req()).unwrap();
            assert_eq!(
                plan.argv,
                [
                    GUEST_QEMU,
                    "-0",
                    prog.as_str(),
                    "-L",
                    "/",
                    prog.as_str(),
                    "--x"
                ]
            );
            let bind = plan
                .binds
                .iter()
                .find(|b| b.guest == Path::new(GUEST_QEMU))
                .unwrap();
            assert!(bind.host == qemu && bind.readonly());
        }
        assert!(without_binfmt_note(&template(Binfmt::None {
            empty_private: false
        }))
        .unwrap()
        .contains("ENOEXEC"));
        assert!(without_binfmt_note(&template(Binfmt::Private)).is_none());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_peer_is_the_builds_own_uid() {
        let (a, _b) = UnixStream::pair().unwrap();
        check_peer(&a).unwrap();
    }
}
