//! The dependency resolver of `rootfs create`: the newest stanza of each package, the closure
//! of a set of packages over Pre-Depends and Depends (alternatives, virtual packages,
//! versions), and an order in which dpkg can unpack them.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use super::version::{parse_deps, vercmp, Atom};
use super::Stanza;

/// Why a package set cannot be resolved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// A package asked for by name is in no stanza and provided by none.
    #[error("unsatisfiable: package {0} is not in the index")]
    NotInIndex(String),
    /// No alternative of a dependency clause of `package` is available.
    #[error(
        "unsatisfiable: {package} depends on {}, which is not in the index",
        alternatives(.clause)
    )]
    Unsatisfiable { package: String, clause: Vec<Atom> },
}

/// `a (>= 1) | b`, as the clause is written.
fn alternatives(clause: &[Atom]) -> String {
    let alts: Vec<String> = clause.iter().map(Atom::to_string).collect();
    alts.join(" | ")
}

/// The dependency clauses of a stanza that order an unpack: Pre-Depends, then Depends.
fn dependencies(s: &Stanza) -> impl Iterator<Item = Vec<Atom>> + '_ {
    ["Pre-Depends", "Depends"]
        .into_iter()
        .flat_map(|field| parse_deps(s.get(field).map(String::as_str).unwrap_or("")))
}

/// The newest stanza of each package, and who provides what.
pub struct Index {
    pub pkgs: HashMap<String, Stanza>,
    provides: HashMap<String, Vec<(String, Option<String>)>>,
}

impl Index {
    pub fn new(stanzas: Vec<Stanza>) -> Index {
        let mut pkgs: HashMap<String, Stanza> = HashMap::new();
        for s in stanzas {
            let name = s["Package"].clone();
            let newer = pkgs
                .get(&name)
                .is_none_or(|old| vercmp(&s["Version"], &old["Version"]) == Ordering::Greater);
            if newer {
                pkgs.insert(name, s);
            }
        }
        let mut provides: HashMap<String, Vec<(String, Option<String>)>> = HashMap::new();
        for (name, s) in &pkgs {
            for clause in parse_deps(s.get("Provides").map(String::as_str).unwrap_or("")) {
                for a in clause {
                    let v = a.constraint.map(|(_, v)| v);
                    provides.entry(a.name).or_default().push((name.clone(), v));
                }
            }
        }
        for list in provides.values_mut() {
            list.sort();
        }
        Index { pkgs, provides }
    }

    /// Is `atom` satisfied by something already chosen?
    fn satisfied(&self, atom: &Atom, chosen: &HashSet<String>) -> bool {
        if chosen.contains(&atom.name) && atom.allows(&self.pkgs[&atom.name]["Version"]) {
            return true;
        }
        self.provides.get(&atom.name).is_some_and(|ps| {
            ps.iter().any(|(p, v)| {
                chosen.contains(p)
                    && (atom.constraint.is_none() || v.as_deref().is_some_and(|v| atom.allows(v)))
            })
        })
    }

    /// A package that can satisfy `atom`: the real one, else the first provider.
    fn candidate(&self, atom: &Atom) -> Option<String> {
        if let Some(s) = self.pkgs.get(&atom.name) {
            if atom.allows(&s["Version"]) {
                return Some(atom.name.clone());
            }
        }
        self.provides.get(&atom.name).and_then(|ps| {
            ps.iter()
                .find(|(_, v)| {
                    atom.constraint.is_none() || v.as_deref().is_some_and(|v| atom.allows(v))
                })
                .map(|(p, _)| p.clone())
        })
    }

    /// The closure of `roots` over Pre-Depends and Depends, in the order packages were added.
    pub fn resolve(&self, roots: &[String]) -> Result<Vec<String>, ResolveError> {
        let mut closure = Closure::default();
        for r in roots {
            let atom = Atom {
                name: r.clone(),
                constraint: None,
            };
            let pick = self
                .candidate(&atom)
                .ok_or_else(|| ResolveError::NotInIndex(r.clone()))?;
            closure.add(pick);
        }
        while let Some(name) = closure.work.pop() {
            for clause in dependencies(&self.pkgs[&name]) {
                if clause.iter().any(|a| self.satisfied(a, &closure.chosen)) {
                    continue;
                }
                let pick = clause
                    .iter()
                    .find_map(|a| self.candidate(a))
                    .ok_or_else(|| ResolveError::Unsatisfiable {
                        package: name.clone(),
                        clause: clause.clone(),
                    })?;
                closure.add(pick);
            }
        }
        Ok(closure.order)
    }

