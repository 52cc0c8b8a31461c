//! `rootfs create`: a Debian rootfs bootstrapped from a mirror without root, apt, debootstrap
//! or mmdebstrap. The package set is resolved here; the `.deb`s are verified through the
//! signed chain (`debian.rs`), unpacked into the new tree as root of a user namespace with the
//! full id map (stage 1), then configured by the rootfs's own dpkg inside the sandbox, under
//! emulation (stage 2). The result lands in the store atomically.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::idmap::{self, IdMap, MapMode};
use crate::rootfs::debian::{self, Suite};
use crate::rootfs::store::Store;

type Stanza = HashMap<String, String>;

/// Compare two Debian versions (`[epoch:]upstream[-revision]`) the way dpkg does.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    fn split(v: &str) -> (u64, &str, &str) {
        let (epoch, rest) = match v.split_once(':') {
            Some((e, r)) => (e.parse().unwrap_or(0), r),
            None => (0, v),
        };
        match rest.rsplit_once('-') {
            Some((u, r)) => (epoch, u, r),
            None => (epoch, rest, ""),
        }
    }
    fn order(c: Option<char>) -> i32 {
        match c {
            None => 0,
            Some('~') => -1,
            Some(c) if c.is_ascii_alphabetic() => c as i32,
            Some(c) => c as i32 + 256,
        }
    }
    fn part(a: &str, b: &str) -> Ordering {
        let (mut a, mut b) = (a, b);
        while !a.is_empty() || !b.is_empty() {
            // Non-digit prefixes, compared with ~ before everything and letters before others.
            let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
            let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
            let (mut ca, mut cb) = (a[..na].chars(), b[..nb].chars());
            loop {
                let (x, y) = (ca.next(), cb.next());
                if x.is_none() && y.is_none() {
                    break;
                }
                match order(x).cmp(&order(y)) {
                    Ordering::Equal => {}
                    o => return o,
                }
            }
            a = &a[na..];
            b = &b[nb..];
            let da = a.find(|c: char| !c.is_ascii_digit()).unwrap_or(a.len());
            let db = b.find(|c: char| !c.is_ascii_digit()).unwrap_or(b.len());
            let (x, y): (u128, u128) = (a[..da].parse().unwrap_or(0), b[..db].parse().unwrap_or(0));
            match x.cmp(&y) {
                Ordering::Equal => {}
                o => return o,
            }
            a = &a[da..];
            b = &b[db..];
        }
        Ordering::Equal
    }
    let (ea, ua, ra) = split(a);
    let (eb, ub, rb) = split(b);
    ea.cmp(&eb)
        .then_with(|| part(ua, ub))
        .then_with(|| part(ra, rb))
}

/// One alternative of a dependency: `name[:qualifier] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub name: String,
    pub constraint: Option<(String, String)>,
}

impl Atom {
    fn allows(&self, version: &str) -> bool {
        let Some((op, want)) = &self.constraint else {
            return true;
        };
        let o = vercmp(version, want);
        match op.as_str() {
            ">=" => o != Ordering::Less,
            "<=" => o != Ordering::Greater,
            ">>" | ">" => o == Ordering::Greater,
            "<<" | "<" => o == Ordering::Less,
            _ => o == Ordering::Equal,
        }
    }
}

/// `a (>= 1) | b, c:any` → clauses of alternatives.
pub fn parse_deps(field: &str) -> Vec<Vec<Atom>> {
    field
        .split(',')
        .map(|clause| {
            clause
                .split('|')
                .filter_map(|alt| {
                    let alt = alt.trim();
                    let (name, rest) = match alt.find([' ', '(']) {
                        Some(i) => (&alt[..i], alt[i..].trim()),
                        None => (alt, ""),
                    };
                    let name = name.split(':').next().unwrap_or(name).trim();
                    if name.is_empty() {
                        return None;
                    }
                    let constraint = rest
                        .strip_prefix('(')
                        .and_then(|r| r.strip_suffix(')'))
                        .map(|c| {
                            let c = c.trim();
                            let i = c.find(|ch: char| !"<>=".contains(ch)).unwrap_or(c.len());
                            (c[..i].to_string(), c[i..].trim().to_string())
                        });
                    Some(Atom {
                        name: name.to_string(),
                        constraint,
                    })
                })
                .collect::<Vec<_>>()
        })
        .filter(|c: &Vec<Atom>| !c.is_empty())
        .collect()
}

