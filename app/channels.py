"""The Messages API channels that post to the same webhooks, and their media types.

Part of the contract: the webhook parser, the history filter and the OpenAPI
document all use these.
"""

SMS = "sms"
CHANNELS = ("sms", "mms", "rcs", "whatsapp", "messenger", "viber_service")
MEDIA_TYPES = ("image", "audio", "video", "file", "vcard", "sticker")
