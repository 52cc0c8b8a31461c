//! `rootfs create`: a Debian rootfs bootstrapped from a mirror without root, apt, debootstrap
//! or mmdebstrap. The package set is resolved here (`debian::resolve`); the `.deb`s are
//! verified through the signed chain (`debian`), unpacked into the new tree as root of a user
//! namespace with the full id map (stage 1), then configured by the rootfs's own dpkg inside
//! the sandbox, under emulation (stage 2). The result lands in the store atomically.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicUsize;
use std::sync::Mutex;

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use crate::idmap::{self, IdMap, MapMode};
use crate::rootfs::debian::resolve::Index;
use crate::rootfs::debian::{self, Signature, Suite};
use crate::rootfs::store::{self, Origin, Store};
use crate::rootfs::unpack::{Layout, Limits, Owners, SetId, UnpackOptions};

/// What each variant installs besides the Essential and required packages.
const VARIANTS: [(&str, &[&str]); 2] = [
    ("minbase", &["apt"]),
    ("buildd", &["apt", "build-essential"]),
];

/// The `sysroot` variant: not a system (no Essential set, no dpkg, no apt), only the
/// packages asked for plus these — `/etc/os-release` (the suite), `/bin/sh` (the
/// architecture; and a shell and coreutils for the programs tests start in the ARM sandbox)
/// — and the C runtime a link needs (libc6-dev, libgcc-N-dev), unpacked without maintainer
/// scripts: nothing runs, so nothing is emulated.
const SYSROOT_VARIANT: &str = "sysroot";
const SYSROOT_VARIANT_ROOTS: [&str; 4] = ["base-files", "dash", "coreutils", "libc6-dev"];

/// Essential packages dpkg installs before the others of stage 2, in this order (as
/// debootstrap): base-passwd and base-files before everything.
const INSTALLED_FIRST: [&str; 4] = ["base-passwd", "base-files", "dpkg", "libc6"];

/// Directories a merged /usr links into `usr/`, as Debian 12 and later install it (`lib64`
/// only where the architecture has one).
const MERGED_USR_LINKS: [&str; 3] = ["bin", "sbin", "lib"];

/// How stage 1 unpacks the `.deb`s (`__extract-debs`, as root of a user namespace with the
/// full id map): owners kept, into the merged-/usr tree, setid bits stripped (dpkg sets the
/// modes again in stage 2).
pub const STAGE1_UNPACK: UnpackOptions = UnpackOptions {
    owners: Owners::Keep,
    layout: Layout::MergedUsr,
    setid: SetId::Strip,
};

/// Where stage 2 sees the `.deb` cache (bound read-only).
const GUEST_DEBS: &str = "/run/cargo-for-arm/debs";

/// Downloads at once.
const FETCHERS: usize = 4;

