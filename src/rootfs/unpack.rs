//! Safe, streaming unpack of rootfs archives (.tar, .tar.xz, .tar.gz, .tar.zst).
//!
//! Every entry is checked before anything is written, and written without ever following a
//! symlink: parents are opened component by component with `O_NOFOLLOW`, so a symlink in the
//! archive cannot redirect a later entry out of the tree (SECURITY-CHECKLIST A1–A11). The
//! `tar` crate silently skips `..` entries, so it is used only to read headers and data; the
//! paths are judged here.

use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use nix::errno::Errno;

/// Top-level directories that a merged-/usr system links into /usr.
pub const MERGED_USR: [&[u8]; 6] = [b"bin", b"sbin", b"lib", b"lib32", b"lib64", b"libx32"];

/// Caps that stop archive bombs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Total bytes of file data written.
    pub max_bytes: u64,
    /// Number of entries.
    pub max_entries: u64,
    /// Memory the xz decoder may use.
    pub xz_memlimit: u64,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub entries: u64,
    pub bytes: u64,
    pub skipped_nodes: u64,
    pub stripped_setid: u64,
}

/// What the unpacker does with the owners, the layout and the setid bits an archive asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnpackOptions {
    pub owners: Owners,
    pub layout: Layout,
    pub setid: SetId,
}

/// Who owns what is unpacked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Owners {
    /// Each entry's uid and gid: for a run as root of a user namespace with the full id map,
    /// where the archive's ids 0–65535 are real.
    Keep,
    /// Whoever unpacks owns everything; the archive's ids are ignored.
    Caller,
}

/// Where entries below the top-level `bin`, `sbin`, `lib`… are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Where the archive says.
    AsArchived,
    /// Into `usr/`: the tree already has the links of [`MERGED_USR`] (`/bin -> usr/bin`, made
    /// by the bootstrap), and a `.deb` of a merged-/usr system still names `bin/sh`. Writing
    /// where the link points, instead of refusing to go through a symlink.
    MergedUsr,
}

/// What happens to setuid and setgid bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetId {
    /// Dropped, and counted in the summary: archives from elsewhere.
    Strip,
    /// Kept: only for the tool's own snapshots of trees it bootstrapped.
    Keep,
}

/// Why a path of an archive entry (or a hard link's target) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadPath {
    #[error("an entry with an empty name")]
    Empty,
    #[error("absolute path {0}")]
    Absolute(String),
    #[error("a path of {0} bytes (longer than PATH_MAX)")]
    TooLong(usize),
    #[error("a NUL byte in {0}")]
    Nul(String),
    #[error("'..' in {0}")]
    DotDot(String),
}

/// Why an unpack stopped: a refusal of the archive (SECURITY-CHECKLIST A), a cap reached, or
/// a failed system call or read. The caller removes the half-written tree.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("refusing the archive: {0}")]
    Path(BadPath),
    #[error("refusing the archive: entry {0} would replace the root of the tree")]
    ReplacesRoot(String),
    #[error("entry {0} would replace a directory")]
    ReplacesDirectory(String),
    #[error(
        "entry {entry} goes through {through}, which is a symlink or not a directory: \
         a symlink-then-write escape, refusing the archive"
    )]
    ThroughSymlink { entry: String, through: String },
    #[error("{kind} {entry} has no target")]
    NoLinkTarget { kind: &'static str, entry: String },
    #[error("refusing the archive: symlink {0} has an empty or invalid target")]
    BadSymlinkTarget(String),
    #[error("refusing the archive: hard link {entry} points at {why}")]
    HardLinkTarget { entry: String, why: BadPath },
    #[error("refusing the archive: hard link {0} points at the root")]
    HardLinkToRoot(String),
    #[error("refusing the archive: entry {entry} has an unsupported type {kind}")]
    UnsupportedType { entry: String, kind: String },
    #[error("the archive has more than {0} entries (raise the limit if this is intended)")]
    TooManyEntries(u64),
    #[error("the archive unpacks to more than {0} bytes (raise the limit if this is intended)")]
    TooManyBytes(u64),
    #[error("{call}({what}) => {errno:?} ({})", errno.desc())]
    Sys {
        call: &'static str,
        what: String,
        errno: Errno,
    },
    #[error("{what}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl UnpackError {
    /// The failure of `call` on `what`, from errno: call it right after the failed call.
    fn sys(call: &'static str, what: &str) -> UnpackError {
        let errno = Errno::last();
        UnpackError::Sys {
            call,
            what: what.to_string(),
            errno,
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_bytes: 32 << 30,
            max_entries: 2_000_000,
            xz_memlimit: 512 << 20,
        }
    }
}

/// Open an archive and return a reader of the tar stream inside, by its magic bytes.
pub fn decompressed(path: &Path, limits: &Limits) -> Result<Box<dyn Read>> {
    let f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    decompress(f, limits)
}

