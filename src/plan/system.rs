//! What a Debian system's maintainer scripts would have made, made instead from what the
//! layers laid in and what the recipe says: the accounts ([`crate::debian::accounts`]).

use std::io::Read;

use super::tree::{Entry, Origin, Tree};
use crate::base::error::{Error, Result};
use crate::base::path::ImagePath;
use crate::debian::accounts::{Accounts, Item, NewUser, parse_sysusers};
use crate::recipe::RecipeFile;
use crate::source::content::{Content, Spool};
use crate::source::{Meta, Node};

/// Where base-passwd keeps the accounts its `postinst` copies to `/etc`.
const PASSWD_MASTER: &str = "/usr/share/base-passwd/passwd.master";
const GROUP_MASTER: &str = "/usr/share/base-passwd/group.master";
/// Where packages and the administrator put sysusers.d files (a later folder's file replaces
/// an earlier one's of the same name).
const SYSUSERS_DIRS: [&str; 2] = ["/usr/lib/sysusers.d", "/etc/sysusers.d"];

/// Writes `/etc/passwd`, `/etc/group`, `/etc/shadow` and `/etc/gshadow` when the image has
/// accounts to make: base-passwd's masters, sysusers.d files, or the recipe's `[[user]]` and
/// `[[group]]`. Starts from the layers' own `/etc/passwd` and `/etc/group` when they laid
/// both in. Returns the accounts, for owners given by name.
pub fn place_accounts(tree: &mut Tree, spool: &Spool, recipe: &RecipeFile, epoch: u64) -> Result<Option<Accounts>> {
    let origin = tree.origin("the accounts (base-passwd, sysusers.d, `[[user]]`, `[[group]]`)".to_string());
    let read = |tree: &mut Tree, path: &str| read_file(tree, spool, path, origin);
    let masters = (read(tree, PASSWD_MASTER)?, read(tree, GROUP_MASTER)?);
    let mut sysusers: Vec<(String, String)> = Vec::new();
    for dir in SYSUSERS_DIRS {
        for (name, text) in read_dir(tree, spool, dir, origin)? {
            if name.ends_with(".conf") {
                sysusers.retain(|(n, _)| *n != name);
                sysusers.push((name, text));
            }
        }
    }
    let r = &recipe.recipe;
    if masters.0.is_none() && sysusers.is_empty() && r.users.is_empty() && r.groups.is_empty() {
        return Ok(None);
    }
    let existing = (read(tree, "/etc/passwd")?, read(tree, "/etc/group")?);
    let (passwd, group) = match (existing, masters) {
        ((Some(p), Some(g)), _) => (p, g),
        (_, (Some(p), Some(g))) => (p, g),
        _ => (String::new(), String::new()),
    };
    let mut accounts =
        Accounts::parse(&passwd, &group).map_err(|e| Error::input(format!("the image's accounts: {e}")))?;
    let mut items = parse_sysusers(&sysusers).map_err(|e| Error::input(format!("the image's {e}")))?;
    // The recipe's accounts come last, as one more sysusers.d file would; a name the packages
    // define already is a clash, not a no-op.
    let defined = |items: &[(String, Item)], user: bool, name: &str| {
        let by_packages = items.iter().any(|(_, item)| match item {
            Item::User(u) => u.name == name,
            Item::Group { name: g, .. } => !user && g == name,
            _ => false,
        });
        by_packages || if user { accounts.user(name).is_some() } else { accounts.group(name).is_some() }
    };
    let packages_items = items.len();
    for group in &r.groups {
        let g = group.get_ref();
        if defined(&items, false, &g.name) {
            let by = if defined(&items[..packages_items], false, &g.name) { "the packages" } else { "the recipe" };
            return Err(recipe.error(group, format!("group `{}` is defined already, by {by}", g.name)));
        }
        items.push((recipe.at(group.span().start), Item::Group { name: g.name.clone(), gid: g.gid }));
    }
    for user in &r.users {
        let u = user.get_ref();
        if defined(&items, true, &u.name) {
            let by = if defined(&items[..packages_items], true, &u.name) { "the packages" } else { "the recipe" };
            return Err(recipe.error(user, format!("user `{}` is defined already, by {by}", u.name)));
        }
        let new = NewUser {
            name: u.name.clone(),
            uid: u.uid,
            group: u.group.clone(),
            gid: u.gid,
            gecos: u.gecos.clone(),
            home: u.home.clone(),
            shell: u.shell.clone(),
            groups: u.groups.clone(),
        };
        items.push((recipe.at(user.span().start), Item::User(new)));
    }
    accounts.apply(&items).map_err(|e| Error::input(e.to_string()))?;
    let shadow_gid = accounts.group("shadow").map(|g| g.gid);
    let day = epoch / 86_400;
    let files = [
        ("/etc/passwd", accounts.passwd(), Meta::root(0o644)),
        ("/etc/group", accounts.group_file(), Meta::root(0o644)),
        ("/etc/shadow", accounts.shadow(day), secret(shadow_gid)),
        ("/etc/gshadow", accounts.gshadow(), secret(shadow_gid)),
    ];
    let path = |p: &str| ImagePath::from_recipe(p).expect("a plain absolute path");
    if tree.get(&path("/etc")).is_none() {
        tree.insert(&path("/etc"), Node::Dir, Meta::root(0o755), origin)?;
    }
    for (name, text, meta) in files {
        tree.insert(&path(name), Node::File { content: Content::inline(text.as_bytes()) }, meta, origin)?;
    }
    Ok(Some(accounts))
}

