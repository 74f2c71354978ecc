"""End to end in a real headless browser (Debian's chromium driven by Playwright): JupyterLab's
launcher starts an "AI Computer Sandbox" notebook, a cell runs, the status-bar meter shows the
sandbox's memory and CPU against its limits, and an OOM kill is told plainly; the "Sandbox
files" panel uploads a CSV that a cell reads, shows a PNG a cell wrote and downloads it, copies
files to and from the host's file browser by dragging, makes a folder, deletes a file, and says
so when the notebook's kernel is no sandbox. Screenshots are kept under test-artifacts/
(jupyterlab-sandbox-files.png is the README's docs/sandbox-files-panel.png)."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from playwright.async_api import Locator, Page, async_playwright
from server_process import JupyterServer

CHROMIUM = "/usr/bin/chromium"
# Nothing but 127.0.0.1: no updates, sync, or first-run traffic.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


async def _run_cell(page: Page, code: str) -> None:
    await page.locator(".jp-Notebook .jp-Cell .cm-content").last.click()
    await page.keyboard.type(code)
    await page.keyboard.press("Shift+Enter")


async def test_jupyterlab_notebook_on_a_sandbox_kernel(jupyter_server: JupyterServer) -> None:
    assert shutil.which(CHROMIUM), f"{CHROMIUM} is missing: apt-get install -y chromium"
    ARTIFACTS.mkdir(exist_ok=True)
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1280, "height": 800})
            # A fresh workspace: the launcher, whatever earlier runs left open.
            await page.goto(
                f"{jupyter_server.url}lab/workspaces/e2e?reset&token={jupyter_server.token}"
            )
            card = page.locator(
                '.jp-LauncherCard[data-category="Notebook"][title="AI Computer Sandbox"]'
            )
            await card.click(timeout=60_000)
            await page.get_by_text("AI Computer Sandbox | Idle").wait_for(timeout=60_000)

            await _run_cell(page, "print('hello from the sandbox', 6 * 7)")
            output = page.locator(".jp-OutputArea-output", has_text="hello from the sandbox 42")
            await output.wait_for(timeout=30_000)
            meter = page.locator(".jp-AiComputerMeter")
            await meter.get_by_text(re.compile(r"Mem \d+ MB / 512 MB · CPU [\d.]+ / 1")).wait_for(
                timeout=30_000
            )
            await page.screenshot(path=ARTIFACTS / "jupyterlab-sandbox-meter.png")

            # Over the memory limit: the kernel is killed and restarted, and the user is told.
            await _run_cell(page, "block = b'x' * (700 * 1024**2)")
            notice = page.get_by_text("Out of memory: the sandbox's kernel went over its 512 MB")
            await notice.first.wait_for(timeout=60_000)
            # JupyterLab's own dialog says only that the kernel "appears to have died".
            await page.locator(".jp-Dialog .jp-mod-accept").click(timeout=30_000)
            recovered = re.compile(r"Out of memory: restarted · Mem \d+ MB / 512 MB")
            await meter.get_by_text(recovered).wait_for(timeout=30_000)
            await page.screenshot(path=ARTIFACTS / "jupyterlab-sandbox-oom.png")
        finally:
            await browser.close()
    print(f"\nJupyterLab end-to-end: {time.monotonic() - started:.1f} s")


async def _drag(page: Page, source: Locator, target: Locator) -> None:
    """A Lumino drag: press, move past its threshold in steps, release over the target."""
    start, end = await source.bounding_box(), await target.bounding_box()
    assert start is not None and end is not None
    await page.mouse.move(start["x"] + 20, start["y"] + start["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(start["x"] + 40, start["y"] + start["height"] / 2 + 10, steps=5)
    await page.mouse.move(end["x"] + end["width"] / 2, end["y"] + end["height"] / 2, steps=10)
    await page.mouse.up()


async def test_sandbox_files_panel(jupyter_server: JupyterServer, tmp_path: Path) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    root = jupyter_server.root_dir
    (root / "from-host.txt").write_text("dragged in from the host\n")
    csv = tmp_path / "data.csv"
    csv.write_text("x,y\n1,2\n2,4\n3,9\n")
    started = time.monotonic()
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            page = await browser.new_page(viewport={"width": 1400, "height": 860})
            await page.goto(
                f"{jupyter_server.url}lab/workspaces/files-e2e?reset&token={jupyter_server.token}"
            )
            card = page.locator(
                '.jp-LauncherCard[data-category="Notebook"][title="AI Computer Sandbox"]'
            )
            await card.click(timeout=60_000)
            await page.get_by_text("AI Computer Sandbox | Idle").wait_for(timeout=60_000)
            await page.locator('li[data-id="ai-computer-sandbox-files"]').click()
            panel = page.locator(".jp-AiComputerFiles")
            await panel.get_by_text("/workspace").first.wait_for(timeout=30_000)

            # Upload through the panel's button, then read the file from a cell.
            await panel.locator(".jp-AiComputerFiles-input").set_input_files(csv)
            await panel.locator('tr[data-name="data.csv"]').wait_for(timeout=30_000)
            await _run_cell(
                page, "import pandas as pd\ndf = pd.read_csv('data.csv')\nprint(df.shape)"
            )
            await page.locator(".jp-OutputArea-output", has_text="(3, 2)").wait_for(timeout=30_000)

            # A PNG written by a cell appears in the panel (refreshed after the cell) ...
            plot = (
                "import matplotlib.pyplot as plt\nplt.plot(df.x, df.y)\n"
                "plt.savefig('plot.png')\nprint('saved')"
            )
            await _run_cell(page, plot)
            await page.locator(".jp-OutputArea-output", has_text="saved").wait_for(timeout=30_000)
            row = panel.locator('tr[data-name="plot.png"]')
            await row.wait_for(timeout=30_000)
            # ... and downloads.
            await row.click()
            async with page.expect_download(timeout=30_000) as download_info:
                await panel.get_by_role("button", name="Download").click()
            download = await download_info.value
            saved = ARTIFACTS / "sandbox-files-plot.png"
            await download.save_as(saved)
            assert saved.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
            assert download.suggested_filename == "plot.png"

            # The host's file browser and the panel, side by side: drag a file each way.
            host_item = page.locator(
                '.jp-DirListing-item[data-file-type="text"]', has_text="from-host.txt"
            )
            await _drag(page, host_item, panel.locator(".jp-AiComputerFiles-body"))
            await panel.locator('tr[data-name="from-host.txt"]').wait_for(timeout=30_000)
            await _drag(page, row, page.locator(".jp-DirListing-content"))
            await page.locator(".jp-DirListing-item", has_text="plot.png").wait_for(timeout=30_000)
            assert (root / "plot.png").read_bytes() == saved.read_bytes()
            # A new folder, and a file deleted (each asks first).
            await panel.get_by_role("button", name="New folder").click()
            await page.locator(".jp-Dialog input").fill("results")
            await page.locator(".jp-Dialog .jp-mod-accept").click()
            await panel.locator('tr[data-name="results"][data-type="directory"]').wait_for()
            await panel.locator('tr[data-name="from-host.txt"]').click()
            await panel.get_by_role("button", name="Delete").click()
            await page.locator(".jp-Dialog .jp-mod-accept").click()
            await panel.locator('tr[data-name="from-host.txt"]').wait_for(state="detached")
            await panel.locator(".jp-AiComputerFiles-disk", has_text="used").wait_for()
            await page.locator(".jp-AiComputerMeter", has_text="Disk").wait_for(timeout=30_000)

            # A notebook on a kernel that is no sandbox: the panel says so.
            await panel.locator('tr[data-name="plot.png"]').click()  # selected in the picture
            await page.screenshot(path=ARTIFACTS / "jupyterlab-sandbox-files.png")
            await page.locator(".lm-DockPanel-tabBar .lm-TabBar-addButton").first.click()
            local = page.locator(
                '.jp-LauncherCard[data-category="Notebook"][title="Python 3 (ipykernel)"]'
            )
            await local.click(timeout=30_000)
            await panel.get_by_text("is not an AI Computer Sandbox").wait_for(timeout=60_000)
        finally:
            await browser.close()
    print(f"\nJupyterLab sandbox files panel end-to-end: {time.monotonic() - started:.1f} s")
