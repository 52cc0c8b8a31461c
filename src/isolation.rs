//! The isolation ladder (issue #11): which sandbox this machine allows, decided by what a
//! probe *does* — never by one errno value — and `--isolation auto|sandbox|none`.
//!
//! | rung | the machine has | builds |
//! |---|---|---|
//! | 0 | userns + capabilities + private binfmt_misc | everything |
//! | 1 | userns + capabilities, a host binfmt registration with F | sandboxed, host registration |
//! | 2 | userns + capabilities, no binfmt at all | native builds, qemu named as the program |
//! | 3 | no usable user namespace | native builds without a sandbox (reduced isolation) |
//!
//! The probe runs in a throwaway child on every build (about a millisecond: one clone, the
//! id-map write, a few mounts); nothing is cached, so nothing can go stale across reboots or
//! sysctl changes. Rungs 1 and 2 (no private binfmt_misc) are the binfmt helper's to decide:
//! see [`without_private_binfmt`].

use std::io::Read as _;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use anyhow::{bail, Result};
use nix::errno::Errno;

use crate::settings::{Key, Scope, Settings};

/// `--isolation`, `CARGO_FOR_ARM_ISOLATION`, `isolation =` in the user's config (never a
/// project's: it lowers security).
pub const ISOLATION: Key = Key {
    flag: "--isolation",
    env: "CARGO_FOR_ARM_ISOLATION",
    name: "isolation",
    scope: Scope::User,
};

/// What the user asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isolation {
    /// The best rung that works here.
    Auto,
    /// A sandbox (rungs 0–2); an error where none can be made.
    Sandbox,
    /// No sandbox: rung 3 even where a sandbox would work.
    None,
}

impl Isolation {
    pub fn parse(s: &str) -> Result<Isolation> {
        Ok(match s {
            "auto" => Isolation::Auto,
            "sandbox" => Isolation::Sandbox,
            "none" => Isolation::None,
            v => bail!("--isolation {v}: use auto, sandbox or none"),
        })
    }
}

/// A rung of the ladder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Rung {
    /// 0: user namespace, capabilities in it, a private binfmt_misc.
    Full = 0,
    /// 1: no private binfmt_misc; the host's registration with F serves.
    HostBinfmt = 1,
    /// 2: no binfmt_misc at all: qemu is named as the program.
    NoBinfmt = 2,
    /// 3: no usable user namespace: no sandbox, reduced isolation.
    Unsandboxed = 3,
}

impl Rung {
    pub fn number(self) -> u8 {
        self as u8
    }

    /// What this rung costs, in a few words.
    pub fn cost(self) -> &'static str {
        match self {
            Rung::Full => "nothing: full sandbox, emulated and native builds",
            Rung::HostBinfmt => {
                "the sandbox uses the host's binfmt_misc registration of qemu (flag F)"
            }
            Rung::NoBinfmt => {
                "no binfmt_misc: native builds only, ARM programs started by naming qemu; emulated builds are refused"
            }
            Rung::Unsandboxed => {
                "no sandbox: native builds with your rustup toolchain and the host's clang and lld, ARM programs under qemu -L; \
                 isolation is reduced to no_new_privs, the seccomp policy and Landlock; emulated builds and `run` are refused"
            }
        }
    }
}

/// The step of the probe that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// clone(CLONE_NEWUSER|CLONE_NEWNS|CLONE_NEWPID).
    Clone,
    /// Writing setgroups, uid_map or gid_map of the new namespace.
    IdMap,
    /// Making `/` private in the new mount namespace.
    MountPrivate,
    /// Mounting a tmpfs.
    MountTmpfs,
    /// pivot_root into a tmpfs.
    PivotRoot,
    /// Mounting a fresh procfs (the pid namespace's).
    MountProc,
    /// Mounting binfmt_misc inside the namespace (Linux 6.7+).
    MountBinfmt,
    /// binfmt_misc mounted, but without a `register` file.
    BinfmtRegister,
    /// The probe's child died without a word.
    Died,
}

