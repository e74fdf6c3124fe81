//! Which Debian packages an image gets: the closure of the packages a recipe names over their
//! dependencies, as the package lists (an [`Index`]) describe them, in an order that installs
//! each package after what it depends on. These rules are bake's promise to users:
//!
//! 1. The named packages (the roots) are taken in the order given. A root is a real package, or
//!    a virtual one whose provider rule 3 decides. A root that is also excluded is an error, and
//!    so is an unknown one, with the closest names the lists offer as suggestions. A
//!    [`Variant`] adds roots after them, in name order: every `Essential: yes` package
//!    (`essential`), and also every `Priority: required` one (`minbase`, debootstrap's set),
//!    except the excluded ones.
//! 2. Pre-Depends, then Depends, then (only when asked for) Recommends are followed, each group
//!    in field order. Suggests, Enhances, Conflicts and Breaks are ignored.
//! 3. A dependency group (`a | b`) is satisfied if one of its alternatives is satisfied by a
//!    package already selected (the roots are selected from the start): by its name with the
//!    version allowed, or by what it provides (a versioned provide satisfies a versioned
//!    relation whose version it allows; an unversioned provide only an unversioned relation).
//!    An excluded package stands in for itself and for what its candidate provides: a group it
//!    satisfies needs nothing installed, and its own dependencies are not followed. Otherwise the
//!    first alternative that can be satisfied is taken: the real package if its candidate
//!    version is allowed, else the package whose provides satisfy it. Of several such
//!    providers, apt's preference decides: an Essential one, else an `Important: yes` one, else
//!    the highest `Priority` (required, important, standard, optional, extra). Providers still
//!    tied are an error naming them: the recipe must name one, and that root then satisfies
//!    the group. In a merged-/usr image (a variant's), `usr-is-merged` is taken for a group
//!    that offers it (`usrmerge | usr-is-merged`), as debootstrap does: bake lays the image out
//!    merged already, which is what `usrmerge` would do at install time.
//! 4. One version per package: the candidate, the highest any list offers. A relation the
//!    selected version does not satisfy is an error.
//! 5. Qualifiers `:any`, `:native` and `:` the native architecture name the same package; a
//!    relation on another architecture cannot be satisfied.
//! 6. A group nothing satisfies is an error naming the chain from the root to it, and why each
//!    alternative fails. A Recommends group nothing satisfies is skipped, as apt skips it.
//! 7. The order is the depth-first post-order from the roots in request order, dependencies in
//!    the order of rule 2. A package already on the current path is not visited again, so a
//!    dependency cycle (libc6 and libgcc-s1) is installed as a whole, in that order. The result
//!    depends only on the package lists' content and the request.
//! 8. Essential packages are not added implicitly: without a variant, an image gets what it
//!    names and what that needs, nothing else.

use std::collections::{BTreeMap, BTreeSet};

use super::index::{Importance, Index, Package};
use super::version::Relation;
use crate::base::suggest::did_you_mean;

/// What a recipe asks for.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Packages to install, with everything they need.
    pub packages: &'a [String],
    /// Packages never to install: dependencies on them count as satisfied.
    pub exclude: &'a [String],
    /// Whether to follow Recommends too.
    pub recommends: bool,
    /// A base system to add, as debootstrap's variants do.
    pub variant: Option<Variant>,
}

/// A base system added to the roots (rule 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// Every `Essential: yes` package.
    Essential,
    /// Every `Essential: yes` and every `Priority: required` package, as debootstrap's minbase.
    Minbase,
}

impl Variant {
    pub fn parse(name: &str) -> Option<Variant> {
        match name {
            "essential" => Some(Variant::Essential),
            "minbase" => Some(Variant::Minbase),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Variant::Essential => "essential",
            Variant::Minbase => "minbase",
        }
    }

    /// Whether `package` belongs to this base system.
    fn includes(self, package: &Package) -> bool {
        package.essential || (self == Variant::Minbase && package.importance == Importance::Required)
    }
}

