# The CAs of one PKI folder besides the root: intermediate CAs (sub-CAs signed by the root, each a
# PKI folder of its own under <pki>/intermediates/<name>/ with ca.key, ca.crt and its own
# issued.txt, revoked.txt, crlnumber and crl.pem), the previous root during a CA rotation
# (<pki>/previous-ca/), and the lifecycle commands that work across them: renew and rotate-ca.
import datetime
import os

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID

from . import ca, crl, files, index, issue, keys, names
from .errors import CertsError

# The folders of the intermediates and ca_dir/intermediate_names are gatemq.certs.ca's.
from .ca import INTERMEDIATES, ca_dir, intermediate_names  # noqa: E402,F401
PREVIOUS = "previous-ca"
RETIRED = "retired"
BUNDLE = "ca-bundle.crt"


def ca_dirs(pki):
    """[(label, folder)] of every CA whose certificates are in use: the root, the previous root
    while a rotation is under way, and the intermediates."""
    out = [("ca", pki)]
    if os.path.exists(os.path.join(pki, PREVIOUS, ca.CA_CRT)):
        out.append((PREVIOUS, os.path.join(pki, PREVIOUS)))
    for n in intermediate_names(pki):
        out.append((INTERMEDIATES + "/" + n, os.path.join(pki, INTERMEDIATES, n)))
    return out


def _load_cert(path):
    return ca.load_cert_bytes(files.read(path, "certificate"), path)


def issuer_dir(pki, cert):
    """(label, folder) of the CA in pki that signed cert, or None."""
    for label, d in ca_dirs(pki):
        try:
            cert.verify_directly_issued_by(_load_cert(os.path.join(d, ca.CA_CRT)))
        except (ValueError, TypeError, InvalidSignature):
            continue
        return label, d
    return None


# ---- intermediate ----

def intermediate(pki, name, cn=None, days=1825, pathlen=0, rsa_bits=None, force=False):
    if names.safe_filename(name) != name:
        raise CertsError("intermediate name %r: use letters, digits, '.', '_' and '-'" % name)
    if days < 1:
        raise CertsError("--days must be at least 1")
    if pathlen is not None and pathlen < 0:
        raise CertsError("--pathlen must be 0 or more (0: it signs devices only)")
    root_key, root_cert = ca.load_ca(pki)
    d = os.path.join(pki, INTERMEDIATES, name)
    p = ca.paths(d)
    if not force and (os.path.exists(p["key"]) or os.path.exists(p["crt"])):
        raise CertsError("intermediate CA %r already exists in %s; refusing to replace it (its "
                         "devices would stop verifying). Pass --force to replace it anyway." % (name, d))
    os.makedirs(d, exist_ok=True)
    key = keys.new_key(rsa_bits)
    start = ca.now() - ca.BACKDATE
    end = start + ca.BACKDATE + datetime.timedelta(days=days)
    end = min(end, ca.not_after(root_cert))
    subject = names.build_name({"cn": cn or "%s intermediate CA" % name})
    cert = ca.signed_by(root_cert, root_key, subject, key, start, end, True,
                        path_length=pathlen).sign(root_key, hashes.SHA256())
    pem = cert.public_bytes(serialization.Encoding.PEM)
    files.write(p["key"], keys.private_bytes(key), private=True)
    files.write(p["crt"], pem)
    files.write(p["der"], cert.public_bytes(serialization.Encoding.DER))
    chain = files.write(os.path.join(d, "chain.crt"),
                        pem + root_cert.public_bytes(serialization.Encoding.PEM))
    index.record_issued(pki, cert, p["crt"])
    return dict(p, chain=chain, dir=d)


# ---- renew ----

def find_device(pki, device):
    """The certificate file of DEVICE: a path, NAME (PKI/NAME.crt) or a batch folder's CN."""
    for path in (device, os.path.join(pki, device + ".crt"),
                 os.path.join(pki, "devices", names.safe_filename(device), "client.crt")):
        if os.path.isfile(path) and path.endswith(".crt"):
            return path
    raise CertsError("no certificate for %r: give a .crt file, a NAME with %s/NAME.crt, or a batch "
                     "device's CN (%s/devices/<cn>/client.crt)" % (device, pki, pki))


