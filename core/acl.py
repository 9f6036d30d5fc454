# Authorization as EMQX 5 does it: the JWT `acl` claim first, then the acl.conf file sources in
# order, first matching rule wins, then `no_match`. Superusers bypass everything.
# acl.conf is a list of Erlang terms; the small term reader below knows just what rules use.
try:
    import re
except ImportError:  # a very small MicroPython build
    re = None

from gatemq.errors import ConfigError, AuthError
from gatemq.policy import NoMatch, strip_share  # noqa: F401  (strip_share re-exported)
from gatemq.ipaddr import parse_prefix, in_prefix
from gatemq.topic import matches as topic_matches

PLACEHOLDERS = ("username", "clientid", "cert_common_name", "cert_subject")

# --- Erlang term reader --------------------------------------------------------------------------


class Atom(str):
    pass


class _Reader:
    def __init__(self, text, source):
        self.s = text
        self.i = 0
        self.line = 1
        self.source = source

    def error(self, msg, line=None):
        return ConfigError("%s:%d: %s" % (self.source, line or self.line, msg))

    def skip(self):
        s = self.s
        while self.i < len(s):
            c = s[self.i]
            if c == "\n":
                self.line += 1
                self.i += 1
            elif c in " \t\r":
                self.i += 1
            elif c == "%":  # Erlang comment to end of line (%% by convention)
                while self.i < len(s) and s[self.i] != "\n":
                    self.i += 1
            else:
                return

    def peek(self):
        self.skip()
        return self.s[self.i] if self.i < len(self.s) else ""

    def expect(self, ch):
        if self.peek() != ch:
            got = self.peek() or "end of file"
            raise self.error("expected %r, got %r" % (ch, got))
        self.i += 1

    def term(self):
        c = self.peek()
        line = self.line
        if c == "{":
            self.i += 1
            return ("tuple", self._seq("}"), line)
        if c == "[":
            self.i += 1
            return ("list", self._seq("]"), line)
        if c == '"':
            return ("str", self._string(), line)
        if c == "'":
            return ("atom", self._quoted_atom(), line)
        if c.isdigit():
            j = self.i
            while self.i < len(self.s) and self.s[self.i].isdigit():
                self.i += 1
            return ("int", int(self.s[j:self.i]), line)
        if c and (c.isalpha() and c.lower() == c):
            j = self.i
            while self.i < len(self.s) and (self.s[self.i].isalpha() or self.s[self.i].isdigit()
                                            or self.s[self.i] in "_@"):
                self.i += 1
            return ("atom", self.s[j:self.i], line)
        raise self.error("unexpected %r" % (c or "end of file"))

    def _seq(self, close):
        items = []
        if self.peek() == close:
            self.i += 1
            return items
        while True:
            items.append(self.term())
            c = self.peek()
            if c == ",":
                self.i += 1
            elif c == close:
                self.i += 1
                return items
            else:
                raise self.error("expected ',' or %r, got %r" % (close, c or "end of file"))

    def _string(self):
        self.i += 1
        out = []
        s = self.s
        while True:
            if self.i >= len(s):
                raise self.error("string not closed")
            c = s[self.i]
            self.i += 1
            if c == '"':
                return "".join(out)
            if c == "\n":
                self.line += 1
            if c == "\\":
                if self.i >= len(s):
                    raise self.error("string not closed")
                c = s[self.i]
                self.i += 1
                c = {"n": "\n", "t": "\t", "r": "\r", "s": " "}.get(c, c)
            out.append(c)

    def _quoted_atom(self):
        self.i += 1
        j = self.s.find("'", self.i)
        if j < 0:
            raise self.error("quoted atom not closed")
        v = self.s[self.i:j]
        self.i = j + 1
        return v

    def terms(self):
        out = []
        while self.peek():
            t = self.term()
            self.expect(".")
            out.append(t)
        return out


def _placeholders(text):
    names = []
    i = text.find("${")
    while i >= 0:
        j = text.find("}", i)
        if j < 0:
            return None
        names.append(text[i + 2:j])
        i = text.find("${", j)
    return names


# Placeholder names (EMQX's) to the broker's client attributes.
_ATTR = {"username": "username", "clientid": "clientid", "cert_common_name": "cert_cn", "cert_subject": "cert_dn"}


