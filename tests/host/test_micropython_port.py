# The MicroPython port (gatemq.micropython) on the unix port, importing the shipped .mpy files from
# build/mpy/lib: plain and mutual-TLS listeners, certificate mapping, the per-task binding of
# client certificates under concurrent handshakes, CRL checks, the handshake timeout, the socket
# leak of failed handshakes, and the configs this port refuses.
import json
import os
import re
import select
import signal
import socket
import ssl
import subprocess
import threading
import time
import types

import pytest
from cryptography import x509 as cx509
from cryptography.x509.oid import NameOID

from brokers import ROOT, VENV_BIN
from brokers import MP_LAUNCHER, group_members, socket_fds
import rawmqtt as R
from clients import Client, V311
from tlsutil import ssl_config

from gatemq.certs import ca as certs_ca
from gatemq.certs import crl as certs_crl
from gatemq.certs import issue

MP = os.path.join(VENV_BIN, "micropython")
MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
MPCLIENT = os.path.join(os.path.dirname(__file__), "mpclient.py")
DEVICES = ["dev%02d" % i for i in range(12)]
CONNECTED = "$SYS/brokers/+/clients/+/connected"

pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "server.mpy")),
                                reason="run `make firmware-files` first")


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    d = str(tmp_path_factory.mktemp("pki"))
    certs_ca.init_ca(d, cn="mp test CA")
    issue.server(d, ["localhost"], ["127.0.0.1"], name="server")
    for dev in DEVICES + ["revoked"]:
        subject = cx509.Name([cx509.NameAttribute(NameOID.ORGANIZATION_NAME, "gatemq tests"),
                              cx509.NameAttribute(NameOID.COMMON_NAME, dev)])
        issue.client(d, subject, dev)
    certs_crl.revoke(d, os.path.join(d, "revoked.crt"))
    certs_crl.make_crl(d, os.path.join(d, "crl.pem"))
    # A second CA whose devices the broker must refuse.
    other = os.path.join(d, "other")
    os.mkdir(other)
    certs_ca.init_ca(other, cn="stranger CA")
    issue.client(other, cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "dev00")]), "impostor")
    return d


def tls_config(pki, extra="", ssl_extra=""):
    server = types.SimpleNamespace(crt=os.path.join(pki, "server.crt"), key=os.path.join(pki, "server.key"))
    ca = types.SimpleNamespace(crt=os.path.join(pki, "ca.crt"))
    return ssl_config(server, ca, "handshake_timeout = 2s\n  " + ssl_extra,
                      "mqtt.peer_cert_as_username = cn\n" + extra)


def mp_broker(make_broker, text):
    return make_broker(text, runtime="micropython")


def tls_client(port, pki, dev, client_id, ca_dir=None):
    c = Client(port, client_id, V311)
    c.c.tls_set(ca_certs=os.path.join(pki, "ca.crt"), certfile=os.path.join(ca_dir or pki, dev + ".crt"),
                keyfile=os.path.join(ca_dir or pki, dev + ".key"))
    return c


