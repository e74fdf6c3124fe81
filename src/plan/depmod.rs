//! What depmod writes for the modules an image carries, computed without running it: the text
//! files (`modules.dep`, `modules.alias`, `modules.softdep`, `modules.symbols`,
//! `modules.devname`) and the binary indexes libkmod reads (`modules.dep.bin`,
//! `modules.alias.bin`, `modules.symbols.bin`, `modules.builtin.bin`,
//! `modules.builtin.alias.bin`).
//!
//! udev loads drivers by alias and `modprobe`/`systemd-modules-load` load modules by name
//! through libkmod, which reads only the binary indexes; busybox's `modprobe` reads the text
//! `modules.dep`. The files are those of kmod 30's depmod (Debian bookworm's) over the same
//! modules, byte for byte, which the tests check against the host's depmod:
//!
//! - modules are listed in `modules.order`'s order; modules it does not list come after, by path
//!   (depmod takes those in directory order);
//! - a module depends on the modules exporting the symbols it leaves undefined (not on
//!   `.modinfo`'s `depends=`, which says the same for a consistent package); the dependencies
//!   in a `modules.dep` line are every module it needs, directly or not, ordered as depmod
//!   orders them: a topological order in which a module comes before those it needs;
//! - `modules.symbols` lists symbols in the order of depmod's hash table (kmod's
//!   `hash_superfast` over 2048 buckets, names sorted within a bucket).

use std::collections::BTreeMap;

use crate::base::error::{Error, Result};
use crate::format::kmod_index::Index;
use crate::source::kernel::{ModInfo, Symbols};

/// One module as depmod sees it.
#[derive(Debug, Clone)]
pub struct Module<'a> {
    /// Its name (`virtio_blk`).
    pub name: &'a str,
    /// Its path below `/lib/modules/VERSION/`.
    pub path: &'a str,
    pub info: &'a ModInfo,
    pub symbols: Symbols,
}

/// The kernel's own lists, as the package ships them (absent ones are empty).
#[derive(Debug, Clone, Copy, Default)]
pub struct KernelLists<'a> {
    pub order: &'a [u8],
    pub builtin: &'a [u8],
    pub builtin_modinfo: &'a [u8],
}

/// depmod's files for `modules`, by file name, in the order depmod writes them.
pub fn files(modules: Vec<Module<'_>>, lists: KernelLists<'_>) -> Result<Vec<(&'static str, Vec<u8>)>> {
    let modules = sort(modules, lists.order);
    let graph = Graph::new(&modules)?;
    let bad = |file: &str, e: crate::format::kmod_index::BadText| Error::input(format!("{file}: {e}"));
    let mut dep = String::new();
    let mut dep_bin = Index::new();
    for (i, module) in modules.iter().enumerate() {
        let mut line = format!("{}:", module.path);
        for d in graph.all_dependencies(i) {
            line.push(' ');
            line.push_str(modules[d].path);
        }
        dep.push_str(&line);
        dep.push('\n');
        dep_bin.insert(module.name, &line, i as u32).map_err(|e| bad("modules.dep.bin", e))?;
    }
    let mut alias = String::from("# Aliases extracted from modules themselves.\n");
    let mut alias_bin = Index::new();
    let mut softdep = String::from("# Soft dependencies extracted from modules themselves.\n");
    let mut devname = String::new();
    for (i, module) in modules.iter().enumerate() {
        for value in &module.info.aliases {
            alias.push_str(&format!("alias {value} {}\n", module.name));
            if let Some(normal) = normalize_alias(value) {
                alias_bin.insert(&normal, module.name, i as u32).map_err(|e| bad("modules.alias.bin", e))?;
            }
        }
        for value in &module.info.softdeps {
            softdep.push_str(&format!("softdep {} {value}\n", module.name));
        }
        if let Some(line) = devname_line(module) {
            if devname.is_empty() {
                devname.push_str("# Device nodes to trigger on-demand module loading.\n");
            }
            devname.push_str(&line);
        }
    }
    let mut symbols = String::from("# Aliases for symbols, used by symbol_request().\n");
    let mut symbols_bin = Index::new();
    for (name, owner) in graph.symbols_in_hash_order() {
        symbols.push_str(&format!("alias symbol:{name} {}\n", modules[owner].name));
        symbols_bin
            .insert(&format!("symbol:{name}"), modules[owner].name, owner as u32)
            .map_err(|e| bad("modules.symbols.bin", e))?;
    }
    let mut builtin_bin = Index::new();
    for line in lists.builtin.split_inclusive(|&b| b == b'\n') {
        if !line.first().is_some_and(u8::is_ascii_alphabetic) {
            continue;
        }
        let text = String::from_utf8_lossy(line);
        let base = text.rsplit('/').next().unwrap_or_default();
        builtin_bin.insert(&module_name(base), "", 0).map_err(|e| bad("modules.builtin.bin", e))?;
    }
    let mut builtin_alias_bin = Index::new();
    for record in lists.builtin_modinfo.split(|&b| b == 0).filter(|r| !r.is_empty()) {
        let text = String::from_utf8_lossy(record);
        let Some((module, rest)) = text.split_once('.') else { continue };
        let Some(("alias", value)) = rest.split_once('=') else { continue };
        if module.is_empty() || value.is_empty() {
            continue;
        }
        if let Some(normal) = normalize_alias(value) {
            builtin_alias_bin.insert(&normal, module, 0).map_err(|e| bad("modules.builtin.alias.bin", e))?;
        }
    }
    Ok(vec![
        ("modules.dep", dep.into_bytes()),
        ("modules.dep.bin", dep_bin.to_bytes()),
        ("modules.alias", alias.into_bytes()),
        ("modules.alias.bin", alias_bin.to_bytes()),
        ("modules.softdep", softdep.into_bytes()),
        ("modules.symbols", symbols.into_bytes()),
        ("modules.symbols.bin", symbols_bin.to_bytes()),
        ("modules.builtin.bin", builtin_bin.to_bytes()),
        ("modules.builtin.alias.bin", builtin_alias_bin.to_bytes()),
        ("modules.devname", devname.into_bytes()),
    ])
}

