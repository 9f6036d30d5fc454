from gatemq import topic
from gatemq.router import Router, Subscription


def test_filter_validation():
    for f in ("a", "a/b", "+", "#", "a/+/c", "a/#", "+/+", "/", "a//b"):
        assert topic.valid_filter(f), f
    for f in ("", "a/#/b", "a#", "a+", "#/a", "a/b+"):
        assert not topic.valid_filter(f), f
    assert not topic.valid_filter("a/b/c", max_levels=2)


def test_name_validation():
    assert topic.valid_name("a/b")
    assert not topic.valid_name("a/+")
    assert not topic.valid_name("a/#")
    assert not topic.valid_name("")


def test_matching_rules():
    assert topic.matches("a/+/c", "a/b/c")
    assert topic.matches("a/#", "a")
    assert topic.matches("a/#", "a/b/c")
    assert not topic.matches("a/+", "a/b/c")
    assert topic.matches("+/+", "/x")
    # A wildcard in the first level does not match $ topics.
    assert not topic.matches("#", "$SYS/x")
    assert not topic.matches("+/x", "$SYS/x")
    assert topic.matches("$SYS/#", "$SYS/x")


def test_share_split():
    assert topic.split_share("$share/g/a/b") == ("g", "a/b")
    assert topic.split_share("a/b") == (None, "a/b")
    assert topic.split_share("$share/g")[0] == ""
    assert topic.split_share("$share//a")[0] == ""


def _first(members, start):
    return start % len(members) if members else -1


def test_router_overlapping_highest_qos_and_all_subids():
    r = Router()
    r.add(Subscription("c1", "a/+", 0, 1, None))
    r.add(Subscription("c1", "a/#", 2, 2, None))
    r.add(Subscription("c2", "a/b", 1, None, None))
    m = r.match("a/b", _first)
    assert m["c1"][0] == 2
    assert sorted(m["c1"][2]) == [1, 2]
    assert m["c2"][0] == 1 and m["c2"][2] is None
    assert r.match("$SYS/a", _first) == {}


def test_router_shared_round_robin_and_remove():
    r = Router()
    for c in ("x", "y", "z"):
        r.add(Subscription(c, "s/#", 1, None, "g"))
    picked = [list(r.match("s/1", _first).keys())[0] for _ in range(6)]
    assert picked == ["x", "y", "z", "x", "y", "z"]
    assert r.remove("y", "s/#", "g")
    assert r.count == 2
    assert r.remove("x", "s/#", "g") and r.remove("z", "s/#", "g")
    assert r.match("s/1", _first) == {}
    # empty branches are pruned
    assert r.root.children == {}


def test_router_no_local():
    r = Router()
    r.add(Subscription("me", "t", 4, None, None))
    assert r.match("t", _first, "me") == {}
    assert "me" in r.match("t", _first, "other")


# --- topic.matches against the router's trie walk on random filters and topics ---------------
# A linear congruential generator, so the same cases come out under CPython and MicroPython.

class _Lcg:
    def __init__(self, seed):
        self.x = seed

    def below(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


_LEVELS = ("a", "b", "", "$SYS", "$x")


def _random_topic(rng):
    return "/".join(_LEVELS[rng.below(len(_LEVELS))] for _ in range(1 + rng.below(4)))


def _random_filter(rng):
    n = 1 + rng.below(4)
    out = []
    for i in range(n):
        k = rng.below(len(_LEVELS) + 2)
        if k == len(_LEVELS):
            out.append("+")
        elif k == len(_LEVELS) + 1 and i == n - 1:
            out.append("#")
        else:
            out.append(_LEVELS[k % len(_LEVELS)])
    return "/".join(out)


def test_matches_agrees_with_router_on_random_filters():
    rng = _Lcg(20240601)
    for _ in range(40):
        filters = []
        r = Router()
        for k in range(1 + rng.below(8)):
            f = _random_filter(rng) or "+"
            filters.append(f)
            r.add(Subscription("c%d" % k, f, 0, None, None))
        for _ in range(25):
            t = _random_topic(rng)
            got = sorted(r.match(t, _first).keys())
            want = sorted("c%d" % k for k, f in enumerate(filters) if topic.matches(f, t))
            assert got == want, (t, filters, got, want)


def test_matches_subscribe_needs_a_wider_wildcard():
    assert topic.matches("t/#", "t/+", True)
    assert topic.matches("t/+", "t/+", True)
    assert not topic.matches("t/+", "t/#", True)
    assert not topic.matches("t/x", "t/+", True)
    assert topic.matches("t/+", "t/+")  # as a name, "+" is just a level
