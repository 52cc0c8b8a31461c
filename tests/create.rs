//! `rootfs create`: a real rootless bootstrap of a small Debian armhf rootfs from the mirror
//! of the test machine (cached between runs), and its failure modes.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::http::{Route, Server};
use common::*;

/// A store kept between runs beside the other fixtures (the .debs download once). Tests that
/// use it take turns, also with another run of the suite: one of them counts the cached
/// packages, others remove and create entries of fixed names.
fn home() -> (PathBuf, Turn) {
    let turn = take_turn("create-home");
    (store_fixture("create-home"), turn)
}

fn cmd(home: &Path) -> Tool {
    Tool::new(&std::env::temp_dir()).home(home)
}

fn ensure_minbase(home: &Path) {
    let args = ["--suite", "bookworm", "--arch", "armhf"];
    if let Some(err) = ensure_rootfs(home, "minbase-armhf", &args) {
        assert!(err.contains("Created rootfs minbase-armhf"), "{err}");
    }
}

#[test]
fn a_bootstrapped_rootfs_is_consistent_and_apt_works_inside() {
    let (h, _turn) = home();
    ensure_minbase(&h);
    let list = stdout(&cmd(&h).args(["rootfs", "list"]).output());
    assert!(
        list.contains("minbase-armhf")
            && list.contains("Debian GNU/Linux 12 (bookworm)")
            && list.contains("armhf"),
        "{list}"
    );
    let o = cmd(&h)
        .args(["run", "--rootfs", "minbase-armhf", "--", "dpkg", "--audit"])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "", "dpkg --audit found problems");
    let mut shell = cmd(&h)
        .args(["rootfs", "shell", "minbase-armhf"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    std::io::Write::write_all(
        shell.stdin.as_mut().unwrap(),
        b"apt-get update -q >/dev/null && apt-get install -y -q hello >/dev/null 2>&1 && echo installed; hello\n",
    )
    .unwrap();
    drop(shell.stdin.take());
    let out = shell.wait_with_output();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "installed\nHello, world!\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let hello = std::fs::read(h.join("rootfs/minbase-armhf/root/usr/bin/hello")).unwrap();
    assert_eq!(
        u16::from_le_bytes([hello[18], hello[19]]),
        40,
        "/usr/bin/hello is not an ARM program"
    );
}

#[test]
fn the_buildd_variant_has_a_working_c_toolchain() {
    let (h, _turn) = home();
    // Kept between runs like minbase-armhf (and its tree is kept too).
    ensure_rootfs(
        &h,
        "buildd-armhf",
        &[
            "--suite",
            "bookworm",
            "--arch",
            "armhf",
            "--variant",
            "buildd",
        ],
    );
    let o = cmd(&h)
        .args(["-q", "run", "--rootfs", "buildd-armhf", "--", "sh", "-c"])
        .arg(
            "dpkg --audit; dpkg-query -W -f '${Status}\\n' build-essential; \
             printf 'int main(void){return 7;}' > /tmp/t.c && gcc -o /tmp/t /tmp/t.c && { /tmp/t; echo \"ran $?\"; }; \
             make --version | head -1",
        )
        .output();
    let out = stdout(&o);
    assert!(o.status.success(), "{out}\n{}", stderr(&o));
    assert!(
        out.starts_with("install ok installed\n")
            && out.contains("ran 7")
            && out.contains("GNU Make"),
        "{out}"
    );
}

#[test]
fn an_unsatisfiable_include_names_the_package() {
    let h = TempDir::new("unsat");
    let o = cmd(h.path())
        .args([
            "rootfs",
            "create",
            "x",
            "--suite",
            "bookworm",
            "--arch",
            "armhf",
            "--include",
            "no-such-package-cfa",
        ])
        .output();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("no-such-package-cfa"), "{}", stderr(&o));
    assert!(!h.path().join("rootfs/x").exists());
}

