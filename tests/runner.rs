//! The runner service of native mode (src/build/runner.rs) against hostile clients, and the
//! heartbeat across it, as an unprivileged user. The fixtures are the cached native ones of
//! tests/native.rs (a tools rootfs and an armhf rootfs made by `rootfs create`).
//!
//! A hand-made client talks to the service of a running build the way any build script
//! could: the build's own build script holds the build open (it waits for a file) while the
//! test connects to the socket in the build's run directory.

mod common;

use std::io::{IoSlice, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use nix::sys::socket::{sendmsg, ControlMessage, MsgFlags};

use common::*;

/// `runner::MAX_HANDLERS`.
const MAX_HANDLERS: usize = 16;

fn native_home() -> PathBuf {
    native_store()
}

/// The armhf rootfs (bookworm) and its tools rootfs.
fn armhf() -> &'static str {
    tools_fixture("bookworm");
    static NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    NAME.get_or_init(|| arm_fixture("bookworm", "armhf"))
}

fn native(dir: &Path) -> Tool {
    Tool::new(dir)
        .home(&native_home())
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (name, text) in files {
        let p = dir.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
}

// ---- the hand-made client -----------------------------------------------------------------

/// What the service answered.
#[derive(Debug, PartialEq)]
enum Answer {
    Exit(i32),
    Refused(String),
    /// The connection closed without a last frame.
    Closed,
}

/// Read the frames of an answer (progress ticks are skipped) up to its last one.
fn answer(s: &mut UnixStream) -> Answer {
    s.set_nonblocking(false).unwrap();
    loop {
        let mut tag = [0u8; 1];
        if s.read(&mut tag).unwrap() == 0 {
            return Answer::Closed;
        }
        match tag[0] {
            b'.' => {}
            b'X' => {
                let mut c = [0u8; 4];
                s.read_exact(&mut c).unwrap();
                return Answer::Exit(i32::from_le_bytes(c));
            }
            b'E' => {
                let mut n = [0u8; 4];
                s.read_exact(&mut n).unwrap();
                let mut m = vec![0u8; u32::from_le_bytes(n) as usize];
                s.read_exact(&mut m).unwrap();
                return Answer::Refused(String::from_utf8_lossy(&m).into_owned());
            }
            t => panic!("unknown frame {t:#x}"),
        }
    }
}

/// Whether the service has answered (or closed) already, without waiting.
fn answered(s: &UnixStream) -> bool {
    let mut p = libc::pollfd {
        fd: s.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack, no waiting.
    unsafe { libc::poll(&mut p, 1, 0) };
    p.revents & (libc::POLLIN | libc::POLLHUP) != 0
}

/// Bytes with descriptors attached.
fn send_with_fds(s: &UnixStream, bytes: &[u8], fds: &[RawFd]) {
    let n = sendmsg::<()>(
        s.as_raw_fd(),
        &[IoSlice::new(bytes)],
        &[ControlMessage::ScmRights(fds)],
        MsgFlags::empty(),
        None,
    )
    .unwrap();
    assert_eq!(n, bytes.len());
}

/// The header (length, with the descriptors) of a request.
fn send_header(s: &UnixStream, len: usize, fds: &[RawFd]) {
    send_with_fds(s, &(len as u32).to_le_bytes(), fds);
}

fn body(argv: &[&str], cwd: &Path, env: &[(&str, &str)]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "argv": argv,
        "cwd": cwd,
        "env": env,
    }))
    .unwrap()
}

/// A whole request with these three descriptors.
fn request(sock: &Path, body: &[u8], fds: [RawFd; 3]) -> UnixStream {
    let mut s = UnixStream::connect(sock).unwrap();
    send_header(&s, body.len(), &fds);
    s.write_all(body).unwrap();
    s
}

// ---- a build held open --------------------------------------------------------------------

/// A native build of a crate whose build script writes `ready` into the target dir and then
/// waits for `go` there.
struct HeldBuild {
    child: common::Running,
    target: PathBuf,
    log: PathBuf,
}

