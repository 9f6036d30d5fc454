# gatemq.prometheus on both runtimes: the text format, the counters the broker keeps, bridges.
from gatemq import config, prometheus
from gatemq.bridge import Bridge
from gatemq.broker import Broker
from gatemq.message import Message

CONF = '''
listeners.tcp.default.bind = "127.0.0.1:1883"
bridges.mqtt.cloud {
  server = "mqtt://192.0.2.1:1883"
  forwards = [ { local_topic = "up/#", remote_topic = "gw/up/#", qos = 1 } ]
}
'''


def _samples(text):
    out = {}
    typed = []
    for line in text.split("\n"):
        if line.startswith("# TYPE "):
            typed.append(line.split(" ")[2])
        elif line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            name = key.split("{")[0]
            assert name in typed or name.rsplit("_", 1)[0] in typed, line   # a summary's _sum, _count
            out[key] = float(value)
    return out


def _broker(text=CONF):
    t = [1000.0]
    cfg = config.load(text)
    b = Broker(cfg, lambda: t[0], lambda: 1.8e9 + t[0], lambda level, msg: None, None)
    lst = [("tcp:default", "tcp", "default", cfg["listeners"]["tcp"]["default"], ("127.0.0.1", 1883))]
    return b, cfg, lst


def test_counters_and_format():
    b, cfg, lst = _broker()
    s = _samples(prometheus.render(b, lst))
    assert s["gatemq_messages_qos1_received"] == 0 and s["gatemq_connections_count"] == 0
    assert s['gatemq_listener_connections_count{listener="tcp:default",type="tcp",name="default"}'] == 0
    b.publish(Message("a/b", b"x", 1, False))
    b.publish(Message("a/b", b"x", 0, False))
    b.count("authentication.failure.revoked")
    b.count("authentication.failure.revoked")
    b.count("authorization.deny.subscribe")
    s = _samples(prometheus.render(b, lst))
    assert s["gatemq_messages_received"] == 2
    assert s["gatemq_messages_qos1_received"] == 1 and s["gatemq_messages_qos0_received"] == 1
    assert s['gatemq_authentication_failure_by_reason{reason="revoked"}'] == 2
    assert s["gatemq_authentication_failure"] == 2
    assert s['gatemq_authorization_deny_by_action{action="subscribe"}'] == 1
    short = _samples(prometheus.render(b, lst, short=lambda: True))
    assert "gatemq_authentication_failure" not in short and short["gatemq_messages_received"] == 2


def test_bridges_and_extra_families():
    b, cfg, lst = _broker()
    assert "gatemq_bridge_status" not in prometheus.render(b, lst)     # no bridge objects yet
    br = Bridge(b, "cloud", cfg["bridges"]["mqtt"]["cloud"])
    b.bridges = [br]
    for i in range(3):
        b.publish(Message("up/t%d" % i, b"v", 1, False))
    b.publish(Message("other", b"v", 1, False))                       # not forwarded
    assert "persistence_store_bytes" not in prometheus.render(b, lst)     # persistence off
    from gatemq import persist
    persist.attach(b, cfg["persistence"]).store_size = lambda: 4096         # as the ports' Durable does
    s = _samples(prometheus.render(b, lst))
    assert s['gatemq_bridge_status{bridge="mqtt:cloud"}'] == 0          # never connected
    assert s['gatemq_bridge_queue_depth{bridge="mqtt:cloud"}'] == 3
    assert s['gatemq_bridge_messages_sent{bridge="mqtt:cloud"}'] == 0
    assert s["gatemq_persistence_store_bytes"] == 4096


def test_label_values_are_escaped():
    b, cfg, lst = _broker()
    text = prometheus.render(b, [('tcp:a"b', "tcp", 'a"b\\', cfg["listeners"]["tcp"]["default"], ("h", 1))])
    assert 'listener="tcp:a\\"b"' in text and 'name="a\\"b\\\\"' in text