#[derive(Debug, Clone, clap::Args)]
pub struct CreateOptions {
    /// The name in the store.
    pub name: String,
    /// Suite: bookworm, trixie, … (Ubuntu: noble, …)
    #[arg(long)]
    pub suite: String,
    /// Debian architecture: armhf, arm64, …
    #[arg(long)]
    pub arch: String,
    /// More packages, comma-separated (e.g. cargo,pkg-config,libssl-dev).
    #[arg(long, value_delimiter = ',')]
    pub include: Vec<String>,
    /// minbase (essential + required + apt), buildd (+ build-essential), or sysroot (only the
    /// packages asked for and the C runtime, libc6-dev and libgcc-N-dev, unpacked without
    /// maintainer scripts: a sysroot for native builds, nothing emulated, no dpkg or apt).
    #[arg(long, default_value = "minbase")]
    pub variant: String,
    /// Mirror: URL, or ARCH=URL,… per architecture (default: CARGO_FOR_ARM_MIRROR, the
    /// user's config file, the host's apt sources: on an Ubuntu host its ports archive for
    /// armhf/arm64).
    #[arg(long)]
    pub mirror: Option<String>,
    /// OpenPGP keyring for the InRelease signature (default: CARGO_FOR_ARM_KEYRING, the
    /// user's config file, the archive keyring of the mirror's distribution on the host).
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

/// How stage 1 unpacks without a user namespace (isolation rung 3): the caller owns every
/// file, into the merged-/usr tree, setid bits stripped.
pub const SYSROOT_UNPACK: UnpackOptions = UnpackOptions {
    owners: Owners::Caller,
    layout: Layout::MergedUsr,
    setid: SetId::Strip,
};

/// What a sysroot made without a user namespace gets besides the packages asked for.
pub const SYSROOT_PACKAGES: [&str; 2] = ["libc6-dev", "gcc"];

/// Whether `create` makes a sysroot (the packages' files only, nothing configured) rather
/// than a configured tree, and the options it makes it with. A sysroot is made for the
/// sysroot variant (native mode's default ARM rootfs with a rustup toolchain) on every rung,
/// and for any rootfs on isolation rung 3 (no usable user namespace, or
/// CARGO_FOR_ARM_ISOLATION=none), which then gets what linking needs too: the C library's
/// headers and crt files, and gcc's (crtbeginS.o, libgcc_s) — `gcc` brings the libgcc-N-dev
/// of the suite, whatever N is.
fn kind(o: &CreateOptions, quiet: bool) -> Result<(bool, std::borrow::Cow<'_, CreateOptions>)> {
    let settings = crate::settings::Settings::user()?;
    let d = crate::isolation::decide(&settings, None)?;
    let unsandboxed = d.rung == crate::isolation::Rung::Unsandboxed;
    if o.variant == SYSROOT_VARIANT {
        return Ok((true, std::borrow::Cow::Borrowed(o)));
    }
    if !unsandboxed {
        return Ok((false, std::borrow::Cow::Borrowed(o)));
    }
    if !quiet {
        // The build that asked for this rootfs has said why there is no isolation.
        let why = match crate::isolation::announced() {
            true => String::new(),
            false => format!("no isolation: {}; ", d.reason()),
        };
        crate::ui::say(format_args!(
            "{why}creating {} as a sysroot for native builds: files owned by you, no \
             maintainer scripts run, absolute symlinks made relative, with {} for linking",
            o.name,
            SYSROOT_PACKAGES.join(" and ")
        ));
    }
    let mut c = o.clone();
    for p in SYSROOT_PACKAGES {
        if !c.include.iter().any(|i| i == p) {
            c.include.push(p.to_string());
        }
    }
    Ok((true, std::borrow::Cow::Owned(c)))
}

pub fn create(o: &CreateOptions, quiet: bool, emulator: Emulator) -> Result<i32> {
    store::check_name(&o.name)?;
    let (sysroot, o) = kind(o, quiet)?;
    let o = o.as_ref();
    let variant_sysroot = o.variant == SYSROOT_VARIANT;
    let map = match sysroot {
        true => None,
        false => Some(
            idmap::choose(MapMode::Full, &idmap::Sources::default())
                .context("rootfs create needs the full id map (dpkg sets file owners inside)")?
                .0,
        ),
    };
    let store = Store::open()?;
    let _lock = store.lock(&o.name)?;
    // A create that was killed left its temporary tree: remove it (we hold the lock).
    store.clean_stale(&o.name)?;
    store.ensure_absent(&o.name)?;
    let source = debian::sources::mirror_for(&o.arch, o.mirror.as_deref())?;
    let keyring = debian::sources::keyring_for(o.keyring.as_deref(), source.distro)?;
    let mirror = source.url;
    let client = crate::rootfs::fetch::client()?;
    let (index, set, components) = resolve(o, &client, &mirror, &keyring, quiet)?;
    if variant_sysroot && !quiet {
        crate::ui::say(format_args!(
            "creating {} as a sysroot: {} packages' files, no maintainer scripts run (nothing emulated), \
             absolute symlinks made relative",
            o.name,
            set.len()
        ));
    }
    let apt_source = format!("deb {mirror} {} {}\n", o.suite, components.join(" "));
    let tmp = store.tmp_dir(&o.name);
    // The same resolved package set was configured before: restore that tree.
    let snapshot = snapshot_path(&index, &set, o)?;
    if let Some(map) = &map {
        if snapshot.is_file()
            && !o.no_snapshot
            && restore_snapshot(&store, &snapshot, &tmp, map, quiet)
        {
            return land(&store, o, (&mirror, &apt_source), &tmp, (true, true), quiet);
        }
    }
    // Downloads, a few at a time; the threads end before any namespace is entered.
    let debs = fetch_debs(&client, &mirror, &index, &set, quiet)?;
    drop(client);
    let order = InstallOrder::new(&index, &set);
    let built = match &map {
        Some(map) => build_tree(&tmp, &o.arch, &order, &debs, map, quiet, emulator),
        // Isolation rung 3: never configured, so never kept as a snapshot.
        None => sysroot_tree(&tmp, &o.arch, &order, &debs, quiet).map(|()| false),
    };
    let configured = match built {
        Ok(c) => c,
        Err(e) => {
            let _ = store.remove_tree(&tmp);
            return Err(e);
        }
    };
    // An unconfigured tree (no binfmt, or no user namespace) is never restored for a later create.
    if let (Some(map), false, true) = (&map, o.no_snapshot, configured) {
        save_snapshot(&tmp.join("root"), &snapshot, map, quiet);
    }
    land(
        &store,
        o,
        (&mirror, &apt_source),
        &tmp,
        (map.is_some(), configured),
        quiet,
    )
}

/// A sysroot without any namespace (isolation rung 3): every package unpacked in-process,
/// owned by the caller; no maintainer scripts (they would need emulation and root); every
/// absolute symlink made relative, because no mount namespace can make `/lib/<multiarch>/…`
/// resolve into the tree (lld would silently link `libz.a` through a dangling `libz.so`).
fn sysroot_tree(
    tmp: &Path,
    arch: &str,
    order: &InstallOrder,
    debs: &Debs,
    quiet: bool,
) -> Result<()> {
    let root = tmp.join("root");
    merged_usr_links(&root, arch)?;
    if !quiet {
        crate::ui::status(
            "Unpacking",
            format_args!("{} packages (no maintainer scripts)", order.len()),
        );
    }
    let limits = Limits::default();
    for name in order.all() {
        let deb = &debs.paths[name];
        let data = debian::deb_data(deb)?;
        crate::rootfs::unpack::unpack(data, &root, &limits, SYSROOT_UNPACK)
            .map_err(|e| anyhow::Error::new(e).context(format!("unpacking {}", deb.display())))?;
    }
    let sh = root.join("usr/bin/sh");
    if sh.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("dash", &sh)?;
    }
    // The alternatives a maintainer script would have made: the host C compiler of a tools
    // tree with clang and no gcc (build scripts are linked with `cc`).
    for (alt, prog) in [("cc", "clang"), ("c++", "clang++")] {
        let (alt, prog) = (
            root.join("usr/bin").join(alt),
            root.join("usr/bin").join(prog),
        );
        if alt.symlink_metadata().is_err() && prog.symlink_metadata().is_ok() {
            std::os::unix::fs::symlink(prog.file_name().unwrap_or_default(), &alt)?;
        }
    }
    relative_symlinks(&root, &root)
}

