# The session and QoS state machines, driven without sockets.
from gatemq import codec
from _harness import Harness


def test_qos1_delivery_and_puback():
    h = Harness()
    s = h.connected("sub")
    assert s.subscribe(1, [("t/#", 1)]).codes == [1]
    p = h.connected("pub")
    p.publish("t/1", b"hi", 1, pid=5)
    assert p.expect(codec.PUBACK).pid == 5
    got = s.publishes()
    assert len(got) == 1 and got[0].qos == 1 and got[0].payload == b"hi"
    sess = h.broker.sessions["sub"]
    assert got[0].pid in sess.inflight
    s.ack(codec.PUBACK, got[0].pid)
    assert not sess.inflight


def test_qos2_exactly_once_with_resend():
    h = Harness()
    s = h.subscriber([("q", 2)], "sub")
    p = h.connected("pub")
    p.publish("q", b"once", 2, pid=9)
    assert p.expect(codec.PUBREC).pid == 9
    p.publish("q", b"once", 2, pid=9, dup=True)   # resent before PUBREL: not delivered again
    assert p.expect(codec.PUBREC).pid == 9
    p.ack(codec.PUBREL, 9)
    assert p.expect(codec.PUBCOMP).pid == 9
    got = s.publishes()
    assert len(got) == 1
    s.ack(codec.PUBREC, got[0].pid)
    assert s.expect(codec.PUBREL).pid == got[0].pid
    s.ack(codec.PUBCOMP, got[0].pid)
    assert not h.broker.sessions["sub"].inflight


def test_delivered_qos_is_minimum():
    h = Harness()
    s = h.subscriber([("m", 0)], "sub")
    p = h.connected("pub")
    p.publish("m", b"x", 2, pid=1)
    assert s.publishes()[0].qos == 0


def test_persistent_session_redelivers_with_dup():
    h = Harness()
    s = h.subscriber([("r", 1)], "sub", clean_start=False)
    p = h.connected("pub")
    p.publish("r", b"1", 1, pid=1)
    first = s.publishes()[0]
    s.drop()                  # no PUBACK: the message stays in flight
    p.publish("r", b"2", 1, pid=2)  # queued while offline
    s2 = h.client()
    ack = s2.connect("sub", clean_start=False)
    assert ack.session_present
    got = s2.publishes()
    assert [g.payload for g in got] == [b"1", b"2"]
    assert got[0].dup and got[0].pid == first.pid
    assert not got[1].dup


def test_offline_queue_is_bounded_and_logged():
    h = Harness("mqtt.max_mqueue_len = 2")
    s = h.subscriber([("o", 1)], "sub", clean_start=False)
    s.drop()
    p = h.connected("pub")
    for i in range(4):
        p.publish("o", b"%d" % i, 1, pid=i + 1)
    assert len(h.broker.sessions["sub"].queue) == 2
    drops = [m for _, m in h.logs if "queue full" in m]
    # Two drops so far, one line: the first drop is logged at once, later ones are counted.
    assert len(drops) == 1 and "dropped 1 message" in drops[0]
    for i in range(4, 9):                   # five more drops within 10 s: no more log lines
        p.publish("o", b"%d" % i, 1, pid=i + 1)
    h.advance(11)
    p.publish("o", b"9", 1, pid=10)         # the next line counts what was dropped meanwhile
    drops = [m for _, m in h.logs if "queue full" in m]
    assert len(drops) == 2 and "dropped 7 message" in drops[1]
    s2 = h.connected("sub", clean_start=False)
    assert [g.payload for g in s2.publishes()] == [b"8", b"9"]


def test_send_window_follows_receive_maximum():
    h = Harness()
    s = h.subscriber([("w", 1)], "sub", version=5, props={codec.P_RECEIVE_MAXIMUM: 2})
    p = h.connected("pub")
    for i in range(5):
        p.publish("w", b"%d" % i, 1, pid=i + 1)
    got = s.publishes()
    assert len(got) == 2
    s.ack(codec.PUBACK, got[0].pid)
    more = s.publishes()
    assert [m.payload for m in more] == [b"2"]