impl Step {
    fn from_code(c: i32) -> Step {
        match c {
            1 => Step::Clone,
            2 => Step::IdMap,
            3 => Step::MountPrivate,
            4 => Step::MountTmpfs,
            5 => Step::PivotRoot,
            6 => Step::MountProc,
            7 => Step::MountBinfmt,
            8 => Step::BinfmtRegister,
            _ => Step::Died,
        }
    }

    fn words(self) -> &'static str {
        match self {
            Step::Clone => "creating a user namespace (clone with CLONE_NEWUSER)",
            Step::IdMap => "the id-map write",
            Step::MountPrivate => "making / private in a new mount namespace",
            Step::MountTmpfs => "mounting a tmpfs in a new user namespace",
            Step::PivotRoot => "pivot_root in a new user namespace",
            Step::MountProc => "mounting a fresh procfs",
            Step::MountBinfmt => "mounting binfmt_misc in a user namespace",
            Step::BinfmtRegister => "binfmt_misc's register file",
            Step::Died => "the probe",
        }
    }
}

/// Why a probe step failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub step: Step,
    /// 0 when the step has no errno (died, no register file).
    pub errno: i32,
}

impl Failure {
    fn errno_name(&self) -> String {
        format!("{:?}", Errno::from_raw(self.errno))
    }

    /// The likely cause, as a question: the errno alone does not prove it.
    fn cause(&self) -> &'static str {
        match (self.step, Errno::from_raw(self.errno)) {
            (Step::Clone, Errno::ENOSPC) => {
                "user.max_user_namespaces is 0, or the namespace limit is reached?"
            }
            (Step::Clone, Errno::EPERM) if sysctl_is("kernel/apparmor_restrict_unprivileged_userns", "1") => {
                "AppArmor's restriction of unprivileged user namespaces: kernel.apparmor_restrict_unprivileged_userns=1"
            }
            (Step::Clone, Errno::EPERM) if sysctl_is("kernel/unprivileged_userns_clone", "0") => {
                "kernel.unprivileged_userns_clone=0"
            }
            (Step::Clone, Errno::EPERM) => {
                "a container's seccomp profile (Docker's default refuses CLONE_NEWUSER)?"
            }
            (Step::Clone, Errno::EINVAL | Errno::ENOSYS) => {
                "a kernel without user namespaces, or a seccomp filter?"
            }
            (Step::Clone, Errno::EUSERS) => "the nesting limit of user namespaces?",
            (Step::IdMap | Step::MountPrivate | Step::MountTmpfs | Step::PivotRoot, _) => {
                "AppArmor's restriction of unprivileged user namespaces (kernel.apparmor_restrict_unprivileged_userns=1), or a seccomp filter on mount calls?"
            }
            (Step::MountProc, _) => "a container with a masked /proc?",
            (Step::MountBinfmt, _) => "Linux older than 6.7?",
            _ => "",
        }
    }

    pub fn words(&self) -> String {
        let cause = self.cause();
        let cause = match cause.is_empty() {
            true => String::new(),
            false => format!(" ({cause})"),
        };
        match self.step {
            Step::Died => "the probe's child died without a word".into(),
            Step::BinfmtRegister => "binfmt_misc mounted but has no register file".into(),
            s => format!("{} failed with {}{cause}", s.words(), self.errno_name()),
        }
    }
}

/// Whether `/proc/sys/<name>` reads `value`.
fn sysctl_is(name: &str, value: &str) -> bool {
    std::fs::read_to_string(format!("/proc/sys/{name}")).is_ok_and(|v| v.trim() == value)
}

/// What the probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Probe {
    /// A user namespace with capabilities: clone, id map, tmpfs, pivot_root, procfs.
    pub userns: std::result::Result<(), Failure>,
    /// A private binfmt_misc; only tried when `userns` worked.
    pub binfmt: std::result::Result<(), Failure>,
}

