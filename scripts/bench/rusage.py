#!/usr/bin/env python3
"""Runs a command and prints its wall time in seconds and its peak resident set size in KiB.

Usage: rusage.py COMMAND [ARG...]    prints "WALL_SECONDS PEAK_RSS_KIB" on standard output.

The peak RSS is ru_maxrss of RUSAGE_CHILDREN: on Linux that is the largest peak of any single
process among the command and the descendants it waited for. For a shell pipeline
(`bash -c 'a | b'`) it is therefore the peak of the largest process in the pipeline, not the
sum of all of them. The command's standard output is thrown away, as hyperfine does; its
standard error is shown. A command that fails makes this script fail with the same exit code.
"""
import resource
import subprocess
import sys
import time

if len(sys.argv) < 2:
    sys.exit(__doc__)
start = time.monotonic()
code = subprocess.call(sys.argv[1:], stdout=subprocess.DEVNULL)
wall = time.monotonic() - start
if code != 0:
    print(f"rusage.py: `{' '.join(sys.argv[1:])}` exited with {code}", file=sys.stderr)
    sys.exit(code if code > 0 else 1)
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux
print(f"{wall:.3f} {peak_kib}")
