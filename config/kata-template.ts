// Renders Kata's `configuration-clh.toml.in` the way its Makefile does for kata-deploy
// (PREFIX=/opt/kata, x86_64). Used by tests here and by other folders' tests that need a real
// Kata config pointing at temp files; not used at run time.

/** Kata's Makefile values for the placeholders of the clh template (3.32/4.x, x86_64, kata-deploy). */
export const kataMakefileDefaults: Record<string, string> = {
  CONFIG_CLH_IN: 'config/configuration-clh.toml.in',
  PROJECT_NAME: 'Kata Containers',
  PROJECT_TYPE: 'kata',
  CLHPATH: '/opt/kata/bin/cloud-hypervisor',
  KERNELPATH_CLH: '/opt/kata/share/kata-containers/vmlinux.container',
  IMAGEPATH: '/opt/kata/share/kata-containers/kata-containers.img',
  DEFROOTFSTYPE: '"ext4"',
  DEFDISABLESELINUX: 'false',
  DEFDISABLEGUESTSELINUX: 'true',
  FIRMWAREPATH: '',
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

/** Replaces every `@NAME@`; throws on a placeholder without a value so template drift is loud. */
export function renderKataTemplate(template: string, overrides: Record<string, string> = {}): string {
  const values = { ...kataMakefileDefaults, ...overrides };
  return template.replace(/@([A-Z0-9_]+)@/g, (_, name: string) => {
    const v = values[name];
    if (v === undefined) throw new Error(`no value for placeholder @${name}@ in the Kata template`);
    return v;
  });
}
