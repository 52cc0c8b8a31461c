//! Where the archive of an architecture comes from, and which keyring proves it.
//!
//! Per architecture, the first of: `--mirror`, `CARGO_FOR_ARM_MIRROR`, the user's config file
//! (`mirror = "URL"`, or per architecture `mirror = "armhf=URL,amd64=URL"` or a table
//! `[mirror] armhf = "URL"`), then the host's apt configuration. On a Debian host that is the
//! first Debian entry of its sources. On an Ubuntu host, amd64 and i386 come from its main
//! archive and the other architectures from its ports archive: an entry restricted to the
//! architecture or whose URI ends in `ubuntu-ports`, else the `BaseURI-<arch>`/`BaseURI`
//! of python-apt's `Ubuntu.info` template. No host name is built in: a host whose apt names
//! none (Fedora, Arch, an Ubuntu without a ports entry) gets an error naming every way to set
//! one. The host's apt configuration is read below `CARGO_FOR_ARM_APT_ROOT` (default `/`).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};

use super::parse_stanza;
use crate::settings::{Settings, KEYRING, MIRROR};

/// The root under which the host's apt configuration, keyrings and python-apt templates are
/// read (tests point it at a fake host; a container can point it at its host's).
pub const APT_ROOT_ENV: &str = "CARGO_FOR_ARM_APT_ROOT";

/// The suite of every default Ubuntu rootfs: a fixed LTS, not the host's release, so that an
/// artifact's glibc floor does not move with the CI image.
pub const UBUNTU_SUITE: &str = "noble";

/// Architectures Ubuntu's main archive carries; the others are on its ports archive.
const UBUNTU_MAIN_ARCHES: [&str; 2] = ["amd64", "i386"];

/// The distribution an archive belongs to, as far as the configuration tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distro {
    Debian,
    Ubuntu,
}

impl Distro {
    pub fn name(self) -> &'static str {
        match self {
            Distro::Debian => "Debian",
            Distro::Ubuntu => "Ubuntu",
        }
    }

    /// The archive keyring a host of this distribution has.
    fn keyring_file(self) -> &'static str {
        match self {
            Distro::Debian => "usr/share/keyrings/debian-archive-keyring.gpg",
            Distro::Ubuntu => "usr/share/keyrings/ubuntu-archive-keyring.gpg",
        }
    }

    /// The package that installs that keyring.
    fn keyring_package(self) -> &'static str {
        match self {
            Distro::Debian => "debian-archive-keyring",
            Distro::Ubuntu => "ubuntu-keyring",
        }
    }
}

/// The archive of one architecture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mirror {
    pub url: String,
    /// `None` when a URL the user gave does not say (it is then taken as Debian's).
    pub distro: Option<Distro>,
    /// Where it was found, for messages.
    pub origin: String,
}

fn apt_root() -> PathBuf {
    std::env::var_os(APT_ROOT_ENV)
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from("/"), PathBuf::from)
}

/// The distribution a URI's last path component names (`…/debian`, `…/ubuntu-ports`).
fn distro_of_uri(uri: &str) -> Option<Distro> {
    let last = uri.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    if last.starts_with("ubuntu") {
        Some(Distro::Ubuntu)
    } else if last.starts_with("debian") {
        Some(Distro::Debian)
    } else {
        None
    }
}

fn is_ports(uri: &str) -> bool {
    uri.trim_end_matches('/').ends_with("ubuntu-ports")
}

/// `[ARCH=]URL` items, comma- or space-separated: the URL for `arch`, else the one for every
/// architecture; `None` when the value names neither.
pub fn parse_spec(raw: &str, arch: &str) -> Result<Option<String>> {
    let mut general = None;
    for item in raw.split([',', ' ', '\n', '\t']).filter(|s| !s.is_empty()) {
        let (which, url) = match item.split_once('=') {
            Some((a, u)) if !a.contains('/') && !a.contains(':') => (Some(a), u),
            _ => (None, item),
        };
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            bail!("{item:?}: a mirror is an http:// or https:// URL, optionally after ARCH= (armhf=URL)");
        }
        let url = url.trim_end_matches('/').to_string();
        match which {
            Some(a) if a == arch => return Ok(Some(url)),
            Some(_) => {}
            None => general = general.or(Some(url)),
        }
    }
    Ok(general)
}

