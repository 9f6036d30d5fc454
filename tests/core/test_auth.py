# The authentication chain: listener defaults, password_based users, JWT, chain order.
import json

from gatemq import auth, config
from gatemq import pwhash
from gatemq import jwt
from gatemq.errors import ConfigError
from _check import raises

NOW = 1700000000


class Client:
    def __init__(self, clientid="c1", username=None, password=None, bind="0.0.0.0", verify_peer=False,
                 peer_cert=None, cert_cn=None):
        self.clientid = clientid
        self.username = username
        self.password = password
        self.peerhost = "10.0.0.5"
        self.listener = "default"
        self.listener_kind = "ssl" if verify_peer else "tcp"
        self.listener_bind_host = bind
        self.verify_peer = verify_peer
        self.peer_cert = peer_cert
        self.cert_cn = cert_cn
        self.cert_dn = None
        self.proto_ver = 5


class Log:
    def __init__(self):
        self.lines = []

    def __call__(self, level, msg):
        self.lines.append((level, msg))

    def text(self):
        return "\n".join(m for _, m in self.lines)


def entry(rows, **over):
    # One authenticator as HOCON text: rows [(key, value text)], some replaced or added by over.
    rows = [(k, over.pop(k, v)) for k, v in rows] + list(over.items())
    return "{" + ", ".join("%s = %s" % kv for kv in rows) + "}"


def make(chain, files=None):
    # chain: authenticators as HOCON text (entry()); the list goes through the config schema.
    cfg = config.load("authentication = [%s]" % ", ".join(chain))["authentication"]
    log = Log()
    a = auth.Authenticator(cfg, (files or {}).__getitem__, lambda: NOW, log)
    return a, log


def load_error(text):
    return str(raises(ConfigError, config.load, text, "g.conf"))


SHA = {"name": "sha256", "salt_position": "suffix"}


def users_file(*users):
    lines = ["# user_id, hash, salt"]
    for uid, pw, su in users:
        lines.append(auth.format_user(uid, pwhash.hash_password(SHA, "salty", pw), "salty", su))
    return "\n".join(lines).encode()


PWD_ROWS = [("mechanism", "password_based"), ("backend", "built_in_database"), ("user_id_type", "username"),
            ("password_hash_algorithm", "{name = sha256, salt_position = suffix}"), ("user_file", '"users"')]
PWD = entry(PWD_ROWS)
FILES = {"users": users_file(("alice", "wonder", False), ("root", "toor", True), ("devA", "pw-of-a", False))}


def hs256(claims, secret=b"k3y"):
    h = jwt.b64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    p = jwt.b64url_encode(json.dumps(claims).encode()).decode()
    s = jwt.b64url_encode(pwhash.hmac_sha256(secret, (h + "." + p).encode())).decode()
    return (h + "." + p + "." + s).encode()


JWT_ROWS = [("mechanism", "jwt"), ("from", "password"), ("algorithm", "hmac-based"), ("secret", '"k3y"'),
            ("verify_claims", '{sub = "${clientid}"}'), ("leeway", "5s")]
JWT = entry(JWT_ROWS)


def test_no_authenticators_secure_defaults():
    a, log = make([])
    assert a.authenticate(Client(bind="127.0.0.1"), {"enable_authn": True})[0] == 0
    assert a.authenticate(Client(bind="::1"), {})[0] == 0
    rc, why = a.authenticate(Client(bind="0.0.0.0"), {"enable_authn": True})
    assert rc == 0x87 and "neither loopback" in why
    assert a.authenticate(Client(bind="0.0.0.0", username="u", password=b"p"), {})[0] == 0x87
    assert a.authenticate(Client(verify_peer=True, peer_cert=b"\x30\x00"), {"enable_authn": True})[0] == 0
    assert a.authenticate(Client(bind="0.0.0.0"), {"enable_authn": False})[0] == 0
    # the refusal is logged once, by the connection that sends the CONNACK (with its reason)
    assert "neither loopback" not in log.text()


