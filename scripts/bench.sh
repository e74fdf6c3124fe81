#!/usr/bin/env bash
# Benchmarks `bake build` against the usual ways of making the same images, on a realistic
# Debian root file system tree, and prints a Markdown report (`--markdown docs/BENCHMARKS.md`
# also writes it where the project keeps it).
#
# Compared, in one run, at the same compressor and level:
#   bake gzip -9     against  find | sort | cpio -H newc | gzip -n -9
#   bake zstd -19    against  ... | zstd -19 -T0
#   bake xz -6       against  ... | xz -6 -T1 --check=crc32
#   bake EROFS       against  mkfs.erofs -T0 -U UUID --all-root
# plus the wall time of a no-op rebuild, and (with --big) bake's peak memory on a 2 GB image.
#
# The tree is made from a fixed list of Debian packages, downloaded with `apt-get download` and
# unpacked with `dpkg-deb -x`. The packages and the tree are kept in the work folder and reused
# by the next run; the tree is unpacked again when the list or a package version changes.
#
# With --inner-loop it measures the inner loop instead (scripts/bench/inner-loop.sh): the
# rebuild after one `[[file]]` of qemu-tests/modules.toml or recipes/debian.toml changed, a
# cold module initramfs against `mkinitramfs -d CONFDIR` with MODULES=list, with peak RSS, and
# gzip -9 against zlib-rs alone (examples/deflate_floor.rs); with --markdown it replaces that
# section of the file.
#
# Usage: scripts/bench.sh [--runs N] [--quick] [--big] [--big-size SIZE] [--work DIR]
#                         [--markdown FILE]
#        scripts/bench.sh --inner-loop [--runs N] [--work DIR] [--markdown FILE]
# Run `scripts/bench.sh --help` for what each option does.
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: scripts/bench.sh [OPTIONS]

Options:
  --runs N         Timed runs per command (default 3). The untimed run before them (for peak
                   RSS, size and the check of the outputs) warms the page cache.
  --quick          A smoke test of this script: one run, no warm-up, gzip at level 1 and EROFS
                   only. Its numbers mean little.
  --big            Also measure bake's peak memory on a large image (needs about twice SIZE,
                   plus 1 GiB, of free disk).
  --big-size SIZE  Size of the large image's tree, as for numfmt --from=iec (default 2G).
  --work DIR       Where packages, the tree and outputs go (default $XDG_CACHE_HOME/bake-bench,
                   else ~/.cache/bake-bench).
  --markdown FILE  Also write the report to FILE (e.g. docs/BENCHMARKS.md).
  --inner-loop     Measure the inner loop instead (edit-rebuilds, a cold module initramfs
                   against mkinitramfs); --markdown then replaces only its section of FILE.
  -h, --help       Print this help.

Environment:
  BAKE=PATH        Benchmark this bake binary instead of building one with cargo.
EOF
}

top=$(cd "$(dirname "$0")/.." && pwd)
helpers="$top/scripts/bench"
command_line="scripts/bench.sh$(printf ' %q' "$@")"
[ -z "${BAKE:-}" ] || command_line="BAKE=$(printf '%q' "$BAKE") $command_line"

