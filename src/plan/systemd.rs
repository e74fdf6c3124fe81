//! `[systemd]`: units enabled as `systemctl --root=IMAGE enable` and `preset-all` would enable
//! them, and the default target as `systemctl set-default` sets it, all as symlinks in
//! `/etc/systemd/system`, made from the unit files and preset files in the image. Also what a
//! systemd image needs so its first boot never stops to ask: an empty `/etc/machine-id`.
//!
//! The rules, as systemd 252 (Debian 12) applies them:
//!
//! - Unit files are looked up in `/etc/systemd/system`, `/usr/local/lib/systemd/system`,
//!   `/lib/systemd/system` and `/usr/lib/systemd/system`, in that order; the first holds a
//!   name, and links point at the unit by that path (`/lib/systemd/system/ssh.service`). A unit
//!   file that is a symlink to `/dev/null` is masked; any other symlink there is an alias.
//! - Enabling reads the `[Install]` section: a link in `TARGET.wants/` for each `WantedBy=`,
//!   `.requires/` for `RequiredBy=`, `.upholds/` for `UpheldBy=`, a link named after each
//!   `Alias=`, and every unit in `Also=` enabled as well. A template (`getty@.service`) is
//!   enabled as its `DefaultInstance=` unless an instance is named (`getty@tty2.service`).
//! - Presets come from `*.preset` files in `/etc/systemd/system-preset`,
//!   `/usr/local/lib/systemd/system-preset`, `/lib/systemd/system-preset` and
//!   `/usr/lib/systemd/system-preset` (a name in an earlier folder hides the same name in a
//!   later one), read in file-name order; the first `enable PATTERN [INSTANCE...]` or
//!   `disable PATTERN` line whose pattern matches a unit decides it, and a unit no line matches
//!   is enabled. `preset-all` enables every unit with an `[Install]` section that its preset
//!   enables (and their `Also=` units, which win over their own `disable`: systemctl removes
//!   the disabled ones' links first, then makes the enabled ones').

use std::collections::{BTreeMap, BTreeSet};

use super::system;
use super::tree::{Origin, Tree};
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::recipe::RecipeFile;
use crate::source::content::{Content, Spool};
use crate::source::{Meta, Node};

const UNIT_DIRS: [&str; 4] =
    ["/etc/systemd/system", "/usr/local/lib/systemd/system", "/lib/systemd/system", "/usr/lib/systemd/system"];
const PRESET_DIRS: [&str; 4] = [
    "/etc/systemd/system-preset",
    "/usr/local/lib/systemd/system-preset",
    "/lib/systemd/system-preset",
    "/usr/lib/systemd/system-preset",
];
const LINKS: &str = "etc/systemd/system";

/// A unit file found in the unit folders.
enum Unit {
    /// A regular file at `path` (as the search folder names it), with its `[Install]` section.
    File { path: String, install: Install },
    /// A symlink to `/dev/null`.
    Masked,
    /// Any other symlink: another name of some unit.
    Alias,
}

/// What a unit's `[Install]` section says.
#[derive(Default, Debug, Clone, PartialEq, Eq)]
struct Install {
    wanted_by: Vec<String>,
    required_by: Vec<String>,
    upheld_by: Vec<String>,
    alias: Vec<String>,
    also: Vec<String>,
    default_instance: Option<String>,
}

impl Install {
    fn is_empty(&self) -> bool {
        self.wanted_by.is_empty()
            && self.required_by.is_empty()
            && self.upheld_by.is_empty()
            && self.alias.is_empty()
            && self.also.is_empty()
    }
}

/// Reads the `[Install]` section of a unit file.
fn install_section(text: &str) -> Install {
    let mut install = Install::default();
    let mut in_install = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            in_install = line == "[Install]";
            continue;
        }
        if !in_install || line.starts_with(['#', ';']) {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else { continue };
        let list = match key.trim() {
            "WantedBy" => &mut install.wanted_by,
            "RequiredBy" => &mut install.required_by,
            "UpheldBy" => &mut install.upheld_by,
            "Alias" => &mut install.alias,
            "Also" => &mut install.also,
            "DefaultInstance" => {
                install.default_instance = Some(value.trim().to_string()).filter(|v| !v.is_empty());
                continue;
            }
            _ => continue,
        };
        // An empty assignment resets the list, as in every systemd list setting.
        if value.trim().is_empty() {
            list.clear();
        }
        list.extend(value.split_whitespace().map(str::to_string));
    }
    install
}

/// `foo@bar.service` -> (`foo@.service`, `bar`); `foo@.service` -> (`foo@.service`, ``); a
/// plain name has no instance.
fn template_of(name: &str) -> Option<(String, String)> {
    let (prefix, rest) = name.split_once('@')?;
    let (instance, suffix) = rest.rsplit_once('.')?;
    Some((format!("{prefix}@.{suffix}"), instance.to_string()))
}

/// The unit files and preset rules of an image, and the links being made.
struct Units {
    units: BTreeMap<String, Unit>,
    /// Link path (below the root, no leading `/`) -> target.
    links: BTreeMap<String, String>,
    enabled: BTreeSet<String>,
}