const WAITING_BUILD_RS: &str = r#"use std::path::Path;
fn main() {
    let t = std::env::var("CARGO_TARGET_DIR").expect("CARGO_TARGET_DIR");
    let t = Path::new(&t);
    std::fs::write(t.join("ready"), b"").unwrap();
    while !t.join("go").exists() {
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
"#;

impl HeldBuild {
    fn start(proj: &Path, tag: &str) -> HeldBuild {
        // cargo's working directory (`target/for-arm/<flavour>`, one per rustc) is the one
        // the build script marks.
        for dir in working_dirs(proj, "native-armhf") {
            let _ = std::fs::remove_file(dir.join("ready"));
            let _ = std::fs::remove_file(dir.join("go"));
        }
        let log = proj.join(format!("{tag}.log"));
        // `test`: a command that runs ARM programs, so the service is started (a `build`
        // starts none).
        let child = native(proj)
            .args([
                "test",
                "--mode",
                "native",
                "--hang-timeout",
                "0",
                "--rootfs",
                armhf(),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap().into())
            .spawn();
        let mut b = HeldBuild {
            child,
            target: PathBuf::new(),
            log,
        };
        // Compiling the build script takes what it takes; a build that ends instead fails
        // the test with its output.
        loop {
            if let Some(dir) = working_dirs(proj, "native-armhf")
                .into_iter()
                .find(|d| d.join("ready").exists())
            {
                b.target = dir;
                break;
            }
            if let Some(st) = b.child.try_wait().unwrap() {
                panic!(
                    "the build ended ({st}) before its build script ran:\n{}",
                    b.log()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        b
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn run_dir(&self) -> PathBuf {
        native_home().join("run").join(self.child.id().to_string())
    }

    fn socket(&self) -> PathBuf {
        self.run_dir().join("runner/sock")
    }

    /// The service: the tool's child in the tool's own pid namespace (the sandbox's PID 1 is
    /// in a new one).
    fn service(&self) -> u32 {
        let ns = |pid: u32| std::fs::read_link(format!("/proc/{pid}/ns/pid")).ok();
        let tool = self.child.id();
        children(tool)
            .into_iter()
            .find(|&c| ns(c).is_some() && ns(c) == ns(tool))
            .unwrap_or_else(|| panic!("no runner service among the children of {tool}"))
    }

    /// Let the build script end; the build must succeed.
    fn finish(mut self) {
        std::fs::write(self.target.join("go"), b"").unwrap();
        let st = self.child.wait().unwrap();
        assert!(st.success(), "{}", self.log());
    }

    /// SIGKILL the tool, and reap it.
    fn kill9(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGKILL) };
        self.child.wait().unwrap();
    }
}

impl Drop for HeldBuild {
    /// A failed test leaves no build waiting for ever.
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn stat_of(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()
}

fn children(parent: u32) -> Vec<u32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| {
            stat_of(pid).is_some_and(|s| {
                s.rfind(')')
                    .and_then(|i| s[i + 1..].split_whitespace().nth(1).map(str::to_string))
                    == Some(parent.to_string())
            })
        })
        .collect()
}

/// Dead: gone, or a zombie nobody reaped yet.
fn dead(pid: u32) -> bool {
    stat_of(pid).is_none_or(|s| {
        s.rfind(')')
            .and_then(|i| s[i + 1..].split_whitespace().next().map(str::to_string))
            .as_deref()
            == Some("Z")
    })
}

#[test]
fn the_runner_service_holds_its_limits_against_a_hand_made_client() {
    let arm = armhf();
    let p = TempDir::new("runner-limits");
    write(
        p.path(),
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"held\"\nversion = \"0.1.0\"\nedition = \"2021\"\nbuild = \"build.rs\"\n\n[workspace]\n",
            ),
            ("src/lib.rs", ""),
            ("build.rs", WAITING_BUILD_RS),
        ],
    );

    // The tool killed with SIGKILL: its service and the service's handlers die with it, and
    // the next build removes the run directory it left.
    let mut held = HeldBuild::start(p.path(), "killed");
    let service = held.service();
    // A connection the service has handed to a handler (its child), which waits for the
    // request.
    let mut pending = UnixStream::connect(held.socket()).unwrap();
    let t0 = Instant::now();
    while children(service).is_empty() {
        assert!(t0.elapsed() < Duration::from_secs(60), "no handler started");
        std::thread::sleep(Duration::from_millis(50));
    }
    let stale = held.run_dir();
    held.kill9();
    // The handler held its end of the connection: EOF without an answer means it was
    // killed (its request timeout would have answered first).
    assert_eq!(answer(&mut pending), Answer::Closed);
    let t0 = Instant::now();
    while !dead(service) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "the runner service {service} outlived the SIGKILLed tool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(held);
    assert!(stale.join("runner").exists(), "{}", stale.display());

    let held = HeldBuild::start(p.path(), "held");
    assert!(
        !stale.exists(),
        "the run directory of the killed build was not cleaned: {}",
        stale.display()
    );
    let sock = held.socket();
    let service = held.service();

    // Loader and qemu variables never reach the ARM program; others do.
    let env_bin = p.path().join("arm-env");
    std::fs::copy(
        native_home()
            .join("rootfs")
            .join(arm)
            .join("root/usr/bin/env"),
        &env_bin,
    )
    .unwrap();
    let null = std::fs::File::open("/dev/null").unwrap();
    let (out_r, out_w) = nix::unistd::pipe().unwrap();
    let (err_r, err_w) = nix::unistd::pipe().unwrap();
    let env = [
        ("MY_VAR", "kept"),
        ("QEMU_STRACE", "1"),
        ("QEMU_LD_PREFIX", "/nonexistent"),
        ("QEMU_UNAME", "6.6.6"),
        ("LD_PRELOAD", "/nonexistent.so"),
        ("LD_LIBRARY_PATH", "/nonexistent"),
        ("GLIBC_TUNABLES", "glibc.malloc.check=3"),
        ("PATH", "/nonexistent"),
    ];
    let mut s = request(
        &sock,
        &body(&[env_bin.to_str().unwrap()], p.path(), &env),
        [null.as_raw_fd(), out_w.as_raw_fd(), err_w.as_raw_fd()],
    );
    drop((out_w, err_w));
    assert_eq!(answer(&mut s), Answer::Exit(0));
    let (mut out, mut err) = (String::new(), String::new());
    std::fs::File::from(out_r).read_to_string(&mut out).unwrap();
    std::fs::File::from(err_r).read_to_string(&mut err).unwrap();
    assert!(out.lines().any(|l| l == "MY_VAR=kept"), "{out}");
    for l in out.lines() {
        assert!(
            !l.starts_with("QEMU_")
                && !l.starts_with("LD_")
                && !l.starts_with("GLIBC_TUNABLES")
                && l != "PATH=/nonexistent",
            "{l} reached the ARM program:\n{out}"
        );
    }
    assert!(err.is_empty(), "{err}");

    // A directory as stdin is refused, and the program never runs.
    let dir = std::fs::File::open(p.path()).unwrap();
    let mut s = request(
        &sock,
        &body(&[env_bin.to_str().unwrap()], p.path(), &[]),
        [dir.as_raw_fd(), null.as_raw_fd(), null.as_raw_fd()],
    );
    match answer(&mut s) {
        Answer::Refused(m) => assert!(m.contains("stdin") && m.contains("directory"), "{m}"),
        a => panic!("{a:?}"),
    }
    // The handler is gone once the connection closes.
    assert_eq!(answer(&mut s), Answer::Closed);

    // As many clients as there are handlers: one sends half a header (with the
    // descriptors), one a header and half the body, the others nothing. Each holds a
    // handler until its request times out.
    let mut silent: Vec<UnixStream> = (0..MAX_HANDLERS)
        .map(|i| {
            let mut s = UnixStream::connect(&sock).unwrap();
            match i {
                0 => send_with_fds(&s, &[100, 0], &[0, 1, 2]),
                1 => {
                    send_header(&s, 100, &[0, 1, 2]);
                    s.write_all(b"{\"argv\":").unwrap();
                }
                _ => {}
            }
            s
        })
        .collect();
    // One more client, with a whole request: it waits for a free handler.
    let mut late = request(
        &sock,
        &body(&[env_bin.to_str().unwrap()], p.path(), &[]),
        [dir.as_raw_fd(), null.as_raw_fd(), null.as_raw_fd()],
    );
    match answer(&mut late) {
        Answer::Refused(m) => assert!(m.contains("directory"), "{m}"),
        a => panic!("{a:?}"),
    }
    // It was served only after a handler had ended: one of the silent clients had been
    // answered already.
    assert!(
        silent.iter().any(answered),
        "a request beyond {MAX_HANDLERS} was served while {MAX_HANDLERS} handlers were busy"
    );
    for s in &mut silent {
        match answer(s) {
            Answer::Refused(m) => assert!(m.contains("no complete request within"), "{m}"),
            a => panic!("{a:?}"),
        }
    }

    // The build ends: the service is stopped and the run directory removed.
    let run_dir = held.run_dir();
    held.finish();
    assert!(dead(service), "the runner service outlived its build");
    assert!(!run_dir.exists(), "{}", run_dir.display());
}

// ---- the heartbeat across the runner ------------------------------------------------------

fn run_test(proj: &Path, filter: &[&str]) -> Output {
    native(proj)
        .args([
            "test",
            "--mode",
            "native",
            "--hang-timeout",
            "10",
            "--retries",
            "0",
            "--rootfs",
            armhf(),
            "--",
        ])
        .args(filter)
        .output()
}

#[test]
fn a_busy_silent_arm_test_is_progress_for_the_build_and_a_hung_one_is_not() {
    let p = TempDir::new("runner-heartbeat");
    write(
        p.path(),
        &[
            (
                "Cargo.toml",
                "[package]\nname = \"busy\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[workspace]\n",
            ),
            (
                "src/lib.rs",
                r#"#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// 30 s of CPU under emulation, without a byte of output.
    #[test]
    fn busy() {
        let start = Instant::now();
        let mut x = 1u64;
        while start.elapsed() < Duration::from_secs(30) {
            for _ in 0..10_000 {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            }
        }
        assert_ne!(x, 0);
    }

    /// Blocked for good: no CPU, no I/O.
    #[test]
    #[ignore]
    fn hung() {
        std::thread::sleep(Duration::from_secs(3600));
    }
}
"#,
            ),
        ],
    );
    // The ARM test runs in a sandbox of the runner, outside the build's pid namespace: its
    // progress reaches the build's heartbeat through the runner's client.
    let o = run_test(p.path(), &["busy"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(
        o.status.success(),
        "a busy ARM test was taken for a hang:\n{out}\n{err}"
    );
    assert!(out.contains("test tests::busy ... ok"), "{out}\n{err}");
    assert!(!err.contains("is hung"), "{err}");

    // A blocked one is still a hang: killed by the runner's heartbeat or the build's.
    let o = run_test(p.path(), &["--ignored", "hung"]);
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(!o.status.success(), "{out}\n{err}");
    assert!(err.contains("the run is hung"), "{out}\n{err}");
}
