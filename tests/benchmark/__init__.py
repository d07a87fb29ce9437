"""`python -m tests.benchmark`: a bounded load benchmark of the service on 127.0.0.1.

Webhook ingest and /send-sms are measured under gunicorn exactly as the
Procfile starts it, and reported as ratios against a do-nothing Flask app
(`baseline_app`) run under the very same gunicorn settings.
"""