def handshake(port, pki, dev=None, ca_dir=None):
    """One raw TLS handshake; True when it completed."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "ca.crt"))
    if dev:
        ctx.load_cert_chain(os.path.join(ca_dir or pki, dev + ".crt"), os.path.join(ca_dir or pki, dev + ".key"))
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            # TLS 1.2 reports a refused client certificate during the handshake itself.
            t.sendall(b"\x10\x00")
            t.recv(10)
        return True
    except (ssl.SSLError, ConnectionError, OSError):
        return False
    finally:
        s.close()


def run_mpclient(*args, timeout=30):
    env = dict(os.environ, MICROPYPATH=MPY_LIB)
    p = subprocess.run([MP, MPCLIENT] + list(args), env=env, capture_output=True, text=True, timeout=timeout)
    events = [json.loads(line) for line in p.stdout.splitlines() if line.startswith("{")]
    return p.returncode, events, p.stderr


def test_plain_pubsub_through_micropython_broker(make_broker, client):
    b = mp_broker(make_broker, "")
    sub = client(b.port, "mp-sub")
    sub.subscribe("t/#", qos=1)
    pub = client(b.port, "mp-pub")
    pub.publish("t/1", b"qos0", qos=0)
    pub.publish("t/2", b"qos1", qos=1)
    got = sorted((m.topic, m.payload) for m in sub.expect_n(2))
    assert got == [("t/1", b"qos0"), ("t/2", b"qos1")]
    assert b.alive()


def test_device_client_over_mutual_tls_with_der_certificate(make_broker, client, pki):
    b = mp_broker(make_broker, tls_config(pki))
    watch = client(b.port, "watch")
    watch.subscribe(CONNECTED)
    d = pki
    rc, events, err = run_mpclient(
        "--port", str(b.ports[("ssl", "default")]), "--id", "board-1",
        "--ca", d + "/ca.crt.der", "--cert", d + "/dev03.crt.der", "--key", d + "/dev03.key.der",
        "--sub", "board/#", "--qos", "1", "--pub", "board/temp", "21.5", "--expect", "1")
    assert rc == 0, (events, err, b.log())
    assert {"ev": "message", "topic": "board/temp", "payload": "21.5", "qos": 1} in events
    # The certificate's CN became the username (mqtt.peer_cert_as_username = cn).
    info = json.loads(watch.expect().payload)
    assert info["clientid"] == "board-1"
    assert info["username"] == "dev03"
    assert info["cert_common_name"] == "dev03"


def test_concurrent_handshakes_each_get_their_own_identity(make_broker, client, pki):
    b = mp_broker(make_broker, tls_config(pki))
    watch = client(b.port, "watch")
    watch.subscribe(CONNECTED)
    port = b.ports[("ssl", "default")]
    start = threading.Barrier(len(DEVICES) + 4)
    results = {}

    def good(dev):
        c = tls_client(port, pki, dev, "id-" + dev)
        start.wait()
        c.connect(timeout=20)
        results[dev] = c

    def bad(i):
        # Strangers' certificates run the verify callback too; they must not leak into others.
        start.wait()
        results["bad%d" % i] = handshake(port, pki, "impostor", os.path.join(pki, "other"))

    threads = [threading.Thread(target=good, args=(d,)) for d in DEVICES]
    threads += [threading.Thread(target=bad, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    try:
        assert not any(results["bad%d" % i] for i in range(4))
        seen = {}
        for m in watch.expect_n(len(DEVICES), timeout=20):
            info = json.loads(m.payload)
            seen[info["clientid"]] = info["username"]
        assert seen == {"id-" + d: d for d in DEVICES}
    finally:
        for d in DEVICES:
            if d in results:
                results[d].disconnect()


def test_refused_client_certificates(make_broker, pki):
    b = mp_broker(make_broker, tls_config(pki, ssl_extra="enable_crl_check = true\n  crlfile = \"%s/crl.pem\"" % pki))
    port = b.ports[("ssl", "default")]
    assert handshake(port, pki, "dev01")
    assert not handshake(port, pki)  # no certificate
    assert not handshake(port, pki, "impostor", os.path.join(pki, "other"))  # unknown CA
    for dev, ca_dir, reason in ((None, None, "no_peer_cert"), ("impostor", "other", "unknown_ca"),
                                ("revoked", None, "revoked")):
        mark = b.mark()
        assert not handshake(port, pki, dev, ca_dir and os.path.join(pki, ca_dir))
        b.wait_log_all(["listener ssl:default", "rejected: " + reason], start=mark)
    assert b.alive()


def test_failed_handshakes_leave_no_open_sockets(make_broker, pki):
    b = mp_broker(make_broker, tls_config(pki))
    port = b.ports[("ssl", "default")]
    assert handshake(port, pki, "dev02")
    time.sleep(0.5)
    before = socket_fds(b.pid)
    for i in range(100):
        assert not handshake(port, pki, None if i % 2 else "impostor", os.path.join(pki, "other"))
    deadline = time.monotonic() + 10
    while socket_fds(b.pid) > before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert socket_fds(b.pid) == before
    assert handshake(port, pki, "dev02")


def test_silent_client_is_closed_after_handshake_timeout(make_broker, pki):
    b = mp_broker(make_broker, tls_config(pki))
    s = socket.create_connection(("127.0.0.1", b.ports[("ssl", "default")]))
    s.settimeout(6)
    t0 = time.monotonic()
    assert s.recv(10) == b""  # the broker closed it: no ClientHello within handshake_timeout
    assert 1.5 < time.monotonic() - t0 < 5
    b.wait_log("rejected: handshake_timeout")
    s.close()


def test_max_connections_refuses_cleanly(make_broker, client):
    b = mp_broker(make_broker, 'listeners.tcp.default { bind = "127.0.0.1:0", max_connections = 2 }\n')
    a = client(b.port, "a")
    c = client(b.port, "b")
    s = socket.create_connection(("127.0.0.1", b.port))
    s.settimeout(5)
    assert s.recv(10) == b""
    b.wait_log("max_connections (2) reached")
    a.publish("x", b"still works", qos=1)
    c.disconnect()
    time.sleep(0.3)
    client(b.port, "d")  # a freed slot is usable again (connect asserts the CONNACK)


def _refused_config(tmp_path, pki, ssl_extra):
    path = tmp_path / "gatemq.conf"
    path.write_text(tls_config(pki, ssl_extra=ssl_extra))
    env = dict(os.environ, MICROPYPATH=MPY_LIB)
    return subprocess.run([MP, "-m", "gatemq.micropython", "--config", str(path)], env=env,
                          capture_output=True, text=True, timeout=30)


def test_optional_client_certificates_are_a_config_error(tmp_path, pki):
    text = tls_config(pki).replace("fail_if_no_peer_cert = true", "fail_if_no_peer_cert = false")
    path = tmp_path / "gatemq.conf"
    path.write_text(text)
    env = dict(os.environ, MICROPYPATH=MPY_LIB)
    p = subprocess.run([MP, "-m", "gatemq.micropython", "--config", str(path)], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2
    assert "fail_if_no_peer_cert" in p.stderr and "optional client certificates" in p.stderr


def test_tls13_only_is_a_config_error(tmp_path, pki):
    p = _refused_config(tmp_path, pki, 'versions = ["tlsv1.3"]')
    assert p.returncode == 2
    assert "TLS 1.2 only" in p.stderr


def test_encrypted_key_is_a_config_error(tmp_path, pki):
    from cryptography.hazmat.primitives import serialization
    with open(os.path.join(pki, "server.key"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    enc = tmp_path / "server-enc.key"
    enc.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                      serialization.BestAvailableEncryption(b"s3cret")))
    text = tls_config(pki, ssl_extra='password = "s3cret"').replace("%s/server.key" % pki, str(enc))
    path = tmp_path / "gatemq.conf"
    path.write_text(text)
    env = dict(os.environ, MICROPYPATH=MPY_LIB)
    p = subprocess.run([MP, "-m", "gatemq.micropython", "--config", str(path)], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    # The message says which key and how to store it so this port can load it.
    assert "ssl_options.password" in p.stderr and "unencrypted" in p.stderr, p.stderr


def test_ciphers_are_ignored_with_a_warning(make_broker, pki):
    # mbedTLS offers the suites built into the firmware: a listener restricted to one suite still
    # serves a client that offers only another, and the log says the setting has no effect.
    b = mp_broker(make_broker, tls_config(pki, ssl_extra='ciphers = "ECDHE-ECDSA-AES256-GCM-SHA384"'))
    b.wait_log_all(["listener ssl:default", "ciphers is ignored on MicroPython", "WARNING"])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(os.path.join(pki, "ca.crt"))
    ctx.load_cert_chain(os.path.join(pki, "dev02.crt"), os.path.join(pki, "dev02.key"))
    ctx.maximum_version = ssl.TLSVersion.TLSv1_2
    ctx.set_ciphers("ECDHE-ECDSA-AES128-GCM-SHA256")
    with ctx.wrap_socket(socket.create_connection(("127.0.0.1", b.ports[("ssl", "default")]), timeout=5),
                         server_hostname="localhost") as t:
        assert t.cipher()[0] == "ECDHE-ECDSA-AES128-GCM-SHA256"
        t.sendall(b"\x10\x0c\x00\x04MQTT\x04\x02\x00\x3c\x00\x00")  # CONNECT, 3.1.1
        assert t.recv(4) == b"\x20\x02\x00\x00"  # CONNACK, accepted


# ---- memory on a board budget ----------------------------------------------------------------

class HeapBroker:
    """The MicroPython broker with a given heap and heap reports on stderr."""

    def __init__(self, tmp_path, text, heap):
        if "dashboard" not in text:
            text = "dashboard.enable = false\n" + text  # MQTT budgets: no management API in them
        path = tmp_path / ("heap-%s.conf" % heap)
        path.write_text(text)
        env = dict(os.environ, MICROPYPATH=MPY_LIB)
        self.proc = subprocess.Popen([MP, "-X", "heapsize=%s" % heap, "-m", "gatemq.micropython",
                                      "--config", str(path), "--heap-report", "0.5"],
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, text=True)
        self.lines = []
        threading.Thread(target=self._read, daemon=True).start()
        self.ports = {}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(self.ports) < text.count(".bind"):
            for line in list(self.lines):
                if " listening on " in line:
                    kind = line.split("listener ")[1].split(" ")[0]
                    self.ports[kind] = int(line.rsplit(":", 1)[1])
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        assert len(self.ports) == text.count(".bind"), "\n".join(self.lines)

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def heap(self):
        """(free, lowest_free, used) from the latest heap report."""
        time.sleep(1.1)
        line = [x for x in self.lines if " heap " in x][-1]
        f = dict(re.findall(r"(\w+)=(\d+)", line))
        return int(f["free"]), int(f["lowest_free"]), int(f["used"])

    def check_room(self, min_free=8 * 1024):
        """heap(), after asserting its lowest free heap is at least min_free and the broker runs."""
        free, lowest, used = self.heap()
        assert lowest >= min_free, (lowest, self.lines[-5:])
        assert self.proc.poll() is None
        return free, lowest, used

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def _code_heap(tmp_path, text):
    # What the loaded .mpy bytecode and the started broker take before any client: on a board the
    # frozen bytecode stays in flash, so the board's heap is this plus the budget under test.
    b = HeapBroker(tmp_path, text, "2M")
    try:
        return b.heap()[2]
    finally:
        b.stop()


def test_board_budget_16_plain_and_4_tls_clients_with_qos1(tmp_path, pki):
    # persistence as firmware/gatemq.conf has it, its heap counted in the budget's 128 KB
    text = ('listeners.tcp.default.bind = "127.0.0.1:0"\n' + tls_config(pki) +
            'persistence { enable = true, sync = interval, max_size = 256KB }\nnode.data_dir = "%s"\n'
            % (tmp_path / "data"))
    budget = 128 * 1024
    heap = (_code_heap(tmp_path, text) + budget) // 1024 + 1
    b = HeapBroker(tmp_path, text, "%dK" % heap)
    clients = []
    try:
        for i in range(16):
            c = Client(b.ports["tcp:default"], "plain%d" % i, V311)
            c.connect()
            clients.append(c)
        for i in range(4):
            c = tls_client(b.ports["ssl:default"], pki, DEVICES[i], "tls%d" % i)
            c.connect(timeout=10)
            clients.append(c)
        for i, c in enumerate(clients):
            c.subscribe("ring/%d" % i, qos=1)
        n = len(clients)
        for r in range(10):
            for i, c in enumerate(clients):
                c.publish("ring/%d" % ((i + 1) % n), b"%d:%d" % (r, i) + b"x" * 100, qos=1)
        for i, c in enumerate(clients):
            got = c.expect_n(10, timeout=10)
            assert sorted(m.payload[:8].split(b"x")[0] for m in got) == sorted(
                b"%d:%d" % (r, (i - 1) % n) for r in range(10))
        b.check_room()
    finally:
        for c in clients:
            c.disconnect()
        b.stop()


def _plain_broker_with_room(tmp_path, room_kb, keeper):
    # One plain listener in a heap of its started size plus room_kb, and a 3.1.1 client with the
    # id keeper subscribed to keep/# at QoS 1: -> (broker, port, heap KB, that client).
    text = 'listeners.tcp.default.bind = "127.0.0.1:0"\n'
    heap = (_code_heap(tmp_path, text) + room_kb * 1024) // 1024
    b = HeapBroker(tmp_path, text, "%dK" % heap)
    port = b.ports["tcp:default"]
    try:
        c = Client(port, keeper, V311)
        c.connect()
        c.subscribe("keep/#", qos=1)
    except BaseException:
        b.stop()
        raise
    return b, port, heap, c


def test_low_memory_refuses_new_connections_and_keeps_the_old(tmp_path):
    b, port, heap, first = _plain_broker_with_room(tmp_path, 80, "first")
    kept = []
    try:
        refused = 0
        for i in range(60):
            c = Client(port, "c%d" % i, V311)
            c.c.connect(c.host, c.port, keepalive=c.keepalive)
            c.c.loop_start()
            # A refusal is the broker closing the connection, not a CONNACK that is merely slow on
            # a loaded machine: wait for one or the other.
            deadline = time.monotonic() + 20
            while not (c.connected.is_set() or c.disconnected.is_set()) and time.monotonic() < deadline:
                time.sleep(0.01)
            if c.connected.is_set() and not c.rc.is_failure:
                kept.append(c)
                continue
            assert c.disconnected.is_set() or c.connected.is_set(), (
                "connection %d neither served nor refused in 20s" % i)
            refused += 1
            c.c.loop_stop()
            if refused >= 3:
                break
        assert refused, "no connection was refused in a %dK heap" % heap
        # Refused at accept ("low memory"), or closed when its CONNECT found no memory: logged.
        assert any("memory" in x and "WARNING" in x for x in b.lines), [
            x for x in b.lines if "heap report" not in x][-15:]
        assert b.proc.poll() is None
        other = kept[0] if kept else first
        other.publish("keep/x", b"still served", qos=1)
        assert first.expect(timeout=5).payload == b"still served"
    finally:
        for c in kept:
            c.disconnect()
        b.stop()


def _idle_connect(port, cid):
    """An MQTT 3.1.1 connection that then stays idle; None when the broker refuses or drops it."""
    body = b"\x00\x04MQTT\x04\x02\x00\x3c" + len(cid).to_bytes(2, "big") + cid
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"\x10" + bytes([len(body)]) + body)
        if s.recv(4) == b"\x20\x02\x00\x00":  # CONNACK, accepted
            return s
        s.close()
    except OSError:  # reset by the broker: refused
        pass
    return None


def test_memory_exhaustion_by_idle_connections_refuses_cleanly_and_recovers(tmp_path):
    # Issue 4 "Bounds": idle connections until the heap runs short; new ones are refused and
    # logged, the broker lives on, an existing client keeps working, and closing connections
    # makes room for new ones again.
    b, port, heap, sub = _plain_broker_with_room(tmp_path, 96, "keeper-sub")
    idle = []
    try:
        pub = Client(port, "keeper-pub", V311)
        pub.connect()
        refused = 0
        for i in range(400):
            s = _idle_connect(port, b"idle%d" % i)
            if s is None:
                refused += 1
                if refused >= 5:
                    break
            else:
                idle.append(s)
        assert refused >= 5, "no refusal after %d idle connections in a %dK heap" % (len(idle), heap)
        assert len(idle) >= 20, len(idle)  # the heap was used, not refused from the start
        assert any("refused" in x and "low memory" in x and "WARNING" in x for x in b.lines), b.lines[-15:]
        assert not [x for x in b.lines if "Traceback" in x or "MemoryError" in x], b.lines[-30:]
        assert b.proc.poll() is None
        # Existing clients are still served in both directions.
        pub.publish("keep/a", b"still served", qos=1)
        assert sub.expect(timeout=5).payload == b"still served"
        # Closing some makes room: new connections are accepted again.
        for s in idle[:30]:
            s.close()
        del idle[:30]
        deadline = time.monotonic() + 10
        again = None
        while again is None and time.monotonic() < deadline:
            time.sleep(0.2)
            again = _idle_connect(port, b"again")
        assert again is not None, b.lines[-15:]
        idle.append(again)
        pub.publish("keep/b", b"after recovery", qos=1)
        assert sub.expect(timeout=5).payload == b"after recovery"
        assert b.proc.poll() is None
    finally:
        for s in idle:
            s.close()
        b.stop()


# ---- firmware/ ----------------------------------------------------------------------------

FIRMWARE = os.path.join(ROOT, "firmware")


def test_mip_package_lists_every_module_in_the_device_layout():
    with open(os.path.join(ROOT, "package.json")) as f:
        urls = dict(json.load(f)["urls"])
    want = {}
    for src, dst in (("core", "gatemq"), ("ports/micropython", "gatemq/micropython")):
        for name in os.listdir(os.path.join(ROOT, src)):
            if name.endswith(".py"):
                want[dst + "/" + name] = src + "/" + name
    assert urls == want


def test_freeze_manifest_stages_the_package_and_freezes_it(tmp_path, monkeypatch):
    calls = []
    g = {"include": lambda p: calls.append(("include", p)),
         "package": lambda p, base_path=".": calls.append(("package", p, base_path))}
    monkeypatch.chdir(FIRMWARE)  # the firmware build runs a manifest from its own folder
    with open("manifest.py") as f:
        exec(compile(f.read(), "manifest.py", "exec"), g)
    assert calls[0] == ("include", "$(BOARD_DIR)/manifest.py")
    kind, name, base = calls[-1]
    assert (kind, name) == ("package", "gatemq")
    staged = os.path.join(base, "gatemq")
    assert sorted(os.listdir(staged)) == sorted(
        [n for n in os.listdir(os.path.join(ROOT, "core")) if n.endswith(".py")] + ["micropython"])
    assert sorted(os.listdir(os.path.join(staged, "micropython"))) == sorted(
        n for n in os.listdir(os.path.join(ROOT, "ports", "micropython")) if n.endswith(".py"))


# Stand-ins for the board modules main.py uses, as MicroPython source: they log what the board
# would do on stdout.
FAKE_BOARD = {
    "machine.py": """
