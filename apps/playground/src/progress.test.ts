import { describe, expect, it } from 'vitest';
import { describeLoaded, describeProgress, ProgressTracker } from './progress.js';

describe('ProgressTracker', () => {
  it('counts bytes and files per phase and remembers what was downloaded', () => {
    const t = new ProgressTracker();
    expect(t.view()).toMatchObject({ phase: 'idle', fraction: 0, filesSeen: 0 });
    t.push({ phase: 'download', file: 'config.json', loaded: 600, total: 600, overallLoaded: 600, overallTotal: 10_600 });
    t.push({ phase: 'download', file: 'model.safetensors', loaded: 4000, total: 10_000, overallLoaded: 4600, overallTotal: 10_600 });
    expect(t.view()).toMatchObject({ phase: 'download', loaded: 4600, total: 10_600, filesDone: 1, filesSeen: 2, file: 'model.safetensors' });
    t.push({ phase: 'download', file: 'model.safetensors', loaded: 10_000, total: 10_000, overallLoaded: 10_600, overallTotal: 10_600 });
    expect(t.view()).toMatchObject({ fraction: 1, filesDone: 2, downloadedBytes: 10_600 });
    t.push({ phase: 'read', file: 'model.safetensors', loaded: 500, total: 10_000, overallLoaded: 500, overallTotal: 10_000 });
    const v = t.view();
    expect(v).toMatchObject({ phase: 'read', loaded: 500, total: 10_000, filesDone: 0, filesSeen: 1, downloadedBytes: 10_600 });
    expect(v.fraction).toBeCloseTo(0.05);
  });
  it('sums files fetched in separate batches (the loader\'s running totals restart per batch)', () => {
    const t = new ProgressTracker();
    t.push({ phase: 'download', file: 'config.json', loaded: 600, total: 600, overallLoaded: 600, overallTotal: 600 });
    t.push({ phase: 'download', file: 'tokenizer.json', loaded: 7000, total: 7000, overallLoaded: 7000, overallTotal: 7000 });
    t.push({ phase: 'download', file: 'model.safetensors', loaded: 1000, total: 20_000, overallLoaded: 1000, overallTotal: 20_000 });
    expect(t.view()).toMatchObject({ loaded: 8600, total: 27_600, filesDone: 2, filesSeen: 3, downloadedBytes: 8600 });
    t.push({ phase: 'download', file: 'model.safetensors', loaded: 20_000, total: 20_000, overallLoaded: 20_000, overallTotal: 20_000 });
    expect(t.view()).toMatchObject({ loaded: 27_600, total: 27_600, fraction: 1, filesDone: 3, downloadedBytes: 27_600 });
  });
  it('counts a file not seen yet through the running total', () => {
    const t = new ProgressTracker();
    t.push({ phase: 'download', file: 'model-00001-of-00002.safetensors', loaded: 500, total: 1000, overallLoaded: 500, overallTotal: 3000 });
    expect(t.view()).toMatchObject({ loaded: 500, total: 3000 });
  });
  it('never moves backwards within a phase and reports 0 downloaded for a cached load', () => {
    const t = new ProgressTracker();
    t.push({ phase: 'read', file: 'a', loaded: 80, total: 100, overallLoaded: 80, overallTotal: 100 });
    t.push({ phase: 'read', file: 'a', loaded: 60, total: 100, overallLoaded: 60, overallTotal: 100 });
    expect(t.view()).toMatchObject({ loaded: 80, fraction: 0.8, downloadedBytes: 0 });
  });
  it('describes progress and the finished load', () => {
    const t = new ProgressTracker();
    t.push({ phase: 'download', file: 'model.safetensors', loaded: 9_813_876, total: 19_627_752, overallLoaded: 9_813_876, overallTotal: 19_627_752 });
    expect(describeProgress(t.view())).toBe('Downloading: 9.81 MB / 19.6 MB (50%) · files 0/1 · model.safetensors');
    t.push({ phase: 'read', file: 'model.safetensors', loaded: 19_627_752, total: 19_627_752, overallLoaded: 19_627_752, overallTotal: 19_627_752 });
    expect(describeLoaded(t.view(), 1234)).toBe('Loaded in 1.23 s: downloaded 9.81 MB · 19.6 MB / 19.6 MB (100%) · files 1/1 · model.safetensors');
    expect(describeLoaded(new ProgressTracker().view(), 80)).toBe('Loaded in 80 ms: nothing downloaded · 0 B / 0 B (0%) · files 0/0');
  });
});
