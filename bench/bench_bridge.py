"""Bridge figures (issue 14), run by `make bench`:

  - bridged QoS 1 throughput: loadgen publisher -> gatemq -> bridge -> upstream Mosquitto ->
    loadgen subscriber, against Mosquitto bridging to Mosquitto (`connection`, `topic bench/# out 1`)
    in the same run (target >= 0.5x), plain TCP both;
  - drain rate after an outage: 100,000 QoS 1 messages queued while the upstream is down, then
    the upstream starts: messages/s at a subscriber upstream, without and with persistence
    (sync = commit);
  - MicroPython: the heap cost of one mutual-TLS bridge and the board budget
    (tests/host/test_bridge_board.py's printed figures).

    .venv/bin/python bench/bench_bridge.py [--quick]
"""
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run as R         # noqa: E402
import loadgen as L     # noqa: E402

N_DRAIN = 100000


def mosquitto(workdir, name, port, extra=()):
    conf = os.path.join(workdir, name + ".conf")
    text = R.ALL["mosquitto"].config(port, None, None).replace("max_queued_messages 1000",
                                                                 "max_queued_messages 200000")
    with open(conf, "w") as f:
        f.write(text + "\n".join(extra) + "\n")
    logf = open(os.path.join(workdir, name + ".log"), "ab")
    p = R.spawn([R.ALL["mosquitto"].exe(), "-c", conf], stdin=subprocess.DEVNULL, stdout=logf, stderr=logf)
    logf.close()
    deadline = time.monotonic() + 10
    while True:
        try:
            R.mqtt_ping(port)
            return p
        except (OSError, ConnectionError):
            if p.poll() is not None or time.monotonic() > deadline:
                raise R.BenchError("mosquitto %s did not start" % name)
            time.sleep(0.05)


def bridge_lines(up_port, extra=""):
    return ["bridges.mqtt.up {", '  server = "mqtt://127.0.0.1:%d"' % up_port, "  backoff_max = 5s",
            '  forwards = [ { local_topic = "bench/#", qos = 1 } ]', "  %s" % extra, "}"]


