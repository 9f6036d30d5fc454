# Command line of the MicroPython port: load the config, start the listeners, serve.
import sys

from gatemq import config
from gatemq.errors import ConfigError

USAGE = """usage: micropython -m gatemq.micropython [--config FILE] [--check-config FILE]
                                     [--log-level LEVEL] [--demo]
  --config FILE        the broker configuration (HOCON, the same file as the CPython port)
  --check-config FILE  validate FILE for this port and exit (0 when valid)
  --log-level LEVEL    debug, info, warning or error (default: the config's log.level)
  --demo               the embedded default: one plain listener on 127.0.0.1:1883
"""


def read_text(path):
    with open(path) as f:
        return f.read()


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


def _dirname(path):
    i = path.rfind("/")
    return path[:i] if i > 0 else ("/" if i == 0 else "")


def _exists(path):
    import os
    try:
        os.stat(path)
        return True
    except OSError:
        return False


def file_reader(base, text=False):
    # Paths as written, else relative to the config file's folder.
    def read(path):
        if path[:1] != "/" and base and not _exists(path):
            path = base + "/" + path
        if text:
            return read_text(path)
        try:
            return read_bytes(path)
        except OSError as e:
            raise ConfigError("cannot read %s: %s" % (path, e))
    return read


def resolve_paths(cfg, base):
    # TLS file paths as written when they exist, else relative to the config file's folder.
    for lc in cfg["listeners"].get("ssl", {}).values():
        o = lc["ssl_options"]
        for k in ("certfile", "keyfile", "cacertfile", "crlfile"):
            p = o.get(k)
            if p and p[:1] != "/" and base and not _exists(p):
                o[k] = base + "/" + p


def load(path):
    return config.load(read_text(path), path, read_text)


def main(argv):
    path = None
    level = None
    check = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--config", "-c", "--check-config", "--log-level") and i + 1 < len(argv):
            if a == "--log-level":
                level = argv[i + 1]
            else:
                path = argv[i + 1]
                check = a == "--check-config"
            i += 2
        elif a.startswith("--config="):
            path = a[9:]
            i += 1
        elif a == "--demo":
            i += 1
        elif a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        else:
            sys.stderr.write("gatemq: unknown argument %r\n%s" % (a, USAGE))
            return 2
    from . import server
    try:
        cfg = load(path) if path else config.default()
        log = server.make_log(level or cfg["log"]["level"])
        base = _dirname(path) if path else ""
        resolve_paths(cfg, base)
        if check:
            server.Server(cfg, log, file_reader(base), file_reader(base, True))
            return 0
        server.run(cfg, log, file_reader(base), file_reader(base, True))
    except ConfigError as e:
        sys.stderr.write("gatemq: config error: %s\n" % e)
        return 2
    except OSError as e:
        sys.stderr.write("gatemq: cannot start: %s\n" % (e,))
        return 1
    return 0
