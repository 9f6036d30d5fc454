# The broker on MicroPython's asyncio: listeners, the accept loops, the timer loop and the pump that
# carries the broker's output to the sockets.
import asyncio
import gc
import socket
import sys
import time

from gatemq.connection import CONNECTED
from gatemq.errors import ConfigError
from gatemq.logline import Throttle, more
from gatemq.retain import RetainStore

from . import addr
from .link import Link, accept_loop

# Free heap kept back at accept: below it a new connection is refused (logged) so the existing ones
# keep the memory they need. mbedTLS allocates its ~25-30 KB per connection from the Python heap
# on rp2, from the system heap elsewhere.
RESERVE = 10 * 1024
TLS_RESERVE = 34 * 1024 if sys.platform == "rp2" else 3 * 1024
# Client sockets the board's network stack gives by default (lwIP sockets minus the listening ones
# and one spare for DNS/NTP): the cap on all connections together while every listener's
# max_connections is "infinity". Setting max_connections on a listener replaces this default.
BOARD_SOCKETS = {"esp32": 8, "rp2": 4}
# A block this big must still be free to accept a connection (see Server.memory_for).
PROBE = 3072
# Seconds a closing connection may take to write its last bytes.
LINGER = 5
RELOAD = b"H"   # on stdin: firmware/gatemq-micropython's SIGHUP (Server.reload)
LEVELS = {"debug": 0, "info": 1, "warning": 2, "error": 3}
IPPROTO_TCP = getattr(socket, "IPPROTO_TCP", 6)
TCP_NODELAY = getattr(socket, "TCP_NODELAY", 1)


class Clock:
    # Monotonic seconds from ticks_ms, carried past the ticks wrap-around. The sum is kept in
    # integer milliseconds: boards have single-precision floats, where adding a few ms to a
    # large float total would be rounded away and the clock would stall.
    def __init__(self):
        self.last = time.ticks_ms()
        self.ms = 0

    def __call__(self):
        now = time.ticks_ms()
        self.ms += time.ticks_diff(now, self.last)
        self.last = now
        return self.ms / 1000


_EPOCH_2000 = time.gmtime(0)[0] == 2000


def wallclock():
    # Epoch seconds since 1970 on every port (some boards count from 2000).
    t = time.time()
    return t + 946684800 if _EPOCH_2000 else t


def make_log(level):
    # Lines as the CPython port writes them: "2026-01-31 12:00:00 INFO message".
    floor = LEVELS.get(level, 1)

    def log(lvl, msg):
        if LEVELS.get(lvl, 1) >= floor:
            try:
                t = time.localtime()
                sys.stderr.write("%04d-%02d-%02d %02d:%02d:%02d %s %s\n"
                                 % (t[0], t[1], t[2], t[3], t[4], t[5], lvl.upper(), msg))
            except Exception:
                pass

    return log


def heap_guard(floor):
    # The retained store's admit() hook (besides the retainer limits of the config): retained
    # messages never expire on their own, and one client publishing retained messages to ever new
    # topics filled an 8 MB heap in a second, after which every new connection was refused for
    # low memory. Below `floor` free bytes a retained message on a new topic is not kept (the
    # broker counts and logs it as dropped); replacing or deleting one still works. Each
    # collection here costs a pass over the heap, so under such a flood only every 64th refusal
    # collects to see whether memory came back.
    skip = [0]

    def admit(msg):
        if gc.mem_free() < floor:
            if skip[0]:
                skip[0] -= 1
                return False
            gc.collect()
            if gc.mem_free() < floor:
                skip[0] = 63
                return False
        return True
    return admit


def _ws_link():
    # Loaded with the first ws listener's first connection only.
    from .wslink import WSLink
    return WSLink