def _key_spec(cert):
    pub = cert.public_key()
    return pub.key_size if keys.is_rsa(pub) else None


def renew(pki, device, days=None, rsa_bits=None, revoke_old=False, crl_days=30):
    """A new key and serial for the device's certificate, same subject, SANs and key usage, signed
    by the CA that signed it (the new root when that was the previous root of a rotation)."""
    crt_path = find_device(pki, device)
    old = _load_cert(crt_path)
    found = issuer_dir(pki, old)
    if found is None:
        raise CertsError("%s was not issued by any CA in %s (the root, %s/ or an intermediate); "
                         "issue it anew with `client`" % (crt_path, pki, PREVIOUS))
    label, old_dir = found
    signer = pki if label == PREVIOUS else old_dir
    ca_key, ca_cert = ca.load_ca(signer)
    try:
        sans = list(old.extensions.get_extension_for_class(x509.SubjectAlternativeName).value)
    except x509.ExtensionNotFound:
        sans = []
    try:
        eku = list(old.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        eku = None
    if days is None:
        lifetime = ca.not_after(old) - _not_before(old) - ca.BACKDATE
        days = max(1, int(round(lifetime / datetime.timedelta(days=1))))
    key, cert = issue.make_leaf(ca_key, ca_cert, old.subject, days,
                                rsa_bits if rsa_bits else _key_spec(old), eku, sans=sans)
    base = crt_path[:-4]
    chain = [ca_cert] if signer != pki else []
    out = issue.write_pair(signer, key, cert, base + ".key", crt_path, overwrite=True, chain=chain)
    if not chain and os.path.exists(issue.chain_path(crt_path)):
        os.unlink(issue.chain_path(crt_path))
    out["old_serial"] = old.serial_number
    out["serial"] = cert.serial_number
    if revoke_old:
        crl.revoke(old_dir, index.serial_hex(old.serial_number), "superseded", force=True)
        out["crl"] = publish_crl(pki, old_dir, days=crl_days)
    return out


def publish_crl(pki, d, days=30):
    """The CRL of the CA in folder d where `crl` writes it: an intermediate's own crl.pem; the
    root's (or the previous root's) in <pki>/crl.pem, with the previous root's CRL appended while a
    rotation is under way."""
    if d == pki or d == os.path.join(pki, PREVIOUS):
        prev = os.path.join(pki, PREVIOUS)
        also = [prev] if os.path.exists(os.path.join(prev, ca.CA_CRT)) else []
        return crl.make_crl(pki, days=days, also=also)
    return crl.make_crl(d, days=days)


def _not_before(cert):
    try:
        return cert.not_valid_before_utc
    except AttributeError:
        return cert.not_valid_before.replace(tzinfo=datetime.timezone.utc)


# ---- rotate-ca ----

MOVED = (ca.CA_KEY, ca.CA_CRT, ca.CA_DER, index.ISSUED, index.REVOKED, crl.CRL_NUMBER)


def rotate(pki, cn, days=3650, rsa_bits=None):
    """Move the root to previous-ca/ and make a new one; ca-bundle.crt holds both."""
    if days < 1:
        raise CertsError("--days must be at least 1")
    old_cert = ca.load_ca(pki)[1]
    prev = os.path.join(pki, PREVIOUS)
    if os.path.exists(os.path.join(prev, ca.CA_CRT)):
        raise CertsError("a rotation is already under way (%s holds the previous root); once no "
                         "device uses it any more, run `gatemq-certs --dir %s rotate-ca --finish`"
                         % (prev, pki))
    if cn is None:
        cn = old_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        cn = (cn[0].value if cn else "gatemq CA") + " " + ca.now().strftime("%Y")
    if cn == _cn(old_cert):
        raise CertsError("--cn %r is the current root's; give the new root another name (a CRL "
                         "names its CA by subject, so two roots must differ)" % cn)
    if rsa_bits is not None and (rsa_bits < keys.MIN_RSA_BITS or rsa_bits > 16384 or rsa_bits % 8):
        keys.new_key(rsa_bits)  # raises the usual error before anything is moved
    os.makedirs(prev, exist_ok=True)
    for f in MOVED:
        src = os.path.join(pki, f)
        if os.path.exists(src):
            os.replace(src, os.path.join(prev, f))
    ca.init_ca(pki, cn, days, rsa_bits)
    return {"ca": ca.paths(pki)["crt"], "previous": ca.paths(prev)["crt"], "bundle": _bundle(pki)}


def finish(pki):
    """End a rotation: previous-ca/ moves to retired/<serial>/, ca-bundle.crt holds the new root."""
    prev = os.path.join(pki, PREVIOUS)
    if not os.path.exists(os.path.join(prev, ca.CA_CRT)):
        raise CertsError("no rotation under way in %s (no %s/)" % (pki, PREVIOUS))
    serial = index.serial_hex(_load_cert(os.path.join(prev, ca.CA_CRT)).serial_number)
    os.makedirs(os.path.join(pki, RETIRED), exist_ok=True)
    dest = os.path.join(pki, RETIRED, serial)
    if os.path.exists(dest):
        raise CertsError("%s already exists; move it away first" % dest)
    os.replace(prev, dest)
    return {"ca": ca.paths(pki)["crt"], "retired": dest, "bundle": _bundle(pki)}


def _cn(cert):
    a = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    return a[0].value if a else None


def _bundle(pki):
    """ca-bundle.crt: the previous root (while a rotation is under way) then the current one."""
    data = b""
    for d in (os.path.join(pki, PREVIOUS), pki):
        p = os.path.join(d, ca.CA_CRT)
        if os.path.exists(p):
            data += _load_cert(p).public_bytes(serialization.Encoding.PEM)
    return files.write(os.path.join(pki, BUNDLE), data)


# ---- list ----

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text):
    t = text.strip().lower()
    unit = "d"
    if t and t[-1] in _UNITS:
        unit, t = t[-1], t[:-1]
    try:
        n = int(t)
        if n < 0:
            raise ValueError
    except ValueError:
        raise CertsError("--expiring %r: give a duration such as 30d, 12h, 2w or 90 (days)" % text)
    return datetime.timedelta(seconds=n * _UNITS[unit])


