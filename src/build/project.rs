//! Stage 2, the project: its workspace root, its settings (the `for-arm` metadata of its
//! manifests), the rootfs it builds against (the default one created on first use), and
//! where cargo puts what it builds.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use super::args::Options;
use crate::arch::Arch;
use crate::rootfs::bootstrap::CreateOptions;
use crate::rootfs::Rootfs;
use crate::settings::{self, Settings};
use crate::ui;

/// The project around the current directory, or of `--manifest-path`.
#[derive(Debug)]
pub struct Project {
    /// The sandbox's working directory: the current directory, or with `--manifest-path` from
    /// outside the project the manifest's directory (only the project is bound).
    pub cwd: PathBuf,
    /// The workspace root.
    pub root: PathBuf,
    /// The host has a cargo (for the dependency fetch).
    pub host_cargo: bool,
    pub settings: Settings,
}

impl Project {
    /// The project around `cwd`, or the one of `manifest` (cargo's `--manifest-path`).
    pub fn discover(cwd: PathBuf, manifest: Option<&Path>) -> Result<Project> {
        let start = match manifest {
            Some(m) => {
                let m = m
                    .canonicalize()
                    .with_context(|| format!("--manifest-path {}", m.display()))?;
                m.parent().unwrap_or(Path::new("/")).to_path_buf()
            }
            None => cwd.clone(),
        };
        let (root, host_cargo) = workspace_root(&start)?;
        let cwd = match cwd.starts_with(&root) {
            true => cwd,
            false => start.clone(),
        };
        // Manifests from where the project was found up to the workspace root, nearest first.
        let manifests: Vec<PathBuf> = start
            .ancestors()
            .take_while(|d| d.starts_with(&root))
            .map(|d| d.join("Cargo.toml"))
            .filter(|m| m.is_file())
            .collect();
        let settings = Settings::with_project(&manifests)?;
        Ok(Project {
            cwd,
            root,
            host_cargo,
            settings,
        })
    }

    /// The rootfs to build against: `--rootfs`, `CARGO_FOR_ARM_ROOTFS`, the project's
    /// metadata, the user's config file; else the default Debian rootfs with cargo for the
    /// architecture asked (armhf unless `--arch`), created on first use.
    pub fn rootfs(&self, o: &Options) -> Result<Rootfs> {
        let packages: Vec<String> = self
            .settings
            .list(&settings::PACKAGES)
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        let chosen = match configured_rootfs(o, &self.settings) {
            Some(v) if !packages.is_empty() => bail!(
                "packages = {packages:?} (for-arm metadata) adds to the default rootfs only, but the rootfs is {} (from {}): \
                 install them in it (cargo for-arm rootfs shell NAME, then apt-get install {}), or drop the rootfs setting",
                v.raw,
                v.origin,
                packages.join(" ")
            ),
            Some(v) => v.path(),
            None => default_rootfs(o, &self.settings, &packages)?,
        };
        Rootfs::open(&chosen)
    }
}

/// The rootfs the user chose (`--rootfs`, `CARGO_FOR_ARM_ROOTFS`, the project's metadata,
/// the config file); `None` when the default serves.
pub fn configured_rootfs(o: &Options, settings: &Settings) -> Option<settings::Value> {
    let flag = o.rootfs.as_ref().map(|p| p.to_string_lossy().into_owned());
    settings.get(&settings::ROOTFS, flag.as_deref())
}

/// The workspace root of the project around `cwd`, and whether the host has a cargo: one
/// `cargo locate-project` answers both when it succeeds (the common case: one cargo start).
fn workspace_root(cwd: &Path) -> Result<(PathBuf, bool)> {
    let out = Command::new("cargo")
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .current_dir(cwd)
        .output();
    let have_cargo = match &out {
        Ok(o) if o.status.success() => {
            let manifest = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if let Some(dir) = manifest.parent() {
                return Ok((dir.to_path_buf(), true));
            }
            true
        }
        // It could not locate the project: is it a working cargo at all?
        Ok(_) => Command::new("cargo")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        Err(_) => false,
    };
    let root = cwd
        .ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no Cargo.toml in {} or any parent: run cargo for-arm in a Rust project",
                cwd.display()
            )
        })?;
    Ok((root, have_cargo))
}

