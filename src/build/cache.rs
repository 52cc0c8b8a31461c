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
//! - Redis (`redis://[user:password@]host[:port][/db]`) and memcached (`tcp://host:port`)
//!   over TCP: that one endpoint is forwarded (src/build/forward.rs), the build gets no
//!   network; TLS (`rediss://`) and Redis clusters are refused;
//! - HTTPS object stores (S3, GCS, Azure, the GitHub Actions cache, WebDAV …) only on the
//!   user's opt-in (`--cache-network`): the build then shares the host's network, and the
//!   store's credentials are in its environment.
//!
//! A shared cache is the deliberate exception to "nothing one build writes reaches another"
//! (docs/SECURITY.md, "The shared compile cache").

use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{bail, Context, Result};

use super::forward::{self, Parts, Proxy, Tcp};
use super::native::{Target, GUEST_RUST, GUEST_SYSROOT};
use super::Job;
use crate::sandbox::spec::{Access, Bind, Network, SpecBuilder, DEFAULT_PATH};
use crate::settings::{self, Settings};
use crate::ui;

/// Where the cache's pieces appear inside the native sandbox.
const GUEST_SCCACHE: &str = "/run/cargo-for-arm/cache/sccache";
const GUEST_BIN: &str = "/run/cargo-for-arm/cache/bin";
const GUEST_OUT: &str = "/run/cargo-for-arm/cache/out";
const GUEST_LOCAL: &str = "/run/cargo-for-arm/cache/dir";
const GUEST_REDIS: &str = "/run/cargo-for-arm/cache/redis.sock";
/// A forwarded TCP endpoint's socket (src/build/forward.rs).
const GUEST_ENDPOINT: &str = "/run/cargo-for-arm/cache/endpoint.sock";
/// An object store's credential files, and the host's CA bundle.
const GUEST_KEYS: &str = "/run/cargo-for-arm/cache/keys";
const GUEST_CA: &str = "/run/cargo-for-arm/cache/ca-certificates.crt";
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
    /// A Redis server over TCP, forwarded (src/build/forward.rs), and the URL's database and
    /// credentials.
    RedisTcp {
        at: Tcp,
        db: Option<u32>,
        user: Option<String>,
        password: Option<String>,
    },
    /// A memcached server over TCP, forwarded.
    Memcached(Tcp),
    /// An object store over HTTPS: the build shares the host's network (the opt-in).
    Store(&'static Store),
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Local(d) => write!(f, "local disk {}", d.display()),
            Backend::RedisUnix { socket, .. } => write!(f, "redis unix:{}", socket.display()),
            Backend::RedisTcp { at, .. } => write!(f, "redis {at} (forwarded)"),
            Backend::Memcached(at) => write!(f, "memcached {at} (forwarded)"),
            Backend::Store(s) => write!(f, "{} over the host's network", s.name),
        }
    }
}

/// sccache settings of the host that reach the sandbox's sccache.
const PASSED: [&str; 13] = [
    "SCCACHE_CACHE_SIZE",
    "SCCACHE_CACHE_ZSTD_LEVEL",
    "SCCACHE_REDIS_DB",
    "SCCACHE_REDIS_USERNAME",
    "SCCACHE_REDIS_PASSWORD",
    "SCCACHE_REDIS_KEY_PREFIX",
    "SCCACHE_REDIS_EXPIRATION",
    "SCCACHE_REDIS_TTL",
    "SCCACHE_MEMCACHED_USERNAME",
    "SCCACHE_MEMCACHED_PASSWORD",
    "SCCACHE_MEMCACHED_KEY_PREFIX",
    "SCCACHE_MEMCACHED_EXPIRATION",
    "SCCACHE_LOG",
];

/// An sccache backend over HTTPS: the variables that select it, its read-write setting, and
/// the prefixes of the variables (settings and credentials) it reads.
#[derive(Debug, PartialEq, Eq)]
pub struct Store {
    pub name: &'static str,
    select: &'static [&'static str],
    rw: &'static str,
    prefixes: &'static [&'static str],
}

