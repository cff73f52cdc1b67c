/** Types of a uniform field: every field is one 4-byte scalar. */
export type FieldType = 'u32' | 'f32';

/** A kernel's uniform block: ordered fields, written by name from the host. */
export type Fields = readonly (readonly [name: string, type: FieldType])[];

/** WGSL for the uniform struct `P` bound at binding 0 (a dynamic-offset slice of the pass's uniform arena). */
export function paramsDecl(fields: Fields): string {
  return `struct P {\n${fields.map(([n, t]) => `  ${n}: ${t},`).join('\n')}\n}\n@group(0) @binding(0) var<uniform> p: P;\n`;
}

/**
 * Declares the distinct activation buffers of a dispatch. Tensors that share a GPU buffer (in-place ops,
 * views of one parent) must be bound once: WebGPU rejects a dispatch whose writable storage bindings
 * alias. `slots[i]` is the distinct binding of logical tensor `i`; binding numbers start at 1. Slots in
 * `vec4Slots` are declared as `array<vec4<f32>>` (16-byte loads; the caller indexes them in vec4 units).
 * @returns the WGSL declarations and the variable name of each logical tensor
 */
export function actDecls(slots: readonly number[], vec4Slots: readonly number[] = []): { decl: string; names: string[]; count: number } {
  const count = Math.max(...slots) + 1;
  let decl = '';
  for (let j = 0; j < count; j++) decl += `@group(0) @binding(${1 + j}) var<storage, read_write> a${j}: array<${vec4Slots.includes(j) ? 'vec4<f32>' : 'f32'}>;\n`;
  return { decl, names: slots.map((s) => `a${s}`), count };
}

/** The flat workgroup index of a dispatch laid out 2-D to stay under 65535 per dimension. */
export const WG_INDEX = 'fn wgIndex(wid: vec3<u32>, nwg: vec3<u32>) -> u32 { return wid.x + wid.y * nwg.x; }\n';

export const BUILTINS = '@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32';
