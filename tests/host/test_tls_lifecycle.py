# Certificate lifecycle (docs/tls.md, "Reloading certificates" and "Acting on revocation and
# expiry"), on both runtimes: the ssl listener's files reloaded without dropping anyone (SIGHUP on
# CPython, POST /api/v5/listeners/{id}/reload on both), a failed reload keeping the old files, CA
# rotation, disconnect_revoked and disconnect_expired with real clients that stay connected.
import datetime
import hashlib
import http.client
import json
import os
import shutil
import signal
import ssl
import socket
import time

import pytest

from brokers import DEFAULT_RUNTIME
from clients import V311
from conftest import require_gatemq
from cryptography.x509.oid import NameOID
from tlsutil import PKI, client_context, now, ssl_config, ssl_port, tls_client

DASH = 'dashboard.listeners.http.bind = "127.0.0.1:0"\n'
MP = DEFAULT_RUNTIME == "micropython"


def listeners(extra=()):
    return [("tcp", "default"), ("ssl", "default"), ("http", "dashboard")] + list(extra)


class Api:
    def __init__(self, b):
        self.port = b.ports[("http", "dashboard")]
        self.token = None
        status, body = self.call("POST", "/api/v5/login", {"username": "admin", "password": "public"})
        assert status == 200, body
        self.token = body["token"]

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Content-Type": "application/json"}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        r = conn.getresponse()
        text = r.read()
        conn.close()
        return r.status, (json.loads(text) if text else None)


def _pki(tmp_path):
    p = PKI(tmp_path / "pki")
    p.root = p.ca("root")
    p.server = p.leaf(p.root, "server", [(NameOID.COMMON_NAME, "localhost")], server=True)
    p.dev1 = p.leaf(p.root, "dev1", [(NameOID.COMMON_NAME, "dev1")])
    p.dev2 = p.leaf(p.root, "dev2", [(NameOID.COMMON_NAME, "dev2")])
    return p


class Live:
    """The server's certificate, key and CA files as the broker names them, replaced by tests."""

    def __init__(self, folder, server, ca_files):
        self.crt = os.path.join(str(folder), "live-server.crt")
        self.key = os.path.join(str(folder), "live-server.key")
        self.ca = os.path.join(str(folder), "live-ca.crt")
        self.put(server)
        self.put_ca(ca_files)

    def put(self, server, key=None):
        shutil.copy(server.crt, self.crt)
        shutil.copy(key or server.key, self.key)

    def put_ca(self, files):
        with open(self.ca + ".tmp", "wb") as f:
            for path in files:
                with open(path, "rb") as g:
                    f.write(g.read())
        os.replace(self.ca + ".tmp", self.ca)


def _broker(make_broker, live, ssl_extra="", extra=""):
    require_gatemq()
    server = type("S", (), {"crt": live.crt, "key": live.key})
    ca = type("C", (), {"crt": live.ca})
    return make_broker(DASH + ssl_config(server, ca, ssl_extra, extra).replace("dashboard.enable = false", ""),
                       listeners=listeners())


def _live_broker(make_broker, tmp_path, ssl_extra=""):
    """A fresh PKI, the Live files of its server, a broker serving them and its Api."""
    p = _pki(tmp_path)
    live = Live(tmp_path, p.server, [p.root.crt])
    b = _broker(make_broker, live, ssl_extra)
    return p, live, b, Api(b)


def _reloadable(make_broker, tmp_path, client_id, filt, ssl_extra=""):
    """_live_broker's and dev1 connected as client_id and subscribed to filt at QoS 1."""
    p, live, b, api = _live_broker(make_broker, tmp_path, ssl_extra)
    c = tls_client(b, p.root, p.dev1, client_id=client_id)
    assert c.subscribe(filt, qos=1) == [1]
    return p, live, b, api, c


def _reload(b, api, how, logged):
    """Reload the ssl listener (how: "sighup" or "api") and wait for its log line with logged;
    -> ((status, body) of the API or None after a SIGHUP, the log line)."""
    mark = b.mark()
    if how == "sighup":
        b.proc.send_signal(signal.SIGHUP)   # the broker, or the MicroPython port's launcher
        r = None
    else:
        r = api.call("POST", "/api/v5/listeners/ssl:default/reload")
    return r, b.wait_log("listener ssl:default: " + logged, start=mark)


