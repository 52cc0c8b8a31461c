//! The command line, as clap parses it. The commands turn it into typed values (a
//! `sandbox::spec::Spec`, build options); nothing below them sees these types.
//!
//! The cargo commands (`build`, `test`, …) are the exception to "clap parses": our options
//! and cargo's stand among each other in any order there, so `build/args.rs` splits them by
//! hand. Their names and values still come from here, from [`BuildOpts`], [`CargoShared`] and
//! [`GlobalOpts`], which also make their `--help`, the completions and the man page.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Arg, Args, CommandFactory, Parser, Subcommand, ValueEnum};

use crate::idmap::MapMode;

#[derive(Debug, Parser)]
#[command(
    name = "cargo-for-arm",
    bin_name = "cargo for-arm",
    version,
    about = "Build and run Rust projects for ARM on x86_64 Linux, without root and without Docker",
    after_help = "Any other cargo command (tree, update, metadata …) runs in the rootfs the same way; \
                  `cargo for-arm cargo CMD …` runs cargo's CMD with its own --help (cargo's `run` is \
                  `cargo for-arm cargo run`). `cargo for-arm CMD --help` shows the options of CMD.\n\n\
                  Exit codes: the command's own code, 128+N if it died of signal N, \
                  124 if it hung and every retry hung, 125 if cargo-for-arm could not set the sandbox up, 126 if the command could \
                  not be executed, 127 if it was not found, 2 for a command line it refuses."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalOpts,
    #[command(subcommand)]
    pub command: Command,
}

