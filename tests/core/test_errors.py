from gatemq.errors import DerError, MalformedPacket, ProtocolError
from _check import raises


def _bad():
    raise DerError("indefinite length", 7)


def test_der_error_names_offset():
    e = raises(DerError, _bad)
    assert e.offset == 7
    assert "at byte 7" in str(e)


def test_protocol_error_is_malformed_with_reason():
    e = ProtocolError("second CONNECT")
    assert isinstance(e, MalformedPacket)
    assert e.reason == 0x82