/// sccache's object stores, in the order it picks them (S3 comes before Redis, the others
/// after memcached).
const STORES: [Store; 7] = [
    Store {
        name: "S3",
        select: &["SCCACHE_BUCKET"],
        rw: "SCCACHE_S3_RW_MODE",
        prefixes: &[
            "SCCACHE_BUCKET",
            "SCCACHE_REGION",
            "SCCACHE_ENDPOINT",
            "SCCACHE_S3_",
            "AWS_",
        ],
    },
    Store {
        name: "GCS",
        select: &["SCCACHE_GCS_BUCKET"],
        rw: "SCCACHE_GCS_RW_MODE",
        prefixes: &["SCCACHE_GCS_", "GOOGLE_APPLICATION_CREDENTIALS"],
    },
    Store {
        name: "the GitHub Actions cache",
        select: &["SCCACHE_GHA_ENABLED", "SCCACHE_GHA_VERSION"],
        rw: "SCCACHE_GHA_RW_MODE",
        prefixes: &["SCCACHE_GHA_", "ACTIONS_"],
    },
    Store {
        name: "Azure",
        select: &[
            "SCCACHE_AZURE_BLOB_CONTAINER",
            "SCCACHE_AZURE_CONNECTION_STRING",
        ],
        rw: "SCCACHE_AZURE_RW_MODE",
        prefixes: &["SCCACHE_AZURE_", "AZURE_"],
    },
    Store {
        name: "WebDAV",
        select: &["SCCACHE_WEBDAV_ENDPOINT"],
        rw: "SCCACHE_WEBDAV_RW_MODE",
        prefixes: &["SCCACHE_WEBDAV_"],
    },
    Store {
        name: "Alibaba OSS",
        select: &["SCCACHE_OSS_BUCKET"],
        rw: "SCCACHE_OSS_RW_MODE",
        prefixes: &["SCCACHE_OSS_", "ALIBABA_CLOUD_"],
    },
    Store {
        name: "Tencent COS",
        select: &["SCCACHE_COS_BUCKET"],
        rw: "SCCACHE_COS_RW_MODE",
        prefixes: &["SCCACHE_COS_", "TENCENTCLOUD_"],
    },
];

/// Variables naming a credential file: bound read-only into the sandbox when passed.
const KEY_FILES: [&str; 6] = [
    "SCCACHE_GCS_KEY_PATH",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AZURE_FEDERATED_TOKEN_FILE",
];

/// The host's CA bundle, given to an object store's client (the tools rootfs may have none).
const CA_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

impl Store {
    /// Whether the host variable `k` is one of this store's.
    fn passes(&self, k: &str) -> bool {
        self.prefixes.iter().any(|p| k.starts_with(p))
    }
}

