import { accessSync, constants, existsSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import TOML from '@iarna/toml';
import { ConfigError } from './errors.js';
import {
  agentKeys, hypervisorKeys, runtimeKeys,
  type AgentConfig, type ClhConfig, type KeySpec, type RuntimeConfig,
} from './keys.js';

/** Structural logger every folder takes (the shim's writes logfmt). */
export interface Logger {
  debug(msg: string, fields?: object): void;
  info(msg: string, fields?: object): void;
  warn(msg: string, fields?: object): void;
  error(msg: string, fields?: object): void;
}

export interface KataConfig {
  /** The resolved file (symlinks followed) the config came from. */
  file: string;
  /** Which table held the hypervisor: Go runtime `clh`, runtime-rs `cloud-hypervisor`. */
  hypervisorTable: 'clh' | 'cloud-hypervisor';
  hypervisor: ClhConfig;
  agent: AgentConfig;
  runtime: RuntimeConfig;
}

/** Kata's default dirs, in the order the shim tries them. */
export const defaultConfigDirs = ['/etc/kata-containers', '/opt/kata/share/defaults/kata-containers'];
/** Our own file name, tried in each default dir before Kata's generic `configuration.toml`. */
export const ownConfigName = 'configuration-clh-ts.toml';

/**
 * Finds the config file as Kata's shim does: runtime options ConfigPath, `KATA_CONF_FILE`, then
 * the default dirs (our own name first, then `configuration.toml`). Resolves symlinks.
 * Throws ConfigError (CONFIG_NOT_FOUND) naming every path tried.
 */
export function findConfigFile(o: { configPath?: string; env: NodeJS.ProcessEnv; defaultDirs?: string[] }): string {
  const tried: string[] = [];
  const explicit = o.configPath || o.env.KATA_CONF_FILE;
  const candidates = explicit
    ? [explicit]
    : [
        ...(o.defaultDirs ?? defaultConfigDirs).map((d) => join(d, ownConfigName)),
        ...(o.defaultDirs ?? defaultConfigDirs).map((d) => join(d, 'configuration.toml')),
      ];
  const from = o.configPath ? 'runtime options ConfigPath' : o.env.KATA_CONF_FILE ? 'KATA_CONF_FILE' : 'default locations';
  // The shim runs in the bundle directory: a relative path would be read from there, surprisingly.
  if (explicit && !isAbsolute(explicit)) {
    throw new ConfigError('CONFIG_INVALID', `config file ${explicit} (${from}) must be an absolute path`, { file: explicit });
  }
  for (const c of candidates) {
    try {
      const real = realpathSync(c);
      if (statSync(real).isFile()) return real;
      tried.push(`${c} (not a regular file)`);
    } catch (err) {
      tried.push(`${c} (${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : (err as Error).message})`);
    }
  }
  throw new ConfigError('CONFIG_NOT_FOUND', `cannot find a usable config file (${from}); tried: ${tried.join(', ')}`, {
    file: candidates[0],
  });
}

type Table = Record<string, unknown>;

function withSubsystem(log: Logger): Logger {
  const wrap = (fn: (m: string, f?: object) => void) => (m: string, f?: object) => fn.call(log, m, { subsystem: 'config', ...f });
  return { debug: wrap(log.debug), info: wrap(log.info), warn: wrap(log.warn), error: wrap(log.error) };
}

function parseFile(file: string): Table {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError('CONFIG_NOT_FOUND', `${file}: cannot read: ${(err as Error).message}`, { file, cause: err });
  }
  try {
    return TOML.parse(text) as Table;
  } catch (err) {
    throw new ConfigError('CONFIG_INVALID', `${file}: not valid TOML: ${(err as Error).message.split('\n')[0]}`, {
      file,
      cause: err,
    });
  }
}

