import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '@medsyn/testing';
import { parse } from 'yaml';
import { SERVICES, containers, find, k8sDir, render, renderOverlay, workloads, type K8sObject } from './manifests';

type Model = new (data: unknown) => { validate(): void };

/**
 * The kubernetes-models class for an apiVersion/kind: the Kubernetes OpenAPI schema for built-in
 * kinds, the Prometheus operator's CRD schema for monitoring.coreos.com.
 */
function modelFor(apiVersion: string, kind: string): Model | undefined {
  const module = apiVersion.startsWith('monitoring.coreos.com/')
    ? `@kubernetes-models/prometheus-operator/${apiVersion}`
    : `kubernetes-models/${apiVersion}`;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    return (require(module) as Record<string, Model>)[kind];
  } catch {
    return undefined;
  }
}

/** The Job manifests ConfigMaps carry for a service to create Jobs from at run time (never applied themselves). */
function launchedJobs(objects: K8sObject[]): K8sObject[] {
  return objects
    .filter((o) => o.kind === 'ConfigMap')
    .flatMap((o) =>
      Object.entries(o.data ?? {})
        .filter(([file]) => file.endsWith('.yaml'))
        .map(([, text]) => parse(text) as K8sObject),
    )
    .filter((doc) => doc?.kind === 'Job');
}

const overlays = {
  local: render(path.join(k8sDir, 'overlays', 'local')),
  gpu: render(path.join(k8sDir, 'overlays', 'gpu')),
  'gpu-torch': render(path.join(k8sDir, 'overlays', 'gpu-torch')),
};

