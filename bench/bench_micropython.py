"""The MicroPython port on the unix port, beside the CPython port in the same run.

Reports:
  heap bytes per idle connection, plain, WebSocket and mutual TLS (MicroPython: gc.mem_free()
      deltas after a collection, from the port's --heap-report lines; CPython: RSS deltas, for
      scale only)
  msgs/s 1 -> 1 at QoS 0 (pipelined) and QoS 1 (a window of unacknowledged PUBLISHes)
  handshakes/s: mutual-TLS connect + CONNECT/CONNACK, one after another
  event-loop stall: the longest PINGREQ -> PINGRESP round trip of a plain client while
      handshakes run (the handshake's public-key work blocks the loop)

    .venv/bin/python bench/bench_micropython.py [--seconds 3] [--json]
Needs `make firmware-files` first (the MicroPython port runs from build/mpy/lib).
"""
import argparse
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from loadgen import DISCONNECT, mqtt_connect, publish_packet, read_packet, subscribe_packet  # noqa: E402

VENV = os.path.join(ROOT, ".venv", "bin")
MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")


def make_pki(d):
    from gatemq.certs import demo
    return demo.ensure(d)


def config(pki):
    # The demo's listeners (gatemq's --demo) on ports of their own.
    from gatemq.cpython.cli import demo_listeners
    return demo_listeners(pki["dir"], "127.0.0.1:0", "127.0.0.1:0") + """mqtt.max_inflight = 64
listeners.ws.default.bind = "127.0.0.1:0"
sys_topics.sys_msg_interval = disabled
log.level = warning
"""


class Broker:
    def __init__(self, runtime, conf_path):
        self.runtime = runtime
        if runtime == "micropython":
            cmd = [os.path.join(VENV, "micropython"), "-X", "heapsize=8M", "-m", "gatemq.micropython",
                   "--config", conf_path, "--heap-report", "0.3", "--log-level", "info"]
            env = dict(os.environ, MICROPYPATH=MPY_LIB)
        else:
            cmd = [os.path.join(VENV, "python"), "-m", "gatemq.cpython", "--config", conf_path,
                   "--log-level", "info"]
            env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ports = {}
        deadline = time.monotonic() + 20
        while len(self.ports) < 3:
            for line in list(self.lines):
                m = re.search(r"listener (\w+):\w+ listening on .*:(\d+)$", line)
                if m:
                    self.ports[m.group(1)] = int(m.group(2))
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("%s broker did not start:\n%s" % (runtime, "\n".join(self.lines)))
            time.sleep(0.05)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def heap_used(self):
        """Python heap in use after a collection (MicroPython), or RSS bytes (CPython)."""
        if self.runtime == "micropython":
            n = len(self.lines)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline:
                fresh = [x for x in self.lines[n:] if "heap report" in x]
                if len(fresh) >= 2:
                    return int(re.search(r"used=(\d+)", fresh[-1]).group(1))
                time.sleep(0.05)
            raise RuntimeError("no heap report")
        time.sleep(0.5)
        with open("/proc/%d/status" % self.proc.pid) as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) * 1024

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def tls_ctx(pki, dev="device1"):
    c = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    c.load_verify_locations(pki["ca"])
    c.load_cert_chain(pki["clients"][dev]["crt"], pki["clients"][dev]["key"])
    return c


def connect(port, cid, ctx=None):
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if ctx is not None:
        s = ctx.wrap_socket(s, server_hostname="localhost")
    mqtt_connect(s, cid)
    return s


