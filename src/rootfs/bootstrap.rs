//! `rootfs create`: a Debian rootfs bootstrapped from a mirror without root, apt, debootstrap
//! or mmdebstrap. The package set is resolved here (`debian::resolve`); the `.deb`s are
//! verified through the signed chain (`debian`), unpacked into the new tree as root of a user
//! namespace with the full id map (stage 1), then configured by the rootfs's own dpkg inside
//! the sandbox, under emulation (stage 2). The result lands in the store atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::idmap::{self, IdMap, MapMode};
use crate::rootfs::debian::resolve::Index;
use crate::rootfs::debian::{self, Signature, Suite};
use crate::rootfs::store::Store;
use crate::rootfs::unpack::{Layout, Owners, SetId, UnpackOptions};

/// How stage 1 unpacks the `.deb`s (`__extract-debs`, as root of a user namespace with the
/// full id map): owners kept, into the merged-/usr tree, setid bits stripped (dpkg sets the
/// modes again in stage 2).
pub const STAGE1_UNPACK: UnpackOptions = UnpackOptions {
    owners: Owners::Keep,
    layout: Layout::MergedUsr,
    setid: SetId::Strip,
};

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

pub fn create(o: &CreateOptions, quiet: bool) -> Result<i32> {
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
    let signature = if o.no_verify {
        Signature::Skip
    } else {
        Signature::Check
    };
    let suite = Suite::open_with(&client, &mirror, &o.suite, &keyring, signature)?;
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
        &tmp, &o.arch, &essential, &rest, &paths, &debs_dir, &map, quiet,
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
    let sandbox = crate::cli::SandboxArgs {
        rootfs: root.clone(),
        arch: Some(arch.to_string()),
        qemu: None,
        binds: vec![format!("{}:{guest_debs}:ro", debs_dir.display())],
        no_bind_cwd: true,
        workdir: Some("/".into()),
        env: vec![],
        network: crate::cli::Network::None,
        map: MapMode::Full,
        seccomp: "default".into(),
    };
    let mut plan = crate::sandbox::spec::RunPlan::new(&sandbox, argv)?;
    plan.keep_caps = true;
    plan.ephemeral = false;
    let outcome = crate::supervise::run_supervised(
        &plan,
        Some(std::time::Duration::from_secs(900)),
        0,
        false,
    )?;
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
