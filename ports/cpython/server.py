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
        peer = transport.get_extra_info("peername") or ("", 0)
        self.conn = self.srv.broker.open(self, (peer[0], peer[1]), self.listener, None)
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


class TLSClient(Client):
    # An ssl listener's connection: accepted as TCP, paused so no ClientHello byte is read by
    # anyone but the TLS layer, and upgraded by ListenerTLS.handshake in a task, which logs every
    # refusal. Only after the handshake and the broker's certificate checks does it reach the broker.
    __slots__ = ("early", "gone")

    def __init__(self, srv, listener):
        Client.__init__(self, srv, listener)
        self.early = None
        self.gone = False

    def connection_made(self, transport):
        if self.early is not None or self.conn is not None:
            return
        transport.pause_reading()
        self.early = []
        self.srv.spawn(self._upgrade(transport))

    async def _upgrade(self, raw):
        srv = self.srv
        peer = raw.get_extra_info("peername") or ("", 0)
        got = await srv.tls[self.listener].handshake(asyncio.get_running_loop(), raw, self, peer)
        if got is None:
            self.early = None
            return
        tr, der = got
        self.transport = tr
        if self.gone:
            # The client hung up between the handshake and this task's turn.
            self.early = None
            return
        self.conn = srv.broker.open(self, (peer[0], peer[1]), self.listener, der)
        early, self.early = self.early, None
        if self.conn is None:
            tr.abort()
            return
        # sslproto delivers the first application bytes before this task resumes.
        for data in early:
            self.conn.feed(data)
        if early:
            srv.flush()

    def data_received(self, data):
        if self.early is not None:
            self.early.append(data)
            return
        Client.data_received(self, data)

    def connection_lost(self, exc):
        self.gone = True
        Client.connection_lost(self, exc)


class Server:
    def __init__(self, cfg, log, read_file):
        self.cfg = cfg
        self.log = log
        self.broker = Broker(cfg, time.monotonic, time.time, log, read_file)
        self.servers = []
        self.tls = {}
        self.stopping = None
        self._timer = None
        self._tasks = set()

    def spawn(self, coro):
        # Keeps a reference: the loop holds tasks only weakly.
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

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
                proto = Client
                if kind == "ssl":
                    self.tls[lname] = tlsctx.ListenerTLS(lname, lc["ssl_options"], self.log)
                    proto = TLSClient
                srv = await loop.create_server(lambda ln=lname, p=proto: p(self, ln), host or None, port,
                                               reuse_address=True, backlog=1024)
                self.servers.append(srv)
                for s in srv.sockets:
                    a = s.getsockname()
                    self.log("info", "listener %s listening on %s:%d" % (lname, a[0], a[1]))
        loop.set_exception_handler(self._loop_error)
        self._timer = loop.call_later(0.5, self._tick)

    def _loop_error(self, loop, ctx):
        # Handshakes are logged by ListenerTLS.handshake; TLS errors later in a connection may arrive
        # here. Log them with the peer and the reason, briefly.
        exc = ctx.get("exception")
        tr = ctx.get("transport")
        peer = None
        if tr is not None:
            try:
                peer = tr.get_extra_info("peername")
            except Exception:
                peer = None
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
            self.log("warning", "TLS with %s failed: %s (%s)" % (
                ("%s:%s" % peer[:2]) if peer else "a client",) + tlsctx.describe(exc))
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
