# Hostile and messy traffic against one broker with a plain and a mutual-TLS listener: many
# threads at random connect, publish at every QoS, subscribe and never read, send garbage,
# oversized lengths, half packets, half TLS handshakes and half TLS records, unknown-CA and
# certificate-less handshakes, take sessions over, leave wills and hang up with a RST. Afterwards
# the broker must be alive, serve a fresh client on both listeners, hold no client socket and have
# logged no traceback or internal error. A fixed seed keeps the mix the same from run to run;
# thread scheduling still varies, so nothing here asserts timing.
#
#   GATEMQ_CHAOS_SECONDS=120 pytest tests/host/test_mqtt_chaos.py   hammers for two minutes
import os
import random
import resource
import socket
import ssl
import struct
import threading
import time

import pytest
from cryptography.x509.oid import NameOID

import rawmqtt
from brokers import BrokerProcess, socket_fds
from conftest import require_gatemq
from tlsutil import client_context, server_pki, ssl_config, ssl_port

SEED = 20261127
SECONDS = float(os.environ.get("GATEMQ_CHAOS_SECONDS", "12"))
THREADS = int(os.environ.get("GATEMQ_CHAOS_THREADS", "12"))
MAX_CONN = 48
BAD_LOG = ("Traceback", "internal error", "Task exception was never retrieved",
           "Exception in callback", "event loop:")


def tight_socket(port, ctx=None, timeout=10):
    """A client socket to 127.0.0.1:port with a 4 KB receive buffer, so what it does not read
    backs up into the broker quickly; TLS through ctx when given."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(timeout)
    s.connect(("127.0.0.1", port))
    return ctx.wrap_socket(s, server_hostname="127.0.0.1") if ctx else s


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def rst(sock):
    # SO_LINGER 0: close() sends a RST instead of a FIN.
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def drain(sock, seconds):
    sock.settimeout(0.2)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            if not sock.recv(65536):
                return
        except socket.timeout:
            pass
        except OSError:
            return


def bio_handshake(sock, ctx):
    """TLS over memory BIOs on a plain socket: the records can then be sent in pieces."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname="127.0.0.1")
    while True:
        try:
            obj.do_handshake()
            break
        except ssl.SSLWantReadError:
            pending = out.read()
            if pending:
                sock.sendall(pending)
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            inc.write(data)
    pending = out.read()
    if pending:
        sock.sendall(pending)
    return obj, out


