//! The one thin wrapper through which the sandbox calls the kernel.
//!
//! The code that runs between clone and exec (`init`, `mounts::apply`, the probes of
//! `doctor`) calls the kernel only through the [`Sys`] trait. [`Kernel`] is the real
//! implementation: a unit struct, so the generic set-up code compiles to direct calls. Unit
//! tests swap in the recorder of `sandbox::recording` and assert the *order* of the stages.
//!
//! Every call fails with a [`SysError`] that reads like
//! `mount(proc, /proc, proc) => EPERM (Operation not permitted)` and is built without
//! allocating: the call's name is static, its arguments are written into a fixed buffer. The
//! functions take prepared `CStr`s; paths the child must compose (`/proc/self/fd/N`, a
//! symlink's target joined to its directory) go into a fixed [`CPath`].
//!
//! The host side's few helpers that the child shares (pipes, signal sets, the decoding of a
//! wait status) live here too, so each exists once.

// Errors here live on the stack on purpose: the code between clone and exec may not
// allocate (no Box), and a fixed buffer keeps the paths they name whole.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use std::ffi::{c_char, CStr};
use std::fmt::{self, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// Room for the arguments of a failed call; longer text is cut and ends in `...`.
pub const TEXT_MAX: usize = 512;

/// Text of bounded size, written without allocating (the child must not touch the heap: a
/// clone of a process whose allocator lock was held would wait forever).
#[derive(Clone, Copy)]
pub struct Text {
    buf: [u8; TEXT_MAX],
    len: usize,
    cut: bool,
}

impl Text {
    pub const fn new() -> Text {
        Text {
            buf: [0; TEXT_MAX],
            len: 0,
            cut: false,
        }
    }

    /// `bytes` as `String::from_utf8_lossy` shows them.
    pub fn lossy(bytes: &[u8]) -> Text {
        Text::from_args(format_args!("{}", Lossy(bytes)))
    }

    pub fn from_args(args: fmt::Arguments<'_>) -> Text {
        let mut t = Text::new();
        // Writing into a Text never fails: it cuts instead.
        let _ = t.write_fmt(args);
        t
    }

    pub fn as_str(&self) -> &str {
        // Only whole characters are ever copied in (see write_str).
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl Default for Text {
    fn default() -> Text {
        Text::new()
    }
}

impl fmt::Write for Text {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if self.cut {
            return Ok(());
        }
        let room = TEXT_MAX - self.len;
        let mut end = s.len().min(room);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        self.buf[self.len..self.len + end].copy_from_slice(&s.as_bytes()[..end]);
        self.len += end;
        self.cut = end < s.len();
        Ok(())
    }
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())?;
        if self.cut {
            f.write_str("...")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl PartialEq for Text {
    fn eq(&self, other: &Text) -> bool {
        self.as_str() == other.as_str() && self.cut == other.cut
    }
}

impl Eq for Text {}

/// Bytes shown as `String::from_utf8_lossy` would, without building a String.
pub struct Lossy<'a>(pub &'a [u8]);

impl fmt::Display for Lossy<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            if !chunk.invalid().is_empty() {
                f.write_char(char::REPLACEMENT_CHARACTER)?;
            }
        }
        Ok(())
    }
}

/// An optional C string as shown in an error: its text, or `none`.
struct OrNone<'a>(Option<&'a CStr>);

impl fmt::Display for OrNone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => Lossy(s.to_bytes()).fmt(f),
            None => f.write_str("none"),
        }
    }
}

fn lossy(s: &CStr) -> Lossy<'_> {
    Lossy(s.to_bytes())
}

/// An errno as the sandbox shows it: `EPERM (Operation not permitted)`.
pub struct ErrnoText(pub Errno);

impl fmt::Display for ErrnoText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?} ({})", self.0, self.0.desc())
    }
}

