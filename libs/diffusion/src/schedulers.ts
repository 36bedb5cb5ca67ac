/**
 * Denoising schedulers for latent diffusion, driven by a diffusers `scheduler_config.json`.
 * Each follows the published update rule and diffusers' conventions for timesteps:
 * - PNDM (Liu et al. 2022, "Pseudo Numerical Methods for Diffusion Models"): diffusers
 *   `PNDMScheduler`, with its Runge-Kutta warm-up (F-PNDM, the default) or, with skip_prk_steps
 *   (Stable Diffusion's configs), PLMS alone: linear multistep on the noise prediction,
 * - DDIM with eta = 0 (Song et al. 2021, eq. 12),
 * - Euler ancestral (Karras et al. 2022 sampler with ancestral noise, k-diffusion),
 * - DPM-Solver++ 2M (Lu et al. 2022, "DPM-Solver++", multistep second order, midpoint form).
 * The tests check timesteps and whole sampling runs against a numpy transcription of the formulas
 * (test/python/schedulers_reference.py).
 */

export type SchedulerKind = 'pndm' | 'ddim' | 'euler_ancestral' | 'dpm_solver_pp_2m';
export const SCHEDULER_KINDS: readonly SchedulerKind[] = ['pndm', 'ddim', 'euler_ancestral', 'dpm_solver_pp_2m'];

/** The `scheduler_config.json` fields the schedulers use (diffusers names). */
export interface SchedulerConfig {
  _class_name?: string;
  num_train_timesteps?: number;
  beta_start?: number;
  beta_end?: number;
  beta_schedule?: string;
  trained_betas?: number[] | null;
  prediction_type?: string;
  timestep_spacing?: string;
  steps_offset?: number;
  set_alpha_to_one?: boolean;
  skip_prk_steps?: boolean;
  clip_sample?: boolean;
  clip_sample_range?: number;
}

export class SchedulerConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'SchedulerConfigError';
  }
}

/** One model evaluation: the timestep to give the UNet and how to scale its input. */
export interface Scheduler {
  readonly kind: SchedulerKind;
  /** UNet timesteps, one per model evaluation, in order (PNDM repeats one). */
  readonly timesteps: number[];
  /** Standard deviation of the initial latent noise. */
  readonly initNoiseSigma: number;
  /** Factor applied to the latents before the UNet at evaluation `i`. */
  inputScale(i: number): number;
  /** The latents after evaluation `i`, from the model output; `noise` draws fresh N(0, 1) when needed. */
  step(i: number, modelOutput: Float32Array, sample: Float32Array, noise: () => Float32Array): Float32Array;
}

const KIND_BY_CLASS: Record<string, SchedulerKind> = {
  PNDMScheduler: 'pndm',
  DDIMScheduler: 'ddim',
  EulerAncestralDiscreteScheduler: 'euler_ancestral',
  DPMSolverMultistepScheduler: 'dpm_solver_pp_2m',
};

/** The scheduler a config names (`_class_name`); a class we do not implement is an error, never a silent PNDM. */
export function schedulerKindOf(config: SchedulerConfig): SchedulerKind {
  const kind = Object.hasOwn(KIND_BY_CLASS, config._class_name ?? '') ? KIND_BY_CLASS[config._class_name!] : undefined;
  if (kind) return kind;
  const named =
    config._class_name === undefined ? 'names no _class_name' : `_class_name "${config._class_name}" is not supported`;
  throw new SchedulerConfigError(
    `scheduler_config.json ${named} (supported: ${Object.keys(KIND_BY_CLASS).join(', ')})`,
  );
}

interface Resolved {
  trainSteps: number;
  alphasCumprod: Float64Array;
  prediction: 'epsilon' | 'v_prediction';
  spacing: 'leading' | 'trailing' | 'linspace';
  stepsOffset: number;
  finalAlphaCumprod: number;
  skipPrkSteps: boolean;
  clipSample: number | undefined;
}

function linspace(start: number, end: number, count: number): number[] {
  if (count === 1) return [start];
  return Array.from({ length: count }, (_, i) => start + ((end - start) * i) / (count - 1));
}

// numpy rounds half to even; timesteps like 499.5 must round as numpy does.
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

