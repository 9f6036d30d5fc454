# The bridge to RabbitMQ (Debian's rabbitmq-server with its MQTT plugin, MQTT 3.1.1), standing in
# for a clustered engine: mutual TLS with ssl_cert_login (the certificate's CN is the RabbitMQ
# user). The node is started and stopped here, under its own name, ports and folders.
import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest

from brokers import free_port
from bridgeutil import bridge_config, bridge_pki, server_files
from clients import Client, V311
from tlsutil import client_context

SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

pytestmark = pytest.mark.skipif(
    not os.path.exists(SERVER),
    reason="Debian's rabbitmq-server is not installed (make test-tools installs it; it could not be installed here)")


class Rabbit:
    def __init__(self, folder, pki):
        self.folder = str(folder)
        os.makedirs(self.folder, exist_ok=True)
        self.port = free_port()
        self.lines = []
        users = [{"name": n, "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256",
                  "tags": ""} for n in ("gw-17", "watcher")]
        perms = [{"user": n, "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"} for n in ("gw-17", "watcher")]
        with open(os.path.join(self.folder, "defs.json"), "w") as f:
            json.dump({"users": users, "vhosts": [{"name": "/"}], "permissions": perms}, f)
        with open(os.path.join(self.folder, "rabbitmq.conf"), "w") as f:
            f.write("\n".join([
                "listeners.tcp.default = 127.0.0.1:%d" % free_port(),
                "mqtt.listeners.tcp.default = 127.0.0.1:%d" % free_port(),
                "mqtt.listeners.ssl.default = 127.0.0.1:%d" % self.port,
                *server_files(pki, "ssl_options.%s = %s", "cacertfile", "certfile", "keyfile"),
                "ssl_options.verify = verify_peer",
                "ssl_options.fail_if_no_peer_cert = true",
                "mqtt.ssl_cert_login = true",
                "ssl_cert_login_from = common_name",
                "mqtt.allow_anonymous = false",
                "loopback_users = none",
                "load_definitions = %s" % os.path.join(self.folder, "defs.json"),
                "management_agent.disable_metrics_collector = true", ""]))
        with open(os.path.join(self.folder, "enabled_plugins"), "w") as f:
            f.write("[rabbitmq_mqtt].\n")
        self.env = dict(os.environ, HOME=self.folder, RABBITMQ_NODENAME="gatemqtest%d@localhost" % self.port,
                        RABBITMQ_CONFIG_FILE=os.path.join(self.folder, "rabbitmq.conf"),
                        RABBITMQ_ENABLED_PLUGINS_FILE=os.path.join(self.folder, "enabled_plugins"),
                        RABBITMQ_MNESIA_BASE=os.path.join(self.folder, "mnesia"),
                        RABBITMQ_LOG_BASE=os.path.join(self.folder, "log"), RABBITMQ_LOGS="-",
                        RABBITMQ_DIST_PORT=str(free_port()),
                        RABBITMQ_PID_FILE=os.path.join(self.folder, "pid"))

    def start(self, timeout=90):
        self.proc = subprocess.Popen([SERVER], env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("rabbitmq-server exited:\n" + "\n".join(self.lines[-40:]))
            if any("Server startup complete" in l for l in self.lines):
                try:
                    socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                    return self
                except OSError:
                    pass
            time.sleep(0.2)
        raise RuntimeError("rabbitmq-server did not start:\n" + "\n".join(self.lines[-40:]))

    def _read(self):
        for raw in self.proc.stdout:
            self.lines.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@pytest.fixture
def rabbit(tmp_path):
    pki = bridge_pki(tmp_path / "pki")
    r = Rabbit(tmp_path / "rabbit", pki)
    r.pki = pki
    r.start()
    yield r
    r.stop()


def test_bridge_to_rabbitmq_ssl_cert_login(make_broker, rabbit):
    pki = rabbit.pki
    w = Client(rabbit.port, "watcher", V311)
    w.c.tls_set_context(client_context(pki.root.crt, pki.watcher.crt, pki.watcher.key))
    w.connect(timeout=15)
    w.subscribe("gw/gw-17/#", qos=1)
    conf = ('node.name = "gw17@127.0.0.1"\ndashboard.enable = false\n' +
            bridge_config("cloud", "mqtts://127.0.0.1:%d" % rabbit.port,
                          [("sensors/#", "gw/gw-17/sensors/#", 1)], [("gw/gw-17/cmd/#", "cmd/#", 1)],
                          {"certfile": pki.gw.crt, "keyfile": pki.gw.key, "cacertfile": pki.root.crt},
                          extra="proto_ver = 4\n  clientid = \"gw-17\""))
    gw = make_broker(conf)
    gw.wait_log("bridge mqtt:cloud: connected", timeout=20)
    dev = Client(gw.port, "dev1")
    dev.connect()
    dev.subscribe("cmd/#", qos=1)
    for i in range(20):
        dev.publish("sensors/r/%d" % i, b"%d" % i, qos=1)
    got = [w.expect(timeout=15) for _ in range(20)]
    assert [(m.topic, m.payload) for m in got] == [("gw/gw-17/sensors/r/%d" % i, b"%d" % i) for i in range(20)]
    # A command comes down (the bridge subscribed when it connected).
    w.publish("gw/gw-17/cmd/open", b"1", qos=1)
    w.expect(timeout=10)              # the watcher's own command, under its gw/gw-17/# filter
    c = dev.expect(timeout=15)
    assert (c.topic, c.payload, c.qos) == ("cmd/open", b"1", 1)
    dev.disconnect()
    w.disconnect()