/// A failed system call: what was called, on what, and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    /// The call as shown: `mount`, `pivot_root`, `fstat`.
    pub call: &'static str,
    /// Its arguments as shown between parentheses; None for a call shown bare.
    pub args: Option<Text>,
    pub errno: Errno,
}

impl SysError {
    pub fn new(call: &'static str, args: fmt::Arguments<'_>, errno: Errno) -> SysError {
        SysError {
            call,
            args: Some(Text::from_args(args)),
            errno,
        }
    }

    pub fn bare(call: &'static str, errno: Errno) -> SysError {
        SysError {
            call,
            args: None,
            errno,
        }
    }

    /// The call and its arguments: `mount(proc, /proc, proc)`.
    pub fn what(&self) -> What<'_> {
        What(self)
    }

    /// The errno: `EPERM (Operation not permitted)`.
    pub fn errno_text(&self) -> ErrnoText {
        ErrnoText(self.errno)
    }
}

/// See [`SysError::what`].
pub struct What<'a>(&'a SysError);

impl fmt::Display for What<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.call)?;
        match &self.0.args {
            Some(a) => write!(f, "({a})"),
            None => Ok(()),
        }
    }
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} => {}", self.what(), self.errno_text())
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

/// `ret` as a result: negative means failure, with `errno` read before anything else runs.
fn check(
    ret: libc::c_long,
    call: &'static str,
    args: fmt::Arguments<'_>,
) -> SysResult<libc::c_long> {
    if ret < 0 {
        let errno = Errno::last();
        Err(SysError::new(call, args, errno))
    } else {
        Ok(ret)
    }
}

fn check_bare(ret: libc::c_long, call: &'static str) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(SysError::bare(call, Errno::last()))
    } else {
        Ok(ret)
    }
}

/// A path composed in the child, NUL-terminated in a fixed buffer of `PATH_MAX` bytes.
pub struct CPath {
    buf: [u8; libc::PATH_MAX as usize],
    len: usize,
}

impl CPath {
    /// The concatenation of `parts`; ENAMETOOLONG past PATH_MAX, EINVAL for a NUL inside.
    pub fn new(parts: &[&[u8]]) -> SysResult<CPath> {
        let mut p = CPath {
            buf: [0; libc::PATH_MAX as usize],
            len: 0,
        };
        for part in parts {
            let end = p.len + part.len();
            if end >= p.buf.len() {
                return Err(p.error(Errno::ENAMETOOLONG, parts));
            }
            if part.contains(&0) {
                return Err(p.error(Errno::EINVAL, parts));
            }
            p.buf[p.len..end].copy_from_slice(part);
            p.len = end;
        }
        p.buf[p.len] = 0;
        Ok(p)
    }

    fn error(&self, errno: Errno, parts: &[&[u8]]) -> SysError {
        let mut args = Text::new();
        for part in parts {
            let _ = write!(args, "{}", Lossy(part));
        }
        SysError {
            call: "path",
            args: Some(args),
            errno,
        }
    }