function resolve(config: SchedulerConfig, kind: SchedulerKind): Resolved {
  const trainSteps = config.num_train_timesteps ?? 1000;
  let betas: number[];
  if (config.trained_betas && config.trained_betas.length > 0) {
    betas = config.trained_betas;
  } else {
    const start = config.beta_start ?? 0.0001;
    const end = config.beta_end ?? 0.02;
    const schedule = config.beta_schedule ?? 'linear';
    if (schedule === 'linear') betas = linspace(start, end, trainSteps);
    // Latent diffusion's schedule: linear in sqrt(beta).
    else if (schedule === 'scaled_linear')
      betas = linspace(Math.sqrt(start), Math.sqrt(end), trainSteps).map((b) => b * b);
    else
      throw new SchedulerConfigError(
        `scheduler_config.json: beta_schedule "${schedule}" is not supported (linear, scaled_linear)`,
      );
  }
  const alphasCumprod = new Float64Array(betas.length);
  let product = 1;
  betas.forEach((beta, i) => (alphasCumprod[i] = product *= 1 - beta));
  const prediction = config.prediction_type ?? 'epsilon';
  if (prediction !== 'epsilon' && prediction !== 'v_prediction') {
    throw new SchedulerConfigError(
      `scheduler_config.json: prediction_type "${prediction}" is not supported (epsilon, v_prediction)`,
    );
  }
  const spacing = config.timestep_spacing ?? 'leading';
  if (spacing !== 'leading' && spacing !== 'trailing' && spacing !== 'linspace') {
    throw new SchedulerConfigError(
      `scheduler_config.json: timestep_spacing "${spacing}" is not supported (leading, trailing, linspace)`,
    );
  }
  // DDIM and PNDM step past t = 0 to "alpha_cumprod = 1" only when set_alpha_to_one (diffusers' defaults: DDIM true, PNDM false).
  const setAlphaToOne = config.set_alpha_to_one ?? kind === 'ddim';
  return {
    trainSteps: betas.length,
    alphasCumprod,
    prediction,
    spacing,
    stepsOffset: config.steps_offset ?? 0,
    finalAlphaCumprod: setAlphaToOne ? 1 : alphasCumprod[0]!,
    // diffusers' default is false: the Runge-Kutta warm-up runs unless the config skips it.
    skipPrkSteps: config.skip_prk_steps ?? false,
    clipSample: config.clip_sample ? (config.clip_sample_range ?? 1) : undefined,
  };
}

/** Descending integer timesteps of DDIM / PNDM (diffusers `set_timesteps`). */
function discreteTimesteps(r: Resolved, steps: number): number[] {
  const n = r.trainSteps;
  if (r.spacing === 'linspace')
    return linspace(0, n - 1, steps)
      .map(roundHalfEven)
      .reverse();
  if (r.spacing === 'leading') {
    const ratio = Math.floor(n / steps);
    return Array.from({ length: steps }, (_, i) => i * ratio + r.stepsOffset).reverse();
  }
  const ratio = n / steps;
  return Array.from({ length: steps }, (_, i) => roundHalfEven(n - i * ratio) - 1);
}

/** Validates and builds the scheduler for `steps` denoising steps. */
export function createScheduler(kind: SchedulerKind, config: SchedulerConfig, steps: number): Scheduler {
  if (!Number.isInteger(steps) || steps < 1)
    throw new SchedulerConfigError(`num_inference_steps must be an integer >= 1, got ${steps}`);
  const r = resolve(config, kind);
  if (steps > r.trainSteps)
    throw new SchedulerConfigError(
      `num_inference_steps ${steps} exceeds the model's ${r.trainSteps} training timesteps`,
    );
  if (kind === 'pndm' && !r.skipPrkSteps && steps < 4)
    throw new SchedulerConfigError(
      `num_inference_steps ${steps}: PNDM's Runge-Kutta warm-up (skip_prk_steps false) needs at least 4`,
    );
  const scheduler = build(kind, r, steps);
  // steps_offset moves "leading" timesteps up: with many steps the last one falls past the table (1000 steps, offset 1: t = 1000).
  const past = scheduler.timesteps.find((t) => t < 0 || t > r.trainSteps - 1);
  if (past !== undefined)
    throw new SchedulerConfigError(
      `num_inference_steps ${steps} with steps_offset ${r.stepsOffset} reaches timestep ${past}, outside the model's 0..${r.trainSteps - 1}`,
    );
  return scheduler;
}

