# gatemq.bridge, sans-IO: topic mapping, the bounded queue, the client state machine against a
# scripted upstream (CONNACK, PUBACK, Receive Maximum, reconnect with the in-flight resent in order),
# loop prevention, message expiry, backoff. Runs under CPython and MicroPython.
from gatemq import codec, config
from gatemq.bridge import Bridge, BridgeQueue, Item, map_topic, shape, CONNECTED, DISCONNECTED
from gatemq.message import Message
from _check import raises
from _harness import Harness

CFG = """
node.name = "gw@h"
bridges.mqtt.cloud {
  server = "mqtts://cloud.example:8883"
  backoff_max = 8s
  forwards = [ { local_topic = "sensors/#", remote_topic = "gw/1/sensors/#", qos = 1 },
               { local_topic = "cmd/#", remote_topic = "gw/1/echo/#", qos = 1 },
               { local_topic = "raw/+", qos = 0 } ]
  subscription = [ { remote_topic = "gw/1/cmd/#", local_topic = "cmd/#", qos = 1 } ]
  queue { max_messages = 4 }
}
"""


def test_map_topic():
    assert map_topic("sensors/a/b", "sensors/#", "gw/1/sensors/#") == "gw/1/sensors/a/b"
    assert map_topic("sensors", "sensors/#", "gw/1/sensors/#") == "gw/1/sensors"
    assert map_topic("a/x/b/y/z", "a/+/b/#", "p/+/q/r/#") == "p/x/q/r/y/z"
    assert map_topic("t/1", "t/+", None) == "t/1"
    assert map_topic("fixed", "fixed", "other/fixed") == "other/fixed"
    assert shape("a/+/b/#") == ["+", "#"]


def test_config_shape_mismatch_is_an_error_with_position():
    text = 'bridges.mqtt.c {\n  server = "mqtt://h"\n  forwards = [\n    { local_topic = "a/+/#", remote_topic = "b/#" }\n  ]\n}\n'
    e = raises(config.ConfigError, config.load, text, "/etc/gw.conf")
    assert str(e).startswith("/etc/gw.conf:4:"), str(e)
    assert "bridges.mqtt.c.forwards.1.remote_topic" in str(e)
    e = raises(config.ConfigError, config.load, 'bridges.mqtt.c { server = "http://h" }', "x.conf")
    assert "bridges.mqtt.c.server" in str(e)
    e = raises(config.ConfigError, config.load,
               'bridges.mqtt.c { server = "mqtt://h", subscription = [ { local_topic = "c/#" , remote_topic = "d" } ] }', "x.conf")
    assert "subscription.1.remote_topic" in str(e)
    c = config.load('bridges.mqtt.c { server = "[::1]:1884", proto_ver = v4 }')
    b = c["bridges"]["mqtt"]["c"]
    assert b["server"] == ("mqtt", "::1", 1884) and b["proto_ver"] == 4
    assert b["ssl"]["verify"] == "verify_peer" and b["queue"]["max_messages"] == 100000


def test_queue_bounded_qos0_dropped_first():
    q = BridgeQueue(3)
    m = Message("t", b"", 1, False)
    a, b, c = Item(m, "t", 0, 0), Item(m, "t", 1, 0), Item(m, "t", 1, 0)
    for it in (a, b, c):
        assert q.push(it) is None
    d = Item(m, "t", 1, 0)
    assert q.push(d) is a           # the oldest QoS 0 goes first
    e = Item(m, "t", 1, 0)
    assert q.push(e) is b           # only QoS 1 left: the oldest pending one goes, the newest stays
    assert [q.pop() for _ in range(3)] == [c, d, e]
    # with every slot in flight (sent upstream, awaiting PUBACK) the new one is the one dropped
    q2 = BridgeQueue(2)
    x, y = Item(m, "t", 1, 0), Item(m, "t", 1, 0)
    for i, it in enumerate((x, y)):
        q2.push(it)
        q2.pop()
        it.pid = i + 1
        q2.sent(it)
    z = Item(m, "t", 1, 0)
    assert q2.push(z) is z and len(q2) == 2


