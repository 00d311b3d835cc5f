// Local TON chain emulator for the cocoon-payments tests.
//
// Runs the real TVM (through @ton/sandbox's emulator) and serves the subset of the toncenter
// HTTP API v2 the node agent uses: getAddressInformation, getTransactions, runGetMethod and
// sendBoc, with toncenter's `{"ok":true,"result":...}` envelope. Test-only endpoints live under
// /emulator/: create a funded payer wallet (a real wallet v4r2 contract, deployed by its first
// external message), make a payer send a transfer with a text comment, read balances, advance
// the chain clock, and inject faults into the next N API requests.
//
// Usage: node server.mjs [--port N] [--api-key KEY]
// Port 0 (the default) picks a free port. The first line on stdout is always
// `listening 127.0.0.1:<port>`; nothing else is printed on stdout.
import http from 'node:http';
import crypto from 'node:crypto';
import { Blockchain, internal as chainInternal } from '@ton/sandbox';
import {
  Address,
  Cell,
  beginCell,
  contractAddress,
  external,
  internal,
  storeMessage,
  loadMessage,
  storeMessageRelaxed,
  TupleReader,
} from '@ton/core';
import { keyPairFromSeed, sign } from '@ton/crypto';

// The standard wallet v4r2 code (the same cell tonlib-core and @ton/ton ship).
const WALLET_V4R2_CODE = Cell.fromBase64(
  'te6cckECFAEAAtQAART/APSkE/S88sgLAQIBIAIDAgFIBAUE+PKDCNcYINMf0x/THwL4I7vyZO1E0NMf0x/T//QE0VFDuvKhUVG68qIF+QFUEGT5EPKj+AAkpMjLH1JAyx9SMMv/UhD0AMntVPgPAdMHIcAAn2xRkyDXSpbTB9QC+wDoMOAhwAHjACHAAuMAAcADkTDjDQOkyMsfEssfy/8QERITAubQAdDTAyFxsJJfBOAi10nBIJJfBOAC0x8hghBwbHVnvSKCEGRzdHK9sJJfBeAD+kAwIPpEAcjKB8v/ydDtRNCBAUDXIfQEMFyBAQj0Cm+hMbOSXwfgBdM/yCWCEHBsdWe6kjgw4w0DghBkc3RyupJfBuMNBgcCASAICQB4AfoA9AQw+CdvIjBQCqEhvvLgUIIQcGx1Z4MesXCAGFAEywUmzxZY+gIZ9ADLaRfLH1Jgyz8gyYBA+wAGAIpQBIEBCPRZMO1E0IEBQNcgyAHPFvQAye1UAXKwjiOCEGRzdHKDHrFwgBhQBcsFUAPPFiP6AhPLassfyz/JgED7AJJfA+ICASAKCwBZvSQrb2omhAgKBrkPoCGEcNQICEekk30pkQzmkD6f+YN4EoAbeBAUiYcVnzGEAgFYDA0AEbjJftRNDXCx+AA9sp37UTQgQFA1yH0BDACyMoHy//J0AGBAQj0Cm+hMYAIBIA4PABmtznaiaEAga5Drhf/AABmvHfaiaEAQa5DrhY/AAG7SB/oA1NQi+QAFyMoHFcv/ydB3dIAYyMsFywIizxZQBfoCFMtrEszMyXP7AMhAFIEBCPRR8qcCAHCBAQjXGPoA0z/IVCBHgQEI9FHyp4IQbm90ZXB0gBjIywXLAlAGzxZQBPoCFMtqEssfyz/Jc/sAAgBsgQEI1xj6ANM/MFIkgQEI9Fnyp4IQZHN0cnB0gBjIywXLAlAFzxZQA/oCE8tqyx8Syz/Jc/sAAAr0AMntVGliJeU=',
);
const WALLET_ID = 698983191; // 0x29a9a317, the default subwallet id of v3/v4 wallets
const FAUCET = new Address(0, Buffer.alloc(32, 0x11));
const MAX_BODY = 1 << 20;
const MAX_LIMIT = 100;

