"""Trains a tiny logistic-regression fraud model with the standard library only.

Follows the mlops run contract: reads MLOPS_INPUT_TRAIN (a directory of
feature files), MLOPS_HYPERPARAMETERS, writes the model to MLOPS_OUTPUT_DIR
and its metrics to MLOPS_METRICS_FILE.
"""
import csv
import glob
import json
import math
import os
import random


def load_rows(directory):
    rows = []
    for path in sorted(glob.glob(os.path.join(directory, "*"))):
        if path.endswith(".jsonl"):
            with open(path) as handle:
                rows.extend(json.loads(line) for line in handle if line.strip())
        elif path.endswith(".csv"):
            with open(path, newline="") as handle:
                rows.extend(csv.DictReader(handle))
    return rows


def as_float(value):
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if value in (None, ""):
        return 0.0
    if isinstance(value, str):
        return 1.0 if value.lower() == "true" else 0.0 if value.lower() == "false" else float(value)
    return float(value)


def auc(scores, labels):
    positives = [score for score, label in zip(scores, labels) if label]
    negatives = [score for score, label in zip(scores, labels) if not label]
    if not positives or not negatives:
        return 0.5
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def main():
    hyperparameters = json.loads(os.environ.get("MLOPS_HYPERPARAMETERS", "{}"))
    learning_rate = float(hyperparameters.get("learning_rate", 0.1))
    epochs = int(hyperparameters.get("epochs", 20))
    rows = load_rows(os.environ["MLOPS_INPUT_TRAIN"])
    features = ["amount_log", "is_adult"]
    examples = [([as_float(row.get(name)) for name in features], as_float(row.get("label")) > 0.5) for row in rows]
    random.seed(0)
    random.shuffle(examples)
    split = int(len(examples) * 0.8)
    train, test = examples[:split], examples[split:]
    weights = [0.0] * (len(features) + 1)
    for _ in range(epochs):
        for x, y in train:
            z = weights[0] + sum(w * v for w, v in zip(weights[1:], x))
            p = 1.0 / (1.0 + math.exp(-max(min(z, 30.0), -30.0)))
            error = p - (1.0 if y else 0.0)
            weights[0] -= learning_rate * error
            for index, value in enumerate(x):
                weights[index + 1] -= learning_rate * error * value
    scores = [weights[0] + sum(w * v for w, v in zip(weights[1:], x)) for x, _ in test]
    labels = [y for _, y in test]
    predictions = [score > 0 for score in scores]
    accuracy = sum(1 for p, y in zip(predictions, labels) if p == y) / max(len(labels), 1)
    output_dir = os.environ["MLOPS_OUTPUT_DIR"]
    with open(os.path.join(output_dir, "model.json"), "w") as handle:
        json.dump({"features": features, "weights": weights}, handle)
    with open(os.environ["MLOPS_METRICS_FILE"], "w") as handle:
        json.dump({"auc": auc(scores, labels), "accuracy": accuracy}, handle)
    print(f"trained on {len(train)} rows; test auc {auc(scores, labels):.3f}")


if __name__ == "__main__":
    main()
