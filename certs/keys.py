# Key pairs: EC P-256 unless RSA is asked for. Private keys are stored unencrypted PKCS#8, in PEM
# for hosts and in DER for MicroPython, whose tls module on unix/rp2 accepts only DER.
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from .errors import CertsError

MIN_RSA_BITS = 2048


def new_key(rsa_bits=None):
    if rsa_bits is None:
        return ec.generate_private_key(ec.SECP256R1())
    if rsa_bits < MIN_RSA_BITS or rsa_bits > 16384 or rsa_bits % 8:
        raise CertsError("--rsa %d: use a multiple of 8 between %d and 16384 bits (e.g. 2048)"
                         % (rsa_bits, MIN_RSA_BITS))
    return rsa.generate_private_key(public_exponent=65537, key_size=rsa_bits)


def is_rsa(key):
    return isinstance(key, (rsa.RSAPrivateKey, rsa.RSAPublicKey))


def private_bytes(key, der=False):
    enc = serialization.Encoding.DER if der else serialization.Encoding.PEM
    return key.private_bytes(enc, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def load_private(data, path):
    try:
        if data.lstrip().startswith(b"-----"):
            return serialization.load_pem_private_key(data, password=None)
        return serialization.load_der_private_key(data, password=None)
    except TypeError:
        raise CertsError("%s is encrypted; gatemq-certs only reads unencrypted keys" % path)
    except ValueError as e:
        raise CertsError("%s is not a private key this tool can read: %s" % (path, e))