/// The newest stanza of each package, and who provides what.
pub struct Index {
    pub pkgs: HashMap<String, Stanza>,
    provides: HashMap<String, Vec<(String, Option<String>)>>,
}

impl Index {
    pub fn new(stanzas: Vec<Stanza>) -> Index {
        let mut pkgs: HashMap<String, Stanza> = HashMap::new();
        for s in stanzas {
            let name = s["Package"].clone();
            let newer = pkgs
                .get(&name)
                .is_none_or(|old| vercmp(&s["Version"], &old["Version"]) == Ordering::Greater);
            if newer {
                pkgs.insert(name, s);
            }
        }
        let mut provides: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for (name, s) in &pkgs {
            for clause in parse_deps(s.get("Provides").map(String::as_str).unwrap_or("")) {
                for a in clause {
                    let v = a.constraint.map(|(_, v)| v);
                    provides.entry(a.name).or_default().push((name.clone(), v));
                }
            }
        }
        for list in provides.values_mut() {
            list.sort();
        }
        Index { pkgs, provides }
    }

    /// Is `atom` satisfied by something already chosen?
    fn satisfied(&self, atom: &Atom, chosen: &HashSet<String>) -> bool {
        if chosen.contains(&atom.name) && atom.allows(&self.pkgs[&atom.name]["Version"]) {
            return true;
        }
        self.provides.get(&atom.name).is_some_and(|ps| {
            ps.iter().any(|(p, v)| {
                chosen.contains(p)
                    && (atom.constraint.is_none() || v.as_deref().is_some_and(|v| atom.allows(v)))
            })
        })
    }

    /// A package that can satisfy `atom`: the real one, else the first provider.
    fn candidate(&self, atom: &Atom) -> Option<String> {
        if let Some(s) = self.pkgs.get(&atom.name) {
            if atom.allows(&s["Version"]) {
                return Some(atom.name.clone());
            }
        }
        self.provides.get(&atom.name).and_then(|ps| {
            ps.iter()
                .find(|(_, v)| {
                    atom.constraint.is_none() || v.as_deref().is_some_and(|v| atom.allows(v))
                })
                .map(|(p, _)| p.clone())
        })
    }

    /// The closure of `roots` over Pre-Depends and Depends, in the order packages were added.
    pub fn resolve(&self, roots: &[String]) -> Result<Vec<String>> {
        let mut chosen: HashSet<String> = HashSet::new();
        let mut order = Vec::new();
        let mut work: Vec<String> = Vec::new();
        for r in roots {
            let atom = Atom {
                name: r.clone(),
                constraint: None,
            };
            let pick = self
                .candidate(&atom)
                .with_context(|| format!("unsatisfiable: package {r} is not in the index"))?;
            if chosen.insert(pick.clone()) {
                order.push(pick.clone());
                work.push(pick);
            }
        }
        while let Some(name) = work.pop() {
            let s = &self.pkgs[&name];
            for field in ["Pre-Depends", "Depends"] {
                for clause in parse_deps(s.get(field).map(String::as_str).unwrap_or("")) {
                    if clause.iter().any(|a| self.satisfied(a, &chosen)) {
                        continue;
                    }
                    let pick =
                        clause
                            .iter()
                            .find_map(|a| self.candidate(a))
                            .with_context(|| {
                                let alts: Vec<String> = clause
                                    .iter()
                                    .map(|a| match &a.constraint {
                                        Some((op, v)) => format!("{} ({op} {v})", a.name),
                                        None => a.name.clone(),
                                    })
                                    .collect();
                                format!(
                                "unsatisfiable: {name} depends on {}, which is not in the index",
                                alts.join(" | ")
                            )
                            })?;
                    if chosen.insert(pick.clone()) {
                        order.push(pick.clone());
                        work.push(pick);
                    }
                }
            }
        }
        Ok(order)
    }
}

