//! What a verified `InRelease` must also say before its hashes are trusted: that it is the
//! suite that was asked for (a validly signed index of another suite served under the asked
//! name is a downgrade), that it has not expired (`Valid-Until`), and that it is not older
//! than one already seen for that mirror and suite (a replayed old, signed index).

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::parse_stanza;

/// `CARGO_FOR_ARM_ALLOW_EXPIRED=1`: accept an InRelease past its `Valid-Until`, as apt's
/// `Acquire::Check-Valid-Until=false` does, for snapshot mirrors that serve old indices.
pub const ALLOW_EXPIRED_ENV: &str = "CARGO_FOR_ARM_ALLOW_EXPIRED";

/// The fields of a Release that are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    /// `Date`, seconds since the epoch.
    pub date: Option<i64>,
}

/// Check a verified Release text against the suite asked for and the time `now`.
pub fn check(release: &str, asked: &str, now: i64) -> Result<Checked> {
    let f = parse_stanza(release);
    let suite = f.get("Suite").map(String::as_str).unwrap_or("");
    let codename = f.get("Codename").map(String::as_str).unwrap_or("");
    if suite != asked && codename != asked {
        bail!(
            "the InRelease served for '{asked}' is for Suite '{suite}', Codename '{codename}': a signed index of \
             another suite under the asked name is refused (a downgrade); check the mirror and the suite name"
        );
    }
    let date = f.get("Date").and_then(|d| parse_date(d));
    if let Some(until) = f.get("Valid-Until") {
        let until_s = parse_date(until).with_context(|| {
            format!("InRelease of {asked}: Valid-Until {until:?} is not a date")
        })?;
        let allowed = std::env::var(ALLOW_EXPIRED_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
        if until_s < now && !allowed {
            bail!(
                "the InRelease of {asked} expired ({until}): the mirror serves a stale index, or an old one is \
                 replayed; try another mirror, or for a snapshot mirror set {ALLOW_EXPIRED_ENV}=1"
            );
        }
    }
    Ok(Checked { date })
}

/// Refuse a Release older than the newest one seen for `mirror` and `suite`, and remember
/// this one. `seen` is a host-only file (`<home>/host/release-dates`): `mirror suite date`.
pub fn against_replay(seen: &Path, mirror: &str, suite: &str, date: i64) -> Result<()> {
    if let Some(dir) = seen.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // One read-modify-write at a time (concurrent creates must not lose a date), and the
    // file replaced atomically (a killed run leaves the old one, never half a file).
    let lock = std::fs::File::create(seen.with_extension("lock"))?;
    // SAFETY: flock on our own descriptor; released when `lock` is closed.
    if unsafe { libc::flock(std::os::fd::AsRawFd::as_raw_fd(&lock), libc::LOCK_EX) } != 0 {
        bail!(
            "locking {}: {}",
            seen.display(),
            std::io::Error::last_os_error()
        );
    }
    let text = std::fs::read_to_string(seen).unwrap_or_default();
    let key = format!("{mirror} {suite} ");
    let mut lines: Vec<String> = Vec::new();
    for l in text.lines() {
        match l.strip_prefix(&key).and_then(|d| d.parse::<i64>().ok()) {
            Some(newest) if date < newest => bail!(
                "the InRelease of {suite} from {mirror} is older than one already seen (Date {} < {}): \
                 a replayed old index is refused; try again later or another mirror",
                show(date),
                show(newest)
            ),
            Some(newest) if date == newest => return Ok(()),
            Some(_) => {}
            None => lines.push(l.to_string()),
        }
    }
    lines.push(format!("{key}{date}"));
    crate::rootfs::fetch::atomic_write(seen, (lines.join("\n") + "\n").as_bytes())
}

fn show(t: i64) -> String {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `Sat, 06 Dec 2025 08:21:12 UTC` (the Release date format; `UTC`, `GMT`, `+0000`).
pub fn parse_date(s: &str) -> Option<i64> {
    let mut w = s.split_whitespace();
    let first = w.next()?;
    let day: i64 = match first.trim_end_matches(',').parse() {
        Ok(d) => d,
        Err(_) => w.next()?.parse().ok()?,
    };
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let mon = w.next()?;
    let month = MONTHS.iter().position(|m| *m == mon)? as i64 + 1;
    let year: i64 = w.next()?.parse().ok()?;
    let mut hms = w.next()?.split(':').map(|x| x.parse::<i64>());
    let (h, mi, sec) = (hms.next()?.ok()?, hms.next()?.ok()?, hms.next()?.ok()?);
    let zone = w.next().unwrap_or("UTC");
    let offset = match zone {
        "UTC" | "GMT" | "Z" => 0,
        z if z.len() == 5 && (z.starts_with('+') || z.starts_with('-')) => {
            let n: i64 = z[1..].parse().ok()?;
            let secs = (n / 100) * 3600 + (n % 100) * 60;
            if z.starts_with('-') {
                -secs
            } else {
                secs
            }
        }
        _ => return None,
    };
    Some(days_from_civil(year, month, day) * 86_400 + h * 3600 + mi * 60 + sec - offset)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOOKWORM: &str = "Origin: Debian\nSuite: oldstable\nCodename: bookworm\nDate: Sat, 06 Dec 2025 08:21:12 UTC\nSHA256:\n";

    #[test]
    fn dates_of_release_files() {
        assert_eq!(parse_date("Thu, 01 Jan 1970 00:00:00 UTC"), Some(0));
        assert_eq!(
            parse_date("Sat, 06 Dec 2025 08:21:12 UTC"),
            Some(1_765_009_272)
        );
        assert_eq!(
            parse_date("Sat, 06 Dec 2025 09:21:12 +0100"),
            Some(1_765_009_272)
        );
        assert_eq!(parse_date("not a date"), None);
        assert_eq!(show(1_765_009_272), "2025-12-06");
    }

    #[test]
    fn the_suite_asked_by_suite_or_codename_and_not_another() {
        let now = 1_765_009_272;
        assert_eq!(check(BOOKWORM, "bookworm", now).unwrap().date, Some(now));
        assert!(check(BOOKWORM, "oldstable", now).is_ok());
        let e = check(BOOKWORM, "trixie", now).unwrap_err().to_string();
        assert!(e.contains("another suite"), "{e}");
    }

    #[test]
    fn an_expired_release_is_refused() {
        let r = format!("{BOOKWORM}Valid-Until: Sat, 13 Dec 2025 08:21:12 UTC\n");
        let before = parse_date("Fri, 12 Dec 2025 00:00:00 UTC").unwrap();
        let after = parse_date("Sun, 14 Dec 2025 00:00:00 UTC").unwrap();
        assert!(check(&r, "bookworm", before).is_ok());
        let e = check(&r, "bookworm", after).unwrap_err().to_string();
        assert!(
            e.contains("expired") && e.contains(ALLOW_EXPIRED_ENV),
            "{e}"
        );
    }

    #[test]
    fn an_older_release_than_one_seen_is_a_replay() {
        let dir = std::env::temp_dir().join(format!("cfa-replay-{}", std::process::id()));
        let seen = dir.join("release-dates");
        against_replay(&seen, "http://m/debian", "bookworm", 200).unwrap();
        against_replay(&seen, "http://m/debian", "trixie", 100).unwrap();
        against_replay(&seen, "http://m/debian", "bookworm", 200).unwrap();
        let e = against_replay(&seen, "http://m/debian", "bookworm", 150).unwrap_err();
        assert!(e.to_string().contains("replayed"), "{e}");
        against_replay(&seen, "http://m/debian", "bookworm", 300).unwrap();
        assert!(against_replay(&seen, "http://m/debian", "bookworm", 250).is_err());
        assert!(against_replay(&seen, "http://other/debian", "bookworm", 1).is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
