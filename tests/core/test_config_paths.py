# Relative paths in a config resolve against the folder of the file that names them.
from gatemq import config


def _reader(files):
    def read(path):
        return files[path]
    return read


def test_paths_resolve_against_the_naming_files_folder():
    files = {
        "etc/gatemq/conf.d/auth.conf":
            'authentication = [{ mechanism = password_based, backend = built_in_database, '
            'user_file = "users.json" }]\n'
            'authorization.sources = [{ type = file, path = "/abs/acl.conf" }]\n',
    }
    text = ('listeners.ssl.default.ssl_options { certfile = "pki/server.crt", keyfile = "pki/server.key"\n'
            '  cacertfile = "../ca.crt", crlfile = "/var/crl.pem" }\n'
            'include "conf.d/auth.conf"\n')
    cfg = config.load(text, "etc/gatemq/gatemq.conf", _reader(files))
    o = cfg["listeners"]["ssl"]["default"]["ssl_options"]
    assert o["certfile"] == "etc/gatemq/pki/server.crt"
    assert o["keyfile"] == "etc/gatemq/pki/server.key"
    assert o["cacertfile"] == "etc/gatemq/../ca.crt"
    assert o["crlfile"] == "/var/crl.pem"          # absolute stays itself
    # named in the included file: relative to that file's folder
    assert cfg["authentication"][0]["user_file"] == "etc/gatemq/conf.d/users.json"
    assert cfg["authorization"]["sources"][0]["path"] == "/abs/acl.conf"
    # a default path is relative to the config file's folder
    assert cfg["dashboard"]["overlay_file"] == "etc/gatemq/data/overlay.conf"


def test_jwt_key_and_overlay_file_resolve_too():
    cfg = config.load('authentication = [{ mechanism = jwt, algorithm = public-key, public_key = "k.pem" }]\n'
                      'dashboard.overlay_file = "state/o.conf"\n', "/srv/g.conf")
    assert cfg["authentication"][0]["public_key"] == "/srv/k.pem"
    assert cfg["dashboard"]["overlay_file"] == "/srv/state/o.conf"


def test_without_a_folder_paths_stay_as_written():
    # a file in the working folder, a string, the embedded default: relative to the working folder
    cfg = config.load('listeners.ssl.a.ssl_options { certfile = "c.crt", keyfile = "c.key" }\n', "gatemq.conf")
    assert cfg["listeners"]["ssl"]["a"]["ssl_options"]["certfile"] == "c.crt"
    cfg = config.load('listeners.ssl.a.ssl_options { certfile = "c.crt", keyfile = "c.key" }\n')
    assert cfg["listeners"]["ssl"]["a"]["ssl_options"]["certfile"] == "c.crt"
    assert config.default()["dashboard"]["overlay_file"] == "data/overlay.conf"
    assert config.resolve_path("C:\\x\\k.pem", "/a/b.conf") == "C:\\x\\k.pem"
