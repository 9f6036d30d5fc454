# The Dashboard's Overview charts, Clients (certificate, sorting, search) and Listeners pages in
# the real headless Chromium of test_dashboard_browser.py. The charts must draw after traffic
# (coloured line pixels above the zero line of the canvas, not just axes); screenshots at desktop
# and phone width go to test-output/dashboard/.
import threading
import time

from clients import V5, Client
from test_dashboard_api import LISTEN, Http, pki, start, tls_client, tls_config  # noqa: F401 (pki is a fixture)
from test_dashboard_browser import at_phone_width, browser, by_id, css, fits_width, shot, wait_for  # noqa: F401
from test_ws_listeners import ws_client

# Counts pixels of one line colour (within a tolerance) in the part of a canvas above `above`
# (a fraction of the plot's height from its bottom): a line at zero does not count. 0.1, not
# more: the scale follows the highest of both lines, and a spike of one leaves the other low.
PIXELS = """
const c = document.getElementById(arguments[0]);
const [r, g, b] = arguments[1];
const above = arguments[2];
const ctx = c.getContext('2d');
const d = ctx.getImageData(0, 0, c.width, c.height).data;
const dpr = c.width / c.clientWidth;
const top = 8 * dpr, bottom = c.height - 22 * dpr;
const limit = bottom - (bottom - top) * above;
let n = 0;
for (let y = 0; y < limit; y++) for (let x = 0; x < c.width; x++) {
  const i = (y * c.width + x) * 4;
  if (d[i + 3] > 200 && Math.abs(d[i] - r) < 40 && Math.abs(d[i + 1] - g) < 40 && Math.abs(d[i + 2] - b) < 40) n++;
}
return n;
"""
BLUE, ORANGE, GREEN = (11, 107, 203), (224, 123, 0), (27, 127, 59)


def login(d, url):
    d.get(url)
    wait_for(lambda: by_id(d, "login").is_displayed(), what="the login form")
    by_id(d, "username").send_keys("admin")
    by_id(d, "password").send_keys("public")
    by_id(d, "login-button").click()
    wait_for(lambda: by_id(d, "page-overview").is_displayed(), what="the overview page")


def test_charts_clients_and_listeners_pages(make_broker, pki, browser, uid):  # noqa: F811
    from selenium.webdriver.common.by import By
    d = browser
    # No $SYS messages: before the test's traffic every rate is zero.
    b = start(make_broker, tls_config(pki, 'listeners.ws.default.bind = "127.0.0.1:0"\n'
                                           'sys_topics { sys_msg_interval = disabled, sys_heartbeat_interval = disabled }\n'),
              listeners=LISTEN + [("ssl", "mtls"), ("ws", "default")])
    login(d, "http://127.0.0.1:%d/" % b.ports[("http", "dashboard")])
    # Before traffic the lines lie on zero: nothing above it (the negative side of the check).
    wait_for(lambda: int(by_id(d, "chart-messages").get_attribute("data-points") or 0) >= 2,
             what="the first samples on the messages chart")
    assert d.execute_script(PIXELS, "chart-messages", BLUE, 0.1) == 0
    assert d.execute_script(PIXELS, "chart-connections", GREEN, 0.1) == 0

    # Traffic: clients over tcp, ws and mutual TLS, and a publisher flat out for a while.
    sub = Client(b.port, uid + "-sub", V5).connect()
    assert sub.subscribe(uid + "/#", 0) == [0]
    wsc = ws_client(b.ports[("ws", "default")], "ws-" + uid, V5).connect()
    assert wsc.subscribe(uid + "/#", 0) == [0]      # two subscribers: out is twice in, two lines
    dev = tls_client(b, pki, "device1", "zz-device")
    pub = Client(b.port, "aa-" + uid, V5).connect()
    stop = threading.Event()

    def flood():
        while not stop.is_set():
            for _ in range(50):
                pub.publish(uid + "/x", b"m")
            time.sleep(0.05)
    t = threading.Thread(target=flood, daemon=True)
    t.start()
    try:
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", BLUE, 0.1) > 20, timeout=25,
                 what="the messages-in line above zero")
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", ORANGE, 0.1) > 20, timeout=10,
                 what="the messages-out line above zero")
        wait_for(lambda: d.execute_script(PIXELS, "chart-connections", GREEN, 0.1) > 20, timeout=10,
                 what="the connections line above zero")
        assert float(by_id(d, "chart-messages").get_attribute("data-max")) >= 100
        shot(d, "10-overview-charts-desktop")
        at_phone_width(d, "the overview with charts", 2.5)   # one refresh: the charts redraw at the new width
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", BLUE, 0.1) > 10, what="the chart at phone width")
        shot(d, "11-overview-charts-phone")
        d.set_window_size(1280, 900)
    finally:
        stop.set()
        t.join(5)

    try:
        # Clients: the certificate's CN, the listener, sorting and search.
        d.find_element(By.CSS_SELECTOR, "#nav a[data-page=clients]").click()
        wait_for(lambda: len(css(d, "#clients tbody tr")) == 4, what="the four clients")
        ids = lambda: d.execute_script(  # noqa: E731
            "return [...document.querySelectorAll('#clients tbody tr')].map(t => t.dataset.clientid)")
        d.find_element(By.CSS_SELECTOR, "#clients th[data-sort=clientid]").click()
        wait_for(lambda: ids() == sorted(ids()) and ids()[0] == "aa-" + uid, what="ascending client ids")
        d.find_element(By.CSS_SELECTOR, "#clients th[data-sort=clientid]").click()
        wait_for(lambda: ids() == sorted(ids(), reverse=True) and ids()[0] == "zz-device", what="descending")
        row = d.execute_script(
            "const tr = document.querySelector('#clients tbody tr[data-clientid=\"zz-device\"]');"
            "return {cn: tr.querySelector('td.cn').textContent, listener: tr.querySelector('td.listener').textContent,"
            "        notafter: tr.querySelector('td.notafter').textContent,"
            "        serial: tr.querySelector('td.notafter .serial').textContent}")
        assert row["cn"] == "device1" and row["listener"] == "ssl:mtls"
        api = Http(b).login()
        info = api.call("GET", "/api/v5/clients/zz-device")[1]
        # the certificate's notAfter and serial, as the API reports them
        assert row["notafter"].startswith(info["cert_not_after"][:10])
        assert row["serial"] == "serial " + info["cert_serial"]
        assert d.execute_script("return document.querySelector('#clients tbody tr[data-clientid=\"ws-%s\"] "
                                "td.listener').textContent" % uid) == "ws:default"
        by_id(d, "client-filter").send_keys("device1")      # a CN, not a client id or username
        wait_for(lambda: ids() == ["zz-device"], what="the search by CN")
        assert fits_width(d), "the Clients page is wider than a 1280 px screen"
        shot(d, "12-clients-sorted-searched-desktop")
        at_phone_width(d, "the Clients page")
        shot(d, "13-clients-phone")
        d.set_window_size(1280, 900)
        by_id(d, "client-filter").clear()

        # Listeners: each one with its type, the ws path and the server certificate's expiry.
        d.find_element(By.CSS_SELECTOR, "#nav a[data-page=listeners]").click()
        wait_for(lambda: len(css(d, "#listeners-full tbody tr")) == 3, what="the listeners page")
        rows = d.execute_script(
            "const o = {}; for (const tr of document.querySelectorAll('#listeners-full tbody tr'))"
            "  o[tr.dataset.listener] = [...tr.cells].map(c => c.textContent); return o;")
        assert rows["ws:default"][1] == "MQTT over WebSocket" and rows["ws:default"][3] == "/mqtt"
        assert rows["ssl:mtls"][4] == "verified"
        from cryptography import x509
        with open(pki["server"]["crt"], "rb") as f:
            na = x509.load_pem_x509_certificate(f.read()).not_valid_after_utc
        assert rows["ssl:mtls"][6].startswith(na.strftime("%Y-%m-%d")), rows["ssl:mtls"]
        assert rows["tcp:default"][6] == ""
        shot(d, "14-listeners-desktop")
        at_phone_width(d, "the Listeners page")
        shot(d, "15-listeners-phone")
    finally:
        for c in (sub, wsc, dev, pub):
            c.disconnect()