def test_full_queue_of_qos1_drops_the_oldest_counted_and_logged():
    h, up = harness()
    dev = h.connected("dev", 5)
    for i in range(6):
        dev.publish("sensors/n", b"%d" % i, 1, False, i + 1)
    b = up.b
    assert len(b.queue) == 4 and b.dropped == 2
    assert "queue full (queue.max_messages 4), dropped a QoS 1 message" in h.text()
    h.clock.t += 10
    up.connect(receive_max=10)
    pubs = [p for p in up.read() if p.ptype == codec.PUBLISH]
    assert [p.payload for p in pubs] == [b"2", b"3", b"4", b"5"]


class Up:
    # The bridge's transport, scripted: what the bridge sent, decoded.
    def __init__(self, h):
        self.h = h
        self.b = h.broker.bridges[0]
        self.reader = codec.Reader()
        self.got = []

    def read(self):
        data = self.b.take()
        for fb, body in self.reader.feed(data):
            self.got.append(codec.decode(fb, body, 5) if fb >> 4 != 1 else codec.CONNECT)
        out, self.got = self.got, []
        return out

    def reconnect(self, session_present):
        # The link is lost; the next attempt, 10 s later, finds the upstream session present or not.
        self.b.failed("closed", "the upstream closed the connection")
        self.h.clock.t += 10
        self.connect(session_present=session_present)
        self.read()

    def connect(self, session_present=False, receive_max=None):
        b = self.b
        assert b.due(self.h.clock()) == 0
        assert b.attempt(self.h.clock())[:2] == ("cloud.example", 8883)
        b.up(self.h.clock())
        assert self.read()[0] == codec.CONNECT
        props = {codec.P_RECEIVE_MAXIMUM: receive_max} if receive_max else None
        b.feed(codec.encode_connack(session_present, 0, props, 5))
        assert b.state == CONNECTED


def harness():
    h = Harness(CFG)
    h.broker.bridges = [Bridge(h.broker, "cloud", h.broker.cfg["bridges"]["mqtt"]["cloud"])]
    return h, Up(h)


def test_forward_in_order_window_and_ack():
    h, up = harness()
    up.connect(receive_max=2)
    sub = up.read()
    assert sub[0].ptype == codec.SUBSCRIBE and sub[0].topics == [("gw/1/cmd/#", 1 | 4 | 8)]
    dev = h.connected("dev", 5)
    for i in range(3):
        dev.publish("sensors/x/%d" % i, b"%d" % i, 2, False, i + 1)
    pubs = [p for p in up.read() if p.ptype == codec.PUBLISH]
    # QoS capped at 1, two in flight (Receive Maximum 2), the third waits in the queue.
    assert [(p.topic, p.qos) for p in pubs] == [("gw/1/sensors/x/0", 1), ("gw/1/sensors/x/1", 1)]
    assert len(up.b.queue) == 3
    up.b.feed(codec.encode_ack(codec.PUBACK, pubs[0].pid, 0, None, 5))
    nxt = [p for p in up.read() if p.ptype == codec.PUBLISH]
    assert [p.topic for p in nxt] == ["gw/1/sensors/x/2"]
    assert len(up.b.queue) == 2 and up.b.sent == 1


def test_outage_queue_requeue_resend_with_dup():
    h, up = harness()
    up.connect(receive_max=10)
    up.read()
    dev = h.connected("dev", 5)
    dev.publish("sensors/a", b"1", 1, False, 1)
    first = [p for p in up.read() if p.ptype == codec.PUBLISH]
    assert len(first) == 1
    up.b.failed("closed", "the upstream closed the connection")
    assert up.b.state == DISCONNECTED and "link to" in h.text() and "closed" in h.text()
    dev.publish("sensors/b", b"2", 1, False, 2)
    dev.publish("raw/z", b"q0", 0, False)
    assert len(up.b.queue) == 3
    h.clock.t += 10
    up.connect(session_present=True, receive_max=10)
    pubs = [p for p in up.read() if p.ptype == codec.PUBLISH]
    # The unacknowledged one again first, with DUP and its packet id, then the rest in order.
    assert [(p.topic, p.dup) for p in pubs] == [("gw/1/sensors/a", True), ("gw/1/sensors/b", False), ("raw/z", False)]
    assert pubs[0].pid == first[0].pid


