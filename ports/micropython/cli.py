# Command line of the MicroPython port: load the config, start the listeners, serve.
import sys

from gatemq.errors import ConfigError

from .files import read_text, read_bytes, dirname

USAGE = """usage: micropython -m gatemq.micropython [--config FILE] [--check-config FILE]
                                     [--log-level LEVEL] [--heap-report SECS] [--demo]
                                     [--stop-on-stdin-eof]
  --config FILE        the broker configuration (HOCON, the same file as the CPython port)
  --check-config FILE  validate FILE for this port and exit (0 when valid)
  --log-level LEVEL    debug, info, warning or error (default: the config's log.level)
  --heap-report SECS   log free heap (after a collection) and its low-water mark every SECS
  --demo               the embedded default: a plain listener on 127.0.0.1:1883 and the HTTP
                       API on 127.0.0.1:18083 (admin / public; its files go to ./data)
  --stop-on-stdin-eof  shut down cleanly when stdin ends (how firmware/gatemq-micropython
                       stops the broker on SIGTERM); a byte H read there re-reads the users,
                       key, ACL and certificate files (the launcher's SIGHUP)
exit status: 0 ok (or stopped by a signal), 1 cannot start (e.g. a port in use),
2 config error (the file or a file it names is missing or wrong)
"""
# Exit statuses, the same as the CPython port's (ports/cpython/cli.py).
EXIT_OK = 0
EXIT_CANNOT_START = 1
EXIT_CONFIG = 2


def file_reader(base=None, text=False):
    # The config has resolved every relative path against the folder of the file that names it
    # (gatemq.config.resolve_path): open them as they are. base is no longer used.
    def read(path):
        if text:
            return read_text(path)
        try:
            return read_bytes(path)
        except OSError as e:
            raise ConfigError("cannot read %s: %s" % (path, e))
    return read


def config_text(path):
    # A config file (or include, or the API's overlay) as text, or a ConfigError naming where it
    # is not UTF-8. Only while gatemq.config is loaded anyway: the running broker reads its other
    # text files with read_text.
    from gatemq import config
    return config.decode(read_bytes(path), path)


def _parse(path):
    from gatemq import config
    return config.load(config_text(path), path, config_text) if path else config.default()


def _prepare(cfg, path):
    from . import dashboard
    return dashboard.prepare(cfg, dirname(path) if path else "", config_text)


def load(path):
    # -> (cfg, base_mqtt): base_mqtt is the file's own mqtt section when dashboard.enable is set
    # (the API's overlay file is applied to cfg here), else None.
    # The config modules are dropped once the file is read: their bytecode is some 60 KB of heap
    # on the unix port, where .mpy files load into RAM, and the broker never needs them again.
    # They are imported in _parse, whose frame is gone by the time unload() collects: a live
    # reference here would keep them until some later collection, after the broker's own code
    # had been loaded above them, leaving their 60 KB as a hole the code cannot use.
    # The management API validates its changes with them, so with the dashboard on they stay,
    # loaded (with gatemq.admin) below the broker's code rather than above it.
    keep = False
    try:
        cfg = _parse(path)
        keep = cfg["dashboard"]["enable"]
        if keep:
            return _prepare(cfg, path)
        return cfg, None
    finally:
        if not keep:
            unload("gatemq.config", "gatemq.schema", "gatemq.hocon")


def unload(*names):
    import gatemq
    for n in names:
        sys.modules.pop(n, None)
        short = n.split(".")[-1]
        if short in gatemq.__dict__:
            delattr(gatemq, short)
    import gc
    gc.collect()


def main(argv, on_tick=None):
    # on_tick: called each timer round of the running broker (firmware/main.py feeds its
    # watchdog there). Returns the exit status: 0, 1 (cannot start), 2 (config error).
    path = None
    level = None
    check = False
    heap = 0
    stdin_eof = False
    i = 0
    while i < len(argv):
        a = argv[i]
        if a in ("--config", "-c", "--check-config", "--log-level", "--heap-report") and i + 1 < len(argv):
            if a == "--log-level":
                level = argv[i + 1]
            elif a == "--heap-report":
                heap = float(argv[i + 1])
            else:
                path = argv[i + 1]
                check = a == "--check-config"
            i += 2
        elif a.startswith("--config="):
            path = a[9:]
            i += 1
        elif a == "--demo":
            i += 1
        elif a == "--stop-on-stdin-eof":
            stdin_eof = True
            i += 1
        elif a in ("-h", "--help"):
            sys.stdout.write(USAGE)
            return 0
        else:
            sys.stderr.write("gatemq: unknown argument %r\n%s" % (a, USAGE))
            return 2
    try:
        cfg, base_mqtt = load(path)
    except ConfigError as e:
        sys.stderr.write("gatemq: config error: %s\n" % e)
        return EXIT_CONFIG
    except OSError as e:
        # The config file itself (or an include, the overlay) is missing or unreadable.
        sys.stderr.write("gatemq: config error: cannot read %s: %s\n" % (path, e))
        return EXIT_CONFIG
    try:
        # The broker's modules only now: while the config modules are loaded (and dropped again)
        # the heap holds them alone, which keeps the start-up peak ~100 KB lower on a board.
        from . import server
        log = server.make_log(level or cfg["log"]["level"])
        base = dirname(path) if path else ""
        if check:
            server.Server(cfg, log, file_reader(base), file_reader(base, True))
            return 0
        dash = None if base_mqtt is None else (base, base_mqtt)
        server.run(cfg, log, file_reader(base), file_reader(base, True), heap, on_tick, dash, stdin_eof)
    except ConfigError as e:
        sys.stderr.write("gatemq: config error: %s\n" % e)
        return EXIT_CONFIG
    except OSError as e:
        sys.stderr.write("gatemq: cannot start: %s\n" % (e,))
        return EXIT_CANNOT_START
    return EXIT_OK
