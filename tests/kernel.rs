//! `[kernel]`: a stock Debian kernel package, its modules resolved by bake from their
//! `.modinfo`, placed under `/lib/modules/VERSION/` with a `modules.dep`, and the kernel itself
//! written as `NAME.vmlinuz`. (`qemu-tests/modules.toml` boots it and loads them.)

mod common;

use common::*;

fn kernel_deb() -> std::path::PathBuf {
    let deb = repo().join("cache/debs/linux-image-cloud-amd64.deb");
    assert!(deb.exists(), "run scripts/fetch-kernel.sh (scripts/test.sh does)");
    deb
}

#[test]
fn stock_modules_come_with_their_dependencies_and_a_modules_dep() {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    Bake::build(repo().join("qemu-tests/modules.toml")).out(&out).ok();
    let manifest = manifest(&out, "modules");
    let kernel = &manifest["kernel"];
    let version = kernel["version"].as_str().unwrap();
    let modules: Vec<&str> = kernel["modules"].as_array().unwrap().iter().map(|m| m.as_str().unwrap()).collect();
    // virtio_blk needs virtio and virtio_ring; virtio_pci its transport helpers; erofs libcrc32c.
    for needed in ["virtio", "virtio_ring", "virtio_pci_modern_dev", "virtio_pci", "virtio_blk", "libcrc32c", "erofs"] {
        assert!(modules.contains(&needed), "`{needed}` missing from {modules:?}");
    }
    let position = |m: &str| modules.iter().position(|x| *x == m).unwrap();
    assert!(position("virtio") < position("virtio_blk") && position("libcrc32c") < position("erofs"), "{modules:?}");

    // The kernel written out is the package's own.
    let vmlinuz = std::fs::read(out.join("modules.vmlinuz")).unwrap();
    assert_eq!(sha256_hex(&vmlinuz), kernel["vmlinuz_sha256"].as_str().unwrap());
    // modules.toml names its kernel by package: the manifest says which .deb bake took from its
    // cache, and dpkg-deb reads the kernel out of it independently.
    let package = kernel["package"].as_str().unwrap();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cache"));
    let deb = cache.join("bake/debs").join(package.replace(':', "%3a"));
    let data = run_ok(std::process::Command::new("dpkg-deb").arg("--fsys-tarfile").arg(&deb)).stdout;
    let from_package = pipe("tar", &["-xO", &format!("./boot/vmlinuz-{version}")], &data, None);
    assert!(from_package.len() > 1 << 20, "no kernel read from `{}`", deb.display());
    assert_eq!(vmlinuz, from_package, "NAME.vmlinuz differs from the package's");
    let sums = std::fs::read_to_string(out.join("SHA256SUMS")).unwrap();
    assert!(sums.contains("  modules.vmlinuz\n"), "{sums}");

    // modules.dep in depmod's format, read back with GNU cpio.
    let root = t.path().join("x");
    cpio_extract(&decompress(&image_in(&out)), &root);
    let dir = root.join(format!("lib/modules/{version}"));
    let dep = std::fs::read_to_string(dir.join("modules.dep")).unwrap();
    let line =
        dep.lines().find(|l| l.starts_with("kernel/drivers/block/virtio_blk.ko:")).expect("a line for virtio_blk");
    assert!(
        line.contains("kernel/drivers/virtio/virtio.ko") && line.contains("kernel/drivers/virtio/virtio_ring.ko"),
        "{line}"
    );
    assert_eq!(dep.lines().count(), modules.len());
    let order = std::fs::read_to_string(dir.join("modules.load-order")).unwrap();
    assert_eq!(order.lines().count(), modules.len());
    for module in order.lines() {
        assert!(dir.join(module).is_file(), "`{module}` listed but not installed");
    }
    assert!(dir.join("modules.builtin").is_file());
}

#[test]
fn an_unknown_module_is_refused_with_the_closest_names() {
    let deb = kernel_deb();
    let t = tempfile::tempdir().unwrap();
    let recipe = write_recipe(
        t.path(),
        &format!(
            "[image]\nname = \"k\"\n[initramfs]\n[kernel]\ndeb = \"{}\"\nmodules = [\"virtio_blkk\"]\n",
            deb.display()
        ),
    );
    let stderr = Bake::build(&recipe).out(t.path().join("out")).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:6:11: unknown module `virtio_blkk`"), "{stderr}");
    assert!(stderr.contains("did you mean `virtio_blk`"), "{stderr}");
    assert!(!t.path().join("out").exists());
}
