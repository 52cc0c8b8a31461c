//! The code that runs inside the new namespaces: the set-up stage (mounts, binfmt,
//! pivot_root), then PID 1 of the sandbox, which forks the command, forwards signals, reaps
//! every child and exits with the command's status, and the command stage (drop privileges,
//! seccomp, execve).
//!
//! Nothing here returns to the caller, and nothing here allocates: everything it needs was
//! prepared before clone (the [`ChildSpec`], the [`ExecArgs`]), and it calls the kernel only
//! through [`Sys`]. A failure is reported to the host over the report pipe as one
//! `kind\tmessage` line written with write(2), then the process exits.

// Errors here live on the stack on purpose: the code between clone and exec may not
// allocate (no Box), and a fixed buffer keeps the paths they name whole.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use std::ffi::{c_char, CStr, CString};
use std::fmt::Write as _;
use std::marker::PhantomData;
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::mounts;
use super::sys::{self, CPath, ErrnoText, FdWriter, Kernel, Sys, SysError, Text};
use super::{ChildSpec, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP, FORWARDED};

/// Why the set-up stage failed (reported as `setup\t<message>`, exit 125).
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Sys(#[from] SysError),
    #[error("creating mount point {guest} in the rootfs: {source}")]
    MountPoint { guest: Text, source: SysError },
    #[error(
        "resolving {guest} in the rootfs (a symlink to the rootfs's root; refusing to mount over it) => {}",
        ErrnoText(Errno::ELOOP)
    )]
    RootTarget { guest: Text },
    #[error(
        "{} (a container that masks /proc forbids a new procfs; cargo-for-arm never falls back to the host's) => {}",
        .0.what(),
        .0.errno_text()
    )]
    Proc(SysError),
    #[error(
        "{}; this kernel does not allow a private binfmt_misc in a user namespace \
         (needs Linux 6.7 or later): upgrade the kernel, or ask an administrator to \
         register a static qemu with flag F (then CARGO_FOR_ARM_BINFMT=host uses it); \
         run 'cargo for-arm doctor' => {}",
        .0.what(),
        .0.errno_text()
    )]
    NoPrivateBinfmt(SysError),
    #[error("registering qemu in {guest}/register => {}", ErrnoText(*errno))]
    Register { guest: Text, errno: Errno },
    #[error("fork => {0}")]
    Fork(Errno),
}

/// Why the command could not be started (reported as `exec\t<code>\t<message>`).
#[derive(Debug, thiserror::Error)]
pub enum ExecError<'a> {
    #[error("working directory {} inside the sandbox: {source}", sys::Lossy(.workdir.to_bytes()))]
    Workdir { workdir: &'a CStr, source: SysError },
    #[error("dropping privileges: prctl(PR_CAPBSET_DROP, {cap}) => {errno}")]
    CapDrop { cap: u32, errno: Errno },
    #[error("dropping privileges: prctl(PR_SET_NO_NEW_PRIVS) => {0}")]
    NoNewPrivs(Errno),
    // The wording of the caps and seccompiler crates, which made these calls before.
    #[error("dropping privileges: capset: caps error: capset failure: {} (os error {})", .0.desc(), *.0 as i32)]
    Capset(Errno),
    #[error("installing the seccomp filter: Cannot install empty filter.")]
    EmptySeccomp,
    #[error("installing the seccomp filter: Error calling `seccomp`: {} (os error {})", .0.desc(), *.0 as i32)]
    Seccomp(Errno),
    #[error("cannot execute {}: {errno}{}", sys::Lossy(.path.to_bytes()), enoexec_hint(*.errno))]
    CannotExecute { path: &'a CStr, errno: Errno },
    #[error("{}: command not found in the rootfs (PATH {path})", sys::Lossy(.name.to_bytes()))]
    NotFound { name: &'a CStr, path: &'a str },
}

fn enoexec_hint(errno: Errno) -> &'static str {
    if errno == Errno::ENOEXEC {
        " (no binfmt handler took this binary: is it built for the rootfs architecture?)"
    } else {
        ""
    }
}

impl ExecError<'_> {
    /// The tool's exit code for this failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            ExecError::CannotExecute { .. } => EXIT_NOT_EXECUTABLE,
            ExecError::NotFound { .. } => EXIT_NOT_FOUND,
            _ => EXIT_SETUP,
        }
    }
}

