#!/usr/bin/env python3
"""Writes SIZE bytes of pseudo-random data, the same for the same SEED, to FILE.

Usage: filler.py SIZE SEED FILE

Used to pad the benchmark tree to a large image. The data does not compress, which is the
worst case for a compressor's speed but changes little about its memory use.
"""
import os
import random
import sys

if len(sys.argv) != 4:
    sys.exit(__doc__)
size, seed, path = int(sys.argv[1]), sys.argv[2], sys.argv[3]
rng = random.Random(seed)
tmp = path + ".part"
with open(tmp, "wb") as out:
    left = size
    while left > 0:
        chunk = min(left, 1 << 20)
        out.write(rng.randbytes(chunk))
        left -= chunk
os.replace(tmp, path)
