#!/usr/bin/env node
// Writes a release's update manifest (latest.json), the file every installed SimpleOTP reads to
// learn of a newer release (src-tauri/src/updates.rs) and `simpleotp --version` reads for its
// notice (engine/src/updates.rs).
//
//   node scripts/release-manifest.mjs --version 0.2.0 \
//     --base-url https://github.com/simpleotp/simpleotp/releases/download/v0.2.0 \
//     [--notes-file notes.md] [--pub-date 2026-12-05T00:00:00Z] [--pubkey BASE64 | --config src-tauri/tauri.conf.json] \
//     linux-x86_64-deb=path/SimpleOTP_0.2.0_amd64.deb windows-x86_64-nsis=path/SimpleOTP_0.2.0_x64-setup.exe ... > latest.json
//
// One entry per install format, and only these keys: an installed .deb must update to a .deb,
// an MSI install to an MSI, never to another format (the app looks up exactly its own key).
// Each FILE's signature is read from FILE.sig (what `tauri build` or `tauri signer sign` writes)
// and checked here before anything is published:
// - it is a minisign signature whose signed trusted comment names --version (the app refuses a
//   package signed for another version: `requireSignedVersion`);
// - with --pubkey or --config, it verifies with that public key over the file's bytes (Ed25519
//   over BLAKE2b-512, minisign's prehashed form), so a release signed with the wrong key, or a
//   file changed after signing, fails the release instead of every installed copy's update.
// The URL of each entry is --base-url + "/" + the file's name.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export const KEYS = [
  'linux-x86_64-deb',
  'linux-x86_64-rpm',
  'linux-x86_64-appimage',
  'windows-x86_64-nsis',
  'windows-x86_64-msi',
  'darwin-aarch64-app',
  'darwin-x86_64-app',
];

function fail(message) {
  console.error(`release-manifest: ${message}`);
  process.exit(1);
}

function parseArgs(argv) {
  const options = { entries: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => argv[++i] ?? fail(`${arg} needs a value`);
    if (arg === '--version') options.version = value();
    else if (arg === '--base-url') options.baseUrl = value().replace(/\/+$/, '');
    else if (arg === '--notes-file') options.notesFile = value();
    else if (arg === '--pub-date') options.pubDate = value();
    else if (arg === '--pubkey') options.pubkey = value();
    else if (arg === '--config') options.config = value();
    else if (/^[a-z0-9_-]+=/.test(arg)) {
      const [key, file] = [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)];
      options.entries.push({ key, file });
    } else fail(`unknown argument ${arg}`);
  }
  return options;
}

/** minisign's text formats: "untrusted comment: …\nBASE64\n[trusted comment: …\nBASE64\n]". */
function minisignLines(text, what) {
  const lines = text.split(/\r?\n/).filter((l) => l !== '');
  if (!lines[0]?.startsWith('untrusted comment:')) fail(`${what} is not in minisign's format`);
  return lines;
}

/** The public key as the app's config holds it (base64 of the .pub file). */
function readPublicKey(base64Text) {
  const lines = minisignLines(Buffer.from(base64Text, 'base64').toString('utf8'), 'the public key');
  const raw = Buffer.from(lines[1], 'base64');
  if (raw.length !== 42 || raw.subarray(0, 2).toString() !== 'Ed') fail('the public key is not an Ed25519 minisign key');
  return { keyId: raw.subarray(2, 10), key: raw.subarray(10) };
}

/** A .sig file's content (base64 of minisign's signature file, as Tauri writes it). */
function readSignature(base64Text, what) {
  const lines = minisignLines(Buffer.from(base64Text.trim(), 'base64').toString('utf8'), what);
  const raw = Buffer.from(lines[1] ?? '', 'base64');
  const trusted = lines[2]?.startsWith('trusted comment: ') ? lines[2].slice('trusted comment: '.length) : fail(`${what} has no trusted comment`);
  const global = Buffer.from(lines[3] ?? '', 'base64');
  if (raw.length !== 74 || global.length !== 64) fail(`${what} is not a minisign signature`);
  return { algorithm: raw.subarray(0, 2).toString(), keyId: raw.subarray(2, 10), signature: raw.subarray(10), trusted, global };
}

