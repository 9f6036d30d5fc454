# Topic names and filters: validation, shared-subscription parsing and matching (MQTT 5 section 4.7/4.8).


def valid_name(topic, max_levels=128):
    # A topic name carries no wildcards; it may be empty only with a topic alias (checked by the caller).
    if not topic or "+" in topic or "#" in topic:
        return False
    return topic.count("/") < max_levels


def valid_filter(flt, max_levels=128):
    if not flt:
        return False
    levels = flt.split("/")
    if len(levels) > max_levels:
        return False
    last = len(levels) - 1
    for i, lv in enumerate(levels):
        if "#" in lv:
            if lv != "#" or i != last:
                return False
        elif "+" in lv and lv != "+":
            return False
    return True


def is_wildcard(flt):
    return "+" in flt or "#" in flt


def split_share(flt):
    # "$share/<group>/<filter>" -> (group, filter); anything else -> (None, flt).
    # Returns (False, reason) style errors as group "" so the caller can refuse with 0x8F.
    if not flt.startswith("$share/"):
        return None, flt
    rest = flt[7:]
    i = rest.find("/")
    if i <= 0:
        return "", flt
    group = rest[:i]
    if "+" in group or "#" in group:
        return "", flt
    return group, rest[i + 1:]


def matches(flt, topic, subscribe=False):
    # The one filter matcher outside the router's trie walk (retained messages, ACL rules; the
    # router's walk is cross-checked against it in tests/core/test_topic_router.py).
    # topic: a topic name; with subscribe, a subscription's own filter, whose "+" or "#" is
    # covered only by a wildcard of flt at least as wide, so "t/+" does not cover "t/#".
    fl = flt.split("/")
    tl = topic.split("/")
    if tl[0][:1] == "$" and fl[0] in ("+", "#"):
        return False  # MQTT 4.7.2: wildcards at the first level never match $-topics
    n = len(tl)
    for i, f in enumerate(fl):
        if f == "#":
            return True
        if i >= n:
            return False
        t = tl[i]
        if subscribe and (t == "#" or (t == "+" and f != "+")):
            return False
        if f != "+" and f != t:
            return False
    return len(fl) == n
