# The retained-message store: its topic-level index against a brute-force oracle, the $ rules,
# replace/delete, expiry (lazy and by purge), limits, and that a lookup does not scan the store.
from gatemq import retain, topic
from gatemq.message import Message
from gatemq.retain import RetainStore, KEPT, FULL, TOO_LARGE, REFUSED


def msg(t, payload=b"x", expire_at=None):
    return Message(t, payload, 0, True, None, expire_at)


def topics_of(ms):
    return sorted(m.topic for m in ms)


def test_exact_lookup_replace_and_delete_by_empty_payload():
    s = RetainStore()
    assert s.put(msg("a/b", b"1")) == KEPT
    assert s.put(msg("a/b/c", b"2")) == KEPT
    assert s.put(msg("a", b"3")) == KEPT
    assert len(s) == 3
    assert [m.payload for m in s.match("a/b", 0)] == [b"1"]
    assert s.put(msg("a/b", b"new")) == KEPT
    assert len(s) == 3
    assert [m.payload for m in s.match("a/b", 0)] == [b"new"]
    assert s.put(msg("a/b", b"")) == KEPT   # empty payload deletes
    assert len(s) == 2
    assert s.match("a/b", 0) == []
    assert topics_of(s.match("a/#", 0)) == ["a", "a/b/c"]
    s.put(msg("nothing/here", b""))         # deleting what is not there is a no-op
    assert len(s) == 2
    s.put(msg("a", b""))
    s.put(msg("a/b/c", b""))
    assert len(s) == 0 and s.root == {}     # no empty branches left behind


def test_wildcards_plus_and_hash():
    s = RetainStore()
    for t in ("a", "a/b", "a/c", "a/b/c", "a/b/d", "x/b/c", "/lead", "a//e", "a/"):
        s.put(msg(t))
    assert topics_of(s.match("a/+", 0)) == ["a/", "a/b", "a/c"]
    assert topics_of(s.match("+/b/c", 0)) == ["a/b/c", "x/b/c"]
    assert topics_of(s.match("a/#", 0)) == ["a", "a/", "a//e", "a/b", "a/b/c", "a/b/d", "a/c"]
    assert topics_of(s.match("a/b/#", 0)) == ["a/b", "a/b/c", "a/b/d"]
    assert topics_of(s.match("+", 0)) == ["a"]
    assert topics_of(s.match("+/+", 0)) == ["/lead", "a/", "a/b", "a/c"]
    assert topics_of(s.match("a/+/+", 0)) == ["a//e", "a/b/c", "a/b/d"]
    assert topics_of(s.match("+/lead", 0)) == ["/lead"]
    assert len(s.match("#", 0)) == 9


def test_dollar_topics_not_matched_by_a_leading_wildcard():
    s = RetainStore()
    for t in ("$SYS/x", "$SYS/a/b", "$x", "sys/x"):
        s.put(msg(t))
    assert topics_of(s.match("#", 0)) == ["sys/x"]
    assert topics_of(s.match("+/x", 0)) == ["sys/x"]
    assert topics_of(s.match("+", 0)) == []
    assert topics_of(s.match("$SYS/#", 0)) == ["$SYS/a/b", "$SYS/x"]
    assert topics_of(s.match("$SYS/+", 0)) == ["$SYS/x"]
    assert topics_of(s.match("$x", 0)) == ["$x"]
    assert topics_of(s.match("$x/#", 0)) == ["$x"]
    # a $ only at a deeper level is an ordinary level
    s.put(msg("a/$b"))
    assert topics_of(s.match("a/+", 0)) == ["a/$b"]
    assert topics_of(s.match("+/+", 0)) == ["a/$b", "sys/x"]


def test_expired_messages_removed_when_met_and_by_purge():
    s = RetainStore()
    s.put(msg("e/1", expire_at=10))
    s.put(msg("e/2", expire_at=20))
    s.put(msg("e/3"))
    assert s.expiring == 2
    assert topics_of(s.match("e/+", 5)) == ["e/1", "e/2", "e/3"]
    assert topics_of(s.match("e/+", 15)) == ["e/2", "e/3"]   # e/1 met expired: gone
    assert len(s) == 2 and s.expiring == 1
    assert s.match("e/2", 25) == []                            # exact lookup too
    assert len(s) == 1 and s.expiring == 0
    s.put(msg("p/1", expire_at=10))
    s.put(msg("p/2", expire_at=30))
    assert s.purge(9) == 0
    assert s.purge(10) == 1 and len(s) == 2
    assert topics_of(s.match("#", 11)) == ["e/3", "p/2"]


