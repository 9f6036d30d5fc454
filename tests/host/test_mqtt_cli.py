# The command line: --help, --check-config, start-up config errors, --log-level, clean stop on
# SIGTERM/SIGINT with DISCONNECT 0x8B to MQTT 5 clients (on the MicroPython pass through its
# launcher, firmware/gatemq-micropython, which leaves no interpreter behind); and Debian's mosquitto_pub/mosquitto_sub
# against the broker.
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

import rawmqtt as R
from brokers import PYTHON, VENV_BIN, BrokerProcess, group_members
from clients import Client
from conftest import require_gatemq

GATEMQ = os.path.join(VENV_BIN, "gatemq")


@pytest.fixture(autouse=True)
def _gatemq_only(request):
    if "mosquitto_clients" not in request.node.name:
        require_gatemq()


def run(*args, timeout=30):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout)


def test_help_documents_every_flag():
    out = run(GATEMQ, "--help")
    assert out.returncode == 0
    text = out.stdout
    for flag in ("--config", "--check-config", "--log-level", "--version", "--help"):
        assert flag in text, flag
    usage_flags = set(re.findall(r"\[(--[\w-]+)", text.split("\n\n")[0]))
    assert {"--config", "--check-config", "--log-level"} <= usage_flags
    # every flag has a description line in the options section
    options = text[text.index("options:"):]
    for flag in usage_flags:
        m = re.search(r"^\s+(?:-\w[^,\n]*, )?%s\b[^\n]*\n?(.*)" % re.escape(flag), options, re.M)
        assert m and (len(m.group(0).split(None, 2)) > 2 or m.group(1).strip()), flag
    for level in ("debug", "info", "warning", "error"):
        assert level in text


def test_module_entry_point_matches_console_script():
    a = run(GATEMQ, "--help")
    b = run(PYTHON, "-m", "gatemq.cpython", "--help")
    assert b.returncode == 0
    assert a.stdout.split("\n", 1)[1] == b.stdout.split("\n", 1)[1]


def test_check_config_accepts_a_good_file(tmp_path):
    f = tmp_path / "good.conf"
    f.write_text('# a gateway\nnode.name = "gw@127.0.0.1"\nlisteners.tcp.default.bind = "127.0.0.1:1883"\n'
                 'mqtt { max_packet_size = 64KB, idle_timeout = 15s }\n// done\n')
    out = run(GATEMQ, "--check-config", str(f))
    assert out.returncode == 0, out.stderr


# cols: where the error may point: the key, the offending part of a dotted key, or the value
@pytest.mark.parametrize("text,line,cols,key", [
    ('node.name = "a@b"\n\nmqtt.no_such_key = 1\n', 3, (1, 6), "mqtt.no_such_key"),
    ('mqtt {\n  max_packet_size = "lots"\n}\n', 2, (3, 21), "max_packet_size"),
    ('mqtt.max_qos_allowed = 7\n', 1, (1, 6, 24), "max_qos_allowed"),
    ('mqtt.retain_available = maybe\n', 1, (1, 6, 25), "retain_available"),
])
def test_check_config_reports_file_line_col(tmp_path, text, line, cols, key):
    f = tmp_path / "bad.conf"
    f.write_text(text)
    out = run(GATEMQ, "--check-config", str(f))
    assert out.returncode != 0
    msg = out.stderr + out.stdout
    m = re.search(r"%s:(\d+):(\d+)" % re.escape(str(f)), msg)
    assert m, msg
    assert int(m.group(1)) == line
    assert int(m.group(2)) in cols, msg
    assert key in msg
    assert "expected" in msg or "unknown" in msg.lower()


def test_check_config_names_the_included_file(tmp_path):
    (tmp_path / "main.conf").write_text('node.name = "gw@127.0.0.1"\ninclude "limits.conf"\n')
    (tmp_path / "limits.conf").write_text('mqtt.max_inflight = -3\n')
    out = run(GATEMQ, "--check-config", str(tmp_path / "main.conf"))
    assert out.returncode != 0
    assert "limits.conf:1:" in out.stderr + out.stdout


def test_bad_config_stops_start_up(tmp_path):
    f = tmp_path / "bad.conf"
    f.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\nmqtt.bogus = 1\n')
    out = run(GATEMQ, "--config", str(f), timeout=20)
    assert out.returncode != 0
    assert "%s:2:" % f in out.stderr and "mqtt.bogus" in out.stderr


