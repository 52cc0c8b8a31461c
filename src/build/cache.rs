//! Native mode's shared compile cache, through sccache (issue 16): rustc (as `RUSTC_WRAPPER`)
//! and the C compilers of the clang wrappers go through the host's sccache, run *inside* the
//! build sandbox; its server starts with cargo and is asked for its statistics and stopped
//! before cargo's sandbox ends (by a `cargo` wrapper first on PATH), so pending writes are
//! not lost with the pid namespace.
//!
//! Backends, configured the sccache way from the host's environment:
//! - the local disk (`SCCACHE_DIR`, default `<home>/sccache`): bound read-write (read-only
//!   for `sccache:ro`), one build at a time (a lock the host holds for the build);
//! - Redis on a unix socket (`SCCACHE_REDIS` / `SCCACHE_REDIS_ENDPOINT` =
//!   `unix:///path` or `redis+unix:///path`): that one socket is bound in, the build gets no
//!   network;
//! - HTTPS object stores, memcached and TCP Redis are refused with the reason.
//!
//! A shared cache is the deliberate exception to "nothing one build writes reaches another"
//! (docs/SECURITY.md, "The shared compile cache").

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::native::{Target, GUEST_RUST, GUEST_SYSROOT};
use super::Job;
use crate::sandbox::spec::{Access, Bind, SpecBuilder, DEFAULT_PATH};
use crate::settings::{self, Settings};
use crate::ui;

/// Where the cache's pieces appear inside the native sandbox.
const GUEST_SCCACHE: &str = "/run/cargo-for-arm/cache/sccache";
const GUEST_BIN: &str = "/run/cargo-for-arm/cache/bin";
const GUEST_OUT: &str = "/run/cargo-for-arm/cache/out";
const GUEST_LOCAL: &str = "/run/cargo-for-arm/cache/dir";
const GUEST_REDIS: &str = "/run/cargo-for-arm/cache/redis.sock";
/// Set by the cargo wrapper: a nested cargo (a build script's) does not start another server.
const UP_ENV: &str = "CARGO_FOR_ARM_SCCACHE_UP";

/// What `--cache` asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    None,
    Sccache { read_only: bool },
}

impl Ask {
    pub fn parse(s: &str) -> Result<Ask> {
        Ok(match s {
            "none" | "" => Ask::None,
            "sccache" => Ask::Sccache { read_only: false },
            "sccache:ro" => Ask::Sccache { read_only: true },
            v => bail!("--cache {v}: use sccache, sccache:ro or none"),
        })
    }
}

/// Where sccache keeps the objects, as the sandbox sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// A directory of the host.
    Local(PathBuf),
    /// A Redis server's unix socket, and the URL's query (`?db=1` …).
    RedisUnix { socket: PathBuf, db: Option<u32> },
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(d) => write!(f, "local disk {}", d.display()),
            Backend::RedisUnix { socket, .. } => write!(f, "redis unix:{}", socket.display()),
        }
    }
}

/// sccache settings of the host that reach the sandbox's sccache.
const PASSED: [&str; 9] = [
    "SCCACHE_CACHE_SIZE",
    "SCCACHE_CACHE_ZSTD_LEVEL",
    "SCCACHE_REDIS_DB",
    "SCCACHE_REDIS_USERNAME",
    "SCCACHE_REDIS_PASSWORD",
    "SCCACHE_REDIS_KEY_PREFIX",
    "SCCACHE_REDIS_EXPIRATION",
    "SCCACHE_REDIS_TTL",
    "SCCACHE_LOG",
];

/// Variables of sccache's remote backends this tool cannot forward safely.
const UNSUPPORTED: [(&str, &str); 9] = [
    ("SCCACHE_BUCKET", "S3"),
    ("SCCACHE_GCS_BUCKET", "GCS"),
    ("SCCACHE_AZURE_CONNECTION_STRING", "Azure"),
    ("SCCACHE_GHA_ENABLED", "the GitHub Actions cache"),
    ("SCCACHE_WEBDAV_ENDPOINT", "WebDAV"),
    ("SCCACHE_OSS_BUCKET", "Alibaba OSS"),
    ("SCCACHE_MEMCACHED", "memcached"),
    ("SCCACHE_MEMCACHED_ENDPOINT", "memcached"),
    ("SCCACHE_REDIS_CLUSTER_ENDPOINTS", "a Redis cluster"),
];

