"""Headless Chromium for the explorer's browser test and its screenshot: Debian's ``chromium``
and ``chromium-driver`` (install.sh) driven by selenium, which is pointed at the system
chromedriver so it downloads nothing, with a fresh empty profile and no background traffic."""
import os

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync")
WINDOW = (1200, 900)


def missing():
    """Why the browser cannot start here (one line), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -r requirements-test.txt)"
    if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
        return "Debian's chromium and chromium-driver are not installed (install.sh)"
    return None


def start_chromium(profile, window=WINDOW):
    """A selenium driver of headless Chromium with its profile in the folder ``profile`` and
    the browser console logged (``driver.get_log("browser")``)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS + (f"--window-size={window[0]},{window[1]}",
                                  f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
