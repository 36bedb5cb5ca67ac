"""The pre-training objectives of libs/vlp/src/losses.ts, batched with masks as there (one formula
for every report length), over the embeddings VlpModel returns. Each returns (loss, parts)."""
import torch
import torch.nn.functional as F

# Bias that removes a masked entry from a softmax (exp underflows to exactly 0 in float32).
MASKED = -1e9

# method_options names -> loss keywords (libs/vlp/src/model.ts METHOD_OPTIONS).
OPTION_NAMES = {
    "convirt": {"image_to_text_weight": "image_to_text_weight"},
    "gloria": {"temperature1": "t1", "temperature2": "t2", "temperature3": "t3", "global_weight": "global_weight", "local_weight": "local_weight"},
    "mgca": {"local_temperature": "local_temperature", "prototype_temperature": "prototype_temperature", "sinkhorn_epsilon": "epsilon",
             "sinkhorn_iterations": "iterations", "instance_weight": "instance_weight", "token_weight": "token_weight",
             "prototype_weight": "prototype_weight"},
}


def diagonal_cross_entropy(logits, dim):
    """Mean cross-entropy of square logits whose targets are the diagonal; the softmax over `dim`."""
    return -torch.diagonal(logits.log_softmax(dim)).mean()


def retrieval_top1(similarities):
    """In-batch top-1 retrieval of square similarities (rows retrieve columns): a metric, no gradient."""
    with torch.no_grad():
        return (similarities.argmax(1) == torch.arange(len(similarities), device=similarities.device)).float().mean()


def cosine_matrix(a, b):
    return F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).t()


def convirt(x, temperature=0.1, image_to_text_weight=0.75):
    """ConVIRT (Zhang et al. 2020, eq. 2-4): L = mean λ l(v->u) + (1 - λ) l(u->v) over cosine / τ."""
    logits = cosine_matrix(x["image"], x["text"]) / temperature
    i2t, t2i = diagonal_cross_entropy(logits, 1), diagonal_cross_entropy(logits, 0)
    loss = image_to_text_weight * i2t + (1 - image_to_text_weight) * t2i
    return loss, {"image_to_text": i2t, "text_to_image": t2i, "retrieval_top1": retrieval_top1(logits)}


def gloria(x, word_mask, t1=4.0, t2=5.0, t3=10.0, global_weight=1.0, local_weight=1.0):
    """GLoRIA (Huang et al. 2021): global loss (eq. 7-8) plus the word-to-region local loss (eq. 3-6)
    for every (report i, image j) pair at once, with GLoRIA's attention_fn (softmax over the
    report's words, then over regions sharpened by τ1) and Z(i, j) = log Σ_t exp(τ2 cos(w_it, c_ijt))."""
    global_sim = cosine_matrix(x["image"], x["text"]) * t3  # [image j, text i]
    global_loss = diagonal_cross_entropy(global_sim, 1) + diagonal_cross_entropy(global_sim, 0)
    words = x["words"].unsqueeze(1)  # [B, 1, T, D]
    regions = x["regions"].unsqueeze(0)  # [1, B, R, D]
    scores = words @ regions.transpose(2, 3)  # [B, B, T, R]
    word_bias = ((1 - word_mask) * MASKED)[:, None, :, None]
    attention = ((scores + word_bias).softmax(2) * t1).softmax(3)
    context = attention @ regions  # [B, B, T, D]
    dot = (words * context).sum(3)
    cosine = dot / (words.norm(dim=3) * context.norm(dim=3)).clamp(min=1e-8)
    report_image = torch.log((torch.exp(cosine * t2) * word_mask[:, None, :]).sum(2))  # [text i, image j]
    local_sim = report_image.t() * t3
    local_loss = diagonal_cross_entropy(local_sim, 1) + diagonal_cross_entropy(local_sim, 0)
    loss = global_weight * global_loss + local_weight * local_loss
    return loss, {"global": global_loss, "local": local_loss, "retrieval_top1": retrieval_top1(global_sim)}


