# gatemq's configuration: the schema tables (EMQX 5 names, meanings and defaults), the rules across
# keys, and the API the ports and the HTTP API use (load, default, merge, check, show, dumps,
# decode, resolve_path). The validation language they are written in is gatemq.schema.
#
# The schema is data: each section is a list of (key, type, default) rows, so a later feature adds
# a key with one line. Defaults are written the way a user would write them ("1MB", "2h") and go
# through the same type as the file's values, so documentation, file and code cannot disagree.
import json

from gatemq import hocon, ipaddr
from gatemq.errors import ConfigError
from gatemq.schema import (  # noqa: F401  (the types and parsers are re-exported for callers)
    REQUIRED, Bad, shown, Bool, Int, Number, Str, Path, Enum, Duration, Size, Bind, StrList, StrMap,
    Section, Named, ListOf, Tagged, BOOL, STR, PATH, fail, join, entry_pos, as_tree, default_source,
    resolve_path, parse_duration, show_duration, parse_bind, show_size, Bad, is_name)


# -- the schema ----------------------------------------------------------------------------------
INFINITY = (("infinity", None),)
DISABLED = (("disabled", None),)
PEER_CERT = Enum("disabled", "cn", "dn", "crt", "pem", "md5")


def _check_ssl_options(o, tree, pos, path):
    if o["fail_if_no_peer_cert"] and o["verify"] != "verify_peer":
        raise fail(entry_pos(tree, "fail_if_no_peer_cert", pos), join(path, "fail_if_no_peer_cert"),
                    "false unless verify = verify_peer (as in EMQX)", "true")
    if o["enable_crl_check"] and not o["crlfile"]:
        raise fail(entry_pos(tree, "enable_crl_check", pos), join(path, "crlfile"),
                    "a CRL file path when enable_crl_check = true", None)


SSL_OPTIONS = Section([
    ("certfile", PATH, None),
    ("keyfile", PATH, None),
    ("password", Str(empty=True), None),
    ("cacertfile", PATH, None),
    ("verify", Enum("verify_peer", "verify_none"), "verify_none"),
    ("fail_if_no_peer_cert", BOOL, False),
    ("depth", Int(0, 255), 10),
    ("versions", StrList(("tlsv1.3", "tlsv1.2", "tlsv1.1", "tlsv1")), ["tlsv1.3", "tlsv1.2"]),
    ("ciphers", StrList(split=True), None),
    ("handshake_timeout", Duration(lo=1), "15s"),
    ("enable_crl_check", BOOL, False),
    ("crlfile", PATH, None),
    ("verify_peer_ext_key_usage", STR, None),
    # Certificate lifecycle (docs/tls.md): an intermediate CA of cacertfile anchors a chain (EMQX's
    # key); connected clients whose certificate becomes revoked or expires are disconnected; the
    # MicroPython port re-reads changed certificate files every reload_interval.
    ("partial_chain", BOOL, False),
    ("disconnect_revoked", BOOL, False),
    ("disconnect_expired", BOOL, False),
    ("reload_interval", Duration(DISABLED, zero=None), "60s"),
], _check_ssl_options)


def _https_needs_cert(o, tree, pos, path):
    if o["enable"]:
        _needs_cert(o, tree, pos, path)


def _needs_cert(o, tree, pos, path):
    # An ssl listener (or an enabled https dashboard) cannot start without its certificate and key.
    opts = o["ssl_options"]
    e = tree.get("ssl_options") if tree else None
    for key in ("certfile", "keyfile"):
        if not opts[key]:
            p = entry_pos(e[0], key, e[1]) if e and type(e[0]) is dict else pos
            raise fail(p, join(path, "ssl_options." + key), "a file path (TLS needs certfile and keyfile)",
                        None)


ENABLE_AUTHN = Enum(True, False, "quick_deny_anonymous")

TCP_LISTENER = Section([
    ("enable", BOOL, True),
    ("bind", Bind(), "0.0.0.0:1883"),
    ("max_connections", Int(1, words=INFINITY), "infinity"),
    ("enable_authn", ENABLE_AUTHN, True),
])

SSL_LISTENER = Section(TCP_LISTENER.rows[:1] + [
    ("bind", Bind(), "0.0.0.0:8883"),
] + TCP_LISTENER.rows[2:] + [
    ("ssl_options", SSL_OPTIONS, {}),
], _needs_cert)


