//! Debian archives, verified like apt: `InRelease` signed by a key of the archive keyring,
//! `Packages` checked against the hashes in `InRelease`, every `.deb` against `Packages`.
//! Used to fetch a static qemu when none is installed, and to bootstrap a rootfs (which also
//! needs Debian's version order, [`version`], and a dependency resolver, [`resolve`]).

pub mod resolve;
pub mod sources;
pub mod version;

use std::collections::HashMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use pgp::composed::{CleartextSignedMessage, PublicOrSecret};
use sha2::{Digest, Sha256};

pub mod release;

/// One deb822 stanza (a package of a `Packages` index, a Release file, an apt source):
/// field name → value.
pub type Stanza = HashMap<String, String>;

/// A deb822 stanza: `Field: value` with continuation lines joined by newlines.
pub fn parse_stanza(text: &str) -> Stanza {
    let mut out = Stanza::new();
    let mut last: Option<String> = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            if let Some(k) = &last {
                let v = out.get_mut(k).expect("last key exists");
                v.push('\n');
                v.push_str(line.trim());
            }
        } else if let Some((k, v)) = line.split_once(':') {
            out.insert(k.trim().to_string(), v.trim().to_string());
            last = Some(k.trim().to_string());
        }
    }
    out
}

/// Verify a clearsigned `InRelease` against the keys of `keyring`; return the signed text.
pub fn verify_inrelease(inrelease: &str, keyring: &Path) -> Result<String> {
    let (msg, _) = CleartextSignedMessage::from_string(inrelease)
        .context("InRelease is not a clearsigned OpenPGP message")?;
    let bytes =
        std::fs::read(keyring).with_context(|| format!("reading keyring {}", keyring.display()))?;
    let keys = PublicOrSecret::from_bytes_many(&bytes[..]).context("parsing the keyring")?;
    for key in keys.flatten() {
        let PublicOrSecret::Public(k) = key else {
            continue;
        };
        if msg.verify(&k).is_ok() || k.public_subkeys.iter().any(|s| msg.verify(s).is_ok()) {
            return Ok(msg.signed_text().replace("\r\n", "\n"));
        }
    }
    bail!(
        "the InRelease signature does not verify against any key of {}",
        keyring.display()
    )
}

/// The `SHA256:` list of a Release file: path → (hash, size).
pub fn release_hashes(release: &str) -> HashMap<String, (String, u64)> {
    let fields = parse_stanza(release);
    let mut out = HashMap::new();
    for line in fields
        .get("SHA256")
        .map(String::as_str)
        .unwrap_or("")
        .lines()
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        if let [hash, size, path] = parts[..] {
            if let Ok(size) = size.parse() {
                out.insert(path.to_string(), (hash.to_lowercase(), size));
            }
        }
    }
    out
}

/// A successful answer for `url`, or the error that names it.
fn get_ok(client: &reqwest::blocking::Client, url: &str) -> Result<reqwest::blocking::Response> {
    let resp = client
        .get(url)
        .send()
        .with_context(|| format!("fetching {url}"))?;
    if !resp.status().is_success() {
        bail!("fetching {url}: the server answered {}", resp.status());
    }
    Ok(resp)
}

/// [`get_bytes`], refusing a body larger than `max` bytes without reading more of it.
fn get_bytes_max(client: &reqwest::blocking::Client, url: &str, max: u64) -> Result<Vec<u8>> {
    let mut data = Vec::new();
    get_ok(client, url)?
        .take(max + 1)
        .read_to_end(&mut data)
        .with_context(|| format!("reading {url}"))?;
    if data.len() as u64 > max {
        bail!("{url} is larger than the {max} bytes its InRelease gives: refused");
    }
    Ok(data)
}

fn get_bytes(client: &reqwest::blocking::Client, url: &str) -> Result<Vec<u8>> {
    Ok(get_ok(client, url)?
        .bytes()
        .with_context(|| format!("reading {url}"))?
        .to_vec())
}

/// One suite of one mirror, with its verified Release.
pub struct Suite {
    pub mirror: String,
    pub name: String,
    pub hashes: HashMap<String, (String, u64)>,
}

