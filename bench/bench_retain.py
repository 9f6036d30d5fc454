# The retained store on its own: memory per retained message and lookups per second, the
# topic-level index (gatemq.retain) against the flat {topic: msg} dict it replaced (scanned with
# topic.matches per filter). Runs on CPython and under MicroPython:
#   .venv/bin/python bench/bench_retain.py [N]
#   MICROPYPATH=build/mpy/lib .venv/bin/micropython -X heapsize=64M bench/bench_retain.py [N]
# bench/run.py runs it on both when it is given the retain scenarios.
import gc
import sys
import time

from gatemq.message import Message
from gatemq.retain import RetainStore
from gatemq.topic import matches

try:
    import tracemalloc
except ImportError:
    tracemalloc = None


def clock():
    return time.ticks_ms() / 1000.0 if hasattr(time, "ticks_ms") else time.perf_counter()


def used():
    gc.collect()
    if tracemalloc:
        return tracemalloc.get_traced_memory()[0]
    return gc.mem_alloc()


class Flat:
    # what the store was: one dict, every lookup a scan
    def __init__(self):
        self.msgs = {}

    def put(self, m):
        self.msgs[m.topic] = m

    def match(self, flt, now):
        return [m for t, m in self.msgs.items() if matches(flt, t)]


def build(cls, n):
    base = used()
    s = cls()
    for i in range(n):
        s.put(Message("dev/%d/status" % i, b"online-%08d" % i, 1, True))
    return s, used() - base


def lookups(s, filters):
    t = clock()
    k = 0
    for f in filters:
        k += len(s.match(f, 0))
    return k, clock() - t


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 50000
    if tracemalloc:
        tracemalloc.start()
    # the messages themselves (topic, bytes, payload, object): the same in both stores
    base = used()
    ms = [Message("dev/%d/status" % i, b"online-%08d" % i, 1, True) for i in range(n)]
    per_msg = (used() - base) / float(n)
    del ms
    flat, fb = build(Flat, n)
    fper = fb / float(n)
    step = max(1, n // 2000)
    exact = ["dev/%d/status" % (i * step) for i in range(2000)]
    k = 200
    _, ft = lookups(flat, exact[:k])
    del flat
    gc.collect()
    store, sb = build(RetainStore, n)
    sper = sb / float(n)
    got, st = lookups(store, exact)
    assert got == 2000, got
    plus = ["dev/%d/+" % (i * step) for i in range(2000)]
    got, pt = lookups(store, plus)
    assert got == 2000, got
    got, wt = lookups(store, ["dev/+/status"])
    assert got == n, got
    impl = sys.implementation.name
    print("%s: %d retained dev/<n>/status, 18-byte payloads" % (impl, n))
    print("  memory per retained message: flat dict %.0f B, index %.0f B (%.2fx; the message alone %.0f B)"
          % (fper, sper, sper / fper, per_msg))
    print("  exact lookups/s: flat scan %.1f, index %.0f (%.0fx)" % (k / ft, 2000 / st, (2000 / st) / (k / ft)))
    print("  dev/<n>/+ lookups/s: index %.0f" % (2000 / pt))
    print("  dev/+/status: %d messages in %.3f s" % (n, wt))
    print("RESULT %s %.1f %.1f %.1f %.1f %.1f" % (impl, fper, sper, k / ft, 2000 / st, 2000 / pt))


if __name__ == "__main__":
    main()
