//! Rungs 1 and 2 of the ladder (docs/ARCHITECTURE.md, "binfmt_misc: private, the host's, or
//! none"), reproduced on a kernel that has private binfmt_misc instances with the switch
//! `CARGO_FOR_ARM_BINFMT`, as an unprivileged user:
//!
//! - rung 2 (`none`: a private, empty binfmt_misc hides every handler): native builds work and
//!   their ARM tests run with the tool's qemu named as the program; an ARM program that execs
//!   another gets ENOEXEC and the tool says why; emulated builds are refused (125) with the fixes.
//! - rung 1 (`host`): emulated builds go through the host's registration, found by its magic.
//!   The registration is made by the root part of the test set-up (scripts/as-user.sh,
//!   scripts/binfmt-test-entry.sh) under a name of its own, `cargo-for-arm-test-arm`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

/// Tests appended to the sample: the pointer width proves ARM (armhf: 32 bits) and the
/// sandbox's binfmt_misc shows whether any handler exists.
const ARM_TESTS: &str = r#"
#[cfg(test)]
mod rung {
    #[test]
    fn usize_is_four_bytes() {
        assert_eq!(std::mem::size_of::<usize>(), 4);
    }

    /// The names in the sandbox's binfmt_misc besides `register` and `status`.
    fn handlers() -> Vec<String> {
        let mut names = Vec::new();
        for e in std::fs::read_dir("/proc/sys/fs/binfmt_misc").unwrap() {
            let n = e.unwrap().file_name().into_string().unwrap();
            if n != "register" && n != "status" {
                names.push(n);
            }
        }
        names
    }

    #[test]
    fn binfmt_is_private_and_empty() {
        assert!(std::path::Path::new("/proc/sys/fs/binfmt_misc/register").exists());
        assert_eq!(handlers(), Vec::<String>::new());
    }
}
"#;

/// A copy of examples/native-sample with [`ARM_TESTS`].
fn sample(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    copy_example("native-sample", dir.path());
    let main = dir.path().join("src/main.rs");
    let text = std::fs::read_to_string(&main).unwrap();
    std::fs::write(&main, text + ARM_TESTS).unwrap();
    dir
}

/// The native fixtures' Debian 12 armhf rootfs (cargo, zlib1g-dev), by path.
fn arm_path() -> String {
    let (store, _, arm) = native_fixtures("bookworm", "armhf");
    store
        .join("rootfs")
        .join(arm)
        .join("root")
        .to_string_lossy()
        .into_owned()
}

fn cfa(dir: &Path, binfmt: &str, args: &[&str]) -> Output {
    // A fresh home: the native fixtures' tools rootfs is named by path, like the ARM rootfs
    // (see [`arm_path`]), so nothing of the fixtures' store is reused but the trees.
    let tools = native_store()
        .join("rootfs")
        .join(tools_fixture("bookworm"))
        .join("root");
    Tool::new(dir)
        .env("CARGO_FOR_ARM_TOOLS_ROOTFS", tools)
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("CARGO_FOR_ARM_BINFMT", binfmt)
        .args(args)
        .output()
}

