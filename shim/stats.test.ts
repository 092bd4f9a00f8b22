import { describe, expect, it } from 'vitest';
import { io } from '../proto/index.js';
import { metricsAny } from './stats.js';

const s = {
  cgroupStats: {
    cpuStats: { cpuUsage: { totalUsage: 3_000_000, usageInKernelmode: 1_000_000, usageInUsermode: 2_000_000, percpuUsage: [1, 2] }, throttlingData: { periods: 4, throttledPeriods: 1, throttledTime: 9000 } },
    memoryStats: { cache: 10, usage: { usage: 4096, maxUsage: 8192, limit: 1 << 30, failcnt: 0 }, swapUsage: { usage: 1 }, stats: { rss: 100, inactive_file: 7 } },
    pidsStats: { current: 3, limit: 100 },
  },
  networkStats: [{ name: 'eth0', rxBytes: 5, txBytes: 6 }],
};

describe('cgroup metrics from StatsContainer', () => {
  it('v1 (host cgroup v1)', () => {
    const a = metricsAny(s, 'v1');
    expect(a.typeUrl).toBe('io.containerd.cgroups.v1.Metrics');
    const m = io.containerd.cgroups.v1.Metrics.decode(a.value);
    expect(m.cpu?.usage).toMatchObject({ total: 3_000_000, kernel: 1_000_000, user: 2_000_000, perCpu: [1, 2] });
    expect(m.memory).toMatchObject({ cache: 10, rss: 100, usage: { usage: 4096, max: 8192, limit: 1 << 30 } });
    expect(m.pids).toMatchObject({ current: 3, limit: 100 });
    expect(m.network[0]).toMatchObject({ name: 'eth0', rxBytes: 5, txBytes: 6 });
  });
  it('v2 (host cgroup v2): microseconds and flat memory', () => {
    const a = metricsAny(s, 'v2');
    expect(a.typeUrl).toBe('io.containerd.cgroups.v2.Metrics');
    const m = io.containerd.cgroups.v2.Metrics.decode(a.value);
    expect(m.cpu).toMatchObject({ usageUsec: 3000, userUsec: 2000, systemUsec: 1000, nrPeriods: 4, nrThrottled: 1, throttledUsec: 9 });
    expect(m.memory).toMatchObject({ usage: 4096, usageLimit: 1 << 30, maxUsage: 8192, anon: 100, inactiveFile: 7 });
  });
});
