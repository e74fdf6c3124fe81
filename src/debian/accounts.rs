//! The accounts of a Debian system, computed as its maintainer scripts would make them, without
//! running any: base-passwd's master files (what its `postinst` copies to `/etc/passwd` and
//! `/etc/group`), the shadow files `pwconv` and `grpconv` make of them, the `sysusers.d` files
//! packages ship (by the rules of `systemd-sysusers`), and the recipe's own users and groups.
//!
//! Ids are allocated as `systemd-sysusers` allocates them on Debian: the highest id in
//! 100..=999 that is free (for a user with a group of its own name, free as both a user and a
//! group id, so the two match), in the order the files (sorted by name) and their lines give
//! the entries, every group before every user. The same inputs always give the same ids.

use super::Malformed;

/// The range system accounts are allocated from (Debian's `SYS_UID_MIN`..`SYS_UID_MAX`).
pub const SYSTEM_IDS: std::ops::RangeInclusive<u32> = 100..=999;
/// The highest id bake allocates (`nobody` is 65534, and 65535 is `(uid_t) -1` on 16 bits).
const MAX_ID: u32 = 65_533;
/// The shell of an account that may not log in.
pub const NOLOGIN: &str = "/usr/sbin/nologin";

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub gecos: String,
    pub home: String,
    pub shell: String,
    /// What `/etc/shadow` holds for it: `*` (no password, base-passwd's) or `!*` (locked,
    /// systemd-sysusers').
    pub locked: &'static str,
}

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub gid: u32,
    pub members: Vec<String>,
    pub locked: &'static str,
}

/// A system's users and groups, in file order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accounts {
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// Ids `r` lines of sysusers.d allow, when any do (otherwise [`SYSTEM_IDS`]).
    ranges: Vec<std::ops::RangeInclusive<u32>>,
}

/// A user to add: what a `u` line or a recipe's `[[user]]` says. `None` is "allocate" or "the
/// default".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewUser {
    pub name: String,
    pub uid: Option<u32>,
    /// Its primary group by name; `None`: a group of the user's own name (made when missing).
    pub group: Option<String>,
    /// Its primary group by number (instead of `group`).
    pub gid: Option<u32>,
    pub gecos: String,
    pub home: Option<String>,
    pub shell: Option<String>,
    /// Supplementary groups, which must exist.
    pub groups: Vec<String>,
}

