/**
 * `npm run bench` — every benchmark section, side by side with its peer, reported as ratios.
 * `npm run bench -- ops` runs one section (names below). Sections load lazily, so one that fails to
 * load does not stop the others.
 */
type Section = () => Promise<void>;

const sections: Record<string, Section> = {
  ops: async () => (await import('./ops.js')).runOpsBench(),
  backbone: async () => (await import('./backbone.js')).runBackboneBench(),
  budget: async () => (await import('./work_budget.js')).runWorkBudgetBench(),
  render: async () => (await import('./render.js')).runRenderBench(),
  dtype: async () => (await import('./dtype.js')).runDtypeBench(),
  v2: async () => (await import('./v2.js')).runV2Bench(),
  throughput: async () => (await import('./throughput.js')).runThroughputBench(),
  split: async () => (await import('./split.js')).runSplitBench(),
  transfer: async () => (await import('./transfer.js')).runTransferBench(),
  e2e: async () => (await import('./e2e.js')).runE2eBench(),
  idle: async () => (await import('./idle.js')).runIdleBench(),
};

async function main(): Promise<void> {
  const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
  const unknown = wanted.filter((name) => !(name in sections));
  if (unknown.length > 0) {
    console.error(
      `unknown bench section(s): ${unknown.join(', ')}; known: ${Object.keys(sections).join(', ')}`,
    );
    process.exit(2);
  }
  const names = wanted.length > 0 ? wanted : Object.keys(sections);
  for (const name of names) {
    console.log(`\n## ${name}\n`);
    await sections[name]();
  }
}

await main();