    /// `/proc/self/fd/N` followed by `suffix`: the path through which mount(2) and open(2)
    /// reach a descriptor resolved inside the rootfs.
    pub fn fd(fd: RawFd, suffix: &[u8]) -> SysResult<CPath> {
        let mut digits = [0u8; 12];
        let mut at = digits.len();
        let mut n = fd.unsigned_abs();
        loop {
            at -= 1;
            digits[at] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        CPath::new(&[b"/proc/self/fd/", &digits[at..], suffix])
    }

    pub fn as_cstr(&self) -> &CStr {
        CStr::from_bytes_with_nul(&self.buf[..=self.len]).expect("one NUL, at the end")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

/// The kernel as the sandbox's set-up, PID 1 and command stages see it. Every method is one
/// system call or a short fixed sequence of them; none allocates.
pub trait Sys {
    /// A descriptor this implementation hands out (the recorder's are not real).
    type Fd: AsRawFd;

    // --- the process ---
    /// `prctl(PR_SET_PDEATHSIG, SIGKILL)`.
    fn die_with_parent(&self);
    /// One byte from `fd`; None on EOF or error.
    fn read_byte(&self, fd: RawFd) -> Option<u8>;
    fn close(&self, fd: RawFd);
    fn write_all(&self, fd: RawFd, buf: &[u8]) -> SysResult<()>;
    fn fork(&self) -> SysResult<libc::pid_t>;
    /// `setsid()`: a new session without a controlling terminal.
    fn new_session(&self);
    /// `setpgid(0, 0)` and `tcsetpgrp(0, getpid())`: become the terminal's foreground job.
    fn take_terminal(&self);
    /// `sigwaitinfo(set)`: the signal and its `si_code`, or None when interrupted.
    fn wait_signal(&self, set: &libc::sigset_t) -> Option<(i32, i32)>;
    /// `waitpid(-1, WNOHANG)`: a reaped child and its status.
    fn reap_any(&self) -> Option<(libc::pid_t, i32)>;
    fn kill(&self, pid: libc::pid_t, sig: i32);
    fn exit(&self, code: i32) -> !;

    // --- the filesystem ---
    /// `mount(2)`. `shown` is the path named in errors (the real target is often a
    /// `/proc/self/fd/N` link to a descriptor resolved inside the rootfs).
    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
        shown: &CStr,
    ) -> SysResult<()>;
    fn umount_detach(&self, target: &CStr) -> SysResult<()>;
    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()>;
    fn chdir(&self, path: &CStr) -> SysResult<()>;
    fn fchdir(&self, fd: RawFd, shown: &CStr) -> SysResult<()>;
    fn open(&self, path: &CStr, flags: libc::c_int) -> SysResult<Self::Fd>;
    /// `openat2(dirfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks (and `..`)
    /// are resolved as if `dirfd` were `/`, so a rootfs with `/proc -> /` or
    /// `/tmp -> ../../home` can never send an open (and so a mount) outside the rootfs.
    fn openat_in_root(&self, root: RawFd, path: &CStr, flags: u64) -> SysResult<Self::Fd>;
    /// `mkdirat`; an existing entry is fine.
    fn mkdirat(&self, dir: RawFd, name: &CStr, mode: libc::mode_t) -> SysResult<()>;
    /// Create an empty regular file (a mount point for a file bind), never following a
    /// symlink; an existing entry is fine.
    fn mkfileat(&self, dir: RawFd, name: &CStr) -> SysResult<()>;
    /// The target of the symlink `name` in `dir` read into `buf`: its length, or None if
    /// `name` is not a symlink.
    fn readlinkat(&self, dir: RawFd, name: &CStr, buf: &mut [u8]) -> Option<usize>;
    /// `symlinkat`; an existing entry is fine.
    fn symlinkat(&self, target: &CStr, dir: RawFd, name: &CStr) -> SysResult<()>;
    /// Whether two descriptors are the same inode (two `fstat`s).
    fn same_file(&self, a: RawFd, b: RawFd) -> SysResult<bool>;
    /// Mount flags that a mount inherited from a more privileged namespace has *locked*: a
    /// remount inside a user namespace must keep them or the kernel answers EPERM.
    fn locked_flags(&self, fd: RawFd) -> SysResult<libc::c_ulong>;
    /// Whether `path` exists (`stat`, following symlinks).
    fn exists(&self, path: &CStr) -> bool;
    /// A detached mount of `fstype` made with the new mount API (fsopen, fsconfig, fsmount):
    /// options are `(key, Some(value))` strings or `(key, None)` flags.
    fn detached_mount(
        &self,
        fstype: &CStr,
        options: &[(&CStr, Option<&CStr>)],
    ) -> SysResult<Self::Fd>;
    /// Attach a detached mount at `target`.
    fn move_mount_to(&self, mnt: RawFd, target: &CStr) -> SysResult<()>;

    // --- network and credentials ---
    /// Bring `lo` up (best effort: a sandbox without it still runs).
    fn loopback_up(&self);
    /// `setgroups(0, NULL)` (best effort, as before: a single-id map has setgroups denied).
    fn drop_supplementary_groups(&self);
    /// `prctl(PR_CAPBSET_DROP, cap)`; EINVAL past the kernel's last capability.
    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()>;
    /// `prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)`.
    fn clear_ambient_caps(&self);
    /// `capset` with empty effective, permitted and inheritable sets.
    fn clear_caps(&self) -> SysResult<()>;
    /// `prctl(PR_SET_NO_NEW_PRIVS, 1)`.
    fn set_no_new_privs(&self) -> SysResult<()>;
    /// `seccomp(SECCOMP_SET_MODE_FILTER, 0, prog)`.
    fn seccomp_filter(&self, prog: &[seccompiler::sock_filter]) -> SysResult<()>;

    // --- exec ---
    /// Every catchable signal back to its default action, and an empty signal mask.
    fn reset_signals(&self);
    fn dup2(&self, from: RawFd, to: RawFd);
    /// Mark every descriptor from `first` up close-on-exec.
    fn cloexec_from(&self, first: u32);
    /// `execve`; returns only on failure, with the errno. `argv` and `envp` are
    /// NULL-terminated.
    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno;
}

/// The real kernel.
#[derive(Debug, Clone, Copy, Default)]
pub struct Kernel;

fn opt_ptr(s: Option<&CStr>) -> *const c_char {
    s.map_or(std::ptr::null(), CStr::as_ptr)
}

/// Ignore EEXIST: the entry was there already.
fn existing_ok(r: SysResult<libc::c_long>) -> SysResult<()> {
    match r {
        Err(e) if e.errno == Errno::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

// SAFETY (for every unsafe block below): each call gets valid NUL-terminated strings or null
// where the call allows it, buffers of the length passed, and descriptors this process
// owns; returned descriptors are owned by the caller from then on.
impl Sys for Kernel {
    type Fd = OwnedFd;

    fn die_with_parent(&self) {
        unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) };
    }

    fn read_byte(&self, fd: RawFd) -> Option<u8> {
        let mut b = [0u8; 1];
        let n = unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) };
        (n == 1).then_some(b[0])
    }