class Chaos:
    def __init__(self, broker, pki, seed):
        self.b = broker
        self.pki = pki
        self.port = broker.port
        self.tls_port = ssl_port(broker)
        self.rng = random.Random(seed)
        self.n = 0
        self.errors = []
        self.ctx = {}
        for label, dev in (("good", pki.dev), ("stranger", pki.stranger), ("none", None)):
            for v in ("1.2", "1.3"):
                ver = ssl.TLSVersion.TLSv1_2 if v == "1.2" else ssl.TLSVersion.TLSv1_3
                self.ctx[label, v] = client_context(pki.root.crt, dev.chain if dev else None,
                                                    dev.key if dev else None, minimum=ver, maximum=ver)

    # -- the actions: each opens its own sockets and closes them, whatever the broker does --

    def plain(self, rng, v):
        return rawmqtt.RawClient(self.port, version=v, timeout=3)

    def tls(self, rng, v, label="good"):
        r = rawmqtt.RawClient(self.tls_port, version=v, timeout=3)
        r.sock = self.ctx[label, rng.choice(("1.2", "1.3"))].wrap_socket(r.sock, server_hostname="127.0.0.1")
        return r

    def end(self, rng, r):
        how = rng.random()
        if how < 0.4:
            try:
                r.send(rawmqtt.disconnect(0 if r.version == 5 else None, version=r.version))
            except OSError:
                pass
            r.close()
        elif how < 0.8:
            rst(r.sock)
        else:
            r.close()

    def a_session(self, rng, i):
        v = rng.choice((4, 5))
        r = (self.tls if rng.random() < 0.4 else self.plain)(rng, v)
        try:
            cid = "chaos-%d" % rng.randrange(40)          # shared ids: takeovers
            will = None
            if rng.random() < 0.3:
                will = dict(topic="chaos/will/%d" % i, payload=b"gone", qos=rng.randrange(3),
                            retain=rng.random() < 0.5)
            r.connect(cid, version=v, clean=rng.random() < 0.5, will=will,
                      props={"session_expiry": rng.choice((0, 5))} if v == 5 else None)
            if rng.random() < 0.6:
                r.send(rawmqtt.subscribe(1, [(rng.choice(("chaos/#", "chaos/busy", "chaos/+/x")),
                                              rng.randrange(3))], version=v))
            for k in range(rng.randrange(12)):
                qos = rng.randrange(3)
                r.send(rawmqtt.publish("chaos/%s" % rng.choice(("busy", "a/x", "r")),
                                       os.urandom(rng.randrange(300)), qos=qos,
                                       retain=rng.random() < 0.1, pid=k + 1 if qos else None, version=v))
                if qos == 2 and rng.random() < 0.7:
                    r.send(rawmqtt.ack(rawmqtt.PUBREL, k + 1, version=v))
            # Acknowledge what arrives, for a while.
            end = time.monotonic() + rng.random()
            while time.monotonic() < end:
                try:
                    p = r.recv(0.2)
                except (TimeoutError, rawmqtt.Closed):
                    break
                if p.type == rawmqtt.PUBLISH and p.pid:
                    qos = (p.flags >> 1) & 3
                    r.send(rawmqtt.ack(rawmqtt.PUBACK if qos == 1 else rawmqtt.PUBREC, p.pid, version=v))
                elif p.type == rawmqtt.PUBREC:
                    r.send(rawmqtt.ack(rawmqtt.PUBREL, p.pid, version=v))
                elif p.type == rawmqtt.PUBREL:
                    r.send(rawmqtt.ack(rawmqtt.PUBCOMP, p.pid, version=v))
        finally:
            self.end(rng, r)

    def a_slow_reader(self, rng, i):
        # Subscribes to the busy topic with a tiny receive buffer and never reads.
        s = tight_socket(self.port, timeout=3)
        try:
            s.sendall(rawmqtt.connect("slow-%d" % i, version=4, clean=True))
            s.sendall(rawmqtt.subscribe(1, [("chaos/busy", rng.randrange(2))]))
            time.sleep(1 + 2 * rng.random())
        finally:
            rst(s)

    def a_flood(self, rng, i):
        r = self.plain(rng, 4)
        try:
            r.connect("flood-%d" % i)
            payload = os.urandom(rng.choice((100, 2000, 20000)))
            for _ in range(rng.randrange(50, 300)):
                r.send(rawmqtt.publish("chaos/busy", payload))
        finally:
            self.end(rng, r)

    def a_connect_silence(self, rng, i):
        r = (self.tls if rng.random() < 0.3 else self.plain)(rng, 4)
        try:
            r.send(rawmqtt.connect("silent-%d" % i))
            time.sleep(rng.random() * 2)
        finally:
            self.end(rng, r)

    def a_garbage(self, rng, i):
        port = self.tls_port if rng.random() < 0.3 else self.port
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        try:
            kind = rng.randrange(5)
            if kind == 0:
                s.sendall(os.urandom(rng.randrange(1, 3000)))
            elif kind == 1:
                s.sendall(b"\x30\xff\xff\xff\x7f")                # 256 MB remaining length
            elif kind == 2:
                s.sendall(b"\x10\xff\xff\xff\xff\x01")            # five-byte remaining length
            elif kind == 3:
                s.sendall(rawmqtt.connect("half-%d" % i)[:rng.randrange(1, 12)])
            else:
                full = rawmqtt.connect("mid-%d" % i) + rawmqtt.publish("chaos/busy", b"x" * 500, qos=1, pid=1)
                s.sendall(full[:rng.randrange(len(full))])
            drain(s, rng.random())
        finally:
            (rst if rng.random() < 0.5 else socket.socket.close)(s)

    def a_bad_tls(self, rng, i):
        kind = rng.randrange(4)
        if kind < 2:
            # A certificate from an unknown CA, or none.
            try:
                r = self.tls(rng, 4, ("stranger", "none")[kind])
                try:
                    r.connect("bad-%d" % i, timeout=2)
                except (rawmqtt.Closed, TimeoutError, OSError, ssl.SSLError):
                    pass
                r.close()
            except (ssl.SSLError, OSError):
                pass
            return
        s = socket.create_connection(("127.0.0.1", self.tls_port), timeout=3)
        try:
            if kind == 2:
                # The start of a handshake, then silence or a hang-up.
                out = ssl.MemoryBIO()
                obj = self.ctx["good", rng.choice(("1.2", "1.3"))].wrap_bio(
                    ssl.MemoryBIO(), out, server_hostname="127.0.0.1")
                try:
                    obj.do_handshake()
                except ssl.SSLWantReadError:
                    pass
                hello = out.read()
                s.sendall(hello[:rng.randrange(1, len(hello) + 1)])
                # Sometimes past the listener's handshake_timeout (2 s).
                time.sleep(rng.random() * 3)
            else:
                # A finished handshake, then the connection ends right away or in the middle of a record.
                obj, out = bio_handshake(s, self.ctx["good", rng.choice(("1.2", "1.3"))])
                if rng.random() < 0.7:
                    obj.write(rawmqtt.connect("midrec-%d" % i) + rawmqtt.publish("chaos/r", b"y" * 3000))
                    rec = out.read()
                    s.sendall(rec[:rng.randrange(1, len(rec))])
        except (ssl.SSLError, OSError):
            pass
        finally:
            (rst if rng.random() < 0.5 else socket.socket.close)(s)

    def a_burst(self, rng, i):
        socks = []
        try:
            for _ in range(rng.randrange(10, MAX_CONN + 10)):
                try:
                    socks.append(socket.create_connection(("127.0.0.1", self.port), timeout=3))
                except OSError:
                    break
            for s in socks:
                try:
                    s.sendall(rawmqtt.connect("", version=4))
                except OSError:
                    pass
            time.sleep(rng.random())
        finally:
            for s in socks:
                (rst if rng.random() < 0.5 else socket.socket.close)(s)

    ACTIONS = [("a_session", 30), ("a_slow_reader", 6), ("a_flood", 6), ("a_connect_silence", 6),
               ("a_garbage", 14), ("a_bad_tls", 14), ("a_burst", 3)]

    def worker(self, seed, deadline):
        rng = random.Random(seed)
        names = [n for n, w in self.ACTIONS for _ in range(w)]
        i = 0
        while time.monotonic() < deadline and self.b.alive():
            i += 1
            name = rng.choice(names)
            try:
                getattr(self, name)(rng, seed * 100000 + i)
            except (OSError, TimeoutError, rawmqtt.Closed, ssl.SSLError, ConnectionError):
                # The broker may refuse or close any of these; only its health afterwards counts.
                pass
            except Exception as e:      # a bug in the driver itself
                self.errors.append("%s: %r" % (name, e))
            self.n += 1

    def run(self, seconds, threads):
        deadline = time.monotonic() + seconds
        ts = [threading.Thread(target=self.worker, args=(self.rng.randrange(1 << 30), deadline), daemon=True)
              for _ in range(threads)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(seconds + 60)
        return self.n


def fresh_round_trip(b, port, wrap=None, cid="fresh"):
    r = rawmqtt.RawClient(port, version=5, timeout=10)
    if wrap:
        r.sock = wrap(r.sock)
    try:
        r.connect(cid, timeout=10)
        r.send(rawmqtt.subscribe(1, [("fresh/%s" % cid, 1)], version=5))
        r.expect(rawmqtt.SUBACK, timeout=10)
        r.send(rawmqtt.publish("fresh/%s" % cid, b"hello", qos=1, pid=2, version=5))
        got = {}
        while len(got) < 2:
            p = r.recv(10)
            got[p.type] = p
        assert got[rawmqtt.PUBLISH].payload == b"hello"
        r.send(rawmqtt.disconnect(0, version=5))
    finally:
        r.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    p.dev = p.leaf(p.root, "dev", [(NameOID.COMMON_NAME, "dev")])
    p.other = p.ca("other")
    p.stranger = p.leaf(p.other, "stranger", [(NameOID.COMMON_NAME, "stranger")])
    return p


def chaos_broker(pki, tmp_path, session_expiry="5s", **kw):
    """The broker the chaos tests run against; kw goes to BrokerProcess (runtime, extra_args)."""
    extra = """
listeners.tcp.default.bind = "127.0.0.1:0"
listeners.tcp.default.max_connections = %d
mqtt.idle_timeout = 2s
mqtt.max_mqueue_len = 50
mqtt.max_inflight = 8
mqtt.session_expiry_interval = %s
""" % (MAX_CONN, session_expiry)
    return BrokerProcess(ssl_config(pki.server, pki.root, ssl_extra="handshake_timeout = 2s", extra=extra),
                         tmp_path=tmp_path, **kw)


def test_chaos_leaves_the_broker_healthy(pki, tmp_path):
    with chaos_broker(pki, tmp_path) as b:
        pid = b.pid
        listeners = socket_fds(pid)
        rss0 = rss_kb(pid)
        chaos = Chaos(b, pki, SEED)
        n = chaos.run(SECONDS, THREADS)
        assert not chaos.errors, chaos.errors[:5]
        assert b.alive(), "broker died:\n" + b.log()[-4000:]
        assert n > THREADS
        # Everyone has left: the sockets go within the idle/handshake timeouts.
        deadline = time.monotonic() + 30
        while socket_fds(pid) > listeners and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket_fds(pid) == listeners, "client sockets left open: %d, listeners %d" % (
            socket_fds(pid), listeners)
        fresh_round_trip(b, b.port)
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        fresh_round_trip(b, ssl_port(b), lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"), "fresh-tls")
        bad = [line for line in b.log_lines if any(w in line for w in BAD_LOG)]
        assert not bad, "\n".join(bad[:20])
        print("chaos: %d actions in %.0fs, RSS %d -> %d KB" % (n, SECONDS, rss0, rss_kb(pid)))


@pytest.mark.parametrize("listener", ["tcp", "ssl"])
def test_a_subscriber_that_never_reads_does_not_grow_the_broker(pki, tmp_path, listener):
    # Two subscribers to a busy topic stop reading; 2 x 80 MB are published to them. The broker
    # must queue (and drop) by max_mqueue_len or disconnect them, not buffer what they do not read.
    with chaos_broker(pki, tmp_path) as b:
        pid = b.pid
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key) if listener == "ssl" else None
        port = b.port if listener == "tcp" else ssl_port(b)
        slow = []
        for i in range(2):
            r = rawmqtt.RawClient.__new__(rawmqtt.RawClient)
            r.version, r.buf, r.eof = 4, bytearray(), False
            r.sock = tight_socket(port, ctx)
            r.connect("slow-%s-%d" % (listener, i), timeout=10)
            r.send(rawmqtt.subscribe(1, [("busy/slow", 0)]))
            r.expect(rawmqtt.SUBACK, timeout=10)
            slow.append(r)
        rss0 = rss_kb(pid)
        pub = rawmqtt.RawClient(b.port, timeout=10)
        pub.connect("slow-feeder-%s" % listener, timeout=10)
        payload = b"p" * 20000
        grew = 0
        for n in range(4000):
            pub.send(rawmqtt.publish("busy/slow", payload))
            if n % 200 == 0:
                grew = max(grew, rss_kb(pid) - rss0)
        pub.send(rawmqtt.publish("busy/slow", b"last"))
        assert pub.is_open(timeout=10), "the publisher was cut off"
        grew = max(grew, rss_kb(pid) - rss0)
        assert grew < 48 * 1024, "broker grew by %d KB for subscribers that do not read" % grew
        # Once they read again they are either served, newest messages included, or were
        # disconnected by the broker's limits; never left hanging.
        for r in slow:
            try:
                while r.recv(10).payload != b"last":
                    pass
            except rawmqtt.Closed:
                pass
            r.close()
        pub.close()
        assert b.alive()
        fresh_round_trip(b, b.port, cid="after-slow-%s" % listener)


@pytest.mark.parametrize("listener", ["tcp", "ssl"])
def test_a_client_disconnected_while_not_reading_loses_its_socket(pki, tmp_path, listener):
    # The broker ends a subscriber that stopped reading (keepalive) while its output is stuck in
    # a full socket: the socket must go too, not wait forever for the peer to read.
    with chaos_broker(pki, tmp_path) as b:
        pid = b.pid
        base = socket_fds(pid)
        if listener == "ssl":
            s = tight_socket(ssl_port(b), client_context(pki.root.crt, pki.dev.chain, pki.dev.key))
        else:
            s = tight_socket(b.port)
        s.sendall(rawmqtt.connect("stuck-%s" % listener, keepalive=1))
        s.sendall(rawmqtt.subscribe(1, [("busy/stuck", 0)]))
        time.sleep(0.5)
        pub = rawmqtt.RawClient(b.port, timeout=10)
        pub.connect("stuck-feeder-%s" % listener, timeout=10)
        for _ in range(300):
            pub.send(rawmqtt.publish("busy/stuck", b"s" * 20000))
        pub.send(rawmqtt.disconnect())
        pub.close()
        b.wait_log_about("stuck-%s" % listener, ["disconnected", "keepalive"], timeout=20)
        deadline = time.monotonic() + 30
        while socket_fds(pid) > base and time.monotonic() < deadline:
            time.sleep(0.2)
        assert socket_fds(pid) == base, "the stuck client's socket is still open in the broker"
        s.close()
        assert b.alive()


@pytest.mark.parametrize("listener", ["tcp", "ssl"])
def test_out_of_descriptors_pauses_accepting_without_flooding_the_log(pki, tmp_path, listener):
    # With its descriptor limit cut to a few past what it has open, the broker runs out while
    # clients keep arriving: it must say so briefly, keep serving, and accept again afterwards.
    b = chaos_broker(pki, tmp_path)
    socks = []
    try:
        pid = b.pid
        used = len(os.listdir("/proc/%d/fd" % pid))
        limit = used + 8
        soft, hard = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, hard))
        port = b.port if listener == "tcp" else ssl_port(b)
        mark = b.mark()
        t0 = time.monotonic()
        for _ in range(30):
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=10))
        b.wait_log("accept", timeout=10, start=mark)
        time.sleep(3)
        assert b.alive()
        lines = [x for x in b.log_lines[mark:] if "accept" in x]
        # A pause between tries, not a line per pending connection (asyncio's create_server wrote
        # thousands a second): at most a few a second.
        assert len(lines) <= 15 * (time.monotonic() - t0), \
            "%d lines about failed accepts, e.g. %s" % (len(lines), lines[:3])
        for s in socks:
            s.close()
        socks = []
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (soft, hard))
        deadline = time.monotonic() + 30
        while True:
            try:
                fresh_round_trip(b, b.port, cid="after-emfile-%s" % listener)
                break
            except (OSError, TimeoutError, rawmqtt.Closed):
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        assert not [x for x in b.log_lines if any(w in x for w in BAD_LOG[:4])]
    finally:
        for s in socks:
            s.close()
        b.stop()


