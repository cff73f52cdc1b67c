// Packs this Node binary for a lent device machine that may have no Node (see the device tool's notes):
// a stripped copy, xz-compressed (about 21 MiB, well inside the 64 MiB carry limit). The device scripts
// unpack it with xz or, where xz is missing, Python's lzma.
import { copyFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';

/** Writes `<outDir>/node.xz`; returns its path. */
export function packNode(outDir) {
  const node = join(outDir, 'node');
  copyFileSync(process.execPath, node);
  try {
    execFileSync('strip', [node]);
  } catch {
    console.error('[device-prepare] strip not available: carrying an unstripped node');
  }
  execFileSync('xz', ['-9', '-f', '-T1', node]);
  return `${node}.xz`;
}
