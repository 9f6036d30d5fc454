# Retained messages: one per topic, replaced by a newer one, deleted by an empty payload.
#
# Indexed by topic levels, so a SUBSCRIBE costs what it matches, not the size of the store: an
# exact filter is one walk down its levels, a wildcard visits only the branches that can match.
# (Scanning every retained message per filter made 2,000 subscribes against 50,000 retained
# topics take 45 s, and one SUBSCRIBE with 20,000 filters froze the broker for 70 s.)
#
# The trie is plain dicts, compressed at the leaves to stay close to a flat {topic: msg} in memory:
#   node[level] -> Message   the only retained message under that branch (its topic has this prefix
#                            and may be longer); it becomes a node when a second topic joins it
#   node[level] -> dict      a deeper node
#   node[None]  -> Message   the message whose topic ends at this node ("a" next to "a/b")
# so a store of dev/<n>/status holds one dict "dev" with a level string per message; deleting
# collapses single-message branches back into leaves.
#
# Message expiry is lazy: an expired message met by a lookup is removed then, and messages with an
# expiry are also kept in a heap by expiry time so purge(now) (the broker's timer, and a full store
# before it refuses a new topic) removes the expired ones without walking the store.
from gatemq.topic import matches

try:
    from heapq import heappush, heappop
except ImportError:  # a MicroPython build without heapq
    def heappush(h, x):
        h.append(x)
        i = len(h) - 1
        while i:
            j = (i - 1) >> 1
            if h[j] <= x:
                break
            h[i] = h[j]
            i = j
        h[i] = x

    def heappop(h):
        last = h.pop()
        if not h:
            return last
        top = h[0]
        n = len(h)
        i = 0
        while True:
            c = 2 * i + 1
            if c >= n:
                break
            if c + 1 < n and h[c + 1] < h[c]:
                c += 1
            if last <= h[c]:
                break
            h[i] = h[c]
            i = c
        h[i] = last
        return top


# put() outcomes
KEPT = 0          # stored, replaced or deleted
FULL = 1          # a new topic past max_messages
TOO_LARGE = 2     # payload over max_payload
REFUSED = 3       # a new topic admit() refused (the MicroPython port's heap floor)