impl Probe {
    /// The rung this machine allows.
    pub fn rung(&self) -> Rung {
        use crate::sandbox::binfmt::Choice;
        // CARGO_FOR_ARM_BINFMT forces the sandbox's binfmt state, so it forces the rung too
        // (a bad value is the sandbox's error to report; here it counts as auto).
        let choice = Choice::from_env().unwrap_or(Choice::Auto);
        match (self.userns, self.binfmt, choice) {
            (Err(_), ..) => Rung::Unsandboxed,
            (Ok(()), _, Choice::None) => Rung::NoBinfmt,
            (Ok(()), _, Choice::Host) => without_private_binfmt(),
            (Ok(()), Ok(()), _) => Rung::Full,
            (Ok(()), Err(_), _) => without_private_binfmt(),
        }
    }

    /// Both parts failed at `step`, with the errno of the last call.
    fn failed(step: Step) -> Probe {
        let f = Failure {
            step,
            errno: Errno::last_raw(),
        };
        Probe {
            userns: Err(f),
            binfmt: Err(f),
        }
    }

    /// One line: "userns ok, private binfmt_misc: no (…)".
    pub fn summary(&self) -> String {
        use crate::sandbox::binfmt::{Choice, ENV};
        let line = match (&self.userns, &self.binfmt) {
            (Err(e), _) => return format!("userns: no ({})", e.words()),
            (Ok(()), Ok(())) => "userns ok, private binfmt_misc ok".to_string(),
            (Ok(()), Err(e)) => format!("userns ok, private binfmt_misc: no ({})", e.words()),
        };
        match Choice::from_env() {
            Ok(Choice::Auto) | Err(_) => line,
            Ok(_) => format!(
                "{line}; {ENV}={} chooses the binfmt state",
                std::env::var(ENV).unwrap_or_default()
            ),
        }
    }

    /// Why there is no sandbox, in words (rung 3 only).
    pub fn no_userns_reason(&self) -> Option<String> {
        self.userns
            .err()
            .map(|e| format!("user namespaces are unavailable because {}", e.words()))
    }
}

/// INTEGRATION POINT for rungs 1 and 2: the user namespace works but binfmt_misc cannot be
/// mounted in it. Whether a host registration serves (rung 1) or none does (rung 2) is
/// src/sandbox/binfmt.rs's to decide, per architecture, when a sandbox is made
/// (`binfmt::probe`, which also honours CARGO_FOR_ARM_BINFMT); for the ladder's one rung, a
/// usable host entry (F flag, ARM magic) for either ARM architecture makes it rung 1.
pub fn without_private_binfmt() -> Rung {
    use crate::sandbox::binfmt::{host_entry, HOST_DIR};
    let host_f = [crate::arch::Arch::Arm, crate::arch::Arch::Aarch64]
        .iter()
        .any(|a| host_entry(std::path::Path::new(HOST_DIR), *a).is_some());
    match host_f {
        true => Rung::HostBinfmt,
        false => Rung::NoBinfmt,
    }
}

fn write_proc(pid: i32, file: &str, text: &str) -> std::result::Result<(), i32> {
    std::fs::write(format!("/proc/{pid}/{file}"), text)
        .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))
}

/// What this machine allows, probed once per process ([`try_probe`]): a build that also
/// creates its default rootfs asks twice. Its binfmt_misc answer is handed to the sandbox's
/// binfmt decision, which would otherwise try the same mount in a child of its own.
pub fn probe() -> Probe {
    static PROBE: std::sync::OnceLock<Probe> = std::sync::OnceLock::new();
    *PROBE.get_or_init(|| {
        let p = try_probe();
        if p.userns.is_ok() {
            crate::sandbox::binfmt::private_known(p.binfmt.map_err(|e| e.words()));
        }
        p
    })
}

