"""A stand-in trainer for the registry examples: it follows the mlops run
contract (MLOPS_INPUT_TRAIN in, MLOPS_OUTPUT_DIR and MLOPS_METRICS_FILE out)
and reports the `quality` hyperparameter as its AUC, so a gate's outcome is
chosen from the command line."""
import json
import os

hyperparameters = json.loads(os.environ["MLOPS_HYPERPARAMETERS"])
rows = sum(
    1
    for name in os.listdir(os.environ["MLOPS_INPUT_TRAIN"])
    for _ in open(os.path.join(os.environ["MLOPS_INPUT_TRAIN"], name))
)
output = os.environ["MLOPS_OUTPUT_DIR"]
os.makedirs(os.path.join(output, "weights"), exist_ok=True)
with open(os.path.join(output, "model.json"), "w") as handle:
    json.dump({"kind": "threshold", "rows": rows, "hyperparameters": hyperparameters}, handle)
with open(os.path.join(output, "weights", "layer0.bin"), "wb") as handle:
    handle.write(bytes(range(256)) * 64)
with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
    json.dump({"auc": float(hyperparameters["quality"]), "rows": rows}, handle)
