"""Writes a one-number model (a threshold) and its metric."""
import json
import os

with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "model.json"), "w") as handle:
    json.dump({"threshold": 100}, handle)
with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
    json.dump({"auc": 0.9}, handle)
