# The client side of the MQTT codec: the packets only a client receives (CONNACK, SUBACK,
# UNSUBACK, PINGRESP) with their decoders, the encoders of what only a client sends (CONNECT,
# SUBSCRIBE, UNSUBSCRIBE). It builds on gatemq.packet only; gatemq.codec decodes the first ones
# through here and re-exports every name in PUBLIC, so codec.encode_connect and codec.Connack work
# as before; the broker itself never loads this module unless a client sends such a packet.
from gatemq.errors import MalformedPacket, ProtocolError
from gatemq.packet import (
    Packet, CONNACK, SUBACK, UNSUBACK, PINGRESP, MQTT31, MQTT5, pid as _pid, done as _done,
    reason as _rc, frame as _packet,
)
from gatemq.props import decode_props, encode_props, encode_str, encode_bin

PUBLIC = ("Connack", "Suback", "Unsuback", "Pingresp", "encode_connect", "encode_subscribe",
          "encode_unsubscribe", "_RC_CONNACK5", "_RC_SUBACK5", "_RC_SUBACK3", "_RC_UNSUBACK")

_RC_CONNACK5 = frozenset((0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A,
                          0x8C, 0x90, 0x95, 0x97, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F))
_RC_SUBACK5 = frozenset((0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2))
_RC_SUBACK3 = frozenset((0x00, 0x01, 0x02, 0x80))
_RC_UNSUBACK = frozenset((0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91))


class Connack(Packet):
    __slots__ = ("session_present", "rc", "props")
    ptype = CONNACK

    def __init__(self, session_present=False, rc=0, props=None):
        self.session_present = session_present
        self.rc = rc
        self.props = props


class _CodesAck(Packet):
    # SUBACK and UNSUBACK: a reason code per filter of the SUBSCRIBE or UNSUBSCRIBE answered;
    # codes is [] in an MQTT 3.x UNSUBACK, which carries none.
    __slots__ = ("pid", "codes", "props")

    def __init__(self, pid, codes=None, props=None):
        self.pid = pid
        self.codes = codes if codes is not None else []
        self.props = props


# No __slots__ of their own: Packet's __eq__ and __repr__ read the fields from _CodesAck's.
class Suback(_CodesAck):
    ptype = SUBACK


class Unsuback(_CodesAck):
    ptype = UNSUBACK


class Pingresp(Packet):
    __slots__ = ()
    ptype = PINGRESP


def _connack(ptype, body, version):
    flags = body[0]
    if flags & 0xFE:
        raise MalformedPacket("CONNACK reserved acknowledge flags 0x%02X set" % flags)
    rc = body[1]
    props = None
    pos = 2
    if version == MQTT5:
        _rc(rc, _RC_CONNACK5, "CONNACK")
        props, pos = decode_props(body, 2, CONNACK)
    elif rc > 5:
        raise ProtocolError("CONNACK return code %d is not defined in MQTT 3" % rc)
    _done(body, pos, "CONNACK")
    return Connack(flags == 1, rc, props)


def _codes(body, pos, allowed, what):
    # The reason codes filling the rest of a SUBACK or UNSUBACK: one per filter, so at least one.
    codes = list(body[pos:])
    if not codes:
        raise ProtocolError("%s has no reason codes" % what)
    for c in codes:
        _rc(c, allowed, what)
    return codes


def _suback(ptype, body, version):
    pid = _pid(body, 0, "SUBACK")
    pos = 2
    props = None
    allowed = _RC_SUBACK3
    if version == MQTT5:
        props, pos = decode_props(body, 2, SUBACK)
        allowed = _RC_SUBACK5
    return Suback(pid, _codes(body, pos, allowed, "SUBACK"), props)


def _unsuback(ptype, body, version):
    pid = _pid(body, 0, "UNSUBACK")
    if version != MQTT5:
        _done(body, 2, "UNSUBACK")
        return Unsuback(pid, [], None)
    props, pos = decode_props(body, 2, UNSUBACK)
    return Unsuback(pid, _codes(body, pos, _RC_UNSUBACK, "UNSUBACK"), props)


_PINGRESP = Pingresp()


def decode_client(ptype, body, version):
    if ptype == CONNACK:
        return _connack(ptype, body, version)
    if ptype == SUBACK:
        return _suback(ptype, body, version)
    if ptype == UNSUBACK:
        return _unsuback(ptype, body, version)
    _done(body, 0, "PINGRESP")
    return _PINGRESP


def encode_connect(client_id, version, clean_start=True, keepalive=60, username=None,
                   password=None, will=None, props=None):
    # will: a Will or None. username str, password bytes or str (None leaves them out).
    body = bytearray(b"\x00\x06MQIsdp" if version == MQTT31 else b"\x00\x04MQTT")
    flags = 2 if clean_start else 0
    if will is not None:
        flags |= 4 | (will.qos << 3) | (0x20 if will.retain else 0)
    if username is not None:
        flags |= 0x80
    if password is not None:
        flags |= 0x40
    body.append(version)
    body.append(flags)
    body.append(keepalive >> 8)
    body.append(keepalive & 0xFF)
    if version == MQTT5:
        body += encode_props(props)
    body += encode_str(client_id)
    if will is not None:
        if version == MQTT5:
            body += encode_props(will.props)
        body += encode_str(will.topic)
        body += encode_bin(will.payload)
    if username is not None:
        body += encode_str(username)
    if password is not None:
        body += encode_bin(password)
    return _packet(0x10, body)


def encode_subscribe(pid, topics, props, version):
    # topics: list of (filter, options int).
    body = bytearray((pid >> 8, pid & 0xFF))
    if version == MQTT5:
        body += encode_props(props)
    for f, opts in topics:
        body += encode_str(f)
        body.append(opts)
    return _packet(0x82, body)


def encode_unsubscribe(pid, filters, props, version):
    body = bytearray((pid >> 8, pid & 0xFF))
    if version == MQTT5:
        body += encode_props(props)
    for f in filters:
        body += encode_str(f)
    return _packet(0xA2, body)
