# gatemq's configuration: the schema (EMQX 5 names, meanings and defaults) and the checks that
# turn a HOCON tree (gatemq.hocon) into plain, normalised dicts.
#
# The schema is data: each section is a list of (key, type, default) rows, so a later feature adds
# a key with one line. Defaults are written the way a user would write them ("1MB", "2h") and go
# through the same type as the file's values, so documentation, file and code cannot disagree.
import json

from gatemq import hocon, ipaddr
from gatemq.errors import ConfigError

REQUIRED = object()  # default marker: the key must be given


class _Bad(Exception):
    # A type's complaint: what it expected. The walker adds the position, the key and the value.
    def __init__(self, expected):
        super().__init__(expected)
        self.expected = expected


def _got(v):
    t = type(v)
    if t is dict:
        return "an object"
    if t is list:
        return "an array"
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if t is str:
        return json.dumps(v)
    return str(v)


def _fail(pos, path, expected, got):
    # got is already shown text (see _got), or None for a missing key.
    prefix = hocon.where(pos) + ": " if pos else ""
    reason = "expected %s, got %s" % (expected, got or "nothing")
    return ConfigError("%s%s: %s" % (prefix, path, reason), path, reason)


def _join(path, key):
    return path + "." + key if path else key


def _entry_pos(tree, key, fallback):
    e = tree.get(key) if tree else None
    return e[1] if e else fallback


# -- leaf types ----------------------------------------------------------------------------------
# check(v) returns the normalised value or raises _Bad; show(v) turns a normalised value back into
# what a user writes (for GET /configs and the overlay file).

_NOT_A_WORD = object()


def _word(words, v):
    # The special words a type takes (infinity, disabled): their normalised value.
    for w, norm in words:
        if v == w:
            return norm
    return _NOT_A_WORD


def _show_word(words, v):
    for w, norm in words:
        if norm == v and type(norm) is type(v):
            return w
    return v


def _words_text(words):
    return "".join(" or " + w for w, _ in words)


class Bool:
    what = "true or false"

    def check(self, v):
        if v is True or v is False:
            return v
        if v == "true" or v == "false":
            return v == "true"
        raise _Bad(self.what)

    def show(self, v):
        return v


def _as_int(v):
    if v is True or v is False:
        return None
    if type(v) is int:
        return v
    if type(v) is float and -1e18 < v < 1e18 and v == int(v):
        return int(v)
    if type(v) is str and v and (v.isdigit() or v[0] == "-" and v[1:].isdigit()):
        return int(v)
    return None


class Int:
    def __init__(self, lo=0, hi=None, words=()):
        self.lo, self.hi, self.words = lo, hi, words

    @property
    def what(self):
        # Built when an error needs it, not at import: the schema stays small on a device.
        rng = "%d..%d" % (self.lo, self.hi) if self.hi is not None else ">= %d" % self.lo
        return "an integer " + rng + _words_text(self.words)

    def check(self, v):
        w = _word(self.words, v)
        if w is not _NOT_A_WORD:
            return w
        n = _as_int(v)
        if n is None or n < self.lo or (self.hi is not None and n > self.hi):
            raise _Bad(self.what)
        return n

    def show(self, v):
        return _show_word(self.words, v)


class Number:
    # keepalive_multiplier and the like: any number above a floor.
    def __init__(self, above=0):
        self.above = above

    @property
    def what(self):
        return "a number above %s" % self.above

    def check(self, v):
        if v is True or v is False or type(v) not in (int, float) or not v > self.above:
            raise _Bad(self.what)
        return v

    def show(self, v):
        return v


BOOL = Bool()


class Str:
    def __init__(self, what="a string", empty=False):
        self.what, self.empty = what, empty

    def check(self, v):
        if type(v) is not str or (not v and not self.empty):
            raise _Bad(self.what if self.empty else "a non-empty " + self.what[2:])
        return v

    def show(self, v):
        return v


STR = Str()


class Path(Str):
    # A file path. A relative one is taken from the folder of the file that names it, the way
    # `include` is (see resolve_path), so a port opens what the config says whatever folder it
    # was started from.
    def __init__(self):
        Str.__init__(self, "a file path")


PATH = Path()
# The file whose folder a default path (dashboard.overlay_file) is relative to, while load() runs.
_default_source = [None]


def _absolute(path):
    return path[:1] in ("/", "\\") or (len(path) > 2 and path[1] == ":" and path[2] in "/\\")


def resolve_path(path, source):
    # path relative to the folder of source (a file path, or "<string>"-like when there is none).
    if not path or not source or source[:1] == "<" or _absolute(path):
        return path
    cut = max(source.rfind("/"), source.rfind("\\"))
    return source[:cut + 1] + path if cut >= 0 else path


