// The agent's StatsContainer answer as the cgroup Metrics containerd and CRI decode,
// v1 or v2 by the host's cgroup mode (as Kata does).
import { existsSync } from 'node:fs';
import { TypeUrl, grpc, io } from '../proto/index.js';

export type CgroupMode = 'v1' | 'v2';

export function hostCgroupMode(root = '/sys/fs/cgroup'): CgroupMode {
  return existsSync(`${root}/cgroup.controllers`) ? 'v2' : 'v1';
}

const n = (v: unknown): number => (typeof v === 'number' ? v : Number(v ?? 0));
type V1 = io.containerd.cgroups.v1.Metrics.$Properties;
type V2 = io.containerd.cgroups.v2.Metrics.$Properties;
type Stats = grpc.StatsContainerResponse.$Properties;

function blkio(entries: grpc.BlkioStatsEntry.$Properties[] | null | undefined) {
  return (entries ?? []).map((e) => ({ op: e.op ?? '', major: n(e.major), minor: n(e.minor), value: n(e.value) }));
}

function network(s: Stats) {
  return (s.networkStats ?? []).map((x) => ({
    name: x.name ?? '', rxBytes: n(x.rxBytes), rxPackets: n(x.rxPackets), rxErrors: n(x.rxErrors), rxDropped: n(x.rxDropped),
    txBytes: n(x.txBytes), txPackets: n(x.txPackets), txErrors: n(x.txErrors), txDropped: n(x.txDropped),
  }));
}

export function toV1Metrics(s: Stats): V1 {
  const c = s.cgroupStats ?? {};
  const usage = c.cpuStats?.cpuUsage ?? {};
  const thr = c.cpuStats?.throttlingData ?? {};
  const mem = c.memoryStats ?? {};
  const st = (mem.stats ?? {}) as Record<string, number>;
  const entry = (d: grpc.MemoryData.$Properties | null | undefined) => ({ usage: n(d?.usage), max: n(d?.maxUsage), failcnt: n(d?.failcnt), limit: n(d?.limit) });
  return {
    pids: { current: n(c.pidsStats?.current), limit: n(c.pidsStats?.limit) },
    cpu: {
      usage: { total: n(usage.totalUsage), kernel: n(usage.usageInKernelmode), user: n(usage.usageInUsermode), perCpu: (usage.percpuUsage ?? []).map(n) },
      throttling: { periods: n(thr.periods), throttledPeriods: n(thr.throttledPeriods), throttledTime: n(thr.throttledTime) },
    },
    memory: {
      cache: n(mem.cache), rss: n(st.rss), rssHuge: n(st.rss_huge), mappedFile: n(st.mapped_file), dirty: n(st.dirty),
      writeback: n(st.writeback), inactiveAnon: n(st.inactive_anon), activeAnon: n(st.active_anon),
      inactiveFile: n(st.inactive_file), activeFile: n(st.active_file), unevictable: n(st.unevictable),
      totalInactiveFile: n(st.total_inactive_file ?? st.inactive_file),
      usage: entry(mem.usage), swap: entry(mem.swapUsage), kernel: entry(mem.kernelUsage),
    },
    blkio: {
      ioServiceBytesRecursive: blkio(c.blkioStats?.ioServiceBytesRecursive),
      ioServicedRecursive: blkio(c.blkioStats?.ioServicedRecursive),
    },
    hugetlb: Object.entries(c.hugetlbStats ?? {}).map(([pagesize, h]) => ({ pagesize, usage: n(h.usage), max: n(h.maxUsage), failcnt: n(h.failcnt) })),
    network: network(s),
  };
}

export function toV2Metrics(s: Stats): V2 {
  const c = s.cgroupStats ?? {};
  const usage = c.cpuStats?.cpuUsage ?? {};
  const thr = c.cpuStats?.throttlingData ?? {};
  const mem = c.memoryStats ?? {};
  const st = (mem.stats ?? {}) as Record<string, number>;
  return {
    pids: { current: n(c.pidsStats?.current), limit: n(c.pidsStats?.limit) },
    // The agent reports nanoseconds (cgroup v1 style); v2 counts microseconds.
    cpu: {
      usageUsec: Math.floor(n(usage.totalUsage) / 1000), userUsec: Math.floor(n(usage.usageInUsermode) / 1000),
      systemUsec: Math.floor(n(usage.usageInKernelmode) / 1000), nrPeriods: n(thr.periods),
      nrThrottled: n(thr.throttledPeriods), throttledUsec: Math.floor(n(thr.throttledTime) / 1000),
    },
    memory: {
      anon: n(st.anon ?? st.rss), file: n(st.file ?? mem.cache), inactiveFile: n(st.inactive_file), activeFile: n(st.active_file),
      usage: n(mem.usage?.usage), usageLimit: n(mem.usage?.limit), maxUsage: n(mem.usage?.maxUsage),
      swapUsage: n(mem.swapUsage?.usage), swapLimit: n(mem.swapUsage?.limit),
    },
    network: network(s),
  };
}

/** The Stats Any for this host. */
export function metricsAny(s: Stats, mode: CgroupMode): { typeUrl: string; value: Uint8Array } {
  if (mode === 'v2') {
    return { typeUrl: TypeUrl.cgroupsV2Metrics, value: io.containerd.cgroups.v2.Metrics.encode(io.containerd.cgroups.v2.Metrics.fromObject(toV2Metrics(s))).finish() };
  }
  return { typeUrl: TypeUrl.cgroupsV1Metrics, value: io.containerd.cgroups.v1.Metrics.encode(io.containerd.cgroups.v1.Metrics.fromObject(toV1Metrics(s))).finish() };
}
