import { describe, expect, it } from 'vitest';
import { google } from '../../../proto/index.js';
import { requestTarget, statusResponse } from './rust-server.js';

// ttrpc.Request {service=1, method=2, payload=3, timeout_nano=4}, encoded by hand as on the wire.
function request(service: string, method: string, payload = Buffer.alloc(3)): Buffer {
  const f = (tag: number, b: Buffer) => Buffer.concat([Buffer.from([tag, b.length]), b]);
  return Buffer.concat([f(0x0a, Buffer.from(service)), f(0x12, Buffer.from(method)), f(0x1a, payload), Buffer.from([0x20, 0x80, 0x01])]);
}

describe('ttrpc-rust quirks filter', () => {
  it('reads service and method from a Request', () => {
    expect(requestTarget(request('grpc.AgentService', 'CreateContainer'))).toEqual({ service: 'grpc.AgentService', method: 'CreateContainer' });
  });

  it('encodes a Response whose status decodes as google.rpc.Status', () => {
    const r = statusResponse(3, 'x.Y service does not exist');
    expect(r[0]).toBe(0x0a);
    const status = google.rpc.Status.decode(r.subarray(2));
    expect(status).toMatchObject({ code: 3, message: 'x.Y service does not exist' });
  });
});
