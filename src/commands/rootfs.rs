//! `cargo for-arm rootfs pull|import|list|rm|shell`.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use serde::Deserialize;

use crate::cli::RootfsCommand;
use crate::rootfs::store::{check_name, human_size, Store};
use crate::rootfs::{fetch, unpack::Limits};
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
                for p in presets() {
                    println!(
                        "{:<26} {}\n{:<26} {}\n{:<26} verified against {}",
                        p.name, p.note, "", p.url, "", p.checksums
                    );
                }
                return Ok(0);
            }
            let source = source
                .context("rootfs pull needs a URL, a file or a preset name (--list-presets)")?;
            let limits = Limits {
                max_bytes,
                max_entries,
                ..Limits::default()
            };
            pull(&source, sha256, checksums, name, &limits, quiet)
        }
        RootfsCommand::Import { source, name } => import(&source, &name, quiet),
        RootfsCommand::Create(o) => {
            crate::rootfs::bootstrap::create(&o, quiet, &|a| crate::qemu::exec_for(a, None))
        }
        RootfsCommand::List => {
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
        RootfsCommand::Rm { name } => {
            check_name(&name)?;
            let store = Store::open()?;
            let _lock = store.lock(&name)?;
            let dir = store.entry_dir(&name);
            if !dir.exists() {
                bail!("no rootfs named {name} in the store (cargo for-arm rootfs list)");
            }
            // Gone from the store at once (rename), then deleted at leisure.
            let trash = store
                .dir
                .join(format!(".tmp-{name}-rm{}", std::process::id()));
            std::fs::rename(&dir, &trash)?;
            store.remove_tree(&trash)?;
            if !quiet {
                eprintln!("     Removed rootfs {name}");
            }
            Ok(0)
        }
        RootfsCommand::Shell {
            name,
            network,
            map,
            qemu,
        } => {
            let store = Store::open()?;
            if store.get(&name).is_none() {
                bail!("no rootfs named {name} in the store (cargo for-arm rootfs list)");
            }
            let rootfs = crate::rootfs::Rootfs::open(Path::new(&name))?;
            let shell = if rootfs.exists("/bin/bash") {
                "/bin/bash"
            } else {
                "/bin/sh"
            };
            let home = if rootfs.exists("/root") { "/root" } else { "/" };
            let (arch, _) = rootfs.arch()?;
            // Setting a rootfs up by hand (apt, dpkg, chown) needs root's capabilities inside
            // the user namespace (they grant nothing outside it), and changes are kept.
            let mut root = rootfs.sandbox_root()?;
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
                for n in &plan.notes {
                    eprintln!("cargo-for-arm: note: {n}");
                }
                eprintln!(
                    "cargo-for-arm: a shell in rootfs {name}; changes are kept. Exit to leave."
                );
            }
            let outcome = crate::supervise::run(&plan, Default::default())?;
            if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
            }
            Ok(outcome.code)
        }
    }
}

fn pull(
    source: &str,
    sha256: Option<String>,
    checksums: Option<String>,
    name: Option<String>,
    limits: &Limits,
    quiet: bool,
) -> Result<i32> {
    let preset = presets().into_iter().find(|p| p.name == source);
    let (url_or_file, checksums, default_name) = match &preset {
        Some(p) => (
            p.url.clone(),
            checksums.or(Some(p.checksums.clone())),
            p.name.clone(),
        ),
        None => (source.to_string(), checksums, name_from(source)),
    };
    let name = name.unwrap_or(default_name);
    check_name(&name)?;
    let store = Store::open()?;
    let _lock = store.lock(&name)?;
    if store.get(&name).is_some() {
        if !quiet {
            eprintln!("    Present rootfs {name} is already in the store");
        }
        return Ok(0);
    }
    let client = if is_url(&url_or_file) || checksums.as_deref().is_some_and(is_url) {
        Some(fetch::client()?)
    } else {
        None
    };
    let file_name = url_or_file
        .rsplit('/')
        .next()
        .unwrap_or(&url_or_file)
        .to_string();
    let expected = match (sha256, &checksums) {
        (Some(h), _) => Some(valid_hex(&h)?),
        (None, Some(list)) => {
            let text = fetch::fetch_text(client.as_ref(), list)?;
            Some(
                fetch::find_checksum(&text, &file_name)
                    .with_context(|| format!("{list} lists no sha256 for {file_name}"))?,
            )
        }
        (None, None) => None,
    };
    let (archive, downloaded): (PathBuf, bool) = if is_url(&url_or_file) {
        let downloads = store.dir.parent().unwrap_or(&store.dir).join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let partial = downloads.join(format!("{name}.partial"));
        fetch::download(
            client.as_ref().expect("made for URLs"),
            &url_or_file,
            &partial,
            quiet,
        )?;
        (partial, true)
    } else {
        let p = PathBuf::from(&url_or_file);
        if !p.is_file() {
            bail!("{url_or_file} is neither a URL nor a file (presets: cargo for-arm rootfs pull --list-presets)");
        }
        (p, false)
    };
    drop(client);
    // The hash of the whole file, before any byte is decompressed.
    let actual = fetch::sha256_file(&archive)?;
    match &expected {
        Some(e) if *e != actual => {
            if downloaded {
                let _ = std::fs::remove_file(&archive);
                let _ = std::fs::remove_file(archive.with_extension("etag"));
            }
            bail!(
                "sha256 mismatch for {file_name}: expected {e}, got {actual}{}",
                if downloaded { "; the download was deleted" } else { "" }
            );
        }
        Some(_) => {
            if !quiet {
                eprintln!("    Verified sha256 {actual}");
            }
        }
        None => eprintln!(
            "cargo-for-arm: WARNING: {file_name} is UNVERIFIED: no --sha256 or --checksums was given, so nothing proves \
             this rootfs is the one its publisher made. It is recorded as unverified (sha256 {actual})."
        ),
    }
    let entry = store.add_archive(&name, &archive, &url_or_file, expected, limits, true, quiet)?;
    if downloaded {
        let _ = std::fs::remove_file(&archive);
        let _ = std::fs::remove_file(archive.with_extension("etag"));
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

fn import(source: &Path, name: &str, quiet: bool) -> Result<i32> {
    check_name(name)?;
    let store = Store::open()?;
    let _lock = store.lock(name)?;
    if store.get(name).is_some() {
        bail!(
            "a rootfs named {name} is already in the store (cargo for-arm rootfs rm {name} first)"
        );
    }
    let src = source
        .canonicalize()
        .with_context(|| format!("{} does not exist", source.display()))?;
    let limits = Limits::default();
    if src.is_dir() {
        // Through the same checked unpacker: a tar of the directory, symlinks kept as links.
        let tar_path = store
            .dir
            .join(format!(".import-{name}-{}.tar", std::process::id()));
        let result = (|| -> Result<()> {
            let mut b = tar::Builder::new(std::fs::File::create(&tar_path)?);
            b.follow_symlinks(false);
            b.append_dir_all(".", &src)
                .with_context(|| format!("reading {}", src.display()))?;
            b.into_inner()?.sync_all()?;
            store.add_archive(
                name,
                &tar_path,
                &src.display().to_string(),
                None,
                &limits,
                false,
                quiet,
            )?;
            Ok(())
        })();
        let _ = std::fs::remove_file(&tar_path);
        result?;
    } else {
        store.add_archive(
            name,
            &src,
            &src.display().to_string(),
            None,
            &limits,
            true,
            quiet,
        )?;
    }
    if !quiet {
        eprintln!("    Imported rootfs {name} (unverified: imported by hand)");
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