/// Nothing configured: the default Debian rootfs of the architecture asked (and the
/// project's `packages`, as a store entry of its own, named by that package set), created
/// on first use. When native mode will build with the rustup toolchain, a sysroot: the
/// packages' files with the C runtime, unpacked without maintainer scripts (no emulation,
/// `<distro>-<suite>-<arch>-sysroot`), unless the emulated default of the same packages is
/// in the store already; else the emulated default, configured, with cargo. A stored rootfs
/// is never changed: each package set is an entry of its own.
fn default_rootfs(o: &Options, settings: &Settings, packages: &[String]) -> Result<PathBuf> {
    let (arch_kind, arch) = match o.arch.as_deref() {
        Some(a) => {
            let k = Arch::parse(a)?;
            (k, k.debian_name(a))
        }
        None => (Arch::Arm, "armhf"),
    };
    // Debian 12 for 32-bit ARM, 13 for the rest; Ubuntu's fixed LTS where the archive is Ubuntu's.
    let (distro, suite) = crate::rootfs::debian::sources::default_release(arch);
    let base = format!("{}-{suite}-{arch}", distro.name().to_lowercase());
    let sysroot = super::mode::rustup_builds(o, settings, arch_kind, arch)?;
    let (mut include, variant) = match sysroot {
        true => (Vec::new(), "sysroot"),
        false => (vec!["cargo".to_string()], "minbase"),
    };
    // The project's packages: a store entry of their own, named by the set.
    let mut suffix = String::new();
    if !packages.is_empty() {
        let mut set = packages.to_vec();
        set.sort();
        set.dedup();
        if let Some(bad) = set.iter().find(|p| !debian_package_name(p)) {
            bail!("packages: {bad:?} is not a Debian package name");
        }
        use sha2::Digest;
        let digest = sha2::Sha256::digest(set.join(",").as_bytes());
        suffix = format!("-{}", crate::rootfs::fetch::hex(&digest[..4]));
        include.extend(set);
    }
    let emulated = format!("{base}{suffix}");
    let name = match sysroot {
        true => format!("{base}-sysroot{suffix}"),
        false => emulated.clone(),
    };
    let store = crate::rootfs::store::Store::open()?;
    if store.get(&name).is_some() {
        return Ok(name.into());
    }
    // The emulated default of the same packages serves as a sysroot too (cargo brings the C
    // runtime): a native build does not create a second one.
    if sysroot && store.get(&emulated).is_some() {
        return Ok(emulated.into());
    }
    if !crate::qemu::may_fetch() {
        bail!(
            "no rootfs chosen: pass --rootfs DIR|NAME, set CARGO_FOR_ARM_ROOTFS, add\n  [package.metadata.for-arm]\n  rootfs = \"DIR\"\nto Cargo.toml, \
             or rootfs = \"DIR\" to ~/.config/cargo-for-arm/config.toml; or let cargo-for-arm create the default \
             (it does when CARGO_FOR_ARM_OFFLINE is unset): cargo for-arm rootfs create {name} --suite {suite} --arch {arch}{}{}",
            if sysroot { " --variant sysroot" } else { "" },
            if include.is_empty() { String::new() } else { format!(" --include {}", include.join(",")) }
        );
    }
    match sysroot {
        true => ui::say(format_args!("no rootfs configured, native build with the rustup toolchain: creating the sysroot {name} ({} {suite}, {arch}: the C runtime{}{}) from the {} archive", distro.name(), if include.is_empty() { "" } else { " and " }, include.join(", "), distro.name())),
        false => ui::say(format_args!("no rootfs configured: creating the default {name} ({} {suite}, {arch}, with {}) from the {} archive; this takes a few minutes once", distro.name(), include.join(", "), distro.name())),
    }
    create_rootfs(&CreateOptions {
        name: name.clone(),
        suite: suite.into(),
        arch: arch.into(),
        include,
        variant: variant.into(),
        mirror: None,
        keyring: None,
        no_verify: false,
        no_snapshot: false,
    })?;
    Ok(name.into())
}

