/** A configuration file or annotation that cannot be used. `code` is stable; the message names file, key and rule. */
export class ConfigError extends Error {
  readonly code: 'CONFIG_NOT_FOUND' | 'CONFIG_INVALID' | 'CONFIG_ANNOTATION';
  /** The file the error is about ('' for annotations). */
  readonly file: string;
  /** The TOML key or annotation name, when one is at fault. */
  readonly key?: string;

  constructor(
    code: ConfigError['code'],
    message: string,
    o: { file?: string; key?: string; cause?: unknown } = {},
  ) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = 'ConfigError';
    this.code = code;
    this.file = o.file ?? '';
    this.key = o.key;
  }
}