function parseArgs(argv) {
  const out = { port: 0, apiKey: null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--port') out.port = Number(argv[++i]);
    else if (argv[i] === '--api-key') out.apiKey = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!Number.isInteger(out.port) || out.port < 0 || out.port > 65535) throw new Error('bad --port');
  return out;
}

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

const friendly = (addr) => addr.toString({ urlSafe: true, bounceable: true, testOnly: false });

function parseAddress(s, field = 'address') {
  if (typeof s !== 'string' || s.length === 0) throw new ApiError(416, `${field} is required`);
  try {
    return Address.parse(s);
  } catch (e) {
    throw new ApiError(416, `Incorrect address ${field}: ${e.message}`);
  }
}

function parseNano(s, field) {
  if (typeof s === 'number' && Number.isSafeInteger(s) && s >= 0) return BigInt(s);
  if (typeof s !== 'string' || !/^[0-9]{1,30}$/.test(s)) throw new ApiError(400, `${field} must be a decimal nanoTON string`);
  return BigInt(s);
}

function decodeComment(body) {
  if (!body) return null;
  try {
    const s = body.beginParse();
    if (s.remainingBits < 32 || s.loadUint(32) !== 0) return null;
    return s.loadStringTail();
  } catch {
    return null;
  }
}

function b64Hash(buf) {
  return Buffer.from(buf).toString('base64');
}

class Chain {
  constructor(blockchain) {
    this.bc = blockchain;
    this.txs = []; // every transaction, oldest first: { account: rawString, tx, inHash }
    this.payers = new Map(); // name -> { keyPair, init, address }
  }

  static async create() {
    const bc = await Blockchain.create();
    bc.now = Math.floor(Date.now() / 1000);
    bc.verbosity = { print: false, blockchainLogs: false, vmLogs: 'none', debugLogs: false };
    return new Chain(bc);
  }

  // Sends a message into the emulated chain and records every resulting transaction.
  // `originalHash` is the hash of the external message cell exactly as submitted.
  async send(message, originalHash) {
    const res = await this.bc.sendMessage(message);
    res.transactions.forEach((tx, i) => {
      const account = new Address(0, Buffer.from(tx.address.toString(16).padStart(64, '0'), 'hex'));
      let inHash = tx.inMessage ? beginCell().store(storeMessage(tx.inMessage)).endCell().hash() : null;
      if (i === 0 && originalHash) inHash = originalHash;
      this.txs.push({ account: account.toRawString(), tx, inHash });
    });
    return res.transactions;
  }

  messageJson(msg, hash) {
    if (!msg) return null;
    const info = msg.info;
    const comment = decodeComment(msg.body);
    const out = {
      '@type': 'raw.message',
      hash: hash ? b64Hash(hash) : b64Hash(beginCell().store(storeMessage(msg)).endCell().hash()),
      source: info.type === 'internal' ? friendly(info.src) : '',
      destination: info.type === 'external-out' ? '' : friendly(info.dest),
      value: info.type === 'internal' ? info.value.coins.toString() : '0',
      extra_currencies: [],
      fwd_fee: info.type === 'internal' ? info.forwardFee.toString() : '0',
      ihr_fee: info.type === 'internal' ? info.ihrFee.toString() : '0',
      created_lt: info.type === 'external-in' ? '0' : info.createdLt.toString(),
      body_hash: b64Hash(msg.body.hash()),
      bounce: info.type === 'internal' ? info.bounce : false,
      bounced: info.type === 'internal' ? info.bounced : false,
      msg_data:
        comment !== null
          ? { '@type': 'msg.dataText', text: Buffer.from(comment, 'utf8').toString('base64') }
          : { '@type': 'msg.dataRaw', body: msg.body.toBoc().toString('base64'), init_state: '' },
      message: comment ?? '',
    };
    return out;
  }

