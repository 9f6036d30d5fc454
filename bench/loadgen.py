"""MQTT 3.1.1 load generator for bench/run.py: one role per process.

The packets are hand-encoded once up front so the generator spends its time in
the kernel, not in Python, and stays faster than the broker it measures.  Every
role talks to its parent over stdio: it prints JSON lines on stdout and stops
when its stdin closes or its own deadline passes, so a crashed parent never
leaves it running.

Roles:
  sub    N subscribers on one topic; prints READY once subscribed, then counts
         the messages that reach them during a measuring window and prints
         {"msgs", "seconds", "rate"}.
  pub    one publisher, flat out (QoS 0) or with a window of unacknowledged
         PUBLISHes (QoS 1), until told to stop.
  retain N retained messages, then S SUBSCRIBEs from one client (exact or wildcard
         filters); prints how fast the SUBACKs and retained messages came back.
  conns  N connections (CONNECT + CONNACK, optionally over mutual TLS) with P
         connectors in parallel; prints {"seconds", "ok"} then holds them idle
         until told to stop.
"""

import argparse
import json
import os
import socket
import ssl
import sys
import threading
import time

from gatemq import codec

HOST = "127.0.0.1"


# --- packets (MQTT 3.1.1) -------------------------------------------------

# Packets are encoded once per role with gatemq's own codec (its encoders are tested against the
# MQTT spec in tests/core/test_codec.py), so every broker gets byte-identical load.
CLEAN = True   # sub --persistent: clean session 0 (a session the broker keeps, and stores)


def connect_packet(client_id, keepalive=0):
    # clean session, no will, no credentials: the identity comes from the
    # certificate on TLS listeners
    return codec.encode_connect(client_id, codec.MQTT311, clean_start=CLEAN, keepalive=keepalive)


def subscribe_packet(pid, topic, qos):
    return codec.encode_subscribe(pid, [(topic, qos)], None, codec.MQTT311)


def publish_packet(topic, payload, qos=0, pid=0):
    return bytes(codec.encode_publish(topic.encode(), payload, qos, False, False, pid if qos else None,
                                      b"", codec.MQTT311))


DISCONNECT = b"\xe0\x00"


def read_packet(sock):
    """Blocking read of one whole packet: (first byte, body)."""
    first = _recv_exact(sock, 1)[0]
    mult, length = 1, 0
    for _ in range(4):
        b = _recv_exact(sock, 1)[0]
        length += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            break
    return first, _recv_exact(sock, length)


def _recv_exact(sock, n):
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf


def mqtt_connect(sock, client_id):
    sock.sendall(connect_packet(client_id))
    first, body = read_packet(sock)
    if first != 0x20 or len(body) != 2:
        raise ConnectionError("expected CONNACK, got packet 0x%02x" % first)
    if body[1] != 0:
        raise ConnectionError("CONNACK return code %d" % body[1])


# --- plumbing ---------------------------------------------------------------

def emit(obj):
    sys.stdout.write((obj if isinstance(obj, str) else json.dumps(obj)) + "\n")
    sys.stdout.flush()


def watch_stdin():
    """An event set when the parent closes our stdin (or dies)."""
    stop = threading.Event()

    def run():
        # raw reads: a daemon thread blocked in the buffered reader aborts
        # the interpreter at exit
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        stop.set()

    threading.Thread(target=run, daemon=True).start()
    return stop


def open_conn(port, client_id, timeout=10.0):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    mqtt_connect(s, client_id)
    return s


# --- roles --------------------------------------------------------------------

