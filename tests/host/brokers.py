# Runs a real broker process for the behavioural tests.
#
#   with BrokerProcess('mqtt.idle_timeout = 1s', tmp_path=tmp_path) as b:
#       b.port                      # the tcp:default listener's port
#       b.ports[("tcp", "default")]
#       b.wait_log("idle", timeout=3)
#
# Every listener binds port 0; the broker reports each one on stderr as
# "listener <kind>:<name> listening on <host>:<port>", which is how the tests learn the ports.
# stderr is collected by a thread into .log_lines for the tests to assert log lines.
#
# Runtimes: "cpython" (python -m gatemq.cpython), "micropython" (the unix port, from
# build/mpy/lib, started through the shipped launcher firmware/gatemq-micropython, which turns
# SIGTERM into the port's clean SIGINT stop) and "mosquitto" (Debian's mosquitto with the config translated, used to check
# that the tests themselves are right: GATEMQ_TEST_RUNTIME=mosquitto pytest tests/host).
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_BIN = os.path.join(ROOT, ".venv", "bin")
MP_LAUNCHER = os.path.join(ROOT, "firmware", "gatemq-micropython")
PYTHON = os.path.join(VENV_BIN, "python") if os.path.exists(os.path.join(VENV_BIN, "python")) else sys.executable
LISTENING = re.compile(r"listener (\w+):([\w.-]+) listening on (.+):(\d+)\s*$")
NAMED_LISTENER = re.compile(r"listeners\.(\w+)\.([\w-]+)\.bind")

DEFAULT_RUNTIME = os.environ.get("GATEMQ_TEST_RUNTIME", "cpython")


class Untranslatable(Exception):
    """The config uses a gatemq feature Mosquitto has no equivalent for."""


