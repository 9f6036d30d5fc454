# Certificate lifecycle with gatemq-certs (docs/certs.md, "Intermediate CAs" to "What expires
# next"): intermediate CAs, devices issued by them with chain files and subjectAltNames, renew
# (--revoke-old), rotate-ca, list --expiring, with openssl as the judge; then end to end: a device
# of an intermediate, with SANs, over mutual TLS to a broker that trusts only the intermediate
# (ssl_options.partial_chain), client attributes from cert_san.dns in the ACL, a renewed device
# connecting and the superseded certificate refused at the handshake, on both ports. Every
# certificate here is made by gatemq-certs, none by tlsutil.
import os
import shutil
import socket
import ssl
import types

import pytest

from conftest import require_gatemq
from test_certs import certs, openssl, serial, subject, text, verify, mode
from tlsutil import Events, client_context, ssl_config, tls_client

@pytest.fixture
def pki(tmp_path):
    certs(tmp_path, "init-ca", "--cn", "lifecycle root CA")
    return tmp_path


def count_certs(path):
    return open(path).read().count("-----BEGIN CERTIFICATE-----")


def pubkey(path):
    return openssl("x509", "-noout", "-pubkey", "-in", path).stdout


def san(path):
    return openssl("x509", "-noout", "-ext", "subjectAltName", "-in", path).stdout.strip().splitlines()[-1].strip()


def issuer(path):
    return openssl("x509", "-noout", "-issuer", "-nameopt", "RFC2253", "-in", path).stdout.strip()


# ---- intermediate ----------------------------------------------------------------------------

def test_intermediate_is_a_sub_ca_signed_by_the_root_with_pathlen(pki):
    out = certs(pki, "intermediate", "site7", "--cn", "acme site7 CA", "--pathlen", "0").stdout
    d = pki / "pki" / "intermediates" / "site7"
    assert str(os.path.join("pki", "intermediates", "site7", "ca.crt")) in out
    t = text(d / "ca.crt")
    assert "X509v3 Basic Constraints: critical\n                CA:TRUE, pathlen:0" in t
    assert "Certificate Sign, CRL Sign" in t
    assert "X509v3 Authority Key Identifier" in t and "X509v3 Subject Key Identifier" in t
    assert subject(d / "ca.crt") == "subject=CN=acme site7 CA"
    assert issuer(d / "ca.crt") == "issuer=CN=lifecycle root CA"
    assert mode(d / "ca.key") == 0o600
    # Its own key: not the root's.
    assert pubkey(d / "ca.crt") != pubkey(pki / "pki" / "ca.crt")
    root = pki / "pki" / "ca.crt"
    assert verify(root, d / "ca.crt").returncode == 0
    assert verify(d / "ca.crt", d / "ca.crt").returncode != 0      # not self-signed
    assert count_certs(d / "chain.crt") == 2
    assert text(d / "ca.crt.der", der=True) == t
    # pathlen is an option; the intermediate is in the root's records.
    certs(pki, "intermediate", "region", "--pathlen", "2")
    assert "CA:TRUE, pathlen:2" in text(pki / "pki" / "intermediates" / "region" / "ca.crt")
    listing = certs(pki, "list").stdout
    assert serial(d / "ca.crt") in listing and "intermediates/site7/ca.crt" in listing
    # Never replaced by accident.
    before = (d / "ca.key").read_bytes()
    r = certs(pki, "intermediate", "site7", ok=False)
    assert r.returncode == 2 and "already exists" in r.stderr
    assert (d / "ca.key").read_bytes() == before
    r = certs(pki, "intermediate", "../x", ok=False)
    assert r.returncode == 2 and not (pki / "pki" / "x").exists()


