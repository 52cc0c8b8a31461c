//! Native mode: cargo and rustc run at host speed with `--target`, the ARM rootfs serving as
//! sysroot; emulation only runs ARM code (tests, `cargo run`, benches).
//!
//! The native toolchain comes from a *tools rootfs*: a Debian rootfs for the host
//! architecture from the same suite as the ARM rootfs, with cargo, rustc, clang, lld and llvm.
//! Debian builds its host rustc and the target `libstd-rust` of one suite from one source, so
//! they are the same compiler build. The sandbox is rooted at the tools rootfs; the ARM rootfs
//! is bound read-only at [`GUEST_SYSROOT`], and its `lib/rustlib/<triple>` over the tools
//! rootfs's own `/usr/lib/rustlib/<triple>`, so rustc's default sysroot holds both halves.
//! C code and linking go through clang `--target --sysroot` with lld (docs/ARCHITECTURE.md).

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use super::{runner, Job, Prepared};
use crate::arch::Arch;
use crate::rootfs::Rootfs;
use crate::sandbox::spec::{Access, Bind, SpecBuilder, DEFAULT_PATH};
use crate::seccomp::Policy;

/// Where the ARM rootfs appears inside the tools sandbox.
pub const GUEST_SYSROOT: &str = "/run/cargo-for-arm/sysroot";
/// Where the compiler wrappers appear inside the tools sandbox.
pub const GUEST_TOOLCHAIN: &str = "/run/cargo-for-arm/toolchain";
/// Programs a tools rootfs must have, and the Debian packages that bring them.
pub const TOOLS: [&str; 6] = [
    "/usr/bin/cargo",
    "/usr/bin/rustc",
    "/usr/bin/clang",
    "/usr/bin/ld.lld",
    "/usr/bin/llvm-ar",
    "/usr/bin/pkg-config",
];
pub const TOOLS_PACKAGES: &str = "cargo,clang,lld,llvm,pkg-config";
/// The tools rootfs of a build whose cargo and rustc come from the user's rustup toolchain:
/// the C tools only.
pub const C_TOOLS_PACKAGES: &str = "clang,lld,llvm,pkg-config";

/// A target native mode can compile for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Rust's target triple.
    pub triple: &'static str,
    /// clang's `--target` (Debian's multiarch triple, where the rootfs keeps libraries).
    pub clang: &'static str,
}

impl Target {
    pub fn of(arch: Arch, desc: &str) -> Option<Target> {
        match arch {
            Arch::Arm if !desc.contains("armel") => Some(Target {
                triple: "armv7-unknown-linux-gnueabihf",
                clang: "arm-linux-gnueabihf",
            }),
            Arch::Aarch64 => Some(Target {
                triple: "aarch64-unknown-linux-gnu",
                clang: "aarch64-linux-gnu",
            }),
            _ => None,
        }
    }

    /// `CARGO_TARGET_<TRIPLE>_<what>`.
    pub fn cargo_env(&self, what: &str) -> String {
        format!(
            "CARGO_TARGET_{}_{what}",
            self.triple.to_uppercase().replace('-', "_")
        )
    }

    /// The variables cargo, the `cc` crate and the `pkg-config` crate read, every one scoped
    /// to the target: a global one would also apply to build scripts and proc macros, which
    /// are host code (docs/ARCHITECTURE.md, "Native mode").
    pub fn build_env(&self, runner: &str) -> Vec<(String, String)> {
        self.build_env_at(runner, GUEST_SYSROOT, GUEST_TOOLCHAIN)
    }

