"""Serves the trained model over HTTP with the standard library only.

Follows the mlops serving contract: loads MLOPS_MODEL_DIR/model.json, listens
on 127.0.0.1:$PORT, answers GET /health and POST /predict.
"""
import json
import math
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

with open(os.path.join(os.environ["MLOPS_MODEL_DIR"], "model.json")) as handle:
    MODEL = json.load(handle)
VERSION = os.environ.get("MLOPS_MODEL_VERSION", "unknown")


def score(instance):
    values = [float(instance.get(name, 0.0)) for name in MODEL["features"]]
    z = MODEL["weights"][0] + sum(w * v for w, v in zip(MODEL["weights"][1:], values))
    return 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))


class Handler(BaseHTTPRequestHandler):
    def reply(self, status, body):
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        if self.path == "/health":
            self.reply(200, {"status": "ok", "model_version": VERSION})
        else:
            self.reply(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/predict":
            self.reply(404, {"error": "not found"})
            return
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))) or b"{}")
            instances = body.get("instances", [body])
            self.reply(200, {"model_version": VERSION, "predictions": [score(item) for item in instances]})
        except (ValueError, TypeError, AttributeError) as error:
            self.reply(400, {"error": str(error)})

    def log_message(self, *args):
        pass


if __name__ == "__main__":
    ThreadingHTTPServer(("127.0.0.1", int(os.environ["PORT"])), Handler).serve_forever()
