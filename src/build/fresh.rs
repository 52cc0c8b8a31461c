//! Emulate mode's no-op (issue 13): when nothing the build's sandbox can see has changed since
//! the last cargo run of the same command that found everything fresh, the rootfs's cargo is
//! not started at all
//! (under qemu its start alone costs over half a second, every time).
//!
//! Sound because the sandbox is a closed world: cargo, rustc and every build script see only
//! what the spec binds in — the project (read-only, bar the target dir), path dependencies,
//! the build's cargo home, the vendored crates, the stored rootfs — and the spec's own
//! environment and arguments. The stamp records all of it:
//! - the spec itself (argv, environment, binds, id map, filter, qemu), this build's run
//!   directory named by a placeholder, and the contents of what the host wrote there;
//! - things the tool keeps unchanged by construction (the vendored crates and the build's
//!   lockfiles, named by their content's hash; the qemu binary; a stored rootfs, which only `rootfs shell` changes, and which
//!   marks that in its entry): their status;
//! - every other bound tree, walked without following links: every entry's type, mode, size,
//!   inode, and mtime and ctime to the nanosecond (a write changes the ctime, which nobody
//!   can set back).
//!
//! The stamp is written by the host, in `<home>/host` (no sandbox is given it), after a
//! cargo run that succeeded, changed nothing in its working directory (cargo found it all
//! fresh) and saw the same read-only inputs after it as before it (nobody edited a source
//! while cargo ran). What is not covered is not taken: a directory rootfs, the network,
//! arguments whose output the user reads (`--message-format`, `--unit-graph` …), commands
//! other than `build` and `check`, and a build with warnings: cargo keeps a unit's messages
//! in `.fingerprint/<unit>/output-*` and shows them again on every no-op, so while such a file
//! exists, no stamp is written and cargo runs (as `cargo build` would, it repeats the
//! warnings). `CARGO_FOR_ARM_FRESH=0` starts cargo always.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::Job;
use crate::sandbox::spec::{Network, Spec};

/// What the status line says of a build not started.
pub const WHY: &str = "nothing it can see changed since cargo last found it all fresh, so cargo was not started (CARGO_FOR_ARM_FRESH=0 starts it)";

/// Trees walked for one stamp, at most (beyond it: no stamp, cargo decides).
const MAX_ENTRIES: usize = 200_000;

/// One build's check: the stamp's path and the state before cargo ran.
pub struct Check {
    stamp: PathBuf,
    key: Vec<u8>,
    inputs: Vec<u8>,
    outputs: Vec<u8>,
    trees: Trees,
}

/// The bound trees, split by who may change them during the build.
struct Trees {
    /// Read-only for the sandbox (the project, path dependencies): must not change while
    /// cargo runs.
    inputs: Vec<PathBuf>,
    /// Written by the build (the target dir): recorded after it.
    outputs: Vec<PathBuf>,
    /// Left out of the walks: the trees above, where nested, and the finals' directory,
    /// which only the host writes (copied out after the build).
    skip: Vec<PathBuf>,
}

impl Check {
    /// The check of an emulated build, or `None` where a stamp cannot speak for the build.
    pub fn new(job: &Job, spec: &Spec) -> Option<Check> {
        let eligible = matches!(job.opts.subcommand.as_str(), "build" | "b" | "check" | "c")
            && !job.opts.cargo_args.iter().any(|a| speaks(a))
            && spec.network == Network::None
            && spec.ephemeral()
            && job.rootfs.stored()
            && !job.rootfs.changing()
            && std::env::var("CARGO_FOR_ARM_FRESH").as_deref() != Ok("0");
        if !eligible {
            return None;
        }
        let run = &job.run_dir.0;
        let mut key = Sha256::new();
        key.update(env!("CARGO_PKG_VERSION"));
        let described = format!("{spec:?}").replace(&*run.to_string_lossy(), "<run>");
        key.update(described.as_bytes());
        for b in &spec.binds {
            if b.host.starts_with(run) {
                contents(&b.host, &mut key).ok()?;
            }
        }
        if let crate::sandbox::spec::Exec::Qemu { path, .. } = &spec.exec {
            status(path, &mut key);
        }
        let trees = trees(job, spec);
        let stamp = stamp_path(job, spec);
        let inputs = walk(&trees.inputs, &trees.skip, &job.rootfs.marks())?.0;
        let outputs = walk(&trees.outputs, &trees.skip, &[])?.0;
        Some(Check {
            stamp,
            key: key.finalize().to_vec(),
            inputs,
            outputs,
            trees,
        })
    }

