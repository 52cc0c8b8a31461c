//! Stage 1, the arguments: split cargo-for-arm's own options from cargo's, which pass to
//! cargo untouched (after the subcommand, in their order). Ours are defined once, with clap
//! (`cli::BuildOpts`): the split takes their names from that definition, and clap parses what
//! it took. A few of cargo's own (`cli::CargoShared`, `-q`, `--color`) the tool follows as
//! well; they still go to cargo. Then the target: `--target`/`--arch` (or the `target`
//! setting) resolved to an architecture, and checked against the rootfs once it is open.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::{Args, FromArgMatches};

use super::mode::{Mode, RustcSource};
use crate::arch::Arch;
use crate::cli::{self, BuildOpts, CargoShared, GlobalOpts, OptSpec};
use crate::idmap::MapMode;
use crate::rootfs::Rootfs;
use crate::sandbox::spec::Network;
use crate::settings::{self, Settings};
use crate::ui::{self, ColorChoice};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportMode {
    Human,
    Json,
    Off,
}

/// What the command line of a cargo command asks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// `-h` or `--help` before a `--`: the tool's help of `command` (`long`: `--help`).
    Help {
        command: String,
        long: bool,
    },
    Build(Box<Options>),
}

/// An architecture or target triple asked for, and who asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    /// As said: `aarch64-unknown-linux-gnu`, `arm64`.
    pub said: String,
    /// Who said it, for messages: `--target T`, `--arch A`, `target = "T" (origin)`.
    pub by: String,
    /// A triple no Debian architecture builds for: only a rootfs whose Rust has its standard
    /// library can, and its cargo gets `--target`.
    pub foreign: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub subcommand: String,
    pub rootfs: Option<PathBuf>,
    /// The architecture asked (a name `Arch::parse` takes; Debian's for a triple).
    pub arch: Option<String>,
    /// `--target`/`--arch` as said (with the `target` setting after [`resolve_target`]).
    pub asked: Option<Asked>,
    pub qemu: Option<PathBuf>,
    pub map: MapMode,
    pub network: Network,
    /// `--hang-timeout`; `None`: the setting (project metadata, config), else the default.
    pub hang_timeout: Option<u64>,
    /// `--env K=V`, for cargo in the sandbox.
    pub env: Vec<String>,
    /// `--project-rw`: the project is bound read-write (cargo fix, generated sources).
    pub project_rw: bool,
    /// `--rootfs-rw`: the emulated build may change the rootfs directory it runs in.
    pub rootfs_rw: bool,
    pub retries: u32,
    pub report: ReportMode,
    /// Absolute (relative ones are taken from the current directory, as cargo does).
    pub target_dir: Option<PathBuf>,
    pub seccomp: String,
    /// `--mode`; `None` means `CARGO_FOR_ARM_MODE`, the user's config, else auto.
    pub mode: Option<Mode>,
    pub tools_rootfs: Option<PathBuf>,
    pub native_rustc: Option<RustcSource>,
    /// `--cache` and `--sccache` (resolved with the settings in `cache.rs`).
    pub cache: Option<String>,
    pub sccache: Option<PathBuf>,
    /// `--cache-network`: an object store may give the build the host's network.
    pub cache_network: bool,
    /// `--isolation`; `None` means `CARGO_FOR_ARM_ISOLATION`, the user's config, else auto.
    pub isolation: Option<crate::isolation::Isolation>,
    /// `-q` before or after the command (cargo gets the one after).
    pub quiet: bool,
    /// `--color` after the command, else before it.
    pub color: Option<ColorChoice>,
    /// cargo's `--manifest-path`, absolute: the project is found from it.
    pub manifest_path: Option<PathBuf>,
    /// cargo's `--offline` or `--frozen`: the host's cargo stays offline too.
    pub offline: bool,
    /// Passed to cargo after the subcommand, untouched (but for an absolute
    /// `--manifest-path`, so it holds in the sandbox's working directory too).
    pub cargo_args: Vec<String>,
}

impl From<cli::BuildMode> for Mode {
    fn from(m: cli::BuildMode) -> Mode {
        match m {
            cli::BuildMode::Auto => Mode::Auto,
            cli::BuildMode::Native => Mode::Native,
            cli::BuildMode::Emulate => Mode::Emulate,
        }
    }
}

