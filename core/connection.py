# One client connection: the MQTT protocol state machine. Bytes come in through feed(); packets go
# out as chunks collected in self.out, which the port writes after broker.flush().
from gatemq import codec
from gatemq.codec import (P_TOPIC_ALIAS, P_RECEIVE_MAXIMUM, P_TOPIC_ALIAS_MAXIMUM, P_MAXIMUM_PACKET_SIZE,
                          P_SESSION_EXPIRY, P_WILL_DELAY, P_SUBSCRIPTION_ID, P_PAYLOAD_FORMAT,
                          P_AUTH_METHOD, P_REASON_STRING)
from gatemq.errors import MalformedPacket, ProtocolError
from gatemq.message import Message
from gatemq.router import Subscription
from gatemq import topic as topics
from gatemq import identity
from gatemq import reasons as R
from gatemq.logline import ident, IDENT_MAX

NEW, CONNECTED, CLOSED = 0, 1, 2

# Session Expiry Interval 0xFFFFFFFF: the session never expires (None inside the broker).
NEVER = 0xFFFFFFFF

# Topic bytes the incoming topic aliases of one connection may hold: up to 65,535 aliases of 64 KB
# each could otherwise be stored per connection. 16 KB is ~160 aliases of 100-byte topics.
ALIAS_BYTES_MAX = 16384
# Filters of one SUBSCRIBE handled in one go. A packet with more is handled in steps, one per
# round of the port's loop (broker.tick), and its client is not read from meanwhile, so one packet
# cannot freeze the broker: 20,000 exact filters against 10,000 retained messages took 98 ms in
# one go on CPython and 632 ms under the MicroPython unix port (a board is ~10x slower than that,
# close to a Pico W's 8 s watchdog); a step of 500 is ~2.5 ms and ~16 ms there.
SUBSCRIBE_STEP = 500


