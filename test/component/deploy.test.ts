// The kata-deploy style deployment (packaging/kubernetes/): manifests, the install/cleanup script
// over temporary host roots, and the real containerd (1.6 and 2.1, CRI on) reading what it wrote.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, existsSync, lstatSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as grpc from '@grpc/grpc-js';
import TOML from '@iarna/toml';
import protobuf from 'protobufjs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments } from 'yaml';
import { missing, repoRoot, tools, upstreamDir } from '../env.js';
import { renderKataClhConfig } from '../kata-config.js';

const k8sDir = join(repoRoot, 'packaging', 'kubernetes');
const script = join(k8sDir, 'kata-ts-deploy.sh');
const handler = 'kata-clh-ts';
const shimHostPath = '/opt/kata/bin/containerd-shim-kata-ts-v2';
const clhConfigHostPath = '/opt/kata/share/defaults/kata-containers/configuration-clh.toml';
const dropinHostPath = '/opt/kata/containerd/config.d/kata-ts-deploy.toml';
const pluginFor: Record<number, string> = { 1: 'cri', 2: 'io.containerd.grpc.v1.cri', 3: 'io.containerd.cri.v1.runtime' };

type Doc = Record<string, any>;
const yamlDocs = (file: string): Doc[] =>
  parseAllDocuments(readFileSync(file, 'utf8')).map((d) => {
    expect(d.errors, `${file}: YAML errors`).toEqual([]);
    return d.toJS() as Doc;
  });

