//! The alternatives system (`update-alternatives`), as packages' `postinst` scripts drive it on
//! a fresh install: each `update-alternatives --install LINK NAME PATH PRIORITY [--slave LINK
//! NAME PATH]...` registers PATH as a choice for the link group NAME, and in automatic mode the
//! choice of highest priority wins: `LINK -> /etc/alternatives/NAME -> PATH`, the same for each
//! slave whose file exists, and dpkg's record of the group in
//! `/var/lib/dpkg/alternatives/NAME`.
//!
//! bake reads the commands out of the scripts rather than running them: only literal ones (no
//! `$`, quotes or backquotes in their words, continued lines joined), whatever condition of the
//! script surrounds them (on a fresh install they all run: `configure`, on Linux).

use super::Malformed;

/// One `update-alternatives --install` command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Install {
    pub link: String,
    pub name: String,
    pub path: String,
    pub priority: i64,
    /// (link, name, path) of each `--slave`.
    pub slaves: Vec<(String, String, String)>,
}

/// The literal `update-alternatives --install` commands of a maintainer script, in order.
pub fn parse_script(script: &str) -> Vec<Install> {
    let joined = script.replace("\\\n", " ");
    let mut found = Vec::new();
    for line in joined.lines() {
        let line = line.split(" #").next().unwrap_or_default();
        let mut rest = line;
        while let Some(at) = rest.find("update-alternatives") {
            let after = &rest[at + "update-alternatives".len()..];
            let end = after.find(['|', ';', '&', ')', '>']).unwrap_or(after.len());
            if let Some(install) = parse_words(&after[..end]) {
                found.push(install);
            }
            rest = &after[end..];
        }
    }
    found
}

fn parse_words(command: &str) -> Option<Install> {
    let words: Vec<&str> = command.split_whitespace().collect();
    if words.first() != Some(&"--install") || words.iter().any(|w| w.contains(['$', '"', '\'', '`'])) {
        return None;
    }
    let [link, name, path, priority] = words.get(1..5)? else { return None };
    let mut install = Install {
        link: link.to_string(),
        name: name.to_string(),
        path: path.to_string(),
        priority: priority.parse().ok()?,
        slaves: Vec::new(),
    };
    let mut rest = &words[5..];
    while let [flag, link, name, path, tail @ ..] = rest {
        if *flag != "--slave" {
            return None;
        }
        install.slaves.push((link.to_string(), name.to_string(), path.to_string()));
        rest = tail;
    }
    rest.is_empty().then_some(install)
}

/// A link group with every choice registered for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Group {
    pub name: String,
    pub link: String,
    /// (name, link) of each slave, in the order first registered.
    pub slaves: Vec<(String, String)>,
    pub choices: Vec<Choice>,
}

/// One registered choice: its file, priority, and its file for each slave of the group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub path: String,
    pub priority: i64,
    pub slave_paths: Vec<Option<String>>,
}

/// Gathers `installs` (in the order the scripts ran) into link groups, by name. A choice
/// registered twice keeps its last registration, as update-alternatives does; a group whose
/// master link two packages disagree on is refused, naming both.
pub fn groups(installs: &[Install]) -> Result<Vec<Group>, Malformed> {
    let mut groups: Vec<Group> = Vec::new();
    for install in installs {
        let at = match groups.iter().position(|g| g.name == install.name) {
            Some(at) => at,
            None => {
                groups.push(Group {
                    name: install.name.clone(),
                    link: install.link.clone(),
                    slaves: Vec::new(),
                    choices: Vec::new(),
                });
                groups.len() - 1
            }
        };
        let group = &mut groups[at];
        if group.link != install.link {
            return Err(Malformed(format!(
                "alternative `{}` is `{}` for one package and `{}` for another",
                install.name, group.link, install.link
            )));
        }
        for (link, name, _) in &install.slaves {
            if !group.slaves.iter().any(|(n, _)| n == name) {
                group.slaves.push((name.clone(), link.clone()));
                for choice in &mut group.choices {
                    choice.slave_paths.push(None);
                }
            }
        }
        let slave_paths = group
            .slaves
            .iter()
            .map(|(name, _)| install.slaves.iter().find(|(_, n, _)| n == name).map(|(_, _, p)| p.clone()))
            .collect();
        let choice = Choice { path: install.path.clone(), priority: install.priority, slave_paths };
        match group.choices.iter_mut().find(|c| c.path == install.path) {
            Some(existing) => *existing = choice,
            None => group.choices.push(choice),
        }
    }
    Ok(groups)
}

