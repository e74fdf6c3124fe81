//! The packages apt's `Packages` indexes offer for one architecture: each stanza's name,
//! version, file and checksum, and the relationships the resolver follows. Several indexes
//! (suites, mirrors, security updates) add up into one [`Index`]; what it answers depends only on
//! their content, never on the host.

use std::cell::OnceCell;
use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::BufRead;
use std::sync::Arc;

use super::Malformed;
use super::snapshot::Snapshot;
use super::version::{self, Op, Relation};

/// One binary package as a `Packages` stanza describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Package {
    pub name: String,
    pub version: String,
    /// The native architecture or `all`.
    pub architecture: String,
    /// Path of the `.deb` below the mirror's root.
    pub filename: String,
    /// SHA-256 of the `.deb`: 64 lower-case hexadecimal digits.
    pub sha256: String,
    /// Size of the `.deb` in bytes.
    pub size: u64,
    /// The source package's name: the `Source` field's, else the package's own.
    pub source: String,
    /// The source package's version: from `Source: name (version)`, else the package's own.
    pub source_version: String,
    pub depends: Vec<Vec<Relation>>,
    pub pre_depends: Vec<Vec<Relation>>,
    pub recommends: Vec<Vec<Relation>>,
    /// Virtual packages this one provides, each unversioned or with an `=` version.
    pub provides: Vec<Relation>,
    /// `Essential: yes`.
    pub essential: bool,
    /// `Important: yes` (apt prefers such a provider, after Essential ones).
    pub important: bool,
    /// The `Priority` field: how much a system needs the package.
    pub importance: Importance,
    /// `Multi-Arch`, as written (`same`, `foreign`, `allowed`).
    pub multi_arch: Option<String>,
    /// apt's priority for the list it came from (see [`Priority`]); the candidate is the highest
    /// version of the highest priority.
    pub priority: i32,
    /// The archive the list belongs to and its Release file's date, when known: where a
    /// snapshot archive keeps the package.
    pub snapshot: Option<Snapshot>,
}

/// apt's default priorities for a package list, from its Release file: 500 for an ordinary
/// suite, 100 for one marked `NotAutomatic` and `ButAutomaticUpgrades` (backports), 1 for one
/// marked `NotAutomatic` alone (experimental). bake reads no `preferences.d` pinning.
pub struct Priority;

impl Priority {
    pub const DEFAULT: i32 = 500;

    /// The priority a Release (or InRelease) file's fields give its lists.
    pub fn of_release(text: &str) -> i32 {
        let yes = |field: &str| {
            text.lines().any(|l| {
                l.split_once(':')
                    .is_some_and(|(n, v)| n.eq_ignore_ascii_case(field) && v.trim().eq_ignore_ascii_case("yes"))
            })
        };
        match (yes("NotAutomatic"), yes("ButAutomaticUpgrades")) {
            (true, true) => 100,
            (true, false) => 1,
            _ => Priority::DEFAULT,
        }
    }
}

/// The packages of one or more `Packages` files for one native architecture.
#[derive(Debug, Clone)]
pub struct Index {
    arch: String,
    /// Every kept version of each package name, highest first.
    packages: BTreeMap<String, Vec<Package>>,
    /// Virtual name -> names of the packages some version of which provides it.
    provided: BTreeMap<String, BTreeSet<String>>,
    len: usize,
    /// The snapshot of the list being added.
    adding: Option<Snapshot>,
    /// For an index made by [`Index::skimming`]: the packages no resolution from its roots can
    /// reach, left unparsed, each parsed from its lists when first asked for.
    deferred: BTreeMap<String, Deferred>,
    /// The lists a skimmed index was read from, to read a deferred package from.
    lists: Option<Arc<Lists>>,
}

/// A package left unparsed: which lists have stanzas of it, and its versions once parsed.
#[derive(Debug, Clone)]
struct Deferred {
    lists: Vec<usize>,
    parsed: OnceCell<Vec<Package>>,
}

/// One package list to read: how to open it (again), what to call it in messages, apt's
/// priority for it and its snapshot.
pub struct List {
    pub origin: String,
    pub priority: i32,
    pub snapshot: Option<Snapshot>,
    pub open: Box<dyn Fn() -> Result<Box<dyn BufRead>, String> + Send + Sync>,
}

/// The lists of a skimmed index.
struct Lists(Vec<List>);

impl std::fmt::Debug for Lists {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.iter().map(|l| &l.origin)).finish()
    }
}

/// What a skim keeps of the lists: every package name, which lists have it, the names its
/// relationships name, and who provides what.
#[derive(Default)]
struct Skim {
    ids: HashMap<String, usize>,
    names: Vec<String>,
    /// Per name: the lists with a stanza of it.
    lists: Vec<Vec<usize>>,
    /// Per name: every name its stanzas' Depends, Pre-Depends and Recommends name.
    edges: Vec<Vec<usize>>,
    /// Per name: the names that provide it.
    providers: Vec<Vec<usize>>,
    /// Names some stanza of which is Essential or of Priority required or important.
    base: Vec<usize>,
}

