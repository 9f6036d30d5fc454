# gatemq.persist, sans-IO: the value encoding, the log's frames (torn tails at every offset, damage in
# the middle, a newer version), the op replay, and a broker rebuilt from its own records.
from gatemq import persist as P
from gatemq import config
from gatemq.broker import Broker
from gatemq.message import Message
from gatemq.session import Session, Delivery
from gatemq.router import Subscription

from _check import raises


class _Reader:
    def __init__(self, data):
        self.data = data
        self.off = 0

    def read(self, n):
        b = self.data[self.off:self.off + n]
        self.off += len(b)
        return b


def _replay(data):
    st = P.State()
    out = P.read_log(_Reader(data).read, "log", st.apply)
    return st, out


def test_values_round_trip():
    for v in [None, True, False, 0, -5, 1 << 40, 1.5, "", "é/ü", b"\x00\xff", [1, [2, b"x"]], (3, "a"),
              {1: "a", 38: [("k", "v")]}, [None, {"x": (1, 2)}]]:
        assert P.unpack(P.pack(v)) == v, v
    assert type(P.unpack(P.pack((1, 2)))) is tuple
    raises(Exception, P.unpack, P.pack([1, 2])[:-1])


def _log():
    frames = [P.frame([[P.PUT, "r", "", "a/b", ["a/b", b"one", 1, True, None, None, None]]]),
              P.frame([[P.PUT, "s", "c1", "", [60, None, None, None, None]],
                       [P.PUT, "q", "c1", 1, [["t", b"m", 1, False, None, None, "p"], 1, False, None]]]),
              P.frame([[P.DEL, "q", "c1", 1], [P.PUT, "a", "c1", 7, None]])]
    return P.header(), frames


def test_a_torn_tail_at_every_offset_drops_only_the_last_frame():
    head, frames = _log()
    good = head + frames[0] + frames[1]
    last = frames[2]
    for cut in range(len(last)):
        st, (end, dropped, n, corrupt) = _replay(good + last[:cut])
        assert end == len(good) and n == 2 and not corrupt, cut
        assert (dropped is None) == (cut == 0), (cut, dropped)
        assert ("q", "c1", 1) in st.d and ("a", "c1", 7) not in st.d
    st, (end, dropped, n, corrupt) = _replay(good + last)
    assert dropped is None and n == 3 and end == len(good + last)
    assert ("q", "c1", 1) not in st.d and ("a", "c1", 7) in st.d


def test_a_torn_tail_with_garbage_in_a_full_length_last_frame():
    head, frames = _log()
    bad = bytearray(frames[2])
    bad[-1] ^= 0xFF
    st, (end, dropped, n, corrupt) = _replay(head + frames[0] + frames[1] + bytes(bad))
    assert n == 2 and "checksum" in dropped and not corrupt


def test_damage_in_the_middle_is_corruption_not_a_tail():
    head, frames = _log()
    bad = bytearray(frames[1])
    bad[12] ^= 0x01
    st, (end, dropped, n, corrupt) = _replay(head + frames[0] + bytes(bad) + frames[2])
    assert n == 1 and corrupt and "offset %d" % (len(head) + len(frames[0])) in dropped


def test_a_newer_version_and_a_foreign_file_are_refused():
    head, frames = _log()
    newer = P.MAGIC + bytes((P.VERSION + 1,))
    e = raises(P.StoreError, _replay, newer + frames[0])
    assert e.newer and "newer" in str(e)
    e = raises(P.StoreError, _replay, b"SQLite format 3\x00")
    assert not e.newer


def test_drop_ends_a_session_but_not_retained_messages():
    st = P.State()
    st.apply([[P.PUT, "r", "", "x", [1]], [P.PUT, "s", "c", "", [1]], [P.PUT, "u", "c", "f", [1, None]],
              [P.PUT, "u", "d", "f", [1, None]], [P.DROP, "c"]])
    assert sorted(st.d) == [("r", "", "x"), ("u", "d", "f")]