/// The tar stream inside `reader`, by its magic bytes (xz, gzip, zstd, or plain tar).
pub fn decompress<R: Read + 'static>(reader: R, limits: &Limits) -> Result<Box<dyn Read>> {
    use std::io::BufRead;
    let mut f = BufReader::new(reader);
    let buf = f.fill_buf()?;
    let m = &buf[..buf.len().min(6)];
    let (xz, gz, zst) = (
        m.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
        m.starts_with(&[0x1f, 0x8b]),
        m.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]),
    );
    Ok(if xz {
        let stream =
            xz2::stream::Stream::new_stream_decoder(limits.xz_memlimit, xz2::stream::CONCATENATED)
                .context("xz decoder")?;
        Box::new(xz2::read::XzDecoder::new_stream(f, stream))
    } else if gz {
        Box::new(flate2::read::MultiGzDecoder::new(f))
    } else if zst {
        Box::new(zstd::stream::read::Decoder::with_buffer(f)?)
    } else {
        Box::new(f)
    })
}

/// An `io::Error` of `what` (reading the archive, writing an entry).
fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> UnpackError {
    move |source| UnpackError::Io {
        what: what.into(),
        source,
    }
}

/// The components of an archive path, or why it is refused. `.` and empty components are
/// dropped; `None` means the entry names the root itself (`.`, `./`).
pub fn components(raw: &[u8]) -> Result<Option<Vec<&[u8]>>, BadPath> {
    let shown = || String::from_utf8_lossy(raw).into_owned();
    if raw.is_empty() {
        return Err(BadPath::Empty);
    }
    if raw.starts_with(b"/") {
        return Err(BadPath::Absolute(shown()));
    }
    if raw.len() >= libc::PATH_MAX as usize {
        return Err(BadPath::TooLong(raw.len()));
    }
    if raw.contains(&0) {
        return Err(BadPath::Nul(shown()));
    }
    let mut out = Vec::new();
    for c in raw.split(|&b| b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err(BadPath::DotDot(shown())),
            c => out.push(c),
        }
    }
    Ok(if out.is_empty() { None } else { Some(out) })
}

fn cstr(b: &[u8]) -> CString {
    CString::new(b).expect("checked: no NUL")
}

/// The directories above the last component, and the last component.
fn split<'c>(comps: &'c [&'c [u8]]) -> (&'c [&'c [u8]], CString) {
    let (parent, name) = comps.split_at(comps.len() - 1);
    (parent, cstr(name[0]))
}

/// What `open_dir` does about a directory that is not there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// Make it (mode 0700 until the final modes are applied).
    Create,
    /// Fail.
    Fail,
}

/// Open the directory at `comps` below `root`, never following a symlink.
fn open_dir(
    root: &OwnedFd,
    comps: &[&[u8]],
    missing: Missing,
    entry: &str,
) -> Result<OwnedFd, UnpackError> {
    // SAFETY: dup of a valid fd.
    let mut cur =
        unsafe { OwnedFd::from_raw_fd(libc::fcntl(root.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3)) };
    for c in comps {
        let name = cstr(c);
        let flags = libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC;
        // SAFETY: openat on a valid dirfd and C string.
        let mut fd = unsafe { libc::openat(cur.as_raw_fd(), name.as_ptr(), flags) };
        if fd < 0 && Errno::last() == Errno::ENOENT && missing == Missing::Create {
            // SAFETY: mkdirat on a valid dirfd.
            if unsafe { libc::mkdirat(cur.as_raw_fd(), name.as_ptr(), 0o700) } != 0
                && Errno::last() != Errno::EEXIST
            {
                return Err(UnpackError::sys("mkdirat", entry));
            }
            // SAFETY: as above.
            fd = unsafe { libc::openat(cur.as_raw_fd(), name.as_ptr(), flags) };
        }
        if fd < 0 {
            let e = Errno::last();
            if e == Errno::ELOOP || e == Errno::ENOTDIR {
                return Err(UnpackError::ThroughSymlink {
                    entry: entry.to_string(),
                    through: String::from_utf8_lossy(c).into_owned(),
                });
            }
            return Err(UnpackError::sys("openat", entry));
        }
        // SAFETY: fd was just opened.
        cur = unsafe { OwnedFd::from_raw_fd(fd) };
    }
    Ok(cur)
}

/// Remove whatever non-directory is at `name` (a later entry replaces an earlier one).
fn replace(dir: RawFd, name: &CStr, entry: &str) -> Result<(), UnpackError> {
    // SAFETY: unlinkat on a valid dirfd.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } != 0 {
        match Errno::last() {
            Errno::ENOENT => {}
            Errno::EISDIR | Errno::EPERM => {
                return Err(UnpackError::ReplacesDirectory(entry.to_string()))
            }
            _ => return Err(UnpackError::sys("unlinkat", entry)),
        }
    }
    Ok(())
}

