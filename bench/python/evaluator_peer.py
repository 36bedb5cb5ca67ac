#!/usr/bin/python3
"""scikit-learn peer for `npm run bench:evaluator`: LogisticRegression on the same frozen,
standardised features and split as medsyn's linear probe. Reads a JSON file
{train_x, train_y, test_x, test_y, dim, repeats}; prints one JSON line: fit seconds, iterations, test
AUROC and the objective at the solution (summed cross-entropy + ||w||^2 / (2 C), the one lbfgs minimises)."""
import json
import sys
import time

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score


def main():
    data = json.load(open(sys.argv[1]))
    dim = data["dim"]
    train_x = np.array(data["train_x"], dtype=np.float32).reshape(-1, dim)
    test_x = np.array(data["test_x"], dtype=np.float32).reshape(-1, dim)
    train_y = np.array(data["train_y"])
    test_y = np.array(data["test_y"])
    # Same standardisation as the probe: training mean and (population) std, 0 std -> 1.
    mean = train_x.mean(axis=0)
    std = train_x.std(axis=0)
    std[std == 0] = 1
    train_x = (train_x - mean) / std
    test_x = (test_x - mean) / std
    times = []
    for _ in range(data["repeats"]):
        model = LogisticRegression(C=data.get("C", 1.0), max_iter=2000)
        start = time.perf_counter()
        model.fit(train_x, train_y)
        times.append(time.perf_counter() - start)
    auroc = roc_auc_score(test_y, model.predict_proba(test_x)[:, 1])
    z = train_x.astype(np.float64) @ model.coef_[0] + model.intercept_[0]
    objective = np.sum(np.logaddexp(0, z) - train_y * z) + np.sum(model.coef_**2) / (2 * data.get("C", 1.0))
    print(json.dumps({"fit_seconds": float(np.median(times)), "iterations": int(model.n_iter_[0]), "auroc": float(auroc), "objective": float(objective)}))


if __name__ == "__main__":
    main()
