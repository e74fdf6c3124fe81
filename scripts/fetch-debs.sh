#!/usr/bin/env bash
# Fetches the Debian packages the example recipes use into cache/debs/ (git-ignored), checks
# each against the SHA256 that apt's signed package lists give, and links it at a stable name
# (cache/debs/NAME.deb) that the recipes refer to. Prints the path of each package.
#
# Debian replaces package versions at point releases, so this takes the current version rather
# than one that may vanish; the recipes' outputs are reproducible for the same package bytes.
# Usage: scripts/fetch-debs.sh [PACKAGE...]   (default: the packages the examples need)
#        scripts/fetch-debs.sh --check-lists PACKAGE   (only make sure apt knows PACKAGE)
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
cache="$top/cache/debs"
check_only=
if [ "${1:-}" = --check-lists ]; then
  check_only=1
  shift
fi
packages=("$@")
[ ${#packages[@]} -gt 0 ] || packages=(busybox-static)
mkdir -p "$cache"

# apt-get download needs package lists; a fresh machine may have none.
if ! apt-cache show "${packages[0]}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    echo "fetch-debs: no apt package lists yet; running apt-get update" >&2
    apt-get update -qq >&2
  else
    echo "fetch-debs: apt does not know \`${packages[0]}\`: run \`sudo apt-get update\` first" >&2
    exit 1
  fi
fi
[ -z "$check_only" ] || exit 0

for pkg in "${packages[@]}"; do
  version=$(apt-cache policy "$pkg" | awk '/Candidate:/ {print $2}')
  if [ -z "$version" ] || [ "$version" = "(none)" ]; then
    echo "fetch-debs: apt has no installable version of \`$pkg\`" >&2
    exit 1
  fi
  record=$(apt-cache show --no-all-versions "$pkg=$version")
  file=$(basename "$(awk '/^Filename:/ {print $2; exit}' <<<"$record")")
  want=$(awk '/^SHA256:/ {print $2; exit}' <<<"$record")
  if [ ! -f "$cache/$file" ] || ! echo "$want  $cache/$file" | sha256sum -c --status; then
    tmp=$(mktemp -d "$cache/.fetch.XXXXXX")
    (cd "$tmp" && apt-get download -qq -o APT::Sandbox::User=root "$pkg=$version" >&2)
    got=$(sha256sum "$tmp"/*.deb | awk '{print $1}')
    if [ "$got" != "$want" ]; then
      echo "fetch-debs: \`$pkg\` $version has sha256 $got, but apt's lists say $want" >&2
      rm -rf "$tmp"
      exit 1
    fi
    mv "$tmp"/*.deb "$cache/$file"
    rm -rf "$tmp"
  fi
  ln -sfn "$file" "$cache/$pkg.deb"
  echo "$cache/$pkg.deb"
done