    /// [`Target::build_env`] with the sysroot and the wrappers at other paths (isolation
    /// rung 3: the host paths, no sandbox to bind them at the guest ones).
    pub fn build_env_at(
        &self,
        runner: &str,
        sysroot: &str,
        toolchain: &str,
    ) -> Vec<(String, String)> {
        let t = self.triple;
        let under = t.replace('-', "_");
        let libdir = format!(
            "{sysroot}/usr/lib/{c}/pkgconfig:{sysroot}/usr/lib/pkgconfig:{sysroot}/usr/share/pkgconfig",
            c = self.clang
        );
        let mut env = vec![
            ("CARGO_BUILD_TARGET".to_string(), t.to_string()),
            (self.cargo_env("LINKER"), format!("{toolchain}/linker")),
            (self.cargo_env("RUNNER"), runner.to_string()),
            // Only allows pkg-config for a cross target; the paths below are target-scoped.
            ("PKG_CONFIG_ALLOW_CROSS".to_string(), "1".to_string()),
        ];
        for name in [t, under.as_str()] {
            env.push((format!("CC_{name}"), format!("{toolchain}/cc")));
            env.push((format!("CXX_{name}"), format!("{toolchain}/c++")));
            env.push((format!("AR_{name}"), "llvm-ar".to_string()));
            env.push((
                format!("PKG_CONFIG_SYSROOT_DIR_{name}"),
                sysroot.to_string(),
            ));
            env.push((format!("PKG_CONFIG_LIBDIR_{name}"), libdir.clone()));
        }
        env
    }

    /// The compiler wrappers: clang for the target, against the ARM rootfs, linking with lld.
    pub fn wrappers(&self) -> Vec<(&'static str, String)> {
        self.wrappers_at(GUEST_SYSROOT, "")
    }

    /// [`Target::wrappers`] against the sysroot at `sysroot`, with `link_extra` added to
    /// the linker's arguments (isolation rung 3).
    pub fn wrappers_at(&self, sysroot: &str, link_extra: &str) -> Vec<(&'static str, String)> {
        let common = format!("--target={} --sysroot={sysroot}", self.clang);
        let script = |prog: &str, extra: &str| {
            format!(
                "#!/bin/sh\n# cargo-for-arm: {prog} for {}\nexec {prog} {common}{extra} \"$@\"\n",
                self.triple
            )
        };
        vec![
            ("cc", script("clang", "")),
            ("c++", script("clang++", "")),
            (
                "linker",
                script("clang", &format!(" -fuse-ld=lld{link_extra}")),
            ),
        ]
    }
}

/// Write the wrappers of `target` into `dir` (host path, bound at [`GUEST_TOOLCHAIN`]).
pub fn write_wrappers(target: &Target, dir: &Path) -> Result<()> {
    write_wrapper_texts(target.wrappers(), dir)
}

/// Write compiler wrappers (name, script) into `dir`, each replaced atomically.
pub fn write_wrapper_texts(wrappers: Vec<(&'static str, String)>, dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for (name, text) in wrappers {
        let path = dir.join(name);
        if std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str()) {
            continue;
        }
        let tmp = dir.join(format!(".{name}.{}", std::process::id()));
        std::fs::write(&tmp, &text)?;
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755))?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// The compiler version a crate's metadata was written by, as rustc compares it when it loads
/// the crate ("rustc 1.63.0", "rustc 1.85.1 (4eb161250 2025-03-15) (built from a source
/// tarball)"): read from the `lib.rmeta` member of an rlib, where it follows the header.
pub fn rlib_rustc_version(rlib: &Path) -> Result<String> {
    use std::os::unix::fs::OpenOptionsExt;
    // A directory rootfs may be one a build wrote (`--rootfs-rw`): no FIFO, no symlink.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOFOLLOW)
        .open(rlib)
        .with_context(|| format!("opening {}", rlib.display()))?;
    if !file.metadata()?.is_file() {
        bail!("{} is not a regular file", rlib.display());
    }
    let mut archive = ar::Archive::new(file);
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.with_context(|| format!("reading {} as an rlib", rlib.display()))?;
        if entry.header().identifier() != b"lib.rmeta" {
            continue;
        }
        let mut head = Vec::new();
        entry.by_ref().take(4096).read_to_end(&mut head)?;
        return version_in(&head)
            .with_context(|| format!("no rustc version in the metadata of {}", rlib.display()));
    }
    bail!("{} has no lib.rmeta: not an rlib", rlib.display())
}

/// The first `rustc <digit>…` run of printable bytes.
pub fn version_in(data: &[u8]) -> Option<String> {
    let at = data
        .windows(7)
        .position(|w| w.starts_with(b"rustc ") && w[6].is_ascii_digit())?;
    let end = data[at..]
        .iter()
        .position(|b| !(0x20..0x7f).contains(b))
        .map_or(data.len(), |n| at + n);
    Some(
        String::from_utf8_lossy(&data[at..end])
            .trim_end()
            .to_string(),
    )
}

