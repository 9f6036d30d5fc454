# `gatemq` / `python -m gatemq.cpython`: run the broker, check a config file, or run the demo.
import argparse
import asyncio
import logging
import os
import signal
import sys
import time

from gatemq import __version__, config
from gatemq.errors import ConfigError

DEMO_DIR = "demo"
# Exit statuses, the same on the MicroPython port (ports/micropython/cli.py).
EXIT_OK = 0
EXIT_CANNOT_START = 1   # a listener cannot bind (port in use, no permission), ...
EXIT_CONFIG = 2         # the config file, or a file it names, is missing or wrong
EXIT_STATUS_HELP = ("exit status: 0 ok (or stopped by a signal), 1 cannot start (e.g. a port in "
                    "use), 2 config error (the file or a file it names is missing or wrong)")


def _parser():
    p = argparse.ArgumentParser(
        prog="gatemq",
        description="gatemq: an MQTT 3.1/3.1.1/5.0 broker for edge gateways, with X.509 client "
                    "certificates mapped to MQTT identities as EMQX 5 does. Without --config it "
                    "serves its embedded default: a plain listener on 127.0.0.1:1883.",
        epilog=EXIT_STATUS_HELP)
    p.add_argument("--config", "-c", metavar="FILE", help="the broker's configuration file (EMQX-style HOCON)")
    p.add_argument("--check-config", metavar="FILE",
                   help="validate what --config FILE would run (FILE, its includes, the dashboard's "
                        "overlay file, the users, key, ACL and TLS files it names), print what is "
                        "wrong with file:line:col, and exit (0 when valid)")
    p.add_argument("--demo", action="store_true",
                   help="first run: make a demo CA, server and device certificates under ./%s, then "
                        "serve plain MQTT on 127.0.0.1:1883 and mutual TLS on 127.0.0.1:8883 with "
                        "mqtt.peer_cert_as_username = cn" % DEMO_DIR)
    p.add_argument("--demo-dir", default=DEMO_DIR, metavar="DIR", help="where --demo keeps its certificates")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"),
                   help="log level on stderr (default: the config's log.level, else info)")
    p.add_argument("--version", action="version", version="gatemq %s" % __version__)
    return p


def _read_text(path):
    # An include: hocon has made its path relative to the including file already.
    with open(path, "rb") as f:
        return config.decode(f.read(), path)


def load_file(path):
    # Every relative path in the file (includes, TLS files, users, ACL, keys, the overlay) comes
    # back relative to the file's own folder: they are opened as the config says.
    return config.load(_read_text(path), path, _read_text)


def demo_listeners(d, tcp="127.0.0.1:1883", tls="127.0.0.1:8883"):
    # The demo's listeners (HOCON): plain TCP on tcp, mutual TLS on tls with the demo certificates
    # in folder d, the client certificate's CN as the username (bench/bench_micropython.py too).
    return """
listeners.tcp.default.bind = "%(tcp)s"
listeners.ssl.default {
  bind = "%(tls)s"
  ssl_options {
    certfile = "%(d)s/server.crt"
    keyfile = "%(d)s/server.key"
    cacertfile = "%(d)s/ca.crt"
    verify = verify_peer
    fail_if_no_peer_cert = true
  }
}
mqtt.peer_cert_as_username = cn
""" % {"d": d, "tcp": tcp, "tls": tls}


def demo_config(demo_dir):
    from gatemq.certs import cli as certs_cli
    if certs_cli.main(["--dir", demo_dir, "demo"]) not in (0, None):
        raise SystemExit("gatemq: could not create the demo certificates in %s" % demo_dir)
    d = os.path.abspath(demo_dir)
    text = demo_listeners(d) + """# sessions, queued and retained messages survive a restart (docs/persistence.md)
persistence.enable = true
node.data_dir = "%s/data"
""" % d
    return config.load(text, "<demo>"), d


