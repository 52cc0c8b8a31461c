//! The build's job: what every stage after the mode reads (options, project, rootfs,
//! directories, environment), the binds every executor's sandbox has, and the build's own
//! run directory.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};

use super::args::Options;
use super::project::{self, Project};
use super::{env, runner, GUEST_HOME};
use crate::arch::Arch;
use crate::rootfs::Rootfs;
use crate::sandbox::spec::{Access, Bind, SpecBuilder};
use crate::seccomp::Policy;
use crate::ui;

/// What every stage after the mode knows.
pub struct Job {
    pub opts: Options,
    pub project: Project,
    /// The ARM rootfs (the sysroot in native mode).
    pub rootfs: Rootfs,
    pub arch: Arch,
    pub desc: String,
    /// The tool's home (`rootfs::store::home`).
    pub home: PathBuf,
    /// This build's own directory (cargo home, runner socket, probe), removed at the end.
    pub run_dir: RunDir,
    /// The build's own cargo home: nothing one build writes there reaches another.
    pub cargo_home: PathBuf,
    /// cargo's working directory: `target/for-arm/<flavour>` of the workspace (or the
    /// `--target-dir`), where everything a sandbox compiles stays.
    pub target_dir: PathBuf,
    /// Where the final artifacts land, in cargo's cross layout `<out_dir>/<triple>/<profile>`:
    /// the workspace's `target` (or the `--target-dir`), in every mode.
    pub out_dir: PathBuf,
    /// The triple of that layout.
    pub triple: String,
    /// What cargo gets of the environment: the host's tuning variables, then the `env` of
    /// the project's metadata and the user's config.
    pub env: Vec<(String, String)>,
    /// Path dependencies outside the workspace, bound read-only.
    pub path_deps: Vec<PathBuf>,
    pub timeout: Option<Duration>,
    pub quiet: bool,
    /// Native mode (host compilers), not the rootfs's cargo under emulation.
    pub native: bool,
}

/// An executor's sandbox, before the dependencies and the command are added.
pub struct Prepared {
    pub builder: SpecBuilder,
    /// Native mode's runner service, stopped when the build ends.
    pub service: Option<runner::Service>,
    /// Where cargo puts the artifacts (before the profile).
    pub artifacts: PathBuf,
    /// The status line that says what runs: verb and message.
    pub verb: &'static str,
    pub banner: String,
}

impl Job {
    pub fn new(
        opts: Options,
        project: Project,
        rootfs: Rootfs,
        (arch, desc): (Arch, String),
        rustc: Option<(&str, &Path)>,
        quiet: bool,
    ) -> Result<Job> {
        let deb = arch.debian_name(&desc);
        // One working directory per rustc (its version and place): the host rustc of a native
        // build, the rootfs's own of an emulated one.
        let flavour = match rustc {
            Some((version, root)) => super::native::flavour(deb, version, root),
            None => emulated_flavour(&rootfs, deb, &final_triple(&[], arch, &desc)),
        };
        let home = crate::rootfs::store::home()?;
        let run_dir = RunDir::create(&home)?;
        let cargo_home = run_dir.0.join("cargo-home");
        std::fs::create_dir_all(&cargo_home)
            .with_context(|| format!("creating {}", cargo_home.display()))?;
        let out_dir = out_dir(&project, &opts)?;
        let rel = PathBuf::from("for-arm").join(&flavour);
        crate::hostfs::make_dirs(&out_dir, &rel)?;
        let target_dir = out_dir.join(rel);
        let triple = final_triple(&opts.cargo_args, arch, &desc);
        let path_deps = project::outside_path_deps(&project.root)?;
        let env = cargo_env(&project, &opts)?;
        let secs = project.settings.get_or(
            &crate::settings::HANG_TIMEOUT,
            opts.hang_timeout,
            |s| s.parse().context("seconds"),
            crate::cli::DEFAULT_HANG_TIMEOUT,
        )?;
        let timeout = (secs > 0).then(|| Duration::from_secs(secs));
        Ok(Job {
            opts,
            project,
            rootfs,
            arch,
            desc,
            home,
            run_dir,
            cargo_home,
            target_dir,
            out_dir,
            triple,
            env,
            path_deps,
            timeout,
            quiet,
            native: rustc.is_some(),
        })
    }