    fn close(&self, fd: RawFd) {
        unsafe { libc::close(fd) };
    }

    fn write_all(&self, fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
        while !buf.is_empty() {
            let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
            if n < 0 {
                if Errno::last() == Errno::EINTR {
                    continue;
                }
                return Err(SysError::bare("write", Errno::last()));
            }
            buf = &buf[n as usize..];
        }
        Ok(())
    }

    fn fork(&self) -> SysResult<libc::pid_t> {
        let pid = unsafe { libc::fork() };
        check_bare(pid.into(), "fork").map(|p| p as libc::pid_t)
    }

    fn new_session(&self) {
        unsafe { libc::setsid() };
    }

    fn take_terminal(&self) {
        unsafe {
            libc::setpgid(0, 0);
            libc::tcsetpgrp(0, libc::getpid());
        }
    }

    fn wait_signal(&self, set: &libc::sigset_t) -> Option<(i32, i32)> {
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let sig = unsafe { libc::sigwaitinfo(set, &mut info) };
        (sig >= 0).then_some((sig, info.si_code))
    }

    fn reap_any(&self) -> Option<(libc::pid_t, i32)> {
        let mut status = 0;
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        (pid > 0).then_some((pid, status))
    }

    fn kill(&self, pid: libc::pid_t, sig: i32) {
        unsafe { libc::kill(pid, sig) };
    }

    fn exit(&self, code: i32) -> ! {
        unsafe { libc::_exit(code) }
    }