/// The options of every command, before or after it.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
pub struct GlobalOpts {
    /// Print less (no notes); after a cargo command it reaches cargo too.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Colour in the tool's status lines (and cargo's): auto (on a terminal), always or never.
    #[arg(long, value_enum, value_name = "WHEN", global = true)]
    pub color: Option<Color>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Default hang timeout of builds. Busy CPU is progress, so a long emulated LLVM codegen is
/// never a hang; only a sandbox where no process computes, reads or writes for this long is.
pub const DEFAULT_HANG_TIMEOUT: u64 = 300;

/// cargo-for-arm's own options of the cargo commands. They may stand anywhere among cargo's,
/// which go to cargo untouched and in order (build/args.rs); cargo never sees these.
#[derive(Debug, Args, Clone, PartialEq, Eq)]
#[command(next_help_heading = "cargo-for-arm's options")]
pub struct BuildOpts {
    /// The ARM rootfs to build in (native mode: against): a directory or a store name
    /// [default: CARGO_FOR_ARM_ROOTFS, the project's or your config's `rootfs`, else
    /// debian-bookworm-armhf (arm64: debian-trixie-arm64), created on first use]
    #[arg(long, value_name = "DIR|NAME")]
    pub rootfs: Option<PathBuf>,
    /// Architecture to build for: armhf, armel, arm64 … or a target triple, as --target
    /// [default: the rootfs's]
    #[arg(long, value_name = "ARCH")]
    pub arch: Option<String>,
    /// Target triple to build for: armv7-unknown-linux-gnueabihf [armhf],
    /// aarch64-unknown-linux-gnu [arm64] … The tool sets cargo's target itself
    /// [default: CARGO_FOR_ARM_TARGET, the project's or your config's `target`, else the rootfs's]
    #[arg(long, value_name = "TRIPLE")]
    pub target: Option<String>,
    /// Static qemu to use [default: CARGO_FOR_ARM_QEMU_<ARCH>, the newest on PATH or fetched]
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Id map: full (newuidmap + /etc/subuid), single (only you, as root inside), or auto
    #[arg(long, value_enum, default_value_t = MapMode::Auto)]
    pub map: MapMode,
    /// Network of the build: none (dependencies are fetched on the host first) or host
    #[arg(long, value_enum, default_value_t = Network::None)]
    pub network: Network,
    /// Kill and retry the build when no process in it computes, reads, writes, starts or
    /// ends for this long; 0 turns supervision off [default: CARGO_FOR_ARM_HANG_TIMEOUT, the
    /// project's or your config's `hang-timeout`, else 300]
    #[arg(long, value_name = "SECS")]
    pub hang_timeout: Option<u64>,
    /// Set a variable for cargo in the sandbox (also `env = ["K=V"]` in the project's
    /// metadata); the ones cargo-for-arm sets itself are refused
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Bind the project read-write (cargo fix, build scripts that write into src/); by
    /// default only its target dir is writable, so a build cannot change what your own cargo
    /// reads next
    #[arg(long)]
    pub project_rw: bool,
    /// Let the build change the rootfs directory it runs in (by default it sees it through a
    /// throwaway overlay); a stored rootfs is changed only by `rootfs shell`
    #[arg(long)]
    pub rootfs_rw: bool,
    /// How many times a hung build is retried
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub retries: u32,
    /// The report of the ELF artifacts built (machine, glibc floor, libraries)
    #[arg(long, value_enum, value_name = "FORMAT", default_value_t = Report::Human)]
    pub report: Report,
    /// No report (as --report none)
    #[arg(long)]
    pub no_report: bool,
    /// Where cargo-for-arm writes: cargo works in DIR/for-arm/<flavour>, the final artifacts
    /// land in DIR/<triple>/<profile> [default: the workspace's target]
    #[arg(long, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// Syscall filter: default (seccomp/<host arch>.json), off, or a policy FILE
    #[arg(long, value_name = "off|default|FILE", default_value = "default")]
    pub seccomp: String,
    /// native: host rustc and clang against the ARM rootfs; emulate: the rootfs's own cargo
    /// under qemu; auto: native when it can work [default: CARGO_FOR_ARM_MODE, your config's
    /// `mode`, else auto]
    #[arg(long, value_enum)]
    pub mode: Option<BuildMode>,
    /// Native mode's rootfs for this machine, with clang and lld [default:
    /// debian-<suite>-amd64-tools, ubuntu-<suite>-amd64-tools on an Ubuntu host]
    #[arg(long, value_name = "DIR|NAME")]
    pub tools_rootfs: Option<PathBuf>,
    /// Native mode's rustc: your rustup toolchain (when it has the target), the tools
    /// rootfs's, or auto
    #[arg(long, value_enum)]
    pub native_rustc: Option<NativeRustc>,
    /// Native mode's shared compile cache: sccache (read-write), sccache:ro (read-only), or
    /// none [default: CARGO_FOR_ARM_CACHE, `cache` of the project or your config, sccache when
    /// RUSTC_WRAPPER names it, else none]
    #[arg(long, value_name = "sccache|sccache:ro|none")]
    pub cache: Option<String>,
    /// The sccache program bound into the build sandbox [default: RUSTC_WRAPPER when it is
    /// sccache, else sccache on PATH]
    #[arg(long, value_name = "PATH")]
    pub sccache: Option<PathBuf>,
    /// Let the compile cache reach an HTTPS object store (S3, GCS, Azure, the GitHub Actions
    /// cache, WebDAV): the build then shares the host's network and its credentials are
    /// visible to every build script [default: CARGO_FOR_ARM_CACHE_NETWORK, `cache-network`
    /// of your config, else off]
    #[arg(long)]
    pub cache_network: bool,
    /// sandbox: a rootless sandbox (an error where the kernel refuses one); none: no sandbox,
    /// native builds only, reduced isolation (no_new_privs, seccomp, Landlock); auto: the
    /// best that works here, said once when it is not the full sandbox [default:
    /// CARGO_FOR_ARM_ISOLATION, your config's `isolation`, else auto]
    #[arg(long, value_enum)]
    pub isolation: Option<IsolationArg>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum IsolationArg {
    Auto,
    Sandbox,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Report {
    Human,
    Json,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BuildMode {
    Auto,
    Native,
    Emulate,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NativeRustc {
    Auto,
    Rustup,
    Rootfs,
}

/// cargo's own options that cargo-for-arm follows too. They still go to cargo.
#[derive(Debug, Args, Clone, Default, PartialEq, Eq)]
#[command(next_help_heading = "cargo's options the tool follows too (they reach cargo as well)")]
pub struct CargoShared {
    /// Path to Cargo.toml: the project (and its for-arm metadata) is found from it, not from
    /// the current directory
    #[arg(long, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Run without accessing the network: the host's `cargo vendor` too
    #[arg(long)]
    pub offline: bool,
    /// Require Cargo.lock to be up to date, and run offline (the host's `cargo vendor` too)
    #[arg(long)]
    pub frozen: bool,
}

/// The cargo commands cargo-for-arm runs for ARM: name, alias, what it does. `run` is not one:
/// `cargo for-arm run` is the sandbox; cargo's run is `cargo for-arm cargo run`.
pub const CARGO_COMMANDS: [(&str, Option<&str>, &str); 8] = [
    ("build", Some("b"), "Compile the current package for ARM"),
    (
        "check",
        Some("c"),
        "Check the current package for errors, for ARM",
    ),
    (
        "test",
        Some("t"),
        "Build the tests for ARM and run them (emulated)",
    ),
    (
        "bench",
        None,
        "Build the benchmarks for ARM and run them (emulated)",
    ),
    ("doc", Some("d"), "Build the documentation, for ARM"),
    (
        "rustc",
        None,
        "Compile the current package for ARM, passing extra options to rustc",
    ),
    (
        "clippy",
        None,
        "Lint the current package for ARM (the rootfs's clippy)",
    ),
    ("fix", None, "Apply rustc's suggestions, compiling for ARM"),
];

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command inside an ARM root filesystem, in an unprivileged sandbox.
    #[command(display_order = 20)]
    Run(RunArgs),
    /// Check, by trying each, what the sandbox needs from this machine.
    #[command(display_order = 21)]
    Doctor(DoctorArgs),
    /// Manage root filesystems in the per-user store.
    #[command(subcommand, display_order = 22)]
    Rootfs(RootfsCommand),
    /// The static qemus cargo-for-arm can use, and fetching one without root.
    #[command(subcommand, display_order = 23)]
    Qemu(QemuCommand),
    /// Print shell completions: cargo-for-arm completions bash > ~/.local/share/bash-completion/completions/cargo-for-arm
    #[command(display_order = 24)]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff): cargo-for-arm man | man -l -
    #[command(display_order = 25)]
    Man {
        /// The page of one command (build, rootfs …) instead of the tool's.
        command: Option<String>,
    },
    /// (internal) Unpack an archive; run inside a user namespace by `rootfs pull`.
    #[command(name = "__unpack", hide = true)]
    InternalUnpack {
        archive: PathBuf,
        dest: PathBuf,
        max_bytes: u64,
        max_entries: u64,
        xz_memlimit: u64,
        /// Keep setuid/setgid bits (the tool's own snapshots only).
        #[arg(long)]
        keep_setid: bool,
    },
    /// (internal) Unpack the files of .debs into a tree; run inside a user namespace by
    /// `rootfs create`.
    #[command(name = "__extract-debs", hide = true)]
    InternalExtractDebs { root: PathBuf, debs: Vec<PathBuf> },
    /// (internal) cargo's target runner in native mode: runs an ARM program through the
    /// runner service of the build (src/runner.rs).
    #[command(name = "__run-target", hide = true)]
    InternalRunTarget {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        argv: Vec<String>,
    },
    /// (internal) In the build sandbox: a loopback TCP port forwarded to the compile cache's
    /// endpoint socket (src/build/forward.rs); prints the port.
    #[command(name = "__cache-forward", hide = true)]
    InternalCacheForward { socket: PathBuf },
    /// (internal) Pack a tree as .tar.zst; run inside a user namespace by `rootfs create`.
    #[command(name = "__pack", hide = true)]
    InternalPack { root: PathBuf, out: PathBuf },
    /// (internal) Remove a tree; run inside a user namespace by `rootfs rm`.
    #[command(name = "__remove-tree", hide = true)]
    InternalRemoveTree { path: PathBuf },
    /// Any other cargo command (tree, update, …) runs in the rootfs like the cargo commands
    /// of [`CARGO_COMMANDS`], which `main` hands to `build` before clap parses.
    #[command(external_subcommand)]
    Cargo(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Network {
    /// Share the host's network.
    Host,
    /// A new, empty network namespace (loopback only, down).
    None,
}

#[derive(Debug, Args, Clone)]
pub struct SandboxArgs {
    /// Root filesystem to run in: a directory, or the name of a rootfs in the store.
    #[arg(long, value_name = "DIR|NAME")]
    pub rootfs: PathBuf,
    /// Guest architecture, or a target triple (default: detected from the rootfs's /bin/sh).
    #[arg(long, value_name = "ARCH", value_parser = arch_or_triple)]
    pub arch: Option<String>,
    /// Static qemu to use (default: $CARGO_FOR_ARM_QEMU_<ARCH>, then qemu-<arch>-static and
    /// qemu-<arch> on PATH).
    #[arg(long, value_name = "PATH")]
    pub qemu: Option<PathBuf>,
    /// Bind a host path into the sandbox: HOST[:GUEST[:ro|rw]] (GUEST defaults to HOST).
    #[arg(long = "bind", value_name = "HOST[:GUEST[:ro]]")]
    pub binds: Vec<String>,
    /// Do not bind the current directory into the sandbox.
    #[arg(long)]
    pub no_bind_cwd: bool,
    /// Let the run change a rootfs directory you named (apt-get install inside it); by
    /// default a run sees every rootfs through a throwaway overlay
    #[arg(long)]
    pub rootfs_rw: bool,
    /// Working directory inside (default: the current directory, which is bound).
    #[arg(long, value_name = "DIR")]
    pub workdir: Option<PathBuf>,
    /// Set an environment variable inside (the host environment is not passed through).
    #[arg(long = "env", value_name = "K=V")]
    pub env: Vec<String>,
    /// Network: share the host's, or none at all.
    #[arg(long, value_enum, default_value_t = Network::Host)]
    pub network: Network,
    /// Id map: full (newuidmap + /etc/subuid), single (only you, as root inside), or auto.
    #[arg(long, value_enum, default_value_t = MapMode::Auto)]
    pub map: MapMode,
    /// Syscall filter: default (seccomp/<host arch>.json), off, or a policy FILE.
    #[arg(long, value_name = "off|default|FILE", default_value = "default")]
    pub seccomp: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub sandbox: SandboxArgs,
    /// Kill the run (and everything in its sandbox) when no process in it uses CPU, does
    /// I/O, starts or ends for this many seconds; then retry. Off by default for `run`.
    #[arg(long, value_name = "SECS")]
    pub hang_timeout: Option<u64>,
    /// How many times a hung run is retried.
    #[arg(long, default_value_t = 1)]
    pub retries: u32,
    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "CMD")]
    pub command: Vec<String>,
}

#[derive(Debug, Subcommand)]
pub enum RootfsCommand {
    /// Download (or take a local archive), verify and unpack a rootfs into the store.
    Pull {
        /// URL, archive file (.tar, .tar.xz, .tar.gz, .tar.zst), or preset name.
        #[arg(required_unless_present = "list_presets")]
        source: Option<String>,
        /// The expected sha256 of the archive.
        #[arg(long, value_name = "HEX", conflicts_with = "checksums")]
        sha256: Option<String>,
        /// A SHA256SUMS-style list (URL or file) that names the archive.
        #[arg(long, value_name = "URL|FILE")]
        checksums: Option<String>,
        /// The name in the store (default: from the file name or preset).
        #[arg(long)]
        name: Option<String>,
        /// Show the well-known rootfs images that can be pulled by name.
        #[arg(long)]
        list_presets: bool,
        /// Refuse archives that unpack to more bytes than this.
        #[arg(long, default_value_t = 32 << 30, value_name = "BYTES")]
        max_bytes: u64,
        /// Refuse archives with more entries than this.
        #[arg(long, default_value_t = 2_000_000, value_name = "N")]
        max_entries: u64,
    },
    /// Bootstrap a Debian rootfs (with cargo, or what you --include) from a mirror, rootlessly.
    Create(crate::rootfs::bootstrap::CreateOptions),
    /// Add a directory or archive of your own to the store.
    Import {
        source: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// Show the rootfs in the store: name, arch, distro, size, source, date.
    List,
    /// Remove a rootfs from the store.
    Rm { name: String },
    /// An interactive shell inside a stored rootfs, to set it up by hand (changes are kept).
    Shell {
        name: String,
        #[arg(long, value_enum, default_value_t = Network::Host)]
        network: Network,
        #[arg(long, value_enum, default_value_t = MapMode::Auto)]
        map: MapMode,
        #[arg(long, value_name = "PATH")]
        qemu: Option<PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub enum QemuCommand {
    /// Show every qemu found (env, PATH, cache), whether usable, and its version.
    List,
    /// Fetch a static qemu for ARCH from the host's Debian or Ubuntu archive, verified through
    /// the archive's signed chain.
    Fetch {
        /// arm, aarch64 … or a target triple.
        #[arg(value_parser = arch_or_triple)]
        arch: String,
        /// Suite (default: Debian's trixie, then bookworm; Ubuntu's: the host's release's
        /// -updates, then the release).
        #[arg(long)]
        suite: Option<String>,
        /// Mirror (default: CARGO_FOR_ARM_MIRROR, else the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
        /// OpenPGP keyring to verify InRelease with (default: the archive keyring of the
        /// mirror's distribution, Debian's or Ubuntu's).
        #[arg(long)]
        keyring: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the rung, the table and the fixes as one JSON object (for CI logs)
    #[arg(long)]
    pub json: bool,
    /// Architectures to look for a static qemu for (default: arm and aarch64), or triples.
    #[arg(long = "arch", value_name = "ARCH", value_parser = arch_or_triple)]
    pub arches: Vec<String>,
}

impl From<Network> for crate::sandbox::spec::Network {
    fn from(n: Network) -> Self {
        match n {
            Network::Host => crate::sandbox::spec::Network::Host,
            Network::None => crate::sandbox::spec::Network::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(v: &[&str]) -> Vec<OsString> {
        v.iter().map(OsString::from).collect()
    }

    #[test]
    fn the_command_line_is_consistent() {
        // clap's own checks (unique names, valid defaults), with the cargo commands added.
        command().debug_assert();
        let cmd = command();
        for (name, alias, _) in CARGO_COMMANDS {
            let sub = cmd.find_subcommand(name).expect(name);
            assert!(sub.get_arguments().any(|a| a.get_long() == Some("rootfs")));
            assert_eq!(alias.is_some(), sub.get_visible_aliases().count() == 1);
        }
        assert!(cmd.find_subcommand("run").is_some() && cargo_command_name("run").is_none());
    }

    #[test]
    fn cargo_commands_are_found_after_the_global_options() {
        let at = |v: &[&str]| cargo_command_at(&os(v));
        assert_eq!(at(&["t", "build", "--rootfs", "r"]), Some(1));
        assert_eq!(at(&["t", "-q", "--color", "never", "b"]), Some(4));
        assert_eq!(at(&["t", "--color=never", "test"]), Some(2));
        assert_eq!(at(&["t", "cargo", "run"]), Some(1));
        // Everything else is clap's: other commands, help, unknown options.
        assert_eq!(at(&["t", "rootfs", "list"]), None);
        assert_eq!(at(&["t", "tree"]), None);
        assert_eq!(at(&["t", "--version"]), None);
        assert_eq!(at(&["t", "--bogus", "build"]), None);
        assert_eq!(at(&["t"]), None);
        let g = parse_globals(&os(&["t", "-q", "--color", "always"])).unwrap();
        assert!(g.quiet && g.color == Some(Color::Always));
    }

    #[test]
    fn triples_where_an_architecture_is_taken() {
        assert_eq!(arch_or_triple("arm64").unwrap(), "arm64");
        assert_eq!(
            arch_or_triple("aarch64-unknown-linux-gnu").unwrap(),
            "arm64"
        );
        assert_eq!(
            arch_or_triple("armv7-unknown-linux-gnueabihf").unwrap(),
            "armhf"
        );
        let e = arch_or_triple("arm-unknown-linux-gnueabihf").unwrap_err();
        assert!(
            e.contains("ARMv6") && e.contains("aarch64-unknown-linux-gnu [arm64]"),
            "{e}"
        );
        let e = arch_or_triple("aarch64-unknown-linux-musl").unwrap_err();
        assert!(e.contains("musl"), "{e}");
        let m = command()
            .try_get_matches_from(["t", "qemu", "fetch", "aarch64-unknown-linux-gnu"])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert!(
            matches!(cli.command, Command::Qemu(QemuCommand::Fetch { arch, .. }) if arch == "arm64")
        );
        let m = command()
            .try_get_matches_from([
                "t",
                "rootfs",
                "create",
                "n",
                "--suite",
                "trixie",
                "--arch",
                "armv7-unknown-linux-gnueabihf",
            ])
            .unwrap();
        let cli = <Cli as clap::FromArgMatches>::from_arg_matches(&m).unwrap();
        assert!(
            matches!(cli.command, Command::Rootfs(RootfsCommand::Create(o)) if o.arch == "armhf")
        );
    }
}

impl From<Color> for crate::ui::ColorChoice {
    fn from(c: Color) -> Self {
        match c {
            Color::Auto => crate::ui::ColorChoice::Auto,
            Color::Always => crate::ui::ColorChoice::Always,
            Color::Never => crate::ui::ColorChoice::Never,
        }
    }
}

/// The canonical name of a cargo command (`b` → `build`); `None` when `name` is not one.
pub fn cargo_command_name(name: &str) -> Option<&'static str> {
    CARGO_COMMANDS
        .iter()
        .find(|(n, alias, _)| *n == name || *alias == Some(name))
        .map(|(n, _, _)| *n)
}

/// The subcommand of a cargo command, as its help, the completions and the man page show it:
/// our options, the cargo options we follow, and cargo's arguments.
fn cargo_subcommand(name: &str) -> clap::Command {
    let (about, alias, help_of) = match CARGO_COMMANDS.iter().find(|(n, _, _)| *n == name) {
        Some((n, alias, about)) => (about.to_string(), *alias, format!("cargo help {n}")),
        None if name == "cargo" => (
            "Any cargo command, its arguments as they are (cargo's `run`: cargo for-arm cargo run …)"
                .to_string(),
            None,
            "cargo help".to_string(),
        ),
        None => (
            format!("cargo {name}, in the ARM rootfs"),
            None,
            format!("cargo help {name}"),
        ),
    };
    // Our options first: the derived structs bring an `about` of their own, replaced below.
    let cmd = CargoShared::augment_args(BuildOpts::augment_args(clap::Command::new(
        name.to_string(),
    )))
    .about(about)
    .arg(
        Arg::new("cargo_args")
            .value_name("CARGO_ARGS")
            .num_args(0..)
            .trailing_var_arg(true)
            .allow_hyphen_values(true)
            .help("cargo's own options and arguments: they go to cargo untouched, in order"),
    )
    .after_help(format!(
        "cargo-for-arm's options may stand anywhere among cargo's, before a `--`.\n\
             cargo's own options: {help_of}"
    ));
    match alias {
        Some(a) => cmd.visible_alias(a),
        None => cmd,
    }
}

/// The whole command line as clap knows it: [`Cli`], the cargo commands (for their help, the
/// completions and the man page; `main` hands them to `build` before clap parses), and target
/// triples wherever an architecture is taken.
pub fn command() -> clap::Command {
    let mut cmd = Cli::command();
    for (i, (name, _, _)) in CARGO_COMMANDS.iter().enumerate() {
        cmd = cmd.subcommand(cargo_subcommand(name).display_order(i));
    }
    cmd.subcommand(cargo_subcommand("cargo").display_order(CARGO_COMMANDS.len()))
        .mut_subcommand("rootfs", |r| {
            r.mut_subcommand("create", |c| {
                c.mut_arg("arch", |a| {
                    a.value_parser(arch_or_triple)
                        .value_name("ARCH|TRIPLE")
                        .help("Debian architecture: armhf, arm64, … or a target triple")
                })
            })
        })
}

/// The command line of a cargo command, or `None` for clap: after the program name and the
/// global options, the index of a cargo command (or `cargo`).
pub fn cargo_command_at(args: &[OsString]) -> Option<usize> {
    let specs = OptSpec::of(&GlobalOpts::augment_args(clap::Command::new("global")));
    let mut i = 1;
    while let Some(a) = args.get(i) {
        let a = a.to_str()?;
        if !a.starts_with('-') || a == "-" {
            return (a == "cargo" || cargo_command_name(a).is_some()).then_some(i);
        }
        let (spec, inline) = OptSpec::find(&specs, a)?;
        i += if spec.takes_value && inline.is_none() {
            2
        } else {
            1
        };
    }
    None
}

/// The global options before a cargo command (`args[1..at]`), through clap.
pub fn parse_globals(args: &[OsString]) -> Result<GlobalOpts, clap::Error> {
    let cmd =
        GlobalOpts::augment_args(clap::Command::new("cargo-for-arm").bin_name("cargo for-arm"));
    let m = cmd.try_get_matches_from(args)?;
    <GlobalOpts as clap::FromArgMatches>::from_arg_matches(&m)
}

/// Print the help of a cargo command (`long`: `--help`, else `-h`); the exit code.
pub fn print_cargo_command_help(name: &str, long: bool) -> i32 {
    let mut cmd = command();
    if cmd.find_subcommand(name).is_none() {
        cmd = cmd.subcommand(cargo_subcommand(name));
    }
    let flag = if long { "--help" } else { "-h" };
    match cmd.try_get_matches_from(["cargo-for-arm", name, flag]) {
        Err(e) => {
            let _ = e.print();
            e.exit_code()
        }
        Ok(_) => unreachable!("--help always ends in clap's DisplayHelp"),
    }
}

/// Shell completions, generated from [`command`] without its hidden internal commands
/// (clap_complete would offer them).
pub fn completions(shell: clap_complete::Shell) -> Vec<u8> {
    // clap_complete's bash script spells the states of a hyphenated name two ways, so options
    // after a subcommand never complete (clap-rs/clap#6421): for bash, generate for
    // `cargo_for_arm`, then register the function for the real name.
    let bash = shell == clap_complete::Shell::Bash;
    let bin = if bash {
        "cargo_for_arm"
    } else {
        "cargo-for-arm"
    };
    let mut full = command();
    // Built under that name, so that the subcommands carry it too.
    full.set_bin_name(bin);
    full.build();
    let mut visible =
        GlobalOpts::augment_args(clap::Command::new(bin).version(env!("CARGO_PKG_VERSION")))
            .subcommands(
                full.get_subcommands()
                    // `help` comes back with the new root.
                    .filter(|s| !s.is_hide_set() && s.get_name() != "help")
                    .cloned(),
            );
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut visible, bin, &mut out);
    if !bash {
        return out;
    }
    let mut fixed = String::with_capacity(out.len());
    for line in String::from_utf8_lossy(&out).lines() {
        match line.trim_start().starts_with("complete ") {
            true => fixed.push_str(&line.replace(" cargo_for_arm", " cargo-for-arm")),
            false => fixed.push_str(line),
        }
        fixed.push('\n');
    }
    fixed.into_bytes()
}

/// The man page (roff) of the tool, or of one of its commands.
pub fn man(name: Option<&str>) -> anyhow::Result<Vec<u8>> {
    let mut cmd = command();
    cmd.build();
    let page = match name {
        None => cmd,
        Some(n) => {
            let sub = cmd
                .get_subcommands()
                .find(|s| s.get_name() == n || s.get_all_aliases().any(|a| a == n))
                .filter(|s| !s.is_hide_set())
                .ok_or_else(|| {
                    anyhow::anyhow!("no command {n} (cargo-for-arm --help lists them)")
                })?;
            sub.clone()
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .source(format!("cargo-for-arm {}", env!("CARGO_PKG_VERSION")))
        .render(&mut out)?;
    Ok(out)
}

/// One option of a clap definition, as the hand parser of the cargo commands sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OptSpec {
    /// clap's id of the argument.
    pub id: String,
    pub long: Option<String>,
    pub short: Option<char>,
    pub takes_value: bool,
}

impl OptSpec {
    /// The options (not positionals) of `cmd`, as clap defines them.
    pub fn of(cmd: &clap::Command) -> Vec<OptSpec> {
        cmd.get_arguments()
            .filter(|a| !a.is_positional())
            .map(|a| OptSpec {
                id: a.get_id().to_string(),
                long: a.get_long().map(str::to_string),
                short: a.get_short(),
                takes_value: a.get_action().takes_values(),
            })
            .collect()
    }

    /// The option `token` names (`--name`, `--name=value`, `-c`), and its inline value.
    pub fn find<'a, 't>(
        specs: &'a [OptSpec],
        token: &'t str,
    ) -> Option<(&'a OptSpec, Option<&'t str>)> {
        if let Some(rest) = token.strip_prefix("--") {
            let (name, inline) = match rest.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (rest, None),
            };
            let spec = specs.iter().find(|s| s.long.as_deref() == Some(name))?;
            // `--flag=x` of a flag without a value is not ours to take.
            return (spec.takes_value || inline.is_none()).then_some((spec, inline));
        }
        let mut chars = token.strip_prefix('-')?.chars();
        let (c, None) = (chars.next()?, chars.next()) else {
            return None;
        };
        specs.iter().find(|s| s.short == Some(c)).map(|s| (s, None))
    }
}

/// The target triples cargo-for-arm maps to a Debian architecture: what Debian's rustc there
/// builds for, so what a Debian rootfs's cargo (and native mode) builds.
pub const TRIPLES: [(&str, &str); 8] = [
    ("armv7-unknown-linux-gnueabihf", "armhf"),
    ("aarch64-unknown-linux-gnu", "arm64"),
    ("armv5te-unknown-linux-gnueabi", "armel"),
    ("riscv64gc-unknown-linux-gnu", "riscv64"),
    ("powerpc64le-unknown-linux-gnu", "ppc64el"),
    ("s390x-unknown-linux-gnu", "s390x"),
    ("x86_64-unknown-linux-gnu", "amd64"),
    ("i686-unknown-linux-gnu", "i386"),
];

/// The Debian architecture of a supported target triple; else why it is not supported.
pub fn triple_arch(triple: &str) -> Result<&'static str, &'static str> {
    if let Some((_, deb)) = TRIPLES.iter().find(|(t, _)| *t == triple) {
        return Ok(deb);
    }
    Err(if triple.contains("musl") {
        "Debian's rootfs are glibc systems, and musl targets need a rootfs whose Rust has musl's standard library"
    } else if triple.starts_with("arm-") {
        "arm-* targets are ARMv6 (Raspberry Pi 1 and Zero), and Debian's armhf is ARMv7 Thumb-2 code, which an \
         ARMv6 CPU cannot run (Debian's armel is armv5te-unknown-linux-gnueabi)"
    } else {
        "no Debian architecture builds for it"
    })
}

/// "T [deb], …": the supported triples, in the one naming scheme of messages.
pub fn supported_triples() -> String {
    TRIPLES
        .iter()
        .map(|(t, d)| format!("{t} [{d}]"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// "target T is not supported: why; supported: …".
pub fn unsupported_triple(triple: &str, why: &str) -> String {
    format!(
        "target {triple} is not supported: {why}. Supported: {}",
        supported_triples()
    )
}

/// clap's parser of an architecture option: a name passes on, a triple becomes the Debian
/// architecture it maps to.
pub fn arch_or_triple(s: &str) -> Result<String, String> {
    if !s.contains('-') {
        return Ok(s.to_string());
    }
    triple_arch(s)
        .map(str::to_string)
        .map_err(|why| unsupported_triple(s, why))
}