/// Rewrite every absolute symlink below `dir` (in the tree `root`) to the relative one that
/// reaches the same path inside the tree: `usr/lib/<m>/libz.so -> /lib/<m>/libz.so.1` becomes
/// `../../../lib/<m>/libz.so.1`. Nothing is followed.
pub fn relative_symlinks(root: &Path, dir: &Path) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let e = e?;
        let path = e.path();
        let ft = e.file_type()?;
        if ft.is_dir() {
            relative_symlinks(root, &path)?;
            continue;
        }
        if !ft.is_symlink() {
            continue;
        }
        let target = std::fs::read_link(&path)?;
        let Ok(inside) = target.strip_prefix("/") else {
            continue;
        };
        let depth = path
            .parent()
            .and_then(|p| p.strip_prefix(root).ok())
            .map_or(0, |p| p.components().count());
        let mut rel = PathBuf::new();
        (0..depth).for_each(|_| rel.push(".."));
        rel.push(inside);
        let tmp = path.with_file_name(format!(".{}.relink", e.file_name().to_string_lossy()));
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&rel, &tmp)?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// The suite's index, checked through the signed chain, and the package set of `o`
/// resolved in it.
fn resolve(
    o: &CreateOptions,
    client: &reqwest::blocking::Client,
    mirror: &str,
    keyring: &Path,
    quiet: bool,
) -> Result<(Index, Vec<String>, Vec<&'static str>)> {
    let signature = if o.no_verify {
        eprintln!("cargo-for-arm: WARNING: --no-verify: the InRelease signature is NOT checked; the rootfs is recorded as unverified");
        Signature::Skip
    } else {
        Signature::Check
    };
    let suite = Suite::open_with(client, mirror, &o.suite, keyring, signature)?;
    // Ubuntu keeps much of what a build needs in universe; Debian has main only.
    let mut stanzas = suite.packages(client, "main", &o.arch)?;
    let mut components = vec!["main"];
    if suite.lists(&format!("universe/binary-{}/Packages.xz", o.arch)) {
        stanzas.extend(suite.packages(client, "universe", &o.arch)?);
        components.push("universe");
    }
    let index = Index::new(stanzas);
    let set = index.resolve(&roots(&index, o)?)?;
    if !quiet {
        eprintln!(
            "    Resolved {} packages from {} {} {}",
            set.len(),
            mirror,
            o.suite,
            o.arch
        );
    }
    Ok((index, set, components))
}

