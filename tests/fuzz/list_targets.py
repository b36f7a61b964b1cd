"""Prints the fuzz targets (tests/fuzz/fuzz_*.c, without the extension), one per line, so
that meson and the scripts pick up a new target without being edited."""
import glob
import os
import sys

here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
for path in sorted(glob.glob(os.path.join(here, "fuzz_*.c"))):
    print(os.path.basename(path)[:-2])
