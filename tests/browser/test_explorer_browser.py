"""The keep-rate explorer in a real JupyterLab, driven through headless Chromium.

The test starts JupyterLab on a free port of 127.0.0.1 with a random token, in a temporary
root folder holding a copy of the visualization notebook (or, before that notebook exists,
a one-cell notebook calling ``explore()``). Chromium runs headless with networking to any
host but 127.0.0.1 blocked. The test runs the explorer cell, moves the keep-rate slider of
block 4 with the keyboard, and checks that the token count shown in the page and the kept-
patch image both change. Screenshots go to ``test-artifacts/``.

It needs Debian's ``chromium`` and ``chromium-driver`` and the ``selenium`` package; it is
skipped, with the reason, when one of them is missing.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import nbformat
import pytest

from lab6.schedule import LAB_SCHEDULE, token_counts

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"
EXPLORER_TAG = "lab6:explorer"
SERVER_START_S = 120
KERNEL_RUN_S = 240
UPDATE_S = 120

pytestmark = pytest.mark.browser


def _browser_paths() -> tuple[str, str]:
    chromium = os.environ.get("LAB6_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    driver = os.environ.get("LAB6_CHROMEDRIVER") or shutil.which("chromedriver")
    if not chromium:
        pytest.skip("chromium is not installed (run .ci/install-browser.sh, or apt-get install chromium chromium-driver)")
    if not driver:
        pytest.skip("chromedriver is not installed (apt-get install chromium-driver)")
    pytest.importorskip("selenium", reason="the selenium package is not installed (pip install selenium)")
    return chromium, driver


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _explorer_notebook(root: Path) -> str:
    """Write the notebook to open into ``root`` and return its file name."""
    sources = sorted((REPO / "solutions").glob("05_*.ipynb"))
    for path in sources:
        notebook = nbformat.read(path, as_version=4)
        if any(EXPLORER_TAG in cell.get("metadata", {}).get("tags", []) for cell in notebook.cells):
            shutil.copy(path, root / path.name)
            return path.name
    notebook = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("from lab6.explorer import explore\n\nexplore()")
    cell.metadata["tags"] = [EXPLORER_TAG]
    notebook.cells = [nbformat.v4.new_markdown_cell("# 互動探索"), cell]
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "explorer.ipynb")
    return "explorer.ipynb"


def _wait_for_server(process: subprocess.Popen, port: int, token: str, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    url = f"http://127.0.0.1:{port}/api/status?token={token}"
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with code {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"JupyterLab did not answer on port {port} within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def _stop(process: subprocess.Popen) -> None:
    """Stop the server and its kernels: the whole process group this fixture started."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


@pytest.fixture
def jupyter_lab(tmp_path):
    """Start JupyterLab on 127.0.0.1 with a token; yield (url of the notebook, log path)."""
    _browser_paths()
    root = tmp_path / "root"
    root.mkdir()
    notebook = _explorer_notebook(root)
    port = _free_port()
    token = uuid.uuid4().hex
    home = tmp_path / "home"

    labconfig = home / "config" / "labconfig"
    labconfig.mkdir(parents=True)
    # The news prompt would cover part of the screenshot, and news_url=None does not stop it.
    page_config = {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
    (labconfig / "page_config.json").write_text(json.dumps(page_config))
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"),
        "IPYTHONDIR": str(home / "ipython"),
        "MPLCONFIGDIR": str(home / "matplotlib"),
        "HF_HUB_OFFLINE": "1",
        "LAB6_DEVICE": "cpu",
        "LAB6_LANG": "zh-TW",
    }

    command = [
        sys.executable,
        "-m",
        "jupyterlab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.allow_remote_access=False",
        "--LabApp.expose_app_in_browser=True",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        "--LabApp.extension_manager=readonly",
        "--ServerApp.terminals_enabled=False",
    ]
    if os.geteuid() == 0:  # CI containers run as root, which JupyterLab refuses by default
        command.append("--allow-root")
    log = tmp_path / "jupyterlab.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_server(process, port, token, log)
        yield f"http://127.0.0.1:{port}/lab/tree/{notebook}?token={token}&reset", log
    finally:
        _stop(process)


@pytest.fixture
def browser(tmp_path):
    """Yield a headless Chromium driven by Debian's chromedriver, with a fresh profile."""
    chromium, driver_path = _browser_paths()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    os.environ.setdefault("SE_OFFLINE", "true")  # Selenium Manager must not look for downloads
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-default-apps",
        "--disable-extensions",
        "--no-first-run",
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--window-size=1400,2000",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    driver.set_page_load_timeout(120)
    try:
        yield driver
    finally:
        driver.quit()