    /// Whether the stamp was taken of exactly this: after a cargo run of this command that
    /// found everything fresh, with nothing it can see changed since.
    pub fn fresh(&self) -> bool {
        std::fs::read(&self.stamp).is_ok_and(|s| s == self.digest(&self.inputs, &self.outputs))
    }

    /// Before cargo runs: the old stamp goes (a build that fails or is killed leaves none).
    pub fn forget(&self) {
        let _ = std::fs::remove_file(&self.stamp);
    }

    /// After a build that succeeded: the stamp, if cargo found everything fresh — it changed
    /// nothing in its working directory (a build script that reruns every time, for a
    /// missing `rerun-if-changed` path or a timestamp, rewrites its output there, so such a
    /// build is never stamped) — and nobody changed an input while it ran. So the build after
    /// a real one still starts cargo; the one after that, if nothing changed, does not.
    pub fn record(&self, job: &Job) {
        let Some((inputs, _)) = walk(&self.trees.inputs, &self.trees.skip, &job.rootfs.marks())
        else {
            return;
        };
        let Some((outputs, messages)) = walk(&self.trees.outputs, &self.trees.skip, &[]) else {
            return;
        };
        if inputs != self.inputs || outputs != self.outputs || messages || job.rootfs.changing() {
            return;
        }
        let Some(dir) = self.stamp.parent() else {
            return;
        };
        let tmp = dir.join(format!(".tmp-fresh-{}", std::process::id()));
        let digest = self.digest(&inputs, &outputs);
        if std::fs::create_dir_all(dir).is_ok() && std::fs::write(&tmp, digest).is_ok() {
            let _ = std::fs::rename(&tmp, &self.stamp);
        }
        let _ = std::fs::remove_file(&tmp);
    }

    fn digest(&self, inputs: &[u8], outputs: &[u8]) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update(&self.key);
        h.update(inputs);
        h.update(outputs);
        h.finalize().to_vec()
    }
}

/// Arguments after which cargo's own output is what the user wants (machine-readable
/// messages, plans, reports): cargo must run.
fn speaks(arg: &str) -> bool {
    const SPEAKING: [&str; 6] = [
        "--message-format",
        "--unit-graph",
        "--build-plan",
        "--future-incompat-report",
        "--timings",
        "-Z",
    ];
    SPEAKING.iter().any(|s| arg.starts_with(s))
}

/// `<home>/host/fresh/<hash>`: one stamp per project, working directory and command line.
fn stamp_path(job: &Job, spec: &Spec) -> PathBuf {
    let mut h = Sha256::new();
    h.update(job.target_dir.as_os_str().as_encoded_bytes());
    for a in &spec.argv {
        h.update(b"\0");
        h.update(a.as_bytes());
    }
    let name = crate::rootfs::fetch::hex(&h.finalize()[..12]);
    job.home.join("host/fresh").join(name)
}

/// The binds' host trees, by kind. Left to the key: this build's run directory (its
/// contents) and what the tool writes once, named by content (the vendored crates by
/// lockfile hash, the build's own lockfiles in `<home>/host`). The tool's home itself is
/// hidden in every sandbox, so it is not walked where a project contains it.
fn trees(job: &Job, spec: &Spec) -> Trees {
    let mut t = Trees {
        inputs: Vec::new(),
        outputs: Vec::new(),
        skip: vec![job.out_dir.join(&job.triple), job.home.clone()],
    };
    let keyed = [
        job.run_dir.0.clone(),
        job.home.join("vendor"),
        job.home.join("host"),
    ];
    for b in spec
        .binds
        .iter()
        .filter(|b| !keyed.iter().any(|k| b.host.starts_with(k)))
    {
        t.skip.push(b.host.clone());
        match b.readonly() {
            true => t.inputs.push(b.host.clone()),
            false => t.outputs.push(b.host.clone()),
        }
    }
    t
}

