# MQTT control packets for 3.1 (MQIsdp, level 3), 3.1.1 (level 4) and 5.0 (level 5), sans-IO.
#
# Reader frames a byte stream into (first byte, body) pairs; decode() turns one of them into a
# packet object; the encode_* functions build packets, the hot server-side ones first. Only
# MalformedPacket and ProtocolError (two separate types: catch both) ever leave Reader.feed and
# decode; their .reason is the MQTT 5 reason code to put in DISCONNECT (or CONNACK).
#
# API in brief (details at each definition):
#   Reader(max_packet_size).feed(data) -> [(first_byte, body)], .max_packet_size may change
#   decode(first_byte, body, version or None) -> Connect | Connack | Publish | Ack | Subscribe |
#       Suback | Unsubscribe | Unsuback | Pingreq | Pingresp | Disconnect | Auth (all with .ptype)
#   encode_publish, publish_pid_offset, encode_connack, encode_ack, encode_suback, encode_unsuback,
#   encode_disconnect, encode_auth (server side); encode_connect, encode_subscribe,
#   encode_unsubscribe (client side); encode(packet, version) for any packet object. The client
#   side (Connack, Suback, Unsuback, Pingresp and those encoders) is in gatemq.clientcodec and
#   reachable here as codec.<name>; what both sides share (packet types, Packet, field checks,
#   the fixed header) is in gatemq.packet, so clientcodec never imports this module;
#   encode_props(dict) -> bytes, varint(n) -> bytes, utf8_ok(bytes) -> bool.
#   PINGREQ and PINGRESP are packet types (12, 13); their encoded packets are PINGREQ_BYTES and
#   PINGRESP_BYTES.
#
# Choices the specs leave open, made once here:
# - A Packet Identifier of 0 where one is required is a ProtocolError (0x82): the packet parses,
#   the protocol forbids the value.
# - Variable Byte Integers must use their shortest form ([MQTT-1.5.5-1]); others are malformed.
# - Reason codes outside the packet type's list are a ProtocolError.
# - Topic names and filters are only checked as UTF-8 strings here, plus the empty-topic rules
#   of PUBLISH; wildcard placement, Topic Alias ranges and Payload Format Indicator payloads are
#   the broker's checks (props.utf8_ok serves the last).
# - Decoded packets carry props=None when they have no properties.
from gatemq.errors import MalformedPacket, ProtocolError
from gatemq.props import (  # noqa: F401  (re-exported: the broker uses codec.P_*)
    P_PAYLOAD_FORMAT, P_MESSAGE_EXPIRY, P_CONTENT_TYPE, P_RESPONSE_TOPIC, P_CORRELATION_DATA,
    P_SUBSCRIPTION_ID, P_SESSION_EXPIRY, P_ASSIGNED_CLIENT_ID, P_SERVER_KEEPALIVE, P_AUTH_METHOD,
    P_AUTH_DATA, P_REQUEST_PROBLEM_INFO, P_WILL_DELAY, P_REQUEST_RESPONSE_INFO, P_RESPONSE_INFO,
    P_SERVER_REFERENCE, P_REASON_STRING, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_TOPIC_ALIAS,
    P_MAXIMUM_QOS, P_RETAIN_AVAILABLE, P_USER_PROPERTY, P_MAXIMUM_PACKET_SIZE,
    P_WILDCARD_SUB_AVAILABLE, P_SUB_ID_AVAILABLE, P_SHARED_SUB_AVAILABLE,
    WILL, VARINT_MAX, varint, encode_props, decode_props, encode_str, encode_bin, read_str,
    read_bin, text, utf8_ok, _LAX_UTF8,
)
from gatemq.packet import (  # noqa: F401  (re-exported: codec.CONNECT, codec.Packet, ...)
    CONNECT, CONNACK, PUBLISH, PUBACK, PUBREC, PUBREL, PUBCOMP, SUBSCRIBE, SUBACK, UNSUBSCRIBE,
    UNSUBACK, PINGREQ, PINGRESP, DISCONNECT, AUTH, MQTT31, MQTT311, MQTT5, NAMES, Packet,
    PINGREQ_BYTES, PINGRESP_BYTES, pid as _pid, done as _done, reason as _rc, frame as _packet,
)