impl Units {
    fn read(tree: &mut Tree, spool: &Spool, origin: Origin) -> Result<Units> {
        let mut units = BTreeMap::new();
        for dir in UNIT_DIRS {
            for (name, entry) in list_dir(tree, spool, dir, origin)? {
                let unit = match entry {
                    Listed::File(text) => Unit::File { path: format!("{dir}/{name}"), install: install_section(&text) },
                    Listed::Symlink(target) if target == "/dev/null" => Unit::Masked,
                    Listed::Symlink(_) => Unit::Alias,
                };
                units.entry(name).or_insert(unit);
            }
        }
        Ok(Units { units, links: BTreeMap::new(), enabled: BTreeSet::new() })
    }

    /// Enables `name` (and its `Also=` units), as `systemctl enable` does; an error says why it
    /// cannot be (missing, masked, nothing to install).
    fn enable(&mut self, name: &str) -> std::result::Result<(), String> {
        if !self.enabled.insert(name.to_string()) {
            return Ok(());
        }
        let (file_name, instance) = match template_of(name) {
            Some((template, instance)) => (template, Some(instance)),
            None => (name.to_string(), None),
        };
        let (path, install) = match self.units.get(&file_name) {
            Some(Unit::File { path, install }) => (path.clone(), install.clone()),
            Some(Unit::Masked) => return Err(format!("`{name}` is masked (a link to /dev/null)")),
            Some(Unit::Alias) => return Err(format!("`{name}` is an alias of another unit: enable that one")),
            None => {
                return Err(format!("the image has no unit `{file_name}` (looked in {})", UNIT_DIRS.join(", ")));
            }
        };
        if install.is_empty() {
            return Err(format!(
                "`{name}` has no `[Install]` section (WantedBy=, RequiredBy=, Alias=, Also=): nothing to enable"
            ));
        }
        // The instance the links are named after: the one asked for, else the default one.
        let instance = match instance.filter(|i| !i.is_empty()) {
            Some(instance) => Some(instance),
            None if file_name.contains('@') => install.default_instance.clone(),
            None => None,
        };
        let link_name = match (&instance, template_of(&file_name)) {
            (Some(instance), Some((template, _))) => template.replacen("@.", &format!("@{instance}."), 1),
            _ => file_name.clone(),
        };
        let target = path;
        let wants_ok = !file_name.contains('@') || instance.is_some();
        if wants_ok {
            for (list, suffix) in
                [(&install.wanted_by, "wants"), (&install.required_by, "requires"), (&install.upheld_by, "upholds")]
            {
                for unit in list {
                    self.links.insert(format!("{LINKS}/{unit}.{suffix}/{link_name}"), target.clone());
                }
            }
        }
        for alias in &install.alias {
            self.links.insert(format!("{LINKS}/{alias}"), target.clone());
        }
        for also in &install.also {
            self.enable(also)?;
        }
        Ok(())
    }

    /// `systemctl preset-all`: every unit with an `[Install]` section its preset enables.
    fn preset_all(&mut self, rules: &[Rule]) -> std::result::Result<(), String> {
        let names: Vec<(String, Install)> = self
            .units
            .iter()
            .filter_map(|(name, unit)| match unit {
                Unit::File { install, .. } if !install.is_empty() => Some((name.clone(), install.clone())),
                _ => None,
            })
            .collect();
        for (name, install) in names {
            let rule = rules.iter().find(|r| r.pattern.is_match(&name));
            match rule {
                Some(rule) if !rule.enable => {}
                Some(rule) if name.contains("@.") && !rule.instances.is_empty() => {
                    for instance in &rule.instances {
                        self.enable(&name.replacen("@.", &format!("@{instance}."), 1))?;
                    }
                }
                // A template without a default instance has no links to make, only Also= ones.
                _ if name.contains("@.") && install.default_instance.is_none() => {
                    for also in &install.also {
                        self.enable(also)?;
                    }
                }
                _ => self.enable(&name)?,
            }
        }
        Ok(())
    }
}

/// One line of a preset file.
struct Rule {
    enable: bool,
    pattern: globset::GlobMatcher,
    instances: Vec<String>,
}