impl Skim {
    fn id(&mut self, name: &str) -> usize {
        if let Some(&id) = self.ids.get(name) {
            return id;
        }
        let id = self.names.len();
        self.ids.insert(name.to_string(), id);
        self.names.push(name.to_string());
        self.lists.push(Vec::new());
        self.edges.push(Vec::new());
        self.providers.push(Vec::new());
        id
    }

    /// Every name a resolution from `roots` (and the base names) can look at.
    fn closure(&self, roots: &[String]) -> Vec<bool> {
        let mut reached = vec![false; self.names.len()];
        let mut queue: Vec<usize> = roots.iter().filter_map(|r| self.ids.get(r.as_str()).copied()).collect();
        queue.extend(&self.base);
        while let Some(id) = queue.pop() {
            if std::mem::replace(&mut reached[id], true) {
                continue;
            }
            queue.extend(self.edges[id].iter().chain(&self.providers[id]).filter(|&&n| !reached[n]));
        }
        reached
    }
}

/// The package names a relationship field names (`a (>= 1) | b:any, c`: `a`, `b`, `c`), as
/// [`version::parse_relations`] reads them.
fn relation_names(field: &str) -> impl Iterator<Item = &str> {
    field.split([',', '|']).filter_map(|alternative| {
        let text = alternative.trim_start();
        let end = text.find(|c: char| c.is_whitespace() || "([<".contains(c)).unwrap_or(text.len());
        let name = text[..end].split(':').next().unwrap_or("");
        (!name.is_empty()).then_some(name)
    })
}

impl Index {
    /// An empty index for the native architecture `arch` (`amd64`, `arm64`, ...).
    pub fn new(arch: &str) -> Index {
        Index {
            arch: arch.to_string(),
            packages: BTreeMap::new(),
            provided: BTreeMap::new(),
            len: 0,
            adding: None,
            deferred: BTreeMap::new(),
            lists: None,
        }
    }

    /// Reads `lists` in two passes that never hold a whole list: a skim that keeps only each
    /// package's name and the names it depends on, recommends and provides, then a parse of
    /// the packages a resolution starting from `roots` could reach (their dependencies and
    /// recommendations, providers of the virtual names among them, and every Essential,
    /// required or important package). Every other package is parsed from its lists when
    /// first asked for, so the index answers exactly as one made by [`Index::add_list`] from
    /// every list. Returns the index and the malformed stanzas skipped (as `add_list` does).
    pub fn skimming(arch: &str, lists: Vec<List>, roots: &[String]) -> Result<(Index, Vec<String>), String> {
        let mut skim = Skim::default();
        for (number, list) in lists.iter().enumerate() {
            skim_list(&mut skim, arch, number, &mut *(list.open)()?).map_err(|e| format!("{}: {e}", list.origin))?;
        }
        let reached = skim.closure(roots);
        let mut index = Index::new(arch);
        let mut skipped = Vec::new();
        for list in &lists {
            let want = |name: &str| skim.ids.get(name).is_none_or(|&id| reached[id]);
            index.adding = list.snapshot.clone();
            let mut reader = (list.open)()?;
            let outcome = read_stanzas(&mut *reader, &list.origin, &want, &mut |stanza| {
                match index.package(stanza, &list.origin, list.priority) {
                    // A deferred package's stanza that did not start with its name: all of
                    // its versions are parsed together, when asked for.
                    Ok(Some(package)) if want(&package.name) => index.insert(package),
                    Ok(_) => {}
                    Err(e) => skipped.push(e.0),
                }
                Ok(())
            });
            if let Err(e) = outcome {
                skipped.push(format!("{e}; the rest of the list is skipped"));
            }
            index.adding = None;
        }
        for (id, name) in skim.names.iter().enumerate() {
            // A name without stanzas of its own (a virtual one, or one nothing offers) is no
            // package to defer.
            if !reached[id] && !skim.lists[id].is_empty() {
                let deferred = Deferred { lists: skim.lists[id].clone(), parsed: OnceCell::new() };
                index.deferred.insert(name.clone(), deferred);
            }
            for &provider in &skim.providers[id] {
                index.provided.entry(name.clone()).or_default().insert(skim.names[provider].clone());
            }
        }
        index.lists = Some(Arc::new(Lists(lists)));
        Ok((index, skipped))
    }

    /// The versions of a deferred package, parsed from its lists now (a list that can no
    /// longer be read, or a malformed stanza, gives none).
    fn parse_deferred(&self, name: &str, deferred: &Deferred) -> Vec<Package> {
        let mut versions = Vec::new();
        let Some(lists) = &self.lists else { return versions };
        for &number in &deferred.lists {
            let list = &lists.0[number];
            let Ok(mut reader) = (list.open)() else { continue };
            let reading = Index { adding: list.snapshot.clone(), ..Index::new(&self.arch) };
            let _ = read_stanzas(&mut *reader, &list.origin, &|n: &str| n == name, &mut |stanza| {
                if let Ok(Some(package)) = reading.package(stanza, &list.origin, list.priority)
                    && package.name == name
                {
                    place(&mut versions, package);
                }
                Ok(())
            });
        }
        versions
    }