class WDT:
    def __init__(self, timeout):
        print("WDT armed", timeout)
        self.n = 0
    def feed(self):
        self.n += 1
        if self.n == 3:
            print("WDT fed")
def reset():
    print("RESET")
    raise SystemExit(0)
""",
    "network.py": """
STA_IF = 0
def country(c):
    print("country", c)
def hostname(h):
    print("hostname", h)
class WLAN:
    def __init__(self, i):
        self.up = False
    def active(self, a):
        pass
    def isconnected(self):
        return self.up
    def connect(self, ssid, pw):
        print("join", ssid, pw)
        self.up = True
    def status(self):
        return 3
    def ifconfig(self):
        return ("10.0.0.2", "255.255.255.0", "10.0.0.1", "10.0.0.1")
""",
    "ntptime.py": """
def settime():
    print("ntp")
""",
}


def _board(tmp_path, conf_text, wifi=True, board=FAKE_BOARD):
    for name, src in board.items():
        (tmp_path / name).write_text(src)
    (tmp_path / "gatemq.conf").write_text(conf_text)
    if wifi:
        (tmp_path / "wifi.json").write_text(json.dumps({"ssid": "lab", "password": "pw", "country": "DE"}))
    with open(os.path.join(FIRMWARE, "main.py")) as f:
        src = f.read()
    src = (src.replace('"/gatemq.conf"', repr(str(tmp_path / "gatemq.conf")))
              .replace('"/wifi.json"', repr(str(tmp_path / "wifi.json")))
              .replace("RESTART_PAUSE_S = 10", "RESTART_PAUSE_S = 0"))
    (tmp_path / "board_main.py").write_text(src)
    env = dict(os.environ, MICROPYPATH="%s:%s:.frozen" % (tmp_path, MPY_LIB))
    return subprocess.Popen([MP, str(tmp_path / "board_main.py")], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, cwd=str(tmp_path))


def _output_until(p, marker, seconds=20):
    """The board's output up to the line holding marker (or all of it after seconds); stops it."""
    out = []

    def read():
        for line in p.stdout:
            out.append(line)
            if marker in line:
                return

    t = threading.Thread(target=read, daemon=True)
    t.start()
    t.join(seconds)
    p.kill()
    p.wait()
    return "".join(out)


