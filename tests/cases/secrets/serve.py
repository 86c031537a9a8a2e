"""Records the environment it was given, then answers GET /health."""
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

with open("serving-environment.json", "w") as handle:
    json.dump(dict(os.environ), handle)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()

    def log_message(self, *arguments):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