    /// [`Index::add_list`] for a list whose archive and Release date are known: its packages
    /// carry that [`Snapshot`].
    pub fn add_list_from(
        &mut self,
        text: &str,
        origin: &str,
        priority: i32,
        snapshot: Option<Snapshot>,
    ) -> (usize, Vec<String>) {
        self.adding = snapshot;
        let added = self.add_list(text, origin, priority);
        self.adding = None;
        added
    }

    /// Adds the packages of one `Packages` file, named `origin` in errors, keeping the stanzas
    /// for the native architecture and `all`. A package already known with the same version and
    /// architecture (the same file from another mirror) is kept as first added. Returns how many
    /// stanzas were for the native architecture or `all`, duplicates included; on an error
    /// nothing is added.
    pub fn add(&mut self, text: &str, origin: &str) -> Result<usize, Malformed> {
        let mut parsed = Vec::new();
        for_each_stanza(text, origin, |stanza| {
            if let Some(package) = self.package(stanza, origin, Priority::DEFAULT)? {
                parsed.push(package);
            }
            Ok(())
        })?;
        let kept = parsed.len();
        for package in parsed {
            self.insert(package);
        }
        Ok(kept)
    }

    /// Adds a package list of the host's apt, with the `priority` of its suite. Unlike [`add`],
    /// one bad stanza (a third-party list may have one) does not make the whole host unusable:
    /// it is skipped, and its error returned among the second value, with the number kept first.
    ///
    /// [`add`]: Index::add
    pub fn add_list(&mut self, text: &str, origin: &str, priority: i32) -> (usize, Vec<String>) {
        let mut kept = 0;
        let mut skipped = Vec::new();
        let outcome = for_each_stanza(text, origin, |stanza| {
            match self.package(stanza, origin, priority) {
                Ok(Some(package)) => {
                    self.insert(package);
                    kept += 1;
                }
                Ok(None) => {}
                Err(e) => skipped.push(e.0),
            }
            Ok(())
        });
        if let Err(e) = outcome {
            skipped.push(format!("{e}; the rest of the list is skipped"));
        }
        (kept, skipped)
    }

    fn insert(&mut self, package: Package) {
        let versions = self.packages.entry(package.name.clone()).or_default();
        let provides: Vec<String> = package.provides.iter().map(|r| r.name.clone()).collect();
        let name = package.name.clone();
        if place(versions, package) {
            for provided in provides {
                self.provided.entry(provided).or_default().insert(name.clone());
            }
            self.len += 1;
        }
    }

    /// The native architecture.
    pub fn arch(&self) -> &str {
        &self.arch
    }

    /// Every version of package `name`, in apt's order of preference: highest priority, then
    /// highest version, first.
    pub fn versions(&self, name: &str) -> impl Iterator<Item = &Package> {
        let deferred = || {
            let deferred = self.deferred.get(name)?;
            Some(deferred.parsed.get_or_init(|| self.parse_deferred(name, deferred)))
        };
        self.packages.get(name).or_else(deferred).into_iter().flatten()
    }

    /// The version of `name` to install: the highest of the highest-priority lists, as apt
    /// picks without `preferences.d` pinning.
    pub fn candidate(&self, name: &str) -> Option<&Package> {
        self.versions(name).next()
    }

    /// The package `name` at exactly this version and architecture.
    pub fn find(&self, name: &str, version: &str, architecture: &str) -> Option<&Package> {
        self.versions(name).find(|p| p.version == version && p.architecture == architecture)
    }

    /// The candidates that provide `name`, sorted by name.
    pub fn providers(&self, name: &str) -> Vec<&Package> {
        let names = self.provided.get(name).into_iter().flatten();
        names.filter_map(|p| self.candidate(p)).filter(|p| p.provides.iter().any(|r| r.name == name)).collect()
    }

