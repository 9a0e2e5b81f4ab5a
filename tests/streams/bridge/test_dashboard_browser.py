"""The dashboard in a real browser (Debian's headless Chromium through Playwright) while events flow:
bars, a decision with its votes and risk verdict, a fill and the book must show up, and news markers
on the charts (from the vault's news rows, and live from news.items) with their headlines on hover and
click, and the analyst's votes with the headlines they cite (signals rows); a screenshot is saved to
test-artifacts/dashboard.png."""
from __future__ import annotations

import math
import re
import shutil
import uuid
from datetime import datetime, timedelta, timezone

import psycopg
import pytest

from streams.bus.codecs import CodecRegistry
from tests.streams.bridge.helpers import ARTIFACTS, BridgeProcess, unique_symbol
from tests.fixtures import decision, fill, news_item
from tests.kafka_tools import produce

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def bars_for(symbol: str, start: float, n: int) -> list[dict]:
    out, price = [], start
    day0 = datetime(2012, 1, 2, tzinfo=timezone.utc)
    for i in range(n):
        close = round(price * (1 + 0.012 * math.sin(i / 4.0) + 0.004), 2)
        out.append({"symbol": symbol, "interval": "1d", "ts": day0 + timedelta(days=i), "open": price,
                    "high": max(price, close) * 1.01, "low": min(price, close) * 0.99, "close": close,
                    "volume": 1000.0 + i, "tick_count": 4})
        price = close
    return out


@pytest.fixture
def book(provisioned):
    account = f"bridge-ui-{uuid.uuid4().hex[:6]}"
    yield account
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM positions WHERE account = %s", (account,))
        conn.execute("DELETE FROM accounts WHERE account = %s", (account,))


