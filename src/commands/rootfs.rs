//! `cargo for-arm rootfs pull|import|list|rm|shell`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::{Network, RootfsCommand};
use crate::idmap::MapMode;
use crate::rootfs::fetch;
use crate::rootfs::store::{self, check_name, human_size, ArchiveSource, Store};
use crate::rootfs::unpack::{Limits, Owners};
use crate::sandbox::spec::{Caps, RootWrites, SpecBuilder};

#[derive(Debug, Deserialize)]
pub struct Preset {
    pub name: String,
    pub url: String,
    pub checksums: String,
    pub note: String,
}

#[derive(Deserialize)]
struct Presets {
    preset: Vec<Preset>,
}

pub fn presets() -> Vec<Preset> {
    toml::from_str::<Presets>(include_str!("presets.toml"))
        .expect("presets.toml is valid")
        .preset
}

/// A store name from an archive's file name: `alpine-minirootfs-3.20.3-armhf.tar.gz` →
/// `alpine-minirootfs-3.20.3-armhf`.
pub fn name_from(source: &str) -> String {
    let base = source
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(source);
    let mut n = base.to_string();
    for ext in [".tar.xz", ".tar.gz", ".tar.zst", ".tgz", ".txz", ".tar"] {
        if let Some(s) = n.strip_suffix(ext) {
            n = s.to_string();
            break;
        }
    }
    n.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "._-+".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

fn valid_hex(h: &str) -> Result<String> {
    let h = h.trim().to_lowercase();
    if h.len() != 64 || !h.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("--sha256 {h}: expected 64 hexadecimal digits");
    }
    Ok(h)
}

pub fn run(cmd: RootfsCommand, quiet: bool) -> Result<i32> {
    match cmd {
        RootfsCommand::Pull {
            source,
            sha256,
            checksums,
            name,
            list_presets,
            max_bytes,
            max_entries,
        } => {
            if list_presets {
                print_presets();
                return Ok(0);
            }
            let source = source
                .context("rootfs pull needs a URL, a file or a preset name (--list-presets)")?;
            let limits = Limits {
                max_bytes,
                max_entries,
                ..Limits::default()
            };
            let request = PullRequest {
                source,
                sha256,
                checksums,
                name,
            };
            pull(request, &limits, quiet)
        }
        RootfsCommand::Import { source, name } => import(&source, &name, quiet),
        RootfsCommand::Create(o) => {
            crate::rootfs::bootstrap::create(&o, quiet, &|a| crate::qemu::exec_for(a, None))
        }
        RootfsCommand::List => list(),
        RootfsCommand::Rm { name } => rm(&name, quiet),
        RootfsCommand::Shell {
            name,
            network,
            map,
            qemu,
        } => shell(&name, network, map, qemu, quiet),
    }
}

fn print_presets() {
    for p in presets() {
        println!(
            "{:<26} {}\n{:<26} {}\n{:<26} verified against {}",
            p.name, p.note, "", p.url, "", p.checksums
        );
    }
}

fn list() -> Result<i32> {
    let store = Store::open()?;
    let entries = store.list()?;
    if entries.is_empty() {
        println!(
            "no rootfs in {} (cargo for-arm rootfs pull …)",
            store.dir.display()
        );
    }
    for e in entries {
        println!(
            "{:<24} {:<30} {:<34} {:>9}  {}{}  {}",
            e.name,
            e.arch_desc,
            e.distro,
            human_size(e.size),
            if e.verified { "" } else { "UNVERIFIED " },
            e.source,
            e.created
        );
    }
    Ok(0)
}

