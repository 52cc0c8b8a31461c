//! Shared helpers of the integration tests: the real binary, cached fixtures, and the
//! guarantee that sandbox tests run as an unprivileged user.
#![allow(dead_code)]

pub mod http;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub const TOOL: &str = env!("CARGO_BIN_EXE_cargo-for-arm");

/// Sandbox tests prove nothing as root: refuse to run them that way.
pub fn assert_unprivileged() {
    let uid = unsafe { libc::geteuid() };
    assert_ne!(
        uid, 0,
        "sandbox tests must run as an unprivileged user: use scripts/test.sh (as root it creates one)"
    );
}

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false")
}

/// Build (once, cached) and return a fixture from tests/support/fixtures.sh.
pub fn fixture(name: &str) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fixtures.sh");
    let out = Command::new("sh")
        .arg(&script)
        .arg(name)
        .output()
        .expect("running fixtures.sh");
    assert!(
        out.status.success(),
        "fixture {name} could not be built: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

pub fn qemu_dir() -> PathBuf {
    fixture("qemu")
}

/// A fresh directory owned by the test user, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("cfa-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = Command::new("chmod")
            .arg("-R")
            .arg("u+rwX")
            .arg(&self.0)
            .output();
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A copy of a fixture rootfs the test may change.
pub fn rootfs_copy(name: &str, into: &Path) -> PathBuf {
    let src = fixture(name);
    let dest = into.join("rootfs");
    let st = Command::new("cp")
        .arg("-a")
        .arg(&src)
        .arg(&dest)
        .status()
        .unwrap();
    assert!(st.success());
    dest
}

/// `cargo-for-arm` with the fixture qemus reachable through CARGO_FOR_ARM_QEMU_<ARCH>, run
/// from `cwd`.
pub fn tool(cwd: &Path) -> Command {
    assert_unprivileged();
    let q = qemu_dir();
    let mut c = Command::new(TOOL);
    c.current_dir(cwd)
        .env("CARGO_FOR_ARM_QEMU_ARM", q.join("qemu-arm"))
        .env("CARGO_FOR_ARM_QEMU_AARCH64", q.join("qemu-aarch64"));
    c
}

/// `cargo-for-arm run --rootfs R ARGS... -- sh -c SCRIPT` in a fresh project dir.
pub fn run_sh(rootfs: &Path, args: &[&str], script: &str) -> Output {
    let proj = TempDir::new("proj");
    let out = tool(proj.path())
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
        .unwrap();
    out
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A line `Key:\tvalue` of a /proc status text.
pub fn status_field<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .find_map(|l| l.strip_prefix(key).and_then(|r| r.strip_prefix(':')))
        .map(str::trim)
}

/// Pids of host processes whose command line contains `needle`.
pub fn processes_with(needle: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmd) = std::fs::read(e.path().join("cmdline")) {
            let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
            if cmd.contains(needle) {
                found.push(pid);
            }
        }
    }
    found
}

/// `e_machine` of an ELF file (40 ARM, 183 AArch64).
pub fn elf_machine(p: &Path) -> u16 {
    let data = std::fs::read(p).unwrap();
    assert_eq!(&data[..4], b"\x7fELF", "{} is not an ELF file", p.display());
    u16::from_le_bytes([data[18], data[19]])
}

/// Copy examples/EXAMPLE into `dir` (without its target dir).
pub fn copy_example(example: &str, dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(example);
    let st = Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", src.display()))
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success());
    let _ = std::fs::remove_dir_all(dir.join("target"));
}
