//! cargo-for-arm: build and run Rust projects for ARM on x86_64 Linux, rootless.

mod arch;
mod build;
mod cli;
mod commands;
mod idmap;
mod qemu;
mod report;
mod rootfs;
mod sandbox;
mod seccomp;
mod supervise;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

/// cargo-for-arm is built to run unprivileged: installed setuid, setgid or with file
/// capabilities it would hand borrowed privileges to code it did not write. Refuse.
fn refuse_borrowed_privileges() -> anyhow::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let exe = std::fs::read_link("/proc/self/exe").unwrap_or_else(|_| "cargo-for-arm".into());
    let md = std::fs::metadata("/proc/self/exe")?;
    // SAFETY: plain id queries.
    let (uid, euid, gid, egid) = unsafe {
        (
            libc::getuid(),
            libc::geteuid(),
            libc::getgid(),
            libc::getegid(),
        )
    };
    if md.mode() & (libc::S_ISUID | libc::S_ISGID) != 0 || uid != euid || gid != egid {
        anyhow::bail!(
            "{} is installed setuid or setgid; cargo-for-arm needs no privileges and refuses to run with borrowed ones: chmod u-s,g-s {}",
            exe.display(),
            exe.display()
        );
    }
    let c = std::ffi::CString::new("/proc/self/exe").expect("no NUL");
    // SAFETY: size query of an xattr with a null buffer.
    let caps = unsafe {
        libc::getxattr(
            c.as_ptr(),
            c"security.capability".as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    if caps > 0 {
        anyhow::bail!(
            "{} has file capabilities; cargo-for-arm needs none and refuses to run with them: setcap -r {}",
            exe.display(),
            exe.display()
        );
    }
    Ok(())
}

fn main() -> ExitCode {
    if let Err(e) = refuse_borrowed_privileges() {
        eprintln!("error: {e:#}");
        return ExitCode::from(sandbox::EXIT_SETUP as u8);
    }
    // Descriptors inherited from whoever started us (item 27) must not reach the sandbox.
    sandbox::sys::cloexec_from(3);
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `cargo for-arm ...` runs `cargo-for-arm for-arm ...`.
    if args.get(1).is_some_and(|a| a == "for-arm") {
        args.remove(1);
    }
    let cli = Cli::parse_from(args);
    match run(cli) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(sandbox::EXIT_SETUP as u8)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            let plan = sandbox::spec::RunPlan::new(&args.sandbox, args.command)?;
            if !cli.quiet {
                for n in &plan.notes {
                    eprintln!("cargo-for-arm: note: {n}");
                }
            }
            let timeout = args.hang_timeout.map(std::time::Duration::from_secs);
            let outcome = supervise::run_supervised(&plan, timeout, args.retries, false)?;
            if let Some(e) = &outcome.error {
                eprintln!("error: {e}");
            }
            Ok(outcome.code)
        }
        Command::Doctor(args) => commands::doctor::run(&args.arches),
        Command::Cargo(args) => build::run(&args, cli.quiet),
        Command::Rootfs(cmd) => commands::rootfs::run(cmd, cli.quiet),
        Command::Qemu(cli::QemuCommand::List) => qemu::list().map(|()| 0),
        Command::Qemu(cli::QemuCommand::Fetch {
            arch,
            suite,
            mirror,
            keyring,
        }) => {
            let arch = arch::Arch::parse(&arch)?;
            let p = qemu::fetch(
                arch,
                suite.as_deref(),
                mirror.as_deref(),
                keyring.as_deref(),
                cli.quiet,
            )?;
            println!("{}", p.display());
            Ok(0)
        }
        Command::InternalUnpack {
            archive,
            dest,
            max_bytes,
            max_entries,
            xz_memlimit,
            keep_setid,
        } => {
            let limits = rootfs::unpack::Limits {
                max_bytes,
                max_entries,
                xz_memlimit,
            };
            let reader = rootfs::unpack::decompressed(&archive, &limits)?;
            let opts = rootfs::unpack::UnpackOptions {
                owners: rootfs::unpack::Owners::Keep,
                layout: rootfs::unpack::Layout::AsArchived,
                setid: if keep_setid {
                    rootfs::unpack::SetId::Keep
                } else {
                    rootfs::unpack::SetId::Strip
                },
            };
            let sum = rootfs::unpack::unpack(reader, &dest, &limits, opts).map_err(|e| {
                anyhow::Error::new(e).context(format!("unpacking {}", archive.display()))
            })?;
            rootfs::store::report_summary(&sum, cli.quiet);
            Ok(0)
        }
        Command::InternalExtractDebs { root, debs } => {
            let limits = rootfs::unpack::Limits::default();
            for deb in debs {
                let data = rootfs::debian::deb_data(&deb)?;
                rootfs::unpack::unpack(data, &root, &limits, rootfs::bootstrap::STAGE1_UNPACK)
                    .map_err(|e| {
                        anyhow::Error::new(e).context(format!("unpacking {}", deb.display()))
                    })?;
            }
            Ok(0)
        }
        Command::InternalRunTarget { argv } => build::runner::client(argv),
        Command::InternalPack { root, out } => {
            rootfs::unpack::IdShift::of_tree(&root)
                .and_then(|shift| rootfs::unpack::pack(&root, &out, shift))
                .map_err(|e| anyhow::anyhow!("packing {}: {e:#}", root.display()))?;
            Ok(0)
        }
        Command::InternalRemoveTree { path } => {
            rootfs::unpack::remove_tree(&path)
                .map_err(|e| anyhow::anyhow!("removing {}: {e}", path.display()))?;
            Ok(0)
        }
    }
}