/// What `o` asks for: the Essential and required packages, those of its variant, and its
/// `--include`s.
fn roots(index: &Index, o: &CreateOptions) -> Result<Vec<String>> {
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
    if o.variant == SYSROOT_VARIANT {
        let mut roots: Vec<String> = SYSROOT_VARIANT_ROOTS.map(str::to_string).to_vec();
        roots.extend(o.include.iter().cloned());
        roots.extend(c_runtime(index));
        return Ok(roots);
    }
    let Some((_, variant)) = VARIANTS.iter().find(|(v, _)| *v == o.variant) else {
        bail!("--variant {}: use minbase, buildd or sysroot", o.variant);
    };
    roots.extend(variant.iter().map(|p| p.to_string()));
    roots.extend(o.include.iter().cloned());
    if o.include.iter().any(|p| p.ends_with("-dev")) {
        roots.extend(c_runtime(index));
    }
    Ok(roots)
}

/// A rootfs with `-dev` packages is for building, and a native build links against it as a
/// sysroot: give it the C runtime a link needs (crt files, libc and libgcc_s for linking),
/// `libc6-dev` and the suite's `libgcc-N-dev` (N: the major version of its `libgcc-s1`).
pub fn c_runtime(index: &Index) -> Vec<String> {
    let major = index
        .pkgs
        .get("libgcc-s1")
        .and_then(|s| s.get("Version"))
        .and_then(|v| v.split(|c: char| !c.is_ascii_digit()).next())
        .map(str::to_string);
    let gcc = major.map(|n| format!("libgcc-{n}-dev"));
    ["libc6-dev".to_string()]
        .into_iter()
        .chain(gcc)
        .filter(|p| index.pkgs.contains_key(p))
        .collect()
}

/// The verified `.deb`s of a package set: the cache they are in, and each package's file.
struct Debs {
    dir: PathBuf,
    paths: HashMap<String, PathBuf>,
}

impl Debs {
    /// The file of `name` as stage 2 sees it, below [`GUEST_DEBS`].
    fn guest_path(&self, name: &str) -> String {
        let file = self.paths[name].file_name().unwrap_or_default();
        format!("{GUEST_DEBS}/{}", file.to_string_lossy())
    }
}

