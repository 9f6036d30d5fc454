# One client connection: its socket(s), its task, its bounded output queue, and the glue between
# the socket and the broker's connection object.
import asyncio
import sys
from asyncio import core

# Bytes per read. The buffer is allocated per read and dropped, so an idle connection holds none;
# it is kept small because it needs a contiguous block in a heap that fragments over time.
READ_SIZE = 512
# Seconds a connection the broker ended (a server DISCONNECT, a CONNACK refusal) goes on reading and
# discarding after its last packet is written: closed at once, a socket with unread input resets
# the connection, and a client still writing (past Receive Maximum, say) lost the reason code.
# MicroPython's sockets have no shutdown(), so the FIN comes when this ends: at once when the
# client is quiet for LINGER_QUIET_MS (nothing unread, so a FIN and no reset), at the latest after
# CLOSE_LINGER while it goes on writing.
CLOSE_LINGER = 2
LINGER_QUIET_MS = 100
# Sockets are waited on with `yield core._io_queue.queue_read(s)` in the task itself, as asyncio's
# own streams do: awaiting a helper coroutine instead would allocate one on every wait.
# On the unix port a TLS link waits on its accepted socket, never on the TLS object. select.poll
# there keeps file descriptors in an array and, when that array moves as it grows, rebases the
# array pointer of every registered object, including those without a descriptor (the TLS object,
# polled by ioctl): their pointer is then garbage, and poll() writes through it. One idle mutual-
# TLS client and a dozen plain ones connecting after it crashed the broker (SIGSEGV). Reading until
# the TLS object is dry before each wait keeps no decrypted byte out of poll()'s sight. Boards poll
# every object by ioctl, so they wait on the TLS object, which also knows when mbedTLS must write.
POLL_RAW = sys.platform in ("linux", "darwin", "freebsd")


def unqueue(s):
    # Out of memory inside asyncio's queue_read/queue_write can leave the socket filed in its map
    # (for a task that no longer waits) without the poller knowing it: the next wait on a socket
    # with that id would trip asyncio's assertion. Forget such an entry.
    q = core._io_queue
    if id(s) in q.map:
        try:
            del q.map[id(s)]
            q.poller.unregister(s)
        except (KeyError, OSError):
            pass


async def accept_loop(host, sock, arg):
    # Accepts on the listening socket sock for host (the server, arg its Listener; or the dashboard)
    # until cancelled. host.wait(arg, None) before each accept and host.wait(arg, e) after one
    # failed with OSError e give the ms to leave clients in the backlog (0: accept now);
    # host.admit(arg, s, sa) takes a new socket; host.refused(arg, s) logs out of memory, s the
    # socket it closed or None. Nothing may end this loop: out of memory anywhere in it (waiting
    # on the socket, accept, admit) refuses or delays the new connection and goes on.
    while True:
        s = None
        try:
            try:
                yield core._io_queue.queue_read(sock)
            except MemoryError:
                # asyncio may have filed the socket without the poller: forget it, wait, retry.
                unqueue(sock)
                raise
            ms = host.wait(arg, None)
            if not ms:
                try:
                    s, sa = sock.accept()
                except OSError as e:
                    ms = host.wait(arg, e)
                else:
                    host.admit(arg, s, sa)
            if ms:
                await asyncio.sleep_ms(ms)
        except MemoryError:
            if s is not None:
                try:
                    s.close()
                except Exception:
                    pass
            host.refused(arg, s)
            await asyncio.sleep_ms(100)


class Output:
    # The output a socket has not taken yet, for Link and bridge.BridgePort: send writes what the
    # socket takes now and queues the rest (out, from off) for _drain, a task that writes it as the
    # socket takes more. The class brings sock, raw (the socket under a TLS one), closed, io() and
    # _failed(e) (a write failed, OSError, or the queue could not be kept, MemoryError: close);
    # it may bring _over(queued, data) (True: it closed rather than queue data) and _backlog(on)
    # (output queued, or all of it written).
    out = None  # bytearray of output the socket has not taken yet
    off = 0
    pend = 0  # TLS: bytes of out already sealed in a record mbedTLS could not send yet (see _write)
    writer = None

    def send(self, data):
        if self.closed or not data:
            return
        if self.out is None:
            n = self._write(data)
            if n is None or n == len(data):
                return
            self.out = bytearray(memoryview(data)[n:])
            self.off = 0
            self.writer = asyncio.create_task(self._drain())
            self._backlog(True)
            return
        if self._over(len(self.out) - self.off, data):
            return
        self.out += data

    def _over(self, queued, data):
        return False

    def _backlog(self, on):
        pass

    def _write(self, buf):
        # -> bytes taken (0 when the socket is full), None when the connection is gone.
        # A TLS write that finds the socket full has still sealed buf (up to one record) into a
        # record mbedTLS holds, and mbedTLS must be called again with the same bytes: that call
        # sends the held record and reports the length it was given, whatever it now is. Retrying
        # with the queue grown since reported bytes as sent that never were, and a TLS client
        # that paused reading got a corrupt stream. self.pend keeps the retry to the same bytes.
        if self.pend:
            buf = buf[:self.pend]
        try:
            n = self.sock.write(buf)
        except OSError as e:
            if e.errno != 11:  # EAGAIN from a port that raises instead of returning None
                self._failed(e)
                return None
            n = None
        if not n:
            raw = self.raw
            if raw is not None and raw is not self.sock and not self.pend:
                self.pend = len(buf)
            return 0
        self.pend = 0
        return n

    async def _drain(self):
        try:
            while self.out is not None and not self.closed:
                yield core._io_queue.queue_write(self.io())
                n = self._write(memoryview(self.out)[self.off:])
                if n is None:
                    return
                self.off += n
                if self.off >= len(self.out):
                    self.out = None
                    self.off = 0
                elif self.off > 4096:
                    self.out = self.out[self.off:]
                    self.off = 0
        except asyncio.CancelledError:
            return
        except MemoryError as e:
            self.out = None     # its queued output is lost: the connection cannot go on
            self.writer = None
            self._failed(e)
            return
        finally:
            self.writer = None
            if self.out is None:
                self._backlog(False)


