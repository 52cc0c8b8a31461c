//! Stage 3, the mode: native (host compilers against the ARM rootfs as sysroot) when it can
//! work, else emulated (the rootfs's own cargo under qemu). In auto mode every reason to
//! emulate is said; with `--mode native` it is an error.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::args::Options;
use super::native::{self, Setup, Std, Target};
use crate::arch::Arch;
use crate::rootfs::bootstrap::CreateOptions;
use crate::rootfs::Rootfs;
use crate::settings::{self, Settings};
use crate::ui;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Auto,
    Native,
    Emulate,
}

impl Mode {
    pub fn parse(s: &str) -> Result<Mode> {
        Ok(match s {
            "auto" => Mode::Auto,
            "native" => Mode::Native,
            "emulate" => Mode::Emulate,
            v => bail!("--mode {v}: use auto, native or emulate"),
        })
    }
}

/// Where native mode's rustc comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RustcSource {
    /// The user's rustup toolchain when it has the target, else the tools rootfs's.
    Auto,
    Rustup,
    Rootfs,
}

impl RustcSource {
    pub fn parse(s: &str) -> Result<RustcSource> {
        Ok(match s {
            "auto" => RustcSource::Auto,
            "rustup" => RustcSource::Rustup,
            "rootfs" => RustcSource::Rootfs,
            v => bail!("--native-rustc {v}: use auto, rustup or rootfs"),
        })
    }
}

/// Why native mode cannot build: in auto mode a note (and emulation), else an error.
struct NoNative {
    reason: String,
    /// A failure that may pass (creating the tools rootfs): the note says to retry.
    retry: bool,
}

type Step<T> = std::result::Result<T, Choice>;

/// How a step of the choice ended early.
enum Choice {
    Emulate(NoNative),
    Fail(anyhow::Error),
}

impl From<anyhow::Error> for Choice {
    fn from(e: anyhow::Error) -> Self {
        Choice::Fail(e)
    }
}

fn emulate<T>(reason: String) -> Step<T> {
    Err(Choice::Emulate(NoNative {
        reason,
        retry: false,
    }))
}

/// The inputs of the choice.
pub struct Ask<'a> {
    pub opts: &'a Options,
    pub settings: &'a Settings,
    pub arm: &'a Rootfs,
    pub arch: Arch,
    pub desc: &'a str,
    pub quiet: bool,
}

/// `Some` when native mode builds for this rootfs.
pub fn choose(a: &Ask) -> Result<Option<Setup>> {
    let mode = a
        .settings
        .get_or(&settings::MODE, a.opts.mode, Mode::parse, Mode::Auto)?;
    if a.arch.runs_natively() {
        // An amd64 rootfs on an amd64 host: its cargo runs at full speed, nothing is emulated.
        return Ok(None);
    }
    if mode == Mode::Emulate {
        if !a.quiet {
            ui::say(format_args!(
                "mode emulate (asked for): cargo runs emulated in {}",
                a.arm.path().display()
            ));
        }
        return Ok(None);
    }
    match native_setup(a, mode) {
        Ok(s) => Ok(Some(s)),
        Err(Choice::Fail(e)) => Err(e),
        Err(Choice::Emulate(NoNative { reason, .. })) if mode == Mode::Native => {
            bail!("--mode native: {reason}")
        }
        Err(Choice::Emulate(NoNative { reason, retry })) => {
            no_emulation_in_a_default_sysroot(a, &reason)?;
            if !a.quiet {
                let retry = if retry {
                    " (retry with --mode native)"
                } else {
                    ""
                };
                ui::say(format_args!("mode emulate: {reason}{retry}"));
            }
            Ok(None)
        }
    }
}

/// Auto mode falls back to emulation when native mode cannot be set up, but emulation needs
/// the rootfs's own cargo, configured by dpkg. The default made for a rustup build is a
/// sysroot (no cargo, no maintainer scripts run), so emulating in it cannot work: the error
/// is then why native mode failed, with the way to an emulated build (`--mode emulate`, whose
/// default rootfs has cargo and is created on first use). Not a fallback to that rootfs: what
/// makes the set-up fail (no mirror for the tools rootfs, offline, a tools rootfs without
/// clang) would stop its creation too, or is fixed in seconds, while the fallback would build
/// for minutes with another rustc (Debian's) under emulation (docs/ARCHITECTURE.md, "Native mode").
fn no_emulation_in_a_default_sysroot(a: &Ask, reason: &str) -> Result<()> {
    let emulates = a.arm.configured() != Some(false) && a.arm.exists("/usr/bin/cargo");
    if emulates || super::project::configured_rootfs(a.opts, a.settings).is_some() {
        return Ok(());
    }
    bail!(
        "mode auto: native mode cannot build: {reason}. The default rootfs {} is a sysroot for native \
         builds (no cargo), so this build cannot fall back to emulation: fix that and build again, or \
         build with --mode emulate (Debian's cargo under qemu, in the emulated default rootfs, created \
         on first use)",
        a.arm.path().display()
    )
}