/// A progress bar of the package downloads on a terminal; hidden otherwise.
fn fetch_bar(len: usize, quiet: bool) -> indicatif::ProgressBar {
    let tty = unsafe { libc::isatty(2) } == 1;
    let bar = indicatif::ProgressBar::new(len as u64);
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
    bar
}

/// Download (or find in the cache) and verify every package of `set`, [`FETCHERS`] at a time.
fn fetch_debs(
    client: &reqwest::blocking::Client,
    mirror: &str,
    index: &Index,
    set: &[String],
    quiet: bool,
) -> Result<Debs> {
    let dir = store::debs_dir()?;
    let paths = Mutex::new(HashMap::<String, PathBuf>::new());
    let errors = Mutex::new(Vec::<String>::new());
    let next = AtomicUsize::new(0);
    let bar = fetch_bar(set.len(), quiet);
    std::thread::scope(|sc| {
        for _ in 0..FETCHERS {
            sc.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(name) = set.get(i) else { break };
                bar.set_message(name.clone());
                let fetched = debian::fetch_deb(client, mirror, &index.pkgs[name], &dir, true);
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
    let errors = errors.into_inner().expect("not poisoned");
    if !quiet {
        eprintln!(
            "    Fetched {} packages (verified; cached in {})",
            set.len(),
            dir.display()
        );
    }
    if !errors.is_empty() {
        bail!(
            "downloading packages failed (what downloaded is cached; run again to resume): {}",
            errors.join("; ")
        );
    }
    let paths = paths.into_inner().expect("not poisoned");
    Ok(Debs { dir, paths })
}

/// The order dpkg installs a package set in: the essential packages first
/// ([`INSTALLED_FIRST`] before the others), then the rest; each part after its dependencies.
struct InstallOrder {
    essential: Vec<String>,
    rest: Vec<String>,
}

impl InstallOrder {
    fn new(index: &Index, set: &[String]) -> InstallOrder {
        let mut essential: Vec<&String> = set
            .iter()
            .filter(|n| index.pkgs[*n].get("Essential").is_some_and(|e| e == "yes"))
            .collect();
        essential.sort_by_key(|n| {
            INSTALLED_FIRST
                .iter()
                .position(|f| f == n)
                .unwrap_or(INSTALLED_FIRST.len())
        });
        let rest: Vec<&String> = set.iter().filter(|n| !essential.contains(n)).collect();
        InstallOrder {
            essential: index.install_order(&essential),
            rest: index.install_order(&rest),
        }
    }

    fn len(&self) -> usize {
        self.essential.len() + self.rest.len()
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        self.essential.iter().chain(self.rest.iter())
    }
}

/// Where the finished tree of a resolved package set is kept: the key covers every
/// package's name, version and hash (so a changed mirror makes a new key), the architecture
/// and whether the signature was checked.
fn snapshot_path(index: &Index, set: &[String], o: &CreateOptions) -> Result<PathBuf> {
    let mut h = Sha256::new();
    h.update(format!(
        "cargo-for-arm snapshot v1\n{}\nverified={}\n",
        o.arch, !o.no_verify
    ));
    let mut names: Vec<&String> = set.iter().collect();
    names.sort();
    for n in names {
        let st = &index.pkgs[n];
        let field = |k: &str| st.get(k).map(String::as_str).unwrap_or("");
        h.update(format!("{n} {} {}\n", field("Version"), field("SHA256")));
    }
    let key = crate::rootfs::fetch::hex(&h.finalize()[..16]);
    Ok(store::home()?
        .join("snapshots")
        .join(format!("{key}.tar.zst")))
}

/// Unpack a snapshot into `tmp/root`, owners and setid bits kept, inside a user namespace.
/// True when it worked; a snapshot that does not restore is removed (with a warning), and so
/// is what it left.
fn restore_snapshot(store: &Store, snapshot: &Path, tmp: &Path, map: &IdMap, quiet: bool) -> bool {
    if !quiet {
        eprintln!(
            "    Restoring the tree of an identical earlier create ({})",
            snapshot.display()
        );
    }
    let root = tmp.join("root");
    let restored = std::fs::create_dir_all(&root)
        .map_err(anyhow::Error::from)
        .and_then(|()| {
            store::unpack_in_userns(map, snapshot, &root, &Limits::default(), SetId::Keep)
        });
    match restored {
        Ok(()) => true,
        Err(e) => {
            eprintln!("cargo-for-arm: warning: the snapshot {} could not be restored ({e:#}); removing it and creating from the packages", snapshot.display());
            let _ = store.remove_tree(tmp);
            let _ = std::fs::remove_file(snapshot);
            false
        }
    }
}

/// Keep the finished tree for the next create of the same package set (best effort: a
/// failure costs only speed later).
fn save_snapshot(root: &Path, snapshot: &Path, map: &IdMap, quiet: bool) {
    let Some(dir) = snapshot.parent() else { return };
    // Locked while it is written (`__pack` rewrites the same file): a killed run's is
    // removed by the next run, a live one's never.
    let tmp = dir.join(format!(
        ".tmp-snapshot-{}",
        crate::rootfs::fetch::unique_tag()
    ));
    let done = std::fs::create_dir_all(dir)
        .map_err(anyhow::Error::from)
        .and_then(|()| crate::rootfs::fetch::Owned::create(&tmp))
        .and_then(|mut owned| {
            store::pack_in_userns(map, root, &tmp)?;
            owned.file.sync_all()?;
            owned.rename(snapshot)
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

/// Point apt at the mirror (`source`: the mirror and the `sources.list` line for it) and
/// move the tree into the store.
fn land(
    store: &Store,
    o: &CreateOptions,
    (mirror, apt_source): (&str, &str),
    tmp: &Path,
    (owners_kept, configured): (bool, bool),
    quiet: bool,
) -> Result<i32> {
    let source = format!("{mirror} {} {} ({})", o.suite, o.arch, o.variant);
    let origin = Origin {
        source: &source,
        sha256: None,
        verified: !o.no_verify,
        owners_kept,
        configured,
    };
    // A sysroot has no apt: the file still records where its packages came from.
    let result = std::fs::create_dir_all(tmp.join("root/etc/apt"))
        .and_then(|()| std::fs::write(tmp.join("root/etc/apt/sources.list"), apt_source))
        .map_err(anyhow::Error::from)
        .and_then(|()| store.finish(&o.name, tmp, &origin, quiet));
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

/// The configured tree in `tmp/root`: merged-/usr links, stage 1, stage 2. False when
/// stage 2 could not run (no binfmt handler): the tree is unpacked, not configured.
fn build_tree(
    tmp: &Path,
    arch: &str,
    order: &InstallOrder,
    debs: &Debs,
    map: &IdMap,
    quiet: bool,
    emulator: Emulator,
) -> Result<bool> {
    let root = tmp.join("root");
    merged_usr_links(&root, arch)?;
    stage1(&root, order, debs, map, quiet)?;
    let sh = root.join("usr/bin/sh");
    if sh.symlink_metadata().is_err() {
        std::os::unix::fs::symlink("dash", &sh)?;
    }
    run_stage2(&root, arch, &debs.dir, stage2_argv(order, debs), emulator)
}

/// A merged /usr, as Debian 12 and later install it: `/bin -> usr/bin` and the others.
fn merged_usr_links(root: &Path, arch: &str) -> Result<()> {
    std::fs::create_dir_all(root.join("usr"))?;
    let lib64 = (arch == "amd64").then_some("lib64");
    for l in MERGED_USR_LINKS.into_iter().chain(lib64) {
        std::fs::create_dir_all(root.join("usr").join(l))?;
        std::os::unix::fs::symlink(format!("usr/{l}"), root.join(l))?;
    }
    Ok(())
}

/// Stage 1: every package's files, owners kept, as root of a user namespace
/// (`__extract-debs`, which unpacks with [`STAGE1_UNPACK`]).
fn stage1(root: &Path, order: &InstallOrder, debs: &Debs, map: &IdMap, quiet: bool) -> Result<()> {
    if !quiet {
        crate::ui::status("Unpacking", format_args!("{} packages", order.len()));
    }
    let mut args = vec!["__extract-debs".to_string(), root.display().to_string()];
    args.extend(order.all().map(|n| debs.paths[n].display().to_string()));
    let code = crate::sandbox::reexec_in_userns(map, &args)?;
    if code != 0 {
        bail!("unpacking the packages failed (see above)");
    }
    Ok(())
}

/// The command of stage 2: [`STAGE2`] with the essential packages, `--`, and the rest.
fn stage2_argv(order: &InstallOrder, debs: &Debs) -> Vec<String> {
    let mut argv = vec![
        "/usr/bin/dash".to_string(),
        "-c".into(),
        STAGE2.into(),
        "stage2".into(),
    ];
    argv.extend(order.essential.iter().map(|n| debs.guest_path(n)));
    argv.push("--".into());
    argv.extend(order.rest.iter().map(|n| debs.guest_path(n)));
    argv
}

/// Stage 2: the rootfs's own dpkg, under emulation, in the sandbox rooted at `root`, with
/// the packages of `debs_dir` bound read-only at [`GUEST_DEBS`], the full id map and root's
/// capabilities inside (dpkg sets owners), no network.
fn run_stage2(
    root: &Path,
    arch: &str,
    debs_dir: &Path,
    argv: Vec<String>,
    emulator: Emulator,
) -> Result<bool> {
    use crate::sandbox::spec::{Access, Bind, Caps, Root, SpecBuilder};
    let arch = crate::arch::Arch::parse(arch)?;
    let exec = emulator(arch)?;
    if let Some(b @ crate::sandbox::binfmt::Binfmt::None { .. }) = exec.binfmt() {
        // dpkg and the maintainer scripts are foreign programs that exec others: without a
        // binfmt handler they cannot run. The unpacked tree serves as a sysroot.
        crate::ui::warn(format_args!(
            "no binfmt_misc handler for {arch} (rung {}): the packages are unpacked but not \
             configured (no maintainer scripts run); the rootfs serves native builds as a \
             sysroot, not emulated builds or `run`. For a configured rootfs: {}",
            b.rung(),
            crate::sandbox::binfmt::fix_text(arch)
        ));
        return Ok(false);
    }
    let plan = SpecBuilder::new(Root::dir(root), exec)
        .bind(Bind::new(debs_dir, GUEST_DEBS, Access::ReadOnly))
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
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn essential_packages_install_first_base_passwd_before_all() {
        let st = |pairs: &[(&str, &str)]| -> debian::Stanza {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let index = Index::new(vec![
            st(&[("Package", "apt"), ("Version", "1"), ("Depends", "libc6")]),
            st(&[("Package", "dash"), ("Version", "1"), ("Essential", "yes")]),
            st(&[("Package", "libc6"), ("Version", "1"), ("Essential", "yes")]),
            st(&[
                ("Package", "base-files"),
                ("Version", "1"),
                ("Essential", "yes"),
            ]),
            st(&[
                ("Package", "base-passwd"),
                ("Version", "1"),
                ("Essential", "yes"),
            ]),
        ]);
        let set: Vec<String> = ["apt", "dash", "libc6", "base-files", "base-passwd"]
            .map(String::from)
            .to_vec();
        let order = InstallOrder::new(&index, &set);
        assert_eq!(
            order.essential,
            ["base-passwd", "base-files", "libc6", "dash"]
        );
        assert_eq!(order.rest, ["apt"]);
        assert_eq!(order.len(), 5);
    }

    #[test]
    fn absolute_symlinks_become_relative_inside_the_tree() {
        let t = std::env::temp_dir().join(format!("cfa-relink-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&t);
        let lib = t.join("usr/lib/arm-linux-gnueabihf");
        std::fs::create_dir_all(&lib).unwrap();
        std::os::unix::fs::symlink("usr/lib", t.join("lib")).unwrap();
        std::fs::write(lib.join("libz.so.1.2.13"), "elf").unwrap();
        std::os::unix::fs::symlink(
            "/lib/arm-linux-gnueabihf/libz.so.1.2.13",
            lib.join("libz.so"),
        )
        .unwrap();
        std::os::unix::fs::symlink("libz.so.1.2.13", lib.join("libz.so.1")).unwrap();
        relative_symlinks(&t, &t).unwrap();
        assert_eq!(
            std::fs::read_link(lib.join("libz.so")).unwrap(),
            Path::new("../../../lib/arm-linux-gnueabihf/libz.so.1.2.13")
        );
        assert_eq!(std::fs::read(lib.join("libz.so")).unwrap(), b"elf");
        // Relative links stay as they are.
        assert_eq!(
            std::fs::read_link(lib.join("libz.so.1")).unwrap(),
            Path::new("libz.so.1.2.13")
        );
        std::fs::remove_dir_all(&t).unwrap();
    }

    #[test]
    fn variants_add_their_packages() {
        let index = Index::new(vec![]);
        let o = |variant: &str| CreateOptions {
            name: "x".into(),
            suite: "bookworm".into(),
            arch: "armhf".into(),
            include: vec!["cargo".into()],
            variant: variant.into(),
            mirror: None,
            keyring: None,
            no_verify: false,
            no_snapshot: false,
        };
        assert_eq!(roots(&index, &o("minbase")).unwrap(), ["apt", "cargo"]);
        assert_eq!(
            roots(&index, &o("buildd")).unwrap(),
            ["apt", "build-essential", "cargo"]
        );
        // A sysroot: no Essential set, no apt; the files that tell suite and architecture, a
        // shell, coreutils and the C library's development files.
        assert_eq!(
            roots(&index, &o("sysroot")).unwrap(),
            ["base-files", "dash", "coreutils", "libc6-dev", "cargo"]
        );
        let err = roots(&index, &o("fat")).unwrap_err().to_string();
        assert!(err.contains("use minbase, buildd or sysroot"), "{err}");
    }

    #[test]
    fn without_binfmt_stage_2_is_skipped_not_run() {
        use crate::sandbox::binfmt::Binfmt;
        use crate::sandbox::spec::Exec;
        // No sandbox is started (the root does not even exist): the tree stays unconfigured.
        let none = |_| {
            Ok(Exec::Qemu {
                path: "/q".into(),
                register_line: vec![],
                binfmt: Binfmt::None {
                    empty_private: false,
                },
            })
        };
        let configured = run_stage2(
            Path::new("/nonexistent-root"),
            "armhf",
            Path::new("/nonexistent-debs"),
            vec!["/usr/bin/dash".into()],
            &none,
        )
        .unwrap();
        assert!(!configured);
    }

    #[test]
    fn dev_packages_bring_the_c_runtime_of_the_suite() {
        let stanza = |name: &str, version: &str| {
            crate::rootfs::debian::parse_stanza(&format!("Package: {name}\nVersion: {version}\n"))
        };
        let index = Index::new(vec![
            stanza("libgcc-s1", "12.2.0-14"),
            stanza("libgcc-12-dev", "12.2.0-14"),
            stanza("libc6-dev", "2.36-9"),
            stanza("libssl-dev", "3.0.11-1"),
        ]);
        let o = |include: &[&str]| CreateOptions {
            name: "x".into(),
            suite: "bookworm".into(),
            arch: "armhf".into(),
            include: include.iter().map(|p| p.to_string()).collect(),
            variant: "minbase".into(),
            mirror: None,
            keyring: None,
            no_verify: false,
            no_snapshot: false,
        };
        assert_eq!(
            roots(&index, &o(&["libssl-dev", "pkg-config"])).unwrap(),
            [
                "apt",
                "libssl-dev",
                "pkg-config",
                "libc6-dev",
                "libgcc-12-dev"
            ]
        );
        assert_eq!(roots(&index, &o(&["curl"])).unwrap(), ["apt", "curl"]);
    }
}