/// The mirror the user set for `arch`: the flag, the environment, the config file, in that
/// order; a source that names only other architectures is passed over.
fn user_mirror(arch: &str, flag: Option<&str>, settings: &Settings) -> Result<Option<Mirror>> {
    let found = |raw: &str, origin: String| -> Result<Option<Mirror>> {
        let url = parse_spec(raw, arch).map_err(|e| anyhow::anyhow!("{origin}: {e:#}"))?;
        Ok(url.map(|url| Mirror {
            distro: distro_of_uri(&url),
            url,
            origin,
        }))
    };
    if let Some(f) = flag {
        if let Some(m) = found(f, MIRROR.flag.to_string())? {
            return Ok(Some(m));
        }
    }
    if let Some(v) = std::env::var(MIRROR.env).ok().filter(|v| !v.is_empty()) {
        if let Some(m) = found(&v, MIRROR.env.to_string())? {
            return Ok(Some(m));
        }
    }
    if let Some((path, table)) = settings.user_table() {
        let origin = path.display().to_string();
        match table.get(MIRROR.name) {
            Some(toml::Value::String(s)) => return found(s, origin),
            Some(toml::Value::Table(t)) => {
                let v = t.get(arch).or_else(|| t.get("default"));
                if let Some(toml::Value::String(s)) = v {
                    return found(s, format!("{origin} (mirror.{arch})"));
                }
            }
            _ => {}
        }
    }
    Ok(None)
}

/// One `deb` entry of the host's apt sources.
#[derive(Debug, Clone, PartialEq, Eq)]
struct AptEntry {
    uris: Vec<String>,
    /// `Architectures:` / `[arch=…]`, when restricted.
    arches: Option<Vec<String>>,
    signed_by: Option<String>,
    file: PathBuf,
}

impl AptEntry {
    fn distro(&self, uri: &str) -> Option<Distro> {
        distro_of_uri(uri).or_else(|| {
            let s = self.signed_by.as_deref().unwrap_or("");
            if s.contains("ubuntu") {
                Some(Distro::Ubuntu)
            } else if s.contains("debian") {
                Some(Distro::Debian)
            } else {
                None
            }
        })
    }

    fn allows(&self, arch: &str) -> bool {
        self.arches
            .as_ref()
            .is_none_or(|a| a.iter().any(|x| x == arch))
    }
}

/// The `deb` entries of the host's apt sources: deb822 `sources.list.d/*.sources` first (in
/// name order), then `sources.list` and `sources.list.d/*.list`.
fn host_entries(root: &Path) -> Vec<AptEntry> {
    let dir = root.join("etc/apt/sources.list.d");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.sort();
    let mut out = Vec::new();
    for f in files
        .iter()
        .filter(|p| p.extension().is_some_and(|x| x == "sources"))
    {
        out.extend(deb822_entries(f));
    }
    let lists = std::iter::once(root.join("etc/apt/sources.list")).chain(
        files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|x| x == "list")),
    );
    for f in lists {
        out.extend(one_line_entries(&f));
    }
    for e in &mut out {
        e.uris = e
            .uris
            .iter()
            .flat_map(|u| fetchable_uris(root, u))
            .collect();
    }
    out
}

/// The http(s) URLs an apt URI stands for: itself, or for `mirror+file:LIST` (GitHub's
/// Ubuntu runners name `/etc/apt/apt-mirrors.txt`) the URLs of that list, by their
/// `priority:N` (apt's order); none for what cannot be fetched here (`cdrom:`, `file:`, a
/// mirror list on a server).
fn fetchable_uris(root: &Path, uri: &str) -> Vec<String> {
    if uri.starts_with("http://") || uri.starts_with("https://") {
        return vec![uri.to_string()];
    }
    let Some(list) = uri.strip_prefix("mirror+file:") else {
        return Vec::new();
    };
    let text = std::fs::read_to_string(root.join(list.trim_start_matches('/'))).unwrap_or_default();
    let mut listed: Vec<(u64, String)> = text
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            let url = fields.next().filter(|u| u.starts_with("http"))?;
            let priority = fields
                .find_map(|f| f.strip_prefix("priority:"))
                .and_then(|p| p.parse().ok())
                .unwrap_or(u64::MAX);
            Some((priority, url.to_string()))
        })
        .collect();
    listed.sort_by_key(|(p, _)| *p);
    listed.into_iter().map(|(_, u)| u).collect()
}