impl From<cli::NativeRustc> for RustcSource {
    fn from(r: cli::NativeRustc) -> RustcSource {
        match r {
            cli::NativeRustc::Auto => RustcSource::Auto,
            cli::NativeRustc::Rustup => RustcSource::Rustup,
            cli::NativeRustc::Rootfs => RustcSource::Rootfs,
        }
    }
}

/// The clap command of our options alone, named as the user sees it (for clap's errors).
fn ours_command(sub: &str) -> clap::Command {
    BuildOpts::augment_args(
        clap::Command::new(format!("cargo for-arm {sub}"))
            .no_binary_name(true)
            .disable_help_flag(true),
    )
}

/// The clap command of the cargo options the tool follows.
fn shared_command(sub: &str) -> clap::Command {
    GlobalOpts::augment_args(CargoShared::augment_args(
        clap::Command::new(format!("cargo for-arm {sub}"))
            .no_binary_name(true)
            .disable_help_flag(true),
    ))
}

/// Split our options from cargo's. `args[0]` is the subcommand (`cargo` passes the rest on);
/// `global` the options before it; `cwd` makes relative paths absolute.
pub fn parse(args: &[String], global: &GlobalOpts, cwd: &Path) -> Result<Parsed> {
    let mut it = args.iter().cloned();
    let mut sub = it.next().context("no cargo subcommand given")?;
    // `cargo for-arm cargo CMD …`: CMD's arguments as they are, `--help` included.
    let passthrough = sub == "cargo";
    if passthrough {
        sub = it
            .next()
            .context("`cargo for-arm cargo` needs a cargo subcommand")?;
        // `cargo for-arm cargo --help`: what `cargo` is here, not cargo's own help.
        if sub == "-h" || sub == "--help" {
            return Ok(Parsed::Help {
                command: "cargo".into(),
                long: sub == "--help",
            });
        }
    }
    let rest: Vec<String> = it.collect();
    match split(&sub, &rest, passthrough, cwd) {
        Split::Help { long } => Ok(Parsed::Help { command: sub, long }),
        Split::Args(s) => options(sub, s, global, cwd),
    }
}

/// The arguments after the subcommand, sorted.
struct Tokens {
    /// Ours, as `--name=value`, for clap.
    taken: Vec<String>,
    /// cargo's own that the tool follows too, for clap.
    followed: Vec<String>,
    /// What cargo gets, in order.
    cargo_args: Vec<String>,
}

enum Split {
    Help { long: bool },
    Args(Tokens),
}

fn split(sub: &str, rest: &[String], passthrough: bool, cwd: &Path) -> Split {
    let ours = OptSpec::of(&ours_command(sub));
    let shared = OptSpec::of(&shared_command(sub));
    let mut t = Tokens {
        taken: Vec::new(),
        followed: Vec::new(),
        cargo_args: Vec::new(),
    };
    let mut i = 0;
    while i < rest.len() {
        let a = &rest[i];
        i += 1;
        if a == "--" {
            t.cargo_args.extend(rest[i - 1..].iter().cloned());
            break;
        }
        if !passthrough && (a == "-h" || a == "--help") {
            return Split::Help {
                long: a == "--help",
            };
        }
        let (spec, inline, is_ours) = match OptSpec::find(&ours, a) {
            Some((s, v)) => (s, v, true),
            None => match OptSpec::find(&shared, a) {
                Some((s, v)) => (s, v, false),
                None => {
                    t.cargo_args.push(a.clone());
                    continue;
                }
            },
        };
        let name = spec.long.clone().unwrap_or_else(|| a.clone());
        // Handed to clap as `--name=value`, so a value that starts with `-` stays a value.
        let mut value = inline.map(str::to_string);
        let mut value_token = None;
        if spec.takes_value && value.is_none() {
            if let Some(v) = rest.get(i).filter(|v| *v != "--") {
                value = Some(v.clone());
                value_token = Some(v.clone());
                i += 1;
            }
        }
        let token = match &value {
            Some(v) if spec.takes_value => format!("--{name}={v}"),
            _ => a.clone(),
        };
        if is_ours {
            t.taken.push(token);
            continue;
        }
        t.followed.push(token);
        // cargo's own: it goes to cargo too; a manifest path made absolute, so that it holds
        // in the sandbox's working directory (which is not always ours).
        if let (true, Some(v)) = (spec.id == "manifest_path", &value) {
            let abs = cwd.join(v);
            // Resolved, so no `..` leads through a directory the sandbox does not have.
            let abs = abs.canonicalize().unwrap_or(abs);
            let abs = abs.to_string_lossy().into_owned();
            match value_token {
                Some(_) => t.cargo_args.extend([a.clone(), abs]),
                None => t.cargo_args.push(format!("--manifest-path={abs}")),
            }
            continue;
        }
        t.cargo_args.push(a.clone());
        t.cargo_args.extend(value_token);
    }
    Split::Args(t)
}

