//! The cargo-like front end of builds: the environment that reaches cargo, path dependencies
//! outside the workspace, the project's `for-arm` metadata. Native mode with the cached
//! fixtures of tests/native.rs (fast: nothing is emulated but what runs).

mod common;

use std::path::Path;

use common::*;

fn write(p: &Path, text: &str) {
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// `app` (the workspace) with a build script that reports the variables it sees, and a path
/// dependency `../dep` outside it.
fn projects(t: &Path, metadata: &str) -> std::path::PathBuf {
    let app = t.join("app");
    write(
        &app.join("Cargo.toml"),
        &format!(
            "[package]\nname = \"app\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[dependencies]\ndep = {{ path = \"../dep\" }}\n\n[package.metadata.for-arm]\n{metadata}\n\n[workspace]\n"
        ),
    );
    write(
        &app.join("build.rs"),
        r#"fn main() {
    for k in ["RUST_LOG", "CARGO_PROFILE_DEV_DEBUG", "FROM_FLAG", "FROM_METADATA", "SSH_AUTH_SOCK", "RUSTC_WRAPPER"] {
        println!("cargo:warning=seen {k}={:?}", std::env::var(k).ok());
    }
}
"#,
    );
    write(
        &app.join("src/main.rs"),
        "fn main() { println!(\"{}\", dep::answer()); }\n",
    );
    write(
        &t.join("dep/Cargo.toml"),
        "[package]\nname = \"dep\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    );
    write(&t.join("dep/src/lib.rs"), "pub fn answer() -> u32 { 42 }\n");
    app
}

#[test]
fn the_build_sees_the_tuning_environment_and_path_dependencies_outside_the_workspace() {
    let (store, _tools, arm) = native_fixtures("bookworm", "armhf");
    let t = TempDir::new("frontend");
    let app = projects(
        t.path(),
        "env = [\"FROM_METADATA=m\"]\nmoed = \"native\"\nnetwork = \"host\"",
    );
    let o = Tool::new(&app)
        .home(&store)
        .env("CARGO_FOR_ARM_NATIVE_RUSTC", "rootfs")
        .env("RUST_LOG", "trace")
        .env("CARGO_PROFILE_DEV_DEBUG", "0")
        .env("SSH_AUTH_SOCK", "/tmp/agent")
        // The tool owns the compiler wrapper: a host value never reaches cargo.
        .env("RUSTC_WRAPPER", "/nonexistent/wrapper")
        .args([
            "build",
            "--mode",
            "native",
            "--rootfs",
            &arm,
            "--env",
            "FROM_FLAG=f",
        ])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for seen in [
        "seen RUST_LOG=Some(\"trace\")",
        "seen CARGO_PROFILE_DEV_DEBUG=Some(\"0\")",
        "seen FROM_FLAG=Some(\"f\")",
        "seen FROM_METADATA=Some(\"m\")",
        "seen SSH_AUTH_SOCK=None",
        "seen RUSTC_WRAPPER=None",
    ] {
        assert!(err.contains(seen), "{seen} missing:\n{err}");
    }
    // The typo and the key a project may not set are named, with the manifest.
    assert!(err.contains("unknown key `moed`"), "{err}");
    assert!(
        err.contains("`network`") && err.contains("only you set it"),
        "{err}"
    );
    // The path dependency outside the workspace was there (read-only), and it built.
    let bin = app.join("target/armv7-unknown-linux-gnueabihf/debug/app");
    assert_eq!(elf_machine(&bin), 40);
    let o = Tool::new(&app)
        .home(&store)
        .args(["run", "--rootfs", &arm, "--", bin.to_str().unwrap()])
        .output();
    assert_eq!(stdout(&o).trim(), "42", "{}", stderr(&o));
    // A variable the tool owns is refused from --env, naming why.
    let o = Tool::new(&app)
        .home(&store)
        .args(["build", "--rootfs", &arm, "--env", "CARGO_HOME=/x"])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("set by cargo-for-arm itself"),
        "{}",
        stderr(&o)
    );
}

