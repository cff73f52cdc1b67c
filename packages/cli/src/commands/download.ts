/** `qwen2 download`: fills the Hugging Face cache with a model's files, with progress per file and overall. */
import { stat } from 'node:fs/promises';
import type { LoadProgress } from '@qwen2-ts/loader';
import { CliError, UsageError } from '../util/errors.js';
import { formatBytes, formatSeconds } from '../util/format.js';
import type { Command } from './command.js';

export const downloadCommand: Command = {
  name: 'download',
  summary: 'fill the Hugging Face cache with a model',
  usage: 'qwen2 download owner/name[@revision] [--connections N]',
  description:
    'Downloads config, tokenizer and weight files of a Hub model into the Hugging Face cache (HF_HUB_CACHE,\n' +
    'HF_HOME/hub or ~/.cache/huggingface/hub, shared with Python\'s huggingface_hub), resuming partial\n' +
    'downloads and skipping files already cached. Large files come over several connections at once\n' +
    '(Range requests, written in order). Honours HF_ENDPOINT, HF_TOKEN and HF_HUB_OFFLINE.',
  flags: {
    revision: { type: 'string', value: 'REV', help: 'branch, tag or commit (default main; owner/name@rev also works)' },
    connections: { type: 'string', value: 'N', help: 'Range requests in flight per large file (default 8; 1 = one connection)' },
  },
  positionals: 1,
  async run(args, { status }) {
    const spec = args.positionals[0];
    if (!spec) throw new UsageError('give the model id, e.g. qwen2 download Qwen/Qwen2-0.5B-Instruct', 'download');
    const isDir = await stat(spec).then((s) => s.isDirectory(), () => false);
    if (isDir) throw new CliError(`${spec} is a local folder: there is nothing to download (use it with --model ${spec})`);
    if (!/^[\w.-]+\/[\w.-]+(@\S+)?$/.test(spec)) throw new UsageError(`'${spec}' is not a Hub model id (owner/name or owner/name@revision)`, 'download');
    const { openModel } = await import('@qwen2-ts/loader');
    const started = Date.now();
    const finished = new Set<string>();
    let totalBytes = 0;
    const onProgress = (p: LoadProgress) => {
      if (p.phase !== 'download') return;
      totalBytes = p.overallTotal;
      status.draw([
        { label: p.file, done: p.loaded, total: p.total },
        { label: 'total', done: p.overallLoaded, total: p.overallTotal },
      ], p.loaded >= p.total);
      if (p.total > 0 && p.loaded >= p.total && !finished.has(p.file)) {
        finished.add(p.file);
        // Without a terminal, one line per finished file is the progress report.
        if (!status.drawsBars) status.note(`downloaded ${p.file} (${formatBytes(p.total)})`);
      }
    };
    const revision = args.string('revision');
    // Absent: the loader's default (8).
    const downloadConnections = args.int('connections', undefined, 1, 64);
    const opened = await openModel(spec, { onProgress, ...(downloadConnections ? { downloadConnections } : {}), ...(revision ? { revision } : {}) }).finally(() => status.done());
    const tensors = opened.checkpoint.tensors.size;
    await opened.close();
    const summary = finished.size > 0
      ? `downloaded ${finished.size} file(s), ${formatBytes(totalBytes)} in ${formatSeconds((Date.now() - started) / 1000)}`
      : 'already in the cache';
    process.stdout.write(`${opened.source}: ${summary}; ${tensors} tensors ready (use --model ${spec})\n`);
    return 0;
  },
};
