/** The WebGPU device cannot do what was asked: a limit is too small, memory ran out, or no adapter. */
export class WebGPUDeviceError extends Error {
  override name = 'WebGPUDeviceError';
  /** The WebGPU limit that was too small, when that is the problem. */
  readonly limit?: string;
  constructor(message: string, limit?: string) {
    super(message);
    if (limit !== undefined) this.limit = limit;
  }
}

/** The device was lost (driver reset, GPU removed, or destroyed); the backend cannot be used any more. */
export class WebGPUDeviceLostError extends Error {
  override name = 'WebGPUDeviceLostError';
  constructor(readonly reason: string, message: string) {
    super(`WebGPU device lost (${reason}): ${message}`);
  }
}

