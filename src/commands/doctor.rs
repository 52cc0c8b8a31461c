//! `cargo for-arm doctor`: every prerequisite checked by trying it in a throwaway child.

use std::fmt::Write as _;
use std::io::Read as _;
use std::os::fd::AsRawFd;
use std::path::Path;

use anyhow::Result;

use crate::arch::Arch;
use crate::idmap::{self, IdMap, MapMode};
use crate::isolation;
use crate::qemu;
use crate::sandbox;
use crate::sandbox::sys::{self, FdWriter, Kernel};

struct Check {
    name: &'static str,
    ok: bool,
    detail: String,
    /// A failed optional check is a warning, not a reason for exit 1.
    required: bool,
}

fn read_sysctl(name: &str) -> Option<String> {
    std::fs::read_to_string(Path::new("/proc/sys").join(name.replace('.', "/")))
        .ok()
        .map(|s| s.trim().to_string())
}

/// Clone with `flags`, write `map`, run `action` in the child and return what it reported.
fn probe(flags: libc::c_int, map: &IdMap, action: probes::Action) -> Result<(), String> {
    let (rep_rd, rep_wr) = sys::pipe().map_err(|e| e.to_string())?;
    let wfd = rep_wr.as_raw_fd();
    let res = sandbox::in_userns(flags & !libc::CLONE_NEWUSER, map, &|| {
        // The child writes its answer with write(2), allocating nothing.
        let mut w = FdWriter::new(&Kernel, wfd);
        let _ = match action(&Kernel) {
            Ok(()) => w.write_str("ok"),
            Err(e) => write!(w, "{e}"),
        };
        let _ = w.finish();
        0
    });
    drop(rep_wr);
    let mut out = String::new();
    std::fs::File::from(rep_rd).read_to_string(&mut out).ok();
    match res {
        Err(e) => Err(format!("{e:#}")),
        Ok(_) if out == "ok" => Ok(()),
        Ok(_) if out.is_empty() => Err("the probe died without a word".into()),
        Ok(_) => Err(out),
    }
}

/// What the probes' children try: kernel calls only, through `Kernel` (they run after
/// clone and allocate nothing).
mod probes {
    // Their errors live on the stack: no Box after clone.
    #![allow(clippy::result_large_err, clippy::large_enum_variant)]

    use crate::sandbox::sys::{Kernel, Sys, SysError};

    /// Why a probe failed, as its child reports it.
    #[derive(Debug, thiserror::Error)]
    pub enum ProbeError {
        #[error(transparent)]
        Sys(#[from] SysError),
        #[error("binfmt_misc mounted but has no register file")]
        NoRegisterFile,
    }

    /// What a probe's child tries: kernel calls only, through `Kernel` (it runs after clone).
    pub type Action = fn(&Kernel) -> Result<(), ProbeError>;

    pub fn nothing(_: &Kernel) -> Result<(), ProbeError> {
        Ok(())
    }

    fn private_tmp(k: &Kernel) -> Result<(), ProbeError> {
        k.mount(
            None,
            c"/",
            None,
            libc::MS_REC | libc::MS_PRIVATE,
            None,
            c"/",
        )?;
        k.mount(Some(c"tmpfs"), c"/tmp", Some(c"tmpfs"), 0, None, c"/tmp")?;
        Ok(())
    }

    pub fn try_mounts(k: &Kernel) -> Result<(), ProbeError> {
        private_tmp(k)?;
        // In our private tmpfs; a failure shows in the mount below.
        let _ = k.mkdirat(libc::AT_FDCWD, c"/tmp/proc", 0o755);
        k.mount(
            Some(c"proc"),
            c"/tmp/proc",
            Some(c"proc"),
            0,
            None,
            c"/tmp/proc",
        )?;
        Ok(())
    }