impl Index {
    /// `names` ordered so that each package comes after what it (pre-)depends on, as far as
    /// dependency cycles allow: dpkg unpacks in argument order and checks Pre-Depends there.
    pub fn install_order(&self, names: &[&String]) -> Vec<String> {
        let set: HashSet<&str> = names.iter().map(|n| n.as_str()).collect();
        let mut done: HashSet<String> = HashSet::new();
        let mut out = Vec::new();
        fn visit(
            idx: &Index,
            n: &str,
            set: &HashSet<&str>,
            done: &mut HashSet<String>,
            out: &mut Vec<String>,
        ) {
            if !done.insert(n.to_string()) {
                return;
            }
            let s = &idx.pkgs[n];
            for field in ["Pre-Depends", "Depends"] {
                for clause in parse_deps(s.get(field).map(String::as_str).unwrap_or("")) {
                    let dep = clause.iter().find_map(|a| {
                        if set.contains(a.name.as_str()) {
                            return Some(a.name.clone());
                        }
                        idx.provides
                            .get(&a.name)?
                            .iter()
                            .find(|(p, _)| set.contains(p.as_str()))
                            .map(|(p, _)| p.clone())
                    });
                    if let Some(d) = dep {
                        visit(idx, &d, set, done, out);
                    }
                }
            }
            out.push(n.to_string());
        }
        for n in names {
            visit(self, n, &set, &mut done, &mut out);
        }
        out
    }
}

#[derive(Debug, clap::Args)]
pub struct CreateOptions {
    /// The name in the store.
    pub name: String,
    /// Debian suite: bookworm, trixie, …
    #[arg(long)]
    pub suite: String,
    /// Debian architecture: armhf, arm64, …
    #[arg(long)]
    pub arch: String,
    /// More packages, comma-separated (e.g. cargo,pkg-config,libssl-dev).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// minbase (essential + required + apt) or buildd (+ build-essential).
    #[arg(long, default_value = "minbase")]
    pub variant: String,
    /// Mirror (default: CARGO_FOR_ARM_MIRROR, the user's config file, the host's apt sources).
    #[arg(long)]
    pub mirror: Option<String>,
    /// OpenPGP keyring for the InRelease signature (default: Debian's archive keyring).
    #[arg(long)]
    pub keyring: Option<PathBuf>,
    /// Do not check the InRelease signature (warns; the rootfs is recorded unverified).
    #[arg(long)]
    pub no_verify: bool,
    /// Bootstrap from the packages even when the finished tree of an earlier create of the
    /// same packages is kept (in ~/.cache/cargo-for-arm/snapshots), and keep none.
    #[arg(long)]
    pub no_snapshot: bool,
}

/// The stage-2 script: the rootfs's dpkg installs the essential packages, then the rest.
const STAGE2: &str = r#"set -e
export DEBIAN_FRONTEND=noninteractive DEBCONF_NONINTERACTIVE_SEEN=true LC_ALL=C
mkdir -p /var/lib/dpkg/info /var/lib/dpkg/updates /var/lib/dpkg/triggers /var/lib/dpkg/alternatives
: > /var/lib/dpkg/status
: > /var/lib/dpkg/available
printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
chmod 755 /usr/sbin/policy-rc.d
essential=""
while [ "$1" != "--" ]; do essential="$essential $1"; shift; done
shift
opts="--force-depends --force-confdef --force-confold --force-unsafe-io"
echo "    Installing essential packages (dpkg, in the sandbox)" >&2
dpkg $opts --install $essential >/tmp/dpkg-essential.log 2>&1 || { cat /tmp/dpkg-essential.log >&2; exit 1; }
echo "    Installing $# more packages (dpkg, in the sandbox)" >&2
dpkg $opts --install "$@" >/tmp/dpkg-rest.log 2>&1 || { cat /tmp/dpkg-rest.log >&2; exit 1; }
dpkg --configure -a >&2
dpkg --audit >&2
rm -f /usr/sbin/policy-rc.d
"#;

