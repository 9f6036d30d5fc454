# The dashboard in a real browser: Debian's chromium, headless, driven by Selenium through
# Debian's chromedriver (`make test-tools` installs both). Logs in, maps certificate DNs to
# usernames from Management -> MQTT Settings -> General, sees a mutual-TLS client's DN on the
# Clients page, kicks it, and checks the pages fit a phone's width. Screenshots go to
# test-output/dashboard/.
import os
import shutil
import tempfile
import time

import pytest

from brokers import ROOT
from clients import Client, V5
from test_dashboard_api import LISTEN, Http, pki, start, tls_client, tls_config  # noqa: F401 (pki is a fixture)

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = os.path.join(ROOT, "test-output", "dashboard")
DN = "CN=device1,O=gatemq demo"


@pytest.fixture
def browser():
    assert os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER), \
        "chromium and chromium-driver are missing: run `make test-tools` (apt-get install chromium chromium-driver)"
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    profile = tempfile.mkdtemp(prefix="gatemq-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
              "--disable-background-networking", "--disable-component-update", "--disable-sync",
              "--disable-dev-shm-usage", "--user-data-dir=" + profile, "--window-size=1280,900"):
        opts.add_argument(a)
    # An explicit driver path keeps Selenium Manager from looking for (downloading) a driver.
    d = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    d.implicitly_wait(0)
    os.makedirs(SHOTS, exist_ok=True)
    yield d
    d.quit()
    shutil.rmtree(profile, ignore_errors=True)


