// The README's main job: a private containerd (Debian's, own root/state/sockets under /tmp) with
// kata-ts registered as handler `kata-clh-ts`, Kata's clh config pointing at the cloud-hypervisor
// simulator, a locally built busybox image, and one `ctr run` on the kata-ts runtime.
import { Containerd, image, runtimeType, uniqueId } from '../test/e2e/harness.js';

// --keep: leave containerd running for trying `ctr` by hand, until Ctrl-C (or SIGTERM).
const keep = process.argv.includes('--keep');

async function keepRunning(c: Containerd, say: (line: string) => void): Promise<void> {
  const ctr = `ctr --address ${c.address} --namespace ${c.namespace}`;
  say('containerd keeps running (--keep); try, in another shell:');
  say(`  ${ctr} run --rm --runtime ${runtimeType} --runtime-config-path ${c.kataConfig} ${image} t1 sh -c 'uname -a; ls /'`);
  say(`  ${ctr} run -d --runtime ${runtimeType} --runtime-config-path ${c.kataConfig} ${image} t2 sleep 600; ${ctr} task exec --exec-id e1 t2 ps`);
  say(`shim logs are in containerd's log, ${c.logFile}; Ctrl-C stops containerd and cleans up`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
}

async function main(): Promise<number> {
  const version = (process.env.KATA_TS_CONTAINERD ?? '1.6') as '1.6' | '1.7' | '2';
  const c = await Containerd.start({ version, registerHandler: true, kataConfFileEnv: false });
  try {
    const id = uniqueId('hello');
    const say = (line: string) => console.error(`kata-ts: ${line}`);
    say(`containerd ${version} at ${c.address}; handler kata-clh-ts registered with ConfigPath ${c.kataConfig}`);
    say('the hypervisor in that config is the cloud-hypervisor simulator (test/sim/); README says how to use real Kata assets');
    say(`ctr run --rm --runtime ${runtimeType} --runtime-config-path ${c.kataConfig} ${image} ${id} echo hello from a kata-ts VM`);
    const r = await c.ctr(['run', '--rm', '--runtime', runtimeType, '--runtime-config-path', c.kataConfig, image, id,
      'echo', 'hello from a kata-ts VM']);
    process.stdout.write(r.stdout);
    process.stderr.write(r.stderr);
    if (r.code !== 0) say(`ctr exited ${r.code}; containerd log tail:\n${c.logTail(40)}`);
    if (keep && r.code === 0) await keepRunning(c, say);
    return r.code;
  } finally {
    await c.stop();
  }
}

main().then((code) => process.exit(code), (err) => {
  console.error(`kata-ts: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
