// A minimal writer of ONNX model files (protobuf wire format, the messages and fields of onnx.proto that
// a graph of nodes with initializers needs), so the onnxruntime comparison runs a model built from the
// same random weights as ours without Python. Field numbers are onnx.proto's.

/** ONNX TensorProto.DataType values used here. */
export const DT = { FLOAT: 1, UINT8: 2, INT8: 3, INT32: 6, INT64: 7, FLOAT16: 10 };

/** Protobuf bytes built field by field. */
class Writer {
  parts = [];
  length = 0;
  push(bytes) {
    this.parts.push(bytes);
    this.length += bytes.byteLength;
    return this;
  }
  varint(value) {
    let v = BigInt.asUintN(64, BigInt(value));
    const out = [];
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v) byte |= 0x80;
      out.push(byte);
    } while (v);
    return this.push(Uint8Array.from(out));
  }
  tag(field, wire) { return this.varint((field << 3) | wire); }
  int(field, value) { return this.tag(field, 0).varint(value); }
  float(field, value) {
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, value, true);
    return this.tag(field, 5).push(b);
  }
  bytes(field, bytes) { return this.tag(field, 2).varint(bytes.byteLength).push(bytes); }
  string(field, text) { return this.bytes(field, new TextEncoder().encode(text)); }
  message(field, writer) {
    this.tag(field, 2).varint(writer.length);
    for (const p of writer.parts) this.push(p);
    return this;
  }
  packedInts(field, values) {
    const w = new Writer();
    for (const v of values) w.varint(v);
    return this.message(field, w);
  }
  /** The whole message as one buffer. */
  finish() {
    const out = new Uint8Array(this.length);
    let at = 0;
    for (const p of this.parts) {
      out.set(p, at);
      at += p.byteLength;
    }
    return out;
  }
}

/** A TensorProto with raw little-endian bytes, or pointing at them in the external data file. */
function tensorProto(name, dataType, dims, raw, external) {
  const w = new Writer().packedInts(1, dims).int(2, dataType).string(8, name);
  if (!external) return w.bytes(9, new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength));
  const entry = (key, value) => new Writer().string(1, key).string(2, String(value));
  return w.message(13, entry('location', external.file)).message(13, entry('offset', external.offset)).message(13, entry('length', raw.byteLength)).int(14, 1);
}

/** AttributeProto: numbers become INT (integers) or FLOAT, arrays INTS, strings STRING. */
function attributeProto(name, value) {
  const w = new Writer().string(1, name);
  if (typeof value === 'string') return w.string(4, value).int(20, 3);
  if (Array.isArray(value)) return w.packedInts(8, value).int(20, 7);
  if (typeof value === 'object' && value.float !== undefined) return w.float(2, value.float).int(20, 1);
  return w.int(3, value).int(20, 2);
}

/** ValueInfoProto of a tensor; dims are numbers or names of symbolic dimensions. */
function valueInfoProto(name, elemType, dims) {
  const shape = new Writer();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, elemType).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensorType));
}

/**
 * Builds a graph: `node(op, inputs, outputs, attrs, domain)` adds a node, `init(name, type, dims, typedArray)`
 * an initializer, `input` / `output` the graph's interface; `encode()` gives the ModelProto's bytes.
 */
export class OnnxGraph {
  nodes = [];
  initializers = [];
  inputs = [];
  outputs = [];
  count = 0;
  /** Initializers of at least 1 MiB go to this external data file (protobuf caps a model at 2 GiB). */
  external;
  externalParts = [];
  externalBytes = 0;

  /** @param externalFile - name of the external data file beside the model (none: everything inline) */
  constructor(externalFile) {
    this.external = externalFile;
  }

  node(op, inputs, outputs, attrs = {}, domain = '') {
    const w = new Writer();
    for (const i of inputs) w.string(1, i);
    for (const o of outputs) w.string(2, o);
    w.string(3, `${op}_${this.count++}`).string(4, op);
    for (const [k, v] of Object.entries(attrs)) w.message(5, attributeProto(k, v));
    if (domain) w.string(7, domain);
    this.nodes.push(w);
    return outputs.length === 1 ? outputs[0] : outputs;
  }
  init(name, dataType, dims, data) {
    if (this.external && data.byteLength >= 1 << 20) {
      const offset = this.externalBytes;
      this.externalParts.push(new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
      this.externalBytes += data.byteLength;
      this.initializers.push(tensorProto(name, dataType, dims, data, { file: this.external, offset }));
    } else {
      this.initializers.push(tensorProto(name, dataType, dims, data));
    }
    return name;
  }
  input(name, elemType, dims) { this.inputs.push(valueInfoProto(name, elemType, dims)); }
  output(name, elemType, dims) { this.outputs.push(valueInfoProto(name, elemType, dims)); }

  /** The external data file's parts, in order (write them one after the other). */
  externalData() {
    return this.externalParts;
  }

  /** ModelProto bytes (IR version 8; opsets: onnx 17, com.microsoft 1). */
  encode(name = 'graph') {
    const graph = new Writer();
    for (const n of this.nodes) graph.message(1, n);
    graph.string(2, name);
    for (const t of this.initializers) graph.message(5, t);
    for (const i of this.inputs) graph.message(11, i);
    for (const o of this.outputs) graph.message(12, o);
    const model = new Writer().int(1, 8).string(2, 'qwen2-ts bench');
    model.message(7, graph);
    model.message(8, new Writer().string(1, '').int(2, 17));
    model.message(8, new Writer().string(1, 'com.microsoft').int(2, 1));
    return model.finish();
  }
}