/// Create the regular file `name` in `dir`: a new file, never through a symlink.
fn create_file(dir: RawFd, name: &CStr, entry: &str) -> Result<File, UnpackError> {
    let flags = libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL | libc::O_NOFOLLOW | libc::O_CLOEXEC;
    // SAFETY: openat on a valid dirfd and C string.
    let fd = unsafe { libc::openat(dir, name.as_ptr(), flags, 0o600) };
    if fd < 0 {
        return Err(UnpackError::sys("openat", entry));
    }
    // SAFETY: fd was just opened.
    Ok(unsafe { File::from_raw_fd(fd) })
}

/// Give `name` in `dir` its owner, when owners are kept; never follows a symlink.
fn chown_at(
    dir: RawFd,
    name: &CStr,
    owner: Option<(u32, u32)>,
    entry: &str,
) -> Result<(), UnpackError> {
    let Some((uid, gid)) = owner else {
        return Ok(());
    };
    // SAFETY: fchownat on a valid dirfd, not following symlinks.
    if unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
        return Err(UnpackError::sys("fchownat", entry));
    }
    Ok(())
}

fn set_times(dir: RawFd, name: &CStr, mtime: u64) {
    let ts = libc::timespec {
        tv_sec: mtime as libc::time_t,
        tv_nsec: 0,
    };
    let times = [ts, ts];
    // SAFETY: utimensat with two timespecs, not following symlinks.
    unsafe {
        libc::utimensat(
            dir,
            name.as_ptr(),
            times.as_ptr(),
            libc::AT_SYMLINK_NOFOLLOW,
        )
    };
}

/// What an entry's header asks for, after the options: mode (setid bits stripped unless
/// kept), modification time, owner (when owners are kept).
#[derive(Debug, Clone, Copy)]
struct Meta {
    mode: u32,
    mtime: u64,
    owner: Option<(u32, u32)>,
}

/// A directory whose mode and time are applied once everything is written.
struct DirMeta {
    comps: Vec<Vec<u8>>,
    mode: u32,
    mtime: u64,
}

/// The state of one unpack: the tree, the caps, what was written so far.
struct Unpacker<'l> {
    root: OwnedFd,
    limits: &'l Limits,
    opts: UnpackOptions,
    sum: Summary,
    dirs: Vec<DirMeta>,
}

/// Unpack `reader` (a tar stream) into the existing, empty directory `dest`, as `opts` says.
/// On error the caller removes `dest`.
pub fn unpack(
    reader: Box<dyn Read>,
    dest: &Path,
    limits: &Limits,
    opts: UnpackOptions,
) -> Result<Summary, UnpackError> {
    let root: OwnedFd = File::open(dest)
        .map_err(io_err(format!("opening {}", dest.display())))?
        .into();
    let mut u = Unpacker {
        root,
        limits,
        opts,
        sum: Summary::default(),
        dirs: Vec::new(),
    };
    let mut archive = tar::Archive::new(reader);
    for entry in archive.entries().map_err(io_err("reading the archive"))? {
        let entry = entry.map_err(io_err("reading the archive (truncated or corrupt?)"))?;
        u.entry(entry)?;
    }
    // Whatever follows the tar stream must decode cleanly (trailing garbage is an error).
    let mut rest = archive.into_inner();
    io::copy(&mut rest, &mut io::sink()).map_err(io_err(
        "reading past the end of the archive (trailing garbage?)",
    ))?;
    u.apply_dir_modes()?;
    Ok(u.sum)
}

