# The asyncio side of the CPython port: listeners, one Protocol per connection, timers, shutdown.
# asyncio.Protocol (data_received) avoids a coroutine per read; every flush writes each touched
# connection's output in one call.
import asyncio
import os
import ssl
import time

from gatemq.broker import Broker
from gatemq.cpython import tlsctx

# The most plaintext one TLS record holds.
_RECORD = 16384


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
    # An ssl listener's connection, with our own TLS layer: an SSLObject over two memory BIOs,
    # driven from data_received. asyncio's start_tls/SSLProtocol would add a task, a second
    # transport and a 17-256 KB read buffer to every connection, and its server-side TLS drops
    # failed handshakes silently; here every refusal is logged with its reason and the peer. The
    # broker hears of the connection only after the handshake and the broker's certificate checks,
    # so no MQTT byte is read before them. Server.flush writes plaintext to `transport`, which is
    # this object: write() encrypts into the raw TCP transport.
    __slots__ = ("raw", "sslobj", "inc", "out", "timer", "peer")

    def __init__(self, srv, listener):
        Client.__init__(self, srv, listener)
        self.raw = self.sslobj = self.inc = self.out = self.timer = self.peer = None

    # A property rather than a slot holding self: no reference cycle, so a closed connection is
    # freed at once rather than by the cyclic collector.
    @property
    def transport(self):
        return self

    @transport.setter
    def transport(self, value):
        pass

    def connection_made(self, raw):
        lt = self.srv.tls[self.listener]
        self.raw = raw
        self.peer = raw.get_extra_info("peername") or ("", 0)
        self.inc = ssl.MemoryBIO()
        self.out = ssl.MemoryBIO()
        self.sslobj = lt.context.wrap_bio(self.inc, self.out, server_side=True)
        self.timer = asyncio.get_running_loop().call_later(lt.timeout, self._timed_out)

    def _refuse(self, reason, detail):
        self.srv.tls[self.listener].refuse(self.peer, reason, detail)
        self._drop()

    def _drop(self):
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.sslobj = self.inc = self.out = None
        self.raw.abort()

    def _timed_out(self):
        self.timer = None
        if self.sslobj is not None:
            self._refuse("handshake_timeout", "no TLS handshake within %gs" % self.srv.tls[self.listener].timeout)

    def _send(self):
        out = self.out
        if out is not None and out.pending:
            self.raw.write(out.read())

    def data_received(self, data):
        s = self.sslobj
        if s is None:
            return
        self.inc.write(data)
        if self.timer is not None:
            try:
                s.do_handshake()
            except ssl.SSLWantReadError:
                self._send()
                return
            except Exception as e:
                # The alert OpenSSL queued tells the client why.
                self._send()
                self._refuse(*tlsctx.describe(e))
                return
            self._send()
            if not self._accept():
                return
        self._read()

    def _accept(self):
        # The handshake is done: the broker's own checks on the leaf, then the broker.
        self.timer.cancel()
        self.timer = None
        lt = self.srv.tls[self.listener]
        der = self.sslobj.getpeercert(True)
        why = lt.check_leaf(der, self.sslobj)
        if why:
            self._refuse(*why)
            return False
        peer, self.peer = self.peer, None
        self.conn = self.srv.broker.open(self, (peer[0], peer[1]), self.listener, der)
        if self.conn is None:
            self._drop()
            return False
        return True

    def _read(self):
        s = self.sslobj
        c = self.conn
        try:
            while True:
                data = s.read(_RECORD)
                if not data:
                    break
                if c is not None:
                    c.feed(data)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLZeroReturnError:
            # The client's close_notify: the same as a TCP FIN.
            self.raw.close()
        except ssl.SSLError as e:
            peer = self.raw.get_extra_info("peername") or ("", 0)
            self.srv.log("warning", "TLS with %s:%s failed: %s (%s)" % ((peer[0], peer[1]) + tlsctx.describe(e)))
            self._drop()
        self._send()
        self.srv.flush()

    # The transport interface Server.flush uses.
    def write(self, data):
        s = self.sslobj
        if s is not None:
            s.write(data)
            self._send()

    def close(self):
        s = self.sslobj
        if s is not None:
            try:
                s.unwrap()          # queues our close_notify
            except (ssl.SSLError, ValueError):
                pass
            self._send()
            self.sslobj = self.inc = self.out = None
        self.raw.close()

    def abort(self):
        self._drop()

    def connection_lost(self, exc):
        if self.sslobj is not None and self.timer is not None:
            self._refuse("connection_lost", str(exc) if exc else "closed during the handshake")
        self.sslobj = self.inc = self.out = None
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
