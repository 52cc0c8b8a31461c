//! The environment a build's cargo gets from the host: the variables that tune cargo and
//! rustc pass through (as `cross` does), the ones the tool owns never do.

use anyhow::{bail, Result};

/// Host variables that reach cargo in the sandbox: compiler flags, profile settings,
/// incremental compilation, backtraces and logs.
fn passes(name: &str) -> bool {
    const EXACT: [&str; 6] = [
        "RUSTFLAGS",
        "RUSTDOCFLAGS",
        "CARGO_ENCODED_RUSTFLAGS",
        "CARGO_INCREMENTAL",
        "RUST_BACKTRACE",
        "RUST_LOG",
    ];
    const PREFIXES: [&str; 2] = ["CARGO_PROFILE_", "CARGO_BUILD_"];
    // CARGO_TARGET_<TRIPLE>_RUSTFLAGS; not CARGO_TARGET_DIR, CARGO_TARGET_TMPDIR or linkers.
    let target_flags = name.starts_with("CARGO_TARGET_")
        && (name.ends_with("_RUSTFLAGS") || name.ends_with("_RUSTDOCFLAGS"));
    let listed = EXACT.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p));
    (listed || target_flags) && !owned(name)
}

/// Variables the tool sets itself (where cargo, its home and the target dir are, which
/// target, compiler, linker and runner): from the host, from `--env` or from a project, they
/// would break the build or let a project choose what runs.
pub fn owned(name: &str) -> bool {
    const EXACT: [&str; 9] = [
        "CARGO_HOME",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
        "CARGO_BUILD_TARGET_DIR",
        "CARGO_BUILD_BUILD_DIR",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_NET_OFFLINE",
    ];
    let target_owned = name.starts_with("CARGO_TARGET_")
        && (name.ends_with("_LINKER") || name.ends_with("_RUNNER"));
    // sccache in the sandbox is configured by the tool, from the host's SCCACHE_* (cache.rs).
    EXACT.contains(&name)
        || name.starts_with("CARGO_BUILD_RUSTC")
        || name.starts_with("SCCACHE_")
        || target_owned
}

/// The host's variables that pass, in a stable order.
pub fn from_host(vars: impl Iterator<Item = (String, String)>) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = vars.filter(|(k, _)| passes(k)).collect();
    out.sort();
    out
}

/// `--env K=V` or `env = ["K=V"]` of the project's metadata: refused for what the tool owns.
pub fn parse_assignment(kv: &str, origin: &str) -> Result<(String, String)> {
    let Some((k, v)) = kv.split_once('=').filter(|(k, _)| !k.is_empty()) else {
        bail!("{origin}: {kv:?} is not NAME=VALUE");
    };
    if k.contains('\0') || v.contains('\0') {
        bail!("{origin}: {kv:?} contains NUL");
    }
    if owned(k) {
        bail!("{origin}: {k} is set by cargo-for-arm itself and cannot be given (it chooses the cargo home, target dir, target, compiler, linker, runner and the compile cache's sccache settings)");
    }
    Ok((k.to_string(), v.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn tuning_passes_and_what_the_tool_owns_never_does() {
        let host = pairs(&[
            ("RUSTFLAGS", "-C opt-level=1"),
            ("CARGO_PROFILE_RELEASE_LTO", "true"),
            ("CARGO_BUILD_JOBS", "2"),
            (
                "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS",
                "-C x",
            ),
            ("CARGO_INCREMENTAL", "0"),
            ("RUST_BACKTRACE", "1"),
            ("RUST_LOG", "debug"),
            ("CARGO_HOME", "/home/u/.cargo"),
            ("CARGO_TARGET_DIR", "/t"),
            ("CARGO_TARGET_TMPDIR", "/t/tmp"),
            ("CARGO_BUILD_TARGET", "x"),
            ("CARGO_BUILD_TARGET_DIR", "/t"),
            ("CARGO_BUILD_RUSTC_WRAPPER", "sccache"),
            ("RUSTC", "/bin/rustc"),
            ("RUSTC_WRAPPER", "sccache"),
            ("CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_LINKER", "gcc"),
            ("CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER", "qemu"),
            ("HOME", "/home/u"),
            ("SSH_AUTH_SOCK", "/tmp/agent"),
        ]);
        let names: Vec<String> = from_host(host.into_iter())
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            names,
            [
                "CARGO_BUILD_JOBS",
                "CARGO_INCREMENTAL",
                "CARGO_PROFILE_RELEASE_LTO",
                "CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUSTFLAGS",
                "RUSTFLAGS",
                "RUST_BACKTRACE",
                "RUST_LOG"
            ]
        );
    }

    #[test]
    fn assignments_are_checked() {
        assert_eq!(
            parse_assignment("A=b=c", "--env").unwrap(),
            ("A".into(), "b=c".into())
        );
        assert!(parse_assignment("=x", "--env").is_err());
        let e = parse_assignment("RUSTC_WRAPPER=/x", "env in Cargo.toml").unwrap_err();
        assert!(e.to_string().contains("set by cargo-for-arm"), "{e}");
        // A project cannot reconfigure the cache's sccache (read-only use, backend).
        let e = parse_assignment("SCCACHE_LOCAL_RW_MODE=READ_WRITE", "env in Cargo.toml");
        assert!(e.unwrap_err().to_string().contains("set by cargo-for-arm"));
    }
}
