# acl.conf parsing (EMQX syntax) and the authorizer's order: superuser, JWT claim, files, no_match.
from gatemq import acl, config
from gatemq.errors import ConfigError, AuthError
from _check import raises


class Client:
    def __init__(self, clientid="c1", username=None, peerhost="10.1.2.3", cert_cn=None, cert_dn=None):
        self.clientid = clientid
        self.username = username
        self.peerhost = peerhost
        self.cert_cn = cert_cn
        self.cert_dn = cert_dn
        self.is_superuser = False
        self.acl = None


def authz(text, no_match="deny", extra=""):
    # An Authorizer of one acl.conf source, its settings through the config schema.
    files = {"acl.conf": text.encode()}
    cfg = config.load('authorization { no_match = %s, sources = [{type = file, path = "acl.conf"}]\n%s}'
                      % (no_match, extra))
    return acl.Authorizer(cfg["authorization"], files.__getitem__)


EXAMPLE = """
%% devices live under their certificate CN
{deny, all, subscribe, ["test/nosubscribe"]}.
{allow, all, all, ["devices/${cert_common_name}/#"]}.
{deny, all}.
"""


def test_cert_common_name_isolates_devices():
    a = authz(EXAMPLE)
    dev_a = Client("a", cert_cn="devA")
    dev_b = Client("b", cert_cn="devB")
    assert a.check(dev_a, "publish", "devices/devA/temp")
    assert a.check(dev_a, "subscribe", "devices/devA/#")
    assert not a.check(dev_a, "publish", "devices/devB/temp")
    assert not a.check(dev_a, "subscribe", "devices/devB/#")
    assert not a.check(dev_a, "subscribe", "devices/+/temp")
    assert not a.check(dev_a, "subscribe", "devices/#")
    assert a.check(dev_b, "subscribe", "devices/devB/x")
    assert not a.check(dev_a, "subscribe", "test/nosubscribe")
    # no certificate: the placeholder has no value, the rule does not match
    assert not a.check(Client("x"), "publish", "devices//temp")
    # a CN holding a wildcard does not widen the rule
    assert not a.check(Client("w", cert_cn="+"), "publish", "devices/devA/temp")


def test_shipped_example_file_parses():
    try:
        text = open("docs/acl.conf.example").read()
    except OSError:
        text = open("../../docs/acl.conf.example").read()
    a = authz(text)
    dev = Client("d1", cert_cn="d1")
    assert a.check(dev, "publish", "devices/d1/up")
    assert not a.check(dev, "publish", "devices/d2/up")
    assert not a.check(dev, "subscribe", "test/nosubscribe")


def test_who_forms():
    a = authz("""
{allow, {username, "admin"}, all, ["#"]}.
{allow, {user, {re, "^sensor-[0-9]+$"}}, publish, ["s/${username}"]}.
{allow, {clientid, "c9"}, subscribe, ["c9/#"]}.
{allow, {ipaddr, "192.168.0.0/16"}, publish, ["lan"]}.
{allow, {ipaddrs, ["10.0.0.1", "fd00::/8"]}, publish, ["ips"]}.
{allow, {'and', [{username, "u"}, {clientid, "c"}]}, publish, ["both"]}.
{allow, {'or', [{username, "u"}, {clientid, "c"}]}, publish, ["either"]}.
""")
    assert a.check(Client(username="admin"), "subscribe", "x/y")
    assert a.check(Client(username="sensor-12"), "publish", "s/sensor-12")
    assert not a.check(Client(username="sensor-x"), "publish", "s/sensor-x")
    assert a.check(Client("c9"), "subscribe", "c9/a")
    assert not a.check(Client("c9"), "publish", "c9/a")
    assert a.check(Client(peerhost="192.168.4.4"), "publish", "lan")
    assert a.check(Client(peerhost="::ffff:192.168.4.4"), "publish", "lan")
    assert not a.check(Client(peerhost="192.169.4.4"), "publish", "lan")
    assert a.check(Client(peerhost="10.0.0.1"), "publish", "ips")
    assert a.check(Client(peerhost="fd12::1"), "publish", "ips")
    assert not a.check(Client(peerhost="10.0.0.2"), "publish", "ips")
    assert a.check(Client("c", username="u"), "publish", "both")
    assert not a.check(Client("d", username="u"), "publish", "both")
    assert a.check(Client("d", username="u"), "publish", "either")
    assert not a.check(Client("d", username="v"), "publish", "either")


def test_action_conditions_and_eq():
    a = authz("""
{deny, all, {publish, [{qos, 2}, {retain, true}]}, ["t/#"]}.
{deny, all, {subscribe, {qos, [1, 2]}}, ["t/#"]}.
{allow, all, all, ["t/#", {eq, "e/#"}]}.
""")
    c = Client()
    assert a.check(c, "publish", "t/1", 2, False)
    assert not a.check(c, "publish", "t/1", 2, True)
    assert a.check(c, "publish", "t/1", 1, True)
    assert a.check(c, "subscribe", "t/1", 0)
    assert not a.check(c, "subscribe", "t/1", 1)
    assert a.check(c, "subscribe", "e/#")
    assert not a.check(c, "subscribe", "e/x")
    assert not a.check(c, "publish", "e/x")


