"""`python -m app`: the service on its embedded defaults, one process, on $PORT."""

from app import create_app

app = create_app()
settings = app.extensions["settings"]
app.run(host="127.0.0.1", port=settings.port, threaded=True)