/// A module file's name as kmod makes it: up to the first `.`, `-` written `_`.
fn module_name(file: &str) -> String {
    file.split('.').next().unwrap_or_default().replace('-', "_")
}

/// Modules in `modules.order`'s order (a later listing of the same module wins), then the
/// unlisted ones by path. A line names a module by its path without a compression suffix.
fn sort<'a>(modules: Vec<Module<'a>>, order: &[u8]) -> Vec<Module<'a>> {
    let mut rank: BTreeMap<String, usize> = BTreeMap::new();
    // depmod ignores a modules.order whose last line lacks its newline.
    if order.is_empty() || order.ends_with(b"\n") {
        for (i, line) in order.split(|&b| b == b'\n').enumerate() {
            rank.insert(String::from_utf8_lossy(line).into_owned(), i);
        }
    }
    let mut keyed: Vec<((usize, usize), &'a str, Module<'a>)> = modules
        .into_iter()
        .map(|m| {
            let position = rank.get(m.path).map_or((1, 0), |&i| (0, i));
            (position, m.path, m)
        })
        .collect();
    keyed.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
    keyed.into_iter().map(|(_, _, m)| m).collect()
}

/// Who exports what, who needs whom, and depmod's topological order.
struct Graph {
    /// Exported symbol -> the (last) module exporting it.
    owners: BTreeMap<String, usize>,
    /// Each module's direct dependencies, sorted by `rank`.
    deps: Vec<Vec<usize>>,
    /// Position in depmod's topological order (modules nothing needs first).
    rank: Vec<usize>,
}

impl Graph {
    fn new(modules: &[Module]) -> Result<Graph> {
        let mut owners = BTreeMap::new();
        for (i, m) in modules.iter().enumerate() {
            for name in &m.symbols.exports {
                owners.insert(name.clone(), i);
            }
        }
        let mut deps: Vec<Vec<usize>> = vec![Vec::new(); modules.len()];
        let mut users = vec![0usize; modules.len()];
        for (i, m) in modules.iter().enumerate() {
            for need in &m.symbols.needs {
                let need = need.strip_prefix('.').unwrap_or(need);
                if let Some(&owner) = owners.get(need).filter(|o| !deps[i].contains(*o)) {
                    deps[i].push(owner);
                    users[owner] += 1;
                }
            }
        }
        // depmod's order: a stack of modules nobody (left) needs, popped from the top.
        let mut stack: Vec<usize> = (0..modules.len()).filter(|&i| users[i] == 0).collect();
        let mut rank = vec![usize::MAX; modules.len()];
        let mut sorted = 0;
        while let Some(m) = stack.pop() {
            rank[m] = sorted;
            sorted += 1;
            for &d in &deps[m] {
                users[d] -= 1;
                if users[d] == 0 {
                    stack.push(d);
                }
            }
        }
        if sorted < modules.len() {
            let cycle: Vec<&str> = (0..modules.len()).filter(|&i| users[i] > 0).map(|i| modules[i].name).collect();
            return Err(Error::input(format!("modules need each other's symbols in a cycle: {}", cycle.join(", "))));
        }
        for list in &mut deps {
            list.sort_by_key(|&d| rank[d]);
        }
        Ok(Graph { owners, deps, rank })
    }

