# The config file: HOCON syntax, normalised values, defaults, and errors that point at file:line:col.
from gatemq import config, hocon
from gatemq.errors import ConfigError
from _check import raises


def err(text, source="gatemq.conf", read_file=None):
    return str(raises(ConfigError, config.load, text, source, read_file))


def plain(text):
    return hocon.plain(hocon.parse(text, "t.conf"))


# -- syntax ----------------------------------------------------------------------------------------

def test_objects_with_and_without_separator():
    assert plain("a { b = 1 }\nc = { d = 2 }\ne : { f: 3 }") == {"a": {"b": 1}, "c": {"d": 2}, "e": {"f": 3}}


def test_root_in_braces():
    assert plain("{\n a = 1\n}\n") == {"a": 1}


def test_dotted_keys_build_objects():
    assert plain("mqtt.max_packet_size = 1MB") == {"mqtt": {"max_packet_size": "1MB"}}


def test_repeated_keys_merge_objects_and_later_wins():
    t = plain("a { x = 1, y = 2 }\na { y = 3 }\na.z = 4\nb = 1\nb = 2")
    assert t == {"a": {"x": 1, "y": 3, "z": 4}, "b": 2}


def test_scalar_replaced_by_object_and_back():
    assert plain("a = 1\na { b = 2 }") == {"a": {"b": 2}}
    assert plain("a { b = 2 }\na = 1") == {"a": 1}


def test_quoted_strings_and_escapes():
    t = plain(r'a = "x\ty\n\"q\" \\ \/ \u00e9 \ud83d\ude00"' + '\n"k.dot" = 1')
    assert t["a"] == 'x\ty\n"q" \\ / \u00e9 \U0001F600'
    assert t["k.dot"] == 1


def test_quoted_key_parts_in_dotted_key():
    assert plain('a."b.c".d = 1') == {"a": {"b.c": {"d": 1}}}


def test_unquoted_strings_keep_inner_spaces():
    t = plain("name = gatemq@127.0.0.1\nbind = 0.0.0.0:1883\ns = hello  world   # c\nv = tlsv1.3")
    assert t == {"name": "gatemq@127.0.0.1", "bind": "0.0.0.0:1883", "s": "hello  world", "v": "tlsv1.3"}


def test_numbers_booleans_null():
    t = plain("a = 1\nb = -2\nc = 2.5\nd = 1e3\ne = true\nf = false\ng = null\nh = 1.5.1\ni = 0x10")
    assert t == {"a": 1, "b": -2, "c": 2.5, "d": 1000.0, "e": True, "f": False, "g": None,
                 "h": "1.5.1", "i": "0x10"}
    assert type(t["a"]) is int and type(t["d"]) is float


def test_quoted_keyword_stays_a_string():
    assert plain('a = "true"\nb = "12"') == {"a": "true", "b": "12"}


def test_arrays_commas_newlines_trailing_comma():
    t = plain('a = [1, 2, 3]\nb = [\n  "x"\n  "y",\n  z,\n]\nc = []\nd = [[1], {k = v}]')
    assert t == {"a": [1, 2, 3], "b": ["x", "y", "z"], "c": [], "d": [[1], {"k": "v"}]}


def test_comments_both_styles():
    t = plain("# top\na = 1 // after\n// line\nb = \"x # not a comment\" # real\nc = http://x")
    assert t["a"] == 1 and t["b"] == "x # not a comment"
    assert t["c"] == "http:"  # an unquoted // starts a comment, as in HOCON: quote URLs


def test_commas_between_fields():
    assert plain("a = 1, b = 2\nc { d = 1, e = 2, }") == {"a": 1, "b": 2, "c": {"d": 1, "e": 2}}


def test_triple_quoted_string_spans_lines_and_keeps_positions():
    tree = hocon.parse('a = """line1\n"quoted" \\n"""\nb = 2', "t.conf")
    assert tree["a"][0] == 'line1\n"quoted" \\n'
    assert tree["b"][1] == ("t.conf", 3, 5)


def test_positions_of_values_and_keys():
    tree = hocon.parse("x {\n  y = 1\n}\n  arr = [a, b]", "f.conf")
    value, pos, kpos = tree["x"][0]["y"]
    assert value == 1 and pos == ("f.conf", 2, 7) and kpos == ("f.conf", 2, 3)
    assert tree["arr"][0][1] == ("b", ("f.conf", 4, 13))


def test_crlf_line_endings():
    assert plain("a = 1\r\nb = two\r\n") == {"a": 1, "b": "two"}


