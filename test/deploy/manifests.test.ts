/**
 * The deployment manifests in `deploy/`, checked offline (no cluster runs here):
 *
 * - every YAML document parses, and every Kubernetes resource validates against the Kubernetes API
 *   JSON schemas with `kubernetes-models` (its `.validate()`: ajv on the schemas generated from the
 *   API's OpenAPI document); a deliberately broken copy must fail, so the validator is really run;
 * - no field name is unknown: the schemas allow extra properties (a typo such as `readinesProbe` would
 *   pass them, and the API server drops or refuses it), so each resource is also compiled by TypeScript
 *   as an object literal of kubernetes-models' interface for its kind, whose excess-property check
 *   names any field the API does not have, at any depth;
 * - each kustomization lists exactly the other YAML files of its folder (a new manifest that is not
 *   listed would silently not be applied by `kubectl apply -k`);
 * - the Deployment agrees with the app: its probe paths answer 200 / 503 (not 404) on the app built
 *   from the Deployment's own environment, `WORKERS` comes from `limits.cpu` and roiserve accepts that
 *   number, `terminationGracePeriodSeconds` covers the preStop sleep plus `SHUTDOWN_GRACE_SECONDS`,
 *   the container runs non-root on a read-only root with `/tmp` writable, and the Service, HPA and PDB
 *   select the Deployment's pods;
 * - the KServe resources (their CRDs are not in the Kubernetes schemas) carry the fields KServe's
 *   reference requires (https://kserve.github.io/website/latest/modelserving/servingruntimes/), and
 *   the runtime's container validates as a Kubernetes Container.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Container } from 'kubernetes-models/v1/Container';
import { Secret } from 'kubernetes-models/v1/Secret';
import { Service } from 'kubernetes-models/v1/Service';
import ts from 'typescript';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { envSchema, parseConfig } from '../../src/config.js';
import { buildApp } from '../../src/server.js';

const repo = fileURLToPath(new URL('../../', import.meta.url));
const deployDir = join(repo, 'deploy');

/** A manifest as parsed: plain JSON-like data. */
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

interface Manifest {
  /** Path relative to the repository root. */
  file: string;
  doc: Doc;
}

/** deploy/swarm/ holds a Compose stack file, not Kubernetes resources: test/deploy/swarm.test.ts checks it. */
const notKubernetes = new Set([join(deployDir, 'swarm')]);

