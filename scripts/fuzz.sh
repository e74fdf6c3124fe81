#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 15; CI uses the default) from a seed corpus
# of real inputs, and fails if any target finds a crash. A crash is saved under
# fuzz/artifacts/TARGET/; reproduce it with `RUSTC_BOOTSTRAP=1 cargo fuzz run TARGET FILE` and
# turn it into a regression test. Long runs: scripts/fuzz.sh 3600
#
# The suite's short runs start from a fixed random seed (BAKE_FUZZ_SEED, default 1), so a
# change that passed once does not fail later on a path a luckier draw found; set
# BAKE_FUZZ_SEED=0 for a new seed each run, as long runs should.
#
# cargo-fuzz needs nightly compiler flags; this machine has one stable toolchain, which accepts
# them with RUSTC_BOOTSTRAP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-15}
seed=${BAKE_FUZZ_SEED:-1}
export RUSTC_BOOTSTRAP=1 CARGO_TERM_COLOR=never

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked --quiet

# Seeds: real archives of each kind, so the fuzzer starts from valid structure.
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT
mkdir -p "$seeds"/{recipe,tar,deb,image,packages,erofs,gpt,fat,pe,accounts}
cp recipes/*.toml qemu-tests/*.toml "$seeds/recipe/"
cp tests/fixtures/debian/Packages "$seeds/packages/"
# passwd, group and a sysusers.d file, separated by NUL bytes.
printf 'root:*:0:0:root:/root:/bin/bash\n\0root:*:0:\nshadow:*:42:\n\0g adm 4 -\nu net - "Network" / /usr/sbin/nologin\nm net adm\nr - 500-900\n' \
  > "$seeds/accounts/seed"
tar -cf "$seeds/tar/recipes.tar" recipes
gzip -n -c "$seeds/tar/recipes.tar" > "$seeds/tar/recipes.tar.gz"
xz -c "$seeds/tar/recipes.tar" > "$seeds/tar/recipes.tar.xz"
pkg=$(mktemp -d)
mkdir -p "$pkg/DEBIAN" "$pkg/usr/bin"
printf 'Package: seed\nVersion: 1\nArchitecture: all\nMaintainer: bake\nDescription: seed\n' > "$pkg/DEBIAN/control"
echo '#!/bin/sh' > "$pkg/usr/bin/seed"
dpkg-deb -Zxz --root-owner-group --build "$pkg" "$seeds/deb/seed.deb" >/dev/null
rm -rf "$pkg"
for c in none zstd gzip xz lz4; do
  sed "s/compression = \"zstd\"/compression = \"$c\"/" recipes/skeleton.toml > "$seeds/skeleton-$c.toml"
  cargo run --quiet --release -- -q build "$seeds/skeleton-$c.toml" -o "$seeds/out-$c" >/dev/null
  cp "$seeds/out-$c"/skeleton.cpio* "$seeds/image/"
done
printf '[disk]\npartition-table = "none"\n' | cat recipes/skeleton.toml - > "$seeds/skeleton-disk.toml"
cargo run --quiet --release -- -q build "$seeds/skeleton-disk.toml" -o "$seeds/out-disk" >/dev/null
cp "$seeds/out-disk/skeleton.erofs" "$seeds/erofs/"
# A GPT disk small enough for -max_len (bake's own are whole MiB): 128 sectors, one partition.
truncate -s 64K "$seeds/gpt/small.img"
sgdisk -a 1 -n 1:34:90 -t 1:4f68bce3-e8cd-4db1-96e7-fbcaf984b709 -c 1:seed "$seeds/gpt/small.img" >/dev/null
# A FAT32 volume made by mkfs.vfat and mtools, with a long name: its first MiB (the target
# reads the rest as zeros).
truncate -s 34M "$seeds/esp.img"
mkfs.vfat -F 32 -S 512 -s 1 -i 12345678 -n ESP "$seeds/esp.img" >/dev/null
mmd -i "$seeds/esp.img" ::EFI ::EFI/BOOT
echo seed > "$seeds/seed.txt"
mcopy -i "$seeds/esp.img" "$seeds/seed.txt" ::EFI/BOOT/BOOTX64.EFI
mcopy -i "$seeds/esp.img" "$seeds/seed.txt" ::EFI/loader-entry.conf
head -c 1M "$seeds/esp.img" > "$seeds/fat/esp-start.img"
# A minimal x86-64 EFI application (as the PE unit tests make it): headers and one section.
python3 - "$seeds/pe/minimal.efi" <<'PY'
import struct, sys
image = bytearray(0x600)
image[0:2] = b"MZ"; image[0x3c:0x40] = struct.pack("<I", 0x40); image[0x40:0x44] = b"PE\0\0"
image[0x44:0x58] = struct.pack("<HHIIIHH", 0x8664, 1, 0, 0, 0, 240, 0x22)
o = 0x58
image[o:o+2] = struct.pack("<H", 0x20b)
for at, value in [(32, 0x200), (36, 0x200), (56, 0x1200), (60, 0x400), (108, 16)]:
    image[o+at:o+at+4] = struct.pack("<I", value)
image[o+68:o+70] = struct.pack("<H", 10)
s = o + 240
image[s:s+40] = b".text\0\0\0" + struct.pack("<IIIIIIHHI", 0x1f0, 0x1000, 0x200, 0x400, 0, 0, 0, 0, 0x60000020)
open(sys.argv[1], "wb").write(image)
PY

status=0
for target in recipe tar deb image packages erofs gpt fat pe accounts; do
  mkdir -p "fuzz/corpus/$target"
  echo "fuzz: $target for ${seconds}s"
  if ! cargo fuzz run --release "$target" "fuzz/corpus/$target" "$seeds/$target" -- \
      -max_total_time="$seconds" -seed="$seed" -max_len=1048576 -rss_limit_mb=2048 -print_final_stats=1 2>"$seeds/$target.log"; then
    status=1
    tail -40 "$seeds/$target.log"
  fi
  grep -E "^stat::number_of_executed_units|^stat::peak_rss_mb" "$seeds/$target.log" | sed "s/^/fuzz: $target: /"
done
exit $status
