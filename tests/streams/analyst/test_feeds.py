"""The RSS/Atom feed adapter against feeds served by a local HTTP server (127.0.0.1)."""
from __future__ import annotations

import socket
import threading
import uuid
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from ops.cli import cli
from streams.analyst.feeds import FeedPoller, NewsPublisher, check_urls, plain_text
from streams.bus.ids import derived_id
from streams.errors import AlgoError
from tests.kafka_tools import ends, read_from

UTC = timezone.utc
POLL_TIME = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def rss(*items: str) -> bytes:
    return ('<?xml version="1.0" encoding="utf-8"?><rss version="2.0"><channel><title>Test Wire</title>'
            f'<link>http://example.org/</link>{"".join(items)}</channel></rss>').encode()


def rss_item(guid: str, title: str, date: str | None = "Wed, 14 Jan 2004 21:05:00 GMT", description: str = "") -> str:
    when = f"<pubDate>{date}</pubDate>" if date else ""
    return (f"<item><guid isPermaLink=\"false\">{guid}</guid><title>{title}</title>"
            f"<link>http://example.org/{guid}</link><description>{description}</description>{when}</item>")


ATOM = b"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><title>Atom Desk</title><id>urn:desk</id>
<updated>2004-01-15T10:00:00Z</updated>
<entry><id>urn:desk:1</id><title type="html">IBM &lt;b&gt;wins&lt;/b&gt; a contract</title>
<link href="http://example.org/atom/1"/><published>2004-01-15T09:30:00+01:00</published>
<summary type="text">A plain summary.</summary></entry>
<entry><id>urn:desk:2</id><title>Undated entry</title><link href="http://example.org/atom/2"/></entry>
</feed>"""


class FeedServer:
    """Serves `documents[path] = (status, body, content type, etag)` and records the requests' headers."""

    def __init__(self) -> None:
        self.documents: dict[str, tuple[int, bytes, str, str | None]] = {}
        self.requests: list[tuple[str, dict]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                server.requests.append((self.path, dict(self.headers)))
                status, body, content_type, etag = server.documents.get(self.path, (404, b"no", "text/plain", None))
                if etag is not None and self.headers.get("If-None-Match") == etag:
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                if etag is not None:
                    self.send_header("ETag", etag)
                    self.send_header("Last-Modified", "Wed, 14 Jan 2004 22:00:00 GMT")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    served = FeedServer()
    yield served
    served.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Collect:
    def __init__(self) -> None:
        self.batches: list[list[dict]] = []

    def __call__(self, records: list[dict]) -> None:
        self.batches.append(records)


def test_rss_entries_are_published_once_with_conditional_gets(server):
    server.documents["/rss"] = (200, rss(rss_item("a1", "Apple &amp; IBM sign a deal", description="&lt;p&gt;Both "
                                                  "&lt;b&gt;gain&lt;/b&gt;&lt;/p&gt;")),
                                "application/rss+xml", '"v1"')
    collect = Collect()
    with FeedPoller([server.url("/rss")], clock=lambda: POLL_TIME) as poller:
        [first] = poller.poll(collect)
        assert first.error is None and first.status == 200 and first.entries == 1
        [[item]] = collect.batches
        assert item == {"id": derived_id("news:feed", "a1"), "ts": datetime(2004, 1, 14, 21, 5, tzinfo=UTC),
                        "source": "Test Wire", "headline": "Apple & IBM sign a deal", "body": "Both gain",
                        "symbols": [], "url": "http://example.org/a1"}
        [again] = poller.poll(collect)  # the server answers 304 to the etag it gave
        assert again.status == 304 and again.published == [] and "not modified" in again.describe()
        assert server.requests[-1][1]["If-None-Match"] == '"v1"'
        assert server.requests[-1][1]["If-Modified-Since"] == "Wed, 14 Jan 2004 22:00:00 GMT"
        # a new version of the feed: only the new entry goes out
        server.documents["/rss"] = (200, rss(rss_item("a2", "Second"), rss_item("a1", "Apple &amp; IBM sign a deal")),
                                    "application/rss+xml", '"v2"')
        [third] = poller.poll(collect)
        assert [r["headline"] for r in third.published] == ["Second"] and third.entries == 2
        assert len(collect.batches) == 2 and third.describe().endswith("1 new of 2 entries")


def test_atom_entries_and_an_undated_entry_gets_the_poll_time(server):
    server.documents["/atom"] = (200, ATOM, "application/atom+xml", None)
    collect = Collect()
    with FeedPoller([server.url("/atom")], source="desk", clock=lambda: POLL_TIME) as poller:
        [result] = poller.poll(collect)
        dated, undated = result.published  # in time order: 2004 before the poll time
        assert dated["headline"] == "IBM wins a contract" and dated["body"] == "A plain summary."
        assert dated["ts"] == datetime(2004, 1, 15, 8, 30, tzinfo=UTC) and dated["source"] == "desk"
        assert dated["id"] == derived_id("news:feed", "urn:desk:1") and dated["url"] == "http://example.org/atom/1"
        assert undated["headline"] == "Undated entry" and undated["ts"] == POLL_TIME
        # no etag: the whole feed comes again, but the seen-set keeps it from being published twice
        [again] = poller.poll(collect)
        assert again.status == 200 and again.entries == 2 and again.published == []
        assert len(collect.batches) == 1


def test_a_failing_feed_is_reported_and_retried_while_the_others_go_on(server):
    server.documents["/rss"] = (200, rss(rss_item("b1", "Good feed")), "application/rss+xml", None)
    server.documents["/flaky"] = (503, b"busy", "text/plain", None)
    server.documents["/html"] = (200, b"<html><body>not a feed</body></html>", "text/html", None)
    down = f"http://127.0.0.1:{closed_port()}/rss"
    collect = Collect()
    with FeedPoller([down, server.url("/flaky"), server.url("/html"), server.url("/rss")], timeout_s=2) as poller:
        refused, flaky, html, good = poller.poll(collect)
        assert refused.error.startswith("cannot fetch: ConnectError") and "retried at the next poll" in refused.describe()
        assert flaky.error == "HTTP 503 Service Unavailable" and html.error.startswith("not an RSS or Atom feed")
        assert [r["headline"] for r in good.published] == ["Good feed"]
        server.documents["/flaky"] = (200, rss(rss_item("c1", "Back again")), "application/rss+xml", None)
        refused, flaky, html, good = poller.poll(collect)
        assert [r["headline"] for r in flaky.published] == ["Back again"] and good.published == []
        assert refused.error is not None


def test_a_failed_publish_is_retried_at_the_next_poll(server):
    server.documents["/rss"] = (200, rss(rss_item("d1", "Kept for later")), "application/rss+xml", '"v1"')
    calls = []

    def broken_then_working(records):
        calls.append(records)
        if len(calls) == 1:
            raise AlgoError("Kafka is unavailable: down")

    with FeedPoller([server.url("/rss")]) as poller:
        [failed] = poller.poll(broken_then_working)
        assert failed.error == "cannot publish: Kafka is unavailable: down" and failed.published == []
        [retried] = poller.poll(broken_then_working)  # no If-None-Match was kept, so no 304 hides the entry
        assert "If-None-Match" not in server.requests[-1][1]
        assert [r["headline"] for r in retried.published] == ["Kept for later"] and len(calls) == 2


def test_urls_and_text_helpers():
    assert check_urls(["http://a/x", "https://b/y", "http://a/x"]) == ["http://a/x", "https://b/y"]
    for bad in ("ftp://a/x", "example.org/rss", "http://"):
        with pytest.raises(AlgoError, match="not an http:// or https:// URL"):
            check_urls([bad])
    assert plain_text("<p>One &amp;\n <i>two</i></p>") == "One & two" and plain_text(None) == ""
    assert plain_text("a <b> c", html=False) == "a <b> c"


def test_feed_cli_rejects_a_bad_url_in_one_line():
    result = CliRunner().invoke(cli, ["analyst", "feed", "ftp://example.org/rss", "--once"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == ["error: feed URL 'ftp://example.org/rss' is not an http:// or "
                                                  "https:// URL"]


@pytest.mark.integration
def test_feed_items_land_in_news_items(provisioned, server):
    marker = uuid.uuid4().hex[:8]
    server.documents["/rss"] = (200, rss(rss_item(f"{marker}-1", f"{marker} RSS headline")), "application/rss+xml",
                                None)
    server.documents["/atom"] = (200, ATOM.replace(b"urn:desk", f"urn:{marker}".encode())
                                 .replace(b"Undated entry", f"{marker} undated".encode()), "application/atom+xml", None)
    down = f"http://127.0.0.1:{closed_port()}/rss"
    starts = ends(provisioned, "news.items")
    result = CliRunner().invoke(cli, ["analyst", "feed", server.url("/rss"), server.url("/atom"), "--once"])
    assert result.exit_code == 0, result.output
    assert f"feed {server.url('/rss')}: 1 new of 1 entries" in result.output
    # a feed that is down: reported, the others still published, exit 1 after --once
    result = CliRunner().invoke(cli, ["analyst", "feed", down, server.url("/rss"), "--once"])
    assert result.exit_code == 1 and "1 of 2 feed(s) failed" in result.output
    items = [r for _, r in read_from(provisioned, starts)
             if marker in r["headline"] or r["id"] == derived_id("news:feed", f"urn:{marker}:1")]
    ids = [r["id"] for r in items]
    assert derived_id("news:feed", f"{marker}-1") in ids and derived_id("news:feed", f"urn:{marker}:1") in ids
    assert {r["source"] for r in items} == {"Test Wire", "Atom Desk"} and all(r["symbols"] == [] for r in items)
    # the second command starts with an empty seen-set (a restarted adapter): the RSS entry comes again, same id
    assert sorted(ids).count(derived_id("news:feed", f"{marker}-1")) == 2 and len(ids) == 4


def test_publisher_names_kafka_when_it_is_down():
    import dataclasses

    from streams.settings import Settings

    settings = dataclasses.replace(Settings(), kafka_bootstrap=f"127.0.0.1:{closed_port()}")
    with pytest.raises(AlgoError, match="Kafka is unavailable: 127.0.0.1"):
        NewsPublisher(settings)
