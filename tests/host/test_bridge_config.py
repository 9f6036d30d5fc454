# bridges.mqtt.<name> mistakes are config errors with file:line:col, checked by --check-config on
# both ports (exit status 2), each fenced by the same file made right (exit status 0).
import os
import subprocess

import pytest

from brokers import PYTHON, ROOT, VENV_BIN
from bridgeutil import bridge_pki

MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
MP = os.path.join(VENV_BIN, "micropython")

GOOD = """listeners.tcp.default.bind = "127.0.0.1:0"
dashboard.enable = false
bridges.mqtt.cloud {
  server = "mqtts://127.0.0.1:8883"
  ssl { certfile = "%(crt)s", keyfile = "%(key)s", cacertfile = "%(ca)s" }
  forwards = [
    { local_topic = "sensors/+/#", remote_topic = "gw/gw-17/sensors/+/#", qos = 1 }
  ]
  subscription = [ { remote_topic = "gw/gw-17/cmd/#", local_topic = "cmd/#" } ]
}
"""

BAD = [
    # (replace this, with that, the key named, line, column)
    ('remote_topic = "gw/gw-17/sensors/+/#"', 'remote_topic = "gw/gw-17/sensors/#"',
     "bridges.mqtt.cloud.forwards.1.remote_topic", 7, 55),
    ('local_topic = "cmd/#"', 'local_topic = "cmd/+"', "bridges.mqtt.cloud.subscription.1.remote_topic", 9, 20),
    ('server = "mqtts://127.0.0.1:8883"', 'server = "http://127.0.0.1:8883"', "bridges.mqtt.cloud.server", 4, 12),
    ('qos = 1 }', 'qos = 3 }', "bridges.mqtt.cloud.forwards.1.qos", 7, 86),
]


def runtimes():
    out = [("cpython", [PYTHON, "-m", "gatemq.cpython", "--check-config"], None)]
    if os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "bridge.mpy")):
        out.append(("micropython", [MP, "-m", "gatemq.micropython", "--check-config"],
                    dict(os.environ, MICROPYPATH=MPY_LIB)))
    return out


@pytest.mark.parametrize("runtime", ["cpython", "micropython"])
def test_bridge_config_errors_with_position(tmp_path, runtime):
    rt = dict((r[0], r) for r in runtimes()).get(runtime)
    if rt is None:
        pytest.skip("run `make firmware-files` first")
    pki = bridge_pki(tmp_path / "pki")
    good = GOOD % {"crt": pki.gw.crt, "key": pki.gw.key, "ca": pki.root.crt}
    path = tmp_path / "gw.conf"

    def check(text):
        path.write_text(text)
        return subprocess.run(rt[1] + [str(path)], env=rt[2], capture_output=True, text=True, timeout=60)

    p = check(good)
    assert p.returncode == 0, p.stdout + p.stderr
    for old, new, key, line, col in BAD:
        assert old in good
        p = check(good.replace(old, new))
        assert p.returncode == 2, (new, p.stdout + p.stderr)
        assert "%s:%d:" % (path, line) in p.stderr and key in p.stderr, p.stderr
    # A certificate file that is not there is refused by --check-config too.
    p = check(good.replace(pki.gw.crt, pki.gw.crt + ".missing"))
    assert p.returncode == 2 and "gw.crt.missing" in p.stderr, p.stdout + p.stderr
