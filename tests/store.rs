//! The rootfs store: downloads against a local HTTP server, verification, hostile archives
//! built here with the tar crate, concurrency and interrupted runs. As an unprivileged user.

mod common;

use std::io::Write;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::http::{Route, Server};
use common::*;
use sha2::Digest;

/// A store of the test's own (CARGO_FOR_ARM_HOME) and a working directory.
struct Env {
    home: TempDir,
    cwd: TempDir,
}

impl Env {
    fn new(tag: &str) -> Env {
        Env {
            home: TempDir::new(&format!("{tag}-home")),
            cwd: TempDir::new(&format!("{tag}-cwd")),
        }
    }
    fn cmd(&self) -> Tool {
        Tool::new(self.cwd.path())
            .home(self.home.path())
            .env("CARGO_FOR_ARM_NET_TIMEOUT", "3")
    }
    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output()
    }
    fn store(&self) -> PathBuf {
        self.home.path().join("rootfs")
    }
    /// Nothing half-written: no temporary trees, no entry `name`.
    fn assert_clean(&self, name: &str) {
        let leftovers: Vec<String> = std::fs::read_dir(self.store())
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            !leftovers
                .iter()
                .any(|n| n.starts_with(".tmp-") || n == name),
            "left in the store: {leftovers:?}"
        );
    }
}

fn sha256_hex(data: &[u8]) -> String {
    sha2::Sha256::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn xz(data: &[u8]) -> Vec<u8> {
    let mut e = xz2::write::XzEncoder::new(Vec::new(), 6);
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The busybox armhf fixture as a .tar.xz, built with tar::Builder.
fn busybox_archive() -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", fixture("busybox-armhf")).unwrap();
    xz(&b.into_inner().unwrap())
}

/// One raw tar entry: names and link targets are written as given, unchecked.
struct Raw<'a> {
    name: &'a [u8],
    kind: tar::EntryType,
    link: &'a [u8],
    data: &'a [u8],
    mode: u32,
}

fn raw(name: &[u8], kind: tar::EntryType) -> Raw<'_> {
    Raw {
        name,
        kind,
        link: b"",
        data: b"",
        mode: if kind.is_dir() { 0o755 } else { 0o644 },
    }
}

/// A tar whose first entries are the busybox fixture (so it is a real rootfs) followed by
/// `extra` raw entries.
fn tar_with(extra: &[Raw]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", fixture("busybox-armhf")).unwrap();
    for e in extra {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..e.name.len()].copy_from_slice(e.name);
        h.as_old_mut().linkname[..e.link.len()].copy_from_slice(e.link);
        h.set_entry_type(e.kind);
        h.set_mode(e.mode);
        h.set_size(e.data.len() as u64);
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        b.append(&h, e.data).unwrap();
    }
    b.into_inner().unwrap()
}

fn write(env: &Env, name: &str, data: &[u8]) -> PathBuf {
    let p = env.cwd.path().join(name);
    std::fs::write(&p, data).unwrap();
    p
}

