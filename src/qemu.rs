//! Finding a qemu that can serve as a binfmt_misc interpreter with the F flag: static, built
//! for this host, on a mount that allows exec.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch::{elf_info, Arch};
use crate::rootfs::debian::{self, sources, sources::Distro};
use crate::sandbox::binfmt;
use crate::sandbox::spec::Exec;

#[derive(Debug, Clone)]
pub struct Qemu {
    pub path: PathBuf,
}

/// Why no qemu could be used; `NotFound` (none anywhere) is the one a caller may answer by
/// fetching one from the host's archive.
#[derive(Debug, thiserror::Error)]
pub enum QemuError {
    #[error("no qemu for {arch}: none of {names} is on PATH (fetch one without root: cargo for-arm qemu fetch {arch}); {hint}")]
    NotFound {
        arch: Arch,
        names: String,
        hint: String,
    },
    #[error("no usable qemu for {arch}: {rejected}; {hint}")]
    NoneUsable {
        arch: Arch,
        rejected: String,
        hint: String,
    },
    /// The qemu the user named (flag or environment) cannot be used.
    #[error(transparent)]
    Named(#[from] anyhow::Error),
}

/// The oldest qemu an emulated cargo is run with when a newer one can be had: Debian 12's
/// 7.2 deadlocks under a multithreaded cargo (measured), 8 and later do not.
const CARGO_QEMU_MAJOR: u64 = 8;

/// [`exec_for`] for an emulated cargo: when the qemu found (not one named by flag or
/// environment) is older than 8, a newer one is fetched from the host's archive unless
/// fetching is forbidden, and the choice is said (and that the fetched one is old too, when
/// neither the host's release nor the archive's newer one has a newer one: [`Source::fetch`]).
pub fn exec_for_cargo(arch: Arch, flag: Option<&Path>, quiet: bool) -> Result<Exec> {
    let exec = exec_for(arch, flag)?;
    // Through the host's registration the tool's qemu is not what runs cargo.
    let Exec::Qemu {
        path,
        binfmt: binfmt::Binfmt::Private,
        ..
    } = &exec
    else {
        return Ok(exec);
    };
    let named =
        flag.is_some() || std::env::var_os(env_var_name(arch)).is_some_and(|v| !v.is_empty());
    let Some(old) = too_old_for_cargo(path).filter(|_| !named) else {
        return Ok(exec);
    };
    if !may_fetch() {
        if !quiet {
            crate::ui::warn(format_args!(
                "qemu {old} ({}) may deadlock under a multithreaded cargo; CARGO_FOR_ARM_OFFLINE forbids fetching a newer one (cargo for-arm qemu fetch {arch})",
                path.display()
            ));
        }
        return Ok(exec);
    }
    let source = Source::new(None, None, None)?;
    crate::ui::say(format_args!(
        "qemu {old} ({}) deadlocks under a multithreaded cargo; fetching {}'s newer qemu for {arch} (set CARGO_FOR_ARM_OFFLINE=1 to forbid)",
        path.display(),
        source.distro().name()
    ));
    exec_of(arch, source.fetch(arch, quiet)?)
}

/// The version of the qemu at `path`, dotted, when it is older than [`CARGO_QEMU_MAJOR`]
/// (one that does not say its version is not called old).
fn too_old_for_cargo(path: &Path) -> Option<String> {
    let version = version_of_line(&version_line(path));
    if version.first().is_none_or(|m| *m >= CARGO_QEMU_MAJOR) {
        return None;
    }
    let dotted: Vec<String> = version.iter().map(u64::to_string).collect();
    Some(dotted.join("."))
}

/// The sandbox's `Exec` for the qemu at `path`: its binfmt line, and how foreign programs
/// reach a qemu on this machine (`sandbox::binfmt::probe`: a private binfmt_misc, the
/// host's registration, or none; `CARGO_FOR_ARM_BINFMT` forces one).
fn exec_of(arch: Arch, path: PathBuf) -> Result<Exec> {
    Ok(Exec::Qemu {
        register_line: arch.binfmt_register_line(&path)?,
        path,
        binfmt: binfmt::probe(arch)?.binfmt,
    })
}

/// How a sandbox for `arch` runs its programs: natively, or through the qemu `find` picks —
/// fetched from the host's archive (Debian's or Ubuntu's), verified, when there is none
/// anywhere and fetching is allowed.
pub fn exec_for(arch: Arch, flag: Option<&Path>) -> Result<Exec> {
    if arch.runs_natively() {
        return Ok(Exec::Native);
    }
    let path_var = std::env::var("PATH").ok();
    let q = match find(arch, flag, path_var.as_deref()) {
        Ok(q) => q,
        Err(e @ QemuError::NotFound { .. }) if may_fetch() => {
            let fetched = Source::new(None, None, None).and_then(|source| {
                crate::ui::say(format_args!(
                    "no static qemu for {arch} on this machine; fetching {}'s (set CARGO_FOR_ARM_OFFLINE=1 to forbid)",
                    source.distro().name()
                ));
                source.fetch(arch, false)
            });
            Qemu {
                path: fetched.with_context(|| e.to_string())?,
            }
        }
        Err(e) => return Err(e.into()),
    };
    exec_of(arch, q.path)
}

/// `CARGO_FOR_ARM_QEMU_<ARCH>`, e.g. `CARGO_FOR_ARM_QEMU_AARCH64`.
pub fn env_var_name(arch: Arch) -> String {
    format!(
        "CARGO_FOR_ARM_QEMU_{}",
        arch.qemu_name().to_ascii_uppercase()
    )
}

fn install_hint(arch: Arch) -> String {
    format!(
        "install a static qemu for {arch}: Debian/Ubuntu 'qemu-user-static' (qemu-{a}-static) or, \
         from Debian 13 on, 'qemu-user' (its qemu-{a} is static); or unpack either package without \
         root (apt-get download qemu-user-static && dpkg-deb -x qemu-user-static_*.deb DIR) and pass \
         --qemu DIR/usr/bin/qemu-{a}-static or set {}",
        env_var_name(arch),
        a = arch.qemu_name()
    )
}

/// Find the qemu for `arch`: `--qemu`, then `CARGO_FOR_ARM_QEMU_<ARCH>`, then the newest
/// usable one of PATH (`qemu-<arch>-static`, `qemu-<arch>`) and the cache of fetched ones
/// (newer qemus are faster and fixed deadlocks of older ones). The first one named is
/// validated; one that is unusable is an error, not a reason to look further (the user named
/// it for a reason).
pub fn find(arch: Arch, flag: Option<&Path>, path_var: Option<&str>) -> Result<Qemu, QemuError> {
    if let Some(p) = flag {
        validate(p, arch)?;
        return Ok(Qemu { path: absolute(p)? });
    }
    let var = env_var_name(arch);
    if let Some(p) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        validate(&p, arch).with_context(|| format!("{var}={}", p.display()))?;
        return Ok(Qemu {
            path: absolute(&p)?,
        });
    }
    let names = [
        format!("qemu-{}-static", arch.qemu_name()),
        format!("qemu-{}", arch.qemu_name()),
    ];
    let mut rejected = Vec::new();
    let mut usable = Vec::new();
    let on_path = names.iter().flat_map(|name| {
        std::env::split_paths(path_var.unwrap_or(""))
            .map(|dir| dir.join(name))
            .collect::<Vec<_>>()
    });
    for cand in on_path.chain(cached(arch)) {
        if !cand.is_file() {
            continue;
        }
        match validate(&cand, arch) {
            // /bin/qemu-arm and /usr/bin/qemu-arm are one file on a merged-/usr host.
            Ok(()) => {
                let p = absolute(&cand)?;
                if !usable.contains(&p) {
                    usable.push(p);
                }
            }
            Err(e) => rejected.push(format!("{e:#}")),
        }
    }
    if let Some(path) = newest(usable) {
        return Ok(Qemu { path });
    }
    if rejected.is_empty() {
        return Err(QemuError::NotFound {
            arch,
            names: names.join(", "),
            hint: install_hint(arch),
        });
    }
    Err(QemuError::NoneUsable {
        arch,
        rejected: rejected.join("; "),
        hint: install_hint(arch),
    })
}

