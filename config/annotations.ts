import { isAbsolute } from 'node:path';
import { ConfigError } from './errors.js';
import type { KataConfig } from './load.js';
import type { AgentConfig, ClhConfig, RuntimeConfig } from './keys.js';

const HV = 'io.katacontainers.config.hypervisor.';
const RT = 'io.katacontainers.config.runtime.';
const AG = 'io.katacontainers.config.agent.';

type Parse<T> = (value: string, name: string) => T;
const bad = (name: string, rule: string, value: string) =>
  new ConfigError('CONFIG_ANNOTATION', `annotation ${name}="${value}": ${rule}`, { key: name });

const asBool: Parse<boolean> = (v, n) => {
  // Go's strconv.ParseBool spellings.
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(v)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(v)) return false;
  throw bad(n, 'must be a boolean', v);
};
const asUint: Parse<number> = (v, n) => {
  if (!/^\d+$/.test(v)) throw bad(n, 'must be a non-negative integer', v);
  return Number(v);
};
const asFloat: Parse<number> = (v, n) => {
  const f = Number(v);
  if (v.trim() === '' || !Number.isFinite(f)) throw bad(n, 'must be a number', v);
  return f;
};
const asPath: Parse<string> = (v, n) => {
  if (!isAbsolute(v)) throw bad(n, 'must be an absolute path', v);
  return v;
};
const oneOf = (...allowed: string[]): Parse<string> => (v, n) => {
  if (!allowed.includes(v)) throw bad(n, `must be one of ${allowed.join(', ')}`, v);
  return v;
};
const asJsonStrings: Parse<string[]> = (v, n) => {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw bad(n, 'must be a JSON array of strings', v);
  }
  if (!Array.isArray(parsed) || parsed.some((e) => typeof e !== 'string')) throw bad(n, 'must be a JSON array of strings', v);
  return parsed as string[];
};

/** glob(3)/Go filepath.Match: `*` and `?` never match `/`. */
export function globMatch(pattern: string, path: string): boolean {
  let re = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') re += '[^/]*';
    else if (c === '?') re += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i + 1);
      if (end < 0) return false;
      let set = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
      if (set.startsWith('!') || set.startsWith('^')) set = '^' + set.slice(1);
      re += `[${set}]`;
      i = end;
    } else if (c === '\\' && i + 1 < pattern.length) re += '\\' + pattern[++i];
    else re += c.replace(/[.+^${}()|\]\\]/g, '\\$&');
  }
  return new RegExp(re + '$').test(path);
}

/** Replaces same-key params and appends new ones, as Kata's AddKernelParam does. */
export function mergeKernelParams(base: string, extra: string): string {
  const params = base.split(/\s+/).filter(Boolean);
  const key = (p: string) => p.split('=')[0];
  for (const p of extra.split(/\s+/).filter(Boolean)) {
    const i = params.findIndex((q) => key(q) === key(p));
    if (i >= 0) params[i] = p;
    else params.push(p);
  }
  return params.join(' ');
}

type HvRule = (h: ClhConfig, v: string, name: string, cfg: KataConfig) => void;
const set = <K extends keyof ClhConfig>(key: K, parse: Parse<ClhConfig[K]>): HvRule => (h, v, n) => {
  h[key] = parse(v, n);
};
const allowList = (list: keyof ClhConfig, key: keyof ClhConfig): HvRule => (h, v, n) => {
  const path = asPath(v, n);
  const globs = h[list] as string[];
  if (!globs.some((g) => globMatch(g, path))) {
    throw bad(n, `path is not allowed by ${list} (${JSON.stringify(globs)})`, v);
  }
  (h as Record<string, unknown>)[key] = path;
};