def check_config(path):
    # What `--config path` would run, without binding anything: the file with its includes, then
    # the dashboard's overlay file on top (its keys win at start-up, so a mistake there stops the
    # start as well), then everything the broker and its TLS listeners read from the files the
    # config names. -> the overlay path when one was applied, else None.
    from gatemq.broker import Broker
    from gatemq.cpython import dashboard, tlsctx
    from gatemq.cpython.server import make_reader
    cfg = load_file(path)
    base = os.path.dirname(os.path.abspath(path))
    overlay = cfg["dashboard"]["overlay_file"]   # relative to the config's folder already
    cfg, _ = dashboard.prepare(cfg, base)

    def log(level, msg):
        if level in ("warning", "error"):
            print("gatemq: %s: %s" % (level, msg), file=sys.stderr)

    Broker(cfg, time.monotonic, time.time, log, make_reader(base))
    for name, lc in cfg["listeners"]["ssl"].items():
        if lc.get("enable", True):
            tlsctx.ListenerTLS("ssl:%s" % name, lc["ssl_options"], log)
    if cfg.get("bridges", {}).get("mqtt"):
        from gatemq.cpython import bridge
        bridge.check(cfg)
    return overlay if os.path.exists(overlay) else None


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "data":
        # `gatemq data info|dump|compact PATH`: a persistence store, also one copied off a board
        from gatemq.cpython import datacli
        return datacli.main(argv[1:])
    args = _parser().parse_args(argv)
    if args.check_config:
        try:
            overlay = check_config(args.check_config)
        except ConfigError as e:
            print("gatemq: %s" % e, file=sys.stderr)
            return EXIT_CONFIG
        except OSError as e:
            print("gatemq: cannot read %s: %s" % (getattr(e, "filename", None) or args.check_config, e.strerror),
                  file=sys.stderr)
            return EXIT_CONFIG
        if overlay:
            print("%s: OK (with the dashboard overlay %s)" % (args.check_config, overlay))
        else:
            print("%s: OK" % args.check_config)
        return 0
    try:
        if args.config:
            cfg = load_file(args.config)
            base = os.path.dirname(os.path.abspath(args.config))
        elif args.demo:
            cfg, base = demo_config(args.demo_dir)
        else:
            cfg, base = config.default(), os.getcwd()
        from gatemq.cpython import dashboard
        cfg, dash = dashboard.prepare(cfg, base)
    except ConfigError as e:
        print("gatemq: %s" % e, file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        print("gatemq: cannot read %s: %s" % (getattr(e, "filename", args.config), e.strerror), file=sys.stderr)
        return EXIT_CONFIG
    level = args.log_level or cfg["log"]["level"]
    logging.basicConfig(level=getattr(logging, level.upper()), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(message)s")
    if args.demo and not args.config:
        _print_demo(base, cfg)
    try:
        return asyncio.run(_serve(cfg, base, dash))
    except KeyboardInterrupt:
        return 0


def _print_demo(d, cfg):
    dc = cfg["dashboard"]
    if dc["enable"] and dc["listeners"]["http"]["enable"]:
        print("gatemq demo: dashboard on http://%s:%d, log in as %s / %s (set at the first start; "
              "docs/dashboard.md says how to change it)" % (dc["listeners"]["http"]["bind"] + (
                  dc["default_username"], dc["default_password"])), file=sys.stderr, flush=True)
    print("gatemq demo: plain MQTT on 127.0.0.1:1883, mutual TLS on 127.0.0.1:8883 "
          "(username = certificate CN); persistence on, its store in %(d)s/data. Try:\n"
          "  mosquitto_sub -h localhost -p 8883 --cafile %(d)s/ca.crt --cert %(d)s/device1.crt "
          "--key %(d)s/device1.key -t '$SYS/brokers/+/clients/#' -v\n"
          "  mosquitto_pub -h 127.0.0.1 -p 1883 -t hello -m world" % {"d": d}, file=sys.stderr, flush=True)


async def _serve(cfg, base, dash=None):
    from gatemq.cpython.server import Server, make_reader
    log_ = logging.getLogger("gatemq")
    levels = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}

    def log(level, msg):
        log_.log(levels.get(level, logging.INFO), msg)

    try:
        srv = Server(cfg, log, make_reader(base))
        await srv.start()
        if dash is not None:
            await dash.start(srv)
    except ConfigError as e:
        print("gatemq: %s" % e, file=sys.stderr)
        return EXIT_CONFIG
    except OSError as e:
        print("gatemq: cannot start a listener: %s" % e, file=sys.stderr)
        return EXIT_CANNOT_START
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if hasattr(signal, "SIGHUP"):
        # As Mosquitto's password_file/acl_file: `kill -HUP` re-reads the users, JWT key and acl
        # files without dropping anyone; a file with a mistake keeps the previous rules.
        loop.add_signal_handler(signal.SIGHUP, srv.reload_auth)
    await stop.wait()
    log("info", "stopping: closing listeners and clients")
    if dash is not None:
        await dash.stop()
    await srv.stop()
    log("info", "stopped")
    return 0
