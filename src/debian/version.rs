//! Debian versions and package relationships: dpkg's ordering of version numbers
//! (deb-version(7)) and the Depends-style fields of Debian Policy §7.1, which is all the resolver
//! needs to decide whether a package satisfies a dependency.

use std::cmp::Ordering;
use std::fmt;

use super::Malformed;

/// Orders two Debian versions as dpkg does (deb-version(7)): the epoch as a number, then the
/// upstream version, then the revision. A missing epoch is 0; a missing revision compares like
/// `0` (so `1.0` = `1.0-0` < `1.0-1`).
pub fn compare(a: &str, b: &str) -> Ordering {
    let (a, b) = (Parts::of(a), Parts::of(b));
    compare_number(a.epoch, b.epoch)
        .then_with(|| compare_part(a.upstream, b.upstream))
        .then_with(|| compare_part(a.revision, b.revision))
}

/// `[epoch:]upstream[-revision]`: the epoch ends at the first `:`, the revision starts after the
/// last `-` (the upstream version may hold both when the other part is present).
struct Parts<'a> {
    epoch: &'a [u8],
    upstream: &'a [u8],
    revision: &'a [u8],
}

impl Parts<'_> {
    fn of(version: &str) -> Parts<'_> {
        let version = version.trim();
        let (epoch, rest) = match version.split_once(':') {
            Some((epoch, rest)) if epoch.bytes().all(|b| b.is_ascii_digit()) => (epoch, rest),
            _ => ("", version),
        };
        let (upstream, revision) = rest.rsplit_once('-').unwrap_or((rest, ""));
        Parts { epoch: epoch.as_bytes(), upstream: upstream.as_bytes(), revision: revision.as_bytes() }
    }
}

/// deb-version(7): alternately the longest leading run of non-digits, compared character by
/// character in the modified order of [`weight`], and the longest leading run of digits,
/// compared as numbers (an empty run is 0), until a difference is found.
fn compare_part(mut a: &[u8], mut b: &[u8]) -> Ordering {
    while !a.is_empty() || !b.is_empty() {
        let (a_text, a_rest) = split_run(a, false);
        let (b_text, b_rest) = split_run(b, false);
        let (a_digits, a_rest) = split_run(a_rest, true);
        let (b_digits, b_rest) = split_run(b_rest, true);
        let order = compare_text(a_text, b_text).then_with(|| compare_number(a_digits, b_digits));
        if order.is_ne() {
            return order;
        }
        (a, b) = (a_rest, b_rest);
    }
    Ordering::Equal
}

/// The leading run of digits (or of non-digits) and what follows it.
fn split_run(text: &[u8], digits: bool) -> (&[u8], &[u8]) {
    let end = text.iter().position(|b| b.is_ascii_digit() != digits).unwrap_or(text.len());
    text.split_at(end)
}

fn compare_text(a: &[u8], b: &[u8]) -> Ordering {
    (0..a.len().max(b.len()))
        .map(|i| weight(a.get(i).copied()).cmp(&weight(b.get(i).copied())))
        .find(|order| order.is_ne())
        .unwrap_or(Ordering::Equal)
}

/// deb-version(7)'s character order: `~` before everything, even the end of the part; then the
/// end; then letters; then all other characters, each group in ASCII order.
fn weight(c: Option<u8>) -> i32 {
    match c {
        Some(b'~') => -1,
        None => 0,
        Some(c) if c.is_ascii_alphabetic() => i32::from(c),
        Some(c) => i32::from(c) + 256,
    }
}

/// Two runs of decimal digits as numbers of any length.
fn compare_number(a: &[u8], b: &[u8]) -> Ordering {
    let strip = |n: &[u8]| -> usize { n.iter().position(|&d| d != b'0').unwrap_or(n.len()) };
    let (a, b) = (&a[strip(a)..], &b[strip(b)..]);
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// A relation operator (Policy §7.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `<<`: strictly earlier.
    Lt,
    /// `<=`, or the obsolete `<`.
    Le,
    /// `=`.
    Eq,
    /// `>=`, or the obsolete `>`.
    Ge,
    /// `>>`: strictly later.
    Gt,
}