# MQTT over WebSocket (EMQX's listeners.ws / listeners.wss and their `websocket` keys; gatemq.websocket).
WEBSOCKET = Section([
    ("mqtt_path", Str(), "/mqtt"),
    ("supported_subprotocols", StrList(split=True), "mqtt, mqtt-v3, mqtt-v3.1.1, mqtt-v5"),
    ("fail_if_no_subprotocol", BOOL, True),
    ("max_frame_size", Size(1, None, INFINITY), "infinity"),
    ("check_origin_enable", BOOL, False),
    ("allow_origin_absence", BOOL, True),
    ("check_origins", StrList(split=True), "http://localhost:18083, http://127.0.0.1:18083"),
    # Believed only from a loopback peer: a reverse proxy on the same box.
    ("proxy_address_header", Str(empty=True), "x-forwarded-for"),
    ("proxy_port_header", Str(empty=True), "x-forwarded-port"),
])

WS_LISTENER = Section(TCP_LISTENER.rows[:1] + [
    ("bind", Bind(), "0.0.0.0:8083"),
] + TCP_LISTENER.rows[2:] + [
    ("websocket", WEBSOCKET, {}),
])

WSS_LISTENER = Section(TCP_LISTENER.rows[:1] + [
    ("bind", Bind(), "0.0.0.0:8084"),
] + TCP_LISTENER.rows[2:] + [
    ("websocket", WEBSOCKET, {}),
    ("ssl_options", SSL_OPTIONS, {}),
], _needs_cert)


def _default_listener(o, tree, pos, path):
    # The embedded default listener exists only while the file names no listener of its own.
    if not o["tcp"] and not o["ssl"] and not o["ws"] and not o["wss"]:
        o["tcp"] = {"default": TCP_LISTENER.walk(as_tree({"bind": "127.0.0.1:1883"}), None,
                                                 "listeners.tcp.default")}


LISTENERS = Section([
    ("tcp", Named(TCP_LISTENER), {}),
    ("ssl", Named(SSL_LISTENER), {}),
    ("ws", Named(WS_LISTENER), {}),
    ("wss", Named(WSS_LISTENER), {}),
], _default_listener)

# Client attributes (gatemq.clientattrs evaluates them at CONNECT).
class _Expr:
    # A Variform expression: checked (compiled) when the config loads; kept as its text.
    what = "a Variform expression"

    def check(self, v):
        if type(v) is not str or not v:
            raise Bad("a Variform expression (a non-empty string)")
        from gatemq import variform
        try:
            variform.compile(v)
        except variform.VariformError as e:
            raise Bad("a Variform expression (%s%s)" % (
                "column %d of the expression: " % e.col if e.col else "", e.msg))
        return v

    def show(self, v):
        return v


class _AttrName:
    what = "an attribute name of letters, digits, _ and -"

    def check(self, v):
        if type(v) is not str or not is_name(v):
            raise Bad(self.what)
        return v

    def show(self, v):
        return v


EXPR = _Expr()
ATTR_NAME = _AttrName()


class _AttrRows(ListOf):
    # mqtt.client_attrs_init: [{expression, set_as_attr}], shown back as it is written.
    def show(self, v):
        return [dict(r) for r in v]


ATTRS_INIT = _AttrRows(Section([("expression", EXPR, REQUIRED), ("set_as_attr", ATTR_NAME, REQUIRED)]))


