# A deliberately small MQTT client over a plain socket, for the cases paho cannot produce:
# malformed packets, resends with a chosen packet id, exceeding the broker's windows, raw
# protocol levels. Encoders build exact bytes; RawClient reads whole packets back and decodes
# the ones a broker sends. Built by hand from the OASIS specs so it stays independent of the
# broker's own codec.
import socket
import struct
import time

CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP = 1, 2, 3, 4, 5, 6, 7
SUBSCRIBE, SUBACK, UNSUBSCRIBE, UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH = range(8, 16)

NAMES = {
    1: "CONNECT", 2: "CONNACK", 3: "PUBLISH", 4: "PUBACK", 5: "PUBREC", 6: "PUBREL", 7: "PUBCOMP",
    8: "SUBSCRIBE", 9: "SUBACK", 10: "UNSUBSCRIBE", 11: "UNSUBACK", 12: "PINGREQ",
    13: "PINGRESP", 14: "DISCONNECT", 15: "AUTH",
}

# MQTT 5 properties: name -> (identifier, wire type)
PROPS = {
    "payload_format": (1, "byte"),
    "message_expiry": (2, "u32"),
    "content_type": (3, "str"),
    "response_topic": (8, "str"),
    "correlation_data": (9, "bin"),
    "subscription_id": (11, "varint"),
    "session_expiry": (17, "u32"),
    "assigned_client_id": (18, "str"),
    "server_keepalive": (19, "u16"),
    "auth_method": (21, "str"),
    "auth_data": (22, "bin"),
    "request_problem_info": (23, "byte"),
    "will_delay": (24, "u32"),
    "request_response_info": (25, "byte"),
    "response_info": (26, "str"),
    "server_reference": (28, "str"),
    "reason_string": (31, "str"),
    "receive_maximum": (33, "u16"),
    "topic_alias_maximum": (34, "u16"),
    "topic_alias": (35, "u16"),
    "maximum_qos": (36, "byte"),
    "retain_available": (37, "byte"),
    "user_property": (38, "pair"),
    "maximum_packet_size": (39, "u32"),
    "wildcard_available": (40, "byte"),
    "subscription_id_available": (41, "byte"),
    "shared_available": (42, "byte"),
}
BY_ID = {v[0]: (k, v[1]) for k, v in PROPS.items()}
REPEATABLE = ("user_property", "subscription_id")


class Closed(Exception):
    pass


def varint(n):
    out = bytearray()
    while True:
        b = n % 128
        n //= 128
        out.append(b | 0x80 if n else b)
        if not n:
            return bytes(out)


def s(text):
    raw = text.encode("utf-8") if isinstance(text, str) else bytes(text)
    return struct.pack("!H", len(raw)) + raw


def encode_props(props):
    """props: dict or list of (name, value); user_property values are lists of (k, v)."""
    if props is None:
        return b"\x00"
    items = props.items() if isinstance(props, dict) else props
    body = bytearray()
    for name, value in items:
        pid, kind = PROPS[name]
        values = value if (name in REPEATABLE and isinstance(value, list)) else [value]
        for v in values:
            body += varint(pid)
            if kind == "byte":
                body.append(v)
            elif kind == "u16":
                body += struct.pack("!H", v)
            elif kind == "u32":
                body += struct.pack("!I", v)
            elif kind == "varint":
                body += varint(v)
            elif kind in ("str", "bin"):
                body += s(v)
            elif kind == "pair":
                body += s(v[0]) + s(v[1])
    return varint(len(body)) + bytes(body)


def packet(ptype, flags, body):
    return bytes([ptype << 4 | flags]) + varint(len(body)) + body


