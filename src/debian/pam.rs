//! The PAM stack libpam-runtime's `postinst` writes, computed without running it. On a fresh
//! install that script runs `pam-auth-update --package --force`, which reads the profiles
//! packages ship in `/usr/share/pam-configs/`, enables the ones marked `Default: yes` (nothing
//! has been answered in debconf or recorded as seen yet), and writes
//! `/etc/pam.d/common-{auth,account,password,session,session-noninteractive}` from the
//! templates in `/usr/share/pam/`, plus what it compares against on its next run: in
//! `/var/lib/pam`, `seen` and one file per type. Every file is mode 0644 ([`MODE`]).
//!
//! The rules, as `pam-auth-update` applies them:
//!
//! - A profile is an RFC 822-like file: `Field: value` lines (a field name ending in `-Final`
//!   loses it), and the lines after one, trimmed, are more lines of its value; `Conflicts`
//!   lists profile names, split at `, `. A profile any of whose values (as read so far, when a
//!   value line is read) mentions `pam_tally` is ignored, as are files whose names end in `~`
//!   or look like `#…#`. Unless `Session-Interactive-Only` is given (with any value), the
//!   `Session` fields also serve `session-noninteractive`.
//! - Profiles are sorted by `Priority` (a number, missing is 0) descending, then by name
//!   descending; `seen` lists every profile so, one name a line.
//! - The enabled ones, in that order, are those with `Default: yes` exactly. Then, until a pass
//!   removes nothing, each enabled profile in turn removes every enabled profile its
//!   `Conflicts` names (whichever comes first wins, whatever its priority).
//! - For each type, the `…-Type` field (`Auth-Type`, …) puts a profile's lines in the
//!   "Primary" block (modules that jump past the fallback on success) or the "Additional"
//!   one; the first profile of each block uses its `…-Initial` lines when it has them.
//! - Each line is written as `TYPE<TAB>CONTROL MODULE ARGS…` (one space between the arguments,
//!   and one after the module even when there are none), where every `end` in the control and
//!   module words becomes the number of lines left in the block, counting this one (one fewer
//!   in the "Additional" block), so that `success=end` jumps past the fallback. An empty
//!   "Primary" block is `TYPE<TAB>[default=1]<TAB><TAB><TAB>pam_permit.so`.
//! - The blocks replace whatever the template holds after the line starting
//!   `# here are the per-package modules (the "Primary" block)` up to the line starting
//!   `# here's the fallback if no module succeeds`, and after
//!   `# and here are more per-package modules (the "Additional" block)` up to
//!   `# end of pam-auth-update config`.
//! - `/var/lib/pam/TYPE` holds, for each profile of the type (the "Primary" ones first, then
//!   `Module: null` and the `pam_permit.so` line when there are none, then the "Additional"
//!   ones), `Module: NAME` and the profile's lines as written in it, `end` untouched.

use std::collections::{BTreeMap, BTreeSet};

use super::Malformed;

/// Where packages ship their profiles.
pub const PROFILE_DIR: &str = "/usr/share/pam-configs";
/// Where libpam-runtime ships the templates, `common-TYPE`.
pub const TEMPLATE_DIR: &str = "/usr/share/pam";
/// The mode of every file [`files`] returns.
pub const MODE: u32 = 0o644;
/// The types of PAM stack `pam-auth-update` manages, in the order it writes them.
pub const TYPES: [&str; 5] = ["auth", "account", "password", "session", "session-noninteractive"];

const PRIMARY_MARK: &str = "# here are the per-package modules (the \"Primary\" block)";
const FALLBACK_MARK: &str = "# here's the fallback if no module succeeds";
const ADDITIONAL_MARK: &str = "# and here are more per-package modules (the \"Additional\" block)";
const END_MARK: &str = "# end of pam-auth-update config";

/// A parsed `/usr/share/pam-configs/NAME` file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    /// The file's name, which names the profile in `Conflicts`, `seen` and the state files.
    pub name: String,
    /// Each field's value, its lines joined by `\n` (with `-Final` dropped from names, and the
    /// `Session-noninteractive…` fields copied from the `Session…` ones when they apply).
    fields: BTreeMap<String, String>,
    /// The profiles its `Conflicts` field names.
    conflicts: BTreeSet<String>,
}

impl Profile {
    /// A field's value as `pam-auth-update` holds it: its lines, trimmed, joined by `\n`.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }

    /// Whether `pam-auth-update` enables it on a fresh install (before conflicts are removed).
    pub fn default_enabled(&self) -> bool {
        self.field("Default") == Some("yes")
    }

