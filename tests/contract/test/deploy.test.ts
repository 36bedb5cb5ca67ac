import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { repoRoot } from '@medsyn/testing';
import { parseAllDocuments } from 'yaml';

interface Container {
  env: Array<{ name: string; value: string }>;
  ports: Array<{ name: string; containerPort: number }>;
  readinessProbe: { grpc: { port: number } };
  livenessProbe: { grpc: { port: number } };
}

interface K8sObject {
  kind: string;
  metadata: { name: string; namespace?: string };
  spec?: { template?: { spec: { containers: Container[] } } };
}

describe('Kubernetes base manifests', () => {
  const rendered = execFileSync('kubectl', ['kustomize', path.join(repoRoot, 'deploy/k8s/base')], { encoding: 'utf8' });
  const objects = parseAllDocuments(rendered).map((d) => d.toJS() as K8sObject);

  it.each(['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'])(
    'probe %s over gRPC on the port it listens on',
    (name) => {
      const deployment = objects.find((o) => o.kind === 'Deployment' && o.metadata.name === name)!;
      const container = deployment.spec!.template!.spec.containers[0]!;
      const grpcPort = Number(container.env.find((e) => e.name === 'GRPC_PORT')!.value);
      expect(container.ports.find((p) => p.name === 'grpc')!.containerPort).toBe(grpcPort);
      expect(container.readinessProbe.grpc.port).toBe(grpcPort);
      expect(container.livenessProbe.grpc.port).toBe(grpcPort);
      expect(deployment.metadata.namespace).toBe('medsyn');
      expect(objects.find((o) => o.kind === 'Service' && o.metadata.name === name)).toBeDefined();
    },
  );
});
