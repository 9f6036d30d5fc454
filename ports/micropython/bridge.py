# The MicroPython side of the MQTT bridges (gatemq.bridge holds the client itself): DNS, the TCP
# connection and TLS (mbedTLS, DER or PEM files) with the gateway's certificate, then reading and
# writing without blocking as link.py does (waiting on the raw socket, reading the TLS object until
# dry). The connect and the TLS handshake themselves block, bounded by connect_timeout: a board
# has one bridge and the handshake is a few round trips (docs/bridge.md).
import asyncio
import socket
import time
from asyncio import core

from gatemq.bridge import Bridge
from gatemq.errors import ConfigError

from .link import POLL_RAW, READ_SIZE, Output


def _context(name, o, read):
    import tls
    from .tlsbind import _blobs
    if o.get("password"):
        raise ConfigError("bridges.mqtt.%s.ssl.password: MicroPython cannot load an encrypted key" % name)
    if "tlsv1.2" not in o["versions"]:
        raise ConfigError("bridges.mqtt.%s.ssl.versions: MicroPython's mbedTLS speaks TLS 1.2 only; "
                          "add \"tlsv1.2\"" % name)
    ctx = tls.SSLContext(tls.PROTOCOL_TLS_CLIENT)
    try:
        if o["certfile"]:
            ctx.load_cert_chain(_blobs(read, o["certfile"], "certfile", "CERTIFICATE")[0],
                                _blobs(read, o["keyfile"], "keyfile", None)[0])
        if o["verify"] == "verify_peer":
            if not o["cacertfile"]:
                raise ConfigError("bridges.mqtt.%s.ssl.cacertfile: verify = verify_peer needs the "
                                  "upstream's CA certificate on MicroPython" % name)
            for ca in _blobs(read, o["cacertfile"], "cacertfile", "CERTIFICATE"):
                ctx.load_verify_locations(ca)
            ctx.verify_mode = tls.CERT_REQUIRED
        else:
            ctx.verify_mode = tls.CERT_NONE
    except (OSError, ValueError) as e:
        raise ConfigError("bridges.mqtt.%s.ssl: certificate files refused by mbedTLS (%s)" % (name, e))
    return ctx


def tls_reason(e):
    text = " ".join(str(e).split()) if isinstance(e, ValueError) else (
        e.args[1] if len(e.args) > 1 and isinstance(e.args[1], str) else str(e))
    low = text.lower()
    if "cn" in low and "does not match" in low:
        return "host-name mismatch: %s (check server or ssl.server_name_indication)" % text
    if "expired" in low:
        return "the upstream's certificate has expired (%s)" % text
    if "not correctly signed" in low or "not trusted" in low or "unknown ca" in low:
        return "the upstream's certificate is signed by an unknown CA (%s; check ssl.cacertfile)" % text
    if "fatal_alert" in low.replace(" ", "_") or "-30592" in low:
        return "the upstream refused the handshake with a fatal alert (%s): is our certificate (ssl.certfile) " \
               "expired, or signed by a CA it does not trust?" % text
    return text