def wait_log(path, text, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open(path, errors="replace") as f:
            for line in f:
                if text in line:
                    return line
        time.sleep(0.05)
    raise R.BenchError("no %r in %s" % (text, path))


def flow(pub_port, sub_port, o):
    deadline = o.warmup + o.seconds + 30
    sub = R.Child("sub", "--port", sub_port, "--qos", 1, "--warmup", o.warmup, "--seconds", o.seconds,
                  "--deadline", deadline)
    pub = None
    try:
        sub.expect_ready()
        pub = R.Child("pub", "--port", pub_port, "--qos", 1, "--window", 32, "--deadline", deadline)
        pub.expect_ready()
        return sub.result(deadline + 10)["rate"]
    finally:
        sub.stop()
        if pub:
            pub.stop()


def throughput(workdir, o):
    # -> {"gatemq": rate, "mosquitto": rate}, the best of o.repeat runs each
    out = {}
    for who in ("gatemq", "mosquitto"):
        rates = []
        for _ in range(o.repeat):
            d = tempfile.mkdtemp(prefix=who + "-", dir=workdir)
            up_port = R.free_port()
            up = mosquitto(d, "upstream", up_port)
            try:
                if who == "gatemq":
                    g = R.ALL["gatemq"].start(d, extra=bridge_lines(up_port))
                    wait_log(g.logpath, "bridge mqtt:up: connected")
                    port, stop = g.port, g.stop
                else:
                    port = R.free_port()
                    m = mosquitto(d, "bridge", port, ["connection up", "address 127.0.0.1:%d" % up_port,
                                                      "topic bench/# out 1", "cleansession true"])
                    stop = lambda: R.stop_proc(m)  # noqa: E731
                try:
                    rates.append(flow(port, up_port, o))
                finally:
                    stop()
            finally:
                R.stop_proc(up)
        out[who] = max(rates)
    return out


def publish_n(port, n, window=1000):
    # n QoS 1 PUBLISHes on bench/t, at most `window` unacknowledged; returns once all are PUBACKed
    s = L.open_conn(port, "drain-pub")
    s.settimeout(30)
    pkts = [L.publish_packet("bench/t", b"x" * 32, 1, pid) for pid in range(1, 65536)]
    sent = acked = 0
    pend = b""
    while acked < n:
        k = min(window - (sent - acked), n - sent)
        if k > 0:
            s.sendall(b"".join(pkts[(sent + j) % 65535] for j in range(k)))
            sent += k
        data = s.recv(65536)
        if not data:
            raise R.BenchError("gatemq closed the publisher")
        pend += data
        acked += len(pend) // 4
        pend = pend[len(pend) // 4 * 4:]
    s.close()


def drain(workdir, persist):
    # -> (messages received, seconds from the first to the last, seconds from the upstream's start)
    d = tempfile.mkdtemp(prefix="drain-", dir=workdir)
    up_port = R.free_port()
    extra = bridge_lines(up_port, "queue { max_messages = %d }" % N_DRAIN)
    if persist:
        extra += ["persistence.enable = true", "persistence.sync = commit", 'node.data_dir = "%s/data"' % d]
    g = R.ALL["gatemq"].start(d, extra=extra)
    try:
        wait_log(g.logpath, "bridge mqtt:up: cannot connect")
        publish_n(g.port, N_DRAIN)
        t0 = time.monotonic()
        up = mosquitto(d, "upstream", up_port)
        try:
            s = L.open_conn(up_port, "drain-sub")
            s.sendall(L.subscribe_packet(1, "bench/#", 1))
            L.read_packet(s)
            s.settimeout(15)
            got = 0
            first = last = None
            buf = bytearray()
            while got < N_DRAIN:
                try:
                    data = s.recv(1 << 20)
                except OSError:
                    break
                if not data:
                    break
                now = time.monotonic()
                first = first or now
                last = now
                buf += data
                acks = []
                i = 0
                while True:
                    if len(buf) - i < 2:
                        break
                    mult, ln, j = 1, 0, i + 1
                    while True:
                        if j >= len(buf):
                            ln = None
                            break
                        c = buf[j]
                        ln += (c & 0x7F) * mult
                        mult *= 128
                        j += 1
                        if c < 0x80:
                            break
                    if ln is None or j + ln > len(buf):
                        break
                    if buf[i] >> 4 == 3:
                        tl = (buf[j] << 8) | buf[j + 1]
                        acks.append(b"\x40\x02" + bytes(buf[j + 2 + tl:j + 4 + tl]))
                        got += 1
                    i = j + ln
                del buf[:i]
                if acks:
                    s.sendall(b"".join(acks))
            s.close()
            return got, (last - first) if first else None, (last - t0) if last else None
        finally:
            R.stop_proc(up)
    finally:
        g.stop()


def board():
    # the MicroPython figures, from the test that checks the budget
    p = subprocess.run([R.VENV_PY, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
                        os.path.join(R.ROOT, "tests", "host", "test_bridge_board.py")],
                       capture_output=True, text=True, timeout=600, cwd=R.ROOT)
    lines = [l for l in p.stdout.splitlines() if l.startswith("heap used") or l.startswith("board:")
             or re.search(r"\d+ (passed|failed)", l)]
    return lines or ["test_bridge_board.py: " + (p.stdout + p.stderr).strip()[-300:]]


def main():
    quick = "--quick" in sys.argv
    o = R.Opts(type("A", (), {"seconds": None, "quick": quick, "repeat": None})())
    if R.ALL["mosquitto"].missing():
        print("bridge: skipped, " + R.ALL["mosquitto"].missing())
        return 0
    workdir = tempfile.mkdtemp(prefix="gatemq-bench-bridge-")
    try:
        print("bridge:")
        t = throughput(workdir, o)
        print("  QoS1 bridged pub -> broker -> upstream Mosquitto -> sub: gatemq %.0f msg/s, Mosquitto's bridge "
              "%.0f msg/s: %.2fx (target >= 0.5x: %s)" % (t["gatemq"], t["mosquitto"], t["gatemq"] / t["mosquitto"],
                                                         "met" if t["gatemq"] >= 0.5 * t["mosquitto"] else "NOT met"))
        for persist in (False, True):
            got, span, total = drain(workdir, persist)
            what = "with persistence (sync = commit)" if persist else "without persistence"
            if got < N_DRAIN or not span:
                print("  drain of %d queued QoS1, %s: only %d arrived" % (N_DRAIN, what, got))
            else:
                print("  drain of %d queued QoS1 after an outage, %s: %.0f msg/s (%.2f s; %.2f s from the "
                      "upstream's start)" % (N_DRAIN, what, N_DRAIN / span, span, total))
        for line in board():
            print("  micropython: " + line)
    finally:
        R.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
