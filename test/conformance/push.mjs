// Pushes OCI image layouts to a plain-HTTP registry with the distribution API v2: each blob
// (HEAD, else POST an upload and PUT it with its digest), child manifests by digest, then the
// top manifest or index by tag.
//
//   node push.mjs <registry base URL, e.g. http://127.0.0.1:80> <layouts dir>
// pushes every <layouts dir>/<repo>/<tag> as <repo>:<tag>.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { request } from 'undici';

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

async function expect(res, what, ...ok) {
  const body = await res.body.text();
  if (!ok.includes(res.statusCode)) throw new Error(`push: ${what}: HTTP ${res.statusCode} ${body.slice(0, 300)}`);
  return res;
}

async function pushBlob(base, repo, layout, digest) {
  const data = readFileSync(join(layout, 'blobs', 'sha256', digest.slice(7)));
  const head = await request(`${base}/v2/${repo}/blobs/${digest}`, { method: 'HEAD' });
  await head.body.dump();
  if (head.statusCode === 200) return;
  const start = await expect(await request(`${base}/v2/${repo}/blobs/uploads/`, { method: 'POST' }), `start upload of ${digest} to ${repo}`, 202);
  const loc = new URL(String(start.headers.location), base);
  loc.searchParams.set('digest', digest);
  await expect(await request(loc, {
    method: 'PUT', body: data, headers: { 'content-type': 'application/octet-stream', 'content-length': String(data.length) },
  }), `upload ${digest} to ${repo}`, 201);
}

async function pushManifest(base, repo, layout, desc, ref) {
  const data = readFileSync(join(layout, 'blobs', 'sha256', desc.digest.slice(7)));
  const m = JSON.parse(data.toString('utf8'));
  if (INDEX_TYPES.has(desc.mediaType)) {
    for (const child of m.manifests) await pushManifest(base, repo, layout, child, child.digest);
  } else {
    for (const b of [m.config, ...m.layers]) await pushBlob(base, repo, layout, b.digest);
  }
  await expect(await request(`${base}/v2/${repo}/manifests/${ref}`, {
    method: 'PUT', body: data, headers: { 'content-type': desc.mediaType },
  }), `put manifest ${repo}:${ref}`, 201);
}

export async function pushLayout(base, layout, repo, tag) {
  const index = JSON.parse(readFileSync(join(layout, 'index.json'), 'utf8'));
  const top = index.manifests.find((d) => d.annotations?.['org.opencontainers.image.ref.name'] === tag) ?? index.manifests[0];
  if (!top) throw new Error(`push: ${layout}/index.json lists no manifest`);
  await pushManifest(base, repo, layout, top, tag);
}

/** Every <dir>/<repo...>/<tag> folder holding an oci-layout file. */
export function layoutsUnder(dir, prefix = '') {
  const found = [];
  for (const name of readdirSync(dir)) {
    const p = join(dir, name);
    if (!statSync(p).isDirectory()) continue;
    try {
      statSync(join(p, 'oci-layout'));
      found.push({ repo: prefix.replace(/\/$/, ''), tag: name, dir: p });
    } catch {
      found.push(...layoutsUnder(p, `${prefix}${name}/`));
    }
  }
  return found;
}

if (process.argv[1]?.endsWith('push.mjs')) {
  const [base, dir] = process.argv.slice(2);
  if (!base || !dir) {
    console.error('usage: node push.mjs <registry URL> <layouts dir>');
    process.exit(2);
  }
  for (const l of layoutsUnder(dir)) {
    await pushLayout(base, l.dir, l.repo, l.tag);
    console.log(`pushed ${l.repo}:${l.tag}`);
  }
}
