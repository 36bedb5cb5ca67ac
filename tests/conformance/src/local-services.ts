import * as path from 'node:path';
import type * as grpc from '@grpc/grpc-js';
import { buildTinyModel } from '@medsyn/diffusion';
import { serviceNodeArgs, startServiceProcesses, type ServiceProcess } from '@medsyn/local-services';
import { makeTempDir } from '@medsyn/testing';
import type { ContractName } from './checks';

/** One of our services running as its own process on loopback, its output kept for assertions. */
export interface LocalService extends ServiceProcess {
  name: ContractName;
  /** Everything it wrote to stdout and stderr so far. */
  output(): string;
}

export interface LocalServices {
  services: Map<ContractName, LocalService>;
  stop(): Promise<void>;
}

/**
 * Starts our implementations, each from its sources as a process on free loopback ports, all on
 * one store (MEDSYN_STORE in env, e.g. s3rver's). Each gets what it needs to start: the
 * synthesizer a tiny diffusion model in the ONNX export layout (random weights). `credentials`
 * reach their health service where env turns TLS on.
 */
export async function startLocalServices(
  names: readonly ContractName[],
  env: NodeJS.ProcessEnv,
  credentials?: grpc.ChannelCredentials,
): Promise<LocalServices> {
  const tmp = makeTempDir('local-services');
  const own: Partial<Record<ContractName, NodeJS.ProcessEnv>> = {
    synthesizer: {
      MODEL_DIR: buildTinyModel(path.join(tmp.dir, 'tiny-diffusion')),
      MODEL_CACHE_DIR: path.join(tmp.dir, 'model-cache'),
    },
  };
  const outputs = new Map(names.map((name) => [name, [] as string[]]));
  try {
    const started = await startServiceProcesses(
      names.map((name) => ({
        name,
        args: serviceNodeArgs(name, 'source'),
        env: {
          ...process.env,
          GRPC_HOST: '127.0.0.1',
          METRICS_HOST: '127.0.0.1',
          LOG_LEVEL: 'info',
          ...env,
          ...own[name],
        },
        onLine: (line) => outputs.get(name)!.push(line),
        credentials,
      })),
    );
    const services = new Map(
      started.map((service) => {
        const name = service.name as ContractName;
        return [name, { ...service, name, output: () => outputs.get(name)!.join('\n') }];
      }),
    );
    return {
      services,
      stop: async () => {
        await Promise.all(started.map((service) => service.stop()));
        tmp.remove();
      },
    };
  } catch (error) {
    tmp.remove();
    throw error;
  }
}
