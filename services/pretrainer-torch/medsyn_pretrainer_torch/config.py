"""A pre-training job's configuration, read and checked exactly as libs/vlp/src/config.ts reads it:
the same fields, defaults, bounds and messages, each error naming its snake_case field. The
parsed form is libs/vlp's camelCase PretrainingConfig (what config.json holds), so its digest is
the TypeScript pretrainer's for the same request.
"""
import hashlib
import json
import math
import re
from decimal import Decimal

METHODS = ("convirt", "gloria", "mgca")
ARCHITECTURES = ("resnet18", "resnet34", "resnet50", "resnet101", "vit_tiny", "vit_small", "vit_base_16")

# Upper bounds no real run reaches on one GPU: a typo or a hostile request is INVALID_ARGUMENT, not an allocation.
LIMITS = {
    "image_size": 1024, "width": 4096, "layers": 48, "hidden_size": 8192, "heads": 128, "vocab_size": 1_000_000,
    "batch_size": 4096, "epochs": 10_000, "steps": 10_000_000, "embedding_size": 8192,
}
MAX_SAFE_INTEGER = 2**53 - 1

SECTIONS = {
    "": ["method", "imageEncoder", "textEncoder", "data", "batchSize", "epochs", "optimizer", "schedule", "seed",
         "checkpointEverySteps", "embeddingSize", "temperature", "methodOptions", "gradientAccumulation", "executionProvider"],
    "imageEncoder": ["architecture", "imageSize", "width", "init"],
    "textEncoder": ["layers", "hiddenSize", "heads", "maxLength", "vocab", "vocabSize", "init"],
    "data": ["realPairs", "syntheticPairs", "syntheticRatio", "validationFraction", "disableAugmentation", "retrievalPairs"],
    "optimizer": ["name", "learningRate", "weightDecay", "beta1", "beta2", "momentum", "maxGradNorm"],
    "schedule": ["warmupSteps", "decay", "minLrRatio"],
}

# ViT sizes (torchvision / DeiT), as libs/model-zoo VIT_PRESETS.
VIT_PRESETS = {
    "vit_tiny": {"patchSize": 16, "layers": 12, "heads": 3, "hidden": 192},
    "vit_small": {"patchSize": 16, "layers": 12, "heads": 6, "hidden": 384},
    "vit_base_16": {"patchSize": 16, "layers": 12, "heads": 12, "hidden": 768},
}


class ConfigError(Exception):
    """A configuration that cannot run; `field` is its snake_case path (`data.real_pairs[0]`)."""

    def __init__(self, field, problem):
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def snake(s):
    return re.sub(r"[A-Z]", lambda m: "_" + m.group(0).lower(), s)


def camel(s):
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), s)


