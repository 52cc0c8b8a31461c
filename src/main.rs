//! cargo-for-arm: build and run Rust projects for ARM on x86_64 Linux, rootless.

mod arch;
mod build;
mod cli;
mod commands;
mod hostfs;
mod idmap;
mod isolation;
mod qemu;
mod report;
mod rootfs;
mod sandbox;
mod seccomp;
mod settings;
mod supervise;
mod ui;

use std::ffi::OsString;
use std::io::Write;
use std::process::ExitCode;

use clap::FromArgMatches;

use cli::{Cli, Command, GlobalOpts};

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

/// A closed stdout (`cargo for-arm rootfs list | head -1`) ends the tool quietly, as a
/// finished one, as ripgrep does: `println!` panics on EPIPE wherever the tool prints, and
/// this hook turns that one panic into exit 0. Every other panic is reported as before.
fn quiet_on_broken_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let p = info.payload();
        let msg = p
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| p.downcast_ref::<&str>().copied())
            .unwrap_or("");
        if msg.starts_with("failed printing to stdout")
            && msg.ends_with(&format!("(os error {})", libc::EPIPE))
        {
            std::process::exit(0);
        }
        report(info)
    }));
}

/// A write to a closed stdout that came back as an error. Only stdout's: a broken pipe to
/// anything else (the runner's socket) is a failure, never a quiet success.
fn broken_pipe(e: &anyhow::Error) -> bool {
    let epipe = e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    });
    let mut p = libc::pollfd {
        fd: 1,
        events: 0,
        revents: 0,
    };
    // SAFETY: one pollfd on the stack, no waiting; POLLERR on a pipe's write end means its
    // reader is gone.
    let closed = unsafe { libc::poll(&mut p, 1, 0) } == 1 && p.revents & libc::POLLERR != 0;
    epipe && closed
}

fn main() -> ExitCode {
    quiet_on_broken_pipe();
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
    match start(args) {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(e) => match e.downcast_ref::<clap::Error>() {
            Some(c) => {
                let _ = c.print();
                ExitCode::from(c.exit_code().clamp(0, 255) as u8)
            }
            None if broken_pipe(&e) => ExitCode::SUCCESS,
            None => {
                eprintln!("error: {e:#}");
                ExitCode::from(sandbox::EXIT_SETUP as u8)
            }
        },
    }
}

/// The cargo commands go to `build` as they are (our options and cargo's stand in any order
/// there, which clap cannot parse); everything else through clap.
fn start(args: Vec<OsString>) -> anyhow::Result<i32> {
    if let Some(at) = cli::cargo_command_at(&args) {
        let global = cli::parse_globals(&args[..at])?;
        set_output(&global);
        let rest = args[at..]
            .iter()
            .map(|a| {
                a.clone()
                    .into_string()
                    .map_err(|a| anyhow::anyhow!("argument {a:?} is not UTF-8"))
            })
            .collect::<anyhow::Result<Vec<String>>>()?;
        return build::run(&rest, &global);
    }
    let matches = cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    set_output(&cli.global);
    run(cli)
}

/// `--color` and `-q` for everything the tool says.
fn set_output(global: &GlobalOpts) {
    if let Some(c) = global.color {
        ui::set_color(c.into());
    }
    if global.quiet {
        ui::set_quiet();
    }
}

fn print_stdout(bytes: &[u8]) -> anyhow::Result<i32> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()?;
    Ok(0)
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let quiet = cli.global.quiet;
    match cli.command {
        Command::Run(args) => commands::run::run(args, quiet),
        Command::Doctor(args) => commands::doctor::run(&args.arches, args.json),
        Command::Cargo(args) => build::run(&args, &cli.global),
        Command::Completions { shell } => print_stdout(&cli::completions(shell)),
        Command::Man { command } => print_stdout(&cli::man(command.as_deref())?),
        Command::Rootfs(cmd) => commands::rootfs::run(cmd, quiet),
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
                quiet,
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
            rootfs::store::report_summary(&sum, quiet);
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
        Command::InternalCacheForward { socket } => build::forward::in_sandbox(&socket),
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
