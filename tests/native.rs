//! Native mode, end to end, as an unprivileged user: examples/native-sample (a registry
//! dependency, a build script, C through the `cc` crate, zlib through `pkg-config`) compiled
//! by a tools rootfs's rustc against ARM rootfs fixtures, for armhf (Debian 12) and arm64
//! (Debian 13); its binary and its unit tests run under emulation.
//!
//! The fixtures are made by cargo-for-arm's own `rootfs create` into a store kept beside the
//! other fixtures (`native-home`): the tools rootfs under the names auto mode looks for, and
//! ARM rootfs with cargo and zlib1g-dev.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

/// A copy of src/build/native.rs's TOOLS_PACKAGES (the packages a tools rootfs needs).
fn native_home() -> PathBuf {
    native_store()
}

fn tools(suite: &str) -> String {
    tools_fixture(suite)
}

fn arm(suite: &str, arch: &str) -> String {
    arm_fixture(suite, arch)
}

/// A copy of an example crate the test owns.
fn project(example: &str, tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    copy_example(example, dir.path());
    dir
}

/// cargo-for-arm with the tools rootfs's rustc (the machine's rustup toolchain may have the
/// targets too; `the_rustup_toolchain_compiles_when_it_has_the_target` covers that source).
fn cfa(dir: &Path, home: &Path, args: &[&str]) -> Output {
    Tool::new(dir)
        .home(home)
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .args(args)
        .output()
}

struct Expect {
    suite: &'static str,
    arch: &'static str,
    triple: &'static str,
    machine: u16,
    uname: &'static str,
    pointer_bits: u32,
    /// Without the committed Cargo.lock: the tool resolves one for the tools rootfs's rustc.
    resolve: bool,
}

fn native_build_test_and_run(e: &Expect) {
    let (tools_name, arm_name) = (tools(e.suite), arm(e.suite, e.arch));
    let home = native_home();
    let p = project("native-sample", &format!("native-{}", e.arch));
    let lock = p.path().join("Cargo.lock");
    let committed = std::fs::read_to_string(&lock).unwrap();
    if e.resolve {
        std::fs::remove_file(&lock).unwrap();
    }
    // Auto mode finds the tools rootfs of the ARM rootfs's suite and builds natively.
    let o = cfa(
        p.path(),
        &home,
        &["build", "--release", "--rootfs", &arm_name],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "native build failed:\n{err}");
    assert!(
        err.contains(&format!("Native cargo build for {}", e.triple)) && err.contains(&tools_name),
        "auto did not pick native mode with {tools_name}:\n{err}"
    );
    let text = std::fs::read_to_string(&lock).unwrap();
    if e.resolve {
        // Debian 12's cargo 1.63 reads lockfile version 3, not 4.
        assert!(text.contains("\nversion = 3\n"), "{text}");
    } else {
        assert_eq!(text, committed, "the tool rewrote the project's Cargo.lock");
    }
    // The final artifact in cargo's cross layout, the same path as in emulate mode.
    let bin = p
        .path()
        .join(format!("target/{}/release/native-sample", e.triple));
    assert_eq!(elf_machine(&bin), e.machine, "{}", bin.display());
    // The report: the ARM binary, and zlib from the ARM rootfs linked dynamically (a dangling
    // libz.so symlink would have made the linker take libz.a).
    assert!(
        err.contains(&format!("Artifact {}", bin.display())) && err.contains("libz.so.1"),
        "{err}"
    );

    // The binary runs under emulation with the expected output.
    let bin_s = bin.to_string_lossy().into_owned();
    let o = cfa(
        p.path(),
        &home,
        &["-q", "run", "--rootfs", &arm_name, "--", &bin_s],
    );
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    let answer = 42 + e.pointer_bits / 8;
    for want in [
        format!("answer {answer}"),
        "crc32(hello) 3610a686".to_string(),
        format!("pointer width {}", e.pointer_bits),
    ] {
        assert!(out.contains(&want), "missing {want:?} in:\n{out}");
    }
    assert!(
        out.contains("zlib 1.") && out.contains("(pkg-config 1."),
        "{out}"
    );

    // Unit tests run under emulation, through cargo's target runner.
    let o = cfa(
        p.path(),
        &home,
        &[
            "test",
            "--mode",
            "native",
            "--rootfs",
            &arm_name,
            "--",
            "--nocapture",
        ],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "native test failed:\n{out}\n{err}");
    assert!(
        out.contains("test result: ok. 3 passed"),
        "unit tests did not all pass:\n{out}\n{err}"
    );
    assert!(
        out.contains(&format!("machine: {}", e.uname)),
        "the tests did not run on ARM:\n{out}"
    );

    // `cargo run` goes through the runner too, and the program's exit code comes back.
    let o = cfa(
        p.path(),
        &home,
        &[
            "cargo",
            "run",
            "--release",
            "--rootfs",
            &arm_name,
            "--",
            "--exit=3",
        ],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("__run-target"),
        "cargo run did not use the runner:\n{}",
        stderr(&o)
    );
}

