# Password hashing as EMQX 5's built-in database does it, plus the HMAC and PBKDF2 that MicroPython
# lacks (it has neither the hmac module nor hashlib.pbkdf2_hmac). Only hashlib.sha256/md5 are used.
import hashlib
import binascii

from gatemq.errors import ConfigError

_BLOCK = 64  # SHA-256 and MD5 both work on 64-byte blocks
_IPAD = bytes(0x36 for _ in range(_BLOCK))
_OPAD = bytes(0x5C for _ in range(_BLOCK))

ALGORITHMS = ("plain", "sha256", "md5", "pbkdf2")
SALT_POSITIONS = ("prefix", "suffix", "disable")


def _xor(a, b):
    return bytes(x ^ y for x, y in zip(a, b))


def _to_bytes(v):
    if v is None:
        return b""
    if isinstance(v, str):
        return v.encode()
    return bytes(v)


class Hmac:
    # RFC 2104 over a hashlib constructor. The padded keys are kept so PBKDF2 can reuse them for
    # every iteration (hashlib objects on MicroPython cannot be copied).
    def __init__(self, key, digestmod=hashlib.sha256):
        self.digestmod = digestmod
        key = _to_bytes(key)
        if len(key) > _BLOCK:
            key = digestmod(key).digest()
        key = key + bytes(_BLOCK - len(key))
        self.ikey = _xor(key, _IPAD)
        self.okey = _xor(key, _OPAD)

    def digest(self, msg):
        inner = self.digestmod(self.ikey)
        inner.update(msg)
        outer = self.digestmod(self.okey)
        outer.update(inner.digest())
        return outer.digest()


def hmac_sha256(key, msg):
    return Hmac(key).digest(_to_bytes(msg))


def pbkdf2_sha256(password, salt, iterations, dklen=32):
    # RFC 8018 section 5.2 with HMAC-SHA256 as the PRF.
    if iterations < 1:
        raise ValueError("pbkdf2 iterations must be at least 1")
    prf = Hmac(password)
    salt = _to_bytes(salt)
    out = b""
    block = 1
    while len(out) < dklen:
        u = prf.digest(salt + block.to_bytes(4, "big"))
        acc = int.from_bytes(u, "big")
        for _ in range(iterations - 1):
            u = prf.digest(u)
            acc ^= int.from_bytes(u, "big")
        out += acc.to_bytes(32, "big")
        block += 1
    return out[:dklen]


def equal(a, b):
    # Constant-time for equal lengths: every byte is looked at whatever the first difference.
    a = _to_bytes(a)
    b = _to_bytes(b)
    diff = len(a) ^ len(b)
    if len(a) != len(b):
        b = a  # still walk the same number of bytes
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def normalise(algo):
    # Fills in EMQX's defaults for a password_hash_algorithm object and checks it: for what does
    # not come through the config schema (a users file's per-user `algorithm`, gatemq-passwd's
    # options). The config's password_hash_algorithm is checked and completed by the schema.
    if algo is None:
        algo = {"name": "sha256"}
    if isinstance(algo, str):
        algo = {"name": algo}
    name = algo.get("name", "sha256")
    if name not in ALGORITHMS:
        raise ConfigError("password_hash_algorithm.name: expected one of %s, got %r"
                          % ("|".join(ALGORITHMS), name))
    out = {"name": name}
    if name == "pbkdf2":
        mac = algo.get("mac_fun", "sha256")
        if mac != "sha256":
            raise ConfigError("password_hash_algorithm.mac_fun: only sha256 is supported, got %r" % (mac,))
        it = algo.get("iterations", 4096)
        if not isinstance(it, int) or it < 1:
            raise ConfigError("password_hash_algorithm.iterations: expected a positive integer, got %r" % (it,))
        dk = algo.get("dk_length")
        if dk is None:
            dk = 32  # EMQX: the output length of the MAC
        if not isinstance(dk, int) or dk < 1:
            raise ConfigError("password_hash_algorithm.dk_length: expected a positive integer, got %r" % (dk,))
        out["mac_fun"] = mac
        out["iterations"] = it
        out["dk_length"] = dk
    else:
        # EMQX: plain defaults to no salt, the simple hashes to a prefix salt.
        pos = algo.get("salt_position", "disable" if name == "plain" else "prefix")
        if pos not in SALT_POSITIONS:
            raise ConfigError("password_hash_algorithm.salt_position: expected prefix|suffix|disable, got %r"
                              % (pos,))
        out["salt_position"] = pos
    return out


def hash_password(algo, salt, password):
    # Returns what the users file stores in password_hash, as EMQX computes it: lowercase hex of
    # the digest, or the (salted) text itself for plain. algo is complete and checked, as the
    # config schema or normalise() gives it; it is not checked again on every login.
    salt = _to_bytes(salt)
    password = _to_bytes(password)
    name = algo["name"]
    if name == "pbkdf2":
        # dk_length None (the schema's "not set") is EMQX's default, the MAC's output length.
        dk = pbkdf2_sha256(password, salt, algo["iterations"], algo.get("dk_length") or 32)
        return binascii.hexlify(dk).decode()
    pos = algo["salt_position"]
    if pos == "prefix":
        data = salt + password
    elif pos == "suffix":
        data = password + salt
    else:
        data = password
    if name == "plain":
        return data.decode()
    if name not in ("sha256", "md5"):
        raise ValueError("hash_password: %r is not a checked algorithm" % (name,))
    fn = hashlib.sha256 if name == "sha256" else hashlib.md5
    return binascii.hexlify(fn(data).digest()).decode()


def check_password(algo, salt, password, stored_hash):
    # Hex digests are compared case-insensitively, as the text EMQX exports may be upper case.
    got = hash_password(algo, salt, password)
    want = stored_hash
    if algo["name"] != "plain":
        want = want.lower()
    return equal(got, want)


def new_salt(urandom, nbytes=16):
    # The port supplies urandom (the core does no I/O); the salt is stored as hex text, and that
    # text is what gets hashed, as in EMQX.
    return binascii.hexlify(urandom(nbytes)).decode()