/// A target's standard library inside a rootfs: the directory `usr/lib/rustlib/<triple>`
/// (resolved, and checked to stay inside the rootfs), and the rustc version that built it.
#[derive(Debug, Clone)]
pub struct Std {
    pub dir: PathBuf,
    pub version: String,
}

pub fn find_std(rootfs: &Path, triple: &str) -> Result<Option<Std>> {
    find_std_under(rootfs, "usr", triple)
}

/// `find_std` for a rustc sysroot (`<sysroot>/lib/rustlib/<triple>`), e.g. a rustup toolchain.
pub fn find_std_in_sysroot(sysroot: &Path, triple: &str) -> Result<Option<Std>> {
    find_std_under(sysroot, "", triple)
}

fn find_std_under(root: &Path, prefix: &str, triple: &str) -> Result<Option<Std>> {
    let rel = Path::new(prefix).join("lib/rustlib").join(triple);
    let Ok(dir) = root.join(&rel).canonicalize() else {
        return Ok(None);
    };
    let canon_root = root.canonicalize()?;
    if !dir.starts_with(&canon_root) {
        bail!(
            "{}/{} leads outside it (to {}): refusing to use it",
            root.display(),
            rel.display(),
            dir.display()
        );
    }
    let lib = dir.join("lib");
    let Ok(entries) = std::fs::read_dir(&lib) else {
        return Ok(None);
    };
    let rlib = entries.flatten().map(|e| e.path()).find(|p| {
        let n = p.file_name().map(|n| n.to_string_lossy().into_owned());
        n.is_some_and(|n| n.starts_with("libstd-") && n.ends_with(".rlib"))
    });
    let Some(rlib) = rlib else { return Ok(None) };
    let version = rlib_rustc_version(&rlib)?;
    Ok(Some(Std { dir, version }))
}

/// The ARM rootfs's multiarch library directory (`usr/lib/<multiarch>`), resolved inside it.
/// Bound at the same path in the tools sandbox: Debian's `-dev` packages link
/// `libfoo.so -> /lib/<multiarch>/libfoo.so.N` with absolute targets, which must resolve there
/// or the linker silently takes the static `libfoo.a` instead. The host's own multiarch
/// directory has another name, so nothing of the tools rootfs is covered.
pub fn multiarch_dir(rootfs: &Rootfs, target: &Target) -> Result<Option<PathBuf>> {
    let Ok(dir) = rootfs
        .path()
        .join("usr/lib")
        .join(target.clang)
        .canonicalize()
    else {
        return Ok(None);
    };
    if !dir.starts_with(rootfs.path()) {
        bail!(
            "{}/usr/lib/{} leads outside the rootfs (to {}): refusing to use it",
            rootfs.path().display(),
            target.clang,
            dir.display()
        );
    }
    Ok(Some(dir))
}

/// The C runtime a native link needs from the ARM rootfs (the sysroot): Debian packages
/// missing, each with the file that tells. libc6-dev brings the crt files and `libc.so`,
/// libgcc-N-dev `crtbeginS.o` and `libgcc_s.so` (which Rust's std links).
pub fn missing_c_runtime(arm: &Rootfs, target: &Target) -> Vec<(String, String)> {
    let mut missing = Vec::new();
    let lib = format!("/usr/lib/{}", target.clang);
    if let Some(f) = ["crt1.o", "crti.o", "libc.so"]
        .iter()
        .find(|f| !arm.exists(&format!("{lib}/{f}")))
    {
        missing.push(("libc6-dev".to_string(), format!("{lib}/{f}")));
    }
    let gcc = format!("/usr/lib/gcc/{}", target.clang);
    let need = ["crtbeginS.o", "libgcc_s.so", "libgcc.a"];
    let versions = std::fs::read_dir(arm.path().join(&gcc[1..]))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned());
    let complete = versions
        .into_iter()
        .any(|n| need.iter().all(|f| arm.exists(&format!("{gcc}/{n}/{f}"))));
    if !complete {
        let package = match gcc_major(arm) {
            Some(n) => format!("libgcc-{n}-dev"),
            None => "libgcc-N-dev (N: the gcc of the rootfs's suite)".to_string(),
        };
        missing.push((package, format!("{gcc}/<N>/crtbeginS.o, libgcc_s.so")));
    }
    missing
}

