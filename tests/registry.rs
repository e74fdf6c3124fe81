//! `bake push` and `bake pull` against a real registry (distribution 2.8, `docker-registry`),
//! read back by another client (`skopeo`): round trips, the same digest from two folders,
//! rollback by digest, and refusals (a corrupted blob, a tag moved, no credentials, bad
//! references).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use std::sync::atomic::Ordering;

/// Every file of `dir` with its bytes, by name.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

/// `REF@sha256:...` as bake prints it: the digest.
fn digest_of(printed: &str) -> String {
    printed.trim().rsplit_once('@').unwrap().1.to_string()
}

fn build(recipe: &Path, out: &Path) -> PathBuf {
    Bake::build(recipe).out(out).ok();
    out.to_path_buf()
}

#[test]
fn a_build_round_trips_through_a_registry_and_another_client_reads_it() {
    require_tool("skopeo");
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/hello.toml");
    let built = build(&recipe, &t.path().join("a"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let pushed = Bake::new("push").arg(&built).arg(&reference).ok().stdout();
    let digest = digest_of(&pushed);
    assert_eq!(pushed.trim(), format!("{reference}@{digest}"));

    // The same build from another folder, and the recipe itself: the same manifest, nothing sent.
    let again = build(&recipe, &t.path().join("b"));
    let json = Bake::new("push").arg(&again).arg(&reference).arg("--json").ok().json();
    assert_eq!(json["digest"], digest.as_str());
    assert_eq!(json["transferred"], 0, "{json:#}");
    let from_recipe = Bake::new("push").arg(&recipe).arg(format!("{}/bake/hello:v2", registry.address)).ok().stdout();
    assert_eq!(digest_of(&from_recipe), digest);

    // Another client sees bake's manifest, and copies out bytes equal to the outputs.
    let raw = run_ok(
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{reference}")),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.bake.image.v1");
    assert_eq!(manifest["annotations"]["org.opencontainers.image.created"], "1970-01-01T00:00:00Z");
    assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), digest);
    let layout = t.path().join("oci");
    run_ok(
        Command::new("skopeo")
            .args(["copy", "--src-tls-verify=false"])
            .arg(format!("docker://{reference}"))
            .arg(format!("oci:{}:v1", layout.display())),
    );
    for layer in manifest["layers"].as_array().unwrap() {
        let file = layer["annotations"]["org.opencontainers.image.title"].as_str().unwrap();
        let blob = layout.join("blobs/sha256").join(layer["digest"].as_str().unwrap().trim_start_matches("sha256:"));
        assert_eq!(std::fs::read(blob).unwrap(), std::fs::read(built.join(file)).unwrap(), "{file}");
    }

    // Pulled by tag and by digest: the same files as the build.
    let pulled = t.path().join("pulled");
    let said = Bake::new("pull").arg(&reference).out(&pulled).ok().stdout();
    assert_eq!(said.trim(), format!("{reference}@{digest}"));
    assert_eq!(files(&pulled), files(&built));
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&pulled));
    // Readable by everyone, as a build's outputs are.
    for (file, _) in files(&pulled) {
        let mode =
            std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(pulled.join(&file)).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o644, "{file}");
    }
    let by_digest = t.path().join("by-digest");
    Bake::new("pull").arg(format!("{}/bake/hello@{digest}", registry.address)).out(&by_digest).ok();
    assert_eq!(files(&by_digest), files(&built));
}

