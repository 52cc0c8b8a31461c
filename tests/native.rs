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

/// A home of its own holding (linked from the fixtures' store) only the rootfs `names`.
fn home_with(tag: &str, names: &[&str]) -> TempDir {
    let home = TempDir::new(tag);
    std::fs::create_dir_all(home.path().join("rootfs")).unwrap();
    for name in names {
        std::os::unix::fs::symlink(
            native_home().join("rootfs").join(name),
            home.path().join("rootfs").join(name),
        )
        .unwrap();
    }
    home
}

#[test]
fn auto_creates_the_tools_rootfs_on_first_use_and_emulates_when_it_cannot() {
    let arm_name = arm("bookworm", "armhf");
    let p = project("hello-arm", "native-auto");
    let empty = home_with("native-auto-home", &[&arm_name]);
    // Auto on a home without a tools rootfs goes native: it creates one (here from a mirror
    // that refuses connections, so the creation fails), says so, and then emulates, saying why.
    let o = Tool::new(p.path())
        .home(empty.path())
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("CARGO_FOR_ARM_MIRROR", "http://127.0.0.1:9/debian")
        .env("CARGO_FOR_ARM_NET_TIMEOUT", "5")
        .args(["build", "--rootfs", &arm_name])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("mode native: creating the tools rootfs debian-bookworm-amd64-tools"),
        "auto did not try to create the tools rootfs:\n{err}"
    );
    assert!(
        err.contains("mode emulate: creating the tools rootfs debian-bookworm-amd64-tools")
            && err.contains("retry with --mode native"),
        "{err}"
    );
    assert!(err.contains("Emulating cargo build"), "{err}");
    let bin = p
        .path()
        .join("target/armv7-unknown-linux-gnueabihf/debug/hello-arm");
    assert_eq!(elf_machine(&bin), 40);
    // Offline, auto does not try: it emulates and names the command that creates it.
    let o = Tool::new(p.path())
        .home(empty.path())
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--rootfs", &arm_name])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("mode emulate: no tools rootfs debian-bookworm-amd64-tools for native builds, and CARGO_FOR_ARM_OFFLINE forbids creating it")
            && err.contains("rootfs create debian-bookworm-amd64-tools --suite bookworm --arch amd64"),
        "{err}"
    );
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
fn auto_picks_native_on_a_fresh_home_when_rustup_has_the_target() {
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
        // Not a core test: the targets come from static.rust-lang.org, not from Debian.
        eprintln!(
            "SKIP: the toolchain {} has no {triple} standard library (rustup target add {triple}; scripts/as-user.sh adds it)",
            sysroot.display()
        );
        return;
    }
    let (tools_name, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = home_with("native-fresh-home", &[&tools_name, &arm_name]);
    let p = project("hello-arm", "native-fresh");
    // No mode, no rustc source: all auto.
    let o = Tool::new(p.path())
        .home(home.path())
        .args(["build", "--rootfs", &arm_name])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("Native cargo build for {triple}"))
            && err.contains(&format!("of the toolchain {}", sysroot.display())),
        "auto did not go native with the rustup toolchain:\n{err}"
    );
    assert!(!err.contains("mode emulate"), "{err}");
    let bin = p.path().join(format!("target/{triple}/debug/hello-arm"));
    assert_eq!(elf_machine(&bin), 40);
}

