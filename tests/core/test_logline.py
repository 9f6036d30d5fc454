# gatemq.logline: identifiers cut short and escaped; the throttle every flood-prone log line shares,
# driven by a fake clock (the real 10.5 s sleeps of the port tests are gone).
from gatemq.logline import Throttle, more, ident, IDENT_MAX


def test_ident_cuts_and_escapes():
    assert ident("dev-1") == "'dev-1'"
    assert ident(None) == "None"
    assert "\n" not in ident("a\nb") and "\\n" in ident("a\nb")
    long = "x" * 70000
    s = ident(long)
    assert s.endswith("...(70000 chars)") and len(s) < IDENT_MAX + 40
    assert ident(b"\x00" * 300).endswith("(300 bytes)")


def test_throttle_lets_one_line_per_interval_and_counts_the_rest():
    t = Throttle(10)
    assert t.allow(100.0) == 0
    for i in range(199):
        assert t.allow(100.0 + i * 0.01) is None
    assert t.allow(109.9) is None
    assert t.allow(110.0) == 200          # every held line is counted in the next one
    assert t.allow(110.1) is None
    assert t.allow(125.0) == 1
    assert t.allow(140.0) == 0


def test_throttle_burst():
    t = Throttle(10, burst=3)
    assert [t.allow(0), t.allow(1), t.allow(2), t.allow(3), t.allow(4)] == [0, 0, 0, None, None]
    assert t.allow(10) == 2 and t.allow(10) == 0 and t.allow(10) == 0 and t.allow(10) is None


def test_more():
    assert more(0) == ""
    assert more(3, "refused") == "; 3 more refused since the last such line"


def test_listener_refusals_share_the_throttle_with_a_fake_clock():
    from _harness import Harness
    h = Harness('listeners.tcp.default { bind = "127.0.0.1:0", max_connections = 1 }')
    h.client()
    for _ in range(50):
        assert h.broker.open(None, ("127.0.0.1", 1), "tcp:default") is None
    lines = [m for _, m in h.logs if "max_connections (1) reached" in m]
    assert len(lines) == 1
    h.clock.t += 10
    assert h.broker.open(None, ("127.0.0.1", 2), "tcp:default") is None
    lines = [m for _, m in h.logs if "max_connections (1) reached" in m]
    assert len(lines) == 2 and lines[1].endswith("; 49 more refused since the last such line")