impl Unpacker<'_> {
    /// Check one entry and write it.
    fn entry<R: Read>(&mut self, mut entry: tar::Entry<R>) -> Result<(), UnpackError> {
        self.count_entry()?;
        let raw = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&raw).into_owned();
        let kind = entry.header().entry_type();
        let Some(comps) = self.place(&raw, kind, &shown)? else {
            return Ok(());
        };
        let meta = self.meta(entry.header());
        match kind {
            tar::EntryType::Directory => self.directory(&comps, meta, &shown),
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                self.file(&mut entry, &comps, meta, &shown)
            }
            tar::EntryType::Symlink => self.symlink(&entry, &comps, meta, &shown),
            tar::EntryType::Link => self.hard_link(&entry, &comps, &shown),
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                // The sandbox binds /dev at run time; nodes in an archive are never created.
                self.sum.skipped_nodes += 1;
                Ok(())
            }
            tar::EntryType::XGlobalHeader
            | tar::EntryType::XHeader
            | tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink => Ok(()),
            other => Err(UnpackError::UnsupportedType {
                entry: shown,
                kind: format!("{other:?}"),
            }),
        }
    }

    fn count_entry(&mut self) -> Result<(), UnpackError> {
        self.sum.entries += 1;
        if self.sum.entries > self.limits.max_entries {
            return Err(UnpackError::TooManyEntries(self.limits.max_entries));
        }
        Ok(())
    }

    /// Where an entry goes, as components below the root; `None` for one that is skipped: the
    /// root directory itself (`./`), or the top-level `bin`, `lib`… a merged-/usr tree has.
    fn place<'r>(
        &self,
        raw: &'r [u8],
        kind: tar::EntryType,
        shown: &str,
    ) -> Result<Option<Vec<&'r [u8]>>, UnpackError> {
        let Some(mut comps) = components(raw).map_err(UnpackError::Path)? else {
            if kind.is_dir() {
                return Ok(None); // `./`: the root itself
            }
            return Err(UnpackError::ReplacesRoot(shown.to_string()));
        };
        if self.opts.layout == Layout::MergedUsr && MERGED_USR.contains(&comps[0]) {
            if comps.len() == 1 && (kind.is_dir() || kind == tar::EntryType::Symlink) {
                return Ok(None);
            }
            comps.insert(0, b"usr");
        }
        Ok(Some(comps))
    }

    /// Where a hard link's target is, as components below the root.
    fn link_place<'t>(&self, target: &'t [u8], shown: &str) -> Result<Vec<&'t [u8]>, UnpackError> {
        let mut comps = components(target)
            .map_err(|why| UnpackError::HardLinkTarget {
                entry: shown.to_string(),
                why,
            })?
            .ok_or_else(|| UnpackError::HardLinkToRoot(shown.to_string()))?;
        if self.opts.layout == Layout::MergedUsr && MERGED_USR.contains(&comps[0]) {
            comps.insert(0, b"usr");
        }
        Ok(comps)
    }

    fn meta(&mut self, header: &tar::Header) -> Meta {
        let mode = header.mode().unwrap_or(0o644);
        let keep_setid = self.opts.setid == SetId::Keep;
        if mode & 0o6000 != 0 && !keep_setid {
            self.sum.stripped_setid += 1;
        }
        let owner = (self.opts.owners == Owners::Keep).then(|| {
            (
                header.uid().unwrap_or(0) as u32,
                header.gid().unwrap_or(0) as u32,
            )
        });
        Meta {
            mode: if keep_setid {
                mode & 0o7777
            } else {
                mode & 0o1777
            },
            mtime: header.mtime().unwrap_or(0),
            owner,
        }
    }

    fn directory(&mut self, comps: &[&[u8]], meta: Meta, shown: &str) -> Result<(), UnpackError> {
        let (parent, name) = split(comps);
        open_dir(&self.root, comps, Missing::Create, shown)?;
        let pfd = open_dir(&self.root, parent, Missing::Fail, shown)?;
        chown_at(pfd.as_raw_fd(), &name, meta.owner, shown)?;
        self.dirs.push(DirMeta {
            comps: comps.iter().map(|c| c.to_vec()).collect(),
            mode: meta.mode,
            mtime: meta.mtime,
        });
        Ok(())
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<R>,
        comps: &[&[u8]],
        meta: Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let (parent, name) = split(comps);
        let pfd = open_dir(&self.root, parent, Missing::Create, shown)?;
        replace(pfd.as_raw_fd(), &name, shown)?;
        let mut out = create_file(pfd.as_raw_fd(), &name, shown)?;
        let room = self.limits.max_bytes.saturating_sub(self.sum.bytes);
        let n = io::copy(&mut entry.take(room + 1), &mut out)
            .map_err(io_err(format!("writing {shown}")))?;
        self.sum.bytes += n;
        if n > room {
            return Err(UnpackError::TooManyBytes(self.limits.max_bytes));
        }
        out.flush().map_err(io_err(format!("writing {shown}")))?;
        // Owner first: chown clears setuid and setgid bits, so the mode comes after.
        chown_at(pfd.as_raw_fd(), &name, meta.owner, shown)?;
        // SAFETY: fchmod on our fd.
        unsafe { libc::fchmod(out.as_raw_fd(), meta.mode) };
        drop(out);
        set_times(pfd.as_raw_fd(), &name, meta.mtime);
        Ok(())
    }

    fn symlink<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        comps: &[&[u8]],
        meta: Meta,
        shown: &str,
    ) -> Result<(), UnpackError> {
        let target = link_target(entry, "symlink", shown)?;
        if target.is_empty() || target.contains(&0) {
            return Err(UnpackError::BadSymlinkTarget(shown.to_string()));
        }
        let (parent, name) = split(comps);
        let pfd = open_dir(&self.root, parent, Missing::Create, shown)?;
        replace(pfd.as_raw_fd(), &name, shown)?;
        let t = cstr(&target);
        // SAFETY: symlinkat with valid strings; the link is never followed by us.
        if unsafe { libc::symlinkat(t.as_ptr(), pfd.as_raw_fd(), name.as_ptr()) } != 0 {
            return Err(UnpackError::sys("symlinkat", shown));
        }
        chown_at(pfd.as_raw_fd(), &name, meta.owner, shown)?;
        set_times(pfd.as_raw_fd(), &name, meta.mtime);
        Ok(())
    }

    fn hard_link<R: Read>(
        &mut self,
        entry: &tar::Entry<R>,
        comps: &[&[u8]],
        shown: &str,
    ) -> Result<(), UnpackError> {
        let target = link_target(entry, "hard link", shown)?;
        let tcomps = self.link_place(&target, shown)?;
        let (tparent, tname) = split(&tcomps);
        let tpfd = open_dir(&self.root, tparent, Missing::Fail, shown)?;
        let (parent, name) = split(comps);
        let pfd = open_dir(&self.root, parent, Missing::Create, shown)?;
        replace(pfd.as_raw_fd(), &name, shown)?;
        // SAFETY: linkat without AT_SYMLINK_FOLLOW: a link to a symlink stays one.
        let linked = unsafe {
            libc::linkat(
                tpfd.as_raw_fd(),
                tname.as_ptr(),
                pfd.as_raw_fd(),
                name.as_ptr(),
                0,
            )
        };
        if linked != 0 {
            let errno = Errno::last();
            return Err(UnpackError::Sys {
                call: "linkat",
                what: format!("{shown} -> {}", String::from_utf8_lossy(&target)),
                errno,
            });
        }
        Ok(())
    }

    /// Directory modes last, deepest first: a 0500 or 000 directory must not stop its entries.
    fn apply_dir_modes(&mut self) -> Result<(), UnpackError> {
        self.dirs.sort_by_key(|d| std::cmp::Reverse(d.comps.len()));
        for d in &self.dirs {
            let c: Vec<&[u8]> = d.comps.iter().map(Vec::as_slice).collect();
            let (parent, name) = split(&c);
            let pfd = open_dir(&self.root, parent, Missing::Fail, "directory modes")?;
            // SAFETY: fchmodat on a valid dirfd; a directory, never a symlink (checked at open).
            unsafe { libc::fchmodat(pfd.as_raw_fd(), name.as_ptr(), d.mode, 0) };
            set_times(pfd.as_raw_fd(), &name, d.mtime);
        }
        Ok(())
    }
}