#[test]
fn rung2_native_tests_run_as_arm_code_with_qemu_named_as_the_program() {
    let arm = arm_path();
    let p = sample("binfmt-none-native");
    let o = cfa(
        p.path(),
        "none",
        &[
            "test",
            "--mode",
            "native",
            "--rootfs",
            &arm,
            "--",
            "rung::",
            "c_code_is_linked",
            "zlib",
        ],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    // 32-bit pointers, C and zlib of the ARM rootfs, and no binfmt handler in sight: the
    // program ran because qemu was named as the program.
    assert!(out.contains("test result: ok. 4 passed"), "{out}\n{err}");
    for t in [
        "rung::usize_is_four_bytes",
        "rung::binfmt_is_private_and_empty",
    ] {
        assert!(out.contains(&format!("test {t} ... ok")), "{t}:\n{out}");
    }
    assert!(!err.contains("ENOEXEC"), "a note without a failure:\n{err}");
}

#[test]
fn rung2_an_arm_program_that_execs_another_gets_a_note_saying_why_it_failed() {
    let arm = arm_path();
    let p = sample("binfmt-none-nested");
    // runs_on_arm starts `uname` from the ARM rootfs: an ARM program starting another.
    let o = cfa(
        p.path(),
        "none",
        &[
            "test",
            "--mode",
            "native",
            "--rootfs",
            &arm,
            "--",
            "runs_on_arm",
        ],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert_eq!(o.status.code(), Some(101), "{out}\n{err}");
    assert!(out.contains("runs_on_arm ... FAILED"), "{out}\n{err}");
    assert!(
        err.contains("note: this machine has no binfmt_misc handler for arm")
            && err.contains("ENOEXEC")
            && err.contains("qemu-user-static")
            && err.contains("6.7"),
        "no note on why:\n{err}"
    );
}

#[test]
fn rung2_emulated_builds_are_refused_with_both_fixes() {
    let arm = arm_path();
    let p = sample("binfmt-none-emulated");
    let o = cfa(
        p.path(),
        "none",
        &["build", "--mode", "emulate", "--rootfs", &arm],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("an emulated build needs a binfmt_misc handler for arm")
            && err.contains("Linux kernel 6.7 or later")
            && err.contains("with the F flag")
            && err.contains("qemu-user-static")
            && err.contains("--mode native"),
        "{err}"
    );
    assert!(!err.contains("Emulating"), "{err}");
    eprintln!("{err}");
}

#[test]
fn a_bad_or_impossible_binfmt_switch_is_an_error() {
    let p = sample("binfmt-bad");
    let arm = fixture("busybox-armhf");
    let o = Tool::new(p.path())
        .env("CARGO_FOR_ARM_BINFMT", "off")
        .args(["run", "--rootfs"])
        .arg(&arm)
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("CARGO_FOR_ARM_BINFMT=off: use auto, private, host or none"),
        "{}",
        stderr(&o)
    );
    // `none` on `run`: the busybox applet cannot start (no handler), and says so.
    let o = Tool::new(p.path())
        .env("CARGO_FOR_ARM_BINFMT", "none")
        .args(["run", "--rootfs"])
        .arg(&arm)
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(126), "{}", stderr(&o));
    assert!(stderr(&o).contains("ENOEXEC"), "{}", stderr(&o));
}

/// The host's enabled registration with F whose magic takes armhf ELF files (the root part
/// of the set-up registers `cargo-for-arm-test-arm`), if any.
fn host_arm_entry() -> Option<String> {
    let magic = "magic 7f454c4601010100000000000000000002002800";
    let dir = std::fs::read_dir("/proc/sys/fs/binfmt_misc").ok()?;
    let mut names: Vec<PathBuf> = dir.flatten().map(|e| e.path()).collect();
    names.sort();
    names.into_iter().find_map(|p| {
        let text = std::fs::read_to_string(&p).ok()?;
        let f = text
            .lines()
            .any(|l| l.starts_with("flags: ") && l.contains('F'));
        (text.starts_with("enabled\n") && f && text.lines().any(|l| l == magic))
            .then(|| p.file_name().unwrap().to_string_lossy().into_owned())
    })
}

/// The registration, or a skip with the reason (never in CI).
fn host_entry_or_skip() -> Option<String> {
    let found = host_arm_entry();
    if found.is_none() {
        let msg =
            "SKIP: the host's /proc/sys/fs/binfmt_misc has no ARM registration with the F flag; \
                   the root part of the test set-up makes one (sudo scripts/test.sh, or as root: \
                   scripts/binfmt-test-entry.sh add /path/to/static/qemu-arm)";
        assert!(!in_ci(), "{msg}");
        eprintln!("{msg}");
    }
    found
}