def test_include_relative_to_including_file():
    files = {
        "etc/gatemq.conf": 'node.name = "a@b"\ninclude "conf.d/mqtt.conf"\nmqtt.max_inflight = 7',
        "etc/conf.d/mqtt.conf": "mqtt { max_qos_allowed = 1\n include \"more.conf\" }",
        "etc/conf.d/more.conf": "max_inflight = 3\nretain_available = false",
    }
    cfg = config.load(files["etc/gatemq.conf"], "etc/gatemq.conf", files.__getitem__)
    assert cfg["node"]["name"] == "a@b"
    assert cfg["mqtt"]["max_qos_allowed"] == 1
    assert cfg["mqtt"]["retain_available"] is False
    assert cfg["mqtt"]["max_inflight"] == 7  # the including file's later key wins


def test_include_errors_keep_the_included_file_position():
    files = {"main.conf": 'include "sub.conf"', "sub.conf": "\nmqtt.max_qos_allowed = 3"}
    e = err(files["main.conf"], "main.conf", files.__getitem__)
    assert e.startswith("sub.conf:2:24: mqtt.max_qos_allowed: expected an integer 0..2, got 3"), e


def test_include_cycle_and_depth():
    files = {"a.conf": 'include "b.conf"', "b.conf": 'include "a.conf"'}
    e = err(files["a.conf"], "a.conf", files.__getitem__)
    assert e.startswith("b.conf:1:9: include \"a.conf\": include cycle a.conf -> b.conf -> a.conf"), e
    deep = {}
    for i in range(20):
        deep["f%d.conf" % i] = 'include "f%d.conf"' % (i + 1)
    e = err(deep["f0.conf"], "f0.conf", deep.__getitem__)
    assert "includes nest deeper than" in e


def test_include_missing_file_and_no_reader():
    def read(path):
        raise OSError(2, "No such file")
    e = err('\n  include "nope.conf"', "/etc/g.conf", read)
    assert e.startswith('/etc/g.conf:2:11: include "nope.conf": cannot read /etc/nope.conf'), e
    e = err('include "x.conf"')
    assert "no file reader" in e
    e = err('include ""', "g.conf", read)
    assert e == 'g.conf:1:9: include "": expected a file name', e

    def undecodable(path):
        return b"\xff".decode()
    e = err('include "bin.conf"', "g.conf", undecodable)
    assert e.startswith('g.conf:1:9: include "bin.conf": cannot read bin.conf'), e


def test_include_is_also_a_key_name():
    assert plain("include = 1") == {"include": 1}


# -- syntax errors -------------------------------------------------------------------------------

def test_syntax_errors_name_line_and_column():
    cases = [
        ("a = 1\nb 2", "gatemq.conf:2:3: expected '=', ':' or '{' after the key 'b', got '2'"),
        ('a = "open', "gatemq.conf:1:5: unterminated string"),
        ("a {\n b = 1\n", "gatemq.conf:3:1: expected '}' to close the object, got end of file"),
        ("a = [1, 2", "gatemq.conf:1:10: expected ']' to close the array, got end of file"),
        ("a = 1 }", "gatemq.conf:1:7: expected ',' or a new line after the value, got '}'"),
        ("a = ${b}", "gatemq.conf:1:5: substitutions (${...}) are not supported"),
        ('a = "\\q"', "gatemq.conf:1:6: unknown escape '\\q'"),
        ("a = [1 2]", None),  # concatenation inside arrays is fine: "1 2"
        ("a = ", "gatemq.conf:1:5: expected a value, got end of file"),
        ("= 1", "gatemq.conf:1:1: expected a key, got '='"),
        ("a = 1,, b = 2", "gatemq.conf:1:7: expected a key, got ','"),
        ("{ a = 1 } b", "gatemq.conf:1:11: expected end of file after the closing '}'"),
        ('a = """x', "gatemq.conf:1:5: unterminated \"\"\" string"),
        ("a = \"\\u12\"", "gatemq.conf:1:6: expected 4 hex digits"),
    ]
    for text, want in cases:
        if want is None:
            assert plain(text) == {"a": ["1 2"]}
            continue
        e = str(raises(ConfigError, hocon.parse, text, "gatemq.conf"))
        assert e.startswith(want), (text, e)


def test_nesting_is_bounded():
    e = str(raises(ConfigError, hocon.parse, "a = " + "[" * 200, "n.conf"))
    assert "nest deeper than" in e


# -- defaults --------------------------------------------------------------------------------------