def test_board_main_joins_wifi_serves_and_feeds_the_watchdog(tmp_path):
    text = _output_until(_board(tmp_path, 'listeners.tcp.default.bind = "127.0.0.1:0"\n'), "WDT fed")
    assert "join lab pw" in text and "ntp" in text
    assert "listener tcp:default listening on 127.0.0.1:" in text
    assert "WDT armed 30000" in text and "WDT fed" in text


def test_board_main_arms_the_longest_watchdog_the_board_takes(tmp_path):
    # An RP2040 (Pico W) refuses a watchdog timeout above 8388 ms: main.py must fall back to a
    # shorter one, not run without a watchdog.
    pico = dict(FAKE_BOARD, **{"machine.py": FAKE_BOARD["machine.py"].replace(
        "    def __init__(self, timeout):\n",
        "    def __init__(self, timeout):\n        if timeout > 8388:\n"
        "            raise ValueError('timeout too long')\n")})
    text = _output_until(_board(tmp_path, 'listeners.tcp.default.bind = "127.0.0.1:0"\n', board=pico),
                         "WDT fed", 10)
    armed = re.findall(r"WDT armed (\d+)", text)
    assert armed and int(armed[-1]) <= 8388, text
    assert "watchdog armed (%s ms)" % armed[-1] in text and "WDT fed" in text, text


