//! User and group id maps for the sandbox's user namespace.
//!
//! Full map: inside 0 is the invoking user, 1..=65536 the user's subordinate range from
//! `/etc/subuid` and `/etc/subgid`, written by the setuid `newuidmap`/`newgidmap`, so `chown`
//! and package managers work inside. Single map: inside 0 is the user and nothing else is
//! mapped; written by us, with `setgroups` denied first as the kernel requires.

use std::fmt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// How many subordinate ids a full map needs (ids 1..=65536 inside).
pub const FULL_RANGE: u64 = 65536;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapMode {
    Auto,
    Single,
    Full,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdMap {
    Single {
        uid: u32,
        gid: u32,
    },
    Full {
        uid: u32,
        gid: u32,
        subuid: u64,
        subgid: u64,
        newuidmap: PathBuf,
        newgidmap: PathBuf,
    },
}

impl fmt::Display for IdMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IdMap::Single { uid, gid } => write!(f, "single-id map (0 -> {uid}:{gid})"),
            IdMap::Full {
                uid, subuid, gid, subgid, ..
            } => write!(
                f,
                "full map (0 -> {uid}, 1..{FULL_RANGE} -> {subuid}..; gid 0 -> {gid}, 1..{FULL_RANGE} -> {subgid}..)"
            ),
        }
    }
}

/// One `name:start:count` (or `uid:start:count`) line of /etc/subuid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubRange {
    pub start: u64,
    pub count: u64,
}

/// The first range of at least `FULL_RANGE` ids for `name` or `id` in a subuid/subgid file.
pub fn find_range(content: &str, name: &str, id: u32) -> Result<SubRange, String> {
    let mut short = None;
    for line in content.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = line.split(':').collect();
        if parts.len() != 3 {
            continue;
        }
        if parts[0] != name && parts[0] != id.to_string() {
            continue;
        }
        let (Ok(start), Ok(count)) = (parts[1].parse::<u64>(), parts[2].parse::<u64>()) else {
            continue;
        };
        if count >= FULL_RANGE {
            return Ok(SubRange { start, count });
        }
        short = Some(count);
    }
    Err(match short {
        Some(c) => format!("its range has {c} ids, fewer than the {FULL_RANGE} needed"),
        None => "it has no entry".into(),
    })
}

/// Where the id-map helpers and files are; tests point these elsewhere.
#[derive(Debug, Clone)]
pub struct Sources {
    pub subuid: PathBuf,
    pub subgid: PathBuf,
    pub path: Option<String>,
}

impl Default for Sources {
    fn default() -> Self {
        let env = |k: &str, d: &str| PathBuf::from(std::env::var_os(k).unwrap_or_else(|| d.into()));
        Sources {
            // These two variables exist for tests of the diagnostics (a fake /etc/subuid).
            subuid: env("CARGO_FOR_ARM_SUBUID", "/etc/subuid"),
            subgid: env("CARGO_FOR_ARM_SUBGID", "/etc/subgid"),
            path: std::env::var("PATH").ok(),
        }
    }
}

fn find_setuid_helper(name: &str, path: Option<&str>) -> Result<PathBuf, String> {
    let dirs =
        std::env::split_paths(path.unwrap_or("")).chain(["/usr/bin".into(), "/usr/sbin".into()]);
    for dir in dirs {
        let p = dir.join(name);
        if let Ok(md) = std::fs::metadata(&p) {
            let setuid_root = md.mode() & libc::S_ISUID != 0 && md.uid() == 0;
            let has_caps = xattr_present(&p, "security.capability");
            if setuid_root || has_caps {
                return Ok(p);
            }
            return Err(format!(
                "{} is neither setuid root nor has file capabilities (reinstall the 'uidmap' package)",
                p.display()
            ));
        }
    }
    Err(format!(
        "{name} is not installed (Debian/Ubuntu package 'uidmap')"
    ))
}

fn xattr_present(p: &Path, name: &str) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(cp), Ok(cn)) = (
        std::ffi::CString::new(p.as_os_str().as_bytes()),
        std::ffi::CString::new(name),
    ) else {
        return false;
    };
    // SAFETY: size query with a null buffer.
    unsafe { libc::getxattr(cp.as_ptr(), cn.as_ptr(), std::ptr::null_mut(), 0) > 0 }
}

/// Why a full map is not possible, or the full map.
pub fn full_map(
    uid: u32,
    gid: u32,
    user: &str,
    group: &str,
    src: &Sources,
) -> Result<IdMap, String> {
    let newuidmap = find_setuid_helper("newuidmap", src.path.as_deref())?;
    let newgidmap = find_setuid_helper("newgidmap", src.path.as_deref())?;
    let read = |p: &Path| {
        std::fs::read_to_string(p).map_err(|e| format!("{} cannot be read ({e})", p.display()))
    };
    let subuid = find_range(&read(&src.subuid)?, user, uid)
        .map_err(|e| format!("user {user} in {}: {e}", src.subuid.display()))?;
    // newgidmap checks /etc/subgid by user name, not group name.
    let subgid = find_range(&read(&src.subgid)?, user, uid)
        .or_else(|_| find_range(&read(&src.subgid).unwrap_or_default(), group, gid))
        .map_err(|e| format!("user {user} in {}: {e}", src.subgid.display()))?;
    Ok(IdMap::Full {
        uid,
        gid,
        subuid: subuid.start,
        subgid: subgid.start,
        newuidmap,
        newgidmap,
    })
}

