from gatemq.errors import CertRejected, ConfigError, DerError, MalformedPacket, ProtocolError
from _check import raises


def _bad():
    raise DerError("indefinite length", 7)


def test_der_error_names_offset():
    e = raises(DerError, _bad)
    assert e.offset == 7
    assert "at byte 7" in str(e)


def test_protocol_error_is_its_own_type_with_reason():
    e = ProtocolError("second CONNECT")
    assert not isinstance(e, MalformedPacket)
    assert e.reason == 0x82 and str(e) == "second CONNECT"
    e = MalformedPacket("truncated")
    assert not isinstance(e, ProtocolError) and e.reason == 0x81


def test_every_error_takes_its_message_first():
    assert ProtocolError("alias", 0x94).reason == 0x94
    assert MalformedPacket("too big", 0x95).reason == 0x95
    e = CertRejected("certificate expired at 5 (now 6)", "expired")
    assert e.reason == "expired" and str(e) == "certificate expired at 5 (now 6)"
    e = ConfigError("f.conf:3:1: mqtt.max_qos_allowed: expected 0|1|2, got 7",
                    "mqtt.max_qos_allowed", "expected 0|1|2, got 7")
    assert e.path == "mqtt.max_qos_allowed" and e.reason == "expected 0|1|2, got 7"
    assert str(e) == "f.conf:3:1: mqtt.max_qos_allowed: expected 0|1|2, got 7"
    e = ConfigError("acl.conf:2: bad rule")
    assert e.path is None and e.reason is None and str(e) == "acl.conf:2: bad rule"


def test_reason_codes_have_names_words_and_3x_codes():
    from gatemq import reasons as R
    assert R.NOT_AUTHORIZED == 0x87 and R.SESSION_TAKEN_OVER == 0x8E and R.QUOTA_EXCEEDED == 0x97
    assert R.connack_v3(R.BAD_USERNAME_OR_PASSWORD) == 4 and R.connack_v3(R.CLIENT_ID_NOT_VALID) == 2
    assert R.connack_v3(R.NOT_AUTHORIZED) == 5 and R.connack_v3(R.CONNECTION_RATE_EXCEEDED) == 5
    assert R.connack_v3(R.UNSUPPORTED_PROTOCOL_VERSION) == 1 and R.connack_v3(R.QUOTA_EXCEEDED) == 3
    assert R.word(R.SESSION_TAKEN_OVER) == "takenover" and R.word(R.KEEPALIVE_TIMEOUT) == "keepalive_timeout"
    assert R.word(R.PROTOCOL_ERROR) == "protocol_error" and R.word(R.MALFORMED_PACKET) == "frame_error"