    /// Whether `pam-auth-update` drops it as it reads it (`pam_tally`, a `disabled` field).
    fn ignored(&self) -> bool {
        truthy(self.field("disabled"))
    }

    /// The lines for `kind` (`Auth`, …) of the profile at `position` in its block.
    fn lines(&self, kind: &str, position: usize) -> Option<&str> {
        let initial = self.field(&format!("{kind}-Initial"));
        if position == 0 && truthy(initial) { initial } else { self.field(kind) }
    }
}

/// Reads the profile file `name` of `/usr/share/pam-configs/`.
pub fn parse_profile(name: &str, text: &str) -> Result<Profile, Malformed> {
    let mut fields: BTreeMap<String, String> = BTreeMap::new();
    let mut conflicts = BTreeSet::new();
    // The field value lines add to; before any field pam-auth-update files them under "".
    let mut current = String::new();
    for raw in text.split_inclusive('\n') {
        if let Some((field, value)) = field_line(raw) {
            let field = field.strip_suffix("-Final").unwrap_or(field);
            if field == "Conflicts" {
                conflicts.extend(perl_split(value, ", ").into_iter().map(str::to_owned));
            } else {
                fields.insert(field.to_owned(), value.to_owned());
            }
            current = field.to_owned();
            continue;
        }
        let line = raw.strip_suffix('\n').unwrap_or(raw).trim_matches(is_space);
        if current == "Conflicts" {
            if truthy(Some(line)) {
                return Err(Malformed(format!(
                    "PAM profile {name}: Conflicts is continued on the line {line:?} (pam-auth-update would fail)"
                )));
            }
            continue;
        }
        if truthy(Some(line)) {
            let value = fields.entry(current.clone()).or_default();
            value.push('\n');
            value.push_str(line);
        }
        if fields.get(&current).is_some_and(|value| value.contains("pam_tally")) {
            fields.insert("disabled".to_owned(), "1".to_owned());
        }
        if let Some(value) = fields.get_mut(&current) {
            let kept = value.trim_start_matches(is_space).len();
            value.drain(..value.len() - kept);
        }
    }
    if !fields.contains_key("Session-Interactive-Only") {
        for (copy, of) in [
            ("Session-noninteractive-Type", "Session-Type"),
            ("Session-noninteractive", "Session"),
            ("Session-noninteractive-Initial", "Session-Initial"),
        ] {
            match fields.get(of).cloned() {
                Some(value) => fields.insert(copy.to_owned(), value),
                None => fields.remove(copy),
            };
        }
    }
    Ok(Profile { name: name.to_owned(), fields, conflicts })
}

/// The files pam-auth-update writes for these profiles (those with `Default: yes`, as on a
/// fresh install without debconf answers) and these templates (the text of
/// `/usr/share/pam/common-{auth,account,password,session,session-noninteractive}`, by type name
/// `"auth"`, …): returns (image path like `/etc/pam.d/common-auth` or `/var/lib/pam/seen`,
/// bytes), sorted by path. Every file is [`MODE`].
///
/// `profiles` may hold every file of `/usr/share/pam-configs/`: the ones pam-auth-update skips
/// (backups, ignored profiles) are skipped here. An error when nothing would be enabled
/// (pam-auth-update would ask again forever), a template lacks a marker, or a profile's line
/// is not `CONTROL MODULE [ARGUMENTS]`.
pub fn files(profiles: &[Profile], templates: &[(String, String)]) -> Result<Vec<(String, Vec<u8>)>, Malformed> {
    let mut sorted = Vec::new();
    for profile in profiles {
        if !read_as_profile(&profile.name) || profile.ignored() {
            continue;
        }
        let priority = perl_number(profile.field("Priority"));
        if priority.is_nan() {
            return Err(Malformed(format!("PAM profile {}: Priority is not a number", profile.name)));
        }
        sorted.push((priority, profile));
    }
    sorted
        .sort_by(|(a_priority, a), (b_priority, b)| b_priority.total_cmp(a_priority).then_with(|| b.name.cmp(&a.name)));
    if let Some(pair) = sorted.windows(2).find(|pair| pair[0].1.name == pair[1].1.name) {
        return Err(Malformed(format!("two PAM profiles are named {}", pair[0].1.name)));
    }
    let sorted: Vec<&Profile> = sorted.into_iter().map(|(_, profile)| profile).collect();

    let mut enabled: Vec<&Profile> = sorted.iter().copied().filter(|profile| profile.default_enabled()).collect();
    if let Some(profile) = enabled.iter().find(|profile| {
        // Enabled profiles go through debconf as one `, `-separated (and escaped) value.
        profile.name.contains(", ") || profile.name.contains(['\\', '\n'])
    }) {
        return Err(Malformed(format!("PAM profile name {:?} does not survive debconf", profile.name)));
    }
    loop {
        let removed = remove_conflicts(&mut enabled);
        if enabled.is_empty() {
            return Err(Malformed("no PAM profile is enabled (pam-auth-update would ask for one forever)".to_owned()));
        }
        if !removed {
            break;
        }
    }

    let mut out = Vec::new();
    let seen: String = sorted.iter().map(|profile| format!("{}\n", profile.name)).collect();
    out.push(("/var/lib/pam/seen".to_owned(), seen.into_bytes()));
    for kind in TYPES {
        let Some((_, template)) = templates.iter().find(|(name, _)| name == kind) else {
            return Err(Malformed(format!("no template {TEMPLATE_DIR}/common-{kind}")));
        };
        out.push((format!("/etc/pam.d/common-{kind}"), common_file(template, kind, &enabled)?.into_bytes()));
        out.push((format!("/var/lib/pam/{kind}"), state_file(kind, &enabled).into_bytes()));
    }
    out.sort();
    Ok(out)
}

