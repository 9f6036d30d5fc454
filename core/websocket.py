# MQTT over WebSocket (RFC 6455, MQTT 5.0 section 6), server side and sans-IO, for both ports:
# the HTTP upgrade with subprotocol negotiation, origin check and proxy headers; frames, masking,
# fragmentation, ping/pong and close codes. A port feeds the bytes it reads and writes what
# take() gives; MQTT bytes come out of feed() and go in through send().
#
#     ws = websocket.Server(opts, peer)     # opts: a ws/wss listener's `websocket` section
#     mqtt = ws.feed(data)                  # MQTT bytes carried by binary frames (may be b"")
#     if ws.opened and conn is None:        # the handshake succeeded: open the broker connection
#         conn = broker.open(handle, ws.peer, listener, der)    # ws.peer: after proxy headers
#     out = ws.take()                       # handshake answer, pongs, close frames: write them
#     if ws.state == CLOSED: ...            # write take() and close the transport; ws.error says why
#     transport.write(ws.send(packet_bytes))   # one binary frame
#     ws.close(1000)                        # the broker ended the connection: a close frame
#
# An MQTT stream needs no message boundaries (MQTT 5.0 6.0.0-2, -3), so the payload of a binary
# frame is handed on as it arrives, fragmented or not: nothing is buffered beyond a frame header
# and a control frame. A text frame closes with 1003 (MQTT-6.0.0-1).
import binascii
import hashlib

from gatemq import http

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

HANDSHAKE = 0
OPEN = 1
CLOSING = 2     # our close frame is sent, the peer's not yet read
CLOSED = 3      # write take() and close the transport

CONT = 0x0
TEXT = 0x1
BINARY = 0x2
CLOSE = 0x8
PING = 0x9
PONG = 0xA

# Close codes (RFC 6455 7.4.1).
NORMAL = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
NO_STATUS = 1005
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011

# Codes a peer may send (as wsproto accepts them): the defined protocol codes, then 3000..4999.
_PEER_CODES = (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013)

DEFAULTS = {
    "mqtt_path": "/mqtt",
    "supported_subprotocols": ["mqtt", "mqtt-v3", "mqtt-v3.1.1", "mqtt-v5"],
    "fail_if_no_subprotocol": True,
    "max_frame_size": None,
    "check_origin_enable": False,
    "allow_origin_absence": True,
    "check_origins": ["http://localhost:18083", "http://127.0.0.1:18083"],
    "proxy_address_header": "x-forwarded-for",
    "proxy_port_header": "x-forwarded-port",
}

_REASONS = {101: "Switching Protocols", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 426: "Upgrade Required", 431: "Request Header Fields Too Large"}


def accept_key(key):
    # Sec-WebSocket-Accept for a Sec-WebSocket-Key (str or bytes) -> str.
    if type(key) is str:
        key = key.encode()
    return binascii.b2a_base64(hashlib.sha1(key + GUID).digest()).strip().decode()


def unmask(data, mask, offset=0):
    # XOR with the 4-byte mask, starting `offset` bytes into the masked payload. One integer XOR
    # instead of a Python loop per byte (CPython: ~1 GB/s against ~20 MB/s).
    n = len(data)
    if not n:
        return b""
    r = offset & 3
    if r:
        mask = mask[r:] + mask[:r]
    key = mask * ((n >> 2) + 1)
    return (int.from_bytes(data, "big") ^ int.from_bytes(key[:n], "big")).to_bytes(n, "big")


def frame(opcode, payload=b"", fin=True, mask=None):
    # One frame. Servers send unmasked frames; `mask` (4 bytes) makes a client's frame (tests).
    n = len(payload)
    b0 = (0x80 if fin else 0) | opcode
    m = 0x80 if mask is not None else 0
    if n < 126:
        head = bytes((b0, m | n))
    elif n < 65536:
        head = bytes((b0, m | 126, n >> 8, n & 0xFF))
    else:
        head = bytes((b0, m | 127)) + n.to_bytes(8, "big")
    if mask is not None:
        return head + mask + unmask(payload, mask)
    return head + payload


