//! Root filesystems: the per-user store, fetching and safe unpacking of archives, the
//! rootless Debian bootstrap, and the Debian archive chain it trusts.

pub mod bootstrap;
pub mod debian;
pub mod fetch;
pub mod store;
pub mod unpack;

use std::ffi::CString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};

use crate::arch::{elf_info, Arch};
use crate::sandbox::spec::{Root, RootWrites};
use crate::sandbox::sys;

/// In a store entry: written by `rootfs shell` ([`Rootfs::mark_changed`]).
const CHANGED: &str = "changed";

/// A rootfs resolved once: its canonical path, an open directory for reads inside it, and for
/// a stored one the shared lock that keeps `rootfs rm` away while it is in use. Every later
/// stage asks this value instead of deriving facts from a path again.
#[derive(Debug)]
pub struct Rootfs {
    path: PathBuf,
    dir: File,
    stored: bool,
    lock: Option<Rc<store::Lock>>,
}

impl Rootfs {
    /// `--rootfs`: a directory, or the name of a complete entry of the store. "Stored" is
    /// decided on resolved paths, so a store reached through a symlink or a relative
    /// `CARGO_FOR_ARM_HOME` is still never changed by a run.
    pub fn open(arg: &Path) -> Result<Rootfs> {
        let (path, lock) = if arg.is_dir() {
            let p = arg
                .canonicalize()
                .with_context(|| format!("resolving {}", arg.display()))?;
            (p, None)
        } else {
            let name = arg.to_string_lossy();
            if name.contains('/') {
                bail!("rootfs {} does not exist", arg.display());
            }
            let st = store::Store::open()?;
            let lock = st.lock_shared(&name)?;
            if st.get(&name).is_none() {
                bail!(
                    "rootfs {name}: no such directory, and no rootfs of that name in the store \
                     (cargo for-arm rootfs list; cargo for-arm rootfs pull --list-presets)"
                );
            }
            let p = st.root_of(&name).canonicalize()?;
            (p, Some(Rc::new(lock)))
        };
        if path == Path::new("/") {
            bail!("the host's / cannot be a rootfs");
        }
        let stored = path.starts_with(store::home()?.join("rootfs"));
        let dir = File::open(&path).with_context(|| format!("opening {}", path.display()))?;
        let rootfs = Rootfs {
            path,
            dir,
            stored,
            lock,
        };
        rootfs.say_if_unverified();
        Ok(rootfs)
    }

    /// For a stored rootfs, whether its `entry.toml` records it verified (a signed Debian
    /// chain, or an archive whose sha256 came through a trusted channel); `None` for a
    /// directory named by path, which the user vouches for.
    pub fn verified(&self) -> Option<bool> {
        self.entry().map(|e| e.verified)
    }

    /// A stored rootfs's `entry.toml`; `None` for a directory named by path.
    fn entry(&self) -> Option<store::Entry> {
        let text = std::fs::read_to_string(self.entry_dir()?.join("entry.toml")).ok()?;
        toml::from_str(&text).ok()
    }

    /// For a stored rootfs, whether its packages' maintainer scripts ran (`entry.toml`); a
    /// directory named by path is taken as it is (`None`).
    pub fn configured(&self) -> Option<bool> {
        self.entry().map(|e| e.configured)
    }

