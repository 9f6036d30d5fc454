# MQTT 5 properties (OASIS MQTT 5.0, section 2.2.2) and the primitive field codecs they share with
# the packet codec: UTF-8 strings, binary data and Variable Byte Integers.
#
# A property set is a plain dict {property id: value}: ints for Byte/Two/Four Byte Integer and
# Variable Byte Integer properties, str for UTF-8 strings, bytes for binary data, a list of
# (key, value) str pairs for P_USER_PROPERTY (wire order kept) and a list of ints for
# P_SUBSCRIPTION_ID (a PUBLISH may carry several). Decoders return None when a packet has none.
from gatemq.errors import MalformedPacket, ProtocolError

P_PAYLOAD_FORMAT = 0x01
P_MESSAGE_EXPIRY = 0x02
P_CONTENT_TYPE = 0x03
P_RESPONSE_TOPIC = 0x08
P_CORRELATION_DATA = 0x09
P_SUBSCRIPTION_ID = 0x0B
P_SESSION_EXPIRY = 0x11
P_ASSIGNED_CLIENT_ID = 0x12
P_SERVER_KEEPALIVE = 0x13
P_AUTH_METHOD = 0x15
P_AUTH_DATA = 0x16
P_REQUEST_PROBLEM_INFO = 0x17
P_WILL_DELAY = 0x18
P_REQUEST_RESPONSE_INFO = 0x19
P_RESPONSE_INFO = 0x1A
P_SERVER_REFERENCE = 0x1C
P_REASON_STRING = 0x1F
P_RECEIVE_MAXIMUM = 0x21
P_TOPIC_ALIAS_MAXIMUM = 0x22
P_TOPIC_ALIAS = 0x23
P_MAXIMUM_QOS = 0x24
P_RETAIN_AVAILABLE = 0x25
P_USER_PROPERTY = 0x26
P_MAXIMUM_PACKET_SIZE = 0x27
P_WILDCARD_SUB_AVAILABLE = 0x28
P_SUB_ID_AVAILABLE = 0x29
P_SHARED_SUB_AVAILABLE = 0x2A

# Where a property may appear is a bit mask over packet types; bit 0 (packet type 0 is reserved)
# stands for the Will Properties of a CONNECT.
WILL = 0
_CONNECT, _CONNACK, _PUBLISH = 1 << 1, 1 << 2, 1 << 3
_PUBACK, _PUBREC, _PUBREL, _PUBCOMP = 1 << 4, 1 << 5, 1 << 6, 1 << 7
_SUBSCRIBE, _SUBACK, _UNSUBSCRIBE, _UNSUBACK = 1 << 8, 1 << 9, 1 << 10, 1 << 11
_DISCONNECT, _AUTH, _WILL = 1 << 14, 1 << 15, 1

# Field types.
T_BYTE = 1
T_TWO = 2
T_FOUR = 4
T_VARINT = 5
T_STR = 6
T_BIN = 7
T_PAIR = 8

_ACKS = _PUBACK | _PUBREC | _PUBREL | _PUBCOMP

