"""The opt-out decision: which inbound texts opt out, which opt back in, which do neither."""

import uuid

import pytest

from app.opt_outs import OPT_IN, OPT_OUT, change_for
from tests.support import MESSAGES_URL, count_rows, inbound_payload


@pytest.mark.parametrize(
    "text",
    [
        "STOP",
        "  stop ",
        "Stop.",
        "STOP!",
        '"STOP"',
        "«stop»",
        "ＳＴＯＰ",
        "ｓｔｏｐ！",
        "\u200bSTOP\u200b",
        "StopAll",
        "STOP ALL",
        "unsubscribe",
        "Unsubscribe.",
        "cancel",
        "END",
        "quit!",
        "REVOKE",
        "revoke.",
        "OPTOUT",
        "OPT OUT",
        "opt-out",
        "Opt out!",
        # An unambiguous word opening a longer text.
        "Stop texting me",
        "STOP please",
        "Unsubscribe me",
        "Opt out of these",
    ],
)
def test_opt_out_words_opt_out_however_they_are_written(text):
    assert change_for(text) == OPT_OUT


@pytest.mark.parametrize("text", ["START", "start.", "Unstop", "YES", "yes!", "ＹＥＳ", '"Start"'])
def test_opt_in_words_opt_back_in(text):
    assert change_for(text) == OPT_IN


@pytest.mark.parametrize(
    "text",
    [
        "Cancel my appointment",
        "End of the day works",
        "Quit calling? No, it's fine",
        "Start time?",
        "Yes, see you at 5",
        "Don't stop",
        "stopwatch",
        "",
        "   ",
        "!!!",
        None,
    ],
)
def test_other_texts_change_nothing(text):
    assert change_for(text) is None


# --- Through the webhook and the send path ------------------------------------------------------


@pytest.mark.parametrize(
    "word", ["Stop.", "STOP!", '"STOP"', "REVOKE", "OPT OUT", "OPTOUT", "ＳＴＯＰ", "opt-out"]
)
def test_an_inbound_opt_out_word_blocks_the_next_send(signed_webhook, send, vonage_api, word):
    signed_webhook("/webhooks/inbound", inbound_payload(text_body=word))

    response = send({"to": "+14155550100", "text": "Hi"})

    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert response.json["type"].endswith("opted-out")
    assert len(vonage_api.calls) == 0


def test_cancel_as_the_first_word_of_a_sentence_does_not_opt_out(
    app, signed_webhook, send, vonage_api
):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    # Vonage's sms.keyword is "CANCEL" here: the whole text decides, not the first word.
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Cancel my appointment"))

    assert count_rows(app, "opt_outs") == 0
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 202
    assert len(vonage_api.calls) == 1


def test_yes_opts_back_in(signed_webhook, send, vonage_api):
    vonage_api.post(MESSAGES_URL, json={"message_uuid": str(uuid.uuid4())}, status=202)
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="STOP"))
    signed_webhook("/webhooks/inbound", inbound_payload(text_body="Yes!"))
    assert send({"to": "+14155550100", "text": "Hi"}).status_code == 202
