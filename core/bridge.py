# The MQTT bridge, sans-IO: one MQTT client per `bridges.mqtt.<name>` that forwards local messages
# upstream and brings the upstream's messages down (docs/bridge.md). The port owns the socket, TLS,
# DNS and the timers; this module owns everything else: the client state machine (CONNECT,
# CONNACK, SUBSCRIBE, PUBLISH both ways, keepalive), the topic mapping, the store-and-forward queue
# (BridgeQueue), the reconnect backoff with jitter, the log lines and the visible state.
#
# The port's side, for one Bridge b:
#   b.notify = fn()            called when b has output to write or wants its transport closed
#   b.due(now)                 seconds until the next connection attempt (0: now), None while busy
#   b.attempt(now)             -> (host, port, tls): the attempt starts (state "connecting")
#   b.up(now)                  the transport (TCP, TLS) is established: CONNECT goes out
#   b.feed(data)               bytes from the upstream
#   b.take()                   bytes to write (b"" for none); b.closing: close after writing
#   b.failed(kind, detail)     the attempt or the link failed: kind is dns|refused|tls|timeout|
#                              closed|error; logged once, the next attempt scheduled with backoff
#   b.set_congested(on)        the port's send buffer passed its high-water mark (or drained)
#   b.tick(now)                keepalive; -> seconds until its next deadline
# The broker calls b.offer(msg) for every message it routes (Broker.publish).
from gatemq import codec
from gatemq import reasons as R
from gatemq.message import Message
from gatemq.logline import Throttle, more, ident
from gatemq.packet import MQTT311, MQTT5

DISCONNECTED = "disconnected"
CONNECTING = "connecting"
CONNECTED = "connected"

# The first reconnect delay in seconds; it doubles per failure up to backoff_max.
BACKOFF_MIN = 0.5
# Seconds between republications of a changed $SYS status (state changes publish at once).
STATUS_INTERVAL = 1
# The in-flight window towards an MQTT 3.1.1 upstream, which announces no Receive Maximum.
V4_WINDOW = 32
# CONNACK return codes of MQTT 3.1.1.
_V3_CONNACK = {1: "unacceptable protocol version", 2: "identifier rejected", 3: "server unavailable",
               4: "bad user name or password", 5: "not authorized"}


# ---- topic mapping -----------------------------------------------------------------------------

def shape(flt):
    # The wildcards of a filter in order: two filters of the same shape map onto each other.
    return [lv for lv in flt.split("/") if lv == "+" or lv == "#"]


def map_topic(topic, src, dst):
    # topic matched by filter src -> the topic dst names, the levels the wildcards of src matched
    # put in place of dst's ("sensors/a/b", "sensors/#", "gw/1/sensors/#" -> "gw/1/sensors/a/b").
    if dst is None or dst == src:
        return topic
    caps = []
    sl = src.split("/")
    if "+" in src or "#" in src:
        tl = topic.split("/")
        for i, f in enumerate(sl):
            if f == "#":
                caps.append(tl[i:])
                break
            if f == "+":
                caps.append(tl[i:i + 1])
    out = []
    k = 0
    for f in dst.split("/"):
        if f == "+" or f == "#":
            out.extend(caps[k])
            k += 1
        else:
            out.append(f)
    return "/".join(out)


class Rule:
    # One forwards or subscription entry: match is the filter on the side messages come from.
    __slots__ = ("match", "to", "qos")

    def __init__(self, match, to, qos):
        self.match = match
        self.to = to
        self.qos = qos


# ---- the store-and-forward queue ---------------------------------------------------------------

class Item:
    # One forwarded message: queued, then (QoS 1/2) in flight under a packet id until PUBACK or
    # PUBCOMP. phase 1: PUBREC came back and PUBREL went out.
    __slots__ = ("msg", "topic", "qos", "pid", "phase", "seq")

    def __init__(self, msg, topic, qos, seq):
        self.msg = msg
        self.topic = topic
        self.qos = qos
        self.pid = 0
        self.phase = 0
        self.seq = seq