fn deb822_entries(f: &Path) -> Vec<AptEntry> {
    let text = std::fs::read_to_string(f).unwrap_or_default();
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let fields = parse_stanza(stanza);
        let enabled = fields.get("Enabled").is_none_or(|v| v != "no");
        let is_deb = fields
            .get("Types")
            .is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        let Some(uris) = fields.get("URIs").filter(|_| enabled && is_deb) else {
            continue;
        };
        out.push(AptEntry {
            uris: uris.split_whitespace().map(str::to_string).collect(),
            arches: fields
                .get("Architectures")
                .map(|a| a.split_whitespace().map(str::to_string).collect()),
            signed_by: fields.get("Signed-By").cloned(),
            file: f.to_path_buf(),
        });
    }
    out
}

fn one_line_entries(f: &Path) -> Vec<AptEntry> {
    let text = std::fs::read_to_string(f).unwrap_or_default();
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line
            .strip_prefix("deb ")
            .or_else(|| line.strip_prefix("deb\t"))
        else {
            continue;
        };
        let rest = rest.trim_start();
        let (options, rest) = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').unwrap_or((r, "")),
            None => ("", rest),
        };
        let Some(uri) = rest.split_whitespace().next() else {
            continue;
        };
        let mut arches = None;
        let mut signed_by = None;
        for o in options.split_whitespace() {
            if let Some(a) = o.strip_prefix("arch=") {
                arches = Some(a.split(',').map(str::to_string).collect());
            } else if let Some(s) = o.strip_prefix("signed-by=") {
                signed_by = Some(s.to_string());
            }
        }
        out.push(AptEntry {
            uris: vec![uri.to_string()],
            arches,
            signed_by,
            file: f.to_path_buf(),
        });
    }
    out
}

/// The host's distribution: `ID`/`ID_LIKE` of its os-release, else that of its first apt
/// entry that tells.
fn host_distro(root: &Path, entries: &[AptEntry]) -> Option<Distro> {
    for p in ["etc/os-release", "usr/lib/os-release"] {
        let Ok(text) = std::fs::read_to_string(root.join(p)) else {
            continue;
        };
        let field = |k: &str| os_release_field(&text, k);
        let (id, like) = (field("ID="), field("ID_LIKE="));
        if id == "ubuntu" || like.split_whitespace().any(|w| w == "ubuntu") {
            return Some(Distro::Ubuntu);
        }
        if id == "debian" {
            return Some(Distro::Debian);
        }
    }
    entries
        .iter()
        .find_map(|e| e.uris.first().and_then(|u| e.distro(u)))
}

/// The value of `key` (`ID=`) in an os-release text, unquoted; empty when absent.
fn os_release_field(text: &str, key: &str) -> String {
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.trim_matches('"').to_string())
        .unwrap_or_default()
}

/// The Ubuntu release an Ubuntu host runs: `UBUNTU_CODENAME` of its os-release (a derivative
/// names its Ubuntu base there), else `VERSION_CODENAME`; `None` on any other host.
pub fn ubuntu_host_suite() -> Option<String> {
    let root = apt_root();
    if host_distro(&root, &host_entries(&root)) != Some(Distro::Ubuntu) {
        return None;
    }
    ["etc/os-release", "usr/lib/os-release"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(root.join(p)).ok())
        .flat_map(|text| {
            ["UBUNTU_CODENAME=", "VERSION_CODENAME="].map(|k| os_release_field(&text, k))
        })
        .find(|v| !v.is_empty())
}

/// The URI an Ubuntu host's python-apt template gives for `arch` (`BaseURI-<arch>:`, else
/// `BaseURI:`), from the stanza of [`UBUNTU_SUITE`] or else the first that has one.
fn ubuntu_template(root: &Path, arch: &str) -> Option<(String, PathBuf)> {
    let file = root.join("usr/share/python-apt/templates/Ubuntu.info");
    let text = std::fs::read_to_string(&file).ok()?;
    let stanzas: Vec<_> = text.split("\n\n").map(parse_stanza).collect();
    let with_base = |s: &&super::Stanza| s.contains_key("BaseURI");
    let stanza = stanzas
        .iter()
        .filter(with_base)
        .find(|s| s.get("Suite").is_some_and(|v| v == UBUNTU_SUITE))
        .or_else(|| stanzas.iter().find(with_base))?;
    let uri = stanza
        .get(&format!("BaseURI-{arch}"))
        .or_else(|| stanza.get("BaseURI"))?;
    Some((uri.trim_end_matches('/').to_string(), file))
}