/// argv and envp as the NULL-terminated pointer arrays execve takes, built before clone
/// from the spec they point into.
pub struct ExecArgs<'a> {
    argv: Vec<*const c_char>,
    envp: Vec<*const c_char>,
    _spec: PhantomData<&'a ChildSpec>,
}

impl<'a> ExecArgs<'a> {
    pub fn new(spec: &'a ChildSpec) -> ExecArgs<'a> {
        let ptrs = |v: &[CString]| -> Vec<*const c_char> {
            v.iter()
                .map(|a| a.as_ptr())
                .chain([std::ptr::null()])
                .collect()
        };
        ExecArgs {
            argv: ptrs(&spec.argv),
            envp: ptrs(&spec.envp),
            _spec: PhantomData,
        }
    }
}

/// One report line for the host: `kind\t[code\t]message`, the message's newlines as spaces.
fn report<S: Sys>(sys: &S, fd: RawFd, kind: &str, code: Option<i32>, msg: &dyn std::fmt::Display) {
    let mut w = FdWriter::new(sys, fd);
    let _ = match code {
        Some(code) => write!(w, "{kind}\t{code}\t{msg}"),
        None => write!(w, "{kind}\t{msg}"),
    };
    w.raw(b"\n");
    let _ = w.finish();
}

/// The first thing a cloned child does: die with the tool, and wait until the host has
/// written the id maps. EOF on `go_fd` means the host gave up or died: exit 125.
pub fn await_host<S: Sys>(sys: &S, go_fd: RawFd) {
    // If the tool dies, even by SIGKILL, the kernel kills PID 1 and with it the whole pid
    // namespace: no qemu or build process outlives cargo-for-arm.
    sys.die_with_parent();
    if sys.read_byte(go_fd).is_none() {
        sys.exit(EXIT_SETUP);
    }
}

/// Entry point of the cloned child. Never returns.
pub fn child_main(spec: &ChildSpec, args: &ExecArgs<'_>) -> ! {
    stages(&Kernel, spec, args)
}

/// The child's stages in order: wait for the host, set up, become PID 1 and start the command.
fn stages<S: Sys>(sys: &S, spec: &ChildSpec, args: &ExecArgs<'_>) -> ! {
    await_host(sys, spec.go_fd);
    sys.close(spec.go_fd);
    if let Err(e) = setup(sys, spec) {
        report(sys, spec.report_fd, "setup", None, &e);
        sys.exit(EXIT_SETUP);
    }
    run_init(sys, spec, args)
}

/// The set-up stage: a private mount tree with the rootfs (and every mount of the plan) as
/// its root.
pub fn setup<S: Sys>(sys: &S, spec: &ChildSpec) -> Result<(), SetupError> {
    if spec.full_map {
        // Supplementary groups of the host user are unmapped (nobody) inside; drop them.
        sys.drop_supplementary_groups();
    }
    if spec.new_net {
        sys.loopback_up();
    }
    // Nothing we mount may propagate back to the host's mount namespace.
    sys.mount(
        None,
        c"/",
        None,
        libc::MS_REC | libc::MS_PRIVATE,
        None,
        c"/",
    )?;
    let rootfs = spec.rootfs.as_c_str();
    if spec.ephemeral {
        ephemeral_root(sys, rootfs)?;
    }
    let bind = libc::MS_BIND | libc::MS_REC;
    sys.mount(Some(rootfs), rootfs, None, bind, None, rootfs)?;
    let root = sys.open(rootfs, libc::O_PATH | libc::O_DIRECTORY)?;
    let locked = sys.locked_flags(root.as_raw_fd())?;
    // The rootfs may hold setuid files or device nodes from an archive: neither works here.
    let flags = libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV | locked;
    sys.mount(None, rootfs, None, flags, None, rootfs)?;
    for op in &spec.mounts {
        mounts::apply(sys, root.as_raw_fd(), op)?;
    }
    sys.fchdir(root.as_raw_fd(), rootfs)?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves nothing
    // of the host visible but the binds.
    sys.pivot_root(c".", c".")?;
    sys.umount_detach(c".")?;
    sys.chdir(c"/")?;
    Ok(())
}

/// Cover the rootfs with an overlay whose upper layer is a private tmpfs: mount points and
/// anything the command writes land there and vanish with the sandbox, so a stored rootfs is
/// never modified by a run.
fn ephemeral_root<S: Sys>(sys: &S, rootfs: &CStr) -> Result<(), SetupError> {
    let tmp = sys.detached_mount(c"tmpfs", &[(c"mode", Some(c"0755"))])?;
    for d in [c"upper", c"work"] {
        sys.mkdirat(tmp.as_raw_fd(), d, 0o755)?;
    }
    let upper = CPath::fd(tmp.as_raw_fd(), b"/upper")?;
    let work = CPath::fd(tmp.as_raw_fd(), b"/work")?;
    let ovl = sys.detached_mount(
        c"overlay",
        &[
            (c"lowerdir", Some(rootfs)),
            (c"upperdir", Some(upper.as_cstr())),
            (c"workdir", Some(work.as_cstr())),
            (c"userxattr", None),
        ],
    )?;
    Ok(sys.move_mount_to(ovl.as_raw_fd(), rootfs)?)
}

/// PID 1: start the command in its own process, then forward signals and reap until it ends.
fn run_init<S: Sys>(sys: &S, spec: &ChildSpec, args: &ExecArgs<'_>) -> ! {
    if spec.interactive {
        // The sandbox becomes the terminal's foreground job; the tool takes it back after.
        sys.take_terminal();
    } else {
        // A new session without a controlling terminal: TIOCSTI cannot push input into the
        // user's shell.
        sys.new_session();
    }
    match sys.fork() {
        Err(e) => {
            report(
                sys,
                spec.report_fd,
                "setup",
                None,
                &SetupError::Fork(e.errno),
            );
            sys.exit(EXIT_SETUP)
        }
        Ok(0) => exec_command(sys, spec, args),
        Ok(cmd) => forward_and_reap(sys, cmd),
    }
}

/// PID 1's loop: pass signals on to the command, reap every child (PID 1 adopts every
/// orphan), and exit with the command's status when it ends.
fn forward_and_reap<S: Sys>(sys: &S, cmd: libc::pid_t) -> ! {
    let set = sys::sigset(FORWARDED.into_iter().chain([libc::SIGCHLD]));
    loop {
        let Some((sig, code)) = sys.wait_signal(&set) else {
            continue;
        };
        if sig == libc::SIGCHLD {
            while let Some((pid, status)) = sys.reap_any() {
                if let (true, Some(code)) = (pid == cmd, sys::exit_code(status)) {
                    // Our exit takes every remaining process of the namespace with it.
                    sys.exit(code);
                }
            }
        } else if code != libc::SI_KERNEL {
            // Signals the terminal sent to our foreground group reached the command already
            // (SI_KERNEL); those from the tool or a user's kill are passed on.
            sys.kill(cmd, sig);
        }
    }
}

/// The command stage: prepare, exec; on failure report and exit with the failure's code.
fn exec_command<S: Sys>(sys: &S, spec: &ChildSpec, args: &ExecArgs<'_>) -> ! {
    let err = match prepare_command(sys, spec) {
        Ok(()) => exec(sys, spec, args),
        Err(e) => e,
    };
    let code = err.exit_code();
    report(sys, spec.report_fd, "exec", Some(code), &err);
    sys.exit(code)
}

/// Everything between fork and execve, seccomp last: nothing after it needs a filtered call.
fn prepare_command<'a, S: Sys>(sys: &S, spec: &'a ChildSpec) -> Result<(), ExecError<'a>> {
    sys.reset_signals();
    if let Some(fd) = spec.stderr_fd {
        // Our stderr becomes the pipe the tool reads.
        sys.dup2(fd, 2);
    }
    sys.chdir(&spec.workdir)
        .map_err(|source| ExecError::Workdir {
            workdir: &spec.workdir,
            source,
        })?;
    if spec.keep_caps {
        // Capabilities stay (they are the namespace's, not the host's).
        let _ = sys.set_no_new_privs();
    } else {
        drop_privileges(sys)?;
    }
    for prog in &spec.seccomp {
        if prog.is_empty() {
            return Err(ExecError::EmptySeccomp);
        }
        sys.seccomp_filter(prog)
            .map_err(|e| ExecError::Seccomp(e.errno))?;
    }
    sys.cloexec_from(3);
    Ok(())
}

