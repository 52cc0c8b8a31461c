//! The code that runs inside the new namespaces: the set-up stage (mounts, binfmt,
//! pivot_root) and then PID 1 of the sandbox, which forks the command, forwards signals,
//! reaps every child and exits with the command's status.
//!
//! Nothing here returns to the caller; failures are reported to the host over the report
//! pipe as one `kind\tmessage` line, then the process exits.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::mounts;
use super::sys::{self, SysResult};
use super::{ChildSpec, EXIT_NOT_EXECUTABLE, EXIT_NOT_FOUND, EXIT_SETUP, FORWARDED};

fn report(fd: RawFd, kind: &str, msg: &str) {
    let line = format!("{kind}\t{}\n", msg.replace('\n', " "));
    let _ = sys::write_all(fd, line.as_bytes());
}

fn note(msg: &str) {
    let _ = sys::write_all(2, format!("cargo-for-arm: note: {msg}\n").as_bytes());
}

/// Entry point of the cloned child. Never returns.
pub fn child_main(spec: &ChildSpec) -> ! {
    // If the tool dies, even by SIGKILL, the kernel kills PID 1 and with it the whole pid
    // namespace: no qemu or build process outlives cargo-for-arm.
    // SAFETY: plain prctl.
    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    // Wait until the host has written the id maps; EOF means the host gave up or died.
    let mut go = [0u8; 1];
    // SAFETY: reading one byte into a stack buffer.
    let n = unsafe { libc::read(spec.go_fd, go.as_mut_ptr().cast(), 1) };
    if n != 1 {
        unsafe { libc::_exit(EXIT_SETUP) };
    }
    // SAFETY: closing our copy of the go pipe.
    unsafe { libc::close(spec.go_fd) };
    if let Err(e) = setup(spec) {
        report(spec.report_fd, "setup", &e.to_string());
        unsafe { libc::_exit(EXIT_SETUP) };
    }
    run_init(spec)
}

fn setup(spec: &ChildSpec) -> SysResult<()> {
    if spec.full_map {
        // Supplementary groups of the host user are unmapped (nobody) inside; drop them.
        // SAFETY: setgroups with an empty list.
        unsafe { libc::setgroups(0, std::ptr::null()) };
    }
    if spec.new_net {
        loopback_up();
    }
    // Nothing we mount may propagate back to the host's mount namespace.
    sys::mount(None, c"/", None, libc::MS_REC | libc::MS_PRIVATE, None, "/")?;
    let shown = spec.rootfs.to_string_lossy();
    if spec.ephemeral {
        ephemeral_root(spec)?;
    }
    sys::mount(
        Some(&spec.rootfs),
        &spec.rootfs,
        None,
        libc::MS_BIND | libc::MS_REC,
        None,
        &shown,
    )?;
    let root = sys::open(&spec.rootfs, libc::O_PATH | libc::O_DIRECTORY)?;
    let locked = sys::locked_flags(root.as_raw_fd())?;
    // The rootfs may hold setuid files or device nodes from an archive: neither works here.
    sys::mount(
        None,
        &spec.rootfs,
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_NOSUID | libc::MS_NODEV | locked,
        None,
        &shown,
    )?;
    let mut notes = note;
    for op in &spec.mounts {
        mounts::apply(root.as_raw_fd(), op, &mut notes)?;
    }
    sys::fchdir(root.as_raw_fd(), &shown)?;
    // pivot_root(".", ".") stacks the old root under the new one; detaching it leaves nothing
    // of the host visible but the binds.
    sys::pivot_root(c".", c".")?;
    sys::umount_detach(c".")?;
    sys::chdir(c"/")?;
    Ok(())
}

