//! The Debian chain of `rootfs create` end to end, against signed apt repositories made by
//! the test (its own gpg key, `InRelease` and `Packages` indices over real `.deb`s) served on
//! 127.0.0.1: a bootstrap that works, then a replayed older index and another suite's index
//! under the asked name, both refused.

mod common;

use std::path::{Path, PathBuf};

use common::aptrepo::{debs_in, now, tools_or_skip, Deb, Gpg, Release, Tree};
use common::http::Server;
use common::*;

/// Real bookworm armhf `.deb`s: those `rootfs create` cached for the create tests' minbase
/// rootfs (made once from the test machine's mirror, like the other fixtures).
fn bookworm_debs() -> Vec<Deb> {
    let store = store_fixture("create-home");
    ensure_rootfs(
        &store,
        "minbase-armhf",
        &["--suite", "bookworm", "--arch", "armhf"],
    );
    debs_in(&store.join("debs"))
}

fn create(home: &Path, mirror: &str, keyring: &Path, name: &str) -> std::process::Output {
    Tool::new(&std::env::temp_dir())
        .home(home)
        .args([
            "rootfs", "create", name, "--suite", "bookworm", "--arch", "armhf",
        ])
        .args(["--mirror", mirror])
        .arg("--keyring")
        .arg(keyring)
        .output()
}

fn entry(home: &Path, name: &str) -> PathBuf {
    home.join("rootfs").join(name).join("entry.toml")
}

#[test]
fn a_local_signed_repository_bootstraps_and_refuses_replays_and_other_suites() {
    if !tools_or_skip() {
        return;
    }
    let debs = bookworm_debs();
    let gpg = Gpg::new("cargo-for-arm test archive");
    let repo = TempDir::new("aptrepo");
    let tree = Tree::new(&repo.path().join("debian"));
    tree.packages("bookworm", "armhf", &debs);
    let t0 = now() - 3600;
    let release = |suite, codename, date| Release {
        origin: "Debian",
        suite,
        codename,
        date,
    };
    tree.publish(&gpg, "bookworm", &release("oldstable", "bookworm", t0));
    let server = Server::start();
    let mirror = server.dir("/debian", &tree.dir);
    let home = TempDir::new("chain");

    // The chain works: a rootfs from the test's own archive, recorded verified.
    let o = create(home.path(), &mirror, &gpg.keyring, "local");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Created rootfs local"),
        "{}",
        stderr(&o)
    );
    let recorded = std::fs::read_to_string(entry(home.path(), "local")).unwrap();
    assert!(
        recorded.contains("verified = true") && recorded.contains(&mirror),
        "{recorded}"
    );
    let debs_asked = server
        .log
        .lock()
        .unwrap()
        .requests
        .iter()
        .filter(|(p, _)| p.starts_with("/debian/pool/main/"))
        .count();
    assert!(
        debs_asked > 20,
        "the packages did not come from the local archive"
    );

    // The same suite, validly signed, but older than the one seen: a replay.
    tree.publish(
        &gpg,
        "bookworm",
        &release("oldstable", "bookworm", t0 - 86_400),
    );
    let o = create(home.path(), &mirror, &gpg.keyring, "older");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("replayed"), "{}", stderr(&o));
    assert!(!home.path().join("rootfs/older").exists());

    // Another suite's index (validly signed, newer) served under the asked name: a downgrade.
    tree.publish(&gpg, "bookworm", &release("stable", "trixie", t0 + 60));
    let o = create(home.path(), &mirror, &gpg.keyring, "other");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("another suite"), "{}", stderr(&o));
    assert!(!home.path().join("rootfs/other").exists());

    // A newer index of the right suite is taken (the tree of the first create is restored).
    tree.publish(
        &gpg,
        "bookworm",
        &release("oldstable", "bookworm", t0 + 120),
    );
    let o = create(home.path(), &mirror, &gpg.keyring, "newer");
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("Restoring the tree of an identical earlier create"),
        "{}",
        stderr(&o)
    );
    assert!(entry(home.path(), "newer").is_file());

    // The same packages in a tree shaped like Ubuntu's ports archive, signed by another key
    // (the "Ubuntu" one), found through a fake Ubuntu host's apt sources and keyring alone:
    // the whole create completes (its tree restored: the same package set).
    let ubuntu = Gpg::new("Ubuntu test archive");
    let ports = Tree::new(&repo.path().join("ubuntu-ports"));
    ports.packages("noble", "armhf", &debs);
    ports.publish(&ubuntu, "noble", &release("noble", "noble", now()));
    let ports_url = server.dir("/ubuntu-ports", &ports.dir);
    let sources = format!(
        "Types: deb\nURIs: {}/ubuntu/\nSuites: noble\nComponents: main\n\n\
         Types: deb\nURIs: {ports_url}/\nSuites: noble noble-updates\nComponents: main\nArchitectures: armhf arm64\n",
        server.base
    );
    let keyring = std::fs::read(&ubuntu.keyring).unwrap();
    let host = fake_host(&[
        ("etc/os-release", b"ID=ubuntu\nVERSION_CODENAME=jammy\n"),
        ("etc/apt/sources.list.d/ubuntu.sources", sources.as_bytes()),
        ("usr/share/keyrings/ubuntu-archive-keyring.gpg", &keyring),
    ]);
    let o = Tool::new(&std::env::temp_dir())
        .home(home.path())
        .env("CARGO_FOR_ARM_APT_ROOT", host.path())
        .args([
            "rootfs", "create", "ub", "--suite", "noble", "--arch", "armhf",
        ])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    let recorded = std::fs::read_to_string(entry(home.path(), "ub")).unwrap();
    assert!(
        recorded.contains("verified = true")
            && recorded.contains(&format!("{ports_url} noble armhf")),
        "{recorded}"
    );
}