class Connection:
    # Defaults live on the class: an idle connection on a board then stores only what differs,
    # which keeps its share of the heap small (a MicroPython instance pays per attribute set).
    dirty = False
    closing = False
    state = NEW
    version = None
    session = None
    clientid = None
    username = None
    password = None
    clean_start = True
    keepalive = 0
    will = None
    will_delay = 0
    expiry = 0
    window = 65535          # outgoing QoS>0 window (client's Receive Maximum, capped)
    max_out = None          # client's Maximum Packet Size
    alias_max = 0           # client's Topic Alias Maximum
    alias_in = None
    alias_out = None
    connected_at = 0
    reason = None           # why the connection ended, for $SYS and logs
    peer_cert = None
    cert_cn = None
    cert_dn = None
    is_superuser = False
    unsafe_placeholder = None   # gatemq.acl: the placeholder whose value was unsafe, True once logged
    alias_bytes = 0             # topic bytes held by alias_in (bounded by ALIAS_BYTES_MAX)
    acl = None
    auth_expire_at = None
    out = ()
    # The port's send buffer to this client is full (a slow reader): deliveries wait in the
    # session queue, bounded by max_mqueue_len, instead of in the port's buffer without bound.
    congested = False
    held = 0      # bytes of a partial packet counted in broker.pre_connect_held (before CONNECT)
    # Flow control: not read from while a subscriber it feeds is backed up (Broker._hold); the
    # packets of the read that paused it wait in backlog; paused_until bounds the pause.
    paused = False
    backlog = None
    sub_rest = None     # a SUBSCRIBE handled in steps: [packet, next filter, codes, retained, subid]
    paused_by = None
    paused_until = 0

    def __init__(self, broker, handle, peer, listener, lcfg, peer_cert, now):
        self.broker = broker
        self.handle = handle
        if peer:
            self.peerhost = peer[0]
            self.peerport = peer[1]
        else:
            self.peerhost = ""
            self.peerport = 0
        self.listener = listener
        self.lcfg = lcfg
        m = self.mqtt = broker.mqtt
        # until its CONNECT is in, a connection holds no more than mqtt.max_connect_size
        mcs = m.get("max_connect_size")
        self.reader = codec.Reader(mcs if mcs and mcs < m["max_packet_size"] else m["max_packet_size"])
        self.last_rx = now
        self.deadline = now + m["idle_timeout"]
        if peer_cert is not None:
            self.set_peer_cert(peer_cert)

    # Derived rather than stored: on CPython an instance with more than 30 attributes loses its
    # shared key table and costs ~1.5 KB more.
    @property
    def proto_name(self):
        v = self.version
        return None if v is None else ("MQIsdp" if v == 3 else "MQTT")

    @property
    def verify_peer(self):
        return self.peer_cert is not None and self.lcfg.get("ssl_options", {}).get("verify") == "verify_peer"

    @property
    def listener_kind(self):
        return self.listener.split(":", 1)[0]

    @property
    def listener_bind_host(self):
        return self.lcfg["bind"][0]

    @property
    def recv_max(self):
        # The Receive Maximum this broker announces: incoming QoS 2 messages awaiting PUBREL.
        return self.mqtt["max_inflight"]

    # ---- port-facing API ----

    def set_peer_cert(self, der):
        # Only a verified handshake's leaf reaches here; the port guarantees that.
        self.peer_cert = bytes(der)

    def name(self):
        # client id@host:port for log lines; a client id that is long or holds control characters
        # is shown cut short and escaped (logline.ident), so it cannot flood or forge a line.
        cid = self.clientid
        if cid is None:
            cid = "?"
        elif len(cid) > IDENT_MAX or min(cid or " ") < " ":
            cid = ident(cid)
        return "%s@%s:%s" % (cid, self.peerhost, self.peerport)

    def feed(self, data):
        if self.state == CLOSED or self.closing:
            return
        self.broker.count("bytes.received", len(data))
        self.last_rx = self.broker.clock()
        self._serve(data)

    def resume(self):
        # Flow control let go of this publisher (broker.flush calls this): the packets it read
        # before the pause are handled now, and the port reads from it again.
        if self.state != CLOSED and not self.closing and not self.paused and self.backlog:
            self._serve(None)

    def _serve(self, data):
        b = self.broker
        b.feeding = self        # whose packets these are, for flow control (Broker._queue)
        try:
            packets = self.reader.feed(data) if data else ()
            if self.backlog:
                packets = self.backlog + list(packets)
                self.backlog = None
            for i, (b0, body) in enumerate(packets):
                if self.closing:
                    break
                if self.paused:
                    # A subscriber this client feeds is backed up: the rest waits, and the port
                    # stops reading from it, so TCP slows the publisher and nothing is dropped.
                    self.backlog = packets[i:]
                    break
                self._packet(codec.decode(b0, body, self.version))
        except (MalformedPacket, ProtocolError) as e:
            self._fault(e)
        except MemoryError:
            b.log("error", "client %s: out of memory, closing this connection" % self.name())
            self.close(R.QUOTA_EXCEEDED, word="out of memory")
        except Exception as e:
            # A bug must cost one connection, never the broker.
            b.log("error", "internal error on %s: %r" % (self.name(), e))
            self.close(R.UNSPECIFIED_ERROR)
        b.feeding = None
        if self.state == NEW or self.held:
            b.hold_pre_connect(self)  # what it buffers before CONNECT counts against a budget
        b.flag(self)

    def set_congested(self, on):
        # The port calls this when its send buffer to the client passes its high-water mark (on)
        # and when it has drained (off); the queued messages then go out as the window allows.
        self.congested = on
        if not on and self.session is not None and self.state == CONNECTED and not self.closing:
            self.broker.pump(self.session)
            self.broker.flag(self)

    def lost(self):
        if self.state != CLOSED:
            self._teardown(self.reason or ("%s_closed" % self.listener_kind), True)

    def take(self):
        out = self.out
        self.dirty = False
        if not out:
            return b""
        self.out = ()
        data = out[0] if len(out) == 1 else b"".join(out)
        self.broker.count("bytes.sent", len(data))
        return data

    # ---- output ----

    def send(self, data):
        if self.out:
            self.out.append(data)
        else:
            self.out = [data]
        if not self.dirty:
            self.dirty = True
            self.broker.dirty.append(self)

    def close(self, rc=None, reason_string=None, word=None):
        # Ends the connection after what is queued is written; sends DISCONNECT rc to MQTT 5
        # clients. The log and $SYS word is rc's (gatemq.reasons) unless one is given.
        if self.closing or self.state == CLOSED:
            return
        reason = word or R.word(rc)
        if rc is not None and self.version == 5 and self.state == CONNECTED:
            props = {P_REASON_STRING: reason_string} if reason_string else None
            self.send(codec.encode_disconnect(rc, props, 5))
        self.closing = True
        self.broker.flag(self)
        self._teardown(reason, True)

    def _fault(self, e):
        b = self.broker
        rc = e.reason
        b.log("warning", "client %s: %s (%s), closing" % (self.name(), e, "0x%02X" % rc))
        if self.state == NEW:
            if rc == R.UNSUPPORTED_PROTOCOL_VERSION:
                # Unsupported protocol level: answer in the 3.x format every client can read.
                self.send(codec.encode_connack(False, R.V3_UNACCEPTABLE_PROTOCOL, None, 4))
            self.closing = True
            self._teardown("protocol_error", False)
            return
        self.close(rc, str(e))

    # ---- packet dispatch ----

    def _packet(self, p):
        t = p.ptype
        handler = _ALLOWED[self.state].get(t)
        if handler is None:
            raise _not_allowed(self.state, t)
        handler(self, p)

    def _on_pingreq(self, p):
        self.send(codec.PINGRESP_BYTES)

    # ---- CONNECT ----

    def _refuse(self, rc, why):
        # Sends the refusing CONNACK and closes. Returns False, so a CONNECT step can end with it.
        b = self.broker
        # Before authentication the client chose every byte of these: cut short, escaped, throttled.
        b.refusal_log("warning", "refused %s:%s (client id %s, username %s): %s" % (
            self.peerhost, self.peerport, ident(self.clientid), ident(self.username), why))
        if self.version == 5:
            self.send(codec.encode_connack(False, rc, {P_REASON_STRING: why}, 5))
        else:
            self.send(codec.encode_connack(False, R.connack_v3(rc), None, self.version))
        self.closing = True
        self._teardown("refused", False)
        return False

    def _on_connect(self, p):
        # A CONNECT's steps in EMQX's order. Each step that refuses sends the CONNACK (or closes)
        # and returns False; the steps after it do not run.
        b = self.broker
        # The settings at CONNECT stay this connection's (the API may change broker.mqtt).
        self.mqtt = b.mqtt
        self._take_connect(p)
        if not self._check_connect(p):
            return
        assigned = self._map_identity(p)
        if assigned is False or not self._authenticate() or not self._take_will(p):
            return
        exp = self._negotiate(p)
        if not b.session_owner_ok(self):
            return self._refuse(R.NOT_AUTHORIZED, "client id %s has a session made by another identity (username or "
                                "certificate); mqtt.session_identity_check" % ident(self.clientid))
        self.state = CONNECTED
        self.connected_at = b.wallclock_ms()
        present = b.attach(self)
        self._connack(p, present, assigned, exp)
        b.log("info", "client %s connected (MQTT %s, username %s, keepalive %d)" % (
            self.name(), {3: "3.1", 4: "3.1.1", 5: "5.0"}[self.version], ident(self.username), self.keepalive))
        b.on_connected(self, present)

    def _take_connect(self, p):
        # What the CONNECT says, before any check: the refusal's log line names it.
        self.version = p.version
        if not p.clean_start:
            self.clean_start = False
        self.keepalive = p.keepalive
        if p.username is not None:
            self.username = p.username
        if p.password is not None:
            self.password = p.password
        self.clientid = p.client_id
        self.reader.max_packet_size = self.mqtt["max_packet_size"]

    def _check_connect(self, p):
        m = self.mqtt
        if p.version == 5 and p.props and P_AUTH_METHOD in p.props:
            return self._refuse(R.BAD_AUTHENTICATION_METHOD, "enhanced authentication is not supported")
        cid = p.client_id
        if not cid and (p.version == 3 or not p.clean_start):
            return self._refuse(R.CLIENT_ID_NOT_VALID, "an empty client id needs MQTT 3.1.1 or 5.0 and a clean session")
        if len(cid) > m["max_clientid_len"]:
            return self._refuse(R.CLIENT_ID_NOT_VALID, "client id longer than max_clientid_len (%d)" % m["max_clientid_len"])
        return True

    def _map_identity(self, p):
        # Certificate identity, then the username-as-client-id rule, as EMQX orders them; then a
        # client id for a client that sent none. -> the Assigned Client Identifier (or None), or
        # False when refused.
        mapped = identity.resolve(self, self.mqtt)
        if mapped is not None:
            if mapped[0] == 0:
                # The unsafe-text rule ends the connection before any CONNACK (EMQX 6).
                self.broker.refusal_log("warning", "closed %s:%s before CONNACK: %s" % (
                    self.peerhost, self.peerport, mapped[1]))
                self.closing = True
                self._teardown("unsafe_certificate", False)
                return False
            self._refuse(mapped[0], mapped[1])
            return False
        m = self.mqtt
        if m.get("client_attrs_init") or m.get("clientid_override"):
            from gatemq import clientattrs  # EMQX's client_attrs_init (gatemq.variform)
            clientattrs.init(self, m, p.props, self.broker.log)
        if not self.clientid:
            self.clientid = self.broker.new_clientid()
            return self.clientid
        return None if p.client_id else self.clientid

    def _authenticate(self):
        b = self.broker
        if b.logins_blocked(self.peerhost):
            rc, why = R.CONNECTION_RATE_EXCEEDED, "too many failed logins from %s; try again later" % self.peerhost
        else:
            rc, why = b.authenticate(self)
            if rc:
                b.login_failed(self.peerhost)
        if "password" in self.__dict__:
            # Authentication was its only use: no secret stays in the broker's memory.
            del self.password
        return self._refuse(rc, why) if rc else True

    def _take_will(self, p):
        w = p.will
        if w is None:
            return True
        b = self.broker
        m = self.mqtt
        v5 = p.version == 5
        if not topics.valid_name(w.topic, m["max_topic_levels"]):
            return self._refuse(R.TOPIC_NAME_INVALID if v5 else R.CLIENT_ID_NOT_VALID, "invalid will topic")
        if w.qos > m["max_qos_allowed"]:
            return self._refuse(R.QOS_NOT_SUPPORTED if v5 else R.CLIENT_ID_NOT_VALID, "will QoS above max_qos_allowed")
        if w.retain and not m["retain_available"]:
            return self._refuse(R.RETAIN_NOT_SUPPORTED if v5 else R.CLIENT_ID_NOT_VALID,
                                "retained will but retain_available = false")
        if not b.authorize(self, "publish", w.topic, w.qos, w.retain):
            return self._refuse(R.NOT_AUTHORIZED, "will topic not authorised")
        self.will = Message.from_publish(w, b.clock(), self.clientid)
        if w.props:
            self.will_delay = w.props.get(P_WILL_DELAY, 0)
        return True

    def _negotiate(self, p):
        # Session expiry, the outgoing window, packet size, aliases and keep alive. -> the expiry.
        m = self.mqtt
        cap = m["session_expiry_interval"]
        if p.version == 5:
            props = p.props or {}
            exp = props.get(P_SESSION_EXPIRY, 0)
            if exp == NEVER:
                exp = None
            if cap is not None and (exp is None or exp > cap):
                exp = cap
            window = props.get(P_RECEIVE_MAXIMUM, 65535)
            mo = props.get(P_MAXIMUM_PACKET_SIZE)
            if mo is not None:
                self.max_out = mo
            am = props.get(P_TOPIC_ALIAS_MAXIMUM, 0)
            if am:
                self.alias_max = am
            if m["server_keepalive"] is not None:
                self.keepalive = m["server_keepalive"]
        else:
            window = 65535
            exp = 0 if p.clean_start else cap
        if window > m["max_inflight"]:
            window = m["max_inflight"]
        if window != Connection.window:
            self.window = window
        self.expiry = exp
        if self.will_delay and exp is not None and self.will_delay > exp:
            self.will_delay = exp
        return exp

    def _connack(self, p, present, assigned, exp):
        m = self.mqtt
        ack = None
        if p.version == 5:
            ack = {P_RECEIVE_MAXIMUM: self.recv_max, P_TOPIC_ALIAS_MAXIMUM: m["max_topic_alias"],
                   codec.P_MAXIMUM_PACKET_SIZE: m["max_packet_size"], codec.P_SUB_ID_AVAILABLE: 1}
            if m["max_qos_allowed"] < 2:
                ack[codec.P_MAXIMUM_QOS] = m["max_qos_allowed"]
            if not m["retain_available"]:
                ack[codec.P_RETAIN_AVAILABLE] = 0
            if not m["wildcard_subscription"]:
                ack[codec.P_WILDCARD_SUB_AVAILABLE] = 0
            if not m["shared_subscription"]:
                ack[codec.P_SHARED_SUB_AVAILABLE] = 0
            if m["server_keepalive"] is not None:
                ack[codec.P_SERVER_KEEPALIVE] = m["server_keepalive"]
            if assigned is not None:
                ack[codec.P_ASSIGNED_CLIENT_ID] = assigned
            req = (p.props or {}).get(P_SESSION_EXPIRY, 0)
            if exp != (None if req == NEVER else req):
                ack[P_SESSION_EXPIRY] = NEVER if exp is None else exp
        self.send(codec.encode_connack(present, R.SUCCESS, ack, p.version))

    # ---- PUBLISH in ----

    def _on_publish(self, p):
        b = self.broker
        m = self.mqtt
        v5 = self.version == 5
        t = p.topic
        props = p.props
        if v5 and props and P_SUBSCRIPTION_ID in props:
            raise ProtocolError("a client may not send a Subscription Identifier in PUBLISH")
        if v5 and props and P_TOPIC_ALIAS in props:
            a = props[P_TOPIC_ALIAS]
            if a == 0 or a > m["max_topic_alias"]:
                raise ProtocolError("topic alias %d out of range 1..%d" % (a, m["max_topic_alias"]), R.TOPIC_ALIAS_INVALID)
            alias = None
            if t:
                alias = a       # stored only once the publish is authorized, below
            else:
                ai = self.alias_in
                t = ai.get(a) if ai else None
                if t is None:
                    raise ProtocolError("topic alias %d used before it was set" % a)
                p.topic = t
        else:
            alias = None
        if not topics.valid_name(t, m["max_topic_levels"]):
            raise MalformedPacket("invalid topic name %s" % ident(t), R.TOPIC_NAME_INVALID)
        qos = p.qos
        if qos > m["max_qos_allowed"]:
            raise ProtocolError("QoS %d above max_qos_allowed" % qos, R.QOS_NOT_SUPPORTED)
        if p.retain and not m["retain_available"]:
            raise ProtocolError("retain is not available (retain_available = false)", R.RETAIN_NOT_SUPPORTED)
        sess = self.session
        pid = p.pid
        if qos == 2 and pid in sess.awaiting_rel:
            # A resent QoS 2 PUBLISH: acknowledge again, deliver once.
            self.send(codec.encode_ack(codec.PUBREC, pid, 0, None, self.version))
            return
        if v5 and qos == 2 and len(sess.awaiting_rel) >= self.recv_max:
            # MQTT 3.x has no Receive Maximum: there max_awaiting_rel applies (below), as in EMQX.
            raise ProtocolError("receive maximum (%d) exceeded" % self.recv_max, R.RECEIVE_MAXIMUM_EXCEEDED)
        rc = 0
        if v5 and props and props.get(P_PAYLOAD_FORMAT) == 1 and not codec.utf8_ok(p.payload):
            if qos == 0:
                raise ProtocolError("payload is not UTF-8 but Payload Format Indicator says it is",
                                    R.PAYLOAD_FORMAT_INVALID)
            rc = R.PAYLOAD_FORMAT_INVALID
        elif not b.authorize(self, "publish", t, qos, p.retain):
            if b.deny_disconnect:
                self.close(R.NOT_AUTHORIZED)
                return
            rc = R.NOT_AUTHORIZED
        elif qos == 2 and m["max_awaiting_rel"] is not None and len(sess.awaiting_rel) >= m["max_awaiting_rel"]:
            b.refusal_log("warning", "client %s: dropped QoS 2 message, max_awaiting_rel (%d) reached" % (
                self.name(), m["max_awaiting_rel"]))
            rc = R.RECEIVE_MAXIMUM_EXCEEDED
        elif qos and b.persist and b.persist.refuse(self):
            # the store is full (persistence.max_size, or the disk): 0x97, and no ack to MQTT 3.x
            if not v5:
                return
            rc = R.QUOTA_EXCEEDED
        else:
            if alias is not None and not self._set_alias(alias, t):
                return
            # a retained message over the retainer limits: 0x97 to an MQTT 5 publisher that gets an ack
            n = b.publish(Message.from_publish(p, b.clock(), self.clientid), v5 and qos > 0)
            if n < 0:
                rc = R.QUOTA_EXCEEDED
            elif n == 0 and v5:
                rc = R.NO_MATCHING_SUBSCRIBERS
        if qos == 1:
            self.send(codec.encode_ack(codec.PUBACK, pid, rc if v5 else 0, None, self.version))
        elif qos == 2:
            if rc < R.UNSPECIFIED_ERROR or not (v5 or rc == R.RECEIVE_MAXIMUM_EXCEEDED):
                sess.awaiting_rel[pid] = b.clock()
                if b.persist:
                    b.persist.rel(sess, pid)
            self.send(codec.encode_ack(codec.PUBREC, pid, rc if v5 else 0, None, self.version))

    def _set_alias(self, a, t):
        # False when the connection was closed: its aliases would hold too many topic bytes.
        ai = self.alias_in
        if ai is None:
            ai = self.alias_in = {}
        old = ai.get(a)
        n = self.alias_bytes + len(t) - (len(old) if old is not None else 0)
        if n > ALIAS_BYTES_MAX:
            self.close(R.QUOTA_EXCEEDED, "topic aliases hold more than %d bytes of topics" % ALIAS_BYTES_MAX)
            return False
        ai[a] = t
        self.alias_bytes = n
        return True

    def _on_pubrel(self, p):
        sess = self.session
        found = sess.awaiting_rel.pop(p.pid, None) is not None
        if found and self.broker.persist:
            self.broker.persist.rel_done(sess, p.pid)
        self.send(codec.encode_ack(codec.PUBCOMP, p.pid, R.SUCCESS if found else R.PACKET_ID_NOT_FOUND, None, self.version))

    # ---- PUBLISH out ----

    def _on_acked(self, p):
        # PUBACK, PUBCOMP, or a PUBREC with an error code: the message in flight under p.pid is
        # done, and its place in the window goes to the next one queued.
        sess = self.session
        if sess.inflight.pop(p.pid, None) is not None:
            if self.broker.persist:
                self.broker.persist.ack(sess, p.pid)
            self.broker.pump(sess)

    def _on_pubrec(self, p):
        sess = self.session
        d = sess.inflight.get(p.pid)
        if d is None or d.qos != 2:
            self.send(codec.encode_ack(codec.PUBREL, p.pid, R.PACKET_ID_NOT_FOUND, None, self.version))
            return
        if p.rc >= R.UNSPECIFIED_ERROR:
            self._on_acked(p)
            return
        if not d.phase and self.broker.persist:
            self.broker.persist.phase(sess, p.pid)
        d.phase = 1
        self.send(codec.encode_ack(codec.PUBREL, p.pid, 0, None, self.version))

    def send_publish(self, msg, qos, retain, pid, subids, dup, now):
        # Returns False when the message could not go to this client (expired or over its size limit).
        if msg.expired(now):
            return False
        v = self.version
        if v == 5 and (subids is not None or msg.expire_at is not None or self.alias_max or dup):
            props = msg.props_for(now, subids)
            tb = msg.tbytes
            if self.alias_max:
                ao = self.alias_out
                if ao is None:
                    ao = self.alias_out = {}
                a = ao.get(msg.topic)
                if a is not None:
                    tb = b""
                elif len(ao) < self.alias_max:
                    a = ao[msg.topic] = len(ao) + 1
                if a is not None:
                    props = dict(props) if props else {}
                    props[P_TOPIC_ALIAS] = a
            data = codec.encode_publish(tb, msg.payload, qos, retain, dup, pid,
                                        codec.encode_props(props) if props else b"", 5)
            if self.max_out is not None and len(data) > self.max_out:
                return self._too_big(msg, len(data))
            self.send(data)
            return True
        if dup:
            data = codec.encode_publish(msg.tbytes, msg.payload, qos, retain, True, pid, b"", v)
            self.send(data)
            return True
        head, tail = msg.encoded(v == 5, qos, 1 if retain else 0)
        if self.max_out is not None and len(head) + len(tail) + (2 if qos else 0) > self.max_out:
            return self._too_big(msg, len(head) + len(tail) + 2)
        if qos:
            self.send(head)
            self.send(bytes((pid >> 8, pid & 255)))
            self.send(tail)
        else:
            self.send(head)
        return True

    def _too_big(self, msg, size):
        self.broker.log("info", "client %s: dropped message on %r: %d bytes is over its Maximum Packet Size %d" % (
            self.name(), msg.topic, size, self.max_out))
        return False

    # ---- SUBSCRIBE / UNSUBSCRIBE ----

    def _on_subscribe(self, p):
        subid = None
        if self.version == 5 and p.props and P_SUBSCRIPTION_ID in p.props:
            subid = p.props[P_SUBSCRIPTION_ID][0]
            if subid == 0:
                raise ProtocolError("subscription identifier 0")
        self.sub_rest = [p, 0, [], [], subid]
        self.subscribe_step()
        if self.sub_rest is not None:
            # The rest in later rounds (broker.tick): the packets after this one wait in the
            # backlog and the port stops reading from this client until the SUBACK is out.
            self.paused = True
            self.broker.subscribing.append(self)
            self.broker.mark(self)

    def subscribe_step(self):
        # The next SUBSCRIBE_STEP filters of the SUBSCRIBE in sub_rest; at their end the SUBACK,
        # then the retained messages they matched, SUBSCRIBE_STEP at a time (20,000 deliveries at
        # once took 2.7 s under the MicroPython unix port). -> True when the packet is done (or
        # the connection gone).
        rest = self.sub_rest
        if rest is None or self.closing or self.state != CONNECTED:
            self.sub_rest = None
            return True
        p, start, codes, retained, subid = rest
        sess = self.session
        b = self.broker
        if p is None:
            return self._retained_step(rest)
        m = self.mqtt
        v5 = self.version == 5
        now = b.clock()
        end = start + SUBSCRIBE_STEP
        for flt, opts in p.topics[start:end]:
            qos = opts & 3
            group, real = topics.split_share(flt)
            code = None
            if group == "" or not topics.valid_filter(real, m["max_topic_levels"]):
                code = R.TOPIC_FILTER_INVALID
            elif group is not None and not m["shared_subscription"]:
                code = R.SHARED_SUBSCRIPTIONS_NOT_SUPPORTED
            elif topics.is_wildcard(real) and not m["wildcard_subscription"]:
                code = R.WILDCARD_SUBSCRIPTIONS_NOT_SUPPORTED
            elif group is not None and opts & 4:
                raise ProtocolError("No Local on a shared subscription")
            elif m["max_subscriptions"] is not None and flt not in sess.subs and \
                    len(sess.subs) >= m["max_subscriptions"]:
                code = R.QUOTA_EXCEEDED
            elif group is not None and m["max_shared_groups"] is not None and \
                    b.router.new_group(real, group) >= m["max_shared_groups"]:
                # Each publish visits every group of a filter: 50,000 made each take 18 ms.
                code = R.QUOTA_EXCEEDED
            elif not b.authorize(self, "subscribe", flt, qos, False):
                if b.deny_disconnect:
                    self.sub_rest = None
                    self.close(R.NOT_AUTHORIZED)
                    return True
                code = R.NOT_AUTHORIZED
            if code is not None:
                codes.append(code if v5 else R.SUBACK_FAILURE_V3)
                continue
            granted = qos if qos <= m["max_qos_allowed"] else m["max_qos_allowed"]
            sub = Subscription(self.clientid, real, (opts & ~3) | granted, subid, group)
            new = b.router.add(sub)
            sess.subs[flt] = sub
            if b.persist:
                b.persist.sub(sess, flt, sub)
            codes.append(granted)
            if group is None and m["retain_available"] and (sub.rh == 0 or (sub.rh == 1 and new)):
                for msg in b.retained.match(real, now):
                    retained.append((msg, granted, subid))
        if end < len(p.topics):
            rest[1] = end
            return False
        self.send(codec.encode_suback(p.pid, codes, None, self.version))
        rest[0] = None      # the SUBACK is out: the retained messages are next
        rest[1] = 0
        return self._retained_step(rest)

    def _retained_step(self, rest):
        retained = rest[3]
        start = rest[1]
        end = start + SUBSCRIBE_STEP
        b = self.broker
        sess = self.session
        for msg, granted, sid in retained[start:end]:
            q = msg.qos if msg.qos < granted else granted
            b.deliver(sess, msg, q, True, None if sid is None else [sid])
        if end < len(retained):
            rest[1] = end
            return False
        self.sub_rest = None
        return True

    def _on_unsubscribe(self, p):
        sess = self.session
        b = self.broker
        codes = []
        for flt in p.filters:
            sub = sess.subs.pop(flt, None)
            if sub is not None:
                b.router.remove(self.clientid, sub.filter, sub.group)
                codes.append(0)
                if b.persist:
                    b.persist.unsub(sess, flt)
            else:
                codes.append(R.NO_SUBSCRIPTION_EXISTED)
        self.send(codec.encode_unsuback(p.pid, codes, None, self.version))

    # ---- DISCONNECT and teardown ----

    def _on_disconnect(self, p):
        send_will = False
        if self.version == 5:
            send_will = p.rc == R.DISCONNECT_WITH_WILL
            if p.props and P_SESSION_EXPIRY in p.props:
                new = p.props[P_SESSION_EXPIRY]
                if self.expiry == 0 and new != 0:
                    raise ProtocolError("session expiry set on DISCONNECT after CONNECT had 0")
                cap = self.mqtt["session_expiry_interval"]
                new = None if new == 0xFFFFFFFF else new
                if cap is not None and (new is None or new > cap):
                    new = cap
                self.expiry = new
        if not send_will:
            self.will = None
        self.closing = True
        self.broker.flag(self)
        self._teardown("normal", send_will)

    def _teardown(self, reason, send_will):
        if self.state == CLOSED:
            return
        was = self.state
        self.state = CLOSED
        self.closing = True
        if self.reason is None:
            self.reason = reason
        self.broker.detach(self, was == CONNECTED, send_will)