function build(kind: SchedulerKind, r: Resolved, steps: number): Scheduler {
  switch (kind) {
    case 'pndm':
      return pndm(r, steps);
    case 'ddim':
      return ddim(r, steps);
    case 'euler_ancestral':
      return eulerAncestral(r, steps);
    case 'dpm_solver_pp_2m':
      return dpmSolverPlusPlus2M(r, steps);
  }
}

const map = (n: number, f: (j: number) => number) => {
  const out = new Float32Array(n);
  for (let j = 0; j < n; j++) out[j] = f(j);
  return out;
};

/** Converts a v-prediction into the noise prediction (Salimans & Ho 2022): eps = sqrt(a) v + sqrt(1 - a) x. */
function toEpsilon(r: Resolved, alphaProd: number, output: Float32Array, sample: Float32Array): Float32Array {
  if (r.prediction === 'epsilon') return output;
  const a = Math.sqrt(alphaProd);
  const b = Math.sqrt(1 - alphaProd);
  return map(output.length, (j) => a * output[j]! + b * sample[j]!);
}

/**
 * diffusers' Runge-Kutta timesteps: the last four "leading" timesteps t and their midpoints
 * t + stride/2, laid out so that evaluations 4k..4k+3 are one classical RK4 step from t_k to t_k - stride.
 */
function prkTimesteps(ascending: number[], stride: number): number[] {
  const half = Math.floor(stride / 2);
  const points = ascending.slice(-4).flatMap((t) => [t, t + half]);
  return points
    .slice(0, -1)
    .flatMap((t) => [t, t])
    .slice(1, -1)
    .reverse();
}

/**
 * F-PNDM: three Runge-Kutta steps of four evaluations each, then Adams-Bashforth of order 4 on
 * the noise predictions (the three RK steps supply its history). With skip_prk_steps, PLMS alone:
 * a first two-evaluation (Heun-like) step, then Adams-Bashforth of order 2, 3, 4.
 */
function pndm(r: Resolved, steps: number): Scheduler {
  const base = discreteTimesteps(r, steps).reverse(); // ascending, as diffusers keeps `_timesteps`
  const stride = Math.floor(r.trainSteps / steps);
  const prk = r.skipPrkSteps ? [] : prkTimesteps(base, stride);
  // PLMS (skip_prk_steps): [t_{n-1}, t_{n-2}, t_{n-2}, t_{n-3}, ..., t_0]; after RK: [t_{n-4}, ..., t_0].
  const plms = r.skipPrkSteps
    ? [...base.slice(0, -1), ...base.slice(-2, -1), ...base.slice(-1)].reverse()
    : base.slice(0, -3).reverse();
  const timesteps = [...prk, ...plms];
  const ets: Float32Array[] = [];
  let heldSample: Float32Array | undefined;
  let rkSum: Float32Array | undefined;
  const alphaAt = (t: number) => (t >= 0 ? r.alphasCumprod[t]! : r.finalAlphaCumprod);
  // Eq. (9) of Liu et al.: x_{t-d} from x_t and the noise estimate, written as diffusers does
  // (which combines raw model outputs and converts a v-prediction only here).
  const transfer = (sample: Float32Array, t: number, prev: number, output: Float32Array): Float32Array => {
    const at = alphaAt(t);
    const ap = alphaAt(prev);
    const eps = toEpsilon(r, at, output, sample);
    const sampleCoeff = Math.sqrt(ap / at);
    const denominator = at * Math.sqrt(1 - ap) + Math.sqrt(at * (1 - at) * ap);
    const epsCoeff = (ap - at) / denominator;
    return map(sample.length, (j) => sampleCoeff * sample[j]! - epsCoeff * eps[j]!);
  };
  // One evaluation of an RK4 step from `start`: k1/6 + k2/3 + k3/3 + k4/6; the first three move
  // from the held sample by half a step, half a step and a whole step to give the next evaluation its input.
  const rungeKutta = (i: number, output: Float32Array, sample: Float32Array): Float32Array => {
    const stage = i % 4;
    const start = prk[i - stage]!;
    const prev = timesteps[i]! - (stage % 2 === 1 ? 0 : Math.floor(stride / 2));
    const weight = stage === 0 || stage === 3 ? 1 / 6 : 1 / 3;
    if (stage === 0) {
      ets.push(output);
      heldSample = sample;
      rkSum = new Float32Array(output.length);
    }
    const sum = rkSum!;
    for (let j = 0; j < output.length; j++) sum[j]! += weight * output[j]!;
    return transfer(heldSample!, start, prev, stage === 3 ? sum : output);
  };
  return {
    kind: 'pndm',
    timesteps,
    initNoiseSigma: 1,
    inputScale: () => 1,
    step(i, output, sample) {
      if (i < prk.length) return rungeKutta(i, output, sample);
      const t = timesteps[i]!;
      if (i === 1) {
        // Second evaluation of the first PLMS step: the same interval again from the held sample,
        // with the two outputs averaged.
        const averaged = map(output.length, (j) => (output[j]! + ets[0]![j]!) / 2);
        const start = heldSample!;
        heldSample = undefined;
        return transfer(start, t + stride, t, averaged);
      }
      ets.push(output);
      if (ets.length > 4) ets.shift();
      const e = ets.length;
      let combined: Float32Array;
      if (e === 1) {
        heldSample = sample;
        combined = output;
      } else if (e === 2) combined = map(output.length, (j) => (3 * ets[1]![j]! - ets[0]![j]!) / 2);
      else if (e === 3)
        combined = map(output.length, (j) => (23 * ets[2]![j]! - 16 * ets[1]![j]! + 5 * ets[0]![j]!) / 12);
      else
        combined = map(
          output.length,
          (j) => (55 * ets[3]![j]! - 59 * ets[2]![j]! + 37 * ets[1]![j]! - 9 * ets[0]![j]!) / 24,
        );
      return transfer(sample, t, t - stride, combined);
    },
  };
}