fn not_security(u: &&String) -> bool {
    !u.contains("security")
}

/// The mirror of `arch` that the host's apt configuration names, if any.
fn host_mirror(root: &Path, arch: &str) -> Option<Mirror> {
    let entries = host_entries(root);
    let distro = host_distro(root, &entries);
    let origin = |f: &Path| format!("the host's apt sources ({})", f.display());
    if distro == Some(Distro::Ubuntu) {
        let main = UBUNTU_MAIN_ARCHES.contains(&arch);
        for e in entries.iter().filter(|e| e.allows(arch)) {
            let named = e.arches.is_some();
            let fits = |u: &&String| {
                if main {
                    !is_ports(u)
                } else {
                    is_ports(u) || named
                }
            };
            if let Some(u) = e.uris.iter().filter(not_security).find(fits) {
                return Some(Mirror {
                    url: u.trim_end_matches('/').to_string(),
                    distro: Some(Distro::Ubuntu),
                    origin: origin(&e.file),
                });
            }
        }
        let (url, file) = ubuntu_template(root, arch)?;
        return Some(Mirror {
            url,
            distro: Some(Distro::Ubuntu),
            origin: format!("the host's apt template {}", file.display()),
        });
    }
    // A third-party repository (Docker's `…/linux/debian`, apt.llvm.org …) names a keyring
    // of its own: the archive's entries are those signed by Debian's keyring, or by apt's
    // default keys (no Signed-By), come first; the others only when none of those serves.
    let archive = |e: &&AptEntry| {
        e.signed_by
            .as_deref()
            .is_none_or(|s| s.contains("debian-archive-keyring"))
    };
    let usable = entries.iter().filter(|e| e.allows(arch));
    for e in usable.clone().filter(archive).chain(usable) {
        let u = e.uris.iter().filter(not_security).find(|u| {
            // On a host of unknown kind, an archive that says it is Ubuntu's is passed over.
            e.distro(u) != Some(Distro::Ubuntu)
        });
        if let Some(u) = u {
            return Some(Mirror {
                url: u.trim_end_matches('/').to_string(),
                distro: Some(Distro::Debian),
                origin: origin(&e.file),
            });
        }
    }
    None
}

/// What to do when no mirror is known: every way to set one, the keyring, and the
/// alternatives that need none.
fn no_mirror_help(arch: &str, root: &Path) -> String {
    let ubuntu = host_distro(root, &host_entries(root)) == Some(Distro::Ubuntu);
    let why = if ubuntu {
        format!(
            "this Ubuntu host's apt configuration names no archive for {arch} (armhf and arm64 are on Ubuntu's \
             ports archive: an apt entry for it, or python-apt's Ubuntu.info template, would name it)"
        )
    } else {
        format!(
            "the host's apt configuration (in {}) names none",
            root.join("etc/apt").display()
        )
    };
    format!(
        "no mirror for {arch}: {why}. Set one:\n  \
         --mirror URL (or --mirror {arch}=URL for this architecture only)\n  \
         CARGO_FOR_ARM_MIRROR=URL (or {arch}=URL,amd64=URL)\n  \
         mirror = \"URL\" in ~/.config/cargo-for-arm/config.toml (or a [mirror] table: {arch} = \"URL\")\n\
         where URL is a Debian mirror's /debian directory (or an Ubuntu ports archive for {arch}). \
         A host without Debian's keyring (Fedora, Arch) also needs --keyring FILE (or CARGO_FOR_ARM_KEYRING, \
         keyring = \"FILE\"): the archive's signing keys, e.g. from the debian-archive-keyring package.\n\
         Or use a rootfs that needs no mirror: cargo for-arm rootfs pull --list-presets (a verified download), \
         or cargo for-arm rootfs import DIR|ARCHIVE --name NAME (a tree you made)"
    )
}

/// The mirror of `arch` (a Debian architecture name: armhf, arm64, amd64 …).
pub fn mirror_for(arch: &str, flag: Option<&str>) -> Result<Mirror> {
    let settings = Settings::user()?;
    if let Some(m) = user_mirror(arch, flag, &settings)? {
        return Ok(m);
    }
    let root = apt_root();
    match host_mirror(&root, arch) {
        Some(m) => Ok(m),
        None => bail!("{}", no_mirror_help(arch, &root)),
    }
}