# The packets a client may send in each state, and who handles them. Anything else is a protocol
# error (_not_allowed says which). CLOSED takes nothing: feed() stops before it gets here.
_ALLOWED = {
    NEW: {codec.CONNECT: Connection._on_connect},
    CONNECTED: {
        codec.PUBLISH: Connection._on_publish,
        codec.PUBACK: Connection._on_acked,
        codec.PUBREC: Connection._on_pubrec,
        codec.PUBREL: Connection._on_pubrel,
        codec.PUBCOMP: Connection._on_acked,
        codec.SUBSCRIBE: Connection._on_subscribe,
        codec.UNSUBSCRIBE: Connection._on_unsubscribe,
        codec.PINGREQ: Connection._on_pingreq,
        codec.DISCONNECT: Connection._on_disconnect,
    },
    CLOSED: {},
}

_NAMES = {codec.PUBLISH: "PUBLISH", codec.PUBACK: "PUBACK", codec.PUBREC: "PUBREC", codec.PUBREL: "PUBREL",
          codec.PUBCOMP: "PUBCOMP", codec.SUBSCRIBE: "SUBSCRIBE", codec.UNSUBSCRIBE: "UNSUBSCRIBE",
          codec.PINGREQ: "PINGREQ", codec.DISCONNECT: "DISCONNECT"}


def _not_allowed(state, t):
    if t == codec.AUTH:
        return ProtocolError("enhanced authentication (AUTH) is not supported", R.BAD_AUTHENTICATION_METHOD)
    if t == codec.CONNECT:
        return ProtocolError("second CONNECT on one connection")
    if state == NEW and t in _NAMES:
        return ProtocolError("%s before CONNECT" % _NAMES[t])
    return ProtocolError("a client may not send packet type %d" % t)