def _client_value(client, name):
    if name[:13] == "client_attrs.":
        # ${client_attrs.NAME}: an attribute mqtt.client_attrs_init set (gatemq.clientattrs).
        return (getattr(client, "client_attrs", None) or {}).get(name[13:])
    return getattr(client, _ATTR[name], None)


def render(text, client):
    # Fills placeholders; None when one has no value or would smuggle in wildcards.
    names = _placeholders(text)
    for name in names:
        v = _client_value(client, name)
        if v is None or v == "":
            return None
        if isinstance(v, bytes):
            try:
                v = v.decode()
            except Exception:
                return None
        if "/" in v or "+" in v or "#" in v or "\x00" in v:
            # A CN "bob/cmd" in devices/${cert_common_name}/# would reach into bob's subtree:
            # the rule matches nothing for this client. Noted once per client (NoMatch.check logs).
            try:
                if getattr(client, "unsafe_placeholder", None) is None:
                    client.unsafe_placeholder = name
            except AttributeError:
                pass
            return None
        text = text.replace("${" + name + "}", v)
    return text


def _compile_topic(text, where):
    names = _placeholders(text)
    if names is None:
        raise where("placeholder in %r is not closed with }" % text)
    for n in names:
        if n not in PLACEHOLDERS and not (n[:13] == "client_attrs." and len(n) > 13):
            raise where("unknown placeholder ${%s} in %r; known: %s"
                        % (n, text, ", ".join("${%s}" % p for p in PLACEHOLDERS)))
    return ("filter", text, bool(names))


class Rule:
    # permission "allow"|"deny"; who: matcher tree; action "publish"|"subscribe"|"all";
    # qos: tuple of allowed QoS or None; retain: True/False/None; topics: list or None for every topic.
    def __init__(self, permission, who, action, qos, retain, topics, line=0):
        self.permission = permission
        self.who = who
        self.action = action
        self.qos = qos
        self.retain = retain
        self.topics = topics
        self.line = line

    def matches(self, client, action, topic, qos, retain):
        if self.action != "all" and self.action != action:
            return False
        if self.qos is not None and qos not in self.qos:
            return False
        if self.retain is not None and action == "publish" and bool(retain) != self.retain:
            return False
        if not _who_matches(self.who, client):
            return False
        if self.topics is None:
            return True
        subscribe = action == "subscribe"
        for kind, text, dyn in self.topics:
            if kind == "eq":
                if text == topic:
                    return True
                continue
            if dyn:
                text = render(text, client)
                if text is None:
                    continue
            if topic_matches(text, topic, subscribe):
                return True
        return False


def _who_matches(who, client):
    kind = who[0]
    if kind == "all":
        return True
    if kind in ("username", "clientid"):
        v = getattr(client, kind, None)
        if v is None:
            return False
        if who[1] == "re":
            return who[2].search(v) is not None
        return v == who[2]
    if kind == "ipaddrs":
        host = getattr(client, "peerhost", None)
        for c in who[1]:
            if in_prefix(host, c):
                return True
        return False
    if kind == "and":
        for w in who[1]:
            if not _who_matches(w, client):
                return False
        return True
    if kind == "or":
        for w in who[1]:
            if _who_matches(w, client):
                return True
        return False
    return False


# --- acl.conf compilation ------------------------------------------------------------------------

def _cidrs(values, err):
    out = []
    for v in values:
        if v[0] != "str":
            raise err("an IP address must be a string like \"10.0.0.0/8\"", v[2])
        try:
            out.append(parse_prefix(v[1]))
        except ValueError as e:
            raise err(str(e), v[2])
    return out