def connect_ws(port, cid, ctx=None):
    # MQTT over WebSocket: the upgrade, then CONNECT in one masked binary frame; CONNACK is read
    # from the server's unmasked frame (2 bytes of header, 4 of CONNACK).
    from loadgen import connect_packet
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(b"GET /mqtt HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
              b"Sec-WebSocket-Protocol: mqtt\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(1024)
    if not head.startswith(b"HTTP/1.1 101"):
        raise ConnectionError("no WebSocket upgrade: %r" % head[:40])
    pkt = connect_packet(cid)
    mask = b"\x01\x02\x03\x04"
    s.sendall(bytes((0x82, 0x80 | len(pkt))) + mask + bytes(c ^ mask[i % 4] for i, c in enumerate(pkt)))
    got = b""
    while len(got) < 6:
        got += s.recv(6 - len(got))
    if got[2] != 0x20:
        raise ConnectionError("expected CONNACK over ws, got %r" % got)
    return s


def idle_cost(b, port, n, ctx=None, connect=connect):
    before = b.heap_used()
    socks = [connect(port, "idle-%d" % i, ctx) for i in range(n)]
    after = b.heap_used()
    for s in socks:
        s.close()
    return (after - before) / n


def flow(b, qos, seconds, payload=b"x" * 64, window=32):
    sub = connect(b.ports["tcp"], "flow-sub")
    sub.sendall(subscribe_packet(1, "bench/flow", qos))
    read_packet(sub)  # SUBACK
    pub = connect(b.ports["tcp"], "flow-pub")
    got = [0]
    stop = threading.Event()

    def receive():
        sub.settimeout(2)
        while not stop.is_set():
            try:
                first, body = read_packet(sub)
            except (OSError, ConnectionError):
                return
            if first >> 4 == 3:
                got[0] += 1
                if qos:
                    tl = (body[0] << 8) | body[1]
                    sub.sendall(bytes((0x40, 2)) + body[2 + tl:4 + tl])

    t = threading.Thread(target=receive, daemon=True)
    t.start()
    pkt0 = publish_packet("bench/flow", payload, 0)
    t0 = time.monotonic()
    end = t0 + seconds
    pid = 0
    if qos == 0:
        burst = pkt0 * 50
        sent = 0
        while time.monotonic() < end:
            pub.sendall(burst)
            sent += 50
            # Stay at most a few bursts ahead of the subscriber: a QoS 0 flood past what the
            # broker can deliver measures dropped messages, not throughput.
            while sent - got[0] > 500 and time.monotonic() < end:
                time.sleep(0.001)
    else:
        inflight = 0
        pub.settimeout(5)
        while time.monotonic() < end:
            while inflight < window:
                pid = pid % 65535 + 1
                pub.sendall(publish_packet("bench/flow", payload, 1, pid))
                inflight += 1
            first, _ = read_packet(pub)
            if first >> 4 == 4:
                inflight -= 1
    # Count what arrives within a short grace after the publisher stops.
    time.sleep(0.5)
    elapsed = time.monotonic() - t0
    stop.set()
    rate = got[0] / elapsed
    for s in (pub, sub):
        try:
            s.sendall(DISCONNECT)
            s.close()
        except OSError:
            pass
    return rate


def handshakes(b, pki, n):
    ctx = tls_ctx(pki)
    stall = [0.0]
    stop = threading.Event()

    def ping():
        s = connect(b.ports["tcp"], "pinger")
        while not stop.is_set():
            t = time.monotonic()
            s.sendall(b"\xc0\x00")
            read_packet(s)
            stall[0] = max(stall[0], time.monotonic() - t)
            time.sleep(0.005)
        s.close()

    pt = threading.Thread(target=ping, daemon=True)
    pt.start()
    time.sleep(0.2)
    t0 = time.monotonic()
    for i in range(n):
        s = connect(b.ports["ssl"], "hs-%d" % i, ctx)
        s.sendall(DISCONNECT)
        s.close()
    rate = n / (time.monotonic() - t0)
    stop.set()
    pt.join(2)
    return rate, stall[0]


def run(runtime, pki, conf, seconds):
    b = Broker(runtime, conf)
    try:
        r = {}
        r["idle_plain_bytes"] = idle_cost(b, b.ports["tcp"], 50)
        connect_ws(b.ports["ws"], "warm-up").close()   # the first one loads the WebSocket code
        r["idle_ws_bytes"] = idle_cost(b, b.ports["ws"], 50, connect=connect_ws)
        r["idle_tls_bytes"] = idle_cost(b, b.ports["ssl"], 10, tls_ctx(pki))
        r["qos0_msgs_s"] = flow(b, 0, seconds)
        r["qos1_msgs_s"] = flow(b, 1, seconds)
        r["handshakes_s"], r["stall_ms"] = handshakes(b, pki, 20)
        r["stall_ms"] *= 1000
        return r
    finally:
        b.stop()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seconds", type=float, default=3.0, help="length of each throughput run")
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    a = p.parse_args(argv)
    if not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "__main__.mpy")):
        sys.exit("run `make firmware-files` first")
    with tempfile.TemporaryDirectory(prefix="gatemq-bench-mp-") as d:
        pki = make_pki(os.path.join(d, "pki"))
        conf = os.path.join(d, "gatemq.conf")
        with open(conf, "w") as f:
            f.write(config(pki))
        res = {rt: run(rt, pki, conf, a.seconds) for rt in ("micropython", "cpython")}
    if a.json:
        print(json.dumps(res, indent=2))
        return
    rows = [("idle plain connection", "heap bytes (MP) / RSS bytes (CPython)", "idle_plain_bytes"),
            ("idle WebSocket connection", "heap bytes (MP) / RSS bytes (CPython)", "idle_ws_bytes"),
            ("idle mutual-TLS connection", "heap bytes (MP) / RSS bytes (CPython)", "idle_tls_bytes"),
            ("QoS 0, 1 -> 1", "msgs/s", "qos0_msgs_s"),
            ("QoS 1, 1 -> 1", "msgs/s", "qos1_msgs_s"),
            ("mutual-TLS connects", "handshakes/s", "handshakes_s"),
            ("loop stall during handshakes", "ms (max ping)", "stall_ms")]
    print("%-30s %-40s %12s %12s" % ("", "unit", "micropython", "cpython"))
    for name, unit, key in rows:
        print("%-30s %-40s %12.0f %12.0f" % (name, unit, res["micropython"][key], res["cpython"][key]))


if __name__ == "__main__":
    main()
