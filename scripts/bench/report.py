#!/usr/bin/env python3
"""Turns the measurements that scripts/bench.sh left in a results folder into a Markdown report.

Usage: report.py RESULTS_DIR    (the report goes to standard output)

The folder holds, all written by bench.sh:
  meta.tsv      KEY<TAB>VALUE: machine, date, versions, the command line, the tree
  packages.tsv  PACKAGE<TAB>VERSION: the Debian packages the tree was made of
  pairs.tsv     ID<TAB>TITLE<TAB>BAKE_COMMAND<TAB>USUAL_COMMAND, one line per comparison
  ID.json       hyperfine's --export-json for one comparison: bake first, the usual pipeline second
  measure.tsv   ID<TAB>WHO<TAB>PEAK_RSS_KIB<TAB>OUTPUT_BYTES, WHO being bake or usual
  noop.json     hyperfine's result for the no-op rebuild (optional)
  big.tsv       LABEL<TAB>WALL_SECONDS<TAB>PEAK_RSS_KIB<TAB>OUTPUT_BYTES (optional, from --big)
"""
import csv
import json
import os
import sys

RSS_TARGET_BYTES = 100 * 1000 * 1000  # "peak RSS under 100 MB", taken as decimal megabytes


def read_tsv(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [row for row in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE) if row]


def seconds(s):
    if s is None:
        return "n/a"
    return f"{s * 1000:.0f} ms" if s < 1 else f"{s:.2f} s"


def with_sd(result):
    text = seconds(result["mean"])
    if result.get("stddev") is not None:
        text += f" ± {seconds(result['stddev'])}"
    return text


def mib(nbytes):
    return f"{nbytes / (1 << 20):.1f} MiB"


