"""Which listed companies a news item is about: deterministic resolution against a symbol table.

Never guessed: a symbol is resolved only when the item declares it and the table knows it, or when
its text names the company by an alias from the table (whole word, case-sensitive, as written or in
full capitals), or cites its ticker with an exchange ("NASDAQ: AAPL") or as a cashtag ("$AAPL").
Lower-case 'apple' is fruit; 'Apple Corps' is masked by the table's not_matches. An item that
resolves to no symbol is unknown: the caller logs it and does not vote on it.

The table is a data file (streams/analyst/data/symbols.json by default) so users can extend it.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import date, datetime, timezone
from importlib import resources
from pathlib import Path
from typing import Iterable

from streams.errors import DataError

# "NASDAQ: AAPL", "(NYSE:IBM)", "NasdaqGS: GOOG": an exchange prefix makes an upper-case word a ticker.
_EXCHANGE_TICKER = re.compile(r"\b(?:NASDAQ|Nasdaq|NasdaqGS|NASDAQGS|NYSE|Nyse)\s*:\s*([A-Z][A-Z.]{0,5}[A-Z]|[A-Z])\b")
# "$AAPL" but not "$1.2 billion" or "US$AAPL" glued to a word.
_CASHTAG = re.compile(r"(?<![\w$])\$([A-Z]{1,5})(?![\w])")


def packaged_path() -> Path:
    """The symbol table that ships with the analyst."""
    return Path(str(resources.files("streams.analyst").joinpath("data", "symbols.json")))


@dataclass(frozen=True)
class Company:
    ticker: str
    name: str
    aliases: tuple[str, ...]
    not_matches: tuple[str, ...]
    trading_from: date | None
    trading_to: date | None

    def trades_on(self, day: date) -> bool:
        return (self.trading_from is None or day >= self.trading_from) and (
            self.trading_to is None or day <= self.trading_to)


@dataclass(frozen=True)
class Resolution:
    """What an item resolved to. symbols: sorted unique tickers to vote on; the other fields say what
    was seen but not resolved, for the caller's log."""

    symbols: tuple[str, ...]
    unknown_declared: tuple[str, ...] = ()  # declared symbols the table does not know
    unknown_mentioned: tuple[str, ...] = ()  # "$XYZ" / "NYSE: XYZ" tickers the table does not know
    not_trading: tuple[str, ...] = ()  # known symbols dropped because they did not trade on as_of
    matched: tuple[tuple[str, str], ...] = ()  # (ticker, "declared" or the text that matched), sorted

    @property
    def unknown(self) -> bool:
        """True when there is nothing to vote on."""
        return not self.symbols