#[test]
fn a_key_outside_the_keyring_is_refused() {
    if !tools_or_skip() {
        return;
    }
    let debs: Vec<Deb> = bookworm_debs().into_iter().take(3).collect();
    let (signer, other) = (Gpg::new("signer"), Gpg::new("someone else"));
    let repo = TempDir::new("aptrepo");
    let tree = Tree::new(&repo.path().join("debian"));
    tree.packages("bookworm", "armhf", &debs);
    let r = Release {
        origin: "Debian",
        suite: "bookworm",
        codename: "bookworm",
        date: now(),
    };
    tree.publish(&signer, "bookworm", &r);
    let server = Server::start();
    let mirror = server.dir("/debian", &tree.dir);
    let home = TempDir::new("chain-key");
    let o = create(home.path(), &mirror, &other.keyring, "x");
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}

/// A fake host below `CARGO_FOR_ARM_APT_ROOT`: these files, and nothing else.
fn fake_host(files: &[(&str, &[u8])]) -> TempDir {
    let root = TempDir::new("aptroot");
    std::fs::create_dir_all(root.path().join("etc")).unwrap();
    for (p, data) in files {
        let f = root.path().join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, data).unwrap();
    }
    root
}

/// An archive shaped like Ubuntu's, signed by a key of the test: `/ubuntu` (amd64) and
/// `/ubuntu-ports` (armhf, arm64), suites noble and noble-updates, one small package `apt`
/// per architecture.
struct UbuntuArchive {
    gpg: Gpg,
    server: Server,
    _dir: TempDir,
}

impl UbuntuArchive {
    fn new() -> UbuntuArchive {
        let dir = TempDir::new("ubuntu-archive");
        let gpg = Gpg::new("Ubuntu test archive");
        let server = Server::start();
        for (tree, arches) in [
            ("ubuntu", &["amd64"][..]),
            ("ubuntu-ports", &["armhf", "arm64"]),
        ] {
            let t = Tree::new(&dir.path().join(tree));
            for dist in ["noble", "noble-updates"] {
                for arch in arches {
                    let deb = common::aptrepo::make_deb(dir.path(), "apt", arch, 1000);
                    t.packages(dist, arch, &[Deb::read(&deb)]);
                }
                let r = Release {
                    origin: "Ubuntu",
                    suite: dist,
                    codename: "noble",
                    date: now(),
                };
                t.publish(&gpg, dist, &r);
            }
            server.dir(&format!("/{tree}"), &t.dir);
        }
        UbuntuArchive {
            gpg,
            server,
            _dir: dir,
        }
    }

