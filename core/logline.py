# What goes into a log line and how often: identifiers a client chose are cut short and escaped,
# and a flood of like lines becomes one line per interval with a count. A refused CONNECT used to
# log its client id and username whole (64 KB each), twice, unthrottled: one unauthenticated client
# wrote ~280 MB/s of log, which fills a gateway's SD card in minutes.

# Longest identifier (client id, username, topic) shown in a log line, in characters.
IDENT_MAX = 128
# The default period of a Throttle, in seconds of the injected clock.
INTERVAL = 10


def ident(v):
    # repr() escapes quotes and control characters, so a client id cannot forge a log line.
    if v is None:
        return "None"
    n = len(v)
    if n > IDENT_MAX:
        return "%r...(%d %s)" % (v[:IDENT_MAX], n, "bytes" if isinstance(v, (bytes, bytearray)) else "chars")
    return repr(v)


class Throttle:
    # At most `burst` lines per `interval`; what it holds back is counted and reported by the next
    # line it lets through. Driven by the caller's clock, so tests use a fake one.
    __slots__ = ("interval", "burst", "left", "until", "held")

    def __init__(self, interval=INTERVAL, burst=1):
        self.interval = interval
        self.burst = burst
        self.left = 0
        self.until = None
        self.held = 0

    def allow(self, now):
        # -> None when the line is held back, else how many were held back since the last one.
        if self.until is None or now >= self.until:
            self.until = now + self.interval
            self.left = self.burst
        if self.left <= 0:
            self.held += 1
            return None
        self.left -= 1
        n = self.held
        self.held = 0
        return n


def more(n, what="held back"):
    # The suffix of a line that a Throttle let through: how many like it were not written.
    return "; %d more %s since the last such line" % (n, what) if n else ""