impl Op {
    fn parse(text: &str) -> Option<Op> {
        Some(match text {
            "<<" => Op::Lt,
            "<=" | "<" => Op::Le,
            "=" => Op::Eq,
            ">=" | ">" => Op::Ge,
            ">>" => Op::Gt,
            _ => return None,
        })
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Lt => "<<",
            Op::Le => "<=",
            Op::Eq => "=",
            Op::Ge => ">=",
            Op::Gt => ">>",
        })
    }
}

/// The version part of a relation: `>= 2.34`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Constraint {
    pub op: Op,
    pub version: String,
}

impl Constraint {
    /// Whether `version` satisfies this constraint.
    pub fn allows(&self, version: &str) -> bool {
        let order = compare(version, &self.version);
        match self.op {
            Op::Lt => order.is_lt(),
            Op::Le => order.is_le(),
            Op::Eq => order.is_eq(),
            Op::Ge => order.is_ge(),
            Op::Gt => order.is_gt(),
        }
    }
}

impl fmt::Display for Constraint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.op, self.version)
    }
}

/// One alternative of a dependency: `libc6:any (>= 2.34)`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub name: String,
    /// The architecture qualifier: `any`, `native` or an architecture name.
    pub arch: Option<String>,
    pub constraint: Option<Constraint>,
}

impl fmt::Display for Relation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(arch) = &self.arch {
            write!(f, ":{arch}")?;
        }
        if let Some(constraint) = &self.constraint {
            write!(f, " ({constraint})")?;
        }
        Ok(())
    }
}

/// Whether `name` is a package name as Policy §5.6.1 allows: lower-case letters, digits, `+`,
/// `-` and `.`, starting with a letter or digit.
pub fn is_package_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"+-.".contains(&b))
}

/// Parses a Depends-style field (Policy §7.1): groups separated by `,`, each a list of
/// alternatives separated by `|`, each `name[:arch] [(op version)] [[arch ...]] [<profile ...>]`.
/// Architecture and build-profile restrictions (only meaningful in source packages) are accepted
/// and dropped. Whitespace, line breaks of folded fields included, may appear between any two
/// parts; empty groups (a trailing `,`) are skipped.
pub fn parse_relations(field: &str) -> Result<Vec<Vec<Relation>>, Malformed> {
    let mut groups = Vec::new();
    for group in field.split(',') {
        if group.trim().is_empty() {
            continue;
        }
        let alternatives = group
            .split('|')
            .map(|alternative| {
                if alternative.trim().is_empty() {
                    return Err(Malformed(format!("empty alternative in `{}`", squeeze(group))));
                }
                parse_relation(alternative)
            })
            .collect::<Result<Vec<_>, _>>()?;
        groups.push(alternatives);
    }
    Ok(groups)
}

/// `text` with every run of whitespace made one space, for messages.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn parse_relation(text: &str) -> Result<Relation, Malformed> {
    let bad = |why: String| Malformed(format!("bad relation `{}`: {why}", squeeze(text)));
    let text = text.trim_start();
    let end = text.find(|c: char| c.is_whitespace() || "([<".contains(c)).unwrap_or(text.len());
    let (word, mut rest) = text.split_at(end);
    let (name, arch) = match word.split_once(':') {
        Some((name, arch)) => (name, Some(arch)),
        None => (word, None),
    };
    if !is_package_name(name) {
        return Err(bad(format!("`{name}` is not a package name")));
    }
    if arch == Some("") {
        return Err(bad("no architecture after `:`".into()));
    }
    if let Some(arch) = arch
        && !arch.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    {
        return Err(bad(format!("`{arch}` is not an architecture")));
    }
    rest = rest.trim_start();
    let mut constraint = None;
    if let Some(inner) = rest.strip_prefix('(') {
        let close = inner.find(')').ok_or_else(|| bad("`(` is not closed".into()))?;
        constraint = Some(parse_constraint(&inner[..close]).map_err(|e| bad(e.0))?);
        rest = inner[close + 1..].trim_start();
    }
    while let Some(open) = rest.chars().next() {
        let close = match open {
            '[' => ']',
            '<' => '>',
            _ => return Err(bad(format!("unexpected `{}`", squeeze(rest)))),
        };
        let end = rest.find(close).ok_or_else(|| bad(format!("`{open}` is not closed")))?;
        rest = rest[end + 1..].trim_start();
    }
    Ok(Relation { name: name.to_string(), arch: arch.map(str::to_string), constraint })
}

