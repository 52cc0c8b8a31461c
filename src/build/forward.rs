//! One TCP endpoint of the host, reachable from the build sandbox without the network
//! (issue 16: a shared compile cache on Redis or memcached over TCP).
//!
//! The host side, [`Proxy`]: the tool resolves the endpoint's `host:port` once, listens on a
//! unix socket of the build's own run directory (bound into the sandbox) and, in a process of
//! its own, copies each connection's bytes to a new TCP connection to that one address. The
//! sandbox keeps its empty network namespace; the proxy is killed when the build ends.
//!
//! The sandbox's side, [`in_sandbox`] (`cargo-for-arm __cache-forward SOCKET`): for clients
//! that speak TCP only (sccache's memcached backend), a listener on the sandbox's own
//! loopback whose connections go to the bound socket.
//!
//! [`Parts`] reads the endpoint's URL (`redis://user:password@host:port/db`, `tcp://host:port`).
//!
//! Whatever the build sends reaches that one server: the trust boundary of the shared cache
//! (docs/SECURITY.md, "The shared compile cache").

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long the tool tries to reach the endpoint before the build starts.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);

/// The first address of `host:port` that accepts a connection now: the only one the proxy
/// will ever connect to.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .with_context(|| format!("resolving {host}:{port}"))?
        .collect();
    let mut last = None;
    for a in &addrs {
        match TcpStream::connect_timeout(a, REACH_TIMEOUT) {
            Ok(_) => return Ok(*a),
            Err(e) => last = Some(format!("{a}: {e}")),
        }
    }
    bail!(
        "cannot reach {host}:{port} ({}): is the server running and reachable from this machine?",
        last.unwrap_or_else(|| "no address".into())
    )
}

/// A TCP endpoint as the user named it (resolved on the host when the build starts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tcp {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for Tcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.host.contains(':') {
            true => write!(f, "[{}]:{}", self.host, self.port),
            false => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// A URL after its scheme: `[user[:password]@]host[:port][/path][?query]`.
pub struct Parts<'a> {
    pub user: Option<String>,
    pub password: Option<String>,
    pub at: Tcp,
    pub path: &'a str,
    pub query: &'a str,
}

impl<'a> Parts<'a> {
    pub fn of(rest: &'a str, default_port: u16) -> Result<Parts<'a>> {
        let (rest, query) = rest.split_once('?').unwrap_or((rest, ""));
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (user, password) = match userinfo.map(|u| u.split_once(':').unwrap_or((u, ""))) {
            Some((u, p)) => (
                Some(percent_decoded(u)?).filter(|u| !u.is_empty()),
                Some(percent_decoded(p)?).filter(|p| !p.is_empty()),
            ),
            None => (None, None),
        };
        Ok(Parts {
            user,
            password,
            at: host_port(hostport, default_port)?,
            path,
            query,
        })
    }
}

/// `host[:port]` or `[v6][:port]`.
fn host_port(s: &str, default_port: u16) -> Result<Tcp> {
    let (host, port) = match s.strip_prefix('[') {
        Some(r) => {
            let (h, after) = r
                .split_once(']')
                .context("an IPv6 address without its `]`")?;
            (h, after.strip_prefix(':'))
        }
        None => match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        },
    };
    if host.is_empty() {
        bail!("no host");
    }
    let port = match port {
        Some(p) => p.parse().with_context(|| format!("the port {p:?}"))?,
        None => default_port,
    };
    Ok(Tcp {
        host: host.to_string(),
        port,
    })
}

/// `%XX` escapes of a URL's user and password.
pub(super) fn percent_decoded(s: &str) -> Result<String> {
    let mut out = Vec::with_capacity(s.len());
    let mut rest = s.as_bytes();
    while let Some((&c, tail)) = rest.split_first() {
        rest = tail;
        if c != b'%' {
            out.push(c);
            continue;
        }
        let hex = tail
            .get(..2)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .context("a `%` without two hex digits in the URL's user or password")?;
        out.push(hex);
        rest = &tail[2..];
    }
    String::from_utf8(out).context("the URL's user or password is not UTF-8")
}

/// The host side: a process forwarding connections of a unix socket to one TCP address.
pub struct Proxy {
    pid: i32,
    socket: PathBuf,
}

