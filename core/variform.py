# EMQX's Variform expressions (emqx_variform: the scanner, the grammar and the evaluation rules),
# the subset of its built-in functions a gateway needs, for mqtt.client_attrs_init and
# mqtt.clientid_override. Loaded only when the config has such an expression.
#
#     form = compile("nth(1, tokens(cn, '-'))")    # VariformError(msg, col) when it cannot parse
#     render(form, bindings) -> str                # VariformError when it cannot be evaluated
#
# The grammar (emqx_variform_parser.yrl): an expression is a variable or a call, never a bare
# literal; a call has at least one argument; an argument is an expression, a number, a string in
# '...' or "..." (no escapes) or an array [a, b, ...]. Identifiers are [a-zA-Z][a-zA-Z0-9_.]*;
# a dotted variable (user_property.NAME, cert_san.dns, client_attrs.NAME) looks up a nested value.
# An unbound variable is an error, except inside coalesce() and the condition of iif(), where it
# is empty. The result is a string: empty values give "", integers their decimal digits, true and
# false their names; an array is an error. Unlike EMQX, an unknown function or a wrong number of
# arguments is refused when the expression is compiled (the config is refused), not at each use.
import binascii
import hashlib


class VariformError(Exception):
    def __init__(self, msg, col=None):
        super().__init__(msg)
        self.msg = msg
        self.col = col


class _Unbound(Exception):
    pass


def _ident_start(c):
    return "a" <= c <= "z" or "A" <= c <= "Z"


def _ident_char(c):
    return _ident_start(c) or "0" <= c <= "9" or c in "_."


def _tokens(s):
    # -> [(kind, value, col)], kind in id|str|num|( ) [ ] ,
    out = []
    i = 0
    n = len(s)
    while i < n:
        c = s[i]
        if c in " \t\n\r":
            i += 1
        elif _ident_start(c):
            j = i + 1
            while j < n and _ident_char(s[j]):
                j += 1
            out.append(("id", s[i:j], i + 1))
            i = j
        elif c == "'" or c == '"':
            j = s.find(c, i + 1)
            if j < 0:
                raise VariformError("string not closed", i + 1)
            out.append(("str", s[i + 1:j], i + 1))
            i = j + 1
        elif "0" <= c <= "9" or (c in "+-" and i + 1 < n and "0" <= s[i + 1] <= "9"):
            j = i + 1
            while j < n and "0" <= s[j] <= "9":
                j += 1
            if j + 1 < n and s[j] == "." and "0" <= s[j + 1] <= "9":
                j += 1
                while j < n and "0" <= s[j] <= "9":
                    j += 1
                out.append(("num", float(s[i:j]), i + 1))
            else:
                out.append(("num", int(s[i:j]), i + 1))
            i = j
        elif c in "()[],":
            out.append((c, c, i + 1))
            i += 1
        else:
            raise VariformError("unexpected character %r" % c, i + 1)
    out.append(("end", None, n + 1))
    return out


# name -> (min args, max args or None); the evaluators are the _f_<name> functions below.
FUNCS = {
    "lower": (1, 1), "upper": (1, 1), "trim": (1, 2), "ltrim": (1, 2), "rtrim": (1, 2),
    "reverse": (1, 1), "strlen": (1, 1), "substr": (2, 3), "concat": (1, None),
    "tokens": (2, 3), "split": (2, 3), "nth": (2, 2), "coalesce": (1, None), "iif": (3, 3),
    "is_empty": (1, 1), "is_empty_val": (1, 1), "not": (1, 1), "str_eq": (2, 2), "str_neq": (2, 2),
    "regex_match": (2, 2), "regex_extract": (2, 2), "regex_replace": (3, 3), "rm_prefix": (2, 2),
    "replace": (3, 4), "find": (2, 3), "hash": (2, 2), "hash_to_range": (3, 3),
    "map_to_range": (3, 3), "bin2hexstr": (1, 1), "int2hexstr": (1, 1), "base64_encode": (1, 1),
    "base64_decode": (1, 1), "any_to_str": (1, 1), "join_to_string": (1, 2), "num_eq": (2, 2),
}


class _Parser:
    def __init__(self, text):
        self.t = _tokens(text)
        self.i = 0

    def peek(self):
        return self.t[self.i]

    def take(self, kind):
        tok = self.t[self.i]
        if tok[0] != kind:
            raise VariformError("expected %s, got %s" % (_show(kind), _show_tok(tok)), tok[2])
        self.i += 1
        return tok

    def expr(self):
        tok = self.peek()
        if tok[0] != "id":
            raise VariformError("expected a function call or a variable, got %s" % _show_tok(tok), tok[2])
        self.i += 1
        if self.peek()[0] != "(":
            return ("var", tok[1].split("."))
        name = tok[1]
        if name not in FUNCS:
            raise VariformError("unknown function %s (known: %s)" % (name, ", ".join(sorted(FUNCS))), tok[2])
        self.i += 1
        args = self.args(")")
        lo, hi = FUNCS[name]
        if len(args) < lo or (hi is not None and len(args) > hi):
            raise VariformError("%s takes %s arguments, got %d" % (
                name, "%d" % lo if lo == hi else "%d or more" % lo if hi is None else "%d to %d" % (lo, hi),
                len(args)), tok[2])
        return ("call", name, args)

    def args(self, close):
        out = [self.arg()]
        while self.peek()[0] == ",":
            self.i += 1
            out.append(self.arg())
        self.take(close)
        return out

    def arg(self):
        tok = self.peek()
        if tok[0] == "str" or tok[0] == "num":
            self.i += 1
            return ("lit", tok[1])
        if tok[0] == "[":
            self.i += 1
            return ("array", self.args("]"))
        return self.expr()