class BridgePort(Output):
    def __init__(self, srv, name, cfg, read):
        self.srv = srv
        self.b = b = Bridge(srv.broker, name, cfg)
        b.notify = self._wake
        self.cfg = cfg
        self.ctx = _context(name, cfg["ssl"], read) if b.tls else None
        if b.tls and cfg["ssl"]["certfile"]:
            from .tlsbind import _blobs
            b.set_certificate(_blobs(read, cfg["ssl"]["certfile"], "certfile", "CERTIFICATE")[0])
        self.sock = None
        self.raw = None
        self.reader = None
        self.gone = None    # why the link ended, found while the reader task itself was running

    def start(self):
        asyncio.create_task(self.run())

    def _wake(self):
        data = self.b.take()
        if data:
            self.send(data)
        if self.b.closing and self.sock is not None and self.out is None:
            self._shut()

    def _shut(self, why=None):
        # Ends the reader task. Called from inside it (an ack or PUBLISH written while it feeds the
        # core found the socket gone, or the core closing), a task cannot cancel itself ("can't
        # cancel self", which showed as the bridge's last_error): it returns with why after that
        # feed instead.
        t = self.reader
        if t is None:
            return
        if t is asyncio.current_task():
            self.gone = why or self.b.closing or ("closed", "closed")
        else:
            t.cancel()

    def io(self):
        return self.raw if POLL_RAW and self.raw is not None else self.sock

    async def run(self):
        b = self.b
        while True:
            try:
                d = b.due(self.srv.clock())
                if d is None:
                    await asyncio.sleep(1)
                    continue
                if d > 0:
                    await asyncio.sleep_ms(int(d * 1000))
                host, port, tls_on = b.attempt(self.srv.clock())
                self.srv.pump()
                kind, detail = self._connect(host, port, tls_on)
                if kind is None:
                    self.gone = None
                    self.reader = asyncio.create_task(self._read())
                    try:
                        kind, detail = await self.reader
                    except asyncio.CancelledError:
                        kind, detail = b.closing or ("closed", "closed")
                    self.reader = None
                self._close()
                b.failed(kind, detail)
                self.srv.pump()
            except MemoryError:
                self._close()
                b.failed("error", "out of memory")
            except Exception as e:
                self._close()
                b.failed("error", "internal error %r" % (e,))

    def _connect(self, host, port, tls_on):
        # -> (None, None) when up (CONNECT sent), else (kind, detail).
        cfg = self.cfg
        try:
            ai = socket.getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        except OSError as e:
            return "dns", "cannot resolve %s: %s" % (host, e)
        if not ai:
            return "dns", "cannot resolve %s" % host
        s = socket.socket(ai[0][0], socket.SOCK_STREAM)
        self.raw = s
        try:
            s.settimeout(cfg["connect_timeout"])
            s.connect(ai[0][-1])
        except OSError as e:
            code = e.args[0] if e.args else None
            if code == 111:
                return "refused", "connection refused by %s port %d" % (host, port)
            if code == 110:
                return "timeout", "no connection within connect_timeout %gs" % cfg["connect_timeout"]
            return "error", str(e)
        if tls_on:
            sni = cfg["ssl"]["server_name_indication"]
            if sni is None:
                sni = host
            try:
                self.sock = self.ctx.wrap_socket(s, server_hostname=None if sni == "disable" else sni)
            except (OSError, ValueError) as e:
                return "tls", tls_reason(e)
        else:
            self.sock = s
        s.setblocking(False)
        self.b.up(self.srv.clock())
        return None, None

    async def _read(self):
        b = self.b
        sock = self.sock
        io = self.io()
        while True:
            try:
                data = sock.read(READ_SIZE)
            except (OSError, ValueError) as e:
                if b.tls:
                    return "tls", tls_reason(e)
                return "closed", str(e)
            if data is None:
                yield core._io_queue.queue_read(io)
                continue
            if not data:
                return "closed", "the upstream closed the connection"
            b.feed(data)
            self.srv.pump()
            if b.closing:
                return b.closing
            if self.gone is not None:
                return self.gone
            await asyncio.sleep_ms(0)

    # -- writing (link.Output)

    @property
    def closed(self):
        return self.sock is None

    def _failed(self, e):
        self._shut(("error", "out of memory writing upstream") if isinstance(e, MemoryError)
                   else ("closed", "writing upstream failed: %s" % (e,)))

    def _backlog(self, on):
        # The core's bridge holds its output back while the upstream does not take it.
        self.b.set_congested(on)
        if not on and self.b.closing:
            self._shut()

    def _close(self):
        w = self.writer
        if w is not None:
            w.cancel()
        self.out = None
        self.pend = 0
        for s in (self.sock, self.raw):
            if s is not None:
                try:
                    s.close()
                except OSError:
                    pass
        self.sock = None
        self.raw = None

    async def timers(self):
        b = self.b
        while True:
            now = self.srv.clock()
            b.tick(now)
            b.heartbeat(now)
            self.srv.pump()
            await asyncio.sleep(1)


def start(srv, read):
    ports = []
    for name, cfg in srv.cfg.get("bridges", {}).get("mqtt", {}).items():
        if cfg["enable"]:
            ports.append(BridgePort(srv, name, cfg, read))
    if ports:
        srv.broker.bridges = [p.b for p in ports]
    return ports


def run_all(ports):
    for p in ports:
        p.start()
        asyncio.create_task(p.timers())
