# Persistence, sans-IO: what a change is, how the broker's state is rebuilt from the stored records,
# the append-only log's framing, and compaction. The ports store and read (ports/cpython/store.py:
# SQLite; ports/micropython/store.py: the log); docs/persistence.md describes the whole.
#
# The state is a set of records, each under a key (kind, client, key):
#   "r", "",  topic   a retained message
#   "s", cid, ""      a session that outlives its connection: expiry, deadline, owner, delayed will
#   "u", cid, filter  one of its subscriptions (options, identifier)
#   "q", cid, seq     a message in its offline queue (seq orders the queue)
#   "i", cid, pid     an outgoing QoS 1/2 message in flight (phase 1: PUBREL sent; no message then)
#   "a", cid, pid     an incoming QoS 2 packet id awaiting PUBREL
#   "b", name, seq    a QoS 1/2 message in bridge <name>'s store-and-forward queue (seq orders it):
#                     [pid, phase, qos, remote topic, message]; pid 0 while not sent upstream, else
#                     the packet id it went out under (phase 1: PUBREC came back, PUBREL sent).
#                     Not a session's: DROP leaves it alone.
#   "d", name, pid    a QoS 2 packet id bridge <name>'s upstream sent down, awaiting its PUBREL (a
#                     PUBLISH the upstream resends after a restart is then not delivered twice).
#                     Not a session's either.
# A change is an op: [PUT, kind, client, key, value], [DEL, kind, client, key] or [DROP, client]
# (every record of that client's session). The broker's hooks queue ops in Persist.ops; the port
# commits them (one write and one sync per round in sync = commit) before it writes any
# acknowledgement the round produced. Times are stored as wall-clock deadlines, so expiry holds
# across a restart.
import binascii
import struct

from gatemq.message import Message
from gatemq.router import Subscription
from gatemq.session import Session, Delivery
from gatemq import topic as topics

VERSION = 1                   # format version of the records, the log and the SQLite schema
MAGIC = b"GATEMQ-LOG"         # a log file starts with MAGIC and one version byte
PUT, DEL, DROP = 0, 1, 2
KINDS = ("r", "s", "u", "q", "i", "a", "b", "d")
UNBOUND = ("r", "b", "d")     # kinds no session owns: DROP leaves them alone
ENOSPC = 28
FRAME_MAX = 16 * 1024 * 1024  # a frame header announcing more is corruption, not a record


class StoreError(Exception):
    # A store that cannot be used: corrupt, unreadable, or written by a newer version (.newer).
    def __init__(self, msg, newer=False):
        super().__init__(msg)
        self.newer = newer


# ---- values: a small self-describing binary encoding (payloads are bytes; JSON has none) ----

def _varint(n, out):
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)


def _pack(v, out):
    if v is None:
        out.append(78)  # N
    elif v is True:
        out.append(84)  # T
    elif v is False:
        out.append(70)  # F
    elif type(v) is int:
        s = str(v).encode()
        out.append(105)  # i
        out.append(len(s))
        out.extend(s)
    elif type(v) is float:
        out.append(102)  # f
        out.extend(struct.pack(">d", v))
    elif type(v) is str:
        b = v.encode()
        out.append(115)  # s
        _varint(len(b), out)
        out.extend(b)
    elif type(v) is bytes or type(v) is bytearray or type(v) is memoryview:
        out.append(98)  # b
        _varint(len(v), out)
        out.extend(v)
    elif type(v) is list or type(v) is tuple:
        out.append(108 if type(v) is list else 116)  # l, t
        _varint(len(v), out)
        for x in v:
            _pack(x, out)
    elif type(v) is dict:
        out.append(100)  # d
        _varint(len(v), out)
        for k, x in v.items():
            _pack(k, out)
            _pack(x, out)
    else:
        raise ValueError("cannot store a %s" % type(v))


def pack(v):
    out = bytearray()
    _pack(v, out)
    return bytes(out)


def _uvar(b, i):
    n = 0
    shift = 0
    while True:
        c = b[i]
        i += 1
        n |= (c & 0x7F) << shift
        if c < 0x80:
            return n, i
        shift += 7