def _show(kind):
    return {"end": "the end", "id": "a name", "str": "a string", "num": "a number"}.get(kind, repr(kind))


def _show_tok(tok):
    return "the end" if tok[0] == "end" else repr(tok[1]) if tok[0] != "str" else "the string %r" % tok[1]


def compile(text):
    if type(text) is not str:
        raise VariformError("expected a string")
    p = _Parser(text)
    form = p.expr()
    tok = p.peek()
    if tok[0] != "end":
        raise VariformError("unexpected %s after the expression" % _show_tok(tok), tok[2])
    return form


def variables(form):
    # The variables a compiled form reads, as written ("cert_san.dns"): what a port checks
    # against the bindings it can give.
    k = form[0]
    if k == "var":
        return [".".join(form[1])]
    out = []
    for a in form[1] if k == "array" else form[2] if k == "call" else ():
        out += variables(a)
    return out


def render(form, bindings):
    try:
        return _as_str(_eval(form, bindings), True)
    except _Unbound as e:
        raise VariformError("variable %s is not bound" % e.args[0])
    except VariformError:
        raise
    except Exception as e:  # a bad argument to a function (ValueError, TypeError, IndexError...)
        raise VariformError("cannot evaluate: %s" % (e,))


def _empty(v):
    return v is None or v == "" or v == []


def _as_str(v, final=False):
    if v is None:
        return ""
    t = type(v)
    if t is str:
        return v
    if v is True:
        return "true"
    if v is False:
        return "false"
    if t is int:
        return "%d" % v
    if t is float:
        s = "%.10f" % v
        s = s.rstrip("0")
        return s + "0" if s.endswith(".") else s
    if t is bytes:
        try:
            return v.decode()
        except Exception:
            return "".join([chr(c) for c in v])
    raise VariformError("expected a string, got an array" if final else "expected a string, got %r" % (v,))


def _eval(f, b):
    k = f[0]
    if k == "lit":
        return f[1]
    if k == "array":
        return [_eval(a, b) for a in f[1]]
    if k == "var":
        v = b
        for part in f[1]:
            if type(v) is not dict or part not in v:
                raise _Unbound(".".join(f[1]))
            v = v[part]
        if _empty(v):
            return ""
        return v
    name, args = f[1], f[2]
    if name == "coalesce":
        if len(args) == 1 and args[0][0] != "array":
            v = _try(args[0], b)
            if type(v) is list:
                for x in v:
                    if not _empty(x):
                        return x
                return ""
            if v == "":
                return ""
            raise VariformError("coalesce: the argument did not yield an array")
        items = args[0][1] if len(args) == 1 else args
        for a in items:
            v = _try(a, b)
            if not _empty(v):
                return v
        return ""
    if name == "iif":
        c = _try(args[0], b)
        met = c if c is True or c is False else not _empty(c)
        return _eval(args[1] if met else args[2], b)
    if name == "is_empty":
        return _empty(_try(args[0], b))
    return _CALL[name](*[_eval(a, b) for a in args])


def _try(f, b):
    try:
        return _eval(f, b)
    except _Unbound:
        return ""


def _s(v):
    if type(v) is not str:
        raise VariformError("expected a string, got %s" % ("an array" if type(v) is list else _as_str(v)))
    return v


def _i(v):
    if type(v) is int:
        return v
    raise VariformError("expected an integer, got %r" % (v,))


def _lexemes(s, seps):
    out = []
    cur = []
    for c in s:
        if c in seps:
            if cur:
                out.append("".join(cur))
                cur = []
        else:
            cur.append(c)
    if cur:
        out.append("".join(cur))
    return out


def _f_tokens(s, seps, mode=None):
    seps = _s(seps)
    if mode == "nocrlf":
        seps += "\r\n"
    return _lexemes(_s(s), seps)


def _f_split(s, p, mode="all"):
    s, p = _s(s), _s(p)
    if mode in ("leading", "leading_notrim"):
        parts = s.split(p, 1)
    elif mode in ("trailing", "trailing_notrim"):
        j = s.rfind(p)
        parts = [s] if j < 0 else [s[:j], s[j + len(p):]]
    elif mode in ("all", "notrim"):
        parts = s.split(p)
    else:
        raise VariformError("split: unknown mode %r" % mode)
    if mode in ("all", "leading", "trailing"):
        parts = [x for x in parts if x]
    return parts