/// The packages an image gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolution {
    /// Every package to install, each after everything it depends on (but within a cycle).
    pub packages: Vec<Package>,
    /// Excluded names that satisfied no dependency of the closure, in request order.
    pub unused_excludes: Vec<String>,
}

/// Why a request cannot be resolved: the message names the package asked for and the chain of
/// dependencies to what is missing or ambiguous.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unresolvable(pub String);

impl std::fmt::Display for Unresolvable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Resolves `request` against the packages `index` offers, by the rules of this module.
pub fn resolve(index: &Index, request: &Request) -> Result<Resolution, Unresolvable> {
    let mut walk = Walk {
        index,
        recommends: request.recommends,
        merged_usr: request.variant.is_some(),
        excluded: request.exclude.iter().map(String::as_str).collect(),
        used: BTreeSet::new(),
        selected: BTreeMap::new(),
        stack: Vec::new(),
        on_path: BTreeSet::new(),
        done: BTreeSet::new(),
        order: Vec::new(),
    };
    let mut roots = Vec::new();
    for name in request.packages {
        let package = walk.root(name).map_err(|e| Unresolvable(format!("cannot resolve `{name}`: {e}")))?;
        walk.selected.insert(&package.name, package);
        roots.push((name, package));
    }
    if let Some(variant) = request.variant {
        let base: Vec<&Package> = index
            .parsed_names()
            .filter_map(|name| index.candidate(name))
            .filter(|p| variant.includes(p) && !walk.excluded.contains(p.name.as_str()))
            .collect();
        for package in base {
            if !walk.selected.contains_key(package.name.as_str()) {
                walk.selected.insert(&package.name, package);
                roots.push((&package.name, package));
            }
        }
    }
    for (name, package) in roots {
        walk.visit(package).map_err(|e| Unresolvable(format!("cannot resolve `{name}`: {e}")))?;
    }
    let mut unused_excludes: Vec<String> = Vec::new();
    for name in request.exclude {
        if !walk.used.contains(name.as_str()) && !unused_excludes.contains(name) {
            unused_excludes.push(name.clone());
        }
    }
    Ok(Resolution { packages: walk.order.into_iter().cloned().collect(), unused_excludes })
}

/// A package being visited and the dependency groups it has left to satisfy.
struct Frame<'a> {
    package: &'a Package,
    /// Each group with whether it must be satisfied (Recommends need not).
    groups: Vec<(&'a [Relation], bool)>,
    next: usize,
}

/// A depth-first walk over dependencies that emits each package after what it needs. The walk
/// keeps its own stack, so a long dependency chain in a package list cannot overflow ours.
struct Walk<'a> {
    index: &'a Index,
    recommends: bool,
    /// Whether the image is merged-/usr (rule 3's `usr-is-merged`).
    merged_usr: bool,
    excluded: BTreeSet<&'a str>,
    /// Excluded names that satisfied a group.
    used: BTreeSet<&'a str>,
    /// Package name -> the selected package (always the candidate).
    selected: BTreeMap<&'a str, &'a Package>,
    /// The current path from the root.
    stack: Vec<Frame<'a>>,
    on_path: BTreeSet<&'a str>,
    done: BTreeSet<&'a str>,
    order: Vec<&'a Package>,
}

/// Why an alternative cannot be taken.
enum Unmet {
    /// Nothing offers it (the reason).
    Missing(String),
    /// Several packages provide it (the error).
    Ambiguous(String),
}