def _unpack(b, i):
    t = b[i]
    i += 1
    if t == 78:
        return None, i
    if t == 84:
        return True, i
    if t == 70:
        return False, i
    if t == 105:
        n = b[i]
        return int(str(bytes(b[i + 1:i + 1 + n]), "utf-8")), i + 1 + n
    if t == 102:
        return struct.unpack(">d", bytes(b[i:i + 8]))[0], i + 8
    if t == 115 or t == 98:
        n, i = _uvar(b, i)
        if i + n > len(b):
            raise ValueError("truncated")
        s = bytes(b[i:i + n])
        return (str(s, "utf-8") if t == 115 else s), i + n
    if t == 108 or t == 116:
        n, i = _uvar(b, i)
        out = []
        for _ in range(n):
            x, i = _unpack(b, i)
            out.append(x)
        return (out if t == 108 else tuple(out)), i
    if t == 100:
        n, i = _uvar(b, i)
        out = {}
        for _ in range(n):
            k, i = _unpack(b, i)
            out[k], i = _unpack(b, i)
        return out, i
    raise ValueError("bad tag %d" % t)


def unpack(b):
    v, i = _unpack(memoryview(b), 0)
    if i != len(b):
        raise ValueError("trailing bytes")
    return v


# ---- the append-only log: a header, then frames of ops; one frame per commit ----
#   header: MAGIC, version (1 byte)
#   frame:  length (4 bytes, big-endian), CRC-32 of the body (4 bytes), body = pack([op, ...])
# A frame is the unit of atomicity: a commit's changes (a QoS 2 message's queue entries and its
# packet id awaiting PUBREL) are applied together or not at all.

def header():
    return MAGIC + bytes((VERSION,))


def frame(ops):
    body = pack(ops)
    return struct.pack(">II", len(body), binascii.crc32(body) & 0xFFFFFFFF) + body


def check_header(h, name):
    # -> None, or raises StoreError (a newer version: .newer).
    if len(h) < len(MAGIC) + 1 or h[:len(MAGIC)] != MAGIC:
        raise StoreError("%s is not a gatemq log (bad header)" % name)
    if h[len(MAGIC)] > VERSION:
        raise StoreError("%s was written by a newer gatemq (format version %d; this one reads up to %d)"
                         % (name, h[len(MAGIC)], VERSION), True)


def read_log(read, name, apply):
    # Replays a log: read(n) -> bytes (fewer at the end); apply(ops) for each good frame.
    # -> (good_end, dropped, frames, corrupt): good_end is the offset after the last good frame;
    # dropped None, or what was left out after it; corrupt True when more bytes follow a bad
    # frame (damage in the middle, not a write cut short by a crash).
    h = read(len(MAGIC) + 1)
    check_header(h, name)
    off = len(h)
    frames = 0
    while True:
        hd = read(8)
        if not hd:
            return off, None, frames, False
        if len(hd) < 8:
            return off, "a torn frame header (%d bytes) at offset %d" % (len(hd), off), frames, False
        n, crc = struct.unpack(">II", hd)
        if n > FRAME_MAX:
            return off, "a corrupt frame header at offset %d (length %d)" % (off, n), frames, True
        body = read(n)
        if len(body) < n:
            return off, "a torn frame at offset %d (%d of %d bytes written)" % (off, 8 + len(body), 8 + n), frames, False
        why = None
        if binascii.crc32(body) & 0xFFFFFFFF != crc:
            why = "a frame with a bad checksum at offset %d (%d bytes)" % (off, 8 + n)
        else:
            try:
                ops = unpack(body)
            except Exception:
                why = "an undecodable frame at offset %d (%d bytes)" % (off, 8 + n)
        if why is not None:
            return off, why, frames, bool(read(1))
        apply(ops)
        frames += 1
        off += 8 + n