def test_quick_deny_anonymous():
    a, log = make([PWD], FILES)
    rc, why = a.authenticate(Client(bind="127.0.0.1"), {"enable_authn": "quick_deny_anonymous"})
    assert rc == 0x87 and "anonymous" in why
    assert a.authenticate(Client(username="alice", password=b"wonder"), {"enable_authn": "quick_deny_anonymous"})[0] == 0


def test_password_based_allow_deny_ignore():
    a, log = make([PWD], FILES)
    c = Client(username="alice", password=b"wonder")
    assert a.authenticate(c, {}) == (0, "accepted by password_based:built_in_database")
    assert c.is_superuser is False and c.acl is None and c.auth_expire_at is None
    rc, wrong = a.authenticate(Client(username="alice", password=b"Xyzzy-guess"), {})
    assert rc == 0x86 and wrong == "password_based:built_in_database: wrong password for user 'alice'"
    assert a.authenticate(Client(username="alice"), {})[0] == 0x86
    r = Client(username="root", password=b"toor")
    assert a.authenticate(r, {})[0] == 0 and r.is_superuser is True
    # unknown user: the authenticator ignores, the exhausted chain refuses
    rc, why = a.authenticate(Client(username="bob", password=b"x"), {})
    assert rc == 0x87 and "no authenticator" in why
    # passwords never reach the log
    assert "wonder" not in log.text() and "Xyzzy" not in log.text() and "toor" not in log.text()


def test_certificate_username_still_needs_the_password():
    # After peer_cert_as_username = cn, the chain sees the CN as the username.
    a, _ = make([PWD], FILES)
    ok = Client(username="devA", password=b"pw-of-a", verify_peer=True, peer_cert=b"\x30\x00", cert_cn="devA")
    bad = Client(username="devA", password=b"guess", verify_peer=True, peer_cert=b"\x30\x00", cert_cn="devA")
    assert a.authenticate(ok, {})[0] == 0
    assert a.authenticate(bad, {})[0] == 0x86


def test_user_id_type_clientid_and_per_user_algorithm():
    algo = {"name": "pbkdf2", "mac_fun": "sha256", "iterations": 3}
    line = auth.format_user("cid-7", pwhash.hash_password(algo, "ab", "pw"), "ab", False, algo)
    cfg = entry(PWD_ROWS, user_id_type="clientid")
    a, _ = make([cfg], {"users": line.encode()})
    assert a.authenticate(Client("cid-7", username="whatever", password=b"pw"), {})[0] == 0
    assert a.authenticate(Client("cid-7", password=b"px"), {})[0] == 0x86


def test_users_file_errors_and_json_array():
    raises(ConfigError, auth.parse_users, "{not json", "u")
    e = raises(ConfigError, auth.parse_users, '# x\n{"user_id": "a"}', "u")
    assert "u:2:" in str(e)
    users = auth.parse_users('[{"user_id": "a", "password_hash": "h", "is_superuser": true}]')
    assert users["a"] == ("h", "", True, None)
    # a user's own algorithm is not from the config file: the users file's line is named
    e = str(raises(ConfigError, auth.parse_users, '\n{"user_id": "a", "password_hash": "h", '
                                                  '"algorithm": {"name": "bcrypt"}}', "u"))
    assert e.startswith("u:2: algorithm: password_hash_algorithm.name: expected one of"), e
    e = str(raises(ConfigError, make, [entry(PWD_ROWS, user_file='"missing"')], {}))
    assert e.startswith("authentication.user_file: cannot read 'missing'"), e


