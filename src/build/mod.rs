//! The cargo front end, `cargo for-arm build|check|test|… [cargo args]`, as a pipeline of
//! stages, each in its own file, called in order by [`run`]: arguments (`args.rs`) → project
//! and its rootfs (`project.rs`) → mode (`mode.rs`) → the job (`job.rs`) → executor
//! (`emulated.rs` or `native.rs`, with the runner service of `runner.rs`) → dependencies
//! (`deps.rs`) → run under the supervisor, then the report (`execute.rs`). Everything
//! cargo-for-arm does not own goes to cargo untouched.

pub mod args;
pub mod cache;
pub mod deps;
pub mod emulated;
pub mod env;
pub mod execute;
pub mod finals;
pub mod forward;
pub mod fresh;
pub mod job;
pub mod mode;
pub mod native;
pub mod project;
pub mod runner;
pub mod unsandboxed;

use anyhow::{Context, Result};

use crate::arch::Arch;
use crate::ui;
use execute::execute;
pub use job::{Job, Prepared};
use project::Project;

/// Where the build's cargo home appears inside its sandbox.
pub const GUEST_HOME: &str = "/run/cargo-for-arm/cargo-home";
/// Where the vendored dependencies appear inside the sandbox.
pub const GUEST_VENDOR: &str = "/run/cargo-for-arm/vendor";

pub fn run(args: &[String], global: &crate::cli::GlobalOpts) -> Result<i32> {
    let cwd = std::env::current_dir().context("the current directory is gone")?;
    let opts = match args::parse(args, global, &cwd)? {
        args::Parsed::Help { command, long } => {
            return Ok(crate::cli::print_cargo_command_help(&command, long))
        }
        args::Parsed::Build(o) => *o,
    };
    opts.color.into_iter().for_each(ui::set_color);
    if opts.quiet {
        ui::set_quiet();
    }
    let quiet = opts.quiet;
    let project = Project::discover(cwd, opts.manifest_path.as_deref())?;
    if !opts.quiet {
        project
            .settings
            .project_key_warnings()
            .iter()
            .for_each(ui::warn);
        if opts.project_rw {
            ui::note("--project-rw: the build can write the whole project, so a build script can change what your own cargo and rustup read next (Cargo.toml, rust-toolchain.toml, .cargo/config.toml)");
        }
    }
    // The isolation ladder (issue #11): probed once per build; rung 3 builds without a sandbox.
    let isolation = crate::isolation::decide(&project.settings, opts.isolation)?;
    let unsandboxed = isolation.rung == crate::isolation::Rung::Unsandboxed;
    if unsandboxed && !quiet && !crate::isolation::announced() {
        isolation.announcement().into_iter().for_each(ui::say);
    }
    let opts = args::resolve_target(opts, &project.settings)?;
    let rootfs = project.rootfs(&opts)?;
    let opts = args::check_target(opts, &rootfs)?;
    let (arch, desc) = match &opts.arch {
        Some(a) => (Arch::parse(a)?, a.clone()),
        None => rootfs.arch()?,
    };
    if unsandboxed {
        return unsandboxed::run(opts, project, rootfs, (arch, desc), &isolation, quiet);
    }
    let setup = mode::choose(&mode::Ask {
        opts: &opts,
        settings: &project.settings,
        arm: &rootfs,
        arch,
        desc: &desc,
        quiet,
    })?;
    if setup.is_none() {
        cache::refuse_emulated(opts.cache.as_deref(), &project.settings, quiet)?;
    }
    let rustc = setup.as_ref().map(native::Setup::rustc);
    let job = Job::new(opts, project, rootfs, (arch, desc), rustc, quiet)?;
    let mut prepared = match &setup {
        Some(s) => native::prepare(&job, s)?,
        None => emulated::prepare(&job)?,
    };
    deps::provide(&job, &mut prepared)?;
    execute(&job, prepared)
}
