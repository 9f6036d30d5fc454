# The asyncio side of the CPython port: listeners, one Protocol per connection, timers, shutdown.
# asyncio.Protocol (data_received) avoids a coroutine per read; every flush writes each touched
# connection's output in one call.
import asyncio
import errno
import os
import socket
import ssl
import time

from gatemq.broker import Broker
from gatemq.cpython import tlsctx
from gatemq.logline import Throttle, more

# The most plaintext one TLS record holds.
_RECORD = 16384
# Unsent bytes to one client past which its deliveries wait in its session queue (bounded by
# max_mqueue_len) rather than in our buffer: asyncio's default high-water mark.
_HIGH_WATER = 65536
# Seconds a closed connection may take to hand over its last output (DISCONNECT, queued
# messages) before its socket is dropped: a peer that stopped reading would hold it forever.
_CLOSE_GRACE = 5.0
# Seconds a connection the broker ended (a server DISCONNECT, a CONNACK refusal) keeps reading and
# discarding after its last packet and its FIN: closed at once, a socket with unread input resets
# the connection, and a client still writing (past Receive Maximum, say) lost the reason code.
_LINGER = 2.0


class Client(asyncio.Protocol):
    __slots__ = ("srv", "listener", "transport", "conn", "paused", "lst")

    def __init__(self, srv, listener, lst=None):
        self.srv = srv
        self.listener = listener
        self.lst = lst  # the Listener, which counts TLS and WebSocket handshakes in progress
        self.transport = None
        self.conn = None
        self.paused = False     # not read from: the core's flow control paused it (conn.paused)

    def connection_made(self, transport):
        self.transport = transport
        peer = transport.get_extra_info("peername") or ("", 0)
        self.conn = self.open((peer[0], peer[1]), None)
        if self.conn is None:
            transport.abort()

    def open(self, peer, der):
        # The broker connection this socket feeds (wsglue puts the WebSocket framing between).
        return self.srv.broker.open(self, peer, self.listener, der)

    def data_received(self, data):
        c = self.conn
        if c is not None:
            c.feed(data)
            self.srv.flush()

    def eof_received(self):
        return False

    # The transport's buffer passed its high-water mark: a client that reads slower than it is
    # sent to. Its deliveries then wait in its session queue, and its own packets in the kernel
    # (what it sends would only add acknowledgements to the pile). Without this a subscriber, or
    # a QoS 1 publisher, that never reads grows the broker without bound.
    def pause_writing(self):
        c = self.conn
        if c is not None:
            c.set_congested(True)
            self.transport.pause_reading()

    def resume_writing(self):
        c = self.conn
        if c is not None:
            if not self.paused:
                self.transport.resume_reading()
            c.set_congested(False)
            self.srv.flush()

    # Flow control (docs/design.md): Server.flush calls this for every connection it hands
    # output to; the core pauses a publisher while a subscriber it feeds is backed up.
    def flow(self, c):
        if c.paused:
            if not self.paused:
                self.paused = True
                self.stop_reading()
        elif self.paused:
            self.paused = False
            if not c.congested:
                self.start_reading()

    def stop_reading(self):
        self.transport.pause_reading()

    def start_reading(self):
        self.transport.resume_reading()

    def connection_lost(self, exc):
        c = self.conn
        if c is not None:
            self.conn = None
            c.lost()
            self.srv.flush()

    def linger(self):
        # The broker ended this connection (self.conn is None by now): FIN once the output is
        # written, read and discard what still comes (eof_received closes on the client's FIN),
        # close after _LINGER.
        tr = self.transport
        if tr.is_closing():
            return
        tr.resume_reading()  # a congested connection was not being read
        try:
            tr.write_eof()
        except (OSError, RuntimeError, NotImplementedError):
            tr.close()
            return
        asyncio.get_running_loop().call_later(_LINGER, self._linger_end)

    def _linger_end(self):
        tr = self.transport
        if tr.is_closing():
            return
        tr.close()
        if tr.get_write_buffer_size():
            # A peer that stopped reading would hold the socket forever.
            asyncio.get_running_loop().call_later(_CLOSE_GRACE - _LINGER, tr.abort)


