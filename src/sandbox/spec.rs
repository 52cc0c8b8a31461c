//! The typed sandbox specification: what one sandbox runs and sees, built with
//! [`SpecBuilder`] and validated once in [`SpecBuilder::build`] — on the host, before any
//! namespace is entered, so that bad input fails early with a message that names the fix.
//!
//! The sandbox never looks anything up: its callers resolve the rootfs (with its lock guard)
//! and the qemu first and hand both in. Nothing here knows the command line.

use std::any::Any;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

use anyhow::{bail, Context, Result};

use crate::arch::Arch;
use crate::idmap::{self, IdMap, MapMode};
use crate::sandbox::binfmt::Binfmt;
use crate::seccomp::Policy;

/// How guest programs are executed.
#[derive(Debug, Clone)]
pub enum Exec {
    /// The rootfs is the host's own architecture.
    Native,
    /// Through a static qemu: `path` is the tool's own; `binfmt` says how foreign programs
    /// reach a qemu ([`Binfmt`]: a private binfmt_misc with `register_line`, the host's
    /// registration, or none).
    Qemu {
        path: PathBuf,
        register_line: Vec<u8>,
        binfmt: Binfmt,
    },
}

impl Exec {
    /// How foreign programs reach qemu (`None` for a rootfs of the host's architecture).
    pub fn binfmt(&self) -> Option<&Binfmt> {
        match self {
            Exec::Native => None,
            Exec::Qemu { binfmt, .. } => Some(binfmt),
        }
    }
}

/// The sandbox's network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Network {
    /// Share the host's network.
    Host,
    /// A new, empty network namespace (loopback only).
    None,
}

/// Whether the sandbox may write through a bind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    ReadOnly,
    ReadWrite,
}

/// A host path seen inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bind {
    pub host: PathBuf,
    pub guest: PathBuf,
    pub access: Access,
}

impl Bind {
    /// `host` at `guest`. Both are checked by [`SpecBuilder::build`].
    pub fn new(host: impl Into<PathBuf>, guest: impl Into<PathBuf>, access: Access) -> Bind {
        Bind {
            host: host.into(),
            guest: guest.into(),
            access,
        }
    }

    /// `host` at the same path inside.
    pub fn same(host: impl Into<PathBuf>, access: Access) -> Bind {
        let host = host.into();
        Bind::new(host.clone(), host, access)
    }

    pub fn readonly(&self) -> bool {
        self.access == Access::ReadOnly
    }
}

/// Root's capabilities inside the user namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Caps {
    /// Every capability dropped before exec (the default).
    Drop,
    /// Kept (`rootfs shell`, stage 2 of `rootfs create`: apt, dpkg and chown need them).
    Keep,
}

/// What happens to writes to the rootfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RootWrites {
    /// A throwaway overlay takes them: stored rootfs are never modified by a run.
    Throwaway,
    /// They change the tree (a directory the user named, `rootfs shell`, `rootfs create`).
    InPlace,
}

/// The root of a sandbox, resolved by the caller.
#[derive(Clone)]
pub struct Root {
    /// Absolute and canonical.
    pub path: PathBuf,
    pub writes: RootWrites,
    /// Host directories no bind may show (the tool's own home, with the store and the fetched
    /// qemus): where a bind contains one, an empty read-only tmpfs covers it inside.
    pub hidden: Vec<PathBuf>,
    /// Kept alive as long as the spec (a stored rootfs's shared lock, so `rm` waits).
    pub guard: Option<Rc<dyn Any>>,
}

impl std::fmt::Debug for Root {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Root")
            .field("path", &self.path)
            .field("writes", &self.writes)
            .field("hidden", &self.hidden)
            .finish_non_exhaustive()
    }
}

impl Root {
    /// A directory with nothing hidden and writes in place.
    pub fn dir(path: impl Into<PathBuf>) -> Root {
        Root {
            path: path.into(),
            writes: RootWrites::InPlace,
            hidden: Vec::new(),
            guard: None,
        }
    }
}

