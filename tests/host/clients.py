# A synchronous face on paho-mqtt 2.x for the behavioural tests: connect and wait for CONNACK,
# subscribe and wait for SUBACK, publish and wait for the ack, and a queue of received messages.
import queue
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

V31, V311, V5 = mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5


def props(kind="PUBLISH", **values):
    """Properties(PacketTypes.<kind>) with attributes set, e.g. props(MessageExpiryInterval=5)."""
    p = Properties(getattr(PacketTypes, kind))
    for k, v in values.items():
        setattr(p, k, v)
    return p


class Client:
    def __init__(self, port, client_id="", version=V5, clean=True, keepalive=30, will=None,
                 username=None, password=None, connect_props=None, host="127.0.0.1"):
        self.port = port
        self.host = host
        self.version = version
        self.client_id = client_id
        self.keepalive = keepalive
        self.clean = clean
        self.connect_props = connect_props
        kw = {}
        if version != V5:
            kw["clean_session"] = clean
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=version,
                             reconnect_on_failure=False, **kw)
        if will:
            self.c.will_set(will["topic"], will.get("payload"), will.get("qos", 0), will.get("retain", False),
                            will.get("props"))
        if username is not None:
            self.c.username_pw_set(username, password)
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.disconnected = threading.Event()
        self.connack = None
        self.disconnect_rc = None
        self.disconnect_props = None
        self._subacks = {}
        self._sub_event = threading.Condition()
        self.c.on_connect = self._on_connect
        self.c.on_disconnect = self._on_disconnect
        self.c.on_message = self._on_message
        self.c.on_subscribe = self._on_subscribe
        self.c.on_unsubscribe = self._on_subscribe

    def _on_connect(self, client, userdata, flags, rc, properties):
        self.connack = (flags, rc, properties)
        self.rc = rc
        self.connack_props = properties
        self.session_present = flags.session_present
        self.connected.set()

    def _on_disconnect(self, client, userdata, flags, rc, properties):
        self.disconnect_rc = rc
        self.disconnect_props = properties
        self.disconnected.set()

    def _on_message(self, client, userdata, msg):
        self.messages.put(msg)

    def _on_subscribe(self, client, userdata, mid, rcs, properties):
        with self._sub_event:
            self._subacks[mid] = rcs
            self._sub_event.notify_all()

    def connect(self, timeout=5.0, expect_ok=True):
        kw = {}
        if self.version == V5:
            kw["clean_start"] = self.clean
            if self.connect_props is not None:
                kw["properties"] = self.connect_props
        self.c.connect(self.host, self.port, keepalive=self.keepalive, **kw)
        self.c.loop_start()
        if not self.connected.wait(timeout):
            raise AssertionError("no CONNACK for %r in %.1fs" % (self.client_id, timeout))
        if expect_ok:
            assert not self.rc.is_failure, "CONNECT of %r refused: %s" % (self.client_id, self.rc)
        return self

    def subscribe(self, topic, qos=0, timeout=5.0, no_local=False, retain_as_published=False,
                  retain_handling=0, properties=None):
        if self.version == V5:
            opts = SubscribeOptions(qos=qos, noLocal=no_local, retainAsPublished=retain_as_published,
                                    retainHandling=retain_handling)
            rc, mid = self.c.subscribe(topic, options=opts, properties=properties)
        else:
            rc, mid = self.c.subscribe(topic, qos)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(mid, timeout)

    def subscribe_many(self, filters, timeout=5.0):
        rc, mid = self.c.subscribe(filters)
        assert rc == mqtt.MQTT_ERR_SUCCESS, rc
        return self._wait_ack(mid, timeout)

    def unsubscribe(self, topic, timeout=5.0):
        rc, mid = self.c.unsubscribe(topic)
        return self._wait_ack(mid, timeout)

    def _wait_ack(self, mid, timeout):
        deadline = time.monotonic() + timeout
        with self._sub_event:
            while mid not in self._subacks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no SUBACK/UNSUBACK in %.1fs" % timeout)
                self._sub_event.wait(left)
            rcs = self._subacks.pop(mid)
        return [getattr(r, "value", r) for r in rcs]

    def publish(self, topic, payload=b"", qos=0, retain=False, properties=None, timeout=5.0, wait=True):
        info = self.c.publish(topic, payload, qos, retain, properties)
        if wait and qos:
            info.wait_for_publish(timeout)
            assert info.is_published(), "publish to %s not acknowledged" % topic
        return info

    def expect(self, timeout=5.0):
        try:
            return self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError("%r received nothing in %.1fs" % (self.client_id, timeout))

    def expect_n(self, n, timeout=5.0):
        deadline = time.monotonic() + timeout
        return [self.expect(max(0.01, deadline - time.monotonic())) for _ in range(n)]

    def expect_none(self, timeout=0.5):
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            return
        raise AssertionError("%r unexpectedly received %s %r" % (self.client_id, msg.topic, msg.payload))

    def drain(self):
        out = []
        while True:
            try:
                out.append(self.messages.get_nowait())
            except queue.Empty:
                return out

    def wait_disconnected(self, timeout=5.0):
        assert self.disconnected.wait(timeout), "%r was not disconnected in %.1fs" % (self.client_id, timeout)
        return self.disconnect_rc

    def disconnect(self, reasoncode=None, properties=None):
        if self.c.is_connected():
            if reasoncode is not None:
                from paho.mqtt.reasoncodes import ReasonCode
                rc = ReasonCode(PacketTypes.DISCONNECT, identifier=reasoncode)
                self.c.disconnect(rc, properties)
            else:
                self.c.disconnect()
            self.disconnected.wait(3)
        self.c.loop_stop()

    def close(self):
        """Drop the TCP connection without DISCONNECT (an abnormal end: wills fire)."""
        self.c.loop_stop()
        sock = self.c.socket()
        if sock:
            sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        try:
            self.disconnect()
        except Exception:
            pass
