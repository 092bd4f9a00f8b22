import { mkdirSync, mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { simLeftovers } from '../testkit.js';
import { ApiError } from './errors.js';
import { EventMonitor } from './events.js';
import { readFaults } from './faults.js';
import { transitions, Vmm, withDefaults, validateConfig, type VmAction, type VmState } from './vm.js';

const idleGuest = join(import.meta.dirname, 'testdata', 'idle-guest.sh');
const dir = mkdtempSync(join(tmpdir(), 'ch-sim-vm-test-'));
// Guest dirs of this file's VMs go below `dir` (os.tmpdir() follows TMPDIR), so leftovers are ours.
const guestTmp = join(dir, 'tmp');
mkdirSync(guestTmp);
process.env.TMPDIR = guestTmp;
const kernel = join(dir, 'vmlinux');
writeFileSync(kernel, 'not really a kernel');
const quiet = { debug() {}, info() {}, warn() {}, error() {} };
let live: Vmm[] = [];
let exits: number[] = [];

function vmm(): Vmm {
  const v = new Vmm({ faults: readFaults({}), events: new EventMonitor(), log: quiet, agentPath: idleGuest, exit: (s) => exits.push(s) });
  live.push(v);
  return v;
}

let n = 0;
function config(): Record<string, any> {
  return { payload: { kernel, cmdline: 'panic=1' }, memory: { size: 256 << 20, hotplug_size: 1 << 30 }, cpus: { boot_vcpus: 1, max_vcpus: 2 }, vsock: { cid: 3, socket: join(dir, `clh-${n++}.sock`) }, console: { mode: 'Off' } };
}

let lastSocket = '';
async function inState(state: VmState): Promise<Vmm> {
  const v = vmm();
  if (state === 'NotCreated') return v;
  const c = config();
  lastSocket = c.vsock.socket;
  v.create(c);
  if (state === 'Created') return v;
  await v.boot();
  if (state === 'Paused') v.pause();
  return v;
}

async function act(v: Vmm, a: VmAction): Promise<unknown> {
  switch (a) {
    case 'create': return v.create(config());
    case 'boot': return v.boot();
    case 'pause': return v.pause();
    case 'resume': return v.resume();
    case 'shutdown': return v.shutdown();
    case 'reboot': return v.reboot();
    case 'power-button': return v.powerButton();
    case 'delete': return v.delete();
    case 'info': return v.info();
    case 'counters': return v.counters();
    case 'resize': return v.resize({ desired_vcpus: 2 });
    case 'add-device': return v.addDevice('disks', { path: kernel });
    case 'remove-device': return v.removeDevice('nope');
  }
}

afterEach(async () => {
  for (const v of live) await v.exitVmm(0);
  live = [];
  exits = [];
});
afterAll(() => {
  expect(simLeftovers(guestTmp)).toEqual([]);
  rmSync(dir, { recursive: true, force: true });
});

const states: VmState[] = ['NotCreated', 'Created', 'Running', 'Paused'];
const table = (Object.keys(transitions) as VmAction[]).flatMap((a) => states.map((s) => [a, s, transitions[a][s] ?? '500, state unchanged', transitions[a][s]] as const))
  .filter(([a, , , next]) => !(a === 'remove-device' && next)); // needs a known id: covered below

describe('VM state machine (transition table)', () => {
  it.each(table)('%s in %s → %s', async (action, from, _label, next) => {
    const v = await inState(from);
    if (next === undefined) {
      const err = await Promise.resolve().then(() => act(v, action)).then(() => undefined, (e) => e);
      expect(err).toBeInstanceOf(ApiError);
      expect((err as ApiError).status).toBe(500);
      expect(v.state).toBe(from);
      return;
    }
    await act(v, action);
    expect(v.state).toBe(next);
    // The vsock socket exists exactly while the VM is booted.
    if (action !== 'create') expect(existsSync(lastSocket)).toBe(next === 'Running' || next === 'Paused');
  });
});

describe('VM semantics', () => {
  it('refuses to boot when the kernel file does not exist', async () => {
    const v = vmm();
    v.create({ ...config(), payload: { kernel: join(dir, 'missing') } });
    await expect(v.boot()).rejects.toMatchObject({ status: 500, chain: expect.arrayContaining([expect.stringContaining('No such file')]) });
    expect(v.state).toBe('Created');
  });

  it('refuses to boot when the vsock socket path exists, and leaves it alone', async () => {
    const v = vmm();
    const c = config();
    writeFileSync(c.vsock.socket, '');
    v.create(c);
    await expect(v.boot()).rejects.toMatchObject({ status: 500, chain: expect.arrayContaining([expect.stringContaining('Address already in use')]) });
    expect(existsSync(c.vsock.socket)).toBe(true);
  });

  it('requires shared memory for virtio-fs', () => {
    const c = withDefaults({ ...config(), fs: [{ tag: 'kataShared', socket: '/x', num_queues: 1, queue_size: 1024 }] });
    expect(validateConfig(c)).toMatch(/shared memory/);
    c.memory.shared = true;
    expect(validateConfig(c)).toBeUndefined();
  });

  it('adds devices cold before boot (no body) and hot after boot (PciDeviceInfo)', async () => {
    const v = await inState('Created');
    expect(v.addDevice('disks', { path: kernel })).toBeUndefined();
    await v.boot();
    expect(v.addDevice('disks', { path: kernel })).toMatchObject({ id: expect.stringMatching(/^_disk\d+$/), bdf: expect.stringMatching(/^0000:00:[0-9a-f]{2}\.0$/) });
    expect(v.info().config.disks).toHaveLength(2);
    v.removeDevice(v.info().config.disks[0].id);
    expect(v.info().config.disks).toHaveLength(1);
  });

  it('resize: vCPUs up to max_vcpus, memory within hotplug_size; reported by vm.info', async () => {
    const v = await inState('Running');
    v.resize({ desired_vcpus: 2, desired_ram: (256 << 20) + (512 << 20) });
    expect(v.info()).toMatchObject({ config: { cpus: { boot_vcpus: 2 } }, memory_actual_size: 768 << 20 });
    expect(() => v.resize({ desired_vcpus: 3 })).toThrow(/exceed/);
    expect(() => v.resize({ desired_ram: 4 * 2 ** 30 })).toThrow(/hotplug/);
  });

  it('a guest that ends by itself powers the VM off and the VMM exits', async () => {
    const v = await inState('Running');
    const pid = (v as unknown as { guest: { pid: number } }).guest.pid;
    process.kill(pid, 'SIGKILL');
    await expect.poll(() => exits).toEqual([0]);
  });

  it('power-button on a paused VM takes effect on resume', async () => {
    const v = await inState('Paused');
    v.powerButton();
    await new Promise((r) => setTimeout(r, 50));
    expect(exits).toEqual([]);
    v.resume();
    await expect.poll(() => exits).toEqual([0]);
  });
});