MQTT = Section([
    ("max_packet_size", Size(1, 268435456), "1MB"),
    # Before CONNACK a connection may hold at most this much of a packet: a partial 1 MB CONNECT
    # stayed buffered until idle_timeout, and 300 of them grew the broker from 26 MB to 333 MB.
    ("max_connect_size", Size(1024, 268435456), "64KB"),
    ("max_clientid_len", Int(23, 65535), 65535),
    ("max_topic_levels", Int(1, 65535), 128),
    ("max_qos_allowed", Int(0, 2), 2),
    ("max_topic_alias", Int(0, 65535), 65535),
    ("retain_available", BOOL, True),
    ("wildcard_subscription", BOOL, True),
    ("shared_subscription", BOOL, True),
    # One client with 50,000 $share groups made every publish take 18 ms: a gateway's devices
    # need a handful of filters each, so the default bounds the subscriptions of one session.
    ("max_subscriptions", Int(1, words=INFINITY), 1000),
    # Share groups of one filter, across all clients ($share/<group>/<filter>).
    ("max_shared_groups", Int(1, words=INFINITY), 100),
    ("max_inflight", Int(1, 65535), 32),
    ("max_awaiting_rel", Int(1, words=INFINITY), 100),
    ("await_rel_timeout", Duration(), "300s"),
    ("max_mqueue_len", Int(0, words=INFINITY), 1000),
    ("mqueue_store_qos0", BOOL, True),
    # How long a publisher may be not read from while a subscriber it feeds is backed up
    # (flow control, so that a burst loses nothing); past it that subscriber's queue drops again.
    ("flow_control_timeout", Duration(DISABLED, zero=None), "10s"),
    ("session_expiry_interval", Duration(), "2h"),
    ("server_keepalive", Int(1, 65535, DISABLED), "disabled"),
    ("keepalive_multiplier", Number(0), 1.5),
    ("idle_timeout", Duration(INFINITY, lo=0.001), "15s"),
    ("peer_cert_as_username", PEER_CERT, "disabled"),
    ("peer_cert_as_clientid", PEER_CERT, "disabled"),
    ("use_username_as_clientid", BOOL, False),
    ("peer_cert_allow_unsafe", BOOL, False),
    ("use_identity_as_username", BOOL, False),
    ("use_subject_as_username", BOOL, False),
    # A verified certificate that lacks the field peer_cert_as_* maps (no CN) is refused; false
    # keeps the CONNECT's own username or client id, as EMQX does.
    ("peer_cert_require_field", BOOL, True),
    # Client attributes from expressions (EMQX 5.7+'s Variform, gatemq.variform): [{expression,
    # set_as_attr}], and an expression whose value replaces the client id.
    ("client_attrs_init", ATTRS_INIT, []),
    ("clientid_override", EXPR, None),
    # A client id's session belongs to the identity that made it (username and certificate
    # subject); another identity's CONNECT with that client id is refused with 0x87.
    ("session_identity_check", BOOL, True),
    # Failed logins (bad credentials, not authorized) per peer address within the window: past
    # the limit that address's CONNECTs are refused without running the password hash.
    ("max_login_failures", Int(1, words=DISABLED), 10),
    ("login_failure_window", Duration(lo=1), "60s"),
])

_NO_HASH = "MicroPython's hashlib has only md5, sha1 and sha256; use sha256, md5, plain or pbkdf2"
_SALTED = lambda name: Section([
    ("name", Enum(name), REQUIRED),
    ("salt_position", Enum("prefix", "suffix", "disable"), "prefix"),
])
PASSWORD_HASH = Tagged("name", [
    ("plain", _SALTED("plain")),
    ("md5", _SALTED("md5")),
    ("sha256", _SALTED("sha256")),
    ("pbkdf2", Section([
        ("name", Enum("pbkdf2"), REQUIRED),
        ("mac_fun", Enum("sha256", refused={"sha512": _NO_HASH, "sha384": _NO_HASH, "sha224": _NO_HASH,
                                            "md4": _NO_HASH, "ripemd160": _NO_HASH}), "sha256"),
        ("iterations", Int(1), 4096),
        ("dk_length", Int(1, 1024), None),
    ])),
], {"sha512": _NO_HASH, "sha384": _NO_HASH, "sha224": _NO_HASH, "sha": "sha is not offered; use sha256",
    "bcrypt": "bcrypt is too slow for a gateway and has no MicroPython implementation; use pbkdf2"})

PASSWORD_BASED = Section([
    ("mechanism", Enum("password_based"), REQUIRED),
    ("backend", Enum("built_in_database"), REQUIRED),
    ("enable", BOOL, True),
    ("user_id_type", Enum("username", "clientid"), "username"),
    ("password_hash_algorithm", PASSWORD_HASH, {"name": "sha256", "salt_position": "prefix"}),
    ("user_file", PATH, REQUIRED),
])


def _check_jwt(o, tree, pos, path):
    need = "secret" if o["algorithm"] == "hmac-based" else "public_key"
    if not o[need]:
        raise fail(entry_pos(tree, "algorithm", pos), join(path, need),
                    "a value when algorithm = " + o["algorithm"], None)


