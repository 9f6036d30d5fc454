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


def matches(flt, topic):
    # Used for retained messages and ACL rules; the router has its own trie walk for routing.
    if topic[:1] == "$" and flt[:1] in ("+", "#"):
        return False
    fl = flt.split("/")
    tl = topic.split("/")
    n = len(tl)
    for i, f in enumerate(fl):
        if f == "#":
            return True
        if i >= n:
            return False
        if f != "+" and f != tl[i]:
            return False
    return len(fl) == n