def role_sub(a):
    import selectors
    stop = watch_stdin()
    pkt_len = len(publish_packet(a.topic, b"x" * a.size, a.qos, 1))
    socks = []
    for i in range(a.subs):
        s = open_conn(a.port, "bsub-%d-%d" % (os.getpid(), i))
        s.sendall(subscribe_packet(1, a.topic, a.qos))
        first, body = read_packet(s)
        if first != 0x90 or body[2:3] == b"\x80":
            raise ConnectionError("subscription refused")
        s.settimeout(None)
        socks.append(s)
    emit("READY")

    sel = selectors.DefaultSelector()
    expect = publish_packet(a.topic, b"x" * a.size)
    for s in socks:
        # QoS 1: unparsed bytes; QoS 0: bytes seen so far on this socket
        sel.register(s, selectors.EVENT_READ, bytearray() if a.qos else [0])
    buf = bytearray(1 << 18)
    deadline = time.perf_counter() + a.deadline
    win_start = win_end = None
    counted = 0          # QoS 0: bytes; QoS 1: packets
    err = None
    while not stop.is_set():
        now = time.perf_counter()
        if now > deadline or (win_end is not None and now >= win_end):
            break
        for key, _ in sel.select(0.2):
            s = key.fileobj
            n = s.recv_into(buf)
            if not n:
                err = "broker closed a subscriber connection"
                stop.set()
                break
            now = time.perf_counter()
            if win_start is None:
                win_start = now + a.warmup
                win_end = win_start + a.seconds
            inwin = win_start <= now < win_end
            if a.qos == 0:
                # every PUBLISH that follows the SUBACK is the same packet,
                # so counting bytes counts messages without parsing them
                if inwin:
                    counted += n
                # spot-check one packet per read so that a broker sending
                # anything else cannot pass for a fast one
                seen = key.data
                k = -seen[0] % pkt_len
                seen[0] += n
                if k + pkt_len <= n and buf[k:k + pkt_len] != expect:
                    err = "a subscriber got bytes other than the published packet"
                    stop.set()
                    break
            else:
                pend = key.data
                pend += buf[:n]
                try:
                    msgs, acks = _take_publishes(pend)
                except ConnectionError as e:
                    err = str(e)
                    stop.set()
                    break
                if acks:
                    s.sendall(acks)
                if inwin:
                    counted += msgs
    msgs = counted // pkt_len if a.qos == 0 else counted
    result = {"msgs": msgs, "seconds": a.seconds, "rate": msgs / a.seconds}
    if win_start is None:
        result["error"] = err or "no message arrived within %.0f s" % a.deadline
    elif err:
        result["error"] = err
    elif time.perf_counter() < win_end - 0.05:
        result["error"] = "stopped before the measuring window ended"
    emit(result)
    for s in socks:
        s.close()


def _whole_packets(pend):
    """(first byte, body start, body length) of each whole packet at the front of pend; the
    caller deletes what it consumed (the end of the last one)."""
    i, n = 0, len(pend)
    while n - i >= 2:
        j, mult, length, whole = i + 1, 1, 0, False
        while j < n and j - i <= 4:
            b = pend[j]
            j += 1
            length += (b & 0x7F) * mult
            mult *= 128
            if not b & 0x80:
                whole = True
                break
        if not whole or j + length > n:
            return
        yield pend[i], j, length
        i = j + length


def _take_publishes(pend):
    """Parse the whole packets at the front of pend; return (PUBLISH count, PUBACKs)."""
    i, msgs = 0, 0
    acks = []
    for first, j, length in _whole_packets(pend):
        if first >> 4 == 3:
            # a QoS 1 subscription must get QoS 1 deliveries: a broker that
            # downgraded them would skip the acknowledgements being measured
            if not first & 0x06:
                raise ConnectionError("got a QoS 0 delivery on a QoS 1 subscription")
            msgs += 1
            if first & 0x06:
                tl = (pend[j] << 8) | pend[j + 1]
                acks.append(b"\x40\x02" + bytes(pend[j + 2 + tl:j + 4 + tl]))
        i = j + length
    del pend[:i]
    return msgs, b"".join(acks)


