//! The rest of what a Debian system's maintainer scripts make on a fresh install, made from the
//! files the packages laid in (each only when that package's files are there, and never over
//! an entry the layers already hold):
//!
//! - base-files' `postinst`: `/etc/profile`, `/root/.profile`, `/root/.bashrc`, `/etc/motd` and
//!   `/usr/share/info/dir` from `/usr/share/base-files/`; `/mnt`, `/srv`, `/opt`, `/media`,
//!   `/etc/opt`, `/var/opt`, `/var/mail` (2775, group mail), `/run/lock` (1777) and
//!   `/usr/local/*`; `/var/run -> /run` and `/var/lock -> /run/lock` in place of the empty
//!   directories the package ships; `/var/spool/mail -> ../mail`, `/usr/local/man -> share/man`,
//!   `/etc/dpkg/origins/default -> debian`; empty `/var/log/wtmp`, `btmp`, `lastlog` (group utmp);
//! - libc-bin's: `/etc/nsswitch.conf` from `/usr/share/libc-bin/nsswitch.conf`;
//! - debianutils': `/etc/shells` and `/var/lib/shells.state` ([`crate::debian::shells`]);
//! - tzdata's, as a fresh install without answers leaves it: `/etc/timezone` `Etc/UTC`,
//!   `/etc/localtime -> /usr/share/zoneinfo/Etc/UTC`;
//! - libpam-runtime's (`pam-auth-update`): `/etc/pam.d/common-*` and `/var/lib/pam/*`
//!   ([`crate::debian::pam`]), unless a layer laid in any of `/etc/pam.d/common-*`;
//! - login's: empty `/etc/subuid`, `/etc/subgid` and `/var/log/faillog`; libpam-modules':
//!   empty `/etc/environment` and `/etc/security/opasswd` (0600);
//! - every package's `update-alternatives --install` ([`crate::debian::alternatives`]).

use super::system::{read_bytes, read_file_bytes};
use super::tree::{Entry, Origin, Tree};
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::debian::accounts::Accounts;
use crate::debian::alternatives::{self, Install};
use crate::debian::{pam, shells};
use crate::source::content::{Content, Spool};
use crate::source::{Meta, Node};

fn path(p: &str) -> ImagePath {
    ImagePath::from_recipe(p).expect("a plain absolute path")
}

/// Does all of the module's work; `packages` are the names and `postinst` scripts of the
/// packages installed, in the order they were laid in.
pub fn place(
    tree: &mut Tree,
    spool: &Spool,
    accounts: Option<&Accounts>,
    packages: &[(&str, Option<&[u8]>)],
) -> Result<()> {
    base_files(tree, accounts)?;
    libc_bin(tree)?;
    debianutils(tree, spool)?;
    tzdata(tree)?;
    pam(tree, spool)?;
    let has = |name: &str| packages.iter().any(|(n, _)| *n == name);
    let mut empty_files: Vec<(&str, u32)> = Vec::new();
    if has("login") {
        empty_files.extend([("/etc/subuid", 0o644), ("/etc/subgid", 0o644), ("/var/log/faillog", 0o644)]);
    }
    if has("libpam-modules") {
        empty_files.extend([("/etc/environment", 0o644), ("/etc/security/opasswd", 0o600)]);
    }
    let origin = tree.origin("the empty files login's and libpam-modules' postinst scripts make".to_string());
    for (file, mode) in empty_files {
        if !tree.holds(&path(file), origin) {
            tree.insert(&path(file), Node::File { content: Content::inline(b"") }, Meta::root(mode), origin)?;
        }
    }
    let installs: Vec<Install> = packages
        .iter()
        .filter_map(|(_, script)| *script)
        .flat_map(|s| alternatives::parse_script(&String::from_utf8_lossy(s)))
        .collect();
    place_alternatives(tree, &installs)
}

/// The entry at `p` (parents through symlinks, the last name as it is).
fn entry(tree: &mut Tree, p: &str, origin: Origin) -> Option<Entry> {
    let physical = tree.physical(&path(p), origin)?;
    tree.get(&physical).cloned()
}

/// Copies the regular file `from` to `to` with its bits and owner (`cp -p`), unless `to` is a
/// regular file already.
fn copy_default(tree: &mut Tree, from: &str, to: &str, origin: Origin) -> Result<()> {
    let Some(Entry { node: node @ Node::File { .. }, meta, .. }) = entry(tree, from, origin) else { return Ok(()) };
    if matches!(entry(tree, to, origin), Some(Entry { node: Node::File { .. }, .. })) {
        return Ok(());
    }
    tree.insert(&path(to), node, meta, origin).map(|_| ())
}