class BridgeQueue:
    # The messages of one bridge not yet acknowledged upstream, in order: pending (not sent) and
    # inflight (sent, by packet id). Bounded by max_messages over both; when full, the oldest
    # pending QoS 0 message goes, else the oldest pending QoS 1/2 one (store-and-forward keeps the
    # newest data; the local publisher had its PUBACK for both); only with every slot in flight is
    # the new one dropped. store: the persistence hook (gatemq.persist.BridgeStore), an object with
    # put(item) (queued, or its state changed) and done(item) (acknowledged or dropped), or None.
    def __init__(self, max_messages, store=None):
        self.max = max_messages
        self.items = []       # pending, from self.head on
        self.head = 0
        self.inflight = {}    # pid -> Item
        self.qos0 = 0         # QoS 0 items among the pending ones
        self.seq = 0
        self.store = store

    def __len__(self):
        return len(self.items) - self.head + len(self.inflight)

    def pending(self):
        return len(self.items) - self.head

    def push(self, item):
        # -> the item dropped to make room (maybe item itself), or None.
        dropped = None
        if len(self) >= self.max:
            if self.qos0:
                dropped = self._drop_oldest_qos0()
            elif self.head < len(self.items):
                dropped = self.pop()
                if self.store is not None:
                    self.store.done(dropped)
            else:
                return item
        self.seq += 1
        item.seq = self.seq
        self.items.append(item)
        if not item.qos:
            self.qos0 += 1
        if self.store is not None and item.qos:
            self.store.put(item)
        return dropped

    def _drop_oldest_qos0(self):
        items = self.items
        for i in range(self.head, len(items)):
            it = items[i]
            if not it.qos:
                items.pop(i)
                self.qos0 -= 1
                return it
        return None

    def first(self):
        return self.items[self.head] if self.head < len(self.items) else None

    def restore(self, items):
        # The items persistence kept (in order, seq set): pending, with their packet ids, to be sent
        # first (with DUP when the upstream kept the session).
        if not items:
            return
        self.items = items + self.items[self.head:]
        self.head = 0
        for it in items:
            if not it.qos:
                self.qos0 += 1
            if it.seq > self.seq:
                self.seq = it.seq

    def pop(self):
        it = self.items[self.head]
        self.items[self.head] = None
        self.head += 1
        if self.head >= 1024 and self.head * 2 >= len(self.items):
            self.items = self.items[self.head:]
            self.head = 0
        if not it.qos:
            self.qos0 -= 1
        return it

    def sent(self, item):
        self.inflight[item.pid] = item
        if self.store is not None:
            self.store.put(item)

    def acked(self, pid):
        it = self.inflight.pop(pid, None)
        if it is not None and self.store is not None:
            self.store.done(it)
        return it

    def requeue(self):
        # The link went down: what was in flight goes back in front, in its order, to be sent
        # again (with DUP and its packet id when the upstream kept the session).
        if self.inflight:
            back = sorted(self.inflight.values(), key=lambda it: it.seq)
            self.inflight = {}
            self.items = back + self.items[self.head:]
            self.head = 0


class _Rand:
    # A small xorshift for the jitter (MicroPython's random differs between builds).
    def __init__(self, seed):
        self.s = (int(seed * 1000003) & 0xFFFFFFFF) or 0x9E3779B9

    def random(self):
        s = self.s
        s ^= (s << 13) & 0xFFFFFFFF
        s ^= s >> 17
        s ^= (s << 5) & 0xFFFFFFFF
        self.s = s
        return s / 4294967296.0


# ---- the bridge --------------------------------------------------------------------------------

