//! The shared compile cache (`--cache sccache`, issue 16), end to end as an unprivileged
//! user: two "runners" (two cargo-for-arm homes, the same project path, the project removed
//! and re-created between them, as CI runners have) build examples/native-sample (a registry
//! dependency, build dependencies, C through the `cc` crate) natively for armhf; the second
//! takes the crates and the C object from the cache. Once with the local disk backend (a
//! cache directory both runners get, as a CI cache restores it), and with real servers
//! started and stopped by the tests: Redis on a unix socket, Redis over TCP and memcached
//! (both forwarded into the sandbox, which keeps no network), and a WebDAV stand-in for the
//! object stores that need the network (`--cache-network`).
//!
//! sccache comes from scripts/as-user.sh (`/opt/cargo-for-arm-ci/sccache/bin/sccache`, built
//! with its Redis, memcached and WebDAV backends) or `CARGO_FOR_ARM_TEST_SCCACHE`;
//! redis-server and memcached from Debian.

mod common;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use common::*;

fn sccache() -> Option<PathBuf> {
    let p = std::env::var_os("CARGO_FOR_ARM_TEST_SCCACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/cargo-for-arm-ci/sccache/bin/sccache"));
    p.is_file().then_some(p)
}

/// `None` (and a printed reason) when the test cannot run here; never in CI.
fn need(what: &str, found: Option<PathBuf>) -> Option<PathBuf> {
    if found.is_none() {
        assert!(
            !in_ci(),
            "{what} is missing in CI: scripts/as-user.sh installs it"
        );
        eprintln!("skipped: {what} is not installed (scripts/as-user.sh installs it)");
    }
    found
}

/// The ARM and tools rootfs of the kept native store, by directory: each runner has a home
/// of its own.
fn rootfs_dirs(suite: &str, arch: &str) -> (PathBuf, PathBuf) {
    let (store, tools, arm) = native_fixtures(suite, arch);
    (
        store.join("rootfs").join(arm).join("root"),
        store.join("rootfs").join(tools).join("root"),
    )
}

/// Hits and misses by language, from the tool's summary line.
#[derive(Debug, Default)]
struct Line {
    rust: (u64, u64),
    c: (u64, u64),
    misses: u64,
    text: String,
}

fn summary(err: &str) -> Line {
    let text = err
        .lines()
        .find(|l| l.contains("sccache: ") && l.contains(" hits, "))
        .unwrap_or_else(|| panic!("no sccache summary line in:\n{err}"))
        .to_string();
    let num = |s: &str| s.trim().parse::<u64>().unwrap();
    let after = text.split("sccache: ").nth(1).unwrap();
    let misses = num(after
        .split(" hits, ")
        .nth(1)
        .unwrap()
        .split(" misses")
        .next()
        .unwrap());
    let lang = |name: &str| -> (u64, u64) {
        let Some(rest) = text.split(&format!("{name} ")).nth(1) else {
            return (0, 0);
        };
        let pair = rest.split([',', ';']).next().unwrap();
        let (h, m) = pair.split_once('/').unwrap();
        (num(h), num(m))
    };
    Line {
        rust: lang("Rust"),
        c: lang("C/C++"),
        misses,
        text,
    }
}

/// What a runner builds for, and with which rustc.
struct For {
    arm: (&'static str, &'static str),
    triple: &'static str,
    machine: u16,
    answer: &'static str,
    rustc: &'static str,
}

const ARMHF: For = For {
    arm: ("bookworm", "armhf"),
    triple: "armv7-unknown-linux-gnueabihf",
    machine: 40,
    answer: "answer 46",
    rustc: "rootfs",
};

/// One runner: a fresh home, the project re-created at `project`, a cached release build,
/// then the binary run under emulation.
fn runner(project: &Path, env: &[(&str, &str)], cache: &str, sccache: &Path) -> Line {
    runner_for(&ARMHF, project, env, cache, sccache)
}

