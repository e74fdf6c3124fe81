//! Round trips through the GPT writer and reader, and through sfdisk, sgdisk, fdisk and blkid.

use std::io::{Cursor, Write};
use std::path::Path;
use std::process::Command;

use super::*;
use crate::base::hash::{digest_bytes, uuid_v8};

/// `size` bytes that differ from block to block, so a misplaced block shows.
fn filesystem(size: usize) -> Vec<u8> {
    (0..size).map(|i| (i % 251) as u8 ^ (i / 4096) as u8).collect()
}

/// A GUID for tests, from `which`, the label and the contents.
fn test_guid(which: &str, label: &str, fs: &[u8]) -> [u8; 16] {
    swap_guid_fields(uuid_v8(&digest_bytes(&[which.as_bytes(), label.as_bytes(), fs].concat())))
}

/// A root partition named `label` holding `fs`.
fn root<'a>(label: &'a str, fs: &'a mut &'a [u8]) -> NewPartition<'a> {
    let (size, sha256) = (fs.len() as u64, digest_bytes(fs));
    NewPartition {
        type_guid: ROOT_X86_64,
        unique_guid: test_guid("root", label, fs),
        name: label,
        attributes: READ_ONLY,
        contents: fs,
        size,
        sha256,
    }
}

/// A disk holding one root partition named `label` with `fs`.
fn image(label: &str, fs: &[u8]) -> Vec<u8> {
    let mut contents = fs;
    write(test_guid("disk", label, fs), &mut [root(label, &mut contents)], Vec::new()).unwrap()
}

fn on_disk(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut file = tempfile::NamedTempFile::new().unwrap();
    file.write_all(bytes).unwrap();
    file.flush().unwrap();
    file
}

