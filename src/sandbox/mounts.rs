//! The filesystem of the sandbox as data: a list of mount operations computed on the host
//! (and inspected by unit tests), applied in order inside the new mount namespace.
//!
//! Every target is resolved inside the rootfs with `openat2(RESOLVE_IN_ROOT)` and mounted
//! through its `/proc/self/fd/N` link, so a rootfs whose `/proc -> /` or `/tmp -> /home`
//! cannot redirect a mount to the host.

// Errors here live on the stack on purpose: the code between clone and exec may not
// allocate (no Box), and a fixed buffer keeps the paths they name whole.
#![allow(clippy::result_large_err, clippy::large_enum_variant)]

use std::ffi::{CStr, CString};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;

use anyhow::Result;
use nix::errno::Errno;

use super::init::SetupError;
use super::sys::{CPath, Sys, SysResult, Text};
use crate::sandbox::binfmt::Binfmt;
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
    /// A private binfmt_misc with one registration (or none: `CARGO_FOR_ARM_BINFMT=none`
    /// hides the host's entries behind an empty one), remounted read-only afterwards.
    Binfmt {
        guest: CString,
        register_line: Option<Vec<u8>>,
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
        binfmt,
        ..
    } = &plan.exec
    {
        let register_line = match binfmt {
            Binfmt::Private => Some(register_line.clone()),
            Binfmt::None {
                empty_private: true,
            } => None,
            // Nothing mounted: the sandbox's user namespace uses the host's instance (rung
            // 1), or there is none to mount (rung 2 on a kernel older than 6.7).
            Binfmt::Host(_)
            | Binfmt::None {
                empty_private: false,
            } => return Ok(ops),
        };
        ops.push(MountOp::Binfmt {
            guest: c("/proc/sys/fs/binfmt_misc"),
            register_line,
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

/// How many dangling symlinks [`ensure`] follows before it gives up.
const MAX_LINKS: u32 = 16;

/// What [`create_missing`] did to a path that did not resolve.
enum Created {
    /// Every missing component was created: open the path again.
    Done,
    /// A component is a dangling symlink: this is the path with the link replaced by its
    /// target (inside the root), to be created instead.
    Redirect(CPath),
}

/// Resolve `path` inside the root, creating it (and its parents) if missing. A dangling
/// symlink on the way (`/etc/resolv.conf -> ../run/...`) is followed, inside the root.
/// Iterative, with its buffers on the stack, so a hostile rootfs cannot make it recurse.
pub fn ensure<S: Sys>(sys: &S, root: RawFd, path: &[u8], kind: &Kind) -> SysResult<S::Fd> {
    let mut cur = CPath::new(&[path])?;
    let mut links = 0;
    loop {
        match sys.openat_in_root(root, cur.as_cstr(), libc::O_PATH as u64) {
            Err(e) if e.errno == Errno::ENOENT && links < MAX_LINKS => {}
            r => return r,
        }
        match create_missing(sys, root, cur.as_bytes(), kind)? {
            Created::Redirect(next) => {
                cur = next;
                links += 1;
            }
            Created::Done => return sys.openat_in_root(root, cur.as_cstr(), libc::O_PATH as u64),
        }
    }
}

/// Walk `path` from the top and create each component that is missing (directories, and
/// `kind` for the last), unless one is a dangling symlink.
fn create_missing<S: Sys>(sys: &S, root: RawFd, path: &[u8], kind: &Kind) -> SysResult<Created> {
    let mut parent = sys.openat_in_root(root, c"/", libc::O_PATH as u64)?;
    let mut end = 0;
    while let Some(len) = next_component(&path[end..]) {
        let dir_end = end;
        let start = end + path[end..].iter().take_while(|&&b| b == b'/').count();
        end += len;
        let prefix = CPath::new(&[&path[..end]])?;
        match sys.openat_in_root(root, prefix.as_cstr(), libc::O_PATH as u64) {
            Err(e) if e.errno == Errno::ENOENT => {}
            r => {
                parent = r?;
                continue;
            }
        }
        let name = CPath::new(&[&path[start..end]])?;
        let mut link = [0u8; libc::PATH_MAX as usize];
        if let Some(n) = sys.readlinkat(parent.as_raw_fd(), name.as_cstr(), &mut link) {
            let (target, rest) = (&link[..n], &path[end..]);
            let next = if target.starts_with(b"/") {
                CPath::new(&[target, rest])?
            } else {
                CPath::new(&[&path[..dir_end], b"/", target, rest])?
            };
            return Ok(Created::Redirect(next));
        }
        let last = next_component(&path[end..]).is_none();
        match (last, kind) {
            (true, Kind::File) => sys.mkfileat(parent.as_raw_fd(), name.as_cstr())?,
            _ => sys.mkdirat(parent.as_raw_fd(), name.as_cstr(), 0o755)?,
        }
        parent = sys.openat_in_root(root, prefix.as_cstr(), libc::O_PATH as u64)?;
    }
    Ok(Created::Done)
}

/// The length of the next component of `rest` with the slashes before it, or None at the end.
fn next_component(rest: &[u8]) -> Option<usize> {
    let slashes = rest.iter().take_while(|&&b| b == b'/').count();
    let name = rest[slashes..].iter().take_while(|&&b| b != b'/').count();
    (name > 0).then_some(slashes + name)
}

/// The mount point for `guest`, created if missing; refused if it resolves to the root
/// directory itself (a rootfs with `/proc -> /`).
fn target<S: Sys>(sys: &S, root: RawFd, guest: &CStr, kind: &Kind) -> Result<S::Fd, SetupError> {
    let fd =
        ensure(sys, root, guest.to_bytes(), kind).map_err(|source| SetupError::MountPoint {
            guest: Text::lossy(guest.to_bytes()),
            source,
        })?;
    if sys.same_file(root, fd.as_raw_fd())? {
        return Err(SetupError::RootTarget {
            guest: Text::lossy(guest.to_bytes()),
        });
    }
    Ok(fd)
}

fn remount_readonly<S: Sys>(
    sys: &S,
    root: RawFd,
    guest: &CStr,
    extra: libc::c_ulong,
) -> SysResult<()> {
    // Re-resolve: the fd taken before the mount points under it, not at the new mount.
    let fd = sys.openat_in_root(root, guest, libc::O_PATH as u64)?;
    let locked = sys.locked_flags(fd.as_raw_fd())?;
    sys.mount(
        None,
        CPath::fd(fd.as_raw_fd(), b"")?.as_cstr(),
        None,
        libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY | locked | extra,
        None,
        guest,
    )
}

/// A fresh filesystem of type `fs` at `guest`.
fn fresh<S: Sys>(
    sys: &S,
    root: RawFd,
    guest: &CStr,
    fs: &CStr,
    flags: libc::c_ulong,
    data: Option<&CStr>,
) -> Result<SysResult<()>, SetupError> {
    let fd = target(sys, root, guest, &Kind::Dir)?;
    let at = CPath::fd(fd.as_raw_fd(), b"")?;
    Ok(sys.mount(Some(fs), at.as_cstr(), Some(fs), flags, data, guest))
}

/// Apply one operation. Notes meant for the user go to stderr.
pub fn apply<S: Sys>(sys: &S, root: RawFd, op: &MountOp) -> Result<(), SetupError> {
    match op {
        MountOp::Proc { guest } => {
            fresh(sys, root, guest, c"proc", PROC_FLAGS, None)?.map_err(SetupError::Proc)
        }
        MountOp::Tmpfs { guest, data, flags } => {
            Ok(fresh(sys, root, guest, c"tmpfs", *flags, Some(data))??)
        }
        MountOp::Devpts { guest } => {
            let flags = libc::MS_NOSUID | libc::MS_NOEXEC;
            let data = c"newinstance,ptmxmode=0666,mode=620";
            Ok(fresh(sys, root, guest, c"devpts", flags, Some(data))??)
        }
        MountOp::Bind {
            host,
            guest,
            kind,
            readonly,
            optional,
        } => {
            if *optional && !sys.exists(host) {
                return Ok(());
            }
            let fd = match target(sys, root, guest, kind) {
                Err(_) if *optional => return Ok(()),
                r => r?,
            };
            let at = CPath::fd(fd.as_raw_fd(), b"")?;
            let flags = libc::MS_BIND | libc::MS_REC;
            match sys.mount(Some(host), at.as_cstr(), None, flags, None, guest) {
                Err(_) if *optional => return Ok(()),
                r => r?,
            }
            if *readonly {
                remount_readonly(sys, root, guest, 0)?;
            }
            Ok(())
        }
        MountOp::Symlink { guest, target: to } => {
            let (parent, name) = split(guest.to_bytes());
            let pfd = ensure(sys, root, parent, &Kind::Dir)?;
            Ok(sys.symlinkat(to, pfd.as_raw_fd(), CPath::new(&[name])?.as_cstr())?)
        }
        MountOp::Binfmt {
            guest,
            register_line,
        } => binfmt(sys, root, guest, register_line.as_deref()),
    }
}

/// A private binfmt_misc at `guest` with one registration (or none), then read-only.
fn binfmt<S: Sys>(
    sys: &S,
    root: RawFd,
    guest: &CStr,
    register_line: Option<&[u8]>,
) -> Result<(), SetupError> {
    let flags = libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC;
    if let Err(e) = fresh(sys, root, guest, c"binfmt_misc", flags, None)? {
        return Err(SetupError::NoPrivateBinfmt(e));
    }
    let Some(register_line) = register_line else {
        // Empty: no handler, and the host's entries are hidden behind this instance.
        return Ok(remount_readonly(sys, root, guest, flags)?);
    };
    let mnt = sys.openat_in_root(root, guest, libc::O_PATH as u64)?;
    let regfd = sys.open(
        CPath::fd(mnt.as_raw_fd(), b"/register")?.as_cstr(),
        libc::O_WRONLY,
    )?;
    // One write per registration: binfmt_misc parses each write(2) as one line.
    sys.write_all(regfd.as_raw_fd(), register_line)
        .map_err(|e| SetupError::Register {
            guest: Text::lossy(guest.to_bytes()),
            errno: e.errno,
        })?;
    drop(regfd);
    // Root inside must not be able to add, change or disable handlers (item 23).
    Ok(remount_readonly(sys, root, guest, flags)?)
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
            binfmt: Binfmt::Private,
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
    fn each_binfmt_state_has_its_mount() {
        let with = |binfmt: Binfmt| {
            let ops = mount_plan(&plan(Exec::Qemu {
                path: "/q".into(),
                register_line: b":x:M::a:b:/q:F".to_vec(),
                binfmt,
            }))
            .unwrap();
            ops.into_iter().find_map(|o| match o {
                MountOp::Binfmt { register_line, .. } => Some(register_line),
                _ => None,
            })
        };
        assert_eq!(
            with(Binfmt::Private),
            Some(Some(b":x:M::a:b:/q:F".to_vec()))
        );
        // Rung 1: nothing mounted, the host's instance applies.
        let host = crate::sandbox::binfmt::HostEntry {
            name: "n".into(),
            interpreter: "/i".into(),
            flags: "F".into(),
        };
        assert_eq!(with(Binfmt::Host(host)), None);
        // Rung 2: an empty private instance where the kernel has them, else nothing.
        assert_eq!(
            with(Binfmt::None {
                empty_private: true
            }),
            Some(None)
        );
        assert_eq!(
            with(Binfmt::None {
                empty_private: false
            }),
            None
        );
    }

    #[test]
    fn native_plan_has_no_binfmt() {
        let ops = mount_plan(&plan(Exec::Native)).unwrap();
        assert!(!ops.iter().any(|o| matches!(o, MountOp::Binfmt { .. })));
    }

    /// A scratch directory standing in for a rootfs (openat2 needs no privilege).
    fn scratch(name: &str) -> std::path::PathBuf {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let dir =
            std::env::temp_dir().join(format!("cfa-ensure-{name}-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn ensure_creates_inside_the_root_and_follows_dangling_links_there() {
        use crate::sandbox::sys::Kernel;
        use std::os::unix::fs::symlink;
        let r = scratch("links");
        std::fs::create_dir(r.join("etc")).unwrap();
        // Dangling, relative: the file is created where it points, inside the root.
        symlink("../run/x/resolv.conf", r.join("etc/resolv.conf")).unwrap();
        // Dangling, absolute, and climbing out: resolved as if the root were /.
        symlink("/../../../../outside", r.join("up")).unwrap();
        let root = std::fs::File::open(&r).unwrap();
        let fd = root.as_raw_fd();
        ensure(&Kernel, fd, b"/etc/resolv.conf", &Kind::File).unwrap();
        assert!(r.join("run/x/resolv.conf").is_file());
        ensure(&Kernel, fd, b"/up/a/b/", &Kind::Dir).unwrap();
        assert!(r.join("outside/a/b").is_dir());
        ensure(&Kernel, fd, b"/c//d/e", &Kind::Dir).unwrap();
        assert!(r.join("c/d/e").is_dir());
        // A mount point resolving to the root itself is refused.
        symlink("/", r.join("proc")).unwrap();
        let e = target(&Kernel, fd, c"/proc", &Kind::Dir).err().unwrap();
        assert!(
            e.to_string()
                .starts_with("resolving /proc in the rootfs (a symlink to the rootfs's root"),
            "{e}"
        );
        // A loop of dangling links ends.
        symlink("/loop2", r.join("loop1")).unwrap();
        symlink("/loop1", r.join("loop2")).unwrap();
        assert!(ensure(&Kernel, fd, b"/loop1/x", &Kind::Dir).is_err());
        std::fs::remove_dir_all(&r).unwrap();
    }

    #[test]
    fn split_paths() {
        assert_eq!(split(b"/a/b"), (&b"/a"[..], &b"b"[..]));
        assert_eq!(split(b"/a"), (&b"/"[..], &b"a"[..]));
        assert_eq!(split(b"/a/b/"), (&b"/a"[..], &b"b"[..]));
    }
}