/// The backend the host's sccache variables name (`var` reads the environment); `network`
/// is the origin of the user's opt-in to object stores (`--cache-network` …), if given.
pub fn backend(
    var: impl Fn(&str) -> Option<String>,
    home: &Path,
    network: Option<&str>,
) -> Result<Backend> {
    if var("SCCACHE_REDIS_CLUSTER_ENDPOINTS").is_some() {
        bail!(
            "SCCACHE_REDIS_CLUSTER_ENDPOINTS is set: a Redis cluster is not supported by \
             cargo-for-arm's cache (it forwards one endpoint into the build sandbox); name one \
             server with SCCACHE_REDIS_ENDPOINT=redis://host:port, or unset it"
        );
    }
    let (s3, others) = STORES.split_at(1);
    if let Some(b) = store(&var, s3, network)? {
        return Ok(b);
    }
    if let Some((name, url)) = first(&var, ["SCCACHE_REDIS_ENDPOINT", "SCCACHE_REDIS"]) {
        return redis(name, &url);
    }
    if let Some((name, url)) = first(&var, ["SCCACHE_MEMCACHED_ENDPOINT", "SCCACHE_MEMCACHED"]) {
        return memcached(name, &url);
    }
    if let Some(b) = store(&var, others, network)? {
        return Ok(b);
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

/// The first of `names` that is set, with its value.
fn first<const N: usize>(
    var: &impl Fn(&str) -> Option<String>,
    names: [&'static str; N],
) -> Option<(&'static str, String)> {
    names.into_iter().find_map(|n| var(n).map(|v| (n, v)))
}

/// The object store of `stores` a variable selects: refused without the opt-in.
fn store(
    var: &impl Fn(&str) -> Option<String>,
    stores: &'static [Store],
    network: Option<&str>,
) -> Result<Option<Backend>> {
    let off = |v: &str| matches!(v.to_ascii_lowercase().as_str(), "false" | "off" | "0");
    for s in stores {
        let Some(name) = s.select.iter().find(|n| var(n).is_some_and(|v| !off(&v))) else {
            continue;
        };
        if network.is_none() {
            bail!(
                "{name} is set: sccache's {what} backend needs the network inside the build sandbox \
                 (DNS, several HTTPS hosts) and its credentials in the build's environment, where \
                 every build script and proc macro can read them and send them anywhere. \
                 cargo-for-arm gives both only on your explicit opt-in: --cache-network \
                 (CARGO_FOR_ARM_CACHE_NETWORK=1, or cache-network = true in your config file); the \
                 build then shares the host's network. Otherwise use Redis or memcached (one \
                 endpoint, forwarded without the network) or the local disk (SCCACHE_DIR), or \
                 unset {name}",
                what = s.name
            );
        }
        return Ok(Some(Backend::Store(s)));
    }
    Ok(None)
}

/// `SCCACHE_REDIS[_ENDPOINT]`: a unix socket, or `redis://[user[:password]@]host[:port][/db]`.
fn redis(name: &str, url: &str) -> Result<Backend> {
    let shown = forward::redacted(url);
    let unix = url
        .strip_prefix("redis+unix://")
        .or_else(|| url.strip_prefix("unix://"));
    if let Some(rest) = unix {
        return redis_unix(name, &shown, rest);
    }
    if url.starts_with("rediss://") {
        bail!(
            "{name}={shown}: Redis over TLS (rediss://) is not supported by cargo-for-arm's cache: the \
             tool forwards the endpoint's bytes into the build sandbox as they are, and sccache there \
             could not check the server's certificate against the name. Reach the server over a TLS \
             tunnel of this machine (stunnel, spiped …) and name its plain end: {name}=redis://127.0.0.1:PORT"
        );
    }
    let Some(rest) = url
        .strip_prefix("redis://")
        .or_else(|| url.strip_prefix("tcp://"))
    else {
        bail!(
            "{name}={shown}: give redis://[user:password@]host[:port][/db] or unix:///path/redis.sock"
        );
    };
    let p = Parts::of(rest, 6379).with_context(|| format!("{name}={shown}"))?;
    let path_db = match p.path.trim_start_matches('/') {
        "" => None,
        n => Some(
            n.parse()
                .with_context(|| format!("{name}={shown}: the database /{n}"))?,
        ),
    };
    let db = query_db(name, &shown, p.query)?.or(path_db);
    Ok(Backend::RedisTcp {
        at: p.at,
        db,
        user: p.user,
        password: p.password,
    })
}

/// `url` is as messages show it (redacted).
fn redis_unix(name: &str, url: &str, rest: &str) -> Result<Backend> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    let path = path.strip_prefix("localhost").unwrap_or(path);
    let db = query_db(name, url, query)?;
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
    Ok(Backend::RedisUnix { socket, db })
}

/// `?db=N`, the only query understood (`url` as messages show it).
fn query_db(name: &str, url: &str, query: &str) -> Result<Option<u32>> {
    let mut db = None;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        match pair.split_once('=') {
            Some(("db", n)) => {
                db = Some(n.parse().with_context(|| format!("{name}={url}: db={n}"))?)
            }
            _ => bail!("{name}={url}: only ?db=N is understood after the address"),
        }
    }
    Ok(db)
}

/// `SCCACHE_MEMCACHED[_ENDPOINT]`: `tcp://host:port` (or `host:port`).
fn memcached(name: &str, url: &str) -> Result<Backend> {
    let shown = forward::redacted(url);
    let rest = url.strip_prefix("tcp://").unwrap_or(url);
    if rest.contains("://") {
        bail!("{name}={shown}: give tcp://host:port (sccache's memcached backend speaks TCP only)");
    }
    let p = Parts::of(rest, 11211).with_context(|| format!("{name}={shown}"))?;
    if p.user.is_some() || !p.path.trim_start_matches('/').is_empty() || !p.query.is_empty() {
        bail!(
            "{name}={shown}: give tcp://host:port (credentials go in SCCACHE_MEMCACHED_USERNAME and \
             SCCACHE_MEMCACHED_PASSWORD)"
        );
    }
    Ok(Backend::Memcached(p.at))
}

/// The user's opt-in to object stores (`--cache-network`, `CARGO_FOR_ARM_CACHE_NETWORK`,
/// `cache-network` of the user's config; never a project's): its origin when on.
pub fn network_opt_in(flag: bool, settings: &Settings) -> Result<Option<String>> {
    let Some(v) = settings.get(&settings::CACHE_NETWORK, flag.then_some("1")) else {
        return Ok(None);
    };
    let on = v.parse(|s| match s.to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("give 1 or 0 (true or false)"),
    })?;
    Ok(on.then(|| v.origin.to_string()))
}

/// Whether a `RUSTC_WRAPPER` names sccache.
fn wrapper_is_sccache(w: &str) -> bool {
    Path::new(w)
        .file_name()
        .is_some_and(|n| n == "sccache" || n == "sccache.exe")
}

/// Who asked for the cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum By {
    /// Nobody (no cache asked).
    Nobody,
    /// The user: the flag, the environment, the user's config, or a `RUSTC_WRAPPER` naming
    /// sccache.
    User(String),
    /// Only the project's own metadata: read-only, from the local disk only.
    Project(String),
}

