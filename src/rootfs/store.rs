//! The per-user rootfs store: `$CARGO_FOR_ARM_HOME/rootfs/<name>/{root/, entry.toml}`.
//!
//! An entry exists only once it is complete: it is built in `.tmp-<name>-<pid>/` and renamed
//! into place. One lock file per name makes concurrent pulls download once; a temporary tree
//! left by a killed run is removed by the next run that takes the lock.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::unpack::{self, Layout, Limits, Owners, SetId, UnpackOptions};
use crate::idmap::{self, IdMap, MapMode};
use crate::sandbox;

/// `$CARGO_FOR_ARM_HOME`, else `$XDG_CACHE_HOME/cargo-for-arm`, else `~/.cache/cargo-for-arm`;
/// absolute, and resolved when it exists (decisions about what is stored compare real paths).
pub fn home() -> Result<PathBuf> {
    let raw = if let Some(h) = std::env::var_os("CARGO_FOR_ARM_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(h)
    } else if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        PathBuf::from(x).join("cargo-for-arm")
    } else {
        let home = std::env::var_os("HOME").context("HOME is not set; set CARGO_FOR_ARM_HOME")?;
        PathBuf::from(home).join(".cache/cargo-for-arm")
    };
    let abs = std::path::absolute(&raw).with_context(|| format!("resolving {}", raw.display()))?;
    Ok(abs.canonicalize().unwrap_or(abs))
}

/// What the store knows of an entry (`entry.toml`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    pub arch: String,
    pub arch_desc: String,
    pub distro: String,
    pub size: u64,
    pub source: String,
    pub sha256: Option<String>,
    pub verified: bool,
    pub created: String,
    pub owners_kept: bool,
    pub host_arch: bool,
    /// Whether its packages' maintainer scripts ran (false for a sysroot unpacked without
    /// emulation or without a user namespace: no rootfs to emulate in). Entries of older
    /// versions were always configured.
    #[serde(default = "configured_default")]
    pub configured: bool,
}

fn configured_default() -> bool {
    true
}

pub fn check_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-+".contains(c));
    if !ok {
        bail!(
            "rootfs name '{name}': use letters, digits, '.', '_', '-', '+', not starting with '.'"
        );
    }
    Ok(())
}

/// What a caller of the store may need to tell apart.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("no rootfs named {0} in the store (cargo for-arm rootfs list)")]
    NotFound(String),
    #[error("a rootfs named {0} is already in the store (cargo for-arm rootfs rm {0} first)")]
    AlreadyPresent(String),
}

pub struct Store {
    pub dir: PathBuf,
}

/// The start of the name of every temporary tree of entry `name`.
fn tmp_prefix(name: &str) -> String {
    format!(".tmp-{name}-")
}

/// Whether `file` (in the store's directory) is a temporary tree of entry `name`:
/// `.tmp-<name>-<pid>` or `.tmp-<name>-<pid>rm` — not one of `<name>-other`.
fn is_tmp_of(name: &str, file: &str) -> bool {
    file.strip_prefix(&tmp_prefix(name))
        .map(|rest| rest.strip_suffix("rm").unwrap_or(rest))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// Whether `file` is an archive an import of entry `name` packs: `.import-<name>-<pid>.tar.zst`.
fn is_import_of(name: &str, file: &str) -> bool {
    file.strip_prefix(&format!(".import-{name}-"))
        .and_then(|rest| rest.strip_suffix(".tar.zst"))
        .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
}

/// A lock on one entry name, held while the file stays open (released on drop). Runs hold
/// it shared for their whole life (the sandbox's PID 1 inherits it), so `rm` waits for them.
#[derive(Debug)]
pub struct Lock {
    _file: File,
}

/// An archive to add to the store, and what to record of it.
pub struct ArchiveSource<'a> {
    pub path: &'a Path,
    /// Recorded as the entry's source: a URL or a path.
    pub source: &'a str,
    /// The sha256 the archive was checked against.
    pub sha256: Option<String>,
    /// Whether that sha256 came through a trusted channel (the user's `--sha256`, a checksum
    /// list over https or from a local file): only then is the entry recorded verified. A
    /// list fetched over plain HTTP still catches a broken download, but proves nothing.
    pub verified: bool,
    pub limits: Limits,
    /// `Keep`: the archive's owners, when the full id map is available (else dropped, and
    /// said once); `Caller`: every file belongs to the user.
    pub owners: Owners,
}

/// What `entry.toml` records of where a tree came from.
pub struct Origin<'a> {
    pub source: &'a str,
    pub sha256: Option<String>,
    pub verified: bool,
    pub owners_kept: bool,
    pub configured: bool,
}

