import { anonymizer } from '@medsyn/proto';
import { notImplementedYet, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const ANONYMIZER_DEFAULTS = { grpcPort: 50051, metricsPort: 9461 };

const SERVICE = 'medsyn.anonymizer.v1.AnonymizerService';

/** The anonymizer: HIPAA Safe Harbor de-identification of reports, sections and prompts. */
export function anonymizerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  return {
    name: 'anonymizer',
    defaults: ANONYMIZER_DEFAULTS,
    env,
    register({ addService }) {
      const implementation: anonymizer.AnonymizerServiceServer = {
        anonymize: () => {
          throw notImplementedYet(`${SERVICE}/Anonymize`, 4);
        },
        anonymizeStream: () => {
          throw notImplementedYet(`${SERVICE}/AnonymizeStream`, 4);
        },
        startAnonymizeDataset: () => {
          throw notImplementedYet(`${SERVICE}/StartAnonymizeDataset`, 4);
        },
      };
      addService(anonymizer.AnonymizerServiceService, implementation);
    },
  };
}
