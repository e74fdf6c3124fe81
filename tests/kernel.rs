//! `[kernel]`: a stock Debian kernel package, its modules resolved by bake from their
//! `.modinfo`, placed under `/lib/modules/VERSION/` with a `modules.dep`, and the kernel itself
//! written as `NAME.vmlinuz`. (`qemu-tests/modules.toml` boots it and loads them.)

mod common;

use std::process::Command;

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

/// The files depmod writes, in its order.
const DEPMOD_FILES: [&str; 10] = [
    "modules.dep",
    "modules.dep.bin",
    "modules.alias",
    "modules.alias.bin",
    "modules.softdep",
    "modules.symbols",
    "modules.symbols.bin",
    "modules.builtin.bin",
    "modules.builtin.alias.bin",
    "modules.devname",
];

#[test]
fn the_module_indexes_are_depmods_byte_for_byte_and_kmod_resolves_aliases_with_them() {
    let t = tempfile::tempdir().unwrap();
    // Modules with names spelt with `-` (dm-mod), soft dependencies (ext4), device names (loop,
    // dm-mod), weak symbols and a deep tree (nf_tables), beside the usual virtio drivers.
    let recipe = write_recipe(
        t.path(),
        r#"
[image]
name = "indexes"

[initramfs]
compression = "none"

[kernel]
package = "linux-image-cloud-amd64"
modules = ["virtio_pci", "virtio_blk", "virtio_net", "erofs", "dm_verity", "evdev", "button", "ext4", "nf_tables", "loop"]
"#,
    );
    let out = t.path().join("out");
    Bake::build(&recipe).out(&out).ok();
    let version = manifest(&out, "indexes")["kernel"]["version"].as_str().unwrap().to_string();
    let root = t.path().join("image");
    cpio_extract(&std::fs::read(out.join("indexes.cpio")).unwrap(), &root);
    let dir = root.join(format!("lib/modules/{version}"));

    // The host's depmod over the same modules and the package's own lists.
    let theirs = t.path().join("depmod");
    let their_dir = theirs.join(format!("lib/modules/{version}"));
    std::fs::create_dir_all(&their_dir).unwrap();
    run_ok(Command::new("cp").arg("-a").arg(dir.join("kernel")).arg(&their_dir));
    for list in ["modules.order", "modules.builtin", "modules.builtin.modinfo"] {
        std::fs::copy(dir.join(list), their_dir.join(list)).unwrap();
    }
    run_ok(Command::new("depmod").arg("-b").arg(&theirs).arg(&version));
    for file in DEPMOD_FILES {
        let ours = std::fs::read(dir.join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        let depmods = std::fs::read(their_dir.join(file)).unwrap();
        assert!(ours == depmods, "{file} differs from depmod's ({} bytes against {})", ours.len(), depmods.len());
    }
    let devname = std::fs::read_to_string(dir.join("modules.devname")).unwrap();
    assert!(devname.contains("dm_mod mapper/control c10:236\n"), "{devname}");

    // kmod's modprobe, reading only the binary indexes, resolves aliases as udev asks for them
    // (the virtio-net device, the ACPI power button, a file system) and dependencies by name.
    let modprobe = |args: &[&str]| {
        let out = run_ok(Command::new("modprobe").arg("-d").arg(&root).args(["-S", &version]).args(args));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(modprobe(&["-R", "virtio:d00000001v00001AF4"]), "virtio_net\n");
    assert_eq!(modprobe(&["-R", "acpi:PNP0C0C:"]), "button\n");
    assert_eq!(modprobe(&["-R", "fs-erofs"]), "erofs\n");
    let loads = modprobe(&["--show-depends", "dm-verity"]);
    let order: Vec<&str> = loads.lines().filter_map(|l| l.rsplit('/').next()).map(str::trim).collect();
    assert_eq!(order, ["reed_solomon.ko", "dm-mod.ko", "dm-bufio.ko", "dm-verity.ko"], "{loads}");
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
