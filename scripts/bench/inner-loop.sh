#!/usr/bin/env bash
# The inner loop, run by `scripts/bench.sh --inner-loop`: how long bake takes to give the image
# again after one `[[file]]` of a recipe changed, and a cold module initramfs against Debian's
# own `mkinitramfs -d CONFDIR` with `MODULES=list` for the same drivers and LZ4, each with its
# peak RSS; and what zstd frames cost and save on the systemd example. Prints a Markdown
# section.
#
# And the gzip floor: a gzip -9 build of the systemd example (its inputs from the input store,
# every frame compressed) against zlib-rs alone compressing the same uncompressed archive on as
# many threads (examples/deflate_floor.rs).
#
# Usage: inner-loop.sh BAKE FLOOR RUNS WORK
#   BAKE  the bake binary;  FLOOR  the deflate_floor example;  RUNS  timed runs per command;
#   WORK  a folder kept between runs (the cache with the downloaded packages, the kernel
#   package for mkinitramfs).
#
# mkinitramfs reads a kernel's modules from /lib/modules/VERSION and its configuration from
# /boot/config-VERSION only: when this machine lacks them for the cloud kernel bake uses, they
# are unpacked from its package there (root only), `depmod` is run, and both are removed at the
# end.
set -euo pipefail

bake=$1
floor=$2
runs=$3
work=$4
top=$(cd "$(dirname "$0")/../.." && pwd)
helpers="$top/scripts/bench"

log() { printf 'bench: inner loop: %s\n' "$*" >&2; }
die() { printf 'bench: inner loop: error: %s\n' "$*" >&2; exit 1; }
q() { printf '%q' "$1"; }

for tool in mkinitramfs lz4 busybox hyperfine depmod apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "missing tool: $tool (apt-get install initramfs-tools lz4 busybox hyperfine kmod)"
done

mkdir -p "$work"
cache="$work/cache"     # bake's cache for these builds: packages, input store, build cache
scratch=$(mktemp -d "$work/run.XXXXXX")
created=()              # host paths this script made, removed at the end
copies=()               # recipe copies next to the originals, removed at the end
cleanup() {
  local path
  for path in "${created[@]}" "${copies[@]}"; do rm -rf "$path"; done
  rm -rf "$scratch"
}
trap cleanup EXIT

# Sets `copy` to a copy of RECIPE next to it (its relative paths still work) with one more
# inline file, the one each timed run changes.
edit_copy() { # RECIPE NAME
  copy="$(dirname "$1")/.bench-$2.toml"
  copies+=("$copy")
  cp "$1" "$copy"
  printf '\n[[file]]\npath = "/etc/bench-edit"\ncontent = "edit 0\\n"\n' >>"$copy"
}
edit_cmd() { printf 'sed -i "s/^content = \\"edit [0-9]*/content = \\"edit $RANDOM$RANDOM/" %s' "$(q "$1")"; }

edit_copy "$top/qemu-tests/modules.toml" modules
modules=$copy
edit_copy "$top/recipes/debian.toml" debian
debian=$copy
# The systemd example at zstd -3 (the issue's own 51-package example used -3).
edit_copy "$top/recipes/debian.toml" debian3
debian3=$copy
sed -i 's/^compression = "zstd"$/compression = "zstd"\nlevel = 3/' "$debian3"
# The systemd example as gzip -9, and uncompressed (the archive the floor compresses).
edit_copy "$top/recipes/debian.toml" debian-gzip
debian_gzip=$copy
sed -i 's/^compression = "zstd"$/compression = "gzip"\nlevel = 9/' "$debian_gzip"
edit_copy "$top/recipes/debian.toml" debian-none
debian_none=$copy
sed -i 's/^compression = "zstd"$/compression = "none"/' "$debian_none"
# The same module initramfs, locked: what a recipe kept in version control builds from.
edit_copy "$top/qemu-tests/modules.toml" modules-locked
locked=$copy
copies+=("${locked%.toml}.lock")

# ---------------------------------------------------------------------------------------------
# The kernel mkinitramfs works from: the one bake's build of modules.toml resolves.