def close_payload(code, reason=""):
    if code is None:
        return b""
    return bytes((code >> 8, code & 0xFF)) + reason.encode()[:123]


def _tokens(value):
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


class HandshakeError(Exception):
    def __init__(self, status, message, extra=()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.extra = extra


def _is_loopback(ip):
    return http.is_loopback(ip or "")


def check_request(req, opts, peer):
    # A parsed upgrade request (gatemq.http.Request) -> (subprotocol or None, peer); HandshakeError
    # with the HTTP status otherwise. EMQX's rules: the path, the origin, then the subprotocol.
    if req.method != "GET":
        raise HandshakeError(405, "a WebSocket upgrade is a GET", (("Allow", "GET"),))
    if req.version != "HTTP/1.1":
        raise HandshakeError(400, "a WebSocket upgrade needs HTTP/1.1")
    h = req.headers
    path = req.target.split("?", 1)[0]
    if path != opts["mqtt_path"]:
        raise HandshakeError(404, "no WebSocket endpoint at %s (mqtt_path is %s)" % (path[:100], opts["mqtt_path"]))
    if "websocket" not in _tokens(h.get("upgrade")) or "upgrade" not in _tokens(h.get("connection")):
        raise HandshakeError(426, "expected Upgrade: websocket and Connection: Upgrade",
                             (("Upgrade", "websocket"), ("Connection", "Upgrade")))
    if h.get("sec-websocket-version") != "13":
        raise HandshakeError(426, "Sec-WebSocket-Version: expected 13, got %r" % (h.get("sec-websocket-version") or "")[:20],
                             (("Sec-WebSocket-Version", "13"),))
    key = h.get("sec-websocket-key", "")
    try:
        ok = len(binascii.a2b_base64(key)) == 16 and len(key) == 24
    except Exception:
        ok = False
    if not ok:
        raise HandshakeError(400, "Sec-WebSocket-Key: expected 16 bytes in base64")
    if opts["check_origin_enable"]:
        origin = h.get("origin")
        if origin is None:
            if not opts["allow_origin_absence"]:
                raise HandshakeError(403, "no Origin header (allow_origin_absence = false)")
        elif origin.lower().rstrip("/") not in [o.lower().rstrip("/") for o in opts["check_origins"]]:
            raise HandshakeError(403, "Origin %r is not in check_origins" % origin[:100])
    sub = None
    offered = h.get("sec-websocket-protocol")
    if offered is None:
        if opts["fail_if_no_subprotocol"]:
            raise HandshakeError(400, "no Sec-WebSocket-Protocol (fail_if_no_subprotocol = true; "
                                      "supported: %s)" % ", ".join(opts["supported_subprotocols"]))
    else:
        supported = opts["supported_subprotocols"]
        for p in offered.split(","):
            p = p.strip()
            if p in supported:
                sub = p
                break
        if sub is None:
            raise HandshakeError(400, "none of the offered subprotocols %r is supported (supported: %s)"
                                 % (offered[:100], ", ".join(supported)))
    return sub, forwarded_peer(h, opts, peer)


def forwarded_peer(headers, opts, peer):
    # The client's address from a reverse proxy on the same box: the proxy headers count only
    # when the TCP peer is loopback (EMQX believes them from anyone). X-Forwarded-For's last
    # entry is the one our proxy added; earlier ones are whatever the client wrote.
    if peer is None or not _is_loopback(peer[0]):
        return peer
    ip, port = peer
    name = opts.get("proxy_address_header")
    if name:
        v = headers.get(name.lower())
        if v:
            last = v.split(",")[-1].strip()
            if last.startswith("[") and "]" in last:
                last = last[1:last.find("]")]
            if last:
                ip = last
    name = opts.get("proxy_port_header")
    if name:
        v = headers.get(name.lower())
        if v:
            v = v.split(",")[-1].strip()
            if v.isdigit() and int(v) < 65536:
                port = int(v)
    return (ip, port)


def _response(status, extra, body=b""):
    lines = ["HTTP/1.1 %d %s" % (status, _REASONS.get(status, "Error"))]
    for k, v in extra:
        lines.append("%s: %s" % (k, v))
    if status != 101:
        lines.append("Content-Type: text/plain; charset=utf-8")
        lines.append("Content-Length: %d" % len(body))
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Server:
    def __init__(self, opts, peer=None):
        self.opts = opts
        self.peer = peer
        self.state = HANDSHAKE
        self.subprotocol = None
        self.error = None           # why the connection is ending, for the log
        self.close_code = None      # the code we sent (or echoed)
        self.peer_code = None       # the code the peer sent
        self.out = []
        self.buf = b""
        self.rem = None             # payload bytes left in the current frame (None: read a header)
        self.op = 0
        self.fin = True
        self.mask = b""
        self.pos = 0                # bytes of the current frame's payload read so far
        self.ctrl = b""             # a control frame's payload so far
        self.frag = False           # inside a fragmented binary message
        self.max_frame = opts.get("max_frame_size")
        self.upgraded = False

    @property
    def opened(self):
        # The handshake succeeded (the connection may have closed since).
        return self.upgraded

    def take(self):
        if not self.out:
            return b""
        data = b"".join(self.out)
        self.out = []
        return data

    def send(self, data):
        # MQTT bytes -> one binary frame (b"" once closing: the broker's output is over).
        if self.state != OPEN or not data:
            return b""
        return frame(BINARY, data)

    def close(self, code=NORMAL, reason=""):
        # Our side ends the connection: a close frame, then the port closes after a linger.
        if self.state == OPEN:
            self.out.append(frame(CLOSE, close_payload(code, reason)))
            self.close_code = code
            self.state = CLOSING
        elif self.state == HANDSHAKE:
            self.state = CLOSED

    def _fail(self, code, why):
        # A protocol error: our close frame with the code, and the connection ends.
        if self.error is None:
            self.error = why
        if self.state == OPEN:
            self.out.append(frame(CLOSE, close_payload(code, why[:100])))
            self.close_code = code
        self.state = CLOSED

    # ---- input ----

    def feed(self, data):
        if self.state == CLOSED:
            return b""
        if self.buf:
            data = self.buf + data
            self.buf = b""
        if self.state == HANDSHAKE:
            end = data.find(b"\r\n\r\n")
            if end < 0:
                if len(data) > http.MAX_HEAD:
                    self._refuse(HandshakeError(431, "request head over %d bytes" % http.MAX_HEAD))
                else:
                    self.buf = data
                return b""
            if end + 4 > http.MAX_HEAD:
                self._refuse(HandshakeError(431, "request head over %d bytes" % http.MAX_HEAD))
                return b""
            try:
                try:
                    req = http.parse_head(data[:end])
                except http.HttpError as e:
                    raise HandshakeError(400, e.message)
                if req.length:
                    raise HandshakeError(400, "a WebSocket upgrade has no body")
                self.subprotocol, self.peer = check_request(req, self.opts, self.peer)
            except HandshakeError as e:
                self._refuse(e)
                return b""
            extra = [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                     ("Sec-WebSocket-Accept", accept_key(req.headers["sec-websocket-key"]))]
            if self.subprotocol is not None:
                extra.append(("Sec-WebSocket-Protocol", self.subprotocol))
            self.out.append(_response(101, extra))
            self.state = OPEN
            self.upgraded = True
            data = data[end + 4:]
        return self._frames(data)

    def _refuse(self, e):
        self.error = "WebSocket handshake refused: %d %s" % (e.status, e.message)
        self.out.append(_response(e.status, e.extra, (e.message + "\n").encode()))
        self.state = CLOSED

    def _frames(self, data):
        out = []
        i = 0
        n = len(data)
        while i < n and self.state != CLOSED:
            if self.rem is None:
                j = self._header(data, i)
                if j < 0:
                    self.buf = data[i:]
                    break
                i = j
                if self.state == CLOSED:
                    break
                if self.rem == 0:
                    self._end_frame(out)
                continue
            take = self.rem if self.rem < n - i else n - i
            chunk = unmask(data[i:i + take], self.mask, self.pos)
            i += take
            self.pos += take
            self.rem -= take
            if self.op >= CLOSE:
                self.ctrl += chunk
            elif self.state == OPEN:
                out.append(chunk)
            if self.rem == 0:
                self._end_frame(out)
        return b"".join(out)

    def _header(self, data, i):
        # Parses one frame header at data[i:] -> the index after it, or -1 for "incomplete".
        n = len(data)
        if n - i < 2:
            return -1
        b0 = data[i]
        b1 = data[i + 1]
        ln = b1 & 0x7F
        j = i + 2
        if ln == 126:
            if n - j < 2:
                return -1
            ln = (data[j] << 8) | data[j + 1]
            j += 2
            short = ln < 126
        elif ln == 127:
            if n - j < 8:
                return -1
            if data[j] & 0x80:
                self._fail(PROTOCOL_ERROR, "frame length with the most significant bit set")
                return j
            ln = int.from_bytes(data[j:j + 8], "big")
            j += 8
            short = ln < 65536
        else:
            short = False
        if n - j < 4 and b1 & 0x80:
            return -1
        op = b0 & 0x0F
        fin = b0 & 0x80
        if b0 & 0x70:
            self._fail(PROTOCOL_ERROR, "reserved bits set (no extension was negotiated)")
            return j
        if not b1 & 0x80:
            self._fail(PROTOCOL_ERROR, "an unmasked frame from a client")
            return j
        if short:
            self._fail(PROTOCOL_ERROR, "frame length not in its shortest form")
            return j
        if op >= CLOSE:
            if op not in (CLOSE, PING, PONG):
                self._fail(PROTOCOL_ERROR, "unknown control opcode 0x%x" % op)
                return j
            if not fin:
                self._fail(PROTOCOL_ERROR, "a fragmented control frame")
                return j
            if ln > 125:
                self._fail(PROTOCOL_ERROR, "a control frame over 125 bytes")
                return j
        elif op == CONT:
            if not self.frag:
                self._fail(PROTOCOL_ERROR, "a continuation frame without a message to continue")
                return j
        elif op == TEXT:
            self._fail(UNSUPPORTED_DATA, "a text frame (MQTT travels in binary frames)")
            return j
        elif op == BINARY:
            if self.frag:
                self._fail(PROTOCOL_ERROR, "a new message inside a fragmented one")
                return j
        else:
            self._fail(PROTOCOL_ERROR, "unknown data opcode 0x%x" % op)
            return j
        if self.max_frame is not None and ln > self.max_frame and op < CLOSE:
            self._fail(MESSAGE_TOO_BIG, "a frame of %d bytes, over max_frame_size (%d)" % (ln, self.max_frame))
            return j
        self.mask = data[j:j + 4]
        j += 4
        if op < CLOSE:
            self.frag = not fin
        self.op = op
        self.fin = fin
        self.rem = ln
        self.pos = 0
        self.ctrl = b""
        return j

    def _end_frame(self, out):
        self.rem = None
        op = self.op
        if op == PING:
            if self.state == OPEN:
                self.out.append(frame(PONG, self.ctrl))
        elif op == CLOSE:
            self._peer_close(self.ctrl)
        self.ctrl = b""

    def _peer_close(self, p):
        code = None
        reason = ""
        if len(p) == 1:
            self._fail(PROTOCOL_ERROR, "a close frame with a 1-byte payload")
            return
        if len(p) >= 2:
            code = (p[0] << 8) | p[1]
            if not (code in _PEER_CODES or 3000 <= code <= 4999):
                self._fail(PROTOCOL_ERROR, "close code %d is not one a peer may send" % code)
                return
            try:
                reason = p[2:].decode()
            except Exception:
                self._fail(INVALID_DATA, "a close reason that is not UTF-8")
                return
        self.peer_code = code
        if self.state == OPEN:
            # Echo the code (RFC 6455 5.5.1), then close.
            self.out.append(frame(CLOSE, close_payload(code)))
            self.close_code = code
            if self.error is None:
                self.error = "WebSocket closed by the client (%s%s)" % (
                    "no code" if code is None else code, (", " + reason[:60]) if reason else "")
        self.state = CLOSED
