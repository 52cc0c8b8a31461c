//! Which binfmt_misc hands a sandbox's foreign (ARM) programs to qemu — rungs 0 to 2 of the
//! ladder in docs/ARCHITECTURE.md ("binfmt_misc: private, the host's, or none"):
//!
//! - [`Binfmt::Private`] (rung 0): a binfmt_misc instance of the sandbox's own user namespace
//!   (Linux 6.7+) with the tool's static qemu registered with F and P.
//! - [`Binfmt::Host`] (rung 1): the kernel refuses a private instance, but the host's
//!   `/proc/sys/fs/binfmt_misc` has an enabled entry with the F flag whose magic and mask take
//!   ELF files of this architecture (found by what it matches, never by its name). Nothing is
//!   mounted: the sandbox's user namespace inherits the host's instance.
//! - [`Binfmt::None`] (rung 2): neither. Foreign programs start only when qemu is named as
//!   the program (`qemu-arm -0 ARGV0 -L / PROG ARGS`), and one that execs another gets ENOEXEC.
//!
//! `CARGO_FOR_ARM_BINFMT=private|host|none` forces a rung (tests, and users who want to
//! check what a smaller machine does): `host` uses the host's entry even where a private
//! instance would work; `none` mounts a private, *empty* instance where the kernel allows one,
//! so the host's entries are hidden too. A forced choice that cannot work is an error.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{bail, Result};

use crate::arch::Arch;

/// The switch that forces a rung.
pub const ENV: &str = "CARGO_FOR_ARM_BINFMT";

/// Where the host's binfmt_misc is mounted.
pub const HOST_DIR: &str = "/proc/sys/fs/binfmt_misc";

/// A host registration usable for an architecture: enabled, F, magic and mask taking its ELF
/// files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostEntry {
    /// The entry's name in the host's binfmt_misc (any name: found by its magic).
    pub name: String,
    pub interpreter: PathBuf,
    /// The flags as binfmt_misc shows them (`POCF`, `F`, …).
    pub flags: String,
}

impl HostEntry {
    /// P: the interpreter gets the program's own argv[0]. Without it, multi-call programs
    /// (busybox applets, rustup proxies, `ld.lld`) see the path instead of their name.
    pub fn preserves_argv0(&self) -> bool {
        self.flags.contains('P')
    }

    /// `/proc/sys/fs/binfmt_misc/NAME (interpreter PATH, flags F)`.
    pub fn describe(&self) -> String {
        format!(
            "{HOST_DIR}/{} (interpreter {}, flags {})",
            self.name,
            self.interpreter.display(),
            self.flags
        )
    }
}

/// How a sandbox's foreign programs are handed to qemu.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binfmt {
    /// Rung 0: a private binfmt_misc with the tool's qemu registered with F and P.
    Private,
    /// Rung 1: the host's registration (nothing mounted).
    Host(HostEntry),
    /// Rung 2: no binfmt at all; `forced` mounts a private, empty instance (`none` asked
    /// for on a kernel that has private instances) so the host's entries are hidden too.
    None { empty_private: bool },
}

impl Binfmt {
    /// The rung of the ladder this state gives (0, 1 or 2).
    pub fn rung(&self) -> u8 {
        match self {
            Binfmt::Private => 0,
            Binfmt::Host(_) => 1,
            Binfmt::None { .. } => 2,
        }
    }
}

/// What `CARGO_FOR_ARM_BINFMT` asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Auto,
    Private,
    Host,
    None,
}

impl Choice {
    pub fn parse(s: &str) -> Result<Choice> {
        Ok(match s {
            "" | "auto" => Choice::Auto,
            "private" => Choice::Private,
            "host" => Choice::Host,
            "none" => Choice::None,
            v => bail!("{ENV}={v}: use auto, private, host or none"),
        })
    }

    /// From the environment (unset: auto).
    pub fn from_env() -> Result<Choice> {
        Choice::parse(&std::env::var(ENV).unwrap_or_default())
    }
}