    fn mount(
        &self,
        src: Option<&CStr>,
        target: &CStr,
        fstype: Option<&CStr>,
        flags: libc::c_ulong,
        data: Option<&CStr>,
        shown: &CStr,
    ) -> SysResult<()> {
        let ret = unsafe {
            libc::mount(
                opt_ptr(src),
                target.as_ptr(),
                opt_ptr(fstype),
                flags,
                opt_ptr(data).cast(),
            )
        };
        let (src, fstype, shown) = (OrNone(src), OrNone(fstype), lossy(shown));
        check(
            ret.into(),
            "mount",
            format_args!("{src}, {shown}, {fstype}"),
        )
        .map(drop)
    }

    fn umount_detach(&self, target: &CStr) -> SysResult<()> {
        let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
        let target = lossy(target);
        check(ret.into(), "umount2", format_args!("{target}, MNT_DETACH")).map(drop)
    }

    fn pivot_root(&self, new_root: &CStr, put_old: &CStr) -> SysResult<()> {
        // pivot_root has no libc wrapper.
        let ret =
            unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
        let (new_root, put_old) = (lossy(new_root), lossy(put_old));
        check(ret, "pivot_root", format_args!("{new_root}, {put_old}")).map(drop)
    }

    fn chdir(&self, path: &CStr) -> SysResult<()> {
        let ret = unsafe { libc::chdir(path.as_ptr()) };
        check(ret.into(), "chdir", format_args!("{}", lossy(path))).map(drop)
    }

    fn fchdir(&self, fd: RawFd, shown: &CStr) -> SysResult<()> {
        let ret = unsafe { libc::fchdir(fd) };
        check(ret.into(), "fchdir", format_args!("{}", lossy(shown))).map(drop)
    }