/// Whether the signature of `InRelease` is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signature {
    /// Against the keys of the keyring (the default).
    Check,
    /// Not at all (`--no-verify`): the hashes in InRelease still check the index and the
    /// packages, but nothing proves the archive is Debian's.
    Skip,
}

impl Suite {
    pub fn open(
        client: &reqwest::blocking::Client,
        mirror: &str,
        suite: &str,
        keyring: &Path,
    ) -> Result<Suite> {
        Suite::open_with(client, mirror, suite, keyring, Signature::Check)
    }

    /// `open`, with the signature of `InRelease` checked or not.
    pub fn open_with(
        client: &reqwest::blocking::Client,
        mirror: &str,
        suite: &str,
        keyring: &Path,
        signature: Signature,
    ) -> Result<Suite> {
        let url = format!("{mirror}/dists/{suite}/InRelease");
        let text = String::from_utf8(get_bytes(client, &url)?).context("InRelease is not UTF-8")?;
        let release = match signature {
            Signature::Skip => {
                let (msg, _) = CleartextSignedMessage::from_string(&text)
                    .context("InRelease is not a clearsigned message")?;
                msg.signed_text().replace("\r\n", "\n")
            }
            Signature::Check => {
                verify_inrelease(&text, keyring).with_context(|| format!("verifying {url}"))?
            }
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let checked = release::check(&release, suite, now).with_context(|| url.clone())?;
        if let Some(date) = checked.date {
            let seen = crate::rootfs::store::home()?.join("host/release-dates");
            release::against_replay(&seen, mirror, suite, date)?;
        }
        Ok(Suite {
            mirror: mirror.to_string(),
            name: suite.to_string(),
            hashes: release_hashes(&release),
        })
    }

    /// Whether the signed Release lists `path` (e.g. `universe/binary-armhf/Packages.xz`).
    pub fn lists(&self, path: &str) -> bool {
        self.hashes.contains_key(path)
    }

    /// The `Packages` index of `component`/`arch`, checked against the Release hashes.
    pub fn packages(
        &self,
        client: &reqwest::blocking::Client,
        component: &str,
        arch: &str,
    ) -> Result<Vec<Stanza>> {
        let rel = format!("{component}/binary-{arch}/Packages.xz");
        let (want, size) = self
            .hashes
            .get(&rel)
            .with_context(|| format!("{} lists no {rel}", self.name))?;
        let url = format!("{}/dists/{}/{rel}", self.mirror, self.name);
        // The size InRelease gives is the most that is read: a mirror cannot make us read more.
        let data = get_bytes_max(client, &url, *size)?;
        let got = crate::rootfs::fetch::hex(&Sha256::digest(&data));
        if &got != want {
            bail!(
                "{url} does not match its InRelease (sha256 {got}, expected {want}): the mirror serves an index \
                 that is out of step with its signed InRelease; try again later, another mirror, or another suite"
            );
        }
        let mut text = String::new();
        xz2::read::XzDecoder::new(&data[..])
            .read_to_string(&mut text)
            .with_context(|| format!("decompressing {url}"))?;
        Ok(text
            .split("\n\n")
            .map(parse_stanza)
            .filter(|s| s.contains_key("Package"))
            .collect())
    }
}

/// Download a `.deb` into `cache/<sha256>.deb` unless it is there, verifying its hash; a
/// mismatching download is deleted, never cached. Each process downloads into a partial file
/// of its own (`<sha256>.partial-<tag>`, locked while it writes), renamed into place once
/// verified: concurrent creates never write into one file, and a killed run's partial is
/// taken over (and resumed) by the next download of the same package.
pub fn fetch_deb(
    client: &reqwest::blocking::Client,
    mirror: &str,
    stanza: &Stanza,
    cache: &Path,
    quiet: bool,
) -> Result<PathBuf> {
    use crate::rootfs::fetch;
    let name = stanza.get("Package").map(String::as_str).unwrap_or("?");
    let file = stanza
        .get("Filename")
        .with_context(|| format!("package {name} has no Filename"))?;
    let want = stanza
        .get("SHA256")
        .with_context(|| format!("package {name} has no SHA256"))?
        .to_lowercase();
    if want.len() != 64 || !want.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("package {name}: SHA256 {want:?} is not a sha256");
    }
    std::fs::create_dir_all(cache)?;
    let dest = cache.join(format!("{want}.deb"));
    if dest.is_file() && fetch::sha256_file(&dest)? == want {
        return Ok(dest);
    }
    let part = match adopt_partial(cache, &want) {
        Some(p) => p,
        None => {
            fetch::Owned::create(&cache.join(format!("{want}.partial-{}", fetch::unique_tag())))?
        }
    };
    // On an error the partial stays, unlocked once this process ends: the next run resumes it.
    fetch::download(client, &format!("{mirror}/{file}"), &part.path, quiet)?;
    let got = fetch::sha256_file(&part.path)?;
    if got != want {
        fetch::discard(&part.path);
        bail!("{file} does not match its Packages entry (sha256 {got}, expected {want}); it was not kept");
    }
    let _ = std::fs::remove_file(fetch::etag_path(&part.path));
    std::fs::rename(&part.path, &dest)?;
    Ok(dest)
}