def test_device_issued_by_an_intermediate_with_a_chain_file_and_sans(pki):
    certs(pki, "intermediate", "site7", "--pathlen", "0")
    out = certs(pki, "client", "--cn", "sensor1", "--o", "acme", "--ca", "site7",
                "--dns", "sensor1.site7.lan", "--dns", "s1.lan", "--ip", "10.7.0.1", "--ip", "fd00::7",
                "--san-email", "ops@acme.lan", "--uri", "urn:dev:sensor1").stdout
    d = pki / "pki"
    inter = d / "intermediates" / "site7" / "ca.crt"
    root = d / "ca.crt"
    assert str(os.path.join("pki", "sensor1.chain.crt")) in out
    assert san(d / "sensor1.crt") == ("DNS:sensor1.site7.lan, DNS:s1.lan, IP Address:10.7.0.1, "
                                      "IP Address:FD00:0:0:0:0:0:0:7, email:ops@acme.lan, URI:urn:dev:sensor1")
    assert issuer(d / "sensor1.crt") == "issuer=CN=site7 intermediate CA"
    assert "TLS Web Client Authentication" in text(d / "sensor1.crt")
    # The chain file is the device then the intermediate: with it the root verifies the device,
    # without it the root alone cannot.
    chain = open(d / "sensor1.chain.crt").read()
    assert chain.startswith(open(d / "sensor1.crt").read()) and chain.endswith(open(inter).read())
    assert verify(root, d / "sensor1.crt", "-untrusted", d / "sensor1.chain.crt",
                  "-purpose", "sslclient").returncode == 0
    assert verify(root, d / "sensor1.crt").returncode != 0
    # The intermediate as the only trust anchor: only with partial chain.
    assert verify(inter, d / "sensor1.crt", "-partial_chain").returncode == 0
    assert verify(inter, d / "sensor1.crt").returncode != 0
    # Recorded by the intermediate: revoke finds its CA from the file, crl --ca publishes it.
    listing = certs(pki, "list").stdout
    assert [l.split("\t")[-1] for l in listing.splitlines() if "CN=sensor1" in l] == ["intermediates/site7"]
    r = certs(pki, "revoke", d / "sensor1.crt")
    assert "crl --ca site7" in r.stdout
    certs(pki, "crl", "--ca", "site7")
    crl = d / "intermediates" / "site7" / "crl.pem"
    v = verify(root, d / "sensor1.crt", "-untrusted", inter, "-crl_check", "-CRLfile", crl)
    assert v.returncode != 0 and "revoked" in v.stdout + v.stderr
    assert openssl("crl", "-in", crl, "-noout", "-issuer", "-nameopt", "RFC2253").stdout.strip() == \
        "issuer=CN=site7 intermediate CA"
    # A root-issued device has no chain file; wrong options are refused.
    certs(pki, "client", "--cn", "plain", "--dns", "plain.lan")
    assert not (d / "plain.chain.crt").exists() and san(d / "plain.crt") == "DNS:plain.lan"
    for bad, word in ((["--ca", "nope"], "intermediate"), (["--ip", "10.0.0.300"], "10.0.0.300"),
                      (["--san-email", "no-at-sign"], "--san-email"), (["--uri", "no scheme"], "--uri")):
        r = certs(pki, "client", "--cn", "bad", *bad, ok=False)
        assert r.returncode == 2 and word in r.stderr, (bad, r.stderr)
        assert not (d / "bad.key").exists()


# ---- renew -----------------------------------------------------------------------------------

