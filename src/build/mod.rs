//! The cargo front end: `cargo for-arm build|check|test|… [cargo args]`.
//!
//! Dependencies are fetched natively on the host (`cargo vendor`, cached by the lockfile's
//! hash), so the emulated cargo runs offline, in an empty network namespace, with its own
//! CARGO_HOME. Everything cargo-for-arm does not own goes to cargo untouched.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::arch::Arch;
use crate::cli::{Network, SandboxArgs};
use crate::idmap::MapMode;
use crate::sandbox::spec::{self as plan, RunPlan};
use crate::{report, supervise};
use native::Mode;

pub mod native;
pub mod runner;

/// Default hang timeout of builds. Busy CPU is progress, so a long emulated LLVM codegen is
/// never a hang; only a sandbox where no process computes, reads or writes for this long is.
pub const DEFAULT_HANG_TIMEOUT: u64 = 300;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    Human,
    Json,
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub subcommand: String,
    pub rootfs: Option<PathBuf>,
    pub arch: Option<String>,
    pub qemu: Option<PathBuf>,
    pub map: MapMode,
    pub network: Network,
    pub hang_timeout: u64,
    pub retries: u32,
    pub report: ReportMode,
    pub target_dir: Option<PathBuf>,
    pub seccomp: String,
    /// `--mode`; `None` means `CARGO_FOR_ARM_MODE`, the user's config, else auto.
    pub mode: Option<Mode>,
    pub tools_rootfs: Option<PathBuf>,
    pub native_rustc: Option<native::RustcSource>,
    /// Passed to cargo after the subcommand, untouched.
    pub cargo_args: Vec<String>,
}

/// Split our options from cargo's. `args[0]` is the subcommand (`cargo` passes the rest on).
pub fn parse(args: &[String]) -> Result<Options> {
    let mut it = args.iter().cloned();
    let mut sub = it.next().context("no cargo subcommand given")?;
    if sub == "cargo" {
        sub = it
            .next()
            .context("`cargo for-arm cargo` needs a cargo subcommand")?;
    }
    let mut o = Options {
        subcommand: sub,
        rootfs: None,
        arch: None,
        qemu: None,
        map: MapMode::Auto,
        network: Network::None,
        hang_timeout: DEFAULT_HANG_TIMEOUT,
        retries: 1,
        report: ReportMode::Human,
        target_dir: None,
        seccomp: "default".into(),
        mode: None,
        tools_rootfs: None,
        native_rustc: None,
        cargo_args: Vec::new(),
    };
    let rest: Vec<String> = it.collect();
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        if a == "--" {
            o.cargo_args.extend(rest[i..].iter().cloned());
            break;
        }
        let (name, inline) = match a.split_once('=') {
            Some((n, v)) if n.starts_with("--") => (n.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        let ours = [
            "--rootfs",
            "--arch",
            "--qemu",
            "--map",
            "--network",
            "--hang-timeout",
            "--retries",
            "--report",
            "--target-dir",
            "--seccomp",
            "--mode",
            "--tools-rootfs",
            "--native-rustc",
        ];
        if name == "--no-report" {
            o.report = ReportMode::Off;
            i += 1;
            continue;
        }
        if !ours.contains(&name.as_str()) {
            o.cargo_args.push(a.clone());
            i += 1;
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                rest.get(i)
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))?
            }
        };
        match name.as_str() {
            "--rootfs" => o.rootfs = Some(value.into()),
            "--arch" => o.arch = Some(value),
            "--qemu" => o.qemu = Some(value.into()),
            "--map" => {
                o.map = match value.as_str() {
                    "auto" => MapMode::Auto,
                    "single" => MapMode::Single,
                    "full" => MapMode::Full,
                    v => bail!("--map {v}: use auto, single or full"),
                }
            }
            "--network" => {
                o.network = match value.as_str() {
                    "none" => Network::None,
                    "host" => Network::Host,
                    v => bail!("--network {v}: use none or host"),
                }
            }
            "--hang-timeout" => {
                o.hang_timeout = value
                    .parse()
                    .with_context(|| format!("--hang-timeout {value}: seconds"))?
            }
            "--retries" => {
                o.retries = value
                    .parse()
                    .with_context(|| format!("--retries {value}: a count"))?
            }
            "--report" => {
                o.report = match value.as_str() {
                    "json" => ReportMode::Json,
                    "human" => ReportMode::Human,
                    "none" => ReportMode::Off,
                    v => bail!("--report {v}: use human, json or none"),
                }
            }
            "--target-dir" => o.target_dir = Some(value.into()),
            "--seccomp" => o.seccomp = value,
            "--mode" => o.mode = Some(Mode::parse(&value)?),
            "--tools-rootfs" => o.tools_rootfs = Some(value.into()),
            "--native-rustc" => o.native_rustc = Some(native::RustcSource::parse(&value)?),
            _ => unreachable!("listed above"),
        }
        i += 1;
    }
    Ok(o)
}