def test_log_level_flag(make_broker):
    quiet = make_broker("", extra_args=["--log-level", "info"])
    with R.RawClient(quiet.port) as c:
        assert c.connect("lvl-info").rc == 0
    quiet.wait_log("lvl-info")
    assert not [l for l in quiet.log_lines if "DEBUG" in l]
    loud = make_broker("")
    with R.RawClient(loud.port) as c:
        c.connect("lvl-debug")
    loud.wait_log("DEBUG")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_cleanly_and_v5_clients_get_0x8b(tmp_path, sig):
    b = BrokerProcess("", tmp_path=tmp_path)
    try:
        assert b.pid in group_members(b.proc.pid)
        v5 = Client(b.port, "shutdown-v5").connect()
        raw5 = R.RawClient(b.port, version=5)
        assert raw5.connect("shutdown-raw5", version=5).rc == 0
        raw4 = R.RawClient(b.port)
        assert raw4.connect("shutdown-raw4").rc == 0
        port = b.port
        b.proc.send_signal(sig)
        assert [(p.type, p.rc) for p in raw5.until_closed()] == [(R.DISCONNECT, 0x8B)]
        assert raw4.until_closed() == []
        assert v5.wait_disconnected() == 0x8B
        assert b.proc.wait(10) == 0
        assert group_members(b.proc.pid) == []  # the broker's process group, interpreter and all
        with pytest.raises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
    finally:
        b.stop()
    assert "Traceback" not in b.log()


# ---- Debian's mosquitto clients ----

MOSQ = shutil.which("mosquitto_pub") and shutil.which("mosquitto_sub")


def _sub(port, topic, count, *extra):
    return subprocess.Popen(["mosquitto_sub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, "-C", str(count),
                             "-W", "10", "-v", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _pub(port, topic, msg, *extra):
    body = ("-m", msg) if msg is not None else ("-n",)  # -n: a zero-length message
    out = run("mosquitto_pub", "-h", "127.0.0.1", "-p", str(port), "-t", topic, *body, *extra)
    assert out.returncode == 0, out.stderr


def _wait_subscribed(b, cid):
    # mosquitto_sub prints nothing when subscribed; wait until the broker shows it as connected
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if any(cid in l for l in b.log_lines):
            time.sleep(0.2)
            return
        time.sleep(0.05)


@pytest.mark.parametrize("version", ["31", "311", "5"])
def test_mosquitto_clients_pub_sub(mod_broker, uid, version):
    assert MOSQ, "mosquitto-clients are not installed (make test installs them)"
    sub = _sub(mod_broker.port, uid + "/#", 2, "-V", version, "-q", "1", "-i", uid + "-sub")
    _wait_subscribed(mod_broker, uid + "-sub")
    _pub(mod_broker.port, uid + "/a", "one", "-V", version, "-q", "1")
    _pub(mod_broker.port, uid + "/b", "two", "-V", version, "-q", "2")
    out, err = sub.communicate(timeout=15)
    assert sub.returncode == 0, err
    assert out.splitlines() == [uid + "/a one", uid + "/b two"]


def test_mosquitto_clients_retained(mod_broker, uid):
    assert MOSQ, "mosquitto-clients are not installed (make test installs them)"
    _pub(mod_broker.port, uid + "/r", "kept", "-r", "-q", "1")
    sub = _sub(mod_broker.port, uid + "/r", 1, "--retained-only")
    out, err = sub.communicate(timeout=15)
    assert out.splitlines() == [uid + "/r kept"], err
    _pub(mod_broker.port, uid + "/r", None, "-r")
    sub = _sub(mod_broker.port, uid + "/r", 1, "--retained-only", "-W", "1")
    out, _ = sub.communicate(timeout=15)
    assert out == ""


def test_mosquitto_clients_v5_properties(mod_broker, uid):
    assert MOSQ, "mosquitto-clients are not installed (make test installs them)"
    sub = _sub(mod_broker.port, uid + "/p", 1, "-V", "5", "-F", "%t %p %P", "-i", uid + "-sub")
    _wait_subscribed(mod_broker, uid + "-sub")
    _pub(mod_broker.port, uid + "/p", "hello", "-V", "5", "-D", "publish", "user-property", "site", "north")
    out, err = sub.communicate(timeout=15)
    assert out.strip() == "%s/p hello site:north" % uid, (out, err)


def test_without_config_serves_the_embedded_default_on_1883(tmp_path):
    proc = subprocess.Popen([GATEMQ, "--log-level", "info"], cwd=str(tmp_path), stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            lines.append(line)
            if "listener tcp:default listening on" in line:
                break
        text = "".join(lines)
        if proc.poll() is not None or "listening on" not in text:
            # another process holds 1883 on this machine: the broker must say so and exit non-zero
            proc.wait(10)
            text += proc.stderr.read()
            assert proc.returncode != 0 and "1883" in text, text
            return
        assert "listener tcp:default listening on 127.0.0.1:1883" in text
        with R.RawClient(1883) as c:
            assert c.connect("embedded-default").rc == 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
