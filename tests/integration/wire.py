#!/usr/bin/env python3
"""Raw-socket peers for the malformed-input tests: hand-encoded protobuf, no shoal code.

  wire.py case NAME PORT LOG PID     send one malformed thing to the master, then check that the
                                     master closed (or refused) that connection, logged why
                                     (a line naming our peer address) and is still alive
  wire.py hold PORT N CLAIM SECS     open N connections that each announce a frame of CLAIM
                                     bytes, send 1 KiB of it and stay open SECS seconds
  wire.py fakeworker PORT MODE SECS  register as a worker and answer every task with a bad
                                     result (MODE: garbage | unsorted | stray) for SECS seconds
  wire.py overrun PORT LOG MB        submit an upload job and send MB MiB of it without waiting
                                     for any UploadAck: the master must close the connection
                                     (a log line naming our address) long before MB MiB
  wire.py auth PORT LOG SECRET MODE PID  the challenge-response handshake by hand (SECRET: the
                                     cluster's secret file). MODE: client (a correct client
                                     handshake is welcomed), role (a worker's Hello with a
                                     client's proof is refused for role binding), replay (a
                                     recorded Hello, and a recorded Proof, are refused)
  wire.py conns PORT N SRC SECS      open N connections from source address SRC (127.0.0.x),
                                     send nothing, hold them SECS seconds
  wire.py hello PORT SRC             a plain client handshake from SRC: prints "welcomed" or
                                     "refused: REASON"
  wire.py stall PORT JOB SECS        fetch JOB's result asking for the largest window, print
                                     our address and read nothing for SECS seconds
  wire.py roles PORT LOG PID [SECRET]  a client sending worker messages and a worker sending
                                     client messages are refused (logged), each on its own
                                     connection; SECRET: authenticate first
  wire.py resume PORT JOB            ask to resume job JOB's upload (UploadResume) on a fresh
                                     client connection; prints the answer: "failure: REASON" or
                                     "ack received=N complete=0|1"
  wire.py slow PORT LOG MODE PID     a handshake that never completes: silent (connect, send
                                     nothing) or dribble (a Hello, one byte a second); the
                                     master must close it at its handshake deadline

Cases: garbage, garbage-small, truncated, huge, zero, not-envelope, unknown-kind, version,
role, before-hello, after-hello-garbage, missing-required.
"""
import hashlib
import hmac
import os
import socket
import struct
import sys
import time

PROTOCOL_VERSION = 1
ROLE_WORKER, ROLE_CLIENT = 1, 2


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def key(num, wt):
    return varint(num << 3 | wt)


def vi(num, v):
    return key(num, 0) + varint(v)


def ld(num, b):
    return key(num, 2) + varint(len(b)) + b


def frame(payload):
    return struct.pack(">I", len(payload)) + payload


def hello(version, role, name=None, slots=None, nonce=None):
    h = vi(1, version) + vi(2, role)
    if name is not None:
        h += ld(3, name.encode())
    if slots is not None:
        h += vi(4, slots)
    if nonce is not None:
        h += ld(200, nonce)  # Hello.nonce
    return ld(1, h)  # Envelope.hello = 1


def auth_proof(key, prover, version, role, np, nm):
    """common/auth.h's proof: HMAC-SHA256 over label, prover, version, role and both nonces."""
    msg = b"shoal-auth-v1\x00" + prover + struct.pack(">II", version, role) + np + nm
    return hmac.new(key, msg, hashlib.sha256).digest()


def read_varint(b, i):
    shift = n = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        shift += 7
        if not c & 0x80:
            return n, i


def fields(b):
    """Loose protobuf decoding: yields (field number, wire type, value)."""
    i = 0
    while i < len(b):
        k, i = read_varint(b, i)
        num, wt = k >> 3, k & 7
        if wt == 0:
            v, i = read_varint(b, i)
        elif wt == 2:
            n, i = read_varint(b, i)
            v = b[i:i + n]
            i += n
        elif wt == 1:
            v = b[i:i + 8]
            i += 8
        elif wt == 5:
            v = b[i:i + 4]
            i += 4
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v


class Reader:
    def __init__(self, sock):
        self.s = sock
        self.buf = b""
        self.eof = False

    def frames(self, timeout, until_eof=False):
        """Frames received within timeout seconds: returns as soon as there are some (or, with
        until_eof, when the peer closes)."""
        out = []
        end = time.monotonic() + timeout
        while not self.eof:
            while len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0]
                if len(self.buf) < 4 + n:
                    break
                out.append(self.buf[4:4 + n])
                self.buf = self.buf[4 + n:]
            if out and not until_eof:
                break
            left = end - time.monotonic()
            if left <= 0:
                break
            self.s.settimeout(left)
            try:
                b = self.s.recv(1 << 16)
            except socket.timeout:
                break
            except ConnectionResetError:
                b = b""
            if not b:
                self.eof = True
            self.buf += b
        return out