    pub fn try_binfmt(k: &Kernel) -> Result<(), ProbeError> {
        private_tmp(k)?;
        let _ = k.mkdirat(libc::AT_FDCWD, c"/tmp/binfmt", 0o755);
        let fs = Some(c"binfmt_misc");
        k.mount(fs, c"/tmp/binfmt", fs, 0, None, c"binfmt_misc")?;
        if k.exists(c"/tmp/binfmt/register") {
            Ok(())
        } else {
            Err(ProbeError::NoRegisterFile)
        }
    }
}

fn userns_fix() -> String {
    let mut fixes = Vec::new();
    if read_sysctl("user.max_user_namespaces").as_deref() == Some("0") {
        fixes.push(
            "user.max_user_namespaces is 0: 'sysctl -w user.max_user_namespaces=15000'".to_string(),
        );
    }
    if read_sysctl("kernel.unprivileged_userns_clone").as_deref() == Some("0") {
        fixes.push("Debian's kernel.unprivileged_userns_clone is 0: 'sysctl -w kernel.unprivileged_userns_clone=1'".to_string());
    }
    if fixes.is_empty() {
        fixes.push("a container's seccomp profile may forbid user namespaces; run on the host or allow unshare/clone(CLONE_NEWUSER)".into());
    }
    fixes.join("; ")
}

fn apparmor_fix() -> String {
    if read_sysctl("kernel.apparmor_restrict_unprivileged_userns").as_deref() == Some("1") {
        "AppArmor restricts unprivileged user namespaces (Ubuntu 23.10+): 'sysctl -w kernel.apparmor_restrict_unprivileged_userns=0', or load a profile for cargo-for-arm: \
         'abi <abi/4.0>, include <tunables/global> profile cargo-for-arm /path/to/cargo-for-arm flags=(unconfined) { userns, }' into /etc/apparmor.d/".into()
    } else {
        "the kernel refused it; check for an LSM (AppArmor, SELinux) policy on user namespaces"
            .into()
    }
}

/// Host binfmt_misc registrations, with whether they carry F (and the worrying C).
fn host_binfmt() -> (bool, String) {
    let dir = Path::new("/proc/sys/fs/binfmt_misc");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return (
            true,
            "the host's binfmt_misc is not mounted: no global registrations".into(),
        );
    };
    let mut found = Vec::new();
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == "register" || name == "status" {
            continue;
        }
        let text = std::fs::read_to_string(e.path()).unwrap_or_default();
        let flags = text
            .lines()
            .find_map(|l| l.strip_prefix("flags: "))
            .unwrap_or("")
            .to_string();
        found.push(format!("{name} (flags '{flags}')"));
    }
    if found.is_empty() {
        (true, "no global registrations".into())
    } else {
        (
            true,
            format!(
                "global registrations: {}; a sandbox with its own binfmt_misc ignores them",
                found.join(", ")
            ),
        )
    }
}

/// The namespaces a sandbox needs, each tried in a throwaway child with a single-id map.
fn namespace_checks(single: &IdMap) -> Vec<Check> {
    let userns = probe(libc::CLONE_NEWUSER, single, probes::nothing);
    let flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS | libc::CLONE_NEWPID;
    let mounts = probe(flags, single, probes::try_mounts);
    vec![
        Check {
            name: "user namespaces + id map",
            ok: userns.is_ok(),
            detail: match &userns {
                Ok(()) => "unprivileged user namespace created and single-id map written".into(),
                Err(e) if e.contains("clone(") => format!("{e}; {}", userns_fix()),
                Err(e) => format!("{e}; {}", apparmor_fix()),
            },
            required: true,
        },
        Check {
            name: "mount + pid namespaces, procfs",
            ok: mounts.is_ok(),
            detail: match &mounts {
                Ok(()) => "tmpfs and a fresh procfs mounted in a new mount namespace".into(),
                Err(e) => format!(
                    "{e}; {} (inside a container with a masked /proc a new procfs is refused)",
                    apparmor_fix()
                ),
            },
            required: true,
        },
    ]
}

/// A full id map from /etc/subuid, written by newuidmap/newgidmap (optional).
fn full_map_check() -> Check {
    let (detail, ok) = match idmap::choose(MapMode::Full, &idmap::Sources::default()) {
        Ok((m, _)) => match probe(libc::CLONE_NEWUSER, &m, probes::nothing) {
            Ok(()) => (format!("{m} written by newuidmap/newgidmap"), true),
            Err(e) => (format!("{e}; runs fall back to a single-id map"), false),
        },
        Err(e) => (format!("{e:#}; runs use a single-id map"), false),
    };
    Check {
        name: "full id map (subuid)",
        ok,
        detail,
        required: false,
    }
}

