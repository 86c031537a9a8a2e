"""Waits SERVE_DELAY seconds, then answers GET /health with its model version."""
import os
import time
from http.server import BaseHTTPRequestHandler, HTTPServer

time.sleep(float(os.environ.get("SERVE_DELAY", "0")))
VERSION = os.environ["MLOPS_MODEL_VERSION"].encode()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(VERSION)

    def log_message(self, *arguments):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
