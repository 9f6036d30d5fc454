# A reader for the subset of HOCON that gatemq's config files use (see docs/config.md).
#
# It walks the text once, character by character, without a token list or `re`, so it runs on
# MicroPython with little garbage. Every value keeps where it came from, because the schema checks
# happen later and their errors must still point at file:line:col.
#
# Tree shape (what `parse` returns):
#   object  -> dict   {key: (value, pos, key_pos)}
#   array   -> list   [(value, pos), ...]
#   scalars -> str, int, float, bool or None (for `null`)
#   pos     -> (source, line, col), 1-based
from gatemq.errors import ConfigError

MAX_INCLUDE_DEPTH = 8
MAX_NESTING = 64

# Characters that end an unquoted string. ':' ends keys only, so `bind = 0.0.0.0:1883` reads as one
# value; '@' is allowed so `node.name = gatemq@host` works as it does in EMQX's own files.
_STOP = ' \t\r\n,{}[]"=#`'
_KEY_STOP = _STOP + ':.'
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def where(pos):
    return "%s:%d:%d" % pos


def error(pos, msg):
    return ConfigError("%s: %s" % (where(pos), msg))


def _show(ch):
    if ch == "":
        return "end of file"
    if ch == "\n":
        return "end of line"
    return "'%s'" % ch