    /// The names of all real packages, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.packages.keys().chain(self.deferred.keys()).map(String::as_str).collect();
        names.sort_unstable();
        names.into_iter()
    }

    /// The names of the packages parsed already, sorted: every name whose candidate may be
    /// Essential or required is among them (see [`Index::skimming`]).
    pub fn parsed_names(&self) -> impl Iterator<Item = &str> {
        self.packages.keys().map(String::as_str)
    }

    /// How many package versions the index holds.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The package a stanza describes, or `None` when it is for another architecture.
    fn package(&self, stanza: &Stanza, origin: &str, priority: i32) -> Result<Option<Package>, Malformed> {
        let at = format!("{origin}:{}", stanza.line);
        // Another architecture's stanza is skipped before it is checked: it cannot matter here.
        if stanza.get("Architecture").is_some_and(|a| a != self.arch && a != "all") {
            return Ok(None);
        }
        let required = |field: &str| {
            stanza
                .get(field)
                .filter(|v| !v.is_empty())
                .ok_or_else(|| Malformed(format!("{at}: package stanza has no `{field}` field")))
        };
        let name = required("Package")?;
        let version = required("Version")?;
        let architecture = required("Architecture")?;
        let filename = required("Filename")?;
        let sha256 = required("SHA256")?;
        let size = required("Size")?;
        if architecture != self.arch && architecture != "all" {
            return Ok(None);
        }
        let bad = |what: String| Malformed(format!("{at}: package `{name}`: {what}"));
        if !version::is_package_name(name) {
            return Err(Malformed(format!("{at}: `{name}` is not a package name")));
        }
        if version.contains(char::is_whitespace) {
            return Err(bad(format!("`{version}` is not a version")));
        }
        if sha256.len() != 64 || !sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad(format!("`SHA256` `{sha256}` is not 64 hexadecimal digits")));
        }
        let size = size.parse().map_err(|_| bad(format!("`Size` `{size}` is not a number of bytes")))?;
        let (source, source_version) = source(stanza, name, version, &bad)?;
        let relations = |field: &str| match stanza.get(field) {
            Some(text) => version::parse_relations(text).map_err(|e| bad(format!("`{field}`: {e}"))),
            None => Ok(Vec::new()),
        };
        let provides = provides(relations("Provides")?, &bad)?;
        Ok(Some(Package {
            name: name.to_string(),
            version: version.to_string(),
            architecture: architecture.to_string(),
            filename: filename.to_string(),
            sha256: sha256.to_ascii_lowercase(),
            size,
            source: source.to_string(),
            source_version: source_version.to_string(),
            depends: relations("Depends")?,
            pre_depends: relations("Pre-Depends")?,
            recommends: relations("Recommends")?,
            provides,
            essential: stanza.get("Essential").is_some_and(|e| e.eq_ignore_ascii_case("yes")),
            important: stanza.get("Important").is_some_and(|e| e.eq_ignore_ascii_case("yes")),
            importance: Importance::parse(stanza.get("Priority")),
            multi_arch: stanza.get("Multi-Arch").map(str::to_string),
            priority,
            snapshot: self.adding.clone(),
        }))
    }
}

/// A package's `Priority` field (Debian Policy §2.5), most needed first; `Unknown` for a missing
/// or unknown value, which sorts last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Importance {
    Required,
    Important,
    Standard,
    Optional,
    Extra,
    #[default]
    Unknown,
}

impl Importance {
    fn parse(field: Option<&str>) -> Importance {
        match field.map(str::to_ascii_lowercase).as_deref() {
            Some("required") => Importance::Required,
            Some("important") => Importance::Important,
            Some("standard") => Importance::Standard,
            Some("optional") => Importance::Optional,
            Some("extra") => Importance::Extra,
            _ => Importance::Unknown,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Importance::Required => "required",
            Importance::Important => "important",
            Importance::Standard => "standard",
            Importance::Optional => "optional",
            Importance::Extra => "extra",
            Importance::Unknown => "none",
        }
    }
}

/// The source package and its version: `Source: name (version)`, `Source: name` (the binary's
/// version), or none (the binary's name and version); a bad field is refused with `bad`.
fn source<'s>(
    stanza: &'s Stanza,
    name: &'s str,
    version: &'s str,
    bad: &dyn Fn(String) -> Malformed,
) -> Result<(&'s str, &'s str), Malformed> {
    Ok(match stanza.get("Source") {
        None => (name, version),
        Some(field) => match field.split_once('(') {
            None => (field, version),
            Some((source, rest)) => {
                let source_version = rest.strip_suffix(')').map(str::trim);
                let source_version = source_version.filter(|v| !v.is_empty() && !v.contains(char::is_whitespace));
                (source.trim(), source_version.ok_or_else(|| bad(format!("bad `Source` `{field}`")))?)
            }
        },
    })
}

/// The virtual packages a `Provides` field names: one name a group, versioned only with `=`;
/// anything else is refused with `bad`.
fn provides(groups: Vec<Vec<Relation>>, bad: &dyn Fn(String) -> Malformed) -> Result<Vec<Relation>, Malformed> {
    let mut provides = Vec::new();
    for group in groups {
        let [relation] = <[Relation; 1]>::try_from(group).map_err(|_| bad("`Provides` has alternatives".into()))?;
        if relation.constraint.as_ref().is_some_and(|c| c.op != Op::Eq) {
            return Err(bad(format!("`Provides`: `{relation}` has a version other than `=`")));
        }
        provides.push(relation);
    }
    Ok(provides)
}

/// Adds `package` to `versions` (highest priority, then highest version, first), unless a
/// package of the same version and architecture is there (the same file from another mirror:
/// the first added is kept). Returns whether it was added.
fn place(versions: &mut Vec<Package>, package: Package) -> bool {
    let same =
        |p: &Package| p.architecture == package.architecture && version::compare(&p.version, &package.version).is_eq();
    if versions.iter().any(same) {
        return false;
    }
    // apt's order of preference: priority, then version.
    let before = |p: &Package| {
        package.priority.cmp(&p.priority).then_with(|| version::compare(&package.version, &p.version))
            == Ordering::Greater
    };
    let at = versions.iter().position(before).unwrap_or(versions.len());
    versions.insert(at, package);
    true
}