/// What the default `build` needs besides the sandbox: a rootfs (configured, or a Debian
/// mirror and keyring to create the default one from) and a host cargo for the dependency
/// fetch.
fn default_build_checks() -> Vec<Check> {
    let configured = crate::settings::Settings::user()
        .ok()
        .and_then(|s| s.get(&crate::settings::ROOTFS, None));
    // The default rootfs is armhf: its mirror (an Ubuntu host's ports archive, not its own)
    // and the keyring of that archive's distribution.
    use crate::rootfs::debian::sources;
    let mirror = sources::mirror_for("armhf", None);
    let keyring = mirror
        .as_ref()
        .map_err(|e| anyhow::anyhow!("{e:#}"))
        .and_then(|m| sources::keyring_for(None, m.distro));
    let (source_ok, source) = match (&configured, &mirror, &keyring) {
        (Some(v), _, _) => (true, format!("rootfs {} (from {})", v.raw, v.origin)),
        (None, Ok(m), Ok(k)) => {
            let (distro, suite) = sources::default_release("armhf");
            (
                true,
                format!(
                    "the default rootfs ({} {suite}, armhf) is created from {}, verified with {}",
                    distro.name(),
                    m.url,
                    k.display()
                ),
            )
        }
        (None, Err(e), _) => (false, format!("{e:#}")),
        (None, Ok(_), Err(e)) => (false, format!("{e:#}")),
    };
    let cargo = std::process::Command::new("cargo")
        .arg("--version")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
    vec![
        Check {
            name: "a rootfs for builds",
            ok: source_ok,
            detail: source,
            required: false,
        },
        Check {
            name: "host cargo (dependency fetch)",
            ok: cargo.is_some(),
            detail: cargo.unwrap_or_else(|| {
                "no cargo on PATH: builds fetch dependencies inside the sandbox with the network on; \
                 install Rust (rustup) to fetch them on the host"
                    .into()
            }),
            required: false,
        },
    ]
}

/// A private binfmt_misc (or the host's F registrations to fall back on), and what the host
/// has registered.
fn binfmt_checks(single: &IdMap) -> Vec<Check> {
    let binfmt = probe(
        libc::CLONE_NEWUSER | libc::CLONE_NEWNS,
        single,
        probes::try_binfmt,
    );
    let (host_ok, host_detail) = host_binfmt();
    let has_host_f = Arch::ALL
        .iter()
        .any(|a| crate::sandbox::spec::host_registration(*a).is_some());
    vec![
        Check {
            name: "private binfmt_misc",
            ok: binfmt.is_ok() || has_host_f,
            detail: match &binfmt {
                Ok(()) => "binfmt_misc mounted inside a user namespace (Linux 6.7+)".into(),
                Err(e) if has_host_f => format!("{e}; falling back to the host's F registrations"),
                Err(e) => format!("{e}; needs Linux 6.7 or later, or a host registration of a static qemu with flag F"),
            },
            // Without one, rung 2 still builds natively: the rung table says what is lost.
            required: false,
        },
        Check {
            name: "host binfmt_misc",
            ok: host_ok,
            detail: host_detail,
            required: false,
        },
    ]
    .into_iter()
    .chain(argv0_checks())
    .collect()
}

/// A host registration rung 1 would use without the P flag: ARM programs lose their argv[0]
/// (busybox applets, rustup proxies and `ld.lld` then see a path instead of their name).
fn argv0_checks() -> Vec<Check> {
    argv0_checks_in(std::path::Path::new(crate::sandbox::binfmt::HOST_DIR))
}

fn argv0_checks_in(dir: &std::path::Path) -> Vec<Check> {
    use crate::sandbox::binfmt::host_entry;
    [Arch::Arm, Arch::Aarch64]
        .iter()
        .filter_map(|a| host_entry(dir, *a))
        .filter(|e| !e.preserves_argv0())
        .map(|e| Check {
            name: "host registration flags",
            ok: false,
            detail: format!(
                "{}: no P flag, so ARM programs started through it lose their argv[0] (multi-call \
                 programs such as busybox see a path); register it with flags FP (Debian: \
                 update-binfmts, or /usr/lib/binfmt.d/*.conf with ':…:FP')",
                e.describe()
            ),
            required: false,
        })
        .collect()
}

/// A static qemu for each architecture asked for (the first one is required).
fn qemu_checks(arches: &[String]) -> Result<Vec<Check>> {
    let arches: Vec<Arch> = if arches.is_empty() {
        vec![Arch::Arm, Arch::Aarch64]
    } else {
        arches
            .iter()
            .map(|a| Arch::parse(a))
            .collect::<Result<_>>()?
    };
    let path = std::env::var("PATH").ok();
    // A missing qemu is fetched on first use unless fetching is forbidden: only then is it
    // a failure.
    let fetch = qemu::may_fetch();
    Ok(arches
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let q = qemu::find(*a, None, path.as_deref());
            Check {
                name: if i == 0 { "static qemu" } else { "" },
                ok: q.is_ok(),
                detail: match q {
                    Ok(q) => format!("{a}: {}", q.path.display()),
                    Err(_) if fetch => format!(
                        "none for {a} yet: Debian's static qemu is fetched on first use \
                         (now: cargo for-arm qemu fetch {a})"
                    ),
                    Err(e) => format!("{e:#}"),
                },
                required: i == 0 && !fetch,
            }
        })
        .collect())
}

