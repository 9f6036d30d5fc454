# Other MQTT 5 features: Topic Alias both ways, Maximum Packet Size towards the client,
# pass-through properties, Payload Format Indicator, reason strings, AUTH refused with 0x8C.
import pytest

import rawmqtt as R
from clients import V5, props


def _raw_sub(port, cid, filt, qos=1, **connect_props):
    return R.subscribed(port, cid, filt, qos, version=5, props=connect_props or None)


def _sub_and_raw(port, client, uid, filt, qos):
    """A paho client uid-s subscribed to filt at qos, then an MQTT 5 RawClient uid connected;
    -> (that subscriber, the RawClient, its CONNACK)."""
    sub = client(port, uid + "-s")
    sub.subscribe(filt, qos)
    c = R.RawClient(port, version=5)
    return sub, c, c.connect(uid, version=5)


def test_topic_alias_from_client(mod_broker, client, uid):
    sub, c, ack = _sub_and_raw(mod_broker.port, client, uid, uid + "/#", 0)
    with c:
        assert ack.props.get("topic_alias_maximum", 0) >= 1
        c.send(R.publish(uid + "/aliased", b"1", props={"topic_alias": 1}, version=5))
        c.send(R.publish("", b"2", props={"topic_alias": 1}, version=5))
        # an alias can be remapped to another topic
        c.send(R.publish(uid + "/other", b"3", props={"topic_alias": 1}, version=5))
        c.send(R.publish("", b"4", props={"topic_alias": 1}, version=5))
        got = [(m.topic, m.payload) for m in sub.expect_n(4)]
        assert got == [(uid + "/aliased", b"1"), (uid + "/aliased", b"2"), (uid + "/other", b"3"), (uid + "/other", b"4")]
        assert c.is_open()