class _Clock:
    def __init__(self, t):
        self.t = t

    def __call__(self):
        return self.t


def _broker(mono, wall):
    cfg = config.load("persistence.enable = true\nsys_topics.sys_msg_interval = disabled\n")
    b = Broker(cfg, _Clock(mono), _Clock(wall), lambda level, msg: None)
    return b, P.attach(b, cfg["persistence"])


def test_a_broker_rebuilt_from_its_records():
    b, p = _broker(100.0, 1000000.0)
    s = Session("c1")
    s.expiry = 3600
    s.owner = ("u", b"\x01\x02")
    b.sessions["c1"] = s
    p.session(s)
    sub = Subscription("c1", "t/+", 1 | 8, 5, None)
    b.router.add(sub)
    s.subs["t/+"] = sub
    p.sub(s, "t/+", sub)
    d1 = Delivery(Message("t/a", b"q1", 1, False, None, 100.0 + 50, "pub"), 1, False, [5])
    s.queue.append(d1)
    p.enq(s, d1)
    d2 = Delivery(Message("t/b", b"q2", 2, False), 2, False, None)
    s.queue.append(d2)
    p.enq(s, d2)
    d3 = Delivery(Message("t/c", b"f", 2, False), 2, False, None)
    s.inflight[9] = d3
    p.inflight(s, 9, d3)
    p.phase(s, 9)
    s.awaiting_rel[4] = 100.0
    p.rel(s, 4)
    r = Message("t/r", b"ret", 1, True, None, 100.0 + 10)
    b.retained.put(r, 100.0)
    p.retained(r)
    st = P.State()
    st.apply(p.take())
    # 20 s later by the wall clock, in a new process whose monotonic clock starts elsewhere
    b2, p2 = _broker(5.0, 1000020.0)
    counts = p2.load(st.items)
    assert counts == {"retained": 0, "sessions": 1, "queued": 2, "inflight": 1}, counts
    s2 = b2.sessions["c1"]
    assert s2.owner == ("u", b"\x01\x02") and s2.expiry == 3600 and s2 in b2.offline
    assert abs(s2.expire_at - (5.0 + 3600)) < 0.01     # connected when it stopped: a full expiry
    assert [d.msg.payload for d in s2.queue] == [b"q1", b"q2"]
    assert abs(s2.queue[0].msg.expire_at - (5.0 + 30)) < 0.01   # 50 s expiry, 20 s gone
    assert s2.queue[0].subids == [5] and s2.queue[0].msg.sender == "pub"
    assert list(s2.inflight) == [9] and s2.inflight[9].phase == 1 and s2.next_pid == 10
    assert list(s2.awaiting_rel) == [4]
    assert "t/r" not in b2.retained                  # its 10 s expiry passed across the restart
    assert [o for o in p2.ops if o[0] == P.DEL] == [[P.DEL, "r", "", "t/r"]]
    assert b2.router.match("t/x", b2._pick, None)      # the subscription routes again
    # compaction writes back what load built
    st2 = P.State()
    st2.apply(list(p2.snapshot()))
    kinds = sorted(k[0] for k in st2.d)
    assert kinds == ["a", "i", "q", "q", "s", "u"], kinds


def test_hooks_ignore_sessions_that_end_with_their_connection():
    b, p = _broker(1.0, 1000.0)
    s = Session("clean")
    s.expiry = 0
    p.session(s)
    d = Delivery(Message("t", b"x", 1, False), 1, False, None)
    p.enq(s, d)
    p.inflight(s, 1, d)
    assert p.take() == [] and d.seq == 0


