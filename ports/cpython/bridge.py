# The CPython side of the MQTT bridges (gatemq.bridge holds the client itself): DNS, the TCP
# connection, TLS with the gateway's certificate (ssl.SSLContext from bridges.mqtt.<name>.ssl),
# writing what the core hands out, the reconnect and keepalive timers. Each failure is handed to
# the core with its kind and reason (dns, refused, tls with OpenSSL's words, timeout, closed),
# which logs it once per backoff step.
import asyncio
import socket
import ssl
import time

from gatemq.bridge import Bridge
from gatemq.errors import ConfigError
from gatemq.cpython import tlsctx

_HIGH_WATER = 65536


def context(name, o):
    # ssl.SSLContext for one bridge's ssl section; ConfigError when a file cannot be used.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        if o["verify"] == "verify_peer":
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.check_hostname = o["server_name_indication"] != "disable"
            if o["cacertfile"]:
                tlsctx.load_cas(ctx, o["cacertfile"])
            else:
                ctx.load_default_certs()
        else:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if o["certfile"]:
            tlsctx.load_chain(ctx, o["certfile"], o["keyfile"], o["password"])
        vs = o["versions"]
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2 if "tlsv1.2" in vs else ssl.TLSVersion.TLSv1_3
        ctx.maximum_version = ssl.TLSVersion.TLSv1_3 if "tlsv1.3" in vs else ssl.TLSVersion.TLSv1_2
        if o["ciphers"]:
            tls12 = [c for c in o["ciphers"] if not c.startswith("TLS_")]
            if tls12:
                ctx.set_ciphers(":".join(tls12))
    except (OSError, ssl.SSLError, ValueError) as e:
        raise ConfigError("bridges.mqtt.%s.ssl: cannot use the certificate files: %s" % (name, e))
    return ctx


def tls_reason(exc):
    # A failed TLS connection in words that name the cause: an unknown CA, an expired
    # certificate (ours, refused by the upstream, or theirs), a host-name mismatch.
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        msg = exc.verify_message or str(exc)
        if code in (2, 18, 19, 20, 21):
            return "the upstream's certificate is signed by an unknown CA (%s; check ssl.cacertfile)" % msg
        if code == 62 or "Hostname mismatch" in msg or "IP address mismatch" in msg:
            return "host-name mismatch: %s (check server or ssl.server_name_indication)" % msg
        if code in (10, 14):
            return "the upstream's certificate has expired (%s)" % msg
        return "the upstream's certificate was refused: %s" % msg
    r = getattr(exc, "reason", None) or ""
    text = str(exc)
    if "CERTIFICATE_EXPIRED" in r:
        return "the upstream refused our certificate: expired (%s; renew ssl.certfile)" % r.lower()
    if "UNKNOWN_CA" in r:
        return "the upstream refused our certificate: unknown CA (%s)" % r.lower()
    if "CERTIFICATE_REQUIRED" in r or "HANDSHAKE_FAILURE" in r:
        return "the upstream refused the handshake (%s; does it need a client certificate?)" % r.lower()
    if "BAD_CERTIFICATE" in r or "CERTIFICATE_REVOKED" in r or "UNSUPPORTED_CERTIFICATE" in r:
        return "the upstream refused our certificate (%s)" % r.lower()
    return "%s" % (r.lower() or text)


class _Link(asyncio.Protocol):
    def __init__(self, port):
        self.port = port
        self.transport = None
        self.done = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport
        transport.set_write_buffer_limits(_HIGH_WATER)

    def data_received(self, data):
        b = self.port.b
        b.feed(data)
        self.port.after()

    def eof_received(self):
        return False

    def pause_writing(self):
        self.port.b.set_congested(True)

    def resume_writing(self):
        self.port.b.set_congested(False)
        self.port.after()

    def connection_lost(self, exc):
        if not self.done.done():
            self.done.set_result(exc)


