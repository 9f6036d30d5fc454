# Memory held before CONNECT: a connection may buffer at most mqtt.max_connect_size of a packet
# before its CONNECT is in, and all such connections together stay under the broker's budget.
# (A partial 1 MB CONNECT was buffered until idle_timeout; 300 of them took 26 MB to 333 MB.)
from gatemq import codec
from _harness import Harness


def _header(size):
    # a CONNECT's fixed header announcing `size` bytes of body
    return b"\x10" + codec.varint(size)


def test_connect_announcing_more_than_max_connect_size_is_closed_at_its_header():
    h = Harness("mqtt.max_connect_size = 16KB")
    c = h.client()
    c.send(_header(1 << 20))
    assert c.closed
    assert "packet too large" in h.text() and "16384" in h.text()
    assert h.broker.pre_connect_held == 0
    ok = h.client()
    assert ok.connect("fine").rc == 0


def test_after_connack_max_packet_size_applies_again():
    h = Harness("mqtt { max_connect_size = 2KB, max_packet_size = 64KB }")
    c = h.client()
    assert c.connect("big-later").rc == 0
    c.subscribe(1, [("t", 0)])
    c.publish("t", b"x" * 30000)
    assert not c.closed
    assert len(c.publishes()[0].payload) == 30000


def test_partial_connects_count_against_the_budget_and_are_released():
    h = Harness("mqtt.max_connect_size = 4KB")
    b = h.broker
    b.pre_connect_budget = 10000
    a = h.client()
    a.send(_header(4000) + b"x" * 3000)
    assert b.pre_connect_held == 3003 and not a.closed
    c = h.client()
    c.send(_header(4000) + b"y" * 3000)
    d = h.client()
    d.send(_header(4000) + b"z" * 3000)
    assert b.pre_connect_held == 3 * 3003 and not d.closed
    e = h.client()
    e.send(_header(4000) + b"w" * 3000)        # past 10,000: this one is closed
    assert e.closed and not a.closed
    assert b.pre_connect_held == 3 * 3003
    assert "over the budget of 10000" in h.text()
    a.drop()                                    # a closed connection gives its bytes back
    assert b.pre_connect_held == 2 * 3003
    h.advance(20)                               # idle_timeout closes the others
    assert b.pre_connect_held == 0
    f = h.client()
    assert f.connect("after").rc == 0
    assert b.pre_connect_held == 0


def test_a_connect_completed_in_pieces_releases_what_it_held():
    h = Harness()
    b = h.broker
    pkt = codec.encode_connect("pieces", 4)
    c = h.client()
    c.version = 4
    c.send(pkt[:5])
    assert b.pre_connect_held == 5
    c.send(pkt[5:])
    assert c.expect(codec.CONNACK).rc == 0
    assert b.pre_connect_held == 0 and c.conn.held == 0
    c.publish("t", b"p" * 100)                  # after CONNACK nothing is counted
    assert b.pre_connect_held == 0