def test_bad_authenticators_are_config_errors_at_their_key():
    e = load_error("authentication = [{mechanism = scram}]")
    assert e.startswith("g.conf:1:32: authentication.1.mechanism: expected one of password_based|jwt "
                        "(enhanced authentication is not supported yet)"), e
    e = load_error("authentication = [%s]" % entry(PWD_ROWS, backend="mysql"))
    assert e.startswith("g.conf:1:58: authentication.1.backend: expected one of built_in_database"), e
    e = load_error("authentication = [%s]" % entry(PWD_ROWS, user_id_type="peerhost"))
    assert e.startswith("g.conf:1:92: authentication.1.user_id_type: expected one of username|clientid"), e
    e = load_error("authentication = [%s]" % entry(JWT_ROWS, **{"from": "header"}))
    assert e.startswith("g.conf:1:44: authentication.1.from: expected one of password|username"), e
    e = load_error("authentication = [{mechanism = jwt}]")
    assert e.startswith("g.conf:1:19: authentication.1.secret: expected a value when algorithm = hmac-based"), e
    e = load_error("authentication = [{mechanism = jwt, algorithm = public-key}]")
    assert e.startswith("g.conf:1:49: authentication.1.public_key: expected a value when algorithm = "
                        "public-key"), e


def test_jwt_for_one_clientid_is_refused_for_another():
    a, log = make([JWT])
    tok = hs256({"sub": "dev1", "exp": NOW + 60})
    c = Client("dev1", password=tok)
    assert a.authenticate(c, {})[0] == 0
    assert c.auth_expire_at == NOW + 60
    rc, why = a.authenticate(Client("dev2", password=tok), {})
    assert rc == 0x86 and "'sub'" in why
    assert tok.decode() not in log.text()


def test_jwt_refusals_are_bad_credentials_with_reason():
    a, log = make([JWT])
    cases = [
        (hs256({"sub": "c1", "exp": NOW - 10}), "expired"),
        (hs256({"sub": "c1", "nbf": NOW + 100}), "before"),
        (hs256({"sub": "c1"}, b"other"), "signature"),
        (b"eyJhbGciOiJub25lIn0.eyJzdWIiOiJjMSJ9.", "alg"),
        (hs256({"sub": "c1"}) + b"!", "base64url"),
        (hs256({"exp": NOW + 60}), "no 'sub'"),
    ]
    for tok, reason in cases:
        rc, why = a.authenticate(Client("c1", password=tok), {})
        assert rc == 0x86, (reason, rc)
        assert reason in why, (reason, why)
    # within leeway an expired token still passes
    assert a.authenticate(Client("c1", password=hs256({"sub": "c1", "exp": NOW - 3})), {})[0] == 0


def test_jwt_from_username_superuser_and_acl_claim():
    cfg = entry(JWT_ROWS, **{"from": "username", "verify_claims": '{u = "${username}"}'})
    a, _ = make([cfg])
    tok = hs256({"u": "ignored", "is_superuser": True})
    # ${username} is the token itself here, so the claim cannot match: refused
    assert a.authenticate(Client(username=tok.decode()), {})[0] == 0x86
    a, _ = make([entry(JWT_ROWS, verify_claims="{}")])
    c = Client(password=hs256({"is_superuser": True, "acl": {"pub": ["a/b"]}}))
    assert a.authenticate(c, {})[0] == 0
    assert c.is_superuser is True
    rules, old = c.acl
    assert old is True and len(rules) == 1
    bad = Client(password=hs256({"acl": 5}))
    rc, why = a.authenticate(bad, {})
    assert rc == 0x86 and "acl claim" in why


def test_chain_order_first_answer_wins():
    a, _ = make([PWD, JWT], FILES)
    # known user with the right password: password_based allows before JWT looks
    assert a.authenticate(Client(username="alice", password=b"wonder"), {})[0] == 0
    # unknown user: password_based ignores, JWT decides
    assert a.authenticate(Client("c1", username="nobody", password=hs256({"sub": "c1"})), {})[0] == 0
    # known user, wrong password: denied at once even though a JWT would pass
    assert a.authenticate(Client("c1", username="alice", password=hs256({"sub": "c1"})), {})[0] == 0x86
    # a disabled authenticator is skipped
    b, _ = make([entry(PWD_ROWS, enable="false"), JWT], FILES)
    assert b.authenticate(Client(username="alice", password=b"wonder"), {})[0] == 0x86
    # no password at all: every authenticator ignores
    assert a.authenticate(Client("c1"), {})[0] == 0x87