class BridgePort:
    def __init__(self, srv, name, cfg):
        self.srv = srv
        self.b = Bridge(srv.broker, name, cfg)
        self.b.notify = self._wake
        self.cfg = cfg
        self.ctx = context(name, cfg["ssl"]) if self.b.tls else None
        if self.ctx is not None and cfg["ssl"]["certfile"]:
            from gatemq import der
            with open(cfg["ssl"]["certfile"], "rb") as f:
                data = f.read()
            self.b.set_certificate(der.pem_to_der(data, "CERTIFICATE")[0] if data[:11] == b"-----BEGIN " else data)
        self.link = None
        self._woken = False
        self.task = None
        self.timer = None

    def start(self):
        self.task = self.srv.spawn(self.run())
        self.timer = self.srv.spawn(self.timers())

    def stop(self):
        for t in (self.task, self.timer):
            if t is not None:
                t.cancel()
        if self.link is not None and self.link.transport is not None:
            data = self.b.take()
            if data:
                self.link.transport.write(data)
            self.link.transport.close()

    def _wake(self):
        if not self._woken:
            self._woken = True
            asyncio.get_running_loop().call_soon(self._write)

    def _write(self):
        self._woken = False
        link = self.link
        b = self.b
        if link is None or link.transport is None:
            return
        data = b.take()
        if data:
            link.transport.write(data)
        if b.closing and not link.transport.is_closing():
            link.transport.close()

    def after(self):
        # After input: the broker's deliveries (messages that came down), then ours.
        self.srv.flush()
        self._write()

    async def timers(self):
        b = self.b
        while True:
            now = time.monotonic()
            d = b.tick(now)
            b.heartbeat(now)
            self._write()
            self.srv.flush()
            await asyncio.sleep(min(d, 1.0) if d is not None else 1.0)

    async def run(self):
        b = self.b
        loop = asyncio.get_running_loop()
        while True:
            d = b.due(time.monotonic())
            if d is None:
                await asyncio.sleep(1.0)
                continue
            if d > 0:
                await asyncio.sleep(d)
            host, port, tls = b.attempt(time.monotonic())
            self.srv.flush()
            kind, detail = await self._once(loop, host, port, tls)
            self.link = None
            b.failed(kind, detail)
            self.srv.flush()

    async def _once(self, loop, host, port, tls):
        b = self.b
        cfg = self.cfg
        timeout = cfg["connect_timeout"]
        try:
            infos = await asyncio.wait_for(loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout)
        except socket.gaierror as e:
            return "dns", "cannot resolve %s: %s" % (host, e.strerror)
        except asyncio.TimeoutError:
            return "dns", "no answer resolving %s within %gs" % (host, timeout)
        sni = cfg["ssl"]["server_name_indication"]
        if sni is None:
            sni = host
        elif sni == "disable":
            sni = ""
        link = None
        last = ("error", "no address for %s" % host)
        for family, stype, proto, _, addr in infos:
            try:
                if tls:
                    _, link = await asyncio.wait_for(loop.create_connection(
                        lambda: _Link(self), addr[0], addr[1], ssl=self.ctx, server_hostname=sni,
                        ssl_handshake_timeout=cfg["ssl"]["handshake_timeout"]), timeout)
                else:
                    _, link = await asyncio.wait_for(loop.create_connection(
                        lambda: _Link(self), addr[0], addr[1]), timeout)
                break
            except ssl.SSLError as e:
                return "tls", tls_reason(e)
            except ConnectionRefusedError:
                last = ("refused", "connection refused by %s port %d" % (addr[0], addr[1]))
            except asyncio.TimeoutError:
                last = ("timeout", "no connection%s within connect_timeout %gs" % (" and TLS handshake" if tls else "", timeout))
            except OSError as e:
                last = ("error", e.strerror or str(e))
        if link is None:
            return last
        self.link = link
        b.up(time.monotonic())
        self._write()
        exc = await link.done
        if b.closing:
            return b.closing
        if isinstance(exc, ssl.SSLError):
            return "tls", tls_reason(exc)
        if exc is not None:
            if tls and b.state != "connected":
                # A TLS 1.3 upstream judges our certificate after our handshake is done: its
                # refusal arrives as an alert or a reset at our first read.
                return "tls", "the connection ended before CONNACK: %s" % (str(exc) or exc.__class__.__name__)
            return "closed", str(exc) or exc.__class__.__name__
        return "closed", "the upstream closed the connection"


def start(srv):
    # -> [BridgePort] of the enabled bridges, running; broker.bridges set.
    ports = []
    for name, cfg in srv.cfg.get("bridges", {}).get("mqtt", {}).items():
        if not cfg["enable"]:
            continue
        ports.append(BridgePort(srv, name, cfg))
    if ports:
        srv.broker.bridges = [p.b for p in ports]
        for p in ports:
            p.start()
    return ports


def check(cfg):
    # --check-config: the TLS files of every bridge.
    for name, bc in cfg.get("bridges", {}).get("mqtt", {}).items():
        if bc["server"][0] == "mqtts":
            context(name, bc["ssl"])