def test_board_main_restarts_after_an_unexpected_error_but_not_after_a_config_error(tmp_path):
    # Its port is taken: the broker cannot start -> restart the board.
    bad = tmp_path / "bad"
    bad.mkdir()
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        p = _board(bad, 'listeners.tcp.default.bind = "127.0.0.1:%d"\n' % taken.getsockname()[1])
        out, _ = p.communicate(timeout=30)
    finally:
        taken.close()
    assert "cannot start" in out and "restarting" in out and "RESET" in out, out
    # A config error would only fail again: no restart, a message to fix the file.
    cfg = tmp_path / "cfg"
    cfg.mkdir()
    p = _board(cfg, "mqtt.max_qos_allowed = 7\n")
    out, _ = p.communicate(timeout=30)
    assert "config error" in out and "max_qos_allowed" in out, out
    assert "RESET" not in out and "fix " in out, out


# The TLS rejection matrix runs on this port through tests/host/test_tls_listeners.py in the
# MicroPython pass of `make test` (GATEMQ_TEST_RUNTIME=micropython).


def test_cacertfile_with_several_cas_trusts_each(make_broker, pki, tmp_path):
    bundle = tmp_path / "cas.pem"
    with open(os.path.join(pki, "ca.crt")) as a, open(os.path.join(pki, "other", "ca.crt")) as b:
        bundle.write_text(a.read() + b.read())
    b = mp_broker(make_broker, tls_config(pki).replace("%s/ca.crt" % pki, str(bundle)))
    port = b.ports[("ssl", "default")]
    assert handshake(port, pki, "dev05")
    assert handshake(port, pki, "impostor", os.path.join(pki, "other"))


