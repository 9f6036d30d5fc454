# What both sides of the MQTT codec share: packet types, protocol levels, the Packet base class,
# the field checks every decoder uses and the fixed header. gatemq.codec (the broker's side,
# re-exporting all of this) and gatemq.clientcodec (what only a client sends or receives) build on
# it; neither imports the other's names through the back door.
from gatemq.errors import MalformedPacket, ProtocolError
from gatemq.props import varint

CONNECT = 1
CONNACK = 2
PUBLISH = 3
PUBACK = 4
PUBREC = 5
PUBREL = 6
PUBCOMP = 7
SUBSCRIBE = 8
SUBACK = 9
UNSUBSCRIBE = 10
UNSUBACK = 11
PINGREQ = 12
PINGRESP = 13
DISCONNECT = 14
AUTH = 15

MQTT31 = 3
MQTT311 = 4
MQTT5 = 5

NAMES = ("reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
         "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT",
         "AUTH")


# Packet objects. Equality compares every attribute, so decoded packets compare to built ones.

class Packet:
    __slots__ = ()

    def __eq__(self, other):
        if type(other) is not type(self):
            return False
        for a in self.__slots__:
            if getattr(self, a) != getattr(other, a):
                return False
        return True

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__,
                           ", ".join("%s=%r" % (a, getattr(self, a)) for a in self.__slots__))


def pid(body, pos, what):
    # The packet identifier at pos; 0 is a protocol error where one is required.
    pid = (body[pos] << 8) | body[pos + 1]
    if not pid:
        raise ProtocolError("%s has packet identifier 0" % what)
    return pid


def done(body, pos, what):
    if pos != len(body):
        raise MalformedPacket("%s has %d unexpected bytes at its end" % (what, len(body) - pos))


def reason(rc, allowed, what):
    if rc not in allowed:
        raise ProtocolError("%s reason code 0x%02X is not defined for it" % (what, rc))
    return rc


PINGREQ_BYTES = b"\xc0\x00"
PINGRESP_BYTES = b"\xd0\x00"


def frame(fb, body):
    return bytes((fb,)) + varint(len(body)) + body
