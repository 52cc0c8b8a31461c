//! Shared helpers of the integration tests: the one way to invoke the real binary ([`Tool`],
//! with an environment the test chooses), cached fixtures, and the guarantee that sandbox tests
//! run as an unprivileged user.
#![allow(dead_code)]

pub mod aptrepo;
pub mod http;

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};

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

/// The name of the user running the tests, from the password database (not $USER).
pub fn user_name() -> String {
    nix::unistd::User::from_uid(nix::unistd::getuid())
        .ok()
        .flatten()
        .expect("the test user is in the password database")
        .name
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

/// The directory the fixtures are cached in, kept between runs (fixtures.sh cache-dir).
pub fn cache_dir() -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| fixture("cache-dir")).clone()
}

/// A store (CARGO_FOR_ARM_HOME) kept between runs in the fixture cache, for rootfs made by
/// cargo-for-arm's own `rootfs create` (see [`ensure_rootfs`]).
pub fn store_fixture(name: &str) -> PathBuf {
    cache_dir().join(name)
}

/// Create the rootfs `name` in the kept store `store` with `rootfs create NAME ARGS`, once:
/// a lock file makes concurrent test processes (and concurrent runs of the suite) take turns.
/// Returns the tool's stderr when this call created it.
pub fn ensure_rootfs(store: &Path, name: &str, args: &[&str]) -> Option<String> {
    if store.join("rootfs").join(name).join("entry.toml").exists() {
        return None;
    }
    let lock_path = cache_dir().join(format!(
        ".lock-store-{}-{name}",
        store.file_name().unwrap().to_string_lossy()
    ));
    let lock = std::fs::File::create(&lock_path).unwrap();
    let _held = Flock::exclusive(&lock);
    if store.join("rootfs").join(name).join("entry.toml").exists() {
        return None;
    }
    let o = Tool::new(&std::env::temp_dir())
        .home(store)
        .args(["rootfs", "create", name])
        .args(args)
        .output();
    assert!(
        o.status.success(),
        "creating the fixture {name} in {} failed:\n{}",
        store.display(),
        stderr(&o)
    );
    Some(stderr(&o))
}

/// A turn at something shared with other tests, of this process or of another run of the
/// suite (they share the fixture cache): an exclusive lock on `<cache>/.turn-NAME`.
pub struct Turn(std::fs::File);

pub fn take_turn(name: &str) -> Turn {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::create(cache_dir().join(format!(".turn-{name}"))).unwrap();
    // Each call opens its own file description, so threads of one process exclude each other
    // as well as other processes do.
    assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
    Turn(f)
}

/// An exclusive flock(2), released on drop.
struct Flock<'a>(&'a std::fs::File);

impl<'a> Flock<'a> {
    fn exclusive(f: &'a std::fs::File) -> Flock<'a> {
        use std::os::fd::AsRawFd;
        assert_eq!(unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) }, 0);
        Flock(f)
    }
}

