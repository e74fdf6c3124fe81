//! The licence a Debian package declares, read from its machine-readable `copyright` file
//! (copyright-format 1.0, drafted as DEP-5) and written as an SPDX licence expression.
//!
//! Only the first line of each `License` field of the header and the `Files` stanzas counts: it
//! is a Debian licence expression, whose short names are mapped to SPDX identifiers. The package's
//! licence is all of them joined with `AND`, sorted and deduplicated, so the same file always gives
//! the same bytes. A name with no SPDX identifier becomes a `LicenseRef-` that carries its text
//! from the file. A file in any other format gives `None`: free-form copyright files cannot be
//! read reliably, and the caller then asserts nothing. Malformed input never panics; what cannot
//! be read is skipped.

use std::collections::BTreeMap;

use crate::base::hash::{digest_bytes, hex};

/// A package's declared licence, in SPDX terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    /// An SPDX licence expression: each operand list sorted and deduplicated.
    pub expression: String,
    /// The licences the expression names by a `LicenseRef-`, sorted by id.
    pub extracted: Vec<Extracted>,
}

/// A licence with no SPDX identifier (an SPDX 2.3 "other licensing information detected").
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extracted {
    /// `LicenseRef-`, the name in SPDX's idstring alphabet, `-` and the first 8 hex digits of
    /// the SHA-256 of the name and text: one id is one text in any number of packages.
    pub id: String,
    /// The Debian short name, or the whole `NAME with X exception` term, as written.
    pub name: String,
    /// The licence text the copyright file gives for it.
    pub text: String,
}

/// The declared licence of a machine-readable copyright file, or `None` for any other file.
pub fn declared_license(text: &str) -> Option<Declared> {
    let stanzas = stanzas(text.strip_prefix('\u{feff}').unwrap_or(text));
    let header = stanzas.first()?;
    if !field(header, "Format").is_some_and(|format| is_format_1_0(format.first)) {
        return None;
    }
    // Two passes: a `Files` stanza may name a licence whose stand-alone stanza comes later.
    let mut resolver = Resolver::default();
    let mut declared = Vec::new();
    for (index, stanza) in stanzas.iter().enumerate() {
        let Some(licence) = field(stanza, "License") else { continue };
        if index == 0 || field(stanza, "Files").is_some() {
            if let Some(expression) = parse(licence.first) {
                let mut terms = Vec::new();
                expression.terms(&mut terms);
                resolver.inline.push((terms.iter().map(|term| key(term)).collect(), body(licence)));
                declared.push(expression);
            }
        } else {
            let text = body(licence);
            if !text.is_empty() {
                resolver.standalone.entry(key(licence.first)).or_insert(text);
            }
        }
    }
    let parts = declared.iter().map(|expression| resolver.resolve(expression)).collect();
    let expression = Spdx::compound(Op::And, parts)?;
    Some(Declared { expression: expression.render(), extracted: resolver.extracted.into_values().collect() })
}

/// A field of a stanza: its name, the rest of its first line, and its continuation lines.
struct Field<'a> {
    name: &'a str,
    first: &'a str,
    rest: Vec<&'a str>,
}

type Stanza<'a> = Vec<Field<'a>>;

/// The stanzas of a control-file-syntax file (Debian Policy 5.1): fields `Name: value`, lines
/// that start with white space continue the field above, blank lines separate stanzas, lines that
/// start with `#` are comments. A line that is none of these is skipped with its continuations.
fn stanzas(text: &str) -> Vec<Stanza<'_>> {
    let mut stanzas = Vec::new();
    let mut current: Stanza = Vec::new();
    let mut in_field = false;
    for line in text.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                stanzas.push(std::mem::take(&mut current));
            }
            in_field = false;
        } else if line.starts_with([' ', '\t']) {
            if let Some(field) = current.last_mut().filter(|_| in_field) {
                field.rest.push(line);
            }
        } else if line.starts_with('#') {
            // A comment: neither a field nor the end of one.
        } else if let Some((name, value)) = line.split_once(':') {
            current.push(Field { name: name.trim(), first: value.trim(), rest: Vec::new() });
            in_field = true;
        } else {
            in_field = false;
        }
    }
    if !current.is_empty() {
        stanzas.push(current);
    }
    stanzas
}

