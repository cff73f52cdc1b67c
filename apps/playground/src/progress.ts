/**
 * Folds the loader's progress events into what the progress bar shows: the current phase, bytes and
 * files done. A load has a `download` phase (network into the browser cache, absent when everything is
 * cached) and then a `read` phase (tensors from the cache or disk to the backend). Events come per file
 * (`loaded`/`total`) with running totals (`overallLoaded`/`overallTotal`); the loader's running totals
 * cover one batch of files (the small files are fetched one by one before the weights are fetched
 * together), so the bar sums the per-file counts instead, and uses the running total only to know the
 * size of files not seen yet.
 */

import { formatBytes, formatMs, formatPercent } from './format.js';

/** One progress event, as the loader sends it (structurally the loader's `LoadProgress`). */
export interface ProgressEvent {
  file: string;
  loaded: number;
  total: number;
  overallLoaded: number;
  overallTotal: number;
  phase: 'download' | 'read';
}

/** What the progress bar shows. */
export interface ProgressView {
  phase: 'download' | 'read' | 'idle';
  /** Bytes done / total of the current phase. */
  loaded: number;
  total: number;
  /** loaded / total in [0, 1]; 0 while the total is unknown. */
  fraction: number;
  /** Files of the current phase finished, and seen so far. */
  filesDone: number;
  filesSeen: number;
  /** The file the last event was about. */
  file: string;
  /** Bytes fetched from the network over the whole load (0 when everything came from the cache). */
  downloadedBytes: number;
}

/** Accumulates progress events of one load. */
export class ProgressTracker {
  private phase: ProgressView['phase'] = 'idle';
  private files = new Map<string, { loaded: number; total: number }>();
  private overallTotal = 0;
  private file = '';
  private downloaded = 0;

  /** Takes one event; a new phase starts its own byte and file counts. */
  push(e: ProgressEvent): void {
    if (e.phase !== this.phase) {
      this.phase = e.phase;
      this.files.clear();
      this.overallTotal = 0;
    }
    // Counts only grow within a phase: a late event from a parallel read must not move the bar back.
    const before = this.files.get(e.file);
    this.files.set(e.file, { loaded: Math.max(before?.loaded ?? 0, e.loaded), total: Math.max(before?.total ?? 0, e.total) });
    this.overallTotal = Math.max(this.overallTotal, e.overallTotal);
    this.file = e.file;
    if (e.phase === 'download') this.downloaded += e.loaded - Math.min(e.loaded, before?.loaded ?? 0);
  }

  view(): ProgressView {
    let filesDone = 0;
    let loaded = 0;
    let total = 0;
    for (const f of this.files.values()) {
      if (f.total > 0 && f.loaded >= f.total) filesDone++;
      loaded += Math.min(f.loaded, f.total);
      total += f.total;
    }
    total = Math.max(total, this.overallTotal);
    return {
      phase: this.phase,
      loaded,
      total,
      fraction: total > 0 ? Math.min(1, loaded / total) : 0,
      filesDone,
      filesSeen: this.files.size,
      file: this.file,
      downloadedBytes: this.downloaded,
    };
  }
}

/** The line under the progress bar while loading: phase, bytes, percentage, files, current file. */
export function describeProgress(v: ProgressView): string {
  const verb = v.phase === 'download' ? 'Downloading' : 'Loading weights';
  return `${verb}: ${describeCounts(v)}`;
}

/** The line once loaded: how long, what came over the network, and the last phase's counts. */
export function describeLoaded(v: ProgressView, ms: number): string {
  const network = v.downloadedBytes > 0 ? `downloaded ${formatBytes(v.downloadedBytes)}` : 'nothing downloaded';
  return `Loaded in ${formatMs(ms)}: ${network} · ${describeCounts(v)}`;
}

function describeCounts(v: ProgressView): string {
  return `${formatBytes(v.loaded)} / ${formatBytes(v.total)} (${formatPercent(v.fraction)}) · files ${v.filesDone}/${v.filesSeen}${v.file ? ` · ${v.file}` : ''}`;
}