/// The walk of `roots` (each with the others nested in it left out), then the status of
/// `marks` (for the inputs: the stored rootfs's marks of change); and whether a tree holds a
/// message cargo replays (a cargo working directory's `.fingerprint/<unit>/output-*`).
fn walk(roots: &[PathBuf], skip: &[PathBuf], marks: &[PathBuf]) -> Option<(Vec<u8>, bool)> {
    let mut h = Sha256::new();
    let mut messages = false;
    for root in roots {
        h.update(root.as_os_str().as_encoded_bytes());
        let others: Vec<PathBuf> = skip.iter().filter(|s| *s != root).cloned().collect();
        if root.is_dir() {
            let mut feed = |line: &[u8]| {
                messages = messages || replayed(line.split(|b| *b == 0).next().unwrap_or(b""));
                h.update(line)
            };
            crate::hostfs::stat_tree(root, &others, MAX_ENTRIES, &mut feed).ok()?;
        } else {
            status(root, &mut h);
        }
    }
    marks.iter().for_each(|m| status(m, &mut h));
    Some((h.finalize().to_vec(), messages))
}

/// Whether the entry at `rel` (`/a/b/c`, below a walked tree) is a unit's cached messages:
/// `…/.fingerprint/<unit>/output-<kind>-<name>`, which cargo writes when the unit's
/// compilation said something and removes when it says nothing.
fn replayed(rel: &[u8]) -> bool {
    let mut parts = rel.rsplit(|b| *b == b'/');
    let (Some(file), Some(_unit), Some(fingerprint)) = (parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    file.starts_with(b"output-") && fingerprint == b".fingerprint"
}

/// A path's status (or its absence), not followed if a symlink: as `hostfs::stat_tree`
/// sees an entry.
fn status(path: &Path, h: &mut Sha256) {
    h.update(path.as_os_str().as_encoded_bytes());
    match nix::sys::stat::lstat(path) {
        Ok(st) => h.update(crate::hostfs::status_of(&st)),
        Err(_) => h.update(b"\0absent\0"),
    }
}

/// The regular files of a tree of this build's run directory (the host wrote them before
/// the build), by content: read without following links, at most 1 MiB each.
fn contents(root: &Path, h: &mut Sha256) -> anyhow::Result<()> {
    if std::fs::symlink_metadata(root)?.is_file() {
        h.update(std::fs::read(root)?);
        return Ok(());
    }
    let mut files = Vec::new();
    let mut feed = |line: &[u8]| files.push(line.split(|b| *b == 0).next().unwrap_or(b"").to_vec());
    crate::hostfs::stat_tree(root, &[], 1000, &mut feed)?;
    let dir = crate::hostfs::open_dir(root, Path::new(""))?;
    for rel in files {
        h.update(&rel);
        let rel = Path::new(std::ffi::OsStr::from_bytes(&rel[1..]));
        if let Ok(data) = crate::hostfs::read_regular(&dir, rel, 1 << 20) {
            h.update(data);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::replayed;

    #[test]
    fn a_units_cached_messages_are_known_by_their_place() {
        assert!(replayed(
            b"/release/.fingerprint/hello-1a2b/output-bin-hello"
        ));
        assert!(replayed(b"/.fingerprint/x/output-lib-x"));
        // Not a unit's messages: the fingerprint itself, a file named so elsewhere, the unit.
        assert!(!replayed(b"/release/.fingerprint/hello-1a2b/bin-hello"));
        assert!(!replayed(b"/release/deps/x/output-lib-x"));
        assert!(!replayed(b"/release/.fingerprint/output-x"));
        assert!(!replayed(b"/output-x"));
    }
}