/// Skims one list into `skim`: for each stanza of the native architecture or `all`, its name,
/// the names in its Depends, Pre-Depends, Recommends and Provides, and whether it is part of a
/// base system. Only those fields are kept, one stanza at a time; what is malformed is left to
/// the parse that follows (which reports it) and skipped here.
fn skim_list(skim: &mut Skim, arch: &str, number: usize, reader: &mut dyn BufRead) -> Result<(), String> {
    const KEPT: [&str; 8] =
        ["Package", "Architecture", "Depends", "Pre-Depends", "Recommends", "Provides", "Essential", "Priority"];
    let mut fields: [String; 8] = Default::default();
    let mut current: Option<usize> = None;
    let mut any = false;
    read_lines(reader, &|_, e| e.to_string(), &mut |_, line| {
        match line {
            Line::Blank => {
                if any {
                    skim_stanza(skim, arch, number, &fields);
                    fields.iter_mut().for_each(String::clear);
                    any = false;
                }
                current = None;
            }
            Line::Comment => {}
            Line::Other(_) => current = None,
            Line::Continuation(text) => {
                if let Some(field) = current {
                    fields[field].push(' ');
                    fields[field].push_str(text);
                }
            }
            Line::Field(name, value) => {
                any = true;
                current = KEPT.iter().position(|k| k.eq_ignore_ascii_case(name));
                if let Some(field) = current {
                    fields[field] = value.to_string();
                }
            }
        }
        Ok(())
    })
}

fn skim_stanza(skim: &mut Skim, arch: &str, number: usize, fields: &[String; 8]) {
    let [name, architecture, depends, pre_depends, recommends, provides, essential, priority] = fields;
    if name.is_empty() || (!architecture.is_empty() && architecture != arch && architecture != "all") {
        return;
    }
    let id = skim.id(name);
    if skim.lists[id].last() != Some(&number) {
        skim.lists[id].push(number);
    }
    for field in [depends, pre_depends, recommends] {
        for other in relation_names(field) {
            let other = skim.id(other);
            skim.edges[id].push(other);
        }
    }
    for provided in relation_names(provides) {
        let provided = skim.id(provided);
        skim.providers[provided].push(id);
    }
    let priority = Importance::parse(Some(priority));
    if essential.eq_ignore_ascii_case("yes") || matches!(priority, Importance::Required | Importance::Important) {
        skim.base.push(id);
    }
}

/// One deb822 paragraph: its first line (1-based) and its fields.
struct Stanza {
    line: usize,
    /// (name as written, value); a folded value keeps its line breaks, each line trimmed.
    fields: Vec<(String, String)>,
}

impl Stanza {
    /// The trimmed value of field `name` (field names are case-insensitive).
    fn get(&self, name: &str) -> Option<&str> {
        self.fields.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    }
}

/// Calls `each` with every paragraph of a deb822 file (Policy §5.1): paragraphs separated by
/// blank lines (empty or only spaces and tabs), `Name: value` fields whose value continues on
/// lines starting with a space or tab, `#` lines ignored.
fn for_each_stanza(
    text: &str,
    origin: &str,
    mut each: impl FnMut(&Stanza) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    read_stanzas(&mut text.as_bytes(), origin, &|_| true, &mut each)
}

