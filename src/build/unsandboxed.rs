//! Isolation rung 3 (issue #11): native builds without a sandbox, where no user namespace
//! can be had (AppArmor's restriction, Docker's seccomp profile, `max_user_namespaces=0`) or
//! `--isolation none` asks for it.
//!
//! The user's rustup toolchain (with the target's std) compiles; the host's `clang` and
//! `ld.lld` compile C and link, against the ARM rootfs read as a plain sysroot directory;
//! `llvm-ar` archives. ARM programs (tests, benches) run as `qemu-<arch> -L <rootfs> prog`
//! through cargo's target runner, with the tool's own static qemu. The environment and the
//! wrappers are native mode's ([`Target::build_env_at`], [`Target::wrappers_at`]) with host
//! paths instead of the sandbox's.
//!
//! Isolation is reduced, not none: the guard ([`supervise::run_unsandboxed`]) sets
//! no_new_privs, a Landlock ruleset (writes only to the target dir, this build's own
//! directory and /tmp) where the kernel has Landlock, and the seccomp policy; as a child
//! subreaper with PR_SET_PDEATHSIG it kills everything of the build when the build ends or
//! the tool dies, and the heartbeat watches the processes below it.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::args::Options;
use super::mode::Mode;
use super::native::{self, Target};
use super::project::Project;
use super::Job;
use crate::arch::Arch;
use crate::isolation::{self, Decision};
use crate::rootfs::Rootfs;
use crate::{settings, supervise, ui};

/// The host programs rung 3 compiles, links and archives with, and the Debian/Ubuntu
/// packages that bring them.
pub const HOST_TOOLS: [(&str, &str); 3] =
    [("clang", "clang"), ("ld.lld", "lld"), ("llvm-ar", "llvm")];

/// The first `name` on PATH.
pub fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// `name` on PATH, else the newest `name-N` (Debian's and Ubuntu's `clang` pulls in
/// `llvm-N` with `llvm-ar-N`, while `llvm-ar` itself comes with the `llvm` package).
pub fn find_host_tool(name: &str) -> Option<PathBuf> {
    if let Some(p) = on_path(name) {
        return Some(p);
    }
    let path = std::env::var_os("PATH")?;
    let prefix = format!("{name}-");
    let mut best: Option<(u32, String)> = None;
    for dir in std::env::split_paths(&path) {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let n = e.file_name().to_string_lossy().into_owned();
            let Some(v) = n.strip_prefix(&prefix).and_then(|v| v.parse::<u32>().ok()) else {
                continue;
            };
            if best.as_ref().is_none_or(|(b, _)| v > *b) && on_path(&n).is_some() {
                best = Some((v, n));
            }
        }
    }
    best.and_then(|(_, n)| on_path(&n))
}

/// Host tools of [`HOST_TOOLS`] missing from PATH, as (program, package).
pub fn missing_host_tools() -> Vec<(&'static str, &'static str)> {
    HOST_TOOLS
        .iter()
        .copied()
        .filter(|(prog, _)| match *prog {
            "llvm-ar" => find_host_tool(prog).is_none(),
            _ => on_path(prog).is_none(),
        })
        .collect()
}

/// Why something needs a sandbox this machine cannot make: exit 125 with the fixes.
fn refuse(what: &str, d: &Decision) -> anyhow::Error {
    isolation::refusal(what, d)
}

/// A path that goes into a shell wrapper or cargo's whitespace-split runner unquoted.
fn plain(p: &Path, what: &str) -> Result<String> {
    let s = p.to_string_lossy().into_owned();
    let ok = |c: char| c.is_ascii_alphanumeric() || "/._-+@%,=:".contains(c);
    if !s.chars().all(ok) {
        bail!(
            "{what} {} has characters a compiler wrapper or cargo's runner cannot carry without a sandbox: \
             move it to a plain path (letters, digits, / . _ - +)",
            s
        );
    }
    Ok(s)
}