impl std::fmt::Display for By {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            By::Nobody => Ok(()),
            By::User(o) => write!(f, "{o}"),
            By::Project(o) => write!(
                f,
                "{o} (read-only, from the local disk: a project may only read the shared cache; \
                 --cache sccache, CARGO_FOR_ARM_CACHE=sccache or cache = \"sccache\" in your \
                 config file is your own choice)"
            ),
        }
    }
}

/// The cache asked for, and who asked: the setting (flag, `CARGO_FOR_ARM_CACHE`, project,
/// config), else a `RUSTC_WRAPPER` naming sccache.
pub fn asked(flag: Option<&str>, settings: &Settings) -> Result<(Ask, By)> {
    if let Some(v) = settings.get(&settings::CACHE, flag) {
        let ask = v.parse(Ask::parse)?;
        // A project is code you may not have written: it may ask for the cache, but only to
        // read it. Writing a shared cache plants objects for every other build that uses it
        // (docs/SECURITY.md), so read-write use is the user's own choice.
        if let (settings::Origin::Project(_), Ask::Sccache { .. }) = (&v.origin, ask) {
            return Ok((
                Ask::Sccache { read_only: true },
                By::Project(v.origin.to_string()),
            ));
        }
        return Ok((ask, By::User(v.origin.to_string())));
    }
    if let Ok(w) = std::env::var("RUSTC_WRAPPER") {
        if wrapper_is_sccache(&w) {
            return Ok((
                Ask::Sccache { read_only: false },
                By::User(format!("RUSTC_WRAPPER={w}")),
            ));
        }
    }
    Ok((Ask::None, By::Nobody))
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
    /// `<run dir>/cache`: the cargo wrapper, the clang wrappers, the statistics, and the
    /// forwarded endpoint's socket.
    dir: PathBuf,
}

/// What a cached build holds until [`finish`]: the lock of a local cache directory, the
/// proxy of a forwarded endpoint, and the backend as the summary line names it.
struct Held {
    _lock: Option<std::fs::File>,
    _proxy: Option<Proxy>,
    backend: String,
}

static HELD: Mutex<Option<Held>> = Mutex::new(None);

/// The host side of a forwarded endpoint, in the build's own run directory (never bound
/// into the sandbox as a directory: only the socket is).
fn endpoint_socket(dir: &Path) -> PathBuf {
    dir.join("endpoint/sock")
}

/// The plan of `job` in native mode (`None`: no cache asked).
pub fn plan(job: &Job, tools: &crate::rootfs::Rootfs) -> Result<Option<Plan>> {
    let (ask, by) = asked(job.opts.cache.as_deref(), &job.project.settings)?;
    let Ask::Sccache { read_only } = ask else {
        return Ok(None);
    };
    if matches!(by, By::Project(_)) && !job.quiet {
        ui::note(format_args!("the compile cache asked for by {by}"));
    }
    let sccache = find_sccache(job)?;
    check_glibc(&sccache, tools)?;
    let network = network_opt_in(job.opts.cache_network, &job.project.settings)?;
    let backend = match by {
        By::Project(_) => project_backend(host_var, &job.home),
        _ => backend(host_var, &job.home, network.as_deref()),
    }
    .with_context(|| format!("the compile cache ({by})"))?;
    if read_only {
        read_only_on(&backend, job.quiet).with_context(|| format!("the compile cache ({by})"))?;
    }
    let dir = job.run_dir.0.join("cache");
    std::fs::create_dir_all(dir.join("out"))?;
    std::fs::create_dir_all(dir.join("bin"))?;
    std::fs::create_dir_all(dir.join("toolchain"))?;
    if let (Backend::Store(s), Some(by), false) = (&backend, &network, job.quiet) {
        ui::note(format_args!(
            "the compile cache ({}) shares the host's network with the build ({by}): its \
             credentials are visible to every build script and proc macro",
            s.name
        ));
    }
    let held = hold(&backend, &dir, read_only, job.quiet)
        .with_context(|| format!("the compile cache's {backend} ({by})"))?;
    *HELD.lock().unwrap_or_else(|e| e.into_inner()) = Some(held);
    Ok(Some(Plan {
        sccache,
        backend,
        read_only,
        dir,
    }))
}

