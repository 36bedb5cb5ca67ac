"""numpy transcription of the published scheduler rules, in float64, written from diffusers'
scheduling_pndm.py, scheduling_ddim.py, scheduling_euler_ancestral_discrete.py and
scheduling_dpmsolver_multistep.py (diffusers 0.27: set_timesteps and step, PNDM with its
Runge-Kutta warm-up (step_prk) or skip_prk_steps (step_plms alone), DDIM eta=0, DPM-Solver++ order 2 midpoint with final_sigmas_type="zero").

stdin: {"kind", "config", "steps", "sample": [...], "noise": [[...], ...]}
The "model" is fake and fixed: output(x, t) = 0.3 x + 0.05 sin(t / 100 + j) for element j.
stdout: {"timesteps": [...], "sample": [...]} after the whole sampling loop.
"""
import json
import sys

import numpy as np


def model(x, t):
    return 0.3 * x + 0.05 * np.sin(t / 100.0 + np.arange(x.size))


def alphas_cumprod(c):
    n = c.get("num_train_timesteps", 1000)
    if c.get("beta_schedule", "linear") == "linear":
        betas = np.linspace(c.get("beta_start", 0.0001), c.get("beta_end", 0.02), n, dtype=np.float64)
    else:
        betas = np.linspace(c["beta_start"] ** 0.5, c["beta_end"] ** 0.5, n, dtype=np.float64) ** 2
    return np.cumprod(1.0 - betas)


def spacing_timesteps(c, steps, n):
    spacing = c.get("timestep_spacing", "leading")
    if spacing == "linspace":
        return np.linspace(0, n - 1, steps).round()[::-1].astype(np.int64)
    if spacing == "leading":
        return (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.int64) + c.get("steps_offset", 0)
    return np.round(np.arange(n, 0, -n / steps)).astype(np.int64) - 1


