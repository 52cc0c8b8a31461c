//! The artifact report: for each ELF a build produced, its machine, the glibc it needs (the
//! highest `GLIBC_x.y` symbol version, its "glibc floor") and its `NEEDED` libraries.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use object::elf;
use object::read::elf::{Dyn, FileHeader};
use object::Endianness;

use crate::arch::elf_info;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Artifact {
    pub path: PathBuf,
    pub machine: String,
    /// `None` for a static binary.
    pub glibc_floor: Option<(u32, u32)>,
    pub needed: Vec<String>,
    pub dynamic: bool,
}

impl Artifact {
    pub fn floor_text(&self) -> String {
        match (self.dynamic, self.glibc_floor) {
            (false, _) => "static".into(),
            (true, Some((a, b))) => format!("glibc >= {a}.{b}"),
            (true, None) => "no versioned glibc symbols".into(),
        }
    }

    pub fn warnings(&self) -> Vec<String> {
        self.needed
            .iter()
            .filter(|n| n.starts_with("libssl.so") || n.starts_with("libcrypto.so"))
            .map(|n| format!("links {n} dynamically: the device needs that exact OpenSSL (consider rustls or a vendored OpenSSL)"))
            .collect()
    }
}

/// Parse `GLIBC_2.34` into (2, 34).
pub fn glibc_version(name: &str) -> Option<(u32, u32)> {
    let v = name.strip_prefix("GLIBC_")?;
    let mut it = v.split('.');
    let major = it.next()?.parse().ok()?;
    let minor = it.next().map_or(Some(0), |m| m.parse().ok())?;
    Some((major, minor))
}

/// What an ELF links against: NEEDED libraries, the glibc floor, whether it is dynamic.
type Linkage = (Vec<String>, Option<(u32, u32)>, bool);

fn inspect_elf<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> object::read::Result<Linkage> {
    let header = H::parse(data)?;
    let endian = header.endian()?;
    let sections = header.sections(endian, data)?;
    let mut needed = Vec::new();
    let mut dynamic = false;
    if let Some((dyns, link)) = sections.dynamic(endian, data)? {
        dynamic = true;
        let strings = sections.strings(endian, data, link)?;
        for d in dyns {
            if d.tag32(endian) == Some(elf::DT_NEEDED) {
                if let Some(v) = d.val32(endian) {
                    if let Ok(s) = strings.get(v) {
                        needed.push(String::from_utf8_lossy(s).into_owned());
                    }
                }
            }
        }
    }
    let mut floor = None;
    if let Some((mut iter, link)) = sections.gnu_verneed(endian, data)? {
        let strings = sections.strings(endian, data, link)?;
        while let Some((_, mut auxs)) = iter.next()? {
            while let Some(aux) = auxs.next()? {
                let name = String::from_utf8_lossy(aux.name(endian, strings)?).into_owned();
                if let Some(v) = glibc_version(&name) {
                    floor = floor.max(Some(v));
                }
            }
        }
    }
    Ok((needed, floor, dynamic))
}

/// Inspect one file of the host (the tool's own binary); `None` if it is not an ELF
/// executable or shared object.
pub fn inspect(path: &Path) -> Option<Artifact> {
    inspect_bytes(path, &std::fs::read(path).ok()?)
}

fn inspect_bytes(path: &Path, data: &[u8]) -> Option<Artifact> {
    let info = elf_info(data).ok()?;
    let parsed = match data[4] {
        1 => inspect_elf::<elf::FileHeader32<Endianness>>(data),
        _ => inspect_elf::<elf::FileHeader64<Endianness>>(data),
    };
    let (needed, glibc_floor, dynamic) = parsed.ok()?;
    Some(Artifact {
        path: path.to_path_buf(),
        machine: info.describe(),
        glibc_floor,
        needed,
        dynamic: dynamic || info.interpreter.is_some(),
    })
}

/// Artifacts larger than this are not read (a build could leave a huge sparse file).
const MAX_ARTIFACT: u64 = 1 << 30;