/// What was found for one architecture: the state a sandbox uses, and the facts behind it
/// (for `doctor`).
#[derive(Debug, Clone)]
pub struct Probe {
    pub arch: Arch,
    pub binfmt: Binfmt,
    pub choice: Choice,
    /// Why the kernel refused a private binfmt_misc (`Ok` when it allows one).
    pub private: Result<(), String>,
    /// The host's usable registration for `arch`, if any.
    pub host: Option<HostEntry>,
}

impl Probe {
    /// One line for the user: the rung and what it costs.
    pub fn describe(&self) -> String {
        let forced = match (self.choice, &self.binfmt, &self.host) {
            (Choice::Auto, ..) => String::new(),
            (Choice::None, _, Some(h)) => {
                format!(" ({ENV}; the host's registration {} is hidden)", h.name)
            }
            _ => format!(" ({ENV})"),
        };
        format!("rung {}, {}", self.binfmt.rung(), self.state(&forced))
    }

    fn state(&self, forced: &str) -> String {
        match &self.binfmt {
            Binfmt::Private => format!(
                "binfmt: a private binfmt_misc with the tool's static qemu for {}{forced}",
                self.arch
            ),
            Binfmt::Host(e) => format!(
                "binfmt: {}; {} programs run through the host's registration {}{forced}",
                self.private_refusal(),
                self.arch,
                e.describe()
            ),
            Binfmt::None { .. } => format!(
                "binfmt: {}{forced}; {} programs start only with qemu named as the program (an {} program that \
                 executes another one gets ENOEXEC), and emulated builds cannot run",
                match self.choice {
                    Choice::None => "none asked for".to_string(),
                    _ => format!(
                        "{}, and the host has no {} registration with the F flag",
                        self.private_refusal(),
                        self.arch
                    ),
                },
                self.arch,
                self.arch
            ),
        }
    }

    fn private_refusal(&self) -> String {
        match &self.private {
            Ok(()) => "a private binfmt_misc is not used".into(),
            Err(e) => format!("the kernel refuses a private binfmt_misc ({e}; needs Linux 6.7+)"),
        }
    }

    /// Warnings worth a line in `doctor`: a host entry without P loses argv[0].
    pub fn warnings(&self) -> Vec<String> {
        match &self.binfmt {
            Binfmt::Host(e) if !e.preserves_argv0() => vec![format!(
                "the host's registration {} has no P flag: ARM programs lose their argv[0] \
                 (busybox applets, rustup proxies and ld.lld depend on it); register it with flags FP",
                e.describe()
            )],
            _ => Vec::new(),
        }
    }

    /// The fixes that would bring emulation back (empty on rungs 0 and 1).
    pub fn fix(&self) -> Option<String> {
        match self.binfmt {
            Binfmt::None { .. } => Some(fix_text(self.arch)),
            _ => None,
        }
    }
}

/// The ways to get a binfmt handler for `arch`, for messages and `doctor`.
pub fn fix_text(arch: Arch) -> String {
    fix_text_named(arch.qemu_name())
}

fn fix_text_named(arch: &str) -> String {
    format!(
        "a Linux kernel 6.7 or later (a private binfmt_misc per user namespace), or a host \
         registration of a static qemu for {arch} with the F flag (an administrator installs it once: \
         Debian/Ubuntu 'apt-get install qemu-user-static binfmt-support' — Debian 13: 'qemu-user-binfmt' — \
         Fedora 'dnf install qemu-user-static', Arch 'pacman -S qemu-user-static-binfmt')"
    )
}

/// The state for `arch`: the forced choice, or the best that works. A forced choice that
/// cannot work is an error that says why.
pub fn probe(arch: Arch) -> Result<Probe> {
    let choice = Choice::from_env()?;
    let private = private_works();
    let host = host_entry(Path::new(HOST_DIR), arch);
    let binfmt = decide(arch, choice, &private, &host)?;
    Ok(Probe {
        arch,
        binfmt,
        choice,
        private,
        host,
    })
}

