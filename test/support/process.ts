/** Child processes the tests run while the server answers from this same process. */
import { spawn, type SpawnOptionsWithoutStdio } from 'node:child_process';

/** A finished child process: exit code (null when killed by a signal) and its whole output. */
export interface Run {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `command` with `args` and resolves when it exits. Asynchronous on purpose (never spawnSync):
 * the child usually talks to an app listening in this process, which must keep answering meanwhile.
 * `input`, when given, is written to the child's stdin (then closed).
 */
export function runProcess(
  command: string,
  args: readonly string[],
  options: SpawnOptionsWithoutStdio & { input?: string } = {},
): Promise<Run> {
  const { input, ...spawnOptions } = options;
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, spawnOptions);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(input);
  });
}
