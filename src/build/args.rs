//! Stage 1, the arguments: split cargo-for-arm's own options from cargo's, which pass to
//! cargo untouched (after the subcommand, in their order).

use std::path::PathBuf;

use anyhow::{bail, Context, Result};

use super::mode::{Mode, RustcSource};
use crate::idmap::MapMode;
use crate::sandbox::spec::Network;

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
    pub native_rustc: Option<RustcSource>,
    /// Passed to cargo after the subcommand, untouched.
    pub cargo_args: Vec<String>,
}

impl Options {
    fn new(subcommand: String) -> Options {
        Options {
            subcommand,
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
        }
    }
}

/// The options cargo-for-arm takes (each with a value); everything else is cargo's.
const OURS: [&str; 13] = [
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

/// Split our options from cargo's. `args[0]` is the subcommand (`cargo` passes the rest on).
pub fn parse(args: &[String]) -> Result<Options> {
    let mut it = args.iter().cloned();
    let mut sub = it.next().context("no cargo subcommand given")?;
    if sub == "cargo" {
        sub = it
            .next()
            .context("`cargo for-arm cargo` needs a cargo subcommand")?;
    }
    let mut o = Options::new(sub);
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
        i += 1;
        if name == "--no-report" {
            o.report = ReportMode::Off;
            continue;
        }
        if !OURS.contains(&name.as_str()) {
            o.cargo_args.push(a.clone());
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => {
                i += 1;
                rest.get(i - 1)
                    .cloned()
                    .with_context(|| format!("{name} needs a value"))?
            }
        };
        take(&mut o, &name, value)?;
    }
    Ok(o)
}

/// One of [`OURS`] with its value.
fn take(o: &mut Options, name: &str, value: String) -> Result<()> {
    match name {
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
        "--native-rustc" => o.native_rustc = Some(RustcSource::parse(&value)?),
        _ => unreachable!("only names of OURS are taken"),
    }
    Ok(())
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
}
