import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openApiPath } from '../../env.js';
import { ApiError } from './errors.js';
import { locateOpenApi, OpenApi, readOpenApiDoc } from './openapi.js';

const api = await OpenApi.load(openApiPath);
const ep = (n: string) => api.endpoints.get(n)!;

// The VmConfig Kata 3.32 sends for clh (cloud-hypervisor.md §9).
const kataConfig = {
  payload: { kernel: '/opt/kata/share/kata-containers/vmlinux.container', cmdline: 'root=/dev/vda1 panic=1 quiet' },
  cpus: { boot_vcpus: 1, max_vcpus: 2, topology: { threads_per_core: 1, cores_per_die: 2, dies_per_package: 1, packages: 1 } },
  memory: { size: 2048 * 2 ** 20, shared: true, hugepages: false, hotplug_size: 4 * 2 ** 30, hotplug_method: 'Acpi' },
  disks: [{ path: '/opt/kata/share/kata-containers/kata-containers.img', readonly: true, image_type: 'Raw' }],
  rng: { src: '/dev/urandom', iommu: false },
  fs: [{ tag: 'kataShared', socket: '/run/vc/vm/x/virtiofsd.sock', num_queues: 1, queue_size: 1024, pci_segment: 1 }],
  vsock: { cid: 3, socket: '/run/vc/vm/x/clh.sock' },
  serial: { mode: 'Off' }, console: { mode: 'Off' },
  platform: { num_pci_segments: 2 },
};

function rejects(name: string, body: string): ApiError {
  try { api.parseBody(ep(name), body); } catch (e) { return e as ApiError; }
  throw new Error('accepted');
}

describe('OpenAPI request validation', () => {
  it('derives the endpoints, methods and bodies from the document', () => {
    expect(ep('vmm.ping')).toMatchObject({ method: 'GET', body: undefined });
    expect(ep('vm.create')).toMatchObject({ method: 'PUT', body: 'VmConfig' });
    expect(ep('vm.boot')).toMatchObject({ method: 'PUT', body: undefined });
    expect(ep('vm.resize')).toMatchObject({ method: 'PUT', body: 'VmResize' });
    expect(ep('vm.add-net')).toMatchObject({ body: 'NetConfig' });
  });

  it.each([
    ['vm.create', kataConfig],
    ['vm.create', { payload: {} }],
    ['vm.create', { payload: { kernel: '/k' }, some_future_field: 1 }],
    ['vm.resize', { desired_vcpus: 2, desired_ram: 4 * 2 ** 30 }],
    ['vm.add-net', { mac: '52:54:00:12:34:56', iommu: false }],
    ['vm.add-disk', { path: '/img', id: 'clh_drive_0' }],
  ])('accepts %s %j', (name, body) => {
    expect(api.parseBody(ep(name), JSON.stringify(body))).toEqual(body);
  });

  it.each([
    ['vm.create', '{}', /missing field `payload`/],
    ['vm.create', '{"payload":{},"cpus":{"boot_vcpus":"1","max_vcpus":1}}', /invalid type at \/cpus\/boot_vcpus/],
    ['vm.create', '{"payload":{},"vsock":{"cid":2,"socket":"/s"}}', /\/vsock\/cid/],
    ['vm.create', '{"payload":{},"console":{"mode":"Serial"}}', /unknown variant at \/console\/mode/],
    ['vm.create', '{"payload":{},"fs":[{"tag":"t","socket":"/s"}]}', /missing field `num_queues`/],
    ['vm.create', '{"payload":', /JSON/],
    ['vm.resize', '{"desired_vcpus":0}', /desired_vcpus/],
    ['vm.add-fs', '{"tag":"kataShared","num_queues":1,"queue_size":1024}', /missing field `socket`/],
  ])('rejects %s %s with 400', (name, body, why) => {
    const e = rejects(name, body);
    expect(e).toBeInstanceOf(ApiError);
    expect(e.status).toBe(400);
    expect(e.chain[0]).toBe('Cannot deserialize JSON payload');
    expect(e.chain[1]).toMatch(why);
  });

  it('locates the document from CH_SIM_OPENAPI or by walking up, and names what is missing', () => {
    expect(locateOpenApi({}, '/work/main/dist/sim')).toBe(openApiPath.replace(/.*\/shared\//, '/work/shared/'));
    expect(locateOpenApi({ CH_SIM_OPENAPI: openApiPath }, '/')).toBe(openApiPath);
    expect(() => locateOpenApi({}, '/')).toThrow(/set CH_SIM_OPENAPI/);
    expect(() => locateOpenApi({ CH_SIM_OPENAPI: '/nope.yaml' }, '/')).toThrow(/no such file/);
  });

  it('caches the parsed document as JSON keyed by its sha256 and reads the cache back identically', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'ch-sim-openapi-test-'));
    try {
      const parsed = await readOpenApiDoc(openApiPath, dir);
      const files = readdirSync(dir);
      expect(files).toHaveLength(1);
      expect(files[0]).toMatch(/^ch-sim-openapi-[0-9a-f]{64}\.json$/);
      expect(await readOpenApiDoc(openApiPath, dir)).toEqual(parsed);
      expect(Object.keys(parsed.paths)).toContain('/vm.create');
    } finally { rmSync(dir, { recursive: true, force: true }); }
  });
});