/// The backend the host's sccache variables name (`var` reads the environment).
pub fn backend(var: impl Fn(&str) -> Option<String>, home: &Path) -> Result<Backend> {
    for (name, what) in UNSUPPORTED {
        if var(name).is_some() {
            bail!(
                "{name} is set: sccache's {what} backend is not supported by cargo-for-arm's cache. \
                 It needs the network (and, for object stores, credentials a build script could read) \
                 inside the build sandbox; use Redis on a unix socket (SCCACHE_REDIS=unix:///path) \
                 or the local disk (SCCACHE_DIR), or unset {name}"
            );
        }
    }
    let redis = var("SCCACHE_REDIS_ENDPOINT")
        .map(|v| ("SCCACHE_REDIS_ENDPOINT", v))
        .or_else(|| var("SCCACHE_REDIS").map(|v| ("SCCACHE_REDIS", v)));
    if let Some((name, url)) = redis {
        let rest = url
            .strip_prefix("redis+unix://")
            .or_else(|| url.strip_prefix("unix://"));
        let Some(rest) = rest else {
            bail!(
                "{name}={url}: cargo-for-arm forwards Redis into the build sandbox only on a unix socket \
                 (the build gets no network): run redis-server with `unixsocket /path/redis.sock` (or a \
                 socket forwarder such as socat) and set {name}=unix:///path/redis.sock"
            );
        };
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        let path = path.strip_prefix("localhost").unwrap_or(path);
        let mut db = None;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            match pair.split_once('=') {
                Some(("db", n)) => {
                    db = Some(n.parse().with_context(|| format!("{name}={url}: db={n}"))?)
                }
                _ => bail!("{name}={url}: only ?db=N is understood after the socket path"),
            }
        }
        let socket = PathBuf::from(path);
        if !socket.is_absolute() {
            bail!("{name}={url}: the socket path must be absolute");
        }
        use std::os::unix::fs::FileTypeExt;
        let is_socket = std::fs::metadata(&socket).is_ok_and(|m| m.file_type().is_socket());
        if !is_socket {
            bail!(
                "{name}={url}: {} is not a unix socket (is redis-server running with `unixsocket` there?)",
                socket.display()
            );
        }
        return Ok(Backend::RedisUnix { socket, db });
    }
    let dir = match var("SCCACHE_DIR") {
        Some(d) => PathBuf::from(d),
        None => home.join("sccache"),
    };
    if !dir.is_absolute() {
        bail!("SCCACHE_DIR={}: give an absolute path", dir.display());
    }
    Ok(Backend::Local(dir))
}

/// Whether a `RUSTC_WRAPPER` names sccache.
fn wrapper_is_sccache(w: &str) -> bool {
    Path::new(w)
        .file_name()
        .is_some_and(|n| n == "sccache" || n == "sccache.exe")
}

/// The cache asked for, and who asked: the setting (flag, `CARGO_FOR_ARM_CACHE`, project,
/// config), else a `RUSTC_WRAPPER` naming sccache.
pub fn asked(flag: Option<&str>, settings: &Settings) -> Result<(Ask, String)> {
    if let Some(v) = settings.get(&settings::CACHE, flag) {
        let ask = v.parse(Ask::parse)?;
        // A project is code you may not have written: it may ask for the cache, but only to
        // read it. Writing a shared cache plants objects for every other build that uses it
        // (docs/SECURITY.md), so read-write use is the user's own choice.
        if let (settings::Origin::Project(_), Ask::Sccache { read_only: false }) = (&v.origin, ask)
        {
            return Ok((
                Ask::Sccache { read_only: true },
                format!(
                    "{} (read-only: a project may only read the shared cache; --cache sccache, \
                     CARGO_FOR_ARM_CACHE=sccache or cache = \"sccache\" in your config file writes it)",
                    v.origin
                ),
            ));
        }
        return Ok((ask, v.origin.to_string()));
    }
    if let Ok(w) = std::env::var("RUSTC_WRAPPER") {
        if wrapper_is_sccache(&w) {
            return Ok((
                Ask::Sccache { read_only: false },
                format!("RUSTC_WRAPPER={w}"),
            ));
        }
    }
    Ok((Ask::None, String::new()))
}