#[test]
fn native_armhf_bookworm() {
    native_build_test_and_run(&Expect {
        suite: "bookworm",
        arch: "armhf",
        triple: "armv7-unknown-linux-gnueabihf",
        machine: 40,
        uname: "armv7l",
        pointer_bits: 32,
        resolve: true,
    });
}

#[test]
fn native_arm64_trixie() {
    native_build_test_and_run(&Expect {
        suite: "trixie",
        arch: "arm64",
        triple: "aarch64-unknown-linux-gnu",
        machine: 183,
        uname: "aarch64",
        pointer_bits: 64,
        resolve: false,
    });
}

#[test]
fn a_failing_arm_test_fails_the_native_test_run() {
    let (_, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let p = project("native-sample", "native-fail");
    let main = p.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(
        &main,
        text.replace(
            "assert_eq!(crc(b\"hello\"), 0x3610a686);",
            "assert_eq!(crc(b\"hello\"), 1);",
        ),
    )
    .unwrap();
    let o = cfa(
        p.path(),
        &native_home(),
        &["test", "--mode", "native", "--rootfs", &arm_name],
    );
    assert_eq!(o.status.code(), Some(101), "{}\n{}", stdout(&o), stderr(&o));
    assert!(
        stdout(&o).contains("zlib_from_the_rootfs_works ... FAILED"),
        "{}",
        stdout(&o)
    );
}

#[test]
fn auto_emulates_without_a_tools_rootfs_and_says_why() {
    let arm_name = arm("bookworm", "armhf");
    let p = project("hello-arm", "native-auto");
    // A store without tools rootfs that holds the ARM rootfs (linked from the fixtures' store).
    let empty = TempDir::new("native-auto-home");
    std::fs::create_dir_all(empty.path().join("rootfs")).unwrap();
    std::os::unix::fs::symlink(
        native_home().join("rootfs").join(&arm_name),
        empty.path().join("rootfs").join(&arm_name),
    )
    .unwrap();
    let o = cfa(p.path(), empty.path(), &["build", "--rootfs", &arm_name]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(
            "mode emulate: no tools rootfs for native builds (debian-bookworm-amd64-tools)"
        ) && err
            .contains("rootfs create debian-bookworm-amd64-tools --suite bookworm --arch amd64"),
        "{err}"
    );
    assert!(err.contains("Emulating cargo build"), "{err}");
    let bin = p
        .path()
        .join("target/armv7-unknown-linux-gnueabihf/debug/hello-arm");
    assert_eq!(elf_machine(&bin), 40);
    // Asked for, native mode without a tools rootfs and with fetching forbidden is an error
    // that names the fix.
    let o = Tool::new(p.path())
        .home(empty.path())
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--mode", "native", "--rootfs", &arm_name])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("rootfs create debian-bookworm-amd64-tools"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn auto_emulates_when_the_rootfs_has_no_target_std() {
    // busybox: no Rust at all. Auto says why it emulates (and then finds no cargo).
    let rootfs = fixture("busybox-armhf");
    let p = project("hello-arm", "native-nostd");
    let empty = TempDir::new("native-nostd-home");
    let o = cfa(
        p.path(),
        empty.path(),
        &["build", "--rootfs", &rootfs.to_string_lossy()],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("mode emulate:")
            && err.contains("has no Rust standard library for armv7-unknown-linux-gnueabihf")
            && err.contains("libstd-rust-dev"),
        "{err}"
    );
    let o = cfa(
        p.path(),
        empty.path(),
        &[
            "build",
            "--mode",
            "native",
            "--rootfs",
            &rootfs.to_string_lossy(),
        ],
    );
    assert!(
        stderr(&o).contains("--mode native:") && stderr(&o).contains("libstd-rust-dev"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn a_rustc_and_std_version_mismatch_is_a_clear_error() {
    let (tools_name, arm_name) = (tools("bookworm"), arm("trixie", "arm64"));
    let p = project("native-sample", "native-mismatch");
    let o = cfa(
        p.path(),
        &native_home(),
        &[
            "build",
            "--mode",
            "native",
            "--rootfs",
            &arm_name,
            "--tools-rootfs",
            &tools_name,
        ],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("has rustc 1.63.0")
            && err.contains("was built by rustc 1.85")
            && err.contains("must be the same rustc"),
        "{err}"
    );
    assert!(!err.contains("incompatible version of rustc"), "{err}");
}

#[test]
fn the_rustup_toolchain_compiles_when_it_has_the_target() {
    let triple = "armv7-unknown-linux-gnueabihf";
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if !sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib")
        .is_dir()
    {
        let msg = format!(
            "SKIP: the toolchain {} has no {triple} standard library (rustup target add {triple}; scripts/as-user.sh adds it)",
            sysroot.display()
        );
        // Not a core test: the targets come from static.rust-lang.org, not from Debian.
        eprintln!("{msg}");
        return;
    }
    let (tools_name, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = native_home();
    let p = project("native-sample", "native-rustup");
    let version =
        String::from_utf8(Command::new("rustc").arg("-V").output().unwrap().stdout).unwrap();
    // Auto: the toolchain has the target, so it compiles (Debian 12's rustc is 1.63).
    // No CARGO_FOR_ARM_NATIVE_RUSTC: auto. The tool's PATH has the same toolchain's rustc.
    let o = Tool::new(p.path())
        .home(&home)
        .args(["test", "--rootfs", &arm_name, "--", "--nocapture"])
        .output();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    assert!(
        err.contains(&format!(
            "{} of the toolchain {}",
            version.trim(),
            sysroot.display()
        )) && err.contains(&tools_name),
        "not compiled by the rustup toolchain:\n{err}"
    );
    assert!(
        out.contains("test result: ok. 3 passed") && out.contains("machine: armv7l"),
        "{out}\n{err}"
    );
}

#[test]
fn the_output_path_is_the_same_in_both_modes() {
    let (_, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = native_home();
    let p = project("hello-arm", "native-same-path");
    let triple = "armv7-unknown-linux-gnueabihf";
    let bin = p.path().join(format!("target/{triple}/debug/hello-arm"));
    for mode in ["emulate", "native"] {
        let o = cfa(
            p.path(),
            &home,
            &[
                "build",
                "--mode",
                mode,
                "--rootfs",
                &arm_name,
                "--message-format",
                "json",
            ],
        );
        let (out, err) = (stdout(&o), stderr(&o));
        assert!(o.status.success(), "--mode {mode}:\n{err}");
        assert_eq!(elf_machine(&bin), 40, "--mode {mode}: {}", bin.display());
        // With cargo's JSON messages the report is JSON too, with the final path.
        let ours: Vec<serde_json::Value> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["reason"] == "cargo-for-arm-artifact")
            .collect();
        assert_eq!(ours.len(), 1, "--mode {mode}:\n{out}");
        assert_eq!(ours[0]["path"], bin.to_str().unwrap(), "--mode {mode}");
        assert!(
            err.contains(match mode {
                "emulate" => "Emulating cargo build",
                _ => "Native cargo build",
            }),
            "{err}"
        );
    }
    // cargo's own working directories, one per mode; nothing at the host's own layout.
    for flavour in ["armhf", "native-armhf"] {
        assert!(
            p.path().join("target/for-arm").join(flavour).is_dir(),
            "{flavour}"
        );
    }
    assert!(!p.path().join("target/debug").exists());
}