def test_default_has_one_loopback_listener_and_emqx_defaults():
    d = config.default()
    assert d["node"]["name"] == "gatemq@127.0.0.1"
    assert d["log"]["level"] == "info"
    assert d["listeners"]["tcp"] == {"default": {"enable": True, "bind": ("127.0.0.1", 1883),
                                                  "max_connections": None, "enable_authn": True}}
    assert d["listeners"]["ssl"] == {}
    m = d["mqtt"]
    assert m["max_packet_size"] == 1048576 and m["max_clientid_len"] == 65535
    assert m["max_topic_levels"] == 128 and m["max_qos_allowed"] == 2 and m["max_topic_alias"] == 65535
    assert m["retain_available"] and m["wildcard_subscription"] and m["shared_subscription"]
    # gatemq bounds one session's subscriptions by default (EMQX: infinity), issue 11
    assert m["max_subscriptions"] == 1000 and m["max_inflight"] == 32 and m["max_awaiting_rel"] == 100
    assert m["await_rel_timeout"] == 300 and m["max_mqueue_len"] == 1000 and m["mqueue_store_qos0"]
    assert m["session_expiry_interval"] == 7200 and m["server_keepalive"] is None
    assert m["keepalive_multiplier"] == 1.5 and m["idle_timeout"] == 15
    assert m["peer_cert_as_username"] == "disabled" and m["peer_cert_as_clientid"] == "disabled"
    assert not (m["use_username_as_clientid"] or m["peer_cert_allow_unsafe"]
                or m["use_identity_as_username"] or m["use_subject_as_username"])
    assert d["sys_topics"] == {"sys_msg_interval": 60, "sys_heartbeat_interval": 30}
    assert d["authentication"] == []
    assert d["authorization"] == {"no_match": "allow", "deny_action": "ignore", "deny_sys_publish": True, "sources": []}
    db = d["dashboard"]
    assert db["listeners"]["http"] == {"enable": True, "bind": ("127.0.0.1", 18083)}
    assert db["listeners"]["https"]["enable"] is False
    assert (db["default_username"], db["default_password"]) == ("admin", "public")
    assert db["token_expired_time"] == 3600 and db["overlay_file"] == "data/overlay.conf"


def test_empty_file_equals_default():
    assert config.load("") == config.default()
    assert config.load("# nothing here\n") == config.default()


def test_file_listeners_replace_the_default_one():
    cfg = config.load('listeners.tcp.lan { bind = "0.0.0.0:1884" }')
    assert list(cfg["listeners"]["tcp"]) == ["lan"]
    lan = cfg["listeners"]["tcp"]["lan"]
    assert lan == {"enable": True, "bind": ("0.0.0.0", 1884), "max_connections": None, "enable_authn": True}
    cfg = config.load('listeners.tcp.default { bind = "0.0.0.0:1883", max_connections = 10 }')
    assert cfg["listeners"]["tcp"]["default"]["bind"] == ("0.0.0.0", 1883)
    assert cfg["listeners"]["tcp"]["default"]["max_connections"] == 10


def test_ssl_only_file_has_no_tcp_listener():
    cfg = config.load('listeners.ssl.tls.ssl_options { certfile = "s.pem", keyfile = "s.key" }')
    assert cfg["listeners"]["tcp"] == {}
    tls = cfg["listeners"]["ssl"]["tls"]
    assert tls["bind"] == ("0.0.0.0", 8883)
    o = tls["ssl_options"]
    assert o["verify"] == "verify_none" and o["fail_if_no_peer_cert"] is False and o["depth"] == 10
    assert o["versions"] == ["tlsv1.3", "tlsv1.2"] and o["handshake_timeout"] == 15
    assert o["ciphers"] is None and o["cacertfile"] is None and o["enable_crl_check"] is False


# -- normalisation ---------------------------------------------------------------------------------

def mqtt(key, value):
    return config.load("mqtt.%s = %s" % (key, value))["mqtt"][key]


def test_durations_to_seconds():
    assert mqtt("idle_timeout", "15s") == 15
    assert mqtt("idle_timeout", "2m") == 120
    assert mqtt("idle_timeout", "1h") == 3600
    assert mqtt("idle_timeout", "1d") == 86400
    assert mqtt("idle_timeout", "500ms") == 0.5
    assert mqtt("idle_timeout", "1h30m") == 5400
    assert mqtt("idle_timeout", "1.5s") == 1.5
    assert mqtt("idle_timeout", '"20s"') == 20
    assert mqtt("idle_timeout", "infinity") is None
    assert type(mqtt("idle_timeout", "2000ms")) is int
    assert mqtt("await_rel_timeout", "0") == 0


def test_byte_sizes():
    assert mqtt("max_packet_size", "64KB") == 65536
    assert mqtt("max_packet_size", "1MB") == 1048576
    assert mqtt("max_packet_size", "256mb") == 268435456
    assert mqtt("max_packet_size", "4096") == 4096
    assert mqtt("max_packet_size", "100B") == 100
    assert config.load("mqtt.max_packet_size = 1GB".replace("1GB", "1KB"))["mqtt"]["max_packet_size"] == 1024