impl Store {
    pub fn open() -> Result<Store> {
        let home = home()?;
        let dir = home.join("rootfs");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let store = Store { dir };
        static CLEANED: std::sync::Once = std::sync::Once::new();
        CLEANED.call_once(|| store.clean_leftovers(&home));
        Ok(store)
    }

    /// What killed runs left, once per process: scratch files nobody holds (partial
    /// downloads, `.tmp-*` of atomic writes and snapshots; see [`fetch::clean_stale_files`]),
    /// and temporary trees of entries whose lock nobody holds (a run building or removing an
    /// entry holds its lock for as long as its tree exists). Best effort: what cannot be
    /// removed now is tried again by the next run.
    fn clean_leftovers(&self, home: &Path) {
        for d in ["debs", "snapshots", "host", "downloads"] {
            super::fetch::clean_stale_files(&home.join(d));
        }
        for d in ["vendor", "host/locks"] {
            clean_dead_tmp_dirs(&home.join(d));
        }
        let Ok(rd) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let files: Vec<String> = rd
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        let names = files.iter().filter_map(|f| f.strip_prefix(".lock-"));
        for name in names {
            let left = files
                .iter()
                .any(|f| is_tmp_of(name, f) || is_import_of(name, f));
            if !left {
                continue;
            }
            let Ok(f) = File::open(self.dir.join(format!(".lock-{name}"))) else {
                continue;
            };
            // SAFETY: flock on our file; held until `f` is closed below.
            if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
                let _ = self.clean_stale(name);
            }
        }
    }

    pub fn entry_dir(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn root_of(&self, name: &str) -> PathBuf {
        self.dir.join(name).join("root")
    }

    /// Where this run builds (or deletes) entry `name`: `.tmp-<name>-<pid><tag>`. Until it is
    /// renamed into place it is no entry, and the next run that takes the lock removes it.
    fn tmp_path(&self, name: &str, tag: &str) -> PathBuf {
        self.dir
            .join(format!("{}{}{tag}", tmp_prefix(name), std::process::id()))
    }

    /// Where this run builds a new entry `name` (`tmp/root` and `tmp/entry.toml`).
    pub fn tmp_dir(&self, name: &str) -> PathBuf {
        self.tmp_path(name, "")
    }

    /// The exclusive lock of pull and rm: blocks until other runs are done with `name`.
    pub fn lock(&self, name: &str) -> Result<Lock> {
        self.lock_as(name, libc::LOCK_EX)
    }

    /// The shared lock a run holds on the rootfs it uses.
    pub fn lock_shared(&self, name: &str) -> Result<Lock> {
        self.lock_as(name, libc::LOCK_SH)
    }

    fn lock_as(&self, name: &str, how: libc::c_int) -> Result<Lock> {
        let f = File::create(self.dir.join(format!(".lock-{name}")))?;
        // SAFETY: flock on our file (close-on-exec: a command exec'd in the sandbox drops it).
        if unsafe { libc::flock(f.as_raw_fd(), how | libc::LOCK_NB) } != 0 {
            if how == libc::LOCK_EX {
                eprintln!(
                    "cargo-for-arm: rootfs {name} is in use; waiting for the runs using it to end"
                );
            }
            // SAFETY: as above, now waiting.
            if unsafe { libc::flock(f.as_raw_fd(), how) } != 0 {
                bail!("locking rootfs {name}: {}", std::io::Error::last_os_error());
            }
        }
        Ok(Lock { _file: f })
    }

    pub fn get(&self, name: &str) -> Option<Entry> {
        let text = std::fs::read_to_string(self.entry_dir(name).join("entry.toml")).ok()?;
        toml::from_str(&text).ok()
    }

    /// The entry `name`, or `NotFound`.
    pub fn require(&self, name: &str) -> Result<Entry, StoreError> {
        self.get(name)
            .ok_or_else(|| StoreError::NotFound(name.to_string()))
    }

    /// `AlreadyPresent` when there is an entry `name`.
    pub fn ensure_absent(&self, name: &str) -> Result<(), StoreError> {
        match self.get(name) {
            Some(_) => Err(StoreError::AlreadyPresent(name.to_string())),
            None => Ok(()),
        }
    }

    pub fn list(&self) -> Result<Vec<Entry>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            if let Some(entry) = self.get(&name) {
                out.push(entry);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Take entry `name` out of the store: gone at once (a rename), then deleted at leisure.
    /// The caller holds the lock.
    pub fn remove(&self, name: &str) -> Result<()> {
        let dir = self.entry_dir(name);
        if !dir.exists() {
            return Err(StoreError::NotFound(name.to_string()).into());
        }
        let trash = self.tmp_path(name, "rm");
        std::fs::rename(&dir, &trash)?;
        self.remove_tree(&trash)
    }

    /// Remove a tree that may hold files of subordinate ids or mode-000 directories.
    pub fn remove_tree(&self, path: &Path) -> Result<()> {
        if unpack::remove_tree(path).is_ok() {
            return Ok(());
        }
        // Files owned by subordinate ids: delete them as root of a user namespace.
        let (map, _) = idmap::choose(MapMode::Auto, &idmap::Sources::default())?;
        if matches!(map, IdMap::Full { .. }) {
            let code = sandbox::reexec_in_userns(
                &map,
                &["__remove-tree".into(), path.display().to_string()],
            )?;
            if code == 0 && !path.exists() {
                return Ok(());
            }
        }
        bail!(
            "could not remove {}: files in it belong to other users",
            path.display()
        )
    }

    /// Remove temporary trees of `name` left by killed runs (the caller holds the lock).
    pub fn clean_stale(&self, name: &str) -> Result<()> {
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            let file = e.file_name().to_string_lossy().into_owned();
            if is_tmp_of(name, &file) {
                self.remove_tree(&e.path())?;
            } else if is_import_of(name, &file)
                && !file.ends_with(&format!("-{}.tar.zst", std::process::id()))
            {
                // (This run's own archive is the one it is importing.)
                let _ = std::fs::remove_file(e.path());
            }
        }
        Ok(())
    }

    /// Unpack an archive into a new entry, atomically.
    pub fn add_archive(&self, name: &str, a: &ArchiveSource, quiet: bool) -> Result<Entry> {
        self.clean_stale(name)?;
        let tmp = self.tmp_dir(name);
        std::fs::create_dir_all(tmp.join("root"))?;
        let result = self
            .unpack_archive(&tmp.join("root"), a, quiet)
            .and_then(|owners| {
                let origin = Origin {
                    source: a.source,
                    sha256: a.sha256.clone(),
                    verified: a.verified && a.sha256.is_some(),
                    owners_kept: owners == Owners::Keep,
                    configured: true,
                };
                self.finish(name, &tmp, &origin, quiet)
            });
        if result.is_err() {
            let _ = self.remove_tree(&tmp);
        }
        result
    }

    /// The checked unpack of `a` into `root`: in a user namespace when owners are kept, else
    /// here. Returns whose the files are.
    fn unpack_archive(&self, root: &Path, a: &ArchiveSource, quiet: bool) -> Result<Owners> {
        let (map, _) = idmap::choose(MapMode::Auto, &idmap::Sources::default())?;
        let keep = a.owners == Owners::Keep;
        if keep && matches!(map, IdMap::Full { .. }) {
            // Inside a user namespace with the full map, the archive's owners (0–65535) are real.
            unpack_in_userns(&map, a.path, root, &a.limits, SetId::Strip)?;
            return Ok(Owners::Keep);
        }
        if !quiet && keep {
            eprintln!(
                "cargo-for-arm: note: no full id map (see 'cargo for-arm doctor'): every file of the rootfs will belong to you; the archive's owners are dropped"
            );
        }
        let opts = UnpackOptions {
            owners: Owners::Caller,
            layout: Layout::AsArchived,
            setid: SetId::Strip,
        };
        let sum = unpack::unpack(
            unpack::decompressed(a.path, &a.limits)?,
            root,
            &a.limits,
            opts,
        )
        .with_context(|| format!("unpacking {}", a.path.display()))?;
        report_summary(&sum, quiet);
        Ok(Owners::Caller)
    }

    /// Write `entry.toml` for the tree in `tmp/root` (its architecture read from /bin/sh).
    fn describe(&self, name: &str, tmp: &Path, origin: &Origin, quiet: bool) -> Result<Entry> {
        let root = tmp.join("root");
        let (arch, arch_desc) = super::detect_arch(&root)
            .with_context(|| format!("{} does not look like a root filesystem", origin.source))?;
        let host_arch = arch.runs_natively();
        if host_arch && !quiet {
            crate::ui::note(format_args!("{name} is a rootfs for this host's own architecture ({arch_desc}): it runs natively, without qemu"));
        }
        let entry = Entry {
            name: name.to_string(),
            arch: arch.to_string(),
            arch_desc,
            distro: distro(&root),
            size: tree_size(&root),
            source: origin.source.to_string(),
            verified: origin.verified,
            sha256: origin.sha256.clone(),
            created: now_utc(),
            owners_kept: origin.owners_kept,
            host_arch,
            configured: origin.configured,
        };
        std::fs::write(tmp.join("entry.toml"), toml::to_string(&entry)?)?;
        Ok(entry)
    }

    /// Complete an entry built in `tmp` (`tmp/root`): describe it and rename it into place.
    pub fn finish(&self, name: &str, tmp: &Path, origin: &Origin, quiet: bool) -> Result<Entry> {
        let entry = self.describe(name, tmp, origin, quiet)?;
        std::fs::rename(tmp, self.entry_dir(name)).with_context(|| {
            format!(
                "moving the new rootfs into {}",
                self.entry_dir(name).display()
            )
        })?;
        Ok(entry)
    }
}

