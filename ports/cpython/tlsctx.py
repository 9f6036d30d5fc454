# TLS for one ssl listener: the ssl.SSLContext from EMQX-style ssl_options, the reason words a
# refused handshake is logged with, and the checks the broker makes itself on the verified leaf
# (gatemq.leafpolicy). What the ssl module cannot do goes through openssl_ctypes, and only there.
# The TLS layer of each connection (OpenSSL on the non-blocking socket, driven by the event
# loop's callbacks) is server.TLSClient.
import asyncio
import base64
import os
import ssl
import tempfile
import time
import warnings

from gatemq.certwatch import Watch
from gatemq.errors import ConfigError
from gatemq.leafpolicy import LeafPolicy

from .openssl_ctypes import chain_handle, drop_sent_chain, set_tls13_suites, set_verify_depth

_VERSIONS = [("tlsv1", ssl.TLSVersion.TLSv1, "OP_NO_TLSv1"),
             ("tlsv1.1", ssl.TLSVersion.TLSv1_1, "OP_NO_TLSv1_1"),
             ("tlsv1.2", ssl.TLSVersion.TLSv1_2, "OP_NO_TLSv1_2"),
             ("tlsv1.3", ssl.TLSVersion.TLSv1_3, "OP_NO_TLSv1_3")]

# OpenSSL X509_V_ERR_* codes -> the short reason words the logs use (the same words as the
# broker's own checks: expired, not_yet_valid, revoked, ext_key_usage).
_VERIFY_REASONS = {
    9: "not_yet_valid", 10: "expired", 13: "not_yet_valid", 14: "expired",
    2: "unknown_ca", 18: "unknown_ca", 19: "unknown_ca", 20: "unknown_ca", 21: "unknown_ca",
    22: "chain_too_long", 23: "revoked", 24: "invalid_ca", 26: "ext_key_usage",
    7: "bad_signature", 4: "bad_signature",
}


def describe(exc):
    # -> (reason word, detail) for a failed handshake.
    if isinstance(exc, ssl.SSLCertVerificationError):
        return _VERIFY_REASONS.get(exc.verify_code, "certificate_rejected"), exc.verify_message
    if isinstance(exc, (ssl.SSLEOFError, ssl.SSLZeroReturnError)):
        return "connection_lost", "the client closed the connection"
    if isinstance(exc, ssl.SSLError):
        r = exc.reason or ""
        if r in ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "TLSV13_ALERT_CERTIFICATE_REQUIRED"):
            return "no_peer_cert", "the client sent no certificate and ssl_options.fail_if_no_peer_cert = true"
        if "VERSION" in r or "PROTOCOL" in r:
            return "protocol_version", r
        if "CIPHER" in r:
            return "no_shared_cipher", r
        return "tls_error", r or str(exc)
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError)):
        return "handshake_timeout", str(exc) or "no handshake in time"
    if isinstance(exc, ConnectionAbortedError) and "taking longer" in str(exc):
        return "handshake_timeout", str(exc)
    if isinstance(exc, (ConnectionError, EOFError)):
        return "connection_lost", str(exc) or exc.__class__.__name__
    return "tls_error", repr(exc)


def _sni(owner, name, ctx):
    # OpenSSL's servername callback: the name the client asked for (None without SNI) is kept on
    # the connection that owns the handshake (server.TLSClient), for client_attrs_init's peersni.
    # Returns None: the listener's one certificate serves every name.
    if name:
        try:
            owner.peersni = name
        except AttributeError:
            pass


def _stamp(path):
    st = os.stat(path)
    return (st.st_mtime, st.st_size, st.st_ino, st.st_mtime_ns)


def _read(path):
    with open(path, "rb") as f:
        return f.read()


def _pem_or_der(path):
    # -> (bytes, True when PEM). The MicroPython port takes DER files (boards want them), and one
    # config should run on both ports.
    with open(path, "rb") as f:
        data = f.read()
    return data, b"-----BEGIN" in data


def _der_key_to_pem(der):
    # The PEM label OpenSSL needs is not in the DER itself: PKCS#8 starts SEQUENCE { INTEGER 0,
    # SEQUENCE { OID ... } }, SEC1 starts SEQUENCE { INTEGER 1, OCTET STRING }, PKCS#1 RSA
    # SEQUENCE { INTEGER 0, INTEGER n }.
    label = "PRIVATE KEY"
    try:
        body = der[2 + (der[1] & 0x7F if der[1] & 0x80 else 0):]
        if body[:3] == b"\x02\x01\x01" and body[3:4] == b"\x04":
            label = "EC PRIVATE KEY"
        elif body[:3] == b"\x02\x01\x00" and body[3:4] == b"\x02":
            label = "RSA PRIVATE KEY"
    except IndexError:
        pass
    b64 = base64.encodebytes(der).decode()
    return ("-----BEGIN %s-----\n%s-----END %s-----\n" % (label, b64, label)).encode()


