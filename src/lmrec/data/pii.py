"""A PII scrubber for text that reaches an encoder or a log (queries, user texts, item texts).

Personal data found in a text is replaced by a placeholder: ``<EMAIL>``, ``<PHONE>``, ``<CARD>``,
``<ID>`` (US SSN, UK National Insurance number, IBAN, Chinese resident id) and ``<IP>``, or one fixed
mask for every kind. The default backend is a set of precompiled patterns that needs no extra
package; numbers that carry a checksum (payment cards: Luhn; IBAN: mod 97; Chinese resident id:
ISO 7064 MOD 11-2) are replaced only when the checksum holds, so an ISBN, an order number or a
model number that happens to look like one is kept.

Patterns work inside Chinese text without spaces: a match is bounded by "not an ASCII letter or
digit" rather than by ``\\b`` (CJK characters are word characters to ``re``), and full-width
digits and punctuation (``１３８``, ``＠``) are matched as their ASCII forms.

Usage::

    scrubber = PIIScrubber(ScrubConfig(kinds={"email", "phone"}))
    result = scrubber.scrub("请联系我13812345678谢谢")
    result.text    # "请联系我<PHONE>谢谢"
    result.counts  # {"phone": 1}
    scrub("mail zhang.san@example.com")  # "mail <EMAIL>"
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, get_args

__all__ = [
    "ALL_KINDS",
    "ID_KINDS",
    "PLACEHOLDERS",
    "PIIKind",
    "PIIMatch",
    "PIIScrubber",
    "ScrubConfig",
    "ScrubResult",
    "cn_id_valid",
    "find_pii",
    "iban_valid",
    "luhn_valid",
    "scrub",
]

log = logging.getLogger(__name__)

PIIKind = Literal["email", "phone", "card", "ssn", "uk_nino", "iban", "cn_id", "ip"]
ALL_KINDS: frozenset[str] = frozenset(get_args(PIIKind))
ID_KINDS: frozenset[str] = frozenset({"ssn", "uk_nino", "iban", "cn_id"})
_KIND_ORDER: tuple[str, ...] = get_args(PIIKind)

PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "phone": "<PHONE>",
    "card": "<CARD>",
    "ssn": "<ID>",
    "uk_nino": "<ID>",
    "iban": "<ID>",
    "cn_id": "<ID>",
    "ip": "<IP>",
}

# ---------------------------------------------------------------------------- checksums


def luhn_valid(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) checksum of payment card numbers."""
    if not digits.isdigit() or not digits.isascii():
        return False
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def iban_valid(iban: str) -> bool:
    """True when ``iban`` (spaces allowed) has a plausible length and passes the ISO 13616 mod-97 check."""
    s = iban.replace(" ", "").upper()
    if not 15 <= len(s) <= 34 or not s.isascii() or not s.isalnum():
        return False
    expected = _IBAN_LENGTHS.get(s[:2])
    if expected is not None and len(s) != expected:
        return False
    rearranged = s[4:] + s[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)


def cn_id_valid(number: str) -> bool:
    """True when an 18-character Chinese resident id has the right ISO 7064 MOD 11-2 check character."""
    if len(number) != 18 or not number[:17].isdigit() or not number[:17].isascii():
        return False
    remainder = sum(int(c) * w for c, w in zip(number[:17], _CN_WEIGHTS)) % 11
    return "10X98765432"[remainder] == number[17].upper()


