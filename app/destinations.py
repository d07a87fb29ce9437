"""Which destinations the service sends to: number types and countries.

Pure: no Flask, no SQL. SMS pumping (toll fraud) sends paid messages to
numbers whose operator shares the revenue: premium-rate and shared-cost
ranges, and international networks (satellite +881/+870, +882/+883, +979)
that no customer of a business texts. Those, and types that cannot take an
SMS (pagers, personal forwarding numbers, voicemail access), are refused
whatever the settings; `SEND_SMS_ALLOWED_COUNTRIES` /
`SEND_SMS_BLOCKED_COUNTRIES` narrow the rest by country, as AWS's protect
configurations and Twilio's geo permissions do.
"""

from __future__ import annotations

from collections.abc import Collection

import phonenumbers
from phonenumbers import PhoneNumberType

NON_GEOGRAPHIC = "001"

REFUSED_TYPES = {
    PhoneNumberType.PREMIUM_RATE: "a premium-rate number",
    PhoneNumberType.SHARED_COST: "a shared-cost number",
    PhoneNumberType.PAGER: "a pager number",
    PhoneNumberType.PERSONAL_NUMBER: "a personal (forwarding) number",
    PhoneNumberType.UAN: "a universal access number",
    PhoneNumberType.VOICEMAIL: "a voicemail access number",
}


def is_country_code(code: str) -> bool:
    """An ISO 3166-1 alpha-2 code phonenumbers knows (`US`, `GB`, `FR`, …)."""
    return code in phonenumbers.SUPPORTED_REGIONS


def refusal(
    digits: str, allowed: Collection[str] = (), blocked: Collection[str] = ()
) -> str | None:
    """Why a valid number (canonical digits) is not sent to, or None to send.

    A non-empty `allowed` list wins: only its countries are sent to, and
    `blocked` is not consulted.
    """
    number = phonenumbers.parse("+" + digits)
    region = phonenumbers.region_code_for_number(number)
    if region == NON_GEOGRAPHIC or region is None:
        return f"+{number.country_code} is an international network number, a toll-fraud target"
    kind = REFUSED_TYPES.get(phonenumbers.number_type(number))
    if kind is not None:
        return f"the recipient is {kind}, which cannot take an SMS or is a toll-fraud target"
    if allowed:
        if region not in allowed:
            return f"sending to {region} numbers is not enabled (SEND_SMS_ALLOWED_COUNTRIES)"
    elif region in blocked:
        return f"sending to {region} numbers is blocked (SEND_SMS_BLOCKED_COUNTRIES)"
    return None
