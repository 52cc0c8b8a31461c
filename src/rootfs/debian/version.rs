//! Debian versions and dependency fields: dpkg's version order, and `Depends`-style fields
//! parsed into clauses of alternatives, each with an optional version constraint.

use std::cmp::Ordering;
use std::fmt;

/// `[epoch:]upstream[-revision]`, split as dpkg splits it (the revision after the last `-`).
fn split_version(v: &str) -> (u64, &str, &str) {
    let (epoch, rest) = match v.split_once(':') {
        Some((e, r)) => (e.parse().unwrap_or(0), r),
        None => (0, v),
    };
    match rest.rsplit_once('-') {
        Some((u, r)) => (epoch, u, r),
        None => (epoch, rest, ""),
    }
}

/// The weight of one character of a non-digit run: `~` before the end, the end before
/// letters, letters before everything else.
fn char_order(c: Option<char>) -> i32 {
    match c {
        None => 0,
        Some('~') => -1,
        Some(c) if c.is_ascii_alphabetic() => c as i32,
        Some(c) => c as i32 + 256,
    }
}

/// Compare two non-digit runs character by character.
fn cmp_non_digits(a: &str, b: &str) -> Ordering {
    let (mut ca, mut cb) = (a.chars(), b.chars());
    loop {
        let (x, y) = (ca.next(), cb.next());
        if x.is_none() && y.is_none() {
            return Ordering::Equal;
        }
        match char_order(x).cmp(&char_order(y)) {
            Ordering::Equal => {}
            o => return o,
        }
    }
}

/// Compare an upstream version or a revision: alternating non-digit and digit runs.
fn cmp_part(a: &str, b: &str) -> Ordering {
    let (mut a, mut b) = (a, b);
    while !a.is_empty() || !b.is_empty() {
        let na = a.find(|c: char| c.is_ascii_digit()).unwrap_or(a.len());
        let nb = b.find(|c: char| c.is_ascii_digit()).unwrap_or(b.len());
        match cmp_non_digits(&a[..na], &b[..nb]) {
            Ordering::Equal => {}
            o => return o,
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

/// Compare two Debian versions (`[epoch:]upstream[-revision]`) the way dpkg does.
pub fn vercmp(a: &str, b: &str) -> Ordering {
    let (ea, ua, ra) = split_version(a);
    let (eb, ub, rb) = split_version(b);
    ea.cmp(&eb)
        .then_with(|| cmp_part(ua, ub))
        .then_with(|| cmp_part(ra, rb))
}

/// One alternative of a dependency: `name[:qualifier] [(op version)]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Atom {
    pub name: String,
    pub constraint: Option<(String, String)>,
}

impl Atom {
    /// Does `version` meet the constraint (always, without one)?
    pub fn allows(&self, version: &str) -> bool {
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

    /// One alternative as written in a field; `None` for an empty one.
    fn parse(alt: &str) -> Option<Atom> {
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
    }
}

/// As written in a dependency field: `name (op version)`.
impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.constraint {
            Some((op, v)) => write!(f, "{} ({op} {v})", self.name),
            None => f.write_str(&self.name),
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
                .filter_map(Atom::parse)
                .collect::<Vec<_>>()
        })
        .filter(|c| !c.is_empty())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