/// Runs a checker (`scripts/install-deps.sh` installs them) and returns what it printed.
fn run(program: &str, args: &[&str], path: &Path) -> String {
    let output = Command::new(program)
        .args(args)
        .arg(path)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `{program}` (is it installed?): {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "`{program} {args:?}` failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

fn sfdisk_json(path: &Path) -> serde_json::Value {
    let json: serde_json::Value = serde_json::from_str(&run("sfdisk", &["--json"], path)).unwrap();
    json["partitiontable"].clone()
}

/// Puts `value` at `at` in the header block at `lba` and makes the header's CRC32 right again.
fn patch_header(image: &mut [u8], lba: u64, at: usize, value: &[u8]) {
    let block = &mut image[(lba * SECTOR) as usize..][..512];
    block[at..at + value.len()].copy_from_slice(value);
    block[16..20].fill(0);
    let crc = crc32fast::hash(&block[..92]);
    block[16..20].copy_from_slice(&crc.to_le_bytes());
}

fn last_lba(image: &[u8]) -> u64 {
    image.len() as u64 / SECTOR - 1
}

#[test]
fn sfdisk_fdisk_and_blkid_read_the_table_we_write() {
    let fs = filesystem(5000);
    let bytes = image("demo_1.0-x", &fs);
    let file = on_disk(&bytes);
    let table = read(Cursor::new(&bytes)).unwrap();
    let disk_guid = format_guid(&table.disk_guid);
    assert_eq!(table.disk_guid, test_guid("disk", "demo_1.0-x", &fs));

    let json = sfdisk_json(file.path());
    let sectors = bytes.len() as u64 / SECTOR;
    assert_eq!(json["label"], "gpt");
    assert_eq!(json["id"], disk_guid.to_uppercase());
    assert_eq!(json["firstlba"], 34);
    assert_eq!(json["lastlba"], sectors - 34);
    let partitions = json["partitions"].as_array().unwrap();
    assert_eq!(partitions.len(), 1);
    let partition = &partitions[0];
    assert_eq!(partition["start"], 2048);
    assert_eq!(partition["size"], 2048);
    assert_eq!(partition["type"], "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709");
    assert_eq!(partition["uuid"], format_guid(&table.partitions[0].unique_guid).to_uppercase());
    assert_eq!(partition["name"], "demo_1.0-x");
    assert_eq!(partition["attrs"], "GUID:60");

    let fdisk = run("fdisk", &["-l"], file.path());
    assert!(fdisk.contains("Disklabel type: gpt"), "{fdisk}");
    assert!(fdisk.contains(&format!("Disk identifier: {}", disk_guid.to_uppercase())), "{fdisk}");
    assert!(fdisk.contains("2048  4095    2048   1M Linux root (x86-64)"), "{fdisk}");

    let blkid = run("blkid", &["-p", "-o", "export"], file.path());
    assert!(blkid.contains("PTTYPE=gpt"), "{blkid}");
    assert!(blkid.contains(&format!("PTUUID={disk_guid}")), "{blkid}");
}

#[test]
fn sgdisk_finds_no_problems_at_any_size() {
    for size in [1, 511, 512, 513, 5000, MIB as usize - 1, MIB as usize, MIB as usize + 1] {
        let bytes = image("root", &filesystem(size));
        let file = on_disk(&bytes);
        let verdict = run("sgdisk", &["-v"], file.path());
        // sgdisk also finds "no problems" in a table it could not read and replaced in
        // memory; the free space proves it read ours: the usable blocks less the partition.
        let usable = bytes.len() as u64 / SECTOR - 2 * 34 + 1;
        let free = usable - (size as u64).div_ceil(MIB) * MIB / SECTOR;
        assert!(verdict.contains(&format!("No problems found. {free} free sectors")), "size {size}: {verdict}");
        assert!(!verdict.contains("Creating new GPT"), "size {size}: {verdict}");
    }
}

#[test]
fn the_partition_holds_the_filesystem_then_zeros() {
    for size in [1, 511, 512, 513, MIB as usize - 1, MIB as usize, MIB as usize + 1, 3 * MIB as usize + 7] {
        let fs = filesystem(size);
        let bytes = image("root", &fs);
        assert_eq!(bytes.len() as u64, disk_size(&[size as u64]), "size {size}");
        assert_eq!(bytes.len() as u64 % MIB, 0, "size {size}: the disk is whole MiB");
        let table = read(Cursor::new(&bytes)).unwrap();
        assert_eq!(table.primary_damage, None);
        let [partition] = &table.partitions[..] else { panic!("{:?}", table.partitions) };
        assert_eq!((partition.index, partition.first_lba, partition.offset), (1, 2048, MIB));
        assert_eq!(partition.size, (size as u64).div_ceil(MIB) * MIB, "size {size}");
        assert_eq!(partition.last_lba, 2047 + partition.size / SECTOR);
        let inside = &bytes[partition.offset as usize..][..partition.size as usize];
        assert_eq!(&inside[..size], &fs[..], "size {size}");
        assert!(inside[size..].iter().all(|&b| b == 0), "size {size}: the partition's tail is not zero");
        // Between the partition and the backup array, and between the primary array and
        // the partition: zeros.
        let backup_array = bytes.len() - 33 * 512;
        assert!(bytes[(partition.offset + partition.size) as usize..backup_array].iter().all(|&b| b == 0));
        assert!(bytes[34 * 512..MIB as usize].iter().all(|&b| b == 0));
    }
    assert_eq!(disk_size(&[0]), 3 * MIB);
    assert_eq!(disk_size(&[1]), 3 * MIB);
    assert_eq!(disk_size(&[MIB]), 3 * MIB);
    assert_eq!(disk_size(&[MIB + 1]), 4 * MIB);
    assert_eq!(disk_size(&[u64::MAX]), u64::MAX);
    assert_eq!(disk_size(&[1, MIB + 1]), 5 * MIB);
}

#[test]
fn headers_and_protective_mbr_follow_the_specification() {
    let bytes = image("root", &filesystem(1000));
    let n = bytes.len() as u64 / SECTOR;
    // Protective MBR: one record, not bootable, CHS 0/0/2 to "not representable", type 0xee,
    // LBA 1 for the rest of the disk.
    let mut record = vec![0x00, 0x00, 0x02, 0x00, 0xee, 0xff, 0xff, 0xff, 1, 0, 0, 0];
    record.extend_from_slice(&(n as u32 - 1).to_le_bytes());
    assert_eq!(&bytes[446..462], &record[..]);
    assert!(bytes[..446].iter().chain(&bytes[462..510]).all(|&b| b == 0));
    assert_eq!(&bytes[510..512], &[0x55, 0xaa]);
    for (lba, alternate, entries) in [(1, n - 1, 2), (n - 1, 1, n - 33)] {
        let block = &bytes[(lba * SECTOR) as usize..][..512];
        assert_eq!(&block[0..8], b"EFI PART");
        assert_eq!(u32_at(block, 8), 0x0001_0000);
        assert_eq!(u32_at(block, 12), 92);
        assert_eq!(u32_at(block, 20), 0);
        assert_eq!((u64_at(block, 24), u64_at(block, 32)), (lba, alternate));
        assert_eq!((u64_at(block, 40), u64_at(block, 48)), (34, n - 34));
        assert_eq!(u64_at(block, 72), entries);
        assert_eq!((u32_at(block, 80), u32_at(block, 84)), (128, 128));
        assert!(block[92..].iter().all(|&b| b == 0));
        let array = &bytes[(entries * SECTOR) as usize..][..128 * 128];
        assert_eq!(u32_at(block, 88), crc32fast::hash(array));
        let mut covered = block[..92].to_vec();
        covered[16..20].fill(0);
        assert_eq!(u32_at(block, 16), crc32fast::hash(&covered), "the header CRC covers 92 bytes");
        assert!(array[128..].iter().all(|&b| b == 0), "unused entries are zero");
    }
    assert_eq!(&bytes[1024..1024 + 16384], &bytes[(n as usize - 33) * 512..][..16384]);
    assert_eq!(&bytes[512 + 56..512 + 72], &bytes[(n as usize - 1) * 512 + 56..][..16], "one disk GUID");
    // The first entry: type, attributes, name in UTF-16LE.
    let entry = &bytes[1024..1152];
    assert_eq!(&entry[0..4], &[0xe3, 0xbc, 0x68, 0x4f]);
    assert_eq!(u64_at(entry, 48), 1 << 60);
    assert_eq!(&entry[56..66], b"r\0o\0o\0t\0\0\0");
}

#[test]
fn guids_are_text_in_mixed_endian_order() {
    assert_eq!(format_guid(&ROOT_X86_64), "4f68bce3-e8cd-4db1-96e7-fbcaf984b709");
    assert_eq!(
        ROOT_X86_64,
        [0xe3, 0xbc, 0x68, 0x4f, 0xcd, 0xe8, 0xb1, 0x4d, 0x96, 0xe7, 0xfb, 0xca, 0xf9, 0x84, 0xb7, 0x09]
    );
    assert_eq!(guid("4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"), ROOT_X86_64);
}

#[test]
fn two_writes_are_identical() {
    let fs = filesystem(3000);
    assert_eq!(image("root", &fs), image("root", &fs));
}

#[test]
fn partitions_follow_each_other_in_whole_mib() {
    let (a, b) = (filesystem(5000), filesystem(MIB as usize + 1));
    let (mut first, mut second) = (&a[..], &b[..]);
    let mut partitions = [root("first", &mut first), root("second", &mut second)];
    partitions[1].type_guid = guid("0fc63daf-8483-4772-8e79-3d69d8477de4");
    let bytes = write(test_guid("disk", "two", &a), &mut partitions, Vec::new()).unwrap();
    assert_eq!(bytes.len() as u64, disk_size(&[5000, MIB + 1]));
    let table = read(Cursor::new(&bytes)).unwrap();
    let spans: Vec<(u32, u64, u64, &str)> =
        table.partitions.iter().map(|p| (p.index, p.first_lba, p.last_lba, p.name.as_str())).collect();
    assert_eq!(spans, [(1, 2048, 4095, "first"), (2, 4096, 8191, "second")]);
    for (partition, fs) in table.partitions.iter().zip([&a, &b]) {
        let inside = &bytes[partition.offset as usize..][..partition.size as usize];
        assert_eq!(&inside[..fs.len()], &fs[..]);
        assert!(inside[fs.len()..].iter().all(|&byte| byte == 0));
    }
    let file = on_disk(&bytes);
    let json = sfdisk_json(file.path());
    assert_eq!(json["partitions"].as_array().unwrap().len(), 2);
    let verdict = run("sgdisk", &["-v"], file.path());
    assert!(verdict.contains("No problems found."), "{verdict}");
}

#[test]
fn names_that_do_not_fit_are_refused_not_cut() {
    let fs = filesystem(10);
    let write_named = |label: &str| {
        let mut contents = &fs[..];
        write(test_guid("disk", label, &fs), &mut [root(label, &mut contents)], Vec::new())
    };
    let longest = "n".repeat(36);
    let table = read(Cursor::new(write_named(&longest).unwrap())).unwrap();
    assert_eq!(table.partitions[0].name, longest);
    let err = write_named(&"n".repeat(37)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(err.message().contains("is 37 UTF-16 units long; a GPT partition name holds at most 36"), "{err}");
    // Outside the basic plane a character takes two units.
    assert!(write_named(&"\u{1f35e}".repeat(18)).is_ok());
    assert!(write_named(&"\u{1f35e}".repeat(19)).is_err());
    assert!(write_named("a\0b").unwrap_err().message().contains("contains a NUL"));
}

#[test]
fn a_filesystem_unlike_its_size_or_digest_is_refused() {
    let fs = filesystem(1000);
    let digest = digest_bytes(&fs);
    let disk = |contents: &[u8], size: u64, sha256| {
        let mut contents = contents;
        let mut partition = root("root", &mut contents);
        (partition.size, partition.sha256) = (size, sha256);
        write([0; 16], &mut [partition], Vec::new()).unwrap_err()
    };
    let short = disk(&fs[..999], 1000, digest);
    assert!(short.message().contains("gave only 999 bytes where 1000 were promised"), "{short}");
    let long = disk(&fs, 999, digest_bytes(&fs[..999]));
    assert!(long.message().contains("gave more than 999 bytes where 999 were promised"), "{long}");
    let wrong = disk(&fs, 1000, digest_bytes(b"other"));
    assert!(wrong.message().contains("partition `root`'s SHA-256 is"), "{wrong}");
    assert_eq!(wrong.exit_code(), 1);
}

#[test]
fn the_reader_agrees_with_sfdisk_on_tables_sgdisk_and_sfdisk_make() {
    let blank = vec![0u8; 8 * MIB as usize];
    let sgdisk = on_disk(&blank);
    run(
        "sgdisk",
        &["-n", "1:2048:+1M", "-t", "1:ef00", "-c", "1:EFI system", "-n", "3:0:+2M", "-t", "3:8304", "-c", "3:root"],
        sgdisk.path(),
    );
    let sfdisk = on_disk(&blank);
    let script = "label: gpt\nstart=2048, size=4096, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name=\"d\u{e4}ta\"\n\
                  size=2048, type=4f68bce3-e8cd-4db1-96e7-fbcaf984b709\n";
    let mut child = Command::new("sfdisk")
        .arg("-q")
        .arg(sfdisk.path())
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("cannot run `sfdisk` (is it installed?)");
    child.stdin.take().unwrap().write_all(script.as_bytes()).unwrap();
    assert!(child.wait().unwrap().success());

    for (file, count) in [(&sgdisk, 2), (&sfdisk, 2)] {
        let table = read(std::fs::File::open(file.path()).unwrap()).unwrap();
        let json = sfdisk_json(file.path());
        assert_eq!(json["id"], format_guid(&table.disk_guid).to_uppercase());
        assert_eq!(table.partitions.len(), count);
        let listed = json["partitions"].as_array().unwrap();
        for (partition, theirs) in table.partitions.iter().zip(listed) {
            let node = theirs["node"].as_str().unwrap();
            assert!(node.ends_with(&partition.index.to_string()), "{node} is not partition {}", partition.index);
            assert_eq!(theirs["start"], partition.first_lba);
            assert_eq!(theirs["size"].as_u64().unwrap() * SECTOR, partition.size);
            assert_eq!(theirs["type"], format_guid(&partition.type_guid).to_uppercase());
            assert_eq!(theirs["uuid"], format_guid(&partition.unique_guid).to_uppercase());
            assert_eq!(theirs["name"].as_str().unwrap_or(""), partition.name);
        }
    }
    let table = read(std::fs::File::open(sgdisk.path()).unwrap()).unwrap();
    assert_eq!(table.partitions[1].index, 3, "an empty slot keeps its number");
    assert_eq!(table.partitions[0].name, "EFI system");
}

#[test]
fn a_damaged_primary_table_is_read_from_the_backup_and_said() {
    let good = image("root", &filesystem(2000));
    let expected = read(Cursor::new(&good)).unwrap();

    let mut header = good.clone();
    header[512 + 60] ^= 0xff; // in the disk GUID
    let table = read(Cursor::new(&header)).unwrap();
    assert_eq!(table.partitions, expected.partitions);
    assert_eq!(table.disk_guid, expected.disk_guid);
    let damage = table.primary_damage.unwrap();
    assert!(damage.starts_with("the primary GPT header (LBA 1) is damaged: header CRC32 is"), "{damage}");

    let mut entries = good.clone();
    entries[1024 + 100] ^= 1; // in the first entry's name
    let damage = read(Cursor::new(&entries)).unwrap().primary_damage.unwrap();
    assert!(damage.contains("has entries whose CRC32 is"), "{damage}");

    let mut signature = good.clone();
    signature[512..520].copy_from_slice(b"NOT PART");
    let damage = read(Cursor::new(&signature)).unwrap().primary_damage.unwrap();
    assert!(damage.contains("no `EFI PART` signature"), "{damage}");

    let mut both = header.clone();
    let last = last_lba(&both) as usize;
    both[last * 512 + 60] ^= 0xff;
    let err = read(Cursor::new(&both)).unwrap_err();
    assert_eq!(err.exit_code(), 2);
    assert!(
        err.message().starts_with(&format!(
            "no usable GPT: the primary header (LBA 1) is damaged: header CRC32 is \
             {:#010x}, its bytes give",
            u32_at(&both[512..], 16)
        )),
        "{err}"
    );
    assert!(err.message().contains(&format!("the backup header (LBA {last}) is damaged")), "{err}");
}

#[test]
fn hostile_sizes_and_positions_are_errors_not_panics() {
    let good = image("root", &filesystem(2000));
    let last = last_lba(&good);
    let damage_in_both = |at: usize, value: &[u8]| {
        let mut bytes = good.clone();
        patch_header(&mut bytes, 1, at, value);
        patch_header(&mut bytes, last, at, value);
        read(Cursor::new(&bytes)).unwrap_err().message().to_string()
    };
    let absurd_count = damage_in_both(80, &u32::MAX.to_le_bytes());
    assert!(absurd_count.contains("gives 4294967295 entries of 128 bytes, more than"), "{absurd_count}");
    let odd_size = damage_in_both(84, &100u32.to_le_bytes());
    assert!(odd_size.contains("entry size of 100 bytes, not 128 times a power of two"), "{odd_size}");
    let huge_size = damage_in_both(84, &(1u32 << 31).to_le_bytes());
    assert!(huge_size.contains("more than the 1048576 bytes"), "{huge_size}");
    let far_entries = damage_in_both(72, &u64::MAX.to_le_bytes());
    assert!(far_entries.contains("entry array at LBA 18446744073709551615 that lies past the end"), "{far_entries}");
    let far_usable = damage_in_both(48, &u64::MAX.to_le_bytes());
    assert!(far_usable.contains("gives usable LBAs 34..=18446744073709551615"), "{far_usable}");
    let misplaced = damage_in_both(24, &7u64.to_le_bytes());
    assert!(misplaced.contains("says it is at LBA 7"), "{misplaced}");
    let big_header = damage_in_both(12, &513u32.to_le_bytes());
    assert!(big_header.contains("header size 513 is outside 92..=512"), "{big_header}");

    // A partition outside the usable blocks, with every CRC right.
    let mut outside = good.clone();
    for (lba, entries) in [(1, 2), (last, last - 32)] {
        let at = (entries * SECTOR) as usize + 40;
        outside[at..at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        let crc = crc32fast::hash(&outside[(entries * SECTOR) as usize..][..16384]);
        patch_header(&mut outside, lba, 88, &crc.to_le_bytes());
    }
    let err = read(Cursor::new(&outside)).unwrap_err();
    assert!(err.message().contains("has partition 1 at LBAs 2048..=18446744073709551615, outside"), "{err}");
}

#[test]
fn truncated_and_garbage_images_are_errors_not_panics() {
    let good = image("root", &filesystem(2000));
    for cut in [0, 100, 511, 512, 600, 1024, 1024 + 16383, MIB as usize, good.len() - MIB as usize] {
        let err = read(Cursor::new(&good[..cut])).unwrap_err();
        assert_eq!(err.exit_code(), 2, "cut at {cut}: {err}");
    }
    let err = read(Cursor::new(&good[..MIB as usize + 4096])).unwrap_err();
    assert!(
        err.message().contains("primary header (LBA 1) gives usable LBAs 34..=6110 on a disk of 2056 blocks"),
        "{err}"
    );
    // Losing the last block loses only the backup, which the primary does not need.
    assert!(read(Cursor::new(&good[..good.len() - 1])).is_ok());

    assert!(read(Cursor::new(vec![0u8; 4096])).unwrap_err().message().contains("no MBR boot signature"));
    let mut mbr_only = vec![0u8; 4096];
    mbr_only[510..512].copy_from_slice(&[0x55, 0xaa]);
    mbr_only[446 + 4] = 0x83;
    assert!(read(Cursor::new(&mbr_only)).unwrap_err().message().contains("no protective partition"));

    // Every single byte of the MBR, the primary header and the first entry set to 0xff, then
    // pseudo-random garbage behind a protective MBR: whatever comes back, nothing panics.
    for at in 0..1024 + 128 {
        let mut bytes = good.clone();
        bytes[at] = 0xff;
        let _ = read(Cursor::new(&bytes));
    }
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut garbage = vec![0u8; 64 * 1024];
    for _ in 0..64 {
        for byte in garbage.iter_mut() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            *byte = state as u8;
        }
        garbage[446..462].copy_from_slice(&good[446..462]);
        garbage[510..512].copy_from_slice(&[0x55, 0xaa]);
        garbage[512..520].copy_from_slice(b"EFI PART");
        assert!(read(Cursor::new(&garbage)).is_err());
    }
}

#[test]
fn is_gpt_wants_a_protective_mbr() {
    let good = image("root", &filesystem(10));
    assert!(is_gpt(&good[..512]));
    assert!(is_gpt(&good[..1024]));
    let mut damaged_header = good[..1024].to_vec();
    damaged_header[512] = 0;
    assert!(is_gpt(&damaged_header), "the backup may still be good");
    assert!(!is_gpt(&good[..511]));
    assert!(!is_gpt(&[0u8; 1024]));
    assert!(!is_gpt(b"070701000000010000"));
}
