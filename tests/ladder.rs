//! The isolation ladder's rung 3 (issue #11), each restriction reproduced on this machine as
//! the unprivileged test user rather than skipped:
//!
//! - `--isolation none`: no sandbox although one would work;
//! - ENOSPC: the tool inside a user namespace whose `user.max_user_namespaces` is 0
//!   (hardened hosts);
//! - EPERM from every mount call (`mount`, `umount2`, `pivot_root`, `fsopen`, `fsmount`,
//!   `move_mount`, `open_tree`, `mount_setattr`): a seccomp filter installed by the test — what
//!   AppArmor's `apparmor_restrict_unprivileged_userns` does to a new user namespace;
//! - EPERM from unshare/clone(CLONE_NEWUSER) and ENOSYS from clone3: Docker's default profile.
//!
//! In each, tests/support/ladder-sample (a registry dependency, a build script, C through the
//! `cc` crate, zlib of the ARM rootfs through pkg-config) builds natively from a fresh
//! cargo-for-arm home with the rustup toolchain and the host's clang and lld; its unit tests
//! run as ARM code under qemu -L; an emulated build and `run` are refused (125) with the
//! fixes; doctor reports rung 3 with the reason. The ARM rootfs is the native fixture, read
//! as a plain directory.

mod common;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Output;

use common::*;

const TRIPLE: &str = "armv7-unknown-linux-gnueabihf";

/// How a test takes the user namespace away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restriction {
    /// None: `--isolation none` (CARGO_FOR_ARM_ISOLATION=none).
    Asked,
    /// `user.max_user_namespaces` = 0 in the user namespace the tool runs in.
    Enospc,
    /// Every mount call fails with EPERM.
    MountEperm,
    /// unshare/clone(CLONE_NEWUSER) fail with EPERM, clone3 with ENOSYS.
    Docker,
}

impl Restriction {
    /// What the tool must say about why there is no sandbox.
    fn reason(self) -> &'static str {
        match self {
            Restriction::Asked => "asked for (--isolation none)",
            Restriction::Enospc => "failed with ENOSPC (user.max_user_namespaces is 0",
            Restriction::MountEperm => "failed with EPERM (AppArmor's restriction",
            Restriction::Docker => "(clone with CLONE_NEWUSER) failed with EPERM",
        }
    }
}

/// The ARM rootfs of the native fixtures (Debian 12 armhf with zlib1g-dev), by path.
fn arm_rootfs() -> PathBuf {
    let name = arm_fixture("bookworm", "armhf");
    native_store().join("rootfs").join(name).join("root")
}

/// A copy of tests/support/ladder-sample.
fn sample(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/ladder-sample");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(src.join("Cargo.toml"))
        .arg(src.join("Cargo.lock"))
        .arg(src.join("build.rs"))
        .arg(src.join("src"))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    dir
}

/// The seccomp filters that reproduce a restriction, compiled before the fork.
fn filters(r: Restriction) -> Vec<seccompiler::BpfProgram> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;
    let arch = match std::env::consts::ARCH {
        "x86_64" => TargetArch::x86_64,
        _ => TargetArch::aarch64,
    };
    let filter = |rules: BTreeMap<i64, Vec<SeccompRule>>, errno: i32| -> BpfProgram {
        SeccompFilter::new(
            rules,
            SeccompAction::Allow,
            SeccompAction::Errno(errno as u32),
            arch,
        )
        .unwrap()
        .try_into()
        .unwrap()
    };
    match r {
        Restriction::MountEperm => {
            let calls = [
                libc::SYS_mount,
                libc::SYS_umount2,
                libc::SYS_pivot_root,
                libc::SYS_fsopen,
                libc::SYS_fsmount,
                libc::SYS_move_mount,
                libc::SYS_open_tree,
                libc::SYS_mount_setattr,
            ];
            vec![filter(
                calls.iter().map(|c| (*c, vec![])).collect(),
                libc::EPERM,
            )]
        }
        Restriction::Docker => {
            let newuser = libc::CLONE_NEWUSER as u64;
            let with_newuser = || {
                vec![SeccompRule::new(vec![SeccompCondition::new(
                    0,
                    SeccompCmpArgLen::Qword,
                    SeccompCmpOp::MaskedEq(newuser),
                    newuser,
                )
                .unwrap()])
                .unwrap()]
            };
            vec![
                filter(
                    BTreeMap::from([
                        (libc::SYS_unshare, with_newuser()),
                        (libc::SYS_clone, with_newuser()),
                    ]),
                    libc::EPERM,
                ),
                filter(BTreeMap::from([(libc::SYS_clone3, vec![])]), libc::ENOSYS),
            ]
        }
        _ => Vec::new(),
    }
}