/** Every `.yaml` / `.yml` file under `dir`, recursively, sorted (deploy/swarm/ left out). */
function yamlFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory() && notKubernetes.has(path)) continue;
    if (entry.isDirectory()) out.push(...yamlFiles(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out.sort();
}

/** All documents of all YAML files under deploy/; a YAML syntax error throws naming the file. */
function loadManifests(): Manifest[] {
  const manifests: Manifest[] = [];
  for (const path of yamlFiles(deployDir)) {
    const file = relative(repo, path);
    for (const d of parseAllDocuments(readFileSync(path, 'utf8'))) {
      if (d.errors.length > 0) throw new Error(`${file}: ${d.errors[0].message}`);
      const doc = d.toJS() as Doc | null;
      if (doc !== null) manifests.push({ file, doc });
    }
  }
  return manifests;
}

/** The Kubernetes kinds deploy/ uses, by `apiVersion/kind`, each with its schema-validating model. */
const kubernetesModels: Record<string, (doc: Doc) => { validate(): void }> = {
  'apps/v1/Deployment': (d) => new Deployment(d as never),
  'v1/Service': (d) => new Service(d as never),
  'v1/Secret': (d) => new Secret(d as never),
  'autoscaling/v2/HorizontalPodAutoscaler': (d) => new HorizontalPodAutoscaler(d as never),
  'policy/v1/PodDisruptionBudget': (d) => new PodDisruptionBudget(d as never),
};

/** Validates a Kubernetes resource against its API schema; throws with the schema errors. */
function validateKubernetes(doc: Doc): void {
  const make = kubernetesModels[`${doc.apiVersion}/${doc.kind}`];
  if (!make) throw new Error(`no schema for ${doc.apiVersion} ${doc.kind}`);
  make(doc).validate();
}

/** kubernetes-models' TypeScript interface for each kind, as `[module, interface]`. */
const kubernetesTypes: Record<string, [string, string]> = {
  'apps/v1/Deployment': ['kubernetes-models/apps/v1/Deployment', 'IDeployment'],
  'v1/Service': ['kubernetes-models/v1/Service', 'IService'],
  'v1/Secret': ['kubernetes-models/v1/Secret', 'ISecret'],
  'autoscaling/v2/HorizontalPodAutoscaler': [
    'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler',
    'IHorizontalPodAutoscaler',
  ],
  'policy/v1/PodDisruptionBudget': [
    'kubernetes-models/policy/v1/PodDisruptionBudget',
    'IPodDisruptionBudget',
  ],
  Container: ['kubernetes-models/v1/Container', 'IContainer'],
};

/**
 * Field names the Kubernetes API does not know, per object: each object is compiled by TypeScript as
 * an object literal typed with kubernetes-models' interface for its kind (`kind` is `apiVersion/kind`,
 * or `Container`), and the excess-property errors are returned, `[]` for an object without any. The
 * source file goes under node_modules/.cache so that `kubernetes-models` resolves; it is removed after.
 */
function unknownFields(objects: Array<{ kind: string; doc: Doc }>): string[][] {
  const cache = join(repo, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  const dir = mkdtempSync(join(cache, 'roiserve-deploy-fields-'));
  try {
    const lines: string[] = [];
    objects.forEach(({ kind }, i) => {
      const [module, type] = kubernetesTypes[kind];
      lines.push(`import type { ${type} as T${i} } from '${module}';`);
    });
    const first = lines.length;
    // One object per line, so that each diagnostic's line says which object it is about.
    objects.forEach(({ doc }, i) => lines.push(`export const o${i}: T${i} = ${JSON.stringify(doc)};`));
    const file = join(dir, 'check.mts');
    writeFileSync(file, lines.join('\n') + '\n');
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      module: ts.ModuleKind.NodeNext,
      moduleResolution: ts.ModuleResolutionKind.NodeNext,
      types: [],
    });
    const found: string[][] = objects.map(() => []);
    for (const d of ts.getPreEmitDiagnostics(program)) {
      const text = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line : -1;
      if (line < first) throw new Error(`type check of deploy/ failed: ${text}`);
      found[line - first].push(text);
    }
    return found;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** A CPU quantity (`2`, `1.5`, `1500m`) in cores. */
function cpuCores(q: string | number): number {
  const s = String(q);
  const m = /^(\d+(?:\.\d+)?)(m?)$/.exec(s);
  if (!m) throw new Error(`unsupported CPU quantity ${s}`);
  return m[2] === 'm' ? Number(m[1]) / 1000 : Number(m[1]);
}

/** What the downward API puts in an env var for `resourceFieldRef` (rounded up to the divisor). */
function downward(ref: Doc, container: Doc): string {
  expect(ref.resource, 'the resource WORKERS is derived from').toBe('limits.cpu');
  expect(ref.divisor, 'divisor 1: whole CPUs').toBe('1');
  const limit = container.resources?.limits?.cpu;
  expect(limit, `${container.name} needs a CPU limit for WORKERS`).toBeDefined();
  return String(Math.ceil(cpuCores(limit)));
}

/** The container's environment as the pod would see it: literals, the downward API, a sample secret. */
function containerEnv(container: Doc): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of container.env ?? []) {
    if (e.value !== undefined) env[e.name] = String(e.value);
    else if (e.valueFrom?.resourceFieldRef) env[e.name] = downward(e.valueFrom.resourceFieldRef, container);
    else if (e.valueFrom?.secretKeyRef) env[e.name] = 'a-sample-secret-key';
    else throw new Error(`${container.name}: env ${e.name} has neither a value nor a supported valueFrom`);
  }
  return env;
}