/// From a fresh home with nothing configured (the rustup toolchain has the target), auto goes
/// native, and the default ARM rootfs it creates is a sysroot store entry named by its package
/// set: the packages' files (the project's `packages`, the C runtime) unpacked without
/// maintainer scripts — no dpkg status, no cargo, nothing emulated — and not the emulated
/// default. The tools rootfs it creates holds the C tools only, unpacked the same way (with
/// the `cc` a build script links with). The build compiles C and finds zlib in the sysroot
/// through pkg-config, and `cargo for-arm test` runs the tests as ARM code in the ARM sandbox
/// rooted at it (a test starts `uname` there). The packages come from the fixtures' cache.
#[test]
fn a_fresh_home_with_rustup_builds_against_a_sysroot_and_tests_run_as_arm_code() {
    let triple = "armv7-unknown-linux-gnueabihf";
    let Some(sysroot) = rustup_with(triple) else {
        return;
    };
    // The fixtures' package cache holds the packages of both.
    let _ = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = home_with("native-sysroot-home", &[]);
    std::os::unix::fs::symlink(native_store().join("debs"), home.path().join("debs")).unwrap();
    let p = project("native-sample", "native-sysroot");
    let manifest = p.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replace(
            "[workspace]",
            "[package.metadata.for-arm]\npackages = [\"zlib1g-dev\"]\n\n[workspace]",
        ),
    )
    .unwrap();
    // Offline, the tool names the entry it would create and how.
    let o = Tool::new(p.path())
        .home(home.path())
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--release"])
        .output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("rootfs create debian-bookworm-armhf-sysroot-")
            && err.contains("--suite bookworm --arch armhf --variant sysroot --include zlib1g-dev"),
        "{err}"
    );
    let o = Tool::new(p.path())
        .home(home.path())
        .args(["build", "--release"])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("creating the sysroot debian-bookworm-armhf-sysroot-")
            && err.contains("no maintainer scripts run")
            && err.contains(&format!("Native cargo build for {triple}"))
            && err.contains(&format!("of the toolchain {}", sysroot.display())),
        "auto did not go native against a new sysroot:
{err}"
    );
    assert!(!err.contains("mode emulate"), "{err}");
    assert_eq!(
        elf_machine(
            &p.path()
                .join(format!("target/{triple}/release/native-sample"))
        ),
        40
    );
    let mut entries: Vec<String> = std::fs::read_dir(home.path().join("rootfs"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    entries.sort();
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0], "debian-bookworm-amd64-tools-c", "{entries:?}");
    assert!(
        entries[1].starts_with("debian-bookworm-armhf-sysroot-"),
        "{entries:?}"
    );
    for e in &entries {
        let root = home.path().join("rootfs").join(e).join("root");
        assert!(
            !root.join("var/lib/dpkg/status").exists(),
            "a maintainer script ran in {e}: dpkg has a status database"
        );
        assert!(!root.join("usr/bin/cargo").exists(), "{e} has cargo");
    }
    let tools_c = home.path().join("rootfs").join(&entries[0]).join("root");
    assert!(
        tools_c.join("usr/bin/cc").exists(),
        "the tools rootfs has no cc"
    );
    let root = home.path().join("rootfs").join(&entries[1]).join("root");
    for f in [
        "usr/lib/arm-linux-gnueabihf/crt1.o",
        "usr/lib/arm-linux-gnueabihf/pkgconfig/zlib.pc",
        "usr/include/zlib.h",
    ] {
        assert!(root.join(f).is_file(), "the sysroot lacks {f}");
    }

    let o = Tool::new(p.path())
        .home(home.path())
        .args(["test", "--", "--nocapture"])
        .output();
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "test failed:\n{out}\n{err}");
    assert!(out.contains("test result: ok. 3 passed"), "{out}\n{err}");
    assert!(
        out.contains("machine: armv7l"),
        "the tests did not run as ARM code:\n{out}"
    );
    assert!(
        !err.contains("creating"),
        "a second rootfs was created:\n{err}"
    );
}

/// With the emulated default already in the store (configured, with cargo: the C runtime
/// comes with it), a native build with the rustup toolchain uses it: no sysroot is created.
#[test]
fn a_stored_emulated_default_serves_a_rustup_build_without_a_new_sysroot() {
    let triple = "armv7-unknown-linux-gnueabihf";
    if rustup_with(triple).is_none() {
        return;
    }
    let tools_name = tools("bookworm");
    let home = home_with("native-reuse-home", &[&tools_name]);
    // The ARM fixture (Debian 12 with cargo), stored under the emulated default's name.
    let stored = native_home().join("rootfs").join(arm("bookworm", "armhf"));
    std::os::unix::fs::symlink(&stored, home.path().join("rootfs/debian-bookworm-armhf")).unwrap();
    let p = project("hello-arm", "native-reuse");
    let o = Tool::new(p.path())
        .home(home.path())
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build"])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!("Native cargo build for {triple}"))
            && err.contains(&format!(
                "against {}/root;",
                stored.canonicalize().unwrap().display()
            )),
        "{err}"
    );
    // Offline: a sysroot to create would have been an error.
    assert!(!err.contains("creating"), "{err}");
    assert_eq!(
        elf_machine(&p.path().join(format!("target/{triple}/debug/hello-arm"))),
        40
    );
}