/// The candidate whose `--version` names the highest version; the first among equals (and
/// among those that do not say), so PATH order still breaks ties.
fn newest(cands: Vec<PathBuf>) -> Option<PathBuf> {
    if cands.len() < 2 {
        return cands.into_iter().next();
    }
    let mut best: Option<(Vec<u64>, PathBuf)> = None;
    for c in cands {
        let v = version_of_line(&version_line(&c));
        if best.as_ref().is_none_or(|(bv, _)| v > *bv) {
            best = Some((v, c));
        }
    }
    best.map(|(_, p)| p)
}

/// `qemu-arm version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)` → [10, 0, 13]; empty when the
/// line names no version.
pub fn version_of_line(line: &str) -> Vec<u64> {
    line.split_once(" version ")
        .and_then(|(_, r)| r.split_whitespace().next())
        .map(version_key)
        .unwrap_or_default()
}

fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize()
        .with_context(|| format!("resolving {}", p.display()))
}

/// A qemu usable with binfmt F: exists, is an ELF for this host, has no PT_INTERP (a dynamic
/// qemu cannot find its libraries once the root is the ARM rootfs), and is not on a noexec mount.
pub fn validate(path: &Path, arch: Arch) -> Result<()> {
    let data = std::fs::read(path).with_context(|| {
        format!(
            "qemu {} cannot be read; {}",
            path.display(),
            install_hint(arch)
        )
    })?;
    let info = elf_info(&data)
        .with_context(|| format!("qemu {} is not an ELF program", path.display()))?;
    let host = Arch::host();
    if info.arch != Some(host) {
        bail!(
            "qemu {} is built for {} but this host is {host}; {}",
            path.display(),
            info.describe(),
            install_hint(arch)
        );
    }
    if let Some(interp) = info.interpreter {
        bail!(
            "qemu {} is dynamically linked (needs {interp}), so it cannot start once the ARM rootfs \
             is the root; use a static build: {}",
            path.display(),
            install_hint(arch)
        );
    }
    let st =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) {
        bail!(
            "qemu {} lies on a noexec mount and cannot be executed; copy it to a filesystem that allows exec",
            path.display()
        );
    }
    Ok(())
}