impl<'a> Walk<'a> {
    /// The package a name in the request stands for.
    fn root(&self, name: &str) -> Result<&'a Package, Unresolvable> {
        if self.excluded.contains(name) {
            return Err(Unresolvable("it is named both to install and to exclude".into()));
        }
        if let Some(package) = self.index.candidate(name) {
            return Ok(package);
        }
        match self.index.providers(name).as_slice() {
            [] => Err(Unresolvable(format!(
                "no package list offers or provides `{name}`{}",
                did_you_mean(name, self.index.names())
            ))),
            [one] if self.excluded.contains(one.name.as_str()) => {
                Err(Unresolvable(format!("its only provider `{}` is excluded", one.name)))
            }
            [one] => Ok(one),
            several => preferred(name, several).map_err(Unresolvable),
        }
    }

    fn visit(&mut self, root: &'a Package) -> Result<(), Unresolvable> {
        if !self.done.contains(root.name.as_str()) {
            self.enter(root);
        }
        while let Some(frame) = self.stack.last_mut() {
            let Some(&(group, required)) = frame.groups.get(frame.next) else {
                let frame = self.stack.pop().expect("the loop saw a frame");
                self.on_path.remove(frame.package.name.as_str());
                self.done.insert(&frame.package.name);
                self.order.push(frame.package);
                continue;
            };
            frame.next += 1;
            if let Some(next) = self.choose(group, required)?
                && !self.done.contains(next.name.as_str())
                && !self.on_path.contains(next.name.as_str())
            {
                self.enter(next);
            }
        }
        Ok(())
    }

    fn enter(&mut self, package: &'a Package) {
        let mut groups: Vec<(&[Relation], bool)> =
            package.pre_depends.iter().chain(&package.depends).map(|g| (g.as_slice(), true)).collect();
        if self.recommends {
            groups.extend(package.recommends.iter().map(|g| (g.as_slice(), false)));
        }
        self.on_path.insert(&package.name);
        self.stack.push(Frame { package, groups, next: 0 });
    }

    /// The package that satisfies `group` (rule 3), or `None` when an excluded package stands in
    /// for it or it is an unsatisfiable Recommends.
    fn choose(&mut self, group: &'a [Relation], required: bool) -> Result<Option<&'a Package>, Unresolvable> {
        let native = || group.iter().filter(|r| self.is_native(r));
        if let Some(package) = native().find_map(|r| self.selected_for(r)) {
            return Ok(Some(package));
        }
        if let Some(name) = native().find_map(|r| self.excluded_for(r)) {
            self.used.insert(name);
            return Ok(None);
        }
        if self.merged_usr
            && let Some(relation) = group.iter().find(|r| r.name == "usr-is-merged")
            && let Ok(package) = self.offer(relation)
        {
            self.selected.insert(&package.name, package);
            return Ok(Some(package));
        }
        let mut reasons = Vec::new();
        for relation in group {
            match self.offer(relation) {
                Ok(package) => {
                    self.selected.insert(&package.name, package);
                    return Ok(Some(package));
                }
                Err(Unmet::Ambiguous(why)) => return Err(Unresolvable(self.chain(group, &why))),
                Err(Unmet::Missing(why)) => reasons.push(why),
            }
        }
        if !required {
            return Ok(None);
        }
        Err(Unresolvable(self.chain(group, &reasons.join("; "))))
    }

    /// `why`, after the path from the root to `group`: `` `jq` → `libjq1` → `libonig5`: why ``.
    fn chain(&self, group: &[Relation], why: &str) -> String {
        let group = group.iter().map(Relation::to_string).collect::<Vec<_>>().join(" | ");
        let path = self.stack.iter().map(|f| format!("`{}` → ", f.package.name)).collect::<String>();
        format!("{path}`{group}`: {why}")
    }

    fn is_native(&self, relation: &Relation) -> bool {
        relation.arch.as_deref().is_none_or(|a| a == "any" || a == "native" || a == self.index.arch())
    }

    /// The selected package that satisfies `relation`, by name or by what it provides.
    fn selected_for(&self, relation: &Relation) -> Option<&'a Package> {
        if let Some(&package) = self.selected.get(relation.name.as_str())
            && allows(relation, &package.version)
        {
            return Some(package);
        }
        self.selected.values().copied().find(|p| provides(p, relation))
    }

    /// The excluded name that stands in for `relation`: its own, or one whose candidate provides it.
    fn excluded_for(&self, relation: &Relation) -> Option<&'a str> {
        if let Some(&name) = self.excluded.get(relation.name.as_str()) {
            return Some(name);
        }
        self.excluded.iter().copied().find(|name| self.index.candidate(name).is_some_and(|p| provides(p, relation)))
    }

    /// The package that would satisfy `relation` if selected now.
    fn offer(&self, relation: &Relation) -> Result<&'a Package, Unmet> {
        let name = &relation.name;
        if !self.is_native(relation) {
            let why = format!("`{relation}` is for another architecture than `{}`", self.index.arch());
            return Err(Unmet::Missing(why));
        }
        let candidate = self.index.candidate(name);
        if let Some(package) = candidate
            && allows(relation, &package.version)
        {
            return Ok(package);
        }
        let providers = self.index.providers(name);
        let fitting: Vec<&Package> = providers.iter().copied().filter(|p| provides(p, relation)).collect();
        match fitting.as_slice() {
            [] => {}
            [one] => return Ok(one),
            several => return preferred(name, several).map_err(Unmet::Ambiguous),
        }
        Err(Unmet::Missing(match candidate {
            Some(package) => format!("`{name}` {} does not satisfy `{relation}`", package.version),
            None if providers.is_empty() => format!("no package list offers or provides `{name}`"),
            None => format!(
                "no package list offers `{name}`, and no provider has a version it allows (provided by {})",
                listing(&providers)
            ),
        }))
    }
}