/// An ARM rootfs whose `cargo` is a script that says how it was called: the emulated path
/// of a build, without an emulated compiler.
fn fake_cargo_rootfs(into: &Path) -> std::path::PathBuf {
    let rootfs = rootfs_copy("busybox-armhf", into);
    let cargo = rootfs.join("usr/bin/cargo");
    write(&cargo, "#!/bin/sh\necho \"fake cargo $*\" >&2\n");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&cargo, std::fs::Permissions::from_mode(0o755)).unwrap();
    rootfs
}

/// A project without dependencies, with its lockfile and `metadata` in its manifest.
fn plain_project(dir: &Path, metadata: &str) {
    write(
        &dir.join("Cargo.toml"),
        &format!("[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n[package.metadata.for-arm]\n{metadata}\n\n[workspace]\n"),
    );
    write(
        &dir.join("Cargo.lock"),
        "version = 3\n\n[[package]]\nname = \"p\"\nversion = \"0.1.0\"\n",
    );
    write(&dir.join("src/main.rs"), "fn main() {}\n");
}

#[test]
fn project_metadata_sets_the_mode_and_the_hang_timeout() {
    let t = TempDir::new("meta");
    fake_cargo_rootfs(t.path());
    let app = t.path().join("app");
    plain_project(
        &app,
        "rootfs = \"../rootfs\"\nmode = \"emulate\"\nhang-timeout = 600",
    );
    let o = Tool::new(&app).args(["build", "--release"]).output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("mode emulate (asked for)"), "{err}");
    assert!(err.contains("fake cargo build --release"), "{err}");
    // The value is read (and checked) from the manifest that set it.
    plain_project(&app, "rootfs = \"../rootfs\"\nhang-timeout = \"soon\"");
    let o = Tool::new(&app).args(["build"]).output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("soon") && err.contains(&app.join("Cargo.toml").display().to_string()),
        "{err}"
    );
}

#[test]
fn packages_of_a_project_make_a_default_rootfs_of_their_own() {
    let t = TempDir::new("packages");
    let app = t.path().join("app");
    plain_project(&app, "packages = [\"zlib1g-dev\", \"libssl-dev\"]");
    // Offline, the tool says which store entry it would create, with which packages (the
    // emulated default; native mode's sysroot with a rustup toolchain: tests/native.rs).
    let o = Tool::new(&app)
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .env("CARGO_FOR_ARM_MODE", "emulate")
        .args(["build"])
        .output();
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(125), "{err}");
    assert!(
        err.contains("rootfs create debian-bookworm-armhf-"),
        "{err}"
    );
    assert!(
        err.contains("--include cargo,libssl-dev,zlib1g-dev"),
        "{err}"
    );
    // With a rootfs of the user's, packages cannot be added for them: said, with the fix.
    let o = Tool::new(&app)
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build", "--rootfs", "/nonexistent"])
        .output();
    assert!(
        stderr(&o).contains("adds to the default rootfs only"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn an_emulated_cargo_with_only_qemu_7_2_is_warned_or_given_a_newer_one() {
    let t = TempDir::new("qemu72");
    fake_cargo_rootfs(t.path());
    let app = t.path().join("app");
    plain_project(&app, "rootfs = \"../rootfs\"\nmode = \"emulate\"");
    let o = Tool::new(&app)
        .no_qemu()
        .path_first(&fixture("qemu-old"))
        .env("CARGO_FOR_ARM_OFFLINE", "1")
        .args(["build"])
        .output();
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("qemu 7.2")
            && err.contains("may deadlock")
            && err.contains("CARGO_FOR_ARM_OFFLINE"),
        "{err}"
    );
}

#[test]
fn doctor_checks_what_the_default_build_needs() {
    let t = TempDir::new("doctor");
    let o = Tool::new(t.path())
        .hide(&["cargo"])
        .args(["doctor"])
        .output();
    let out = format!("{}{}", stdout(&o), stderr(&o));
    assert!(out.contains("a rootfs for builds"), "{out}");
    assert!(
        out.contains("host cargo") && out.contains("no cargo on PATH"),
        "{out}"
    );
}
