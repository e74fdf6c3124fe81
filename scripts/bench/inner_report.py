#!/usr/bin/env python3
"""Prints the inner loop's Markdown section from the results of scripts/bench/inner-loop.sh.

Usage: inner_report.py RESULTS KERNEL_VERSION "MKINITRAMFS_BYTES<TAB>BAKE_BYTES"

RESULTS holds NAME.json (hyperfine's --export-json of one command), rss.tsv (NAME, peak RSS in
KiB) and frames.tsv (how, wall seconds, peak RSS in KiB, bytes).
"""
import json
import os
import sys

results, version, sizes = sys.argv[1], sys.argv[2], sys.argv[3]
mkinitramfs_bytes, bake_bytes = (int(n) for n in sizes.split("\t"))


def timing(name):
    with open(os.path.join(results, name + ".json")) as f:
        result = json.load(f)["results"][0]
    return result["mean"], result.get("stddev") or 0.0


def seconds(mean, stddev=None):
    text = f"{mean * 1000:.0f} ms" if mean < 1 else f"{mean:.2f} s"
    if stddev:
        text += f" ± {stddev * 1000:.0f} ms" if stddev < 1 else f" ± {stddev:.2f} s"
    return text


rss = {}
with open(os.path.join(results, "rss.tsv")) as f:
    for line in f:
        name, kib = line.split("\t")
        rss[name] = int(kib) / 1024

base, base_sd = timing("mkinitramfs")
rows = [
    ("mkinitramfs", "`mkinitramfs -d CONFDIR` (`MODULES=list`: virtio_pci, virtio_blk, erofs; `COMPRESS=lz4`)"),
    ("cold", "bake, cold: `qemu-tests/modules.toml` (the same drivers, LZ4) with `--no-cache`"),
    ("cold_aptcache", "bake, cold, the same with apt's binary cache on (apt's default; this machine's "
     "Docker image turns it off, and `apt-get indextargets` then parses every list to build it)"),
    ("locked", "bake, cold: the same recipe locked (`bake lock`: apt's lists are not read), `--no-cache`"),
    ("modules_edit", "bake, edit-rebuild: `qemu-tests/modules.toml` after one `[[file]]` changed"),
    ("debian_edit", "bake, edit-rebuild: `recipes/debian.toml` (102 packages, systemd, zstd -19) after one `[[file]]` changed"),
    ("debian3_edit", "bake, edit-rebuild: the same at zstd -3"),
]
print("## The inner loop")
print()
print("Measured by `scripts/bench.sh --inner-loop`, apart from the sections above (which come from "
      "the full run named at the top, possibly of an earlier commit: before zstd, gzip and xz "
      "images were written as frames by default).")
print()
print(f"Kernel {version} (Debian's cloud kernel, the one bake resolves for `qemu-tests/modules.toml`). "
      "Each edit-rebuild run first changes the content of one inline `[[file]]` of a copy of the "
      "recipe, then runs `bake build` with the cache on; the cold build uses `--no-cache`.")
print()
print("| What | Wall time | Against mkinitramfs | Peak RSS |")
print("| --- | --- | --- | --- |")
for name, what in rows:
    if not os.path.exists(os.path.join(results, name + ".json")):
        continue
    mean, sd = timing(name)
    ratio = "1" if name == "mkinitramfs" else f"{mean / base:.2f}×"
    print(f"| {what} | {seconds(mean, sd)} | {ratio} | {rss[name]:.1f} MiB |")
print()
print(f"Against mkinitramfs is bake's wall time divided by mkinitramfs's: below 1, bake is faster. "
      f"Image sizes: mkinitramfs {mkinitramfs_bytes / 1e6:.1f} MB (it adds klibc, udev hooks and "
      f"scripts), bake {bake_bytes / 1e6:.1f} MB.")
print()

frames = {}
with open(os.path.join(results, "frames.tsv")) as f:
    for line in f:
        how, wall, kib, size = line.rstrip("\n").split("\t")
        frames[how] = (float(wall), int(kib) / 1024, int(size))
print("### zstd frames on the systemd example")
print()
print("`recipes/debian.toml` built once each way with `--no-cache` (zstd -19).")
print()
print("| Written as | Cold build | Peak RSS | Size |")
print("| --- | --- | --- | --- |")
for how, label in [("frames", "frames (the default)"), ("stream", "one stream (`frames = false`)")]:
    wall, mib, size = frames[how]
    print(f"| {label} | {wall:.2f} s | {mib:.1f} MiB | {size / 1e6:.1f} MB |")
print()
f_size, s_size = frames["frames"][2], frames["stream"][2]
print(f"Frames make the image {100 * (f_size / s_size - 1):.1f}% larger; the edit-rebuild above "
      "compresses only the frame that changed.")

with open(os.path.join(results, "floor.tsv")) as f:
    archive_bytes, threads = f.read().split()
gzip_t, gzip_sd = timing("gzip")
floor_t, floor_sd = timing("floor")
print()
print("### gzip -9 against the floor")
print()
print(f"`recipes/debian.toml` as gzip -9: `bake build` with its packages laid in from the input store "
      f"and every frame compressed (the kept frames and the build cache emptied before each run), "
      f"against zlib-rs alone compressing the same {int(archive_bytes) / 1e6:.0f} MB uncompressed archive "
      f"on {threads} threads (`examples/deflate_floor.rs`: the archive cut in {threads} pieces, nothing "
      f"read or written).")
print()
print("| What | Wall time | Peak RSS |")
print("| --- | --- | --- |")
print(f"| bake build, gzip -9 | {seconds(gzip_t, gzip_sd)} | {rss['gzip']:.1f} MiB |")
print(f"| zlib-rs alone, level 9, {threads} threads | {seconds(floor_t, floor_sd)} | {rss['floor']:.1f} MiB |")
print()
print(f"bake takes {gzip_t / floor_t:.2f}× the floor's time.")

targets = [
    ("edit-rebuild of `qemu-tests/modules.toml` under 0.5 s", timing("modules_edit")[0], 0.5),
    ("edit-rebuild of the systemd example under 0.5 s (zstd -19)", timing("debian_edit")[0], 0.5),
    ("edit-rebuild of the systemd example under 0.5 s (zstd -3)", timing("debian3_edit")[0], 0.5),
]
print()
print("Targets (reported, not enforced):")
print()
for what, mean, limit in targets:
    print(f"- {what}: {seconds(mean)}, **{'met' if mean < limit else 'not met'}**")
print(f"- gzip -9 within 1.15× of the floor: {gzip_t / floor_t:.2f}×, **{'met' if gzip_t / floor_t <= 1.15 else 'not met'}**")
for name, label in [("cold", "unlocked"), ("cold_aptcache", "unlocked, apt's binary cache on"), ("locked", "locked")]:
    if name not in rss:
        continue
    cold = timing(name)[0]
    mb = rss[name] * 1.048576
    print(f"- cold module initramfs ({label}) faster than mkinitramfs: {cold / base:.2f}×, "
          f"**{'met' if cold < base else 'not met'}**")
    print(f"- peak RSS of the cold module initramfs ({label}) at most 100 MB: {mb:.0f} MB, "
          f"**{'met' if mb <= 100 else 'not met'}**")