impl Accounts {
    /// Reads `passwd` and `group` in their `/etc` format (base-passwd's masters are in it too).
    pub fn parse(passwd: &str, group: &str) -> Result<Accounts, Malformed> {
        let mut accounts = Accounts::default();
        for (number, line) in passwd.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || {
                Malformed(format!("passwd line {}: `{line}` is not NAME:PASSWORD:UID:GID:GECOS:HOME:SHELL", number + 1))
            };
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 7 {
                return Err(bad());
            }
            accounts.users.push(User {
                name: f[0].to_string(),
                uid: f[2].parse().map_err(|_| bad())?,
                gid: f[3].parse().map_err(|_| bad())?,
                gecos: f[4].to_string(),
                home: f[5].to_string(),
                shell: f[6].to_string(),
                locked: "*",
            });
        }
        for (number, line) in group.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let bad = || Malformed(format!("group line {}: `{line}` is not NAME:PASSWORD:GID:MEMBERS", number + 1));
            let f: Vec<&str> = line.split(':').collect();
            if f.len() != 4 {
                return Err(bad());
            }
            let members = f[3].split(',').filter(|m| !m.is_empty()).map(str::to_string).collect();
            accounts.groups.push(Group {
                name: f[0].to_string(),
                gid: f[2].parse().map_err(|_| bad())?,
                members,
                locked: "*",
            });
        }
        Ok(accounts)
    }

    pub fn user(&self, name: &str) -> Option<&User> {
        self.users.iter().find(|u| u.name == name)
    }

    pub fn group(&self, name: &str) -> Option<&Group> {
        self.groups.iter().find(|g| g.name == name)
    }

    fn uid_used(&self, id: u32) -> bool {
        self.users.iter().any(|u| u.uid == id)
    }

    fn gid_used(&self, id: u32) -> bool {
        self.groups.iter().any(|g| g.gid == id)
    }

    /// The highest free id of the allowed ranges: free as a user id when `uid`, as a group id
    /// when `gid`.
    fn allocate(&self, uid: bool, gid: bool) -> Option<u32> {
        let ranges = if self.ranges.is_empty() { vec![SYSTEM_IDS] } else { self.ranges.clone() };
        ranges
            .into_iter()
            // Ids a package's `r` line may hand out: never beyond 65533 (65534 is `nobody`).
            .filter_map(|r| {
                (*r.start()..=(*r.end()).min(MAX_ID))
                    .rev()
                    .find(|&id| !((uid && self.uid_used(id)) || (gid && self.gid_used(id))))
            })
            .max()
    }

    /// Adds group `name` (with `gid`, or allocated; `pair`: also free as a user id) unless it
    /// exists; returns its gid.
    pub fn add_group(&mut self, name: &str, gid: Option<u32>, pair: bool) -> Result<u32, String> {
        if let Some(group) = self.group(name) {
            return Ok(group.gid);
        }
        let gid = match gid {
            Some(id) if self.gid_used(id) => {
                let holder = self.groups.iter().find(|g| g.gid == id).map(|g| g.name.clone()).unwrap_or_default();
                return Err(format!("group `{name}`: gid {id} is taken by group `{holder}`"));
            }
            Some(id) => id,
            None => self.allocate(pair, true).ok_or_else(|| format!("group `{name}`: no system group id is free"))?,
        };
        self.groups.push(Group { name: name.to_string(), gid, members: Vec::new(), locked: "!*" });
        Ok(gid)
    }

    /// Adds `user` unless a user of that name exists (then nothing changes). Its group is made
    /// first when it is its own and missing; supplementary groups must exist.
    pub fn add_user(&mut self, user: &NewUser) -> Result<(), String> {
        if self.user(&user.name).is_some() {
            return Ok(());
        }
        let (gid, own_group) = match (&user.group, user.gid) {
            (_, Some(gid)) => (gid, false),
            (Some(group), None) => {
                let found =
                    self.group(group).ok_or_else(|| format!("user `{}`: there is no group `{group}`", user.name))?;
                (found.gid, *group == user.name)
            }
            (None, None) => (self.add_group(&user.name, user.uid.filter(|id| !self.gid_used(*id)), true)?, true),
        };
        let uid = match user.uid {
            Some(id) if self.uid_used(id) => {
                let holder = self.users.iter().find(|u| u.uid == id).map(|u| u.name.clone()).unwrap_or_default();
                return Err(format!("user `{}`: uid {id} is taken by user `{holder}`", user.name));
            }
            Some(id) => id,
            // As systemd-sysusers: the id of the group of its own name, when free as a uid.
            None if own_group && !self.uid_used(gid) => gid,
            None => {
                self.allocate(true, false).ok_or_else(|| format!("user `{}`: no system user id is free", user.name))?
            }
        };
        for group in &user.groups {
            let Some(g) = self.groups.iter_mut().find(|g| g.name == *group) else {
                return Err(format!("user `{}`: there is no group `{group}`", user.name));
            };
            if !g.members.contains(&user.name) {
                g.members.push(user.name.clone());
            }
        }
        self.users.push(User {
            name: user.name.clone(),
            uid,
            gid,
            gecos: user.gecos.clone(),
            home: user.home.clone().unwrap_or_else(|| "/".to_string()),
            shell: user.shell.clone().unwrap_or_else(|| NOLOGIN.to_string()),
            locked: "!*",
        });
        Ok(())
    }

    /// Applies `sysusers.d` files, `(file name, text)`, as `systemd-sysusers` does.
    pub fn apply_sysusers(&mut self, files: &[(String, String)]) -> Result<(), Malformed> {
        self.apply(&parse_sysusers(files)?)
    }

    /// Applies sysusers items, each with where it comes from, as `systemd-sysusers` does:
    /// every group (`g`, and the group an `m` names) in order first, then every user (`u`,
    /// with its own group when it needs one) in order.
    pub fn apply(&mut self, items: &[(String, Item)]) -> Result<(), Malformed> {
        for (_, item) in items {
            if let Item::Range(range) = item {
                self.ranges.push(range.clone());
            }
        }
        for (at, item) in items {
            let result = match item {
                Item::Group { name, gid } => self.add_group(name, *gid, false).map(|_| ()),
                Item::Member { group, .. } => self.add_group(group, None, false).map(|_| ()),
                _ => Ok(()),
            };
            result.map_err(|e| Malformed(format!("{at}: {e}")))?;
        }
        for (at, item) in items {
            let result = match item {
                Item::User(user) => self.add_user(user),
                Item::Member { user, group } => {
                    let g = self.groups.iter_mut().find(|g| g.name == *group).expect("made in the first pass");
                    if !g.members.contains(user) {
                        g.members.push(user.clone());
                    }
                    Ok(())
                }
                _ => Ok(()),
            };
            result.map_err(|e| Malformed(format!("{at}: {e}")))?;
        }
        Ok(())
    }

    /// `/etc/passwd`: passwords in `/etc/shadow` (`x`).
    pub fn passwd(&self) -> String {
        self.users
            .iter()
            .map(|u| format!("{}:x:{}:{}:{}:{}:{}\n", u.name, u.uid, u.gid, u.gecos, u.home, u.shell))
            .collect()
    }

    /// `/etc/group`.
    pub fn group_file(&self) -> String {
        self.groups.iter().map(|g| format!("{}:x:{}:{}\n", g.name, g.gid, g.members.join(","))).collect()
    }

    /// `/etc/shadow`, as `pwconv` writes base-passwd's accounts (`*`, aging 0:99999:7) and
    /// systemd-sysusers its own (`!*`, no aging); `day` is the last change, in days since 1970
    /// (the image's epoch; empty for day 0, which would mean "change at next login").
    pub fn shadow(&self, day: u64) -> String {
        let day = if day == 0 { String::new() } else { day.to_string() };
        self.users
            .iter()
            .map(|u| match u.locked {
                "*" => format!("{}:*:{day}:0:99999:7:::\n", u.name),
                locked => format!("{}:{locked}:{day}::::::\n", u.name),
            })
            .collect()
    }

    /// `/etc/gshadow`.
    pub fn gshadow(&self) -> String {
        self.groups.iter().map(|g| format!("{}:{}::{}\n", g.name, g.locked, g.members.join(","))).collect()
    }
}

