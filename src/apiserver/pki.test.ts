import assert from 'node:assert/strict';
import { generateKeyPairSync, X509Certificate } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { certifiesKey, ensurePki, ensureServing } from './pki.js';

test('a certificate that is not its key\'s is made again for the key on disk', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-pki-'));
  try {
    const first = await ensurePki(dir, ['127.0.0.1']);
    assert.ok(certifiesKey(first.serving) && certifiesKey(first.admin) && certifiesKey(first.ca));
    // What a start cut short can leave: serving.key replaced after serving.crt was written for the old one.
    await writeFile(path.join(dir, 'serving.key'), generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs1', format: 'pem' }).toString());
    const key = await readFile(path.join(dir, 'serving.key'), 'utf8');
    assert.equal(certifiesKey({ cert: first.serving.cert, key }), false);
    const again = await ensurePki(dir, ['127.0.0.1']);
    assert.equal(again.serving.key, key, 'the key on disk is kept');
    assert.ok(certifiesKey(again.serving), 'the certificate is remade for it');
    assert.equal(await readFile(path.join(dir, 'serving.crt'), 'utf8'), again.serving.cert, 'and written');
    assert.equal(again.ca.cert, first.ca.cert, 'a matching pair is left alone');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('a second serving pair: made for the key given, kept while its hosts stay, remade for the same key when they change', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'kubicle-pki-'));
  try {
    const pki = await ensurePki(dir, ['127.0.0.1']);
    const first = await ensureServing(dir, 'kubelet', pki.ca, ['10.0.0.5', '127.0.0.1'], pki.serving.key);
    assert.equal(first.key, pki.serving.key, 'no new key');
    assert.ok(certifiesKey(first));
    const cert = new X509Certificate(first.cert);
    assert.ok(cert.verify(new X509Certificate(pki.ca.cert).publicKey), 'signed by the CA');
    assert.match(cert.subjectAltName ?? '', /IP Address:10\.0\.0\.5/);
    const again = await ensureServing(dir, 'kubelet', pki.ca, ['127.0.0.1', '10.0.0.5']);
    assert.equal(again.cert, first.cert, 'the same hosts in another order: the same certificate');
    const moved = await ensureServing(dir, 'kubelet', pki.ca, ['10.0.0.6', '127.0.0.1']);
    assert.notEqual(moved.cert, first.cert);
    assert.equal(moved.key, first.key, 'the key on disk is certified again');
    assert.match(new X509Certificate(moved.cert).subjectAltName ?? '', /IP Address:10\.0\.0\.6/);
    assert.equal((await ensurePki(dir, ['127.0.0.1'])).serving.cert, pki.serving.cert, 'the API server\'s pair is untouched');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
