"""`algo analyst feed URL...`: poll RSS/Atom feeds and publish their new entries to news.items.

Each poll is a conditional GET (If-None-Match / If-Modified-Since from the feed's last answer), made
with httpx so a hung server times out (feedparser's own fetching has no timeout), and parsed by
feedparser. An entry is published once per feed (a seen-set of its ids); its id is derived from the
entry's id, else its link (streams.bus.ids), so a restarted adapter re-publishes the same ids and
the compacted topic and the vault keep one copy. An entry without a date gets the poll's time.
Feeds carry no tickers: symbols stay empty and the analyst resolves them from the text.

A feed that fails (network, HTTP status, not a feed, or the publish itself) is reported and retried
at the next poll; its etag and seen-set only move on once its entries are delivered, so nothing is lost.
"""
from __future__ import annotations

import calendar
import re
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import datetime, timezone
from html.parser import HTMLParser
from typing import Callable, Iterable
from urllib.parse import urlsplit

import feedparser
import httpx

from streams.bus.ids import derived_id
from streams.errors import AlgoError, ServiceUnavailable
from streams.outages import KAFKA
from streams.settings import Settings

TOPIC = "news.items"
USER_AGENT = "algo-analyst-feed/1 (+feedparser)"
# ids remembered per feed: far more than a feed lists at once, so an entry that stays listed for
# weeks is still recognised, while a feed polled for months does not grow without bound
SEEN_PER_FEED = 10_000
_SPACES = re.compile(r"\s+")

Publish = Callable[[list[dict]], None]


def check_urls(urls: Iterable[str]) -> list[str]:
    """The URLs, each http(s) with a host; AlgoError naming the first that is not."""
    checked = []
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise AlgoError(f"feed URL {url!r} is not an http:// or https:// URL")
        checked.append(url)
    if not checked:
        raise AlgoError("name at least one feed URL")
    return list(dict.fromkeys(checked))


