//! The one thin wrapper through which the sandbox calls the kernel.
//!
//! Every call returns a [`SysError`] that reads like `mount(proc, /proc) => EPERM (...)`, so a
//! failure deep inside the namespace set-up names the call and the path. The functions take
//! prepared `CStr`s: the code that runs between clone and exec does not build paths itself.

use std::ffi::{CStr, CString};
use std::fmt;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

/// A failed system call: what was called, on what, and the errno.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysError {
    pub call: String,
    pub errno: Errno,
}

impl fmt::Display for SysError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} => {:?} ({})",
            self.call,
            self.errno,
            self.errno.desc()
        )
    }
}

impl std::error::Error for SysError {}

pub type SysResult<T> = Result<T, SysError>;

fn check(ret: libc::c_long, call: impl FnOnce() -> String) -> SysResult<libc::c_long> {
    if ret < 0 {
        Err(SysError {
            call: call(),
            errno: Errno::last(),
        })
    } else {
        Ok(ret)
    }
}

fn show(s: Option<&CStr>) -> String {
    s.map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "none".into())
}

/// `mount(2)`. `shown` is the guest path to name in errors (the real target is often a
/// `/proc/self/fd/N` link to a descriptor resolved inside the rootfs).
pub fn mount(
    src: Option<&CStr>,
    target: &CStr,
    fstype: Option<&CStr>,
    flags: libc::c_ulong,
    data: Option<&CStr>,
    shown: &str,
) -> SysResult<()> {
    let ptr = |s: Option<&CStr>| s.map_or(std::ptr::null(), |s| s.as_ptr());
    // SAFETY: every pointer is a valid NUL-terminated string or null, as mount(2) allows.
    let ret = unsafe {
        libc::mount(
            ptr(src),
            target.as_ptr(),
            ptr(fstype),
            flags,
            ptr(data).cast(),
        )
    };
    check(ret.into(), || {
        format!("mount({}, {shown}, {})", show(src), show(fstype))
    })
    .map(drop)
}

pub fn umount_detach(target: &CStr) -> SysResult<()> {
    // SAFETY: valid C string.
    let ret = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    check(ret.into(), || {
        format!("umount2({}, MNT_DETACH)", show(Some(target)))
    })
    .map(drop)
}

pub fn pivot_root(new_root: &CStr, put_old: &CStr) -> SysResult<()> {
    // SAFETY: valid C strings; pivot_root has no libc wrapper.
    let ret = unsafe { libc::syscall(libc::SYS_pivot_root, new_root.as_ptr(), put_old.as_ptr()) };
    check(ret, || "pivot_root(., .)".to_string()).map(drop)
}

pub fn chdir(path: &CStr) -> SysResult<()> {
    // SAFETY: valid C string.
    let ret = unsafe { libc::chdir(path.as_ptr()) };
    check(ret.into(), || format!("chdir({})", show(Some(path)))).map(drop)
}

pub fn fchdir(fd: RawFd, shown: &str) -> SysResult<()> {
    // SAFETY: plain syscall on an fd.
    let ret = unsafe { libc::fchdir(fd) };
    check(ret.into(), || format!("fchdir({shown})")).map(drop)
}

