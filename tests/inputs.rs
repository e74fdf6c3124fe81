//! A lock that still builds after the distribution moved on: the pinned packages of
//! `recipes/jq.toml` come back byte for byte from a snapshot archive (a snapshot-layout folder
//! served on loopback, since Debian's is not reachable from here) and from a folder
//! `bake vendor` wrote, with apt's lists made empty, and any other bytes are refused.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A copy of `recipes/jq.toml` and its lock (re-locked when Debian has replaced a pinned
/// version since), in `dir`.
fn jq_copy(dir: &Path) -> PathBuf {
    let recipe = usable(&repo().join("recipes/jq.toml"));
    let copy = dir.join("jq.toml");
    std::fs::copy(&recipe, &copy).unwrap();
    std::fs::copy(recipe.with_extension("lock"), copy.with_extension("lock")).unwrap();
    run_ok(Command::new("cp").arg("-R").arg(repo().join("recipes/jq")).arg(dir));
    copy
}

/// An `APT_CONFIG` under which apt has no package lists: apt cannot be asked for anything.
fn no_apt(dir: &Path) -> PathBuf {
    let lists = dir.join("empty-lists");
    std::fs::create_dir_all(lists.join("partial")).unwrap();
    let config = dir.join("apt.conf");
    std::fs::write(
        &config,
        format!(
            "Dir::State::Lists \"{}\";\nDir::Etc::SourceList \"/dev/null\";\nDir::Etc::SourceParts \"{}\";\n",
            lists.display(),
            lists.display()
        ),
    )
    .unwrap();
    config
}

/// The locked packages of `lock`: (filename below the archive, archive, snapshot time, sha256).
fn pinned(lock: &Path) -> Vec<(String, String, String, String)> {
    let text = std::fs::read_to_string(lock).unwrap();
    let lock: toml::Value = toml::from_str(&text).unwrap();
    let mut out = Vec::new();
    for layer in lock["layer"].as_array().unwrap() {
        for p in layer["package"].as_array().unwrap() {
            let field =
                |k: &str| p.get(k).and_then(|v| v.as_str()).unwrap_or_else(|| panic!("no `{k}` in {p}")).to_string();
            out.push((field("filename"), field("archive"), field("snapshot"), field("sha256")));
        }
    }
    out
}

fn sums(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("SHA256SUMS")).unwrap()
}

/// The build everything else must equal: with apt, into a cache of its own (in `dir`); returns
/// that cache and the build's SHA256SUMS.
fn original_build(dir: &Path, recipe: &Path) -> (PathBuf, String) {
    let cache = dir.join("cache-apt");
    Bake::build(recipe).arg("--locked").arg("--cache").arg(&cache).out(dir.join("original")).ok();
    (cache, sums(&dir.join("original")))
}