impl Proxy {
    /// Listen on `socket` (its directory is made private to the user) and fork the process
    /// that forwards each connection to `addr`. The tool must be single-threaded here (as it
    /// is when it enters a sandbox); the proxy's threads live in the child.
    pub fn start(socket: &Path, addr: SocketAddr) -> Result<Proxy> {
        let listener = listen_private(socket)?;
        // SAFETY: getpid cannot fail.
        let tool = unsafe { libc::getpid() };
        // SAFETY: the tool is single-threaded; the child only serves and exits.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            bail!("fork => {}", std::io::Error::last_os_error());
        }
        if pid == 0 {
            super::runner::die_with(tool);
            serve(listener, || TcpStream::connect(addr));
        }
        Ok(Proxy {
            pid,
            socket: socket.to_path_buf(),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // SAFETY: killing and reaping our own child (its threads die with it).
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
        let _ = std::fs::remove_file(&self.socket);
    }
}

/// A unix listener at `socket`, in a directory only the user may enter.
fn listen_private(socket: &Path) -> Result<UnixListener> {
    use std::os::unix::fs::PermissionsExt;
    let dir = socket
        .parent()
        .context("a socket path without a directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    let _ = std::fs::remove_file(socket);
    UnixListener::bind(socket).with_context(|| format!("listening on {}", socket.display()))
}

/// In the sandbox: listen on a free port of the loopback, print it, and forward each
/// connection to `socket` from a background process (the caller goes on once the port is
/// printed; the process ends with the sandbox's pid namespace).
pub fn in_sandbox(socket: &Path) -> Result<i32> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("listening on 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    // SAFETY: this short-lived command is single-threaded.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork => {}", std::io::Error::last_os_error());
    }
    if pid > 0 {
        println!("{port}");
        return Ok(0);
    }
    // The child: stdout goes nowhere, so that `$(…)` in the cargo wrapper ends.
    // SAFETY: replacing fd 1 of this process with /dev/null.
    unsafe {
        let null = libc::open(c"/dev/null".as_ptr(), libc::O_WRONLY);
        libc::dup2(null, 1);
    }
    let socket = socket.to_path_buf();
    serve(listener, move || UnixStream::connect(&socket))
}

/// A stream that can be copied both ways at once.
trait Duplex: Read + Write + Send + Sized + 'static {
    fn split(&self) -> std::io::Result<Self>;
    fn close_write(&self);
}

impl Duplex for TcpStream {
    fn split(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

impl Duplex for UnixStream {
    fn split(&self) -> std::io::Result<Self> {
        self.try_clone()
    }
    fn close_write(&self) {
        let _ = self.shutdown(Shutdown::Write);
    }
}

/// A listener whose connections are forwarded.
trait Accept {
    type Conn: Duplex;
    fn next(&self) -> std::io::Result<Self::Conn>;
}

impl Accept for UnixListener {
    type Conn = UnixStream;
    fn next(&self) -> std::io::Result<UnixStream> {
        self.accept().map(|(s, _)| s)
    }
}

impl Accept for TcpListener {
    type Conn = TcpStream;
    fn next(&self) -> std::io::Result<TcpStream> {
        self.accept().map(|(s, _)| s)
    }
}

/// Accept forever; each connection gets a connection of `connect` and a thread copying
/// between them. Never returns (the process is killed, or exits on a broken listener).
fn serve<L, C, F>(listener: L, connect: F) -> !
where
    L: Accept,
    C: Duplex,
    F: Fn() -> std::io::Result<C>,
{
    loop {
        let conn = match listener.next() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("cargo-for-arm: the cache endpoint's listener failed: {e}");
                // SAFETY: leaving without the parent's destructors.
                unsafe { libc::_exit(1) }
            }
        };
        match connect() {
            Ok(up) => {
                std::thread::spawn(move || splice(conn, up));
            }
            Err(e) => eprintln!("cargo-for-arm: cannot reach the cache endpoint: {e}"),
        }
    }
}

/// Copy `a` to `b` and `b` to `a` until both directions end.
fn splice<A: Duplex, B: Duplex>(a: A, b: B) {
    let (Ok(a2), Ok(b2)) = (a.split(), b.split()) else {
        return;
    };
    let there = std::thread::spawn(move || copy_then_close(a2, b2));
    copy_then_close(b, a);
    let _ = there.join();
}

/// Copy until `from` ends (or fails), then end `to`'s writing side.
fn copy_then_close<R: Duplex, W: Duplex>(mut from: R, mut to: W) {
    let _ = std::io::copy(&mut from, &mut to);
    to.close_write();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::BufRead;

    /// An echo server that upper-cases each line: bytes both ways, through the proxy.
    fn upper_server() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut w = c.try_clone().unwrap();
                    for line in std::io::BufReader::new(c).lines().map_while(Result::ok) {
                        writeln!(w, "{}", line.to_uppercase()).unwrap();
                    }
                });
            }
        });
        addr
    }

    #[test]
    fn bytes_go_both_ways_and_the_listener_goes_with_the_proxy() {
        let addr = upper_server();
        assert_eq!(resolve("127.0.0.1", addr.port()).unwrap(), addr);
        let dir = std::env::temp_dir().join(format!("cfa-forward-{}", std::process::id()));
        let socket = dir.join("endpoint/sock");
        let proxy = Proxy::start(&socket, addr).unwrap();
        for _ in 0..2 {
            let mut s = UnixStream::connect(&socket).unwrap();
            s.write_all(b"hello\nredis\n").unwrap();
            s.shutdown(Shutdown::Write).unwrap();
            let mut got = String::new();
            s.read_to_string(&mut got).unwrap();
            assert_eq!(got, "HELLO\nREDIS\n");
        }
        drop(proxy);
        assert!(!socket.exists(), "the socket outlived the proxy");
        let e = UnixStream::connect(&socket).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::NotFound, "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn an_endpoint_nobody_listens_on_is_named() {
        let free = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        let e = resolve("127.0.0.1", port).unwrap_err().to_string();
        assert!(e.contains(&format!("cannot reach 127.0.0.1:{port}")), "{e}");
    }
}
