// Renders Kata's own configuration-clh.toml.in the way Kata's build does (kata-deploy prefix
// /opt/kata), so tests run with the file users already have. Values: Kata's Makefile defaults
// for x86_64 as documented in ../shared/reference/kata-config.md.
import { readFileSync } from 'node:fs';
import { kataClhTomlIn } from './env.js';

export const kataMakefileDefaults: Record<string, string> = {
  CONFIG_CLH_IN: 'config/configuration-clh.toml.in',
  PROJECT_NAME: 'Kata Containers',
  PROJECT_TYPE: 'kata',
  CLHPATH: '/opt/kata/bin/cloud-hypervisor',
  KERNELPATH_CLH: '/opt/kata/share/kata-containers/vmlinux.container',
  IMAGEPATH: '/opt/kata/share/kata-containers/kata-containers.img',
  FIRMWAREPATH: '',
  DEFROOTFSTYPE: '"ext4"',
  DEFDISABLESELINUX: 'false',
  DEFDISABLEGUESTSELINUX: 'true',
  DEFENABLEANNOTATIONS: '["enable_iommu", "kernel_params", "kernel_verity_params"]',
  CLHVALIDHYPERVISORPATHS: '["/opt/kata/bin/cloud-hypervisor"]',
  KERNELPARAMS: 'cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1',
  DEFVCPUS: '1',
  DEFMAXVCPUS: '0',
  DEFMEMSZ: '2048',
  DEFMEMSLOTS: '10',
  DEFMAXMEMSZ: '0',
  DEFDISABLEBLOCK: 'true',
  DEFSHAREDFS_CLH_VIRTIOFS: 'virtio-fs',
  DEFVIRTIOFSDAEMON: '/opt/kata/libexec/virtiofsd',
  DEFVALIDVIRTIOFSDAEMONPATHS: '["/opt/kata/libexec/virtiofsd"]',
  DEFVIRTIOFSCACHESIZE: '0',
  DEFVIRTIOFSQUEUESIZE: '1024',
  DEFVIRTIOFSEXTRAARGS: '["--thread-pool-size=1", "--announce-submounts"]',
  DEFVIRTIOFSCACHE: 'auto',
  DEFDISABLEIMAGENVDIMM_CLH: 'true',
  DEFNETWORKMODEL_CLH: 'tcfilter',
  DEFDISABLEGUESTSECCOMP: 'true',
  DEFGUESTSELINUXLABEL: '',
  DEFSANDBOXCGROUPONLY: 'false',
  DEFSTATICRESOURCEMGMT_CLH: 'false',
  DEFBINDMOUNTS: '[]',
  DEFVFIOMODE: 'guest-kernel',
  DEFDISABLEGUESTEMPTYDIR: 'false',
  DEFEMPTYDIRMODE: 'shared-fs',
  DEFAULTEXPFEATURES: '[]',
  DEFCREATECONTAINERTIMEOUT: '60',
  DEFDANCONF: '/run/kata-containers/dans',
  DEFKUBELETROOTDIR: '/var/lib/kubelet',
  DEFPODRESOURCEAPISOCK: '',
};

/** Kata's clh template with every @NAME@ replaced; `values` override the Makefile defaults. */
export function renderKataClhConfig(values: Record<string, string> = {}): string {
  const all = { ...kataMakefileDefaults, ...values };
  return readFileSync(kataClhTomlIn, 'utf8').replace(/@([A-Z0-9_]+)@/g, (whole, name: string) => {
    const v = all[name];
    if (v === undefined) throw new Error(`kata-config: no value for placeholder ${whole}`);
    return v;
  });
}

/**
 * Kata's clh config pointed at the given VMM, virtiofsd, kernel and image, as an operator edits it:
 * the asset paths and their allow-lists change, everything else stays as shipped.
 */
export function kataClhConfigFor(o: { vmm: string; virtiofsd: string; kernel: string; image: string; debug?: boolean }): string {
  let text = renderKataClhConfig({
    CLHPATH: o.vmm,
    CLHVALIDHYPERVISORPATHS: JSON.stringify([o.vmm]),
    KERNELPATH_CLH: o.kernel,
    IMAGEPATH: o.image,
    DEFVIRTIOFSDAEMON: o.virtiofsd,
    DEFVALIDVIRTIOFSDAEMONPATHS: JSON.stringify([o.virtiofsd]),
  });
  if (o.debug) text = text.replace(/^#\s*enable_debug = true/gm, 'enable_debug = true');
  return text;
}