/// One row of the table of what works here.
struct Row {
    what: &'static str,
    ok: bool,
    detail: String,
    /// The exact fix, when it does not work.
    fix: Option<String>,
}

/// The rustup toolchain's sysroot and the ARM targets it has the std of.
fn rustup_targets() -> (Option<std::path::PathBuf>, Vec<&'static str>) {
    let Some(sysroot) = crate::build::native::host_sysroot() else {
        return (None, Vec::new());
    };
    let have = ["armv7-unknown-linux-gnueabihf", "aarch64-unknown-linux-gnu"]
        .into_iter()
        .filter(|t| {
            crate::build::native::find_std_in_sysroot(&sysroot, t)
                .ok()
                .flatten()
                .is_some()
        })
        .collect();
    (Some(sysroot), have)
}

/// The table's row for native builds: in the sandbox, or without one (rung 3: rustup's
/// toolchain with the ARM std and the host's C tools).
fn native_row(rung: isolation::Rung, sysroot: Option<&std::path::Path>, targets: &[&str]) -> Row {
    use isolation::Rung;
    let missing = crate::build::unsandboxed::missing_host_tools();
    match rung {
        Rung::Unsandboxed => {
            let mut why = Vec::new();
            let mut fix = Vec::new();
            match sysroot {
                None => {
                    why.push("no rustc toolchain on PATH".to_string());
                    fix.push("install rustup (https://rustup.rs), then rustup target add armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu".to_string());
                }
                Some(_) if targets.is_empty() => {
                    why.push("the toolchain has no ARM standard library".into());
                    fix.push("rustup target add armv7-unknown-linux-gnueabihf aarch64-unknown-linux-gnu".into());
                }
                Some(_) => {}
            }
            if !missing.is_empty() {
                let progs: Vec<&str> = missing.iter().map(|(p, _)| *p).collect();
                let pkgs: Vec<&str> = missing.iter().map(|(_, p)| *p).collect();
                why.push(format!("no {} on PATH", progs.join(", ")));
                fix.push(format!("sudo apt-get install {}", pkgs.join(" ")));
            }
            Row {
                what: "native builds",
                ok: why.is_empty(),
                detail: match why.is_empty() {
                    true => format!(
                        "without a sandbox: {} ({}) with the host's clang, ld.lld and llvm-ar",
                        sysroot.map(|s| s.display().to_string()).unwrap_or_default(),
                        targets.join(", ")
                    ),
                    false => why.join("; "),
                },
                fix: (!fix.is_empty()).then(|| fix.join("; ")),
            }
        }
        _ => Row {
            what: "native builds",
            ok: true,
            detail: match sysroot {
                Some(s) if !targets.is_empty() => format!(
                    "in the sandbox: the toolchain {} ({}) or a tools rootfs, clang and lld of the tools rootfs",
                    s.display(),
                    targets.join(", ")
                ),
                _ => "in the sandbox, with a tools rootfs (created on first use with --mode native)".into(),
            },
            fix: None,
        },
    }
}

