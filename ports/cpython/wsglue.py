# MQTT over WebSocket on the CPython port: ws and wss listeners. The framing is gatemq.websocket
# (sans-IO, shared with the MicroPython port); this file puts it between a connection of the port
# (server.Client for ws, server.TLSClient for wss, so a wss client certificate goes through the
# very same TLS code, leaf policy, refusal words and peer_cert_as_* mapping as on an ssl
# listener) and the broker:
#
#   socket -> Client/TLSClient -> Front.feed -> websocket.Server -> broker connection
#   broker connection -> Handle.write -> one binary frame -> Client/TLSClient transport
#
# The broker hears of the connection only after the WebSocket handshake, with the peer address
# the proxy headers gave (gatemq.websocket.forwarded_peer) and the verified certificate of the TLS
# handshake.
import asyncio

from gatemq import websocket

# Seconds a connection may take to send its upgrade request when mqtt.idle_timeout is infinity.
_HANDSHAKE_MAX = 15


class Front:
    # What the port's Client/TLSClient takes for its broker connection.
    __slots__ = ("h",)

    def __init__(self, h):
        self.h = h

    def feed(self, data):
        self.h.feed(data)

    def lost(self):
        self.h.lost()

    def set_congested(self, on):
        c = self.h.conn
        if c is not None:
            c.set_congested(on)

    @property
    def congested(self):
        c = self.h.conn
        return c is not None and c.congested

    @property
    def paused(self):
        c = self.h.conn
        return c is not None and c.paused

    @property
    def peerhost(self):
        return self.h.peer[0]

    @property
    def peerport(self):
        return self.h.peer[1]


class Handle:
    # The broker connection's handle (conn.handle): Server.flush writes MQTT bytes to .transport
    # (this object), sets .conn = None and calls linger() when the broker ends the connection.
    __slots__ = ("under", "srv", "listener", "ws", "conn", "der", "peer", "ended", "timer", "front", "lst")

    def __init__(self, under, peer, der):
        self.under = under
        self.srv = under.srv
        self.listener = under.listener
        kind, name = under.listener.split(":", 1)
        opts = self.srv.cfg["listeners"][kind][name]["websocket"]
        self.ws = websocket.Server(opts, peer)
        self.conn = None
        self.der = der
        self.peer = peer
        self.ended = False
        self.front = Front(self)
        # In the listener's handshakes in progress (counted at the accept) until the broker opens
        # it or it ends: they count against max_connections.
        self.lst = under.lst
        idle = self.srv.broker.mqtt.get("idle_timeout") or _HANDSHAKE_MAX
        self.timer = asyncio.get_running_loop().call_later(idle, self._idle)

    # ---- the transport interface the broker side uses ----
    @property
    def transport(self):
        return self

    @property
    def peersni(self):
        # wss: the server name the client sent in its TLS handshake (client_attrs_init's peersni)
        return getattr(self.under, "peersni", None)

    @property
    def paused(self):
        return self.under.paused

    def flow(self, c):
        self.under.flow(c)

    def write(self, data):
        if not self.ended:
            self.under.transport.write(self.ws.send(data))

    def abort(self):
        self.ended = True
        self.under.transport.abort()

    def get_write_buffer_size(self):
        return self.under.transport.get_write_buffer_size()

    def linger(self):
        # The broker ended the connection (a server DISCONNECT, a refused CONNECT, a kick): the
        # MQTT bytes went out, then our close frame, then the port's FIN and lingering read.
        self.ws.close(websocket.NORMAL)
        self._end()

    # ---- input from the port's connection ----
    def feed(self, data):
        ws = self.ws
        mqtt = ws.feed(data)
        out = ws.take()
        if out and not self.ended:
            self.under.transport.write(out)
        if ws.upgraded and self.timer is not None:
            self.timer.cancel()
            self.timer = None
            self.peer = ws.peer
            self._upgraded()
            self.conn = self.srv.broker.open(self, ws.peer, self.listener, self.der)
            if self.conn is None:
                # max_connections (the broker logged it): a close frame that says try later.
                ws.close(1013, "max_connections reached")
                self._end()
                return
        if mqtt and self.conn is not None:
            self.conn.feed(mqtt)
        if ws.state == websocket.CLOSED:
            if not ws.upgraded:
                self.srv.log("warning", "listener %s: %s:%s: %s" % (self.listener, self.peer[0], self.peer[1], ws.error))
            elif ws.close_code not in (None, websocket.NORMAL, websocket.GOING_AWAY) or ws.peer_code is None:
                self.srv.log("info", "listener %s: %s:%s: %s (close code %s)" % (
                    self.listener, self.peer[0], self.peer[1], ws.error, ws.close_code))
            c = self.conn
            if c is not None:
                # The WebSocket ended under the MQTT connection: a network loss for MQTT (wills).
                self.conn = None
                c.lost()
            self._end()

    def _upgraded(self):
        # Out of the listener's handshakes in progress (once): opened, or ended before.
        lst = self.lst
        if lst is not None:
            self.lst = None
            lst.handshakes -= 1

    def lost(self):
        self._upgraded()
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.ended = True
        c = self.conn
        if c is not None:
            self.conn = None
            c.lost()

    def _idle(self):
        self.timer = None
        if self.ws.state == websocket.HANDSHAKE:
            self.srv.log("info", "listener %s: %s:%s: no WebSocket upgrade request in time; closed"
                         % (self.listener, self.peer[0], self.peer[1]))
            self.ws.close()
            self._end()

    def _end(self):
        self._upgraded()
        if self.ended:
            return
        out = self.ws.take()
        if out:
            self.under.transport.write(out)
        self.ended = True
        self.under.linger()


def _open(self, peer, der):
    return Handle(self, peer, der).front


_made = {}


def _ws_class(base):
    # The port's connection class with open() putting a Handle in between: server.Client for ws,
    # server.TLSClient for wss (made here from the listener's classes: no import of server).
    cls = _made.get(base)
    if cls is None:
        cls = _made[base] = type("WS" + base.__name__, (base,), {"__slots__": (), "open": _open})
    return cls


def setup(listener):
    # A server.Listener of kind ws or wss gets these connection classes.
    listener.ws = True
    listener.plain_cls = _ws_class(listener.plain_cls)
    listener.tls_cls = _ws_class(listener.tls_cls)