pub fn open(path: &CStr, flags: libc::c_int) -> SysResult<OwnedFd> {
    // SAFETY: valid C string; the returned fd is owned by us.
    let ret = unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC, 0o644) };
    check(ret.into(), || format!("open({})", show(Some(path))))
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// `openat2(dirfd, path, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS)`: symlinks (and `..`) are
/// resolved as if `dirfd` were `/`, so a rootfs with `/proc -> /` or `/tmp -> ../../home`
/// can never send a host-side open (and so a mount) outside the rootfs.
pub fn openat_in_root(root: RawFd, path: &CStr, flags: u64) -> SysResult<OwnedFd> {
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags | libc::O_CLOEXEC as u64;
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: `how` is a properly initialised open_how of the size we pass.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            root,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        )
    };
    check(ret, || {
        format!("openat2(rootfs, {}, RESOLVE_IN_ROOT)", show(Some(path)))
    })
    .map(|fd| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

pub fn mkdirat(dir: RawFd, name: &CStr, mode: libc::mode_t) -> SysResult<()> {
    // SAFETY: valid fd and C string.
    let ret = unsafe { libc::mkdirat(dir, name.as_ptr(), mode) };
    match check(ret.into(), || format!("mkdirat({})", show(Some(name)))) {
        Err(e) if e.errno == Errno::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

/// Create an empty regular file (a mount point for a file bind), never following a symlink.
pub fn mkfileat(dir: RawFd, name: &CStr) -> SysResult<()> {
    // SAFETY: valid fd and C string.
    let ret = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_CREAT | libc::O_EXCL | libc::O_WRONLY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            0o644,
        )
    };
    match check(ret.into(), || format!("create({})", show(Some(name)))) {
        Ok(fd) => {
            // SAFETY: we own the fd just created.
            unsafe { libc::close(fd as RawFd) };
            Ok(())
        }
        Err(e) if e.errno == Errno::EEXIST => Ok(()),
        Err(e) => Err(e),
    }
}

/// The target of a symlink `name` in `dir`, or None if it is not a symlink.
pub fn readlinkat(dir: RawFd, name: &CStr) -> Option<CString> {
    let mut buf = vec![0u8; libc::PATH_MAX as usize];
    // SAFETY: buffer of the given length.
    let n = unsafe { libc::readlinkat(dir, name.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        return None;
    }
    buf.truncate(n as usize);
    CString::new(buf).ok()
}

pub fn symlinkat(target: &CStr, dir: RawFd, name: &CStr) -> SysResult<()> {
    // SAFETY: valid C strings and fd.
    let ret = unsafe { libc::symlinkat(target.as_ptr(), dir, name.as_ptr()) };
    match check(ret.into(), || format!("symlink({})", show(Some(name)))) {
        Err(e) if e.errno == Errno::EEXIST => Ok(()),
        r => r.map(drop),
    }
}

pub fn fstat(fd: RawFd) -> SysResult<libc::stat> {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and a stat buffer.
    let ret = unsafe { libc::fstat(fd, &mut st) };
    check(ret.into(), || "fstat".to_string()).map(|_| st)
}

/// Mount flags that a mount inherited from a more privileged namespace has *locked*: a
/// remount inside a user namespace must keep them or the kernel answers EPERM.
pub fn locked_flags(fd: RawFd) -> SysResult<libc::c_ulong> {
    let mut sv: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and buffer.
    let ret = unsafe { libc::fstatvfs(fd, &mut sv) };
    check(ret.into(), || "fstatvfs".to_string())?;
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

/// A write of all of `buf`, by `write(2)`, for the code between clone and exec.
pub fn write_all(fd: RawFd, mut buf: &[u8]) -> SysResult<()> {
    while !buf.is_empty() {
        // SAFETY: valid buffer.
        let n = unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            if Errno::last() == Errno::EINTR {
                continue;
            }
            return Err(SysError {
                call: "write".into(),
                errno: Errno::last(),
            });
        }
        buf = &buf[n as usize..];
    }
    Ok(())
}

/// `/proc/self/fd/N` for an fd, the path through which mount(2) reaches a resolved target.
pub fn fd_path(fd: &OwnedFd) -> CString {
    CString::new(format!("/proc/self/fd/{}", fd.as_raw_fd())).expect("no NUL in a number")
}

/// Mark every descriptor from `first` up close-on-exec (close_range, Linux 5.11+).
pub fn cloexec_from(first: u32) {
    // SAFETY: plain syscall; an old kernel's ENOSYS falls back to a loop below.
    let ret = unsafe { libc::close_range(first, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as i32) };
    if ret != 0 {
        for fd in first..1024 {
            // SAFETY: F_SETFD on an fd that may not exist is harmless.
            unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

const FSOPEN_CLOEXEC: libc::c_uint = 1;
const FSCONFIG_SET_FLAG: libc::c_uint = 0;
const FSCONFIG_SET_STRING: libc::c_uint = 1;
const FSCONFIG_CMD_CREATE: libc::c_uint = 6;
const FSMOUNT_CLOEXEC: libc::c_uint = 1;
const MOVE_MOUNT_F_EMPTY_PATH: libc::c_uint = 4;

/// A detached mount of `fstype` made with the new mount API (fsopen, fsconfig, fsmount):
/// options are `(key, Some(value))` strings or `(key, None)` flags.
pub fn detached_mount(fstype: &CStr, options: &[(&CStr, Option<&CStr>)]) -> SysResult<OwnedFd> {
    let name = fstype.to_string_lossy();
    // SAFETY: fsopen with a valid C string.
    let fs = unsafe { libc::syscall(libc::SYS_fsopen, fstype.as_ptr(), FSOPEN_CLOEXEC) };
    let fs = check(fs, || format!("fsopen({name})"))?;
    // SAFETY: we own the returned fd.
    let fs = unsafe { OwnedFd::from_raw_fd(fs as RawFd) };
    for (key, value) in options {
        let (cmd, v) = match value {
            Some(v) => (FSCONFIG_SET_STRING, v.as_ptr()),
            None => (FSCONFIG_SET_FLAG, std::ptr::null()),
        };
        // SAFETY: fsconfig on our fs context with valid strings.
        let r =
            unsafe { libc::syscall(libc::SYS_fsconfig, fs.as_raw_fd(), cmd, key.as_ptr(), v, 0) };
        check(r, || {
            format!(
                "fsconfig({name}, {}={})",
                key.to_string_lossy(),
                show(*value)
            )
        })?;
    }
    // SAFETY: fsconfig CMD_CREATE without key or value.
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
    check(r, || format!("fsconfig({name}, create)"))?;
    // SAFETY: fsmount of a created context.
    let m = unsafe { libc::syscall(libc::SYS_fsmount, fs.as_raw_fd(), FSMOUNT_CLOEXEC, 0) };
    let m = check(m, || format!("fsmount({name})"))?;
    // SAFETY: we own the returned fd.
    Ok(unsafe { OwnedFd::from_raw_fd(m as RawFd) })
}

/// Attach a detached mount at `target`.
pub fn move_mount_to(mnt: &OwnedFd, target: &CStr) -> SysResult<()> {
    // SAFETY: move_mount from an fd (empty path) to a path.
    let r = unsafe {
        libc::syscall(
            libc::SYS_move_mount,
            mnt.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_FDCWD,
            target.as_ptr(),
            MOVE_MOUNT_F_EMPTY_PATH,
        )
    };
    check(r, || format!("move_mount({})", target.to_string_lossy())).map(drop)
}