    /// One line on stderr, once per rootfs and process, when a stored rootfs is unverified:
    /// every run and build that uses it says so (`-q` silences it).
    fn say_if_unverified(&self) {
        static SAID: std::sync::Mutex<Vec<PathBuf>> = std::sync::Mutex::new(Vec::new());
        if self.verified() != Some(false) {
            return;
        }
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        if said.contains(&self.path) {
            return;
        }
        said.push(self.path.clone());
        crate::ui::note(format_args!(
            "rootfs {} is UNVERIFIED: nothing proved it is what its publisher made (cargo for-arm rootfs list)",
            self.path
                .parent()
                .and_then(|p| p.file_name())
                .map_or_else(|| self.path.display().to_string(), |n| n.to_string_lossy().into_owned())
        ));
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read up to 64 MiB of a file inside the rootfs, resolving symlinks within the rootfs
    /// (`/bin/sh -> dash`, `/bin -> usr/bin`) and never outside it.
    pub fn read(&self, guest: &str) -> Result<Vec<u8>> {
        read_at(&self.dir, guest)
    }

    /// Whether `guest` exists inside the rootfs (symlinks resolved inside it).
    pub fn exists(&self, guest: &str) -> bool {
        exists_at(&self.dir, guest)
    }

    /// The architecture, from the ELF header of `/bin/sh`.
    pub fn arch(&self) -> Result<(Arch, String)> {
        arch_of(&self.path, self.read("/bin/sh"))
    }

    /// The architecture, checked against the one asked for (`--arch`): a rootfs without a
    /// `/bin/sh` yet (being bootstrapped) is trusted to be what was asked.
    pub fn arch_as(&self, asked: Option<Arch>) -> Result<(Arch, String)> {
        let Some(want) = asked else {
            return self.arch();
        };
        match self.arch() {
            Ok((found, desc)) if found != want => bail!(
                "--arch {want} was asked, but {} is a {desc} rootfs (its /bin/sh); \
                 use a {want} rootfs or drop --arch",
                self.path.display()
            ),
            Ok((_, desc)) => Ok((want, desc)),
            Err(_) => Ok((want, want.to_string())),
        }
    }

    /// The Debian (or Ubuntu) suite, from `VERSION_CODENAME` in `/etc/os-release`.
    pub fn suite(&self) -> Option<String> {
        let data = self.read("/etc/os-release").ok()?;
        String::from_utf8_lossy(&data)
            .lines()
            .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
            .map(|v| v.trim().trim_matches('"').to_string())
            .filter(|v| !v.is_empty())
    }

    /// Whether it is an entry of the store (changed by `rootfs shell` only), not a directory
    /// the user named.
    pub fn stored(&self) -> bool {
        self.stored
    }

    /// The store entry's directory of a stored rootfs (its tree is `root` in it).
    fn entry_dir(&self) -> Option<&Path> {
        self.path.parent().filter(|_| self.stored)
    }

    /// A stored rootfs's files that change when it does: its `entry.toml`, and the mark
    /// `rootfs shell` leaves before and after a shell ([`Rootfs::mark_changed`]).
    pub fn marks(&self) -> Vec<PathBuf> {
        self.entry_dir()
            .map(|e| vec![e.join("entry.toml"), e.join(CHANGED)])
            .unwrap_or_default()
    }

    /// Record that the tree is being changed in place (`rootfs shell`): what was built
    /// against it before is not fresh (`build/fresh.rs`). The mark is rewritten now and
    /// held locked (exclusively) until the returned file is dropped, when the caller
    /// rewrites it again; a build that finds it locked takes no stamp ([`Rootfs::changing`]).
    pub fn mark_changed(&self) -> Result<Option<File>> {
        let Some(entry) = self.entry_dir() else {
            return Ok(None);
        };
        let mark = entry.join(CHANGED);
        let f = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&mark)
            .with_context(|| format!("marking {} changed", entry.display()))?;
        if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX) } != 0 {
            bail!(
                "locking {}: {}",
                mark.display(),
                std::io::Error::last_os_error()
            );
        }
        let mut w = &f;
        writeln!(w, "{:?}", std::time::SystemTime::now())?;
        Ok(Some(f))
    }

    /// Whether a `rootfs shell` is changing this stored rootfs right now.
    pub fn changing(&self) -> bool {
        let Some(entry) = self.entry_dir() else {
            return false;
        };
        let Ok(f) = File::open(entry.join(CHANGED)) else {
            return false;
        };
        unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_SH | libc::LOCK_NB) != 0 }
    }

    /// How a sandbox sees this rootfs: through a throwaway overlay (a run never changes a
    /// rootfs), and the tool's own home (store, fetched qemus) hidden from every bind.
    pub fn sandbox_root(&self) -> Result<Root> {
        self.sandbox_root_writing(RootWrites::Throwaway)
    }

    /// [`Rootfs::sandbox_root`], writing in place when asked (`--rootfs-rw`, for a directory
    /// the user named; a stored rootfs is changed by `rootfs shell` only).
    pub fn sandbox_root_writing(&self, writes: RootWrites) -> Result<Root> {
        if writes == RootWrites::InPlace && self.stored {
            bail!(
                "--rootfs-rw: {} is in the store, and a stored rootfs is changed only by `cargo for-arm rootfs shell NAME`",
                self.path.display()
            );
        }
        Ok(Root {
            path: self.path.clone(),
            writes,
            hidden: vec![store::home()?],
            guard: self.lock.clone().map(|l| l as Rc<dyn std::any::Any>),
        })
    }
}

fn read_at(dir: &File, guest: &str) -> Result<Vec<u8>> {
    let c = CString::new(guest)?;
    let fd = sys::openat_in_root(dir.as_raw_fd(), &c, libc::O_RDONLY as u64)?;
    let mut data = Vec::new();
    File::from(fd).take(64 << 20).read_to_end(&mut data)?;
    Ok(data)
}

fn exists_at(dir: &File, guest: &str) -> bool {
    let Ok(c) = CString::new(guest) else {
        return false;
    };
    sys::openat_in_root(dir.as_raw_fd(), &c, libc::O_PATH as u64).is_ok()
}

fn arch_of(root: &Path, sh: Result<Vec<u8>>) -> Result<(Arch, String)> {
    let data = sh.with_context(|| {
        format!(
            "cannot read {}/bin/sh to detect the rootfs architecture; is this a root filesystem? \
             (pass --arch if it has no /bin/sh)",
            root.display()
        )
    })?;
    let info = elf_info(&data).with_context(|| {
        format!(
            "{}/bin/sh is not an ELF program; pass --arch",
            root.display()
        )
    })?;
    match info.arch {
        Some(a) => Ok((a, info.describe())),
        None => bail!(
            "{}/bin/sh is built for {}, which cargo-for-arm cannot run",
            root.display(),
            info.describe()
        ),
    }
}

/// [`Rootfs::read`] for a tree that is not (yet) a resolved rootfs: one being built.
pub fn read_in_root(root: &Path, guest: &str) -> Result<Vec<u8>> {
    read_at(&File::open(root)?, guest)
}

/// [`Rootfs::exists`] for a tree that is not (yet) a resolved rootfs.
pub fn exists_in_root(root: &Path, guest: &str) -> bool {
    File::open(root).is_ok_and(|d| exists_at(&d, guest))
}

/// [`Rootfs::arch`] for a tree that is not (yet) a resolved rootfs.
pub fn detect_arch(root: &Path) -> Result<(Arch, String)> {
    arch_of(root, read_in_root(root, "/bin/sh"))
}