/// How stage 2 runs programs of an architecture: the caller resolves the qemu (the rootfs
/// room does not look one up), only when stage 2 runs at all.
pub type Emulator<'a> = &'a dyn Fn(crate::arch::Arch) -> Result<crate::sandbox::spec::Exec>;

pub fn create(o: &CreateOptions, quiet: bool, emulator: Emulator) -> Result<i32> {
    crate::rootfs::store::check_name(&o.name)?;
    let (map, _) = idmap::choose(MapMode::Full, &idmap::Sources::default())
        .context("rootfs create needs the full id map (dpkg sets file owners inside)")?;
    let store = Store::open()?;
    let _lock = store.lock(&o.name)?;
    // A create that was killed left its temporary tree: remove it (we hold the lock).
    store.clean_stale(&o.name)?;
    if store.get(&o.name).is_some() {
        bail!(
            "a rootfs named {} is already in the store (cargo for-arm rootfs rm {} first)",
            o.name,
            o.name
        );
    }
    let mirror = debian::mirror(o.mirror.as_deref())?;
    let keyring = debian::keyring(o.keyring.as_deref())?;
    let client = crate::rootfs::fetch::client()?;
    if o.no_verify {
        eprintln!("cargo-for-arm: WARNING: --no-verify: the InRelease signature is NOT checked; the rootfs is recorded as unverified");
    }
    let suite = Suite::open_maybe_unverified(&client, &mirror, &o.suite, &keyring, o.no_verify)?;
    let index = Index::new(suite.packages(&client, "main", &o.arch)?);
    let mut roots: Vec<String> = index
        .pkgs
        .values()
        .filter(|s| {
            s.get("Essential").is_some_and(|e| e == "yes")
                || s.get("Priority").is_some_and(|p| p == "required")
        })
        .map(|s| s["Package"].clone())
        .collect();
    roots.sort();
    match o.variant.as_str() {
        "minbase" => roots.push("apt".into()),
        "buildd" => roots.extend(["apt".to_string(), "build-essential".to_string()]),
        v => bail!("--variant {v}: use minbase or buildd"),
    }
    roots.extend(o.include.iter().cloned());
    let set = index.resolve(&roots)?;
    if !quiet {
        eprintln!(
            "    Resolved {} packages from {} {} {}",
            set.len(),
            mirror,
            o.suite,
            o.arch
        );
    }
    // The same resolved package set was configured before: restore that tree.
    let snapshot = snapshot_path(&index, &set, &o.arch, !o.no_verify)?;
    if snapshot.is_file() && !o.no_snapshot {
        let tmp = store
            .dir
            .join(format!(".tmp-{}-{}", o.name, std::process::id()));
        match restore_snapshot(&snapshot, &tmp, &map, quiet) {
            Ok(()) => {
                return land(&store, o, &mirror, &tmp, quiet);
            }
            Err(e) => {
                eprintln!("cargo-for-arm: warning: the snapshot {} could not be restored ({e:#}); removing it and creating from the packages", snapshot.display());
                let _ = store.remove_tree(&tmp);
                let _ = std::fs::remove_file(&snapshot);
            }
        }
    }
    // Downloads, a few at a time; the threads end before any namespace is entered.
    let debs_dir = crate::rootfs::store::home()?.join("debs");
    let paths = std::sync::Mutex::new(HashMap::<String, PathBuf>::new());
    let errors = std::sync::Mutex::new(Vec::<String>::new());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let tty = unsafe { libc::isatty(2) } == 1;
    let bar = indicatif::ProgressBar::new(set.len() as u64);
    if tty && !quiet {
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "    Fetching [{bar:30}] {pos}/{len} packages {msg}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
    } else {
        bar.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    std::thread::scope(|sc| {
        for _ in 0..4 {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(name) = set.get(i) else { break };
                bar.set_message(name.clone());
                let fetched =
                    debian::fetch_deb(&client, &mirror, &index.pkgs[name], &debs_dir, true);
                bar.inc(1);
                match fetched {
                    Ok(p) => {
                        paths.lock().expect("not poisoned").insert(name.clone(), p);
                    }
                    Err(e) => errors
                        .lock()
                        .expect("not poisoned")
                        .push(format!("{name}: {e:#}")),
                }
            });
        }
    });
    bar.finish_and_clear();
    drop(client);
    let errors = errors.into_inner().expect("not poisoned");
    if !quiet {
        eprintln!(
            "    Fetched {} packages (verified; cached in {})",
            set.len(),
            debs_dir.display()
        );
    }
    if !errors.is_empty() {
        bail!(
            "downloading packages failed (what downloaded is cached; run again to resume): {}",
            errors.join("; ")
        );
    }
    let paths = paths.into_inner().expect("not poisoned");
    // Essential packages first, base-passwd and base-files before everything (as debootstrap).
    let mut essential: Vec<&String> = set
        .iter()
        .filter(|n| index.pkgs[*n].get("Essential").is_some_and(|e| e == "yes"))
        .collect();
    essential.sort_by_key(|n| match n.as_str() {
        "base-passwd" => 0,
        "base-files" => 1,
        "dpkg" => 2,
        "libc6" => 3,
        _ => 4,
    });
    let rest: Vec<&String> = set.iter().filter(|n| !essential.contains(n)).collect();
    let (essential, rest) = (index.install_order(&essential), index.install_order(&rest));
    let (essential, rest): (Vec<&String>, Vec<&String>) =
        (essential.iter().collect(), rest.iter().collect());

    let tmp = store
        .dir
        .join(format!(".tmp-{}-{}", o.name, std::process::id()));
    if let Err(e) = build_tree(
        &tmp, &o.arch, &essential, &rest, &paths, &debs_dir, &map, quiet, emulator,
    ) {
        let _ = store.remove_tree(&tmp);
        return Err(e);
    }
    if !o.no_snapshot {
        save_snapshot(&tmp.join("root"), &snapshot, &map, quiet);
    }
    land(&store, o, &mirror, &tmp, quiet)
}

