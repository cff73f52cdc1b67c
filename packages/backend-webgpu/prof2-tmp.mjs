process.env.VK_ICD_FILENAMES = '/work/main/packages/backend-webgpu/.vendor/lavapipe/lvp_icd.json';
const { create } = await import('webgpu');
const { webgpuBackend } = await import('./dist/index.js');
const gpu = create([]);
const b = await webgpuBackend({ gpu });
const x = b.alloc(1, 256), y = b.alloc(1, 256);
b.beginPass(1, 0); b.add(x, x, y); b.endPass(); await b.read(y);
for (let rep = 0; rep < 3; rep++) {
  let t = performance.now();
  b.beginPass(1, 0);
  for (let i = 0; i < 1000; i++) b.add(x, x, y);
  const tRec = performance.now() - t;
  b.endPass();
  const tSub = performance.now() - t - tRec;
  await b.read(y);
  console.log({ recordUsPerDispatch: tRec, submitMs: tSub, totalMs: performance.now() - t });
}
await b.dispose();
