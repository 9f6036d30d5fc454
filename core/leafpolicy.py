# The broker's own checks on a client certificate that TLS has verified, for one ssl listener:
# revocation (crlfile, with enable_crl_check), extended key usage (verify_peer_ext_key_usage) and,
# the validity dates against the wall clock (always checked when the leaf is looked at; with
# validity=False, for a TLS library that checked them itself, the leaf is not looked at unless a
# CRL or a key usage asks for it). Both ports use it; they differ only in how they stat and read
# a file.
#
#     policy = LeafPolicy("ssl:default", ssl_options, stat, read, wallclock, log, validity=True)
#         stat(path) -> (mtime epoch seconds, size, ...) or raises OSError; read(path) -> bytes.
#         A crlfile that cannot be read or holds no valid CRL raises ConfigError here.
#     policy.check(der, now) -> None, or the refusal word (revoked, ext_key_usage, expired,
#         not_yet_valid, crl_expired, crl_not_yet_valid, bad_certificate, certificate_rejected);
#         policy.detail then says why, for the log line.
#     policy.crl_changed() -> True when the crlfile may hold something new (cheap: one stat)
#     policy.reload() -> reads the crlfile again when it changed; a file that has become
#         unreadable or broken is logged once and the last good CRL kept (a CRL being rewritten
#         must not lock every device out, nor let revoked ones in).
import hashlib

from gatemq import x509
from gatemq.errors import CertRejected, ConfigError, DerError

# A stamp's mtime has whole seconds on some file systems: a file rewritten twice within a second
# at the same size keeps its stamp. A file changed this recently is read again at the next check
# (and parsed only when its bytes differ).
_SETTLE = 2


class LeafPolicy:
    def __init__(self, name, o, stat, read, wallclock, log, validity=True):
        self.name = name  # "ssl:default"
        self.stat = stat
        self.read = read
        self.wallclock = wallclock
        self.log = log
        self.validity = validity
        self.detail = None
        self.where = "listeners.%s.ssl_options" % name.replace(":", ".", 1)
        self.eku = o.get("verify_peer_ext_key_usage") or None
        if self.eku:
            try:
                x509.required_usages(self.eku)
            except (DerError, ConfigError) as e:
                raise ConfigError("%s.verify_peer_ext_key_usage: %s" % (self.where, e))
        self.crlfile = o.get("crlfile") if o.get("enable_crl_check") else None
        self.crls = ()
        self._stamp = None
        self._digest = None
        # Nothing to check: a handshake's leaf is not even parsed.
        self.active = bool(self.crlfile or self.eku or validity)
        if self.crlfile:
            self._load(True)

    def check(self, der, now):
        self.detail = None
        if der is None or not self.active:
            return None
        try:
            x509.check_client(der, crls=self.crls, ext_key_usage=self.eku, now=now)
            return None
        except DerError as e:
            word, self.detail = "bad_certificate", str(e)
        except CertRejected as e:
            word, self.detail = e.reason, str(e)
        except Exception as e:  # MemoryError on a board: refuse, never fail the handshake code
            word, self.detail = "certificate_rejected", str(e) or repr(e)
        return word

    def crl_changed(self):
        if not self.crlfile:
            return False
        try:
            stamp = tuple(self.stat(self.crlfile))
        except OSError:
            return self._stamp != "missing"
        return stamp != self._stamp

    def reload(self):
        if self.crl_changed():
            self._load(False)

    def _load(self, first):
        path = self.crlfile
        try:
            stamp = tuple(self.stat(path))
            data = self.read(path)
        except OSError as e:
            if first:
                raise ConfigError("%s.crlfile %s: cannot read it: %s" % (self.where, path, e))
            if self._stamp != "missing":
                self._stamp = "missing"
                self.log("error", "listener %s: cannot read crlfile %s: %s; keeping the previous CRL"
                         % (self.name, path, e))
            return
        self._stamp = stamp if abs(self.wallclock() - stamp[0]) >= _SETTLE else None
        try:
            digest = hashlib.sha256(data).digest()
            if digest == self._digest:
                return
            crls = x509.load_crls(data)
        except Exception as e:  # DerError, MemoryError: never out of a handshake or the timer
            if first:
                raise ConfigError("%s.crlfile %s: %s" % (self.where, path, e))
            self.log("error", "listener %s: bad CRL %s: %s; keeping the previous one" % (self.name, path, e))
            return
        self.crls = crls
        self._digest = digest
        self.log("info", "listener %s: loaded CRL %s (%d revoked)"
                 % (self.name, path, sum(len(c.revoked) for c in crls)))