class Listener:
    # A listening socket with its own accept loop, for both kinds. asyncio's create_server, out of
    # descriptors (EMFILE), logs and reschedules itself once per pending accept of its backlog
    # loop (thousands of lines a second); this one logs once and pauses for a second.
    #
    # An ssl listener's connections get no asyncio transport and no memory BIOs: OpenSSL reads
    # and writes each non-blocking socket itself, driven by the loop's reader/writer callbacks.
    # That saves ~4 KB per idle TLS connection over an SSLObject on memory BIOs, and more over
    # start_tls/SSLProtocol (a task, a second transport and a read buffer per connection, and
    # failed handshakes dropped silently). A tcp listener's connections get asyncio's socket
    # transport. Same binding as loop.create_server(host, port, reuse_address=True, backlog=1024).
    def __init__(self, srv, name, tls):
        self.srv = srv
        self.name = name
        self.tls = tls
        self.sockets = []
        # TLS handshakes in progress. They count against max_connections from the accept (as in
        # Mosquitto and EMQX; the broker counts a connection only once it is opened): 1,100 idle
        # TCP connections that never sent a ClientHello used up the process's descriptors.
        # On ws and wss listeners the WebSocket upgrade is a handshake too: counted from the
        # accept (wss: from the TLS handshake on) until the broker opens the connection.
        self.handshakes = 0
        self.ws = False
        self.refusals = Throttle()
        # The connection classes (wsglue.setup replaces them for ws and wss listeners).
        self.plain_cls = Client
        self.tls_cls = TLSClient

    async def bind(self, host, port):
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        try:
            for af, kind, proto, _, addr in sorted(set(infos)):
                s = socket.socket(af, kind, proto)
                self.sockets.append(s)
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                if af == socket.AF_INET6 and hasattr(socket, "IPPROTO_IPV6"):
                    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                try:
                    s.bind(addr)
                except OSError as e:
                    raise OSError(e.errno, "error while attempting to bind on address %r: %s"
                                  % (addr, e.strerror.lower())) from None
                s.listen(1024)
                s.setblocking(False)
        except BaseException:
            self.close()
            raise
        for s in self.sockets:
            loop.add_reader(s.fileno(), self._accept, s)

    def _accept(self, ls):
        srv = self.srv
        for _ in range(64):
            try:
                s, addr = ls.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:
                if e.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors: stop accepting for a second rather than spin.
                    srv.log("error", "listener %s: cannot accept: %s; pausing for 1s" % (self.name, e))
                    loop = asyncio.get_running_loop()
                    loop.remove_reader(ls.fileno())
                    loop.call_later(1.0, self._resume, ls)
                return
            s.setblocking(False)
            if (self.tls or self.ws) and self._full():
                s.close()
                self._refused(addr)
                continue
            if self.tls:
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.handshakes += 1
                self.tls_cls(srv, self.name, self).start(s, addr)
            else:
                if self.ws:
                    self.handshakes += 1    # wsglue.Handle takes it off
                srv.spawn(self._plain(s))

    def _full(self):
        kind, name = self.name.split(":", 1)
        limit = self.srv.cfg["listeners"][kind][name].get("max_connections")
        return limit is not None and self.handshakes + self.srv.broker.listener_connections(self.name) >= limit

    def _refused(self, addr):
        # One line per listener per interval, with the count held back: a flood is not a log flood.
        held = self.refusals.allow(time.monotonic())
        if held is not None:
            kind, name = self.name.split(":", 1)
            self.srv.log("warning", "listener %s: refused %s:%s, max_connections (%d) reached, counting "
                         "%d TLS or WebSocket handshakes in progress%s" % (
                             self.name, addr[0], addr[1], self.srv.cfg["listeners"][kind][name]["max_connections"],
                             self.handshakes, more(held, "refused")))

    async def _plain(self, s):
        # The transport sets TCP_NODELAY and calls Client.connection_made.
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(lambda: self.plain_cls(self.srv, self.name, self), s)
        except Exception as e:
            # Retrieved here, or the loop would print "Task exception was never retrieved".
            self.srv.log("warning", "listener %s: could not set up an accepted connection: %r" % (self.name, e))
            s.close()
            if self.ws:
                self.handshakes -= 1

    def _resume(self, ls):
        if ls.fileno() >= 0:
            asyncio.get_running_loop().add_reader(ls.fileno(), self._accept, ls)

    def close(self):
        loop = asyncio.get_running_loop()
        for s in self.sockets:
            if s.fileno() >= 0:
                loop.remove_reader(s.fileno())
                s.close()

    async def wait_closed(self):
        return


