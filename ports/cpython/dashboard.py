# The dashboard and the HTTP management API on the CPython port: a small HTTP/1.1 server on
# asyncio streams (standard library only) in front of gatemq.admin.Api, plus the static page
# (dashboard_static/: plain HTML, JS and CSS, no build step).
#
# The API's changes to the mqtt section go to dashboard.overlay_file, which prepare() applies on
# top of the config at start-up; the administrators' hashed passwords live beside it in
# admins.json.
import asyncio
import json
import os
import ssl
import time

from gatemq import admin, config, http

from . import tlsctx
from .files import write as write_file  # atomic: temp file, fsync, rename, folder fsync

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "dashboard_static")
STATIC = {"/": ("index.html", "text/html; charset=utf-8"),
          "/index.html": ("index.html", "text/html; charset=utf-8"),
          "/app.js": ("app.js", "text/javascript; charset=utf-8"),
          "/style.css": ("style.css", "text/css; charset=utf-8")}
PAGE_HEADERS = [("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'"),
                ("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]
IDLE = 30  # seconds an idle keep-alive connection (or a request still arriving) stays open


def prepare(cfg, base):
    # -> (cfg with the overlay file applied, Dashboard or None). dashboard.overlay_file is
    # relative to the config file's folder already (gatemq.config.resolve_path).
    d = cfg["dashboard"]
    overlay = d["overlay_file"]
    base_mqtt = cfg["mqtt"]
    if os.path.exists(overlay):
        with open(overlay, "rb") as f:
            cfg = config.merge(cfg, config.decode(f.read(), overlay), overlay)
    if not d["enable"]:
        return cfg, None
    return cfg, Dashboard(cfg, base, base_mqtt, overlay)


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _ssl_context(o):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    tlsctx.load_chain(ctx, o["certfile"], o["keyfile"], o.get("password"))
    if o.get("cacertfile"):
        tlsctx.load_cas(ctx, o["cacertfile"])
    if o.get("verify") == "verify_peer":
        ctx.verify_mode = ssl.CERT_REQUIRED if o.get("fail_if_no_peer_cert") else ssl.CERT_OPTIONAL
    return ctx


class Dashboard:
    def __init__(self, cfg, base, base_mqtt, overlay):
        self.cfg = cfg
        self.dcfg = cfg["dashboard"]
        self.base = base
        self.base_mqtt = base_mqtt
        self.overlay = overlay
        self.admins_path = os.path.join(os.path.dirname(overlay), "admins.json")
        self.srv = None
        self.api = None
        self.servers = []
        self.static = {}
        self.conns = set()

    def _save_admins(self, text):
        write_file(self.admins_path, text.encode(), private=True)

    def _listeners(self):
        # The server's listeners in the order Server.start() opened them, with the bound address.
        out = []
        socks = iter(self.srv.servers)
        for kind in ("tcp", "ssl", "ws", "wss"):
            for name, lc in self.cfg["listeners"].get(kind, {}).items():
                if not lc.get("enable", True):
                    continue
                s = next(socks, None)
                bound = s.sockets[0].getsockname()[:2] if s is not None and s.sockets else lc["bind"]
                out.append(("%s:%s" % (kind, name), kind, name, lc, bound))
        return out

    async def start(self, srv):
        self.srv = srv
        log = srv.log
        text = None
        if os.path.exists(self.admins_path):
            with open(self.admins_path, encoding="utf-8") as f:
                text = f.read()
        try:
            self.api = admin.Api(srv.broker, self.dcfg, self.base_mqtt, text, self._save, self._save_admins,
                                 os.urandom, self._listeners)
            self.api.metrics_auth = self.cfg["prometheus"]["enable_basic_auth"]
            self.api.metrics_read = _read_bytes
            self._sample()
            self.api.reload_tls = srv.reload_listener
        except OSError as e:
            log("error", "dashboard: cannot write %s (%s); the dashboard is off. Point "
                         "dashboard.overlay_file to a writable folder" % (self.admins_path, e))
            return
        if self.api.created_admin:
            log("info", "dashboard: administrator %r created from dashboard.default_username; "
                        "its hashed password is in %s" % (self.dcfg["default_username"], self.admins_path))
        for name, ctype in set(STATIC.values()):
            with open(os.path.join(STATIC_DIR, name), "rb") as f:
                self.static[name] = f.read()
        ls = self.dcfg["listeners"]
        for kind in ("http", "https"):
            lc = ls.get(kind) or {}
            if not lc.get("enable"):
                continue
            host, port = lc["bind"]
            try:
                ctx = _ssl_context(lc["ssl_options"]) if kind == "https" else None
                s = await asyncio.start_server(self._serving(host), host or None, port, ssl=ctx,
                                               reuse_address=True)
            except (OSError, ssl.SSLError) as e:
                # The broker's job is MQTT: a dashboard that cannot listen must not stop it.
                log("error", "listener %s:dashboard: cannot listen on %s:%d: %s" % (kind, host, port, e))
                continue
            self.servers.append(s)
            for sock in s.sockets:
                a = sock.getsockname()
                log("info", "listener %s:dashboard listening on %s:%d" % (kind, a[0], a[1]))

    def _sample(self):
        # The Overview's charts: a history sample every 5 s (gatemq.admin.Api.record).
        self.api.record(time.time())
        self.sampler = asyncio.get_running_loop().call_later(5, self._sample)

    def _save(self, text):
        write_file(self.overlay, text.encode())

    async def stop(self):
        if getattr(self, "sampler", None) is not None:
            self.sampler.cancel()
        for s in self.servers:
            s.close()
        for w in list(self.conns):
            w.close()
        for s in self.servers:
            try:
                await asyncio.wait_for(s.wait_closed(), 1.0)
            except Exception:
                pass

    def _serving(self, bind_host):
        async def client(reader, writer):
            await self._client(reader, writer, bind_host)
        return client

    async def _client(self, reader, writer, bind_host):
        # Requests framed by gatemq.http (the MicroPython port's too): the same head limit,
        # Content-Length rules and refusal of chunked bodies on both ports.
        self.conns.add(writer)
        peer = writer.get_extra_info("peername") or ("", 0)
        rr = http.RequestReader()
        try:
            while True:
                try:
                    req = rr.next()
                    if req is not None:
                        http.check_host(req, bind_host, self.dcfg["allowed_hosts"])
                except http.HttpError as e:
                    await self._send(writer, e.status, {"code": e.code, "message": e.message}, [], False)
                    return
                if req is None or req.expect_continue:
                    if req is not None:
                        # curl asks before sending a larger body; answering saves it a second.
                        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    try:
                        data = await asyncio.wait_for(reader.read(65536), IDLE)
                    except (asyncio.TimeoutError, ConnectionError):
                        return  # idle, or a request (its body, say) that never arrived
                    if not data:
                        return
                    rr.feed(data)
                    continue
                if not await self._request(writer, req, peer):
                    return
        except ConnectionError:
            pass
        finally:
            self.conns.discard(writer)
            writer.close()

    async def _request(self, writer, req, peer):
        # -> whether to keep the connection open for another request.
        method, headers, body, keep = req.method, req.headers, req.body, req.keep_alive
        path, query = admin.split_target(req.target)
        if path.startswith("/api/"):
            status, value, extra = self.api.handle(method, path, query, headers, body, peer[0], time.time())
            # A kick queues a DISCONNECT: write it now.
            self.srv.flush()
            await self._send(writer, status, value, extra, keep)
            return keep
        page = STATIC.get(path)
        if page is None or method not in ("GET", "HEAD"):
            await self._send(writer, 404, {"code": "NOT_FOUND", "message": "no such page: %s" % path}, [], keep)
            return keep
        data = self.static[page[0]]
        writer.write(admin.response_head(200, page[1], len(data), PAGE_HEADERS, keep))
        if method == "GET":
            writer.write(data)
        await writer.drain()
        return keep

    async def _send(self, writer, status, value, extra, keep):
        if isinstance(value, admin.Raw):    # the Prometheus text
            data = value.data.encode()
            writer.write(admin.response_head(status, value.ctype, len(data), extra, keep))
            writer.write(data)
            await writer.drain()
            return
        data = b"" if value is None else json.dumps(value).encode()
        writer.write(admin.response_head(status, "application/json" if data else None, len(data), extra, keep))
        writer.write(data)
        await writer.drain()
