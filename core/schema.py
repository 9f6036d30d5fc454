# The validation language of gatemq's configuration: leaf types (Bool, Int, Number, Str, Path,
# Enum, Duration, Size, Bind, StrList, StrMap), structure (Section, Named, ListOf, Tagged) and the
# walker that checks a HOCON tree (gatemq.hocon) against them, turning it into plain, normalised
# dicts or a ConfigError "file:line:col: key: expected ..., got ...".
#
# It knows nothing of gatemq's keys: those tables, and the rules across keys, are gatemq.config's.
# A schema is data: each section is a list of (key, type, default) rows. Defaults are written the
# way a user would write them ("1MB", "2h") and go through the same type as the file's values.
import json

from gatemq import hocon, ipaddr
from gatemq.errors import ConfigError

REQUIRED = object()  # default marker: the key must be given


class Bad(Exception):
    # A type's complaint: what it expected. The walker adds the position, the key and the value.
    def __init__(self, expected):
        super().__init__(expected)
        self.expected = expected


def shown(v):
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


def fail(pos, path, expected, got):
    # got is already shown text (see _got), or None for a missing key.
    prefix = hocon.where(pos) + ": " if pos else ""
    reason = "expected %s, got %s" % (expected, got or "nothing")
    return ConfigError("%s%s: %s" % (prefix, path, reason), path, reason)


def join(path, key):
    return path + "." + key if path else key


def entry_pos(tree, key, fallback):
    e = tree.get(key) if tree else None
    return e[1] if e else fallback


def is_name(s):
    # The names of Named entries (listeners.tcp.<name>) and of client attributes: one or more
    # ASCII letters, digits, _ and -.
    if not s:
        return False
    for c in s:
        if not ("a" <= c <= "z" or "A" <= c <= "Z" or "0" <= c <= "9" or c in "_-"):
            return False
    return True


# -- leaf types ----------------------------------------------------------------------------------
# check(v) returns the normalised value or raises Bad; show(v) turns a normalised value back into
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
        raise Bad(self.what)

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
            raise Bad(self.what)
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
            raise Bad(self.what)
        return v

    def show(self, v):
        return v


BOOL = Bool()


class Str:
    def __init__(self, what="a string", empty=False):
        self.what, self.empty = what, empty

    def check(self, v):
        if type(v) is not str or (not v and not self.empty):
            raise Bad(self.what if self.empty else "a non-empty " + self.what[2:])
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
default_source = [None]


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
        return "one of " + "|".join(shown(c) if type(c) is not str else c for c in self.choices)

    def check(self, v):
        if (v == "true" or v == "false") and True in self.choices:
            v = v == "true"
        if self.refused and type(v) is str and v in self.refused:
            raise Bad("%s (%s)" % (self.what, self.refused[v]))
        for c in self.choices:
            if v == c and type(v) is type(c):
                return c
        raise Bad(self.what)

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
            raise Bad(self.what)
        if s < self.lo:
            raise Bad(self.what)
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
            raise Bad(self.what)
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
            raise Bad(self.what)
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
            raise Bad(self.what)
        for s in v:
            if type(s) is not str or not s or (self.choices and s not in self.choices):
                raise Bad(self.what)
        return v

    def show(self, v):
        return v


class StrMap:
    # An object whose values are strings, such as jwt.verify_claims.
    what = "an object of strings"

    def check(self, v):
        if type(v) is not dict:
            raise Bad(self.what)
        out = {}
        for k, e in v.items():
            if type(e[0]) is not str:
                raise Bad("%s, with a string for %s" % (self.what, k))
            out[k] = e[0]
        return out

    def show(self, v):
        return v


# -- structure -----------------------------------------------------------------------------------

def walk(t, v, pos, path, base=None):
    if isinstance(t, (Section, Named, ListOf, Tagged)):
        return t.walk(v, pos, path, base)
    if type(v) is dict and not isinstance(t, StrMap):
        raise fail(pos, path, t.what, "an object")
    try:
        v = t.check(v)
    except Bad as e:
        raise fail(pos, path, e.expected, shown(v))
    if isinstance(t, Path):
        v = resolve_path(v, pos[0] if pos else default_source[0])
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
    return fail(kpos, join(path, key), "a known key (%s)" % hint, "unknown key " + json.dumps(key))


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
            raise fail(pos, path, "an object", shown(tree))
        out = {} if base is None else dict(base)
        for k, e in tree.items():
            row = self.row(k)
            if row is None:
                raise _unknown([r[0] for r in self.rows], k, e[2], path, path)
            if e[0] is None and row[2] is None:
                out[k] = None  # `null` unsets an optional key
                continue
            out[k] = walk(row[1], e[0], e[1], join(path, k), None if base is None else base.get(k))
        if base is None:
            for k, t, d in self.rows:
                if k in out:
                    continue
                if d is REQUIRED:
                    raise fail(pos, join(path, k), t.what + " (required)", None)
                out[k] = None if d is None else walk(t, as_tree(d), None, join(path, k))
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
            raise fail(pos, path, self.what, shown(tree))
        out = {} if base is None else dict(base)
        for name, e in tree.items():
            if not is_name(name):
                raise fail(e[2], join(path, name), "a name of letters, digits, _ and -", json.dumps(name))
            b = None if base is None else base.get(name)
            out[name] = self.section.walk(e[0], e[1], join(path, name), b)
        return out


class ListOf:
    what = "an array of objects"

    def __init__(self, item):
        self.item = item

    def walk(self, tree, pos, path, base=None):
        # Arrays replace what was there (HOCON semantics), so base plays no part.
        if type(tree) is not list:
            raise fail(pos, path, self.what, shown(tree))
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
            raise fail(pos, path, "an object with " + self.what, shown(tree))
        e = tree.get(self.tag)
        tpath = join(path, self.tag)
        if e is None:
            if base is None:
                raise fail(pos, tpath, "one of %s (required)" % "|".join(self.names), None)
            kind = base[self.tag]
        else:
            kind = e[0]
            if type(kind) is str and kind in self.refused:
                raise fail(e[1], tpath, "one of %s (%s)" % ("|".join(self.names),
                                                              self.refused[kind]), shown(kind))
            if type(kind) is not str or kind not in self.variants:
                raise fail(e[1], tpath, "one of " + "|".join(self.names), shown(kind))
            if base is not None and base.get(self.tag) != kind:
                base = None  # a different kind starts from its own defaults
        return self.variants[kind].walk(tree, pos, path, base)


def as_tree(v, pos=None):
    # Plain values (defaults, JSON bodies) in the tree shape hocon.parse gives.
    if type(v) is dict:
        return {k: (as_tree(x, pos), pos, pos) for k, x in v.items()}
    if type(v) is list:
        return [(as_tree(x, pos), pos) for x in v]
    return v