def test_loop_prevention_and_command_down():
    h, up = harness()
    up.connect()
    up.read()
    local = h.subscriber([("cmd/#", 1)], "app", 5)
    local.take()
    up.b.feed(bytes(codec.encode_publish(b"gw/1/cmd/reboot", b"now", 1, False, False, 7, b"\x00", 5)))
    h.pump()
    got = local.publishes()
    assert [(p.topic, p.payload) for p in got] == [("cmd/reboot", b"now")]
    back = up.read()
    assert [p.ptype for p in back] == [codec.PUBACK]     # acknowledged, not forwarded to gw/1/echo
    # The fence: the same topic published locally does go up through the cmd/# forward.
    dev = h.connected("dev", 5)
    dev.publish("cmd/reboot", b"local", 1, False, 1)
    assert [p.topic for p in up.read() if p.ptype == codec.PUBLISH] == ["gw/1/echo/reboot"]


def test_expiry_taken_off_and_expired_dropped():
    h, up = harness()
    dev = h.connected("dev", 5)
    dev.publish("sensors/e", b"x", 1, False, 1, {codec.P_MESSAGE_EXPIRY: 30})
    dev.publish("sensors/f", b"y", 1, False, 2, {codec.P_MESSAGE_EXPIRY: 5})
    h.clock.t += 10
    up.connect()
    pubs = [p for p in up.read() if p.ptype == codec.PUBLISH]
    assert [p.topic for p in pubs] == ["gw/1/sensors/e"]
    assert pubs[0].props[codec.P_MESSAGE_EXPIRY] == 20


def test_backoff_doubles_with_jitter_up_to_max_logged_once_each():
    h, up = harness()
    b = up.b
    delays = []
    for i in range(8):
        b.attempt(h.clock())
        b.failed("refused", "connection refused")
        delays.append(b.due(h.clock()))
        h.clock.t += delays[-1]
    assert all(d <= 8 for d in delays) and delays[-1] >= 4 and delays[0] <= 0.5
    lines = [m for _, m in h.logs if "cannot connect" in m]
    assert len(lines) == 8 and "refused" in lines[0] and "(backoff step 8)" in lines[7]


def test_connack_refusal_named():
    h, up = harness()
    b = up.b
    b.attempt(h.clock())
    b.up(h.clock())
    up.read()
    b.feed(codec.encode_connack(False, 0x86, None, 5))
    assert b.closing and "0x86" in b.closing[1]
    b.failed(*b.closing)
    assert "CONNACK 0x86" in h.text()


def _persisted(h):
    from gatemq import persist as P
    return P.attach(h.broker, h.broker.cfg["persistence"])


PCFG = CFG.replace("queue { max_messages = 4 }", "queue { max_messages = 100 }") + "persistence.enable = true\n"


