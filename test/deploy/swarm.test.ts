/**
 * deploy/swarm/, checked offline (scripts/swarm-smoke.sh runs it live, in CI's Docker step): the stack
 * file has what a lossless rolling update needs, and HAProxy's configuration re-resolves the replicas,
 * health-checks them, retries a failed request (POST included) on another one, and has timeouts that
 * agree with roiserve's own (read from src/config.ts's defaults, not restated here).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { envSchema, parseConfig } from '../../src/config.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const swarmDir = join(repo, 'deploy/swarm');

type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/**
 * The stack file as `docker stack deploy` reads it with none of its variables set: in every string
 * value (Compose interpolates after parsing the YAML), `${NAME:-default}` becomes the default and
 * `${NAME}` empty.
 */
function interpolate(value: unknown): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{\w+(?::?-([^}]*))?\}/g, (_match, fallback?: string) => fallback ?? '');
  }
  if (Array.isArray(value)) return value.map(interpolate);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v)]));
  }
  return value;
}

const stack = interpolate(parse(readFileSync(join(swarmDir, 'docker-stack.yml'), 'utf8'))) as Doc;
const roiserve = stack.services.roiserve as Doc;
const lb = stack.services.lb as Doc;
const defaults = parseConfig({});

/** Seconds of a Compose duration (`20s`, `1m30s`, `500ms`). */
function composeSeconds(text: string): number {
  const units: Record<string, number> = { ms: 0.001, s: 1, m: 60, h: 3600 };
  const parts = [...String(text).matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  expect(parts.map((p) => p[0]).join(''), `duration ${text}`).toBe(String(text));
  return parts.reduce((sum, [, n, unit]) => sum + Number(n) * units[unit], 0);
}

/** Seconds of an HAProxy time (milliseconds unless a unit follows: `us`, `ms`, `s`, `m`, `h`, `d`). */
function haproxySeconds(text: string): number {
  const m = /^(\d+)(us|ms|s|m|h|d)?$/.exec(text);
  expect(m, `HAProxy time ${text}`).not.toBeNull();
  const units: Record<string, number> = { us: 1e-6, ms: 0.001, s: 1, m: 60, h: 3600, d: 86400 };
  return Number(m![1]) * units[m![2] ?? 'ms'];
}

/** haproxy.cfg as sections: `"backend roiserve"` → its directive lines, comments and blanks removed. */
function haproxySections(text: string): Map<string, string[]> {
  const sections = new Map<string, string[]>();
  let current: string[] | undefined;
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') continue;
    if (/^\S/.test(raw)) {
      current = [];
      sections.set(line, current);
    } else {
      expect(current, `directive outside a section: ${line}`).toBeDefined();
      current!.push(line.replace(/\s+/g, ' '));
    }
  }
  return sections;
}

const cfg = haproxySections(readFileSync(join(swarmDir, 'haproxy/haproxy.cfg'), 'utf8'));
const section = (name: string): string[] => {
  expect([...cfg.keys()], `haproxy.cfg has a "${name}" section`).toContain(name);
  return cfg.get(name)!;
};
/** The arguments of the first directive `keyword` in `lines` (undefined when absent). */
const directive = (lines: string[], keyword: string): string[] | undefined =>
  lines
    .find((l) => l === keyword || l.startsWith(`${keyword} `))
    ?.slice(keyword.length)
    .trim()
    .split(' ')
    .filter((w) => w !== '');
const backendName = [...cfg.keys()].find((k) => k.startsWith('backend '))!;
const backend = () => section(backendName);
const timeout = (event: string): number => {
  const args = directive(section('defaults'), `timeout ${event}`) ?? directive(backend(), `timeout ${event}`);
  expect(args, `timeout ${event} is set`).toBeDefined();
  return haproxySeconds(args![0]);
};

describe('deploy/swarm/docker-stack.yml', () => {
  it('runs 2 roiserve replicas without a virtual IP, on the network the load balancer is on', () => {
    expect(roiserve.deploy.replicas).toBe(2);
    // dnsrr: the service name resolves to every task, so HAProxy (not IPVS) balances and retries.
    expect(roiserve.deploy.endpoint_mode).toBe('dnsrr');
    expect(roiserve.networks).toEqual(lb.networks);
    for (const net of roiserve.networks as string[]) expect(stack.networks[net].driver).toBe('overlay');
  });

  it('updates start-first, rolls back on failure, restarts any stopped task', () => {
    const update = roiserve.deploy.update_config as Doc;
    expect(update.order).toBe('start-first');
    expect(update.parallelism).toBe(1);
    expect(update.failure_action).toBe('rollback');
    expect(composeSeconds(update.monitor)).toBeGreaterThan(0);
    expect(roiserve.deploy.rollback_config.order).toBe('start-first');
    expect(roiserve.deploy.restart_policy.condition).toBe('any');
  });

  it('health-checks /readyz, and gives the drain more time than SHUTDOWN_GRACE_SECONDS', () => {
    const test = (roiserve.healthcheck.test as string[]).join(' ');
    expect(test).toMatch(/\/readyz/);
    expect(roiserve.healthcheck.test[0]).toBe('CMD');
    const grace = parseConfig(roiserve.environment as Record<string, string>).shutdownGraceSeconds;
    expect(composeSeconds(roiserve.stop_grace_period)).toBeGreaterThan(grace);
    expect(roiserve.read_only).toBe(true);
    expect(roiserve.tmpfs).toContain('/tmp');
  });

  it('sets only environment variables roiserve reads', () => {
    const known = Object.keys(envSchema.shape);
    for (const name of Object.keys(roiserve.environment as Doc)) expect(known, name).toContain(name);
  });

  it('publishes the load balancer in host mode, on the port HAProxy binds', () => {
    const ports = lb.ports as Doc[];
    expect(ports).toHaveLength(1);
    // The ingress routing mesh is not used: it does not work everywhere, and would balance twice.
    expect(ports[0].mode).toBe('host');
    const bind = directive(section('frontend http'), 'bind')![0];
    expect(bind.split(':').at(-1)).toBe(String(ports[0].target));
    // SIGUSR1 is HAProxy's soft stop; Docker must wait longer than HAProxy's own hard stop.
    expect(lb.stop_signal).toBe('SIGUSR1');
    const hardStop = haproxySeconds(directive(section('global'), 'hard-stop-after')![0]);
    expect(composeSeconds(lb.stop_grace_period)).toBeGreaterThan(hardStop);
  });
});

