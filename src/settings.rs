//! Settings: the one resolver of every configurable value.
//!
//! Precedence: the flag, then the environment variable, then the project's metadata
//! (`[package.metadata.for-arm]` / `[workspace.metadata.for-arm]`, nearest manifest first),
//! then the user's config file (`$XDG_CONFIG_HOME/cargo-for-arm/config.toml`, default
//! `~/.config/cargo-for-arm/config.toml`), then the caller's default. A project is code the
//! user did not necessarily write: keys that concern security are [`Scope::User`] and are
//! never read from its metadata.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// Who may set a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// The project's metadata may set it.
    Project,
    /// Only the user (flag, environment, user config): it could lower security.
    User,
}

/// A configurable value: its flag, environment variable and config-file key.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    pub flag: &'static str,
    pub env: &'static str,
    pub name: &'static str,
    pub scope: Scope,
}

pub const ROOTFS: Key = Key {
    flag: "--rootfs",
    env: "CARGO_FOR_ARM_ROOTFS",
    name: "rootfs",
    scope: Scope::Project,
};
pub const TOOLS_ROOTFS: Key = Key {
    flag: "--tools-rootfs",
    env: "CARGO_FOR_ARM_TOOLS_ROOTFS",
    name: "tools-rootfs",
    scope: Scope::User,
};
pub const MODE: Key = Key {
    flag: "--mode",
    env: "CARGO_FOR_ARM_MODE",
    name: "mode",
    scope: Scope::Project,
};
/// The architecture or target triple to build for, when neither `--target` nor `--arch` says.
pub const TARGET: Key = Key {
    flag: "--target",
    env: "CARGO_FOR_ARM_TARGET",
    name: "target",
    scope: Scope::Project,
};
/// `arch = "arm64"`: the same as `target`, by Debian's name.
pub const ARCH: Key = Key {
    flag: "--arch",
    env: "CARGO_FOR_ARM_ARCH",
    name: "arch",
    scope: Scope::Project,
};
pub const HANG_TIMEOUT: Key = Key {
    flag: "--hang-timeout",
    env: "CARGO_FOR_ARM_HANG_TIMEOUT",
    name: "hang-timeout",
    scope: Scope::Project,
};
/// Extra Debian packages of the default rootfs (`packages = ["libssl-dev"]`).
pub const PACKAGES: Key = Key {
    flag: "--package",
    env: "CARGO_FOR_ARM_PACKAGES",
    name: "packages",
    scope: Scope::Project,
};

/// Keys a project's `for-arm` metadata may set.
const PROJECT_KEYS: [&str; 8] = [
    "rootfs",
    "target",
    "arch",
    "mode",
    "packages",
    "env",
    "hang-timeout",
    "cache",
];
/// Keys only the user sets (flag, environment, user config): they could lower security or
/// choose what runs on the host.
const USER_KEYS: [&str; 13] = [
    "tools-rootfs",
    "native-rustc",
    "mirror",
    "keyring",
    "network",
    "seccomp",
    "map",
    "project-rw",
    "rootfs-rw",
    "qemu",
    "isolation",
    "sccache",
    "cache-network",
];
pub const NATIVE_RUSTC: Key = Key {
    flag: "--native-rustc",
    env: "CARGO_FOR_ARM_NATIVE_RUSTC",
    name: "native-rustc",
    scope: Scope::User,
};
/// Native mode's shared compile cache (`sccache`, `sccache:ro`, `none`).
pub const CACHE: Key = Key {
    flag: "--cache",
    env: "CARGO_FOR_ARM_CACHE",
    name: "cache",
    scope: Scope::Project,
};
/// The sccache program: it runs in the build sandbox, but the user chooses it.
pub const SCCACHE: Key = Key {
    flag: "--sccache",
    env: "CARGO_FOR_ARM_SCCACHE",
    name: "sccache",
    scope: Scope::User,
};
/// The compile cache may give the build the host's network (an HTTPS object store): only
/// the user's choice, never a project's.
pub const CACHE_NETWORK: Key = Key {
    flag: "--cache-network",
    env: "CARGO_FOR_ARM_CACHE_NETWORK",
    name: "cache-network",
    scope: Scope::User,
};
/// `URL`, or per architecture `ARCH=URL,…` (also a `[mirror]` table in the config file):
/// see `rootfs::debian::sources`.
pub const MIRROR: Key = Key {
    flag: "--mirror",
    env: "CARGO_FOR_ARM_MIRROR",
    name: "mirror",
    scope: Scope::User,
};
/// The OpenPGP keyring that proves an archive's `InRelease`.
pub const KEYRING: Key = Key {
    flag: "--keyring",
    env: "CARGO_FOR_ARM_KEYRING",
    name: "keyring",
    scope: Scope::User,
};

pub const ENV: Key = Key {
    flag: "--env",
    env: "CARGO_FOR_ARM_ENV",
    name: "env",
    scope: Scope::Project,
};

