//! `[disk] boot = "uefi"`: a disk that boots with firmware alone. Its EFI system partition and
//! unified kernel image are read back by independent tools (`sgdisk`, `fsck.vfat`, `mtools`,
//! `objdump`, `objcopy`) and by `bake inspect` and `bake diff`, and its mistakes are refused.
//! (`recipes/appliance-uefi.toml` boots under OVMF in `tests/qemu.rs`;
//! `qemu-tests/must-fail/uefi-silent.toml` fails for a silent console.)

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// A partition of `img` as sgdisk describes it (`-i N`): the value after `key`.
fn sgdisk_field(img: &Path, partition: u32, key: &str) -> String {
    let out = run_ok(Command::new("sgdisk").arg("-i").arg(partition.to_string()).arg(img));
    let said = text(&out.stdout);
    let line = said.lines().find(|l| l.starts_with(key)).unwrap_or_else(|| panic!("no `{key}` in {said}"));
    line[key.len()..].trim().split(' ').next().unwrap().to_string()
}

/// Partition `n` of `img`, copied out into `to`.
fn partition(img: &Path, n: u32, to: &Path) -> PathBuf {
    let first: u64 = sgdisk_field(img, n, "First sector:").parse().unwrap();
    let last: u64 = sgdisk_field(img, n, "Last sector:").parse().unwrap();
    let disk = std::fs::read(img).unwrap();
    std::fs::write(to, &disk[(first * 512) as usize..((last + 1) * 512) as usize]).unwrap();
    to.to_path_buf()
}

/// `objcopy --dump-section NAME=FILE` of `efi`.
fn section(efi: &Path, name: &str, dir: &Path) -> Vec<u8> {
    let file = dir.join(format!("section{name}"));
    run_ok(
        Command::new("objcopy")
            .arg("--dump-section")
            .arg(format!("{name}={}", file.display()))
            .arg(efi)
            .arg(dir.join("discard.efi")),
    );
    std::fs::read(file).unwrap()
}

/// The smallest EFI application `bake` takes as systemd's stub: PE32+ headers for x86-64 and
/// one section named `.sdmagic`.
fn minimal_stub() -> Vec<u8> {
    let mut image = vec![0u8; 0x600];
    let mut put = |at: usize, bytes: &[u8]| image[at..at + bytes.len()].copy_from_slice(bytes);
    put(0, b"MZ");
    put(0x3c, &0x40u32.to_le_bytes());
    put(0x40, b"PE\0\0");
    put(0x44, &0x8664u16.to_le_bytes());
    put(0x46, &1u16.to_le_bytes());
    put(0x54, &240u16.to_le_bytes());
    let optional = 0x58;
    put(optional, &0x20bu16.to_le_bytes());
    for (at, value) in [(32, 0x200u32), (36, 0x200), (56, 0x1200), (60, 0x400), (108, 16)] {
        put(optional + at, &value.to_le_bytes());
    }
    put(optional + 68, &10u16.to_le_bytes());
    let section = optional + 240;
    put(section, b".sdmagic");
    for (at, value) in [(8, 0x1f0u32), (12, 0x1000), (16, 0x200), (20, 0x400), (36, 0x4000_0040)] {
        put(section + at, &value.to_le_bytes());
    }
    image
}

/// Builds `recipes/appliance-uefi.toml` into a temporary folder.
fn built() -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    let out = t.path().join("out");
    Bake::build(usable(&repo().join("recipes/appliance-uefi.toml"))).out(&out).ok();
    (t, out)
}