# ---- firmware/gatemq-micropython: the port has no signal module, the launcher stops it on SIGTERM ----

def launcher_env():
    env = dict(os.environ, MICROPYTHON=MP, MICROPYTHON_OPTS="-X heapsize=8M")
    env.pop("MICROPYPATH", None)
    return env


@pytest.mark.parametrize("whole_group", [False, True])
def test_launcher_stops_the_broker_cleanly_on_sigterm(make_broker, whole_group):
    # whole_group: systemd's default KillMode=control-group signals the interpreter as well; it
    # must still be the launcher's stop (the end of the interpreter's stdin), not SIGTERM's
    # instant death.
    b = mp_broker(make_broker, "")
    interpreter = b.pid
    raw5 = R.RawClient(b.port, version=5)
    assert raw5.connect("launcher-v5", version=5).rc == 0
    if whole_group:
        os.killpg(b.proc.pid, signal.SIGTERM)
    else:
        b.proc.send_signal(signal.SIGTERM)
    assert [(p.type, p.rc) for p in raw5.until_closed()] == [(R.DISCONNECT, 0x8B)]
    assert b.proc.wait(10) == 0
    assert group_members(b.proc.pid) == []
    assert not os.path.exists("/proc/%d" % interpreter)
    assert "stop requested (stdin closed); shutting down" in b.log() and "Traceback" not in b.log()


