"""GET /docs in a real headless browser (Debian's chromium through selenium):
the page loads from the app alone, lists /send-sms, and its "try it out"
reaches the running app, which answers a call without a key with a 401 problem."""

from __future__ import annotations

import os
import shutil

import pytest

pytestmark = pytest.mark.integration

CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,2000",
)
WAIT_SECONDS = 30


@pytest.fixture
def browser(tmp_path):
    binary = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    if not (binary and driver_path):
        if os.environ.get("CI") == "true":
            pytest.fail("CI must have chromium and chromium-driver (apt) for the docs test")
        pytest.skip("needs Debian's chromium and chromium-driver")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def test_docs_page_lists_send_sms_and_try_it_out_gets_a_401_problem(stack, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ready
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(browser, WAIT_SECONDS)
    messages_before = stack.app_get("/messages").json()["messages"]

    browser.get(f"{stack.app_url}/docs")
    send_sms = wait.until(
        ready.element_to_be_clickable(
            (By.CSS_SELECTOR, "#operations-default-sendSms .opblock-summary, "
             "[id$='-sendSms'] .opblock-summary")
        )
    )  # fmt: skip
    paths = [e.text for e in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")]
    assert "/send-sms" in paths
    send_sms.click()
    try_it = wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".try-out__btn")))
    if try_it.text.strip() == "Try it out":
        try_it.click()
    wait.until(ready.element_to_be_clickable((By.CSS_SELECTOR, ".execute"))).click()
    status = wait.until(
        ready.visibility_of_element_located(
            (By.CSS_SELECTOR, ".live-responses-table .response .response-col_status")
        )
    )

    assert status.text.strip() == "401"
    answer = browser.find_element(By.CSS_SELECTOR, ".live-responses-table .response").text
    assert "application/problem+json" in answer
    assert '"status": 401' in answer
    loaded = browser.execute_script(
        "return performance.getEntriesByType('resource').map(entry => entry.name)"
    )
    assert loaded and all(url.startswith(stack.app_url + "/") for url in loaded), loaded
    refused = [
        entry["message"]
        for entry in browser.get_log("browser")
        if "Content Security Policy" in entry["message"] or entry["level"] == "SEVERE"
    ]
    assert [message for message in refused if "send-sms" not in message] == []
    assert stack.app_get("/messages").json()["messages"] == messages_before
