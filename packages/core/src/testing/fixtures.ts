import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { memoryFile, openModel, readSafetensorsHeader, type OpenedModel } from '@qwen2-ts/loader';

/** The random-weight model fixtures every backend must reproduce. */
export const FIXTURE_MODELS = ['tiny-f32', 'tiny-bf16-untied', 'tiny-f16-sharded', 'full-vocab-bf16'] as const;
export type FixtureModelName = (typeof FIXTURE_MODELS)[number];

/** Top-k ids and values of one row of logits. */
export interface TopK { ids: number[]; values: number[] }

/** One golden sequence of a fixture's golden.json. */
export interface GoldenSequence {
  input_ids: number[];
  last_argmax: number;
  last_logsumexp: number;
  greedy_new_tokens: number[];
  greedy_min_margin: number;
  last_logits?: number[];
  last_top20?: TopK;
}

/** The parts of golden.json the suite checks. */
export interface Golden {
  case: string;
  dtype: 'F32' | 'F16' | 'BF16';
  sequences: GoldenSequence[];
  all_positions: { seq_index: number; input_ids: number[]; argmax: number[]; logits?: number[][]; top20?: TopK[] };
  debug: {
    seq_index: number;
    position: number;
    embed: number[];
    layers: { attn_out: number[]; mlp_out: number[]; hidden_out: number[] }[];
    final_norm: number[];
  };
  incremental: {
    seq_index: number;
    schedule: number[];
    steps: { tokens: number[]; start_position: number; cache_len_after: number; last_argmax: number; last_logits?: number[]; last_top20?: TopK }[];
  };
}

/** A fixture model: its golden outputs, and full logits where golden.json keeps only the top 20. */
export interface Fixture {
  name: string;
  dir: string;
  golden: Golden;
  /** Full golden logits of sequence i's last position (from golden.json or golden_logits.safetensors). */
  lastLogits(i: number): Float32Array;
  /** Full golden logits of every position of the all_positions prompt. */
  allPositionLogits(): Float32Array[];
}

/**
 * Reads a fixture's golden data.
 * @param fixturesDir - the repository's `fixtures` folder
 */
export async function loadFixture(fixturesDir: string, name: string): Promise<Fixture> {
  const dir = join(fixturesDir, 'models', name);
  const golden = JSON.parse(await readFile(join(dir, 'golden.json'), 'utf8')) as Golden & { golden_logits_file?: string };
  let extra: Map<string, Float32Array> | undefined;
  if (golden.golden_logits_file) extra = await readF32Safetensors(join(dir, golden.golden_logits_file));
  const vocab = (golden as unknown as { model: { vocab_size: number } }).model.vocab_size;
  return {
    name,
    dir,
    golden,
    lastLogits(i) {
      const s = golden.sequences[i]!;
      if (s.last_logits) return Float32Array.from(s.last_logits);
      const t = extra?.get(`seq${i}.last_logits`);
      if (!t) throw new Error(`${name}: no golden logits for sequence ${i}`);
      return t;
    },
    allPositionLogits() {
      if (golden.all_positions.logits) return golden.all_positions.logits.map((r) => Float32Array.from(r));
      const t = extra?.get('all_positions.logits');
      if (!t) throw new Error(`${name}: no golden all-position logits`);
      const rows: Float32Array[] = [];
      for (let r = 0; r < t.length / vocab; r++) rows.push(t.slice(r * vocab, (r + 1) * vocab));
      return rows;
    },
  };
}

/** Opens a fixture's checkpoint with the loader. */
export function openFixtureModel(fixture: Fixture): Promise<OpenedModel> {
  return openModel(fixture.dir);
}

async function readF32Safetensors(path: string): Promise<Map<string, Float32Array>> {
  const bytes = new Uint8Array(await readFile(path));
  const header = await readSafetensorsHeader(memoryFile(path, bytes));
  const out = new Map<string, Float32Array>();
  for (const [name, info] of header.tensors) {
    if (info.dtype !== 'F32') continue;
    const slice = bytes.slice(header.dataOffset + info.begin, header.dataOffset + info.end);
    out.set(name, new Float32Array(slice.buffer));
  }
  return out;
}