class Listener:
    def __init__(self, kind, name, lc):
        self.kind = kind
        self.name = name
        self.id = "%s:%s" % (kind, name)  # the broker's name for it
        self.label = "listener " + self.id
        self.lc = lc
        self.bind = lc["bind"]
        self.max = lc["max_connections"] or 1 << 30
        self.binder = None
        self.ws = None  # the websocket options of a ws/wss listener
        self.links = 0
        self.sock = None
        self.handshake_timeout = None
        self.refused = Throttle()  # of the refusal lines: see Server.refuse

    def listen(self, backlog):
        host, port = self.bind
        self.sock, port = addr.listen(host, port, backlog)
        if not self.bind[1]:
            self.lc["bind"] = (host, port)  # what the broker reports as sockport
        self.port = port
        return port


class Server:
    def __init__(self, cfg, log, read, read_text=None, broker_cls=None, heap_report=0, on_tick=None,
                 dash=None):
        if broker_cls is None:
            from gatemq.broker import Broker as broker_cls
        self.cfg = cfg
        self.log = log
        self.clock = Clock()
        self.links = []
        self.heap_report = heap_report  # seconds between heap lines on the log, 0 for none
        self.min_free = None
        self.on_tick = on_tick  # called each timer round: boards feed their watchdog there
        self.dash = dash  # (config folder, the file's mqtt section): serve the management API
        self.down = False  # shutdown() done
        mps = cfg["mqtt"]["max_packet_size"]
        # Output one client may leave unread before it is dropped: bounded, yet above one packet.
        self.out_limit = max(16384, mps + 4096) if mps else 65536
        limit = BOARD_SOCKETS.get(sys.platform)
        self.listeners = []
        ls = cfg["listeners"]
        for kind in ("tcp", "ssl", "ws", "wss"):
            for name in sorted(ls.get(kind, {})):
                lc = ls[kind][name]
                if not lc.get("enable", True):
                    continue
                lst = Listener(kind, name, lc)
                if lc["max_connections"] is not None:
                    limit = None
                if kind in ("ssl", "wss"):
                    from . import tlsbind
                    o = lc["ssl_options"]
                    tlsbind.check_options(name, o, kind)
                    lst.binder = tlsbind.Binder(name, o, read, wallclock, log, kind)
                    lst.handshake_timeout = o["handshake_timeout"]
                if kind in ("ws", "wss"):
                    lst.ws = lc["websocket"]    # wslink: MQTT over WebSocket
                    if lst.handshake_timeout is None:
                        lst.handshake_timeout = cfg["mqtt"]["idle_timeout"] or 15
                self.listeners.append(lst)
        if not self.listeners:
            raise ConfigError("listeners: every listener is disabled; enable one")
        m = cfg["mqtt"]
        if m.get("client_attrs_init") or m.get("clientid_override"):
            from gatemq import clientattrs
            hit = clientattrs.reading(m, ("peersni",))
            if hit:
                raise ConfigError("%s: %s is not available on the MicroPython port (its tls module does "
                                  "not report the server name a client sent); the CPython port has it"
                                  % hit)
        self.max_total = limit  # None: no board default
        self.broker = broker_cls(cfg, self.clock, wallclock, log, read_text)
        self.durable = None
        if cfg.get("persistence", {}).get("enable"):
            from .store import Durable   # only then: its modules are heap
            self.durable = Durable(self.broker, cfg, log, self.clock, wallclock)
        self.bridges = []
        if cfg.get("bridges", {}).get("mqtt"):
            from . import bridge    # only then: gatemq.bridge and its codec are heap
            self.bridges = bridge.start(self, read)
        store = getattr(self.broker, "retained", None)
        if isinstance(store, RetainStore):
            # A quarter of the heap stays out of reach of retained messages (see heap_guard).
            heap = gc.mem_free() + gc.mem_alloc()
            store.admit = heap_guard(max(4 * RESERVE, heap // 4))
            # what connections may hold before CONNECT, together: an eighth of the heap at most
            b = self.broker
            b.pre_connect_budget = min(b.pre_connect_budget, max(2 * RESERVE, heap // 8))

    def start(self):
        for lst in self.listeners:
            try:
                port = lst.listen(16)
            except OSError as e:
                # The exit status says "cannot start"; the line says which listener and address.
                raise OSError("%s: cannot listen on %s: %s" % (lst.label, addr.show(lst.bind[0], lst.bind[1]), e))
            self.log("info", "%s listening on %s" % (lst.label, addr.show(lst.bind[0], port)))
            if lst.binder is not None and lst.binder.verify:
                self.log("info", "%s: client certificates required (CERT_REQUIRED)" % lst.label)
        gc.collect()
        # Collect each time an eighth of the heap now free has been allocated, not only when the
        # heap is full: garbage left to fill the whole heap gets mixed with every new long-lived
        # object (connections, sessions), and the holes it leaves become too small for the next
        # packet buffer. With 16 plain and 4 TLS clients under QoS 1 traffic this lowers the heap
        # the unix port needs by some 16 KB; with a large heap the threshold is large and costs
        # next to nothing.
        try:
            gc.threshold(max(4096, gc.mem_free() // 8))
        except AttributeError:  # a port built without MICROPY_GC_ALLOC_THRESHOLD
            pass
        if self.heap_report:
            self.heap_line("start")

    def heap_line(self, what):
        # Free heap after a collection (what the next allocation can count on) and the lowest
        # seen so far, sampled each timer round while heap reports are on.
        gc.collect()
        free = gc.mem_free()
        if self.min_free is None or free < self.min_free:
            self.min_free = free
        self.log("info", "heap %s: free=%d used=%d lowest_free=%d links=%d"
                 % (what, free, gc.mem_alloc(), self.min_free, len(self.links)))

    # -- the glue ---------------------------------------------------------------------------

    def oom(self, fmt, args=()):
        # A warning where memory ran out: collect first so the message can be built, and never
        # let the message itself raise.
        gc.collect()
        try:
            self.log("warning", fmt % args)
        except MemoryError:
            pass

    def pump(self):
        # Carry the broker's output to the sockets; close what the broker closes. Out of memory
        # while handing over one connection's output closes that connection only (its output is
        # gone, so its stream cannot go on); the others still get theirs.
        dur = self.durable
        if dur is not None and dur.defer(self):
            return      # the round's group commit runs after the reads that are ready (store.py)
        dirty = self.broker.flush()
        if dur is not None and not dur.commit(dirty):
            return      # not stored: that output is dropped and those connections closed
        for c in dirty:
            link = c.handle
            try:
                data = c.take()
                if data:
                    link.send(data)
                if c.closing:
                    link.finish(LINGER)
                elif link.flow is not None and not c.paused:
                    link.flow.set()     # flow control let go of it: read from it again
            except MemoryError:
                link.abort()
                self.oom("%s: %s: out of memory writing to it, connection closed", (link.lst.label, link.name()))

    def forget(self, link):
        try:
            self.links.remove(link)
            link.lst.links -= 1
        except ValueError:
            pass
        self.pump()

    def reap(self):
        now = self.clock()
        for link in self.links:
            if link.deadline is None or link.closed:
                continue
            c = link.conn
            if c is not None and not link.done and c.state == CONNECTED:
                link.deadline = None  # handshake and CONNECT done in time
            elif now > link.deadline:
                link.deadline = None
                if link.done:
                    if link.out is not None:
                        self.log("info", "%s: %s: output not taken in %ds; closed" % (link.lst.label, link.name(), LINGER))
                    # else the lingering read after the last packet is over (link.CLOSE_LINGER)
                elif c is None and link.lst.binder is None:
                    self.log("info", "%s: %s: no WebSocket upgrade within %ss; closed"
                             % (link.lst.label, link.name(), link.lst.handshake_timeout))
                elif c is None:
                    self.broker.tls_refused(link.lst.binder.id, link.peer, "handshake_timeout",
                                            "no TLS handshake within %ss" % link.lst.handshake_timeout)
                else:
                    self.log("info", "%s: %s: no CONNECT within handshake_timeout (%ss) of the "
                             "connection; closed" % (link.lst.label, link.name(), link.lst.handshake_timeout))
                link.abort()

    # -- accepting (link.accept_loop calls wait, admit and refused) ---------------------------

    def wait(self, lst, e):
        # Before an accept: collect when low, the new socket and its link need the room. After a
        # failed one (EMFILE and friends): the client stays in the backlog; give closing sockets time.
        if e is None:
            if gc.mem_free() < RESERVE:
                gc.collect()
            return 0
        self.log("warning", "%s: accept failed: %s" % (lst.label, e))
        return 100

    def refused(self, lst, s):
        self.oom("%s: out of memory waiting for connections; retrying" if s is None else
                 "%s: out of memory; new connection refused", lst.label)

    def refuse(self, lst, s, peer, why):
        # Closes a new connection at accept. One line per listener per logline interval: a
        # connection flood against a full or low-memory broker wrote some 140 lines a second
        # (on a board, to its serial console). The next line counts the refusals in between.
        s.close()
        held = lst.refused.allow(self.clock())
        if held is not None:
            self.log("warning", "%s: refused %s:%d: %s%s" % (lst.label, peer[0], peer[1], why, more(held, "refused")))

    def admit(self, lst, s, sa):
        peer = addr.peer(sa)
        if lst.links >= lst.max:
            self.refuse(lst, s, peer, "max_connections (%d) reached" % lst.max)
            return
        if self.max_total is not None and len(self.links) >= self.max_total:
            self.refuse(lst, s, peer, "the board's %d client sockets are in use (set max_connections "
                        "to change this)" % self.max_total)
            return
        if not self.memory_for(lst):
            self.refuse(lst, s, peer, "low memory (%d bytes free)" % gc.mem_free())
            return
        try:
            # TCP_NODELAY: MQTT packets and TLS handshake records are small; with Nagle and the
            # peer's delayed ACK each handshake flight would wait ~40 ms.
            s.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        s.setblocking(False)
        link = (Link if lst.ws is None else _ws_link())(self, lst, s, peer)
        if lst.binder is not None or lst.ws is not None:
            link.deadline = self.clock() + lst.handshake_timeout
        self.links.append(link)
        lst.links += 1
        try:
            link.task = asyncio.create_task(link.run())
        except MemoryError:
            self.links.remove(link)
            lst.links -= 1
            raise

    def reload_listener(self, lid):
        # POST /api/v5/listeners/{id}/reload -> None, or why not (the old files stay in force).
        for lst in self.listeners:
            if lst.id == lid and lst.binder is not None:
                why = lst.binder.reload()
                self.pump()
                return why
        raise KeyError(lid)

    def memory_for(self, lst):
        # Enough free heap for one more connection, and in pieces big enough: a fragmented heap
        # can have plenty free and still fail a 1 KB allocation, so probe for a block.
        need = RESERVE + (TLS_RESERVE if lst.binder else 2048)
        for attempt in (0, 1):
            if gc.mem_free() >= need:
                try:
                    probe = bytearray(PROBE)
                    del probe
                    return True
                except MemoryError:
                    pass
            if not attempt:
                gc.collect()
        return False

    # -- tasks ------------------------------------------------------------------------------

    def start_dashboard(self):
        # The broker's job is MQTT: a management API that cannot start costs only itself.
        try:
            from . import dashboard
            base, base_mqtt = self.dash
            dashboard.Dashboard(self, self.cfg, base, base_mqtt).start()
        except MemoryError:
            gc.collect()
            self.log("error", "dashboard: out of memory at start; the API is off "
                     "(set dashboard.enable = false on a small board)")
        except Exception as e:
            self.log("error", "dashboard: cannot start: %r; the API is off" % (e,))

    async def ticker(self):
        # The broker's main task: its end would end the broker, so nothing may escape it.
        next_report = 0
        while True:
            wait = 1
            try:
                wait = self.broker.tick()
                if self.durable is not None:
                    self.durable.tick()
                now = self.clock()
                for lst in self.listeners:
                    if lst.binder is not None:
                        # CRL re-read, disconnect_revoked / _expired, reload_interval (once a second)
                        lst.binder.poll(self.broker, now)
                self.pump()
                self.reap()
                if self.on_tick is not None:
                    self.on_tick()
                if self.heap_report:
                    gc.collect()
                    free = gc.mem_free()
                    if free < self.min_free:
                        self.min_free = free
                    now = self.clock()
                    if now >= next_report:
                        next_report = now + self.heap_report
                        self.heap_line("report")
            except MemoryError:
                self.oom("out of memory in the timer loop (timers, $SYS); retrying")
            except Exception as e:
                # A bug in a timer must not stop the broker either.
                try:
                    self.log("error", "timer loop: internal error %r; retrying" % (e,))
                except MemoryError:
                    pass
            if wait is None or wait > 1:
                wait = 1
            elif wait < 0.01:
                wait = 0.01
            await asyncio.sleep_ms(int(wait * 1000))

    async def stdin_closed(self):
        # The launcher's stop (firmware/gatemq-micropython closes the pipe that is our stdin): it
        # comes in here, between two tasks, where a SIGINT would raise KeyboardInterrupt wherever
        # the interpreter is, inside the garbage collector too, and break the shutdown.
        # The launcher turns SIGHUP into the byte RELOAD on the same pipe (reload); anything else
        # written on stdin is read and ignored; only its end stops the broker.
        f = sys.stdin.buffer
        while True:
            yield asyncio.core._io_queue.queue_read(f)
            got = f.read(1)
            if not got:
                self.log("info", "stop requested (stdin closed); shutting down")
                return
            if got == RELOAD:
                try:
                    self.reload()
                except MemoryError:
                    self.oom("reload: out of memory; the previous files stay in force")

    def reload(self):
        # SIGHUP (through the launcher), as on the CPython port: the core re-reads the users, key
        # and ACL files (keeping the previous rules if one is broken), each ssl and wss listener
        # its certificate files.
        self.log("info", "reload: SIGHUP received, re-reading the users, key and ACL files and the "
                 "ssl listeners' certificate files")
        self.broker.reload_auth()
        for lst in self.listeners:
            if lst.binder is not None:
                lst.binder.reload()
        self.pump()

    async def main(self, stdin_eof=False):
        # stdin_eof: end at the end of stdin, for run()'s shutdown; else only an interrupt ends it.
        for lst in self.listeners:
            asyncio.create_task(accept_loop(self, lst.sock, lst))
        if self.dash is not None and self.cfg["dashboard"]["enable"]:
            self.start_dashboard()
        if self.bridges:
            from . import bridge
            bridge.run_all(self.bridges)
        if stdin_eof:
            asyncio.create_task(self.ticker())
            await self.stdin_closed()
            # Here, while the loop runs: closing a link asks asyncio for the current task, which
            # raises once asyncio.run() has returned. run() then finds the shutdown done.
            self.shutdown()
        else:
            await self.ticker()

    def shutdown(self):
        if self.down:
            return
        self.down = True
        try:
            self.broker.shutdown()
            self.pump()
        except Exception as e:
            self.log("error", "shutdown: %r" % (e,))
        if self.durable is not None:
            try:
                self.durable.close()    # everything pending (sync = none writes only here)
            except Exception as e:
                self.log("error", "shutdown: persistence: %r" % (e,))
        for link in list(self.links):
            link.abort()
        for lst in self.listeners:
            try:
                lst.sock.close()
            except Exception:
                pass


def run(cfg, log, read, read_text=None, heap_report=0, on_tick=None, dash=None, stdin_eof=False):
    srv = Server(cfg, log, read, read_text, heap_report=heap_report, on_tick=on_tick, dash=dash)
    try:
        # start() inside: an interrupt right after the listeners open is a clean stop too.
        srv.start()
        asyncio.run(srv.main(stdin_eof))
    except KeyboardInterrupt:
        log("info", "interrupted; shutting down")
    finally:
        srv.shutdown()
        try:
            asyncio.run(asyncio.sleep_ms(200))  # let the final DISCONNECTs go out
        except Exception:
            pass
        # A link whose task the interrupt ended left its sockets to the shutdown; a board stopped
        # at the REPL keeps running, so close whatever is still open.
        for link in list(srv.links):
            if not link.closed:
                link.writer = None  # its loop has ended: nothing left to cancel
                try:
                    link._close()
                except Exception:
                    pass
    return srv
