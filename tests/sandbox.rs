//! Kernel tests: the real binary enters real namespaces as an unprivileged user and the
//! assertions are read from inside the sandbox.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Stdio;

use common::*;

fn armhf() -> std::path::PathBuf {
    fixture("busybox-armhf")
}

#[test]
fn tool_runs_unprivileged() {
    assert_unprivileged();
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let uid = status_field(&status, "Uid").unwrap();
    assert!(
        !uid.split_whitespace().any(|u| u == "0"),
        "test process has uid 0: {uid}"
    );
}

#[test]
fn armhf_rootfs_runs_as_armv7l() {
    let o = run_sh(&armhf(), &[], "uname -m");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "armv7l");
}

#[test]
fn arm64_rootfs_runs_as_aarch64() {
    let o = run_sh(&fixture("busybox-arm64"), &[], "uname -m");
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "aarch64");
}

#[test]
fn native_rootfs_runs_without_qemu() {
    let o = run_sh(
        &fixture("busybox-amd64"),
        &[],
        "uname -m; test -e /proc/sys/fs/binfmt_misc/qemu-x86_64 && echo registered; true",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "x86_64");
}

#[test]
fn single_map_makes_the_user_root_inside_with_setgroups_denied() {
    let uid = unsafe { libc::getuid() };
    let o = run_sh(
        &armhf(),
        &["--map", "single"],
        "cat /proc/self/uid_map; cat /proc/self/setgroups; id -u",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(lines[0], ["0", &uid.to_string(), "1"], "{out}");
    assert_eq!(lines[1], ["deny"], "{out}");
    assert_eq!(lines[2], ["0"], "{out}");
}

#[test]
fn full_map_uses_the_subordinate_range() {
    let user = user_name();
    let subuid = std::fs::read_to_string("/etc/subuid").unwrap_or_default();
    let Some(start) = subuid
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{user}:")))
        .and_then(|r| r.split(':').next())
        .map(str::to_string)
    else {
        assert!(!in_ci(), "CI must give the test user a /etc/subuid range");
        eprintln!(
            "skipped: user {user} has no /etc/subuid range (scripts/test.sh as root sets one up)"
        );
        return;
    };
    let uid = unsafe { libc::getuid() };
    let o = run_sh(
        &armhf(),
        &["--map", "full"],
        "cat /proc/self/uid_map; cat /proc/self/gid_map",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows[0], ["0", &uid.to_string(), "1"], "{out}");
    assert_eq!(rows[1], ["1", start.as_str(), "65536"], "{out}");
    // auto picks the full map when it can.
    let o = run_sh(&armhf(), &[], "wc -l < /proc/self/uid_map");
    assert_eq!(stdout(&o).trim(), "2", "{}", stderr(&o));
}

#[test]
fn missing_subuid_falls_back_to_single_map_and_says_so() {
    let proj = TempDir::new("nosub");
    let out = Tool::new(proj.path())
        .env("CARGO_FOR_ARM_SUBUID", proj.path().join("no-such-subuid"))
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "sh", "-c", "wc -l < /proc/self/uid_map"])
        .output();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out).trim(), "1");
    let err = stderr(&out);
    assert_eq!(err.matches("single-id map").count(), 1, "{err}");
    assert!(err.contains("no-such-subuid"), "{err}");
    // Asked for explicitly, the full map refuses instead.
    let out = Tool::new(proj.path())
        .env("CARGO_FOR_ARM_SUBUID", proj.path().join("no-such-subuid"))
        .args(["run", "--map", "full", "--rootfs"])
        .arg(armhf())
        .args(["--", "true"])
        .output();
    assert_eq!(out.status.code(), Some(125));
    assert!(
        stderr(&out).contains("--map full is not possible"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn files_created_in_the_project_belong_to_the_user() {
    let proj = TempDir::new("owner");
    let o = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "sh", "-c", "pwd; echo made > made-inside"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        proj.path().to_str().unwrap(),
        "cwd is bound at the same path"
    );
    let md = std::fs::metadata(proj.path().join("made-inside")).unwrap();
    assert_eq!(md.uid(), unsafe { libc::getuid() });
    assert_eq!(
        std::fs::read_to_string(proj.path().join("made-inside")).unwrap(),
        "made\n"
    );
}

#[test]
fn capabilities_are_dropped_and_no_new_privs_is_set() {
    let o = run_sh(&armhf(), &[], "cat /proc/self/status");
    assert!(o.status.success(), "{}", stderr(&o));
    let s = stdout(&o);
    for key in ["CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"] {
        assert_eq!(
            status_field(&s, key),
            Some("0000000000000000"),
            "{key} in\n{s}"
        );
    }
    assert_eq!(status_field(&s, "NoNewPrivs"), Some("1"));
}

#[test]
fn old_root_and_host_home_are_not_reachable() {
    // The user's home (the tool's HOME) holds a secret.
    let home = TempDir::new("userhome");
    let secret = home.path().join(".cfa-test-secret");
    std::fs::write(&secret, "secret").unwrap();
    let script = format!(
        "cat {0} 2>/dev/null && echo LEAK; ls /; cat /proc/self/mountinfo",
        secret.display()
    );
    let proj = TempDir::new("oldroot");
    let o = Tool::new(proj.path())
        .user_home(home.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "sh", "-c", &script])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(!out.contains("LEAK"), "host home readable inside:\n{out}");
    // The root of the sandbox is the rootfs, and the only mounts are the sandbox's own.
    assert!(out.lines().any(|l| l.trim() == "bin"), "{out}");
    let expected = [
        "/",
        "/proc",
        "/dev",
        "/dev/pts",
        "/dev/shm",
        "/tmp",
        "/run",
        "/etc/resolv.conf",
        "/proc/sys/fs/binfmt_misc",
    ];
    let cwd = proj.path().to_str().unwrap();
    for line in out.lines().filter(|l| l.contains(" - ")) {
        let mount_point = line.split_whitespace().nth(4).unwrap();
        assert!(
            expected.contains(&mount_point)
                || mount_point.starts_with("/dev/")
                || mount_point == cwd,
            "unexpected mount inside the sandbox: {line}"
        );
    }
}

