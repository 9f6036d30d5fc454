# The Dashboard's Overview charts, Clients (certificate, sorting, search) and Listeners pages in
# the real headless Chromium of test_dashboard_browser.py. The charts must draw after traffic
# (coloured line pixels above the zero line of the canvas, not just axes); screenshots at desktop
# and phone width go to test-output/dashboard/.
import threading
import time

from clients import V5, Client
from test_dashboard_api import LISTEN, Http, pki, start, tls_client, tls_config  # noqa: F401 (pki is a fixture)
from test_dashboard_browser import browser, by_id, css, fits_width, shot, wait_for  # noqa: F401
from test_ws_listeners import ws_client

# Counts pixels of one line colour (within a tolerance) in the part of a canvas above `above`
# (a fraction of the plot's height from its bottom): a line at zero does not count.
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
    assert d.execute_script(PIXELS, "chart-messages", BLUE, 0.3) == 0
    assert d.execute_script(PIXELS, "chart-connections", GREEN, 0.3) == 0

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
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", BLUE, 0.3) > 20, timeout=25,
                 what="the messages-in line above zero")
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", ORANGE, 0.3) > 20, timeout=10,
                 what="the messages-out line above zero")
        wait_for(lambda: d.execute_script(PIXELS, "chart-connections", GREEN, 0.3) > 20, timeout=10,
                 what="the connections line above zero")
        assert float(by_id(d, "chart-messages").get_attribute("data-max")) >= 100
        shot(d, "10-overview-charts-desktop")
        d.set_window_size(390, 844)
        time.sleep(2.5)   # one refresh: the charts redraw at the new width
        assert fits_width(d), "the overview with charts is wider than a phone screen"
        wait_for(lambda: d.execute_script(PIXELS, "chart-messages", BLUE, 0.3) > 10, what="the chart at phone width")
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
            "        notafter: tr.querySelector('td.notafter').textContent}")
        assert row["cn"] == "device1" and row["listener"] == "ssl:mtls"
        api = Http(b).login()
        info = api.call("GET", "/api/v5/clients/zz-device")[1]
        if info.get("cert_not_after"):        # when the API reports it, the page shows its date
            assert row["notafter"].startswith(info["cert_not_after"][:10])
        assert d.execute_script("return document.querySelector('#clients tbody tr[data-clientid=\"ws-%s\"] "
                                "td.listener').textContent" % uid) == "ws:default"
        by_id(d, "client-filter").send_keys("device1")      # a CN, not a client id or username
        wait_for(lambda: ids() == ["zz-device"], what="the search by CN")
        assert fits_width(d), "the Clients page is wider than a 1280 px screen"
        shot(d, "12-clients-sorted-searched-desktop")
        d.set_window_size(390, 844)
        time.sleep(0.3)
        assert fits_width(d), "the Clients page is wider than a phone screen"
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
        d.set_window_size(390, 844)
        time.sleep(0.3)
        assert fits_width(d), "the Listeners page is wider than a phone screen"
        shot(d, "15-listeners-phone")
    finally:
        for c in (sub, wsc, dev, pub):
            c.disconnect()