def test_a_qos1_publisher_that_never_reads_its_acknowledgements_is_held_back(pki, tmp_path):
    # 5 million QoS 1 PUBLISHes, none of the PUBACKs read: the broker must stop reading from this
    # client (its sends block) or disconnect it, not pile up 20 MB of PUBACKs.
    with chaos_broker(pki, tmp_path) as b:
        pid = b.pid
        rss0 = rss_kb(pid)
        s = tight_socket(b.port)
        s.sendall(rawmqtt.connect("deaf-publisher"))
        s.settimeout(3)
        batch = b"".join(rawmqtt.publish("deaf/t", b"", qos=1, pid=i + 1) for i in range(2000))
        held = False
        try:
            for _ in range(2500):
                s.sendall(batch)
        except (socket.timeout, OSError):
            held = True
        grew = rss_kb(pid) - rss0
        rst(s)
        assert held, "the broker read 5 million PUBLISHes without their PUBACKs being read"
        assert grew < 12 * 1024, "broker grew by %d KB of unread acknowledgements" % grew
        assert b.alive()
        fresh_round_trip(b, b.port, cid="after-deaf")


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_a_tls_subscriber_that_pauses_reading_gets_an_intact_stream(pki, tmp_path, runtime):
    # ~6 MB of QoS 0 messages for a TLS subscriber that reads nothing until all are published:
    # the kernel's socket buffers (4 MB on a default Linux) fill, the broker's TLS writes find the
    # socket full and the rest queues behind them (max_packet_size 4 MB lifts the output limit).
    # On MicroPython, mbedTLS holds the record it could not send and the queue grew under it;
    # the retry reported the grown queue as sent and the subscriber got a corrupt stream after
    # ~4000 messages. Every message must arrive whole and in order.
    extra = "mqtt.max_packet_size = 4MB\nmqtt.max_mqueue_len = 100000\n"
    b = BrokerProcess(ssl_config(pki.server, pki.root, extra=extra), runtime=runtime, tmp_path=tmp_path)
    n = 6000
    try:
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        sub = rawmqtt.RawClient(ssl_port(b), version=4, timeout=20)
        sub.sock = ctx.wrap_socket(sub.sock, server_hostname="127.0.0.1")
        sub.connect("paused-sub")
        sub.send(rawmqtt.subscribe(1, [("paused/t", 0)]))
        sub.expect(rawmqtt.SUBACK)
        pub = rawmqtt.RawClient(b.port, version=4, timeout=20)
        pub.connect("paused-pub")
        for i in range(n):
            pub.send(rawmqtt.publish("paused/t", b"%08d" % i + b"x" * (i * 7919 % 1900 + 1)))
        pub.send(rawmqtt.pingreq())
        pub.expect(rawmqtt.PINGRESP, timeout=60)
        for i in range(n):
            p = sub.recv(30)
            assert p.type == rawmqtt.PUBLISH, "message %d: got %r" % (i, p)
            assert p.body == rawmqtt.s("paused/t") + b"%08d" % i + b"x" * (i * 7919 % 1900 + 1), (
                "message %d arrived corrupt: %r" % (i, p.body[:40]))
        assert sub.is_open()
        pub.close()
        sub.close()
        assert b.alive()
    finally:
        b.stop()


