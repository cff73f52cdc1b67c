import { describe, expect, it } from 'vitest';
import type { CachedSequence } from '../model/cached-sequence.js';
import { SequenceSlots } from './sequence-slots.js';

/** A stand-in sequence holding `held` ids (SequenceSlots only asks for the shared prefix). */
function slot(name: string, held: number[]): CachedSequence & { name: string } {
  return {
    name,
    commonPrefix: (ids: readonly number[]) => {
      let n = 0;
      while (n < held.length && n < ids.length && held[n] === ids[n]) n++;
      return n;
    },
  } as unknown as CachedSequence & { name: string };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe('SequenceSlots', () => {
  it('runs shared calls side by side, one slot each, and the rest as slots free, in order', async () => {
    const slots = new SequenceSlots([slot('a', []), slot('b', [])]);
    const log: string[] = [];
    const release = new Map<string, () => void>();
    const call = (name: string) => slots.shared(undefined, async (s) => {
      log.push(`${name} on ${(s as unknown as { name: string }).name}`);
      await new Promise<void>((r) => release.set(name, r));
    });
    const calls = ['x', 'y', 'z'].map(call);
    await tick();
    expect(log).toEqual(['x on a', 'y on b']);
    expect(slots.busy).toBe(2);
    release.get('y')!();
    await tick();
    expect(log).toEqual(['x on a', 'y on b', 'z on b']);
    release.get('x')!();
    release.get('z')!();
    await Promise.all(calls);
    expect(slots.busy).toBe(0);
  });

  it('runs an exclusive call alone, and holds back the shared calls asked for after it', async () => {
    const slots = new SequenceSlots([slot('a', []), slot('b', [])]);
    const log: string[] = [];
    const release = new Map<string, () => void>();
    const run = (name: string, exclusive: boolean) => (exclusive ? slots.exclusive.bind(slots) : slots.shared.bind(slots))(undefined, async () => {
      log.push(`${name} start`);
      await new Promise<void>((r) => release.set(name, r));
      log.push(`${name} end`);
    });
    const calls = [run('s1', false), run('e', true), run('s2', false)];
    await tick();
    // s2 could have a free slot, but e asked first: nothing starves the exclusive call.
    expect(log).toEqual(['s1 start']);
    release.get('s1')!();
    await tick();
    expect(log).toEqual(['s1 start', 's1 end', 'e start']);
    release.get('e')!();
    await tick();
    expect(log.slice(-2)).toEqual(['e end', 's2 start']);
    release.get('s2')!();
    await Promise.all(calls);
  });

  it('gives a call the free slot holding the longest prefix of its prompt, else the least recently used', async () => {
    const a = slot('a', [1, 2, 3]);
    const b = slot('b', [1, 2, 3, 4, 5]);
    const c = slot('c', [9]);
    const slots = new SequenceSlots([a, b, c]);
    const took = (ids: number[] | undefined) => slots.shared(ids, async (s) => (s as unknown as { name: string }).name);
    expect(await took([1, 2, 3, 4, 5, 6])).toBe('b');
    expect(await took([9, 9])).toBe('c');
    // No prefix anywhere: the slot used longest ago (a, never used since the start).
    expect(await took([7])).toBe('a');
    expect(await took(undefined)).toBe('b');
  });

  it('frees the slot when the work throws', async () => {
    const slots = new SequenceSlots([slot('a', [])]);
    await expect(slots.exclusive(undefined, async () => {
      throw new Error('boom');
    })).rejects.toThrow('boom');
    expect(await slots.shared(undefined, async () => 'next')).toBe('next');
    expect(() => new SequenceSlots([])).toThrow(RangeError);
  });
});
