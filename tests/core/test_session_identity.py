# Issue 11: a certificate's (or username's) identity owns its session; takeovers leave no orphan;
# nothing a client chooses floods the log. Driven without sockets by the fake-clock harness.
from gatemq import codec
from _harness import Harness

ACL = '{allow, all, all, ["devices/${username}/#"]}.\n{deny, all}.\n'
ACL_CONF = 'authorization { no_match = deny, sources = [{type = file, path = "acl.conf"}] }\n'


def _bob_offline(h, version=4):
    bob = h.client()
    assert bob.connect("bob", version, clean_start=False, username="bob",
                       props={codec.P_SESSION_EXPIRY: 600} if version == 5 else None).rc == 0
    assert bob.subscribe(1, [("devices/bob/#", 1)]).codes == [1]
    bob.send(codec.encode_disconnect(0, None, version))
    return bob


def test_another_identity_cannot_resume_a_session():
    h = Harness(ACL_CONF, {"acl.conf": ACL})
    _bob_offline(h)
    alice = h.client()
    ack = alice.connect("bob", 4, clean_start=False, username="alice")
    assert ack.rc == 5 and not ack.session_present and alice.closed
    assert "has a session made by another identity" in h.text()
    # bob's session is untouched: his command is queued for him and reaches him when he returns
    p = h.connected("ctl", 4, username="bob")
    p.publish("devices/bob/cmd", b"open", 1, pid=1)
    assert p.expect(codec.PUBACK).pid == 1
    bob = h.client()
    ack = bob.connect("bob", 4, clean_start=False, username="bob")
    assert ack.rc == 0 and ack.session_present
    assert [m.payload for m in bob.publishes()] == [b"open"]


def test_another_identity_cannot_kick_a_connected_client_v5():
    h = Harness()
    bob = h.client()
    assert bob.connect("bob", 5, username="bob").rc == 0
    alice = h.client()
    ack = alice.connect("bob", 5, clean_start=True, username="alice")
    assert ack.rc == 0x87 and alice.closed
    assert not bob.closed and h.broker.sessions["bob"].conn is bob.conn
    # the same identity still takes over, as MQTT says
    again = h.client()
    assert again.connect("bob", 5, username="bob").rc == 0
    assert bob.closed and bob.expect(codec.DISCONNECT).rc == 0x8E


def test_identity_check_can_be_turned_off_and_resumed_subscriptions_are_reauthorized():
    h = Harness(ACL_CONF + "mqtt.session_identity_check = false", {"acl.conf": ACL})
    _bob_offline(h)
    alice = h.client()
    ack = alice.connect("bob", 4, clean_start=False, username="alice")
    assert ack.rc == 0 and ack.session_present
    # bob's subscription was authorized for bob, not for alice: it is gone
    assert h.broker.sessions["bob"].subs == {}
    assert "1 subscription(s) of its resumed session dropped" in h.text()
    p = h.connected("ctl", 4, username="bob")
    p.publish("devices/bob/cmd", b"secret", 0)
    assert alice.publishes() == []
    # ... while a subscription alice may hold works (the positive fence)
    assert alice.subscribe(2, [("devices/alice/#", 0)]).codes == [0]
    q = h.connected("ctl2", 4, username="alice")
    q.publish("devices/alice/cmd", b"hers", 0)
    assert [m.payload for m in alice.publishes()] == [b"hers"]


def test_takeover_of_an_expiry_0_session_leaves_no_orphan():
    h = Harness()
    old = h.client()
    assert old.connect("dev", 5).rc == 0                      # expiry 0
    assert old.subscribe(1, [("a", 0)]).codes == [0]
    new = h.client()
    ack = new.connect("dev", 5, clean_start=False)             # paho's reconnect after a Wi-Fi drop
    assert ack.rc == 0 and not ack.session_present           # the old session ended with its connection
    sess = h.broker.sessions["dev"]
    assert sess.conn is new.conn and sess.subs == {}
    assert new.subscribe(2, [("b", 0)]).codes == [0]
    p = h.connected("pub", 5)
    p.publish("b", b"to-new", 0)
    p.publish("a", b"stale-route", 0)
    assert [m.payload for m in new.publishes()] == [b"to-new"]
    # one client id, one live connection: the next CONNECT kicks this one
    third = h.client()
    assert third.connect("dev", 5).rc == 0
    assert new.closed and h.broker.sessions["dev"].conn is third.conn


def test_refusals_are_logged_once_short_and_throttled():
    h = Harness()
    long_id = "x" * 5000
    for i in range(100):
        c = h.client(listener="tcp:default")
        c.conn.lcfg = dict(c.conn.lcfg, enable_authn="quick_deny_anonymous")
        c.connect(long_id + str(i), 4)
    refused = [m for _, m in h.logs if "refused" in m]
    assert 1 <= len(refused) <= 21
    assert all(len(m) < 600 for m in refused)
    assert "(5001 chars)" in refused[0] and "x" * 129 not in refused[0]
    # once per refusal: the authenticator does not log it a second time
    assert not [m for _, m in h.logs if "authentication refused" in m]
    h.advance(11)
    c = h.client()
    c.conn.lcfg = dict(c.conn.lcfg, enable_authn="quick_deny_anonymous")
    c.connect("late", 4)
    last = [m for _, m in h.logs if "refused" in m][-1]
    assert "'late'" in last and "more refusals or denials since the last such line" in last


