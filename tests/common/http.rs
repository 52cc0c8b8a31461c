//! A small HTTP/1.1 server on 127.0.0.1 for the download tests: each path has a behaviour
//! (serve, honour Range or not, cut the connection, stall, 404 …) and requests are counted.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Clone, Default)]
pub struct Route {
    pub body: Vec<u8>,
    pub status: u16,
    pub content_type: String,
    pub etag: Option<String>,
    pub honour_range: bool,
    /// Cut the connection after this many body bytes, on the first N requests.
    pub cut_after: Option<(usize, usize)>,
    /// Send the headers, then nothing.
    pub stall: bool,
    /// Announce this Content-Length instead of the true one.
    pub lie_length: Option<usize>,
    /// Pause between 64 KiB chunks (slow transfers for the concurrency test).
    pub chunk_delay: Option<Duration>,
}

impl Route {
    pub fn file(body: Vec<u8>) -> Route {
        Route {
            body,
            status: 200,
            content_type: "application/octet-stream".into(),
            etag: Some("\"v1\"".into()),
            honour_range: true,
            ..Route::default()
        }
    }
}

#[derive(Default)]
pub struct Log {
    pub requests: Vec<(String, Option<String>)>,
}

pub struct Server {
    pub base: String,
    pub routes: Arc<Mutex<HashMap<String, Route>>>,
    pub log: Arc<Mutex<Log>>,
    /// Path prefixes served from directories (an apt repository on disk).
    pub dirs: Arc<Mutex<Vec<(String, std::path::PathBuf)>>>,
}

impl Server {
    pub fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Route>>> = Arc::default();
        let log: Arc<Mutex<Log>> = Arc::default();
        let dirs: Arc<Mutex<Vec<(String, std::path::PathBuf)>>> = Arc::default();
        let (r, l, d) = (routes.clone(), log.clone(), dirs.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (r, l, d) = (r.clone(), l.clone(), d.clone());
                std::thread::spawn(move || {
                    let _ = serve(stream, &r, &l, &d);
                });
            }
        });
        Server {
            base,
            routes,
            log,
            dirs,
        }
    }

    /// Serve the files below `dir` at `prefix` (e.g. `/debian`), read at each request (so a
    /// file rewritten between requests is served anew); symlinks are followed. Returns the URL.
    pub fn dir(&self, prefix: &str, dir: &std::path::Path) -> String {
        self.dirs
            .lock()
            .unwrap()
            .push((prefix.trim_end_matches('/').to_string(), dir.to_path_buf()));
        format!("{}{}", self.base, prefix.trim_end_matches('/'))
    }

    pub fn route(&self, path: &str, route: Route) -> String {
        self.routes.lock().unwrap().insert(path.to_string(), route);
        format!("{}{path}", self.base)
    }

    pub fn gets(&self, path: &str) -> Vec<Option<String>> {
        self.log
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|(p, _)| p == path)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

/// The file of a directory served at a prefix, as a plain route.
fn from_dirs(path: &str, dirs: &Mutex<Vec<(String, std::path::PathBuf)>>) -> Option<Route> {
    let dirs = dirs.lock().unwrap().clone();
    for (prefix, dir) in dirs {
        let Some(rest) = path.strip_prefix(&format!("{prefix}/")) else {
            continue;
        };
        if rest.split('/').any(|c| c == ".." || c.is_empty()) {
            return None;
        }
        if let Ok(body) = std::fs::read(dir.join(rest)) {
            return Some(Route {
                etag: None,
                ..Route::file(body)
            });
        }
    }
    None
}

fn serve(
    stream: TcpStream,
    routes: &Mutex<HashMap<String, Route>>,
    log: &Mutex<Log>,
    dirs: &Mutex<Vec<(String, std::path::PathBuf)>>,
) -> std::io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut range = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            if k.eq_ignore_ascii_case("range") {
                range = Some(v.trim().to_string());
            }
        }
    }
    let nth = {
        let mut l = log.lock().unwrap();
        l.requests.push((path.clone(), range.clone()));
        l.requests.iter().filter(|(p, _)| *p == path).count()
    };
    let route = routes.lock().unwrap().get(&path).cloned();
    let route = route.or_else(|| from_dirs(&path, dirs));
    let mut out = stream;
    let Some(route) = route else {
        let body = b"<html><body>404 Not Found</body></html>";
        write!(out, "HTTP/1.1 404 Not Found\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
        return out.write_all(body);
    };
    let mut start = 0;
    let mut status = format!("{} OK", route.status);
    let mut extra = String::new();
    if let (true, Some(r)) = (route.honour_range, &range) {
        if let Some(from) = r
            .strip_prefix("bytes=")
            .and_then(|v| v.strip_suffix('-'))
            .and_then(|v| v.parse::<usize>().ok())
        {
            if from < route.body.len() {
                start = from;
                status = "206 Partial Content".into();
                extra = format!(
                    "Content-Range: bytes {from}-{}/{}\r\n",
                    route.body.len() - 1,
                    route.body.len()
                );
            }
        }
    }
    let body = &route.body[start..];
    let len = route.lie_length.unwrap_or(body.len());
    if let Some(tag) = &route.etag {
        extra.push_str(&format!("ETag: {tag}\r\n"));
    }
    write!(
        out,
        "HTTP/1.1 {status}\r\nContent-Type: {}\r\nContent-Length: {len}\r\n{extra}Connection: close\r\n\r\n",
        route.content_type
    )?;
    if route.stall {
        std::thread::sleep(Duration::from_secs(60));
        return Ok(());
    }
    let limit = match route.cut_after {
        Some((bytes, first_n)) if nth <= first_n => bytes.min(body.len()),
        _ => body.len(),
    };
    for chunk in body[..limit].chunks(64 << 10) {
        out.write_all(chunk)?;
        if let Some(d) = route.chunk_delay {
            std::thread::sleep(d);
        }
    }
    out.flush()?;
    Ok(())
}
