#!/usr/bin/env python3
"""Writes the seed corpora under tests/fuzz/corpus/ (checked in; rerun to regenerate).

fuzz_frame's seeds are frame streams hand-encoded with tests/integration/wire.py's helpers:
valid Hello, TaskBatch, ResultBatch, Submit, Heartbeat frames, a stream of several, and some
invalid ones (empty frame, huge claim, truncated, garbage payload, unknown kind)."""
import os
import struct
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "integration"))
from wire import frame, hello, ld, vi, PROTOCOL_VERSION, ROLE_WORKER, ROLE_CLIENT  # noqa: E402


def put(target, name, data):
    d = os.path.join(here, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def arg(k, v):
    return ld(1, k.encode()) + ld(2, v.encode())


def task(job, tid, attempt, op, extra):
    return vi(1, job) + vi(2, tid) + vi(3, attempt) + ld(4, op.encode()) + extra


def result(job, tid, attempt, ok, data=None, err=None, records=None):
    r = vi(1, job) + vi(2, tid) + vi(3, attempt) + vi(4, 1 if ok else 0)
    if data is not None:
        r += ld(5, data)
    if err is not None:
        r += ld(6, err.encode())
    if records is not None:
        r += vi(8, records)
    return r


def zigzag_free_int64(n):
    return n & 0xFFFFFFFFFFFFFFFF  # int64 is a plain two's complement varint


rng = ld(6, vi(1, zigzag_free_int64(-5)) + vi(2, 100))            # Task.range
task_batch = ld(5, ld(1, task(7, 0, 1, "sum", rng)) +
                ld(1, task(7, 1, 2, "grep", ld(5, arg("pattern", "ab")) + ld(7, b"abc\nxyz\n"))) +
                ld(1, task(7, 2, 1, "sort", ld(8, ld(1, b"/data/in.txt") + vi(2, 0) + vi(3, 4096)))))
result_batch = ld(6, ld(1, result(7, 0, 1, True, b"sum 4940\n", records=105)) +
                  ld(1, result(7, 1, 2, False, err="boom")))
submit = ld(8, ld(1, ld(1, b"count") + ld(3, vi(1, 0) + vi(2, 1000)) + vi(7, 4)))
heartbeat = ld(4, vi(1, 3))

put("fuzz_frame", "hello_worker", frame(hello(PROTOCOL_VERSION, ROLE_WORKER, "w1", 4)))
put("fuzz_frame", "hello_client", frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)))
put("fuzz_frame", "task_batch", frame(task_batch))
put("fuzz_frame", "result_batch", frame(result_batch))
put("fuzz_frame", "submit", frame(submit))
put("fuzz_frame", "stream", frame(hello(PROTOCOL_VERSION, ROLE_WORKER, "w2", 2)) +
    frame(heartbeat) + frame(result_batch) + frame(task_batch))
put("fuzz_frame", "bad_empty_frame", b"\x00\x00\x00\x00")
put("fuzz_frame", "bad_huge_claim", b"\xff\xff\xff\xff" + b"y" * 32)
put("fuzz_frame", "bad_truncated", struct.pack(">I", 100) + b"x" * 10)
put("fuzz_frame", "bad_not_envelope", frame(b"\xff\xff\xff\xff\xff\xff"))
put("fuzz_frame", "bad_unknown_kind", frame(ld(99, b"")))
put("fuzz_frame", "bad_attempt0", frame(ld(5, ld(1, task(7, 0, 0, "sum", rng)))))
put("fuzz_frame", "bad_missing_required", frame(ld(1, vi(2, ROLE_CLIENT))))

put("fuzz_records", "lines", b"alpha\nbeta\ngamma\n")
put("fuzz_records", "no_final_newline", b"1\n22\n333\n4444")
put("fuzz_records", "empty_lines", b"\n\n\nx\n\n")
put("fuzz_records", "crlf_nul", b"a\r\n\x00b\r\n\xff\xfe\n" + b"long" * 30 + b"\n")
put("fuzz_records", "one_byte", b"\n")

