# Public-key signature verification in pure Python, small enough for MicroPython: RSA PKCS#1 v1.5
# with SHA-256 (RS256) and ECDSA over P-256 with SHA-256 (ES256). Only verification is needed by a
# broker, so there is no private-key code and no secret-dependent timing to worry about.
import hashlib
import binascii

from gatemq.errors import AuthError, DerError
from gatemq import der as _der

# --- key loading -------------------------------------------------------------------------------

_OID_RSA = b"\x2a\x86\x48\x86\xf7\x0d\x01\x01\x01"   # 1.2.840.113549.1.1.1 rsaEncryption
_OID_EC = b"\x2a\x86\x48\xce\x3d\x02\x01"            # 1.2.840.10045.2.1 ecPublicKey
_OID_P256 = b"\x2a\x86\x48\xce\x3d\x03\x01\x07"      # 1.2.840.10045.3.1.7 prime256v1


def _tlv(data, pos):
    # One DER TLV at pos: returns (tag, value_start, value_end). Only what public keys need.
    if pos + 2 > len(data):
        raise AuthError("key: truncated DER at byte %d" % pos)
    tag = data[pos]
    ln = data[pos + 1]
    pos += 2
    if ln & 0x80:
        nb = ln & 0x7F
        if nb == 0 or nb > 4 or pos + nb > len(data):
            raise AuthError("key: bad DER length at byte %d" % (pos - 1))
        ln = int.from_bytes(data[pos:pos + nb], "big")
        pos += nb
    if pos + ln > len(data):
        raise AuthError("key: DER value runs past the end at byte %d" % pos)
    return tag, pos, pos + ln


def _children(data, start, end):
    out = []
    pos = start
    while pos < end:
        tag, vs, ve = _tlv(data, pos)
        out.append((tag, vs, ve))
        pos = ve
    return out


def _uint(data, vs, ve):
    return int.from_bytes(data[vs:ve], "big")


def _rsa_from_pkcs1(data, vs, ve):
    parts = _children(data, vs, ve)
    if len(parts) < 2 or parts[0][0] != 0x02 or parts[1][0] != 0x02:
        raise AuthError("key: RSAPublicKey must hold two INTEGERs (n, e)")
    raw_n = data[parts[0][1]:parts[0][2]]
    while raw_n[:1] == b"\x00":
        raw_n = raw_n[1:]
    return RsaKey(int.from_bytes(raw_n, "big"), _uint(data, parts[1][1], parts[1][2]), len(raw_n))


def _from_spki(data, vs, ve):
    parts = _children(data, vs, ve)
    if len(parts) != 2 or parts[0][0] != 0x30 or parts[1][0] != 0x03:
        raise AuthError("key: SubjectPublicKeyInfo must be SEQUENCE { AlgorithmIdentifier, BIT STRING }")
    alg = _children(data, parts[0][1], parts[0][2])
    if not alg or alg[0][0] != 0x06:
        raise AuthError("key: AlgorithmIdentifier has no OID")
    oid = data[alg[0][1]:alg[0][2]]
    bits = data[parts[1][1] + 1:parts[1][2]]  # skip the unused-bits byte
    if oid == _OID_RSA:
        tag, s, e = _tlv(bits, 0)
        if tag != 0x30:
            raise AuthError("key: RSA public key is not a SEQUENCE")
        return _rsa_from_pkcs1(bits, s, e)
    if oid == _OID_EC:
        if len(alg) < 2 or alg[1][0] != 0x06 or data[alg[1][1]:alg[1][2]] != _OID_P256:
            raise AuthError("key: only the P-256 (prime256v1) curve is supported for EC keys")
        return EcKey.from_point(bits)
    raise AuthError("key: unsupported public key algorithm OID %s" % binascii.hexlify(oid).decode())


def pem_to_der(text):
    # Returns (label, der) of the first PEM block, through gatemq.der's strict PEM reader.
    if isinstance(text, str):
        text = text.encode()
    start = text.find(b"-----BEGIN ")
    if start < 0:
        raise AuthError("key: no PEM BEGIN line")
    label = text[start + 11:text.find(b"-----", start + 11)].decode()
    try:
        return label, _der.pem_to_der(text[start:], first=True)
    except DerError as e:
        raise AuthError("key: %s" % e)


def _from_certificate(data):
    try:
        cert = _der.parse_certificate(data)
    except DerError as e:
        raise AuthError("key: certificate: %s" % e)
    if cert.key_algorithm == _der.RSA_ENCRYPTION:
        raw = cert.rsa_n.to_bytes(len(cert.public_key), "big")
        while raw[:1] == b"\x00":
            raw = raw[1:]
        return RsaKey(cert.rsa_n, cert.rsa_e, len(raw))
    if cert.key_algorithm == _der.EC_PUBLIC_KEY:
        if cert.ec_curve != "1.2.840.10045.3.1.7":
            raise AuthError("key: only the P-256 (prime256v1) curve is supported, certificate has %s"
                            % cert.ec_curve)
        return EcKey.from_point(cert.public_key)
    raise AuthError("key: unsupported certificate key algorithm %s" % cert.key_algorithm)


