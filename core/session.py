# Per-client session state that outlives a connection: subscriptions, the outgoing QoS 1/2 window,
# the offline queue and incoming QoS 2 packet ids awaiting PUBREL.
from collections import OrderedDict


class Delivery:
    # One message on its way to one session: queued, then (QoS 1/2) in flight under a packet id.
    __slots__ = ("msg", "qos", "retain", "subids", "phase", "seq")

    def __init__(self, msg, qos, retain, subids):
        self.msg = msg
        self.qos = qos
        self.retain = retain
        self.subids = subids
        self.phase = 0        # 1: PUBREC came back and PUBREL went out (QoS 2)
        self.seq = 0          # its record's key in the offline queue (gatemq.persist), 0: none


class Session:
    # Scalar defaults live on the class, as in Connection: a MicroPython instance pays per
    # attribute it sets, and most sessions never change these.
    next_pid = 1
    conn = None
    expiry = 0                         # Session Expiry Interval in seconds; None = never
    expire_at = None                   # set while disconnected
    will = None                        # (Message, fire_at) of a delayed will while disconnected
    drop_log = None                    # logline.Throttle of queue-full lines, made at the first drop
    owner = None                       # who made it: (username, certificate identity) of that CONNECT
    holding = None                     # publishers paused while this queue is backed up (flow control)
    slow = False                       # held a publisher past flow_control_timeout: holds none until drained

    def __init__(self, clientid):
        self.clientid = clientid
        self.subs = {}                 # full filter (with $share/...) -> Subscription
        self.inflight = OrderedDict()  # pid -> Delivery, in the order sent
        self.queue = []                # Delivery waiting for the window or a connection
        self.awaiting_rel = {}         # pid -> time the PUBLISH arrived (incoming QoS 2)

    def alloc_pid(self):
        pid = self.next_pid
        inflight = self.inflight
        # The window is far smaller than 65535, so this loop ends within a few steps.
        while pid in inflight:
            pid = pid + 1 if pid < 65535 else 1
        self.next_pid = pid + 1 if pid < 65535 else 1
        return pid

    def enqueue(self, item, max_len, store_qos0):
        # Returns the dropped item when the bounded queue overflowed (oldest first, QoS 0 first), or None.
        if item.qos == 0 and not store_qos0:
            return item
        q = self.queue
        if max_len is None or len(q) < max_len:
            q.append(item)
            return None
        if max_len == 0:
            return item
        for i in range(len(q)):
            if q[i].qos == 0:
                dropped = q.pop(i)
                q.append(item)
                return dropped
        if item.qos == 0:
            return item
        dropped = q.pop(0)
        q.append(item)
        return dropped
