//! Fetching a static qemu without root, through the archive's signed chain: for real from the
//! Debian mirror of the test machine (cached between runs), against a local server that
//! serves tampered copies of the real, signed indices, and from an Ubuntu-shaped archive made
//! and signed by the test, found through a fake Ubuntu host's apt sources.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::aptrepo::{make_deb, make_deb_of_files, now, tools_or_skip, Deb, Gpg, Release, Tree};
use common::http::{Route, Server};
use common::*;

fn test_cache() -> PathBuf {
    // Beside the other fixtures: kept between runs, so the 70 MB package downloads once.
    cache_dir()
}

fn mirror() -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/debfetch.py");
    let o = Command::new("python3")
        .arg(script)
        .arg("--print-mirror")
        .output()
        .unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap().trim().to_string()
}

/// Real trixie InRelease and amd64 Packages.xz, downloaded once.
fn real_indices() -> (Vec<u8>, Vec<u8>) {
    let dir = test_cache().join("trixie-indices");
    std::fs::create_dir_all(&dir).unwrap();
    let get = |rel: &str, name: &str| -> Vec<u8> {
        let p = dir.join(name);
        if !p.exists() {
            let url = format!("{}/dists/trixie/{rel}", mirror());
            let body = reqwest::blocking::get(&url)
                .unwrap()
                .bytes()
                .unwrap()
                .to_vec();
            // Another run of the suite may be downloading the same: a part file of our own.
            let part = p.with_extension(format!("part-{}", std::process::id()));
            std::fs::write(&part, &body).unwrap();
            std::fs::rename(&part, &p).unwrap();
        }
        std::fs::read(&p).unwrap()
    };
    (
        get("InRelease", "InRelease"),
        get("main/binary-amd64/Packages.xz", "Packages.xz"),
    )
}

/// The tool with no qemu named and none on PATH (even on a host with qemu-user-static): only
/// the store `home` may have one.
fn fetch_cmd(home: &Path, cwd: &Path) -> Tool {
    Tool::new(cwd).home(home).no_qemu()
}

