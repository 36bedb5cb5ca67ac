import { synthesizer } from '@medsyn/proto';
import { notImplementedYet, type ServiceSpec } from '@medsyn/service-kit';

/** Ports a local setup uses when GRPC_PORT / METRICS_PORT are not set. */
export const SYNTHESIZER_DEFAULTS = { grpcPort: 50052, metricsPort: 9462 };

const SERVICE = 'medsyn.synthesizer.v1.SynthesizerService';

/** The synthesizer: chest X-rays from prompts with a Stable-Diffusion-style ONNX export. */
export function synthesizerService(env: NodeJS.ProcessEnv = process.env): ServiceSpec {
  return {
    name: 'synthesizer',
    defaults: SYNTHESIZER_DEFAULTS,
    env,
    register({ addService }) {
      const implementation: synthesizer.SynthesizerServiceServer = {
        getModelInfo: () => {
          throw notImplementedYet(`${SERVICE}/GetModelInfo`, 5);
        },
        synthesize: () => {
          throw notImplementedYet(`${SERVICE}/Synthesize`, 5);
        },
        startSynthesizeDataset: () => {
          throw notImplementedYet(`${SERVICE}/StartSynthesizeDataset`, 5);
        },
      };
      addService(synthesizer.SynthesizerServiceService, implementation);
    },
  };
}