class Enum:
    def __init__(self, *choices, refused=None):
        self.choices = choices
        self.refused = refused  # known EMQX values we do not support: value -> why

    @property
    def what(self):
        return "one of " + "|".join(_got(c) if type(c) is not str else c for c in self.choices)

    def check(self, v):
        if (v == "true" or v == "false") and True in self.choices:
            v = v == "true"
        if self.refused and type(v) is str and v in self.refused:
            raise _Bad("%s (%s)" % (self.what, self.refused[v]))
        for c in self.choices:
            if v == c and type(v) is type(c):
                return c
        raise _Bad(self.what)

    def show(self, v):
        return v


_DURATION_MS = {"ms": 1, "s": 1000, "m": 60000, "h": 3600000, "d": 86400000, "w": 604800000}


def parse_duration(text):
    # "15s", "500ms", "1h30m", "1.5s" -> seconds (int when whole), or None when not a duration.
    t = text.lower()
    n = len(t)
    i = 0
    total = 0
    while i < n:
        j = i
        while j < n and ("0" <= t[j] <= "9" or t[j] == "."):
            j += 1
        k = j
        while k < n and "a" <= t[k] <= "z":
            k += 1
        num, unit = t[i:j], t[j:k]
        if not num or num[0] == "." or num[-1] == "." or num.count(".") > 1 or unit not in _DURATION_MS:
            return None
        total += (float(num) if "." in num else int(num)) * _DURATION_MS[unit]
        i = k
    if not n:
        return None
    if total == int(total) and int(total) % 1000 == 0:
        return int(total) // 1000
    return total / 1000


def show_duration(s):
    if type(s) is float:
        ms = s * 1000
        return "%dms" % ms if ms == int(ms) else "%gs" % s
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s and s % size == 0:
            return "%d%s" % (s // size, unit)
    return "%ds" % s


class Duration:
    # A unit is required: EMQX reads a bare integer as milliseconds in some keys and as seconds in
    # others, so a bare number is refused rather than guessed. A bare 0 is unambiguous.
    def __init__(self, words=(), zero=0, lo=0):
        self.words, self.zero, self.lo = words, zero, lo

    @property
    def what(self):
        least = " of at least " + show_duration(self.lo) if self.lo else ""
        return "a duration such as 15s, 500ms, 2m, 1h or 1d" + least + _words_text(self.words)

    def check(self, v):
        w = _word(self.words, v)
        if w is not _NOT_A_WORD:
            return w
        if v == 0 and v is not False:
            s = 0
        else:
            s = parse_duration(v) if type(v) is str else None
        if s is None:
            raise _Bad(self.what)
        if s < self.lo:
            raise _Bad(self.what)
        return self.zero if s == 0 else s

    def show(self, v):
        if v is None:
            return _show_word(self.words, v)
        return show_duration(v) if v else 0


_SIZE = {"b": 1, "kb": 1024, "mb": 1048576, "gb": 1073741824}


class Size:
    def __init__(self, lo=1, hi=None, words=()):
        self.lo, self.hi, self.words = lo, hi, words

    @property
    def what(self):
        up = " up to " + show_size(self.hi) if self.hi else ""
        return "a byte size such as 64KB, 1MB or 1024" + up + _words_text(self.words)

    def check(self, v):
        w = _word(self.words, v)
        if w is not _NOT_A_WORD:
            return w
        n = _as_int(v)
        if n is None and type(v) is str:
            t = v.lower()
            i = 0
            while i < len(t) and "0" <= t[i] <= "9":
                i += 1
            if i and t[i:] in _SIZE:
                n = int(t[:i]) * _SIZE[t[i:]]
        if n is None or n < self.lo or (self.hi is not None and n > self.hi):
            raise _Bad(self.what)
        return n

    def show(self, v):
        return _show_word(self.words, v) if v is None else show_size(v)


def show_size(n):
    for unit in ("GB", "MB", "KB"):
        size = _SIZE[unit.lower()]
        if n and n % size == 0:
            return "%d%s" % (n // size, unit)
    return n


def parse_bind(v):
    # "127.0.0.1:1883", "[::1]:1883", "localhost:1883", "1883" or 1883 -> (host, port); None if bad.
    if v is True or v is False:
        return None
    if type(v) is int:
        host, port = "0.0.0.0", str(v)
    elif type(v) is not str:
        return None
    elif v.startswith("["):
        end = v.find("]:")
        if end < 0:
            return None
        host, port = v[1:end], v[end + 2:]
        if not host or ":" not in host or ipaddr.parse(host) is None:
            return None
    elif ":" in v:
        host, port = v.split(":", 1)
        if not host or ":" in port:
            return None
        if host.replace(".", "").isdigit():
            if ipaddr.parse(host) is None:
                return None
        else:
            for c in host.lower():
                if not ("0" <= c <= "9" or "a" <= c <= "z" or c in ".-_"):
                    return None
    else:
        host, port = "0.0.0.0", v
    if not port.isdigit() or int(port) > 65535:
        return None
    return (host, int(port))


class Bind:
    what = 'an address such as "127.0.0.1:1883", "[::1]:1883" or a port'

    def check(self, v):
        b = parse_bind(v)
        if b is None:
            raise _Bad(self.what)
        return b

    def show(self, v):
        host, port = v
        return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


class StrList:
    # An array of strings; with split, also one comma-separated string ("a,b").
    def __init__(self, choices=None, split=False):
        self.choices, self.split = choices, split

    @property
    def what(self):
        w = "an array of strings" + (" among " + "|".join(self.choices) if self.choices else "")
        return w + " or a comma-separated string" if self.split else w

    def check(self, v):
        if type(v) is str and self.split:
            v = [p.strip() for p in v.split(",") if p.strip()]
        elif type(v) is list:
            v = [e[0] for e in v]
        else:
            raise _Bad(self.what)
        for s in v:
            if type(s) is not str or not s or (self.choices and s not in self.choices):
                raise _Bad(self.what)
        return v

    def show(self, v):
        return v


class StrMap:
    # An object whose values are strings, such as jwt.verify_claims.
    what = "an object of strings"

    def check(self, v):
        if type(v) is not dict:
            raise _Bad(self.what)
        out = {}
        for k, e in v.items():
            if type(e[0]) is not str:
                raise _Bad("%s, with a string for %s" % (self.what, k))
            out[k] = e[0]
        return out

    def show(self, v):
        return v


# -- structure -----------------------------------------------------------------------------------

def _walk(t, v, pos, path, base=None):
    if isinstance(t, (Section, Named, ListOf, Tagged)):
        return t.walk(v, pos, path, base)
    if type(v) is dict and not isinstance(t, StrMap):
        raise _fail(pos, path, t.what, "an object")
    try:
        v = t.check(v)
    except _Bad as e:
        raise _fail(pos, path, e.expected, _got(v))
    if isinstance(t, Path):
        v = resolve_path(v, pos[0] if pos else _default_source[0])
    return v


def _distance(a, b):
    prev = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        cur = [i]
        for j in range(1, len(b) + 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] != b[j - 1])))
        prev = cur
    return prev[-1]