def test_queue_and_upstream_packet_ids_persist_and_replay_in_order():
    from gatemq import persist as P
    h = Harness(PCFG)
    p = _persisted(h)
    h.broker.bridges = [Bridge(h.broker, "cloud", h.broker.cfg["bridges"]["mqtt"]["cloud"])]
    up = Up(h)
    up.connect(receive_max=2)
    up.read()
    dev = h.connected("dev", 5)
    for i in range(5):
        dev.publish("sensors/n", b"%d" % i, 1, False, i + 1)
    dev.publish("raw/z", b"q0", 0, False)          # QoS 0: not stored
    first = [p_ for p_ in up.read() if p_.ptype == codec.PUBLISH]
    assert [x.payload for x in first] == [b"0", b"1"]
    up.b.feed(codec.encode_ack(codec.PUBACK, first[0].pid, 0, None, 5))   # "0" done; "2" goes out
    up.read()
    st = P.State()
    st.apply(p.take())
    assert sorted(k[2] for k in st.d if k[0] == "b") == [2, 3, 4, 5]
    # a session of a client named like the bridge ending does not take the bridge's records
    st.apply([[P.DROP, "cloud"]])
    assert len([k for k in st.d if k[0] == "b"]) == 4
    # the process dies; a new one loads the records
    h2 = Harness(PCFG)
    p2 = _persisted(h2)
    p2.load(st.items)
    assert len(p2.bridged["cloud"]) == 4
    h2.broker.bridges = [Bridge(h2.broker, "cloud", h2.broker.cfg["bridges"]["mqtt"]["cloud"])]
    assert "4 queued message(s) restored from the store (2 sent upstream" in h2.text()
    up2 = Up(h2)
    assert len(up2.b.queue) == 4
    up2.connect(session_present=True, receive_max=10)
    pubs = [x for x in up2.read() if x.ptype == codec.PUBLISH]
    # in order; the two that were in flight again with DUP and their packet ids
    assert [(x.payload, x.dup) for x in pubs] == [(b"1", True), (b"2", True), (b"3", False), (b"4", False)]
    assert [x.pid for x in pubs[:2]] == [first[1].pid, [y for y in pubs if y.payload == b"2"][0].pid]
    assert pubs[0].pid == first[1].pid
    assert len(set(x.pid for x in pubs)) == 4
    for x in pubs:
        up2.b.feed(codec.encode_ack(codec.PUBACK, x.pid, 0, None, 5))
    st.apply(p2.take())
    assert not [k for k in st.d if k[0] == "b"]


def test_bridge_records_of_a_bridge_no_longer_configured_are_dropped():
    from gatemq import persist as P
    st = P.State()
    st.apply([[P.PUT, "b", "gone", 1, [0, 0, 1, "t", ["t", b"x", 1, False, None, None, None]]]])
    h = Harness(PCFG)
    p = _persisted(h)
    p.load(st.items)
    assert not p.bridged
    assert "1 queued message(s) of bridge mqtt:gone dropped" in h.text()
    assert p.take() == [[P.DEL, "b", "gone", 1]]


class _Store:
    # A store whose writes the test sees: write(ops) appends one commit.
    def __init__(self):
        self.commits = []

    def write(self, ops):
        self.commits.append(ops)

    def size(self):
        return 0


def _offline_subscriber_and_link():
    # sync = commit, the bridge connected, and the local subscriber of cmd/# offline with a
    # session: a command from the upstream is queued for it, a record to store.
    h = Harness(PCFG)
    p = _persisted(h)
    h.broker.bridges = [Bridge(h.broker, "cloud", h.broker.cfg["bridges"]["mqtt"]["cloud"])]
    up = Up(h)
    app = h.client()
    app.connect("app", 5, clean_start=True, props={codec.P_SESSION_EXPIRY: 3600})
    app.subscribe(1, [("cmd/#", 1)])
    app.drop()
    store = _Store()
    p.commit(store)
    up.connect()
    up.read()
    return h, p, up, store


def _down(h, up, topic, pid, dup=False):
    up.b.feed(bytes(codec.encode_publish(topic, b"x", 1, False, dup, pid, b"\x00", 5)))
    h.pump()


def test_ack_of_a_message_from_upstream_waits_for_the_commit_that_stores_it():
    # The upstream forgets a message once it has our PUBACK, so the PUBACK goes out only after the
    # commit that stores the message queued here.
    h, p, up, store = _offline_subscriber_and_link()
    _down(h, up, b"gw/1/cmd/reboot", 7)
    assert up.read() == [] and p.ops       # stored not yet: no PUBACK
    assert p.commit(store)
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBACK, 7)]
    # A message that leaves nothing to store here (no subscription maps it) is acked at once.
    _down(h, up, b"gw/1/other", 8)
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBACK, 8)]


def test_ack_held_over_a_lost_link_is_not_sent_on_the_next_one():
    h, p, up, store = _offline_subscriber_and_link()
    _down(h, up, b"gw/1/cmd/a", 9)
    up.reconnect(True)
    p.commit(store)
    assert [x.ptype for x in up.read()] == []      # the upstream resends it with DUP instead
    _down(h, up, b"gw/1/cmd/a", 9, dup=True)
    p.commit(store)
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBACK, 9)]