work="${XDG_CACHE_HOME:-$HOME/.cache}/bake-bench"
runs=3
# No separate warm-up: each command's untimed run (below) reads the tree just before the timing.
warmup=0
quick=
big=
big_size=2G
markdown=
inner_loop=
while [ $# -gt 0 ]; do
  case "$1" in
    --runs) runs=${2:?--runs needs a number}; shift 2 ;;
    --quick) quick=1; shift ;;
    --big) big=1; shift ;;
    --big-size) big_size=${2:?--big-size needs a size}; shift 2 ;;
    --work) work=${2:?--work needs a folder}; shift 2 ;;
    --markdown) markdown=${2:?--markdown needs a file}; shift 2 ;;
    --inner-loop) inner_loop=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument \`$1\`" >&2; usage >&2; exit 2 ;;
  esac
done
[[ "$runs" =~ ^[1-9][0-9]*$ ]] || { echo "bench: --runs takes a positive number, not \`$runs\`" >&2; exit 2; }
if [ -n "$quick" ]; then
  runs=1
  warmup=0
fi

# Other work on the machine skews the timings: the load when this run started goes in the report.
load_at_start=$(cut -d' ' -f1-3 /proc/loadavg)

log() { printf 'bench: %s\n' "$*" >&2; }
die() { printf 'bench: error: %s\n' "$*" >&2; exit 1; }
q() { printf '%q' "$1"; }

# Sets `bake`: $BAKE, or a release build of this checkout.
find_bake() {
  if [ -n "${BAKE:-}" ]; then
    bake=$(realpath "$(command -v "$BAKE" || echo "$BAKE")")
  else
    log "building bake (cargo build --release)"
    (cd "$top" && cargo build --release --quiet)
    bake="$(cd "$top" && realpath -m "${CARGO_TARGET_DIR:-target}")/release/bake"
  fi
  [ -x "$bake" ] || die "no bake binary at $bake"
}

if [ -n "$inner_loop" ]; then
  find_bake
  log "building the gzip floor (cargo build --release --example deflate_floor)"
  (cd "$top" && cargo build --release --quiet --example deflate_floor)
  floor="$(cd "$top" && realpath -m "${CARGO_TARGET_DIR:-target}")/release/examples/deflate_floor"
  section=$("$helpers/inner-loop.sh" "$bake" "$floor" "$runs" "$work/inner-loop")
  section=$(printf '%s\n\n- **Date:** %s; load average at the start: %s\n- **Regenerate with:** `%s`\n' \
    "$section" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$load_at_start" "$command_line")
  printf '%s\n' "$section"
  if [ -n "$markdown" ]; then
    # The section runs from its heading to the end of the file or the next `## ` heading.
    python3 - "$markdown" "$section" <<'PY'
import re, sys
path, section = sys.argv[1], sys.argv[2].rstrip("\n") + "\n"
try:
    text = open(path).read()
except FileNotFoundError:
    text = ""
pattern = re.compile(r"^## The inner loop\n.*?(?=^## (?!#)|\Z)", re.S | re.M)
if pattern.search(text):
    text = pattern.sub(lambda _: section + "\n", text, count=1)
else:
    text = text.rstrip("\n") + "\n\n" + section
open(path, "w").write(text.rstrip("\n") + "\n")
PY
    log "inner loop section written to $markdown"
  fi
  exit 0
fi

# The packages the tree is made of: a Debian userland with Python, Perl, systemd, apt and the
# usual tools. Unpacked, about 210 MB in 9,500 entries. apt's current (candidate) version of each
# is taken, because Debian removes old versions from its archive.
packages=(
  libc6 libc-bin libgcc-s1 libstdc++6 libcrypt1 zlib1g liblzma5 libzstd1 bzip2
  bash dash coreutils findutils grep sed tar gzip diffutils less vim-tiny procps
  util-linux mount login passwd e2fsprogs iproute2 ncurses-base ncurses-bin libncursesw6
  libtinfo6 libreadline8 readline-common libselinux1 libpcre2-8-0 libpam0g libpam-modules
  systemd libsystemd-shared libssl3 openssl ca-certificates libgnutls30 libkrb5-3
  libgssapi-krb5-2 libxml2 libexpat1 libffi8 libsqlite3-0 libdb5.3 libgdbm6 tzdata
  apt libapt-pkg6.0 dpkg
  perl-base perl-modules-5.36 libperl5.36
  python3.11 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
)

# A fixed UUID for mkfs.erofs, so that its image is the same on every run.
erofs_uuid=6e1bd2e2-3b6c-4c2a-9a4e-2f6c0a5b0e11

# ---------------------------------------------------------------------------------------------
# Every tool this script needs, before anything long starts.

