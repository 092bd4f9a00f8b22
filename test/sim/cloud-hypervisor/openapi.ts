// The REST API surface, derived from cloud-hypervisor's own OpenAPI document: which endpoints
// exist, their method, whether they take a body, and the JSON schema every body is checked
// against. The document is read at start-up (never copied into the project); parsing its YAML
// takes ~0.3 s (more under load), so the parsed form is cached as JSON in the temp dir, keyed by
// the document's sha256, and each body's validator is compiled on first use.
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Ajv, ErrorObject, ValidateFunction } from 'ajv';
import { ApiError } from './errors.js';

const relPath = join('shared', 'upstream', 'cloud-hypervisor-openapi.yaml');

/** CH_SIM_OPENAPI, else the first `<dir>/../shared/upstream/...` walking up from `from`. */
export function locateOpenApi(env: NodeJS.ProcessEnv, from: string): string {
  const fromEnv = env.CH_SIM_OPENAPI;
  if (fromEnv) {
    if (!existsSync(fromEnv)) throw new Error(`CH_SIM_OPENAPI=${fromEnv}: no such file`);
    return fromEnv;
  }
  for (let d = resolve(from); ; d = dirname(d)) {
    const candidate = join(dirname(d), relPath);
    if (existsSync(candidate)) return candidate;
    if (dirname(d) === d) break;
  }
  throw new Error(`cannot find cloud-hypervisor's OpenAPI document (${relPath}) above ${from}; set CH_SIM_OPENAPI to its path`);
}

export interface Endpoint {
  name: string;
  method: 'GET' | 'PUT';
  /** Schema name of the request body, or undefined for body-less actions. */
  body?: string;
}

// JSON numbers are f64 in JS; the int64 family is checked up to the safe-integer range.
const intFormats: Record<string, [number, number]> = {
  int8: [-128, 127], uint8: [0, 255], int16: [-32768, 32767], uint16: [0, 65535],
  int32: [-(2 ** 31), 2 ** 31 - 1], uint32: [0, 2 ** 32 - 1],
  int64: [Number.MIN_SAFE_INTEGER, Number.MAX_SAFE_INTEGER], uint64: [0, Number.MAX_SAFE_INTEGER],
};

type Doc = {
  paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { schema?: { $ref?: string } }> } }>>;
  components: { schemas: Record<string, unknown> };
};

/**
 * The parsed document: from the JSON cache in `cacheDir` (when given) if it matches the file's
 * sha256, else parsed (and cached there).
 */
export async function readOpenApiDoc(file: string, cacheDir?: string): Promise<Doc> {
  const text = readFileSync(file);
  const cache = cacheDir && join(cacheDir, `ch-sim-openapi-${createHash('sha256').update(text).digest('hex')}.json`);
  if (cache) {
    try { return JSON.parse(readFileSync(cache, 'utf8')) as Doc; } catch { /* absent or torn: parse the YAML */ }
  }
  // Imported here so that a cached start never evaluates the YAML parser.
  const { parse } = await import('yaml');
  const doc = parse(text.toString('utf8')) as Doc;
  if (cache) try {
    const tmp = `${cache}.${process.pid}`;
    writeFileSync(tmp, JSON.stringify(doc));
    renameSync(tmp, cache);
  } catch { /* read-only temp dir: parse every time */ }
  return doc;
}

export class OpenApi {
  readonly endpoints = new Map<string, Endpoint>();
  private readonly ajv: Ajv;
  private readonly validators = new Map<string, ValidateFunction>();

  static async load(file: string, cacheDir?: string): Promise<OpenApi> {
    const doc = await readOpenApiDoc(file, cacheDir);
    // ajv too is loaded after the API socket is bound (vmm.ping needs neither).
    const { Ajv } = await import('ajv');
    return new OpenApi(file, doc, Ajv);
  }

  constructor(readonly file: string, doc: Doc, AjvClass: typeof Ajv) {
    if (!doc?.paths || !doc.components?.schemas) throw new Error(`${file}: not an OpenAPI document (paths/components missing)`);
    this.ajv = new AjvClass({ strict: false, allErrors: false, validateFormats: true });
    for (const [name, [min, max]] of Object.entries(intFormats)) {
      this.ajv.addFormat(name, { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= min && n <= max });
    }
    this.ajv.addFormat('float', { type: 'number', validate: () => true });
    this.ajv.addFormat('double', { type: 'number', validate: () => true });
    this.ajv.addFormat('uuid', { type: 'string', validate: () => true });
    this.ajv.addSchema({ $id: 'ch', components: doc.components });
    for (const [path, ops] of Object.entries(doc.paths)) {
      const name = path.replace(/^\//, '');
      const method = ops.put ? 'PUT' : 'GET';
      const op = ops.put ?? ops.get;
      const ref = op?.requestBody?.content?.['application/json']?.schema?.$ref;
      const body = ref?.replace('#/components/schemas/', '');
      this.endpoints.set(name, { name, method, body });
    }
  }

  /** Parses and validates a request body; throws a 400 ApiError worded like serde_json's errors. */
  parseBody(ep: Endpoint, raw: string): unknown {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch (e) {
      throw new ApiError(400, ['Cannot deserialize JSON payload', `${(e as Error).message}`]);
    }
    const validate = ep.body ? this.validator(ep.body) : undefined;
    if (validate && !validate(value)) {
      throw new ApiError(400, ['Cannot deserialize JSON payload', describe(ep.body!, validate.errors ?? [])]);
    }
    return value;
  }

  /** The compiled schema (compiled on first use: VmConfig alone takes a noticeable while). */
  validator(schema: string): ValidateFunction {
    let v = this.validators.get(schema);
    if (!v) {
      v = this.ajv.compile({ $ref: `ch#/components/schemas/${schema}` });
      this.validators.set(schema, v);
    }
    return v;
  }
}

function describe(schema: string, errors: ErrorObject[]): string {
  const e = errors[0];
  if (!e) return `invalid ${schema}`;
  const at = e.instancePath ? ` at ${e.instancePath}` : '';
  switch (e.keyword) {
    case 'required':
      return `missing field \`${(e.params as { missingProperty: string }).missingProperty}\`${at} (${schema})`;
    case 'type':
      return `invalid type${at}: expected ${(e.params as { type: string }).type} (${schema})`;
    case 'enum':
      return `unknown variant${at}, expected one of ${(e.params as { allowedValues: unknown[] }).allowedValues.map((v) => `\`${v}\``).join(', ')} (${schema})`;
    case 'format':
      return `invalid value${at}: expected ${(e.params as { format: string }).format} (${schema})`;
    default:
      return `invalid value${at}: ${e.message} (${schema})`;
  }
}
