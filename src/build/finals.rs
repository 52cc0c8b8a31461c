//! One output path in every mode: cargo works in the tool's own directory
//! (`target/for-arm/<flavour>/…`, where host units compiled in a sandbox — build scripts,
//! proc-macro `.so` — stay away from the user's own cargo), and the final artifacts are
//! copied out, host side, into cargo's cross layout `target/<triple>/<profile>/`.
//!
//! What is copied a sandbox wrote, so it is read like every such file (`hostfs`: beneath a
//! directory the host opened, no symlinks, regular files only, bounded); the destination is
//! made by the host component by component refusing symlinks, and each file is written to
//! a fresh temporary name (`O_EXCL|O_NOFOLLOW`) in the opened destination directory, then
//! renamed over the final name: a symlink planted there is replaced, never followed, and
//! nothing is half-written. A final whose size and mtime match the copy is left alone, so a
//! no-op build copies nothing.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use nix::fcntl::{openat, renameat, AtFlags, OFlag};
use nix::sys::stat::{fchmod, fstatat, futimens, Mode, SFlag};
use nix::sys::time::TimeSpec;
use nix::unistd::unlinkat;

/// Files larger than this are not copied (a build could leave a huge sparse file).
pub const MAX_FINAL: u64 = 1 << 32;
/// Nor more than this in all, per build (many large files would fill the disk as well).
pub const MAX_TOTAL: u64 = 1 << 34;

/// What to copy from one profile directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Select {
    /// Test and bench executables (`deps/<name>-<hash>`), for `test`, `bench`, `--tests` ….
    pub tests: bool,
}

/// Which files of a directory are finals: by name and whether executable.
type Keep = fn(&str, bool) -> bool;

/// Whether `name` ends in cargo's `-<16 hex digits>` metadata hash.
fn hashed(name: &str) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    match stem.rsplit_once('-') {
        Some((_, h)) => h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

/// Is this file of a profile directory's top level (or `examples/`) a final artifact:
/// binaries, cdylibs, staticlibs, rlibs — not cargo's `.d` files, locks or hashed copies.
fn is_final(name: &str, exec: bool, in_examples: bool) -> bool {
    if name.starts_with('.') || (in_examples && hashed(name)) {
        return false;
    }
    let ext = Path::new(name).extension().and_then(OsStr::to_str);
    match ext {
        Some("so" | "a" | "rlib" | "wasm") => true,
        Some("d" | "rmeta" | "json" | "o" | "dwp" | "pdb") => false,
        _ => exec,
    }
}

/// A test executable in `deps/`: executable, hashed, without an extension.
fn is_test_exe(name: &str, exec: bool) -> bool {
    exec && hashed(name) && !name.contains('.')
}

/// Copy the finals of `src_base/src_rel` (a directory a sandbox wrote; `src_base` the host
/// made) into `dst_base/dst_rel` (made here). Returns the final paths, sorted.
pub fn copy_out(
    src_base: &Path,
    src_rel: &Path,
    dst_base: &Path,
    dst_rel: &Path,
    sel: Select,
) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut total = 0u64;
    let dst_dir = dst_base.join(dst_rel);
    let mut parts: Vec<(Option<&str>, Keep)> = vec![
        (None, |n, x| is_final(n, x, false)),
        (Some("examples"), |n, x| is_final(n, x, true)),
    ];
    if sel.tests {
        parts.push((Some("deps"), is_test_exe));
    }
    for (sub, keep) in parts {
        let from = match sub {
            None => crate::hostfs::open_dir(src_base, src_rel).ok(),
            Some(s) => crate::hostfs::open_dir(src_base, &src_rel.join(s)).ok(),
        };
        let Some(from) = from else { continue };
        let mut to: Option<OwnedFd> = None;
        for name in crate::hostfs::names(&from) {
            let Some(n) = name.to_str() else { continue };
            let Some((file, st)) = crate::hostfs::open_regular(&from, Path::new(&name)) else {
                continue;
            };
            if !keep(n, st.st_mode & 0o111 != 0) {
                continue;
            }
            total = total.saturating_add(st.st_size as u64);
            if st.st_size as u64 > MAX_FINAL || total > MAX_TOTAL {
                crate::ui::warn(format_args!(
                    "{} is too large to copy to {} (at most 4 GiB a file, 16 GiB in all)",
                    src_base
                        .join(src_rel)
                        .join(sub.unwrap_or(""))
                        .join(n)
                        .display(),
                    dst_dir.display()
                ));
                continue;
            }
            if to.is_none() {
                let rel = match sub {
                    None => dst_rel.to_path_buf(),
                    Some(s) => dst_rel.join(s),
                };
                crate::hostfs::make_dirs(dst_base, &rel)?;
                to = Some(crate::hostfs::open_dir(dst_base, &rel)?);
            }
            let to = to.as_ref().expect("opened above");
            copy_one(file, &st, to, n).with_context(|| {
                format!(
                    "copying {n} to {}",
                    dst_dir.join(sub.unwrap_or("")).display()
                )
            })?;
            out.push(dst_dir.join(sub.unwrap_or("")).join(n));
        }
    }
    out.sort();
    Ok(out)
}