describe.each(Object.entries(overlays))('overlay %s', (_name, objects) => {
  it('protects every service: a bearer token from the medsyn-grpc-auth Secret, never GRPC_INSECURE_LISTEN, gRPC beyond loopback only when protected', () => {
    for (const { object, pod } of workloads(objects)) {
      for (const container of [...(pod.spec.initContainers ?? []), ...pod.spec.containers]) {
        const env = Object.fromEntries(
          (container.env ?? []).map((e: { name: string; value?: string }) => [e.name, e.value]),
        );
        const secrets = (container.envFrom ?? [])
          .filter((f: { secretRef?: unknown }) => f.secretRef)
          .map((f: { secretRef: { name: string; optional?: boolean } }) => f.secretRef);
        const token = secrets.find((ref: { name: string }) => ref.name.startsWith('medsyn-grpc-auth'));
        expect(env.GRPC_INSECURE_LISTEN).toBeUndefined();
        if (object.kind === 'Deployment' && (SERVICES as readonly string[]).includes(object.metadata.name))
          expect(token).toMatchObject({ name: expect.stringMatching(/^medsyn-grpc-auth/) });
        if (token) expect(token.optional).toBeFalsy();
        // A service container without the token listens on loopback only (the kit's default).
        const isService = container.ports?.some((p: { name: string }) => p.name === 'grpc');
        if (isService && !token && !env.GRPC_TLS_CERT) expect(env.GRPC_HOST ?? '127.0.0.1').toBe('127.0.0.1');
      }
    }
  });

  it('validates every rendered object against the Kubernetes OpenAPI schema', () => {
    expect(objects.length).toBeGreaterThan(20);
    const problems: string[] = [];
    for (const object of objects) {
      const Model = modelFor(object.apiVersion, object.kind);
      if (!Model) {
        problems.push(`${object.apiVersion} ${object.kind} ${object.metadata.name}: no schema`);
        continue;
      }
      try {
        new Model(object).validate();
      } catch (error) {
        problems.push(`${object.kind} ${object.metadata.name}: ${(error as Error).message}`);
      }
    }
    expect(problems).toEqual([]);
  });

  it('puts everything in the medsyn namespace and labels it part of medsyn', () => {
    for (const object of objects) {
      if (object.kind === 'Namespace') continue;
      expect([object.kind, object.metadata.name, object.metadata.namespace]).toEqual([
        object.kind,
        object.metadata.name,
        'medsyn',
      ]);
      expect([object.kind, object.metadata.name, object.metadata.labels?.['app.kubernetes.io/part-of']]).toEqual([
        object.kind,
        object.metadata.name,
        'medsyn',
      ]);
    }
  });

  it.each(SERVICES)(
    'runs %s with gRPC probes, its metrics port advertised, its own account, a disruption budget and resources',
    (name) => {
      const deployment = find(objects, 'Deployment', name);
      const pod = deployment.spec.template;
      const container = pod.spec.containers[0];
      const env = Object.fromEntries(container.env.map((e: { name: string; value: string }) => [e.name, e.value]));
      const port = (portName: string) =>
        container.ports.find((p: { name: string }) => p.name === portName).containerPort;
      expect(port('grpc')).toBe(Number(env.GRPC_PORT));
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
        expect(container[probe].grpc.port).toBe(Number(env.GRPC_PORT));
      // What Prometheus reads (pod annotations) is where the service serves metrics.
      expect(pod.metadata.annotations).toEqual({
        'prometheus.io/scrape': 'true',
        'prometheus.io/port': env.METRICS_PORT,
        'prometheus.io/path': '/metrics',
      });
      expect(port('metrics')).toBe(Number(env.METRICS_PORT));
      expect(pod.spec.serviceAccountName).toBe(name);
      find(objects, 'ServiceAccount', name);
      expect(find(objects, 'PodDisruptionBudget', name).spec.selector.matchLabels).toEqual(
        deployment.spec.selector.matchLabels,
      );
      expect(find(objects, 'Service', name).spec.selector).toEqual(deployment.spec.selector.matchLabels);
      expect(container.resources.requests).toEqual({ cpu: expect.anything(), memory: expect.anything() });
      expect(container.resources.limits).toMatchObject({ cpu: expect.anything(), memory: expect.anything() });
      expect(
        container.envFrom.map(
          (e: { configMapRef?: { name: string }; secretRef?: { name: string } }) =>
            e.configMapRef?.name ?? e.secretRef?.name,
        ),
      ).toEqual(
        expect.arrayContaining([expect.stringMatching(/^medsyn-config/), expect.stringMatching(/^medsyn-store/)]),
      );
    },
  );

  it('runs every container but the DCGM exporter as non-root on a read-only root filesystem', () => {
    for (const { object, pod } of workloads(objects)) {
      if (object.metadata.name === 'dcgm-exporter') continue;
      expect([object.metadata.name, pod.spec.securityContext.runAsNonRoot]).toEqual([object.metadata.name, true]);
      expect(pod.spec.securityContext.runAsUser).toBeGreaterThan(0);
      for (const container of containers(pod.spec)) {
        expect([container.name, container.securityContext]).toEqual([
          container.name,
          { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } },
        ]);
      }
    }
  });

  it('mounts and reads only ConfigMaps and claims that it renders, each volume mounted where declared', () => {
    const named = (kind: string) => new Set(objects.filter((o) => o.kind === kind).map((o) => o.metadata.name));
    const configMaps = named('ConfigMap');
    const claims = named('PersistentVolumeClaim');
    for (const { object, pod } of workloads(objects)) {
      const volumes = pod.spec.volumes ?? [];
      const used = [
        ...volumes
          .filter((v: { configMap?: unknown }) => v.configMap)
          .map((v: { configMap: { name: string } }) => v.configMap.name),
        ...containers(pod.spec).flatMap((c) =>
          (c.envFrom ?? [])
            .filter((e: { configMapRef?: unknown }) => e.configMapRef)
            .map((e: { configMapRef: { name: string } }) => e.configMapRef.name),
        ),
      ];
      for (const name of used) expect(configMaps).toContain(name);
      for (const v of volumes.filter((v: { persistentVolumeClaim?: unknown }) => v.persistentVolumeClaim))
        expect(claims).toContain(v.persistentVolumeClaim.claimName);
      const declared = new Set([
        ...volumes.map((v: { name: string }) => v.name),
        ...(object.spec.volumeClaimTemplates ?? []).map((t: { metadata: { name: string } }) => t.metadata.name),
      ]);
      for (const c of containers(pod.spec))
        for (const m of c.volumeMounts ?? [])
          expect([c.name, m.name, declared.has(m.name)]).toEqual([c.name, m.name, true]);
    }
  });

  it('lets each NetworkPolicy port match a named port of a pod it selects', () => {
    // With the pods of the Job templates a service launches (the gpu-torch pretrainer's node ranks).
    const pods = [
      ...workloads(objects).map(({ pod }) => pod),
      ...launchedJobs(objects).map((job) => job.spec.template),
    ];
    const selects = (
      selector: {
        matchLabels?: Record<string, string>;
        matchExpressions?: Array<{ key: string; operator: string; values: string[] }>;
      },
      labels: Record<string, string> = {},
    ) =>
      Object.entries(selector.matchLabels ?? {}).every(([k, v]) => labels[k] === v) &&
      (selector.matchExpressions ?? []).every((e) => e.operator === 'In' && e.values.includes(labels[e.key]!));
    for (const policy of objects.filter((o) => o.kind === 'NetworkPolicy')) {
      const selected = pods.filter((pod) => selects(policy.spec.podSelector, pod.metadata.labels));
      expect([policy.metadata.name, selected.length > 0]).toEqual([policy.metadata.name, true]);
      const portNames = new Set(
        selected.flatMap((pod) =>
          containers(pod.spec).flatMap((c) => (c.ports ?? []).map((p: { name: string }) => p.name)),
        ),
      );
      // A rule without ports admits every port (the training ranks' NCCL connections use ephemeral ones).
      for (const rule of policy.spec.ingress ?? [])
        for (const { port } of rule.ports ?? [])
          expect([policy.metadata.name, portNames.has(port)]).toEqual([policy.metadata.name, true]);
    }
  });

  it('keeps MinIO to the services and the bucket Job, and the services to the pipeline clients', () => {
    const minio = find(objects, 'NetworkPolicy', 'minio-from-services');
    expect(minio.spec.ingress).toEqual([
      {
        from: [
          {
            podSelector: {
              matchExpressions: [
                { key: 'app.kubernetes.io/component', operator: 'In', values: ['service', 'store-setup'] },
              ],
            },
          },
        ],
        ports: [{ port: 's3' }],
      },
    ]);
    const serviceLabels = SERVICES.map(
      (name) => find(objects, 'Deployment', name).spec.template.metadata.labels['app.kubernetes.io/component'],
    );
    expect(serviceLabels).toEqual(SERVICES.map(() => 'service'));
    expect(find(objects, 'Job', 'minio-buckets').spec.template.metadata.labels['app.kubernetes.io/component']).toBe(
      'store-setup',
    );
    expect(find(objects, 'NetworkPolicy', 'default-deny-ingress').spec).toEqual({
      podSelector: {},
      policyTypes: ['Ingress'],
    });
  });

  it('stores artifacts in MinIO on a PersistentVolumeClaim, with a Job creating the bucket MEDSYN_STORE names', () => {
    const minio = find(objects, 'StatefulSet', 'minio');
    expect(minio.spec.volumeClaimTemplates[0].metadata.name).toBe('data');
    expect(minio.spec.template.spec.containers[0].volumeMounts).toContainEqual({ name: 'data', mountPath: '/data' });
    const store = new URL(find(objects, 'ConfigMap', 'medsyn-config').data!.MEDSYN_STORE!);
    expect(store.hostname).toBe('medsyn');
    const job = find(objects, 'Job', 'minio-buckets').spec.template.spec.containers[0];
    expect(job.env).toContainEqual({ name: 'BUCKETS', value: store.hostname });
    expect(new URL(store.searchParams.get('endpoint')!).host).toBe(
      `${find(objects, 'Service', 'minio').metadata.name}:9000`,
    );
  });
});

