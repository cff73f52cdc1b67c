/**
 * Folds the loader's progress events into what the progress bar shows: the current phase, bytes and
 * files done. Events come per file (`loaded`/`total`) with running totals for the whole phase
 * (`overallLoaded`/`overallTotal`); a load has a `download` phase (network into the browser cache, absent
 * when everything is cached) and then a `read` phase (tensors from the cache or disk to the backend).
 */

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
  private loaded = 0;
  private total = 0;
  private file = '';
  private downloaded = 0;

  /** Takes one event; a new phase starts its own byte and file counts. */
  push(e: ProgressEvent): void {
    if (e.phase !== this.phase) {
      this.phase = e.phase;
      this.files.clear();
      this.loaded = 0;
      this.total = 0;
    }
    this.files.set(e.file, { loaded: e.loaded, total: e.total });
    // Running totals only grow within a phase; a late event from a parallel read must not move the bar back.
    this.loaded = Math.max(this.loaded, e.overallLoaded);
    this.total = Math.max(this.total, e.overallTotal);
    this.file = e.file;
    if (e.phase === 'download') this.downloaded = Math.max(this.downloaded, e.overallLoaded);
  }

  view(): ProgressView {
    let filesDone = 0;
    for (const f of this.files.values()) if (f.total > 0 && f.loaded >= f.total) filesDone++;
    return {
      phase: this.phase,
      loaded: this.loaded,
      total: this.total,
      fraction: this.total > 0 ? Math.min(1, this.loaded / this.total) : 0,
      filesDone,
      filesSeen: this.files.size,
      file: this.file,
      downloadedBytes: this.downloaded,
    };
  }
}
