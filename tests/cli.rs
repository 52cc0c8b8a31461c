//! The command line as a newcomer meets it: the cargo commands in `--help`, their own help
//! without side effects, target triples, `--manifest-path`, completions, the man page and a
//! closed stdout. The real binary, as an unprivileged user, with a home and a store of its own
//! and no rootfs: nothing here enters a sandbox.

mod common;

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::*;

/// A home (HOME, CARGO_FOR_ARM_HOME) of the test's own, nothing configured, nothing fetched.
struct Env {
    dir: TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        assert_unprivileged();
        let dir = TempDir::new(tag);
        std::fs::create_dir(dir.path().join("home")).unwrap();
        Env { dir }
    }

    fn home(&self) -> PathBuf {
        self.dir.path().join("home")
    }

    fn store(&self) -> PathBuf {
        self.dir.path().join("cfa")
    }

    /// The tool with the hermetic environment of [`Tool`], this env's home and store, and no
    /// fetching (nothing here needs the network).
    fn cmd(&self, cwd: &Path) -> Tool {
        Tool::new(cwd)
            .user_home(&self.home())
            .home(&self.store())
            .env("CARGO_FOR_ARM_OFFLINE", "1")
            .stdin(Stdio::null())
    }

    fn run(&self, cwd: &Path, args: &[&str]) -> Output {
        self.cmd(cwd).args(args).output()
    }

    /// A package at `dir` (`extra` appended to its Cargo.toml).
    fn project(&self, dir: &Path, extra: &str) {
        std::fs::create_dir_all(dir.join("src")).unwrap();
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\n{extra}"),
        )
        .unwrap();
        std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    }
}

