//! The filesystem of the sandbox as data: a list of mount operations computed on the host
//! (and inspected by unit tests), applied in order inside the new mount namespace.
//!
//! Every target is resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted
//! through its `/proc/self/fd/N` link, so a rootfs whose `/proc -> /` or `/tmp -> /home`
//! cannot redirect a mount to the host.

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use anyhow::Result;
use nix::errno::Errno;

use super::sys::{self, SysError, SysResult};
use crate::sandbox::spec::{cpath, Exec, Spec};

const PROC_FLAGS: libc::c_ulong = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Dir,
    File,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MountOp {
    /// A fresh procfs for the new pid namespace (never the host's: item 19).
    Proc {
        guest: CString,
    },
    Tmpfs {
        guest: CString,
        data: CString,
        flags: libc::c_ulong,
    },
    /// A host path bound in; device nodes (`/dev/null` …) are binds of the host's nodes.
    Bind {
        host: CString,
        guest: CString,
        kind: Kind,
        readonly: bool,
        optional: bool,
    },
    /// A new devpts instance, so the sandbox's ptys are its own.
    Devpts {
        guest: CString,
    },
    Symlink {
        guest: CString,
        target: CString,
    },
    /// A private binfmt_misc with one registration, remounted read-only afterwards.
    Binfmt {
        guest: CString,
        register_line: Vec<u8>,
        fallback_note: Option<String>,
    },
}

fn c(s: &str) -> CString {
    CString::new(s).expect("static paths have no NUL")
}

/// The mount list for a plan, in the order it is applied.
pub fn mount_plan(plan: &Spec) -> Result<Vec<MountOp>> {
    let mut ops = dev_ops();
    let tmp = |guest: &str, mode: &str| MountOp::Tmpfs {
        guest: c(guest),
        data: c(&format!("mode={mode}")),
        flags: libc::MS_NOSUID | libc::MS_NODEV,
    };
    ops.push(tmp("/dev/shm", "1777"));
    ops.push(tmp("/tmp", "1777"));
    ops.push(tmp("/run", "755"));
    if Path::new("/etc/resolv.conf").exists() {
        ops.push(MountOp::Bind {
            host: c("/etc/resolv.conf"),
            guest: c("/etc/resolv.conf"),
            kind: Kind::File,
            readonly: true,
            optional: true,
        });
    }
    bind_ops(plan, &mut ops)?;
    if let Exec::Qemu {
        register_line,
        host_fallback,
        ..
    } = &plan.exec
    {
        ops.push(MountOp::Binfmt {
            guest: c("/proc/sys/fs/binfmt_misc"),
            register_line: register_line.clone(),
            fallback_note: host_fallback.as_ref().map(|h| {
                format!(
                    "the kernel refused a private binfmt_misc (Linux < 6.7?); using the host's registration {h}"
                )
            }),
        });
    }
    Ok(ops)
}

/// A fresh /proc, and a /dev of the host's harmless nodes with a devpts of its own.
fn dev_ops() -> Vec<MountOp> {
    let mut ops = vec![
        MountOp::Proc { guest: c("/proc") },
        MountOp::Tmpfs {
            guest: c("/dev"),
            data: c("mode=755,size=1m"),
            flags: libc::MS_NOSUID | libc::MS_NOEXEC,
        },
    ];
    for node in ["null", "zero", "full", "random", "urandom", "tty"] {
        let p = c(&format!("/dev/{node}"));
        ops.push(MountOp::Bind {
            host: p.clone(),
            guest: p,
            kind: Kind::File,
            readonly: false,
            optional: node == "tty",
        });
    }
    ops.push(MountOp::Devpts {
        guest: c("/dev/pts"),
    });
    for (guest, target) in [
        ("/dev/ptmx", "pts/ptmx"),
        ("/dev/fd", "/proc/self/fd"),
        ("/dev/stdin", "/proc/self/fd/0"),
        ("/dev/stdout", "/proc/self/fd/1"),
        ("/dev/stderr", "/proc/self/fd/2"),
    ] {
        ops.push(MountOp::Symlink {
            guest: c(guest),
            target: c(target),
        });
    }
    ops
}

