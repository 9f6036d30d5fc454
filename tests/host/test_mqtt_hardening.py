# Issue 11 over real sockets, on both runtimes: what a client does before or without authorization
# does not flood the log, forge $SYS events or pin the broker with password hashes, and MQTT 3.1.1
# QoS 2 is bounded by max_awaiting_rel rather than a Receive Maximum it does not have.
import socket

import pytest

from conftest import require_gatemq
import rawmqtt
from rawmqtt import RawClient

from gatemq import auth, pwhash


@pytest.fixture(autouse=True)
def _gatemq_only():
    require_gatemq()


def _refused_once(port, cid):
    r = RawClient(port, version=4)
    try:
        ack = r.connect(cid)
        r.until_closed()
        return ack.rc
    finally:
        r.close()


def test_a_flood_of_refused_connects_does_not_flood_the_log(make_broker):
    b = make_broker('listeners.tcp.default { bind = "127.0.0.1:0", enable_authn = quick_deny_anonymous }')
    big = "c" * 60000
    for i in range(60):
        assert _refused_once(b.port, big + str(i)) == 5
    lines = [l for l in b.log_lines if "refused 127.0.0.1" in l]
    assert 1 <= len(lines) <= 21, len(lines)
    assert max(len(l) for l in lines) < 1000          # a client id of 60 KB is cut short
    assert "(60001 chars)" in lines[0] or "(60002 chars)" in lines[0]
    assert not [l for l in b.log_lines if "authentication refused" in l]   # once per refusal
    # the broker still serves: a client with a username gets in (from another address: this
    # one is past mqtt.max_login_failures)
    r = _from(b.port, "127.0.0.3")
    r.version = 4
    assert r.connect("fine", username="u").rc == 0
    r.close()


def test_clients_cannot_forge_sys_events(make_broker):
    b = make_broker()
    watch = RawClient(b.port, version=5)
    watch.connect("watch")
    watch.send(rawmqtt.subscribe(1, [("$SYS/brokers/+/clients/+/connected", 0)], version=5))
    watch.expect(rawmqtt.SUBACK)
    forger = RawClient(b.port, version=5)
    forger.connect("forger")
    watch.expect(rawmqtt.PUBLISH)                      # forger's own, real event
    forger.send(rawmqtt.publish("$SYS/brokers/x/clients/admin/connected", b"{}", qos=1, pid=7, version=5))
    ack = forger.expect(rawmqtt.PUBACK)
    assert ack.rc == 0x87
    later = RawClient(b.port, version=5)
    later.connect("later")
    p = watch.expect(rawmqtt.PUBLISH)                  # the next event is the real one, not the forgery
    assert p.topic.endswith("/clients/later/connected")
    b.wait_log("$SYS/ is the broker's")
    for r in (watch, forger, later):
        r.close()


def _from(port, host):
    # A client whose source address is host (another address of the loopback range).
    r = RawClient(port, version=5)
    r.sock.close()
    r.sock = socket.create_connection(("127.0.0.1", port), timeout=5, source_address=(host, 0))
    return r


def test_failed_logins_are_limited_per_address(make_broker, tmp_path):
    algo = {"name": "sha256", "salt_position": "prefix"}
    (tmp_path / "users").write_text(auth.format_user("alice", pwhash.hash_password(algo, "s", b"right"), "s",
                                                     False) + "\n")
    b = make_broker('authentication = [{mechanism = password_based, backend = built_in_database, '
                    'user_file = "%s"}]\nmqtt.max_login_failures = 3\n' % (tmp_path / "users"))
    for i in range(3):
        r = _from(b.port, "127.0.0.1")
        assert r.connect("c%d" % i, username="alice", password=b"wrong").rc == 0x86
        r.close()
    r = _from(b.port, "127.0.0.1")
    assert r.connect("c3", username="alice", password=b"right").rc == 0x9F
    r.close()
    # another address is not held back by that one's failures
    r = _from(b.port, "127.0.0.2")
    assert r.connect("c4", username="alice", password=b"right").rc == 0
    r.close()


def test_mqtt311_qos2_beyond_32_awaiting_pubrel_is_served(make_broker):
    b = make_broker("mqtt.max_awaiting_rel = 100")
    r = RawClient(b.port, version=4)
    r.connect("q2")
    for pid in range(1, 61):
        r.send(rawmqtt.publish("t", b"x", qos=2, pid=pid))
    got = [r.expect(rawmqtt.PUBREC).pid for _ in range(60)]
    assert got == list(range(1, 61))
    for pid in range(1, 61):
        r.send(rawmqtt.ack(rawmqtt.PUBREL, pid))
    assert [r.expect(rawmqtt.PUBCOMP).pid for _ in range(60)] == list(range(1, 61))
    r.close()
