# The management API on MicroPython: the JSON endpoints of gatemq.admin (login, configs/mqtt,
# clients, stats, metrics, listeners) over a small asyncio HTTP/1.0-style handler, one request per
# connection, so a headless gateway can be reconfigured over the network. No web page: the page is
# the CPython port's (or any EMQX API client).
#
# Wiring, from the port (ports/micropython):
#     from . import dashboard
#     cfg, base_mqtt = dashboard.prepare(cfg, base, read_text)   # after config.load
#     ... srv = server.Server(cfg, ...); srv.start()
#     if cfg["dashboard"]["enable"]:
#         dash = dashboard.Dashboard(srv, cfg, base, base_mqtt)  # inside the running loop:
#         dash.start()                                          # binds, then serves in a task
import asyncio
import gc
import json
import os

from gatemq import admin, http

from . import addr
from .link import accept_loop, unqueue
from .files import dirname, exists, write

TIMEOUT = 10  # seconds a client has to send its request
MAX_CLIENTS = 2  # requests served at once; more wait in the backlog
# PBKDF2 rounds for a new admin password: pure-Python HMAC on a board is slow (a login hashes once).
ITERATIONS = 1024


def prepare(cfg, base, read_text):
    # -> (cfg with the overlay file applied, the mqtt section of the file alone).
    from gatemq import config
    base_mqtt = cfg["mqtt"]
    path = cfg["dashboard"]["overlay_file"]  # relative to the config's folder already
    if exists(path):
        cfg = config.merge(cfg, read_text(path), path)
    return cfg, base_mqtt


def _read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _heap_short():
    gc.collect()
    return gc.mem_free() < 65536


class Dashboard:
    def __init__(self, srv, cfg, base, base_mqtt, iterations=ITERATIONS):
        self.srv = srv
        self.dcfg = cfg["dashboard"]
        self.overlay = self.dcfg["overlay_file"]
        d = dirname(self.overlay)
        self.admins_path = (d + "/" if d else "") + "admins.json"
        self.base_mqtt = base_mqtt
        self.iterations = iterations
        self.prom_auth = cfg["prometheus"]["enable_basic_auth"]
        self.api = None
        self.sock = None
        self.busy = 0

    def _listeners(self):
        return [(l.id, l.kind, l.name, l.lc, (l.bind[0], l.port)) for l in self.srv.listeners]

    def start(self):
        log = self.srv.log
        lc = self.dcfg["listeners"]["http"]
        if not lc["enable"]:
            log("warning", "dashboard: listeners.http is disabled and https is CPython-only; the API is off")
            return False
        text = None
        if exists(self.admins_path):
            with open(self.admins_path) as f:
                text = f.read()
        try:
            self.api = admin.Api(self.srv.broker, self.dcfg, self.base_mqtt, text,
                                 lambda t: write(self.overlay, t),
                                 lambda t: write(self.admins_path, t),
                                 os.urandom, self._listeners, self.iterations)
            self.api.metrics_auth = self.prom_auth
            self.api.metrics_read = _read_bytes
            # A board short of heap answers the gauges and message counters only.
            self.api.metrics_short = _heap_short
            self.api.reload_tls = self.srv.reload_listener
        except OSError as e:
            log("error", "dashboard: cannot write %s (%s); the API is off" % (self.admins_path, e))
            return False
        host, port = lc["bind"]
        try:
            port = self._listen(host, port)
        except OSError as e:
            log("error", "listener http:dashboard: cannot listen on %s: %s" % (addr.show(host, port), e))
            return False
        log("info", "listener http:dashboard listening on %s" % addr.show(host, port))
        asyncio.create_task(accept_loop(self, self.sock, None))
        return True

    def _listen(self, host, port):
        self.sock, port = addr.listen(host, port, 2)
        return port

    # -- accepting (link.accept_loop calls wait, admit and refused) ---------------------------

    def wait(self, _, e):
        # Past MAX_CLIENTS new requests wait in the backlog; after a failed accept, a short pause.
        if e is None:
            return 20 if self.busy >= MAX_CLIENTS else 0
        return 50

    def admit(self, _, s, sa):
        s.setblocking(False)
        self.busy += 1
        try:
            asyncio.create_task(self._serve(s, addr.peer(sa)))
        except MemoryError:
            self.busy -= 1
            raise

    def refused(self, _, s):
        self.srv.oom("listener http:dashboard: out of memory; request refused")

    async def _serve(self, s, peer):
        st = None
        try:
            st = asyncio.StreamReader(s)  # MicroPython: one Stream class reads and writes
            try:
                status, value, extra = await asyncio.wait_for(self._request(st, peer), TIMEOUT)
            except (admin.HttpError, http.HttpError) as e:
                status, value, extra = e.status, {"code": e.code, "message": e.message}, []
            if isinstance(value, admin.Raw):    # the Prometheus text
                data = value.data.encode()
                ctype = value.ctype
            else:
                data = b"" if value is None else json.dumps(value).encode()
                ctype = "application/json" if data else None
            value = None
            st.write(admin.response_head(status, ctype, len(data), extra, False))
            if data:
                st.write(data)
            await st.drain()
        except Exception as e:
            # Timeouts, resets, out of memory: drop this request, keep serving.
            try:
                self.srv.log("debug", "dashboard: %s:%d: %r" % (peer[0], peer[1], e))
            except MemoryError:
                pass
        finally:
            self.busy -= 1
            try:
                if st is None:
                    s.close()
                else:
                    st.close()
                    await st.wait_closed()
            except Exception:
                pass
            unqueue(s)
            gc.collect()

    async def _request(self, st, peer):
        # One request, framed by gatemq.http as on the CPython port: the same head limit,
        # Content-Length rules, refusal of chunked bodies and Host check.
        rr = http.RequestReader()
        while True:
            req = rr.next()
            if req is not None and not req.expect_continue:
                break
            if req is not None:
                st.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            data = await st.read(512)
            if not data:
                raise OSError("closed before the request ended")
            rr.feed(data)
        http.check_host(req, self.dcfg["listeners"]["http"]["bind"][0], self.dcfg["allowed_hosts"])
        path, query = admin.split_target(req.target)
        r = self.api.handle(req.method, path, query, req.headers, req.body, peer[0], self.srv.broker.wallclock())
        # A kick queues a DISCONNECT: hand it to the socket now.
        self.srv.pump()
        return r
