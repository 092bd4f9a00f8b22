/** Structured logger (ttrpc-ts and the shim's loggers fit); entries here carry `subsystem: 'agent'`. */
export interface Logger {
  debug(msg: string, f?: object): void;
  info(msg: string, f?: object): void;
  warn(msg: string, f?: object): void;
  error(msg: string, f?: object): void;
}

const nop = (): void => {};
export const noopLogger: Logger = { debug: nop, info: nop, warn: nop, error: nop };