/** GPU placement of each workload: node affinity, toleration, GPU limit. */
function gpuPlacement(
  objects: K8sObject[],
): Record<string, { affinity: boolean; toleration: boolean; gpuLimit: boolean; cudaProvider: boolean }> {
  return Object.fromEntries(
    workloads(objects).map(({ object, pod }) => {
      const terms =
        pod.spec.affinity?.nodeAffinity?.requiredDuringSchedulingIgnoredDuringExecution?.nodeSelectorTerms ?? [];
      const all = containers(pod.spec);
      return [
        object.metadata.name,
        {
          affinity: terms.some((t: { matchExpressions: Array<{ key: string; operator: string; values: string[] }> }) =>
            t.matchExpressions.some(
              (e) => e.key === 'nvidia.com/gpu.present' && e.operator === 'In' && e.values.includes('true'),
            ),
          ),
          toleration: (pod.spec.tolerations ?? []).some(
            (t: { key: string; operator: string; effect: string }) =>
              t.key === 'nvidia.com/gpu' && t.operator === 'Exists' && t.effect === 'NoSchedule',
          ),
          gpuLimit: all.some((c) => c.resources?.limits?.['nvidia.com/gpu'] === '1'),
          cudaProvider: all.some((c) =>
            (c.env ?? []).some(
              (e: { name: string; value: string }) => e.name === 'EXECUTION_PROVIDER' && e.value === 'cuda',
            ),
          ),
        },
      ];
    }),
  );
}