def test_renew_keeps_subject_and_sans_with_a_new_key_and_serial(pki, tmp_path):
    certs(pki, "intermediate", "site7")
    certs(pki, "client", "--cn", "sensor1", "--ou", "greenhouse", "--ca", "site7",
          "--dns", "sensor1.site7.lan", "--ip", "10.7.0.1", "--days", "90")
    d = pki / "pki"
    root, inter = d / "ca.crt", d / "intermediates" / "site7" / "ca.crt"
    old = tmp_path / "old.crt"
    shutil.copy(d / "sensor1.crt", old)
    old_key = (d / "sensor1.key").read_bytes()
    r = certs(pki, "renew", "sensor1")
    assert "replaces " + serial(old) in r.stderr
    new = d / "sensor1.crt"
    assert serial(new) != serial(old)
    assert subject(new) == subject(old) == "subject=CN=sensor1,OU=greenhouse"
    assert san(new) == san(old) == "DNS:sensor1.site7.lan, IP Address:10.7.0.1"
    assert issuer(new) == issuer(old)
    assert pubkey(new) != pubkey(old) and (d / "sensor1.key").read_bytes() != old_key
    assert mode(d / "sensor1.key") == 0o600 and mode(d / "sensor1.key.der") == 0o600
    cert_pub = pubkey(new)
    assert openssl("pkey", "-pubout", "-in", d / "sensor1.key").stdout == cert_pub
    assert openssl("pkey", "-pubout", "-inform", "DER", "-in", d / "sensor1.key.der").stdout == cert_pub
    assert text(d / "sensor1.crt.der", der=True) == text(new)
    assert open(d / "sensor1.chain.crt").read().startswith(open(new).read())
    # The same lifetime as before (90 days).
    end = openssl("x509", "-noout", "-checkend", str(89 * 86400), "-in", new, ok=False)
    assert end.returncode == 0
    assert openssl("x509", "-noout", "-checkend", str(91 * 86400), "-in", new, ok=False).returncode == 1
    # Without --revoke-old the old certificate stays good; with it, the superseded one is revoked
    # in the intermediate's CRL, written at once.
    certs(pki, "crl", "--ca", "site7")
    crl = d / "intermediates" / "site7" / "crl.pem"
    assert verify(root, old, "-untrusted", inter, "-crl_check", "-CRLfile", crl).returncode == 0
    older = tmp_path / "older.crt"
    shutil.copy(new, older)
    r = certs(pki, "renew", "sensor1", "--revoke-old")
    assert str(crl) in r.stderr or "crl.pem" in r.stderr
    v = verify(root, older, "-untrusted", inter, "-crl_check", "-CRLfile", crl)
    assert v.returncode != 0 and "revoked" in v.stdout + v.stderr
    assert verify(root, new, "-untrusted", inter, "-crl_check", "-CRLfile", crl).returncode == 0
    assert "Superseded" in openssl("crl", "-in", crl, "-noout", "-text").stdout
    # list: the renewed file's earlier certificates are replaced / revoked, the current one valid.
    status = {l.split("\t")[0]: l.split("\t")[2].strip() for l in certs(pki, "list").stdout.splitlines()}
    assert status[serial(old)] == "replaced"
    assert status[serial(older)] == "revoked"
    assert status[serial(new)] == "valid"
    # A batch device by its CN, renewed in its folder by the root.
    (pki / "devs.csv").write_text("cn,o\ngw-a,acme\n")
    certs(pki, "batch", "devs.csv")
    folder = d / "devices" / "gw-a"
    before = serial(folder / "client.crt")
    certs(pki, "renew", "gw-a")
    assert serial(folder / "client.crt") != before
    assert subject(folder / "client.crt") == "subject=CN=gw-a,O=acme"
    assert verify(root, folder / "client.crt").returncode == 0
    r = certs(pki, "renew", "nobody", ok=False)
    assert r.returncode == 2 and "no certificate" in r.stderr


# ---- rotate-ca -------------------------------------------------------------------------------