/// Whether pam-auth-update reads a file of that name in its profile folder.
fn read_as_profile(name: &str) -> bool {
    // `m/^#.+#$/`: `$` may also stand before a final newline.
    let hashed = name.strip_suffix('\n').unwrap_or(name);
    let hashed = hashed.len() >= 3
        && hashed.starts_with('#')
        && hashed.ends_with('#')
        && !hashed[1..hashed.len() - 1].contains('\n');
    !(name.is_empty() || name == "." || name == ".." || name.ends_with('~') || hashed)
}

/// One pass of pam-auth-update's conflict removal over the enabled profiles, which it walks
/// while removing from them; whether it removed any.
fn remove_conflicts(enabled: &mut Vec<&Profile>) -> bool {
    let mut removed = false;
    let mut index = 0;
    while index < enabled.len() {
        let profile = enabled[index];
        for other in (0..enabled.len()).rev() {
            if profile.conflicts.contains(&enabled[other].name) {
                enabled.remove(other);
                removed = true;
            }
        }
        index += 1;
    }
    removed
}

/// The profiles of `enabled` whose `KIND-Type` is `block`, each with its lines.
fn block<'a>(enabled: &[&'a Profile], kind: &str, block: &str) -> Vec<(&'a Profile, Option<&'a str>)> {
    let type_field = format!("{kind}-Type");
    enabled
        .iter()
        .filter(|profile| truthy(profile.field(&type_field)) && profile.field(&type_field) == Some(block))
        .enumerate()
        .map(|(position, profile)| (*profile, profile.lines(kind, position)))
        .collect()
}

/// `/etc/pam.d/common-TYPE` from its template.
fn common_file(template: &str, kind: &str, enabled: &[&Profile]) -> Result<String, Malformed> {
    let upper = upper_first(kind);
    let prefix = kind.replacen("-noninteractive", "", 1);
    let mut out = String::new();
    let mut state = 0;
    for line in template.split_inclusive('\n') {
        match state {
            1 | 3 => {
                if line.starts_with(if state == 1 { FALLBACK_MARK } else { END_MARK }) {
                    out.push_str(line);
                    state += 1;
                }
                continue;
            }
            _ => out.push_str(line),
        }
        let (mark, name) = match state {
            0 => (PRIMARY_MARK, "Primary"),
            2 => (ADDITIONAL_MARK, "Additional"),
            _ => continue,
        };
        if !line.starts_with(mark) {
            continue;
        }
        let members = block(enabled, &upper, name);
        let mut left: i64 =
            members.iter().map(|(_, lines)| lines.map_or(0, |lines| perl_lines(lines, true).len() as i64)).sum();
        if name == "Additional" {
            left -= 1;
        }
        if name == "Primary" && left == 0 {
            out.push_str(&format!("{prefix}\t[default=1]\t\t\tpam_permit.so\n"));
        }
        for (profile, lines) in members {
            for line in lines.map(|lines| perl_lines(lines, false)).unwrap_or_default() {
                let Some(line) = stack_line(line, left) else {
                    return Err(Malformed(format!(
                        "PAM profile {}: {upper} line {line:?} is not CONTROL MODULE [ARGUMENTS]",
                        profile.name
                    )));
                };
                out.push_str(&format!("{prefix}\t{line}"));
                left -= 1;
            }
        }
        state += 1;
    }
    if state < 4 {
        let missing = [PRIMARY_MARK, FALLBACK_MARK, ADDITIONAL_MARK, END_MARK][state];
        return Err(Malformed(format!("{TEMPLATE_DIR}/common-{kind} has no line {missing:?} where expected")));
    }
    Ok(out)
}

