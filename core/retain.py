# Retained messages: one per topic, replaced by a newer one, deleted by an empty payload.
from gatemq.topic import matches


class RetainStore:
    def __init__(self, max_messages=None):
        self.msgs = {}
        self.max_messages = max_messages

    def put(self, msg):
        # Returns False when the store is full and the message was not kept.
        if not msg.payload:
            self.msgs.pop(msg.topic, None)
            return True
        if self.max_messages is not None and msg.topic not in self.msgs and len(self.msgs) >= self.max_messages:
            return False
        self.msgs[msg.topic] = msg
        return True

    def match(self, flt, now):
        out = []
        dead = None
        for topic, msg in self.msgs.items():
            if matches(flt, topic):
                if msg.expired(now):
                    if dead is None:
                        dead = []
                    dead.append(topic)
                else:
                    out.append(msg)
        if dead:
            for t in dead:
                del self.msgs[t]
        return out

    def __len__(self):
        return len(self.msgs)