/// Debian's rule for package names: lower case letters, digits, `+ - .`, two or more.
fn debian_package_name(p: &str) -> bool {
    p.len() >= 2
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "+-.".contains(c))
}

/// Create a rootfs in the store (the default one, or the tools rootfs of native mode).
pub fn create_rootfs(c: &CreateOptions) -> Result<()> {
    crate::rootfs::bootstrap::create(c, false, &|a| crate::qemu::exec_for(a, None))?;
    Ok(())
}

/// Directories of path dependencies that lie outside the workspace (`foo = { path =
/// "../foo" }`, in any dependency table, target-specific ones, `[patch]` and the
/// workspace's own `[workspace.dependencies]`), followed through their own manifests: the
/// build sees them read-only at their own paths.
pub fn outside_path_deps(root: &Path) -> Result<Vec<PathBuf>> {
    let mut seen: Vec<PathBuf> = Vec::new();
    let mut todo = members(root)?;
    todo.push(root.to_path_buf());
    let mut outside = Vec::new();
    while let Some(dir) = todo.pop() {
        if seen.contains(&dir) {
            continue;
        }
        seen.push(dir.clone());
        let Ok(text) = std::fs::read_to_string(dir.join("Cargo.toml")) else {
            continue;
        };
        let doc: toml::Table = toml::from_str(&text)
            .with_context(|| format!("parsing {}", dir.join("Cargo.toml").display()))?;
        for p in dependency_paths(&doc) {
            let Ok(dep) = dir.join(p).canonicalize() else {
                continue;
            };
            if !dep.starts_with(root) && !outside.contains(&dep) {
                outside.push(dep.clone());
            }
            todo.push(dep);
        }
    }
    // A directory inside another one is covered by it.
    let all = outside.clone();
    outside.retain(|d| !all.iter().any(|o| o != d && d.starts_with(o)));
    Ok(outside)
}