class _Reader:
    def __init__(self, text, source, read_file, chain):
        self.s = text
        self.n = len(text)
        self.i = 0
        self.line = 1
        self.ls = 0  # index where the current line starts, for columns
        self.source = source
        self.read_file = read_file
        self.chain = chain  # sources of the files that include this one, for cycle checks
        self.depth = 0

    def pos(self):
        return (self.source, self.line, self.i - self.ls + 1)

    def fail(self, msg, pos=None):
        raise error(pos or self.pos(), msg)

    def peek(self):
        return self.s[self.i] if self.i < self.n else ""

    def skip_space(self):
        # Spaces, tabs and comments, stopping before a newline.
        s, n = self.s, self.n
        i = self.i
        while i < n:
            c = s[i]
            if c == " " or c == "\t" or c == "\r" or c == "\ufeff":
                i += 1
            elif c == "#" or (c == "/" and i + 1 < n and s[i + 1] == "/"):
                j = s.find("\n", i)
                i = n if j < 0 else j
            else:
                break
        self.i = i

    def skip_all(self):
        # Like skip_space but across newlines too.
        while True:
            self.skip_space()
            if self.i < self.n and self.s[self.i] == "\n":
                self.i += 1
                self.line += 1
                self.ls = self.i
            else:
                return

    # -- objects ---------------------------------------------------------------------------------
    def root(self, obj):
        self.skip_all()
        if self.peek() == "{":
            self.i += 1
            self.fields(obj, "}")
            self.skip_all()
            if self.i < self.n:
                self.fail("expected end of file after the closing '}', got %s" % _show(self.peek()))
        else:
            self.fields(obj, "")
        return obj

    def fields(self, obj, closer):
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail("objects and arrays nest deeper than %d levels" % MAX_NESTING)
        while True:
            self.skip_all()
            c = self.peek()
            if c == closer:
                self.i += 1
                self.depth -= 1
                return
            if c == "":
                self.fail("expected '}' to close the object, got end of file")
            if c == ",":
                self.fail("expected a key, got ','")
            self.field(obj)
            self.skip_space()
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c != "\n" and c != closer and c != "":
                self.fail("expected ',' or a new line after the value, got %s" % _show(c))

    def field(self, obj):
        if self.s.startswith("include", self.i) and self._include(obj):
            return
        path = self.key_path()
        self.skip_space()
        c = self.peek()
        if c == "=" or c == ":":
            self.i += 1
            self.skip_space()
            c = self.peek()
        elif c != "{":
            self.fail("expected '=', ':' or '{' after the key '%s', got %s"
                      % (".".join(p[0] for p in path), _show(c)))
        # Walk or create the objects named by a dotted key; a non-object on the way is replaced.
        for name, kpos in path[:-1]:
            e = obj.get(name)
            if e is None or type(e[0]) is not dict:
                e = ({}, kpos, kpos)
                obj[name] = e
            obj = e[0]
        name, kpos = path[-1]
        vpos = self.pos()
        if c == "{":
            # A repeated object key merges into what is there (later keys win), so parse straight
            # into the existing dict.
            e = obj.get(name)
            if e is None or type(e[0]) is not dict:
                e = ({}, vpos, kpos)
                obj[name] = e
            self.i += 1
            self.fields(e[0], "}")
        else:
            obj[name] = (self.value(), vpos, kpos)

    def key_path(self):
        path = []
        while True:
            kpos = self.pos()
            c = self.peek()
            if c == '"':
                name = self.quoted()
            else:
                name = self.unquoted(_KEY_STOP)
                if not name:
                    self.fail("expected a key, got %s" % _show(c))
            path.append((name, kpos))
            if self.peek() != ".":
                return path
            self.i += 1

    def _include(self, obj):
        # `include "file"`: the file's keys land in this object. Returns False when "include" is
        # just a key name.
        start = self.i
        self.i += 7
        self.skip_space()
        if self.peek() != '"':
            self.i = start
            return False
        ipos = self.pos()
        name = self.quoted()
        if not name:
            self.fail('include "": expected a file name', ipos)
        if self.read_file is None:
            self.fail('include "%s": no file reader here, so includes are not available' % name, ipos)
        if name.startswith("/"):
            path = name
        else:
            cut = self.source.rfind("/")
            path = self.source[:cut + 1] + name if cut >= 0 else name
        if path in self.chain or path == self.source:
            self.fail('include "%s": include cycle %s -> %s'
                      % (name, " -> ".join(self.chain + (self.source,)), path), ipos)
        if len(self.chain) >= MAX_INCLUDE_DEPTH:
            self.fail('include "%s": includes nest deeper than %d files' % (name, MAX_INCLUDE_DEPTH), ipos)
        try:
            text = self.read_file(path)
        except (OSError, ValueError) as e:  # missing, unreadable, or not UTF-8
            self.fail('include "%s": cannot read %s: %s' % (name, path, e), ipos)
        _Reader(text, path, self.read_file, self.chain + (self.source,)).root(obj)
        return True

    # -- values ----------------------------------------------------------------------------------
    def value(self):
        c = self.peek()
        if c == "{":
            self.i += 1
            d = {}
            self.fields(d, "}")
            return d
        if c == "[":
            return self.array()
        # Simple values on one line concatenate, as in HOCON: `a = hello world` is "hello world".
        pieces = None
        first = None
        while True:
            c = self.peek()
            if c == '"':
                text = self.quoted()
                quoted = True
            elif c == "$":
                self.fail("substitutions (${...}) are not supported; quote the string if it is literal")
            else:
                text = self.unquoted(_STOP)
                if not text:
                    self.fail("expected a value, got %s" % _show(c))
                quoted = False
            if first is None:
                first = (text, quoted)
            else:
                if pieces is None:
                    pieces = [first[0]]
                pieces.append(text)
            gap = self.i
            self.skip_space()
            c = self.peek()
            if c in ",}]\n":  # also true for "" (end of file); a comment runs to the newline
                break
            if c in "{[=:":
                self.fail("expected ',' or a new line after the value, got %s" % _show(c))
            if pieces is None:
                pieces = [first[0]]
            pieces.append(self.s[gap:self.i])
        if pieces is not None:
            return "".join(pieces)
        text, quoted = first
        return text if quoted else _scalar(text)

    def array(self):
        self.depth += 1
        if self.depth > MAX_NESTING:
            self.fail("objects and arrays nest deeper than %d levels" % MAX_NESTING)
        self.i += 1
        items = []
        while True:
            self.skip_all()
            c = self.peek()
            if c == "]":
                self.i += 1
                self.depth -= 1
                return items
            if c == "":
                self.fail("expected ']' to close the array, got end of file")
            if c == ",":
                self.fail("expected a value, got ','")
            vpos = self.pos()
            items.append((self.value(), vpos))
            self.skip_space()
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c != "\n" and c != "]" and c != "":
                self.fail("expected ',' or ']' after the array item, got %s" % _show(c))

    def unquoted(self, stop):
        s, n = self.s, self.n
        i = start = self.i
        while i < n:
            c = s[i]
            if c in stop or (c == "/" and i + 1 < n and s[i + 1] == "/"):
                break
            if c == "$" and stop is _STOP:
                break
            i += 1
        self.i = i
        return s[start:i]

    def quoted(self):
        s = self.s
        if s.startswith('"""', self.i):
            return self.triple()
        start = self.pos()
        self.i += 1
        out = []
        seg = self.i
        n = self.n
        while True:
            i = self.i
            if i >= n or s[i] == "\n":
                self.fail("unterminated string (a quoted string must end on its line)", start)
            c = s[i]
            if c == '"':
                out.append(s[seg:i])
                self.i = i + 1
                return "".join(out)
            if c == "\\":
                out.append(s[seg:i])
                e = s[i + 1] if i + 1 < n else ""
                if e == "u":
                    out.append(self.unicode_escape())
                elif e in _ESCAPES:
                    out.append(_ESCAPES[e])
                    self.i = i + 2
                else:
                    self.fail("unknown escape '\\%s' in a string" % e)
                seg = self.i
            else:
                self.i = i + 1

    def unicode_escape(self):
        code = self.hex4(self.i + 2)
        self.i += 6
        if 0xD800 <= code < 0xDC00 and self.s.startswith("\\u", self.i):
            low = self.hex4(self.i + 2)
            if 0xDC00 <= low < 0xE000:
                self.i += 6
                return chr(0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00))
        if 0xD800 <= code < 0xE000:
            self.fail("lone surrogate \\u%04x in a string" % code)
        return chr(code)

    def hex4(self, at):
        h = self.s[at:at + 4]
        if len(h) != 4:
            self.fail("expected 4 hex digits after \\u, got '%s'" % h)
        try:
            return int(h, 16)
        except ValueError:
            self.fail("expected 4 hex digits after \\u, got '%s'" % h)

    def triple(self):
        # """raw text""" may span lines; extra quotes before the closing three belong to the text.
        start = self.pos()
        s = self.s
        body = self.i + 3
        end = s.find('"""', body)
        if end < 0:
            self.fail('unterminated """ string', start)
        while s.startswith('"', end + 3):
            end += 1
        text = s[body:end]
        nl = text.count("\n")
        if nl:
            self.line += nl
            self.ls = body + text.rfind("\n") + 1
        self.i = end + 3
        return text