    /// `names` ordered so that each package comes after what it (pre-)depends on, as far as
    /// dependency cycles allow: dpkg unpacks in argument order and checks Pre-Depends there.
    pub fn install_order(&self, names: &[&String]) -> Vec<String> {
        let mut walk = OrderWalk {
            idx: self,
            set: names.iter().map(|n| n.as_str()).collect(),
            done: HashSet::new(),
            out: Vec::new(),
        };
        for n in names {
            walk.visit(n);
        }
        walk.out
    }

    /// The member of `set` that satisfies one alternative of `clause`, by name or by Provides.
    fn member_for(&self, clause: &[Atom], set: &HashSet<&str>) -> Option<String> {
        clause.iter().find_map(|a| {
            if set.contains(a.name.as_str()) {
                return Some(a.name.clone());
            }
            self.provides
                .get(&a.name)?
                .iter()
                .find(|(p, _)| set.contains(p.as_str()))
                .map(|(p, _)| p.clone())
        })
    }
}

/// The packages chosen so far, in the order they were chosen, and those whose dependencies
/// are still to be looked at.
#[derive(Default)]
struct Closure {
    chosen: HashSet<String>,
    order: Vec<String>,
    work: Vec<String>,
}

impl Closure {
    fn add(&mut self, pick: String) {
        if self.chosen.insert(pick.clone()) {
            self.order.push(pick.clone());
            self.work.push(pick);
        }
    }
}

/// A depth-first walk that puts each package after its dependencies within `set`.
struct OrderWalk<'a> {
    idx: &'a Index,
    set: HashSet<&'a str>,
    done: HashSet<String>,
    out: Vec<String>,
}

impl OrderWalk<'_> {
    fn visit(&mut self, n: &str) {
        if !self.done.insert(n.to_string()) {
            return;
        }
        for clause in dependencies(&self.idx.pkgs[n]) {
            if let Some(d) = self.idx.member_for(&clause, &self.set) {
                self.visit(&d);
            }
        }
        self.out.push(n.to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(pairs: &[(&str, &str)]) -> Stanza {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn install_order_puts_pre_dependencies_first() {
        let idx = Index::new(vec![
            st(&[
                ("Package", "e2fsprogs"),
                ("Version", "1"),
                ("Pre-Depends", "libblkid1"),
            ]),
            st(&[
                ("Package", "libblkid1"),
                ("Version", "1"),
                ("Depends", "libc6"),
            ]),
            st(&[("Package", "libc6"), ("Version", "1")]),
        ]);
        let names: Vec<String> = vec!["e2fsprogs".into(), "libblkid1".into(), "libc6".into()];
        let refs: Vec<&String> = names.iter().collect();
        assert_eq!(
            idx.install_order(&refs),
            ["libc6", "libblkid1", "e2fsprogs"]
        );
    }

    #[test]
    fn closure_with_alternatives_virtuals_and_versions() {
        let idx = Index::new(vec![
            st(&[
                ("Package", "app"),
                ("Version", "1"),
                ("Depends", "libx (>= 2), awk, missing-alt | liby"),
            ]),
            st(&[("Package", "libx"), ("Version", "1")]),
            st(&[("Package", "libx"), ("Version", "2.1")]),
            st(&[("Package", "mawk"), ("Version", "1"), ("Provides", "awk")]),
            st(&[
                ("Package", "liby"),
                ("Version", "1"),
                ("Pre-Depends", "libx"),
            ]),
        ]);
        let mut got = idx.resolve(&["app".into()]).unwrap();
        got.sort();
        assert_eq!(got, ["app", "libx", "liby", "mawk"]);
        let err = idx.resolve(&["nope".into()]).unwrap_err();
        assert_eq!(err, ResolveError::NotInIndex("nope".into()));
        let err = err.to_string();
        assert!(err.contains("nope"), "{err}");
        let idx = Index::new(vec![
            st(&[("Package", "a"), ("Version", "1"), ("Depends", "b (>= 5)")]),
            st(&[("Package", "b"), ("Version", "4")]),
        ]);
        let err = idx.resolve(&["a".into()]).unwrap_err();
        assert!(
            matches!(&err, ResolveError::Unsatisfiable { package, .. } if package == "a"),
            "{err:?}"
        );
        let err = format!("{:#}", anyhow::Error::from(err));
        assert!(err.contains("a depends on b (>= 5)"), "{err}");
    }
}
