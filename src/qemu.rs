//! Finding a qemu that can serve as a binfmt_misc interpreter with the F flag: static, built
//! for this host, on a mount that allows exec.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::arch::{elf_info, Arch};

#[derive(Debug, Clone)]
pub struct Qemu {
    pub path: PathBuf,
}

/// `CARGO_FOR_ARM_QEMU_<ARCH>`, e.g. `CARGO_FOR_ARM_QEMU_AARCH64`.
pub fn env_var_name(arch: Arch) -> String {
    format!(
        "CARGO_FOR_ARM_QEMU_{}",
        arch.qemu_name().to_ascii_uppercase()
    )
}

fn install_hint(arch: Arch) -> String {
    format!(
        "install a static qemu for {arch}: Debian/Ubuntu 'qemu-user-static' (qemu-{a}-static) or, \
         from Debian 13 on, 'qemu-user' (its qemu-{a} is static); or unpack either package without \
         root (apt-get download qemu-user-static && dpkg-deb -x qemu-user-static_*.deb DIR) and pass \
         --qemu DIR/usr/bin/qemu-{a}-static or set {}",
        env_var_name(arch),
        a = arch.qemu_name()
    )
}

/// Find the qemu for `arch`: `--qemu`, then `CARGO_FOR_ARM_QEMU_<ARCH>`, then PATH
/// (`qemu-<arch>-static`, then `qemu-<arch>`). The first one named is validated; one that is
/// unusable is an error, not a reason to look further (the user named it for a reason).
pub fn find(arch: Arch, flag: Option<&Path>, path_var: Option<&str>) -> Result<Qemu> {
    if let Some(p) = flag {
        validate(p, arch)?;
        return Ok(Qemu { path: absolute(p)? });
    }
    let var = env_var_name(arch);
    if let Some(p) = std::env::var_os(&var).filter(|v| !v.is_empty()) {
        let p = PathBuf::from(p);
        validate(&p, arch).with_context(|| format!("{var}={}", p.display()))?;
        return Ok(Qemu {
            path: absolute(&p)?,
        });
    }
    let names = [
        format!("qemu-{}-static", arch.qemu_name()),
        format!("qemu-{}", arch.qemu_name()),
    ];
    let mut rejected = Vec::new();
    for name in &names {
        for dir in std::env::split_paths(path_var.unwrap_or("")) {
            let cand = dir.join(name);
            if cand.is_file() {
                match validate(&cand, arch) {
                    Ok(()) => {
                        return Ok(Qemu {
                            path: absolute(&cand)?,
                        })
                    }
                    Err(e) => rejected.push(format!("{e:#}")),
                }
            }
        }
    }
    if rejected.is_empty() {
        bail!(
            "no qemu for {arch}: none of {} is on PATH; {}",
            names.join(", "),
            install_hint(arch)
        );
    }
    bail!(
        "no usable qemu for {arch}: {}; {}",
        rejected.join("; "),
        install_hint(arch)
    )
}

fn absolute(p: &Path) -> Result<PathBuf> {
    p.canonicalize()
        .with_context(|| format!("resolving {}", p.display()))
}

/// A qemu usable with binfmt F: exists, is an ELF for this host, has no PT_INTERP (a dynamic
/// qemu cannot find its libraries once the root is the ARM rootfs), and is not on a noexec mount.
pub fn validate(path: &Path, arch: Arch) -> Result<()> {
    let data = std::fs::read(path).with_context(|| {
        format!(
            "qemu {} cannot be read; {}",
            path.display(),
            install_hint(arch)
        )
    })?;
    let info = elf_info(&data)
        .with_context(|| format!("qemu {} is not an ELF program", path.display()))?;
    let host = Arch::host();
    if info.arch != Some(host) {
        bail!(
            "qemu {} is built for {} but this host is {host}; {}",
            path.display(),
            info.describe(),
            install_hint(arch)
        );
    }
    if let Some(interp) = info.interpreter {
        bail!(
            "qemu {} is dynamically linked (needs {interp}), so it cannot start once the ARM rootfs \
             is the root; use a static build: {}",
            path.display(),
            install_hint(arch)
        );
    }
    let st =
        nix::sys::statvfs::statvfs(path).with_context(|| format!("statvfs {}", path.display()))?;
    if st.flags().contains(nix::sys::statvfs::FsFlags::ST_NOEXEC) {
        bail!(
            "qemu {} lies on a noexec mount and cannot be executed; copy it to a filesystem that allows exec",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dynamic_host_binary_is_refused_with_a_fix() {
        let me = std::env::current_exe().unwrap();
        let err = format!("{:#}", validate(&me, Arch::Arm).unwrap_err());
        assert!(err.contains("dynamically linked"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
    }

    #[test]
    fn missing_qemu_names_the_package() {
        let dir = std::env::temp_dir().join(format!("cfa-noqemu-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let err = format!(
            "{:#}",
            find(Arch::Riscv64, None, Some(dir.to_str().unwrap())).unwrap_err()
        );
        assert!(err.contains("no qemu for riscv64"), "{err}");
        assert!(err.contains("qemu-user-static"), "{err}");
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_name(Arch::Aarch64), "CARGO_FOR_ARM_QEMU_AARCH64");
        assert_eq!(env_var_name(Arch::Arm), "CARGO_FOR_ARM_QEMU_ARM");
    }
}
