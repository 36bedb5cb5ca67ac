"""A pre-training run, alone or data-parallel under torchrun (gloo on CPU, NCCL on GPUs):

  python3 -m medsyn_pretrainer_torch.train (--spec SPEC_JSON | --config CONFIG_YAML --prefix PREFIX)
  torchrun --nproc_per_node=N [--nnodes=M --node_rank=I --master_addr=HOST] -m medsyn_pretrainer_torch.train ...

SPEC_JSON: {"config": <parsed config (config.json's form)>, "prefix": "<store prefix>"}; the store
is MEDSYN_STORE. Each rank trains on its shard (batch_size / ranks) of every global batch; the
embeddings are gathered so the contrastive losses see the whole batch as one process would, and
DistributedDataParallel averages the gradients. Rank 0 writes checkpoints, the log, the encoder
bundle and result.json under the prefix (libs/vlp's RUN_FILES layout); every rank resumes from the
last checkpoint after a kill. SIGTERM: all ranks stop at the same step, rank 0 checkpoints, exit 75.

Rank 0 prints one JSON event per line on stdout: {"event": "phase" | "progress" | "error" | "done", ...}.
"""
import argparse
import json
import math
import os
import signal
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

from . import bundle, checkpoint
from .config import ConfigError, check_runnable, config_digest, parse_pretraining_config
from .data import PairBatches, load_pair_manifests, load_retrieval_pairs, split_pairs, tokenize_records, without_held_out
from .losses import loss_options, vlp_loss
from .models import VlpModel
from .store import open_store, put_jsonl, read_jsonl, key_of
from .wordpiece import WordPiece, WordPieceError

RUN_FILES = {"config": "config.json", "log": "train_log.jsonl", "latest": "checkpoints/latest.json", "result": "result.json",
             "vocab": "tokenizer/vocab.txt", "bundle": "encoder", "progress": "progress.json"}
STOPPED_EXIT = 75
SCOPES = {"image_encoder.init": "image_encoder", "text_encoder.init": "text_encoder"}


class Run:
    """Who this process is in the job: rank, ranks, device, and the collectives the run needs."""

    def __init__(self, config):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
        cuda = config["executionProvider"] == "cuda"
        if cuda and not torch.cuda.is_available():
            raise ConfigError("execution_provider", "cuda asked for, but this node has no usable GPU (torch.cuda.is_available() is false)")
        self.device = torch.device(f"cuda:{local}" if cuda else "cpu")
        if cuda:
            torch.cuda.set_device(self.device)
        if self.world > 1:
            dist.init_process_group("nccl" if cuda else "gloo")
        self.leader = self.rank == 0

    def emit(self, event, **fields):
        if self.leader:
            sys.stdout.write(json.dumps({"event": event, **fields}) + "\n")
            sys.stdout.flush()

    def any(self, flag):
        """True on every rank when it is true on any (so all ranks stop at the same step)."""
        if self.world == 1:
            return flag
        t = torch.tensor([1.0 if flag else 0.0], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return t.item() > 0

    def merge(self, flags):
        """Element-wise max of a list of 0/1 over the ranks (each fills its own slots)."""
        if self.world == 1:
            return flags
        t = torch.tensor(flags, dtype=torch.float32, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return [int(v) for v in t.tolist()]

    def barrier(self):
        if self.world > 1:
            dist.barrier()


class GatherWithGradient(torch.autograd.Function):
    """all_gather whose backward sums every rank's gradient of the gathered tensor and returns this
    rank's slice: each rank computes the same whole-batch loss, so the sum is `world` times the
    one-process gradient, which DistributedDataParallel's averaging brings back to it."""

    @staticmethod
    def forward(ctx, x):
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        ctx.rank, ctx.size = dist.get_rank(), x.shape[0]
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        grad = grad.contiguous()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.size:(ctx.rank + 1) * ctx.size]


class Objective(nn.Module):
    """The model and its method's loss over the whole global batch (gathered across ranks)."""

    def __init__(self, model, config, world):
        super().__init__()
        self.model, self.method, self.world = model, config["method"], world
        self.options = loss_options(config)

    def forward(self, pixel_values, input_ids, attention_mask, word_mask):
        x = self.model(pixel_values, input_ids, attention_mask)
        if self.world > 1:
            x = {k: GatherWithGradient.apply(v) for k, v in x.items()}
            word_mask = GatherWithGradient.apply(word_mask)
        prototypes = self.model.prototypes.weight if self.method == "mgca" else None
        loss, parts = vlp_loss(self.method, x, word_mask, prototypes, **self.options)
        return loss, {k: v.detach() for k, v in parts.items()}


def learning_rate_at(step, total, peak, schedule):
    """libs/vlp learningRateAt: linear warm-up to the peak, then cosine to min_lr_ratio x peak (or constant)."""
    warmup = min(schedule["warmupSteps"], total)
    if step <= warmup:
        return peak * step / warmup
    if schedule["decay"] == "constant":
        return peak
    decay_steps = total - warmup
    progress = 1 if decay_steps <= 1 else (step - warmup - 1) / (decay_steps - 1)
    floor = peak * schedule["minLrRatio"]
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * progress))