/// The backend of a cache only the project asked for: the local disk, bound read-only. A
/// server or an object store is refused: the build would get a connection to it through
/// which any build script can write, whatever sccache's own read-only setting says.
pub fn project_backend(var: impl Fn(&str) -> Option<String>, home: &Path) -> Result<Backend> {
    // Told as if the user had opted in to the network: only to name what is refused.
    match backend(var, home, Some("-"))? {
        Backend::Local(dir) => Ok(Backend::Local(dir)),
        other => bail!(
            "your environment names an sccache backend other than the local disk ({other}), \
             but only the project asks for the cache: a project may only read the shared cache, \
             and only the local disk can be given to its build read-only (through a Redis or memcached connection or an \
             object store's credentials, every build script and proc macro could write to the \
             cache: sccache's read-only setting holds only inside the sandbox, and memcached has \
             no access control). Ask for the cache yourself (--cache sccache or sccache:ro, \
             CARGO_FOR_ARM_CACHE, or cache = \"…\" in your config file), unset the backend's \
             variables to use the local disk (SCCACHE_DIR), or pass --cache none"
        ),
    }
}

/// `sccache:ro` with a server: read-only holds only inside the sandbox (sccache's own
/// setting), so the server must enforce it. Said once for Redis and an object store;
/// memcached, which has no access control, is refused.
fn read_only_on(backend: &Backend, quiet: bool) -> Result<()> {
    let enforce = match backend {
        Backend::Local(_) => return Ok(()),
        Backend::Memcached(at) => bail!(
            "read-only use (sccache:ro) of memcached {at}: memcached has no access control, so every \
             build script and proc macro of the build could write to it through the forwarded \
             connection (sccache's read-only setting holds only inside the sandbox). Read a \
             cache read-only from the local disk (SCCACHE_DIR, bound read-only), or use \
             memcached read-write (--cache sccache) only among builds that trust each other"
        ),
        Backend::RedisUnix { .. } | Backend::RedisTcp { .. } => {
            "give the build a Redis ACL user limited to read commands (SCCACHE_REDIS_USERNAME \
             and SCCACHE_REDIS_PASSWORD; see docs/SECURITY.md)"
        }
        Backend::Store(_) => "give the build credentials that can only read the store",
    };
    if !quiet {
        ui::note(format_args!(
            "read-only use (sccache:ro) of {backend}: read-only is enforced by sccache inside the \
             build sandbox only, and a build script can write through the same connection; the \
             server must enforce it: {enforce}"
        ));
    }
    Ok(())
}

/// What the build holds until [`finish`]: the lock of a local directory, or the proxy of a
/// forwarded endpoint (resolved, and checked to answer, now).
fn hold(backend: &Backend, dir: &Path, read_only: bool, quiet: bool) -> Result<Held> {
    let (mut lock, mut proxy) = (None, None);
    match backend {
        Backend::Local(d) => lock = Some(lock_local(d, read_only, quiet)?),
        Backend::RedisTcp { at, .. } | Backend::Memcached(at) => {
            let addr = forward::resolve(&at.host, at.port)?;
            proxy = Some(Proxy::start(&endpoint_socket(dir), addr)?);
        }
        Backend::RedisUnix { .. } | Backend::Store(_) => {}
    }
    Ok(Held {
        _lock: lock,
        _proxy: proxy,
        backend: backend.to_string(),
    })
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
             \"A shared compile cache\": `cargo install sccache --locked --no-default-features --features redis,memcached`) \
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

/// The host's value of an sccache variable (unset when empty).
fn host_var(k: &str) -> Option<String> {
    std::env::var(k).ok().filter(|v| !v.is_empty())
}

/// Serialise the builds that use one local cache directory (sccache supports one server on
/// it at a time): an exclusive lock of `<dir>.lock`, held until the build ends.
fn lock_local(dir: &Path, read_only: bool, quiet: bool) -> Result<std::fs::File> {
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
    Ok(file)
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
        let memcached = matches!(self.backend, Backend::Memcached(_));
        write_exec(
            &self.dir.join("bin/cargo"),
            &cargo_wrapper(&cargo, memcached),
        )?;
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
        // The backend's own settings the user gave the sccache way (a Redis password is
        // then visible to build scripts too: docs/SECURITY.md).
        for k in PASSED {
            if let Some(v) = host_var(k) {
                b = b.env(k, v);
            }
        }
        self.apply_backend(b)
    }

    fn rw_mode(&self) -> &'static str {
        match self.read_only {
            true => "READ_ONLY",
            false => "READ_WRITE",
        }
    }

    fn apply_backend(&self, b: SpecBuilder) -> Result<SpecBuilder> {
        let rw = self.rw_mode();
        let endpoint = || Bind::new(endpoint_socket(&self.dir), GUEST_ENDPOINT, Access::ReadOnly);
        Ok(match &self.backend {
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
            Backend::RedisUnix { socket, db } => redis_env(
                b.bind(Bind::new(socket, GUEST_REDIS, Access::ReadWrite)),
                GUEST_REDIS,
                rw,
            )
            .env_if("SCCACHE_REDIS_DB", db.map(|n| n.to_string())),
            Backend::RedisTcp {
                db, user, password, ..
            } => redis_env(b.bind(endpoint()), GUEST_ENDPOINT, rw)
                .env_if("SCCACHE_REDIS_DB", db.map(|n| n.to_string()))
                .env_if("SCCACHE_REDIS_USERNAME", user.clone())
                .env_if("SCCACHE_REDIS_PASSWORD", password.clone()),
            // The endpoint (a port of the sandbox's loopback) is set by the cargo wrapper.
            Backend::Memcached(_) => b.bind(endpoint()).env("SCCACHE_MEMCACHED_RW_MODE", rw),
            Backend::Store(s) => store_env(b, s)?.env(s.rw, rw),
        })
    }
}

