# What the broker decides with no authenticators and no ACL sources (gatemq.policy), and that it
# then never loads gatemq.auth, gatemq.acl and their crypto, nor the certificate code for plain
# clients: on boards that load .mpy files into RAM those modules would take ~90 KB of the heap.
import sys

import gatemq
from gatemq import config, policy
from gatemq.errors import ConfigError
from _check import raises

LAZY = ("gatemq.auth", "gatemq.acl", "gatemq.jwt", "gatemq.pubkey", "gatemq.pwhash", "gatemq.peercert",
        "gatemq.der", "gatemq.clientcodec")
FRESH = ("gatemq.broker", "gatemq.connection", "gatemq.identity")
# CONNECT, MQTT 3.1.1, clean session, keepalive 60, client id "x"; and the CONNACK accepting it.
CONNECT = b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01x"
CONNACK_OK = b"\x20\x02\x00\x00"


class Client:
    def __init__(self, bind="0.0.0.0", username=None, verify_peer=False, peer_cert=None, superuser=False):
        self.clientid = "c1"
        self.username = username
        self.listener = "tcp:default"
        self.listener_bind_host = bind
        self.verify_peer = verify_peer
        self.peer_cert = peer_cert
        self.is_superuser = superuser


def _loaded_after(authn, sources, connect=False):
    # Imports the broker afresh and builds one with the modules above unloaded (and connects a
    # plain client to it); returns those it loaded. The test process's own modules are put back afterwards, so other tests keep
    # the classes they imported.
    saved = {}
    for n in LAZY + FRESH:
        if n in sys.modules:
            saved[n] = sys.modules.pop(n)
        if n.split(".")[1] in gatemq.__dict__:
            delattr(gatemq, n.split(".")[1])  # `from gatemq import x` would find it there
    try:
        from gatemq.broker import Broker
        cfg = config.load("authentication = %s\nauthorization.sources = %s" % (authn, sources))
        files = {"acl.conf": b"{allow, all}.\n", "users": b""}
        b = Broker(cfg, lambda: 0.0, lambda: 1.7e9, lambda level, msg: None, files.__getitem__)
        if connect:
            cfg["listeners"]["tcp"]["default"]["bind"] = ("127.0.0.1", 1883)
            c = b.open(None, ("127.0.0.1", 50000), "tcp:default")
            c.feed(CONNECT)
            assert [bytes(x.take()) for x in b.flush()] == [CONNACK_OK]
        return [n for n in LAZY if n in sys.modules]
    finally:
        for n in LAZY + FRESH:
            sys.modules.pop(n, None)
            short = n.split(".")[1]
            if n in saved:
                sys.modules[n] = saved[n]
                setattr(gatemq, short, saved[n])
            elif short in gatemq.__dict__:
                delattr(gatemq, short)


def test_a_broker_without_authenticators_or_acl_sources_loads_neither():
    assert _loaded_after("[]", "[]") == []


def test_a_plain_client_loads_no_certificate_or_client_side_code():
    assert _loaded_after("[]", "[]", connect=True) == []


def test_acl_sources_or_authenticators_load_what_they_need():
    assert _loaded_after("[]", '[{type = file, path = "acl.conf"}]') == ["gatemq.acl"]
    pwd = """[{mechanism = password_based, backend = built_in_database, user_file = "users",
              password_hash_algorithm {name = sha256, salt_position = suffix}}]"""
    got = _loaded_after(pwd, "[]")
    assert "gatemq.auth" in got and "gatemq.pwhash" in got
    assert "gatemq.jwt" not in got  # no JWT authenticator: no JWT code
    assert "gatemq.acl" not in got  # and no ACL rules can come from a token
    jwt = '[{mechanism = jwt, from = password, algorithm = hmac-based, secret = "k3y"}]'
    got = _loaded_after(jwt, "[]")
    assert "gatemq.jwt" in got and "gatemq.acl" in got  # the token's acl claim needs gatemq.acl


def test_the_default_gate_is_the_secure_default():
    lines = []
    g = policy.Gate(lambda: 1.7e9, lambda level, msg: lines.append(msg))
    assert g.authenticate(Client(bind="127.0.0.1"), {})[0] == 0
    assert g.authenticate(Client(verify_peer=True, peer_cert=b"\x30\x00"), {})[0] == 0
    rc, why = g.authenticate(Client(), {})
    assert rc == 0x87 and "neither loopback nor verify_peer" in why
    assert g.authenticate(Client(), {"enable_authn": False})[0] == 0
    assert g.authenticate(Client(bind="127.0.0.1"), {"enable_authn": "quick_deny_anonymous"})[0] == 0x87


def test_no_match_decides_and_logs_the_real_filter_of_a_shared_subscription():
    lines = []
    authz = config.load("authorization { no_match = deny, deny_action = disconnect }")["authorization"]
    deny = policy.NoMatch(authz, lambda level, msg: lines.append(msg))
    assert deny.deny_action == "disconnect"
    assert deny.check(Client(), "subscribe", "$share/g/t/1") is False
    assert "'t/1'" in lines[-1] and "no_match" in lines[-1]
    assert deny.check(Client(superuser=True), "publish", "t/1") is True
    assert policy.NoMatch(config.default()["authorization"]).check(Client(), "publish", "t/1") is True


def test_bad_no_match_or_deny_action_is_a_config_error_at_its_key():
    e = str(raises(ConfigError, config.load, "authorization {\n  no_match = perhaps\n}", "g.conf"))
    assert e.startswith("g.conf:2:14: authorization.no_match: expected one of allow|deny"), e
    e = str(raises(ConfigError, config.load, "authorization.deny_action = kick", "g.conf"))
    assert e.startswith("g.conf:1:29: authorization.deny_action: expected one of ignore|disconnect"), e