# The largest packet MQTT can frame: a 4-byte remaining length of 268435455 plus the header.
MAX_PACKET = 1 + 4 + VARINT_MAX

# The fixed-header flag bits each packet type must carry (PUBLISH's are its own).
_FLAGS = (-1, 0, 0, -1, 0, 0, 2, 0, 2, 0, 2, 0, 0, 0, 0, 0)

_PROTOCOLS = (("MQIsdp", MQTT31), ("MQTT", MQTT311), ("MQTT", MQTT5))

# MQTT 5 reason codes each packet type may carry (MQTT 5.0 section 2.4 and the packet sections).
_RC_PUBACK = frozenset((0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99))
_RC_PUBREL = frozenset((0x00, 0x92))
_RC_DISCONNECT = frozenset((0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F,
                            0x90, 0x93, 0x94, 0x95, 0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D,
                            0x9E, 0x9F, 0xA0, 0xA1, 0xA2))
_RC_AUTH = frozenset((0x00, 0x18, 0x19))
_RC_ACK = (None, None, None, None, _RC_PUBACK, _RC_PUBACK, _RC_PUBREL, _RC_PUBREL)


# ---------------------------------------------------------------------------------------------
# Packet objects. Equality compares every attribute, so decoded packets compare to built ones.

class Will(Packet):
    __slots__ = ("topic", "payload", "qos", "retain", "props")

    def __init__(self, topic, payload=b"", qos=0, retain=False, props=None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.props = props


class Connect(Packet):
    __slots__ = ("proto_name", "version", "clean_start", "keepalive", "client_id", "will",
                 "username", "password", "props")
    ptype = CONNECT

    def __init__(self, client_id, version=MQTT311, clean_start=True, keepalive=60, will=None,
                 username=None, password=None, props=None, proto_name=None):
        self.proto_name = proto_name or ("MQIsdp" if version == MQTT31 else "MQTT")
        self.version = version
        self.clean_start = clean_start
        self.keepalive = keepalive
        self.client_id = client_id
        self.will = will
        self.username = username
        self.password = password
        self.props = props


class Publish(Packet):
    __slots__ = ("topic", "payload", "qos", "retain", "dup", "pid", "props")
    ptype = PUBLISH

    def __init__(self, topic, payload=b"", qos=0, retain=False, dup=False, pid=None, props=None):
        self.topic = topic
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.dup = dup
        self.pid = pid
        self.props = props


class Ack(Packet):
    # PUBACK, PUBREC, PUBREL and PUBCOMP.
    __slots__ = ("ptype", "pid", "rc", "props")

    def __init__(self, ptype, pid, rc=0, props=None):
        self.ptype = ptype
        self.pid = pid
        self.rc = rc
        self.props = props


class Subscribe(Packet):
    # topics: list of (filter, options); options holds QoS in bits 0-1, No Local in bit 2, Retain
    # As Published in bit 3 and Retain Handling in bits 4-5 (the last three MQTT 5 only).
    __slots__ = ("pid", "topics", "props")
    ptype = SUBSCRIBE

    def __init__(self, pid, topics, props=None):
        self.pid = pid
        self.topics = topics
        self.props = props


class Unsubscribe(Packet):
    __slots__ = ("pid", "filters", "props")
    ptype = UNSUBSCRIBE

    def __init__(self, pid, filters, props=None):
        self.pid = pid
        self.filters = filters
        self.props = props


class Pingreq(Packet):
    __slots__ = ()
    ptype = PINGREQ


class _RcProps(Packet):
    # DISCONNECT and AUTH: a reason code and properties, each of which may be left out.
    __slots__ = ("rc", "props")

    def __init__(self, rc=0, props=None):
        self.rc = rc
        self.props = props


# No __slots__ of their own: Packet's __eq__ and __repr__ read the fields from _RcProps'.
class Disconnect(_RcProps):
    ptype = DISCONNECT


class Auth(_RcProps):
    ptype = AUTH


# ---------------------------------------------------------------------------------------------
# Framing

class Reader:
    # Splits a byte stream into packets. feed() returns every complete packet now buffered as
    # (first byte, body bytes) and keeps the partial rest. A packet whose total size (fixed header
    # included) exceeds max_packet_size is refused as soon as its header is in, before its body is
    # buffered. When feed raises, the complete packets that came before the fault in the same call
    # are on the exception as .packets so they can still be served; the Reader is then unusable.

    def __init__(self, max_packet_size=None):
        self.max_packet_size = max_packet_size  # None: MQTT's own limit; the broker may change it
        self._buf = None  # bytearray of a partial packet, or None
        self._need = 0  # the partial packet's total size once its header is known

    def feed(self, data):
        if self._buf is not None:
            self._buf += data
            if len(self._buf) < self._need:
                return []
            buf = bytes(self._buf)
            self._buf = None
        elif type(data) is bytes:
            buf = data
        else:
            buf = bytes(data)
        out = []
        n = len(buf)
        pos = 0
        limit = self.max_packet_size or MAX_PACKET
        need = 0
        while n - pos >= 2:
            c = buf[pos + 1]
            if c < 0x80:
                body = pos + 2
                total = 2 + c
            else:
                rl = c & 0x7F
                shift = 7
                i = pos + 2
                while True:
                    if i >= n:
                        rl = -1
                        break
                    c = buf[i]
                    i += 1
                    rl |= (c & 0x7F) << shift
                    if not c & 0x80:
                        if not c:
                            self._fail(out, "remaining length is not in its shortest form", 0x81)
                        break
                    shift += 7
                    if shift == 28:
                        self._fail(out, "remaining length is longer than 4 bytes", 0x81)
                if rl < 0:
                    break
                body = i
                total = i - pos + rl
            if total > limit:
                self._fail(out, "packet too large: %d bytes, the limit is %d" % (total, limit), 0x95)
            end = pos + total
            if end > n:
                need = total
                break
            out.append((buf[pos], buf[body:end]))
            pos = end
        if pos < n:
            self._buf = bytearray(buf[pos:])
            self._need = need
        return out

    def pending(self):
        # Bytes of a partial packet held until the rest arrives.
        return len(self._buf) if self._buf is not None else 0

    def _fail(self, done, msg, reason):
        self._buf = None
        e = MalformedPacket(msg, reason)
        e.packets = done
        raise e


# ---------------------------------------------------------------------------------------------
# Decoding

def decode(first_byte, body, version):
    # -> packet object. version is the connection's protocol level, None before its CONNECT.
    ptype = first_byte >> 4
    try:
        if ptype == PUBLISH and version is not None:
            return _publish(first_byte, body, version)
        if version is None and ptype != CONNECT:
            raise ProtocolError("the first packet must be CONNECT, not %s" % NAMES[ptype])
        if not ptype:
            raise MalformedPacket("packet type 0 is reserved")
        if first_byte & 0x0F != _FLAGS[ptype]:
            raise MalformedPacket("%s has reserved fixed-header flags 0x%X set"
                                  % (NAMES[ptype], first_byte & 0x0F))
        return _DECODERS[ptype](ptype, body, version)
    except (IndexError, ValueError):
        # A fixed-size field ran past the end of the body (length-prefixed fields are checked).
        raise MalformedPacket("%s is truncated" % NAMES[ptype])


def _publish(fb, body, version):
    qos = (fb >> 1) & 3
    if qos == 3:
        raise MalformedPacket("PUBLISH with QoS 3")
    if fb & 8 and not qos:
        raise MalformedPacket("PUBLISH at QoS 0 with DUP set")
    pos = 2 + ((body[0] << 8) | body[1])
    if pos > len(body):
        raise MalformedPacket("PUBLISH topic runs past the end of the packet")
    # text() inlined: this is the hottest string in the broker.
    tb = body[2:pos]
    try:
        topic = str(tb, "utf-8")
    except UnicodeError:
        raise MalformedPacket("PUBLISH topic is not valid UTF-8")
    if _LAX_UTF8 and len(topic) != len(tb) or "\x00" in topic:
        topic = text(tb, "PUBLISH topic")
    pid = None
    if qos:
        pid = (body[pos] << 8) | body[pos + 1]
        if not pid:
            raise ProtocolError("PUBLISH at QoS %d has packet identifier 0" % qos)
        pos += 2
    props = None
    if version == MQTT5:
        if body[pos]:
            props, pos = decode_props(body, pos, PUBLISH)
        else:
            pos += 1
        if not topic and (props is None or P_TOPIC_ALIAS not in props):
            raise ProtocolError("PUBLISH has an empty topic and no Topic Alias")
    elif not topic:
        raise ProtocolError("PUBLISH has an empty topic")
    return Publish(topic, body[pos:], qos, fb & 1 == 1, fb & 8 == 8, pid, props)


def _connect(ptype, body, version):
    name, pos = read_str(body, 0, "CONNECT protocol name")
    level = body[pos]
    if (name, level) not in _PROTOCOLS:
        e = ProtocolError("unsupported protocol %r level %d: gatemq speaks MQIsdp 3, MQTT 4 and MQTT 5"
                          % (name, level), 0x84)
        e.level = level
        raise e
    flags = body[pos + 1]
    keepalive = (body[pos + 2] << 8) | body[pos + 3]
    pos += 4
    if flags & 1:
        raise MalformedPacket("CONNECT reserved flag is set")
    wqos = (flags >> 3) & 3
    if flags & 4:
        if wqos == 3:
            raise MalformedPacket("CONNECT will QoS is 3")
    elif wqos or flags & 0x20:
        raise MalformedPacket("CONNECT will QoS or retain is set without the will flag")
    if flags & 0x40 and not flags & 0x80 and level != MQTT5:
        raise MalformedPacket("CONNECT has a password flag without a user name flag")
    props = None
    if level == MQTT5:
        props, pos = decode_props(body, pos, CONNECT)
    client_id, pos = read_str(body, pos, "CONNECT client identifier")
    will = None
    if flags & 4:
        wprops = None
        if level == MQTT5:
            wprops, pos = decode_props(body, pos, WILL)
        wtopic, pos = read_str(body, pos, "CONNECT will topic")
        wpayload, pos = read_bin(body, pos, "CONNECT will payload")
        will = Will(wtopic, wpayload, wqos, flags & 0x20 == 0x20, wprops)
    username = password = None
    if flags & 0x80:
        username, pos = read_str(body, pos, "CONNECT user name")
    if flags & 0x40:
        password, pos = read_bin(body, pos, "CONNECT password")
    _done(body, pos, "CONNECT")
    return Connect(client_id, level, flags & 2 == 2, keepalive, will, username, password, props,
                   name)


def _ack(ptype, body, version):
    what = NAMES[ptype]
    pid = _pid(body, 0, what)
    n = len(body)
    rc = 0
    props = None
    if version == MQTT5 and n > 2:
        rc = _rc(body[2], _RC_ACK[ptype], what)
        if n > 3:
            props, pos = decode_props(body, 3, ptype)
            _done(body, pos, what)
    else:
        _done(body, 2, what)
    return Ack(ptype, pid, rc, props)


def _subscribe(ptype, body, version):
    pid = _pid(body, 0, "SUBSCRIBE")
    pos = 2
    props = None
    if version == MQTT5:
        props, pos = decode_props(body, 2, SUBSCRIBE)
        bad = 0xC0
    else:
        bad = 0xFC
    topics = []
    n = len(body)
    while pos < n:
        f, pos = read_str(body, pos, "SUBSCRIBE topic filter")
        opts = body[pos]
        pos += 1
        if opts & bad:
            raise MalformedPacket("SUBSCRIBE options 0x%02X of %r set reserved bits" % (opts, f))
        if opts & 3 == 3:
            # Malformed in 3.1.1 [MQTT-3.8.3-4], a protocol error in 5.0 (section 3.8.3.1).
            if version == MQTT5:
                raise ProtocolError("SUBSCRIBE asks QoS 3 for %r" % f)
            raise MalformedPacket("SUBSCRIBE asks QoS 3 for %r" % f)
        if opts & 0x30 == 0x30:
            raise ProtocolError("SUBSCRIBE asks Retain Handling 3 for %r" % f)
        if opts & 4 and f.startswith("$share/"):
            raise ProtocolError("SUBSCRIBE sets No Local on shared subscription %r [MQTT-3.8.3-4]" % f)
        topics.append((f, opts))
    if not topics:
        raise ProtocolError("SUBSCRIBE has no topic filters")
    return Subscribe(pid, topics, props)


def _unsubscribe(ptype, body, version):
    pid = _pid(body, 0, "UNSUBSCRIBE")
    pos = 2
    props = None
    if version == MQTT5:
        props, pos = decode_props(body, 2, UNSUBSCRIBE)
    filters = []
    n = len(body)
    while pos < n:
        f, pos = read_str(body, pos, "UNSUBSCRIBE topic filter")
        filters.append(f)
    if not filters:
        raise ProtocolError("UNSUBSCRIBE has no topic filters")
    return Unsubscribe(pid, filters, props)


def _ping(ptype, body, version):
    _done(body, 0, "PINGREQ")
    return _PINGREQ


def _client(ptype, body, version):
    # CONNACK, SUBACK, UNSUBACK and PINGRESP only a client receives: the broker decodes them only
    # to refuse them, so their code is loaded then (from gatemq.clientcodec), not at start.
    from gatemq import clientcodec
    return clientcodec.decode_client(ptype, body, version)


def _rc_props(ptype, body, allowed):
    # DISCONNECT and AUTH: the reason code and the properties may both be left out.
    what = NAMES[ptype]
    rc = _rc(body[0], allowed, what) if body else 0
    props = None
    if len(body) > 1:
        props, pos = decode_props(body, 1, ptype)
        _done(body, pos, what)
    return rc, props


def _disconnect(ptype, body, version):
    if version != MQTT5:
        _done(body, 0, "DISCONNECT")
        return Disconnect()
    rc, props = _rc_props(ptype, body, _RC_DISCONNECT)
    return Disconnect(rc, props)


def _auth(ptype, body, version):
    if version != MQTT5:
        raise MalformedPacket("AUTH exists only in MQTT 5")
    rc, props = _rc_props(ptype, body, _RC_AUTH)
    return Auth(rc, props)


_PINGREQ = Pingreq()
_DECODERS = (None, _connect, _client, _publish, _ack, _ack, _ack, _ack, _subscribe, _client,
             _unsubscribe, _client, _ping, _client, _disconnect, _auth)


# ---------------------------------------------------------------------------------------------
# Encoding. props arguments are dicts (or None); props_bytes is encode_props' output.

def encode_publish(topic_bytes, payload, qos, retain, dup, pid, props_bytes, version):
    # -> bytearray. The packet identifier (QoS > 0) sits at offset
    # len(fixed header) + 2 + len(topic_bytes), so one encoding can serve many subscribers with
    # their own identifiers patched in; publish_pid_offset(buf) finds it.
    if type(topic_bytes) is str:
        topic_bytes = topic_bytes.encode()
    tl = len(topic_bytes)
    rl = 2 + tl + len(payload)
    if qos:
        rl += 2
    if version == MQTT5:
        if not props_bytes:
            props_bytes = b"\x00"
        rl += len(props_bytes)
    buf = bytearray((0x30 | (qos << 1) | (1 if retain else 0) | (8 if dup else 0),))
    if rl < 0x80:
        buf.append(rl)
    else:
        buf += varint(rl)
    buf.append(tl >> 8)
    buf.append(tl & 0xFF)
    buf += topic_bytes
    if qos:
        buf.append(pid >> 8)
        buf.append(pid & 0xFF)
    if version == MQTT5:
        buf += props_bytes
    buf += payload
    return buf


def publish_pid_offset(buf):
    # Where the packet identifier of an encoded QoS 1/2 PUBLISH starts.
    i = 1
    while buf[i] & 0x80:
        i += 1
    i += 1
    return i + 2 + ((buf[i] << 8) | buf[i + 1])


def encode_connack(session_present, rc, props, version):
    # MQTT 3.1 has no Session Present flag: its first byte is reserved and stays 0.
    sp = 1 if session_present and version != MQTT31 else 0
    if version == MQTT5:
        return _packet(0x20, bytes((sp, rc)) + encode_props(props))
    return bytes((0x20, 2, sp, rc))


def encode_ack(ptype, pid, rc=0, props=None, version=MQTT311):
    fb = (ptype << 4) | (2 if ptype == PUBREL else 0)
    if version != MQTT5 or (not rc and not props):
        return bytes((fb, 2, pid >> 8, pid & 0xFF))
    if not props:
        return bytes((fb, 3, pid >> 8, pid & 0xFF, rc))
    return _packet(fb, bytes((pid >> 8, pid & 0xFF, rc)) + encode_props(props))


def encode_suback(pid, codes, props, version):
    head = bytes((pid >> 8, pid & 0xFF))
    if version == MQTT5:
        head += encode_props(props)
    return _packet(0x90, head + bytes(codes))


def encode_unsuback(pid, codes, props, version):
    if version != MQTT5:
        return bytes((0xB0, 2, pid >> 8, pid & 0xFF))
    return _packet(0xB0, bytes((pid >> 8, pid & 0xFF)) + encode_props(props) + bytes(codes))


def encode_disconnect(rc=0, props=None, version=MQTT311):
    if version != MQTT5 or (not rc and not props):
        return b"\xe0\x00"
    if not props:
        return bytes((0xE0, 1, rc))
    return _packet(0xE0, bytes((rc,)) + encode_props(props))


def encode_auth(rc=0, props=None):
    if not rc and not props:
        return b"\xf0\x00"
    return _packet(0xF0, bytes((rc,)) + encode_props(props))


def encode(packet, version):
    # Any packet object -> bytes, for clients and tests; the broker calls the encoders directly.
    # What only a client sends is encoded by gatemq.clientcodec, loaded on first use.
    t = packet.ptype
    if t == PUBLISH:
        p = packet
        return bytes(encode_publish(p.topic.encode(), p.payload, p.qos, p.retain, p.dup, p.pid,
                                    encode_props(p.props) if version == MQTT5 else b"", version))
    if t == CONNECT:
        p = packet
        from gatemq import clientcodec
        return clientcodec.encode_connect(p.client_id, p.version, p.clean_start, p.keepalive, p.username,
                              p.password, p.will, p.props)
    if t == CONNACK:
        return encode_connack(packet.session_present, packet.rc, packet.props, version)
    if PUBACK <= t <= PUBCOMP:
        return encode_ack(t, packet.pid, packet.rc, packet.props, version)
    if t == SUBSCRIBE:
        from gatemq import clientcodec
        return clientcodec.encode_subscribe(packet.pid, packet.topics, packet.props, version)
    if t == SUBACK:
        return encode_suback(packet.pid, packet.codes, packet.props, version)
    if t == UNSUBSCRIBE:
        from gatemq import clientcodec
        return clientcodec.encode_unsubscribe(packet.pid, packet.filters, packet.props, version)
    if t == UNSUBACK:
        return encode_unsuback(packet.pid, packet.codes, packet.props, version)
    if t == PINGREQ:
        return PINGREQ_BYTES
    if t == PINGRESP:
        return PINGRESP_BYTES
    if t == DISCONNECT:
        return encode_disconnect(packet.rc, packet.props, version)
    if t == AUTH:
        return encode_auth(packet.rc, packet.props)
    raise ValueError("cannot encode packet type %r" % t)


def __getattr__(name):
    # The client side of the codec (Connack, Suback, Unsuback, Pingresp, encode_connect,
    # encode_subscribe, encode_unsubscribe) lives in gatemq.clientcodec, which the broker
    # never needs: on boards that load bytecode into RAM it would cost heap. It stays reachable
    # here for clients and tests. (Dunder names are asked for by the import system itself.)
    if name[:2] == "__":
        raise AttributeError(name)
    from gatemq import clientcodec
    if name in clientcodec.PUBLIC:
        return getattr(clientcodec, name)
    raise AttributeError(name)
