//! The emulated executor: the rootfs's own cargo, run under qemu in a sandbox rooted at the
//! ARM rootfs (or at full speed when the rootfs is the host's architecture).

use anyhow::{bail, Result};

use super::{Job, Prepared};
use crate::arch::Arch;
use crate::sandbox::binfmt::{self, Binfmt};
use crate::sandbox::spec::{Exec, SpecBuilder};

pub fn prepare(job: &Job) -> Result<Prepared> {
    if job.rootfs.configured() == Some(false) {
        let name = job
            .rootfs
            .path()
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        bail!(
            "the rootfs {name} was unpacked without running its packages' maintainer scripts (made where \
             no binfmt_misc or no user namespace was available, or as a sysroot): it serves native builds, \
             but an emulated build needs a configured rootfs. Make one: cargo for-arm rootfs rm {name}, then \
             build again (the default rootfs is created anew), or build with --mode emulate when this one is \
             the sysroot of a native build (the emulated default is created on first use)"
        );
    }
    if !job.rootfs.exists("/usr/bin/cargo") {
        let r = job.rootfs.path().display();
        bail!(
            "the rootfs {r} has no cargo (/usr/bin/cargo): use a rootfs with cargo installed, or install it \
             inside: cargo for-arm run --rootfs {r} --rootfs-rw --network host --map full -- apt-get install -y cargo \
             (for a rootfs in the store: cargo for-arm rootfs shell NAME)"
        );
    }
    let asked = job.opts.arch.as_deref().map(Arch::parse).transpose()?;
    let (arch, desc) = job.rootfs.arch_as(asked)?;
    let exec = emulator(job, arch)?;
    let banner = format!(
        "cargo {} for {desc} [{}] in {} (target dir {})",
        job.opts.subcommand,
        arch.debian_name(&desc),
        job.rootfs.path().display(),
        job.target_dir.display()
    );
    let writes = match job.opts.rootfs_rw {
        true => crate::sandbox::spec::RootWrites::InPlace,
        false => crate::sandbox::spec::RootWrites::Throwaway,
    };
    let b = SpecBuilder::new(job.rootfs.sandbox_root_writing(writes)?, exec);
    Ok(Prepared {
        builder: job.common(b),
        service: None,
        artifacts: job.target_dir.clone(),
        verb: "Emulating",
        banner,
    })
}

/// How the emulated cargo's programs reach qemu: refused without a binfmt handler (rung 2);
/// through the host's registration, named, on rung 1 (the tool's own qemu is not needed
/// then: the host's interpreter is the one that runs); else the tool's qemu, privately.
fn emulator(job: &Job, arch: Arch) -> Result<Exec> {
    if arch.runs_natively() {
        return crate::qemu::exec_for_cargo(arch, job.opts.qemu.as_deref(), job.quiet);
    }
    let probe = binfmt::probe(arch)?;
    if let Some(fix) = probe.fix() {
        // Every program of an emulated build is foreign, and cargo execs rustc, build
        // scripts and the linker by name: nothing works without a binfmt handler.
        bail!(
            "an emulated build needs a binfmt_misc handler for {arch}, and there is none ({}). \
             Fixes: {fix}; or build in native mode (--mode native: host compilers against \
             the rootfs, ARM programs started by qemu)",
            probe.describe()
        );
    }
    if let Binfmt::Host(entry) = &probe.binfmt {
        if !job.quiet {
            crate::ui::note(probe.describe());
            probe.warnings().iter().for_each(crate::ui::warn);
        }
        return Ok(Exec::Qemu {
            path: entry.interpreter.clone(),
            register_line: Vec::new(),
            binfmt: probe.binfmt.clone(),
        });
    }
    crate::qemu::exec_for_cargo(arch, job.opts.qemu.as_deref(), job.quiet)
}
