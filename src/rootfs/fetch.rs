//! Downloads: resumable (`Range` + `If-Range`), verified by sha256 over the whole file, never
//! splicing two versions of a file, with a progress bar on a terminal.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

/// Read timeout of a transfer (a stalled server): `CARGO_FOR_ARM_NET_TIMEOUT` seconds, default 60.
fn net_timeout() -> Duration {
    let secs = std::env::var("CARGO_FOR_ARM_NET_TIMEOUT")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    Duration::from_secs(secs)
}

pub fn client() -> Result<reqwest::blocking::Client> {
    let policy = reqwest::redirect::Policy::custom(|attempt| {
        let from_https = attempt
            .previous()
            .last()
            .is_some_and(|u| u.scheme() == "https");
        if from_https && attempt.url().scheme() != "https" {
            let to = attempt.url().to_string();
            attempt.error(format!("refusing a redirect from https to {to}"))
        } else if attempt.previous().len() > 10 {
            attempt.error("more than 10 redirects")
        } else {
            attempt.follow()
        }
    });
    reqwest::blocking::Client::builder()
        .redirect(policy)
        .connect_timeout(Duration::from_secs(30))
        .timeout(net_timeout())
        .user_agent(concat!("cargo-for-arm/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("building the HTTP client")
}

/// Lower-case hexadecimal of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// Where `download` keeps the ETag of a partial download, to resume it only while the server
/// still has the same file: `<partial>.etag`.
pub fn etag_path(partial: &Path) -> PathBuf {
    let mut p = partial.as_os_str().to_owned();
    p.push(".etag");
    PathBuf::from(p)
}

/// A name no other process (nor another thread of this one) picks: pid, time and a counter.
pub fn unique_tag() -> String {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{}-{t:08x}{n}", std::process::id())
}

/// A file this process is writing, held with an exclusive `flock` for as long as the value
/// lives: [`clean_stale_files`] removes only files nobody holds, so a killed run's leftovers
/// go and a live one's stay, whatever pid namespace either runs in.
#[derive(Debug)]
pub struct Owned {
    pub path: PathBuf,
    pub file: File,
}

impl Owned {
    /// A new file `path` (which must not exist), locked. Retries never: the caller names it
    /// with [`unique_tag`].
    pub fn create(path: &Path) -> Result<Owned> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(path)
            .with_context(|| format!("creating {}", path.display()))?;
        let owned = Owned::lock(path, file)
            .with_context(|| format!("{} was taken by another process", path.display()))?;
        Ok(owned)
    }

    /// Take `file` (opened from `path`) when no process holds it and `path` still names it.
    fn lock(path: &Path, file: File) -> Option<Owned> {
        // SAFETY: flock on a descriptor we own.
        if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            return None;
        }
        let same = match (file.metadata(), path.symlink_metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino() && b.is_file(),
            _ => false,
        };
        same.then(|| Owned {
            path: path.to_path_buf(),
            file,
        })
    }

    /// A leftover file at `path` that no process holds (its owner was killed), now ours.
    pub fn adopt(path: &Path) -> Option<Owned> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
            .open(path)
            .ok()?;
        Owned::lock(path, file)
    }

    /// Move it to `dest` (same directory): it is still ours under the new name.
    pub fn rename(&mut self, dest: &Path) -> Result<()> {
        std::fs::rename(&self.path, dest)
            .with_context(|| format!("renaming {} to {}", self.path.display(), dest.display()))?;
        self.path = dest.to_path_buf();
        Ok(())
    }
}

