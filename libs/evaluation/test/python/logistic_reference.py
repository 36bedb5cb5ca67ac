#!/usr/bin/python3
"""scikit-learn's LogisticRegression (lbfgs, L2, unpenalised intercept) on the features the probe
sees: stdin {x, y, test_x, dim, classes, kind, C}; standardised with the training mean and
population std (0 -> 1) as the probe does. stdout: {coef [classes][dim], intercept, proba [n][classes],
objective}: objective is scikit-learn's at the solution, summed cross-entropy + ||W||^2 / (2 C).
multi-label: one binary regression per class; multi-class: multinomial over the classes."""
import json
import sys

import numpy as np
from sklearn.linear_model import LogisticRegression


def main():
    req = json.load(sys.stdin)
    dim, classes = req["dim"], req["classes"]
    x = np.array(req["x"], dtype=np.float64).reshape(-1, dim)
    test_x = np.array(req["test_x"], dtype=np.float64).reshape(-1, dim)
    y = np.array(req["y"], dtype=np.float64).reshape(-1, classes)
    mean, std = x.mean(axis=0), x.std(axis=0)
    std[std == 0] = 1
    x, test_x = (x - mean) / std, (test_x - mean) / std
    fit = lambda target: LogisticRegression(C=req["C"], tol=1e-8, max_iter=10000).fit(x, target)
    if req["kind"] == "multi-label":
        models = [fit(y[:, c]) for c in range(classes)]
        coef = [m.coef_[0].tolist() for m in models]
        intercept = [float(m.intercept_[0]) for m in models]
        proba = np.stack([m.predict_proba(test_x)[:, 1] for m in models], axis=1)
        train_proba = np.stack([m.predict_proba(x)[:, 1] for m in models], axis=1)
        cross_entropy = -np.sum(y * np.log(train_proba) + (1 - y) * np.log(1 - train_proba))
    else:
        model = fit(y.argmax(axis=1))
        coef, intercept = model.coef_.tolist(), model.intercept_.tolist()
        proba = model.predict_proba(test_x)
        cross_entropy = -np.sum(y * np.log(model.predict_proba(x)))
    objective = cross_entropy + np.sum(np.square(coef)) / (2 * req["C"])
    json.dump({"coef": coef, "intercept": intercept, "proba": proba.tolist(), "objective": float(objective)}, sys.stdout)


if __name__ == "__main__":
    main()