def pndm(c, steps, x, noise):
    ac = alphas_cumprod(c)
    n = len(ac)
    final = 1.0 if c.get("set_alpha_to_one", False) else ac[0]
    ratio = n // steps
    ts = spacing_timesteps(c, steps, n)[::-1]  # ascending like _timesteps
    if c.get("skip_prk_steps", False):
        prk = np.array([], dtype=np.int64)
        plms = np.concatenate([ts[:-1], ts[-2:-1], ts[-1:]])[::-1]
    else:
        points = np.array(ts[-4:]).repeat(2) + np.tile(np.array([0, ratio // 2]), 4)
        prk = points[:-1].repeat(2)[1:-1][::-1]
        plms = ts[:-3][::-1]
    ets, counter, cur, cur_out = [], 0, None, 0

    def prev_sample(sample, t, p, out):
        a_t = ac[t]
        a_p = ac[p] if p >= 0 else final
        b_t, b_p = 1 - a_t, 1 - a_p
        if c.get("prediction_type", "epsilon") == "v_prediction":
            out = a_t**0.5 * out + b_t**0.5 * sample
        coeff = (a_p / a_t) ** 0.5
        denom = a_t * b_p**0.5 + (a_t * b_t * a_p) ** 0.5
        return coeff * sample - (a_p - a_t) * out / denom

    for t in prk:  # step_prk
        out = model(x, t)
        p = t - (0 if counter % 2 else ratio // 2)
        start = prk[counter // 4 * 4]
        if counter % 4 == 0:
            cur_out = cur_out + out / 6
            ets.append(out)
            cur = x
        elif counter % 4 in (1, 2):
            cur_out = cur_out + out / 3
        else:
            out = cur_out + out / 6
            cur_out = 0
        x = prev_sample(cur, start, p, out)
        counter += 1

    for t in plms:  # step_plms
        out = model(x, t)
        p = t - ratio
        if counter != 1:
            ets = ets[-3:]
            ets.append(out)
        else:
            p = t
            t = t + ratio
        if len(ets) == 1 and counter == 0:
            cur = x
        elif len(ets) == 1 and counter == 1:
            out = (out + ets[-1]) / 2
            x = cur
            cur = None
        elif len(ets) == 2:
            out = (3 * ets[-1] - ets[-2]) / 2
        elif len(ets) == 3:
            out = (23 * ets[-1] - 16 * ets[-2] + 5 * ets[-3]) / 12
        else:
            out = (55 * ets[-1] - 59 * ets[-2] + 37 * ets[-3] - 9 * ets[-4]) / 24
        x = prev_sample(x, t, p, out)
        counter += 1
    return np.concatenate([prk, plms]), x


def ddim(c, steps, x, noise):
    ac = alphas_cumprod(c)
    n = len(ac)
    final = 1.0 if c.get("set_alpha_to_one", True) else ac[0]
    ts = spacing_timesteps(c, steps, n)
    for t in ts:
        out = model(x, t)
        p = t - n // steps
        a_t = ac[t]
        a_p = ac[p] if p >= 0 else final
        b_t = 1 - a_t
        if c.get("prediction_type", "epsilon") == "epsilon":
            x0 = (x - b_t**0.5 * out) / a_t**0.5
            eps = out
        else:
            x0 = a_t**0.5 * x - b_t**0.5 * out
            eps = a_t**0.5 * out + b_t**0.5 * x
        if c.get("clip_sample", False):
            r = c.get("clip_sample_range", 1.0)
            x0 = np.clip(x0, -r, r)
            eps = (x - a_t**0.5 * x0) / b_t**0.5
        x = a_p**0.5 * x0 + (1 - a_p) ** 0.5 * eps
    return ts, x


def euler_ancestral(c, steps, x, noise):
    ac = alphas_cumprod(c)
    n = len(ac)
    spacing = c.get("timestep_spacing", "leading")
    if spacing == "linspace":
        ts = np.linspace(0, n - 1, steps, dtype=np.float64)[::-1]
    elif spacing == "leading":
        ts = (np.arange(0, steps) * (n // steps)).round()[::-1].astype(np.float64) + c.get("steps_offset", 0)
    else:
        ts = np.arange(n, 0, -n / steps).round().astype(np.float64) - 1
    sig = np.array(((1 - ac) / ac) ** 0.5)
    sigmas = np.concatenate([np.interp(ts, np.arange(0, len(sig)), sig), [0.0]])
    x = x * (sigmas.max() if spacing in ["linspace", "trailing"] else (sigmas.max() ** 2 + 1) ** 0.5)
    for i, t in enumerate(ts):
        s = sigmas[i]
        out = model(x / ((s**2 + 1) ** 0.5), t)
        if c.get("prediction_type", "epsilon") == "epsilon":
            x0 = x - s * out
        else:
            x0 = out * (-s / (s**2 + 1) ** 0.5) + (x / (s**2 + 1))
        s_to = sigmas[i + 1]
        up = (s_to**2 * (s**2 - s_to**2) / s**2) ** 0.5
        down = (s_to**2 - up**2) ** 0.5
        x = x + (x - x0) / s * (down - s) + np.array(noise[i]) * up
    return ts, x


def dpm_pp_2m(c, steps, x, noise):
    ac = alphas_cumprod(c)
    n = len(ac)
    spacing = c.get("timestep_spacing", "leading")
    if spacing == "linspace":
        ts = np.linspace(0, n - 1, steps + 1).round()[::-1][:-1].astype(np.int64)
    elif spacing == "leading":
        ts = (np.arange(0, steps + 1) * (n // (steps + 1))).round()[::-1][:-1].astype(np.int64) + c.get("steps_offset", 0)
    else:
        ts = np.arange(n, 0, -n / steps).round().astype(np.int64) - 1
    sig = np.array(((1 - ac) / ac) ** 0.5)
    sigmas = np.concatenate([np.interp(ts, np.arange(0, len(sig)), sig), [0.0]])

    def alpha_sigma(s):
        a = 1 / (s**2 + 1) ** 0.5
        return a, s * a

    outs = []
    with np.errstate(divide="ignore"):
        for i, t in enumerate(ts):
            out = model(x, t)
            a_s, s_s = alpha_sigma(sigmas[i])
            x0 = (x - s_s * out) / a_s if c.get("prediction_type", "epsilon") == "epsilon" else a_s * x - s_s * out
            outs = (outs + [x0])[-2:]
            a_t, s_t = alpha_sigma(sigmas[i + 1])
            lam_t = np.log(a_t) - np.log(s_t)
            lam_s0 = np.log(a_s) - np.log(s_s)
            h = lam_t - lam_s0
            if len(outs) < 2 or i == len(ts) - 1:
                x = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * x0
            else:
                a_s1, s_s1 = alpha_sigma(sigmas[i - 1])
                lam_s1 = np.log(a_s1) - np.log(s_s1)
                r0 = (lam_s0 - lam_s1) / h
                d0, d1 = outs[-1], (1.0 / r0) * (outs[-1] - outs[-2])
                x = (s_t / s_s) * x - a_t * (np.exp(-h) - 1.0) * d0 - 0.5 * a_t * (np.exp(-h) - 1.0) * d1
    return ts, x


KINDS = {"pndm": pndm, "ddim": ddim, "euler_ancestral": euler_ancestral, "dpm_solver_pp_2m": dpm_pp_2m}

if __name__ == "__main__":
    results = []
    for req in json.load(sys.stdin):
        ts, x = KINDS[req["kind"]](req["config"], req["steps"], np.array(req["sample"], dtype=np.float64), req.get("noise", []))
        results.append({"timesteps": [float(t) for t in ts], "sample": [float(v) for v in x]})
    json.dump(results, sys.stdout)
