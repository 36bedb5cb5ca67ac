import * as path from 'node:path';
import { buildTinyModel } from '@medsyn/diffusion';
import { makeTempDir, repoRoot, startProcess, tsxLoaderArgs, type ManagedProcess } from '@medsyn/testing';
import type { ContractName } from './checks';

/** One of our services running as its own process on loopback. */
export interface LocalService {
  name: ContractName;
  proc: ManagedProcess;
  /** host:port of its gRPC server. */
  target: string;
  metricsPort: number;
}

export interface LocalServices {
  services: Map<ContractName, LocalService>;
  stop(): Promise<void>;
}

/**
 * Starts our implementations, each from its sources as a process on free loopback ports, all on
 * one store (MEDSYN_STORE in env, e.g. s3rver's). Each gets what it needs to start: the
 * synthesizer a tiny diffusion model in the ONNX export layout (random weights).
 */
export async function startLocalServices(
  names: readonly ContractName[],
  env: NodeJS.ProcessEnv,
): Promise<LocalServices> {
  const tmp = makeTempDir('local-services');
  const own: Partial<Record<ContractName, NodeJS.ProcessEnv>> = {
    synthesizer: {
      MODEL_DIR: buildTinyModel(path.join(tmp.dir, 'tiny-diffusion')),
      MODEL_CACHE_DIR: path.join(tmp.dir, 'model-cache'),
    },
  };
  const services = new Map<ContractName, LocalService>();
  const stop = async () => {
    await Promise.all([...services.values()].map(({ proc }) => proc.stop()));
    tmp.remove();
  };
  try {
    await Promise.all(
      names.map(async (name) => {
        const proc = await startProcess(process.execPath, {
          args: [...tsxLoaderArgs(), path.join(repoRoot, 'services', name, 'src', 'main.ts')],
          env: {
            GRPC_HOST: '127.0.0.1',
            GRPC_PORT: '0',
            METRICS_HOST: '127.0.0.1',
            METRICS_PORT: '0',
            LOG_LEVEL: 'info',
            ...env,
            ...own[name],
          },
          readyWhen: /"grpcPort":(\d+),"metricsPort":(\d+)/,
          readyTimeoutMs: 60000,
        });
        services.set(name, {
          name,
          proc,
          target: `127.0.0.1:${proc.readyMatch![1]}`,
          metricsPort: Number(proc.readyMatch![2]),
        });
      }),
    );
  } catch (error) {
    await stop();
    throw error;
  }
  return { services, stop };
}
