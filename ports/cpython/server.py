# The asyncio side of the CPython port: listeners, one Protocol per connection, timers, shutdown.
# asyncio.Protocol (data_received) avoids a coroutine per read; every flush writes each touched
# connection's output in one call.
import asyncio
import os
import ssl
import time

from gatemq.broker import Broker
from gatemq.cpython import tlsctx


class Client(asyncio.Protocol):
    __slots__ = ("srv", "listener", "transport", "conn")

    def __init__(self, srv, listener):
        self.srv = srv
        self.listener = listener
        self.transport = None
        self.conn = None

    def connection_made(self, transport):
        self.transport = transport
        srv = self.srv
        peer = transport.get_extra_info("peername") or ("", 0)
        der = None
        sslobj = transport.get_extra_info("ssl_object")
        if sslobj is not None:
            der = sslobj.getpeercert(binary_form=True)
            why = srv.tls[self.listener].check_leaf(der)
            if why:
                srv.log("warning", "listener %s: TLS client %s:%s rejected: %s" % (self.listener, peer[0], peer[1], why))
                transport.abort()
                return
        self.conn = srv.broker.open(self, (peer[0], peer[1]), self.listener, der)
        if self.conn is None:
            transport.abort()

    def data_received(self, data):
        c = self.conn
        if c is not None:
            c.feed(data)
            self.srv.flush()

    def eof_received(self):
        return False

    def connection_lost(self, exc):
        c = self.conn
        if c is not None:
            self.conn = None
            c.lost()
            self.srv.flush()


class Server:
    def __init__(self, cfg, log, read_file):
        self.cfg = cfg
        self.log = log
        self.broker = Broker(cfg, time.monotonic, time.time, log, read_file)
        self.servers = []
        self.tls = {}
        self.stopping = None
        self._timer = None

    def flush(self):
        for c in self.broker.flush():
            data = c.take()
            tr = c.handle.transport
            if data:
                tr.write(data)
            if c.closing:
                c.handle.conn = None
                tr.close()

    def _tick(self):
        delay = self.broker.tick()
        self.flush()
        for t in self.tls.values():
            t.maybe_reload()
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    async def start(self):
        loop = asyncio.get_running_loop()
        for kind in ("tcp", "ssl"):
            for name, lc in self.cfg["listeners"][kind].items():
                if not lc.get("enable", True):
                    continue
                lname = "%s:%s" % (kind, name)
                host, port = lc["bind"]
                kw = {}
                if kind == "ssl":
                    t = tlsctx.ListenerTLS(lname, lc["ssl_options"], self.log)
                    self.tls[lname] = t
                    kw["ssl"] = t.context
                    kw["ssl_handshake_timeout"] = lc["ssl_options"]["handshake_timeout"]
                srv = await loop.create_server(lambda ln=lname: Client(self, ln), host or None, port,
                                               reuse_address=True, backlog=1024, **kw)
                self.servers.append(srv)
                for s in srv.sockets:
                    a = s.getsockname()
                    self.log("info", "listener %s listening on %s:%d" % (lname, a[0], a[1]))
        loop.set_exception_handler(self._loop_error)
        self._timer = loop.call_later(0.5, self._tick)

    def _loop_error(self, loop, ctx):
        # TLS handshake failures arrive here; log them with the peer and the reason, briefly.
        exc = ctx.get("exception")
        tr = ctx.get("transport")
        peer = None
        if tr is not None:
            try:
                peer = tr.get_extra_info("peername")
            except Exception:
                peer = None
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
            self.log("warning", "TLS handshake with %s failed: %s" % (
                "%s:%s" % peer[:2] if peer else "a client", tlsctx.describe(exc)))
            return
        self.log("error", "event loop: %s %r" % (ctx.get("message"), exc))

    async def stop(self):
        for s in self.servers:
            s.close()
        self.broker.shutdown()
        self.flush()
        if self._timer:
            self._timer.cancel()
        # Give the transports a moment to write the DISCONNECTs.
        await asyncio.sleep(0.05)
        for s in self.servers:
            try:
                await asyncio.wait_for(s.wait_closed(), 1.0)
            except Exception:
                pass


def make_reader(base_dir):
    def read_file(path):
        if not os.path.isabs(path):
            path = os.path.join(base_dir, path)
        with open(path, "rb") as f:
            return f.read()
    return read_file
