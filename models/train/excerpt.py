#!/usr/bin/env python3
"""Cut the first SECONDS of an Empatica E4 export into a small fixture (values unchanged).

    python3 models/train/excerpt.py ../shared/data/stress-predict/Raw_data/S05 tests/data/stress-eval/S05 1320

Each of BVP, ACC, EDA and TEMP keeps its two header lines (start time, rate) and the samples of
the first SECONDS; everything is written gzip-compressed (the reader takes `.csv.gz`).
"""
import gzip
import sys
from pathlib import Path


def main():
    src, dst, seconds = Path(sys.argv[1]), Path(sys.argv[2]), float(sys.argv[3])
    dst.mkdir(parents=True, exist_ok=True)
    for stem in ["BVP", "ACC", "EDA", "TEMP"]:
        plain, packed = src / f"{stem}.csv", src / f"{stem}.csv.gz"
        text = gzip.decompress(packed.read_bytes()).decode() if packed.exists() else plain.read_text()
        lines = text.splitlines()
        rate = float(lines[1].split(",")[0])
        keep = lines[:2] + lines[2:2 + int(seconds * rate)]
        # mtime 0: the same input gives the same bytes.
        (dst / f"{stem}.csv.gz").write_bytes(gzip.compress(("\n".join(keep) + "\n").encode(), mtime=0))


if __name__ == "__main__":
    main()
