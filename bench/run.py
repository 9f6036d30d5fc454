"""gatemq benchmark: the same load against gatemq, Mosquitto and amqtt in one run.

Each scenario starts a fresh broker on a free loopback port, drives it with
bench/loadgen.py (one process per role) and stops it again.  Figures are
printed beside the peer brokers' figures from the same run as ratios, with
the issue targets next to them; docs/bench.md explains how to read them.

    .venv/bin/python bench/run.py [--only gatemq,mosquitto] [--quick] [--seconds N]
"""

import argparse
import json
import os
import queue
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
VENV_PY = os.path.join(ROOT, ".venv", "bin", "python")
BENCH_VENV = os.path.join(ROOT, "build", "bench-venv")
LOADGEN = os.path.join(HERE, "loadgen.py")
sys.path.insert(0, HERE)

HEAP_LINE = re.compile(r"heap \w+: free=\d+ used=(\d+) lowest_free=\d+ links=(\d+)")
BROKERS = ("gatemq", "mosquitto", "amqtt", "micropython")

# Every process this run starts, so that nothing outlives it.
_procs = []


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS for pid %d" % pid)


def spawn(argv, **kw):
    p = subprocess.Popen(argv, **kw)
    _procs.append(p)
    return p


def stop_proc(p, grace=5.0):
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)
    if p in _procs:
        _procs.remove(p)


def stop_all():
    for p in list(_procs):
        stop_proc(p, 2.0)


# --- load generator children --------------------------------------------------

