# Certificates made by gatemq-certs, as an operator uses them: a device revoked while the broker
# runs is refused on its next connection, and the `make run` demo works with the mosquitto_sub
# command line it prints.
import os
import re
import shlex
import ssl
import subprocess
import sys
import threading
import time
import types

from conftest import require_gatemq
from brokers import PYTHON, ROOT, VENV_BIN
from gatemq.certs import demo
from rawmqtt import RawClient
from tlsutil import Events, client_context, ssl_config, ssl_port, tls_client

CERTS = os.path.join(VENV_BIN, "gatemq-certs")


def _pair(p):
    return types.SimpleNamespace(crt=p["crt"], chain=p["crt"], key=p["key"])


def test_crl_updated_while_running_refuses_the_revoked_device(make_broker, tmp_path):
    require_gatemq()
    pki = str(tmp_path / "pki")
    paths = demo.ensure(pki)
    ca = types.SimpleNamespace(crt=paths["ca"])
    dev1, dev2 = _pair(paths["clients"]["device1"]), _pair(paths["clients"]["device2"])
    b = make_broker(ssl_config(_pair(paths["server"]), ca,
                               ssl_extra='enable_crl_check = true\n  crlfile = "%s"' % paths["crl"],
                               extra="mqtt.peer_cert_as_username = cn"))
    ev = Events(b)
    c = tls_client(b, ca, dev2, client_id="d2")
    assert ev.connected()["username"] == "device2"
    c.disconnect()

    for args in (["revoke", dev2.crt, "--reason", "keyCompromise"], ["crl"]):
        r = subprocess.run([CERTS, "--dir", pki] + args, capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr

    mark = b.mark()
    r = RawClient(ssl_port(b), version=4)
    port = r.sock.getsockname()[1]
    try:
        try:
            r.sock = client_context(ca.crt, dev2.chain, dev2.key).wrap_socket(r.sock, server_hostname="127.0.0.1")
        except (ssl.SSLError, OSError):
            pass  # TLS 1.2 (mbedTLS on MicroPython): the certificate is refused in the handshake
        else:
            # TLS 1.3: the server checks the certificate after the client's handshake finished.
            r.send(b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x")  # a valid 3.1.1 CONNECT
            assert r.until_closed() == []
    finally:
        r.close()
    b.wait_log_all(["loaded crl", "(1 revoked)"], start=mark)
    b.wait_log_all(["rejected: revoked", "127.0.0.1:%d" % port], start=mark)
    ev.none(0.2)
    # The other device is unaffected.
    c = tls_client(b, ca, dev1, client_id="d1")
    assert ev.connected()["username"] == "device1"
    c.disconnect()
    ev.close()


def test_demo_prints_a_working_mosquitto_sub_command(tmp_path):
    require_gatemq()
    proc = subprocess.Popen([PYTHON, "-m", "gatemq.cpython", "--demo", "--demo-dir", str(tmp_path / "demo")],
                            cwd=str(tmp_path), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    lines = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if "listener ssl:default listening" in line:
                ready.set()
        ready.set()

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(20) and proc.poll() is None, "demo broker did not start:\n" + "\n".join(lines)
        sub_line = next(x for x in lines if "mosquitto_sub" in x).strip()
        pub_line = next(x for x in lines if "mosquitto_pub" in x).strip()
        assert "--cert" in sub_line and "-p 8883" in sub_line
        sub = subprocess.Popen(shlex.split(sub_line) + ["-C", "1", "-W", "10"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 10
        while not any("username 'device1'" in x for x in lines):
            assert time.monotonic() < deadline and sub.poll() is None, "\n".join(lines)
            time.sleep(0.05)
        time.sleep(0.2)  # its SUBSCRIBE
        pub = subprocess.run(shlex.split(pub_line) + ["-i", "demo-pub"], capture_output=True, text=True, timeout=10)
        assert pub.returncode == 0, pub.stderr
        out, err = sub.communicate(timeout=10)
        assert sub.returncode == 0, err
        assert re.match(r"\$SYS/brokers/[^/]+/clients/demo-pub/connected \{", out), out
    finally:
        proc.terminate()
        proc.wait(10)
