# gatemq.http: request framing shared by both ports' dashboards, the Host check, and the login
# limit's loopback exemption from the overall cap.

from gatemq import admin, http


def _status(data, max_head=http.MAX_HEAD):
    r = http.RequestReader(max_head)
    r.feed(data)
    try:
        r.next()
    except http.HttpError as e:
        return e.status
    return None


def test_requests_in_pieces_and_keep_alive():
    r = http.RequestReader()
    raw = (b"POST /api/v5/login HTTP/1.1\r\nHost: 127.0.0.1:18083\r\nContent-Length: 5\r\n\r\nhello"
           b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    got = []
    for i in range(len(raw)):
        r.feed(raw[i:i + 1])
        req = r.next()
        if req is not None:
            got.append(req)
    assert [(q.method, q.target, q.body, q.keep_alive) for q in got] == [
        ("POST", "/api/v5/login", b"hello", True), ("GET", "/a?b=1", b"", False)]
    assert got[0].headers["host"] == "127.0.0.1:18083"
    r = http.RequestReader()
    r.feed(b"GET / HTTP/1.0\r\n\r\n")
    assert r.next().keep_alive is False


def test_expect_100_continue_returns_the_head_first():
    r = http.RequestReader()
    r.feed(b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
    req = r.next()
    assert req.expect_continue and req.body == b""
    assert r.next() is None and r.wanted() == 3
    r.feed(b"abc")
    req = r.next()
    assert not req.expect_continue and req.body == b"abc"


def test_head_limit():
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 9000
    assert _status(head) == 431                      # no end of head in sight
    assert _status(head + b"\r\n\r\n") == 431
    assert _status(b"GET / HTTP/1.1\r\nHost: h\r\nX: " + b"a" * 100 + b"\r\n\r\n") is None


def test_content_length_validation():
    base = b"POST / HTTP/1.1\r\nHost: h\r\n"
    for bad in (b"abc", b"-1", b"+5", b"1 2", b"0x10", b"", b"1e3"):
        assert _status(base + b"Content-Length: " + bad + b"\r\n\r\n") == 400, bad
    assert _status(base + b"Content-Length: 3\r\nContent-Length: 4\r\n\r\n") == 400
    assert _status(base + b"Content-Length: 70000\r\n\r\n") == 413
    assert _status(base + b"Content-Length: 99999999999999999999\r\n\r\n") == 400


def test_chunked_and_other_transfer_encodings_are_refused():
    base = b"POST / HTTP/1.1\r\nHost: h\r\n"
    assert _status(base + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n") == 411
    assert _status(base + b"Transfer-Encoding: gzip, chunked\r\nContent-Length: 5\r\n\r\n") == 411
    assert _status(base + b"Transfer-Encoding: gzip\r\n\r\n") == 501


def test_malformed_heads():
    for bad in (b"GET /\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n", b"GET / HTTP/1.1\r\nNoColon\r\n\r\n",
                b"GET / HTTP/1.1\r\nX : y\r\n\r\n", b"GET / HTTP/1.1\r\nX: y\r\n folded\r\n\r\n",
                b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"):
        assert _status(bad) == 400, bad


def _host_status(host, bind, allowed=(), version=b"HTTP/1.1"):
    r = http.RequestReader()
    r.feed(b"GET / " + version + b"\r\n" + (b"Host: " + host + b"\r\n" if host is not None else b"") + b"\r\n")
    try:
        http.check_host(r.next(), bind, allowed)
    except http.HttpError as e:
        return e.status
    return 200


def test_host_header_against_the_bind_address():
    # loopback bind: loopback names and addresses, nothing else
    for h in (b"127.0.0.1:18083", b"localhost:18083", b"LOCALHOST", b"[::1]:18083", b"127.0.0.1"):
        assert _host_status(h, "127.0.0.1") == 200, h
    assert _host_status(b"attacker.example:18083", "127.0.0.1") == 403
    assert _host_status(b"attacker.example", "127.0.0.1", ["gw.local"]) == 403
    assert _host_status(b"gw.local:18083", "127.0.0.1", ["gw.local"]) == 200
    assert _host_status(b"anything", "127.0.0.1", ["*"]) == 200
    # a named or specific bind: that name or address
    assert _host_status(b"192.168.1.5:18083", "192.168.1.5") == 200
    assert _host_status(b"localhost:18083", "192.168.1.5") == 403
    # wildcard bind: any IP address (DNS cannot rebind one), names only when allowed
    assert _host_status(b"192.168.1.5:18083", "0.0.0.0") == 200
    assert _host_status(b"[fe80::1]:18083", "::") == 200
    assert _host_status(b"gateway.local", "0.0.0.0") == 403
    assert _host_status(b"gateway.local", "0.0.0.0", ["Gateway.local"]) == 200
    # HTTP/1.1 requires Host; an HTTP/1.0 client without one is no browser
    assert _host_status(None, "127.0.0.1") == 400
    assert _host_status(None, "127.0.0.1", version=b"HTTP/1.0") == 200


def test_lockout_by_others_does_not_lock_out_a_loopback_login():
    lim = admin.LoginLimit(tries=3, window=60, global_tries=5, max_entries=8)
    for i in range(5):
        lim.failed("203.0.113.%d" % i, 200)
    assert lim.wait("203.0.113.99", 201) > 0          # the overall cap holds for the network
    assert lim.wait("127.0.0.1", 201) == 0            # not for the gateway itself
    assert lim.wait("::1", 201) == 0
    for _ in range(3):
        lim.failed("127.0.0.1", 202)
    assert lim.wait("127.0.0.1", 203) > 0             # its own per-address limit still holds
