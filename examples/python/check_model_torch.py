#!/usr/bin/env python3
"""Check agora's model core against PyTorch autograd.

    AG_TORCH_DUMP_DIR=DIR build/tests/test_loss      # writes DIR/*
    /usr/bin/python3 check_model_torch.py DIR

test_loss (test_against_torch) writes a checkpoint of a small random model, a
batch with padding and PPO data, and what agora computed for it: logits,
values, the loss (CE + PPO clipped surrogate + clipped value loss - entropy
bonus + k3 KL) and the gradient slab. This script rebuilds the model described
in docs/checkpoint.md in PyTorch (float64), loads the weights with the
checkpoint reader (read_checkpoint.py), recomputes everything with autograd
and compares. Exit status 0 when every tensor matches.
"""
import math
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from read_checkpoint import read_checkpoint  # noqa: E402

TOL_OUT = 1e-5   # logits, values, loss: max abs error / max abs value
TOL_GRAD = 1e-4  # per tensor: ||agora - torch|| / ||torch||


def load(d, name, dtype):
    with open(os.path.join(d, name), "rb") as f:
        return torch.frombuffer(bytearray(f.read()), dtype=dtype)


def main():
    d = sys.argv[1]
    with open(os.path.join(d, "model.ckpt"), "rb") as f:
        data = f.read()
    cfg, _, table = read_checkpoint(data)
    params = {}
    for name, shape, offset, count in table:
        t = torch.frombuffer(bytearray(data[offset:offset + 4 * count]), dtype=torch.float32)
        params[name] = t.double().reshape(shape).requires_grad_(True)
    B, T = load(d, "dims.i32", torch.int32).tolist()
    tok = load(d, "tokens.i32", torch.int32).long().reshape(B, T)
    tgt = load(d, "targets.i32", torch.int32).long().reshape(B, T)
    f32 = {k: load(d, k + ".f32", torch.float32).double().reshape(B, T)
           for k in ("mask", "advantages", "old_logprobs", "returns", "old_values", "ref_logprobs")}
    ce_c, pg_c, clip, vf_c, vf_clip, ent_c, kl_c, kl_est = load(d, "coefs.f32", torch.float32).tolist()

    D, H, L = cfg["d_model"], cfg["n_heads"], cfg["n_layers"]
    hs = D // H
    p = params
    x = p["wte"][tok] + p["wpe"][:T]
    causal = torch.ones(T, T, dtype=torch.bool).tril()
    for l in range(L):
        q = f"layers.{l}."
        h = F.layer_norm(x, (D,), p[q + "ln1.weight"], p[q + "ln1.bias"], 1e-5)
        qkv = h @ p[q + "attn.qkv.weight"].T + p[q + "attn.qkv.bias"]
        qq, kk, vv = (z.reshape(B, T, H, hs).transpose(1, 2) for z in qkv.split(D, dim=2))
        att = (qq @ kk.transpose(-1, -2)) / math.sqrt(hs)
        att = att.masked_fill(~causal, float("-inf")).softmax(-1)
        a = (att @ vv).transpose(1, 2).reshape(B, T, D)
        x = x + a @ p[q + "attn.proj.weight"].T + p[q + "attn.proj.bias"]
        h = F.layer_norm(x, (D,), p[q + "ln2.weight"], p[q + "ln2.bias"], 1e-5)
        h = F.gelu(h @ p[q + "mlp.fc.weight"].T + p[q + "mlp.fc.bias"], approximate="tanh")
        x = x + h @ p[q + "mlp.proj.weight"].T + p[q + "mlp.proj.bias"]
    h = F.layer_norm(x, (D,), p["lnf.weight"], p["lnf.bias"], 1e-5)
    logits = h @ p["head.weight"].T + p["head.bias"]
    values = (h @ p["value.weight"].T).squeeze(-1) + p["value.bias"]

    m = f32["mask"]
    logp = logits.log_softmax(-1)
    lp = logp.gather(-1, tgt.unsqueeze(-1)).squeeze(-1)
    ent = -(logp.exp() * logp).sum(-1)
    ratio = (lp - f32["old_logprobs"]).exp()
    adv = f32["advantages"]
    pg = -torch.min(ratio * adv, ratio.clamp(1 - clip, 1 + clip) * adv)
    ret, old_v = f32["returns"], f32["old_values"]
    v_clip = old_v + (values - old_v).clamp(-vf_clip, vf_clip)
    vl = 0.5 * torch.max((values - ret) ** 2, (v_clip - ret) ** 2)
    dref = f32["ref_logprobs"] - lp
    kl = dref.exp() - dref - 1 if int(kl_est) == 3 else -dref
    per_tok = ce_c * -lp + pg_c * pg + vf_c * vl - ent_c * ent + kl_c * kl
    loss = (per_tok * m).sum() / m.sum()
    loss.backward()

    ok = True

    def report(what, err, tol):
        nonlocal ok
        good = err <= tol
        ok &= good
        print(f"{what:<32} {err:.2e} {'ok' if good else 'MISMATCH'}")

    V = cfg["vocab"]
    ag_logits = load(d, "logits.f32", torch.float32).double().reshape(B, T, V)
    ag_values = load(d, "values.f32", torch.float32).double().reshape(B, T)
    ag_loss = load(d, "loss.f64", torch.float64).item()
    ag_grads = load(d, "grads.f32", torch.float32).double()
    report("logits", ((ag_logits - logits).abs().max() / logits.abs().max()).item(), TOL_OUT)
    report("values", ((ag_values - values).abs().max() / values.abs().max()).item(), TOL_OUT)
    report("loss", abs(ag_loss - loss.item()) / abs(loss.item()), TOL_OUT)
    for name, shape, offset, count in table:
        g = params[name].grad.reshape(-1)
        start = (offset - table[0][2]) // 4
        mine = ag_grads[start:start + count]
        report("grad " + name, ((mine - g).norm() / g.norm().clamp_min(1e-30)).item(), TOL_GRAD)
    print("agora matches PyTorch" if ok else "agora DIFFERS from PyTorch")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