class Child:
    """A loadgen process: JSON lines out, stop by closing its stdin."""

    def __init__(self, *args):
        self.p = spawn([sys.executable, LOADGEN] + [str(a) for a in args],
                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for raw in self.p.stdout:
            self.lines.put(raw.decode().strip())
        self.lines.put(None)

    def line(self, timeout):
        try:
            got = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise BenchError("load generator gave no answer within %.0f s" % timeout)
        if got is None:
            err = self.p.stderr.read().decode(errors="replace").strip().splitlines()
            raise BenchError("load generator exited: " + (err[-1] if err else "no output"))
        return got

    def result(self, timeout):
        obj = json.loads(self.line(timeout))
        if "error" in obj and not obj.get("msgs") and not obj.get("ok"):
            raise BenchError(obj["error"])
        return obj

    def expect_ready(self, timeout=60):
        got = self.line(timeout)
        if got != "READY":
            obj = json.loads(got)
            raise BenchError(obj.get("error", got))

    def stop(self):
        try:
            self.p.stdin.close()
        except OSError:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            pass
        stop_proc(self.p)


class BenchError(Exception):
    pass


# --- brokers -----------------------------------------------------------------------

def mqtt_ping(port, tls_ctx=None, timeout=2.0):
    """One CONNECT/CONNACK round trip: the broker is serving."""
    import loadgen
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s = tls_ctx.wrap_socket(raw) if tls_ctx else raw
    try:
        loadgen.mqtt_connect(s, "bench-probe-%d" % os.getpid())
        s.sendall(loadgen.DISCONNECT)
    finally:
        s.close()


class Broker:
    name = "?"
    tls = False          # can it run the mutual-TLS scenarios
    startup = 30.0       # seconds to wait for the first CONNACK

    def missing(self):
        """None when it can run here, else a note saying why not."""
        return None

    def argv(self, cfgfile, heap=False):
        raise NotImplementedError

    def config(self, port, tls_port, certdir):
        raise NotImplementedError

    def env(self):
        return None

    def start(self, workdir, tls=False, certdir=None, heap=False, extra=None):
        # extra: config lines for the gatemq ports only (a scenario's own limits)
        port = free_port()
        tls_port = free_port() if tls else None
        cfgfile = os.path.join(workdir, "%s.conf" % self.name)
        with open(cfgfile, "w") as f:
            f.write(self.config(port, tls_port, certdir))
            if extra and self.name in ("gatemq", "micropython"):
                f.write("\n".join(extra) + "\n")
        logpath = os.path.join(workdir, "%s.log" % self.name)
        logf = open(logpath, "ab")
        p = spawn(self.argv(cfgfile, heap), stdin=subprocess.DEVNULL, stdout=logf, stderr=logf,
                  cwd=workdir, env=self.env())
        logf.close()
        run = Running(self, p, port, tls_port, logpath)
        deadline = time.monotonic() + self.startup
        while True:
            if p.poll() is not None:
                raise BenchError("%s exited at start-up (code %s): %s" % (self.name, p.returncode, run.log_tail()))
            try:
                mqtt_ping(port)
                break
            except (OSError, ConnectionError):
                if time.monotonic() > deadline:
                    run.stop()
                    raise BenchError("%s did not answer on port %d within %.0f s: %s"
                                     % (self.name, port, self.startup, run.log_tail()))
                time.sleep(0.1)
        return run


class Running:
    def __init__(self, broker, proc, port, tls_port, logpath):
        self.broker, self.proc, self.port, self.tls_port, self.logpath = broker, proc, port, tls_port, logpath

    def rss_kb(self):
        if self.proc.poll() is not None:
            raise BenchError("%s died (code %s): %s" % (self.broker.name, self.proc.returncode, self.log_tail()))
        return rss_kb(self.proc.pid)

    def heap(self, links=None, wait=3.0):
        """(used heap bytes, links) from the newest heap line on the MicroPython port's log,
        waiting for one that counts `links` connections; None for other brokers."""
        if not (isinstance(self.broker, Micropython) and self.broker.heap_reports()):
            return None
        deadline = time.monotonic() + wait
        while True:
            got = None
            with open(self.logpath, errors="replace") as f:
                for line in f:
                    m = HEAP_LINE.search(line)
                    if m:
                        got = (int(m.group(1)), int(m.group(2)))
            if got and (links is None or got[1] >= links):
                return got
            if time.monotonic() > deadline:
                return got
            time.sleep(0.1)

    def log_tail(self, n=3):
        try:
            with open(self.logpath, errors="replace") as f:
                lines = [l.rstrip() for l in f if l.strip()]
        except OSError:
            return "(no log)"
        return " | ".join(lines[-n:]) or "(empty log)"

    def stop(self):
        stop_proc(self.proc)


def _gatemq_config(port, tls_port, certdir):
    lines = ['listeners.tcp.default.bind = "127.0.0.1:%d"' % port,
             "mqtt.max_inflight = 32",
             "mqtt.max_mqueue_len = 1000",
             # the bench measures the broker; its HTTP dashboard's fixed port may be taken
             "dashboard.enable = false"]
    if tls_port:
        c = lambda n: os.path.join(certdir, n)
        lines += ["listeners.ssl.default {",
                  '  bind = "127.0.0.1:%d"' % tls_port,
                  "  ssl_options {",
                  '    certfile = "%s"' % c("server.crt.pem"),
                  '    keyfile = "%s"' % c("server.key.pem"),
                  '    cacertfile = "%s"' % c("ca.crt.pem"),
                  "    verify = verify_peer",
                  "    fail_if_no_peer_cert = true",
                  "  }",
                  "}",
                  "mqtt.peer_cert_as_username = cn"]
    return "\n".join(lines) + "\n"


class Gatemq(Broker):
    name = "gatemq"
    tls = True

    def missing(self):
        if not os.path.exists(VENV_PY):
            return "no .venv (run make venv)"
        if not os.path.exists(os.path.join(ROOT, "ports", "cpython", "__main__.py")):
            return "the CPython port (gatemq.cpython) has not landed yet"
        return None

    def argv(self, cfgfile, heap=False):
        return [VENV_PY, "-m", "gatemq.cpython", "--config", cfgfile]

    config = staticmethod(_gatemq_config)


class Micropython(Broker):
    name = "micropython"
    tls = True
    mp = os.path.join(ROOT, ".venv", "bin", "micropython")
    lib = os.path.join(ROOT, "build", "mpy", "lib")
    heap = "32M"

    def missing(self):
        if not os.path.exists(self.mp):
            return "no micropython in .venv"
        pkg = os.path.join(self.lib, "gatemq", "micropython")
        if not os.path.exists(os.path.join(pkg, "__main__.mpy")):
            return "the MicroPython port (build/mpy/lib/gatemq/micropython/__main__.mpy) is not built"
        return None

    def argv(self, cfgfile, heap=False):
        # the unix port's default heap runs out near 300 idle connections;
        # this one holds the 1000 the scenarios open
        argv = [self.mp, "-X", "heapsize=%s" % self.heap, "-m", "gatemq.micropython", "--config", cfgfile]
        if heap and self.heap_reports():
            # heap lines on the log give Python heap bytes per connection, not just RSS;
            # only where wanted, since each line costs a full collection
            argv += ["--heap-report", "0.2"]
        return argv

    def heap_reports(self):
        try:
            with open(os.path.join(ROOT, "ports", "micropython", "cli.py")) as f:
                return "--heap-report" in f.read()
        except OSError:
            return False

    def env(self):
        return dict(os.environ, MICROPYPATH=self.lib)

    config = staticmethod(_gatemq_config)


class Mosquitto(Broker):
    name = "mosquitto"
    tls = True

    def exe(self):
        return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)

    def missing(self):
        return None if self.exe() else "mosquitto is not installed (apt-get install mosquitto)"

    def argv(self, cfgfile, heap=False):
        return [self.exe(), "-c", cfgfile]

    def config(self, port, tls_port, certdir):
        lines = ["per_listener_settings false",
                 "allow_anonymous true",
                 # the same session limits as the gatemq config
                 "max_inflight_messages 32",
                 "max_queued_messages 1000",
                 "persistence false",
                 "log_dest stderr",
                 "log_type error",
                 "log_type warning"]
        if os.geteuid() == 0:
            # as root it would switch to the mosquitto user, who cannot read
            # the certificates in our private temp folder
            lines.append("user root")
        lines.append("listener %d 127.0.0.1" % port)
        if tls_port:
            c = lambda n: os.path.join(certdir, n)
            # Without it Nagle holds each CONNACK behind the TLS 1.3 session
            # ticket until the client's delayed ACK: 40 ms per connect.  Only
            # here, because it halves Mosquitto's QoS 0 throughput.
            lines.insert(0, "set_tcp_nodelay true")
            lines += ["listener %d 127.0.0.1" % tls_port,
                      "cafile " + c("ca.crt.pem"),
                      "certfile " + c("server.crt.pem"),
                      "keyfile " + c("server.key.pem"),
                      "require_certificate true",
                      "use_identity_as_username true"]
        return "\n".join(lines) + "\n"


