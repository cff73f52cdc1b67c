import { describe, expect, it } from 'vitest';
import { PassScheduler, type GraphDriver, type RecordedOp } from './pass.js';

function driver(): GraphDriver & { log: string[] } {
  const log: string[] = [];
  let next = 0;
  return {
    log,
    setPassPos: (p) => log.push(`pos ${p}`),
    beginCapture: () => log.push('begin'),
    endCapture: (discard) => {
      log.push(discard ? 'discard' : 'end');
      return discard ? -1 : next++;
    },
    launchGraph: (id) => log.push(`launch ${id}`),
    destroyGraph: (id) => log.push(`destroy ${id}`),
  };
}

const op = (log: string[], name: string, capturable = true, throws = false): RecordedOp => ({
  key: name,
  capturable,
  prepare: () => log.push(`prep ${name}`),
  run: () => {
    if (throws) throw new Error(`${name} cannot be captured`);
    log.push(`run ${name}`);
  },
});

describe('PassScheduler', () => {
  it('runs ops at once outside a pass', () => {
    const d = driver();
    const s = new PassScheduler(d);
    s.submit(op(d.log, 'a'));
    expect(d.log).toEqual(['prep a', 'run a']);
  });

  it('defers a pass, then captures its second occurrence and replays the graph afterwards', () => {
    const d = driver();
    const s = new PassScheduler(d);
    const decode = (pos: number): void => {
      s.begin(1, pos);
      s.submit(op(d.log, 'embed'));
      s.submit(op(d.log, 'matmul'));
      expect(d.log.filter((l) => l.startsWith('run'))).toHaveLength(0);
      s.end();
    };
    decode(5);
    expect(d.log).toEqual(['pos 5', 'prep embed', 'run embed', 'prep matmul', 'run matmul']);
    d.log.length = 0;
    decode(6);
    expect(d.log).toEqual(['prep embed', 'prep matmul', 'pos 6', 'begin', 'run embed', 'run matmul', 'end', 'launch 0']);
    d.log.length = 0;
    decode(7);
    // A replay re-uploads the token ids and the position, then launches the graph: no op runs from JS.
    expect(d.log).toEqual(['prep embed', 'prep matmul', 'pos 7', 'launch 0']);
    expect(s.stats).toEqual({ eager: 1, captured: 1, replayed: 1, fused: 0 });
  });

  it('never captures multi-token passes, passes with host writes, or passes read midway', () => {
    const d = driver();
    const s = new PassScheduler(d);
    for (let i = 0; i < 3; i++) {
      s.begin(4, 0);
      s.submit(op(d.log, 'a'));
      s.end();
      s.begin(1, 0);
      s.submit(op(d.log, 'write', false));
      s.end();
      s.begin(1, 9);
      s.submit(op(d.log, 'b'));
      s.flush();
      s.submit(op(d.log, 'c'));
      s.end();
    }
    expect(d.log).not.toContain('begin');
    expect(s.stats.eager).toBe(3 * 4);
  });

  it('falls back to running op by op when an op cannot be captured, and stops trying', () => {
    const d = driver();
    const s = new PassScheduler(d);
    for (let i = 0; i < 3; i++) {
      s.begin(1, i);
      s.submit(op(d.log, 'bad', true, i === 1));
      if (i === 1) {
        expect(() => s.end()).toThrow(/cannot be captured/); // eager retry hits the same failure
      } else {
        s.end();
      }
    }
    expect(d.log.filter((l) => l === 'discard')).toHaveLength(1);
    expect(d.log.filter((l) => l === 'begin')).toHaveLength(1);
    expect(s.graphCount).toBe(0);
  });

  it('keeps at most maxGraphs graphs and destroys them on invalidate', () => {
    const d = driver();
    const s = new PassScheduler(d, 2);
    for (const name of ['x', 'y', 'z']) {
      for (let i = 0; i < 2; i++) {
        s.begin(1, 0);
        s.submit(op(d.log, name));
        s.end();
      }
    }
    expect(s.graphCount).toBe(2);
    expect(d.log).toContain('destroy 0');
    s.invalidate();
    expect(s.graphCount).toBe(0);
    expect(d.log).toContain('destroy 1');
    expect(d.log).toContain('destroy 2');
  });

  it('rejects unbalanced or invalid passes', () => {
    const s = new PassScheduler(driver());
    expect(() => s.end()).toThrow(/no pass is open/);
    s.begin(1, 0);
    expect(() => s.begin(1, 1)).toThrow(/already open/);
    s.end();
    expect(() => s.begin(0, 0)).toThrow(/invalid pass/);
    expect(() => s.begin(1, -1)).toThrow(/invalid pass/);
  });
});
