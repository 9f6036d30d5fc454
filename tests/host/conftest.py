# Fixtures for the behavioural tests.
#
#   broker / make_broker   function-scoped factory: make_broker(config_text="", runtime=None, **kw)
#                          starts a BrokerProcess that is stopped after the test.
#   mod_broker             one broker per test module for tests that do not interfere; a module sets
#                          BROKER_CONFIG = "..." to configure it.
#   uid                    a unique prefix for topics and client ids of one test.
#   client                 factory for connected paho clients, disconnected after the test.
import itertools
import re
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from brokers import BrokerProcess, DEFAULT_RUNTIME, Untranslatable  # noqa: E402
from clients import Client, V5  # noqa: E402

_counter = itertools.count()


def _start(config_text, runtime, tmp_path, **kw):
    try:
        return BrokerProcess(config_text, runtime=runtime, tmp_path=tmp_path, **kw)
    except Untranslatable as e:
        # Only when validating the tests against Mosquitto: it has no equivalent of this setting.
        pytest.skip("mosquitto has no equivalent of %s" % e)


def require_gatemq():
    """For tests of gatemq-only behaviour ($SYS events, config keys) while validating on Mosquitto."""
    if DEFAULT_RUNTIME == "mosquitto":
        pytest.skip("gatemq-specific behaviour")


@pytest.fixture
def make_broker(tmp_path):
    started = []

    def factory(config_text="", runtime=None, **kw):
        sub = tmp_path / ("broker%d" % len(started))
        sub.mkdir()
        b = _start(config_text, runtime, sub, **kw)
        started.append(b)
        return b

    yield factory
    for b in started:
        b.stop()


broker = make_broker


@pytest.fixture(scope="module")
def mod_broker(request, tmp_path_factory):
    config = getattr(request.module, "BROKER_CONFIG", "")
    b = _start(config, None, tmp_path_factory.mktemp("modbroker"))
    yield b
    b.stop()


@pytest.fixture
def uid(request):
    # fixed-width counter first, so no id is a substring of another (log lines are searched for ids)
    # and only [A-Za-z0-9_-]: parameters such as "a/+/b" must not leak wildcards into topics
    name = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name.replace("test_", "", 1).replace("[", "-"))
    return "t%05d-%s" % (next(_counter), name[:36])


@pytest.fixture
def client():
    made = []

    def factory(port, client_id="", version=V5, connect=True, **kw):
        c = Client(port, client_id, version, **kw)
        made.append(c)
        if connect:
            c.connect()
        return c

    yield factory
    for c in made:
        try:
            c.disconnect()
        except Exception:
            pass
