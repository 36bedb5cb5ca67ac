import { spawnSync } from 'node:child_process';

/**
 * Runs Prometheus' own linter (`promtool check metrics`, Debian package prometheus) on an
 * exposition; resolves with its complaints ('' when clean). Fails loudly when promtool is absent:
 * .ci/run installs it.
 */
export function promtoolCheckMetrics(exposition: string): string {
  const result = spawnSync('promtool', ['check', 'metrics'], { input: exposition, encoding: 'utf8' });
  if (result.error)
    throw new Error(
      `promtool not runnable (${result.error.message}); install Debian's prometheus package (see .ci/run)`,
    );
  return `${result.stdout}${result.stderr}`.trim() + (result.status === 0 ? '' : `\n(promtool exit ${result.status})`);
}
