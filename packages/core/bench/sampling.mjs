#!/usr/bin/env node
// The host sampler (core's sampleFromLogits: the WASM and reference backends draw with it, and so does
// constrained generation) over one row of Qwen2's 151,936 logits, per parameter set, next to argmax
// (what a greedy step costs): milliseconds per draw and the ratio to argmax.
//
//   node bench/sampling.mjs [--draws=40]
//
// Needs the built dist of core (`node_modules/.bin/pnpm --filter @qwen2-ts/core build`).
import { argmax, sampleFromLogits, TokenHistory } from '@qwen2-ts/core';

const args = new Map(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')).map(([k, v]) => [k, v ?? '1']));
const draws = Number(args.get('draws') ?? 40);
const V = 151936;

// Logits shaped like a language model's: a few likely tokens over a long tail.
let s = 12345;
const uniform = () => ((s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32);
const logits = Float32Array.from({ length: V }, () => (uniform() - 0.5) * 8 + (uniform() < 0.001 ? 10 : 0));
const history = new TokenHistory(Array.from({ length: 300 }, (_, i) => (i * 7919) % V)).toParams();
const base = { temperature: 1, topK: 0, topP: 1, minP: 0, repetitionPenalty: 1, presencePenalty: 0, frequencyPenalty: 0, history };
const SETS = {
  'Qwen2-Instruct default (T 0.7, top-k 20, top-p 0.8, rep 1.05)': { temperature: 0.7, topK: 20, topP: 0.8, repetitionPenalty: 1.05 },
  'HF default (T 1, top-k 50)': { topK: 50 },
  'T 1 only': {},
  'T 1, top-p 0.9 (no top-k)': { topP: 0.9 },
  'T 0.8, min-p 0.05': { temperature: 0.8, minP: 0.05 },
  'greedy with repetition penalty 1.1': { temperature: 0, repetitionPenalty: 1.1 },
};

function time(fn) {
  for (let i = 0; i < 3; i++) fn(i);
  const t0 = performance.now();
  for (let i = 0; i < draws; i++) fn(i);
  return (performance.now() - t0) / draws;
}
const argmaxMs = time(() => argmax(logits));
console.log(`one row of ${V} logits, ${draws} draws each; argmax ${argmaxMs.toFixed(2)} ms`);
console.log('parameters'.padEnd(64), 'ms/draw', ' x argmax');
for (const [name, p] of Object.entries(SETS)) {
  const ms = time((i) => sampleFromLogits(logits, { ...base, ...p, uniform: (i + 0.5) / draws }));
  console.log(name.padEnd(64), ms.toFixed(2).padStart(7), (ms / argmaxMs).toFixed(1).padStart(8));
}