describe('manifests', () => {
  const deploy = yamlDocs(join(k8sDir, 'kata-deploy-ts.yaml'));
  const byKind = (kind: string) => deploy.filter((d) => d.kind === kind);

  it('RuntimeClass kata-clh-ts: handler, overhead, node selector', () => {
    const [rc, ...rest] = yamlDocs(join(k8sDir, 'runtimeclass-kata-clh-ts.yaml'));
    expect(rest).toEqual([]);
    expect(rc).toEqual({
      apiVersion: 'node.k8s.io/v1',
      kind: 'RuntimeClass',
      metadata: { name: handler },
      handler,
      overhead: { podFixed: { memory: '130Mi', cpu: '250m' } },
      scheduling: { nodeSelector: { 'katacontainers.io/kata-runtime': 'true' } },
    });
  });

  it('RBAC: a service account bound to nodes get/patch only', () => {
    expect(deploy.map((d) => d.kind).sort()).toEqual(['ClusterRole', 'ClusterRoleBinding', 'DaemonSet', 'ServiceAccount']);
    const [sa] = byKind('ServiceAccount');
    expect(sa.metadata.namespace).toBe('kube-system');
    const [role] = byKind('ClusterRole');
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['nodes'], verbs: ['get', 'patch'] }]);
    const [rb] = byKind('ClusterRoleBinding');
    expect(rb.roleRef).toEqual({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: role.metadata.name });
    expect(rb.subjects).toEqual([{ kind: 'ServiceAccount', name: sa.metadata.name, namespace: 'kube-system' }]);
  });

  it('DaemonSet kata-ts-deploy: hostPID, privileged, host mounts, NODE_NAME, install + preStop cleanup', () => {
    const [ds] = byKind('DaemonSet');
    expect(ds.apiVersion).toBe('apps/v1');
    expect(ds.metadata).toEqual({ name: 'kata-ts-deploy', namespace: 'kube-system' });
    const pod = ds.spec.template.spec;
    expect(ds.spec.selector.matchLabels).toEqual(ds.spec.template.metadata.labels);
    expect(pod.serviceAccountName).toBe(byKind('ServiceAccount')[0].metadata.name);
    expect(pod.hostPID).toBe(true);
    expect(pod.containers).toHaveLength(1);
    const [c] = pod.containers;
    expect(c.image).toBe('IMAGE_PLACEHOLDER');
    expect(readFileSync(join(k8sDir, 'README.md'), 'utf8')).toContain('IMAGE_PLACEHOLDER');
    expect(c.securityContext).toEqual({ privileged: true });
    expect(c.env).toContainEqual({ name: 'NODE_NAME', valueFrom: { fieldRef: { fieldPath: 'spec.nodeName' } } });
    expect(c.env).toContainEqual({ name: 'KATA_TS_HOST_ROOT', value: '/host' });
    expect(c.env).toContainEqual({ name: 'KATA_TS_RESTART_CONTAINERD', value: 'true' });
    const scriptInImage = '/opt/kata-ts-artifacts/scripts/kata-ts-deploy.sh';
    expect(c.command.join(' ')).toContain(`${scriptInImage} install`);
    expect(c.lifecycle.preStop.exec.command.join(' ')).toContain(`${scriptInImage} cleanup`);
    const volume = (mountPath: string) => {
      const m = c.volumeMounts.find((v: Doc) => v.mountPath === mountPath);
      expect(m, `volume mount ${mountPath}`).toBeDefined();
      return pod.volumes.find((v: Doc) => v.name === m.name).hostPath.path;
    };
    expect(volume('/etc/containerd/')).toBe('/etc/containerd/');
    expect(volume('/host/')).toBe('/');
    // The image the README builds puts the script where the DaemonSet runs it.
    const containerfile = readFileSync(join(k8sDir, 'Containerfile'), 'utf8');
    expect(containerfile).toMatch(new RegExp(`COPY .*packaging/kubernetes/kata-ts-deploy.sh ${scriptInImage}`));
    expect(containerfile).toMatch(/COPY .*dist\/containerd-shim-kata-ts-v2 \/opt\/kata-ts-artifacts\/bin\/containerd-shim-kata-ts-v2/);
  });

  it('the DaemonSet command parses as bash', async () => {
    const [c] = byKind('DaemonSet')[0].spec.template.spec.containers;
    expect(c.command.slice(0, 2)).toEqual(['bash', '-c']);
    expect(await run('bash', ['-n', '-c', c.command[2]])).toMatchObject({ code: 0 });
  });

  it("the php-apache sample on kata-clh-ts uses our RuntimeClass", () => {
    const sample = readFileSync(join(upstreamDir, 'kata-test-deploy-kata-clh.yaml'), 'utf8');
    const docs = parseAllDocuments(sample).map((d) => d.toJS() as Doc);
    const dep = docs.find((d) => d.kind === 'Deployment')!;
    expect(dep.spec.template.spec.runtimeClassName).toBe('kata-clh');
    dep.spec.template.spec.runtimeClassName = handler;
    const [rc] = yamlDocs(join(k8sDir, 'runtimeclass-kata-clh-ts.yaml'));
    expect(rc.metadata.name).toBe(dep.spec.template.spec.runtimeClassName);
    // The rest of the sample is untouched and still consistent.
    expect(dep.spec.selector.matchLabels).toEqual(dep.spec.template.metadata.labels);
    const svc = docs.find((d) => d.kind === 'Service')!;
    expect(svc.spec.selector).toEqual(dep.spec.template.metadata.labels);
  });
});

// ---- the script over temporary host roots -------------------------------------------------------

