import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '@medsyn/testing';

// The pipeline is a gRPC client: it must install and start without onnxruntime (docs/architecture.md).
const workspaces = new Map<string, string>();
for (const folder of ['libs', 'services', 'tests']) {
  for (const name of fs.readdirSync(path.join(repoRoot, folder))) {
    const file = path.join(repoRoot, folder, name, 'package.json');
    if (fs.existsSync(file)) workspaces.set(JSON.parse(fs.readFileSync(file, 'utf8')).name, file);
  }
}
const dependenciesOf = (pkg: string): string[] =>
  Object.keys(JSON.parse(fs.readFileSync(workspaces.get(pkg)!, 'utf8')).dependencies ?? {});

/** Every package a workspace needs at run time, its own dependencies' included. */
function runtimeClosure(pkg: string, seen = new Set<string>()): Set<string> {
  for (const dep of dependenciesOf(pkg)) {
    if (seen.has(dep)) continue;
    seen.add(dep);
    if (workspaces.has(dep)) runtimeClosure(dep, seen);
  }
  return seen;
}

describe('the pipeline library', () => {
  it('needs no onnxruntime at run time, not even through another workspace', () => {
    expect([...runtimeClosure('@medsyn/pipeline')].filter((dep) => dep.startsWith('onnxruntime'))).toEqual([]);
  });

  it('would notice a workspace that brings onnxruntime in', () => {
    expect(runtimeClosure('@medsyn/vlp').has('onnxruntime-node')).toBe(true);
  });
});