def test_launcher_ctrl_c_at_a_terminal_stops_the_broker_once(tmp_path):
    # The terminal sends SIGINT to its whole foreground group, the interpreter included: the
    # launcher must not add a second one, which would break into the shutdown (a traceback, exit 1).
    import pty
    conf = tmp_path / "gatemq.conf"
    conf.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\ndashboard.enable = false\n')
    pid, fd = pty.fork()
    if pid == 0:
        os.execve(MP_LAUNCHER, [MP_LAUNCHER, "--config", str(conf)], launcher_env())
    out = b""
    try:
        deadline = time.monotonic() + 15
        while not re.search(rb"listening on [\d.]+:(\d+)", out) and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 4096)
        port = int(re.search(rb"listening on [\d.]+:(\d+)", out).group(1))
        raw5 = R.RawClient(port, version=5)
        assert raw5.connect("ctrl-c-v5", version=5).rc == 0
        # A person presses Ctrl-C on an idle broker: the unix port raises KeyboardInterrupt from
        # its signal handler (MICROPY_ASYNC_KBD_INTR), wherever the interpreter is; while it
        # waits in poll() that is safe.
        while b"ctrl-c-v5" not in out and time.monotonic() < deadline:
            if select.select([fd], [], [], 0.5)[0]:
                out += os.read(fd, 4096)
        time.sleep(0.3)
        os.write(fd, b"\x03")
        assert [(p.type, p.rc) for p in raw5.until_closed()] == [(R.DISCONNECT, 0x8B)]
        while select.select([fd], [], [], 10)[0]:
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # EIO: the last process on the terminal is gone
                break
            if not chunk:
                break
            out += chunk
        _, status = os.waitpid(pid, 0)
        pid = 0
        assert os.waitstatus_to_exitcode(status) == 0, out
        assert out.count(b"interrupted; shutting down") == 1 and b"Traceback" not in out, out
    finally:
        os.close(fd)
        if pid:
            os.killpg(pid, signal.SIGKILL)
            os.waitpid(pid, 0)


def test_launcher_passes_sighup_on_and_the_broker_keeps_serving(make_broker):
    # systemctl reload: the launcher turns SIGHUP into a byte on the broker's stdin pipe, and the
    # broker re-reads its files (test_auth_reload_e2e.py and test_tls_lifecycle.py check what);
    # nobody is dropped, and SIGTERM afterwards is still the clean stop.
    b = mp_broker(make_broker, "")
    with R.RawClient(b.port) as c:
        assert c.connect("before-hup").rc == 0
        mark = b.mark()
        b.proc.send_signal(signal.SIGHUP)
        assert "nothing to re-read" in b.wait_log("reload: no users", start=mark)
        with R.RawClient(b.port) as d:
            assert d.connect("after-hup").rc == 0
        assert c.is_open()
    assert b.stop() == 0


def test_launcher_exits_with_the_broker_status(tmp_path):
    good = tmp_path / "good.conf"
    good.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\n')
    bad = tmp_path / "bad.conf"
    bad.write_text("mqtt.max_qos_allowed = 7\n")
    run = lambda *a: subprocess.run([MP_LAUNCHER] + list(a), env=launcher_env(), capture_output=True,  # noqa: E731
                                    text=True, timeout=60)
    assert run("--check-config", str(good)).returncode == 0
    out = run("--config", str(bad))
    assert out.returncode == 2 and "max_qos_allowed" in out.stderr, out.stderr