    fn open(&self, path: &CStr, flags: libc::c_int) -> SysResult<OwnedFd> {
        let ret = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
        check(ret.into(), "open", format_args!("{}", lossy(path)))
            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    fn openat_in_root(&self, root: RawFd, path: &CStr, flags: u64) -> SysResult<OwnedFd> {
        let mut how: libc::open_how = unsafe { std::mem::zeroed() };
        how.flags = flags | libc::O_CLOEXEC as u64;
        how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
        let ret = unsafe {
            libc::syscall(
                libc::SYS_openat2,
                root,
                path.as_ptr(),
                &how as *const libc::open_how,
                std::mem::size_of::<libc::open_how>(),
            )
        };
        let path = lossy(path);
        check(
            ret,
            "openat2",
            format_args!("rootfs, {path}, RESOLVE_IN_ROOT"),
        )
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
    }

    fn mkdirat(&self, dir: RawFd, name: &CStr, mode: libc::mode_t) -> SysResult<()> {
        let ret = unsafe { libc::mkdirat(dir, name.as_ptr(), mode) };
        existing_ok(check(
            ret.into(),
            "mkdirat",
            format_args!("{}", lossy(name)),
        ))
    }

    fn mkfileat(&self, dir: RawFd, name: &CStr) -> SysResult<()> {
        let flags =
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        let ret = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o644) };
        let made = check(ret.into(), "create", format_args!("{}", lossy(name)));
        if let Ok(fd) = made {
            unsafe { libc::close(fd as RawFd) };
        }
        existing_ok(made)
    }

    fn readlinkat(&self, dir: RawFd, name: &CStr, buf: &mut [u8]) -> Option<usize> {
        let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
        usize::try_from(n).ok()
    }

    fn symlinkat(&self, target: &CStr, dir: RawFd, name: &CStr) -> SysResult<()> {
        let ret = unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) };
        existing_ok(check(
            ret.into(),
            "symlink",
            format_args!("{}", lossy(name)),
        ))
    }

    fn same_file(&self, a: RawFd, b: RawFd) -> SysResult<bool> {
        let stat = |fd: RawFd| {
            let mut st: libc::stat = unsafe { std::mem::zeroed() };
            let ret = unsafe { libc::fstat(fd, &mut st) };
            check_bare(ret.into(), "fstat").map(|_| (st.st_dev, st.st_ino))
        };
        Ok(stat(a)? == stat(b)?)
    }

    fn locked_flags(&self, fd: RawFd) -> SysResult<libc::c_ulong> {
        let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
        let ret = unsafe { libc::fstatvfs(fd, &mut sv) };
        check_bare(ret.into(), "fstatvfs")?;
        let pairs = [
            (libc::ST_RDONLY, libc::MS_RDONLY),
            (libc::ST_NOSUID, libc::MS_NOSUID),
            (libc::ST_NODEV, libc::MS_NODEV),
            (libc::ST_NOEXEC, libc::MS_NOEXEC),
            (libc::ST_NOATIME, libc::MS_NOATIME),
            (libc::ST_NODIRATIME, libc::MS_NODIRATIME),
            (libc::ST_RELATIME, libc::MS_RELATIME),
        ];
        Ok(pairs
            .iter()
            .filter(|(st, _)| sv.f_flag & st != 0)
            .fold(0, |acc, (_, ms)| acc | ms))
    }

    fn exists(&self, path: &CStr) -> bool {
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        unsafe { libc::stat(path.as_ptr(), &mut st) == 0 }
    }

    fn detached_mount(
        &self,
        fstype: &CStr,
        options: &[(&CStr, Option<&CStr>)],
    ) -> SysResult<OwnedFd> {
        let name = lossy(fstype);
        let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
        let fs = check(fs, "fsopen", format_args!("{name}"))?;
        let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
        for (key, value) in options {
            let (cmd, v) = match value {
                Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
                None => (FSCONFIG_SET_FLAG, std::ptr::null()),
            };
            let r = unsafe {
                libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key.as_ptr(), v, 0)
            };
            let (key, value) = (lossy(key), OrNone(*value));
            check(r, "fsconfig", format_args!("{name}, {key}={value}"))?;
        }
        let r = unsafe {
            libc::syscall(
                libc::SYS_fsconfig,
                fs.as_raw_fd(),
                FSCONFIG_CMD_CREATE,
                0usize,
                0usize,
                0,
            )
        };
        check(r, "fsconfig", format_args!("{name}, create"))?;
        let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
        let m = check(m, "fsmount", format_args!("{name}"))?;
        Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
    }

    fn move_mount_to(&self, mnt: RawFd, target: &CStr) -> SysResult<()> {
        let r = unsafe {
            libc::syscall(
                libc::SYS_move_mount,
                mnt,
                c"".as_ptr(),
                libc::AT_FDCWD,
                target.as_ptr(),
                MOVE_MOUNT_F_EMPTY_PATH,
            )
        };
        check(r, "move_mount", format_args!("{}", lossy(target))).map(drop)
    }

    fn loopback_up(&self) {
        // An ioctl on a throwaway socket with a zeroed ifreq naming "lo".
        unsafe {
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return;
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (d, b) in ifr.ifr_name.iter_mut().zip(b"lo\0") {
                *d = *b as c_char;
            }
            if libc::ioctl(s, libc::SIOCGIFFLAGS, &mut ifr) == 0 {
                ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
                libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
            }
            libc::close(s);
        }
    }

    fn drop_supplementary_groups(&self) {
        unsafe { libc::setgroups(0, std::ptr::null()) };
    }

    fn drop_bounding_cap(&self, cap: u32) -> SysResult<()> {
        let ret = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        check(ret.into(), "prctl", format_args!("PR_CAPBSET_DROP, {cap}")).map(drop)
    }

    fn clear_ambient_caps(&self) {
        unsafe {
            libc::prctl(
                libc::PR_CAP_AMBIENT,
                libc::PR_CAP_AMBIENT_CLEAR_ALL,
                0,
                0,
                0,
            )
        };
    }

    fn clear_caps(&self) -> SysResult<()> {
        // struct __user_cap_header_struct, version 3, and two zeroed
        // __user_cap_data_struct (capabilities 0-31 and 32-63): nothing effective,
        // permitted or inheritable.
        let header: [u32; 2] = [LINUX_CAPABILITY_VERSION_3, 0];
        let data = [[0u32; 3]; 2];
        let ret = unsafe { libc::syscall(libc::SYS_capset, header.as_ptr(), data.as_ptr()) };
        check_bare(ret, "capset").map(drop)
    }

    fn set_no_new_privs(&self) -> SysResult<()> {
        let ret = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        check(ret.into(), "prctl", format_args!("PR_SET_NO_NEW_PRIVS")).map(drop)
    }

    fn seccomp_filter(&self, prog: &[seccompiler::sock_filter]) -> SysResult<()> {
        let fprog = libc::sock_fprog {
            len: prog.len() as libc::c_ushort,
            // seccompiler's sock_filter is the kernel's struct, field for field (repr(C)).
            filter: prog.as_ptr() as *mut libc::sock_filter,
        };
        let ret = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0,
                &fprog as *const libc::sock_fprog,
            )
        };
        check_bare(ret, "seccomp").map(drop)
    }

    fn reset_signals(&self) {
        // Undo what we (and Rust's runtime, for SIGPIPE) changed.
        unsafe {
            for sig in 1..libc::SIGRTMIN() {
                if sig != libc::SIGKILL && sig != libc::SIGSTOP {
                    libc::signal(sig, libc::SIG_DFL);
                }
            }
            libc::sigprocmask(libc::SIG_SETMASK, &sigset([]), std::ptr::null_mut());
        }
    }

    fn dup2(&self, from: RawFd, to: RawFd) {
        unsafe { libc::dup2(from, to) };
    }

    fn cloexec_from(&self, first: u32) {
        // close_range is Linux 5.11+; an old kernel's ENOSYS falls back to a loop.
        let ret = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
        if ret != 0 {
            for fd in first..1024 {
                // F_SETFD on an fd that may not exist is harmless.
                unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC) };
            }
        }
    }

    fn execve(&self, path: &CStr, argv: &[*const c_char], envp: &[*const c_char]) -> Errno {
        debug_assert!(argv.last().is_some_and(|p| p.is_null()));
        debug_assert!(envp.last().is_some_and(|p| p.is_null()));
        unsafe { libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        Errno::last()
    }
}