def test_infinity_and_disabled_become_none():
    assert mqtt("max_subscriptions", "infinity") is None
    assert mqtt("max_subscriptions", "10") == 10
    assert mqtt("max_mqueue_len", "infinity") is None
    assert mqtt("server_keepalive", "disabled") is None
    assert mqtt("server_keepalive", "60") == 60
    assert config.load("sys_topics.sys_msg_interval = disabled")["sys_topics"]["sys_msg_interval"] is None
    assert config.load("sys_topics.sys_msg_interval = 0")["sys_topics"]["sys_msg_interval"] is None
    assert config.load("sys_topics.sys_msg_interval = 10s")["sys_topics"]["sys_msg_interval"] == 10


def test_binds():
    def bind(text):
        return config.load("listeners.tcp.x.bind = %s" % text)["listeners"]["tcp"]["x"]["bind"]
    assert bind('"127.0.0.1:1883"') == ("127.0.0.1", 1883)
    assert bind("0.0.0.0:1883") == ("0.0.0.0", 1883)
    assert bind('"[::1]:1883"') == ("::1", 1883)
    assert bind('"[::]:1884"') == ("::", 1884)
    assert bind('"1883"') == ("0.0.0.0", 1883)
    assert bind("1883") == ("0.0.0.0", 1883)
    assert bind('"localhost:1883"') == ("localhost", 1883)
    for bad in ('"::1:1883"', '"1.2.3.256:1883"', '"host:port"', '"host:70000"', '"[::1]"', '":1883"'):
        e = err("listeners.tcp.x.bind = " + bad)
        assert "listeners.tcp.x.bind: expected an address" in e, e


def test_enums_and_booleans():
    cfg = config.load("mqtt { peer_cert_as_username = cn, peer_cert_as_clientid = md5, "
                      "use_username_as_clientid = true }\nlog.level = debug")
    assert cfg["mqtt"]["peer_cert_as_username"] == "cn" and cfg["mqtt"]["peer_cert_as_clientid"] == "md5"
    assert cfg["mqtt"]["use_username_as_clientid"] is True
    assert cfg["log"]["level"] == "debug"
    for v, want in (("false", False), ("true", True), ("quick_deny_anonymous", "quick_deny_anonymous")):
        cfg = config.load("listeners.tcp.a.enable_authn = " + v)
        assert cfg["listeners"]["tcp"]["a"]["enable_authn"] == want


def test_keepalive_multiplier_number():
    assert mqtt("keepalive_multiplier", "2") == 2
    assert mqtt("keepalive_multiplier", "1.25") == 1.25


def test_ssl_options_full():
    cfg = config.load('''
listeners.ssl.mtls {
  bind = "127.0.0.1:8883"
  ssl_options {
    certfile = "certs/server.pem"
    keyfile = "certs/server.key"
    cacertfile = "certs/ca.pem"
    verify = verify_peer
    fail_if_no_peer_cert = true
    depth = 3
    versions = ["tlsv1.3"]
    ciphers = "TLS_AES_128_GCM_SHA256, TLS_AES_256_GCM_SHA384"
    handshake_timeout = 5s
    enable_crl_check = true
    crlfile = "certs/crl.pem"
    verify_peer_ext_key_usage = clientAuth
  }
}
mqtt.peer_cert_as_username = cn
''')
    o = cfg["listeners"]["ssl"]["mtls"]["ssl_options"]
    assert o["verify"] == "verify_peer" and o["fail_if_no_peer_cert"] is True and o["depth"] == 3
    assert o["versions"] == ["tlsv1.3"] and o["handshake_timeout"] == 5
    assert o["ciphers"] == ["TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384"]
    assert o["crlfile"] == "certs/crl.pem" and o["verify_peer_ext_key_usage"] == "clientAuth"
    assert config.load('listeners.ssl.a.ssl_options { certfile = c, keyfile = k, ciphers = [A, B] }'
                       )["listeners"]["ssl"]["a"]["ssl_options"]["ciphers"] == ["A", "B"]


