"""The seed's Python baseline of `shoal run --op square --range 0:N`: multiprocessing.Pool(2).map
with the default chunksize, the results printed one per line to a file.

Usage: python3 bench/square_pool.py N OUTFILE
"""
import sys
from multiprocessing import Pool


def square(x):
    return x*x


if __name__ == '__main__':
    n = int(sys.argv[1])
    with Pool(2) as pool:
        results = pool.map(square, range(n))
    with open(sys.argv[2], 'w') as f:
        f.write('\n'.join(map(str, results)))
        f.write('\n')
