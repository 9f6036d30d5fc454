# gatemq-certs end to end: the installed console script in a temporary folder, with openssl as
# the judge of what it wrote.
import datetime
import os
import shutil
import stat
import subprocess
import sys

import pytest
from cryptography import x509

BIN = os.path.join(os.path.dirname(sys.executable), "gatemq-certs")
OPENSSL = shutil.which("openssl")

if OPENSSL is None:  # the whole file is an openssl-oracle test
    raise RuntimeError("tests/host/test_certs.py needs the openssl command line tool")


def certs(cwd, *args, ok=True):
    r = subprocess.run([BIN] + [str(a) for a in args], cwd=str(cwd), capture_output=True,
                       text=True, timeout=60)
    if ok:
        assert r.returncode == 0, r.stderr
    return r


def openssl(*args, ok=True):
    r = subprocess.run([OPENSSL] + [str(a) for a in args], capture_output=True, text=True,
                       timeout=60)
    if ok:
        assert r.returncode == 0, r.stdout + r.stderr
    return r


def text(cert, der=False):
    return openssl("x509", "-noout", "-text", "-in", cert, *(["-inform", "DER"] if der else [])).stdout


def subject(cert):
    return openssl("x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in", cert).stdout.strip()


def serial(cert):
    return openssl("x509", "-noout", "-serial", "-in", cert).stdout.strip().split("=")[1]