def test_keepalive_is_enforced_at_one_and_a_half():
    h = Harness()
    c = h.connected("k", keepalive=10)
    h.advance(14)
    assert not c.closed
    h.advance(2)
    assert c.closed


def test_will_published_on_loss_not_on_disconnect():
    h = Harness()
    w = h.subscriber([("will/#", 0)], "watch")
    a = h.connected("a", will=codec.Will("will/a", b"gone"))
    a.send(codec.encode_disconnect(0, None, 4))
    assert w.publishes() == []
    b = h.connected("b", will=codec.Will("will/b", b"gone"))
    b.drop()
    assert [p.topic for p in w.publishes()] == ["will/b"]


def test_delayed_will_cancelled_on_resume():
    h = Harness()
    w = h.subscriber([("will/#", 0)], "watch")
    a = h.client()
    a.connect("a", version=5, clean_start=False, props={codec.P_SESSION_EXPIRY: 60},
              will=codec.Will("will/a", b"x", props={codec.P_WILL_DELAY: 5}))
    a.drop()
    h.advance(2)
    a2 = h.connected("a", version=5, clean_start=False, props={codec.P_SESSION_EXPIRY: 60})
    h.advance(10)
    assert w.publishes() == []


def test_retained_store_replace_delete():
    h = Harness()
    p = h.connected("p")
    p.publish("ret/a", b"1", 0, retain=True)
    p.publish("ret/a", b"2", 0, retain=True)
    p.publish("ret/b", b"3", 0, retain=True)
    p.publish("ret/b", b"", 0, retain=True)
    s = h.subscriber([("ret/#", 0)], "s")
    got = s.publishes()
    assert [(g.topic, g.payload, g.retain) for g in got] == [("ret/a", b"2", True)]


def test_malformed_input_closes_only_that_connection():
    h = Harness()
    good = h.subscriber([("g", 0)], "good")
    bad = h.connected("bad", version=5)
    bad.send(b"\x30\xff\xff\xff\xff\x01")     # remaining length of five bytes
    assert bad.closed
    assert bad.expect(codec.DISCONNECT).rc == 0x81
    p = h.connected("p")
    p.publish("g", b"still here")
    assert good.publishes()[0].payload == b"still here"


def test_takeover_sends_0x8e_to_old_v5_connection():
    h = Harness()
    a = h.connected("same", version=5)
    b = h.connected("same", version=5)
    assert a.closed
    assert a.expect(codec.DISCONNECT).rc == 0x8E
    assert not b.closed


def _hs256(claims, secret):
    import json
    from gatemq import jwt, pwhash
    h = jwt.b64url_encode(b'{"alg":"HS256","typ":"JWT"}').decode()
    p = jwt.b64url_encode(json.dumps(claims).encode()).decode()
    s = jwt.b64url_encode(pwhash.hmac_sha256(secret, (h + "." + p).encode())).decode()
    return (h + "." + p + "." + s).encode()


def test_jwt_expiry_disconnects_after_exp():
    h = Harness('authentication = [{mechanism = jwt, algorithm = hmac-based, secret = "s3"}]')
    now = 1.7e9 + h.clock.t
    c = h.client()
    ack = c.connect("j", version=5, username="u", password=_hs256({"exp": int(now) + 30}, b"s3"))
    assert ack.rc == 0
    h.advance(20)
    assert not c.closed
    h.advance(15)
    assert c.closed
    assert c.expect(codec.DISCONNECT).rc == 0x87
    bad = h.client()
    assert bad.connect("k", version=5, username="u", password=_hs256({"exp": int(now) + 30}, b"no")).rc == 0x86


def test_tick_returns_the_time_to_the_next_deadline():
    from gatemq.broker import TICK_MAX
    h = Harness("mqtt.idle_timeout = 200ms")
    assert h.broker.tick() == TICK_MAX                    # nothing due: the port's own cadence
    c = h.client()                                        # no CONNECT yet: its idle_timeout is next
    assert abs(h.broker.tick() - 0.2) < 1e-9
    h.clock.t += 0.15
    assert abs(h.broker.tick() - 0.05) < 1e-9
    h.clock.t += 0.06
    h.broker.tick()
    h.pump()
    assert c.closed
