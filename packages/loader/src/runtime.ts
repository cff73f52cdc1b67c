/** True in Node.js (and runtimes that implement its APIs), where node:fs code paths may be imported. */
export function isNode(): boolean {
  const p = (globalThis as { process?: { versions?: { node?: string } } }).process;
  return typeof p?.versions?.node === 'string';
}
