# Certificate identity over real mutual-TLS handshakes (peer-cert-mapping spec): every mapping mode
# for username and client id, seen in the $SYS connected event; the order of steps; the fallbacks;
# the unsafe-text rule; Mosquitto's keys; mosquitto_pub/sub and paho 3.1.1/5.0 as clients.
# Expected values are computed here from the certificate (cryptography, hashlib, base64, openssl).
import subprocess
import time

import pytest
from cryptography.x509.oid import NameOID

from clients import V311, V5, props
from conftest import require_gatemq
import rawmqtt
from tlsutil import (PKI, Events, server_pki, expected_cn, expected_dn, md5_value, pem_value, raw_tls,
                     ssl_config, ssl_port, tls_client)

@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    require_gatemq()
    p = server_pki(tmp_path_factory.mktemp("pki"))
    # Two CNs, a multi-byte O and characters the dn string must escape.
    p.dev = p.leaf(p.root, "dev", [(NameOID.COUNTRY_NAME, "DE"), (NameOID.ORGANIZATION_NAME, "Müller, GmbH"),
                                   (NameOID.ORGANIZATIONAL_UNIT_NAME, "a+b;c"),
                                   (NameOID.COMMON_NAME, "sensor-1"), (NameOID.COMMON_NAME, "rack 7")])
    p.simple = p.leaf(p.root, "simple", [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.COMMON_NAME, "dev-42")])
    p.nocn = p.leaf(p.root, "nocn", [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.ORGANIZATIONAL_UNIT_NAME, "x")])
    p.unsafe = p.leaf(p.root, "unsafe", [(NameOID.ORGANIZATION_NAME, "acme"), (NameOID.COMMON_NAME, "bad\x01cn")])
    return p



def cfg(pki, extra="", ssl_extra=""):
    return ssl_config(pki.server, pki.root, ssl_extra=ssl_extra, extra=extra)


def connected_event(ev, b, pki, cert, **kw):
    """Connect over mutual TLS with cert, disconnect, and return the $SYS connected event."""
    c = tls_client(b, pki.root, cert, **kw)
    e = ev.connected()
    c.disconnect()
    return e


def refused(b, pki, cert, **kw):
    """Connect over mutual TLS with cert, expecting a refusal; return paho's reason code."""
    c = tls_client(b, pki.root, cert, connect=False, **kw)
    c.connect(expect_ok=False)
    c.disconnect()
    return c.rc


def expected(pki, cert, mode):
    der = cert.der
    return {"cn": expected_cn(cert.cert), "dn": expected_dn(cert.cert), "pem": pem_value(der),
            "md5": md5_value(der), "crt": der.decode("latin-1")}[mode]


def test_expected_values_follow_the_spec_examples(pki, tmp_path):
    # The independent expectations themselves, on the spec's examples.
    other = PKI(tmp_path)
    c = other.leaf(pki.root, "ex", [(NameOID.ORGANIZATION_NAME, "Org"), (NameOID.COMMON_NAME, "first"),
                                    (NameOID.COMMON_NAME, "second")])
    assert expected_dn(c.cert) == "CN=second,CN=first,O=Org"
    assert expected_cn(c.cert) == "first,second"
    c = other.leaf(pki.root, "ex2", [(NameOID.ORGANIZATION_NAME, 'a,b+c;d<e>f"g\\h=i~j'),
                                     (NameOID.COMMON_NAME, " #lead and trail ")])
    assert expected_dn(c.cert) == 'CN=\\ #lead and trail\\ ,O=a\\,b\\+c\\;d\\<e\\>f\\"g\\\\h=i\\7Ej'