/// The checked unpack of `archive` into `root`, run as root of a user namespace with `map`
/// (`__unpack`), so the archive's owners are kept. `SetId::Keep` only for the tool's own
/// snapshots.
pub fn unpack_in_userns(
    map: &IdMap,
    archive: &Path,
    root: &Path,
    limits: &Limits,
    setid: SetId,
) -> Result<()> {
    let mut args = vec![
        "__unpack".to_string(),
        archive.display().to_string(),
        root.display().to_string(),
        limits.max_bytes.to_string(),
        limits.max_entries.to_string(),
        limits.xz_memlimit.to_string(),
    ];
    if setid == SetId::Keep {
        args.push("--keep-setid".into());
    }
    if sandbox::reexec_in_userns(map, &args)? != 0 {
        bail!("unpacking {} failed (see above)", archive.display());
    }
    Ok(())
}

/// Pack the tree at `root` into `out` (`.tar.zst`, owners kept) as root of a user namespace
/// with `map` (`__pack`), where files of subordinate ids are readable.
pub fn pack_in_userns(map: &IdMap, root: &Path, out: &Path) -> Result<()> {
    let args = vec![
        "__pack".to_string(),
        root.display().to_string(),
        out.display().to_string(),
    ];
    match sandbox::reexec_in_userns(map, &args)? {
        0 => Ok(()),
        c => bail!("packing {} exited {c} (see above)", root.display()),
    }
}