  txJson(entry) {
    const { tx } = entry;
    return {
      '@type': 'raw.transaction',
      address: { '@type': 'accountAddress', account_address: friendly(Address.parseRaw(entry.account)) },
      utime: tx.now,
      data: tx.raw.toBoc().toString('base64'),
      transaction_id: { '@type': 'internal.transactionId', lt: tx.lt.toString(), hash: b64Hash(tx.hash()) },
      fee: tx.totalFees.coins.toString(),
      storage_fee: '0',
      other_fee: tx.totalFees.coins.toString(),
      in_msg: this.messageJson(tx.inMessage, entry.inHash),
      out_msgs: tx.outMessages.values().map((m) => this.messageJson(m, null)),
    };
  }

  async addressInformation(addr) {
    const c = await this.bc.getContract(addr);
    const st = c.accountState;
    let state = 'uninitialized';
    let code = '';
    let data = '';
    if (st?.type === 'active') {
      state = 'active';
      code = st.state.code ? st.state.code.toBoc().toString('base64') : '';
      data = st.state.data ? st.state.data.toBoc().toString('base64') : '';
    } else if (st?.type === 'frozen') {
      state = 'frozen';
    }
    const lastHash = Buffer.from(c.lastTransactionHash.toString(16).padStart(64, '0'), 'hex');
    return {
      '@type': 'raw.fullAccountState',
      balance: c.balance.toString(),
      extra_currencies: [],
      code,
      data,
      last_transaction_id: {
        '@type': 'internal.transactionId',
        lt: c.lastTransactionLt.toString(),
        hash: c.lastTransactionLt === 0n ? 'AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=' : b64Hash(lastHash),
      },
      block_id: { '@type': 'ton.blockIdExt', workchain: -1, shard: '-9223372036854775808', seqno: this.txs.length, root_hash: '', file_hash: '' },
      frozen_hash: '',
      sync_utime: this.bc.now,
      state,
    };
  }