def tokenizer_for(store, config, prefix, train, run):
    """The configured vocab.txt, the one this run trained before (resume), or one trained on the training reports (rank 0)."""
    length = config["textEncoder"]["maxLength"]
    try:
        if config["textEncoder"].get("vocab"):
            key = key_of(store, config["textEncoder"]["vocab"])
            if store.stat(key) is None:
                raise ConfigError("text_encoder.vocab", f"{config['textEncoder']['vocab']} not found")
            return WordPiece.from_vocab_txt(store.get_bytes(key).decode("utf-8"), length)
        saved = f"{prefix}/{RUN_FILES['vocab']}"
        if run.leader and store.stat(saved) is None:
            trained = WordPiece.train((r["report"] for r in train), config["textEncoder"]["vocabSize"], length)
            store.put(saved, trained.vocab_txt(), "text/plain")
        run.barrier()
        return WordPiece.from_vocab_txt(store.get_bytes(saved).decode("utf-8"), length)
    except WordPieceError as error:
        raise ConfigError("text_encoder.vocab" if config["textEncoder"].get("vocab") else "text_encoder.vocab_size", str(error)) from None


def apply_initial_weights(store, model, config):
    """Initial weights by name, as is or under the encoder's prefix (torchvision / Hugging Face exports load directly)."""
    state = model.state_dict()
    for field, scope in SCOPES.items():
        section = "imageEncoder" if scope == "image_encoder" else "textEncoder"
        uri = config[section].get("init")
        if not uri:
            continue
        key = key_of(store, uri)
        if store.stat(key) is None:
            raise ConfigError(field, f"{uri} not found")
        try:
            weights = checkpoint.read_weights(store.get_bytes(key))
        except Exception as error:  # noqa: BLE001 - any parse failure names the field
            raise ConfigError(field, f"neither safetensors nor ONNX: {type(error).__name__}") from None
        matched = 0
        for name, tensor in weights.items():
            target = name if name in state else f"{scope}.{name}"
            if target not in state or not target.startswith(scope + "."):
                continue
            if tuple(state[target].shape) != tuple(tensor.shape) or state[target].dtype != tensor.dtype:
                raise ConfigError(field, f"{name} is {tensor.dtype}{list(tensor.shape)} but the model's {target} is {state[target].dtype}{list(state[target].shape)}")
            state[target] = tensor
            matched += 1
        if matched == 0:
            raise ConfigError(field, f"no parameter of {uri} matches the {scope} by name")
    model.load_state_dict(state)


def optimizer_of(model, config):
    o = config["optimizer"]
    if o["name"] == "sgd":
        return torch.optim.SGD(model.parameters(), lr=o["learningRate"], momentum=o["momentum"], weight_decay=o["weightDecay"])
    return torch.optim.AdamW(model.parameters(), lr=o["learningRate"], betas=(o["beta1"], o["beta2"]), eps=1e-8, weight_decay=o["weightDecay"])


