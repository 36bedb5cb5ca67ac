"""Independent references for the evaluation metrics: scikit-learn roc_auc_score and numpy Dice.
Reads {"auroc": [{"labels", "scores"}], "dice": [{"pred", "truth"}]} on stdin, writes the values."""
import json
import sys

import numpy as np
from sklearn.metrics import roc_auc_score

cases = json.load(sys.stdin)
auroc = [float(roc_auc_score(np.array(c["labels"]), np.array(c["scores"], dtype=np.float64))) for c in cases["auroc"]]
macro = []
for c in cases["multilabel"]:
    y = np.array(c["labels"]).reshape(-1, c["classes"])
    s = np.array(c["scores"], dtype=np.float64).reshape(-1, c["classes"])
    macro.append(float(roc_auc_score(y, s, average="macro")))


def dice(p, t):
    p = np.array(p) != 0
    t = np.array(t) != 0
    total = p.sum() + t.sum()
    return 1.0 if total == 0 else float(2 * np.logical_and(p, t).sum() / total)


json.dump({"auroc": auroc, "macro": macro, "dice": [dice(c["pred"], c["truth"]) for c in cases["dice"]]}, sys.stdout)
