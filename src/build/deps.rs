//! Stage 4, the dependencies: fetched natively on the host (`cargo vendor`, cached by the
//! lockfile's hash) so that cargo in the sandbox runs offline, in an empty network namespace;
//! a missing lockfile is resolved for the rustc that will build (asked once, cached where no
//! sandbox can write). Without a host cargo, cargo in the sandbox fetches with the sparse
//! protocol (network on).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use super::{Job, Prepared, GUEST_VENDOR};
use crate::sandbox::spec::{Access, Bind, Network};
use crate::{supervise, ui};

/// Where the rustc probe writes its answer inside its sandbox.
const GUEST_PROBE: &str = "/run/cargo-for-arm/probe";

/// Give the build its dependencies: bind the vendored crates (or turn the network on) and
/// write the cargo config of the build's cargo home.
pub fn provide(job: &Job, p: &mut Prepared) -> Result<()> {
    // The compile cache's opt-in (--cache-network) may have shared the host's network.
    let mut network = match p.builder.network_so_far() {
        Network::Host => Network::Host,
        Network::None => job.opts.network,
    };
    let mut config = String::new();
    if job.project.host_cargo {
        let lock = std::fs::read_to_string(job.project.root.join("Cargo.lock")).ok();
        let rootfs_rustc = rootfs_rustc_builds(p);
        let info = match lock.as_deref() {
            Some(l) if lockfile_version(l) != Some(4) && !rootfs_rustc => None,
            // Only to check a lockfile cargo can read against the rustc: a rootfs whose rustc
            // does not answer is left to cargo inside, which says so in its own words.
            Some(l) if lockfile_version(l) != Some(4) => rustc_probe(job, p).ok(),
            _ => Some(rustc_probe(job, p)?),
        };
        let locked = locked(&job.opts.cargo_args);
        let root = &job.project.root;
        let generated = resolve_lockfile(root, info.as_ref(), job.opts.offline)?;
        // A lockfile of the user's, for the rootfs's older rustc: one it can build, of the
        // build's own, bound over Cargo.lock in the sandbox (the user's file is not touched).
        let build_lock = match (&info, lock.is_some() && !generated) {
            (Some(info), true) if rootfs_rustc => {
                compat_lockfile(root, &job.home, info, locked, job.opts.offline, job.quiet)?
            }
            _ => None,
        };
        let (dir, cfg) = vendor(root, &job.home, build_lock.as_deref(), job.opts.offline)?;
        if let Some(l) = &build_lock {
            p.builder =
                p.builder
                    .clone()
                    .bind(Bind::new(l, root.join("Cargo.lock"), Access::ReadOnly));
        }
        p.builder = p
            .builder
            .clone()
            .bind(Bind::new(dir, GUEST_VENDOR, Access::ReadOnly));
        config = cfg;
        config.push_str("\n[net]\noffline = true\n");
    } else {
        if !job.quiet {
            ui::note("the host has no cargo: dependencies are fetched inside the sandbox with the sparse protocol (network on)");
        }
        network = Network::Host;
        config.push_str("[registries.crates-io]\nprotocol = \"sparse\"\n");
    }
    // Our own CARGO_HOME: never the user's ~/.cargo (its credentials stay out of reach).
    std::fs::write(job.cargo_home.join("config.toml"), &config)?;
    p.builder = p.builder.clone().network(network);
    if network == Network::None {
        p.builder = p.builder.clone().env("CARGO_NET_OFFLINE", "true");
    }
    Ok(())
}

/// The dependencies of a build without a sandbox (isolation rung 3): `cargo vendor` as for a
/// sandbox, resolved by the host's own cargo for its own rustc (the one that builds), and the
/// cargo config pointing at the vendor directory's host path.
pub fn vendor_on_host(job: &Job) -> Result<(PathBuf, String)> {
    resolve_lockfile(&job.project.root, None, job.opts.offline)?;
    let (dir, cfg) = vendor(&job.project.root, &job.home, None, job.opts.offline)?;
    let cfg = cfg.replace(GUEST_VENDOR, &dir.to_string_lossy());
    Ok((dir, cfg))
}