class State:
    # Records applied op by op (a log's replay): {(kind, client, key): value}.
    def __init__(self):
        self.d = {}

    def apply(self, ops):
        d = self.d
        for op in ops:
            if op[0] == PUT:
                d[(op[1], op[2], op[3])] = op[4]
            elif op[0] == DEL:
                d.pop((op[1], op[2], op[3]), None)
            elif op[0] == DROP:
                cid = op[1]
                for k in [k for k in d if k[1] == cid and k[0] not in UNBOUND]:
                    del d[k]

    def items(self, first):
        # Hands the records over and forgets them (a board's heap holds them once):
        # first=True the retained messages and sessions, then (False) the rest.
        d = self.d
        if first:
            for k in [k for k in d if k[0] == "r" or k[0] == "s"]:
                yield k[0], k[1], k[2], d.pop(k)
            return
        while d:
            k, v = d.popitem()
            yield k[0], k[1], k[2], v


def coalesce(ops):
    # The same changes in fewer bytes: a PUT or DEL that a later op of the batch overwrites, deletes or
    # drops (with its session) is left out. In sync = interval a QoS 1 message that came and was
    # acknowledged within one window then costs its removal only, not its body on flash as well.
    # -> a list with the same effect as ops when applied in order (State.apply).
    later = set()
    dropped = set()
    out = []
    for i in range(len(ops) - 1, -1, -1):
        op = ops[i]
        if op[0] == DROP:
            dropped.add(op[1])
            out.append(op)
            continue
        k = (op[1], op[2], op[3])
        if k in later or (op[1] not in UNBOUND and op[2] in dropped):
            continue
        later.add(k)
        out.append(op)
    out.reverse()
    return out


def describe(op):
    # One op as a line (what a dropped tail held).
    if op[0] == DROP:
        return "end of session %s" % op[1]
    what = {"r": "retained message", "s": "session", "u": "subscription", "q": "queued message",
            "i": "in-flight message", "a": "QoS 2 packet id awaiting PUBREL",
            "b": "bridge queue message", "d": "bridge's QoS 2 packet id awaiting PUBREL"}.get(op[1], op[1])
    return "%s %s of %s %s" % ("store" if op[0] == PUT else "removal", what, op[2] or "-", op[3])


# ---- the broker's side ----

def _wall(b, t):
    # a monotonic deadline -> wall clock
    return None if t is None else t - b.clock() + b.wallclock()


def _mono(b, w):
    return None if w is None else w - b.wallclock() + b.clock()


def msg_value(b, m):
    return [m.topic, m.payload, m.qos, m.retain, m.props, _wall(b, m.expire_at), m.sender]


def msg_of(b, v):
    return Message(v[0], v[1], v[2], v[3], v[4], _mono(b, v[5]), v[6])


def _owner(o):
    return None if o is None else list(o)