def load(data):
    # A public key from PEM or DER bytes: SubjectPublicKeyInfo ("PUBLIC KEY"), PKCS#1
    # ("RSA PUBLIC KEY") or an X.509 certificate (parsed by gatemq.der), whose subject key is used.
    # read_file may hand over text (a PEM file read as str by a port): accept both.
    data = data.encode() if isinstance(data, str) else bytes(data)
    if b"-----BEGIN" in data:
        label, der = pem_to_der(data)
    else:
        label, der = None, data
    tag, vs, ve = _tlv(der, 0)
    if tag != 0x30:
        raise AuthError("key: DER does not start with a SEQUENCE")
    if ve != len(der):
        raise AuthError("key: %d trailing bytes after the key" % (len(der) - ve))
    if label == "RSA PUBLIC KEY":
        return _rsa_from_pkcs1(der, vs, ve)
    parts = _children(der, vs, ve)
    if len(parts) == 2 and parts[0][0] == 0x30 and parts[1][0] == 0x03:
        return _from_spki(der, vs, ve)
    if len(parts) == 3 and parts[0][0] == 0x30:
        return _from_certificate(der)
    if len(parts) == 2 and parts[0][0] == 0x02:
        return _rsa_from_pkcs1(der, vs, ve)
    raise AuthError("key: not a public key, an RSA public key or a certificate")


# --- RSA ---------------------------------------------------------------------------------------

# DigestInfo prefix for SHA-256 (RFC 8017 section 9.2, note 1).
_SHA256_DI = binascii.unhexlify("3031300d060960864801650304020105000420")


class RsaKey:
    kind = "RSA"

    def __init__(self, n, e, size):
        if size < 64:
            raise AuthError("key: RSA modulus of %d bits is too small" % (size * 8))
        self.n = n
        self.e = e
        self.size = size  # modulus length in bytes

    def verify_sha256(self, msg, sig):
        # RSASSA-PKCS1-v1_5 (RFC 8017 section 8.2.2): rebuild the expected encoding and compare.
        if len(sig) != self.size:
            return False
        s = int.from_bytes(sig, "big")
        if s >= self.n:
            return False
        em = pow(s, self.e, self.n).to_bytes(self.size, "big")
        t = _SHA256_DI + hashlib.sha256(msg).digest()
        want = b"\x00\x01" + b"\xff" * (self.size - len(t) - 3) + b"\x00" + t
        return em == want


# --- ECDSA P-256 -------------------------------------------------------------------------------

P = 0xFFFFFFFF00000001000000000000000000000000FFFFFFFFFFFFFFFFFFFFFFFF
A = P - 3
B = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
GX = 0x6B17D1F2E12C4247F8BCE6E563A440F277037D812DEB33A0F4A13945D898C296
GY = 0x4FE342E2FE1A7F9B8EE7EB4A7C0F9E162BCE33576B315ECECBB6406837BF51F5


def on_curve(x, y):
    return 0 <= x < P and 0 <= y < P and (y * y - (x * x * x + A * x + B)) % P == 0


def _double(pt):
    # Jacobian doubling for a = -3 (dbl-2001-b). None is the point at infinity.
    if pt is None:
        return None
    x, y, z = pt
    if y == 0:
        return None
    delta = z * z % P
    gamma = y * y % P
    beta = x * gamma % P
    alpha = 3 * (x - delta) * (x + delta) % P
    x3 = (alpha * alpha - 8 * beta) % P
    z3 = ((y + z) * (y + z) - gamma - delta) % P
    y3 = (alpha * (4 * beta - x3) - 8 * gamma * gamma) % P
    return (x3, y3, z3)


def _add_affine(pt, q):
    # Jacobian pt plus affine q (madd): the precomputed points are affine, which saves multiplications.
    if q is None:
        return pt
    if pt is None:
        return (q[0], q[1], 1)
    x1, y1, z1 = pt
    x2, y2 = q
    z1z1 = z1 * z1 % P
    u2 = x2 * z1z1 % P
    s2 = y2 * z1 * z1z1 % P
    h = (u2 - x1) % P
    r = (s2 - y1) % P
    if h == 0:
        if r == 0:
            return _double(pt)
        return None
    hh = h * h % P
    hhh = h * hh % P
    v = x1 * hh % P
    x3 = (r * r - hhh - 2 * v) % P
    y3 = (r * (v - x3) - y1 * hhh) % P
    z3 = z1 * h % P
    return (x3, y3, z3)


def _to_affine(pt):
    if pt is None:
        return None
    x, y, z = pt
    zi = pow(z, P - 2, P)  # Fermat inverse: P is prime
    zi2 = zi * zi % P
    return (x * zi2 % P, y * zi2 * zi % P)


class EcKey:
    kind = "EC"

    def __init__(self, x, y):
        if not on_curve(x, y):
            raise AuthError("key: EC point is not on the P-256 curve")
        self.x = x
        self.y = y

    @classmethod
    def from_point(cls, raw):
        if len(raw) != 65 or raw[0] != 4:
            raise AuthError("key: EC public key must be an uncompressed P-256 point (65 bytes starting 04)")
        return cls(int.from_bytes(raw[1:33], "big"), int.from_bytes(raw[33:], "big"))

    def verify_sha256(self, msg, sig):
        # sig is the JWS form, r || s as two 32-byte big-endian integers (RFC 7518 section 3.4).
        if len(sig) != 64:
            return False
        r = int.from_bytes(sig[:32], "big")
        s = int.from_bytes(sig[32:], "big")
        if not (0 < r < N and 0 < s < N):
            return False
        e = int.from_bytes(hashlib.sha256(msg).digest(), "big")
        w = pow(s, N - 2, N)
        u1 = e * w % N
        u2 = r * w % N
        g = (GX, GY)
        q = (self.x, self.y)
        gq = _to_affine(_add_affine((GX, GY, 1), q))
        table = (None, g, q, gq)
        acc = None
        # Shamir's trick: one pass over the bits of u1 and u2 together.
        for i in range(255, -1, -1):
            acc = _double(acc)
            k = ((u1 >> i) & 1) | (((u2 >> i) & 1) << 1)
            if k:
                acc = _add_affine(acc, table[k])
        pt = _to_affine(acc)
        if pt is None:
            return False
        return pt[0] % N == r
