# Will messages: sent on an abnormal end with their properties and Will Delay Interval, cancelled
# when the session resumes, not sent on a normal DISCONNECT, sent on DISCONNECT 0x04.
import time

import rawmqtt as R
from clients import V311, V5, props


def _will(uid, **kw):
    w = {"topic": uid + "/will", "payload": b"bye", "qos": 1}
    w.update(kw)
    return w


def _watcher(client, port, uid):
    w = client(port, uid + "-watch")
    w.subscribe(uid + "/will", 1)
    return w


def test_will_sent_when_connection_drops_311(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    c = client(mod_broker.port, uid, V311, will=_will(uid))
    c.close()
    m = watch.expect()
    assert (m.topic, m.payload, m.qos) == (uid + "/will", b"bye", 1)


def test_will_sent_with_its_properties(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    wp = props("WILLMESSAGE", ContentType="text/plain", ResponseTopic=uid + "/resp",
               CorrelationData=b"\x01\x02", UserProperty=[("k", "v"), ("k", "w")], PayloadFormatIndicator=1,
               MessageExpiryInterval=60)
    c = client(mod_broker.port, uid, V5, will=_will(uid, props=wp))
    c.close()
    m = watch.expect()
    assert m.payload == b"bye"
    p = m.properties
    assert p.ContentType == "text/plain"
    assert p.ResponseTopic == uid + "/resp"
    assert p.CorrelationData == b"\x01\x02"
    assert p.UserProperty == [("k", "v"), ("k", "w")]
    assert p.PayloadFormatIndicator == 1
    assert 55 <= p.MessageExpiryInterval <= 60


def test_retained_will(mod_broker, client, uid):
    c = client(mod_broker.port, uid, V311, will=_will(uid, retain=True))
    c.close()
    time.sleep(0.3)
    late = client(mod_broker.port, uid + "-late")
    late.subscribe(uid + "/will", 1)
    m = late.expect()
    assert (m.payload, m.retain) == (b"bye", True)


def test_no_will_on_normal_disconnect(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    for version in (V311, V5):
        c = client(mod_broker.port, "%s-%d" % (uid, version), version, will=_will(uid))
        c.disconnect()
    watch.expect_none(0.6)


def test_disconnect_with_0x04_sends_the_will(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    c = client(mod_broker.port, uid, V5, will=_will(uid, payload=b"asked"))
    c.disconnect(reasoncode=0x04)
    assert watch.expect().payload == b"asked"


def test_will_delay_interval(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    c = client(mod_broker.port, uid, V5, will=_will(uid, props=props("WILLMESSAGE", WillDelayInterval=1)),
               connect_props=props("CONNECT", SessionExpiryInterval=30))
    c.close()
    start = time.monotonic()
    watch.expect_none(0.7)
    m = watch.expect(3)
    assert m.payload == b"bye"
    assert 0.8 <= time.monotonic() - start <= 3


def test_delayed_will_cancelled_when_session_resumes(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    c = client(mod_broker.port, uid, V5, will=_will(uid, props=props("WILLMESSAGE", WillDelayInterval=1)),
               connect_props=props("CONNECT", SessionExpiryInterval=30))
    c.close()
    again = client(mod_broker.port, uid, V5, clean=False, connect_props=props("CONNECT", SessionExpiryInterval=30))
    assert again.session_present
    watch.expect_none(2.0)


def test_will_sent_when_session_expires_before_the_delay(mod_broker, client, uid):
    # Will Delay 30 s but the session expires after 1 s: the will goes when the session ends.
    watch = _watcher(client, mod_broker.port, uid)
    c = client(mod_broker.port, uid, V5, will=_will(uid, props=props("WILLMESSAGE", WillDelayInterval=30)),
               connect_props=props("CONNECT", SessionExpiryInterval=1))
    c.close()
    assert watch.expect(4).payload == b"bye"


def test_will_sent_when_broker_closes_for_protocol_error(mod_broker, client, uid):
    watch = _watcher(client, mod_broker.port, uid)
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid, will={"topic": uid + "/will", "payload": b"err", "qos": 1}).rc == 0
        c.send(b"\x00\x00")  # packet type 0 is reserved
        c.until_closed()
    assert watch.expect().payload == b"err"