def test_authentication_chain():
    cfg = config.load('''
authentication = [
  {
    mechanism = password_based
    backend = built_in_database
    user_id_type = clientid
    password_hash_algorithm { name = pbkdf2, iterations = 1000, dk_length = 32 }
    user_file = "data/users"
  }
  { mechanism = jwt, secret = "s3cret", secret_base64_encoded = false,
    verify_claims { clientid = "${clientid}", sub = "${username}" }, leeway = 30s }
  { mechanism = jwt, algorithm = public-key, public_key = "jwt.pem", from = username, enable = false }
  { mechanism = password_based, backend = built_in_database, user_file = u }
]''')
    a = cfg["authentication"]
    assert [x["mechanism"] for x in a] == ["password_based", "jwt", "jwt", "password_based"]
    assert a[0]["user_id_type"] == "clientid" and a[0]["enable"] is True
    assert a[0]["password_hash_algorithm"] == {"name": "pbkdf2", "mac_fun": "sha256", "iterations": 1000,
                                               "dk_length": 32}
    assert a[1]["from"] == "password" and a[1]["algorithm"] == "hmac-based" and a[1]["secret"] == "s3cret"
    assert a[1]["verify_claims"] == {"clientid": "${clientid}", "sub": "${username}"}
    assert a[1]["leeway"] == 30 and a[1]["acl_claim_name"] == "acl" and a[1]["disconnect_after_expire"]
    assert a[2]["from"] == "username" and a[2]["public_key"] == "jwt.pem" and a[2]["enable"] is False
    assert a[3]["user_id_type"] == "username"
    assert a[3]["password_hash_algorithm"] == {"name": "sha256", "salt_position": "prefix"}


def test_authorization():
    cfg = config.load('authorization { no_match = deny, deny_action = disconnect\n'
                      '  sources = [ { type = file, path = "etc/acl.conf" } ] }')
    z = cfg["authorization"]
    assert z == {"no_match": "deny", "deny_action": "disconnect", "deny_sys_publish": True,
                 "sources": [{"type": "file", "enable": True, "path": "etc/acl.conf"}]}


def test_dashboard():
    cfg = config.load('dashboard { listeners.http.bind = 18083, default_password = "s3cret!"\n'
                      '  listeners.https { enable = true, ssl_options { certfile = a.pem, keyfile = a.key } }\n'
                      '  token_expired_time = 30m }')
    db = cfg["dashboard"]
    assert db["listeners"]["http"]["bind"] == ("0.0.0.0", 18083)
    assert db["listeners"]["https"]["enable"] is True
    assert db["listeners"]["https"]["ssl_options"]["certfile"] == "a.pem"
    assert db["default_password"] == "s3cret!" and db["token_expired_time"] == 1800


# -- schema errors ---------------------------------------------------------------------------------

def test_unknown_keys_at_any_depth():
    cases = [
        ("nodes.name = x", "gatemq.conf:1:1: nodes: expected a known key (did you mean node?), "
                           'got unknown key "nodes"'),
        ("mqtt {\n  max_pakcet_size = 1MB\n}", "gatemq.conf:2:3: mqtt.max_pakcet_size: expected a known "
                                               "key (did you mean max_packet_size?)"),
        ("listeners.tcp.a.zone = x", "gatemq.conf:1:17: listeners.tcp.a.zone: expected a known key "
                                     "(listeners.tcp.a takes bind, enable, enable_authn, max_connections)"),
        ("listeners.ssl.a.ssl_options.verfy = verify_peer", "gatemq.conf:1:29: listeners.ssl.a.ssl_options."
                                                            "verfy: expected a known key (did you mean verify?)"),
        ("listeners.quic.a.bind = 1", "gatemq.conf:1:11: listeners.quic: expected a known key"),
        ("authentication = [{mechanism = jwt, secret = x, foo = 1}]",
         "gatemq.conf:1:49: authentication.1.foo: expected a known key"),
        ("authorization.sources = [{type = file, path = p, mode = x}]",
         "gatemq.conf:1:50: authorization.sources.1.mode: expected a known key"),
        ("dashboard.listeners.http.port = 1", "gatemq.conf:1:26: dashboard.listeners.http.port: expected"),
    ]
    for text, want in cases:
        e = err(text)
        assert e.startswith(want), (text, e)