fn fix_hint(user: &str) -> String {
    format!(
        "for a full map install 'uidmap' and give {user} ranges, as root: \
         usermod --add-subuids 100000-165535 --add-subgids 100000-165535 {user}"
    )
}

/// Decide the map. `Ok((map, note))`: a note is printed once when auto fell back to single.
pub fn choose(mode: MapMode, src: &Sources) -> Result<(IdMap, Option<String>)> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let user = nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map(|u| u.name)
        .unwrap_or_else(|| uid.to_string());
    let group = nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map(|g| g.name)
        .unwrap_or_else(|| gid.to_string());
    let single = IdMap::Single { uid, gid };
    match mode {
        MapMode::Single => Ok((single, None)),
        MapMode::Full => full_map(uid, gid, &user, &group, src)
            .map(|m| (m, None))
            .map_err(|why| anyhow::anyhow!("--map full is not possible: {why}; {}", fix_hint(&user))),
        MapMode::Auto => Ok(match full_map(uid, gid, &user, &group, src) {
            Ok(m) => (m, None),
            Err(why) => (
                single,
                Some(format!(
                    "using a single-id map (you are root inside, other ids are unmapped): {why}; {}",
                    fix_hint(&user)
                )),
            ),
        }),
    }
}

/// The content written to `/proc/PID/uid_map` and `gid_map` for a single map.
pub fn single_map_lines(uid: u32, gid: u32) -> (String, String) {
    (format!("0 {uid} 1\n"), format!("0 {gid} 1\n"))
}

/// Arguments for newuidmap / newgidmap for a full map.
pub fn full_map_args(pid: i32, id: u32, sub: u64) -> Vec<String> {
    vec![
        pid.to_string(),
        "0".into(),
        id.to_string(),
        "1".into(),
        "1".into(),
        sub.to_string(),
        FULL_RANGE.to_string(),
    ]
}

/// Write the maps of `pid`'s user namespace, from the parent namespace.
pub fn write_maps(map: &IdMap, pid: i32) -> Result<()> {
    match map {
        IdMap::Single { uid, gid } => {
            let (u, g) = single_map_lines(*uid, *gid);
            let proc = PathBuf::from(format!("/proc/{pid}"));
            // Order matters: an unprivileged writer may set gid_map only after setgroups is
            // denied (CVE-2014-8989: dropping groups could otherwise grant access).
            for (file, content) in [
                ("setgroups", "deny"),
                ("uid_map", u.as_str()),
                ("gid_map", g.as_str()),
            ] {
                std::fs::write(proc.join(file), content)
                    .map_err(|e| map_error(&proc.join(file), e))?;
            }
        }
        IdMap::Full {
            uid,
            gid,
            subuid,
            subgid,
            newuidmap,
            newgidmap,
        } => {
            for (tool, id, sub) in [(newuidmap, *uid, *subuid), (newgidmap, *gid, *subgid)] {
                let out = Command::new(tool)
                    .args(full_map_args(pid, id, sub))
                    .output()
                    .with_context(|| format!("running {}", tool.display()))?;
                if !out.status.success() {
                    bail!(
                        "{} {} failed: {}; use --map single, or fix the /etc/subuid and /etc/subgid ranges",
                        tool.display(),
                        full_map_args(pid, id, sub).join(" "),
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
            }
        }
    }
    Ok(())
}

fn map_error(path: &Path, e: std::io::Error) -> anyhow::Error {
    anyhow::anyhow!(
        "writing {} => {e}; the kernel refused the id map. On Ubuntu 23.10+ this is AppArmor: \
         'sysctl kernel.apparmor_restrict_unprivileged_userns=0' or an AppArmor profile with \
         'userns,' for cargo-for-arm; run 'cargo for-arm doctor'",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_ranges_by_name_or_uid_and_rejects_short_ones() {
        let f = "# comment\nalice:100000:65536\n1001:200000:70000\nbob:300000:1000\n";
        assert_eq!(
            find_range(f, "alice", 1000).unwrap(),
            SubRange {
                start: 100000,
                count: 65536
            }
        );
        assert_eq!(find_range(f, "carol", 1001).unwrap().start, 200000);
        assert!(find_range(f, "bob", 1002).unwrap_err().contains("1000 ids"));
        assert!(find_range(f, "dave", 1003)
            .unwrap_err()
            .contains("no entry"));
    }

    #[test]
    fn map_lines() {
        assert_eq!(
            single_map_lines(1000, 1001),
            ("0 1000 1\n".to_string(), "0 1001 1\n".to_string())
        );
        assert_eq!(
            full_map_args(42, 1000, 100000),
            ["42", "0", "1000", "1", "1", "100000", "65536"]
        );
    }

    #[test]
    fn missing_subuid_file_is_named() {
        let src = Sources {
            subuid: "/nonexistent/subuid".into(),
            subgid: "/nonexistent/subgid".into(),
            path: Some("/usr/bin".into()),
        };
        match full_map(1000, 1000, "alice", "alice", &src) {
            Err(why) => assert!(
                why.contains("/nonexistent/subuid") || why.contains("uidmap"),
                "{why}"
            ),
            Ok(m) => panic!("full map from a missing file: {m}"),
        }
    }
}
