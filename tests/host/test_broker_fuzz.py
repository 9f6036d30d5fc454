# Random and mutated packets against a live broker, while a normal client keeps publishing and
# receiving through it: whatever arrives on one connection, the broker keeps serving the others.
import socket
import threading
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import rawmqtt as R
from clients import Client

BROKER_CONFIG = "mqtt { max_topic_alias = 8, idle_timeout = 2s }"

VALID = [
    R.connect("fz", version=4),
    R.connect("fz", version=5, props={"session_expiry": 10, "receive_maximum": 5}, username="u", password="p",
              will={"topic": "fuzz/will", "payload": b"w", "qos": 1, "props": {"will_delay": 1}}),
    R.publish("fuzz/a", b"hello", qos=0),
    R.publish("fuzz/a", b"hello", qos=1, pid=3, version=5,
              props={"message_expiry": 5, "user_property": [("k", "v")], "topic_alias": 2}),
    R.publish("", b"x", qos=2, pid=4, version=5, props={"topic_alias": 2}),
    R.publish("fuzz/r", b"r", qos=1, pid=5, retain=True),
    R.subscribe(6, [("fuzz/#", 2), ("$share/g/fuzz/+", 1)], version=5, props={"subscription_id": 9}),
    R.subscribe(7, [("fuzz/+/x", 1)]),
    R.unsubscribe(8, ["fuzz/#"], version=5),
    R.ack(R.PUBACK, 1), R.ack(R.PUBREC, 2, 0, {}, version=5), R.ack(R.PUBREL, 4), R.ack(R.PUBCOMP, 2),
    R.pingreq(), R.disconnect(0x04, {"session_expiry": 0}, version=5), R.auth(0x19, {"auth_method": "x"}),
]


@st.composite
def mutated(draw):
    data = bytearray(draw(st.sampled_from(VALID)))
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "length"]))
        if not data:
            break
        i = draw(st.integers(0, len(data) - 1))
        if kind == "flip":
            data[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set":
            data[i] = draw(st.integers(0, 255))
        elif kind == "truncate":
            del data[i:]
        elif kind == "insert":
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[i:i + draw(st.integers(1, 4))]
        elif kind == "length" and len(data) > 1:
            data[1] = draw(st.integers(0, 255))
    return bytes(data)


packets = st.one_of(st.binary(max_size=200), mutated())


class Keeper:
    """A normal client publishing and receiving in the background for the whole fuzz run."""

    def __init__(self, port):
        self.client = Client(port, "fuzz-keeper", keepalive=5).connect()
        self.client.subscribe("keeper/#", 1)
        self.sent = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop.is_set():
            self.client.publish("keeper/bg", b"%d" % self.sent, qos=1, timeout=10)
            self.sent += 1
            self.stop.wait(0.02)

    def roundtrip(self):
        # a round trip through the broker, synchronous, for the check after each example
        info = self.client.publish("keeper/rt", b"rt", qos=1, timeout=5)
        assert info.is_published()

    def finish(self):
        self.stop.set()
        self.thread.join(15)
        received = [m for m in self.client.drain() if m.topic == "keeper/bg"]
        return self.sent, len(received)


@pytest.fixture(scope="module")
def keeper(mod_broker):
    k = Keeper(mod_broker.port)
    yield k
    k.stop.set()
    k.client.disconnect()


def _exchange(port, prefix, payloads):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        try:
            if prefix:
                s.sendall(prefix)
            for p in payloads:
                s.sendall(p)
            s.settimeout(0.02)
            s.recv(65536)
        except (socket.timeout, OSError):
            pass


@settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
@given(version=st.sampled_from([None, 4, 5]), payloads=st.lists(packets, min_size=1, max_size=4))
def test_fuzzed_connections_do_not_disturb_others(mod_broker, keeper, version, payloads):
    prefix = R.connect("fz", version=version) if version else b""
    _exchange(mod_broker.port, prefix, payloads)
    assert mod_broker.alive(), mod_broker.log()[-3000:]
    keeper.roundtrip()


def test_keeper_received_everything_it_published(mod_broker, keeper):
    # runs after the fuzz test in this module: the background traffic flowed the whole time
    start = time.monotonic()
    while keeper.sent < 20 and time.monotonic() - start < 5:
        time.sleep(0.05)
    time.sleep(0.3)
    sent, received = keeper.finish()
    assert sent >= 20
    assert received >= sent - 1, (sent, received)
    assert "Traceback" not in mod_broker.log()
