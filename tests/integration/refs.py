#!/usr/bin/env python3
"""Test data and reference results for the integration tests, computed without shoal.

  refs.py ints FILE [N]          integers: edge values near +-3037000499, +-2^62, the int64
                                 limits and a few beyond int64 whose squares still fit 128 bits;
                                 some records with surrounding blanks or CRLF; no final newline
  refs.py text FILE [KB]         text: repeated words, tabs, long lines, empty lines, CRLF
                                 lines, UTF-8 words, no final newline
  refs.py bigtext FILE MB [REF]  a large text file, written in whole blocks that all hold the
                                 same lines (rotated); REF gets its wordcount table, computed
                                 from one block's Counter times the number of blocks
  refs.py ref OP FILE            the result of OP (square sum count min max mean wordcount) on
                                 FILE; FILE may be "range:LO:HI"
  refs.py knn TRAIN TEST K       the predicted label of each TEST row (CSV with a header, the
                                 label last in TRAIN): Euclidean distance, the K nearest (ties
                                 in distance: earlier training row first), majority vote (a tie
                                 in votes: the label of the nearest among the tied)
  refs.py freeport               a TCP port on 127.0.0.1 that nobody listens on right now

Records are what shoal calls records: newline-terminated lines, plus a final line without a
newline. Integers parse as Python's int() parses them; mean prints as repr(sum / count).
"""
import collections
import random
import socket
import sys

I64_MAX = 2**63 - 1
I64_MIN = -(2**63)
SQRT_I128 = 13043817825332782212  # isqrt(2**127 - 1): the largest |x| whose square fits


def records(data):
    if not data:
        return []
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts.pop()
    return parts


def gen_ints(path, n):
    rng = random.Random(7411)
    edge = []
    for c in (3037000499, 2**62, I64_MAX, SQRT_I128):
        for d in (-2, -1, 0, 1, 2):
            for s in (1, -1):
                v = s * (c + d)
                if abs(v) <= SQRT_I128:
                    edge.append(v)
    edge += [0, 1, -1, I64_MIN, I64_MIN - 1, I64_MAX + 1, 10**19, -(10**19)]
    vals = []
    for i in range(n):
        r = rng.random()
        if r < 0.6:
            vals.append(rng.randint(-10**6, 10**6))
        elif r < 0.9:
            vals.append(rng.randint(I64_MIN, I64_MAX))
        else:
            vals.append(rng.randint(-SQRT_I128, SQRT_I128))
    # Spread the edge values through the file so they land in different partitions.
    for j, v in enumerate(edge):
        vals.insert((j * 7919) % len(vals), v)
    lines = []
    for i, v in enumerate(vals):
        t = str(v).encode()
        if i % 997 == 5:
            t = b"  " + t + b" "  # blanks around it (Python's int() accepts them)
        elif i % 991 == 3 and v >= 0:
            t = b"+" + t
        elif i % 983 == 1:
            t = t + b"\r"  # a CRLF line
        lines.append(t)
    with open(path, "wb") as f:
        f.write(b"\n".join(lines))  # the last record has no newline


WORDS = [b"the", b"quick", b"brown", b"fox", b"jumps", b"over", b"lazy", b"dog", b"lorem",
         b"ipsum", b"dolor", b"sit", b"amet", b"caf\xc3\xa9", b"na\xc3\xafve", b"x", b"Zebra",
         b"zebra", b"a-b", b"it's", b"{json}", b"100%", b"~tilde", b"UPPER", b"MiXeD"]


def gen_text(path, kb):
    rng = random.Random(11)
    out = []
    size = 0
    i = 0
    while size < kb * 1024:
        i += 1
        r = rng.random()
        if r < 0.05:
            line = b""  # empty line
        elif r < 0.06:
            line = b"   \t  "  # blanks only
        elif i % 401 == 0:
            # a long line (longer than a partition when there are many partitions)
            line = b" ".join(rng.choice(WORDS) for _ in range(rng.randint(5000, 20000)))
        else:
            k = rng.randint(1, 14)
            seps = [b" ", b" ", b" ", b"\t", b"  ", b" \t ", b"\x0b", b"\x0c"]
            line = b""
            for j in range(k):
                w = rng.choice(WORDS)
                if rng.random() < 0.1:
                    w += str(rng.randint(0, 50)).encode()
                line += w + (rng.choice(seps) if j < k - 1 else b"")
            if rng.random() < 0.1:
                line = b"\t" + line
            if rng.random() < 0.1:
                line += b" "
        if rng.random() < 0.08:
            line += b"\r"  # a CRLF line
        out.append(line)
        size += len(line) + 1
    out.append(b"final line without newline lorem")
    with open(path, "wb") as f:
        f.write(b"\n".join(out))


