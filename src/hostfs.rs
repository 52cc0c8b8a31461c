//! Host-side access to directories a sandbox could have written (the project's target dir,
//! the run directory): never through a symlink, only regular files, sizes bounded, and no
//! blocking on a FIFO. Paths are resolved beneath a directory the host opened itself, with
//! `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)`.

use std::ffi::OsString;
use std::fs::File;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::{fstat, Mode, SFlag};

fn how(flags: OFlag) -> OpenHow {
    OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC | OFlag::O_NOFOLLOW)
        .mode(Mode::empty())
        .resolve(ResolveFlag::RESOLVE_BENEATH | ResolveFlag::RESOLVE_NO_SYMLINKS)
}

/// Open the directory `rel` beneath `base` (itself opened as given: the host made it).
pub fn open_dir(base: &Path, rel: &Path) -> Result<OwnedFd> {
    let b = File::open(base).with_context(|| format!("opening {}", base.display()))?;
    let rel = if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    };
    openat2(b.as_fd(), rel, how(OFlag::O_RDONLY | OFlag::O_DIRECTORY)).with_context(|| {
        format!(
            "opening {} beneath {} without following symlinks",
            rel.display(),
            base.display()
        )
    })
}

/// Create `rel` beneath `base`, one component at a time, refusing any component that is a
/// symlink (a build could have planted `target -> /somewhere` to be bound read-write next).
pub fn make_dirs(base: &Path, rel: &Path) -> Result<()> {
    let mut dir = open_dir(base, Path::new(""))?;
    for c in rel.components() {
        let std::path::Component::Normal(name) = c else {
            bail!("{}: expected a relative path without '..'", rel.display());
        };
        match nix::sys::stat::mkdirat(dir.as_fd(), name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(nix::errno::Errno::EEXIST) => {}
            Err(e) => bail!(
                "creating {} in {}: {e}",
                Path::new(name).display(),
                base.display()
            ),
        }
        dir = openat2(dir.as_fd(), name, how(OFlag::O_RDONLY | OFlag::O_DIRECTORY)).with_context(
            || {
                format!(
                    "{} in {} is not a directory (a symlink left by a build?): remove it",
                    Path::new(name).display(),
                    base.join(rel).display()
                )
            },
        )?;
    }
    Ok(())
}

/// Names in a directory opened with [`open_dir`], sorted (none if it cannot be read).
pub fn names(dir: &OwnedFd) -> Vec<OsString> {
    all_names(dir).unwrap_or_default()
}

/// [`names`], or the error that kept any of them from being read.
fn all_names(dir: &OwnedFd) -> nix::Result<Vec<OsString>> {
    let d = nix::dir::Dir::openat(dir.as_fd(), ".", OFlag::O_RDONLY, Mode::empty())?;
    let mut out = Vec::new();
    for e in d {
        let name = OsString::from_vec(e?.file_name().to_bytes().to_vec());
        if name != "." && name != ".." {
            out.push(name);
        }
    }
    out.sort();
    Ok(out)
}

/// A regular file beneath `dir`: its open handle and status. Symlinks, FIFOs, devices and
/// directories are refused (`None`).
pub fn open_regular(dir: &OwnedFd, name: &Path) -> Option<(File, nix::sys::stat::FileStat)> {
    let fd = openat2(dir.as_fd(), name, how(OFlag::O_RDONLY | OFlag::O_NONBLOCK)).ok()?;
    let st = fstat(&fd).ok()?;
    (SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG)
        .then(|| (File::from(fd), st))
}

/// Read a regular file beneath `dir`, refusing one larger than `max` bytes.
pub fn read_regular(dir: &OwnedFd, name: &Path, max: u64) -> Result<Vec<u8>> {
    let Some((f, st)) = open_regular(dir, name) else {
        bail!("{} is not a regular file (or is a symlink)", name.display());
    };
    if st.st_size as u64 > max {
        bail!(
            "{} is {} bytes, more than the {max} read here",
            name.display(),
            st.st_size
        );
    }
    let mut data = Vec::with_capacity(st.st_size as usize);
    f.take(max).read_to_end(&mut data)?;
    Ok(data)
}