def _compile_who(t, err):
    kind, val, line = t
    if kind == "atom" and val == "all":
        return ("all",)
    if kind != "tuple" or len(val) != 2 or val[0][0] != "atom":
        raise err("Who must be all, {username, ...}, {clientid, ...}, {ipaddr, ...}, {ipaddrs, [...]}, "
                  "{'and', [...]} or {'or', [...]}", line)
    key = val[0][1]
    arg = val[1]
    if key in ("username", "user", "clientid", "client"):
        field = "username" if key in ("username", "user") else "clientid"
        if arg[0] == "str":
            return (field, "eq", arg[1])
        if arg[0] == "tuple" and len(arg[1]) == 2 and arg[1][0] == ("atom", "re", arg[1][0][2]) \
                and arg[1][1][0] == "str":
            if re is None:
                raise err("{re, ...} needs the re module, which this build lacks", line)
            try:
                return (field, "re", re.compile(arg[1][1][1]))
            except Exception:
                raise err("regular expression %r is not supported here (basic syntax only: "
                          ". * + ? ^ $ [] | ())" % arg[1][1][1], line)
        raise err("{%s, V}: V must be a string or {re, \"regex\"}" % key, line)
    if key == "ipaddr":
        return ("ipaddrs", _cidrs([arg], err))
    if key == "ipaddrs":
        if arg[0] != "list":
            raise err("{ipaddrs, [...]} needs a list", line)
        return ("ipaddrs", _cidrs(arg[1], err))
    if key in ("and", "or"):
        if arg[0] != "list" or not arg[1]:
            raise err("{'%s', [...]} needs a non-empty list" % key, line)
        return (key, [_compile_who(w, err) for w in arg[1]])
    raise err("unknown Who %r (supported: username, clientid, ipaddr, ipaddrs, 'and', 'or')" % key, line)


def _compile_cond(t, err, acc):
    kind, val, line = t
    if kind == "list":
        for c in val:
            _compile_cond(c, err, acc)
        return
    if kind == "tuple" and len(val) == 2 and val[0][0] == "atom":
        key, arg = val[0][1], val[1]
        if key == "qos":
            qs = arg[1] if arg[0] == "list" else [arg]
            out = []
            for q in qs:
                if q[0] != "int" or q[1] > 2:
                    raise err("qos must be 0, 1 or 2", q[2])
                out.append(q[1])
            acc["qos"] = tuple(out)
            return
        if key == "retain":
            if arg[0] != "atom" or arg[1] not in ("true", "false"):
                raise err("retain must be true or false", arg[2])
            acc["retain"] = arg[1] == "true"
            return
    raise err("action condition must be {qos, N}, {qos, [N, ...]} or {retain, true|false}", line)


_ACTIONS = {"publish": "publish", "subscribe": "subscribe", "all": "all", "pubsub": "all"}


def _compile_action(t, err):
    kind, val, line = t
    acc = {"qos": None, "retain": None}
    if kind == "tuple" and len(val) == 2 and val[0][0] == "atom":
        name = val[0][1]
        _compile_cond(val[1], err, acc)
    elif kind == "atom":
        name = val
    else:
        raise err("Action must be publish, subscribe, all or {Action, Conditions}", line)
    if name not in _ACTIONS:
        raise err("unknown action %r (publish, subscribe or all)" % name, line)
    return _ACTIONS[name], acc["qos"], acc["retain"]


def _compile_topics(t, err):
    kind, val, line = t
    items = val if kind == "list" else [t]
    out = []
    for kind, v, ln in items:
        if kind == "str":
            out.append(_compile_topic(v, lambda m: err(m, ln)))
        elif kind == "tuple" and len(v) == 2 and v[0][0] == "atom" and v[0][1] == "eq" and v[1][0] == "str":
            out.append(("eq", v[1][1], False))
        else:
            raise err("a topic must be a string or {eq, \"topic\"}", ln)
    return out


def parse(text, source="acl.conf"):
    # Returns the list of Rules of an acl.conf text; ConfigError with the line on any mistake.
    if isinstance(text, bytes):
        text = text.decode()
    reader = _Reader(text, source)

    def err(msg, line):
        return reader.error(msg, line)

    rules = []
    for kind, val, line in reader.terms():
        if kind != "tuple" or len(val) not in (2, 4) or val[0][0] != "atom" or val[0][1] not in ("allow", "deny"):
            raise err("a rule is {allow|deny, Who, Action, Topics}. or {allow|deny, all}.", line)
        perm = val[0][1]
        if len(val) == 2:
            if val[1][:2] != ("atom", "all"):
                raise err("a two-element rule must be {%s, all}" % perm, line)
            rules.append(Rule(perm, ("all",), "all", None, None, None, line))
            continue
        who = _compile_who(val[1], err)
        action, qos, retain = _compile_action(val[2], err)
        topics = _compile_topics(val[3], err)
        rules.append(Rule(perm, who, action, qos, retain, topics, line))
    return rules


# --- JWT acl claim -------------------------------------------------------------------------------

_CLAIM_ACTIONS = {"publish": "publish", "pub": "publish", "subscribe": "subscribe", "sub": "subscribe",
                  "all": "all", "pubsub": "all"}