@torch.no_grad()
def sinkhorn(scores, epsilon, iterations):
    """Sinkhorn-Knopp (Cuturi 2013) as SwAV and MGCA run it: assignments [B, K], each row summing to 1."""
    b, k = scores.shape
    q = torch.exp(scores / epsilon).t()
    q = q / q.sum()
    for _ in range(int(iterations)):
        q = q * ((1 / k) / q.sum(1, keepdim=True))
        q = q * ((1 / b) / q.sum(0, keepdim=True))
    return (q / q.sum(0, keepdim=True)).t()


def token_alignment(queries, keys, key_bias, query_bias, weights, tau):
    """MGCA token-level alignment (Wang et al. 2022, eq. 4-6) in one direction: each query attends over
    the other modality's tokens; attended summaries are matched back to their queries (rows and columns)."""
    attended = queries @ keys.transpose(1, 2)
    if key_bias is not None:
        attended = attended + key_bias
    summary = F.normalize((attended / tau).softmax(2) @ keys, dim=-1)
    sim = queries @ summary.transpose(1, 2) / tau  # [B, Q, Q]
    if query_bias is not None:
        # Padding queries are neither matched nor used as negatives.
        sim = sim + query_bias + query_bias.transpose(1, 2)
    rows = torch.diagonal(sim.log_softmax(2), dim1=1, dim2=2)
    cols = torch.diagonal(sim.log_softmax(1), dim1=1, dim2=2)
    batch = sim.shape[0]
    weighted = lambda logp: -(logp * weights).sum() / batch  # noqa: E731
    return (weighted(rows) + weighted(cols)) / 2


def mgca(x, word_mask, prototypes, temperature=0.07, local_temperature=0.1, prototype_temperature=0.2, epsilon=0.05, iterations=3,
         instance_weight=1.0, token_weight=1.0, prototype_weight=1.0):
    """MGCA (Wang et al. 2022): instance-level contrast, token-level alignment both ways, and
    prototype (disease-level) alignment with each modality's Sinkhorn codes the other's target."""
    image, text = F.normalize(x["image"], dim=-1), F.normalize(x["text"], dim=-1)
    patches, words = F.normalize(x["regions"], dim=-1), F.normalize(x["words"], dim=-1)
    logits = image @ text.t() / temperature
    instance = diagonal_cross_entropy(logits, 1) + diagonal_cross_entropy(logits, 0)
    word_bias = (1 - word_mask) * MASKED
    word_weights = word_mask / word_mask.sum(1, keepdim=True)
    patch_weights = torch.full((1, patches.shape[1]), 1 / patches.shape[1], device=patches.device, dtype=patches.dtype)
    token = (token_alignment(words, patches, None, word_bias[:, :, None], word_weights, local_temperature)
             + token_alignment(patches, words, word_bias[:, None, :], None, patch_weights, local_temperature))
    protos = F.normalize(prototypes, dim=-1)
    image_scores, text_scores = image @ protos.t(), text @ protos.t()
    image_codes, text_codes = sinkhorn(image_scores, epsilon, iterations), sinkhorn(text_scores, epsilon, iterations)
    cross = lambda codes, scores: -(codes * (scores / prototype_temperature).log_softmax(1)).sum(1).mean()  # noqa: E731
    prototype = (cross(image_codes, text_scores) + cross(text_codes, image_scores)) / 2
    loss = instance_weight * instance + token_weight * token + prototype_weight * prototype
    return loss, {"instance": instance, "token": token, "prototype": prototype, "retrieval_top1": retrieval_top1(logits)}


def loss_options(config):
    """Keyword options of the method's loss from method_options and temperature (0: the paper's)."""
    method = config["method"]
    out = {OPTION_NAMES[method][k]: v for k, v in config["methodOptions"].items() if k in OPTION_NAMES[method]}
    if config["temperature"]:
        if method == "gloria":
            out["t3"] = 1 / config["temperature"]
        else:
            out["temperature"] = config["temperature"]
    return out


def vlp_loss(method, x, word_mask, prototypes=None, **options):
    if method == "convirt":
        return convirt(x, **options)
    if method == "gloria":
        return gloria(x, word_mask, **options)
    return mgca(x, word_mask, prototypes, **options)