fn entries(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(rd) => rd
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn help_lists_the_cargo_commands() {
    let env = Env::new("cli-help");
    // `cargo for-arm --help` runs `cargo-for-arm for-arm --help`.
    for args in [&["--help"][..], &["for-arm", "--help"]] {
        let o = env.run(&env.home(), args);
        let out = stdout(&o);
        assert!(o.status.success(), "{}", stderr(&o));
        for cmd in [
            "build",
            "check",
            "test",
            "bench",
            "doc",
            "run",
            "rootfs",
            "completions",
        ] {
            assert!(
                out.lines().any(|l| l.trim_start().starts_with(cmd)),
                "{cmd} missing from --help:\n{out}"
            );
        }
        assert!(out.contains("cargo for-arm cargo run"), "{out}");
    }
}

#[test]
fn a_cargo_commands_help_is_the_tools_and_starts_nothing() {
    let env = Env::new("cli-build-help");
    let forms: [&[&str]; 6] = [
        &["build", "--help"],
        &["for-arm", "build", "--release", "-h"],
        &["b", "--help"],
        &["--color", "never", "build", "-p", "x", "--help"],
        &["help", "build"],
        &["test", "--rootfs", "/nonexistent", "--help"],
    ];
    for args in forms {
        let o = env.run(&env.home(), args);
        let out = stdout(&o);
        assert!(o.status.success(), "{args:?}: {}", stderr(&o));
        for want in ["--rootfs", "--mode", "--report", "--target", "cargo help "] {
            assert!(out.contains(want), "{args:?}: {want} missing:\n{out}");
        }
    }
    assert!(stdout(&env.run(&env.home(), &["build", "--help"])).contains("cargo help build"));
    assert!(stdout(&env.run(&env.home(), &["t", "-h"])).contains("cargo help test"));
    let o = env.run(&env.home(), &["cargo", "--help"]);
    assert!(o.status.success() && stdout(&o).contains("cargo for-arm cargo [OPTIONS]"));
    // Neither a sandbox nor a rootfs nor the store: the home is as it was.
    assert!(
        entries(&env.home()).is_empty(),
        "{:?}",
        entries(&env.home())
    );
    assert!(!env.store().exists(), "{:?}", entries(&env.store()));
    // After `--`, or behind `cargo`, a --help is cargo's (here: no project, so an error).
    let o = env.run(&env.home(), &["test", "--", "--help"]);
    assert!(!o.status.success());
    assert!(!stdout(&o).contains("--rootfs"), "{}", stdout(&o));
}

#[test]
fn a_supported_triple_selects_the_architecture() {
    let env = Env::new("cli-triple");
    let proj = env.dir.path().join("proj");
    env.project(&proj, "");
    let o = env.run(&proj, &["build", "--target", "aarch64-unknown-linux-gnu"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("debian-trixie-arm64"), "{err}");
    // riscv64 gets its own default (Debian 13 has it), never the armhf one first.
    let o = env.run(&proj, &["build", "--arch", "riscv64"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("rootfs create debian-trixie-riscv64 --suite trixie --arch riscv64"),
        "{err}"
    );
    assert!(!err.contains("armhf"), "{err}");
    // The same from --arch, and in agreement with it.
    let o = env.run(
        &proj,
        &[
            "build",
            "--arch=arm64",
            "--target=aarch64-unknown-linux-gnu",
        ],
    );
    assert!(stderr(&o).contains("debian-trixie-arm64"), "{}", stderr(&o));
    let o = env.run(&proj, &["check", "--arch", "armv7-unknown-linux-gnueabihf"]);
    assert!(
        stderr(&o).contains("debian-bookworm-armhf"),
        "{}",
        stderr(&o)
    );
    // Disagreeing ones are an error.
    let o = env.run(
        &proj,
        &[
            "build",
            "--arch",
            "armhf",
            "--target",
            "aarch64-unknown-linux-gnu",
        ],
    );
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("disagree"), "{}", stderr(&o));
    // From the project's metadata.
    let meta = env.dir.path().join("meta");
    env.project(
        &meta,
        "\n[package.metadata.for-arm]\ntarget = \"aarch64-unknown-linux-gnu\"\n",
    );
    let o = env.run(&meta, &["build"]);
    assert!(stderr(&o).contains("debian-trixie-arm64"), "{}", stderr(&o));
}

#[test]
fn an_unsupported_triple_names_the_supported_ones() {
    let env = Env::new("cli-bad-triple");
    let proj = env.dir.path().join("proj");
    env.project(&proj, "");
    for (triple, why) in [
        ("arm-unknown-linux-gnueabihf", "ARMv6"),
        ("x86_64-unknown-linux-musl", "musl"),
    ] {
        let o = env.run(&proj, &["build", "--target", triple]);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{err}");
        for want in [
            triple,
            why,
            "armv7-unknown-linux-gnueabihf [armhf]",
            "aarch64-unknown-linux-gnu [arm64]",
            "--rootfs",
        ] {
            assert!(err.contains(want), "{triple}: {want} missing: {err}");
        }
    }
    // Where an architecture is taken outside builds, too (clap refuses it: exit 2).
    let o = env.run(
        &proj,
        &[
            "run",
            "--rootfs",
            "x",
            "--arch",
            "arm-unknown-linux-gnueabihf",
            "--",
            "true",
        ],
    );
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("aarch64-unknown-linux-gnu [arm64]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn manifest_path_picks_the_project_from_elsewhere() {
    let env = Env::new("cli-manifest");
    let proj = env.dir.path().join("proj");
    // A rootfs named in the project's metadata, relative to its manifest: the error that it
    // does not exist shows the project was found from the manifest.
    env.project(
        &proj,
        "\n[package.metadata.for-arm]\nrootfs = \"my-rootfs\"\n",
    );
    let elsewhere = env.dir.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    let proj = proj.canonicalize().unwrap();
    let want = proj.join("my-rootfs").display().to_string();
    for path in [
        proj.join("Cargo.toml").display().to_string(),
        "../proj/Cargo.toml".to_string(),
    ] {
        let o = env.run(
            &elsewhere,
            &["build", "--manifest-path", &path, "--release"],
        );
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "{err}");
        assert!(err.contains(&want), "{path}: {err}");
    }
    // Without it, there is no project here.
    let o = env.run(&elsewhere, &["build"]);
    assert!(stderr(&o).contains("no Cargo.toml"), "{}", stderr(&o));
}

/// Run `script` in bash with cargo-for-arm on PATH, in the tool's hermetic environment (not
/// the test process's PATH and variables).
fn bash(env: &Env, script: &str) -> Output {
    let bin = Path::new(TOOL).parent().unwrap();
    env.cmd(&env.home())
        .path_first(bin)
        .output_via("bash", &["-c", script])
}

/// What a completion function offers: `words` typed, the last one being completed.
const COMPLETE: &str = r#"
offer() {
    COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); COMPREPLY=()
    local f; f=$(complete -p "$1" | sed 's/.*-F \([^ ]*\).*/\1/') || return 1
    "$f" "$1" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
    echo "$*: ${COMPREPLY[*]}"
}
"#;

#[test]
fn completions_are_generated_and_complete() {
    let env = Env::new("cli-completions");
    let o = env.run(&env.home(), &["completions", "bash"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let script = env.dir.path().join("cargo-for-arm.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let text = stdout(&o);
    assert!(
        text.contains("build") && !text.contains("__unpack"),
        "{text}"
    );
    let check = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(check.status.success(), "bash -n: {}", stderr(&check));
    let o = bash(
        &env,
        &format!(
            "source {}\n{COMPLETE}\noffer cargo-for-arm bu\noffer cargo-for-arm build --mo\n\
             offer cargo-for-arm b --mode ''\n",
            script.display()
        ),
    );
    let out = stdout(&o);
    assert!(
        out.contains("cargo-for-arm bu: build"),
        "{out}{}",
        stderr(&o)
    );
    assert!(out.contains("build --mo: --mode"), "{out}");
    assert!(out.contains("auto native emulate"), "{out}");
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let o = env.run(&env.home(), &["completions", shell]);
        assert!(
            o.status.success() && stdout(&o).contains("build"),
            "{shell}"
        );
    }
}

#[test]
fn the_readmes_bash_hook_completes_cargo_for_arm() {
    // The hook the README gives for `cargo for-arm <TAB>`, as written there; cargo's own
    // completion is a stand-in that answers "cargo-own".
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let hook = readme
        .split("```")
        .find(|block| block.contains("_cargo_for_arm_hook"))
        .expect("README has the bash hook")
        .trim_start_matches("bash")
        .to_string();
    let env = Env::new("cli-hook");
    let o = bash(
        &env,
        &format!(
            "_cargo() {{ COMPREPLY=(cargo-own); }}\n{hook}\n{COMPLETE}\n\
             offer cargo for-arm bu\noffer cargo for-arm build --rep\noffer cargo bu\n"
        ),
    );
    let out = stdout(&o);
    assert!(
        out.contains("cargo for-arm bu: build"),
        "{out}{}",
        stderr(&o)
    );
    assert!(out.contains("build --rep: --report"), "{out}");
    assert!(out.contains("cargo bu: cargo-own"), "{out}");
}

#[test]
fn man_pages_are_generated() {
    let env = Env::new("cli-man");
    let o = env.run(&env.home(), &["man"]);
    let page = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(page.contains(".TH cargo-for-arm 1"), "{page}");
    assert!(page.contains("cargo\\-for\\-arm\\-build"), "{page}");
    let o = env.run(&env.home(), &["man", "build"]);
    let page = stdout(&o);
    assert!(
        page.contains(".TH cargo-for-arm-build 1") && page.contains("\\-\\-rootfs"),
        "{page}"
    );
    let o = env.run(&env.home(), &["man", "__unpack"]);
    assert_eq!(o.status.code(), Some(125));
}

/// stdout a pipe whose reader is gone: every write fails with EPIPE.
fn closed_pipe() -> Stdio {
    let mut fds = [0; 2];
    // SAFETY: a plain pipe(2) into a local array.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    // SAFETY: both descriptors were just created and are owned here alone.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    Stdio::from(write)
}

#[test]
fn a_closed_stdout_is_a_quiet_exit() {
    let env = Env::new("cli-epipe");
    let forms: [&[&str]; 4] = [
        &["rootfs", "list"],
        &["completions", "bash"],
        &["man"],
        &["build", "--help"],
    ];
    for args in forms {
        let o = env
            .cmd(&env.home())
            .args(args)
            .stdout(closed_pipe())
            .stderr(Stdio::piped())
            .output();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}
