#!/usr/bin/env python3
"""Writes the Fashion-MNIST subset that kiln compiles in (data/fashion-mnist-subset/).

The subset is the FIRST 10,000 training items and the FIRST 2,000 test items of
Fashion-MNIST, re-encoded as gzip IDX files. Gzip level 9 with mtime=0 and no file
name in the header, so that running this again yields the same bytes (given the same
zlib). Python 3 standard library only.

Usage: python3 scripts/make_fashion_subset.py [SOURCE_DIR] [OUT_DIR]
  SOURCE_DIR defaults to /usr/share/datasets/fashion-mnist (Debian dataset-fashion-mnist)
  OUT_DIR    defaults to data/fashion-mnist-subset next to this script's parent
"""

import gzip
import io
import os
import struct
import sys

TRAIN_COUNT = 10_000
TEST_COUNT = 2_000

# (base name, number of items kept)
FILES = [
    ("train-images-idx3-ubyte", TRAIN_COUNT),
    ("train-labels-idx1-ubyte", TRAIN_COUNT),
    ("t10k-images-idx3-ubyte", TEST_COUNT),
    ("t10k-labels-idx1-ubyte", TEST_COUNT),
]


def read_source(directory, base):
    """Bytes of an IDX file, from BASE.gz if present, else BASE raw."""
    gz_path = os.path.join(directory, base + ".gz")
    raw_path = os.path.join(directory, base)
    if os.path.exists(gz_path):
        with gzip.open(gz_path, "rb") as f:
            return gz_path, f.read()
    with open(raw_path, "rb") as f:
        return raw_path, f.read()


def subset_idx(path, data, count):
    """The IDX bytes of the first COUNT items of DATA, with the header rewritten."""
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        sys.exit(f"{path}: not a u8 IDX file (magic {data[:4].hex()})")
    ndim = data[3]
    header_len = 4 + 4 * ndim
    dims = list(struct.unpack(">" + "I" * ndim, data[4:header_len]))
    item_len = 1
    for d in dims[1:]:
        item_len *= d
    total = dims[0] * item_len
    if len(data) - header_len != total:
        sys.exit(f"{path}: payload is {len(data) - header_len} bytes, dims {dims} need {total}")
    if dims[0] < count:
        sys.exit(f"{path}: has {dims[0]} items, subset needs {count}")
    dims[0] = count
    header = bytes([0, 0, 0x08, ndim]) + struct.pack(">" + "I" * ndim, *dims)
    return header + data[header_len:header_len + count * item_len]


def gzip_reproducible(payload):
    """Gzip with a fixed header (no name, mtime 0) so the output depends on the payload only."""
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as f:
        f.write(payload)
    return buf.getvalue()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    source = sys.argv[1] if len(sys.argv) > 1 else "/usr/share/datasets/fashion-mnist"
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.normpath(os.path.join(here, "..", "data", "fashion-mnist-subset"))
    os.makedirs(out, exist_ok=True)
    for base, count in FILES:
        path, data = read_source(source, base)
        packed = gzip_reproducible(subset_idx(path, data, count))
        target = os.path.join(out, base + ".gz")
        with open(target, "wb") as f:
            f.write(packed)
        print(f"{target}: {count} items, {len(packed)} bytes")


if __name__ == "__main__":
    main()
