# A sans-IO harness: drives gatemq.broker.Broker with a fake clock and decodes what it sends,
# so the core's state machines are tested the same way on CPython and MicroPython.
from gatemq import codec, config
from gatemq.broker import Broker


class Clock:
    def __init__(self):
        self.t = 1000.0

    def __call__(self):
        return self.t


class Client:
    def __init__(self, h, port, listener="tcp:default", cert=None):
        self.h = h
        self.conn = h.broker.open(self, ("127.0.0.1", port), listener, cert)
        self.reader = codec.Reader(None)
        self.version = None
        self.got = []
        self.closed = False

    def send(self, data):
        self.conn.feed(data)
        self.h.pump()

    def drop(self):
        # The transport went away without DISCONNECT.
        self.conn.lost()
        self.h.pump()

    def connect(self, cid, version=4, **kw):
        self.version = version
        self.send(codec.encode_connect(cid, version, **kw))
        return self.expect(codec.CONNACK)

    def subscribe(self, pid, topics, props=None):
        self.send(codec.encode_subscribe(pid, topics, props, self.version))
        return self.expect(codec.SUBACK)

    def publish(self, topic, payload, qos=0, retain=False, pid=None, props=None, dup=False):
        pb = codec.encode_props(props) if (props and self.version == 5) else b""
        self.send(bytes(codec.encode_publish(topic.encode(), payload, qos, retain, dup, pid, pb, self.version)))

    def ack(self, ptype, pid, rc=0):
        self.send(codec.encode_ack(ptype, pid, rc, None, self.version))

    def take(self):
        out = self.got
        self.got = []
        return out

    def expect(self, ptype):
        for i, p in enumerate(self.got):
            if p.ptype == ptype:
                del self.got[i]
                return p
        raise AssertionError("no packet of type %d in %r" % (ptype, self.got))

    def publishes(self):
        out = [p for p in self.got if p.ptype == codec.PUBLISH]
        self.got = [p for p in self.got if p.ptype != codec.PUBLISH]
        return out


class Harness:
    def __init__(self, text="", files=None):
        # files: {path: text} that the broker reads (acl.conf, users files)
        self.clock = Clock()
        self.logs = []
        cfg = config.load(text) if text else config.default()
        read = (lambda path: files[path].encode()) if files else None
        self.broker = Broker(cfg, self.clock, lambda: 1.7e9 + self.clock.t, self.log, read)
        self.ports = 40000

    def log(self, level, msg):
        self.logs.append((level, msg))

    def text(self):
        return "\n".join(m for _, m in self.logs)

    def connected(self, *args, **kw):
        # A client that sent CONNECT(*args, **kw) (Client.connect's arguments).
        c = self.client()
        c.connect(*args, **kw)
        return c

    def subscriber(self, filters, *args, **kw):
        # A connected client subscribed to filters [(filter, options)] with packet id 1.
        c = self.connected(*args, **kw)
        c.subscribe(1, filters)
        return c

    def client(self, **kw):
        self.ports += 1
        return Client(self, self.ports, **kw)

    def pump(self):
        for c in self.broker.flush():
            cl = c.handle
            data = c.take()
            if data:
                for b0, body in cl.reader.feed(data):
                    cl.got.append(codec.decode(b0, body, cl.version or 5))
            if c.closing:
                cl.closed = True

    def advance(self, dt):
        self.clock.t += dt
        self.broker.tick()
        self.pump()