class RetainStore:
    def __init__(self, max_messages=None, max_payload=None):
        self.root = {}
        self.count = 0
        self.max_messages = max_messages   # None: no limit
        self.max_payload = max_payload     # bytes, None: no limit
        self._exp = []                     # heap of (expire_at, seq, msg); stale entries skipped
        self._seq = 0
        self.expiring = 0                  # stored messages that have an expiry

    def admit(self, msg):
        # Hook for a port: False refuses a retained message on a new topic (the MicroPython port
        # keeps a part of its heap out of reach of retained messages this way). Replacing or
        # deleting a stored message never asks.
        return True

    # ---- lookups ----

    def get(self, topic):
        # The stored message for exactly this topic, or None (expired ones included).
        d = self.root
        for lv in topic.split("/"):
            v = d.get(lv)
            if v is None:
                return None
            if type(v) is not dict:
                return v if v.topic == topic else None
            d = v
        return d.get(None)

    def __contains__(self, topic):
        return self.get(topic) is not None

    def __len__(self):
        return self.count

    def match(self, flt, now):
        # Every stored, unexpired message whose topic matches the filter (MQTT 5 section 4.7:
        # a filter starting with a wildcard does not match topics starting with "$").
        out = []
        if "+" not in flt and "#" not in flt:
            m = self.get(flt)
            if m is not None:
                if m.expired(now):
                    self._delete(m.topic, m)
                else:
                    out.append(m)
            return out
        fl = flt.split("/")
        n = len(fl)
        stack = [(self.root, 0)]
        while stack:
            d, i = stack.pop()
            f = fl[i]
            if f == "#":
                self._all(d, i == 0, out)
                continue
            if f == "+":
                level = [v for k, v in d.items() if k is not None and not (i == 0 and k[:1] == "$")]
            else:
                v = d.get(f)
                level = () if v is None else (v,)
            for v in level:
                if type(v) is dict:
                    if i + 1 < n:
                        stack.append((v, i + 1))
                    else:
                        v = v.get(None)
                        if v is not None:
                            out.append(v)
                elif matches(flt, v.topic):
                    out.append(v)
        if self.expiring:
            live = []
            for m in out:
                if m.expired(now):
                    self._delete(m.topic, m)
                else:
                    live.append(m)
            out = live
        return out

    def _all(self, d, top, out):
        # Every message under node d ("#"); at the top level not the "$" topics.
        stack = [d]
        while stack:
            d = stack.pop()
            for k, v in d.items():
                if top and k is not None and k[:1] == "$":
                    continue
                if type(v) is dict:
                    stack.append(v)
                else:
                    out.append(v)
            top = False

    # ---- changes ----

    def put(self, msg, now=None):
        # Stores, replaces or (empty payload) deletes; -> KEPT, or why not. A refused
        # message leaves what was stored under its topic untouched.
        topic = msg.topic
        if not msg.payload:
            self._delete(topic, None)
            return KEPT
        mp = self.max_payload
        if mp is not None and len(msg.payload) > mp:
            return TOO_LARGE
        old = self.get(topic)
        if old is None:
            mx = self.max_messages
            if mx is not None and self.count >= mx:
                if now is None or not self.expiring or not self.purge(now) or self.count >= mx:
                    return FULL
            if not self.admit(msg):
                return REFUSED
        self._insert(topic, msg)
        if old is not None and old.expire_at is not None:
            self.expiring -= 1
        if msg.expire_at is not None:
            self.expiring += 1
            self._seq += 1
            heappush(self._exp, (msg.expire_at, self._seq, msg))
            if len(self._exp) > 2 * self.expiring + 64:
                self._rebuild()
        return KEPT

    def purge(self, now):
        # Removes the expired messages; -> how many. Costs the expired ones, not the store.
        h = self._exp
        k = 0
        while h and h[0][0] <= now:
            m = heappop(h)[2]
            if self.get(m.topic) is m:
                self._delete(m.topic, m)
                k += 1
        return k

    def _rebuild(self):
        # Replaced messages leave their heap entries behind; past twice the live ones the heap is
        # rebuilt from what is still stored.
        live = []
        for e in self._exp:
            if self.get(e[2].topic) is e[2]:
                live.append(e)
        live.sort()
        self._exp = live   # a sorted list is a heap

    def _insert(self, topic, msg):
        levels = topic.split("/")
        n = len(levels)
        d = self.root
        i = 0
        while True:
            lv = levels[i]
            cur = d.get(lv)
            if cur is None:
                d[lv] = msg
                self.count += 1
                return
            i += 1
            if type(cur) is not dict:
                if cur.topic == topic:
                    d[lv] = msg
                    return
                # Split the leaf: the message there moves one level down.
                sub = {}
                ct = cur.topic.split("/")
                sub[ct[i] if i < len(ct) else None] = cur
                d[lv] = sub
                cur = sub
            if i == n:
                if cur.get(None) is None:
                    self.count += 1
                cur[None] = msg
                return
            d = cur

    def _delete(self, topic, only):
        # Removes the message for topic (only that very message when only is not None) and
        # collapses what became a single-message branch back into a leaf.
        levels = topic.split("/")
        path = []
        d = self.root
        for lv in levels:
            v = d.get(lv)
            if v is None:
                return False
            if type(v) is not dict:
                if v.topic != topic or (only is not None and v is not only):
                    return False
                del d[lv]
                self._gone(v)
                break
            path.append((d, lv))
            d = v
        else:
            v = d.get(None)
            if v is None or (only is not None and v is not only):
                return False
            del d[None]
            self._gone(v)
        # d is the node that lost an entry; fold it up while it is empty or a single leaf.
        while path:
            parent, lv = path.pop()
            node = parent[lv]
            if not node:
                del parent[lv]
                continue
            if len(node) == 1:
                v = next(iter(node.values()))
                if type(v) is not dict:
                    parent[lv] = v
                    continue
            break
        return True

    def _gone(self, m):
        self.count -= 1
        if m.expire_at is not None:
            self.expiring -= 1