def test_wrong_types_and_bad_values():
    cases = [
        ("mqtt.max_qos_allowed = 3", "gatemq.conf:1:24: mqtt.max_qos_allowed: expected an integer 0..2, got 3"),
        ("mqtt.max_inflight = 0", "mqtt.max_inflight: expected an integer 1..65535, got 0"),
        ("mqtt.max_topic_alias = 70000", "mqtt.max_topic_alias: expected an integer 0..65535, got 70000"),
        ("mqtt.max_packet_size = 300MB", 'mqtt.max_packet_size: expected a byte size such as 64KB, 1MB or '
                                         '1024 up to 256MB, got "300MB"'),
        ("mqtt.max_packet_size = 1TB", "mqtt.max_packet_size: expected a byte size"),
        ("mqtt.keepalive_multiplier = 0", "mqtt.keepalive_multiplier: expected a number above 0, got 0"),
        ("mqtt.retain_available = yes", 'mqtt.retain_available: expected true or false, got "yes"'),
        ("mqtt.idle_timeout = 15", "mqtt.idle_timeout: expected a duration such as 15s, 500ms, 2m, 1h or 1d "
                                   "of at least 1ms or infinity, got 15"),
        ("mqtt.session_expiry_interval = 2", "mqtt.session_expiry_interval: expected a duration such as 15s, "
                                             "500ms, 2m, 1h or 1d, got 2"),
        ("mqtt.idle_timeout = 15x", 'mqtt.idle_timeout: expected a duration'),
        ("mqtt.idle_timeout = 0s", "mqtt.idle_timeout: expected a duration"),
        ("mqtt.max_subscriptions = lots", 'expected an integer >= 1 or infinity, got "lots"'),
        ("mqtt.server_keepalive = 0", "mqtt.server_keepalive: expected an integer 1..65535 or disabled, got 0"),
        ("mqtt.peer_cert_as_username = cert", 'mqtt.peer_cert_as_username: expected one of '
                                               'disabled|cn|dn|crt|pem|md5, got "cert"'),
        ("mqtt = 5", "gatemq.conf:1:8: mqtt: expected an object, got 5"),
        ("mqtt.max_inflight { a = 1 }", "mqtt.max_inflight: expected an integer 1..65535, got an object"),
        ("mqtt.max_inflight = [1]", "mqtt.max_inflight: expected an integer 1..65535, got an array"),
        ("mqtt.max_inflight = true", "mqtt.max_inflight: expected an integer 1..65535, got true"),
        ("log.level = trace", 'log.level: expected one of debug|info|warning|error, got "trace"'),
        ("node.name = \"\"", 'node.name: expected a non-empty string, got ""'),
        ("listeners.tcp.a.max_connections = 0", "expected an integer >= 1 or infinity, got 0"),
        ("listeners.tcp.a.enable_authn = maybe", 'expected one of true|false|quick_deny_anonymous, got "maybe"'),
        ('listeners.tcp."a b".bind = 1', "gatemq.conf:1:15: listeners.tcp.a b: expected a name of letters"),
        ("listeners.ssl.a { ssl_options { certfile = c, keyfile = k, versions = [tlsv1.4] } }",
         'listeners.ssl.a.ssl_options.versions: expected an array of strings among tlsv1.3|tlsv1.2|tlsv1.1|'
         'tlsv1, got an array'),
        ("listeners.ssl.a.ssl_options { certfile = c, keyfile = k, handshake_timeout = 100ms }",
         "handshake_timeout: expected a duration such as 15s, 500ms, 2m, 1h or 1d of at least 1s"),
        ("listeners.ssl.a.ssl_options { certfile = c, keyfile = k, verify = verify_maybe }",
         'verify: expected one of verify_peer|verify_none, got "verify_maybe"'),
        ("sys_topics.sys_msg_interval = often", 'sys_topics.sys_msg_interval: expected a duration'),
        ("authorization.no_match = maybe", 'authorization.no_match: expected one of allow|deny, got "maybe"'),
        ("authorization.sources = [{type = http}]", 'authorization.sources.1.type: expected one of file, '
                                                    'got "http"'),
        ("authorization.sources = {type = file}", "authorization.sources: expected an array of objects, "
                                                  "got an object"),
        ("authentication = {mechanism = jwt}", "authentication: expected an array of objects, got an object"),
    ]
    for text, want in cases:
        e = err(text)
        assert want in e, (text, e)
        assert e.startswith("gatemq.conf:1:"), e


def test_error_positions_point_at_the_value():
    e = err("# settings\nmqtt {\n    max_inflight = 70000\n}\n")
    assert e == "gatemq.conf:3:20: mqtt.max_inflight: expected an integer 1..65535, got 70000", e


def test_fail_if_no_peer_cert_needs_verify_peer():
    text = ("listeners.ssl.a.ssl_options {\n certfile = c\n keyfile = k\n fail_if_no_peer_cert = true\n}")
    e = err(text)
    assert e.startswith("gatemq.conf:4:25: listeners.ssl.a.ssl_options.fail_if_no_peer_cert: expected false "
                        "unless verify = verify_peer"), e
    cfg = config.load(text.replace("keyfile = k", "keyfile = k\n verify = verify_peer"))
    assert cfg["listeners"]["ssl"]["a"]["ssl_options"]["fail_if_no_peer_cert"] is True


