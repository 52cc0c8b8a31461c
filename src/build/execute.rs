//! The last stages: cargo in the sandbox under the supervisor, then the report of what it
//! built.

use std::path::Path;
use std::time::{Duration, SystemTime};

use anyhow::Result;

use super::args::ReportMode;
use super::{project, Job, Prepared};
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
    if !job.quiet {
        spec.notes.iter().for_each(ui::note);
        ui::status(p.verb, &p.banner);
    }
    let started = SystemTime::now();
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
        report_artifacts(job, &p.artifacts, started)?;
    }
    Ok(outcome.code)
}

/// The report of what a build, test or bench run produced (`--report`).
fn report_artifacts(job: &Job, base: &Path, started: SystemTime) -> Result<()> {
    let o = &job.opts;
    let reports = ["build", "b", "test", "t", "bench", "rustc"];
    if o.report == ReportMode::Off || !reports.contains(&o.subcommand.as_str()) {
        return Ok(());
    }
    let tests = matches!(o.subcommand.as_str(), "test" | "t" | "bench")
        || o.cargo_args
            .iter()
            .any(|a| a == "--tests" || a == "--benches" || a == "--all-targets");
    let dir = project::profile_dir(base, &o.subcommand, &o.cargo_args);
    let rel = dir.strip_prefix(&job.target_dir).unwrap_or(&dir);
    // A second's slack: filesystem timestamps may be coarser than the clock.
    let since = started - Duration::from_secs(1);
    let artifacts = report::collect(&job.target_dir, rel, since, tests);
    match o.report {
        ReportMode::Json => report::print_json(&artifacts)?,
        _ => report::print_human(&artifacts),
    }
    Ok(())
}
