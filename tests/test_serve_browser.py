"""The dashboard in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

It opens the dashboard of a live cell, sends ``pick.requested`` through the
form generated from the signal's payload type, sees the run appear and finish
live, sees the door's refusal of bad data inline, cancels a second run with its
button and sees the rollback. The screenshot it takes is the one in
docs/control-plane.md (``BBFLOW_SCREENSHOT=docs/images/dashboard.png`` writes it there).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from fleet_helpers import free_port
from run_helpers import arm_table, write_project
from serve_helpers import cut_off, journaled_project, live_cell, served

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    pytest.importorskip("playwright.sync_api")
    return CHROMIUM


def fill_pose(page: object, legend: str, x: str, y: str, z: str) -> None:
    for name, value in (("x", x), ("y", y), ("z", z)):
        page.locator(f'fieldset:has(> legend:text-is("{legend}")) input[name="{name}"]').fill(value)  # type: ignore[attr-defined]


def test_the_dashboard_sends_a_signal_shows_runs_live_and_cancels_one(chromium: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    root = write_project(tmp_path / "cell", arm_table(duration="250ms"))
    with live_cell(root) as cell, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1440, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.goto(cell.url + "/")
            expect(page.locator("#live")).to_have_text("events: live", timeout=10_000)
            expect(page.locator('[data-robot="arm"] .safety')).to_have_text("armed")
            page.select_option("#signal-type", "pick.requested")

            # The door's refusal shows inline: an empty coordinate is none, not a float.
            fill_pose(page, "place", "0", "0.3", "0.1")
            page.locator('fieldset:has(> legend:text-is("pick")) input[name="x"]').fill("")
            page.click("#send-button")
            expect(page.locator("#send-result")).to_contain_text("refused (400)")
            expect(page.locator("#send-result")).to_contain_text("data.pick.x")

            # A good request: its run appears and finishes, live.
            fill_pose(page, "pick", "0.2", "0", "0.1")
            page.click("#send-button")
            expect(page.locator("#send-result")).to_contain_text("accepted")
            expect(page.locator('article.run[data-status="running"]')).to_have_count(1, timeout=10_000)
            expect(page.locator('article.run[data-status="ok"]')).to_have_count(1, timeout=20_000)
            expect(page.locator('[data-agent="Picker"] tr', has_text="done")).to_contain_text("1", timeout=10_000)

            # A second one, cancelled with its button once it has moved: it rolls back.
            page.click("#send-button")
            running = page.locator('article.run[data-status="running"]')
            expect(running.locator(".step.ok", has_text="approach")).to_have_count(1, timeout=20_000)
            running.get_by_role("button", name="Cancel").click()
            failed = page.locator('article.run[data-status="failed"]')
            expect(failed).to_have_count(1, timeout=20_000)
            expect(failed.locator(".rollback")).to_contain_text("approach")
            expect(failed.locator(".step.undone", has_text="approach")).to_have_count(1)
            expect(failed).to_contain_text("cancelled")
            expect(page.locator('[data-agent="Picker"] td', has_text="false")).to_have_count(1, timeout=10_000)

            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("BBFLOW_SCREENSHOT"):
                shutil.copy(shot, os.environ["BBFLOW_SCREENSHOT"])
            assert errors == []
        finally:
            browser.close()


def test_the_dashboard_of_a_killed_cell_says_so_and_draws_the_restarted_one_anew(chromium: str, tmp_path: Path) -> None:
    """kill -9 the cell under an open page: the page said "supervisor up" and showed the robot armed
    and the run running, for good; and once the cell was started again that run stayed "running"
    (with its Cancel button) beside the new process's state. Now it says the cell is unreachable, greys
    out what it shows, and when the cell answers again draws the new process's state."""
    from playwright.sync_api import expect, sync_playwright

    root = write_project(tmp_path / "cell", arm_table(duration="300ms"))
    url = f"http://127.0.0.1:{free_port()}"
    cells: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        with (tmp_path / f"cell{len(cells)}.stderr").open("w") as err:
            cells.append(subprocess.Popen([sys.executable, "-m", "bbflow", "run", str(root), "--serve",
                                           url.removeprefix("http://")],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err))
        deadline = time.monotonic() + 60  # a guard against a hung start, not a measurement
        while not _answers(url + "/healthz"):
            assert cells[-1].poll() is None and time.monotonic() < deadline, (tmp_path / f"cell{len(cells) - 1}.stderr").read_text()
            time.sleep(0.05)

    try:
        start()
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
            try:
                page = browser.new_page(viewport={"width": 1440, "height": 900})
                errors: list[str] = []
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.goto(url + "/")
                expect(page.locator("#live")).to_have_text("events: live", timeout=10_000)
                request = {"type": "pick.requested", "data": {"pick": {"x": 0.2, "y": 0, "z": 0.1},
                                                             "place": {"x": 0, "y": 0.3, "z": 0.1}}}
                httpx.post(url + "/signals", content=json.dumps(request),
                           headers={"content-type": "application/cloudevents+json"}, timeout=10)
                running = page.locator('article.run[data-status="running"]')
                expect(running.locator(".step.ok", has_text="approach")).to_have_count(1, timeout=20_000)

                cells[0].send_signal(signal.SIGKILL)
                cells[0].wait(timeout=30)
                expect(page.locator("#health")).to_have_text("cell unreachable", timeout=10_000)
                expect(page.locator("body.stale")).to_have_count(1)

                start()  # the same project on the same address: it recovers the run the first one left
                expect(page.locator("#live")).to_have_text("events: live", timeout=20_000)
                expect(page.locator("#health")).to_have_text("supervisor up")
                expect(page.locator("body.stale")).to_have_count(0)
                expect(running).to_have_count(0, timeout=10_000)
                assert errors == []
            finally:
                browser.close()
    finally:
        for cell in cells:
            if cell.poll() is None:
                cell.send_signal(signal.SIGINT)
                try:
                    cell.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    cell.kill()
                    cell.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_the_dashboard_shows_a_held_run_until_an_operator_closes_it(chromium: str, tmp_path: Path) -> None:
    """A run held for an operator after a crash was nowhere on the page: only `bbflow runs` knew of it."""
    from playwright.sync_api import expect, sync_playwright

    root = journaled_project(tmp_path / "cell", recovery="hold", duration="200ms")
    run = cut_off(root)
    with served(root) as (_, url), sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=FLAGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(url + "/")
            card = page.locator(f'#held article[data-run="{run}"]')
            expect(card).to_contain_text(f"bbflow runs recover {run} --resolved", timeout=10_000)
            expect(card.locator(".pill")).to_have_text("held")
            closed = subprocess.run([sys.executable, "-m", "bbflow", "runs", "recover", run, "--resolved"], cwd=root,
                                    capture_output=True, text=True, timeout=60)
            assert closed.returncode == 0, closed.stderr
            expect(page.locator("#held-title")).to_be_hidden(timeout=20_000)  # the page reads the state again
            assert errors == []
        finally:
            browser.close()