/// [`stat_tree`]'s callback, given one line per entry: its path beneath the base, then what
/// changes with any write or replacement (type and mode, inode; but for a directory size,
/// mtime and ctime to the nanosecond), and a symlink's target.
pub type Visit<'a> = &'a mut dyn FnMut(&[u8]);

/// How deep [`stat_tree`] goes (a sandbox could nest directories to exhaust the stack).
pub const MAX_DEPTH: usize = 256;

/// What changes with any write or replacement of an entry: `\0<mode> <inode>`, then but
/// for a directory (its times move with its entries, which are seen themselves) ` <size>
/// <mtime>.<ns> <ctime>.<ns>`, then `\0`.
pub fn status_of(st: &nix::sys::stat::FileStat) -> Vec<u8> {
    let mut line = format!("\0{:o} {}", st.st_mode, st.st_ino);
    if SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT != SFlag::S_IFDIR {
        line.push_str(&format!(
            " {} {}.{} {}.{}",
            st.st_size, st.st_mtime, st.st_mtime_nsec, st.st_ctime, st.st_ctime_nsec
        ));
    }
    line.push('\0');
    line.into_bytes()
}

/// Walk `base` without following a symlink or opening anything but directories, and feed
/// every entry's status to `visit`, names sorted, paths in `skip` (absolute) left out. Gives
/// up (an error) past `limit` entries, below [`MAX_DEPTH`] levels, or where a directory
/// cannot be listed whole. Nothing is read, so a FIFO or a device costs nothing.
pub fn stat_tree(
    base: &Path,
    skip: &[std::path::PathBuf],
    limit: usize,
    visit: Visit,
) -> Result<()> {
    let dir = open_dir(base, Path::new(""))?;
    let mut seen = 0;
    walk(&dir, base, &mut Vec::new(), skip, limit, &mut seen, visit)
}