/// Emulated builds: the cache is native mode's. Asked by the flag it is an error, else a note.
pub fn refuse_emulated(flag: Option<&str>, settings: &Settings, quiet: bool) -> Result<()> {
    let (ask, by) = asked(flag, settings)?;
    if ask == Ask::None {
        return Ok(());
    }
    let why = "the compile cache works in native mode only: an emulated build's rustc runs under \
               qemu inside the ARM rootfs, where a host sccache cannot run, and an ARM sccache would \
               run emulated too";
    if flag.is_some() {
        bail!(
            "--cache: {why}. Build natively (--mode native, with a tools rootfs), or drop --cache"
        );
    }
    if !quiet {
        ui::note(format!(
            "{by} asks for sccache, but this build is emulated: {why}; building without a cache"
        ));
    }
    Ok(())
}

/// A cached build's plan: the sccache program, the backend, and the host-side lock.
pub struct Plan {
    pub sccache: PathBuf,
    pub backend: Backend,
    pub read_only: bool,
    /// `<run dir>/cache`: the cargo wrapper, the clang wrappers, the statistics.
    dir: PathBuf,
}

/// The lock of a local cache directory, held until [`finish`].
static LOCK: Mutex<Option<std::fs::File>> = Mutex::new(None);

/// The plan of `job` in native mode (`None`: no cache asked).
pub fn plan(job: &Job, tools: &crate::rootfs::Rootfs) -> Result<Option<Plan>> {
    let (ask, by) = asked(job.opts.cache.as_deref(), &job.project.settings)?;
    let Ask::Sccache { read_only } = ask else {
        return Ok(None);
    };
    if by.contains("read-only: a project may only read") && !job.quiet {
        ui::note(format_args!("the compile cache asked for by {by}"));
    }
    let sccache = find_sccache(job)?;
    check_glibc(&sccache, tools)?;
    let backend = backend(
        |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        &job.home,
    )
    .with_context(|| format!("the compile cache ({by})"))?;
    if let Backend::Local(d) = &backend {
        lock_local(d, read_only, job.quiet)?;
    }
    let dir = job.run_dir.0.join("cache");
    std::fs::create_dir_all(dir.join("out"))?;
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::create_dir_all(dir.join("toolchain"))?;
    Ok(Some(Plan {
        sccache,
        backend,
        read_only,
        dir,
    }))
}

/// `--sccache`/setting, else `RUSTC_WRAPPER` naming sccache, else `sccache` on PATH.
fn find_sccache(job: &Job) -> Result<PathBuf> {
    let flag = job
        .opts
        .sccache
        .as_ref()
        .map(|p| p.to_string_lossy().into_owned());
    let named = match job
        .project
        .settings
        .get(&settings::SCCACHE, flag.as_deref())
    {
        Some(v) => Some(v.path()),
        None => std::env::var("RUSTC_WRAPPER")
            .ok()
            .filter(|w| wrapper_is_sccache(w))
            .map(PathBuf::from),
    };
    let found = match named {
        Some(p) if p.components().count() > 1 => Some(p),
        Some(p) => on_path(&p),
        None => on_path(Path::new("sccache")),
    };
    let Some(path) = found else {
        bail!(
            "the compile cache needs sccache, and none was found{}: install it (see the README, \
             \"A shared compile cache\": `cargo install sccache --locked --no-default-features --features redis`) \
             or pass --sccache PATH",
            flag.map(|f| format!(" at {f}")).unwrap_or_default()
        );
    };
    let path = path
        .canonicalize()
        .with_context(|| format!("sccache {}", path.display()))?;
    if !path.is_file() {
        bail!("sccache {} is not a file", path.display());
    }
    Ok(path)
}