describe('gpu overlay', () => {
  const objects = overlays.gpu;

  it('pins exactly the synthesizer and the pretrainer (and the synthesizer in the dataset Job) to GPU nodes, one GPU each, on the CUDA provider', () => {
    const gpu = { affinity: true, toleration: true, gpuLimit: true, cudaProvider: true };
    const cpu = { affinity: false, toleration: false, gpuLimit: false, cudaProvider: false };
    expect(gpuPlacement(objects)).toEqual({
      anonymizer: cpu,
      synthesizer: gpu,
      pretrainer: gpu,
      evaluator: cpu,
      minio: cpu,
      'minio-buckets': cpu,
      'synthesize-dataset': gpu,
      // Runs on every GPU node and watches all its GPUs without claiming one.
      'dcgm-exporter': { affinity: true, toleration: true, gpuLimit: false, cudaProvider: false },
    });
    // Only the synthesizer container of the Job holds the GPU, not its client.
    const job = find(objects, 'Job', 'synthesize-dataset').spec.template.spec;
    expect(
      containers(job)
        .filter((c) => c.resources.limits['nvidia.com/gpu'])
        .map((c) => c.name),
    ).toEqual(['synthesizer']);
  });

  it('runs the synthetic dataset as an Indexed Job whose completion index and count become the shard', () => {
    const job = find(objects, 'Job', 'synthesize-dataset');
    expect(job.spec.completionMode).toBe('Indexed');
    const client = job.spec.template.spec.containers.find((c: { name: string }) => c.name === 'shard');
    const env = Object.fromEntries(client.env.map((e: { name: string; value: string }) => [e.name, e.value]));
    expect(Number(env.SHARD_COUNT)).toBe(job.spec.completions);
    expect(job.spec.parallelism).toBe(job.spec.completions);
    // The synthesizer is a native sidecar: it stops when the shard's client exits.
    expect(job.spec.template.spec.initContainers[0]).toMatchObject({ name: 'synthesizer', restartPolicy: 'Always' });
    expect(env.SYNTHESIZER_TARGET).toBe(`127.0.0.1:${job.spec.template.spec.initContainers[0].ports[0].containerPort}`);
    const script = find(
      objects,
      'ConfigMap',
      client.volumeMounts[0].name === 'synthesize-shard'
        ? job.spec.template.spec.volumes.find((v: { name: string }) => v.name === 'synthesize-shard').configMap.name
        : '',
    );
    expect(script.data!['synthesize-shard.js']).toBe(
      fs.readFileSync(path.join(k8sDir, 'overlays', 'gpu', 'synthesize-shard.js'), 'utf8'),
    );
    expect(client.command).toEqual(['node', `${client.volumeMounts[0].mountPath}/synthesize-shard.js`]);
  });

  it('autoscales the anonymizer and the synthesizer, which leave their replica count to the autoscaler', () => {
    const hpas = objects.filter((o) => o.kind === 'HorizontalPodAutoscaler');
    expect(hpas.map((h) => h.spec.scaleTargetRef).sort((a, b) => a.name.localeCompare(b.name))).toEqual([
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'anonymizer' },
      { apiVersion: 'apps/v1', kind: 'Deployment', name: 'synthesizer' },
    ]);
    for (const hpa of hpas) {
      expect(find(objects, 'Deployment', hpa.spec.scaleTargetRef.name).spec.replicas).toBeUndefined();
      expect(hpa.spec.minReplicas).toBeLessThanOrEqual(hpa.spec.maxReplicas);
    }
    expect(find(objects, 'Deployment', 'pretrainer').spec.replicas).toBe(1);
  });

  it('scrapes the services, MinIO and the DCGM exporter through ServiceMonitors on ports their Services name', () => {
    const monitors = objects.filter((o) => o.kind === 'ServiceMonitor');
    expect(monitors.map((m) => m.metadata.name).sort()).toEqual(['dcgm-exporter', 'medsyn-services', 'minio']);
    for (const monitor of monitors) {
      const services = objects.filter(
        (o) =>
          o.kind === 'Service' &&
          Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => o.metadata.labels?.[k] === v),
      );
      expect([monitor.metadata.name, services.length]).toEqual([
        monitor.metadata.name,
        monitor.metadata.name === 'medsyn-services' ? 4 : 1,
      ]);
      for (const service of services)
        expect(service.spec.ports.map((p: { name: string }) => p.name)).toContain(monitor.spec.endpoints[0].port);
    }
  });

  it('ships the alert rules of deploy/observability/alerts.yaml unchanged as a PrometheusRule', () => {
    const rules = parse(fs.readFileSync(path.join(repoRoot, 'deploy', 'observability', 'alerts.yaml'), 'utf8'));
    expect(find(objects, 'PrometheusRule', 'medsyn-alerts').spec).toEqual(rules);
  });

  it('ships the Grafana dashboard for the dashboard sidecar', () => {
    const dashboards = objects.find(
      (o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('medsyn-grafana-dashboards'),
    )!;
    expect(dashboards.metadata.labels).toMatchObject({ grafana_dashboard: '1' });
    expect(JSON.parse(dashboards.data!['medsyn.json']!).uid).toBe('medsyn-overview');
  });
});

