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
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long the tool tries to reach the endpoint before the build starts, and each
/// forwarded connection after.
const REACH_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections forwarded at once; further ones wait in the listener's backlog, so that a
/// build cannot exhaust the user's process or file limits through the proxy.
const MAX_CONNECTIONS: usize = 64;
/// The pause after `accept` found no file or memory left, before it tries again.
const BACKOFF: Duration = Duration::from_millis(100);

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
        // The user and password end at the last `@` (a `/` in them does not end the host).
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (Some(u), r),
            None => (None, rest),
        };
        let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
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

/// `url` as error messages show it: the password of `[scheme://]user:password@…` replaced
/// by `***` (everything up to the last `@` counts as user and password).
pub fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let Some(at) = url.rfind('@').filter(|&at| at >= start) else {
        return url.to_string();
    };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_string(),
    }
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
            serve(listener, move || {
                TcpStream::connect_timeout(&addr, REACH_TIMEOUT)
            });
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

/// Accept forever, at most [`MAX_CONNECTIONS`] connections at once; each gets a thread that
/// connects with `connect` and copies between the two. Never returns (the process is
/// killed, or exits on a broken listener).
fn serve<L, C, F>(listener: L, connect: F) -> !
where
    L: Accept,
    C: Duplex,
    F: Fn() -> std::io::Result<C> + Clone + Send + 'static,
{
    serve_with(listener, connect, Arc::new(Slots::new(MAX_CONNECTIONS)))
}

fn serve_with<L, C, F>(listener: L, connect: F, slots: Arc<Slots>) -> !
where
    L: Accept,
    C: Duplex,
    F: Fn() -> std::io::Result<C> + Clone + Send + 'static,
{
    loop {
        // Waits while every slot is in use: further connections stay in the backlog.
        let slot = Slot::take(&slots);
        let conn = match listener.next() {
            Ok(c) => c,
            Err(e) if transient(&e) => continue,
            Err(e) if out_of_files(&e) => {
                std::thread::sleep(BACKOFF);
                continue;
            }
            Err(e) => {
                eprintln!("cargo-for-arm: the cache endpoint's listener failed: {e}");
                // SAFETY: leaving without the parent's destructors.
                unsafe { libc::_exit(1) }
            }
        };
        let connect = connect.clone();
        // No thread left: the connection is closed (its slot freed), the proxy goes on.
        let _ = std::thread::Builder::new().spawn(move || {
            let _slot = slot;
            match connect() {
                Ok(up) => splice(conn, up),
                Err(e) => eprintln!("cargo-for-arm: cannot reach the cache endpoint: {e}"),
            }
        });
    }
}

/// An `accept` error after which the next `accept` may succeed at once.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::Interrupted | std::io::ErrorKind::ConnectionAborted
    )
}

/// An `accept` error of exhausted limits (files, kernel memory): worth a later try.
fn out_of_files(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// A counting semaphore: the connections forwarded at once.
struct Slots {
    max: usize,
    state: Mutex<SlotState>,
    freed: Condvar,
}

#[derive(Default)]
struct SlotState {
    used: usize,
    /// Takers waiting for a slot (for the tests).
    waiting: usize,
}

impl Slots {
    fn new(max: usize) -> Slots {
        Slots {
            max,
            state: Mutex::new(SlotState::default()),
            freed: Condvar::new(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One slot, given back when dropped.
struct Slot(Arc<Slots>);

impl Slot {
    /// A slot of `slots`, waiting until one is free.
    fn take(slots: &Arc<Slots>) -> Slot {
        let mut st = slots.state();
        st.waiting += 1;
        while st.used >= slots.max {
            st = slots.freed.wait(st).unwrap_or_else(|e| e.into_inner());
        }
        st.waiting -= 1;
        st.used += 1;
        Slot(slots.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.state().used -= 1;
        self.0.freed.notify_one();
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

    /// An echo server on `l` that upper-cases each line: bytes both ways, through the proxy.
    /// Started after the proxy's fork, so the forked child inherits none of its threads.
    fn upper_server(l: TcpListener) {
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
    }

    #[test]
    fn bytes_go_both_ways_and_the_listener_goes_with_the_proxy() {
        let l = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = l.local_addr().unwrap();
        // The backlog answers the connect before anyone accepts.
        assert_eq!(resolve("127.0.0.1", addr.port()).unwrap(), addr);
        let dir = std::env::temp_dir().join(format!("cfa-forward-{}", std::process::id()));
        let socket = dir.join("endpoint/sock");
        let proxy = Proxy::start(&socket, addr).unwrap();
        upper_server(l);
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

    /// Wait (without a time bound) until `slots` shows `used` slots in use and the accept
    /// loop waiting for one.
    fn until(slots: &Slots, used: usize, waiting: usize) {
        loop {
            let st = slots.state();
            if st.used == used && st.waiting == waiting {
                return;
            }
            drop(st);
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    #[test]
    fn connections_beyond_the_cap_wait_for_a_free_slot() {
        // Upstream: a listener whose accepted connections the test counts.
        let up = TcpListener::bind(("127.0.0.1", 0)).unwrap();
        let addr = up.local_addr().unwrap();
        let dir = std::env::temp_dir().join(format!("cfa-forward-cap-{}", std::process::id()));
        let socket = dir.join("sock");
        let listener = listen_private(&socket).unwrap();
        let slots = Arc::new(Slots::new(2));
        let s2 = slots.clone();
        std::thread::spawn(move || {
            serve_with(
                listener,
                move || TcpStream::connect_timeout(&addr, REACH_TIMEOUT),
                s2,
            )
        });
        let mut clients: Vec<UnixStream> = (0..3)
            .map(|_| UnixStream::connect(&socket).unwrap())
            .collect();
        // Two forwarded (in whichever order their threads connect), the third left in the
        // backlog: the loop waits for a slot before it accepts, so nothing reaches upstream.
        let (a, _) = up.accept().unwrap();
        let (b, _) = up.accept().unwrap();
        until(&slots, 2, 1);
        up.set_nonblocking(true).unwrap();
        let e = up.accept().unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::WouldBlock, "{e}");
        up.set_nonblocking(false).unwrap();
        // The first two leave, both ends: their slots go to the third (and to the next
        // accept, which then waits for a client).
        let third = clients.pop().unwrap();
        drop(clients);
        drop((a, b));
        let (_c, _) = up.accept().unwrap();
        until(&slots, 2, 0);
        drop(third);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn passwords_are_redacted() {
        for (url, shown) in [
            ("redis://:s3cret@h:1/2", "redis://:***@h:1/2"),
            ("redis://us:p@ss/w@h:port", "redis://us:***@h:port"),
            ("redis://user@h", "redis://user@h"),
            ("u:pw@h:1", "u:***@h:1"),
            ("unix:///run/r.sock?db=1", "unix:///run/r.sock?db=1"),
            ("tcp://h:11211", "tcp://h:11211"),
        ] {
            assert_eq!(redacted(url), shown, "{url}");
        }
        let p = Parts::of("u:pa/ss@h:7/3", 1).unwrap();
        assert_eq!(p.password.as_deref(), Some("pa/ss"));
        assert_eq!((p.at.port, p.path), (7, "/3"));
    }
}