/// The keyring that proves the archive of `distro`: `--keyring`, `CARGO_FOR_ARM_KEYRING`,
/// `keyring = "FILE"` in the user's config file, else that distribution's archive keyring on
/// the host (Debian's when the mirror does not say).
pub fn keyring_for(flag: Option<&Path>, distro: Option<Distro>) -> Result<PathBuf> {
    let settings = Settings::user()?;
    let flag = flag.map(|p| p.to_string_lossy().into_owned());
    if let Some(v) = settings.get(&KEYRING, flag.as_deref()) {
        let p = v.path();
        if !p.is_file() {
            bail!("{}: keyring {} does not exist", v.origin, p.display());
        }
        return Ok(p);
    }
    let distro = distro.unwrap_or(Distro::Debian);
    let p = apt_root().join(distro.keyring_file());
    if p.is_file() {
        return Ok(p);
    }
    bail!(
        "no {} archive keyring ({} is missing): install '{}', or pass --keyring FILE \
         (or CARGO_FOR_ARM_KEYRING=FILE, or keyring = \"FILE\" in ~/.config/cargo-for-arm/config.toml) \
         with the archive's signing keys; without one nothing proves the packages are the archive's",
        distro.name(),
        p.display(),
        distro.keyring_package()
    )
}

/// The distribution and suite of the default rootfs of `arch`: Ubuntu's fixed LTS
/// ([`UBUNTU_SUITE`]) when the archive for `arch` is Ubuntu's, else Debian's (12 for 32-bit
/// ARM, 13 for the others, the first with riscv64).
pub fn default_release(arch: &str) -> (Distro, &'static str) {
    let ubuntu = mirror_for(arch, None).is_ok_and(|m| m.distro == Some(Distro::Ubuntu));
    match (ubuntu, arch) {
        (true, _) => (Distro::Ubuntu, UBUNTU_SUITE),
        (false, "armhf" | "armel") => (Distro::Debian, "bookworm"),
        (false, _) => (Distro::Debian, "trixie"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs_per_architecture() {
        assert_eq!(
            parse_spec("http://a/debian/", "armhf").unwrap().as_deref(),
            Some("http://a/debian")
        );
        let both = "amd64=http://m/ubuntu, armhf=http://p/ubuntu-ports";
        assert_eq!(
            parse_spec(both, "armhf").unwrap().as_deref(),
            Some("http://p/ubuntu-ports")
        );
        assert_eq!(parse_spec(both, "arm64").unwrap(), None);
        let mixed = "http://g/debian arm64=http://x/debian";
        assert_eq!(
            parse_spec(mixed, "arm64").unwrap().as_deref(),
            Some("http://x/debian")
        );
        assert_eq!(
            parse_spec(mixed, "armhf").unwrap().as_deref(),
            Some("http://g/debian")
        );
        assert!(parse_spec("ftp.example/debian", "armhf").is_err());
    }

    fn fake_root(files: &[(&str, &str)]) -> PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let root = std::env::temp_dir().join(format!(
            "cfa-aptroot-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        for (p, text) in files {
            let f = root.join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, text).unwrap();
        }
        std::fs::create_dir_all(&root).unwrap();
        root
    }

    const UBUNTU_SOURCES: &str = "Types: deb\nURIs: http://m.test/ubuntu/\nSuites: jammy jammy-updates\nComponents: main\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
Types: deb\nURIs: http://sec.test/ubuntu/\nSuites: jammy-security\nComponents: main\n";

    #[test]
    fn a_third_party_repository_is_not_the_debian_mirror() {
        let docker = "Types: deb\nURIs: https://download.test/linux/debian\nSuites: bookworm\nComponents: stable\nSigned-By: /etc/apt/keyrings/docker.asc\n";
        let debian = "Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n";
        let root = fake_root(&[
            ("etc/os-release", "ID=debian\n"),
            ("etc/apt/sources.list.d/docker.sources", docker),
            ("etc/apt/sources.list.d/debian.sources", debian),
        ]);
        assert_eq!(
            host_mirror(&root, "armhf").unwrap().url,
            "http://mirror.test/debian"
        );
        std::fs::remove_dir_all(&root).unwrap();
        // With only the third-party entry, it is still what there is.
        let root = fake_root(&[
            ("etc/os-release", "ID=debian\n"),
            ("etc/apt/sources.list.d/docker.sources", docker),
        ]);
        assert_eq!(
            host_mirror(&root, "armhf").unwrap().url,
            "https://download.test/linux/debian"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_ubuntu_host_takes_ports_per_architecture() {
        let root = fake_root(&[
            ("etc/os-release", "ID=ubuntu\nVERSION_CODENAME=jammy\n"),
            ("etc/apt/sources.list.d/ubuntu.sources", UBUNTU_SOURCES),
            (
                "etc/apt/sources.list.d/ports.list",
                "deb [arch=armhf,arm64] http://p.test/ubuntu-ports jammy main\n",
            ),
        ]);
        let amd = host_mirror(&root, "amd64").unwrap();
        assert_eq!(amd.url, "http://m.test/ubuntu");
        assert_eq!(amd.distro, Some(Distro::Ubuntu));
        assert_eq!(
            host_mirror(&root, "armhf").unwrap().url,
            "http://p.test/ubuntu-ports"
        );
        assert_eq!(
            host_mirror(&root, "arm64").unwrap().url,
            "http://p.test/ubuntu-ports"
        );
        // No ports entry for riscv64, no template: none.
        assert_eq!(host_mirror(&root, "riscv64"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_mirror_list_file_names_the_mirror() {
        // As on GitHub's ubuntu-24.04 runners.
        let sources = "Types: deb\nURIs: mirror+file:/etc/apt/apt-mirrors.txt\nSuites: noble noble-updates\nComponents: main universe\n";
        let list = "http://near.test/ubuntu/\tpriority:2\nhttps://sec.test/ubuntu/\tpriority:3\nhttp://first.test/ubuntu/ priority:1\n";
        let root = fake_root(&[
            ("etc/os-release", "ID=ubuntu\n"),
            ("etc/apt/sources.list.d/ubuntu.sources", sources),
            ("etc/apt/apt-mirrors.txt", list),
        ]);
        let m = host_mirror(&root, "amd64").unwrap();
        assert_eq!(m.url, "http://first.test/ubuntu");
        assert_eq!(m.distro, Some(Distro::Ubuntu));
        std::fs::remove_dir_all(&root).unwrap();
        // A URI nothing here can fetch is no mirror.
        let root = fake_root(&[
            ("etc/os-release", "ID=debian\n"),
            (
                "etc/apt/sources.list",
                "deb cdrom:[Debian 12]/ bookworm main\n",
            ),
        ]);
        assert_eq!(host_mirror(&root, "armhf"), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn an_ubuntu_host_without_a_ports_entry_uses_its_apt_template() {
        let info = "ChangelogURI: http://c.test/%s\n\nSuite: noble\nRepositoryType: deb\nBaseURI: http://p.test/ubuntu-ports/\nMatchURI: p.test/ubuntu-ports\nBaseURI-amd64: http://m.test/ubuntu\nMatchURI-amd64: m.test/ubuntu\nDescription: Ubuntu 24.04\n";
        let root = fake_root(&[
            ("etc/os-release", "ID=ubuntu\n"),
            ("etc/apt/sources.list.d/ubuntu.sources", UBUNTU_SOURCES),
            ("usr/share/python-apt/templates/Ubuntu.info", info),
        ]);
        let arm = host_mirror(&root, "arm64").unwrap();
        assert_eq!(arm.url, "http://p.test/ubuntu-ports");
        assert!(arm.origin.contains("Ubuntu.info"), "{}", arm.origin);
        assert_eq!(
            host_mirror(&root, "amd64").unwrap().url,
            "http://m.test/ubuntu"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn a_debian_host_and_a_host_without_apt() {
        let root = fake_root(&[(
            "etc/apt/sources.list",
            "# comment\ndeb http://sec.test/debian-security bookworm-security main\ndeb [signed-by=/k.gpg] http://d.test/debian/ bookworm main\n",
        )]);
        let m = host_mirror(&root, "armhf").unwrap();
        assert_eq!(m.url, "http://d.test/debian");
        assert_eq!(m.distro, Some(Distro::Debian));
        std::fs::remove_dir_all(&root).unwrap();
        let empty = fake_root(&[("etc/os-release", "ID=fedora\n")]);
        assert_eq!(host_mirror(&empty, "armhf"), None);
        let help = no_mirror_help("armhf", &empty);
        for needle in [
            "--mirror",
            "CARGO_FOR_ARM_MIRROR",
            "mirror = ",
            "--keyring",
            "rootfs pull",
            "rootfs import",
        ] {
            assert!(help.contains(needle), "{needle}: {help}");
        }
        std::fs::remove_dir_all(&empty).unwrap();
    }
}
