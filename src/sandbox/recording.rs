//! A [`Sys`] that records every call instead of making it, for tests of the order of the
//! sandbox's stages (as youki tests its init against a mock `Syscall`).

// It answers with the `SysError` the real kernel wrapper gives (a stack value, by design).
#![allow(clippy::result_large_err)]

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::ffi::{c_char, CStr};
use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;

use super::sys::{Sys, SysError, SysResult};

/// A descriptor the recorder made up.
pub struct FakeFd(pub RawFd);

impl AsRawFd for FakeFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The payload with which [`Recorder::exit`] unwinds; see [`exit_code_of`].
pub struct Exit(pub i32);

#[derive(Default)]
pub struct Recorder {
    /// Every call, in order, in a short readable form (`mount(proc, /proc, proc)`).
    pub calls: RefCell<Vec<String>>,
    /// Calls that fail: the first entry whose text is a prefix of the call's gives its
    /// errno.
    pub fail: Vec<(&'static str, Errno)>,
    /// What `fork` returns (0: we are the command).
    pub fork: libc::pid_t,
    /// What `wait_signal` returns, in turn: (signal, si_code).
    pub signals: RefCell<VecDeque<(i32, i32)>>,
    /// What `reap_any` returns, in turn: (pid, status), or None for "none left now".
    pub children: RefCell<VecDeque<Option<(libc::pid_t, i32)>>>,
    /// Every byte written, by descriptor.
    pub written: RefCell<BTreeMap<RawFd, Vec<u8>>>,
    pub next_fd: Cell<RawFd>,
}

/// Run `f`, which ends in `Recorder::exit`, and return the exit code it gave.
pub fn exit_code_of(f: impl FnOnce()) -> i32 {
    let payload = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .expect_err("the stage returned instead of exiting");
    match payload.downcast::<Exit>() {
        Ok(e) => e.0,
        Err(p) => std::panic::resume_unwind(p),
    }
}

impl Recorder {
    pub fn written_to(&self, fd: RawFd) -> String {
        let w = self.written.borrow();
        String::from_utf8_lossy(w.get(&fd).map_or(&[][..], |v| v)).into_owned()
    }

    /// Record `call`; fail it if `fail` says so.
    fn rec(&self, call: String) -> SysResult<()> {
        let errno = self
            .fail
            .iter()
            .find(|(prefix, _)| call.starts_with(prefix))
            .map(|(_, e)| *e);
        self.calls.borrow_mut().push(call.clone());
        match errno {
            Some(e) => {
                // As the kernel wrapper shows it: `name(args)`, without the flags
                // recorded after the parenthesis.
                let (name, rest) = call.split_once('(').unwrap_or((&call, ""));
                let name: &'static str = Box::leak(name.to_string().into_boxed_str());
                match rest.split_once(')') {
                    Some((args, _)) => Err(SysError::new(name, format_args!("{args}"), e)),
                    None => Err(SysError::bare(name, e)),
                }
            }
            None => Ok(()),
        }
    }

    fn fd(&self) -> FakeFd {
        let n = self.next_fd.get().max(100) + 1;
        self.next_fd.set(n);
        FakeFd(n)
    }
}

fn s(c: &CStr) -> String {
    c.to_string_lossy().into_owned()
}

fn o(c: Option<&CStr>) -> String {
    c.map_or("none".into(), s)
}

impl Sys for Recorder {
    type Fd = FakeFd;

