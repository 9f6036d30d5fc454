# ${client_attrs.NAME} in a JWT `acl` claim: one config (mqtt.client_attrs_init, a JWT
# authenticator, an acl.conf source) through config.load, the attributes set as a CONNECT sets them
# (gatemq.clientattrs.init), then the Authenticator and the Authorizer.
import json

from gatemq import acl, auth, clientattrs, config, jwt, pwhash

NOW = 1700000000

CONF = """
mqtt.client_attrs_init = [
  { expression = "nth(1, tokens(clientid, '-'))", set_as_attr = site }
]
authentication = [{ mechanism = jwt, from = password, algorithm = hmac-based, secret = "k3y",
                    verify_claims = {} }]
authorization { no_match = deny, sources = [{ type = file, path = "acl.conf" }] }
"""


class Client:
    def __init__(self, clientid, password):
        self.clientid = clientid
        self.username = None
        self.password = password
        self.peerhost = "10.0.0.5"
        self.peerport = 40000
        self.listener = "default"
        self.listener_kind = "tcp"
        self.listener_bind_host = "0.0.0.0"
        self.verify_peer = False
        self.peer_cert = None
        self.cert_cn = None
        self.cert_dn = None
        self.proto_ver = 5
        self.client_attrs = {}
        self.is_superuser = False
        self.acl = None


def hs256(claims, secret=b"k3y"):
    h = jwt.b64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    p = jwt.b64url_encode(json.dumps(claims).encode()).decode()
    s = jwt.b64url_encode(pwhash.hmac_sha256(secret, (h + "." + p).encode())).decode()
    return (h + "." + p + "." + s).encode()


def setup(acl_text="{deny, all}."):
    cfg = config.load(CONF)
    logged = []
    a = auth.Authenticator(cfg["authentication"], {}.__getitem__, lambda: NOW,
                           lambda level, msg: logged.append(msg))
    z = acl.Authorizer(cfg["authorization"], {"acl.conf": acl_text.encode()}.__getitem__)
    return cfg, a, z, logged


def connect(cfg, a, clientid, claim, attrs=True):
    c = Client(clientid, hs256({"acl": claim}))
    if attrs:
        clientattrs.init(c, cfg["mqtt"], None, lambda level, msg: None)
    assert a.authenticate(c, {})[0] == 0
    return c


def test_client_attrs_in_the_old_format_claim():
    cfg, a, z, _ = setup()
    claim = {"pub": ["sites/${client_attrs.site}/#"], "sub": ["sites/${client_attrs.site}/cmd"]}
    c = connect(cfg, a, "site7-dev1", claim)
    assert c.client_attrs == {"site": "site7"}
    assert z.check(c, "publish", "sites/site7/temp")
    assert z.check(c, "subscribe", "sites/site7/cmd")
    assert not z.check(c, "publish", "sites/site9/temp")
    assert not z.check(c, "subscribe", "sites/site9/cmd")
    # Another client with the same token claim gets its own site.
    d = connect(cfg, a, "site9-dev4", claim)
    assert z.check(d, "publish", "sites/site9/temp")
    assert not z.check(d, "publish", "sites/site7/temp")
    # Without the attribute the placeholder has no value: the rule matches nothing.
    e = connect(cfg, a, "site7-dev2", claim, attrs=False)
    assert e.client_attrs == {}
    assert not z.check(e, "publish", "sites/site7/temp")
    assert not z.check(e, "publish", "sites//temp")


def test_client_attrs_in_the_rule_list_claim_then_the_files():
    cfg, a, z, _ = setup('{allow, all, subscribe, ["fleet/#"]}.\n{deny, all}.')
    claim = [{"permission": "deny", "action": "publish", "topic": "sites/${client_attrs.site}/locked"},
             {"permission": "allow", "action": "publish", "topic": "sites/${client_attrs.site}/#"}]
    c = connect(cfg, a, "site7-dev1", claim)
    assert z.check(c, "publish", "sites/site7/temp")
    assert not z.check(c, "publish", "sites/site7/locked")
    assert not z.check(c, "publish", "sites/site9/temp")
    # A miss falls through to acl.conf.
    assert z.check(c, "subscribe", "fleet/all")
    # A value with a topic separator matches nothing (no reaching into other subtrees).
    d = connect(cfg, a, "a/b-dev", claim)
    assert d.client_attrs == {"site": "a/b"}
    assert not z.check(d, "publish", "sites/a/b/x")