@torch.no_grad()
def held_out_retrieval(model, loader, validation, tokens, device):
    """Image->text top-1 on the held-out pairs, in evaluation mode: a hit is the image's report or a word-for-word copy of it."""
    model.eval()
    images, texts, reports = [], [], []
    for record in validation:
        try:
            pixels = loader.center(record["imageKey"])
        except Exception:  # noqa: BLE001 - the held-out set just shrinks, as in libs/vlp
            continue
        ids, mask = tokens[record["index"]]
        out = model(pixels[None, None].to(device), torch.tensor([ids], device=device), torch.tensor([mask], device=device))
        images.append(nn.functional.normalize(out["image"], dim=-1))
        texts.append(nn.functional.normalize(out["text"], dim=-1))
        reports.append(tuple(ids))
    model.train()
    n = len(images)
    if n < 2:
        return None
    best = (torch.cat(images) @ torch.cat(texts).t()).argmax(1).tolist()
    hits = sum(reports[best[i]] == reports[i] for i in range(n))
    chance = sum(reports.count(r) for r in reports) / n / n
    return {"top1": hits / n, "chance": chance, "pairs": n}


class CenterImages:
    """Validation images: decoded and centre-cropped as the loader does for training without augmentation."""

    def __init__(self, loader):
        self.loader = loader

    def center(self, key):
        from .data import center_crop

        pixels = center_crop(self.loader._decoded(key), self.loader.size)
        return (torch.from_numpy(pixels.copy()) - 0.5) / 0.5


def save_checkpoint(store, prefix, model, optimizer, step, position, skipped, previous):
    """The checkpoint, then the pointer to it (each published atomically), then the previous one removed."""
    key = f"{prefix}/checkpoints/step-{step:08d}.safetensors"
    metadata = {"step": step, "epoch": position["epoch"], "cursor": position["cursor"]}
    store.put(key, checkpoint.encode(checkpoint.training_state(model, optimizer), metadata), "application/octet-stream")
    latest = {"key": key, "step": step, "position": position, "skippedRecords": skipped}
    store.put(f"{prefix}/{RUN_FILES['latest']}", json.dumps(latest), "application/json")
    if previous and previous["key"] != key:
        store.delete(previous["key"])
    return latest


