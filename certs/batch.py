# A fleet from a CSV file: one folder per device under <pki>/devices/, holding everything that is
# burnt onto that device (its key and certificate, and the CA to check the broker with), in PEM for
# hosts and DER for MicroPython.
import csv
import os

from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from . import ca, files, issue, names
from .errors import CertsError

COLUMNS = ("cn", "o", "ou", "c", "st", "l", "email", "uid", "serial_number", "days")
ALIASES = {"serialnumber": "serial_number", "emailaddress": "email"}
DEVICE_FILES = ("client.key", "client.key.der", "client.crt", "client.crt.der", "ca.crt",
                "ca.crt.der")


def read_rows(path, default_days):
    """Check the whole CSV before anything is issued: [(line, cn, folder, subject, days)]."""
    try:
        f = open(path, newline="", encoding="utf-8-sig")  # -sig: spreadsheets prepend a BOM
    except OSError as e:
        raise CertsError("cannot read %s: %s" % (path, e.strerror))
    with f:
        try:
            return _parse(f, path, default_days)
        except UnicodeDecodeError:
            raise CertsError("%s is not UTF-8 text; save it as CSV UTF-8" % path)
        except csv.Error as e:
            raise CertsError("%s: not valid CSV: %s" % (path, e))


def _parse(f, path, default_days):
    reader = csv.DictReader(f)
    if not reader.fieldnames:
        raise CertsError("%s is empty; it needs a header line such as `cn,o,ou`" % path)
    header = {}
    for col in reader.fieldnames:
        key = (col or "").strip().lower()
        key = ALIASES.get(key, key)
        if key not in COLUMNS:
            raise CertsError("%s: unknown column %r; the columns are %s"
                             % (path, col, ", ".join(COLUMNS)))
        header[col] = key
    if "cn" not in header.values():
        raise CertsError("%s: the header has no `cn` column (the device's common name)" % path)
    rows, seen = [], {}
    for row in reader:
        line = reader.line_num
        if None in row:
            raise CertsError("%s:%d: more fields than the header has columns" % (path, line))
        values = {header[k]: (v or "").strip() for k, v in row.items()}
        if not any(values.values()):
            continue
        cn = values.get("cn", "")
        if not cn:
            raise CertsError("%s:%d: the cn field is empty" % (path, line))
        days = default_days
        if values.get("days"):
            try:
                days = int(values["days"])
            except ValueError:
                raise CertsError("%s:%d: days %r is not a whole number"
                                 % (path, line, values["days"]))
            if days < 1:
                raise CertsError("%s:%d: days must be at least 1" % (path, line))
        try:
            subject = names.build_name(values)
            folder = names.safe_filename(cn)
        except CertsError as e:
            raise CertsError("%s:%d: %s" % (path, line, e))
        # Compared case-blind: on macOS and Windows "Dev1" and "dev1" are one folder.
        if folder.lower() in seen:
            raise CertsError("%s:%d: cn %r gives the folder name %r, as does line %d; "
                             "common names must differ in letters, digits, '.', '_' or '-'"
                             " other than by case" % (path, line, cn, folder, seen[folder.lower()]))
        seen[folder.lower()] = line
        rows.append((line, cn, folder, subject, days))
    if not rows:
        raise CertsError("%s lists no devices" % path)
    return rows


def run(pki, csv_path, days=1825, rsa_bits=None, eku=True, force=False):
    """Issue every device; returns [(cn, folder_path, "issued" | "exists")]."""
    rows = read_rows(csv_path, days)
    ca_key, ca_cert = ca.load_ca(pki)
    ca_pem = ca_cert.public_bytes(serialization.Encoding.PEM)
    ca_der = ca_cert.public_bytes(serialization.Encoding.DER)
    report = []
    for line, cn, folder, subject, d in rows:
        where = os.path.join(pki, "devices", folder)
        # Re-running after appending rows to the CSV issues only the new devices.
        if not force and os.path.exists(os.path.join(where, "client.crt")):
            report.append((cn, where, "exists"))
            continue
        key, cert = issue.make_leaf(ca_key, ca_cert, subject, d, rsa_bits,
                                    ExtendedKeyUsageOID.CLIENT_AUTH if eku else None)
        issue.write_pair(pki, key, cert, os.path.join(where, "client.key"),
                         os.path.join(where, "client.crt"), overwrite=True)
        files.write(os.path.join(where, "ca.crt"), ca_pem)
        files.write(os.path.join(where, "ca.crt.der"), ca_der)
        report.append((cn, where, "issued"))
    return report