# property id -> (name for messages, type, packets it may appear in, smallest, largest value)
# The value bounds are the spec's protocol-error rules (a zero Receive Maximum, a Request Problem
# Information that is not 0 or 1, ...); None means no bound beyond the field's size.
SPEC = {
    P_PAYLOAD_FORMAT: ("Payload Format Indicator", T_BYTE, _PUBLISH | _WILL, 0, 1),
    P_MESSAGE_EXPIRY: ("Message Expiry Interval", T_FOUR, _PUBLISH | _WILL, None, None),
    P_CONTENT_TYPE: ("Content Type", T_STR, _PUBLISH | _WILL, None, None),
    P_RESPONSE_TOPIC: ("Response Topic", T_STR, _PUBLISH | _WILL, None, None),
    P_CORRELATION_DATA: ("Correlation Data", T_BIN, _PUBLISH | _WILL, None, None),
    P_SUBSCRIPTION_ID: ("Subscription Identifier", T_VARINT, _PUBLISH | _SUBSCRIBE, 1, None),
    P_SESSION_EXPIRY: ("Session Expiry Interval", T_FOUR, _CONNECT | _CONNACK | _DISCONNECT, None, None),
    P_ASSIGNED_CLIENT_ID: ("Assigned Client Identifier", T_STR, _CONNACK, None, None),
    P_SERVER_KEEPALIVE: ("Server Keep Alive", T_TWO, _CONNACK, None, None),
    P_AUTH_METHOD: ("Authentication Method", T_STR, _CONNECT | _CONNACK | _AUTH, None, None),
    P_AUTH_DATA: ("Authentication Data", T_BIN, _CONNECT | _CONNACK | _AUTH, None, None),
    P_REQUEST_PROBLEM_INFO: ("Request Problem Information", T_BYTE, _CONNECT, 0, 1),
    P_WILL_DELAY: ("Will Delay Interval", T_FOUR, _WILL, None, None),
    P_REQUEST_RESPONSE_INFO: ("Request Response Information", T_BYTE, _CONNECT, 0, 1),
    P_RESPONSE_INFO: ("Response Information", T_STR, _CONNACK, None, None),
    P_SERVER_REFERENCE: ("Server Reference", T_STR, _CONNACK | _DISCONNECT, None, None),
    P_REASON_STRING: ("Reason String", T_STR,
                      _CONNACK | _ACKS | _SUBACK | _UNSUBACK | _DISCONNECT | _AUTH, None, None),
    P_RECEIVE_MAXIMUM: ("Receive Maximum", T_TWO, _CONNECT | _CONNACK, 1, None),
    P_TOPIC_ALIAS_MAXIMUM: ("Topic Alias Maximum", T_TWO, _CONNECT | _CONNACK, None, None),
    # Topic Alias 0 and aliases above the negotiated maximum are 0x94, which the broker checks.
    P_TOPIC_ALIAS: ("Topic Alias", T_TWO, _PUBLISH, None, None),
    P_MAXIMUM_QOS: ("Maximum QoS", T_BYTE, _CONNACK, 0, 1),
    P_RETAIN_AVAILABLE: ("Retain Available", T_BYTE, _CONNACK, 0, 1),
    P_USER_PROPERTY: ("User Property", T_PAIR,
                      _CONNECT | _CONNACK | _PUBLISH | _WILL | _ACKS | _SUBSCRIBE | _SUBACK
                      | _UNSUBSCRIBE | _UNSUBACK | _DISCONNECT | _AUTH, None, None),
    P_MAXIMUM_PACKET_SIZE: ("Maximum Packet Size", T_FOUR, _CONNECT | _CONNACK, 1, None),
    P_WILDCARD_SUB_AVAILABLE: ("Wildcard Subscription Available", T_BYTE, _CONNACK, 0, 1),
    P_SUB_ID_AVAILABLE: ("Subscription Identifier Available", T_BYTE, _CONNACK, 0, 1),
    P_SHARED_SUB_AVAILABLE: ("Shared Subscription Available", T_BYTE, _CONNACK, 0, 1),
}

_NAMES = ("Will", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
          "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH")
VARINT_MAX = 268435455

# MicroPython's bytes.decode accepts overlong forms, surrogates and code points past U+10FFFF;
# CPython's does not. Where it is lax, non-ASCII strings get the well-formedness check below.
try:
    b"\xed\xa0\x80".decode()
    _LAX_UTF8 = True
except UnicodeError:
    _LAX_UTF8 = False


