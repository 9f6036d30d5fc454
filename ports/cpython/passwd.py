# gatemq-passwd: manage the users file of a password_based/built_in_database authenticator, the
# way mosquitto_passwd manages Mosquitto's. Hashes come from gatemq.pwhash, so the broker on either
# port checks exactly what this tool wrote.
import argparse
import getpass
import json
import os
import sys

from gatemq import auth, pwhash
from gatemq.errors import ConfigError

from .files import write

USAGE = """gatemq-passwd [-c] [--algorithm A] [--superuser] FILE USER          (prompts for the password)
       gatemq-passwd -b [-c] [--algorithm A] [--superuser] FILE USER PASSWORD
       gatemq-passwd -D FILE USER"""


def _parser():
    p = argparse.ArgumentParser(prog="gatemq-passwd", usage=USAGE,
                                description="Add, change or delete a user in a gatemq users file "
                                            "(authentication.user_file). One JSON object per line.")
    p.add_argument("-c", dest="create", action="store_true",
                   help="create the file, replacing it if it exists")
    p.add_argument("-b", dest="batch", action="store_true",
                   help="take the password from the command line (it will be visible in the process list)")
    p.add_argument("-D", dest="delete", action="store_true", help="delete USER")
    p.add_argument("--algorithm", default="pbkdf2", choices=pwhash.ALGORITHMS,
                   help="hash algorithm stored with the user (default pbkdf2)")
    p.add_argument("--iterations", type=int, default=4096, help="pbkdf2 iterations (default 4096)")
    p.add_argument("--salt-position", default=None, choices=pwhash.SALT_POSITIONS,
                   help="for plain/sha256/md5 (default prefix; plain: disable)")
    p.add_argument("--superuser", action="store_true", help="the user bypasses authorization (is_superuser)")
    p.add_argument("file")
    p.add_argument("user")
    p.add_argument("password", nargs="?")
    return p


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return None


def _user_of(line):
    s = line.strip()
    if not s or s.startswith("#"):
        return None
    try:
        obj = json.loads(s)
    except ValueError:
        return None
    return obj.get("user_id") if isinstance(obj, dict) else None


def _write(path, lines):
    # Atomic replace, readable only by the owner: the file holds password hashes.
    write(path, "".join(line + "\n" for line in lines), private=True)


def _algorithm(args):
    algo = {"name": args.algorithm}
    if args.algorithm == "pbkdf2":
        algo.update(mac_fun="sha256", iterations=args.iterations)
    elif args.salt_position:
        algo["salt_position"] = args.salt_position
    return pwhash.normalise(algo)


def _password(args, err):
    if args.batch:
        if args.password is None:
            err("-b needs PASSWORD after USER")
        return args.password
    if args.password is not None:
        err("a PASSWORD argument needs -b")
    first = getpass.getpass("Password: ")
    if getpass.getpass("Reenter password: ") != first:
        err("passwords do not match")
    return first


def main(argv=None):
    p = _parser()
    args = p.parse_args(argv)

    def err(msg):
        print("gatemq-passwd: error: " + msg, file=sys.stderr)
        sys.exit(1)

    if args.user == "" or any(c in args.user for c in "\n\r"):
        err("USER must be a non-empty single line")
    lines = None if args.create else _read_lines(args.file)
    if lines is None and not args.create:
        err("%s does not exist; use -c to create it" % args.file)
    if lines is None:
        lines = []
    if args.delete:
        if args.create or args.batch or args.password is not None:
            err("-D takes only FILE USER")
        kept = [line for line in lines if _user_of(line) != args.user]
        if len(kept) == len(lines):
            err("user %r is not in %s" % (args.user, args.file))
        _write(args.file, kept)
        return 0
    try:
        algo = _algorithm(args)
    except ConfigError as e:
        err(str(e))
    password = _password(args, err)
    salt = pwhash.new_salt(os.urandom) if not (algo["name"] == "plain" and algo.get("salt_position") == "disable") else ""
    entry = auth.format_user(args.user, pwhash.hash_password(algo, salt, password), salt, args.superuser, algo)
    out = []
    replaced = False
    for line in lines:
        if _user_of(line) == args.user:
            if not replaced:
                out.append(entry)
                replaced = True
            continue
        out.append(line)
    if not replaced:
        out.append(entry)
    try:
        auth.parse_users("\n".join(out), args.file)
    except ConfigError as e:
        err("%s would not load after this change: %s" % (args.file, e))
    _write(args.file, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
