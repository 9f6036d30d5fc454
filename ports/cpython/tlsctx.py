# TLS for one ssl listener: the ssl.SSLContext from EMQX-style ssl_options, plus the checks the
# broker makes itself on the verified leaf (CRL with gatemq.der, extended key usage).
import os
import ssl
import time

from gatemq import x509
from gatemq.errors import ConfigError, DerError

_VERSIONS = {"tlsv1.3": ssl.TLSVersion.TLSv1_3, "tlsv1.2": ssl.TLSVersion.TLSv1_2,
             "tlsv1.1": ssl.TLSVersion.TLSv1_1, "tlsv1": ssl.TLSVersion.TLSv1}


def describe(exc):
    r = getattr(exc, "verify_message", None) or getattr(exc, "reason", None)
    return "%s (%s)" % (r, exc.__class__.__name__) if r else repr(exc)


class ListenerTLS:
    def __init__(self, name, o, log):
        self.name = name
        self.o = o
        self.log = log
        self.crls = ()
        self._crl_stamp = None
        self.context = self._context()
        if o.get("enable_crl_check") and o.get("crlfile"):
            self.maybe_reload()

    def _context(self):
        o = self.o
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            ctx.load_cert_chain(o["certfile"], o["keyfile"], o.get("password"))
            if o.get("cacertfile"):
                ctx.load_verify_locations(o["cacertfile"])
        except (OSError, ssl.SSLError) as e:
            raise ConfigError("listener %s: cannot load certificates: %s" % (self.name, e))
        if o.get("verify") == "verify_peer":
            ctx.verify_mode = ssl.CERT_REQUIRED if o.get("fail_if_no_peer_cert") else ssl.CERT_OPTIONAL
        else:
            ctx.verify_mode = ssl.CERT_NONE
        vs = [_VERSIONS[v] for v in o.get("versions") or ("tlsv1.3", "tlsv1.2")]
        ctx.minimum_version = min(vs)
        ctx.maximum_version = max(vs)
        if o.get("ciphers"):
            c = o["ciphers"]
            try:
                ctx.set_ciphers(c if isinstance(c, str) else ":".join(c))
            except ssl.SSLError as e:
                raise ConfigError("listener %s: ssl_options.ciphers: %s" % (self.name, e))
        return ctx

    def maybe_reload(self):
        o = self.o
        path = o.get("crlfile")
        if not o.get("enable_crl_check") or not path:
            return
        try:
            st = os.stat(path)
        except OSError as e:
            if self._crl_stamp != "missing":
                self.log("error", "listener %s: cannot read crlfile %s: %s" % (self.name, path, e))
                self._crl_stamp = "missing"
            return
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp == self._crl_stamp:
            return
        try:
            with open(path, "rb") as f:
                self.crls = x509.load_crls(f.read())
            self._crl_stamp = stamp
            self.log("info", "listener %s: loaded CRL %s (%d revoked)" % (
                self.name, path, sum(len(c.revoked) for c in self.crls)))
        except DerError as e:
            self.log("error", "listener %s: bad CRL %s: %s; keeping the previous one" % (self.name, path, e))
            self._crl_stamp = stamp

    def check_leaf(self, der):
        # -> None when accepted, else the reason. Runs right after the handshake, before any MQTT byte.
        o = self.o
        if der is None:
            return None
        self.maybe_reload()
        try:
            x509.check_client(der, crls=self.crls if o.get("enable_crl_check") else (),
                              ext_key_usage=o.get("verify_peer_ext_key_usage"), now=time.time())
        except Exception as e:
            return str(e)
        return None