def test_topic_alias_maximum_is_configurable_and_enforced(make_broker, uid):
    b = make_broker("mqtt.max_topic_alias = 2")
    with R.RawClient(b.port, version=5) as c:
        ack = c.connect(uid, version=5)
        assert ack.props.get("topic_alias_maximum") == 2
        c.send(R.publish(uid + "/t", b"ok", props={"topic_alias": 2}, version=5))
        assert c.is_open()
        c.send(R.publish(uid + "/t", b"x", props={"topic_alias": 3}, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x94], seen
    b.wait_log_all([uid, "alias"])


def test_unknown_topic_alias_with_empty_topic_is_a_protocol_error(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.publish("", b"x", props={"topic_alias": 5}, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x82], seen


def _resolve(packets, maximum):
    aliases, out, used = {}, [], 0
    for p in packets:
        alias = p.props.get("topic_alias")
        if alias is not None:
            assert 1 <= alias <= maximum, p
            if p.topic:
                aliases[alias] = p.topic
            else:
                used += 1
            out.append(aliases[alias])
        else:
            assert p.topic, p
            out.append(p.topic)
    return out, used


def test_broker_assigns_aliases_up_to_the_clients_maximum(mod_broker, client, uid):
    c, _ = _raw_sub(mod_broker.port, uid, uid + "/#", qos=0, topic_alias_maximum=2)
    with c:
        pub = client(mod_broker.port, uid + "-p")
        topics = ["%s/long/topic/name/%d" % (uid, i % 3) for i in range(9)]
        for t in topics:
            pub.publish(t, b"x", qos=1)
        packets = [c.expect(R.PUBLISH) for _ in topics]
        resolved, used = _resolve(packets, 2)
        assert resolved == topics
        assert used >= 1, "the broker never sent an alias in place of a topic"


def test_no_aliases_towards_a_client_without_topic_alias_maximum(mod_broker, client, uid):
    c, _ = _raw_sub(mod_broker.port, uid, uid + "/#", qos=0)
    with c:
        pub = client(mod_broker.port, uid + "-p")
        for _ in range(3):
            pub.publish(uid + "/same", b"x", qos=1)
        for _ in range(3):
            p = c.expect(R.PUBLISH)
            assert p.topic == uid + "/same" and "topic_alias" not in p.props


# with and without properties the broker adds per subscriber (alias, subscription identifier)
@pytest.mark.parametrize("extra", [{}, {"topic_alias_maximum": 5}, {"subid": 7}])
def test_message_over_the_clients_maximum_packet_size_is_dropped_for_that_client(mod_broker, client, uid, extra):
    extra = dict(extra)
    subid = extra.pop("subid", None)
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/big", version=5, props=dict(maximum_packet_size=300, **extra),
                        sub_props={"subscription_id": subid} if subid else None)
    with c:
        normal = client(mod_broker.port, uid + "-n")
        normal.subscribe(uid + "/big", 1)
        pub = client(mod_broker.port, uid + "-p")
        pub.publish(uid + "/big", b"a" * 100, qos=1)
        pub.publish(uid + "/big", b"b" * 1000, qos=1)
        pub.publish(uid + "/big", b"c" * 10, qos=1)
        got = []
        for _ in range(2):
            p = c.expect(R.PUBLISH)
            got.append(p.payload)
            c.send(R.ack(R.PUBACK, p.pid, version=5))
        assert got == [b"a" * 100, b"c" * 10]
        assert [m.payload[:1] for m in normal.expect_n(3)] == [b"a", b"b", b"c"]
        assert c.is_open()


def test_request_and_response_properties_pass_through(mod_broker, client, uid):
    sub = client(mod_broker.port, uid + "-s")
    sub.subscribe(uid + "/req", 1)
    pub = client(mod_broker.port, uid + "-p")
    users = [("b", "2"), ("a", "1"), ("a", "3"), ("ünï", "çødé")]
    pub.publish(uid + "/req", b"{}", qos=1,
                properties=props(ResponseTopic=uid + "/resp", CorrelationData=b"\x00\xffid",
                                 UserProperty=users, ContentType="application/json", PayloadFormatIndicator=1))
    p = sub.expect().properties
    assert p.ResponseTopic == uid + "/resp"
    assert p.CorrelationData == b"\x00\xffid"
    assert p.UserProperty == users
    assert p.ContentType == "application/json"
    assert p.PayloadFormatIndicator == 1


def test_invalid_utf8_with_payload_format_indicator_is_refused(mod_broker, client, uid):
    sub, c, _ = _sub_and_raw(mod_broker.port, client, uid, uid + "/pfi", 1)
    with c:
        # indicator 0 (bytes): anything goes
        assert c.publish(uid + "/pfi", b"\xff\xfe", 1, 1, props={"payload_format": 0}, version=5).rc == 0
        assert sub.expect().payload == b"\xff\xfe"
        c.send(R.publish(uid + "/pfi", b"\xff\xfe", qos=1, pid=2, props={"payload_format": 1}, version=5))
        try:
            p = c.recv()
        except R.Closed:
            p = None
        assert p is not None and p.rc == 0x99, p
        assert p.type in (R.PUBACK, R.DISCONNECT)
    sub.expect_none(0.3)


def test_server_disconnect_carries_a_reason_string(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.connect(uid, version=5))
        seen = c.until_closed()
        d = [p for p in seen if p.type == R.DISCONNECT]
        assert d and d[0].rc == 0x82 and d[0].props.get("reason_string"), seen


def test_authentication_method_refused_with_0x8c(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.send(R.connect(uid, version=5, props={"auth_method": "SCRAM-SHA-1", "auth_data": b"x"}))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.CONNACK, 0x8C)], seen


def test_auth_packet_refused_with_0x8c(mod_broker, client, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        assert c.connect(uid, version=5).rc == 0
        c.send(R.auth(0x18, {"auth_method": "SCRAM-SHA-1"}))
        seen = c.until_closed()
        assert [(p.type, p.rc) for p in seen] == [(R.DISCONNECT, 0x8C)], seen
    other = client(mod_broker.port, uid + "-o")
    other.subscribe(uid + "/x")
    other.publish(uid + "/x", b"1")
    assert other.expect().payload == b"1"


@pytest.mark.parametrize("code", [0x00, 0x04])
def test_client_disconnect_reason_codes_accepted(mod_broker, uid, code):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.disconnect(code, version=5))
        assert c.until_closed() == []