/// Ours and the followed ones through clap, into [`Options`].
fn options(sub: String, t: Tokens, global: &GlobalOpts, cwd: &Path) -> Result<Parsed> {
    let m = ours_command(&sub).try_get_matches_from(&t.taken)?;
    let b = BuildOpts::from_arg_matches(&m)?;
    let m = shared_command(&sub).try_get_matches_from(&t.followed)?;
    let c = CargoShared::from_arg_matches(&m)?;
    let g = GlobalOpts::from_arg_matches(&m)?;
    let (asked, arch) = asked_by_flags(b.arch.as_deref(), b.target.as_deref())?;
    Ok(Parsed::Build(Box::new(Options {
        subcommand: sub,
        rootfs: b.rootfs,
        arch,
        asked,
        qemu: b.qemu,
        map: b.map,
        network: b.network.into(),
        hang_timeout: b.hang_timeout,
        env: b.env,
        project_rw: b.project_rw,
        rootfs_rw: b.rootfs_rw,
        retries: b.retries,
        report: match (b.no_report, b.report) {
            (true, _) | (_, cli::Report::None) => ReportMode::Off,
            (_, cli::Report::Json) => ReportMode::Json,
            (_, cli::Report::Human) => ReportMode::Human,
        },
        target_dir: b.target_dir.map(|t| cwd.join(t)),
        seccomp: b.seccomp,
        mode: b.mode.map(Mode::from),
        tools_rootfs: b.tools_rootfs,
        native_rustc: b.native_rustc.map(RustcSource::from),
        cache: b.cache,
        sccache: b.sccache,
        cache_network: b.cache_network,
        isolation: b.isolation.map(|i| match i {
            cli::IsolationArg::Auto => crate::isolation::Isolation::Auto,
            cli::IsolationArg::Sandbox => crate::isolation::Isolation::Sandbox,
            cli::IsolationArg::None => crate::isolation::Isolation::None,
        }),
        quiet: global.quiet || g.quiet,
        color: g.color.or(global.color).map(ColorChoice::from),
        manifest_path: c.manifest_path.map(|p| cwd.join(p)),
        offline: c.offline || c.frozen,
        cargo_args: t.cargo_args,
    })))
}