/// The preset rules of the image, in the order they apply.
fn preset_rules(tree: &mut Tree, spool: &Spool, origin: Origin) -> Result<Vec<Rule>> {
    let mut files: BTreeMap<String, String> = BTreeMap::new();
    for dir in PRESET_DIRS {
        for (name, entry) in list_dir(tree, spool, dir, origin)? {
            if let (true, Listed::File(text)) = (name.ends_with(".preset"), entry) {
                files.entry(name).or_insert(text);
            }
        }
    }
    let mut rules = Vec::new();
    for (file, text) in files {
        for (number, line) in text.lines().enumerate() {
            let words: Vec<&str> = line.split_whitespace().collect();
            let (enable, pattern, instances) = match words.as_slice() {
                [] => continue,
                [first, ..] if first.starts_with(['#', ';']) => continue,
                ["enable", pattern, instances @ ..] => (true, *pattern, instances.to_vec()),
                ["disable", pattern] => (false, *pattern, Vec::new()),
                _ => {
                    return Err(Error::input(format!(
                        "the image's preset file `{file}`, line {}: `{line}` is not `enable PATTERN` or `disable PATTERN`",
                        number + 1
                    )));
                }
            };
            let glob = globset::Glob::new(pattern).map_err(|e| {
                Error::input(format!("the image's preset file `{file}`, line {}: `{pattern}`: {e}", number + 1))
            })?;
            rules.push(Rule {
                enable,
                pattern: glob.compile_matcher(),
                instances: instances.into_iter().map(str::to_string).collect(),
            });
        }
    }
    Ok(rules)
}

/// Applies the recipe's `[systemd]` and makes `/etc/machine-id` empty in an image that has
/// systemd; does nothing for other images.
pub fn apply(tree: &mut Tree, spool: &Spool, recipe: &RecipeFile) -> Result<()> {
    let origin = tree.origin("`[systemd]` (the links systemctl would make)".to_string());
    let section = recipe.recipe.systemd.as_ref();
    let has_systemd = ["/lib/systemd/systemd", "/usr/lib/systemd/systemd"]
        .iter()
        .any(|p| tree.holds(&ImagePath::from_recipe(p).expect("plain"), origin));
    if has_systemd {
        // Empty: not a first boot (nothing prompts for a locale or a root password), and systemd
        // makes up a machine id for each boot of a read-only root.
        let machine_id = ImagePath::from_recipe("/etc/machine-id").expect("plain");
        if !tree.holds(&machine_id, origin) {
            tree.insert(&machine_id, Node::File { content: Content::inline(b"") }, Meta::root(0o444), origin)?;
        }
    }
    let Some(section) = section else { return Ok(()) };
    let s = section.get_ref();
    if !has_systemd {
        return Err(recipe.error(section, "`[systemd]`: the image has no systemd (`/lib/systemd/systemd`)"));
    }
    let mut units = Units::read(tree, spool, origin)?;
    if s.preset {
        let rules = preset_rules(tree, spool, origin)?;
        units.preset_all(&rules).map_err(|e| recipe.error(section, format!("`preset`: {e}")))?;
    }
    for name in &s.enable {
        units.enable(name.get_ref()).map_err(|e| recipe.error(name, format!("`enable`: {e}")))?;
    }
    if let Some(target) = &s.default_target {
        match units.units.get(target.get_ref()) {
            Some(Unit::File { path, .. }) => {
                units.links.insert(format!("{LINKS}/default.target"), path.clone());
            }
            _ => {
                return Err(
                    recipe.error(target, format!("`default-target`: the image has no unit `{}`", target.get_ref()))
                );
            }
        }
    }
    for (link, target) in &units.links {
        let path = ImagePath::from_recipe(link).expect("made of unit names");
        tree.insert(&path, Node::Symlink { target: target.as_bytes().to_vec() }, Meta::root(0o777), origin)?;
    }
    Ok(())
}

/// The regular files (with their text, up to 1 MiB) and symlinks (with their targets) directly
/// in `dir`.
fn list_dir(tree: &mut Tree, spool: &Spool, dir: &str, origin: Origin) -> Result<Vec<(String, Listed)>> {
    let mut out = Vec::new();
    for (name, path, listed) in system::list_dir(tree, dir, origin) {
        match listed {
            system::Listed::File(content) if content.size <= 1 << 20 => {
                let text = String::from_utf8_lossy(&system::read_bytes(&content, spool, &path)?).into_owned();
                out.push((name, Listed::File(text)));
            }
            system::Listed::Symlink(target) => out.push((name, Listed::Symlink(target))),
            system::Listed::File(_) => {}
        }
    }
    Ok(out)
}

/// A unit or preset folder's file (its text) or symlink (its target).
enum Listed {
    File(String),
    Symlink(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_install_section_is_read_as_systemd_reads_it() {
        let install = install_section(
            "[Unit]\nWantedBy=not-this.target\n[Install]\nWantedBy=a.target b.target\nWantedBy=\nWantedBy=c.target\n\
             Alias=x.service\nAlso=y.socket\n# WantedBy=d.target\nDefaultInstance=tty1\n",
        );
        assert_eq!(install.wanted_by, ["c.target"]);
        assert_eq!(install.alias, ["x.service"]);
        assert_eq!(install.also, ["y.socket"]);
        assert_eq!(install.default_instance.as_deref(), Some("tty1"));
        assert!(install_section("[Unit]\nDescription=static\n").is_empty());
    }

    #[test]
    fn templates_and_instances() {
        assert_eq!(template_of("getty@tty2.service"), Some(("getty@.service".into(), "tty2".into())));
        assert_eq!(template_of("getty@.service"), Some(("getty@.service".into(), "".into())));
        assert_eq!(template_of("ssh.service"), None);
    }
}
