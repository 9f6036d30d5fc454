# Micro-benchmarks of the codec's hot path: framing + decoding PUBLISH and encoding PUBLISH.
# Usage: .venv/bin/python bench/bench_codec.py  (prints operations per second for each case)
import time

from gatemq import codec as c


def rate(fn, n):
    fn(min(n, 1000))  # warm up
    t = time.perf_counter()
    fn(n)
    return n / (time.perf_counter() - t)


def main():
    n = 200000
    v5props = c.encode_props({c.P_USER_PROPERTY: [("k", "v")]})
    for version, label in ((c.MQTT311, "3.1.1"), (c.MQTT5, "5")):
        for size in (16, 1024):
            payload = b"x" * size
            one = bytes(c.encode_publish(b"sensors/room1/temp", payload, 1, False, False, 7,
                                         b"", version))
            batch = one * 100

            def feed_decode(k, batch=batch, version=version):
                r = c.Reader(1 << 20)
                dec = c.decode
                for _ in range(k // 100):
                    for fb, body in r.feed(batch):
                        dec(fb, body, version)

            def encode(k, payload=payload, version=version):
                enc = c.encode_publish
                for i in range(k):
                    enc(b"sensors/room1/temp", payload, 1, False, False, 7, v5props, version)

            print("MQTT %-5s payload %5d B: feed+decode %8.0f pkt/s, encode_publish %8.0f pkt/s"
                  % (label, size, rate(feed_decode, n), rate(encode, n)))


if __name__ == "__main__":
    main()