def wait_for(fn, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # the element may not exist yet
            last = e
        time.sleep(0.1)
    raise AssertionError("timed out waiting for %s (%r)" % (what, last))


def shot(d, name):
    d.save_screenshot(os.path.join(SHOTS, name + ".png"))


def by_id(d, id_):
    from selenium.webdriver.common.by import By
    return d.find_element(By.ID, id_)


def css(d, sel):
    from selenium.webdriver.common.by import By
    return d.find_elements(By.CSS_SELECTOR, sel)


def fits_width(d):
    return d.execute_script("return document.documentElement.scrollWidth <= window.innerWidth + 1")


def at_phone_width(d, what, settle=0.3):
    """The window at a phone's 390x844, settle seconds later the page (what) needs no sideways
    scrolling."""
    d.set_window_size(390, 844)
    time.sleep(settle)
    assert fits_width(d), "%s is wider than a phone screen" % what


def client_row(d, clientid):
    for tr in css(d, "#clients tbody tr"):
        if tr.get_attribute("data-clientid") == clientid:
            return tr
    return None


def cell_text(d, clientid, sel):
    # Read in one go: the live refresh may replace the row between two lookups.
    return d.execute_script(
        "for (const tr of document.querySelectorAll('#clients tbody tr'))"
        "  if (tr.dataset.clientid === arguments[0]) return tr.querySelector(arguments[1]).textContent;"
        "return null;", clientid, sel)


def click_kick(d, clientid):
    from selenium.common.exceptions import StaleElementReferenceException
    try:
        client_row(d, clientid).find_element("css selector", "button.kick").click()
        return True
    except (StaleElementReferenceException, AttributeError):
        return False


def test_dashboard_in_chromium(make_broker, pki, browser):  # noqa: F811
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    d = browser
    b = start(make_broker, tls_config(pki), listeners=LISTEN + [("ssl", "mtls")])
    url = "http://127.0.0.1:%d/" % b.ports[("http", "dashboard")]
    d.get(url)

    # 1. Log in (a wrong password first: the page shows the server's refusal).
    wait_for(lambda: by_id(d, "login").is_displayed(), what="the login form")
    by_id(d, "username").send_keys("admin")
    by_id(d, "password").send_keys("nope")
    by_id(d, "login-button").click()
    wait_for(lambda: "wrong username or password" in by_id(d, "login-error").text, what="the login error")
    by_id(d, "password").clear()
    by_id(d, "password").send_keys("public")
    by_id(d, "login-button").click()
    wait_for(lambda: by_id(d, "page-overview").is_displayed(), what="the overview page")
    wait_for(lambda: "ssl:mtls" in by_id(d, "listeners").text, what="the listeners table")
    assert by_id(d, "ov-connections").text == "0"
    shot(d, "1-overview")

    # 2. Management -> MQTT Settings -> General: peer_cert_as_username = dn, Save Changes.
    d.find_element(By.CSS_SELECTOR, "#nav-management summary").click()
    wait_for(lambda: by_id(d, "nav-mqtt").is_displayed(), what="the Management menu")
    shot(d, "1b-management-menu")
    by_id(d, "nav-mqtt").click()
    wait_for(lambda: by_id(d, "page-mqtt").is_displayed(), what="the MQTT settings page")
    assert by_id(d, "tab-general").text == "General"
    sel = Select(by_id(d, "peer_cert_as_username"))
    assert [o.get_attribute("value") for o in sel.options] == ["disabled", "cn", "dn", "crt", "pem", "md5"]
    assert [o.get_attribute("value") for o in Select(by_id(d, "peer_cert_as_clientid")).options] == \
        ["disabled", "cn", "dn", "crt", "pem", "md5"]
    wait_for(lambda: sel.first_selected_option.get_attribute("value") == "disabled", what="the loaded settings")
    assert not by_id(d, "use_username_as_clientid").is_selected()
    # A value the server refuses shows the server's own message.
    d.execute_script("var o = document.createElement('option'); o.value = o.textContent = 'bogus';"
                     "document.getElementById('peer_cert_as_clientid').appendChild(o);")
    Select(by_id(d, "peer_cert_as_clientid")).select_by_value("bogus")
    by_id(d, "save").click()
    wait_for(lambda: "mqtt.peer_cert_as_clientid: expected one of" in by_id(d, "save-msg").text,
             what="the server's error on the page")
    shot(d, "2-mqtt-settings-error")
    Select(by_id(d, "peer_cert_as_clientid")).select_by_value("disabled")
    sel.select_by_value("dn")
    by_id(d, "save").click()
    wait_for(lambda: by_id(d, "save-msg").text.startswith("Saved"), what="the saved message")
    shot(d, "3-mqtt-settings-saved")
    api = Http(b).login()
    assert api.call("GET", "/api/v5/configs/mqtt")[1]["peer_cert_as_username"] == "dn"

    # 3. A mutual-TLS client connects after the save.
    dev = tls_client(b, pki, "device1", "gw-browser")
    try:
        # 4. Its DN is its username on the Clients page, which refreshes by itself.
        d.find_element(By.CSS_SELECTOR, "#nav a[data-page=clients]").click()
        wait_for(lambda: client_row(d, "gw-browser"), what="the client's row")
        assert cell_text(d, "gw-browser", "td.username") == DN
        assert cell_text(d, "gw-browser", "td.cn") == "device1"
        shot(d, "4-clients")

        # The page fits a phone: no sideways scrolling.
        at_phone_width(d, "the Clients page")
        shot(d, "5-clients-phone")

        # 5. Kick it: the page asks first; dismissing keeps the client.
        wait_for(lambda: click_kick(d, "gw-browser"), what="the Kick button")
        alert = wait_for(lambda: d.switch_to.alert, what="the confirmation")
        assert "gw-browser" in alert.text
        alert.dismiss()
        time.sleep(0.5)
        assert dev.c.is_connected() and client_row(d, "gw-browser") is not None
        wait_for(lambda: click_kick(d, "gw-browser"), what="the Kick button")
        wait_for(lambda: d.switch_to.alert, what="the confirmation").accept()
        assert dev.wait_disconnected() == 0x98
        wait_for(lambda: client_row(d, "gw-browser") is None, what="the row to go")
        wait_for(lambda: by_id(d, "clients-empty").is_displayed(), what="the empty list")
        assert "was kicked" in by_id(d, "clients-msg").text
        shot(d, "6-clients-after-kick-phone")
        assert api.call("GET", "/api/v5/clients/gw-browser")[0] == 404

        # The other pages at phone width.
        d.find_element(By.CSS_SELECTOR, "#nav-management summary").click()
        by_id(d, "nav-mqtt").click()
        wait_for(lambda: by_id(d, "page-mqtt").is_displayed(), what="the MQTT settings page")
        assert fits_width(d), "the MQTT settings page is wider than a phone screen"
        shot(d, "7-mqtt-settings-phone")
        d.find_element(By.CSS_SELECTOR, "#nav a[data-page=overview]").click()
        wait_for(lambda: "ssl:mtls" in by_id(d, "listeners").text, what="the listeners table")
        assert fits_width(d), "the overview is wider than a phone screen"
        shot(d, "8-overview-phone")
    finally:
        dev.disconnect()


def test_an_expired_session_returns_to_the_login(make_broker, browser):
    d = browser
    b = start(make_broker, "dashboard.token_expired_time = 1s\n" + LISTEN_DASH)
    d.get("http://127.0.0.1:%d/#/clients" % b.ports[("http", "dashboard")])
    wait_for(lambda: by_id(d, "login").is_displayed(), what="the login form")
    by_id(d, "username").send_keys("admin")
    by_id(d, "password").send_keys("public")
    by_id(d, "login-button").click()
    wait_for(lambda: by_id(d, "page-clients").is_displayed(), what="the clients page")
    # The live refresh finds the token expired and asks to log in again.
    wait_for(lambda: by_id(d, "login").is_displayed(), timeout=8, what="the login form again")
    assert "log in again" in by_id(d, "login-error").text


LISTEN_DASH = 'dashboard.listeners.http.bind = "127.0.0.1:0"\n'
