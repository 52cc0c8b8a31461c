//! End-to-end: real emulated cargo builds of the sample crate, as an unprivileged user, in
//! Debian rootfs fixtures with cargo (bookworm armhf: cargo 1.63; trixie arm64: cargo 1.85),
//! plus the heartbeat supervisor on hanging and merely busy commands.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};

use common::*;

/// A copy of examples/hello-arm that the test owns, and its own cargo-for-arm cache.
struct Project {
    dir: TempDir,
    cache: TempDir,
}

impl Project {
    fn new(tag: &str) -> Project {
        let dir = TempDir::new(tag);
        copy_example("hello-arm", dir.path());
        Project {
            dir,
            cache: TempDir::new(&format!("{tag}-cache")),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Emulation, asked for: these are the emulated builds (in a fresh home, auto would go
    /// native and create a tools rootfs first).
    fn cmd(&self) -> Tool {
        Tool::new(self.path())
            .home(self.cache.path())
            .env("CARGO_FOR_ARM_MODE", "emulate")
    }

    fn cargo(&self, rootfs: &Path, args: &[&str]) -> Output {
        self.cmd().args(args).arg("--rootfs").arg(rootfs).output()
    }
}

fn build_and_run(
    fixture_name: &str,
    deb_arch: &str,
    machine: u16,
    machine_text: &str,
    expected: &str,
) {
    let rootfs = fixture(fixture_name);
    let p = Project::new(&format!("build-{deb_arch}"));
    let o = p.cargo(&rootfs, &["build", "--release", "--network", "none"]);
    let err = stderr(&o);
    assert!(o.status.success(), "build failed:\n{err}");
    // The final artifact lands in cargo's cross layout (cargo itself works in
    // target/for-arm/<arch>).
    let triple = match deb_arch {
        "armhf" => "armv7-unknown-linux-gnueabihf",
        _ => "aarch64-unknown-linux-gnu",
    };
    let bin: PathBuf = p.path().join(format!("target/{triple}/release/hello-arm"));
    assert!(working_dir(p.path(), deb_arch)
        .join("release/hello-arm")
        .is_file());
    assert_eq!(elf_machine(&bin), machine);
    assert_eq!(std::fs::metadata(&bin).unwrap().uid(), unsafe {
        libc::getuid()
    });
    // The report names the machine and a glibc floor.
    assert!(
        err.contains(&format!("Artifact {}", bin.display())),
        "{err}"
    );
    assert!(err.contains(machine_text), "{err}");
    assert!(err.contains("glibc >= 2."), "{err}");
    // Dependencies came from the host's `cargo vendor`, keyed by the lockfile.
    assert!(p.cache.path().join("vendor").read_dir().unwrap().any(|e| e
        .unwrap()
        .path()
        .join("crates")
        .is_dir()));
    // The binary runs in the sandbox and prints what it was built for.
    let run = p
        .cmd()
        .args(["run", "--rootfs"])
        .arg(&rootfs)
        .args(["--", &format!("target/{triple}/release/hello-arm")])
        .output();
    assert!(run.status.success(), "{}", stderr(&run));
    assert_eq!(stdout(&run).trim(), expected);
    // A second build with no change is incremental: nothing is compiled again.
    let again = p.cargo(&rootfs, &["build", "--release", "--report", "json"]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(!stderr(&again).contains("Compiling"), "{}", stderr(&again));
    let json = stdout(&again);
    let line: serde_json::Value =
        serde_json::from_str(json.lines().next().expect("a JSON report line")).unwrap();
    assert_eq!(line["path"], bin.to_str().unwrap());
    assert_eq!(line["static"], false);
    assert!(line["glibc_floor"].as_str().unwrap().starts_with("2."));
}

#[test]
fn builds_the_sample_for_armhf_and_runs_it() {
    build_and_run(
        "cargo-bookworm-armhf",
        "armhf",
        40,
        "arm (armhf, EABI5 hard-float)",
        "hello from arm (armv7-unknown-linux-gnueabihf), 42 times",
    );
}

#[test]
fn builds_the_sample_for_arm64_and_runs_it() {
    build_and_run(
        "cargo-trixie-arm64",
        "arm64",
        183,
        "aarch64 (arm64)",
        "hello from aarch64 (aarch64-unknown-linux-gnu), 42 times",
    );
}

#[test]
fn cargo_test_runs_under_emulation_and_reports_failures() {
    let rootfs = fixture("cargo-bookworm-armhf");
    let p = Project::new("test");
    let o = p.cargo(&rootfs, &["test"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("test tests::greets_with_the_count ... ok"),
        "{}",
        stdout(&o)
    );
    let main = p.path().join("src/main.rs");
    let mut src = std::fs::read_to_string(&main).unwrap();
    src.push_str("\n#[test]\nfn fails_on_purpose() {\n    assert_eq!(1 + 1, 3);\n}\n");
    std::fs::write(&main, src).unwrap();
    let o = p.cargo(&rootfs, &["test"]);
    assert_eq!(o.status.code(), Some(101), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("fails_on_purpose ... FAILED"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn a_rootfs_without_cargo_is_a_clear_error() {
    let p = Project::new("nocargo");
    let o = p.cargo(&fixture("busybox-armhf"), &["build"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("has no cargo"), "{}", stderr(&o));
}

#[test]
fn ctrl_c_during_a_build_exits_130_without_retry_or_leftovers() {
    let rootfs = fixture("cargo-bookworm-armhf");
    let p = Project::new("sigint");
    let mut child = p
        .cmd()
        .args(["build", "--rootfs"])
        .arg(&rootfs)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .spawn();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "build ended before compiling:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("Compiling") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let status = child.wait().unwrap();
    err.read_to_string(&mut seen).unwrap();
    assert_eq!(status.code(), Some(130), "{seen}");
    assert!(!seen.contains("retrying"), "{seen}");
    assert_no_process_left(&p.path().to_string_lossy());
}

fn run_busybox(args: &[&str], script: &str) -> Output {
    let proj = TempDir::new("hang");
    Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(fixture("busybox-armhf"))
        .args(args)
        .args(["--", "sh", "-c", script])
        .output()
}

#[test]
fn a_blocked_command_is_killed_retried_and_reported() {
    // Unique on this machine while we run (our pid), and of fixed width (no prefix of another).
    let marker = format!("8{:07}", std::process::id());
    let o = run_busybox(
        &["--hang-timeout", "3", "--retries", "1"],
        &format!("echo start; exec sleep {marker}"),
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(124), "{err}");
    assert_eq!(
        stdout(&o).matches("start").count(),
        2,
        "retried once:\n{}",
        stdout(&o)
    );
    // Each attempt was judged hung by the 3 s rule (not killed for another reason), the hung
    // command is named, and the one retry was the last.
    assert_eq!(
        err.matches("for 3s: the run is hung").count(),
        2,
        "two hung attempts:\n{err}"
    );
    assert!(err.contains(&format!("sleep {marker}")), "{err}");
    assert!(
        err.contains("retrying (1/1)")
            && !err.contains("retrying (2/")
            && err.contains("giving up after 2 hung attempt(s)"),
        "{err}"
    );
    // Killed, not left behind: once the tool has exited nothing of the sandbox remains.
    assert!(processes_with(&format!("sleep {marker}")).is_empty());
}

#[test]
fn a_stopped_command_is_a_hang() {
    let o = run_busybox(&["--hang-timeout", "2", "--retries", "0"], "kill -STOP $$");
    assert_eq!(o.status.code(), Some(124), "{}", stderr(&o));
    assert!(stderr(&o).contains("stopped"), "{}", stderr(&o));
}

#[test]
fn a_busy_silent_command_is_not_a_hang() {
    // Silent but busy for 6 s, three times the hang timeout: only `timeout`'s SIGKILL (status
    // 137) ends the loop, so it was not the supervisor that stopped it.
    let o = run_busybox(
        &["--hang-timeout", "2"],
        "timeout -s KILL 6 sh -c 'while :; do :; done'; echo \"survived $?\"",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "survived 137");
    assert!(!stderr(&o).contains("hung"), "{}", stderr(&o));
}

#[test]
fn the_rootfs_comes_from_package_metadata_or_a_clear_error() {
    let p = Project::new("meta");
    // (The tool's environment has no CARGO_FOR_ARM_ROOTFS and its HOME no config file.)
    // The emulated default (with a rustup toolchain that has the target, native mode's is a
    // sysroot: tests/native.rs).
    let o = p
        .cmd()
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .env("CARGO_FOR_ARM_MODE", "emulate")
        .args(["build"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(
        err.contains("no rootfs chosen") && err.contains("[package.metadata.for-arm]"),
        "{err}"
    );
    assert!(
        err.contains(
            "rootfs create debian-bookworm-armhf --suite bookworm --arch armhf --include cargo"
        ),
        "{err}"
    );
    // Named in Cargo.toml (relative to it): a busybox rootfs, which then lacks cargo.
    let bb = fixture("busybox-armhf");
    std::os::unix::fs::symlink(&bb, p.path().join("my-rootfs")).unwrap();
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap().replace(
        "[dependencies]",
        "[package.metadata.for-arm]\nrootfs = \"my-rootfs\"\n\n[dependencies]",
    );
    std::fs::write(&manifest, text).unwrap();
    let o = p.cmd().args(["build"]).output();
    assert_eq!(o.status.code(), Some(125));
    let err = stderr(&o);
    assert!(
        err.contains(&format!("the rootfs {} has no cargo", bb.display())),
        "{err}"
    );
}

#[test]
fn a_project_without_rust_version_resolves_for_the_rootfs_rustc() {
    // No rust-version: the host cargo (newer) must still pick a lockfile format and dependency
    // versions that the rootfs's cargo 1.63 can use.
    let rootfs = fixture("cargo-bookworm-armhf");
    let p = Project::new("nomsrv");
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text: String = text
        .lines()
        .filter(|l| !l.starts_with("rust-version"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, text).unwrap();
    std::fs::remove_file(p.path().join("Cargo.lock")).unwrap();
    let o = p.cargo(&rootfs, &["build"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lock = std::fs::read_to_string(p.path().join("Cargo.lock")).unwrap();
    assert!(lock.contains("\nversion = 3\n"), "{lock}");
}

#[test]
fn without_cargo_on_the_host_the_sandbox_fetches_and_says_so() {
    let rootfs = fixture("cargo-bookworm-armhf");
    let p = Project::new("nohostcargo");
    // No dependencies: the emulated cargo needs no registry for this one.
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest)
        .unwrap()
        .replace("itoa = \"1\"", "");
    std::fs::write(&manifest, text).unwrap();
    std::fs::write(
        p.path().join("src/main.rs"),
        "fn main() { println!(\"no deps\"); }\n",
    )
    .unwrap();
    std::fs::remove_file(p.path().join("Cargo.lock")).unwrap();
    let o = p
        .cmd()
        .hide(&["cargo", "rustc"])
        .args(["build", "--rootfs"])
        .arg(&rootfs)
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert_eq!(err.matches("the host has no cargo").count(), 1, "{err}");
    assert!(p
        .path()
        .join("target/armv7-unknown-linux-gnueabihf/debug/hello-arm")
        .is_file());
}

#[test]
fn a_lockfile_too_new_for_the_rootfs_rustc_builds_untouched_or_fails_named_under_locked() {
    // A lockfile a newer host cargo wrote: version 4, and itoa 1.0.19, which requires Rust
    // 1.68 (the rootfs's rustc is Debian 12's 1.63).
    let rootfs = fixture("cargo-bookworm-armhf");
    let p = Project::new("newlock");
    let manifest = p.path().join("Cargo.toml");
    let text: String = std::fs::read_to_string(&manifest)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with("rust-version"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&manifest, text).unwrap();
    let lock = p.path().join("Cargo.lock");
    std::fs::remove_file(&lock).unwrap();
    let host_cargo = |args: &[&str]| {
        let o = std::process::Command::new("cargo")
            .args(args)
            .current_dir(p.path())
            .env("CARGO_HOME", cache_dir().join("cargo-home"))
            .output()
            .unwrap();
        assert!(o.status.success(), "cargo {args:?}: {}", stderr(&o));
    };
    host_cargo(&["generate-lockfile"]);
    host_cargo(&["update", "-p", "itoa", "--precise", "1.0.19"]);
    let mut written = std::fs::read_to_string(&lock).unwrap();
    if !written.contains("\nversion = 4\n") {
        // An older host cargo writes version 3 by default; the newer format is the case here.
        written = written.replace("\nversion = 3\n", "\nversion = 4\n");
        std::fs::write(&lock, &written).unwrap();
    }
    assert!(written.contains("version = \"1.0.19\""), "{written}");

    // Under --locked nothing is re-resolved: the crate, the rustc it needs and the fix.
    let o = p.cargo(&rootfs, &["build", "--locked"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("itoa 1.0.19 requires rustc 1.68")
            && err.contains("rustc is 1.63")
            && err.contains("--suite trixie"),
        "{err}"
    );
    assert!(!err.contains("Compiling"), "{err}");

    // Without it the build uses a lockfile resolved for rustc 1.63, said once; the user's
    // Cargo.lock stays byte for byte.
    let o = p.cargo(&rootfs, &["build"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("itoa 1.0.19 requires rustc 1.68")
            && err.contains("your Cargo.lock is unchanged"),
        "{err}"
    );
    assert!(err.contains("Compiling itoa v1.0.15"), "{err}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), written);
    let bin = p
        .path()
        .join("target/armv7-unknown-linux-gnueabihf/debug/hello-arm");
    assert_eq!(elf_machine(&bin), 40);
    // The next build reuses it without a word.
    let o = p.cargo(&rootfs, &["build"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("your Cargo.lock"), "{}", stderr(&o));
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), written);
}

/// Emulate mode's no-op (src/build/fresh.rs): with nothing the sandbox can see changed since
/// a cargo run that found everything fresh, the rootfs's cargo is not started; any change a
/// build could depend on — a source, cargo's working directory, the environment, the command
/// line — starts it again, and so does a warning cargo would show again. The project lies
/// inside the tool's home, as a CI layout may have it: the home's own trees are left to the
/// key, never the project's.
#[test]
fn an_emulated_no_op_skips_cargo_until_something_changes() {
    let home = native_store();
    let arm = arm_fixture("bookworm", "armhf");
    let dir = home.join(format!("project-fresh-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    copy_example("hello-arm", &dir);
    let build = |extra: &[&str], env: &[(&str, &str)]| {
        let mut t = Tool::new(&dir)
            .home(&home)
            .env("CARGO_FOR_ARM_MODE", "emulate")
            .args(["build", "--release", "--rootfs", &arm])
            .args(extra);
        for (k, v) in env {
            t = t.env(k, v);
        }
        let o = t.output();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        (err.contains("Finished"), err)
    };
    let bin = dir.join("target/armv7-unknown-linux-gnueabihf/release/hello-arm");
    // A real build, then cargo once more (it finds everything fresh: only now is the
    // stamp written), then no cargo.
    let settle = || {
        let (ran, err) = build(&[], &[]);
        assert!(ran && !err.contains("Compiling"), "{err}");
        let (ran, err) = build(&[], &[]);
        assert!(!ran && err.contains("Fresh"), "{err}");
        err
    };
    let (ran, err) = build(&[], &[]);
    assert!(ran && err.contains("Compiling hello-arm"), "{err}");
    let err = settle();
    assert!(
        err.contains(&format!("Artifact {}", bin.display())),
        "{err}"
    );
    // A source edited: cargo runs and compiles it.
    let main = dir.join("src/main.rs");
    let mut text = std::fs::read_to_string(&main).unwrap();
    text.push_str("\n// edited\n");
    std::fs::write(&main, text).unwrap();
    let (ran, err) = build(&[], &[]);
    assert!(ran && err.contains("Compiling hello-arm"), "{err}");
    settle();
    // cargo's own output removed: cargo runs and links it again.
    let work = working_dir(&dir, "armhf").join("release/hello-arm");
    std::fs::remove_file(&work).unwrap();
    let (ran, err) = build(&[], &[]);
    assert!(ran && work.is_file(), "{err}");
    settle();
    // The stored rootfs changed in place (`rootfs shell`, the one way it can): cargo runs.
    let input = TempDir::new("fresh-shell");
    let script = input.path().join("input");
    std::fs::write(&script, "exit 0\n").unwrap();
    let o = Tool::new(input.path())
        .home(&home)
        .args(["rootfs", "shell", &arm])
        .stdin(Stdio::from(std::fs::File::open(&script).unwrap()))
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let (ran, err) = build(&[], &[]);
    assert!(ran && !err.contains("Compiling"), "{err}");
    let (ran, err) = build(&[], &[]);
    assert!(!ran, "{err}");
    // The environment cargo gets, another command line, the opt-out: cargo decides.
    let (ran, err) = build(&[], &[("RUSTFLAGS", "-Cdebuginfo=1")]);
    assert!(ran && err.contains("Compiling hello-arm"), "{err}");
    let (ran, err) = build(&["--bins"], &[]);
    assert!(ran, "{err}");
    let (ran, err) = build(&[], &[("CARGO_FOR_ARM_FRESH", "0")]);
    assert!(ran, "{err}");
    assert_eq!(elf_machine(&bin), 40);
    // A build with a warning: cargo shows it again on every no-op, so cargo runs every time
    // while it stands; gone, the no-op is skipped again.
    settle();
    let warned = "function `never_called` is never used";
    let mut text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, format!("{text}\nfn never_called() {{}}\n")).unwrap();
    let (ran, err) = build(&[], &[]);
    assert!(
        ran && err.contains("Compiling hello-arm") && err.contains(warned),
        "{err}"
    );
    for _ in 0..2 {
        let (ran, err) = build(&[], &[]);
        assert!(
            ran && !err.contains("Compiling") && err.contains(warned),
            "{err}"
        );
    }
    text.push_str("\n// warned\n");
    std::fs::write(&main, text).unwrap();
    let (ran, err) = build(&[], &[]);
    assert!(
        ran && err.contains("Compiling hello-arm") && !err.contains(warned),
        "{err}"
    );
    settle();
    std::fs::remove_dir_all(&dir).unwrap();
}
