# The dashboards' HTTP framing on both ports (gatemq.http): the same head limit, the same
# Content-Length validation, the same refusal of chunked bodies, the Host check against DNS
# rebinding (dashboard.allowed_hosts); and on the CPython port a request whose body never arrives
# costs its connection only. Raw sockets against real broker processes.
import json
import os
import socket

import pytest

from brokers import BrokerProcess, ROOT

MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
RUNTIMES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "server.mpy")),
    reason="run `make firmware-files` first"))]
DASH = 'dashboard.listeners.http.bind = "127.0.0.1:0"\ndashboard.allowed_hosts = ["gateway.example"]\n'
LISTEN = [("tcp", "default"), ("http", "dashboard")]


@pytest.fixture(params=RUNTIMES)
def dash(request, tmp_path):
    b = BrokerProcess(DASH, runtime=request.param, tmp_path=tmp_path, listeners=LISTEN)
    yield b
    b.stop()


def _ask(b, raw, timeout=10):
    # Sends raw bytes, returns (status, JSON body or None) of the answer, read to its end.
    s = socket.create_connection(("127.0.0.1", b.ports[("http", "dashboard")]), timeout=timeout)
    try:
        s.sendall(raw)
        data = b""
        while True:
            head, sep, rest = data.partition(b"\r\n\r\n")
            if sep:
                n = 0
                for line in head.split(b"\r\n")[1:]:
                    k, _, v = line.partition(b":")
                    if k.strip().lower() == b"content-length":
                        n = int(v)
                if len(rest) >= n:
                    status = int(head.split(b" ")[1])
                    return status, (json.loads(rest[:n]) if n else None)
            chunk = s.recv(65536)
            if not chunk:
                raise AssertionError("closed without an answer; got %r" % data)
            data += chunk
    finally:
        s.close()


LOGIN = json.dumps({"username": "admin", "password": "wrong-password"}).encode()


def _login(host=b"127.0.0.1", extra=b"", body=LOGIN, length=None):
    n = b"%d" % len(body) if length is None else length
    return (b"POST /api/v5/login HTTP/1.1\r\nHost: " + host + b"\r\nContent-Type: application/json\r\n"
            + extra + b"Content-Length: " + n + b"\r\n\r\n" + body)


def test_framing_is_the_same_on_both_ports(dash):
    # a well-framed request reaches the API (wrong password: 401)
    assert _ask(dash, _login())[0] == 401
    # Content-Length must be a number (the MicroPython port took " 5", "+5", "5 5"...)
    for bad in (b"abc", b"+%d" % len(LOGIN), b"%d %d" % (len(LOGIN), len(LOGIN)), b"0x10"):
        status, body = _ask(dash, _login(length=bad))
        assert status == 400 and "Content-Length" in body["message"], (bad, status, body)
    assert _ask(dash, _login(length=b"70000"))[0] == 413
    # chunked bodies are refused with 411 (send Content-Length)
    chunked = (b"POST /api/v5/login HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n\r\n"
               + b"%x\r\n" % len(LOGIN) + LOGIN + b"\r\n0\r\n\r\n")
    status, body = _ask(dash, chunked)
    assert status == 411 and "Content-Length" in body["message"], (status, body)
    # the same head limit: 8 KB of headers pass, more is 431
    assert _ask(dash, _login(extra=b"X-Pad: " + b"a" * 6000 + b"\r\n"))[0] == 401
    assert _ask(dash, _login(extra=b"X-Pad: " + b"a" * 9000 + b"\r\n"))[0] == 431


def test_host_header_is_checked_against_dns_rebinding(dash):
    assert _ask(dash, _login(host=b"localhost:18083"))[0] == 401
    assert _ask(dash, _login(host=b"[::1]:18083"))[0] == 401
    assert _ask(dash, _login(host=b"gateway.example:18083"))[0] == 401   # dashboard.allowed_hosts
    status, body = _ask(dash, _login(host=b"attacker.example:18083"))
    assert status == 403 and body["code"] == "FORBIDDEN_HOST", (status, body)
    status, _ = _ask(dash, b"GET /api/v5/stats HTTP/1.1\r\nHost: rebind.attacker.example\r\n\r\n")
    assert status == 403


def test_cpython_loop_error_log_line_for_a_request_whose_body_never_arrives():
    # A dashboard request whose body never arrived ended in a TimeoutError that reached the event
    # loop's error handler, whose log line then raised TypeError ("%" applied before "+").
    import asyncio
    from gatemq.cpython.server import Server

    class Transport:
        def get_extra_info(self, name):
            return ("192.0.2.7", 40000) if name == "peername" else None

    logged = []
    srv = Server.__new__(Server)
    srv.log = lambda level, msg: logged.append((level, msg))
    for exc in (TimeoutError(), asyncio.TimeoutError(), ConnectionResetError(104, "reset")):
        srv._loop_error(None, {"message": "Unhandled exception in client_connected_cb",
                               "exception": exc, "transport": Transport()})
    srv._loop_error(None, {"message": "Unhandled exception", "exception": TimeoutError()})
    assert len(logged) == 4 and all(level == "warning" for level, _ in logged), logged
    assert "192.0.2.7:40000" in logged[0][1] and "a client" in logged[3][1], logged