#[test]
fn qemu_is_fetched_verified_static_and_read_only_and_then_used() {
    let home = test_cache().join("fetch-home");
    // Shared with another run of the suite: take turns.
    let _turn = take_turn("fetch-home");
    let _ = std::fs::remove_dir_all(home.join("qemu"));
    let cwd = TempDir::new("qfetch");
    let o = fetch_cmd(&home, cwd.path())
        .args(["qemu", "fetch", "arm"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("verified against its signed InRelease"),
        "{}",
        stderr(&o)
    );
    let q = PathBuf::from(stdout(&o).trim());
    assert_eq!(
        std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
        0o555
    );
    let list = stdout(&fetch_cmd(&home, cwd.path()).args(["qemu", "list"]).output());
    assert!(
        list.contains("cache") && list.contains("qemu-arm version"),
        "{list}"
    );
    // run finds it with no qemu on PATH and none named.
    let o = fetch_cmd(&home, cwd.path())
        .args(["run", "--rootfs"])
        .arg(fixture("busybox-armhf"))
        .args(["--", "uname", "-m"])
        .output();
    assert_eq!(stdout(&o).trim(), "armv7l", "{}", stderr(&o));
    // With none cached, run fetches one itself (the package itself is cached by hash).
    let _ = std::fs::remove_dir_all(home.join("qemu"));
    let o = fetch_cmd(&home, cwd.path())
        .args(["run", "--rootfs"])
        .arg(fixture("busybox-armhf"))
        .args(["--", "uname", "-m"])
        .output();
    assert_eq!(stdout(&o).trim(), "armv7l", "{}", stderr(&o));
    assert!(stderr(&o).contains("fetching Debian's"), "{}", stderr(&o));
    // And CARGO_FOR_ARM_OFFLINE forbids that, naming the fix.
    let _ = std::fs::remove_dir_all(home.join("qemu"));
    let o = fetch_cmd(&home, cwd.path())
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["run", "--rootfs"])
        .arg(fixture("busybox-armhf"))
        .args(["--", "true"])
        .output();
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("cargo for-arm qemu fetch arm"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn tampered_indices_and_packages_are_refused() {
    let (inrelease, packages) = real_indices();
    let server = Server::start();
    let home = TempDir::new("tamper-home");
    let cwd = TempDir::new("tamper");
    let fetch = |mirror: &str| {
        fetch_cmd(home.path(), cwd.path())
            .args([
                "qemu", "fetch", "arm", "--suite", "trixie", "--mirror", mirror,
            ])
            .output()
    };
    // 1. An InRelease whose signed text was changed.
    let text = String::from_utf8(inrelease.clone()).unwrap();
    let forged = text.replacen("Suite: ", "Suite: x", 1);
    assert_ne!(forged, text);
    server.route(
        "/a/dists/trixie/InRelease",
        Route::file(forged.into_bytes()),
    );
    let o = fetch(&format!("{}/a", server.base));
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
    // 2. The genuine InRelease with a Packages index it does not list.
    server.route("/b/dists/trixie/InRelease", Route::file(inrelease.clone()));
    server.route(
        "/b/dists/trixie/main/binary-amd64/Packages.xz",
        Route::file(b"not the index".to_vec()),
    );
    let o = fetch(&format!("{}/b", server.base));
    assert!(
        stderr(&o).contains("does not match its InRelease"),
        "{}",
        stderr(&o)
    );
    // 3. Genuine indices, a package whose bytes are not the ones Packages names.
    server.route("/c/dists/trixie/InRelease", Route::file(inrelease));
    server.route(
        "/c/dists/trixie/main/binary-amd64/Packages.xz",
        Route::file(packages.clone()),
    );
    let mut text = String::new();
    std::io::Read::read_to_string(&mut xz2::read::XzDecoder::new(&packages[..]), &mut text)
        .unwrap();
    let stanza = text
        .split("\n\n")
        .find(|s| s.starts_with("Package: qemu-user\n"))
        .unwrap();
    let file = stanza
        .lines()
        .find_map(|l| l.strip_prefix("Filename: "))
        .unwrap();
    server.route(
        &format!("/c/{file}"),
        Route::file(b"!<arch>\nevil".to_vec()),
    );
    let o = fetch(&format!("{}/c", server.base));
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("does not match its Packages entry"),
        "{}",
        stderr(&o)
    );
    let debs: Vec<_> = std::fs::read_dir(home.path().join("debs"))
        .map(|rd| rd.flatten().collect())
        .unwrap_or_default();
    assert!(debs.is_empty(), "a bad package was kept: {debs:?}");
    assert!(
        !home.path().join("qemu").exists()
            || std::fs::read_dir(home.path().join("qemu"))
                .unwrap()
                .next()
                .is_none()
    );
}

#[test]
fn the_newest_usable_qemu_is_preferred() {
    // Debian 12's qemu 7.2 on PATH, qemu 10 in the cache of fetched ones: the cache's wins.
    let old = fixture("qemu-old");
    let home = TempDir::new("qnewest");
    let cached = home.path().join("qemu/1:10.0-fixture");
    std::fs::create_dir_all(&cached).unwrap();
    std::fs::copy(qemu_dir().join("qemu-arm"), cached.join("qemu-arm")).unwrap();
    let list = |home: &Path| {
        // No qemu named; on PATH only the old one (not the host's own qemu-user-static).
        let o = Tool::new(home)
            .home(home)
            .no_qemu()
            .path_first(&old)
            .args(["qemu", "list"])
            .output();
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o)
    };
    let text = list(home.path());
    let used: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("arm ") && l.ends_with("[used]"))
        .collect();
    assert!(
        used.len() == 1
            && used[0].starts_with("arm ")
            && used[0].contains("cache")
            && used[0].contains("version 10."),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.contains("qemu-arm-static")
            && l.contains("version 7.2")
            && !l.ends_with("[used]")),
        "{text}"
    );
    // Without the newer one, PATH's is used.
    std::fs::remove_dir_all(&cached).unwrap();
    let text = list(home.path());
    assert!(
        text.lines().any(|l| l.contains("qemu-arm-static")
            && l.contains("version 7.2")
            && l.ends_with("[used]")),
        "{text}"
    );
}