def train(spec):
    config, prefix = spec["config"], spec["prefix"].rstrip("/")
    check_runnable(config)
    run = Run(config)
    if run.world > 1 and config["batchSize"] % run.world:
        raise ConfigError("batch_size", f"must be a multiple of the {run.world} ranks (each trains on an equal shard)")
    torch.manual_seed(config["seed"])
    store = open_store(os.environ.get("MEDSYN_STORE", "file://./.medsyn"))
    run.emit("phase", phase="reading manifests")
    records, skipped, inputs = load_pair_manifests(store, config["data"]["realPairs"], config["data"]["syntheticPairs"])
    manifest_skips = len(skipped)
    if config["data"].get("retrievalPairs"):
        validation, _, held_inputs = load_retrieval_pairs(store, config["data"]["retrievalPairs"], len(records))
        inputs += held_inputs
        train_records = without_held_out(records, validation)
    else:
        train_records, validation = split_pairs(records, config["data"]["validationFraction"], config["seed"])
    tokenizer = tokenizer_for(store, config, prefix, train_records, run)
    kept, tokens = tokenize_records(tokenizer, train_records, skipped)
    validation, validation_tokens = tokenize_records(tokenizer, validation, [])
    # [CLS] is not a word; [SEP] is the report's last one, as in GLoRIA's and MGCA's code (and libs/vlp).
    special = [tokenizer.ids["[CLS]"]]
    loader = PairBatches(store, kept, tokens, config, special, run.rank, run.world, run.merge)
    steps_per_epoch = loader.steps_per_epoch()
    if steps_per_epoch == 0:
        raise ConfigError("batch_size", f"{config['batchSize']} is more than the {len(loader.order(0))} training pairs of an epoch")
    total = steps_per_epoch * config["epochs"]

    model = VlpModel(config, len(tokenizer.vocab))
    if run.device.type == "cuda" and run.world > 1:
        # One set of batch statistics over the global batch, as one process would compute them.
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    model.to(run.device)
    optimizer = optimizer_of(model, config)
    config_text, config_sha = config_digest(config)
    position, log, skipped_in_training, latest = {"epoch": 0, "cursor": 0}, [], 0, None
    pointer = f"{prefix}/{RUN_FILES['latest']}"
    if store.stat(pointer):
        latest = json.loads(store.get_bytes(pointer))
        tensors, _ = checkpoint.decode(store.get_bytes(latest["key"]))
        checkpoint.load_training_state(model, optimizer, tensors)
        position, skipped_in_training = latest["position"], latest["skippedRecords"]
        log = [entry for _, entry, _ in read_jsonl(store, f"{prefix}/{RUN_FILES['log']}") if entry and entry["step"] <= latest["step"]] \
            if store.stat(f"{prefix}/{RUN_FILES['log']}") else []
    else:
        apply_initial_weights(store, model, config)
        if run.leader:
            store.put(f"{prefix}/{RUN_FILES['config']}", config_text, "application/json")
    step = latest["step"] if latest else 0
    resumed_from = step
    objective = Objective(model, config, run.world)
    trainer = nn.parallel.DistributedDataParallel(objective, device_ids=[run.device.index] if run.device.type == "cuda" else None) \
        if run.world > 1 else objective
    model.train()

    stop = {"asked": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(asked=True))
    every = config["checkpointEverySteps"] or steps_per_epoch
    started, waited, samples = time.perf_counter(), 0.0, 0
    # PRETRAINER_PROGRESS_SECONDS: rank 0 also publishes its last progress event to the store that often.
    publish_every, published = float(os.environ.get("PRETRAINER_PROGRESS_SECONDS") or 0), 0.0
    run.emit("phase", phase=f"training ({run.world} rank{'s' if run.world > 1 else ''})")
    while step < total:
        wait_start = time.perf_counter()
        shard, _, position, newly_skipped = loader.load(position)
        loader.prefetch(position)
        shard = {k: v.to(run.device, non_blocking=True) for k, v in shard.items()}
        wait = time.perf_counter() - wait_start
        waited += wait
        skipped_in_training += len(newly_skipped)
        skipped.extend(newly_skipped)
        lr = learning_rate_at(step + 1, total, config["optimizer"]["learningRate"], config["schedule"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        compute_start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        loss, parts = trainer(shard["pixel_values"], shard["input_ids"], shard["attention_mask"], shard["word_mask"])
        loss.backward()
        limit = config["optimizer"]["maxGradNorm"]
        grad_norm = nn.utils.clip_grad_norm_(model.parameters(), limit if limit > 0 else float("inf")).item()
        optimizer.step()
        loss_value = loss.item()
        if run.device.type == "cuda":
            torch.cuda.synchronize(run.device)
        step_seconds = time.perf_counter() - compute_start
        if not math.isfinite(loss_value):
            raise ConfigError("optimizer.learning_rate", f"loss became {loss_value} at step {step + 1}; lower optimizer.learning_rate")
        step += 1
        samples += config["batchSize"]
        elapsed = time.perf_counter() - started
        part_values = {k: v.item() for k, v in parts.items()}
        log.append({"step": step, "epoch": position["epoch"], "loss": loss_value, "parts": part_values, "lr": lr, "grad_norm": grad_norm,
                    "samples_per_s": config["batchSize"] / (step_seconds + wait), "step_s": step_seconds, "data_wait_s": wait})
        rate = samples / elapsed
        progress = dict(step=step, totalSteps=total, epoch=min(config["epochs"], (step - 1) // steps_per_epoch + 1), epochs=config["epochs"],
                        loss=loss_value, parts=part_values, learningRate=lr, samplesPerSecond=rate, stepSeconds=step_seconds,
                        etaSeconds=(total - step) * config["batchSize"] / rate, dataWaitFraction=waited / elapsed,
                        skippedRecords=skipped_in_training + manifest_skips)
        run.emit("progress", **progress)
        if publish_every and run.leader and (time.monotonic() - published >= publish_every or step == total):
            # For a front that cannot read this process's stdout (the kubernetes launcher).
            store.put(f"{prefix}/{RUN_FILES['progress']}", json.dumps({"event": "progress", **progress, "batchSize": config["batchSize"]}), "application/json")
            published = time.monotonic()
        stopping = run.any(stop["asked"])
        if step % every == 0 or step == total or stopping:
            if run.leader:
                # The log first: a kill between the two leaves entries past the checkpoint, which a resume drops.
                put_jsonl(store, f"{prefix}/{RUN_FILES['log']}", log)
                latest = save_checkpoint(store, prefix, model, optimizer, step, position, skipped_in_training, latest)
            run.barrier()
        if stopping:
            run.emit("phase", phase=f"stopped at step {step}; a checkpoint was written")
            return STOPPED_EXIT
    if run.leader:
        finish(store, prefix, config, model, optimizer, tokenizer, inputs, config_text, config_sha, log, latest, step, position,
               skipped_in_training, skipped, samples, waited, started, resumed_from, loader, validation, validation_tokens, run)
    run.barrier()
    return 0


def finish(store, prefix, config, model, optimizer, tokenizer, inputs, config_text, config_sha, log, latest, step, position,
           skipped_in_training, skipped, samples, waited, started, resumed_from, loader, validation, validation_tokens, run):
    """Rank 0: last checkpoint and log, the encoder bundle, held-out retrieval, result.json."""
    if not latest or latest["step"] != step:
        latest = save_checkpoint(store, prefix, model, optimizer, step, position, skipped_in_training, latest)
    log_ref = put_jsonl(store, f"{prefix}/{RUN_FILES['log']}", log)
    config_ref = store.stat(f"{prefix}/{RUN_FILES['config']}") or store.put(f"{prefix}/{RUN_FILES['config']}", config_text, "application/json")
    run.emit("phase", phase="exporting the encoder bundle")
    retrieval = held_out_retrieval(model, CenterImages(loader), validation, validation_tokens, run.device) if len(validation) >= 2 else None
    code_version = os.environ.get("MEDSYN_CODE_VERSION", "unknown")
    lineage = {"inputs": inputs, "config_sha256": config_sha, "code_version": code_version}
    bundle_prefix = f"{prefix}/{RUN_FILES['bundle']}"
    refs = bundle.write_bundle(store, bundle_prefix, bundle.export_bundle(model, config, tokenizer.vocab_txt(), lineage))
    reasons = {}
    for s in skipped:
        reason = "image failed to decode" if s["reason"].startswith("image failed to decode") else s["reason"]
        reasons[reason] = reasons.get(reason, 0) + 1
    elapsed = time.perf_counter() - started
    result = {
        "prefix": prefix, "bundlePrefix": bundle_prefix,
        "refs": {"imageEncoder": refs["image_encoder.onnx"], "textEncoder": refs["text_encoder.onnx"], "tokenizer": refs["tokenizer/vocab.txt"],
                 "encoderManifest": refs["encoder.json"], "config": config_ref, "trainingLog": log_ref, "checkpoint": store.stat(latest["key"])},
        "lineage": {"inputs": inputs, "configSha256": config_sha, "codeVersion": code_version},
        "steps": step, "finalLoss": log[-1]["loss"] if log else float("nan"),
        **({"retrieval": retrieval} if retrieval else {}),
        "skippedRecords": sum(reasons.values()), "skippedReasons": reasons,
        "samplesPerSecond": samples / max(elapsed, 1e-9), "dataWaitFraction": waited / max(elapsed, 1e-9), "resumedFromStep": resumed_from,
        "ranks": run.world, "device": run.device.type,
    }
    store.put(f"{prefix}/{RUN_FILES['result']}", json.dumps(result, indent=2), "application/json")
    run.emit("done", steps=step, finalLoss=result["finalLoss"])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    given = parser.add_mutually_exclusive_group(required=True)
    given.add_argument("--spec", help="JSON file: {config (parsed, as config.json), prefix} (what the service writes)")
    given.add_argument("--config", help="a configuration as YAML or JSON, in the proto's snake_case names (needs --prefix)")
    parser.add_argument("--prefix", help="store prefix of the run (with --config)")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads per rank (0: torch's default)")
    args = parser.parse_args(argv)
    if args.config and not args.prefix:
        parser.error("--config needs --prefix")
    if args.threads:
        torch.set_num_threads(args.threads)
    leader = os.environ.get("RANK", "0") == "0"
    try:
        if args.spec:
            with open(args.spec) as f:
                spec = json.load(f)
        else:
            import yaml

            with open(args.config) as f:
                spec = {"config": parse_pretraining_config(yaml.safe_load(f)), "prefix": args.prefix}
        code = train(spec)
    except ConfigError as error:
        # A configuration that cannot run: the job fails INVALID_ARGUMENT naming the field.
        if leader:
            print(json.dumps({"event": "error", "code": "INVALID_ARGUMENT", "field": f"config.{error.field}", "message": str(error)}), flush=True)
        code = 2
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    sys.exit(code)


if __name__ == "__main__":
    main()