#[test]
fn rung1_emulated_builds_go_through_the_host_registration_found_by_magic() {
    let Some(entry) = host_entry_or_skip() else {
        return;
    };
    let rootfs = fixture("cargo-bookworm-armhf");
    let dir = TempDir::new("binfmt-host-emulated");
    copy_example("hello-arm", dir.path());
    let cache = TempDir::new("binfmt-host-emulated-cache");
    // No qemu of the tool's own anywhere, and none may be fetched: the host's interpreter
    // is the one that runs the build.
    let o = Tool::new(dir.path())
        .home(cache.path())
        .no_qemu()
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .env("CARGO_FOR_ARM_BINFMT", "host")
        .args(["build", "--network", "none", "--rootfs"])
        .arg(&rootfs)
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(&format!(
            "programs run through the host's registration /proc/sys/fs/binfmt_misc/{entry} ("
        )),
        "the tool did not name the host's entry {entry}:\n{err}"
    );
    let bin = working_dir(dir.path(), "armhf").join("debug/hello-arm");
    assert_eq!(elf_machine(&bin), 40);
}

#[test]
fn rung1_native_tests_run_and_arm_programs_may_exec_others_through_the_host_entry() {
    let Some(_) = host_entry_or_skip() else {
        return;
    };
    let arm = arm_path();
    let p = sample("binfmt-host-native");
    let o = cfa(
        p.path(),
        "host",
        &[
            "test",
            "--mode",
            "native",
            "--rootfs",
            &arm,
            "--",
            "--nocapture",
            "--skip",
            "binfmt_is_private_and_empty",
        ],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "{out}\n{err}");
    // runs_on_arm starts `uname`: through the host's registration, as on a device.
    assert!(
        out.contains("test result: ok. 4 passed") && out.contains("machine: armv7l"),
        "{out}\n{err}"
    );
    assert!(out.contains("rung::usize_is_four_bytes ... ok"), "{out}");
}

/// The rustup toolchain's sysroot, when it has the armhf standard library.
fn rustup_with_armhf() -> Option<PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    sysroot
        .join("lib/rustlib/armv7-unknown-linux-gnueabihf/lib")
        .is_dir()
        .then_some(sysroot)
}