/// Try, in a throwaway child, what a sandbox does: clone into new user, mount and pid
/// namespaces, write a single-id map, make `/` private, mount a tmpfs, pivot_root into
/// it, mount a procfs — then binfmt_misc. The child makes system calls only; its answer is
/// four integers on a pipe.
fn try_probe() -> Probe {
    let mut fds = [0; 2];
    // SAFETY: a pipe into a local array.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Probe::failed(Step::Died);
    }
    let mut go = [0; 2];
    // SAFETY: as above.
    if unsafe { libc::pipe2(go.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Probe::failed(Step::Died);
    }
    // SAFETY: we own the fresh descriptors.
    let (rd, wr) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    let (go_rd, go_wr) = unsafe { (OwnedFd::from_raw_fd(go[0]), OwnedFd::from_raw_fd(go[1])) };
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID | libc::SIGCHLD;
    // SAFETY: clone without a new stack is a fork; the child makes system calls only.
    let pid = unsafe { libc::syscall(libc::SYS_clone, flags as libc::c_ulong, 0, 0, 0, 0) };
    if pid < 0 {
        return Probe::failed(Step::Clone);
    }
    if pid == 0 {
        // SAFETY: the child, in its new namespaces: system calls on fixed buffers only.
        unsafe { child(go_rd.as_raw_fd(), wr.as_raw_fd()) }
    }
    let pid = pid as i32;
    drop(go_rd);
    drop(wr);
    // SAFETY: plain id queries.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    let mapped = write_proc(pid, "setgroups", "deny")
        .and_then(|()| write_proc(pid, "uid_map", &format!("0 {uid} 1")))
        .and_then(|()| write_proc(pid, "gid_map", &format!("0 {gid} 1")));
    if mapped.is_ok() {
        // SAFETY: one byte to our child.
        unsafe { libc::write(go_wr.as_raw_fd(), [1u8].as_ptr().cast(), 1) };
    }
    drop(go_wr);
    let mut answer = Vec::new();
    let _ = std::fs::File::from(rd).read_to_end(&mut answer);
    // SAFETY: reaping our child.
    unsafe { libc::waitpid(pid, std::ptr::null_mut(), 0) };
    if let Err(errno) = mapped {
        let f = Failure {
            step: Step::IdMap,
            errno,
        };
        return Probe {
            userns: Err(f),
            binfmt: Err(f),
        };
    }
    interpret(&answer)
}

/// The child's four integers: userns step and errno (0 0 = fine), binfmt step and errno.
fn interpret(answer: &[u8]) -> Probe {
    let died = Failure {
        step: Step::Died,
        errno: 0,
    };
    if answer.len() != 16 {
        return Probe {
            userns: Err(died),
            binfmt: Err(died),
        };
    }
    let n = |i: usize| i32::from_ne_bytes(answer[i * 4..i * 4 + 4].try_into().expect("4 bytes"));
    let result = |step: i32, errno: i32| match step {
        0 => Ok(()),
        s => Err(Failure {
            step: Step::from_code(s),
            errno,
        }),
    };
    let userns = result(n(0), n(1));
    Probe {
        userns,
        binfmt: match userns {
            Err(e) => Err(e),
            Ok(()) => result(n(2), n(3)),
        },
    }
}