/// The link fixes: Debian's `-dev` packages link `libfoo.so -> /lib/<multiarch>/libfoo.so.N`
/// with absolute targets, which no mount namespace resolves here; lld would then silently
/// take `libfoo.a`. For each such link in the sysroot's multiarch directory a link to its
/// target inside the rootfs is made in `dir`, which comes first on the linker's path.
fn link_fixes(rootfs: &Rootfs, target: &Target, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let Some(lib) = native::multiarch_dir(rootfs, target)? else {
        return Ok(());
    };
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let n = name.to_string_lossy();
        if !(n.ends_with(".so") || n.contains(".so.")) {
            continue;
        }
        let Ok(link) = std::fs::read_link(e.path()) else {
            continue;
        };
        if !link.is_absolute() {
            continue;
        }
        let inside = rootfs.path().join(link.strip_prefix("/").unwrap_or(&link));
        // Resolved inside the rootfs (usr-merge: /lib -> usr/lib), and kept inside it.
        let Ok(real) = inside.canonicalize() else {
            continue;
        };
        if real.starts_with(rootfs.path()) {
            let _ = std::os::unix::fs::symlink(&real, dir.join(&name));
        }
    }
    Ok(())
}

/// The Landlock ruleset: every write right is handled, and granted beneath `writable` only;
/// reads are not restricted. Best effort: a kernel without Landlock gets none (said once).
fn landlock(writable: &[PathBuf]) -> Result<()> {
    use landlock::{AccessFs, PathBeneath, PathFd, Ruleset, RulesetAttr, RulesetCreatedAttr, ABI};
    let abi = ABI::V3;
    let write = AccessFs::from_write(abi);
    let mut ruleset = Ruleset::default()
        .handle_access(write)
        .context("Landlock ruleset")?
        .create()
        .context("Landlock ruleset")?;
    for dir in writable {
        let fd =
            PathFd::new(dir).with_context(|| format!("Landlock: opening {}", dir.display()))?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, write))
            .with_context(|| format!("Landlock: a rule for {}", dir.display()))?;
    }
    ruleset.restrict_self().context("Landlock: restrict_self")?;
    Ok(())
}

/// Whether this kernel has Landlock (the ABI version it answers, if any).
pub fn landlock_abi() -> Option<i64> {
    // SAFETY: landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION) only answers.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            1u32,
        )
    };
    (v > 0).then_some(v)
}

/// The qemu ARM programs run under: the one named (`--qemu`, `CARGO_FOR_ARM_QEMU_<ARCH>`),
/// else the tool's own fetched one — never one from PATH, which may be an administrator's
/// old qemu (Debian 12's 7.2 deadlocks under multithreaded programs) — fetched when there is
/// none yet.
fn own_qemu(arch: Arch, flag: Option<&Path>, quiet: bool) -> Result<PathBuf> {
    use crate::qemu::{self, QemuError};
    match qemu::find(arch, flag, Some("")) {
        Ok(q) => Ok(q.path),
        Err(QemuError::NotFound { .. }) if qemu::may_fetch() => {
            if !quiet {
                ui::say(format_args!(
                    "fetching a static qemu from the host's Debian or Ubuntu mirror for {arch} into the tool's cache (set CARGO_FOR_ARM_OFFLINE=1 to forbid)"
                ));
            }
            qemu::fetch(arch, None, None, None, quiet)
        }
        Err(e) => Err(e.into()),
    }
}

/// Only the rustup toolchain and the host's clang/lld build here: a choice of the sandboxed
/// native mode that cannot be honoured is an error when given as a flag, else said.
fn unused_sandbox_choices(
    opts: &Options,
    settings: &settings::Settings,
    d: &Decision,
    quiet: bool,
) -> Result<()> {
    let unused = [
        (settings::CACHE, opts.cache.clone()),
        (
            settings::NATIVE_RUSTC,
            opts.native_rustc.map(|r| format!("{r:?}").to_lowercase()),
        ),
        (
            settings::TOOLS_ROOTFS,
            opts.tools_rootfs
                .as_ref()
                .map(|p| p.to_string_lossy().into_owned()),
        ),
    ];
    for (key, flag) in unused {
        let Some(v) = settings.get(&key, flag.as_deref()) else {
            continue;
        };
        let harmless = match key.name {
            "cache" => v.raw == "none",
            "native-rustc" => v.raw != "rootfs",
            _ => false,
        };
        if harmless {
            continue;
        }
        let why = match key.name {
            "cache" => "the shared compile cache runs inside the build sandbox",
            "native-rustc" => "the tools rootfs's rustc runs inside the build sandbox",
            _ => "the tools rootfs is a sandbox's root",
        };
        if matches!(v.origin, settings::Origin::Flag(_)) {
            return Err(refuse(&format!("{} {} ({why})", v.origin, v.raw), d));
        }
        if !quiet {
            ui::note(format_args!(
                "{} = {:?} is not used without a sandbox: {why}",
                v.origin, v.raw
            ));
        }
    }
    Ok(())
}