/// Whether `version` of the package `relation` names is allowed.
fn allows(relation: &Relation, version: &str) -> bool {
    relation.constraint.as_ref().is_none_or(|c| c.allows(version))
}

/// Whether `package` provides what `relation` asks for: an unversioned relation by any provide
/// of the name, a versioned one only by a versioned provide whose version it allows (Policy §7.5).
fn provides(package: &Package, relation: &Relation) -> bool {
    package.provides.iter().any(|provided| {
        provided.name == relation.name
            && match &relation.constraint {
                None => true,
                Some(wanted) => provided.constraint.as_ref().is_some_and(|c| wanted.allows(&c.version)),
            }
    })
}

/// The provider of `name` apt prefers among `providers` (rule 3), or the error naming the ones
/// still tied.
fn preferred<'a>(name: &str, providers: &[&'a Package]) -> Result<&'a Package, String> {
    let rank = |p: &Package| (!p.essential, !p.important, p.importance);
    let best = providers.iter().map(|p| rank(p)).min().expect("several providers");
    let tied: Vec<&Package> = providers.iter().copied().filter(|p| rank(p) == best).collect();
    match tied.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "`{name}` is provided by {}, equally preferred (Priority: {}); name one of them in `packages`",
            listing(&tied),
            best.2.name()
        )),
    }
}

