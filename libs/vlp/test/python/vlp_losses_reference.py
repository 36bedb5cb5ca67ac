"""PyTorch 1.13 references of the pre-training losses, transcribed from the papers and their
authors' code, one report at a time where the papers loop (no masks, only each report's words).

  vlp_losses_reference.py REQUEST_JSON  ->  JSON {"loss": x, "parts": {...}, "grads": {name: flat list}}

request: {"method": "convirt" | "gloria" | "mgca", "inputs": {name: {"dims": [...], "data": [...]}},
          "word_mask": {...} (gloria, mgca), "options": {...}}
Gradients are d loss / d each float input in "inputs".
"""
import json
import sys

import torch
import torch.nn.functional as F

torch.set_default_dtype(torch.float64)


def convirt(x, opt):
    # Zhang et al. 2020, eq. 2-4.
    tau, lam = opt.get("temperature", 0.1), opt.get("imageToTextWeight", 0.75)
    v, u = F.normalize(x["image"], dim=1), F.normalize(x["text"], dim=1)
    sim = v @ u.t() / tau
    labels = torch.arange(len(v))
    l_vu = F.cross_entropy(sim, labels)
    l_uv = F.cross_entropy(sim.t(), labels)
    return lam * l_vu + (1 - lam) * l_uv, {"image_to_text": l_vu, "text_to_image": l_uv}


def gloria_cosine(x1, x2, eps=1e-8):
    # GLoRIA's loss utils: w12 / (||x1|| ||x2||).clamp(min=eps) along dim 1.
    return (x1 * x2).sum(1) / (x1.norm(dim=1) * x2.norm(dim=1)).clamp(min=eps)


def gloria_attention(query, context, temp1):
    # GLoRIA attention_fn: query [B, D, T], context [B, D, H*W].
    batch, query_len = query.size(0), query.size(2)
    source_len = context.size(2)
    attn = torch.bmm(context.transpose(1, 2), query)  # [B, R, T]
    attn = torch.softmax(attn.reshape(batch * source_len, query_len), dim=-1)  # over words
    attn = attn.reshape(batch, source_len, query_len).transpose(1, 2).reshape(batch * query_len, source_len)
    attn = torch.softmax(attn * temp1, dim=-1)  # over regions
    attn = attn.reshape(batch, query_len, source_len)
    return torch.bmm(context, attn.transpose(1, 2))  # [B, D, T]


def gloria(x, mask, opt):
    # Huang et al. 2021: global loss (eq. 7-8) and local loss (eq. 3-6), GLoRIA's code structure.
    t1, t2, t3 = opt.get("temperature1", 4.0), opt.get("temperature2", 5.0), opt.get("temperature3", 10.0)
    img, txt = x["image"], x["text"]
    batch = img.size(0)
    labels = torch.arange(batch)
    scores = (img @ txt.t()) / (img.norm(dim=1, keepdim=True) @ txt.norm(dim=1, keepdim=True).t()).clamp(min=1e-8) * t3
    global_loss = F.cross_entropy(scores, labels) + F.cross_entropy(scores.t(), labels)

    context = x["regions"].transpose(1, 2)  # [B, D, R]
    similarities = []
    for i in range(batch):
        idx = mask[i].nonzero().flatten()
        word = x["words"][i, idx].t().unsqueeze(0).repeat(batch, 1, 1)  # [B, D, T_i]
        weighted = gloria_attention(word, context, t1)
        n = len(idx)
        row = gloria_cosine(word.transpose(1, 2).reshape(batch * n, -1), weighted.transpose(1, 2).reshape(batch * n, -1))
        row = torch.exp(row.reshape(batch, n) * t2).sum(dim=1, keepdim=True)
        similarities.append(torch.log(row))
    sim = torch.cat(similarities, 1) * t3  # [image j, text i]
    local_loss = F.cross_entropy(sim, labels) + F.cross_entropy(sim.t(), labels)
    loss = opt.get("globalWeight", 1.0) * global_loss + opt.get("localWeight", 1.0) * local_loss
    return loss, {"global": global_loss, "local": local_loss}


