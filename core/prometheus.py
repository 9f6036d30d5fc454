# GET /api/v5/prometheus/stats: the broker's gauges and counters in the Prometheus text format
# (version 0.0.4), under EMQX's metric names with the gatemq_ prefix (emqx_messages_received ->
# gatemq_messages_received). Sans-IO and shared by both ports: it reads the broker through the
# management facade (snapshot, counters, listener_connections) and the listeners the port runs.
#
#     text = prometheus.render(broker, listeners, read_file)
#     # listeners: [(id, kind, name, lcfg, (host, port))] as gatemq.admin.Api gets them;
#     # read_file(path) -> bytes, for the server certificates' expiry (None: left out)
from gatemq import der

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

# (key of broker.counters() or snapshot(), HELP). The metric is named as EMQX names it: the
# key with _ for . (messages.qos0.received -> gatemq_messages_qos0_received).
_GAUGES = (
    ("connections.count", "Connections open now (MQTT, after the handshake)"),
    ("connections.max", "The most connections open at once since start"),
    ("live_connections.count", "Connected clients (CONNACK sent)"),
    ("sessions.count", "Sessions, connected and persistent"),
    ("subscriptions.count", "Subscriptions"),
    ("retained.count", "Retained messages stored"),
)
_COUNTERS = (
    ("messages.received", "Messages received (PUBLISH from clients, wills and $SYS)"),
    ("messages.sent", "Messages sent to subscribers"),
    ("messages.qos0.received", "QoS 0 messages received"),
    ("messages.qos1.received", "QoS 1 messages received"),
    ("messages.qos2.received", "QoS 2 messages received"),
    ("messages.qos0.sent", "QoS 0 messages sent"),
    ("messages.qos1.sent", "QoS 1 messages sent"),
    ("messages.qos2.sent", "QoS 2 messages sent"),
    ("messages.dropped", "Messages dropped"),
    ("delivery.dropped.queue_full", "QoS 1/2 messages dropped from a full session queue (max_mqueue_len)"),
    ("delivery.dropped.qos0_msg", "QoS 0 messages dropped from a full session queue"),
    ("retained.dropped", "Retained messages refused by the retainer limits"),
    ("bytes.received", "MQTT bytes received"),
    ("bytes.sent", "MQTT bytes sent"),
    ("authentication.success", "Clients the authentication chain allowed"),
)


def _esc(v):
    return str(v).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _num(v):
    if type(v) is float:
        return "%.17g" % v
    return "%d" % v


def _family(out, name, kind, help_, samples):
    # samples: [(labels string, value)]
    out.append("# HELP gatemq_%s %s\n# TYPE gatemq_%s %s\n" % (name, help_, name, kind))
    for labels, v in samples:
        out.append("gatemq_%s%s %s\n" % (name, labels, _num(v)))


def _by_prefix(counters, prefix, label):
    n = len(prefix)
    return [('{%s="%s"}' % (label, _esc(k[n:])), v) for k, v in sorted(counters.items()) if k.startswith(prefix)]


def cert_not_after(data):
    # A certificate file (PEM: its first certificate; or DER) -> notAfter in epoch seconds.
    if data[:1] != b"\x30":
        data = der.pem_to_der(data, "CERTIFICATE", True)
    return der.parse_certificate(data).not_after


def render(broker, listeners, read_file=None, short=False):
    # short: the gauges and the message counters only (a board short of heap); may be a function.
    if callable(short):
        short = short()
    snap = broker.snapshot()
    counters = broker.counters()
    out = []
    for key, help_ in _GAUGES:
        _family(out, key.replace(".", "_"), "gauge", help_, [("", snap.get(key, 0))])
    _family(out, "listener_connections_count", "gauge", "Connections open now, by listener",
            [('{listener="%s",type="%s",name="%s"}' % (_esc(lid), kind, _esc(name)),
              broker.listener_connections(lid)) for lid, kind, name, lc, bound in listeners])
    for key, help_ in _COUNTERS[:9] if short else _COUNTERS:
        v = counters.get(key, snap.get(key, 0))
        _family(out, key.replace(".", "_"), "counter", help_, [("", v)])
    if short:
        return "".join(out)
    fails = _by_prefix(counters, "authentication.failure.", "reason")
    _family(out, "authentication_failure", "counter",
            "Refused logins: bad credentials, not authorized, banned, and TLS client certificate refusals",
            [("", sum(v for _, v in fails))])
    _family(out, "authentication_failure_by_reason", "counter",
            "Refused logins by reason word (the log's word: bad_username_or_password, revoked, "
            "unknown_ca, ext_key_usage, no_peer_cert, ...)", fails)
    denies = _by_prefix(counters, "authorization.deny.", "action")
    _family(out, "authorization_deny", "counter", "Publishes and subscriptions the ACL denied",
            [("", sum(v for _, v in denies))])
    _family(out, "authorization_deny_by_action", "counter", "ACL denials by action", denies)
    bridges = getattr(broker, "bridges", None)
    if bridges:
        # gatemq.bridge.Bridge objects (bridges.mqtt): state and store-and-forward queue.
        lab = [('{bridge="%s"}' % _esc(br.id), br) for br in bridges]
        _family(out, "bridge_status", "gauge", "1 while the bridge is connected upstream, else 0",
                [(l, 1 if br.state == "connected" else 0) for l, br in lab])
        _family(out, "bridge_queue_depth", "gauge", "Messages waiting to go upstream (store-and-forward queue)",
                [(l, len(br.queue)) for l, br in lab])
        for name, attr, help_ in (("bridge_messages_sent", "sent", "Messages the bridge sent upstream"),
                                  ("bridge_messages_received", "received", "Messages the bridge brought down"),
                                  ("bridge_messages_dropped", "dropped", "Messages the bridge's queue dropped")):
            _family(out, name, "counter", help_, [(l, getattr(br, attr, 0)) for l, br in lab])
    pst = getattr(broker, "persist", None)
    if pst:
        # Each commit is one write and one sync of the store (with sync = commit, before the
        # acknowledgements of its round go out): their count and total time give the latency.
        out.append("# HELP gatemq_persistence_commit_seconds Time of the persistence store's commits "
                   "(one write and one sync each)\n# TYPE gatemq_persistence_commit_seconds summary\n"
                   "gatemq_persistence_commit_seconds_sum %s\ngatemq_persistence_commit_seconds_count %s\n"
                   % (_num(pst.commit_seconds), _num(pst.commits)))
        if pst.store_size is not None:
            _family(out, "persistence_store_bytes", "gauge", "Bytes the persistence store takes on disk",
                    [("", pst.store_size())])
    if read_file is not None:
        certs = []
        for lid, kind, name, lc, bound in listeners:
            so = lc.get("ssl_options")
            if not so or not so.get("certfile"):
                continue
            try:
                t = cert_not_after(read_file(so["certfile"]))
            except Exception:
                continue
            certs.append(('{listener_type="%s",listener_name="%s"}' % (kind, _esc(name)), t))
        _family(out, "cert_expiry_at", "gauge", "Each TLS listener's server certificate notAfter, epoch seconds",
                certs)
    return "".join(out)