/// Where a value came from, for messages and for paths relative to a manifest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag(&'static str),
    Env(&'static str),
    /// The manifest whose metadata set it.
    Project(PathBuf),
    /// The user's config file.
    User(PathBuf),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Flag(n) => write!(f, "{n}"),
            Origin::Env(n) => write!(f, "{n}"),
            Origin::Project(m) => write!(f, "[package.metadata.for-arm] of {}", m.display()),
            Origin::User(c) => write!(f, "{}", c.display()),
        }
    }
}

/// A value and its origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Value {
    pub raw: String,
    pub origin: Origin,
}

impl Value {
    /// Parse it, naming the origin when that fails.
    pub fn parse<T>(&self, parse: impl FnOnce(&str) -> Result<T>) -> Result<T> {
        parse(&self.raw).with_context(|| format!("{} = {:?}", self.origin, self.raw))
    }

    /// As a path: one set in a manifest is relative to that manifest's directory.
    pub fn path(&self) -> PathBuf {
        match &self.origin {
            Origin::Project(m) => m.parent().unwrap_or(Path::new("/")).join(&self.raw),
            _ => PathBuf::from(&self.raw),
        }
    }
}

/// The sources below the flag and the environment, read once.
#[derive(Debug, Default, Clone)]
pub struct Settings {
    /// `for-arm` tables of the project's manifests, nearest first.
    project: Vec<(PathBuf, toml::Table)>,
    user: Option<(PathBuf, toml::Table)>,
}

impl Settings {
    /// The user's config file only (commands outside a project).
    pub fn user() -> Result<Settings> {
        Ok(Settings {
            project: Vec::new(),
            user: read_user_config()?,
        })
    }

    /// The user's config file and the `for-arm` metadata of these manifests (nearest first).
    pub fn with_project(manifests: &[PathBuf]) -> Result<Settings> {
        let mut project = Vec::new();
        for m in manifests {
            let text =
                std::fs::read_to_string(m).with_context(|| format!("reading {}", m.display()))?;
            let doc: toml::Table =
                toml::from_str(&text).with_context(|| format!("parsing {}", m.display()))?;
            for section in ["package", "workspace"] {
                let table = doc
                    .get(section)
                    .and_then(|p| p.get("metadata"))
                    .and_then(|md| md.get("for-arm"))
                    .and_then(|f| f.as_table());
                if let Some(t) = table {
                    project.push((m.clone(), t.clone()));
                }
            }
        }
        Ok(Settings {
            project,
            user: read_user_config()?,
        })
    }

    /// The user's config file and its table, for keys that are more than one string
    /// (`[mirror]` per architecture).
    pub fn user_table(&self) -> Option<(&Path, &toml::Table)> {
        self.user.as_ref().map(|(p, t)| (p.as_path(), t))
    }

    /// The value of `key`: `flag`, else its environment variable, else the project's
    /// metadata (for [`Scope::Project`] keys), else the user's config file.
    pub fn get(&self, key: &Key, flag: Option<&str>) -> Option<Value> {
        if let Some(f) = flag {
            return Some(Value {
                raw: f.to_string(),
                origin: Origin::Flag(key.flag),
            });
        }
        if let Some(v) = std::env::var(key.env).ok().filter(|v| !v.is_empty()) {
            return Some(Value {
                raw: v,
                origin: Origin::Env(key.env),
            });
        }
        let project = match key.scope {
            Scope::Project => self.project.as_slice(),
            Scope::User => &[],
        };
        let from_project = project
            .iter()
            .find_map(|(m, t)| str_of(t, key.name).map(|v| (v, Origin::Project(m.clone()))));
        let from_user = || {
            let (p, t) = self.user.as_ref()?;
            str_of(t, key.name).map(|v| (v, Origin::User(p.clone())))
        };
        from_project
            .or_else(from_user)
            .map(|(raw, origin)| Value { raw, origin })
    }

    /// [`Settings::get`], parsed, or `default`.
    pub fn get_or<T>(
        &self,
        key: &Key,
        flag: Option<T>,
        parse: impl FnOnce(&str) -> Result<T>,
        default: T,
    ) -> Result<T> {
        if let Some(f) = flag {
            return Ok(f);
        }
        match self.get(key, None) {
            Some(v) => v.parse(parse),
            None => Ok(default),
        }
    }
}

