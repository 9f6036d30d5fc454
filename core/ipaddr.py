# IP addresses and prefixes as text: the one parser the config (binds), the listener defaults
# (loopback) and the ACL rules (ipaddr/ipaddrs) share. Addresses are (version, int) pairs;
# IPv4-mapped IPv6 addresses (::ffff:a.b.c.d) count as IPv4.


def parse(text):
    # "192.0.2.1", "2001:db8::1", "::ffff:10.0.0.1" -> (4 or 6, int); None when not an address.
    if ":" not in text:
        parts = text.split(".")
        if len(parts) != 4:
            return None
        n = 0
        for p in parts:
            if not p.isdigit() or len(p) > 3 or int(p) > 255:
                return None
            n = n * 256 + int(p)
        return (4, n)
    if text.count("::") > 1:
        return None
    tail4 = None
    if "." in text:
        k = text.rfind(":")
        tail4 = parse(text[k + 1:])
        if tail4 is None or tail4[0] != 4:
            return None
        text = text[:k + 1] + "0:0"
    if "::" in text:
        a, b = text.split("::")
        left = a.split(":") if a else []
        right = b.split(":") if b else []
        if len(left) + len(right) > 7:
            return None
        groups = left + ["0"] * (8 - len(left) - len(right)) + right
    else:
        groups = text.split(":")
    if len(groups) != 8:
        return None
    n = 0
    for g in groups:
        if not g or len(g) > 4:
            return None
        for c in g.lower():
            if not ("0" <= c <= "9" or "a" <= c <= "f"):
                return None
        n = n * 65536 + int(g, 16)
    if tail4 is not None:
        n = n - (n & 0xFFFFFFFF) + tail4[1]
    if n >> 32 == 0xFFFF:
        return (4, n & 0xFFFFFFFF)
    return (6, n)


def parse_prefix(text):
    # "10.0.0.0/8", "2001:db8::/32" or a bare address (a full-length prefix) -> (version, network,
    # mask). Raises ValueError naming what is wrong.
    if "/" in text:
        addr, bits = text.split("/", 1)
    else:
        addr, bits = text, None
    ip = parse(addr)
    if ip is None:
        raise ValueError("%r is not an IP address" % addr)
    width = 32 if ip[0] == 4 else 128
    if bits is None:
        n = width
    elif bits.isdigit() and int(bits) <= width:
        n = int(bits)
    else:
        raise ValueError("%r is not a prefix length for IPv%d" % (bits, ip[0]))
    mask = ((1 << width) - 1) ^ ((1 << (width - n)) - 1)
    return (ip[0], ip[1] & mask, mask)


def in_prefix(host, prefix):
    # host: address text (or None); prefix: from parse_prefix.
    ip = parse(host or "")
    return ip is not None and ip[0] == prefix[0] and ip[1] & prefix[2] == prefix[1]


def is_loopback(host):
    # A listener's bind host: "localhost", 127.0.0.0/8, ::1 (with or without brackets).
    if host is None:
        return False
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    ip = parse(host)
    if ip is None:
        return False
    return ip[1] >> 24 == 127 if ip[0] == 4 else ip[1] == 1