#[test]
fn a_locked_recipe_rebuilds_identically_from_a_snapshot_archive_and_from_a_vendored_folder_alone() {
    let t = tempfile::tempdir().unwrap();
    let recipe = jq_copy(t.path());
    let lock = recipe.with_extension("lock");
    // The original build, with apt.
    let (first_cache, original) = original_build(t.path(), &recipe);

    // `bake vendor` copies what the lock pins, from the cache the build filled.
    let vendor = t.path().join("vendor");
    let said = Bake::new("vendor").arg(&recipe).arg(&vendor).arg("--cache").arg(&first_cache).ok().stdout();
    assert!(said.contains("7 pinned inputs"), "{said}");

    // A snapshot archive holding the pinned packages where the lock says.
    let archive = t.path().join("snapshot");
    for (filename, name, time, sha256) in pinned(&lock) {
        let place = archive.join(&name).join(&time).join(&filename);
        std::fs::create_dir_all(place.parent().unwrap()).unwrap();
        std::fs::copy(apt_vendored(&vendor, &sha256), &place).unwrap();
    }
    let mirror = serve_folder(&archive);
    let apt_config = no_apt(t.path());
    let from_mirror = t.path().join("from-mirror");
    let built = Bake::build(&recipe)
        .arg("--locked")
        .arg("-v")
        .arg("--cache")
        .arg(t.path().join("cache-mirror"))
        .env("APT_CONFIG", &apt_config)
        .env("BAKE_SNAPSHOT_MIRROR", &mirror)
        .out(&from_mirror)
        .ok();
    assert_eq!(sums(&from_mirror), original, "the snapshot archive gave other bytes");
    assert!(built.stderr().contains("from the snapshot archive"), "{}", built.stderr());

    // Without the mirror, apt having no lists, the build says where the bytes could come from.
    let stderr = Bake::build(&recipe)
        .arg("--locked")
        .arg("--cache")
        .arg(t.path().join("cache-none"))
        .env("APT_CONFIG", &apt_config)
        .env_remove("BAKE_SNAPSHOT_MIRROR")
        .out(t.path().join("none"))
        .fails(2)
        .stderr();
    assert!(stderr.contains("apt has no package lists"), "{stderr}");

    // A build from the vendored folder alone: no apt, no mirror, a new cache.
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&vendor));
    // A folder to commit: every file readable by everyone.
    let vendored = std::fs::read_dir(vendor.join("sha256")).unwrap().map(|e| e.unwrap().path());
    for path in vendored.chain([vendor.join("index.json"), vendor.join("SHA256SUMS")]) {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o644, "{}", path.display());
    }
    let index: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(vendor.join("index.json")).unwrap()).unwrap();
    assert!(
        index["inputs"].as_array().unwrap().iter().any(|i| i["name"] == "jq" && i["kind"] == "package"),
        "{index:#}"
    );
    let from_vendor = t.path().join("from-vendor");
    Bake::build(&recipe)
        .arg("--locked")
        .arg("--inputs")
        .arg(&vendor)
        .arg("--cache")
        .arg(t.path().join("cache-vendor"))
        .env("APT_CONFIG", &apt_config)
        .env_remove("BAKE_SNAPSHOT_MIRROR")
        .out(&from_vendor)
        .ok();
    assert_eq!(sums(&from_vendor), original, "the vendored folder gave other bytes");
    // BAKE_INPUTS says the same as --inputs; vendoring again copies nothing.
    let from_env = t.path().join("from-env");
    Bake::build(&recipe)
        .arg("--locked")
        .arg("--cache")
        .arg(t.path().join("cache-env"))
        .env("APT_CONFIG", &apt_config)
        .env("BAKE_INPUTS", &vendor)
        .out(&from_env)
        .ok();
    assert_eq!(sums(&from_env), original);
    let again = Bake::new("vendor").arg(&recipe).arg(&vendor).arg("--cache").arg(&first_cache).ok().stdout();
    assert!(again.contains(", 0 copied now"), "{again}");
}

#[test]
fn other_bytes_from_any_source_and_a_time_the_archive_lacks_are_refused() {
    let t = tempfile::tempdir().unwrap();
    let recipe = jq_copy(t.path());
    let lock = recipe.with_extension("lock");
    let first_cache = t.path().join("cache-apt");
    let vendor = t.path().join("vendor");
    Bake::new("vendor").arg(&recipe).arg(&vendor).arg("--cache").arg(&first_cache).ok();
    let apt_config = no_apt(t.path());
    let (filename, name, time, sha256) = pinned(&lock).into_iter().find(|p| p.0.contains("/jq_")).unwrap();

    // A vendored file changed after vendoring.
    let vendored = vendor.join("sha256").join(&sha256);
    let mut bytes = std::fs::read(&vendored).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&vendored, &bytes).unwrap();
    let build = |cache: &str| {
        Bake::build(&recipe)
            .arg("--locked")
            .arg("--cache")
            .arg(t.path().join(cache))
            .env("APT_CONFIG", &apt_config)
            .out(t.path().join("out"))
    };
    let stderr = build("c1").arg("--inputs").arg(&vendor).fails(2).stderr();
    assert!(stderr.contains("`jq`") && stderr.contains("in the vendored folder has sha256"), "{stderr}");

    // The snapshot archive serving other bytes under the pinned name.
    let archive = t.path().join("snapshot");
    for (f, n, tm, s) in pinned(&lock) {
        let place = archive.join(&n).join(&tm).join(&f);
        std::fs::create_dir_all(place.parent().unwrap()).unwrap();
        std::fs::copy(apt_vendored(&vendor, &s), &place).unwrap();
    }
    let mirror = serve_folder(&archive);
    let stderr = build("c2").env("BAKE_SNAPSHOT_MIRROR", &mirror).fails(2).stderr();
    assert!(stderr.contains("`jq`") && stderr.contains("the snapshot archive served"), "{stderr}");
    assert!(
        !t.path().join("c2/debs").join(Path::new(&filename).file_name().unwrap()).exists(),
        "refused bytes are not kept"
    );

    // A lock naming a time the archive does not keep.
    let text = std::fs::read_to_string(&lock).unwrap();
    std::fs::write(&lock, text.replace(&format!("snapshot = \"{time}\""), "snapshot = \"19990101T000000Z\"")).unwrap();
    let stderr = build("c3").env("BAKE_SNAPSHOT_MIRROR", &mirror).fails(2).stderr();
    assert!(
        stderr.contains("the snapshot archive has no") && stderr.contains(&format!("/{name}/19990101T000000Z/")),
        "{stderr}"
    );

    // Vendoring needs a lock: it copies what the lock pins.
    let unlocked = write_recipe(t.path(), "[image]\nname = \"u\"\n[[layer]]\npackages = [\"jq\"]\n");
    let stderr = Bake::new("vendor").arg(&unlocked).fails(2).stderr();
    assert!(stderr.contains("has no lock file") && stderr.contains("run `bake lock"), "{stderr}");
    assert!(!t.path().join("vendor-u").exists() && !t.path().join("vendor").join("index.json.part").exists());

    // A lock whose snapshot fields could name another path is refused before use.
    std::fs::write(&lock, text.replace(&format!("archive = \"{name}\""), "archive = \"../etc\"")).unwrap();
    let stderr = build("c4").env("BAKE_SNAPSHOT_MIRROR", &mirror).fails(2).stderr();
    assert!(stderr.contains("not an archive's name"), "{stderr}");
}