/// The target of a symlink or hard link entry.
fn link_target<R: Read>(
    entry: &tar::Entry<R>,
    kind: &'static str,
    shown: &str,
) -> Result<Vec<u8>, UnpackError> {
    let no_target = || UnpackError::NoLinkTarget {
        kind,
        entry: shown.to_string(),
    };
    Ok(entry.link_name_bytes().ok_or_else(no_target)?.into_owned())
}

/// How the owners a tree shows to the packer become owners in the archive. The packer runs as
/// root of the tool's user namespace, where a tree the tool made (root is the user) shows its
/// root as 0. A tree made by `mmdebstrap --mode=unshare`, whose namespace maps root to the
/// first subordinate id, shows its root as 1 and every owner one above its own: copied as
/// seen, each owner would be off by one (root files owned by daemon). The top directory tells
/// which: it is root's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdShift {
    pub uid: u32,
    pub gid: u32,
}

/// The kernel's overflow id (`/proc/sys/kernel/overflowuid`): what an owner that is not
/// mapped in the namespace shows as. It stays nobody.
const OVERFLOW_ID: u32 = 65534;

impl IdShift {
    /// Owners as seen.
    pub const NONE: IdShift = IdShift { uid: 0, gid: 0 };

    /// The shift of the tree at `root`, from the owner of its top directory: one for an id
    /// that shows as 1, else none.
    pub fn of_tree(root: &Path) -> Result<IdShift> {
        let md = root
            .symlink_metadata()
            .with_context(|| format!("reading {}", root.display()))?;
        Ok(IdShift {
            uid: u32::from(md.uid() == 1),
            gid: u32::from(md.gid() == 1),
        })
    }

    /// `id` as seen, in the tree's own terms. The user's own files in a shifted tree (id 0
    /// here, unmapped in mmdebstrap's namespace) become root's.
    fn apply(shift: u32, id: u32) -> u32 {
        if id == OVERFLOW_ID {
            id
        } else {
            id.saturating_sub(shift)
        }
    }

    fn owner(&self, md: &std::fs::Metadata) -> (u32, u32) {
        (
            IdShift::apply(self.uid, md.uid()),
            IdShift::apply(self.gid, md.gid()),
        )
    }
}

/// Writes a tree as a tar: one entry per file, hard links as links.
struct Packer<W: Write> {
    tar: tar::Builder<W>,
    root: PathBuf,
    shift: IdShift,
    seen: HashMap<(u64, u64), PathBuf>,
    count: u64,
}