/// Before any rootfs exists: whether native mode will build for `arch` with the user's rustup
/// toolchain (mode not `emulate`, rustc not the rootfs's, a target native mode supports, the
/// toolchain has its std). Then the default ARM rootfs needs to be a sysroot only.
pub fn rustup_builds(opts: &Options, settings: &Settings, arch: Arch, desc: &str) -> Result<bool> {
    let mode = settings.get_or(&settings::MODE, opts.mode, Mode::parse, Mode::Auto)?;
    let source = settings.get_or(
        &settings::NATIVE_RUSTC,
        opts.native_rustc,
        RustcSource::parse,
        RustcSource::Auto,
    )?;
    if mode == Mode::Emulate || source == RustcSource::Rootfs || arch.runs_natively() {
        return Ok(false);
    }
    let (Some(target), Some(_)) = (Target::of(arch, desc), native::host_triple()) else {
        return Ok(false);
    };
    Ok(match native::host_sysroot() {
        Some(s) => native::find_std_in_sysroot(&s, target.triple)?.is_some(),
        None => false,
    })
}

fn native_setup(a: &Ask, mode: Mode) -> Step<Setup> {
    let (Some(target), Some(host_triple)) = (Target::of(a.arch, a.desc), native::host_triple())
    else {
        return emulate(format!(
            "native mode builds for armhf and arm64 on x86_64 and arm64 hosts; {} is emulated",
            a.desc
        ));
    };
    let rustup = rustup_toolchain(a, &target)?;
    let std = match &rustup {
        Some((_, std)) => std.clone(),
        None => rootfs_std(a.arm, &target)?,
    };
    // Before anything is created or compiled (a link would fail at the very end): refused
    // with --mode native; auto emulates, saying why.
    if let Err(e) = native::check_c_runtime(a.arm, &target) {
        return match mode {
            Mode::Native => Err(Choice::Fail(e)),
            _ => emulate(format!("{e:#}")),
        };
    }
    let tools = tools_rootfs(a, mode, rustup.is_some())?;
    let missing = native::missing_tools(&tools, rustup.is_some());
    if !missing.is_empty() {
        return emulate(format!(
            "the tools rootfs {} lacks {}: install them in it (cargo for-arm rootfs shell NAME, then \
             apt-get install {}), or create it with --include {}",
            tools.path().display(),
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
            tools.path().to_path_buf(),
            native::find_std(tools.path(), host_triple)?,
        ),
    };
    let Some(host_std) = host_std else {
        return emulate(format!(
            "{} has no Rust standard library for {host_triple}",
            host_root.display()
        ));
    };
    if let Err(e) =
        native::check_versions(&host_std.version, &std.version, &host_root, a.arm.path())
    {
        return match mode {
            Mode::Native => Err(Choice::Fail(e)),
            _ => emulate(format!("{e:#}")),
        };
    }
    Ok(Setup {
        target,
        tools,
        host_version: host_std.version,
        target_std: std,
        rustup: rustup.map(|(s, _)| s),
    })
}

/// The user's rustup toolchain, when it has the target's std and may be used.
fn rustup_toolchain(a: &Ask, target: &Target) -> Step<Option<(PathBuf, Std)>> {
    let source = a.settings.get_or(
        &settings::NATIVE_RUSTC,
        a.opts.native_rustc,
        RustcSource::parse,
        RustcSource::Auto,
    )?;
    if source == RustcSource::Rootfs {
        return Ok(None);
    }
    let sysroot = native::host_sysroot();
    let std = match &sysroot {
        Some(s) => native::find_std_in_sysroot(s, target.triple)?,
        None => None,
    };
    match (sysroot, std) {
        (Some(sysroot), Some(std)) => Ok(Some((sysroot, std))),
        (sysroot, _) if source == RustcSource::Rustup => Err(Choice::Fail(anyhow::anyhow!(
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
        ))),
        _ => Ok(None),
    }
}

/// The ARM rootfs's own Debian std (libstd-rust-dev).
fn rootfs_std(arm: &Rootfs, target: &Target) -> Step<Std> {
    match native::find_std(arm.path(), target.triple)? {
        Some(std) => Ok(std),
        None => emulate(format!(
            "{} has no Rust standard library for {t} (usr/lib/rustlib/{t}); in Debian it is the package \
             libstd-rust-dev: cargo for-arm rootfs shell NAME, then apt-get install libstd-rust-dev \
             (or: rustup target add {t})",
            arm.path().display(),
            t = target.triple,
        )),
    }
}

/// The tools rootfs: configured (`--tools-rootfs`, `CARGO_FOR_ARM_TOOLS_ROOTFS`, config),
/// else the one of the ARM rootfs's suite, created on first use (auto or `--mode native`):
/// with a rustup toolchain only the C tools ([`native::C_TOOLS_PACKAGES`]), unless the full one
/// is there already.
fn tools_rootfs(a: &Ask, mode: Mode, rustup: bool) -> Step<Rootfs> {
    let flag = a
        .opts
        .tools_rootfs
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let name = match a.settings.get(&settings::TOOLS_ROOTFS, flag.as_deref()) {
        Some(v) => v.path(),
        None => default_tools(a, mode, rustup)?,
    };
    let tools = Rootfs::open(&name)?;
    let (arch, desc) = tools.arch()?;
    if arch != Arch::host() {
        return Err(Choice::Fail(anyhow::anyhow!(
            "the tools rootfs {} is a {desc} rootfs; it must be for this machine ({})",
            tools.path().display(),
            Arch::host().debian_name("")
        )));
    }
    Ok(tools)
}

fn default_tools(a: &Ask, mode: Mode, rustup: bool) -> Step<PathBuf> {
    let Some(suite) = a.arm.suite() else {
        return emulate(format!(
            "the Debian suite of {} is unknown (no VERSION_CODENAME in its /etc/os-release), so no \
             matching tools rootfs can be chosen: pass --tools-rootfs DIR|NAME",
            a.arm.path().display()
        ));
    };
    let full = native::tools_name(&suite);
    let host_deb = Arch::host().debian_name("");
    let store = crate::rootfs::store::Store::open()?;
    if store.get(&full).is_some() {
        return Ok(PathBuf::from(full));
    }
    // cargo and rustc come from the rustup toolchain: the C tools are enough.
    let (name, packages) = match rustup {
        true => (native::c_tools_name(&suite), native::C_TOOLS_PACKAGES),
        false => (full, native::TOOLS_PACKAGES),
    };
    if store.get(&name).is_some() {
        return Ok(PathBuf::from(name));
    }
    let create = format!(
        "cargo for-arm rootfs create {name} --suite {suite} --arch {host_deb}{} --include {packages}",
        if rustup { " --variant sysroot" } else { "" }
    );
    if !crate::qemu::may_fetch() {
        let why = format!(
            "no tools rootfs {name} for native builds, and CARGO_FOR_ARM_OFFLINE forbids creating it: {create}"
        );
        return match mode {
            Mode::Auto => emulate(why),
            _ => Err(Choice::Fail(anyhow::anyhow!("--mode native: {why}"))),
        };
    }
    // The C tools of a rustup build: their files, unpacked without maintainer scripts (the
    // alternatives they would make, cc and c++, are made); the full one is configured by dpkg.
    let variant = match rustup {
        true => "sysroot",
        false => "minbase",
    };
    ui::say(format_args!("mode native: creating the tools rootfs {name} (Debian {suite} {host_deb} with {packages}) for native builds, once"));
    let made = super::project::create_rootfs(&CreateOptions {
        name: name.clone(),
        suite: suite.clone(),
        arch: host_deb.into(),
        include: packages.split(',').map(str::to_string).collect(),
        variant: variant.into(),
        mirror: None,
        keyring: None,
        no_verify: false,
        no_snapshot: false,
    })
    .with_context(|| format!("creating the tools rootfs {name}"));
    match (made, mode) {
        (Ok(()), _) => Ok(PathBuf::from(name)),
        (Err(e), Mode::Auto) => Err(Choice::Emulate(NoNative {
            reason: format!("{e:#}"),
            retry: true,
        })),
        (Err(e), _) => Err(Choice::Fail(e)),
    }
}
