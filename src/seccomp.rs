//! The seccomp policy: data under `seccomp/` (one JSON file per host architecture, in the
//! seccompiler format), compiled to BPF before the sandbox is entered and installed by the
//! command's process as the last step before execve.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use seccompiler::{BpfProgram, TargetArch};

/// `--seccomp off|default|FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Policy {
    Off,
    Default,
    File(PathBuf),
}

impl Policy {
    pub fn parse(s: &str) -> Policy {
        match s {
            "off" => Policy::Off,
            "default" => Policy::Default,
            f => Policy::File(f.into()),
        }
    }
}

fn host_arch() -> Result<TargetArch> {
    match std::env::consts::ARCH {
        "x86_64" => Ok(TargetArch::x86_64),
        "aarch64" => Ok(TargetArch::aarch64),
        a => bail!("no seccomp policy for a {a} host: use --seccomp off (and know that the sandbox then has no syscall filter) or --seccomp FILE"),
    }
}

/// The default policy of this host architecture.
pub fn default_json() -> Result<&'static str> {
    Ok(match host_arch()? {
        TargetArch::x86_64 => include_str!("../seccomp/x86_64.json"),
        _ => include_str!("../seccomp/aarch64.json"),
    })
}

/// Refuse the x32 ABI on x86_64: syscall numbers with bit 30 (__X32_SYSCALL_BIT) set fail
/// with EPERM. seccompiler's filters match by number, so x32 numbers would pass them.
fn x32_filter() -> BpfProgram {
    use seccompiler::sock_filter as f;
    const LD_W_ABS: u16 = 0x20;
    const JEQ_K: u16 = 0x15;
    const JSET_K: u16 = 0x45;
    const RET_K: u16 = 0x06;
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    vec![
        f {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 4,
        }, // seccomp_data.arch
        f {
            code: JEQ_K,
            jt: 0,
            jf: 3,
            k: AUDIT_ARCH_X86_64,
        },
        f {
            code: LD_W_ABS,
            jt: 0,
            jf: 0,
            k: 0,
        }, // seccomp_data.nr
        f {
            code: JSET_K,
            jt: 0,
            jf: 1,
            k: 0x4000_0000,
        },
        f {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ERRNO | libc::EPERM as u32,
        },
        f {
            code: RET_K,
            jt: 0,
            jf: 0,
            k: libc::SECCOMP_RET_ALLOW,
        },
    ]
}

/// Compile a policy into the programs to install, in order.
pub fn compile(policy: &Policy) -> Result<Vec<BpfProgram>> {
    let arch = host_arch();
    let json = match policy {
        Policy::Off => return Ok(Vec::new()),
        Policy::Default => default_json()?.to_string(),
        Policy::File(p) => {
            std::fs::read_to_string(p).with_context(|| format!("--seccomp {}", p.display()))?
        }
    };
    let arch = arch?;
    let map = seccompiler::compile_from_json(json.as_bytes(), arch)
        .map_err(|e| anyhow::anyhow!("compiling the seccomp policy: {e}"))?;
    let mut names: Vec<&String> = map.keys().collect();
    names.sort();
    let mut progs: Vec<BpfProgram> = names.into_iter().map(|n| map[n].clone()).collect();
    if arch == TargetArch::x86_64 {
        progs.push(x32_filter());
    }
    if progs.is_empty() {
        bail!("the seccomp policy has no filters");
    }
    Ok(progs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shipped_policies_compile_with_comments_on_every_rule() {
        for (arch, text) in [
            (TargetArch::x86_64, include_str!("../seccomp/x86_64.json")),
            (TargetArch::aarch64, include_str!("../seccomp/aarch64.json")),
        ] {
            let map = seccompiler::compile_from_json(text.as_bytes(), arch).unwrap();
            assert!(map.contains_key("deny_eperm") && map.contains_key("deny_enosys"));
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            for (_, filter) in v.as_object().unwrap() {
                for rule in filter["filter"].as_array().unwrap() {
                    assert!(
                        rule["comment"].as_str().is_some_and(|c| c.len() > 10),
                        "{rule}"
                    );
                }
            }
            let names: Vec<&str> = v["deny_eperm"]["filter"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["syscall"].as_str().unwrap())
                .collect();
            for must in [
                "kexec_load",
                "init_module",
                "bpf",
                "perf_event_open",
                "keyctl",
                "add_key",
                "request_key",
                "ptrace",
                "open_by_handle_at",
                "userfaultfd",
                "mount",
                "unshare",
                "ioctl",
                "io_uring_setup",
                "io_uring_enter",
                "io_uring_register",
                "kcmp",
                "personality",
                "mbind",
                "set_mempolicy",
                "get_mempolicy",
                "migrate_pages",
                "move_pages",
                "set_mempolicy_home_node",
            ] {
                assert!(names.contains(&must), "{must} missing");
            }
            // personality: refused unless the (low 32 bits of the) value is one of these.
            let rule = v["deny_eperm"]["filter"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["syscall"] == "personality")
                .unwrap();
            let kept: Vec<(u64, &str, &str)> = rule["args"]
                .as_array()
                .unwrap()
                .iter()
                .map(|a| {
                    (
                        a["val"].as_u64().unwrap(),
                        a["op"].as_str().unwrap(),
                        a["type"].as_str().unwrap(),
                    )
                })
                .collect();
            assert_eq!(
                kept,
                [0, 8, 0x20000, 0x20008, 0xffff_ffff].map(|v| (v, "ne", "dword"))
            );
            assert_eq!(v["deny_enosys"]["filter"][0]["syscall"], "clone3");
        }
    }

    #[test]
    fn off_is_empty_and_default_has_the_x32_guard() {
        assert!(compile(&Policy::Off).unwrap().is_empty());
        let progs = compile(&Policy::Default).unwrap();
        assert_eq!(progs.len(), 3);
        assert!(compile(&Policy::File("/nonexistent.json".into())).is_err());
    }
}
