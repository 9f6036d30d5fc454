# gatemq on a board: join Wi-Fi from /wifi.json, set the clock, serve /gatemq.conf.
#
# /wifi.json: {"ssid": "...", "password": "...", "hostname": "gatemq", "country": "DE",
#              "ntp": true}
# An unexpected error restarts the board after a pause; a config error does not (it would only
# fail again), it is printed and the board waits for a fix over the REPL. Once the broker runs it
# arms the watchdog where the board has one, and feeds it from the broker's timer loop, so a hung
# loop resets the board too. Ctrl-C (also mpremote's, before it copies files) stops the broker and
# leaves the board at the REPL: the armed watchdog, which cannot be disarmed, is then fed by a
# timer so the board stays usable until machine.reset().
import gc
import json
import sys
import time

import machine

CONFIG = "/gatemq.conf"
WIFI = "/wifi.json"
# The timer loop runs at least once a second. The RP2040's watchdog takes at most 8388 ms (RP2350:
# 16777 ms), so a Pico W gets the shorter timeout instead of no watchdog.
WATCHDOG_MS = (30000, 8000)
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
        self.timer = None

    def __call__(self):
        if self.wdt is None:
            self.wdt = False  # no watchdog on this board, unless one of the timeouts is taken
            err = None
            for ms in WATCHDOG_MS:
                try:
                    self.wdt = machine.WDT(timeout=ms)
                    log("watchdog armed (%d ms)" % ms)
                    break
                except Exception as e:  # ValueError: timeout above the board's maximum
                    err = e
            if not self.wdt:
                log("no watchdog: %r" % (err,))
        if self.wdt:
            self.wdt.feed()

    def hand_over(self):
        # The broker stopped from the REPL: a watchdog cannot be disarmed once started, so feed it
        # from a timer (its callback runs while the REPL waits) instead of letting it reset the
        # board in the middle of an mpremote session.
        if not self.wdt:
            return
        wdt = self.wdt
        err = None
        for tid in (-1, 0):  # rp2 has only the virtual timer -1; ESP32 chips number hardware timers
            try:
                self.timer = machine.Timer(tid, period=1000, mode=machine.Timer.PERIODIC,
                                           callback=lambda t: wdt.feed())
                log("watchdog now fed by a timer; machine.reset() starts the broker again")
                return
            except Exception as e:
                err = e
        log("the watchdog will reset the board (cannot feed it from a timer: %r)" % (err,))


def run(watchdog):
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

    return cli.main(["--config", CONFIG], on_tick=watchdog)


def main():
    watchdog = Watchdog()
    try:
        status = run(watchdog)
    except KeyboardInterrupt:
        status = 0
    except Exception as e:
        sys.print_exception(e)
        status = 1
    if status == 0:
        # The broker returns 0 only when Ctrl-C stopped it (it logged "interrupted").
        log("stopped from the REPL")
        watchdog.hand_over()
        return
    if status == 2:
        log("fix %s (see the error above) and reset the board" % CONFIG)
        return
    log("broker stopped (status %s); restarting in %d s" % (status, RESTART_PAUSE_S))
    time.sleep(RESTART_PAUSE_S)
    machine.reset()


main()