def test_refused_connack_carries_a_reason_string(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.send(R.connect(uid, version=5, props={"auth_method": "GS2-KRB5"}))
        seen = c.until_closed()
        assert seen and seen[0].type == R.CONNACK and seen[0].rc == 0x8C
        assert seen[0].props.get("reason_string"), seen


def test_broker_assigned_aliases_do_not_survive_a_reconnect(mod_broker, client, uid):
    props_ = {"topic_alias_maximum": 2, "session_expiry": 60}
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/a", 0, version=5, clean=False, props=props_)
    pub = client(mod_broker.port, uid + "-p")
    for _ in range(3):
        pub.publish(uid + "/a", b"x", qos=1)
    _resolve([c.expect(R.PUBLISH) for _ in range(3)], 2)
    c.close()
    with R.RawClient(mod_broker.port, version=5) as c2:
        assert c2.connect(uid, version=5, clean=False, props=props_).session_present
        pub.publish(uid + "/a", b"y", qos=1)
        p = c2.expect(R.PUBLISH)
        assert p.topic == uid + "/a", "first message on a new connection used an alias from the old one: %r" % p


def test_client_aliases_do_not_survive_a_reconnect(mod_broker, uid):
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.publish(uid + "/t", b"1", props={"topic_alias": 1}, version=5))
        assert c.is_open()
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.send(R.publish("", b"2", props={"topic_alias": 1}, version=5))
        seen = c.until_closed()
        assert [p.rc for p in seen if p.type == R.DISCONNECT] == [0x82], seen


def test_retained_message_over_the_clients_maximum_packet_size_is_not_sent(mod_broker, client, uid):
    pub = client(mod_broker.port, uid + "-p")
    pub.publish(uid + "/r/big", b"B" * 1000, qos=1, retain=True)
    pub.publish(uid + "/r/small", b"s", qos=1, retain=True)
    c, _ = _raw_sub(mod_broker.port, uid, uid + "/r/+", maximum_packet_size=200)
    with c:
        p = c.expect(R.PUBLISH)
        assert (p.topic, p.payload) == (uid + "/r/small", b"s")
        c.send(R.ack(R.PUBACK, p.pid, version=5))
        with pytest.raises(TimeoutError):
            c.recv(0.4)


def test_qos1_publish_with_topic_alias_is_acknowledged(mod_broker, client, uid):
    sub, c, _ = _sub_and_raw(mod_broker.port, client, uid, uid + "/q", 1)
    with c:
        assert c.publish(uid + "/q", b"1", 1, 1, props={"topic_alias": 3}, version=5).pid == 1
        assert c.publish("", b"2", 1, 2, props={"topic_alias": 3}, version=5).pid == 2
    assert [(m.topic, m.payload) for m in sub.expect_n(2)] == [(uid + "/q", b"1"), (uid + "/q", b"2")]


def test_redelivered_messages_carry_topic_names_not_old_aliases(mod_broker, client, uid):
    props_ = {"topic_alias_maximum": 4, "session_expiry": 60}
    c, _ = R.subscribed(mod_broker.port, uid, uid + "/a", version=5, clean=False, props=props_)
    pub = client(mod_broker.port, uid + "-p")
    for i in range(3):
        pub.publish(uid + "/a", b"%d" % i, qos=1)
    _resolve([c.expect(R.PUBLISH) for _ in range(3)], 4)
    c.close()  # nothing acknowledged
    with R.RawClient(mod_broker.port, version=5) as c2:
        assert c2.connect(uid, version=5, clean=False, props=props_).session_present
        again = [c2.expect(R.PUBLISH) for _ in range(3)]
        resolved, _ = _resolve(again, 4)
        assert resolved == [uid + "/a"] * 3
        assert [p.payload for p in again] == [b"0", b"1", b"2"] and all(p.dup for p in again)


def test_retained_message_sent_on_subscribe_carries_the_subscription_identifier(mod_broker, client, uid):
    client(mod_broker.port, uid + "-p").publish(uid + "/r", b"kept", qos=1, retain=True)
    with R.RawClient(mod_broker.port, version=5) as c:
        c.connect(uid, version=5)
        c.subscribe(1, [(uid + "/r", 1)], props={"subscription_id": 42}, version=5)
        p = c.expect(R.PUBLISH)
        assert p.retain and p.props.get("subscription_id") == [42], p


def test_message_expiring_while_waiting_for_the_window_is_not_sent(mod_broker, client, uid):
    with R.subscribed(mod_broker.port, uid, uid + "/w", version=5, props={"receive_maximum": 1})[0] as c:
        pub = client(mod_broker.port, uid + "-p")
        pub.publish(uid + "/w", b"first", qos=1)
        pub.publish(uid + "/w", b"short-lived", qos=1, properties=props(MessageExpiryInterval=1))
        pub.publish(uid + "/w", b"last", qos=1)
        first = c.expect(R.PUBLISH)
        assert first.payload == b"first"
        import time
        time.sleep(2.1)
        c.send(R.ack(R.PUBACK, first.pid, version=5))
        p = c.expect(R.PUBLISH)
        assert p.payload == b"last", "an expired message was delivered: %r" % p