fn runner_for(f: &For, project: &Path, env: &[(&str, &str)], cache: &str, sccache: &Path) -> Line {
    let arm = rootfs_dirs(f.arm.0, f.arm.1).0;
    // The bookworm tools rootfs serves both (its clang has every target; rustc may be rustup's).
    let tools = rootfs_dirs("bookworm", "armhf").1;
    let _ = std::fs::remove_dir_all(project);
    std::fs::create_dir(project).unwrap();
    copy_example("native-sample", project);
    let home = TempDir::new("cache-home");
    let cfa = |args: &[&str]| -> Output {
        let mut t = Tool::new(project)
            .home(home.path())
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", f.rustc)
            .args(args);
        for (k, v) in env {
            t = t.env(k, v);
        }
        t.output()
    };
    let (arm_s, tools_s) = (arm.to_string_lossy(), tools.to_string_lossy());
    let sccache_s = sccache.to_string_lossy();
    let o = cfa(&[
        "build",
        "--release",
        "--mode",
        "native",
        "--rootfs",
        &arm_s,
        "--tools-rootfs",
        &tools_s,
        "--cache",
        cache,
        "--sccache",
        &sccache_s,
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "cached native build failed:\n{err}");
    let bin = project.join(format!("target/{}/release/native-sample", f.triple));
    assert_eq!(elf_machine(&bin), f.machine, "{}", bin.display());
    let bin_s = bin.to_string_lossy().into_owned();
    let o = cfa(&["-q", "run", "--rootfs", &arm_s, "--", &bin_s]);
    let out = stdout(&o);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        out.contains(f.answer) && out.contains("crc32(hello) 3610a686"),
        "{out}"
    );
    summary(&err)
}

/// The first runner fills the cache (Rust and C misses), the second takes everything the
/// first compiled from it.
fn two_runners(env: &[(&str, &str)], backend: &str, sccache: &Path, base: &Path) {
    let project = base.join("project");
    let first = runner(&project, env, "sccache", sccache);
    assert!(
        first.rust.1 > 0 && first.c.1 > 0,
        "the first runner compiled nothing through sccache: {}",
        first.text
    );
    assert!(first.text.contains(backend), "{}", first.text);
    let second = runner(&project, env, "sccache", sccache);
    eprintln!("first:  {}\nsecond: {}", first.text, second.text);
    assert!(
        second.rust.0 >= first.rust.1 && second.c.0 >= first.c.1 && second.misses == 0,
        "the second runner did not take the first one's objects:\nfirst:  {}\nsecond: {}",
        first.text,
        second.text
    );
}

#[test]
fn two_runners_share_the_local_disk_cache() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-local");
    let dir = base.path().join("sccache");
    let dir_s = dir.to_string_lossy().into_owned();
    two_runners(
        &[("SCCACHE_DIR", &dir_s)],
        "local disk",
        &sccache,
        base.path(),
    );

    // Read-only use: a fresh cache directory stays empty, the build still succeeds.
    let empty = base.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let empty_s = empty.to_string_lossy().into_owned();
    let line = runner(
        &base.path().join("project"),
        &[("SCCACHE_DIR", &empty_s)],
        "sccache:ro",
        &sccache,
    );
    assert!(line.rust.0 == 0 && line.rust.1 > 0, "{}", line.text);
    let left: Vec<_> = std::fs::read_dir(&empty)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(
        left.is_empty(),
        "a read-only build wrote the cache: {left:?}"
    );
}

/// A server the test started, stopped on drop.
struct Server(Child);

