//! Debian systems built the way the distribution's own tools build them, without running
//! maintainer scripts: the package set of a `variant` compared with debootstrap's, and the
//! merged /usr layout it implies. Uses the host's apt lists (and, for debootstrap, the Debian
//! mirror they come from).

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use common::*;

/// The host's Debian release (`bookworm`).
fn codename() -> String {
    let text = std::fs::read_to_string("/etc/os-release").unwrap();
    text.lines().find_map(|l| l.strip_prefix("VERSION_CODENAME=")).unwrap().trim_matches('"').to_string()
}

#[test]
fn minbase_is_the_package_set_debootstrap_installs() {
    require_tool("apt-get");
    require_tool("debootstrap");
    let t = tempfile::tempdir().unwrap();
    let recipe =
        write_recipe(t.path(), "[image]\nname = \"minbase\"\n\n[[layer]]\npackages = []\nvariant = \"minbase\"\n");
    Bake::new("lock").arg(&recipe).ok();
    let ours = locked_names(&recipe);
    // debootstrap's own answer, from the mirror the host's lists come from.
    let output = run(Command::new("debootstrap")
        .args(["--print-debs", "--variant=minbase", &codename()])
        .arg(t.path().join("target"))
        .arg("http://deb.debian.org/debian"));
    assert!(output.status.success(), "{}", text(&output.stderr));
    let theirs: BTreeSet<String> = text(&output.stdout).split_whitespace().map(str::to_string).collect();
    assert!(theirs.len() > 50, "{theirs:?}");
    assert_eq!(
        ours.symmetric_difference(&theirs).collect::<Vec<_>>(),
        Vec::<&String>::new(),
        "bake's minbase ({} packages) against debootstrap's ({})",
        ours.len(),
        theirs.len()
    );
}

/// The names of the packages the lock of `recipe` pins in its first layer (which has a variant).
fn locked_names(recipe: &std::path::Path) -> BTreeSet<String> {
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(recipe.with_extension("lock")).unwrap()).unwrap();
    let layer = &lock["layer"][0];
    assert!(layer["variant"].as_str().is_some());
    layer["package"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect()
}