const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// `openat2(.., RESOLVE_IN_ROOT)` for host-side callers (see [`Sys::openat_in_root`]).
pub fn openat_in_root(root: RawFd, path: &CStr, flags: u64) -> SysResult<OwnedFd> {
    Kernel.openat_in_root(root, path, flags)
}

/// Mark every descriptor from `first` up close-on-exec (see [`Sys::cloexec_from`]).
pub fn cloexec_from(first: u32) {
    Kernel.cloexec_from(first)
}

/// `execv`: this process's environment is passed on. Returns only on failure, with the
/// errno. `argv` is NULL-terminated.
pub fn execv(path: &CStr, argv: &[*const c_char]) -> Errno {
    debug_assert!(argv.last().is_some_and(|p| p.is_null()));
    // SAFETY: a valid path and a NULL-terminated array of valid C strings.
    unsafe { libc::execv(path.as_ptr(), argv.as_ptr()) };
    Errno::last()
}

/// A `fmt::Write` onto a descriptor through a small stack buffer, for messages from the
/// child: nothing is allocated, long text goes out in pieces. Newlines in formatted text are
/// written as spaces, so a message stays one line; [`FdWriter::raw`] writes bytes as they are.
pub struct FdWriter<'a, S: Sys> {
    sys: &'a S,
    fd: RawFd,
    buf: [u8; 512],
    len: usize,
    result: SysResult<()>,
}

impl<'a, S: Sys> FdWriter<'a, S> {
    pub fn new(sys: &'a S, fd: RawFd) -> Self {
        FdWriter {
            sys,
            fd,
            buf: [0; 512],
            len: 0,
            result: Ok(()),
        }
    }