/// Cover the rootfs with an overlay whose upper layer is a private tmpfs: mount points and
/// anything the command writes land there and vanish with the sandbox, so a stored rootfs is
/// never modified by a run.
fn ephemeral_root(spec: &ChildSpec) -> SysResult<()> {
    let tmp = sys::detached_mount(c"tmpfs", &[(c"mode", Some(c"0755"))])?;
    for d in [c"upper", c"work"] {
        sys::mkdirat(tmp.as_raw_fd(), d, 0o755)?;
    }
    let upper = CString::new(format!("/proc/self/fd/{}/upper", tmp.as_raw_fd())).expect("no NUL");
    let work = CString::new(format!("/proc/self/fd/{}/work", tmp.as_raw_fd())).expect("no NUL");
    let ovl = sys::detached_mount(
        c"overlay",
        &[
            (c"lowerdir", Some(&spec.rootfs)),
            (c"upperdir", Some(&upper)),
            (c"workdir", Some(&work)),
            (c"userxattr", None),
        ],
    )?;
    sys::move_mount_to(&ovl, &spec.rootfs)
}

/// Bring `lo` up in a new network namespace, so local services still work.
fn loopback_up() {
    // SAFETY: an ioctl on a throwaway socket with a zeroed ifreq naming "lo".
    unsafe {
        let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if s < 0 {
            return;
        }
        let mut ifr: libc::ifreq = std::mem::zeroed();
        for (d, b) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
            *d = *b as libc::c_char;
        }
        if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
            ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
        }
        libc::close(s);
    }
}

fn forwarded_set() -> libc::sigset_t {
    // SAFETY: building a sigset on the stack.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in FORWARDED {
            libc::sigaddset(&mut set, s);
        }
        libc::sigaddset(&mut set, libc::SIGCHLD);
        set
    }
}

fn run_init(spec: &ChildSpec) -> ! {
    // SAFETY: session and process-group calls on ourselves.
    unsafe {
        if spec.interactive {
            // The sandbox becomes the terminal's foreground job; the tool takes it back after.
            libc::setpgid(0, 0);
            libc::tcsetpgrp(0, libc::getpid());
        } else {
            // A new session without a controlling terminal: TIOCSTI cannot push input into
            // the user's shell.
            libc::setsid();
        }
    }
    // SAFETY: fork in a single-threaded process.
    let cmd = unsafe { libc::fork() };
    if cmd < 0 {
        report(
            spec.report_fd,
            "setup",
            &format!("fork => {}", Errno::last()),
        );
        unsafe { libc::_exit(EXIT_SETUP) };
    }
    if cmd == 0 {
        exec_command(spec);
    }
    let set = forwarded_set();
    loop {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: waiting for a blocked signal.
        let sig = unsafe { libc::sigwaitinfo(&set, &mut info) };
        if sig < 0 {
            continue;
        }
        if sig == libc::SIGCHLD {
            loop {
                let mut status = 0;
                // SAFETY: reaping any child (PID 1 adopts every orphan).
                let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
                if pid <= 0 {
                    break;
                }
                if pid == cmd {
                    let code = if libc::WIFEXITED(status) {
                        libc::WEXITSTATUS(status)
                    } else if libc::WIFSIGNALED(status) {
                        128 + libc::WTERMSIG(status)
                    } else {
                        continue;
                    };
                    // Our exit takes every remaining process of the namespace with it.
                    unsafe { libc::_exit(code) };
                }
            }
        } else if info.si_code != libc::SI_KERNEL {
            // Signals the terminal sent to our foreground group reached the command already
            // (SI_KERNEL); those from the tool or a user's kill are passed on.
            unsafe { libc::kill(cmd, sig) };
        }
    }
}

fn drop_privileges() -> Result<(), String> {
    let last = std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(40);
    for cap in 0..=last {
        // SAFETY: dropping one capability from the bounding set (we hold CAP_SETPCAP).
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0
            && Errno::last() != Errno::EINVAL
        {
            return Err(format!(
                "prctl(PR_CAPBSET_DROP, {cap}) => {}",
                Errno::last()
            ));
        }
    }
    // SAFETY: plain prctls.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        );
        if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
            return Err(format!("prctl(PR_SET_NO_NEW_PRIVS) => {}", Errno::last()));
        }
    }
    for set in [
        caps::CapSet::Inheritable,
        caps::CapSet::Effective,
        caps::CapSet::Permitted,
    ] {
        caps::clear(None, set).map_err(|e| format!("capset: {e}"))?;
    }
    Ok(())
}