class Amqtt(Broker):
    name = "amqtt"
    exe = os.path.join(BENCH_VENV, "bin", "amqtt")

    def missing(self):
        if os.path.exists(self.exe):
            return None
        # its own venv keeps amqtt's dependencies out of the test venv
        log("creating %s with amqtt (once)" % os.path.relpath(BENCH_VENV, ROOT))
        try:
            subprocess.run([sys.executable, "-m", "venv", BENCH_VENV], check=True, timeout=300,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            subprocess.run([os.path.join(BENCH_VENV, "bin", "python"), "-m", "pip", "install", "-q", "amqtt"],
                           check=True, timeout=600, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except (subprocess.SubprocessError, OSError) as e:
            err = getattr(e, "stderr", None)
            detail = err.decode(errors="replace").strip().splitlines()[-1:] if err else [str(e)]
            return "amqtt could not be installed: " + " ".join(detail)
        return None if os.path.exists(self.exe) else "amqtt installed no 'amqtt' script"

    def argv(self, cfgfile, heap=False):
        return [self.exe, "-c", cfgfile]

    def config(self, port, tls_port, certdir):
        return ("listeners:\n"
                "  default:\n"
                "    type: tcp\n"
                "    bind: 127.0.0.1:%d\n"
                "plugins:\n"
                "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
                "    allow_anonymous: true\n" % port)


ALL = {b.name: b for b in (Gatemq(), Mosquitto(), Amqtt(), Micropython())}


# --- scenarios --------------------------------------------------------------------

class Opts:
    def __init__(self, a):
        self.seconds = a.seconds if a.seconds else (1.5 if a.quick else 5.0)
        self.warmup = 0.5 if a.quick else 1.0
        self.idle_n = 1000
        self.tls_n = 300 if a.quick else 1000
        self.parallel = 4
        self.repeat = a.repeat if a.repeat else (1 if a.quick else 3)


def flow(run, o, qos, subs, *sub_args):
    """Messages per second counted at the subscribers (summed over all of them)."""
    deadline = o.warmup + o.seconds + 30
    sub = Child("sub", "--port", run.port, "--qos", qos, "--subs", subs, "--warmup", o.warmup,
                "--seconds", o.seconds, "--deadline", deadline, *sub_args)
    pub = None
    try:
        sub.expect_ready()
        pub = Child("pub", "--port", run.port, "--qos", qos, "--window", 32, "--deadline", deadline)
        pub.expect_ready()
        res = sub.result(deadline + 10)
    finally:
        sub.stop()
        if pub:
            pub.stop()
    run.rss_kb()  # raises if the broker died under the load
    return res["rate"], res.get("error")


def conns(run, o, tls, certdir):
    """(time for N connects, connects/s, RSS bytes per idle connection, note,
    MicroPython heap bytes per idle connection or None)."""
    n = o.tls_n if tls else o.idle_n
    port = run.tls_port if tls else run.port
    if tls:
        # the first handshake can load lazily imported code: keep it out of the baseline
        mqtt_ping(port, client_ctx(certdir))
    time.sleep(0.3)
    before = run.rss_kb()
    heap0 = run.heap()
    args = ["conns", "--port", port, "--n", n, "--parallel", o.parallel, "--deadline", 120]
    if tls:
        args += ["--certdir", certdir]
    c = Child(*args)
    try:
        res = c.result(120)
        time.sleep(0.5)
        after = run.rss_kb()
        heap1 = run.heap(links=res["ok"]) if heap0 else None
    finally:
        c.stop()
    heap = None
    if heap0 and heap1 and heap1[1] > heap0[1]:
        heap = (heap1[0] - heap0[0]) / float(heap1[1] - heap0[1])
    note = None
    if res["ok"] < n:
        note = "%d of %d connects failed (%s)" % (n - res["ok"], n, res.get("first_error", "?"))
    per = (after - before) * 1024.0 / res["ok"] if res["ok"] else None
    secs = res["seconds"] if res["ok"] == n else None
    return secs, res["rate"], per, note, heap


def client_ctx(certdir):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.load_verify_locations(os.path.join(certdir, "ca.crt.pem"))
    ctx.load_cert_chain(os.path.join(certdir, "client0.crt.pem"), os.path.join(certdir, "client0.key.pem"))
    return ctx


# (key, label, unit, higher is better)
ROWS = [
    ("qos0_1_1", "QoS0 1->1", "msg/s", True),
    ("qos0_1_50", "QoS0 1->50", "msg/s", True),
    ("qos1_1_1", "QoS1 1->1", "msg/s", True),
    ("idle_rss", "RSS/idle conn", "KB", False),
    ("connect_1000", "1000 connects", "s", False),
    ("tls_rate", "mTLS connects", "conn/s", True),
    ("tls_rss", "RSS/idle TLS conn", "KB", False),
    ("idle_rss_10k", "RSS/idle conn, 10k", "KB", False),
    ("connect_10k", "10000 connects", "s", False),
    ("fanout_10k", "QoS0 10k subs, round robin", "msg/s", True),
    ("burst", "QoS1 burst 50k, 5k ahead", "msg/s", True),
    ("burst_lost", "  ... of them lost", "msgs", False),
    ("retain_exact", "ret 50k: 2000 exact subs", "sub/s", True),
    ("retain_plus", "ret 50k: 2000 dev/<n>/+", "sub/s", True),
    ("retain_wild", "ret 50k: 5x dev/+/status", "msg/s", True),
    # one SUBSCRIBE of 20,000 exact filters against 10,000 retained: the longest PINGREQ round trip
    # of another client meanwhile (how long nobody else was served), and the time to its SUBACK
    ("stall_sub", "1 SUBSCRIBE of 20k filters: stall", "ms", False),
    ("stall_suback", "  ... its SUBACK", "s", False),
    # persistence (issue 13): the subscriber's session is kept (clean session 0); gatemq with every
    # ack durable (sync = commit), then without persistence; Mosquitto as configured above
    ("qos1_durable", "QoS1 1->1 persistent sub, durable", "msg/s", True),
    ("qos1_persub", "QoS1 1->1 persistent sub, no store", "msg/s", True),
    ("restart_100k", "restart, 100k retained + 10k sessions", "s", False),
]

RETAINED_N = 50000
# one client holds the 2000 subscriptions: above gatemq's per-session default (1000), and the store
# must take the 50,000 retained messages
RETAIN_EXTRA = ["mqtt.max_subscriptions = infinity", "retainer.max_retained_messages = 100000"]


def _durable_group(key):
    def fn(run, o, certdir):
        rate, note = flow(run, o, 1, 1, "--persistent")
        return {key: rate}, note
    return fn


def _durable_extra():
    # a store of its own for each run (the sessions of a previous one are not loaded)
    return ["persistence.enable = true", "persistence.sync = commit",
            'node.data_dir = "%s"' % tempfile.mkdtemp(prefix="store-")]


GROUP_EXTRA = {"qos1_durable": _durable_extra}


def _flow_group(key, qos, subs):
    def fn(run, o, certdir):
        rate, note = flow(run, o, qos, subs)
        return {key: rate}, note
    return fn


def _plain_conns(run, o, certdir):
    secs, _, per, note, heap = conns(run, o, False, None)
    out = {"idle_rss": per / 1024 if per is not None else None, "connect_1000": secs}
    if heap is not None:
        out["heap_idle"] = heap / 1024
    return out, note


def _tls_conns(run, o, certdir):
    _, rate, per, note, heap = conns(run, o, True, certdir)
    out = {"tls_rate": rate, "tls_rss": per / 1024 if per is not None else None}
    if heap is not None:
        out["heap_tls"] = heap / 1024
    return out, note


def _conns_10k(run, o, certdir):
    n, o.idle_n = o.idle_n, 10000
    try:
        secs, _, per, note, _ = conns(run, o, False, None)
    finally:
        o.idle_n = n
    return {"idle_rss_10k": per / 1024 if per is not None else None, "connect_10k": secs}, note


def _fanout(run, o, certdir):
    c = Child("fanout", "--port", run.port, "--subs", 10000, "--seconds", o.seconds, "--deadline", 180)
    try:
        c.expect_ready(180)
        res = c.result(60 + o.seconds)
    finally:
        c.stop()
    run.rss_kb()
    return {"fanout_10k": res.get("rate")}, res.get("error")


def _burst(run, o, certdir):
    c = Child("burst", "--port", run.port, "--n", 50000, "--window", 5000, "--deadline", 180)
    try:
        c.expect_ready()
        res = c.result(200)
    finally:
        c.stop()
    run.rss_kb()  # raises if the broker died under the load
    return {"burst": res.get("rate"), "burst_lost": res.get("lost")}, res.get("error")


def retained(run, o, flt, subs, expect):
    c = Child("retain", "--port", run.port, "--n", RETAINED_N, "--subs", subs, "--filter", flt,
              "--expect", expect, "--deadline", 180)
    try:
        res = c.result(200)
    finally:
        c.stop()
    run.rss_kb()  # raises if the broker died under the load
    return res, res.get("error")


def _stall(run, o, certdir):
    c = Child("stall", "--port", run.port, "--n", 10000, "--subs", 20000, "--deadline", 180)
    try:
        res = c.result(200)
    finally:
        c.stop()
    run.rss_kb()  # raises if the broker died under the load
    return {"stall_sub": res.get("stall_ms"), "stall_suback": res.get("suback_s")}, res.get("error")


def _retain_group(key, flt, subs, per_sub):
    def fn(run, o, certdir):
        res, note = retained(run, o, flt, subs, subs * per_sub)
        v = res["subs_rate"] if key != "retain_wild" else res["msg_rate"]
        return {key: None if note else v}, note
    return fn


# (scenario keys, needs the TLS listener, runner); each runs on a fresh broker
GROUPS = [
    (("qos0_1_1",), False, _flow_group("qos0_1_1", 0, 1)),
    (("qos0_1_50",), False, _flow_group("qos0_1_50", 0, 50)),
    (("qos1_1_1",), False, _flow_group("qos1_1_1", 1, 1)),
    (("idle_rss", "connect_1000"), False, _plain_conns),
    (("tls_rate", "tls_rss"), True, _tls_conns),
    (("idle_rss_10k", "connect_10k"), False, _conns_10k),
    (("fanout_10k",), False, _fanout),
    (("burst", "burst_lost"), False, _burst),
    (("retain_exact",), False, _retain_group("retain_exact", "dev/{}/status", 2000, 1)),
    (("retain_plus",), False, _retain_group("retain_plus", "dev/{}/+", 2000, 1)),
    (("retain_wild",), False, _retain_group("retain_wild", "dev/+/status", 5, RETAINED_N)),
    (("stall_sub", "stall_suback"), False, _stall),
    (("qos1_durable",), False, _durable_group("qos1_durable")),
    (("qos1_persub",), False, _durable_group("qos1_persub")),
]


def run_group(b, o, workdir, certdir, keys, tls, fn):
    """One scenario group against one fresh broker: ({key: value}, [notes])."""
    run = None
    notes = []
    try:
        run = b.start(workdir, tls=tls, certdir=certdir, heap=keys[0] in ("idle_rss", "tls_rate"),
                      extra=RETAIN_EXTRA if keys[0].startswith(("retain", "stall")) else
                      (GROUP_EXTRA[keys[0]]() if keys[0] in GROUP_EXTRA else None))
        vals, note = fn(run, o, certdir)
        if note:
            notes.append("%s: %s" % ("/".join(keys), note))
        return vals, notes
    except BenchError as e:
        notes.append("%s: %s" % ("/".join(keys), e))
        if run is not None and run.proc.poll() is not None:
            notes.append("log: %s" % run.log_tail())
        return {}, notes
    finally:
        if run is not None:
            run.stop()


def best(key, values):
    """The best of the repeats: background load only ever makes a figure worse."""
    values = [v for v in values if v is not None]
    if not values:
        return None
    higher = ([r[3] for r in ROWS if r[0] == key] or [False])[0]
    return max(values) if higher else min(values)


# --- peercert micro-benchmark (issue 3: identity(der, "dn") under 50 us) ------------

def peercert_bench(certdir, rounds=2000):
    try:
        from gatemq import peercert
        peercert.identity
    except (ImportError, AttributeError) as e:
        return None, "gatemq.peercert.identity is not available yet (%s)" % e
    from cryptography import x509
    from bench_peercert import per_call_us  # the best of five rounds, as bench_peercert.py times
    with open(os.path.join(certdir, "client0.crt.der"), "rb") as f:
        der = f.read()
    try:
        g = per_call_us(lambda: peercert.identity(der, "dn"), rounds)
    except Exception as e:  # a bench reports a broken peer instead of dying on it
        return None, "peercert.identity(der, 'dn') failed: %s: %s" % (type(e).__name__, e)
    c = per_call_us(lambda: x509.load_der_x509_certificate(der).subject.rfc4514_string(), rounds)
    return (g, c), None


# --- retained store on its own: memory per message, lookups (bench/bench_retain.py) ----------

def retain_store_bench():
    """The bench_retain.py summary lines on CPython and, when built, under MicroPython."""
    script = os.path.join(HERE, "bench_retain.py")
    runs = [("cpython", [VENV_PY, script], None)]
    mp = Micropython()
    if not mp.missing():
        runs.append(("micropython", [mp.mp, "-X", "heapsize=64M", script], mp.env()))
    out = []
    for name, argv, env in runs:
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)
        except (subprocess.SubprocessError, OSError) as e:
            out.append("%s: bench_retain.py failed: %s" % (name, e))
            continue
        lines = [l for l in p.stdout.splitlines() if l and not l.startswith("RESULT")]
        out += lines if p.returncode == 0 else ["%s: bench_retain.py failed: %s" % (name, p.stderr.strip()[-200:])]
    return out


# --- report -----------------------------------------------------------------------

def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "s":
        return "%.3f" % v
    if unit == "KB":
        return "%.2f" % v
    return "%.0f" % v if v >= 100 else "%.1f" % v


def ratio(a, b):
    return a / b if a is not None and b else None


def verdict(key, res):
    """(target text, 'ok' | 'MISS' | '-') for gatemq's figure on this row."""
    g = res.get("gatemq", {}).get(key)
    m = res.get("mosquitto", {}).get(key)
    a = res.get("amqtt", {}).get(key)
    if key == "qos1_durable":
        return ">=0.5x mosq", _v([g / m >= 0.5] if g is not None and m else [])
    if key == "restart_100k":
        return "<3 s", _v([g < 3] if g is not None else [])
    if key in ("qos0_1_1", "qos1_1_1"):
        checks = []
        if g is not None and m:
            checks.append(g / m >= 0.5)
        if g is not None and a:
            checks.append(g / a >= 20)
        return ">=0.5x mosq, >=20x amqtt", _v(checks)
    if key == "idle_rss":
        return "<=5 KB", _v([g <= 5] if g is not None else [])
    if key == "connect_1000":
        return "<0.3 s", _v([g < 0.3] if g is not None else [])
    if key == "tls_rate":
        return ">=0.7x mosq", _v([g / m >= 0.7] if g is not None and m else [])
    if key == "tls_rss":
        return "<=mosq", _v([g <= m] if g is not None and m is not None else [])
    if key in ("retain_exact", "burst"):
        return ">=0.5x mosq", _v([g / m >= 0.5] if g is not None and m else [])
    if key == "burst_lost":
        return "0", _v([g == 0] if g is not None else [])
    if key == "stall_sub":
        return "<=100 ms", _v([g <= 100] if g is not None else [])
    return "", "-"


def _v(checks):
    if not checks:
        return "-"
    return "ok" if all(checks) else "MISS"


def table(rows, header):
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    line = lambda r: "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths])] + [line(r) for r in rows])


def report(res, keys, o, tls_n):
    header = ["scenario", "unit", "gatemq", "mosquitto", "amqtt", "g/mosq", "g/amqtt", "target", "met"]
    rows = []
    for key, label, unit, _ in ROWS:
        if key not in keys:
            continue
        g, m, a = (res.get(n, {}).get(key) for n in ("gatemq", "mosquitto", "amqtt"))
        rg, ra = ratio(g, m), ratio(g, a)
        target, met = verdict(key, res)
        rows.append([label, unit, fmt(g, unit), fmt(m, unit), fmt(a, unit),
                     "%.2fx" % rg if rg is not None else "-", "%.2fx" % ra if ra is not None else "-",
                     target, met])
    out = [table(rows, header)]
    if "micropython" in res:
        rows = []
        for key, label, unit, _ in ROWS:
            if key not in keys:
                continue
            mp, g = res["micropython"].get(key), res.get("gatemq", {}).get(key)
            r = ratio(mp, g)
            rows.append([label, unit, fmt(mp, unit), fmt(g, unit), "%.2fx" % r if r is not None else "-"])
        for key, label, target in (("heap_idle", "heap/idle conn", "<=2 KB"), ("heap_tls", "heap/idle TLS conn", "")):
            v = res["micropython"].get(key)
            if v is not None:
                met = ("ok" if v <= 2 else "MISS") if target else ""
                rows.append([label, "KB", fmt(v, "KB"), "", "", target, met])
        out += ["", "MicroPython port against the CPython port (RSS is the process's, heap included):",
                table([r + [""] * (7 - len(r)) for r in rows],
                      ["scenario", "unit", "micropython", "gatemq", "mp/gatemq", "target", "met"])]
    out.append("")
    out.append("msg/s are counted at the subscribers over %.1f s (1->50: summed over the 50); "
               "RSS/idle conn over %d connections, TLS over %d, %d connectors in parallel; "
               "best of %d run(s) each." % (o.seconds, o.idle_n, tls_n, o.parallel, o.repeat))
    return "\n".join(out)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", help="comma-separated brokers out of: " + ",".join(BROKERS))
    p.add_argument("--quick", action="store_true", help="short runs (1.5 s windows, 300 TLS connections)")
    p.add_argument("--seconds", type=float, help="measuring window per throughput scenario (default 5)")
    p.add_argument("--repeat", type=int, help="runs per scenario and broker, best kept (default 3, quick 1)")
    p.add_argument("--scenarios", help="comma-separated subset of: " + ",".join(r[0] for r in ROWS))
    p.add_argument("--json", help="also write the figures to this file")
    a = p.parse_args(argv)
    names = a.only.split(",") if a.only else list(BROKERS)
    for n in names:
        if n not in ALL:
            p.error("unknown broker %r (choose from %s)" % (n, ", ".join(BROKERS)))
    keys = a.scenarios.split(",") if a.scenarios else [r[0] for r in ROWS]
    for k in keys:
        if k not in [r[0] for r in ROWS]:
            p.error("unknown scenario %r" % k)
    o = Opts(a)

    # SIGTERM/SIGHUP unwind through the finally below, which stops every child
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(1))
    res, raw, notes = {}, {}, []
    workdir = tempfile.mkdtemp(prefix="gatemq-bench-")
    try:
        certdir = None
        if any(k.startswith("tls") for k in keys):
            try:
                import tlscerts
                certdir = tlscerts.make(os.path.join(workdir, "certs"))
            except ImportError as e:
                notes.append("mutual TLS skipped: %s" % e)
        brokers = []
        for n in names:
            why = ALL[n].missing()
            if why:
                notes.append("%s skipped: %s" % (n, why))
                log("%s skipped: %s" % (n, why))
            else:
                brokers.append(ALL[n])
        samples = {}
        # scenario by scenario, the brokers interleaved within each repeat, so
        # that load from elsewhere on the machine hits them all alike
        for gkeys, tls, fn in GROUPS:
            if not any(k in keys for k in gkeys) or (tls and not certdir):
                continue
            for rep in range(o.repeat):
                for b in brokers:
                    if tls and not b.tls:
                        continue
                    log("%s: %s (%d/%d)" % ("/".join(gkeys), b.name, rep + 1, o.repeat))
                    vals, bn = run_group(b, o, workdir, certdir, gkeys, tls, fn)
                    for k, v in vals.items():
                        samples.setdefault(b.name, {}).setdefault(k, []).append(v)
                    notes += ["%s %s" % (b.name, x) for x in bn if "%s %s" % (b.name, x) not in notes]
        for n, per in samples.items():
            res[n] = {k: best(k, v) for k, v in per.items()}
            raw[n] = per
        persist_lines = []
        if "restart_100k" in keys or "qos1_durable" in keys:
            import bench_persist
            if "restart_100k" in keys and "gatemq" in [b.name for b in brokers]:
                log("restart_100k: gatemq")
                vals, note = bench_persist.restart(ALL["gatemq"], workdir)
                res.setdefault("gatemq", {}).update(vals)
                if vals.get("restart_load") is not None:
                    persist_lines.append("CPython restart: store loaded in %.2f s of %.2f s to the first CONNACK "
                                         "(100,000 retained, 10,000 sessions with a subscription and a queued "
                                         "message each)" % (vals["restart_load"], vals["restart_100k"]))
                if note:
                    notes.append("restart_100k: " + note)
            if "micropython" in [b.name for b in brokers]:
                log("persistence: micropython heap and flash")
                off, on, note = bench_persist.mp_idle_heap(ALL["micropython"], workdir)
                if note:
                    notes.append("micropython persistence heap: " + note)
                else:
                    persist_lines.append("MicroPython heap when idle: %d bytes used without persistence, %d with "
                                         "it (sync = interval, empty store): %+d bytes" % (off, on, on - off))
                persist_lines += bench_persist.mp_flash(ALL["micropython"], HERE, ROOT)
        pc = None
        store = retain_store_bench() if "gatemq" in names and any(k.startswith("retain") for k in keys) else None
        if "gatemq" in names and certdir:
            pc, why = peercert_bench(certdir)
            if why:
                notes.append(why)
    finally:
        stop_all()
        shutil.rmtree(workdir, ignore_errors=True)

    print(report(res, keys, o, o.tls_n))
    if pc:
        print("peercert.identity(der, 'dn'): %.1f us; cryptography load_der + rfc4514_string: %.1f us "
              "(%.2fx; target < 50 us)" % (pc[0], pc[1], pc[0] / pc[1]))
    if persist_lines:
        print("\npersistence:")
        for line in persist_lines:
            print("  " + line)
    if store:
        print("\nretained store alone (bench/bench_retain.py, 50,000 messages):")
        for line in store:
            print("  " + line)
    if notes:
        print("\nnotes:")
        for n in notes:
            print("  - " + n)
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"results": res, "samples": raw, "notes": notes, "peercert_us": pc,
                       "seconds": o.seconds, "idle_n": o.idle_n, "tls_n": o.tls_n}, f, indent=2)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    finally:
        stop_all()
