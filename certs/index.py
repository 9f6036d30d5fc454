# Two small text files in the PKI folder: issued.txt (every certificate signed, so `revoke` can
# tell a typo from a real serial) and revoked.txt (what the next `crl` lists). One record a line,
# tab-separated, serials in upper-case hex as `openssl x509 -noout -serial` prints them.
import datetime
import os

from . import ca, files
from .errors import CertsError

ISSUED = "issued.txt"
REVOKED = "revoked.txt"
TIME_FMT = "%Y%m%d%H%M%SZ"


def serial_hex(n):
    h = "%X" % n
    return "0" + h if len(h) % 2 else h


def parse_serial(text):
    """A serial as openssl or a user writes it: hex, optional `serial=`/`0x`, colons allowed."""
    t = text.strip()
    if t.lower().startswith("serial="):
        t = t[7:]
    if t.lower().startswith("0x"):
        t = t[2:]
    t = t.replace(":", "").replace(" ", "")
    try:
        if not t:
            raise ValueError
        return int(t, 16)
    except ValueError:
        raise CertsError("%r is neither a certificate file nor a hex serial number "
                         "(as `openssl x509 -noout -serial` prints it)" % text)


def _lines(path):
    if not os.path.exists(path):
        return []
    out = []
    for n, line in enumerate(files.read(path, "index").decode("utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split("\t")
        try:
            parts[0] = int(parts[0], 16)
        except ValueError:
            raise CertsError("%s:%d: bad serial %r; fix or remove that line" % (path, n, parts[0]))
        out.append(parts)
    return out


def _append(path, fields):
    # Appending (not rewriting) keeps a batch of thousands of devices linear; a record is one
    # short write, so an interrupted run loses at most its last line.
    line = ("\t".join(fields) + "\n").encode("utf-8")
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, size - 1, os.SEEK_SET)  # O_APPEND still writes at the end
            if os.read(fd, 1) != b"\n":
                line = b"\n" + line  # someone edited the file and left no final newline
        os.write(fd, line)
    finally:
        os.close(fd)


def record_issued(pki, cert, path):
    _append(os.path.join(pki, ISSUED), [
        serial_hex(cert.serial_number), ca.not_after(cert).strftime(TIME_FMT),
        cert.subject.rfc4514_string().replace("\t", " "), path])


def issued(pki):
    """{serial: (not_after_text, subject, path)}"""
    return {p[0]: tuple(p[1:4]) for p in _lines(os.path.join(pki, ISSUED))}


def revoked(pki):
    """[(serial, datetime, reason_or_empty)] in the order they were revoked."""
    out = []
    for p in _lines(os.path.join(pki, REVOKED)):
        when = datetime.datetime.strptime(p[1], TIME_FMT).replace(tzinfo=datetime.timezone.utc)
        out.append((p[0], when, p[2] if len(p) > 2 else ""))
    return out


def record_revoked(pki, serial, when, reason=""):
    _append(os.path.join(pki, REVOKED), [serial_hex(serial), when.strftime(TIME_FMT), reason])
