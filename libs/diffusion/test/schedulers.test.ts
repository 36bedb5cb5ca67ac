import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import {
  createScheduler,
  schedulerKindOf,
  SeededNoise,
  SchedulerConfigError,
  type SchedulerConfig,
  type SchedulerKind,
} from '../src';
import { SD21_SCHEDULER_CONFIG } from '../src/tiny-model';

// The reference (test/python/schedulers_reference.py) is a float64 numpy transcription of the
// diffusers update rules, written separately from the TypeScript; both run the same fake model
// output(x, t) = 0.3 x + 0.05 sin(t / 100 + j) through a whole sampling loop, so every timestep,
// coefficient and multistep history is compared, not just one step.
const fakeModel = (x: Float32Array, t: number) => x.map((v, j) => 0.3 * v + 0.05 * Math.sin(t / 100 + j));

interface Case {
  kind: SchedulerKind;
  config: SchedulerConfig;
  steps: number;
}

function runTs({ kind, config, steps }: Case, start: Float32Array, noise: Float32Array[]) {
  const scheduler = createScheduler(kind, config, steps);
  let x: Float32Array = start.map((v) => v * scheduler.initNoiseSigma);
  let drawn = 0;
  scheduler.timesteps.forEach((t, i) => {
    const scale = scheduler.inputScale(i);
    x = scheduler.step(
      i,
      fakeModel(
        x.map((v) => v * scale),
        t,
      ),
      x,
      () => noise[drawn++]!,
    );
  });
  return { timesteps: scheduler.timesteps, sample: Array.from(x) };
}

const linear: SchedulerConfig = {
  beta_schedule: 'linear',
  beta_start: 0.0001,
  beta_end: 0.02,
  num_train_timesteps: 1000,
  set_alpha_to_one: true,
};
const CASES: Case[] = [];
for (const kind of ['pndm', 'ddim', 'euler_ancestral', 'dpm_solver_pp_2m'] as SchedulerKind[]) {
  CASES.push({ kind, config: SD21_SCHEDULER_CONFIG, steps: 75 });
  CASES.push({
    kind,
    config: { ...SD21_SCHEDULER_CONFIG, prediction_type: 'v_prediction', timestep_spacing: 'trailing' },
    steps: 20,
  });
  CASES.push({ kind, config: { ...linear, timestep_spacing: 'linspace' }, steps: 7 });
  CASES.push({ kind, config: { ...linear, steps_offset: 1 }, steps: 4 });
  // Nothing but the class: diffusers' defaults (PNDM: Runge-Kutta warm-up, final alpha = alphas_cumprod[0]; DDIM: final alpha 1).
  CASES.push({ kind, config: { _class_name: 'PNDMScheduler' }, steps: 5 });
}
CASES.push({ kind: 'pndm', config: { ...SD21_SCHEDULER_CONFIG, skip_prk_steps: false }, steps: 50 });
CASES.push({
  kind: 'pndm',
  config: {
    ...SD21_SCHEDULER_CONFIG,
    skip_prk_steps: false,
    prediction_type: 'v_prediction',
    timestep_spacing: 'trailing',
  },
  steps: 9,
});
CASES.push({
  kind: 'ddim',
  config: { ...SD21_SCHEDULER_CONFIG, clip_sample: true, clip_sample_range: 0.5 },
  steps: 10,
});
CASES.push({ kind: 'pndm', config: SD21_SCHEDULER_CONFIG, steps: 1 });