def test_ssl_listener_needs_cert_and_key():
    e = err("listeners.ssl.a {\n  bind = 8883\n}")
    assert e.startswith("gatemq.conf:1:17: listeners.ssl.a.ssl_options.certfile: expected a file path"), e
    e = err("listeners.ssl.a.ssl_options {\n  certfile = c.pem\n}")
    assert e.startswith("gatemq.conf:1:29: listeners.ssl.a.ssl_options.keyfile: expected a file path"), e
    e = err("dashboard.listeners.https.enable = true")
    assert "dashboard.listeners.https.ssl_options.certfile: expected a file path" in e, e


def test_crl_check_needs_crlfile():
    e = err("listeners.ssl.a.ssl_options { certfile = c, keyfile = k, enable_crl_check = true }")
    assert "listeners.ssl.a.ssl_options.crlfile: expected a CRL file path when enable_crl_check = true" in e


def test_authentication_errors():
    cases = [
        ("authentication = [{backend = built_in_database}]",
         "gatemq.conf:1:19: authentication.1.mechanism: expected one of password_based|jwt (required), got "
         "nothing"),
        ("authentication = [{mechanism = ldap}]",
         'gatemq.conf:1:32: authentication.1.mechanism: expected one of password_based|jwt, got "ldap"'),
        ("authentication = [{mechanism = password_based, backend = built_in_database}]",
         "authentication.1.user_file: expected a file path (required), got nothing"),
        ("authentication = [{mechanism = password_based, user_file = u}]",
         "authentication.1.backend: expected one of built_in_database (required)"),
        ("authentication = [{mechanism = password_based, backend = mysql, user_file = u}]",
         'authentication.1.backend: expected one of built_in_database, got "mysql"'),
        ("authentication = [{mechanism = jwt}]",
         "authentication.1.secret: expected a value when algorithm = hmac-based, got nothing"),
        ("authentication = [{mechanism = jwt, algorithm = public-key, secret = s}]",
         "authentication.1.public_key: expected a value when algorithm = public-key, got nothing"),
        ("authentication = [{mechanism = jwt, secret = s, verify_claims = { n = 1 } }]",
         "authentication.1.verify_claims: expected an object of strings, with a string for n, got an object"),
        ("authentication = [{mechanism = jwt, secret = s, from = header}]",
         'authentication.1.from: expected one of password|username, got "header"'),
        ("authentication = [{mechanism = password_based, backend = built_in_database, user_file = u,\n"
         "  password_hash_algorithm { name = sha512 } }]",
         "gatemq.conf:2:36: authentication.1.password_hash_algorithm.name: expected one of "
         "plain|md5|sha256|pbkdf2 (MicroPython's hashlib has only md5, sha1 and sha256"),
        ("authentication = [{mechanism = password_based, backend = built_in_database, user_file = u,\n"
         "  password_hash_algorithm { name = pbkdf2, mac_fun = sha512 } }]",
         "password_hash_algorithm.mac_fun: expected one of sha256 (MicroPython's hashlib"),
        ("authentication = [{mechanism = password_based, backend = built_in_database, user_file = u,\n"
         "  password_hash_algorithm { name = sha256, salt_position = middle } }]",
         'password_hash_algorithm.salt_position: expected one of prefix|suffix|disable, got "middle"'),
        ("authentication = [{mechanism = password_based, backend = built_in_database, user_file = u,\n"
         "  password_hash_algorithm { name = sha256, iterations = 5 } }]",
         "password_hash_algorithm.iterations: expected a known key"),
        ("authentication = [5]", "authentication.1: expected an object with mechanism"),
    ]
    for text, want in cases:
        e = err(text)
        assert want in e, (text, e)
        assert e.startswith("gatemq.conf:"), e


def test_errors_in_later_array_items_name_their_index():
    e = err("authentication = [\n {mechanism = jwt, secret = s}\n {mechanism = jwt, leeway = soon}\n]")
    assert e.startswith('gatemq.conf:3:29: authentication.2.leeway: expected a duration'), e


# -- the HTTP API's view: check, show, dumps, merge, overlays --------------------------------------

def test_check_mqtt_partial_keeps_base():
    base = config.default()["mqtt"]
    new = config.check_mqtt({"peer_cert_as_username": "dn", "idle_timeout": "30s", "max_inflight": 10}, base)
    assert new["peer_cert_as_username"] == "dn" and new["idle_timeout"] == 30 and new["max_inflight"] == 10
    assert new["max_packet_size"] == base["max_packet_size"]
    assert base["peer_cert_as_username"] == "disabled"  # the running config is not touched
    assert config.check_mqtt({})["max_qos_allowed"] == 2