/** The HTTP probes of a container: [probe kind, path, port]. */
function probes(container: Doc): Array<[string, string, string | number]> {
  return (['livenessProbe', 'readinessProbe', 'startupProbe'] as const)
    .filter((k) => container[k])
    .map((k) => [k, container[k].httpGet.path, container[k].httpGet.port]);
}

const manifests = loadManifests();
const byKind = (kind: string): Manifest[] => manifests.filter((m) => m.doc.kind === kind);
const one = (kind: string): Doc => {
  const found = byKind(kind);
  expect(found, `exactly one ${kind} in deploy/`).toHaveLength(1);
  return found[0].doc;
};

describe('deploy/: every manifest', () => {
  it('parses, and there are the resources the README describes', () => {
    const kinds = manifests.map((m) => `${m.file}: ${m.doc.kind}`);
    expect(kinds).toEqual([
      'deploy/kserve/inferenceservice.yaml: InferenceService',
      'deploy/kserve/kustomization.yaml: Kustomization',
      'deploy/kserve/servingruntime.yaml: ServingRuntime',
      'deploy/kubernetes/deployment.yaml: Deployment',
      'deploy/kubernetes/hpa.yaml: HorizontalPodAutoscaler',
      'deploy/kubernetes/kustomization.yaml: Kustomization',
      'deploy/kubernetes/pdb.yaml: PodDisruptionBudget',
      'deploy/kubernetes/service.yaml: Service',
    ]);
  });

  it('validates against the Kubernetes API schemas (KServe and kustomize kinds are checked below)', () => {
    const checkedElsewhere = new Set(['Kustomization', 'ServingRuntime', 'InferenceService']);
    const validated: string[] = [];
    for (const { file, doc } of manifests) {
      if (checkedElsewhere.has(doc.kind)) continue;
      expect(() => validateKubernetes(doc), file).not.toThrow();
      validated.push(doc.kind);
    }
    expect(validated.sort()).toEqual([
      'Deployment',
      'HorizontalPodAutoscaler',
      'PodDisruptionBudget',
      'Service',
    ]);
  });

  it('the validator rejects broken copies (wrong field types, a missing required field)', () => {
    const deployment = structuredClone(one('Deployment'));
    deployment.spec.template.spec.containers[0].ports[0].containerPort = '8080';
    expect(() => validateKubernetes(deployment)).toThrow(/containerPort must be integer/);

    const grace = structuredClone(one('Deployment'));
    grace.spec.template.spec.terminationGracePeriodSeconds = 'twenty';
    expect(() => validateKubernetes(grace)).toThrow(/terminationGracePeriodSeconds must be integer/);

    const noSelector = structuredClone(one('Deployment'));
    delete noSelector.spec.selector;
    expect(() => validateKubernetes(noSelector)).toThrow(/selector/);

    const hpa = structuredClone(one('HorizontalPodAutoscaler'));
    hpa.spec.maxReplicas = '10';
    expect(() => validateKubernetes(hpa)).toThrow(/maxReplicas must be integer/);

    const service = structuredClone(one('Service'));
    service.spec.ports = { name: 'http' };
    expect(() => validateKubernetes(service)).toThrow(/ports must be array/);
  });

  it('no resource has a field the Kubernetes API does not know (and a typo is caught)', () => {
    const checked = manifests.filter((m) => kubernetesTypes[`${m.doc.apiVersion}/${m.doc.kind}`]);
    expect(checked.length).toBe(4);
    const typo = structuredClone(one('Deployment'));
    const c = typo.spec.template.spec.containers[0];
    c.readinesProbe = c.readinessProbe;
    delete c.readinessProbe;
    const objects = [
      ...checked.map((m) => ({ kind: `${m.doc.apiVersion}/${m.doc.kind}`, doc: m.doc })),
      // The KServe runtime's container is a Kubernetes Container.
      { kind: 'Container', doc: one('ServingRuntime').spec.containers[0] },
      { kind: 'apps/v1/Deployment', doc: typo },
    ];
    const found = unknownFields(objects);
    const named = (i: number) => (i < checked.length ? checked[i].file : objects[i].kind);
    for (let i = 0; i < objects.length - 1; i++) expect(found[i], named(i)).toEqual([]);
    expect(found[objects.length - 1]).toEqual([
      expect.stringMatching(/readinesProbe\W* does not exist in type 'IContainer'/),
    ]);
  });

  it('each kustomization lists exactly the other YAML files of its folder', () => {
    const kustomizations = byKind('Kustomization');
    expect(kustomizations.map((k) => k.file).sort()).toEqual([
      'deploy/kserve/kustomization.yaml',
      'deploy/kubernetes/kustomization.yaml',
    ]);
    for (const { file, doc } of kustomizations) {
      expect(doc.apiVersion, file).toBe('kustomize.config.k8s.io/v1beta1');
      const dir = join(repo, file, '..');
      const siblings = readdirSync(dir)
        .filter((f) => /\.ya?ml$/.test(f) && f !== 'kustomization.yaml')
        .sort();
      expect([...doc.resources].sort(), file).toEqual(siblings);
    }
  });
});