#[test]
fn independent_tools_accept_the_esp_and_the_unified_kernel_image() {
    for tool in ["sgdisk", "fsck.vfat", "mcopy", "objdump", "objcopy", "veritysetup"] {
        require_tool(tool);
    }
    let (t, out) = built();
    let (img, efi) = (out.join("appliance-uefi.img"), out.join("appliance-uefi.efi"));
    run_ok(Command::new("sha256sum").args(["-c", "--quiet", "SHA256SUMS"]).current_dir(&out));
    // The SBOM lists what the unified kernel image holds too: the stub, the stage-1's kernel
    // package and its packages.
    let sbom: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("appliance-uefi.spdx.json")).unwrap()).unwrap();
    let names: Vec<&str> = sbom["packages"].as_array().unwrap().iter().map(|p| p["name"].as_str().unwrap()).collect();
    for wanted in ["systemd-boot-efi", "dmsetup", "busybox-static"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    assert!(names.iter().any(|n| n.starts_with("linux-image-")), "{names:?}");
    assert_eq!(names.iter().filter(|n| **n == "busybox-static").count(), 1, "{names:?}");

    // The disk: the ESP first, then the root and its hash tree.
    let verify = run_ok(Command::new("sgdisk").arg("-v").arg(&img));
    assert!(text(&verify.stdout).contains("No problems found"), "{}", text(&verify.stdout));
    assert_eq!(sgdisk_field(&img, 1, "Partition GUID code:"), "C12A7328-F81F-11D2-BA4B-00A0C93EC93B");
    assert_eq!(sgdisk_field(&img, 2, "Partition GUID code:"), "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    assert_eq!(sgdisk_field(&img, 3, "Partition GUID code:"), "2C7357ED-EBD2-46D9-AEC1-23D437EC2BF5");
    let root_guid = sgdisk_field(&img, 2, "Partition unique GUID:").to_lowercase();

    // The ESP is a FAT file system dosfstools finds sound, holding the UKI at the removable-media
    // path, byte for byte `NAME.efi`.
    let esp = partition(&img, 1, &t.path().join("esp.img"));
    let fsck = run(Command::new("fsck.vfat").arg("-n").arg(&esp));
    assert!(fsck.status.success(), "fsck.vfat -n:\n{}{}", text(&fsck.stdout), text(&fsck.stderr));
    let copied = t.path().join("BOOTX64.EFI");
    run_ok(Command::new("mcopy").arg("-i").arg(&esp).arg("::/EFI/BOOT/BOOTX64.EFI").arg(&copied));
    assert_eq!(std::fs::read(&copied).unwrap(), std::fs::read(&efi).unwrap());

    // The UKI: the stub's sections, then ours, one after another, as binutils reads them.
    let dump = text(&run_ok(Command::new("objdump").arg("-h").arg(&efi)).stdout);
    let names: Vec<&str> =
        dump.lines().filter_map(|l| l.split_whitespace().nth(1)).filter(|n| n.starts_with('.')).collect();
    let ours = [".osrel", ".cmdline", ".uname", ".initrd", ".linux"];
    assert_eq!(&names[names.len() - ours.len()..], &ours, "{dump}");
    assert!(names.contains(&".text") && names.contains(&".sdmagic"), "{dump}");
    let cmdline = String::from_utf8(section(&efi, ".cmdline", t.path())).unwrap();
    let root_hash = manifest(&out, "appliance-uefi")["verity"]["root_hash"].as_str().unwrap().to_string();
    assert_eq!(cmdline, format!("console=ttyS0 panic=-1 quiet root=PARTUUID={root_guid} roothash={root_hash}"));
    assert_eq!(root_guid.replace('-', ""), root_hash[..32]);
    let osrel = String::from_utf8(section(&efi, ".osrel", t.path())).unwrap();
    assert!(osrel.contains("IMAGE_ID=appliance-uefi"), "{osrel}");
    let uname = String::from_utf8(section(&efi, ".uname", t.path())).unwrap();
    assert!(uname.ends_with("-cloud-amd64"), "{uname}");
    // `.linux` is the stage-1's kernel, `.initrd` its initramfs, as its own build writes them.
    let stage1 = t.path().join("stage1");
    Bake::build(repo().join("recipes/appliance-boot.toml")).out(&stage1).ok();
    assert_eq!(section(&efi, ".linux", t.path()), std::fs::read(stage1.join("appliance-boot.vmlinuz")).unwrap());
    assert_eq!(section(&efi, ".initrd", t.path()), std::fs::read(stage1.join("appliance-boot.cpio.zst")).unwrap());

    // bake reads both back: the ESP's files and the UKI's sections, with their digests.
    let listing = Bake::new("inspect").arg(&img).ok().stdout();
    assert!(listing.contains("# fat file system at byte 1048576 in GPT partition 1 (`esp`)"), "{listing}");
    assert!(listing.contains(" EFI/BOOT/BOOTX64.EFI"), "{listing}");
    let sections = Bake::new("inspect").arg("--json").arg(&efi).ok().json();
    let entries = sections["archives"][0]["entries"].as_array().unwrap();
    let cmdline_entry = entries.iter().find(|e| e["name"] == ".cmdline").expect("a .cmdline entry");
    assert_eq!(cmdline_entry["sha256"], sha256_hex(cmdline.as_bytes()));
}

#[test]
fn diff_explains_two_disks_down_to_the_section() {
    let t = tempfile::tempdir().unwrap();
    let recipe = repo().join("recipes/appliance-uefi.toml");
    let (a, b) = (t.path().join("a"), t.path().join("b"));
    Bake::build(&recipe).out(&a).ok();
    // Another root (one file changed): another root hash, so another command line.
    let changed = t.path().join("changed");
    std::fs::create_dir_all(&changed).unwrap();
    for entry in ["appliance-uefi.toml", "appliance-boot.toml"] {
        std::fs::copy(repo().join("recipes").join(entry), changed.join(entry)).unwrap();
    }
    run_ok(
        Command::new("cp")
            .arg("-R")
            .arg(repo().join("recipes/appliance"))
            .arg(repo().join("recipes/appliance-boot"))
            .arg(&changed),
    );
    let text = std::fs::read_to_string(changed.join("appliance-uefi.toml")).unwrap();
    std::fs::write(changed.join("appliance-uefi.toml"), text.replace("appliance-uefi 1", "appliance-uefi 2")).unwrap();
    Bake::build(changed.join("appliance-uefi.toml")).out(&b).ok();
    let said = Bake::new("diff").arg(a.join("appliance-uefi.efi")).arg(b.join("appliance-uefi.efi")).fails(1).stdout();
    assert!(said.contains(".cmdline") && !said.contains(".linux"), "{said}");
}

#[test]
fn uefi_mistakes_are_refused_with_their_line() {
    let t = tempfile::tempdir().unwrap();
    let write = |text: &str| write_recipe(t.path(), text);
    let base = "[image]\nname = \"u\"\n[disk]\n";
    let refused = |recipe: &Path| Bake::build(recipe).out(t.path().join("out")).fails(2).stderr();

    let stderr =
        refused(&write(&format!("{base}partition-table = \"none\"\nboot = \"uefi\"\nboot-recipe = \"b.toml\"\n")));
    assert!(stderr.contains("recipe.toml:5:8") && stderr.contains("writes no disk"), "{stderr}");
    let stderr = refused(&write(&format!("{base}boot = \"uefi\"\n")));
    assert!(stderr.contains("recipe.toml:4:8") && stderr.contains("needs `boot-recipe`"), "{stderr}");
    let stderr = refused(&write(&format!("{base}boot-recipe = \"b.toml\"\n")));
    assert!(stderr.contains("is for `boot = \"uefi\"`"), "{stderr}");
    let stderr = refused(&write(&format!("{base}boot = \"bios\"\nboot-recipe = \"b.toml\"\n")));
    assert!(stderr.contains("recipe.toml:4:8") && stderr.contains("unknown variant `bios`"), "{stderr}");
    // A stage-1 without a kernel, or without an initramfs.
    std::fs::write(t.path().join("b.toml"), "[image]\nname = \"b\"\n[initramfs]\n").unwrap();
    let stub = t.path().join("stub.deb");
    std::fs::write(&stub, deb(&TarMaker::new().finish())).unwrap();
    let with_stage1 = format!("{base}boot = \"uefi\"\nboot-recipe = \"b.toml\"\nstub-deb = \"stub.deb\"\n");
    let stderr = refused(&write(&with_stage1));
    assert!(stderr.contains("recipe.toml:5:15") && stderr.contains("`b.toml` has no `[kernel]`"), "{stderr}");
    // A stub package without the stub.
    let kernel_deb = t.path().join("kernel.deb");
    let mut kernel = TarMaker::new();
    kernel.file("boot/vmlinuz-6.1.0-test", 0o644, 0, 0, b"not a bzImage at all");
    std::fs::write(&kernel_deb, deb(&kernel.finish())).unwrap();
    std::fs::write(t.path().join("b.toml"), "[image]\nname = \"b\"\n[initramfs]\n[kernel]\ndeb = \"kernel.deb\"\n")
        .unwrap();
    let stderr = refused(&write(&with_stage1));
    assert!(stderr.contains("holds no `/usr/lib/systemd/boot/efi/linuxx64.efi.stub`"), "{stderr}");
    assert!(!t.path().join("out").exists(), "nothing is written");
    // A stub that is not a PE image.
    let mut not_pe = TarMaker::new();
    not_pe.file("usr/lib/systemd/boot/efi/linuxx64.efi.stub", 0o644, 0, 0, b"MZ but nothing more");
    std::fs::write(&stub, deb(&not_pe.finish())).unwrap();
    let stderr = refused(&write(&with_stage1));
    assert!(stderr.contains("EFI stub"), "{stderr}");
    assert!(!t.path().join("out").exists(), "nothing is written");
    // A stub that is a PE image but not systemd's stub.
    let mut other = minimal_stub();
    other[0x58 + 240..0x58 + 248].copy_from_slice(b".text\0\0\0");
    let mut not_systemd = TarMaker::new();
    not_systemd.file("usr/lib/systemd/boot/efi/linuxx64.efi.stub", 0o644, 0, 0, &other);
    std::fs::write(&stub, deb(&not_systemd.finish())).unwrap();
    let stderr = refused(&write(&with_stage1));
    assert!(stderr.contains("not systemd's EFI stub: it has no `.sdmagic` section"), "{stderr}");
    // A good stub, and a kernel that is not an EFI-stub bzImage: refused, and no output is
    // left behind.
    let mut good = TarMaker::new();
    good.file("usr/lib/systemd/boot/efi/linuxx64.efi.stub", 0o644, 0, 0, &minimal_stub());
    std::fs::write(&stub, deb(&good.finish())).unwrap();
    let stderr = refused(&write(&with_stage1));
    assert!(stderr.contains("not an x86 bzImage"), "{stderr}");
    let left: Vec<_> = std::fs::read_dir(t.path().join("out"))
        .map(|d| d.map(|e| e.unwrap().file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "nothing is written: {left:?}");
    // `bake test` of such a disk takes no `--kernel` and no `[test] boot-recipe`.
    let recipe = write(&format!("{with_stage1}[test]\nexpect = [\"x\"]\n"));
    let stderr = Bake::new("test").arg(&recipe).arg("--kernel").arg(&recipe).fails(2).stderr();
    assert!(stderr.contains("boots with firmware alone"), "{stderr}");
    let recipe = write(&format!("{with_stage1}[test]\nboot-recipe = \"b.toml\"\nexpect = [\"x\"]\n"));
    let stderr = Bake::new("test").arg(&recipe).fails(2).stderr();
    assert!(stderr.contains("recipe.toml:8:15") && stderr.contains("`[test] boot-recipe` makes no sense"), "{stderr}");
}