/// Past the last capability of any kernel (63 fits the two 32-bit words of capset).
const CAP_MAX: u32 = 63;

/// Empty the bounding, ambient, inheritable, permitted and effective sets, then
/// no_new_privs: nothing the command executes can gain a privilege back.
fn drop_privileges<S: Sys>(sys: &S) -> Result<(), ExecError<'static>> {
    for cap in 0..=CAP_MAX {
        // EINVAL: past this kernel's last capability.
        match sys.drop_bounding_cap(cap) {
            Err(e) if e.errno != Errno::EINVAL => {
                return Err(ExecError::CapDrop {
                    cap,
                    errno: e.errno,
                })
            }
            _ => {}
        }
    }
    sys.clear_ambient_caps();
    sys.clear_caps().map_err(|e| ExecError::Capset(e.errno))?;
    sys.set_no_new_privs()
        .map_err(|e| ExecError::NoNewPrivs(e.errno))
}

/// execve each candidate path in turn; only a failure comes back.
fn exec<'a, S: Sys>(sys: &S, spec: &'a ChildSpec, args: &ExecArgs<'_>) -> ExecError<'a> {
    let mut denied: Option<&CStr> = None;
    for cand in &spec.exec_candidates {
        match sys.execve(cand, &args.argv, &args.envp) {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => denied = denied.or(Some(cand)),
            errno => return ExecError::CannotExecute { path: cand, errno },
        }
    }
    match denied {
        Some(path) => ExecError::CannotExecute {
            path,
            errno: Errno::EACCES,
        },
        None => ExecError::NotFound {
            name: &spec.argv[0],
            path: &spec.path_shown,
        },
    }
}