impl Settings {
    /// Warnings for the keys of the project's metadata that it may not set or that do not
    /// exist (a typo), each naming the manifest.
    pub fn project_key_warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (m, t) in &self.project {
            for k in t.keys() {
                if PROJECT_KEYS.contains(&k.as_str()) {
                    continue;
                }
                out.push(if USER_KEYS.contains(&k.as_str()) {
                    format!(
                        "{}: `{k}` in [package.metadata.for-arm] is ignored: only you set it (its flag, environment variable, or ~/.config/cargo-for-arm/config.toml), never a project",
                        m.display()
                    )
                } else {
                    format!(
                        "{}: unknown key `{k}` in [package.metadata.for-arm] (known: {})",
                        m.display(),
                        PROJECT_KEYS.join(", ")
                    )
                });
            }
        }
        out
    }

    /// A list of strings (`env = ["K=V", …]`) from the user's config file, then from the
    /// project's metadata (the nearest manifest that has the key, for [`Scope::Project`]
    /// keys): applied in that order, the project's win. Empty when unset.
    pub fn list(&self, key: &Key) -> Vec<(String, Origin)> {
        let strings = |t: &toml::Table| -> Vec<String> {
            t.get(key.name)
                .and_then(|v| v.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default()
        };
        // The user's first, so that the project's (applied after them) win.
        let mut out = Vec::new();
        if let Some((p, t)) = &self.user {
            out.extend(strings(t).into_iter().map(|v| (v, Origin::User(p.clone()))));
        }
        if key.scope == Scope::Project {
            if let Some((m, t)) = self.project.iter().find(|(_, t)| t.contains_key(key.name)) {
                out.extend(
                    strings(t)
                        .into_iter()
                        .map(|v| (v, Origin::Project(m.clone()))),
                );
            }
        }
        out
    }
}

/// A value as text: strings as they are, numbers and booleans written out
/// (`hang-timeout = 600`).
fn str_of(t: &toml::Table, key: &str) -> Option<String> {
    match t.get(key)? {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

fn user_config_path() -> Option<PathBuf> {
    std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .map(|c| c.join("cargo-for-arm/config.toml"))
}

fn read_user_config() -> Result<Option<(PathBuf, toml::Table)>> {
    let Some(path) = user_config_path().filter(|p| p.is_file()) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path)?;
    let doc: toml::Table =
        toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    Ok(Some((path, doc)))
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: Key = Key {
        flag: "--thing",
        env: "CARGO_FOR_ARM_TEST_SETTINGS_THING",
        name: "thing",
        scope: Scope::Project,
    };
    const SECURE: Key = Key {
        scope: Scope::User,
        ..KEY
    };

    fn settings() -> Settings {
        let table = |v: &str| {
            let mut t = toml::Table::new();
            t.insert("thing".into(), toml::Value::String(v.into()));
            t
        };
        Settings {
            project: vec![
                (PathBuf::from("/p/member/Cargo.toml"), table("member")),
                (PathBuf::from("/p/Cargo.toml"), table("workspace")),
            ],
            user: Some((PathBuf::from("/u/config.toml"), table("user"))),
        }
    }

    #[test]
    fn flag_then_env_then_project_then_user() {
        // One test owns the variable: the steps run in order.
        std::env::remove_var(KEY.env);
        let s = settings();
        assert_eq!(s.get(&KEY, Some("flag")).unwrap().raw, "flag");
        std::env::set_var(KEY.env, "env");
        assert_eq!(s.get(&KEY, None).unwrap().origin, Origin::Env(KEY.env));
        std::env::remove_var(KEY.env);
        let v = s.get(&KEY, None).unwrap();
        assert_eq!(v.raw, "member");
        assert_eq!(v.path(), Path::new("/p/member/member"));
        // Project metadata cannot set a user-only key.
        let v = s.get(&SECURE, None).unwrap();
        assert_eq!((v.raw.as_str(), v.path()), ("user", PathBuf::from("user")));
        // A typo and a key a project may not set are named.
        let mut t = toml::Table::new();
        t.insert("moed".into(), toml::Value::String("x".into()));
        t.insert("network".into(), toml::Value::String("host".into()));
        t.insert("mode".into(), toml::Value::String("native".into()));
        let typo = Settings {
            project: vec![(PathBuf::from("/p/Cargo.toml"), t)],
            user: None,
        };
        let w = typo.project_key_warnings();
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w.iter().any(|l| l.contains("unknown key `moed`")), "{w:?}");
        assert!(
            w.iter()
                .any(|l| l.contains("`network`") && l.contains("only you")),
            "{w:?}"
        );
        // A number in TOML is read as its text.
        let mut t = toml::Table::new();
        t.insert("thing".into(), toml::Value::Integer(600));
        let num = Settings {
            project: vec![(PathBuf::from("/p/Cargo.toml"), t)],
            user: None,
        };
        let n: u64 = num.get_or(&KEY, None, |s| Ok(s.parse()?), 1).unwrap();
        assert_eq!(n, 600);
        let none = Settings::default();
        assert_eq!(none.get(&SECURE, None), None);
        let n: u32 = none.get_or(&SECURE, None, |s| Ok(s.parse()?), 7).unwrap();
        assert_eq!(n, 7);
        let bad = s.get_or(&SECURE, None, |s| Ok(s.parse::<u32>()?), 7);
        assert!(format!("{:#}", bad.unwrap_err()).contains("/u/config.toml"));
    }
}