function isTable(v: unknown): v is Table {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Drop-ins overlay key by key; tables merge, everything else is replaced. */
function merge(base: Table, over: Table): Table {
  const out: Table = { ...base };
  for (const [k, v] of Object.entries(over)) out[k] = isTable(v) && isTable(out[k]) ? merge(out[k] as Table, v) : v;
  return out;
}

function typeName(v: unknown): string {
  if (Array.isArray(v)) return 'array';
  if (typeof v === 'bigint') return 'integer';
  if (typeof v === 'number') return Number.isInteger(v) ? 'integer' : 'float';
  if (v instanceof Date) return 'datetime';
  return typeof v === 'object' ? 'table' : typeof v;
}

function decodeValue(spec: KeySpec<unknown>, v: unknown, where: string): unknown {
  const bad = (rule: string) => new ConfigError('CONFIG_INVALID', `${where} ${rule}, got ${typeName(v)} ${JSON.stringify(typeof v === 'bigint' ? String(v) : v)}`, {});
  switch (spec.kind) {
    case 'string':
      if (typeof v !== 'string') throw bad('must be a string');
      return v;
    case 'bool':
      if (typeof v !== 'boolean') throw bad('must be a boolean');
      return v;
    case 'float':
      if (typeof v !== 'number') throw bad('must be a number');
      return v;
    case 'int':
      if (typeof v !== 'number' || !Number.isInteger(v)) throw bad('must be an integer');
      return v;
    case 'uint':
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw bad('must be a non-negative integer');
      return v;
    case 'strings':
      if (!Array.isArray(v) || v.some((e) => typeof e !== 'string')) throw bad('must be an array of strings');
      return [...v];
  }
}

function decodeTable<T>(
  keys: Record<string, KeySpec<unknown>>,
  raw: Table,
  file: string,
  section: string,
  log: Logger | undefined,
): T {
  const out: Record<string, unknown> = {};
  for (const [key, spec] of Object.entries(keys)) {
    if (!(key in raw)) {
      out[key] = Array.isArray(spec.absent) ? [...spec.absent] : spec.absent;
      continue;
    }
    try {
      out[key] = decodeValue(spec, raw[key], `[${section}] ${key}`);
    } catch (err) {
      const e = err as ConfigError;
      throw new ConfigError('CONFIG_INVALID', `${file}: ${e.message}`, { file, key: `${section}.${key}` });
    }
    if (!spec.use && JSON.stringify(out[key]) !== JSON.stringify(spec.absent)) {
      log?.warn('config key is not supported by kata-ts yet; ignored', { file, key: `${section}.${key}`, value: out[key] });
    }
  }
  return out as T;
}

/** Reads one config file plus its `config.d/` drop-ins, applies defaults, validates. */
export async function loadConfig(file: string, parentLog?: Logger): Promise<KataConfig> {
  const log = parentLog && withSubsystem(parentLog);
  let raw = parseFile(file);
  const dropDir = join(dirname(file), 'config.d');
  if (existsSync(dropDir)) {
    for (const name of readdirSync(dropDir).sort()) {
      const p = join(dropDir, name);
      if (name.startsWith('.') || !statSync(p).isFile()) continue;
      log?.debug('applying config drop-in', { file: p });
      raw = merge(raw, parseFile(p));
    }
  }

  const hv = isTable(raw.hypervisor) ? raw.hypervisor : {};
  const names = Object.keys(hv);
  const ours = names.filter((n) => n === 'clh' || n === 'cloud-hypervisor');
  if (ours.length !== 1 || names.length !== 1) {
    const rule = names.length === 0
      ? 'no [hypervisor.clh] table'
      : `exactly one hypervisor table, [hypervisor.clh] (or runtime-rs [hypervisor.cloud-hypervisor]), is required; found ${names.map((n) => `[hypervisor.${n}]`).join(', ')}`;
    throw new ConfigError('CONFIG_INVALID', `${file}: ${rule}`, { file, key: 'hypervisor' });
  }
  const table = ours[0] as 'clh' | 'cloud-hypervisor';
  if (!isTable(hv[table])) throw new ConfigError('CONFIG_INVALID', `${file}: hypervisor.${table} must be a table`, { file, key: `hypervisor.${table}` });
  const agentRaw = isTable(raw.agent) && isTable(raw.agent.kata) ? raw.agent.kata : {};
  const runtimeRaw = isTable(raw.runtime) ? raw.runtime : {};

  const cfg: KataConfig = {
    file,
    hypervisorTable: table,
    hypervisor: decodeTable<ClhConfig>(hypervisorKeys, hv[table] as Table, file, `hypervisor.${table}`, log),
    agent: decodeTable<AgentConfig>(agentKeys, agentRaw, file, 'agent.kata', log),
    runtime: decodeTable<RuntimeConfig>(runtimeKeys, runtimeRaw, file, 'runtime', log),
  };
  normalise(cfg, agentRaw);
  validate(cfg);
  return cfg;
}

/** Kata's "0 means default" rules and the runtime-rs key spellings, folded into one shape. */
function normalise(cfg: KataConfig, agentRaw: Table): void {
  const h = cfg.hypervisor;
  if (h.default_vcpus === 0) h.default_vcpus = 1;
  if (h.default_memory === 0) h.default_memory = 2048;
  if (h.hypervisor_loglevel === 0) h.hypervisor_loglevel = 1;
  if (h.hypervisor_loglevel > 3) h.hypervisor_loglevel = 3;
  if (h.virtio_fs_queue_size === 0) h.virtio_fs_queue_size = 1024;
  if (h.entropy_source === '') h.entropy_source = '/dev/urandom';
  // clh never uses nvdimm for the image (Kata forces it).
  h.disable_image_nvdimm = true;

  const a = cfg.agent;
  if (a.dial_timeout === 0) {
    // runtime-rs spells the total dial time reconnect_timeout_ms (default 3000 ms there).
    const rs = 'reconnect_timeout_ms' in agentRaw ? a.reconnect_timeout_ms : cfg.hypervisorTable === 'cloud-hypervisor' ? 3000 : 0;
    a.dial_timeout = rs > 0 ? Math.ceil(rs / 1000) : 30;
  }
  const r = cfg.runtime;
  // Go reads it from [runtime], runtime-rs from [agent.kata]; Go's absent value (0) would expire
  // every CreateContainer immediately, so we use the shipped 60 s instead.
  if (r.create_container_timeout === 0) r.create_container_timeout = a.create_container_timeout || 60;
  a.create_container_timeout = r.create_container_timeout;
}

function validate(cfg: KataConfig): void {
  const { file } = cfg;
  const sec = `hypervisor.${cfg.hypervisorTable}`;
  const fail = (key: string, rule: string): never => {
    throw new ConfigError('CONFIG_INVALID', `${file}: [${key.includes('.') ? key.slice(0, key.lastIndexOf('.')) : ''}] ${key.slice(key.lastIndexOf('.') + 1)} ${rule}`, { file, key });
  };
  const h = cfg.hypervisor;
  const file_ = (key: keyof ClhConfig, what: string, exec = false) => {
    const p = h[key] as string;
    if (!isAbsolute(p)) fail(`${sec}.${key}`, `must be an absolute path, got "${p}"`);
    if (!existsSync(p)) fail(`${sec}.${key}`, `names a ${what} that does not exist: ${p}`);
    if (exec) {
      try {
        accessSync(p, constants.X_OK);
      } catch {
        fail(`${sec}.${key}`, `names a ${what} that is not executable: ${p}`);
      }
    }
  };

  if (h.path === '') fail(`${sec}.path`, 'is required (the cloud-hypervisor binary)');
  file_('path', 'cloud-hypervisor binary', true);
  if (h.kernel === '') fail(`${sec}.kernel`, 'is required');
  file_('kernel', 'guest kernel');
  if (h.image !== '' && h.initrd !== '') fail(`${sec}.image`, 'and initrd are both set; set exactly one');
  if (h.image === '' && h.initrd === '') fail(`${sec}.image`, 'or initrd is required (neither is set)');
  if (h.image !== '') file_('image', 'guest image');
  if (h.initrd !== '') file_('initrd', 'guest initrd');
  if (!['ext4', 'xfs', 'erofs'].includes(h.rootfs_type)) fail(`${sec}.rootfs_type`, `must be ext4, xfs or erofs, got "${h.rootfs_type}"`);
  if (h.default_memory < 128) fail(`${sec}.default_memory`, `must be >= 128 MiB, got ${h.default_memory}`);
  if (h.default_maxmemory !== 0 && h.default_maxmemory < h.default_memory) {
    fail(`${sec}.default_maxmemory`, `must be 0 or >= default_memory (${h.default_memory} MiB), got ${h.default_maxmemory}`);
  }
  if (h.shared_fs === 'virtio-9p') fail(`${sec}.shared_fs`, 'virtio-9p is not supported by cloud-hypervisor; use virtio-fs');
  if (h.shared_fs === 'virtio-fs-nydus') fail(`${sec}.shared_fs`, 'virtio-fs-nydus is not supported by kata-ts yet; use virtio-fs');
  if (!['virtio-fs', 'none'].includes(h.shared_fs)) fail(`${sec}.shared_fs`, `must be virtio-fs or none, got "${h.shared_fs}"`);
  if (h.shared_fs === 'virtio-fs') {
    if (h.virtio_fs_daemon === '') fail(`${sec}.virtio_fs_daemon`, 'is required when shared_fs is virtio-fs');
    file_('virtio_fs_daemon', 'virtiofsd binary', true);
  }
  if (!['', 'auto', 'always', 'metadata', 'never'].includes(h.virtio_fs_cache)) {
    fail(`${sec}.virtio_fs_cache`, `must be auto, always, metadata or never, got "${h.virtio_fs_cache}"`);
  }
  if (!isAbsolute(h.entropy_source)) fail(`${sec}.entropy_source`, `must be an absolute path, got "${h.entropy_source}"`);
  for (const re of h.enable_annotations) {
    try {
      new RegExp(re);
    } catch {
      fail(`${sec}.enable_annotations`, `has an invalid regular expression "${re}"`);
    }
  }
  const r = cfg.runtime;
  if (!['tcfilter', 'macvtap', 'none'].includes(r.internetworking_model)) {
    fail('runtime.internetworking_model', `must be tcfilter, macvtap or none, got "${r.internetworking_model}"`);
  }
  for (const m of r.sandbox_bind_mounts) {
    const p = m.replace(/:(ro|rw)$/, '');
    if (!isAbsolute(p)) fail('runtime.sandbox_bind_mounts', `entries must be absolute paths, got "${m}"`);
  }
  for (const m of cfg.agent.kernel_modules) {
    if (m.trim() === '') fail('agent.kata.kernel_modules', 'entries must not be empty');
  }
}
