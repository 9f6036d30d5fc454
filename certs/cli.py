# `gatemq-certs`: argument parsing and printing only; the work is in ca/issue/batch/crl/demo.
import argparse
import os
import sys

from . import batch, ca, crl, demo, files, index, issue, names, subca
from .errors import CertsError

DESCRIPTION = """\
Make the certificates a gatemq deployment needs: a CA, the broker's server certificate, one
client certificate per device (singly or a whole fleet from a CSV file), and the CRL the broker
checks. Keys are EC P-256 unless --rsa BITS is given. Private keys are written with mode 0600;
certificates and keys are also written as DER (*.der), the form MicroPython's tls module takes.
"""

EPILOG = """\
files in the PKI folder (--dir, default ./pki):
  ca.key ca.crt ca.crt.der          the CA (init-ca; never overwritten)
  NAME.key NAME.crt (+ .der)        server and client certificates
  devices/<cn>/                     batch: client.key client.crt ca.crt, each also as .der
  intermediates/<name>/             an intermediate CA (ca.key ca.crt chain.crt, own records, crl.pem)
  previous-ca/ ca-bundle.crt        during a CA rotation: the old root; both roots in one file
  issued.txt revoked.txt crlnumber  the records revoke and crl work from
  crl.pem                           the CRL (crl), for the broker's ssl_options.crlfile

examples:
  gatemq-certs init-ca --cn "acme devices CA"
  gatemq-certs server --host broker.acme.lan --ip 10.0.0.5
  gatemq-certs client --cn sensor-0042 --o acme --ou greenhouse
  gatemq-certs intermediate site7 --pathlen 0
  gatemq-certs client --cn sensor-0043 --ca site7 --dns sensor-0043.site7.lan --ip 10.7.0.43
  gatemq-certs renew sensor-0043 --revoke-old
  gatemq-certs rotate-ca --cn "acme devices CA 2"
  gatemq-certs list --expiring 30d
  gatemq-certs batch devices.csv
  gatemq-certs revoke pki/devices/sensor-0042/client.crt && gatemq-certs crl
  gatemq-certs list
  gatemq-certs demo --dir demo/pki

exit status: 0 on success, 2 on any error (the message says what to change).
"""


def _dir_option(p, default):
    p.add_argument("--dir", default=default, metavar="DIR",
                   help="PKI folder holding the CA and the certificates (default ./pki)")


def _common(p, days):
    _dir_option(p, argparse.SUPPRESS)
    p.add_argument("--days", type=int, default=days,
                   help="validity in days (default %d; capped at the CA's expiry)" % days)
    p.add_argument("--rsa", type=int, metavar="BITS",
                   help="make an RSA key of BITS bits (e.g. 2048) instead of EC P-256")


def _output_options(p):
    # server and client: the pair of files they write (NAME.key, NAME.crt and .der copies).
    p.add_argument("--out-dir", metavar="DIR", help="write the files here instead of --dir")
    p.add_argument("--force", action="store_true", help="replace existing files of that name")


def _subject_options(p):
    p.add_argument("--o", help="organization (O)")
    p.add_argument("--ou", help="organizational unit (OU)")
    p.add_argument("--c", help="country (C), two letters")
    p.add_argument("--st", help="state or province (ST)")
    p.add_argument("--l", help="locality (L)")
    p.add_argument("--email", help="emailAddress attribute of the subject")
    p.add_argument("--uid", help="UID attribute (0.9.2342.19200300.100.1.1)")
    p.add_argument("--serial-number", dest="serial_number",
                   help="serialNumber attribute of the subject (e.g. the device's hardware serial)")


