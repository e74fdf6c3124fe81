#!/usr/bin/env bash
# Fetches the current Debian cloud kernel for boot tests and prints the path of its vmlinuz.
#
# `linux-image-cloud-amd64` is a metapackage that depends on one versioned kernel package
# (linux-image-6.1.0-NN-cloud-amd64); Debian replaces that version at point releases, so the
# version is resolved from apt's lists each time rather than pinned. The package is downloaded
# and checked against apt's signed SHA256 by fetch-debs.sh, then its vmlinuz is extracted to
# cache/kernel/vmlinuz-VERSION, linked as cache/kernel/vmlinuz. The package itself stays at
# cache/debs/linux-image-cloud-amd64.deb (a link), for recipes that use its files.
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
meta=linux-image-cloud-amd64

# Make sure apt's lists exist (fetch-debs.sh updates them as root when they are missing).
"$top/scripts/fetch-debs.sh" --check-lists "$meta"
pkg=$(apt-cache depends "$meta" | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [ -z "$pkg" ]; then
  echo "fetch-kernel: cannot tell which kernel \`$meta\` depends on" >&2
  exit 1
fi
deb=$("$top/scripts/fetch-debs.sh" "$pkg")
ln -sfn "$(readlink "$deb")" "$top/cache/debs/$meta.deb"

version=${pkg#linux-image-}
kernel_dir="$top/cache/kernel"
mkdir -p "$kernel_dir"
if [ ! -s "$kernel_dir/vmlinuz-$version" ]; then
  tmp=$(mktemp "$kernel_dir/.vmlinuz.XXXXXX")
  dpkg-deb --fsys-tarfile "$deb" | tar -xO "./boot/vmlinuz-$version" > "$tmp"
  mv "$tmp" "$kernel_dir/vmlinuz-$version"
fi
ln -sfn "vmlinuz-$version" "$kernel_dir/vmlinuz"
echo "$kernel_dir/vmlinuz"
