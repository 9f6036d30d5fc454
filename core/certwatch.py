# The certificates of open connections, for one ssl listener: ssl_options.disconnect_revoked (a
# client whose certificate a new CRL revokes is disconnected) and disconnect_expired (a client whose
# certificate passes its notAfter while connected is disconnected); and what the API shows of a
# certificate (notAfter, serial) and of the listener's own (the 30-day warning). Both ports call
#
#     watch = Watch("ssl:default", ssl_options, log)
#     watch.sweep(broker, crls, now)   # from their timer (at least every few seconds): crls is the
#                                      # listener's current CRL list (LeafPolicy.crls); a new list
#                                      # (a changed crlfile, a reload) is checked against every
#                                      # connected client of the listener once
#
# A disconnected client gets DISCONNECT 0x87 (not authorized; MQTT 3.x: the connection is closed),
# logged with the word (revoked, expired) and the certificate's serial.
from gatemq import reasons as R

# Days before its notAfter from which a listener's own certificate is warned about.
WARN_DAYS = 30


def serial_text(n):
    # Uppercase hex, as `openssl x509 -serial` prints it (an even number of digits).
    if n is None:
        return None
    s = "%X" % n if n >= 0 else "-%X" % -n
    return s if len(s) % 2 == 0 else "0" + s


def info(c):
    # -> (notAfter epoch seconds, serial) of c's certificate, parsed once per connection.
    v = c.__dict__.get("cert_info")
    if v is None:
        v = (None, None)
        if c.peer_cert is not None:
            try:
                from gatemq import der
                cert = der.parse_certificate(c.peer_cert)
                v = (cert.not_after, cert.serial)
            except Exception:
                pass
        c.cert_info = v
    return v


def iso(t):
    # epoch seconds -> "2026-01-31T12:00:00Z"
    from gatemq import civil
    t = int(t)
    days, rem = divmod(t, 86400)
    y, m, d = civil.civil_from_days(days)
    return "%04d-%02d-%02dT%02d:%02d:%02dZ" % (y, m, d, rem // 3600, rem % 3600 // 60, rem % 60)


def server_cert(data):
    # certfile bytes (PEM or DER) -> (notAfter, serial) of its first certificate, or None.
    from gatemq import der
    try:
        if data[:11] == b"-----BEGIN ":
            blobs = der.pem_to_der(data, "CERTIFICATE")
            if not blobs:
                return None
            data = blobs[0]
        cert = der.parse_certificate(data)
        return (cert.not_after, cert.serial)
    except Exception:
        return None


class Watch:
    def __init__(self, name, o, log):
        self.name = name
        self.log = log
        self.revoked = bool(o.get("disconnect_revoked"))
        self.expired = bool(o.get("disconnect_expired"))
        self.crls = None            # the CRL list the connected clients were last checked against
        self.next_expiry = 0        # wall clock of the next expiry pass (once a second)
        self.server = None          # (notAfter, serial) of the listener's certificate
        self.warned = None          # wall clock of the last expiry warning

    def sweep(self, broker, crls, now):
        if self.revoked and crls is not self.crls:
            self.crls = crls
            if crls:
                self._revoked(broker, crls)
        if self.expired and now >= self.next_expiry:
            self.next_expiry = now + 1
            self._expired(broker, now)
        s = self.server
        if s is not None and s[0] is not None and s[0] - now < WARN_DAYS * 86400 and \
                (self.warned is None or now - self.warned >= 86400):
            self.warned = now
            self.log("warning", "listener %s: its certificate (serial %s) %s %s; renew certfile and "
                     "reload the listener" % (self.name, serial_text(s[1]),
                                              "expired at" if s[0] <= now else "expires at", iso(s[0])))

    def set_server(self, data):
        # The listener's certfile was (re)loaded: the warning is made again at the next sweep.
        self.server = server_cert(data)
        self.warned = None

    def _mine(self, broker):
        return [c for c in broker.clients() if c.listener == self.name and c.peer_cert is not None]

    def _revoked(self, broker, crls):
        from gatemq import x509
        from gatemq.errors import CertRejected
        for c in self._mine(broker):
            try:
                x509.check_client(c.peer_cert, crls=crls)
            except CertRejected as e:
                if e.reason == "revoked":
                    self._drop(c, "revoked", "its certificate was revoked")
            except Exception:
                pass

    def _expired(self, broker, now):
        for c in self._mine(broker):
            t = info(c)[0]
            if t is not None and now > t:
                self._drop(c, "expired", "its certificate expired at %s" % iso(t))

    def _drop(self, c, word, why):
        self.log("warning", "listener %s: client %s disconnected: %s (certificate serial %s; %s)" % (
            self.name, c.name(), word, serial_text(info(c)[1]), why))
        c.close(R.NOT_AUTHORIZED, why, word)