def test_a_replaced_message_keeps_its_replacement_from_expiring_with_it():
    s = RetainStore()
    s.put(msg("r", b"old", expire_at=10))
    s.put(msg("r", b"new", expire_at=100))
    s.put(msg("q", b"q", expire_at=10))
    s.put(msg("q", b"forever"))
    assert s.purge(50) == 0
    assert [m.payload for m in s.match("r", 50)] == [b"new"]
    assert [m.payload for m in s.match("q", 500)] == [b"forever"]
    assert s.expiring == 1


def test_heap_of_expiry_times_does_not_grow_with_replacements():
    s = RetainStore()
    for i in range(2000):
        s.put(msg("same/topic", b"%d" % i, expire_at=1000 + i))
    assert len(s) == 1 and s.expiring == 1
    assert len(s._exp) <= 2 * s.expiring + 65


def test_full_store_purges_expired_before_refusing():
    s = RetainStore(max_messages=2)
    s.put(msg("a", expire_at=5), 0)
    s.put(msg("b"), 0)
    assert s.put(msg("c"), 1) == FULL
    assert s.put(msg("b", b"replace"), 1) == KEPT     # replacing needs no room
    assert s.put(msg("c"), 6) == KEPT                 # a expired at 5 and made room
    assert topics_of(s.match("#", 6)) == ["b", "c"]
    assert s.put(msg("b", b""), 6) == KEPT            # deleting needs no room either
    assert len(s) == 1


def test_payload_limit():
    s = RetainStore(max_payload=4)
    assert s.put(msg("t", b"1234")) == KEPT
    assert s.put(msg("t", b"12345")) == TOO_LARGE
    assert [m.payload for m in s.match("t", 0)] == [b"1234"]  # the stored one is kept
    assert s.put(msg("t", b"")) == KEPT


def test_admit_hook_refuses_only_new_topics():
    class NoNew(RetainStore):
        def admit(self, m):
            return False
    s = NoNew()
    s.root["k"] = msg("k")  # as if stored before the hook said no
    s.count = 1
    assert s.put(msg("new")) == REFUSED
    assert s.put(msg("k", b"replaced")) == KEPT
    assert [m.payload for m in s.match("k", 0)] == [b"replaced"]


def _rand(seed):
    x = [seed]

    def r(n):
        x[0] = (x[0] * 1103515245 + 12345) & 0x7FFFFFFF
        return (x[0] >> 8) % n
    return r


def test_index_agrees_with_brute_force_matching():
    r = _rand(7)
    words = ["a", "b", "c", "", "$s", "dev"]
    s = RetainStore()
    kept = {}
    for step in range(1500):
        t = "/".join(words[r(len(words))] for _ in range(1 + r(4)))
        if "+" in t or "#" in t:
            continue
        if r(4) == 0:
            s.put(msg(t, b""))
            kept.pop(t, None)
        else:
            m = msg(t, b"%d" % step)
            s.put(m)
            kept[t] = m
        assert len(s) == len(kept)
    fwords = words + ["+", "+", "#"]
    for _ in range(400):
        n = 1 + r(4)
        lv = [fwords[r(len(fwords))] for _ in range(n)]
        for i in range(n - 1):
            if lv[i] == "#":
                lv[i] = "+"
        f = "/".join(lv)
        want = sorted(t for t in kept if topic.matches(f, t))
        got = s.match(f, 0)
        assert topics_of(got) == want, (f, topics_of(got), want)
        for m in got:
            assert kept[m.topic] is m
    for t in list(kept):
        s.put(msg(t, b""))
    assert len(s) == 0 and s.root == {}


def test_a_lookup_visits_only_matching_branches():
    # The store used to test every retained message against every filter.
    s = RetainStore()
    for i in range(500):
        s.put(msg("dev/%d/status" % i))
        s.put(msg("other/%d" % i))
    calls = [0]
    real = retain.matches

    def counting(f, t):
        calls[0] += 1
        return real(f, t)
    retain.matches = counting
    try:
        assert topics_of(s.match("dev/7/status", 0)) == ["dev/7/status"]
        assert calls[0] == 0
        assert topics_of(s.match("dev/7/+", 0)) == ["dev/7/status"]
        assert calls[0] <= 1
        calls[0] = 0
        assert len(s.match("other/+", 0)) == 500
        assert calls[0] <= 500                 # the dev branch is not visited
        calls[0] = 0
        assert len(s.match("dev/+/status", 0)) == 500
        assert calls[0] <= 500
    finally:
        retain.matches = real