/// A stanza's field by name; field names are case-insensitive.
fn field<'s, 'a>(stanza: &'s Stanza<'a>, name: &str) -> Option<&'s Field<'a>> {
    stanza.iter().find(|field| field.name.eq_ignore_ascii_case(name))
}

/// The continuation lines of a field as text, by the rules for formatted text (Debian Policy
/// 5.6.13): the leading space goes, a line holding only `.` is an empty line.
fn body(field: &Field) -> String {
    let lines: Vec<&str> = field
        .rest
        .iter()
        .map(|line| {
            // A continuation line starts with a space or a tab, one byte either way.
            let line = &line[1..];
            if line.trim() == "." { "" } else { line }
        })
        .collect();
    lines.join("\n").trim_end().trim_start_matches('\n').to_string()
}

/// Whether a `Format` value names copyright-format 1.0, over http or https, with or without the
/// trailing slash. The DEP-5 drafts that came before it had other short names, so they do not count.
fn is_format_1_0(value: &str) -> bool {
    let rest = value.strip_prefix("https://").or_else(|| value.strip_prefix("http://"));
    rest.is_some_and(|rest| {
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        rest.eq_ignore_ascii_case("www.debian.org/doc/packaging-manuals/copyright-format/1.0")
    })
}

/// A licence name or term compared the way the format compares them: case-insensitive, any run
/// of white space one space.
fn key(term: &str) -> String {
    term.split_whitespace().collect::<Vec<_>>().join(" ").to_lowercase()
}

/// A Debian licence expression (copyright-format 1.0, 7.2). A term is a short name, or a short
/// name followed by `with X exception`, its words joined by single spaces.
enum Expr {
    Term(String),
    All(Vec<Expr>),
    Any(Vec<Expr>),
}

impl Expr {
    fn terms<'e>(&'e self, out: &mut Vec<&'e str>) {
        match self {
            Expr::Term(term) => out.push(term),
            Expr::All(parts) | Expr::Any(parts) => parts.iter().for_each(|part| part.terms(out)),
        }
    }
}

/// Parses a `License` synopsis. `and` binds tighter than `or`, unless a comma comes before it: `A
/// or B and C` is `A or (B and C)`, `A or B, and C` is `(A or B) and C` (7.2). Comma-separated
/// parts are combined left to right; one that starts with neither word is read as `and`, the
/// reading that claims least.
fn parse(synopsis: &str) -> Option<Expr> {
    let mut result: Option<Expr> = None;
    for segment in synopsis.split(',') {
        let mut words: Vec<&str> = segment.split_whitespace().collect();
        let any = words.first().is_some_and(|word| word.eq_ignore_ascii_case("or"));
        if words.first().is_some_and(|word| word.eq_ignore_ascii_case("or") || word.eq_ignore_ascii_case("and")) {
            words.remove(0);
        }
        let Some(part) = parse_words(&words) else { continue };
        result = Some(match result {
            None => part,
            Some(left) if any => Expr::Any(vec![left, part]),
            Some(left) => Expr::All(vec![left, part]),
        });
    }
    result
}

/// Parses words without commas: alternatives split at `or`, each a conjunction split at `and`.
fn parse_words(words: &[&str]) -> Option<Expr> {
    let is = |word: &str, keyword: &str| word.eq_ignore_ascii_case(keyword);
    let alternatives = words
        .split(|word| is(word, "or"))
        .filter_map(|alternative| {
            let terms = alternative
                .split(|word| is(word, "and"))
                .filter(|term| !term.is_empty())
                .map(|term| Expr::Term(term.join(" ")))
                .collect();
            one_or_many(terms, Expr::All)
        })
        .collect();
    one_or_many(alternatives, Expr::Any)
}

