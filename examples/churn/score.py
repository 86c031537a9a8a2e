"""Flags each customer whose latest 30-day activity says they may leave.

Follows the mlops batch contract: MLOPS_MODEL_DIR (the model version's
files), MLOPS_INPUT_DIR (the features, JSON Lines) and MLOPS_OUTPUT_DIR
(where the predictions go).
"""
import csv
import glob
import json
import os

with open(os.path.join(os.environ["MLOPS_MODEL_DIR"], "model.json")) as handle:
    threshold = json.load(handle)["threshold"]

latest = {}
for path in glob.glob(os.path.join(os.environ["MLOPS_INPUT_DIR"], "**", "*.jsonl"), recursive=True):
    with open(path) as handle:
        for line in handle:
            row = json.loads(line)
            if row["event_time"] >= latest.get(row["customer_id"], {}).get("event_time", ""):
                latest[row["customer_id"]] = row

with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "at_risk.csv"), "w", newline="") as out:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["customer_id", "at_risk"])
    for customer, row in sorted(latest.items()):
        writer.writerow([customer, int((row["transactions_30d"] or 0) <= threshold)])