def test_rotate_ca_makes_a_new_root_and_a_combined_cacertfile(pki, tmp_path):
    certs(pki, "client", "--cn", "old-dev")
    certs(pki, "client", "--cn", "lost-dev")
    d = pki / "pki"
    old_root = tmp_path / "old-root.crt"
    shutil.copy(d / "ca.crt", old_root)
    out = certs(pki, "rotate-ca", "--cn", "lifecycle root CA 2").stdout
    assert "ca-bundle.crt" in out
    assert subject(d / "ca.crt") == "subject=CN=lifecycle root CA 2"
    assert open(d / "previous-ca" / "ca.crt").read() == open(old_root).read()
    assert pubkey(d / "ca.crt") != pubkey(old_root)
    bundle = d / "ca-bundle.crt"
    assert count_certs(bundle) == 2
    certs(pki, "client", "--cn", "new-dev")
    # The bundle trusts both generations; each root alone only its own.
    assert verify(bundle, d / "old-dev.crt").returncode == 0
    assert verify(bundle, d / "new-dev.crt").returncode == 0
    assert verify(d / "ca.crt", d / "old-dev.crt").returncode != 0
    assert verify(old_root, d / "new-dev.crt").returncode != 0
    # Revoking an old-root device works through previous-ca/, and `crl` lists both CAs' CRLs.
    certs(pki, "revoke", d / "lost-dev.crt")
    certs(pki, "crl")
    assert open(d / "crl.pem").read().count("BEGIN X509 CRL") == 2
    v = verify(bundle, d / "lost-dev.crt", "-crl_check", "-CRLfile", d / "crl.pem")
    assert v.returncode != 0 and "revoked" in v.stdout + v.stderr
    assert verify(bundle, d / "new-dev.crt", "-crl_check", "-CRLfile", d / "crl.pem").returncode == 0
    assert verify(bundle, d / "old-dev.crt", "-crl_check", "-CRLfile", d / "crl.pem").returncode == 0
    # renew moves an old-root device to the new root.
    certs(pki, "renew", "old-dev")
    assert verify(d / "ca.crt", d / "old-dev.crt").returncode == 0
    assert subject(d / "old-dev.crt") == "subject=CN=old-dev"
    # A second rotation waits for --finish, which retires the old root.
    r = certs(pki, "rotate-ca", "--cn", "third", ok=False)
    assert r.returncode == 2 and "--finish" in r.stderr
    certs(pki, "rotate-ca", "--finish")
    assert count_certs(bundle) == 1 and open(bundle).read() == open(d / "ca.crt").read()
    assert not (d / "previous-ca").exists()
    assert (d / "retired" / serial(old_root) / "ca.key").exists()
    r = certs(pki, "rotate-ca", "--cn", "lifecycle root CA 2", ok=False)
    assert r.returncode == 2 and "another name" in r.stderr


# ---- list --expiring -------------------------------------------------------------------------

def test_list_expiring_matches_openssl_checkend(pki):
    certs(pki, "intermediate", "site7", "--days", "400")
    for cn, days, extra in (("d10", 10, ()), ("d40", 40, ("--ca", "site7")), ("d400", 1000, ()),
                            ("gone", 5, ())):
        certs(pki, "client", "--cn", cn, "--days", days, *extra)
    d = pki / "pki"
    certs(pki, "revoke", d / "gone.crt")
    every = [d / (n + ".crt") for n in ("d10", "d40", "d400")] + [d / "intermediates" / "site7" / "ca.crt"]
    for spec, seconds in (("30d", 30 * 86400), ("45", 45 * 86400), ("2w", 14 * 86400), ("500d", 500 * 86400),
                          ("1h", 3600)):
        out = certs(pki, "list", "--expiring", spec)
        got = [l.split("\t")[0] for l in out.stdout.splitlines()]
        want = [serial(p) for p in every
                if openssl("x509", "-noout", "-checkend", str(seconds), "-in", p, ok=False).returncode == 1]
        assert sorted(got) == sorted(want), (spec, out.stdout)
        assert "%d certificate(s)" % len(want) in out.stderr
        ends = [l.split("\t")[1] for l in out.stdout.splitlines()]
        assert ends == sorted(ends)          # soonest first
    assert [l.split("\t")[0] for l in certs(pki, "list", "--expiring", "30d").stdout.splitlines()] == \
        [serial(d / "d10.crt")]
    assert serial(d / "gone.crt") not in certs(pki, "list", "--expiring", "3650d").stdout
    r = certs(pki, "list", "--expiring", "soon", ok=False)
    assert r.returncode == 2 and "30d" in r.stderr


