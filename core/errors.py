# Typed errors shared by the core modules. Each carries a message a user can act on, and every
# class takes it first, then what it adds (reason code, offset, path, ...).


class GatemqError(Exception):
    pass


class MalformedPacket(GatemqError):
    # The bytes are not a packet (MQTT 5 reason 0x81, or 0x95 packet too large, 0x90 topic name
    # invalid). reason is the code to send in DISCONNECT or CONNACK.
    def __init__(self, msg, reason=0x81):
        super().__init__(msg)
        self.reason = reason


class ProtocolError(GatemqError):
    # A packet that parses but breaks the protocol's rules (0x82 protocol error, or a more precise
    # code such as 0x93 receive maximum exceeded). Not a MalformedPacket: catch both.
    def __init__(self, msg, reason=0x82):
        super().__init__(msg)
        self.reason = reason


class DerError(GatemqError):
    def __init__(self, msg, offset=None):
        if offset is not None:
            msg = "at byte %d: %s" % (offset, msg)
        super().__init__(msg)
        self.offset = offset


class ConfigError(GatemqError):
    # msg is the whole line a user sees ("file:line:col: key: expected ..., got ..."); path (the
    # key, "mqtt.max_qos_allowed") and reason ("expected ..., got ...") are the parts the HTTP API
    # reports on their own, None when the error is not about one key.
    def __init__(self, msg, path=None, reason=None):
        super().__init__(msg)
        self.path = path
        self.reason = reason


class AuthError(GatemqError):
    pass


class CertRejected(GatemqError):
    # A verified-by-TLS client certificate that the broker's own checks refuse (revoked, missing
    # extended key usage, outside its validity). reason is a short word for logs and metrics.
    def __init__(self, msg, reason):
        super().__init__(msg)
        self.reason = reason