/// A validated sandbox: everything `spawn` needs.
#[derive(Debug, Clone)]
pub struct Spec {
    pub rootfs: PathBuf,
    pub exec: Exec,
    pub binds: Vec<Bind>,
    /// Guest paths covered by an empty read-only tmpfs (see [`Root::hidden`]), each right
    /// after the bind that would show it.
    pub masks: Vec<PathBuf>,
    pub workdir: PathBuf,
    pub env: Vec<(String, String)>,
    pub network: Network,
    pub idmap: IdMap,
    pub notes: Vec<String>,
    pub argv: Vec<String>,
    pub caps: Caps,
    pub writes: RootWrites,
    /// The syscall filter, compiled before clone.
    pub seccomp: Vec<seccompiler::BpfProgram>,
    _guard: Option<Rc<dyn Any>>,
}

impl Spec {
    pub fn keep_caps(&self) -> bool {
        self.caps == Caps::Keep
    }

    pub fn ephemeral(&self) -> bool {
        self.writes == RootWrites::Throwaway
    }
}

/// Builds a [`Spec`]; cheap to clone, so one template serves many runs (the runner service).
#[derive(Debug, Clone)]
pub struct SpecBuilder {
    root: Root,
    exec: Exec,
    binds: Vec<Bind>,
    workdir: PathBuf,
    env: Vec<(String, String)>,
    network: Network,
    map: MapMode,
    seccomp: Policy,
    caps: Caps,
    argv: Vec<String>,
}

pub const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

impl SpecBuilder {
    /// A sandbox rooted at `root` whose programs run through `exec`:
    /// no binds, workdir `/`, no network, an automatic id map, the default syscall filter,
    /// no capabilities, and the base environment (PATH, HOME, LANG, the host's TERM).
    pub fn new(root: Root, exec: Exec) -> SpecBuilder {
        let mut env = vec![
            ("PATH".to_string(), DEFAULT_PATH.to_string()),
            ("HOME".to_string(), "/root".to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ];
        if let Ok(term) = std::env::var("TERM") {
            env.push(("TERM".into(), term));
        }
        SpecBuilder {
            root,
            exec,
            binds: Vec::new(),
            workdir: PathBuf::from("/"),
            env,
            network: Network::None,
            map: MapMode::Auto,
            seccomp: Policy::Default,
            caps: Caps::Drop,
            argv: Vec::new(),
        }
    }

    pub fn bind(mut self, b: Bind) -> Self {
        self.binds.push(b);
        self
    }

    pub fn binds(mut self, b: impl IntoIterator<Item = Bind>) -> Self {
        self.binds.extend(b);
        self
    }

    pub fn workdir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.workdir = dir.into();
        self
    }

    /// Set a variable (replacing an earlier value of the same name).
    pub fn env(mut self, k: impl Into<String>, v: impl Into<String>) -> Self {
        let k = k.into();
        self.env.retain(|(ek, _)| *ek != k);
        self.env.push((k, v.into()));
        self
    }

    pub fn network(mut self, n: Network) -> Self {
        self.network = n;
        self
    }

    pub fn map(mut self, m: MapMode) -> Self {
        self.map = m;
        self
    }

    pub fn seccomp(mut self, p: Policy) -> Self {
        self.seccomp = p;
        self
    }

    pub fn caps(mut self, c: Caps) -> Self {
        self.caps = c;
        self
    }

    pub fn argv(mut self, argv: Vec<String>) -> Self {
        self.argv = argv;
        self
    }

    pub fn root(&self) -> &Root {
        &self.root
    }

    pub fn exec(&self) -> &Exec {
        &self.exec
    }

    pub fn binds_so_far(&self) -> &[Bind] {
        &self.binds
    }

    pub fn env_so_far(&self) -> &[(String, String)] {
        &self.env
    }

    /// The network given so far (the compile cache's opt-in may have shared the host's).
    pub fn network_so_far(&self) -> Network {
        self.network
    }