def connect(port):
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def die(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def alive(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("State:"):
                    return "Z" not in line.split()[1]
    except OSError:
        return False
    return False


def log_line_for(logpath, peer, words, timeout=5.0):
    """The master's log line that names our peer address and one of words."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(logpath, errors="replace") as f:
            for line in f:
                if ("peer=" + peer + " ") in line and any(w in line for w in words):
                    return line.rstrip("\n")
        time.sleep(0.05)
    return None


CASES = {
    # name: (bytes to send, close our side right after sending?, words the log line must have)
    "garbage": (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(64), False, ["exceeds"]),
    "garbage-small": (b"\x00\x00\x00\x10" + b"\xde\xad\xbe\xef" * 4, False, ["unpack", "malformed", "bad message"]),
    "truncated": (struct.pack(">I", 100) + b"x" * 10, True, ["mid-frame", "truncated"]),
    "huge": (b"\xff\xff\xff\xff" + b"y" * 1024, False, ["exceeds"]),
    "zero": (b"\x00\x00\x00\x00", False, ["empty frame", "length 0", "zero"]),
    "not-envelope": (frame(b"\xff\xff\xff\xff\xff\xff"), False, ["unpack", "malformed", "bad message"]),
    # Envelope field 99 (no such message kind), length-delimited, empty.
    "unknown-kind": (frame(ld(99, b"")), False, ["unknown", "empty", "no message", "malformed", "bad message", "refused"]),
    "version": (frame(hello(99, ROLE_CLIENT)), False, ["99"]),
    "role": (frame(hello(PROTOCOL_VERSION, 7)), False, ["refused", "role", "malformed", "bad message"]),
    "before-hello": (frame(ld(18, b"")), False, ["hello"]),  # ListJobs first
    "after-hello-garbage": (frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)) + frame(b"\x07\x07\x07"), False,
                            ["unpack", "malformed", "bad message"]),
    # Hello without its required version field.
    "missing-required": (frame(ld(1, vi(2, ROLE_CLIENT))), False, ["unpack", "malformed", "bad message", "refused"]),
    # A frame of 8 KiB (for a master started with --max-frame 4096).
    "bigframe": (frame(ld(99, b"x" * 8180)), False, ["exceeds"]),
}


def case(name, port, logpath, pid):
    data, close_after, words = CASES[name]
    s = connect(port)
    peer = "127.0.0.1:%d" % s.getsockname()[1]
    s.sendall(data)
    if close_after:
        s.close()
        got, eof = [], True
    else:
        r = Reader(s)
        got = r.frames(5.0, until_eof=True)
        eof = r.eof
        s.close()
        if not eof:
            die("%s: the master kept the connection open for 5 s" % name)
    line = log_line_for(logpath, peer, words)
    if line is None:
        die("%s: no master log line for %s with any of %s" % (name, peer, words))
    if not alive(pid):
        die("%s: the master died" % name)
    if name == "version":
        # The answer is a Refusal (Envelope field 3) naming both versions.
        refusal = [v for f in got for num, _, v in fields(f) if num == 3]
        if not refusal:
            die("version: no Refusal received (got %r)" % got)
        reason = b"".join(v for num, _, v in fields(refusal[0]) if num == 1)
        if b"99" not in reason or b"1" not in reason.replace(b"99", b""):
            die("version: the refusal does not name both versions: %r" % reason)
        print("refusal: " + reason.decode(errors="replace"))
    if name == "before-hello":
        refusal = [v for f in got for num, _, v in fields(f) if num == 3]
        if got and not refusal:
            die("before-hello: the master answered with something else than a Refusal: %r" % got)
    print("%s: %s" % (name, line))


def hold(port, n, claim, secs):
    socks = []
    for _ in range(n):
        s = connect(port)
        s.sendall(struct.pack(">I", claim) + b"z" * 1024)
        socks.append(s)
    print("holding", flush=True)
    time.sleep(secs)
    for s in socks:
        s.close()


def fakeworker(port, mode, secs):
    s = connect(port)
    s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_WORKER, name="fake-" + mode, slots=1)))
    r = Reader(s)
    got = r.frames(5.0)
    if not got or not any(num == 2 for num, _, _ in fields(got[0])):
        die("fakeworker: no Welcome: %r" % got)
    print("registered", flush=True)
    tasks = 0
    end = time.monotonic() + secs
    last_hb = 0.0
    # Tasks may arrive in the same read as the Welcome (a job was already queued).
    pending = got[1:]
    while time.monotonic() < end and not r.eof:
        if time.monotonic() - last_hb > 0.5:
            s.sendall(frame(ld(4, vi(1, 0))))  # Heartbeat{running: 0}
            last_hb = time.monotonic()
        batch, pending = pending + r.frames(0.2), []
        for f in batch:
            for num, _, v in fields(f):
                if num != 5:  # TaskBatch
                    continue
                results = b""
                for tn, _, tv in fields(v):
                    if tn != 1:
                        continue
                    t = {n: val for n, _, val in fields(tv) if n in (1, 2, 3)}
                    job, task, attempt = t.get(1, 0), t.get(2, 0), t.get(3, 0)
                    tasks += 1
                    if mode == "garbage":
                        res = vi(1, job) + vi(2, task) + vi(3, attempt) + vi(4, 1) + ld(5, b"this is not a partial\n")
                    elif mode == "unsorted":
                        res = vi(1, job) + vi(2, task) + vi(3, attempt) + vi(4, 1) + ld(5, b"zebra\t1\napple\t1\n")
                    else:  # stray: results for tasks that do not exist or are stale, then garbage
                        stray = b""
                        for j2, t2, a2 in ((job + 1000, 0, 1), (job, 1 << 20, 1), (job, task, attempt + 7)):
                            stray += ld(1, vi(1, j2) + vi(2, t2) + vi(3, a2) + vi(4, 1) + ld(5, b"1\n"))
                        s.sendall(frame(ld(6, stray)))
                        res = vi(1, job) + vi(2, task) + vi(3, attempt) + vi(4, 1) + ld(5, b"not a partial either\n")
                    results += ld(1, res)
                if results:
                    s.sendall(frame(ld(6, results)))  # ResultBatch
    print("tasks %d" % tasks, flush=True)
    s.close()


def overrun(port, logpath, mb):
    s = connect(port)
    s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)))
    r = Reader(s)
    got = r.frames(5.0)
    if not got or not any(num == 2 for num, _, _ in fields(got[0])):
        die("overrun: no Welcome: %r" % got)
    spec = ld(1, b"count") + vi(4, 1)  # JobSpec{op: "count", upload: true}
    s.sendall(frame(ld(8, ld(1, spec))))  # Envelope.submit = Submit{spec}
    job = window = None
    for f in r.frames(5.0):
        for num, _, v in fields(f):
            if num == 9:  # Submitted
                d = {n: val for n, _, val in fields(v)}
                job, window = d.get(1), d.get(2)
    if job is None:
        die("overrun: no Submitted")
    peer = "127.0.0.1:%d" % s.getsockname()[1]
    chunk = frame(ld(10, vi(1, job) + ld(2, b"1\n" * (512 * 1024))))  # 1 MiB of records
    sent = 0
    try:
        s.settimeout(10)
        for _ in range(mb):
            s.sendall(chunk)
            sent += 1
    except (BrokenPipeError, ConnectionResetError, socket.timeout):
        pass
    s.close()
    print("job %d" % job, flush=True)
    if sent >= mb:
        die("overrun: the master took all %d MiB beyond a window of %s bytes" % (mb, window))
    line = log_line_for(logpath, peer, ["overran", "window", "flow control"])
    if line is None:
        die("overrun: the master closed the connection after %d MiB (window %s bytes) but no "
            "log line names %s and the reason" % (sent, window, peer))
    print("overrun: window %s bytes, %d MiB sent before the close: %s" % (window, sent, line))


def read_secret(path):
    with open(path, "rb") as f:
        return f.read().rstrip()


def refusal_reason(frames):
    for f in frames:
        for num, _, v in fields(f):
            if num == 3:  # Refusal
                return b"".join(r for n, _, r in fields(v) if n == 1).decode(errors="replace")
    return None


def challenge_of(frames):
    for f in frames:
        for num, _, v in fields(f):
            if num == 60:  # Challenge{nonce, proof}
                d = {n: val for n, _, val in fields(v)}
                return d.get(1), d.get(2)
    return None, None


def auth_start(port, key, role, proof_role, nonce=None):
    """Sends a Hello as `role` and, once the master has proved itself, a Proof made for
    `proof_role`. Returns (socket, reader, hello frame, proof frame, frames after the proof)."""
    s = connect(port)
    np = nonce if nonce is not None else os.urandom(32)
    hf = frame(hello(PROTOCOL_VERSION, role, name="wire", slots=1, nonce=np))
    s.sendall(hf)
    r = Reader(s)
    got = r.frames(5.0)
    nm, mproof = challenge_of(got)
    if nm is None:
        return s, r, hf, None, got
    if mproof != auth_proof(key, b"M", PROTOCOL_VERSION, role, np, nm):
        die("the master's proof does not match the secret")
    pf = frame(ld(61, ld(1, auth_proof(key, b"P", PROTOCOL_VERSION, proof_role, np, nm))))
    s.sendall(pf)
    return s, r, hf, pf, r.frames(5.0, until_eof=False)


def welcomed(frames):
    return any(num == 2 for f in frames for num, _, _ in fields(f))


def expect_refused(name, s, r, got, logpath, pid, words):
    peer = "127.0.0.1:%d" % s.getsockname()[1]
    got = got + r.frames(5.0, until_eof=True)
    s.close()
    if welcomed(got):
        die("%s: the master welcomed the peer" % name)
    reason = refusal_reason(got)
    if reason is None or not any(w in reason for w in words):
        die("%s: expected a refusal naming one of %s, got %r" % (name, words, reason))
    if not r.eof:
        die("%s: the master kept the connection open" % name)
    line = log_line_for(logpath, peer, words)
    if line is None:
        die("%s: no master log line for %s with any of %s" % (name, peer, words))
    if not alive(pid):
        die("%s: the master died" % name)
    print("%s: refused: %s" % (name, reason))
    print("%s: log: %s" % (name, line))


def auth(port, logpath, secret, mode, pid):
    key = read_secret(secret)
    if mode == "client":
        s, r, _, pf, got = auth_start(port, key, ROLE_CLIENT, ROLE_CLIENT)
        if pf is None or not welcomed(got):
            die("client: a correct handshake was not welcomed: %r" % refusal_reason(got))
        s.close()
        print("client: welcomed")
    elif mode == "role":
        s, r, _, pf, got = auth_start(port, key, ROLE_WORKER, ROLE_CLIENT)
        if pf is None:
            die("role: no challenge: %r" % refusal_reason(got))
        expect_refused("role", s, r, got, logpath, pid, ["role binding"])
    elif mode == "replay":
        # Record a complete, successful client handshake...
        s, r, hf, pf, got = auth_start(port, key, ROLE_CLIENT, ROLE_CLIENT)
        if pf is None or not welcomed(got):
            die("replay: the recorded handshake was not welcomed")
        s.close()
        # ...then play its Hello back as is: the nonce was used before.
        s = connect(port)
        s.sendall(hf)
        r = Reader(s)
        expect_refused("replay-hello", s, r, [], logpath, pid, ["replayed"])
        # A fresh Hello followed by the recorded Proof: the master's nonce differs now.
        s = connect(port)
        s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_CLIENT, nonce=os.urandom(32))))
        r = Reader(s)
        got = r.frames(5.0)
        if challenge_of(got)[0] is None:
            die("replay-proof: no challenge")
        s.sendall(pf)
        expect_refused("replay-proof", s, r, [], logpath, pid, ["wrong proof"])
    else:
        sys.exit(__doc__)


def slow(port, logpath, mode, pid):
    """The master closes a handshake that has not finished at its deadline, however the bytes
    trickle in. Bounded: gives up after 60 s."""
    s = connect(port)
    peer = "127.0.0.1:%d" % s.getsockname()[1]
    data = frame(hello(PROTOCOL_VERSION, ROLE_CLIENT, name="x" * 100))
    start = time.monotonic()
    closed = False
    i = 0
    while time.monotonic() - start < 60:
        if mode == "dribble" and i < len(data) - 1:  # never the last byte
            try:
                s.sendall(data[i:i + 1])
            except (BrokenPipeError, ConnectionResetError):
                closed = True
                break
            i += 1
        s.settimeout(1.0)
        try:
            b = s.recv(4096)
            if not b:
                closed = True
                break
        except socket.timeout:
            continue
        except ConnectionResetError:
            closed = True
            break
    s.close()
    if not closed:
        die("%s: the master kept the connection open for 60 s" % mode)
    line = log_line_for(logpath, peer, ["deadline"])
    if line is None:
        die("%s: no master log line for %s naming the deadline" % (mode, peer))
    if not alive(pid):
        die("%s: the master died" % mode)
    print("%s: closed after %.1f s, %d bytes sent: %s" % (mode, time.monotonic() - start, i, line))


def connect_from(port, src):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(5)
    s.bind((src, 0))
    s.connect(("127.0.0.1", port))
    return s


def conns(port, n, src, secs):
    socks = [connect_from(port, src) for _ in range(n)]
    print("holding", flush=True)
    time.sleep(secs)
    for s in socks:
        s.close()


def plain_hello(port, src):
    s = connect_from(port, src)
    s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)))
    got = Reader(s).frames(5.0)
    s.close()
    if welcomed(got):
        print("welcomed")
    else:
        print("refused: %s" % refusal_reason(got))


def resume(port, job):
    s = connect(port)
    s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)))
    r = Reader(s)
    if not welcomed(r.frames(5.0)):
        die("resume: no Welcome")
    s.sendall(frame(ld(210, vi(1, job))))  # Envelope.upload_resume = UploadResume{job_id}
    end = time.monotonic() + 10.0
    while time.monotonic() < end:
        for f in r.frames(1.0):
            for num, _, v in fields(f):
                d = {n: val for n, _, val in fields(v)} if num in (11, 22) else {}
                if num == 22:  # Failure
                    print("failure: %s" % d.get(2, b"").decode(errors="replace"))
                    return
                if num == 11:  # UploadAck
                    print("ack received=%d complete=%d" % (d.get(2, 0), d.get(212, 0)))
                    return
    die("resume: no answer within 10 s")


def stall(port, job, secs):
    s = connect(port)
    # A small receive buffer, so that the master's queue fills without our reading a byte.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(frame(hello(PROTOCOL_VERSION, ROLE_CLIENT)))
    # FetchResult{job_id, offset 0, window 256 MiB}; then nothing is read.
    s.sendall(frame(ld(14, vi(1, job) + vi(2, 0) + vi(3, 256 << 20))))
    print("127.0.0.1:%d" % s.getsockname()[1], flush=True)
    time.sleep(secs)
    s.close()


def roles(port, logpath, pid, secret):
    key = read_secret(secret) if secret else None
    cases = [
        # (role, what it sends that the role may not, its Envelope bytes)
        (ROLE_CLIENT, "heartbeat", ld(4, vi(1, 0))),
        (ROLE_CLIENT, "result_batch", ld(6, ld(1, vi(1, 1) + vi(2, 0) + vi(3, 1) + vi(4, 1)))),
        (ROLE_CLIENT, "blob_request", ld(28, ld(1, b"\x00" * 32))),
        (ROLE_WORKER, "submit", ld(8, ld(1, ld(1, b"count") + ld(3, vi(1, 0) + vi(2, 10))))),
        (ROLE_WORKER, "cancel", ld(17, vi(1, 1))),
        (ROLE_WORKER, "list_jobs", ld(18, b"")),
        (ROLE_WORKER, "fetch_result", ld(14, vi(1, 1))),
        (ROLE_WORKER, "upload_chunk", ld(10, vi(1, 1) + ld(2, b"1\n"))),
    ]
    for role, kind, env in cases:
        if key is not None:
            s, r, _, pf, got = auth_start(port, key, role, role)
            if pf is None or not welcomed(got):
                die("roles: the handshake as %d failed: %r" % (role, refusal_reason(got)))
        else:
            s = connect(port)
            s.sendall(frame(hello(PROTOCOL_VERSION, role, name="roles", slots=1)))
            r = Reader(s)
            if not welcomed(r.frames(5.0)):
                die("roles: not welcomed")
        s.sendall(frame(env))
        who = "worker" if role == ROLE_WORKER else "client"
        expect_refused("%s-sends-%s" % (who, kind), s, r, [], logpath, pid,
                       ["a %s may not send %s" % (who, kind)])


def main():
    a = sys.argv[1:]
    if not a:
        sys.exit(__doc__)
    if a[0] == "case":
        case(a[1], int(a[2]), a[3], int(a[4]))
    elif a[0] == "hold":
        hold(int(a[1]), int(a[2]), int(a[3]), float(a[4]))
    elif a[0] == "overrun":
        overrun(int(a[1]), a[2], int(a[3]))
    elif a[0] == "auth":
        auth(int(a[1]), a[2], a[3], a[4], int(a[5]))
    elif a[0] == "conns":
        conns(int(a[1]), int(a[2]), a[3], float(a[4]))
    elif a[0] == "hello":
        plain_hello(int(a[1]), a[2])
    elif a[0] == "resume":
        resume(int(a[1]), int(a[2]))
    elif a[0] == "stall":
        stall(int(a[1]), int(a[2]), float(a[3]))
    elif a[0] == "roles":
        roles(int(a[1]), a[2], int(a[3]), a[4] if len(a) > 4 else None)
    elif a[0] == "slow":
        slow(int(a[1]), a[2], a[3], int(a[4]))
    elif a[0] == "fakeworker":
        fakeworker(int(a[1]), a[2], float(a[3]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