fn exec_command(spec: &ChildSpec) -> ! {
    let fail = |kind: &str, msg: String, code: i32| -> ! {
        report(spec.report_fd, kind, &format!("{code}\t{msg}"));
        unsafe { libc::_exit(code) };
    };
    // SAFETY: resetting the signal state we (and Rust's runtime, for SIGPIPE) changed.
    unsafe {
        for sig in 1..libc::SIGRTMIN() {
            if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                libc::signal(sig, libc::SIG_DFL);
            }
        }
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigprocmask(libc::SIG_SETMASK, &empty, std::ptr::null_mut());
    }
    if let Some(fd) = spec.stderr_fd {
        // SAFETY: replacing our stderr with the pipe the tool reads.
        unsafe { libc::dup2(fd, 2) };
    }
    if let Err(e) = sys::chdir(&spec.workdir) {
        fail(
            "exec",
            format!(
                "working directory {} inside the sandbox: {e}",
                spec.workdir.to_string_lossy()
            ),
            EXIT_SETUP,
        );
    }
    if spec.keep_caps {
        // SAFETY: plain prctl; capabilities stay (they are the namespace's, not the host's).
        unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    } else if let Err(e) = drop_privileges() {
        fail("exec", format!("dropping privileges: {e}"), EXIT_SETUP);
    }
    // Last step before exec: nothing after this needs a filtered call.
    for prog in &spec.seccomp {
        if let Err(e) = seccompiler::apply_filter(prog) {
            fail(
                "exec",
                format!("installing the seccomp filter: {e}"),
                EXIT_SETUP,
            );
        }
    }
    sys::cloexec_from(3);
    let argv: Vec<*const libc::c_char> = spec
        .argv
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let envp: Vec<*const libc::c_char> = spec
        .envp
        .iter()
        .map(|a| a.as_ptr())
        .chain([std::ptr::null()])
        .collect();
    let mut denied: Option<(&CStr, Errno)> = None;
    for cand in &spec.exec_candidates {
        // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
        unsafe { libc::execve(cand.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        let err = Errno::last();
        match err {
            Errno::ENOENT | Errno::ENOTDIR => continue,
            Errno::EACCES => denied = denied.or(Some((cand, err))),
            _ => {
                let hint = if err == Errno::ENOEXEC {
                    " (no binfmt handler took this binary: is it built for the rootfs architecture?)"
                } else {
                    ""
                };
                fail(
                    "exec",
                    format!("cannot execute {}: {err}{hint}", cand.to_string_lossy()),
                    EXIT_NOT_EXECUTABLE,
                );
            }
        }
    }
    let name = spec.argv[0].to_string_lossy();
    match denied {
        Some((p, e)) => fail(
            "exec",
            format!("cannot execute {}: {e}", p.to_string_lossy()),
            EXIT_NOT_EXECUTABLE,
        ),
        None => fail(
            "exec",
            format!(
                "{name}: command not found in the rootfs (PATH {})",
                spec.path_shown
            ),
            EXIT_NOT_FOUND,
        ),
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

    #[test]
    fn candidates_follow_path_or_slash() {
        let c = exec_candidates("sh", "/usr/bin:/bin/");
        assert_eq!(
            c,
            vec![
                CString::new("/usr/bin/sh").unwrap(),
                CString::new("/bin/sh").unwrap()
            ]
        );
        assert_eq!(
            exec_candidates("./x", "/bin"),
            vec![CString::new("./x").unwrap()]
        );
    }
}