# ---- end to end over mutual TLS --------------------------------------------------------------

def _fleet(tmp_path):
    """root, intermediate site7, the broker's certificate (root) and two devices (site7, SANs)."""
    certs(tmp_path, "init-ca", "--cn", "e2e root")
    certs(tmp_path, "intermediate", "site7", "--pathlen", "0")
    certs(tmp_path, "server", "--host", "localhost", "--ip", "127.0.0.1")
    certs(tmp_path, "client", "--cn", "sensor1", "--ca", "site7", "--dns", "sensor1.site7.lan",
          "--ip", "10.7.0.1", "--san-email", "ops@acme.lan")
    certs(tmp_path, "client", "--cn", "sensor2", "--ca", "site7", "--dns", "sensor2.site7.lan")
    certs(tmp_path, "crl", "--ca", "site7")
    return tmp_path / "pki"


def _dev(d, name):
    return types.SimpleNamespace(crt=str(d / (name + ".crt")), key=str(d / (name + ".key")),
                                 chain=str(d / (name + ".chain.crt")))


def _config(d, tmp_path, partial_chain=True, cacertfile=None):
    acl = tmp_path / "acl.conf"
    acl.write_text('{allow, all, subscribe, ["$SYS/brokers/+/clients/#", "hosts/#"]}.\n'
                   '{allow, all, publish, ["hosts/${client_attrs.host}/#"]}.\n'
                   '{deny, all}.\n')
    site7 = d / "intermediates" / "site7"
    ssl_extra = 'partial_chain = %s\n  enable_crl_check = true\n  crlfile = "%s"' % (
        "true" if partial_chain else "false", site7 / "crl.pem")
    ca = types.SimpleNamespace(crt=str(cacertfile)) if cacertfile else _root(site7)
    return ssl_config(_dev(d, "server"), ca, ssl_extra, """
mqtt.client_attrs_init = [{ expression = "cert_san.dns", set_as_attr = "host" }]
authorization { no_match = deny, deny_action = disconnect, sources = [ { type = file, path = "%s" } ] }
""" % acl)


def _root(d):
    return types.SimpleNamespace(crt=str(d / "ca.crt"))