/// The major version of the rootfs's gcc runtime: its `libgcc-s1` package ("12.2.0-14" → 12).
fn gcc_major(arm: &Rootfs) -> Option<u32> {
    let data = arm.read("/var/lib/dpkg/status").ok()?;
    let text = String::from_utf8_lossy(&data);
    let stanza = text
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == "Package: libgcc-s1"))?;
    let version = stanza.lines().find_map(|l| l.strip_prefix("Version: "))?;
    version
        .split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// `Err` naming the packages the ARM rootfs lacks to serve as a sysroot, and the fix.
pub fn check_c_runtime(arm: &Rootfs, target: &Target) -> Result<()> {
    let missing = missing_c_runtime(arm, target);
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|(p, _)| p.as_str()).collect();
    let files: Vec<&str> = missing.iter().map(|(_, f)| f.as_str()).collect();
    bail!(
        "the ARM rootfs {} lacks the C runtime a native link needs: {} (no {}). Install them in it \
         (cargo for-arm rootfs shell NAME, then apt-get install {}), or create the rootfs with them \
         (cargo for-arm rootfs create NAME … --include {}; a create with -dev packages adds them), or --mode emulate",
        arm.path().display(),
        names.join(", "),
        files.join("; "),
        names.join(" "),
        names.join(",")
    )
}

/// The name a tools rootfs for `suite` gets in the store.
pub fn tools_name(suite: &str) -> String {
    use crate::rootfs::debian::sources::{self, Distro};
    let arch = Arch::host().debian_name("");
    // Named after the archive it comes from: an Ubuntu host's own archive gives
    // `ubuntu-noble-amd64-tools`.
    let distro = match sources::mirror_for(arch, None).ok().and_then(|m| m.distro) {
        Some(Distro::Ubuntu) => "ubuntu",
        _ => "debian",
    };
    format!("{distro}-{suite}-{arch}-tools")
}

/// The name of the tools rootfs with [`C_TOOLS_PACKAGES`] only (no cargo, no rustc).
pub fn c_tools_name(suite: &str) -> String {
    format!("{}-c", tools_name(suite))
}

/// Programs of [`TOOLS`] a tools rootfs lacks; with a rustup toolchain, cargo and rustc come
/// from that toolchain and only the C tools are needed.
pub fn missing_tools(tools: &Rootfs, rustup: bool) -> Vec<&'static str> {
    TOOLS
        .iter()
        .copied()
        .filter(|t| !(rustup && (t.ends_with("/cargo") || t.ends_with("/rustc"))))
        .filter(|t| !tools.exists(t))
        .collect()
}

/// The sysroot of the host's `rustc` (the user's rustup toolchain, or whatever rustc is on
/// PATH), if one answers.
pub fn host_sysroot() -> Option<PathBuf> {
    let out = std::process::Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .ok()?;
    let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    (out.status.success() && p.join("bin/cargo").is_file() && p.join("bin/rustc").is_file())
        .then_some(p)
}

/// Where a host rustc sysroot appears inside the tools sandbox.
pub const GUEST_RUST: &str = "/run/cargo-for-arm/rust";

/// The glibc version of a Debian rootfs: the `libc6` package's upstream version in its dpkg
/// status ("2.36-9+deb12u9" → (2, 36)); in a tree without one (a sysroot, unpacked without
/// dpkg), the version its `libc.so.6` states.
pub fn rootfs_glibc(rootfs: &Rootfs) -> Option<(u32, u32)> {
    dpkg_glibc(rootfs).or_else(|| libc_so_glibc(rootfs))
}

fn libc_so_glibc(rootfs: &Rootfs) -> Option<(u32, u32)> {
    const MARK: &[u8] = b"GNU C Library (";
    [
        "x86_64-linux-gnu",
        "aarch64-linux-gnu",
        "arm-linux-gnueabihf",
    ]
    .iter()
    .find_map(|m| rootfs.read(&format!("/usr/lib/{m}/libc.so.6")).ok())
    .and_then(|data| {
        let at = data.windows(MARK.len()).position(|w| w == MARK)?;
        let text = String::from_utf8_lossy(&data[at..data.len().min(at + 200)]).into_owned();
        let v = text.split("release version ").nth(1)?;
        let mut it = v.split(|c: char| !c.is_ascii_digit());
        Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
    })
}