/// Where `bake vendor` keeps the file with `sha256`.
fn apt_vendored(vendor: &Path, sha256: &str) -> PathBuf {
    vendor.join("sha256").join(sha256)
}

#[test]
fn a_locked_recipe_rebuilds_identically_from_a_registry_alone_and_other_bytes_there_are_refused() {
    require_tool("skopeo");
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let recipe = jq_copy(t.path());
    let lock = recipe.with_extension("lock");
    let (first_cache, original) = original_build(t.path(), &recipe);

    // The pinned inputs into a registry: one artifact, each blob's digest the lock's sha256.
    let reference = format!("{}/bake/inputs:jq", registry.address);
    let json = Bake::new("push")
        .arg("--inputs")
        .arg(&recipe)
        .arg(&reference)
        .arg("--cache")
        .arg(&first_cache)
        .arg("--json")
        .ok()
        .json();
    assert_eq!(json["files"].as_array().unwrap().len(), 8, "7 packages and index.json: {json:#}");
    let raw = run_ok(
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.bake.inputs.v1");
    let digests: Vec<String> =
        manifest["layers"].as_array().unwrap().iter().map(|l| l["digest"].as_str().unwrap().to_string()).collect();
    for (_, _, _, sha256) in pinned(&lock) {
        assert!(digests.contains(&format!("sha256:{sha256}")), "{sha256} not in {digests:?}");
    }

    // A build from the registry alone: apt without lists, no mirror, a new cache.
    let apt_config = no_apt(t.path());
    let build = |cache: &str, out: &str| {
        Bake::build(&recipe)
            .arg("--locked")
            .arg("-v")
            .arg("--cache")
            .arg(t.path().join(cache))
            .arg("--inputs-from")
            .arg(format!("{}/bake/inputs", registry.address))
            .env("APT_CONFIG", &apt_config)
            .env_remove("BAKE_SNAPSHOT_MIRROR")
            .env_remove("BAKE_INPUTS")
            .out(t.path().join(out))
    };
    let built = build("cache-registry", "from-registry").ok();
    assert_eq!(sums(&t.path().join("from-registry")), original, "the registry gave other bytes");
    assert!(built.stderr().contains("from the input store"), "{}", built.stderr());

    // Other bytes in the registry under a pinned digest: refused, naming the package and the
    // store, and not kept.
    let (filename, _, _, sha256) = pinned(&lock).into_iter().find(|p| p.0.contains("/jq_")).unwrap();
    let blob = registry.blob_file(&sha256);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[200] ^= 1;
    std::fs::write(&blob, bytes).unwrap();
    let stderr = build("cache-tampered", "tampered").fails(1).stderr();
    assert!(stderr.contains("`jq`") && stderr.contains("input store") && stderr.contains("refusing it"), "{stderr}");
    assert!(
        !t.path().join("cache-tampered/debs").join(Path::new(&filename).file_name().unwrap()).exists(),
        "refused bytes are not kept"
    );

    // A repository is named, not a tag.
    let stderr = Bake::build(&recipe).arg("--inputs-from").arg(&reference).out(t.path().join("x")).fails(2).stderr();
    assert!(stderr.contains("without a tag"), "{stderr}");
}