class Persist:
    # broker.persist: the hooks queue ops, the port takes them (take) and commits them.
    # mode: commit | interval | none.
    collect = None      # the port's garbage collection, run now and then while load() builds
    store_size = None   # the port's store's size() in bytes (Prometheus' persistence_store_bytes)
    full = False        # refusing new QoS 1/2 messages: store past max_size or the disk full
    full_why = None

    def __init__(self, broker, pcfg):
        self.b = broker
        self.mode = pcfg["sync"]
        self.max_size = pcfg["max_size"]
        self.ops = []
        # Commits written and the seconds their writes (each one write and one sync) took, by the
        # broker's clock: Prometheus' gatemq_persistence_commit_seconds summary.
        self.commits = 0
        self.commit_seconds = 0.0
        self.known = set()      # client ids whose session is stored
        self.seq = 1
        self.touched = False
        self.bridged = {}       # bridge name -> [(seq, value)] loaded, not yet claimed (bridge())
        self.bridged_rel = {}   # bridge name -> {pid} ("d" records) loaded, not yet claimed
        self.waiting = []       # fn() to call once the ops pending now are stored (after_commit)

    # -- hooks (broker.py, connection.py) --

    def retained(self, msg):
        if msg.payload:
            self.ops.append([PUT, "r", "", msg.topic, msg_value(self.b, msg)])
        else:
            self.ops.append([DEL, "r", "", msg.topic])

    def session(self, sess):
        # The session's own record, after attach and detach: stored while its expiry is not 0.
        cid = sess.clientid
        if sess.expiry == 0:
            if cid in self.known:
                self.known.discard(cid)
                self.ops.append([DROP, cid])
            return
        if cid not in self.known:
            self.known.add(cid)
            # a stored session of the same client id is replaced whole (a clean start, say)
            self.ops.append([DROP, cid])
        b = self.b
        w = sess.will
        self.ops.append([PUT, "s", cid, "", [sess.expiry, _wall(b, sess.expire_at), _owner(sess.owner),
                                            None if w is None else msg_value(b, w[0]),
                                            None if w is None else _wall(b, w[1])]])

    def end(self, sess):
        cid = sess.clientid
        if cid in self.known:
            self.known.discard(cid)
            self.ops.append([DROP, cid])

    def sub(self, sess, flt, sub):
        if sess.clientid in self.known:
            o = (sub.qos | (4 if sub.nl else 0) | (8 if sub.rap else 0) | (sub.rh << 4))
            self.ops.append([PUT, "u", sess.clientid, flt, [o, sub.subid]])

    def unsub(self, sess, flt):
        if sess.clientid in self.known:
            self.ops.append([DEL, "u", sess.clientid, flt])

    def _d(self, d):
        return [msg_value(self.b, d.msg), d.qos, d.retain, d.subids]

    def enq(self, sess, d):
        if sess.clientid in self.known:
            d.seq = s = self.seq
            self.seq = s + 1
            self.ops.append([PUT, "q", sess.clientid, s, self._d(d)])

    def deq(self, sess, d):
        if d.seq and sess.clientid in self.known:
            self.ops.append([DEL, "q", sess.clientid, d.seq])
        d.seq = 0

    def inflight(self, sess, pid, d):
        if sess.clientid in self.known:
            s = self.seq
            self.seq = s + 1
            self.ops.append([PUT, "i", sess.clientid, pid, [s, 0] + self._d(d)])

    def phase(self, sess, pid):
        # PUBREC came back: only the packet id is needed from here (PUBREL).
        if sess.clientid in self.known:
            s = self.seq
            self.seq = s + 1
            self.ops.append([PUT, "i", sess.clientid, pid, [s, 1]])

    def ack(self, sess, pid):
        if sess.clientid in self.known:
            self.ops.append([DEL, "i", sess.clientid, pid])

    def rel(self, sess, pid):
        if sess.clientid in self.known:
            self.ops.append([PUT, "a", sess.clientid, pid, None])

    def rel_done(self, sess, pid):
        if sess.clientid in self.known:
            self.ops.append([DEL, "a", sess.clientid, pid])

    def refuse(self, c):
        # A QoS 1/2 PUBLISH while the store is full: True (0x97 to MQTT 5, no ack to 3.x), logged.
        if not self.full:
            return False
        b = self.b
        t = getattr(self, "_log", None)
        if t is None:
            from gatemq.logline import Throttle
            t = self._log = Throttle()
        held = t.allow(b.clock())
        if held is not None:
            from gatemq.logline import more
            b.log("warning", "persistence: QoS %s message from client %s refused: %s%s" % (
                "1/2", c.name(), self.full_why, more(held, "refused")))
        return True

    def take(self):
        # The caller stores the ops itself (a compaction writes the whole state): they count as
        # stored, so what waited for them goes ahead.
        ops = self.ops
        if ops:
            self.ops = []
        self._stored()
        return ops

    def after_commit(self, fn):
        # An acknowledgement that must not go out before the ops pending now are stored (sync =
        # commit): fn() is called after the commit that stores them. -> False when nothing is
        # pending or the mode does not wait (interval, none): the caller acts now.
        if self.mode != "commit" or not self.ops:
            return False
        self.waiting.append(fn)
        return True

    def _stored(self):
        w = self.waiting
        if w:
            self.waiting = []
            for fn in w:
                fn()

    # -- committing (the port calls these; store: write(ops), size(), reserve(), release()) --

    def commit(self, store):
        # Writes the pending ops as one unit (one write and one sync). -> True when they are
        # stored (the round's acknowledgements may go out), False when they are not: the port then
        # drops the round's output and closes those connections (their clients resend what was
        # not acknowledged), the ops stay pending, and new QoS 1/2 messages are refused.
        ops = self.ops
        if not ops:
            self._stored()
            return True
        self.ops = []
        if self.mode != "commit":
            ops = coalesce(ops)     # a window's worth: what came and went within it is not written
        b = self.b
        t0 = b.clock()
        try:
            store.write(ops)
            self.commits += 1
            self.commit_seconds += b.clock() - t0
        except OSError as e:
            err = e
            if e.args and e.args[0] == ENOSPC and store.release():
                # The reserve file goes: room for this round, whose acks are then true.
                try:
                    store.write(ops)
                    err = None
                except OSError as e2:
                    err = e2
            if err is not None:
                self.ops = ops + self.ops
                self._set_full("the store cannot be written (%s)" % (err,))
                b.log("error", "persistence: %d change(s) could not be stored: %s; their "
                      "acknowledgements are withheld and those clients disconnected" % (len(ops), err))
                return False
            self._set_full("the disk is full")
            self._stored()
            return True
        if self.max_size and store.size() > self.max_size:
            self._set_full("the store is past persistence.max_size (%d bytes)" % self.max_size)
        self._stored()
        return True

    def _set_full(self, why):
        if not self.full:
            self.b.log("error", "persistence: %s; new QoS 1/2 messages are refused until there is room" % why)
        self.full = True
        self.full_why = why

    def maintain(self, store):
        # Every few seconds: leave the full state when there is room again (the reserve is back,
        # the store under max_size after compaction).
        if not self.full:
            return
        if self.ops or not store.reserve():
            return
        if self.max_size and store.size() > self.max_size:
            return
        self.full = False
        self.full_why = None
        self.b.log("info", "persistence: room again; QoS 1/2 messages are accepted")

    # -- rebuilding the broker at start --

    def load(self, items):
        # items(first) -> (kind, client, key, value) records in any order: first=True the retained
        # messages and sessions, first=False the others. Returns counts; records that are expired
        # or orphaned are removed (ops queued).
        b = self.b
        now = b.clock()
        wall = b.wallclock()
        sessions = {}
        n_ret = 0
        top = 0
        wills = []
        for kind, cid, key, v in items(True):
            if kind == "r":
                if v[5] is not None and v[5] <= wall:
                    self.ops.append([DEL, "r", "", key])
                    continue
                m = msg_of(b, v)
                m.retain = True
                b.retained.put(m, now)
                n_ret += 1
            elif kind == "s":
                exp, exp_wall, owner, will, will_wall = v
                if exp_wall is not None and exp_wall <= wall:
                    self.ops.append([DROP, cid])
                    if will is not None:
                        wills.append(msg_of(b, will))   # its will is due: it fires at start
                    continue
                s = Session(cid)
                if owner is not None:
                    s.owner = tuple(owner)
                s.expiry = exp
                if exp_wall is not None:
                    s.expire_at = _mono(b, exp_wall)
                elif exp is not None:
                    s.expire_at = now + exp      # connected when the broker stopped
                if will is not None:
                    s.will = (msg_of(b, will), _mono(b, will_wall))
                sessions[cid] = s
        queues = {}
        dropped = set()
        n = 0
        for kind, cid, key, v in items(False):
            n += 1
            if self.collect is not None and not n & 1023:
                self.collect()
            if kind == "b":
                self.bridged.setdefault(cid, []).append((key, v))
                continue
            if kind == "d":
                self.bridged_rel.setdefault(cid, set()).add(key)
                continue
            s = sessions.get(cid)
            if s is None:
                if cid not in dropped:
                    dropped.add(cid)
                    self.ops.append([DROP, cid])
                continue
            if kind == "u":
                group, real = topics.split_share(key)
                sub = Subscription(cid, real, v[0], v[1], group)
                b.router.add(sub)
                s.subs[key] = sub
            elif kind == "q":
                d = Delivery(msg_of(b, v[0]), v[1], v[2], v[3])
                d.seq = key
                queues.setdefault(cid, []).append((key, 0, d))
                top = key if key > top else top
            elif kind == "i":
                if v[1]:
                    d = Delivery(None, 2, False, None)
                    d.phase = 1
                else:
                    d = Delivery(msg_of(b, v[2]), v[3], v[4], v[5])
                queues.setdefault(cid, []).append((v[0], key, d))
                top = v[0] if v[0] > top else top
            elif kind == "a":
                s.awaiting_rel[key] = now
        n_q = n_i = 0
        for cid, lst in queues.items():
            s = sessions[cid]
            lst.sort(key=lambda e: e[0])
            for seq, pid, d in lst:
                if pid:
                    s.inflight[pid] = d
                    s.next_pid = pid + 1 if pid < 65535 else 1
                    n_i += 1
                else:
                    s.queue.append(d)
                    n_q += 1
        for cid, s in sessions.items():
            b.sessions[cid] = s
            b.offline.add(s)
            self.known.add(cid)
        self.seq = top + 1
        for m in wills:
            b.publish(m)
        names = (b.cfg.get("bridges") or {}).get("mqtt") or {}
        for name in list(self.bridged):
            lst = self.bridged[name]
            if name not in names or not names[name].get("enable", True):
                # the bridge is gone from the config: its queue with it, said once
                b.log("warning", "persistence: %d queued message(s) of bridge mqtt:%s dropped: the bridge is "
                      "no longer configured" % (len(lst), name))
                for seq, v in lst:
                    self.ops.append([DEL, "b", name, seq])
                del self.bridged[name]
                continue
            lst.sort(key=lambda e: e[0])
        for name in list(self.bridged_rel):
            if name not in names or not names[name].get("enable", True):
                for pid in self.bridged_rel.pop(name):
                    self.ops.append([DEL, "d", name, pid])
        return {"retained": n_ret, "sessions": len(sessions), "queued": n_q, "inflight": n_i}

    # -- the bridges' queues (gatemq.bridge.BridgeQueue's store hook) --

    def bridge(self, name):
        # -> (store, items, rel): the hook for bridge name's queue and QoS 2 ids, the items loaded
        # for it, in order, and the set of QoS 2 packet ids from its upstream awaiting PUBREL.
        from gatemq.bridge import Item
        b = self.b
        items = []
        for seq, v in self.bridged.pop(name, ()):
            it = Item(msg_of(b, v[4]), v[3], v[2], seq)
            it.pid = v[0]
            it.phase = v[1]
            items.append(it)
        return BridgeStore(self, name), items, self.bridged_rel.pop(name, None) or set()

    def snapshot(self):
        # Every live record as a PUT op, from the broker's state (compaction writes these).
        b = self.b
        now = b.clock()
        for m in _all_retained(b, now):
            yield [PUT, "r", "", m.topic, msg_value(b, m)]
        for cid in list(self.known):
            s = b.sessions.get(cid)
            if s is None:
                continue
            w = s.will
            yield [PUT, "s", cid, "", [s.expiry, _wall(b, s.expire_at), _owner(s.owner),
                                       None if w is None else msg_value(b, w[0]),
                                       None if w is None else _wall(b, w[1])]]
            for flt, sub in s.subs.items():
                o = (sub.qos | (4 if sub.nl else 0) | (8 if sub.rap else 0) | (sub.rh << 4))
                yield [PUT, "u", cid, flt, [o, sub.subid]]
            for d in s.queue:
                if d.seq:
                    yield [PUT, "q", cid, d.seq, self._d(d)]
            for pid, d in s.inflight.items():
                sq = self.seq
                self.seq = sq + 1
                yield [PUT, "i", cid, pid, [sq, 1] if d.phase else [sq, 0] + self._d(d)]
            for pid in s.awaiting_rel:
                yield [PUT, "a", cid, pid, None]
        for name, lst in self.bridged.items():      # loaded, the bridge not started yet
            for seq, v in lst:
                yield [PUT, "b", name, seq, v]
        for name, pids in self.bridged_rel.items():
            for pid in pids:
                yield [PUT, "d", name, pid, None]
        for br in b.bridges or ():
            st = br.queue.store
            if st is None:
                continue
            q = br.queue
            for it in list(q.inflight.values()) + q.items[q.head:]:
                if it is not None and it.qos:
                    yield [PUT, "b", br.name, it.seq, st.value(it)]
            for pid in br.awaiting_rel:
                yield [PUT, "d", br.name, pid, None]