fn dpkg_glibc(rootfs: &Rootfs) -> Option<(u32, u32)> {
    let data = rootfs.read("/var/lib/dpkg/status").ok()?;
    let text = String::from_utf8_lossy(&data);
    let stanza = text
        .split("\n\n")
        .find(|s| s.lines().any(|l| l == "Package: libc6"))?;
    let version = stanza.lines().find_map(|l| l.strip_prefix("Version: "))?;
    let mut it = version.split(|c: char| !c.is_ascii_digit());
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The runner is this very binary, started inside the tools rootfs: it needs that rootfs's
/// glibc to be at least the one it was linked against. `Err` names the fix.
pub fn check_runner_glibc(exe: &Path, tools: &Rootfs, home: &Path) -> Result<()> {
    let need = own_glibc_floor(exe, home);
    let have = rootfs_glibc(tools);
    if let (Some(need), Some(have)) = (need, have) {
        if need > have {
            bail!(
                "cargo-for-arm ({}) needs glibc {}.{}, but the tools rootfs {} has {}.{}: the target runner \
                 (cargo-for-arm inside it) could not start. Use a tools rootfs of a newer suite (--tools-rootfs), \
                 or build cargo-for-arm against an older glibc (or for x86_64-unknown-linux-musl)",
                exe.display(),
                need.0,
                need.1,
                tools.path().display(),
                have.0,
                have.1
            );
        }
    }
    Ok(())
}

/// The glibc floor of this binary (read in full: 10–120 MB), cached in the host-only cache
/// (`<home>/host`, which no sandbox is given) keyed by the binary's path, size, mtime and
/// inode: a no-op build does not read it again.
pub fn own_glibc_floor(exe: &Path, home: &Path) -> Option<(u32, u32)> {
    use sha2::Digest;
    use std::os::unix::fs::MetadataExt;
    let m = std::fs::metadata(exe).ok()?;
    let mut h = sha2::Sha256::new();
    h.update(exe.as_os_str().as_encoded_bytes());
    h.update(format!(
        "\0{}\0{}\0{}\0{}",
        m.len(),
        m.mtime(),
        m.mtime_nsec(),
        m.ino()
    ));
    let key = crate::rootfs::fetch::hex(&h.finalize()[..8]);
    let cache = home.join("host").join(format!("glibc-floor-{key}.txt"));
    if let Ok(text) = std::fs::read_to_string(&cache) {
        let t = text.trim();
        if t == "none" {
            return None;
        }
        if let Some((a, b)) = t.split_once('.') {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                return Some((a, b));
            }
        }
    }
    let floor = crate::report::inspect(exe).and_then(|a| a.glibc_floor);
    let text = match floor {
        Some((a, b)) => format!("{a}.{b}\n"),
        None => "none\n".to_string(),
    };
    if std::fs::create_dir_all(cache.parent()?).is_ok() {
        // A `.tmp-` name: the store's clean-up removes it if this run is killed here.
        let tmp = home
            .join("host")
            .join(format!(".tmp-glibc-floor-{key}-{}", std::process::id()));
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &cache);
        }
    }
    floor
}

/// Everything native mode needs, checked.
#[derive(Debug)]
pub struct Setup {
    pub target: Target,
    pub tools: Rootfs,
    pub target_std: Std,
    pub host_version: String,
    /// The host rustc sysroot (a rustup toolchain with the target installed) that compiles,
    /// instead of the tools rootfs's rustc; bound at [`GUEST_RUST`].
    pub rustup: Option<PathBuf>,
}

impl Setup {
    /// What identifies the rustc that compiles: the version its std carries, and where it
    /// lives (the rustup toolchain, else the tools rootfs).
    pub fn rustc(&self) -> (&str, &Path) {
        let root = self.rustup.as_deref().unwrap_or(self.tools.path());
        (&self.host_version, root)
    }
}

