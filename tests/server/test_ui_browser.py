"""The web UI in a real browser (Debian's chromium, driven by Playwright) against a real server.

The server runs in a thread on a free loopback port over a store with one key; each test gets
a fresh browser context (so a fresh sessionStorage: it signs in first).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
DATA = Path(__file__).resolve().parents[1] / "data" / "eval"

pytestmark = pytest.mark.skipif(
    not CHROMIUM.exists(),
    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install chromium)",
)

FREEZE = "Alice moved the deploy freeze to Friday after the outage review."


@dataclass(frozen=True)
class Server:
    url: str
    key: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    import uvicorn

    from engramdb.server import create_app
    from engramdb.service import MemoryService

    folder = tmp_path_factory.mktemp("ui")
    service = MemoryService.open(folder / "t.db", embed={"model": "hash"})
    key = service.keys.add("tester", ["notes"]).key
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(service), log_level="warning", ws="none", lifespan="on")
    runner = uvicorn.Server(config)
    thread = threading.Thread(target=runner.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not runner.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield Server(url=f"http://127.0.0.1:{port}/", key=key)
    finally:
        runner.should_exit = True
        thread.join(15)
        service.close()
        sock.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    args = ["--no-sandbox"] if os.geteuid() == 0 else []
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    context.set_default_timeout(10_000)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        yield page
    finally:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def sign_in(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_label("API key").fill(server.key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#who-text")).to_have_text("tester")
    expect(page.get_by_role("navigation", name="Views")).to_be_visible()


def recall(page: Any, query: str) -> None:
    page.get_by_role("link", name="Recall", exact=True).click()
    page.get_by_label("Query").fill(query)
    page.get_by_role("button", name="Recall", exact=True).click()


def test_add_recall_forget_upload_and_report(page: Any, server: Server, tmp_path: Path) -> None:
    from click.testing import CliRunner
    from playwright.sync_api import expect

    from engramdb.cli import cli

    sign_in(page, server)

    # add: the decision for the new text
    page.get_by_role("link", name="Add", exact=True).click()
    page.get_by_label("Text").fill(FREEZE)
    page.get_by_label("Source").fill("slack")
    page.get_by_label("Metadata (JSON object)").fill('{"team": "infra"}')
    page.get_by_role("button", name="Add", exact=True).click()
    result = page.locator("#add-result")
    expect(result).to_contain_text("In namespace notes: 1 added")
    expect(result.locator(".badge")).to_have_text("new")

    # recall: the hit with its relevance, citation and per-channel ranks
    recall(page, "when is the deploy freeze")
    hit = page.locator(".hit").first
    expect(hit).to_contain_text(FREEZE)
    expect(hit.locator(".cite")).to_contain_text("source slack")
    expect(hit.locator("table.why")).to_contain_text("lexical")
    expect(hit).to_contain_text("relevance")

    # the memory page: text, sightings, metadata, neighbours
    hit.get_by_role("link").click()
    expect(page.get_by_role("heading", name="Memory #", exact=False)).to_be_visible()
    expect(page.locator(".memtext")).to_have_text(FREEZE)
    body = page.locator("#memory-body")
    expect(body.locator("table")).to_contain_text("origin")
    expect(body.locator("dl.meta")).to_contain_text("infra")
    expect(body.get_by_role("heading", name="Graph neighbours")).to_be_visible()
    memory_url = page.url

    # forget (confirmed): back on recall, the same query no longer finds it
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Forget").click()
    expect(page.locator("#notice")).to_contain_text("forgotten")
    expect(page.get_by_role("heading", name="Recall")).to_be_visible()
    expect(page.locator("#recall-results [role=status]")).to_be_visible()
    expect(page.locator("#recall-results")).not_to_contain_text(FREEZE)
    page.goto(memory_url)
    expect(page.locator("#view-memory [data-msg]")).to_contain_text("no memory with id")

    # upload: the job is polled until done, then its memories are recalled
    notes = tmp_path / "notes.md"
    notes.write_text(
        "# Release notes\n\nThe blue heron release ships the new ingest queue.\n\n"
        "Rollback drills happen every second Tuesday.\n",
        encoding="utf-8",
    )
    page.get_by_role("link", name="Upload", exact=True).click()
    page.locator("#upload-files").set_input_files(str(notes))
    page.get_by_role("button", name="Upload and ingest").click()
    job = page.locator("#job-panel")
    expect(job.locator("[data-state]")).to_have_text("done", timeout=20_000)
    expect(job.locator("table")).to_contain_text("notes.md")
    expect(page.locator("#jobs-list table")).to_contain_text("done")
    recall(page, "blue heron release")
    expect(page.locator(".hit").first).to_contain_text("blue heron")

    # the eval report viewer: a report written by `engram eval`
    report = tmp_path / "report.json"
    ran = CliRunner().invoke(
        cli,
        ["eval", str(DATA / "tiny_beir"), "--embedder", "hash", "--no-progress"]
        + ["--channels", "lexical,dense,hybrid", "--out", str(report)],
    )
    assert ran.exit_code == 0, ran.output
    page.get_by_role("link", name="Eval report").click()
    page.get_by_label("report.json", exact=False).set_input_files(str(report))
    metrics = page.locator("table.metrics")
    expect(metrics.locator("thead")).to_contain_text("lexical")
    expect(metrics.locator("thead")).to_contain_text("hybrid")
    expect(metrics.locator("tbody")).to_contain_text("ndcg@10")
    expect(page.locator("#report-body svg.chart").first).to_be_visible()
    expect(page.locator("#report-body figcaption")).to_contain_text(["ndcg@10 per channel"])


def test_memory_text_is_shown_as_text_never_as_markup(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    sign_in(page, server)
    hostile = '<img src=x onerror="window.__pwned = 1"><b>bold claim</b> about zebra stripes'
    page.get_by_role("link", name="Add", exact=True).click()
    page.get_by_label("Text").fill(hostile)
    page.get_by_role("button", name="Add", exact=True).click()
    expect(page.locator("#add-result .badge")).to_have_text("new")
    recall(page, "zebra stripes")
    hit = page.locator(".hit").first
    expect(hit.locator(".hit-text")).to_have_text(hostile)
    assert page.locator(".hits img, .hits b").count() == 0
    assert page.evaluate("window.__pwned") is None


def test_errors_are_readable_messages(page: Any, server: Server) -> None:
    from playwright.sync_api import expect

    page.goto(server.url)
    page.get_by_label("API key").fill("not-a-key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#view-login [data-msg]")).to_have_text("That key was not accepted.")

    sign_in(page, server)
    page.get_by_label("Query").fill("anything")
    page.get_by_text("Filters and options").click()
    where = page.get_by_label("Where (JSON filter on metadata)")
    where.fill("{not json")
    page.get_by_role("button", name="Recall", exact=True).click()
    message = page.locator("#view-recall [data-msg]")
    expect(message).to_contain_text("The where filter is not valid JSON")
    where.fill('{"team": {"$near": 3}}')
    page.get_by_role("button", name="Recall", exact=True).click()
    expect(message).to_have_attribute("role", "alert")
    expect(message).to_contain_text("$near")
    assert not message.inner_text().lstrip().startswith("{")

    # a key refused mid-session (revoked) brings the sign-in back
    page.evaluate("sessionStorage.setItem('engramdb.key', 'revoked')")
    page.get_by_role("button", name="Recall", exact=True).click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.locator("#view-login [data-msg]")).to_contain_text("no longer accepted")
    expect(page.get_by_role("navigation", name="Views")).to_be_hidden()

    sign_in(page, server)
    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0
