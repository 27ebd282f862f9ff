"""Real-browser test support: the app served by uvicorn in a thread on a free port, and
Debian's Chromium driven by Playwright (never a browser Playwright downloads itself).

Browser tests carry the `browser` marker. Without /usr/bin/chromium or the playwright
package they are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import importlib.util
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path(os.environ.get("SLATECRM_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
# Every browser wait is on a condition (a page loaded, a text shown); this bound only turns a
# page that never gets there into a failure. It is far above what a busy machine needs and
# is never a timing assertion: a passing test waits no longer for it.
HUNG_MS = 120_000


def browser_problem() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (make install)"
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (make install runs apt-get install chromium)"
    return None


def require_browser() -> None:
    problem = browser_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem + " (CI=true: browser tests must run)")
        pytest.skip(problem)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


#: The app each running test server serves, by its base URL (for `sign_in`).
SERVED: dict[str, Any] = {}


class ServerThread:
    """uvicorn serving `app` on 127.0.0.1 in a background thread."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.app = app
        self.port = free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + HUNG_MS / 1000  # a failure detector, see HUNG_MS
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.05)
        SERVED[self.url] = self.app
        return self

    def __exit__(self, *exc: object) -> None:
        SERVED.pop(self.url, None)
        self.server.should_exit = True
        self.thread.join(timeout=HUNG_MS / 1000)


@dataclass
class Watched:
    """What a page did that a user would notice as broken: console errors, uncaught
    exceptions, dialogs (an XSS payload that ran)."""

    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)


def watch(page: Any) -> Watched:
    seen = Watched()
    page.on("console", lambda m: seen.console_errors.append(f"{m.type}: {m.text}") if m.type == "error"
            else None)
    page.on("pageerror", lambda e: seen.console_errors.append(f"uncaught: {e}"))

    def dialog(d: Any) -> None:
        seen.dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    return seen


def launch() -> Iterator[Any]:
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=HUNG_MS)  # expect() retries until its condition holds
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(context: Any, url: str, email: str = "", *, roles: tuple[str, ...] = ("administrator",)) -> None:
    """Sign a Playwright browser context in to the test server at `url`: the session and
    CSRF cookies a login would leave (tests/defaults.py `session_for`; the login page itself
    has a test of its own, tests/test_browser_login.py)."""
    from .defaults import ADMIN_EMAIL, session_for

    values = session_for(SERVED[url], email or ADMIN_EMAIL, roles=roles)
    context.add_cookies([{"name": name, "value": value, "url": url}
                         for name, value in values.items() if name != "x-csrftoken"])


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def serve_pack(url: str, pack: Path) -> Iterator[str]:
    """A server over the database at `url` with `pack` installed: yields its base URL (for a
    module-scoped fixture)."""
    from slatecrm.platform.storage.engine import create_engine

    from .defaults import field_types, make_app
    from .packs import install

    engine = create_engine(url)
    install(engine, field_types(), pack)
    engine.dispose()
    app = make_app(url)
    with ServerThread(app) as server:
        yield server.url
    app.state.engine.dispose()


def serve_pack_on(database: str, root: Path, name: str, entities: dict[str, Any]) -> Iterator[str]:
    """A server with a pack `name` 1.0.0 of `entities` installed, on a new SQLite file under
    `root` or (`database` "postgresql") a new PostgreSQL database: a module fixture
    parametrised over both databases yields from it."""
    from . import conftest
    from .packs import write_pack

    pack = write_pack(root, name, "1.0.0", entities)
    if database == "sqlite":
        yield from serve_pack(f"sqlite:///{root / 'ui.db'}", pack)
        return
    for url in conftest._postgres_database():
        yield from serve_pack(url, pack)


DOCS_IMAGES = Path(__file__).resolve().parent.parent / "docs" / "images"


def docs_picture(page: Any, name: str) -> None:
    """The docs' screenshot `docs/images/<name>.png` of this state, when asked for
    (SLATECRM_SCREENSHOTS=1; the viewport only)."""
    if os.environ.get("SLATECRM_SCREENSHOTS") == "1":
        DOCS_IMAGES.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(DOCS_IMAGES / f"{name}.png"))


def drag(page: Any, item: Any, target: Any, *, right: float | None = 40, down: float = 20) -> None:
    """Drag `item` with real mouse moves, as a person would (Sortable's fallback follows them),
    to `right`, `down` pixels into `target`; `right=None` drags straight up or down (a list)."""
    box = item.bounding_box()
    goal = target.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    steps = 12
    for i in range(1, steps + 1):
        page.mouse.move(x if right is None else box["x"] + (goal["x"] + right - box["x"]) * i / steps,
                        box["y"] + (goal["y"] + down - box["y"]) * i / steps)
    page.mouse.up()