/// The items of `sysusers.d` files, `(file name, text)`, in file-name order, each with where it
/// is (`sysusers.d/FILE:LINE`).
pub fn parse_sysusers(files: &[(String, String)]) -> Result<Vec<(String, Item)>, Malformed> {
    let mut sorted: Vec<&(String, String)> = files.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let mut items = Vec::new();
    for (file, text) in sorted {
        for (number, line) in text.lines().enumerate() {
            let at = format!("sysusers.d/{file}:{}", number + 1);
            match parse_sysusers_line(line) {
                Ok(Some(item)) => items.push((at, item)),
                Ok(None) => {}
                Err(what) => return Err(Malformed(format!("{at}: {what}"))),
            }
        }
    }
    Ok(items)
}

/// A line of a sysusers.d file (or a recipe's `[[user]]`, `[[group]]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    User(NewUser),
    Group { name: String, gid: Option<u32> },
    Member { user: String, group: String },
    Range(std::ops::RangeInclusive<u32>),
}

/// Parses one sysusers.d line: `TYPE NAME ID GECOS HOME SHELL`, `"quoted"` fields, `-` for
/// none; comments and blank lines are `None`.
fn parse_sysusers_line(line: &str) -> Result<Option<Item>, String> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let fields = split_fields(line)?;
    let get = |i: usize| fields.get(i).map(String::as_str).filter(|f| *f != "-");
    let kind = get(0).ok_or("no type")?;
    let name = get(1).ok_or_else(|| format!("`{line}` has no name"))?.to_string();
    let number = |text: &str| text.parse::<u32>().map_err(|_| format!("`{text}` is not an id"));
    Ok(Some(match kind {
        "u" | "u!" => {
            // ID: `-`, `UID`, `UID:GID`, `UID:GROUP`, or a path whose owner it takes (bake
            // allocates instead: there is no host file to ask).
            let (uid, group, gid) = match get(2) {
                None => (None, None, None),
                Some(id) if id.starts_with('/') => (None, None, None),
                Some(id) => match id.split_once(':') {
                    Some((uid, g)) => match g.parse::<u32>() {
                        Ok(gid) => (Some(number(uid)?), None, Some(gid)),
                        Err(_) => (Some(number(uid)?), Some(g.to_string()), None),
                    },
                    None => (Some(number(id)?), None, None),
                },
            };
            Item::User(NewUser {
                name,
                uid,
                group,
                gid,
                gecos: get(3).unwrap_or_default().to_string(),
                home: get(4).map(str::to_string),
                shell: get(5).map(str::to_string),
                groups: Vec::new(),
            })
        }
        "g" => Item::Group {
            name,
            gid: match get(2) {
                Some(id) if !id.starts_with('/') => Some(number(id)?),
                _ => None,
            },
        },
        "m" => {
            Item::Member { user: name, group: get(2).ok_or_else(|| format!("`{line}` names no group"))?.to_string() }
        }
        "r" => {
            let range = get(2).ok_or_else(|| format!("`{line}` gives no range"))?;
            let (low, high) = range.split_once('-').unwrap_or((range, range));
            Item::Range(number(low)?..=number(high)?)
        }
        other => return Err(format!("unknown line type `{other}`")),
    }))
}

