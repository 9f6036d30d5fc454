# gatemq on a board: join Wi-Fi from /wifi.json, set the clock, serve /gatemq.conf.
#
# /wifi.json: {"ssid": "...", "password": "...", "hostname": "gatemq", "country": "DE",
#              "ntp": true}
# An unexpected error restarts the board after a pause; a config error does not (it would only
# fail again), it is printed and the board waits for a fix over the REPL. Once the broker runs it
# arms the watchdog where the board has one, and feeds it from the broker's timer loop, so a hung
# loop resets the board too.
import gc
import json
import sys
import time

import machine

CONFIG = "/gatemq.conf"
WIFI = "/wifi.json"
WATCHDOG_MS = 30000  # the timer loop runs at least once a second
RESTART_PAUSE_S = 10


def log(msg):
    print("gatemq boot:", msg)


def join_wifi(conf):
    import network

    if conf.get("country"):
        try:
            network.country(conf["country"])
        except Exception:
            pass
    if conf.get("hostname"):
        try:
            network.hostname(conf["hostname"])
        except Exception:
            pass
    wlan = network.WLAN(network.STA_IF)
    wlan.active(True)
    if not wlan.isconnected():
        log("joining Wi-Fi %r" % conf["ssid"])
        wlan.connect(conf["ssid"], conf.get("password", ""))
        for _ in range(60):
            if wlan.isconnected():
                break
            time.sleep(0.5)
    if not wlan.isconnected():
        raise OSError("could not join Wi-Fi %r (status %s)" % (conf["ssid"], wlan.status()))
    log("Wi-Fi up: %s" % (wlan.ifconfig(),))
    return wlan


def set_clock(conf):
    # Certificate validity checks need the wall clock; `make deploy` sets it over USB, NTP keeps
    # it right after a power cycle.
    if not conf.get("ntp", True):
        return
    try:
        import ntptime

        ntptime.settime()
        log("clock set from NTP: %s" % (time.gmtime(),))
    except Exception as e:
        log("NTP failed (%s); keeping the clock as it is" % e)


class Watchdog:
    def __init__(self):
        self.wdt = None

    def __call__(self):
        if self.wdt is None:
            try:
                self.wdt = machine.WDT(timeout=WATCHDOG_MS)
                log("watchdog armed (%d ms)" % WATCHDOG_MS)
            except Exception:
                self.wdt = False  # no watchdog on this board
        if self.wdt:
            self.wdt.feed()


def run():
    try:
        with open(WIFI) as f:
            wifi = json.load(f)
    except OSError:
        wifi = None
        log("no %s: serving on the interfaces already up" % WIFI)
    if wifi:
        join_wifi(wifi)
        set_clock(wifi)
    gc.collect()
    from gatemq.micropython import cli

    return cli.main(["--config", CONFIG], on_tick=Watchdog())


def main():
    try:
        status = run()
    except KeyboardInterrupt:
        log("stopped from the REPL")
        return
    except Exception as e:
        sys.print_exception(e)
        status = 1
    if status == 2:
        log("fix %s (see the error above) and reset the board" % CONFIG)
        return
    log("broker stopped (status %s); restarting in %d s" % (status, RESTART_PAUSE_S))
    time.sleep(RESTART_PAUSE_S)
    machine.reset()


main()