// Hypervisor annotations we act on (suffix after `io.katacontainers.config.hypervisor.`).
const hvRules: Record<string, HvRule> = {
  path: allowList('valid_hypervisor_paths', 'path'),
  virtio_fs_daemon: allowList('valid_virtio_fs_daemon_paths', 'virtio_fs_daemon'),
  entropy_source: allowList('valid_entropy_sources', 'entropy_source'),
  kernel: set('kernel', asPath),
  image: (h, v, n) => { h.image = asPath(v, n); h.initrd = ''; },
  initrd: (h, v, n) => { h.initrd = asPath(v, n); h.image = ''; },
  kernel_params: (h, v) => { h.kernel_params = mergeKernelParams(h.kernel_params, v); },
  kernel_verity_params: set('kernel_verity_params', (v) => v),
  default_vcpus: set('default_vcpus', asFloat),
  default_max_vcpus: set('default_maxvcpus', asUint),
  default_memory: (h, v, n) => {
    const m = asUint(v, n);
    if (m < 256) throw bad(n, 'must be >= 256 MiB', v);
    h.default_memory = m;
  },
  default_maxmemory: set('default_maxmemory', asUint),
  enable_iommu: set('enable_iommu', asBool),
  enable_hugepages: set('enable_hugepages', asBool),
  reclaim_guest_freed_memory: set('reclaim_guest_freed_memory', asBool),
  disable_seccomp: set('disable_seccomp', asBool),
  shared_fs: set('shared_fs', oneOf('virtio-fs')),
  virtio_fs_cache: set('virtio_fs_cache', oneOf('auto', 'always', 'metadata', 'never')),
  virtio_fs_cache_size: set('virtio_fs_cache_size', asUint),
  virtio_fs_extra_args: (h, v, n) => { h.virtio_fs_extra_args = [...h.virtio_fs_extra_args, ...asJsonStrings(v, n)]; },
  guest_hook_path: set('guest_hook_path', (v) => v),
  block_device_driver: set('block_device_driver', (v) => v),
  disable_block_device_use: set('disable_block_device_use', asBool),
  enable_debug: set('enable_debug', asBool),
};

type Rule<C> = (c: C, v: string, name: string) => void;
const rtRules: Record<string, Rule<RuntimeConfig>> = {
  disable_guest_seccomp: (c, v, n) => { c.disable_guest_seccomp = asBool(v, n); },
  sandbox_cgroup_only: (c, v, n) => { c.sandbox_cgroup_only = asBool(v, n); },
  enable_pprof: (c, v, n) => { c.enable_pprof = asBool(v, n); },
  disable_new_netns: (c, v, n) => { c.disable_new_netns = asBool(v, n); },
  experimental_force_guest_pull: (c, v, n) => { c.experimental_force_guest_pull = asBool(v, n); },
  internetworking_model: (c, v, n) => { c.internetworking_model = oneOf('tcfilter', 'macvtap', 'none')(v, n); },
  vfio_mode: (c, v, n) => { c.vfio_mode = oneOf('guest-kernel', 'vfio')(v, n); },
  create_container_timeout: (c, v, n) => { c.create_container_timeout = asUint(v, n) || c.create_container_timeout; },
  guest_selinux_label: (c, v) => { c.guest_selinux_label = v; },
  experimental: (c, v) => { c.experimental = v.split(/[\s,]+/).filter(Boolean); },
};
const agRules: Record<string, Rule<AgentConfig>> = {
  // Go splits the module list on ';'.
  kernel_modules: (c, v) => { c.kernel_modules = v.split(';').map((s) => s.trim()).filter(Boolean); },
  enable_tracing: (c, v, n) => { c.enable_tracing = asBool(v, n); },
  container_pipe_size: (c, v, n) => { c.container_pipe_size = asUint(v, n); },
};

/**
 * Applies `io.katacontainers.config.*` sandbox annotations to a copy of cfg. Hypervisor keys must
 * be allowed by `enable_annotations` (each a regex over the whole key); paths must match the
 * `valid_*_paths` globs so a pod cannot choose which binary the host runs. Runtime and agent keys
 * are not gated. Unknown annotations are ignored. Throws ConfigError (CONFIG_ANNOTATION).
 */
export function applyAnnotations(cfg: KataConfig, annotations: Record<string, string>): KataConfig {
  const out: KataConfig = structuredClone(cfg);
  // Anchored: Kata's unanchored match would let "kernel_params" also enable "kernel_params_x".
  const gates = cfg.hypervisor.enable_annotations.map((re) => new RegExp(`^(?:${re})$`));
  for (const [name, value] of Object.entries(annotations).sort(([a], [b]) => a.localeCompare(b))) {
    if (name.startsWith(HV)) {
      const key = name.slice(HV.length);
      if (!gates.some((g) => g.test(key))) {
        throw new ConfigError('CONFIG_ANNOTATION', `annotation ${name} is not enabled by hypervisor enable_annotations (${JSON.stringify(cfg.hypervisor.enable_annotations)})`, { key: name });
      }
      hvRules[key]?.(out.hypervisor, value, name, out);
    } else if (name.startsWith(RT)) {
      rtRules[name.slice(RT.length)]?.(out.runtime, value, name);
    } else if (name.startsWith(AG)) {
      agRules[name.slice(AG.length)]?.(out.agent, value, name);
    }
  }
  return out;
}
