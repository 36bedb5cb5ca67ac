export { gradients, UnsupportedGradientError } from './autodiff';
export { GRADIENTS, type GradientRule } from './gradients';
export { GradContext } from './grad-context';