describe('local overlay', () => {
  const objects = overlays.local;

  it('runs the images npx nx docker-build tags (dev), which the kubelet does not pull again', () => {
    for (const name of SERVICES)
      expect(find(objects, 'Deployment', name).spec.template.spec.containers[0].image).toBe(`medsyn/${name}:dev`);
    const script = JSON.parse(fs.readFileSync(path.join(repoRoot, 'services', 'anonymizer', 'package.json'), 'utf8'))
      .scripts['docker-build'];
    expect(script).toContain('medsyn/anonymizer:${IMAGE_TAG:-dev}');
  });

  it('runs on CPU nodes only, one replica of each service', () => {
    for (const placement of Object.values(gpuPlacement(objects)))
      expect(placement).toEqual({ affinity: false, toleration: false, gpuLimit: false, cudaProvider: false });
    for (const name of SERVICES) expect(find(objects, 'Deployment', name).spec.replicas).toBe(1);
    expect(objects.filter((o) => o.kind === 'HorizontalPodAutoscaler' || o.kind === 'ServiceMonitor')).toEqual([]);
  });

  it('generates the development Secrets the base refers to, and a small MinIO', () => {
    const secrets = objects
      .filter((o) => o.kind === 'Secret')
      .map((o) => o.metadata.name.replace(/-[a-z0-9]{10}$/, ''));
    expect(secrets.sort()).toEqual(['medsyn-grpc-auth', 'medsyn-minio', 'medsyn-store']);
    const auth = objects.find((o) => o.kind === 'Secret' && o.metadata.name.startsWith('medsyn-grpc-auth'))!;
    expect(Buffer.from(auth.data!.GRPC_AUTH_TOKEN!, 'base64').toString().length).toBeGreaterThanOrEqual(16);
    expect(find(objects, 'StatefulSet', 'minio').spec.volumeClaimTemplates[0].spec.resources.requests.storage).toBe(
      '2Gi',
    );
  });

  it('runs a Prometheus with the scrape config and alert rules of the repository', () => {
    const config = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('medsyn-prometheus'))!;
    expect(config.data!['prometheus.yml']).toBe(
      fs.readFileSync(path.join(k8sDir, 'overlays', 'local', 'prometheus.yml'), 'utf8'),
    );
    const rules = objects.find((o) => o.kind === 'ConfigMap' && o.metadata.name.startsWith('medsyn-alert-rules'))!;
    expect(rules.data!['alerts.yaml']).toBe(
      fs.readFileSync(path.join(repoRoot, 'deploy', 'observability', 'alerts.yaml'), 'utf8'),
    );
    const pod = find(objects, 'Deployment', 'prometheus').spec.template.spec;
    const mountOf = (configMap: string) => {
      const volume = pod.volumes.find((v: { configMap?: { name: string } }) => v.configMap?.name === configMap);
      return pod.containers[0].volumeMounts.find((m: { name: string }) => m.name === volume.name).mountPath;
    };
    expect(pod.containers[0].args).toContain(`--config.file=${mountOf(config.metadata.name)}/prometheus.yml`);
    expect(parse(config.data!['prometheus.yml']!).rule_files).toEqual([`${mountOf(rules.metadata.name)}/*.yaml`]);
  });
});

