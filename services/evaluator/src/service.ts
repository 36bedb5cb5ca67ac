import { evaluator } from '@medsyn/proto';
import { notImplementedYet, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const EVALUATOR_DEFAULTS = { grpcPort: 50054, metricsPort: 9464 };

const SERVICE = 'medsyn.evaluator.v1.EvaluatorService';

/** The evaluator: frozen-encoder classification, segmentation, detection and zero-shot. */
export function evaluatorService(env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  return {
    name: 'evaluator',
    defaults: EVALUATOR_DEFAULTS,
    env,
    register({ addService }) {
      const implementation: evaluator.EvaluatorServiceServer = {
        startEvaluation: () => {
          throw notImplementedYet(`${SERVICE}/StartEvaluation`, 7);
        },
        getEvaluationResult: () => {
          throw notImplementedYet(`${SERVICE}/GetEvaluationResult`, 7);
        },
      };
      addService(evaluator.EvaluatorServiceService, implementation);
    },
  };
}