/// The state from the facts: the best that works, or the forced choice if it can work.
fn decide(
    arch: Arch,
    choice: Choice,
    private: &Result<(), String>,
    host: &Option<HostEntry>,
) -> Result<Binfmt> {
    Ok(match choice {
        Choice::Auto => match (private, host) {
            (Ok(()), _) => Binfmt::Private,
            (Err(_), Some(e)) => Binfmt::Host(e.clone()),
            (Err(_), None) => Binfmt::None {
                empty_private: false,
            },
        },
        Choice::Private => match private {
            Ok(()) => Binfmt::Private,
            Err(e) => bail!(
                "{ENV}=private: the kernel refuses a private binfmt_misc ({e}); it needs Linux 6.7 or \
                 later. Unset {ENV} to use the host's registration or none"
            ),
        },
        Choice::Host => match host {
            Some(e) => Binfmt::Host(e.clone()),
            None => bail!(
                "{ENV}=host: the host's {HOST_DIR} has no enabled registration with the F flag whose \
                 magic takes {arch} ELF files; {}",
                fix_text(arch)
            ),
        },
        Choice::None => match (private, host) {
            (Err(e), Some(h)) => bail!(
                "{ENV}=none: the host's registration {} would still take {arch} programs, and \
                 this kernel cannot hide it behind a private, empty binfmt_misc ({e}; needs Linux \
                 6.7 or later). Unset {ENV} to use it",
                h.describe()
            ),
            _ => Binfmt::None {
                empty_private: private.is_ok(),
            },
        },
    })
}

/// Whether this kernel mounts a binfmt_misc inside a new user namespace (Linux 6.7+): tried
/// once per process in a throwaway child.
pub fn private_works() -> Result<(), String> {
    PRIVATE.get_or_init(try_private).clone()
}

static PRIVATE: OnceLock<Result<(), String>> = OnceLock::new();

/// The answer of a probe that already tried the mount in this process (the isolation
/// ladder's): [`private_works`] then forks no child of its own.
pub fn private_known(r: Result<(), String>) {
    let _ = PRIVATE.set(r);
}

/// Exit codes of the probe's child other than an errno.
const PROBE_SETUP_FAILED: i32 = 250;
const PROBE_NO_REGISTER: i32 = 251;

fn try_private() -> Result<(), String> {
    use super::sys::{Kernel, Sys};
    let (map, _) = crate::idmap::choose(crate::idmap::MapMode::Single, &Default::default())
        .map_err(|e| format!("{e:#}"))?;
    let code = super::in_userns(libc::CLONE_NEWNS, &map, &|| {
        let k = Kernel;
        let flags = libc::MS_REC | libc::MS_PRIVATE;
        if k.mount(None, c"/", None, flags, None, c"/").is_err()
            || k.mount(Some(c"tmpfs"), c"/tmp", Some(c"tmpfs"), 0, None, c"/tmp")
                .is_err()
        {
            return PROBE_SETUP_FAILED;
        }
        let _ = k.mkdirat(libc::AT_FDCWD, c"/tmp/binfmt", 0o755);
        let fs = Some(c"binfmt_misc");
        match k.mount(fs, c"/tmp/binfmt", fs, 0, None, c"binfmt_misc") {
            Err(e) => e.errno as i32,
            Ok(()) if k.exists(c"/tmp/binfmt/register") => 0,
            Ok(()) => PROBE_NO_REGISTER,
        }
    })
    .map_err(|e| format!("{e:#}"))?;
    match code {
        0 => Ok(()),
        PROBE_SETUP_FAILED => Err("a mount namespace cannot be set up to try it".into()),
        PROBE_NO_REGISTER => Err("binfmt_misc mounted without a register file".into()),
        n => Err(format!(
            "mount(binfmt_misc) in a user namespace => {}",
            nix::errno::Errno::from_raw(n)
        )),
    }
}

/// The first entry of the binfmt_misc at `dir` (the host's: [`HOST_DIR`]) that is enabled,
/// has F, and whose magic and mask take ELF executables and shared objects of `arch`.
pub fn host_entry(dir: &Path, arch: Arch) -> Option<HostEntry> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n != "register" && n != "status")
        .collect();
    names.sort();
    names.into_iter().find_map(|name| {
        let text = std::fs::read_to_string(dir.join(&name)).ok()?;
        parse_entry(&name, &text, arch)
    })
}

