//! Architectures: what a rootfs is built for, which qemu runs it, and the binfmt_misc
//! registration that hands its ELF files to that qemu.

use std::fmt;
use std::path::Path;

use anyhow::{bail, Context, Result};
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};
use object::Endianness;

/// A guest architecture cargo-for-arm knows how to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Arch {
    Arm,
    Aarch64,
    Riscv64,
    Ppc64le,
    S390x,
    X86_64,
    I386,
}

impl Arch {
    pub const ALL: [Arch; 7] = [
        Arch::Arm,
        Arch::Aarch64,
        Arch::Riscv64,
        Arch::Ppc64le,
        Arch::S390x,
        Arch::X86_64,
        Arch::I386,
    ];

    /// The qemu name: `qemu-<name>`, `CARGO_FOR_ARM_QEMU_<NAME>`, `uname -m` family.
    pub fn qemu_name(self) -> &'static str {
        match self {
            Arch::Arm => "arm",
            Arch::Aarch64 => "aarch64",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64le",
            Arch::S390x => "s390x",
            Arch::X86_64 => "x86_64",
            Arch::I386 => "i386",
        }
    }

    pub fn parse(s: &str) -> Result<Arch> {
        Ok(match s {
            "arm" | "armhf" | "armel" | "armv7" | "armv7l" => Arch::Arm,
            "aarch64" | "arm64" => Arch::Aarch64,
            "riscv64" => Arch::Riscv64,
            "ppc64le" | "ppc64el" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            "x86_64" | "amd64" => Arch::X86_64,
            "i386" | "i686" => Arch::I386,
            _ => bail!(
                "unknown architecture '{s}': use one of armhf, armel, arm64, riscv64, ppc64el, s390x, amd64, i386"
            ),
        })
    }

    /// The architecture this binary was built for.
    pub fn host() -> Arch {
        match std::env::consts::ARCH {
            "x86_64" => Arch::X86_64,
            "aarch64" => Arch::Aarch64,
            "arm" => Arch::Arm,
            "riscv64" => Arch::Riscv64,
            "powerpc64" => Arch::Ppc64le,
            "s390x" => Arch::S390x,
            _ => Arch::I386,
        }
    }

    /// Whether the host CPU runs this architecture without emulation.
    pub fn runs_natively(self) -> bool {
        let host = Arch::host();
        self == host || (host == Arch::X86_64 && self == Arch::I386)
    }

    fn elf_machine(self) -> u16 {
        match self {
            Arch::Arm => elf::EM_ARM,
            Arch::Aarch64 => elf::EM_AARCH64,
            Arch::Riscv64 => elf::EM_RISCV,
            Arch::Ppc64le => elf::EM_PPC64,
            Arch::S390x => elf::EM_S390,
            Arch::X86_64 => elf::EM_X86_64,
            Arch::I386 => elf::EM_386,
        }
    }

    /// The magic and mask of the standard qemu binfmt registrations (qemu's
    /// `scripts/qemu-binfmt-conf.sh`): the ELF identification and e_machine, with e_type
    /// matching both ET_EXEC and ET_DYN.
    pub fn binfmt_magic_mask(self) -> ([u8; 20], [u8; 20]) {
        const M32: [u8; 20] = [
            0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
            0xff, 0xff, 0xfe, 0xff, 0xff, 0xff,
        ];
        let ident = |class: u8, data: u8| -> [u8; 16] {
            [
                0x7f, b'E', b'L', b'F', class, data, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0,
            ]
        };
        let le = |class: u8, machine: u16| -> [u8; 20] {
            let mut m = [0u8; 20];
            m[..16].copy_from_slice(&ident(class, 1));
            m[16] = 2;
            m[18..20].copy_from_slice(&machine.to_le_bytes());
            m
        };
        match self {
            Arch::Arm | Arch::I386 => (le(1, self.elf_machine()), M32),
            Arch::Aarch64 | Arch::Riscv64 | Arch::X86_64 => (le(2, self.elf_machine()), M32),
            Arch::Ppc64le => {
                let mut mask = M32;
                mask[7] = 0xfc;
                mask[19] = 0x00;
                (le(2, elf::EM_PPC64), mask)
            }
            Arch::S390x => {
                let mut m = [0u8; 20];
                m[..16].copy_from_slice(&ident(2, 2));
                m[17] = 2;
                m[18..20].copy_from_slice(&elf::EM_S390.to_be_bytes());
                let mut mask = [0xffu8; 20];
                mask[17] = 0xfe;
                (m, mask)
            }
        }
    }

    /// The line written to binfmt_misc's `register`. Flags: F (the kernel opens the
    /// interpreter now, so it need not exist in the rootfs) and P (pass argv[0] through, so
    /// multi-call programs such as busybox applets, rustup proxies and `ld.lld` see the name
    /// they were called by). Never C (credentials from the binary would turn setuid guest
    /// files into privilege) and never O (it hands qemu an open fd of unreadable binaries).
    pub fn binfmt_register_line(self, interpreter: &Path) -> Result<Vec<u8>> {
        let interp = interpreter.to_str().context("qemu path is not UTF-8")?;
        if interp.contains(':') || interp.contains('\n') {
            bail!("qemu path {interp} contains ':' or a newline, which binfmt_misc cannot take; move or link it elsewhere");
        }
        let (magic, mask) = self.binfmt_magic_mask();
        let hex = |b: &[u8]| b.iter().map(|x| format!("\\x{x:02x}")).collect::<String>();
        let line = format!(
            ":{}:M::{}:{}:{}:FP",
            self.binfmt_name(),
            hex(&magic),
            hex(&mask),
            interp
        );
        // binfmt_misc refuses lines over 1920 bytes (MAX_REGISTER_LENGTH).
        if line.len() > 1920 {
            bail!("binfmt register line for {interp} is too long; use a shorter qemu path");
        }
        Ok(line.into_bytes())
    }

    /// Debian's name (armhf, arm64, …); `desc` (from `ElfInfo::describe`) tells armel from armhf.
    pub fn debian_name(self, desc: &str) -> &'static str {
        match self {
            Arch::Arm if desc.contains("armel") => "armel",
            Arch::Arm => "armhf",
            Arch::Aarch64 => "arm64",
            Arch::Riscv64 => "riscv64",
            Arch::Ppc64le => "ppc64el",
            Arch::S390x => "s390x",
            Arch::X86_64 => "amd64",
            Arch::I386 => "i386",
        }
    }

    pub fn binfmt_name(self) -> String {
        format!("qemu-{}", self.qemu_name())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.qemu_name())
    }
}