/// On a merged-/usr host /bin and /usr/bin are one directory: `qemu list` shows each qemu
/// file once, whichever PATH entries lead to it.
#[test]
fn qemu_list_shows_a_file_once_however_many_path_entries_reach_it() {
    let t = TempDir::new("qdedupe");
    let real = t.path().join("usr-bin");
    std::fs::create_dir(&real).unwrap();
    std::fs::copy(
        fixture("qemu-old").join("qemu-arm-static"),
        real.join("qemu-arm-static"),
    )
    .unwrap();
    let alias = t.path().join("bin");
    std::os::unix::fs::symlink(&real, &alias).unwrap();
    let o = Tool::new(t.path())
        .no_qemu()
        .path_first(&alias)
        .path_first(&real)
        .args(["qemu", "list"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    let arm: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("arm ") && l.contains("qemu-arm-static"))
        .collect();
    assert_eq!(arm.len(), 1, "{text}");
}

/// This host's Debian architecture and the Ubuntu archive that carries it.
fn host_ubuntu_archive() -> (&'static str, &'static str) {
    match std::env::consts::ARCH {
        "x86_64" => ("amd64", "ubuntu"),
        "aarch64" => ("arm64", "ubuntu-ports"),
        other => panic!("no Ubuntu archive carries {other}"),
    }
}

/// An Ubuntu-shaped archive for this host's architecture, signed by a key of the test, with
/// for each of `releases` (suite, qemu, version) `suite` and `suite-updates`: an unrelated
/// package in `main` of both, and in `universe` of the updates a `qemu-user-static` whose
/// `usr/bin/qemu-arm-static` is `qemu` (`version`).
struct UbuntuQemuArchive {
    gpg: Gpg,
    server: Server,
    tree: String,
    /// The qemu-user-static package served by the first release.
    deb: PathBuf,
    _dir: TempDir,
}

impl UbuntuQemuArchive {
    fn new(releases: &[(&str, &Path, &str)]) -> UbuntuQemuArchive {
        let (host, tree_name) = host_ubuntu_archive();
        let dir = TempDir::new("ubuntu-qemu-archive");
        let gpg = Gpg::new("Ubuntu test archive");
        let server = Server::start();
        let tree = Tree::new(&dir.path().join(tree_name));
        let other = Deb::read(&make_deb(dir.path(), "apt", host, 1000));
        let mut debs = Vec::new();
        for (suite, qemu, version) in releases {
            let deb = make_deb_of_files(
                dir.path(),
                "qemu-user-static",
                version,
                host,
                &[("usr/bin/qemu-arm-static", qemu)],
            );
            let updates = format!("{suite}-updates");
            for dist in [suite, updates.as_str()] {
                tree.packages(dist, host, std::slice::from_ref(&other));
                if dist == updates {
                    tree.component_packages(dist, "universe", host, &[Deb::read(&deb)]);
                }
                let r = Release {
                    origin: "Ubuntu",
                    suite: dist,
                    codename: suite,
                    date: now(),
                };
                tree.publish(&gpg, dist, &r);
            }
            debs.push(deb);
        }
        server.dir(&format!("/{tree_name}"), &tree.dir);
        UbuntuQemuArchive {
            gpg,
            server,
            tree: tree_name.to_string(),
            deb: debs.swap_remove(0),
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("{}/{}", self.server.base, self.tree)
    }

    fn asked(&self, prefix: &str) -> Vec<String> {
        let log = self.server.log.lock().unwrap();
        let asked = log.requests.iter().map(|(p, _)| p.clone());
        asked.filter(|p| p.starts_with(prefix)).collect()
    }

    /// `qemu fetch arm` on a fake host of `release` (`host`) with an empty store: it
    /// succeeded and said it fetched qemu-user-static `version` from `suite`. The store, the
    /// qemu's path and the tool's stderr.
    fn fetch_on(&self, release: &str, version: &str, suite: &str) -> (TempDir, PathBuf, String) {
        let (host, _) = host_ubuntu_archive();
        let root = self.host(release);
        let home = TempDir::new(&format!("ubuntu-{release}-qemu-home"));
        let cwd = TempDir::new(&format!("ubuntu-{release}-qemu"));
        let o = on_host(root.path(), home.path(), cwd.path())
            .args(["qemu", "fetch", "arm"])
            .output();
        let err = stderr(&o);
        assert!(o.status.success(), "{err}");
        let said = format!(
            "qemu-user-static {version} ({suite}, {host}) from {}, verified against its signed InRelease",
            self.url()
        );
        assert!(err.contains(&said), "{err}");
        (home, PathBuf::from(stdout(&o).trim()), err)
    }

    /// Of `release`, the universe index of its updates suite was read once and the release
    /// suite itself not at all (`err`: the tool's stderr, for the message).
    fn assert_updates_only(&self, release: &str, err: &str) {
        let (host, _) = host_ubuntu_archive();
        let tree = &self.tree;
        let index = format!("/{tree}/dists/{release}-updates/universe/binary-{host}/Packages.xz");
        assert_eq!(self.asked(&index).len(), 1, "{err}");
        let other = self.asked(&format!("/{tree}/dists/{release}/"));
        assert!(other.is_empty(), "{other:?}\n{err}");
    }

    /// A fake Ubuntu host of release `suite` (below `CARGO_FOR_ARM_APT_ROOT`) whose apt
    /// sources name this archive through a mirror list, as GitHub's Ubuntu runners do, and
    /// whose only keyring is Ubuntu's (this archive's key).
    fn host(&self, suite: &str) -> TempDir {
        let root = TempDir::new("ubuntu-host");
        let sources = format!(
            "Types: deb\nURIs: mirror+file:/etc/apt/apt-mirrors.txt\nSuites: {suite} {suite}-updates\nComponents: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n"
        );
        let mirrors = format!(
            "{}/\tpriority:1\nhttp://127.0.0.1:9/ubuntu/\tpriority:2\n",
            self.url()
        );
        let keyring = std::fs::read(&self.gpg.keyring).unwrap();
        for (p, data) in [
            ("etc/apt/apt-mirrors.txt", mirrors.into_bytes()),
            (
                "etc/os-release",
                format!("ID=ubuntu\nVERSION_CODENAME={suite}\n").into_bytes(),
            ),
            (
                "etc/apt/sources.list.d/ubuntu.sources",
                sources.into_bytes(),
            ),
            ("usr/share/keyrings/ubuntu-archive-keyring.gpg", keyring),
        ] {
            let f = root.path().join(p);
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, data).unwrap();
        }
        root
    }
}

/// The tool on the fake host `root`, store `home`, no qemu named or on PATH.
fn on_host(root: &Path, home: &Path, cwd: &Path) -> Tool {
    fetch_cmd(home, cwd).env("CARGO_FOR_ARM_APT_ROOT", root)
}

#[test]
fn an_ubuntu_host_fetches_qemu_user_static_from_universe_verified() {
    if !tools_or_skip() {
        return;
    }
    let a = UbuntuQemuArchive::new(&[(
        "noble",
        &qemu_dir().join("qemu-arm"),
        "1:10.0.0+ds-0ubuntu1",
    )]);
    let (home, q, err) = a.fetch_on("noble", "1:10.0.0+ds-0ubuntu1", "noble-updates");
    assert!(!err.contains("older than"), "{err}");
    // The updates suite first, its universe index read; the release suite not needed.
    a.assert_updates_only("noble", &err);
    assert!(q.starts_with(home.path().join("qemu")), "{}", q.display());
    let (root, cwd) = (a.host("noble"), TempDir::new("ubuntu-qemu"));
    assert_eq!(
        std::fs::metadata(&q).unwrap().permissions().mode() & 0o777,
        0o555
    );
    assert_eq!(
        std::fs::read(&q).unwrap(),
        std::fs::read(qemu_dir().join("qemu-arm")).unwrap()
    );
    let list = stdout(
        &on_host(root.path(), home.path(), cwd.path())
            .args(["qemu", "list"])
            .output(),
    );
    assert!(
        list.lines().any(|l| l.starts_with("arm ")
            && l.contains("cache")
            && l.contains("qemu-arm version")
            && l.ends_with("[used]")),
        "{list}"
    );
    // With none cached, run fetches Ubuntu's itself (the package is cached by its hash).
    std::fs::remove_dir_all(home.path().join("qemu")).unwrap();
    let o = on_host(root.path(), home.path(), cwd.path())
        .args(["run", "--rootfs"])
        .arg(fixture("busybox-armhf"))
        .args(["--", "uname", "-m"])
        .output();
    assert_eq!(stdout(&o).trim(), "armv7l", "{}", stderr(&o));
    assert!(stderr(&o).contains("fetching Ubuntu's"), "{}", stderr(&o));
    // The package's bytes changed after its index was signed: refused, nothing kept.
    let mut evil = std::fs::read(&a.deb).unwrap();
    let n = evil.len();
    evil[n - 100] ^= 0xff;
    std::fs::write(&a.deb, evil).unwrap();
    let fresh = TempDir::new("ubuntu-qemu-tampered");
    let o = on_host(root.path(), fresh.path(), cwd.path())
        .args(["qemu", "fetch", "arm"])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("does not match its Packages entry"),
        "{}",
        stderr(&o)
    );
    let kept = |d: &str| -> Vec<_> {
        std::fs::read_dir(fresh.path().join(d))
            .map(|rd| rd.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    };
    assert!(
        kept("debs")
            .iter()
            .all(|p| p.extension().is_none_or(|x| x != "deb")),
        "{:?}",
        kept("debs")
    );
    assert!(
        kept("qemu").iter().all(|d| !d.join("qemu-arm").exists()),
        "{:?}",
        kept("qemu")
    );
}

#[test]
fn an_ubuntu_release_whose_qemu_is_older_than_8_says_so() {
    if !tools_or_skip() {
        return;
    }
    // Ubuntu 22.04's qemu is 6.2; Debian 12's 7.2 (the old fixture) stands in for it.
    let old = fixture("qemu-old").join("qemu-arm-static");
    let a = UbuntuQemuArchive::new(&[("jammy", &old, "1:6.2+dfsg-2ubuntu6")]);
    let (_home, _, err) = a.fetch_on("jammy", "1:6.2+dfsg-2ubuntu6", "jammy-updates");
    // The LTS was tried (this archive has none) before the old one was taken, and said.
    assert!(err.contains("no usable qemu from noble-updates"), "{err}");
    assert!(
        err.contains("older than 8")
            && err.contains("may deadlock")
            && err.contains("cargo for-arm qemu fetch arm --suite noble"),
        "{err}"
    );
}

#[test]
fn an_ubuntu_release_whose_qemu_is_older_than_8_gets_the_lts_qemu() {
    if !tools_or_skip() {
        return;
    }
    // A 22.04 host: its release has qemu 6.2 (Debian 12's 7.2 stands in), 24.04 a newer one.
    let old = fixture("qemu-old").join("qemu-arm-static");
    let new = qemu_dir().join("qemu-arm");
    let a = UbuntuQemuArchive::new(&[
        ("jammy", &old, "1:6.2+dfsg-2ubuntu6"),
        ("noble", &new, "1:8.2.2+ds-0ubuntu1"),
    ]);
    let (_home, q, err) = a.fetch_on("jammy", "1:8.2.2+ds-0ubuntu1", "noble-updates");
    assert!(!err.contains("older than"), "{err}");
    assert_eq!(std::fs::read(&q).unwrap(), std::fs::read(&new).unwrap());
    // jammy-updates gave the old one; jammy itself, of the same release, was not asked.
    a.assert_updates_only("jammy", &err);
    a.assert_updates_only("noble", &err);
}