  transactions(addr, { limit, lt, hash, toLt }) {
    const raw = addr.toRawString();
    let list = this.txs.filter((e) => e.account === raw).reverse(); // newest first
    if (lt !== undefined) {
      if (hash === undefined) throw new ApiError(416, 'lt and hash must be given together');
      const h = Buffer.from(hash.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
      const start = list.findIndex((e) => e.tx.lt === lt && e.tx.hash().equals(h));
      if (start < 0) throw new ApiError(416, 'LITE_SERVER_UNKNOWN: transaction not found');
      list = list.slice(start);
    }
    if (toLt !== undefined) list = list.filter((e) => e.tx.lt > toLt);
    return list.slice(0, limit).map((e) => this.txJson(e));
  }

  async runGetMethod(addr, method) {
    const c = await this.bc.getContract(addr);
    if (c.accountState?.type !== 'active') {
      return { '@type': 'smc.runResult', gas_used: 0, stack: [], exit_code: -13 };
    }
    try {
      const r = await this.bc.runGetMethod(addr, method, []);
      const stack = [];
      const reader = new TupleReader(r.stack);
      while (reader.remaining > 0) {
        const item = reader.pop();
        if (item.type === 'int') stack.push(['num', '0x' + item.value.toString(16)]);
        else if (item.type === 'null') stack.push(['null', null]);
        else stack.push([item.type, null]);
      }
      return { '@type': 'smc.runResult', gas_used: Number(r.gasUsed), stack, exit_code: r.exitCode };
    } catch (e) {
      if (typeof e.exitCode === 'number') return { '@type': 'smc.runResult', gas_used: 0, stack: [], exit_code: e.exitCode };
      throw e;
    }
  }

  async sendBoc(bocB64) {
    let cell;
    try {
      const cells = Cell.fromBoc(Buffer.from(bocB64, 'base64'));
      if (cells.length !== 1) throw new Error(`expected one root cell, got ${cells.length}`);
      cell = cells[0];
    } catch (e) {
      throw new ApiError(400, `LITE_SERVER_UNKNOWN: failed to deserialize boc: ${e.message}`);
    }
    let msg;
    try {
      msg = loadMessage(cell.beginParse());
    } catch (e) {
      throw new ApiError(400, `LITE_SERVER_UNKNOWN: cannot parse external message: ${e.message}`);
    }
    if (msg.info.type !== 'external-in') throw new ApiError(400, 'LITE_SERVER_UNKNOWN: not an inbound external message');
    try {
      await this.send(msg, cell.hash());
    } catch (e) {
      // The TVM did not accept the message (bad signature, wrong seqno, expired, no funds...).
      const code = typeof e.exitCode === 'number' ? e.exitCode : 'none';
      throw new ApiError(
        500,
        'LITE_SERVER_UNKNOWN: cannot apply external message to current state : External message was not accepted\n' +
          `Cannot run message on account: inbound external message rejected by transaction: exitcode=${code}: ${String(e.error ?? e.message).split('\n')[0]}`,
      );
    }
    return { '@type': 'ok' };
  }

  // ---- test-only helpers ----

  async faucet(to, amount, bounce = false, body = undefined) {
    const txs = await this.send(chainInternal({ from: FAUCET, to, value: amount, bounce, body }));
    return txs;
  }

  payerInit(name) {
    let p = this.payers.get(name);
    if (p) return p;
    const seed = crypto.createHash('sha256').update(`cocoon-emulator-payer:${name}`).digest();
    const keyPair = keyPairFromSeed(seed);
    const data = beginCell().storeUint(0, 32).storeUint(WALLET_ID, 32).storeBuffer(keyPair.publicKey).storeBit(0).endCell();
    const init = { code: WALLET_V4R2_CODE, data };
    p = { keyPair, init, address: contractAddress(0, init) };
    this.payers.set(name, p);
    return p;
  }

  async payerSeqno(p) {
    const r = await this.runGetMethod(p.address, 'seqno');
    if (r.exit_code !== 0) return 0;
    return Number(BigInt(r.stack[0][1]));
  }

  // Signs and submits a wallet v4r2 external message from a payer's wallet.
  async payerExternal(p, messages) {
    const c = await this.bc.getContract(p.address);
    const deployed = c.accountState?.type === 'active';
    const seqno = deployed ? await this.payerSeqno(p) : 0;
    let body = beginCell().storeUint(WALLET_ID, 32).storeUint(this.bc.now + 60, 32).storeUint(seqno, 32).storeUint(0, 8);
    for (const m of messages) body = body.storeUint(3, 8).storeRef(beginCell().store(storeMessageRelaxed(m)).endCell());
    const unsigned = body.endCell();
    const signature = sign(unsigned.hash(), p.keyPair.secretKey);
    const signed = beginCell().storeBuffer(signature).storeSlice(unsigned.beginParse()).endCell();
    const ext = external({ to: p.address, init: deployed ? undefined : p.init, body: signed });
    const cell = beginCell().store(storeMessage(ext)).endCell();
    return await this.send(ext, cell.hash());
  }

  async createPayer(name, amount) {
    const p = this.payerInit(name);
    await this.faucet(p.address, amount, false);
    await this.payerExternal(p, []); // deploys the wallet (state init on the first external)
    const c = await this.bc.getContract(p.address);
    return {
      name,
      address: friendly(p.address),
      raw_address: p.address.toRawString(),
      public_key: Buffer.from(p.keyPair.publicKey).toString('hex'),
      balance: c.balance.toString(),
      state: c.accountState?.type ?? 'uninit',
    };
  }
}

function sendJson(res, status, obj) {
  const body = JSON.stringify(obj);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(new ApiError(413, 'request body too large'));
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

async function jsonBody(req) {
  const text = await readBody(req);
  if (text.length === 0) return {};
  try {
    const v = JSON.parse(text);
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
    return v;
  } catch (e) {
    throw new ApiError(400, `request body is not a JSON object: ${e.message}`);
  }
}

function parseLimit(s) {
  if (s === undefined || s === null) return 10;
  const n = Number(s);
  if (!Number.isInteger(n) || n < 1) throw new ApiError(416, 'limit must be a positive integer');
  return Math.min(n, MAX_LIMIT);
}

function parseLt(s, field) {
  if (s === undefined || s === null || s === '') return undefined;
  if (!/^[0-9]{1,20}$/.test(s)) throw new ApiError(416, `${field} must be a decimal integer`);
  return BigInt(s);
}

const FAULT_KINDS = new Set(['http500', 'http502', 'timeout', 'malformed', 'wrong_shape', 'apply_then_500', 'drop_send']);

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const chain = await Chain.create();
  const faults = []; // { kind, remaining, path }
  const hanging = new Set();

  function takeFault(path) {
    const i = faults.findIndex((f) => !f.path || path.includes(f.path));
    if (i < 0) return null;
    const f = faults[i];
    f.remaining -= 1;
    if (f.remaining <= 0) faults.splice(i, 1);
    return f.kind;
  }

  async function api(method, path, query, req, res) {
    if (args.apiKey !== null) {
      const key = req.headers['x-api-key'] ?? query.get('api_key');
      if (key !== args.apiKey) return sendJson(res, 401, { ok: false, error: 'API key does not exist', code: 401 });
    }
    const fault = takeFault(path);
    if (fault === 'http500') return sendJson(res, 500, { ok: false, error: 'Internal Server Error', code: 500 });
    if (fault === 'http502') {
      res.writeHead(502, { 'content-type': 'text/html' });
      return res.end('<html><body><h1>502 Bad Gateway</h1></body></html>');
    }
    if (fault === 'timeout') {
      hanging.add(res);
      res.on('close', () => hanging.delete(res));
      return; // never answered
    }
    if (fault === 'malformed') {
      res.writeHead(200, { 'content-type': 'application/json' });
      return res.end('{"ok":true,"result":{"@type":"raw.fullAccountState","bal');
    }
    if (fault === 'wrong_shape') return sendJson(res, 200, { ok: true, result: 'surprise' });

    let result;
    if (path === '/api/v2/getAddressInformation' && method === 'GET') {
      result = await chain.addressInformation(parseAddress(query.get('address')));
    } else if (path === '/api/v2/getTransactions' && method === 'GET') {
      result = chain.transactions(parseAddress(query.get('address')), {
        limit: parseLimit(query.get('limit')),
        lt: parseLt(query.get('lt'), 'lt'),
        hash: query.get('hash') ?? undefined,
        toLt: parseLt(query.get('to_lt'), 'to_lt'),
      });
    } else if (path === '/api/v2/runGetMethod' && method === 'POST') {
      const body = await jsonBody(req);
      if (typeof body.method !== 'string') throw new ApiError(400, 'method must be a string');
      if (body.stack !== undefined && (!Array.isArray(body.stack) || body.stack.length !== 0)) {
        throw new ApiError(400, 'only an empty stack is supported by the emulator');
      }
      result = await chain.runGetMethod(parseAddress(body.address), body.method);
    } else if (path === '/api/v2/sendBoc' && method === 'POST') {
      const body = await jsonBody(req);
      if (typeof body.boc !== 'string') throw new ApiError(400, 'boc must be a base64 string');
      if (fault === 'drop_send') {
        result = { '@type': 'ok' }; // accepted by the API, lost before reaching a validator
      } else {
        result = await chain.sendBoc(body.boc);
        if (fault === 'apply_then_500') return sendJson(res, 500, { ok: false, error: 'Internal Server Error', code: 500 });
      }
    } else {
      throw new ApiError(404, `unknown method ${method} ${path}`);
    }
    sendJson(res, 200, { ok: true, result });
  }

  async function emulator(method, path, query, req, res) {
    if (path === '/emulator/payer' && method === 'POST') {
      const b = await jsonBody(req);
      if (typeof b.name !== 'string' || b.name.length === 0) throw new ApiError(400, 'name is required');
      return sendJson(res, 200, await chain.createPayer(b.name, parseNano(b.amount ?? '100000000000', 'amount')));
    }
    if (path === '/emulator/send' && method === 'POST') {
      const b = await jsonBody(req);
      const p = chain.payers.get(b.payer);
      if (!p) throw new ApiError(404, `no payer named ${b.payer}`);
      const to = parseAddress(b.to, 'to');
      const amount = parseNano(b.amount, 'amount');
      const body = typeof b.comment === 'string' ? beginCell().storeUint(0, 32).storeStringTail(b.comment).endCell() : undefined;
      const txs = await chain.payerExternal(p, [internal({ to, value: amount, bounce: b.bounce === true, body })]);
      const dest = txs.find((t) => t.inMessage?.info.type === 'internal' && t.inMessage.info.dest.equals(to));
      return sendJson(res, 200, {
        transactions: txs.length,
        dest_tx: dest ? { lt: dest.lt.toString(), hash: b64Hash(dest.hash()) } : null,
      });
    }
    if (path === '/emulator/fund' && method === 'POST') {
      const b = await jsonBody(req);
      const txs = await chain.faucet(parseAddress(b.address), parseNano(b.amount, 'amount'), b.bounce === true);
      return sendJson(res, 200, { transactions: txs.length });
    }
    if (path === '/emulator/balance' && method === 'GET') {
      const addr = parseAddress(query.get('address'));
      const c = await chain.bc.getContract(addr);
      return sendJson(res, 200, { address: friendly(addr), balance: c.balance.toString(), state: c.accountState?.type ?? 'uninit' });
    }
    if (path === '/emulator/advance' && method === 'POST') {
      const b = await jsonBody(req);
      const s = Number(b.seconds);
      if (!Number.isInteger(s) || s < 0) throw new ApiError(400, 'seconds must be a non-negative integer');
      chain.bc.now += s;
      return sendJson(res, 200, { now: chain.bc.now });
    }
    if (path === '/emulator/fault' && method === 'POST') {
      const b = await jsonBody(req);
      if (!FAULT_KINDS.has(b.kind)) throw new ApiError(400, `kind must be one of ${[...FAULT_KINDS].join(', ')}`);
      const count = b.count === undefined ? 1 : Number(b.count);
      if (!Number.isInteger(count) || count < 1) throw new ApiError(400, 'count must be a positive integer');
      faults.push({ kind: b.kind, remaining: count, path: typeof b.path === 'string' ? b.path : null });
      return sendJson(res, 200, { pending: faults.length });
    }
    if (path === '/emulator/faults' && method === 'DELETE') {
      faults.length = 0;
      return sendJson(res, 200, { pending: 0 });
    }
    if (path === '/emulator/now' && method === 'GET') return sendJson(res, 200, { now: chain.bc.now });
    throw new ApiError(404, `unknown emulator endpoint ${method} ${path}`);
  }

  // Requests are processed one at a time so that the chain state changes in a clear order.
  let queue = Promise.resolve();
  const server = http.createServer((req, res) => {
    queue = queue.then(async () => {
      const url = new URL(req.url, 'http://127.0.0.1');
      const path = url.pathname;
      try {
        if (path.startsWith('/emulator/')) await emulator(req.method, path, url.searchParams, req, res);
        else await api(req.method, path, url.searchParams, req, res);
      } catch (e) {
        const status = e instanceof ApiError ? e.status : 500;
        if (!(e instanceof ApiError)) process.stderr.write(`emulator error: ${e.stack}\n`);
        if (!res.headersSent) sendJson(res, status, { ok: false, error: e.message, code: status });
      }
    });
  });
  server.listen(args.port, '127.0.0.1', () => {
    process.stdout.write(`listening 127.0.0.1:${server.address().port}\n`);
  });
  const stop = () => {
    for (const r of hanging) r.destroy();
    server.close(() => process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  // Exit with the parent: a test harness that dies must not leave an emulator behind.
  process.stdin.on('end', stop);
  process.stdin.resume();
}

main().catch((e) => {
  process.stderr.write(`emulator failed to start: ${e.stack}\n`);
  process.exit(1);
});