@pytest.fixture
def vault_news(provisioned):
    """News rows and analyst votes citing them, written to the vault as the persistence agent would; removed after."""
    run = uuid.uuid4().hex[:8]
    written: dict[str, list[str]] = {"news": [], "signals": []}

    def write(news: list[dict], votes: list[dict]) -> None:
        with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
            for n in news:
                conn.execute("INSERT INTO news (id, ts, source, headline, body, symbols, url) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                             (n["id"], n["ts"], n["source"], n["headline"], n["body"], n["symbols"], n["url"]))
                written["news"].append(n["id"])
            for v in votes:
                conn.execute("INSERT INTO signals (signal_id, agent, symbol, ts, action, confidence, rationale, "
                             "model_version, input_refs) VALUES (%s, 'analyst', %s, %s, %s, %s, %s, 'analyst-test', %s)",
                             (v["signal_id"], v["symbol"], v["ts"], v["action"], v["confidence"], v["rationale"],
                              v["input_refs"]))
                written["signals"].append(v["signal_id"])

    write.run = run
    yield write
    with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
        conn.execute("DELETE FROM signals WHERE signal_id = ANY(%s)", (written["signals"],))
        conn.execute("DELETE FROM news WHERE id = ANY(%s)", (written["news"],))


def test_dashboard_shows_prices_decisions_and_pnl(provisioned, book, vault_news, tmp_path):
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: run `bash ops/bootstrap.sh` (it installs Debian's chromium)")
    from playwright.sync_api import expect, sync_playwright

    account = book
    symbols = [unique_symbol("UI"), unique_symbol("UI")]
    codecs = CodecRegistry(provisioned.schema_registry_url)
    encode = lambda topic, record: codecs.for_topic(topic).encode(record)  # noqa: E731
    ARTIFACTS.mkdir(exist_ok=True)
    errors: list[str] = []

    with BridgeProcess(tmp_path / "bridge.log") as bridge, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
            viewport={"width": 1500, "height": 1100})
        try:
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{bridge.url}/?token={bridge.token}&symbols={','.join(symbols)}")
            expect(page.locator("#status")).to_have_text("live", timeout=30_000)
            assert "token" not in page.url  # taken out of the address bar

            # the pipeline at work: bars, a decision (with votes), its verdict, a fill, the book
            series = {symbols[0]: bars_for(symbols[0], 100.0, 80), symbols[1]: bars_for(symbols[1], 40.0, 80)}
            for symbol, bars in series.items():
                for bar in bars:
                    produce(provisioned, "market.bars", symbol.encode(), encode("market.bars", bar))
            when = series[symbols[0]][60]["ts"]
            buy = decision(symbol=symbols[0], ts=when, action="BUY", target_position=0.4, agreement=1.0,
                           rationale="2 of 2 agents agree",
                           votes=[{"signal_id": "s1", "agent": "technical", "action": "BUY", "confidence": 0.8, "weight": 1.0},
                                  {"signal_id": "s2", "agent": "quant", "action": "BUY", "confidence": 0.6, "weight": 0.5}])
            sell = decision(symbol=symbols[1], ts=series[symbols[1]][70]["ts"], action="SELL", target_position=-0.2,
                            votes=[{"signal_id": "s3", "agent": "technical", "action": "SELL", "confidence": 0.7,
                                    "weight": 1.0}])
            for record in (buy, sell):
                produce(provisioned, "consensus.decisions", record["symbol"].encode(), encode("consensus.decisions", record))
            verdict = {"verdict_id": str(uuid.uuid4()), "decision_id": buy["decision_id"], "symbol": symbols[0], "ts": when,
                       "verdict": "APPROVE", "requested_quantity": 40.0, "approved_quantity": 40.0,
                       "reason_codes": [], "limits_checked": []}
            produce(provisioned, "risk.verdicts", symbols[0].encode(), encode("risk.verdicts", verdict))
            the_fill = fill(symbol=symbols[0], account=account, ts=when + timedelta(days=1), quantity=40.0,
                            price=series[symbols[0]][61]["open"], fee=1.25)
            produce(provisioned, "fills", symbols[0].encode(), encode("fills", the_fill))
            last_close = series[symbols[0]][-1]["close"]
            with psycopg.connect(provisioned.database_url, autocommit=True) as conn:
                conn.execute("INSERT INTO accounts (account, cash, equity, realised_pnl, unrealised_pnl, fees, "
                             "gross_exposure, net_exposure) VALUES (%s, 95000, 101234.5, 0, 1234.5, 1.25, 0.05, 0.05)",
                             (account,))
                conn.execute("INSERT INTO positions (account, symbol, quantity, avg_price, last_price, unrealised_pnl) "
                             "VALUES (%s, %s, 40, %s, %s, 1234.5)", (account, symbols[0], the_fill["price"], last_close))

            # news: two rows in the vault for the first symbol (one declared, one only cited by the analyst's
            # vote on it, as a feed item is), the vote citing both; and one live item for the second symbol
            day0 = series[symbols[0]][0]["ts"]
            declared = news_item(id=f"test-{vault_news.run}-declared", ts=day0 + timedelta(days=20), source="wire",
                                 headline=f"{symbols[0]} raises its outlook", body="Guidance above estimates.",
                                 symbols=[symbols[0]], url=None)
            resolved = news_item(id=f"test-{vault_news.run}-resolved", ts=day0 + timedelta(days=50), source="feed",
                                 headline=f"{symbols[0]} wins a large contract", body="", symbols=[], url=None)
            vote = {"signal_id": f"test-{vault_news.run}-vote", "symbol": symbols[0], "ts": day0 + timedelta(days=50, hours=1),
                    "action": "BUY", "confidence": 0.73,
                    "rationale": f"positive: '{resolved['headline']}' (with '{declared['headline']}')",
                    "input_refs": [f"news:{resolved['id']}", f"news:{declared['id']}"]}
            vault_news([declared, resolved], [vote])
            live = news_item(id=f"test-{vault_news.run}-live", ts=series[symbols[1]][30]["ts"], source="wire",
                             headline=f"{symbols[1]} names a new chief executive", symbols=[symbols[1]])
            produce(provisioned, "news.items", live["id"].encode(), encode("news.items", live))

            card = page.locator(f'.chart-card[data-symbol="{symbols[0]}"]')
            expect(card.locator(".last-price")).to_have_text(f"{last_close:.2f}", timeout=30_000)
            expect(card).to_have_attribute("data-points", "80", timeout=30_000)
            # at least our decision; agents running on the stack may add their own for these bars
            page.wait_for_function(
                "symbols => symbols.every(s => Number(document.querySelector(`.chart-card[data-symbol=\"${s}\"]`)"
                "?.dataset.markers || 0) >= 1)", arg=symbols, timeout=30_000)

            row = page.locator(f'#decisions tr[data-decision-id="{buy["decision_id"]}"]')
            expect(row).to_contain_text("BUY", timeout=30_000)
            expect(row.locator(".votes")).to_contain_text("technical BUY 0.80×1.00")
            expect(row.locator(".votes")).to_contain_text("quant BUY 0.60×0.50")
            # ours says APPROVE; a risk agent running on the stack may answer the same decision too
            expect(row.locator(".verdict")).to_contain_text(re.compile("APPROVE|RESIZE|REJECT"), timeout=30_000)
            expect(page.locator(f'#fills tr[data-fill-id="{the_fill["fill_id"]}"]')).to_contain_text(account, timeout=30_000)

            # the news markers: from the vault (REST) on the first chart, live (websocket) on the second
            for news_id in (declared["id"], resolved["id"]):
                expect(card.locator(f'.news-marker[data-news-id="{news_id}"]')).to_be_visible(timeout=30_000)
            expect(page.locator(f'.chart-card[data-symbol="{symbols[1]}"] .news-marker[data-news-id="{live["id"]}"]')
                   ).to_be_visible(timeout=30_000)
            tip = card.locator(".news-tip")
            card.locator(f'.news-marker[data-news-id="{declared["id"]}"]').hover()
            expect(tip).to_be_visible()
            expect(tip).to_contain_text(declared["headline"])
            expect(tip).to_contain_text("Guidance above estimates.")
            page.mouse.move(5, 5)
            expect(tip).to_be_hidden()
            marker = card.locator(f'.news-marker[data-news-id="{resolved["id"]}"]')
            marker.click()  # a click keeps the headline shown after the pointer leaves
            page.mouse.move(5, 5)
            expect(tip).to_contain_text(resolved["headline"])
            expect(tip).to_have_attribute("data-news-id", resolved["id"])
            expect(tip).not_to_contain_text("null")  # no summary: no line for it
            expect(marker).to_have_class(re.compile("pinned"))
            # the marker sits at the item's time on the chart: left of the later one
            assert card.locator(f'.news-marker[data-news-id="{declared["id"]}"]').bounding_box()["x"] < marker.bounding_box()["x"]

            # the analyst's vote with its cited headlines, in the order it cites them
            voted = page.locator(f'#analyst-votes li[data-signal-id="{vote["signal_id"]}"]')
            expect(voted).to_contain_text("BUY", timeout=30_000)
            expect(voted).to_contain_text("confidence 0.73")
            expect(voted.locator(".rationale")).to_have_text(vote["rationale"])
            expect(voted.locator(".cited li")).to_have_text([re.compile(re.escape(resolved["headline"])),
                                                             re.compile(re.escape(declared["headline"]))])

            page.locator("#account-select").select_option(account, timeout=30_000)
            expect(page.locator("#pnl-equity")).to_have_text("101,234.50", timeout=30_000)
            expect(page.locator("#pnl-unrealised")).to_have_text("+1,234.50")
            expect(page.locator(f'#positions tr[data-symbol="{symbols[0]}"]')).to_contain_text("40")
            expect(page.locator("#agents tbody tr").first).to_be_visible()
            page.wait_for_timeout(500)  # let the last frame paint
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        finally:
            context.close()
    assert errors == [], errors