/// `$CARGO_FOR_ARM_HOME/qemu/<version>/qemu-<arch>`: fetched qemus, read-only.
pub fn cache_dir() -> Result<PathBuf> {
    Ok(crate::rootfs::store::home()?.join("qemu"))
}

/// The newest cached qemu for `arch`, if any.
pub fn cached(arch: Arch) -> Option<PathBuf> {
    let dir = cache_dir().ok()?;
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path().join(format!("qemu-{}", arch.qemu_name())))
        .filter(|p| p.is_file())
        .collect();
    found.sort_by_key(|p| {
        version_key(
            &p.parent()
                .unwrap_or(p)
                .file_name()
                .unwrap_or_default()
                .to_string_lossy(),
        )
    });
    found.pop()
}

/// The release a suite belongs to: `jammy` of `jammy-updates`.
fn release_of(suite: &str) -> &str {
    suite.strip_suffix("-updates").unwrap_or(suite)
}

/// Debian versions like `1:10.0.13+ds-0+deb13u1` as comparable numbers.
fn version_key(v: &str) -> Vec<u64> {
    let v = v.split_once(':').map_or(v, |(_, r)| r);
    v.split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap_or(0))
        .collect()
}

/// Whether cargo-for-arm may fetch a qemu on its own (`CARGO_FOR_ARM_OFFLINE=1` forbids it).
pub fn may_fetch() -> bool {
    std::env::var("CARGO_FOR_ARM_OFFLINE").map_or(true, |v| v.is_empty() || v == "0")
}

fn host_deb_arch() -> Result<&'static str> {
    match Arch::host() {
        a @ (Arch::X86_64 | Arch::Aarch64) => Ok(a.debian_name("")),
        a => bail!("fetching qemu for a {a} host is not supported; install a static qemu"),
    }
}

/// Fetch a static qemu for `arch` (for this host) from the archive of the host's own
/// architecture — Debian's or Ubuntu's, see [`Source`] — verified through the archive's
/// signed chain, and keep only `qemu-<arch>`, read-only, in the cache.
pub fn fetch(
    arch: Arch,
    suite: Option<&str>,
    mirror: Option<&str>,
    keyring: Option<&Path>,
    quiet: bool,
) -> Result<PathBuf> {
    Source::new(suite, mirror, keyring)?.fetch(arch, quiet)
}