/// What an architecture name or a triple is.
enum Kind {
    /// A Debian architecture: the name downstream stages take, and Debian's name when it
    /// tells (`arm` does not tell armhf from armel).
    Arch(Arch, String, Option<&'static str>),
    /// A triple no Debian architecture builds for, and why.
    Foreign(&'static str),
}

fn kind(said: &str) -> Result<Kind> {
    if !said.contains('-') {
        let arch = Arch::parse(said)?;
        let deb = match (arch, said) {
            (Arch::Arm, "armhf" | "armel") => Some(arch.debian_name(said)),
            (Arch::Arm, _) => None,
            _ => Some(arch.debian_name("")),
        };
        return Ok(Kind::Arch(arch, said.to_string(), deb));
    }
    Ok(match cli::triple_arch(said) {
        Ok(deb) => Kind::Arch(Arch::parse(deb)?, deb.to_string(), Some(deb)),
        Err(why) => Kind::Foreign(why),
    })
}

/// `--arch` and `--target`: one of them, or both when they agree.
fn asked_by_flags(
    arch: Option<&str>,
    target: Option<&str>,
) -> Result<(Option<Asked>, Option<String>)> {
    let one = |said: &str, by: &str| -> Result<(Option<Asked>, Option<String>)> {
        let (foreign, name) = match kind(said).with_context(|| format!("{by} {said}"))? {
            Kind::Arch(_, name, _) => (false, Some(name)),
            Kind::Foreign(_) => (true, None),
        };
        let asked = Asked {
            said: said.to_string(),
            by: format!("{by} {said}"),
            foreign,
        };
        Ok((Some(asked), name))
    };
    match (arch, target) {
        (None, None) => Ok((None, None)),
        (Some(a), None) => one(a, "--arch"),
        (None, Some(t)) => one(t, "--target"),
        (Some(a), Some(t)) => {
            let agree = a == t
                || match (kind(a)?, kind(t)?) {
                    (Kind::Arch(x, _, dx), Kind::Arch(y, _, dy)) => {
                        x == y && (dx.is_none() || dy.is_none() || dx == dy)
                    }
                    _ => false,
                };
            if !agree {
                bail!("--arch {a} and --target {t} disagree: give one of them");
            }
            one(t, "--target")
        }
    }
}

/// The `target` setting (`CARGO_FOR_ARM_TARGET`, the project's or the user's config) when no
/// flag said; then a triple no Debian architecture builds for needs a rootfs of the user's
/// own, and the rootfs's own cargo.
pub fn resolve_target(mut o: Options, settings: &Settings) -> Result<Options> {
    if o.asked.is_none() {
        let key = [&settings::TARGET, &settings::ARCH]
            .into_iter()
            .find_map(|k| Some((k, settings.get(k, None)?)));
        if let Some((key, v)) = key {
            let by = format!("{} = {:?} ({})", key.name, v.raw, v.origin);
            let (asked, arch) = v.parse(|s| asked_by_flags(None, Some(s)))?;
            o.asked = asked.map(|a| Asked { by, ..a });
            o.arch = arch;
        }
    }
    let Some(asked) = o.asked.as_ref().filter(|a| a.foreign) else {
        return Ok(o);
    };
    let Kind::Foreign(why) = kind(&asked.said)? else {
        unreachable!("asked.foreign is a foreign triple")
    };
    let have_rootfs = o.rootfs.is_some() || settings.get(&settings::ROOTFS, None).is_some();
    if !have_rootfs {
        bail!(
            "{}: not supported: {why}. Supported: {}; or build in a rootfs of your own whose Rust \
             has it: --rootfs DIR|NAME (with usr/lib/rustlib/{})",
            asked.by,
            cli::supported_triples(),
            asked.said
        );
    }
    if o.mode == Some(Mode::Native) {
        bail!(
            "--mode native builds for {}; {} is built by the rootfs's own cargo: --mode emulate",
            cli::supported_triples(),
            asked.by
        );
    }
    Ok(o)
}

/// The target asked, against the rootfs that builds it. A Debian target must be the rootfs's
/// architecture; a foreign triple needs its standard library in the rootfs, whose cargo then
/// gets `--target` (emulated: native mode builds the Debian targets only).
pub fn check_target(mut o: Options, rootfs: &Rootfs) -> Result<Options> {
    let Some(asked) = o.asked.clone() else {
        return Ok(o);
    };
    let r = rootfs.path().display();
    if asked.foreign {
        let t = &asked.said;
        if !rootfs.exists(&format!("/usr/lib/rustlib/{t}")) {
            let why = match kind(t)? {
                Kind::Foreign(why) => why,
                Kind::Arch(..) => unreachable!("asked.foreign is a foreign triple"),
            };
            bail!(
                "{}: not supported: {why}. Supported: {}; and the rootfs {r} has no Rust standard \
                 library for it either (usr/lib/rustlib/{t})",
                asked.by,
                cli::supported_triples()
            );
        }
        o.cargo_args
            .splice(0..0, ["--target".to_string(), t.clone()]);
        if o.mode.is_none() {
            ui::note(format_args!(
                "{t} is built by the rootfs's own cargo (emulated): native mode builds for {}",
                cli::supported_triples()
            ));
            o.mode = Some(Mode::Emulate);
        }
        return Ok(o);
    }
    let Kind::Arch(want, _, want_deb) = kind(&asked.said)? else {
        unreachable!("not foreign")
    };
    if let Ok((arch, desc)) = rootfs.arch() {
        let have = arch.debian_name(&desc);
        if arch != want || want_deb.is_some_and(|d| d != have) {
            let want = want_deb.unwrap_or(want.qemu_name());
            bail!(
                "{} asks for {want}, but the rootfs {r} is {desc} [{have}]: use a rootfs for \
                 {want}, or leave the rootfs out for the default one",
                asked.by
            );
        }
    }
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn build(v: &[&str]) -> Options {
        match parse(&s(v), &GlobalOpts::default(), Path::new("/w")).unwrap() {
            Parsed::Build(o) => *o,
            h => panic!("{h:?}"),
        }
    }

    fn err(v: &[&str]) -> String {
        format!(
            "{:#}",
            parse(&s(v), &GlobalOpts::default(), Path::new("/w")).unwrap_err()
        )
    }

    #[test]
    fn our_options_are_taken_and_the_rest_passes_untouched() {
        let o = build(&[
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
        ]);
        assert_eq!(o.subcommand, "build");
        assert_eq!(o.rootfs, Some(PathBuf::from("/r")));
        assert_eq!(o.hang_timeout, Some(60));
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
    fn every_option_of_the_clap_definition_is_ours_and_typed() {
        // The names come from clap: each long option of BuildOpts is taken, none reaches cargo.
        let specs = OptSpec::of(&ours_command("build"));
        assert!(specs.len() >= 15, "{specs:?}");
        for name in ["rootfs", "mode", "report", "target", "native-rustc"] {
            assert!(
                specs.iter().any(|s| s.long.as_deref() == Some(name)),
                "{name}"
            );
        }
        let o = build(&[
            "test",
            "--map",
            "full",
            "--network=host",
            "--retries",
            "3",
            "--report",
            "json",
            "--seccomp",
            "off",
            "--mode",
            "native",
            "--tools-rootfs",
            "t",
            "--native-rustc=rustup",
            "--qemu",
            "/q",
            "--target-dir",
            "out",
        ]);
        assert_eq!(o.map, MapMode::Full);
        assert_eq!(o.network, Network::Host);
        assert_eq!(o.retries, 3);
        assert_eq!(o.report, ReportMode::Json);
        assert_eq!(o.seccomp, "off");
        assert_eq!(o.mode, Some(Mode::Native));
        assert_eq!(o.tools_rootfs, Some(PathBuf::from("t")));
        assert_eq!(o.native_rustc, Some(RustcSource::Rustup));
        assert_eq!(o.qemu, Some(PathBuf::from("/q")));
        assert_eq!(o.target_dir, Some(PathBuf::from("/w/out")));
        assert!(o.cargo_args.is_empty(), "{:?}", o.cargo_args);
        // Defaults come from the same definition.
        let o = build(&["build"]);
        assert_eq!(o.hang_timeout, None);
        assert_eq!((o.retries, o.report), (1, ReportMode::Human));
        assert_eq!((o.network, o.map), (Network::None, MapMode::Auto));
    }

    #[test]
    fn cargo_passthrough_and_bad_values() {
        let o = build(&["cargo", "run", "--bin", "x", "--help"]);
        assert_eq!(o.subcommand, "run");
        assert_eq!(o.cargo_args, s(&["--bin", "x", "--help"]));
        let e = err(&["build", "--retries", "many"]);
        assert!(e.contains("--retries"), "{e}");
        let e = err(&["build", "--map", "half"]);
        assert!(e.contains("auto") && e.contains("full"), "{e}");
        let e = err(&["build", "--rootfs"]);
        assert!(e.contains("--rootfs"), "{e}");
        // A value that looks like an option is still the value.
        assert_eq!(
            build(&["build", "--rootfs", "-odd"]).rootfs,
            Some(PathBuf::from("-odd"))
        );
    }

    #[test]
    fn help_before_a_double_dash_is_ours() {
        let p = parse(
            &s(&["b", "--release", "-h"]),
            &GlobalOpts::default(),
            Path::new("/"),
        )
        .unwrap();
        assert_eq!(
            p,
            Parsed::Help {
                command: "b".into(),
                long: false
            }
        );
        let p = parse(&s(&["cargo", "-h"]), &GlobalOpts::default(), Path::new("/")).unwrap();
        assert!(matches!(p, Parsed::Help { command, .. } if command == "cargo"));
        let o = build(&["test", "--", "--help"]);
        assert_eq!(o.cargo_args, s(&["--", "--help"]));
    }

    #[test]
    fn cargo_options_the_tool_follows_still_reach_cargo() {
        let global = GlobalOpts {
            quiet: false,
            color: Some(cli::Color::Never),
        };
        let p = parse(
            &s(&[
                "build",
                "-q",
                "--color",
                "always",
                "--manifest-path",
                "sub/Cargo.toml",
                "--frozen",
                "-v",
                "-Zbuild-std",
            ]),
            &global,
            Path::new("/w"),
        )
        .unwrap();
        let Parsed::Build(o) = p else { panic!() };
        assert!(o.quiet && o.offline);
        assert_eq!(o.color, Some(ColorChoice::Always));
        assert_eq!(o.manifest_path, Some(PathBuf::from("/w/sub/Cargo.toml")));
        assert_eq!(
            o.cargo_args,
            s(&[
                "-q",
                "--color",
                "always",
                "--manifest-path",
                "/w/sub/Cargo.toml",
                "--frozen",
                "-v",
                "-Zbuild-std"
            ])
        );
        let o = build(&["check", "--manifest-path=/abs/Cargo.toml", "--offline"]);
        assert_eq!(
            o.cargo_args,
            s(&["--manifest-path=/abs/Cargo.toml", "--offline"])
        );
        assert!(o.offline && !o.quiet && o.color.is_none());
    }

    #[test]
    fn triples_map_to_debian_architectures() {
        let o = build(&[
            "build",
            "--target",
            "aarch64-unknown-linux-gnu",
            "--release",
        ]);
        assert_eq!(o.arch.as_deref(), Some("arm64"));
        assert_eq!(o.cargo_args, s(&["--release"]));
        let o = build(&["build", "--target=armv7-unknown-linux-gnueabihf"]);
        assert_eq!(o.arch.as_deref(), Some("armhf"));
        let o = build(&["build", "--arch", "armv5te-unknown-linux-gnueabi"]);
        assert_eq!(o.arch.as_deref(), Some("armel"));
        // Agreeing --arch and --target are one request; disagreeing ones an error.
        let o = build(&[
            "build",
            "--arch",
            "arm",
            "--target",
            "armv7-unknown-linux-gnueabihf",
        ]);
        assert_eq!(o.arch.as_deref(), Some("armhf"));
        let e = err(&[
            "build",
            "--arch",
            "armhf",
            "--target",
            "aarch64-unknown-linux-gnu",
        ]);
        assert!(e.contains("disagree"), "{e}");
        let e = err(&[
            "build",
            "--arch",
            "armel",
            "--target",
            "armv7-unknown-linux-gnueabihf",
        ]);
        assert!(e.contains("disagree"), "{e}");
        // A foreign triple is kept as said, for a rootfs of the user's own.
        let o = build(&["build", "--target", "arm-unknown-linux-gnueabihf"]);
        assert_eq!(o.arch, None);
        assert!(o.asked.as_ref().unwrap().foreign);
        let e = format!("{:#}", resolve_target(o, &Settings::default()).unwrap_err());
        assert!(
            e.contains("ARMv6") && e.contains("armv7-unknown-linux-gnueabihf [armhf]"),
            "{e}"
        );
        let o = build(&[
            "build",
            "--target",
            "x86_64-unknown-linux-musl",
            "--rootfs",
            "/r",
        ]);
        let o = resolve_target(o, &Settings::default()).unwrap();
        assert_eq!(o.cargo_args, Vec::<String>::new());
        let e = err(&["build", "--arch", "mips"]);
        assert!(e.contains("--arch mips"), "{e}");
    }

    #[test]
    fn a_foreign_triple_goes_to_the_cargo_of_a_rootfs_that_has_its_std() {
        let dir = std::env::temp_dir().join(format!("cfa-foreign-{}", std::process::id()));
        let t = "arm-unknown-linux-gnueabihf";
        std::fs::create_dir_all(dir.join("usr/lib/rustlib").join(t)).unwrap();
        let rootfs = Rootfs::open(&dir).unwrap();
        let r = dir.to_string_lossy().into_owned();
        let o = build(&["build", "--release", "--target", t, "--rootfs", &r]);
        let o = resolve_target(o, &Settings::default()).unwrap();
        let o = check_target(o, &rootfs).unwrap();
        assert_eq!(o.cargo_args, s(&["--target", t, "--release"]));
        assert_eq!(o.mode, Some(Mode::Emulate));
        // Native mode cannot build it; a rootfs without its std cannot either.
        let o = build(&["build", "--target", t, "--rootfs", &r, "--mode", "native"]);
        assert!(resolve_target(o, &Settings::default()).is_err());
        let o = build(&[
            "build",
            "--target",
            "x86_64-unknown-linux-musl",
            "--rootfs",
            &r,
        ]);
        let o = resolve_target(o, &Settings::default()).unwrap();
        let e = format!("{:#}", check_target(o, &rootfs).unwrap_err());
        assert!(
            e.contains("usr/lib/rustlib/x86_64-unknown-linux-musl"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
