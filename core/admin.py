# The HTTP management API (/api/v5/..., EMQX 5's paths and field names), sans-IO and shared by
# both ports: login tokens, the administrators' hashed passwords, the login rate limit, and the
# JSON the endpoints answer with. A port parses HTTP, calls Api.handle() and writes the answer; it
# also supplies the randomness, the clock and the atomic file writes.
import binascii
import hashlib
import json

from gatemq import __version__, config, pwhash
from gatemq.civil import civil_from_days
from gatemq.errors import ConfigError

API = "/api/v5/"
MAX_BODY = 65536
# New administrator passwords: PBKDF2-SHA256 with this many rounds (stored beside each hash, so
# a port may choose fewer on a slow board without breaking the other port's logins).
ITERATIONS = 4096
MIN_PASSWORD = 8


class HttpError(Exception):
    def __init__(self, status, code, message, retry=None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry = retry


# ---- HTTP helpers both ports use ------------------------------------------------------------

def parse_head(head):
    # b"GET /x?y HTTP/1.1\r\nHost: ...\r\n..." -> (method, target, version, {lower name: value}).
    try:
        text = head.decode()
    except Exception:
        raise HttpError(400, "BAD_REQUEST", "request head is not UTF-8")
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpError(400, "BAD_REQUEST", "malformed request line")
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        i = line.find(":")
        if i <= 0:
            raise HttpError(400, "BAD_REQUEST", "malformed header line")
        headers[line[:i].strip().lower()] = line[i + 1:].strip()
    return parts[0], parts[1], parts[2], headers


def unquote(s):
    # Percent-decoding of one URL component (UTF-8), "+" left as is except in query strings.
    if "%" not in s:
        return s
    out = bytearray()
    i = 0
    b = s.encode()
    n = len(b)
    while i < n:
        c = b[i]
        if c == 0x25 and i + 2 < n:
            try:
                out.append(int(b[i + 1:i + 3].decode(), 16))
                i += 3
                continue
            except ValueError:
                pass
        out.append(c)
        i += 1
    try:
        return bytes(out).decode()
    except Exception:
        raise HttpError(400, "BAD_REQUEST", "URL is not UTF-8 after percent-decoding")


def split_target(target):
    # "/api/v5/clients?page=2&clientid=a%2Fb" -> ("/api/v5/clients", {"page": "2", "clientid": "a/b"})
    path, _, qs = target.partition("?")
    query = {}
    if qs:
        for item in qs.split("&"):
            if item:
                k, _, v = item.partition("=")
                query[unquote(k.replace("+", " "))] = unquote(v.replace("+", " "))
    return path, query


REASONS = {200: "OK", 204: "No Content", 304: "Not Modified", 400: "Bad Request", 401: "Unauthorized",
           403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed", 411: "Length Required",
           413: "Payload Too Large", 429: "Too Many Requests", 431: "Request Header Fields Too Large",
           500: "Internal Server Error", 501: "Not Implemented"}


def response_head(status, ctype, length, extra=(), keep_alive=True):
    lines = ["HTTP/1.1 %d %s" % (status, REASONS.get(status, "Status")),
             "Content-Length: %d" % length,
             "Cache-Control: no-store",
             "X-Content-Type-Options: nosniff",
             "Connection: %s" % ("keep-alive" if keep_alive else "close")]
    if ctype:
        lines.append("Content-Type: " + ctype)
    for k, v in extra:
        lines.append("%s: %s" % (k, v))
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# ---- time ------------------------------------------------------------------------------------

def rfc3339(ms):
    # Epoch milliseconds -> "2026-11-27T10:40:50.123+00:00", as EMQX writes connected_at.
    s, ms = divmod(int(ms), 1000)
    days, s = divmod(s, 86400)
    y, m, d = civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02d.%03d+00:00" % (y, m, d, s // 3600, s // 60 % 60, s % 60, ms)


# ---- administrators and tokens --------------------------------------------------------------

def hash_admin(password, salt, iterations):
    dk = getattr(hashlib, "pbkdf2_hmac", None)
    pw = password.encode()
    if dk is not None:
        out = dk("sha256", pw, salt.encode(), iterations)
    else:
        out = pwhash.pbkdf2_sha256(pw, salt.encode(), iterations)
    return binascii.hexlify(out).decode()


class Admins:
    # {username: {"salt": hex, "iterations": n, "hash": hex}}, kept as JSON in the admins file.
    def __init__(self, text, urandom, iterations=ITERATIONS):
        self.urandom = urandom
        self.iterations = iterations
        self.users = json.loads(text) if text else {}

    def set(self, username, password):
        salt = binascii.hexlify(self.urandom(16)).decode()
        self.users[username] = {"salt": salt, "iterations": self.iterations,
                                "hash": hash_admin(password, salt, self.iterations)}

    def check(self, username, password):
        u = self.users.get(username)
        if u is None:
            # Hash anyway so a wrong username takes as long as a wrong password.
            hash_admin(password, "00", self.iterations)
            return False
        return pwhash.equal(hash_admin(password, u["salt"], u["iterations"]), u["hash"])

    def dumps(self):
        return json.dumps(self.users)


class Tokens:
    # A token is hex(username "\n" expiry) "." hex(HMAC-SHA256). The key is random per start, and the
    # user's stored hash is mixed in, so a restart or a password change ends every session.
    def __init__(self, urandom, lifetime):
        self.key = urandom(32)
        self.lifetime = lifetime

    def _sig(self, payload, stamp):
        return binascii.hexlify(pwhash.hmac_sha256(self.key, payload + b"\n" + stamp.encode())).decode()

    def issue(self, username, stamp, now):
        payload = ("%s\n%d" % (username, int(now + self.lifetime))).encode()
        return binascii.hexlify(payload).decode() + "." + self._sig(payload, stamp)

    def check(self, token, stamps, now):
        # -> username; HttpError 401 when the token is not ours or has expired.
        head, _, sig = token.partition(".")
        try:
            payload = binascii.unhexlify(head)
            user, exp = payload.decode().split("\n")
            exp = int(exp)
        except Exception:
            raise HttpError(401, "BAD_TOKEN", "the token is not valid; log in again")
        stamp = stamps.get(user)
        if stamp is None or not pwhash.equal(self._sig(payload, stamp["hash"]), sig):
            raise HttpError(401, "BAD_TOKEN", "the token is not valid; log in again")
        if now >= exp:
            raise HttpError(401, "TOKEN_TIME_OUT", "the token has expired; log in again")
        return user


def _loopback(ip):
    return ip == "::1" or ip.startswith("127.") or ip.startswith("::ffff:127.")


class LoginLimit:
    # Failed logins per client address: after `tries` failures within `window` seconds that address
    # waits out the window. A global cap bounds guessing spread over many addresses, and the table
    # is bounded so a flood of addresses cannot grow it.
    def __init__(self, tries=5, window=60, global_tries=50, max_entries=256):
        self.tries = tries
        self.window = window
        self.global_tries = global_tries
        self.max_entries = max_entries
        self.fails = {}          # ip -> [count, window start]
        self.total = [0, 0]

    def wait(self, ip, now):
        # Seconds this address must still wait (0 when it may try).
        t = self.total
        if t[0] >= self.global_tries and now - t[1] < self.window and not _loopback(ip):
            # The overall cap is guessing spread over many addresses; it must not lock the
            # administrator out of a login on the gateway itself (its own limit still applies).
            return int(self.window - (now - t[1])) + 1
        f = self.fails.get(ip)
        if f is not None and f[0] >= self.tries and now - f[1] < self.window:
            return int(self.window - (now - f[1])) + 1
        return 0

    def failed(self, ip, now):
        t = self.total
        if now - t[1] >= self.window:
            t[0], t[1] = 0, now
        t[0] += 1
        f = self.fails.get(ip)
        if f is None or now - f[1] >= self.window:
            if f is None and len(self.fails) >= self.max_entries:
                for k in [k for k, v in self.fails.items() if now - v[1] >= self.window]:
                    del self.fails[k]
                if len(self.fails) >= self.max_entries:
                    self.fails.pop(next(iter(self.fails)))
            self.fails[ip] = [1, now]
        else:
            f[0] += 1

    def succeeded(self, ip):
        self.fails.pop(ip, None)


# ---- the JSON shapes -------------------------------------------------------------------------

def client_info(b, c):
    sess = c.session
    d = {
        "clientid": c.clientid, "username": c.username, "ip_address": c.peerhost, "port": c.peerport,
        "proto_name": c.proto_name, "proto_ver": c.version, "connected": True,
        "connected_at": rfc3339(c.connected_at), "keepalive": c.keepalive, "clean_start": c.clean_start,
        "expiry_interval": 0xFFFFFFFF if c.expiry is None else c.expiry,
        "listener": c.listener, "node": b.node,
        "subscriptions_cnt": len(sess.subs) if sess else 0,
        "inflight_cnt": len(sess.inflight) if sess else 0,
        "mqueue_len": len(sess.queue) if sess else 0,
    }
    if c.peer_cert is not None:
        d["cn"] = c.cert_cn
        d["dn"] = c.cert_dn
        from gatemq import certwatch
        not_after, serial = certwatch.info(c)
        d["cert_not_after"] = certwatch.iso(not_after) if not_after is not None else None
        d["cert_serial"] = certwatch.serial_text(serial)
    attrs = getattr(c, "client_attrs", None)
    if attrs is not None:
        d["client_attrs"] = attrs
    return d


_STATS = ("connections.count", "connections.max", "live_connections.count", "sessions.count",
          "subscriptions.count", "retained.count")
_METRICS = ("messages.received", "messages.sent", "messages.dropped")


def _pick(snap, names):
    return dict((k, snap[k]) for k in names)


def _int_arg(query, name, default, lo, hi):
    v = query.get(name)
    if v is None or v == "":
        return default
    try:
        n = int(v)
    except ValueError:
        n = None
    if n is None or n < lo or n > hi:
        raise HttpError(400, "BAD_REQUEST", "%s: expected an integer %d..%d, got %r" % (name, lo, hi, v))
    return n


def _body(body):
    try:
        v = json.loads(body) if body else None
    except Exception:
        raise HttpError(400, "BAD_REQUEST", "body: expected JSON")
    if type(v) is not dict:
        raise HttpError(400, "BAD_REQUEST", "body: expected a JSON object")
    return v


# The Overview's history (Api.record): 15 minutes, a sample every 2 s at most.
HISTORY_SPAN = 900
HISTORY_STEP = 2


class Raw:
    # An answer that is not JSON (the Prometheus text): the ports write data with this type.
    def __init__(self, ctype, data):
        self.ctype = ctype
        self.data = data


def _basic(value):
    # "Basic base64(user:password)" -> (user, password), or None.
    try:
        user, _, pw = binascii.a2b_base64(value[6:].strip()).decode().partition(":")
    except Exception:
        return None
    return user, pw


class Api:
    # broker: the running Broker. base_mqtt: the mqtt section of the config file without the
    # overlay, so the overlay holds exactly what the API changed. save_overlay(text) and
    # save_admins(text) write a file atomically (raise OSError on failure). listeners() returns
    # [(id, kind, name, lcfg, (host, port))] of the running MQTT listeners.
    def __init__(self, broker, dcfg, base_mqtt, admins_text, save_overlay, save_admins, urandom,
                 listeners, iterations=ITERATIONS):
        self.b = broker
        self.base_mqtt = base_mqtt
        self.save_overlay = save_overlay
        self.save_admins = save_admins
        self.listeners = listeners
        self.tokens = Tokens(urandom, dcfg["token_expired_time"])
        self.limit = LoginLimit()
        self.admins = Admins(admins_text, urandom, iterations)
        self.sample = None       # (time, received, sent, dropped) for the per-second rates
        self.rates = (0, 0, 0)
        self.created_admin = False
        # GET /api/v5/prometheus/stats: public unless prometheus.enable_basic_auth (the port sets
        # these from its config); read_file reads the server certificates for their expiry.
        self.metrics_auth = False
        self.metrics_read = None
        self.metrics_short = False
        # The Overview's charts: (time, connections, in/s, out/s, dropped/s) samples, at least
        # HISTORY_STEP seconds apart, over the last HISTORY_SPAN seconds (GET /monitor).
        self.history = []
        self.hist_prev = None
        self.reload_tls = None   # the port's reload of an ssl listener's files (reload_listener)
        if not self.admins.users:
            # The first administrator, from the config; later config changes do not reset it.
            self.admins.set(dcfg["default_username"], dcfg["default_password"])
            self.created_admin = True
            save_admins(self.admins.dumps())

    def handle(self, method, path, query, headers, body, peer_ip, now):
        # -> (status, JSON-able value or None, [(header, value)])
        try:
            return self._route(method, path, query, headers, body, peer_ip, now)
        except HttpError as e:
            extra = []
            if e.retry is not None:
                extra.append(("Retry-After", "%d" % e.retry))
            if e.status == 401:
                extra.append(("WWW-Authenticate", 'Bearer realm="gatemq"'))
            return e.status, {"code": e.code, "message": e.message}, extra

    def _route(self, method, path, query, headers, body, peer_ip, now):
        if not path.startswith(API):
            raise HttpError(404, "NOT_FOUND", "no such API path: %s" % path)
        parts = [unquote(p) for p in path[len(API):].split("/")]
        if parts == ["login"]:
            if method != "POST":
                raise HttpError(405, "METHOD_NOT_ALLOWED", "use POST /api/v5/login")
            return self.login(_body(body), peer_ip, now)
        if parts == ["prometheus", "stats"]:
            if method != "GET":
                raise HttpError(405, "METHOD_NOT_ALLOWED", "use GET /api/v5/prometheus/stats")
            if self.metrics_auth:
                self.metrics_login(headers, peer_ip, now)
            from gatemq import prometheus
            return 200, Raw(prometheus.CONTENT_TYPE, prometheus.render(
                self.b, self.listeners(), self.metrics_read, self.metrics_short)), []
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer ") or not auth[7:].strip():
            raise HttpError(401, "BAD_TOKEN", "log in with POST /api/v5/login and send "
                                              "Authorization: Bearer <token>")
        user = self.tokens.check(auth[7:].strip(), self.admins.users, now)
        head = parts[0]
        n = len(parts)
        if head == "configs" and n == 2 and parts[1] == "mqtt":
            if method == "GET":
                return 200, config.show("mqtt", self.b.mqtt), []
            if method == "PUT":
                return self.put_mqtt(_body(body))
        elif head == "clients" and n == 1 and method == "GET":
            return 200, self.clients(query), []
        elif head == "clients" and n == 2:
            c = self.find(parts[1])
            if method == "GET":
                return 200, client_info(self.b, c), []
            if method == "DELETE":
                self.b.kick(c, "dashboard: %s" % user)
                return 204, None, []
        elif n == 1 and method == "GET" and head in ("stats", "metrics"):
            v = _pick(self.b.snapshot(), _STATS if head == "stats" else _METRICS)
            if query.get("aggregate") == "true":
                return 200, v, []
            v["node"] = self.b.node
            return 200, [v], []
        elif head == "bridges" and n <= 2 and method == "GET":
            # EMQX 5.0-5.3's bridges API: the list, or one by its id (mqtt:<name>) or name.
            bs = self.b.bridges or []
            if n == 1:
                return 200, [x.info() for x in bs], []
            for x in bs:
                if parts[1] in (x.id, x.name):
                    return 200, x.info(), []
            raise HttpError(404, "NOT_FOUND", "no such bridge: %s" % parts[1])
        elif head == "listeners" and n == 1 and method == "GET":
            return 200, self.listener_list(), []
        elif head == "listeners" and n == 3 and parts[2] == "reload" and method == "POST":
            return self.reload_listener(parts[1], user)
        elif head == "monitor" and n == 1 and method == "GET":
            return 200, self.monitor_history(now, _int_arg(query, "latest", HISTORY_SPAN, 1, 86400)), []
        elif head == "monitor_current" and n == 1 and method == "GET":
            return 200, self.monitor(now), []
        elif head == "users" and n == 3 and parts[2] == "change_pwd" and method == "POST":
            return self.change_pwd(user, parts[1], _body(body))
        else:
            raise HttpError(404, "NOT_FOUND", "no such API path: %s %s" % (method, path))
        raise HttpError(405, "METHOD_NOT_ALLOWED", "%s is not allowed on %s" % (method, path))

    # ---- endpoints ----

    def login(self, body, ip, now):
        wait = self.limit.wait(ip, now)
        if wait:
            raise HttpError(429, "TOO_MANY_REQUESTS", "too many failed logins; try again in %ds" % wait, wait)
        user = body.get("username")
        pw = body.get("password")
        if type(user) is not str or type(pw) is not str or not self.admins.check(user, pw):
            self.limit.failed(ip, now)
            self.b.log("warning", "dashboard: failed login for %r from %s" % (user, ip))
            raise HttpError(401, "BAD_USERNAME_OR_PWD", "wrong username or password")
        self.limit.succeeded(ip)
        self.b.log("info", "dashboard: %s logged in from %s" % (user, ip))
        return 200, {"token": self.tokens.issue(user, self.admins.users[user]["hash"], now),
                     "version": __version__, "role": "administrator"}, []

    def metrics_login(self, headers, ip, now):
        # prometheus.enable_basic_auth = true: an administrator's username and password (HTTP
        # Basic, what a Prometheus scrape config holds) or a login token (Bearer).
        auth = headers.get("authorization", "")
        if auth.startswith("Bearer "):
            self.tokens.check(auth[7:].strip(), self.admins.users, now)
            return
        wait = self.limit.wait(ip, now)
        if wait:
            raise HttpError(429, "TOO_MANY_REQUESTS", "too many failed logins; try again in %ds" % wait, wait)
        up = _basic(auth) if auth.startswith("Basic ") else None
        if up is None or not self.admins.check(up[0], up[1]):
            if up is not None:
                self.limit.failed(ip, now)
                self.b.log("warning", "prometheus: failed login for %r from %s" % (up[0], ip))
            raise HttpError(401, "BAD_USERNAME_OR_PWD", "prometheus.enable_basic_auth = true: send an "
                            "administrator's username and password (Basic) or a token (Bearer)")
        self.limit.succeeded(ip)

    def change_pwd(self, user, target, body):
        if target != user:
            raise HttpError(400, "BAD_REQUEST", "an administrator changes only their own password")
        old, new = body.get("old_pwd"), body.get("new_pwd")
        if type(old) is not str or not self.admins.check(user, old):
            raise HttpError(400, "BAD_REQUEST", "old_pwd: wrong password")
        if type(new) is not str or len(new) < MIN_PASSWORD:
            raise HttpError(400, "BAD_REQUEST", "new_pwd: expected at least %d characters" % MIN_PASSWORD)
        saved = dict(self.admins.users[user])
        self.admins.set(user, new)
        try:
            self.save_admins(self.admins.dumps())
        except OSError as e:
            self.admins.users[user] = saved
            raise HttpError(500, "INTERNAL_ERROR", "could not save the password: %s" % (e,))
        return 204, None, []

    def put_mqtt(self, body):
        try:
            new = config.check("mqtt", body, self.b.mqtt)
        except ConfigError as e:
            path = getattr(e, "path", None)
            if path is None:
                raise HttpError(400, "BAD_REQUEST", str(e))
            raise HttpError(400, "BAD_REQUEST", "%s: %s" % (path, e.reason))
        # The overlay holds what differs from the config file, so editing the file still counts
        # for every key the API has left alone.
        diff = {}
        for k, v in new.items():
            if self.base_mqtt.get(k) != v:
                diff[k] = v
        try:
            self.save_overlay(config.dumps("mqtt", diff))
        except OSError as e:
            raise HttpError(500, "INTERNAL_ERROR", "could not save the overlay file: %s" % (e,))
        self.b.reconfigure_mqtt(new)
        changed = [k for k in body if k in new]
        self.b.log("info", "dashboard: mqtt settings changed (%s); they apply to new connections"
                   % ", ".join(changed))
        return 200, config.show("mqtt", new), []

    def find(self, clientid):
        c = self.b.client(clientid)
        if c is None:
            raise HttpError(404, "CLIENTID_NOT_FOUND", "no connected client with client id %r" % clientid)
        return c

    def clients(self, query):
        page = _int_arg(query, "page", 1, 1, 1 << 30)
        limit = _int_arg(query, "limit", 100, 1, 10000)
        cid, user = query.get("clientid"), query.get("username")
        like_c, like_u = query.get("like_clientid"), query.get("like_username")
        rows = []
        for c in self.b.clients():
            if cid is not None and c.clientid != cid:
                continue
            if user is not None and c.username != user:
                continue
            if like_c and like_c not in c.clientid:
                continue
            if like_u and (c.username is None or like_u not in c.username):
                continue
            rows.append(c)
        rows.sort(key=lambda c: (c.connected_at, c.clientid))
        start = (page - 1) * limit
        data = [client_info(self.b, c) for c in rows[start:start + limit]]
        return {"data": data, "meta": {"page": page, "limit": limit, "count": len(rows),
                                       "hasnext": start + limit < len(rows)}}

    def listener_list(self):
        out = []
        for lid, kind, name, lc, bound in self.listeners():
            n = self.b.listener_connections(lid)
            host, port = bound
            d = {"id": lid, "type": kind, "name": name, "enable": True, "running": True,
                 "bind": ("[%s]:%d" if ":" in host else "%s:%d") % (host, port),
                 "max_connections": lc.get("max_connections") or "infinity",
                 "current_connections": n,
                 "status": {"running": True, "current_connections": n}}
            if kind in ("ssl", "wss"):
                d["verify"] = lc["ssl_options"].get("verify")
            if kind in ("ws", "wss"):
                d["websocket"] = {"mqtt_path": lc["websocket"]["mqtt_path"]}
            so = lc.get("ssl_options")
            if so and so.get("certfile") and self.metrics_read is not None:
                # The server certificate's notAfter, for the Listeners page.
                try:
                    from gatemq import prometheus
                    d["server_cert_not_after"] = rfc3339(1000 * prometheus.cert_not_after(
                        self.metrics_read(so["certfile"])))
                except Exception:
                    pass
            out.append(d)
        return out

    def reload_listener(self, lid, user):
        # Its certfile, keyfile, cacertfile and crlfile again; a failed reload keeps the old ones
        # (400 with why). The port sets reload_listener(id) -> None or why; KeyError: no such one.
        f = self.reload_tls
        try:
            if f is None:
                raise KeyError(lid)
            why = f(lid)
        except KeyError:
            raise HttpError(404, "NOT_FOUND", "no ssl listener %r (ids such as ssl:default)" % lid)
        if why:
            raise HttpError(400, "BAD_REQUEST", "listener %s: reload failed, the previous files stay in "
                                                "force: %s" % (lid, why))
        self.b.log("info", "dashboard: %s reloaded listener %s" % (user, lid))
        return 200, {"id": lid, "reloaded": True}, []

    def record(self, now):
        # One history sample (the CPython port calls this every HISTORY_STEP seconds; GET
        # /monitor does too, so a board without the timer still fills it while it is watched).
        p = self.hist_prev
        if p is not None and now - p[0] < HISTORY_STEP:
            return
        st = self.b.snapshot()
        cur = (now, st["messages.received"], st["messages.sent"], st["messages.dropped"])
        self.hist_prev = cur
        if p is None:
            return
        dt = now - p[0]
        h = self.history
        h.append((int(now * 1000), st["live_connections.count"], round((cur[1] - p[1]) / dt, 1),
                  round((cur[2] - p[2]) / dt, 1), round((cur[3] - p[3]) / dt, 1)))
        while h and h[0][0] < (now - HISTORY_SPAN) * 1000:
            h.pop(0)

    def monitor_history(self, now, latest):
        # EMQX's GET /monitor?latest=<seconds>: samples, oldest first.
        self.record(now)
        since = (now - latest) * 1000
        return [{"time_stamp": t, "connections": c, "received_msg_rate": i, "sent_msg_rate": o,
                 "dropped_msg_rate": d} for t, c, i, o, d in self.history if t >= since]

    def monitor(self, now):
        # EMQX's monitor_current: gauges now, message rates per second since the last sample.
        st = self.b.snapshot()
        cur = (now, st["messages.received"], st["messages.sent"], st["messages.dropped"])
        p = self.sample
        if p is None:
            self.sample = cur
        elif now - p[0] >= 1:
            dt = now - p[0]
            self.rates = tuple(round((cur[i] - p[i]) / dt, 1) for i in (1, 2, 3))
            self.sample = cur
        return {"connections": st["connections.count"], "live_connections": st["live_connections.count"],
                "sessions": st["sessions.count"], "subscriptions": st["subscriptions.count"],
                "retained_msg_count": st["retained.count"], "received_msg_rate": self.rates[0],
                "sent_msg_rate": self.rates[1], "dropped_msg_rate": self.rates[2],
                "node": self.b.node}