def connect(client_id="", version=4, clean=True, keepalive=60, will=None, username=None,
            password=None, props=None):
    """will: dict(topic, payload, qos=0, retain=False, props=None)."""
    name = b"MQIsdp" if version == 3 else b"MQTT"
    flags = 0x02 if clean else 0
    if will:
        flags |= 0x04 | (will.get("qos", 0) << 3) | (0x20 if will.get("retain") else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body = s(name) + bytes([version, flags]) + struct.pack("!H", keepalive)
    if version == 5:
        body += encode_props(props)
    body += s(client_id)
    if will:
        if version == 5:
            body += encode_props(will.get("props"))
        body += s(will["topic"]) + s(will["payload"])
    if username is not None:
        body += s(username)
    if password is not None:
        body += s(password)
    return packet(CONNECT, 0, body)


def publish(topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None, version=4):
    flags = (qos << 1) | (1 if retain else 0) | (8 if dup else 0)
    body = s(topic)
    if qos:
        body += struct.pack("!H", 1 if pid is None else pid)
    if version == 5:
        body += encode_props(props)
    if isinstance(payload, str):
        payload = payload.encode()
    return packet(PUBLISH, flags, body + payload)


def ack(ptype, pid, rc=None, props=None, version=4):
    """PUBACK/PUBREC/PUBREL/PUBCOMP; PUBREL carries the fixed flags 0b0010."""
    body = struct.pack("!H", pid)
    if version == 5 and (rc is not None or props is not None):
        body += bytes([rc or 0])
        if props is not None:
            body += encode_props(props)
    return packet(ptype, 2 if ptype == PUBREL else 0, body)


def subscribe(pid, filters, props=None, version=4):
    """filters: list of (filter, options-byte) or of filter strings (options = QoS 0)."""
    body = struct.pack("!H", pid)
    if version == 5:
        body += encode_props(props)
    for f in filters:
        if isinstance(f, str):
            f = (f, 0)
        body += s(f[0]) + bytes([f[1]])
    return packet(SUBSCRIBE, 2, body)


def unsubscribe(pid, filters, version=4):
    body = struct.pack("!H", pid)
    if version == 5:
        body += b"\x00"
    for f in filters:
        body += s(f)
    return packet(UNSUBSCRIBE, 2, body)


def pingreq():
    return b"\xc0\x00"


def disconnect(rc=None, props=None, version=4):
    if version == 5 and (rc is not None or props is not None):
        return packet(DISCONNECT, 0, bytes([rc or 0]) + encode_props(props))
    return b"\xe0\x00"


def auth(rc=0x18, props=None):
    return packet(AUTH, 0, bytes([rc]) + encode_props(props))


# ---- decoding what a broker sends ----

class Packet:
    def __init__(self, ptype, flags, body):
        self.type = ptype
        self.flags = flags
        self.body = body
        self.props = {}
        self.rc = None
        self.pid = None

    def __repr__(self):
        fields = {k: v for k, v in self.__dict__.items() if k not in ("body", "flags") and v not in (None, {})}
        return "<%s %r>" % (NAMES.get(self.type, self.type), fields)


def decode_props(buf, i):
    n, i = read_varint(buf, i)
    end = i + n
    out = {}
    while i < end:
        pid, i = read_varint(buf, i)
        name, kind = BY_ID.get(pid, ("unknown_%d" % pid, "byte"))
        if kind == "byte":
            v = buf[i]; i += 1
        elif kind == "u16":
            v = struct.unpack_from("!H", buf, i)[0]; i += 2
        elif kind == "u32":
            v = struct.unpack_from("!I", buf, i)[0]; i += 4
        elif kind == "varint":
            v, i = read_varint(buf, i)
        elif kind == "pair":
            k, i = read_str(buf, i)
            val, i = read_str(buf, i)
            v = (k, val)
        else:
            ln = struct.unpack_from("!H", buf, i)[0]
            v = bytes(buf[i + 2:i + 2 + ln]); i += 2 + ln
            if kind == "str":
                v = v.decode("utf-8")
        if name in REPEATABLE:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out, end


def read_varint(buf, i):
    n = mult = 0
    mult = 1
    while True:
        b = buf[i]; i += 1
        n += (b & 0x7F) * mult
        mult *= 128
        if not b & 0x80:
            return n, i


def read_str(buf, i):
    ln = struct.unpack_from("!H", buf, i)[0]
    return bytes(buf[i + 2:i + 2 + ln]).decode("utf-8"), i + 2 + ln


def decode(ptype, flags, body, version):
    p = Packet(ptype, flags, body)
    v5 = version == 5
    if ptype == CONNACK:
        p.session_present = bool(body[0] & 1)
        p.rc = body[1]
        if v5 and len(body) > 2:
            p.props, _ = decode_props(body, 2)
    elif ptype == PUBLISH:
        p.qos = (flags >> 1) & 3
        p.dup = bool(flags & 8)
        p.retain = bool(flags & 1)
        p.topic, i = read_str(body, 0)
        if p.qos:
            p.pid = struct.unpack_from("!H", body, i)[0]; i += 2
        if v5:
            p.props, i = decode_props(body, i)
        p.payload = bytes(body[i:])
    elif ptype in (PUBACK, PUBREC, PUBREL, PUBCOMP, UNSUBACK, SUBACK):
        p.pid = struct.unpack_from("!H", body, 0)[0]
        i = 2
        if ptype in (SUBACK, UNSUBACK):
            if v5:
                p.props, i = decode_props(body, i)
            p.codes = list(body[i:])
        else:
            p.rc = body[2] if (v5 and len(body) > 2) else 0
            if v5 and len(body) > 3:
                p.props, _ = decode_props(body, 3)
    elif ptype in (DISCONNECT, AUTH):
        p.rc = body[0] if body else 0
        if len(body) > 1:
            p.props, _ = decode_props(body, 1)
    return p


def subscribed(port, client_id, filt, qos=1, version=4, clean=True, props=None, sub_props=None):
    """A RawClient connected (CONNACK rc 0) and subscribed to filt at qos; and its CONNACK."""
    c = RawClient(port, version=version)
    ack = c.connect(client_id, version=version, clean=clean, props=props)
    assert ack.rc == 0
    c.subscribe(1, [(filt, qos)], props=sub_props, version=version)
    return c, ack


class RawClient:
    """One socket to the broker. recv() returns decoded Packets; Closed when the broker hangs up."""

    def __init__(self, port, version=4, host="127.0.0.1", timeout=5.0):
        self.version = version
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("no packet from the broker in time")
        self.sock.settimeout(remaining)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            raise TimeoutError("no packet from the broker in time")
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            raise Closed("broker closed the connection")
        self.buf += data

    def recv(self, timeout=5.0):
        deadline = time.monotonic() + timeout
        while True:
            if len(self.buf) >= 2:
                n = mult = 0
                mult, i, complete = 1, 1, False
                while i < len(self.buf) and i <= 4:
                    b = self.buf[i]
                    n += (b & 0x7F) * mult
                    mult *= 128
                    i += 1
                    if not b & 0x80:
                        complete = True
                        break
                if complete and len(self.buf) >= i + n:
                    head = self.buf[0]
                    body = bytes(self.buf[i:i + n])
                    del self.buf[:i + n]
                    return decode(head >> 4, head & 0x0F, body, self.version)
            if self.eof:
                raise Closed("broker closed the connection")
            self._fill(deadline)

    def expect(self, ptype, timeout=5.0):
        """The next packet, which must be of type ptype."""
        p = self.recv(timeout)
        assert p.type == ptype, "expected %s, got %r" % (NAMES[ptype], p)
        return p

    def connect(self, client_id="", timeout=5.0, **kw):
        kw.setdefault("version", self.version)
        self.send(connect(client_id, **kw))
        return self.expect(CONNACK, timeout)

    def subscribe(self, pid, filters, props=None, version=4):
        """SUBSCRIBE (the arguments of subscribe()) and its SUBACK, returned."""
        self.send(subscribe(pid, filters, props=props, version=version))
        return self.expect(SUBACK)

    def publish(self, topic, payload, qos, pid, **kw):
        """PUBLISH at QoS 1 or 2 (the other arguments of publish()) and its PUBACK or PUBREC, returned."""
        self.send(publish(topic, payload, qos=qos, pid=pid, **kw))
        return self.expect(PUBACK if qos == 1 else PUBREC)

    def until_closed(self, timeout=5.0):
        """Read until the broker closes the socket; the packets seen on the way."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                seen.append(self.recv(max(0.01, deadline - time.monotonic())))
            except Closed:
                return seen
            except TimeoutError:
                raise AssertionError("broker did not close the connection in %.1fs; saw %r" % (timeout, seen))

    def is_open(self, timeout=0.5):
        """Ping round trip: True when the broker answered, False when it closed the socket."""
        try:
            self.send(pingreq())
            while True:
                if self.recv(timeout).type == PINGRESP:
                    return True
        except (Closed, OSError):
            return False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
