#!/usr/bin/env node
// Compiles a Motoko source to canister wasm with the `motoko` npm package (moc in Node.js),
// with moc's DEFAULT settings (enhanced orthogonal persistence, 64-bit memory).
//
// Usage: node moc.js <source.mo> <cache-dir>
//   <cache-dir> (e.g. <target>/motoko) holds the npm package (installed on first use with
//   `npm install --prefix <cache-dir> motoko@4.10.0`) and the compiled modules, keyed by a
//   SHA-256 of the package version and the source: a repeated call with the same source
//   only hashes it. Prints the path of the compiled .wasm on stdout.
'use strict';

const { execFileSync } = require('child_process');
const crypto = require('crypto');
const fs = require('fs');
const path = require('path');

const MOTOKO_VERSION = '4.10.0';

function main() {
  const [source, cacheArg] = process.argv.slice(2);
  if (!source || !cacheArg) {
    console.error('usage: node moc.js <source.mo> <cache-dir>');
    process.exit(2);
  }
  const cache = path.resolve(cacheArg);
  const text = fs.readFileSync(source, 'utf8');
  const key = crypto
    .createHash('sha256')
    .update(`motoko@${MOTOKO_VERSION}\0${path.basename(source)}\0${text}`)
    .digest('hex')
    .slice(0, 32);
  const out = path.join(cache, 'wasm', `${path.basename(source, '.mo')}-${key}.wasm`);
  if (fs.existsSync(out)) {
    process.stdout.write(out + '\n');
    return;
  }

  const pkgDir = path.join(cache, 'node_modules', 'motoko');
  if (!installedVersionIs(pkgDir, MOTOKO_VERSION)) {
    fs.mkdirSync(cache, { recursive: true });
    execFileSync(
      'npm',
      ['install', '--prefix', cache, '--no-audit', '--no-fund', '--no-save', `motoko@${MOTOKO_VERSION}`],
      { stdio: ['ignore', process.stderr, process.stderr] },
    );
  }

  const mo = require(pkgDir);
  // The package bundles the `core` library; `import "mo:core/..."` resolves to it.
  mo.loadPackage(require(path.join(pkgDir, 'packages', 'latest', 'core.json')));
  const file = path.basename(source);
  mo.write(file, text);
  const result = mo.wasm(file, 'ic');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, Buffer.from(result.wasm));
  fs.renameSync(tmp, out);
  process.stdout.write(out + '\n');
}

function installedVersionIs(pkgDir, version) {
  try {
    return JSON.parse(fs.readFileSync(path.join(pkgDir, 'package.json'), 'utf8')).version === version;
  } catch {
    return false;
  }
}

main();