def test_coalesce_keeps_the_effect_in_fewer_ops():
    # Pseudo-random batches over a few keys: applying the coalesced batch to the same starting state
    # gives the same records; a message that came and went within the batch costs its DEL only.
    seed = [7]

    def rnd(n):
        seed[0] = (seed[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return seed[0] % n
    for trial in range(200):
        start = P.State()
        start.apply([[P.PUT, "q", "c%d" % rnd(2), rnd(4), "old"], [P.PUT, "r", "", "t", "ret"]])
        ops = []
        for _ in range(rnd(12)):
            r = rnd(10)
            kind = "r" if r == 0 else "q"
            cid = "" if kind == "r" else "c%d" % rnd(2)
            if r < 5:
                ops.append([P.PUT, kind, cid, "t" if kind == "r" else rnd(4), "v%d" % rnd(100)])
            elif r < 9:
                ops.append([P.DEL, kind, cid, "t" if kind == "r" else rnd(4)])
            else:
                ops.append([P.DROP, "c%d" % rnd(2)])
        a, b = P.State(), P.State()
        a.d, b.d = dict(start.d), dict(start.d)
        a.apply(ops)
        c = P.coalesce(ops)
        b.apply(c)
        assert a.d == b.d, (ops, c)
        assert len(c) <= len(ops)
    big = ["t", b"x" * 100, 1, False, None, None, "p"]
    c = P.coalesce([[P.PUT, "i", "s", 1, [1, 0, big, 1, False, None]], [P.DEL, "i", "s", 1]])
    assert c == [[P.DEL, "i", "s", 1]], c


class _TimedStore:
    # A store whose write takes 0.25 s of the broker's (fake) clock.
    def __init__(self, clock):
        self.clock = clock
        self.writes = []

    def write(self, ops):
        self.clock.t += 0.25
        self.writes.append(list(ops))

    def size(self):
        return 4096


def test_commit_latency_is_kept_and_served_to_prometheus():
    from gatemq import prometheus
    b, p = _broker(100.0, 1000000.0)
    store = _TimedStore(b.clock)
    r = Message("t/r", b"ret", 1, True)
    b.retained.put(r, 100.0)
    p.retained(r)
    assert p.commit(store) and len(store.writes) == 1
    p.retained(Message("t/s", b"ret", 1, True))
    assert p.commit(store)
    assert p.commits == 2 and abs(p.commit_seconds - 0.5) < 1e-9
    text = prometheus.render(b, [])
    assert "# TYPE gatemq_persistence_commit_seconds summary" in text
    assert "gatemq_persistence_commit_seconds_count 2\n" in text
    assert "gatemq_persistence_commit_seconds_sum 0.5\n" in text


def test_a_delayed_will_and_the_subscription_options_survive_a_restart():
    b, p = _broker(100.0, 1000000.0)
    s = Session("c1")
    s.expiry = 3600
    s.expire_at = 100.0 + 3600
    s.will = (Message("w/c1", b"gone", 1, False), 100.0 + 30)     # due 30 s after the link was lost
    b.sessions["c1"] = s
    p.session(s)
    sub = Subscription("c1", "cmd/#", 2 | 4 | 8 | (2 << 4), 7, None)    # QoS 2, nl, rap, rh 2, id 7
    b.router.add(sub)
    s.subs["cmd/#"] = sub
    p.sub(s, "cmd/#", sub)
    ops = p.take()

    def records():      # a State hands its records over once: one per start
        st = P.State()
        st.apply(ops)
        return st.items

    # 10 s later by the wall clock: the will is still pending, due 20 s after the start
    b2, p2 = _broker(5.0, 1000010.0)
    p2.load(records())
    s2 = b2.sessions["c1"]
    assert s2.will[0].topic == "w/c1" and s2.will[0].payload == b"gone"
    assert abs(s2.will[1] - (5.0 + 20)) < 0.01
    got = s2.subs["cmd/#"]
    assert (got.filter, got.qos, got.nl, got.rap, got.rh, got.subid) == ("cmd/#", 2, True, True, 2, 7)
    # 40 s later the will is past due: the first timer round publishes it, once
    b3, p3 = _broker(5.0, 1000040.0)
    p3.load(records())
    fired = []
    b3.publish = fired.append
    b3.tick()
    b3.tick()
    assert [m.payload for m in fired] == [b"gone"] and b3.sessions["c1"].will is None


class _SizedStore:
    # A store of a given size that takes every write and has its reserve.
    def __init__(self, size):
        self.sz = size

    def write(self, ops):
        pass

    def size(self):
        return self.sz

    def reserve(self):
        return True


def _keeper(h):
    # Persistence attached to harness h, and "keeper" offline with a session subscribed to t at
    # QoS 1: what it is sent is stored. -> the Persist.
    from gatemq import codec
    p = P.attach(h.broker, h.broker.cfg["persistence"])
    sub = h.client()
    sub.connect("keeper", 5, clean_start=True, props={codec.P_SESSION_EXPIRY: 3600})
    sub.subscribe(1, [("t", 1)])
    sub.drop()
    return p


def test_past_max_size_new_qos1_messages_are_refused_until_there_is_room():
    from _harness import Harness
    from gatemq import codec
    h = Harness("persistence.enable = true\npersistence.max_size = 1MB\n")
    p = _keeper(h)
    pub = h.connected("pub", 5)
    store = _SizedStore(2 * 1024 * 1024)
    pub.publish("t", b"one", 1, False, 1)
    assert p.commit(store) and p.full          # the commit went through; the store is past 1 MB
    assert "past persistence.max_size" in h.text()
    pub.publish("t", b"two", 1, False, 2)
    assert [(a.pid, a.rc) for a in pub.take() if a.ptype == codec.PUBACK] == [(1, 0), (2, 0x97)]
    store.sz = 1000          # compacted: room again at the next maintenance
    p.maintain(store)
    assert not p.full and "room again" in h.text()
    pub.publish("t", b"three", 1, False, 3)
    assert [(a.pid, a.rc) for a in pub.take() if a.ptype == codec.PUBACK] == [(3, 0)]


class _CountingStore:
    # Each write, with how many PUBACKs the clients had been handed when it happened.
    def __init__(self, clients):
        self.clients = clients
        self.writes = []

    def write(self, ops):
        from gatemq import codec
        acks = sum(1 for c in self.clients for a in c.got if a.ptype == codec.PUBACK)
        self.writes.append((len([op for op in ops if op[1] == "q"]), acks))

    def size(self):
        return 0


def test_a_round_of_publishes_is_one_write_and_no_ack_goes_out_before_it():
    # sync = commit's group commit, in the ports' order (ports/*/store.py Durable.defer and commit):
    # four publishers' QoS 1 messages read in one round are stored in one write, and their PUBACKs
    # are handed out only after it.
    from _harness import Harness
    from gatemq import codec

    class Port(Harness):
        sync = None
        queued = []

        def pump(self):
            s = self.sync
            if s is not None and s.defer(self.queued.append, self):
                return      # the port queues the group commit for after the reads ready now
            dirty = self.broker.flush()
            assert s is None or s.commit(dirty, None)
            for c in dirty:
                cl = c.handle
                for b0, body in cl.reader.feed(c.take()):
                    cl.got.append(codec.decode(b0, body, cl.version or 5))

    h = Port("persistence.enable = true\n")
    p = _keeper(h)
    pubs = [h.connected("p%d" % i, 5) for i in range(4)]
    p.take()
    store = _CountingStore(pubs)
    h.sync = P.Sync(p, store, 1.0, 0.0)
    for i, pub in enumerate(pubs):          # one round: four reads, each pumped
        pub.publish("t", b"m%d" % i, 1, False, 1)
    assert store.writes == [] and len(h.queued) == 1
    assert not [a for pub in pubs for a in pub.got], "an acknowledgement went out before its commit"
    h.sync.group(h.queued.pop().pump)       # the loop runs the group commit
    assert store.writes == [(4, 0)], store.writes
    assert [[(a.ptype, a.pid) for a in pub.take()] for pub in pubs] == [[(codec.PUBACK, 1)]] * 4
