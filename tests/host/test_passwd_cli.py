# gatemq-passwd end to end: the console script writes the users file, and the core's
# authenticator (on CPython and on the MicroPython unix port) accepts exactly those passwords.
import json
import os
import stat
import subprocess
import sys

from gatemq import auth, config

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TOOL = os.path.join(ROOT, ".venv", "bin", "gatemq-passwd")
MICROPYTHON = os.path.join(ROOT, ".venv", "bin", "micropython")
MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")


def run(*args, stdin=None):
    cmd = [TOOL] if os.path.exists(TOOL) else [sys.executable, "-m", "gatemq.cpython.passwd"]
    # A new session has no controlling terminal, so getpass falls back to reading stdin.
    return subprocess.run(cmd + list(args), input=stdin, capture_output=True, text=True,
                          start_new_session=True, timeout=60)


class C:
    def __init__(self, username, password):
        self.clientid = "c"
        self.username = username
        self.password = password
        self.listener_bind_host = "0.0.0.0"


def rc_for(path, user, password):
    cfg = config.load('authentication = [{mechanism = password_based, backend = built_in_database, '
                      'user_file = %s}]' % json.dumps(path))["authentication"]
    a = auth.Authenticator(cfg, lambda p: open(p, "rb").read(), lambda: 0, lambda level, msg: None)
    c = C(user, password)
    return a.authenticate(c, {})[0], c


def test_create_add_change_delete(tmp_path):
    f = str(tmp_path / "users")
    r = run("-c", "-b", f, "alice", "wonder")
    assert r.returncode == 0, r.stderr
    assert stat.S_IMODE(os.stat(f).st_mode) == 0o600
    assert "wonder" not in open(f).read()
    assert rc_for(f, "alice", b"wonder")[0] == 0
    assert rc_for(f, "alice", b"nope")[0] == 0x86

    assert run("-b", "--superuser", "--algorithm", "sha256", f, "root", "toor").returncode == 0
    rc, c = rc_for(f, "root", b"toor")
    assert rc == 0 and c.is_superuser
    assert rc_for(f, "alice", b"wonder")[0] == 0  # adding kept the other user

    assert run("-b", f, "alice", "changed").returncode == 0
    assert rc_for(f, "alice", b"wonder")[0] == 0x86
    assert rc_for(f, "alice", b"changed")[0] == 0
    assert len(open(f).read().splitlines()) == 2

    assert run("-D", f, "alice").returncode == 0
    assert rc_for(f, "alice", b"changed")[0] == 0x87  # unknown now: the chain is exhausted
    r = run("-D", f, "alice")
    assert r.returncode == 1 and "not in" in r.stderr


def test_prompted_password(tmp_path):
    f = str(tmp_path / "users")
    r = run("-c", f, "dev", stdin="s3cret\ns3cret\n")
    assert r.returncode == 0, r.stderr
    assert rc_for(f, "dev", b"s3cret")[0] == 0
    r = run(f, "dev", stdin="one\ntwo\n")
    assert r.returncode == 1 and "do not match" in r.stderr
    assert rc_for(f, "dev", b"s3cret")[0] == 0


def test_usage_errors(tmp_path):
    f = str(tmp_path / "missing")
    r = run("-b", f, "u", "p")
    assert r.returncode == 1 and "-c" in r.stderr
    r = run("-c", f, "u", "p")
    assert r.returncode == 1 and "-b" in r.stderr
    assert not os.path.exists(f)


# build/mpy/lib comes from `make firmware-files`, which `make test` runs first.
def test_micropython_core_accepts_the_tools_pbkdf2_hash(tmp_path):
    f = str(tmp_path / "users")
    assert run("-c", "-b", "--iterations", "1000", f, "mp", "pw-mp").returncode == 0
    script = tmp_path / "check.py"
    script.write_text(
        "from gatemq import auth, config\n"
        "class C: pass\n"
        "def rc(pw):\n"
        "    c = C(); c.clientid = 'c'; c.username = 'mp'; c.password = pw; c.listener_bind_host = '0.0.0.0'\n"
        "    cfg = config.load('authentication = [{mechanism = password_based, '\n"
        "                      'backend = built_in_database, user_file = %s}]')['authentication']\n"
        "    a = auth.Authenticator(cfg, lambda p: open(p, 'rb').read(), lambda: 0, lambda l, m: None)\n"
        "    return a.authenticate(c, {})[0]\n"
        "print(rc(b'pw-mp'), rc(b'wrong'))\n" % json.dumps(f))
    out = subprocess.run([MICROPYTHON, str(script)], env=dict(os.environ, MICROPYPATH=MPY_LIB),
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["0", "134"], out.stderr