def _unknown(keys, key, kpos, path, where_):
    near = [k for k in keys if _distance(k, key) <= 2]
    if near:
        hint = "did you mean %s?" % near[0]
    else:
        hint = "%s takes %s" % (where_ or "the top level", ", ".join(sorted(keys)))
    return _fail(kpos, _join(path, key), "a known key (%s)" % hint, "unknown key " + json.dumps(key))


class Section:
    what = "an object"

    def __init__(self, rows, check=None):
        self.rows = rows  # [(key, type, default)], in documentation order
        self.check = check  # check(out, tree, pos, path): rules across keys

    def row(self, key):
        for r in self.rows:
            if r[0] == key:
                return r
        return None

    def walk(self, tree, pos, path, base=None):
        if type(tree) is not dict:
            raise _fail(pos, path, "an object", _got(tree))
        out = {} if base is None else dict(base)
        for k, e in tree.items():
            row = self.row(k)
            if row is None:
                raise _unknown([r[0] for r in self.rows], k, e[2], path, path)
            if e[0] is None and row[2] is None:
                out[k] = None  # `null` unsets an optional key
                continue
            out[k] = _walk(row[1], e[0], e[1], _join(path, k), None if base is None else base.get(k))
        if base is None:
            for k, t, d in self.rows:
                if k in out:
                    continue
                if d is REQUIRED:
                    raise _fail(pos, _join(path, k), t.what + " (required)", None)
                out[k] = None if d is None else _walk(t, _tree(d), None, _join(path, k))
        if self.check:
            self.check(out, tree, pos, path)
        return out


class Named:
    # listeners.tcp.<name>: any number of named objects of one section.
    what = "an object of named entries"

    def __init__(self, section):
        self.section = section

    def walk(self, tree, pos, path, base=None):
        if type(tree) is not dict:
            raise _fail(pos, path, self.what, _got(tree))
        out = {} if base is None else dict(base)
        for name, e in tree.items():
            for c in name or "?":
                if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-"):
                    raise _fail(e[2], _join(path, name), "a name of letters, digits, _ and -",
                                json.dumps(name))
            b = None if base is None else base.get(name)
            out[name] = self.section.walk(e[0], e[1], _join(path, name), b)
        return out