class Link(Output):
    # Per-connection state is kept small (an idle connection should cost well under 2 KB of heap):
    # only what differs per connection lives in the instance, the rest are class defaults that
    # an instance shadows when it changes them.
    raw = None  # TLS: the accepted socket under the TLS one; closing TLS after a failed handshake leaves it open
    conn = None
    cert = None  # the leaf certificate, filed by the TLS verify callback
    refusal = None  # why the verify callback refused, for the log
    task = None
    deadline = None  # clock() by which the handshake and CONNECT (or the final flush) must be done
    done = False  # the broker asked to close after its output
    linger = False  # ... and this link reads and discards before closing (finish; abort clears it)
    closed = False
    flow = None  # an Event while the core's flow control pauses this connection (Server.pump sets it)
    upgrade = False  # wslink: _handshake also reads a WebSocket upgrade

    def __init__(self, srv, lst, sock, peer):
        self.srv = srv
        self.lst = lst
        self.sock = sock
        self.peer = peer

    def io(self):
        # The object to wait on for this link's socket (see POLL_RAW).
        return self.raw if POLL_RAW and self.raw is not None else self.sock

    def name(self):
        return "%s:%d" % self.peer

    # -- reading ----------------------------------------------------------------------------

    async def run(self):
        srv = self.srv
        close = True
        try:
            first = None
            if self.lst.binder is not None or self.upgrade:
                first = await self._handshake()
                if first is None:
                    return
            self.conn = srv.broker.open(self, self.peer, self.lst.id, self.cert)
            if self.conn is None:
                srv.log("info", "%s: connection from %s refused by the broker" % (self.lst.label, self.name()))
                return
            if first:
                self._feed(first)
                first = None
            # Read until the socket is dry before waiting on it: mbedTLS may hold decrypted records
            # that poll() cannot see. Yield to the other connections after every read: a publisher
            # read 8 times in a row (as it once was) got 8 windows of QoS 1 messages in for each
            # window its subscriber could acknowledge, so the subscriber's queue overflowed and
            # QoS 1 1->1 delivered 3k msg/s; yielding each time gives 40k, and QoS 0 loses nothing
            # measurable (bench/run.py --only micropython).
            sock = self.sock
            io = self.io()
            c = self.conn
            while not self.done:
                if c.paused:
                    # Flow control: a subscriber this client feeds is backed up. Not read from
                    # until the core lets go (Server.pump wakes this), so TCP slows it down.
                    self.flow = asyncio.Event()
                    await self.flow.wait()
                    self.flow = None
                    continue
                data = sock.read(READ_SIZE)
                if data is None:
                    yield core._io_queue.queue_read(io)
                    continue
                if not data:
                    return
                self._feed(data)
                await asyncio.sleep_ms(0)
            if self.linger:
                await self._linger()
        except asyncio.CancelledError:
            # finish() wakes a task waiting on its socket this way: then it lingers.
            if self.linger:
                try:
                    await self._linger()
                except (asyncio.CancelledError, OSError):
                    pass
        except OSError as e:
            srv.log("debug", "%s: %s: socket error %s" % (self.lst.label, self.name(), e))
        except MemoryError:
            srv.oom("%s: %s: out of memory, connection closed", (self.lst.label, self.name()))
        except Exception as e:
            # A bug must cost one connection, never the broker.
            try:
                srv.log("error", "%s: %s: internal error %r, connection closed" % (self.lst.label, self.name(), e))
            except MemoryError:
                pass
        except KeyboardInterrupt:
            # Ctrl-C (or the launcher's SIGINT) landed in this task: the broker's shutdown closes
            # this connection with the others, MQTT 5 clients getting DISCONNECT 0x8B, not a bare
            # close here first.
            close = False
            raise
        finally:
            try:
                if close:
                    self._close()
            except MemoryError:
                # The socket is closed and the link forgotten before anything that allocates.
                srv.oom("%s: %s: out of memory while closing", (self.lst.label, self.name()))

    async def _handshake(self):
        # TLS: the handshake runs inside the first reads. Returns the first application bytes, or
        # None when the handshake failed (logged) or the client left.
        b = self.lst.binder
        srv = self.srv
        self.raw = self.sock
        try:
            if b.crlfile:
                b.maybe_reload()
            self.sock = b.wrap(self.raw)
        except (OSError, MemoryError) as e:
            srv.log("warning", "%s: %s: TLS setup failed: %s" % (self.lst.label, self.name(), e))
            return None
        b.begin(self)
        try:
            io = self.io()
            while True:
                yield core._io_queue.queue_read(io)
                try:
                    data = self.sock.read(READ_SIZE)
                except (OSError, ValueError) as e:
                    from . import tlsbind
                    reason, detail = tlsbind.describe(e, self.refusal)
                    srv.broker.tls_refused(b.id, self.peer, reason, detail)
                    return None
                if data is None:
                    continue
                if not data:
                    return None
                break
        finally:
            b.end(self)
        if b.verify:
            if self.cert is None:
                # CERT_REQUIRED completed yet no leaf was filed: never map such a connection.
                srv.log("warning", "%s: %s: handshake completed without a certificate bound to it; "
                        "closed" % (self.lst.label, self.name()))
                return None
            if hasattr(self.sock, "getpeercert"):
                try:
                    seen = self.sock.getpeercert(True)
                except Exception:
                    seen = None
                if seen and bytes(seen) != self.cert:
                    srv.log("error", "%s: %s: getpeercert() disagrees with the verify callback; "
                            "closed" % (self.lst.label, self.name()))
                    return None
        return data

    async def _linger(self):
        # The broker ended this connection: its last output first (Server.reap aborts at the
        # deadline finish set when the client does not take it), then read and drop what the
        # client still sends until it is quiet, sends its FIN, or CLOSE_LINGER has passed.
        while self.writer is not None:
            await asyncio.sleep_ms(LINGER_QUIET_MS)
        sock = self.sock
        end = self.srv.clock() + CLOSE_LINGER
        while self.srv.clock() < end:
            await asyncio.sleep_ms(LINGER_QUIET_MS)
            data = sock.read(READ_SIZE)
            if not data:  # quiet (None) or its FIN (b"")
                return
            while data:
                data = sock.read(READ_SIZE)
            if data is not None:
                return

    def _feed(self, data):
        self.conn.feed(data)
        self.srv.pump()

    # -- writing ----------------------------------------------------------------------------

    def _over(self, queued, data):
        if queued + len(data) <= self.srv.out_limit:
            return False
        self.srv.log("warning", "%s: %s: client does not read; %d bytes of output queued, "
                     "closed" % (self.lst.label, self.name(), queued))
        self.abort()
        return True

    def _failed(self, e):
        if isinstance(e, MemoryError):
            self.srv.oom("%s: %s: out of memory writing to it, connection closed", (self.lst.label, self.name()))
        else:
            self.srv.log("debug", "%s: %s: write failed: %s" % (self.lst.label, self.name(), e))
        self.abort()

    # -- closing ----------------------------------------------------------------------------

    def finish(self, linger):
        # The broker closes this connection: write what is queued, then read and discard what the
        # client still sends (_linger) before closing, so a client still writing reads the reason
        # code rather than a reset. Server.reap aborts it linger seconds from now in any case.
        if self.done:
            return
        self.done = True
        self.linger = True
        self.deadline = self.srv.clock() + linger
        t = self.task
        if t is not None and not self.closed and t is not asyncio.current_task():
            t.cancel()  # out of its wait on the socket, into _linger

    def abort(self):
        self.done = True
        self.linger = False
        t = self.task
        if t is not None and not self.closed and t is not asyncio.current_task():
            t.cancel()

    def _close(self):
        self.closed = True
        srv = self.srv
        w = self.writer
        if w is not None and w is not asyncio.current_task():
            w.cancel()
        self.writer = None
        self.out = None
        # The sockets first, as nothing here allocates: whatever fails below, they are closed.
        unqueue(self.io())
        try:
            self.sock.close()
        except Exception:
            pass
        # Closing the TLS layer after a failed handshake leaves the accepted socket open: close it.
        if self.raw is not None:
            try:
                self.raw.close()
            except Exception:
                pass
        conn = self.conn
        if conn is not None and not conn.closing:
            try:
                conn.lost()
            except MemoryError:
                srv.oom("%s: %s: out of memory in the broker's lost()", (self.lst.label, self.name()))
            except Exception as e:
                srv.log("error", "%s: %s: broker lost(): %r" % (self.lst.label, self.name(), e))
        srv.forget(self)