/// Where the finished tree of a resolved package set is kept: the key covers every
/// package's name, version and hash (so a changed mirror makes a new key) and whether the
/// signature was checked.
fn snapshot_path(index: &Index, set: &[String], arch: &str, verified: bool) -> Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(format!(
        "cargo-for-arm snapshot v1\n{arch}\nverified={verified}\n"
    ));
    let mut names: Vec<&String> = set.iter().collect();
    names.sort();
    for n in names {
        let st = &index.pkgs[n];
        let field = |k: &str| st.get(k).map(String::as_str).unwrap_or("");
        h.update(format!("{n} {} {}\n", field("Version"), field("SHA256")));
    }
    let key = crate::rootfs::fetch::hex(&h.finalize()[..16]);
    Ok(crate::rootfs::store::home()?
        .join("snapshots")
        .join(format!("{key}.tar.zst")))
}

/// Unpack a snapshot into `tmp/root`, owners kept, inside a user namespace.
fn restore_snapshot(snapshot: &Path, tmp: &Path, map: &IdMap, quiet: bool) -> Result<()> {
    if !quiet {
        eprintln!(
            "    Restoring the tree of an identical earlier create ({})",
            snapshot.display()
        );
    }
    let root = tmp.join("root");
    std::fs::create_dir_all(&root)?;
    let limits = crate::rootfs::unpack::Limits::default();
    crate::rootfs::store::unpack_in_userns(map, snapshot, &root, &limits, true)?;
    Ok(())
}