def test_denials_are_logged_once():
    h = Harness(ACL_CONF, {"acl.conf": ACL})
    c = h.connected("alice", 5, username="alice")
    c.publish("devices/bob/cmd", b"x", 1, pid=3)
    assert c.expect(codec.PUBACK).rc == 0x87
    assert len([m for _, m in h.logs if "denied" in m]) == 1


def test_aliases_are_stored_only_for_authorized_publishes_and_bounded():
    from gatemq.connection import ALIAS_BYTES_MAX
    h = Harness(ACL_CONF, {"acl.conf": ACL})
    c = h.connected("alice", 5, username="alice")
    c.publish("devices/bob/x", b"1", 1, pid=1, props={codec.P_TOPIC_ALIAS: 1})
    assert c.expect(codec.PUBACK).rc == 0x87
    assert not c.conn.alias_in
    c.publish("devices/alice/x", b"2", 1, pid=2, props={codec.P_TOPIC_ALIAS: 1})
    assert c.expect(codec.PUBACK).rc in (0, 0x10)
    assert c.conn.alias_in == {1: "devices/alice/x"}
    # topic bytes held by aliases are bounded: the client is told why it is closed
    n = 2
    big = "devices/alice/" + "t" * 1000
    while not c.closed and n < 100:
        n += 1
        c.publish(big + str(n), b"", 0, props={codec.P_TOPIC_ALIAS: n})
    assert c.closed and c.expect(codec.DISCONNECT).rc == 0x97
    assert n * 1000 > ALIAS_BYTES_MAX


class _Fake:
    pass


def test_a_placeholder_value_with_a_slash_matches_nothing():
    from gatemq import acl
    rules = acl.parse('{allow, all, all, ["devices/${cert_common_name}/#"]}.\n')
    c = _Fake()
    c.cert_cn = "bob/cmd"
    assert acl._first_match(rules, c, "subscribe", "devices/bob/cmd/#", 0, False) is None
    for bad in ("a+b", "a#", "a\x00b"):
        c.cert_cn = bad
        assert acl._first_match(rules, c, "publish", "devices/" + bad + "/x", 0, False) is None
    c.cert_cn = "bob"
    assert acl._first_match(rules, c, "subscribe", "devices/bob/#", 0, False) == "allow"


def test_a_slash_in_username_is_logged_once_per_client():
    h = Harness(ACL_CONF, {"acl.conf": ACL})
    c = h.connected("c1", 5, username="bob/cmd")
    assert c.subscribe(1, [("devices/bob/cmd/#", 0)]).codes == [0x87]
    assert c.subscribe(2, [("devices/bob/cmd/x", 0)]).codes == [0x87]
    assert len([m for _, m in h.logs if "${username} holds '/'" in m]) == 1


def test_clients_may_not_publish_to_sys():
    h = Harness()
    s = h.subscriber([("$SYS/#", 0)], "watch", 5)
    c = h.connected("forger", 5)
    s.take()
    c.publish("$SYS/brokers/x/clients/y/connected", b"{}", 1, pid=1)
    assert c.expect(codec.PUBACK).rc == 0x87
    assert s.publishes() == []
    assert "$SYS/ is the broker's" in h.text()
    h2 = Harness("authorization.deny_sys_publish = false")
    c = h2.connected("tool", 5)
    c.publish("$SYS/custom", b"{}", 1, pid=1)
    assert c.expect(codec.PUBACK).rc in (0, 0x10)


USERS = '{"user_id": "alice", "password_hash": "%s", "salt": ""}\n'
PWD_CONF = ('authentication = [{mechanism = password_based, backend = built_in_database, user_file = "users",'
            ' password_hash_algorithm {name = sha256, salt_position = prefix}}]\n'
            'listeners.tcp.default.bind = "0.0.0.0:1883"\nmqtt.max_login_failures = 3\n')


def _users():
    from gatemq import pwhash
    return {"users": USERS % pwhash.hash_password({"name": "sha256", "salt_position": "prefix"}, "", b"right")}


def test_failed_logins_are_limited_per_peer_address():
    h = Harness(PWD_CONF, _users())
    for i in range(3):
        c = h.client()
        assert c.connect("c%d" % i, 5, username="alice", password=b"wrong").rc == 0x86
    c = h.client()
    ack = c.connect("c9", 5, username="alice", password=b"right")
    assert ack.rc == 0x9F and c.closed                      # blocked, even with the right password
    h.clock.t += 61
    c = h.client()
    assert c.connect("c10", 5, username="alice", password=b"right").rc == 0


def test_unknown_users_cost_a_hash_too():
    from gatemq import pwhash
    calls = []
    real = pwhash.check_password

    def counting(*a):
        calls.append(a[0])
        return real(*a)
    pwhash.check_password = counting
    try:
        h = Harness(PWD_CONF, _users())
        c = h.connected("u", 5, username="nobody", password=b"x")
    finally:
        pwhash.check_password = real
    assert len(calls) == 1


