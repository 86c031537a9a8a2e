"""Waits (MLOPS_HP_SECONDS or SLOW_SECONDS, default 3), then reports a score."""
import json
import os
import time

time.sleep(float(os.environ.get("SLOW_SECONDS", "3")))
os.makedirs(os.environ["MLOPS_OUTPUT_DIR"], exist_ok=True)
with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "model.txt"), "w") as handle:
    handle.write("trained\n")
with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
    json.dump({"score": 1.0}, handle)
print("done")