    fn push(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.flush_buf();
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn flush_buf(&mut self) {
        if self.result.is_ok() {
            self.result = self.sys.write_all(self.fd, &self.buf[..self.len]);
        }
        self.len = 0;
    }

    pub fn raw(&mut self, bytes: &[u8]) {
        bytes.iter().for_each(|&b| self.push(b));
    }

    /// Write out what is buffered; the first error of any write.
    pub fn finish(mut self) -> SysResult<()> {
        self.flush_buf();
        self.result
    }
}

impl<S: Sys> fmt::Write for FdWriter<'_, S> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for &b in s.as_bytes() {
            self.push(if b == b'\n' { b' ' } else { b });
        }
        Ok(())
    }
}

/// `pipe2(O_CLOEXEC)` failed.
#[derive(Debug, thiserror::Error)]
#[error("pipe2 => {0}")]
pub struct PipeError(pub Errno);

/// A close-on-exec pipe: (read end, write end).
pub fn pipe() -> Result<(OwnedFd, OwnedFd), PipeError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 fills two fds we then own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(PipeError(Errno::last()));
    }
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// A signal set holding `signals`, built on the stack.
pub fn sigset(signals: impl IntoIterator<Item = i32>) -> libc::sigset_t {
    // SAFETY: a sigset_t initialised by sigemptyset before use.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for s in signals {
            libc::sigaddset(&mut set, s);
        }
        set
    }
}

/// A wait status as an exit code: the code of a process that exited, 128+N for one killed
/// by signal N, None for a stop or continue report.
pub fn exit_code(status: i32) -> Option<i32> {
    if libc::WIFEXITED(status) {
        Some(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Some(128 + libc::WTERMSIG(status))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_read_call_args_errno() {
        let e = SysError::new(
            "mount",
            format_args!("{}, /proc, proc", "proc"),
            Errno::EPERM,
        );
        assert_eq!(
            e.to_string(),
            "mount(proc, /proc, proc) => EPERM (Operation not permitted)"
        );
        assert_eq!(
            SysError::bare("fstat", Errno::EBADF).to_string(),
            "fstat => EBADF (Bad file number)"
        );
    }

    #[test]
    fn text_is_lossy_and_cut_at_a_character() {
        assert_eq!(Text::lossy(b"a\xffb").as_str(), "a\u{fffd}b");
        let long = "é".repeat(TEXT_MAX);
        let t = Text::from_args(format_args!("{long}"));
        assert_eq!(t.as_str().len(), TEXT_MAX);
        assert!(t.to_string().ends_with("é..."));
    }

    #[test]
    fn paths_are_composed_in_a_fixed_buffer() {
        assert_eq!(
            CPath::fd(17, b"/register").unwrap().as_cstr(),
            c"/proc/self/fd/17/register"
        );
        assert_eq!(CPath::fd(0, b"").unwrap().as_bytes(), b"/proc/self/fd/0");
        let long = vec![b'a'; libc::PATH_MAX as usize];
        assert_eq!(
            CPath::new(&[&long]).err().map(|e| e.errno),
            Some(Errno::ENAMETOOLONG)
        );
        assert_eq!(
            CPath::new(&[b"a\0b"]).err().map(|e| e.errno),
            Some(Errno::EINVAL)
        );
    }

    #[test]
    fn wait_statuses_decode_once() {
        assert_eq!(exit_code(42 << 8), Some(42));
        assert_eq!(exit_code(15), Some(143));
        // A stop report (WIFSTOPPED: 0x7f in the low byte).
        assert_eq!(exit_code(0x137f), None);
    }

    #[test]
    fn fd_writer_keeps_a_message_on_one_line() {
        let r = crate::sandbox::recording::Recorder::default();
        let mut w = FdWriter::new(&r, 9);
        let long = "x".repeat(1500);
        write!(w, "setup\ta\nb {long}").unwrap();
        w.raw(b"\n");
        w.finish().unwrap();
        let text = r.written_to(9);
        assert_eq!(text, format!("setup\ta b {long}\n"));
        // Written in pieces of the stack buffer's size.
        assert_eq!(r.calls.borrow().len(), 3);
    }
}