class BridgeStore:
    # One bridge's store: its queue's items as "b" records and its upstream's open QoS 2 packet ids
    # as "d" records, in the broker's ops (the same commit rounds and sync mode as everything else).
    def __init__(self, persist, name):
        self.p = persist
        self.name = name

    def value(self, it):
        return [it.pid, it.phase, it.qos, it.topic, msg_value(self.p.b, it.msg)]

    def put(self, it):
        self.p.ops.append([PUT, "b", self.name, it.seq, self.value(it)])

    def done(self, it):
        self.p.ops.append([DEL, "b", self.name, it.seq])

    def rel(self, pid):
        self.p.ops.append([PUT, "d", self.name, pid, None])

    def rel_done(self, pid):
        self.p.ops.append([DEL, "d", self.name, pid])


def _all_retained(b, now):
    # Every stored retained message, "$" topics included ("#" alone skips them).
    r = b.retained
    out = []
    stack = [r.root]
    while stack:
        d = stack.pop()
        for v in d.values():
            if type(v) is dict:
                stack.append(v)
            elif not v.expired(now):
                out.append(v)
    return out


def unreadable(e, broker, pcfg, log, set_aside):
    # A store that cannot be loaded (StoreError e): OSError, the broker does not start, when a newer
    # gatemq wrote it or persistence.on_corrupt = stop; else set_aside() renames it (-> the new
    # name) and the broker starts empty.
    if e.newer or pcfg["on_corrupt"] == "stop":
        broker.persist = None
        raise OSError("persistence: %s%s" % (e, "" if e.newer else " (persistence.on_corrupt = stop)"))
    log("error", "persistence: %s; it was renamed to %s and the broker starts empty" % (e, set_aside()))


