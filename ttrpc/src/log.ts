/** Structured logger; every entry from this package carries `subsystem: 'ttrpc'`. */
export interface Logger {
  debug(msg: string, f?: object): void;
  info(msg: string, f?: object): void;
  warn(msg: string, f?: object): void;
  error(msg: string, f?: object): void;
}

const nop = (): void => {};
export const noopLogger: Logger = { debug: nop, info: nop, warn: nop, error: nop };