def test_bridges_page_shows_a_configured_bridge(make_broker, browser, tmp_path, uid):  # noqa: F811
    # A bridge to an upstream that is not there yet: the page shows it disconnected with the
    # refusal as its last error and the messages waiting in its queue; once the upstream is up,
    # connected, the queue empty and the messages counted as sent.
    from selenium.webdriver.common.by import By
    from bridgeutil import bridge_config
    from brokers import BrokerProcess, free_port
    from test_dashboard_api import DASH
    d = browser
    uport = free_port()
    b = start(make_broker, DASH + bridge_config("cloud", "mqtt://127.0.0.1:%d" % uport,
                                                [(uid + "/#", "up/" + uid + "/#", 1)], []))
    b.wait_log("bridge mqtt:cloud: cannot connect", timeout=10)
    login(d, "http://127.0.0.1:%d/" % b.ports[("http", "dashboard")])
    d.find_element(By.CSS_SELECTOR, "#nav a[data-page=bridges]").click()
    wait_for(lambda: by_id(d, "page-bridges").is_displayed(), what="the bridges page")

    def row():
        return d.execute_script(
            "const tr = document.querySelector('#bridges tbody tr[data-bridge=\"mqtt:cloud\"]');"
            "if (!tr) return null; const o = {};"
            "for (const td of tr.cells) o[td.dataset.label] = td.textContent; return o;")
    wait_for(lambda: row() is not None, what="the bridge's row")
    r = row()
    assert r["Server"] == "mqtt://127.0.0.1:%d" % uport
    assert r["Status"] in ("disconnected", "connecting") and "refused" in r["Last error"], r
    pub = Client(b.port, uid + "-pub", V5).connect()
    for i in range(5):
        pub.publish(uid + "/x", b"%d" % i, qos=1)
    wait_for(lambda: row()["Queue"] == "5", timeout=10, what="five messages queued")
    assert row()["Sent"] == "0" and row()["Dropped"] == "0"
    assert not by_id(d, "bridges-none").is_displayed()
    shot(d, "16-bridges-disconnected-desktop")
    folder = tmp_path / "upstream"
    folder.mkdir()
    up = BrokerProcess('listeners.tcp.default.bind = "127.0.0.1:%d"\ndashboard.enable = false\n' % uport,
                       tmp_path=folder)
    try:
        wait_for(lambda: row()["Status"] == "connected", timeout=20, what="the bridge connected")
        wait_for(lambda: row()["Queue"] == "0" and row()["Sent"] == "5", timeout=10, what="the queue sent")
        assert row()["Last error"] == ""
        shot(d, "17-bridges-connected-desktop")
        at_phone_width(d, "the Bridges page")
        shot(d, "18-bridges-phone")
        d.set_window_size(1280, 900)
    finally:
        pub.disconnect()
        up.stop()
