"""The PyTorch side of medsyn's training-engine comparisons (Debian python3-torch 1.13).

A case file (safetensors, written by a TypeScript test) holds the initial parameters under their
PyTorch names, the batches (`batch.<step>.<input>`), and metadata: the optimizer (JSON), the
learning rate and the number of steps. run() loads the parameters strictly into the model,
records the first step's loss and gradients, trains with torch.optim, and writes the losses
(metadata), gradients (`grad.<name>`) and final state (`final.<name>`).
"""
import json

import torch

from safetensors_io import load, save


def run(case_path, out_path, make_model, loss_of):
    tensors, meta = load(case_path)
    model = make_model(meta)
    state = {k: torch.from_numpy(v) for k, v in tensors.items() if not k.startswith("batch.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not unexpected, f"parameters torch does not have: {unexpected}"
    assert all(k.endswith("num_batches_tracked") for k in missing), f"parameters medsyn did not write: {missing}"
    model.train()
    opt = json.loads(meta["optimizer"])
    lr = float(meta["lr"])
    if opt["kind"] == "adamw":
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, betas=(opt["beta1"], opt["beta2"]), eps=opt["epsilon"], weight_decay=opt["weightDecay"])
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=opt["momentum"], weight_decay=opt["weightDecay"])
    out = {}
    losses = []
    for step in range(int(meta["steps"])):
        batch = {k.split(".", 2)[2]: torch.from_numpy(v) for k, v in tensors.items() if k.startswith(f"batch.{step}.")}
        optimizer.zero_grad()
        loss = loss_of(model, batch)
        loss.backward()
        if step == 0:
            for name, p in model.named_parameters():
                out[f"grad.{name}"] = p.grad.detach().numpy().copy()
        optimizer.step()
        losses.append(loss.item())
    for name, value in model.state_dict().items():
        if not name.endswith("num_batches_tracked"):
            out[f"final.{name}"] = value.detach().numpy()
    save(out_path, out, {"losses": json.dumps(losses)})
