# An application message as the broker holds it, with its outgoing encodings cached so a message
# fanned out to many subscribers is encoded once per protocol family and QoS.
from gatemq import codec

# Properties forwarded unchanged from PUBLISH to subscribers (MQTT 5 section 3.3.2.3).
_FORWARD = (codec.P_PAYLOAD_FORMAT, codec.P_CONTENT_TYPE, codec.P_RESPONSE_TOPIC,
            codec.P_CORRELATION_DATA, codec.P_USER_PROPERTY)


class Message:
    __slots__ = ("topic", "tbytes", "payload", "qos", "retain", "props", "expire_at", "sender", "_enc")

    def __init__(self, topic, payload, qos, retain, props=None, expire_at=None, sender=None):
        self.topic = topic
        self.tbytes = topic.encode()
        self.payload = payload
        self.qos = qos
        self.retain = retain
        self.props = props        # forwarded properties only, or None
        self.expire_at = expire_at
        self.sender = sender
        self._enc = None

    @staticmethod
    def from_publish(pkt, now, sender):
        props = None
        expire_at = None
        pp = pkt.props
        if pp:
            for k in _FORWARD:
                v = pp.get(k)
                if v is not None:
                    if props is None:
                        props = {}
                    props[k] = v
            exp = pp.get(codec.P_MESSAGE_EXPIRY)
            if exp is not None:
                expire_at = now + exp
        return Message(pkt.topic, pkt.payload, pkt.qos, pkt.retain, props, expire_at, sender)

    def expired(self, now):
        return self.expire_at is not None and now >= self.expire_at

    def props_for(self, now, subids):
        # Properties for one delivery: the forwarded set, the remaining expiry, and this
        # subscriber's subscription identifiers.
        if self.expire_at is None and subids is None:
            return self.props
        p = dict(self.props) if self.props else {}
        if self.expire_at is not None:
            left = self.expire_at - now
            p[codec.P_MESSAGE_EXPIRY] = int(left) if left >= 1 else 1
        if subids is not None:
            p[codec.P_SUBSCRIPTION_ID] = subids
        return p

    def encoded(self, v5, qos, retain):
        # -> (head, tail): the packet is head + packet-id + tail at QoS > 0, head + tail at QoS 0.
        # Only for deliveries whose properties are the message's own (no expiry, no subscription id,
        # no topic alias); others are encoded per delivery.
        key = (v5 << 3) | (qos << 1) | retain
        enc = self._enc
        if enc is None:
            enc = self._enc = {}
        else:
            hit = enc.get(key)
            if hit is not None:
                return hit
        pb = codec.encode_props(self.props) if v5 else b""
        buf = codec.encode_publish(self.tbytes, self.payload, qos, retain, False, 1 if qos else None,
                                   pb, 5 if v5 else 4)
        if qos:
            off = codec.publish_pid_offset(buf)
            hit = (bytes(buf[:off]), bytes(buf[off + 2:]))
        else:
            hit = (bytes(buf), b"")
        enc[key] = hit
        return hit