def _f_nth(n, items):
    if type(n) is str:
        n = int(n)
    if type(items) is not list:
        raise VariformError("nth: expected an array, got %r" % (items,))
    n = _i(n)
    if n < 1:
        raise VariformError("nth: the index starts at 1, got %d" % n)
    return items[n - 1] if n <= len(items) else ""


def _f_substr(s, start, length=None):
    # string:slice: 0-based start, in characters.
    s = _s(s)
    start = _i(start)
    if start < 0:
        raise VariformError("substr: negative start %d" % start)
    return s[start:] if length is None else s[start:start + max(0, _i(length))]


def _trim(s, chars, lead, trail):
    s = _s(s)
    chars = " \t\n\r\x0b\x0c" if chars is None else _s(chars)
    a, z = 0, len(s)
    while lead and a < z and s[a] in chars:
        a += 1
    while trail and z > a and s[z - 1] in chars:
        z -= 1
    return s[a:z]


def _hex(data):
    return binascii.hexlify(data).decode()


def _bytes(v):
    return _as_str(v).encode()


def _f_hash(alg, data):
    alg = _s(alg)
    name = {"sha": "sha1", "sha1": "sha1", "md5": "md5", "sha256": "sha256"}.get(alg)
    if name is None:
        raise VariformError("hash: unsupported algorithm %r (md5, sha, sha1, sha256)" % alg)
    return _hex(getattr(hashlib, name)(_bytes(data)).digest())


def _range(num, lo, hi):
    lo, hi = _i(lo), _i(hi)
    if lo > hi:
        raise VariformError("the range's minimum is above its maximum")
    return lo + num % (hi - lo + 1)


def _f_hash_to_range(data, lo, hi):
    d = _bytes(data)
    if not d:
        raise VariformError("hash_to_range: empty input")
    return _range(int(_hex(hashlib.sha256(d).digest()), 16), lo, hi)


def _f_map_to_range(v, lo, hi):
    if type(v) is not int:
        d = _bytes(v)
        if not d:
            raise VariformError("map_to_range: empty input")
        v = int(_hex(d), 16)
    return _range(v, lo, hi)


def _f_str_eq(a, c):
    return _as_str(a) == _as_str(c)


def _re():
    import re
    return re


def _f_regex_match(s, pat):
    return _re().search(pat, _s(s)) is not None


def _f_regex_extract(s, pat):
    m = _re().search(pat, _s(s))
    out = []
    if m is None:
        return out
    i = 1
    while True:
        try:
            g = m.group(i)
        except IndexError:
            return out
        out.append(g or "")
        i += 1


def _f_replace(s, p, r, where="all"):
    s, p, r = _s(s), _s(p), _s(r)
    if where == "all":
        return s.replace(p, r)
    if where == "leading":
        return s.replace(p, r, 1)
    j = s.rfind(p)
    return s if j < 0 else s[:j] + r + s[j + len(p):]


def _f_find(s, p, where="leading"):
    s, p = _s(s), _s(p)
    j = s.find(p) if where == "leading" else s.rfind(p)
    return "" if j < 0 else s[j:]


def _f_b64e(v):
    return binascii.b2a_base64(_bytes(v)).decode().rstrip("\n")


def _f_b64d(v):
    return _as_str(binascii.a2b_base64(_s(v)))


def _f_not(v):
    if v is True or v is False:
        return not v
    if v == "true":
        return "false"
    if v == "false":
        return "true"
    raise VariformError("not: expected true or false, got %r" % (v,))


def _f_concat(*args):
    if len(args) == 1 and type(args[0]) is list:
        args = args[0]
    return "".join([_as_str(a) for a in args])


def _f_join(a, c=None):
    sep, items = (", ", a) if c is None else (_s(a), c)
    return sep.join([_as_str(x) for x in items])


_CALL = {
    "lower": lambda s: _s(s).lower(), "upper": lambda s: _s(s).upper(),
    "trim": lambda s, c=None: _trim(s, c, True, True), "ltrim": lambda s, c=None: _trim(s, c, True, False),
    "rtrim": lambda s, c=None: _trim(s, c, False, True),
    "reverse": lambda s: "".join(reversed(list(_s(s)))), "strlen": lambda s: len(_s(s)),
    "substr": _f_substr, "concat": _f_concat, "tokens": _f_tokens, "split": _f_split, "nth": _f_nth,
    "is_empty_val": _empty, "not": _f_not, "str_eq": _f_str_eq,
    "str_neq": lambda a, c: not _f_str_eq(a, c), "regex_match": _f_regex_match,
    "regex_extract": _f_regex_extract, "regex_replace": lambda s, p, r: _re().sub(p, r, _s(s)),
    "rm_prefix": lambda s, p: _s(s)[len(p):] if _s(s).startswith(_s(p)) else s,
    "replace": _f_replace, "find": _f_find, "hash": _f_hash, "hash_to_range": _f_hash_to_range,
    "map_to_range": _f_map_to_range, "bin2hexstr": lambda v: _hex(_bytes(v)).upper(),
    "int2hexstr": lambda v: "%X" % _i(v), "base64_encode": _f_b64e, "base64_decode": _f_b64d,
    "any_to_str": _as_str, "join_to_string": _f_join, "num_eq": lambda a, c: a == c,
}
