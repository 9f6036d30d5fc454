# Hypothesis fuzzing of the packet codec: random packets round-trip exactly, and random or mutated
# bytes fed to Reader + decode only ever raise the codec's documented errors.
from hypothesis import HealthCheck, given, settings, strategies as st

from gatemq import codec as c
from gatemq import props as P
from gatemq.errors import MalformedPacket, ProtocolError

FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])

texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)
blobs = st.binary(max_size=40)
pids = st.integers(1, 0xFFFF)


def prop_values(ptype, pid):
    name, typ, allowed, lo, hi = P.SPEC[pid]
    if typ == P.T_PAIR:
        return st.lists(st.tuples(texts, texts), min_size=1, max_size=3)
    if pid == P.P_SUBSCRIPTION_ID:
        ints = st.integers(1, P.VARINT_MAX)
        if ptype == c.PUBLISH:
            return st.lists(ints, min_size=1, max_size=3)
        return st.lists(ints, min_size=1, max_size=1)
    if typ == P.T_STR:
        return texts
    if typ == P.T_BIN:
        return blobs
    top = {P.T_BYTE: 0xFF, P.T_TWO: 0xFFFF, P.T_FOUR: 0xFFFFFFFF, P.T_VARINT: P.VARINT_MAX}[typ]
    return st.integers(lo if lo is not None else 0, hi if hi is not None else top)


def props_for(ptype):
    ids = [pid for pid, spec in sorted(P.SPEC.items()) if spec[2] & (1 << ptype)]

    @st.composite
    def build(draw):
        chosen = draw(st.lists(st.sampled_from(ids), unique=True, max_size=4))
        if not chosen:
            return None
        if P.P_AUTH_DATA in chosen and P.P_AUTH_METHOD not in chosen:
            chosen.append(P.P_AUTH_METHOD)  # data without a method is a protocol error
        return {pid: draw(prop_values(ptype, pid)) for pid in chosen}

    return build()


@st.composite
def packets(draw, version):
    v5 = version == c.MQTT5

    def props(ptype):
        return draw(props_for(ptype)) if v5 else None

    kind = draw(st.sampled_from(["connect", "connack", "publish", "ack", "subscribe", "suback",
                                 "unsubscribe", "unsuback", "ping", "disconnect", "auth"]))
    if kind == "connect":
        will = None
        if draw(st.booleans()):
            will = c.Will(draw(texts), draw(blobs), draw(st.integers(0, 2)), draw(st.booleans()),
                          props(P.WILL))
        user = draw(st.none() | texts)
        pw = draw(st.none() | blobs) if (user is not None or v5) else None
        return c.Connect(draw(texts), version, draw(st.booleans()), draw(st.integers(0, 0xFFFF)),
                         will, user, pw, props(c.CONNECT))
    if kind == "connack":
        rc = draw(st.sampled_from(sorted(c._RC_CONNACK5))) if v5 else draw(st.integers(0, 5))
        # MQTT 3.1 has no Session Present flag.
        return c.Connack(version != c.MQTT31 and draw(st.booleans()), rc, props(c.CONNACK))
    if kind == "publish":
        qos = draw(st.integers(0, 2))
        pr = props(c.PUBLISH)
        topic = draw(texts)
        if not topic and not (pr and c.P_TOPIC_ALIAS in pr):
            topic = "t"
        return c.Publish(topic, draw(blobs), qos, draw(st.booleans()), qos > 0 and draw(st.booleans()),
                         draw(pids) if qos else None, pr)
    if kind == "ack":
        t = draw(st.sampled_from([c.PUBACK, c.PUBREC, c.PUBREL, c.PUBCOMP]))
        rc = draw(st.sampled_from(sorted(c._RC_ACK[t]))) if v5 else 0
        return c.Ack(t, draw(pids), rc, props(t))
    if kind == "subscribe":
        opt = st.integers(0, 0x3F).filter(lambda o: o & 3 != 3 and o & 0x30 != 0x30) if v5 \
            else st.integers(0, 2)
        topics = draw(st.lists(st.tuples(texts, opt), min_size=1, max_size=4))
        topics = [(f, o & ~4 if f.startswith("$share/") else o) for f, o in topics]
        return c.Subscribe(draw(pids), topics,
                           props(c.SUBSCRIBE))
    if kind == "suback":
        codes = sorted(c._RC_SUBACK5 if v5 else c._RC_SUBACK3)
        return c.Suback(draw(pids), draw(st.lists(st.sampled_from(codes), min_size=1, max_size=4)),
                        props(c.SUBACK))
    if kind == "unsubscribe":
        return c.Unsubscribe(draw(pids), draw(st.lists(texts, min_size=1, max_size=4)),
                             props(c.UNSUBSCRIBE))
    if kind == "unsuback":
        codes = draw(st.lists(st.sampled_from(sorted(c._RC_UNSUBACK)), min_size=1, max_size=4)) \
            if v5 else []
        return c.Unsuback(draw(pids), codes, props(c.UNSUBACK))
    if kind == "ping":
        return draw(st.sampled_from([c.Pingreq(), c.Pingresp()]))
    if kind == "disconnect":
        if not v5:
            return c.Disconnect()
        return c.Disconnect(draw(st.sampled_from(sorted(c._RC_DISCONNECT))), props(c.DISCONNECT))
    if not v5:
        return c.Pingreq()
    return c.Auth(draw(st.sampled_from(sorted(c._RC_AUTH))), props(c.AUTH))