#[test]
fn a_pull_by_digest_rolls_back_and_replaces_only_the_previous_set() {
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let repository = format!("{}/bake/app", registry.address);
    let v1 = build(&repo().join("recipes/hello.toml"), &t.path().join("v1"));
    let v2 = build(&repo().join("recipes/skeleton.toml"), &t.path().join("v2"));
    let first = digest_of(&Bake::new("push").arg(&v1).arg(format!("{repository}:latest")).ok().stdout());
    let deployed = t.path().join("deployed");
    std::fs::create_dir_all(&deployed).unwrap();
    std::fs::write(deployed.join("notes.txt"), "mine\n").unwrap();
    Bake::new("pull").arg(&repository).out(&deployed).ok();
    // The tag moves on to a new version: a pull of the tag says which one arrived.
    let second = digest_of(&Bake::new("push").arg(&v2).arg(format!("{repository}:latest")).ok().stdout());
    assert_ne!(first, second);
    let said = Bake::new("pull").arg(&repository).out(&deployed).ok().stdout();
    assert_eq!(digest_of(&said), second);
    let mut want = files(&v2);
    want.push(("notes.txt".into(), b"mine\n".to_vec()));
    want.sort();
    assert_eq!(files(&deployed), want, "the first set is gone, other files stay");
    // Rollback: the earlier version by its digest.
    Bake::new("pull").arg(format!("{repository}@{first}")).out(&deployed).ok();
    let mut want = files(&v1);
    want.push(("notes.txt".into(), b"mine\n".to_vec()));
    want.sort();
    assert_eq!(files(&deployed), want);
}