class _TextExtractor(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def plain_text(value: str | None, html: bool = True) -> str:
    """Feed text as one line of plain text: tags dropped, entities decoded, whitespace collapsed."""
    if not value:
        return ""
    if html:
        extractor = _TextExtractor()
        extractor.feed(value)
        extractor.close()
        value = " ".join(extractor.parts)
    return _SPACES.sub(" ", value).strip()


def _is_html(detail) -> bool:
    return detail is None or "html" in (detail.get("type") or "text/html")


def entry_time(entry) -> datetime | None:
    """The entry's published (else updated) time in UTC; feedparser gives UTC struct_times."""
    parsed = entry.get("published_parsed") or entry.get("updated_parsed")
    if parsed is None:
        return None
    return datetime.fromtimestamp(calendar.timegm(parsed), tz=timezone.utc)


def entry_id(entry, feed_url: str) -> str | None:
    """The news id of a feed entry, from its id or link; None for an entry with neither nor a title."""
    key = entry.get("id") or entry.get("link")
    if key:
        return derived_id("news:feed", key)
    title = entry.get("title")
    return derived_id("news:feed", feed_url, title) if title else None


@dataclass
class FeedState:
    url: str
    etag: str | None = None
    modified: str | None = None
    seen: OrderedDict = field(default_factory=OrderedDict)

    def remember(self, ids: Iterable[str]) -> None:
        for news_id in ids:
            self.seen[news_id] = None
            self.seen.move_to_end(news_id)
        while len(self.seen) > SEEN_PER_FEED:
            self.seen.popitem(last=False)


@dataclass
class FeedResult:
    """What one poll of one feed did: `published` new items, or the `error` that stopped it."""
    url: str
    status: int | None = None
    entries: int = 0
    published: list[dict] = field(default_factory=list)
    skipped: int = 0
    error: str | None = None

    def describe(self) -> str:
        if self.error is not None:
            return f"{self.url}: {self.error} (retried at the next poll)"
        if self.status == 304:
            return f"{self.url}: not modified"
        skipped = f", {self.skipped} without a title skipped" if self.skipped else ""
        return f"{self.url}: {len(self.published)} new of {self.entries} entries{skipped}"


class FeedPoller:
    """Polls a set of feeds; `poll(publish)` publishes each feed's new entries as NewsItem records."""

    def __init__(self, urls: Iterable[str], *, source: str | None = None, timeout_s: float = 10.0,
                 clock: Callable[[], datetime] = lambda: datetime.now(timezone.utc)) -> None:
        self.feeds = [FeedState(url) for url in check_urls(urls)]
        self.source = source
        self.clock = clock
        self.client = httpx.Client(timeout=timeout_s, follow_redirects=True, headers={"User-Agent": USER_AGENT})

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> "FeedPoller":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()

    def poll(self, publish: Publish) -> list[FeedResult]:
        return [self.poll_feed(feed, publish) for feed in self.feeds]

    def poll_feed(self, feed: FeedState, publish: Publish) -> FeedResult:
        result = FeedResult(feed.url)
        polled_at = self.clock()
        headers = {}
        if feed.etag:
            headers["If-None-Match"] = feed.etag
        if feed.modified:
            headers["If-Modified-Since"] = feed.modified
        try:
            response = self.client.get(feed.url, headers=headers)
        except httpx.HTTPError as error:
            result.error = f"cannot fetch: {type(error).__name__}: {error}"
            return result
        result.status = response.status_code
        if response.status_code == 304:
            return result
        if response.status_code >= 400:
            result.error = f"HTTP {response.status_code} {response.reason_phrase}"
            return result
        parsed = feedparser.parse(response.content, response_headers={
            "content-location": str(response.url), "content-type": response.headers.get("content-type", "")})
        if not parsed.version and not parsed.entries:
            reason = parsed.get("bozo_exception")
            result.error = "not an RSS or Atom feed" + (f" ({reason})" if reason else "")
            return result
        source = self.source or plain_text(parsed.feed.get("title")) or urlsplit(feed.url).netloc
        records: dict[str, dict] = {}
        result.entries = len(parsed.entries)
        for entry in parsed.entries:
            news_id = entry_id(entry, feed.url)
            headline = plain_text(entry.get("title"), _is_html(entry.get("title_detail")))
            if news_id is None or not headline:
                result.skipped += 1
                continue
            if news_id in feed.seen or news_id in records:
                continue
            records[news_id] = {
                "id": news_id,
                "ts": entry_time(entry) or polled_at,
                "source": source,
                "headline": headline,
                "body": plain_text(entry.get("summary"), _is_html(entry.get("summary_detail"))),
                "symbols": [],
                "url": entry.get("link") or None,
            }
        new = sorted(records.values(), key=lambda r: r["ts"])
        if new:
            try:
                publish(new)
            except AlgoError as error:
                result.error = f"cannot publish: {error}"
                return result
        # only now: a failed publish leaves the etag and seen-set as they were, so the next poll retries
        feed.remember(records)
        feed.etag = response.headers.get("etag") or None
        feed.modified = response.headers.get("last-modified") or None
        result.published = new
        return result


class NewsPublisher:
    """Publishes NewsItem records to news.items keyed by id (Avro through the registry), waiting for
    the broker's acknowledgement of each batch."""

    def __init__(self, settings: Settings, flush_timeout_s: float = 30.0) -> None:
        from confluent_kafka import KafkaException, Producer

        from streams.bus.codecs import CodecRegistry

        self.settings = settings
        self.flush_timeout_s = flush_timeout_s
        self.codec = CodecRegistry(settings.schema_registry_url).for_topic(TOPIC)
        self.producer = Producer(settings.kafka_config({
            "acks": "all", "enable.idempotence": True, "partitioner": "murmur2_random", "log_level": 2}))
        try:
            self.producer.list_topics(timeout=5)
        except KafkaException as error:
            self.producer = None
            raise ServiceUnavailable(KAFKA, f"{settings.kafka_bootstrap}: {error.args[0].str()}; is the stack up "
                                            "(`algo stack status`)?") from None

    def __call__(self, records: list[dict]) -> None:
        from confluent_kafka import KafkaException

        failures: list[str] = []

        def on_delivery(error, _message) -> None:
            if error is not None:
                failures.append(str(error))

        for record in records:
            value = self.codec.encode(record)
            try:
                self.producer.produce(TOPIC, key=record["id"].encode(), value=value, on_delivery=on_delivery)
            except (BufferError, KafkaException) as error:
                raise AlgoError(f"cannot publish to {TOPIC}: {error}") from None
        remaining = self.producer.flush(self.flush_timeout_s)
        if remaining or failures:
            raise AlgoError(f"{len(failures) + remaining} of {len(records)} news items were not delivered to "
                            f"{TOPIC} ({failures[0] if failures else 'flush timed out'})")

    def close(self) -> None:
        if self.producer is not None:
            self.producer.flush(self.flush_timeout_s)
        self.producer = None  # a librdkafka producer has no close(): dropping it ends its threads

    def __enter__(self) -> "NewsPublisher":
        return self

    def __exit__(self, *_exc) -> None:
        self.close()