def test_qos2_from_upstream_is_delivered_once_across_a_lost_link_with_the_session_present():
    h, up = harness()
    up.connect()
    up.read()
    local = h.subscriber([("cmd/#", 2)], "app", 5)
    local.take()
    pub = bytes(codec.encode_publish(b"gw/1/cmd/q2", b"once", 2, False, False, 11, b"\x00", 5))
    up.b.feed(pub)
    h.pump()
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBREC, 11)]
    up.reconnect(True)
    # The upstream did not see our PUBREC: it resends the PUBLISH with DUP. It is acknowledged
    # again and not delivered a second time.
    up.b.feed(bytes(codec.encode_publish(b"gw/1/cmd/q2", b"once", 2, False, True, 11, b"\x00", 5)))
    h.pump()
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBREC, 11)]
    up.b.feed(codec.encode_ack(codec.PUBREL, 11, 0, None, 5))
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBCOMP, 11)]
    assert [p.payload for p in local.publishes()] == [b"once"]
    # A new upstream session (not present) starts with no open QoS 2 ids: the same id is new.
    up.reconnect(False)
    up.b.feed(bytes(codec.encode_publish(b"gw/1/cmd/q2", b"again", 2, False, False, 11, b"\x00", 5)))
    h.pump()
    assert [p.payload for p in local.publishes()] == [b"again"]


def test_qos2_from_upstream_is_delivered_once_across_a_gateway_restart():
    # The PUBREC went up and the gateway died. The upstream (its session present) resends the
    # PUBLISH with DUP: the packet id awaiting PUBREL was stored with the message, so the resend is
    # acknowledged and not delivered a second time. PUBREL forgets the id, and the PUBCOMP goes up
    # only after that is stored (the upstream may reuse the id once it has PUBCOMP).
    from gatemq import persist as P
    h, p, up, store = _offline_subscriber_and_link()
    q2 = lambda dup: bytes(codec.encode_publish(b"gw/1/cmd/q2", b"once", 2, False, dup, 11, b"\x00", 5))  # noqa: E731
    up.b.feed(q2(False))
    h.pump()
    assert p.commit(store)
    assert [(x.ptype, x.pid) for x in up.read()] == [(codec.PUBREC, 11)]
    st = P.State()
    for ops in store.commits:
        st.apply(ops)
    st.apply([[P.DROP, "cloud"]])       # a client named like the bridge ending leaves it alone
    assert ("d", "cloud", 11) in st.d
    h2 = Harness(PCFG)
    p2 = _persisted(h2)
    p2.load(st.items)
    p2.take()       # the port's start-up compaction writes the state as loaded
    h2.broker.bridges = [Bridge(h2.broker, "cloud", h2.broker.cfg["bridges"]["mqtt"]["cloud"])]
    up2 = Up(h2)
    up2.connect(session_present=True)
    up2.read()
    up2.b.feed(q2(True))
    h2.pump()
    store2 = _Store()
    assert p2.commit(store2)        # the round's commit (the bridge's retained $SYS status, say)
    assert [(x.ptype, x.pid) for x in up2.read()] == [(codec.PUBREC, 11)]
    assert [d.msg.payload for d in h2.broker.sessions["app"].queue] == [b"once"]
    # a compaction now keeps the id too
    assert [op for op in p2.snapshot() if op[1] == "d"] == [[P.PUT, "d", "cloud", 11, None]]
    up2.b.feed(codec.encode_ack(codec.PUBREL, 11, 0, None, 5))
    assert up2.read() == [] and [P.DEL, "d", "cloud", 11] in p2.ops    # forgotten, not yet stored
    assert p2.commit(store2)
    assert [(x.ptype, x.pid) for x in up2.read()] == [(codec.PUBCOMP, 11)]
    # the same id is a new message from now on
    up2.b.feed(bytes(codec.encode_publish(b"gw/1/cmd/q2", b"next", 2, False, False, 11, b"\x00", 5)))
    h2.pump()
    assert [d.msg.payload for d in h2.broker.sessions["app"].queue] == [b"once", b"next"]