/// `/bin/sh -> dash`, which dash's `postinst` makes, when dash is in the image and nothing
/// else is `/bin/sh`.
pub fn place_shell(tree: &mut Tree) -> Result<()> {
    let origin = tree.origin("the /bin/sh link dash's postinst makes".to_string());
    let path = |p: &str| ImagePath::from_recipe(p).expect("a plain absolute path");
    if tree.holds(&path("/bin/dash"), origin) && !tree.holds(&path("/bin/sh"), origin) {
        tree.insert(&path("/bin/sh"), Node::Symlink { target: b"dash".to_vec() }, Meta::root(0o777), origin)?;
    }
    Ok(())
}

/// The owner and mode of the shadow files: root and group `shadow`, 0640, as Debian's `passwd`
/// package sets them; 0600 without such a group.
fn secret(shadow_gid: Option<u32>) -> Meta {
    match shadow_gid {
        Some(gid) => Meta { mode: 0o640, uid: 0, gid },
        None => Meta::root(0o600),
    }
}

/// The text of the regular file at `path` (through symlinks), if there is one.
fn read_file(tree: &mut Tree, spool: &Spool, path: &str, origin: Origin) -> Result<Option<String>> {
    let path = ImagePath::from_recipe(path).expect("a plain absolute path");
    let Some(physical) = tree.physical(&path, origin) else { return Ok(None) };
    let Some(Entry { node: Node::File { content }, .. }) = tree.get(&physical) else { return Ok(None) };
    text(content, spool, &path).map(Some)
}

/// The bytes of the regular file at `path` (through symlinks), if there is one.
pub(super) fn read_file_bytes(tree: &mut Tree, spool: &Spool, path: &str, origin: Origin) -> Result<Option<Vec<u8>>> {
    let path = ImagePath::from_recipe(path).expect("a plain absolute path");
    let Some(physical) = tree.physical(&path, origin) else { return Ok(None) };
    let Some(Entry { node: Node::File { content }, .. }) = tree.get(&physical) else { return Ok(None) };
    let content = content.clone();
    read_bytes(&content, spool, &path).map(Some)
}

/// The regular files directly in the directory `dir`, by name, with their text.
fn read_dir(tree: &mut Tree, spool: &Spool, dir: &str, origin: Origin) -> Result<Vec<(String, String)>> {
    let mut files = Vec::new();
    for (name, path, listed) in list_dir(tree, dir, origin) {
        if let Listed::File(content) = listed {
            files.push((name, text(&content, spool, &path)?));
        }
    }
    Ok(files)
}

/// What a folder of the image holds directly, besides folders.
pub(super) enum Listed {
    File(Content),
    /// A symlink, with its target.
    Symlink(String),
}

/// The regular files and symlinks directly in the directory `dir` (through symlinks), by name
/// and path, in name order.
pub(super) fn list_dir(tree: &mut Tree, dir: &str, origin: Origin) -> Vec<(String, ImagePath, Listed)> {
    let dir = ImagePath::from_recipe(dir).expect("a plain absolute path");
    let Some(physical) = tree.resolve_dir(&dir, origin) else { return Vec::new() };
    let mut out = Vec::new();
    for (path, entry) in tree.children(&physical) {
        let listed = match &entry.node {
            Node::File { content } => Listed::File(content.clone()),
            Node::Symlink { target } => Listed::Symlink(String::from_utf8_lossy(target).into_owned()),
            _ => continue,
        };
        out.push((String::from_utf8_lossy(path.file_name()).into_owned(), path.clone(), listed));
    }
    out
}

/// The bytes of the file `content` at `path` in the image.
pub(super) fn read_bytes(content: &Content, spool: &Spool, path: &ImagePath) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    content.open(spool)?.read_to_end(&mut bytes).map_err(|e| {
        Error::failure(format!("cannot read `/{}` from the image: {e}", String::from_utf8_lossy(path.as_bytes())))
    })?;
    Ok(bytes)
}

fn text(content: &Content, spool: &Spool, path: &ImagePath) -> Result<String> {
    let shown = String::from_utf8_lossy(path.as_bytes()).into_owned();
    if content.size > 16 << 20 {
        return Err(Error::input(format!("`/{shown}` is {} bytes: too large for an account file", content.size)));
    }
    String::from_utf8(read_bytes(content, spool, path)?)
        .map_err(|_| Error::input(format!("`/{shown}` in the image is not UTF-8")))
}