MAINTAIN_EVERY = 5      # seconds between the store's maintenance rounds (Sync.due)


class Sync:
    # When a port's Durable writes: sync = commit, a group commit per round before its output
    # (defer, group, commit); interval, every sync_interval seconds (due); none, only at shutdown
    # (close). The port brings the clock value, the store, the scheduling and the closing of
    # connections; this decides when.
    __slots__ = ("persist", "store", "interval", "next_sync", "next_maint", "scheduled", "now")

    def __init__(self, persist, store, interval, now):
        self.persist = persist
        self.store = store
        self.interval = interval
        self.next_sync = now + interval
        self.next_maint = now + MAINTAIN_EVERY
        self.scheduled = False      # a group commit is queued (defer)
        self.now = False            # the group commit is pumping (group)

    def defer(self, schedule, srv):
        # The server's pump: True while this round's changes wait for the group commit;
        # schedule(srv), once, queues the port's task that runs group(srv's pump).
        if self.persist.mode != "commit" or not self.persist.ops or self.now:
            return False
        if not self.scheduled:
            self.scheduled = True
            schedule(srv)
        return True

    def group(self, pump):
        self.scheduled = False
        self.now = True
        try:
            pump()
        finally:
            self.now = False

    def commit(self, dirty, abort):
        # Before a round's output is written (sync = commit). False: the output is dropped and
        # those connections closed with abort(conn) (the ops stay pending; the clients resend).
        p = self.persist
        if p.mode != "commit" or not p.ops:
            return True
        if p.commit(self.store):
            return True
        for c in dirty:
            c.take()
            abort(c)
        return False

    def due(self, now):
        # The port's timer, now by its clock: sync = interval commits here. -> True when the
        # store's maintenance is due.
        p = self.persist
        if p.mode == "interval" and now >= self.next_sync:
            self.next_sync = now + self.interval
            p.commit(self.store)
        if now < self.next_maint:
            return False
        self.next_maint = now + MAINTAIN_EVERY
        return True

    def close(self):
        # A clean shutdown: everything pending is stored (sync = none writes only here).
        try:
            self.persist.commit(self.store)
        finally:
            self.store.close()


def attach(broker, pcfg):
    # broker.persist for a port; the port loads the stored records with broker.persist.load().
    p = Persist(broker, pcfg)
    broker.persist = p
    return p