declare -A package_of=([hyperfine]=hyperfine [cpio]=cpio [gzip]=gzip [zstd]=zstd [xz]=xz-utils
  [mkfs.erofs]=erofs-utils [fsck.erofs]=erofs-utils [dump.erofs]=erofs-utils [dpkg-deb]=dpkg
  [apt-get]=apt [apt-cache]=apt [python3]=python3 [sha256sum]=coreutils [numfmt]=coreutils
  [git]=git)
[ -n "${BAKE:-}" ] || package_of[cargo]="a Rust toolchain (rustup)"
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool (from ${package_of[$tool]})")
done
if [ ${#missing[@]} -gt 0 ]; then
  printf 'bench: error: missing tool: %s\n' "${missing[@]}" >&2
  exit 1
fi

mkdir -p "$work"
work=$(realpath "$work")
case "$work" in *"'"*) die "the work folder's path cannot contain a single quote: $work" ;; esac
debs="$work/debs"
tree="$work/tree"
scratch="$work/scratch"    # outputs of the timed commands, remade on every run
results="$work/results"    # the measurements the report is made from, remade on every run
rm -rf "$scratch" "$results"
mkdir -p "$debs" "$scratch" "$results"

# Fails unless the file system holding the work folder has NEED bytes free.
need_space() {
  local need=$1 what=$2 free
  free=$(df -B1 --output=avail "$work" | tail -n 1 | tr -d ' ')
  if [ "$free" -lt "$need" ]; then
    die "$what needs $(numfmt --to=iec-i --suffix=B "$need") free in $work, which has $(numfmt --to=iec-i --suffix=B "$free")"
  fi
}

# ---------------------------------------------------------------------------------------------
# bake itself.

find_bake

build_help=$("$bake" build --help)
grep -q -e '--cache ' <<<"$build_help" || die "this bake has no \`bake build --cache DIR\`"
# The timed builds must do the work, not take it from bake's build cache. A bake from before
# the cache existed has no --no-cache flag, and nothing to skip, so it is run without it.
no_cache=()
no_cache_text=
if grep -q -e '--no-cache' <<<"$build_help"; then
  no_cache=(--no-cache)
  no_cache_text=" --no-cache"
else
  log "this bake has no --no-cache flag (no build cache yet): timing its builds without it"
fi

# ---------------------------------------------------------------------------------------------
# The tree: download the packages, unpack them into one folder.

# apt-get download needs package lists; a fresh machine may have none.
if ! apt-cache show "${packages[0]}" >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || die "apt does not know \`${packages[0]}\`: run \`sudo apt-get update\` first"
  log "no apt package lists yet: running apt-get update"
  apt-get update -qq >&2
fi

log "fetching ${#packages[@]} Debian packages into $debs"
# apt's candidate version of every package, then each one's file name and SHA256 in the archive
# (one apt-cache call each for all of them: apt-cache takes half a second to start).
declare -A candidate file_of sha256_of
while read -r pkg version; do
  candidate[$pkg]=$version
done < <(apt-cache policy "${packages[@]}" |
  awk '/^[^ ]/ {pkg = $1; sub(/:$/, "", pkg); sub(/:.*/, "", pkg)} /^  Candidate:/ {print pkg, $2}')
wanted=()
for pkg in "${packages[@]}"; do
  version=${candidate[$pkg]:-}
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    die "apt has no installable version of \`$pkg\`"
  fi
  wanted+=("$pkg=$version")
done
# Only records with a Filename can be downloaded (the installed packages' records have none).
while IFS=$'\t' read -r pkg file sha256; do
  file_of[$pkg]=$file
  sha256_of[$pkg]=$sha256
done < <(apt-cache show "${wanted[@]}" | awk -v OFS='\t' '
  /^Package:/ {p = $2} /^Filename:/ {f = $2} /^SHA256:/ {s = $2}
  /^$/ {if (f) print p, f, s; p = f = s = ""}
  END {if (f) print p, f, s}')

deb_files=()
for pkg in "${packages[@]}"; do
  version=${candidate[$pkg]}
  # The candidate can be an installed version the archive no longer has: apt's lists are old.
  [ -n "${file_of[$pkg]:-}" ] || die "apt cannot download \`$pkg\` $version: run \`apt-get update\` and try again"
  file="$debs/$(basename "${file_of[$pkg]}")"
  sha256=${sha256_of[$pkg]}
  if [ ! -f "$file" ] || ! echo "$sha256  $file" | sha256sum -c --status; then
    download=$(mktemp -d "$debs/.download.XXXXXX")
    (cd "$download" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2)
    echo "$sha256  $(echo "$download"/*.deb)" | sha256sum -c --status ||
      die "\`$pkg\` $version does not have the SHA256 that apt's lists give"
    mv "$download"/*.deb "$file"
    rmdir "$download"
  fi
  deb_files+=("$file")
  printf '%s\t%s\n' "$pkg" "$version" >>"$results/packages.tsv"
done

# bake takes from a folder only each entry's kind, name, symlink target, contents and exec bit,
# and writes everything owned by 0:0 with mtime 0 and mode 0755 or 0644; it stores each name of
# a hard-linked file as a file of its own. The usual tools copy modes, mtimes and hard links from
# the disk. So the tree is made to look like what bake writes, and every tool stores the same
# names, bytes and metadata.
normalise_tree() {
  find "$1" -type f -links +1 -exec sh -c \
    'for f; do cp -p -- "$f" "$f.unlink" && mv -f -- "$f.unlink" "$f"; done' sh {} +
  find "$1" -type d -exec chmod 0755 {} +
  find "$1" -type f -perm /0111 -exec chmod 0755 {} +
  find "$1" -type f ! -perm /0111 -exec chmod 0644 {} +
  find "$1" -exec touch -h -d @0 {} +
}

# The stamp names every .deb (and so every version) and the way the tree was made: when it
# differs from the last run's, the tree is unpacked again.
stamp=$(printf '%s\n' "tree-v2" "${deb_files[@]##*/}")
if [ -d "$tree" ] && [ -f "$work/tree.stamp" ] && [ "$(cat "$work/tree.stamp")" = "$stamp" ]; then
  log "reusing the tree in $tree"
else
  log "unpacking the packages into $tree"
  rm -rf "$tree" "$work/tree.stamp"
  mkdir "$tree"
  for deb in "${deb_files[@]}"; do
    dpkg-deb -x "$deb" "$tree"
  done
  normalise_tree "$tree"
  # bake lays in what maintainer scripts would have made (accounts, /etc/nsswitch.conf, the
  # time zone, ...) when the tree holds the packages those come from. So that every tool
  # archives the same entries, the tree is bake's own image of it, unpacked again.
  seed="$work/seed"
  rm -rf "$seed"
  mkdir -p "$seed"
  printf "[image]\nname = \"bench-seed\"\n\n[initramfs]\ncompression = \"none\"\n\n[[layer]]\ndir = '%s'\n" "$tree" \
    >"$seed/seed.toml"
  "$bake" build "$seed/seed.toml" -o "$seed/out" -q "${no_cache[@]}" >/dev/null
  rm -rf "$tree"
  mkdir "$tree"
  (cd "$tree" && cpio -idm --quiet --no-absolute-filenames <"$seed/out/bench-seed.cpio")
  rm -rf "$seed"
  normalise_tree "$tree"
  echo "$stamp" >"$work/tree.stamp"
fi
tree_bytes=$(du -sb "$tree" | cut -f1)
tree_entries=$(find "$tree" -mindepth 1 | wc -l)
log "tree: $((tree_bytes / 1000000)) MB in $tree_entries entries (without the root), from ${#packages[@]} packages"
if [ "$tree_bytes" -lt 100000000 ] || [ "$tree_entries" -lt 5000 ]; then
  log "warning: the tree is smaller than the 100 MB and 5,000 files the benchmark should have"
fi

# With --big: the tree plus pseudo-random files up to --big-size, in a second layer. They are
# made now, so that a lack of disk space shows before the long timing starts.
if [ -n "$big" ]; then
  big_bytes=$(numfmt --from=iec "$big_size")
  filler_bytes=$((big_bytes - tree_bytes))
  [ "$filler_bytes" -gt 0 ] || die "--big-size $big_size is not larger than the tree ($tree_bytes bytes)"
  filler_layer="$work/big/layer"
  filler_dir="$filler_layer/srv/filler"
  filler_stamp="filler-v1 $filler_bytes"
  filler_ready=
  if [ -f "$work/big/filler.stamp" ] && [ "$(cat "$work/big/filler.stamp")" = "$filler_stamp" ]; then
    filler_ready=1
  fi
fi

# The disk space this run needs: the outputs of the comparisons, kept until the end, come to
# less than five times the tree; --big adds its filler files and one image at a time.
need=$((5 * tree_bytes + (256 << 20)))
if [ -n "$big" ]; then
  need=$((need + big_bytes))
  [ -n "$filler_ready" ] || need=$((need + filler_bytes))
fi
need_space "$need" "this run"

if [ -n "$big" ]; then
  if [ -n "$filler_ready" ]; then
    log "big image: reusing the filler files in $filler_dir"
  else
    log "big image: writing $(numfmt --to=iec-i --suffix=B "$filler_bytes") of filler files into $filler_dir"
    rm -rf "$work/big"
    mkdir -p "$filler_dir"
    chunk=$((512 << 20))
    left=$filler_bytes
    n=0
    while [ "$left" -gt 0 ]; do
      size=$((left < chunk ? left : chunk))
      python3 "$helpers/filler.py" "$size" "bake-bench-$n" "$filler_dir/$(printf 'filler-%02d.bin' "$n")"
      left=$((left - size))
      n=$((n + 1))
    done
    normalise_tree "$filler_layer"
    echo "$filler_stamp" >"$work/big/filler.stamp"
  fi
fi

# ---------------------------------------------------------------------------------------------
# The comparisons.

recipes="$scratch/recipes"
mkdir -p "$recipes"

# write_recipe FILE NAME SECTION LAYER_DIR...: a recipe of the given folders, one layer each.
# The paths are TOML literal strings, which take any character but a single quote.
write_recipe() {
  local file=$1 name=$2 section=$3 dir
  shift 3
  {
    printf '[image]\nname = "%s"\n\n%s\n' "$name" "$section"
    for dir in "$@"; do
      printf "\n[[layer]]\ndir = '%s'\n" "$dir"
    done
  } >"$file"
}
initramfs_section() { printf '[initramfs]\ncompression = "%s"\n%s' "$1" "${2:+level = $2}"; }
erofs_section='[disk]
format = "erofs"
partition-table = "none"'

# One line per comparison: ID, title, bake's compression, level, the usual compressor command,
# the file suffix, and the command that decompresses it. An ID of `erofs` compares EROFS writers.
if [ -n "$quick" ]; then
  comparisons=(
    "gzip1|gzip -1|gzip|1|gzip -n -1|cpio.gz|gzip -dc"
    "erofs|EROFS|||||"
  )
else
  comparisons=(
    "gzip9|gzip -9|gzip|9|gzip -n -9|cpio.gz|gzip -dc"
    "zstd19|zstd -19|zstd|19|zstd -19 -T0 -q|cpio.zst|zstd -dc -q"
    "xz6|xz -6|xz|6|xz -6 -T1 --check=crc32|cpio.xz|xz -dc"
    "erofs|EROFS|||||"
  )
fi

# The usual initramfs pipeline, as a display string and as the command that is run.
pipeline_text='cd TREE && find . -print0 | LC_ALL=C sort -z | cpio --null --reproducible --quiet -H newc -o -R 0:0 | COMPRESSOR > OUT'
pipeline() { # COMPRESSOR OUT
  printf 'set -o pipefail; cd %s && find . -print0 | LC_ALL=C sort -z | cpio --null --reproducible --quiet -H newc -o -R 0:0 | %s > %s' \
    "$(q "$tree")" "$1" "$(q "$2")"
}

# The names in a compressed cpio archive, sorted, without find's `./` prefix and root entry.
cpio_names() { # DECOMPRESS FILE (DECOMPRESS is a command and its options, split on spaces)
  $1 <"$2" | cpio -it --quiet | sed -e 's|^\./||' -e '/^\.$/d' | LC_ALL=C sort
}

# The number of inodes dump.erofs counts in an EROFS image (the root and every entry).
erofs_inodes() { dump.erofs -s "$1" | awk -F: '/inode count/ {gsub(/ /, "", $2); print $2}'; }

# measure ID WHO COMMAND OUTPUT: run COMMAND once, outside the timing, and record its peak RSS
# and the size of OUTPUT.
measure() {
  local id=$1 who=$2 command=$3 output=$4 wall rss
  read -r wall rss < <(python3 "$helpers/rusage.py" bash -c "$command")
  if [ -z "$rss" ] || [ ! -f "$output" ]; then
    die "$id: \`$command\` failed or made no $output"
  fi
  printf '%s\t%s\t%s\t%s\n' "$id" "$who" "$rss" "$(stat -c %s "$output")" >>"$results/measure.tsv"
}

hyperfine_args=(--shell=bash --style=basic --warmup "$warmup" --runs "$runs")
# The EROFS writers and the no-op rebuild take about a second or less, where one slow write-back
# of the page cache skews a mean: they get five times the runs (at least ten) and a warm-up.
short_runs=$((runs * 5 < 10 ? 10 : runs * 5))
short_args=(--shell=bash --style=basic --warmup 1 --runs "$short_runs")
[ -z "$quick" ] || short_args=("${hyperfine_args[@]}")
for line in "${comparisons[@]}"; do
  IFS='|' read -r id title compression level compressor suffix decompress <<<"$line"
  name="bench-$id"
  recipe="$recipes/$id.toml"
  out="$scratch/bake-$id"
  if [ "$id" = erofs ]; then
    write_recipe "$recipe" "$name" "$erofs_section" "$tree"
    bake_output="$out/$name.erofs"
    usual_output="$scratch/usual-$id.erofs"
    usual_cmd="mkfs.erofs --quiet -T0 -U $erofs_uuid --all-root $(q "$usual_output") $(q "$tree")"
    usual_text="mkfs.erofs --quiet -T0 -U $erofs_uuid --all-root OUT TREE"
  else
    write_recipe "$recipe" "$name" "$(initramfs_section "$compression" "$level")" "$tree"
    bake_output="$out/$name.$suffix"
    usual_output="$scratch/usual-$id.$suffix"
    usual_cmd=$(pipeline "$compressor" "$usual_output")
    usual_text=${pipeline_text/COMPRESSOR/$compressor}
  fi
  bake_cmd="$(q "$bake") build $(q "$recipe") -o $(q "$out") -q ${no_cache[*]}"
  bake_text="bake build RECIPE -o OUT -q$no_cache_text"

  # One untimed run of each: peak RSS, output size, and a check that both hold the same entries.
  log "$title: one untimed run of each, for peak RSS, size and a check of the outputs"
  measure "$id" bake "$bake_cmd" "$bake_output"
  measure "$id" usual "$usual_cmd" "$usual_output"
  if [ "$id" = erofs ]; then
    fsck.erofs "$bake_output" >/dev/null || die "fsck.erofs finds bake's image broken: $bake_output"
    fsck.erofs "$usual_output" >/dev/null || die "fsck.erofs finds mkfs.erofs's image broken: $usual_output"
    bake_count=$(erofs_inodes "$bake_output")
    usual_count=$(erofs_inodes "$usual_output")
    [ "$bake_count" = "$usual_count" ] || die "$title: bake's image has $bake_count inodes, mkfs.erofs's $usual_count"
    [ "$bake_count" = $((tree_entries + 1)) ] || die "$title: the images have $bake_count inodes, the tree has $((tree_entries + 1))"
    log "$title: both images pass fsck.erofs and hold $bake_count inodes"
  else
    cpio_names "$decompress" "$bake_output" >"$scratch/names-bake"
    cpio_names "$decompress" "$usual_output" >"$scratch/names-usual"
    if ! cmp -s "$scratch/names-bake" "$scratch/names-usual"; then
      diff "$scratch/names-bake" "$scratch/names-usual" | head -n 20 >&2
      die "$title: bake's archive and the pipeline's hold different entries (above: < bake, > pipeline)"
    fi
    log "$title: both archives decompress to cpio archives of the same $(wc -l <"$scratch/names-bake") entries"
  fi

  timing_args=("${hyperfine_args[@]}")
  [ "$id" != erofs ] || timing_args=("${short_args[@]}")
  log "$title: timing (hyperfine ${timing_args[*]:2})"
  hyperfine "${timing_args[@]}" --export-json "$results/$id.json" \
    -n "bake $title" "$bake_cmd" -n "usual $title" "$usual_cmd" >&2
  printf '%s\t%s\t%s\t%s\n' "$id" "$title" "$bake_text" "$usual_text" >>"$results/pairs.tsv"
done

# ---------------------------------------------------------------------------------------------
# No-op rebuild: build a recipe once with the cache on, then time building it again into the
# same folder. The cache is a scratch folder, so the user's own cache is not touched.

# A bake without a build cache (no --no-cache flag) builds everything again: one run is enough
# to show that, and saves minutes.
noop_id=${comparisons[0]%%|*}
noop_out="$scratch/noop"
noop_cache="$scratch/cache"
noop_cmd="$(q "$bake") build $(q "$recipes/$noop_id.toml") -o $(q "$noop_out") -q --cache $(q "$noop_cache")"
noop_args=("${short_args[@]}")
[ ${#no_cache[@]} -gt 0 ] || noop_args=(--shell=bash --style=basic --warmup 0 --runs 1)
log "no-op rebuild: a first build, then timing the second"
bash -c "$noop_cmd" >&2
hyperfine "${noop_args[@]}" --export-json "$results/noop.json" -n "bake no-op rebuild" "$noop_cmd" >&2

# ---------------------------------------------------------------------------------------------
# Peak memory on a large image (--big): the tree and the filler files, built once each
# uncompressed, with gzip and as EROFS.

if [ -n "$big" ]; then
  big_level=9
  [ -z "$quick" ] || big_level=1
  for line in "none|cpio|uncompressed cpio" "gzip|cpio.gz|gzip -$big_level" "erofs|erofs|EROFS"; do
    IFS='|' read -r kind suffix label <<<"$line"
    recipe="$recipes/big-$kind.toml"
    if [ "$kind" = erofs ]; then
      write_recipe "$recipe" bench-big "$erofs_section" "$tree" "$filler_layer"
    elif [ "$kind" = none ]; then
      write_recipe "$recipe" bench-big "$(initramfs_section none)" "$tree" "$filler_layer"
    else
      write_recipe "$recipe" bench-big "$(initramfs_section "$kind" "$big_level")" "$tree" "$filler_layer"
    fi
    log "big image: building it as $label"
    out="$scratch/big"
    read -r wall rss < <(python3 "$helpers/rusage.py" "$bake" build "$recipe" -o "$out" -q "${no_cache[@]}")
    [ -f "$out/bench-big.$suffix" ] || die "big image: bake made no $out/bench-big.$suffix"
    printf '%s\t%s\t%s\t%s\n' "$label" "$wall" "$rss" "$(stat -c %s "$out/bench-big.$suffix")" >>"$results/big.tsv"
    rm -rf "$out"
  done
fi

# ---------------------------------------------------------------------------------------------
# The report.

{
  printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M UTC')"
  printf 'nproc\t%s\n' "$(nproc)"
  printf 'cpu\t%s\n' "$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
  printf 'ram\t%s\n' "$(awk '/^MemTotal:/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
  printf 'kernel\t%s\n' "$(uname -r)"
  # shellcheck source=/dev/null
  os=$(. /etc/os-release && echo "$PRETTY_NAME")
  [ ! -f /etc/debian_version ] || os="$os ($(cat /etc/debian_version))"
  printf 'os\t%s\n' "$os"
  commit=$(git -C "$top" rev-parse --short HEAD 2>/dev/null || echo unknown)
  [ -z "$(git -C "$top" status --porcelain 2>/dev/null)" ] || commit="$commit (with uncommitted changes)"
  printf 'commit\t%s\n' "$commit"
  if [ -n "${BAKE:-}" ]; then
    printf 'bake_how\t%s\n' "but the binary measured was BAKE=$BAKE"
  else
    printf 'bake_how\t%s\n' "built with \`cargo build --release\`"
  fi
  printf 'tools\t%s\n' "$(gzip --version | head -n 1), zstd $(zstd --version | grep -o 'v[0-9][0-9.]*'), $(xz --version | head -n 1), $(cpio --version | head -n 1), mkfs.erofs $(fsck.erofs -V | awk '{print $2}'), $(hyperfine --version)"
  if [ -n "$quick" ]; then
    printf 'method\t%s\n' "--quick: 1 timed run per command, no warm-up (hyperfine); peak RSS and sizes from one separate untimed run."
    printf 'quick\t1\n'
  else
    printf 'method\t%s\n' "$runs timed runs per command (hyperfine; $short_runs after a warm-up for EROFS and the no-op rebuild, which take about a second), each pair right after one untimed run of both that warms the page cache and gives the peak RSS and sizes."
  fi
  printf 'load\t%s\n' "$load_at_start"
  printf 'command\t%s\n' "$command_line"
  printf 'tree_bytes\t%s\n' "$tree_bytes"
  printf 'tree_entries\t%s\n' "$tree_entries"
  printf 'noop_what\t%s\n' "A second \`bake build\` of the $(cut -d'|' -f2 <<<"${comparisons[0]}") recipe into the same folder, build cache on (a scratch \`--cache\` folder)"
  printf 'noop_cmd\t%s\n' "bake build RECIPE -o OUT -q --cache CACHE"
  if [ -n "$big" ]; then
    printf 'big_size\t%s\n' "$(numfmt --to=iec-i --suffix=B "$big_bytes")"
    printf 'big_what\t%s\n' "The tree plus $(numfmt --to=iec-i --suffix=B "$filler_bytes") of pseudo-random files under /srv/filler, $(numfmt --to=iec-i --suffix=B "$big_bytes") in all, built once each by \`bake build$no_cache_text\`."
  fi
  notes=("xz runs single-threaded (-T1), the usual reproducible way (its multi-threaded mode splits the stream into blocks), with --check=crc32 as bake writes it (the kernel's XZ decoder knows only CRC32)."
    "gzip is single-threaded, \`zstd -T0\` uses every core, and bake uses every core (its default -j).")
  [ ${#no_cache[@]} -gt 0 ] || notes+=("This bake had no --no-cache flag (no build cache yet), so its builds ran without it, and its no-op rebuild, a full build, was timed once.")
  printf 'notes\t%s\n' "$(printf '%s | ' "${notes[@]}")"
} >"$results/meta.tsv"

python3 "$helpers/report.py" "$results" >"$results/BENCHMARKS.md"
cat "$results/BENCHMARKS.md"
if [ -n "$markdown" ]; then
  cp "$results/BENCHMARKS.md" "$markdown"
  log "report written to $markdown"
fi