    pub fn deb(&self) -> &'static str {
        self.arch.debian_name(&self.desc)
    }

    /// The directories ARM programs of a build may be and run in: the project, and the
    /// target dir when it lies outside it.
    pub fn writable(&self) -> Vec<PathBuf> {
        let mut dirs = vec![self.project.root.clone()];
        if !self.target_dir.starts_with(&self.project.root) {
            dirs.push(self.target_dir.clone());
        }
        dirs
    }

    /// The project read-only (so nothing a build script does changes what the host's own
    /// cargo and rustup read next: Cargo.toml, rust-toolchain files, .cargo/config), except
    /// the target dir — and Cargo.lock when cargo in the sandbox resolves it (no host cargo).
    pub fn project_binds(&self) -> Vec<Bind> {
        let root = &self.project.root;
        let access = match self.opts.project_rw {
            true => Access::ReadWrite,
            false => Access::ReadOnly,
        };
        let mut binds = vec![Bind::same(root, access)];
        binds.extend(
            self.path_deps
                .iter()
                .map(|d| Bind::same(d, Access::ReadOnly)),
        );
        if self.opts.project_rw {
            if !self.target_dir.starts_with(root) {
                binds.push(Bind::same(&self.target_dir, Access::ReadWrite));
            }
            return binds;
        }
        binds.push(Bind::same(&self.target_dir, Access::ReadWrite));
        if !self.project.host_cargo {
            let lock = root.join("Cargo.lock");
            if std::fs::symlink_metadata(&lock).is_err() {
                // An empty lockfile is a missing one to cargo; it gives the bind a target.
                let _ = std::fs::File::create(&lock);
            }
            binds.push(Bind::same(lock, Access::ReadWrite));
        }
        binds
    }

    /// cargo ≥ 1.91's `build.build-dir` (its intermediates), pinned to the working directory
    /// whatever a later cargo's default or the project's config says: they must stay where
    /// the sandbox may write and the user's own cargo never looks (docs/ARCHITECTURE.md,
    /// "Output paths"). Older cargos ignore the variable. Not for a path with braces, which
    /// cargo would read as its `{…}` template variables (its default is the target dir).
    pub fn build_dir(&self) -> Option<String> {
        let dir = self.target_dir.to_string_lossy();
        (!dir.contains(['{', '}'])).then(|| dir.into_owned())
    }

    /// What the sandbox of either executor has: the project, the build's cargo home, the
    /// working directory, the id map and the syscall filter.
    pub fn common(&self, b: SpecBuilder) -> SpecBuilder {
        let b = b
            .binds(self.project_binds())
            .bind(Bind::new(&self.cargo_home, GUEST_HOME, Access::ReadWrite))
            .env("CARGO_HOME", GUEST_HOME)
            .env("CARGO_TARGET_DIR", self.target_dir.to_string_lossy())
            .workdir(&self.project.cwd)
            .map(self.opts.map)
            .seccomp(Policy::parse(&self.opts.seccomp));
        let mut b = self.env.iter().fold(b, |b, (k, v)| b.env(k, v));
        if let Some(dir) = self.build_dir() {
            b = b.env("CARGO_BUILD_BUILD_DIR", dir);
        }
        // On a terminal cargo's stderr is piped through us (for the status line): keep colours,
        // unless --color or NO_COLOR say otherwise.
        if ui::colour() {
            b = b.env("CARGO_TERM_COLOR", "always");
        }
        b
    }
}

