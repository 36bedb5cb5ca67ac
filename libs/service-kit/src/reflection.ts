import * as fs from 'node:fs';
import type * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { ReflectionService } from '@grpc/reflection';
import { protoPath as healthProtoPath } from 'grpc-health-check';
import { descriptorSetPath } from '@medsyn/proto';

/**
 * Server reflection (grpcurl, Postman, any client without the .proto files) over the contracts
 * this server serves and the standard health service, from the descriptor set that
 * `npm run generate` builds.
 */
export function addReflection(server: grpc.Server, services: string[]): void {
  const medsyn = protoLoader.loadFileDescriptorSetFromBuffer(fs.readFileSync(descriptorSetPath));
  const health = protoLoader.loadSync(healthProtoPath);
  new ReflectionService({ ...medsyn, ...health }, { services: ['grpc.health.v1.Health', ...services] }).addToServer(
    server,
  );
}
