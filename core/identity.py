# Where the certificate becomes the MQTT identity, in EMQX's order (docs/peer-cert-mapping.md,
# "Where the mapping sits in a connection", steps 2-5 and 7). The mapped values are computed once
# per connection from that connection's own leaf certificate. gatemq.peercert (and gatemq.der)
# load with the first certificate: a broker with plain listeners only never needs them.
from gatemq.errors import DerError


def _text(v):
    # cn/dn/pem/md5 are UTF-8 or ASCII; crt is binary DER and is carried byte for byte as code points.
    try:
        return v.decode()
    except Exception:
        return "".join([chr(c) for c in v])


def resolve(conn, m):
    # Sets conn.username, conn.password, conn.clientid, conn.cert_cn and conn.cert_dn.
    # Returns None, or (rc, why) to refuse: rc 0 means close without a CONNACK.
    try:
        return _resolve(conn, m)
    except DerError as e:
        # TLS libraries read BER and check the signature over the bytes as sent, so a CA that
        # signs a non-DER subject yields a certificate that passes the handshake. No identity is
        # made from it, with or without a mapping (ACLs read the CN and DN too).
        return 0, "the client certificate's subject is not valid DER (%s); no identity is " \
                  "mapped from it" % e


def _resolve(conn, m):
    der = conn.peer_cert
    if der is not None:
        from gatemq import peercert
        cn = peercert.identity(der, "cn")
        conn.cert_cn = None if cn is None else _text(cn)
        conn.cert_dn = _text(peercert.identity(der, "dn"))
        if not m["peer_cert_allow_unsafe"]:
            for mode in (m["peer_cert_as_username"], m["peer_cert_as_clientid"]):
                if peercert.is_unsafe(der, mode):
                    return 0, "certificate %s holds control characters or invalid UTF-8 " \
                              "(set mqtt.peer_cert_allow_unsafe = true to accept it)" % mode.upper()
        if m["use_identity_as_username"]:
            first = peercert.first_cn(der)
            if first is None or b"\x00" in first or peercert.unsafe_text(first):
                return 0x87, "use_identity_as_username: the certificate has no usable CN"
            conn.username = _text(first)
            conn.password = None
        elif m["use_subject_as_username"]:
            conn.username = peercert.subject_rfc2253(der)
            conn.password = None
        for key in ("peer_cert_as_username", "peer_cert_as_clientid"):
            mode = m[key]
            if mode == "disabled":
                continue
            v = peercert.identity(der, mode)
            if v is not None:
                if key == "peer_cert_as_username":
                    conn.username = _text(v)
                else:
                    conn.clientid = _text(v)
            elif m["peer_cert_require_field"]:
                # EMQX keeps the CONNECT's value here, so any certificate from the CA without a
                # CN could log in as anyone; Mosquitto's use_identity_as_username refuses.
                return 0x87, "%s = %s: the certificate has no %s (set mqtt.peer_cert_require_field " \
                             "= false to keep the CONNECT's value)" % (key, mode, mode.upper())
    elif m["use_identity_as_username"] and conn.listener_kind == "ssl":
        return 0x87, "use_identity_as_username: no client certificate"
    if m["use_username_as_clientid"]:
        if not conn.username:
            return 0x85, "use_username_as_clientid: the username is empty"
        conn.clientid = conn.username
    return None