@pytest.mark.parametrize("run", range(5))
def test_launcher_stops_the_broker_cleanly_on_sigterm_under_traffic(make_broker, run):
    # The interpreter is busy (a client floods QoS 0 PUBLISHes) when SIGTERM comes: the stop must
    # still be the clean one. A SIGINT would raise KeyboardInterrupt wherever the interpreter is,
    # inside the garbage collector too, and break the shutdown (a traceback, exit 1, no DISCONNECT)
    # in some 1 stop of 10.
    b = mp_broker(make_broker, "")
    raw5 = R.RawClient(b.port, version=5)
    assert raw5.connect("flood-v5", version=5).rc == 0
    burst = R.publish("flood/x", b"p" * 64, version=5) * 50
    done = threading.Event()

    def flood():
        while not done.is_set():
            try:
                raw5.sock.sendall(burst)
            except OSError:
                return

    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        time.sleep(0.5)
        b.proc.send_signal(signal.SIGTERM)
        seen = raw5.until_closed(10)
    finally:
        done.set()
        t.join(5)
    assert b.proc.wait(10) == 0, b.log()
    assert [(p.type, p.rc) for p in seen][-1:] == [(R.DISCONNECT, 0x8B)], b.log()
    assert "Traceback" not in b.log(), b.log()


def retained_flood(make_broker, n):
    """A MicroPython broker that one client flooded with n 1000-byte retained messages to new
    topics (past the heap floor the store keeps free), and that flooder, still connected."""
    b = mp_broker(make_broker, "")
    p = R.RawClient(b.port, 4, timeout=20)
    p.connect("retain-flooder")
    for i in range(n):
        p.send(R.publish("flood/%d" % i, b"r" * 1000, retain=True))
    assert p.is_open(timeout=30), "the retained flooder was cut off"
    return b, p


def test_retained_flood_to_new_topics_leaves_room_for_new_connections(make_broker):
    # One client publishing retained messages to ever new topics filled the 8 MB heap in a second
    # (retained messages never expire), and every later connection was refused for low memory.
    # Now a quarter of the heap stays out of the retained store's reach: the flood's messages past
    # that are logged as dropped, the flooder stays connected, and new clients get in and work.
    b, p = retained_flood(make_broker, 12000)
    b.wait_log("dropped: store full", timeout=10)
    sub = R.RawClient(b.port, 4, timeout=10)
    sub.connect("after-flood-sub")
    assert sub.subscribe(1, [("after/t", 1), ("flood/0", 0)]).type == R.SUBACK
    assert sub.expect(R.PUBLISH).body.startswith(R.s("flood/0"))  # kept before the floor
    pub = R.RawClient(b.port, 4, timeout=10)
    pub.connect("after-flood-pub")
    pub.send(R.publish("after/t", b"still here", qos=1, pid=5))
    pub.expect(R.PUBACK)
    assert sub.expect(R.PUBLISH).body.endswith(b"still here")
    for c in (p, sub, pub):
        c.close()
    assert b.alive()
    assert not [x for x in b.log_lines if "Traceback" in x or "internal error" in x]


def test_a_connection_flood_past_max_connections_is_not_a_log_flood(make_broker, client):
    # 200 connections against a full listener were 200 warning lines (some 140 a second under
    # the chaos tests; on a board, all of them on its serial console). One line per listener
    # every 10 s now, the next one counting the refusals in between; each is still refused.
    b = mp_broker(make_broker, 'listeners.tcp.default { bind = "127.0.0.1:0", max_connections = 1 }\n')
    holder = client(b.port, "holder")
    mark = b.mark()
    for _ in range(200):
        s = socket.create_connection(("127.0.0.1", b.port), timeout=10)
        assert s.recv(10) == b""  # closed at accept, no CONNACK
        s.close()
    time.sleep(0.5)
    lines = [x for x in b.log_lines[mark:] if "max_connections (1) reached" in x]
    assert 1 <= len(lines) <= 3, lines[:5]
    # The counts of the next line come from gatemq.logline.Throttle, tested with a fake clock in
    # tests/core/test_logline.py.
    holder.publish("x", b"still served", qos=1)
    assert b.alive()


def test_retained_messages_dropped_in_a_flood_are_counted_not_logged_one_by_one(make_broker):
    # Past the heap floor for retained messages every further one was a warning line: a flood of
    # 9000 made some 3000 of them. One line at most every 10 s now, the next counting the drops.
    b, p = retained_flood(make_broker, 9000)
    first = [x for x in b.log_lines if "dropped: store full" in x]
    assert 1 <= len(first) <= 3, (len(first), first[:3])
    # The count in the next line is gatemq.logline.Throttle's (tests/core/test_logline.py).
    assert p.is_open()
    p.close()


def test_a_config_file_that_is_not_utf8_is_a_config_error(tmp_path):
    conf = tmp_path / "gatemq.conf"
    conf.write_bytes(b'listeners.tcp.default.bind = "127.0.0.1:0"\n# caf\xe9\n')
    env = dict(os.environ, MICROPYPATH=MPY_LIB)
    p = subprocess.run([MP, "-m", "gatemq.micropython", "--check-config", str(conf)], env=env,
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2, p.stderr
    assert "%s:2: not UTF-8 text (byte 0xe9 at offset 48)" % conf in p.stderr, p.stderr
    assert "Traceback" not in p.stderr
