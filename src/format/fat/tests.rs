use std::io::Cursor;

use super::*;
use crate::base::hash::digest_bytes;

fn options() -> Options {
    Options { volume_id: 0x1234_abcd, label: *b"ESP        ", time: 1_700_000_000 }
}

fn volume(files: &[(&[&str], &[u8])]) -> crate::base::error::Result<Vec<u8>> {
    let mut readers: Vec<&[u8]> = files.iter().map(|(_, data)| *data).collect();
    let mut list: Vec<NewFile> = files
        .iter()
        .zip(readers.iter_mut())
        .map(|((path, data), reader)| NewFile {
            path: path.iter().map(|s| s.to_string()).collect(),
            size: data.len() as u64,
            contents: reader,
        })
        .collect();
    write(&options(), &mut list, Vec::new())
}

#[test]
fn a_volume_is_whole_mib_fat32_and_reads_back_with_its_files() {
    let uki: Vec<u8> = (0..100_000u32).map(|i| (i * 7) as u8).collect();
    let bytes = volume(&[(&["EFI", "BOOT", "BOOTX64.EFI"], &uki), (&["LOADER", "A.CFG"], b"x")]).unwrap();
    assert_eq!(bytes.len(), 33 << 20);
    let read = read(Cursor::new(&bytes)).unwrap();
    assert_eq!((read.volume_id, read.label.as_str()), (0x1234_abcd, "ESP"));
    let names: Vec<String> = read.entries.iter().map(|e| String::from_utf8_lossy(&e.name).into_owned()).collect();
    assert_eq!(names, ["EFI", "EFI/BOOT", "EFI/BOOT/BOOTX64.EFI", "LOADER", "LOADER/A.CFG"]);
    let file = &read.entries[2];
    assert_eq!((file.size, file.sha256), (100_000, Some(digest_bytes(&uki))));
    assert_eq!(file.mtime, 1_699_999_998 + 2, "two-second resolution: 22:13:20 is even");
    assert_eq!(read.entries[4].sha256, Some(digest_bytes(b"x")));
    assert!(read.clusters >= 65_541);
    // The same files give the same bytes.
    assert_eq!(bytes, volume(&[(&["EFI", "BOOT", "BOOTX64.EFI"], &uki), (&["LOADER", "A.CFG"], b"x")]).unwrap());
}

#[test]
fn the_size_follows_the_contents_in_whole_mib() {
    let (total, fat, clusters) = write::geometry_for(10);
    assert_eq!(total, 33 * 2048);
    assert!(clusters >= 65_541 && 128 * fat >= clusters + 2 && total == 32 + 2 * fat + clusters);
    let (total, fat, clusters) = write::geometry_for(200_000);
    assert_eq!(total % 2048, 0);
    assert!(clusters >= 200_000 && 128 * fat >= clusters + 2 && total == 32 + 2 * fat + clusters);
    assert!(write::geometry_for(200_000).0 - 2048 < 32 + 200_000 + 2 * 1563, "the smallest that holds them");
}

#[test]
fn times_are_clamped_to_what_fat_holds() {
    assert_eq!(unix_time(fat_time(0).0, fat_time(0).1), Some(FIRST_TIME));
    assert_eq!(unix_time(fat_time(u64::MAX).0, fat_time(u64::MAX).1), Some(LAST_TIME));
    assert_eq!(unix_time(fat_time(1_700_000_001).0, fat_time(1_700_000_001).1), Some(1_700_000_000));
}

#[test]
fn names_must_be_upper_case_8_3_and_unique() {
    assert_eq!(short_name("BOOTX64.EFI"), Some(*b"BOOTX64 EFI"));
    assert_eq!(short_name("EFI"), Some(*b"EFI        "));
    for bad in ["bootx64.efi", "TOOLONGNAME", "A.EFIX", ".EFI", "A.", "A B", "", "A.B.C"] {
        assert_eq!(short_name(bad), None, "{bad}");
    }
    let error = volume(&[(&["EFI", "boot"], b"x")]).unwrap_err().to_string();
    assert!(error.contains("`boot` in `EFI/boot`"), "{error}");
    assert!(volume(&[(&["A"], b"x"), (&["A"], b"y")]).unwrap_err().to_string().contains("twice"));
    assert!(
        volume(&[(&["A"], b"x"), (&["A", "B"], b"y")]).unwrap_err().to_string().contains("both a file and a directory")
    );
}

#[test]
fn an_empty_file_and_a_directory_needing_two_clusters() {
    let names: Vec<String> = (0..20).map(|i| format!("F{i}")).collect();
    let paths: Vec<[&str; 2]> = names.iter().map(|n| ["D", n.as_str()]).collect();
    let files: Vec<(&[&str], &[u8])> = paths.iter().map(|p| (&p[..], &b""[..])).collect();
    let bytes = volume(&files).unwrap();
    let read = read(Cursor::new(&bytes)).unwrap();
    assert_eq!(read.entries.len(), 21);
    assert!(read.entries[1..].iter().all(|e| e.size == 0 && e.sha256 == Some(digest_bytes(b""))));
}

#[test]
fn a_hostile_volume_is_an_error_never_a_panic_or_a_hang() {
    let good = volume(&[(&["EFI", "BOOT", "BOOTX64.EFI"], &[1u8; 3000])]).unwrap();
    for cut in [0, 100, 511, 512, 20_000, 40_000, good.len() - 1] {
        assert!(read(Cursor::new(&good[..cut])).is_err(), "cut at {cut}");
    }
    let fat = 32 * 512;
    // A loop: the file's last cluster points back to its first.
    let mut looped = good.clone();
    let read_ok = read(Cursor::new(&good)).unwrap();
    let first = read_ok.entries[2].ino as usize;
    looped[fat + 4 * (first + 5)..][..4].copy_from_slice(&(first as u32).to_le_bytes());
    assert!(read(Cursor::new(&looped)).unwrap_err().to_string().contains("loops"));
    // A directory that contains itself.
    let mut cycle = good.clone();
    let boot_dir = read_ok.entries[1].ino as usize;
    let data = fat + 2 * 520 * 512;
    let in_boot = data + (boot_dir - 2) * 512 + 64;
    cycle[in_boot..in_boot + 11].copy_from_slice(b"SELF       ");
    cycle[in_boot + 11] = ATTR_DIRECTORY;
    cycle[in_boot + 26..in_boot + 28].copy_from_slice(&(boot_dir as u16).to_le_bytes());
    assert!(read(Cursor::new(&cycle)).unwrap_err().to_string().contains("reached twice"));
    // A chain that leaves the volume.
    let mut outside = good.clone();
    outside[fat + 4 * first..][..4].copy_from_slice(&0x0fff_fff0u32.to_le_bytes());
    assert!(read(Cursor::new(&outside)).unwrap_err().to_string().contains("outside"));
    // FAT16-shaped and nonsense parameter blocks.
    let mut fat16 = good.clone();
    fat16[17] = 2;
    assert!(read(Cursor::new(&fat16)).unwrap_err().to_string().contains("FAT16"));
    let mut sectors = good;
    sectors[11..13].copy_from_slice(&3u16.to_le_bytes());
    assert!(read(Cursor::new(&sectors)).is_err());
}