/// The rustup toolchain's sysroot when it has `triple`'s standard library; else prints why
/// the test skips (not a core test: the targets come from static.rust-lang.org, not Debian).
fn rustup_with(triple: &str) -> Option<PathBuf> {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    if sysroot
        .join("lib/rustlib")
        .join(triple)
        .join("lib")
        .is_dir()
    {
        return Some(sysroot);
    }
    eprintln!(
        "SKIP: the toolchain {} has no {triple} standard library (rustup target add {triple}; scripts/as-user.sh adds it)",
        sysroot.display()
    );
    None
}

/// A directory rootfs the tool takes for a Debian one of `machine` (its /bin/sh's ELF
/// header), with what `files` name (path, contents) and nothing else.
fn fake_rootfs(dir: &Path, class64: bool, machine: u16, files: &[(&str, Vec<u8>)]) {
    let mut elf = vec![0u8; 64];
    elf[..4].copy_from_slice(b"\x7fELF");
    elf[4] = if class64 { 2 } else { 1 };
    elf[5] = 1; // little endian
    elf[6] = 1;
    elf[16] = 2; // ET_EXEC
    elf[18..20].copy_from_slice(&machine.to_le_bytes());
    elf[20] = 1;
    let ehsize: u16 = if class64 { 64 } else { 52 };
    let at = if class64 { 52 } else { 40 };
    elf[at..at + 2].copy_from_slice(&ehsize.to_le_bytes());
    let mut all = vec![
        ("bin/sh", elf),
        (
            "etc/os-release",
            b"ID=debian\nVERSION_CODENAME=bookworm\n".to_vec(),
        ),
    ];
    all.extend(files.iter().map(|(p, d)| (*p, d.clone())));
    for (path, data) in all {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
    }
}

/// An rlib holding only the metadata header rustc's version is read from.
fn fake_rlib(version: &str) -> Vec<u8> {
    let meta = format!("rust\0\0\0\x08{version}\0");
    let mut ar = b"!<arch>\n".to_vec();
    ar.extend(
        format!(
            "{:<16}{:<12}{:<6}{:<6}{:<8}{:<10}`\n",
            "lib.rmeta",
            0,
            0,
            0,
            644,
            meta.len()
        )
        .bytes(),
    );
    ar.extend(meta.bytes());
    if meta.len() % 2 == 1 {
        ar.push(b'\n');
    }
    ar
}

#[test]
fn a_sysroot_without_the_gcc_runtime_is_refused_before_compiling() {
    // An arm64 Debian 12 rootfs with libc6-dev and a Rust std, but no libgcc-12-dev.
    let root = TempDir::new("native-no-libgcc");
    let lib = "usr/lib/aarch64-linux-gnu";
    fake_rootfs(
        root.path(),
        true,
        183,
        &[
            (
                "usr/lib/rustlib/aarch64-unknown-linux-gnu/lib/libstd-0123.rlib",
                fake_rlib("rustc 1.63.0"),
            ),
            (&format!("{lib}/crt1.o"), Vec::new()),
            (&format!("{lib}/crti.o"), Vec::new()),
            (&format!("{lib}/libc.so"), b"GROUP ( libc.so.6 )".to_vec()),
            (
                "var/lib/dpkg/status",
                b"Package: libgcc-s1\nStatus: install ok installed\nVersion: 12.2.0-14\n\nPackage: libc6-dev\nVersion: 2.36-9\n".to_vec(),
            ),
        ],
    );
    let p = project("hello-arm", "native-no-libgcc");
    let home = TempDir::new("native-no-libgcc-home");
    let root_s = root.path().to_string_lossy().into_owned();
    for mode in ["auto", "native"] {
        let o = Tool::new(p.path())
            .home(home.path())
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
            .env("CARGO_FOR_ARM_OFFLINE", "1")
            .args(["build", "--mode", mode, "--rootfs", &root_s])
            .output();
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(125), "--mode {mode}:\n{err}");
        assert!(
            err.contains("lacks the C runtime a native link needs: libgcc-12-dev")
                && err.contains("apt-get install libgcc-12-dev")
                && !err.contains("libc6-dev,"),
            "--mode {mode}:\n{err}"
        );
        assert!(
            !err.contains("Compiling") && !err.contains("tools rootfs"),
            "{err}"
        );
    }
}

