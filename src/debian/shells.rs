//! `/etc/shells`, as debianutils' `update-shells` makes it on a fresh install: the lines of
//! the existing file (or of debianutils' template, which its `postinst` copies first), then
//! every shell the template and the packages' `/usr/share/debianutils/shells.d/` files name
//! that is not listed yet, each also under its real folder when that differs (`/bin/sh` and, on
//! merged /usr, `/usr/bin/sh`); and `/var/lib/shells.state`, the packaged shells.

/// `(/etc/shells, /var/lib/shells.state)` from the current `/etc/shells` (if any), the
/// template, the `shells.d` files in name order, and `real_dir`, which resolves a folder of the
/// image through its symlinks.
pub fn update_shells(
    existing: Option<&str>,
    template: &str,
    packaged: &[String],
    mut real_dir: impl FnMut(&str) -> String,
) -> (String, String) {
    let mut shells: Vec<String> = Vec::new();
    for text in std::iter::once(template).chain(packaged.iter().map(String::as_str)) {
        for line in whole_lines(text) {
            let shell = line.split('#').next().unwrap_or_default();
            if shell.is_empty() {
                continue;
            }
            shells.push(shell.to_string());
            let (dir, base) = shell.rsplit_once('/').unwrap_or((".", shell));
            let dir = if dir.is_empty() { "/" } else { dir };
            let real = format!("{}/{base}", real_dir(dir).trim_end_matches('/'));
            if real != shell {
                shells.push(real);
            }
        }
    }
    let mut etc = String::new();
    let mut listed: Vec<&str> = Vec::new();
    for line in whole_lines(existing.unwrap_or(template)) {
        let shell = line.split('#').next().unwrap_or_default();
        if shell.is_empty() || !listed.contains(&shell) {
            etc.push_str(line);
            etc.push('\n');
            listed.push(shell);
        }
    }
    let mut state = String::new();
    for shell in &shells {
        state.push_str(shell);
        state.push('\n');
        if !listed.contains(&shell.as_str()) {
            etc.push_str(shell);
            etc.push('\n');
        }
    }
    (etc, state)
}

/// The lines of `text` that end in a newline (the shell's `read` drops an unfinished last one).
fn whole_lines(text: &str) -> impl Iterator<Item = &str> {
    text.split_inclusive('\n').filter_map(|l| l.strip_suffix('\n'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merged_usr_lists_each_shell_twice_as_debootstrap_leaves_it() {
        let template = "# /etc/shells: valid login shells\n/bin/sh\n";
        let packaged = vec!["/bin/bash\n/bin/rbash\n".to_string(), "/bin/dash\n".to_string()];
        let real = |dir: &str| if dir == "/bin" { "/usr/bin".to_string() } else { dir.to_string() };
        let (etc, state) = update_shells(None, template, &packaged, real);
        // The bytes of debootstrap's /etc/shells and /var/lib/shells.state (bookworm, minbase).
        assert_eq!(
            etc,
            "# /etc/shells: valid login shells\n/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n\
             /bin/rbash\n/usr/bin/rbash\n/bin/dash\n/usr/bin/dash\n"
        );
        assert_eq!(
            state,
            "/bin/sh\n/usr/bin/sh\n/bin/bash\n/usr/bin/bash\n/bin/rbash\n/usr/bin/rbash\n/bin/dash\n/usr/bin/dash\n"
        );
    }

    #[test]
    fn an_existing_file_keeps_its_own_lines_first() {
        let (etc, _) = update_shells(Some("/bin/zsh\n/bin/sh\n"), "/bin/sh\n", &[], |d: &str| d.to_string());
        assert_eq!(etc, "/bin/zsh\n/bin/sh\n");
    }
}