def records(pki):
    """[(serial, not_after_text, status, subject, path, ca_label)] over every CA in use. status:
    valid, expired, revoked, or replaced (renewed: the file now holds a newer certificate)."""
    stamp = ca.now().strftime(index.TIME_FMT)
    out = []
    for label, d in ca_dirs(pki):
        revoked = {s for s, _, _ in index.revoked(d)}
        for serial, (until, subject, path) in index.issued(d).items():
            # TIME_FMT sorts like the time it writes, so text comparison is enough here.
            status = "revoked" if serial in revoked else "expired" if until < stamp else "valid"
            out.append([serial, until, status, subject, path, label])
    # A path issued more than once (renew): only the certificate the file holds now is current.
    seen = {}
    for r in out:
        seen[r[4]] = seen.get(r[4], 0) + 1
    current = {}
    for r in out:
        if seen[r[4]] > 1 and r[2] != "revoked":
            if r[4] not in current:
                try:
                    current[r[4]] = _load_cert(r[4]).serial_number
                except CertsError:
                    current[r[4]] = None
            if current[r[4]] is not None and current[r[4]] != r[0]:
                r[2] = "replaced"
    return [tuple(r) for r in out]


def expiring(pki, within):
    """The records not revoked whose notAfter is before now + within (expired ones included),
    soonest first."""
    limit = (ca.now() + within).strftime(index.TIME_FMT)
    rows = [r for r in records(pki) if r[2] in ("valid", "expired") and r[1] <= limit]
    return sorted(rows, key=lambda r: r[1])