/** Deterministic DDIM (eta = 0): predict x0, then move along the predicted noise direction. */
function ddim(r: Resolved, steps: number): Scheduler {
  const timesteps = discreteTimesteps(r, steps);
  const stride = Math.floor(r.trainSteps / steps);
  return {
    kind: 'ddim',
    timesteps,
    initNoiseSigma: 1,
    inputScale: () => 1,
    step(i, modelOutput, sample) {
      const t = timesteps[i]!;
      const prev = t - stride;
      const at = r.alphasCumprod[t]!;
      const ap = prev >= 0 ? r.alphasCumprod[prev]! : r.finalAlphaCumprod;
      const sa = Math.sqrt(at);
      const sb = Math.sqrt(1 - at);
      let x0: Float32Array;
      let eps: Float32Array;
      if (r.prediction === 'epsilon') {
        eps = modelOutput;
        x0 = map(sample.length, (j) => (sample[j]! - sb * modelOutput[j]!) / sa);
      } else {
        x0 = map(sample.length, (j) => sa * sample[j]! - sb * modelOutput[j]!);
        eps = map(sample.length, (j) => sa * modelOutput[j]! + sb * sample[j]!);
      }
      if (r.clipSample !== undefined) {
        const c = r.clipSample;
        x0 = map(x0.length, (j) => Math.min(c, Math.max(-c, x0[j]!)));
        eps = map(x0.length, (j) => (sample[j]! - sa * x0[j]!) / sb);
      }
      const sap = Math.sqrt(ap);
      const dir = Math.sqrt(1 - ap);
      return map(sample.length, (j) => sap * x0[j]! + dir * eps[j]!);
    },
  };
}

/** sigma(t) = sqrt((1 - a_t) / a_t) of the variance-exploding view, interpolated at fractional t. */
function sigmaAt(r: Resolved, t: number): number {
  const sigma = (k: number) => Math.sqrt((1 - r.alphasCumprod[k]!) / r.alphasCumprod[k]!);
  const lo = Math.floor(t);
  const hi = Math.min(lo + 1, r.trainSteps - 1);
  return sigma(lo) + (sigma(hi) - sigma(lo)) * (t - lo);
}