/// What the rustc that builds says of itself (`rustc -vV`), and a script that says the same,
/// for the host cargo's resolver.
#[derive(Debug, Clone)]
pub struct RustcInfo {
    pub version: (u32, u32),
    pub answer_script: PathBuf,
}

pub fn parse_rustc_release(vv: &str) -> Option<(u32, u32)> {
    let release = vv.lines().find_map(|l| l.strip_prefix("release: "))?;
    let mut it = release.trim().split('.');
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

pub fn lockfile_version(text: &str) -> Option<u32> {
    text.lines()
        .find_map(|l| l.strip_prefix("version = "))
        .and_then(|v| v.trim().parse().ok())
}

pub fn set_lockfile_version(text: &str, v: u32) -> String {
    let mut done = false;
    text.lines()
        .map(|l| {
            if !done && l.starts_with("version = ") {
                done = true;
                format!("version = {v}")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// Ask the rustc of the build's sandbox for `-vV` once (an emulated run in emulate mode);
/// the answer is cached per rootfs, PATH and binds in the host-only cache (`<home>/host`), which no
/// sandbox is given. What the sandbox wrote is read without following links, bounded, and
/// checked line by line before a script that repeats it is written.
fn rustc_probe(job: &Job, p: &Prepared) -> Result<RustcInfo> {
    let path = p
        .builder
        .env_so_far()
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    // Keyed by what decides which rustc answers: the root, PATH, and the tools bound in (a
    // rustup toolchain, the target std: read-only, at a path of their own; not the project,
    // nor this build's own cargo home, which would make every build ask again).
    let mut h = Sha256::new();
    h.update(p.builder.root().path.as_os_str().as_encoded_bytes());
    h.update(b"\0");
    h.update(path.as_bytes());
    let tools = p.builder.binds_so_far().iter();
    for b in tools.filter(|b| b.readonly() && b.guest != b.host) {
        h.update(b"\0");
        h.update(b.host.as_os_str().as_encoded_bytes());
        h.update(b"\0");
        h.update(b.guest.as_os_str().as_encoded_bytes());
    }
    let key = crate::rootfs::fetch::hex(&h.finalize()[..6]);
    let host = job.home.join("host");
    std::fs::create_dir_all(&host)?;
    let cached = host.join(format!("rustc-vV-{key}.txt"));
    let vv = match std::fs::read_to_string(&cached) {
        Ok(vv) => vv,
        Err(_) => {
            let vv = ask_rustc(job, p)?;
            std::fs::write(&cached, &vv)?;
            vv
        }
    };
    let version = parse_rustc_release(&vv)
        .with_context(|| format!("unexpected `rustc -vV` output in the rootfs: {vv}"))?;
    let script = host.join(format!("rustc-answer-{key}.sh"));
    let quoted: Vec<String> = vv
        .lines()
        .map(|l| format!("'{}'", l.replace('\'', "'\\''")))
        .collect();
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n# Answers like the rustc of the build, for the host cargo's resolver.\nprintf '%s\\n' {}\n",
            quoted.join(" ")
        ),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(RustcInfo {
        version,
        answer_script: script,
    })
}

/// Run `rustc -vV` in the build's sandbox (no network), writing into a fresh directory of
/// its own, and return the answer if every line is plain printable text.
fn ask_rustc(job: &Job, p: &Prepared) -> Result<String> {
    let dir = job.run_dir.0.join("probe");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let spec = p
        .builder
        .clone()
        .bind(Bind::new(&dir, GUEST_PROBE, Access::ReadWrite))
        .network(Network::None)
        .workdir("/")
        .argv(vec![
            "sh".into(),
            "-c".into(),
            format!("rustc -vV > {GUEST_PROBE}/rustc-vV.txt"),
        ])
        .build()?;
    let o = supervise::run(&spec, supervise::Supervision::default())?;
    let answer = read_answer(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    if o.code != 0 {
        bail!(
            "the rootfs has no working rustc (`rustc -vV` exited {})",
            o.code
        );
    }
    answer
}

fn read_answer(dir: &Path) -> Result<String> {
    let d = crate::hostfs::open_dir(dir, Path::new(""))?;
    let data = crate::hostfs::read_regular(&d, Path::new("rustc-vV.txt"), 64 << 10)
        .context("reading the answer of rustc -vV")?;
    let text = String::from_utf8_lossy(&data).into_owned();
    let plain = |l: &str| l.chars().all(|c| (' '..='~').contains(&c));
    if !text.lines().all(plain) || parse_rustc_release(&text).is_none() {
        bail!("unexpected `rustc -vV` output in the rootfs: {text:?}");
    }
    Ok(text)
}

/// Resolve a missing lockfile for the rustc that builds, not the host's: with the
/// resolver's rust-version fallback and a `rustc` that answers `-vV` as that one does, an old
/// rootfs cargo (Debian 12's 1.63) gets dependency versions it can build.
fn resolve_lockfile(root: &Path, rustc: Option<&RustcInfo>, offline: bool) -> Result<bool> {
    let lock = root.join("Cargo.lock");
    if lock.is_file() {
        return Ok(false);
    }
    let mut cmd = Command::new("cargo");
    cmd.args(["generate-lockfile", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(offline.then_some("--offline"))
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback");
    if let Some(info) = rustc {
        answer_as(&mut cmd, info);
    }
    let st = cmd.status().context("running cargo generate-lockfile")?;
    if !st.success() {
        bail!("cargo generate-lockfile failed in {}", root.display());
    }
    let text = std::fs::read_to_string(&lock)?;
    if rustc.is_some_and(|i| i.version < (1, 78)) && lockfile_version(&text) == Some(4) {
        // Freshly generated for a registry-only (or plain git) project, versions 3 and 4
        // differ only in this line.
        std::fs::write(&lock, set_lockfile_version(&text, 3))?;
    }
    Ok(true)
}

/// The host cargo asks `info`'s answer script instead of a rustc: it resolves for the rustc
/// that builds. A wrapper of the user's (environment or cargo config: an empty value
/// overrides both) would run instead of it.
fn answer_as(cmd: &mut Command, info: &RustcInfo) {
    cmd.env("RUSTC", &info.answer_script)
        .env("RUSTC_WRAPPER", "")
        .env("RUSTC_WORKSPACE_WRAPPER", "");
}

/// `--locked` or `--frozen` among cargo's arguments: the lockfile must not change.
pub fn locked(args: &[String]) -> bool {
    args.iter()
        .take_while(|a| *a != "--")
        .any(|a| a == "--locked" || a == "--frozen")
}

/// Whether the rustc that builds is the rootfs's own (emulation, or native mode with the
/// tools rootfs's Debian rustc) rather than the user's toolchain: native mode binds the ARM
/// rootfs at `native::GUEST_SYSROOT`, and puts a rustup toolchain first on PATH at
/// `native::GUEST_RUST`.
fn rootfs_rustc_builds(p: &Prepared) -> bool {
    let native = p
        .builder
        .binds_so_far()
        .iter()
        .any(|b| b.guest == Path::new(super::native::GUEST_SYSROOT));
    if !native {
        return true;
    }
    let path = p.builder.env_so_far().iter().find(|(k, _)| k == "PATH");
    // Any entry of PATH: the compile cache puts its wrappers' directory first.
    !path.is_some_and(|(_, v)| {
        v.split(':')
            .any(|e| Path::new(e).starts_with(super::native::GUEST_RUST))
    })
}

/// A locked package too new for the rustc that builds, as the host cargo's resolver said it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooNew {
    pub name: String,
    pub locked: String,
    pub compatible: String,
    /// "1.68": the rustc the locked version requires.
    pub requires: String,
}

/// `Downgrading itoa v1.0.19 -> v1.0.15 (available: v1.0.19, requires Rust 1.68)` lines of
/// `cargo update --dry-run` under the rust-version-aware resolver.
pub fn parse_downgrades(out: &str) -> Vec<TooNew> {
    out.lines()
        .filter_map(|l| {
            let rest = l.trim_start().strip_prefix("Downgrading ")?;
            let mut w = rest.split_whitespace();
            let name = w.next()?.to_string();
            let locked = w.next()?.trim_start_matches('v').to_string();
            (w.next()? == "->").then_some(())?;
            let compatible = w.next()?.trim_start_matches('v').to_string();
            let requires = rest
                .split("requires Rust ")
                .nth(1)?
                .trim_end_matches(')')
                .trim()
                .to_string();
            Some(TooNew {
                name,
                locked,
                compatible,
                requires,
            })
        })
        .collect()
}

/// The key of a build's own lockfile: the user's lockfile, the manifest and the rustc it is
/// resolved for.
fn lock_key(root: &Path, text: &[u8], info: &RustcInfo) -> Result<String> {
    let mut h = Sha256::new();
    h.update(text);
    h.update(b"\0");
    h.update(std::fs::read(root.join("Cargo.toml")).unwrap_or_default());
    h.update(b"\0");
    h.update(std::fs::read(&info.answer_script)?);
    Ok(crate::rootfs::fetch::hex(&h.finalize()[..12]))
}

/// `cargo update -p NAME@VERSION …` of the packages too new for `info`'s rustc, into the
/// lockfile `tmp` (the user's is not touched), by the host's cargo asking that rustc.
fn update_into(
    root: &Path,
    tmp: &Path,
    too_new: &[TooNew],
    info: &RustcInfo,
    offline: bool,
) -> Result<std::process::Output> {
    let mut cmd = Command::new("cargo");
    cmd.args(["-Zlockfile-path", "update", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(offline.then_some("--offline"))
        .arg("--config")
        .arg(format!(
            "resolver.lockfile-path={}",
            toml::Value::String(tmp.to_string_lossy().into_owned())
        ))
        // The lockfile path is an unstable cargo option: allowed on a stable host cargo.
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
        .env("CARGO_TERM_COLOR", "never");
    for t in too_new {
        cmd.arg("-p").arg(format!("{}@{}", t.name, t.locked));
    }
    answer_as(&mut cmd, info);
    cmd.output().context("running cargo update")
}

/// The user's Cargo.lock for the rootfs's rustc `info`: `None` when it builds as it is; else
/// a lockfile of the build's own in the host-only cache (`<home>/host/locks`), with only the
/// packages too new for that rustc moved to the newest versions it builds (the rest as the
/// user locked them), in a lockfile format its cargo reads. The user's file is never written.
/// Under `--locked`/`--frozen` nothing is re-resolved: the packages and the fix are named.
fn compat_lockfile(
    root: &Path,
    home: &Path,
    info: &RustcInfo,
    locked: bool,
    offline: bool,
    quiet: bool,
) -> Result<Option<PathBuf>> {
    let user_lock = root.join("Cargo.lock");
    let text = std::fs::read(&user_lock)?;
    let key = lock_key(root, &text, info)?;
    let dir = home.join("host").join("locks");
    std::fs::create_dir_all(&dir)?;
    let ok_mark = dir.join(format!("{key}.ok"));
    // cargo takes a lockfile path only if the file is named Cargo.lock.
    let built_dir = dir.join(&key);
    let built = built_dir.join("Cargo.lock");
    if ok_mark.is_file() {
        return Ok(None);
    }
    if built.is_file() && !locked {
        return Ok(Some(built));
    }
    let rustc = format!("{}.{}", info.version.0, info.version.1);
    let Some(too_new) = too_new_for(root, &user_lock, info, offline, quiet)? else {
        return Ok(None);
    };
    let v4 = lockfile_version(&String::from_utf8_lossy(&text)) == Some(4) && info.version < (1, 78);
    if too_new.is_empty() && !v4 {
        std::fs::write(&ok_mark, "")?;
        return Ok(None);
    }
    let named: Vec<String> = too_new
        .iter()
        .map(|t| format!("{} {} requires rustc {}", t.name, t.locked, t.requires))
        .collect();
    if !too_new.is_empty() && locked {
        bail!(
            "{}: {}, but the rootfs's rustc is {rustc}, and --locked/--frozen forbid re-resolving. \
             Drop --locked (the build then uses a lockfile resolved for rustc {rustc}, and your \
             Cargo.lock stays as it is), or use a rootfs with a newer Rust: --rootfs of Debian 13 \
             (cargo for-arm rootfs create NAME --suite trixie --arch ARCH --include cargo: rustc 1.85)",
            user_lock.display(),
            named.join(", ")
        );
    }
    let tmp_dir = dir.join(format!(".tmp-{key}-{}", std::process::id()));
    let resolved = resolve_in(&tmp_dir, root, &text, &too_new, info, offline);
    if !matches!(resolved, Ok(Ok(()))) {
        let _ = std::fs::remove_dir_all(&tmp_dir);
    }
    if let Err(cargo_said) = resolved? {
        bail!(
            "{}: {}, but the rootfs's rustc is {rustc}, and this host's cargo could not resolve a \
             lockfile of the build's own ({cargo_said}). Run `cargo update` for the packages named, or use a rootfs \
             with a newer Rust: --rootfs of Debian 13 (cargo for-arm rootfs create NAME --suite trixie \
             --arch ARCH --include cargo: rustc 1.85)",
            user_lock.display(),
            named.join(", "),
        );
    }
    // Another build may have put the same lockfile there meanwhile (same key, same text):
    // keep that one rather than removing what it is about to bind.
    if std::fs::rename(&tmp_dir, &built_dir).is_err() {
        let _ = std::fs::remove_dir_all(&tmp_dir);
        if !built.is_file() {
            bail!(
                "could not store the build's lockfile in {}",
                built_dir.display()
            );
        }
    }
    if !quiet {
        let why = match named.is_empty() {
            true => format!("lockfile version 4, which cargo {rustc} cannot read"),
            false => named.join(", "),
        };
        ui::note(format_args!(
            "{}: {why}; the rootfs's rustc is {rustc}, so this build uses a lockfile resolved for it ({}); your Cargo.lock is unchanged",
            user_lock.display(),
            built.display()
        ));
    }
    Ok(Some(built))
}

/// Which locked packages the rustc cannot build: the resolver says it, changing nothing.
/// `None` when it could not tell (no index at hand, say): the build then goes on with the
/// user's lockfile as it is, and cargo inside names a crate its rustc cannot build.
fn too_new_for(
    root: &Path,
    user_lock: &Path,
    info: &RustcInfo,
    offline: bool,
    quiet: bool,
) -> Result<Option<Vec<TooNew>>> {
    let mut cmd = Command::new("cargo");
    cmd.args(["update", "--dry-run", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(offline.then_some("--offline"))
        .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback")
        .env("CARGO_TERM_COLOR", "never");
    answer_as(&mut cmd, info);
    let out = cmd.output().context("running cargo update --dry-run")?;
    let said = String::from_utf8_lossy(&out.stderr).into_owned();
    if out.status.success() {
        return Ok(Some(parse_downgrades(&said)));
    }
    if !quiet {
        ui::warn(format_args!(
            "could not check {} against the rootfs's rustc {}.{} (cargo update --dry-run): {}",
            user_lock.display(),
            info.version.0,
            info.version.1,
            said.trim_end().lines().last().unwrap_or("")
        ));
    }
    Ok(None)
}

/// The build's own lockfile in a fresh `tmp_dir`: the user's `text` with the `too_new`
/// packages resolved again for the rustc, and version 3 for a cargo older than 1.78. The
/// inner error is what cargo said when it could not.
fn resolve_in(
    tmp_dir: &Path,
    root: &Path,
    text: &[u8],
    too_new: &[TooNew],
    info: &RustcInfo,
    offline: bool,
) -> Result<Result<(), String>> {
    let _ = std::fs::remove_dir_all(tmp_dir);
    std::fs::create_dir_all(tmp_dir)?;
    let tmp = tmp_dir.join("Cargo.lock");
    std::fs::write(&tmp, text)?;
    if !too_new.is_empty() {
        let out = update_into(root, &tmp, too_new, info, offline)?;
        let after = std::fs::read(&tmp).unwrap_or_default();
        if !out.status.success() || after == text {
            return Ok(Err(String::from_utf8_lossy(&out.stderr)
                .trim_end()
                .to_string()));
        }
    }
    let after = String::from_utf8_lossy(&std::fs::read(&tmp)?).into_owned();
    if info.version < (1, 78) && lockfile_version(&after) == Some(4) {
        std::fs::write(&tmp, set_lockfile_version(&after, 3))?;
    }
    Ok(Ok(()))
}

/// `cargo vendor` into a directory keyed by the lockfile. Returns the directory and the
/// cargo config that points cargo in the sandbox at it.
fn vendor(
    root: &Path,
    home: &Path,
    lock: Option<&Path>,
    offline: bool,
) -> Result<(PathBuf, String)> {
    let lockfile = lock.map_or_else(|| root.join("Cargo.lock"), Path::to_path_buf);
    let digest = Sha256::digest(std::fs::read(&lockfile)?);
    let key = crate::rootfs::fetch::hex(&digest[..12]);
    let base = home.join("vendor");
    let dir = base.join(&key);
    if !dir.join("config.toml").is_file() {
        vendor_into(root, &base, &dir, lock, offline)?;
    }
    let config = std::fs::read_to_string(dir.join("config.toml"))?;
    Ok((dir, config))
}

fn vendor_into(
    root: &Path,
    base: &Path,
    dir: &Path,
    lock: Option<&Path>,
    offline: bool,
) -> Result<()> {
    std::fs::create_dir_all(base)?;
    let tmp = base.join(format!(".tmp-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp)?;
    ui::status("Fetching", "dependencies natively (cargo vendor)");
    let mut cmd = Command::new("cargo");
    if let Some(l) = lock {
        // The build's own lockfile (see compat_lockfile), not the user's.
        cmd.arg("-Zlockfile-path")
            .arg("--config")
            .arg(format!(
                "resolver.lockfile-path={}",
                toml::Value::String(l.to_string_lossy().into_owned())
            ))
            .env("RUSTC_BOOTSTRAP", "1");
    }
    let out = cmd
        .args(["vendor", "--locked", "--versioned-dirs", "--manifest-path"])
        .arg(root.join("Cargo.toml"))
        .args(offline.then_some("--offline"))
        .arg(tmp.join("crates"))
        .output()
        .context("running cargo vendor")?;
    if !out.status.success() {
        let _ = std::fs::remove_dir_all(&tmp);
        bail!(
            "cargo vendor failed, the dependencies could not be fetched on the host:\n{}",
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    let config = String::from_utf8_lossy(&out.stdout).replace(
        &tmp.join("crates").to_string_lossy().into_owned(),
        &format!("{GUEST_VENDOR}/crates"),
    );
    std::fs::write(tmp.join("config.toml"), config)?;
    match std::fs::rename(&tmp, dir) {
        Ok(()) => Ok(()),
        // Another run finished the same lockfile first: use theirs.
        Err(_) if dir.join("config.toml").is_file() => {
            let _ = std::fs::remove_dir_all(&tmp);
            Ok(())
        }
        Err(e) => Err(e).with_context(|| format!("renaming into {}", dir.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustc_and_lockfile_versions() {
        let vv = "rustc 1.63.0\nbinary: rustc\nhost: armv7-unknown-linux-gnueabihf\nrelease: 1.63.0\nLLVM version: 14.0.6\n";
        assert_eq!(parse_rustc_release(vv), Some((1, 63)));
        let lock = "# This file is automatically @generated by Cargo.\nversion = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.0.0\"\n";
        assert_eq!(lockfile_version(lock), Some(4));
        let v3 = set_lockfile_version(lock, 3);
        assert_eq!(lockfile_version(&v3), Some(3));
        assert!(v3.contains("version = \"1.0.0\""));
    }

    #[test]
    fn the_resolver_names_what_is_too_new() {
        let said = "    Updating crates.io index\n     Locking 2 packages to latest Rust 1.63.0 compatible versions\n Downgrading itoa v1.0.19 -> v1.0.15 (available: v1.0.19, requires Rust 1.68)\n    Updating serde v1.0.1 -> v1.0.2\n Downgrading foo v2.0.0 -> v1.9.0\n";
        assert_eq!(
            parse_downgrades(said),
            vec![TooNew {
                name: "itoa".into(),
                locked: "1.0.19".into(),
                compatible: "1.0.15".into(),
                requires: "1.68".into(),
            }]
        );
        assert!(locked(&["--release".into(), "--locked".into()]));
        assert!(!locked(&["--".into(), "--frozen".into()]));
    }
}
