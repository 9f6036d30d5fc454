# The broker: sessions, routing, retained messages, wills, timers and $SYS, driven by a port.
# It never does I/O: ports feed bytes into connections and write what flush() hands back.
import hashlib
import json

from gatemq import __version__
from gatemq import codec
from gatemq.connection import Connection, CONNECTED, NEW
from gatemq.message import Message
from gatemq.retain import RetainStore, FULL, TOO_LARGE
from gatemq.router import Router
from gatemq.session import Session, Delivery
from gatemq import policy
from gatemq import reasons as R
from gatemq.logline import Throttle, more, ident, INTERVAL


# The snapshot() entries published under $SYS/brokers/<node>/stats/ (dots become levels).
_SYS_STATS = ("connections.count", "connections.max", "subscriptions.count", "retained.count",
              "retained.dropped", "sessions.count", "messages.dropped", "delivery.dropped.queue_full",
              "delivery.dropped.qos0_msg")
# The queue length that pauses a publisher when max_mqueue_len is infinity.
FLOW_HIGH = 1000
# The longest tick() asks the port to wait before it calls again, in seconds.
TICK_MAX = 0.5
# Refusal and denial lines let through per logline interval before they are only counted.
REFUSAL_BURST = 20
# Peer addresses whose failed logins are remembered at once.
LOGIN_FAILURE_HOSTS = 1024


def _no_file(path):
    raise OSError("this port cannot read files (%s)" % path)


