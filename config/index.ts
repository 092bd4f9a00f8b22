export { ConfigError } from './errors.js';
export { findConfigFile, loadConfig, defaultConfigDirs, ownConfigName } from './load.js';
export type { KataConfig, Logger } from './load.js';
export type { ClhConfig, AgentConfig, RuntimeConfig } from './keys.js';
export { applyAnnotations, globMatch, mergeKernelParams } from './annotations.js';
export { kataPaths, pathsUnder } from './paths.js';
export type { Paths } from './paths.js';
