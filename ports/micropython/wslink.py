# MQTT over WebSocket on the MicroPython port: a Link whose bytes pass through gatemq.websocket
# (the framing both ports share). The upgrade request is read before the broker hears of the
# connection (after the TLS handshake on wss, so a client certificate is checked and mapped as
# on an ssl listener); then every read is unframed into MQTT bytes and every packet the broker
# sends goes out as one binary frame.
from asyncio import core

from gatemq import websocket

from .link import Link, READ_SIZE


class WSLink(Link):
    upgrade = True
    ws = None

    async def _handshake(self):
        # -> the first MQTT bytes (b"" for none yet), or None when the connection is over.
        first = b""
        if self.lst.binder is not None:
            first = await Link._handshake(self)
            if first is None:
                return None
        ws = self.ws = websocket.Server(self.lst.ws, self.peer)
        sock = self.sock
        data = first
        while True:
            if data:
                mqtt = ws.feed(data)
                out = ws.take()
                if out:
                    Link.send(self, out)
                if ws.state == websocket.CLOSED:
                    self.srv.log("warning", "%s: %s: %s" % (self.lst.label, self.name(), ws.error))
                    self.finish(5)
                    await self._linger()
                    return None
                if ws.upgraded:
                    self.peer = ws.peer
                    return mqtt
            data = sock.read(READ_SIZE)
            if data is None:
                yield core._io_queue.queue_read(self.io())
                continue
            if not data:
                return None

    def _feed(self, data):
        ws = self.ws
        mqtt = ws.feed(data)
        out = ws.take()
        if out:
            Link.send(self, out)
        if mqtt and self.conn is not None:
            self.conn.feed(mqtt)
        if ws.state == websocket.CLOSED and not self.done:
            if ws.close_code not in (None, websocket.NORMAL, websocket.GOING_AWAY) or ws.peer_code is None:
                self.srv.log("info", "%s: %s: %s (close code %s)" % (self.lst.label, self.name(), ws.error,
                                                                     ws.close_code))
            self.done = True
            self.linger = True
        self.srv.pump()

    def send(self, data):
        # The broker's output: one binary frame.
        if self.ws is not None and data:
            Link.send(self, self.ws.send(data))

    def finish(self, linger):
        # The broker closes the connection: after its last packet, our close frame.
        ws = self.ws
        if not self.done and ws is not None and ws.state == websocket.OPEN:
            ws.close(websocket.NORMAL)
            Link.send(self, ws.take())
        Link.finish(self, linger)
