//! The last stages: cargo in the sandbox under the supervisor, then the report of what it
//! built.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::args::ReportMode;
use super::{finals, fresh, project, Job, Prepared};
use crate::{report, supervise, ui};

pub fn stderr_is_terminal() -> bool {
    use std::io::IsTerminal;
    std::io::stderr().is_terminal()
}

/// Run cargo in the sandbox under the supervisor, then report what it built.
pub fn execute(job: &Job, p: Prepared) -> Result<i32> {
    let mut argv = vec!["cargo".to_string(), job.opts.subcommand.clone()];
    argv.extend(job.opts.cargo_args.iter().cloned());
    let spec = p.builder.argv(argv).build()?;
    let started = SystemTime::now();
    let fresh = (!job.native)
        .then(|| fresh::Check::new(job, &spec))
        .flatten();
    if fresh.as_ref().is_some_and(fresh::Check::fresh) {
        if !job.quiet {
            ui::status("Fresh", format_args!("{}: {}", p.banner, fresh::WHY));
        }
        drop(p.service);
        finish(job, &p.artifacts, started)?;
        return Ok(0);
    }
    fresh.iter().for_each(fresh::Check::forget);
    if !job.quiet {
        spec.notes.iter().for_each(ui::note);
        ui::status(p.verb, &p.banner);
    }
    let how = supervise::Supervision {
        hang_timeout: job.timeout,
        retries: job.opts.retries,
        status: match stderr_is_terminal() && !job.quiet {
            true => supervise::Status::Line,
            false => supervise::Status::Plain,
        },
    };
    let outcome = supervise::run(&spec, how)?;
    drop(p.service);
    super::cache::finish(job);
    if let Some(e) = &outcome.error {
        eprintln!("error: {e}");
    }
    if outcome.code == 0 {
        finish(job, &p.artifacts, started)?;
        fresh.iter().for_each(|c| c.record(job));
    }
    Ok(outcome.code)
}

/// After a build that succeeded, in every isolation: the finals copied out of cargo's working
/// directory `base` (`<target dir>/<triple>`), then the report of them.
pub(super) fn finish(job: &Job, base: &Path, started: SystemTime) -> Result<()> {
    let finals = copy_finals(job, base)?;
    report_artifacts(job, finals.as_deref(), started)
}

const BUILDS: [&str; 8] = ["build", "b", "test", "t", "bench", "rustc", "run", "r"];

/// Whether this command builds test executables the user may want.
fn builds_tests(job: &Job) -> bool {
    let o = &job.opts;
    matches!(o.subcommand.as_str(), "test" | "t" | "bench")
        || o.cargo_args
            .iter()
            .take_while(|a| *a != "--")
            .any(|a| a == "--tests" || a == "--benches" || a == "--all-targets")
}

/// Copy the final artifacts out of cargo's working directory into cargo's cross layout
/// (`<out_dir>/<triple>/<profile>`, the same in every mode); returns that profile directory
/// relative to `out_dir`, or `None` for a command that builds nothing.
fn copy_finals(job: &Job, base: &Path) -> Result<Option<PathBuf>> {
    let o = &job.opts;
    if !BUILDS.contains(&o.subcommand.as_str()) {
        return Ok(None);
    }
    let src = project::profile_dir(base, &o.subcommand, &o.cargo_args);
    let Ok(src_rel) = src.strip_prefix(&job.target_dir) else {
        return Ok(None);
    };
    let Some(profile) = src.file_name() else {
        return Ok(None);
    };
    let dst_rel = Path::new(&job.triple).join(profile);
    // With --project-rw the build could have made `target` or `target/for-arm` a symlink
    // (elsewhere they are read-only to it): never copy through one. The build is over, so
    // nothing changes them between this check and the copy.
    for base in [&job.out_dir, &job.target_dir] {
        no_symlink_below(&job.project.root, base)?;
    }
    finals::copy_out(
        &job.target_dir,
        src_rel,
        &job.out_dir,
        &dst_rel,
        finals::Select {
            tests: builds_tests(job),
        },
    )?;
    Ok(Some(dst_rel))
}

/// Refuse a `path` below `root` with a symlink among its components (a path elsewhere is
/// the user's own `--target-dir`).
fn no_symlink_below(root: &Path, path: &Path) -> Result<()> {
    let Ok(rel) = path.strip_prefix(root) else {
        return Ok(());
    };
    let mut at = root.to_path_buf();
    for c in rel.components() {
        at.push(c);
        if at
            .symlink_metadata()
            .is_ok_and(|m| m.file_type().is_symlink())
        {
            anyhow::bail!(
                "{} is a symlink (made by the build?): the artifacts are not copied through it; \
                 remove it and build again",
                at.display()
            );
        }
    }
    Ok(())
}

/// The report of what a build, test or bench run produced (`--report`), read from the
/// final layout: the paths it prints are the ones to use.
fn report_artifacts(job: &Job, rel: Option<&Path>, started: SystemTime) -> Result<()> {
    let o = &job.opts;
    let reports = ["build", "b", "test", "t", "bench", "rustc"];
    let Some(rel) = rel else { return Ok(()) };
    if o.report == ReportMode::Off || !reports.contains(&o.subcommand.as_str()) {
        return Ok(());
    }
    // A second's slack: filesystem timestamps may be coarser than the clock.
    let since = started - Duration::from_secs(1);
    let artifacts = report::collect(&job.out_dir, rel, since, builds_tests(job));
    match o.report {
        ReportMode::Json => report::print_json(&artifacts)?,
        _ if message_format_json(&o.cargo_args) => report::print_json(&artifacts)?,
        _ => report::print_human(&artifacts),
    }
    Ok(())
}

/// `--message-format json…`: cargo's stdout is JSON, and so is the report that follows it.
fn message_format_json(args: &[String]) -> bool {
    let mut it = args.iter().take_while(|a| *a != "--");
    while let Some(a) = it.next() {
        let v = match a.strip_prefix("--message-format=") {
            Some(v) => Some(v),
            None if a == "--message-format" => it.next().map(String::as_str),
            None => None,
        };
        if v.is_some_and(|v| v.starts_with("json")) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_messages_are_told() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert!(message_format_json(&s(&["--message-format", "json"])));
        assert!(message_format_json(&s(&[
            "--message-format=json-render-diagnostics"
        ])));
        assert!(!message_format_json(&s(&["--message-format", "short"])));
        assert!(!message_format_json(&s(&["--", "--message-format=json"])));
    }
}
