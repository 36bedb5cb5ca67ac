export { gradients, stopGradient, STOP_GRADIENT, UnsupportedGradientError } from './autodiff';
export { GRADIENTS, type GradientRule } from './gradients';
export { GradContext } from './grad-context';
export { createOptimizer, type OptimizerConfig, type AdamWConfig, type SgdConfig, type Optimizer } from './optimizers';
export {
  buildTrainingStep,
  updatedName,
  LEARNING_RATE_INPUT,
  STEP_INPUT,
  LOSS_OUTPUT,
  GRAD_NORM_OUTPUT,
  type TrainingStepSpec,
  type TrainingStepGraph,
  type TrainingObjective,
} from './training-step';
export {
  Trainer,
  createSession,
  ExecutionProviderError,
  type ExecutionProvider,
  type TrainerOptions,
  type StepResult,
  type TrainerState,
} from './trainer';
export { encodeSafetensors, decodeSafetensors } from './safetensors';
export { exportInferenceModel } from './export';
export { cpuBudget, cpuQuotaLimit } from './cpu-budget';