/// The spec's binds, each followed by the masks that cover what it would show of the
/// tool's own home: an empty, read-only tmpfs.
fn bind_ops(plan: &Spec, ops: &mut Vec<MountOp>) -> Result<()> {
    for b in &plan.binds {
        ops.push(MountOp::Bind {
            host: cpath(&b.host)?,
            guest: cpath(&b.guest)?,
            kind: if b.host.is_dir() {
                Kind::Dir
            } else {
                Kind::File
            },
            readonly: b.readonly(),
            optional: false,
        });
        for m in plan.masks.iter().filter(|m| m.starts_with(&b.guest)) {
            ops.push(MountOp::Tmpfs {
                guest: cpath(m)?,
                data: c("mode=555,size=4k"),
                flags: libc::MS_RDONLY | libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            });
        }
    }
    Ok(())
}

/// Split a guest path into its parent and last component.
fn split(path: &[u8]) -> (&[u8], &[u8]) {
    let trimmed = path.strip_suffix(b"/").unwrap_or(path);
    match trimmed.iter().rposition(|&b| b == b'/') {
        Some(0) => (b"/", &trimmed[1..]),
        Some(i) => (&trimmed[..i], &trimmed[i + 1..]),
        None => (b"/", trimmed),
    }
}

/// Resolve `path` inside the root, creating it (and its parents) if missing. A dangling
/// symlink on the way (`/etc/resolv.conf -> ../run/...`) is followed, inside the root.
pub fn ensure(root: RawFd, path: &[u8], kind: &Kind, depth: u32) -> SysResult<OwnedFd> {
    let cp = CString::new(path).expect("guest paths have no NUL");
    match sys::openat_in_root(root, &cp, libc::O_PATH as u64) {
        Err(e) if e.errno == Errno::ENOENT && depth < 16 => {
            let (parent, name) = split(path);
            let pfd = ensure(root, parent, &Kind::Dir, depth)?;
            let cname = CString::new(name).expect("no NUL");
            if let Some(target) = sys::readlinkat(pfd.as_raw_fd(), &cname) {
                let t = target.as_bytes();
                let next = if t.starts_with(b"/") {
                    t.to_vec()
                } else {
                    [parent, b"/", t].concat()
                };
                return ensure(root, &next, kind, depth + 1);
            }
            match kind {
                Kind::Dir => sys::mkdirat(pfd.as_raw_fd(), &cname, 0o755)?,
                Kind::File => sys::mkfileat(pfd.as_raw_fd(), &cname)?,
            }
            sys::openat_in_root(root, &cp, libc::O_PATH as u64)
        }
        r => r,
    }
}

/// Refuse a target that resolves to the root directory itself (a rootfs with `/proc -> /`).
fn not_root(root: RawFd, fd: &OwnedFd, guest: &CStr) -> SysResult<()> {
    let (a, b) = (sys::fstat(root)?, sys::fstat(fd.as_raw_fd())?);
    if a.st_dev == b.st_dev && a.st_ino == b.st_ino {
        return Err(SysError {
            call: format!(
                "resolving {} in the rootfs (a symlink to the rootfs's root; refusing to mount over it)",
                guest.to_string_lossy()
            ),
            errno: Errno::ELOOP,
        });
    }
    Ok(())
}

fn target(root: RawFd, guest: &CStr, kind: &Kind) -> SysResult<OwnedFd> {
    let fd = ensure(root, guest.to_bytes(), kind, 0).map_err(|e| SysError {
        call: format!(
            "creating mount point {} in the rootfs: {}",
            guest.to_string_lossy(),
            e.call
        ),
        errno: e.errno,
    })?;
    not_root(root, &fd, guest)?;
    Ok(fd)
}

