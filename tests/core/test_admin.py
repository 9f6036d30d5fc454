# gatemq.admin, the HTTP API's shared logic, on both runtimes: request parsing, times, tokens,
# administrator hashes and the login rate limit.
from gatemq import admin
from _check import raises


def _rand(n, _state=[7]):
    # Deterministic "randomness" so tokens and salts are reproducible in the test.
    _state[0] = (_state[0] * 1103515245 + 12345) & 0x7FFFFFFF
    return bytes([(_state[0] >> (i % 24)) & 0xFF for i in range(n)])


def test_parse_head_and_target():
    m, t, v, h = admin.parse_head(b"PUT /api/v5/configs/mqtt HTTP/1.1\r\nHost: x\r\nContent-Length: 12")
    assert (m, t, v) == ("PUT", "/api/v5/configs/mqtt", "HTTP/1.1")
    assert h == {"host": "x", "content-length": "12"}
    assert raises(admin.HttpError, admin.parse_head, b"GARBAGE")
    assert raises(admin.HttpError, admin.parse_head, b"GET / HTTP/1.1\r\nno colon here")
    path, q = admin.split_target("/api/v5/clients?page=2&like_clientid=a%2Fb+c&flag")
    assert path == "/api/v5/clients"
    assert q == {"page": "2", "like_clientid": "a/b c", "flag": ""}
    assert admin.unquote("gw%20%C3%A9%2") == "gw \u00e9%2"


def test_rfc3339():
    assert admin.rfc3339(0) == "1970-01-01T00:00:00.000+00:00"
    assert admin.rfc3339(951782400000) == "2000-02-29T00:00:00.000+00:00"
    assert admin.rfc3339(1795779934123) == "2026-11-27T11:45:34.123+00:00"
    assert admin.rfc3339(4102444799999) == "2099-12-31T23:59:59.999+00:00"


def test_admin_hash_matches_pbkdf2_and_checks():
    # RFC 7914 section 11's PBKDF2-HMAC-SHA256 vector: P="passwd", S="salt", c=1.
    assert admin.hash_admin("passwd", "salt", 1)[:32] == "55ac046e56e3089fec1691c22544b605"
    a = admin.Admins(None, _rand, iterations=2)
    a.set("admin", "s3cret-pw")
    assert "s3cret-pw" not in a.dumps()
    b = admin.Admins(a.dumps(), _rand)
    assert b.check("admin", "s3cret-pw")
    assert not b.check("admin", "s3cret-PW")
    assert not b.check("nobody", "s3cret-pw")


def test_tokens_sign_expire_and_die_with_the_password():
    t = admin.Tokens(_rand, 60)
    users = {"admin": {"hash": "h1"}}
    tok = t.issue("admin", "h1", 1000)
    assert t.check(tok, users, 1059) == "admin"
    e = None
    try:
        t.check(tok, users, 1060)
    except admin.HttpError as x:
        e = x
    assert e is not None and e.status == 401 and e.code == "TOKEN_TIME_OUT"
    assert raises(admin.HttpError, t.check, tok, {"admin": {"hash": "h2"}}, 1001)
    assert raises(admin.HttpError, t.check, tok[:-1] + ("0" if tok[-1] != "0" else "1"), users, 1001)
    assert raises(admin.HttpError, t.check, "zz.zz", users, 1001)
    other = admin.Tokens(_rand, 60)
    assert raises(admin.HttpError, other.check, tok, users, 1001)


def test_login_limit():
    lim = admin.LoginLimit(tries=3, window=60, global_tries=5, max_entries=4)
    for _ in range(3):
        assert lim.wait("10.0.0.1", 100) == 0
        lim.failed("10.0.0.1", 100)
    assert 1 <= lim.wait("10.0.0.1", 110) <= 51
    assert lim.wait("10.0.0.2", 110) == 0
    assert lim.wait("10.0.0.1", 161) == 0
    # Spread over many addresses, the global cap still stops guessing.
    lim = admin.LoginLimit(tries=3, window=60, global_tries=5, max_entries=4)
    for i in range(5):
        lim.failed("10.0.1.%d" % i, 200)
    assert lim.wait("10.0.9.9", 201) > 0
    assert len(lim.fails) <= 4