/// Whitespace-separated fields, a `"..."` field as one.
fn split_fields(line: &str) -> Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut rest = line.trim_start();
    while !rest.is_empty() {
        if let Some(quoted) = rest.strip_prefix('"') {
            let end = quoted.find('"').ok_or_else(|| format!("`{line}` has an unclosed quote"))?;
            fields.push(quoted[..end].to_string());
            rest = quoted[end + 1..].trim_start();
        } else {
            let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
            fields.push(rest[..end].to_string());
            rest = rest[end..].trim_start();
        }
    }
    Ok(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWD: &str = "root:*:0:0:root:/root:/bin/bash\ndaemon:*:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n\
nobody:*:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
    const GROUP: &str = "root:*:0:\ndaemon:*:1:\nshadow:*:42:\nnogroup:*:65534:\n";

    #[test]
    fn base_passwds_masters_become_passwd_and_shadow_as_pwconv_makes_them() {
        let accounts = Accounts::parse(PASSWD, GROUP).unwrap();
        assert_eq!(accounts.passwd().lines().next(), Some("root:x:0:0:root:/root:/bin/bash"));
        assert_eq!(accounts.shadow(19000).lines().next(), Some("root:*:19000:0:99999:7:::"));
        assert_eq!(accounts.shadow(0).lines().next(), Some("root:*::0:99999:7:::"));
        assert_eq!(accounts.group_file().lines().nth(2), Some("shadow:x:42:"));
        assert_eq!(accounts.gshadow().lines().nth(2), Some("shadow:*::"));
    }

    #[test]
    fn sysusers_allocates_from_999_down_groups_first_and_pairs_user_and_group_ids() {
        let mut accounts = Accounts::parse(PASSWD, GROUP).unwrap();
        let files = vec![
            ("systemd-network.conf".to_string(), "u systemd-network - \"systemd Network Management\"\n".to_string()),
            (
                "basic.conf".to_string(),
                "# comment\ng adm 4 -\ng input - -\nu root 0 \"Super User\" /root\nm daemon adm\n".to_string(),
            ),
            ("systemd-journal.conf".to_string(), "g systemd-journal - -\n".to_string()),
        ];
        accounts.apply_sysusers(&files).unwrap();
        let group = |n: &str| accounts.group(n).unwrap().gid;
        assert_eq!(group("adm"), 4);
        // basic.conf's `input` first, then systemd-journal's group, then systemd-network's own.
        assert_eq!(group("input"), 999);
        assert_eq!(group("systemd-journal"), 998);
        assert_eq!(group("systemd-network"), 997);
        let user = accounts.user("systemd-network").unwrap();
        assert_eq!((user.uid, user.gid, user.home.as_str(), user.shell.as_str()), (997, 997, "/", NOLOGIN));
        assert_eq!(accounts.user("root").unwrap().gecos, "root", "an existing user is kept");
        assert_eq!(accounts.group("adm").unwrap().members, ["daemon"]);
        assert!(accounts.shadow(5).contains("systemd-network:!*:5::::::\n"));
    }

    #[test]
    fn recipe_users_clash_by_id_and_need_their_groups() {
        let mut accounts = Accounts::parse(PASSWD, GROUP).unwrap();
        let user = |name: &str| NewUser { name: name.to_string(), ..NewUser::default() };
        assert_eq!(
            accounts.add_user(&NewUser { uid: Some(1), ..user("www") }).unwrap_err(),
            "user `www`: uid 1 is taken by user `daemon`"
        );
        assert_eq!(
            accounts.add_user(&NewUser { group: Some("web".into()), ..user("www") }).unwrap_err(),
            "user `www`: there is no group `web`"
        );
        assert_eq!(
            accounts.add_user(&NewUser { groups: vec!["nope".into()], ..user("www") }).unwrap_err(),
            "user `www`: there is no group `nope`"
        );
        let mut accounts = Accounts::parse(PASSWD, GROUP).unwrap();
        accounts.add_user(&NewUser { groups: vec!["shadow".into()], ..user("www") }).unwrap();
        let www = accounts.user("www").unwrap();
        assert_eq!((www.uid, www.gid), (999, 999));
        assert_eq!(accounts.group("shadow").unwrap().members, ["www"]);
    }

    #[test]
    fn bad_sysusers_lines_name_the_file_and_line() {
        let mut accounts = Accounts::default();
        let err = accounts.apply_sysusers(&[("x.conf".into(), "u ok -\nq what -\n".into())]).unwrap_err();
        assert_eq!(err.0, "sysusers.d/x.conf:2: unknown line type `q`");
        let err = accounts.apply_sysusers(&[("y.conf".into(), "u bad abc\n".into())]).unwrap_err();
        assert_eq!(err.0, "sysusers.d/y.conf:1: `abc` is not an id");
    }
}