    /// Validate everything once and compile the syscall filter.
    pub fn build(&self) -> Result<Spec> {
        let rootfs = &self.root.path;
        if rootfs == Path::new("/") {
            bail!("the host's / cannot be a rootfs");
        }
        if self.argv.is_empty() {
            bail!("no command given: cargo for-arm run --rootfs DIR -- CMD [ARGS]");
        }
        let binds = self.checked_binds()?;
        let masks = self.masks(&binds);
        self.check_qemu(&binds)?;
        for (k, v) in &self.env {
            check_env(k, v)?;
        }
        let workdir = guest_path(&self.workdir).context("the working directory")?;
        let (idmap, note) = idmap::choose(self.map, &idmap::Sources::default())?;
        let mut notes: Vec<String> = note.into_iter().collect();
        if self.seccomp == Policy::Off {
            notes.push("--seccomp off: the sandbox has NO syscall filter (kernel keyrings, bpf, perf, nested user namespaces are reachable)".into());
        }
        let seccomp = crate::seccomp::compile(&self.seccomp)?;
        Ok(Spec {
            rootfs: rootfs.clone(),
            exec: self.exec.clone(),
            binds,
            masks,
            workdir,
            env: self.env.clone(),
            network: self.network,
            idmap,
            notes,
            argv: self.argv.clone(),
            caps: self.caps,
            writes: self.root.writes,
            seccomp,
            _guard: self.root.guard.clone(),
        })
    }

    fn is_hidden(&self, host: &Path) -> bool {
        self.root.hidden.iter().any(|h| host.starts_with(h))
    }

    /// Binds with absolute, normalised paths, none over `/`, none showing the rootfs.
    fn checked_binds(&self) -> Result<Vec<Bind>> {
        let mut out = Vec::with_capacity(self.binds.len());
        for b in &self.binds {
            let host = b.host.canonicalize().with_context(|| {
                format!("bind {}: the host path does not exist", b.host.display())
            })?;
            let guest =
                guest_path(&b.guest).with_context(|| format!("bind {}", b.host.display()))?;
            if guest == Path::new("/") {
                bail!(
                    "bind {}: cannot bind over the root of the sandbox",
                    b.host.display()
                );
            }
            if self.root.path.starts_with(&host) && !self.is_hidden(&self.root.path) {
                bail!(
                    "--bind {}: it contains the rootfs {}, which would make the rootfs reachable from inside",
                    host.display(),
                    self.root.path.display()
                );
            }
            out.push(Bind::new(host, guest, b.access));
        }
        Ok(out)
    }

    /// Where each hidden directory would appear through a bind, inside.
    fn masks(&self, binds: &[Bind]) -> Vec<PathBuf> {
        let mut masks = Vec::new();
        for b in binds {
            for h in &self.root.hidden {
                if let Ok(rel) = h.strip_prefix(&b.host) {
                    let m = b.guest.join(rel);
                    if !masks.contains(&m) {
                        masks.push(m);
                    }
                }
            }
        }
        masks
    }

    /// binfmt F keeps qemu's inode open: a sandbox that could write it would change the
    /// interpreter of every later run.
    fn check_qemu(&self, binds: &[Bind]) -> Result<()> {
        let Exec::Qemu { path, .. } = &self.exec else {
            return Ok(());
        };
        if self.is_hidden(path) {
            return Ok(());
        }
        if let Some(b) = binds
            .iter()
            .find(|b| !b.readonly() && path.starts_with(&b.host))
        {
            bail!(
                "qemu {} lies inside the writable bind {}: the sandbox could replace it. Move qemu \
                 elsewhere, or bind that directory read-only (:ro)",
                path.display(),
                b.host.display()
            );
        }
        Ok(())
    }
}

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

fn check_env(k: &str, v: &str) -> Result<()> {
    if k.is_empty() || k.contains(['=', '\0']) || v.contains('\0') {
        bail!("environment variable {k:?}: a name must be non-empty without '=' or NUL, a value without NUL");
    }
    Ok(())
}

/// The host's enabled binfmt_misc entry with the F flag for `arch`, found by its magic
/// (see [`crate::sandbox::binfmt::host_entry`]), described.
pub fn host_registration(arch: Arch) -> Option<String> {
    crate::sandbox::binfmt::host_entry(Path::new(crate::sandbox::binfmt::HOST_DIR), arch)
        .map(|e| e.describe())
}