class TLSClient(Client):
    # One TLS connection of an ssl Listener: an SSL object on the socket, driven from the loop's
    # reader callback; every refused handshake is logged with its reason and the peer. The broker
    # hears of the connection only after the handshake and the broker's certificate checks, so
    # no MQTT byte is read before them. Server.flush writes plaintext to `transport`, which is
    # this object (write/close/abort below).
    __slots__ = ("sock", "fd", "tls", "timer", "peer", "wq", "wsize", "closing", "lingering",
                 "peersni", "__weakref__")   # peersni: set by tlsctx's SNI callback (we are its owner)

    def __init__(self, srv, listener, lst):
        Client.__init__(self, srv, listener, lst)     # in lst.handshakes until _accept
        self.sock = self.tls = self.timer = self.peer = self.wq = self.lingering = None
        self.fd = -1
        self.wsize = 0
        self.closing = False

    # A property rather than a slot holding self: no reference cycle, so a closed connection is
    # freed at once rather than by the cyclic collector.
    @property
    def transport(self):
        return self

    @transport.setter
    def transport(self, value):
        pass

    def start(self, sock, addr):
        lt = self.srv.tls[self.listener]
        self.sock = sock
        self.fd = sock.fileno()
        self.peer = (addr[0], addr[1])
        # The C-level object ssl.SSLContext.wrap_socket builds its SSLSocket on, without the
        # SSLSocket: one Python object less per connection, and the plain socket stays ours.
        self.tls = lt.context._wrap_socket(sock, True, None, owner=self)
        loop = asyncio.get_running_loop()
        self.timer = loop.call_later(lt.timeout, self._timed_out)
        loop.add_reader(self.fd, self._readable)

    def _refuse(self, reason, detail):
        self.srv.broker.tls_refused(self.listener, self.peer, reason, detail)
        self._teardown()

    def _teardown(self):
        # Closes the socket now; the broker hears of it (connection_lost) on the next loop turn,
        # as with asyncio's transports, since this may run inside Server.flush.
        if self.sock is None:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.lst.handshakes -= 1    # the handshake failed or timed out
        if self.lingering is not None:
            self.lingering.cancel()
            self.lingering = None
        loop = asyncio.get_running_loop()
        loop.remove_reader(self.fd)
        if self.wq is not None:
            loop.remove_writer(self.fd)
            self.wq = None
        self.sock.close()
        self.sock = self.tls = None
        if self.conn is not None:
            loop.call_soon(self.connection_lost, None)

    def _timed_out(self):
        self.timer = None
        self.lst.handshakes -= 1
        self._refuse("handshake_timeout", "no TLS handshake within %gs" % self.srv.tls[self.listener].timeout)

    def _readable(self):
        if self.timer is not None:
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                return
            except ssl.SSLWantWriteError:
                # The socket's send buffer is full mid-handshake: go on when it drains.
                self._wait_writable()
                return
            except Exception as e:
                self._refuse(*tlsctx.describe(e))
                return
            if not self._accept():
                return
        self._read()

    def _accept(self):
        # The handshake is done: the broker's own checks on the leaf, then the broker.
        self.timer.cancel()
        self.timer = None
        if not self.lst.ws:
            self.lst.handshakes -= 1    # from here the broker counts it (broker.open; wss: wsglue)
        lt = self.srv.tls[self.listener]
        der = self.tls.getpeercert(True)
        why = lt.check_leaf(der, self.tls)
        if why:
            self._refuse(*why)
            return False
        peer, self.peer = self.peer, None
        lt.drop_sent_chain(self.tls, self.sock)
        self.conn = self.open(peer, der)
        if self.conn is None:
            self._teardown()
            return False
        return True

    def _read(self):
        tls = self.tls
        if tls is None:
            return
        c = self.conn
        try:
            # At most 16 records per turn, so one busy client cannot hold the loop; the rest waits
            # in the kernel, where the reader callback sees it (a full record leaves nothing
            # buffered inside OpenSSL).
            for _ in range(16):
                if c is not None and c.paused:
                    break       # flow control: the rest stays in OpenSSL and the kernel
                data = tls.read(_RECORD)
                if not data:
                    raise ssl.SSLZeroReturnError
                if c is not None and self.sock is not None:
                    c.feed(data)
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLWantWriteError:
            self._wait_writable()
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError):
            # close_notify, or the TCP connection ended: as a FIN on a plain connection.
            self._teardown()
        except (ssl.SSLError, OSError) as e:
            self._failed(e)
        self.srv.flush()

    def _failed(self, e):
        # A client that hangs up while we write to it is no failure worth a warning (the read
        # side treats it as a FIN); anything else is logged with the peer, which getpeername no
        # longer knows once the connection was reset.
        c = self.conn
        if self.sock is not None and not isinstance(e, (ssl.SSLZeroReturnError, ssl.SSLEOFError, ConnectionError)):
            peer = (c.peerhost, c.peerport) if c is not None else (self.peer or ("?", 0))
            self.srv.log("warning", "TLS with %s:%s failed: %s (%s)" % ((peer[0], peer[1]) + tlsctx.describe(e)))
        self._teardown()

    def _wait_writable(self):
        if self.wq is None:
            self.wq = []
            asyncio.get_running_loop().add_writer(self.fd, self._writable)

    def _writable(self):
        if self.timer is not None:
            asyncio.get_running_loop().remove_writer(self.fd)
            self.wq = None
            self._readable()
            return
        wq = self.wq
        try:
            while wq:
                if len(wq) > 2:
                    wq[1:] = [b"".join(wq[1:])]
                # A retried SSL_write must be given the same bytes again.
                self.tls.write(wq[0])
                del wq[0]
        except ssl.SSLWantWriteError:
            return
        except ssl.SSLWantReadError:
            pass
        except (ssl.SSLError, OSError) as e:
            self._failed(e)
            return
        asyncio.get_running_loop().remove_writer(self.fd)
        self.wq = None
        self.wsize = 0
        if self.closing:
            self.close()
            return
        c = self.conn
        if c is not None and c.congested:
            if not self.paused:
                asyncio.get_running_loop().add_reader(self.fd, self._readable)
            c.set_congested(False)      # the queued deliveries; _read's flush sends them
        # Whatever a read gave up on for want of writing.
        self._read()

    def stop_reading(self):
        if self.sock is not None and self.lingering is None:
            asyncio.get_running_loop().remove_reader(self.fd)

    def start_reading(self):
        if self.sock is not None and self.lingering is None:
            loop = asyncio.get_running_loop()
            loop.add_reader(self.fd, self._readable)
            loop.call_soon(self._read)  # records OpenSSL already holds, which poll() cannot see

    # -- the transport interface Server.flush uses -------------------------------------------
    def write(self, data):
        if self.sock is None:
            return
        if self.wq is None:
            try:
                self.tls.write(data)
                return
            except ssl.SSLWantWriteError:
                self._wait_writable()
            except (ssl.SSLError, OSError) as e:
                self._failed(e)
                return
        self.wq.append(data)
        self.wsize += len(data)
        c = self.conn
        if self.wsize > _HIGH_WATER and c is not None and not c.congested:
            # As Client.pause_writing: its deliveries queue, its packets wait in the kernel.
            c.set_congested(True)
            asyncio.get_running_loop().remove_reader(self.fd)

    def close(self):
        # After the queued output: our close_notify and FIN, then a lingering read (see _LINGER).
        if self.sock is None or self.lingering is not None:
            return
        if self.wq:
            self.closing = True     # after the queued output
            return
        try:
            self.tls.shutdown()     # our close_notify; the client's is not waited for
        except (ssl.SSLError, OSError, ValueError):
            pass
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._teardown()
            return
        loop = asyncio.get_running_loop()
        self.lingering = loop.call_later(_LINGER, self._teardown)
        loop.add_reader(self.fd, self._discard)   # replaces _readable; also after congestion

    def _discard(self):
        # Lingering: the raw bytes the client still sends are read and dropped, its FIN ends it.
        try:
            data = self.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._teardown()

    def linger(self):
        self.close()
        if self.wq:
            asyncio.get_running_loop().call_later(_CLOSE_GRACE, self.abort)

    def abort(self):
        self._teardown()

    def get_write_buffer_size(self):
        return self.wsize if self.wq else 0

    def connection_lost(self, exc):
        Client.connection_lost(self, exc)