/// The tool in `dir` under a seccomp restriction (installed between fork and exec), with a
/// fresh home.
fn filtered(r: Restriction, dir: &Path) -> Tool {
    let mut t = Tool::new(dir);
    let progs = filters(r);
    // SAFETY: between fork and exec only prctl and seccomp, on programs compiled before.
    unsafe {
        t.command().pre_exec(move || {
            if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            for p in &progs {
                seccompiler::apply_filter(p).map_err(|e| std::io::Error::other(e.to_string()))?;
            }
            Ok(())
        });
    }
    t
}

/// The tool with `args` in `dir`, under restriction `r`, with a fresh home.
fn cfa(r: Restriction, dir: &Path, args: &[&str]) -> Output {
    match r {
        Restriction::Asked => Tool::new(dir)
            .env("CARGO_FOR_ARM_ISOLATION", "none")
            .args(args)
            .output(),
        Restriction::Enospc => {
            let script =
                "echo 0 > /proc/sys/user/max_user_namespaces || exit 99; exec \"$0\" \"$@\"";
            let mut a = vec!["--user", "--map-root-user", "sh", "-c", script, TOOL];
            a.extend(args);
            Tool::new(dir).output_via("unshare", &a)
        }
        Restriction::MountEperm | Restriction::Docker => filtered(r, dir).args(args).output(),
    }
}