def role_pub(a):
    stop = watch_stdin()
    s = open_conn(a.port, "bpub-%d" % os.getpid())
    s.settimeout(0.5)
    payload = b"x" * a.size
    deadline = time.perf_counter() + a.deadline
    sent = 0
    emit("READY")
    if a.qos == 0:
        batch = memoryview(publish_packet(a.topic, payload) * 256)
        off = 0
        while not stop.is_set() and time.perf_counter() < deadline:
            try:
                off += s.send(batch[off:])
            except socket.timeout:
                continue
            if off == len(batch):
                off = 0
                sent += 256
    else:
        pkts = [publish_packet(a.topic, payload, 1, pid) for pid in range(1, 65536)]
        seq = 0
        s.sendall(b"".join(pkts[:a.window]))
        seq = a.window
        pend = b""
        while not stop.is_set() and time.perf_counter() < deadline:
            try:
                data = s.recv(65536)
            except socket.timeout:
                continue
            if not data:
                emit({"sent": sent, "error": "broker closed the publisher connection"})
                return
            pend += data
            k = len(pend) // 4
            if pend[:1] not in (b"", b"\x40"):
                emit({"sent": sent, "error": "expected PUBACK, got packet 0x%02x" % pend[0]})
                return
            pend = pend[4 * k:]
            sent += k
            # acks come back in order, so a packet id is free again long
            # before the 65535-long cycle comes round to it
            out = [pkts[(seq + j) % 65535] for j in range(k)]
            seq += k
            s.settimeout(None)
            s.sendall(b"".join(out))
            s.settimeout(0.5)
    emit({"sent": sent})
    try:
        s.settimeout(1.0)
        s.sendall(DISCONNECT)
    except OSError:
        pass
    s.close()


def _tls_contexts(certdir):
    names = sorted(f[:-8] for f in os.listdir(certdir) if f.startswith("client") and f.endswith(".crt.pem"))
    ctxs = []
    for name in names:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.load_verify_locations(os.path.join(certdir, "ca.crt.pem"))
        ctx.load_cert_chain(os.path.join(certdir, name + ".crt.pem"), os.path.join(certdir, name + ".key.pem"))
        ctxs.append(ctx)
    if not ctxs:
        raise SystemExit("no client certificates in " + certdir)
    return ctxs


def role_conns(a):
    stop = watch_stdin()
    ctxs = _tls_contexts(a.certdir) if a.certdir else None
    socks = [None] * a.n
    errors = []
    lock = threading.Lock()
    nxt = [0]

    def worker():
        while True:
            with lock:
                i = nxt[0]
                nxt[0] += 1
            # a broker that stopped answering would otherwise cost a
            # timeout for each remaining connection
            if i >= a.n or stop.is_set() or len(errors) >= 10:
                return
            try:
                raw = socket.create_connection((HOST, a.port), timeout=5)
                # without it Nagle holds CONNECT behind the last TLS flight
                # until the broker's delayed ACK: 40 ms per connect
                raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                s = ctxs[i % len(ctxs)].wrap_socket(raw) if ctxs else raw
                mqtt_connect(s, "bconn-%d-%d" % (os.getpid(), i))
                socks[i] = s
            except (OSError, ConnectionError) as e:
                with lock:
                    errors.append("%s: %s" % (type(e).__name__, e))

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(a.parallel)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    ok = sum(1 for s in socks if s is not None)
    result = {"n": a.n, "ok": ok, "seconds": elapsed, "rate": ok / elapsed if elapsed else 0.0}
    if errors:
        result["errors"] = len(errors)
        result["first_error"] = errors[0]
    emit(result)
    stop.wait(a.deadline)
    for s in socks:
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def _load_retained(a):
    # N retained messages on dev/<i>/status, stored once the connection it returns has its PUBACK.
    loader = open_conn(a.port, "bret-load-%d" % os.getpid(), timeout=a.deadline)
    batch = []
    for i in range(a.n):
        batch.append(bytes(codec.encode_publish(("dev/%d/status" % i).encode(), b"online-%08d" % i, 0,
                                                True, False, None, b"", codec.MQTT311)))
        if len(batch) == 1000:
            loader.sendall(b"".join(batch))
            batch = []
    # a QoS 1 PUBLISH after them: its PUBACK says the broker has taken every retained message
    batch.append(publish_packet("bench/sync", b"s", 1, 1))
    loader.sendall(b"".join(batch))
    first, _ = read_packet(loader)
    if first != 0x40:
        raise ConnectionError("expected PUBACK, got packet 0x%02x" % first)
    return loader