impl Server {
    /// Start `cmd` and wait until `ready` (or fail if the server exits first).
    fn start(cmd: &mut Command, ready: impl Fn() -> bool) -> Server {
        let what = format!("{:?}", cmd.get_program());
        let child = cmd
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {what}: {e}"));
        let mut s = Server(child);
        while !ready() {
            if let Some(st) = s.0.try_wait().unwrap() {
                panic!("{what} exited: {st}");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        s
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// redis-server on a unix socket of its own directory.
struct Redis {
    _server: Server,
    socket: PathBuf,
}

impl Redis {
    fn start(dir: &Path) -> Redis {
        let socket = dir.join("redis.sock");
        let mut cmd = redis_server(dir);
        cmd.args(["--port", "0", "--unixsocket"])
            .arg(&socket)
            .args(["--unixsocketperm", "700"]);
        let server = Server::start(&mut cmd, || socket.exists());
        Redis {
            _server: server,
            socket,
        }
    }
}

/// redis-server keeping nothing on disk, in `dir`.
fn redis_server(dir: &Path) -> Command {
    let mut cmd = Command::new("redis-server");
    cmd.args(["--save", "", "--appendonly", "no", "--dir"])
        .arg(dir);
    cmd
}

/// A port of 127.0.0.1 nobody listens on now.
fn free_port() -> u16 {
    let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    l.local_addr().unwrap().port()
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

/// A program of Debian's (`/usr/bin/NAME`), required in CI.
fn debian_program(name: &str) -> Option<PathBuf> {
    need(
        name,
        Some(Path::new("/usr/bin").join(name)).filter(|p| p.is_file()),
    )
}

#[test]
fn two_runners_share_a_redis_cache_on_a_unix_socket() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let Some(_) = debian_program("redis-server") else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-redis");
    let rdir = base.path().join("redis");
    std::fs::create_dir(&rdir).unwrap();
    let redis = Redis::start(&rdir);
    let url = format!("unix://{}", redis.socket.display());
    two_runners(
        &[("SCCACHE_REDIS", &url)],
        "redis unix:",
        &sccache,
        base.path(),
    );
    // Read-only use of an empty database (db 1): misses, and nothing written to it.
    let db1 = format!("{url}?db=1");
    let line = runner(
        &base.path().join("project"),
        &[("SCCACHE_REDIS", &db1)],
        "sccache:ro",
        &sccache,
    );
    assert!(line.rust.0 == 0 && line.rust.1 > 0, "{}", line.text);
    let size = |db: &str| {
        let o = Command::new("redis-cli")
            .arg("-s")
            .arg(&redis.socket)
            .args(["-n", db, "dbsize"])
            .output()
            .expect("running redis-cli");
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().parse::<u64>().unwrap()
    };
    assert!(
        size("0") > 0,
        "the read-write runners stored nothing in db 0"
    );
    assert_eq!(size("1"), 0, "a read-only build wrote to Redis");
    drop(redis);
}

/// Redis over TCP (a password, database 2): forwarded by the tool into the sandbox, which
/// keeps no network.
#[test]
fn two_runners_share_a_redis_cache_over_tcp() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let Some(_) = debian_program("redis-server") else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-redis-tcp");
    let port = free_port();
    let port_s = port.to_string();
    let mut cmd = redis_server(base.path());
    cmd.args([
        "--bind",
        "127.0.0.1",
        "--port",
        &port_s,
        "--requirepass",
        "s3cret",
    ]);
    let server = Server::start(&mut cmd, || listening(port));
    let url = format!("redis://:s3cret@127.0.0.1:{port}/2");
    two_runners(
        &[("SCCACHE_REDIS_ENDPOINT", &url)],
        &format!("redis 127.0.0.1:{port} (forwarded)"),
        &sccache,
        base.path(),
    );
    let o = Command::new("redis-cli")
        .args([
            "-p",
            &port_s,
            "-a",
            "s3cret",
            "--no-auth-warning",
            "-n",
            "2",
            "dbsize",
        ])
        .output()
        .expect("running redis-cli");
    assert!(o.status.success(), "{}", stderr(&o));
    let keys: u64 = stdout(&o).trim().parse().unwrap();
    assert!(keys > 0, "the runners stored nothing in database 2");
    drop(server);
}

/// memcached over TCP: forwarded by the tool, and inside the sandbox by its own binary on
/// the sandbox's loopback (sccache's memcached client speaks TCP only).
#[test]
fn two_runners_share_a_memcached_cache() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let Some(memcached) = debian_program("memcached") else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-memcached");
    let port = free_port();
    let port_s = port.to_string();
    // Objects (rlibs) larger than memcached's default 1 MiB item limit are kept too.
    let mut cmd = Command::new(memcached);
    cmd.args([
        "-l",
        "127.0.0.1",
        "-p",
        &port_s,
        "-U",
        "0",
        "-m",
        "256",
        "-I",
        "32m",
    ]);
    let server = Server::start(&mut cmd, || listening(port));
    let url = format!("tcp://127.0.0.1:{port}");
    two_runners(
        &[("SCCACHE_MEMCACHED_ENDPOINT", &url)],
        &format!("memcached 127.0.0.1:{port} (forwarded)"),
        &sccache,
        base.path(),
    );
    drop(server);
}

/// A stand-in for an object store on 127.0.0.1: every request is answered 404 (sccache
/// then runs read-only and misses), and each request line is recorded.
struct Store {
    port: u16,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Store {
    fn start() -> Store {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = l.local_addr().unwrap().port();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                let log = log.clone();
                std::thread::spawn(move || answer_404(c, &log));
            }
        });
        Store { port, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

/// Read one HTTP request (head and body), record its first line, answer 404.
fn answer_404(c: TcpStream, log: &std::sync::Mutex<Vec<String>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let mut r = BufReader::new(c.try_clone().unwrap());
    let mut first = String::new();
    if r.read_line(&mut first).unwrap_or(0) == 0 {
        return;
    }
    log.lock().unwrap().push(first.trim().to_string());
    let mut length = 0u64;
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let _ = std::io::copy(&mut r.by_ref().take(length), &mut std::io::sink());
    let mut w = c;
    let _ =
        w.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
}

/// A crate whose build script connects to 127.0.0.1:`port` of whatever network it has.
fn network_probe(dir: &Path, port: u16) {
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::write(
        dir.join("Cargo.toml"),
        "[package]\nname = \"probe\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    std::fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    std::fs::write(
        dir.join("build.rs"),
        format!(
            r#"use std::io::Write;
fn main() {{
    match std::net::TcpStream::connect("127.0.0.1:{port}") {{
        Ok(mut s) => {{
            let _ = s.write_all(b"GET /from-build-script HTTP/1.0\r\n\r\n");
            println!("cargo:warning=probe: reached the host");
        }}
        Err(e) => println!("cargo:warning=probe: no network: {{e}}"),
    }}
}}
"#
        ),
    )
    .unwrap();
}

/// HTTPS object stores only on the user's opt-in (`--cache-network`): refused without it,
/// naming it; with it, the build shares the host's network (sccache reaches the store, and
/// so does a build script); without it, the build has no network.
#[test]
fn object_stores_share_the_network_only_on_the_opt_in() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-store");
    let store = Store::start();
    let endpoint = format!("http://127.0.0.1:{}/", store.port);
    let (arm, tools) = rootfs_dirs("bookworm", "armhf");
    let build = |name: &str, env: &[(&str, &str)], extra: &[&str]| -> Output {
        let project = base.path().join(name);
        network_probe(&project, store.port);
        let mut t = Tool::new(&project)
            .home(&base.path().join("home"))
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
            .args([
                "build",
                "--mode",
                "native",
                "--cache",
                "sccache",
                "--sccache",
            ])
            .arg(&sccache)
            .arg("--rootfs")
            .arg(&arm)
            .arg("--tools-rootfs")
            .arg(&tools)
            .args(extra);
        for (k, v) in env {
            t = t.env(k, v);
        }
        t.output()
    };
    let webdav = [("SCCACHE_WEBDAV_ENDPOINT", endpoint.as_str())];

    let o = build("refused", &webdav, &[]);
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("--cache-network") && err.contains("WebDAV"),
        "{err}"
    );
    assert!(store.seen().is_empty(), "{:?}", store.seen());

    let o = build("opted-in", &webdav, &["--cache-network"]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("probe: reached the host"), "{err}");
    assert!(err.contains("WebDAV over the host's network"), "{err}");
    let seen = store.seen();
    assert!(
        seen.iter().any(|l| l.contains("/from-build-script"))
            && seen.iter().any(|l| l.contains(".sccache_check")),
        "the store saw {seen:?}"
    );

    // Without the opt-in (the local disk cache): no network, the build script reaches nothing.
    let before = store.seen().len();
    let dir = base.path().join("sccache");
    let dir_s = dir.to_string_lossy().into_owned();
    let o = build("local", &[("SCCACHE_DIR", &dir_s)], &[]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("probe: no network"), "{err}");
    assert_eq!(store.seen().len(), before, "{:?}", store.seen());
}

#[test]
fn tls_redis_and_object_stores_without_the_opt_in_are_refused_with_the_fix() {
    let dir = TempDir::new("cache-refuse");
    copy_example("native-sample", dir.path());
    let (arm, tools) = rootfs_dirs("bookworm", "armhf");
    let fake = dir.path().join("sccache");
    std::fs::copy("/bin/true", &fake).unwrap();
    for (k, v, want) in [
        ("SCCACHE_REDIS", "rediss://127.0.0.1:6379", "TLS"),
        ("SCCACHE_BUCKET", "b", "--cache-network"),
        ("SCCACHE_GCS_BUCKET", "b", "--cache-network"),
    ] {
        let o = Tool::new(dir.path())
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
            .env(k, v)
            .args([
                "build",
                "--mode",
                "native",
                "--cache",
                "sccache",
                "--sccache",
            ])
            .arg(&fake)
            .arg("--rootfs")
            .arg(&arm)
            .arg("--tools-rootfs")
            .arg(&tools)
            .output();
        let err = stderr(&o);
        assert!(!o.status.success() && err.contains(want), "{k}={v}:\n{err}");
    }
    // Emulated builds: the cache is native mode's, said plainly.
    let o = Tool::new(dir.path())
        .args([
            "build", "--mode", "emulate", "--cache", "sccache", "--rootfs",
        ])
        .arg(&arm)
        .output();
    let err = stderr(&o);
    assert!(
        !o.status.success() && err.contains("native mode only"),
        "{err}"
    );
}

/// Correct keys: one cache, the same crate, two sysroots (Debian 12 armhf, Debian 13 arm64) and
/// one compiler (the machine's rustup toolchain, so the compiler is not what separates them).
/// Host crates (build dependencies) may be shared, as they are the same; the target's crates
/// and the C object must not be: the second build compiles them again, and its binary is an
/// arm64 one that runs (an armhf rlib would not even link).
#[test]
fn two_sysroots_never_share_target_objects() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let out = Command::new("rustc")
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
    for t in ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"] {
        if !sysroot.join("lib/rustlib").join(t).join("lib").is_dir() {
            // Not a core test: the targets come from static.rust-lang.org (as in tests/native.rs).
            eprintln!(
                "SKIP: the toolchain {} has no {t} standard library (rustup target add {t})",
                sysroot.display()
            );
            return;
        }
    }
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-keys");
    let dir = base.path().join("sccache");
    let dir_s = dir.to_string_lossy().into_owned();
    let env = [("SCCACHE_DIR", dir_s.as_str())];
    let project = base.path().join("project");
    let armhf = For {
        rustc: "rustup",
        ..ARMHF
    };
    let arm64 = For {
        arm: ("trixie", "arm64"),
        triple: "aarch64-unknown-linux-gnu",
        machine: 183,
        answer: "answer 50",
        rustc: "rustup",
    };
    let first = runner_for(&armhf, &project, &env, "sccache", &sccache);
    let second = runner_for(&arm64, &project, &env, "sccache", &sccache);
    eprintln!("armhf: {}\narm64: {}", first.text, second.text);
    assert!(first.c.1 == 1 && first.rust.1 > 0, "{}", first.text);
    assert!(
        second.c == (0, 1) && second.rust.1 >= 1 && second.rust.0 < first.rust.1,
        "the arm64 build took objects of the armhf one:\narmhf: {}\narm64: {}",
        first.text,
        second.text
    );
    // The same again for armhf: everything from the cache (the arm64 build overwrote nothing).
    let third = runner_for(&armhf, &project, &env, "sccache", &sccache);
    assert!(third.misses == 0 && third.c.0 == 1, "{}", third.text);
}