describe('deploy/swarm/haproxy/haproxy.cfg', () => {
  it("finds the replicas through Docker's DNS, re-resolving them", () => {
    const resolvers = [...cfg.keys()].find((k) => k.startsWith('resolvers '))!;
    expect(resolvers, 'a resolvers section').toBeDefined();
    expect(directive(section(resolvers), 'nameserver')).toEqual(['dns', '127.0.0.11:53']);
    expect(haproxySeconds(directive(section(resolvers), 'hold valid')![0])).toBeLessThanOrEqual(2);
    expect(haproxySeconds(directive(section(resolvers), 'timeout resolve')![0])).toBeLessThanOrEqual(2);
    const template = directive(backend(), 'server-template')!;
    expect(template).toBeDefined();
    // The stack's service name (or tasks.<name>, every task of it), on roiserve's port.
    expect(template[2]).toMatch(/^(tasks\.)?roiserve:8080$/);
    expect(Object.keys(stack.services)).toContain(template[2].replace(/^tasks\./, '').split(':')[0]);
    // Slots for every replica plus the one a start-first update adds.
    const [, last] = template[1].split('-').map(Number);
    expect(last).toBeGreaterThanOrEqual(roiserve.deploy.replicas + 1);
    const serverOptions = [...template.slice(3), ...(directive(backend(), 'default-server') ?? [])];
    expect(serverOptions).toContain('check');
    expect(serverOptions.join(' ')).toContain(`resolvers ${resolvers.split(' ')[1]}`);
    expect(serverOptions.join(' ')).toContain('init-addr none');
  });

  it('health-checks /readyz', () => {
    expect(backend()).toContain('option httpchk');
    expect(directive(backend(), 'http-check send')).toEqual(['meth', 'GET', 'uri', '/readyz']);
    expect(directive(backend(), 'http-check expect')).toEqual(['status', '200']);
  });

  it('retries a failed request on another replica, POST included', () => {
    const retryOn = directive(backend(), 'retry-on')!;
    expect(retryOn).toBeDefined();
    // refused connection (stopping / gone), closed without an answer (killed, idle connection closed
    // while draining), 503 (queue full, or fastify answering on a kept-alive socket while closing)
    for (const event of ['conn-failure', 'empty-response', '503']) expect(retryOn).toContain(event);
    // not a request that ran out of time: it would run as long again
    for (const event of ['504', 'response-timeout', 'all-retryable-errors'])
      expect(retryOn).not.toContain(event);
    expect(Number(directive(backend(), 'retries')![0])).toBeGreaterThanOrEqual(2);
    expect(directive(backend(), 'option redispatch')).toEqual(['1']);
    // A retried request must be whole in HAProxy's buffer: wait for the body, and make the buffer
    // hold the smoke test's bodies (about 300 kB of JSON each).
    expect(backend()).toContain('option http-buffer-request');
    expect(Number(directive(section('global'), 'tune.bufsize')![0])).toBeGreaterThanOrEqual(512 * 1024);
  });

  it("has timeouts that agree with roiserve's defaults", () => {
    // The body must arrive within roiserve's own limit, not a shorter one.
    expect(timeout('http-request')).toBe(defaults.requestTimeoutSeconds);
    // roiserve answers 504 itself after TASK_TIMEOUT_SECONDS of work; the LB must wait longer.
    expect(timeout('server')).toBeGreaterThan(defaults.taskTimeoutSeconds);
    expect(timeout('client')).toBeGreaterThanOrEqual(timeout('server'));
    // Idle connections close on HAProxy's side first, so it never sends on one roiserve is closing.
    expect(timeout('http-keep-alive')).toBeLessThan(defaults.keepAliveTimeoutSeconds);
    expect(timeout('connect')).toBeLessThanOrEqual(5);
  });
});

describe('deploy/swarm/haproxy/Dockerfile', () => {
  const dockerfile = readFileSync(join(swarmDir, 'haproxy/Dockerfile'), 'utf8');
  const mainDockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');

  it("builds on roiserve's base image with Debian's haproxy, and checks the config at build time", () => {
    const major = (text: string) => /^ARG NODE_MAJOR=(\d+)$/m.exec(text)?.[1];
    expect(major(dockerfile)).toBeDefined();
    expect(major(dockerfile)).toBe(major(mainDockerfile));
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:\$\{NODE_MAJOR\}-bookworm-slim$/m);
    expect(dockerfile).toMatch(/^FROM \$\{NODE_IMAGE\}$/m);
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends haproxy/);
    expect(dockerfile).toMatch(/^COPY haproxy\.cfg /m);
    expect(dockerfile).toMatch(/^RUN haproxy -c /m);
  });
});