/// A partial download of `<want>` left by a killed run, taken over under a name of this
/// process's own (with its ETag, so it resumes).
fn adopt_partial(cache: &Path, want: &str) -> Option<crate::rootfs::fetch::Owned> {
    use crate::rootfs::fetch;
    let prefix = format!("{want}.partial");
    for e in std::fs::read_dir(cache).ok()?.flatten() {
        let n = e.file_name().to_string_lossy().into_owned();
        if !n.starts_with(&prefix) || n.ends_with(".etag") {
            continue;
        }
        let Some(mut owned) = fetch::Owned::adopt(&e.path()) else {
            continue;
        };
        let old_etag = fetch::etag_path(&owned.path);
        let mine = cache.join(format!("{prefix}-{}", fetch::unique_tag()));
        if owned.rename(&mine).is_ok() {
            let _ = std::fs::rename(old_etag, fetch::etag_path(&mine));
            return Some(owned);
        }
    }
    None
}

/// The `data.tar.*` member of a `.deb`, decompressed.
pub fn deb_data(deb: &Path) -> Result<Box<dyn Read>> {
    let mut archive = ar::Archive::new(
        std::fs::File::open(deb).with_context(|| format!("opening {}", deb.display()))?,
    );
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.with_context(|| format!("reading {}", deb.display()))?;
        let id = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if id.starts_with("data.tar") {
            let mut buf = Vec::new();
            entry.read_to_end(&mut buf)?;
            let limits = crate::rootfs::unpack::Limits::default();
            return crate::rootfs::unpack::decompress(std::io::Cursor::new(buf), &limits);
        }
    }
    bail!(
        "{} has no data.tar member: not a Debian package",
        deb.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stanzas_and_release_hashes() {
        let release = "Origin: Debian\nSuite: stable\nSHA256:\n 0123abcd 1234 main/binary-armhf/Packages.xz\n ffee 99 main/binary-armhf/Release\n";
        let h = release_hashes(release);
        assert_eq!(
            h["main/binary-armhf/Packages.xz"],
            ("0123abcd".to_string(), 1234)
        );
        let s = parse_stanza("Package: qemu-user\nDescription: QEMU\n more text\n");
        assert_eq!(s["Package"], "qemu-user");
        assert_eq!(s["Description"], "QEMU\nmore text");
    }

    #[test]
    fn a_tampered_inrelease_is_refused() {
        let keyring = match sources::keyring_for(None, Some(sources::Distro::Debian)) {
            Ok(k) => k,
            Err(_) => {
                eprintln!("skipped: no Debian archive keyring on this machine");
                return;
            }
        };
        let fake = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA256\n\nSuite: stable\n-----BEGIN PGP SIGNATURE-----\n\n-----END PGP SIGNATURE-----\n";
        assert!(verify_inrelease(fake, &keyring).is_err());
    }
}