class BrokerProcess:
    def __init__(self, config_text="", runtime=None, tmp_path=None, extra_args=(), listeners=None,
                 default_listener=True, start_timeout=15.0, env=None, cwd=None):
        # cwd: the folder the broker runs in (default: tmp_path, where the config is written);
        # given, the config is named by its path relative to cwd.
        self.runtime = runtime or DEFAULT_RUNTIME
        self.log_lines = []
        self.ports = {}
        self.returncode = None
        self._cond = threading.Condition()
        self._tmp = str(tmp_path) if tmp_path is not None else tempfile.mkdtemp(prefix="gatemq-test-")
        if default_listener and "tcp.default" not in config_text:
            config_text = 'listeners.tcp.default.bind = "127.0.0.1:0"\n' + config_text
        if self.runtime == "micropython" and "dashboard" not in config_text:
            # Its default bind is the fixed 127.0.0.1:18083, and its modules are heap the MQTT
            # tests do not need: tests of the API configure it (tests/host/test_dashboard_api.py).
            config_text = "dashboard.enable = false\n" + config_text
        self.config_text = config_text
        if listeners is None:
            listeners = [tuple(m) for m in NAMED_LISTENER.findall(config_text)]
        self._want = list(dict.fromkeys(listeners))
        if self.runtime == "mosquitto":
            cmd = self._mosquitto_cmd()
        else:
            path = os.path.join(self._tmp, "gatemq.conf")
            with open(path, "w") as f:
                f.write(config_text)
            self.config_path = path
            cmd = self._command(os.path.relpath(path, cwd) if cwd else path) + list(extra_args)
        proc_env = dict(os.environ)
        proc_env["PYTHONUNBUFFERED"] = "1"
        if self.runtime == "micropython":
            proc_env["MICROPYTHON"] = os.path.join(VENV_BIN, "micropython")
            proc_env["MICROPYTHON_OPTS"] = "-X heapsize=8M"
            proc_env.pop("MICROPYPATH", None)  # the launcher's default: build/mpy/lib of this tree
        if env:
            proc_env.update(env)
        self.cmd = cmd
        # A session (and process group) of its own: stop() can then end whatever the broker left
        # behind (the launcher's interpreter), and a terminal's Ctrl-C does not reach it.
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=cwd or self._tmp, env=proc_env,
                                     start_new_session=True)
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        try:
            self._wait_ready(start_timeout)
        except Exception:
            self.stop()
            raise

    def _command(self, path):
        if self.runtime == "cpython":
            return [PYTHON, "-m", "gatemq.cpython", "--config", path, "--log-level", "debug"]
        if self.runtime == "micropython":
            return [MP_LAUNCHER, "--config", path, "--log-level", "debug"]
        raise ValueError("unknown runtime %r" % self.runtime)

    def _mosquitto_cmd(self):
        port = free_port()
        self.ports[("tcp", "default")] = port
        self._want = []
        path = os.path.join(self._tmp, "mosquitto.conf")
        with open(path, "w") as f:
            f.write(mosquitto_config(self.config_text, port))
        self.config_path = path
        return ["mosquitto", "-c", path]

    def _read_stderr(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            m = LISTENING.search(line)
            with self._cond:
                if m:
                    self.ports[(m.group(1), m.group(2))] = int(m.group(4))
                self.log_lines.append(line)
                self._cond.notify_all()
        with self._cond:
            self._cond.notify_all()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        if self.runtime == "mosquitto":
            self.wait_log("mosquitto version", timeout)
            while time.monotonic() < deadline:
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return
                except OSError:
                    time.sleep(0.02)
            raise RuntimeError("mosquitto did not open its port")
        with self._cond:
            while True:
                have = set(self.ports)
                if (self._want and all(w in have for w in self._want)) or (not self._want and have):
                    return
                if self.proc.poll() is not None:
                    raise RuntimeError("broker exited with %s before listening:\n%s"
                                       % (self.proc.returncode, self.log()))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError("broker did not report its listeners %r in %.0fs:\n%s"
                                       % (self._want, timeout, self.log()))
                self._cond.wait(min(left, 0.2))

    @property
    def port(self):
        if ("tcp", "default") in self.ports:
            return self.ports[("tcp", "default")]
        return next(iter(self.ports.values()))

    def log(self):
        with self._cond:
            return "\n".join(self.log_lines)

    def _wait_line(self, found, what, timeout, start):
        """The first log line (from index start) for which found(line) is true; AssertionError
        saying "no log line WHAT" on timeout or once the broker has exited and its output is read."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = start
            while True:
                while i < len(self.log_lines):
                    if found(self.log_lines[i]):
                        return self.log_lines[i]
                    i += 1
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None and not self._reader.is_alive()):
                    raise AssertionError("no log line %s in %.1fs; log:\n%s"
                                         % (what, timeout, "\n".join(self.log_lines[-60:])))
                self._cond.wait(min(left, 0.2))

    def wait_log(self, substring, timeout=5.0, start=0):
        """The first log line (from index start) containing substring; AssertionError on timeout."""
        return self._wait_line(lambda line: substring in line, "containing %r" % (substring,), timeout, start)

    def wait_log_all(self, substrings, timeout=5.0, start=0):
        """The first log line containing every one of substrings, ignoring case."""
        substrings = [x.lower() for x in substrings]
        return self._wait_line(lambda line: all(x in line.lower() for x in substrings),
                               "containing all of %r" % (substrings,), timeout, start)

    def wait_log_about(self, who, keywords, timeout=3.0, start=0):
        """A log line naming `who` and any one of `keywords`, ignoring case."""
        who = who.lower()
        keywords = [k.lower() for k in keywords]

        def found(line):
            low = line.lower()
            return who in low and any(k in low for k in keywords)
        return self._wait_line(found, "naming %r with any of %r" % (who, keywords), timeout, start)

    def mark(self):
        """Index of the next log line, to search only what comes after an action."""
        with self._cond:
            return len(self.log_lines)

    def alive(self):
        return self.proc.poll() is None

    @property
    def pid(self):
        """The broker's own process: under the launcher, its child (the interpreter)."""
        if self.runtime != "micropython":
            return self.proc.pid
        kids = [p for p in group_members(self.proc.pid) if p != self.proc.pid]
        assert len(kids) == 1, "the launcher should run one interpreter, found %r" % kids
        return kids[0]

    def stop(self, sig=signal.SIGTERM, timeout=10.0):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self._kill_group()
                self.proc.wait()
        if group_members(self.proc.pid):
            # The launcher was killed outright (SIGKILL leaves its interpreter running), or
            # the broker ignored the signal.
            self._kill_group()
        self._reader.join(5)
        self.returncode = self.proc.returncode
        return self.returncode

    def _kill_group(self):
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def retry(fn, errors, timeout=10.0, pause=0.1):
    """fn()'s result once it returns without raising one of errors, trying for up to timeout
    seconds: for what the broker does as it gets to it (a closed socket seen, a slot freed)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except errors:
            if time.monotonic() > deadline:
                raise
            time.sleep(pause)


def group_members(pgid):
    """The live (not zombie) processes of process group pgid, from /proc."""
    pids = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            pids.append(int(name))
    return pids


def socket_fds(pid):
    """How many sockets process pid holds open, from /proc: the listeners plus its clients."""
    n = 0
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            if os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:"):
                n += 1
        except OSError:
            pass  # the descriptor closed between listdir and readlink
    return n


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---- translating the tests' gatemq configs for Mosquitto (validation of the tests only) ----

SIZE = {"KB": 1024, "MB": 1024 * 1024, "B": 1}


def _flat_settings(text):
    """key -> raw value for the simple HOCON the tests write: dotted keys and one-level blocks."""
    out = {}
    text = re.sub(r"(#|//)[^\n]*", "", text)
    for m in re.finditer(r"([\w.]+)\s*\{([^}]*)\}", text):
        for k, v in re.findall(r"([\w.]+)\s*[=:]\s*(\"[^\"]*\"|[^,\n]+)", m.group(2)):
            out[m.group(1) + "." + k] = v.strip().strip('"')
    text = re.sub(r"([\w.]+)\s*\{([^}]*)\}", "", text)
    for k, v in re.findall(r"^\s*([\w.]+)\s*[=:]\s*(\"[^\"]*\"|[^\n]+)", text, re.M):
        out[k] = v.strip().strip('"')
    return out


def _size(v):
    m = re.match(r"(\d+)\s*(KB|MB|B)?$", v)
    return int(m.group(1)) * SIZE[m.group(2) or "B"]


def _seconds(v):
    m = re.match(r"([\d.]+)\s*(ms|s|m|h)?$", v)
    n = float(m.group(1))
    return n * {"ms": 0.001, "s": 1, "m": 60, "h": 3600, None: 1}[m.group(2)]


# gatemq settings mosquitto has: its option's name and the value in its terms
_MOSQUITTO = {
    "mqtt.max_packet_size": ("max_packet_size", _size),
    "mqtt.max_qos_allowed": ("max_qos", str),
    "mqtt.retain_available": ("retain_available", str),
    "mqtt.max_inflight": ("max_inflight_messages", str),
    "mqtt.max_mqueue_len": ("max_queued_messages", str),
    "mqtt.mqueue_store_qos0": ("queue_qos0_messages", str),
    "mqtt.max_topic_alias": ("max_topic_alias", str),
    "sys_topics.sys_msg_interval": ("sys_interval", lambda v: max(1, int(_seconds(v)))),
}


def mosquitto_config(text, port):
    lines = ["listener %d 127.0.0.1" % port, "allow_anonymous true", "log_dest stderr",
             "log_type all", "persistence false", "max_queued_messages 1000"]
    for key, v in _flat_settings(text).items():
        if key.startswith("listeners.tcp.default.bind") or key == "node.name":
            continue
        if key == "listeners.tcp.default.max_connections":
            lines.insert(1, "max_connections %s" % v)
        elif key in _MOSQUITTO:
            name, value = _MOSQUITTO[key]
            lines.append("%s %s" % (name, value(v)))
        else:
            raise Untranslatable(key)
    return "\n".join(lines) + "\n"
