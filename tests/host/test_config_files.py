# Config files as users meet them: the examples in docs/config.md load, every key of the schema is
# documented there, includes work through a real file reader, and no input makes the reader fail with
# anything but ConfigError.
import os
import re

from hypothesis import given, settings, strategies as st

from gatemq import config, hocon
from gatemq.errors import ConfigError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "config.md")


def _doc():
    with open(DOC) as f:
        return f.read()


def _examples():
    return re.findall(r"```hocon\n(.*?)```", _doc(), re.S)


def _schema_keys(t, path):
    # Every documented key path, with <name> for named entries and [] for list items.
    if isinstance(t, config.Section):
        for key, sub, default in t.rows:
            p = path + "." + key if path else key
            if not isinstance(sub, config.Section):
                yield p, sub, default
            yield from _schema_keys(sub, p)
    elif isinstance(t, config.Named):
        yield from _schema_keys(t.section, path + ".<name>")
    elif isinstance(t, config.ListOf):
        yield from _schema_keys(t.item, path + "[]")
    elif isinstance(t, config.Tagged):
        for name in t.names:
            yield from _schema_keys(t.variants[name], path)


def test_docs_examples_load():
    examples = _examples()
    assert len(examples) >= 5
    for text in examples:
        try:
            config.load(text, "docs/config.md")
        except ConfigError as e:
            raise AssertionError("example does not load: %s\n%s" % (e, text))


def _default_text(default):
    # A default the way docs/config.md writes it in the table's default column.
    if default is None:
        return "none"
    if default is config.REQUIRED:
        return "required"
    if default is True or default is False:
        return "`%s`" % str(default).lower()
    if isinstance(default, list):
        return "`[%s]`" % ", ".join('"%s"' % x for x in default)
    if isinstance(default, dict):
        return "`{%s}`" % ", ".join("%s = %s" % kv for kv in default.items())
    return "`%s`" % default


def test_every_key_is_documented_with_its_default():
    rows = {}
    for line in _doc().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].startswith("`"):
            rows[cells[0].strip("`")] = cells[2]
    problems = []
    for path, _, default in _schema_keys(config.ROOT, ""):
        # ssl_options are the same section for TLS listeners and the https dashboard: one table.
        cut = path.find(".ssl_options.")
        if cut >= 0:
            path = path[cut + 1:]
        # So are the websocket keys of ws and wss listeners.
        cut = path.find(".websocket.")
        if cut >= 0:
            path = path[cut + 1:]
        if path not in rows:
            problems.append("%s is missing" % path)
        elif not rows[path].startswith(_default_text(default)):
            problems.append("%s: default documented as %s, is %s" % (path, rows[path], _default_text(default)))
    assert not problems, "docs/config.md: " + "; ".join(sorted(set(problems)))


def test_include_with_real_files(tmp_path):
    (tmp_path / "conf.d").mkdir()
    main = tmp_path / "gatemq.conf"
    main.write_text('include "conf.d/listeners.conf"\nmqtt.max_inflight = 8\n')
    (tmp_path / "conf.d" / "listeners.conf").write_text('listeners.tcp.lan.bind = "0.0.0.0:2883"\n'
                                                       'include "mqtt.conf"\n')
    (tmp_path / "conf.d" / "mqtt.conf").write_text("mqtt.peer_cert_as_username = cn\n")

    def read(path):
        with open(path) as f:
            return f.read()

    cfg = config.load(main.read_text(), str(main), read)
    assert cfg["listeners"]["tcp"] == {"lan": {"enable": True, "bind": ("0.0.0.0", 2883),
                                               "max_connections": None, "enable_authn": True}}
    assert cfg["mqtt"]["max_inflight"] == 8 and cfg["mqtt"]["peer_cert_as_username"] == "cn"


_PIECES = st.sampled_from([
    "a", "b.c", " ", "\n", "=", ":", "{", "}", "[", "]", ",", '"', '"""', "\\", "\\u12", "#", "//", "1",
    "-2.5e3", "1MB", "15s", "true", "null", "infinity", "include", ' "x.conf"', "${a}", "mqtt",
    "listeners.tcp.a", "bind", "authentication", "mechanism", "jwt", "\t", "\r\n", "é", "\ud800",
])


@settings(max_examples=400, deadline=None)
@given(st.lists(_PIECES, max_size=40))
def test_random_text_only_raises_config_error(pieces):
    def read(path):
        if path != "x.conf":
            raise OSError(2, "No such file")
        return "a = 1"
    try:
        config.load("".join(pieces), "f.conf", read)
    except ConfigError:
        pass



