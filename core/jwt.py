# JSON Web Token verification (RFC 7519 over JWS compact form, RFC 7515) for HS256, RS256 and
# ES256. The configured algorithm decides how a token is checked, never the token's own header:
# that is what stops `alg: none` and the HS256-with-the-public-key confusion attack.
# Every failure raises AuthError with a reason that can be logged; the token itself never is.
import json
import binascii

from gatemq.errors import AuthError, ConfigError
from gatemq import pwhash
from gatemq import pubkey

_B64URL = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b64url_decode(text, what="segment"):
    # Strict: binascii on both Pythons skips characters it does not know, so check them first.
    if isinstance(text, str):
        text = text.encode()
    for c in text:
        if c not in _B64URL:
            raise AuthError("token %s is not base64url (character %r)" % (what, chr(c)))
    if len(text) % 4 == 1:
        raise AuthError("token %s has an impossible base64url length" % what)
    text = text.replace(b"-", b"+").replace(b"_", b"/") + b"=" * (-len(text) % 4)
    try:
        return binascii.a2b_base64(text)
    except Exception:
        raise AuthError("token %s is not base64url" % what)


def b64url_encode(data):
    return binascii.b2a_base64(data).strip().replace(b"+", b"-").replace(b"/", b"_").rstrip(b"=")


def _json_object(raw, what):
    try:
        obj = json.loads(raw.decode())
    except Exception:
        raise AuthError("token %s is not JSON" % what)
    if not isinstance(obj, dict):
        raise AuthError("token %s is not a JSON object" % what)
    return obj


class Verifier:
    # cfg: a jwt authenticator of the loaded config (EMQX names), checked by gatemq.config's schema:
    # algorithm = hmac-based (with a secret, maybe secret_base64_encoded) or public-key (with
    # public_key: a PEM text, or a path to a PEM or DER public key or certificate, read with
    # read_file). A public key's kind picks RS256 or ES256.
    def __init__(self, cfg, read_file=None):
        self.secret = None
        self.key = None
        if cfg["algorithm"] == "hmac-based":
            self.alg = "HS256"
            secret = cfg["secret"].encode()
            if cfg["secret_base64_encoded"]:
                try:
                    secret = binascii.a2b_base64(secret)
                except Exception:
                    raise ConfigError("jwt.secret: secret_base64_encoded is true but the secret is not base64")
            self.secret = pwhash.Hmac(secret)
            return
        spec = cfg["public_key"]
        if "-----BEGIN" in spec:
            data = spec.encode()
        else:
            if read_file is None:
                raise ConfigError("jwt.public_key: %r is a path but no file reader was given" % (spec,))
            try:
                data = read_file(spec)
            except Exception as e:
                raise ConfigError("jwt.public_key: cannot read %r: %s" % (spec, e))
        # The key's contents are not the schema's: a file that holds no usable key is refused here.
        try:
            self.key = pubkey.load(data)
        except AuthError as e:
            raise ConfigError("jwt.public_key: %s" % e)
        self.alg = "RS256" if self.key.kind == "RSA" else "ES256"

    def verify(self, token):
        # Returns the claims of a token whose signature checks out; does not look at exp/nbf.
        if isinstance(token, (bytes, bytearray)):
            try:
                token = bytes(token).decode()
            except Exception:
                raise AuthError("token is not UTF-8 text")
        parts = token.split(".")
        if len(parts) != 3:
            raise AuthError("token is not a JWS compact serialisation (expected 3 dot-separated parts, got %d)"
                            % len(parts))
        header = _json_object(b64url_decode(parts[0], "header"), "header")
        alg = header.get("alg")
        if alg != self.alg:
            raise AuthError("token alg %r is not the configured %s" % (alg, self.alg))
        if "crit" in header:
            raise AuthError("token has critical header parameters this broker does not understand")
        sig = b64url_decode(parts[2], "signature")
        signed = (parts[0] + "." + parts[1]).encode()
        if self.alg == "HS256":
            ok = pwhash.equal(self.secret.digest(signed), sig)
        elif self.alg == "ES256" and len(sig) != 64:
            raise AuthError("ES256 signature must be 64 bytes r||s, got %d bytes" % len(sig))
        else:
            ok = self.key.verify_sha256(signed, sig)
        if not ok:
            raise AuthError("token signature does not verify with the configured %s key" % self.alg)
        return _json_object(b64url_decode(parts[1], "payload"), "payload")


def _number(claims, name):
    v = claims.get(name)
    if v is None:
        return None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise AuthError("token claim %s is not a number" % name)
    return v


def check_times(claims, now, leeway=0):
    # RFC 7519 4.1.4/4.1.5 with a leeway for clock skew. Returns exp (or None) for the broker.
    exp = _number(claims, "exp")
    nbf = _number(claims, "nbf")
    if exp is not None and now >= exp + leeway:
        raise AuthError("token expired at %s (now %d, leeway %ds)" % (exp, now, leeway))
    if nbf is not None and now + leeway < nbf:
        raise AuthError("token not valid before %s (now %d, leeway %ds)" % (nbf, now, leeway))
    return exp
