// Host code: runs natively in native mode. It compiles C for the *target* and looks zlib up
// in the target's pkg-config directories.
fn main() {
    cc::Build::new().file("src/answer.c").compile("answer");
    let zlib = pkg_config::Config::new()
        .probe("zlib")
        .expect("zlib's pkg-config file (install zlib1g-dev in the ARM rootfs)");
    println!("cargo:rustc-env=SAMPLE_ZLIB_PKG_VERSION={}", zlib.version);
    println!("cargo:rerun-if-changed=src/answer.c");
    // tests/ladder.rs: a build script that writes where it should not (Landlock must refuse).
    println!("cargo:rerun-if-env-changed=LADDER_PROBE_WRITE");
    if let Ok(p) = std::env::var("LADDER_PROBE_WRITE") {
        let r = std::fs::write(&p, "written by a build script\n");
        println!(
            "cargo:warning=ladder probe write {p}: {}",
            match r {
                Ok(()) => "written".to_string(),
                Err(e) => format!("refused ({e})"),
            }
        );
    }
}