/// The rustup toolchain with the target's std, and the host's C tools: the compilers of a
/// build without a sandbox. Returns the toolchain's sysroot and that std.
fn host_toolchain(d: &Decision, triple: &str) -> Result<(PathBuf, native::Std)> {
    let Some(sysroot) = native::host_sysroot() else {
        bail!(
            "no sandbox here ({}), so the build runs natively with your Rust toolchain, and there is no \
             rustc toolchain (cargo and rustc) on PATH: install rustup, then rustup target add {triple}",
            d.reason()
        );
    };
    let Some(std) = native::find_std_in_sysroot(&sysroot, triple)? else {
        bail!(
            "no sandbox here ({}), so the build runs natively with your Rust toolchain {}, which has no \
             standard library for {triple}: rustup target add {triple}",
            d.reason(),
            sysroot.display()
        );
    };
    let missing = missing_host_tools();
    if !missing.is_empty() {
        let progs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
        let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
        bail!(
            "no sandbox here ({}), so C code is compiled and linked by the host's clang and lld, and {} \
             {} missing from PATH: sudo apt-get install {} (Fedora: dnf install {})",
            d.reason(),
            progs.join(", "),
            if progs.len() == 1 { "is" } else { "are" },
            pkgs.join(" "),
            pkgs.join(" ")
        );
    }
    Ok((sysroot, std))
}

/// cargo's environment without a sandbox: a clean one, the job's, and the cross settings
/// of `target` pointed at host paths (the runner: `<qemu> -L <rootfs>`).
fn environment(
    job: &Job,
    target: &Target,
    sysroot: &Path,
    (qemu_s, sysroot_s): (&str, &str),
    tc: &Path,
) -> Result<Vec<(String, String)>> {
    let host_path = std::env::var("PATH").unwrap_or_default();
    let mut env: Vec<(String, String)> = vec![
        (
            "PATH".into(),
            format!("{}:{host_path}", sysroot.join("bin").display()),
        ),
        ("LANG".into(), "C.UTF-8".into()),
        ("CARGO_HOME".into(), job.cargo_home.to_string_lossy().into()),
        (
            "CARGO_TARGET_DIR".into(),
            job.target_dir.to_string_lossy().into(),
        ),
        ("CARGO_NET_OFFLINE".into(), "true".into()),
    ];
    if let Some(dir) = job.build_dir() {
        env.push(("CARGO_BUILD_BUILD_DIR".into(), dir));
    }
    // Temporary files (clang, the cc crate, rustc) go where Landlock lets them be written: the
    // build's own directory, removed with it.
    let tmp = job.run_dir.0.join("tmp");
    std::fs::create_dir_all(&tmp)?;
    env.push(("TMPDIR".into(), tmp.to_string_lossy().into()));
    for k in ["HOME", "TERM", "USER"] {
        if let Ok(v) = std::env::var(k) {
            env.push((k.into(), v));
        }
    }
    if ui::colour() {
        env.push(("CARGO_TERM_COLOR".into(), "always".into()));
    }
    let set = |env: &mut Vec<(String, String)>, k: String, v: String| {
        env.retain(|(ek, _)| *ek != k);
        env.push((k, v));
    };
    for (k, v) in job.env.iter().cloned() {
        set(&mut env, k, v);
    }
    let runner = format!("{qemu_s} -L {sysroot_s}");
    let ar =
        find_host_tool("llvm-ar").map_or("llvm-ar".into(), |p| p.to_string_lossy().into_owned());
    for (k, v) in target.build_env_at(&runner, sysroot_s, &tc.to_string_lossy()) {
        let v = match k.starts_with("AR_") {
            true => ar.clone(),
            false => v,
        };
        set(&mut env, k, v);
    }
    Ok(env)
}

