# The broker: sessions, routing, retained messages, wills, timers and $SYS, driven by a port.
# It never does I/O: ports feed bytes into connections and write what flush() hands back.
import json

from gatemq import __version__
from gatemq import codec
from gatemq.connection import Connection, CONNECTED
from gatemq.message import Message
from gatemq.retain import RetainStore
from gatemq.router import Router
from gatemq.session import Session
from gatemq import policy


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
        self.retained = RetainStore()
        self.sessions = {}
        self.conns = set()
        self.dirty = []
        self.per_listener = {}
        self._refused = {}            # listener -> [refusals not yet logged, next log time]
        self._retain_drops = None     # [retained messages dropped and not yet logged, next log time]
        self.offline = set()          # sessions without a connection that may expire or owe a will
        self.started = clock()
        self.started_wall = wallclock()
        self._idn = 0
        self._sys_next = self.started
        self.stats = {"connections": 0, "messages.received": 0, "messages.sent": 0,
                      "messages.dropped": 0, "max_connections": 0}
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
            chain = Authenticator(authn, self.read_file, self.wallclock, self.log)
        else:
            chain = policy.Gate(self.wallclock, self.log)
        jwt = False
        for a in authn or ():
            jwt = jwt or a.get("mechanism") == "jwt"
        if jwt or (authz or {}).get("sources"):
            # a JWT authenticator may hand out ACL rules (the acl claim): gatemq.acl checks those
            from gatemq.acl import Authorizer
            rules = Authorizer(authz, self.read_file, self.log)
        else:
            rules = policy.NoMatch(authz, self.log)
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
            # One line per listener at most every 10 s: a connection flood must not become a
            # log flood. The next line counts the refusals in between.
            now = self.clock()
            r = self._refused.get(listener)
            if r is None or now >= r[1]:
                self.log("warning", "listener %s: refused %s:%s, max_connections (%d) reached%s" % (
                    listener, peer[0] if peer else "?", peer[1] if peer else "?", limit,
                    "; %d more refused since the last such line" % r[0] if r and r[0] else ""))
                self._refused[listener] = [0, now + 10]
            else:
                r[0] += 1
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

    def authenticate(self, c):
        return self.authn.authenticate(c, c.lcfg)

    def authorize(self, c, action, topic, qos, retain):
        return self.authz.check(c, action, topic, qos, retain)

    # ---- sessions ----

    def attach(self, c):
        # Binds a CONNECTed connection to its session; returns Session Present.
        cid = c.clientid
        old = self.sessions.get(cid)
        if old is not None and old.conn is not None:
            prev = old.conn
            self.log("info", "client %s taken over by %s:%s" % (prev.name(), c.peerhost, c.peerport))
            prev.reason = "takenover"
            prev.close("takenover", 0x8E)
        present = False
        if old is not None and not c.clean_start:
            sess = old
            present = True
            # A resumed session cancels its delayed will.
            sess.will = None
        else:
            if old is not None:
                self.end_session(old, "discarded")
            sess = Session(cid)
            self.sessions[cid] = sess
        self.offline.discard(sess)
        sess.expire_at = None
        sess.expiry = c.expiry
        sess.conn = c
        c.session = sess
        self.stats["connections"] += 1
        if self.stats["connections"] > self.stats["max_connections"]:
            self.stats["max_connections"] = self.stats["connections"]
        return present

    def on_connected(self, c, present):
        self._event(c, "connected", {
            "clientid": c.clientid, "username": c.username, "ipaddress": c.peerhost, "sockport": c.lcfg["bind"][1],
            "proto_name": c.proto_name, "proto_ver": c.version, "keepalive": c.keepalive,
            "clean_start": c.clean_start, "expiry_interval": c.expiry if c.expiry is not None else 0xFFFFFFFF,
            "connected_at": c.connected_at, "connack": 0, "ts": self.wallclock_ms(),
            "cert_common_name": c.cert_cn, "cert_subject": c.cert_dn,
        })
        if present:
            self._resume(c.session, c)

    def _resume(self, sess, c):
        # Unacknowledged messages go again: PUBLISH with DUP, or PUBREL where PUBREC came back.
        now = self.clock()
        for pid, e in list(sess.inflight.items()):
            if e[4]:
                c.send(codec.encode_ack(codec.PUBREL, pid, 0, None, c.version))
            elif not c.send_publish(e[0], e[1], e[2], pid, e[3], True, now):
                del sess.inflight[pid]
        self.pump(sess)

    def detach(self, c, was_connected, send_will):
        self.conns.discard(c)
        n = self.per_listener.get(c.listener, 1) - 1
        self.per_listener[c.listener] = n
        sess = c.session
        if sess is None or sess.conn is not c:
            return
        sess.conn = None
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

    def _retain_dropped(self, topic):
        # One line at most every 10 s: a client flooding a full store with retained messages made
        # a line per message. The next line counts the drops in between.
        now = self.clock()
        r = self._retain_drops
        if r is None or now >= r[1]:
            self.log("warning", "retained message on %r dropped: store full%s" % (
                topic, "; %d more dropped since the last such line" % r[0] if r is not None and r[0] else ""))
            self._retain_drops = [0, now + 10]
        else:
            r[0] += 1

    def publish(self, msg):
        # Routes one message; returns how many sessions it was delivered or queued to.
        self.stats["messages.received"] += 1
        if msg.retain:
            if not self.retained.put(msg):
                self._retain_dropped(msg.topic)
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
            self._queue(sess, [msg, qos, retain, subids])
            return
        if qos == 0:
            if c.send_publish(msg, 0, retain, None, subids, False, self.clock()):
                self.stats["messages.sent"] += 1
            return
        if len(sess.inflight) >= c.window:
            self._queue(sess, [msg, qos, retain, subids])
            return
        pid = sess.alloc_pid()
        if c.send_publish(msg, qos, retain, pid, subids, False, self.clock()):
            sess.inflight[pid] = [msg, qos, retain, subids, 0]
            self.stats["messages.sent"] += 1

    def _queue(self, sess, item):
        m = self.mqtt
        dropped = sess.enqueue(item, m["max_mqueue_len"], m["mqueue_store_qos0"])
        if dropped is not None:
            self.stats["messages.dropped"] += 1
            if dropped[1] or m["mqueue_store_qos0"]:
                # One line per session at most every 10 s: a fast publisher and a slow subscriber
                # must not turn into a log line per message (on a board the log is the bottleneck).
                sess.drops += 1
                now = self.clock()
                if sess.drop_log_at is None or now >= sess.drop_log_at:
                    self.log("warning", "client %s: queue full (max_mqueue_len %s), dropped %d message(s), "
                             "the last a QoS %d message on %r" % (sess.clientid, m["max_mqueue_len"],
                                                                 sess.drops, dropped[1], dropped[0].topic))
                    sess.drops = 0
                    sess.drop_log_at = now + 10

    def pump(self, sess):
        # Moves queued messages into the window as acknowledgements free it.
        c = sess.conn
        if c is None or c.closing or c.congested:
            return
        q = sess.queue
        now = self.clock()
        while q:
            msg, qos, retain, subids = q[0]
            if qos and len(sess.inflight) >= c.window:
                break
            q.pop(0)
            if msg.expired(now):
                continue
            if qos == 0:
                c.send_publish(msg, 0, retain, None, subids, False, now)
                continue
            pid = sess.alloc_pid()
            if c.send_publish(msg, qos, retain, pid, subids, False, now):
                sess.inflight[pid] = [msg, qos, retain, subids, 0]

    # ---- timers ----

    def tick(self):
        now = self.clock()
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
                    c.reason = "idle_timeout"
                    c.close("idle_timeout")
                continue
            if c.keepalive and now - c.last_rx > c.keepalive * mult:
                self.log("info", "client %s: keepalive timeout (%ds x %s)" % (c.name(), c.keepalive, mult))
                c.reason = "keepalive_timeout"
                c.close("keepalive_timeout", 0x8D)
                continue
            if c.auth_expire_at is not None and wall >= c.auth_expire_at:
                # JWT disconnect_after_expire: the token's exp ends the connection, as in EMQX.
                self.log("info", "client %s: credentials expired, disconnecting" % c.name())
                c.reason = "not_authorized"
                c.close("not_authorized", 0x87)
                continue
            ar = c.session.awaiting_rel if c.session else None
            if ar and art is not None:
                for pid in [p for p, t in ar.items() if now - t > art]:
                    del ar[pid]
        if self.offline:
            for sess in list(self.offline):
                if sess.will is not None and now >= sess.will[1]:
                    self.publish(sess.will[0])
                    sess.will = None
                if sess.expire_at is not None and now >= sess.expire_at:
                    self.end_session(sess, "expired")
        si = self.cfg["sys_topics"]["sys_msg_interval"]
        if si and now >= self._sys_next:
            self._sys_next = now + si
            self._sys(now)
        return 0.5

    def shutdown(self):
        for c in list(self.conns):
            c.reason = "shutdown"
            if c.state == CONNECTED:
                c.close("shutdown", 0x8B)
            else:
                c.close("shutdown")

    # ---- $SYS ----

    def _sys_pub(self, suffix, payload):
        self.publish(Message("$SYS/brokers/%s/%s" % (self.node, suffix), payload.encode(), 0, False))

    def _sys(self, now):
        self._sys_pub("version", __version__)
        self._sys_pub("uptime", "%d" % int(now - self.started))
        self._sys_pub("stats/connections/count", "%d" % self.stats["connections"])
        self._sys_pub("stats/connections/max", "%d" % self.stats["max_connections"])
        self._sys_pub("stats/subscriptions/count", "%d" % self.router.count)
        self._sys_pub("stats/retained/count", "%d" % len(self.retained))
        self._sys_pub("stats/sessions/count", "%d" % len(self.sessions))

    def _event(self, c, what, info):
        if c.clientid is None:
            return
        self._sys_pub("clients/%s/%s" % (c.clientid, what), json.dumps(info))