function ed25519Verify(publicKey, message, signature) {
  // The raw key wrapped as SubjectPublicKeyInfo (RFC 8410), which node's crypto takes.
  const spki = Buffer.concat([Buffer.from('302a300506032b6570032100', 'hex'), publicKey]);
  return crypto.verify(null, message, crypto.createPublicKey({ key: spki, format: 'der', type: 'spki' }), signature);
}

function checkSignature(file, sig, version, publicKey) {
  const what = `${path.basename(file)}.sig`;
  const signedVersion = sig.trusted.split('\t').find((f) => f.startsWith('version:'))?.slice('version:'.length);
  if (signedVersion === undefined) fail(`${what} was signed without a version (sign with the Tauri CLI ≥ 2.x that records it)`);
  if (signedVersion.replace(/^v/, '') !== version) fail(`${what} was signed for version ${signedVersion}, not ${version}`);
  if (!publicKey) return;
  if (!sig.keyId.equals(publicKey.keyId)) fail(`${what} was made by another key (key id ${Buffer.from(sig.keyId).reverse().toString('hex').toUpperCase()}) than the app's`);
  const bytes = fs.readFileSync(file);
  const message = sig.algorithm === 'ED' ? crypto.createHash('blake2b512').update(bytes).digest() : bytes;
  if (!ed25519Verify(publicKey.key, message, sig.signature)) fail(`${what} does not verify over ${path.basename(file)}: the file changed after signing, or the key is wrong`);
  if (!ed25519Verify(publicKey.key, Buffer.concat([sig.signature, Buffer.from(sig.trusted)]), sig.global)) fail(`${what}: its trusted comment was changed`);
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  if (!/^\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$/.test(options.version ?? '')) fail('--version X.Y.Z is required');
  if (!/^https?:\/\//.test(options.baseUrl ?? '')) fail('--base-url is required');
  if (!options.entries.length) fail('no KEY=FILE entries');
  let pubkey = options.pubkey;
  if (options.config) pubkey = JSON.parse(fs.readFileSync(options.config, 'utf8')).plugins?.updater?.pubkey;
  if (options.config && !pubkey) fail(`${options.config} has no plugins.updater.pubkey: installed copies could not check any signature`);
  const publicKey = pubkey ? readPublicKey(pubkey) : null;

  const platforms = {};
  for (const { key, file } of options.entries) {
    if (!KEYS.includes(key)) fail(`${key} is not an install format (${KEYS.join(', ')})`);
    if (platforms[key]) fail(`${key} is given twice`);
    if (!fs.existsSync(file)) fail(`${file} does not exist`);
    if (!fs.existsSync(`${file}.sig`)) fail(`${file}.sig does not exist: the release was not signed (TAURI_SIGNING_PRIVATE_KEY)`);
    const signature = fs.readFileSync(`${file}.sig`, 'utf8').trim();
    checkSignature(file, readSignature(signature, `${path.basename(file)}.sig`), options.version, publicKey);
    platforms[key] = { url: `${options.baseUrl}/${encodeURIComponent(path.basename(file))}`, signature };
  }
  const manifest = {
    version: options.version,
    notes: options.notesFile ? fs.readFileSync(options.notesFile, 'utf8').trim() : `SimpleOTP ${options.version}`,
    pub_date: options.pubDate ?? new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    platforms,
  };
  process.stdout.write(`${JSON.stringify(manifest, null, 2)}\n`);
  console.error(`release-manifest: ${options.version}: ${Object.keys(platforms).join(', ')}${publicKey ? ' (signatures verified)' : ''}`);
}

main();