/// A directory at `p` with `meta`, unless something is there.
fn directory(tree: &mut Tree, p: &str, meta: Meta, origin: Origin) -> Result<()> {
    if !tree.holds(&path(p), origin) {
        tree.insert(&path(p), Node::Dir, meta, origin)?;
    }
    Ok(())
}

/// A symlink at `p`, unless something other than an empty directory is there.
fn symlink(tree: &mut Tree, p: &str, target: &str, origin: Origin) -> Result<()> {
    let link = Node::Symlink { target: target.as_bytes().to_vec() };
    match entry(tree, p, origin) {
        None => {}
        Some(Entry { node: Node::Dir, .. }) => {
            let physical = tree.physical(&path(p), origin).expect("just found");
            if tree.children(&physical).next().is_some() {
                return Ok(());
            }
            tree.remove(&physical);
        }
        Some(_) => return Ok(()),
    }
    tree.insert(&path(p), link, Meta::root(0o777), origin).map(|_| ())
}

fn base_files(tree: &mut Tree, accounts: Option<&Accounts>) -> Result<()> {
    let origin = tree.origin("what base-files' postinst makes".to_string());
    if !tree.holds(&path("/usr/share/base-files/profile"), origin) {
        return Ok(());
    }
    let gid = |name: &str| accounts.and_then(|a| a.group(name)).map_or(0, |g| g.gid);
    for (from, to) in [
        ("dot.profile", "/root/.profile"),
        ("dot.bashrc", "/root/.bashrc"),
        ("profile", "/etc/profile"),
        ("motd", "/etc/motd"),
    ] {
        copy_default(tree, &format!("/usr/share/base-files/{from}"), to, origin)?;
    }
    let root = |mode| Meta::root(mode);
    for dir in ["/mnt", "/srv", "/opt", "/etc/opt", "/var/opt", "/media"] {
        directory(tree, dir, root(0o755), origin)?;
    }
    directory(tree, "/var/mail", Meta { mode: 0o2775, uid: 0, gid: gid("mail") }, origin)?;
    symlink(tree, "/var/spool/mail", "../mail", origin)?;
    directory(tree, "/run/lock", root(0o1777), origin)?;
    symlink(tree, "/var/run", "/run", origin)?;
    symlink(tree, "/var/lock", "/run/lock", origin)?;
    for dir in ["", "/share", "/share/man", "/bin", "/games", "/lib", "/include", "/sbin", "/src", "/etc"] {
        directory(tree, &format!("/usr/local{dir}"), root(0o755), origin)?;
    }
    symlink(tree, "/usr/local/man", "share/man", origin)?;
    let utmp = gid("utmp");
    for (log, mode) in [("/var/log/wtmp", 0o664), ("/var/log/btmp", 0o660), ("/var/log/lastlog", 0o664)] {
        if !tree.holds(&path(log), origin) {
            let empty = Node::File { content: Content::inline(b"") };
            tree.insert(&path(log), empty, Meta { mode, uid: 0, gid: utmp }, origin)?;
        }
    }
    let info_dir = matches!(entry(tree, "/usr/share/info", origin), Some(Entry { node: Node::Dir, .. }));
    if info_dir && !tree.holds(&path("/usr/info/dir"), origin) {
        copy_default(tree, "/usr/share/base-files/info.dir", "/usr/share/info/dir", origin)?;
    }
    if tree.holds(&path("/etc/dpkg/origins/debian"), origin) && !tree.holds(&path("/etc/dpkg/origins/default"), origin)
    {
        symlink(tree, "/etc/dpkg/origins/default", "debian", origin)?;
    }
    Ok(())
}

fn libc_bin(tree: &mut Tree) -> Result<()> {
    let origin = tree.origin("what libc-bin's postinst makes".to_string());
    copy_default(tree, "/usr/share/libc-bin/nsswitch.conf", "/etc/nsswitch.conf", origin)
}

fn debianutils(tree: &mut Tree, spool: &Spool) -> Result<()> {
    let origin = tree.origin("what debianutils' update-shells makes".to_string());
    let Some(template) = read_file_bytes(tree, spool, "/usr/share/debianutils/shells", origin)? else { return Ok(()) };
    let existing = read_file_bytes(tree, spool, "/etc/shells", origin)?;
    let mut packaged = Vec::new();
    for (_, file, listed) in super::system::list_dir(tree, "/usr/share/debianutils/shells.d", origin) {
        if let super::system::Listed::File(content) = listed {
            packaged.push(String::from_utf8_lossy(&read_bytes(&content, spool, &file)?).into_owned());
        }
    }
    let mut real_dir = |dir: &str| match tree.resolve_dir(&path(dir), origin) {
        Some(real) => real.display(),
        None => dir.to_string(),
    };
    let text = |b: &Option<Vec<u8>>| b.as_ref().map(|b| String::from_utf8_lossy(b).into_owned());
    let (etc, state) = shells::update_shells(
        text(&existing).as_deref(),
        &String::from_utf8_lossy(&template),
        &packaged,
        &mut real_dir,
    );
    let file = |text: String| Node::File { content: Content::inline(text.as_bytes()) };
    tree.insert(&path("/etc/shells"), file(etc), Meta::root(0o644), origin)?;
    tree.insert(&path("/var/lib/shells.state"), file(state), Meta::root(0o644), origin)?;
    Ok(())
}