/// Write `data` to `path` atomically: into a locked `.tmp-<name>-<tag>` beside it, synced,
/// renamed over `path`, and the directory synced. Readers see the old file or the new one,
/// never half of one; concurrent writers each write a file of their own.
pub fn atomic_write(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    let mut tmp = Owned::create(&dir.join(format!(".tmp-{name}-{}", unique_tag())))?;
    let written = tmp
        .file
        .write_all(data)
        .and_then(|()| tmp.file.sync_all())
        .with_context(|| format!("writing {}", tmp.path.display()));
    if let Err(e) = written.and_then(|()| tmp.rename(path)) {
        let _ = std::fs::remove_file(&tmp.path);
        return Err(e);
    }
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// Whether `name` is a file a run writes before renaming it into place: `.tmp-*`, or a
/// download `*.partial-<tag>` (and its `.etag`).
fn is_scratch(name: &str) -> bool {
    name.starts_with(".tmp-") || name.contains(".partial-")
}

/// How long a partial download nobody holds is kept for the next download of the same file
/// to resume it ([`Owned::adopt`]); after that it is a leftover.
const PARTIAL_KEPT: Duration = Duration::from_secs(24 * 3600);

/// Remove the scratch files of `dir` ([`is_scratch`]) that no process holds: those of a
/// killed run (a partial download once it is older than [`PARTIAL_KEPT`]: until then the
/// next run resumes it). A file a live run writes is locked ([`Owned`]) and stays. Returns
/// how many went.
pub fn clean_stale_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !is_scratch(&name) || name.ends_with(".etag") {
            continue;
        }
        let path = e.path();
        let Some(stale) = Owned::adopt(&path) else {
            continue;
        };
        let resumable = !name.starts_with(".tmp-")
            && stale
                .file
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|age| age < PARTIAL_KEPT));
        if !resumable {
            discard(&stale.path);
            removed += 1;
        }
    }
    // ETags whose download is gone.
    if let Ok(rd) = std::fs::read_dir(dir) {
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(partial) = name.strip_suffix(".etag").filter(|n| is_scratch(n)) {
                if !dir.join(partial).exists() {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
    removed
}

/// Delete a download that will not be used, and its ETag.
pub fn discard(partial: &Path) {
    let _ = std::fs::remove_file(partial);
    let _ = std::fs::remove_file(etag_path(partial));
}

/// Progress: a bar on a terminal, a line every few seconds otherwise, nothing when quiet.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    quiet: bool,
    last_line: Instant,
    total: Option<u64>,
}

impl Progress {
    fn new(total: Option<u64>, start: u64, quiet: bool, what: &str) -> Progress {
        let tty = unsafe { libc::isatty(2) } == 1;
        let bar = (tty && !quiet).then(|| {
            let b = match total {
                Some(t) => indicatif::ProgressBar::new(t),
                None => indicatif::ProgressBar::new_spinner(),
            };
            b.set_style(
                indicatif::ProgressStyle::with_template(
                    "  Downloading {msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_message(what.to_string());
            b.set_position(start);
            b
        });
        if !tty && !quiet {
            eprintln!(
                "  Downloading {what}{}",
                if start > 0 {
                    format!(" (resuming at {start} bytes)")
                } else {
                    String::new()
                }
            );
        }
        Progress {
            bar,
            quiet,
            last_line: Instant::now(),
            total,
        }
    }

    fn set(&mut self, pos: u64) {
        if let Some(b) = &self.bar {
            b.set_position(pos);
        } else if !self.quiet && self.last_line.elapsed() > Duration::from_secs(5) {
            self.last_line = Instant::now();
            match self.total {
                Some(t) => crate::ui::status("Downloaded", format_args!("{pos} of {t} bytes")),
                None => crate::ui::status("Downloaded", format_args!("{pos} bytes")),
            }
        }
    }

    fn done(self) {
        if let Some(b) = self.bar {
            b.finish_and_clear();
        }
    }
}

/// Download `url` into `partial`, resuming what is there when the server still has the same
/// file (`If-Range` with the ETag saved next to it). Returns when `partial` holds the whole
/// body. The caller verifies the hash of the whole file.
pub fn download(
    client: &reqwest::blocking::Client,
    url: &str,
    partial: &Path,
    quiet: bool,
) -> Result<()> {
    let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
    let mut resp = request(client, url, partial, have)?;
    let (mut file, start) = open_partial(&resp, url, partial, have)?;
    save_etag(&resp, partial)?;
    let expected = resp.content_length();
    let total = expected.map(|l| l + start);
    let name = url.rsplit('/').next().unwrap_or(url);
    let mut progress = Progress::new(total, start, quiet, name);
    let got = copy_body(&mut resp, &mut file, url, partial, &mut |n| {
        progress.set(start + n)
    })?;
    file.sync_all()?;
    progress.done();
    if let Some(len) = expected {
        if got != len {
            bail!("downloading {url}: got {got} bytes but Content-Length said {len}; run again to resume");
        }
    }
    Ok(())
}

/// GET `url`, asking for the rest after `have` bytes when an ETag says which file those bytes
/// came from; refuse error statuses and HTML pages.
fn request(
    client: &reqwest::blocking::Client,
    url: &str,
    partial: &Path,
    have: u64,
) -> Result<reqwest::blocking::Response> {
    let etag = std::fs::read_to_string(etag_path(partial))
        .ok()
        .filter(|e| !e.is_empty());
    let mut req = client.get(url);
    if have > 0 {
        if let Some(tag) = &etag {
            req = req
                .header(reqwest::header::RANGE, format!("bytes={have}-"))
                .header(reqwest::header::IF_RANGE, tag);
        }
    }
    let resp = req.send().with_context(|| format!("downloading {url}"))?;
    let status = resp.status();
    let is_html = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/html"));
    if !status.is_success() {
        bail!("downloading {url}: the server answered {status}");
    }
    if is_html {
        bail!("downloading {url}: the server sent an HTML page, not an archive (a login or error page?)");
    }
    Ok(resp)
}

/// The file to write the body to and the offset it starts at: appended to on a 206 that
/// resumes at `have`, else truncated.
fn open_partial(
    resp: &reqwest::blocking::Response,
    url: &str,
    partial: &Path,
    have: u64,
) -> Result<(File, u64)> {
    if resp.status() == reqwest::StatusCode::PARTIAL_CONTENT && have > 0 {
        let range = resp
            .headers()
            .get(reqwest::header::CONTENT_RANGE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !range.starts_with(&format!("bytes {have}-")) {
            bail!("downloading {url}: the server resumed at the wrong offset ({range})");
        }
        return Ok((OpenOptions::new().append(true).open(partial)?, have));
    }
    // 200: the whole file again (a server that ignores Range, or a changed ETag). Start
    // over; never splice two versions.
    let file = File::create(partial).with_context(|| format!("creating {}", partial.display()))?;
    Ok((file, 0))
}

/// Keep the ETag of this response next to `partial` (or none, if the server sent none).
fn save_etag(resp: &reqwest::blocking::Response, partial: &Path) -> Result<()> {
    let etag_file = etag_path(partial);
    match resp
        .headers()
        .get(reqwest::header::ETAG)
        .and_then(|v| v.to_str().ok())
    {
        Some(tag) => std::fs::write(&etag_file, tag)?,
        None => {
            let _ = std::fs::remove_file(&etag_file);
        }
    }
    Ok(())
}

/// Copy the body into `file`, telling `progress` the bytes copied so far; returns them.
fn copy_body(
    resp: &mut reqwest::blocking::Response,
    file: &mut File,
    url: &str,
    partial: &Path,
    progress: &mut dyn FnMut(u64),
) -> Result<u64> {
    let mut buf = vec![0u8; 256 << 10];
    let mut got = 0u64;
    loop {
        let n = resp.read(&mut buf).with_context(|| {
            format!("downloading {url} (connection lost or stalled; run again to resume)")
        })?;
        if n == 0 {
            return Ok(got);
        }
        file.write_all(&buf[..n])
            .with_context(|| format!("writing {}", partial.display()))?;
        got += n as u64;
        progress(got);
    }
}

/// Fetch a small text file (a checksum list) from a URL or read it from a path.
pub fn fetch_text(client: Option<&reqwest::blocking::Client>, src: &str) -> Result<String> {
    if src.starts_with("http://") || src.starts_with("https://") {
        let c = client.context("no HTTP client")?;
        let resp = c
            .get(src)
            .send()
            .with_context(|| format!("fetching {src}"))?;
        if !resp.status().is_success() {
            bail!("fetching {src}: the server answered {}", resp.status());
        }
        return resp.text().with_context(|| format!("reading {src}"));
    }
    std::fs::read_to_string(src).with_context(|| format!("reading {src}"))
}

/// The sha256 of `file_name` in a `SHA256SUMS`-style list (`HEX  name`, `HEX *name`) or a
/// BSD-style one (`SHA256 (name) = HEX`).
pub fn find_checksum(list: &str, file_name: &str) -> Option<String> {
    for line in list.lines() {
        let line = line.trim();
        if let Some(rest) = line.strip_prefix("SHA256 (") {
            if let Some((name, hex)) = rest.split_once(") = ") {
                if name == file_name {
                    return Some(hex.trim().to_lowercase());
                }
            }
            continue;
        }
        let mut parts = line.split_whitespace();
        if let (Some(hex), Some(name)) = (parts.next(), parts.next()) {
            let name = name.trim_start_matches('*').trim_start_matches("./");
            if name == file_name && hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()) {
                return Some(hex.to_lowercase());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_a_whole_file_and_no_scratch() {
        let dir = std::env::temp_dir().join(format!("cfa-atomic-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("record");
        std::thread::scope(|s| {
            for i in 0..8u8 {
                let f = &f;
                s.spawn(move || {
                    for _ in 0..20 {
                        atomic_write(f, &vec![b'a' + i; 4096]).unwrap();
                    }
                });
            }
        });
        let data = std::fs::read(&f).unwrap();
        assert_eq!(data.len(), 4096);
        assert!(data.iter().all(|b| *b == data[0]), "a mixed file");
        let names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["record"]);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn scratch_files_held_by_a_writer_are_not_cleaned() {
        let dir = std::env::temp_dir().join(format!("cfa-scratch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let held = Owned::create(&dir.join(format!(".tmp-x-{}", unique_tag()))).unwrap();
        std::fs::write(dir.join(".tmp-y-1-2"), b"left").unwrap();
        std::fs::write(dir.join("keep.deb"), b"deb").unwrap();
        assert_eq!(clean_stale_files(&dir), 1);
        assert!(held.path.exists() && dir.join("keep.deb").exists());
        assert!(!dir.join(".tmp-y-1-2").exists());
        // Another opener cannot take a held file.
        assert!(Owned::adopt(&held.path).is_none());
        drop(held);
        assert_eq!(clean_stale_files(&dir), 1);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn checksum_lists() {
        let h = "a".repeat(64);
        let gnu = format!("{h}  alpine-minirootfs.tar.gz\n{}  other\n", "b".repeat(64));
        assert_eq!(
            find_checksum(&gnu, "alpine-minirootfs.tar.gz"),
            Some(h.clone())
        );
        assert_eq!(
            find_checksum(&format!("{h} *x.tar.xz"), "x.tar.xz"),
            Some(h.clone())
        );
        assert_eq!(
            find_checksum(&format!("SHA256 (x.tar) = {}", h.to_uppercase()), "x.tar"),
            Some(h)
        );
        assert_eq!(find_checksum(&gnu, "missing"), None);
    }
}
