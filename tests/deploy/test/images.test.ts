import * as fs from 'node:fs';
import * as path from 'node:path';
import { repoRoot } from '@medsyn/testing';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { parse } from 'yaml';
import { SERVICES, find, k8sDir, render } from './manifests';

/**
 * The images' Dockerfiles, read with dockerfile-ast (the parser of VS Code's Docker support):
 * there is no Docker engine (nor hadolint) on the test machines, so these check the structure
 * the manifests rely on; `npx nx docker-build <service>` builds them where Docker runs.
 */
const GPU_SERVICES = new Set(['synthesizer', 'pretrainer']);
const base = render(path.join(k8sDir, 'base'));

function stages(
  name: string,
): Array<{ from: { image: string; tag: string | null; stage: string | null }; instructions: Instruction[] }> {
  const dockerfile = DockerfileParser.parse(
    fs.readFileSync(path.join(repoRoot, 'services', name, 'Dockerfile'), 'utf8'),
  );
  const result: ReturnType<typeof stages> = [];
  for (const instruction of dockerfile.getInstructions()) {
    if (instruction.getKeyword() === 'FROM') {
      const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === instruction.getRange().start.line)!;
      result.push({
        from: { image: from.getImageName()!, tag: from.getImageTag(), stage: from.getBuildStage() },
        instructions: [],
      });
    } else {
      result.at(-1)!.instructions.push(instruction);
    }
  }
  return result;
}

const args = (instructions: Instruction[], keyword: string) =>
  instructions.filter((i) => i.getKeyword() === keyword).map((i) => i.getArgumentsContent() ?? '');

describe.each(SERVICES)('the %s image', (name) => {
  const [build, runtime, ...more] = stages(name);
  const container = find(base, 'Deployment', name).spec.template.spec;

  it('builds in one stage and runs from another, from pinned base images', () => {
    expect(more).toEqual([]);
    expect(build!.from.stage).toBe('build');
    expect(args(runtime!.instructions, 'COPY').every((a) => a.startsWith('/'))).toBe(true);
    for (const { from } of [build!, runtime!]) expect(from.tag).toMatch(/^\d+\.\d+/);
    expect(args(build!.instructions, 'RUN').join('\n')).toContain(`npx nx run ${name}:build`);
    expect(args(build!.instructions, 'RUN').join('\n')).toContain('npm prune --omit=dev');
  });

  it("runs as the non-root user the manifests require, the service's built entry file, on its ports", () => {
    expect(args(runtime!.instructions, 'USER')).toEqual([
      `${container.securityContext.runAsUser}:${container.securityContext.runAsGroup}`,
    ]);
    expect(container.securityContext.runAsUser).toBeGreaterThan(0);
    const main = JSON.parse(fs.readFileSync(path.join(repoRoot, 'services', name, 'package.json'), 'utf8')).main;
    expect(JSON.parse(args(runtime!.instructions, 'CMD')[0]!)).toEqual(['node', `services/${name}/${main}`]);
    const ports = container.containers[0].ports.map((p: { containerPort: number }) => p.containerPort).join(' ');
    expect(args(runtime!.instructions, 'EXPOSE')).toEqual([ports]);
  });

  it(
    GPU_SERVICES.has(name)
      ? 'runs on the CUDA 12 runtime with onnxruntime-node installed for CUDA 12'
      : "runs on plain Node with onnxruntime-node's CPU binaries",
    () => {
      const env = args(build!.instructions, 'ENV').join(' ');
      if (GPU_SERVICES.has(name)) {
        expect(runtime!.from.image).toBe('nvidia/cuda');
        expect(runtime!.from.tag).toMatch(/^12\.\d+\.\d+-cudnn-runtime-/);
        expect(env).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
        expect(args(runtime!.instructions, 'COPY')).toContain('/usr/local/bin/node /usr/local/bin/node');
      } else {
        expect(runtime!.from.image).toBe('node');
        expect(env).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
      }
    },
  );
});

describe('the pretrainer-torch image', () => {
  const dockerfile = DockerfileParser.parse(
    fs.readFileSync(path.join(repoRoot, 'services', 'pretrainer-torch', 'Dockerfile'), 'utf8'),
  );
  const froms = dockerfile.getFROMs();
  const instructions = dockerfile.getInstructions();
  const runtimeStart = froms[1]!.getRange().start.line;
  const runtime = instructions.filter((i) => i.getRange().start.line > runtimeStart);
  const build = instructions.filter((i) => i.getRange().start.line < runtimeStart);
  const gpuTorch = render(path.join(k8sDir, 'overlays', 'gpu-torch'));
  const container = find(gpuTorch, 'Deployment', 'pretrainer').spec.template.spec;

  it('builds and runs on one pinned official PyTorch CUDA image, generating the stubs from proto/ at build', () => {
    expect(froms.map((f) => `${f.getImageName()}:${f.getImageTag()}`)).toEqual([
      `pytorch/pytorch:${froms[0]!.getImageTag()}`,
      `pytorch/pytorch:${froms[0]!.getImageTag()}`,
    ]);
    expect(froms[0]!.getImageTag()).toMatch(/^\d+\.\d+\.\d+-cuda12\.\d+-cudnn\d+-runtime$/);
    expect(froms[0]!.getBuildStage()).toBe('build');
    expect(args(build, 'RUN').join('\n')).toContain('python -m medsyn_pretrainer_torch.contracts');
    expect(args(build, 'COPY')).toContain('proto /app/proto');
    const requirements = fs
      .readFileSync(path.join(repoRoot, 'services', 'pretrainer-torch', 'requirements.txt'), 'utf8')
      .split('\n')
      .filter((l) => l && !l.startsWith('#'));
    for (const line of requirements) expect(line).toMatch(/^[a-z0-9-]+==\d+(\.\d+)*$/);
  });

  it('runs as the non-root user of the gpu-torch overlay, the service module, on its ports', () => {
    expect(args(runtime, 'USER')).toEqual([
      `${container.securityContext.runAsUser}:${container.securityContext.runAsGroup}`,
    ]);
    expect(JSON.parse(args(runtime, 'CMD')[0]!)).toEqual(['python', '-m', 'medsyn_pretrainer_torch.main']);
    const ports = container.containers[0].ports.map((p: { containerPort: number }) => p.containerPort);
    const template = parse(
      Object.values(
        find(
          gpuTorch,
          'ConfigMap',
          container.volumes.find((v: { name: string }) => v.name === 'pretrain-ranks-job').configMap.name,
        ).data!,
      )[0]!,
    );
    const rendezvous = template.spec.template.spec.containers[0].ports.map(
      (p: { containerPort: number }) => p.containerPort,
    );
    expect(args(runtime, 'EXPOSE')).toEqual([[...ports, ...rendezvous].join(' ')]);
  });
});

describe('.dockerignore', () => {
  const patterns = fs
    .readFileSync(path.join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'));

  it('keeps installed and built trees out of the build context, and every workspace manifest in', () => {
    expect(patterns).toEqual(expect.arrayContaining(['**/node_modules', '**/dist', '.git']));
    const workspaces: string[] = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).workspaces;
    // npm ci needs every workspace's package.json next to package-lock.json.
    for (const workspace of workspaces)
      expect(patterns.filter((p) => workspace.startsWith(p.replace(/\/?\*+$/, '')))).toEqual([]);
  });
});