function eulerAncestral(r: Resolved, steps: number): Scheduler {
  const n = r.trainSteps;
  let timesteps: number[];
  if (r.spacing === 'linspace') timesteps = linspace(0, n - 1, steps).reverse();
  else if (r.spacing === 'leading') timesteps = discreteTimesteps(r, steps);
  else timesteps = Array.from({ length: steps }, (_, i) => roundHalfEven(n - (i * n) / steps) - 1);
  const sigmas = [...timesteps.map((t) => sigmaAt(r, t)), 0];
  const maxSigma = Math.max(...sigmas);
  return {
    kind: 'euler_ancestral',
    timesteps,
    initNoiseSigma: r.spacing === 'leading' ? Math.sqrt(maxSigma * maxSigma + 1) : maxSigma,
    inputScale: (i) => 1 / Math.sqrt(sigmas[i]! ** 2 + 1),
    step(i, modelOutput, sample, noise) {
      const sigma = sigmas[i]!;
      const next = sigmas[i + 1]!;
      const x0 =
        r.prediction === 'epsilon'
          ? map(sample.length, (j) => sample[j]! - sigma * modelOutput[j]!)
          : map(
              sample.length,
              (j) => modelOutput[j]! * (-sigma / Math.sqrt(sigma * sigma + 1)) + sample[j]! / (sigma * sigma + 1),
            );
      // Split the step into a deterministic part down to sigmaDown and fresh noise of sigmaUp.
      const sigmaUp = Math.sqrt((next * next * (sigma * sigma - next * next)) / (sigma * sigma));
      const sigmaDown = Math.sqrt(next * next - sigmaUp * sigmaUp);
      const dt = sigmaDown - sigma;
      const z = noise();
      return map(sample.length, (j) => sample[j]! + ((sample[j]! - x0[j]!) / sigma) * dt + z[j]! * sigmaUp);
    },
  };
}

function dpmSolverPlusPlus2M(r: Resolved, steps: number): Scheduler {
  const n = r.trainSteps;
  let timesteps: number[];
  if (r.spacing === 'linspace')
    timesteps = linspace(0, n - 1, steps + 1)
      .map(roundHalfEven)
      .reverse()
      .slice(0, -1);
  else if (r.spacing === 'leading') {
    const ratio = Math.floor(n / (steps + 1));
    timesteps = Array.from({ length: steps + 1 }, (_, i) => i * ratio)
      .reverse()
      .slice(0, -1)
      .map((t) => t + r.stepsOffset);
  } else timesteps = Array.from({ length: steps }, (_, i) => roundHalfEven(n - (i * n) / steps) - 1);
  // final_sigmas_type "zero": the last step lands on the clean sample.
  const sigmas = [...timesteps.map((t) => sigmaAt(r, t)), 0];
  const alphaOf = (sigma: number) => 1 / Math.sqrt(sigma * sigma + 1);
  const lambdaOf = (sigma: number) => Math.log(alphaOf(sigma)) - Math.log(sigma * alphaOf(sigma));
  const x0s: Float32Array[] = [];
  return {
    kind: 'dpm_solver_pp_2m',
    timesteps,
    initNoiseSigma: 1,
    inputScale: () => 1,
    step(i, modelOutput, sample) {
      const sigmaS = sigmas[i]!;
      const alphaS = alphaOf(sigmaS);
      const sigmaTs = sigmaS * alphaS;
      // DPM-Solver++ works on the data prediction x0.
      const x0 =
        r.prediction === 'epsilon'
          ? map(sample.length, (j) => (sample[j]! - sigmaTs * modelOutput[j]!) / alphaS)
          : map(sample.length, (j) => alphaS * sample[j]! - sigmaTs * modelOutput[j]!);
      x0s.push(x0);
      if (x0s.length > 2) x0s.shift();
      const sigmaT = sigmas[i + 1]!;
      const alphaT = alphaOf(sigmaT);
      const h = lambdaOf(sigmaT) - lambdaOf(sigmaS);
      // Ratio of the variance-preserving noise levels sigma_t / sigma_s of the update rule.
      const ratio = (sigmaT * alphaT) / sigmaTs;
      const phi = alphaT * (Math.exp(-h) - 1);
      const lastStep = i === timesteps.length - 1;
      if (x0s.length < 2 || lastStep) {
        // First order (DPM-Solver++ 1 = DDIM): first step, and the last one (lower_order_final).
        return map(sample.length, (j) => ratio * sample[j]! - phi * x0[j]!);
      }
      const h0 = lambdaOf(sigmaS) - lambdaOf(sigmas[i - 1]!);
      const r0 = h0 / h;
      const [m1, m0] = x0s as [Float32Array, Float32Array];
      return map(sample.length, (j) => ratio * sample[j]! - phi * m0[j]! - 0.5 * phi * ((m0[j]! - m1[j]!) / r0));
    },
  };
}
