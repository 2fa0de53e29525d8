#!/usr/bin/env node
// A software-licenses provider in Node.js, over Provisio's external provider
// protocol (docs/provider-protocol.md), with the standard library only. The
// "vendor" is a JSON file (config `state_path`) holding an account whose API
// key is fixed by the first call. Run it with:
//
//     provisio serve --external-provider examples/node-licenses/provider.js
'use strict';

const crypto = require('node:crypto');
const fs = require('node:fs');
const readline = require('node:readline');

const FUNCTIONS = ['create', 'get_info', 'change_package', 'suspend', 'unsuspend', 'terminate', 'reissue'];

const DESCRIPTION = {
  protocol: 1,
  blueprint: 'software-licenses',
  id: 'licenses-node',
  name: 'Licence vendor (Node.js example)',
  description: "Licence keys from a file-backed vendor account; the external provider protocol's Node.js example.",
  config_schema: {
    type: 'object',
    additionalProperties: false,
    required: ['state_path', 'api_key'],
    properties: {
      state_path: { type: 'string', minLength: 1, description: "The vendor's state file.", 'x-endpoint': true },
      api_key: { type: 'string', minLength: 8, description: "The vendor account's API key.", 'x-secret': true, writeOnly: true },
    },
  },
  functions: FUNCTIONS,
  // One call at a time per copy; two copies share the file under a lock.
  processes: 2,
  concurrency: 1,
};

class Refused extends Error {
  constructor(kind, message) {
    super(message);
    this.kind = kind;
  }
}

function answer(message) {
  process.stdout.write(JSON.stringify(message) + '\n');
}

const sleep = (ms) => Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);

// An exclusive lock file; one left by a copy that died is taken over after 10 s.
function withLock(path, work) {
  const lock = path + '.lock';
  for (;;) {
    try {
      fs.closeSync(fs.openSync(lock, 'wx'));
      break;
    } catch (err) {
      if (err.code !== 'EEXIST') throw err;
      try {
        if (Date.now() - fs.statSync(lock).mtimeMs > 10_000) fs.rmSync(lock, { force: true });
      } catch (_) {
        // gone meanwhile
      }
      sleep(5);
    }
  }
  try {
    return work();
  } finally {
    fs.rmSync(lock, { force: true });
  }
}

// The vendor's state, locked for the duration of `work`; written back if changed.
function vendor(config, work) {
  const path = config.state_path;
  return withLock(path, () => {
    let state;
    try {
      state = JSON.parse(fs.readFileSync(path, 'utf8'));
    } catch (err) {
      if (err.code !== 'ENOENT') throw err;
      state = { account_key_sha256: null, licenses: {} };
    }
    const digest = crypto.createHash('sha256').update(config.api_key).digest('hex');
    if (state.account_key_sha256 === null) {
      state.account_key_sha256 = digest;
    } else if (!crypto.timingSafeEqual(Buffer.from(state.account_key_sha256), Buffer.from(digest))) {
      throw new Refused('provider_error', 'The vendor refused the API key');
    }
    const before = JSON.stringify(state);
    const result = work(state);
    if (JSON.stringify(state) !== before) {
      fs.writeFileSync(path + '.tmp', JSON.stringify(state));
      fs.renameSync(path + '.tmp', path);
    }
    return result;
  });
}

function find(state, key, owner) {
  const licence = state.licenses[key];
  if (licence === undefined) throw new Refused('not_found', `No licence ${key}`);
  // A licence carries the mark of the service that made it; no other service touches it.
  if (owner !== null && licence.owner !== null && licence.owner !== owner) {
    throw new Refused('conflict', `Licence ${key} belongs to another service`);
  }
  return licence;
}

function info(l) {
  return {
    license_key: l.license_key, reference: l.reference, package_identifier: l.package_identifier, state: l.state,
    customer_email: l.customer_email, ip: l.ip, domain: l.domain, reissue_count: l.reissue_count, created_at: l.created_at,
  };
}

function call(fn, config, params, owner) {
  return vendor(config, (state) => {
    if (fn === 'create') {
      for (const licence of Object.values(state.licenses)) {
        if (licence.reference === params.reference) {
          if (owner !== null && licence.owner !== null && licence.owner !== owner) {
            throw new Refused('conflict', 'This reference has a licence of another service');
          }
          return info(licence);
        }
      }
      const key = 'LK-' + crypto.randomBytes(8).toString('hex').toUpperCase();
      state.licenses[key] = {
        license_key: key, reference: params.reference, owner, package_identifier: params.package_identifier,
        state: 'active', customer_email: params.customer_email, ip: params.ip ?? null, domain: params.domain ?? null,
        reissue_count: 0, created_at: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
      };
      return info(state.licenses[key]);
    }
    const licence = find(state, params.license_key, owner);
    switch (fn) {
      case 'get_info':
        break;
      case 'change_package':
        licence.package_identifier = params.package_identifier;
        break;
      case 'suspend':
        licence.state = 'suspended';
        break;
      case 'unsuspend':
        licence.state = 'active';
        break;
      case 'reissue':
        licence.ip = params.ip ?? null;
        licence.domain = params.domain ?? null;
        licence.reissue_count += 1;
        break;
      case 'terminate':
        delete state.licenses[licence.license_key];
        return {};
      default:
        throw new Refused('unsupported', `${fn} is not implemented`);
    }
    return info(licence);
  });
}

function handle(request) {
  switch (request.method) {
    case 'describe':
      return DESCRIPTION;
    case 'test_connection':
      return vendor(request.config, (state) => ({
        message: `The vendor account answers; it holds ${Object.keys(state.licenses).length} licences`,
        details: {},
      }));
    case 'call':
      return call(request.function, request.config, request.params, request.owner);
    default:
      throw new Refused('internal', `unknown method ${request.method}`);
  }
}

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
lines.on('line', (line) => {
  if (!line.trim()) return;
  const request = JSON.parse(line);
  // Standard error is for staff: what was asked, never the configuration.
  process.stderr.write(`licenses-node: ${request.method} ${request.function ?? ''}\n`);
  try {
    answer({ id: request.id, status: 'ok', data: handle(request) });
  } catch (err) {
    if (err instanceof Refused) {
      answer({ id: request.id, status: 'error', error_kind: err.kind, message: err.message });
    } else {
      // A bug: staff see it in debug, the client a generic message.
      answer({ id: request.id, status: 'error', error_kind: 'internal', message: 'Internal error', debug: { cause: String(err) } });
    }
  }
});
lines.on('close', () => process.exit(0));