fn one_or_many(mut parts: Vec<Expr>, many: fn(Vec<Expr>) -> Expr) -> Option<Expr> {
    match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(many(parts)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    And,
    Or,
}

/// An SPDX licence expression (SPDX 2.3 Annex D) whose operand lists are flat, sorted and free of
/// duplicates. An `Id` is a licence id, a `LicenseRef-`, or `id WITH exception`.
#[derive(Clone, PartialEq, Eq)]
enum Spdx {
    Id(String),
    Compound(Op, Vec<Spdx>),
}

impl Spdx {
    /// `parts` joined by `op`: nested uses of the same operator flattened, operands sorted by
    /// their text and deduplicated. `None` for no parts.
    fn compound(op: Op, parts: Vec<Spdx>) -> Option<Spdx> {
        let mut flat = Vec::new();
        for part in parts {
            match part {
                Spdx::Compound(inner, operands) if inner == op => flat.extend(operands),
                other => flat.push(other),
            }
        }
        flat.sort_by_cached_key(Spdx::operand);
        flat.dedup();
        match flat.len() {
            0 => None,
            1 => flat.pop(),
            _ => Some(Spdx::Compound(op, flat)),
        }
    }

    fn render(&self) -> String {
        match self {
            Spdx::Id(id) => id.clone(),
            Spdx::Compound(op, operands) => {
                let separator = if *op == Op::And { " AND " } else { " OR " };
                operands.iter().map(Spdx::operand).collect::<Vec<_>>().join(separator)
            }
        }
    }

    /// The expression as an operand of another: compound ones in parentheses. `AND` binds tighter
    /// than `OR`, so some of these are not needed, but they say what is meant at a glance.
    fn operand(&self) -> String {
        match self {
            Spdx::Id(id) => id.clone(),
            compound => format!("({})", compound.render()),
        }
    }
}

/// Turns Debian terms into SPDX, and keeps the `LicenseRef-`s it had to make.
#[derive(Default)]
struct Resolver {
    /// The text of each stand-alone `License` stanza, by the [`key`] of its synopsis (the first
    /// one wins).
    standalone: BTreeMap<String, String>,
    /// The keys of the terms of each header or `Files` stanza's licence, and the text under it,
    /// in file order.
    inline: Vec<(Vec<String>, String)>,
    extracted: BTreeMap<String, Extracted>,
}

impl Resolver {
    fn resolve(&mut self, expression: &Expr) -> Spdx {
        match expression {
            Expr::Term(term) => Spdx::Id(spdx_term(term).unwrap_or_else(|| self.licence_ref(term))),
            Expr::All(parts) | Expr::Any(parts) => {
                let op = if matches!(expression, Expr::All(_)) { Op::And } else { Op::Or };
                let parts = parts.iter().map(|part| self.resolve(part)).collect();
                // Never `None`: the parser makes no empty lists.
                Spdx::compound(op, parts).unwrap_or_else(|| Spdx::Id("NOASSERTION".to_string()))
            }
        }
    }

    /// The `LicenseRef-` for a term with no SPDX identifier. Its text is that of the stand-alone
    /// stanza of that name, else the text under the first header or `Files` stanza that names
    /// it. The id ends in a digest of the name and text because the same Debian name means
    /// different texts in different packages (`public-domain`, `permissive`, ...), and two names
    /// can look alike in the idstring alphabet: with the digest, one id in the whole SBOM is one
    /// text, so the SBOM can merge the lists of all packages by id.
    fn licence_ref(&mut self, term: &str) -> String {
        let key = key(term);
        let found = self.standalone.get(&key).or_else(|| {
            self.inline.iter().find(|(keys, text)| !text.is_empty() && keys.contains(&key)).map(|(_, text)| text)
        });
        // SPDX 2.3 (10.2) requires an extracted text for every LicenseRef and has no NOASSERTION
        // for it; like its own example for a file that only names its licence, we then give the
        // reference as found.
        let text = match found {
            Some(text) => text.clone(),
            None => format!("{term} (a licence named in the Debian copyright file, which gives no text for it)"),
        };
        let digest = digest_bytes(format!("{term}\n{text}").as_bytes());
        let id = format!("LicenseRef-{}-{}", idstring(term), &hex(&digest)[..8]);
        self.extracted.entry(id.clone()).or_insert_with(|| Extracted { id: id.clone(), name: term.to_string(), text });
        id
    }
}

/// The SPDX form of a term: `NAME` or `NAME with X exception`, when both are on SPDX's lists.
fn spdx_term(term: &str) -> Option<String> {
    let words: Vec<&str> = term.split(' ').collect();
    match words.as_slice() {
        [name] => spdx_licence(name),
        [name, with, exception @ .., last]
            if with.eq_ignore_ascii_case("with") && last.eq_ignore_ascii_case("exception") && !exception.is_empty() =>
        {
            let licence = spdx_licence(name)?;
            let exception = spdx_exception(&exception.join(" "), &licence)?;
            Some(format!("{licence} WITH {exception}"))
        }
        _ => None,
    }
}

/// The SPDX licence id for a Debian short name (copyright-format 1.0, 7.1), if there is one.
///
/// Names are case-insensitive; a version without its trailing `.0`s is the same version; a
/// missing version is the lowest the format lists for the family; a trailing `+` means "or any
/// later version": the GNU licences have `-or-later` ids for it, the others take SPDX's `+`
/// operator. The SPDX forms `-only` and `-or-later`, which some files use, are read too.
/// Deliberately short: only names whose meaning is fixed; everything else becomes a LicenseRef.
fn spdx_licence(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let (stem, later) = if let Some(stem) = lower.strip_suffix("-or-later") {
        (stem, true)
    } else if let Some(stem) = lower.strip_suffix("-only") {
        (stem, false)
    } else if let Some(stem) = lower.strip_suffix('+') {
        (stem, true)
    } else {
        (lower.as_str(), false)
    };
    let gnu = |id: &str| Some(format!("{id}-{}", if later { "or-later" } else { "only" }));
    let other = |id: &str| Some(if later { format!("{id}+") } else { id.to_string() });
    let (family, version) = split_version(stem);
    match (family, version.as_deref()) {
        ("gpl", None | Some("1")) => gnu("GPL-1.0"),
        ("gpl", Some("2")) => gnu("GPL-2.0"),
        ("gpl", Some("3")) => gnu("GPL-3.0"),
        ("lgpl", None | Some("2")) => gnu("LGPL-2.0"),
        ("lgpl", Some("2.1")) => gnu("LGPL-2.1"),
        ("lgpl", Some("3")) => gnu("LGPL-3.0"),
        ("agpl", Some("3")) => gnu("AGPL-3.0"),
        ("gfdl", Some(version @ ("1.1" | "1.2" | "1.3"))) => gnu(&format!("GFDL-{version}")),
        ("apache", None | Some("1")) => other("Apache-1.0"),
        ("apache", Some("1.1")) => other("Apache-1.1"),
        ("apache", Some("2")) => other("Apache-2.0"),
        // Debian's `Artistic` is the text in /usr/share/common-licenses/Artistic, which Perl
        // ships (its clause 7 is about C subroutines): SPDX lists that text as Artistic-1.0-Perl,
        // and its Artistic-1.0 as a different one. The format itself says to write Perl's
        // licence as `GPL-1+ or Artistic-1`.
        ("artistic", None | Some("1")) => other("Artistic-1.0-Perl"),
        ("artistic", Some("2")) => other("Artistic-2.0"),
        ("mpl", Some("1")) => other("MPL-1.0"),
        ("mpl", None | Some("1.1")) => other("MPL-1.1"),
        ("mpl", Some("2")) => other("MPL-2.0"),
        ("cc0", None | Some("1")) => other("CC0-1.0"),
        ("psf", Some("2")) => other("PSF-2.0"),
        ("expat" | "mit", None) => other("MIT"),
        ("x11", None) => other("X11"),
        ("zlib", None) => other("Zlib"),
        ("isc", None) => other("ISC"),
        ("bsd-2-clause", None) => other("BSD-2-Clause"),
        ("bsd-3-clause", None) => other("BSD-3-Clause"),
        ("bsd-4-clause", None) => other("BSD-4-Clause"),
        _ => None,
    }
}

/// `gpl-2.0` -> (`gpl`, `2`): the family, and the version with its trailing `.0`s dropped.
fn split_version(stem: &str) -> (&str, Option<String>) {
    let Some((family, version)) = stem.rsplit_once('-') else { return (stem, None) };
    if !version.starts_with(|c: char| c.is_ascii_digit()) || !version.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return (stem, None);
    }
    let mut version = version.trim_end_matches('.');
    while let Some(shorter) = version.strip_suffix(".0") {
        version = shorter;
    }
    (family, Some(version.to_string()))
}