/// The probe's child. Never returns.
unsafe fn child(go: i32, out: i32) -> ! {
    let mut byte = 0u8;
    let mut answer = [0i32; 4];
    let report = |answer: &[i32; 4]| -> ! {
        libc::write(out, answer.as_ptr().cast(), 16);
        libc::_exit(0)
    };
    // EOF: the host could not write the map (it reports that itself).
    if libc::read(go, (&mut byte as *mut u8).cast(), 1) != 1 {
        libc::_exit(1);
    }
    let null = std::ptr::null::<libc::c_char>();
    let tmpfs = c"tmpfs".as_ptr();
    let steps: [(i32, &dyn Fn() -> libc::c_int); 6] = [
        (3, &|| {
            libc::mount(
                null,
                c"/".as_ptr(),
                null,
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        }),
        (4, &|| {
            libc::mount(tmpfs, c"/tmp".as_ptr(), tmpfs, 0, std::ptr::null())
        }),
        (4, &|| {
            libc::mkdir(c"/tmp/r".as_ptr(), 0o755);
            libc::mount(tmpfs, c"/tmp/r".as_ptr(), tmpfs, 0, std::ptr::null())
        }),
        (5, &|| {
            libc::mkdir(c"/tmp/r/old".as_ptr(), 0o755);
            libc::syscall(
                libc::SYS_pivot_root,
                c"/tmp/r".as_ptr(),
                c"/tmp/r/old".as_ptr(),
            ) as libc::c_int
        }),
        (5, &|| libc::chdir(c"/".as_ptr())),
        (6, &|| {
            libc::mkdir(c"/proc".as_ptr(), 0o755);
            let p = c"proc".as_ptr();
            libc::mount(p, c"/proc".as_ptr(), p, 0, std::ptr::null())
        }),
    ];
    for (code, step) in steps {
        if step() != 0 {
            answer[0] = code;
            answer[1] = Errno::last_raw();
            report(&answer);
        }
    }
    libc::mkdir(c"/binfmt".as_ptr(), 0o755);
    let b = c"binfmt_misc".as_ptr();
    if libc::mount(b, c"/binfmt".as_ptr(), b, 0, std::ptr::null()) != 0 {
        answer[2] = 7;
        answer[3] = Errno::last_raw();
    } else if libc::access(c"/binfmt/register".as_ptr(), libc::F_OK) != 0 {
        answer[2] = 8;
    }
    report(&answer)
}

/// The isolation a build or run gets: the rung, and the probe behind it (none when
/// `--isolation none` made probing needless).
#[derive(Debug, Clone)]
pub struct Decision {
    pub asked: Isolation,
    pub rung: Rung,
    pub probe: Option<Probe>,
}

impl Decision {
    /// Why rung 3, in words.
    pub fn reason(&self) -> String {
        match (&self.probe, self.asked) {
            (_, Isolation::None) => "asked for (--isolation none)".into(),
            (Some(p), _) => p
                .no_userns_reason()
                .unwrap_or_else(|| "no sandbox was asked for".into()),
            (None, _) => "no probe was made".into(),
        }
    }

    /// The one line auto mode says about a rung below 0.
    pub fn announcement(&self) -> Option<String> {
        match self.rung {
            Rung::Full => None,
            Rung::Unsandboxed => Some(format!(
                "no isolation: {}; rung 3 of 3 costs: {}",
                self.reason(),
                Rung::Unsandboxed.cost()
            )),
            r => Some(format!(
                "isolation rung {} ({}): {}",
                r.number(),
                self.probe.map(|p| p.summary()).unwrap_or_default(),
                r.cost()
            )),
        }
    }
}

/// Resolve `--isolation` (flag, environment, user config) and probe as needed. A forced
/// `sandbox` that cannot work is an error, never a silent downgrade.
pub fn decide(settings: &Settings, flag: Option<Isolation>) -> Result<Decision> {
    let asked = settings.get_or(&ISOLATION, flag, Isolation::parse, Isolation::Auto)?;
    if asked == Isolation::None {
        return Ok(Decision {
            asked,
            rung: Rung::Unsandboxed,
            probe: None,
        });
    }
    let p = probe();
    let rung = p.rung();
    if asked == Isolation::Sandbox && rung == Rung::Unsandboxed {
        bail!(
            "--isolation sandbox: {}.\n{}",
            p.no_userns_reason().unwrap_or_default(),
            fixes()
        );
    }
    Ok(Decision {
        asked,
        rung,
        probe: Some(p),
    })
}

/// The refusal (exit 125) of what needs a sandbox in rung 3: why there is none, and every
/// fix.
pub fn refusal(what: &str, d: &Decision) -> anyhow::Error {
    let why = match (d.asked, d.probe.and_then(|p| p.userns.err())) {
        (Isolation::None, _) => "--isolation none was asked for".to_string(),
        (_, Some(f)) => format!("user namespaces unavailable: {}", f.words()),
        _ => d.reason(),
    };
    anyhow::anyhow!(
        "{what} needs the sandbox, and this run has none ({why}).\n{}",
        fixes()
    )
}

/// This binary's resolved path (what an AppArmor profile must name).
pub fn exe_path() -> String {
    std::fs::read_link("/proc/self/exe")
        .map(|p| p.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "/usr/local/bin/cargo-for-arm".into())
}

/// The AppArmor profile that lets this binary create user namespaces (Ubuntu 23.10+).
pub fn apparmor_profile(exe: &str) -> String {
    format!(
        "abi <abi/4.0>,\ninclude <tunables/global>\n\nprofile cargo-for-arm {exe} flags=(unconfined) {{\n  userns,\n\n  include if exists <local/cargo-for-arm>\n}}\n"
    )
}

/// The commands that load [`apparmor_profile`].
pub fn apparmor_commands(exe: &str) -> String {
    format!(
        "sudo tee /etc/apparmor.d/cargo-for-arm <<'EOF'\n{}EOF\nsudo apparmor_parser -r /etc/apparmor.d/cargo-for-arm",
        apparmor_profile(exe)
    )
}

/// Every way to get a sandbox back, for the refusals of rung 3.
pub fn fixes() -> String {
    let exe = exe_path();
    format!(
        "To get the sandbox (and emulated builds, `run`) back, one of:\n\
         - AppArmor (Ubuntu 23.10+, GitHub's ubuntu-24.04): a profile for this binary ({exe}):\n{}\n\
         - or the sysctls: sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0 (AppArmor); \
         sudo sysctl -w user.max_user_namespaces=15000 (where it is 0); \
         sudo sysctl -w kernel.unprivileged_userns_clone=1 (older Debian kernels)\n\
         - or, in a container: docker run --security-opt seccomp=unconfined --security-opt systempaths=unconfined \
         (or --privileged), so that unshare(CLONE_NEWUSER) and mount are allowed",
        indent(&apparmor_commands(&exe))
    )
}

fn indent(s: &str) -> String {
    s.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

static ANNOUNCED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this process has already said that it runs without isolation (and from now on, it
/// has): the rung is said once, even when a build also creates its default rootfs.
pub fn announced() -> bool {
    ANNOUNCED.swap(true, std::sync::atomic::Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(v: [i32; 4]) -> Vec<u8> {
        v.iter().flat_map(|n| n.to_ne_bytes()).collect()
    }

    #[test]
    fn every_failing_step_means_rung_3_and_says_why() {
        for (step, errno, words) in [
            (
                4,
                libc::EPERM,
                "mounting a tmpfs in a new user namespace failed with EPERM",
            ),
            (
                5,
                libc::EACCES,
                "pivot_root in a new user namespace failed with EACCES",
            ),
            (6, libc::EPERM, "masked /proc"),
        ] {
            let p = interpret(&answer([step, errno, 0, 0]));
            assert_eq!(p.rung(), Rung::Unsandboxed);
            let r = p.no_userns_reason().unwrap();
            assert!(r.contains(words), "{r}");
            assert!(
                r.starts_with("user namespaces are unavailable because"),
                "{r}"
            );
        }
        let p = interpret(&answer([0, 0, 0, 0]));
        assert_eq!(p.rung(), Rung::Full);
        let p = interpret(&answer([0, 0, 7, libc::EPERM]));
        assert_ne!(p.rung(), Rung::Full);
        assert_ne!(p.rung(), Rung::Unsandboxed);
        assert!(p
            .summary()
            .starts_with("userns ok, private binfmt_misc: no (mounting binfmt_misc"));
        // A child that died without a word is no sandbox either.
        assert_eq!(interpret(b"").rung(), Rung::Unsandboxed);
        let f = Failure {
            step: Step::IdMap,
            errno: libc::EPERM,
        };
        assert!(f
            .words()
            .contains("the id-map write failed with EPERM (AppArmor"));
        let f = Failure {
            step: Step::Clone,
            errno: libc::ENOSPC,
        };
        assert!(f.words().contains("ENOSPC (user.max_user_namespaces is 0"));
    }

    #[test]
    fn the_profile_names_the_binary_and_is_loaded_by_the_commands() {
        let p = apparmor_profile("/home/u/.cargo/bin/cargo-for-arm");
        assert!(
            p.contains("profile cargo-for-arm /home/u/.cargo/bin/cargo-for-arm flags=(unconfined)")
        );
        assert!(p.contains("  userns,"));
        let c = apparmor_commands("/x/cargo-for-arm");
        assert!(c.contains("apparmor_parser -r /etc/apparmor.d/cargo-for-arm"));
        assert_eq!(Isolation::parse("none").unwrap(), Isolation::None);
        assert!(Isolation::parse("off").is_err());
    }
}