def _scalar(text):
    # An unquoted word: keyword, number, or else a string (durations and sizes stay strings here;
    # the schema knows what they mean).
    if text == "true":
        return True
    if text == "false":
        return False
    if text == "null":
        return None
    c = text[0]
    if c == "-" or "0" <= c <= "9":
        n = _number(text)
        if n is not None:
            return n
    return text


def _digits(text, i):
    # Past the run of digits that starts at i; -1 when there is none (each part of a number
    # needs one at least).
    j = i
    while j < len(text) and "0" <= text[j] <= "9":
        j += 1
    return j if j > i else -1


def _number(text):
    # -12, 1.5, 2e-3 -> int or float; None for anything else (then the word is a string).
    n = len(text)
    i = _digits(text, 1 if text[0] == "-" else 0)
    if i < 0:
        return None
    is_float = False
    if i < n and text[i] == ".":
        i = _digits(text, i + 1)
        if i < 0:
            return None
        is_float = True
    if i < n and text[i] in "eE":
        i += 1
        if i < n and text[i] in "+-":
            i += 1
        i = _digits(text, i)
        if i < 0:
            return None
        is_float = True
    if i != n:
        return None
    return float(text) if is_float else int(text)


def parse(text, source="<string>", read_file=None, into=None):
    # Reads one file into a tree (see the top of this module). With `into`, the keys merge into an
    # existing tree, later ones winning, which is how overlay files apply.
    obj = {} if into is None else into
    return _Reader(text, source, read_file, ()).root(obj)


def plain(node):
    # The tree without positions: dicts, lists and scalars.
    if type(node) is dict:
        return {k: plain(e[0]) for k, e in node.items()}
    if type(node) is list:
        return [plain(e[0]) for e in node]
    return node