/// The workspace's members (plain paths and `dir/*` globs), as directories.
fn members(root: &Path) -> Result<Vec<PathBuf>> {
    let Ok(text) = std::fs::read_to_string(root.join("Cargo.toml")) else {
        return Ok(Vec::new());
    };
    let doc: toml::Table = toml::from_str(&text)?;
    let list = doc
        .get("workspace")
        .and_then(|w| w.get("members"))
        .and_then(|m| m.as_array())
        .cloned()
        .unwrap_or_default();
    let mut out = Vec::new();
    for m in list.iter().filter_map(|m| m.as_str()) {
        match m.strip_suffix("/*") {
            Some(parent) => {
                let dirs = std::fs::read_dir(root.join(parent)).into_iter().flatten();
                out.extend(dirs.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
            }
            None => out.push(root.join(m)),
        }
    }
    Ok(out)
}

/// Every `path = "…"` of a manifest's dependency tables.
fn dependency_paths(doc: &toml::Table) -> Vec<String> {
    const TABLES: [&str; 4] = [
        "dependencies",
        "dev-dependencies",
        "build-dependencies",
        "dev_dependencies",
    ];
    let deps_of = |t: &toml::Table| -> Vec<toml::Table> {
        TABLES
            .iter()
            .filter_map(|n| t.get(*n)?.as_table().cloned())
            .collect()
    };
    let mut tables = deps_of(doc);
    for t in doc.get("target").and_then(|t| t.as_table()).into_iter() {
        for cfg in t.values().filter_map(|v| v.as_table()) {
            tables.extend(deps_of(cfg));
        }
    }
    if let Some(w) = doc.get("workspace").and_then(|w| w.get("dependencies")) {
        tables.extend(w.as_table().cloned());
    }
    for p in doc.get("patch").and_then(|t| t.as_table()).into_iter() {
        tables.extend(p.values().filter_map(|v| v.as_table().cloned()));
    }
    tables
        .iter()
        .flat_map(|t| t.values())
        .filter_map(|d| d.get("path")?.as_str().map(str::to_string))
        .collect()
}

/// The profile directory cargo writes to for these arguments.
pub fn profile_dir(target_dir: &Path, sub: &str, args: &[String]) -> PathBuf {
    let mut profile = if sub == "bench" { "release" } else { "debug" }.to_string();
    let mut triple = None;
    let mut i = 0;
    while i < args.len() && args[i] != "--" {
        let a = &args[i];
        match a.as_str() {
            "--release" | "-r" => profile = "release".into(),
            "--profile" | "--target" => {
                if let Some(v) = args.get(i + 1) {
                    if a == "--profile" {
                        profile = v.clone();
                    } else {
                        triple = Some(v.clone());
                    }
                }
                i += 1;
            }
            _ => {
                if let Some(v) = a.strip_prefix("--profile=") {
                    profile = v.into();
                } else if let Some(v) = a.strip_prefix("--target=") {
                    triple = Some(v.into());
                }
            }
        }
        i += 1;
    }
    let profile = match profile.as_str() {
        "dev" | "test" => "debug".to_string(),
        "bench" => "release".to_string(),
        p => p.to_string(),
    };
    match triple {
        Some(t) => target_dir.join(t).join(profile),
        None => target_dir.join(profile),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_dependencies_outside_the_workspace_are_found() {
        let t = std::env::temp_dir().join(format!("cfa-pathdeps-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let w = t.join("ws");
        for d in ["ws/app", "ws/inner", "lib", "lib/sub", "other", "patched"] {
            std::fs::create_dir_all(t.join(d)).unwrap();
        }
        let write = |p: &str, text: &str| std::fs::write(t.join(p), text).unwrap();
        write(
            "ws/Cargo.toml",
            "[workspace]\nmembers = [\"app\"]\n[patch.crates-io]\nz = { path = \"../patched\" }\n",
        );
        write(
            "ws/app/Cargo.toml",
            "[package]\nname = \"app\"\n[dependencies]\ninner = { path = \"../inner\" }\nlib = { path = \"../../lib\" }\n[target.'cfg(unix)'.dev-dependencies]\nother = { path = \"../../other\", version = \"1\" }\n",
        );
        write("ws/inner/Cargo.toml", "[package]\nname = \"inner\"\n");
        write(
            "lib/Cargo.toml",
            "[package]\nname = \"lib\"\n[dependencies]\nsub = { path = \"sub\" }\n",
        );
        write("lib/sub/Cargo.toml", "[package]\nname = \"sub\"\n");
        write("other/Cargo.toml", "[package]\nname = \"other\"\n");
        write("patched/Cargo.toml", "[package]\nname = \"z\"\n");
        let t = t.canonicalize().unwrap();
        let mut found = outside_path_deps(&w.canonicalize().unwrap()).unwrap();
        found.sort();
        assert_eq!(
            found,
            vec![t.join("lib"), t.join("other"), t.join("patched")]
        );
        std::fs::remove_dir_all(&t).unwrap();
    }

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn profile_dirs() {
        let t = Path::new("/t");
        assert_eq!(
            profile_dir(t, "build", &s(&["--release"])),
            Path::new("/t/release")
        );
        assert_eq!(profile_dir(t, "build", &[]), Path::new("/t/debug"));
        assert_eq!(profile_dir(t, "bench", &[]), Path::new("/t/release"));
        assert_eq!(
            profile_dir(
                t,
                "build",
                &s(&["--profile=dev", "--target", "armv7-unknown-linux-gnueabihf"])
            ),
            Path::new("/t/armv7-unknown-linux-gnueabihf/debug")
        );
        assert_eq!(
            profile_dir(t, "test", &s(&["--", "--release"])),
            Path::new("/t/debug")
        );
    }
}