/// Build the list of paths `execve` tries for `argv0`: itself if it has a slash, else each
/// directory of PATH. Computed before clone.
pub fn exec_candidates(argv0: &str, path: &str) -> Vec<CString> {
    if argv0.contains('/') {
        return vec![CString::new(argv0).unwrap_or_default()];
    }
    path.split(':')
        .filter(|d| !d.is_empty())
        .filter_map(|d| CString::new(format!("{}/{argv0}", d.trim_end_matches('/'))).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sandbox::mounts::{Kind, MountOp};
    use crate::sandbox::recording::{exit_code_of, Recorder};
    use std::cell::RefCell;
    use std::collections::VecDeque;

    fn c(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    const REPORT: RawFd = 5;

    fn register_line() -> Vec<u8> {
        b":qemu-arm:M::\\x7fELF:\\xff:/q:FP".to_vec()
    }

    /// A spec with one mount of each kind, binfmt last as `mount_plan` orders it.
    fn spec() -> ChildSpec {
        ChildSpec {
            rootfs: c("/r"),
            mounts: vec![
                MountOp::Proc { guest: c("/proc") },
                MountOp::Tmpfs {
                    guest: c("/dev"),
                    data: c("mode=755"),
                    flags: libc::MS_NOSUID,
                },
                MountOp::Bind {
                    host: c("/dev/null"),
                    guest: c("/dev/null"),
                    kind: Kind::File,
                    readonly: false,
                    optional: false,
                },
                MountOp::Devpts {
                    guest: c("/dev/pts"),
                },
                MountOp::Symlink {
                    guest: c("/dev/fd"),
                    target: c("/proc/self/fd"),
                },
                MountOp::Bind {
                    host: c("/src"),
                    guest: c("/work"),
                    kind: Kind::Dir,
                    readonly: true,
                    optional: false,
                },
                MountOp::Binfmt {
                    guest: c("/proc/sys/fs/binfmt_misc"),
                    register_line: Some(register_line()),
                },
            ],
            workdir: c("/work"),
            argv: vec![c("true"), c("-x")],
            envp: vec![c("PATH=/usr/bin:/bin")],
            exec_candidates: vec![c("/usr/bin/true"), c("/bin/true")],
            path_shown: "/usr/bin:/bin".into(),
            full_map: false,
            new_net: false,
            keep_caps: false,
            ephemeral: false,
            seccomp: vec![vec![seccompiler::sock_filter {
                code: 6,
                jt: 0,
                jf: 0,
                k: 0x7fff_0000,
            }]],
            interactive: false,
            go_fd: 3,
            report_fd: REPORT,
            stderr_fd: None,
        }
    }

    /// Run the child's stages against `sys`; the exit code and the calls made.
    fn run(sys: &Recorder, spec: &ChildSpec) -> (i32, Vec<String>) {
        let args = ExecArgs::new(spec);
        let code = exit_code_of(|| stages(sys, spec, &args));
        (code, sys.calls.borrow().clone())
    }

    /// The position of the first call starting with each prefix; all must be in order.
    fn assert_in_order(calls: &[String], prefixes: &[&str]) {
        let mut last = None;
        for p in prefixes {
            let at = calls
                .iter()
                .position(|c| c.starts_with(p))
                .unwrap_or_else(|| panic!("no call {p:?} in\n{}", calls.join("\n")));
            assert!(
                last.is_none_or(|l| l < at),
                "{p:?} is out of order in\n{}",
                calls.join("\n")
            );
            last = Some(at);
        }
    }

    #[test]
    fn stages_run_in_order_and_seccomp_is_last_before_execve() {
        let sys = Recorder::default();
        let (code, calls) = run(&sys, &spec());
        assert_in_order(
            &calls,
            &[
                "die_with_parent",
                "read_byte(3)",
                "close(3)",
                "mount(none, /, none)",
                "mount(/r, /r, none)",
                "mount(none, /r, none) remount",
                // The mounts, in list order.
                "mount(proc, /proc, proc)",
                "mount(tmpfs, /dev, tmpfs)",
                "mount(/dev/null, /dev/null, none)",
                "mount(devpts, /dev/pts, devpts)",
                "symlink(fd -> /proc/self/fd)",
                "mount(/src, /work, none)",
                "mount(none, /work, none) remount ro",
                "mount(binfmt_misc, /proc/sys/fs/binfmt_misc, binfmt_misc)",
                "open(/proc/self/fd/",
                "write(",
                "mount(none, /proc/sys/fs/binfmt_misc, none) remount ro",
                "fchdir(/r)",
                "pivot_root(., .)",
                "umount2(., MNT_DETACH)",
                "chdir(/)",
                "setsid",
                "fork",
                // The command.
                "reset_signals",
                "chdir(/work)",
                "prctl(PR_CAPBSET_DROP, 0)",
                "prctl(PR_CAPBSET_DROP, 63)",
                "clear_ambient_caps",
                "capset",
                "prctl(PR_SET_NO_NEW_PRIVS)",
                "seccomp(1 instructions)",
                "cloexec_from(3)",
                "execve(/usr/bin/true)",
                "execve(/bin/true)",
                "write(5, exec\t127\t",
                "exit(127)",
            ],
        );
        // The register line goes out whole, in one write, to the binfmt_misc just mounted.
        let reg = calls
            .iter()
            .position(|c| c.starts_with("open(/proc/self/fd/"))
            .unwrap();
        assert!(calls[reg].ends_with("/register)"), "{}", calls[reg]);
        let line = String::from_utf8_lossy(&register_line()).into_owned();
        assert!(
            calls[reg + 1].starts_with("write(") && calls[reg + 1].ends_with(&format!(", {line})")),
            "{}",
            calls[reg + 1]
        );
        // seccomp is the last step that is not exec itself or the failure report.
        let seccomp = calls.iter().position(|c| c.starts_with("seccomp")).unwrap();
        assert!(calls[seccomp + 1..]
            .iter()
            .all(|c| c.starts_with("cloexec_from")
                || c.starts_with("execve")
                || c.starts_with("write(5")
                || c.starts_with("exit")));
        assert_eq!(code, EXIT_NOT_FOUND);
        assert_eq!(
            sys.written_to(REPORT),
            "exec\t127\ttrue: command not found in the rootfs (PATH /usr/bin:/bin)\n"
        );
    }

    #[test]
    fn keep_caps_only_sets_no_new_privs() {
        let sys = Recorder::default();
        let (_, calls) = run(
            &sys,
            &ChildSpec {
                keep_caps: true,
                ..spec()
            },
        );
        assert!(!calls.iter().any(|c| c.contains("CAPBSET") || c == "capset"));
        assert_in_order(&calls, &["prctl(PR_SET_NO_NEW_PRIVS)", "seccomp", "execve"]);
    }

    #[test]
    fn a_refused_procfs_is_reported_and_nothing_follows() {
        let sys = Recorder {
            fail: vec![("mount(proc,", Errno::EPERM)],
            ..Recorder::default()
        };
        let (code, calls) = run(&sys, &spec());
        assert_eq!(code, EXIT_SETUP);
        assert_eq!(
            sys.written_to(REPORT),
            "setup\tmount(proc, /proc, proc) (a container that masks /proc forbids a new \
             procfs; cargo-for-arm never falls back to the host's) => EPERM (Operation not \
             permitted)\n"
        );
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("pivot_root") || c == "fork"));
    }

    #[test]
    fn a_refused_binfmt_fails_with_the_fix_and_an_empty_one_registers_nothing() {
        let sys = Recorder {
            fail: vec![("mount(binfmt_misc,", Errno::EPERM)],
            ..Recorder::default()
        };
        let (code, calls) = run(&sys, &spec());
        let e = sys.written_to(REPORT);
        assert_eq!(code, EXIT_SETUP);
        assert!(
            e.starts_with("setup\tmount(binfmt_misc, /proc/sys/fs/binfmt_misc, binfmt_misc); this kernel does not allow a private binfmt_misc")
                && e.contains("CARGO_FOR_ARM_BINFMT=host")
                && e.ends_with("run 'cargo for-arm doctor' => EPERM (Operation not permitted)\n"),
            "{e}"
        );
        assert!(!calls.iter().any(|c| c.starts_with("pivot_root")));
        // CARGO_FOR_ARM_BINFMT=none: mounted, nothing registered, read-only.
        let mut empty = spec();
        if let Some(MountOp::Binfmt { register_line, .. }) = empty.mounts.last_mut() {
            *register_line = None;
        }
        let sys = Recorder::default();
        let (_, calls) = run(&sys, &empty);
        assert_in_order(
            &calls,
            &[
                "mount(binfmt_misc, /proc/sys/fs/binfmt_misc, binfmt_misc)",
                "mount(none, /proc/sys/fs/binfmt_misc, none) remount ro",
                "pivot_root",
            ],
        );
        assert!(
            !calls.iter().any(|c| c.ends_with("/register)")),
            "{calls:?}"
        );
    }

    #[test]
    fn exec_failures_name_the_path_and_exit_126() {
        let sys = Recorder {
            fail: vec![("execve(/usr/bin/true)", Errno::ENOEXEC)],
            ..Recorder::default()
        };
        let (code, _) = run(&sys, &spec());
        assert_eq!(code, EXIT_NOT_EXECUTABLE);
        assert_eq!(
            sys.written_to(REPORT),
            "exec\t126\tcannot execute /usr/bin/true: ENOEXEC: Exec format error (no binfmt \
             handler took this binary: is it built for the rootfs architecture?)\n"
        );
        // Permission denied on one candidate, not found on the next: the denial is reported.
        let sys = Recorder {
            fail: vec![("execve(/usr/bin/true)", Errno::EACCES)],
            ..Recorder::default()
        };
        let (code, _) = run(&sys, &spec());
        assert_eq!(code, EXIT_NOT_EXECUTABLE);
        assert_eq!(
            sys.written_to(REPORT),
            "exec\t126\tcannot execute /usr/bin/true: EACCES: Permission denied\n"
        );
    }

    #[test]
    fn a_missing_workdir_is_reported_with_its_call() {
        let sys = Recorder {
            fail: vec![("chdir(/work)", Errno::ENOENT)],
            ..Recorder::default()
        };
        let (code, calls) = run(&sys, &spec());
        assert_eq!(code, EXIT_SETUP);
        assert_eq!(
            sys.written_to(REPORT),
            "exec\t125\tworking directory /work inside the sandbox: chdir(/work) => ENOENT \
             (No such file or directory)\n"
        );
        assert!(!calls
            .iter()
            .any(|c| c.starts_with("seccomp") || c.starts_with("execve")));
    }

    #[test]
    fn pid1_forwards_signals_reaps_orphans_and_exits_with_the_command() {
        let sys = Recorder {
            signals: RefCell::new(VecDeque::from([
                (libc::SIGTERM, libc::SI_USER),
                // From the terminal: the command's group got it already.
                (libc::SIGINT, libc::SI_KERNEL),
                (libc::SIGCHLD, libc::CLD_EXITED),
                (libc::SIGCHLD, libc::CLD_EXITED),
            ])),
            // An orphan, nothing more for now; at the next SIGCHLD the command's exit 42.
            children: RefCell::new(VecDeque::from([Some((9, 0)), None, Some((7, 42 << 8))])),
            ..Recorder::default()
        };
        let code = exit_code_of(|| forward_and_reap(&sys, 7));
        assert_eq!(code, 42);
        let calls = sys.calls.borrow();
        let kills: Vec<&String> = calls.iter().filter(|c| c.starts_with("kill")).collect();
        assert_eq!(kills, [&format!("kill(7, {})", libc::SIGTERM)]);
        assert!(sys.children.borrow().is_empty());
    }
}
