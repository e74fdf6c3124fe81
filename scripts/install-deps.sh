#!/usr/bin/env bash
# Installs the host programs the test suite uses: GNU cpio, the zstd, gzip, xz and lz4 programs,
# erofs-utils (fsck.erofs, dump.erofs), the partitioners sfdisk and sgdisk and cryptsetup's
# veritysetup, dosfstools and mtools (FAT), binutils (objdump, objcopy: PE) as independent checkers of
# bake's output, QEMU and OVMF (UEFI firmware) for the boot tests, a real OCI registry
# (docker-registry, distribution 2.8) and skopeo for the registry tests, debootstrap (the reference
# package set of a minbase system), systemd-sysusers and pwconv (the accounts Debian makes), kmod
# (depmod and modprobe: the module indexes) and hyperfine for scripts/bench.sh.
# `bake build` itself needs none of them. Installs only what is missing; does nothing when all are present.
set -euo pipefail

declare -A package_of=([cpio]=cpio [zstd]=zstd [gzip]=gzip [xz]=xz-utils [lz4]=lz4 [sha256sum]=coreutils [mkfifo]=coreutils [tar]=tar
  [dpkg-deb]=dpkg [qemu-system-x86_64]=qemu-system-x86 [fsck.erofs]=erofs-utils [dump.erofs]=erofs-utils
  [sfdisk]=fdisk [sgdisk]=gdisk [hyperfine]=hyperfine [mkfs.erofs]=erofs-utils [veritysetup]=cryptsetup-bin
  [fsck.vfat]=dosfstools [mkfs.vfat]=dosfstools [mcopy]=mtools [mmd]=mtools [objdump]=binutils [objcopy]=binutils
  [python3]=python3 [docker-registry]=docker-registry [skopeo]=skopeo [debootstrap]=debootstrap [curl]=curl [openssl]=openssl
  [systemd-sysusers]=systemd [pwconv]=passwd [grpconv]=passwd [depmod]=kmod [modprobe]=kmod)
missing=()
for tool in "${!package_of[@]}"; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("${package_of[$tool]}")
done
# Files, not commands: the firmware QEMU boots UEFI disks with.
[ -f /usr/share/OVMF/OVMF_CODE_4M.fd ] || missing+=(ovmf)
[ ${#missing[@]} -eq 0 ] && exit 0

mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
if [ "$(id -u)" != 0 ]; then
  echo "install-deps: missing ${missing[*]}: run \`sudo apt-get install ${missing[*]}\`" >&2
  exit 1
fi
echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