# fuzz_fold: first byte = op index (0 sum, 1 count, 2 min, 3 max, 4 mean) | 0x80 to have the
# target put "OP " in front of each line itself.
put("fuzz_fold", "sum", b"\x00sum 10\nsum -3\nsum 170141183460469231731687303715884105727\n")
put("fuzz_fold", "count", b"\x01count 5\ncount 0\n")
put("fuzz_fold", "min", b"\x02min none\nmin -7\nmin 3\n")
put("fuzz_fold", "max", b"\x03max 9\nmax none\n")
put("fuzz_fold", "mean", b"\x04mean 10 4\nmean 0 0\nmean -5 2\n")
put("fuzz_fold", "prefixed_sum", b"\x8012\n-4\n99999999999999999999\n")
put("fuzz_fold", "prefixed_mean", b"\x841 2\n3 4\n")
put("fuzz_fold", "bad_fields", b"\x00sum  1\nsum\nsum 1 2\nsum 01\nsum +1\n")
put("fuzz_fold", "sorted_run", b"\x00a\nb\nb\nc\n")
put("fuzz_fold", "wordcount_run", b"\x01apple\t3\nbanana\t1\ncherry\t12\n")
put("fuzz_fold", "unsorted_run", b"\x01b\t1\na\t2\na\t2\n")

# fuzz_conffile: INI config files.
put("fuzz_conffile", "full", b"# test\n[cluster]\nmaster = 127.0.0.1:9999\nlog-level = warn\n[master]\nlisten = 127.0.0.1:0\nstate_dir = \"/tmp/st x\"\nallow-exec = yes\n[worker]\nslots = 3\n")
put("fuzz_conffile", "switch", b"[master]\nallow-exec = yes\nlisten = \"127.0.0.1:0\"\n")
put("fuzz_conffile", "dup", b"[master]\nlisten = a\nlisten = b\n[x]\n")

# fuzz_handshake: first byte = scene (bit 0: the master has the secret; bit 1: the peer has
# one; bit 2: the peer's is another; bit 3: the peer is a worker; bit 4: no replay memory),
# then steps (0 to the master, 1 to the peer, 2 flip a byte, 3/4 inject [len][payload] into
# the master / the peer, 5 replay the first Hello on a fresh master connection).
put("fuzz_handshake", "honest-client", bytes([0x03, 0, 1, 0, 1]))
put("fuzz_handshake", "honest-worker", bytes([0x0b, 0, 1, 0, 1]))
put("fuzz_handshake", "plain", bytes([0x00, 0, 1]))
put("fuzz_handshake", "wrong-secret", bytes([0x07, 0, 1, 0, 1]))
put("fuzz_handshake", "master-only-secret", bytes([0x01, 0, 1]))
put("fuzz_handshake", "peer-only-secret", bytes([0x02, 0, 1]))
put("fuzz_handshake", "replay", bytes([0x03, 0, 5, 1, 0, 1, 5]))
put("fuzz_handshake", "replay-no-memory", bytes([0x13, 0, 5, 1, 0, 1]))
put("fuzz_handshake", "flip-hello", bytes([0x03, 2, 40, 0, 1, 0, 1]))
put("fuzz_handshake", "flip-challenge", bytes([0x03, 0, 0x0a, 30, 1, 0, 1]))
inj_hello = hello(PROTOCOL_VERSION, ROLE_CLIENT, nonce=b"\x11" * 32)
put("fuzz_handshake", "inject-hello", bytes([0x03, 3, len(inj_hello)]) + inj_hello + bytes([1, 0, 1]))
inj_proof = ld(61, ld(1, b"\x22" * 32))
put("fuzz_handshake", "inject-proof", bytes([0x03, 0, 1, 3, len(inj_proof)]) + inj_proof + bytes([1]))
inj_chal = ld(60, ld(1, b"\x33" * 32) + ld(2, b"\x44" * 32))
put("fuzz_handshake", "inject-challenge", bytes([0x03, 0, 4, len(inj_chal)]) + inj_chal + bytes([0, 1]))
inj_refusal = ld(3, ld(1, b"go away"))
put("fuzz_handshake", "inject-refusal", bytes([0x0b, 4, len(inj_refusal)]) + inj_refusal)