def test_topic_matching_publish_and_subscribe():
    m = acl.topic_matches
    assert m("t/#", "t", False) and m("t/#", "t/a/b", False)
    assert m("t/+/c", "t/b/c", False) and not m("t/+/c", "t/b/d", False)
    assert not m("#", "$SYS/x", False) and not m("+/x", "$SYS/x", False)
    assert m("$SYS/#", "$SYS/x", False)
    # subscribe: the rule filter must cover the requested filter
    assert m("t/#", "t/a/+", True) and m("t/#", "t/#", True)
    assert m("t/+", "t/+", True) and not m("t/+", "t/#", True)
    assert not m("t/a", "t/+", True)
    assert acl.strip_share("$share/g/t/1") == "t/1"
    a = authz('{allow, all, subscribe, ["t/#"]}.')
    assert a.check(Client(), "subscribe", "$share/grp/t/1")
    assert not a.check(Client(), "subscribe", "$share/grp/u/1")


def test_no_match_and_superuser_and_deny_action():
    a = authz('{allow, all, publish, ["open"]}.', no_match="allow", extra="deny_action = disconnect")
    assert a.check(Client(), "publish", "other")
    assert a.deny_action == "disconnect"
    b = authz('{deny, all, publish, ["closed"]}.', no_match="deny")
    assert not b.check(Client(), "publish", "other")
    su = Client()
    su.is_superuser = True
    assert b.check(su, "publish", "closed")
    # EMQX's default no_match is allow
    assert acl.Authorizer(config.default()["authorization"], None).check(Client(), "publish", "x")


def test_jwt_claim_checked_before_files():
    a = authz('{allow, all}.')
    c = Client("dev1", username="u1")
    # old format: allow-lists, everything else denied (files never consulted)
    c.acl = acl.compile_claim({"pub": ["t/${clientid}"], "sub": ["s/#"]})
    assert a.check(c, "publish", "t/dev1")
    assert not a.check(c, "publish", "t/dev2")
    assert a.check(c, "subscribe", "s/x")
    assert not a.check(c, "subscribe", "t/dev1")
    # new format: a miss falls through to the files
    c.acl = acl.compile_claim([{"permission": "deny", "action": "publish", "topic": "t/2", "retain": True},
                               {"permission": "allow", "action": "subscribe", "topic": "eq t/1/#", "qos": [1]}])
    assert not a.check(c, "publish", "t/2", 0, True)
    assert a.check(c, "publish", "t/2", 0, False)
    b = authz('{deny, all}.')
    assert b.check(c, "subscribe", "t/1/#", 1)
    assert not b.check(c, "subscribe", "t/1/#", 0)
    assert not b.check(c, "subscribe", "t/1/x", 1)


def test_claim_errors():
    raises(AuthError, acl.compile_claim, "nope")
    raises(AuthError, acl.compile_claim, [{"permission": "maybe", "action": "publish", "topic": "t"}])
    raises(AuthError, acl.compile_claim, [{"permission": "allow", "action": "publish", "topic": "t",
                                           "clientid_re": "^x"}])
    raises(AuthError, acl.compile_claim, {"pub": "t"})
    raises(AuthError, acl.compile_claim, {"pub": ["t/${nope}"]})


def test_parse_errors_carry_line_numbers():
    def msg(text):
        return str(raises(ConfigError, acl.parse, text, "acl.conf"))
    assert "acl.conf:2:" in msg('{allow, all}.\n{allow, {username, 5}, publish, ["t"]}.')
    assert "acl.conf:1:" in msg('{allow, all, publish, ["t"]}')
    assert "acl.conf:3:" in msg('%% c\n\n{maybe, all}.')
    assert "placeholder" in msg('{allow, all, publish, ["t/${peer}"]}.')
    assert "not an IP" in msg('{allow, {ipaddr, "10.0.0"}, publish, ["t"]}.')
    assert "qos" in msg('{allow, all, {publish, {qos, 3}}, ["t"]}.')
    assert "action" in msg('{allow, all, read, ["t"]}.')
    assert "string not closed" in msg('{allow, all, publish, ["t}.')
    cfg = config.load('authorization.sources = [{type = file, path = "missing"}]')["authorization"]
    e = str(raises(ConfigError, acl.Authorizer, cfg, {}.__getitem__))
    assert e.startswith("authorization.sources.1.path: cannot read 'missing'"), e


def test_bad_sources_are_config_errors_at_their_key():
    def msg(text):
        return str(raises(ConfigError, config.load, text, "g.conf"))
    e = msg("authorization.sources = [{type = file}]")
    assert e.startswith("g.conf:1:26: authorization.sources.1.path: expected a file path (required)"), e
    e = msg('authorization.sources = [{type = http, path = "x"}]')
    assert e.startswith("g.conf:1:34: authorization.sources.1.type: expected one of file"), e
    e = msg("authorization.no_match = perhaps")
    assert e.startswith("g.conf:1:26: authorization.no_match: expected one of allow|deny"), e