log "a first build of each recipe (downloads what the cache lacks)"
"$bake" build "$modules" -o "$scratch/modules" -q --cache "$cache" --json >"$scratch/modules.json"
"$bake" build "$debian" -o "$scratch/debian" -q --cache "$cache" >/dev/null
"$bake" build "$debian3" -o "$scratch/debian3" -q --cache "$cache" >/dev/null
"$bake" lock "$locked" -q --cache "$cache" >/dev/null
kernel_deb=$(python3 -c '
import json, sys, glob
sbom = json.load(open(glob.glob(sys.argv[1] + "/*.spdx.json")[0]))
names = [p["name"] + "_" + p["versionInfo"] for p in sbom["packages"] if p["name"].startswith("linux-image-")]
print(names[0])' "$scratch/modules")
package=${kernel_deb%%_*}
version=${package#linux-image-}
deb=$(find "$cache/debs" -name "${package}_*.deb" | head -n 1)
[ -n "$deb" ] || die "no ${package} package in $cache/debs"
log "kernel $version from $(basename "$deb")"

if [ ! -d "/lib/modules/$version" ] || [ ! -f "/boot/config-$version" ]; then
  [ "$(id -u)" = 0 ] || die "mkinitramfs needs /lib/modules/$version and /boot/config-$version: run as root to unpack them"
  unpacked="$scratch/kernel"
  dpkg-deb -x "$deb" "$unpacked"
  if [ ! -d "/lib/modules/$version" ]; then
    mkdir -p /lib/modules
    cp -a "$unpacked/lib/modules/$version" "/lib/modules/$version"
    created+=("/lib/modules/$version")
  fi
  if [ ! -f "/boot/config-$version" ]; then
    cp "$unpacked/boot/config-$version" "/boot/config-$version"
    created+=("/boot/config-$version")
  fi
  depmod "$version"
fi

confdir="$scratch/initramfs-tools"
mkdir -p "$confdir/conf.d" "$confdir/scripts" "$confdir/hooks"
printf 'MODULES=list\nBUSYBOX=auto\nKEYMAP=n\nCOMPRESS=lz4\nDEVICE=\nNFSROOT=auto\nRUNSIZE=10%%\nFSTYPE=auto\n' \
  >"$confdir/initramfs.conf"
printf 'virtio_pci\nvirtio_blk\nerofs\n' >"$confdir/modules"

# ---------------------------------------------------------------------------------------------
# The measurements.

results="$scratch/results"
mkdir -p "$results"
# measure NAME COMMAND: one untimed run, for the peak RSS.
measure() {
  local wall rss
  read -r wall rss < <(python3 "$helpers/rusage.py" bash -c "$2")
  printf '%s\t%s\n' "$1" "$rss" >>"$results/rss.tsv"
}
time_it() { # NAME PREPARE COMMAND
  local args=(--shell=bash --style=basic --warmup 1 --runs "$runs" --export-json "$results/$1.json")
  [ -z "$2" ] || args+=(--prepare "$2")
  hyperfine "${args[@]}" -n "$1" "$3" >&2
}

mkinitramfs_cmd="mkinitramfs -d $(q "$confdir") -o $(q "$scratch/mkinitramfs.img") $(q "$version")"
cold_cmd="$(q "$bake") build $(q "$modules") -o $(q "$scratch/cold") -q --no-cache --cache $(q "$cache")"
locked_cmd="$(q "$bake") build $(q "$locked") -o $(q "$scratch/locked") -q --no-cache --cache $(q "$cache")"
modules_edit="$(q "$bake") build $(q "$modules") -o $(q "$scratch/modules") -q --cache $(q "$cache")"
debian_edit="$(q "$bake") build $(q "$debian") -o $(q "$scratch/debian") -q --cache $(q "$cache")"
debian3_edit="$(q "$bake") build $(q "$debian3") -o $(q "$scratch/debian3") -q --cache $(q "$cache")"

log "mkinitramfs"
measure mkinitramfs "$mkinitramfs_cmd"
time_it mkinitramfs "" "$mkinitramfs_cmd"
log "cold module initramfs"
measure cold "$cold_cmd"
time_it cold "" "$cold_cmd"
# apt's binary cache (`pkgcache.bin`): apt's default, but Docker's Debian images turn it off
# (`Dir::Cache::pkgcache "";` in /etc/apt/apt.conf.d/docker-clean), and then every
# `apt-get indextargets` bake runs parses all of apt's lists to build it in memory (0.3-0.5 s).
# When this machine has it off, the cold build is also measured with it on, as on a stock
# Debian host: an APT_CONFIG whose parts folder is a copy of this one without the files that
# turn it off, and the cache in WORK (its first build is the warm-up run).
if [ -z "$(apt-config shell C Dir::Cache::pkgcache/f | sed -n "s/^C='\(.*\)'$/\1/p")" ]; then
  parts="$scratch/apt.conf.d"
  mkdir -p "$parts" "$work/apt-cache"
  for part in /etc/apt/apt.conf.d/*; do
    grep -qE 'pkgcache +""' "$part" || cp "$part" "$parts/"
  done
  printf 'Dir::Etc::parts "%s/";\nDir::Cache::pkgcache "%s/pkgcache.bin";\nDir::Cache::srcpkgcache "%s/srcpkgcache.bin";\n' \
    "$parts" "$work/apt-cache" "$work/apt-cache" >"$scratch/apt.conf"
  aptcache_cmd="APT_CONFIG=$(q "$scratch/apt.conf") $cold_cmd"
  log "cold module initramfs, apt's binary cache on"
  bash -c "$aptcache_cmd" >/dev/null
  measure cold_aptcache "$aptcache_cmd"
  time_it cold_aptcache "" "$aptcache_cmd"
fi
log "cold module initramfs, locked"
measure locked "$locked_cmd"
time_it locked "" "$locked_cmd"
log "edit-rebuild of modules.toml"
bash -c "$(edit_cmd "$modules")"
measure modules_edit "$modules_edit"
time_it modules_edit "$(edit_cmd "$modules")" "$modules_edit"
log "edit-rebuild of debian.toml"
bash -c "$(edit_cmd "$debian")"
measure debian_edit "$debian_edit"
time_it debian_edit "$(edit_cmd "$debian")" "$debian_edit"
log "edit-rebuild of debian.toml at zstd -3"
bash -c "$(edit_cmd "$debian3")"
measure debian3_edit "$debian3_edit"
time_it debian3_edit "$(edit_cmd "$debian3")" "$debian3_edit"

# The gzip floor. Each bake run first empties the kept frames and the build cache, so it lays
# the packages in from the input store and compresses every frame.
log "gzip -9 against the floor"
"$bake" build "$debian_none" -o "$scratch/debian-none" -q --cache "$cache" >/dev/null
archive=$(echo "$scratch/debian-none"/*.cpio)
threads=$(nproc)
gzip_cmd="$(q "$bake") build $(q "$debian_gzip") -o $(q "$scratch/debian-gzip") -q --cache $(q "$cache")"
forget="rm -rf $(q "$cache/store/frames") $(q "$cache/builds")"
floor_cmd="$(q "$floor") $(q "$archive") 9 $threads"
bash -c "$forget"
measure gzip "$gzip_cmd"
time_it gzip "$forget" "$gzip_cmd"
measure floor "$floor_cmd"
time_it floor "" "$floor_cmd"
printf '%s\t%s\n' "$(stat -c %s "$archive")" "$threads" >"$results/floor.tsv"

# What frames cost and save on the systemd example: one cold build each way.
log "debian.toml cold, with frames and with frames = false"
edit_copy "$top/recipes/debian.toml" debian-stream
stream=$copy
sed -i 's/^compression = "zstd"$/compression = "zstd"\nframes = false/' "$stream"
for how in frames stream; do
  recipe=$debian
  [ "$how" = frames ] || recipe=$stream
  read -r wall rss < <(python3 "$helpers/rusage.py" "$bake" build "$recipe" -o "$scratch/$how" -q --no-cache --cache "$cache")
  size=$(stat -c %s "$scratch/$how"/*.cpio.zst)
  printf '%s\t%s\t%s\t%s\n' "$how" "$wall" "$rss" "$size" >>"$results/frames.tsv"
done

sizes="$(stat -c %s "$scratch/mkinitramfs.img")	$(stat -c %s "$scratch/cold/"*.cpio.lz4)"
python3 "$helpers/inner_report.py" "$results" "$version" "$sizes"