impl Group {
    /// The choice automatic mode takes: the highest priority, the first registered among equals.
    pub fn best(&self) -> Option<&Choice> {
        self.choices.iter().rev().max_by_key(|c| c.priority)
    }

    /// dpkg's record of the group (`/var/lib/dpkg/alternatives/NAME`), in automatic mode.
    pub fn record(&self) -> String {
        let mut out = format!("auto\n{}\n", self.link);
        for (name, link) in &self.slaves {
            out.push_str(&format!("{name}\n{link}\n"));
        }
        out.push('\n');
        for choice in &self.choices {
            out.push_str(&format!("{}\n{}\n", choice.path, choice.priority));
            for path in &choice.slave_paths {
                out.push_str(path.as_deref().unwrap_or_default());
                out.push('\n');
            }
        }
        out.push('\n');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAWK: &str = "#!/bin/sh\nset -e\n\
        if [ \"$1\" = \"configure\" ]; then\n\
        \tupdate-alternatives --install /usr/bin/awk awk /usr/bin/mawk 5 \\\n\
        \t    --slave /usr/share/man/man1/awk.1.gz awk.1.gz /usr/share/man/man1/mawk.1.gz \\\n\
        \t    --slave /usr/bin/nawk nawk /usr/bin/mawk \\\n\
        \t    --slave /usr/share/man/man1/nawk.1.gz nawk.1.gz /usr/share/man/man1/mawk.1.gz\nfi\n";

    #[test]
    fn continued_commands_are_read_with_their_slaves() {
        let installs = parse_script(MAWK);
        assert_eq!(installs.len(), 1);
        let i = &installs[0];
        assert_eq!(
            (i.link.as_str(), i.name.as_str(), i.path.as_str(), i.priority),
            ("/usr/bin/awk", "awk", "/usr/bin/mawk", 5)
        );
        assert_eq!(i.slaves[1], ("/usr/bin/nawk".into(), "nawk".into(), "/usr/bin/mawk".into()));
    }

    #[test]
    fn commands_with_shell_words_or_other_actions_are_not_taken() {
        let script = "update-alternatives --install \"$LINK\" x /usr/bin/x 1\n\
                      update-alternatives --remove awk /usr/bin/mawk\n\
                      update-alternatives --install /usr/bin/y y /usr/bin/y.real 1 || true\n";
        let installs = parse_script(script);
        assert_eq!(installs.len(), 1);
        assert_eq!(installs[0].name, "y");
    }

    #[test]
    fn the_record_is_dpkgs_and_the_highest_priority_wins() {
        let awk = groups(&parse_script(MAWK)).unwrap();
        // The bytes of debootstrap's /var/lib/dpkg/alternatives/awk on bookworm.
        assert_eq!(
            awk[0].record(),
            "auto\n/usr/bin/awk\nawk.1.gz\n/usr/share/man/man1/awk.1.gz\nnawk\n/usr/bin/nawk\n\
             nawk.1.gz\n/usr/share/man/man1/nawk.1.gz\n\n/usr/bin/mawk\n5\n/usr/share/man/man1/mawk.1.gz\n\
             /usr/bin/mawk\n/usr/share/man/man1/mawk.1.gz\n\n"
        );
        let gawk = parse_script(
            "update-alternatives --install /usr/bin/awk awk /usr/bin/gawk 10 --slave /usr/bin/nawk nawk /usr/bin/gawk\n",
        );
        let both = groups(&[parse_script(MAWK), gawk].concat()).unwrap();
        assert_eq!(both[0].best().unwrap().path, "/usr/bin/gawk");
        assert_eq!(both[0].choices[1].slave_paths, [None, Some("/usr/bin/gawk".to_string()), None]);
    }

    #[test]
    fn two_packages_disagreeing_on_a_link_are_refused() {
        let a = parse_script("update-alternatives --install /usr/bin/pager pager /bin/more 50\n");
        let b = parse_script("update-alternatives --install /bin/pager pager /bin/less 77\n");
        assert!(groups(&[a, b].concat()).unwrap_err().0.contains("`pager`"));
    }
}