def load_chain(ctx, certfile, keyfile, password=None):
    """ctx.load_cert_chain for PEM or DER files (DER ones go through a private temporary file,
    as OpenSSL reads certificate chains from files only)."""
    cert, cert_pem = _pem_or_der(certfile)
    key, key_pem = _pem_or_der(keyfile)
    if cert_pem and key_pem:
        ctx.load_cert_chain(certfile, keyfile, password)
        return
    if not cert_pem:
        cert = ssl.DER_cert_to_PEM_cert(cert).encode()
    if not key_pem:
        key = _der_key_to_pem(key)
    fd, tmp = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(cert + b"\n" + key)
        ctx.load_cert_chain(tmp, None, password)
    finally:
        os.unlink(tmp)


def load_cas(ctx, cacertfile):
    """ctx.load_verify_locations for a PEM file (one or more CAs) or a DER file (one CA)."""
    data, pem = _pem_or_der(cacertfile)
    if pem:
        ctx.load_verify_locations(cacertfile)
    else:
        ctx.load_verify_locations(cadata=data)


class ListenerTLS:
    def __init__(self, name, o, log):
        self.name = name
        self.o = o
        self.log = log
        # None when OpenSSL enforces depth itself; else checked on the verified chain afterwards.
        self.depth_after = None
        self.timeout = o.get("handshake_timeout") or 15
        # OpenSSL has checked the chain and its dates; the leaf is parsed again only for the CRL
        # and extended key usage checks OpenSSL does not make here.
        self.leaf = LeafPolicy(name, o, _stamp, _read, time.time, log, validity=False)
        self.context = self._context()
        self._ctx_p = chain_handle(self.context)
        self.watch = Watch(name, o, log)    # disconnect_revoked / _expired, the 30-day warning
        self.watch.set_server(_read(o["certfile"]))

    def reload(self):
        # certfile, keyfile, cacertfile and crlfile again (SIGHUP, POST .../reload). The new context
        # and CRLs are made completely before they replace the old ones: a file that is missing,
        # broken, or a key that does not match its certificate leaves the old ones in force.
        # Connections keep the context they were made with; new handshakes get the new one.
        # -> None, or why not (logged).
        depth_after = self.depth_after  # _context sets it anew
        try:
            leaf = LeafPolicy(self.name, self.o, _stamp, _read, time.time, self.log, validity=False)
            ctx = self._context()
            cert = _read(self.o["certfile"])
        except (ConfigError, OSError, ValueError, ssl.SSLError) as e:
            self.depth_after = depth_after
            why = str(e)
            self.log("error", "listener %s: reload failed: %s; the previous certificate files stay in force"
                     % (self.name, why))
            return why
        self.leaf = leaf
        self.context = ctx
        self._ctx_p = chain_handle(ctx)
        self.watch.set_server(cert)
        self.log("info", "listener %s: reloaded certfile %s, keyfile %s, cacertfile %s%s" % (
            self.name, self.o["certfile"], self.o["keyfile"], self.o.get("cacertfile"),
            ", crlfile %s" % leaf.crlfile if leaf.crlfile else ""))
        return None

    def _fail(self, key, msg):
        return ConfigError("listener %s: ssl_options.%s: %s" % (self.name, key, msg))

    def _context(self):
        o = self.o
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            load_chain(ctx, o["certfile"], o["keyfile"], o.get("password") or None)
        except ssl.SSLError as e:
            why = "the key is encrypted: set ssl_options.password" if not o.get("password") else \
                "wrong ssl_options.password, or the key does not match the certificate"
            raise ConfigError("listener %s: cannot load certfile/keyfile (%s): %s" % (self.name, why, e))
        except OSError as e:
            raise ConfigError("listener %s: cannot load certfile/keyfile: %s" % (self.name, e))
        if o.get("cacertfile"):
            try:
                load_cas(ctx, o["cacertfile"])
            except (OSError, ssl.SSLError) as e:
                raise self._fail("cacertfile", "cannot load %s: %s" % (o["cacertfile"], e))
        if o.get("partial_chain"):
            # EMQX's partial_chain: an intermediate CA in cacertfile is a trust anchor of its own.
            ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        if o.get("verify") == "verify_peer":
            ctx.verify_mode = ssl.CERT_REQUIRED if o.get("fail_if_no_peer_cert") else ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        # No TLS 1.3 session tickets, as in EMQX (Erlang's ssl server default): each one costs a
        # session encryption per handshake and is sent right before the CONNACK.
        ctx.num_tickets = 0
        ctx.sni_callback = _sni
        # The identity is mapped from the first handshake's certificate; a TLS 1.2 renegotiation
        # could bring another one afterwards (Mosquitto refuses them too).
        ctx.options |= getattr(ssl, "OP_NO_RENEGOTIATION", 0)
        self._versions(ctx, o.get("versions") or ("tlsv1.3", "tlsv1.2"))
        if o.get("ciphers"):
            self._ciphers(ctx, o["ciphers"])
        depth = o.get("depth", 10)
        if depth is not None and not set_verify_depth(ctx, depth):
            import _ssl
            if not hasattr(ssl.SSLObject, "get_verified_chain") and not hasattr(_ssl._SSLSocket, "get_verified_chain"):
                raise self._fail("depth", "this Python cannot limit the chain depth")
            self.depth_after = depth
        return ctx

    def _versions(self, ctx, names):
        chosen = set(names)
        idx = [i for i, v in enumerate(_VERSIONS) if v[0] in chosen]
        with warnings.catch_warnings():
            # TLS 1.0/1.1 are deprecated in Python, but EMQX lets an operator enable them.
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = _VERSIONS[min(idx)][1]
            ctx.maximum_version = _VERSIONS[max(idx)][1]
            # A gap such as ["tlsv1.3", "tlsv1.1"] must not enable tlsv1.2.
            for i in range(min(idx), max(idx) + 1):
                if i not in idx:
                    ctx.options |= getattr(ssl, _VERSIONS[i][2])

    def _ciphers(self, ctx, c):
        names = c.split(":") if isinstance(c, str) else list(c)
        # OpenSSL keeps TLS 1.3 suites (TLS_AES_128_GCM_SHA256, ...) apart from the TLS 1.2 list.
        # As in EMQX, a version none of the listed suites belongs to cannot be negotiated.
        v13 = [n for n in names if n.startswith("TLS_")]
        v12 = [n for n in names if n and not n.startswith("TLS_")]
        has13 = ctx.maximum_version == ssl.TLSVersion.TLSv1_3
        only13 = ctx.minimum_version == ssl.TLSVersion.TLSv1_3
        if v12:
            if only13:
                raise self._fail("ciphers", "%s are TLS 1.2 suites but versions allows only tlsv1.3"
                                 % ":".join(v12))
            try:
                ctx.set_ciphers(":".join(v12))
            except ssl.SSLError:
                raise self._fail("ciphers", "OpenSSL knows none of %s" % ":".join(v12))
            if not v13 and has13:
                ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        if v13:
            if not has13:
                raise self._fail("ciphers", "%s are TLS 1.3 suites but versions excludes tlsv1.3"
                                 % ":".join(v13))
            if not set_tls13_suites(ctx, v13):
                raise self._fail("ciphers", "OpenSSL rejected the TLS 1.3 suites %s" % ":".join(v13))
            if not v12:
                ctx.minimum_version = ssl.TLSVersion.TLSv1_3

    def maybe_reload(self, broker=None):
        # From the broker's timer: a changed crlfile is read again, so revoking needs no restart;
        # then disconnect_revoked / disconnect_expired act on the connected clients.
        self.leaf.reload()
        if broker is not None:
            self.watch.sweep(broker, self.leaf.crls, time.time())

    def check_leaf(self, der, sslobj=None):
        # -> None when accepted, else (reason, detail). Runs right after the handshake, before any
        # MQTT byte is read.
        if der is None:
            return None
        if self.depth_after is not None and sslobj is not None:
            chain = _verified_chain(sslobj)
            if chain is None:
                return "chain_too_long", "cannot read the verified chain to check ssl_options.depth"
            # depth counts the intermediates between the leaf and the trust anchor, as in OpenSSL/EMQX.
            if len(chain) - 2 > self.depth_after:
                return "chain_too_long", "%d intermediate CAs, ssl_options.depth = %d" % (
                    len(chain) - 2, self.depth_after)
        if not self.leaf.active:
            return None
        self.leaf.reload()
        word = self.leaf.check(der, time.time())
        return (word, self.leaf.detail) if word else None

    def drop_sent_chain(self, tls, sock):
        # After the checks: frees the copies of the CA certificates the client sent with its own
        # (see openssl_ctypes.drop_sent_chain); nothing when OpenSSL cannot be reached.
        if self._ctx_p:
            drop_sent_chain(tls, sock, self.context, self._ctx_p)


def _verified_chain(sslobj):
    f = getattr(sslobj, "get_verified_chain", None)
    if f is None:
        inner = getattr(sslobj, "_sslobj", None)
        f = getattr(inner, "get_verified_chain", None)
    if f is None:
        return None
    try:
        return f()
    except Exception:
        return None