impl Drop for Flock<'_> {
    fn drop(&mut self) {
        use std::os::fd::AsRawFd;
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// A fresh directory owned by the test user (a new name, never an existing one), removed on
/// drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        let template = std::env::temp_dir().join(format!("cfa-{tag}-XXXXXX"));
        let mut buf = template.into_os_string().into_vec();
        buf.push(0);
        // mkdtemp: a name nobody else has (another user's or an earlier run's leftovers).
        let p = unsafe { libc::mkdtemp(buf.as_mut_ptr().cast()) };
        assert!(
            !p.is_null(),
            "mkdtemp in {}: {}",
            std::env::temp_dir().display(),
            std::io::Error::last_os_error()
        );
        buf.pop();
        let path = PathBuf::from(OsString::from_vec(buf));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        TempDir(path)
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
        if self.0.exists() {
            // Files of subordinate ids (a rootfs pulled with the full map) are left: remove them
            // as root of a user namespace with those ids mapped.
            let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/fixtures.sh");
            let _ = Command::new("sh")
                .arg(script)
                .arg("rm-tree")
                .arg(&self.0)
                .output();
        }
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

/// The system directories whose programs the tool may find on PATH, as on a user's machine.
const SYSTEM_DIRS: [&str; 6] = [
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// `cargo` and `rustc` of the toolchain that runs the tests (the real binaries of its
/// sysroot, not rustup's proxies, which would need the test process's environment).
fn toolchain_programs() -> Vec<(String, PathBuf)> {
    static TC: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    TC.get_or_init(|| {
        let out = Command::new("rustc")
            .args(["--print", "sysroot"])
            .output()
            .expect("running rustc --print sysroot");
        assert!(out.status.success(), "rustc --print sysroot failed");
        let bin = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()).join("bin");
        let cargo = Some(bin.join("cargo"))
            .filter(|p| p.is_file())
            .or_else(|| std::env::var_os("CARGO").map(PathBuf::from))
            .expect("the toolchain's cargo");
        vec![("cargo".into(), cargo), ("rustc".into(), bin.join("rustc"))]
    })
    .clone()
}

/// A directory of links to the host's programs: the toolchain's cargo and rustc, then every
/// program of [`SYSTEM_DIRS`], except any qemu (a host with qemu-user-static has them in
/// /usr/bin) and the names in `hidden`. Kept in the fixture cache, named by its content.
pub fn host_bin(hidden: &[&str]) -> PathBuf {
    static MADE: OnceLock<Mutex<HashMap<Vec<String>, PathBuf>>> = OnceLock::new();
    let key: Vec<String> = hidden.iter().map(|s| s.to_string()).collect();
    // Held while making it: the test threads of this process make it once.
    let mut made = MADE
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    if let Some(p) = made.get(&key) {
        return p.clone();
    }
    let mut links: Vec<(String, PathBuf)> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut add = |name: String, target: PathBuf| {
        if !name.starts_with("qemu-")
            && !hidden.contains(&name.as_str())
            && seen.insert(name.clone())
        {
            links.push((name, target));
        }
    };
    for (name, target) in toolchain_programs() {
        add(name, target);
    }
    for dir in SYSTEM_DIRS {
        let Ok(rd) = std::fs::read_dir(dir) else {
            continue;
        };
        let mut names: Vec<OsString> = rd.flatten().map(|e| e.file_name()).collect();
        names.sort();
        for name in names {
            let p = Path::new(dir).join(&name);
            let executable = std::fs::metadata(&p)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
            if executable {
                add(name.to_string_lossy().into_owned(), p);
            }
        }
    }
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    for (name, target) in &links {
        h.update(name.as_bytes());
        h.update(b"\0");
        h.update(target.as_os_str().as_bytes());
        h.update(b"\n");
    }
    let digest: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let base = cache_dir().join("host-bin");
    let dest = base.join(digest);
    // Written last: a directory without it is not one this function finished.
    let complete = |d: &Path| d.join(".complete").is_file();
    if !complete(&dest) {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let tag = format!("{}-{n}", std::process::id());
        std::fs::create_dir_all(&base).unwrap();
        if dest.exists() {
            // Unfinished (a killed run): moved aside first, so nobody uses it meanwhile.
            let stale = base.join(format!(".stale-{tag}"));
            if std::fs::rename(&dest, &stale).is_ok() {
                let _ = std::fs::remove_dir_all(&stale);
            }
        }
        // Made aside and renamed: it appears whole, and a concurrent test process that made
        // the same first wins.
        let staged = base.join(format!(".tmp-{tag}"));
        let _ = std::fs::remove_dir_all(&staged);
        std::fs::create_dir(&staged).unwrap();
        for (name, target) in &links {
            std::os::unix::fs::symlink(target, staged.join(name)).unwrap();
        }
        std::fs::write(staged.join(".complete"), format!("{}\n", links.len())).unwrap();
        if std::fs::rename(&staged, &dest).is_err() {
            let _ = std::fs::remove_dir_all(&staged);
            assert!(complete(&dest), "could not make {}", dest.display());
        }
    }
    made.insert(key, dest.clone());
    dest
}

/// The one way the tests invoke `cargo-for-arm`: its whole environment is chosen here, none
/// of the test process's (or the user's) reaches it.
///
/// - `PATH`: [`host_bin`] (the toolchain's cargo and rustc, the system's programs, no qemu),
///   after the directories of [`Tool::path_first`].
/// - `HOME`: a fresh empty directory (no config file, no ~/.cargo), or [`Tool::user_home`].
/// - `CARGO_FOR_ARM_HOME`: a fresh empty store, or [`Tool::home`].
/// - `CARGO_HOME`: a registry cache of the tests' own, kept between runs.
/// - `CARGO_FOR_ARM_QEMU_ARM` / `_AARCH64`: the fixture qemus (removed by [`Tool::no_qemu`]).
/// - nothing else: every other variable (CARGO_FOR_ARM_*, XDG_*, CI, RUST*, CARGO_*) is
///   unset unless the test sets it with [`Tool::env`].
pub struct Tool {
    cmd: Command,
    path_first: Vec<PathBuf>,
    hidden: Vec<String>,
    keep: Vec<TempDir>,
}

impl Tool {
    /// `cargo-for-arm`, run from `cwd`.
    pub fn new(cwd: &Path) -> Tool {
        Tool::of(Path::new(TOOL), cwd)
    }

    /// Another copy of the binary (`program`), run from `cwd`, in the same environment.
    pub fn of(program: &Path, cwd: &Path) -> Tool {
        assert_unprivileged();
        let q = qemu_dir();
        let scratch = TempDir::new("tool");
        let (home, store) = (scratch.path().join("home"), scratch.path().join("store"));
        std::fs::create_dir(&home).unwrap();
        let mut cmd = Command::new(program);
        cmd.current_dir(cwd)
            .env_clear()
            .env("HOME", &home)
            .env("CARGO_FOR_ARM_HOME", &store)
            .env("CARGO_HOME", cache_dir().join("cargo-home"))
            .env("CARGO_FOR_ARM_QEMU_ARM", q.join("qemu-arm"))
            .env("CARGO_FOR_ARM_QEMU_AARCH64", q.join("qemu-aarch64"));
        Tool {
            cmd,
            path_first: Vec::new(),
            hidden: Vec::new(),
            keep: vec![scratch],
        }
    }

    /// The store: `CARGO_FOR_ARM_HOME`.
    pub fn home(mut self, store: &Path) -> Tool {
        self.cmd.env("CARGO_FOR_ARM_HOME", store);
        self
    }

    /// No CARGO_FOR_ARM_HOME: the default store of the user's home (see [`Tool::user_home`]).
    pub fn default_store(mut self) -> Tool {
        self.cmd.env_remove("CARGO_FOR_ARM_HOME");
        self
    }

    /// The user's home directory: `HOME`.
    pub fn user_home(mut self, dir: &Path) -> Tool {
        self.cmd.env("HOME", dir);
        self
    }

    /// No qemu named by CARGO_FOR_ARM_QEMU_*: the tool looks on PATH and in its store.
    pub fn no_qemu(mut self) -> Tool {
        self.cmd
            .env_remove("CARGO_FOR_ARM_QEMU_ARM")
            .env_remove("CARGO_FOR_ARM_QEMU_AARCH64");
        self
    }

    /// Put `dir` on PATH before the host's programs.
    pub fn path_first(mut self, dir: &Path) -> Tool {
        self.path_first.push(dir.to_path_buf());
        self
    }

    /// Leave these host programs off PATH (e.g. `cargo` and `rustc`: a host without Rust).
    pub fn hide(mut self, names: &[&str]) -> Tool {
        self.hidden.extend(names.iter().map(|s| s.to_string()));
        self
    }

    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Tool {
        self.cmd.arg(a);
        self
    }

    pub fn args<I, S>(mut self, args: I) -> Tool
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Tool {
        self.cmd.env(k, v);
        self
    }

    pub fn env_remove(mut self, k: impl AsRef<OsStr>) -> Tool {
        self.cmd.env_remove(k);
        self
    }

    pub fn stdin(mut self, s: Stdio) -> Tool {
        self.cmd.stdin(s);
        self
    }

    pub fn stdout(mut self, s: Stdio) -> Tool {
        self.cmd.stdout(s);
        self
    }

    pub fn stderr(mut self, s: Stdio) -> Tool {
        self.cmd.stderr(s);
        self
    }

    /// The underlying command, for what the builder does not cover (pre_exec, process groups).
    pub fn command(&mut self) -> &mut Command {
        &mut self.cmd
    }

    fn set_path(&mut self) {
        let hidden: Vec<&str> = self.hidden.iter().map(String::as_str).collect();
        let mut dirs = self.path_first.clone();
        dirs.push(host_bin(&hidden));
        self.cmd.env("PATH", std::env::join_paths(dirs).unwrap());
    }

    /// Run to completion.
    pub fn output(mut self) -> Output {
        self.set_path();
        let o = self.cmd.output().expect("starting cargo-for-arm");
        drop(self.keep);
        o
    }

    /// Start it; its fresh directories live as long as the [`Running`].
    pub fn spawn(mut self) -> Running {
        self.set_path();
        let child = self.cmd.spawn().expect("starting cargo-for-arm");
        Running {
            child,
            _keep: self.keep,
        }
    }

    /// Run `program ARGS` instead of the tool, with the tool's environment and directory: for
    /// a shell that sets up a namespace and then runs [`TOOL`] itself.
    pub fn output_via(mut self, program: &str, args: &[&str]) -> Output {
        self.set_path();
        let mut c = Command::new(program);
        c.args(args).env_clear();
        for (k, v) in self.cmd.get_envs() {
            if let Some(v) = v {
                c.env(k, v);
            }
        }
        if let Some(d) = self.cmd.get_current_dir() {
            c.current_dir(d);
        }
        let o = c.output().unwrap_or_else(|e| {
            panic!(
                "starting {program} in {:?} with PATH {:?}: {e}",
                c.get_current_dir(),
                c.get_envs().find(|(k, _)| *k == "PATH")
            )
        });
        drop(self.keep);
        o
    }
}

/// A started tool (a [`Child`]) with the directories its environment names.
pub struct Running {
    pub child: Child,
    _keep: Vec<TempDir>,
}

impl Running {
    pub fn wait_with_output(self) -> Output {
        let Running { child, _keep } = self;
        child.wait_with_output().unwrap()
    }
}

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.child
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.child
    }
}