JWT = Section([
    ("mechanism", Enum("jwt"), REQUIRED),
    ("enable", BOOL, True),
    ("from", Enum("password", "username"), "password"),
    ("algorithm", Enum("hmac-based", "public-key"), "hmac-based"),
    ("secret", STR, None),
    ("secret_base64_encoded", BOOL, False),
    ("public_key", PATH, None),
    ("verify_claims", StrMap(), {}),
    ("acl_claim_name", STR, "acl"),
    ("leeway", Duration(), "0s"),
    ("disconnect_after_expire", BOOL, True),
], _check_jwt)

AUTHENTICATOR = Tagged("mechanism", [("password_based", PASSWORD_BASED), ("jwt", JWT)], {
    "scram": "enhanced authentication is not supported yet",
})

AUTHORIZATION = Section([
    ("no_match", Enum("allow", "deny"), "allow"),
    ("deny_action", Enum("ignore", "disconnect"), "ignore"),
    # Clients may not publish to $SYS/ (as in Mosquitto): operators trust its connected events.
    ("deny_sys_publish", BOOL, True),
    ("sources", ListOf(Tagged("type", [("file", Section([
        ("type", Enum("file"), REQUIRED),
        ("enable", BOOL, True),
        ("path", PATH, REQUIRED),
    ]))])), []),
])

DASHBOARD = Section([
    ("enable", BOOL, True),
    ("listeners", Section([
        ("http", Section([
            ("enable", BOOL, True),
            ("bind", Bind(), "127.0.0.1:18083"),
        ]), {}),
        ("https", Section([
            ("enable", BOOL, False),
            ("bind", Bind(), "0.0.0.0:18084"),
            ("ssl_options", SSL_OPTIONS, {}),
        ], _https_needs_cert), {}),
    ]), {}),
    ("default_username", STR, "admin"),
    ("default_password", STR, "public"),
    ("token_expired_time", Duration(lo=1), "60m"),
    ("overlay_file", PATH, "data/overlay.conf"),
    # Host header names the dashboard answers to besides its bind address (against DNS
    # rebinding; gatemq.http.host_allowed): "*" accepts any.
    ("allowed_hosts", StrList(split=True), []),
])

# -- bridges.mqtt.<name> (gatemq.bridge, docs/bridge.md): NanoMQ's shape with EMQX's TLS keys --

class BridgeServer:
    what = 'an address such as "mqtts://cloud.example:8883", "mqtt://10.0.0.1:1883" or "mqtts://[::1]:8883"'

    def check(self, v):
        if type(v) is not str:
            raise Bad(self.what)
        scheme = None
        for pre, sch in (("mqtt://", "mqtt"), ("mqtts://", "mqtts"), ("tcp://", "mqtt"), ("ssl://", "mqtts")):
            if v.startswith(pre):
                scheme = sch
                rest = v[len(pre):]
                break
        if scheme is None:
            if "://" in v:
                raise Bad(self.what)
            scheme, rest = "mqtt", v
        if rest.endswith("/"):
            rest = rest[:-1]
        port = None
        if rest.startswith("["):
            end = rest.find("]")
            host, after = rest[1:end], rest[end + 1:]
            if end < 0 or not host or ":" not in host or ipaddr.parse(host) is None:
                raise Bad(self.what)
            if after:
                if after[0] != ":":
                    raise Bad(self.what)
                port = after[1:]
        else:
            i = rest.find(":")
            host = rest if i < 0 else rest[:i]
            if i >= 0:
                port = rest[i + 1:]
            if not host:
                raise Bad(self.what)
            for c in host.lower():
                if not ("0" <= c <= "9" or "a" <= c <= "z" or c in ".-_"):
                    raise Bad(self.what)
        if port is None:
            port = 8883 if scheme == "mqtts" else 1883
        elif not port.isdigit() or not 0 < int(port) < 65536:
            raise Bad(self.what)
        return (scheme, host, int(port))

    def show(self, v):
        scheme, host, port = v
        return "%s://%s:%d" % (scheme, "[%s]" % host if ":" in host else host, port)


def _check_topic_map(o, tree, pos, path):
    # local_topic and remote_topic: filters of the same wildcard shape (one may be left out).
    from gatemq import topic
    given = [k for k in ("local_topic", "remote_topic") if o[k] is not None]
    if not given:
        raise fail(pos, join(path, "remote_topic"), "a topic filter (local_topic, remote_topic or both)", None)
    for k in given:
        if not topic.valid_filter(o[k]) or o[k].startswith("$share/"):
            raise fail(entry_pos(tree, k, pos), join(path, k), "a topic filter such as \"sensors/#\"",
                       shown(o[k]))
    if len(given) == 2:
        a = [lv for lv in o["local_topic"].split("/") if lv == "+" or lv == "#"]
        b = [lv for lv in o["remote_topic"].split("/") if lv == "+" or lv == "#"]
        if a != b:
            raise fail(entry_pos(tree, "remote_topic", pos), join(path, "remote_topic"),
                       "a filter with the wildcards of local_topic %s in the same order (%s)" % (
                           shown(o["local_topic"]), "/".join(a) or "none"), shown(o["remote_topic"]))


