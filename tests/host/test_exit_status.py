# Both ports exit with the same status for the same failure: 0 ok, 1 cannot start (a port in
# use), 2 config error (a wrong key, a missing config file); --help lists them.
import os
import socket
import subprocess

import pytest

from brokers import PYTHON, ROOT, VENV_BIN

MP = os.path.join(VENV_BIN, "micropython")
MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
RUNTIMES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "server.mpy")),
    reason="run `make firmware-files` first"))]


def _run(runtime, *args):
    if runtime == "cpython":
        cmd, env = [PYTHON, "-m", "gatemq.cpython"], None
    else:
        cmd, env = [MP, "-m", "gatemq.micropython"], dict(os.environ, MICROPYPATH=MPY_LIB)
    return subprocess.run(cmd + list(args), env=env, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_config_error_exits_2(tmp_path, runtime):
    conf = tmp_path / "gatemq.conf"
    conf.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\ndashboard.enable = false\n'
                    'mqtt.max_qos_alowed = 1\n')
    for flag in ("--config", "--check-config"):
        p = _run(runtime, flag, str(conf))
        assert p.returncode == 2, (flag, p.returncode, p.stderr)
        assert "%s:3:" % conf in p.stderr and "max_qos_allowed" in p.stderr, p.stderr
    # a config file that is not there is a config error too
    p = _run(runtime, "--config", str(tmp_path / "missing.conf"))
    assert p.returncode == 2 and "missing.conf" in p.stderr, (p.returncode, p.stderr)


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_port_in_use_exits_1(tmp_path, runtime):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        conf = tmp_path / "gatemq.conf"
        conf.write_text('listeners.tcp.default.bind = "127.0.0.1:%d"\ndashboard.enable = false\n' % port)
        p = _run(runtime, "--config", str(conf))
    assert p.returncode == 1, (p.returncode, p.stderr)
    assert str(port) in p.stderr, p.stderr


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_help_lists_the_exit_statuses(runtime):
    p = _run(runtime, "--help")
    assert p.returncode == 0
    text = " ".join(p.stdout.split())
    assert "0 ok" in text and "1 cannot start" in text and "2 config error" in text, p.stdout