describe('gpu-torch overlay', () => {
  const objects = overlays['gpu-torch'];
  const images = (list: K8sObject[]) =>
    workloads(list).flatMap(({ object, pod }) =>
      containers(pod.spec).map((c) => `${object.metadata.name}/${c.name} ${c.image}`),
    );
  const deployment = find(objects, 'Deployment', 'pretrainer');
  const front = deployment.spec.template.spec;
  const frontEnv = Object.fromEntries(
    front.containers[0].env.map((e: { name: string; value?: string }) => [e.name, e.value]),
  );
  // The Job manifest the pretrainer makes each training job's Indexed Job from (services/pretrainer-torch, indexed_job.py).
  const templateVolume = front.volumes.find((v: { name: string }) => v.name === 'pretrain-ranks-job');
  const templateMount = front.containers[0].volumeMounts.find((m: { name: string }) => m.name === 'pretrain-ranks-job');
  const job = parse(
    find(objects, 'ConfigMap', templateVolume.configMap.name).data![path.basename(frontEnv.PRETRAINER_JOB_TEMPLATE)]!,
  ) as K8sObject;
  const pod = job.spec.template.spec;
  const ranks = pod.containers[0];

  it('is the gpu overlay with the pretrainer on the PyTorch image as a front without a GPU, launching Indexed Jobs', () => {
    const swapped = images(overlays.gpu).map((line) =>
      line.replace(
        /^pretrainer\/pretrainer medsyn\/pretrainer:latest$/,
        'pretrainer/pretrainer medsyn/pretrainer-torch:latest',
      ),
    );
    expect(images(objects).sort()).toEqual(swapped.sort());
    expect(frontEnv).toMatchObject({
      PRETRAINER_LAUNCHER: 'kubernetes',
      PRETRAINER_NNODES: expect.stringMatching(/^\d+$/),
      PRETRAINER_NPROC_PER_NODE: expect.stringMatching(/^\d+$/),
    });
    expect(path.dirname(frontEnv.PRETRAINER_JOB_TEMPLATE)).toBe(templateMount.mountPath);
    expect(front.containers[0].resources.limits['nvidia.com/gpu']).toBeUndefined();
    expect(front.affinity).toBeUndefined();
    // Same contract, same Service and port: clients change nothing.
    expect(find(objects, 'Service', 'pretrainer')).toEqual(find(overlays.gpu, 'Service', 'pretrainer'));
  });

  it('lets the pretrainer create, find and delete Jobs and list pods in its namespace, and nothing more', () => {
    expect(front.serviceAccountName).toBe('pretrainer');
    expect(front.automountServiceAccountToken).toBe(true);
    expect(
      (find(objects, 'ServiceAccount', 'pretrainer') as K8sObject & { automountServiceAccountToken?: boolean })
        .automountServiceAccountToken,
    ).toBe(true);
    const binding = find(objects, 'RoleBinding', 'pretrainer-launcher') as K8sObject & {
      roleRef: { kind: string; name: string };
      subjects: unknown[];
    };
    expect(binding.subjects).toEqual([{ kind: 'ServiceAccount', name: 'pretrainer', namespace: 'medsyn' }]);
    expect(binding.roleRef.kind).toBe('Role');
    const role = find(objects, 'Role', binding.roleRef.name) as K8sObject & { rules: unknown[] };
    expect(role.rules).toEqual([
      { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create', 'list', 'delete'] },
      { apiGroups: [''], resources: ['pods'], verbs: ['list'] },
    ]);
    expect(objects.filter((o) => o.kind === 'ClusterRole' || o.kind === 'ClusterRoleBinding')).toEqual([]);
  });

  it('has a node-rank Job template that is a valid Indexed Job of non-root GPU pods in the rendezvous subdomain', () => {
    const Job = modelFor('batch/v1', 'Job')!;
    expect(() => new Job(job).validate()).not.toThrow();
    expect(job.spec).toMatchObject({ completionMode: 'Indexed', backoffLimit: 0 });
    const service = find(objects, 'Service', pod.subdomain);
    expect(service.spec).toMatchObject({ clusterIP: 'None', publishNotReadyAddresses: true, ports: [{ port: 29500 }] });
    expect(Object.entries(service.spec.selector).every(([k, v]) => job.spec.template.metadata.labels[k] === v)).toBe(
      true,
    );
    expect(ranks.ports.map((p: { containerPort: number }) => p.containerPort)).toEqual([29500]);
    expect(ranks.image).toBe(front.containers[0].image);
    expect(ranks.terminationMessagePolicy).toBe('FallbackToLogsOnError');
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: front.securityContext.runAsUser });
    expect(ranks.securityContext).toEqual({
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
    });
    // The launcher writes the job's spec to /tmp (the root filesystem is read-only).
    expect(ranks.volumeMounts.map((m: { mountPath: string }) => m.mountPath)).toContain('/tmp');
    // Its ConfigMap and Secret are the services' own, rendered unhashed in this overlay.
    expect(ranks.envFrom).toEqual([
      { configMapRef: { name: 'medsyn-config' } },
      { secretRef: { name: 'medsyn-store' } },
    ]);
    find(objects, 'ConfigMap', 'medsyn-config');
    // One node rank per node, on GPU nodes.
    expect(pod.affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey).toBe(
      'kubernetes.io/hostname',
    );
    expect(pod.tolerations).toContainEqual({ key: 'nvidia.com/gpu', operator: 'Exists', effect: 'NoSchedule' });
  });

  it('lets the ranks (only) reach each other', () => {
    const policy = find(objects, 'NetworkPolicy', 'pretrain-ranks-between-ranks');
    expect(policy.spec.podSelector.matchLabels).toEqual({
      'app.kubernetes.io/name': job.spec.template.metadata.labels['app.kubernetes.io/name'],
    });
    expect(policy.spec.ingress).toEqual([
      { from: [{ podSelector: { matchLabels: { 'app.kubernetes.io/name': 'pretrain-ranks' } } }] },
    ]);
  });
});