#[test]
fn exit_code_and_signal_death_propagate() {
    let o = run_sh(&armhf(), &[], "exit 42");
    assert_eq!(o.status.code(), Some(42));
    let o = run_sh(&armhf(), &[], "kill -TERM $$");
    assert_eq!(o.status.code(), Some(143));
    let o = run_sh(&armhf(), &[], "kill -KILL $$");
    assert_eq!(o.status.code(), Some(137));
}

/// Start a long command, wait until it printed `ready`, and hand back the child.
fn start_ready(script: &str) -> (Running, BufReader<std::process::ChildStdout>, TempDir) {
    let proj = TempDir::new("sig");
    let mut child = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    (child, out, proj)
}

#[test]
fn sigterm_to_the_tool_reaches_the_command() {
    let (mut child, mut out, _p) =
        start_ready("trap 'echo got-term; exit 7' TERM; echo ready; while :; do sleep 0.2; done");
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert_eq!(rest.trim(), "got-term");
    assert_eq!(status.code(), Some(7));
}

#[test]
fn sigint_without_handler_exits_130() {
    let (mut child, _out, _p) = start_ready("echo ready; exec sleep 1000");
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    assert_eq!(child.wait().unwrap().code(), Some(130));
}

#[test]
fn sigkill_to_the_tool_leaves_no_process_behind() {
    // Unique on this machine while we run (our pid), and of fixed width (no prefix of another).
    let marker = format!("7{:07}", std::process::id());
    let (mut child, _out, _p) =
        start_ready(&format!("echo ready; sleep {marker} & exec sleep {marker}"));
    assert!(
        !processes_with(&format!("sleep {marker}")).is_empty(),
        "the command is not running"
    );
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert_no_process_left(&format!("sleep {marker}"));
}

#[test]
fn an_extra_open_descriptor_is_not_inherited() {
    use std::os::unix::process::CommandExt;
    let proj = TempDir::new("fd");
    let outside = TempDir::new("fd-outside");
    let dir = std::ffi::CString::new(outside.path().to_str().unwrap()).unwrap();
    let mut tool = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "sh", "-c", "ls /proc/$$/fd; true"]);
    // Like `exec 9<DIR` in a shell: a descriptor without close-on-exec.
    unsafe {
        tool.command().pre_exec(move || {
            let fd = libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY);
            if fd >= 0 && fd != 9 {
                libc::dup2(fd, 9);
                libc::close(fd);
            }
            Ok(())
        });
    }
    let o = tool.output();
    assert!(o.status.success(), "{}", stderr(&o));
    let fds: Vec<String> = stdout(&o).split_whitespace().map(str::to_string).collect();
    assert_eq!(fds, ["0", "1", "2"], "descriptors seen inside");
}