/// Redis at the unix socket `guest`. sccache parses the endpoint as a URI, which needs a
/// host before the path.
fn redis_env(b: SpecBuilder, guest: &str, rw: &str) -> SpecBuilder {
    b.env("SCCACHE_REDIS_ENDPOINT", format!("unix://localhost{guest}"))
        .env("SCCACHE_REDIS_RW_MODE", rw)
}

/// An object store (the user's opt-in): the host's network, the store's variables, its
/// credential files and the host's CA bundle.
fn store_env(mut b: SpecBuilder, s: &Store) -> Result<SpecBuilder> {
    b = b.network(Network::Host);
    for (k, v) in std::env::vars_os() {
        let (Some(k), Some(v)) = (k.to_str(), v.to_str()) else {
            continue;
        };
        if s.passes(k) && !v.is_empty() {
            b = b.env(k, v);
        }
    }
    for k in KEY_FILES.into_iter().filter(|k| s.passes(k)) {
        let Some(file) = host_var(k) else { continue };
        let file = Path::new(&file)
            .canonicalize()
            .ok()
            .filter(|f| f.is_file())
            .with_context(|| format!("{k}={file}: not a file"))?;
        let guest = format!("{GUEST_KEYS}/{k}");
        b = b
            .bind(Bind::new(file, &guest, Access::ReadOnly))
            .env(k, guest);
    }
    let ca = CA_BUNDLES
        .iter()
        .find_map(|f| Path::new(f).canonicalize().ok().filter(|f| f.is_file()));
    if let Some(ca) = ca {
        b = b
            .bind(Bind::new(ca, GUEST_CA, Access::ReadOnly))
            .env("SSL_CERT_FILE", GUEST_CA);
    }
    Ok(b)
}

/// Setting a variable only when there is a value.
trait EnvIf {
    fn env_if(self, k: &str, v: Option<String>) -> Self;
}

impl EnvIf for SpecBuilder {
    fn env_if(self, k: &str, v: Option<String>) -> Self {
        match v {
            Some(v) => self.env(k, v),
            None => self,
        }
    }
}