describe('swapping an implementation', () => {
  it('points the synthesizer servers at another image through an overlay, and nothing else', () => {
    const images = (objects: K8sObject[]) =>
      workloads(objects).flatMap(({ object, pod }) =>
        containers(pod.spec).map((c) => `${object.metadata.name}/${c.name} ${c.image}`),
      );
    const swapped = images(
      renderOverlay({
        resources: ['overlays/gpu'],
        images: [
          { name: 'medsyn/synthesizer', newName: 'registry.example.org/acme/fast-synthesizer', newTag: '2.3.1' },
        ],
      }),
    );
    const expected = images(overlays.gpu).map((line) =>
      line.replace(/ medsyn\/synthesizer:latest$/, ' registry.example.org/acme/fast-synthesizer:2.3.1'),
    );
    expect(swapped).toEqual(expected);
    expect(swapped.filter((line) => line.includes('fast-synthesizer'))).toEqual([
      'synthesizer/synthesizer registry.example.org/acme/fast-synthesizer:2.3.1',
      'synthesize-dataset/synthesizer registry.example.org/acme/fast-synthesizer:2.3.1',
    ]);
  });
});

describe('the tls component', () => {
  const objects = renderOverlay({ resources: ['overlays/gpu'], components: ['components/tls'] });

  it('serves each service over TLS from the medsyn-tls Secret, probing the port (gRPC probes are plaintext)', () => {
    for (const name of SERVICES) {
      const pod = find(objects, 'Deployment', name).spec.template.spec;
      const container = pod.containers[0];
      expect(pod.volumes).toContainEqual({ name: 'tls', secret: { secretName: 'medsyn-tls' } });
      const mount = container.volumeMounts.find((m: { name: string }) => m.name === 'tls');
      expect(container.env).toEqual(
        expect.arrayContaining([
          { name: 'GRPC_TLS_CERT', value: `${mount.mountPath}/tls.crt` },
          { name: 'GRPC_TLS_KEY', value: `${mount.mountPath}/tls.key` },
        ]),
      );
      for (const probe of ['startupProbe', 'readinessProbe', 'livenessProbe'])
        expect(container[probe].tcpSocket).toEqual({ port: 'grpc' });
    }
    // The shard Job's client talks to its own sidecar over loopback, in plaintext.
    expect(JSON.stringify(find(objects, 'Job', 'synthesize-dataset'))).not.toContain('GRPC_TLS');
  });

  it('still validates against the Kubernetes OpenAPI schema', () => {
    for (const object of objects.filter((o) => o.kind === 'Deployment'))
      new (modelFor(object.apiVersion, object.kind)!)(object).validate();
  });
});
