"""The live dashboard in a real browser (Debian's Chromium driven by Playwright) at
1366 px: events published while the page is open are delivered by a real qcluster to a
real receiver, and the page's figures change without a reload."""


from django.db import transaction

from events.services import publish
from tests.e2e.conftest import BROWSER_TEST, ROOT, wait_until
from tests.factories import PartnerFactory, make_endpoint
from tests.receiver import Response

pytestmark = BROWSER_TEST
WIDTH = 1366
SCREENSHOT = ROOT / "var" / "screenshots" / "dashboard-live.png"


def number(page, selector: str) -> float:
    text = page.inner_text(selector).replace(",", "").strip()
    return float(text) if text not in ("", "–") else 0.0


def test_dashboard_figures_change_live_while_events_are_delivered(
    live_server, page, event_types, receiver, start_cluster, admin_user
):
    partner = PartnerFactory(name="Acme Shop")
    make_endpoint(partner, name="Acme orders", url=receiver.url_for("/orders"))
    broken = make_endpoint(partner, name="Acme warehouse", url=receiver.url_for("/warehouse"))
    receiver.respond_with(
        lambda r: Response(503, b"down") if r.path == "/warehouse" else Response(200, b"ok")
    )
    start_cluster()

    page = page
    page.goto(f"{live_server.url}/admin/")
    page.fill("#id_username", admin_user.username)
    page.fill("#id_password", "password")  # pytest-django's admin_user
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    # The empty state before anything happened: charts say so instead of drawing nothing.
    page.wait_for_selector("#chart-throughput svg text.empty")
    assert "Events published" in page.inner_text("#chart-throughput .wh-legend")
    page.evaluate("window.__sameDocument = true")
    assert number(page, "#live-events-hour") == 0

    for n in range(6):
        with transaction.atomic():
            publish("order.paid", {"order": {"id": n}}, partner=partner)
    # 6 to the orders endpoint; the warehouse's circuit opens after 5 failures in a row.
    receiver.wait_for(11, timeout=30)

    # The page polls its JSON: the figures change in place, the document stays.
    page.wait_for_function(
        "Number(document.getElementById('live-ok-hour').textContent.replace(/,/g, '')) >= 6",
        timeout=30_000,
    )
    assert number(page, "#live-events-hour") == 6
    assert number(page, "#live-failed-hour") >= 5
    assert page.evaluate("window.__sameDocument") is True
    assert "%" in page.inner_text("#live-success-rate")
    # Lines drawn with axes and legends, in every chart.
    for chart in ("#chart-throughput", "#chart-success", "#chart-latency"):
        assert page.locator(f"{chart} svg path").count() >= 1, chart
        assert page.locator(f"{chart} svg text").count() >= 4, chart  # tick and time labels
        assert page.locator(f"{chart} .wh-legend li").count() >= 1, chart
    assert page.locator("#chart-throughput .wh-legend li").count() == 3
    # The warehouse's deliveries wait: retries for later, or behind its open circuit.
    wait_until(
        lambda: number(page, "#waiting-later") + number(page, "#waiting-circuit_open") >= 1,
        timeout=20,
        message="the warehouse's deliveries show as waiting",
    )
    assert page.evaluate("window.__sameDocument") is True

    # Full width, and nothing to scroll sideways at 1366 px.
    width = page.evaluate("document.getElementById('dashboard').getBoundingClientRect().width")
    assert width > 900
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=True)

    # The minute figures (windows, failing endpoints) come with the page or on "recompute".
    page.click("text=recompute")
    page.wait_for_selector("#failing-endpoints")
    assert broken.name in page.inner_text("#failing-endpoints")
    assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