fn rung_3(r: Restriction) {
    let rootfs = arm_rootfs();
    let rootfs_s = rootfs.to_string_lossy().into_owned();
    let p = sample(&format!("ladder-{r:?}"));

    // doctor: rung 3, the reason, what works, and the fixes.
    let o = cfa(r, p.path(), &["doctor"]);
    let out = stdout(&o);
    if r != Restriction::Asked {
        assert!(
            out.contains(
                "isolation rung 3 of 0–3: no isolation: user namespaces are unavailable because"
            ) && out.contains(r.reason()),
            "{out}\n{}",
            stderr(&o)
        );
        assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
        assert!(
            out.contains("yes native builds") && out.contains("NO  emulated builds"),
            "{out}"
        );
        assert!(
            out.contains("profile cargo-for-arm ") && out.contains("apparmor_parser -r"),
            "{out}"
        );
        let o = cfa(r, p.path(), &["doctor", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("doctor --json");
        assert_eq!(v["rung"], 3, "{v}");
        assert!(
            v["reason"].as_str().unwrap_or("").contains(r.reason()),
            "{v}"
        );
    }

    // A native build from a fresh home, without a sandbox; a build script writing outside
    // the target dir is refused by Landlock.
    // Outside the target dir, this build's own directory and /tmp (the project is in /tmp).
    let outside = cache_dir().join(format!("ladder-probe-{r:?}-{}", std::process::id()));
    let _ = std::fs::remove_file(&outside);
    let probe = format!("LADDER_PROBE_WRITE={}", outside.display());
    let o = cfa(
        r,
        p.path(),
        &["build", "--release", "--rootfs", &rootfs_s, "--env", &probe],
    );
    let err = stderr(&o);
    assert!(o.status.success(), "rung 3 build failed:\n{err}");
    let said = format!("no isolation: {}", r.reason());
    let said = match r {
        Restriction::Asked => said,
        _ => "no isolation: user namespaces are unavailable because".to_string(),
    };
    assert!(err.contains(&said) && err.contains(r.reason()), "{err}");
    assert_eq!(err.matches("no isolation:").count(), 1, "said once:\n{err}");
    assert!(err.contains("without a sandbox"), "{err}");
    // The final in cargo's cross layout, copied out of the tool's working directory, as in
    // the sandboxed rungs.
    let bin = p
        .path()
        .join(format!("target/{TRIPLE}/release/ladder-sample"));
    assert_eq!(elf_machine(&bin), 40, "{}", bin.display());
    assert!(
        err.contains(&bin.display().to_string()),
        "the report names the final:\n{err}"
    );
    // zlib linked dynamically from the ARM rootfs (an absolute libz.so link would have made
    // lld take libz.a without a word).
    assert!(err.contains("libz.so.1"), "{err}");
    if !landlock() {
        // A kernel without Landlock (< 5.13, or built without it): the tool warns, and there
        // is nothing to confine the build script; never so in CI.
        assert!(!in_ci(), "this kernel has no Landlock");
        eprintln!("skipped the Landlock check: this kernel has no Landlock");
        assert!(err.contains("this kernel has no Landlock"), "{err}");
    } else {
        assert!(
            err.contains("ladder probe write") && err.contains("refused (Permission denied"),
            "the build script could write outside the target dir:\n{err}"
        );
        assert!(!outside.exists());
    }
    let _ = std::fs::remove_file(&outside);

    // Its unit tests run as ARM code under the tool's qemu -L.
    let o = cfa(
        r,
        p.path(),
        &["test", "--rootfs", &rootfs_s, "--", "--nocapture"],
    );
    let (out, err) = (stdout(&o), stderr(&o));
    assert!(o.status.success(), "rung 3 test failed:\n{out}\n{err}");
    assert!(
        out.contains("test result: ok. 4 passed")
            && out.contains("machine: armv7l, usize: 4 bytes"),
        "the tests did not run as ARM code:\n{out}\n{err}"
    );

    // An emulated build needs the sandbox: 125, with the fixes.
    let o = cfa(
        r,
        p.path(),
        &["build", "--mode", "emulate", "--rootfs", &rootfs_s],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("needs the sandbox")
            && err.contains("kernel.apparmor_restrict_unprivileged_userns=0")
            && err.contains("user.max_user_namespaces")
            && err.contains(&format!("profile cargo-for-arm {TOOL}"))
            && err.contains("seccomp=unconfined"),
        "{err}"
    );
    if r != Restriction::Asked {
        // `run`, and a forced sandbox, are errors too: never a silent downgrade.
        let o = cfa(r, p.path(), &["run", "--rootfs", &rootfs_s, "--", "true"]);
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(stderr(&o).contains("needs the sandbox"), "{}", stderr(&o));
        let o = cfa(
            r,
            p.path(),
            &["build", "--isolation", "sandbox", "--rootfs", &rootfs_s],
        );
        assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("--isolation sandbox: user namespaces are unavailable"),
            "{}",
            stderr(&o)
        );
    }
}

/// Whether this kernel has Landlock (then the build must be confined by it).
fn landlock() -> bool {
    // SAFETY: LANDLOCK_CREATE_RULESET_VERSION only answers.
    unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        ) > 0
    }
}

#[test]
fn rung_3_when_asked_for() {
    rung_3(Restriction::Asked);
}

#[test]
fn rung_3_enospc_max_user_namespaces_0() {
    rung_3(Restriction::Enospc);
}

#[test]
fn rung_3_eperm_from_every_mount_call_apparmor() {
    rung_3(Restriction::MountEperm);
}

#[test]
fn rung_3_eperm_from_clone_newuser_docker() {
    rung_3(Restriction::Docker);
}