#[test]
fn damage_moved_tags_missing_credentials_and_bad_references_are_refused() {
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let built = build(&repo().join("recipes/hello.toml"), &t.path().join("built"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let digest = digest_of(&Bake::new("push").arg(&built).arg(&reference).ok().stdout());

    // A blob changed in the registry's storage: the pull names the file and writes nothing.
    let image = std::fs::read_to_string(built.join("SHA256SUMS")).unwrap();
    let cpio =
        image.lines().find(|l| l.ends_with("hello.cpio.zst")).unwrap().split_whitespace().next().unwrap().to_string();
    let blob = registry.blob_file(&cpio);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&blob, &bytes).unwrap();
    let out = t.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    let stderr = Bake::new("pull").arg(&reference).out(&out).fails(1).stderr();
    assert!(stderr.contains("`hello.cpio.zst`") && stderr.contains("refusing it"), "{stderr}");
    assert!(std::fs::read_dir(&out).unwrap().next().is_none(), "nothing is written");

    // A digest the repository does not have, and one the tag does not name.
    let other = format!("sha256:{}", "0".repeat(64));
    let stderr = Bake::new("pull").arg(format!("{}/bake/hello@{other}", registry.address)).out(&out).fails(2).stderr();
    assert!(stderr.contains("has no"), "{stderr}");
    let stderr = Bake::new("pull").arg(format!("{reference}@{other}")).out(&out).fails(2).stderr();
    assert!(stderr.contains("has no"), "{stderr}");
    assert_ne!(digest, other);

    // Bad references: exit 2 before anything is asked.
    for bad in ["hello", "localhost/Upper", "localhost/app:-x", "localhost/app@sha256:12"] {
        let stderr = Bake::new("pull").arg(bad).out(&out).fails(2).stderr();
        assert!(stderr.contains("is not a registry reference"), "{bad}: {stderr}");
    }
    let stderr = Bake::new("push").arg(&built).arg(format!("{reference}@{digest}")).fails(2).stderr();
    assert!(stderr.contains("push to a tag"), "{stderr}");

    // The manifest itself changed in storage: a pull by digest refuses what came.
    let manifest = registry.blob_file(&digest);
    let mut bytes = std::fs::read(&manifest).unwrap();
    let brace = bytes.iter().rposition(|b| *b == b'}').unwrap();
    bytes.insert(brace, b' ');
    std::fs::write(&manifest, &bytes).unwrap();
    let stderr = Bake::new("pull").arg(format!("{reference}@{digest}")).out(&out).fails(1).stderr();
    assert!(stderr.contains(&digest) && stderr.contains("refusing it"), "{stderr}");
    assert!(std::fs::read_dir(&out).unwrap().next().is_none(), "nothing is written");
}

#[test]
fn credentials_come_from_dockers_config_and_its_helpers_and_are_never_printed() {
    let registry = Registry::start(true);
    let t = tempfile::tempdir().unwrap();
    let built = build(&repo().join("recipes/hello.toml"), &t.path().join("built"));
    let reference = format!("{}/bake/hello:v1", registry.address);
    let docker = t.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let push = || Bake::new("push").arg(&built).arg(&reference).env("DOCKER_CONFIG", &docker);

    // None: a clear message naming the registry and where credentials go.
    let stderr = push().fails(2).stderr();
    assert!(
        stderr.contains(&format!("registry `{}`", registry.address)) && stderr.contains("docker login"),
        "{stderr}"
    );

    // A wrong password: refused for that user, and the secret is not printed.
    let write_auth = |user_password: &str| {
        let auth = run_ok(Command::new("base64").arg("-w0").arg(write_tmp(&t, user_password)));
        let auth = String::from_utf8(auth.stdout).unwrap();
        std::fs::write(
            docker.join("config.json"),
            format!(r#"{{"auths": {{"http://{}": {{"auth": "{}"}}}}}}"#, registry.address, auth.trim()),
        )
        .unwrap();
    };
    write_auth("bake:wrong-password-42");
    let stderr = push().fails(2).stderr();
    assert!(stderr.contains("for user `bake`") && !stderr.contains("wrong-password-42"), "{stderr}");

    // `auths`, as `docker login` writes them: push and pull.
    write_auth("bake:secret");
    let digest = digest_of(&push().ok().stdout());
    let pulled = t.path().join("pulled");
    Bake::new("pull").arg(&reference).out(&pulled).env("DOCKER_CONFIG", &docker).ok();
    assert_eq!(files(&pulled), files(&built));

    // A credential helper named for this registry (`docker-credential-NAME get`).
    let bin = t.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let helper = bin.join("docker-credential-baketest");
    std::fs::write(&helper, "#!/bin/sh\nread registry\necho \"{\\\"ServerURL\\\": \\\"$registry\\\", \\\"Username\\\": \\\"bake\\\", \\\"Secret\\\": \\\"secret\\\"}\"\n").unwrap();
    run_ok(Command::new("chmod").arg("+x").arg(&helper));
    std::fs::write(docker.join("config.json"), format!(r#"{{"credHelpers": {{"{}": "baketest"}}}}"#, registry.address))
        .unwrap();
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default());
    let said =
        Bake::new("push").arg(&built).arg(&reference).env("DOCKER_CONFIG", &docker).env("PATH", &path).ok().stdout();
    assert_eq!(digest_of(&said), digest);
}

/// Writes `text` to a file in `t` and returns its path.
fn write_tmp(t: &tempfile::TempDir, text: &str) -> PathBuf {
    let path = t.path().join("scratch.txt");
    std::fs::write(&path, text).unwrap();
    path
}

/// A folder as `bake build` leaves one, with made-up outputs: `files` as (name, bytes), each
/// of noise, and their `SHA256SUMS`.
fn outputs(dir: &Path, files: &[(&str, usize)]) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    let mut sums = String::new();
    for (i, (name, len)) in files.iter().enumerate() {
        let bytes = noise(*len, i as u64 + 7);
        sums.push_str(&format!("{}  {name}\n", sha256_hex(&bytes)));
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    std::fs::write(dir.join("SHA256SUMS"), sums).unwrap();
    dir.to_path_buf()
}

const MIB: u64 = 1 << 20;

#[test]
fn dropped_connections_mid_upload_and_mid_download_are_resumed() {
    let registry = Registry::start(false);
    let proxy = Proxy::start(&registry.address);
    let t = tempfile::tempdir().unwrap();
    let dir = outputs(&t.path().join("big"), &[("big.erofs", 40 << 20)]);
    let reference = format!("{}/bake/big:v1", proxy.address);

    // Cut in the second chunk of the upload: the push goes on and succeeds. (distribution 2.8
    // drops an upload whose stored bytes ran past its state token, so bake asks where the
    // upload stands, hears it is gone, and sends the blob again: 24 + 40 MiB.)
    proxy.cut_after(Way::Up, 24 * MIB, || {});
    let pushed = Bake::new("push").arg(&dir).arg(&reference).ok();
    assert!(pushed.stderr().contains("going on"), "{}", pushed.stderr());
    let sent = proxy.up.load(Ordering::SeqCst);
    eprintln!("40 MiB pushed through a cut at 24 MiB: {:.1} MiB went up", sent as f64 / MIB as f64);
    assert!(sent < 66 * MIB, "{sent}");

    // Cut in the download: it resumes from the bytes that arrived (`Range`), not from 0.
    proxy.cut_after(Way::Down, 10 * MIB, || {});
    let before = proxy.down.load(Ordering::SeqCst);
    let pulled = t.path().join("pulled");
    let said = Bake::new("pull").arg(&reference).out(&pulled).ok();
    assert!(said.stderr().contains("going on"), "{}", said.stderr());
    let came = proxy.down.load(Ordering::SeqCst) - before;
    eprintln!("40 MiB pulled through a cut at 10 MiB: {:.1} MiB came down", came as f64 / MIB as f64);
    assert!(came < 41 * MIB, "resumed, not fetched again: {came}");
    assert_eq!(files(&pulled), files(&dir));
}

#[test]
fn a_registry_stopped_mid_push_gets_only_what_it_lacks_on_the_next_push() {
    let registry = Registry::start(false);
    let proxy = Proxy::start(&registry.address);
    let t = tempfile::tempdir().unwrap();
    let dir = outputs(&t.path().join("set"), &[("a.erofs", 6 << 20), ("b.img", 6 << 20), ("c.verity", 6 << 20)]);
    let reference = format!("{}/bake/set:v1", proxy.address);

    // The registry stops in the middle of `b.img`: the push fails, naming it, after its tries.
    proxy.cut_after(Way::Up, 9 * MIB, registry.stopper());
    let stderr = Bake::new("push").arg(&dir).arg(&reference).fails(1).stderr();
    assert!(stderr.contains(&format!("registry `{}`", proxy.address)) && stderr.contains("tries"), "{stderr}");

    // Back up: the next push sends only what did not arrive.
    registry.restart();
    let before = proxy.up.load(Ordering::SeqCst);
    let json = Bake::new("push").arg(&dir).arg(&reference).arg("--json").ok().json();
    let sent = proxy.up.load(Ordering::SeqCst) - before;
    assert!(json["already_there"].as_u64().unwrap() >= 3, "the config, SHA256SUMS and a.erofs: {json:#}");
    assert!(sent < 13 * MIB, "b.img and c.verity only: {sent}");
    let pulled = t.path().join("pulled");
    Bake::new("pull").arg(&reference).out(&pulled).ok();
    assert_eq!(files(&pulled), files(&dir));
}

#[test]
fn a_disk_full_while_pulling_leaves_the_previous_set_whole() {
    require_tool("unshare");
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let small = outputs(&t.path().join("small"), &[("small.erofs", 200 << 10)]);
    let big = outputs(&t.path().join("big"), &[("big.erofs", 3 << 20)]);
    for (dir, tag) in [(&small, "small"), (&big, "big")] {
        Bake::new("push").arg(dir).arg(format!("{}/bake/disk:{tag}", registry.address)).ok();
    }
    // A 2 MiB file system of its own, in a mount namespace of its own.
    let mnt = t.path().join("mnt");
    std::fs::create_dir_all(&mnt).unwrap();
    let script = format!(
        "mount -t tmpfs -o size=2m tmpfs {mnt} || exit 99
         {bake} pull -q {address}/bake/disk:small -o {mnt} >/dev/null || exit 98
         {bake} pull {address}/bake/disk:big -o {mnt}
         echo rc=$?
         cd {mnt} && ls -A && sha256sum -c SHA256SUMS",
        mnt = mnt.display(),
        bake = env!("CARGO_BIN_EXE_bake"),
        address = registry.address
    );
    let output = run(Command::new("unshare").args(["-r", "-m", "sh", "-c", &script]));
    let (stdout, stderr) = (text(&output.stdout), text(&output.stderr));
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{stderr}");
    assert!(stdout.contains("rc=1"), "{stdout}\n{stderr}");
    assert!(stderr.to_lowercase().contains("no space left") && stderr.contains(&mnt.display().to_string()), "{stderr}");
    let listed: Vec<&str> = stdout.lines().filter(|l| !l.starts_with("rc=") && !l.contains(": OK")).collect();
    assert_eq!(listed, ["SHA256SUMS", "small.erofs"], "nothing half written: {stdout}");
    assert!(stdout.contains("small.erofs: OK"), "{stdout}");
}

#[test]
fn two_builders_sharing_a_remote_cache_build_a_recipe_once() {
    require_tool("skopeo");
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/hello.toml");
    let remote = format!("{}/bake/cache", registry.address);
    let builder = |cache: &str, out: &str| {
        Bake::build(&recipe)
            .allow_cache()
            .arg("--cache")
            .arg(t.path().join(cache))
            .out(t.path().join(out))
            .arg("--json")
    };

    // The first builder misses, builds and sends the outputs.
    let first = builder("cache-a", "a").arg("--remote-cache").arg(&remote).ok();
    assert_eq!(first.json()["cached"], false, "{}", first.stderr());
    // Another builder (its own cache folder) takes them from the registry: the same bytes.
    let second = builder("cache-b", "b").arg("--remote-cache").arg(&remote).ok();
    assert_eq!(second.json()["cached"], true, "{}", second.stderr());
    assert!(second.stderr().contains("from the remote cache"), "{}", second.stderr());
    assert_eq!(files(&t.path().join("b")), files(&t.path().join("a")));
    // ... and keeps them in its own cache: without the registry, a local hit.
    assert_eq!(builder("cache-b", "c").ok().json()["cached"], true);
    assert_eq!(files(&t.path().join("c")), files(&t.path().join("a")));

    // The entry is an artifact another client reads, tagged by the key.
    let tags =
        run_ok(Command::new("skopeo").args(["list-tags", "--tls-verify=false"]).arg(format!("docker://{remote}")));
    let tags: serde_json::Value = serde_json::from_slice(&tags.stdout).unwrap();
    let tag = tags["Tags"][0].as_str().unwrap().to_string();
    assert!(tag.starts_with("cache-") && tag.len() == 70, "{tags}");
    let raw = run_ok(
        Command::new("skopeo").args(["inspect", "--raw", "--tls-verify=false"]).arg(format!("docker://{remote}:{tag}")),
    );
    let manifest: serde_json::Value = serde_json::from_slice(&raw.stdout).unwrap();
    assert_eq!(manifest["artifactType"], "application/vnd.bake.cache.v1");

    // A damaged entry: a warning naming it, a real build, the same bytes.
    let cpio = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["annotations"]["org.opencontainers.image.title"] == "hello.cpio.zst")
        .unwrap()["digest"]
        .as_str()
        .unwrap()
        .to_string();
    let blob = registry.blob_file(&cpio);
    let mut bytes = std::fs::read(&blob).unwrap();
    bytes[10] ^= 0xff;
    std::fs::write(&blob, bytes).unwrap();
    let damaged = builder("cache-d", "d").arg("--remote-cache").arg(&remote).ok();
    assert_eq!(damaged.json()["cached"], false);
    assert!(
        damaged.stderr().contains("remote cache") && damaged.stderr().contains("refusing it"),
        "{}",
        damaged.stderr()
    );
    assert_eq!(files(&t.path().join("d")), files(&t.path().join("a")));

    // A repository is named, not a tag.
    let stderr = builder("cache-e", "e").arg("--remote-cache").arg(format!("{remote}:v1")).fails(2).stderr();
    assert!(stderr.contains("without a tag"), "{stderr}");
}

#[test]
fn every_example_round_trips_and_has_one_digest_from_two_folders() {
    let registry = Registry::start(false);
    let t = tempfile::tempdir().unwrap();
    let examples: Vec<PathBuf> = std::fs::read_dir(repo().join("recipes"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    assert!(examples.len() >= 6, "{examples:?}");
    for example in examples {
        let name = example.file_stem().unwrap().to_string_lossy().into_owned();
        let built = build(&usable(&example), &t.path().join(&name).join("a"));
        let copy = t.path().join(&name).join("b");
        run_ok(Command::new("cp").arg("-R").arg(&built).arg(&copy));
        let reference = format!("{}/bake/examples:{name}", registry.address);
        let digest = digest_of(&Bake::new("push").arg(&built).arg(&reference).ok().stdout());
        let again = Bake::new("push").arg(&copy).arg(&reference).arg("--json").ok().json();
        assert_eq!(again["digest"], digest.as_str(), "{name}");
        assert_eq!(again["transferred"], 0, "{name}: {again:#}");
        let pulled = t.path().join(&name).join("pulled");
        let said = Bake::new("pull").arg(format!("{}/bake/examples@{digest}", registry.address)).out(&pulled).ok();
        assert_eq!(digest_of(&said.stdout()), digest, "{name}");
        assert_eq!(files(&pulled), files(&built), "{name}");
    }
}

#[test]
fn bearer_tokens_are_asked_for_with_the_scope_of_each_operation() {
    require_tool("skopeo");
    let t = tempfile::tempdir().unwrap();
    let built = build(&repo().join("recipes/hello.toml"), &t.path().join("built"));

    // A token service that gives anyone a token: bake asks for exactly what it does.
    let (service, auth) = TokenService::start(false);
    let registry = Registry::start_with(|_| auth.clone());
    let reference = format!("{}/bake/hello:v1", registry.address);
    let digest = digest_of(&Bake::new("push").arg(&built).arg(&reference).ok().stdout());
    assert!(service.scopes().contains(&"repository:bake/hello:pull,push".to_string()), "{:?}", service.scopes());
    let pulled = t.path().join("pulled");
    Bake::new("pull").arg(&reference).out(&pulled).ok();
    assert_eq!(files(&pulled), files(&built));
    assert_eq!(service.scopes().last().map(String::as_str), Some("repository:bake/hello:pull"));
    // The registry checks tokens: without one, 401 and the challenge.
    let unauthorized = run(Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}"])
        .arg(format!("http://{}/v2/bake/hello/manifests/v1", registry.address)));
    assert_eq!(text(&unauthorized.stdout), "401");

    // One that wants credentials: none is exit 2 naming the registry; docker's are sent to it.
    let (service, auth) = TokenService::start(true);
    let registry = Registry::start_with(|_| auth.clone());
    let reference = format!("{}/bake/hello:v1", registry.address);
    let docker = t.path().join("docker");
    std::fs::create_dir_all(&docker).unwrap();
    let push = || Bake::new("push").arg(&built).arg(&reference).env("DOCKER_CONFIG", &docker);
    let stderr = push().fails(2).stderr();
    assert!(
        stderr.contains(&format!("registry `{}`", registry.address)) && stderr.contains("docker login"),
        "{stderr}"
    );
    std::fs::write(
        docker.join("config.json"),
        format!(r#"{{"auths": {{"{}": {{"username": "bake", "password": "secret"}}}}}}"#, registry.address),
    )
    .unwrap();
    assert_eq!(digest_of(&push().ok().stdout()), digest);
    assert!(service.requests.lock().unwrap().last().unwrap().1, "the credentials went to the token service");
    // Another client, doing its own token exchange, reads bake's manifest.
    let raw = run_ok(
        Command::new("skopeo")
            .args(["inspect", "--raw", "--tls-verify=false", "--creds", "bake:secret"])
            .arg(format!("docker://{reference}")),
    );
    assert_eq!(format!("sha256:{}", sha256_hex(&raw.stdout)), digest);
}