def verify(ca, cert, *extra):
    return openssl("verify", "-CAfile", ca, *extra, cert, ok=False)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def load(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def lifetime_days(path):
    c = load(path)
    return (c.not_valid_after_utc - c.not_valid_before_utc) / datetime.timedelta(days=1)


@pytest.fixture
def pki(tmp_path):
    certs(tmp_path, "init-ca", "--cn", "test fleet CA")
    return tmp_path


def test_help_documents_every_command(tmp_path):
    out = certs(tmp_path, "--help").stdout
    for cmd in ("init-ca", "server", "client", "batch", "revoke", "crl", "list", "demo", "--dir"):
        assert cmd in out
    assert "--serial-number" in certs(tmp_path, "client", "--help").stdout
    assert "--ip" in certs(tmp_path, "server", "--help").stdout
    r = certs(tmp_path, "frobnicate", ok=False)
    assert r.returncode == 2


def test_init_ca_is_a_ca_with_a_private_key(tmp_path):
    out = certs(tmp_path, "init-ca", "--cn", "acme CA", "--days", "100").stdout
    d = tmp_path / "pki"
    assert str(os.path.join("pki", "ca.crt")) in out
    assert mode(d / "ca.key") == 0o600
    t = text(d / "ca.crt")
    assert "CA:TRUE" in t
    assert "X509v3 Basic Constraints: critical" in t
    assert "Certificate Sign, CRL Sign" in t
    assert "X509v3 Subject Key Identifier" in t
    assert "ASN1 OID: prime256v1" in t
    assert subject(d / "ca.crt") == "subject=CN=acme CA"
    assert verify(d / "ca.crt", d / "ca.crt").returncode == 0
    assert 100 <= lifetime_days(d / "ca.crt") < 100.01
    # The DER copy is the same certificate.
    assert text(d / "ca.crt.der", der=True) == t


def test_init_ca_refuses_to_overwrite(pki):
    before = (pki / "pki" / "ca.key").read_bytes(), (pki / "pki" / "ca.crt").read_bytes()
    r = certs(pki, "init-ca", ok=False)
    assert r.returncode == 2
    assert "already exists" in r.stderr and "refusing" in r.stderr
    after = (pki / "pki" / "ca.key").read_bytes(), (pki / "pki" / "ca.crt").read_bytes()
    assert before == after
    # Half a CA (the key alone) is protected too.
    (pki / "pki" / "ca.crt").unlink()
    assert certs(pki, "init-ca", ok=False).returncode == 2
    assert (pki / "pki" / "ca.key").read_bytes() == before[0]


def test_commands_without_a_ca_say_to_run_init_ca(tmp_path):
    r = certs(tmp_path, "client", "--cn", "x", ok=False)
    assert r.returncode == 2 and "init-ca" in r.stderr
    assert not (tmp_path / "pki" / "x.key").exists()


def test_server_certificate_has_sans_and_server_auth(pki):
    certs(pki, "server", "--host", "localhost", "--host", "broker.example.net",
          "--ip", "127.0.0.1", "--ip", "::1", "--days", "30")
    d = pki / "pki"
    t = text(d / "server.crt")
    assert "DNS:localhost, DNS:broker.example.net, IP Address:127.0.0.1, " \
           "IP Address:0:0:0:0:0:0:0:1" in t
    assert "TLS Web Server Authentication" in t
    assert "CA:FALSE" in t
    assert subject(d / "server.crt") == "subject=CN=localhost"
    ca = d / "ca.crt"
    assert verify(ca, d / "server.crt", "-purpose", "sslserver").returncode == 0
    assert verify(ca, d / "server.crt", "-verify_hostname", "broker.example.net").returncode == 0
    assert verify(ca, d / "server.crt", "-verify_ip", "::1").returncode == 0
    assert verify(ca, d / "server.crt", "-verify_hostname", "other.example").returncode != 0
    assert verify(ca, d / "server.crt", "-purpose", "sslclient").returncode != 0
    for key in ("server.key", "server.key.der"):
        assert mode(d / key) == 0o600
    # The DER files are the same certificate and a matching key, as MicroPython's tls needs.
    assert text(d / "server.crt.der", der=True) == t
    cert_pub = openssl("x509", "-noout", "-pubkey", "-in", d / "server.crt").stdout
    key_pub = openssl("pkey", "-pubout", "-inform", "DER", "-in", d / "server.key.der").stdout
    assert cert_pub == key_pub
    assert 30 <= lifetime_days(d / "server.crt") < 30.01


def test_server_needs_a_name_and_valid_addresses(pki):
    r = certs(pki, "server", ok=False)
    assert r.returncode == 2 and "--host" in r.stderr
    r = certs(pki, "server", "--ip", "300.1.2.3", ok=False)
    assert r.returncode == 2 and "300.1.2.3" in r.stderr
    assert not (pki / "pki" / "server.key").exists()


def test_client_subject_fields_and_client_auth(pki):
    out = certs(pki, "client", "--cn", "sensor-7", "--o", "Acme, Inc.", "--ou", "greenhouse",
                "--c", "DE", "--st", "Bavaria", "--l", "Munich", "--email", "ops@acme.example",
                "--uid", "u-7", "--serial-number", "HW0007").stdout
    d = pki / "pki"
    assert os.path.join("pki", "sensor-7.crt") in out
    assert subject(d / "sensor-7.crt") == (
        "subject=emailAddress=ops@acme.example,UID=u-7,serialNumber=HW0007,CN=sensor-7,"
        "OU=greenhouse,O=Acme\\, Inc.,L=Munich,ST=Bavaria,C=DE")
    t = text(d / "sensor-7.crt")
    assert "TLS Web Client Authentication" in t
    assert "TLS Web Server Authentication" not in t
    assert "X509v3 Authority Key Identifier" in t
    assert verify(d / "ca.crt", d / "sensor-7.crt", "-purpose", "sslclient").returncode == 0
    for f in ("sensor-7.key", "sensor-7.key.der"):
        assert mode(d / f) == 0o600
    for f in ("sensor-7.crt", "sensor-7.crt.der"):
        assert mode(d / f) & 0o077 != 0  # certificates are public
    assert text(d / "sensor-7.crt.der", der=True) == t


def test_client_name_out_dir_and_no_eku(pki, tmp_path):
    out_dir = tmp_path / "elsewhere"
    certs(pki, "client", "--cn", "probe", "--name", "p1", "--out-dir", out_dir, "--no-eku")
    t = text(out_dir / "p1.crt")
    assert "Extended Key Usage" not in t
    assert mode(out_dir / "p1.key") == 0o600
    assert verify(pki / "pki" / "ca.crt", out_dir / "p1.crt").returncode == 0
    # An unsafe CN becomes a safe file name by default.
    certs(pki, "client", "--cn", "../../etc/x")
    assert (pki / "pki" / "___.._etc_x.crt").exists()
    assert subject(pki / "pki" / "___.._etc_x.crt") == "subject=CN=../../etc/x"
    r = certs(pki, "client", "--cn", "bad", "--c", "Germany", ok=False)
    assert r.returncode == 2 and "two-letter" in r.stderr


def test_client_refuses_to_overwrite_unless_forced(pki):
    d = pki / "pki"
    certs(pki, "client", "--cn", "dev")
    first = serial(d / "dev.crt")
    r = certs(pki, "client", "--cn", "dev", ok=False)
    assert r.returncode == 2 and "--force" in r.stderr
    assert serial(d / "dev.crt") == first
    # A forced reissue writes a new key file: a key someone made world-readable is not kept so.
    os.chmod(d / "dev.key", 0o644)
    certs(pki, "client", "--cn", "dev", "--force")
    assert serial(d / "dev.crt") != first
    assert mode(d / "dev.key") == 0o600


def test_rsa_keys_on_request(tmp_path):
    certs(tmp_path, "init-ca", "--rsa", "2048")
    certs(tmp_path, "client", "--cn", "rsa-dev", "--rsa", "2048")
    d = tmp_path / "pki"
    for cert in ("ca.crt", "rsa-dev.crt"):
        t = text(d / cert)
        assert "rsaEncryption" in t and "Public-Key: (2048 bit)" in t
        assert "sha256WithRSAEncryption" in t
    assert "Key Encipherment" in text(d / "rsa-dev.crt")
    assert verify(d / "ca.crt", d / "rsa-dev.crt").returncode == 0
    assert "Private-Key: (2048 bit" in openssl("pkey", "-noout", "-text", "-in", d / "rsa-dev.key").stdout
    r = certs(tmp_path, "client", "--cn", "weak", "--rsa", "1024", ok=False)
    assert r.returncode == 2 and "2048" in r.stderr


def test_leaf_never_outlives_its_ca(tmp_path):
    certs(tmp_path, "init-ca", "--days", "10")
    certs(tmp_path, "client", "--cn", "long", "--days", "1000")
    d = tmp_path / "pki"
    assert load(d / "long.crt").not_valid_after_utc <= load(d / "ca.crt").not_valid_after_utc


def test_dir_option_before_or_after_the_command(tmp_path):
    certs(tmp_path, "--dir", "a", "init-ca")
    certs(tmp_path, "client", "--dir", "a", "--cn", "x")
    certs(tmp_path, "init-ca", "--dir", "b")
    assert (tmp_path / "a" / "x.crt").exists() and (tmp_path / "b" / "ca.crt").exists()
    assert not (tmp_path / "pki").exists()


DEVICES_CSV = """\
cn,o,ou,c,email,days
sensor-0001,Acme,greenhouse,DE,,
sensor-0002,Acme,greenhouse,DE,s2@acme.example,10
../../outside,Acme,,,,
"""


def test_batch_makes_one_burnable_folder_per_device(pki):
    (pki / "devices.csv").write_text(DEVICES_CSV)
    out = certs(pki, "batch", "devices.csv", "--days", "400").stdout
    d = pki / "pki"
    devices = d / "devices"
    assert sorted(os.listdir(devices)) == ["___.._outside", "sensor-0001", "sensor-0002"]
    assert "issued" in out
    ca_pem = (d / "ca.crt").read_bytes()
    for name in os.listdir(devices):
        folder = devices / name
        assert sorted(os.listdir(folder)) == sorted(
            ["client.key", "client.crt", "client.key.der", "client.crt.der", "ca.crt", "ca.crt.der"])
        assert mode(folder / "client.key") == 0o600
        assert mode(folder / "client.key.der") == 0o600
        assert (folder / "ca.crt").read_bytes() == ca_pem
        assert (folder / "ca.crt.der").read_bytes() == (d / "ca.crt.der").read_bytes()
        assert verify(folder / "ca.crt", folder / "client.crt", "-purpose", "sslclient").returncode == 0
        assert text(folder / "client.crt.der", der=True) == text(folder / "client.crt")
        key_pub = openssl("pkey", "-pubout", "-inform", "DER", "-in", folder / "client.key.der").stdout
        assert key_pub == openssl("x509", "-noout", "-pubkey", "-in", folder / "client.crt").stdout
    assert subject(devices / "sensor-0002" / "client.crt") == \
        "subject=emailAddress=s2@acme.example,CN=sensor-0002,OU=greenhouse,O=Acme,C=DE"
    assert subject(devices / "___.._outside" / "client.crt") == "subject=CN=../../outside,O=Acme"
    assert 10 <= lifetime_days(devices / "sensor-0002" / "client.crt") < 10.01
    assert 400 <= lifetime_days(devices / "sensor-0001" / "client.crt") < 400.01
    assert not (pki / "outside").exists()

    # Appending a row and running again issues only the new device.
    before = serial(devices / "sensor-0001" / "client.crt")
    with open(pki / "devices.csv", "a") as f:
        f.write("sensor-0003,Acme,,,,\n")
    out = certs(pki, "batch", "devices.csv").stdout
    assert serial(devices / "sensor-0001" / "client.crt") == before
    assert (devices / "sensor-0003" / "client.crt").exists()
    assert out.count("exists") == 3 and out.count("issued") == 1


@pytest.mark.parametrize("csv_text, message", [
    ("o,ou\nAcme,x\n", "no `cn` column"),
    ("cn,colour\nx,red\n", "unknown column"),
    ("cn,o\na/b,x\na_b,y\n", "folder name"),
    ("cn,days\nx,soon\n", "not a whole number"),
    ("cn,o\n,Acme\n", "cn field is empty"),
    ("cn\nDev1\ndev1\n", "folder name"),
    ("cn,c\nx,Germany\n", ":2: country"),
    (b"cn\n\xff\xfe\n", "not UTF-8"),
])
def test_batch_checks_the_whole_csv_before_issuing(pki, csv_text, message):
    if isinstance(csv_text, bytes):
        (pki / "bad.csv").write_bytes(csv_text)
    else:
        (pki / "bad.csv").write_text(csv_text)
    r = certs(pki, "batch", "bad.csv", ok=False)
    assert r.returncode == 2
    assert message in r.stderr
    assert not (pki / "pki" / "devices").exists()


def test_revoke_and_crl(pki):
    d = pki / "pki"
    for cn in ("good", "lost", "stolen"):
        certs(pki, "client", "--cn", cn)
    lost, stolen, good = serial(d / "lost.crt"), serial(d / "stolen.crt"), serial(d / "good.crt")
    out = certs(pki, "revoke", d / "lost.crt").stdout
    assert lost in out
    # By serial, as openssl prints it, with a reason.
    certs(pki, "revoke", "serial=" + stolen, "--reason", "keyCompromise")
    out = certs(pki, "crl").stdout.strip()
    assert out == os.path.join("pki", "crl.pem")
    t = openssl("crl", "-noout", "-text", "-in", d / "crl.pem").stdout
    assert "Serial Number: " + lost in t and "Serial Number: " + stolen in t
    assert good not in t
    assert "Key Compromise" in t
    assert "CRL Number: \n                1" in t
    openssl("crl", "-noout", "-in", d / "crl.pem", "-CAfile", d / "ca.crt")  # signature checks
    ca = d / "ca.crt"
    assert verify(ca, d / "lost.crt", "-crl_check", "-CRLfile", d / "crl.pem").returncode != 0
    assert verify(ca, d / "stolen.crt", "-crl_check", "-CRLfile", d / "crl.pem").returncode != 0
    assert verify(ca, d / "good.crt", "-crl_check", "-CRLfile", d / "crl.pem").returncode == 0

    listing = {line.split("\t")[0]: line.split("\t")[2].strip()
               for line in certs(pki, "list").stdout.splitlines()}
    assert listing == {lost: "revoked", stolen: "revoked", good: "valid"}

    # Revoking again is harmless; DER output and the CRL number moves on.
    assert "already revoked" in certs(pki, "revoke", lost).stdout
    certs(pki, "crl", "--der", "--out", pki / "fleet.crl", "--days", "7")
    t = openssl("crl", "-noout", "-text", "-inform", "DER", "-in", pki / "fleet.crl").stdout
    assert t.count("Serial Number:") == 2
    assert "CRL Number: \n                2" in t


def test_revoke_refuses_what_this_ca_did_not_issue(pki, tmp_path):
    r = certs(pki, "revoke", "DEADBEEF", ok=False)
    assert r.returncode == 2 and "--force" in r.stderr
    r = certs(pki, "revoke", "not-a-serial-or-file", ok=False)
    assert r.returncode == 2
    other = tmp_path / "other"
    certs(tmp_path, "--dir", other, "init-ca")
    certs(tmp_path, "--dir", other, "client", "--cn", "foreign")
    r = certs(pki, "revoke", other / "foreign.crt", ok=False)
    assert r.returncode == 2 and "not issued by" in r.stderr
    certs(pki, "revoke", "DEADBEEF", "--force")
    certs(pki, "crl")
    t = openssl("crl", "-noout", "-text", "-in", pki / "pki" / "crl.pem").stdout
    assert "Serial Number: DEADBEEF" in t


def test_demo_is_idempotent(tmp_path):
    out = certs(tmp_path, "demo", "--dir", "demo/pki").stdout
    d = tmp_path / "demo" / "pki"
    for f in ("ca.crt", "ca.crt.der", "server.crt", "server.key", "server.crt.der",
              "server.key.der", "device1.crt", "device1.key", "device2.crt", "device2.key",
              "crl.pem"):
        assert os.path.join("demo", "pki", f) in out
        assert (d / f).exists()
    for f in ("ca.key", "server.key", "server.key.der", "device1.key", "device2.key.der"):
        assert mode(d / f) == 0o600
    ca = d / "ca.crt"
    assert verify(ca, d / "server.crt", "-verify_hostname", "localhost").returncode == 0
    assert verify(ca, d / "server.crt", "-verify_ip", "127.0.0.1").returncode == 0
    assert verify(ca, d / "server.crt", "-verify_ip", "::1").returncode == 0
    for dev in ("device1", "device2"):
        assert verify(ca, d / (dev + ".crt"), "-purpose", "sslclient").returncode == 0
        assert subject(d / (dev + ".crt")) == "subject=CN=%s,O=gatemq demo" % dev
    openssl("crl", "-noout", "-in", d / "crl.pem", "-CAfile", ca)

    snapshot = {f: (d / f).read_bytes() for f in os.listdir(d)}
    out = certs(tmp_path, "demo", "--dir", "demo/pki").stdout
    assert "nothing" in out
    assert {f: (d / f).read_bytes() for f in os.listdir(d)} == snapshot

    # Only what is missing is made again.
    (d / "device2.key").unlink()
    certs(tmp_path, "demo", "--dir", "demo/pki")
    assert (d / "ca.key").read_bytes() == snapshot["ca.key"]
    assert (d / "device1.crt").read_bytes() == snapshot["device1.crt"]
    assert (d / "device2.crt").read_bytes() != snapshot["device2.crt"]
    assert verify(ca, d / "device2.crt").returncode == 0
    cert_pub = openssl("x509", "-noout", "-pubkey", "-in", d / "device2.crt").stdout
    assert cert_pub == openssl("pkey", "-pubout", "-in", d / "device2.key").stdout


MP_CLIENT = """\
import socket, sys, tls
port, crt, key, ca = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
ctx.verify_mode = tls.CERT_REQUIRED
ctx.load_cert_chain(open(crt, "rb").read(), open(key, "rb").read())
ctx.load_verify_locations(open(ca, "rb").read())
s = socket.socket()
s.connect(socket.getaddrinfo("127.0.0.1", port)[0][-1])
s = ctx.wrap_socket(s, server_hostname="localhost")
s.write(b"hello")
print(s.read(64).decode())
s.close()
"""


@pytest.mark.parametrize("rsa", [False, True])
def test_micropython_device_uses_the_der_files_for_mutual_tls(tmp_path, rsa):
    # The point of the DER copies: a MicroPython device loads them and completes a mutual-TLS
    # handshake with a server holding the PEM files, each side verifying the other.
    import socket
    import ssl
    import threading

    micropython = os.path.join(os.path.dirname(sys.executable), "micropython")
    extra = ["--rsa", "2048"] if rsa else []
    certs(tmp_path, "init-ca", *extra)
    certs(tmp_path, "server", "--host", "localhost", "--ip", "127.0.0.1", *extra)
    (tmp_path / "fleet.csv").write_text("cn,o\nmp-device,acme\n")
    certs(tmp_path, "batch", "fleet.csv", *extra)
    d = tmp_path / "pki"
    dev = d / "devices" / "mp-device"

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(str(d / "server.crt"), str(d / "server.key"))
    ctx.load_verify_locations(str(d / "ca.crt"))
    ctx.verify_mode = ssl.CERT_REQUIRED
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(20)
    port = listener.getsockname()[1]
    seen = {}

    def serve():
        conn, _ = listener.accept()
        with ctx.wrap_socket(conn, server_side=True) as tls_conn:
            subject = dict(x[0] for x in tls_conn.getpeercert()["subject"])
            seen["cn"] = subject["commonName"]
            seen["data"] = tls_conn.recv(64)
            tls_conn.sendall(b"hi " + subject["commonName"].encode())

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    (tmp_path / "client.py").write_text(MP_CLIENT)
    r = subprocess.run([micropython, str(tmp_path / "client.py"), str(port),
                        str(dev / "client.crt.der"), str(dev / "client.key.der"),
                        str(dev / "ca.crt.der")], capture_output=True, text=True, timeout=30)
    t.join(20)
    listener.close()
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip() == "hi mp-device"
    assert seen == {"cn": "mp-device", "data": b"hello"}


def test_demo_reissues_everything_after_the_ca_is_replaced(tmp_path):
    certs(tmp_path, "demo", "--dir", "pki")
    d = tmp_path / "pki"
    old_server = (d / "server.crt").read_bytes()
    (d / "ca.key").unlink()
    (d / "ca.crt").unlink()
    out = certs(tmp_path, "demo", "--dir", "pki").stdout
    assert "made: ca, server, device1, device2, crl" in out
    assert (d / "server.crt").read_bytes() != old_server
    for f in ("server.crt", "device1.crt", "device2.crt"):
        assert verify(d / "ca.crt", d / f).returncode == 0
    openssl("crl", "-noout", "-in", d / "crl.pem", "-CAfile", d / "ca.crt")