def test_mqtt311_qos2_uses_max_awaiting_rel_not_receive_maximum():
    h = Harness("mqtt.max_awaiting_rel = 50")
    c = h.connected("q2", 4)
    for pid in range(1, 41):                          # more than the 32 of max_inflight
        c.publish("t", b"x", 2, pid=pid)
    assert not c.closed and len([p for p in c.take() if p.ptype == codec.PUBREC]) == 40
    for pid in range(41, 61):
        c.publish("t", b"x", 2, pid=pid)
    assert not c.closed
    assert len(h.broker.sessions["q2"].awaiting_rel) == 50
    assert "max_awaiting_rel (50) reached" in h.text()


class _Rng:
    # A seeded LCG: the same sequences on CPython and MicroPython.
    def __init__(self, seed):
        self.s = seed

    def pick(self, seq):
        self.s = (self.s * 1103515245 + 12345) & 0x7FFFFFFF
        return seq[(self.s >> 8) % len(seq)]


def _check_against_model(h, model):
    b = h.broker
    assert set(b.sessions) - {"the-publisher"} == set(model), (sorted(b.sessions), sorted(model))
    nsubs = 0
    for cid, m in model.items():
        sess = b.sessions[cid]
        assert set(sess.subs) == m["subs"]
        nsubs += len(m["subs"])
        want = m["client"].conn if m["client"] is not None else None
        assert sess.conn is want
        if want is not None:
            assert want.session is sess and not want.closing
    assert b.router.count == nsubs
    live = [c.clientid for c in b.conns if c.session is not None and not c.closing]
    assert len(live) == len([m for m in model.values() if m["client"] is not None]) + 1
    assert len(live) == len(set(live))


def _route_check(h, model, pub):
    # Every subscribed topic reaches exactly its connected subscribers; no route outlives its session.
    for cid, m in model.items():
        if m["client"] is not None:
            m["client"].take()
    topics = {}
    for cid, m in model.items():
        for f in m["subs"]:
            topics.setdefault(f, []).append(cid)
    for t in ("t/0", "t/1", "t/2"):
        pub.publish(t, t.encode(), 0)
        for cid, m in model.items():
            c = m["client"]
            got = c.publishes() if c is not None else []
            want = 1 if (c is not None and t in m["subs"]) else 0
            assert len(got) == want, (t, cid, got)


def test_takeover_model_random_sequences():
    for seed in range(1, 41):
        rng = _Rng(seed)
        h = Harness()
        pub = h.connected("the-publisher", 5)
        model = {}
        for step in range(30):
            cid = rng.pick(("a", "b"))
            op = rng.pick(("connect", "connect", "subscribe", "disconnect", "lose"))
            m = model.get(cid)
            if op == "connect":
                v = rng.pick((4, 5))
                clean = rng.pick((True, False))
                if v == 5:
                    expiry = rng.pick((0, 60))
                    props = {codec.P_SESSION_EXPIRY: expiry} if expiry else None
                else:
                    expiry = 0 if clean else 7200
                    props = None
                if m is not None and m["client"] is not None and m["expiry"] == 0:
                    del model[cid]
                    m = None
                elif m is not None:
                    m["client"] = None
                present = m is not None and not clean
                if m is None or clean:
                    m = model[cid] = {"subs": set()}
                m["expiry"] = expiry
                c = h.client()
                ack = c.connect(cid, v, clean_start=clean, props=props)
                assert ack.rc == 0 and bool(ack.session_present) == present, (seed, step)
                m["client"] = c
            elif m is None or m["client"] is None:
                continue
            elif op == "subscribe":
                t = rng.pick(("t/0", "t/1", "t/2"))
                m["client"].subscribe(step + 1, [(t, 0)])
                m["subs"].add(t)
            else:
                c = m["client"]
                if op == "disconnect":
                    c.send(codec.encode_disconnect(0, None, c.version))
                else:
                    c.drop()
                m["client"] = None
                if m["expiry"] == 0:
                    del model[cid]
            _check_against_model(h, model)
            _route_check(h, model, pub)


def test_share_groups_per_filter_are_bounded():
    h = Harness("mqtt.max_shared_groups = 3")
    c = h.connected("g", 5)
    codes = c.subscribe(1, [("$share/g%d/t" % i, 0) for i in range(5)]).codes
    assert codes == [0, 0, 0, 0x97, 0x97]
    # joining an existing group and other filters still work
    d = h.connected("h", 5)
    assert d.subscribe(2, [("$share/g1/t", 0), ("$share/g9/u", 0)]).codes == [0, 0]


def test_an_alias_once_set_carries_later_publishes():
    h = Harness()
    s = h.subscriber([("alias/t", 0)], "s", 5)
    c = h.connected("c", 5)
    c.publish("alias/t", b"1", 0, props={codec.P_TOPIC_ALIAS: 3})
    c.publish("", b"2", 0, props={codec.P_TOPIC_ALIAS: 3})
    assert [m.payload for m in s.publishes()] == [b"1", b"2"] and not c.closed
