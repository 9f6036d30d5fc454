# Subject names from the command line or a CSV row, and turning a CN into a safe file name.
from cryptography import x509
from cryptography.x509.oid import NameOID

from .errors import CertsError

# (field, OID, label). Order is the subject's RDN order, the conventional C..CN order first, so
# `openssl x509 -subject` and EMQX's `dn` mapping read as people expect.
FIELDS = (
    ("c", NameOID.COUNTRY_NAME, "country"),
    ("st", NameOID.STATE_OR_PROVINCE_NAME, "state"),
    ("l", NameOID.LOCALITY_NAME, "locality"),
    ("o", NameOID.ORGANIZATION_NAME, "organization"),
    ("ou", NameOID.ORGANIZATIONAL_UNIT_NAME, "organizational unit"),
    ("cn", NameOID.COMMON_NAME, "common name"),
    ("serial_number", NameOID.SERIAL_NUMBER, "serialNumber"),
    ("uid", NameOID.USER_ID, "UID"),
    ("email", NameOID.EMAIL_ADDRESS, "emailAddress"),
)

# RFC 5280 upper bounds (ub-*); cryptography enforces only some of them.
MAX_LEN = {"c": 2, "st": 128, "l": 128, "o": 64, "ou": 64, "cn": 64, "serial_number": 64,
           "email": 255, "uid": 256}


def build_name(values):
    """values: dict field -> str (missing or empty fields are left out)."""
    rdns = []
    for field, oid, label in FIELDS:
        v = values.get(field)
        if v is None or v == "":
            continue
        if field == "c" and not (len(v) == 2 and v.isascii() and v.isalpha()):
            raise CertsError("country %r must be a two-letter ISO 3166 code such as DE" % v)
        if len(v) > MAX_LEN[field]:
            raise CertsError("%s %r is longer than the %d characters X.509 allows"
                             % (label, v, MAX_LEN[field]))
        try:
            rdns.append(x509.NameAttribute(oid, v))
        except ValueError as e:
            raise CertsError("%s %r: %s" % (label, v, e))
    if not rdns:
        raise CertsError("the subject is empty; give at least a common name")
    return x509.Name(rdns)


SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")


def safe_filename(cn):
    """A CN as one path component: letters, digits, '.', '_', '-'; everything else becomes '_'.

    Leading dots are replaced too, so the result is never hidden, '.' or '..'.
    """
    out = "".join(ch if ch in SAFE else "_" for ch in cn)
    stripped = out.lstrip(".")
    out = "_" * (len(out) - len(stripped)) + stripped
    if not out:
        raise CertsError("an empty common name cannot name a file")
    return out[:100]