    /// Every module `m` needs, directly or not, in depmod's order.
    fn all_dependencies(&self, m: usize) -> Vec<usize> {
        let mut seen = Vec::new();
        let mut todo = vec![m];
        while let Some(x) = todo.pop() {
            for &d in &self.deps[x] {
                if d != m && !seen.contains(&d) {
                    seen.push(d);
                    todo.push(d);
                }
            }
        }
        seen.sort_by_key(|&d| self.rank[d]);
        seen
    }

    /// Exported symbols in the order depmod's hash table holds them.
    fn symbols_in_hash_order(&self) -> Vec<(&str, usize)> {
        let mut list: Vec<(u32, &str, usize)> = self
            .owners
            .iter()
            .map(|(name, &owner)| (superfast(name.as_bytes()) & 2047, name.as_str(), owner))
            .collect();
        list.sort();
        list.into_iter().map(|(_, name, owner)| (name, owner)).collect()
    }
}

/// kmod's `hash_superfast` (Paul Hsieh's SuperFastHash) of a key, as on x86 (16-bit reads
/// little-endian, single bytes as signed `char`).
fn superfast(key: &[u8]) -> u32 {
    let signed = |b: u8| b as i8 as i32 as u32;
    let half = |at: usize| u16::from_le_bytes([key[at], key[at + 1]]) as u32;
    let mut hash = key.len() as u32;
    let chunks = key.len() / 4;
    for c in 0..chunks {
        hash = hash.wrapping_add(half(4 * c));
        let tmp = (half(4 * c + 2) << 11) ^ hash;
        hash = (hash << 16) ^ tmp;
        hash = hash.wrapping_add(hash >> 11);
    }
    let at = 4 * chunks;
    match key.len() & 3 {
        3 => {
            hash = hash.wrapping_add(half(at));
            hash ^= hash << 16;
            hash ^= signed(key[at + 2]) << 18;
            hash = hash.wrapping_add(hash >> 11);
        }
        2 => {
            hash = hash.wrapping_add(half(at));
            hash ^= hash << 11;
            hash = hash.wrapping_add(hash >> 17);
        }
        1 => {
            hash = hash.wrapping_add(signed(key[at]));
            hash ^= hash << 10;
            hash = hash.wrapping_add(hash >> 1);
        }
        _ => {}
    }
    hash ^= hash << 3;
    hash = hash.wrapping_add(hash >> 5);
    hash ^= hash << 4;
    hash = hash.wrapping_add(hash >> 17);
    hash ^= hash << 25;
    hash = hash.wrapping_add(hash >> 6);
    hash
}

