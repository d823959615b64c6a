"""A link's page in a real browser: Debian's headless Chromium, driven through
chromedriver by selenium, against a `tessera dev` cluster on 127.0.0.1. The page
loads, shows the file, its Download button downloads the exact bytes, and a
password link asks for the password first. Screenshots go to
$TESSERA_TEST_OUTPUT (default: the test's temporary dir)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

REPO = Path(__file__).resolve().parents[2]


def binary(name):
    bin_dir = os.environ.get("TESSERA_BIN_DIR") or os.path.join(
        os.environ.get("CARGO_TARGET_DIR", str(REPO / "target")), "debug"
    )
    return str(Path(bin_dir) / name)


def until(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(what)


@pytest.fixture(scope="module")
def dev():
    root = Path(tempfile.mkdtemp(prefix="tessera-browser-"))
    log = open(root / "dev.log", "wb")
    proc = subprocess.Popen(
        [binary("tessera"), "dev", "--data", str(root / "data")], stdout=log, stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        env_file = root / "data" / "env"
        until("tessera dev's env file", lambda: env_file.exists() or proc.poll() is not None, timeout=120)
        assert proc.poll() is None, (root / "dev.log").read_text()
        env = dict(os.environ)
        for line in env_file.read_text().splitlines():
            if line.startswith("export "):
                key, _, value = line[len("export "):].partition("=")
                env[key] = value
        yield root, env
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        if os.environ.get("TESSERA_KEEP_TEST_DIRS") is None:
            shutil.rmtree(root, ignore_errors=True)


def tessera(env, *args, stdin=None):
    out = subprocess.run([binary("tessera"), *args], env=env, input=stdin, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.fixture()
def browser(tmp_path):
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1000,700"]:
        options.add_argument(arg)
    options.add_experimental_option(
        "prefs", {"download.default_directory": str(downloads), "download.prompt_for_download": False}
    )
    service = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)})
    try:
        yield driver, downloads
    finally:
        driver.quit()


def screenshot(driver, tmp_path, name):
    out = Path(os.environ.get("TESSERA_TEST_OUTPUT", tmp_path))
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 0
    return path


def downloaded(downloads, name):
    def done():
        f = downloads / name
        partial = list(downloads.glob("*.crdownload"))
        return f if f.exists() and not partial else None

    return until(f"{name} downloaded", done)


def test_a_link_page_loads_and_its_download_button_gets_the_bytes(dev, browser, tmp_path):
    root, env = dev
    driver, downloads = browser
    data = os.urandom(250_000)
    local = root / "report.bin"
    local.write_bytes(data)
    tessera(env, "put", str(local), "/share/report.bin")
    url = json.loads(tessera(env, "--json", "link", "create", "/share/report.bin"))["url"]

    driver.get(url)
    assert driver.title == "report.bin"
    assert "250000 bytes" in driver.page_source
    screenshot(driver, tmp_path, "link-page.png")
    driver.find_element(By.ID, "download").click()
    assert downloaded(downloads, "report.bin").read_bytes() == data


def test_a_password_link_asks_first_and_then_downloads(dev, browser, tmp_path):
    root, env = dev
    driver, downloads = browser
    data = os.urandom(40_000)
    local = root / "secret.bin"
    local.write_bytes(data)
    tessera(env, "put", str(local), "/share/secret.bin")
    url = json.loads(tessera(env, "--json", "link", "create", "/share/secret.bin", "--password", stdin="open sesame\n"))[
        "url"
    ]

    driver.get(url)
    assert "needs a password" in driver.title
    field = driver.find_element(By.NAME, "password")
    field.send_keys("wrong")
    field.submit()
    until("the wrong-password note", lambda: "not right" in driver.page_source)
    field = driver.find_element(By.NAME, "password")
    field.send_keys("open sesame")
    field.submit()
    until("the file page", lambda: driver.title == "secret.bin")
    screenshot(driver, tmp_path, "link-page-after-password.png")
    driver.find_element(By.ID, "download").click()
    assert downloaded(downloads, "secret.bin").read_bytes() == data


def test_an_edit_links_folder_page_uploads_a_file_through_its_form(dev, browser, tmp_path):
    root, env = dev
    driver, _ = browser
    tessera(env, "mkdir", "/inbox/sub")
    url = json.loads(tessera(env, "--json", "link", "create", "/inbox", "--permission", "edit"))["url"]
    data = os.urandom(300_000)
    local = root / "from-browser.bin"
    local.write_bytes(data)

    driver.get(url)
    assert driver.title == "inbox"
    driver.find_element(By.ID, "file").send_keys(str(local))
    screenshot(driver, tmp_path, "link-upload-form.png")
    driver.find_element(By.ID, "upload").click()
    # Back on the listing (a redirect to the link), which now shows the file.
    until("the listing with the upload", lambda: "from-browser.bin" in driver.page_source)
    assert driver.current_url == url
    screenshot(driver, tmp_path, "link-upload-done.png")
    back = root / "back.bin"
    tessera(env, "get", "/inbox/from-browser.bin", str(back))
    assert back.read_bytes() == data


def test_a_password_edit_link_takes_an_upload_after_the_password(dev, browser, tmp_path):
    root, env = dev
    driver, _ = browser
    tessera(env, "mkdir", "/locked-inbox")
    url = json.loads(
        tessera(env, "--json", "link", "create", "/locked-inbox", "--permission", "edit", "--password",
                stdin="open sesame\n")
    )["url"]
    data = os.urandom(50_000)
    local = root / "behind-password.bin"
    local.write_bytes(data)

    driver.get(url)
    field = driver.find_element(By.NAME, "password")
    field.send_keys("open sesame")
    field.submit()
    until("the folder page", lambda: driver.title == "locked-inbox")
    driver.find_element(By.ID, "file").send_keys(str(local))
    driver.find_element(By.ID, "upload").click()
    until("the listing after the upload", lambda: "Uploaded behind-password.bin" in driver.page_source)
    back = root / "back-locked.bin"
    tessera(env, "get", "/locked-inbox/behind-password.bin", str(back))
    assert back.read_bytes() == data