fn remount_readonly(root: RawFd, guest: &CStr, extra: libc::c_ulong) -> SysResult<()> {
    // Re-resolve: the fd taken before the mount points under it, not at the new mount.
    let fd = sys::openat_in_root(root, guest, libc::O_PATH as u64)?;
    let locked = sys::locked_flags(fd.as_raw_fd())?;
    sys::mount(
        None,
        &sys::fd_path(&fd),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked | extra,
        None,
        &guest.to_string_lossy(),
    )
}

/// Apply one operation; `note` receives messages meant for the user's stderr.
pub fn apply(root: RawFd, op: &MountOp, note: &mut dyn FnMut(&str)) -> SysResult<()> {
    match op {
        MountOp::Proc { guest } => {
            let fd = target(root, guest, &Kind::Dir)?;
            sys::mount(Some(c"proc"), &sys::fd_path(&fd), Some(c"proc"), PROC_FLAGS, None, "/proc")
                .map_err(|e| SysError {
                    call: format!("{} (a container that masks /proc forbids a new procfs; cargo-for-arm never falls back to the host's)", e.call),
                    errno: e.errno,
                })
        }
        MountOp::Tmpfs { guest, data, flags } => {
            let fd = target(root, guest, &Kind::Dir)?;
            sys::mount(
                Some(c"tmpfs"),
                &sys::fd_path(&fd),
                Some(c"tmpfs"),
                *flags,
                Some(data),
                &guest.to_string_lossy(),
            )
        }
        MountOp::Bind {
            host,
            guest,
            kind,
            readonly,
            optional,
        } => {
            if *optional && !Path::new(&*host.to_string_lossy()).exists() {
                return Ok(());
            }
            let fd = match target(root, guest, kind) {
                Err(_) if *optional => return Ok(()),
                r => r?,
            };
            match sys::mount(
                Some(host),
                &sys::fd_path(&fd),
                None,
                libc::MS_BIND | libc::MS_REC,
                None,
                &guest.to_string_lossy(),
            ) {
                Err(_) if *optional => return Ok(()),
                r => r?,
            }
            if *readonly {
                remount_readonly(root, guest, 0)?;
            }
            Ok(())
        }
        MountOp::Devpts { guest } => {
            let fd = target(root, guest, &Kind::Dir)?;
            sys::mount(
                Some(c"devpts"),
                &sys::fd_path(&fd),
                Some(c"devpts"),
                libc::MS_NOSUID | libc::MS_NOEXEC,
                Some(c"newinstance,ptmxmode=0666,mode=620"),
                "/dev/pts",
            )
        }
        MountOp::Symlink { guest, target: to } => {
            let (parent, name) = split(guest.to_bytes());
            let pfd = ensure(root, parent, &Kind::Dir, 0)?;
            sys::symlinkat(to, pfd.as_raw_fd(), &CString::new(name).expect("no NUL"))
        }
        MountOp::Binfmt {
            guest,
            register_line,
            fallback_note,
        } => {
            let fd = target(root, guest, &Kind::Dir)?;
            let shown = guest.to_string_lossy();
            let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
            if let Err(e) = sys::mount(
                Some(c"binfmt_misc"),
                &sys::fd_path(&fd),
                Some(c"binfmt_misc"),
                flags,
                None,
                &shown,
            ) {
                return match fallback_note {
                    Some(n) => {
                        note(n);
                        Ok(())
                    }
                    None => Err(SysError {
                        call: format!(
                            "{}; this kernel does not allow a private binfmt_misc in a user namespace \
                             (needs Linux 6.7 or later) and the host has no qemu registration with the \
                             F flag to fall back on: upgrade the kernel, or ask an administrator to \
                             register a static qemu with flag F; run 'cargo for-arm doctor'",
                            e.call
                        ),
                        errno: e.errno,
                    }),
                };
            }
            let mnt = sys::openat_in_root(root, guest, libc::O_PATH as u64)?;
            let reg = CString::new(format!("/proc/self/fd/{}/register", mnt.as_raw_fd()))
                .expect("no NUL");
            let regfd = sys::open(&reg, libc::O_WRONLY)?;
            // One write per registration: binfmt_misc parses each write(2) as one line.
            sys::write_all(regfd.as_raw_fd(), register_line).map_err(|e| SysError {
                call: format!("registering qemu in {shown}/register"),
                errno: e.errno,
            })?;
            drop(regfd);
            // Root inside must not be able to add, change or disable handlers (item 23).
            remount_readonly(root, guest, flags)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idmap::MapMode;
    use crate::sandbox::spec::{Access, Bind, Root, SpecBuilder};

    fn plan(exec: Exec) -> Spec {
        SpecBuilder::new(Root::dir("/r"), exec)
            .bind(Bind::new("/tmp", "/work", Access::ReadOnly))
            .workdir("/work")
            .map(MapMode::Single)
            .seccomp(crate::seccomp::Policy::Off)
            .argv(vec!["true".into()])
            .build()
            .unwrap()
    }

    fn guest(op: &MountOp) -> String {
        match op {
            MountOp::Proc { guest }
            | MountOp::Tmpfs { guest, .. }
            | MountOp::Bind { guest, .. }
            | MountOp::Devpts { guest }
            | MountOp::Symlink { guest, .. }
            | MountOp::Binfmt { guest, .. } => guest.to_string_lossy().into_owned(),
        }
    }

    #[test]
    fn a_hidden_home_is_covered_right_after_the_bind_that_shows_it() {
        let home = std::env::temp_dir().canonicalize().unwrap();
        let mut root = Root::dir("/r");
        root.hidden = vec![home.join("cfa-home")];
        let spec = SpecBuilder::new(root, Exec::Native)
            .bind(Bind::new(&home, "/h", Access::ReadWrite))
            .map(MapMode::Single)
            .seccomp(crate::seccomp::Policy::Off)
            .argv(vec!["true".into()])
            .build()
            .unwrap();
        let ops = mount_plan(&spec).unwrap();
        let at = ops.iter().position(|o| guest(o) == "/h").unwrap();
        match &ops[at + 1] {
            MountOp::Tmpfs { guest, flags, .. } => {
                assert_eq!(guest.to_str().unwrap(), "/h/cfa-home");
                assert!(flags & libc::MS_RDONLY != 0);
            }
            other => panic!("expected the mask after the bind, got {other:?}"),
        }
    }

    #[test]
    fn order_puts_tmpfs_before_binds_and_binfmt_last() {
        let ops = mount_plan(&plan(Exec::Qemu {
            path: "/q".into(),
            register_line: b":x:M::a:b:/q:F".to_vec(),
            host_fallback: None,
        }))
        .unwrap();
        let names: Vec<String> = ops.iter().map(guest).collect();
        let pos = |n: &str| names.iter().position(|x| x == n).unwrap();
        assert_eq!(pos("/proc"), 0);
        assert!(pos("/dev") < pos("/dev/null"));
        assert!(pos("/dev/pts") < pos("/dev/ptmx"));
        assert!(pos("/tmp") < pos("/work"));
        assert_eq!(names.last().unwrap(), "/proc/sys/fs/binfmt_misc");
        assert!(ops.iter().any(|o| matches!(o, MountOp::Bind { guest, readonly: true, .. } if guest.as_bytes() == b"/work")));
    }

    #[test]
    fn native_plan_has_no_binfmt() {
        let ops = mount_plan(&plan(Exec::Native)).unwrap();
        assert!(!ops.iter().any(|o| matches!(o, MountOp::Binfmt { .. })));
    }

    #[test]
    fn split_paths() {
        assert_eq!(split(b"/a/b"), (&b"/a"[..], &b"b"[..]));
        assert_eq!(split(b"/a"), (&b"/"[..], &b"a"[..]));
        assert_eq!(split(b"/a/b/"), (&b"/a"[..], &b"b"[..]));
    }
}
