# Relative paths in a config are taken from the folder of the file that names them (as `include`
# is), on both ports, whatever folder the broker was started from: the TLS files, users files,
# ACL files and the dashboard's overlay. Each test starts the broker from another folder, naming
# the config by a relative path, with decoys of the same relative names in that folder (so a port
# that opened paths relative to its working folder, or tried them there first, fails).
import hashlib
import json
import os
import ssl

import pytest
from cryptography import x509 as cx509
from cryptography.x509.oid import NameOID

from brokers import BrokerProcess, ROOT
from clients import Client, V311
from gatemq.certs import ca as certs_ca
from gatemq.certs import issue

MPY_LIB = os.path.join(ROOT, "build", "mpy", "lib")
RUNTIMES = ["cpython", pytest.param("micropython", marks=pytest.mark.skipif(
    not os.path.exists(os.path.join(MPY_LIB, "gatemq", "micropython", "server.mpy")),
    reason="run `make firmware-files` first"))]

CONFIG = """
listeners.ssl.default {
  bind = "127.0.0.1:0"
  ssl_options {
    certfile = "pki/server.crt", keyfile = "pki/server.key", cacertfile = "pki/ca.crt"
    verify = verify_peer, fail_if_no_peer_cert = true
  }
}
dashboard.enable = false
include "conf.d/auth.conf"
"""
# In conf.d/: its user_file and ACL path are relative to conf.d/, not to the main file.
AUTH = """
authentication = [{ mechanism = password_based, backend = built_in_database, user_file = "users.json" }]
authorization { no_match = deny, sources = [{ type = file, path = "acl.conf" }] }
"""


def _pki(folder, cn):
    os.makedirs(folder)
    certs_ca.init_ca(folder, cn=cn)
    issue.server(folder, ["localhost"], ["127.0.0.1"], name="server")
    issue.client(folder, cx509.Name([cx509.NameAttribute(NameOID.COMMON_NAME, "dev1")]), "dev1")


def _users(path, password):
    with open(path, "w") as f:
        f.write(json.dumps({"user_id": "dev1", "password_hash": hashlib.sha256(password).hexdigest(),
                            "salt": ""}) + "\n")


def _site(tmp_path):
    site = tmp_path / "site"
    _pki(str(site / "pki"), "site CA")
    (site / "conf.d").mkdir()
    (site / "conf.d" / "auth.conf").write_text(AUTH)
    _users(str(site / "conf.d" / "users.json"), b"right")
    (site / "conf.d" / "acl.conf").write_text('{allow, {user, "dev1"}, all, ["t/#"]}.\n')
    # Decoys where the broker is started: another CA's server certificate, another password, an
    # ACL that allows nothing, under the same relative names.
    run = tmp_path / "run"
    _pki(str(run / "pki"), "decoy CA")
    (run / "conf.d").mkdir()
    _users(str(run / "users.json"), b"decoy")
    _users(str(run / "conf.d" / "users.json"), b"decoy")
    (run / "acl.conf").write_text('{deny, all, all, ["#"]}.\n')
    (run / "conf.d" / "acl.conf").write_text('{deny, all, all, ["#"]}.\n')
    return site, run


@pytest.mark.parametrize("runtime", RUNTIMES)
def test_relative_paths_are_taken_from_the_naming_files_folder(tmp_path, runtime):
    site, run = _site(tmp_path)
    with BrokerProcess(CONFIG, runtime=runtime, tmp_path=site, cwd=str(run), default_listener=False) as b:
        c = Client(b.ports[("ssl", "default")], "dev1", V311, username="dev1", password="right")
        pki = str(site / "pki")
        ctx = ssl.create_default_context(cafile=os.path.join(pki, "ca.crt"))
        ctx.load_cert_chain(os.path.join(pki, "dev1.crt"), os.path.join(pki, "dev1.key"))
        c.c.tls_set_context(ctx)
        c.connect()   # the site's server certificate and the site's users file
        try:
            # the site's ACL: t/# is allowed (the decoys deny everything)
            assert c.subscribe("t/x", 1) == [1]
        finally:
            c.disconnect()