def test_check_mqtt_errors_name_field_and_reason():
    e = raises(ConfigError, config.check_mqtt, {"peer_cert_as_clientid": "email"})
    assert str(e) == 'mqtt.peer_cert_as_clientid: expected one of disabled|cn|dn|crt|pem|md5, got "email"'
    assert e.path == "mqtt.peer_cert_as_clientid"
    assert e.reason.startswith("expected one of")
    e = raises(ConfigError, config.check_mqtt, {"peer_cert_as_usrname": "cn"})
    assert e.path == "mqtt.peer_cert_as_usrname" and "did you mean peer_cert_as_username" in str(e)
    e = raises(ConfigError, config.check_mqtt, {"max_inflight": None})
    assert e.reason == "expected an integer 1..65535, got null"


def test_show_gives_back_what_users_write_and_checks_round_trip():
    m = config.load("mqtt { idle_timeout = 500ms, max_packet_size = 64KB, max_subscriptions = 5 }")["mqtt"]
    shown = config.show("mqtt", m)
    assert shown["idle_timeout"] == "500ms" and shown["max_packet_size"] == "64KB"
    assert shown["max_subscriptions"] == 5 and shown["max_mqueue_len"] == 1000
    assert shown["session_expiry_interval"] == "2h" and shown["server_keepalive"] == "disabled"
    d = config.show("mqtt", config.default()["mqtt"])
    assert d["max_subscriptions"] == 1000
    assert config.check_mqtt(shown) == m


def test_dumps_writes_an_overlay_that_loads_back():
    m = config.check_mqtt({"peer_cert_as_username": "cn", "await_rel_timeout": "90s"})
    text = config.dumps("mqtt", m)
    assert text.startswith("mqtt {\n") and '  peer_cert_as_username = "cn"\n' in text
    assert config.load(text)["mqtt"] == m


def test_overlays_apply_after_the_file():
    base = "mqtt.max_inflight = 5\nmqtt.peer_cert_as_username = cn\nlisteners.tcp.a.bind = 1884"
    over = "mqtt {\n  peer_cert_as_username = dn\n  idle_timeout = 7s\n}"
    cfg = config.load(base, "g.conf", None, [(over, "data/overlay.conf")])
    assert cfg["mqtt"]["peer_cert_as_username"] == "dn" and cfg["mqtt"]["max_inflight"] == 5
    assert cfg["mqtt"]["idle_timeout"] == 7 and list(cfg["listeners"]["tcp"]) == ["a"]
    e = str(raises(ConfigError, config.load, base, "g.conf", None, [("mqtt.idle_timeout = 7", "o.conf")]))
    assert e.startswith("o.conf:1:21: mqtt.idle_timeout: expected a duration"), e


def test_merge_text_and_dict():
    base = config.load('listeners.ssl.s.ssl_options { certfile = c, keyfile = k, verify = verify_peer }')
    cfg = config.merge(base, "mqtt.peer_cert_as_clientid = pem")
    assert cfg["mqtt"]["peer_cert_as_clientid"] == "pem" and base["mqtt"]["peer_cert_as_clientid"] == "disabled"
    assert cfg["listeners"] == base["listeners"]
    cfg = config.merge(base, {"listeners": {"ssl": {"s": {"ssl_options": {"fail_if_no_peer_cert": True}}}}})
    assert cfg["listeners"]["ssl"]["s"]["ssl_options"]["fail_if_no_peer_cert"] is True
    assert cfg["listeners"]["ssl"]["s"]["ssl_options"]["certfile"] == "c"
    # The cross-key rules still hold after a merge.
    e = raises(ConfigError, config.merge, base, {"listeners": {"ssl": {"s": {"ssl_options": {
        "verify": "verify_none", "fail_if_no_peer_cert": True}}}}})
    assert e.path == "listeners.ssl.s.ssl_options.fail_if_no_peer_cert"


def test_null_unsets_optional_keys_only():
    base = config.load("listeners.ssl.a.ssl_options { certfile = c, keyfile = k, password = pw }")
    cfg = config.merge(base, "listeners.ssl.a.ssl_options.password = null")
    assert cfg["listeners"]["ssl"]["a"]["ssl_options"]["password"] is None
    e = err("mqtt.max_inflight = null")
    assert e == "gatemq.conf:1:21: mqtt.max_inflight: expected an integer 1..65535, got null", e


def test_decode_names_the_line_and_byte_that_is_not_utf8():
    assert config.decode("grüße = 1\n".encode("utf-8"), "a.conf") == "grüße = 1\n"
    e = str(raises(ConfigError, config.decode, b"a = 1\nb = \"caf\xe9\"\n", "a.conf"))
    assert e.startswith("a.conf:2: not UTF-8 text (byte 0xe9 at offset 14)"), e
    e = str(raises(ConfigError, config.decode, b"x = \xe2\x82\n", "b.conf"))  # a cut sequence
    assert e.startswith("b.conf:1: not UTF-8 text (byte 0xe2 at offset 4)"), e