/// A user's `RUSTC_WRAPPER=sccache` asks for the cache (that sccache, in the sandbox), and
/// `--cache none` overrules it.
#[test]
fn a_users_rustc_wrapper_sccache_is_honoured() {
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-wrapper");
    let dir = base.path().join("sccache");
    let dir_s = dir.to_string_lossy().into_owned();
    let wrapper = sccache.to_string_lossy().into_owned();
    let env = [
        ("SCCACHE_DIR", dir_s.as_str()),
        ("RUSTC_WRAPPER", wrapper.as_str()),
    ];
    let project = base.path().join("project");
    let (arm, tools) = rootfs_dirs("bookworm", "armhf");
    for (cache, cached) in [(None, true), (Some("none"), false)] {
        let _ = std::fs::remove_dir_all(&project);
        std::fs::create_dir(&project).unwrap();
        copy_example("native-sample", &project);
        let mut t = Tool::new(&project)
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
            .args(["build", "--release", "--mode", "native", "--rootfs"])
            .arg(&arm)
            .arg("--tools-rootfs")
            .arg(&tools);
        if let Some(c) = cache {
            t = t.args(["--cache", c]);
        }
        for (k, v) in env {
            t = t.env(k, v);
        }
        let o = t.output();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        assert_eq!(
            err.contains("sccache: "),
            cached,
            "--cache {cache:?}:\n{err}"
        );
    }
    assert!(
        dir.is_dir(),
        "RUSTC_WRAPPER's sccache did not use SCCACHE_DIR"
    );
}