def role_retain(a):
    """Stores N retained messages on dev/<i>/status, then one client sends S SUBSCRIBEs (one
    filter each, pipelined) and reads until every SUBACK and the expected retained PUBLISHes are
    in: {"seconds", "subacks", "msgs", "subs_rate", "msg_rate"}."""
    import selectors
    stop = watch_stdin()
    deadline = time.perf_counter() + a.deadline
    loader = _load_retained(a)
    step = max(1, a.n // max(1, a.subs))
    filters = [a.filter.replace("{}", str((i * step) % a.n)) for i in range(a.subs)]
    packets = b"".join(codec.encode_subscribe(1 + i % 65535, [(f, 0)], None, codec.MQTT311)
                       for i, f in enumerate(filters))
    s = open_conn(a.port, "bret-sub-%d" % os.getpid(), timeout=a.deadline)
    s.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
    out = memoryview(packets)
    pend = bytearray()
    buf = bytearray(1 << 18)
    subacks = msgs = 0
    err = None
    t0 = time.perf_counter()
    last = t0
    while subacks < a.subs or msgs < a.expect:
        now = time.perf_counter()
        if stop.is_set() or now > deadline:
            err = "gave up with %d of %d SUBACKs and %d of %d messages" % (subacks, a.subs, msgs, a.expect)
            break
        if now - last > a.idle:
            err = "nothing for %.0f s after %d of %d SUBACKs and %d of %d messages" % (
                a.idle, subacks, a.subs, msgs, a.expect)
            break
        for key, ev in sel.select(0.2):
            if ev & selectors.EVENT_WRITE and out:
                k = s.send(out)
                out = out[k:]
                if not out:
                    sel.modify(s, selectors.EVENT_READ)
            if ev & selectors.EVENT_READ:
                n = s.recv_into(buf)
                if not n:
                    raise ConnectionError("broker closed the subscriber")
                last = time.perf_counter()
                pend += buf[:n]
                i = 0
                for first, j, length in _whole_packets(pend):
                    t = first >> 4
                    if t == 9:
                        subacks += 1
                    elif t == 3:
                        msgs += 1
                    i = j + length
                del pend[:i]
    secs = last - t0
    res = {"seconds": secs, "subacks": subacks, "msgs": msgs,
           "subs_rate": subacks / secs if secs > 0 else None,
           "msg_rate": msgs / secs if secs > 0 else None}
    if err:
        res["error"] = err
    emit(res)
    s.close()
    loader.close()


def role_stall(a):
    """Stores N retained messages, then one client sends ONE SUBSCRIBE with S exact filters while
    another pings without pause: {"stall_ms": the longest PINGREQ -> PINGRESP round trip while the
    SUBSCRIBE was handled (how long the broker served nobody else), "suback_s": its SUBACK's time}."""
    import threading
    loader = _load_retained(a)
    ponger = open_conn(a.port, "bstall-ping-%d" % os.getpid(), timeout=a.deadline)
    done = threading.Event()
    worst = [0.0]

    def ping():
        while not done.is_set():
            t = time.perf_counter()
            ponger.sendall(b"\xc0\x00")
            first, _ = read_packet(ponger)
            if first != 0xD0:
                raise ConnectionError("expected PINGRESP, got packet 0x%02x" % first)
            worst[0] = max(worst[0], time.perf_counter() - t)

    filters = [("dev/%d/status" % (i % a.n), 0) for i in range(a.subs)]
    packet = bytes(codec.encode_subscribe(1, filters, None, codec.MQTT311))
    s = open_conn(a.port, "bstall-sub-%d" % os.getpid(), timeout=a.deadline)
    pinger = threading.Thread(target=ping, daemon=True)
    pinger.start()
    time.sleep(0.2)     # the pinger's round trips before the SUBSCRIBE set the baseline
    t0 = time.perf_counter()
    s.sendall(packet)
    while True:
        first, _ = read_packet(s)
        if first >> 4 == 9:
            break
    suback = time.perf_counter() - t0
    time.sleep(0.1)
    done.set()
    pinger.join(a.deadline)
    emit({"stall_ms": worst[0] * 1000, "suback_s": suback})
    for c in (s, ponger, loader):
        c.close()


def role_burst(a):
    """Issue 12's burst: one QoS 1 subscriber that acknowledges every delivery at once, one
    publisher that sends N QoS 1 messages as fast as it can, keeping up to WINDOW of them ahead of
    what the subscriber has received, and reading its PUBACKs as they come. Waits until all N
    arrived, or nothing came for --idle seconds: {"msgs", "lost", "seconds", "rate"}."""
    import selectors
    stop = watch_stdin()
    deadline = time.perf_counter() + a.deadline
    sub = open_conn(a.port, "bburst-sub-%d" % os.getpid())
    sub.sendall(subscribe_packet(1, "bench/burst", 1))
    first, body = read_packet(sub)
    if first != 0x90 or body[2:3] == b"\x80":
        raise ConnectionError("subscription refused")
    pub = open_conn(a.port, "bburst-pub-%d" % os.getpid())
    for s in (sub, pub):
        s.setblocking(False)
    pkts = [publish_packet("bench/burst", b"%08d" % i, 1, i % 65535 + 1) for i in range(a.n)]
    emit("READY")
    sel = selectors.DefaultSelector()
    sel.register(sub, selectors.EVENT_READ, "sub")
    sel.register(pub, selectors.EVENT_READ | selectors.EVENT_WRITE, "pub")
    buf = bytearray(1 << 18)
    spend = bytearray()
    out = memoryview(b"")
    nxt = got = 0
    t0 = last = time.perf_counter()
    err = None
    while got < a.n:
        now = time.perf_counter()
        if stop.is_set() or now > deadline or now - last > a.idle:
            err = "%d of %d messages arrived" % (got, a.n)
            break
        if not out and nxt < a.n and nxt - got < a.window:
            k = min(a.n, got + a.window) - nxt
            out = memoryview(b"".join(pkts[nxt:nxt + k]))
            nxt += k
        sel.modify(pub, selectors.EVENT_READ | (selectors.EVENT_WRITE if out else 0), "pub")
        for key, ev in sel.select(0.2):
            s = key.fileobj
            if key.data == "pub":
                if ev & selectors.EVENT_WRITE and out:
                    try:
                        out = out[s.send(out):]
                    except BlockingIOError:
                        pass
                if ev & selectors.EVENT_READ:
                    if not s.recv_into(buf):
                        raise ConnectionError("broker closed the publisher")
                continue
            n = s.recv_into(buf)
            if not n:
                raise ConnectionError("broker closed the subscriber")
            last = time.perf_counter()
            spend += buf[:n]
            msgs, acks = _take_publishes(spend)
            got += msgs
            if acks:
                sub.setblocking(True)
                sub.sendall(acks)
                sub.setblocking(False)
    secs = last - t0
    res = {"msgs": got, "lost": a.n - got, "seconds": secs, "rate": got / secs if secs > 0 else None}
    if err:
        res["error"] = err
    emit(res)
    sub.close()
    pub.close()


def role_fanout(a):
    """Issue 12's scaling row: N subscribers on distinct topics (bench/f/<i>, QoS 0), one publisher
    sending round robin to all of them for --seconds after --warmup: {"msgs", "rate"} counted at
    the subscribers (a routing cost that grew with the number of subscriptions would show)."""
    import selectors
    stop = watch_stdin()
    sel = selectors.DefaultSelector()
    socks = []
    for i in range(a.subs):
        s = open_conn(a.port, "bfan-%d-%d" % (os.getpid(), i), timeout=30)
        s.sendall(subscribe_packet(1, "bench/f/%d" % i, 0))
        first, body = read_packet(s)
        if first != 0x90 or body[2:3] == b"\x80":
            raise ConnectionError("subscription refused")
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)
    pub = open_conn(a.port, "bfan-pub-%d" % os.getpid())
    pkts = [publish_packet("bench/f/%d" % i, b"x" * 16) for i in range(a.subs)]
    pkt_len = len(pkts[0])
    batch = b"".join(pkts)
    emit("READY")
    buf = bytearray(1 << 16)
    counted = 0
    t0 = time.perf_counter()
    win_start, win_end = t0 + a.warmup, t0 + a.warmup + a.seconds
    pub.setblocking(False)
    out = memoryview(batch)
    while not stop.is_set():
        now = time.perf_counter()
        if now >= win_end:
            break
        try:
            k = pub.send(out)
            out = out[k:] if k < len(out) else memoryview(batch)
        except BlockingIOError:
            pass
        for key, _ in sel.select(0):
            try:
                n = key.fileobj.recv_into(buf)
            except BlockingIOError:
                continue
            if win_start <= time.perf_counter() < win_end:
                counted += n
    # topics bench/f/<i> differ in length: count whole messages by the average packet size
    avg = len(batch) / float(a.subs)
    msgs = int(counted / avg)
    emit({"msgs": msgs, "seconds": a.seconds, "rate": msgs / a.seconds, "pkt_len": pkt_len})
    for s in socks:
        s.close()
    pub.close()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="role", required=True)
    for name in ("sub", "pub", "conns", "retain", "burst", "fanout", "stall"):
        r = sub.add_parser(name)
        r.add_argument("--port", type=int, required=True)
        r.add_argument("--deadline", type=float, default=60.0, help="give up after this many seconds")
        if name in ("sub", "pub"):
            r.add_argument("--topic", default="bench/t")
            r.add_argument("--qos", type=int, choices=(0, 1), default=0)
            r.add_argument("--size", type=int, default=32, help="payload bytes")
    r = sub.choices["sub"]
    r.add_argument("--subs", type=int, default=1)
    r.add_argument("--warmup", type=float, default=1.0)
    r.add_argument("--seconds", type=float, default=5.0)
    r.add_argument("--persistent", action="store_true", help="clean session 0 (persistence rows)")
    sub.choices["pub"].add_argument("--window", type=int, default=32, help="QoS 1 PUBLISHes in flight")
    r = sub.choices["conns"]
    r.add_argument("--n", type=int, default=1000)
    r.add_argument("--parallel", type=int, default=4)
    r.add_argument("--certdir", help="mutual TLS with the ca/client*.pem files in this folder")
    r = sub.choices["retain"]
    r.add_argument("--n", type=int, default=50000, help="retained messages on dev/<i>/status")
    r.add_argument("--subs", type=int, default=2000, help="SUBSCRIBE packets, one filter each")
    r.add_argument("--filter", default="dev/{}/status", help="{} is replaced by a stored i")
    r.add_argument("--expect", type=int, default=2000, help="retained PUBLISHes to wait for")
    r.add_argument("--idle", type=float, default=10.0, help="give up after this long without data")
    r = sub.choices["stall"]
    r.add_argument("--n", type=int, default=10000, help="retained messages on dev/<i>/status")
    r.add_argument("--subs", type=int, default=20000, help="exact filters in the one SUBSCRIBE")
    r = sub.choices["fanout"]
    r.add_argument("--subs", type=int, default=10000)
    r.add_argument("--warmup", type=float, default=1.0)
    r.add_argument("--seconds", type=float, default=5.0)
    r = sub.choices["burst"]
    r.add_argument("--n", type=int, default=50000, help="QoS 1 messages")
    r.add_argument("--window", type=int, default=5000, help="messages ahead of what the subscriber received")
    r.add_argument("--idle", type=float, default=10.0, help="give up after this long without a delivery")
    a = p.parse_args(argv)
    if getattr(a, "persistent", False):
        global CLEAN
        CLEAN = False
    try:
        {"sub": role_sub, "pub": role_pub, "conns": role_conns, "retain": role_retain,
         "burst": role_burst, "fanout": role_fanout, "stall": role_stall}[a.role](a)
    except (OSError, ConnectionError) as e:
        emit({"error": "%s: %s" % (type(e).__name__, e)})
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