class SymbolTable:
    """Tickers, company names and aliases, and the rule that matches them in text."""

    def __init__(self, companies: Iterable[Company]) -> None:
        self._companies = {company.ticker: company for company in companies}
        if not self._companies:
            raise DataError("symbol table: no symbols")
        alias_owner: dict[str, str] = {}
        masks: set[str] = set()
        for company in self._companies.values():
            for alias in company.aliases:
                for form in _forms(alias):
                    owner = alias_owner.setdefault(form, company.ticker)
                    if owner != company.ticker:
                        raise DataError(f"symbol table: alias {form!r} belongs to both {owner} and {company.ticker}")
            for phrase in company.not_matches:
                masks.update(_forms(phrase))
        self._alias_owner = alias_owner
        self._alias_pattern = _whole_words(alias_owner)
        self._mask_pattern = _whole_words(masks) if masks else None

    @classmethod
    def load(cls, path: str | Path | None = None) -> "SymbolTable":
        """Reads a symbols.json (the packaged one by default); a malformed file is a DataError."""
        path = Path(path) if path is not None else packaged_path()
        try:
            document = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(f"{path}: no such symbol table") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise DataError(f"{path}: not a readable JSON symbol table ({error})") from None
        entries = document.get("symbols") if isinstance(document, dict) else None
        if not isinstance(entries, dict):
            raise DataError(f"{path}: expected an object with a 'symbols' object of ticker -> entry")
        try:
            return cls(_company(ticker, entry) for ticker, entry in entries.items())
        except DataError as error:
            raise DataError(f"{path}: {error}") from None

    @property
    def tickers(self) -> tuple[str, ...]:
        return tuple(sorted(self._companies))

    def company(self, ticker: str) -> Company:
        try:
            return self._companies[ticker.strip().upper()]
        except KeyError:
            raise DataError(f"symbol {ticker!r} is not in the symbol table ({', '.join(self.tickers)})") from None

    def __contains__(self, ticker: object) -> bool:
        return isinstance(ticker, str) and ticker.strip().upper() in self._companies

    def resolve(self, headline: str, body: str = "", declared: Iterable[str] = (), *,
                as_of: datetime | date | None = None) -> Resolution:
        """The symbols an item is about: the declared ones the table knows plus those its text names.

        With as_of, a symbol that did not trade on that (UTC) day is dropped into not_trading, so an
        item from 2007 naming Facebook does not vote on FB."""
        matched: set[tuple[str, str]] = set()
        unknown_declared: list[str] = []
        for raw in declared:
            ticker = raw.strip().upper()
            if not ticker:
                continue
            if ticker in self._companies:
                matched.add((ticker, "declared"))
            elif ticker not in unknown_declared:
                unknown_declared.append(ticker)
        unknown_mentioned: set[str] = set()
        # headline and body are matched separately so that no alias spans the two
        for text in (headline or "", body or ""):
            matched.update(self._named(text))
            for ticker in self._tickers_cited(text):
                if ticker in self._companies:
                    matched.add((ticker, _ticker_text(ticker)))
                else:
                    unknown_mentioned.add(ticker)
        not_trading: set[str] = set()
        if as_of is not None:
            day = _utc_day(as_of)
            not_trading = {ticker for ticker, _ in matched if not self._companies[ticker].trades_on(day)}
        symbols = sorted({ticker for ticker, _ in matched} - not_trading)
        return Resolution(
            symbols=tuple(symbols),
            unknown_declared=tuple(sorted(unknown_declared)),
            unknown_mentioned=tuple(sorted(unknown_mentioned)),
            not_trading=tuple(sorted(not_trading)),
            matched=tuple(sorted(item for item in matched if item[0] not in not_trading)),
        )

    def _named(self, text: str) -> set[tuple[str, str]]:
        masked = [m.span() for m in self._mask_pattern.finditer(text)] if self._mask_pattern else []
        found = set()
        for match in self._alias_pattern.finditer(text):
            start, end = match.span()
            if any(start < mask_end and mask_start < end for mask_start, mask_end in masked):
                continue
            found.add((self._alias_owner[match.group(0)], match.group(0)))
        return found

    @staticmethod
    def _tickers_cited(text: str) -> set[str]:
        return {m.group(1) for m in _EXCHANGE_TICKER.finditer(text)} | {m.group(1) for m in _CASHTAG.finditer(text)}


def _forms(phrase: str) -> set[str]:
    """A name matches as written or shouted in capitals (headline style), never in lower case."""
    return {phrase, phrase.upper()}


def _whole_words(phrases: Iterable[str]) -> re.Pattern[str]:
    # longest first, so 'Apple Computer' wins over 'Apple' at the same position
    alternation = "|".join(re.escape(p) for p in sorted(set(phrases), key=lambda p: (-len(p), p)))
    return re.compile(rf"(?<!\w)(?:{alternation})(?!\w)")


def _ticker_text(ticker: str) -> str:
    return f"ticker {ticker}"


def _utc_day(moment: datetime | date) -> date:
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(timezone.utc)
        return moment.date()
    return moment


def _company(ticker: object, entry: object) -> Company:
    if not isinstance(ticker, str) or not re.fullmatch(r"[A-Z][A-Z.]{0,9}", ticker):
        raise DataError(f"ticker {ticker!r} must be upper-case letters (and dots)")
    if not isinstance(entry, dict):
        raise DataError(f"{ticker}: expected an object with name, aliases, not_matches, trading_from, trading_to")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DataError(f"{ticker}: 'name' must be a non-empty string")
    aliases = _phrases(ticker, entry, "aliases", required=True)
    not_matches = _phrases(ticker, entry, "not_matches", required=False)
    trading_from, trading_to = _day(ticker, entry, "trading_from"), _day(ticker, entry, "trading_to")
    if trading_from and trading_to and trading_to < trading_from:
        raise DataError(f"{ticker}: trading_to {trading_to} is before trading_from {trading_from}")
    return Company(ticker, name.strip(), aliases, not_matches, trading_from, trading_to)


def _phrases(ticker: str, entry: dict, key: str, *, required: bool) -> tuple[str, ...]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise DataError(f"{ticker}: {key!r} must be a list of non-empty strings")
    if required and not value:
        raise DataError(f"{ticker}: {key!r} must name at least one alias")
    return tuple(dict.fromkeys(v.strip() for v in value))


def _day(ticker: str, entry: dict, key: str) -> date | None:
    value = entry.get(key)
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise DataError(f"{ticker}: {key!r} must be YYYY-MM-DD or null, not {value!r}") from None