/// The SPDX exception id for the `X` of `with X exception`, if the text Debian means by `X` is
/// the one SPDX lists. The format defines only `Font` and `OpenSSL`; the others are the names
/// Debian files use for one text. Not here on purpose: `OpenSSL` (SPDX has only exceptions of
/// particular projects, each a different text) and `Autoconf` (Debian files use it for the
/// generic "file that is part of a program with a configure script" text, not the configure
/// script exceptions that SPDX calls Autoconf-exception-2.0 and -3.0). Such terms become
/// LicenseRefs with their text.
fn spdx_exception(name: &str, licence: &str) -> Option<&'static str> {
    match name.to_ascii_lowercase().as_str() {
        "font" => Some("Font-exception-2.0"),
        "gcc-runtime-3.1" | "gcc-3.1" => Some("GCC-exception-3.1"),
        "libtool" => Some("Libtool-exception"),
        "linux-syscall-note" => Some("Linux-syscall-note"),
        "llvm" => Some("LLVM-exception"),
        "classpath" => Some("Classpath-exception-2.0"),
        "bison-2.2" => Some("Bison-exception-2.2"),
        // Bison's parser skeletons took the 2.2 exception before GPL 3; with GPL 2 the older
        // 1.24 text is as likely, so only a GPL 3 term is certain.
        "bison" if licence.starts_with("GPL-3.0") => Some("Bison-exception-2.2"),
        _ => None,
    }
}

