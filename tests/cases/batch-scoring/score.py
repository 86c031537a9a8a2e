"""Scores every row of the input with the model: 1 above its threshold."""
import csv
import glob
import json
import os

with open(os.path.join(os.environ["MLOPS_MODEL_DIR"], "model.json")) as handle:
    threshold = json.load(handle)["threshold"]
with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "predictions.csv"), "w", newline="") as out:
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "flagged", "model_version"])
    for path in sorted(glob.glob(os.path.join(os.environ["MLOPS_INPUT_DIR"], "**", "*.csv"), recursive=True)):
        with open(path, newline="") as handle:
            for row in csv.DictReader(handle):
                writer.writerow([row["id"], int(float(row["amount"]) > threshold), os.environ["MLOPS_MODEL_VERSION"]])
