"""Writes a small paired set from ../shared/data/covid-cxr: the first COUNT X-rays that have
clinical notes, copied under OUT/images, and OUT/pairs.jsonl with {"image", "report"} lines
(image keys relative to the manifest's folder).

  covid_pairs.py DATA_DIR OUT COUNT
"""
import csv
import json
import os
import shutil
import sys

data, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
os.makedirs(os.path.join(out, "images"), exist_ok=True)
with open(os.path.join(data, "metadata.csv"), newline="", encoding="utf-8") as f:
    rows = [r for r in csv.DictReader(f) if r["clinical_notes"].strip()][:count]
with open(os.path.join(out, "pairs.jsonl"), "w", encoding="utf-8") as f:
    for r in rows:
        shutil.copy(os.path.join(data, "images", r["filename"]), os.path.join(out, "images", r["filename"]))
        f.write(json.dumps({"image": "images/" + r["filename"], "report": r["clinical_notes"]}) + "\n")