@settings(max_examples=300, deadline=None)
@given(st.data())
def test_mutated_examples_only_raise_config_error(data):
    examples = _examples()
    text = examples[data.draw(st.integers(0, len(examples) - 1))]
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(text)))
        op = data.draw(st.integers(0, 2))
        if op == 0:
            text = text[:i] + text[i + 1:]
        elif op == 1:
            text = text[:i] + data.draw(_PIECES) + text[i:]
        else:
            text = text[:i] + text[i:][::-1]
    try:
        config.load(text, "m.conf")
    except ConfigError as e:
        assert re.match(r"m\.conf:\d+:\d+: ", str(e)), str(e)


def test_parse_time_of_a_large_file():
    # A gateway restarts often: a 1000-listener file must still load quickly.
    import time
    text = "\n".join('listeners.tcp.l%d { bind = "127.0.0.1:%d", max_connections = 100 }' % (i, 2000 + i)
                     for i in range(1000))
    t = time.perf_counter()
    cfg = config.load(text)
    elapsed = time.perf_counter() - t
    assert len(cfg["listeners"]["tcp"]) == 1000
    assert elapsed < 2.0, elapsed
    assert hocon.plain(hocon.parse(text))["listeners"]["tcp"]["l999"]["bind"] == "127.0.0.1:2999"


# --check-config validates what --config would run: the dashboard's overlay file on top of the
# file, and the users/ACL files the config names, so a file it passes does not then fail to start.

def _gatemq(*args):
    import subprocess
    from brokers import PYTHON
    return subprocess.run([PYTHON, "-m", "gatemq.cpython"] + list(args), capture_output=True, text=True,
                          timeout=30)


def test_check_config_applies_the_dashboard_overlay_as_start_up_does(tmp_path):
    conf = tmp_path / "gatemq.conf"
    conf.write_text('listeners.tcp.default.bind = "127.0.0.1:0"\ndashboard.enable = false\n'
                    'dashboard.overlay_file = "state/overlay.conf"\n')
    (tmp_path / "state").mkdir()
    overlay = tmp_path / "state" / "overlay.conf"
    overlay.write_text('mqtt {\n  max_qos_allowed = 1\n  max_inflight = 0\n}\n')
    where = "%s:3:" % overlay

    check = _gatemq("--check-config", str(conf))
    assert check.returncode == 2, check.stdout
    assert where in check.stderr and "max_inflight" in check.stderr, check.stderr
    # the start refuses the same file for the same reason
    start = _gatemq("--config", str(conf))
    assert start.returncode == 2 and where in start.stderr, start.stderr

    overlay.write_text('mqtt.max_qos_allowed = 1\n')
    check = _gatemq("--check-config", str(conf))
    assert check.returncode == 0, check.stderr
    assert "overlay %s" % overlay in check.stdout


def test_check_config_reads_the_users_and_acl_files(tmp_path):
    conf = tmp_path / "gatemq.conf"
    conf.write_text('dashboard.enable = false\n'
                    'authentication = [{ mechanism = password_based, backend = built_in_database, '
                    'user_file = "users" }]\n'
                    'authorization.sources = [{ type = file, path = "acl.conf" }]\n')
    (tmp_path / "users").write_text('{"user_id": "a", "password_hash": "x", "salt": ""}\n')
    (tmp_path / "acl.conf").write_text('{allow, all, all, ["t/#"]}.\n{allow, all, read, ["u"]}.\n')
    check = _gatemq("--check-config", str(conf))
    assert check.returncode == 2
    assert "acl.conf:2: unknown action 'read'" in check.stderr, check.stderr

    (tmp_path / "acl.conf").write_text('{allow, all, all, ["t/#"]}.\n')
    (tmp_path / "users").write_text('{"user_id": "a", "password_hash": "x", "salt": ""}\nnot json\n')
    check = _gatemq("--check-config", str(conf))
    assert check.returncode == 2 and "users:2:" in check.stderr, check.stderr

    (tmp_path / "users").write_text('{"user_id": "a", "password_hash": "x", "salt": ""}\n')
    check = _gatemq("--check-config", str(conf))
    assert check.returncode == 0, check.stderr


def test_a_config_or_overlay_file_that_is_not_utf8_is_a_config_error(tmp_path):
    # Latin-1 text (an editor's default somewhere) was a UnicodeDecodeError traceback.
    conf = tmp_path / "gatemq.conf"
    conf.write_bytes(b'listeners.tcp.default.bind = "127.0.0.1:0"\n# caf\xe9\n')
    for args in (("--check-config", str(conf)), ("--config", str(conf))):
        p = _gatemq(*args)
        assert p.returncode == 2, p.stderr
        assert "%s:2: not UTF-8 text (byte 0xe9 at offset 48)" % conf in p.stderr, p.stderr
        assert "Traceback" not in p.stderr
    conf.write_bytes(b'listeners.tcp.default.bind = "127.0.0.1:0"\ndashboard.enable = false\n')
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "overlay.conf").write_bytes(b"mqtt.max_qos_allowed = 1 # \xff\n")
    p = _gatemq("--check-config", str(conf))
    assert p.returncode == 2 and "overlay.conf:1: not UTF-8 text" in p.stderr, p.stderr