def _handshake_refused(b, d, dev):
    """True when a fresh TLS connection with dev's chain gets no CONNACK (TLS 1.3 refuses after
    the client's finished, so the first read fails)."""
    ctx = client_context(str(d / "ca.crt"), dev.chain, dev.key)
    try:
        with socket.create_connection(("127.0.0.1", b.ports[("ssl", "default")]), timeout=5) as s:
            with ctx.wrap_socket(s, server_hostname="localhost") as t:
                t.sendall(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")
                return t.recv(4)[:1] != b"\x20"
    except (ssl.SSLError, OSError):
        return True


def _roundtrip(c, topic, payload):
    c.publish(topic, payload, qos=1)
    m = c.expect()
    assert (m.topic, m.payload) == (topic, payload)


RUNTIMES = pytest.mark.parametrize("runtime", ["cpython", "micropython"])


@RUNTIMES
def test_intermediate_device_with_sans_over_mutual_tls_with_partial_chain(make_broker, tmp_path, runtime):
    # Both ports. OpenSSL (CPython) anchors a chain at an intermediate CA of cacertfile only with
    # partial_chain; mbedTLS (MicroPython) would anchor it there always, so that port checks the
    # chain's top against the roots of cacertfile itself (gatemq.x509.anchors).
    require_gatemq()
    d = _fleet(tmp_path)
    # Fence: without partial_chain an intermediate alone in cacertfile anchors nothing ...
    strict = make_broker(_config(d, tmp_path, partial_chain=False), runtime=runtime)
    mark = strict.mark()
    assert _handshake_refused(strict, d, _dev(d, "sensor1"))
    strict.wait_log("rejected: unknown_ca", start=mark)
    strict.stop()
    # ... while the intermediate with its root in cacertfile does (the chain reaches the root).
    both = tmp_path / "root-and-site7.crt"
    both.write_text(open(d / "ca.crt").read() + open(d / "intermediates" / "site7" / "ca.crt").read())
    full = make_broker(_config(d, tmp_path, partial_chain=False, cacertfile=both), runtime=runtime)
    tls_client(full, _root(d), _dev(d, "sensor1"), client_id="sensor1").disconnect()
    full.stop()
    b = make_broker(_config(d, tmp_path), runtime=runtime)
    ev = Events(b)
    c = tls_client(b, _root(d), _dev(d, "sensor1"), client_id="sensor1")
    e = ev.connected(match=lambda cid: cid == "sensor1")
    assert e["client_attrs"] == {"host": "sensor1.site7.lan"}, e
    assert c.subscribe("hosts/#", qos=1) == [1]
    _roundtrip(c, "hosts/sensor1.site7.lan/temp", b"21")
    o = tls_client(b, _root(d), _dev(d, "sensor2"), client_id="sensor2")
    assert o.subscribe("hosts/#", qos=1) == [1]
    _roundtrip(o, "hosts/sensor2.site7.lan/temp", b"19")
    # Publishing under another device's host is denied (deny_action = disconnect: visible).
    c.publish("hosts/sensor2.site7.lan/temp", b"spoof", qos=1, wait=False)
    assert c.wait_disconnected(5) == 0x87
    o.expect_none(0.3)
    _roundtrip(o, "hosts/sensor2.site7.lan/temp", b"20")
    o.disconnect()
    ev.close()


@RUNTIMES
def test_renewed_device_connects_and_the_revoked_old_one_is_refused(make_broker, tmp_path, runtime):
    require_gatemq()
    d = _fleet(tmp_path)
    keep = tmp_path / "old"
    keep.mkdir()
    for f in ("sensor1.crt", "sensor1.key", "sensor1.chain.crt"):
        shutil.copy(d / f, keep / f)
    old = _dev(keep, "sensor1")
    b = make_broker(_config(d, tmp_path), runtime=runtime)
    c = tls_client(b, _root(d), old, client_id="sensor1-old")
    c.disconnect()
    mark = b.mark()
    certs(tmp_path, "renew", "sensor1", "--revoke-old")
    b.wait_log("(1 revoked)", start=mark, timeout=6)
    # The renewed device (same subject and SAN) connects and keeps its host's topics ...
    n = tls_client(b, _root(d), _dev(d, "sensor1"), client_id="sensor1-new")
    assert n.subscribe("hosts/#", qos=1) == [1]
    _roundtrip(n, "hosts/sensor1.site7.lan/x", b"renewed")
    # ... and the superseded certificate is refused at the handshake.
    assert _handshake_refused(b, d, old)
    b.wait_log("rejected: revoked", start=mark)
    # sensor2 (same intermediate, not revoked) still connects.
    o = tls_client(b, _root(d), _dev(d, "sensor2"), client_id="sensor2")
    o.disconnect()
    n.disconnect()


def test_help_documents_the_lifecycle_commands(tmp_path):
    out = certs(tmp_path, "--help").stdout
    for cmd in ("intermediate", "renew", "rotate-ca", "--expiring"):
        assert cmd in out, cmd
    assert "--pathlen" in certs(tmp_path, "intermediate", "--help").stdout
    client = certs(tmp_path, "client", "--help").stdout
    for opt in ("--ca", "--dns", "--ip", "--san-email", "--uri"):
        assert opt in client, opt
    assert "--revoke-old" in certs(tmp_path, "renew", "--help").stdout
    assert "--finish" in certs(tmp_path, "rotate-ca", "--help").stdout
    assert "--expiring" in certs(tmp_path, "list", "--help").stdout