/// Pack the directory tree `src` into `out` (`.tar.zst`) for an import, and say whether the
/// archive's owners are the tree's own. With the full id map the tree is read as root of a
/// user namespace, where files of subordinate ids are readable (an mmdebstrap tree has mode
/// 700 directories of _apt); the owners are kept when the tree's top directory is the user's
/// (made as the tool makes trees: root is the user) or the first subordinate id's
/// (`mmdebstrap --mode=unshare`, whose root that is: `__pack` shifts its ids back, see
/// `IdShift`). Otherwise every file becomes the user's, as without the full map, where the
/// tree is read here. What cannot be read is named.
pub fn pack_tree(src: &Path, out: &Path) -> Result<Owners> {
    let (map, _) = idmap::choose(MapMode::Auto, &idmap::Sources::default())?;
    let IdMap::Full { uid, subuid, .. } = &map else {
        unpack::pack(src, out, unpack::IdShift::NONE)?;
        return Ok(Owners::Caller);
    };
    let top = src
        .symlink_metadata()
        .with_context(|| format!("reading {}", src.display()))?
        .uid();
    pack_in_userns(&map, src, out)?;
    Ok(if top == *uid || u64::from(top) == *subuid {
        Owners::Keep
    } else {
        Owners::Caller
    })
}

/// The cache of verified `.deb`s, named by their sha256.
pub fn debs_dir() -> Result<PathBuf> {
    Ok(home()?.join("debs"))
}

pub fn report_summary(sum: &unpack::Summary, quiet: bool) {
    if quiet {
        return;
    }
    crate::ui::status(
        "Unpacked",
        format_args!("{} entries, {} bytes", sum.entries, sum.bytes),
    );
    if sum.skipped_nodes > 0 {
        eprintln!(
            "cargo-for-arm: note: skipped {} device nodes and FIFOs (the sandbox provides /dev)",
            sum.skipped_nodes
        );
    }
    if sum.stripped_setid > 0 {
        eprintln!(
            "cargo-for-arm: note: stripped setuid/setgid bits from {} files",
            sum.stripped_setid
        );
    }
}

/// PRETTY_NAME of the rootfs's os-release, read without leaving the rootfs.
fn distro(root: &Path) -> String {
    for p in ["/etc/os-release", "/usr/lib/os-release"] {
        if super::exists_in_root(root, p) {
            if let Ok(text) = super::read_in_root(root, p) {
                let text = String::from_utf8_lossy(&text);
                if let Some(v) = text.lines().find_map(|l| l.strip_prefix("PRETTY_NAME=")) {
                    return v.trim_matches('"').to_string();
                }
            }
        }
    }
    "unknown".into()
}

