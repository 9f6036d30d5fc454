# Broker.reload_auth: the users and acl files are read again while clients stay connected, and a
# file with a mistake keeps the previous rules (what the ports do on SIGHUP).
from gatemq import auth, codec, config, pwhash
from gatemq.broker import Broker
from _harness import Harness

CONFIG = """
authentication = [{ mechanism = password_based, backend = built_in_database, user_file = "users" }]
authorization { no_match = deny, sources = [{ type = file, path = "acl.conf" }] }
"""
# The users file's hashes, made with the algorithm the schema gives the authenticator.
ALGO = config.load(CONFIG)["authentication"][0]["password_hash_algorithm"]

ACL = '{allow, all, all, ["t/#"]}.\n'


def _users(*pairs):
    return "\n".join(auth.format_user(u, pwhash.hash_password(ALGO, "salt" + u, pw), "salt" + u, False, ALGO)
                     for u, pw in pairs) + "\n"


def _harness(files):
    # The sans-IO harness with a broker that reads its files from the dict `files`.
    h = Harness()

    def read_file(path):
        if path not in files:
            raise OSError("no such file: %s" % path)
        return files[path].encode()

    h.broker = Broker(config.load(CONFIG), h.clock, lambda: 1.7e9 + h.clock.t, h.log, read_file)
    return h


def _errors(h):
    return [m for level, m in h.logs if level == "error"]


def test_reload_adds_and_removes_users_and_keeps_clients():
    files = {"users": _users(("alice", "pw-a"), ("bob", "pw-b")), "acl.conf": ACL}
    h = _harness(files)
    a = h.client()
    assert a.connect("a", version=5, username="alice", password=b"pw-a").rc == 0
    assert a.subscribe(1, [("t/#", 0)]).codes == [0]
    assert h.client().connect("c1", version=5, username="carol", password=b"pw-c").rc == 0x87

    files["users"] = _users(("alice", "pw-a"), ("carol", "pw-c"))
    done = h.broker.reload_auth()
    assert done == ["users file 'users' (2 users)", "acl file 'acl.conf' (1 rules)"]
    assert ("info", "reload: re-read " + ", ".join(done)) in h.logs

    assert h.client().connect("c2", version=5, username="carol", password=b"pw-c").rc == 0
    # bob is gone: the chain ignores an unknown user and the chain as a whole refuses
    assert h.client().connect("b", version=5, username="bob", password=b"pw-b").rc == 0x87
    # alice, connected before the reload, is still connected and still served
    assert not a.closed
    a.publish("t/x", b"1", qos=1, pid=7)
    assert a.expect(codec.PUBACK).pid == 7
    assert [p.payload for p in a.publishes()] == [b"1"]


def test_reload_applies_new_acl_to_connected_clients_but_keeps_granted_subscriptions():
    files = {"users": _users(("alice", "pw-a")), "acl.conf": ACL}
    h = _harness(files)
    a = h.client()
    assert a.connect("a", version=5, username="alice", password=b"pw-a").rc == 0
    assert a.subscribe(1, [("t/secret", 1)]).codes == [1]

    files["acl.conf"] = '{deny, all, all, ["t/secret"]}.\n' + ACL
    assert h.broker.reload_auth() is not None

    # new PUBLISH and SUBSCRIBE checks meet the new rule
    a.publish("t/secret", b"x", qos=1, pid=2)
    assert a.expect(codec.PUBACK).rc == 0x87
    assert a.subscribe(3, [("t/secret", 1)]).codes == [0x87]
    assert a.subscribe(4, [("t/open", 1)]).codes == [1]
    # the subscription granted before the reload is not revoked (as EMQX): a message published
    # there by a client the broker itself lets through (a will, $SYS, ...) still arrives
    from gatemq.message import Message
    a.take()
    h.broker.publish(Message("t/secret", b"kept", 0, False))
    h.pump()
    assert [p.payload for p in a.publishes()] == [b"kept"]
    assert not a.closed


def test_broken_users_file_keeps_previous_rules():
    files = {"users": _users(("alice", "pw-a")), "acl.conf": ACL}
    h = _harness(files)
    before = h.broker.authn
    files["users"] = _users(("alice", "pw-new")) + "{not json\n"
    assert h.broker.reload_auth() is None
    errs = _errors(h)
    assert len(errs) == 1 and errs[0].startswith("reload: users:2: ") and "previous" in errs[0], errs
    assert h.broker.authn is before
    # the old password still works, the new one is not in force
    assert h.client().connect("a", version=5, username="alice", password=b"pw-a").rc == 0
    assert h.client().connect("a2", version=5, username="alice", password=b"pw-new").rc == 0x86


def test_broken_acl_file_keeps_previous_users_and_rules():
    # The users file is fine and the acl file is not: nothing is swapped in, not even the users.
    files = {"users": _users(("alice", "pw-a")), "acl.conf": ACL}
    h = _harness(files)
    files["users"] = _users(("alice", "pw-a"), ("dave", "pw-d"))
    files["acl.conf"] = ACL + '{allow, all, read, ["u/#"]}.\n'
    assert h.broker.reload_auth() is None
    errs = _errors(h)
    assert len(errs) == 1 and errs[0].startswith("reload: acl.conf:2: "), errs
    assert h.client().connect("d", version=5, username="dave", password=b"pw-d").rc == 0x87
    a = h.client()
    assert a.connect("a", version=5, username="alice", password=b"pw-a").rc == 0
    assert a.subscribe(1, [("t/1", 0)]).codes == [0]
    assert a.subscribe(2, [("u/1", 0)]).codes == [0x87]


def test_missing_file_keeps_previous_rules_and_names_it():
    files = {"users": _users(("alice", "pw-a")), "acl.conf": ACL}
    h = _harness(files)
    del files["acl.conf"]
    assert h.broker.reload_auth() is None
    errs = _errors(h)
    assert len(errs) == 1 and "'acl.conf'" in errs[0] and errs[0].startswith("reload: "), errs
    a = h.client()
    assert a.connect("a", version=5, username="alice", password=b"pw-a").rc == 0
    assert a.subscribe(1, [("t/1", 0)]).codes == [0]
    # once the file is back, the next reload takes it
    files["acl.conf"] = '{deny, all}.\n'
    assert h.broker.reload_auth() == ["users file 'users' (1 users)", "acl file 'acl.conf' (1 rules)"]
    assert a.subscribe(2, [("t/1", 0)]).codes == [0x87]


def test_reload_without_files_reports_nothing_to_read():
    h = Harness()
    assert h.broker.reload_auth() == []
    assert ("info", "reload: no users, key or ACL files are configured; nothing to re-read") in h.logs