/// Where a static qemu is fetched from: the archive of the host's architecture (`--mirror`,
/// `CARGO_FOR_ARM_MIRROR`, the config file, else the host's apt sources), the keyring that
/// proves it, and where in it a static qemu is.
struct Source {
    mirror: sources::Mirror,
    keyring: PathBuf,
    host: &'static str,
    /// In the order tried.
    suites: Vec<String>,
    /// Debian's qemu is in main; Ubuntu's qemu-user-static is in universe.
    components: &'static [&'static str],
    /// In the order tried: Debian 13's qemu-user is static (qemu 10), Debian 12's and
    /// Ubuntu's qemu-user is not, their qemu-user-static is.
    packages: &'static [&'static str],
}

impl Source {
    fn new(suite: Option<&str>, mirror: Option<&str>, keyring: Option<&Path>) -> Result<Source> {
        let host = host_deb_arch()?;
        let mirror = sources::mirror_for(host, mirror)?;
        let keyring = sources::keyring_for(keyring, mirror.distro)?;
        let ubuntu = mirror.distro == Some(Distro::Ubuntu);
        let suites = match (suite, ubuntu) {
            (Some(s), _) => vec![s.to_string()],
            // The host's own release, its updates first; another machine's Ubuntu mirror
            // (a config on a non-Ubuntu host) gets the LTS the rootfs defaults to. A host
            // release older than that LTS (22.04's qemu is 6.2) goes on to the LTS when its
            // own qemu is too old for a cargo: a static qemu runs on any release.
            (None, true) => {
                let s = sources::ubuntu_host_suite()
                    .unwrap_or_else(|| sources::UBUNTU_SUITE.to_string());
                let mut suites = vec![format!("{s}-updates"), s.clone()];
                if s != sources::UBUNTU_SUITE {
                    let lts = sources::UBUNTU_SUITE;
                    suites.extend([format!("{lts}-updates"), lts.to_string()]);
                }
                suites
            }
            // Debian 13's qemu-user is static and qemu 10; Debian 12's qemu-user-static is 7.2.
            (None, false) => vec!["trixie".into(), "bookworm".into()],
        };
        let (components, packages): (&[&str], &[&str]) = if ubuntu {
            (&["main", "universe"], &["qemu-user-static", "qemu-user"])
        } else {
            (&["main"], &["qemu-user", "qemu-user-static"])
        };
        Ok(Source {
            mirror,
            keyring,
            host,
            suites,
            components,
            packages,
        })
    }

    fn distro(&self) -> Distro {
        self.mirror.distro.unwrap_or(Distro::Debian)
    }

