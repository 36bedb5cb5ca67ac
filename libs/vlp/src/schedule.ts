import type { PretrainingConfig } from '@medsyn/config';

/**
 * Learning rate of 1-based step `step` of `total`: linear warm-up from 0 to the peak over
 * `warmupSteps`, then cosine decay (Loshchilov & Hutter 2017, without restarts) from the peak to
 * `minLrRatio` x peak at the last step, or constant after warm-up.
 */
export function learningRateAt(
  step: number,
  total: number,
  peak: number,
  schedule: PretrainingConfig['schedule'],
): number {
  const warmup = Math.min(schedule.warmupSteps, total);
  if (step <= warmup) return (peak * step) / warmup;
  if (schedule.decay === 'constant') return peak;
  const decaySteps = total - warmup;
  const progress = decaySteps <= 1 ? 1 : (step - warmup - 1) / (decaySteps - 1);
  const floor = peak * schedule.minLrRatio;
  return floor + (peak - floor) * 0.5 * (1 + Math.cos(Math.PI * progress));
}
