# TLS for one ssl listener on MicroPython's `tls` module (mbedTLS), and the binding of each client
# certificate to the connection whose handshake delivered it.
#
# MicroPython has no getpeercert() on most ports: the leaf certificate reaches Python only through
# SSLContext.verify_callback(cert, depth). The callback belongs to the context, shared by every
# connection of the listener. Under asyncio the handshake runs lazily inside the connection task's
# first read, so asyncio.current_task() inside the callback names the connection: each connection
# registers itself under its task before that read, and the callback files the depth-0 certificate
# there. Being called proves nothing (it runs for unknown CAs too); the certificate counts only
# once the handshake has completed under CERT_REQUIRED.
import asyncio
import tls

from gatemq import der
from gatemq.errors import ConfigError, DerError
from gatemq.leafpolicy import LeafPolicy

from .files import stamp

# What the callback returns to refuse a certificate: MBEDTLS_ERR_X509_CERT_VERIFY_FAILED, so the
# handshake ends with an alert rather than the TCP reset an exception inside the callback causes.
REFUSE = -0x2700


def check_options(name, o, kind="ssl"):
    # ConfigError for what mbedTLS on MicroPython cannot do; the CPython port accepts these.
    where = "listeners.%s.%s.ssl_options" % (kind, name)
    if o["verify"] == "verify_peer" and not o["fail_if_no_peer_cert"]:
        raise ConfigError(
            "%s: verify = verify_peer with fail_if_no_peer_cert = false asks for optional client "
            "certificates, which MicroPython cannot serve safely (mbedTLS completes such a handshake "
            "with an untrusted certificate and the port cannot tell). Set fail_if_no_peer_cert = "
            "true to require certificates, or verify = verify_none" % where)
    if "tlsv1.2" not in o["versions"]:
        raise ConfigError(
            "%s.versions: MicroPython's mbedTLS speaks TLS 1.2 only, got %s; add \"tlsv1.2\""
            % (where, ", ".join(o["versions"])))
    if o["verify"] == "verify_peer" and not o["cacertfile"]:
        raise ConfigError("%s.cacertfile: verify = verify_peer needs the CA certificate(s) that "
                          "sign client certificates" % where)
    if o.get("password"):
        raise ConfigError("%s.password: MicroPython cannot load an encrypted key; store the key "
                          "unencrypted as DER (openssl pkey -in key.pem -outform DER -out key.der)"
                          % where)


def _blobs(read, path, what, label):
    # File -> list of DER blobs. PEM is converted here because mbedTLS on the unix and rp2 ports
    # takes DER only.
    data = read(path)
    if data[:11] == b"-----BEGIN ":
        try:
            blobs = der.pem_to_der(data, label)
        except DerError as e:
            raise ConfigError("%s %s: %s" % (what, path, e))
        if not blobs:
            raise ConfigError("%s %s: no PEM block%s" % (what, path, " labelled " + label if label else ""))
        return blobs
    return [data]


def _key_matches(where, o, cert, key):
    # mbedTLS here loads a key that does not belong to the certificate and then fails every
    # handshake: the key's own copy of the public key (an EC point, an RSA modulus) must be the
    # certificate's. A key that carries no copy (an EC key without its public key) is not checked.
    try:
        c = der.parse_certificate(cert)
        pk = c.public_key
        if c.rsa_n is not None:
            s, e = der.expect(pk, 0, len(pk), 0x30)
            ns, ne = der.expect(pk, s, e, 0x02)
            mine = pk[ns:ne]
            carried = True
        else:
            mine = pk
            carried = bytes([0x03, len(pk) + 1, 0x00]) + pk[:1] in key
    except (DerError, IndexError, ValueError) as e:
        raise ConfigError("%s.ssl_options.certfile %s: %s" % (where, o["certfile"], e))
    if carried and mine not in key:
        raise ConfigError("%s.ssl_options.keyfile %s: the key does not match the "
                          "certificate of certfile %s" % (where, o["keyfile"], o["certfile"]))


