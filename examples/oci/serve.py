"""Answers GET /health and GET /classifier with the served version's
classifier (read from MLOPS_MODEL_DIR, pulled from the registry by digest)."""
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

CLASSIFIER = open(os.path.join(os.environ["MLOPS_MODEL_DIR"], "classifier.json"), "rb").read()


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = CLASSIFIER if self.path == "/classifier" else b"ok"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *arguments):
        pass


HTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