/// The ladder: the rung, and a table of what works here with the fix for each missing piece.
fn ladder(p: &isolation::Probe, arches: &[Arch]) -> (isolation::Rung, Vec<Row>) {
    use isolation::Rung;
    let rung = p.rung();
    // Without a sandbox ARM programs run under the tool's own qemu only, never one of PATH.
    let path = match rung {
        Rung::Unsandboxed => Some(String::new()),
        _ => std::env::var("PATH").ok(),
    };
    let mut qemus: Vec<String> = arches
        .iter()
        .filter_map(|a| qemu::find(*a, None, path.as_deref()).ok())
        .map(|q| q.path.display().to_string())
        .collect();
    // None here yet is fine while fetching is allowed: the first build fetches Debian's.
    let qemu_ok = !qemus.is_empty() || qemu::may_fetch();
    if qemus.is_empty() {
        qemus.push(match qemu_ok {
            true => "none yet: Debian's static qemu is fetched on first use".into(),
            false => "none, and CARGO_FOR_ARM_OFFLINE forbids fetching one".into(),
        });
    }
    let qemu_fix = format!(
        "cargo for-arm qemu fetch {} (a static qemu for the tool's own use; no root needed)",
        arches.first().copied().unwrap_or(Arch::Arm)
    );
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let sandbox_fix = isolation::fixes();
    // The sandbox's own wording of the fixes (binfmt.rs), with this kernel named.
    let why = match p.binfmt {
        Ok(()) => format!("{} turns binfmt_misc off", crate::sandbox::binfmt::ENV),
        Err(_) => format!("Linux {kernel} cannot mount binfmt_misc in a user namespace"),
    };
    let binfmt_fix = format!(
        "{why}: {}",
        crate::sandbox::binfmt::fix_text(arches.first().copied().unwrap_or(Arch::Arm))
    );
    let (sysroot, targets) = rustup_targets();
    let mut rows = Vec::new();
    rows.push(Row {
        what: "emulated builds",
        ok: rung <= Rung::HostBinfmt && qemu_ok,
        detail: match rung {
            Rung::Full => "a private binfmt_misc hands ARM programs to qemu".into(),
            Rung::HostBinfmt => "through the host's binfmt_misc registration (flag F)".into(),
            Rung::NoBinfmt => {
                "no: no binfmt_misc in a user namespace and no host registration".into()
            }
            Rung::Unsandboxed => "no: they need the sandbox".into(),
        },
        fix: match rung {
            Rung::Full | Rung::HostBinfmt if qemu_ok => None,
            Rung::Full | Rung::HostBinfmt => Some(qemu_fix.clone()),
            Rung::NoBinfmt => Some(binfmt_fix.clone()),
            Rung::Unsandboxed => Some(sandbox_fix.clone()),
        },
    });
    rows.push(native_row(rung, sysroot.as_deref(), &targets));
    rows.push(Row {
        what: "ARM tests",
        ok: qemu_ok,
        detail: match (qemu_ok, rung) {
            (false, _) => "no static qemu".into(),
            (true, Rung::Unsandboxed) => format!(
                "run as qemu -L <rootfs> PROG, without a sandbox: {}",
                qemus.join(", ")
            ),
            (true, Rung::NoBinfmt) => format!(
                "qemu named as the program, in the ARM sandbox: {}",
                qemus.join(", ")
            ),
            (true, _) => format!("in the ARM sandbox: {}", qemus.join(", ")),
        },
        fix: (!qemu_ok).then(|| qemu_fix.clone()),
    });
    let landlock = crate::build::unsandboxed::landlock_abi();
    rows.push(Row {
        what: "isolation",
        ok: rung != Rung::Unsandboxed,
        detail: match rung {
            Rung::Unsandboxed => format!(
                "reduced: no_new_privs, the seccomp policy, {}; child subreaper + PR_SET_PDEATHSIG",
                match landlock {
                    Some(v) => format!("Landlock (ABI {v}: writes only to the target dir, the build's own directory, /tmp and /dev)"),
                    None => "no Landlock (this kernel has none)".into(),
                }
            ),
            _ => "sandbox: user, mount and pid namespaces, capabilities dropped, no_new_privs, seccomp".into(),
        },
        fix: (rung == Rung::Unsandboxed).then(|| sandbox_fix.clone()),
    });
    (rung, rows)
}

fn print_ladder(p: &isolation::Probe, rung: isolation::Rung, rows: &[Row]) {
    println!(
        "isolation rung {} of 0–3: {}",
        rung.number(),
        match p.no_userns_reason() {
            Some(r) => format!("no isolation: {r}"),
            None => p.summary(),
        }
    );
    println!("  costs: {}", rung.cost());
    for r in rows {
        let mark = if r.ok { "yes" } else { "NO " };
        println!("  {mark} {:<16} {}", r.what, r.detail);
    }
    // Each fix once, with the rows it brings back.
    let mut fixes: Vec<(Vec<&str>, &str)> = Vec::new();
    for r in rows {
        let Some(fix) = r.fix.as_deref() else {
            continue;
        };
        match fixes.iter_mut().find(|(_, f)| *f == fix) {
            Some((whats, _)) => whats.push(r.what),
            None => fixes.push((vec![r.what], fix)),
        }
    }
    for (whats, fix) in fixes {
        println!("fix for {}:", whats.join(", "));
        for l in fix.lines() {
            println!("    {l}");
        }
    }
}