def ratio(a, b, digits=2):
    return f"{a / b:.{digits}f}" if b else "n/a"


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    results = sys.argv[1]
    meta = dict(read_tsv(os.path.join(results, "meta.tsv")))
    packages = read_tsv(os.path.join(results, "packages.tsv"))
    pairs = read_tsv(os.path.join(results, "pairs.tsv"))
    measured = {(r[0], r[1]): r[2:] for r in read_tsv(os.path.join(results, "measure.tsv"))}
    big = read_tsv(os.path.join(results, "big.tsv"))
    out = []
    say = out.append

    say("# Benchmarks")
    say("")
    say(
        f"bake against the usual pipelines, building one Debian root file system tree "
        f"({int(meta['tree_bytes']) / 1e6:.1f} MB in {int(meta['tree_entries']):,} entries, "
        f"made from {len(packages)} Debian packages) in every format."
    )
    say("")
    say(f"- **Date:** {meta['date']}")
    say(
        f"- **Machine:** {meta['nproc']} cores, {meta['cpu']}, {meta['ram']} RAM, "
        f"Linux {meta['kernel']}, {meta['os']}"
    )
    say(f"- **bake:** commit {meta['commit']}, {meta['bake_how']}")
    say(f"- **Tools:** {meta['tools']}")
    say(f"- **Method:** {meta['method']} Load average when the run started: {meta['load']}.")
    say(f"- **Regenerate with:** `{meta['command']}`")
    say("")

    # What each comparison found, kept for the targets below.
    found = {}
    if pairs:
        say("## bake against the usual pipeline")
        say("")
        say(
            "| Output | Wall time: bake / usual | Speed-up | CPU time: bake / usual | CPU ratio "
            "| Peak RSS: bake / usual | RSS ratio | Size: bake / usual | Size ratio |"
        )
        say("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for pair_id, title, _bake_cmd, _usual_cmd in pairs:
            with open(os.path.join(results, f"{pair_id}.json")) as f:
                bake_t, usual_t = json.load(f)["results"]
            bake_rss, bake_size = (int(x) for x in measured[(pair_id, "bake")])
            usual_rss, usual_size = (int(x) for x in measured[(pair_id, "usual")])
            bake_cpu = bake_t["user"] + bake_t["system"]
            usual_cpu = usual_t["user"] + usual_t["system"]
            speedup = usual_t["mean"] / bake_t["mean"]
            found[pair_id] = {"speedup": speedup, "size_ratio": bake_size / usual_size}
            say(
                f"| {title} "
                f"| {with_sd(bake_t)} / {with_sd(usual_t)} | **{speedup:.2f}×** "
                f"| {seconds(bake_cpu)} / {seconds(usual_cpu)} | {ratio(bake_cpu, usual_cpu)} "
                f"| {mib(bake_rss * 1024)} / {mib(usual_rss * 1024)} | {ratio(bake_rss, usual_rss)} "
                f"| {mib(bake_size)} / {mib(usual_size)} | {ratio(bake_size, usual_size, 3)} |"
            )
        say("")
        say(
            "Speed-up is the usual pipeline's wall time divided by bake's: above 1, bake is "
            "faster. The other ratios are bake's divided by the usual pipeline's: below 1, bake "
            "uses less. Times are hyperfine's means (± standard deviation when there were two "
            "runs or more); CPU time is user + system. Peak RSS is that of the largest single "
            "process (for a pipeline: of its largest stage, not the sum of the stages)."
        )
        say("")

    noop = None
    noop_path = os.path.join(results, "noop.json")
    if os.path.exists(noop_path):
        with open(noop_path) as f:
            noop = json.load(f)["results"][0]
        say("## No-op rebuild")
        say("")
        say("| What | Wall time |")
        say("| --- | --- |")
        say(f"| {meta['noop_what']} | {with_sd(noop)} |")
        say("")

    big_rss = None
    if big:
        say("## Peak memory on a large image")
        say("")
        say(f"{meta['big_what']}")
        say("")
        say("| Output | Wall time | Peak RSS | Size |")
        say("| --- | --- | --- | --- |")
        for label, wall, rss_kib, size in big:
            say(f"| {label} | {seconds(float(wall))} | {mib(int(rss_kib) * 1024)} | {mib(int(size))} |")
            big_rss = max(big_rss or 0, int(rss_kib) * 1024)
        say("")

    say("## The issue's targets")
    say("")
    say("Reported, not enforced. A target whose measurement this run did not make says so.")
    say("")

    def target(text, value, ok):
        if value is None:
            say(f"- {text}: not measured in this run")
        else:
            say(f"- {text}: {value}, **{'met' if ok else 'not met'}**")

    g = found.get("gzip9")
    target("bake at least 3× faster (wall time) than `cpio | gzip -9`",
           g and f"{g['speedup']:.2f}×", g and g["speedup"] >= 3)
    z = found.get("zstd19")
    target("bake at least as fast as `cpio | zstd -19 -T0`",
           z and f"{z['speedup']:.2f}×", z and z["speedup"] >= 1)
    for pair_id, title in (("gzip9", "gzip -9"), ("zstd19", "zstd -19"), ("xz6", "xz -6")):
        p = found.get(pair_id)
        target(f"bake's output no larger than the pipeline's at {title}",
               p and f"size ratio {p['size_ratio']:.3f}", p and p["size_ratio"] <= 1)
    e = found.get("erofs")
    target("bake's EROFS at least as fast as `mkfs.erofs`",
           e and f"{e['speedup']:.2f}×", e and e["speedup"] >= 1)
    target("no-op rebuild under 200 ms",
           noop and seconds(noop["mean"]), noop and noop["mean"] < 0.2)
    target(f"peak RSS under 100 MB for a {meta.get('big_size', '2 GB')} image",
           big_rss and f"at most {big_rss / 1e6:.1f} MB", big_rss and big_rss < RSS_TARGET_BYTES)
    if meta.get("quick"):
        say("")
        say("This was a `--quick` run (one run, no warm-up, gzip at level 1): a smoke test, "
            "not a measurement to compare against the targets.")
    say("")

    say("## Commands")
    say("")
    say("The tree is extracted with `dpkg-deb -x`, then made to carry only what bake takes "
        "from a folder: hard links are broken into separate files, folders and executables "
        "get mode 0755, other files 0644, and every mtime is 0. So every tool stores the same "
        "names, bytes and metadata. Before timing, both outputs of each comparison were "
        "checked to hold the same entries (`cpio -it` on the decompressed archive; "
        "`fsck.erofs` and `dump.erofs -s` for the file systems).")
    say("")
    for pair_id, title, bake_cmd, usual_cmd in pairs:
        say(f"- {title}: `{bake_cmd}` against `{usual_cmd}`")
    if noop is not None:
        say(f"- no-op rebuild: `{meta['noop_cmd']}`, after one such build")
    for note in meta.get("notes", "").split(" | "):
        if note:
            say(f"- {note}")
    say("")

    say("<details><summary>The Debian packages in the tree</summary>")
    say("")
    say(", ".join(f"{name} {version}" for name, version in packages))
    say("")
    say("</details>")
    print("\n".join(out))


if __name__ == "__main__":
    main()
