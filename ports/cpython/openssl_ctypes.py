# OpenSSL calls Python's ssl module does not offer, for the CPython port's TLS (tlsctx), and the
# only place the port reaches into OpenSSL's or CPython's memory.
#
# Off switch: GATEMQ_OPENSSL_CTYPES=0 in the environment (or enabled = False before the first
# listener starts) and none of this is called. The broker then checks ssl_options.depth on the
# verified chain after the handshake, refuses TLS 1.3 names in ssl_options.ciphers as a config
# error, and keeps the CA certificates a client sends along for the life of its connection.
#
# SSL_CTX_set_verify_depth (EMQX's ssl_options.depth) and SSL_CTX_set_ciphersuites (TLS 1.3
# names in ssl_options.ciphers) are called through ctypes on the libssl that _ssl itself uses,
# with the SSL_CTX pointer read from the SSLContext object (its first field after the object
# header, as in CPython's Modules/_ssl.c). The pointer is trusted only after OpenSSL, asked
# through it, returns the same options and verify mode as the SSLContext reports.
import ctypes
import os
import ssl
import weakref


class _OpenSSL:
    def __init__(self):
        import _ssl
        lib = ctypes.CDLL(_ssl.__file__)
        self.get_options = lib.SSL_CTX_get_options
        self.get_options.restype = ctypes.c_uint64
        self.get_options.argtypes = [ctypes.c_void_p]
        self.get_verify_mode = lib.SSL_CTX_get_verify_mode
        self.get_verify_mode.restype = ctypes.c_int
        self.get_verify_mode.argtypes = [ctypes.c_void_p]
        self.set_verify_depth = lib.SSL_CTX_set_verify_depth
        self.set_verify_depth.restype = None
        self.set_verify_depth.argtypes = [ctypes.c_void_p, ctypes.c_int]
        self.get_verify_depth = lib.SSL_CTX_get_verify_depth
        self.get_verify_depth.restype = ctypes.c_int
        self.get_verify_depth.argtypes = [ctypes.c_void_p]
        self.set_ciphersuites = lib.SSL_CTX_set_ciphersuites
        self.set_ciphersuites.restype = ctypes.c_int
        self.set_ciphersuites.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        try:
            self.ssl_ctx = self._fn(lib, "SSL_get_SSL_CTX", ctypes.c_void_p, ctypes.c_void_p)
            self.peer_chain = self._fn(lib, "SSL_get_peer_cert_chain", ctypes.c_void_p, ctypes.c_void_p)
            self.sk_num = self._fn(lib, "OPENSSL_sk_num", ctypes.c_int, ctypes.c_void_p)
            self.sk_pop = self._fn(lib, "OPENSSL_sk_pop", ctypes.c_void_p, ctypes.c_void_p)
            self.x509_free = self._fn(lib, "X509_free", None, ctypes.c_void_p)
        except AttributeError:
            self.peer_chain = None

    @staticmethod
    def _fn(lib, name, restype, *argtypes):
        f = getattr(lib, name)
        f.restype = restype
        f.argtypes = list(argtypes)
        return f

    def ctx_pointer(self, ctx):
        p = ctypes.c_void_p.from_address(id(ctx) + object.__basicsize__).value
        if not p:
            return None
        want_mode = {ssl.CERT_NONE: 0, ssl.CERT_OPTIONAL: 1, ssl.CERT_REQUIRED: 3}[ctx.verify_mode]
        if self.get_options(p) != int(ctx.options) or self.get_verify_mode(p) != want_mode:
            return None
        return p

    def ssl_pointer(self, tls, sock, ctx, ctx_p):
        # The SSL* of an _ssl._SSLSocket from SSLContext._wrap_socket: the field between its weak
        # reference to the socket and its context (PySSLSocket in Modules/_ssl.c). Both neighbours
        # are checked by reading only that object's own memory, then OpenSSL must confirm the SSL
        # belongs to this listener's SSL_CTX.
        base = id(tls) + object.__basicsize__
        field = lambda i: ctypes.c_void_p.from_address(base + i * ctypes.sizeof(ctypes.c_void_p)).value
        if field(0) != id(weakref.ref(sock)) or field(2) != id(ctx):
            return None
        p = field(1)
        if not p or self.ssl_ctx(p) != ctx_p:
            return None
        return p


enabled = os.environ.get("GATEMQ_OPENSSL_CTYPES", "1") not in ("0", "off", "false", "no")
_openssl = None


def native():
    # The bound OpenSSL functions, or None (switched off, or not this Python's layout).
    global _openssl
    if not enabled:
        return None
    if _openssl is None:
        try:
            _openssl = _OpenSSL()
        except (OSError, AttributeError):
            _openssl = False
    return _openssl or None


def set_verify_depth(ctx, depth):
    # True when OpenSSL enforces depth during the handshake.
    lib = native()
    p = lib and lib.ctx_pointer(ctx)
    if not p:
        return False
    lib.set_verify_depth(p, depth)
    return lib.get_verify_depth(p) == depth


def set_tls13_suites(ctx, names):
    lib = native()
    p = lib and lib.ctx_pointer(ctx)
    if not p:
        return False
    return lib.set_ciphersuites(p, ":".join(names).encode()) == 1


def chain_handle(ctx):
    # The SSL_CTX pointer of a listener's context, when its connections' sent chains can be
    # dropped; None otherwise.
    lib = native()
    return lib.ctx_pointer(ctx) if lib and lib.peer_chain else None


def ssl_pointer(tls, sock, ctx, handle):
    lib = native()
    return lib.ssl_pointer(tls, sock, ctx, handle) if lib and handle else None


def sent_chain_length(tls, sock, ctx, handle):
    # How many certificates the client sent along with its own are still held (for tests).
    p = ssl_pointer(tls, sock, ctx, handle)
    if not p:
        return None
    sk = _openssl.peer_chain(p)
    return _openssl.sk_num(sk) if sk else 0


def drop_sent_chain(tls, sock, ctx, handle):
    # After the broker's checks: frees the copies of the CA certificates the client sent with its
    # own (OpenSSL clients send their CA along when they have it). The session keeps them for
    # nothing the broker uses - the leaf and the verified chain are held apart - and each parsed
    # certificate is ~4.5 KB of every idle TLS connection.
    p = ssl_pointer(tls, sock, ctx, handle)
    if not p:
        return
    lib = _openssl
    sk = lib.peer_chain(p)
    if sk:
        while lib.sk_num(sk) > 0:
            lib.x509_free(lib.sk_pop(sk))