/// Keep the finished tree for the next create of the same package set (best effort: a
/// failure costs only speed later).
fn save_snapshot(root: &Path, snapshot: &Path, map: &IdMap, quiet: bool) {
    let Some(dir) = snapshot.parent() else { return };
    let tmp = dir.join(format!(".tmp-{}", std::process::id()));
    let done = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            let args = vec![
                "__pack".to_string(),
                root.display().to_string(),
                tmp.display().to_string(),
            ];
            match crate::sandbox::reexec_in_userns(map, &args)? {
                0 => Ok(std::fs::rename(&tmp, snapshot)?),
                c => bail!("packing exited {c}"),
            }
        });
    match done {
        Ok(()) if !quiet => eprintln!(
            "    Kept the tree for the next create of the same packages ({})",
            snapshot.display()
        ),
        Ok(()) => {}
        Err(e) => {
            let _ = std::fs::remove_file(&tmp);
            eprintln!("cargo-for-arm: warning: could not keep a snapshot of the tree: {e:#}");
        }
    }
}

/// Point apt at the mirror and move the tree into the store.
fn land(store: &Store, o: &CreateOptions, mirror: &str, tmp: &Path, quiet: bool) -> Result<i32> {
    let result = std::fs::write(
        tmp.join("root/etc/apt/sources.list"),
        format!("deb {mirror} {} main\n", o.suite),
    )
    .map_err(anyhow::Error::from)
    .and_then(|()| {
        store.finish(
            &o.name,
            tmp,
            &format!("{mirror} {} {} ({})", o.suite, o.arch, o.variant),
            None,
            !o.no_verify,
            true,
            quiet,
        )
    });
    match result {
        Ok(entry) => {
            if !quiet {
                eprintln!(
                    "     Created rootfs {} ({}, {})",
                    entry.name, entry.arch_desc, entry.distro
                );
            }
            Ok(0)
        }
        Err(e) => {
            let _ = store.remove_tree(tmp);
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn build_tree(
    tmp: &Path,
    arch: &str,
    essential: &[&String],
    rest: &[&String],
    paths: &HashMap<String, PathBuf>,
    debs_dir: &Path,
    map: &IdMap,
    quiet: bool,
    emulator: Emulator,
) -> Result<()> {
    let root = tmp.join("root");
    std::fs::create_dir_all(root.join("usr"))?;
    // A merged /usr, as Debian 12 and later install it.
    let mut links = vec!["bin", "sbin", "lib"];
    if arch == "amd64" {
        links.push("lib64");
    }
    for l in links {
        std::fs::create_dir_all(root.join("usr").join(l))?;
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l))?;
    }
    // Stage 1: every package's files, owners kept, as root of a user namespace.
    if !quiet {
        eprintln!("    Unpacking {} packages", essential.len() + rest.len());
    }
    let mut args = vec!["__extract-debs".to_string(), root.display().to_string()];
    args.extend(
        essential
            .iter()
            .chain(rest.iter())
            .map(|n| paths[*n].display().to_string()),
    );
    let code = crate::sandbox::reexec_in_userns(map, &args)?;
    if code != 0 {
        bail!("unpacking the packages failed (see above)");
    }
    let sh = root.join("usr/bin/sh");
    if sh.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("dash", &sh)?;
    }
    // Stage 2: the rootfs's own dpkg, under emulation, with the packages bound read-only.
    let guest_debs = "/run/cargo-for-arm/debs";
    let guest = |n: &String| {
        format!(
            "{guest_debs}/{}",
            paths[n].file_name().unwrap_or_default().to_string_lossy()
        )
    };
    let mut argv = vec![
        "/usr/bin/dash".to_string(),
        "-c".into(),
        STAGE2.into(),
        "stage2".into(),
    ];
    argv.extend(essential.iter().map(|n| guest(n)));
    argv.push("--".into());
    argv.extend(rest.iter().map(|n| guest(n)));
    use crate::sandbox::spec::{Access, Bind, Caps, Root, SpecBuilder};
    let arch = crate::arch::Arch::parse(arch)?;
    let plan = SpecBuilder::new(Root::dir(&root), emulator(arch)?)
        .bind(Bind::new(debs_dir, guest_debs, Access::ReadOnly))
        .map(MapMode::Full)
        .caps(Caps::Keep)
        .argv(argv)
        .build()?;
    let how = crate::supervise::Supervision {
        hang_timeout: Some(std::time::Duration::from_secs(900)),
        ..Default::default()
    };
    let outcome = crate::supervise::run(&plan, how)?;
    if let Some(e) = &outcome.error {
        bail!("{e}");
    }
    if outcome.code != 0 {
        bail!(
            "configuring the packages inside the rootfs failed (exit {})",
            outcome.code
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pairs: &[(&str, &str)]) -> Stanza {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn install_order_puts_pre_dependencies_first() {
        let idx = Index::new(vec![
            st(&[
                ("Package", "e2fsprogs"),
                ("Version", "1"),
                ("Pre-Depends", "libblkid1"),
            ]),
            st(&[
                ("Package", "libblkid1"),
                ("Version", "1"),
                ("Depends", "libc6"),
            ]),
            st(&[("Package", "libc6"), ("Version", "1")]),
        ]);
        let names: Vec<String> = vec!["e2fsprogs".into(), "libblkid1".into(), "libc6".into()];
        let refs: Vec<&String> = names.iter().collect();
        assert_eq!(
            idx.install_order(&refs),
            ["libc6", "libblkid1", "e2fsprogs"]
        );
    }

    #[test]
    fn debian_version_order() {
        assert_eq!(vercmp("1.0", "1.0"), Ordering::Equal);
        assert_eq!(vercmp("1.0~rc1", "1.0"), Ordering::Less);
        assert_eq!(vercmp("1:0.1", "2.0"), Ordering::Greater);
        assert_eq!(vercmp("2.36-9+deb12u4", "2.36-9"), Ordering::Greater);
        assert_eq!(vercmp("1.10", "1.9"), Ordering::Greater);
        assert_eq!(vercmp("1.0a", "1.0+"), Ordering::Less);
    }

    #[test]
    fn dependency_fields() {
        let d = parse_deps("libc6 (>= 2.34), awk | mawk:any, foo (<< 3~)");
        assert_eq!(d.len(), 3);
        assert_eq!(d[0][0].constraint, Some((">=".into(), "2.34".into())));
        assert_eq!(d[1][1].name, "mawk");
        assert!(d[2][0].allows("2.9") && !d[2][0].allows("3"));
    }

    #[test]
    fn closure_with_alternatives_virtuals_and_versions() {
        let idx = Index::new(vec![
            st(&[
                ("Package", "app"),
                ("Version", "1"),
                ("Depends", "libx (>= 2), awk, missing-alt | liby"),
            ]),
            st(&[("Package", "libx"), ("Version", "1")]),
            st(&[("Package", "libx"), ("Version", "2.1")]),
            st(&[("Package", "mawk"), ("Version", "1"), ("Provides", "awk")]),
            st(&[
                ("Package", "liby"),
                ("Version", "1"),
                ("Pre-Depends", "libx"),
            ]),
        ]);
        let mut got = idx.resolve(&["app".into()]).unwrap();
        got.sort();
        assert_eq!(got, ["app", "libx", "liby", "mawk"]);
        let err = idx.resolve(&["nope".into()]).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
        let idx = Index::new(vec![
            st(&[("Package", "a"), ("Version", "1"), ("Depends", "b (>= 5)")]),
            st(&[("Package", "b"), ("Version", "4")]),
        ]);
        let err = format!("{:#}", idx.resolve(&["a".into()]).unwrap_err());
        assert!(err.contains("a depends on b (>= 5)"), "{err}");
    }
}
