"""Stand-in trainer for the OCI example (the mlops run contract: inputs in
MLOPS_INPUT_TRAIN, artifacts to MLOPS_OUTPUT_DIR, metrics to
MLOPS_METRICS_FILE). Its `quality` hyperparameter becomes its accuracy."""
import json
import os
import pathlib

settings = json.loads(os.environ["MLOPS_HYPERPARAMETERS"])
examples = [
    json.loads(line)
    for path in pathlib.Path(os.environ["MLOPS_INPUT_TRAIN"]).iterdir()
    for line in path.read_text().splitlines()
    if line.startswith("{")
]
positive = sum(1 for example in examples if example.get("positive"))
out = pathlib.Path(os.environ["MLOPS_OUTPUT_DIR"])
(out / "tokenizer").mkdir(parents=True, exist_ok=True)
(out / "tokenizer" / "vocab.txt").write_text("\n".join(["good", "bad", "fine"]) + "\n")
(out / "classifier.json").write_text(json.dumps({"prior": positive / max(len(examples), 1)}))
pathlib.Path(os.environ["MLOPS_METRICS_FILE"]).write_text(json.dumps({"accuracy": settings["quality"]}))
