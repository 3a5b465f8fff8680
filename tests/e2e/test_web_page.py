"""bread's web page in a real browser (Debian's headless Chromium, driven by Selenium through chromedriver)
against the running system, with the browser's network to anywhere but this machine cut: a customer watches
an order reach Confirmed without reloading and cancels one, a baker confirms and rejects (and, with more tickets
waiting than the page shows, sees the next come into view), pay stopped shows its 503, each role sees its own view
with authentication on, and /docs renders offline.

The screenshots in the README are taken here: `make screenshots` runs this module with BREAD_SCREENSHOTS=docs.
"""
from __future__ import annotations

import asyncio
import os
import random
import re
from pathlib import Path
from typing import Any, Callable

import pytest
from aiokafka import AIOKafkaProducer
from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from agents.catalog import catalog
from agents.deadletters import dead_letter
from agents.events import encode, key_of, make_event
from tests.e2e.conftest import (
    CAKE,
    SAGA_DEADLINE_S,
    System,
    confirm,
    eventually,
    mypage,
    mypage_row,
    place,
    until_status,
)

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
WAIT_S = 30


class Browser:
    """One headless Chromium. Selenium blocks, so the async tests call it through `run` (a thread)."""

    def __init__(self) -> None:
        options = webdriver.ChromeOptions()
        options.binary_location = str(CHROMIUM)
        for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-quic", "--no-first-run", "--disable-background-networking",
                     "--disable-component-update", "--disable-sync", "--window-size=1100,800",
                     # No network but this machine's: names resolve to nothing, and anything not on loopback
                     # goes to a proxy where nothing listens. A page that needs a CDN shows it here.
                     "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
                     "--proxy-server=http://127.0.0.1:9"):
            options.add_argument(flag)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for failures
        self.driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)

    async def run(self, call: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.to_thread(call, *args)

    def open(self, url: str) -> None:
        self.driver.get(url)

    def wait(self, condition: Callable[[webdriver.Chrome], Any], what: str, timeout: float = WAIT_S) -> Any:
        try:
            return WebDriverWait(self.driver, timeout, poll_frequency=0.1).until(condition)
        except TimeoutException:
            console = "\n".join(entry["message"] for entry in self.driver.get_log("browser"))
            pytest.fail(f"{what}: not seen within {timeout}s; the page shows:\n{self.text('body')}\n"
                        f"its console:\n{console}")

    def find(self, css: str) -> WebElement | None:
        """The element shown for `css`, or None. The page draws a card anew when its row changes, so an element
        found a moment ago may be gone: that is None too, and waits look again."""
        try:
            found = self.driver.find_elements(By.CSS_SELECTOR, css)
            return found[0] if found and found[0].is_displayed() else None
        except StaleElementReferenceException:
            return None

    def shown(self, css: str, what: str | None = None) -> WebElement:
        return self.wait(lambda _: self.find(css), what or css)

    def gone(self, css: str, what: str) -> None:
        self.wait(lambda _: self.find(css) is None, what)

    def text(self, css: str) -> str:
        return self.js(f"return document.querySelector({css!r})?.innerText ?? ''")

    def click(self, css: str) -> None:
        self.wait(lambda _: self._acted_on(css, lambda element: element.click()), f"a click on {css}")

    def type(self, css: str, text: str) -> None:
        def typed(element: WebElement) -> None:
            element.clear()
            element.send_keys(text)
        self.wait(lambda _: self._acted_on(css, typed), f"typing into {css}")

    def keys(self, text: str) -> None:
        """Types on where the keyboard is now, as a person goes on typing."""
        ActionChains(self.driver).send_keys(text).perform()

    def focused(self, css: str) -> bool:
        return self.js(f"return document.activeElement === document.querySelector({css!r})")

    def _acted_on(self, css: str, act: Callable[[WebElement], None]) -> bool:
        element = self.find(css)
        if element is None:
            return False
        try:
            act(element)
        except StaleElementReferenceException:
            return False
        return True

    def js(self, script: str) -> Any:
        return self.driver.execute_script(script)

    def screenshot(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        assert self.driver.save_screenshot(str(path)), path
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    def quit(self) -> None:
        self.driver.quit()


@pytest.fixture(scope="module")
def browser() -> Browser:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail("the web page's tests need Debian's Chromium: apt-get install chromium chromium-driver "
                    "(.ci/run installs them)")
    started = Browser()
    yield started
    started.quit()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Where the screenshots go: the README's folder with `make screenshots`, else the test's own."""
    return Path(os.environ.get("BREAD_SCREENSHOTS") or tmp_path)


async def open_page(browser: Browser, url: str) -> None:
    await browser.run(browser.open, f"{url}/")
    await browser.run(browser.shown, "#live[data-live='on']", "the page live")
    await browser.run(browser.js, "window.notReloaded = true")


async def order_in_page(browser: Browser, item: str = "bread", qty: int = 2) -> int:
    await browser.run(browser.click, f"#item-{item}")
    await browser.run(browser.type, "#qty", str(qty))
    await browser.run(browser.click, "#place")
    placed = await browser.run(browser.wait, lambda _: re.search(r"#(\d+)", browser.text("#placed")),
                               "the order placed")
    return int(placed.group(1))


async def story(browser: Browser, order_id: int) -> list[str]:
    """The events an order's card lists, in its order."""
    return await browser.run(browser.js, f"return [...document.querySelectorAll(\"{card(order_id)} .history li\")]"
                                         ".map(step => step.dataset.event)")


def card(order_id: int, status: str | None = None) -> str:
    return f"#orders [data-order-id='{order_id}']" + (f" .status[data-status='{status}']" if status else "")


async def test_a_customer_watches_an_order_reach_confirmed_without_reloading(system: System, browser: Browser,
                                                                            screenshots: Path):
    await open_page(browser, system.url("gateway"))
    order_id = await order_in_page(browser, "bread", 2)
    await browser.run(browser.shown, card(order_id, "Confirming"), "the order waiting for the bakery")
    status, _, _ = await system.request("POST", f"{system.url('gateway')}/bakeries",
                                        json={"orderId": order_id, "status": "Confirmed"})
    assert status == 200
    await browser.run(browser.shown, card(order_id, "Confirmed"), "the order confirmed")
    assert await browser.run(browser.js, "return window.notReloaded") is True  # pushed, not reloaded
    assert (await story(browser, order_id))[-1] == "BakeryConfirmed"
    assert "2 × bread" in await browser.run(browser.text, card(order_id))
    assert await browser.run(browser.find, f"{card(order_id)} button.cancel") is None  # too late to cancel
    await browser.run(browser.screenshot, screenshots / "screenshots" / "customer.png")


async def test_a_customer_cancels_an_order_on_its_way(system: System, browser: Browser):
    await open_page(browser, system.url("gateway"))
    order_id = await order_in_page(browser, "cake", 1)
    await browser.run(browser.shown, card(order_id, "Confirming"), "the order waiting for the bakery")
    await browser.run(browser.click, f"{card(order_id)} button.cancel")
    await browser.run(browser.shown, card(order_id, "Cancelled"), "the order cancelled")
    await until_status(system, order_id, "Cancelled")
    steps = await story(browser, order_id)
    assert "OrderCancelled" in steps and "PayCanceled" in steps  # the saga's compensation, told


async def test_a_baker_decides_tickets_on_the_page(system: System, browser: Browser,
                                                                            screenshots: Path):
    await open_page(browser, system.url("gateway"))
    await browser.run(browser.click, "#views button[data-view='baker']")
    confirmed, rejected = (await place(system, via="gateway"))["id"], (await place(system, via="gateway"))["id"]
    for order_id in (confirmed, rejected):
        await browser.run(browser.shown, f"[data-ticket='{order_id}']", f"order {order_id}'s ticket arriving")
        await eventually(lambda order_id=order_id: _says(browser, f"[data-ticket='{order_id}'] .what", "1 × cake"),
                         what=f"order {order_id}'s ticket saying what to bake")
    await browser.run(browser.screenshot, screenshots / "screenshots" / "baker.png")
    await browser.run(browser.click, f"[data-ticket='{confirmed}'] button.confirm")
    await browser.run(browser.gone, f"[data-ticket='{confirmed}']", "the confirmed ticket leaving the list")
    reason = f"[data-ticket='{rejected}'] input.reason-text"
    await browser.run(browser.type, reason, "out of")
    arriving = (await place(system, via="gateway"))["id"]  # tickets come and go while the baker types
    await browser.run(browser.shown, f"[data-ticket='{arriving}']", "a ticket arriving while the baker types")
    assert await browser.run(browser.focused, reason), "the new ticket took the keyboard from the reason"
    await browser.run(browser.keys, " flour")
    await browser.run(browser.click, f"[data-ticket='{rejected}'] button.reject")
    await browser.run(browser.gone, f"[data-ticket='{rejected}']", "the rejected ticket leaving the list")
    await until_status(system, confirmed, "Confirmed")
    await until_status(system, rejected, "Cancelled")
    row = await mypage_row(system, rejected, "Cancelled")
    assert "out of flour" in row["reason"]
    assert await browser.run(browser.js, "return window.notReloaded") is True


TICKETS_SHOWN = 200  # app.js shows the baker this many tickets, the longest waiting


async def waiting_tickets(system: System) -> int:
    _, waiting, _ = await system.request("GET", f"{system.url('gateway')}/bakeries", params={"size": "1"})
    return waiting["total"]


async def test_a_baker_with_more_tickets_than_the_page_shows_sees_the_next_once_one_is_decided(
        system: System, browser: Browser):
    # Tickets left by earlier tests leave by the saga's deadline; this test counts on its own being the oldest.
    await eventually(lambda: _none_waiting(system), timeout=SAGA_DEADLINE_S * 4, what="no ticket waiting")
    shown = [order["id"] for order in await asyncio.gather(*(place(system, via="gateway")
                                                             for _ in range(TICKETS_SHOWN)))]
    await eventually(lambda: _waiting(system, TICKETS_SHOWN), what="every ticket of the first ones open")
    beyond = (await place(system, via="gateway"))["id"]
    await eventually(lambda: _waiting(system, TICKETS_SHOWN + 1), what="the ticket beyond the page open")
    await open_page(browser, system.url("gateway"))
    await browser.run(browser.click, "#views button[data-view='baker']")
    await browser.run(browser.wait, lambda _: browser.js("return document.querySelectorAll('#tickets li').length")
                      == TICKETS_SHOWN, "the page full of tickets")
    on_page = await browser.run(browser.js, "return [...document.querySelectorAll('#tickets li')]"
                                            ".map((li) => Number(li.dataset.ticket))")
    assert sorted(on_page) == sorted(shown) and beyond not in on_page  # the longest waiting, not the newest
    oldest = on_page[0]
    await browser.run(browser.click, f"[data-ticket='{oldest}'] button.confirm")
    await browser.run(browser.shown, f"[data-ticket='{beyond}']", "the ticket beyond the page coming into view")
    await browser.run(browser.gone, f"[data-ticket='{oldest}']", "the confirmed ticket leaving the list")
    await until_status(system, oldest, "Confirmed")


async def _none_waiting(system: System) -> bool:
    return await waiting_tickets(system) == 0


async def _waiting(system: System, count: int) -> bool:
    return await waiting_tickets(system) >= count


async def open_operator_view(browser: Browser, system: System) -> None:
    await open_page(browser, system.url("gateway"))
    await browser.run(browser.click, "#views button[data-view='operator']")


async def test_an_operator_sees_the_oldest_sagas_as_get_sagas_lists_them(system: System, browser: Browser,
                                                                         screenshots: Path):
    waiting = (await place(system, via="gateway"))["id"]
    await until_status(system, waiting, "Confirming")
    await open_operator_view(browser, system)
    await browser.run(browser.js, "document.querySelector('#saga-status').value = 'Confirming'")
    await browser.run(browser.click, "#saga-filter button[type='submit']")
    _, listing, _ = await system.request("GET", f"{system.url('gateway')}/sagas",
                                         params={"status": "Confirming", "size": "1000"})
    assert waiting in {saga["orderId"] for saga in listing["unfinished"]}
    oldest = listing["unfinished"][0]
    first = f"#sagas li:first-child[data-saga='{oldest['orderId']}']"
    await browser.run(browser.shown, first, "the oldest saga waiting for the bakery")
    assert await story_of_saga(browser, oldest["orderId"]) == [step["event"] for step in oldest["story"]]
    assert int(await browser.run(browser.text, "#counts tr:has([data-status='Confirming']) td.price")) >= 1
    await browser.run(browser.screenshot, screenshots / "screenshots" / "operator.png")


async def test_an_admin_refunds_a_confirmed_order_with_a_reason_on_the_page(system: System, browser: Browser):
    confirmed = (await place(system, via="gateway"))["id"]
    await until_status(system, confirmed, "Confirming")
    await confirm(system, confirmed)
    await until_status(system, confirmed, "Confirmed")
    await open_operator_view(browser, system)
    await browser.run(browser.type, "#refund-order", str(confirmed))
    await browser.run(browser.type, "#refund-reason", "stale bread")
    await browser.run(browser.click, "#refund-form button[type='submit']")
    await eventually(lambda: _says(browser, "#refunded", f"Order #{confirmed} refunded 25,000: stale bread."),
                     what="the refund taken")
    await until_status(system, confirmed, "Refunded")


async def test_an_operator_replays_a_dead_letter_on_the_page(system: System, browser: Browser):
    order_id = random.randint(40_000_001, 50_000_000)
    placed = make_event("OrderPlaced", correlation_id="page-replay", orderId=order_id, item="cake", qty=1, price=1)
    letter = dead_letter("mypage", catalog().topic_of_event("OrderPlaced").name, 0, 0, key_of(placed),
                         encode(placed), RuntimeError("a bug since fixed"))
    offset = await produce_one(system, catalog().topic_of_event("DeadLetter").name, encode(letter))
    await open_operator_view(browser, system)
    await browser.run(browser.shown, f"[data-letter='{offset}']", "the dead letter listed")
    await browser.run(browser.click, f"[data-letter='{offset}'] button.replay")
    await browser.run(browser.shown, f"[data-letter='{offset}'] .replayed", "the letter shown replayed")
    await eventually(lambda: _is_on_mypage(system, order_id), what="the replayed order on Mypage")


async def produce_one(system: System, topic: str, value: bytes) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=system.broker.bootstrap, acks="all")
    await producer.start()
    try:
        return (await producer.send_and_wait(topic, value=value)).offset
    finally:
        await producer.stop()


async def _is_on_mypage(system: System, order_id: int) -> bool:
    return await mypage(system, order_id) is not None


async def story_of_saga(browser: Browser, order_id: int) -> list[str]:
    return await browser.run(browser.js, f"return [...document.querySelectorAll(\"[data-saga='{order_id}'] "
                                         f".history li\")].map(step => step.dataset.event)")


async def _says(browser: Browser, css: str, text: str) -> bool:
    return await browser.run(browser.text, css) == text


async def test_with_pay_stopped_the_page_says_when_to_retry(system: System, browser: Browser):
    await open_page(browser, system.url("gateway"))
    system.stop("pay")
    try:
        await order_in_page_refused(browser)
        problem = await browser.run(browser.text, "#problem")
        assert problem.startswith("The order was not taken: 503") and "pay" in problem
        assert re.search(r"Try again in \d+ s", problem), problem
        assert '"error"' in await browser.run(browser.text, "#problem pre")  # the JSON reason, as it came
    finally:
        system.start("pay")


async def order_in_page_refused(browser: Browser) -> None:
    await browser.run(browser.click, "#item-cake")
    await browser.run(browser.click, "#place")
    await browser.run(browser.shown, "#problem[data-status='503']", "the refusal shown")


async def test_with_authentication_on_each_role_sees_its_own_view(
        system: System, browser: Browser, extra, tmp_path):
    tokens = tmp_path / "tokens"
    alice, bob, bea = (system.token(tokens, name, role) for name, role in
                       (("alice", "customer"), ("bob", "customer"), ("bea", "baker")))
    gateway = system.url(await extra("gateway", "gateway-page", GATEWAY_AUTH="on", GATEWAY_TOKENS_FILE=str(tokens)))
    await browser.run(browser.open, f"{gateway}/")
    await browser.run(browser.shown, "#problem[data-status='401']", "the page asking for a token")
    await sign_in(browser, alice)
    for view in ("baker", "operator"):
        assert await browser.run(browser.find, f"#views button[data-view='{view}']") is None
    assert "alice (customer)" in await browser.run(browser.text, "#who")
    bobs = await place_as(system, gateway, bob)
    alices = await order_in_page(browser, "croissant", 3)
    await browser.run(browser.shown, card(alices, "Confirming"), "Alice's order")
    assert await browser.run(browser.find, card(bobs)) is None  # not hers: not streamed, not listed
    await sign_in(browser, bea)
    for view in ("customer", "operator"):
        assert await browser.run(browser.find, f"#views button[data-view='{view}']") is None
    await browser.run(browser.shown, f"[data-ticket='{alices}']", "Alice's ticket for the baker")


async def sign_in(browser: Browser, token: str) -> None:
    await browser.run(browser.type, "#token", token)
    await browser.run(browser.click, "#sign-in button")
    await browser.run(browser.shown, "#live[data-live='on']", "the page live after signing in")


async def place_as(system: System, gateway: str, token: str) -> int:
    status, order, _ = await system.request("POST", f"{gateway}/orders", json=CAKE,
                                            headers={"Authorization": f"Bearer {token}"})
    assert status == 201, order
    return order["id"]


async def test_the_api_docs_render_with_no_network_but_the_gateway(system: System, browser: Browser):
    gateway = system.url("gateway")
    await browser.run(browser.open, f"{gateway}/docs")
    title = await browser.run(browser.shown, ".swagger-ui .info .title", "Swagger UI's title")
    assert "bread" in title.text
    await browser.run(browser.shown, ".opblock-tag-section", "the operations")
    loaded = await browser.run(browser.js, "return performance.getEntriesByType('resource').map(e => e.name)")
    assert loaded and all(name.startswith(gateway) for name in loaded), loaded