class Server:
    def __init__(self, cfg, log, read_file):
        self.cfg = cfg
        self.log = log
        self.broker = Broker(cfg, time.monotonic, time.time, log, read_file)
        self.durable = None
        if cfg.get("persistence", {}).get("enable"):
            from gatemq.cpython.store import Durable
            self.durable = Durable(self.broker, cfg, log)   # loads the store before any listener
        self.servers = []
        self.tls = {}
        self.stopping = None
        self._timer = None
        self._tasks = set()
        self.bridges = []       # gatemq.cpython.bridge.BridgePort of bridges.mqtt

    def spawn(self, coro):
        # Keeps a reference: the loop holds tasks only weakly.
        t = asyncio.ensure_future(coro)
        self._tasks.add(t)
        t.add_done_callback(self._tasks.discard)
        return t

    def flush(self):
        dur = self.durable
        if dur is not None and dur.defer(self):
            return      # the group commit of this round runs once the ready reads are handled
        dirty = self.broker.flush()
        if dur is not None and not dur.commit(dirty):
            return
        for c in dirty:
            data = c.take()
            h = c.handle
            tr = h.transport
            if data:
                tr.write(data)
            if c.closing:
                h.conn = None
                h.linger()
            elif c.paused is not h.paused:
                h.flow(c)

    def reload_auth(self):
        # SIGHUP: the core re-reads the files and logs "reload: ..." with what it read or why it
        # kept the previous rules.
        self.log("info", "reload: SIGHUP received, re-reading the users, key and ACL files and the "
                 "ssl listeners' certificate files")
        self.broker.reload_auth()
        for t in self.tls.values():
            t.reload()
        self.flush()

    def reload_listener(self, lid):
        # POST /api/v5/listeners/{id}/reload -> None, or why not (the old files stay in force).
        t = self.tls.get(lid)
        if t is None:
            raise KeyError(lid)
        return t.reload()

    def _tick(self):
        delay = self.broker.tick()
        if self.durable is not None:
            self.durable.tick()
        self.flush()
        for t in self.tls.values():
            t.maybe_reload(self.broker)     # CRL re-read, disconnect_revoked / _expired
        self.flush()
        self._timer = asyncio.get_running_loop().call_later(delay, self._tick)

    async def start(self):
        loop = asyncio.get_running_loop()
        for kind in ("tcp", "ssl", "ws", "wss"):
            for name, lc in self.cfg["listeners"].get(kind, {}).items():
                if not lc.get("enable", True):
                    continue
                lname = "%s:%s" % (kind, name)
                host, port = lc["bind"]
                tls = kind in ("ssl", "wss")
                if tls:
                    self.tls[lname] = tlsctx.ListenerTLS(lname, lc["ssl_options"], self.log)
                srv = Listener(self, lname, tls)
                if kind in ("ws", "wss"):
                    from gatemq.cpython import wsglue
                    wsglue.setup(srv)
                await srv.bind(host or None, port)
                self.servers.append(srv)
                for s in srv.sockets:
                    a = s.getsockname()
                    self.log("info", "listener %s listening on %s:%d" % (lname, a[0], a[1]))
        loop.set_exception_handler(self._loop_error)
        self._timer = loop.call_later(0.5, self._tick)
        if self.cfg.get("bridges", {}).get("mqtt"):
            from gatemq.cpython import bridge
            self.bridges = bridge.start(self)

    def _loop_error(self, loop, ctx):
        # TLSClient logs its own refusals and failures; TLS errors of other transports (the https
        # dashboard's) and anything else a callback lets escape arrive here. Briefly, with the peer.
        exc = ctx.get("exception")
        tr = ctx.get("transport")
        peer = None
        if tr is not None:
            try:
                peer = tr.get_extra_info("peername")
            except Exception:
                peer = None
        if isinstance(exc, (ssl.SSLError, ConnectionError, TimeoutError, asyncio.TimeoutError)):
            # The tuple is built first: "%" binds tighter than "+" (this line raised TypeError).
            args = (("%s:%s" % peer[:2]) if peer else "a client",) + tlsctx.describe(exc)
            self.log("warning", "TLS with %s failed: %s (%s)" % args)
            return
        self.log("error", "event loop: %s %r" % (ctx.get("message"), exc))

    async def stop(self):
        for s in self.servers:
            s.close()
        for b in self.bridges:
            b.stop()
        self.broker.shutdown()
        self.flush()
        if self._timer:
            self._timer.cancel()
        # Give the transports a moment to write the DISCONNECTs.
        await asyncio.sleep(0.05)
        if self.durable is not None:
            self.durable.close()
            self.durable = None
        for s in self.servers:
            try:
                await asyncio.wait_for(s.wait_closed(), 1.0)
            except Exception:
                pass


def make_reader(base_dir=None):
    # The config has resolved every relative path against the folder of the file that names it
    # (gatemq.config.resolve_path): open them as they are. base_dir is no longer used.
    def read_file(path):
        with open(path, "rb") as f:
            return f.read()
    return read_file