fn pam(tree: &mut Tree, spool: &Spool) -> Result<()> {
    let origin = tree.origin("what libpam-runtime's pam-auth-update makes".to_string());
    let mut templates = Vec::new();
    for kind in pam::TYPES {
        let Some(text) = read_file_bytes(tree, spool, &format!("{}/common-{kind}", pam::TEMPLATE_DIR), origin)? else {
            return Ok(());
        };
        if tree.holds(&path(&format!("/etc/pam.d/common-{kind}")), origin) {
            return Ok(());
        }
        templates.push((kind.to_string(), String::from_utf8_lossy(&text).into_owned()));
    }
    let mut profiles = Vec::new();
    for (name, file, listed) in super::system::list_dir(tree, pam::PROFILE_DIR, origin) {
        if let super::system::Listed::File(content) = listed {
            let text = String::from_utf8_lossy(&read_bytes(&content, spool, &file)?).into_owned();
            let profile = pam::parse_profile(&name, &text)
                .map_err(|e| Error::input(format!("the image's PAM profile `{}/{name}`: {e}", pam::PROFILE_DIR)))?;
            profiles.push(profile);
        }
    }
    let files = pam::files(&profiles, &templates).map_err(|e| Error::input(format!("the image's PAM stack: {e}")))?;
    for (file, bytes) in files {
        let content = Content::inline(&bytes);
        tree.insert(&path(&file), Node::File { content }, Meta::root(pam::MODE), origin)?;
    }
    Ok(())
}

fn tzdata(tree: &mut Tree) -> Result<()> {
    let origin = tree.origin("what tzdata's postinst makes".to_string());
    if !tree.holds(&path("/usr/share/zoneinfo/Etc/UTC"), origin) {
        return Ok(());
    }
    if !tree.holds(&path("/etc/timezone"), origin) {
        let content = Content::inline(b"Etc/UTC\n");
        tree.insert(&path("/etc/timezone"), Node::File { content }, Meta::root(0o644), origin)?;
    }
    if !tree.holds(&path("/etc/localtime"), origin) {
        symlink(tree, "/etc/localtime", "/usr/share/zoneinfo/Etc/UTC", origin)?;
    }
    Ok(())
}

fn place_alternatives(tree: &mut Tree, installs: &[Install]) -> Result<()> {
    let origin = tree.origin("the alternatives the packages' postinst scripts install".to_string());
    let groups = alternatives::groups(installs).map_err(|e| Error::input(format!("the image's alternatives: {e}")))?;
    let record_dir = tree.holds(&path("/var/lib/dpkg"), origin).then(|| path("/var/lib/dpkg/alternatives"));
    for group in groups {
        let Some(best) = group.best().cloned() else { continue };
        // update-alternatives refuses a choice whose file is not there ([remove] took it).
        if !tree.holds(&path(&best.path), origin) {
            continue;
        }
        directory(tree, "/etc/alternatives", Meta::root(0o755), origin)?;
        let mut links = vec![(group.link.clone(), group.name.clone(), best.path.clone())];
        for ((name, link), file) in group.slaves.iter().zip(&best.slave_paths) {
            if let Some(file) = file.as_ref().filter(|f| tree.holds(&path(f), origin)) {
                links.push((link.clone(), name.clone(), file.clone()));
            }
        }
        for (link, name, file) in links {
            let alternative = format!("/etc/alternatives/{name}");
            if !tree.holds(&path(&alternative), origin) {
                symlink(tree, &alternative, &file, origin)?;
            }
            if !tree.holds(&path(&link), origin) {
                symlink(tree, &link, &alternative, origin)?;
            }
        }
        if let Some(dir) = &record_dir {
            if !tree.holds(dir, origin) {
                tree.insert(dir, Node::Dir, Meta::root(0o755), origin)?;
            }
            let content = Content::inline(group.record().as_bytes());
            let record = path(&format!("/var/lib/dpkg/alternatives/{}", group.name));
            tree.insert(&record, Node::File { content }, Meta::root(0o644), origin)?;
        }
    }
    Ok(())
}