fn walk(
    dir: &OwnedFd,
    base: &Path,
    rel: &mut Vec<u8>,
    skip: &[std::path::PathBuf],
    limit: usize,
    seen: &mut usize,
    visit: Visit,
) -> Result<()> {
    use nix::fcntl::AtFlags;
    use std::os::unix::ffi::OsStrExt;
    if rel.iter().filter(|b| **b == b'/').count() >= MAX_DEPTH {
        bail!(
            "{} nests directories more than {MAX_DEPTH} deep",
            base.display()
        );
    }
    let listed = all_names(dir)
        .with_context(|| format!("listing {}{}", base.display(), String::from_utf8_lossy(rel)))?;
    for name in listed {
        *seen += 1;
        if *seen > limit {
            bail!("{} holds more than {limit} entries", base.display());
        }
        let len = rel.len();
        rel.extend_from_slice(b"/");
        rel.extend_from_slice(name.as_bytes());
        let full = base.join(std::ffi::OsStr::from_bytes(&rel[1..]));
        if !skip.contains(&full) {
            let st = nix::sys::stat::fstatat(dir, name.as_os_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
                .with_context(|| format!("status of {}", full.display()))?;
            let kind = SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT;
            let mut line = rel.clone();
            line.extend_from_slice(&status_of(&st));
            if kind == SFlag::S_IFLNK {
                let target = nix::fcntl::readlinkat(dir, name.as_os_str())?;
                line.extend_from_slice(target.as_bytes());
            }
            visit(&line);
            if kind == SFlag::S_IFDIR {
                let sub = openat2(
                    dir.as_fd(),
                    name.as_os_str(),
                    how(OFlag::O_RDONLY | OFlag::O_DIRECTORY),
                )
                .with_context(|| {
                    format!("opening {} without following symlinks", full.display())
                })?;
                walk(&sub, base, rel, skip, limit, seen, visit)?;
            }
        }
        rel.truncate(len);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_fifos_and_large_files_are_refused() {
        let t = std::env::temp_dir().join(format!("cfa-hostfs-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("d/sub")).unwrap();
        std::fs::write(t.join("d/ok"), b"hello").unwrap();
        std::fs::write(t.join("secret"), b"s").unwrap();
        std::os::unix::fs::symlink(t.join("secret"), t.join("d/link")).unwrap();
        std::os::unix::fs::symlink(&t, t.join("d/up")).unwrap();
        nix::unistd::mkfifo(&t.join("d/fifo"), Mode::S_IRWXU).unwrap();
        let d = open_dir(&t, Path::new("d")).unwrap();
        assert_eq!(read_regular(&d, Path::new("ok"), 10).unwrap(), b"hello");
        assert!(read_regular(&d, Path::new("ok"), 2).is_err());
        assert!(read_regular(&d, Path::new("link"), 10).is_err());
        assert!(read_regular(&d, Path::new("fifo"), 10).is_err());
        assert!(read_regular(&d, Path::new("sub"), 10).is_err());
        assert!(read_regular(&d, Path::new("../secret"), 10).is_err());
        assert!(open_dir(&t, Path::new("d/up")).is_err());
        assert_eq!(names(&d), ["fifo", "link", "ok", "sub", "up"]);
        make_dirs(&t, Path::new("d/sub/new/deeper")).unwrap();
        assert!(t.join("d/sub/new/deeper").is_dir());
        let e = make_dirs(&t, Path::new("d/up/x")).unwrap_err();
        assert!(format!("{e:#}").contains("remove it"), "{e:#}");
        assert!(!t.join("x").exists());
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn a_tree_status_sees_every_change_follows_no_link_and_skips_what_it_is_told() {
        let t = std::env::temp_dir().join(format!("cfa-hostfs-tree-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        std::fs::create_dir_all(t.join("p/src")).unwrap();
        std::fs::create_dir_all(t.join("p/target/x")).unwrap();
        std::fs::create_dir_all(t.join("outside")).unwrap();
        std::fs::write(t.join("p/src/main.rs"), b"fn main() {}").unwrap();
        std::fs::write(t.join("outside/big"), b"o").unwrap();
        std::os::unix::fs::symlink(t.join("outside"), t.join("p/link")).unwrap();
        nix::unistd::mkfifo(&t.join("p/fifo"), Mode::S_IRWXU).unwrap();
        let status = |skip: &[std::path::PathBuf]| {
            let mut lines: Vec<Vec<u8>> = Vec::new();
            stat_tree(&t.join("p"), skip, 100, &mut |l: &[u8]| {
                lines.push(l.to_vec())
            })
            .unwrap();
            lines
        };
        let before = status(&[]);
        let paths: Vec<String> = before
            .iter()
            .map(|l| String::from_utf8_lossy(l.split(|b| *b == 0).next().unwrap()).into_owned())
            .collect();
        assert_eq!(
            paths,
            [
                "/fifo",
                "/link",
                "/src",
                "/src/main.rs",
                "/target",
                "/target/x"
            ]
        );
        assert!(before[1].ends_with(t.join("outside").as_os_str().as_encoded_bytes()));
        // Not followed: what the link points at is not part of the tree.
        std::fs::write(t.join("outside/big"), b"changed").unwrap();
        assert_eq!(status(&[]), before);
        // The same content written again is a change (its ctime moves).
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(t.join("p/src/main.rs"), b"fn main() {}").unwrap();
        let after = status(&[]);
        assert_ne!(after, before);
        // Skipped trees are not entered.
        let skipped = status(&[t.join("p/target")]);
        assert!(!skipped.iter().any(|l| l.starts_with(b"/target")));
        let e = stat_tree(&t.join("p"), &[], 3, &mut |_: &[u8]| {}).unwrap_err();
        assert!(format!("{e:#}").contains("more than 3"), "{e:#}");
        // Nesting deeper than MAX_DEPTH is an error, not a stack overflow.
        let deep: std::path::PathBuf = std::iter::repeat_n("d", MAX_DEPTH + 1).collect();
        std::fs::create_dir_all(t.join("p/target").join(&deep)).unwrap();
        let e = stat_tree(&t.join("p"), &[], 10_000, &mut |_: &[u8]| {}).unwrap_err();
        assert!(format!("{e:#}").contains("deep"), "{e:#}");
        std::fs::remove_dir_all(&t).unwrap();
    }
}