def _ssn_valid(s: str) -> bool:
    area, group, serial = s[:3], s[4:6], s[7:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _digit_count(lo: int, hi: int) -> Callable[[str], bool]:
    def check(s: str) -> bool:
        return lo <= sum(c.isdigit() for c in s) <= hi

    return check


def _card_valid(s: str) -> bool:
    digits = s.replace(" ", "").replace("-", "")
    return 13 <= len(digits) <= 19 and luhn_valid(digits)


# Registered IBAN lengths (SWIFT IBAN registry) of the countries most often met; an IBAN of another
# country is checked by mod 97 alone.
_IBAN_LENGTHS = {
    "AD": 24,
    "AE": 23,
    "AT": 20,
    "BE": 16,
    "BG": 22,
    "BH": 22,
    "BR": 29,
    "CH": 21,
    "CY": 28,
    "CZ": 24,
    "DE": 22,
    "DK": 18,
    "EE": 20,
    "ES": 24,
    "FI": 18,
    "FR": 27,
    "GB": 22,
    "GR": 27,
    "HR": 21,
    "HU": 28,
    "IE": 22,
    "IL": 23,
    "IS": 26,
    "IT": 27,
    "LI": 21,
    "LT": 20,
    "LU": 20,
    "LV": 21,
    "MC": 27,
    "MT": 31,
    "NL": 18,
    "NO": 15,
    "PL": 28,
    "PT": 25,
    "RO": 24,
    "SA": 24,
    "SE": 24,
    "SI": 19,
    "SK": 24,
    "SM": 27,
    "TR": 26,
    "UA": 29,
}

# ---------------------------------------------------------------------------- patterns

# A match must not touch an ASCII letter or digit on either side; CJK text around it is fine.
_L = r"(?<![0-9A-Za-z])"
_R = r"(?![0-9A-Za-z])"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"

_PHONE = "|".join(
    [
        # international: +cc then 2-6 digit groups, 8-15 digits in all (E.164), checked below
        r"\+[1-9][0-9]{0,2}(?:[ .-]?\(?[0-9]{1,5}\)?){1,6}",
        # mainland China mobile, optionally with 0086 / 86 prefix: 13812345678, 138 1234 5678
        r"(?:0086[ -]?)?1[3-9][0-9](?:([ -]?)[0-9]{4}\1[0-9]{4})",
        # North American: (555) 123-4567, 555-123-4567, 555.123.4567, 1-800-555-1234
        r"(?:1[ .-])?(?:\([0-9]{3}\)[ .-]?|[0-9]{3}[ .-])[0-9]{3}[ .-][0-9]{4}",
        # trunk-prefixed national numbers: 010-12345678, 0755-1234567, 020 7946 0958, 07700 900123
        r"0[0-9]{1,4}[ -][0-9]{3,4}[ -]?[0-9]{3,4}",
        r"\(0[0-9]{1,4}\)[ -]?[0-9]{3,4}[ -]?[0-9]{3,4}",
        # French style pairs: 01 23 45 67 89, 06.12.34.56.78
        r"0[1-9](?:([ .-])[0-9]{2})(?:\2[0-9]{2}){3}",
    ]
)

# (kind, pattern, validator); the order is the priority when two matches overlap.
_DETECTORS: tuple[tuple[str, str, Callable[[str], bool] | None], ...] = (
    (
        "email",
        r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,24}"
        r"(?![A-Za-z0-9-])",
        None,
    ),
    ("iban", _L + r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?" + _R, iban_valid),
    (
        "cn_id",
        _L + r"[1-8][0-9]{5}(?:18|19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])[0-9]{3}[0-9Xx]" + _R,
        cn_id_valid,
    ),
    (
        "card",
        _L + r"(?:[0-9]{13,19}|[0-9]{4}(?:[ -][0-9]{4}){2}[ -][0-9]{1,4}(?:[ -][0-9]{1,3})?"
        r"|[0-9]{4}[ -][0-9]{6}[ -][0-9]{4,5})" + _R,
        _card_valid,
    ),
    ("ssn", _L + r"[0-9]{3}-[0-9]{2}-[0-9]{4}" + _R, _ssn_valid),
    (
        "uk_nino",
        _L + r"(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D]" + _R,
        None,
    ),
    ("ip", r"(?<![0-9A-Za-z.])" + _OCTET + r"(?:\." + _OCTET + r"){3}(?![0-9A-Za-z]|\.[0-9])", None),
    ("phone", r"(?<![0-9A-Za-z+])(?:" + _PHONE + r")" + _R, _digit_count(8, 15)),
)
_COMPILED: dict[str, tuple[re.Pattern[str], Callable[[str], bool] | None]] = {
    kind: (re.compile(pattern), check) for kind, pattern, check in _DETECTORS
}
_PRIORITY = tuple(kind for kind, _, _ in _DETECTORS)
# every kind needs an ASCII or full-width digit, or an "@" (e-mail)
_MAYBE = re.compile(r"[0-9@\uff10-\uff19\uff20]")
# full-width ASCII (U+FF01..U+FF5E) and the ideographic space, one character each, so spans keep
_HALF_WIDTH = {0xFF01 + i: 0x21 + i for i in range(94)} | {0x3000: 0x20}

_PRESIDIO_ENTITIES = {
    "EMAIL_ADDRESS": "email",
    "PHONE_NUMBER": "phone",
    "CREDIT_CARD": "card",
    "US_SSN": "ssn",
    "UK_NINO": "uk_nino",
    "IBAN_CODE": "iban",
    "IP_ADDRESS": "ip",
}

# ---------------------------------------------------------------------------- API


@dataclass(frozen=True)
class ScrubConfig:
    """What to scrub and how.

    Attributes:
        kinds: the kinds of PII to replace (any iterable of names; stored as a frozenset). Valid:
            ``email``, ``phone``, ``card``, ``ssn``, ``uk_nino``, ``iban``, ``cn_id``, ``ip``.
        placeholder: ``"typed"`` (``<EMAIL>``, ``<PHONE>``, ``<CARD>``, ``<ID>``, ``<IP>``) or
            ``"mask"`` (``mask`` for every kind).
        mask: the replacement when ``placeholder="mask"``.
        backend: ``"patterns"`` (built in, needs nothing) or ``"presidio"`` (Microsoft Presidio's
            AnalyzerEngine with an installed spaCy model; ``cn_id`` stays on the patterns, which
            Presidio lacks). Nothing is ever downloaded.
        presidio_language: language code passed to Presidio.
        presidio_model: the installed spaCy model Presidio's NLP engine loads.
        presidio_threshold: minimum Presidio score of a finding.
    """

    kinds: frozenset[PIIKind] = ALL_KINDS  # type: ignore[assignment]
    placeholder: Literal["typed", "mask"] = "typed"
    mask: str = "<PII>"
    backend: Literal["patterns", "presidio"] = "patterns"
    presidio_language: str = "en"
    presidio_model: str = "en_core_web_lg"
    presidio_threshold: float = 0.5

    def __post_init__(self) -> None:
        if isinstance(self.kinds, str) or not isinstance(self.kinds, Iterable):
            raise ValueError(
                f"ScrubConfig.kinds must be a set of kind names, got {self.kinds!r}; valid: {sorted(ALL_KINDS)}"
            )
        kinds = frozenset(self.kinds)
        unknown = sorted(str(k) for k in kinds - ALL_KINDS)
        if unknown:
            raise ValueError(f"ScrubConfig.kinds has unknown kind(s) {unknown}; valid: {sorted(ALL_KINDS)}")
        object.__setattr__(self, "kinds", kinds)
        if self.placeholder not in ("typed", "mask"):
            raise ValueError(f"ScrubConfig.placeholder must be 'typed' or 'mask', got {self.placeholder!r}")
        if not isinstance(self.mask, str) or not self.mask:
            raise ValueError(f"ScrubConfig.mask must be a non-empty string, got {self.mask!r}")
        if self.backend not in ("patterns", "presidio"):
            raise ValueError(f"ScrubConfig.backend must be 'patterns' or 'presidio', got {self.backend!r}")
        if not 0.0 <= float(self.presidio_threshold) <= 1.0:
            raise ValueError(f"ScrubConfig.presidio_threshold must be in [0, 1], got {self.presidio_threshold!r}")

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ScrubConfig:
        """Build from a plain dict; an unknown key is a ValueError naming it and the valid keys."""
        valid = [f.name for f in dataclasses.fields(cls)]
        for key in values:
            if key not in valid:
                raise ValueError(f"ScrubConfig has no field {key!r}; valid: {valid}")
        return cls(**values)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able field values (kinds as a sorted list)."""
        out = dataclasses.asdict(self)
        out["kinds"] = sorted(self.kinds)
        return out


@dataclass(frozen=True)
class PIIMatch:
    """One finding: ``text[start:end]`` is PII of ``kind``."""

    kind: str
    start: int
    end: int


@dataclass(frozen=True)
class ScrubResult:
    """A scrubbed text and how many findings of each kind it had (kinds with none are absent)."""

    text: str
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Number of replaced spans."""
        return sum(self.counts.values())


class PIIScrubber:
    """Finds and replaces PII; build once (patterns and any Presidio engine load here), call often.

    Args:
        config: what to scrub and how (default: every kind, typed placeholders, built-in patterns).

    Raises:
        ImportError: ``backend="presidio"`` and Presidio or its spaCy model is not installed.
    """

    def __init__(self, config: ScrubConfig | None = None) -> None:
        self.config = config or ScrubConfig()
        self._kinds = tuple(k for k in _PRIORITY if k in self.config.kinds)
        self._analyzer = _presidio_analyzer(self.config) if self.config.backend == "presidio" else None
        if self.config.placeholder == "typed":
            self._replacement = dict(PLACEHOLDERS)
        else:
            self._replacement = dict.fromkeys(ALL_KINDS, self.config.mask)

    def find(self, text: str) -> list[PIIMatch]:
        """Non-overlapping findings in ``text``, sorted by start; an overlap keeps the higher-priority kind.

        Raises:
            TypeError: ``text`` is not a string.
        """
        if not isinstance(text, str):
            raise TypeError(f"PIIScrubber needs a str, got {type(text).__name__}")
        if not self._kinds or not _MAYBE.search(text):
            return []
        probe = text.translate(_HALF_WIDTH) if not text.isascii() else text
        taken: list[PIIMatch] = []
        if self._analyzer is not None:
            taken = self._presidio_find(probe)
        for kind in self._kinds:
            if self._analyzer is not None and kind != "cn_id":
                continue
            pattern, check = _COMPILED[kind]
            for m in pattern.finditer(probe):
                start, end = m.span()
                if check is not None and not check(m.group()):
                    end = _shorter_valid(pattern, check, probe, start, end)
                    if end < 0:
                        continue
                if any(start < t.end and t.start < end for t in taken):
                    continue
                taken.append(PIIMatch(kind, start, end))
        return sorted(taken, key=lambda t: t.start)

    def scrub(self, text: str) -> ScrubResult:
        """``text`` with every finding replaced, and the counts per kind."""
        found = self.find(text)
        if not found:
            return ScrubResult(text, {})
        parts: list[str] = []
        counts: dict[str, int] = {}
        pos = 0
        for f in found:
            parts.append(text[pos : f.start])
            parts.append(self._replacement[f.kind])
            counts[f.kind] = counts.get(f.kind, 0) + 1
            pos = f.end
        parts.append(text[pos:])
        return ScrubResult("".join(parts), {k: counts[k] for k in _KIND_ORDER if k in counts})

    def __call__(self, text: str) -> str:
        """The scrubbed text alone."""
        return self.scrub(text).text

    def _presidio_find(self, text: str) -> list[PIIMatch]:
        entities = [e for e, k in _PRESIDIO_ENTITIES.items() if k in self.config.kinds]
        if not entities:
            return []
        results = self._analyzer.analyze(  # type: ignore[union-attr]
            text=text,
            language=self.config.presidio_language,
            entities=entities,
            score_threshold=self.config.presidio_threshold,
        )
        out: list[PIIMatch] = []
        for r in sorted(results, key=lambda r: (-r.score, r.start)):
            if not any(r.start < t.end and t.start < r.end for t in out):
                out.append(PIIMatch(_PRESIDIO_ENTITIES[r.entity_type], r.start, r.end))
        return out


_SEPARATOR = re.compile(r"[ .-]")


def _shorter_valid(pattern: re.Pattern[str], check: Callable[[str], bool], text: str, start: int, end: int) -> int:
    """The end of the longest valid match that stops before a separator inside ``text[start:end]``, or -1.

    A greedy match can take in a group that follows the PII ("+44 20 7946 0958 10 2023" swallows the
    trailing numbers and then has too many digits); cutting it at a separator recovers the PII.
    """
    for sep in reversed(list(_SEPARATOR.finditer(text, start, end))):
        cut = sep.start()
        if cut > start and pattern.fullmatch(text, start, cut) and check(text[start:cut]):
            return cut
    return -1


def _presidio_analyzer(config: ScrubConfig) -> Any:
    """Presidio's AnalyzerEngine on an installed spaCy model; an ImportError names what is missing."""
    try:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import NlpEngineProvider
    except ImportError as exc:
        raise ImportError(
            "ScrubConfig.backend='presidio' needs the presidio_analyzer package, which is not installed "
            "(pip install presidio-analyzer, plus a spaCy model); use backend='patterns' to scrub without it"
        ) from exc
    import spacy.util

    if not spacy.util.is_package(config.presidio_model):
        raise ImportError(
            f"ScrubConfig.backend='presidio' needs the spaCy model {config.presidio_model!r}, which is not "
            "installed (nothing is downloaded at run time: install it, or set presidio_model to one that is)"
        )
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": config.presidio_language, "model_name": config.presidio_model}],
        }
    )
    log.info("PII scrubber: Presidio on spaCy model %s", config.presidio_model)
    return AnalyzerEngine(nlp_engine=provider.create_engine(), supported_languages=[config.presidio_language])


@lru_cache(maxsize=8)
def _scrubber(config: ScrubConfig) -> PIIScrubber:
    return PIIScrubber(config)


def scrub(text: str, config: ScrubConfig | None = None) -> str:
    """``text`` with its PII replaced (a scrubber per config is built once and reused)."""
    return _scrubber(config or ScrubConfig())(text)


def find_pii(text: str, config: ScrubConfig | None = None) -> list[PIIMatch]:
    """The PII findings of ``text``, sorted by start."""
    return _scrubber(config or ScrubConfig()).find(text)