/// Supervision without a pid namespace: an ARM test that hangs is killed by the heartbeat
/// with everything below the guard, and nothing is left behind.
#[test]
fn rung_3_hang_is_killed_and_nothing_is_left() {
    let rootfs = arm_rootfs();
    let p = sample("ladder-hang");
    // Output to a file, not a pipe: a process left behind would hold a pipe open and hang
    // the test instead of failing it.
    let log = p.path().join("tool-stderr.txt");
    let mut child = filtered(Restriction::Docker, p.path())
        .args([
            "test",
            "--rootfs",
            &rootfs.to_string_lossy(),
            "--hang-timeout",
            "5",
            "--retries",
            "0",
            "--env",
            "LADDER_HANG=1",
            "--",
            "hangs_when_asked",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(&log).unwrap(),
        ))
        .spawn();
    let status = child.child.wait().unwrap();
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(124), "{err}");
    assert!(err.contains("the run is hung"), "{err}");
    assert_no_process_left(&p.path().to_string_lossy());
}

/// `rootfs create` without a user namespace makes a sysroot (files owned by the user, no
/// maintainer scripts, absolute symlinks made relative) that a rung-3 build links against:
/// zlib dynamically, through the rewritten `libz.so`. The packages come from the native
/// fixtures' cache, shared (a fresh home whose `debs` links to it).
#[test]
fn rung_3_rootfs_create_makes_a_sysroot_a_build_links_against() {
    arm_rootfs(); // the fixture store, with the packages cached
    let t = TempDir::new("ladder-create");
    let home = t.path().join("home");
    std::fs::create_dir(&home).unwrap();
    std::os::unix::fs::symlink(native_store().join("debs"), home.join("debs")).unwrap();
    let p = sample("ladder-create-project");
    let run = |args: &[&str]| {
        filtered(Restriction::Docker, p.path())
            .home(&home)
            .args(args)
            .output()
    };
    let o = run(&[
        "rootfs",
        "create",
        "sys",
        "--suite",
        "bookworm",
        "--arch",
        "armhf",
        "--include",
        "zlib1g-dev",
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("no isolation: user namespaces are unavailable")
            && err.contains("as a sysroot")
            && err.contains("Created rootfs sys"),
        "{err}"
    );
    let root = home.join("rootfs/sys/root");
    let entry = std::fs::read_to_string(home.join("rootfs/sys/entry.toml")).unwrap();
    assert!(entry.contains("owners_kept = false"), "{entry}");
    assert!(entry.contains("configured = false"), "{entry}");
    let libz = root.join("usr/lib/arm-linux-gnueabihf/libz.so");
    let link = std::fs::read_link(&libz).unwrap();
    assert!(link.is_relative(), "{}", link.display());
    assert!(
        libz.exists(),
        "{} -> {} dangles",
        libz.display(),
        link.display()
    );
    // No maintainer script ran: dpkg's status knows nothing configured.
    let status = std::fs::read_to_string(root.join("var/lib/dpkg/status")).unwrap_or_default();
    assert!(!status.contains("Status: install ok installed"), "{status}");

    let o = run(&["build", "--release", "--rootfs", "sys"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("libz.so.1"),
        "zlib was not linked dynamically:\n{err}"
    );
}

/// Everything of a rung-3 build dies with the tool, even when the tool is SIGKILLed (the
/// guard's PR_SET_PDEATHSIG): an ARM test that hangs is not left behind.
#[test]
fn rung_3_everything_dies_with_a_killed_tool() {
    let rootfs = arm_rootfs();
    let p = sample("ladder-killed");
    let log = p.path().join("tool-stderr.txt");
    let mut child = filtered(Restriction::MountEperm, p.path())
        .args([
            "test",
            "--rootfs",
            &rootfs.to_string_lossy(),
            "--hang-timeout",
            "0",
            "--env",
            "LADDER_HANG=1",
            "--",
            "hangs_when_asked",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::from(
            std::fs::File::create(&log).unwrap(),
        ))
        .spawn();
    // Wait until the ARM test runs under qemu (or the tool ended, which is a failure).
    let needle = format!("{}/target", p.path().display());
    loop {
        let running = processes_with(&needle).iter().any(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| String::from_utf8_lossy(&c).contains("hangs_when_asked"))
        });
        if running {
            break;
        }
        if let Some(st) = child.child.try_wait().unwrap() {
            panic!(
                "the tool ended ({st}):\n{}",
                std::fs::read_to_string(&log).unwrap()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    child.child.kill().unwrap();
    child.child.wait().unwrap();
    assert_no_process_left(&needle);
}