fn on_path(name: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// sccache runs in the tools rootfs: its glibc must be new enough for the host's binary.
fn check_glibc(sccache: &Path, tools: &crate::rootfs::Rootfs) -> Result<()> {
    let Some(art) = crate::report::inspect(sccache) else {
        bail!("{} is not an ELF program", sccache.display());
    };
    let need = art.glibc_floor;
    let have = super::native::rootfs_glibc(tools);
    if let (Some(need), Some(have)) = (need, have) {
        if need > have {
            bail!(
                "sccache {} needs glibc {}.{}, but the tools rootfs {} has {}.{}: it runs inside that rootfs. \
                 Use an sccache built against an older glibc (or a static x86_64-unknown-linux-musl build), \
                 or a tools rootfs of a newer suite (--tools-rootfs)",
                sccache.display(),
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

/// Serialise the builds that use one local cache directory (sccache supports one server on
/// it at a time): an exclusive lock of `<dir>.lock` held until the build ends.
fn lock_local(dir: &Path, read_only: bool, quiet: bool) -> Result<()> {
    if read_only {
        if !dir.is_dir() {
            bail!(
                "--cache sccache:ro: the cache directory {} does not exist",
                dir.display()
            );
        }
    } else {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let lock_path = dir.with_extension("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .with_context(|| format!("opening {}", lock_path.display()))?;
    let fd = file.as_raw_fd();
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(fd, libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        if !quiet {
            ui::note(format!(
                "waiting for another build using the compile cache {}",
                dir.display()
            ));
        }
        // SAFETY: as above.
        if unsafe { libc::flock(fd, libc::LOCK_EX) } != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("locking {}", lock_path.display()));
        }
    }
    *LOCK.lock().unwrap_or_else(|e| e.into_inner()) = Some(file);
    Ok(())
}

impl Plan {
    /// The clang wrappers with the C and C++ compilers through sccache (the linker is not
    /// cached): written into this build's own directory, returned for the toolchain bind.
    pub fn wrappers(&self, target: &Target) -> Result<PathBuf> {
        let dir = self.dir.join("toolchain");
        super::native::write_wrappers(target, &dir)?;
        for (name, prog) in [("cc", "clang"), ("c++", "clang++")] {
            // The cc crate runs `$RUSTC_WRAPPER cc …` itself when RUSTC_WRAPPER is sccache:
            // then sccache's server runs this script, which must not go through sccache again.
            let flags = format!("--target={} --sysroot={GUEST_SYSROOT}", target.clang);
            let text = format!(
                "#!/bin/sh\n# cargo-for-arm: {prog} for {t} through sccache\n\
                 if [ \"$(cat /proc/$PPID/comm 2>/dev/null)\" = sccache ]; then exec {prog} {flags} \"$@\"; fi\n\
                 exec {GUEST_SCCACHE} {prog} {flags} \"$@\"\n",
                t = target.triple
            );
            write_exec(&dir.join(name), &text)?;
        }
        Ok(dir)
    }

    /// The sandbox's side: sccache and the backend bound in, `RUSTC_WRAPPER`, and the cargo
    /// wrapper first on PATH (`rustup`: cargo is the toolchain's, else the tools rootfs's).
    pub fn apply(&self, mut b: SpecBuilder, rustup: bool) -> Result<SpecBuilder> {
        let cargo = match rustup {
            true => format!("{GUEST_RUST}/bin/cargo"),
            false => "/usr/bin/cargo".to_string(),
        };
        write_exec(&self.dir.join("bin/cargo"), &cargo_wrapper(&cargo))?;
        let path = b
            .env_so_far()
            .iter()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| DEFAULT_PATH.to_string());
        b = b
            .bind(Bind::new(&self.sccache, GUEST_SCCACHE, Access::ReadOnly))
            .bind(Bind::new(self.dir.join("bin"), GUEST_BIN, Access::ReadOnly))
            .bind(Bind::new(
                self.dir.join("out"),
                GUEST_OUT,
                Access::ReadWrite,
            ))
            .env("PATH", format!("{GUEST_BIN}:{path}"))
            .env("RUSTC_WRAPPER", GUEST_SCCACHE)
            // The server listens on a socket of this build's own directory, not on TCP.
            .env("SCCACHE_SERVER_UDS", format!("{GUEST_OUT}/server.sock"))
            .env("SCCACHE_ERROR_LOG", format!("{GUEST_OUT}/server.log"))
            .env("SCCACHE_IDLE_TIMEOUT", "0")
            .env("SCCACHE_CONF", "/dev/null");
        let rw = match self.read_only {
            true => "READ_ONLY",
            false => "READ_WRITE",
        };
        // The backend's own settings the user gave the sccache way (a Redis password is
        // then visible to build scripts too: docs/SECURITY.md).
        for k in PASSED {
            if let Some(v) = std::env::var(k).ok().filter(|v| !v.is_empty()) {
                b = b.env(k, v);
            }
        }
        b = match &self.backend {
            Backend::Local(dir) => {
                let access = match self.read_only {
                    true => Access::ReadOnly,
                    false => Access::ReadWrite,
                };
                // Read-only: bound so, and without sccache's preprocessor cache (it writes
                // its own directory even when objects are only read).
                let b = match self.read_only {
                    true => b.env("SCCACHE_DIRECT", "false"),
                    false => b,
                };
                b.bind(Bind::new(dir, GUEST_LOCAL, access))
                    .env("SCCACHE_DIR", GUEST_LOCAL)
                    .env("SCCACHE_LOCAL_RW_MODE", rw)
            }
            Backend::RedisUnix { socket, db } => {
                // sccache parses the endpoint as a URI, which needs a host before the path.
                let b = b
                    .bind(Bind::new(socket, GUEST_REDIS, Access::ReadWrite))
                    .env(
                        "SCCACHE_REDIS_ENDPOINT",
                        format!("unix://localhost{GUEST_REDIS}"),
                    )
                    .env("SCCACHE_REDIS_RW_MODE", rw);
                match db {
                    Some(n) => b.env("SCCACHE_REDIS_DB", n.to_string()),
                    None => b,
                }
            }
        };
        Ok(b)
    }
}

/// The `cargo` first on PATH: it starts this build's sccache server, runs cargo, then saves
/// the statistics and stops the server (so its pending writes finish) before the sandbox ends.
fn cargo_wrapper(cargo: &str) -> String {
    format!(
        r#"#!/bin/sh
# cargo-for-arm: cargo with this build's sccache server
if [ -n "${UP_ENV}" ]; then exec {cargo} "$@"; fi
export {UP_ENV}=1
# A retried build (after a hang) finds the last attempt's socket and statistics.
rm -f {GUEST_OUT}/server.sock {GUEST_OUT}/stats.json
if ! {GUEST_SCCACHE} --start-server >{GUEST_OUT}/start.log 2>&1; then
    echo "error: cargo-for-arm: the sccache server did not start in the build sandbox:" >&2
    cat {GUEST_OUT}/start.log {GUEST_OUT}/server.log >&2 2>/dev/null
    exit 101
fi
{cargo} "$@"
status=$?
{GUEST_SCCACHE} --show-stats --stats-format json >{GUEST_OUT}/stats.json 2>/dev/null
{GUEST_SCCACHE} --stop-server >/dev/null 2>&1
exit $status
"#
    )
}

fn write_exec(path: &Path, text: &str) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// What the in-sandbox server counted, as the summary line shows it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Stats {
    pub hits: u64,
    pub misses: u64,
    /// Hits and misses by language ("Rust", "C/C++").
    pub by_language: Vec<(String, u64, u64)>,
}

/// sccache's `--show-stats --stats-format json`. The file was written in the sandbox: it is
/// read bounded, and only numbers are taken from it.
pub fn parse_stats(json: &[u8]) -> Result<Stats> {
    let v: serde_json::Value = serde_json::from_slice(json).context("sccache's statistics")?;
    let stats = v.get("stats").unwrap_or(&v);
    let counts = |key: &str| -> Vec<(String, u64)> {
        stats
            .get(key)
            .and_then(|c| c.get("counts"))
            .and_then(|c| c.as_object())
            .map(|o| {
                o.iter()
                    .filter_map(|(k, n)| Some((sanitize(k), n.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default()
    };
    let hits = counts("cache_hits");
    let misses = counts("cache_misses");
    let mut langs: Vec<String> = hits.iter().chain(&misses).map(|(k, _)| k.clone()).collect();
    langs.sort();
    langs.dedup();
    // Numbers written in the sandbox: summed without overflow.
    let total = |v: &mut dyn Iterator<Item = u64>| v.fold(0u64, u64::saturating_add);
    let of = |v: &[(String, u64)], l: &str| {
        total(&mut v.iter().filter(|(k, _)| k == l).map(|(_, n)| *n))
    };
    let by_language = langs
        .iter()
        .map(|l| (l.clone(), of(&hits, l), of(&misses, l)))
        .collect();
    Ok(Stats {
        hits: total(&mut hits.iter().map(|(_, n)| *n)),
        misses: total(&mut misses.iter().map(|(_, n)| *n)),
        by_language,
    })
}

/// A language name as sccache writes it, kept to printable ASCII.
fn sanitize(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(32)
        .collect()
}

/// After the build: the summary line (hits, misses, backend), and the local lock released.
pub fn finish(job: &Job) {
    let lock = LOCK.lock().unwrap_or_else(|e| e.into_inner()).take();
    // No cache, no summary (the plan made this build's `cache` directory).
    if !job.run_dir.0.join("cache").is_dir() {
        return;
    }
    // Written in the sandbox: read beneath the run dir without following symlinks, a
    // regular file of at most 1 MiB.
    let data = crate::hostfs::open_dir(&job.run_dir.0, Path::new("cache/out"))
        .and_then(|d| crate::hostfs::read_regular(&d, Path::new("stats.json"), 1 << 20));
    let backend = backend(
        |k| std::env::var(k).ok().filter(|v| !v.is_empty()),
        &job.home,
    )
    .map(|b| b.to_string())
    .unwrap_or_default();
    drop(lock);
    if job.quiet {
        return;
    }
    match data.map(|d| parse_stats(&d)) {
        Ok(Ok(s)) => ui::status("Cache", summary(&s, &backend)),
        _ => ui::warn("the sccache server left no statistics (did it stop early?)"),
    }
}

pub fn summary(s: &Stats, backend: &str) -> String {
    let langs: Vec<String> = s
        .by_language
        .iter()
        .map(|(l, h, m)| format!("{l} {h}/{m}"))
        .collect();
    format!(
        "sccache: {} hits, {} misses ({}; hits/misses) — {backend}",
        s.hits,
        s.misses,
        if langs.is_empty() {
            "nothing cacheable".to_string()
        } else {
            langs.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_project_may_only_read_the_shared_cache() {
        let dir = std::env::temp_dir().join(format!("cfa-cache-project-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let manifest = dir.join("Cargo.toml");
        let with = |cache: &str| {
            std::fs::write(
                &manifest,
                format!(
                    "[package]\nname = \"p\"\n[package.metadata.for-arm]\ncache = \"{cache}\"\n"
                ),
            )
            .unwrap();
            Settings::with_project(std::slice::from_ref(&manifest)).unwrap()
        };
        if std::env::var_os(settings::CACHE.env).is_some() {
            eprintln!(
                "skipped: {} is set in this environment",
                settings::CACHE.env
            );
            return;
        }
        let (ask, by) = asked(None, &with("sccache")).unwrap();
        assert_eq!(ask, Ask::Sccache { read_only: true }, "{by}");
        assert!(by.contains("read-only: a project may only read"), "{by}");
        let (ask, _) = asked(None, &with("sccache:ro")).unwrap();
        assert_eq!(ask, Ask::Sccache { read_only: true });
        // The user's own flag writes it.
        let (ask, _) = asked(Some("sccache"), &with("sccache:ro")).unwrap();
        assert_eq!(ask, Ask::Sccache { read_only: false });
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn asks_parse() {
        assert_eq!(
            Ask::parse("sccache").unwrap(),
            Ask::Sccache { read_only: false }
        );
        assert_eq!(
            Ask::parse("sccache:ro").unwrap(),
            Ask::Sccache { read_only: true }
        );
        assert_eq!(Ask::parse("none").unwrap(), Ask::None);
        assert!(Ask::parse("ccache")
            .unwrap_err()
            .to_string()
            .contains("use sccache"));
        assert!(wrapper_is_sccache("/usr/bin/sccache") && wrapper_is_sccache("sccache"));
        assert!(!wrapper_is_sccache("/usr/bin/ccache"));
    }

    #[test]
    fn backends_from_sccache_variables() {
        let home = Path::new("/h");
        let none = |_: &str| None;
        assert_eq!(
            backend(none, home).unwrap(),
            Backend::Local("/h/sccache".into())
        );
        let dir = |k: &str| (k == "SCCACHE_DIR").then(|| "/c".to_string());
        assert_eq!(backend(dir, home).unwrap(), Backend::Local("/c".into()));
        let s3 = |k: &str| (k == "SCCACHE_BUCKET").then(|| "b".to_string());
        let e = backend(s3, home).unwrap_err().to_string();
        assert!(e.contains("S3") && e.contains("unix socket"), "{e}");
        let tcp = |k: &str| (k == "SCCACHE_REDIS").then(|| "redis://127.0.0.1:6379".to_string());
        let e = backend(tcp, home).unwrap_err().to_string();
        assert!(e.contains("unixsocket"), "{e}");
        let missing = |k: &str| {
            (k == "SCCACHE_REDIS_ENDPOINT").then(|| "unix:///nonexistent/r.sock".to_string())
        };
        let e = backend(missing, home).unwrap_err().to_string();
        assert!(e.contains("not a unix socket"), "{e}");
        let dir = std::env::temp_dir().join(format!("cfa-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("r.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let url = format!("redis+unix://{}?db=2", sock.display());
        let ok = |k: &str| (k == "SCCACHE_REDIS").then(|| url.clone());
        assert_eq!(
            backend(ok, home).unwrap(),
            Backend::RedisUnix {
                socket: sock.clone(),
                db: Some(2)
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_sccache_newer_than_the_tools_rootfs_glibc_is_refused() {
        let dir = std::env::temp_dir().join(format!("cfa-cache-glibc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("var/lib/dpkg")).unwrap();
        let status = |v: &str| {
            std::fs::write(
                dir.join("var/lib/dpkg/status"),
                format!("Package: libc6\nStatus: install ok installed\nVersion: {v}\n"),
            )
            .unwrap();
            crate::rootfs::Rootfs::open(&dir).unwrap()
        };
        // This test binary stands for sccache: dynamically linked against the host's glibc.
        let exe = std::fs::read_link("/proc/self/exe").unwrap();
        let e = check_glibc(&exe, &status("2.1-1")).unwrap_err().to_string();
        assert!(e.contains("needs glibc") && e.contains("has 2.1"), "{e}");
        check_glibc(&exe, &status("99.0-1")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn stats_are_numbers_only() {
        let json = br#"{"stats":{"compile_requests":9,"cache_hits":{"counts":{"Rust":5,"C/C++":1},"adv_counts":{}},
            "cache_misses":{"counts":{"Rust":2},"adv_counts":{}}},"cache_location":"evil\u001b[2J"}"#;
        let s = parse_stats(json).unwrap();
        assert_eq!((s.hits, s.misses), (6, 2));
        assert_eq!(
            s.by_language,
            vec![("C/C++".into(), 1, 0), ("Rust".into(), 5, 2)]
        );
        let line = summary(&s, "local disk /c");
        assert_eq!(
            line,
            "sccache: 6 hits, 2 misses (C/C++ 1/0, Rust 5/2; hits/misses) — local disk /c"
        );
        assert!(parse_stats(b"not json").is_err());
        let w = cargo_wrapper("/usr/bin/cargo");
        assert!(
            w.contains("--stop-server") && w.contains("exec /usr/bin/cargo \"$@\""),
            "{w}"
        );
    }
}
