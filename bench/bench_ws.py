"""MQTT over WebSocket, QoS 0 1->1: gatemq's ws listener against Mosquitto's websockets listener
(Debian's build has libwebsockets) in the same run, and gatemq's plain tcp listener for scale.

One publisher sends N QoS 0 PUBLISH packets, each in its own masked binary frame as browser
clients send them, as fast as the socket takes them; one subscriber (another process) counts
what arrives. Printed: messages per second at the subscriber (first to last message), how many
arrived, and gatemq / mosquitto as a ratio.

    .venv/bin/python bench/bench_ws.py [-n 50000] [--payload 64]
"""
import argparse
import collections
import multiprocessing
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from gatemq import codec, websocket as W  # noqa: E402
from loadgen import connect_packet, publish_packet, subscribe_packet  # noqa: E402

PY = os.path.join(ROOT, ".venv", "bin", "python")
MASK = b"\x5a\x17\xc3\x08"
TOPIC = "bench/ws"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d never opened" % port)


class Conn:
    """A minimal MQTT-over-WebSocket client: masked frames out, unmasked frames in."""

    def __init__(self, port, ws):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.ws = ws
        self.buf = b""
        self.reader = codec.Reader()      # frames self.buf's MQTT packets into self.ready
        self.ready = collections.deque()
        if ws:
            self.s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
                           b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
            while b"\r\n\r\n" not in self.buf:
                self.buf += self.s.recv(4096)
            head, self.buf = self.buf.split(b"\r\n\r\n", 1)
            assert head.startswith(b"HTTP/1.1 101"), head
        self.raw = self.buf
        self.buf = b""

    def wrap(self, packet):
        return W.frame(W.BINARY, packet, mask=MASK) if self.ws else packet

    def send(self, packet):
        self.s.sendall(self.wrap(packet))

    def _fill(self):
        data = self.raw or self.s.recv(262144)
        self.raw = b""
        if not data:
            raise EOFError
        if not self.ws:
            self.buf += data
            return
        self.pend = getattr(self, "pend", b"") + data
        p = self.pend
        i = 0
        out = []
        while len(p) - i >= 2:
            n = p[i + 1] & 0x7F
            j = i + 2
            if n == 126:
                if len(p) - j < 2:
                    break
                n = int.from_bytes(p[j:j + 2], "big")
                j += 2
            elif n == 127:
                if len(p) - j < 8:
                    break
                n = int.from_bytes(p[j:j + 8], "big")
                j += 8
            if len(p) - j < n:
                break
            if p[i] & 0x0F in (1, 2, 0):
                out.append(p[j:j + n])
            i = j + n
        self.pend = p[i:]
        self.buf += b"".join(out)

    def packets(self):
        """Yields (first byte, body) of whole MQTT packets, reading as needed."""
        while True:
            while self.ready:
                yield self.ready.popleft()
            self._fill()
            self.ready.extend(self.reader.feed(self.buf))
            self.buf = b""

    def expect(self, kind):
        for first, body in self.packets():
            if first >> 4 == kind:
                return body


def subscriber(port, ws, n, ready, result):
    c = Conn(port, ws)
    c.send(connect_packet("bench-sub"))
    c.expect(2)
    c.send(subscribe_packet(1, TOPIC, 0))
    c.expect(9)
    ready.set()
    got = 0
    t0 = t1 = None
    c.s.settimeout(3)
    try:
        for first, _ in c.packets():
            if first >> 4 == 3:
                got += 1
                t1 = time.monotonic()
                if t0 is None:
                    t0 = t1
                if got >= n:
                    break
    except (socket.timeout, EOFError):
        pass
    result.put((got, (t1 - t0) if t0 and t1 and t1 > t0 else None))


def run_one(port, ws, n, payload):
    ctx = multiprocessing.get_context("fork")
    ready = ctx.Event()
    result = ctx.Queue()
    p = ctx.Process(target=subscriber, args=(port, ws, n, ready, result))
    p.start()
    assert ready.wait(10), "subscriber did not subscribe"
    c = Conn(port, ws)
    c.send(connect_packet("bench-pub"))
    c.expect(2)
    frame = c.wrap(publish_packet(TOPIC, payload))
    batch = frame * 200
    for _ in range(n // 200):
        c.s.sendall(batch)
    c.s.sendall(frame * (n % 200))
    c.send(b"\xc0\x00")      # PINGREQ: its PINGRESP comes after every publish was read
    c.expect(13)
    got, secs = result.get(timeout=60)
    p.join(10)
    c.s.close()
    return got, (got / secs if secs else 0.0)


def start_gatemq(tmp):
    tcp, ws = free_port(), free_port()
    path = os.path.join(tmp, "gatemq.conf")
    with open(path, "w") as f:
        f.write('dashboard.enable = false\nlisteners.tcp.default.bind = "127.0.0.1:%d"\n'
                'listeners.ws.default.bind = "127.0.0.1:%d"\nmqtt.max_mqueue_len = 100000\n'
                'sys_topics.sys_msg_interval = disabled\n' % (tcp, ws))
    proc = subprocess.Popen([PY, "-m", "gatemq.cpython", "--config", path, "--log-level", "warning"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_port(ws)
    return proc, tcp, ws


def start_mosquitto(tmp):
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.path.exists(exe):
        return None, None, None
    tcp, ws = free_port(), free_port()
    path = os.path.join(tmp, "mosquitto.conf")
    with open(path, "w") as f:
        # Mosquitto 2.0.11 exits ("Unable to start any listening sockets") with a websockets
        # listener alone: a plain one beside it. Its websockets listener binds every address.
        f.write("listener %d 127.0.0.1\nlistener %d\nprotocol websockets\nallow_anonymous true\n"
                "max_queued_messages 100000\npersistence false\n" % (tcp, ws))
    proc = subprocess.Popen([exe, "-c", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(ws, 5)
    except RuntimeError:
        proc.kill()
        return None, None, None
    return proc, tcp, ws


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=50000)
    ap.add_argument("--payload", type=int, default=64)
    a = ap.parse_args()
    payload = b"x" * a.payload
    tmp = tempfile.mkdtemp(prefix="gatemq-bench-ws-")
    rows = {}
    for name, start in (("gatemq", start_gatemq), ("mosquitto", start_mosquitto)):
        proc, tcp, ws = start(tmp)
        if proc is None:
            print("%-10s websockets listener not available: row skipped" % name)
            continue
        try:
            for kind, port, is_ws in (("ws", ws, True), ("tcp", tcp, False)):
                rows[(name, kind)] = run_one(port, is_ws, a.n, payload)
        finally:
            proc.terminate()
            proc.wait(10)
    print("QoS 0 1->1, %d messages of %d bytes" % (a.n, a.payload))
    print("%-10s %-4s %12s %10s" % ("broker", "via", "msg/s", "arrived"))
    for (name, kind), (got, rate) in sorted(rows.items()):
        print("%-10s %-4s %12.0f %10d" % (name, kind, rate, got))
    for kind in ("ws", "tcp"):
        g, m = rows.get(("gatemq", kind)), rows.get(("mosquitto", kind))
        if g and m and m[1]:
            print("gatemq/mosquitto over %s: %.2f" % (kind, g[1] / m[1]))


if __name__ == "__main__":
    main()