_RUN_EXPLORER_CELL = """
const done = arguments[arguments.length - 1];
const tag = arguments[0];
const app = window.jupyterapp;
const panel = app && app.shell.currentWidget;
if (!panel || !panel.content || !panel.sessionContext) { done('notebook not open'); return; }
panel.sessionContext.ready.then(() => {
  const cells = panel.content.widgets;
  const index = cells.findIndex(c => (c.model.getMetadata('tags') || []).includes(tag));
  if (index < 0) { done('no cell tagged ' + tag); return; }
  panel.content.activeCellIndex = index;
  app.commands.execute('notebook:run-cell').then(() => done('ok'), e => done('run failed: ' + e));
}, e => done('kernel failed: ' + e));
"""


def _text(driver, selector: str) -> str:
    found = driver.find_elements("css selector", selector)
    return found[0].text if found else ""


def _image_src(driver, selector: str) -> str:
    found = driver.find_elements("css selector", selector)
    return found[0].get_attribute("src") or "" if found else ""


def _screenshot(driver, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    driver.save_screenshot(str(path))
    return path


def _token_row(text: str) -> list[int]:
    """Return the token counts from the token table's text: the input and then blocks 1..12."""
    numbers = [int(word) for word in text.split() if word.isdigit()]
    return numbers[-13:]


def test_slider_updates_page(jupyter_lab, browser):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    url, log = jupyter_lab
    browser.get(url)
    try:
        WebDriverWait(browser, SERVER_START_S).until(
            lambda d: d.execute_script(
                "const p = window.jupyterapp && window.jupyterapp.shell.currentWidget;"
                "return !!(p && p.content && p.content.widgets && p.content.widgets.length > 0);"
            )
        )
        browser.set_script_timeout(KERNEL_RUN_S)
        assert browser.execute_async_script(_RUN_EXPLORER_CELL, EXPLORER_TAG) == "ok"

        WebDriverWait(browser, KERNEL_RUN_S).until(lambda d: len(_token_row(_text(d, ".lab6-token-counts"))) == 13)
        WebDriverWait(browser, UPDATE_S).until(lambda d: _image_src(d, ".lab6-panel-1"))
        before_tokens = _token_row(_text(browser, ".lab6-token-counts"))
        before_image = _image_src(browser, ".lab6-panel-1")
        assert before_tokens == [197] + token_counts(LAB_SCHEDULE, fuse=True)
        _screenshot(browser, "explorer-before.png")

        handle = browser.find_element("css selector", ".lab6-rate-4 .noUi-handle")
        browser.execute_script("arguments[0].scrollIntoView({block: 'center'});", handle)
        handle.click()
        moved = time.perf_counter()
        handle.send_keys(Keys.ARROW_DOWN)  # one step of 0.05; each key press sends one value

        WebDriverWait(browser, UPDATE_S, poll_frequency=0.05).until(
            lambda d: _token_row(_text(d, ".lab6-token-counts")) != before_tokens
        )
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "explorer-browser-update.txt").write_text(
            f"slider key press to new token counts in the page: {time.perf_counter() - moved:.2f} s\n"
        )
        WebDriverWait(browser, UPDATE_S).until(lambda d: _image_src(d, ".lab6-panel-1") != before_image)
        readout = float(_text(browser, ".lab6-rate-4 .widget-readout"))
        assert readout in (0.65, 0.75)  # the step direction of a vertical slider's arrow key
        schedule = list(LAB_SCHEDULE)
        schedule[3] = readout
        expected = [197] + token_counts(schedule, fuse=True)
        WebDriverWait(browser, UPDATE_S).until(lambda d: _token_row(_text(d, ".lab6-token-counts")) == expected)
        assert expected[4] == 1 + math.ceil(readout * 196) + 1
        assert _text(browser, ".lab6-message") == ""
        shot = _screenshot(browser, "explorer-after.png")
        assert shot.stat().st_size > 10_000
    except Exception:
        _screenshot(browser, "explorer-failure.png")
        (ARTIFACTS / "jupyterlab.log").write_text(log.read_text(errors="replace"))
        logs = browser.get_log("browser") if hasattr(browser, "get_log") else []
        (ARTIFACTS / "browser-console.json").write_text(json.dumps(logs, indent=1))
        raise