def sinkhorn(scores, eps, iterations):
    # MGCA / SwAV sinkhorn, under no_grad.
    with torch.no_grad():
        q = torch.exp(scores / eps).t()
        q = q / q.sum()
        k, b = q.shape
        r, c = torch.ones(k) / k, torch.ones(b) / b
        for _ in range(iterations):
            q = q * (r / q.sum(dim=1)).unsqueeze(1)
            q = q * (c / q.sum(dim=0)).unsqueeze(0)
        return (q / q.sum(dim=0, keepdim=True)).t()


def align(queries, keys, weights, tau):
    # MGCA token-level alignment for one report: queries [Q, D], keys [K, D], weights [Q].
    attended = F.normalize(torch.softmax(queries @ keys.t() / tau, dim=-1) @ keys, dim=-1)
    sim = queries @ attended.t() / tau
    targets = torch.arange(len(queries))
    rows = (F.cross_entropy(sim, targets, reduction="none") * weights).sum()
    cols = (F.cross_entropy(sim.t(), targets, reduction="none") * weights).sum()
    return rows, cols


def mgca(x, mask, opt):
    # Wang et al. 2022, after MGCA's mgca_module.py (ResNet branch: uniform patch weights).
    tau_i, tau = opt.get("temperature", 0.07), opt.get("localTemperature", 0.1)
    img, txt = F.normalize(x["image"], dim=-1), F.normalize(x["text"], dim=-1)
    patches, words = F.normalize(x["patches"], dim=-1), F.normalize(x["words"], dim=-1)
    batch = img.size(0)
    labels = torch.arange(batch)
    scores = img @ txt.t() / tau_i
    instance = F.cross_entropy(scores, labels) + F.cross_entropy(scores.t(), labels)

    word_rows = word_cols = patch_rows = patch_cols = 0
    for b in range(batch):
        idx = mask[b].nonzero().flatten()
        w = words[b, idx]
        r, c = align(w, patches[b], torch.ones(len(idx)) / len(idx), tau)
        word_rows, word_cols = word_rows + r, word_cols + c
        r, c = align(patches[b], w, torch.ones(len(patches[b])) / len(patches[b]), tau)
        patch_rows, patch_cols = patch_rows + r, patch_cols + c
    token = (word_rows + word_cols) / batch / 2 + (patch_rows + patch_cols) / batch / 2

    protos = F.normalize(x["prototypes"], dim=1)
    img_out, txt_out = img @ protos.t(), txt @ protos.t()
    eps, iters, ptau = opt.get("sinkhornEpsilon", 0.05), opt.get("sinkhornIterations", 3), opt.get("prototypeTemperature", 0.2)
    img_code, txt_code = sinkhorn(img_out, eps, iters), sinkhorn(txt_out, eps, iters)
    i2t = -torch.mean(torch.sum(img_code * torch.log(F.softmax(txt_out / ptau, dim=1)), dim=1))
    t2i = -torch.mean(torch.sum(txt_code * torch.log(F.softmax(img_out / ptau, dim=1)), dim=1))
    prototype = (i2t + t2i) / 2
    loss = opt.get("instanceWeight", 1.0) * instance + opt.get("tokenWeight", 1.0) * token + opt.get("prototypeWeight", 1.0) * prototype
    return loss, {"instance": instance, "token": token, "prototype": prototype}


def main():
    request = json.load(open(sys.argv[1]))
    tensor = lambda t: torch.tensor(t["data"], dtype=torch.float64).reshape(t["dims"])
    inputs = {name: tensor(t).requires_grad_() for name, t in request["inputs"].items()}
    mask = tensor(request["word_mask"]) if "word_mask" in request else None
    method, options = request["method"], request.get("options", {})
    if method == "convirt":
        loss, parts = convirt(inputs, options)
    elif method == "gloria":
        loss, parts = gloria(inputs, mask, options)
    else:
        loss, parts = mgca(inputs, mask, options)
    loss.backward()
    json.dump({
        "loss": loss.item(),
        "parts": {k: float(v) for k, v in parts.items()},
        "grads": {name: t.grad.flatten().tolist() for name, t in inputs.items()},
    }, sys.stdout)


main()
