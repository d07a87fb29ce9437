"""`python -m app`: the service on its embedded defaults, one process, on $PORT.

An event dispatcher runs inside on a background thread, so the one-command
start also pushes events (in production the Procfile's `worker:` does).
"""

import threading

from app import create_app
from app.events.dispatcher import Dispatcher

app = create_app()
settings = app.extensions["settings"]
dispatcher = Dispatcher(app.extensions["db"], settings)
threading.Thread(target=dispatcher.run, name="dispatcher", daemon=True).start()
app.run(host="127.0.0.1", port=settings.port, threaded=True)