/// The host's binfmt_misc registrations, name and text (none when it is not mounted).
fn host_binfmt() -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir("/proc/sys/fs/binfmt_misc")
        .map(|rd| {
            rd.flatten()
                .filter(|e| !matches!(e.file_name().to_str(), Some("register" | "status")))
                .map(|e| {
                    let text = std::fs::read_to_string(e.path()).unwrap_or_default();
                    (e.file_name().to_string_lossy().into_owned(), text)
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

#[test]
fn binfmt_misc_is_private_and_read_only() {
    // The host may have its own qemu-arm (binfmt-support registers qemu-user-static's, with
    // F): the sandbox's is the one cargo-for-arm chose, and the host's stays as it was.
    let host_before = host_binfmt();
    let o = run_sh(
        &armhf(),
        &[],
        "cat /proc/sys/fs/binfmt_misc/qemu-arm; echo -1 > /proc/sys/fs/binfmt_misc/status && echo WRITABLE; true",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("enabled"), "{out}");
    let flags = out.lines().find_map(|l| l.strip_prefix("flags: ")).unwrap();
    assert!(flags.contains('F') && !flags.contains('C'), "flags {flags}");
    let ours = qemu_dir().join("qemu-arm").canonicalize().unwrap();
    assert_eq!(
        out.lines().find_map(|l| l.strip_prefix("interpreter ")),
        Some(ours.to_str().unwrap()),
        "{out}"
    );
    assert!(
        !out.contains("WRITABLE"),
        "binfmt_misc writable inside:\n{out}"
    );
    // Nothing was registered, changed or removed on the host.
    assert_eq!(host_binfmt(), host_before);
}

#[test]
fn network_none_has_only_loopback() {
    let o = run_sh(&armhf(), &["--network", "none"], "cat /proc/net/dev");
    assert!(o.status.success(), "{}", stderr(&o));
    let ifaces: Vec<String> = stdout(&o)
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    assert_eq!(ifaces, ["lo"]);
}

#[test]
fn binds_env_and_workdir() {
    let data = TempDir::new("bind");
    std::fs::write(data.path().join("in.txt"), "host data\n").unwrap();
    let spec = format!("{}:/data:ro", data.path().display());
    let o = run_sh(
        &armhf(),
        &[
            "--bind",
            &spec,
            "--env",
            "GREETING=hello world",
            "--workdir",
            "/data",
        ],
        "pwd; cat in.txt; echo \"$GREETING\"; touch /data/x 2>/dev/null && echo WROTE; true",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "/data\nhost data\nhello world\n");
    assert!(!data.path().join("x").exists());
}

#[test]
fn host_environment_does_not_leak() {
    let proj = TempDir::new("env");
    let o = Tool::new(proj.path())
        .env("CFA_SECRET_TOKEN", "hunter2")
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "env"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stdout(&o).contains("hunter2"));
    assert!(stdout(&o).contains("PATH=/usr/local/sbin"));
}

#[test]
fn exec_failures_have_their_own_codes() {
    let proj = TempDir::new("exec");
    let o = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "no-such-command-xyz"])
        .output();
    assert_eq!(o.status.code(), Some(127));
    assert!(
        stderr(&o).contains("no-such-command-xyz: command not found"),
        "{}",
        stderr(&o)
    );
    std::fs::write(proj.path().join("plain.txt"), "not a program").unwrap();
    let o = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "./plain.txt"])
        .output();
    assert_eq!(o.status.code(), Some(126));
    assert!(
        stderr(&o).contains("cannot execute ./plain.txt"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn dynamic_qemu_is_refused() {
    let proj = TempDir::new("dynq");
    let o = Tool::new(proj.path())
        .args(["run", "--qemu", "/bin/ls", "--rootfs"])
        .arg(armhf())
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("dynamically linked") && e.contains("static"),
        "{e}"
    );
}

#[test]
fn missing_qemu_names_what_to_install() {
    // None named, none on PATH (even where the host has qemu-user-static), none in the fresh
    // store, and fetching forbidden.
    let proj = TempDir::new("noq");
    let o = Tool::new(proj.path())
        .no_qemu()
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(
        e.contains("no qemu for arm") && e.contains("qemu-user-static"),
        "{e}"
    );
}

#[test]
fn qemu_is_found_on_path() {
    let proj = TempDir::new("pathq");
    let o = Tool::new(proj.path())
        .no_qemu()
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .path_first(&qemu_dir())
        .args(["run", "--rootfs"])
        .arg(armhf())
        .args(["--", "uname", "-m"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "armv7l");
}

#[test]
fn wrong_arch_rootfs_is_a_clear_error() {
    let proj = TempDir::new("wrongarch");
    let o = Tool::new(proj.path())
        .args(["run", "--arch", "arm64", "--rootfs"])
        .arg(armhf())
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    let e = stderr(&o);
    assert!(e.contains("armhf") && e.contains("--arch"), "{e}");
    // A directory that is no rootfs at all.
    let o = Tool::new(proj.path())
        .args(["run", "--rootfs"])
        .arg(proj.path())
        .args(["--no-bind-cwd", "--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/bin/sh"), "{}", stderr(&o));
}

#[test]
fn rootfs_symlinks_never_redirect_mounts_to_the_host() {
    let t = TempDir::new("evil");
    let root = rootfs_copy("busybox-armhf", t.path());
    // A host path the user can write, outside /tmp (the sandbox has its own /tmp).
    let escape =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("cfa-escape-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&escape);
    // /run points at a host path the user could write: it must land inside the rootfs. With
    // --rootfs-rw, set-up writes the directory itself (the riskiest case).
    let _ = std::fs::remove_dir_all(root.join("run"));
    std::os::unix::fs::symlink(&escape, root.join("run")).unwrap();
    let o = run_sh(
        &root,
        &["--rootfs-rw"],
        "echo inside > /run/marker; cat /run/marker",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !escape.exists(),
        "a mount point was created on the host at {}",
        escape.display()
    );
    assert!(root.join(escape.strip_prefix("/").unwrap()).is_dir());
    // /proc pointing at the root itself is refused, not mounted over the rootfs.
    let _ = std::fs::remove_dir_all(root.join("proc"));
    std::os::unix::fs::symlink("/", root.join("proc")).unwrap();
    let o = run_sh(&root, &[], "true");
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("/proc"), "{}", stderr(&o));
}

#[test]
fn doctor_passes_here() {
    let proj = TempDir::new("doctor");
    let o = Tool::new(proj.path())
        .path_first(&qemu_dir())
        .arg("doctor")
        .output();
    let out = stdout(&o);
    assert_eq!(o.status.code(), Some(0), "{out}\n{}", stderr(&o));
    assert!(out.contains("ok   private binfmt_misc"), "{out}");
    assert!(out.contains("ok   user namespaces"), "{out}");
}

/// A user's first run, from their home directory, with the default store under
/// `~/.cache/cargo-for-arm` (which the bound home directory contains) and a fetched qemu
/// kept there too: it works, and the tool's home is hidden inside (empty, read-only).
#[test]
fn run_from_the_home_directory_with_the_default_store() {
    let t = TempDir::new("home");
    let home = t.path().join("u");
    let cfa = home.join(".cache/cargo-for-arm");
    // A qemu in the tool's own cache, as `qemu fetch` leaves it (read-only).
    let qdir = cfa.join("qemu/10.0.0");
    std::fs::create_dir_all(&qdir).unwrap();
    std::fs::copy(qemu_dir().join("qemu-arm"), qdir.join("qemu-arm")).unwrap();
    // No qemu named or on PATH: the one in the default store is used.
    let in_home = |args: &[&str]| {
        Tool::new(&home)
            .user_home(&home)
            .default_store()
            .no_qemu()
            .env("CARGO_FOR_ARM_OFFLINE", "1")
            .args(args)
            .output()
    };
    let o = in_home(&[
        "rootfs",
        "import",
        armhf().to_str().unwrap(),
        "--name",
        "bb",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = in_home(&[
        "run",
        "--rootfs",
        "bb",
        "--",
        "sh",
        "-c",
        "uname -m; pwd; ls -A \"$0\" | wc -l; touch \"$0/x\" 2>/dev/null && echo writable || echo read-only",
        cfa.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<String> = stdout(&o).lines().map(str::to_string).collect();
    assert_eq!(
        lines,
        vec![
            "armv7l".to_string(),
            home.to_string_lossy().into_owned(),
            "0".into(),
            "read-only".into()
        ],
        "{}",
        stderr(&o)
    );
    assert!(!cfa.join("x").exists());
}

/// A rootfs directory named by path is seen through a throwaway overlay: a run changes
/// nothing in it, unless the user asks with --rootfs-rw.
#[test]
fn a_run_changes_a_rootfs_directory_only_with_rootfs_rw() {
    let t = TempDir::new("rootfs-ro");
    let root = rootfs_copy("busybox-armhf", t.path());
    let o = run_sh(
        &root,
        &[],
        "echo x > /made-inside && rm /bin/true && echo done",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "done");
    assert!(!root.join("made-inside").exists());
    assert!(std::fs::symlink_metadata(root.join("bin/true")).is_ok());
    let o = run_sh(&root, &["--rootfs-rw"], "echo x > /made-inside");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(root.join("made-inside").exists());
}