def parser():
    ap = argparse.ArgumentParser(prog="gatemq-certs", description=DESCRIPTION, epilog=EPILOG,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    _dir_option(ap, "pki")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p = sub.add_parser("init-ca", help="create the CA key and self-signed CA certificate",
                       description="Create ca.key, ca.crt and ca.crt.der. Refuses to run when a "
                       "CA already exists in the folder.")
    _common(p, 3650)
    p.add_argument("--cn", default="gatemq demo CA", help="the CA's common name")

    p = sub.add_parser("server", help="issue the broker's server certificate (SANs, serverAuth)",
                       description="Issue NAME.key/NAME.crt (and .der copies) for the broker. "
                       "Clients check the name they connect to against --host and --ip.")
    _common(p, 825)
    p.add_argument("--host", action="append", default=[], metavar="NAME",
                   help="DNS name clients use (repeatable); the first is also the CN")
    p.add_argument("--ip", action="append", default=[], metavar="ADDR",
                   help="IPv4/IPv6 address clients use (repeatable)")
    p.add_argument("--name", default="server", help="file base name (default server)")
    _output_options(p)

    p = sub.add_parser("client", help="issue one device certificate (clientAuth)",
                       description="Issue NAME.key/NAME.crt (and .der copies) for one device. "
                       "The subject fields are what the broker's peer_cert_as_username/clientid "
                       "mapping reads.")
    _common(p, 1825)
    p.add_argument("--cn", required=True, help="common name (CN), e.g. the device id")
    _subject_options(p)
    p.add_argument("--name", help="file base name (default: the CN made file-safe)")
    p.add_argument("--no-eku", action="store_true",
                   help="leave out extendedKeyUsage (to test verify_peer_ext_key_usage)")
    p.add_argument("--ca", metavar="NAME",
                   help="sign with the intermediate CA NAME (see `intermediate`) instead of the "
                   "root; also writes NAME.chain.crt (device + intermediate)")
    p.add_argument("--dns", "--san-dns", dest="dns", action="append", default=[], metavar="NAME",
                   help="DNS subjectAltName (repeatable); client attributes: cert_san.dns")
    p.add_argument("--ip", "--san-ip", dest="ip", action="append", default=[], metavar="ADDR",
                   help="IP subjectAltName (repeatable); cert_san.ip")
    p.add_argument("--san-email", dest="san_email", action="append", default=[], metavar="ADDR",
                   help="email (rfc822Name) subjectAltName (repeatable); cert_san.email")
    p.add_argument("--uri", "--san-uri", dest="uri", action="append", default=[], metavar="URI",
                   help="URI subjectAltName (repeatable); cert_san.uri")
    _output_options(p)

    p = sub.add_parser("intermediate", help="create an intermediate CA signed by the root",
                       description="Create DIR/intermediates/NAME/ with ca.key, ca.crt (.der) and "
                       "chain.crt (intermediate + root): a sub-CA with its own key, signed by the "
                       "root, with basicConstraints CA:TRUE and pathlen. Issue devices with "
                       "`client --ca NAME`; revoke and `crl --ca NAME` keep its own CRL.")
    _common(p, 1825)
    p.add_argument("name", metavar="NAME", help="the intermediate's name (a folder name)")
    p.add_argument("--cn", help="its common name (default: 'NAME intermediate CA')")
    p.add_argument("--pathlen", type=int, default=0,
                   help="basicConstraints pathlen: how many CAs may stand below it (default 0: "
                   "it signs devices only)")
    p.add_argument("--force", action="store_true", help="replace an existing intermediate NAME")

    p = sub.add_parser("renew", help="reissue a device: new key and serial, same subject and SANs",
                       description="DEVICE is a certificate file, a NAME (DIR/NAME.crt) or a batch "
                       "device's CN (DIR/devices/<cn>/client.crt). Its key and certificate files "
                       "are replaced by a new key and a certificate with a new serial and the same "
                       "subject, subjectAltNames and extended key usage, signed by the CA that "
                       "signed it (the new root if that was the previous root of a rotation).")
    _dir_option(p, argparse.SUPPRESS)
    p.add_argument("device", metavar="DEVICE")
    p.add_argument("--days", type=int, help="validity (default: the old certificate's lifetime)")
    p.add_argument("--rsa", type=int, metavar="BITS", help="RSA key of BITS bits (default: the "
                   "old key's kind)")
    p.add_argument("--revoke-old", action="store_true",
                   help="revoke the old serial (reason superseded) and write that CA's CRL")

    p = sub.add_parser("rotate-ca", help="start (or --finish) replacing the root CA",
                       description="Move the root (ca.key, ca.crt and its records) to "
                       "DIR/previous-ca/, create a new root, and write DIR/ca-bundle.crt with both, "
                       "the broker's cacertfile during the transition. `renew` then reissues "
                       "devices with the new root. --finish retires previous-ca/ to "
                       "DIR/retired/<serial>/ and leaves only the new root in ca-bundle.crt.")
    _common(p, 3650)
    p.add_argument("--cn", help="the new root's common name (default: the old one and the year)")
    p.add_argument("--finish", action="store_true",
                   help="end the transition: retire the previous root")

    p = sub.add_parser("batch", help="issue a fleet of device certificates from a CSV file",
                       description="CSV with a header line; columns cn (required), o, ou, c, st, "
                       "l, email, uid, serial_number, days. Each device gets DIR/devices/<cn>/ "
                       "with client.key, client.crt, ca.crt and their .der copies. Devices that "
                       "already have a folder are skipped, so rows can be appended and the batch "
                       "run again.")
    _common(p, 1825)
    p.add_argument("csv", metavar="devices.csv")
    p.add_argument("--no-eku", action="store_true", help="leave out extendedKeyUsage")
    p.add_argument("--force", action="store_true", help="reissue devices that already exist")

    p = sub.add_parser("revoke", help="record a certificate as revoked (then run `crl`)",
                       description="Record SERIAL (hex, as `openssl x509 -noout -serial` prints "
                       "it) or the certificate in CERTFILE as revoked in revoked.txt. Run `crl` "
                       "afterwards to publish it.")
    _dir_option(p, argparse.SUPPRESS)
    p.add_argument("target", metavar="SERIAL|CERTFILE")
    p.add_argument("--ca", metavar="NAME", help="the intermediate CA that issued it (found by "
                   "itself for a CERTFILE)")
    p.add_argument("--reason", default="", choices=crl.REASONS, metavar="REASON",
                   help="CRL reason code: " + ", ".join(crl.REASONS))
    p.add_argument("--force", action="store_true",
                   help="revoke a serial that issued.txt does not know")

    p = sub.add_parser("crl", help="write the CRL the broker reads (ssl_options.crlfile)",
                       description="Write a CRL signed by the CA listing every revoked serial.")
    _dir_option(p, argparse.SUPPRESS)
    p.add_argument("--out", metavar="FILE", help="output file (default DIR/crl.pem, or crl.der)")
    p.add_argument("--days", type=int, default=30,
                   help="days until nextUpdate (default 30); publish a new CRL before then")
    p.add_argument("--der", action="store_true", help="write DER instead of PEM")
    p.add_argument("--ca", metavar="NAME", help="the CRL of intermediate CA NAME (default "
                   "DIR/intermediates/NAME/crl.pem)")
    p.add_argument("--all", action="store_true", help="one PEM file with the CRLs of the root, "
                   "the previous root and every intermediate")

    p = sub.add_parser("list", help="show every certificate issued, its expiry and if revoked",
                       description="One line per certificate in issued.txt (of the root, the "
                       "previous root and every intermediate): serial, notAfter, status (valid, "
                       "expired, revoked, or replaced by a renewal), subject, file and the CA.")
    _dir_option(p, argparse.SUPPRESS)
    p.add_argument("--expiring", metavar="DURATION",
                   help="only certificates in use (not revoked or replaced) that expire within "
                   "DURATION (30d, 12h, 2w; a bare number is days) or have expired, soonest first")

    p = sub.add_parser("demo", help="create (if missing) a demo CA, server and two devices",
                       description="Idempotent: makes a demo CA, a server certificate for "
                       "localhost, 127.0.0.1 and ::1, client certificates device1 and device2 "
                       "(O=gatemq demo) and an empty CRL, each only if missing.")
    _dir_option(p, argparse.SUPPRESS)
    return ap


def _print_paths(paths):
    # What issue.write_pair wrote: the PEM and DER files, then NAME.chain.crt when the signer was
    # an intermediate CA.
    for key in ("crt", "key", "crt_der", "key_der"):
        print(paths[key])
    if "chain" in paths:
        print(paths["chain"])


def run(args):
    pki = args.dir
    if args.command == "init-ca":
        p = ca.init_ca(pki, args.cn, args.days, args.rsa)
        print(p["crt"])
        print(p["key"])
        print(p["der"])
    elif args.command == "server":
        _print_paths(issue.server(pki, args.host, args.ip, args.name, args.days, args.rsa,
                                  args.out_dir, args.force))
    elif args.command == "client":
        subject = names.build_name(vars(args))
        name = args.name or names.safe_filename(args.cn)
        p = issue.client(pki, subject, name, args.days, args.rsa, not args.no_eku,
                         args.out_dir, args.force, args.ca, args.dns, args.ip, args.san_email,
                         args.uri)
        _print_paths(p)
    elif args.command == "intermediate":
        p = subca.intermediate(pki, args.name, args.cn, args.days, args.pathlen, args.rsa,
                               args.force)
        for k in ("crt", "key", "der", "chain"):
            print(p[k])
    elif args.command == "renew":
        p = subca.renew(pki, args.device, args.days, args.rsa, args.revoke_old)
        _print_paths(p)
        print("renewed: serial %s replaces %s" % (index.serial_hex(p["serial"]),
                                                   index.serial_hex(p["old_serial"])),
              file=sys.stderr)
        if "crl" in p:
            print("revoked serial %s; CRL written to %s" % (index.serial_hex(p["old_serial"]),
                                                            p["crl"]), file=sys.stderr)
    elif args.command == "rotate-ca":
        if args.finish:
            r = subca.finish(pki)
            print(r["bundle"])
            print("previous root retired to %s" % r["retired"], file=sys.stderr)
        else:
            r = subca.rotate(pki, args.cn, args.days, args.rsa)
            print(r["ca"])
            print(r["bundle"])
            print("the old root is in %s; use %s as the broker's cacertfile until every device "
                  "is renewed, then run rotate-ca --finish" % (r["previous"], r["bundle"]),
                  file=sys.stderr)
    elif args.command == "batch":
        report = batch.run(pki, args.csv, args.days, args.rsa, not args.no_eku, args.force)
        for cn, where, status in report:
            print("%-7s %s\t%s" % (status, where, cn))
        issued = sum(1 for r in report if r[2] == "issued")
        print("%d issued, %d already present" % (issued, len(report) - issued), file=sys.stderr)
    elif args.command == "revoke":
        where, hint = subca.ca_dir(pki, args.ca), " --ca %s" % args.ca if args.ca else ""
        if not args.ca and os.path.isfile(args.target):
            found = subca.issuer_dir(pki, ca.load_cert_bytes(files.read(args.target, "certificate"),
                                                             args.target))
            if found and found[1] != pki:
                where = found[1]
                hint = " --ca %s" % found[0].split("/", 1)[1] if "/" in found[0] else ""
        serial, new = crl.revoke(where, args.target, args.reason, args.force)
        print("%s serial %s; run `gatemq-certs --dir %s crl%s` to publish the CRL"
              % ("revoked" if new else "already revoked:", index.serial_hex(serial), pki, hint))
    elif args.command == "crl":
        if args.all:
            also = [d for _, d in subca.ca_dirs(pki)[1:]]
            print(crl.make_crl(pki, args.out, args.days, args.der, also))
        elif args.ca:
            print(crl.make_crl(subca.ca_dir(pki, args.ca), args.out, args.days, args.der))
        else:
            prev = [d for label, d in subca.ca_dirs(pki) if label == subca.PREVIOUS]
            print(crl.make_crl(pki, args.out, args.days, args.der, [] if args.der else prev))
    elif args.command == "list":
        if args.expiring is not None:
            rows = subca.expiring(pki, subca.parse_duration(args.expiring))
        else:
            rows = subca.records(pki)
        for serial, until, status, subject, path, label in rows:
            print("%s\t%s\t%-8s\t%s\t%s\t%s" % (index.serial_hex(serial), until, status, subject,
                                                  path, label))
        if args.expiring is not None:
            print("%d certificate(s) expire within %s" % (len(rows), args.expiring),
                  file=sys.stderr)
    elif args.command == "demo":
        r = demo.ensure(pki)
        print("made: %s" % (", ".join(r["made"]) or "nothing (all present)"))
        print("ca      %s" % r["ca"])
        print("ca_der  %s" % r["ca_der"])
        for what, p in (("server", r["server"]),) + tuple(sorted(r["clients"].items())):
            print("%-7s %s %s" % (what, p["crt"], p["key"]))
            print("%-7s %s %s" % ("", p["crt_der"], p["key_der"]))
        print("crl     %s" % r["crl"])


def main(argv=None):
    args = parser().parse_args(argv)
    try:
        run(args)
    except BrokenPipeError:  # `gatemq-certs list | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CertsError as e:
        print("gatemq-certs: error: %s" % e, file=sys.stderr)
        return 2
    except OSError as e:
        print("gatemq-certs: error: %s%s" % (e.strerror or e,
              (": " + e.filename) if getattr(e, "filename", None) else ""), file=sys.stderr)
        return 2
    return 0
