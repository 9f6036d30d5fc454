# Time per JWT verification (HS256, RS256 2048-bit, ES256 P-256) and per pbkdf2 password check
# on CPython and on the MicroPython unix port, in one run, with the ratio between them.
# Usage: make firmware-files && .venv/bin/python bench/bench_jwt.py
# Tokens are signed here with `cryptography`; both runtimes verify the same tokens with gatemq.
import base64
import json
import os
import subprocess
import sys
import tempfile

from cryptography.hazmat.primitives import hashes, hmac, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")

# Runs under both Pythons: reads cases from a JSON file, prints "name microseconds" lines.
RUNNER = r"""
import sys, json, time
from gatemq import jwt, pwhash
try:
    now = time.ticks_us
    diff = time.ticks_diff
except AttributeError:
    now = lambda: int(time.perf_counter() * 1e6)
    diff = lambda a, b: a - b
cases = json.loads(open(sys.argv[1]).read())
for c in cases:
    if c["kind"] == "jwt":
        v = jwt.Verifier(c["cfg"])
        tok = c["token"]
        fn = lambda: v.verify(tok)
    else:
        a = c["algo"]
        fn = lambda: pwhash.check_password(a, c["salt"], c["password"], c["hash"])
    fn()  # warm up, and fail loudly if it does not verify
    n = c["n"]
    t = now()
    for _ in range(n):
        fn()
    print(c["name"], diff(now(), t) / n)
"""


def b64(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


def token(alg, sign):
    h = b64(json.dumps({"alg": alg, "typ": "JWT"}).encode())
    p = b64(json.dumps({"sub": "dev-1", "exp": 4102444800, "acl": {"pub": ["devices/dev-1/#"]}}).encode())
    return h + "." + p + "." + b64(sign((h + "." + p).encode()))


def cases():
    rk = rsa.generate_private_key(65537, 2048)
    ek = ec.generate_private_key(ec.SECP256R1())

    def hs(m):
        h = hmac.HMAC(b"bench-secret", hashes.SHA256())
        h.update(m)
        return h.finalize()

    def es(m):
        r, s = decode_dss_signature(ek.sign(m, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(32, "big") + s.to_bytes(32, "big")

    def pub(k):
        return k.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()

    from gatemq import pwhash
    algo = {"name": "pbkdf2", "mac_fun": "sha256", "iterations": 4096}
    return [
        {"kind": "jwt", "name": "HS256", "n": 200, "cfg": {"algorithm": "hmac-based", "secret": "bench-secret",
                                                               "secret_base64_encoded": False}, "token": token("HS256", hs)},
        {"kind": "jwt", "name": "RS256", "n": 50, "cfg": {"algorithm": "public-key", "public_key": pub(rk)},
         "token": token("RS256", lambda m: rk.sign(m, padding.PKCS1v15(), hashes.SHA256()))},
        {"kind": "jwt", "name": "ES256", "n": 5, "cfg": {"algorithm": "public-key", "public_key": pub(ek)},
         "token": token("ES256", es)},
        {"kind": "pw", "name": "pbkdf2-4096", "n": 2, "algo": algo, "salt": "0011",
         "password": "pw", "hash": pwhash.hash_password(algo, "0011", "pw")},
    ]


def run(cmd, env, case_file, runner_file):
    out = subprocess.run(cmd + [runner_file, case_file], env=env, capture_output=True, text=True, timeout=600)
    if out.returncode:
        sys.exit("benchmark failed under %s:\n%s" % (cmd[0], out.stderr))
    return dict((line.split()[0], float(line.split()[1])) for line in out.stdout.splitlines())


def main():
    with tempfile.TemporaryDirectory() as d:
        case_file = os.path.join(d, "cases.json")
        runner_file = os.path.join(d, "runner.py")
        with open(case_file, "w") as f:
            json.dump(cases(), f)
        with open(runner_file, "w") as f:
            f.write(RUNNER)
        cp = run([sys.executable], dict(os.environ), case_file, runner_file)
        mp = run([MICROPYTHON, "-X", "heapsize=8M"], dict(os.environ, MICROPYPATH=MPY_LIB), case_file, runner_file)
    print("%-12s %14s %18s %8s" % ("check", "CPython", "MicroPython unix", "ratio"))
    for name in cp:
        print("%-12s %11.3f ms %15.3f ms %7.1fx" % (name, cp[name] / 1000, mp[name] / 1000, mp[name] / cp[name]))


if __name__ == "__main__":
    main()