/// `/var/lib/pam/TYPE`.
fn state_file(kind: &str, enabled: &[&Profile]) -> String {
    let upper = upper_first(kind);
    let type_field = format!("{upper}-Type");
    let mut out = String::new();
    for (not, null) in [("Additional", true), ("Primary", false)] {
        let mut position = 0;
        for profile in enabled {
            let block = profile.field(&type_field);
            if !truthy(block) || block == Some(not) {
                continue;
            }
            let lines = profile.lines(&upper, position);
            position += 1;
            if let Some(lines) = lines.filter(|lines| truthy(Some(lines))) {
                out.push_str(&format!("Module: {}\n{lines}\n", profile.name));
            }
        }
        if null && position == 0 {
            out.push_str("Module: null\n[default=1]\t\t\tpam_permit.so\n");
        }
    }
    out
}

/// A profile's line as written in the stack (without the type): `CONTROL MODULE` with `end`
/// replaced by `left`, then the arguments, each after one space, and a newline.
fn stack_line(line: &str, left: i64) -> Option<String> {
    let control = if line.starts_with('[') {
        match line.find(']') {
            Some(close) if close >= 2 => close + 1,
            _ => return None,
        }
    } else {
        line.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(line.len())
    };
    let after_control = &line[control..];
    let module = after_control.trim_start_matches(is_space);
    let space = after_control.len() - module.len();
    let module_len = module.find(is_space).unwrap_or(module.len());
    if control == 0 || space == 0 || module_len == 0 {
        return None;
    }
    let head = line[..control + space + module_len].replace("end", &left.to_string());
    let arguments: Vec<&str> = module[module_len..].split(is_space).filter(|word| !word.is_empty()).collect();
    Some(format!("{head} {}\n", arguments.join(" ")))
}

/// The field and value of a `Field: value` line (`m/^(\S+):\s+(.*)\s*$/`, the line with its
/// newline), or `None` for a line of a value.
fn field_line(raw: &str) -> Option<(&str, &str)> {
    let end = raw.find(is_space)?;
    let field = raw[..end].strip_suffix(':').filter(|field| !field.is_empty())?;
    let value = raw[end..].trim_start_matches(is_space);
    Some((field, value.strip_suffix('\n').unwrap_or(value)))
}

/// Perl's `\s` on bytes.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0B' | '\x0C')
}

/// Perl's truth of a string: defined, not empty and not `0`.
fn truthy(value: Option<&str>) -> bool {
    value.is_some_and(|value| !value.is_empty() && value != "0")
}

/// Perl's `ucfirst`.
fn upper_first(word: &str) -> String {
    let mut chars = word.chars();
    chars.next().map(|first| first.to_ascii_uppercase().to_string() + chars.as_str()).unwrap_or_default()
}

/// `split(/, /, text)` and the like: the pieces between each `separator`, without the empty
/// ones at the end.
fn perl_split<'a>(text: &'a str, separator: &str) -> Vec<&'a str> {
    let mut pieces: Vec<&str> = text.split(separator).collect();
    while pieces.last() == Some(&"") {
        pieces.pop();
    }
    pieces
}

/// `split("\n", text)`, or with `runs` `split("\n+", text)` (which keeps a leading empty
/// piece but no other).
fn perl_lines(text: &str, runs: bool) -> Vec<&str> {
    let mut pieces = perl_split(text, "\n");
    if runs {
        let mut index = 0;
        pieces.retain(|piece| {
            index += 1;
            index == 1 || !piece.is_empty()
        });
    }
    pieces
}