fn tree_size(root: &Path) -> u64 {
    fn walk(p: &Path) -> u64 {
        let Ok(md) = p.symlink_metadata() else {
            return 0;
        };
        if md.is_dir() {
            std::fs::read_dir(p)
                .map(|rd| rd.flatten().map(|e| walk(&e.path())).sum())
                .unwrap_or(0)
        } else {
            md.len()
        }
    }
    walk(root)
}

fn now_utc() -> String {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0) as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: gmtime_r fills tm.
    unsafe { libc::gmtime_r(&t, &mut tm) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec
    )
}

pub fn human_size(n: u64) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut i = 0;
    while v >= 1024.0 && i < units.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[i])
    }
}

/// Directories `.tmp-…-<pid>` (a `cargo vendor` or a build's lockfile being made) that a
/// killed run left: nobody locks them, so they go only when their process is gone and they
/// are over an hour old (a pid seen from another pid namespace may be reused; a live one is
/// never that old without its process).
fn clean_dead_tmp_dirs(dir: &Path) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(".tmp-")
            .and_then(|r| r.rsplit('-').next())
            .and_then(|p| p.parse::<i32>().ok())
            .filter(|p| *p > 0)
        else {
            continue;
        };
        let old = e
            .metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|t| t.elapsed().is_ok_and(|a| a.as_secs() > 3600));
        let gone = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None)
            == Err(nix::errno::Errno::ESRCH);
        if old && gone && e.file_type().is_ok_and(|t| t.is_dir()) {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_old_tmp_dirs_of_dead_processes_are_cleaned() {
        let d = std::env::temp_dir().join(format!("cfa-dead-tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        let dead = 4_194_000; // above any pid this test machine hands out
        assert_eq!(
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(dead), None),
            Err(nix::errno::Errno::ESRCH)
        );
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        let make = |name: &str, old: bool| {
            let p = d.join(name);
            std::fs::create_dir_all(p.join("inner")).unwrap();
            if old {
                File::open(&p).unwrap().set_modified(two_hours_ago).unwrap();
            }
            p
        };
        let gone = make(&format!(".tmp-abc-{dead}"), true);
        let young = make(&format!(".tmp-abc-{}", dead + 1), false);
        let live = make(&format!(".tmp-{}", std::process::id()), true);
        let other = make("keep-1", true);
        clean_dead_tmp_dirs(&d);
        assert!(!gone.exists());
        assert!(young.exists() && live.exists() && other.exists());
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn names() {
        assert!(check_name("bookworm-armhf").is_ok());
        assert!(check_name("../x").is_err());
        assert!(check_name(".hidden").is_err());
        assert!(check_name("").is_err());
    }

    #[test]
    fn missing_and_present_entries_are_told_apart() {
        let dir = std::env::temp_dir().join(format!("cfa-store-unit-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("here")).unwrap();
        std::fs::write(dir.join("here/entry.toml"), "name = \"here\"\n").unwrap();
        let store = Store { dir: dir.clone() };
        assert_eq!(
            store.require("gone").unwrap_err(),
            StoreError::NotFound("gone".into())
        );
        assert!(store
            .require("gone")
            .unwrap_err()
            .to_string()
            .contains("rootfs list"));
        assert!(store.ensure_absent("gone").is_ok());
        let err = store.remove("gone").unwrap_err();
        assert_eq!(
            err.downcast_ref::<StoreError>(),
            Some(&StoreError::NotFound("gone".into()))
        );
        // An unreadable entry.toml is no entry; a directory is still removed.
        assert!(store.get("here").is_none());
        store.remove("here").unwrap();
        assert!(!dir.join("here").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn temporary_trees_of_a_name_and_not_of_a_longer_one() {
        assert!(is_tmp_of("a", ".tmp-a-123"));
        assert!(is_tmp_of("a", ".tmp-a-123rm"));
        assert!(!is_tmp_of("a", ".tmp-a-b-123"));
        assert!(!is_tmp_of("a", ".tmp-a-"));
        assert!(is_tmp_of("a-b", ".tmp-a-b-123"));
        assert!(is_import_of("a", ".import-a-77.tar.zst"));
        assert!(!is_import_of("a", ".import-a-b-77.tar.zst"));
    }

    #[test]
    fn sizes() {
        assert_eq!(human_size(10), "10 B");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
