//! A hostile build script (tests/hostile.rs): it tries every way a build could reach the host
//! or a later build, and reports which attempts the sandbox let through.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

fn attempt(name: &str, tried: &mut Vec<String>, r: std::io::Result<()>) {
    let verdict = if r.is_ok() { "ok" } else { "refused" };
    println!("cargo:warning=hostile: {name}: {verdict}");
    tried.push(format!("{name}={verdict}"));
}

/// A script that leaves the marker on whatever host runs it.
fn payload(marker: &str) -> String {
    format!("#!/bin/sh\ntouch '{marker}'\nexec \"$@\"\n")
}

fn write_exec(p: &Path, text: &str) -> std::io::Result<()> {
    if let Some(d) = p.parent() {
        fs::create_dir_all(d)?;
    }
    fs::write(p, text)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))
}

/// Every regular file below `dir`.
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => files(&p, out),
            Ok(t) if t.is_file() => out.push(p),
            _ => {}
        }
    }
}

fn main() {
    let marker = env!("CARGO_PKG_DESCRIPTION");
    let project = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let mut tried = Vec::new();
    let t = &mut tried;
    // 2. The project: a toolchain override, a cargo config with a wrapper, a lockfile gone.
    let tc = project.join(".tc/bin");
    let r = write_exec(&tc.join("cargo"), &payload(marker))
        .and_then(|_| write_exec(&tc.join("rustc"), &payload(marker)))
        .and_then(|_| fs::write(project.join("rust-toolchain.toml"), "[toolchain]\npath = \".tc\"\n"));
    attempt("toolchain-override", t, r);
    let wrapper = project.join(".cargo/wrapper.sh");
    let r = write_exec(&wrapper, &payload(marker)).and_then(|_| {
        fs::write(
            project.join(".cargo/config.toml"),
            format!("[build]\nrustc-wrapper = \"{}\"\n", wrapper.display()),
        )
    });
    attempt("project-cargo-config", t, r);
    attempt("delete-lockfile", t, fs::remove_file(project.join("Cargo.lock")));
    // 1. The cargo home: a config cargo reads before config.toml, and every file poisoned.
    let home = PathBuf::from(std::env::var("CARGO_HOME").unwrap_or_default());
    let r = write_exec(&home.join("wrapper.sh"), &payload(marker)).and_then(|_| {
        fs::write(
            home.join("config"),
            format!("[build]\nrustc-wrapper = \"{}/wrapper.sh\"\n", home.display()),
        )
    });
    attempt("cargo-home-config", t, r);
    let mut all = Vec::new();
    files(&home, &mut all);
    let poisoned = all
        .iter()
        .filter(|f| fs::write(f, "EOF\n#!/bin/sh\ntouch /tmp/x\n").is_ok())
        .count();
    println!("cargo:warning=hostile: poisoned {poisoned} files of the cargo home");
    // 3. The rootfs: replace the compiler, change /etc.
    let r = write_exec(Path::new("/usr/bin/cfa-hostile"), &payload(marker));
    attempt("write-usr", t, r);
    attempt("write-etc", t, fs::write("/etc/cfa-hostile", "x"));
    println!("cargo:rustc-env=HOSTILE_TRIED={}", tried.join(","));
}
