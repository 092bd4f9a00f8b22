// Reads two `go test -v` outputs of containerd's integration/client suite (runc, kata-ts) and
// prints one row per test: name, runc result, kata-ts result. Exits 1 when a test that passes
// with runc fails (or never finishes) with kata-ts and SKIPS.md does not list it, or when the
// runc run reported nothing (the pipeline itself is broken).
//
//   node report.mjs <runc log> <kata-ts log> <SKIPS.md> [--messages]
import { readFileSync } from 'node:fs';

/** name -> { result: PASS|FAIL|SKIP, seconds, messages[] } in order of first appearance. */
export function parseGoTestV(text) {
  const tests = new Map();
  const get = (name) => {
    let t = tests.get(name);
    if (!t) tests.set(name, (t = { result: undefined, seconds: undefined, messages: [] }));
    return t;
  };
  let current;
  let timedOut = false;
  for (const line of text.split('\n')) {
    let m;
    if ((m = /^=== (?:RUN|CONT|PAUSE|NAME)\s+(\S+)/.exec(line))) {
      current = m[1];
      get(current);
    } else if ((m = /^\s*--- (PASS|FAIL|SKIP): (\S+) \(([\d.]+)s\)/.exec(line))) {
      const t = get(m[2]);
      t.result = m[1];
      t.seconds = Number(m[3]);
      current = m[2];
    } else if (/^panic: test timed out/.test(line)) {
      timedOut = true;
    } else if (current && (m = /^\s+(\w+_test\.go:\d+: .*)$/.exec(line))) {
      get(current).messages.push(m[1]);
    } else if (current && (m = /^\s+(log_hook\.go:\d+: .*level=error.*)$/.exec(line))) {
      get(current).messages.push(m[1]);
    }
  }
  // A test that started and never reported a result hung (timeout) or died with the binary.
  for (const t of tests.values()) if (!t.result) t.result = timedOut ? 'HUNG' : 'NO RESULT';
  return tests;
}

/** Test names listed in SKIPS.md table rows: `| TestName | reason |`. */
export function parseSkips(text) {
  const names = new Map();
  for (const line of text.split('\n')) {
    const m = /^\|\s*`?(Test[\w/]+)`?\s*\|\s*(.*?)\s*\|\s*$/.exec(line);
    if (m) names.set(m[1], m[2]);
  }
  return names;
}

const skippedBy = (skips, name) => skips.has(name) || skips.has(name.split('/')[0]);

export function compare(runc, kata, skips) {
  const names = [...new Set([...runc.keys(), ...kata.keys(), ...skips.keys()])];
  const rows = [];
  for (const name of names) {
    const r = runc.get(name)?.result ?? '-';
    const listed = skippedBy(skips, name);
    const k = kata.get(name)?.result ?? (listed ? 'SKIPS.md' : 'NOT RUN');
    const regression = r === 'PASS' && k !== 'PASS' && k !== 'SKIP' && !listed;
    rows.push({ name, runc: r, kata: k, regression });
  }
  return rows;
}

function counts(rows, key) {
  const c = {};
  for (const r of rows) if (!r.name.includes('/')) c[r[key]] = (c[r[key]] ?? 0) + 1;
  return Object.entries(c).map(([k, v]) => `${v} ${k.toLowerCase()}`).join(', ');
}

if (process.argv[1]?.endsWith('report.mjs')) {
  const [runcLog, kataLog, skipsFile, flag] = process.argv.slice(2);
  if (!runcLog || !kataLog || !skipsFile) {
    console.error('usage: node report.mjs <runc log> <kata-ts log> <SKIPS.md> [--messages]');
    process.exit(2);
  }
  const runc = parseGoTestV(runcLog === '-' ? '' : readFileSync(runcLog, 'utf8'));
  // '-' or an empty log: kata-ts was not run (CONFORMANCE_RUNTIMES=runc); nothing to compare.
  const kataText = kataLog === '-' ? '' : readFileSync(kataLog, 'utf8');
  const kataRan = kataText.trim() !== '';
  const kata = parseGoTestV(kataText);
  const skips = parseSkips(readFileSync(skipsFile, 'utf8'));
  const rows = kataRan ? compare(runc, kata, skips) : compare(runc, new Map(), new Map()).map((r) => ({ ...r, kata: 'not run', regression: false }));
  if (flag === '--regressions') {
    // Top-level names of the tests that pass with runc and fail with kata-ts (for a re-run).
    console.log([...new Set(rows.filter((r) => r.regression).map((r) => r.name.split('/')[0]))].join(' '));
    process.exit(0);
  }
  const w = Math.max(...rows.map((r) => r.name.length), 4);
  console.log(`${'test'.padEnd(w)}  ${'runc'.padEnd(9)}  kata-ts`);
  for (const r of rows) {
    console.log(`${r.name.padEnd(w)}  ${r.runc.padEnd(9)}  ${r.kata}${r.regression ? '   <-- passes with runc' : ''}`);
  }
  console.log(`\nrunc:    ${counts(rows, 'runc')}\nkata-ts: ${counts(rows, 'kata')}`);
  const bad = rows.filter((r) => r.regression);
  if (flag === '--messages' || bad.length) {
    for (const r of rows.filter((x) => x.kata === 'FAIL' || x.kata === 'HUNG' || x.kata === 'NO RESULT' || x.regression)) {
      const msgs = kata.get(r.name)?.messages ?? [];
      if (!msgs.length && r.name.includes('/')) continue;
      console.log(`\n[kata-ts ${r.kata}] ${r.name}`);
      for (const m of msgs.slice(0, 8)) console.log(`    ${m.length > 400 ? m.slice(0, 400) + '...' : m}`);
    }
  }
  if (runcLog !== '-' && runc.size === 0) {
    console.error('\nconformance: the runc run reported no test at all: the pipeline is broken, see its log');
    process.exit(1);
  }
  if (bad.length) {
    console.error(`\nconformance: ${bad.length} test(s) pass with runc but not with kata-ts and are not in SKIPS.md: ${bad.map((r) => r.name).join(', ')}`);
    process.exit(1);
  }
  console.log('\nconformance: every test that passes with runc passes with kata-ts or is listed in SKIPS.md');
}
