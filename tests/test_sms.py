import pytest

from app.sms import (
    GSM7,
    UCS2,
    InvalidNumber,
    canonical_address,
    clean_text,
    mask_number,
    normalize_number,
    segment,
)


@pytest.mark.parametrize(
    ("text", "encoding", "segments"),
    [
        ("a" * 160, GSM7, 1),
        ("a" * 161, GSM7, 2),
        ("a" * 306, GSM7, 2),
        ("a" * 307, GSM7, 3),
        ("€" * 80, GSM7, 1),
        ("€" * 81, GSM7, 2),
        ("a" * 159 + "^", GSM7, 2),
        ("a" * 158 + "{", GSM7, 1),
        ("[~|\\]}", GSM7, 1),
        ("é" * 70 + "Ω", GSM7, 1),
        ("ж" * 70, UCS2, 1),
        ("ж" * 71, UCS2, 2),
        ("ж" * 134, UCS2, 2),
        ("ж" * 135, UCS2, 3),
        ("😀" * 35, UCS2, 1),
        ("😀" * 36, UCS2, 2),
        ("Hello 😀", UCS2, 1),
        ("ç", UCS2, 1),
    ],
)
def test_segments_and_encoding(text, encoding, segments):
    result = segment(text)
    assert (result.encoding, result.segments) == (encoding, segments)


def test_escape_pair_is_never_split_across_parts():
    # 152 septets then an extension character: it cannot straddle parts 1 and 2.
    text = "a" * 152 + "€" + "a" * 10
    assert segment(text).segments == 2
    assert segment("a" * 152 + "€" + "a" * 152).segments == 3


def test_surrogate_pair_is_never_split_across_parts():
    text = "ж" * 66 + "😀" + "ж" * 10
    assert segment(text).segments == 2
    assert segment("ж" * 66 + "😀" + "ж" * 66).segments == 3


@pytest.mark.parametrize("raw", ["+14155550100", "14155550100", "+442071838750"])
def test_valid_numbers_become_digits(raw):
    assert normalize_number(raw) == raw.removeprefix("+")


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("+330612345678", "33612345678"),
        ("330612345678", "33612345678"),
        ("+33 06 12 34 56 78", "33612345678"),
        ("0033 6 12 34 56 78", "33612345678"),
        ("00330612345678", "33612345678"),
        ("+1 (415) 555-0100", "14155550100"),
        ("+1.415.555.0100", "14155550100"),
        ("+1\u00a0415\u00a0555\u00a00100", "14155550100"),
        ("+4909001234567", "499001234567"),
        ("+44 (0) 20 7183 8750", "442071838750"),
        # Italy's leading zero belongs to the number: it stays.
        ("+39 06 1234 5678", "390612345678"),
    ],
)
def test_every_way_of_writing_a_number_gives_one_canonical_form(raw, canonical):
    assert normalize_number(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        ("+14155550100", "14155550100"),
        ("330612345678", "33612345678"),
        ("447700900000", "447700900000"),  # Vonage's example range: not valid, kept
        ("+447700900000", "447700900000"),
        ("22395", "22395"),  # a short code
        ("MyBrand", "MyBrand"),  # an alphanumeric sender ID
    ],
)
def test_canonical_address_canonicalises_phone_numbers_and_keeps_other_senders(raw, stored):
    assert canonical_address(raw) == stored


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "+",
        "abc",
        "+1 415 555 0100 x12",
        "++14155550100",
        "+0014155550100",
        "000014155550100",
        "+1415555",
        "+999123456789",
        "+1234567890123456",
        "14155550100\n",
        14155550100,
    ],
)
def test_invalid_numbers_are_refused(raw):
    with pytest.raises(InvalidNumber):
        normalize_number(raw)


def test_clean_text_removes_control_characters_and_keeps_newlines():
    assert clean_text("  Hi\x00 there\r\nline\x07 two\rthree\t ") == "Hi there\nline two\nthree"


def test_clean_text_normalises_to_nfc():
    assert clean_text("e\u0301") == "é"


def test_clean_text_of_only_controls_is_empty():
    assert clean_text("\x00\x01 \x1b ") == ""


@pytest.mark.parametrize(
    "raw", ["\u200b", "\u200b\u200c\u200d\u2060\ufeff", " \u200b \n\u3164\u2800 ", "\ufe0f"]
)
def test_clean_text_of_only_invisible_characters_is_empty(raw):
    assert clean_text(raw) == ""


def test_clean_text_keeps_joiners_inside_a_text():
    family = "\U0001f468\u200d\U0001f469\u200d\U0001f467"
    assert clean_text(f" {family} ") == family


def test_mask_number_keeps_only_last_four():
    assert mask_number("14155550100") == "*******0100"
    assert mask_number(None) == ""
