//! Containment of a hostile build: tests/support/hostile is a crate whose build script tries
//! to reach the host and later builds through everything a build can write (a toolchain
//! override and a cargo config in the project, a deleted Cargo.lock, a poisoned cargo home,
//! the rootfs's /usr and /etc). It is built twice in emulate mode and twice in native mode,
//! with the store reached through a symlink; then an innocent project is built. Nothing may
//! have run on the host (the planted code would create a marker in the host's /tmp), no
//! stored rootfs may have changed, and the innocent build must pick nothing up.

mod common;

use std::path::{Path, PathBuf};

use common::*;

fn hostile_project(marker: &Path) -> TempDir {
    let dir = TempDir::new("hostile");
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/hostile");
    let st = std::process::Command::new("cp")
        .arg("-r")
        .arg(format!("{}/.", src.display()))
        .arg(dir.path())
        .status()
        .unwrap();
    assert!(st.success());
    let manifest = dir.path().join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let text = text.replace("\"MARKER\"", &format!("{:?}", marker.to_string_lossy()));
    std::fs::write(&manifest, text).unwrap();
    dir
}

/// What the project holds: every file name below it except the target dir.
fn listing(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(base).unwrap().to_string_lossy().into_owned();
            if rel == "target" {
                continue;
            }
            out.push(rel);
            if e.file_type().unwrap().is_dir() {
                walk(base, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

fn build(project: &Path, store: &Path, mode: &str, rootfs: &str) -> std::process::Output {
    Tool::new(project)
        .home(store)
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .args(["build", "--mode", mode, "--rootfs", rootfs])
        .output()
}

#[test]
fn a_hostile_build_reaches_neither_the_host_nor_the_store_nor_the_next_build() {
    let (real_store, tools, arm) = native_fixtures("bookworm", "armhf");
    let t = TempDir::new("contain");
    // The store through a symlink: "stored" must be decided on the resolved path.
    let store = t.path().join("store-link");
    std::os::unix::fs::symlink(&real_store, &store).unwrap();
    let marker = t.path().join("host-ran-planted-code");
    let stored = |name: &str| real_store.join("rootfs").join(name).join("root");
    for root in [stored(&arm), stored(&tools)] {
        assert!(!root.join("usr/bin/cfa-hostile").exists());
    }
    let p = hostile_project(&marker);
    let before = listing(p.path());
    assert!(before.contains(&"Cargo.lock".to_string()), "{before:?}");
    for mode in ["emulate", "native"] {
        for round in 0..2 {
            let o = build(p.path(), &store, mode, &arm);
            let err = stderr(&o);
            assert!(o.status.success(), "{mode} build {round} failed:\n{err}");
            // The build script ran, and was refused what matters.
            for refused in [
                "toolchain-override: refused",
                "project-cargo-config: refused",
                "delete-lockfile: refused",
            ] {
                assert!(err.contains(refused), "{mode}: {refused} missing:\n{err}");
            }
            assert!(
                !marker.exists(),
                "the host ran code a {mode} build planted:\n{err}"
            );
            assert_eq!(
                listing(p.path()),
                before,
                "a {mode} build changed the project"
            );
        }
    }
    for root in [stored(&arm), stored(&tools)] {
        assert!(
            !root.join("usr/bin/cfa-hostile").exists(),
            "{}",
            root.display()
        );
        assert!(!root.join("etc/cfa-hostile").exists(), "{}", root.display());
    }
    // Nothing the hostile builds wrote outside the project is left for the next build.
    let leftovers: Vec<PathBuf> = std::fs::read_dir(real_store.join("run"))
        .map(|rd| rd.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // An innocent project builds after it, in both modes, and runs nothing planted.
    let innocent = TempDir::new("innocent");
    copy_example("hello-arm", innocent.path());
    for mode in ["emulate", "native"] {
        let o = build(innocent.path(), &store, mode, &arm);
        assert!(o.status.success(), "innocent {mode} build:\n{}", stderr(&o));
        assert!(!stderr(&o).contains("hostile"), "{}", stderr(&o));
        assert!(
            !marker.exists(),
            "the innocent {mode} build ran planted code"
        );
    }
}