    fn die_with_parent(&self) {
        let _ = self.rec("die_with_parent".into());
    }
    fn read_byte(&self, fd: RawFd) -> Option<u8> {
        self.rec(format!("read_byte({fd})")).ok().map(|_| 1)
    }
    fn close(&self, fd: RawFd) {
        let _ = self.rec(format!("close({fd})"));
    }
    fn write_all(&self, fd: RawFd, buf: &[u8]) -> SysResult<()> {
        self.rec(format!("write({fd}, {})", String::from_utf8_lossy(buf)))?;
        let mut w = self.written.borrow_mut();
        w.entry(fd).or_default().extend_from_slice(buf);
        Ok(())
    }
    fn fork(&self) -> SysResult<libc::pid_t> {
        self.rec("fork".into()).map(|_| self.fork)
    }
    fn new_session(&self) {
        let _ = self.rec("setsid".into());
    }
    fn take_terminal(&self) {
        let _ = self.rec("take_terminal".into());
    }
    fn wait_signal(&self, _set: &libc::sigset_t) -> Option<(i32, i32)> {
        let next = self.signals.borrow_mut().pop_front();
        let _ = self.rec(format!("wait_signal -> {next:?}"));
        Some(next.expect("PID 1 waited for a signal the test did not script"))
    }
    fn reap_any(&self) -> Option<(libc::pid_t, i32)> {
        let next = self.children.borrow_mut().pop_front().flatten();
        let _ = self.rec(format!("reap_any -> {next:?}"));
        next
    }
    fn kill(&self, pid: libc::pid_t, sig: i32) {
        let _ = self.rec(format!("kill({pid}, {sig})"));
    }
    fn exit(&self, code: i32) -> ! {
        let _ = self.rec(format!("exit({code})"));
        // Without the panic hook: this is how the recorder stops a stage, not a bug.
        std::panic::resume_unwind(Box::new(Exit(code)))
    }
    fn mount(
        &self,
        src: Option<&CStr>,
        _target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
        shown: &CStr,
    ) -> SysResult<()> {
        let ro = if flags & libc::MS_RDONLY != 0 {
            " ro"
        } else {
            ""
        };
        let remount = if flags & libc::MS_REMOUNT != 0 {
            " remount"
        } else {
            ""
        };
        self.rec(format!(
            "mount({}, {}, {}){remount}{ro} data={}",
            o(src),
            s(shown),
            o(fstype),
            o(data)
        ))
    }
    fn umount_detach(&self, target: &CStr) -> SysResult<()> {
        self.rec(format!("umount2({}, MNT_DETACH)", s(target)))
    }
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        self.rec(format!("pivot_root({}, {})", s(new_root), s(put_old)))
    }
    fn chdir(&self, path: &CStr) -> SysResult<()> {
        self.rec(format!("chdir({})", s(path)))
    }
    fn fchdir(&self, _fd: RawFd, shown: &CStr) -> SysResult<()> {
        self.rec(format!("fchdir({})", s(shown)))
    }
    fn open(&self, path: &CStr, _flags: libc::c_int) -> SysResult<FakeFd> {
        self.rec(format!("open({})", s(path))).map(|_| self.fd())
    }
    fn openat_in_root(&self, _root: RawFd, path: &CStr, _flags: u64) -> SysResult<FakeFd> {
        self.rec(format!("openat2(rootfs, {}, RESOLVE_IN_ROOT)", s(path)))
            .map(|_| self.fd())
    }
    fn mkdirat(&self, _dir: RawFd, name: &CStr, _mode: libc::mode_t) -> SysResult<()> {
        self.rec(format!("mkdirat({})", s(name)))
    }
    fn mkfileat(&self, _dir: RawFd, name: &CStr) -> SysResult<()> {
        self.rec(format!("create({})", s(name)))
    }
    fn readlinkat(&self, _dir: RawFd, name: &CStr, _buf: &mut [u8]) -> Option<usize> {
        let _ = self.rec(format!("readlinkat({})", s(name)));
        None
    }
    fn symlinkat(&self, target: &CStr, _dir: RawFd, name: &CStr) -> SysResult<()> {
        self.rec(format!("symlink({} -> {})", s(name), s(target)))
    }
    fn same_file(&self, _a: RawFd, _b: RawFd) -> SysResult<bool> {
        self.rec("same_file".into()).map(|_| false)
    }
    fn locked_flags(&self, _fd: RawFd) -> SysResult<libc::c_ulong> {
        self.rec("fstatvfs".into()).map(|_| 0)
    }
    fn exists(&self, path: &CStr) -> bool {
        self.rec(format!("exists({})", s(path))).is_ok()
    }
    fn detached_mount(
        &self,
        fstype: &CStr,
        _options: &[(&CStr, Option<&CStr>)],
    ) -> SysResult<FakeFd> {
        self.rec(format!("fsmount({})", s(fstype)))
            .map(|_| self.fd())
    }
    fn move_mount_to(&self, _mnt: RawFd, target: &CStr) -> SysResult<()> {
        self.rec(format!("move_mount({})", s(target)))
    }
    fn loopback_up(&self) {
        let _ = self.rec("loopback_up".into());
    }
    fn drop_supplementary_groups(&self) {
        let _ = self.rec("setgroups(0)".into());
    }
    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()> {
        // As on a kernel whose last capability is 40.
        let r = self.rec(format!("prctl(PR_CAPBSET_DROP, {cap})"));
        if cap > 40 {
            return Err(SysError::bare("prctl", Errno::EINVAL));
        }
        r
    }
    fn clear_ambient_caps(&self) {
        let _ = self.rec("clear_ambient_caps".into());
    }
    fn clear_caps(&self) -> SysResult<()> {
        self.rec("capset".into())
    }
    fn set_no_new_privs(&self) -> SysResult<()> {
        self.rec("prctl(PR_SET_NO_NEW_PRIVS)".into())
    }
    fn seccomp_filter(&self, prog: &[seccompiler::sock_filter]) -> SysResult<()> {
        self.rec(format!("seccomp({} instructions)", prog.len()))
    }
    fn reset_signals(&self) {
        let _ = self.rec("reset_signals".into());
    }
    fn dup2(&self, from: RawFd, to: RawFd) {
        let _ = self.rec(format!("dup2({from}, {to})"));
    }
    fn cloexec_from(&self, first: u32) {
        let _ = self.rec(format!("cloexec_from({first})"));
    }
    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
        assert!(argv.last().is_some_and(|p| p.is_null()));
        assert!(envp.last().is_some_and(|p| p.is_null()));
        match self.rec(format!("execve({})", s(path))) {
            Err(e) => e.errno,
            Ok(()) => Errno::ENOENT,
        }
    }
}