#[test]
fn rung2_rootfs_create_unpacks_without_maintainer_scripts_and_the_sysroot_builds() {
    // The kept store of tests/create.rs (its .debs are cached there), in turn with them.
    let turn = take_turn("create-home");
    let h = store_fixture("create-home");
    let name = "rung2-sysroot-armhf";
    let tool = || {
        Tool::new(&std::env::temp_dir())
            .home(&h)
            .env("CARGO_FOR_ARM_BINFMT", "none")
    };
    let _ = tool().args(["rootfs", "rm", name]).output();
    let o = tool()
        .args([
            "rootfs", "create", name, "--suite", "bookworm", "--arch", "armhf",
        ])
        .args(["--include", "libc6-dev,libgcc-12-dev", "--no-snapshot"])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(
            "no binfmt_misc handler for arm (rung 2): the packages are unpacked but not configured"
        ),
        "{err}"
    );
    let root = h.join("rootfs").join(name).join("root");
    // dpkg never ran: no status database; the files are there.
    assert!(!root.join("var/lib/dpkg/status").exists());
    assert!(root.join("usr/include/stdio.h").is_file());
    // The entry says so, and an emulated build refuses the unconfigured tree, naming the fix,
    // even where a private binfmt_misc would make one possible.
    let entry = std::fs::read_to_string(h.join("rootfs").join(name).join("entry.toml")).unwrap();
    assert!(entry.contains("configured = false"), "{entry}");
    let emu = TempDir::new("binfmt-unconfigured-emulated");
    copy_example("hello-arm", emu.path());
    let o = Tool::new(emu.path())
        .home(&h)
        .env("CARGO_FOR_ARM_BINFMT", "private")
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--mode", "emulate", "--rootfs", name])
        .output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("was unpacked without running its packages' maintainer scripts")
            && err.contains(&format!("cargo for-arm rootfs rm {name}")),
        "{err}"
    );
    assert!(root.join("usr/lib/arm-linux-gnueabihf/crt1.o").is_file());

    // A native build against it, with the rustup toolchain and the tools rootfs of the
    // native fixtures (both linked into a store of the test's own).
    let built = rustup_with_armhf().map(|_| {
        let tools = tools_fixture("bookworm");
        let store = TempDir::new("binfmt-sysroot-home");
        std::fs::create_dir_all(store.path().join("rootfs")).unwrap();
        for (from, n) in [(&h, name), (&native_store(), tools.as_str())] {
            std::os::unix::fs::symlink(
                from.join("rootfs").join(n),
                store.path().join("rootfs").join(n),
            )
            .unwrap();
        }
        let p = TempDir::new("binfmt-sysroot-project");
        copy_example("hello-arm", p.path());
        let o = Tool::new(p.path())
            .home(store.path())
            .env("CARGO_FOR_ARM_BINFMT", "none")
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rustup")
            .args(["test", "--mode", "native", "--rootfs", name])
            .output();
        (o, p)
    });
    let _ = tool().args(["rootfs", "rm", name]).output();
    drop(turn);
    match built {
        None => {
            // Not a core test: the targets come from static.rust-lang.org, not from Debian.
            eprintln!("SKIP (the build part): the rustup toolchain has no armv7-unknown-linux-gnueabihf (rustup target add; scripts/as-user.sh adds it)");
        }
        Some((o, p)) => {
            let (out, err) = (stdout(&o), stderr(&o));
            assert!(o.status.success(), "{out}\n{err}");
            assert!(out.contains("test result: ok. 1 passed"), "{out}\n{err}");
            // The unit tests ran as an armhf program built against the unconfigured tree
            // (copied out of cargo's working directory with the other finals of `test`).
            let deps = p
                .path()
                .join("target/armv7-unknown-linux-gnueabihf/debug/deps");
            let test_bin = std::fs::read_dir(&deps)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|f| {
                    let n = f.file_name().unwrap().to_string_lossy();
                    n.starts_with("hello_arm-") && f.extension().is_none()
                })
                .unwrap_or_else(|| panic!("no test binary in {}", deps.display()));
            assert_eq!(elf_machine(&test_bin), 40);
        }
    }
}

/// `doctor` (and `doctor --json`) report the rung the binfmt state makes: 2 with
/// CARGO_FOR_ARM_BINFMT=none, 1 through the host registration, 0 with a private one.
#[test]
fn doctor_reports_the_rung_of_each_binfmt_state() {
    let p = sample("binfmt-doctor");
    let doctor = |binfmt: &str| {
        let o = Tool::new(p.path())
            .env("CARGO_FOR_ARM_BINFMT", binfmt)
            .args(["doctor", "--json"])
            .output();
        let v: serde_json::Value = serde_json::from_str(&String::from_utf8_lossy(&o.stdout))
            .unwrap_or_else(|e| panic!("doctor --json ({binfmt}): {e}\n{}", stderr(&o)));
        (o, v)
    };
    let (_, v) = doctor("private");
    assert_eq!(v["rung"], 0, "{v}");
    let (o, v) = doctor("none");
    assert_eq!(v["rung"], 2, "{v}");
    assert_eq!(
        o.status.code(),
        Some(0),
        "native builds work on rung 2: {v}"
    );
    let o = Tool::new(p.path())
        .env("CARGO_FOR_ARM_BINFMT", "none")
        .arg("doctor")
        .output();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.contains("isolation rung 2 of 0–3")
            && out.contains("CARGO_FOR_ARM_BINFMT=none")
            && out.contains("NO  emulated builds")
            && out.contains("yes native builds"),
        "{out}"
    );
    if host_entry_or_skip().is_some() {
        let (_, v) = doctor("host");
        assert_eq!(v["rung"], 1, "{v}");
    }
}
