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
fn minbase_is_debootstraps_package_set_merged_usr_with_a_database_dpkg_verifies() {
    require_tool("apt-get");
    require_tool("debootstrap");
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        "[image]\nname = \"minbase\"\n\n[initramfs]\ncompression = \"zstd\"\n\n\
         [[layer]]\npackages = []\nvariant = \"minbase\"\n",
    );
    Bake::new("lock").arg(&recipe).ok();
    let lock: toml::Value = toml::from_str(&std::fs::read_to_string(recipe.with_extension("lock")).unwrap()).unwrap();
    let layer = &lock["layer"][0];
    assert_eq!(layer["variant"].as_str(), Some("minbase"));
    let ours: BTreeSet<String> =
        layer["package"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap().to_string()).collect();

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

    // Built, it is merged /usr: the top directories are links into /usr, and what packages
    // ship in /bin is in /usr/bin (read by GNU cpio).
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let listing = text(&pipe("cpio", &["-tv", "--quiet"], &decompress(&out.join("minbase.cpio.zst")), None));
    for dir in ["bin", "sbin", "lib", "lib64"] {
        assert!(listing.lines().any(|l| l.starts_with('l') && l.ends_with(&format!(" {dir} -> usr/{dir}"))), "/{dir}");
        assert!(!listing.lines().any(|l| l.contains(&format!(" {dir}/"))), "nothing below /{dir} itself");
    }
    assert!(listing.lines().any(|l| l.starts_with('-') && l.ends_with(" usr/bin/bash")), "{listing}");

    // dpkg's database: dpkg itself, on the unpacked image, lists exactly the locked packages
    // (the SBOM's), and verifies every file against the packages' own md5sums.
    let root = t.path().join("root");
    std::fs::create_dir_all(&root).unwrap();
    cpio_extract(&decompress(&out.join("minbase.cpio.zst")), &root);
    let admindir = root.join("var/lib/dpkg");
    let listed = run_ok(Command::new("dpkg-query").arg(format!("--admindir={}", admindir.display())).args([
        "-W",
        "-f",
        "${Package} ${Version} ${db:Status-Abbrev}\n",
    ]));
    let installed: BTreeSet<String> = text(&listed.stdout)
        .lines()
        .map(|l| {
            assert!(l.ends_with(" ii "), "{l}");
            l.split(' ').next().unwrap().to_string()
        })
        .collect();
    assert_eq!(installed, ours);
    let sbom = manifest_sbom_packages(&out.join("minbase.spdx.json"));
    assert_eq!(sbom, ours, "dpkg's database and the SBOM agree");
    let verified = run(Command::new("dpkg").arg(format!("--root={}", root.display())).arg("--verify"));
    assert!(
        verified.status.success() && verified.stdout.is_empty(),
        "{}{}",
        text(&verified.stdout),
        text(&verified.stderr)
    );
}

/// The package names an SPDX document lists (the image itself, which has no version, left out).
fn manifest_sbom_packages(path: &std::path::Path) -> BTreeSet<String> {
    let sbom: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    sbom["packages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p.get("versionInfo").is_some())
        .map(|p| p["name"].as_str().unwrap().to_string())
        .collect()
}