/// The `cargo` first on PATH: it starts this build's sccache server, runs cargo, then saves
/// the statistics and stops the server (so its pending writes finish) before the sandbox ends.
fn cargo_wrapper(cargo: &str, memcached: bool) -> String {
    let forward = match memcached {
        true => memcached_forwarder(),
        false => String::new(),
    };
    format!(
        r#"#!/bin/sh
# cargo-for-arm: cargo with this build's sccache server
if [ -n "${UP_ENV}" ]; then exec {cargo} "$@"; fi
export {UP_ENV}=1
# A retried build (after a hang) finds the last attempt's socket and statistics.
rm -f {GUEST_OUT}/server.sock {GUEST_OUT}/stats.json
{forward}if ! {GUEST_SCCACHE} --start-server >{GUEST_OUT}/start.log 2>&1; then
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

/// sccache's memcached client speaks TCP only: a port of the sandbox's own loopback,
/// forwarded to the endpoint's socket by the tool's binary (src/build/forward.rs).
fn memcached_forwarder() -> String {
    let exe = super::runner::GUEST_EXE;
    format!(
        r#"if ! port=$({exe} __cache-forward {GUEST_ENDPOINT} 2>{GUEST_OUT}/forward.log); then
    echo "error: cargo-for-arm: the memcached forwarder did not start in the build sandbox:" >&2
    cat {GUEST_OUT}/forward.log >&2
    exit 101
fi
export SCCACHE_MEMCACHED_ENDPOINT=tcp://127.0.0.1:$port
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
    // No plan (no cache asked, or an emulated build): nothing to say.
    let Some(held) = HELD.lock().unwrap_or_else(|e| e.into_inner()).take() else {
        return;
    };
    // Written in the sandbox: read beneath the run dir without following symlinks, a
    // regular file of at most 1 MiB.
    let data = crate::hostfs::open_dir(&job.run_dir.0, Path::new("cache/out"))
        .and_then(|d| crate::hostfs::read_regular(&d, Path::new("stats.json"), 1 << 20));
    let backend = held.backend.clone();
    // The lock released, the proxy stopped (its socket removed).
    drop(held);
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
        assert!(matches!(by, By::Project(_)), "{by:?}");
        assert!(by.to_string().contains("a project may only read"), "{by}");
        let (ask, by) = asked(None, &with("sccache:ro")).unwrap();
        assert_eq!(ask, Ask::Sccache { read_only: true });
        assert!(matches!(by, By::Project(_)), "{by:?}");
        // The user's own flag writes it.
        let (ask, by) = asked(Some("sccache"), &with("sccache:ro")).unwrap();
        assert_eq!(ask, Ask::Sccache { read_only: false });
        assert_eq!(by, By::User("--cache".into()));
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
            backend(none, home, None).unwrap(),
            Backend::Local("/h/sccache".into())
        );
        let dir = |k: &str| (k == "SCCACHE_DIR").then(|| "/c".to_string());
        assert_eq!(
            backend(dir, home, None).unwrap(),
            Backend::Local("/c".into())
        );
        let missing = |k: &str| {
            (k == "SCCACHE_REDIS_ENDPOINT").then(|| "unix:///nonexistent/r.sock".to_string())
        };
        let e = backend(missing, home, None).unwrap_err().to_string();
        assert!(e.contains("not a unix socket"), "{e}");
        let dir = std::env::temp_dir().join(format!("cfa-cache-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let sock = dir.join("r.sock");
        let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let url = format!("redis+unix://{}?db=2", sock.display());
        let ok = |k: &str| (k == "SCCACHE_REDIS").then(|| url.clone());
        assert_eq!(
            backend(ok, home, None).unwrap(),
            Backend::RedisUnix {
                socket: sock.clone(),
                db: Some(2)
            }
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    fn one(name: &'static str, value: &'static str) -> impl Fn(&str) -> Option<String> {
        move |k: &str| (k == name).then(|| value.to_string())
    }

    #[test]
    fn tcp_endpoints_are_forwarded() {
        let home = Path::new("/h");
        let at = |host: &str, port| Tcp {
            host: host.into(),
            port,
        };
        let url = "redis://us%40er:p%3Ass@cache.example:6380/3";
        assert_eq!(
            backend(one("SCCACHE_REDIS_ENDPOINT", url), home, None).unwrap(),
            Backend::RedisTcp {
                at: at("cache.example", 6380),
                db: Some(3),
                user: Some("us@er".into()),
                password: Some("p:ss".into())
            }
        );
        let b = backend(one("SCCACHE_REDIS", "redis://[::1]?db=2"), home, None).unwrap();
        assert_eq!(
            b,
            Backend::RedisTcp {
                at: at("::1", 6379),
                db: Some(2),
                user: None,
                password: None
            }
        );
        assert_eq!(b.to_string(), "redis [::1]:6379 (forwarded)");
        for (k, v) in [
            ("SCCACHE_MEMCACHED", "tcp://10.0.0.1:11311"),
            ("SCCACHE_MEMCACHED_ENDPOINT", "10.0.0.1:11311"),
        ] {
            assert_eq!(
                backend(one(k, v), home, None).unwrap(),
                Backend::Memcached(at("10.0.0.1", 11311))
            );
        }
        let e = |k, v| {
            backend(one(k, v), home, None)
                .map(|b| panic!("{k}={v} gave {b}"))
                .map_err(|e| format!("{e:#}"))
                .unwrap_err()
        };
        let tls = e("SCCACHE_REDIS", "rediss://h:6379");
        assert!(
            tls.contains("TLS") && tls.contains("not supported"),
            "{tls}"
        );
        assert!(e("SCCACHE_REDIS", "redis://h:port").contains("the port"));
        assert!(e("SCCACHE_REDIS", "http://h").contains("redis://"));
        assert!(e("SCCACHE_MEMCACHED", "tcp://u@h:1").contains("USERNAME"));
        assert!(e("SCCACHE_MEMCACHED", "udp://h:1").contains("TCP only"));
        assert!(e("SCCACHE_REDIS_CLUSTER_ENDPOINTS", "redis://a,redis://b").contains("cluster"));
        assert_eq!(forward::percent_decoded("a%2Fb%zz").ok(), None);
    }

    #[test]
    fn object_stores_need_the_network_opt_in() {
        let home = Path::new("/h");
        for (k, name) in [
            ("SCCACHE_BUCKET", "S3"),
            ("SCCACHE_WEBDAV_ENDPOINT", "WebDAV"),
            ("SCCACHE_GHA_ENABLED", "the GitHub Actions cache"),
        ] {
            let e = backend(one(k, "on"), home, None).unwrap_err().to_string();
            assert!(
                e.contains(k) && e.contains(name) && e.contains("--cache-network"),
                "{e}"
            );
            assert!(e.contains("every build script"), "{e}");
            let b = backend(one(k, "on"), home, Some("--cache-network")).unwrap();
            assert!(matches!(b, Backend::Store(s) if s.name == name), "{b}");
        }
        // Switched off is not selected; S3 comes before Redis, as sccache picks.
        assert_eq!(
            backend(one("SCCACHE_GHA_ENABLED", "false"), home, None).unwrap(),
            Backend::Local("/h/sccache".into())
        );
        let both = |k: &str| match k {
            "SCCACHE_BUCKET" => Some("b".to_string()),
            "SCCACHE_REDIS" => Some("redis://h".to_string()),
            _ => None,
        };
        assert!(backend(both, home, None).is_err());
        let s3 = &STORES[0];
        assert!(s3.passes("AWS_SECRET_ACCESS_KEY") && s3.passes("SCCACHE_S3_USE_SSL"));
        assert!(!s3.passes("SCCACHE_DIR") && !s3.passes("HOME"));
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
        let w = cargo_wrapper("/usr/bin/cargo", false);
        assert!(
            w.contains("--stop-server") && w.contains("exec /usr/bin/cargo \"$@\""),
            "{w}"
        );
        assert!(!w.contains("__cache-forward"), "{w}");
        let w = cargo_wrapper("/usr/bin/cargo", true);
        let forward = w.find("__cache-forward").expect("no forwarder");
        assert!(forward < w.find("--start-server").unwrap(), "{w}");
        assert!(
            w.contains("SCCACHE_MEMCACHED_ENDPOINT=tcp://127.0.0.1:$port"),
            "{w}"
        );
    }

    #[test]
    fn a_project_gets_the_local_disk_only() {
        let home = Path::new("/h");
        assert_eq!(
            project_backend(one("SCCACHE_DIR", "/c"), home).unwrap(),
            Backend::Local("/c".into())
        );
        for (k, v) in [
            ("SCCACHE_REDIS", "redis://:pw@127.0.0.1:6379"),
            ("SCCACHE_MEMCACHED", "tcp://127.0.0.1:11211"),
            ("SCCACHE_BUCKET", "b"),
        ] {
            let e = format!("{:#}", project_backend(one(k, v), home).unwrap_err());
            assert!(
                e.contains("only the project asks")
                    && e.contains("--cache sccache")
                    && e.contains("local disk"),
                "{k}: {e}"
            );
            assert!(!e.contains("pw"), "{e}");
        }
    }

    #[test]
    fn read_only_is_refused_for_memcached_and_told_for_redis() {
        let at = Tcp {
            host: "127.0.0.1".into(),
            port: 11211,
        };
        let e = read_only_on(&Backend::Memcached(at.clone()), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no access control") && e.contains("SCCACHE_DIR"),
            "{e}"
        );
        read_only_on(&Backend::Local("/c".into()), true).unwrap();
        let redis = Backend::RedisTcp {
            at,
            db: None,
            user: None,
            password: None,
        };
        read_only_on(&redis, true).unwrap();
    }

    #[test]
    fn error_messages_never_show_the_password() {
        let home = Path::new("/h");
        for (k, v) in [
            ("SCCACHE_REDIS", "redis://u:s3cret@h:port"),
            ("SCCACHE_REDIS", "redis://u:s3cret@h/x"),
            ("SCCACHE_REDIS", "redis://u:s3cret@h?q=1"),
            ("SCCACHE_REDIS", "rediss://u:s3cret@h"),
            ("SCCACHE_REDIS", "http://u:s3cret@h"),
            ("SCCACHE_REDIS", "unix://u:s3cret@/nonexistent?db=x"),
            ("SCCACHE_MEMCACHED", "udp://u:s3cret@h:1"),
            ("SCCACHE_MEMCACHED", "u:s3cret@h:1"),
        ] {
            let e = format!("{:#}", backend(one(k, v), home, None).unwrap_err());
            assert!(!e.contains("s3cret") && e.contains("u:***@"), "{v}: {e}");
        }
    }
}
