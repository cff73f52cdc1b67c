// A minimal stand-in for the parts of vitest that core's conformance suite uses (describe, it,
// beforeAll, afterAll, expect with its matchers), so that the suite can run as one bundled script on a
// machine that has a GPU but no node_modules. Any matcher it lacks fails loudly by name.
import { inspect, isDeepStrictEqual } from 'node:util';

const newSuite = (name, skip = false) => ({ name, skip, items: [], beforeAll: [], afterAll: [] });
const root = newSuite('');
let current = root;

export function describe(name, fn) {
  const s = newSuite(name);
  current.items.push({ suite: s });
  const prev = current;
  current = s;
  try {
    fn();
  } finally {
    current = prev;
  }
}
describe.skip = (name) => current.items.push({ test: { name, skip: true } });
describe.runIf = (cond) => (cond ? describe : describe.skip);

export function it(name, fn, timeout) {
  current.items.push({ test: { name, fn, timeout } });
}
it.skip = (name) => current.items.push({ test: { name, skip: true } });
it.runIf = (cond) => (cond ? it : it.skip);
it.skipIf = (cond) => (cond ? it.skip : it);
export const test = it;

export function beforeAll(fn) {
  current.beforeAll.push(fn);
}
export function afterAll(fn) {
  current.afterAll.push(fn);
}

const show = (v) => inspect(v, { depth: 3, maxArrayLength: 8, breakLength: 120 });

function equal(a, b) {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) return a.constructor === b.constructor && isDeepStrictEqual(a, b);
  return isDeepStrictEqual(a, b);
}

function matchers(actual, message, negate) {
  const check = (pass, what) => {
    if (pass === negate) throw new Error(`${message ? `${message}: ` : ''}expected ${show(actual)} ${negate ? 'not ' : ''}${what}`);
  };
  const m = {
    toBe: (e) => check(Object.is(actual, e), `to be ${show(e)}`),
    toEqual: (e) => check(equal(actual, e), `to equal ${show(e)}`),
    toStrictEqual: (e) => check(equal(actual, e), `to strictly equal ${show(e)}`),
    toBeDefined: () => check(actual !== undefined, 'to be defined'),
    toBeUndefined: () => check(actual === undefined, 'to be undefined'),
    toBeTruthy: () => check(Boolean(actual), 'to be truthy'),
    toBeFalsy: () => check(!actual, 'to be falsy'),
    toBeNull: () => check(actual === null, 'to be null'),
    toBeGreaterThan: (e) => check(actual > e, `to be > ${e}`),
    toBeGreaterThanOrEqual: (e) => check(actual >= e, `to be >= ${e}`),
    toBeLessThan: (e) => check(actual < e, `to be < ${e}`),
    toBeLessThanOrEqual: (e) => check(actual <= e, `to be <= ${e}`),
    toBeCloseTo: (e, digits = 2) => check(Math.abs(actual - e) < 10 ** -digits / 2, `to be close to ${e}`),
    toBeInstanceOf: (c) => check(actual instanceof c, `to be an instance of ${c.name}`),
    toContain: (e) => check(actual.includes(e), `to contain ${show(e)}`),
    toHaveLength: (n) => check(actual.length === n, `to have length ${n}`),
    toMatch: (re) => check(typeof re === 'string' ? actual.includes(re) : re.test(actual), `to match ${re}`),
    toThrow: (e) => {
      let thrown;
      try {
        actual();
      } catch (err) {
        thrown = err ?? new Error('undefined thrown');
      }
      check(thrown !== undefined && matchesError(thrown, e), `to throw ${e ?? ''}`);
    },
  };
  return new Proxy(m, {
    get(target, prop) {
      if (prop === 'not') return matchers(actual, message, !negate);
      if (prop === 'rejects') return asyncMatchers(actual, message, negate, true);
      if (prop === 'resolves') return asyncMatchers(actual, message, negate, false);
      if (prop in target) return target[prop];
      if (typeof prop === 'string') throw new Error(`device vitest shim: matcher '${prop}' is not implemented (add it to scripts/device/vitest-shim.mjs)`);
      return undefined;
    },
  });
}

function matchesError(err, e) {
  if (e === undefined) return true;
  if (typeof e === 'function') return err instanceof e;
  if (typeof e === 'string') return String(err?.message).includes(e);
  if (e instanceof RegExp) return e.test(String(err?.message));
  return true;
}

function asyncMatchers(promise, message, negate, rejects) {
  return new Proxy({}, {
    get(_t, prop) {
      return async (...args) => {
        let value;
        let error;
        let failed = false;
        try {
          value = await promise;
        } catch (err) {
          failed = true;
          error = err;
        }
        if (rejects !== failed) throw new Error(`${message ? `${message}: ` : ''}expected the promise to ${rejects ? 'reject' : 'resolve'}`);
        if (rejects && prop === 'toThrow') return matchers(() => { throw error; }, message, negate).toThrow(...args);
        return matchers(rejects ? error : value, message, negate)[prop](...args);
      };
    },
  });
}

export function expect(actual, message) {
  return matchers(actual, message, false);
}

/** Runs everything registered, in order; prints one line per test; returns the counts. */
export async function run({ filter } = {}) {
  const counts = { passed: 0, failed: 0, skipped: 0 };
  const failures = [];
  async function runSuite(s, path) {
    const title = path.filter(Boolean).join(' > ');
    try {
      for (const f of s.beforeAll) await f();
    } catch (err) {
      console.log(`✗ ${title} (beforeAll): ${err?.stack ?? err}`);
      counts.failed++;
      failures.push(title);
      return;
    }
    for (const item of s.items) {
      if (item.suite) {
        await runSuite(item.suite, [...path, item.suite.name]);
        continue;
      }
      const t = item.test;
      const name = [...path, t.name].filter(Boolean).join(' > ');
      if (t.skip || (filter && !name.includes(filter))) {
        if (t.skip) console.log(`- ${name} (skipped)`);
        counts.skipped++;
        continue;
      }
      const start = performance.now();
      try {
        await t.fn();
        counts.passed++;
        console.log(`✓ ${name} (${(performance.now() - start).toFixed(0)} ms)`);
      } catch (err) {
        counts.failed++;
        failures.push(name);
        console.log(`✗ ${name}: ${err?.stack ?? err}`);
      }
    }
    for (const f of s.afterAll) {
      try {
        await f();
      } catch (err) {
        console.log(`✗ ${title} (afterAll): ${err?.stack ?? err}`);
        counts.failed++;
      }
    }
  }
  await runSuite(root, []);
  console.log(`\n${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`);
  for (const f of failures) console.log(`  failed: ${f}`);
  return counts;
}
