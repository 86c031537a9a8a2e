"""Learns one threshold on 30-day activity that best separates churners.

Follows the mlops run contract: MLOPS_INPUT_TRAIN (the training set, a
directory of JSON Lines), MLOPS_OUTPUT_DIR (the model) and
MLOPS_METRICS_FILE (its accuracy).
"""
import glob
import json
import os

rows = []
for path in glob.glob(os.path.join(os.environ["MLOPS_INPUT_TRAIN"], "**", "*.jsonl"), recursive=True):
    with open(path) as handle:
        rows.extend(json.loads(line) for line in handle if line.strip())

def activity(row):
    return row.get("transactions_30d") or 0

best = (0.0, 0)
for threshold in range(0, 15):
    correct = sum((activity(row) <= threshold) == row["churned"] for row in rows)
    best = max(best, (correct / max(len(rows), 1), threshold))

accuracy, threshold = best
with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "model.json"), "w") as handle:
    json.dump({"threshold": threshold}, handle)
with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
    json.dump({"accuracy": accuracy}, handle)