#[test]
fn a_forged_inrelease_stops_create() {
    // The genuine bookworm InRelease with its signed text changed.
    let dir = cache_dir().join("bookworm-indices");
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("InRelease");
    if !p.exists() {
        let mirror = Command::new("python3")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/debfetch.py"))
            .arg("--print-mirror")
            .output()
            .unwrap();
        let url = format!(
            "{}/dists/bookworm/InRelease",
            String::from_utf8_lossy(&mirror.stdout).trim()
        );
        let part = p.with_extension(format!("part-{}", std::process::id()));
        std::fs::write(
            &part,
            reqwest::blocking::get(&url).unwrap().bytes().unwrap(),
        )
        .unwrap();
        std::fs::rename(&part, &p).unwrap();
    }
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replacen("Codename: ", "Codename: x", 1);
    let server = Server::start();
    server.route(
        "/d/dists/bookworm/InRelease",
        Route::file(text.into_bytes()),
    );
    let h = TempDir::new("forged");
    let o = cmd(h.path())
        .args([
            "rootfs",
            "create",
            "f",
            "--suite",
            "bookworm",
            "--arch",
            "armhf",
            "--mirror",
            &format!("{}/d", server.base),
        ])
        .output();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains("does not verify"), "{}", stderr(&o));
}