MODES = ["cn", "dn", "crt", "pem", "md5"]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("target", ["username", "clientid"])
def test_mapping_mode(make_broker, pki, mode, target):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_%s = %s" % (target, mode)))
    ev = Events(b)
    version = V311 if mode in ("dn", "md5") else V5
    c = tls_client(b, pki.root, pki.dev, client_id="connect-id", version=version,
                   username="connect-user", password="pw")
    e = ev.connected()
    want = expected(pki, pki.dev, mode)
    assert e[target] == want
    other = "clientid" if target == "username" else "username"
    assert e[other] == ("connect-id" if other == "clientid" else "connect-user")
    assert e["cert_common_name"] == "sensor-1,rack 7"
    assert e["cert_subject"] == expected_dn(pki.dev.cert)
    if target == "clientid" and mode in ("cn", "md5"):
        assert e["_topic"].endswith("/clients/%s/connected" % want)
    c.disconnect()


def test_client_id_from_certificate_takes_over(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_clientid = cn"))
    ev = Events(b)
    first = tls_client(b, pki.root, pki.simple, client_id="one")
    assert ev.connected()["clientid"] == "dev-42"
    second = tls_client(b, pki.root, pki.simple, client_id="two")
    assert ev.connected()["clientid"] == "dev-42"
    assert first.wait_disconnected(5) == 0x8E  # Session taken over
    assert second.c.is_connected()
    b.wait_log("taken over")
    second.disconnect()


def test_use_username_as_clientid_comes_after_the_certificate(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn\nmqtt.peer_cert_as_clientid = md5\n"
                             "mqtt.use_username_as_clientid = true"))
    e = connected_event(Events(b), b, pki, pki.simple, client_id="connect-id", username="connect-user")
    assert (e["username"], e["clientid"]) == ("dev-42", "dev-42")


def test_use_username_as_clientid_with_connect_username(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_clientid = cn\nmqtt.use_username_as_clientid = true"))
    e = connected_event(Events(b), b, pki, pki.simple, client_id="connect-id", username="u-17")
    assert (e["username"], e["clientid"]) == ("u-17", "u-17")
    # No username at all: the effective username is empty, refused with 0x85.
    assert refused(b, pki, pki.simple, client_id="connect-id").value == 0x85


def test_no_cn_is_refused_under_a_cn_mapping(make_broker, pki):
    # Issue 11: a verified certificate without the mapped field must not log in as anyone.
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn"))
    assert refused(b, pki, pki.nocn, client_id="own-id", username="admin").value == 0x87
    b.wait_log("the certificate has no CN")
    e = connected_event(Events(b), b, pki, pki.simple, client_id="own-id", username="admin")
    assert e["username"] == "dev-42"


def test_no_cn_falls_back_to_connect_values(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn\nmqtt.peer_cert_as_clientid = cn\n"
                             "mqtt.peer_cert_require_field = false"))
    e = connected_event(Events(b), b, pki, pki.nocn, client_id="own-id", username="connect-user")
    assert (e["username"], e["clientid"]) == ("connect-user", "own-id")
    assert e["cert_common_name"] is None
    assert e["cert_subject"] == "OU=x,O=acme"