/// The ELF files of a build in `target_dir/profile` (the target dir the host made; what is
/// below it a sandbox wrote, so it is read beneath it without following symlinks, regular
/// files only): binaries and cdylibs at its top, and when `tests` is set the test
/// executables in `deps/` that this build wrote (changed since `since`: `deps/` keeps every
/// old hash-suffixed executable too).
pub fn collect(target_dir: &Path, profile: &Path, since: SystemTime, tests: bool) -> Vec<Artifact> {
    let mut out = Vec::new();
    let mut scan = |rel: &Path, only_exec: bool, since: Option<SystemTime>| {
        let Ok(dir) = crate::hostfs::open_dir(target_dir, rel) else {
            return;
        };
        for name in crate::hostfs::names(&dir) {
            let name = Path::new(&name);
            let is_so = name.extension().is_some_and(|e| e == "so");
            let Some((f, st)) = crate::hostfs::open_regular(&dir, name) else {
                continue;
            };
            let is_exec = st.st_mode & 0o111 != 0;
            if !(is_exec || (is_so && !only_exec)) {
                continue;
            }
            let modified = SystemTime::UNIX_EPOCH
                + std::time::Duration::new(st.st_mtime as u64, st.st_mtime_nsec as u32);
            if since.is_some_and(|s| modified < s) {
                continue;
            }
            let path = target_dir.join(rel).join(name);
            if st.st_size as u64 > MAX_ARTIFACT {
                crate::ui::warn(format_args!("{} is too large to inspect", path.display()));
                continue;
            }
            let mut data = Vec::new();
            use std::io::Read;
            if f.take(MAX_ARTIFACT).read_to_end(&mut data).is_err() {
                continue;
            }
            if let Some(a) = inspect_bytes(&path, &data) {
                out.push(a);
            }
        }
    };
    scan(profile, false, None);
    if tests {
        scan(&profile.join("deps"), true, Some(since));
    }
    out
}

pub fn print_human(artifacts: &[Artifact]) {
    if artifacts.is_empty() {
        crate::ui::status("Report", "no ELF artifacts");
    }
    for a in artifacts {
        crate::ui::status("Artifact", a.path.display());
        crate::ui::detail(format_args!("{}; {}", a.machine, a.floor_text()));
        if !a.needed.is_empty() {
            crate::ui::detail(format_args!("needs {}", a.needed.join(", ")));
        }
        for w in a.warnings() {
            crate::ui::warn(w);
        }
    }
}

#[derive(serde::Serialize)]
struct JsonArtifact<'a> {
    reason: &'static str,
    path: &'a Path,
    machine: &'a str,
    #[serde(rename = "static")]
    is_static: bool,
    glibc_floor: Option<String>,
    needed: &'a [String],
}

/// One JSON object per artifact, one per line (like cargo's `--message-format json`).
pub fn print_json(artifacts: &[Artifact]) -> Result<()> {
    for a in artifacts {
        let j = JsonArtifact {
            reason: "cargo-for-arm-artifact",
            path: &a.path,
            machine: &a.machine,
            is_static: !a.dynamic,
            glibc_floor: a
                .glibc_floor
                .filter(|_| a.dynamic)
                .map(|(x, y)| format!("{x}.{y}")),
            needed: &a.needed,
        };
        println!("{}", serde_json::to_string(&j)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glibc_versions_parse_and_order() {
        assert_eq!(glibc_version("GLIBC_2.34"), Some((2, 34)));
        assert_eq!(glibc_version("GLIBC_2.4"), Some((2, 4)));
        assert_eq!(glibc_version("GLIBC_PRIVATE"), None);
        assert!(Some((2, 34)) > Some((2, 4)));
    }

    #[test]
    fn own_test_binary_has_a_glibc_floor_and_needs_libc() {
        let me = std::env::current_exe().unwrap();
        let a = inspect(&me).unwrap();
        assert!(a.dynamic);
        assert!(
            a.needed.iter().any(|n| n.starts_with("libc.so")),
            "{:?}",
            a.needed
        );
        let (major, minor) = a.glibc_floor.unwrap();
        assert_eq!(major, 2);
        assert!(minor >= 2);
    }

    #[test]
    fn ssl_warning() {
        let a = Artifact {
            path: "x".into(),
            machine: "arm".into(),
            glibc_floor: Some((2, 28)),
            needed: vec!["libssl.so.3".into(), "libc.so.6".into()],
            dynamic: true,
        };
        assert_eq!(a.warnings().len(), 1);
        assert_eq!(a.floor_text(), "glibc >= 2.28");
    }
}