class Bridge:
    def __init__(self, broker, name, cfg):
        self.broker = broker
        self.name = name
        self.id = "mqtt:" + name
        self.cfg = cfg
        self.tag = "$bridge/" + name     # Message.sender of what came down: never sent back up
        self.clock = broker.clock
        self.log = broker.log
        self.scheme, self.host, self.port = cfg["server"]
        self.tls = self.scheme == "mqtts"
        self.version = MQTT5 if cfg["proto_ver"] == 5 else MQTT311
        self.clientid = cfg["clientid"] or "%s:%s" % (broker.node, name)
        self.keepalive = cfg["keepalive"]
        self.forwards = [Rule(f["local_topic"] or f["remote_topic"], f["remote_topic"], f["qos"])
                         for f in cfg["forwards"]]
        self.subs = [Rule(s["remote_topic"] or s["local_topic"], s["local_topic"], s["qos"])
                     for s in cfg["subscription"]]
        self.queue = BridgeQueue(cfg["queue"]["max_messages"])
        self.awaiting_rel = set()       # QoS 2 packet ids from the upstream awaiting its PUBREL
        p = broker.persist
        if p is not None:
            # persistence.enable: the queue, the upstream session's packet ids and the QoS 2 ids
            # awaiting PUBREL are records too
            self.queue.store, items, self.awaiting_rel = p.bridge(name)
            if items:
                self.queue.restore(items)
                self.log("info", "bridge %s: %d queued message(s) restored from the store (%d sent upstream "
                         "and not acknowledged)" % (self.id, len(items), len([1 for it in items if it.pid])))
        self.state = DISCONNECTED
        self.last_error = None
        self.sent = 0
        self.received = 0
        self.dropped = 0
        self.refused = 0
        self.notify = None
        self.closing = False
        self.congested = False
        self.out = []
        self.window = V4_WINDOW
        self.session_present = False
        self.next_pid = 1
        for it in self.queue.items:
            if it is not None and it.pid >= self.next_pid:
                self.next_pid = it.pid + 1 if it.pid < 65535 else 1
        self.link = 0                   # counts CONNACKs: an ack held for a commit is for one link
        self.failures = 0
        self.next_attempt = broker.clock()
        self.rand = _Rand(broker.wallclock())
        self._reader = None
        self._last_tx = 0
        self._last_rx = 0
        self._ping_out = False
        self._drop_log = Throttle()
        self._refuse_log = Throttle(10, 5)
        self.connected_at = None
        self.cert_not_after = None      # our certificate's end (epoch seconds), set by the port
        self._status_next = 0
        self._status_key = None

    # ---- the port's side ----

    def due(self, now):
        if self.state != DISCONNECTED or not self.cfg["enable"]:
            return None
        d = self.next_attempt - now
        return d if d > 0 else 0

    def attempt(self, now):
        self.state = CONNECTING
        self.closing = False
        self.out = []
        self._status()
        return self.host, self.port, self.tls

    def up(self, now):
        self._reader = codec.Reader()
        self._last_rx = now
        self._ping_out = False
        cfg = self.cfg
        props = None
        if self.version == MQTT5:
            props = {codec.P_SESSION_EXPIRY: min(cfg["session_expiry_interval"], 0xFFFFFFFF)}
        pw = cfg["password"]
        self._send(codec.encode_connect(self.clientid, self.version, cfg["clean_start"], self.keepalive,
                                        cfg["username"], pw.encode() if pw is not None else None, None, props))

    def take(self):
        out = self.out
        if not out:
            return b""
        self.out = []
        return out[0] if len(out) == 1 else b"".join(out)

    def set_congested(self, on):
        self.congested = on
        if not on:
            self.pump()

    def failed(self, kind, detail):
        # The attempt (or the established link) failed. One line per backoff step.
        was = self.state
        self.state = DISCONNECTED
        self.closing = False
        self._reader = None
        self.out = []
        self.queue.requeue()
        self.connected_at = None
        now = self.clock()
        if was == CONNECTED:
            self.failures = 0
        b = BACKOFF_MIN * (2 ** min(self.failures, 20))
        cap = self.cfg["backoff_max"]
        if b > cap:
            b = cap
        delay = b / 2 + b / 2 * self.rand.random()
        self.failures += 1
        self.next_attempt = now + delay
        if kind == "tls" and self.cert_not_after is not None and "expired" not in detail:
            # An upstream that refuses an expired client certificate may only close the
            # connection (mbedTLS then reports a broken pipe): say what we know ourselves.
            ago = self.broker.wallclock() - self.cert_not_after
            if ago > 0:
                detail = "our certificate (ssl.certfile) expired %d day(s) ago, the upstream refused it (%s)" % (
                    int(ago // 86400), detail)
        self.last_error = "%s: %s" % (kind, detail)
        if was == CONNECTED:
            self.log("warning", "bridge %s: link to %s lost (%s); reconnecting in %.1fs, %d message(s) queued" % (
                self.id, self._where(), self.last_error, delay, len(self.queue)))
        else:
            self.log("warning", "bridge %s: cannot connect to %s: %s; next attempt in %.1fs (backoff step %d)" % (
                self.id, self._where(), self.last_error, delay, self.failures))
        self._status()

    def set_certificate(self, der_bytes):
        # The gateway's own certificate (DER), for naming an expired one in the log.
        try:
            from gatemq import der
            self.cert_not_after = der.parse_certificate(der_bytes).not_after
        except Exception:
            self.cert_not_after = None

    def _where(self):
        h = self.host
        return "%s://%s:%d" % (self.scheme, "[%s]" % h if ":" in h else h, self.port)

    def tick(self, now):
        # -> seconds until the next keepalive deadline (None: nothing to do).
        if self.state == DISCONNECTED or self._reader is None or self.closing:
            return None
        ka = self.keepalive
        if self.state == CONNECTING:
            # CONNACK within the keepalive (at least 10 s)
            lim = self._last_rx + (ka if ka > 10 else 10)
            if now >= lim:
                self._close("timeout", "no CONNACK within %ds" % (ka if ka > 10 else 10))
                return None
            return lim - now
        if not ka:
            return None
        if now - self._last_rx >= ka * 1.5:
            self._close("timeout", "no packet from the upstream within %gs (keepalive %ds x 1.5)" % (ka * 1.5, ka))
            return None
        if not self._ping_out and now - self._last_tx >= ka:
            self._ping_out = True
            self._send(codec.PINGREQ_BYTES)
        nxt = self._last_rx + ka * 1.5
        if not self._ping_out and self._last_tx + ka < nxt:
            nxt = self._last_tx + ka
        return nxt - now if nxt > now else 0

    # ---- output ----

    def _send(self, data):
        was = bool(self.out)
        self.out.append(data)
        self._last_tx = self.clock()
        if not was and self.notify is not None:
            self.notify()

    def _close(self, kind, detail):
        # Ends the link from our side: the port closes the transport after writing, then calls
        # failed() with what we say here.
        self.closing = (kind, detail)
        if self.notify is not None:
            self.notify()

    # ---- input ----

    def feed(self, data):
        r = self._reader
        if r is None or self.closing:
            return
        self._last_rx = self.clock()
        try:
            for fb, body in r.feed(data):
                self._packet(codec.decode(fb, body, self.version))
                if self.closing:
                    return
        except (codec.MalformedPacket, codec.ProtocolError) as e:
            self._close("error", "bad packet from the upstream: %s" % e)

    def _packet(self, p):
        t = p.ptype
        if self.state == CONNECTING:
            if t != codec.CONNACK:
                self._close("error", "the upstream sent %s before CONNACK" % codec.NAMES[t])
                return
            self._connack(p)
            return
        if t == codec.PUBACK or t == codec.PUBCOMP:
            it = self.queue.acked(p.pid)
            if it is None:
                return
            if p.rc >= 0x80 and t == codec.PUBACK:
                self._refused(it, p.rc, p.props)
            else:
                self.sent += 1
            self.pump()
        elif t == codec.PUBREC:
            it = self.queue.inflight.get(p.pid)
            if it is None:
                self._send(codec.encode_ack(codec.PUBREL, p.pid, R.PACKET_ID_NOT_FOUND, None, self.version))
                return
            if p.rc >= 0x80:
                self.queue.acked(p.pid)
                self._refused(it, p.rc, p.props)
                self.pump()
                return
            it.phase = 1
            if self.queue.store is not None:
                self.queue.store.put(it)
            self._send(codec.encode_ack(codec.PUBREL, p.pid, 0, None, self.version))
        elif t == codec.PUBLISH:
            self._down(p)
        elif t == codec.PUBREL:
            if p.pid in self.awaiting_rel:
                self.awaiting_rel.discard(p.pid)
                if self.queue.store is not None:
                    self.queue.store.rel_done(p.pid)
            # After the commit that forgets the id: the upstream may reuse it once it has PUBCOMP.
            self._ack(codec.encode_ack(codec.PUBCOMP, p.pid, 0, None, self.version))
        elif t == codec.SUBACK:
            for i, rc in enumerate(p.codes):
                if rc >= 0x80 and i < len(self.subs):
                    self.log("warning", "bridge %s: the upstream refused the subscription to %s: %s" % (
                        self.id, ident(self.subs[i].match), self._rc_text(rc)))
        elif t == codec.PINGRESP:
            self._ping_out = False
        elif t == codec.DISCONNECT:
            self._close("closed", "the upstream sent DISCONNECT %s" % self._rc_text(p.rc))
        elif t == codec.UNSUBACK or t == codec.AUTH:
            pass
        else:
            self._close("error", "the upstream sent %s" % codec.NAMES[t])

    def _rc_text(self, rc, props=None):
        s = "0x%02X %s" % (rc, R.word(rc))
        rs = props.get(codec.P_REASON_STRING) if props else None
        return s + (" (%s)" % ident(rs) if rs else "")

    def _refused(self, it, rc, props):
        self.refused += 1
        held = self._refuse_log.allow(self.clock())
        if held is not None:
            self.log("warning", "bridge %s: the upstream refused the forward of %s to %s: %s%s" % (
                self.id, ident(it.msg.topic), ident(it.topic), self._rc_text(rc, props), more(held, "refusals")))

    def _connack(self, p):
        if p.rc:
            why = self._rc_text(p.rc, p.props) if self.version == MQTT5 else "%d %s" % (
                p.rc, _V3_CONNACK.get(p.rc, "refused"))
            self._close("connack", "CONNACK %s" % why)
            return
        self.state = CONNECTED
        self.link += 1
        self.connected_at = self.clock()
        self.session_present = p.session_present
        if not p.session_present:
            # A new upstream session: it resends nothing, so no QoS 2 packet id is still open. With
            # the session present the ids stay, so a PUBLISH resent after an outage is not
            # delivered here twice.
            st = self.queue.store
            if st is not None:
                for pid in self.awaiting_rel:
                    st.rel_done(pid)
            self.awaiting_rel = set()
        win = V4_WINDOW
        if self.version == MQTT5:
            win = (p.props or {}).get(codec.P_RECEIVE_MAXIMUM, 65535)
        self.window = win
        self.failures = 0
        self.last_error = None
        self.log("info", "bridge %s: connected to %s as %s (session %s, window %d, %d message(s) queued)" % (
            self.id, self._where(), ident(self.clientid), "present" if p.session_present else "new",
            win, len(self.queue)))
        if self.subs:
            topics = []
            for s in self.subs:
                opts = s.qos
                if self.version == MQTT5:
                    opts |= 4 | 8    # No Local (our forwards do not come back), Retain As Published
                topics.append((s.match, opts))
            self._send(codec.encode_subscribe(self._pid(), topics, None, self.version))
        self.pump()
        self._status()

    def _pid(self):
        q = self.queue.inflight
        for _ in range(65535):
            pid = self.next_pid
            self.next_pid = pid + 1 if pid < 65535 else 1
            if pid not in q:
                return pid
        return 0

    def _down(self, p):
        # A message from an upstream subscription, published here under its local topic.
        if p.qos == 2 and p.pid in self.awaiting_rel:
            self._ack(codec.encode_ack(codec.PUBREC, p.pid, 0, None, self.version))
            return
        rule = None
        from gatemq.topic import matches
        for s in self.subs:
            if matches(s.match, p.topic):
                rule = s
                break
        if rule is not None:
            now = self.clock()
            msg = Message.from_publish(p, now, self.tag)
            msg.topic = map_topic(p.topic, rule.match, rule.to)
            msg.tbytes = msg.topic.encode()
            if msg.qos > rule.qos:
                msg.qos = rule.qos
            self.received += 1
            self.broker.publish(msg)
        if p.qos == 1:
            self._ack(codec.encode_ack(codec.PUBACK, p.pid, 0, None, self.version))
        elif p.qos == 2:
            self.awaiting_rel.add(p.pid)
            if self.queue.store is not None:
                self.queue.store.rel(p.pid)
            self._ack(codec.encode_ack(codec.PUBREC, p.pid, 0, None, self.version))

    def _ack(self, data):
        # The upstream forgets a message once it has our PUBACK/PUBREC, so with sync = commit the
        # ack waits, like a local publisher's, for the commit that stores what the message left
        # here (queued for persistent sessions, retained). An ack held over a lost link is not
        # sent on the next one: the upstream resends that message with DUP.
        p = self.broker.persist
        link = self.link
        if p is None or not p.after_commit(lambda: self._acked_stored(link, data)):
            self._send(data)

    def _acked_stored(self, link, data):
        if link == self.link and self.state == CONNECTED:
            self._send(data)

    # ---- forwarding ----

    def offer(self, msg):
        # Every message the broker routes: queued and sent upstream when a forwards filter matches.
        if msg.sender == self.tag or not self.forwards:
            return
        t = msg.topic
        from gatemq.topic import matches
        for f in self.forwards:
            if matches(f.match, t):
                qos = msg.qos if msg.qos < f.qos else f.qos
                it = Item(msg, map_topic(t, f.match, f.to), qos, 0)
                q = self.queue
                if self.state == CONNECTED and not self.congested and not q.pending() and not self.closing:
                    if not qos:
                        self._publish(it, self.clock())
                        return
                    if len(q.inflight) < self.window:
                        q.seq += 1
                        it.seq = q.seq
                        self._publish(it, self.clock())
                        return
                dropped = q.push(it)
                if dropped is not None:
                    self._dropped(dropped)
                return

    def _dropped(self, it):
        self.dropped += 1
        held = self._drop_log.allow(self.clock())
        if held is not None:
            self.log("warning", "bridge %s: queue full (queue.max_messages %d), dropped a QoS %d message on %s%s" % (
                self.id, self.queue.max, it.qos, ident(it.msg.topic), more(held, "dropped")))

    def _publish(self, it, now):
        msg = it.msg
        if msg.expired(now):
            self.dropped += 1
            if self.queue.store is not None and it.qos:
                self.queue.store.done(it)
            return
        v5 = self.version == MQTT5
        pb = codec.encode_props(msg.props_for(now, None)) if v5 else b""
        dup = False
        if it.qos:
            if it.pid and self.session_present and it.pid not in self.queue.inflight:
                dup = True
            else:
                it.pid = self._pid()
            if it.phase:
                self.queue.sent(it)
                self._send(codec.encode_ack(codec.PUBREL, it.pid, 0, None, self.version))
                return
            self.queue.sent(it)
        else:
            self.sent += 1
        self._send(bytes(codec.encode_publish(it.topic.encode(), msg.payload, it.qos, msg.retain, dup,
                                              it.pid or None, pb, self.version)))

    def pump(self):
        # Queued messages go out in order while the upstream's window has room.
        if self.state != CONNECTED or self.closing or self.congested:
            return
        q = self.queue
        now = self.clock()
        while True:
            it = q.first()
            if it is None or (it.qos and len(q.inflight) >= self.window):
                break
            q.pop()
            self._publish(it, now)
            if self.congested:
                break
        if not q.pending() and not q.inflight:
            pass

    # ---- visible state ----

    def info(self):
        return {"type": "mqtt", "name": self.name, "id": self.id, "enable": self.cfg["enable"],
                "server": self._where(), "status": self.state, "last_error": self.last_error,
                "status_reason": self.last_error, "queue": len(self.queue), "inflight": len(self.queue.inflight),
                "sent": self.sent, "received": self.received, "dropped": self.dropped, "refused": self.refused,
                "clientid": self.clientid}

    def heartbeat(self, now):
        # The retained status again when something in it changed, at most every STATUS_INTERVAL.
        if now >= self._status_next:
            self._status_next = now + STATUS_INTERVAL
            if self._status_key != self._key():
                self._status()

    def _key(self):
        return (self.state, len(self.queue), self.sent, self.received, self.dropped, self.refused, self.last_error)

    def _status(self):
        self._status_key = self._key()
        try:
            import json
            self.broker.publish(Message("$SYS/brokers/%s/bridges/%s/status" % (self.broker.node, self.name),
                                        json.dumps(self.info()).encode(), 0, True, None, None, self.tag))
        except MemoryError:
            pass
