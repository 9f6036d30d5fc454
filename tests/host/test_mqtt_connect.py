# CONNECT and CONNACK: protocol checks, return and reason codes, client ids, keep alive,
# a second CONNECT, session takeover.
import time

import rawmqtt as R
from clients import V31, V311, V5


def test_three_protocol_versions_share_one_broker(mod_broker, client, uid):
    sub31 = client(mod_broker.port, uid + "-31", V31)
    sub311 = client(mod_broker.port, uid + "-311", V311)
    sub5 = client(mod_broker.port, uid + "-5", V5)
    for c in (sub31, sub311, sub5):
        assert c.subscribe(uid + "/t", 1) == [1]
    for i, version in enumerate((V31, V311, V5)):
        pub = client(mod_broker.port, "%s-pub%d" % (uid, i), version)
        pub.publish(uid + "/t", b"from %d" % i, qos=1)
        for c in (sub31, sub311, sub5):
            m = c.expect()
            assert (m.topic, m.payload, m.qos) == (uid + "/t", b"from %d" % i, 1)


def test_wrong_protocol_name_closes_without_accepting(mod_broker):
    with R.RawClient(mod_broker.port) as c:
        good = R.connect("x", version=4)
        c.send(good.replace(b"MQTT", b"MQTX"))
        seen = c.until_closed()
        assert all(p.type != R.CONNACK or p.rc != 0 for p in seen), seen


def test_unsupported_protocol_level_gets_return_code_1(mod_broker):
    # MQTT 3.1.1 3.1.2-2: an unsupported level gets CONNACK 0x01 and the connection is closed.
    with R.RawClient(mod_broker.port) as c:
        c.send(R.connect("lvl", version=4).replace(b"MQTT\x04", b"MQTT\x07"))
        seen = c.until_closed()
        assert seen and seen[0].type == R.CONNACK, seen
        assert seen[0].rc in (0x01, 0x84), seen


def test_protocol_31_name_and_level_accepted(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=3) as c:
        ack = c.connect(uid, version=3)
        assert ack.rc == 0
        assert c.is_open()


def test_empty_client_id_is_assigned_on_311_clean_session(mod_broker, client, uid):
    c = client(mod_broker.port, "", V311, clean=True)
    assert c.rc == 0
    assert c.subscribe(uid + "/a", 1) == [1]
    c.publish(uid + "/a", b"hi", qos=1)
    assert c.expect().payload == b"hi"


def test_empty_client_id_gets_assigned_client_identifier_in_v5(mod_broker):
    ids = []
    for _ in range(2):
        with R.RawClient(mod_broker.port, version=5) as c:
            ack = c.connect("", version=5)
            assert ack.rc == 0
            assert ack.props.get("assigned_client_id"), ack
            ids.append(ack.props["assigned_client_id"])
    assert ids[0] != ids[1]


def test_empty_client_id_refused_on_31(mod_broker):
    with R.RawClient(mod_broker.port, version=3) as c:
        c.send(R.connect("", version=3))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.CONNACK, 0x02)]


def test_empty_client_id_refused_with_clean_session_0(mod_broker):
    with R.RawClient(mod_broker.port) as c:
        c.send(R.connect("", version=4, clean=False))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.CONNACK, 0x02)]


def test_keepalive_enforced_at_one_and_a_half_times(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5, keepalive=1).rc == 0
        start = time.monotonic()
        seen = c.until_closed(timeout=5)
        took = time.monotonic() - start
        assert 1.2 <= took <= 3.0, took
        assert all(p.rc == 0x8D for p in seen if p.type == R.DISCONNECT), seen


def test_keepalive_kept_by_pings(mod_broker, uid):
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid, keepalive=1).rc == 0
        for _ in range(5):
            time.sleep(0.6)
            assert c.is_open(), "closed although the client pinged within its keep alive"


def test_keepalive_multiplier_is_configurable(make_broker, uid):
    b = make_broker("mqtt.keepalive_multiplier = 3")
    with R.RawClient(b.port) as c:
        assert c.connect(uid, keepalive=1).rc == 0
        start = time.monotonic()
        c.until_closed(timeout=6)
        took = time.monotonic() - start
        assert 2.6 <= took <= 4.5, took


def test_server_keepalive_returned_and_enforced(make_broker, uid):
    b = make_broker("mqtt.server_keepalive = 1")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5, keepalive=60)
        assert ack.rc == 0
        assert ack.props.get("server_keepalive") == 1, ack
        start = time.monotonic()
        c.until_closed(timeout=5)
        assert 1.2 <= time.monotonic() - start <= 3.0


def test_second_connect_is_a_protocol_error_v5(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        c.send(R.connect(uid, version=5))
        seen = c.until_closed()
        assert all(p.type == R.DISCONNECT and p.rc == 0x82 for p in seen), seen


def test_second_connect_closes_311(mod_broker, uid):
    with R.RawClient(mod_broker.port) as c:
        assert c.connect(uid).rc == 0
        c.send(R.connect(uid))
        assert c.until_closed() == []


def test_takeover_sends_0x8e_to_the_old_connection_and_its_will(mod_broker, client, uid):
    watcher = client(mod_broker.port, uid + "-w")
    watcher.subscribe(uid + "/will", 1)
    old = client(mod_broker.port, uid, V5, will={"topic": uid + "/will", "payload": b"gone", "qos": 1})
    new = client(mod_broker.port, uid, V5)
    assert new.rc == 0
    assert old.wait_disconnected() == 0x8E
    m = watcher.expect()
    assert (m.topic, m.payload) == (uid + "/will", b"gone")
    # the new connection owns the client id now
    new.subscribe(uid + "/x", 0)
    new.publish(uid + "/x", b"ok")
    assert new.expect().payload == b"ok"


def test_takeover_311_closes_old_connection(mod_broker, uid):
    with R.RawClient(mod_broker.port) as old, R.RawClient(mod_broker.port) as new:
        assert old.connect(uid).rc == 0
        assert new.connect(uid).rc == 0
        assert old.until_closed() == []
        assert new.is_open()


def test_takeover_resuming_the_session_cancels_a_delayed_will(mod_broker, client, uid):
    from clients import props
    watcher = client(mod_broker.port, uid + "-w")
    watcher.subscribe(uid + "/will", 1)
    old = client(mod_broker.port, uid, V5, clean=False,
                 will={"topic": uid + "/will", "payload": b"gone", "qos": 1,
                       "props": props("WILLMESSAGE", WillDelayInterval=1)},
                 connect_props=props("CONNECT", SessionExpiryInterval=30))
    new = client(mod_broker.port, uid, V5, clean=False, connect_props=props("CONNECT", SessionExpiryInterval=30))
    assert new.session_present
    assert old.wait_disconnected() == 0x8E
    watcher.expect_none(1.8)