describe('schedulers', () => {
  const size = 6;
  const rng = new SeededNoise(7n);
  const start = rng.normal(size);
  const noise = Array.from({ length: 80 }, () => rng.normal(size));
  const expected = JSON.parse(
    execFileSync('/usr/bin/python3', [path.join(__dirname, 'python', 'schedulers_reference.py')], {
      input: JSON.stringify(
        CASES.map((c) => ({ ...c, sample: Array.from(start), noise: noise.map((n) => Array.from(n)) })),
      ),
    }).toString(),
  ) as { timesteps: number[]; sample: number[] }[];

  it.each(
    CASES.map(
      (c, i) =>
        [
          `${c.kind} ${c.config.prediction_type ?? 'epsilon'} ${c.config.timestep_spacing ?? 'leading'} ${c.steps} steps`,
          i,
        ] as const,
    ),
  )('%s: timesteps and the sampled latents match the numpy reference', (_name, i) => {
    const ours = runTs(CASES[i]!, start, noise);
    expect(ours.timesteps).toEqual(expected[i]!.timesteps);
    // float32 arithmetic against float64 over up to 76 steps.
    ours.sample.forEach((v, j) =>
      expect(Math.abs(v - expected[i]!.sample[j]!)).toBeLessThan(2e-4 * Math.max(1, Math.abs(expected[i]!.sample[j]!))),
    );
  });

  it('uses the published RoentGen (SD 2.1-base) PNDM timesteps for 75 steps', () => {
    // leading spacing: 1000 // 75 = 13, t = 13 k + steps_offset; PLMS repeats the second one.
    const { timesteps } = createScheduler('pndm', SD21_SCHEDULER_CONFIG, 75);
    expect(timesteps.slice(0, 4)).toEqual([963, 950, 950, 937]);
    expect(timesteps.at(-1)).toBe(1);
    expect(timesteps).toHaveLength(76);
  });

  it('recovers the clean sample in one DDIM step when the noise prediction is exact', () => {
    const { timesteps, step } = createScheduler('ddim', { ...SD21_SCHEDULER_CONFIG, set_alpha_to_one: true }, 1);
    const t = timesteps[0]!;
    // alpha_cumprod(t) from the scaled-linear betas, computed here from the definition.
    let alpha = 1;
    for (let k = 0; k <= t; k++) {
      const beta = (Math.sqrt(0.00085) + ((Math.sqrt(0.012) - Math.sqrt(0.00085)) * k) / 999) ** 2;
      alpha *= 1 - beta;
    }
    const x0 = Float32Array.from([0.5, -1, 2]);
    const eps = Float32Array.from([1, 0.3, -0.7]);
    const xt = x0.map((v, j) => Math.sqrt(alpha) * v + Math.sqrt(1 - alpha) * eps[j]!);
    Array.from(step(0, eps, xt, () => new Float32Array(3))).forEach((v, j) => expect(v).toBeCloseTo(x0[j]!, 4));
  });

  it("runs PNDM's Runge-Kutta warm-up at diffusers' timesteps unless skip_prk_steps", () => {
    // 10 steps of 1000: RK4 steps 900 -> 800 -> 700 -> 600 through midpoints t - 50, then PLMS from 600.
    const { timesteps } = createScheduler('pndm', { num_train_timesteps: 1000 }, 10);
    expect(timesteps).toEqual([
      900, 850, 850, 800, 800, 750, 750, 700, 700, 650, 650, 600, 600, 500, 400, 300, 200, 100, 0,
    ]);
    expect(() => createScheduler('pndm', { num_train_timesteps: 1000 }, 3)).toThrow(/at least 4/);
    expect(createScheduler('pndm', { skip_prk_steps: true }, 3).timesteps).toEqual([666, 333, 333, 0]);
  });

  it('names the supported schedulers when a config names another class, and refuses timesteps past the table', () => {
    expect(() => schedulerKindOf({ _class_name: 'LMSDiscreteScheduler' })).toThrow(
      /"LMSDiscreteScheduler" is not supported \(supported: PNDMScheduler, DDIMScheduler, EulerAncestralDiscreteScheduler, DPMSolverMultistepScheduler\)/,
    );
    expect(() => schedulerKindOf({})).toThrow(/no _class_name/);
    expect(() => schedulerKindOf({ _class_name: 'constructor' })).toThrow(SchedulerConfigError);
    expect(schedulerKindOf(SD21_SCHEDULER_CONFIG)).toBe('pndm');
    // leading spacing, 1000 steps, steps_offset 1: the first timestep would be 1000 (diffusers indexes past alphas_cumprod).
    for (const kind of ['pndm', 'ddim', 'euler_ancestral'] as SchedulerKind[]) {
      expect(() => createScheduler(kind, SD21_SCHEDULER_CONFIG, 1000)).toThrow(
        /steps_offset 1 reaches timestep 1000, outside the model's 0..999/,
      );
    }
    expect(createScheduler('ddim', SD21_SCHEDULER_CONFIG, 999).timesteps[0]).toBe(999);
  });

  it('rejects unusable configs and step counts naming the setting', () => {
    expect(() => createScheduler('pndm', { beta_schedule: 'squaredcos_cap_v2' }, 10)).toThrow(
      /beta_schedule "squaredcos_cap_v2"/,
    );
    expect(() => createScheduler('ddim', { prediction_type: 'sample' }, 10)).toThrow(/prediction_type "sample"/);
    expect(() => createScheduler('ddim', SD21_SCHEDULER_CONFIG, 0)).toThrow(SchedulerConfigError);
    expect(() => createScheduler('ddim', SD21_SCHEDULER_CONFIG, 1001)).toThrow(/exceeds/);
  });
});