RELOAD_HOW = pytest.mark.parametrize("how", ["sighup", "api"])   # MicroPython: SIGHUP to its launcher


def _server_fingerprint(b, ca_file, dev):
    # With a client certificate: the MicroPython port requires one (mbedTLS, see tlsbind).
    ctx = client_context(ca_file, dev.chain, dev.key)
    with socket.create_connection(("127.0.0.1", ssl_port(b)), timeout=5) as s:
        with ctx.wrap_socket(s, server_hostname="localhost") as t:
            return hashlib.sha256(t.getpeercert(True)).hexdigest()


def _fp(issued):
    return hashlib.sha256(issued.der).hexdigest()


def _roundtrip(c, topic, payload):
    c.publish(topic, payload, qos=1)
    m = c.expect()
    assert (m.topic, m.payload) == (topic, payload)


def _handshake_refused(b, root, dev):
    """True when a fresh handshake with dev is refused (TLS 1.3: after the client's finished, so
    the first read fails)."""
    ctx = client_context(root.crt, dev.chain, dev.key)
    try:
        with socket.create_connection(("127.0.0.1", ssl_port(b)), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")
                data = t.recv(4)
                return data[:1] != b"\x20"
    except (ssl.SSLError, OSError):
        return True


@RELOAD_HOW
def test_reload_presents_the_new_server_certificate_and_keeps_clients(make_broker, tmp_path, how):
    p, live, b, api, c = _reloadable(make_broker, tmp_path, "keeps", "life/#")
    server2 = p.leaf(p.root, "server2", [(NameOID.COMMON_NAME, "localhost")], server=True)
    assert _server_fingerprint(b, p.root.crt, p.dev2) == _fp(p.server)
    _roundtrip(c, "life/1", b"before")

    live.put(server2)
    r, _ = _reload(b, api, how, "reloaded certfile")
    if r is not None:
        assert r == (200, {"id": "ssl:default", "reloaded": True})
    # The connected client went on through the reload; a new handshake meets the new certificate.
    _roundtrip(c, "life/2", b"after")
    assert _server_fingerprint(b, p.root.crt, p.dev2) == _fp(server2)
    c2 = tls_client(b, p.root, p.dev2, client_id="new-after")
    _roundtrip(c, "life/3", b"still")
    c2.disconnect()
    c.disconnect()


@RELOAD_HOW
def test_a_failed_reload_keeps_the_old_files_and_says_why(make_broker, tmp_path, how):
    p, live, b, api, c = _reloadable(make_broker, tmp_path, "stays", "bad/#")
    server2 = p.leaf(p.root, "server2", [(NameOID.COMMON_NAME, "localhost")], server=True)
    # server2's certificate with the first server's key: they do not match.
    live.put(server2, key=p.server.key)
    r, line = _reload(b, api, how, "reload failed")
    assert "previous certificate files stay in force" in line and "key" in line.lower(), line
    if r is not None:
        status, body = r
        assert status == 400 and body["code"] == "BAD_REQUEST", r
        assert "reload failed" in body["message"] and "previous files stay in force" in body["message"]
        assert "key" in body["message"].lower()
    # The old certificate is still served, and devices still connect.
    assert _server_fingerprint(b, p.root.crt, p.dev2) == _fp(p.server)
    c2 = tls_client(b, p.root, p.dev2, client_id="after-bad")
    _roundtrip(c, "bad/1", b"x")
    # Fixing the files and reloading again brings in the new certificate.
    live.put(server2)
    _reload(b, api, how, "reloaded certfile")
    assert _server_fingerprint(b, p.root.crt, p.dev2) == _fp(server2)
    c2.disconnect()
    c.disconnect()


def test_a_reload_of_an_unreadable_or_broken_file_is_refused(make_broker, tmp_path):
    p, live, b, api = _live_broker(make_broker, tmp_path)
    with open(live.ca, "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    status, body = api.call("POST", "/api/v5/listeners/ssl:default/reload")
    assert status == 400 and "cacertfile" in body["message"], body
    os.unlink(live.crt)
    status, body = api.call("POST", "/api/v5/listeners/ssl:default/reload")
    assert status == 400 and "live-server.crt" in body["message"], body
    assert api.call("POST", "/api/v5/listeners/ssl:nope/reload")[0] == 404
    # Still serving the first files.
    c = tls_client(b, p.root, p.dev1, client_id="still-fine")
    c.disconnect()


def test_ca_rotation_end_to_end(make_broker, tmp_path):
    p, live, b, api, old = _reloadable(make_broker, tmp_path, "old-dev", "rot/#")     # dev1: the old CA's
    new_root = p.ca("root2", cn="root 2")
    new_dev = p.leaf(new_root, "newdev", [(NameOID.COMMON_NAME, "newdev")])
    assert _handshake_refused(b, p.root, new_dev)
    # The transition: both CAs in cacertfile.
    live.put_ca([p.root.crt, new_root.crt])
    assert _reload(b, api, "api", "reloaded certfile")[0][0] == 200
    n1 = tls_client(b, p.root, new_dev, client_id="new-dev")
    o2 = tls_client(b, p.root, p.dev2, client_id="old-dev-2")
    n1.disconnect()
    o2.disconnect()
    # The old CA removed: its devices are refused at their next handshake, while the one still
    # connected stays connected.
    live.put_ca([new_root.crt])
    mark = b.mark()
    assert _reload(b, api, "api", "reloaded certfile")[0][0] == 200
    assert _handshake_refused(b, p.root, p.dev2)
    b.wait_log("rejected: unknown_ca", start=mark)
    n2 = tls_client(b, p.root, new_dev, client_id="new-dev-2")
    _roundtrip(old, "rot/1", b"old one still here")
    n2.disconnect()
    old.disconnect()


def _crl_broker(make_broker, tmp_path, p, on):
    crl = p.crl(p.root, [], str(tmp_path / "crl.pem"))
    live = Live(tmp_path, p.server, [p.root.crt])
    extra = 'enable_crl_check = true\n  crlfile = "%s"\n' % crl
    if on:
        extra += "  disconnect_revoked = true\n"
    return _broker(make_broker, live, extra), crl


def test_disconnect_revoked_drops_the_revoked_device_only(make_broker, tmp_path):
    # An MQTT 5 device gets DISCONNECT 0x87; a 3.1.1 one (no DISCONNECT from a server there) has its
    # connection closed.
    p = _pki(tmp_path)
    dev3 = p.leaf(p.root, "dev3", [(NameOID.COMMON_NAME, "dev3")])
    b, crl = _crl_broker(make_broker, tmp_path, p, True)
    victim = tls_client(b, p.root, p.dev1, client_id="victim")
    old = tls_client(b, p.root, dev3, client_id="victim311", version=V311)
    other = tls_client(b, p.root, p.dev2, client_id="other")
    assert other.subscribe("rev/#", qos=1) == [1]
    _roundtrip(other, "rev/0", b"before")
    mark = b.mark()
    t0 = time.monotonic()
    p.crl(p.root, [p.dev1, dev3], crl)
    b.wait_log_all(["client victim@", "disconnected: revoked"], start=mark, timeout=6)
    b.wait_log_all(["client victim311@", "disconnected: revoked"], start=mark, timeout=6)
    rc = victim.wait_disconnected(2)
    assert time.monotonic() - t0 < 5.5
    assert rc == 0x87, rc
    old.wait_disconnected(2)
    assert not old.c.is_connected()
    serial = "%X" % p.dev1.serial
    serial = serial if len(serial) % 2 == 0 else "0" + serial
    b.wait_log_all(["client victim@", "disconnected: revoked (certificate serial %s" % serial], start=mark)
    # The other device was not touched.
    _roundtrip(other, "rev/1", b"after")
    assert "client other disconnected" not in "\n".join(b.log_lines[mark:])
    other.disconnect()


def test_without_disconnect_revoked_a_revoked_device_stays_connected(make_broker, tmp_path):
    p = _pki(tmp_path)
    b, crl = _crl_broker(make_broker, tmp_path, p, False)
    kept = tls_client(b, p.root, p.dev1, client_id="kept")
    assert kept.subscribe("keep/#", qos=1) == [1]
    mark = b.mark()
    p.crl(p.root, [p.dev1], crl)
    b.wait_log("(1 revoked)", start=mark, timeout=6)
    # The CRL is in force (a new handshake of that certificate is refused) ...
    assert _handshake_refused(b, p.root, p.dev1)
    b.wait_log("rejected: revoked", start=mark)
    # ... and yet the open connection goes on, as in EMQX.
    _roundtrip(kept, "keep/1", b"still here")
    assert kept.c.is_connected()
    kept.disconnect()


def test_disconnect_expired_drops_a_device_whose_certificate_runs_out(make_broker, tmp_path):
    p = _pki(tmp_path)
    short = p.leaf(p.root, "short", [(NameOID.COMMON_NAME, "short")],
                   not_after=now() + datetime.timedelta(seconds=4))
    live = Live(tmp_path, p.server, [p.root.crt])
    b = _broker(make_broker, live, "disconnect_expired = true\n")
    c = tls_client(b, p.root, short, client_id="short-lived")
    other = tls_client(b, p.root, p.dev2, client_id="long-lived")
    assert other.subscribe("exp/#", qos=1) == [1]
    mark = b.mark()
    rc = c.wait_disconnected(10)
    assert rc == 0x87, rc
    b.wait_log_all(["client short-lived@", "disconnected: expired (certificate serial"], start=mark)
    _roundtrip(other, "exp/1", b"fine")
    other.disconnect()


def test_clients_api_shows_the_certificate_expiry_and_serial(make_broker, tmp_path):
    p, _, b, api = _live_broker(make_broker, tmp_path)
    c = tls_client(b, p.root, p.dev1, client_id="shown")
    status, body = api.call("GET", "/api/v5/clients/shown")
    assert status == 200, body
    want = p.dev1.cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["cert_not_after"] == want
    assert int(body["cert_serial"], 16) == p.dev1.serial
    c.disconnect()


def test_reload_interval_picks_up_changed_files(make_broker, tmp_path):
    if not MP:
        pytest.skip("reload_interval is the MicroPython port's (CPython: SIGHUP and the API)")
    p, live, b, _, c = _reloadable(make_broker, tmp_path, "kept-by-interval", "ri/#", "reload_interval = 1s\n")
    server2 = p.leaf(p.root, "server2", [(NameOID.COMMON_NAME, "localhost")], server=True)
    mark = b.mark()
    live.put(server2)
    # The port compares (mtime, size) stamps, mtime in whole seconds: move it on explicitly.
    later = time.time() + 5
    os.utime(live.crt, (later, later))
    os.utime(live.key, (later, later))
    b.wait_log("listener ssl:default: reloaded certfile", start=mark, timeout=5)
    assert _server_fingerprint(b, p.root.crt, p.dev2) == _fp(server2)
    _roundtrip(c, "ri/1", b"x")
    c.disconnect()


# ---- client attributes from the certificate (mqtt.client_attrs_init) ----

def test_client_attrs_from_the_certificate_drive_the_acl(make_broker, tmp_path):
    import ipaddress
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from tlsutil import Events
    p = _pki(tmp_path)
    # A device certificate with a CN "<device>.<site>.acme" and DNS and IP subjectAltNames.
    sensor = p.leaf(p.root, "sensor", [(NameOID.ORGANIZATIONAL_UNIT_NAME, "plant-7"),
                                       (NameOID.COMMON_NAME, "sensor1.site7.acme")])
    b_ = (x509.CertificateBuilder().subject_name(sensor.cert.subject).issuer_name(p.root.cert.subject)
          .public_key(sensor.key_obj.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(sensor.cert.not_valid_before_utc).not_valid_after(sensor.cert.not_valid_after_utc)
          .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
          .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
          .add_extension(x509.SubjectAlternativeName([
              x509.DNSName("sensor1.site7.acme.lan"), x509.DNSName("s1.lan"),
              x509.IPAddress(ipaddress.ip_address("10.7.0.1")), x509.RFC822Name("ops@acme.lan"),
              x509.UniformResourceIdentifier("urn:acme:device:sensor1")]),
              critical=False))
    from tlsutil import Issued
    sensor = Issued(sensor.key_obj, b_.sign(p.root.key_obj, hashes.SHA256()), p.root, p.folder, "sensor-san")
    other = p.leaf(p.root, "other", [(NameOID.COMMON_NAME, "sensor2.site9.acme")])
    acl = tmp_path / "acl.conf"
    acl.write_text('{allow, all, subscribe, ["$SYS/brokers/+/clients/#", "sites/#"]}.\n'
                   '{allow, all, publish, ["sites/${client_attrs.site}/#"]}.\n'
                   '{deny, all}.\n')
    extra = """
mqtt.client_attrs_init = [
  { expression = "nth(2, tokens(cn, '.'))", set_as_attr = site }
  { expression = "cert_san.dns", set_as_attr = host }
  { expression = "nth(1, tokens(cert_san.dns, ','))", set_as_attr = first_host }
  { expression = "cert_san.ip", set_as_attr = ip }
  { expression = "cert_san.email", set_as_attr = email }
  { expression = "cert_san.uri", set_as_attr = uri }
  { expression = "concat([upper(client_attrs.site), '-', substr(hash('sha256', cn), 0, 8)])", set_as_attr = tag }
]
authorization { no_match = deny, deny_action = disconnect, sources = [ { type = file, path = "%s" } ] }
""" % acl
    live = Live(tmp_path, p.server, [p.root.crt])
    b = _broker(make_broker, live, "", extra)
    ev = Events(b)
    api = Api(b)
    c = tls_client(b, p.root, sensor, client_id="sensor1")
    e = ev.connected(match=lambda cid: cid == "sensor1")
    import hashlib as _h
    want = {"site": "site7", "host": "sensor1.site7.acme.lan,s1.lan", "first_host": "sensor1.site7.acme.lan",
            "ip": "10.7.0.1", "email": "ops@acme.lan", "uri": "urn:acme:device:sensor1",
            "tag": "SITE7-" + _h.sha256(b"sensor1.site7.acme").hexdigest()[:8]}
    assert e["client_attrs"] == want, e
    status, body = api.call("GET", "/api/v5/clients/sensor1")
    assert status == 200 and body["client_attrs"] == want, body
    # The ACL: its own site's topics, no other site's.
    assert c.subscribe("sites/#", qos=1) == [1]
    _roundtrip(c, "sites/site7/temp", b"21")
    c.publish("sites/site9/temp", b"x", qos=1, wait=False)
    assert c.wait_disconnected(5) == 0x87     # deny_action = disconnect: the denial is visible
    o = tls_client(b, p.root, other, client_id="sensor2")
    assert ev.connected(match=lambda cid: cid == "sensor2")["client_attrs"] == {"site": "site9", "tag": "SITE9-" + _h.sha256(b"sensor2.site9.acme").hexdigest()[:8]}
    assert o.subscribe("sites/#", qos=1) == [1]
    _roundtrip(o, "sites/site9/temp", b"19")
    o.disconnect()
    ev.close()


def test_clientid_override_names_the_device_by_its_certificate(make_broker, tmp_path):
    # mqtt.clientid_override (EMQX 5.7+): whatever client id a device sends, it is known by the
    # expression's value, here the first label of its CN; a second connection of the same
    # certificate under another client id takes the session over.
    from tlsutil import Events
    p = _pki(tmp_path)
    sensor = p.leaf(p.root, "sensor", [(NameOID.COMMON_NAME, "sensor1.site7.acme")])
    live = Live(tmp_path, p.server, [p.root.crt])
    b = _broker(make_broker, live, "", 'mqtt.clientid_override = "concat([\'dev-\', nth(1, tokens(cn, \'.\'))])"\n')
    ev = Events(b)
    api = Api(b)
    c = tls_client(b, p.root, sensor, client_id="whatever-it-says")
    assert ev.connected(match=lambda cid: cid == "dev-sensor1")["clientid"] == "dev-sensor1"
    status, body = api.call("GET", "/api/v5/clients/dev-sensor1")
    assert status == 200 and body["clientid"] == "dev-sensor1", body
    assert api.call("GET", "/api/v5/clients/whatever-it-says")[0] == 404
    again = tls_client(b, p.root, sensor, client_id="something-else")
    assert c.wait_disconnected(5) == 0x8E       # session taken over: the same client id
    ev.close()
    assert api.call("GET", "/api/v5/clients/dev-sensor1")[0] == 200
    assert again.subscribe("ovr/#", qos=1) == [1]
    _roundtrip(again, "ovr/1", b"x")
    again.disconnect()


def test_peersni_is_the_server_name_the_client_sent(make_broker, tmp_path):
    # client_attrs_init's peersni: the TLS server name (SNI) of the client's handshake. The
    # MicroPython port's tls module does not report it, so that port refuses the expression at
    # start, naming the key, rather than leave the attribute silently unset.
    import subprocess
    from rawmqtt import RawClient
    p = _pki(tmp_path)
    live = Live(tmp_path, p.server, [p.root.crt])
    extra = DASH + 'mqtt.client_attrs_init = [ { expression = "peersni", set_as_attr = sni },\n' \
        '  { expression = "cn", set_as_attr = device } ]\n'
    if MP:
        from test_exit_status import MP as MICROPYTHON, MPY_LIB
        server = type("S", (), {"crt": live.crt, "key": live.key})
        conf = tmp_path / "sni.conf"
        conf.write_text(ssl_config(server, type("C", (), {"crt": live.ca}), "", extra))
        r = subprocess.run([MICROPYTHON, "-m", "gatemq.micropython", "--check-config", str(conf)],
                           env=dict(os.environ, MICROPYPATH=MPY_LIB), capture_output=True, text=True, timeout=60)
        assert r.returncode == 2, r
        assert "mqtt.client_attrs_init.1.expression: peersni is not available on the MicroPython port" in r.stderr
        # Fence: without that row the same config is valid there.
        conf.write_text(ssl_config(server, type("C", (), {"crt": live.ca}), "", extra.replace(
            '{ expression = "peersni", set_as_attr = sni },', "")))
        r = subprocess.run([MICROPYTHON, "-m", "gatemq.micropython", "--check-config", str(conf)],
                           env=dict(os.environ, MICROPYPATH=MPY_LIB), capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r
        return
    b = _broker(make_broker, live, "", extra)
    api = Api(b)
    seen = {}
    for sni in ("localhost", None):
        r = RawClient(ssl_port(b))
        ctx = client_context(p.root.crt, p.dev1.chain, p.dev1.key)
        if sni is None:
            ctx.check_hostname = False      # an IP address as the server name: no SNI is sent
        r.sock = ctx.wrap_socket(r.sock, server_hostname=sni or "127.0.0.1")
        cid = "sni-%s" % sni
        assert r.connect(cid).rc == 0
        status, body = api.call("GET", "/api/v5/clients/" + cid)
        assert status == 200, body
        seen[sni] = body["client_attrs"]
        r.close()
    assert seen == {"localhost": {"sni": "localhost", "device": "dev1"}, None: {"device": "dev1"}}


def test_an_expression_that_does_not_parse_is_a_config_error_with_its_position(tmp_path):
    import subprocess
    from brokers import PYTHON
    conf = tmp_path / "g.conf"
    conf.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\nmqtt.client_attrs_init = [\n'
                    '  { expression = "nth(1, tokens(cn \'.\'))", set_as_attr = site }\n]\n')
    r = subprocess.run([PYTHON, "-m", "gatemq.cpython", "--check-config", str(conf)], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2, r
    assert "g.conf:3:18: mqtt.client_attrs_init.1.expression" in r.stderr, r.stderr
    assert "column 18 of the expression" in r.stderr, r.stderr