def gen_bigtext(path, mb, refpath=None):
    rng = random.Random(5)
    words = [b"w%d" % i for i in range(5000)] + WORDS
    lines = []
    for _ in range(4096):
        k = rng.randint(0, 16)
        lines.append(b" ".join(rng.choice(words) for _ in range(k)) + b"\n")
    block = b"".join(lines)
    target = mb * 1024 * 1024
    written = blocks = 0
    with open(path, "wb") as f:
        while written < target:
            # rotate the block so that consecutive blocks differ
            cut = rng.randrange(len(lines))
            b = b"".join(lines[cut:] + lines[:cut])
            f.write(b)
            written += len(b)
            blocks += 1
    if refpath:
        c = collections.Counter(block.split())
        with open(refpath, "wb") as f:
            f.write(b"".join(w + b"\t" + str(n * blocks).encode() + b"\n" for w, n in sorted(c.items())))


def read_input(spec):
    if spec.startswith("range:"):
        _, lo, hi = spec.split(":")
        return None, range(int(lo), int(hi))
    with open(spec, "rb") as f:
        data = f.read()
    return data, None


def ref(op, spec):
    data, rng = read_input(spec)
    out = sys.stdout.buffer
    if op == "wordcount":
        c = collections.Counter(data.split())  # bytes.split(): b' \t\n\v\f\r'
        out.write(b"".join(w + b"\t" + str(n).encode() + b"\n" for w, n in sorted(c.items())))
        return
    if op == "count":
        n = (rng.stop - rng.start) if rng is not None else len(records(data))
        out.write(b"%d\n" % n)
        return
    if rng is not None and op in ("sum", "min", "max", "mean"):
        # closed forms: a range may hold 2^64 - 1 integers
        lo, hi = rng.start, rng.stop
        n = hi - lo
        s = (lo + hi - 1) * n // 2
        v = {"sum": s, "min": lo, "max": hi - 1}.get(op)
        out.write((repr(s / n) if op == "mean" else str(v)).encode() + b"\n")
        return
    nums = rng if rng is not None else [int(r) for r in records(data)]
    if op == "square":
        out.write("".join("%d\n" % (x * x) for x in nums).encode())
    elif op == "sum":
        out.write(b"%d\n" % sum(nums))
    elif op == "min":
        out.write(b"%d\n" % min(nums))
    elif op == "max":
        out.write(b"%d\n" % max(nums))
    elif op == "mean":
        s = sum(nums)
        n = len(nums)
        out.write((repr(s / n) + "\n").encode())
    else:
        sys.exit("refs.py: no reference for op " + op)


def knn(train_path, test_path, k):
    import csv

    def rows(p):
        with open(p, newline="") as f:
            return list(csv.reader(f))[1:]

    train = [([float(v) for v in r[:-1]], r[-1]) for r in rows(train_path)]
    d = len(train[0][0])
    out = []
    for r in rows(test_path):
        x = [float(v) for v in r[:d]]
        near = sorted((sum((a - b) ** 2 for a, b in zip(x, f)), i, lab)
                      for i, (f, lab) in enumerate(train))[:k]
        votes = collections.Counter(lab for _, _, lab in near)
        best = max(votes.values())
        out.append(next(lab for _, _, lab in near if votes[lab] == best))
    sys.stdout.write("".join(lab + "\n" for lab in out))


def main():
    a = sys.argv[1:]
    if a[0] == "ints":
        gen_ints(a[1], int(a[2]) if len(a) > 2 else 20000)
    elif a[0] == "text":
        gen_text(a[1], int(a[2]) if len(a) > 2 else 1024)
    elif a[0] == "bigtext":
        gen_bigtext(a[1], int(a[2]), a[3] if len(a) > 3 else None)
    elif a[0] == "ref":
        ref(a[1], a[2])
    elif a[0] == "knn":
        knn(a[1], a[2], int(a[3]))
    elif a[0] == "freeport":
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
        s.close()
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