class Binder:
    # One per ssl listener: its SSLContext and the certificates of handshakes in flight.
    def __init__(self, name, o, read, wallclock, log, kind="ssl"):
        self.name = name
        self.kind = kind
        self.id = kind + ":" + name     # ssl:NAME or wss:NAME, as the broker names the listener
        self.log = log
        self.wallclock = wallclock
        self.pending = {}  # asyncio task -> Link, while that link's handshake runs
        self.topped = set()  # tasks whose chain's top (the callback's first call) was checked
        self.verify = o["verify"] == "verify_peer"
        self.max_depth = o["depth"] + 1  # depth counts intermediates; the callback also sees the root
        self.o = o
        self.read = read
        # mbedTLS here checks neither revocation nor key usage, nor (without a set clock) dates.
        self.leaf = LeafPolicy(self.id, o, stamp, read, wallclock, log)
        self.crlfile = self.leaf.crlfile
        if o.get("ciphers"):
            log("warning", "listener %s: ssl_options.ciphers is ignored on MicroPython (mbedTLS "
                "uses the suites compiled into the firmware)" % self.id)
        self.ctx, self.anchors = self._context()
        from gatemq.certwatch import Watch
        self.watch = Watch(self.id, o, log)
        self.watch.set_server(read(o["certfile"]))
        self.files = self._stamps()
        self.next_poll = 0
        self.next_files = 0

    def _stamps(self):
        o = self.o
        out = []
        for key in ("certfile", "keyfile", "cacertfile"):
            try:
                out.append(stamp(o[key]) if o[key] else None)
            except OSError:
                out.append(None)
        return out

    def reload(self):
        # certfile, keyfile, cacertfile and crlfile again (POST .../reload, reload_interval): made
        # completely before they replace the old ones, so a failure keeps them. Connections keep
        # the context they were made with. -> None, or why not (logged).
        try:
            leaf = LeafPolicy(self.id, self.o, stamp, self.read, self.wallclock, self.log)
            ctx, anchors = self._context()
            cert = self.read(self.o["certfile"])
        except (ConfigError, OSError, ValueError) as e:
            why = str(e)
            self.log("error", "listener %s: reload failed: %s; the previous certificate files stay "
                     "in force" % (self.id, why))
            return why
        self.files = self._stamps()
        self.leaf = leaf
        self.crlfile = leaf.crlfile
        self.ctx = ctx
        self.anchors = anchors
        self.watch.set_server(cert)
        o = self.o
        self.log("info", "listener %s: reloaded certfile %s, keyfile %s, cacertfile %s%s" % (
            self.id, o["certfile"], o["keyfile"], o["cacertfile"],
            ", crlfile %s" % leaf.crlfile if leaf.crlfile else ""))
        return None

    def poll(self, broker, now):
        # From the timer loop, once a second: the CRL (a changed crlfile), disconnect_revoked /
        # disconnect_expired, and every reload_interval the certificate files by their stamps.
        if now < self.next_poll:
            return
        self.next_poll = now + 1
        self.leaf.reload()
        self.watch.sweep(broker, self.leaf.crls, self.wallclock())
        every = self.o.get("reload_interval")
        if every and now >= self.next_files:
            self.next_files = now + every
            if self._stamps() != self.files:
                self.reload()

    def _context(self):
        o = self.o
        read = self.read
        name = self.name
        ctx = tls.SSLContext(tls.PROTOCOL_TLS_SERVER)
        cert = _blobs(read, o["certfile"], "certfile", "CERTIFICATE")[0]
        key = _blobs(read, o["keyfile"], "keyfile", None)[0]
        _key_matches("listeners.%s.%s" % (self.kind, name), o, cert, key)
        try:
            ctx.load_cert_chain(cert, key)
        except (OSError, ValueError) as e:
            raise ConfigError("listeners.%s.%s.ssl_options: certfile %s / keyfile %s refused by "
                              "mbedTLS (%s); both must be DER or PEM of one certificate and its "
                              "unencrypted key" % (self.kind, name, o["certfile"], o["keyfile"], e))
        anchors = None
        if o["cacertfile"]:
            cas = _blobs(read, o["cacertfile"], "cacertfile", "CERTIFICATE")
            if not o.get("partial_chain"):
                # the anchored CAs as the bytes mbedTLS hands the callback: a set lookup per
                # handshake, no certificate parsed then
                from gatemq.x509 import anchors as find, name_key
                keys = find(cas)
                anchors = set()
                for ca in cas:
                    try:
                        if name_key(der.parse_certificate(ca).subject_der) in keys:
                            anchors.add(bytes(ca))
                    except (DerError, ValueError, IndexError):
                        pass
            for ca in cas:
                try:
                    ctx.load_verify_locations(ca)
                except (OSError, ValueError) as e:
                    raise ConfigError("listeners.%s.%s.ssl_options.cacertfile %s: refused by mbedTLS "
                                      "(%s)" % (self.kind, name, o["cacertfile"], e))
        if self.verify:
            ctx.verify_mode = tls.CERT_REQUIRED
            ctx.verify_callback = self._callback
            # The certificate mapping's code, loaded now while the heap is still in one piece
            # rather than at the first client certificate.
            from gatemq import peercert  # noqa: F401
        else:
            ctx.verify_mode = tls.CERT_NONE
        return ctx, anchors

    def maybe_reload(self):
        # At each new connection, so revoking a device needs no restart.
        self.leaf.reload()

    def wrap(self, raw):
        return self.ctx.wrap_socket(raw, server_side=True, do_handshake_on_connect=False)

    def begin(self, link):
        # Called by the link's own task before the first read of its handshake.
        self.pending[asyncio.current_task()] = link

    def end(self, link):
        t = asyncio.current_task()
        if self.pending.get(t) is link:
            del self.pending[t]
        self.topped.discard(t)

    def _callback(self, cert, depth):
        # Runs inside mbedTLS: never raise (an exception resets the connection), refuse with REFUSE.
        # mbedTLS calls it from the trust anchor down to the leaf (depth 0); it does not pass its
        # own verdict, so the reasons a refusal is logged with come from the checks made here.
        try:
            task = asyncio.current_task()
            link = self.pending.get(task)
            if link is None:
                return REFUSE  # a handshake we cannot attribute is a handshake we do not accept
            if task not in self.topped:
                # The first call is the chain's top: mbedTLS ends a chain at any CA of cacertfile,
                # so without partial_chain it must be one that leads to a root there (x509.anchors).
                self.topped.add(task)
                if self.anchors is not None and bytes(cert) not in self.anchors:
                    link.refusal = ("unknown_ca", "the chain ends at a CA of cacertfile that no root "
                                    "CA there issued (ssl_options.partial_chain = false)")
                    return REFUSE
            if depth > self.max_depth:
                link.refusal = ("chain_too_long", "%d intermediate CAs, ssl_options.depth = %d"
                                % (depth - 1, self.max_depth - 1))
                return REFUSE
            if depth:
                return 0
            leaf = bytes(cert)  # the memoryview is valid only during this call
            refusal = self._check_leaf(leaf)
            if refusal:
                link.refusal = refusal
                link.cert = None
                return REFUSE
            link.cert = leaf
            return 0
        except BaseException as e:  # MemoryError included: refuse rather than reset
            try:
                link.refusal = ("certificate_rejected", "certificate check failed: %r" % (e,))
            except Exception:
                pass
            return REFUSE

    def _check_leaf(self, leaf):
        # -> (reason, detail) or None.
        word = self.leaf.check(leaf, self.wallclock())
        return (word, self.leaf.detail) if word else None