/// One build at a time on a local cache directory: a build finding `<dir>.lock` held says it
/// waits, and goes on once the lock is released.
#[test]
fn a_local_cache_in_use_makes_the_next_build_wait() {
    use std::io::{BufRead, BufReader};
    use std::os::fd::AsRawFd;
    let Some(sccache) = need("sccache", sccache()) else {
        return;
    };
    let _turn = take_turn("native-cache");
    let base = TempDir::new("cache-lock");
    let dir = base.path().join("sccache");
    std::fs::create_dir(&dir).unwrap();
    let lock = std::fs::File::create(base.path().join("sccache.lock")).unwrap();
    assert_eq!(unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) }, 0);
    let project = base.path().join("project");
    std::fs::create_dir(&project).unwrap();
    copy_example("native-sample", &project);
    let (arm, tools) = rootfs_dirs("bookworm", "armhf");
    let mut run = Tool::new(&project)
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("SCCACHE_DIR", &dir)
        .args([
            "build",
            "--release",
            "--mode",
            "native",
            "--cache",
            "sccache",
            "--sccache",
        ])
        .arg(&sccache)
        .arg("--rootfs")
        .arg(&arm)
        .arg("--tools-rootfs")
        .arg(&tools)
        .stderr(Stdio::piped())
        .spawn();
    let mut err = BufReader::new(run.child.stderr.take().unwrap());
    let mut seen = String::new();
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "the build ended without waiting for the lock:\n{seen}"
        );
        seen.push_str(&line);
        if line.contains("waiting for another build") {
            break;
        }
    }
    drop(lock);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let st = run.child.wait().unwrap();
    assert!(st.success() && rest.contains("sccache: "), "{seen}{rest}");
}

