import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { makeTempDir, repoRoot } from '@medsyn/testing';
import { parseAllDocuments } from 'yaml';

/** A rendered Kubernetes object, loosely typed: the tests read what they assert. */
export type K8sObject = {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  spec?: any;
  data?: Record<string, string>;
};

export const SERVICES = ['anonymizer', 'synthesizer', 'pretrainer', 'evaluator'] as const;
export const k8sDir = path.join(repoRoot, 'deploy', 'k8s');

/** `kubectl kustomize <dir>` (kubectl's built-in kustomize), parsed. */
export function render(dir: string): K8sObject[] {
  const text = execFileSync('kubectl', ['kustomize', dir], { encoding: 'utf8' });
  return parseAllDocuments(text).map((doc) => doc.toJS() as K8sObject);
}

/**
 * Renders a throw-away overlay, as a user would write one: `resources` and `components` are paths
 * under deploy/k8s (made relative, as kustomize requires), the rest is copied as it is.
 */
export function renderOverlay({
  resources = [],
  components = [],
  ...rest
}: {
  resources?: string[];
  components?: string[];
  [key: string]: unknown;
}): K8sObject[] {
  const tmp = makeTempDir('overlay');
  try {
    const relative = (dirs: string[]) => dirs.map((dir) => path.relative(tmp.dir, path.join(k8sDir, dir)));
    fs.writeFileSync(
      path.join(tmp.dir, 'kustomization.yaml'),
      JSON.stringify({ resources: relative(resources), components: relative(components), ...rest }),
    );
    return render(tmp.dir);
  } finally {
    tmp.remove();
  }
}

const WORKLOADS = new Set(['Deployment', 'StatefulSet', 'DaemonSet', 'Job']);

/** The pod template of a workload (Deployment, StatefulSet, DaemonSet, Job). */
export interface Workload {
  object: K8sObject;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  pod: { metadata: { labels?: Record<string, string>; annotations?: Record<string, string> }; spec: any };
}

export function workloads(objects: K8sObject[]): Workload[] {
  return objects.filter((o) => WORKLOADS.has(o.kind)).map((object) => ({ object, pod: object.spec.template }));
}

/** All containers of a pod spec, init (and native sidecar) containers included. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function containers(podSpec: any): any[] {
  return [...(podSpec.initContainers ?? []), ...podSpec.containers];
}

export function find(objects: K8sObject[], kind: string, name: string): K8sObject {
  const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
  if (!found) throw new Error(`no ${kind} ${name} in the rendered manifests`);
  return found;
}
