# Typed errors shared by the core modules. Each carries a message a user can act on.


class GatemqError(Exception):
    pass


class MalformedPacket(GatemqError):
    # reason is the MQTT 5 reason code to send in DISCONNECT (0x81 malformed, 0x82 protocol error, ...)
    def __init__(self, msg, reason=0x81):
        super().__init__(msg)
        self.reason = reason


class ProtocolError(MalformedPacket):
    def __init__(self, msg, reason=0x82):
        super().__init__(msg, reason)


class DerError(GatemqError):
    def __init__(self, msg, offset=None):
        if offset is not None:
            msg = "at byte %d: %s" % (offset, msg)
        super().__init__(msg)
        self.offset = offset


class ConfigError(GatemqError):
    pass


class AuthError(GatemqError):
    pass


class CertRejected(GatemqError):
    # A verified-by-TLS client certificate that the broker's own checks refuse (revoked, missing
    # extended key usage, outside its validity). reason is a short word for logs and metrics.
    def __init__(self, reason, msg=None):
        super().__init__(msg or reason)
        self.reason = reason