    fn url(&self, tree: &str) -> String {
        format!("{}/{tree}", self.server.base)
    }

    fn asked(&self, prefix: &str) -> Vec<String> {
        let log = self.server.log.lock().unwrap();
        let asked = log.requests.iter().map(|(p, _)| p.clone());
        asked.filter(|p| p.starts_with(prefix)).collect()
    }

    fn keyring(&self) -> Vec<u8> {
        std::fs::read(&self.gpg.keyring).unwrap()
    }
}

/// `rootfs create NAME --suite noble --arch ARCH` on the fake host `root`, in a fresh store.
/// The archives hold no essential packages, so a create ends after the packages are fetched
/// and unpacked (nothing can configure them): what is checked is where they came from.
fn create_on(root: &Path, arch: &str, extra: &[&str]) -> std::process::Output {
    Tool::new(&std::env::temp_dir())
        .env("CARGO_FOR_ARM_APT_ROOT", root)
        .args(["rootfs", "create", "u", "--suite", "noble", "--arch", arch])
        .args(["--no-snapshot"])
        .args(extra)
        .output()
}

#[test]
fn an_ubuntu_host_takes_arm_from_its_ports_archive_and_amd64_from_its_main_archive() {
    if !tools_or_skip() {
        return;
    }
    let a = UbuntuArchive::new();
    let sources = format!(
        "Types: deb\nURIs: {}/\nSuites: jammy jammy-updates\nComponents: main universe\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n\n\
         Types: deb\nURIs: {}/\nSuites: noble noble-updates\nComponents: main\nArchitectures: armhf arm64\nSigned-By: /usr/share/keyrings/ubuntu-archive-keyring.gpg\n",
        a.url("ubuntu"),
        a.url("ubuntu-ports")
    );
    let keyring = a.keyring();
    // The host runs another release (jammy): the rootfs's suite is the fixed noble. Only
    // Ubuntu's keyring is on this host.
    let host = fake_host(&[
        ("etc/os-release", b"ID=ubuntu\nVERSION_CODENAME=jammy\n"),
        ("etc/apt/sources.list.d/ubuntu.sources", sources.as_bytes()),
        ("usr/share/keyrings/ubuntu-archive-keyring.gpg", &keyring),
    ]);
    for (arch, tree) in [
        ("armhf", "ubuntu-ports"),
        ("arm64", "ubuntu-ports"),
        ("amd64", "ubuntu"),
    ] {
        let o = create_on(host.path(), arch, &[]);
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "Resolved 1 packages from {} noble {arch}",
                a.url(tree)
            )),
            "{arch}: {err}"
        );
        let debs = a.asked(&format!("/{tree}/pool/"));
        assert!(!debs.is_empty(), "{arch}: no package from /{tree}: {err}");
    }
    assert!(a.asked("/ubuntu/dists/noble/main/binary-armhf").is_empty());
    assert!(a
        .asked("/ubuntu-ports/dists/noble/main/binary-amd64")
        .is_empty());
    // The default rootfs of an emulated build on this host: Ubuntu's fixed suite, by its own
    // name (a build with rustup's armv7 target would want the sysroot variant of it).
    let proj = TempDir::new("ubuntu-default");
    copy_example("hello-arm", proj.path());
    let o = Tool::new(proj.path())
        .env("CARGO_FOR_ARM_APT_ROOT", host.path())
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--mode", "emulate"])
        .output();
    assert!(
        stderr(&o).contains("rootfs create ubuntu-noble-armhf --suite noble --arch armhf"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_ubuntu_host_without_a_ports_entry_uses_its_apt_template_or_says_what_to_set() {
    if !tools_or_skip() {
        return;
    }
    let a = UbuntuArchive::new();
    let sources = format!(
        "Types: deb\nURIs: {}/\nSuites: noble\nComponents: main\n",
        a.url("ubuntu")
    );
    let keyring = a.keyring();
    let base = [
        ("etc/os-release", &b"ID=ubuntu\n"[..]),
        ("etc/apt/sources.list.d/ubuntu.sources", sources.as_bytes()),
        ("usr/share/keyrings/ubuntu-archive-keyring.gpg", &keyring),
    ];
    // No ports entry, no template: an error that names every way out.
    let bare = fake_host(&base);
    let o = create_on(bare.path(), "arm64", &[]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    for needle in [
        "ports archive",
        "--mirror",
        "CARGO_FOR_ARM_MIRROR",
        "mirror = ",
        "--keyring",
        "rootfs pull",
        "rootfs import",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    assert!(
        a.asked("/").is_empty(),
        "asked a server: {:?}",
        a.asked("/")
    );
    // python-apt's template names the ports archive.
    let info = format!(
        "ChangelogURI: http://changelogs.invalid/%s\n\nSuite: noble\nRepositoryType: deb\nBaseURI: {}/\nMatchURI: x\nBaseURI-amd64: {}/\nMatchURI-amd64: y\nDescription: Ubuntu 24.04 LTS\n",
        a.url("ubuntu-ports"),
        a.url("ubuntu")
    );
    let mut files = base.to_vec();
    files.push((
        "usr/share/python-apt/templates/Ubuntu.info",
        info.as_bytes(),
    ));
    let templated = fake_host(&files);
    let o = create_on(templated.path(), "arm64", &[]);
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "Resolved 1 packages from {} noble arm64",
            a.url("ubuntu-ports")
        )),
        "{err}"
    );
}

#[test]
fn a_host_without_apt_needs_a_mirror_and_a_keyring_and_says_so() {
    if !tools_or_skip() {
        return;
    }
    let a = UbuntuArchive::new();
    let fedora = fake_host(&[("etc/os-release", b"ID=fedora\n")]);
    let o = create_on(fedora.path(), "armhf", &[]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    let err = stderr(&o);
    for needle in [
        "no mirror for armhf",
        "--mirror",
        "CARGO_FOR_ARM_MIRROR",
        "mirror = ",
        "--keyring",
        "rootfs pull",
        "rootfs import",
    ] {
        assert!(err.contains(needle), "{needle}: {err}");
    }
    // A mirror per architecture, but no keyring on the host: the error names --keyring.
    let mirrors = format!("amd64={},armhf={}", a.url("ubuntu"), a.url("ubuntu-ports"));
    let o = Tool::new(&std::env::temp_dir())
        .env("CARGO_FOR_ARM_APT_ROOT", fedora.path())
        .env("CARGO_FOR_ARM_MIRROR", &mirrors)
        .args([
            "rootfs", "create", "u", "--suite", "noble", "--arch", "armhf",
        ])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("--keyring") && stderr(&o).contains("ubuntu-keyring"),
        "{}",
        stderr(&o)
    );
    // With the keyring given, the per-architecture mirrors are used.
    for (arch, tree) in [("armhf", "ubuntu-ports"), ("amd64", "ubuntu")] {
        let o = Tool::new(&std::env::temp_dir())
            .env("CARGO_FOR_ARM_APT_ROOT", fedora.path())
            .env("CARGO_FOR_ARM_MIRROR", &mirrors)
            .args([
                "rootfs",
                "create",
                "u",
                "--suite",
                "noble",
                "--arch",
                arch,
                "--no-snapshot",
            ])
            .arg("--keyring")
            .arg(&a.gpg.keyring)
            .output();
        let err = stderr(&o);
        assert!(
            err.contains(&format!(
                "Resolved 1 packages from {} noble {arch}",
                a.url(tree)
            )),
            "{arch}: {err}"
        );
    }
    // A mirror for other architectures only is no mirror for this one.
    let o = Tool::new(&std::env::temp_dir())
        .env("CARGO_FOR_ARM_APT_ROOT", fedora.path())
        .args([
            "rootfs", "create", "u", "--suite", "noble", "--arch", "arm64",
        ])
        .args(["--mirror", &format!("armhf={}", a.url("ubuntu-ports"))])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("no mirror for arm64"), "{}", stderr(&o));
}
