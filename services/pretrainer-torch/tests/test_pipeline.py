"""The swap end to end: the CI-sized pipeline (`medsyn pipeline run`) with this service as its
pretrainer endpoint and the other three services started locally by the pipeline; the evaluator
scores the bundles this service wrote."""
import json
import subprocess

import yaml

from conftest import REPO_ROOT, run_reference

SAMPLE = REPO_ROOT / "examples" / "demo" / "sample"


def test_the_ci_pipeline_runs_with_this_pretrainer_in_place_of_the_typescript_one(start_service, store_dir, tmp_path):
    lines = (SAMPLE / "reports.jsonl").read_text().strip().split("\n")[:12]
    records = [{**json.loads(line), "image": str(SAMPLE / json.loads(line)["image"])} for line in lines]
    (tmp_path / "reports.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    run_reference("tiny-diffusion", tmp_path / "tiny-model")
    service = start_service(PRETRAINER_THREADS="1")
    config = {
        "run": "ci", "store": f"file://{store_dir}", "report": str(tmp_path / "out" / "report.html"),
        "services": {"pretrainer": service.target},
        "input": {"reports": "reports.jsonl", "patient_field": "patient", "image_field": "image"},
        "synthesize": {"model": str(tmp_path / "tiny-model"), "num_inference_steps": 3, "scheduler": "ddim"},
        "pretrain": {"methods": ["convirt"], "config": {
            "image_encoder": {"architecture": "resnet18", "image_size": 32, "width": 8},
            "text_encoder": {"layers": 1, "hidden_size": 32, "heads": 2, "max_length": 32, "vocab_size": 200},
            "batch_size": 4, "epochs": 2, "embedding_size": 16, "checkpoint_every_steps": 1}},
        "evaluate": {"dataset": {"format": "covid_cxr", "root": str(SAMPLE)}, "tasks": ["classification"], "label_fractions": [1], "seeds": [0],
                     "max_images": 24, "epochs": 2, "report_samples": 1},
    }
    (tmp_path / "pipeline.yaml").write_text(yaml.safe_dump(config))
    cli = subprocess.run(["node", "--conditions=medsyn-source", "--import", "tsx", str(REPO_ROOT / "cli" / "src" / "main.ts"), "pipeline", "run",
                          str(tmp_path / "pipeline.yaml"), "--no-progress"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=900)
    assert cli.returncode == 0, cli.stdout[-3000:] + cli.stderr[-3000:]
    output = cli.stdout + cli.stderr
    assert "pretrain convirt-synthetic: done in" in output and "evaluate: done in" in output, output[-3000:]
    # Both pre-training jobs ran here: records of this service, results only this implementation writes.
    jobs = [json.loads(p.read_text()) for p in (store_dir / "jobs" / "pretrainer").glob("*.json")]
    assert sorted(j["state"] for j in jobs) == ["succeeded", "succeeded"]
    for job in jobs:
        result = json.loads((store_dir / job["spec"]["prefix"] / "result.json").read_text())
        assert (result["ranks"], result["device"]) == (1, "cpu")
    logs = tmp_path / "out" / "medsyn-logs-ci"
    assert not (logs / "pretrainer.log").exists()  # the pipeline started no pretrainer of its own
    results = json.loads(next((store_dir / "pipeline" / "ci" / "evaluate").glob("*/results.json")).read_text())
    assert sorted(e["name"] for e in results["encoders"]) == ["convirt-real", "convirt-synthetic", "random-init"]