/// One line of a deb822 file (Policy §5.1), trimmed.
enum Line<'a> {
    /// Empty or only spaces and tabs: the end of a paragraph. The end of the file is one too.
    Blank,
    /// Starts with `#`.
    Comment,
    /// Starts with a space or tab: the field before it goes on.
    Continuation(&'a str),
    /// `Name: value`, the name not empty and without spaces.
    Field(&'a str, &'a str),
    /// Anything else, as written.
    Other(&'a str),
}

/// Calls `each` with every line of `reader` (its 1-based number and what it is) and then a
/// [`Line::Blank`] for the end; a read that fails is turned into the error by `failed`, with
/// its line's number.
fn read_lines<E>(
    reader: &mut dyn BufRead,
    failed: &dyn Fn(usize, std::io::Error) -> E,
    each: &mut dyn FnMut(usize, Line<'_>) -> Result<(), E>,
) -> Result<(), E> {
    let mut buffer = String::new();
    let mut number = 0;
    loop {
        buffer.clear();
        let read = reader.read_line(&mut buffer).map_err(|e| failed(number + 1, e))?;
        if read == 0 {
            return each(number + 1, Line::Blank);
        }
        number += 1;
        let text = buffer.strip_suffix('\n').unwrap_or(&buffer);
        let text = text.strip_suffix('\r').unwrap_or(text);
        let line = if text.starts_with('#') {
            Line::Comment
        } else if text.trim().is_empty() {
            Line::Blank
        } else if text.starts_with([' ', '\t']) {
            Line::Continuation(text.trim())
        } else {
            match text.split_once(':') {
                Some((name, value)) if !name.is_empty() && !name.contains(' ') => Line::Field(name, value.trim()),
                _ => Line::Other(text.trim()),
            }
        };
        each(number, line)?;
    }
}

/// [`for_each_stanza`] over a reader, one paragraph at a time; a paragraph whose first field
/// is `Package` naming a package `want` refuses is skipped unparsed.
fn read_stanzas(
    reader: &mut dyn BufRead,
    origin: &str,
    want: &dyn Fn(&str) -> bool,
    each: &mut dyn FnMut(&Stanza) -> Result<(), Malformed>,
) -> Result<(), Malformed> {
    let mut stanza = Stanza { line: 0, fields: Vec::new() };
    let mut skipping = false;
    let failed = |number: usize, e: std::io::Error| Malformed(format!("{origin}:{number}: cannot read the list: {e}"));
    read_lines(reader, &failed, &mut |number, line| {
        match line {
            Line::Comment => {}
            Line::Blank => {
                skipping = false;
                if !stanza.fields.is_empty() {
                    each(&stanza)?;
                    stanza.fields.clear();
                }
            }
            _ if skipping => {}
            Line::Continuation(text) => {
                let Some((_, value)) = stanza.fields.last_mut() else {
                    return Err(Malformed(format!("{origin}:{number}: continuation line outside a field")));
                };
                value.push('\n');
                value.push_str(text);
            }
            Line::Other(text) => {
                return Err(Malformed(format!("{origin}:{number}: `{text}` is not a `Name: value` field")));
            }
            Line::Field(name, value) => {
                if stanza.fields.is_empty() {
                    stanza.line = number;
                    if name.eq_ignore_ascii_case("Package") && !want(value) {
                        skipping = true;
                        return Ok(());
                    }
                }
                if stanza.fields.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    return Err(Malformed(format!("{origin}:{number}: field `{name}` appears twice in one stanza")));
                }
                stanza.fields.push((name.to_string(), value.to_string()));
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

    /// A minimal stanza with the required fields and `extra` lines.
    fn stanza(name: &str, version: &str, arch: &str, extra: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: {arch}\n{extra}\
             Filename: pool/main/{name}_{version}_{arch}.deb\nSize: 1024\nSHA256: {HEX_A}\n\n"
        )
    }

    fn index(texts: &[&str]) -> Index {
        let mut index = Index::new("amd64");
        for (i, text) in texts.iter().enumerate() {
            index.add(text, &format!("list{i}")).unwrap();
        }
        index
    }

    /// Lists held in memory, as `Index::skimming` reads them.
    fn lists(texts: &[(&str, i32)]) -> Vec<List> {
        texts
            .iter()
            .enumerate()
            .map(|(i, (text, priority))| {
                let text = text.to_string();
                List {
                    origin: format!("list{i}"),
                    priority: *priority,
                    snapshot: None,
                    open: Box::new(move || Ok(Box::new(std::io::Cursor::new(text.clone().into_bytes())))),
                }
            })
            .collect()
    }

    /// A skimmed index parses only what a resolution from its roots can reach, and answers every
    /// question (about those, about deferred packages, about names it lacks) as the whole index
    /// does; resolutions from it are the same.
    #[test]
    fn a_skimmed_index_answers_as_the_whole_one() {
        let main = [
            stanza("app", "1", "amd64", "Depends: libx (>= 1) | liby, vpkg\nRecommends: extra\n"),
            stanza("libx", "1", "amd64", ""),
            stanza("libx", "2", "amd64", "Pre-Depends: libz:any\n"),
            stanza("liby", "1", "amd64", ""),
            stanza("libz", "1", "all", "Description: a library\n continued over\n  lines\n"),
            stanza("provider", "1", "amd64", "Provides: vpkg (= 1)\n"),
            stanza("extra", "1", "amd64", ""),
            stanza("unrelated", "1", "amd64", "Depends: deep\nProvides: vother\n"),
            stanza("deep", "1", "amd64", ""),
            stanza("base", "1", "amd64", "Essential: yes\n"),
            stanza("req", "1", "amd64", "Priority: required\nDepends: reqdep\n"),
            stanza("reqdep", "1", "amd64", ""),
            stanza("foreign", "1", "i386", ""),
        ]
        .concat();
        let updates = [stanza("libx", "3", "amd64", ""), stanza("unrelated", "2", "amd64", "")].concat();
        let backports = stanza("deep", "9", "amd64", "");
        let texts = [(main.as_str(), 500), (updates.as_str(), 500), (backports.as_str(), 100)];
        let mut whole = Index::new("amd64");
        for (i, (text, priority)) in texts.iter().enumerate() {
            whole.add_list(text, &format!("list{i}"), *priority);
        }
        let (skimmed, skipped) = Index::skimming("amd64", lists(&texts), &["app".to_string()]).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        let deferred: Vec<&str> = skimmed.deferred.keys().map(String::as_str).collect();
        assert_eq!(deferred, ["deep", "unrelated"], "only what `app` cannot reach is left unparsed");
        for name in
            ["app", "libx", "liby", "libz", "vpkg", "vother", "extra", "unrelated", "deep", "base", "req", "reqdep"]
                .into_iter()
                .chain(["foreign", "missing"])
        {
            let all = |index: &Index| index.versions(name).cloned().collect::<Vec<_>>();
            assert_eq!(all(&whole), all(&skimmed), "versions of {name}");
            assert_eq!(whole.providers(name), skimmed.providers(name), "providers of {name}");
            assert_eq!(whole.find(name, "1", "amd64"), skimmed.find(name, "1", "amd64"));
        }
        assert_eq!(whole.names().collect::<Vec<_>>(), skimmed.names().collect::<Vec<_>>());
        for roots in [&["app"][..], &["unrelated"], &["vother"], &["missing"]] {
            let packages: Vec<String> = roots.iter().map(|r| r.to_string()).collect();
            for variant in [None, Some(super::super::resolve::Variant::Minbase)] {
                let request =
                    super::super::resolve::Request { packages: &packages, exclude: &[], recommends: true, variant };
                let resolve = |index: &Index| super::super::resolve::resolve(index, &request);
                assert_eq!(resolve(&whole), resolve(&skimmed), "{roots:?} {variant:?}");
            }
        }
    }

    #[test]
    fn backports_and_experimental_lose_to_the_suite_whatever_their_version() {
        let backports = "Origin: Debian Backports\nNotAutomatic: yes\nButAutomaticUpgrades: yes\nSHA256:\n x 1 y\n";
        let experimental =
            "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nSuite: experimental\nNotAutomatic: yes\n";
        assert_eq!(Priority::of_release(backports), 100);
        assert_eq!(Priority::of_release(experimental), 1);
        assert_eq!(Priority::of_release("Suite: stable\nNotAutomatic: no\n"), Priority::DEFAULT);
        let mut index = Index::new("amd64");
        index.add_list(&stanza("curl", "8.14.1-2~bpo12+1", "amd64", ""), "backports", 100);
        index.add_list(&stanza("curl", "9.0-1", "amd64", ""), "experimental", 1);
        index.add_list(&stanza("curl", "7.88.1-10+deb12u5", "amd64", ""), "bookworm", Priority::DEFAULT);
        assert_eq!(index.candidate("curl").unwrap().version, "7.88.1-10+deb12u5");
        let order: Vec<&str> = index.versions("curl").map(|p| p.version.as_str()).collect();
        assert_eq!(order, ["7.88.1-10+deb12u5", "8.14.1-2~bpo12+1", "9.0-1"]);
        // Only backports offers it: then it is the candidate.
        index.add_list(&stanza("only-bpo", "2.0", "amd64", ""), "backports", 100);
        assert_eq!(index.candidate("only-bpo").unwrap().version, "2.0");
    }

    #[test]
    fn a_bad_stanza_in_a_host_list_is_skipped_not_fatal() {
        let mut index = Index::new("amd64");
        let text = format!(
            "{}Package: broken\nVersion: 1\nArchitecture: amd64\n\n{}Package: foreign\nArchitecture: arm64\n\n",
            stanza("good", "1", "amd64", ""),
            stanza("also-good", "1", "all", "")
        );
        let (kept, skipped) = index.add_list(&text, "third-party", Priority::DEFAULT);
        assert_eq!(kept, 2);
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert!(skipped[0].contains("third-party:") && skipped[0].contains("`Filename`"), "{skipped:?}");
        assert!(index.candidate("good").is_some() && index.candidate("also-good").is_some());
        // The strict reader (fixtures, fuzzing) refuses the same text.
        assert!(Index::new("amd64").add(&text, "x").is_err());
    }

    #[test]
    fn stanzas_are_read_with_folded_fields_comments_and_any_field_case() {
        let text = "# a comment line\n\
                    package: libjq1\n\
                    Source: jq (1.6-2.1)\n\
                    version: 1.6-2.1+b1\n\
                    ARCHITECTURE: amd64\n\
                    Multi-Arch: same\n\
                    Depends: libc6 (>= 2.34),\n libonig5\n\t(>= 6.1.0)\n\
                    Description: lightweight and flexible command-line JSON processor\n \
                    jq is like sed for JSON data.\n .\n more text\n\
                    Filename: pool/main/j/jq/libjq1_1.6-2.1+b1_amd64.deb\n\
                    Size: 135168\n\
                    SHA256: 0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef\n";
        let index = index(&[text]);
        let p = index.candidate("libjq1").unwrap();
        assert_eq!((p.version.as_str(), p.source.as_str(), p.source_version.as_str()), ("1.6-2.1+b1", "jq", "1.6-2.1"));
        assert_eq!(p.sha256, "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        assert_eq!(p.size, 135168);
        assert_eq!(p.multi_arch.as_deref(), Some("same"));
        let deps: Vec<String> = p.depends.iter().map(|g| g[0].to_string()).collect();
        assert_eq!(deps, ["libc6 (>= 2.34)", "libonig5 (>= 6.1.0)"]);
    }

    #[test]
    fn a_package_without_source_is_its_own_source() {
        let index = index(&[&stanza("mawk", "1.3.4-3", "amd64", "Essential: yes\nProvides: awk\n")]);
        let p = index.candidate("mawk").unwrap();
        assert_eq!((p.source.as_str(), p.source_version.as_str()), ("mawk", "1.3.4-3"));
        assert!(p.essential);
        assert_eq!(p.provides[0].name, "awk");
        let index = self::index(&[&stanza("libgcc-s1", "12.2.0-14", "amd64", "Source: gcc-12\n")]);
        let p = index.candidate("libgcc-s1").unwrap();
        assert_eq!((p.source.as_str(), p.source_version.as_str()), ("gcc-12", "12.2.0-14"));
    }

    #[test]
    fn only_native_and_all_stanzas_are_kept() {
        let text = [
            stanza("libc6", "2.36-9", "amd64", ""),
            stanza("libc6", "2.36-9", "i386", ""),
            stanza("tzdata", "2024a-0", "all", ""),
        ]
        .concat();
        let mut index = Index::new("amd64");
        assert_eq!(index.add(&text, "main").unwrap(), 2);
        assert_eq!(index.len(), 2);
        assert!(index.find("libc6", "2.36-9", "i386").is_none());
        assert!(index.find("libc6", "2.36-9", "amd64").is_some());
        assert_eq!(index.names().collect::<Vec<_>>(), ["libc6", "tzdata"]);
        let mut i386 = Index::new("i386");
        assert_eq!(i386.add(&text, "main").unwrap(), 2);
        assert_eq!(i386.candidate("libc6").unwrap().architecture, "i386");
    }

    #[test]
    fn the_candidate_is_the_highest_version_whatever_the_order_added() {
        let old = stanza("libc6", "2.36-9+deb12u4", "amd64", "");
        let new = stanza("libc6", "2.36-9+deb12u10", "amd64", "");
        for texts in [[&old, &new], [&new, &old]] {
            let index = index(&[texts[0], texts[1]]);
            assert_eq!(index.candidate("libc6").unwrap().version, "2.36-9+deb12u10");
            let all: Vec<&str> = index.versions("libc6").map(|p| p.version.as_str()).collect();
            assert_eq!(all, ["2.36-9+deb12u10", "2.36-9+deb12u4"]);
        }
    }

    #[test]
    fn the_same_package_from_two_mirrors_is_kept_once_first_wins() {
        let first = stanza("jq", "1.6-2.1", "amd64", "");
        let second = first.replace("pool/main", "pool/mirror");
        let mut index = Index::new("amd64");
        assert_eq!(index.add(&first, "a").unwrap(), 1);
        assert_eq!(index.add(&second, "b").unwrap(), 1);
        assert_eq!(index.len(), 1);
        assert!(index.candidate("jq").unwrap().filename.starts_with("pool/main/"));
    }

    #[test]
    fn providers_are_the_candidates_that_still_provide_the_name() {
        let text = [
            stanza("mawk", "1.3.4-3", "amd64", "Provides: awk\n"),
            stanza("gawk", "1:5.2.1-2", "amd64", "Provides: awk\n"),
            stanza("gawk", "1:5.1.0-1", "amd64", "Provides: awk, gawk-doc\n"),
            stanza("libssl3t64", "3.3.2-1", "amd64", "Provides: libssl3 (= 3.3.2-1)\n"),
        ]
        .concat();
        let index = index(&[&text]);
        let names = |virtual_name| index.providers(virtual_name).iter().map(|p| p.name.clone()).collect::<Vec<_>>();
        assert_eq!(names("awk"), ["gawk", "mawk"]);
        assert!(names("gawk-doc").is_empty());
        assert_eq!(index.providers("libssl3")[0].provides[0].to_string(), "libssl3 (= 3.3.2-1)");
    }

    #[test]
    fn a_stanza_without_a_required_field_is_an_error_at_its_first_line() {
        let text = format!(
            "{}\n\nPackage: jq\nVersion: 1.6\nArchitecture: amd64\nFilename: jq.deb\nSize: 1\n",
            stanza("a1", "1", "all", "")
        );
        let mut index = Index::new("amd64");
        assert_eq!(
            index.add(&text, "main/Packages").unwrap_err().0,
            "main/Packages:10: package stanza has no `SHA256` field"
        );
        assert!(index.is_empty());
    }

    #[test]
    fn bad_values_name_the_stanza_and_the_field() {
        let err = |extra: &str| index_err(&stanza("jq", "1.6", "amd64", extra));
        assert_eq!(
            err("Depends: libc6 (>= 2.34\n"),
            "t:1: package `jq`: `Depends`: bad relation `libc6 (>= 2.34`: `(` is not closed"
        );
        assert_eq!(err("Provides: awk | nawk\n"), "t:1: package `jq`: `Provides` has alternatives");
        assert_eq!(
            err("Provides: awk (>= 1)\n"),
            "t:1: package `jq`: `Provides`: `awk (>= 1)` has a version other than `=`"
        );
        assert_eq!(err("Source: jq (1.6\n"), "t:1: package `jq`: bad `Source` `jq (1.6`");
        assert_eq!(err("Version: 2\n"), "t:4: field `Version` appears twice in one stanza");
        let short_hash = stanza("jq", "1.6", "amd64", "").replace(HEX_A, "abc");
        assert_eq!(index_err(&short_hash), "t:1: package `jq`: `SHA256` `abc` is not 64 hexadecimal digits");
        assert_eq!(index_err(" folded\n"), "t:1: continuation line outside a field");
        assert_eq!(index_err("Package jq\n"), "t:1: `Package jq` is not a `Name: value` field");
    }

    fn index_err(text: &str) -> String {
        Index::new("amd64").add(text, "t").unwrap_err().0
    }
}
