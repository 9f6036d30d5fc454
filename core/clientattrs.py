# Client attributes as EMQX 5.7+ makes them (mqtt.client_attrs_init, mqtt.clientid_override): the
# step of a CONNECT that evaluates them; their config types are gatemq.config's. The connection
# imports this module, and it the evaluator (gatemq.variform), only when the config holds an
# expression: on a board the config modules are dropped after start, and this stays out of them.
#
# Bindings (EMQX's names): clientid, username, cn and cert_common_name, dn and cert_subject,
# peerhost and ip_address, port, listener, zone, user_property.NAME (MQTT 5 CONNECT), peersni (when
# the port knows the SNI), client_attrs.NAME (the attributes set by earlier rows), and the
# certificate's subjectAltName entries cert_san.dns, cert_san.ip, cert_san.email, cert_san.uri
# (several of one kind joined with ","; an IPv6 address as OpenSSL prints
# it: eight groups of uppercase hex). The certificate ones are bound only with a certificate.
from gatemq.logline import ident


_forms = {}  # expression text -> compiled form (the config's few expressions)


def _form(text):
    f = _forms.get(text)
    if f is None:
        from gatemq import variform
        f = _forms[text] = variform.compile(text)
    return f


def _san(der):
    from gatemq import der as d
    cert = d.parse_certificate(der)
    out = {}
    for kind, v in cert.subject_alt_names:
        if kind == "ip":
            v = _ip_text(v)
        if kind in out:
            out[kind] += "," + v
        else:
            out[kind] = v
    return out


def _ip_text(b):
    # IPv4 dotted; IPv6 as eight groups of uppercase hex, not shortened (as OpenSSL prints them).
    if len(b) == 4:
        return "%d.%d.%d.%d" % (b[0], b[1], b[2], b[3])
    return ":".join(["%X" % (b[i] << 8 | b[i + 1]) for i in range(0, 16, 2)])


def bindings(c, props=None):
    b = {"clientid": c.clientid or "", "username": c.username, "peerhost": c.peerhost,
         "ip_address": c.peerhost, "port": c.peerport, "listener": c.listener, "zone": "default",
         "client_attrs": c.client_attrs}
    sni = getattr(getattr(c, "handle", None), "peersni", None)    # the port's: the TLS server name (SNI)
    if sni:
        b["peersni"] = sni
    up = {}
    if props:
        from gatemq.props import P_USER_PROPERTY
        for k, v in props.get(P_USER_PROPERTY) or ():
            if k not in up:
                up[k] = v
    b["user_property"] = up
    if c.peer_cert is not None:
        b["cn"] = b["cert_common_name"] = c.cert_cn
        b["dn"] = b["cert_subject"] = c.cert_dn
        try:
            b["cert_san"] = _san(c.peer_cert)
        except Exception:
            b["cert_san"] = {}
    return b


def reading(m, names):
    # -> the first config key of mqtt (clientid_override, client_attrs_init.N.expression) whose
    # expression reads one of names, and that name; None. A port that cannot bind a variable
    # refuses it at start rather than leave the attribute silently unset.
    from gatemq import variform
    rows = [("mqtt.clientid_override", m.get("clientid_override"))]
    for i, row in enumerate(m.get("client_attrs_init") or ()):
        rows.append(("mqtt.client_attrs_init.%d.expression" % (i + 1), row["expression"]))
    for key, text in rows:
        if text:
            for v in variform.variables(_form(text)):
                if v in names:
                    return key, v
    return None


def init(c, m, props, log):
    # At CONNECT, after the certificate mapping and before authentication: clientid_override,
    # then client_attrs_init in order (a later row sees the earlier ones as client_attrs.NAME).
    # An expression that fails to evaluate, or gives "", sets nothing (logged), as in EMQX.
    from gatemq import variform
    c.client_attrs = {}
    b = bindings(c, props)
    ov = m.get("clientid_override")
    if ov:
        try:
            v = variform.render(_form(ov), b)
        except variform.VariformError as e:
            log("warning", "client %s: mqtt.clientid_override: %s; the client id is kept" % (ident(c.clientid), e))
            v = ""
        if v:
            c.clientid = v
            b["clientid"] = v
    for row in m.get("client_attrs_init") or ():
        name = row["set_as_attr"]
        try:
            v = variform.render(_form(row["expression"]), b)
        except variform.VariformError as e:
            log("warning", "client %s: client_attrs_init %s: %s; not set" % (ident(c.clientid), name, e))
            continue
        if v:
            c.client_attrs[name] = v