versions = st.sampled_from([c.MQTT31, c.MQTT311, c.MQTT5])


def decode_all(data, version, max_size=None):
    # What a broker does with untrusted bytes: frame, then decode each packet.
    out = []
    for fb, body in c.Reader(max_size).feed(data):
        out.append(c.decode(fb, body, version))
    return out


def only_codec_errors(data, version, max_size=None):
    try:
        decode_all(data, version, max_size)
    except (MalformedPacket, ProtocolError) as e:
        assert 0x80 <= e.reason <= 0xA2, e.reason
        assert str(e)


@FUZZ
@given(st.data(), versions)
def test_random_packets_round_trip(data, version):
    pkt = data.draw(packets(version))
    wire = c.encode(pkt, version)
    [out] = decode_all(wire, None if pkt.ptype == c.CONNECT else version)
    assert out == pkt


@FUZZ
@given(st.binary(max_size=200), st.sampled_from([None, c.MQTT31, c.MQTT311, c.MQTT5]),
       st.sampled_from([None, 20, 1000]))
def test_random_bytes_only_raise_codec_errors(data, version, max_size):
    only_codec_errors(data, version, max_size)


@FUZZ
@given(st.integers(0, 15), st.integers(0, 15), st.binary(max_size=60),
       st.sampled_from([None, c.MQTT311, c.MQTT5]))
def test_random_bodies_of_every_type(ptype, flags, body, version):
    # Random bytes behind a well-formed fixed header reach every decoder's body parsing.
    only_codec_errors(bytes(((ptype << 4) | flags,)) + c.varint(len(body)) + body, version)


@st.composite
def mutated(draw):
    version = draw(versions)
    pkt = draw(packets(version))
    wire = bytearray(c.encode(pkt, version))
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "cut", "extend", "insert", "delete"]))
        i = draw(st.integers(0, max(0, len(wire) - 1)))
        if op == "flip" and wire:
            wire[i] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and wire:
            wire[i] = draw(st.integers(0, 255))
        elif op == "cut":
            del wire[i:]
        elif op == "extend":
            wire += draw(st.binary(min_size=1, max_size=8))
        elif op == "insert":
            wire[i:i] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete":
            del wire[i:i + draw(st.integers(1, 4))]
    target = None if pkt.ptype == c.CONNECT else version
    return bytes(wire), target


@FUZZ
@given(mutated())
def test_mutated_packets_only_raise_codec_errors(case):
    wire, version = case
    only_codec_errors(wire, version)
    # A body whose length field was mutated is still checked against its own fixed header.
    if len(wire) > 2:
        only_codec_errors(bytes((wire[0],)) + c.varint(len(wire) - 2) + wire[2:], version)


@FUZZ
@given(st.data(), versions)
def test_any_chunking_gives_the_same_packets(data, version):
    pkts = data.draw(st.lists(packets(version), min_size=1, max_size=5))
    pkts = [p for p in pkts if p.ptype != c.CONNECT]
    wire = b"".join(c.encode(p, version) for p in pkts)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(wire)), max_size=6)))
    r = c.Reader(None)
    got = []
    prev = 0
    for cut in cuts + [len(wire)]:
        got += r.feed(wire[prev:cut])
        prev = cut
    assert [c.decode(fb, body, version) for fb, body in got] == pkts