class Broker:
    def __init__(self, cfg, clock, wallclock, log, read_file=None):
        self.cfg = cfg
        self.mqtt = cfg["mqtt"]
        self.node = cfg["node"]["name"]
        self.clock = clock
        self.wallclock = wallclock
        self.log = log
        self.read_file = read_file or _no_file
        self.router = Router()
        rc = cfg.get("retainer") or {}
        # retainer limits: 0 or infinity (None) is no limit, as in EMQX
        self.retained = RetainStore(rc.get("max_retained_messages") or None, rc.get("max_payload_size") or None)
        self.sessions = {}
        self.conns = set()
        self.dirty = []
        self.per_listener = {}
        self._refused = {}            # listener -> Throttle of its max_connections refusals
        self._retain_drops = Throttle()
        # Partial packets held by connections before their CONNECT (see hold_pre_connect). 16
        # slow CONNECTs of max_connect_size; a port with a small heap lowers it.
        self.pre_connect_held = 0
        self.pre_connect_budget = 16 * (self.mqtt.get("max_connect_size") or 65536)
        self._pre_connect_log = Throttle()
        self.offline = set()          # sessions without a connection that may expire or owe a will
        self.persist = None           # gatemq.persist.Persist when persistence.enable (the port sets it)
        self.bridges = None           # [gatemq.bridge.Bridge] of bridges.mqtt (the port sets it): offered every message
        # Flow control (see _hold): the connection whose packets are being handled, the publishers
        # not read from now, and those let go since the last flush (resumed there).
        self.feeding = None
        self.paused = set()
        self._resumable = []
        self.subscribing = []     # connections whose SUBSCRIBE is handled in steps (tick)
        self._flow_log = Throttle()
        self.started = clock()
        self.started_wall = wallclock()
        self._idn = 0
        self._sys_next = self.started
        # Messages received and sent, by QoS: list slots rather than named counters, since they
        # are counted per message and per delivery (a formatted name each cost ~15% of QoS 0
        # throughput); counters() and snapshot() give them their names.
        self.received = [0, 0, 0]
        self.sent = [0, 0, 0]
        self.stats = {"connections": 0,
                      "messages.dropped": 0, "max_connections": 0, "retained.dropped": 0,
                      "delivery.dropped.queue_full": 0, "delivery.dropped.qos0_msg": 0}
        # Refusals and denials share one throttle: clients choose how many there are.
        self._refusals = Throttle(INTERVAL, REFUSAL_BURST)
        self._login_failures = {}     # peer address -> [failures in the window, window end]
        self.authn, self.authz = self._auth_from_cfg()
        self.deny_disconnect = self.authz.deny_action == "disconnect"

    def _auth_from_cfg(self):
        # -> (authentication chain, authorizer), built from the config and the files it names.
        # gatemq.auth and gatemq.acl only when the config has authenticators or ACL sources: on
        # boards that load .mpy files into RAM they and what they import are ~60 KB of heap.
        cfg = self.cfg
        authn = cfg.get("authentication")
        authz = cfg.get("authorization")
        if authn:
            from gatemq.auth import Authenticator
            chain = Authenticator(authn, self.read_file, self.wallclock, self.refusal_log)
        else:
            chain = policy.Gate(self.wallclock, self.refusal_log)
        jwt = False
        for a in authn or ():
            jwt = jwt or a.get("mechanism") == "jwt"
        if jwt or (authz or {}).get("sources"):
            # a JWT authenticator may hand out ACL rules (the acl claim): gatemq.acl checks those
            from gatemq.acl import Authorizer
            rules = Authorizer(authz, self.read_file, self.refusal_log)
        else:
            rules = policy.NoMatch(authz, self.refusal_log)
        return chain, rules

    def reload_auth(self):
        # Re-reads the users files, JWT key files and acl files (the port calls this on SIGHUP;
        # the config file itself is not re-read). The new chain and rules are built completely
        # before they replace the old ones, so a file with a mistake leaves the broker on the
        # previous rules rather than half configured. Connected clients stay connected and keep
        # their subscriptions; their next PUBLISH and SUBSCRIBE, and every new CONNECT, meet the
        # new rules. Returns what was read, as "what 'path' (count)" strings, or None on failure.
        try:
            authn, authz = self._auth_from_cfg()
        except Exception as e:  # ConfigError with file:line, OSError, MemoryError, ...
            self.log("error", "reload: %s; the previous authentication and authorization rules stay "
                     "in force" % (e,))
            return None
        self.authn = authn
        self.authz = authz
        self.deny_disconnect = authz.deny_action == "disconnect"
        done = []
        for a in authn.chain:
            for item in getattr(a, "files", ()):
                done.append(item)
        for item in getattr(authz, "files", ()):
            done.append(item)
        if done:
            self.log("info", "reload: re-read %s" % ", ".join(done))
        else:
            self.log("info", "reload: no users, key or ACL files are configured; nothing to re-read")
        return done

    def reconfigure_mqtt(self, mqtt):
        # New connections see the new settings; existing ones keep what they negotiated.
        self.mqtt = mqtt

    # ---- connections ----

    def listener_cfg(self, listener):
        kind, name = listener.split(":", 1)
        return self.cfg["listeners"][kind][name]

    def open(self, handle, peer, listener, peer_cert=None):
        lcfg = self.listener_cfg(listener)
        n = self.per_listener.get(listener, 0)
        limit = lcfg.get("max_connections")
        if limit is not None and n >= limit:
            # One line per listener per interval: a connection flood must not become a log flood.
            t = self._refused.get(listener)
            if t is None:
                t = self._refused[listener] = Throttle()
            held = t.allow(self.clock())
            if held is not None:
                self.log("warning", "listener %s: refused %s:%s, max_connections (%d) reached%s" % (
                    listener, peer[0] if peer else "?", peer[1] if peer else "?", limit, more(held, "refused")))
            return None
        c = Connection(self, handle, peer, listener, lcfg, peer_cert, self.clock())
        self.per_listener[listener] = n + 1
        self.conns.add(c)
        return c

    def flag(self, c):
        if not c.dirty and (c.out or c.closing):
            c.dirty = True
            self.dirty.append(c)

    def flush(self):
        # Publishers let go by flow control go on with the packets they had read (at the top
        # level, not inside the acknowledgement that let them go); then the output.
        r = self._resumable
        while r:
            self._resumable = []
            for c in r:
                c.resume()
            r = self._resumable
        d = self.dirty
        if d:
            self.dirty = []
        return d

    def new_clientid(self):
        self._idn += 1
        return "gatemq-%d-%d" % (int(self.started_wall * 1000) % 100000000, self._idn)

    def wallclock_ms(self):
        return int(self.wallclock() * 1000)

    # ---- authentication and authorization ----

    def refusal_log(self, level, msg):
        # Refused CONNECTs, failed logins and ACL denials: REFUSAL_BURST lines per interval, then
        # one line that counts what was held back.
        held = self._refusals.allow(self.clock())
        if held is not None:
            self.log(level, msg + more(held, "refusals or denials"))

    def authenticate(self, c):
        rc, why = self.authn.authenticate(c, c.lcfg)
        self.count("authentication.failure." + R.word(rc) if rc else "authentication.success")
        return rc, why

    def logins_blocked(self, host):
        # True while the peer address is past mqtt.max_login_failures in the current window: its
        # CONNECTs are refused before any password hash runs (a pbkdf2 flood pinned the loop).
        f = self._login_failures.get(host)
        if f is None:
            return False
        if self.clock() >= f[1]:
            del self._login_failures[host]
            return False
        return f[0] >= self.mqtt["max_login_failures"]

    def login_failed(self, host):
        limit = self.mqtt["max_login_failures"]
        if limit is None:
            return
        now = self.clock()
        lf = self._login_failures
        f = lf.get(host)
        if f is None or now >= f[1]:
            if f is None and len(lf) >= LOGIN_FAILURE_HOSTS:
                # Bounded: the entries whose window ended go first, else the oldest.
                for h in [h for h, v in lf.items() if now >= v[1]] or [next(iter(lf))]:
                    del lf[h]
            f = lf[host] = [0, now + self.mqtt["login_failure_window"]]
        f[0] += 1

    def authorize(self, c, action, topic, qos, retain):
        if action == "publish" and topic.startswith("$SYS") and (len(topic) == 4 or topic[4] == "/") \
                and self.cfg["authorization"]["deny_sys_publish"]:
            # Operators trust $SYS connected events: no client, superusers included, forges them.
            self.refusal_log("info", "authorization: publish of %s by client %s denied ($SYS/ is the "
                             "broker's; authorization.deny_sys_publish)" % (ident(topic), ident(c.clientid)))
            self.count("authorization.deny." + action)
            return False
        ok = self.authz.check(c, action, topic, qos, retain)
        if not ok:
            self.count("authorization.deny." + action)
        return ok

    # ---- sessions ----

    def owner_of(self, c):
        # The identity a session is bound to: the effective username and, with a client
        # certificate, a digest of its subject. The subject rather than the whole certificate, so
        # a device whose certificate was renewed (same subject, new key and serial) keeps its
        # session; only the CA can issue a certificate with a given subject.
        dn = c.cert_dn
        if dn is not None:
            dn = hashlib.sha256(dn.encode()).digest()[:16]
        return (c.username, dn)

    def session_owner_ok(self, c):
        # False when the client id has a session (connected or not) that another identity made:
        # such a CONNECT is refused and that session and its connection are left alone.
        if not self.mqtt["session_identity_check"]:
            return True
        old = self.sessions.get(c.clientid)
        return old is None or old.owner is None or old.owner == self.owner_of(c)

    def attach(self, c):
        # Binds a CONNECTed connection to its session; returns Session Present.
        cid = c.clientid
        old = self.sessions.get(cid)
        if old is not None and old.conn is not None:
            prev = old.conn
            self.log("info", "client %s taken over by %s:%s" % (prev.name(), c.peerhost, c.peerport))
            prev.close(R.SESSION_TAKEN_OVER)
            # The old connection's teardown ends a session whose expiry was 0: look again, so
            # such a session is never resumed unregistered (its routes would outlive it).
            old = self.sessions.get(cid)
        present = False
        if old is not None and not c.clean_start:
            sess = old
            present = True
            # A resumed session cancels its delayed will.
            sess.will = None
            self._reauthorize(sess, c)
        else:
            if old is not None:
                self.end_session(old, "discarded")
            sess = Session(cid)
            sess.owner = self.owner_of(c)
            self.sessions[cid] = sess
        self.offline.discard(sess)
        sess.expire_at = None
        sess.expiry = c.expiry
        sess.conn = c
        c.session = sess
        if self.persist:
            self.persist.session(sess)
        self.stats["connections"] += 1
        if self.stats["connections"] > self.stats["max_connections"]:
            self.stats["max_connections"] = self.stats["connections"]
        return present

    def _reauthorize(self, sess, c):
        # A resumed session's subscriptions were authorized for whoever made them, under the
        # rules of that time: each is checked again for this client, and those now denied go.
        denied = []
        for flt, sub in list(sess.subs.items()):
            if not self.authorize(c, "subscribe", flt, sub.qos, False):
                self.router.remove(sess.clientid, sub.filter, sub.group)
                del sess.subs[flt]
                denied.append(flt)
                if self.persist:
                    self.persist.unsub(sess, flt)
        if denied:
            self.log("warning", "client %s: %d subscription(s) of its resumed session dropped, no longer "
                     "authorized (the first %s)" % (c.name(), len(denied), ident(denied[0])))

    def on_connected(self, c, present):
        self._event(c, "connected", {
            "clientid": c.clientid, "username": c.username, "ipaddress": c.peerhost, "sockport": c.lcfg["bind"][1],
            "proto_name": c.proto_name, "proto_ver": c.version, "keepalive": c.keepalive,
            "clean_start": c.clean_start, "expiry_interval": c.expiry if c.expiry is not None else 0xFFFFFFFF,
            "connected_at": c.connected_at, "connack": 0, "ts": self.wallclock_ms(),
            "cert_common_name": c.cert_cn, "cert_subject": c.cert_dn,
            "client_attrs": c.__dict__.get("client_attrs") or {},
        })
        if present:
            self._resume(c.session, c)

    def _resume(self, sess, c):
        # Unacknowledged messages go again: PUBLISH with DUP, or PUBREL where PUBREC came back.
        now = self.clock()
        for pid, d in list(sess.inflight.items()):
            if d.phase:
                c.send(codec.encode_ack(codec.PUBREL, pid, R.SUCCESS, None, c.version))
            elif not c.send_publish(d.msg, d.qos, d.retain, pid, d.subids, True, now):
                del sess.inflight[pid]
                if self.persist:
                    self.persist.ack(sess, pid)
        self.pump(sess)

    def hold_pre_connect(self, c):
        # What connections hold before their CONNECT is in (partial packets) stays under
        # pre_connect_budget in total: one slow CONNECT per connection is mqtt.max_connect_size at
        # most, and many of them could still fill the memory. The connection whose bytes pass the
        # budget is closed (a line per interval, counting the others).
        n = c.reader.pending() if c.state == NEW and not c.closing else 0
        self.pre_connect_held += n - c.held
        c.held = n
        if n and self.pre_connect_held > self.pre_connect_budget:
            held = self._pre_connect_log.allow(self.clock())
            if held is not None:
                self.log("warning", "closing %s:%s: connections before CONNECT hold %d bytes, over the "
                         "budget of %d%s" % (c.peerhost, c.peerport, self.pre_connect_held,
                                             self.pre_connect_budget, more(held, "closed")))
            self.pre_connect_held -= n
            c.held = 0
            c.close(word="pre_connect_budget")

    def detach(self, c, was_connected, send_will):
        self.conns.discard(c)
        if c.held:
            self.pre_connect_held -= c.held
            c.held = 0
        n = self.per_listener.get(c.listener, 1) - 1
        self.per_listener[c.listener] = n
        if c.paused:
            self.paused.discard(c)
        sess = c.session
        if sess is None or sess.conn is not c:
            return
        sess.conn = None
        if sess.holding is not None:
            self._release(sess)       # only a connected subscriber holds publishers back
        self.stats["connections"] -= 1
        now = self.clock()
        will = c.will if send_will else None
        c.will = None
        # Session bookkeeping first: publishing (the will, the $SYS event) allocates, and running
        # out of memory there must not leave a session half torn down.
        sess.expiry = c.expiry
        if will is not None and c.will_delay:
            sess.will = (will, now + c.will_delay)
            will = None
        if sess.expiry == 0:
            self.end_session(sess, "expired")
        else:
            sess.expire_at = None if sess.expiry is None else now + sess.expiry
            self.offline.add(sess)
            if self.persist:
                self.persist.session(sess)
        try:
            if will is not None:
                self.publish(will)
            self._event(c, "disconnected", {
                "clientid": c.clientid, "username": c.username, "ipaddress": c.peerhost,
                "sockport": c.lcfg["bind"][1], "proto_name": c.proto_name, "proto_ver": c.version,
                "reason": c.reason or "normal", "disconnected_at": self.wallclock_ms(), "ts": self.wallclock_ms(),
            })
        except MemoryError:
            self.log("error", "client %s: out of memory publishing its will or disconnect event" % c.name())
        self.log("info", "client %s disconnected: %s" % (c.name(), c.reason))

    def end_session(self, sess, why):
        if sess.will is not None:
            self.publish(sess.will[0])
            sess.will = None
        for flt, sub in sess.subs.items():
            self.router.remove(sess.clientid, sub.filter, sub.group)
        sess.subs = {}
        self.offline.discard(sess)
        if self.persist:
            self.persist.end(sess)
        if self.sessions.get(sess.clientid) is sess:
            del self.sessions[sess.clientid]

    # ---- routing ----

    def _pick(self, members, start):
        n = len(members)
        for i in range(n):
            k = (start + i) % n
            s = self.sessions.get(members[k].clientid)
            if s is not None and s.conn is not None:
                return k
        return start % n if n else -1

    def _retain_dropped(self, topic, why):
        # One line per interval: a client flooding a full store with retained messages made a
        # line per message. The next line counts the drops in between.
        self.stats["retained.dropped"] += 1
        held = self._retain_drops.allow(self.clock())
        if held is not None:
            r = self.retained
            why = ("payload over retainer.max_payload_size (%d bytes)" % r.max_payload if why == TOO_LARGE else
                   "store full (retainer.max_retained_messages %d)" % r.max_messages if why == FULL else
                   "store full (low memory)")
            self.log("warning", "retained message on %s dropped: %s%s" % (ident(topic), why, more(held, "dropped")))

    def publish(self, msg, refuse_retain=False):
        # Routes one message; returns how many sessions it was delivered or queued to. A retained
        # message the store refuses (retainer limits) is still routed, unless refuse_retain (an
        # MQTT 5 QoS 1/2 publisher, told 0x97 by the caller): then -1 and nothing is routed.
        self.received[msg.qos] += 1
        if msg.retain:
            why = self.retained.put(msg, self.clock())
            if not why and self.persist:
                self.persist.retained(msg)
            if why:
                self._retain_dropped(msg.topic, why)
                if refuse_retain:
                    return -1
        bridges = self.bridges
        if bridges:
            for br in bridges:
                br.offer(msg)
        matched = self.router.match(msg.topic, self._pick, msg.sender)
        if not matched:
            return 0
        sessions = self.sessions
        mq = msg.qos
        for cid, (qos, sub, subids) in matched.items():
            sess = sessions.get(cid)
            if sess is not None:
                self.deliver(sess, msg, mq if mq < qos else qos, msg.retain if sub.rap else False, subids)
        return len(matched)

    def deliver(self, sess, msg, qos, retain, subids):
        c = sess.conn
        if c is None or c.state != CONNECTED or c.closing or c.congested:
            self._queue(sess, Delivery(msg, qos, retain, subids))
            return
        if qos == 0:
            if c.send_publish(msg, 0, retain, None, subids, False, self.clock()):
                self.sent[0] += 1
            return
        if len(sess.inflight) >= c.window:
            self._queue(sess, Delivery(msg, qos, retain, subids))
            return
        pid = sess.alloc_pid()
        if c.send_publish(msg, qos, retain, pid, subids, False, self.clock()):
            d = sess.inflight[pid] = Delivery(msg, qos, retain, subids)
            self.sent[qos] += 1
            if self.persist:
                self.persist.inflight(sess, pid, d)

    def _queue(self, sess, item):
        m = self.mqtt
        mq = m["max_mqueue_len"]
        dropped = sess.enqueue(item, mq, m["mqueue_store_qos0"])
        if self.persist:
            if dropped is not item:
                self.persist.enq(sess, item)
            if dropped is not None:
                self.persist.deq(sess, dropped)
        f = self.feeding
        if item.qos and f is not None and not f.paused and not sess.slow and sess.conn is not None and sess.conn is not f \
                and mq != 0 and len(sess.queue) >= (mq // 2 if mq is not None else FLOW_HIGH) \
                and m["flow_control_timeout"] is not None:
            self._hold(f, sess)
        if dropped is not None:
            self.stats["messages.dropped"] += 1
            self.stats["delivery.dropped.queue_full" if dropped.qos else "delivery.dropped.qos0_msg"] += 1
            if dropped.qos or m["mqueue_store_qos0"]:
                # One line per session per interval: a fast publisher and a slow subscriber must
                # not turn into a log line per message (on a board the log is the bottleneck).
                t = sess.drop_log
                if t is None:
                    t = sess.drop_log = Throttle()
                held = t.allow(self.clock())
                if held is not None:
                    self.log("warning", "client %s: queue full (max_mqueue_len %s), dropped %d message(s), "
                             "the last a QoS %d message on %s" % (ident(sess.clientid), m["max_mqueue_len"],
                                                                 held + 1, dropped.qos, ident(dropped.msg.topic)))

    # ---- flow control towards publishers ----
    # A burst of QoS 1 messages in one read used to land in a subscriber's queue faster than its
    # window drained, and past max_mqueue_len acknowledged messages were dropped. Now, while a
    # connected subscriber's queue of QoS 1/2 deliveries (QoS 0 may be dropped, at most once) is
    # past half of max_mqueue_len, the publisher feeding it is
    # paused: the rest of its read waits in its backlog and the port stops reading from it, so
    # TCP slows it down. When the queue is back under a quarter the publisher goes on. A
    # subscriber that does not drain within flow_control_timeout is marked slow: it holds nobody
    # until it has drained, and its queue drops as before (logged and counted).

    def _hold(self, f, sess):
        f.paused = True
        f.paused_by = sess
        f.paused_until = self.clock() + self.mqtt["flow_control_timeout"]
        self.paused.add(f)
        if sess.holding is None:
            sess.holding = [f]
        else:
            sess.holding.append(f)

    def _release(self, sess):
        for f in sess.holding:
            if f.paused and f.paused_by is sess:
                f.paused_by = None
                self.paused.discard(f)
                self._unpause(f)
        sess.holding = None

    def _unpause(self, f):
        # f goes on with the packets it had read (flush) and the port reads from it again.
        f.paused = False
        self._resumable.append(f)
        self.mark(f)

    def mark(self, c):
        # c goes to the port at the next flush even without output: its paused flag changed,
        # so the port stops or starts reading from it.
        if not c.dirty:
            c.dirty = True
            self.dirty.append(c)

    def _flow_timeouts(self, now, nxt):
        for f in list(self.paused):
            if now < f.paused_until:
                if f.paused_until < nxt:
                    nxt = f.paused_until
                continue
            sess = f.paused_by
            held = self._flow_log.allow(now)
            if held is not None:
                self.log("warning", "client %s: not read from for %gs (flow_control_timeout) while client %s "
                         "did not take its messages; that client's queue now drops instead%s" % (
                             f.name(), self.mqtt["flow_control_timeout"], ident(sess.clientid),
                             more(held, "such timeouts")))
            sess.slow = True
            self._release(sess)
        return nxt

    def pump(self, sess):
        # Moves queued messages into the window as acknowledgements free it.
        c = sess.conn
        if c is None or c.closing or c.congested:
            return
        q = sess.queue
        now = self.clock()
        while q:
            d = q[0]
            if d.qos and len(sess.inflight) >= c.window:
                break
            q.pop(0)
            if self.persist:
                self.persist.deq(sess, d)
            if d.msg.expired(now):
                continue
            if d.qos == 0:
                c.send_publish(d.msg, 0, d.retain, None, d.subids, False, now)
                continue
            pid = sess.alloc_pid()
            if c.send_publish(d.msg, d.qos, d.retain, pid, d.subids, False, now):
                sess.inflight[pid] = d
                if self.persist:
                    self.persist.inflight(sess, pid, d)
        if (sess.holding is not None or sess.slow) and len(q) <= self._flow_low():
            sess.slow = False
            if sess.holding is not None:
                self._release(sess)

    def _flow_low(self):
        mq = self.mqtt["max_mqueue_len"]
        return (mq if mq is not None else FLOW_HIGH * 2) // 4

    # ---- timers ----

    def tick(self):
        # Runs the timers that are due; returns the seconds until the next deadline, at most
        # TICK_MAX (the ports hang their own periodic work, CRL re-reads and heap reports, on it).
        now = self.clock()
        nxt = now + TICK_MAX
        m = self.mqtt
        mult = m["keepalive_multiplier"]
        art = m["await_rel_timeout"]
        wall = self.wallclock()
        for c in list(self.conns):
            if c.closing:
                continue
            if c.state != CONNECTED:
                if now >= c.deadline:
                    self.log("info", "closing %s:%s: no CONNECT within idle_timeout" % (c.peerhost, c.peerport))
                    c.close(word="idle_timeout")
                elif c.deadline < nxt:
                    nxt = c.deadline
                continue
            if c.keepalive:
                due = c.last_rx + c.keepalive * mult
                if now > due:
                    self.log("info", "client %s: keepalive timeout (%ds x %s)" % (c.name(), c.keepalive, mult))
                    c.close(R.KEEPALIVE_TIMEOUT)
                    continue
                if due < nxt:
                    nxt = due
            if c.auth_expire_at is not None:
                if wall >= c.auth_expire_at:
                    # JWT disconnect_after_expire: the token's exp ends the connection, as in EMQX.
                    self.log("info", "client %s: credentials expired, disconnecting" % c.name())
                    c.close(R.NOT_AUTHORIZED)
                    continue
                if now + c.auth_expire_at - wall < nxt:
                    nxt = now + c.auth_expire_at - wall
            ar = c.session.awaiting_rel if c.session else None
            if ar and art is not None:
                for pid in [p for p, t in ar.items() if now - t > art]:
                    del ar[pid]
                    if self.persist:
                        self.persist.rel_done(c.session, pid)
        if self.offline:
            for sess in list(self.offline):
                if sess.will is not None:
                    if now >= sess.will[1]:
                        self.publish(sess.will[0])
                        sess.will = None
                        if self.persist:
                            self.persist.session(sess)
                    elif sess.will[1] < nxt:
                        nxt = sess.will[1]
                if sess.expire_at is not None:
                    if now >= sess.expire_at:
                        self.end_session(sess, "expired")
                    elif sess.expire_at < nxt:
                        nxt = sess.expire_at
        if self.paused:
            nxt = self._flow_timeouts(now, nxt)
        if self.subscribing:
            # One step of each SUBSCRIBE handled in steps; back at once while any is left.
            going = []
            for c in self.subscribing:
                if c.subscribe_step():
                    if c.state == CONNECTED and not c.closing:     # not one that left meanwhile
                        if c.paused and c.paused_by is None:
                            self._unpause(c)
                        self.flag(c)
                else:
                    going.append(c)
                    self.flag(c)
            self.subscribing = going
            if going:
                nxt = now
        if self.retained.expiring:
            self.retained.purge(now)  # costs the expired retained messages only
        si = self.cfg["sys_topics"]["sys_msg_interval"]
        if si:
            if now >= self._sys_next:
                self._sys_next = now + si
                self._sys(now)
            if self._sys_next < nxt:
                nxt = self._sys_next
        return nxt - now if nxt > now else 0

    def shutdown(self):
        for c in list(self.conns):
            # MQTT 5 clients are told; a connection still before CONNECT just closes.
            c.close(R.SERVER_SHUTTING_DOWN)

    # ---- the management facade: what the HTTP API and $SYS read, and what they may do ----

    def tls_refused(self, listener, peer, reason, detail):
        # A port's TLS handshake refused (by OpenSSL/mbedTLS or the leaf policy) or timed out:
        # the same line on both ports, and the reason word counted with the authentication
        # failures (gatemq_authentication_failure_by_reason).
        self.count("authentication.failure." + reason)
        self.log("warning", "listener %s: TLS client %s:%s rejected: %s (%s)" % (
            listener, peer[0], peer[1], reason, detail))

    def count(self, name, n=1):
        # A counter of the metrics (gatemq.prometheus): messages by QoS, bytes, authentication
        # outcomes by reason word (tls_refused adds the TLS refusal words), ACL denials.
        st = self.stats
        st[name] = st.get(name, 0) + n

    def counters(self):
        # Every counter and gauge, by name (a copy).
        d = dict(self.stats)
        for q in (0, 1, 2):
            d["messages.qos%d.received" % q] = self.received[q]
            d["messages.qos%d.sent" % q] = self.sent[q]
        d["messages.received"] = sum(self.received)
        d["messages.sent"] = sum(self.sent)
        return d

    def snapshot(self):
        # Gauges and counters, under EMQX's stats/metrics names.
        st = self.stats
        return {"connections.count": st["connections"], "connections.max": st["max_connections"],
                "live_connections.count": len(self.clients()), "sessions.count": len(self.sessions),
                "subscriptions.count": self.router.count, "retained.count": len(self.retained),
                "retained.dropped": st["retained.dropped"], "messages.received": sum(self.received),
                "messages.sent": sum(self.sent), "messages.dropped": st["messages.dropped"],
                "delivery.dropped.queue_full": st["delivery.dropped.queue_full"],
                "delivery.dropped.qos0_msg": st["delivery.dropped.qos0_msg"]}

    def clients(self):
        # The connected clients (CONNACK sent, not closing).
        return [c for c in self.conns if c.state == CONNECTED and not c.closing]

    def client(self, clientid):
        # The connected client with this client id, or None.
        s = self.sessions.get(clientid)
        c = s.conn if s is not None else None
        return c if c is not None and c.state == CONNECTED and not c.closing else None

    def listener_connections(self, listener):
        return self.per_listener.get(listener, 0)

    def kick(self, c, by):
        self.log("info", "%s kicked client %s" % (by, c.name()))
        c.close(R.ADMINISTRATIVE_ACTION)

    # ---- $SYS ----

    def _sys_pub(self, suffix, payload):
        self.publish(Message("$SYS/brokers/%s/%s" % (self.node, suffix), payload.encode(), 0, False))

    def _sys(self, now):
        self._sys_pub("version", __version__)
        self._sys_pub("uptime", "%d" % int(now - self.started))
        st = self.snapshot()
        for name in _SYS_STATS:
            self._sys_pub("stats/" + name.replace(".", "/"), "%d" % st[name])

    def _event(self, c, what, info):
        if c.clientid is None:
            return
        self._sys_pub("clients/%s/%s" % (c.clientid, what), json.dumps(info))