/// One entry's text, if it is usable for `arch`.
pub fn parse_entry(name: &str, text: &str, arch: Arch) -> Option<HostEntry> {
    let mut lines = text.lines();
    if lines.next()? != "enabled" {
        return None;
    }
    let field = |k: &str| text.lines().find_map(|l| l.strip_prefix(k));
    let flags = field("flags: ")?.trim().to_string();
    let interpreter = PathBuf::from(field("interpreter ")?.trim());
    let offset: usize = field("offset ")?.trim().parse().ok()?;
    let magic = unhex(field("magic ")?.trim())?;
    let mask = match field("mask ") {
        Some(m) => unhex(m.trim())?,
        None => vec![0xff; magic.len()],
    };
    if !flags.contains('F') || mask.len() != magic.len() {
        return None;
    }
    let takes = |header: &[u8]| {
        header.len() >= offset + magic.len()
            && magic
                .iter()
                .zip(&mask)
                .zip(&header[offset..])
                .all(|((m, k), h)| h & k == m & k)
    };
    let (exec, _) = arch.binfmt_magic_mask();
    let mut dynamic = exec;
    dynamic[16] = 3;
    if matches!(arch, Arch::S390x) {
        dynamic[16] = 0;
        dynamic[17] = 3;
    }
    (takes(&exec) && takes(&dynamic)).then(|| HostEntry {
        name: name.to_string(),
        interpreter,
        flags,
    })
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

/// The argv that starts `argv[0]` (a foreign program) by naming qemu as the program, for
/// rungs without a binfmt handler of the tool's own: argv[0] kept with `-0`, `-L /` so
/// qemu's own default prefix and `QEMU_LD_PREFIX` play no part.
pub fn qemu_argv(qemu_guest: &str, argv: &[String]) -> Vec<String> {
    let mut out = vec![qemu_guest.to_string()];
    if let Some(prog) = argv.first() {
        out.extend(["-0".into(), prog.clone(), "-L".into(), "/".into()]);
    }
    out.extend(argv.iter().cloned());
    out
}

/// The note after a foreign program started without binfmt exited non-zero.
pub fn enoexec_note(arch: &str) -> String {
    format!(
        "this machine has no binfmt_misc handler for {arch} here (rung 2), so {arch} programs are \
         started by naming qemu as the program: one that executes another {arch} program \
         (a test running a helper, a shell script, `uname`) gets ENOEXEC, \"Exec format error\". \
         If that is why it failed, the fix is {}",
        fix_text_named(arch)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEBIAN_QEMU_ARM: &str = "enabled\ninterpreter /usr/libexec/qemu-binfmt/arm-binfmt-P\nflags: POCF\noffset 0\nmagic 7f454c4601010100000000000000000002002800\nmask ffffffffffffff00fffffffffffffffffeffffff\n";

    #[test]
    fn entries_are_found_by_magic_not_by_name() {
        let e = parse_entry("cargo-for-arm-test-arm", DEBIAN_QEMU_ARM, Arch::Arm).unwrap();
        assert_eq!(e.name, "cargo-for-arm-test-arm");
        assert_eq!(
            e.interpreter,
            Path::new("/usr/libexec/qemu-binfmt/arm-binfmt-P")
        );
        assert!(e.preserves_argv0());
        // The same entry does not take aarch64 files.
        assert!(parse_entry("qemu-arm", DEBIAN_QEMU_ARM, Arch::Aarch64).is_none());
        // Disabled, or without F: unusable.
        let disabled = DEBIAN_QEMU_ARM.replacen("enabled", "disabled", 1);
        assert!(parse_entry("qemu-arm", &disabled, Arch::Arm).is_none());
        let no_f = DEBIAN_QEMU_ARM.replace("flags: POCF", "flags: PO");
        assert!(parse_entry("qemu-arm", &no_f, Arch::Arm).is_none());
        // F without P: usable, with a warning.
        let no_p = DEBIAN_QEMU_ARM.replace("flags: POCF", "flags: F");
        let e = parse_entry("x", &no_p, Arch::Arm).unwrap();
        assert!(!e.preserves_argv0());
        let p = Probe {
            arch: Arch::Arm,
            binfmt: Binfmt::Host(e),
            choice: Choice::Auto,
            private: Err("EPERM".into()),
            host: None,
        };
        assert!(p.warnings()[0].contains("no P flag"), "{:?}", p.warnings());
        // A magic that takes only ET_EXEC (not PIE programs): not enough.
        let exec_only =
            DEBIAN_QEMU_ARM.replace("fffffffffffffffffeffffff", "ffffffffffffffffffffffff");
        assert!(parse_entry("x", &exec_only, Arch::Arm).is_none());
        // An extension entry has no magic.
        let ext = "enabled\ninterpreter /usr/bin/wine\nflags: F\nextension .exe\n";
        assert!(parse_entry("wine", ext, Arch::Arm).is_none());
    }

    #[test]
    fn our_own_register_line_matches_itself() {
        let (magic, mask) = Arch::Aarch64.binfmt_magic_mask();
        let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
        let text = format!(
            "enabled\ninterpreter /q\nflags: PF\noffset 0\nmagic {}\nmask {}\n",
            hex(&magic),
            hex(&mask)
        );
        assert!(parse_entry("a", &text, Arch::Aarch64).is_some());
        assert!(parse_entry("a", &text, Arch::Arm).is_none());
    }

    #[test]
    fn the_best_rung_that_works_or_the_forced_one_or_an_error() {
        let entry = HostEntry {
            name: "cargo-for-arm-test-arm".into(),
            interpreter: "/q".into(),
            flags: "FP".into(),
        };
        let (new, old): (Result<(), String>, Result<(), String>) = (Ok(()), Err("EPERM".into()));
        let (some, none) = (Some(entry.clone()), None);
        let d = |c, p: &Result<(), String>, h: &Option<HostEntry>| decide(Arch::Arm, c, p, h);
        let empty = |e| Binfmt::None { empty_private: e };
        // Auto: private, else the host's, else none.
        assert_eq!(d(Choice::Auto, &new, &some).unwrap(), Binfmt::Private);
        assert_eq!(
            d(Choice::Auto, &old, &some).unwrap(),
            Binfmt::Host(entry.clone())
        );
        assert_eq!(d(Choice::Auto, &old, &none).unwrap(), empty(false));
        // Forced: used where it works (host even where private would), an error elsewhere.
        assert_eq!(d(Choice::Host, &new, &some).unwrap(), Binfmt::Host(entry));
        assert_eq!(d(Choice::None, &new, &some).unwrap(), empty(true));
        assert_eq!(d(Choice::None, &old, &none).unwrap(), empty(false));
        let e = d(Choice::Host, &new, &none).unwrap_err().to_string();
        assert!(
            e.contains("CARGO_FOR_ARM_BINFMT=host") && e.contains("qemu-user-static"),
            "{e}"
        );
        let e = d(Choice::Private, &old, &some).unwrap_err().to_string();
        assert!(
            e.contains("CARGO_FOR_ARM_BINFMT=private") && e.contains("6.7"),
            "{e}"
        );
        // none cannot hide a host entry without a private instance.
        let e = d(Choice::None, &old, &some).unwrap_err().to_string();
        assert!(e.contains("would still take arm programs"), "{e}");
    }

    #[test]
    fn the_switch_parses_and_names_its_values() {
        assert_eq!(Choice::parse("").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("host").unwrap(), Choice::Host);
        assert_eq!(Choice::parse("none").unwrap(), Choice::None);
        let e = Choice::parse("off").unwrap_err().to_string();
        assert!(e.contains("CARGO_FOR_ARM_BINFMT=off") && e.contains("private, host or none"));
    }

    #[test]
    fn qemu_is_named_as_the_program_with_argv0_kept() {
        let argv = qemu_argv(
            "/run/cargo-for-arm/qemu/qemu-arm",
            &["/p/t".into(), "--x".into()],
        );
        assert_eq!(
            argv,
            [
                "/run/cargo-for-arm/qemu/qemu-arm",
                "-0",
                "/p/t",
                "-L",
                "/",
                "/p/t",
                "--x"
            ]
        );
    }
}
