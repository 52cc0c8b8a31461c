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

/// Names in a directory opened with [`open_dir`], sorted.
pub fn names(dir: &OwnedFd) -> Vec<OsString> {
    let Ok(d) = nix::dir::Dir::openat(dir.as_fd(), ".", OFlag::O_RDONLY, Mode::empty()) else {
        return Vec::new();
    };
    let mut out: Vec<OsString> = d
        .into_iter()
        .flatten()
        .map(|e| OsString::from_vec(e.file_name().to_bytes().to_vec()))
        .filter(|n| n != "." && n != "..")
        .collect();
    out.sort();
    out
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
}
