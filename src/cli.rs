//! The command line, as clap parses it. The commands turn it into typed values (a
//! `sandbox::spec::Spec`, build options); nothing below them sees these types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::idmap::MapMode;

#[derive(Debug, Parser)]
#[command(
    name = "cargo-for-arm",
    bin_name = "cargo for-arm",
    version,
    about = "Build and run Rust projects for ARM on x86_64 Linux, without root and without Docker",
    after_help = "Exit codes: the command's own code, 128+N if it died of signal N, \
                  124 if it hung and every retry hung, 125 if cargo-for-arm could not set the sandbox up, 126 if the command could \
                  not be executed, 127 if it was not found."
)]
pub struct Cli {
    /// Print less (no notes).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command inside an ARM root filesystem, in an unprivileged sandbox.
    Run(RunArgs),
    /// Check, by trying each, what the sandbox needs from this machine.
    Doctor(DoctorArgs),
    /// Manage root filesystems in the per-user store.
    #[command(subcommand)]
    Rootfs(RootfsCommand),
    /// The static qemus cargo-for-arm can use, and fetching one without root.
    #[command(subcommand)]
    Qemu(QemuCommand),
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
    /// (internal) Pack a tree as .tar.zst; run inside a user namespace by `rootfs create`.
    #[command(name = "__pack", hide = true)]
    InternalPack { root: PathBuf, out: PathBuf },
    /// (internal) Remove a tree; run inside a user namespace by `rootfs rm`.
    #[command(name = "__remove-tree", hide = true)]
    InternalRemoveTree { path: PathBuf },
    /// Any other cargo subcommand (build, check, test, bench, doc, …) runs the rootfs's cargo
    /// under emulation; `cargo for-arm cargo ARGS…` passes ARGS as they are (e.g. `cargo run`).
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
    /// Guest architecture (default: detected from the rootfs's /bin/sh).
    #[arg(long, value_name = "ARCH")]
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
    /// Fetch Debian's static qemu for ARCH, verified through the archive's signed chain.
    Fetch {
        arch: String,
        /// Debian suite (default: trixie, then bookworm).
        #[arg(long)]
        suite: Option<String>,
        /// Mirror (default: CARGO_FOR_ARM_MIRROR, else the host's apt sources).
        #[arg(long)]
        mirror: Option<String>,
        /// OpenPGP keyring to verify InRelease with (default: Debian's archive keyring).
        #[arg(long)]
        keyring: Option<PathBuf>,
    },
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Architectures to look for a static qemu for (default: arm and aarch64).
    #[arg(long = "arch", value_name = "ARCH")]
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