/// What cargo-for-arm needs to know of an ELF file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ElfInfo {
    pub arch: Option<Arch>,
    pub machine: u16,
    pub hard_float: bool,
    /// `PT_INTERP`: the dynamic loader it needs, if any.
    pub interpreter: Option<String>,
}

impl ElfInfo {
    /// Debian's name for the flavour: armhf vs armel, arm64, …
    pub fn describe(&self) -> String {
        match self.arch {
            Some(Arch::Arm) if self.hard_float => "arm (armhf, EABI5 hard-float)".into(),
            Some(Arch::Arm) => "arm (armel, EABI5 soft-float)".into(),
            Some(Arch::Aarch64) => "aarch64 (arm64)".into(),
            Some(a) => a.to_string(),
            None => format!("unknown ELF machine {}", self.machine),
        }
    }
}

/// Parse the ELF header and program headers of `data`.
pub fn elf_info(data: &[u8]) -> Result<ElfInfo> {
    if data.len() < 20 || &data[..4] != b"\x7fELF" {
        bail!("not an ELF file");
    }
    match data[4] {
        1 => parse_elf::<elf::FileHeader32<Endianness>>(data),
        2 => parse_elf::<elf::FileHeader64<Endianness>>(data),
        c => bail!("ELF class {c} unknown"),
    }
}

fn parse_elf<H: FileHeader<Endian = Endianness>>(data: &[u8]) -> Result<ElfInfo> {
    let header = H::parse(data).map_err(|e| anyhow::anyhow!("bad ELF header: {e}"))?;
    let endian = header
        .endian()
        .map_err(|e| anyhow::anyhow!("bad ELF header: {e}"))?;
    let machine = header.e_machine(endian);
    let is64 = header.is_class_64();
    let little = endian == Endianness::Little;
    let arch = Arch::ALL.into_iter().find(|a| {
        a.elf_machine() == machine
            && match a {
                Arch::Arm | Arch::I386 => !is64,
                Arch::Ppc64le => is64 && little,
                Arch::S390x => is64 && !little,
                _ => is64,
            }
    });
    let flags: u32 = header.e_flags(endian);
    let mut interpreter = None;
    if let Ok(phdrs) = header.program_headers(endian, data) {
        for ph in phdrs {
            if ph.p_type(endian) == elf::PT_INTERP {
                if let Ok(Some(bytes)) = ph.interpreter(endian, data) {
                    interpreter = Some(String::from_utf8_lossy(bytes).into_owned());
                }
            }
        }
    }
    Ok(ElfInfo {
        arch,
        machine,
        hard_float: flags & elf::EF_ARM_ABI_FLOAT_HARD != 0,
        interpreter,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arm_register_line_matches_qemus_standard_registration() {
        let line = Arch::Arm
            .binfmt_register_line(Path::new("/usr/bin/qemu-arm-static"))
            .unwrap();
        assert_eq!(
            String::from_utf8(line).unwrap(),
            ":qemu-arm:M::\\x7f\\x45\\x4c\\x46\\x01\\x01\\x01\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x02\\x00\\x28\\x00:\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\x00\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xff\\xfe\\xff\\xff\\xff:/usr/bin/qemu-arm-static:FP"
        );
    }

    #[test]
    fn aarch64_and_s390x_magic() {
        let (m, _) = Arch::Aarch64.binfmt_magic_mask();
        assert_eq!(&m[16..], &[0x02, 0x00, 0xb7, 0x00]);
        assert_eq!(m[4], 2);
        let (m, mask) = Arch::S390x.binfmt_magic_mask();
        assert_eq!(&m[4..6], &[2, 2]);
        assert_eq!(&m[16..], &[0x00, 0x02, 0x00, 0x16]);
        assert_eq!(mask[17], 0xfe);
    }

    #[test]
    fn register_line_has_f_and_p_never_c_and_rejects_colons() {
        let line = Arch::Aarch64
            .binfmt_register_line(Path::new("/opt/q/qemu-aarch64"))
            .unwrap();
        assert!(line.ends_with(b":/opt/q/qemu-aarch64:FP"));
        assert!(Arch::Arm
            .binfmt_register_line(Path::new("/a:b/qemu"))
            .is_err());
    }

    #[test]
    fn parses_architecture_names() {
        assert_eq!(Arch::parse("armhf").unwrap(), Arch::Arm);
        assert_eq!(Arch::parse("arm64").unwrap(), Arch::Aarch64);
        let err = Arch::parse("mips").unwrap_err().to_string();
        assert!(err.contains("armhf"), "{err}");
    }

    #[test]
    fn own_binary_is_host_arch_and_dynamic() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let info = elf_info(&me).unwrap();
        assert_eq!(info.arch, Some(Arch::host()));
        assert!(info.interpreter.is_some());
    }

    #[test]
    fn refuses_non_elf() {
        assert!(elf_info(b"#!/bin/sh\necho hi\n").is_err());
    }
}