/// Build without a sandbox. `opts`, `project`, the ARM rootfs and its architecture as the
/// pipeline resolved them.
pub fn run(
    opts: Options,
    project: Project,
    rootfs: Rootfs,
    (arch, desc): (Arch, String),
    d: &Decision,
    quiet: bool,
) -> Result<i32> {
    let target = native_target(&opts, &project, arch, &desc, d)?;
    let triple = target.triple;
    unused_sandbox_choices(&opts, &project.settings, d, quiet)?;
    native::check_c_runtime(&rootfs, &target)?;
    let (sysroot, std) = host_toolchain(d, triple)?;
    let qemu = own_qemu(arch, opts.qemu.as_deref(), quiet)?;
    let sysroot_s = plain(rootfs.path(), "the ARM rootfs")?;
    let qemu_s = plain(&qemu, "the qemu")?;
    let seccomp = crate::seccomp::compile(&crate::seccomp::Policy::parse(&opts.seccomp))?;
    let job = Job::new(
        opts,
        project,
        rootfs,
        (arch, desc),
        Some((&std.version, &sysroot)),
        quiet,
    )?;
    let tc = job.run_dir.0.join("toolchain");
    let fixes = job.run_dir.0.join("link-fixes");
    link_fixes(&job.rootfs, &target, &fixes)?;
    let extra = format!(" -L{}", plain(&fixes, "the tool's home")?);
    native::write_wrapper_texts(target.wrappers_at(&sysroot_s, &extra), &tc)?;
    let (_vendor, mut config) = super::deps::vendor_on_host(&job)?;
    config.push_str("\n[net]\noffline = true\n");
    std::fs::write(job.cargo_home.join("config.toml"), &config)?;

    let env = environment(&job, &target, &sysroot, (&qemu_s, &sysroot_s), &tc)?;
    let mut argv = vec!["cargo".to_string(), job.opts.subcommand.clone()];
    argv.extend(job.opts.cargo_args.iter().cloned());
    let u = supervise::Unsandboxed {
        argv,
        env,
        workdir: job.project.cwd.clone(),
        seccomp,
        restrict: confinement(&job, quiet),
    };
    if !quiet {
        ui::status(
            "Native",
            format!(
                "cargo {} for {triple} [{}] without a sandbox: {} with clang and lld of the host, against {}; \
                 ARM programs run under {qemu_s} -L (target dir {})",
                job.opts.subcommand,
                job.deb(),
                sysroot.display(),
                job.rootfs.path().display(),
                job.target_dir.display()
            ),
        );
    }
    let started = std::time::SystemTime::now();
    let how = supervise::Supervision {
        hang_timeout: job.timeout,
        retries: job.opts.retries,
        status: supervise::Status::Plain,
    };
    let outcome = supervise::run_unsandboxed(&u, how)?;
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    if outcome.code == 0 {
        super::execute::finish(&job, &job.target_dir.join(triple), started)?;
    }
    if outcome.code != 0 && !outcome.killed && !quiet {
        note_no_binfmt(&job);
    }
    Ok(outcome.code)
}

/// The native target of a build without a sandbox; an emulated build (asked for, or the only
/// one `arch` has) is refused, naming what would bring the sandbox back.
fn native_target(
    opts: &Options,
    project: &Project,
    arch: Arch,
    desc: &str,
    d: &Decision,
) -> Result<Target> {
    let mode = project
        .settings
        .get_or(&settings::MODE, opts.mode, Mode::parse, Mode::Auto)?;
    if mode == Mode::Emulate || arch.runs_natively() {
        return Err(refuse(
            &format!("an emulated build (cargo of the {desc} rootfs under qemu)"),
            d,
        ));
    }
    Target::of(arch, desc).ok_or_else(|| {
        refuse(
            &format!("{desc}: native builds are for armhf and arm64; this one needs an emulated build, which"),
            d,
        )
    })
}

/// What the command may write without a sandbox (Landlock, where the kernel has it; said
/// once where it has not): the target and run directories, /tmp, /dev, and the project with
/// `--project-rw`.
fn confinement(job: &Job, quiet: bool) -> Box<dyn Fn() -> Result<()>> {
    let mut writable = vec![
        job.target_dir.clone(),
        job.run_dir.0.clone(),
        PathBuf::from("/tmp"),
        PathBuf::from("/dev"),
    ];
    if job.opts.project_rw {
        writable.push(job.project.root.clone());
    }
    let landlock_on = landlock_abi().is_some();
    if !quiet && !landlock_on {
        ui::warn("this kernel has no Landlock: the build can write wherever you can");
    }
    Box::new(move || match landlock_on {
        true => landlock(&writable),
        false => Ok(()),
    })
}

/// After a failed test or run: without binfmt_misc an ARM program cannot start another.
fn note_no_binfmt(job: &Job) {
    let runs_arm = matches!(
        job.opts.subcommand.as_str(),
        "test" | "t" | "bench" | "run" | "r"
    );
    if runs_arm {
        ui::note(
            "without a sandbox ARM programs run as `qemu -L <rootfs> PROG`, with no binfmt_misc: an ARM \
             program that starts another ARM program (a test that runs a tool of the rootfs) fails \
             with ENOEXEC (\"Exec format error\"); `cargo for-arm doctor` names the fixes that bring the sandbox back",
        );
    }
}