/// `` `a` ``, `` `a` and `b` ``, `` `a`, `b` and `c` ``.
fn listing(packages: &[&Package]) -> String {
    let names: Vec<String> = packages.iter().map(|p| format!("`{}`", p.name)).collect();
    match names.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => names.concat(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 18 stanzas of Debian bookworm-like packages for amd64 (one of them for i386).
    const FIXTURE: &str = include_str!("../../tests/fixtures/debian/Packages");

    /// The fixture index, plus `extra` stanzas as a second package list.
    fn index(extra: &[String]) -> Index {
        let mut index = Index::new("amd64");
        index.add(FIXTURE, "fixture/Packages").unwrap();
        index.add(&extra.concat(), "extra/Packages").unwrap();
        index
    }

    /// A minimal amd64 stanza with `fields` (each ending in a line break).
    fn stanza(name: &str, version: &str, fields: &str) -> String {
        format!(
            "Package: {name}\nVersion: {version}\nArchitecture: amd64\n{fields}\
             Filename: pool/main/{name}_{version}_amd64.deb\nSize: 4096\nSHA256: {}\n\n",
            "5".repeat(64)
        )
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    fn resolve_with(
        index: &Index,
        packages: &[&str],
        exclude: &[&str],
        recommends: bool,
    ) -> Result<Resolution, String> {
        let (packages, exclude) = (strings(packages), strings(exclude));
        resolve(index, &Request { packages: &packages, exclude: &exclude, recommends, variant: None }).map_err(|e| e.0)
    }

    /// The names of what `packages` installs, without excludes or Recommends.
    fn install(index: &Index, packages: &[&str]) -> Result<Vec<String>, String> {
        let resolution = resolve_with(index, packages, &[], false)?;
        Ok(resolution.packages.into_iter().map(|p| p.name).collect())
    }

    #[test]
    fn a_realistic_closure_comes_in_dependency_order() {
        let resolution = resolve_with(&index(&[]), &["jq", "ca-certificates"], &[], false).unwrap();
        let names: Vec<&str> = resolution.packages.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "gcc-12-base",
                "libgcc-s1",
                "libc6",
                "libonig5",
                "libjq1",
                "jq",
                "libssl3t64",
                "openssl",
                "perl-base",
                "debconf",
                "ca-certificates"
            ]
        );
        let libc6 = &resolution.packages[2];
        assert_eq!(libc6.architecture, "amd64");
        assert_eq!(libc6.filename, "pool/main/g/glibc/libc6_2.36-9+deb12u4_amd64.deb");
        assert!(resolution.unused_excludes.is_empty());
    }

    #[test]
    fn the_result_does_not_depend_on_the_order_of_the_stanzas() {
        let mut stanzas: Vec<&str> = FIXTURE.split("\n\n").collect();
        stanzas.reverse();
        let mut reversed = Index::new("amd64");
        reversed.add(&stanzas.join("\n\n"), "reversed").unwrap();
        let request = ["ca-certificates", "dash", "jq"];
        assert_eq!(install(&reversed, &request).unwrap(), install(&index(&[]), &request).unwrap());
    }

    #[test]
    fn essential_packages_are_not_added_implicitly() {
        // dash and perl-base are `Essential: yes` in the fixture.
        assert_eq!(install(&index(&[]), &["gcc-12-base"]).unwrap(), ["gcc-12-base"]);
    }

    #[test]
    fn pre_depends_come_before_depends_whatever_the_field_order() {
        // dash lists Depends (debianutils) before Pre-Depends (libc6) in the fixture.
        let order = install(&index(&[]), &["dash"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "debianutils", "dash"]);
    }

    #[test]
    fn a_dependency_cycle_is_installed_whole_in_the_order_it_is_entered() {
        let index = index(&[]);
        assert_eq!(install(&index, &["libc6"]).unwrap(), ["gcc-12-base", "libgcc-s1", "libc6"]);
        assert_eq!(install(&index, &["libgcc-s1"]).unwrap(), ["gcc-12-base", "libc6", "libgcc-s1"]);
    }

    #[test]
    fn the_first_satisfiable_alternative_is_taken() {
        let user = stanza("awk-user", "1.0-1", "Depends: original-awk | gawk (>= 1:6.0) | mawk (>= 1.3.4) | gawk\n");
        let order = install(&index(&[user]), &["awk-user"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "mawk", "awk-user"]);
    }

    #[test]
    fn an_already_selected_later_alternative_wins() {
        let index = index(&[stanza("awk-user", "1.0-1", "Depends: gawk | mawk\n")]);
        assert_eq!(install(&index, &["awk-user"]).unwrap(), ["gcc-12-base", "libgcc-s1", "libc6", "gawk", "awk-user"]);
        // mawk, named after awk-user, is selected from the start, and installed before it.
        let order = install(&index, &["awk-user", "mawk"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "mawk", "awk-user"]);
    }

    #[test]
    fn a_virtual_package_with_one_provider_is_that_provider() {
        let index = index(&[]);
        assert_eq!(install(&index, &["libssl3"]).unwrap(), ["gcc-12-base", "libgcc-s1", "libc6", "libssl3t64"]);
        // openssl depends on `libssl3 (>= 3.3.0)`; libssl3t64 provides `libssl3 (= 3.3.2-1)`.
        let order = install(&index, &["openssl"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "libssl3t64", "openssl"]);
    }

    #[test]
    fn a_virtual_package_with_several_providers_is_decided_as_apt_decides() {
        let index = index(&[
            stanza("awk-user", "1.0-1", "Depends: awk\n"),
            // Two optional providers of `thing`: a real tie.
            stanza("thing-a", "1", "Provides: thing\nPriority: optional\n"),
            stanza("thing-b", "1", "Provides: thing\nPriority: optional\n"),
            stanza("thing-user", "1", "Depends: thing\n"),
            // An Essential provider beats a required one; `Important: yes` beats the priority.
            stanza("other-e", "1", "Provides: other\nEssential: yes\nPriority: optional\n"),
            stanza("other-r", "1", "Provides: other\nPriority: required\n"),
            stanza("third-i", "1", "Provides: third\nImportant: yes\nPriority: extra\n"),
            stanza("third-r", "1", "Provides: third\nPriority: required\n"),
        ]);
        // mawk is `Priority: required`, gawk `optional`: as apt, mawk.
        assert_eq!(install(&index, &["awk"]).unwrap(), ["gcc-12-base", "libgcc-s1", "libc6", "mawk"]);
        let order = install(&index, &["awk-user"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "mawk", "awk-user"]);
        // A provider already chosen wins over the preference.
        let order = install(&index, &["gawk", "awk-user"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "gawk", "awk-user"]);
        assert_eq!(
            install(&index, &["thing-user"]).unwrap_err(),
            "cannot resolve `thing-user`: `thing-user` → `thing`: `thing` is provided by `thing-a` and `thing-b`, \
             equally preferred (Priority: optional); name one of them in `packages`"
        );
        assert_eq!(install(&index, &["thing-user", "thing-b"]).unwrap(), ["thing-b", "thing-user"]);
        assert_eq!(install(&index, &["other"]).unwrap(), ["other-e"]);
        assert_eq!(install(&index, &["third"]).unwrap(), ["third-i"]);
    }

    fn with_variant(index: &Index, packages: &[&str], exclude: &[&str], variant: Variant) -> Vec<String> {
        let (packages, exclude) = (strings(packages), strings(exclude));
        let request = Request { packages: &packages, exclude: &exclude, recommends: false, variant: Some(variant) };
        let resolution = resolve(index, &request).unwrap();
        let mut names: Vec<String> = resolution.packages.into_iter().map(|p| p.name).collect();
        names.sort();
        names
    }

    #[test]
    fn a_variant_adds_the_essential_or_the_required_packages() {
        let index = index(&[
            stanza("usrmerge", "1", "Depends: perl-base\nPriority: optional\n"),
            stanza("usr-is-merged", "1", "Priority: optional\n"),
            stanza("init-helper", "1", "Depends: usrmerge | usr-is-merged\nPriority: optional\n"),
        ]);
        let essential: Vec<String> =
            index.names().filter_map(|n| index.candidate(n)).filter(|p| p.essential).map(|p| p.name.clone()).collect();
        assert!(!essential.is_empty());
        let got = with_variant(&index, &["jq"], &[], Variant::Essential);
        for name in &essential {
            assert!(got.contains(name), "{name} in {got:?}");
        }
        assert!(!got.contains(&"debconf".to_string()), "required, not Essential: {got:?}");
        // minbase: the required ones too, as debootstrap; an excluded one stays out.
        let got = with_variant(&index, &["jq"], &[], Variant::Minbase);
        for name in ["gcc-12-base", "mawk", "debconf", "jq"] {
            assert!(got.contains(&name.to_string()), "{name} in {got:?}");
        }
        assert!(!got.contains(&"gawk".to_string()), "{got:?}");
        assert!(!with_variant(&index, &["jq"], &["debconf"], Variant::Minbase).contains(&"debconf".to_string()));
        // Merged /usr: `usr-is-merged` for `usrmerge | usr-is-merged`; without a variant, the first.
        let got = with_variant(&index, &["init-helper"], &[], Variant::Essential);
        assert!(got.contains(&"usr-is-merged".to_string()) && !got.contains(&"usrmerge".to_string()), "{got:?}");
        assert!(install(&index, &["init-helper"]).unwrap().contains(&"usrmerge".to_string()));
    }

    #[test]
    fn only_a_versioned_provide_satisfies_a_versioned_relation() {
        let index = index(&[
            stanza("old-ssl-user", "1", "Depends: libssl3 (>= 3.0.0)\n"),
            stanza("new-ssl-user", "1", "Depends: libssl3 (>= 3.4)\n"),
            stanza("awk-version-user", "1", "Depends: awk (>= 1.3)\n"),
        ]);
        assert_eq!(install(&index, &["old-ssl-user"]).unwrap()[3], "libssl3t64");
        assert_eq!(
            install(&index, &["new-ssl-user"]).unwrap_err(),
            "cannot resolve `new-ssl-user`: `new-ssl-user` → `libssl3 (>= 3.4)`: no package list offers `libssl3`, \
             and no provider has a version it allows (provided by `libssl3t64`)"
        );
        // mawk provides an unversioned `awk`, which does not satisfy `awk (>= 1.3)`, even named.
        assert!(install(&index, &["mawk", "awk-version-user"]).unwrap_err().contains("no provider has a version"));
    }

    #[test]
    fn a_missing_dependency_names_the_chain_from_the_root() {
        let index = index(&[
            stanza("jq", "1.7.1-3", "Depends: libjq1 (= 1.7.1-3)\n"),
            stanza("libjq1", "1.7.1-3", "Depends: libc6 (>= 2.34), libonig6 | libonig5-compat:any\n"),
        ]);
        assert_eq!(
            install(&index, &["jq"]).unwrap_err(),
            "cannot resolve `jq`: `jq` → `libjq1` → `libonig6 | libonig5-compat:any`: \
             no package list offers or provides `libonig6`; no package list offers or provides `libonig5-compat`"
        );
    }

    #[test]
    fn a_version_constraint_the_candidate_does_not_meet_is_an_error() {
        let index = index(&[
            stanza("jq", "1.7.1-3", "Depends: libjq1 (= 1.7.1-3)\n"),
            stanza("libjq1", "1.7.1-3", "Depends: libonig5 (>= 6.9.9)\n"),
            stanza("new-libc-user", "1", "Depends: libc6 (>= 2.38)\n"),
        ]);
        assert_eq!(
            install(&index, &["jq"]).unwrap_err(),
            "cannot resolve `jq`: `jq` → `libjq1` → `libonig5 (>= 6.9.9)`: \
             `libonig5` 6.9.8-1 does not satisfy `libonig5 (>= 6.9.9)`"
        );
        // libc6, already selected as a root, is not replaced by some other version.
        assert_eq!(
            install(&index, &["libc6", "new-libc-user"]).unwrap_err(),
            "cannot resolve `new-libc-user`: `new-libc-user` → `libc6 (>= 2.38)`: \
             `libc6` 2.36-9+deb12u4 does not satisfy `libc6 (>= 2.38)`"
        );
    }

    #[test]
    fn excluded_packages_are_dropped_with_their_dependencies() {
        let index = index(&[]);
        let resolution = resolve_with(&index, &["ca-certificates"], &["debconf", "gawk", "debconf"], false).unwrap();
        let names: Vec<&str> = resolution.packages.iter().map(|p| p.name.as_str()).collect();
        // Without debconf, its Pre-Depends perl-base is not installed either.
        assert_eq!(names, ["gcc-12-base", "libgcc-s1", "libc6", "libssl3t64", "openssl", "ca-certificates"]);
        assert_eq!(resolution.unused_excludes, ["gawk"]);
    }

    #[test]
    fn an_excluded_provider_stands_in_for_the_virtual_package() {
        let index = index(&[stanza("awk-user", "1.0-1", "Depends: awk\n")]);
        let resolution = resolve_with(&index, &["awk-user"], &["mawk"], false).unwrap();
        assert_eq!(resolution.packages.len(), 1);
        assert!(resolution.unused_excludes.is_empty());
    }

    #[test]
    fn a_root_that_is_also_excluded_is_an_error() {
        let err = resolve_with(&index(&[]), &["jq"], &["jq"], false).unwrap_err();
        assert_eq!(err, "cannot resolve `jq`: it is named both to install and to exclude");
    }

    #[test]
    fn an_unknown_root_suggests_close_names() {
        let index = index(&[]);
        assert_eq!(
            install(&index, &["jqq"]).unwrap_err(),
            "cannot resolve `jqq`: no package list offers or provides `jqq` (did you mean `jq`?)"
        );
        assert_eq!(
            install(&index, &["libc7"]).unwrap_err(),
            "cannot resolve `libc7`: no package list offers or provides `libc7` (did you mean `libc6`?)"
        );
        assert_eq!(
            install(&index, &["python3-zzz"]).unwrap_err(),
            "cannot resolve `python3-zzz`: no package list offers or provides `python3-zzz`"
        );
    }

    #[test]
    fn recommends_are_followed_only_when_asked_and_skipped_when_missing() {
        let index = index(&[]);
        let names = |recommends| {
            let resolution = resolve_with(&index, &["libc6"], &[], recommends).unwrap();
            resolution.packages.into_iter().map(|p| p.name).collect::<Vec<_>>()
        };
        assert_eq!(names(false), ["gcc-12-base", "libgcc-s1", "libc6"]);
        assert_eq!(names(true), ["gcc-12-base", "libgcc-s1", "libunistring2", "libidn2-0", "libc6"]);
        // debconf recommends apt-utils and debconf-i18n, which no list offers.
        let resolution = resolve_with(&index, &["debconf"], &[], true).unwrap();
        assert_eq!(resolution.packages.last().unwrap().name, "debconf");
    }

    #[test]
    fn architecture_qualifiers_name_the_native_package_or_nothing() {
        let index = index(&[
            stanza("native-user", "1", "Depends: libc6:any (>= 2.34), jq:native, libonig5:amd64\n"),
            stanza("i386-user", "1", "Depends: libc6:i386\n"),
            stanza("either-user", "1", "Depends: libc6:i386 | libc6\n"),
        ]);
        let order = install(&index, &["native-user"]).unwrap();
        assert_eq!(order, ["gcc-12-base", "libgcc-s1", "libc6", "libonig5", "libjq1", "jq", "native-user"]);
        assert_eq!(
            install(&index, &["i386-user"]).unwrap_err(),
            "cannot resolve `i386-user`: `i386-user` → `libc6:i386`: `libc6:i386` is for another architecture \
             than `amd64`"
        );
        assert_eq!(install(&index, &["either-user"]).unwrap().last().unwrap(), "either-user");
    }

    #[test]
    fn stanzas_for_other_architectures_are_ignored() {
        let mut index = Index::new("amd64");
        assert_eq!(index.add(FIXTURE, "fixture").unwrap(), 17);
        let resolution = resolve_with(&index, &["libc6"], &[], false).unwrap();
        assert!(resolution.packages.iter().all(|p| p.architecture == "amd64"));
        let mut i386 = Index::new("i386");
        assert_eq!(i386.add(FIXTURE, "fixture").unwrap(), 3);
        assert_eq!(i386.candidate("libc6").unwrap().filename, "pool/main/g/glibc/libc6_2.36-9+deb12u4_i386.deb");
    }

    #[test]
    fn the_highest_version_across_lists_is_installed() {
        let security = stanza("libc6", "2.36-9+deb12u7", "Depends: libgcc-s1\n");
        let newer_first = {
            let mut index = Index::new("amd64");
            index.add(&security, "security").unwrap();
            index.add(FIXTURE, "main").unwrap();
            index
        };
        for index in [self::index(std::slice::from_ref(&security)), newer_first] {
            let resolution = resolve_with(&index, &["jq"], &[], false).unwrap();
            let libc6 = resolution.packages.iter().find(|p| p.name == "libc6").unwrap();
            assert_eq!(libc6.version, "2.36-9+deb12u7");
            assert_eq!(libc6.filename, "pool/main/libc6_2.36-9+deb12u7_amd64.deb");
        }
    }
}