impl<W: Write> Packer<W> {
    /// Append the entry at `rel`; true when it is a directory to descend into.
    fn append(&mut self, rel: &Path) -> Result<Descend> {
        let path = self.root.join(rel);
        let md = path
            .symlink_metadata()
            .with_context(|| format!("reading {}", path.display()))?;
        let mut h = tar::Header::new_gnu();
        h.set_mode(md.mode() & 0o7777);
        let (uid, gid) = self.shift.owner(&md);
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_mtime(md.mtime().max(0) as u64);
        h.set_size(0);
        let ft = md.file_type();
        if ft.is_dir() {
            h.set_entry_type(tar::EntryType::Directory);
            self.tar.append_data(&mut h, rel, io::empty())?;
        } else if ft.is_symlink() {
            h.set_entry_type(tar::EntryType::Symlink);
            let target =
                std::fs::read_link(&path).with_context(|| format!("reading {}", path.display()))?;
            self.tar.append_link(&mut h, rel, target)?;
        } else if ft.is_file() {
            self.append_file(&mut h, rel, &path, &md)?;
        } else {
            return Ok(Descend::No);
        }
        self.count += 1;
        Ok(if ft.is_dir() {
            Descend::Yes
        } else {
            Descend::No
        })
    }

    /// A regular file: its data, or a link to the first path of the same inode.
    fn append_file(
        &mut self,
        h: &mut tar::Header,
        rel: &Path,
        path: &Path,
        md: &std::fs::Metadata,
    ) -> Result<()> {
        if md.nlink() > 1 {
            if let Some(first) = self.seen.get(&(md.dev(), md.ino())) {
                h.set_entry_type(tar::EntryType::Link);
                self.tar.append_link(h, rel, first)?;
                return Ok(());
            }
            self.seen.insert((md.dev(), md.ino()), rel.to_path_buf());
        }
        h.set_entry_type(tar::EntryType::Regular);
        h.set_size(md.len());
        let f = File::open(path).with_context(|| format!("reading {}", path.display()))?;
        self.tar.append_data(h, rel, f)?;
        Ok(())
    }
}

/// Whether the packer descends into what it just appended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Descend {
    Yes,
    No,
}

/// The names in `dir`, sorted (so an archive of the same tree is the same archive).
fn sorted_names(dir: &Path) -> Result<Vec<std::ffi::OsString>> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .and_then(|rd| {
            rd.map(|e| e.map(|e| e.file_name()))
                .collect::<io::Result<_>>()
        })
        .with_context(|| format!("reading {}", dir.display()))?;
    names.sort();
    Ok(names)
}

/// Write the tree at `root` as a zstd-compressed tar to `out`: directories, regular files
/// (hard links as links), symlinks, with modes, owners (after `shift`) and mtimes; other file
/// types are left out (a bootstrapped rootfs has none). The inverse of [`unpack`] with owners
/// kept; run as root of a user namespace with the full id map, where every owner is readable.
/// What is still unreadable is named in the error.
pub fn pack(root: &Path, out: &Path, shift: IdShift) -> Result<u64> {
    let file = File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let enc = zstd::stream::write::Encoder::new(io::BufWriter::new(file), 3)?;
    let mut packer = Packer {
        tar: tar::Builder::new(enc),
        root: root.to_path_buf(),
        shift,
        seen: HashMap::new(),
        count: 0,
    };
    packer.tar.follow_symlinks(false);
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        for name in sorted_names(&root.join(&rel))? {
            let rel = rel.join(&name);
            if packer.append(&rel)? == Descend::Yes {
                stack.push(rel);
            }
        }
    }
    let count = packer.count;
    packer
        .tar
        .into_inner()?
        .finish()?
        .into_inner()
        .map_err(|e| e.into_error())?
        .sync_all()?;
    Ok(count)
}