/// Bytes of a path, for CStrings.
pub fn cpath(p: &Path) -> Result<CString> {
    CString::new(p.as_os_str().as_bytes())
        .with_context(|| format!("path {} contains NUL", p.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn builder(root: &Path) -> SpecBuilder {
        SpecBuilder::new(Root::dir(root), Exec::Native)
            .argv(vec!["true".into()])
            .map(MapMode::Single)
            .seccomp(Policy::Off)
    }

    fn tmp(tag: &str) -> PathBuf {
        let p = std::env::temp_dir().join(format!("cfa-spec-{tag}-{}", std::process::id()));
        std::fs::create_dir_all(p.join("root/bin")).unwrap();
        std::fs::create_dir_all(p.join("home/.cache/cargo-for-arm/qemu")).unwrap();
        p.canonicalize().unwrap()
    }

    #[test]
    fn guest_paths_are_absolute_and_normalised() {
        assert_eq!(guest_path(Path::new("/a/./b/")).unwrap(), Path::new("/a/b"));
        assert!(guest_path(Path::new("a/b")).is_err());
        assert!(guest_path(Path::new("/a/../etc")).is_err());
    }

    #[test]
    fn binds_are_checked_once_when_built() {
        let t = tmp("binds");
        let root = t.join("root");
        let ok = builder(&root)
            .bind(Bind::new(t.join("home"), "/mnt/./h", Access::ReadOnly))
            .build()
            .unwrap();
        assert_eq!(ok.binds[0].guest, Path::new("/mnt/h"));
        assert!(ok.binds[0].readonly());
        let over_root = builder(&root).bind(Bind::new(&t, "/", Access::ReadOnly));
        assert!(over_root.build().is_err());
        let relative = builder(&root).bind(Bind::new(&t, "rel", Access::ReadOnly));
        assert!(relative.build().is_err());
        let missing = builder(&root).bind(Bind::same(t.join("nope"), Access::ReadOnly));
        assert!(missing.build().is_err());
        // A bind that contains the rootfs would make it reachable from inside.
        let containing = builder(&root).bind(Bind::same(&t, Access::ReadWrite));
        let e = containing.build().unwrap_err().to_string();
        assert!(e.contains("contains the rootfs"), "{e}");
        assert!(builder(&root).argv(vec![]).build().is_err());
        assert!(builder(&root).env("A=B", "x").build().is_err());
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn a_hidden_home_inside_a_bind_is_masked_not_refused() {
        let t = tmp("hidden");
        let home = t.join("home");
        let cfa = home.join(".cache/cargo-for-arm");
        let stored = cfa.join("rootfs");
        std::fs::create_dir_all(stored.join("bin")).unwrap();
        let qemu = cfa.join("qemu/qemu-arm");
        std::fs::write(&qemu, b"").unwrap();
        let mut root = Root::dir(&stored);
        root.hidden = vec![cfa.clone()];
        let exec = Exec::Qemu {
            path: qemu,
            register_line: vec![],
            binfmt: Binfmt::Private,
        };
        let spec = SpecBuilder::new(root, exec)
            .argv(vec!["true".into()])
            .map(MapMode::Single)
            .seccomp(Policy::Off)
            .bind(Bind::new(&home, "/home/u", Access::ReadWrite))
            .build()
            .unwrap();
        assert_eq!(
            spec.masks,
            vec![PathBuf::from("/home/u/.cache/cargo-for-arm")]
        );
        let _ = std::fs::remove_dir_all(&t);
    }

    #[test]
    fn options_are_named_and_env_replaces() {
        let t = tmp("opts");
        let spec = builder(&t.join("root"))
            .caps(Caps::Keep)
            .env("PATH", "/x")
            .build()
            .unwrap();
        assert!(spec.keep_caps());
        assert!(!spec.ephemeral());
        assert_eq!(
            spec.env
                .iter()
                .filter(|(k, _)| k == "PATH")
                .collect::<Vec<_>>(),
            vec![&("PATH".to_string(), "/x".to_string())]
        );
        let _ = std::fs::remove_dir_all(&t);
    }
}