/// `text` in SPDX's idstring alphabet (letters, digits, `.` and `-`): every other character
/// becomes `-`. Different texts can give the same idstring; callers that need unique ids make
/// them so.
pub fn idstring(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_alphanumeric() || c == '.' || c == '-' { c } else { '-' }).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n";

    fn expression(text: &str) -> String {
        declared_license(text).expect("a machine-readable file").expression
    }

    /// The expression with every LicenseRef's digest replaced by `#`, for readable assertions.
    fn shape(declared: &Declared) -> String {
        let mut shape = declared.expression.clone();
        for extracted in &declared.extracted {
            let short = &extracted.id[..extracted.id.len() - 9];
            shape = shape.replace(&extracted.id, &format!("{short}-#"));
        }
        shape
    }

    #[test]
    fn jq_maps_expat_and_gpl_and_keeps_cc_by_text() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: jq
Source: <https://github.com/stedolan/jq>

Files: *
Copyright: 2012 Stephen Dolan <mu@netsoc.tcd.ie>
License: MIT
 Permission is hereby granted, free of charge, to any person obtaining a
 copy of this software and associated documentation files (the \"Software\"),
 .
 THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND.

Files: docs/*
Copyright: 2012 Stephen Dolan <mu@netsoc.tcd.ie>
License: CC-BY-3.0
 THE WORK (AS DEFINED BELOW) IS PROVIDED UNDER THE TERMS OF THIS CREATIVE
 COMMONS PUBLIC LICENSE (\"CCPL\" OR \"LICENSE\").
 .
 1. Definitions

Files: src/jv_dtoa.c
Copyright: 1991, 2000, 2001 by Lucent Technologies
License: Expat
 The author of this software is David M. Gay.


Files: debian/*
Copyright: 2012 Simon Elsbrock <simon@iodev.org>
License: GPL-2.0+
 This package is free software; you can redistribute it and/or modify
";
        let declared = declared_license(text).unwrap();
        assert_eq!(shape(&declared), "GPL-2.0-or-later AND LicenseRef-CC-BY-3.0-# AND MIT");
        assert_eq!(declared.extracted.len(), 1);
        let cc = &declared.extracted[0];
        assert_eq!(cc.name, "CC-BY-3.0");
        assert!(cc.id.starts_with("LicenseRef-CC-BY-3.0-"));
        assert_eq!(
            cc.text,
            "THE WORK (AS DEFINED BELOW) IS PROVIDED UNDER THE TERMS OF THIS CREATIVE\n\
             COMMONS PUBLIC LICENSE (\"CCPL\" OR \"LICENSE\").\n\n1. Definitions"
        );
    }

    #[test]
    fn zlib_with_a_stand_alone_stanza_and_http_format_without_slash() {
        let text = "Format: http://www.debian.org/doc/packaging-manuals/copyright-format/1.0
Upstream-Name: zlib
Files-Excluded:
 doc/rfc1952.txt
 win32

Files: *
Copyright: 1995-2013 Jean-loup Gailly and Mark Adler
License: Zlib

Files: debian/*
Copyright: 2000-2017 Mark Brown
License: zlib

License: Zlib
 This software is provided 'as-is', without any express or implied
 warranty.
";
        assert_eq!(declared_license(text), Some(Declared { expression: "Zlib".to_string(), extracted: vec![] }));
        assert_eq!(
            declared_license(&format!("\u{feff}{text}")),
            declared_license(text),
            "a byte order mark is no matter"
        );
    }

    #[test]
    fn perl_comma_and_binds_loosest() {
        let text = format!(
            "{HEADER}
Files: *
Copyright: 1993-2022 Larry Wall and others
License: GPL-1+ or Artistic

Files:
 regcomp.c
 regexec.c
Copyright:
 Copyright (c) 1986 by University of Toronto.
License: REGCOMP, and GPL-1+ or Artistic
Comment:
 The \"alterations to Henry's code\" have the following license information:

Files: time64.c
Copyright: 2007-2010 Michael G Schwern
License: Expat

Files: perly.h
Copyright: 1984-2020 Free Software Foundation, Inc.
License: GPL-3+-WITH-BISON-EXCEPTION

License: REGCOMP
  Permission is granted to anyone to use this software for any
  purpose on any computer system.
"
        );
        let declared = declared_license(&text).unwrap();
        assert_eq!(
            shape(&declared),
            "(Artistic-1.0-Perl OR GPL-1.0-or-later) AND LicenseRef-GPL-3--WITH-BISON-EXCEPTION-# \
             AND LicenseRef-REGCOMP-# AND MIT"
        );
        let regcomp = declared.extracted.iter().find(|e| e.name == "REGCOMP").unwrap();
        // One leading space is the field syntax; the second is the file's own indentation.
        assert_eq!(
            regcomp.text,
            " Permission is granted to anyone to use this software for any\n purpose on any computer system."
        );
        let bison = declared.extracted.iter().find(|e| e.name == "GPL-3+-WITH-BISON-EXCEPTION").unwrap();
        assert!(bison.text.contains("which gives no text for it"), "{}", bison.text);
    }

    #[test]
    fn and_binds_tighter_than_or_without_a_comma() {
        let text = format!("{HEADER}\nFiles: *\nCopyright: x\nLicense: GPL-2+ or BSD-3-clause and ISC\n");
        assert_eq!(expression(&text), "(BSD-3-Clause AND ISC) OR GPL-2.0-or-later");
        let text = format!("{HEADER}\nFiles: *\nCopyright: x\nLicense: GPL-2+ or Artistic-2.0, and BSD-3-clause\n");
        assert_eq!(expression(&text), "(Artistic-2.0 OR GPL-2.0-or-later) AND BSD-3-Clause");
        let text = format!("{HEADER}\nFiles: *\nCopyright: x\nLicense: MIT and ISC, or Zlib\n");
        assert_eq!(expression(&text), "(ISC AND MIT) OR Zlib");
    }

    #[test]
    fn or_expressions_are_sorted_so_equal_ones_merge() {
        let text = format!(
            "{HEADER}\nFiles: *\nCopyright: x\nLicense: GPL-2+ or LGPL-3+\n\n\
             Files: lib/*\nCopyright: y\nLicense: LGPL-3.0+ OR gpl-2.0+\n\n\
             Files: debian/*\nCopyright: z\nLicense: GPL-2+\n"
        );
        assert_eq!(expression(&text), "(GPL-2.0-or-later OR LGPL-3.0-or-later) AND GPL-2.0-or-later");
    }

    #[test]
    fn short_names_map_to_spdx_ids() {
        let cases = [
            ("GPL", "GPL-1.0-only"),
            ("GPL-2", "GPL-2.0-only"),
            ("GPL-2.0.0+", "GPL-2.0-or-later"),
            ("GPL-3.0-or-later", "GPL-3.0-or-later"),
            ("LGPL-2", "LGPL-2.0-only"),
            ("LGPL-2.1+", "LGPL-2.1-or-later"),
            ("LGPL-3", "LGPL-3.0-only"),
            ("AGPL-3+", "AGPL-3.0-or-later"),
            ("GFDL-1.2+", "GFDL-1.2-or-later"),
            ("GFDL-1.3", "GFDL-1.3-only"),
            ("Apache-2.0", "Apache-2.0"),
            ("Artistic", "Artistic-1.0-Perl"),
            ("Artistic-2.0", "Artistic-2.0"),
            ("MPL-2.0", "MPL-2.0"),
            ("MPL-1.1+", "MPL-1.1+"),
            ("Expat", "MIT"),
            ("BSD-3-Clause", "BSD-3-Clause"),
            ("bsd-2-clause", "BSD-2-Clause"),
            ("ZLIB", "Zlib"),
            ("CC0-1.0", "CC0-1.0"),
            ("PSF-2", "PSF-2.0"),
            ("X11", "X11"),
        ];
        for (debian, spdx) in cases {
            assert_eq!(spdx_licence(debian).as_deref(), Some(spdx), "{debian}");
        }
        for unknown in ["GFDL", "GPL-4", "BSD-3", "public-domain", "LGPL-2.1+~OpenSSL", "Apache-3"] {
            assert_eq!(spdx_licence(unknown), None, "{unknown}");
        }
    }

    #[test]
    fn exceptions_on_spdx_list_use_with_others_become_licence_refs() {
        let text = format!(
            "{HEADER}\nFiles: *\nCopyright: x\nLicense: GPL-3+ with GCC-Runtime-3.1 exception\n\n\
             Files: fonts/*\nCopyright: y\nLicense: GPL-2+ with Font exception\n\n\
             Files: src/ssl.c\nCopyright: z\nLicense: GPL-2+ with OpenSSL exception\n\n\
             Files: m4/*\nCopyright: w\nLicense: GPL-2+ with Autoconf exception\n \
             As a special exception to the GNU General Public License, if you distribute this file\n\n\
             License: GPL-2+ with OpenSSL exception\n In addition, as a special exception, the copyright holders give\n"
        );
        let declared = declared_license(&text).unwrap();
        assert_eq!(
            shape(&declared),
            "GPL-2.0-or-later WITH Font-exception-2.0 AND GPL-3.0-or-later WITH GCC-exception-3.1 \
             AND LicenseRef-GPL-2--with-Autoconf-exception-# AND LicenseRef-GPL-2--with-OpenSSL-exception-#"
        );
        let texts: Vec<&str> = declared.extracted.iter().map(|e| e.text.as_str()).collect();
        assert!(
            texts.contains(&"As a special exception to the GNU General Public License, if you distribute this file")
        );
        assert!(texts.contains(&"In addition, as a special exception, the copyright holders give"));
    }

    #[test]
    fn unknown_licence_takes_its_stand_alone_stanza_text() {
        let text = format!(
            "{HEADER}Upstream-Name: tzdata\n\nFiles: *\nCopyright: none\nLicense: public-domain\n\n\
             Files: debian/*\nCopyright: 2020 A. Maintainer\nLicense: GPL-2+\n\n\
             License: public-domain\n This file is in the public domain, so clarified as of\n 2009-05-17 by Arthur David Olson.\n"
        );
        let declared = declared_license(&text).unwrap();
        assert_eq!(shape(&declared), "GPL-2.0-or-later AND LicenseRef-public-domain-#");
        let extracted = &declared.extracted[0];
        assert_eq!(extracted.name, "public-domain");
        assert_eq!(
            extracted.text,
            "This file is in the public domain, so clarified as of\n2009-05-17 by Arthur David Olson."
        );
        let suffix = &extracted.id["LicenseRef-public-domain-".len()..];
        assert!(suffix.len() == 8 && suffix.bytes().all(|b| b.is_ascii_hexdigit()), "{}", extracted.id);
    }

    #[test]
    fn same_name_with_another_text_is_another_licence_ref() {
        let one = format!("{HEADER}\nFiles: *\nCopyright: x\nLicense: permissive\n Do what you like.\n");
        let two = format!(
            "{HEADER}\nFiles: *\nCopyright: x\nLicense: permissive\n Do what you like, but keep this notice.\n"
        );
        let (one, two) = (declared_license(&one).unwrap(), declared_license(&two).unwrap());
        assert_ne!(one.extracted[0].id, two.extracted[0].id);
        assert_eq!(
            declared_license(&format!("{HEADER}\nFiles: *\nCopyright: x\nLicense: permissive\n Do what you like.\n")),
            Some(one)
        );
    }

    #[test]
    fn names_that_look_alike_as_idstrings_do_not_collide() {
        let text = format!(
            "{HEADER}\nFiles: a\nCopyright: x\nLicense: Foo+Bar\n\nFiles: b\nCopyright: x\nLicense: Foo_Bar\n\n\
             License: Foo+Bar\n One text.\n\nLicense: Foo_Bar\n Another text.\n"
        );
        let declared = declared_license(&text).unwrap();
        assert_eq!(declared.extracted.len(), 2);
        assert_ne!(declared.extracted[0].id, declared.extracted[1].id);
        assert!(declared.extracted.iter().all(|e| e.id.starts_with("LicenseRef-Foo-Bar-")));
    }

    #[test]
    fn header_licence_counts_too() {
        let text = "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\nLicense: ISC\n\n\
                    Files: *\nCopyright: x\nLicense: MIT\n";
        assert_eq!(expression(text), "ISC AND MIT");
    }

    #[test]
    fn glibc_free_form_file_is_not_machine_readable() {
        let text = "This is the Debian prepackaged version of the GNU C Library version 2.36.\n\n\
                    It was put together by the GNU Libc Maintainers <debian-glibc@lists.debian.org>\n\
                    from <https://ftp.gnu.org/gnu/glibc/>.\n\n\
                    * Most of the GNU C library is under the following copyright:\n\n\
                    License: LGPL-2.1+\n";
        assert_eq!(declared_license(text), None);
    }

    #[test]
    fn drafts_and_formats_in_later_stanzas_are_not_1_0() {
        let dep5 = "Format: http://dep.debian.net/deps/dep5\n\nFiles: *\nCopyright: x\nLicense: MIT\n";
        assert_eq!(declared_license(dep5), None);
        let late = "Upstream-Name: x\n\nFormat: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/\n\
                    Files: *\nCopyright: x\nLicense: MIT\n";
        assert_eq!(declared_license(late), None);
        assert!(is_format_1_0("https://www.debian.org/doc/packaging-manuals/copyright-format/1.0"));
        assert!(!is_format_1_0("https://www.debian.org/doc/packaging-manuals/copyright-format/1.01/"));
    }

    #[test]
    fn malformed_input_gives_none_or_what_can_be_read() {
        assert_eq!(declared_license(""), None);
        assert_eq!(declared_license("\n\n \n"), None);
        assert_eq!(declared_license(HEADER), None, "no licence at all");
        let empty = format!("{HEADER}\nFiles: *\nLicense:\n text but no name\n\nFiles: x\nLicense: , and or ,\n");
        assert_eq!(declared_license(&empty), None);
        let messy = format!(
            "{HEADER}\n continuation with no field\nnot a field\n  more\n# a comment\nFiles: *\r\nLicense: MIT,\r\n\r\n\
             Files: x\nLicense: BSD (3 clause)\n"
        );
        let declared = declared_license(&messy).unwrap();
        assert_eq!(shape(&declared), "LicenseRef-BSD--3-clause--# AND MIT");
        for garbage in ["Format:", "Format: https://", ":\n:\n", "License: with exception", "Format: ü\n é\n\t."] {
            let _ = declared_license(garbage);
            let _ = declared_license(&format!("{HEADER}\nFiles: *\nLicense: {garbage}\n"));
        }
    }
}