def test_assigned_client_identifier_only_for_an_empty_connect_id(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_clientid = cn"))
    ev = Events(b)
    c = tls_client(b, pki.root, pki.simple, client_id="")
    assert getattr(c.connack_props, "AssignedClientIdentifier", None) == "dev-42"
    assert ev.connected()["clientid"] == "dev-42"
    c.disconnect()
    c = tls_client(b, pki.root, pki.simple, client_id="given")
    assert not hasattr(c.connack_props, "AssignedClientIdentifier")
    assert ev.connected()["clientid"] == "dev-42"
    c.disconnect()


@pytest.mark.parametrize("version", [4, 5])
def test_empty_client_id_still_refused_without_clean_start(make_broker, pki, version):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_clientid = cn"))
    r = raw_tls(b, pki.root, pki.simple, version=version)
    try:
        ack = r.connect("", clean=False)
        assert ack.rc == (0x85 if version == 5 else 2)
        r.until_closed()
    finally:
        r.close()


def test_unsafe_cn_ends_the_connection_before_connack(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn"))
    r = raw_tls(b, pki.root, pki.unsafe, version=5)
    try:
        port = r.sock.getsockname()[1]
        r.send(rawmqtt.connect("u1", version=5))
        assert r.until_closed() == []
    finally:
        r.close()
    line = b.wait_log("before CONNACK")
    assert ":%d" % port in line and "control characters" in line


def test_unsafe_cn_passes_with_allow_unsafe(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn\nmqtt.peer_cert_allow_unsafe = true"))
    assert connected_event(Events(b), b, pki, pki.unsafe, client_id="u1")["username"] == "bad\x01cn"


def test_use_identity_as_username_drops_connect_credentials(make_broker, pki, tmp_path):
    b = make_broker(cfg(pki, "mqtt.use_identity_as_username = true"))
    e = connected_event(Events(b), b, pki, pki.dev, client_id="m1", username="connect-user", password="pw")
    assert e["username"] == "sensor-1"
    assert refused(b, pki, pki.nocn, client_id="m2", username="connect-user").value == 0x87
    rc = refused(b, pki, pki.nocn, client_id="m3", version=V311, username="connect-user")
    assert rc.value in (5, 0x87)  # paho maps the 3.1.1 return code 5 to "Not authorized"
    assert rc.is_failure


def test_use_subject_as_username_is_openssl_rfc2253(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.use_subject_as_username = true"))
    ev = Events(b)
    out = subprocess.run(["openssl", "x509", "-in", pki.dev.crt, "-noout", "-subject", "-nameopt", "RFC2253"],
                         capture_output=True, text=True, check=True).stdout.strip()
    assert out.startswith("subject=")
    e = connected_event(ev, b, pki, pki.dev, client_id="m1", username="connect-user")
    assert e["username"] == out[len("subject="):]


def test_mosquitto_clients_over_mutual_tls(make_broker, pki):
    b = make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn"))
    ev = Events(b)
    tls = ["-h", "127.0.0.1", "-p", str(ssl_port(b)), "--cafile", pki.root.crt,
           "--cert", pki.simple.chain, "--key", pki.simple.key]
    sub = subprocess.Popen(["mosquitto_sub"] + tls + ["-i", "msub", "-t", "tls/demo", "-C", "1", "-v", "-W", "10"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        e = ev.connected()
        assert (e["clientid"], e["username"]) == ("msub", "dev-42")
        time.sleep(0.3)  # let the SUBSCRIBE land
        pub = subprocess.run(["mosquitto_pub"] + tls + ["-i", "mpub", "-V", "mqttv5", "-t", "tls/demo", "-m", "hi"],
                             capture_output=True, text=True, timeout=10)
        assert pub.returncode == 0, pub.stderr
        e = ev.connected()
        assert (e["clientid"], e["username"], e["proto_ver"]) == ("mpub", "dev-42", 5)
        out, err = sub.communicate(timeout=10)
        assert sub.returncode == 0, err
        assert out.strip() == "tls/demo hi"
    finally:
        if sub.poll() is None:
            sub.kill()
            sub.wait()


DEVICE_ACL = '{allow, all, all, ["devices/${cert_common_name}/#"]}.\n{deny, all}.\n'


def _device_broker(make_broker, pki, tmp_path, extra=""):
    acl = tmp_path / "acl.conf"
    acl.write_text(DEVICE_ACL)
    return make_broker(cfg(pki, "mqtt.peer_cert_as_username = cn\n"
                                'authorization { no_match = deny, sources = [{type = file, path = "%s"}] }\n%s'
                           % (acl, extra)))


def _device(pki, name, cn):
    return pki.leaf(pki.root, name, [(NameOID.COMMON_NAME, cn)])


def _session(b, pki, cert, client_id, clean=False, connect=True):
    """A client whose session outlives it (expiry 600 s), resumed unless clean."""
    return tls_client(b, pki.root, cert, client_id=client_id, clean=clean,
                      connect_props=props("CONNECT", SessionExpiryInterval=600), connect=connect)


def _subscribed_session(b, pki, cert, client_id, topic):
    c = _session(b, pki, cert, client_id)
    assert c.subscribe(topic, 1) == [1]
    return c


def test_a_device_cannot_resume_or_kick_another_devices_session(make_broker, pki, tmp_path):
    # Issue 11, high 1: CN=alice with client id "bob" got bob's session and his commands.
    b = _device_broker(make_broker, pki, tmp_path)
    alice, bob = _device(pki, "alice", "alice"), _device(pki, "bob", "bob")
    c = _subscribed_session(b, pki, bob, "bob", "devices/bob/#")
    # while bob is connected, alice can neither resume nor kick his session
    for clean in (False, True):
        a = _session(b, pki, alice, "bob", clean=clean, connect=False)
        a.connect(expect_ok=False)
        assert a.rc.value == 0x87 and not a.session_present
        a.disconnect()
    b.wait_log("has a session made by another identity")
    assert c.c.is_connected()
    c.disconnect()
    # offline: a command for bob is queued; alice's attempt changes nothing; bob gets it
    ctl = tls_client(b, pki.root, bob, client_id="bob-ctl")
    ctl.publish("devices/bob/cmd", b"open", 1)
    ctl.disconnect()
    a = _session(b, pki, alice, "bob", connect=False)
    a.connect(expect_ok=False)
    assert a.rc.value == 0x87
    a.expect_none(0.3)
    a.disconnect()
    c = _session(b, pki, bob, "bob")
    assert c.session_present
    assert c.expect().payload == b"open"
    c.disconnect()


def test_a_renewed_certificate_keeps_its_session(make_broker, pki, tmp_path):
    # The session is bound to the certificate's subject: a renewal (new key, same subject) resumes.
    b = _device_broker(make_broker, pki, tmp_path)
    old, new = _device(pki, "carol-old", "carol"), _device(pki, "carol-new", "carol")
    _subscribed_session(b, pki, old, "carol", "devices/carol/#").disconnect()
    c = _session(b, pki, new, "carol")
    assert c.session_present
    c.disconnect()


def test_looser_identity_check_still_reauthorizes_subscriptions(make_broker, pki, tmp_path):
    b = _device_broker(make_broker, pki, tmp_path, "mqtt.session_identity_check = false")
    alice, bob = _device(pki, "alice", "alice"), _device(pki, "bob", "bob")
    _subscribed_session(b, pki, bob, "bob", "devices/bob/#").disconnect()
    a = _session(b, pki, alice, "bob")
    assert a.session_present
    b.wait_log("subscription(s) of its resumed session dropped")
    ctl = tls_client(b, pki.root, bob, client_id="bob-ctl")
    ctl.publish("devices/bob/cmd", b"secret", 1)
    assert a.subscribe("devices/alice/#", 1) == [1]
    ctl2 = tls_client(b, pki.root, alice, client_id="alice-ctl")
    ctl2.publish("devices/alice/cmd", b"hers", 1)
    assert a.expect().payload == b"hers"       # the positive fence: bob's command never came first
    a.expect_none(0.2)
    for x in (a, ctl, ctl2):
        x.disconnect()


def test_a_slash_in_the_cn_does_not_reach_another_subtree(make_broker, pki, tmp_path):
    # Issue 11, medium 8: CN "bob/cmd" matched devices/${cert_common_name}/# as devices/bob/cmd/#.
    b = _device_broker(make_broker, pki, tmp_path)
    evil, good = _device(pki, "evil", "bob/cmd"), _device(pki, "good", "bob")
    e = tls_client(b, pki.root, evil, client_id="evil")
    assert e.subscribe("devices/bob/cmd/#", 1) == [0x87]
    b.wait_log("holds '/', '+', '#' or NUL")
    g = tls_client(b, pki.root, good, client_id="good")
    assert g.subscribe("devices/bob/cmd/#", 1) == [1]
    e.disconnect()
    g.disconnect()