class ListOf:
    what = "an array of objects"

    def __init__(self, item):
        self.item = item

    def walk(self, tree, pos, path, base=None):
        # Arrays replace what was there (HOCON semantics), so base plays no part.
        if type(tree) is not list:
            raise _fail(pos, path, self.what, _got(tree))
        return [self.item.walk(e[0], e[1], "%s.%d" % (path, i + 1)) for i, e in enumerate(tree)]


class Tagged:
    # An object whose kind is picked by one key (mechanism = jwt, type = file, name = pbkdf2).
    def __init__(self, tag, variants, refused=None):
        # variants: [(kind, Section)], in documentation order
        self.tag = tag
        self.names = [v[0] for v in variants]
        self.variants = dict(variants)
        self.refused = refused or {}

    @property
    def what(self):
        return "%s = one of %s" % (self.tag, "|".join(self.names))

    def walk(self, tree, pos, path, base=None):
        if type(tree) is not dict:
            raise _fail(pos, path, "an object with " + self.what, _got(tree))
        e = tree.get(self.tag)
        tpath = _join(path, self.tag)
        if e is None:
            if base is None:
                raise _fail(pos, tpath, "one of %s (required)" % "|".join(self.names), None)
            kind = base[self.tag]
        else:
            kind = e[0]
            if type(kind) is str and kind in self.refused:
                raise _fail(e[1], tpath, "one of %s (%s)" % ("|".join(self.names),
                                                              self.refused[kind]), _got(kind))
            if type(kind) is not str or kind not in self.variants:
                raise _fail(e[1], tpath, "one of " + "|".join(self.names), _got(kind))
            if base is not None and base.get(self.tag) != kind:
                base = None  # a different kind starts from its own defaults
        return self.variants[kind].walk(tree, pos, path, base)


def _tree(v, pos=None):
    # Plain values (defaults, JSON bodies) in the tree shape hocon.parse gives.
    if type(v) is dict:
        return {k: (_tree(x, pos), pos, pos) for k, x in v.items()}
    if type(v) is list:
        return [(_tree(x, pos), pos) for x in v]
    return v


# -- the schema ----------------------------------------------------------------------------------
INFINITY = (("infinity", None),)
DISABLED = (("disabled", None),)
PEER_CERT = Enum("disabled", "cn", "dn", "crt", "pem", "md5")


def _check_ssl_options(o, tree, pos, path):
    if o["fail_if_no_peer_cert"] and o["verify"] != "verify_peer":
        raise _fail(_entry_pos(tree, "fail_if_no_peer_cert", pos), _join(path, "fail_if_no_peer_cert"),
                    "false unless verify = verify_peer (as in EMQX)", "true")
    if o["enable_crl_check"] and not o["crlfile"]:
        raise _fail(_entry_pos(tree, "enable_crl_check", pos), _join(path, "crlfile"),
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
            p = _entry_pos(e[0], key, e[1]) if e and type(e[0]) is dict else pos
            raise _fail(p, _join(path, "ssl_options." + key), "a file path (TLS needs certfile and keyfile)",
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


def _default_listener(o, tree, pos, path):
    # The embedded default listener exists only while the file names no listener of its own.
    if not o["tcp"] and not o["ssl"]:
        o["tcp"] = {"default": TCP_LISTENER.walk(_tree({"bind": "127.0.0.1:1883"}), None,
                                                 "listeners.tcp.default")}


LISTENERS = Section([
    ("tcp", Named(TCP_LISTENER), {}),
    ("ssl", Named(SSL_LISTENER), {}),
], _default_listener)

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
        raise _fail(_entry_pos(tree, "algorithm", pos), _join(path, need),
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

ROOT = Section([
    ("node", Section([("name", STR, "gatemq@127.0.0.1")]), {}),
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
    _default_source[0] = source
    try:
        return ROOT.walk(tree, (source, 1, 1), "")
    finally:
        _default_source[0] = None


def default():
    return ROOT.walk({}, None, "")


def merge(base, overlay, source="<overlay>"):
    # A config with an overlay (HOCON text or plain dict) applied: named keys change, the rest stay,
    # and the cross-key rules run again.
    if type(overlay) is str:
        tree = hocon.parse(overlay, source)
        pos = (source, 1, 1)
    else:
        tree, pos = _tree(overlay), None
    return ROOT.walk(tree, pos, "", base)


def _section(path):
    t = ROOT
    for k in path.split("."):
        t = t.row(k)[1]
    return t


def check(path, body, base=None):
    # Validates a plain dict for one section ("mqtt"), as the HTTP API receives it. With base, keys
    # not in body keep base's values. ConfigError names the field (.path) and the reason (.reason).
    return _section(path).walk(_tree(body), None, path, base)


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