def _check_bridge(o, tree, pos, path):
    o["proto_ver"] = 5 if o["proto_ver"] in (5, "v5") else 4
    ka = o["keepalive"]
    if ka > 65535:
        raise fail(entry_pos(tree, "keepalive", pos), join(path, "keepalive"), "a duration up to 65535s",
                   shown(ka))
    o["keepalive"] = int(ka)
    sslo = o["ssl"]
    e = tree.get("ssl") if tree else None
    spos = e[1] if e else pos
    st = e[0] if e and type(e[0]) is dict else None
    if o["server"][0] == "mqtt" and st and (sslo["certfile"] or sslo["cacertfile"] or sslo["keyfile"]):
        raise fail(entry_pos(tree, "server", pos), join(path, "server"),
                   "an mqtts:// address when ssl names certificate files", shown(BridgeServer().show(o["server"])))
    if bool(sslo["certfile"]) != bool(sslo["keyfile"]):
        k = "keyfile" if sslo["certfile"] else "certfile"
        raise fail(spos if st is None else entry_pos(st, "certfile" if k == "keyfile" else "keyfile", spos),
                   join(path, "ssl." + k), "a file path (a client certificate needs certfile and keyfile)", None)


BRIDGE_SSL = Section([
    ("certfile", PATH, None),
    ("keyfile", PATH, None),
    ("password", Str(empty=True), None),
    ("cacertfile", PATH, None),
    ("verify", Enum("verify_peer", "verify_none"), "verify_peer"),
    ("server_name_indication", STR, None),
    ("versions", StrList(("tlsv1.3", "tlsv1.2")), ["tlsv1.3", "tlsv1.2"]),
    ("ciphers", StrList(split=True), None),
    ("handshake_timeout", Duration(lo=1), "15s"),
])

BRIDGE = Section([
    ("enable", BOOL, True),
    ("server", BridgeServer(), REQUIRED),
    ("proto_ver", Enum(5, 4, "v5", "v4"), 5),
    ("clientid", STR, None),
    ("username", STR, None),
    ("password", Str(empty=True), None),
    ("keepalive", Duration(), "60s"),
    ("clean_start", BOOL, False),
    ("session_expiry_interval", Duration(), "2h"),
    ("backoff_max", Duration(lo=0.1), "60s"),
    ("connect_timeout", Duration(lo=0.1), "10s"),
    ("ssl", BRIDGE_SSL, {}),
    ("forwards", ListOf(Section([
        ("local_topic", STR, None),
        ("remote_topic", STR, None),
        ("qos", Int(0, 2), 1),
    ], _check_topic_map)), []),
    ("subscription", ListOf(Section([
        ("remote_topic", STR, None),
        ("local_topic", STR, None),
        ("qos", Int(0, 2), 1),
    ], _check_topic_map)), []),
    ("queue", Section([("max_messages", Int(1), 100000)]), {}),
], _check_bridge)