    /// A suite of this archive whose static qemu is 8 or newer.
    fn newer_suite(&self) -> &'static str {
        match self.distro() {
            Distro::Ubuntu => sources::UBUNTU_SUITE,
            Distro::Debian => "trixie",
        }
    }

    /// The first suite that has a usable static qemu for `arch` of 8 or newer. A suite whose
    /// package is older than 8 (by its version in the index, so it is not downloaded) is kept
    /// while a later release is tried (the other suites of its own release are skipped: they
    /// carry the same qemu or an older one), and is fetched, said to be old, when no later
    /// suite has a newer one.
    fn fetch(&self, arch: Arch, quiet: bool) -> Result<PathBuf> {
        let client = crate::rootfs::fetch::client()?;
        let mut tried = Vec::new();
        let mut old: Option<&str> = None;
        for (i, s) in self.suites.iter().enumerate() {
            if old.is_some_and(|o| release_of(o) == release_of(s)) {
                continue;
            }
            let later = self.suites[i + 1..]
                .iter()
                .any(|l| release_of(l) != release_of(s));
            match self.fetch_from(&client, s, arch, quiet, old.is_none() && later) {
                Ok(None) => old = Some(s),
                Ok(Some(p)) => {
                    self.warn_if_old(&p, s, arch);
                    return Ok(p);
                }
                Err(e) => {
                    if !quiet {
                        crate::ui::note(format_args!("no usable qemu from {s}: {e:#}"));
                    }
                    tried.push(format!("{s}: {e:#}"));
                }
            }
        }
        if let Some(s) = old {
            if let Some(p) = self.fetch_from(&client, s, arch, quiet, false)? {
                self.warn_if_old(&p, s, arch);
                return Ok(p);
            }
        }
        bail!(
            "could not fetch a static qemu for {arch} from {} ({}): {}; name another suite (--suite) or mirror (--mirror), or {}",
            self.mirror.url,
            self.mirror.origin,
            tried.join("; "),
            install_hint(arch)
        )
    }

    /// Say that the qemu fetched from `suite` may deadlock an emulated cargo, and how to get
    /// a newer one (a static qemu of a newer release runs on this host too).
    fn warn_if_old(&self, path: &Path, suite: &str, arch: Arch) {
        let Some(old) = too_old_for_cargo(path) else {
            return;
        };
        let newer = self.newer_suite();
        crate::ui::warn(format_args!(
            "qemu {old} from {} {suite} is older than {CARGO_QEMU_MAJOR}: an emulated cargo (build --mode emulate) may deadlock under it; fetch {}'s newer static qemu, which runs on this host too: cargo for-arm qemu fetch {arch} --suite {newer}",
            self.distro().name(),
            self.distro().name()
        ));
    }

    /// The packages of `suite` in every component of [`Source::components`] it lists.
    fn index(
        &self,
        client: &reqwest::blocking::Client,
        suite: &debian::Suite,
    ) -> Result<Vec<debian::Stanza>> {
        let host = self.host;
        let listed: Vec<&str> = self
            .components
            .iter()
            .copied()
            .filter(|c| suite.lists(&format!("{c}/binary-{host}/Packages.xz")))
            .collect();
        if listed.is_empty() {
            bail!(
                "{} of {} lists no {}/binary-{host}/Packages.xz: is {} the {} archive of {host} (--mirror)?",
                suite.name,
                self.mirror.url,
                self.components.join(" or "),
                self.mirror.url,
                self.distro().name()
            );
        }
        let mut packages = Vec::new();
        for c in listed {
            packages.extend(suite.packages(client, c, host)?);
        }
        Ok(packages)
    }

    /// The qemu of `suite`, fetched, verified and kept; `None` (nothing downloaded) when
    /// `newer_only` and its package's version is older than [`CARGO_QEMU_MAJOR`].
    fn fetch_from(
        &self,
        client: &reqwest::blocking::Client,
        suite: &str,
        arch: Arch,
        quiet: bool,
        newer_only: bool,
    ) -> Result<Option<PathBuf>> {
        let (mirror, host) = (self.mirror.url.as_str(), self.host);
        let s = debian::Suite::open(client, mirror, suite, &self.keyring)?;
        let packages = self.index(client, &s)?;
        let cache = cache_dir()?;
        for pkg in self.packages {
            let Some(stanza) = packages
                .iter()
                .find(|p| p.get("Package").map(String::as_str) == Some(*pkg))
            else {
                continue;
            };
            let version = stanza.get("Version").cloned().unwrap_or_default();
            if newer_only
                && version_key(&version)
                    .first()
                    .is_some_and(|m| *m < CARGO_QEMU_MAJOR)
            {
                return Ok(None);
            }
            if !quiet {
                crate::ui::status(
                    "Fetching",
                    format_args!("{pkg} {version} ({suite}, {host}) from {mirror}, verified against its signed InRelease"),
                );
            }
            let deb = debian::fetch_deb(
                client,
                mirror,
                stanza,
                &crate::rootfs::store::home()?.join("debs"),
                quiet,
            )?;
            let dir = cache.join(version.replace(':', "_"));
            let Some(tmp) = extract_qemu(&deb, arch, &dir)? else {
                continue;
            };
            if let Err(e) = validate(&tmp, arch) {
                let _ = std::fs::remove_file(&tmp);
                if !quiet {
                    crate::ui::note(format_args!("{pkg} {version}: {e:#}"));
                }
                continue;
            }
            let dest = dir.join(format!("qemu-{}", arch.qemu_name()));
            std::fs::rename(&tmp, &dest)?;
            std::fs::write(
                dir.join(format!("qemu-{}.source", arch.qemu_name())),
                format!("{pkg} {version} from {mirror} {suite}\n"),
            )?;
            return Ok(Some(dest));
        }
        bail!(
            "{suite} has no static qemu-{} for {host} (looked for {} in {})",
            arch.qemu_name(),
            self.packages.join(", "),
            self.components.join(", ")
        )
    }
}