/// An alias as the indexes key it: `-` written `_` outside `[...]` classes; `None` for an
/// unmatched bracket (depmod skips those).
fn normalize_alias(alias: &str) -> Option<String> {
    let mut out = String::with_capacity(alias.len());
    let mut class = false;
    for c in alias.chars() {
        match (c, class) {
            ('[', false) => class = true,
            (']', false) => return None,
            (']', true) => class = false,
            ('-', false) => {
                out.push('_');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    (!class).then_some(out)
}

/// `modules.devname`'s line for a module with a `devname:` alias and a `char-major-` or
/// `block-major-` one (the last of each before both are known, as depmod reads them).
fn devname_line(module: &Module) -> Option<String> {
    let mut devname = None;
    let mut device = None;
    for value in &module.info.aliases {
        if let Some(name) = value.strip_prefix("devname:") {
            devname = Some(name);
        } else if let Some(numbers) = major_minor(value, "char-major-") {
            device = Some(('c', numbers));
        } else if let Some(numbers) = major_minor(value, "block-major-") {
            device = Some(('b', numbers));
        }
        if devname.is_some() && device.is_some() {
            break;
        }
    }
    let (kind, (major, minor)) = device?;
    Some(format!("{} {} {kind}{major}:{minor}\n", module.name, devname?))
}

/// `PREFIX<major>-<minor>...` -> (major, minor), as `sscanf("PREFIX%u-%u")` reads it.
fn major_minor(value: &str, prefix: &str) -> Option<(u32, u32)> {
    let rest = value.strip_prefix(prefix)?;
    let digits = |s: &str| s.bytes().take_while(u8::is_ascii_digit).count();
    let n = digits(rest);
    let major = rest[..n].parse().ok()?;
    let rest = rest[n..].strip_prefix('-')?;
    let m = digits(rest);
    let minor = rest[..m].parse().ok()?;
    Some((major, minor))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(aliases: &[&str]) -> ModInfo {
        ModInfo { aliases: aliases.iter().map(|s| s.to_string()).collect(), ..ModInfo::default() }
    }

    fn symbols(exports: &[&str], needs: &[&str]) -> Symbols {
        Symbols {
            exports: exports.iter().map(|s| s.to_string()).collect(),
            needs: needs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn aliases_are_normalised_outside_bracket_classes_only() {
        assert_eq!(normalize_alias("pci:v00001AF4d*sv*sd*bc*sc*i*").unwrap(), "pci:v00001AF4d*sv*sd*bc*sc*i*");
        assert_eq!(normalize_alias("fs-erofs").unwrap(), "fs_erofs");
        assert_eq!(normalize_alias("acpi*:PNP0C0C:*-[a-z]*").unwrap(), "acpi*:PNP0C0C:*_[a-z]*");
        assert_eq!(normalize_alias("x[a-b"), None);
        assert_eq!(normalize_alias("x]"), None);
    }

    #[test]
    fn the_hash_is_kmods() {
        // Values printed by kmod 30's own hash_superfast (shared/hash.c, compiled with gcc on
        // x86-64) for these keys: every remainder class, and bytes past ASCII read as signed.
        let known: [(&[u8], u32); 7] = [
            (b"a", 291415938),
            (b"ab", 1366002500),
            (b"abc", 3535673738),
            (b"abcd", 3671636187),
            (b"abcde", 1374488366),
            (b"virtio_check_driver_offered_feature", 2380233748),
            (b"\xe9t\xe9", 1774056205),
        ];
        for (key, hash) in known {
            assert_eq!(superfast(key), hash, "{}", String::from_utf8_lossy(key));
        }
    }

    #[test]
    fn dependencies_follow_symbols_and_depmods_order() {
        let (a, b, c) = (info(&[]), info(&["devname:vhost-net", "char-major-10-238"]), info(&[]));
        let modules = vec![
            Module {
                name: "virtio_net",
                path: "kernel/net/virtio_net.ko",
                info: &a,
                symbols: symbols(&[], &["vring_x", "virtio_y", "printk"]),
            },
            Module {
                name: "virtio_ring",
                path: "kernel/virtio/virtio_ring.ko",
                info: &b,
                symbols: symbols(&["vring_x"], &["virtio_y"]),
            },
            Module { name: "virtio", path: "kernel/virtio/virtio.ko", info: &c, symbols: symbols(&["virtio_y"], &[]) },
        ];
        let order = b"kernel/virtio/virtio.ko\nkernel/virtio/virtio_ring.ko\nkernel/net/virtio_net.ko\n";
        let files = files(modules, KernelLists { order, ..KernelLists::default() }).unwrap();
        let dep = String::from_utf8(files[0].1.clone()).unwrap();
        assert_eq!(
            dep,
            "kernel/virtio/virtio.ko:\nkernel/virtio/virtio_ring.ko: kernel/virtio/virtio.ko\n\
             kernel/net/virtio_net.ko: kernel/virtio/virtio_ring.ko kernel/virtio/virtio.ko\n"
        );
        let devname = String::from_utf8(files[9].1.clone()).unwrap();
        assert_eq!(devname, "# Device nodes to trigger on-demand module loading.\nvirtio_ring vhost-net c10:238\n");
    }

    #[test]
    fn a_cycle_of_symbols_is_an_error() {
        let i = info(&[]);
        let modules = vec![
            Module { name: "a", path: "a.ko", info: &i, symbols: symbols(&["x"], &["y"]) },
            Module { name: "b", path: "b.ko", info: &i, symbols: symbols(&["y"], &["x"]) },
        ];
        let err = files(modules, KernelLists::default()).unwrap_err();
        assert!(err.to_string().contains("cycle"), "{err}");
    }
}