#[test]
fn pull_over_http_verifies_unpacks_and_runs() {
    let env = Env::new("pull");
    let server = Server::start();
    let data = busybox_archive();
    let url = server.route("/bb-armhf.tar.xz", Route::file(data.clone()));
    let o = env.run(&[
        "rootfs",
        "pull",
        &url,
        "--sha256",
        &sha256_hex(&data),
        "--name",
        "bb",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("Verified sha256"), "{}", stderr(&o));
    let list = stdout(&env.run(&["rootfs", "list"]));
    assert!(
        list.contains("bb") && list.contains("armhf") && !list.contains("UNVERIFIED"),
        "{list}"
    );
    assert!(list.contains(&url), "{list}");
    let o = env.run(&["run", "--rootfs", "bb", "--", "uname", "-m"]);
    assert_eq!(stdout(&o).trim(), "armv7l", "{}", stderr(&o));
    // The downloaded archive is not kept once unpacked; a second pull downloads nothing.
    assert!(!env.home.path().join("downloads/bb.partial").exists());
    let o = env.run(&[
        "rootfs",
        "pull",
        &url,
        "--sha256",
        &sha256_hex(&data),
        "--name",
        "bb",
    ]);
    assert!(
        o.status.success() && stderr(&o).contains("already in the store"),
        "{}",
        stderr(&o)
    );
    assert_eq!(server.gets("/bb-armhf.tar.xz").len(), 1);
}

#[test]
fn a_wrong_checksum_is_refused_and_the_download_deleted() {
    let env = Env::new("badsum");
    let server = Server::start();
    let url = server.route("/bb.tar.xz", Route::file(busybox_archive()));
    let o = env.run(&[
        "rootfs",
        "pull",
        &url,
        "--sha256",
        &"0".repeat(64),
        "--name",
        "bb",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("sha256 mismatch") && stderr(&o).contains("deleted"),
        "{}",
        stderr(&o)
    );
    assert!(!env.home.path().join("downloads/bb.partial").exists());
    env.assert_clean("bb");
}

#[test]
fn checksum_lists_verify_and_no_checksum_is_recorded_unverified() {
    let env = Env::new("sums");
    let data = busybox_archive();
    let archive = write(&env, "bb.tar.xz", &data);
    let sums = write(
        &env,
        "SHA256SUMS",
        format!(
            "{}  other.tar.xz\n{}  bb.tar.xz\n",
            "1".repeat(64),
            sha256_hex(&data)
        )
        .as_bytes(),
    );
    let o = env.run(&[
        "rootfs",
        "pull",
        archive.to_str().unwrap(),
        "--checksums",
        sums.to_str().unwrap(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&[
        "rootfs",
        "pull",
        archive.to_str().unwrap(),
        "--name",
        "loose",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("UNVERIFIED"), "{}", stderr(&o));
    let list = stdout(&env.run(&["rootfs", "list"]));
    let loose = list.lines().find(|l| l.starts_with("loose")).unwrap();
    assert!(loose.contains("UNVERIFIED"), "{list}");
    let bb = list.lines().find(|l| l.starts_with("bb ")).unwrap();
    assert!(!bb.contains("UNVERIFIED"), "{list}");
}

#[test]
fn a_checksum_list_over_plain_http_does_not_make_a_rootfs_verified() {
    let env = Env::new("httpsums");
    let server = Server::start();
    let data = busybox_archive();
    let url = server.route("/bb.tar.xz", Route::file(data.clone()));
    let sums = server.route(
        "/SHA256SUMS",
        Route::file(format!("{}  bb.tar.xz\n", sha256_hex(&data)).into_bytes()),
    );
    // The list still catches a wrong archive ...
    let bad = server.route(
        "/bad/SHA256SUMS",
        Route::file(format!("{}  bb.tar.xz\n", "2".repeat(64)).into_bytes()),
    );
    let o = env.run(&["rootfs", "pull", &url, "--checksums", &bad, "--name", "x"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("sha256 mismatch"), "{}", stderr(&o));
    env.assert_clean("x");
    // ... but a match proves nothing: the entry is recorded unverified, and said so.
    let o = env.run(&["rootfs", "pull", &url, "--checksums", &sums, "--name", "bb"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("UNVERIFIED") && stderr(&o).contains("plain HTTP"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("Verified sha256"), "{}", stderr(&o));
    let list = stdout(&env.run(&["rootfs", "list"]));
    let line = list.lines().find(|l| l.starts_with("bb ")).unwrap();
    assert!(line.contains("UNVERIFIED"), "{list}");
    // A run on it says so, once; a run on a verified one does not.
    let o = env.run(&["run", "--rootfs", "bb", "--", "uname", "-m"]);
    assert_eq!(stdout(&o).trim(), "armv7l", "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("UNVERIFIED").count(),
        1,
        "{}",
        stderr(&o)
    );
    let o = env.run(&[
        "rootfs",
        "pull",
        &url,
        "--sha256",
        &sha256_hex(&data),
        "--name",
        "pinned",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["run", "--rootfs", "pinned", "--", "uname", "-m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("UNVERIFIED"), "{}", stderr(&o));
}

#[test]
fn an_interrupted_download_resumes_with_range() {
    let env = Env::new("resume");
    let server = Server::start();
    let data = busybox_archive();
    let cut = data.len() / 2;
    let url = server.route(
        "/bb.tar.xz",
        Route {
            cut_after: Some((cut, 1)),
            ..Route::file(data.clone())
        },
    );
    let sum = sha256_hex(&data);
    let o = env.run(&["rootfs", "pull", &url, "--sha256", &sum, "--name", "bb"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    assert!(stderr(&o).contains("run again to resume"), "{}", stderr(&o));
    let partial = env.home.path().join("downloads/bb.partial");
    assert_eq!(std::fs::metadata(&partial).unwrap().len() as usize, cut);
    env.assert_clean("bb");
    let o = env.run(&["rootfs", "pull", &url, "--sha256", &sum, "--name", "bb"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let gets = server.gets("/bb.tar.xz");
    assert_eq!(gets.len(), 2);
    assert_eq!(gets[1].as_deref(), Some(format!("bytes={cut}-").as_str()));
}

#[test]
fn a_server_ignoring_range_restarts_cleanly() {
    let env = Env::new("norange");
    let server = Server::start();
    let data = busybox_archive();
    let url = server.route(
        "/bb.tar.xz",
        Route {
            cut_after: Some((data.len() / 3, 1)),
            honour_range: false,
            ..Route::file(data.clone())
        },
    );
    let sum = sha256_hex(&data);
    assert!(!env
        .run(&["rootfs", "pull", &url, "--sha256", &sum, "--name", "bb"])
        .status
        .success());
    let o = env.run(&["rootfs", "pull", &url, "--sha256", &sum, "--name", "bb"]);
    assert!(o.status.success(), "spliced or failed: {}", stderr(&o));
}

#[test]
fn bad_servers_are_refused() {
    let env = Env::new("badsrv");
    let server = Server::start();
    // 404 with an HTML body.
    let o = env.run(&[
        "rootfs",
        "pull",
        &format!("{}/missing.tar.xz", server.base),
        "--name",
        "a",
    ]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("404"), "{}", stderr(&o));
    // An HTML page instead of an archive.
    let html = server.route(
        "/page.tar.xz",
        Route {
            content_type: "text/html".into(),
            ..Route::file(b"<html></html>".to_vec())
        },
    );
    let o = env.run(&["rootfs", "pull", &html, "--name", "b"]);
    assert!(stderr(&o).contains("HTML page"), "{}", stderr(&o));
    // A Content-Length larger than the body.
    let data = busybox_archive();
    let n = data.len();
    let lie = server.route(
        "/lie.tar.xz",
        Route {
            lie_length: Some(n + 1000),
            ..Route::file(data)
        },
    );
    let o = env.run(&["rootfs", "pull", &lie, "--name", "c"]);
    assert_eq!(o.status.code(), Some(125));
    // A stalled transfer times out (CARGO_FOR_ARM_NET_TIMEOUT=3 here).
    let stall = server.route(
        "/stall.tar.xz",
        Route {
            stall: true,
            ..Route::file(vec![0; 100])
        },
    );
    let o = env.run(&["rootfs", "pull", &stall, "--name", "d"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("timed out"),
        "no timeout: {}",
        stderr(&o)
    );
    for n in ["a", "b", "c", "d"] {
        env.assert_clean(n);
    }
}

#[test]
fn two_concurrent_pulls_download_once() {
    let env = Env::new("conc");
    let server = Server::start();
    let data = busybox_archive();
    let url = server.route(
        "/bb.tar.xz",
        Route {
            chunk_delay: Some(Duration::from_millis(50)),
            ..Route::file(data.clone())
        },
    );
    let sum = sha256_hex(&data);
    let spawn = || {
        env.cmd()
            .args(["rootfs", "pull", &url, "--sha256", &sum, "--name", "bb"])
            .spawn()
    };
    let (mut a, mut b) = (spawn(), spawn());
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    assert_eq!(
        server.gets("/bb.tar.xz").len(),
        1,
        "downloaded more than once"
    );
    let o = env.run(&["run", "--rootfs", "bb", "--", "uname", "-m"]);
    assert_eq!(stdout(&o).trim(), "armv7l");
}

fn refused(tag: &str, entries: &[Raw], why: &str) -> Env {
    let env = Env::new(tag);
    let archive = write(&env, "evil.tar", &tar_with(entries));
    let o = env.run(&[
        "rootfs",
        "pull",
        archive.to_str().unwrap(),
        "--name",
        "evil",
    ]);
    assert_eq!(o.status.code(), Some(125), "accepted: {}", stderr(&o));
    assert!(
        stderr(&o).contains(why),
        "expected '{why}' in: {}",
        stderr(&o)
    );
    env.assert_clean("evil");
    env
}

#[test]
fn dotdot_and_absolute_entries_are_refused() {
    let env = refused(
        "dotdot",
        &[Raw {
            data: b"x",
            ..raw(b"../escaped", tar::EntryType::Regular)
        }],
        "'..'",
    );
    assert!(!env.home.path().join("escaped").exists());
    refused(
        "dotdot2",
        &[Raw {
            data: b"x",
            ..raw(b"a/../../x", tar::EntryType::Regular)
        }],
        "'..'",
    );
    refused(
        "abs",
        &[Raw {
            data: b"x",
            ..raw(b"/etc/cfa-evil", tar::EntryType::Regular)
        }],
        "absolute path",
    );
    assert!(!Path::new("/etc/cfa-evil").exists());
}

#[test]
fn symlink_then_write_is_refused_and_nothing_lands_outside() {
    let target = TempDir::new("victim");
    let t = target.path().to_str().unwrap().as_bytes().to_vec();
    refused(
        "symwrite",
        &[
            Raw {
                link: &t,
                ..raw(b"lnk", tar::EntryType::Symlink)
            },
            Raw {
                data: b"pwned",
                ..raw(b"lnk/.bashrc", tar::EntryType::Regular)
            },
        ],
        "symlink",
    );
    assert!(!target.path().join(".bashrc").exists());
    refused(
        "symdir",
        &[
            Raw {
                link: &t,
                ..raw(b"d", tar::EntryType::Symlink)
            },
            raw(b"d", tar::EntryType::Directory),
            Raw {
                data: b"x",
                ..raw(b"d/f", tar::EntryType::Regular)
            },
        ],
        "symlink",
    );
    assert!(!target.path().join("f").exists());
}

#[test]
fn hard_links_out_of_the_tree_are_refused() {
    refused(
        "hl1",
        &[Raw {
            link: b"/etc/passwd",
            ..raw(b"pw", tar::EntryType::Link)
        }],
        "absolute path",
    );
    refused(
        "hl2",
        &[Raw {
            link: b"../../x",
            ..raw(b"up", tar::EntryType::Link)
        }],
        "'..'",
    );
}

#[test]
fn root_replacing_and_empty_entries_are_refused() {
    refused(
        "dotfile",
        &[Raw {
            data: b"x",
            ..raw(b"./", tar::EntryType::Regular)
        }],
        "replace the root",
    );
    refused(
        "dotlink",
        &[Raw {
            link: b"/",
            ..raw(b".", tar::EntryType::Symlink)
        }],
        "replace the root",
    );
}

#[test]
fn nodes_are_skipped_and_setid_bits_stripped() {
    let env = Env::new("nodes");
    let archive = write(
        &env,
        "n.tar",
        &tar_with(&[
            raw(b"dev/evil-null", tar::EntryType::Char),
            raw(b"tmp/fifo", tar::EntryType::Fifo),
            Raw {
                data: b"#!/bin/sh\n",
                mode: 0o6755,
                ..raw(b"bin/suid", tar::EntryType::Regular)
            },
        ]),
    );
    let o = env.run(&["rootfs", "pull", archive.to_str().unwrap(), "--name", "n"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("skipped 2 device nodes") && stderr(&o).contains("setuid"),
        "{}",
        stderr(&o)
    );
    let root = env.store().join("n/root");
    assert!(!root.join("dev/evil-null").exists() && !root.join("tmp/fifo").exists());
    assert_eq!(
        std::fs::metadata(root.join("bin/suid")).unwrap().mode() & 0o7777,
        0o755
    );
}

#[test]
fn broken_archives_are_refused() {
    let env = Env::new("broken");
    let good = busybox_archive();
    let trunc = write(&env, "t.tar.xz", &good[..good.len() / 2]);
    let o = env.run(&["rootfs", "pull", trunc.to_str().unwrap(), "--name", "t"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    env.assert_clean("t");
    let mut garbage = good.clone();
    garbage.extend_from_slice(b"trailing garbage that is not xz");
    let g = write(&env, "g.tar.xz", &garbage);
    let o = env.run(&["rootfs", "pull", g.to_str().unwrap(), "--name", "g"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    env.assert_clean("g");
    let mut bad = tar_with(&[]);
    bad[148] ^= 0x5a; // the first header's checksum field
    let b = write(&env, "b.tar", &bad);
    let o = env.run(&["rootfs", "pull", b.to_str().unwrap(), "--name", "b"]);
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    env.assert_clean("b");
}

#[test]
fn size_and_entry_caps_stop_bombs() {
    let env = Env::new("caps");
    let big = vec![0u8; 200_000];
    let a = write(
        &env,
        "a.tar",
        &tar_with(&[Raw {
            data: &big,
            ..raw(b"big", tar::EntryType::Regular)
        }]),
    );
    let o = env.run(&[
        "rootfs",
        "pull",
        a.to_str().unwrap(),
        "--name",
        "a",
        "--max-bytes",
        "100000",
    ]);
    assert!(
        stderr(&o).contains("more than 100000 bytes"),
        "{}",
        stderr(&o)
    );
    env.assert_clean("a");
    let o = env.run(&[
        "rootfs",
        "pull",
        a.to_str().unwrap(),
        "--name",
        "b",
        "--max-entries",
        "10",
    ]);
    assert!(
        stderr(&o).contains("more than 10 entries"),
        "{}",
        stderr(&o)
    );
    env.assert_clean("b");
}

#[test]
fn mode_000_directories_unpack_and_remove() {
    let env = Env::new("m000");
    let a = write(
        &env,
        "m.tar",
        &tar_with(&[
            Raw {
                mode: 0o000,
                ..raw(b"locked", tar::EntryType::Directory)
            },
            Raw {
                data: b"inside",
                ..raw(b"locked/file", tar::EntryType::Regular)
            },
            Raw {
                data: b"owned",
                ..raw(b"etc/owned-by-someone", tar::EntryType::Regular)
            },
        ]),
    );
    let o = env.run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let locked = env.store().join("m/root/locked");
    assert_eq!(
        std::fs::symlink_metadata(&locked).unwrap().mode() & 0o777,
        0
    );
    let o = env.run(&["rootfs", "rm", "m"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!env.store().join("m").exists());
    env.assert_clean("m");
}

#[test]
fn owners_are_kept_under_the_full_map_and_rm_still_removes_them() {
    let env = Env::new("owners");
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", fixture("busybox-armhf")).unwrap();
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/shadow-like").unwrap();
    h.set_size(3);
    h.set_mode(0o640);
    h.set_uid(0);
    h.set_gid(42);
    h.set_cksum();
    b.append(&h, &b"abc"[..]).unwrap();
    let a = write(&env, "o.tar", &b.into_inner().unwrap());
    let o = env.run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let uid = unsafe { libc::getuid() };
    let md = std::fs::metadata(env.store().join("o/root/etc/shadow-like")).unwrap();
    // Inside 0 is the user; group 42 is a subordinate id on the host.
    assert_eq!(md.uid(), uid);
    assert_ne!(md.gid(), unsafe { libc::getgid() }, "gid 42 was not kept");
    let o = env.run(&[
        "run",
        "--rootfs",
        "o",
        "--",
        "stat",
        "-c",
        "%u:%g",
        "/etc/shadow-like",
    ]);
    assert_eq!(stdout(&o).trim(), "0:42", "{}", stderr(&o));
    let o = env.run(&["rootfs", "rm", "o"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!env.store().join("o").exists());
}

#[test]
fn a_tree_without_bin_sh_is_not_a_rootfs() {
    let env = Env::new("nosh");
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_path("etc/hostname").unwrap();
    h.set_size(2);
    h.set_cksum();
    b.append(&h, &b"x\n"[..]).unwrap();
    let a = write(&env, "n.tar", &b.into_inner().unwrap());
    let o = env.run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "n"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(
        stderr(&o).contains("does not look like a root filesystem")
            && stderr(&o).contains("/bin/sh"),
        "{}",
        stderr(&o)
    );
    env.assert_clean("n");
}

#[test]
fn kill_9_mid_unpack_then_a_clean_rerun() {
    let env = Env::new("kill9");
    // Many small files: the unpack takes long enough to be interrupted.
    let mut b = tar::Builder::new(Vec::new());
    b.follow_symlinks(false);
    b.append_dir_all(".", fixture("busybox-armhf")).unwrap();
    for i in 0..30_000 {
        let mut h = tar::Header::new_gnu();
        h.set_path(format!("usr/share/many/{}/f{i}", i % 100))
            .unwrap();
        h.set_size(4);
        h.set_mode(0o644);
        h.set_cksum();
        b.append(&h, &b"data"[..]).unwrap();
    }
    let a = write(&env, "k.tar.xz", &xz(&b.into_inner().unwrap()));
    let mut child = env
        .cmd()
        .args(["rootfs", "pull", a.to_str().unwrap(), "--name", "k"])
        .spawn();
    // Kill it once the unpack has begun (however long that takes on a busy machine), and
    // before it ended.
    loop {
        let unpacking = std::fs::read_dir(env.store())
            .map(|rd| {
                rd.flatten().any(|e| {
                    e.file_name().to_string_lossy().starts_with(".tmp-k-")
                        && e.path().join("root/usr").exists()
                })
            })
            .unwrap_or(false);
        if unpacking {
            break;
        }
        if let Some(st) = child.try_wait().unwrap() {
            panic!("the pull ended ({st}) before its unpack was seen");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        env.store().join("k").symlink_metadata().is_err(),
        "a killed pull left an entry"
    );
    let o = env.run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "k"]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.assert_clean("nothing");
    assert!(env.store().join("k/root/usr/share/many/7/f7").exists());
}

#[test]
fn import_a_directory_and_presets_are_listed() {
    let env = Env::new("import");
    let o = env.run(&[
        "rootfs",
        "import",
        fixture("busybox-arm64").to_str().unwrap(),
        "--name",
        "mine",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = env.run(&["run", "--rootfs", "mine", "--", "uname", "-m"]);
    assert_eq!(stdout(&o).trim(), "aarch64", "{}", stderr(&o));
    let o = env.run(&["rootfs", "pull", "--list-presets"]);
    assert!(o.status.success());
    assert!(stdout(&o).contains("ubuntu-24.04-armhf") && stdout(&o).contains("SHA256SUMS"));
    let o = env.run(&["run", "--rootfs", "no-such-name", "--", "true"]);
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("rootfs list"), "{}", stderr(&o));
}

#[test]
fn runs_never_modify_a_stored_rootfs_but_rootfs_shell_does() {
    let env = Env::new("immut");
    let a = write(&env, "bb.tar.xz", &busybox_archive());
    assert!(env
        .run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "bb"])
        .status
        .success());
    let root = env.store().join("bb/root");
    let listing = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(p)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let before = listing(&root);
    // The run writes to / and binds the working directory at a path the rootfs lacks.
    let o = env.run(&[
        "run",
        "--rootfs",
        "bb",
        "--",
        "sh",
        "-c",
        "echo x > /written; cat /written; pwd",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).lines().next(), Some("x"));
    assert_eq!(listing(&root), before, "a run changed the stored rootfs");
    let mut shell = env
        .cmd()
        .args(["rootfs", "shell", "bb"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn();
    shell
        .stdin
        .take()
        .unwrap()
        .write_all(b"id -u; echo kept > /from-shell\n")
        .unwrap();
    let out = shell.wait_with_output();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "0");
    assert_eq!(
        std::fs::read_to_string(root.join("from-shell")).unwrap(),
        "kept\n"
    );
}

#[test]
fn rm_waits_for_a_run_that_uses_the_rootfs() {
    let env = Env::new("rmwait");
    let a = write(&env, "bb.tar.xz", &busybox_archive());
    assert!(env
        .run(&["rootfs", "pull", a.to_str().unwrap(), "--name", "bb"])
        .status
        .success());
    let mut run = env
        .cmd()
        .args([
            "run",
            "--rootfs",
            "bb",
            "--",
            "sh",
            "-c",
            "echo ready; sleep 3; ls /bin/busybox && echo still-fine; echo done > run-finished",
        ])
        .stdout(std::process::Stdio::piped())
        .spawn();
    let mut out = std::io::BufReader::new(run.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut out, &mut line).unwrap();
    assert_eq!(line.trim(), "ready");
    let rm = env.run(&["rootfs", "rm", "bb"]);
    assert!(rm.status.success(), "{}", stderr(&rm));
    assert!(stderr(&rm).contains("in use"), "{}", stderr(&rm));
    // rm returned only after the run's command had finished (it writes this last).
    assert!(
        env.cwd.path().join("run-finished").exists(),
        "rm did not wait for the run"
    );
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut out, &mut rest).unwrap();
    assert!(run.wait().unwrap().success());
    assert!(rest.contains("still-fine"), "{rest}");
    assert!(!env.store().join("bb").exists());
}

#[test]
fn without_a_full_map_owners_are_dropped_and_said_once() {
    let env = Env::new("single");
    let a = write(&env, "bb.tar.xz", &busybox_archive());
    let o = env
        .cmd()
        .env("CARGO_FOR_ARM_SUBUID", env.cwd.path().join("none"))
        .args(["rootfs", "pull", a.to_str().unwrap(), "--name", "bb"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stderr(&o).matches("owners are dropped").count(),
        1,
        "{}",
        stderr(&o)
    );
    let md = std::fs::metadata(env.store().join("bb/root/bin/busybox")).unwrap();
    assert_eq!(md.uid(), unsafe { libc::getuid() });
}

#[test]
fn disk_full_during_unpack_leaves_nothing_half_written() {
    let env = Env::new("full");
    let big: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let a = write(
        &env,
        "big.tar",
        &tar_with(&[Raw {
            data: &big,
            ..raw(b"big", tar::EntryType::Regular)
        }]),
    );
    // A 2 MiB tmpfs as the store, in a user + mount namespace of our own (no root needed).
    let small = env.home.path().join("small");
    std::fs::create_dir_all(&small).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {s} && CARGO_FOR_ARM_HOME={s} {tool} rootfs pull {a} --name big; \
         echo \"exit=$?\"; ls -A {s}/rootfs",
        s = small.display(),
        tool = TOOL,
        a = a.display()
    );
    let o = env.cmd().output_via(
        "unshare",
        &["--user", "--map-root-user", "--mount", "sh", "-c", &script],
    );
    let out = stdout(&o);
    assert!(out.contains("exit=125"), "{out}\n{}", stderr(&o));
    assert!(
        stderr(&o).contains("ENOSPC") || stderr(&o).contains("No space left"),
        "{}",
        stderr(&o)
    );
    let left: Vec<&str> = out.lines().filter(|l| !l.starts_with("exit=")).collect();
    assert!(
        left.iter().all(|n| n.starts_with(".lock-")),
        "left in the store: {left:?}"
    );
}

/// A tree of subordinate ids, removed on drop as root of a user namespace with the user's
/// subordinate ids at 1..65536 (as tests/support/fixtures.sh removes what mmdebstrap made).
struct SubidTree(PathBuf);

impl Drop for SubidTree {
    fn drop(&mut self) {
        let _ = Command::new("sh")
            .args([
                "-c",
                r#"u=$(id -un)
                s=$(awk -F: -v u="$u" '$1 == u { print $2; exit }' /etc/subuid)
                g=$(awk -F: -v u="$u" '$1 == u { print $2; exit }' /etc/subgid)
                exec unshare --map-root-user --map-users="$s,1,65536" --map-groups="$g,1,65536" \
                    rm -rf "$1""#,
                "sh",
            ])
            .arg(&self.0)
            .status();
    }
}

/// A tree made by `mmdebstrap --mode=unshare` is owned by subordinate ids with root at the
/// first one, and holds mode-700 directories of _apt the user cannot read: `rootfs import`
/// reads it inside a user namespace and translates its owners (42 stays _apt, not 43); without
/// the full id map it names what it cannot read.
#[test]
fn import_an_mmdebstrap_unshare_tree_translates_its_owners() {
    if Command::new("mmdebstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: mmdebstrap is not installed (apt-get install mmdebstrap)");
        return;
    }
    let env = Env::new("mmimport");
    let mirror = Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/debfetch.py"))
        .arg("--print-mirror")
        .output()
        .unwrap();
    let mirror = String::from_utf8_lossy(&mirror.stdout).trim().to_string();
    // Not in the working directory, where `--rootfs mm` would name it rather than the entry.
    let made = TempDir::new("mmtree");
    let tree = SubidTree(made.path().join("root"));
    // extract: the packages' files only (fast, no dpkg run); apt still leaves its partial/
    // directories, owned by _apt (42), mode 700.
    let o = Command::new("mmdebstrap")
        .args([
            "--quiet",
            "--mode=unshare",
            "--variant=extract",
            "--include=busybox-static",
            "--architectures=amd64",
            "--extract-hook=ln -s busybox \"$1/bin/sh\"",
            "bookworm",
        ])
        .arg(&tree.0)
        .arg(&mirror)
        .output()
        .unwrap();
    assert!(o.status.success(), "mmdebstrap: {}", stderr(&o));
    let partial = tree.0.join("var/cache/apt/archives/partial");
    let md = std::fs::symlink_metadata(&partial).unwrap();
    assert_eq!(md.mode() & 0o777, 0o700);
    assert!(
        std::fs::read_dir(&partial).is_err(),
        "readable: the test proves nothing"
    );

    // Without the full id map the tree is read here: the error names what is unreadable.
    let o = env
        .cmd()
        .env("CARGO_FOR_ARM_SUBUID", env.cwd.path().join("none"))
        .args(["rootfs", "import", tree.0.to_str().unwrap(), "--name", "mm"])
        .output();
    assert_eq!(o.status.code(), Some(125), "{}", stderr(&o));
    // apt's lock files (640) and partial/ directories (700) are the first it meets.
    let inside = format!("reading {}/var/lib/apt/lists/", tree.0.display());
    assert!(
        stderr(&o).contains(&inside) && stderr(&o).contains("Permission denied"),
        "{}",
        stderr(&o)
    );
    env.assert_clean("mm");

    let o = env.run(&["rootfs", "import", tree.0.to_str().unwrap(), "--name", "mm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let leftovers: Vec<String> = std::fs::read_dir(env.store())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(".import-") || n.starts_with(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "left in the store: {leftovers:?}");
    // Inside: mmdebstrap's root is root again, _apt is 42; on the host root's files are the
    // user's, as in every tree of the store.
    let stat = |p: &str| {
        let o = env.run(&[
            "run",
            "--rootfs",
            "mm",
            "--",
            "/bin/busybox",
            "stat",
            "-c",
            "%u:%g",
            p,
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        stdout(&o).trim().to_string()
    };
    assert_eq!(stat("/bin/busybox"), "0:0");
    assert_eq!(stat("/var/cache/apt/archives/partial"), "42:0");
    let busybox = std::fs::metadata(env.store().join("mm/root/bin/busybox")).unwrap();
    assert_eq!(busybox.uid(), unsafe { libc::getuid() });
    let o = env.run(&["rootfs", "rm", "mm"]);
    assert!(o.status.success(), "{}", stderr(&o));
    env.assert_clean("mm");
}
