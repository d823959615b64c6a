"""The operator console in a real browser (Debian's headless Chromium through
chromedriver and selenium) against a `tessera dev` cluster: logging in, the
overview's health numbers equal `tessera admin status --json`, and the "Start GC
pass" button runs a pass the page then shows finished. Screenshots go to
$TESSERA_TEST_OUTPUT (default: the test's temporary dir)."""

import json

from selenium.webdriver.common.by import By

from test_link_page import browser, dev, screenshot, tessera, until  # noqa: F401 (fixtures)


def text(driver, element_id):
    return driver.find_element(By.ID, element_id).text.strip()


def test_console_login_health_numbers_and_gc_button(dev, browser, tmp_path):
    root, env = dev
    driver, _ = browser
    url = env["TESSERA_ADMIN_URL"]
    local = root / "console.bin"
    local.write_bytes(b"console test " * 20_000)
    tessera(env, "put", str(local), "/console/console.bin")

    driver.get(url + "/")
    assert "Log in" in driver.title
    driver.find_element(By.ID, "password").send_keys("not the password")
    driver.find_element(By.ID, "login").click()
    until("the wrong-password message", lambda: driver.find_elements(By.ID, "login-error"))
    assert "wrong password" in text(driver, "login-error")

    driver.find_element(By.ID, "password").send_keys(env["TESSERA_ADMIN_PASSWORD"])
    driver.find_element(By.ID, "login").click()
    until("the overview", lambda: driver.find_elements(By.ID, "health"))

    status = json.loads(tessera(env, "--json", "admin", "status"))
    summary = status["summary"]
    assert text(driver, "meta-up") == str(summary["meta_nodes_up"])
    assert text(driver, "meta-down") == str(summary["meta_nodes_down"])
    assert text(driver, "block-up") == str(summary["block_nodes_up"]) == "6"
    assert text(driver, "block-down") == str(summary["block_nodes_down"])
    assert driver.find_element(By.ID, "fragment-bytes").get_attribute("data-bytes") == str(summary["fragment_bytes"])
    assert driver.find_element(By.ID, "disk-total").get_attribute("data-bytes") == str(summary["disk_total_bytes"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#block-nodes tr")) == 1 + len(status["block_nodes"])
    assert len(driver.find_elements(By.CSS_SELECTOR, "#leaders tr")) == 1 + len(summary["leaders"])
    assert "tiering: not configured" in text(driver, "tiering")

    driver.find_element(By.ID, "start-gc").click()
    # The click submits a form; wait for the page it lands on before loading
    # another one, or the new load can cancel the submission in flight.
    try:
        until("the page after starting the pass",
              lambda: driver.find_elements(By.ID, "console-job") or driver.find_elements(By.ID, "action-error"))
    except TimeoutError:
        raise AssertionError("starting the GC pass showed no job; the page said:\n"
                             + driver.find_element(By.TAG_NAME, "body").text)
    errors = driver.find_elements(By.ID, "action-error")
    assert not errors, "starting the GC pass failed: " + errors[0].text

    def finished():
        driver.get(url + "/")
        jobs = driver.find_elements(By.ID, "console-job")
        if jobs and jobs[0].get_attribute("data-state") == "failed":
            raise AssertionError("the GC pass failed: " + jobs[0].text)
        return jobs and jobs[0].get_attribute("data-kind") == "gc" and jobs[0].get_attribute("data-state") == "finished"

    try:
        until("the GC pass to show finished", finished, timeout=120)
    except TimeoutError:
        # Say what the page showed instead, and what the cluster logged.
        log = (root / "dev.log").read_text(errors="replace").splitlines()
        raise AssertionError("the GC pass did not show finished; the page said:\n"
                             + driver.find_element(By.TAG_NAME, "body").text + "\n--- dev.log tail:\n"
                             + "\n".join(log[-40:]))
    assert driver.find_element(By.ID, "gc").get_attribute("data-state") == "finished"
    record = json.loads(tessera(env, "--json", "admin", "gc", "status"))
    assert record["phase"] == "done" and record["by"].startswith("console of router"), record
    screenshot(driver, tmp_path, "console-overview.png")

    driver.find_element(By.LINK_TEXT, "Users").click()
    until("the users page", lambda: driver.find_elements(By.ID, "users"))
    assert driver.find_elements(By.CSS_SELECTOR, "#users tr[data-user='dev']")
    screenshot(driver, tmp_path, "console-users.png")