fn rm(name: &str, quiet: bool) -> Result<i32> {
    check_name(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    store.remove(name)?;
    if !quiet {
        crate::ui::status("Removed", format_args!("rootfs {name}"));
    }
    Ok(0)
}

/// An interactive login shell in a stored rootfs, as root inside, changes kept.
fn shell(
    name: &str,
    network: Network,
    map: MapMode,
    qemu: Option<PathBuf>,
    quiet: bool,
) -> Result<i32> {
    let store = Store::open()?;
    store.require(name)?;
    let rootfs = crate::rootfs::Rootfs::open(Path::new(name))?;
    let shell = if rootfs.exists("/bin/bash") {
        "/bin/bash"
    } else {
        "/bin/sh"
    };
    let home = if rootfs.exists("/root") { "/root" } else { "/" };
    let (arch, _) = rootfs.arch()?;
    // Setting a rootfs up by hand (apt, dpkg, chown) needs root's capabilities inside the
    // user namespace (they grant nothing outside it), and the changes are kept.
    let mut root = rootfs.sandbox_root()?;
    // Changed on purpose: the one way a stored rootfs is set up by hand.
    root.writes = RootWrites::InPlace;
    let exec = crate::qemu::exec_for(arch, qemu.as_deref())?;
    let plan = SpecBuilder::new(root, exec)
        .workdir(home)
        .network(network.into())
        .map(map)
        .caps(Caps::Keep)
        .argv(vec![shell.to_string(), "-l".into()])
        .build()?;
    if !quiet {
        plan.notes.iter().for_each(crate::ui::note);
        crate::ui::say(format_args!(
            "a shell in rootfs {name}; changes are kept. Exit to leave."
        ));
    }
    let held = rootfs.mark_changed()?;
    let outcome = crate::supervise::run(&plan, Default::default());
    drop(held);
    rootfs.mark_changed()?;
    let outcome = outcome?;
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    Ok(outcome.code)
}

/// `rootfs pull` as asked: a URL, a file or a preset; a hash or a checksum list; a name.
struct PullRequest {
    source: String,
    sha256: Option<String>,
    checksums: Option<String>,
    name: Option<String>,
}

/// What a pull fetches: the archive (URL or file), the checksum list that names it, the
/// name in the store.
struct PullPlan {
    url_or_file: String,
    checksums: Option<String>,
    name: String,
}

impl PullPlan {
    /// A preset's URL, checksum list and name, unless given; else the source as given.
    fn new(request: &PullRequest) -> PullPlan {
        let preset = presets().into_iter().find(|p| p.name == request.source);
        let (url_or_file, checksums, default_name) = match preset {
            Some(p) => (
                p.url,
                request.checksums.clone().or(Some(p.checksums)),
                p.name,
            ),
            None => (
                request.source.clone(),
                request.checksums.clone(),
                name_from(&request.source),
            ),
        };
        PullPlan {
            url_or_file,
            checksums,
            name: request.name.clone().unwrap_or(default_name),
        }
    }

    /// The archive's file name, as checksum lists name it.
    fn file_name(&self) -> &str {
        self.url_or_file
            .rsplit('/')
            .next()
            .unwrap_or(&self.url_or_file)
    }
}

/// The archive to unpack: a download (deleted once used) or the user's own file.
struct Archive {
    path: PathBuf,
    downloaded: bool,
}

fn pull(request: PullRequest, limits: &Limits, quiet: bool) -> Result<i32> {
    let plan = PullPlan::new(&request);
    let name = &plan.name;
    check_name(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    if store.get(name).is_some() {
        if !quiet {
            crate::ui::status(
                "Present",
                format_args!("rootfs {name} is already in the store"),
            );
        }
        return Ok(0);
    }
    let client = if is_url(&plan.url_or_file) || plan.checksums.as_deref().is_some_and(is_url) {
        Some(fetch::client()?)
    } else {
        None
    };
    let expected = expected_sha256(request.sha256, &plan, client.as_ref())?;
    let archive = obtain(&store, &plan, client.as_ref(), quiet)?;
    drop(client);
    check_sha256(&archive, expected.as_ref(), plan.file_name(), quiet)?;
    let source = ArchiveSource {
        path: &archive.path,
        source: &plan.url_or_file,
        verified: expected.as_ref().is_some_and(|e| e.trusted),
        sha256: expected.map(|e| e.sha256),
        limits: *limits,
        owners: Owners::Keep,
    };
    let entry = store.add_archive(name, &source, quiet)?;
    if archive.downloaded {
        fetch::discard(&archive.path);
    }
    if !quiet {
        eprintln!(
            "       Added rootfs {} ({}, {}, {})",
            entry.name,
            entry.arch_desc,
            entry.distro,
            human_size(entry.size)
        );
    }
    Ok(0)
}

/// The sha256 an archive must have, and whether it came through a trusted channel.
struct Expected {
    sha256: String,
    /// The user's `--sha256`, or a checksum list over https or from a local file. A list
    /// fetched over plain HTTP (typically from the same server as the archive) is no proof:
    /// whoever can change the archive in transit can change the list too.
    trusted: bool,
    /// Where it came from, for messages.
    from: String,
}

/// The sha256 the archive must have: `--sha256`, else its line in the checksum list.
fn expected_sha256(
    sha256: Option<String>,
    plan: &PullPlan,
    client: Option<&reqwest::blocking::Client>,
) -> Result<Option<Expected>> {
    match (sha256, &plan.checksums) {
        (Some(h), _) => Ok(Some(Expected {
            sha256: valid_hex(&h)?,
            trusted: true,
            from: "--sha256".into(),
        })),
        (None, Some(list)) => {
            let text = fetch::fetch_text(client, list)?;
            let file_name = plan.file_name();
            let found = fetch::find_checksum(&text, file_name)
                .with_context(|| format!("{list} lists no sha256 for {file_name}"))?;
            Ok(Some(Expected {
                sha256: found,
                trusted: !list.starts_with("http://"),
                from: list.clone(),
            }))
        }
        (None, None) => Ok(None),
    }
}

/// Download the archive into the store's `downloads/`, or take the user's file.
fn obtain(
    store: &Store,
    plan: &PullPlan,
    client: Option<&reqwest::blocking::Client>,
    quiet: bool,
) -> Result<Archive> {
    let url_or_file = &plan.url_or_file;
    if is_url(url_or_file) {
        let downloads = store.dir.parent().unwrap_or(&store.dir).join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let partial = downloads.join(format!("{}.partial", plan.name));
        fetch::download(client.expect("made for URLs"), url_or_file, &partial, quiet)?;
        return Ok(Archive {
            path: partial,
            downloaded: true,
        });
    }
    let path = PathBuf::from(url_or_file);
    if !path.is_file() {
        bail!("{url_or_file} is neither a URL nor a file (presets: cargo for-arm rootfs pull --list-presets)");
    }
    Ok(Archive {
        path,
        downloaded: false,
    })
}

/// The hash of the whole file, before any byte is decompressed: a mismatching download is
/// deleted; no expected hash is a loud warning (the entry is recorded unverified).
fn check_sha256(
    archive: &Archive,
    expected: Option<&Expected>,
    file_name: &str,
    quiet: bool,
) -> Result<()> {
    let actual = fetch::sha256_file(&archive.path)?;
    match expected.map(|e| (e.sha256.as_str(), e)) {
        Some((e, _)) if e != actual => {
            if archive.downloaded {
                fetch::discard(&archive.path);
            }
            bail!(
                "sha256 mismatch for {file_name}: expected {e}, got {actual}{}",
                if archive.downloaded {
                    "; the download was deleted"
                } else {
                    ""
                }
            );
        }
        Some((_, e)) if !e.trusted => eprintln!(
            "cargo-for-arm: WARNING: {file_name} is UNVERIFIED: it matches {}, but that list came over plain HTTP, \
             which proves nothing (whoever can change the archive in transit can change the list). It is recorded \
             as unverified; pass --sha256 HEX from a trusted source, or --checksums over https.",
            e.from
        ),
        Some(_) => {
            if !quiet {
                crate::ui::status("Verified", format_args!("sha256 {actual}"));
            }
        }
        None => eprintln!(
            "cargo-for-arm: WARNING: {file_name} is UNVERIFIED: no --sha256 or --checksums was given, so nothing proves \
             this rootfs is the one its publisher made. It is recorded as unverified (sha256 {actual})."
        ),
    }
    Ok(())
}

fn import(source: &Path, name: &str, quiet: bool) -> Result<i32> {
    check_name(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    store.ensure_absent(name)?;
    let src = source
        .canonicalize()
        .with_context(|| format!("{} does not exist", source.display()))?;
    let shown = src.display().to_string();
    let mut archive = ArchiveSource {
        path: &src,
        source: &shown,
        sha256: None,
        verified: false,
        limits: Limits::default(),
        owners: Owners::Keep,
    };
    if !src.is_dir() {
        store.add_archive(name, &archive, quiet)?;
    } else {
        // Through the same checked unpacker: an archive of the directory, symlinks as links.
        let packed = store
            .dir
            .join(format!(".import-{name}-{}.tar.zst", std::process::id()));
        let result = store::pack_tree(&src, &packed).and_then(|owners| {
            archive.path = &packed;
            archive.owners = owners;
            store.add_archive(name, &archive, quiet)
        });
        let _ = std::fs::remove_file(&packed);
        result?;
    }
    if !quiet {
        crate::ui::status(
            "Imported",
            format_args!("rootfs {name} (unverified: imported by hand)"),
        );
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_are_https_with_checksums() {
        let ps = presets();
        assert!(ps.iter().any(|p| p.name == "ubuntu-24.04-armhf"));
        assert!(ps.iter().any(|p| p.name == "ubuntu-core-14.04-armhf"));
        for p in ps {
            assert!(
                p.url.starts_with("https://") && p.checksums.starts_with("https://"),
                "{}",
                p.name
            );
            check_name(&p.name).unwrap();
        }
    }

    #[test]
    fn names_from_sources() {
        assert_eq!(
            name_from("https://x/y/alpine-minirootfs-3.20.3-armhf.tar.gz"),
            "alpine-minirootfs-3.20.3-armhf"
        );
        assert_eq!(name_from("/tmp/my rootfs.tar.xz"), "my-rootfs");
    }
}