describe('deploy/kubernetes: the Deployment agrees with the app', () => {
  const deployment = one('Deployment');
  const pod = deployment.spec.template.spec;
  const container = pod.containers[0];
  // Computed in beforeAll: a manifest it cannot read fails the tests, not the collection.
  let env: Record<string, string> = {};
  let app: FastifyInstance;
  let beforeReady: Record<string, number> = {};

  beforeAll(async () => {
    env = containerEnv(container);
    // The app as the pod's environment configures it (one worker here, to spare the CI machine:
    // WORKERS itself is checked below), probed before and after its backbone is warm.
    app = await buildApp(parseConfig(env, { logLevel: 'silent', workers: 1 }));
    const paths = [
      ...probes(container).map(([, path]) => path as string),
      ...probes(one('ServingRuntime').spec.containers[0]).map(([, path]) => path as string),
    ];
    beforeReady = {};
    for (const path of paths) beforeReady[path] = (await app.inject({ method: 'GET', url: path })).statusCode;
    await app.readiness.settled;
  });

  afterAll(async () => {
    await app?.close();
  });

  it('one container, the image placeholder, port 8080 as PORT says', () => {
    expect(pod.containers).toHaveLength(1);
    expect(container.image).toBe('roiserve:latest');
    const http = container.ports.find((p: Doc) => p.name === 'http');
    expect(http.containerPort).toBe(8080);
    expect(parseConfig(env).port).toBe(8080);
  });

  it("roiserve accepts the Deployment's environment, and WORKERS is the CPU limit in whole CPUs", () => {
    const ref = container.env.find((e: Doc) => e.name === 'WORKERS').valueFrom.resourceFieldRef;
    expect(ref).toEqual({ containerName: container.name, resource: 'limits.cpu', divisor: '1' });
    const config = parseConfig(env);
    expect(config.workers).toBe(Math.ceil(cpuCores(container.resources.limits.cpu)));
    expect(config.workers).toBe(2);
    // The downward API rounds a fractional limit up; roiserve takes any such whole number from 1 to 64.
    for (const limit of ['500m', '1', '1500m', '4', '64']) {
      const workers = downward(ref, { ...container, resources: { limits: { cpu: limit } } });
      expect(parseConfig({ ...env, WORKERS: workers }).workers).toBe(Math.ceil(cpuCores(limit)));
    }
    // And a value it would refuse is refused loudly, not ignored.
    expect(() => parseConfig({ ...env, WORKERS: '1.5' })).toThrow(/WORKERS/);
  });

  it('every environment variable the manifests set is one roiserve reads (a misspelt one would be ignored)', () => {
    const known = Object.keys(envSchema.shape);
    const containers = [container, one('ServingRuntime').spec.containers[0]];
    for (const c of containers)
      for (const e of c.env) expect(known, `${c.name}: ${e.name}`).toContain(e.name);
  });

  it('requests and limits are set for CPU and memory', () => {
    for (const kind of ['requests', 'limits']) {
      expect(container.resources[kind].cpu, kind).toBeDefined();
      expect(container.resources[kind].memory, kind).toBeDefined();
    }
  });

  it('the API key comes from an optional Secret', () => {
    const apiKey = container.env.find((e: Doc) => e.name === 'API_KEY');
    expect(apiKey.valueFrom.secretKeyRef).toMatchObject({ name: 'roiserve', optional: true });
    expect(parseConfig(env).apiKey).toBe('a-sample-secret-key');
  });

  it('probes: liveness /healthz, readiness and startup /readyz, on the http port', () => {
    expect(probes(container)).toEqual([
      ['livenessProbe', '/healthz', 'http'],
      ['readinessProbe', '/readyz', 'http'],
      ['startupProbe', '/readyz', 'http'],
    ]);
  });

  it('every probe path in deploy/ exists in the app: 200 or 503 while starting, 200 once warm', async () => {
    expect(Object.keys(beforeReady).length).toBeGreaterThanOrEqual(4);
    for (const [path, status] of Object.entries(beforeReady)) expect([200, 503], path).toContain(status);
    for (const path of Object.keys(beforeReady)) {
      const r = await app.inject({ method: 'GET', url: path });
      expect(r.statusCode, path).toBe(200);
    }
    // The readiness probes really gate: 503 before the backbone is warm.
    expect(beforeReady['/readyz']).toBe(503);
    expect(beforeReady['/v2/health/ready']).toBe(503);
  });

  it('terminationGracePeriodSeconds covers the preStop sleep plus SHUTDOWN_GRACE_SECONDS', () => {
    const preStop = container.lifecycle.preStop.exec.command;
    expect(preStop[0]).toBe('sleep');
    const sleep = Number(preStop[1]);
    expect(sleep).toBeGreaterThan(0);
    const grace = parseConfig(env).shutdownGraceSeconds;
    expect(grace).toBe(8);
    // The kubelet's budget starts with preStop; SIGTERM (and the app's drain) only after it.
    expect(pod.terminationGracePeriodSeconds).toBeGreaterThan(sleep + grace);
  });

  it('the image has the `sleep` the preStop hook runs (a Debian base, not distroless)', () => {
    const dockerfile = readFileSync(join(repo, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/^ARG NODE_IMAGE=node:\$\{NODE_MAJOR\}-bookworm-slim$/m);
  });

  it('non-root, read-only root, no privilege escalation, no capabilities, RuntimeDefault seccomp, /tmp writable', () => {
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, runAsUser: 1000 });
    expect(container.securityContext).toEqual({
      runAsNonRoot: true,
      runAsUser: 1000,
      readOnlyRootFilesystem: true,
      allowPrivilegeEscalation: false,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    });
    const tmp = container.volumeMounts.find((v: Doc) => v.mountPath === '/tmp');
    const volume = pod.volumes.find((v: Doc) => v.name === tmp.name);
    expect(volume.emptyDir).toBeDefined();
  });

  it('the Service, HPA and PDB point at the Deployment and its pods', () => {
    const labels = deployment.spec.template.metadata.labels;
    expect(deployment.spec.selector.matchLabels).toEqual(labels);
    const service = one('Service');
    expect(labels).toMatchObject(service.spec.selector);
    const portNames = container.ports.map((p: Doc) => p.name);
    for (const p of service.spec.ports) expect(portNames, p.name).toContain(p.targetPort);
    const pdb = one('PodDisruptionBudget');
    expect(labels).toMatchObject(pdb.spec.selector.matchLabels);
    const hpa = one('HorizontalPodAutoscaler');
    expect(hpa.spec.scaleTargetRef).toEqual({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      name: deployment.metadata.name,
    });
    expect(hpa.spec.metrics).toContainEqual(
      expect.objectContaining({ type: 'Resource', resource: expect.objectContaining({ name: 'cpu' }) }),
    );
    // The PDB must leave something to evict and keep something serving.
    expect(pdb.spec.maxUnavailable).toBeLessThan(hpa.spec.minReplicas);
  });

  it("the HPA's commented queue-depth example names a gauge the metrics port really serves", async () => {
    const text = readFileSync(join(deployDir, 'kubernetes/hpa.yaml'), 'utf8');
    const named = /name: (roiserve_\w+)/.exec(
      text
        .split('\n')
        .filter((l) => /^\s*#/.test(l))
        .join('\n'),
    );
    expect(named?.[1]).toBe('roiserve_work_queued');
    // METRICS_PORT is set, so /metrics is on its own listener (the Service's `metrics` port).
    expect(app.metricsListener).not.toBeNull();
    const r = await app.metricsListener!.inject({ method: 'GET', url: '/metrics' });
    expect(r.statusCode).toBe(200);
    expect(r.body).toMatch(/^# TYPE roiserve_work_queued gauge$/m);
  });
});

describe('deploy/kserve: the fields KServe documents', () => {
  const runtime = one('ServingRuntime');
  const isvc = one('InferenceService');

  it('ServingRuntime: apiVersion, a model format, protocol v2, a kserve-container with image and port 8080', () => {
    expect(runtime.apiVersion).toBe('serving.kserve.io/v1alpha1');
    expect(runtime.metadata.name).toMatch(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
    expect(runtime.spec.supportedModelFormats.length).toBeGreaterThan(0);
    for (const f of runtime.spec.supportedModelFormats) expect(f.name).toEqual(expect.any(String));
    expect(runtime.spec.protocolVersions).toContain('v2');
    for (const v of runtime.spec.protocolVersions) expect(['v1', 'v2', 'grpc-v1', 'grpc-v2']).toContain(v);
    expect(runtime.spec.containers).toHaveLength(1);
    const c = runtime.spec.containers[0];
    expect(c.name).toBe('kserve-container');
    expect(c.image).toBe('roiserve:latest');
    expect(c.ports).toEqual([expect.objectContaining({ containerPort: 8080 })]);
    // The container is a Kubernetes Container: validate it against that schema.
    expect(() => new Container(c).validate()).not.toThrow();
    const broken = structuredClone(c);
    broken.ports[0].containerPort = 'eighty';
    expect(() => new Container(broken).validate()).toThrow(/containerPort must be integer/);
  });

  it("ServingRuntime: the app accepts the container's environment; probes on the protocol's health routes", () => {
    const c = runtime.spec.containers[0];
    const config = parseConfig(containerEnv(c));
    expect(config.port).toBe(8080);
    expect(config.workers).toBe(Math.ceil(cpuCores(c.resources.limits.cpu)));
    expect(probes(c)).toEqual([
      ['livenessProbe', '/v2/health/live', 8080],
      ['readinessProbe', '/v2/health/ready', 8080],
    ]);
    expect(c.securityContext).toMatchObject({
      runAsNonRoot: true,
      runAsUser: 1000,
      allowPrivilegeEscalation: false,
    });
  });

  it("InferenceService: apiVersion, predictor.model with the runtime's model format and the runtime's name", () => {
    expect(isvc.apiVersion).toBe('serving.kserve.io/v1beta1');
    const model = isvc.spec.predictor.model;
    expect(model.runtime).toBe(runtime.metadata.name);
    const format = runtime.spec.supportedModelFormats.find((f: Doc) => f.name === model.modelFormat.name);
    expect(format, `runtime supports ${model.modelFormat.name}`).toBeDefined();
    if (model.modelFormat.version !== undefined) expect(format.version).toBe(model.modelFormat.version);
    if (model.protocolVersion !== undefined)
      expect(runtime.spec.protocolVersions).toContain(model.protocolVersion);
  });
});
