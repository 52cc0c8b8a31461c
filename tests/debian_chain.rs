//! The Debian chain of `rootfs create` end to end, against signed apt repositories made by
//! the test (its own gpg key, `InRelease` and `Packages` indices over real `.deb`s) served on
//! 127.0.0.1: a bootstrap that works, then a replayed older index and another suite's index
//! under the asked name, both refused.

mod common;

use std::path::{Path, PathBuf};

use common::aptrepo::{debs_in, now, Deb, Gpg, Release, Tree};
use common::http::Server;
use common::*;

/// Core tests: they skip only outside CI, saying why.
fn tools_or_skip() -> bool {
    if let Some(why) = common::aptrepo::tools_present() {
        assert!(!in_ci(), "{why}");
        eprintln!("skipped: {why}");
        return false;
    }
    true
}

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
    assert!(entry(home.path(), "newer").is_file());
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