#[test]
fn auto_emulates_for_an_architecture_native_mode_lacks_and_says_why() {
    // A riscv64 rootfs (243 = EM_RISCV): native mode builds only for armhf and arm64.
    let root = TempDir::new("native-riscv");
    fake_rootfs(root.path(), true, 243, &[]);
    let p = project("hello-arm", "native-riscv");
    let home = TempDir::new("native-riscv-home");
    let o = Tool::new(p.path())
        .home(home.path())
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--rootfs", &root.path().to_string_lossy()])
        .output();
    let err = stderr(&o);
    assert!(
        err.lines().any(
            |l| l.contains("mode emulate: native mode builds for armhf and arm64")
                && l.contains("riscv64")
        ),
        "{err}"
    );
    // Then the fake rootfs has no cargo: the emulated build names that.
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(err.contains("has no cargo"), "{err}");
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
    // cargo's own working directories, one per mode and rustc (both Debian 12's); nothing
    // at the host's own layout.
    let dirs = working_dirs(p.path());
    assert!(
        dirs.len() == 2
            && dirs[0].starts_with("armhf-1.63.0-")
            && dirs[1].starts_with("native-armhf-1.63.0-"),
        "{dirs:?}"
    );
    assert!(!p.path().join("target/debug").exists());
}

/// The Rust toolchain that runs the tests (its sysroot): its real cargo and rustc.
fn real_toolchain() -> PathBuf {
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    assert!(out.status.success(), "rustc --print sysroot failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

/// A rustup toolchain as the tool finds one (`rustc --print sysroot` on PATH, with `bin/cargo`
/// and `bin/rustc`): the real cargo and rustc, its sysroot this directory, holding the
/// standard libraries `stds` names (triple, the rustc version their metadata carries) and no
/// other. Put its `bin` first on PATH.
fn toolchain_with(tag: &str, stds: &[(&str, &str)]) -> TempDir {
    use std::os::unix::fs::PermissionsExt;
    let tc = TempDir::new(tag);
    let real = real_toolchain();
    let bin = tc.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    std::os::unix::fs::symlink(real.join("bin/cargo"), bin.join("cargo")).unwrap();
    let rustc = bin.join("rustc");
    std::fs::write(
        &rustc,
        format!(
            "#!/bin/sh\n# A toolchain whose sysroot is {tc}.\n[ \"$1 $2\" = '--print sysroot' ] && [ $# = 2 ] && exec echo '{tc}'\nexec '{real}' \"$@\"\n",
            tc = tc.path().display(),
            real = real.join("bin/rustc").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&rustc, std::fs::Permissions::from_mode(0o755)).unwrap();
    for (triple, version) in stds {
        let lib = tc.path().join("lib/rustlib").join(triple).join("lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libstd-0123456789abcdef.rlib"), fake_rlib(version)).unwrap();
    }
    tc
}

/// Auto mode with a rustup toolchain that lacks the target's std (`rustup target add` not
/// run) pairs the ARM rootfs's Debian rustc with the tools rootfs of its suite: one line says
/// so, and the ARM binary lands in cargo's cross layout.
#[test]
fn auto_picks_native_with_the_debian_pair_when_rustup_lacks_the_target() {
    let triple = "armv7-unknown-linux-gnueabihf";
    let (tools_name, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = home_with("native-pair-home", &[&tools_name, &arm_name]);
    let tc = toolchain_with("native-pair-tc", &[]);
    let p = project("hello-arm", "native-pair");
    // No mode, no rustc source: all auto.
    let o = Tool::new(p.path())
        .home(home.path())
        .path_first(&tc.path().join("bin"))
        .args(["build", "--release", "--rootfs", &arm_name])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    let chosen: Vec<&str> = err
        .lines()
        .filter(|l| l.contains("Native cargo build"))
        .collect();
    assert_eq!(chosen.len(), 1, "not one line choosing native:\n{err}");
    let line = chosen[0];
    assert!(
        line.contains(&format!("for {triple}"))
            && line.contains("rustc 1.63.0 of the tools rootfs")
            && line.contains(&format!(
                "clang and lld of {}",
                entry_root(&home, &tools_name)
            ))
            && line.contains(&format!("against {}", entry_root(&home, &arm_name))),
        "auto did not pick the Debian pair:\n{line}"
    );
    assert!(
        !err.contains("mode emulate") && !err.contains(&tc.path().display().to_string()),
        "{err}"
    );
    let bin = p.path().join(format!("target/{triple}/release/hello-arm"));
    assert_eq!(elf_machine(&bin), 40, "{}", bin.display());
}

/// Where the store entry `name` of `home` is (resolved: the fixtures are links).
fn entry_root(home: &TempDir, name: &str) -> String {
    let root = home.path().join("rootfs").join(name).join("root");
    root.canonicalize().unwrap().display().to_string()
}

/// A complete armhf sysroot as the store keeps one (unpacked, no maintainer scripts run, no
/// cargo): the C runtime's files, under `name` in `home`.
fn stored_armhf_sysroot(home: &Path, name: &str) {
    let entry = home.join("rootfs").join(name);
    let root = entry.join("root");
    let (lib, gcc) = (
        "usr/lib/arm-linux-gnueabihf",
        "usr/lib/gcc/arm-linux-gnueabihf/12",
    );
    let files: Vec<String> = ["crt1.o", "crti.o", "libc.so"]
        .iter()
        .map(|f| format!("{lib}/{f}"))
        .chain(
            ["crtbeginS.o", "libgcc_s.so", "libgcc.a"]
                .iter()
                .map(|f| format!("{gcc}/{f}")),
        )
        .collect();
    let files: Vec<(&str, Vec<u8>)> = files.iter().map(|f| (f.as_str(), Vec::new())).collect();
    fake_rootfs(&root, false, 40, &files);
    // EABI5, hard-float (e_flags): armhf, not armel.
    let sh = root.join("bin/sh");
    let mut elf = std::fs::read(&sh).unwrap();
    elf[36..40].copy_from_slice(&0x0500_0400u32.to_le_bytes());
    std::fs::write(&sh, elf).unwrap();
    std::fs::write(
        entry.join("entry.toml"),
        format!(
            "name = \"{name}\"\narch = \"armhf\"\narch_desc = \"arm (armhf, EABI5 hard-float)\"\n\
             distro = \"Debian GNU/Linux 12 (bookworm)\"\nsize = 0\nsource = \"test\"\nverified = true\n\
             created = \"2026-01-01T00:00:00Z\"\nowners_kept = false\nhost_arch = false\nconfigured = false\n"
        ),
    )
    .unwrap();
}

/// Auto on a home whose default rootfs is the sysroot of a rustup build: when native mode
/// cannot be set up (here the tools rootfs cannot be created: the mirror refuses
/// connections), there is no emulation to fall back to in a sysroot. The error says why
/// native mode failed and names `--mode emulate`, whose default rootfs (with cargo) is
/// another one. Hermetic: the toolchain and the sysroot are made here.
#[test]
fn auto_on_a_default_sysroot_fails_naming_why_and_mode_emulate_when_native_set_up_fails() {
    let triple = "armv7-unknown-linux-gnueabihf";
    let home = TempDir::new("native-sysroot-fail-home");
    stored_armhf_sysroot(home.path(), "debian-bookworm-armhf-sysroot");
    let tc = toolchain_with(
        "native-sysroot-fail-tc",
        &[(triple, "rustc 1.95.0 (0 2026-01-01)")],
    );
    let p = project("hello-arm", "native-sysroot-fail");
    let tool = || {
        Tool::new(p.path())
            .home(home.path())
            .path_first(&tc.path().join("bin"))
    };
    let o = tool()
        .env("CARGO_FOR_ARM_MIRROR", "http://127.0.0.1:9/debian")
        .env("CARGO_FOR_ARM_NET_TIMEOUT", "5")
        .args(["build"])
        .output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    let sysroot = entry_root(&home, "debian-bookworm-armhf-sysroot");
    assert!(
        err.contains("mode native: creating the tools rootfs debian-bookworm-amd64-tools-c"),
        "auto did not try native mode with the rustup toolchain:\n{err}"
    );
    assert!(
        err.contains("mode auto: native mode cannot build: creating the tools rootfs debian-bookworm-amd64-tools-c")
            && err.contains(&format!("The default rootfs {sysroot} is a sysroot for native builds (no cargo)"))
            && err.contains("build with --mode emulate"),
        "{err}"
    );
    // Nothing was emulated in the sysroot.
    for not in [
        "mode emulate:",
        "Emulating",
        "has no cargo",
        "maintainer scripts",
        "retry with --mode native",
    ] {
        assert!(!err.contains(not), "{not:?} in:\n{err}");
    }
    // The fix it names: --mode emulate takes the emulated default (offline here: the command
    // that creates it is named).
    let o = tool()
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--mode", "emulate"])
        .output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains(
            "rootfs create debian-bookworm-armhf --suite bookworm --arch armhf --include cargo"
        ),
        "{err}"
    );
}

/// The working directories `target/for-arm/<flavour>` of a project.
fn working_dirs(project: &Path) -> Vec<String> {
    let mut dirs: Vec<String> = std::fs::read_dir(project.join("target/for-arm"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    dirs.sort();
    dirs
}

/// Native builds by two rustcs (the Debian pair's 1.63, the rustup toolchain's) work in two
/// directories, named by the rustc, and put their finals in the one cross layout; going back
/// to the first rustc compiles nothing again and brings its binary back.
#[test]
fn each_rustc_has_a_working_directory_of_its_own_and_the_finals_one_place() {
    let triple = "armv7-unknown-linux-gnueabihf";
    if rustup_with(triple).is_none() {
        return;
    }
    let (tools_name, arm_name) = (tools("bookworm"), arm("bookworm", "armhf"));
    let home = home_with("native-two-rustcs-home", &[&tools_name, &arm_name]);
    let p = project("hello-arm", "native-two-rustcs");
    let build = |source: &str| {
        let o = Tool::new(p.path())
            .home(home.path())
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", source)
            .args(["build", "--rootfs", &arm_name])
            .output();
        assert!(
            o.status.success(),
            "--native-rustc {source}:\n{}",
            stderr(&o)
        );
        stderr(&o)
    };
    let bin = p.path().join(format!("target/{triple}/debug/hello-arm"));
    let in_dir = |dir: &str| {
        p.path()
            .join("target/for-arm")
            .join(dir)
            .join(format!("{triple}/debug/hello-arm"))
    };
    let err = build("rootfs");
    assert!(err.contains("Compiling hello-arm"), "{err}");
    let dirs = working_dirs(p.path());
    assert_eq!(dirs.len(), 1, "{dirs:?}");
    let debian = dirs[0].clone();
    assert!(debian.starts_with("native-armhf-1.63.0-"), "{debian}");
    assert_eq!(elf_machine(&bin), 40);
    let debian_bin = std::fs::read(&bin).unwrap();
    assert_eq!(debian_bin, std::fs::read(in_dir(&debian)).unwrap());

    let err = build("rustup");
    assert!(err.contains("Compiling hello-arm"), "{err}");
    let version =
        String::from_utf8(Command::new("rustc").arg("-V").output().unwrap().stdout).unwrap();
    let release = version.split_whitespace().nth(1).unwrap().to_string();
    let dirs = working_dirs(p.path());
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let rustup = dirs.iter().find(|d| **d != debian).unwrap().clone();
    assert!(
        rustup.starts_with(&format!("native-armhf-{release}-")),
        "{rustup} (rustc {release})"
    );
    assert!(
        err.contains(&format!(
            "target dir {}",
            p.path().join("target/for-arm").join(&rustup).display()
        )),
        "{err}"
    );
    assert_eq!(elf_machine(&bin), 40);
    let rustup_bin = std::fs::read(&bin).unwrap();
    assert_eq!(rustup_bin, std::fs::read(in_dir(&rustup)).unwrap());
    assert_ne!(rustup_bin, debian_bin, "two rustcs built the same binary?");

    // Back to Debian's rustc: its directory is as it left it.
    let err = build("rootfs");
    assert!(!err.contains("Compiling"), "rebuilt:\n{err}");
    assert_eq!(std::fs::read(&bin).unwrap(), debian_bin);
}
