# Subscription trie. Routing walks the topic's levels once and collects, per client, the highest
# granted QoS and every subscription identifier, so overlapping subscriptions deliver one copy.


class _Node:
    __slots__ = ("children", "subs", "shared")

    def __init__(self):
        self.children = {}
        self.subs = None      # {clientid: Subscription}
        self.shared = None    # {group: _Group}


class _Group:
    __slots__ = ("members", "next")

    def __init__(self):
        self.members = []     # [Subscription] in join order
        self.next = 0


class Subscription:
    __slots__ = ("clientid", "filter", "qos", "nl", "rap", "rh", "subid", "group")

    def __init__(self, clientid, flt, options, subid, group):
        self.clientid = clientid
        self.filter = flt
        self.qos = options & 3
        self.nl = bool(options & 4)
        self.rap = bool(options & 8)
        self.rh = (options >> 4) & 3
        self.subid = subid
        self.group = group


class Router:
    def __init__(self):
        self.root = _Node()
        self.count = 0
        self._pub = None

    def _node(self, flt, create):
        node = self.root
        for lv in flt.split("/"):
            nxt = node.children.get(lv)
            if nxt is None:
                if not create:
                    return None
                nxt = node.children[lv] = _Node()
            node = nxt
        return node

    def add(self, sub):
        # Returns True when the subscription is new (Retain Handling 1 needs to know).
        node = self._node(sub.filter, True)
        if sub.group is None:
            if node.subs is None:
                node.subs = {}
            new = sub.clientid not in node.subs
            node.subs[sub.clientid] = sub
        else:
            if node.shared is None:
                node.shared = {}
            grp = node.shared.get(sub.group)
            if grp is None:
                grp = node.shared[sub.group] = _Group()
            new = True
            for i, m in enumerate(grp.members):
                if m.clientid == sub.clientid:
                    grp.members[i] = sub
                    new = False
                    break
            else:
                grp.members.append(sub)
        if new:
            self.count += 1
        return new

    def new_group(self, flt, group):
        # How many share groups flt has, or -1 when group is already one of them.
        node = self._node(flt, False)
        if node is None or not node.shared:
            return 0
        return -1 if group in node.shared else len(node.shared)

    def remove(self, clientid, flt, group):
        path = []
        node = self.root
        for lv in flt.split("/"):
            nxt = node.children.get(lv)
            if nxt is None:
                return False
            path.append((node, lv))
            node = nxt
        found = False
        if group is None:
            if node.subs and clientid in node.subs:
                del node.subs[clientid]
                found = True
                if not node.subs:
                    node.subs = None
        elif node.shared and group in node.shared:
            grp = node.shared[group]
            for i, m in enumerate(grp.members):
                if m.clientid == clientid:
                    del grp.members[i]
                    found = True
                    break
            if not grp.members:
                del node.shared[group]
                if not node.shared:
                    node.shared = None
        if found:
            self.count -= 1
            # Prune empty branches so a churn of unique topics does not grow the trie forever.
            while path:
                parent, lv = path.pop()
                if node.children or node.subs or node.shared:
                    break
                del parent.children[lv]
                node = parent
        return found

    def match(self, topic, pick, publisher=None):
        # -> {clientid: [qos, Subscription-with-max-qos, subids or None]}
        # pick(group_members, start) chooses the shared-subscription member (round robin over
        # connected sessions); it returns an index or -1.
        out = {}
        levels = topic.split("/")
        dollar = topic[:1] == "$"
        self._pub = publisher
        self._walk(self.root, levels, 0, len(levels), dollar, out, pick)
        return out

    def _walk(self, node, levels, i, n, dollar, out, pick):
        ch = node.children
        if i == n:
            self._collect(node, out, pick)
            # "a/#" also matches "a"
            h = ch.get("#")
            if h is not None:
                self._collect(h, out, pick)
            return
        if not (dollar and i == 0):
            h = ch.get("#")
            if h is not None:
                self._collect(h, out, pick)
            p = ch.get("+")
            if p is not None:
                self._walk(p, levels, i + 1, n, dollar, out, pick)
        nxt = ch.get(levels[i])
        if nxt is not None:
            self._walk(nxt, levels, i + 1, n, dollar, out, pick)

    def _collect(self, node, out, pick):
        subs = node.subs
        if subs:
            pub = self._pub
            for cid, s in subs.items():
                # No Local: a client's own messages skip its NL subscriptions only.
                if s.nl and cid == pub:
                    continue
                _merge(out, cid, s)
        if node.shared:
            for grp in node.shared.values():
                members = grp.members
                k = pick(members, grp.next)
                if k >= 0:
                    grp.next = k + 1
                    s = members[k]
                    _merge(out, s.clientid, s)


def _merge(out, cid, s):
    cur = out.get(cid)
    if cur is None:
        out[cid] = [s.qos, s, None if s.subid is None else [s.subid]]
        return
    if s.qos > cur[0]:
        cur[0] = s.qos
        cur[1] = s
    if s.subid is not None:
        if cur[2] is None:
            cur[2] = [s.subid]
        else:
            cur[2].append(s.subid)