fn host_cargo() -> Option<String> {
    let out = Command::new("cargo").arg("--version").output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// The workspace root of the project around `cwd`.
fn project_root(cwd: &Path, have_cargo: bool) -> Result<PathBuf> {
    if have_cargo {
        let out = Command::new("cargo")
            .args(["locate-project", "--workspace", "--message-format", "plain"])
            .current_dir(cwd)
            .output()
            .context("running cargo locate-project")?;
        if out.status.success() {
            let manifest = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
            if let Some(dir) = manifest.parent() {
                return Ok(dir.to_path_buf());
            }
        }
    }
    cwd.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
        .with_context(|| {
            format!(
                "no Cargo.toml in {} or any parent: run cargo for-arm in a Rust project",
                cwd.display()
            )
        })
}

/// The rootfs: `--rootfs`, `CARGO_FOR_ARM_ROOTFS`, `[package.metadata.for-arm] rootfs` of
/// the project (or `[workspace.metadata.for-arm]`), the user's config file.
fn choose_rootfs(o: &Options, cwd: &Path, root: &Path) -> Result<PathBuf> {
    if let Some(r) = &o.rootfs {
        return Ok(r.clone());
    }
    if let Some(r) = std::env::var_os("CARGO_FOR_ARM_ROOTFS").filter(|v| !v.is_empty()) {
        return Ok(r.into());
    }
    let manifests = cwd
        .ancestors()
        .take_while(|d| d.starts_with(root))
        .map(|d| d.join("Cargo.toml"))
        .filter(|m| m.is_file());
    for m in manifests {
        let text = std::fs::read_to_string(&m)?;
        let doc: toml::Table =
            toml::from_str(&text).with_context(|| format!("parsing {}", m.display()))?;
        for section in ["package", "workspace"] {
            let value = doc
                .get(section)
                .and_then(|p| p.get("metadata"))
                .and_then(|md| md.get("for-arm"))
                .and_then(|f| f.get("rootfs"))
                .and_then(|r| r.as_str());
            if let Some(r) = value {
                return Ok(m.parent().unwrap_or(root).join(r));
            }
        }
    }
    if let Some(r) = crate::rootfs::store::user_config_str("rootfs")? {
        return Ok(r.into());
    }
    // Nothing configured: the default Debian rootfs with cargo, created on first use.
    let (suite, arch) = match o.arch.as_deref().map(Arch::parse) {
        Some(Ok(Arch::Aarch64)) => ("trixie", "arm64"),
        _ => ("bookworm", "armhf"),
    };
    let name = format!("debian-{suite}-{arch}");
    let store = crate::rootfs::store::Store::open()?;
    if store.get(&name).is_some() {
        return Ok(name.into());
    }
    if !crate::qemu::may_fetch() {
        bail!(
            "no rootfs chosen: pass --rootfs DIR|NAME, set CARGO_FOR_ARM_ROOTFS, add\n  [package.metadata.for-arm]\n  rootfs = \"DIR\"\nto Cargo.toml, \
             or rootfs = \"DIR\" to ~/.config/cargo-for-arm/config.toml; or let cargo-for-arm create the default \
             (it does when CARGO_FOR_ARM_OFFLINE is unset): cargo for-arm rootfs create {name} --suite {suite} --arch {arch} --include cargo"
        );
    }
    eprintln!("cargo-for-arm: no rootfs configured: creating the default {name} (Debian {suite}, {arch}, with cargo) from the Debian mirror; this takes a few minutes once");
    let create = crate::rootfs::bootstrap::CreateOptions {
        name: name.clone(),
        suite: suite.into(),
        arch: arch.into(),
        include: vec!["cargo".into()],
        variant: "minbase".into(),
        mirror: None,
        keyring: None,
        no_verify: false,
        no_snapshot: false,
    };
    crate::rootfs::bootstrap::create(&create, false)?;
    Ok(name.into())
}

/// Fetch the dependencies natively: `cargo vendor` into a directory keyed by the lockfile.
/// Returns the directory and the cargo config that points the emulated cargo at it.
fn vendor(
    root: &Path,
    cache: &Path,
    guest_vendor: &str,
    rootfs_rustc: Option<&RustcInfo>,
) -> Result<(PathBuf, String)> {
    let lock = root.join("Cargo.lock");
    let mut generated = false;
    if !lock.is_file() {
        // Resolve for the rootfs's rustc, not the host's: with the resolver's rust-version
        // fallback and a `rustc` that answers `-vV` as the rootfs's does, an old rootfs cargo
        // (Debian 12's 1.63) gets dependency versions it can build.
        let mut cmd = Command::new("cargo");
        cmd.args(["generate-lockfile", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .env("CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS", "fallback");
        if let Some(info) = rootfs_rustc {
            cmd.env("RUSTC", &info.answer_script);
        }
        let st = cmd.status().context("running cargo generate-lockfile")?;
        if !st.success() {
            bail!("cargo generate-lockfile failed in {}", root.display());
        }
        generated = true;
    }
    if let Some(info) = rootfs_rustc.filter(|i| i.version < (1, 78)) {
        let text = std::fs::read_to_string(&lock)?;
        if lockfile_version(&text) == Some(4) {
            if !generated {
                bail!(
                    "{} is lockfile version 4, which the rootfs's cargo {}.{} cannot read (it needs 1.78): \
                     use a rootfs with a newer cargo (e.g. Debian 13), or set `version = 3` at the top of Cargo.lock",
                    lock.display(),
                    info.version.0,
                    info.version.1
                );
            }
            // Freshly generated for a registry-only (or plain git) project, versions 3 and 4
            // differ only in this line.
            std::fs::write(&lock, set_lockfile_version(&text, 3))?;
        }
    }
    let digest = Sha256::digest(std::fs::read(&lock)?);
    let key = crate::rootfs::fetch::hex(&digest[..12]);
    let base = cache.join("vendor");
    let dir = base.join(&key);
    if !dir.join("config.toml").is_file() {
        std::fs::create_dir_all(&base)?;
        let tmp = base.join(format!(".tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        eprintln!("    Fetching dependencies natively (cargo vendor)");
        let out = Command::new("cargo")
            .args(["vendor", "--locked", "--versioned-dirs", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
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
            &format!("{guest_vendor}/crates"),
        );
        std::fs::write(tmp.join("config.toml"), config)?;
        match std::fs::rename(&tmp, &dir) {
            Ok(()) => {}
            // Another run finished the same lockfile first: use theirs.
            Err(_) if dir.join("config.toml").is_file() => {
                let _ = std::fs::remove_dir_all(&tmp);
            }
            Err(e) => return Err(e).with_context(|| format!("renaming into {}", dir.display())),
        }
    }
    let config = std::fs::read_to_string(dir.join("config.toml"))?;
    Ok((dir, config))
}

/// What the rootfs's rustc says of itself (`rustc -vV`), and a script that says the same,
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

/// Ask the rootfs's rustc for `-vV` (one short emulated run, cached in its cargo home).
fn rootfs_rustc(sandbox: &SandboxArgs, cargo_home: &Path, guest_home: &str) -> Result<RustcInfo> {
    // Cached per rootfs and PATH (native mode may put a rustup toolchain first).
    let mut h = Sha256::new();
    h.update(sandbox.rootfs.as_os_str().as_encoded_bytes());
    for e in &sandbox.env {
        h.update(b"\0");
        h.update(e.as_bytes());
    }
    let key = crate::rootfs::fetch::hex(&h.finalize()[..6]);
    let out = cargo_home.join(format!("rustc-vV-{key}.txt"));
    let script = cargo_home.join(format!("rustc-answer-{key}.sh"));
    if !out.is_file() {
        let argv = vec![
            "sh".to_string(),
            "-c".into(),
            format!("rustc -vV > {guest_home}/rustc-vV-{key}.txt"),
        ];
        let plan = RunPlan::new(sandbox, argv)?;
        let o = supervise::run_supervised(&plan, None, 0, false)?;
        if o.code != 0 {
            let _ = std::fs::remove_file(&out);
            bail!(
                "the rootfs has no working rustc (`rustc -vV` exited {})",
                o.code
            );
        }
    }
    let vv = std::fs::read_to_string(&out)?;
    let version = parse_rustc_release(&vv)
        .with_context(|| format!("unexpected `rustc -vV` output in the rootfs: {vv}"))?;
    std::fs::write(
        &script,
        format!("#!/bin/sh\n# Answers like the rootfs's rustc, for the host cargo's resolver.\ncat <<'EOF'\n{}EOF\n", vv),
    )?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))?;
    Ok(RustcInfo {
        version,
        answer_script: script,
    })
}

/// The profile directory cargo writes to for these arguments.
pub fn profile_dir(target_dir: &Path, sub: &str, args: &[String]) -> PathBuf {
    let mut profile = if sub == "bench" {
        "release".to_string()
    } else {
        "debug".to_string()
    };
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

/// The triple of the host's own Rust standard library in a tools rootfs.
fn host_triple() -> Option<&'static str> {
    match Arch::host() {
        Arch::X86_64 => Some("x86_64-unknown-linux-gnu"),
        Arch::Aarch64 => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}

/// The tools rootfs the user configured: `--tools-rootfs`, `CARGO_FOR_ARM_TOOLS_ROOTFS`,
/// `tools-rootfs = "…"` in the user's config file.
fn configured_tools(o: &Options) -> Result<Option<PathBuf>> {
    if let Some(t) = &o.tools_rootfs {
        return Ok(Some(t.clone()));
    }
    if let Some(t) = std::env::var_os("CARGO_FOR_ARM_TOOLS_ROOTFS").filter(|v| !v.is_empty()) {
        return Ok(Some(t.into()));
    }
    Ok(crate::rootfs::store::user_config_str("tools-rootfs")?.map(PathBuf::from))
}

fn configured_mode(o: &Options) -> Result<Mode> {
    if let Some(m) = o.mode {
        return Ok(m);
    }
    if let Some(m) = std::env::var("CARGO_FOR_ARM_MODE")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return Mode::parse(&m).context("CARGO_FOR_ARM_MODE");
    }
    match crate::rootfs::store::user_config_str("mode")? {
        Some(m) => Mode::parse(&m).context("mode in the user's config file"),
        None => Ok(Mode::Auto),
    }
}

fn configured_rustc_source(o: &Options) -> Result<native::RustcSource> {
    if let Some(r) = o.native_rustc {
        return Ok(r);
    }
    if let Some(r) = std::env::var("CARGO_FOR_ARM_NATIVE_RUSTC")
        .ok()
        .filter(|v| !v.is_empty())
    {
        return native::RustcSource::parse(&r).context("CARGO_FOR_ARM_NATIVE_RUSTC");
    }
    match crate::rootfs::store::user_config_str("native-rustc")? {
        Some(r) => native::RustcSource::parse(&r).context("native-rustc in the user's config file"),
        None => Ok(native::RustcSource::Auto),
    }
}

/// Native or emulated: `Some` when native mode can build for this rootfs. In auto mode every
/// reason to emulate is said; with `--mode native` it is an error.
fn choose_mode(
    o: &Options,
    arm: &Path,
    arch: Arch,
    desc: &str,
    quiet: bool,
) -> Result<Option<native::Setup>> {
    use native::RustcSource;
    let mode = configured_mode(o)?;
    if arch.runs_natively() {
        // An amd64 rootfs on an amd64 host: its cargo runs at full speed, nothing is emulated.
        return Ok(None);
    }
    if mode == Mode::Emulate {
        if !quiet {
            eprintln!(
                "cargo-for-arm: mode emulate (asked for): cargo runs emulated in {}",
                arm.display()
            );
        }
        return Ok(None);
    }
    let fallback = |reason: String| -> Result<Option<native::Setup>> {
        if mode == Mode::Native {
            bail!("--mode native: {reason}");
        }
        if !quiet {
            eprintln!("cargo-for-arm: mode emulate: {reason}");
        }
        Ok(None)
    };
    let (Some(target), Some(host_triple)) = (native::Target::of(arch, desc), host_triple()) else {
        return fallback(format!(
            "native mode builds for armhf and arm64 on x86_64 and arm64 hosts; {desc} is emulated"
        ));
    };
    // The compiler: the user's rustup toolchain when it has the target (and may be used),
    // else the tools rootfs's rustc with the ARM rootfs's Debian std.
    let source = configured_rustc_source(o)?;
    let mut rustup = None;
    if source != RustcSource::Rootfs {
        let sysroot = native::host_sysroot();
        let std = match &sysroot {
            Some(s) => native::find_std_in_sysroot(s, target.triple)?,
            None => None,
        };
        match (sysroot, std) {
            (Some(sysroot), Some(std)) => rustup = Some((sysroot, std)),
            (sysroot, _) if source == RustcSource::Rustup => bail!(
                "--native-rustc rustup: {}",
                match sysroot {
                    Some(s) => format!(
                        "the toolchain {} has no standard library for {}: rustup target add {}",
                        s.display(),
                        target.triple,
                        target.triple
                    ),
                    None => "no rustc toolchain (cargo and rustc) on PATH".to_string(),
                }
            ),
            _ => {}
        }
    }
    let std = match &rustup {
        Some((_, std)) => std.clone(),
        None => match native::find_std(arm, target.triple)? {
            Some(std) => std,
            None => {
                return fallback(format!(
                    "{} has no Rust standard library for {} (usr/lib/rustlib/{}); in Debian it is the package \
                     libstd-rust-dev: cargo for-arm rootfs shell NAME, then apt-get install libstd-rust-dev \
                     (or: rustup target add {})",
                    arm.display(),
                    target.triple,
                    target.triple,
                    target.triple
                ))
            }
        },
    };
    let tools = match configured_tools(o)? {
        Some(t) => t,
        None => {
            let Some(suite) = native::suite_of(arm) else {
                return fallback(format!(
                    "the Debian suite of {} is unknown (no VERSION_CODENAME in its /etc/os-release), so no \
                     matching tools rootfs can be chosen: pass --tools-rootfs DIR|NAME",
                    arm.display()
                ));
            };
            let name = native::tools_name(&suite);
            let host_deb = Arch::host().debian_name("");
            let store = crate::rootfs::store::Store::open()?;
            if store.get(&name).is_none() {
                let create = format!(
                    "cargo for-arm rootfs create {name} --suite {suite} --arch {host_deb} --include {}",
                    native::TOOLS_PACKAGES
                );
                if mode == Mode::Auto {
                    return fallback(format!(
                        "no tools rootfs for native builds ({name}); create it once, and builds compile at \
                         native speed: {create}  (or pass --mode native, which creates it)"
                    ));
                }
                if !crate::qemu::may_fetch() {
                    bail!("--mode native: no tools rootfs {name}, and CARGO_FOR_ARM_OFFLINE forbids creating it: {create}");
                }
                eprintln!("cargo-for-arm: creating the tools rootfs {name} (Debian {suite} {host_deb} with {}) for native builds; this takes a few minutes once", native::TOOLS_PACKAGES);
                let c = crate::rootfs::bootstrap::CreateOptions {
                    name: name.clone(),
                    suite: suite.clone(),
                    arch: host_deb.into(),
                    include: native::TOOLS_PACKAGES
                        .split(',')
                        .map(str::to_string)
                        .collect(),
                    variant: "minbase".into(),
                    mirror: None,
                    keyring: None,
                    no_verify: false,
                    no_snapshot: false,
                };
                crate::rootfs::bootstrap::create(&c, false)?;
            }
            PathBuf::from(name)
        }
    };
    let tools_abs = plan::resolve_rootfs(&tools)?;
    let (tools_arch, tools_desc) = plan::detect_arch(&tools_abs)?;
    if tools_arch != Arch::host() {
        bail!(
            "the tools rootfs {} is a {tools_desc} rootfs; it must be for this machine ({})",
            tools_abs.display(),
            Arch::host().debian_name("")
        );
    }
    let missing = native::missing_tools(&tools_abs, rustup.is_some());
    if !missing.is_empty() {
        return fallback(format!(
            "the tools rootfs {} lacks {}: install them in it (cargo for-arm rootfs shell NAME, then \
             apt-get install {}), or create it with --include {}",
            tools_abs.display(),
            missing.join(", "),
            native::TOOLS_PACKAGES.replace(',', " "),
            native::TOOLS_PACKAGES
        ));
    }
    let (host_root, host_std) = match &rustup {
        Some((sysroot, _)) => (
            sysroot.clone(),
            native::find_std_in_sysroot(sysroot, host_triple)?,
        ),
        None => (
            tools_abs.clone(),
            native::find_std(&tools_abs, host_triple)?,
        ),
    };
    let Some(host_std) = host_std else {
        return fallback(format!(
            "{} has no Rust standard library for {host_triple}",
            host_root.display()
        ));
    };
    if let Err(e) = native::check_versions(&host_std.version, &std.version, &host_root, arm) {
        if mode == Mode::Native {
            return Err(e);
        }
        return fallback(format!("{e:#}"));
    }
    Ok(Some(native::Setup {
        target,
        tools_rootfs: tools_abs,
        host_version: host_std.version,
        target_std: std,
        rustup: rustup.map(|(s, _)| s),
    }))
}

pub fn run(args: &[String], quiet: bool) -> Result<i32> {
    let o = parse(args)?;
    let cwd = std::env::current_dir().context("the current directory is gone")?;
    let host = host_cargo();
    let root = project_root(&cwd, host.is_some())?;
    let rootfs = choose_rootfs(&o, &cwd, &root)?;
    // Held while the build runs: in native mode the ARM rootfs is only bound, not run.
    let (rootfs_abs, _arm_lock) = plan::resolve_rootfs_locked(&rootfs)?;
    // The plan repeats this check with --arch; here it names the cargo home and target dir.
    let (arch, desc) = match &o.arch {
        Some(a) => (Arch::parse(a)?, a.clone()),
        None => plan::detect_arch(&rootfs_abs)?,
    };
    let setup = choose_mode(&o, &rootfs_abs, arch, &desc, quiet)?;
    if setup.is_none() && !plan::exists_in_root(&rootfs_abs, "/usr/bin/cargo") {
        bail!(
            "the rootfs {} has no cargo (/usr/bin/cargo): use a rootfs with cargo installed, or install it \
             inside: cargo for-arm run --rootfs {} --network host --map full -- apt-get install -y cargo",
            rootfs_abs.display(),
            rootfs_abs.display()
        );
    }
    let deb = arch.debian_name(&desc);
    let flavour = match &setup {
        Some(_) => format!("native-{deb}"),
        None => deb.to_string(),
    };
    let cache = crate::rootfs::store::home()?;
    let cargo_home = cache.join("cargo-home").join(&flavour);
    std::fs::create_dir_all(&cargo_home)
        .with_context(|| format!("creating {}", cargo_home.display()))?;
    let guest_home = "/run/cargo-for-arm/cargo-home";
    let guest_vendor = "/run/cargo-for-arm/vendor";
    let target_dir = match &o.target_dir {
        Some(t) => {
            let t = if t.is_absolute() {
                t.clone()
            } else {
                cwd.join(t)
            };
            std::fs::create_dir_all(&t)?;
            t
        }
        None => root.join("target/for-arm").join(&flavour),
    };
    // The project, and the target dir when it lies outside, at the same paths as on the host.
    let mut project_binds = vec![format!("{}", root.display())];
    if !target_dir.starts_with(&root) {
        project_binds.push(format!("{}", target_dir.display()));
    }
    let mut binds = project_binds.clone();
    binds.push(format!("{}:{guest_home}", cargo_home.display()));
    let (build_rootfs, build_arch) = match &setup {
        Some(s) => (s.tools_rootfs.clone(), None),
        None => (rootfs_abs.clone(), o.arch.clone()),
    };
    let timeout = (o.hang_timeout > 0).then(|| Duration::from_secs(o.hang_timeout));
    let mut env = vec![
        format!("CARGO_HOME={guest_home}"),
        format!("CARGO_TARGET_DIR={}", target_dir.display()),
    ];
    // Native mode: the ARM rootfs as sysroot, the compiler wrappers, and the runner service.
    let mut _service = None;
    if let Some(s) = &setup {
        let triple = s.target.triple;
        binds.push(format!(
            "{}:{}:ro",
            rootfs_abs.display(),
            native::GUEST_SYSROOT
        ));
        match &s.rustup {
            // The whole toolchain, its bin first on PATH.
            Some(sysroot) => {
                binds.push(format!("{}:{}:ro", sysroot.display(), native::GUEST_RUST));
                env.push(format!(
                    "PATH={}/bin:{}",
                    native::GUEST_RUST,
                    plan::DEFAULT_PATH
                ));
            }
            // The target std beside the tools rootfs's own host std.
            None => binds.push(format!(
                "{}:/usr/lib/rustlib/{triple}:ro",
                s.target_std.dir.display()
            )),
        }
        if let Some(dir) = native::multiarch_dir(&rootfs_abs, &s.target)? {
            binds.push(format!("{}:/usr/lib/{}:ro", dir.display(), s.target.clang));
        }
        let wrappers = cache.join("toolchain").join(triple);
        native::write_wrappers(&s.target, &wrappers)?;
        binds.push(format!(
            "{}:{}:ro",
            wrappers.display(),
            native::GUEST_TOOLCHAIN
        ));
        let exe = std::fs::read_link("/proc/self/exe").context("finding cargo-for-arm itself")?;
        native::check_runner_glibc(&exe, &s.tools_rootfs)?;
        binds.push(format!("{}:{}:ro", exe.display(), runner::GUEST_EXE));
        let arm = SandboxArgs {
            rootfs: rootfs_abs.clone(),
            arch: o.arch.clone(),
            qemu: o.qemu.clone(),
            binds: project_binds.clone(),
            no_bind_cwd: true,
            workdir: Some(root.clone()),
            env: vec![],
            network: o.network,
            map: o.map,
            seccomp: o.seccomp.clone(),
        };
        let template = RunPlan::new(&arm, vec!["true".into()])?;
        let run_dir = cache.join("run").join(std::process::id().to_string());
        let service = runner::Service::start(
            &run_dir,
            template,
            vec![root.clone(), target_dir.clone()],
            timeout,
            o.retries,
        )?;
        binds.push(format!("{}:{}", run_dir.display(), runner::GUEST_DIR));
        _service = Some(service);
        for (k, v) in s.target.build_env(&runner::runner_command()) {
            env.push(format!("{k}={v}"));
        }
        env.push(format!("{}={}/sock", runner::SOCKET_ENV, runner::GUEST_DIR));
    }
    let mut network = o.network;
    let mut config = String::new();
    match &host {
        Some(_) => {
            let lock = std::fs::read_to_string(root.join("Cargo.lock")).ok();
            let info = if lock
                .as_deref()
                .map_or(true, |l| lockfile_version(l) == Some(4))
            {
                let probe = SandboxArgs {
                    rootfs: build_rootfs.clone(),
                    arch: build_arch.clone(),
                    qemu: o.qemu.clone(),
                    binds: binds.clone(),
                    no_bind_cwd: true,
                    workdir: Some("/".into()),
                    // PATH: the rustc that will build answers.
                    env: env
                        .iter()
                        .filter(|e| e.starts_with("PATH="))
                        .cloned()
                        .collect(),
                    network: Network::None,
                    map: o.map,
                    seccomp: o.seccomp.clone(),
                };
                Some(rootfs_rustc(&probe, &cargo_home, guest_home)?)
            } else {
                None
            };
            let (dir, cfg) = vendor(&root, &cache, guest_vendor, info.as_ref())?;
            binds.push(format!("{}:{guest_vendor}:ro", dir.display()));
            config = cfg;
            config.push_str("\n[net]\noffline = true\n");
        }
        None => {
            if !quiet {
                eprintln!("cargo-for-arm: note: the host has no cargo: dependencies are fetched inside the sandbox with the sparse protocol (network on)");
            }
            network = Network::Host;
            config.push_str("[registries.crates-io]\nprotocol = \"sparse\"\n");
        }
    }
    // Our own CARGO_HOME: never the user's ~/.cargo (its credentials stay out of reach).
    std::fs::write(cargo_home.join("config.toml"), &config)?;
    if network == Network::None {
        env.push("CARGO_NET_OFFLINE=true".into());
    }
    // On a terminal cargo's stderr is piped through us (for the status line): keep colours.
    let terminal = unsafe { libc::isatty(2) } == 1;
    if terminal {
        env.push("CARGO_TERM_COLOR=always".into());
    }
    let sandbox = SandboxArgs {
        rootfs: build_rootfs,
        arch: build_arch,
        qemu: o.qemu.clone(),
        binds,
        no_bind_cwd: true,
        workdir: Some(cwd.clone()),
        env,
        network,
        map: o.map,
        seccomp: o.seccomp.clone(),
    };
    let mut argv = vec!["cargo".to_string(), o.subcommand.clone()];
    argv.extend(o.cargo_args.iter().cloned());
    let plan = RunPlan::new(&sandbox, argv)?;
    if !quiet {
        for n in &plan.notes {
            eprintln!("cargo-for-arm: note: {n}");
        }
        match &setup {
            Some(s) => eprintln!(
                "    Native cargo {} for {} [{deb}]: {} of {}, clang and lld of {}, against {}; ARM programs run emulated (target dir {})",
                o.subcommand,
                s.target.triple,
                s.host_version,
                match &s.rustup {
                    Some(r) => format!("the toolchain {}", r.display()),
                    None => "the tools rootfs".to_string(),
                },
                s.tools_rootfs.display(),
                rootfs_abs.display(),
                target_dir.display()
            ),
            None => eprintln!(
                "    Emulating cargo {} for {} [{}] in {} (target dir {})",
                o.subcommand,
                plan.arch_desc,
                plan.arch.debian_name(&plan.arch_desc),
                plan.rootfs.display(),
                target_dir.display()
            ),
        }
    }
    let started = SystemTime::now();
    let outcome = supervise::run_supervised(&plan, timeout, o.retries, terminal && !quiet)?;
    drop(_service);
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    let reports = ["build", "b", "test", "t", "bench", "rustc"];
    if outcome.code == 0 && o.report != ReportMode::Off && reports.contains(&o.subcommand.as_str())
    {
        let tests = matches!(o.subcommand.as_str(), "test" | "t" | "bench")
            || o.cargo_args
                .iter()
                .any(|a| a == "--tests" || a == "--benches" || a == "--all-targets");
        let base = match &setup {
            Some(s) => target_dir.join(s.target.triple),
            None => target_dir.clone(),
        };
        let dir = profile_dir(&base, &o.subcommand, &o.cargo_args);
        // A second's slack: filesystem timestamps may be coarser than the clock.
        let since = started - Duration::from_secs(1);
        let artifacts = report::collect(&dir, since, tests);
        match o.report {
            ReportMode::Json => report::print_json(&artifacts)?,
            _ => report::print_human(&artifacts),
        }
    }
    Ok(outcome.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn our_options_are_taken_and_the_rest_passes_untouched() {
        let o = parse(&s(&[
            "build",
            "--release",
            "--rootfs",
            "/r",
            "-p",
            "foo",
            "--hang-timeout=60",
            "--features",
            "a b",
            "--message-format",
            "json",
            "--no-report",
            "--",
            "--nocapture",
            "--rootfs",
        ]))
        .unwrap();
        assert_eq!(o.subcommand, "build");
        assert_eq!(o.rootfs, Some(PathBuf::from("/r")));
        assert_eq!(o.hang_timeout, 60);
        assert_eq!(o.report, ReportMode::Off);
        assert_eq!(
            o.cargo_args,
            s(&[
                "--release",
                "-p",
                "foo",
                "--features",
                "a b",
                "--message-format",
                "json",
                "--",
                "--nocapture",
                "--rootfs"
            ])
        );
    }

    #[test]
    fn cargo_passthrough_and_bad_values() {
        let o = parse(&s(&["cargo", "run", "--bin", "x"])).unwrap();
        assert_eq!(o.subcommand, "run");
        assert_eq!(o.cargo_args, s(&["--bin", "x"]));
        assert!(parse(&s(&["build", "--retries", "many"])).is_err());
        assert!(parse(&s(&["build", "--rootfs"]))
            .unwrap_err()
            .to_string()
            .contains("needs a value"));
    }

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