# mbedTLS error codes a failed handshake raises (as OSError(code, name)) -> the reason words the
# CPython port logs too.
_ERRORS = {
    -0x7480: ("no_peer_cert", "the client sent no certificate and ssl_options.fail_if_no_peer_cert = true"),
    -0x2700: ("unknown_ca", "the chain does not lead to a CA of cacertfile, or a signature does not verify"),
}


# mbedTLS's verify messages (MicroPython raises them as ValueError) -> reason words.
_VERIFY = (
    ("expired", "expired"), ("in the future", "not_yet_valid"), ("revoked", "revoked"),
    ("extendedkeyusage", "ext_key_usage"), ("signed by the trusted ca", "unknown_ca"),
    ("not trusted", "unknown_ca"), ("chain", "chain_too_long"),
)


def describe(e, refusal):
    # A failed handshake (OSError with an mbedTLS code, or ValueError with mbedTLS's verify
    # message) -> (reason, detail). A refusal made in the verify callback explains it best.
    if refusal:
        return refusal
    if isinstance(e, ValueError):
        text = " ".join(str(e).split())
        low = text.lower()
        for key, reason in _VERIFY:
            if key in low:
                return (reason, text)
        return ("certificate_rejected", text)
    code = e.args[0] if e.args and isinstance(e.args[0], int) else None
    if code in _ERRORS:
        return _ERRORS[code]
    name = e.args[1] if len(e.args) > 1 and isinstance(e.args[1], str) else str(e)
    if code in (104, 32, 107) or "CONN_EOF" in name or "PEER_CLOSE" in name:
        return ("connection_lost", name)
    if "VERSION" in name:
        return ("protocol_version", name)
    return ("tls_error", name)
