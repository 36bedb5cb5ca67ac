import { pretrainer } from '@medsyn/proto';
import { notImplementedYet, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const PRETRAINER_DEFAULTS = { grpcPort: 50053, metricsPort: 9463 };

const SERVICE = 'medsyn.pretrainer.v1.PretrainerService';

/** The pretrainer: ConVIRT, GLoRIA and MGCA on image-report pairs, as resumable jobs. */
export function pretrainerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  return {
    name: 'pretrainer',
    defaults: PRETRAINER_DEFAULTS,
    env,
    register({ addService }) {
      const implementation: pretrainer.PretrainerServiceServer = {
        startPretraining: () => {
          throw notImplementedYet(`${SERVICE}/StartPretraining`, 6);
        },
        getPretrainingResult: () => {
          throw notImplementedYet(`${SERVICE}/GetPretrainingResult`, 6);
        },
      };
      addService(pretrainer.PretrainerServiceService, implementation);
    },
  };
}