/// Copy `qemu-<arch>` (or `-static`) out of a .deb into a read-only temporary file of `dir`.
fn extract_qemu(deb: &Path, arch: Arch, dir: &Path) -> Result<Option<PathBuf>> {
    let wanted = [
        format!("usr/bin/qemu-{}", arch.qemu_name()),
        format!("usr/bin/qemu-{}-static", arch.qemu_name()),
    ];
    let mut tar = tar::Archive::new(debian::deb_data(deb)?);
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(
        ".tmp-qemu-{}-{}",
        arch.qemu_name(),
        std::process::id()
    ));
    for entry in tar.entries()? {
        let mut entry = entry?;
        let path = entry
            .path()?
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if wanted.contains(&path) && entry.header().entry_type().is_file() {
            let mut f = std::fs::File::create(&tmp)?;
            std::io::copy(&mut entry, &mut f)?;
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o555))?;
            return Ok(Some(tmp));
        }
    }
    Ok(None)
}

fn version_line(p: &Path) -> String {
    std::process::Command::new(p)
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .map(str::to_string)
        })
        .unwrap_or_else(|| "?".into())
}

/// `qemu list`: every qemu found, for each architecture, and whether it is usable.
pub fn list() -> Result<()> {
    let path = std::env::var("PATH").unwrap_or_default();
    for arch in [
        Arch::Arm,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::S390x,
    ] {
        let mut cands: Vec<(String, PathBuf)> = Vec::new();
        if let Some(p) = std::env::var_os(env_var_name(arch)).filter(|v| !v.is_empty()) {
            cands.push((env_var_name(arch), p.into()));
        }
        for name in [
            format!("qemu-{}-static", arch.qemu_name()),
            format!("qemu-{}", arch.qemu_name()),
        ] {
            for dir in std::env::split_paths(&path) {
                let c = dir.join(&name);
                // One line per file: /bin and /usr/bin are one directory on merged-/usr hosts.
                let real = c.canonicalize().ok();
                let seen = cands.iter().any(|(_, o)| o.canonicalize().ok() == real);
                if c.is_file() && !seen {
                    cands.push(("PATH".into(), c));
                }
            }
        }
        if let Some(c) = cached(arch) {
            cands.push(("cache".into(), c));
        }
        // The one `run` and `build` use (with no --qemu).
        let chosen = find(arch, None, Some(&path)).ok().map(|q| q.path);
        if cands.is_empty() {
            println!(
                "{:<8} none (cargo for-arm qemu fetch {})",
                arch.qemu_name(),
                arch.qemu_name()
            );
        }
        for (from, c) in cands {
            let status = match validate(&c, arch) {
                Ok(()) => version_line(&c),
                Err(e) => format!("unusable: {e:#}"),
            };
            let used = c.canonicalize().ok() == chosen && chosen.is_some();
            println!(
                "{:<8} {:<6} {}  {}{}",
                arch.qemu_name(),
                from,
                c.display(),
                status,
                if used { "  [used]" } else { "" }
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_host_binary_is_refused_with_a_fix() {
        let me = std::env::current_exe().unwrap();
        let err = format!("{:#}", validate(&me, Arch::Arm).unwrap_err());
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
    }

    #[test]
    fn missing_qemu_names_the_package() {
        let dir = std::env::temp_dir().join(format!("cfa-noqemu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = format!(
            "{:#}",
            find(Arch::Riscv64, None, Some(dir.to_str().unwrap())).unwrap_err()
        );
        assert!(err.contains("no qemu for riscv64"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn versions_from_qemu_version_lines() {
        assert_eq!(
            version_of_line("qemu-arm version 10.0.13 (Debian 1:10.0.13+ds-0+deb13u1)"),
            vec![10, 0, 13]
        );
        assert!(
            version_of_line("qemu-arm version 7.2.19 (Debian 1:7.2+dfsg-7+deb12u16)")
                < version_of_line("qemu-arm version 10.0.13")
        );
        assert!(version_of_line("qemu-arm-static: applet not found").is_empty());
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name(Arch::Aarch64), "CARGO_FOR_ARM_QEMU_AARCH64");
        assert_eq!(env_var_name(Arch::Arm), "CARGO_FOR_ARM_QEMU_ARM");
    }
}