/// Remove a tree, making directories writable first (mode 000 directories included).
pub fn remove_tree(path: &Path) -> io::Result<()> {
    if !path.exists() && path.symlink_metadata().is_err() {
        return Ok(());
    }
    fn open_up(p: &Path) {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(md) = p.symlink_metadata() {
            if md.is_dir() {
                let _ = std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700));
                if let Ok(rd) = std::fs::read_dir(p) {
                    for e in rd.flatten() {
                        open_up(&e.path());
                    }
                }
            }
        }
    }
    open_up(path);
    std::fs::remove_dir_all(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_components() {
        assert_eq!(
            components(b"./usr//bin/").unwrap().unwrap(),
            vec![&b"usr"[..], b"bin"]
        );
        assert_eq!(components(b"./").unwrap(), None);
        assert!(components(b"a/../../x")
            .unwrap_err()
            .to_string()
            .contains(".."));
        assert!(components(b"/etc/x")
            .unwrap_err()
            .to_string()
            .contains("absolute"));
        assert!(components(b"").is_err());
        assert!(components(&vec![b'a'; 5000])
            .unwrap_err()
            .to_string()
            .contains("PATH_MAX"));
        assert!(matches!(components(b"a/../../x"), Err(BadPath::DotDot(_))));
        assert!(matches!(components(b"/etc/x"), Err(BadPath::Absolute(_))));
        assert_eq!(components(b""), Err(BadPath::Empty));
    }

    /// A fresh directory under the system's temporary directory, removed on drop.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(tag: &str) -> Scratch {
            static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let p =
                std::env::temp_dir().join(format!("cfa-unpack-{tag}-{}-{n}", std::process::id()));
            let _ = remove_tree(&p);
            std::fs::create_dir_all(p.join("tree")).unwrap();
            Scratch(p)
        }
        fn tree(&self) -> PathBuf {
            self.0.join("tree")
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = remove_tree(&self.0);
        }
    }

    /// One entry written as given: names and link targets unchecked (tar::Builder refuses
    /// `..`, which is what these tests need).
    fn raw(b: &mut tar::Builder<Vec<u8>>, name: &[u8], kind: tar::EntryType, link: &[u8]) {
        raw_data(b, name, kind, link, b"", 0o644);
    }

    fn raw_data(
        b: &mut tar::Builder<Vec<u8>>,
        name: &[u8],
        kind: tar::EntryType,
        link: &[u8],
        data: &[u8],
        mode: u32,
    ) {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        h.as_old_mut().linkname[..link.len()].copy_from_slice(link);
        h.set_entry_type(kind);
        h.set_mode(mode);
        h.set_size(data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }

    const AS_ARCHIVED: UnpackOptions = UnpackOptions {
        owners: Owners::Caller,
        layout: Layout::AsArchived,
        setid: SetId::Strip,
    };

    fn unpack_bytes(
        s: &Scratch,
        tar: Vec<u8>,
        limits: &Limits,
        opts: UnpackOptions,
    ) -> Result<Summary, UnpackError> {
        unpack(Box::new(io::Cursor::new(tar)), &s.tree(), limits, opts)
    }

    #[test]
    fn hostile_paths_are_refused_with_their_reason() {
        let s = Scratch::new("paths");
        let mut b = tar::Builder::new(Vec::new());
        raw_data(
            &mut b,
            b"a/../../x",
            tar::EntryType::Regular,
            b"",
            b"x",
            0o644,
        );
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &Limits::default(), AS_ARCHIVED);
        assert!(
            matches!(e, Err(UnpackError::Path(BadPath::DotDot(_)))),
            "{e:?}"
        );
        assert!(!s.0.join("x").exists());

        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, b"pw", tar::EntryType::Link, b"/etc/passwd");
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &Limits::default(), AS_ARCHIVED);
        assert!(
            matches!(
                &e,
                Err(UnpackError::HardLinkTarget {
                    why: BadPath::Absolute(_),
                    ..
                })
            ),
            "{e:?}"
        );

        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, b".", tar::EntryType::Symlink, b"/");
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &Limits::default(), AS_ARCHIVED);
        assert!(matches!(e, Err(UnpackError::ReplacesRoot(_))), "{e:?}");
    }

    #[test]
    fn a_symlink_then_a_write_through_it_is_refused() {
        let s = Scratch::new("symwrite");
        let outside = s.0.join("outside");
        std::fs::create_dir(&outside).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw(
            &mut b,
            b"lnk",
            tar::EntryType::Symlink,
            outside.to_str().unwrap().as_bytes(),
        );
        raw_data(&mut b, b"lnk/f", tar::EntryType::Regular, b"", b"x", 0o644);
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &Limits::default(), AS_ARCHIVED);
        assert!(
            matches!(&e, Err(UnpackError::ThroughSymlink { through, .. }) if through == "lnk"),
            "{e:?}"
        );
        assert!(!outside.join("f").exists());
    }

    #[test]
    fn caps_stop_bombs() {
        let s = Scratch::new("caps");
        let mut b = tar::Builder::new(Vec::new());
        raw_data(
            &mut b,
            b"big",
            tar::EntryType::Regular,
            b"",
            &[0; 2000],
            0o644,
        );
        let limits = Limits {
            max_bytes: 1000,
            ..Limits::default()
        };
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &limits, AS_ARCHIVED);
        assert!(matches!(e, Err(UnpackError::TooManyBytes(1000))), "{e:?}");

        let s = Scratch::new("entries");
        let mut b = tar::Builder::new(Vec::new());
        for i in 0..5 {
            raw(
                &mut b,
                format!("f{i}").as_bytes(),
                tar::EntryType::Regular,
                b"",
            );
        }
        let limits = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        let e = unpack_bytes(&s, b.into_inner().unwrap(), &limits, AS_ARCHIVED);
        assert!(matches!(e, Err(UnpackError::TooManyEntries(3))), "{e:?}");
    }

    #[test]
    fn setid_bits_are_stripped_unless_kept() {
        let archive = || {
            let mut b = tar::Builder::new(Vec::new());
            raw_data(&mut b, b"suid", tar::EntryType::Regular, b"", b"#!", 0o4755);
            b.into_inner().unwrap()
        };
        let s = Scratch::new("strip");
        let sum = unpack_bytes(&s, archive(), &Limits::default(), AS_ARCHIVED).unwrap();
        assert_eq!(sum.stripped_setid, 1);
        let mode = std::fs::metadata(s.tree().join("suid")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o755);
        let s = Scratch::new("keep");
        let keep = UnpackOptions {
            setid: SetId::Keep,
            ..AS_ARCHIVED
        };
        let sum = unpack_bytes(&s, archive(), &Limits::default(), keep).unwrap();
        assert_eq!(sum.stripped_setid, 0);
        let mode = std::fs::metadata(s.tree().join("suid")).unwrap().mode();
        assert_eq!(mode & 0o7777, 0o4755);
    }

    #[test]
    fn a_merged_usr_tree_takes_top_level_entries_into_usr() {
        let s = Scratch::new("usr");
        std::fs::create_dir_all(s.tree().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", s.tree().join("bin")).unwrap();
        let mut b = tar::Builder::new(Vec::new());
        raw(&mut b, b"./bin", tar::EntryType::Directory, b"");
        raw_data(
            &mut b,
            b"./bin/dash",
            tar::EntryType::Regular,
            b"",
            b"sh",
            0o755,
        );
        raw(&mut b, b"./bin/sh2", tar::EntryType::Link, b"./bin/dash");
        let tar = b.into_inner().unwrap();
        let merged = UnpackOptions {
            layout: Layout::MergedUsr,
            ..AS_ARCHIVED
        };
        unpack_bytes(&s, tar.clone(), &Limits::default(), merged).unwrap();
        assert_eq!(std::fs::read(s.tree().join("usr/bin/dash")).unwrap(), b"sh");
        assert!(s.tree().join("usr/bin/sh2").is_file());
        // As archived, the same entries would go through the link: refused.
        let s2 = Scratch::new("usr2");
        std::fs::create_dir_all(s2.tree().join("usr/bin")).unwrap();
        std::os::unix::fs::symlink("usr/bin", s2.tree().join("bin")).unwrap();
        let e = unpack_bytes(&s2, tar, &Limits::default(), AS_ARCHIVED);
        assert!(
            matches!(e, Err(UnpackError::ThroughSymlink { .. })),
            "{e:?}"
        );
    }

    #[test]
    fn pack_then_unpack_gives_the_same_tree_and_shifts_owners() {
        let s = Scratch::new("pack");
        let src = s.0.join("src");
        std::fs::create_dir_all(src.join("etc/locked")).unwrap();
        std::fs::write(src.join("etc/a"), b"a").unwrap();
        std::fs::hard_link(src.join("etc/a"), src.join("etc/b")).unwrap();
        std::os::unix::fs::symlink("a", src.join("etc/c")).unwrap();
        let out = s.0.join("t.tar.zst");
        assert_eq!(pack(&src, &out, IdShift::NONE).unwrap(), 5);
        let reader = decompressed(&out, &Limits::default()).unwrap();
        unpack(reader, &s.tree(), &Limits::default(), AS_ARCHIVED).unwrap();
        let t = s.tree();
        assert_eq!(std::fs::read(t.join("etc/b")).unwrap(), b"a");
        assert_eq!(
            std::fs::metadata(t.join("etc/a")).unwrap().ino(),
            std::fs::metadata(t.join("etc/b")).unwrap().ino()
        );
        assert_eq!(std::fs::read_link(t.join("etc/c")).unwrap(), Path::new("a"));
        assert!(t.join("etc/locked").is_dir());
        // Shifted by one: 1 (mmdebstrap's root) is 0, 43 is 42 (_apt); 0 (the user, unmapped
        // for mmdebstrap) is root's; the overflow id stays nobody.
        let shift = IdShift { uid: 1, gid: 0 };
        assert_eq!(IdShift::apply(shift.uid, 1), 0);
        assert_eq!(IdShift::apply(shift.uid, 43), 42);
        assert_eq!(IdShift::apply(shift.uid, 0), 0);
        assert_eq!(IdShift::apply(shift.uid, OVERFLOW_ID), OVERFLOW_ID);
        assert_eq!(IdShift::apply(shift.gid, 43), 43);
        // A tree of the user's own (0 here would be the user in the namespace) is not shifted.
        assert_eq!(IdShift::of_tree(&src).unwrap(), IdShift::NONE);
    }
}
