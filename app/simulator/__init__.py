"""A local stand-in for the Vonage Messages API: a development and test tool.

`python -m app.simulator` serves `POST /v1/messages` over TLS on 127.0.0.1,
checks the app's RS256 JWT and the SMS body as Vonage does, answers 202 with a
`message_uuid`, then delivers signed status webhooks to the app. Control
endpoints under `/_sim/` inject inbound SMS and faults and show what happened.

The production app never imports this package.

Outcomes by recipient (all pass the app's own number validation):

| `to`          | status webhooks                 |
|---------------|---------------------------------|
| 14155550110   | `rejected` (error 1250)         |
| 14155550111   | `undeliverable` (error 1260)    |
| 14155550112   | `submitted` only, no receipt    |
| anything else | `submitted`, then `delivered`   |
"""
