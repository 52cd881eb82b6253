"""A reviewer's look at a study in MLflow's own UI, in a real browser: Debian's Chromium,
driven by Selenium through Debian's chromedriver (no browser is downloaded at run time).

`dashboard(store, out)` starts `mlflow server` on 127.0.0.1 over a store, opens a study's
experiment through the link the report gives (`runtime.parents.experiment_url`: the runs
view with widthlab's saved review view), its chart view and its main parent run, and returns
what each page shows, saving a screenshot of each in `out`. tests/test_dashboard_browser.py
checks a smoke store with it; the README's screenshots are the laptop store's:

    python tests/browser.py sqlite:///mlflow.db reports/dashboard
"""

from __future__ import annotations

import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
STUDY = "double_descent_mlp"


def missing() -> str | None:
    """Why the browser cannot run here (one line), or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def mlflow_ui(store: str, cwd: Path):
    """`mlflow server` over `store` on a free local port, for the duration of the block."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", store,
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    address = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                with urllib.request.urlopen(address + "/health", timeout=2):
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"mlflow server did not answer on {address} within 60 s")
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def chromium(width: int = 1800, height: int = 1150):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    options = Options()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-sync",
                 "--disable-component-update", "--disable-dev-shm-usage",
                 f"--window-size={width},{height}"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


# The runs table's footer once it has loaded ("0 matching runs" shows while it loads).
LOADED_RUNS = re.compile(r"\b[1-9][0-9]* matching runs")


def wait_for(driver, text: str | re.Pattern, seconds: float = 30.0) -> str:
    """The page's text once it contains `text`, or matches it if a pattern (or after
    `seconds`)."""
    from selenium.webdriver.common.by import By

    deadline = time.time() + seconds
    body = ""
    while time.time() < deadline:
        body = driver.find_element(By.TAG_NAME, "body").text
        if text.search(body) if isinstance(text, re.Pattern) else text in body:
            return body
        time.sleep(0.5)
    return body


def close_assistant(driver) -> None:
    """Close MLflow's assistant panel, which takes a third of the page."""
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, "button[aria-label=Close]"):
        if button.is_displayed():
            button.click()
            time.sleep(1)
            return


def dashboard(store: str, out: Path, cwd: Path, study: str = STUDY) -> dict[str, str]:
    """Each page's text, after the screenshots runs.png, charts.png and parent.png."""
    from mlflow import MlflowClient
    from selenium.webdriver.common.by import By

    from widthlab.runtime.parents import experiment_url

    out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(store)
    experiment = client.get_experiment_by_name(study)
    parent = client.search_runs(
        [experiment.experiment_id],
        f"tags.`widthlab.sweep` = '{study}' and attributes.status = 'FINISHED'",
        order_by=["start_time DESC"],
    )[0]
    pages = {}
    with mlflow_ui(store, cwd) as ui, chromium() as driver:
        driver.get(experiment_url(experiment.experiment_id, ui))
        wait_for(driver, LOADED_RUNS)
        close_assistant(driver)
        pages["runs"] = wait_for(driver, LOADED_RUNS)
        driver.save_screenshot(str(out / "runs.png"))
        chart = driver.find_element(By.CSS_SELECTOR, "input[type=radio][value=CHART]")
        driver.execute_script("arguments[0].click()", chart)
        pages["charts"] = wait_for(driver, "against width")
        time.sleep(3)  # the charts draw after their titles
        driver.save_screenshot(str(out / "charts.png"))
        run_page = f"{ui}/#/experiments/{experiment.experiment_id}/runs/{parent.info.run_id}"
        driver.get(run_page + "/artifacts?workflowType=machine_learning")
        pages["parent"] = wait_for(driver, "figures")
        for link in driver.find_elements(By.XPATH, "//*[normalize-space(text())='figures']"):
            if link.is_displayed():
                link.click()
                break
        pages["parent"] = wait_for(driver, ".png")
        time.sleep(1)
        for item in driver.find_elements(By.XPATH, "//*[contains(text(), '.png')]"):
            if item.is_displayed():
                item.click()  # the figure's preview
                break
        time.sleep(3)
        close_assistant(driver)
        driver.save_screenshot(str(out / "parent.png"))
    return pages


if __name__ == "__main__":
    reason = missing()
    if reason:
        raise SystemExit(f"error: {reason}")
    store_uri, folder = sys.argv[1], Path(sys.argv[2])
    for name, text in dashboard(store_uri, folder, Path.cwd()).items():
        print(f"{name}: {len(text)} characters of text; {folder / name}.png")