ROOT = Section([
    # data_dir: EMQX's key; where persistence keeps its store (relative to the config's folder)
    ("node", Section([("name", STR, "gatemq@127.0.0.1"), ("data_dir", PATH, "data")]), {}),
    ("log", Section([("level", Enum("debug", "info", "warning", "error"), "info")]), {}),
    ("listeners", LISTENERS, {}),
    ("mqtt", MQTT, {}),
    # EMQX's retainer keys. One client publishing 4 KB retained messages to ever new topics grew
    # the broker from 26 MB to 2.4 GB in 10 s: a gateway's devices retain a few states each, so
    # 10,000 messages of up to 64 KB bound the store (EMQX: no count limit, 1MB). 0 = no limit.
    ("retainer", Section([
        ("max_retained_messages", Int(0, words=INFINITY), 10000),
        ("max_payload_size", Size(0, 268435456, INFINITY), "64KB"),
    ]), {}),
    ("sys_topics", Section([
        ("sys_msg_interval", Duration(DISABLED, zero=None), "1m"),
        ("sys_heartbeat_interval", Duration(DISABLED, zero=None), "30s"),
    ]), {}),
    ("authentication", ListOf(AUTHENTICATOR), []),
    ("authorization", AUTHORIZATION, {}),
    ("dashboard", DASHBOARD, {}),
    # GET /api/v5/prometheus/stats (gatemq.prometheus): public, as in EMQX, unless this is true.
    ("prometheus", Section([("enable_basic_auth", BOOL, False)]), {}),
    # Bridges to upstream brokers (gatemq.bridge, docs/bridge.md).
    ("bridges", Section([("mqtt", Named(BRIDGE), {})]), {}),
    # What the broker acknowledged survives SIGKILL and a power cut (docs/persistence.md).
    ("persistence", Section([
        ("enable", BOOL, False),
        ("sync", Enum("commit", "interval", "none"), "commit"),
        ("sync_interval", Duration(lo=0.01), "1s"),
        ("max_size", Size(4096), "64MB"),
        ("on_corrupt", Enum("rename", "stop"), "rename"),
    ]), {}),
])


# -- API -----------------------------------------------------------------------------------------

def decode(data, source):
    """A config file's bytes as text: UTF-8, or a ConfigError that says where it is not."""
    try:
        return data.decode("utf-8")
    except UnicodeError:
        pass
    i = _first_bad_utf8(data)
    where = " (byte 0x%02x at offset %d)" % (data[i], i) if i >= 0 else ""
    line = data.count(b"\n", 0, i) + 1 if i >= 0 else 1
    raise ConfigError("%s:%d: not UTF-8 text%s; save the file as UTF-8" % (source, line, where))


def _first_bad_utf8(data):
    # MicroPython's decode error carries no position: find the first byte that starts no valid
    # sequence by its lead byte and continuation bytes (-1 when only finer rules are broken).
    i, n = 0, len(data)
    while i < n:
        b = data[i]
        if b < 0x80:
            i += 1
            continue
        k = 1 if 0xC2 <= b <= 0xDF else 2 if 0xE0 <= b <= 0xEF else 3 if 0xF0 <= b <= 0xF4 else 0
        if not k:
            return i
        for j in range(1, k + 1):
            if i + j >= n or data[i + j] & 0xC0 != 0x80:
                return i
        i += k + 1
    return -1


def load(text, source="<string>", read_file=None, overlays=()):
    # overlays: [(text, source)] read after the file, keys merging into it (later wins), such as
    # the file where the HTTP API saves its changes.
    tree = hocon.parse(text, source, read_file)
    for otext, osource in overlays:
        hocon.parse(otext, osource, read_file, tree)
    default_source[0] = source
    try:
        return ROOT.walk(tree, (source, 1, 1), "")
    finally:
        default_source[0] = None


def default():
    return ROOT.walk({}, None, "")


def merge(base, overlay, source="<overlay>"):
    # A config with an overlay (HOCON text or plain dict) applied: named keys change, the rest stay,
    # and the cross-key rules run again.
    if type(overlay) is str:
        tree = hocon.parse(overlay, source)
        pos = (source, 1, 1)
    else:
        tree, pos = as_tree(overlay), None
    return ROOT.walk(tree, pos, "", base)


def _section(path):
    t = ROOT
    for k in path.split("."):
        t = t.row(k)[1]
    return t


def check(path, body, base=None):
    # Validates a plain dict for one section ("mqtt"), as the HTTP API receives it. With base, keys
    # not in body keep base's values. ConfigError names the field (.path) and the reason (.reason).
    return _section(path).walk(as_tree(body), None, path, base)


def check_mqtt(body, base=None):
    return check("mqtt", body, base)


def show(path, values):
    # A normalised section back in the form users write ("1MB", "15s", "infinity"), JSON-ready.
    t = _section(path)
    return {k: t.row(k)[1].show(v) for k, v in values.items()}


def dumps(path, values):
    # HOCON text for one leaf section, e.g. the overlay file the HTTP API writes.
    shown = show(path, values)
    lines = []
    for k, _, _ in _section(path).rows:
        if k in shown:
            v = shown[k]
            lines.append("  %s = %s" % (k, "null" if v is None else json.dumps(v)))
    return "%s {\n%s\n}\n" % (path, "\n".join(lines))