interface Run { code: number; stdout: string; stderr: string }
function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((resolve) => {
    execFile(cmd, args, { env, timeout: 30_000 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

const tmpDirs: string[] = [];
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

interface Host { dir: string; root: string; shim: string; bin: string; log: string; config: string }

/** A temp dir with a host root holding Kata's clh config (as kata-deploy left it) and containerd's config. */
function makeHost(containerdConfig: string | ((dir: string) => string), o: { kata?: boolean; realShim?: boolean } = {}): Host {
  // Short: containerd's socket lives here too (107-byte limit).
  const dir = mkdtempSync('/tmp/kd-');
  tmpDirs.push(dir);
  const root = join(dir, 'h');
  if (o.kata !== false) {
    mkdirSync(join(root, '/opt/kata/share/defaults/kata-containers'), { recursive: true });
    writeFileSync(join(root, clhConfigHostPath), renderKataClhConfig());
    mkdirSync(join(root, '/opt/kata/bin'), { recursive: true });
    writeFileSync(join(root, '/opt/kata/bin/containerd-shim-kata-v2'), '#!/bin/sh\nexit 1\n', { mode: 0o755 });
  }
  mkdirSync(join(root, 'etc/containerd'), { recursive: true });
  const config = join(root, 'etc/containerd/config.toml');
  writeFileSync(config, typeof containerdConfig === 'string' ? containerdConfig : containerdConfig(dir));
  // The shim to install: install only copies it, so a small executable unless the built one
  // (a 100 MB single executable) is asked for.
  const shim = o.realShim && existsSync(tools.shim) ? tools.shim : join(dir, 'shim');
  if (shim !== tools.shim) writeFileSync(shim, '#!/bin/sh\necho kata-ts shim stand-in\n', { mode: 0o755 });
  // Recording stand-ins for the cluster and the host's systemd, which this machine has not.
  const bin = join(dir, 'bin');
  const log = join(dir, 'calls.log');
  mkdirSync(bin);
  writeFileSync(join(bin, 'kubectl'), `#!/bin/sh\necho "kubectl $*" >> ${log}\n[ "$1" = get ] && printf '%s' "$FAKE_LABEL"\nexit 0\n`, { mode: 0o755 });
  writeFileSync(join(bin, 'nsenter'), `#!/bin/sh\necho "nsenter $*" >> ${log}\n`, { mode: 0o755 });
  return { dir, root, shim, bin, log, config };
}

function deploy(h: Host, action: 'install' | 'cleanup', env: Record<string, string> = {}, args: string[] = []): Promise<Run> {
  // NODE_NAME unset unless given: kubectl is on this machine's PATH and must not be reached.
  const { NODE_NAME: _n, KATA_TS_RESTART_CONTAINERD: _r, ...base } = process.env;
  return run('bash', [script, '--host-root', h.root, ...args, action], {
    ...base, KATA_TS_SHIM: h.shim, PATH: `${h.bin}:${process.env.PATH}`, ...env,
  });
}

/** Every file, dir and symlink under a dir with its mode and bytes. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = lstatSync(p);
      const rel = p.slice(dir.length);
      if (st.isDirectory()) {
        out[rel] = `dir ${st.mode.toString(8)}`;
        walk(p);
      } else out[rel] = `file ${st.mode.toString(8)} ${sha256(p)}`;
    }
  };
  walk(dir);
  return out;
}

const sha256 = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');
const calls = (h: Host) => (existsSync(h.log) ? readFileSync(h.log, 'utf8').split('\n').filter(Boolean) : []);
const toml = (file: string): Doc => TOML.parse(readFileSync(file, 'utf8')) as Doc;

/** The runtime table from a parsed config for that plugin id. */
function runtimeOf(cfg: Doc, plugin: string): Doc | undefined {
  return cfg.plugins?.[plugin]?.containerd?.runtimes?.[handler];
}

function expectOurEntry(entry: Doc | undefined): void {
  expect(entry).toEqual({
    runtime_type: 'io.containerd.kata-ts.v2',
    runtime_path: shimHostPath,
    privileged_without_host_devices: true,
    pod_annotations: ['io.katacontainers.*'],
    options: { ConfigPath: clhConfigHostPath },
  });
}

// Debian 12's /etc/containerd/config.toml (containerd 1.6.20).
const debianV2 = `version = 2

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "/etc/cni/net.d"
  [plugins."io.containerd.internal.v1.opt"]
    path = "/var/lib/containerd/opt"
`;

// A kubeadm-style config that configures runc itself.
const runcSystemdV2 = `version = 2
[plugins."io.containerd.grpc.v1.cri".containerd]
  default_runtime_name = "runc"
[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
  runtime_type = "io.containerd.runc.v2"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
    SystemdCgroup = true
`;

// keepsRunc: the config lists no runtimes, so containerd's default runc must be written beside ours.
const inlineCases: { name: string; version: 1 | 2; config: string; keepsRunc: boolean }[] = [
  { name: 'version 2 (Debian default)', version: 2, config: debianV2, keepsRunc: true },
  { name: 'version 2 with its own runc', version: 2, config: runcSystemdV2, keepsRunc: false },
  { name: 'version 2 without a final newline', version: 2, config: 'version = 2\noom_score = -999', keepsRunc: true },
  { name: 'no version (version 1)', version: 1, config: '[plugins.cri]\n  enable_selinux = false\n', keepsRunc: true },
  { name: 'empty file (version 1)', version: 1, config: '', keepsRunc: true },
];

const v3Cases: { name: string; config: string; imports: string[] }[] = [
  { name: 'no imports', config: 'version = 3\nroot = "/var/lib/containerd"\n\n[plugins.\'io.containerd.cri.v1.images\']\n  snapshotter = \'overlayfs\'\n', imports: [] },
  { name: 'empty imports', config: 'version = 3\nimports = []\n', imports: [] },
  { name: 'one import, no final newline', config: "version = 3\nimports = ['/etc/containerd/conf.d/*.toml']", imports: ['/etc/containerd/conf.d/*.toml'] },
  { name: 'multi-line imports, trailing comma, comment', config: 'version = 3\nimports = [\n  "/a.toml", # first\n  "/b.toml",\n] # end\nroot = "/x"\n', imports: ['/a.toml', '/b.toml'] },
];

describe('kata-ts-deploy.sh install / cleanup', () => {
  it.each(inlineCases)('config $name: entry added once in config.toml, backup once, cleanup restores the bytes', async ({ version, config, keepsRunc }) => {
    const h = makeHost(config);
    const before = snapshot(h.root);
    for (let i = 0; i < 2; i++) {
      const r = await deploy(h, 'install');
      expect(r, r.stderr).toMatchObject({ code: 0 });
      expect(r.stderr).toContain('not restarting containerd');
    }
    const text = readFileSync(h.config, 'utf8');
    expect(text.startsWith(config), 'original content kept in front').toBe(true);
    expect(text.split('runtimes.kata-clh-ts]').length - 1).toBe(1);
    const cfg = toml(h.config);
    expectOurEntry(runtimeOf(cfg, pluginFor[version]));
    // containerd 1.x replaces its default runtimes map with the file's: runc must stay listed.
    const runc = cfg.plugins[pluginFor[version]].containerd.runtimes.runc;
    if (keepsRunc) expect(runc).toEqual({ runtime_type: 'io.containerd.runc.v2' });
    else expect(runc).toEqual({ runtime_type: 'io.containerd.runc.v2', options: { SystemdCgroup: true } });
    expect(text.split('runtimes.runc]').length - 1).toBe(1);
    expect(readFileSync(`${h.config}.kata-ts.bak`, 'utf8')).toBe(config);
    expect(existsSync(join(h.root, '/opt/kata/containerd'))).toBe(false);
    const installed = join(h.root, shimHostPath);
    expect(sha256(installed)).toBe(sha256(h.shim));
    expect(statSync(installed).mode & 0o777).toBe(0o755);

    for (let i = 0; i < 2; i++) expect(await deploy(h, 'cleanup')).toMatchObject({ code: 0 });
    expect(snapshot(h.root)).toEqual(before);
    expect(calls(h)).toEqual([]);
  });

  it.each(v3Cases)('config version 3, $name: drop-in + one imports item, cleanup restores the bytes', async ({ config, imports }) => {
    const h = makeHost(config);
    const before = snapshot(h.root);
    for (let i = 0; i < 2; i++) expect(await deploy(h, 'install')).toMatchObject({ code: 0 });
    const cfg = toml(h.config);
    expect(cfg.version).toBe(3);
    expect(cfg.imports).toEqual([...imports, dropinHostPath]);
    expect(runtimeOf(cfg, pluginFor[3])).toBeUndefined();
    const dropin = toml(join(h.root, dropinHostPath));
    expect(dropin.version).toBe(3);
    expectOurEntry(runtimeOf(dropin, pluginFor[3]));
    expect(existsSync(`${h.config}.kata-ts.bak`)).toBe(false);
    expect(sha256(join(h.root, shimHostPath))).toBe(sha256(h.shim));

    for (let i = 0; i < 2; i++) expect(await deploy(h, 'cleanup')).toMatchObject({ code: 0 });
    expect(snapshot(h.root)).toEqual(before);
  });

  it('refuses to install before kata-deploy installed Kata, and changes nothing', async () => {
    const h = makeHost(debianV2, { kata: false });
    const before = snapshot(h.root);
    const r = await deploy(h, 'install');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`${clhConfigHostPath} not found`);
    expect(r.stderr).toContain('kata-deploy must install Kata first');
    expect(snapshot(h.root)).toEqual(before);
  });

  it('names a missing containerd config, a missing shim, a bad host root and an unknown action', async () => {
    const h = makeHost(debianV2);
    rmSync(h.config);
    let r = await deploy(h, 'install');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain(`containerd config ${h.config} not found`);
    writeFileSync(h.config, debianV2);
    const before = snapshot(h.root);
    r = await deploy(h, 'install', { KATA_TS_SHIM: join(h.dir, 'nope') });
    expect(r.code).not.toBe(0);
    expect(snapshot(h.root)).toEqual(before);
    expect(r.stderr).toContain(`shim '${join(h.dir, 'nope')}' is missing or not executable`);
    r = await run('bash', [script, '--host-root', join(h.dir, 'nope'), 'install']);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('is not a directory');
    r = await run('bash', [script, 'frobnicate']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain("unknown argument 'frobnicate'");
    writeFileSync(h.config, 'version = 4\n');
    r = await deploy(h, 'install');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('config version 4');
    expect(readFileSync(h.config, 'utf8')).toBe('version = 4\n');
    expect(existsSync(join(h.root, shimHostPath))).toBe(false);
  });

  it('refuses a config that already defines kata-clh-ts itself', async () => {
    const config = `${debianV2}\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes."kata-clh-ts"]\n  runtime_type = "io.containerd.runc.v2"\n`;
    const h = makeHost(config);
    const before = snapshot(h.root);
    const r = await deploy(h, 'install');
    expect(r.code).not.toBe(0);
    expect(r.stderr).toContain('already defines runtime kata-clh-ts outside');
    expect(snapshot(h.root)).toEqual(before);
  });

  it('version 2 edited by someone else after install: cleanup removes only our entry, keeps their edit and the backup', async () => {
    const h = makeHost(debianV2);
    expect(await deploy(h, 'install')).toMatchObject({ code: 0 });
    writeFileSync(h.config, `${readFileSync(h.config, 'utf8')}\n[plugins."io.containerd.grpc.v1.cri".containerd.runtimes.other]\n  runtime_type = "io.containerd.other.v2"\n`);
    const r = await deploy(h, 'cleanup');
    expect(r).toMatchObject({ code: 0 });
    expect(r.stderr).toContain('changed since install');
    const cfg = toml(h.config);
    expect(runtimeOf(cfg, pluginFor[2])).toBeUndefined();
    expect(cfg.plugins[pluginFor[2]].containerd.runtimes.other.runtime_type).toBe('io.containerd.other.v2');
    expect(readFileSync(`${h.config}.kata-ts.bak`, 'utf8')).toBe(debianV2);
  });

  it('version 3 with imports added after ours: cleanup takes out only ours', async () => {
    const h = makeHost('version = 3\nimports = ["/a.toml"]\n');
    expect(await deploy(h, 'install')).toMatchObject({ code: 0 });
    writeFileSync(h.config, readFileSync(h.config, 'utf8').replace(']', ', "/later.toml"]'));
    expect(await deploy(h, 'cleanup')).toMatchObject({ code: 0 });
    expect(readFileSync(h.config, 'utf8')).toBe('version = 3\nimports = ["/a.toml", "/later.toml"]\n');
  });

  it("finds the shim where the image puts it (../bin beside the script's folder)", async () => {
    const h = makeHost(debianV2);
    const image = join(h.dir, 'opt-kata-ts-artifacts');
    mkdirSync(join(image, 'scripts'), { recursive: true });
    mkdirSync(join(image, 'bin'));
    copyFileSync(script, join(image, 'scripts', 'kata-ts-deploy.sh'));
    copyFileSync(h.shim, join(image, 'bin', 'containerd-shim-kata-ts-v2'));
    chmodSync(join(image, 'bin', 'containerd-shim-kata-ts-v2'), 0o755);
    const { KATA_TS_SHIM: _s, NODE_NAME: _n, ...env } = process.env;
    const r = await run('bash', [join(image, 'scripts', 'kata-ts-deploy.sh'), '--host-root', h.root, 'install'], env);
    expect(r, r.stderr).toMatchObject({ code: 0 });
    expect(sha256(join(h.root, shimHostPath))).toBe(sha256(h.shim));
    expect(await deploy(h, 'cleanup')).toMatchObject({ code: 0 });
  });

  const noShellcheck = existsSync('/usr/bin/shellcheck') ? undefined : 'shellcheck not installed';
  if (noShellcheck) console.log(`skipping shellcheck: ${noShellcheck}`);
  it.skipIf(!!noShellcheck)('passes shellcheck', async () => {
    const r = await run('/usr/bin/shellcheck', [script]);
    expect(r, r.stdout).toMatchObject({ code: 0 });
  });

  it('restarts containerd through nsenter only when asked', async () => {
    const h = makeHost(debianV2);
    expect(await deploy(h, 'install', {}, ['--restart-containerd'])).toMatchObject({ code: 0 });
    expect(await deploy(h, 'cleanup', { KATA_TS_RESTART_CONTAINERD: 'true' })).toMatchObject({ code: 0 });
    expect(calls(h)).toEqual([
      'nsenter --target 1 --mount systemctl restart containerd',
      'nsenter --target 1 --mount systemctl restart containerd',
    ]);
  });

  it('labels the node when NODE_NAME and kubectl are there; removes the label only if it added it and Kata is gone', async () => {
    const h = makeHost(debianV2);
    const label = 'katacontainers.io/kata-runtime';
    const get = `kubectl get node n1 -o jsonpath={.metadata.labels.katacontainers\\.io/kata-runtime}`;
    // Not labelled yet (kata-deploy labels last): install labels, cleanup keeps it while Kata's shim is there.
    expect(await deploy(h, 'install', { NODE_NAME: 'n1', FAKE_LABEL: '' })).toMatchObject({ code: 0 });
    expect(await deploy(h, 'install', { NODE_NAME: 'n1', FAKE_LABEL: 'true' })).toMatchObject({ code: 0 });
    expect(await deploy(h, 'cleanup', { NODE_NAME: 'n1' })).toMatchObject({ code: 0 });
    expect(calls(h)).toEqual([get, `kubectl label node n1 ${label}=true --overwrite`, get]);
    // Kata gone: the label we added goes too.
    rmSync(h.log);
    expect(await deploy(h, 'install', { NODE_NAME: 'n1', FAKE_LABEL: '' })).toMatchObject({ code: 0 });
    rmSync(join(h.root, '/opt/kata/bin/containerd-shim-kata-v2'));
    expect(await deploy(h, 'cleanup', { NODE_NAME: 'n1' })).toMatchObject({ code: 0 });
    expect(calls(h)).toEqual([get, `kubectl label node n1 ${label}=true --overwrite`, `kubectl label node n1 ${label}-`]);
    // Labelled by kata-deploy already: left alone both ways.
    rmSync(h.log);
    expect(await deploy(h, 'install', { NODE_NAME: 'n1', FAKE_LABEL: 'true' })).toMatchObject({ code: 0 });
    expect(await deploy(h, 'cleanup', { NODE_NAME: 'n1' })).toMatchObject({ code: 0 });
    expect(calls(h)).toEqual([get]);
  });
});

// ---- the real containerd reads what install wrote -------------------------------------------------

// CRI's RuntimeService.Status (k8s.io/cri-api runtime/v1): with verbose, `info.config` is the CRI
// plugin's effective configuration as JSON.
const cri = protobuf.parse(`syntax = "proto3"; package runtime.v1;
  message StatusRequest { bool verbose = 1; }
  message RuntimeCondition { string type = 1; bool status = 2; string reason = 3; string message = 4; }
  message RuntimeStatus { repeated RuntimeCondition conditions = 1; }
  message StatusResponse { RuntimeStatus status = 1; map<string, string> info = 2; }`).root;
const StatusRequest = cri.lookupType('runtime.v1.StatusRequest');
const StatusResponse = cri.lookupType('runtime.v1.StatusResponse');

interface CriStatus { status: { conditions: { type: string; status?: boolean }[] }; info: Record<string, string> }
async function criStatus(socket: string): Promise<CriStatus> {
  const client = new grpc.Client(`unix://${socket}`, grpc.credentials.createInsecure());
  try {
    return await new Promise((resolve, reject) => {
      client.makeUnaryRequest('/runtime.v1.RuntimeService/Status',
        (m: object) => Buffer.from(StatusRequest.encode(StatusRequest.create(m)).finish()),
        (b: Buffer) => StatusResponse.toObject(StatusResponse.decode(b)) as CriStatus,
        { verbose: true }, { deadline: Date.now() + 10_000 },
        (err, res) => (err ? reject(err) : resolve(res!)));
    });
  } finally {
    client.close();
  }
}

/** Host containerd configs that keep everything of containerd's under the temp dir (CRI on). */
function privateConfig(version: 2 | 3, o: { systemdRunc?: boolean } = {}) {
  const runc = o.systemdRunc ? `    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = true
` : '';
  return (dir: string) => version === 2 ? `version = 2
root = "${dir}/root"
state = "${dir}/state"

[grpc]
  address = "${dir}/c.sock"
[ttrpc]
  address = "${dir}/c.sock.ttrpc"

[plugins]
  [plugins."io.containerd.grpc.v1.cri"]
    [plugins."io.containerd.grpc.v1.cri".cni]
      bin_dir = "/usr/lib/cni"
      conf_dir = "${dir}/cni"
${runc}  [plugins."io.containerd.internal.v1.opt"]
    path = "${dir}/opt"
` : `version = 3
root = '${dir}/root'
state = '${dir}/state'
# NRI's socket is global (/var/run/nri): other containerds on this machine may own it.
disabled_plugins = ['io.containerd.nri.v1.nri']

[grpc]
  address = '${dir}/c.sock'
[ttrpc]
  address = '${dir}/c.sock.ttrpc'

[plugins]
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dir = '/usr/lib/cni'
    conf_dir = '${dir}/cni'
  [plugins.'io.containerd.internal.v1.opt']
    path = '${dir}/opt'
`;
}

/**
 * Runs containerd in a private mount namespace where the temp host's /opt is mounted at /opt, so
 * the host paths install wrote (imports, runtime_path, ConfigPath) resolve as they would on a node.
 */
function inHostNamespace(h: Host, argv: string[]): { cmd: string; args: string[] } {
  const sh = 'set -e; mount --bind "$1/opt" /opt; test -x /opt/kata/bin/containerd-shim-kata-ts-v2; test -f /opt/kata/share/defaults/kata-containers/configuration-clh.toml; shift; exec "$@"';
  return { cmd: 'unshare', args: ['--mount', '--propagation', 'private', '--', 'sh', '-c', sh, 'sh', h.root, ...argv] };
}

const realCases = [
  { name: 'containerd 1.6.20, config version 2 (Debian)', version: 2 as const, bin: tools.containerd16, systemdRunc: false },
  { name: 'containerd 1.7.24, config version 2 with its own runc', version: 2 as const, bin: tools.containerd17, systemdRunc: true },
  { name: 'containerd 2.1.9, config version 3', version: 3 as const, bin: tools.containerd2, systemdRunc: false },
];

describe('real containerd with the installed config', () => {
  const notRoot = process.getuid?.() !== 0 ? 'needs root (mount namespace, containerd)' : undefined;
  let daemon: ChildProcess | undefined;

  afterEach(async () => {
    const p = daemon;
    daemon = undefined;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    const gone = new Promise((r) => p.once('exit', r));
    p.kill('SIGTERM');
    await Promise.race([gone, sleep(10_000)]);
    if (p.exitCode === null && p.signalCode === null) {
      p.kill('SIGKILL');
      await gone;
    }
  });

  for (const c of realCases) {
    const skip = notRoot ?? missing(c.bin, '/usr/bin/unshare');
    if (skip) console.log(`skipping "${c.name}": ${skip}`);
    it.skipIf(!!skip)(`${c.name}: config dump and the running CRI plugin show runtime kata-clh-ts`, async () => {
      const h = makeHost(privateConfig(c.version, c), { realShim: true });
      const before = snapshot(h.root);
      expect(await deploy(h, 'install')).toMatchObject({ code: 0 });
      expect(sha256(join(h.root, shimHostPath))).toBe(sha256(h.shim));
      const hostConfig = '/etc/containerd/config.toml';
      const configArg = ['--config', join(h.root, hostConfig)];

      const dumpCmd = inHostNamespace(h, [c.bin, ...configArg, 'config', 'dump']);
      const d = await run(dumpCmd.cmd, dumpCmd.args);
      expect(d, d.stderr).toMatchObject({ code: 0 });
      const dumped = TOML.parse(d.stdout) as Doc;
      const entry = runtimeOf(dumped, pluginFor[c.version])!;
      expect(entry).toMatchObject({
        runtime_type: 'io.containerd.kata-ts.v2',
        runtime_path: shimHostPath,
        privileged_without_host_devices: true,
        pod_annotations: ['io.katacontainers.*'],
        options: { ConfigPath: clhConfigHostPath },
      });
      if (c.version === 3) expect(dumped.imports).toEqual([dropinHostPath]);

      // The daemon itself, CRI on: its effective CRI config has the runtime.
      const n = inHostNamespace(h, [c.bin, ...configArg]);
      const logFile = join(h.dir, 'containerd.log');
      const fd = openSync(logFile, 'a');
      daemon = spawn(n.cmd, n.args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      const socket = join(h.dir, 'c.sock');
      let status: CriStatus | undefined;
      let lastErr: unknown;
      for (const deadline = Date.now() + 20_000; Date.now() < deadline && !status;) {
        if (daemon.exitCode !== null) throw new Error(`containerd exited ${daemon.exitCode}:\n${readFileSync(logFile, 'utf8').slice(-3000)}`);
        if (existsSync(socket)) status = await criStatus(socket).catch((e) => { lastErr = e; return undefined; });
        // Served, but no CRI service: the CRI plugin refused the config (its reason is in the log).
        if ((lastErr as { code?: number } | undefined)?.code === grpc.status.UNIMPLEMENTED) break;
        if (!status) await sleep(100);
      }
      expect(status, `CRI Status never answered: ${String(lastErr)}\n${readFileSync(logFile, 'utf8').slice(-3000)}`).toBeDefined();
      expect(status!.status.conditions).toContainEqual(expect.objectContaining({ type: 'RuntimeReady', status: true }));
      const criConfig = JSON.parse(status!.info.config);
      const rt = criConfig.containerd.runtimes[handler];
      expect(rt).toMatchObject({
        runtimeType: 'io.containerd.kata-ts.v2',
        runtimePath: shimHostPath,
        privileged_without_host_devices: true,
        options: { ConfigPath: clhConfigHostPath },
      });
      expect(rt.PodAnnotations ?? rt.podAnnotations).toEqual(['io.katacontainers.*']);
      // The node's other pods still have their default runtime, as configured.
      const def = criConfig.containerd.defaultRuntimeName;
      expect(def).toBe('runc');
      expect(criConfig.containerd.runtimes[def].runtimeType).toBe('io.containerd.runc.v2');
      if (c.systemdRunc) expect(criConfig.containerd.runtimes[def].options.SystemdCgroup).toBe(true);

      // Stop it, then cleanup leaves the host as it was (containerd's own dirs are outside it).
      const p = daemon;
      daemon = undefined;
      const gone = new Promise((r) => p.once('exit', r));
      p.kill('SIGTERM');
      await gone;
      expect(await deploy(h, 'cleanup')).toMatchObject({ code: 0 });
      expect(snapshot(h.root)).toEqual(before);
      // Nothing of this run is still running.
      const left = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
        try {
          return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(h.dir);
        } catch {
          return false;
        }
      });
      expect(left).toEqual([]);
    });
  }
});
