/** Request metadata: keys lower-cased, each with its values in wire order. */
export type Metadata = Record<string, string[]>;

export function metadataToPairs(md: Metadata | undefined): [string, string][] {
  const pairs: [string, string][] = [];
  if (!md) return pairs;
  for (const key of Object.keys(md)) {
    const k = key.toLowerCase();
    for (const v of md[key]) pairs.push([k, v]);
  }
  return pairs;
}

export function metadataFromPairs(pairs: [string, string][]): Metadata {
  const md: Metadata = {};
  for (const [key, v] of pairs) {
    const k = key.toLowerCase();
    if (k === '__proto__') continue; // can't be a plain own property; no real peer sends it
    const list = Object.hasOwn(md, k) ? md[k] : undefined;
    if (list) list.push(v);
    else md[k] = [v];
  }
  return md;
}
