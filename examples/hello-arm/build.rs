// A build script, as real crates have: it runs inside the sandbox and records the target.
fn main() {
    let target = std::env::var("TARGET").unwrap_or_default();
    println!("cargo:rustc-env=HELLO_BUILT_FOR={target}");
    println!("cargo:rerun-if-changed=build.rs");
}