#[test]
fn an_interrupted_create_leaves_nothing_and_resumes_from_cached_packages() {
    let (h, _turn) = home();
    ensure_minbase(&h); // the packages are cached by now
                        // A name of this run's own: the store is shared with any other run of the suite.
    let name = format!("killed-{}", std::process::id());
    let _ = cmd(&h).args(["rootfs", "rm", &name]).output();
    let debs = || std::fs::read_dir(h.join("debs")).unwrap().count();
    let before = debs();
    // --no-snapshot: a real bootstrap, not the restore of minbase-armhf's kept tree.
    let mut child = cmd(&h)
        .args([
            "rootfs",
            "create",
            &name,
            "--suite",
            "bookworm",
            "--arch",
            "armhf",
            "--no-snapshot",
        ])
        .stderr(Stdio::piped())
        .spawn();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    loop {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "create ended before stage 2"
        );
        if line.contains("Installing essential packages") {
            break;
        }
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    child.wait().unwrap();
    assert!(
        !h.join("rootfs").join(&name).exists(),
        "a killed create left an entry"
    );
    let o = cmd(&h)
        .args([
            "rootfs",
            "create",
            &name,
            "--suite",
            "bookworm",
            "--arch",
            "armhf",
            "--no-snapshot",
        ])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(debs(), before, "the rerun downloaded packages again");
    let left: Vec<String> = std::fs::read_dir(h.join("rootfs"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(&format!(".tmp-{name}-")))
        .collect();
    assert!(left.is_empty(), "{left:?}");
    let o = cmd(&h).args(["rootfs", "rm", &name]).output();
    assert!(o.status.success(), "{}", stderr(&o));
}

/// Owners, modes and targets of some paths of a rootfs, as its own tools print them.
fn fingerprint(home: &Path, name: &str) -> String {
    let o = cmd(home)
        .args(["-q", "run", "--rootfs", name, "--"])
        .args([
            "sh",
            "-c",
            "stat -c '%n %U %G %a %F' /etc/shadow /var/log/apt /usr/bin/dpkg /var/cache/apt /bin /usr/sbin/unix_chkpwd; \
             readlink /etc/alternatives/pager; dpkg-query -W | md5sum; dpkg --audit",
        ])
        .output();
    assert!(o.status.success(), "{}", stderr(&o));
    stdout(&o)
}

#[test]
fn a_second_create_of_the_same_packages_restores_the_kept_tree() {
    let (h, _turn) = home();
    ensure_minbase(&h);
    // Names of this run's own: the store is shared with any other run of the suite.
    let pid = std::process::id();
    let (one, two) = (format!("again-{pid}-1"), format!("again-{pid}-2"));
    for n in [&one, &two] {
        let _ = cmd(&h).args(["rootfs", "rm", n]).output();
    }
    let create = |name: &str| {
        let o = cmd(&h)
            .args([
                "rootfs", "create", name, "--suite", "bookworm", "--arch", "armhf",
            ])
            .output();
        assert!(o.status.success(), "{}", stderr(&o));
        stderr(&o)
    };
    // Without kept trees the first bootstraps for real and keeps its tree; the second
    // restores it, without stage 2, and must be the same system.
    let _ = std::fs::remove_dir_all(h.join("snapshots"));
    let err = create(&one);
    assert!(
        err.contains("Installing essential packages") && err.contains("Kept the tree"),
        "{err}"
    );
    let err = create(&two);
    assert!(
        err.contains("Restoring the tree of an identical earlier create")
            && !err.contains("Installing essential packages"),
        "{err}"
    );
    let (a, b) = (fingerprint(&h, &one), fingerprint(&h, &two));
    assert!(a.contains("/etc/shadow root shadow"), "{a}");
    assert_eq!(a, b, "the restored rootfs differs from a bootstrapped one");
    // (--no-snapshot bootstraps for real: the interrupted-create test sees stage 2.)
    let snaps: Vec<PathBuf> = std::fs::read_dir(h.join("snapshots"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "zst"))
        .collect();
    assert!(!snaps.is_empty());
    for n in [&one, &two] {
        let o = cmd(&h).args(["rootfs", "rm", n]).output();
        assert!(o.status.success(), "{}", stderr(&o));
    }
}

#[test]
fn build_without_a_rootfs_creates_the_default_then_reuses_it() {
    let (h, _turn) = home();
    let proj = TempDir::new("default");
    copy_example("hello-arm", proj.path());
    // No --rootfs, no CARGO_FOR_ARM_ROOTFS, no config file: the default rootfs.
    let build = || {
        Tool::new(proj.path())
            .home(&h)
            // The default rootfs is the subject; auto would also create a tools rootfs.
            .env("CARGO_FOR_ARM_MODE", "emulate")
            .args(["build", "--release"])
            .output()
    };
    let first = h.join("rootfs/debian-bookworm-armhf/entry.toml").exists();
    let o = build();
    assert!(o.status.success(), "{}", stderr(&o));
    if !first {
        assert!(
            stderr(&o).contains("creating the default debian-bookworm-armhf"),
            "{}",
            stderr(&o)
        );
    }
    assert!(working_dir(proj.path(), "armhf")
        .join("release/hello-arm")
        .is_file());
    let o = build();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        !stderr(&o).contains("creating the default"),
        "created twice: {}",
        stderr(&o)
    );
}

#[test]
fn the_mirror_comes_from_the_users_config_file() {
    // A mirror of our own that knows nothing: the tool asks it, and fails naming it.
    let server = Server::start();
    let mirror = format!("{}/from-config", server.base);
    let h = TempDir::new("mirrorcfg");
    let cfg = h.path().join("config/cargo-for-arm");
    std::fs::create_dir_all(&cfg).unwrap();
    std::fs::write(cfg.join("config.toml"), format!("mirror = \"{mirror}\"\n")).unwrap();
    let o = cmd(&h.path().join("home"))
        .env("XDG_CONFIG_HOME", h.path().join("config"))
        .args([
            "rootfs", "create", "x", "--suite", "bookworm", "--arch", "armhf",
        ])
        .output();
    assert_eq!(o.status.code(), Some(125));
    assert!(stderr(&o).contains(&mirror), "{}", stderr(&o));
    let asked = server.log.lock().unwrap().requests.clone();
    assert!(
        asked
            .iter()
            .any(|(p, _)| p.starts_with("/from-config/dists/bookworm/")),
        "the configured mirror was not asked: {asked:?}"
    );
}
