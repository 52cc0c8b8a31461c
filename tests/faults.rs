//! Concurrency and faults of the store: what a killed run leaves is cleaned by the next one
//! (only what no live run holds), and concurrent downloads of one package never write into
//! one file.

mod common;

use std::os::fd::AsRawFd;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use common::aptrepo::{make_deb, now, tools_or_skip, Deb, Gpg, Release, Tree};
use common::http::{Route, Server};
use common::*;
use sha2::Digest;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An old modification time: what a killed run left long ago (the cleaning does not rely on
/// it: it goes by locks).
fn touch_old(p: &Path) {
    let f = std::fs::File::options().write(true).open(p).unwrap();
    f.set_modified(std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(86_400))
        .unwrap();
}

#[test]
fn leftovers_of_a_killed_run_are_cleaned_and_a_live_runs_files_stay() {
    let home = TempDir::new("leftovers");
    let h = home.path();
    for d in ["debs", "host", "snapshots", "rootfs"] {
        std::fs::create_dir_all(h.join(d)).unwrap();
    }
    let sha = "ab".repeat(32);
    let stale = [
        h.join(format!("debs/{sha}.partial-4242-0001")),
        h.join(format!("debs/{sha}.partial-4242-0001.etag")),
        h.join("host/.tmp-release-dates-4242-0002"),
        h.join("snapshots/.tmp-snapshot-4242-0003"),
    ];
    for p in &stale {
        std::fs::write(p, b"left by a killed run").unwrap();
        touch_old(p);
    }
    // A temporary tree of an entry nobody holds, and one of an entry a live run holds.
    std::fs::create_dir_all(h.join("rootfs/.tmp-gone-4242/root/etc")).unwrap();
    std::fs::write(h.join("rootfs/.lock-gone"), b"").unwrap();
    std::fs::create_dir_all(h.join("rootfs/.tmp-busy-4243/root")).unwrap();
    let busy_lock = std::fs::File::create(h.join("rootfs/.lock-busy")).unwrap();
    // A live download: a partial file its writer holds locked.
    let live = h.join(format!("debs/{sha}.partial-4244-0004"));
    let live_file = std::fs::File::create(&live).unwrap();
    for f in [&busy_lock, &live_file] {
        assert_eq!(
            unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) },
            0
        );
    }
    touch_old(&live);
    // A complete cached package is no leftover.
    std::fs::write(h.join(format!("debs/{sha}.deb")), b"x").unwrap();

    let o = Tool::new(&std::env::temp_dir())
        .home(h)
        .args(["rootfs", "list"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    for p in &stale {
        assert!(!p.exists(), "{} was not cleaned", p.display());
    }
    assert!(!h.join("rootfs/.tmp-gone-4242").exists());
    assert!(
        h.join("rootfs/.tmp-busy-4243").exists(),
        "a held tree was removed"
    );
    assert!(live.exists(), "a live download was removed");
    assert!(h.join(format!("debs/{sha}.deb")).exists());
    drop((busy_lock, live_file));
    // Once its run is gone, the next run cleans those too.
    let o = Tool::new(&std::env::temp_dir())
        .home(h)
        .args(["rootfs", "list"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!live.exists() && !h.join("rootfs/.tmp-busy-4243").exists());
}

/// A signed archive with a 3 MiB package `big` (sent slowly) and a small `apt` (minbase asks
/// for it). It has no essential packages: a create fails once the packages are fetched and
/// unpacked (nothing can configure them); the downloads are what is tested.
struct BigArchive {
    _work: TempDir,
    gpg: Gpg,
    server: Server,
    mirror: String,
    pool: String,
    body: Vec<u8>,
    sha: String,
}

impl BigArchive {
    fn new() -> BigArchive {
        let work = TempDir::new("bigdeb");
        let deb_path = make_deb(work.path(), "big", "armhf", 3 << 20);
        let apt = Deb::read(&make_deb(work.path(), "apt", "armhf", 1000));
        let body = std::fs::read(&deb_path).unwrap();
        let sha = hex(&sha2::Sha256::digest(&body));
        let gpg = Gpg::new("download archive");
        let tree = Tree::new(&work.path().join("debian"));
        tree.packages("bookworm", "armhf", &[Deb::read(&deb_path), apt]);
        let r = Release {
            origin: "Debian",
            suite: "bookworm",
            codename: "bookworm",
            date: now(),
        };
        tree.publish(&gpg, "bookworm", &r);
        let server = Server::start();
        let mirror = server.dir("/debian", &tree.dir);
        // Sent slowly (with an ETag, and Range honoured), so downloads overlap.
        let pool = format!("/debian/pool/main/{sha}.deb");
        let route = Route {
            chunk_delay: Some(Duration::from_millis(20)),
            ..Route::file(body.clone())
        };
        server.route(&pool, route);
        BigArchive {
            _work: work,
            gpg,
            server,
            mirror,
            pool,
            body,
            sha,
        }
    }

    /// `rootfs create NAME` of `big` from it, into the store `home`.
    fn create(&self, home: &Path, name: &str) -> Tool {
        Tool::new(&std::env::temp_dir())
            .home(home)
            .args([
                "rootfs", "create", name, "--suite", "bookworm", "--arch", "armhf",
            ])
            .args([
                "--include",
                "big",
                "--no-snapshot",
                "--mirror",
                &self.mirror,
            ])
            .arg("--keyring")
            .arg(&self.gpg.keyring)
    }
}

/// Partial downloads in `debs`: the largest one's size.
fn largest_partial(debs: &Path) -> u64 {
    std::fs::read_dir(debs)
        .map(|rd| {
            rd.flatten()
                .filter(|e| e.file_name().to_string_lossy().contains(".partial"))
                .filter(|e| !e.file_name().to_string_lossy().ends_with(".etag"))
                .filter_map(|e| e.metadata().ok())
                .map(|m| m.len())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0)
}

#[test]
fn concurrent_downloads_of_one_package_do_not_corrupt_each_other() {
    if !tools_or_skip() {
        return;
    }
    let a = BigArchive::new();
    let home = TempDir::new("concdeb-home");
    let start = |name: &str| a.create(home.path(), name).stderr(Stdio::piped()).spawn();
    // The second starts when the first has written a third of its download.
    let one = start("one");
    let debs = home.path().join("debs");
    let guard = std::time::Instant::now() + Duration::from_secs(300);
    while largest_partial(&debs) < 1 << 20 {
        assert!(
            std::time::Instant::now() < guard,
            "the first download never got going"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let two = start("two");
    let (one, two) = (one.wait_with_output(), two.wait_with_output());
    for o in [&one, &two] {
        let err = stderr(o);
        assert!(
            !err.contains("does not match") && !err.contains("downloading packages failed"),
            "a download was disturbed by the other: {err}"
        );
        assert!(err.contains("Unpacking"), "{err}");
    }
    let cached = debs.join(format!("{}.deb", a.sha));
    let got = std::fs::read(&cached).unwrap_or_default();
    assert_eq!(hex(&sha2::Sha256::digest(&got)), a.sha);
    assert_eq!(largest_partial(&debs), 0, "partial downloads were left");
    assert_eq!(
        a.server.gets(&a.pool).len(),
        2,
        "both runs should have downloaded it"
    );
    // Both recorded the index's date, and the record is whole.
    let dates = std::fs::read_to_string(home.path().join("host/release-dates")).unwrap();
    assert_eq!(dates.lines().count(), 1, "{dates}");
    assert!(
        dates.starts_with(&format!("{} bookworm ", a.mirror)),
        "{dates}"
    );
}

#[test]
fn a_killed_runs_partial_download_is_taken_over_and_resumed() {
    if !tools_or_skip() {
        return;
    }
    let a = BigArchive::new();
    let home = TempDir::new("resumedeb-home");
    let debs = home.path().join("debs");
    std::fs::create_dir_all(&debs).unwrap();
    // What a killed run left: a third of the package, with the ETag it came with.
    let cut = a.body.len() / 3;
    let partial = debs.join(format!("{}.partial-4242-0001", a.sha));
    std::fs::write(&partial, &a.body[..cut]).unwrap();
    std::fs::write(
        debs.join(format!("{}.partial-4242-0001.etag", a.sha)),
        "\"v1\"",
    )
    .unwrap();
    let o = a.create(home.path(), "r").output();
    assert!(stderr(&o).contains("Unpacking"), "{}", stderr(&o));
    let gets = a.server.gets(&a.pool);
    assert_eq!(gets, [Some(format!("bytes={cut}-"))], "{}", stderr(&o));
    let got = std::fs::read(debs.join(format!("{}.deb", a.sha))).unwrap();
    assert_eq!(got, a.body);
    assert_eq!(largest_partial(&debs), 0, "partial downloads were left");
}
