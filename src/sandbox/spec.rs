//! The validated plan: everything `run` needs, checked on the host before any namespace is
//! entered, so that bad input fails early with a message that names the fix.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch::{elf_info, Arch};
use crate::cli::{Network, SandboxArgs};
use crate::idmap::{self, IdMap};
use crate::qemu;
use crate::sandbox::sys;

/// How guest programs are executed.
#[derive(Debug, Clone)]
pub enum Exec {
    /// The rootfs is the host's own architecture.
    Native,
    /// Through binfmt_misc and a static qemu.
    Qemu {
        path: PathBuf,
        register_line: Vec<u8>,
        /// The host's own registration for this architecture, when it has the F flag: used
        /// only if the kernel refuses a private binfmt_misc (older than 6.7).
        host_fallback: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub guest: PathBuf,
    pub readonly: bool,
}

#[derive(Debug, Clone)]
pub struct RunPlan {
    pub rootfs: PathBuf,
    pub arch: Arch,
    pub arch_desc: String,
    pub exec: Exec,
    pub binds: Vec<Bind>,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    pub network: Network,
    pub idmap: IdMap,
    pub notes: Vec<String>,
    pub argv: Vec<String>,
    /// Keep root's capabilities inside the user namespace (`rootfs shell`: apt, dpkg, chown).
    pub keep_caps: bool,
    /// Run on a throwaway overlay of the rootfs: set for rootfs from the store, which are
    /// never modified by a run (`rootfs shell` turns it off to change them on purpose).
    pub ephemeral: bool,
    /// A stored rootfs is locked (shared) while it is in use, so `rootfs rm` waits.
    pub _store_lock: Option<std::rc::Rc<crate::rootfs::store::Lock>>,
    /// The syscall filter, compiled before clone.
    pub seccomp: Vec<seccompiler::BpfProgram>,
}

/// `--rootfs`: a directory, or the name of a complete entry of the store.
pub fn resolve_rootfs(arg: &Path) -> Result<PathBuf> {
    resolve_rootfs_locked(arg).map(|(p, _)| p)
}

/// `resolve_rootfs`, and for a stored rootfs the shared lock that keeps `rm` away from it.
pub fn resolve_rootfs_locked(arg: &Path) -> Result<(PathBuf, Option<crate::rootfs::store::Lock>)> {
    if arg.is_dir() {
        let p = arg
            .canonicalize()
            .with_context(|| format!("resolving {}", arg.display()))?;
        return Ok((p, None));
    }
    let name = arg.to_string_lossy();
    if !name.contains('/') {
        let store = crate::rootfs::store::Store::open()?;
        let lock = store.lock_shared(&name)?;
        if store.get(&name).is_some() {
            return Ok((store.root_of(&name), Some(lock)));
        }
        bail!(
            "rootfs {name}: no such directory, and no rootfs of that name in the store \
             (cargo for-arm rootfs list; cargo for-arm rootfs pull --list-presets)"
        );
    }
    bail!("rootfs {} does not exist", arg.display())
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A guest path: absolute, without `..`, normalised.
pub fn guest_path(p: &Path) -> Result<PathBuf> {
    if !p.is_absolute() {
        bail!("guest path {} must be absolute", p.display());
    }
    let mut out = PathBuf::from("/");
    for c in p.components() {
        match c {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(n) => out.push(n),
            Component::ParentDir => bail!("guest path {} must not contain '..'", p.display()),
            Component::Prefix(_) => unreachable!("no prefixes on Unix"),
        }
    }
    Ok(out)
}

/// `HOST[:GUEST[:ro|rw]]`.
pub fn parse_bind(spec: &str) -> Result<Bind> {
    let parts: Vec<&str> = spec.split(':').collect();
    let (host, guest, mode) = match parts.as_slice() {
        [h] => (*h, None, None),
        [h, g] => (*h, Some(*g), None),
        [h, g, m] => (*h, Some(*g), Some(*m)),
        _ => bail!("--bind {spec}: expected HOST[:GUEST[:ro|rw]]"),
    };
    let readonly = match mode {
        None | Some("rw") => false,
        Some("ro") => true,
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
    Ok(Bind {
        host,
        guest,
        readonly,
    })
}

pub fn parse_env(kv: &str) -> Result<(String, String)> {
    match kv.split_once('=') {
        Some((k, v)) if !k.is_empty() && !k.contains('\0') && !v.contains('\0') => {
            Ok((k.to_string(), v.to_string()))
        }
        _ => bail!("--env {kv}: expected NAME=VALUE"),
    }
}

/// Read up to 64 KiB of a file inside the rootfs, resolving symlinks within the rootfs
/// (`/bin/sh -> dash`, `/bin -> usr/bin`) and never outside it.
pub fn read_in_root(rootfs: &Path, guest: &str) -> Result<Vec<u8>> {
    let root = std::fs::File::open(rootfs)?;
    let c = CString::new(guest)?;
    use std::os::fd::AsRawFd;
    let fd = sys::openat_in_root(root.as_raw_fd(), &c, libc::O_RDONLY as u64)?;
    let mut data = Vec::new();
    std::fs::File::from(fd)
        .take(64 << 20)
        .read_to_end(&mut data)?;
    Ok(data)
}

/// Whether `guest` exists inside the rootfs (symlinks resolved inside it).
pub fn exists_in_root(rootfs: &Path, guest: &str) -> bool {
    let (Ok(root), Ok(c)) = (std::fs::File::open(rootfs), CString::new(guest)) else {
        return false;
    };
    use std::os::fd::AsRawFd;
    sys::openat_in_root(root.as_raw_fd(), &c, libc::O_PATH as u64).is_ok()
}

/// The architecture of a rootfs, from the ELF header of its `/bin/sh`.
pub fn detect_arch(rootfs: &Path) -> Result<(Arch, String)> {
    let data = read_in_root(rootfs, "/bin/sh").with_context(|| {
        format!(
            "cannot read {}/bin/sh to detect the rootfs architecture; is this a root filesystem? \
             (pass --arch if it has no /bin/sh)",
            rootfs.display()
        )
    })?;
    let info = elf_info(&data).with_context(|| {
        format!(
            "{}/bin/sh is not an ELF program; pass --arch",
            rootfs.display()
        )
    })?;
    match info.arch {
        Some(a) => Ok((a, info.describe())),
        None => bail!(
            "{}/bin/sh is built for {}, which cargo-for-arm cannot run",
            rootfs.display(),
            info.describe()
        ),
    }
}

/// The host's binfmt_misc entry for `arch`, if it exists and has the F flag.
pub fn host_registration(arch: Arch) -> Option<String> {
    let p = Path::new("/proc/sys/fs/binfmt_misc").join(arch.binfmt_name());
    let text = std::fs::read_to_string(&p).ok()?;
    let flags = text.lines().find_map(|l| l.strip_prefix("flags: "))?;
    let interp = text.lines().find_map(|l| l.strip_prefix("interpreter "))?;
    text.lines()
        .next()
        .filter(|l| *l == "enabled" && flags.contains('F'))
        .map(|_| format!("{} (flags {flags}, interpreter {interp})", p.display()))
}

impl RunPlan {
    pub fn new(args: &SandboxArgs, argv: Vec<String>) -> Result<RunPlan> {
        let (rootfs, store_lock) = resolve_rootfs_locked(&args.rootfs)?;
        let ephemeral = rootfs.starts_with(crate::rootfs::store::home()?);
        if rootfs == Path::new("/") {
            bail!("the host's / cannot be a rootfs");
        }
        let (arch, arch_desc) = match &args.arch {
            Some(a) => {
                let want = Arch::parse(a)?;
                match detect_arch(&rootfs) {
                    Ok((found, desc)) if found != want => bail!(
                        "--arch {a} was asked, but {} is a {desc} rootfs (its /bin/sh); \
                         use a {want} rootfs or drop --arch",
                        rootfs.display()
                    ),
                    Ok((_, desc)) => (want, desc),
                    // No /bin/sh yet (a rootfs being bootstrapped): trust --arch.
                    Err(_) => (want, want.to_string()),
                }
            }
            None => detect_arch(&rootfs)?,
        };
        let exec = if arch.runs_natively() {
            Exec::Native
        } else {
            let path_var = std::env::var("PATH").ok();
            let q = match qemu::find(arch, args.qemu.as_deref(), path_var.as_deref()) {
                Ok(q) => q,
                // None anywhere (not an unusable one the user named): fetch Debian's, verified.
                Err(e) if format!("{e:#}").starts_with("no qemu for") && qemu::may_fetch() => {
                    eprintln!("cargo-for-arm: no static qemu for {arch} on this machine; fetching Debian's (set CARGO_FOR_ARM_OFFLINE=1 to forbid)");
                    let path = qemu::fetch(arch, None, None, None, false)
                        .with_context(|| format!("{e:#}"))?;
                    qemu::Qemu { path }
                }
                Err(e) => return Err(e),
            };
            Exec::Qemu {
                register_line: arch.binfmt_register_line(&q.path)?,
                path: q.path,
                host_fallback: host_registration(arch),
            }
        };
        let mut binds = args
            .binds
            .iter()
            .map(|b| parse_bind(b))
            .collect::<Result<Vec<_>>>()?;
        let cwd = std::env::current_dir().context("the current directory is gone")?;
        if !args.no_bind_cwd {
            if cwd == Path::new("/") {
                bail!("refusing to bind the host's / as the project directory; cd into the project or pass --no-bind-cwd");
            }
            if cwd.starts_with(&rootfs) {
                bail!("the current directory {} is inside the rootfs; cd elsewhere or pass --no-bind-cwd", cwd.display());
            }
            binds.push(Bind {
                host: cwd.clone(),
                guest: cwd.clone(),
                readonly: false,
            });
        }
        for b in &binds {
            if rootfs.starts_with(&b.host) {
                bail!(
                    "--bind {}: it contains the rootfs {}, which would make the rootfs reachable from inside",
                    b.host.display(),
                    rootfs.display()
                );
            }
        }
        if let Exec::Qemu { path, .. } = &exec {
            // binfmt F keeps qemu's inode open: a sandbox that could write it would change
            // the interpreter of every later run.
            if let Some(b) = binds
                .iter()
                .find(|b| !b.readonly && path.starts_with(&b.host))
            {
                bail!(
                    "qemu {} lies inside the writable bind {}: the sandbox could replace it. Move qemu \
                     elsewhere, or bind that directory read-only (:ro)",
                    path.display(),
                    b.host.display()
                );
            }
        }
        let workdir = match &args.workdir {
            Some(w) => guest_path(w).context("--workdir")?,
            None if args.no_bind_cwd => PathBuf::from("/"),
            None => cwd,
        };
        let mut env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        if let Ok(term) = std::env::var("TERM") {
            env.push(("TERM".into(), term));
        }
        for kv in &args.env {
            let (k, v) = parse_env(kv)?;
            env.retain(|(ek, _)| *ek != k);
            env.push((k, v));
        }
        let (idmap, note) = idmap::choose(args.map, &idmap::Sources::default())?;
        let mut notes: Vec<String> = note.into_iter().collect();
        let policy = crate::seccomp::Policy::parse(&args.seccomp);
        if policy == crate::seccomp::Policy::Off {
            notes.push("--seccomp off: the sandbox has NO syscall filter (kernel keyrings, bpf, perf, nested user namespaces are reachable)".into());
        }
        let seccomp = crate::seccomp::compile(&policy)?;
        if argv.is_empty() {
            bail!("no command given: cargo for-arm run --rootfs DIR -- CMD [ARGS]");
        }
        Ok(RunPlan {
            rootfs,
            arch,
            arch_desc,
            exec,
            binds,
            workdir,
            env,
            network: args.network,
            idmap,
            notes,
            argv,
            keep_caps: false,
            ephemeral,
            _store_lock: store_lock.map(std::rc::Rc::new),
            seccomp,
        })
    }
}

/// Bytes of a path, for CStrings.
pub fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains NUL", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_are_absolute_and_normalised() {
        assert_eq!(guest_path(Path::new("/a/./b/")).unwrap(), Path::new("/a/b"));
        assert!(guest_path(Path::new("a/b")).is_err());
        assert!(guest_path(Path::new("/a/../etc")).is_err());
    }

    #[test]
    fn bind_specs() {
        let b = parse_bind("/tmp:/mnt/x:ro").unwrap();
        assert_eq!(b.guest, Path::new("/mnt/x"));
        assert!(b.readonly);
        let b = parse_bind("/tmp").unwrap();
        assert_eq!(b.guest, Path::new("/tmp").canonicalize().unwrap());
        assert!(!b.readonly);
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