/// `>= 2.34` (the text between the parentheses).
fn parse_constraint(text: &str) -> Result<Constraint, Malformed> {
    let text = text.trim();
    let end = text.find(|c: char| !"<=>".contains(c)).unwrap_or(text.len());
    let (op, version) = text.split_at(end);
    let op = Op::parse(op).ok_or_else(|| Malformed(format!("`{op}` is not a relation operator")))?;
    let version = version.trim();
    if version.is_empty() {
        return Err(Malformed(format!("`({text})` has no version")));
    }
    if version.contains(char::is_whitespace) {
        return Err(Malformed(format!("`{}` is not a version", squeeze(version))));
    }
    Ok(Constraint { op, version: version.to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts that `versions` are in strictly ascending order, every pair compared both ways.
    fn ascending(versions: &[&str]) {
        for (i, a) in versions.iter().enumerate() {
            for (j, b) in versions.iter().enumerate() {
                assert_eq!(compare(a, b), i.cmp(&j), "compare({a:?}, {b:?})");
            }
        }
    }

    #[test]
    fn tilde_sorts_before_everything_even_the_end() {
        // deb-version(7)'s own example, then the usual pre-release and backport spellings.
        ascending(&["~~", "~~a", "~", "", "a"]);
        ascending(&["1.0~rc1", "1.0~rc2", "1.0", "1.0-1~bpo12+1", "1.0-1", "1.0-1+b1"]);
    }

    #[test]
    fn the_epoch_outranks_everything_and_defaults_to_zero() {
        ascending(&["99.9", "1:0.1", "1:0.2", "2:0.0.1", "10:0"]);
        assert_eq!(compare("0:1.0", "1.0"), Ordering::Equal);
        assert_eq!(compare("00:1.0", "1.0"), Ordering::Equal);
    }

    #[test]
    fn a_missing_revision_is_zero() {
        assert_eq!(compare("1.0", "1.0-0"), Ordering::Equal);
        ascending(&["1.0", "1.0-1", "1.0-1.1", "1.0-2"]);
        // The revision starts after the last hyphen; earlier ones belong to the upstream version.
        ascending(&["1.2-3-4", "1.2-3-5", "1.2-4-1"]);
    }

    #[test]
    fn letters_sort_before_other_characters_and_digits_compare_as_numbers() {
        ascending(&["1.0a", "1.0z", "1.0+", "1.0."]);
        ascending(&["1.0", "1.0a", "1.0+dfsg", "1.0.1"]);
        ascending(&["1.9", "1.10", "1.100"]);
        assert_eq!(compare("1.01", "1.1"), Ordering::Equal);
        assert_eq!(compare("2.36-9+deb12u4", "2.36-9+deb12u10"), Ordering::Less);
        assert_eq!(compare("12345678901234567890123", "12345678901234567890124"), Ordering::Less);
    }

    #[test]
    fn constraints_allow_what_their_operator_says() {
        let c = |op, v: &str| Constraint { op, version: v.into() };
        assert!(c(Op::Ge, "2.34").allows("2.36-9"));
        assert!(!c(Op::Ge, "2.34").allows("2.33"));
        assert!(c(Op::Lt, "2.0").allows("2.0~rc1"));
        assert!(!c(Op::Lt, "2.0").allows("2.0"));
        assert!(c(Op::Le, "2.0").allows("2.0"));
        assert!(c(Op::Eq, "1.0").allows("0:1.0-0"));
        assert!(!c(Op::Gt, "1:0").allows("9.9"));
        assert_eq!(c(Op::Ge, "1.2").to_string(), ">= 1.2");
    }

    #[test]
    fn relations_parse_groups_alternatives_and_versions() {
        let field = "libc6 (>= 2.34), debconf (>= 0.5) | debconf-2.0, perl:any";
        let groups = parse_relations(field).unwrap();
        let shown: Vec<Vec<String>> = groups.iter().map(|g| g.iter().map(|r| r.to_string()).collect()).collect();
        assert_eq!(shown, [vec!["libc6 (>= 2.34)"], vec!["debconf (>= 0.5)", "debconf-2.0"], vec!["perl:any"]]);
        assert_eq!(groups[0][0].constraint, Some(Constraint { op: Op::Ge, version: "2.34".into() }));
        assert_eq!(groups[2][0].arch.as_deref(), Some("any"));
    }

    #[test]
    fn relations_accept_whitespace_anywhere_and_obsolete_operators() {
        let folded = "gcc-12-base(=12.2.0-14),\n libc6\t( >=2.35 ) |\n libc6.1 ( >> 2.0~ ),\n";
        let groups = parse_relations(folded).unwrap();
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0][0].to_string(), "gcc-12-base (= 12.2.0-14)");
        assert_eq!(groups[1][0].to_string(), "libc6 (>= 2.35)");
        assert_eq!(groups[1][1].to_string(), "libc6.1 (>> 2.0~)");
        let obsolete = parse_relations("a1 (< 1), b1 (> 2)").unwrap();
        assert_eq!(obsolete[0][0].constraint.as_ref().unwrap().op, Op::Le);
        assert_eq!(obsolete[1][0].constraint.as_ref().unwrap().op, Op::Ge);
        assert_eq!(parse_relations("").unwrap(), Vec::<Vec<Relation>>::new());
        assert_eq!(parse_relations(" \n ").unwrap(), Vec::<Vec<Relation>>::new());
    }

    #[test]
    fn architecture_and_profile_restrictions_are_dropped() {
        let groups =
            parse_relations("libseccomp-dev (>= 2.5) [linux-any] <!nocheck> <!stage1 !cross>, python3:native").unwrap();
        assert_eq!(
            groups[0],
            [Relation {
                name: "libseccomp-dev".into(),
                arch: None,
                constraint: Some(Constraint { op: Op::Ge, version: "2.5".into() })
            }]
        );
        assert_eq!(groups[1][0].to_string(), "python3:native");
    }

    #[test]
    fn bad_relations_name_the_bad_piece() {
        let err = |field: &str| parse_relations(field).unwrap_err().0;
        assert_eq!(err("libc6 (>= 2.34"), "bad relation `libc6 (>= 2.34`: `(` is not closed");
        assert_eq!(err("libc6 (== 2.34)"), "bad relation `libc6 (== 2.34)`: `==` is not a relation operator");
        assert_eq!(err("libc6 (>= )"), "bad relation `libc6 (>= )`: `(>=)` has no version");
        assert_eq!(err("libc6 (>= 2 3)"), "bad relation `libc6 (>= 2 3)`: `2 3` is not a version");
        assert_eq!(err("LibC6"), "bad relation `LibC6`: `LibC6` is not a package name");
        assert_eq!(err("libc6:"), "bad relation `libc6:`: no architecture after `:`");
        assert_eq!(err("libc6 2.34"), "bad relation `libc6 2.34`: unexpected `2.34`");
        assert_eq!(err("libc6 [amd64"), "bad relation `libc6 [amd64`: `[` is not closed");
        assert_eq!(err("a1 | | b1"), "empty alternative in `a1 | | b1`");
        assert_eq!(err("a1 (>= 1) |"), "empty alternative in `a1 (>= 1) |`");
    }
}