fn ladder_json(
    p: &isolation::Probe,
    rung: isolation::Rung,
    rows: &[Row],
    checks: &[Check],
) -> String {
    let fail = |r: &Result<(), isolation::Failure>| match r {
        Ok(()) => serde_json::Value::Null,
        Err(f) => serde_json::Value::String(f.words()),
    };
    let v = serde_json::json!({
        "rung": rung.number(),
        "cost": rung.cost(),
        "userns": p.userns.is_ok(),
        "userns_failure": fail(&p.userns),
        "private_binfmt_misc": p.binfmt.is_ok(),
        "private_binfmt_misc_failure": fail(&p.binfmt),
        "reason": p.no_userns_reason(),
        "works": rows.iter().map(|r| serde_json::json!({
            "what": r.what, "ok": r.ok, "detail": r.detail, "fix": r.fix,
        })).collect::<Vec<_>>(),
        "checks": checks.iter().map(|c| serde_json::json!({
            "name": c.name, "ok": c.ok, "required": c.required, "detail": c.detail,
        })).collect::<Vec<_>>(),
        "exe": isolation::exe_path(),
        "apparmor_profile": isolation::apparmor_profile(&isolation::exe_path()),
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

/// Print the checks and the verdict; whether every required check passed.
fn print_checks(checks: &[Check]) -> bool {
    let mut ok = true;
    for c in checks {
        let mark = if c.ok {
            "ok  "
        } else if c.required {
            "FAIL"
        } else {
            "warn"
        };
        println!("{mark} {:<32} {}", c.name, c.detail);
        ok &= c.ok || !c.required;
    }
    ok
}

pub fn run(arches: &[String], json: bool) -> Result<i32> {
    let uid = nix::unistd::getuid().as_raw();
    let gid = nix::unistd::getgid().as_raw();
    let single = IdMap::Single { uid, gid };
    let arch_list: Vec<Arch> = if arches.is_empty() {
        vec![Arch::Arm, Arch::Aarch64]
    } else {
        arches
            .iter()
            .map(|a| Arch::parse(a))
            .collect::<Result<_>>()?
    };
    let probe = isolation::probe();
    let (rung, rows) = ladder(&probe, &arch_list);
    let mut checks = namespace_checks(&single);
    checks.push(full_map_check());
    checks.extend(binfmt_checks(&single));
    checks.extend(qemu_checks(arches)?);
    checks.extend(default_build_checks());
    let native_ok = rows.iter().any(|r| r.what == "native builds" && r.ok);
    let sandbox_ok = checks.iter().all(|c| c.ok || !c.required);
    let usable = match rung {
        isolation::Rung::Unsandboxed => native_ok,
        _ => sandbox_ok,
    };
    if json {
        println!("{}", ladder_json(&probe, rung, &rows, &checks));
        return Ok(if usable { 0 } else { 1 });
    }
    print_ladder(&probe, rung, &rows);
    print_checks(&checks);
    println!(
        "{}",
        match (rung, usable) {
            (isolation::Rung::Unsandboxed, true) =>
                "cargo-for-arm builds natively here, without a sandbox (rung 3)",
            (isolation::Rung::Unsandboxed, false) =>
                "cargo-for-arm cannot build here until the fixes above are applied",
            (_, true) => "cargo-for-arm can run sandboxes on this machine",
            (_, false) => "cargo-for-arm cannot run sandboxes here until the FAIL lines are fixed",
        }
    );
    Ok(if usable { 0 } else { 1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_host_registration_without_p_is_a_warning() {
        let dir = std::env::temp_dir().join(format!("cfa-doctor-binfmt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let entry = |flags: &str| {
            format!(
                "enabled\ninterpreter /usr/bin/qemu-arm-static\nflags: {flags}\noffset 0\n\
                 magic 7f454c4601010100000000000000000002002800\n\
                 mask ffffffffffffff00fffffffffffffffffeffffff\n"
            )
        };
        std::fs::write(dir.join("some-name"), entry("F")).unwrap();
        let c = argv0_checks_in(&dir);
        assert_eq!(c.len(), 1);
        assert!(!c[0].ok && !c[0].required);
        assert!(c[0].detail.contains("no P flag") && c[0].detail.contains("some-name"));
        std::fs::write(dir.join("some-name"), entry("PF")).unwrap();
        assert!(argv0_checks_in(&dir).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
