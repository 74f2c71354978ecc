"""End to end in a real headless browser (Debian's chromium driven by Playwright): JupyterLab's
launcher starts an "AI Computer Sandbox" notebook, a cell runs, the status-bar meter shows the
sandbox's memory and CPU against its limits, and an OOM kill is told plainly. Screenshots are
kept under test-artifacts/."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

from playwright.async_api import Page, async_playwright
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