/// Read-only where it cannot be enforced: a cache only the project asks for gets the local
/// disk only (a forwarded server would let build scripts write), `sccache:ro` on memcached
/// (no access control) is refused, and on Redis the server's part is said. Refused before
/// sccache runs (a stand-in is enough); nothing prints the password.
#[test]
fn read_only_is_refused_where_only_the_server_could_enforce_it() {
    let dir = TempDir::new("cache-ro");
    copy_example("native-sample", dir.path());
    let (arm, tools) = rootfs_dirs("bookworm", "armhf");
    let fake = dir.path().join("sccache");
    std::fs::copy("/bin/true", &fake).unwrap();
    // Anything that answers: the tool checks that the endpoint is reachable.
    let server = TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = server.local_addr().unwrap().port();
    let redis = format!("redis://:s3cret@127.0.0.1:{port}");
    let memcached = format!("tcp://127.0.0.1:{port}");
    let build = |env: (&str, &str), cache: &[&str]| -> (bool, String) {
        let o = Tool::new(dir.path())
            .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
            .env(env.0, env.1)
            .args(["build", "--mode", "native", "--sccache"])
            .arg(&fake)
            .arg("--rootfs")
            .arg(&arm)
            .arg("--tools-rootfs")
            .arg(&tools)
            .args(cache)
            .output();
        let err = stderr(&o);
        assert!(!err.contains("s3cret"), "the password was shown:\n{err}");
        (o.status.success(), err)
    };

    // The user asks: memcached read-only is refused with the fix; Redis read-only is told.
    let (ok, err) = build(
        ("SCCACHE_MEMCACHED", &memcached),
        &["--cache", "sccache:ro"],
    );
    assert!(
        !ok && err.contains("no access control") && err.contains("SCCACHE_DIR"),
        "{err}"
    );
    let (_, err) = build(("SCCACHE_REDIS", &redis), &["--cache", "sccache:ro"]);
    assert!(
        err.contains("read-only is enforced by sccache inside the build sandbox only")
            && err.contains("Redis ACL user"),
        "{err}"
    );

    // Only the project asks: a server is refused, whatever the mode it asks.
    let manifest = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    for ask in ["sccache", "sccache:ro"] {
        std::fs::write(
            &manifest,
            format!("{text}\n[package.metadata.for-arm]\ncache = \"{ask}\"\n"),
        )
        .unwrap();
        for env in [
            ("SCCACHE_REDIS", redis.as_str()),
            ("SCCACHE_MEMCACHED", memcached.as_str()),
        ] {
            let (ok, err) = build(env, &[]);
            assert!(
                !ok && err.contains("only the project asks for the cache")
                    && err.contains("--cache sccache"),
                "{ask} with {env:?}:\n{err}"
            );
        }
    }
    drop(server);
}