def _claim_topic(text):
    if not isinstance(text, str):
        raise AuthError("acl claim: a topic must be a string")
    if text.startswith("eq "):
        return ("eq", text[3:], False)

    def where(m):
        return AuthError("acl claim: " + m)
    return _compile_topic(text, where)


def compile_claim(claim):
    # EMQX's two JWT acl formats. Returns (rules, old_format). In the old format
    # {"pub": [...], "sub": [...], "all": [...]} the lists are allow-lists and anything else is
    # denied; in the new list-of-rules format a miss falls through to the acl.conf sources.
    if isinstance(claim, dict):
        rules = []
        for key, action in (("pub", "publish"), ("sub", "subscribe"), ("all", "all")):
            topics = claim.get(key, [])
            if not isinstance(topics, list):
                raise AuthError("acl claim: %r must be a list of topics" % key)
            if topics:
                rules.append(Rule("allow", ("all",), action, None, None, [_claim_topic(t) for t in topics]))
        for key in claim:
            if key not in ("pub", "sub", "all"):
                raise AuthError("acl claim: unknown key %r (pub, sub, all)" % key)
        return rules, True
    if not isinstance(claim, list):
        raise AuthError("acl claim: expected a list of rules or a {pub, sub, all} object")
    rules = []
    for r in claim:
        if not isinstance(r, dict):
            raise AuthError("acl claim: each rule must be an object")
        for key in r:
            if key not in ("permission", "action", "topic", "topics", "qos", "retain"):
                # An unknown condition (e.g. clientid_re) ignored on an allow rule would widen it.
                raise AuthError("acl claim: unsupported rule field %r" % key)
        perm = r.get("permission")
        if perm not in ("allow", "deny"):
            raise AuthError("acl claim: permission must be allow or deny")
        action = _CLAIM_ACTIONS.get(r.get("action"))
        if action is None:
            raise AuthError("acl claim: action must be publish, subscribe or all")
        topics = r.get("topics", [r.get("topic")] if "topic" in r else None)
        if not isinstance(topics, list) or not topics:
            raise AuthError("acl claim: a rule needs a topic")
        qos = r.get("qos")
        if qos is not None:
            if isinstance(qos, int) and not isinstance(qos, bool):
                qos = [qos]
            if not isinstance(qos, list) or [q for q in qos if q not in (0, 1, 2)]:
                raise AuthError("acl claim: qos must be a list of 0, 1, 2")
            qos = tuple(qos)
        retain = r.get("retain")
        if retain is not None and not isinstance(retain, bool):
            raise AuthError("acl claim: retain must be true or false")
        rules.append(Rule(perm, ("all",), action, qos, retain, [_claim_topic(t) for t in topics]))
    return rules, False


# --- the authorizer ------------------------------------------------------------------------------

def _first_match(rules, client, action, topic, qos, retain):
    for rule in rules:
        if rule.matches(client, action, topic, qos, retain):
            return rule.permission
    return None


class Authorizer(NoMatch):
    # authz_cfg: the loaded config's authorization section, {no_match, deny_action, sources:
    # [{type: "file", path, enable}]}, checked by the schema (a file source has a path; file is
    # the only type). Rules from a JWT acl claim (client.acl) come first, then the files in
    # order, then no_match.
    def __init__(self, authz_cfg, read_file, log=None):
        NoMatch.__init__(self, authz_cfg, log)
        self.sources = []
        self.files = []     # what Broker.reload_auth reports as re-read
        for i, src in enumerate(authz_cfg["sources"]):
            if not src["enable"]:
                continue
            path = src["path"]
            try:
                text = read_file(path)
            except Exception as e:
                raise ConfigError("authorization.sources.%d.path: cannot read %r: %s" % (i + 1, path, e))
            rules = parse(text, path)
            self.sources.append(rules)
            self.files.append("acl file %r (%d rules)" % (path, len(rules)))

    def _rules(self, client, action, topic, qos, retain):
        claim = getattr(client, "acl", None)
        if claim is not None:
            rules, old_format = claim
            verdict = _first_match(rules, client, action, topic, qos, retain)
            if verdict is None and old_format:
                verdict = "deny"
            if verdict is not None:
                return verdict, "JWT acl claim"
        for rules in self.sources:
            verdict = _first_match(rules, client, action, topic, qos, retain)
            if verdict is not None:
                return verdict, "acl file"
        return None, None
