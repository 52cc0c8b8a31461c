//! `cargo for-arm run`: a command inside a rootfs, in the sandbox, with the current
//! directory bound at its own path.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::cli::{RunArgs, SandboxArgs};
use crate::rootfs::Rootfs;
use crate::sandbox::spec::{guest_path, Access, Bind, SpecBuilder};
use crate::{qemu, supervise, ui};

pub fn run(args: RunArgs, quiet: bool) -> Result<i32> {
    // Isolation rung 3 (no usable user namespace, or --isolation none): refused with the fixes.
    let settings = crate::settings::Settings::user()?;
    let isolation = crate::isolation::decide(&settings, None)?;
    if isolation.rung == crate::isolation::Rung::Unsandboxed {
        return Err(crate::isolation::refusal(
            "cargo for-arm run (a command inside the ARM rootfs)",
            &isolation,
        ));
    }
    let rootfs = Rootfs::open(&args.sandbox.rootfs)?;
    let builder = builder(&args.sandbox, &rootfs)?.argv(args.command);
    let spec = builder.build()?;
    if !quiet {
        spec.notes.iter().for_each(ui::note);
    }
    let how = supervise::Supervision {
        hang_timeout: args.hang_timeout.map(std::time::Duration::from_secs),
        retries: args.retries,
        status: supervise::Status::Plain,
    };
    let outcome = supervise::run(&spec, how)?;
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    Ok(outcome.code)
}

/// The sandbox the `run`-style flags describe, for `rootfs`, without a command yet.
pub fn builder(args: &SandboxArgs, rootfs: &Rootfs) -> Result<SpecBuilder> {
    let asked = args.arch.as_deref().map(Arch::parse).transpose()?;
    let (arch, _) = rootfs.arch_as(asked)?;
    let exec = qemu::exec_for(arch, args.qemu.as_deref())?;
    let writes = match args.rootfs_rw {
        true => crate::sandbox::spec::RootWrites::InPlace,
        false => crate::sandbox::spec::RootWrites::Throwaway,
    };
    let mut b = SpecBuilder::new(rootfs.sandbox_root_writing(writes)?, exec)
        .network(args.network.into())
        .map(args.map)
        .seccomp(crate::seccomp::Policy::parse(&args.seccomp));
    for spec in &args.binds {
        b = b.bind(parse_bind(spec)?);
    }
    let cwd = std::env::current_dir().context("the current directory is gone")?;
    if !args.no_bind_cwd {
        if cwd == Path::new("/") {
            bail!("refusing to bind the host's / as the project directory; cd into the project or pass --no-bind-cwd");
        }
        if cwd.starts_with(rootfs.path()) {
            bail!(
                "the current directory {} is inside the rootfs; cd elsewhere or pass --no-bind-cwd",
                cwd.display()
            );
        }
        b = b.bind(Bind::same(&cwd, Access::ReadWrite));
    }
    let workdir = match &args.workdir {
        Some(w) => guest_path(w).context("--workdir")?,
        None if args.no_bind_cwd => PathBuf::from("/"),
        None => cwd,
    };
    b = b.workdir(workdir);
    for kv in &args.env {
        let (k, v) = parse_env(kv)?;
        b = b.env(k, v);
    }
    Ok(b)
}

/// `--bind HOST[:GUEST[:ro|rw]]`.
pub fn parse_bind(spec: &str) -> Result<Bind> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, guest, mode) = match parts.as_slice() {
        [h] => (*h, None, None),
        [h, g] => (*h, Some(*g), None),
        [h, g, m] => (*h, Some(*g), Some(*m)),
        _ => bail!("--bind {spec}: expected HOST[:GUEST[:ro|rw]]"),
    };
    let access = match mode {
        None | Some("rw") => Access::ReadWrite,
        Some("ro") => Access::ReadOnly,
        Some(m) => bail!("--bind {spec}: unknown mode '{m}', use ro or rw"),
    };
    if host.is_empty() {
        bail!("--bind {spec}: empty host path");
    }
    let host = Path::new(host)
        .canonicalize()
        .with_context(|| format!("--bind {spec}: host path {host} does not exist"))?;
    let guest = match guest {
        Some(g) if !g.is_empty() => {
            guest_path(Path::new(g)).with_context(|| format!("--bind {spec}"))?
        }
        _ => host.clone(),
    };
    if guest == Path::new("/") {
        bail!("--bind {spec}: cannot bind over the root of the sandbox");
    }
    Ok(Bind::new(host, guest, access))
}

/// `--env NAME=VALUE`.
pub fn parse_env(kv: &str) -> Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => bail!("--env {kv}: expected NAME=VALUE"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_specs() {
        let b = parse_bind("/tmp:/mnt/x:ro").unwrap();
        assert_eq!(b.guest, Path::new("/mnt/x"));
        assert!(b.readonly());
        let b = parse_bind("/tmp").unwrap();
        assert_eq!(b.guest, Path::new("/tmp").canonicalize().unwrap());
        assert!(!b.readonly());
        assert!(parse_bind("/tmp:/x:rx")
            .unwrap_err()
            .to_string()
            .contains("unknown mode"));
        assert!(parse_bind("/does/not/exist").is_err());
        assert!(parse_bind("/tmp:/").is_err());
        assert!(parse_bind("/tmp:rel").is_err());
    }

    #[test]
    fn env_pairs() {
        assert_eq!(parse_env("A=b=c").unwrap(), ("A".into(), "b=c".into()));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("NOEQ").is_err());
    }
}