/// `cargo-for-arm run --rootfs R ARGS... -- sh -c SCRIPT` in a fresh project dir.
pub fn run_sh(rootfs: &Path, args: &[&str], script: &str) -> Output {
    let proj = TempDir::new("proj");
    Tool::new(proj.path())
        .arg("run")
        .arg("--rootfs")
        .arg(rootfs)
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
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

/// Wait until no host process has `needle` in its command line. The kernel tears a killed
/// namespace down asynchronously, so this polls; the bound only keeps a leak from hanging
/// the suite (it is no measure of speed).
pub fn assert_no_process_left(needle: &str) {
    let guard = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let left = processes_with(needle);
        if left.is_empty() {
            return;
        }
        assert!(
            std::time::Instant::now() < guard,
            "processes outlived the tool: {left:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

/// `e_machine` of an ELF file (40 ARM, 183 AArch64).
pub fn elf_machine(p: &Path) -> u16 {
    let data = std::fs::read(p).unwrap();
    assert_eq!(&data[..4], b"\x7fELF", "{} is not an ELF file", p.display());
    u16::from_le_bytes([data[18], data[19]])
}

/// Copy the files of examples/EXAMPLE that git tracks into `dir`: a fixed list, so nothing a
/// host cargo left there (target/, a rewritten lockfile of another name) comes along. The
/// committed Cargo.lock is resolved for Debian 12's cargo 1.63; tests of the tool's own
/// resolution remove it.
pub fn copy_example(example: &str, dir: &Path) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(example);
    for name in ["Cargo.toml", "Cargo.lock", "src"] {
        assert!(
            src.join(name).exists(),
            "{}/{name} is missing",
            src.display()
        );
    }
    for name in ["Cargo.toml", "Cargo.lock", "build.rs", "src"] {
        if !src.join(name).exists() {
            continue;
        }
        let st = Command::new("cp")
            .arg("-r")
            .arg(src.join(name))
            .arg(dir.join(name))
            .status()
            .unwrap();
        assert!(st.success());
    }
}

/// The Debian packages of a tools rootfs (cargo-for-arm's own list: build/native.rs).
pub const TOOLS_PACKAGES: &str = "cargo,clang,lld,llvm,pkg-config";

/// The kept store of native mode's fixtures, made by `rootfs create` once.
pub fn native_store() -> PathBuf {
    store_fixture("native-home")
}

/// The tools rootfs of `suite` in [`native_store`], under the name auto mode looks for.
pub fn tools_fixture(suite: &str) -> String {
    let name = format!("debian-{suite}-amd64-tools");
    let args = [
        "--suite",
        suite,
        "--arch",
        "amd64",
        "--include",
        TOOLS_PACKAGES,
    ];
    ensure_rootfs(&native_store(), &name, &args);
    name
}

/// An ARM rootfs of `suite`/`arch` in [`native_store`], with cargo and zlib1g-dev.
pub fn arm_fixture(suite: &str, arch: &str) -> String {
    let name = format!("native-{suite}-{arch}");
    let args = [
        "--suite",
        suite,
        "--arch",
        arch,
        "--include",
        "cargo,zlib1g-dev",
    ];
    ensure_rootfs(&native_store(), &name, &args);
    name
}

/// [`native_store`], [`tools_fixture`] and [`arm_fixture`] of one suite.
pub fn native_fixtures(suite: &str, arch: &str) -> (PathBuf, String, String) {
    (
        native_store(),
        tools_fixture(suite),
        arm_fixture(suite, arch),
    )
}

/// cargo's working directories `target/for-arm/<base>-<rustc release>-<hash>` of a project
/// (one per rustc), sorted.
pub fn working_dirs(project: &Path, base: &str) -> Vec<PathBuf> {
    let prefix = format!("{base}-");
    let mut found: Vec<PathBuf> = std::fs::read_dir(project.join("target/for-arm"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|d| {
            d.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&prefix))
        })
        .collect();
    found.sort();
    found
}

/// The only one of [`working_dirs`].
pub fn working_dir(project: &Path, base: &str) -> PathBuf {
    let found = working_dirs(project, base);
    assert_eq!(found.len(), 1, "working directories {base}-*: {found:?}");
    found.into_iter().next().unwrap()
}
