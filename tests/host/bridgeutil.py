# Upstream brokers for the bridge tests, started and stopped by the tests themselves:
#
#   up = MosquittoTLS(folder, pki)      # Debian's mosquitto: mutual TLS, require_certificate,
#   up.start(); up.stop(); up.start()   # use_identity_as_username, an ACL confining each gateway
#   up.port                             # to gw/<its CN>/#; the same port across restarts
#   up.client(pki.watcher)              # a paho client (clients.Client) over TLS as that certificate
#
#   bridge_config(name, server, ...)    # a bridges.mqtt.<name> block for gatemq
#   server_files(pki, "%s = %s", ...)   # another broker's config lines for the server's TLS files
#   payloads_until(c, b"end", 20)       # what a client receives up to the message "end"
#   first_seen(payloads)                # without QoS 1's repeats
import os
import signal
import socket
import subprocess
import threading
import time

from cryptography.x509.oid import NameOID

from brokers import free_port
from clients import Client, V5
from tlsutil import PKI, client_context


def bridge_pki(folder, gateway_cn="gw-17"):
    """root CA, server (localhost/127.0.0.1), gw (the gateway's bridge certificate),
    watcher (a cloud-side client allowed everything)."""
    p = PKI(folder)
    p.root = p.ca("root")
    p.server = p.leaf(p.root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
    p.gw = p.leaf(p.root, "gw", [(NameOID.COMMON_NAME, gateway_cn)])
    p.watcher = p.leaf(p.root, "watcher", [(NameOID.COMMON_NAME, "watcher")])
    # DER copies, as a board keeps them: gw.der, gw.key.der, root.der
    from cryptography.hazmat.primitives import serialization
    p.der = {"certfile": os.path.join(p.folder, "gw.der"), "keyfile": os.path.join(p.folder, "gw.key.der"),
             "cacertfile": os.path.join(p.folder, "root.der")}
    with open(p.der["certfile"], "wb") as f:
        f.write(p.gw.der)
    with open(p.der["keyfile"], "wb") as f:
        f.write(p.gw.key_obj.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    with open(p.der["cacertfile"], "wb") as f:
        f.write(p.root.der)
    return p


def server_files(pki, form, ca, cert, key):
    """The config lines naming pki's CA certificate, server certificate and server key, for a broker
    whose settings for them are ca, cert and key written as form % (setting, path)."""
    files = ((ca, pki.root.crt), (cert, pki.server.crt), (key, pki.server.key))
    return [form % (name, path) for name, path in files]


class MosquittoTLS:
    def __init__(self, folder, pki, port=None, extra=""):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.pki = pki
        self.port = port or free_port()
        self.lines = []
        self.proc = None
        self._cond = threading.Condition()
        acl = os.path.join(self.folder, "acl")
        with open(acl, "w") as f:
            f.write("user watcher\ntopic readwrite #\n\npattern readwrite gw/%u/#\n")
        self.conf = os.path.join(self.folder, "mosquitto.conf")
        with open(self.conf, "w") as f:
            f.write("\n".join([
                "per_listener_settings false",
                "listener %d 127.0.0.1" % self.port,
                *server_files(pki, "%s %s", "cafile", "certfile", "keyfile"),
                "require_certificate true",
                "use_identity_as_username true",
                "acl_file %s" % acl,
                "allow_anonymous false",
                "persistence false",
                "max_queued_messages 100000",
                "log_dest stderr",
                "log_type all",
                # as root it would switch to the mosquitto user, who cannot read our temp folder
                "user root" if os.geteuid() == 0 else "",
                extra, ""]))

    def start(self, timeout=10.0):
        self.proc = subprocess.Popen(["mosquitto", "-c", self.conf], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("mosquitto exited:\n" + "\n".join(self.lines[-30:]))
                time.sleep(0.02)
        raise RuntimeError("mosquitto did not open its port")

    def _read(self, proc):
        for raw in proc.stderr:
            with self._cond:
                self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))
                self._cond.notify_all()

    def wait_log(self, substring, timeout=10.0, start=0):
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.lines):
                    if substring in self.lines[i]:
                        return self.lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("mosquitto: no log line with %r; log:\n%s" % (
                        substring, "\n".join(self.lines[-40:])))
                self._cond.wait(min(left, 0.2))

    def mark(self):
        with self._cond:
            return len(self.lines)

    def stop(self, sig=signal.SIGTERM):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def client(self, who, client_id="", version=V5, **kw):
        c = Client(self.port, client_id, version, **kw)
        c.c.tls_set_context(client_context(self.pki.root.crt, who.crt, who.key))
        c.connect()
        return c


def bridge_config(name, server, forwards=(), subscription=(), ssl=None, extra=""):
    """forwards/subscription: [(local, remote, qos)] / [(remote, local, qos)]; ssl: dict of keys."""
    def q(v):
        return "null" if v is None else '"%s"' % v
    fw = ", ".join("{ local_topic = %s, remote_topic = %s, qos = %d }" % (q(a), q(b), c) for a, b, c in forwards)
    sb = ", ".join("{ remote_topic = %s, local_topic = %s, qos = %d }" % (q(a), q(b), c) for a, b, c in subscription)
    ssl_text = ""
    if ssl:
        ssl_text = "  ssl {\n%s\n  }\n" % "\n".join('    %s = %s' % (k, v if k == "verify" else '"%s"' % v)
                                                     for k, v in ssl.items())
    return """
bridges.mqtt.%s {
  server = "%s"
  backoff_max = 1s
  keepalive = 10s
%s  forwards = [ %s ]
  subscription = [ %s ]
  %s
}
""" % (name, server, ssl_text, fw, sb, extra)


def payloads_until(c, last, timeout, topic=None):
    """The payloads client c receives up to and including the one equal to last (each on topic,
    when given), waiting at most timeout seconds for each."""
    got = []
    while True:
        m = c.expect(timeout=timeout)
        if topic is not None:
            assert m.topic == topic
        got.append(m.payload)
        if m.payload == last:
            return got


def first_seen(got):
    """got without repeats, in the order each was first seen: QoS 1 may repeat a message, not lose
    or reorder it."""
    seen = []
    have = set()
    for p in got:
        if p not in have:
            have.add(p)
            seen.append(p)
    return seen