def _mp_heap_used(b, start=0):
    """`used` and `links` of the MicroPython broker's latest heap report (--heap-report)."""
    line = b.wait_log("heap report", timeout=10, start=start)
    for x in b.log_lines[start:]:
        if "heap report" in x:
            line = x
    f = dict(p.split("=") for p in line.split() if "=" in p)
    return int(f["used"]), int(f["links"])


def test_micropython_chaos_gives_back_its_sockets_and_heap(pki, tmp_path):
    # The chaos above against the MicroPython port with heap reports on (in both test passes:
    # the runtime is fixed here). Once every client has left and the short session expiry has
    # passed, the heap in use must come back to near where it was before: what stays are the
    # few small retained messages and wills the mix leaves (some 30 KB). A link, task, TLS
    # context or session kept per connection (~1 KB and up) over the hundreds of connections
    # would not fit in the 256 KB allowed.
    b = chaos_broker(pki, tmp_path, session_expiry="3s", runtime="micropython", extra_args=["--heap-report", "1"])
    try:
        pid = b.pid
        listeners = socket_fds(pid)
        before, _ = _mp_heap_used(b)
        chaos = Chaos(b, pki, SEED + 1)
        n = chaos.run(SECONDS, THREADS)
        assert not chaos.errors, chaos.errors[:5]
        assert b.alive(), "broker died:\n" + b.log()[-4000:]
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            used, links = _mp_heap_used(b, b.mark() - 1)
            if links == 0 and socket_fds(pid) == listeners and used < before + 256 * 1024:
                break
            time.sleep(1)
        assert socket_fds(pid) == listeners, "client sockets left open: %d, listeners %d" % (
            socket_fds(pid), listeners)
        assert links == 0, "links left: %d" % links
        print("micropython chaos: %d actions, heap used %d -> %d" % (n, before, used))
        assert used < before + 256 * 1024, "heap used %d before the chaos, %d after everyone left" % (before, used)
        fresh_round_trip(b, b.port, cid="mp-fresh")
        ctx = client_context(pki.root.crt, pki.dev.chain, pki.dev.key)
        fresh_round_trip(b, ssl_port(b), lambda s: ctx.wrap_socket(s, server_hostname="127.0.0.1"), "mp-fresh-tls")
        bad = [line for line in b.log_lines if any(w in line for w in BAD_LOG)]
        assert not bad, "\n".join(bad[:20])
    finally:
        b.stop()