/// Perl's number of a string: the decimal number it starts with (after white space), or 0.
fn perl_number(text: Option<&str>) -> f64 {
    let text = text.unwrap_or_default().trim_start_matches(is_space);
    let bytes = text.as_bytes();
    let digits = |from: usize| bytes[from..].iter().take_while(|byte| byte.is_ascii_digit()).count();
    let mut end = usize::from(matches!(bytes.first(), Some(b'+' | b'-')));
    let whole = digits(end);
    end += whole;
    let mut fraction = 0;
    if bytes.get(end) == Some(&b'.') {
        fraction = digits(end + 1);
        if whole + fraction > 0 {
            end += 1 + fraction;
        }
    }
    if whole + fraction == 0 {
        let sign = if text.starts_with('-') { -1.0 } else { 1.0 };
        let word = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
        return if word.starts_with("inf") {
            sign * f64::INFINITY
        } else if word.starts_with("nan") {
            f64::NAN
        } else {
            0.0
        };
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exponent = digits(end + 1 + sign);
        if exponent > 0 {
            end += 1 + sign + exponent;
        }
    }
    text[..end].parse().unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template as libpam-runtime's, shortened.
    fn template(kind: &str) -> String {
        let prefix = kind.replacen("-noninteractive", "", 1);
        format!(
            "# /etc/pam.d/common-{kind}\n\n{PRIMARY_MARK}\n{FALLBACK_MARK}\n{prefix}\trequisite\t\t\tpam_deny.so\n\
             {prefix}\trequired\t\t\tpam_permit.so\n{ADDITIONAL_MARK}\n{END_MARK}\n"
        )
    }

    fn templates() -> Vec<(String, String)> {
        TYPES.iter().map(|kind| (kind.to_string(), template(kind))).collect()
    }

    const UNIX: &str = "Name: Unix authentication\nDefault: yes\nPriority: 256\nAuth-Type: Primary\nAuth:\n\
        \t[success=end default=ignore]\tpam_unix.so nullok try_first_pass\nAuth-Initial:\n\
        \t[success=end default=ignore]\tpam_unix.so nullok\nSession-Type: Additional\nSession:\n\
        \trequired\tpam_unix.so\n";
    const MKHOMEDIR: &str = "Name: Create home directory on login\nDefault: no\nPriority: 0\n\
        Session-Type: Additional\nSession-Interactive-Only: yes\nSession:\n\toptional\t\t\tpam_mkhomedir.so\n";
    const KRB5: &str = "Name: Kerberos authentication\nDefault: yes\nPriority: 704\nAuth-Type: Primary\n\
        Auth:\n\t[success=end default=ignore]\tpam_krb5.so minimum_uid=1000 use_first_pass\nAuth-Initial:\n\
        \t[success=end default=ignore]\tpam_krb5.so    minimum_uid=1000\nSession-Type: Additional\n\
        Session:\n\toptional\t\t\tpam_krb5.so minimum_uid=1000\n";

    fn file<'a>(files: &'a [(String, Vec<u8>)], path: &str) -> &'a str {
        let (_, bytes) = files.iter().find(|(name, _)| name == path).unwrap_or_else(|| panic!("no {path}"));
        std::str::from_utf8(bytes).unwrap()
    }

    /// The lines of a common file between the "Primary" marker and the end marker.
    fn managed(text: &str) -> String {
        let start = text.find(PRIMARY_MARK).unwrap() + PRIMARY_MARK.len() + 1;
        let end = text.find(END_MARK).unwrap();
        text[start..end].to_owned()
    }

    #[test]
    fn profiles_are_read_as_pam_auth_update_reads_them() {
        let profile = parse_profile(
            "x",
            "Name: X  \nAuth-Final:\n\t a \n\n  b\t\n0\nAuth-Type: Primary\nSession: one\nConflicts: y, z\n",
        )
        .unwrap();
        assert_eq!(profile.field("Name"), Some("X  "));
        assert_eq!(profile.field("Auth"), Some("a\nb"));
        assert_eq!(profile.field("Session-noninteractive"), Some("one"));
        assert_eq!(profile.field("Session-noninteractive-Type"), None);
        assert_eq!(profile.conflicts, BTreeSet::from(["y".to_owned(), "z".to_owned()]));
        assert!(!profile.ignored() && !profile.default_enabled());

        let interactive = parse_profile("m", MKHOMEDIR).unwrap();
        assert_eq!(interactive.field("Session"), Some("optional\t\t\tpam_mkhomedir.so"));
        assert_eq!(interactive.field("Session-noninteractive"), None);

        assert!(parse_profile("t", "Auth:\n\trequired pam_tally2.so\n").unwrap().ignored());
        assert!(!parse_profile("t", "Auth: required pam_tally2.so\n").unwrap().ignored());
        assert!(parse_profile("c", "Conflicts: a\n b\n").is_err());
    }

    #[test]
    fn the_bootstrap_profiles_give_debians_stack() {
        let profiles = [parse_profile("unix", UNIX).unwrap(), parse_profile("mkhomedir", MKHOMEDIR).unwrap()];
        let files = files(&profiles, &templates()).unwrap();
        let paths: Vec<&str> = files.iter().map(|(path, _)| path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/etc/pam.d/common-account",
                "/etc/pam.d/common-auth",
                "/etc/pam.d/common-password",
                "/etc/pam.d/common-session",
                "/etc/pam.d/common-session-noninteractive",
                "/var/lib/pam/account",
                "/var/lib/pam/auth",
                "/var/lib/pam/password",
                "/var/lib/pam/seen",
                "/var/lib/pam/session",
                "/var/lib/pam/session-noninteractive",
            ]
        );
        assert_eq!(file(&files, "/var/lib/pam/seen"), "unix\nmkhomedir\n");
        assert_eq!(
            managed(file(&files, "/etc/pam.d/common-auth")),
            format!(
                "auth\t[success=1 default=ignore]\tpam_unix.so nullok\n{FALLBACK_MARK}\nauth\trequisite\t\t\tpam_deny.so\n\
                 auth\trequired\t\t\tpam_permit.so\n{ADDITIONAL_MARK}\n"
            )
        );
        assert_eq!(
            file(&files, "/var/lib/pam/auth"),
            "Module: unix\n[success=end default=ignore]\tpam_unix.so nullok\n"
        );
        // No "Primary" module: a permit line that jumps over the fallback.
        assert_eq!(
            managed(file(&files, "/etc/pam.d/common-session")),
            format!(
                "session\t[default=1]\t\t\tpam_permit.so\n{FALLBACK_MARK}\nsession\trequisite\t\t\tpam_deny.so\n\
                 session\trequired\t\t\tpam_permit.so\n{ADDITIONAL_MARK}\nsession\trequired\tpam_unix.so \n"
            )
        );
        assert_eq!(
            file(&files, "/var/lib/pam/session-noninteractive"),
            "Module: null\n[default=1]\t\t\tpam_permit.so\nModule: unix\nrequired\tpam_unix.so\n"
        );
        assert_eq!(file(&files, "/var/lib/pam/account"), "Module: null\n[default=1]\t\t\tpam_permit.so\n");
    }

    #[test]
    fn higher_priorities_come_first_and_only_the_first_takes_its_initial_lines() {
        let mkhomedir = MKHOMEDIR.replace("Default: no", "Default: yes");
        let profiles = [
            parse_profile("unix", UNIX).unwrap(),
            parse_profile("mkhomedir", &mkhomedir).unwrap(),
            parse_profile("krb5", KRB5).unwrap(),
        ];
        let files = files(&profiles, &templates()).unwrap();
        assert_eq!(file(&files, "/var/lib/pam/seen"), "krb5\nunix\nmkhomedir\n");
        let auth = managed(file(&files, "/etc/pam.d/common-auth"));
        assert!(
            auth.starts_with(
                "auth\t[success=2 default=ignore]\tpam_krb5.so minimum_uid=1000\n\
                 auth\t[success=1 default=ignore]\tpam_unix.so nullok try_first_pass\n# here's"
            ),
            "{auth}"
        );
        assert_eq!(
            file(&files, "/var/lib/pam/auth"),
            "Module: krb5\n[success=end default=ignore]\tpam_krb5.so    minimum_uid=1000\n\
             Module: unix\n[success=end default=ignore]\tpam_unix.so nullok try_first_pass\n"
        );
        let session = managed(file(&files, "/etc/pam.d/common-session"));
        assert!(
            session.ends_with(
                "session\toptional\t\t\tpam_krb5.so minimum_uid=1000\nsession\trequired\tpam_unix.so \n\
                 session\toptional\t\t\tpam_mkhomedir.so \n"
            ),
            "{session}"
        );
        let noninteractive = managed(file(&files, "/etc/pam.d/common-session-noninteractive"));
        assert!(noninteractive.ends_with("session\trequired\tpam_unix.so \n"), "{noninteractive}");
    }

    #[test]
    fn end_counts_the_lines_left_in_the_block() {
        let profile = "Default: yes\nAccount-Type: Primary\nAccount:\n [success=end]  pam_a.so\n \
            [default=end success=ok] pam_b.so x  y\nAccount-Type: Primary\nPassword-Type: Additional\n\
            Password:\n [success=end] pam_sendmail.so\n [default=end] pam_c.so\n";
        let files = files(&[parse_profile("p", profile).unwrap()], &templates()).unwrap();
        assert!(
            managed(file(&files, "/etc/pam.d/common-account"))
                .starts_with("account\t[success=2]  pam_a.so \naccount\t[default=1 success=ok] pam_b.so x y\n# here's")
        );
        assert!(
            managed(file(&files, "/etc/pam.d/common-password"))
                .ends_with("password\t[success=1] pam_s1mail.so \npassword\t[default=0] pam_c.so \n")
        );
    }

    #[test]
    fn ties_go_by_name_descending_and_conflicts_drop_what_the_first_names() {
        let one = |conflicts: &str| {
            format!("Default: yes\nConflicts: {conflicts}\nAuth-Type: Primary\nAuth:\n required pam_x.so\n")
        };
        let profiles = [
            parse_profile("a", &one("c")).unwrap(),
            parse_profile("b", &one("none")).unwrap(),
            parse_profile("c", &one("b")).unwrap(),
        ];
        // c first: it removes b; then a removes c.
        let files = files(&profiles, &templates()).unwrap();
        assert_eq!(file(&files, "/var/lib/pam/seen"), "c\nb\na\n");
        assert_eq!(file(&files, "/var/lib/pam/auth"), "Module: a\nrequired pam_x.so\n");
    }

    #[test]
    fn what_pam_auth_update_cannot_do_is_an_error() {
        let off = parse_profile("off", MKHOMEDIR).unwrap();
        assert!(files(std::slice::from_ref(&off), &templates()).is_err());
        let unix = parse_profile("unix", UNIX).unwrap();
        assert!(files(std::slice::from_ref(&unix), &templates()[1..]).is_err());
        let mut broken = templates();
        broken[0].1 = broken[0].1.replace(END_MARK, "# end");
        assert!(files(std::slice::from_ref(&unix), &broken).is_err());
        let bad = parse_profile("bad", "Default: yes\nAuth-Type: Primary\nAuth:\n pam_x.so\n").unwrap();
        assert!(files(&[bad], &templates()).is_err());
        // Backups are not profiles.
        let backup = parse_profile("unix~", UNIX).unwrap();
        assert!(files(&[backup], &templates()).is_err());
    }

    #[test]
    fn priorities_are_read_as_perl_numbers() {
        assert_eq!(perl_number(None), 0.0);
        assert_eq!(perl_number(Some(" 256")), 256.0);
        assert_eq!(perl_number(Some("12abc")), 12.0);
        assert_eq!(perl_number(Some("-1.5e2x")), -150.0);
        assert_eq!(perl_number(Some("1e")), 1.0);
        assert_eq!(perl_number(Some("0x10")), 0.0);
        assert_eq!(perl_number(Some("abc")), 0.0);
        assert_eq!(perl_number(Some(".5")), 0.5);
    }

    /// What the real `pam-auth-update --package --force` writes for these profiles into an
    /// empty root, with a debconf database of its own (so the host's answers play no part):
    /// every file under `etc/pam.d` and `var/lib/pam`, with its mode.
    fn pam_auth_update(profiles: &[(String, String)]) -> Vec<(String, Vec<u8>, u32)> {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        for sub in ["usr/share/pam-configs", "etc/pam.d", "var/lib/pam", "debconf"] {
            std::fs::create_dir_all(if sub == "debconf" { dir.path().join(sub) } else { root.join(sub) }).unwrap();
        }
        for (name, text) in profiles {
            std::fs::write(root.join("usr/share/pam-configs").join(name), text).unwrap();
        }
        let db = dir.path().join("debconf");
        let conf = dir.path().join("debconf.conf");
        std::fs::write(
            &conf,
            format!(
                "Config: configdb\nTemplates: templatedb\n\nName: configdb\nDriver: File\nFilename: {}/config.dat\n\n\
                 Name: templatedb\nDriver: File\nFilename: {}/templates.dat\n",
                db.display(),
                db.display()
            ),
        )
        .unwrap();
        let output = std::process::Command::new("/usr/sbin/pam-auth-update")
            .args(["--root".as_ref(), root.as_os_str(), "--package".as_ref(), "--force".as_ref()])
            .env("DEBCONF_SYSTEMRC", &conf)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env_remove("DEBCONF_DB_OVERRIDE")
            .env_remove("DEBCONF_DB_FALLBACK")
            .output()
            .unwrap();
        assert!(output.status.success(), "pam-auth-update: {}", String::from_utf8_lossy(&output.stderr));
        let mut written = Vec::new();
        for sub in ["etc/pam.d", "var/lib/pam"] {
            for entry in std::fs::read_dir(root.join(sub)).unwrap() {
                let entry = entry.unwrap();
                let mode = entry.metadata().unwrap().permissions().mode() & 0o7777;
                let path = format!("/{sub}/{}", entry.file_name().to_str().unwrap());
                written.push((path, std::fs::read(entry.path()).unwrap(), mode));
            }
        }
        written.sort();
        written
    }

    /// Compares [`files`] with the real tool for the host's own profiles plus `extra`.
    fn compare(host: &[&str], extra: &[(&str, &str)]) {
        let mut inputs: Vec<(String, String)> = host
            .iter()
            .map(|name| (name.to_string(), std::fs::read_to_string(format!("{PROFILE_DIR}/{name}")).unwrap()))
            .collect();
        inputs.extend(extra.iter().map(|(name, text)| (name.to_string(), text.to_string())));
        // pam-auth-update reads its templates from the host's /usr/share/pam, --root or not.
        let templates: Vec<(String, String)> = TYPES
            .iter()
            .map(|kind| (kind.to_string(), std::fs::read_to_string(format!("{TEMPLATE_DIR}/common-{kind}")).unwrap()))
            .collect();
        let profiles: Vec<Profile> = inputs.iter().map(|(name, text)| parse_profile(name, text).unwrap()).collect();
        let ours: Vec<(String, Vec<u8>, u32)> =
            files(&profiles, &templates).unwrap().into_iter().map(|(path, bytes)| (path, bytes, MODE)).collect();
        let theirs = pam_auth_update(&inputs);
        for ((path, bytes, mode), (their_path, their_bytes, their_mode)) in ours.iter().zip(&theirs) {
            assert_eq!(path, their_path);
            assert_eq!(
                String::from_utf8_lossy(bytes),
                String::from_utf8_lossy(their_bytes),
                "{path} differs for {host:?} + {:?}",
                extra.iter().map(|(name, _)| name).collect::<Vec<_>>()
            );
            assert_eq!(mode, their_mode, "{path}");
        }
        assert_eq!(ours.len(), theirs.len());
    }

    #[test]
    fn the_real_pam_auth_update_writes_the_same_files() {
        if !std::path::Path::new("/usr/sbin/pam-auth-update").exists() {
            eprintln!("skipped: /usr/sbin/pam-auth-update is absent (libpam-runtime is not installed)");
            return;
        }
        let host: Vec<String> = std::fs::read_dir(PROFILE_DIR)
            .map(|dir| dir.map(|entry| entry.unwrap().file_name().into_string().unwrap()).collect())
            .unwrap_or_default();
        let host: Vec<&str> = host.iter().map(String::as_str).collect();
        let has = |name: &str| host.contains(&name);
        let mkhomedir = MKHOMEDIR.replace("Default: no", "Default: yes");
        let quirks = [
            ("mkhomedir-on", mkhomedir.as_str()),
            ("krb5", KRB5),
            // Primary in two types, `end` in a module name, an -Initial in the Additional
            // block, and the same priority as unix (names break the tie).
            (
                "zz",
                "Name: zz\nDefault: yes\nPriority: 256\nAccount-Type: Primary\nAccount:\n \
                 [success=end default=ignore]   pam_sendmail.so a\tb\n requisite pam_y.so\n\
                 Password-Type: Additional\nPassword-Initial:\n optional pam_first.so\nPassword:\n optional pam_z.so\n\
                 Session-Type: Additional\nSession-Interactive-Only: no\nSession:\n optional pam_zz.so\n",
            ),
            ("aa", "Default: yes\nPriority: 256abc\nPassword-Type: Additional\nPassword:\n  optional\tpam_aa.so \n"),
            // Conflicts, a profile that pam_tally disables and a backup file.
            ("loser", "Default: yes\nPriority: 5\nAuth-Type: Primary\nAuth:\n required pam_loser.so\n"),
            ("winner", "Default: yes\nPriority: 1\nConflicts: loser\nAuth-Type: Primary\nAuth: required pam_w.so\n"),
            ("tally", "Default: yes\nAuth-Type: Primary\nAuth:\n required pam_tally.so\n"),
            ("unix~", "Default: yes\nAuth-Type: Primary\nAuth:\n required pam_backup.so\n"),
            // A Primary block with a profile without lines, Default with trailing space.
            ("empty", "Default: yes\nPriority: 9\nSession-Type: Primary\nAccount-Type: Primary\n"),
            ("trailing", "Default: yes \nAuth-Type: Primary\nAuth:\n required pam_trailing.so\n"),
        ];
        if has("unix") {
            compare(&["unix", "mkhomedir"].into_iter().filter(|name| has(name)).collect::<Vec<_>>(), &[]);
            compare(&host, &[]);
        }
        compare(&host, &quirks[..2]);
        compare(&host, &quirks);
        compare(&[], &quirks[2..]);
    }
}
