# SIGHUP re-reads the users file and the acl file of the running broker, as Mosquitto does for
# password_file/acl_file: new users log in, removed ones no longer do, newly denied topics are
# refused, connected clients stay connected, and a broken file keeps the old rules. Both ports:
# the MicroPython one gets the signal through its launcher, firmware/gatemq-micropython.
# (Named _e2e, not test_auth_reload.py: pytest cannot collect two test modules of one basename, and
# tests/core/test_auth_reload.py holds the sans-IO tests of the same feature.)
import signal

import pytest

from gatemq import auth, pwhash
import rawmqtt
from rawmqtt import RawClient

ALGO = {"name": "pbkdf2", "mac_fun": "sha256", "iterations": 16, "dk_length": 32}

ACL = """
{allow, all, all, ["t/#"]}.
{deny, all}.
"""


def _write_users(path, users):
    lines = [auth.format_user(u, pwhash.hash_password(ALGO, "salt-" + u, pw), "salt-" + u, False, ALGO)
             for u, pw in users]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.replace(path)       # as gatemq-passwd does: the broker never reads a half-written file


def _write(path, text):
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _connect(port, cid, user, password):
    c = RawClient(port, version=5)
    ack = c.connect(cid, username=user, password=password)
    return c, ack.rc


def _login_rc(port, cid, user, password):
    # Only the CONNACK code: the connection is closed again.
    c, rc = _connect(port, cid, user, password)
    c.close()
    return rc


def _publish_rc(c, topic, pid):
    c.send(rawmqtt.publish(topic, b"x", qos=1, pid=pid, version=5))
    return c.expect(rawmqtt.PUBACK).rc


def _subscribe_codes(c, topic, pid):
    c.send(rawmqtt.subscribe(pid, [(topic, 1)], version=5))
    return c.expect(rawmqtt.SUBACK).codes


def _hup(b):
    mark = b.mark()
    b.proc.send_signal(signal.SIGHUP)
    return mark


@pytest.fixture
def files(tmp_path):
    users, acl = tmp_path / "users", tmp_path / "acl.conf"
    _write_users(users, [("alice", "pw-alice"), ("bob", "pw-bob")])
    _write(acl, ACL)
    config = """
dashboard.enable = false
authentication = [{ mechanism = password_based, backend = built_in_database, user_file = "%s" }]
authorization { no_match = deny, sources = [{ type = file, path = "%s" }] }
""" % (users, acl)
    return users, acl, config


@pytest.fixture(params=["cpython", "micropython"])
def running(request, make_broker, files):
    # A broker of each port on those files, and alice connected as "first".
    users, acl, config = files
    b = make_broker(config, runtime=request.param)
    first, rc = _connect(b.port, "first", "alice", "pw-alice")
    assert rc == 0
    return users, acl, b, first


def test_sighup_reloads_users_and_acl_without_dropping_clients(running):
    users, acl, b, first = running
    assert _subscribe_codes(first, "t/keep", 1) == [1]
    assert _publish_rc(first, "t/secret", 2) in (0, 0x10)
    assert _login_rc(b.port, "carol-1", "carol", "pw-carol") == 0x87

    _write_users(users, [("alice", "pw-alice"), ("carol", "pw-carol")])
    _write(acl, '{deny, all, all, ["t/secret"]}.\n' + ACL)
    mark = _hup(b)
    assert "reload: SIGHUP received" in b.wait_log("reload: SIGHUP", start=mark)
    line = b.wait_log("reload: re-read", start=mark)
    assert "(2 users)" in line and "(3 rules)" in line, line

    # the new user logs in; the removed user's old password no longer does
    carol, rc = _connect(b.port, "carol-2", "carol", "pw-carol")
    assert rc == 0
    assert _login_rc(b.port, "bob", "bob", "pw-bob") == 0x87
    # the newly denied topic is refused to a new client and to the one connected before
    assert _publish_rc(carol, "t/secret", 3) == 0x87
    assert _publish_rc(first, "t/secret", 4) == 0x87
    assert _subscribe_codes(first, "t/secret", 5) == [0x87]
    # the first client is still connected and its subscription still delivers
    assert _publish_rc(carol, "t/keep", 6) == 0
    got = first.expect(rawmqtt.PUBLISH)
    assert (got.topic, got.payload) == ("t/keep", b"x")
    assert first.is_open()
    first.close()
    carol.close()


def test_broken_file_keeps_the_old_rules_and_logs_where(running):
    users, acl, b, first = running

    # a mistake on line 3 of the acl file; the users file alone would have been fine
    _write_users(users, [("alice", "pw-alice"), ("dave", "pw-dave")])
    _write(acl, ACL.rstrip("\n") + '\n{allow, all, read, ["u/#"]}.\n')
    mark = _hup(b)
    err = b.wait_log("previous authentication", start=mark)
    assert "ERROR" in err and "acl.conf:4:" in err and "previous" in err, err
    assert b.alive()

    # nothing was swapped in: dave is unknown, bob still logs in, the old acl still applies
    assert _login_rc(b.port, "dave", "dave", "pw-dave") == 0x87
    bob, rc = _connect(b.port, "bob", "bob", "pw-bob")
    assert rc == 0
    assert _publish_rc(bob, "t/a", 1) in (0, 0x10)
    assert _publish_rc(bob, "u/a", 2) == 0x87
    assert first.is_open()

    # a users file that is not JSON: named with its line too
    _write(users, '{"user_id": "alice"\n')
    mark = _hup(b)
    err = b.wait_log("previous authentication", start=mark)
    assert "users:1:" in err, err
    assert _login_rc(b.port, "bob-2", "bob", "pw-bob") == 0

    # fixed files are taken by the next SIGHUP
    _write(acl, ACL)
    _write_users(users, [("dave", "pw-dave")])
    mark = _hup(b)
    b.wait_log("reload: re-read", start=mark)
    assert _login_rc(b.port, "dave-2", "dave", "pw-dave") == 0
    assert _login_rc(b.port, "bob-3", "bob", "pw-bob") == 0x87
    assert first.is_open()
    first.close()
    bob.close()