/// cargo's working directory of a native build (`target/for-arm/<flavour>`), one per rustc:
/// `native-<deb arch>-<release>-<hash>` ("native-armhf-1.95.0-1a2b3c4d"), the hash of
/// `version` (the version string rustc compares when it loads a crate: for a rustup toolchain
/// with its commit) and of the rustc's `root`. Another rustc (rustup's vs the Debian pair's,
/// or two toolchains) gets a directory of its own, so switching between them rebuilds nothing
/// and two cargos never share one (their fingerprints and layouts differ).
pub fn flavour(deb: &str, version: &str, root: &Path) -> String {
    named(&format!("native-{deb}"), version, root)
}

/// `<base>-<release>-<hash>`, as [`flavour`] describes; an emulated build's working directory
/// is named so too, by the rootfs's rustc (`armhf-1.63.0-…`).
pub fn named(base: &str, version: &str, root: &Path) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(version.as_bytes());
    h.update(b"\0");
    h.update(root.as_os_str().as_encoded_bytes());
    let release: String = version
        .split_whitespace()
        .nth(1)
        .unwrap_or("")
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || ".-".contains(*c))
        .take(32)
        .collect();
    let hash = crate::rootfs::fetch::hex(&h.finalize()[..4]);
    match release.is_empty() {
        true => format!("{base}-{hash}"),
        false => format!("{base}-{release}-{hash}"),
    }
}

/// Host rustc and target std must be the same compiler build.
pub fn check_versions(host: &str, target: &str, tools: &Path, arm: &Path) -> Result<()> {
    if host != target {
        bail!(
            "the tools rootfs {} has {host}, but the target standard library in {} was built by {target}: \
             they must be the same rustc. Use a tools rootfs of the ARM rootfs's Debian suite \
             (cargo for-arm rootfs create NAME --suite SUITE --arch {} --include {TOOLS_PACKAGES}), or --mode emulate",
            tools.display(),
            arm.display(),
            Arch::host().debian_name("")
        );
    }
    Ok(())
}

/// The triple of the host's own Rust standard library in a tools rootfs.
pub fn host_triple() -> Option<&'static str> {
    match Arch::host() {
        Arch::X86_64 => Some("x86_64-unknown-linux-gnu"),
        Arch::Aarch64 => Some("aarch64-unknown-linux-gnu"),
        _ => None,
    }
}

/// The native executor: cargo in a sandbox rooted at the tools rootfs, the ARM rootfs bound
/// read-only as the sysroot, the compiler wrappers, and the runner service for ARM programs.
pub fn prepare(job: &Job, s: &Setup) -> Result<Prepared> {
    let triple = s.target.triple;
    let (arch, _) = s.tools.arch()?;
    let exec = crate::qemu::exec_for(arch, None)?;
    let mut b = SpecBuilder::new(s.tools.sandbox_root()?, exec);
    b = job.common(b);
    b = b.bind(Bind::new(
        job.rootfs.path(),
        GUEST_SYSROOT,
        Access::ReadOnly,
    ));
    b = match &s.rustup {
        // The whole toolchain, its bin first on PATH.
        Some(sysroot) => b
            .bind(Bind::new(sysroot, GUEST_RUST, Access::ReadOnly))
            .env("PATH", format!("{GUEST_RUST}/bin:{DEFAULT_PATH}")),
        // The target std beside the tools rootfs's own host std.
        None => b.bind(Bind::new(
            &s.target_std.dir,
            format!("/usr/lib/rustlib/{triple}"),
            Access::ReadOnly,
        )),
    };
    if let Some(dir) = multiarch_dir(&job.rootfs, &s.target)? {
        let guest = format!("/usr/lib/{}", s.target.clang);
        b = b.bind(Bind::new(dir, guest, Access::ReadOnly));
    }
    let cache = super::cache::plan(job, &s.tools)?;
    let wrappers = match &cache {
        Some(c) => c.wrappers(&s.target)?,
        None => {
            let dir = job.home.join("toolchain").join(triple);
            write_wrappers(&s.target, &dir)?;
            dir
        }
    };
    b = b.bind(Bind::new(&wrappers, GUEST_TOOLCHAIN, Access::ReadOnly));
    if let Some(c) = &cache {
        b = c.apply(b, s.rustup.is_some())?;
    }
    let exe = std::fs::read_link("/proc/self/exe").context("finding cargo-for-arm itself")?;
    check_runner_glibc(&exe, &s.tools, &job.home)?;
    b = b.bind(Bind::new(&exe, runner::GUEST_EXE, Access::ReadOnly));
    let run_dir = job.run_dir.0.join("runner");
    // The service (and the ARM sandbox it starts programs in, with its qemu) is needed only
    // by commands that run ARM programs through cargo's target runner; a build or check runs
    // none (build scripts and proc macros are host code), so it starts none.
    let service = match runs_arm_programs(&job.opts.subcommand) {
        true => Some(runner::Service::start(
            &run_dir,
            arm_template(job)?,
            job.writable(),
            job.timeout,
            job.opts.retries,
        )?),
        false => {
            std::fs::create_dir_all(&run_dir)
                .with_context(|| format!("creating {}", run_dir.display()))?;
            None
        }
    };
    b = b.bind(Bind::new(&run_dir, runner::GUEST_DIR, Access::ReadWrite));
    for (k, v) in s.target.build_env(&runner::runner_command()) {
        b = b.env(k, v);
    }
    b = b.env(runner::SOCKET_ENV, format!("{}/sock", runner::GUEST_DIR));
    Ok(Prepared {
        builder: b,
        service,
        artifacts: job.target_dir.join(triple),
        verb: "Native",
        banner: format!(
            "cargo {} for {} [{}]: {} of {}, clang and lld of {}, against {}; ARM programs run emulated (target dir {})",
            job.opts.subcommand,
            triple,
            job.deb(),
            s.host_version,
            match &s.rustup {
                Some(r) => format!("the toolchain {}", r.display()),
                None => "the tools rootfs".to_string(),
            },
            s.tools.path().display(),
            job.rootfs.path().display(),
            job.target_dir.display()
        ),
    })
}