def js_number(v):
    """A number as JavaScript writes it (Number.prototype.toString): 1 not 1.0, 1e-7 not 1e-07, 0.00001 not 1e-05."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise TypeError(v)
    if isinstance(v, int) or v == 0:
        return str(int(v))
    # The shortest round-trip digits (Python's repr and JavaScript agree on them), placed JavaScript's way.
    sign, digits, exponent = Decimal(repr(abs(v))).normalize().as_tuple()
    s = "".join(map(str, digits))
    k, n = len(s), len(s) + exponent
    out = (
        s + "0" * (n - k) if k <= n <= 21
        else s[:n] + "." + s[n:] if 0 < n <= 21
        else "0." + "0" * -n + s if -6 < n <= 0
        else s[0] + ("." + s[1:] if k > 1 else "") + "e" + ("+" if n - 1 > 0 else "-") + str(abs(n - 1))
    )
    return ("-" if v < 0 else "") + out


def js_json(value, indent=None, sort_keys=False, _level=0):
    """JSON.stringify(value, null, indent) for plain data (dicts keep their order)."""
    pad = "" if indent is None else "\n" + " " * (indent * (_level + 1))
    end = "" if indent is None else "\n" + " " * (indent * _level)
    colon = ":" if indent is None else ": "
    if isinstance(value, dict):
        keys = sorted(value) if sort_keys else list(value)
        if not keys:
            return "{}"
        items = [json.dumps(k, ensure_ascii=False) + colon + js_json(value[k], indent, sort_keys, _level + 1) for k in keys]
        return "{" + pad + ("," + pad).join(items) + end + "}"
    if isinstance(value, (list, tuple)):
        if not value:
            return "[]"
        return "[" + pad + ("," + pad).join(js_json(v, indent, sort_keys, _level + 1) for v in value) + end + "]"
    if value is None or isinstance(value, (bool, str)):
        return json.dumps(value, ensure_ascii=False)
    return js_number(value)


def _is_mapping(v):
    return isinstance(v, dict)


def _section(value, path):
    if value is None:
        return {}
    if not _is_mapping(value):
        raise ConfigError(path or "config", "must be a mapping")
    known = SECTIONS.get(camel(path), [])
    out = {}
    for key, v in value.items():
        name = camel(key)
        if name not in known:
            raise ConfigError(f"{path}.{snake(key)}" if path else snake(key), "unknown setting")
        out[name] = v
    return out


def _show(v):
    return js_json(v) if isinstance(v, (dict, list, str, bool)) or v is None else js_number(v)


def _number(v, field, fallback, integer=False, lo=None, hi=None, lo_exclusive=False, hi_exclusive=False):
    if v is None:
        return fallback
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ConfigError(field, f"must be a number, got {_show(v)}")
    if integer and not float(v).is_integer():
        raise ConfigError(field, f"must be an integer, got {js_number(v)}")
    if lo is not None and (v <= lo if lo_exclusive else v < lo):
        raise ConfigError(field, f"must be {'>' if lo_exclusive else '>='} {js_number(lo)}, got {js_number(v)}")
    if hi is not None and (v >= hi if hi_exclusive else v > hi):
        raise ConfigError(field, f"must be {'<' if hi_exclusive else '<='} {js_number(hi)}, got {js_number(v)}")
    return int(v) if integer else v


def _text(v, field):
    if v is None or v == "":
        return None
    if not isinstance(v, str):
        raise ConfigError(field, f"must be a string, got {_show(v)}")
    return v


def _one_of(v, field, allowed, fallback):
    if v is None or v == "":
        return fallback
    s = re.sub(r"^method_", "", (js_number(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else str(v)).lower())
    if s not in allowed:
        raise ConfigError(field, f"must be one of {', '.join(allowed)}, got {_show(v)}")
    return s


def _uris(v, field):
    if v is None:
        return []
    out = []
    for i, item in enumerate(v if isinstance(v, list) else [v]):
        uri = item.get("uri") if _is_mapping(item) else item
        if not isinstance(uri, str) or uri == "":
            raise ConfigError(f"{field}[{i}]", "must be a store URI or key")
        out.append(uri)
    return out


def _ref(v, field):
    return _text(v.get("uri"), f"{field}.uri") if _is_mapping(v) else _text(v, field)


def _drop_none(d):
    return {k: v for k, v in d.items() if v is not None}


def parse_pretraining_config(value):
    """Parsed YAML / JSON (snake_case or camelCase) -> the checked camelCase configuration; ConfigError naming the field."""
    top = _section(value, "")
    image = _section(top.get("imageEncoder"), "image_encoder")
    text = _section(top.get("textEncoder"), "text_encoder")
    data = _section(top.get("data"), "data")
    optimizer = _section(top.get("optimizer"), "optimizer")
    schedule = _section(top.get("schedule"), "schedule")
    method = top.get("method")
    if method is None or method in ("METHOD_UNSPECIFIED", 0):
        raise ConfigError("method", f"is required ({', '.join(METHODS)})")
    if isinstance(method, int) and not isinstance(method, bool) and 1 <= method <= len(METHODS):
        method = METHODS[method - 1]
    else:
        method = _one_of(method, "method", METHODS, "convirt")
    options = {}
    if top.get("methodOptions") is not None:
        if not _is_mapping(top["methodOptions"]):
            raise ConfigError("method_options", "must be a mapping of names to numbers")
        for k, v in top["methodOptions"].items():
            options[k] = _number(v, f"method_options.{k}", 0)
    L = LIMITS
    config = {
        "method": method,
        "imageEncoder": _drop_none({
            "architecture": _one_of(image.get("architecture"), "image_encoder.architecture", ARCHITECTURES, "resnet50"),
            "imageSize": _number(image.get("imageSize"), "image_encoder.image_size", 224, True, 16, L["image_size"]) or 224,
            "width": _number(image.get("width"), "image_encoder.width", 0, True, 0, L["width"]),
            "init": _ref(image.get("init"), "image_encoder.init"),
        }),
        "textEncoder": _drop_none({
            "layers": _number(text.get("layers"), "text_encoder.layers", 4, True, 1, L["layers"]),
            "hiddenSize": _number(text.get("hiddenSize"), "text_encoder.hidden_size", 256, True, 1, L["hidden_size"]),
            "heads": _number(text.get("heads"), "text_encoder.heads", 4, True, 1, L["heads"]),
            "maxLength": _number(text.get("maxLength"), "text_encoder.max_length", 128, True, 4, 512) or 128,
            "vocab": _ref(text.get("vocab"), "text_encoder.vocab"),
            "vocabSize": _number(text.get("vocabSize"), "text_encoder.vocab_size", 8000, True, 16, L["vocab_size"]) or 8000,
            "init": _ref(text.get("init"), "text_encoder.init"),
        }),
        "data": _drop_none({
            "realPairs": _uris(data.get("realPairs"), "data.real_pairs"),
            "syntheticPairs": _uris(data.get("syntheticPairs"), "data.synthetic_pairs"),
            "syntheticRatio": _number(data.get("syntheticRatio"), "data.synthetic_ratio", 0.5, lo=0, hi=1),
            "validationFraction": _number(data.get("validationFraction"), "data.validation_fraction", 0.1, lo=0, hi=0.5, hi_exclusive=True),
            # Scored for held-out retrieval instead of a validation_fraction of the pairs (libs/vlp's retrievalPairs).
            "retrievalPairs": _ref(data.get("retrievalPairs"), "data.retrieval_pairs"),
            "augment": not data.get("disableAugmentation"),
        }),
        # At least 2: contrastive losses need in-batch negatives.
        "batchSize": _number(top.get("batchSize"), "batch_size", 32, True, 2, L["batch_size"]),
        "epochs": _number(top.get("epochs"), "epochs", 1, True, 1, L["epochs"]),
        "optimizer": {
            "name": _one_of(optimizer.get("name"), "optimizer.name", ("adamw", "sgd"), "adamw"),
            "learningRate": _number(optimizer.get("learningRate"), "optimizer.learning_rate", 2e-4, lo=0, lo_exclusive=True),
            "weightDecay": _number(optimizer.get("weightDecay"), "optimizer.weight_decay", 0.05, lo=0),
            "beta1": _number(optimizer.get("beta1"), "optimizer.beta1", 0.9, lo=0, hi=1, hi_exclusive=True) or 0.9,
            "beta2": _number(optimizer.get("beta2"), "optimizer.beta2", 0.999, lo=0, hi=1, hi_exclusive=True) or 0.999,
            "momentum": _number(optimizer.get("momentum"), "optimizer.momentum", 0.9, lo=0, hi=1, hi_exclusive=True),
            "maxGradNorm": _number(optimizer.get("maxGradNorm"), "optimizer.max_grad_norm", 0, lo=0),
        },
        "schedule": {
            "warmupSteps": _number(schedule.get("warmupSteps"), "schedule.warmup_steps", 0, True, 0, L["steps"]),
            "decay": _one_of(schedule.get("decay"), "schedule.decay", ("cosine", "constant"), "cosine"),
            "minLrRatio": _number(schedule.get("minLrRatio"), "schedule.min_lr_ratio", 0, lo=0, hi=1),
        },
        "seed": _number(top.get("seed"), "seed", 0, True, 0, MAX_SAFE_INTEGER),
        "checkpointEverySteps": _number(top.get("checkpointEverySteps"), "checkpoint_every_steps", 0, True, 0, L["steps"]),
        "embeddingSize": _number(top.get("embeddingSize"), "embedding_size", 128, True, 1, L["embedding_size"]) or 128,
        "temperature": _number(top.get("temperature"), "temperature", 0, lo=0),
        "methodOptions": options,
        "gradientAccumulation": _number(top.get("gradientAccumulation"), "gradient_accumulation", 1, True, 0, L["batch_size"]) or 1,
        "executionProvider": _one_of(top.get("executionProvider"), "execution_provider", ("cpu", "cuda", "webgpu"), "cpu"),
    }
    if not config["data"]["realPairs"] and not config["data"]["syntheticPairs"]:
        raise ConfigError("data.real_pairs", "no pair manifest given (data.real_pairs or data.synthetic_pairs)")
    t = config["textEncoder"]
    if t["hiddenSize"] % t["heads"]:
        raise ConfigError("text_encoder.hidden_size", f"must be divisible by text_encoder.heads ({t['heads']})")
    if config["batchSize"] % config["gradientAccumulation"]:
        raise ConfigError("gradient_accumulation", f"must divide batch_size ({config['batchSize']})")
    if config["gradientAccumulation"] > 1:
        raise ConfigError("gradient_accumulation", "contrastive losses need the whole batch in one graph (in-batch negatives); only 1 is supported")
    return config


# method_options names of each method (libs/vlp/src/model.ts METHOD_OPTIONS).
METHOD_OPTIONS = {
    "convirt": ["image_to_text_weight"],
    "gloria": ["temperature1", "temperature2", "temperature3", "global_weight", "local_weight"],
    "mgca": ["local_temperature", "prototype_temperature", "sinkhorn_epsilon", "sinkhorn_iterations", "instance_weight",
             "token_weight", "prototype_weight", "prototypes"],
}


def check_runnable(config):
    """What libs/vlp checks when the job builds its model (encoderSpecOf), checked here when the request
    arrives, plus what only onnxruntime has (its WebGPU provider)."""
    if config["executionProvider"] == "webgpu":
        raise ConfigError("execution_provider", "webgpu is an onnxruntime provider; this implementation runs on cpu or cuda")
    known = METHOD_OPTIONS[config["method"]]
    for name in config["methodOptions"]:
        if name not in known:
            raise ConfigError(f"method_options.{name}", f"is not an option of {config['method']} (it has: {', '.join(known)})")
    count = config["methodOptions"].get("prototypes", 500)
    if config["method"] == "mgca" and (not float(count).is_integer() or count < 2):
        raise ConfigError("method_options.prototypes", f"must be an integer >= 2, got {js_number(count)}")
    img = config["imageEncoder"]
    preset = VIT_PRESETS.get(img["architecture"])
    if preset is None:
        return
    if img["imageSize"] % preset["patchSize"]:
        raise ConfigError("image_encoder.image_size", f"must be a multiple of the ViT patch size {preset['patchSize']}")
    if (img["width"] or preset["hidden"]) % preset["heads"]:
        raise ConfigError("image_encoder.width", f"must be divisible by the ViT's {preset['heads']} heads")


def config_digest(config):
    """config.json's text and its sha256 (the lineage's config digest), as libs/vlp's configDigest writes them."""
    text = js_json(config, indent=2)
    return text, hashlib.sha256(text.encode("utf-8")).hexdigest()


def canonical_digest(value):
    """sha256 of the value's JSON with keys sorted, as libs/jobs' canonicalDigest."""
    return hashlib.sha256(js_json(value, sort_keys=True).encode("utf-8")).hexdigest()
