"""Records the environment it was given, echoes its arguments, reports a metric."""
import json
import os
import sys

with open("training-environment.json", "w") as handle:
    json.dump(dict(os.environ), handle)
print("arguments:", " ".join(sys.argv))
if os.environ.get("MLOPS_HP_FAIL") == "true":
    sys.exit(3)
with open(os.path.join(os.environ["MLOPS_OUTPUT_DIR"], "model.txt"), "w") as handle:
    handle.write("trained\n")
with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
    json.dump({"auc": 0.9}, handle)