/// Whether cargo's target runner can be called by this cargo command: not by those that only
/// compile (or document: doc-tests are not run for a cross target).
pub fn runs_arm_programs(subcommand: &str) -> bool {
    !matches!(
        subcommand,
        "build" | "b" | "check" | "c" | "clippy" | "doc" | "d" | "rustc" | "fetch"
    )
}

/// The sandbox the runner service starts ARM programs in: the ARM rootfs, with the project
/// and target dir at their own paths.
fn arm_template(job: &Job) -> Result<SpecBuilder> {
    let asked = job.opts.arch.as_deref().map(Arch::parse).transpose()?;
    let (arch, _) = job.rootfs.arch_as(asked)?;
    let exec = crate::qemu::exec_for(arch, job.opts.qemu.as_deref())?;
    let b = SpecBuilder::new(job.rootfs.sandbox_root()?, exec)
        .binds(job.project_binds())
        .workdir(&job.project.root)
        .network(job.opts.network)
        .map(job.opts.map)
        .seccomp(Policy::parse(&job.opts.seccomp));
    // Validated now, so a bad template fails the build, not every ARM program.
    b.clone().argv(vec!["true".into()]).build()?;
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_are_read_as_rustc_compares_them() {
        let meta = b"rust\0\0\0\x06\0\0\0\x0crustc 1.63.0\x01\x02rustc 9";
        assert_eq!(version_in(meta).as_deref(), Some("rustc 1.63.0"));
        let meta = b"rust\0\0\0\x08\x3frustc 1.85.1 (4eb161250 2025-03-15) (built from a source tarball)\0";
        assert_eq!(
            version_in(meta).as_deref(),
            Some("rustc 1.85.1 (4eb161250 2025-03-15) (built from a source tarball)")
        );
        assert_eq!(version_in(b"rustc version 1.0"), None);
        let e = check_versions(
            "rustc 1.63.0",
            "rustc 1.85.1",
            Path::new("/t"),
            Path::new("/a"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("rustc 1.63.0")
                && e.contains("rustc 1.85.1")
                && e.contains("--mode emulate"),
            "{e}"
        );
    }

    #[test]
    fn each_rustc_has_a_working_directory_of_its_own() {
        let rustup = Path::new("/opt/rust");
        let tools =
            Path::new("/home/u/.cache/cargo-for-arm/rootfs/debian-bookworm-amd64-tools/root");
        let a = flavour("armhf", "rustc 1.95.0 (59807616e 2026-04-14)", rustup);
        let b = flavour("armhf", "rustc 1.63.0", tools);
        assert!(
            a.starts_with("native-armhf-1.95.0-") && a.len() == "native-armhf-1.95.0-".len() + 8,
            "{a}"
        );
        assert!(b.starts_with("native-armhf-1.63.0-"), "{b}");
        // Stable for one rustc; another build of the same release, or the same release at
        // another place, is another directory.
        assert_eq!(
            a,
            flavour("armhf", "rustc 1.95.0 (59807616e 2026-04-14)", rustup)
        );
        assert_ne!(
            a,
            flavour("armhf", "rustc 1.95.0 (0123456ab 2026-04-01)", rustup)
        );
        assert_ne!(
            a,
            flavour("armhf", "rustc 1.95.0 (59807616e 2026-04-14)", tools)
        );
        assert_ne!(
            a,
            flavour("arm64", "rustc 1.95.0 (59807616e 2026-04-14)", rustup)
        );
        // Nothing of the version string but plain characters reaches the path.
        let odd = flavour("arm64", "rustc ../../x/\u{1b}1 (y)", rustup);
        assert!(
            odd.starts_with("native-arm64-....x1-") && !odd.contains('/'),
            "{odd}"
        );
        assert!(flavour("armhf", "rustc", rustup).starts_with("native-armhf-"));
        // An emulated build's, by the rootfs's rustc: the same name without "native-".
        let emulated = named("armhf", "rustc 1.63.0", tools);
        assert!(emulated.starts_with("armhf-1.63.0-"), "{emulated}");
        assert_ne!(emulated, named("armhf", "rustc 1.85.1", tools));
    }

    #[test]
    fn glibc_of_a_rootfs_from_its_dpkg_status() {
        let dir = std::env::temp_dir().join(format!("cfa-glibc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
        std::fs::write(
            dir.join("var/lib/dpkg/status"),
            "Package: libc6-dev\nVersion: 9.9-1\n\nPackage: libc6\nStatus: install ok installed\nVersion: 2.36-9+deb12u14\n",
        )
        .unwrap();
        assert_eq!(rootfs_glibc(&Rootfs::open(&dir).unwrap()), Some((2, 36)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn glibc_of_a_tree_without_dpkg_from_its_libc_so() {
        let dir = std::env::temp_dir().join(format!("cfa-glibc-so-{}", std::process::id()));
        let lib = dir.join("usr/lib/x86_64-linux-gnu");
        std::fs::create_dir_all(&lib).unwrap();
        let rootfs = || Rootfs::open(&dir).unwrap();
        assert_eq!(rootfs_glibc(&rootfs()), None);
        let mut so = b"\x7fELF\0\0".to_vec();
        so.extend(b"GNU C Library (Debian GLIBC 2.36-9+deb12u13) stable release version 2.36.\n\0");
        std::fs::write(lib.join("libc.so.6"), so).unwrap();
        assert_eq!(rootfs_glibc(&rootfs()), Some((2, 36)));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn every_cross_setting_is_scoped_to_the_target() {
        let t = Target::of(Arch::Arm, "ARM EABI5 hard-float").unwrap();
        assert_eq!(t.triple, "armv7-unknown-linux-gnueabihf");
        assert!(Target::of(Arch::Arm, "ARM EABI5 soft-float (armel)").is_none());
        let env = t.build_env("/r run");
        let names: Vec<&str> = env.iter().map(|(k, _)| k.as_str()).collect();
        assert!(names.contains(&"CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER"));
        assert!(names.contains(&"CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER"));
        assert!(names.contains(&"CC_armv7_unknown_linux_gnueabihf"));
        assert!(names.contains(&"PKG_CONFIG_SYSROOT_DIR_armv7-unknown-linux-gnueabihf"));
        for bare in [
            "CC",
            "CXX",
            "AR",
            "PKG_CONFIG_SYSROOT_DIR",
            "PKG_CONFIG_LIBDIR",
            "PKG_CONFIG_PATH",
            "RUSTFLAGS",
        ] {
            assert!(!names.contains(&bare), "{bare} would reach host builds");
        }
        let a = Target::of(Arch::Aarch64, "").unwrap();
        let linker = &a.wrappers()[2].1;
        assert!(linker.contains("--target=aarch64-linux-gnu --sysroot=/run/cargo-for-arm/sysroot -fuse-ld=lld \"$@\""), "{linker}");
    }
}