/// Copy one opened regular file into the directory `to` as `name`, atomically; unchanged
/// (same size and mtime, a regular file) it is left alone.
fn copy_one(
    file: std::fs::File,
    st: &nix::sys::stat::FileStat,
    to: &OwnedFd,
    name: &str,
) -> Result<()> {
    if let Ok(d) = fstatat(to.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        let regular = SFlag::from_bits_truncate(d.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG;
        if regular
            && d.st_size == st.st_size
            && d.st_mtime == st.st_mtime
            && d.st_mtime_nsec == st.st_mtime_nsec
            && d.st_mode & 0o7777 == st.st_mode & 0o755
        {
            return Ok(());
        }
    }
    let tmp = format!(".{name}.cfa-{}", std::process::id());
    let _ = unlinkat(
        to.as_fd(),
        tmp.as_str(),
        nix::unistd::UnlinkatFlags::NoRemoveDir,
    );
    let fd = openat(
        to.as_fd(),
        tmp.as_str(),
        OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .with_context(|| format!("creating {tmp}"))?;
    let written = (|| -> Result<()> {
        let mut dst = std::fs::File::from(fd);
        let copied = std::io::copy(&mut file.take(MAX_FINAL + 1), &mut dst)?;
        if copied != st.st_size as u64 {
            bail!("{name} changed while it was copied");
        }
        // Only the permission bits a build output has; never set-id bits.
        fchmod(&dst, Mode::from_bits_truncate(st.st_mode & 0o755))?;
        let at = |s: i64, ns: i64| TimeSpec::new(s, ns);
        futimens(
            &dst,
            &at(st.st_atime, st.st_atime_nsec),
            &at(st.st_mtime, st.st_mtime_nsec),
        )?;
        renameat(to.as_fd(), tmp.as_str(), to.as_fd(), name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = unlinkat(
            to.as_fd(),
            tmp.as_str(),
            nix::unistd::UnlinkatFlags::NoRemoveDir,
        );
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn finals_are_told_from_cargo_internals() {
        assert!(is_final("hello", true, false));
        assert!(!is_final("hello.d", false, false));
        assert!(!is_final(".cargo-lock", false, false));
        assert!(is_final("libfoo.so", true, false));
        assert!(is_final("libfoo.a", false, false));
        assert!(!is_final("notes.txt", false, false));
        assert!(is_final("demo", true, true));
        assert!(!is_final("demo-0123456789abcdef", true, true));
        assert!(is_test_exe("hello_arm-0123456789abcdef", true));
        assert!(!is_test_exe("libfoo-0123456789abcdef.so", true));
        assert!(!is_test_exe("build_script_build-0123456789abcdef", false));
    }

    #[test]
    fn copies_are_atomic_never_follow_symlinks_and_skip_unchanged() {
        let t = std::env::temp_dir().join(format!("cfa-finals-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let src = t.join("work/release");
        std::fs::create_dir_all(src.join("deps")).unwrap();
        std::fs::create_dir_all(src.join("examples")).unwrap();
        let exe = |p: PathBuf, text: &str| {
            std::fs::write(&p, text).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o4755)).unwrap();
        };
        exe(src.join("app"), "binary");
        std::fs::write(src.join("app.d"), "deps").unwrap();
        exe(src.join("examples/demo"), "demo");
        exe(src.join("examples/demo-0123456789abcdef"), "demo");
        exe(src.join("deps/app-0123456789abcdef"), "test");
        std::fs::write(t.join("secret"), "secret").unwrap();
        std::os::unix::fs::symlink(t.join("secret"), src.join("linked")).unwrap();
        // A symlink planted where a final goes is replaced, its target untouched.
        let dst = t.join("out");
        std::fs::create_dir_all(dst.join("arm/release")).unwrap();
        std::os::unix::fs::symlink(t.join("secret"), dst.join("arm/release/app")).unwrap();
        let sel = Select { tests: false };
        let got = copy_out(
            &t.join("work"),
            Path::new("release"),
            &dst,
            Path::new("arm/release"),
            sel,
        )
        .unwrap();
        let r = dst.join("arm/release");
        assert_eq!(got, vec![r.join("app"), r.join("examples/demo")]);
        assert_eq!(std::fs::read_to_string(t.join("secret")).unwrap(), "secret");
        assert_eq!(std::fs::read_to_string(r.join("app")).unwrap(), "binary");
        let mode = std::fs::symlink_metadata(r.join("app")).unwrap();
        assert!(mode.file_type().is_file());
        assert_eq!(mode.permissions().mode() & 0o7777, 0o755);
        assert!(!r.join("deps").exists() && !r.join("linked").exists());
        // Unchanged: not rewritten (the inode stays).
        use std::os::unix::fs::MetadataExt;
        let ino = mode.ino();
        copy_out(
            &t.join("work"),
            Path::new("release"),
            &dst,
            Path::new("arm/release"),
            Select { tests: true },
        )
        .unwrap();
        assert_eq!(std::fs::metadata(r.join("app")).unwrap().ino(), ino);
        assert!(r.join("deps/app-0123456789abcdef").is_file());
        // A symlinked destination directory is refused.
        let dst2 = t.join("out2");
        std::fs::create_dir_all(&dst2).unwrap();
        std::os::unix::fs::symlink(t.join("work"), dst2.join("arm")).unwrap();
        let e = copy_out(
            &t.join("work"),
            Path::new("release"),
            &dst2,
            Path::new("arm/release"),
            sel,
        );
        assert!(e.is_err());
        std::fs::remove_dir_all(&t).unwrap();
    }
}