/// Where the finals go in cargo's cross layout, with cargo's working directory beneath it:
/// the workspace's `target` (or `--target-dir`), created by the host, never through a
/// symlink a build could have left.
fn out_dir(project: &Project, opts: &Options) -> Result<PathBuf> {
    Ok(match &opts.target_dir {
        Some(t) => {
            let t = project.cwd.join(t);
            std::fs::create_dir_all(&t)?;
            t.canonicalize()?
        }
        None => {
            crate::hostfs::make_dirs(&project.root, Path::new("target"))?;
            project.root.join("target")
        }
    })
}

/// What cargo gets of the environment: the host's tuning variables, then the `env` of the
/// project's metadata and the user's config, then `--env`.
fn cargo_env(project: &Project, opts: &Options) -> Result<Vec<(String, String)>> {
    let mut env = env::from_host(std::env::vars());
    let settings = project.settings.list(&crate::settings::ENV);
    let given = settings
        .into_iter()
        .map(|(kv, origin)| (kv, format!("env in {origin}")))
        .chain(opts.env.iter().map(|kv| (kv.clone(), "--env".to_string())));
    for (kv, origin) in given {
        let (k, v) = env::parse_assignment(&kv, &origin)?;
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    }
    Ok(env)
}

/// An emulated build's working directory: one per rootfs rustc as well (named by the version
/// of the rootfs's own standard library, for its Debian triple), or the architecture's name
/// for a rootfs without one (cargo there says what is missing).
fn emulated_flavour(rootfs: &Rootfs, deb: &str, triple: &str) -> String {
    match super::native::find_std(rootfs.path(), triple) {
        Ok(Some(std)) => super::native::named(deb, &std.version, rootfs.path()),
        _ => deb.to_string(),
    }
}

/// The triple of the final layout: the `--target` cargo gets, else the one Debian's rustc of
/// the architecture builds for (what native mode's `--target` is, too).
pub fn final_triple(cargo_args: &[String], arch: Arch, desc: &str) -> String {
    let mut it = cargo_args.iter().take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        if a == "--target" {
            if let Some(t) = it.next() {
                return t.clone();
            }
        } else if let Some(t) = a.strip_prefix("--target=") {
            return t.to_string();
        }
    }
    let deb = arch.debian_name(desc);
    crate::cli::TRIPLES
        .iter()
        .find(|(_, d)| *d == deb)
        .map(|(t, _)| t.to_string())
        .unwrap_or_else(|| format!("{deb}-unknown-linux-gnu"))
}

/// `<home>/run/<pid>`: what one build writes outside the project, removed when it ends;
/// directories of builds that died (their pid is gone) are removed by the next build.
pub struct RunDir(pub PathBuf);

impl RunDir {
    fn create(home: &std::path::Path) -> Result<RunDir> {
        let base = home.join("run");
        std::fs::create_dir_all(&base)?;
        for e in std::fs::read_dir(&base)?.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let dead = name
                .parse::<u32>()
                .is_ok_and(|p| !std::path::Path::new(&format!("/proc/{p}")).exists());
            if dead {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        let dir = base.join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(RunDir(dir))
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    #[test]
    fn the_final_layout_is_named_by_the_target_cargo_builds_for() {
        assert_eq!(
            final_triple(&[], Arch::Arm, "arm (armhf, EABI5 hard-float)"),
            "armv7-unknown-linux-gnueabihf"
        );
        assert_eq!(
            final_triple(&[], Arch::Arm, "arm (armel, EABI5 soft-float)"),
            "armv5te-unknown-linux-gnueabi"
        );
        assert_eq!(
            final_triple(&[], Arch::Aarch64, "aarch64 (arm64)"),
            "aarch64-unknown-linux-gnu"
        );
        assert_eq!(
            final_triple(
                &s(&["--target", "aarch64-unknown-linux-musl"]),
                Arch::Aarch64,
                ""
            ),
            "aarch64-unknown-linux-musl"
        );
        assert_eq!(
            final_triple(&s(&["--", "--target=x"]), Arch::Riscv64, "riscv64"),
            "riscv64gc-unknown-linux-gnu"
        );
    }
}