#[test]
fn a_systemd_system_is_merged_usr_with_dpkgs_database_and_the_accounts_debian_makes() {
    require_tool("apt-get");
    for tool in ["dpkg", "dpkg-query", "pwconv", "grpconv", "systemd-sysusers"] {
        require_tool(tool);
    }
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"system\"\n\n[initramfs]\ncompression = \"zstd\"\n\n\
         [[layer]]\npackages = [\"systemd-sysv\"]\nvariant = \"minbase\"\n\n\
         [[group]]\nname = \"web\"\n\n[[user]]\nname = \"www\"\ngroups = [\"web\"]\n\n\
         [[file]]\npath = \"/etc/systemd/system/web.service\"\n\
         content = \"[Service]\\nExecStart=/bin/true\\n[Install]\\nWantedBy=multi-user.target\\nAlias=www.service\\n\"\n\n\
         [systemd]\npreset = true\nenable = [\"web.service\", \"getty@ttyS0.service\"]\ndefault-target = \"multi-user.target\"\n",
    );
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    Bake::new("lock").arg(&recipe).ok();
    let ours = locked_names(&recipe);
    let image = decompress(&out.join("system.cpio.zst"));

    // Merged /usr: the top directories are links into /usr, and what packages ship in /bin is
    // in /usr/bin (read by GNU cpio).
    let listing = text(&pipe("cpio", &["-tv", "--quiet"], &image, None));
    for dir in ["bin", "sbin", "lib", "lib64"] {
        assert!(listing.lines().any(|l| l.starts_with('l') && l.ends_with(&format!(" {dir} -> usr/{dir}"))), "/{dir}");
        assert!(!listing.lines().any(|l| l.contains(&format!(" {dir}/"))), "nothing below /{dir} itself");
    }
    assert!(listing.lines().any(|l| l.starts_with('-') && l.ends_with(" usr/bin/bash")), "{listing}");

    // dpkg's database: dpkg itself, on the unpacked image, lists exactly the locked packages
    // (the SBOM's), and verifies every file against the packages' own md5sums.
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    cpio_extract(&image, &root);
    let admindir = root.join("var/lib/dpkg");
    let listed = run_ok(Command::new("dpkg-query").arg(format!("--admindir={}", admindir.display())).args([
        "-W",
        "-f",
        "${Package} ${db:Status-Abbrev}\n",
    ]));
    let installed: BTreeSet<String> = text(&listed.stdout)
        .lines()
        .map(|l| {
            assert!(l.ends_with(" ii "), "{l}");
            l.split(' ').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(installed, ours);
    assert_eq!(sbom_packages(&out.join("system.spdx.json")), ours, "dpkg's database and the SBOM agree");
    let verified = run(Command::new("dpkg").arg(format!("--root={}", root.display())).arg("--verify"));
    assert!(
        verified.status.success() && verified.stdout.is_empty(),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );

    // The accounts: what Debian's own tools make of the same image. base-passwd's postinst
    // copies its masters, `pwconv` and `grpconv` make the shadow files, systemd-sysusers adds
    // the packages' sysusers.d accounts, and the recipe's [[group]] and [[user]] are given to
    // it as one more sysusers.d file.
    let reference = t.path().join("reference");
    run_ok(Command::new("cp").arg("-a").arg(&root).arg(&reference));
    let etc = reference.join("etc");
    for file in ["passwd", "group", "shadow", "gshadow"] {
        std::fs::remove_file(etc.join(file)).unwrap();
    }
    let masters = reference.join("usr/share/base-passwd");
    std::fs::copy(masters.join("passwd.master"), etc.join("passwd")).unwrap();
    std::fs::copy(masters.join("group.master"), etc.join("group")).unwrap();
    run_ok(Command::new("pwconv").arg("-R").arg(&reference));
    run_ok(Command::new("grpconv").arg("-R").arg(&reference));
    std::fs::create_dir_all(etc.join("sysusers.d")).unwrap();
    std::fs::write(etc.join("sysusers.d/zz-recipe.conf"), "g web -\nu www -\nm www web\n").unwrap();
    run_ok(Command::new("systemd-sysusers").arg(format!("--root={}", reference.display())));
    let read = |dir: &std::path::Path, file: &str| std::fs::read_to_string(dir.join("etc").join(file)).unwrap();
    for file in ["passwd", "group", "gshadow"] {
        assert_eq!(read(&root, file), read(&reference, file), "/etc/{file}");
    }
    // The last change day is the image's epoch, not today's date.
    let no_day = |text: String| -> String {
        text.lines()
            .map(|l| {
                l.split(':').enumerate().filter(|(i, _)| *i != 2).map(|(_, f)| f).collect::<Vec<_>>().join(":") + "\n"
            })
            .collect()
    };
    assert_eq!(no_day(read(&root, "shadow")), no_day(read(&reference, "shadow")));
    assert!(read(&root, "passwd").contains("www:x:"), "the recipe's user is there");

    // Units: the links systemctl itself makes on the same image for `preset-all`, `enable`
    // and `set-default`.
    for (link, _) in find_links(&reference.join("etc/systemd/system")) {
        std::fs::remove_file(reference.join("etc/systemd/system").join(link)).unwrap();
    }
    let systemctl =
        |args: &[&str]| run_ok(Command::new("systemctl").arg(format!("--root={}", reference.display())).args(args));
    systemctl(&["preset-all"]);
    systemctl(&["enable", "web.service", "getty@ttyS0.service"]);
    systemctl(&["set-default", "multi-user.target"]);
    let ours = find_links(&root.join("etc/systemd/system"));
    let theirs = find_links(&reference.join("etc/systemd/system"));
    assert_eq!(ours, theirs);
    assert!(
        ours.contains(&("multi-user.target.wants/web.service".into(), "/etc/systemd/system/web.service".into())),
        "{ours:?}"
    );
    // The first boot asks nothing: an empty machine id. dash's /bin/sh.
    assert_eq!(std::fs::read(root.join("etc/machine-id")).unwrap(), b"");
    assert_eq!(std::fs::read_link(root.join("usr/bin/sh")).unwrap(), std::path::Path::new("dash"));

    // The rest of the scripts' work, read back by Debian's own tools. update-alternatives reads
    // dpkg's records bake wrote and agrees on each link group's choice.
    let alternatives = |args: &[&str]| {
        let out = run_ok(
            Command::new("update-alternatives")
                .arg("--admindir")
                .arg(root.join("var/lib/dpkg/alternatives"))
                .arg("--altdir")
                .arg(root.join("etc/alternatives"))
                .args(args),
        );
        text(&out.stdout)
    };
    for (name, value) in [
        ("awk", "/usr/bin/mawk"),
        ("which", "/usr/bin/which.debianutils"),
        ("pager", "/bin/more"),
        ("rmt", "/usr/sbin/rmt-tar"),
    ] {
        let query = alternatives(&["--query", name]);
        assert!(query.contains("Status: auto\n") && query.contains(&format!("Value: {value}\n")), "{query}");
    }
    let link = |p: &str| std::fs::read_link(root.join(p)).unwrap().display().to_string();
    assert_eq!(
        (link("usr/bin/awk"), link("etc/alternatives/awk")),
        ("/etc/alternatives/awk".into(), "/usr/bin/mawk".into())
    );
    assert_eq!(link("usr/bin/nawk"), "/etc/alternatives/nawk");
    // debianutils' own update-shells, run on a copy without bake's /etc/shells, makes the same.
    let shells = t.path().join("shells");
    run_ok(Command::new("cp").arg("-a").arg(&root).arg(&shells));
    std::fs::remove_file(shells.join("etc/shells")).unwrap();
    std::fs::remove_file(shells.join("var/lib/shells.state")).unwrap();
    run_ok(Command::new("update-shells").arg("--root").arg(&shells));
    for file in ["etc/shells", "var/lib/shells.state"] {
        assert_eq!(std::fs::read(root.join(file)).unwrap(), std::fs::read(shells.join(file)).unwrap(), "{file}");
    }
    // libpam-runtime's PAM stack: `su` authenticates through it (and `awk` is there).
    if text(&run_ok(Command::new("id").arg("-u")).stdout).trim() == "0" {
        let su = run(Command::new("chroot").arg(&root).args([
            "/bin/su",
            "-s",
            "/bin/sh",
            "nobody",
            "-c",
            "echo su ok | awk '{print $2}'",
        ]));
        assert_eq!(text(&su.stdout), "ok\n", "{}", text(&su.stderr));
    }
    // base-files', libc-bin's and tzdata's: /var/run is /run, the defaults are copied.
    assert_eq!((link("var/run"), link("var/lock")), ("/run".into(), "/run/lock".into()));
    assert_eq!(link("etc/localtime"), "/usr/share/zoneinfo/Etc/UTC");
    for (file, from) in
        [("etc/profile", "usr/share/base-files/profile"), ("etc/nsswitch.conf", "usr/share/libc-bin/nsswitch.conf")]
    {
        assert_eq!(std::fs::read(root.join(file)).unwrap(), std::fs::read(root.join(from)).unwrap(), "{file}");
    }
}

/// Every symlink below `dir` (relative path, target), sorted.
fn find_links(dir: &std::path::Path) -> BTreeSet<(String, String)> {
    let output = run_ok(Command::new("find").arg(dir).args(["-type", "l", "-printf", "%P %l\\n"]));
    text(&output.stdout)
        .lines()
        .map(|l| {
            let (path, target) = l.split_once(' ').unwrap();
            (path.to_string(), target.to_string())
        })
        .collect()
}

/// The package names an SPDX document lists (the image itself, which has no version, left out).
fn sbom_packages(path: &std::path::Path) -> BTreeSet<String> {
    let sbom: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("versionInfo").is_some())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn a_recipe_account_that_clashes_with_the_packages_ones_is_refused() {
    require_tool("apt-get");
    let t = tempfile::tempdir().unwrap();
    let head = "[image]\nname = \"clash\"\n\n[initramfs]\ncompression = \"none\"\n\n[[layer]]\npackages = [\"base-passwd\"]\n\n";
    for (entry, line, message) in [
        ("[[user]]\nname = \"daemon\"\n", 10, "user `daemon` is defined already, by the packages"),
        ("[[group]]\nname = \"shadow\"\n", 10, "group `shadow` is defined already, by the packages"),
        ("[[user]]\nname = \"web\"\nuid = 1\n", 10, "user `web`: uid 1 is taken by user `daemon`"),
    ] {
        let recipe = write_recipe(t.path(), &format!("{head}{entry}"));
        let out = t.path().join("out");
        let stderr = Bake::build(&recipe).out(&out).fails(2).stderr();
        assert!(stderr.contains(&format!("recipe.toml:{line}:1: {message}")), "{stderr}");
        assert!(!out.exists());
    }
}