def _well_formed(b):
    # Unicode 15, table 3-7: the well-formed UTF-8 byte sequences.
    i = 0
    n = len(b)
    while i < n:
        c = b[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            k, lo, hi = 1, 0x80, 0xBF
        elif c == 0xE0:
            k, lo, hi = 2, 0xA0, 0xBF
        elif c == 0xED:
            k, lo, hi = 2, 0x80, 0x9F
        elif 0xE1 <= c <= 0xEF:
            k, lo, hi = 2, 0x80, 0xBF
        elif c == 0xF0:
            k, lo, hi = 3, 0x90, 0xBF
        elif 0xF1 <= c <= 0xF3:
            k, lo, hi = 3, 0x80, 0xBF
        elif c == 0xF4:
            k, lo, hi = 3, 0x80, 0x8F
        else:
            return False
        if i + k >= n:
            return False
        if not lo <= b[i + 1] <= hi:
            return False
        for j in range(i + 2, i + 1 + k):
            if not 0x80 <= b[j] <= 0xBF:
                return False
        i += 1 + k
    return True


def utf8_ok(b):
    # True when b is well-formed UTF-8 (no surrogates, nothing past U+10FFFF). The broker uses it
    # for payloads that declare Payload Format Indicator 1.
    try:
        s = str(b, "utf-8")
    except UnicodeError:
        return False
    if _LAX_UTF8 and len(s) != len(b):
        return _well_formed(b)
    return True


def text(b, what):
    # An MQTT UTF-8 Encoded String from the bytes b: well-formed and free of U+0000
    # ([MQTT-1.5.4-1], [MQTT-1.5.4-2]).
    try:
        s = str(b, "utf-8")
    except UnicodeError:
        raise MalformedPacket("%s is not valid UTF-8" % what)
    if _LAX_UTF8 and len(s) != len(b) and not _well_formed(b):
        raise MalformedPacket("%s is not valid UTF-8" % what)
    if "\x00" in s:
        raise MalformedPacket("%s contains U+0000" % what)
    return s


def read_str(body, pos, what):
    # -> (str, position after it)
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
    if end > len(body):
        raise MalformedPacket("%s runs past the end of the packet" % what)
    return text(body[pos + 2:end], what), end


def read_bin(body, pos, what):
    end = pos + 2 + ((body[pos] << 8) | body[pos + 1])
    if end > len(body):
        raise MalformedPacket("%s runs past the end of the packet" % what)
    return bytes(body[pos + 2:end]), end


def read_varint(body, pos, what):
    # A Variable Byte Integer: at most 4 bytes, in the fewest bytes that hold it ([MQTT-1.5.5-1]).
    n = 0
    shift = 0
    for i in range(pos, pos + 4):
        c = body[i]
        n |= (c & 0x7F) << shift
        if not c & 0x80:
            if c == 0 and i > pos:
                raise MalformedPacket("%s is not in its shortest form" % what)
            return n, i + 1
        shift += 7
    raise MalformedPacket("%s is longer than 4 bytes" % what)


def varint(n):
    if n < 0x80:
        return bytes((n,))
    if n > VARINT_MAX:
        raise ValueError("%d does not fit a Variable Byte Integer" % n)
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def encode_str(s):
    b = s.encode() if isinstance(s, str) else s
    n = len(b)
    if n > 0xFFFF:
        raise ValueError("string of %d bytes is longer than 65535" % n)
    return bytes((n >> 8, n & 0xFF)) + b


encode_bin = encode_str


def decode_props(body, pos, ptype):
    # -> (dict or None, position after the properties). ptype is the packet type, or WILL.
    length, pos = read_varint(body, pos, "property length")
    end = pos + length
    if end > len(body):
        raise MalformedPacket("properties run past the end of the packet")
    if not length:
        return None, pos
    mask = 1 << ptype
    props = {}
    while pos < end:
        pid = body[pos]
        pos += 1
        spec = SPEC.get(pid)
        if spec is None:
            raise MalformedPacket("unknown property id 0x%02X in %s" % (pid, _NAMES[ptype]))
        name, typ, allowed, lo, hi = spec
        if not allowed & mask:
            raise MalformedPacket("%s is not allowed in %s" % (name, _NAMES[ptype]))
        if typ == T_BYTE:
            v = body[pos]
            pos += 1
        elif typ == T_TWO:
            v = (body[pos] << 8) | body[pos + 1]
            pos += 2
        elif typ == T_FOUR:
            if pos + 4 > end:
                raise MalformedPacket("%s runs past the end of the properties" % name)
            v = int.from_bytes(body[pos:pos + 4], "big")
            pos += 4
        elif typ == T_VARINT:
            v, pos = read_varint(body, pos, name)
        elif typ == T_STR:
            v, pos = read_str(body, pos, name)
        elif typ == T_BIN:
            v, pos = read_bin(body, pos, name)
        else:
            k, pos = read_str(body, pos, "User Property name")
            v, pos = read_str(body, pos, "User Property value")
            v = (k, v)
        if pos > end:
            raise MalformedPacket("%s runs past the end of the properties" % name)
        if lo is not None and v < lo:
            raise ProtocolError("%s of %d is not allowed" % (name, v))
        if hi is not None and v > hi:
            raise ProtocolError("%s of %d is not allowed" % (name, v))
        if typ == T_PAIR or (pid == P_SUBSCRIPTION_ID):
            lst = props.get(pid)
            if lst is None:
                props[pid] = [v]
            elif pid == P_SUBSCRIPTION_ID and ptype != 3:
                raise ProtocolError("Subscription Identifier appears twice in %s" % _NAMES[ptype])
            else:
                lst.append(v)
        elif pid in props:
            raise ProtocolError("%s appears twice in %s" % (name, _NAMES[ptype]))
        else:
            props[pid] = v
    if P_AUTH_DATA in props and P_AUTH_METHOD not in props:
        raise ProtocolError("Authentication Data without an Authentication Method in %s" % _NAMES[ptype])
    return props, pos


def props_body(props):
    # The encoded properties without their length prefix.
    out = bytearray()
    for pid, v in props.items():
        spec = SPEC.get(pid)
        if spec is None:
            raise ValueError("unknown property id 0x%02X" % pid)
        typ = spec[1]
        if typ == T_PAIR:
            for k, val in v:
                out.append(pid)
                out += encode_str(k)
                out += encode_str(val)
            continue
        if pid == P_SUBSCRIPTION_ID:
            for n in (v if isinstance(v, (list, tuple)) else (v,)):
                out.append(pid)
                out += varint(n)
            continue
        out.append(pid)
        if typ == T_BYTE:
            out.append(v)
        elif typ == T_TWO:
            out.append(v >> 8)
            out.append(v & 0xFF)
        elif typ == T_FOUR:
            out += v.to_bytes(4, "big")
        elif typ == T_VARINT:
            out += varint(v)
        else:
            out += encode_str(v)
    return out


def encode_props(props):
    # -> bytes: the Property Length followed by the properties; b"\x00" for None or {}.
    if not props:
        return b"\x00"
    out = props_body(props)
    return varint(len(out)) + out
