#!/usr/bin/env node
// Checks the WebHDFS stand-in (fake_webhdfs.py) with a client freeway did not
// write: the npm package "webhdfs" (pinned in package.json), which speaks the
// two-step protocol on its own. If the stand-in and this client agree, the
// stand-in is not merely agreeing with freeway's own C client.
//
//   node check_server.js HOST NAMENODE_PORT [--truncate-delay-ms N]
//
// It starts nothing: the server must be running. N must be the server's
// --truncate-delay-ms (0 by default). Prints one line per check and exits 0
// only if every check passed.
//
// What the npm client cannot do or cannot show is checked with plain http
// requests, each marked "(http)":
//   - it has no truncate;
//   - its rename and unlink ignore the {"boolean"} answer (an HTTP 200 is
//     success to them), so the boolean is read over http;
//   - its errors carry only RemoteException.message, not the exception's
//     name, so the name and javaClassName are read over http;
//   - the stand-in's own test controls (/stats, /fault).
'use strict';

const http = require('http');
const WebHDFS = require('webhdfs');

const BASE = '/freeway-check';
const DEADLINE_MS = 60000;

function usage() {
  console.error('usage: node check_server.js HOST NAMENODE_PORT [--truncate-delay-ms N]');
  process.exit(2);
}

const args = process.argv.slice(2);
if (args.length !== 2 && args.length !== 4) usage();
const host = args[0];
const port = parseInt(args[1], 10);
let truncateDelayMs = 0;
if (args.length === 4) {
  if (args[2] !== '--truncate-delay-ms') usage();
  truncateDelayMs = parseInt(args[3], 10);
}
if (!(port > 0) || !(truncateDelayMs >= 0)) usage();

const hdfs = WebHDFS.createClient({ host, port, path: '/webhdfs/v1', user: 'freeway' });

let passed = 0;
let failed = 0;

function check(name, ok, detail) {
  if (ok) passed++;
  else failed++;
  const d = detail && detail.length > 240 ? `${detail.slice(0, 240)}...` : detail;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${d ? ` (${d})` : ''}`);
}

// The client's callback API as promises resolving to {err, value}: a check
// looks at both, so nothing here throws on a server error.
function call(fn, ...fnArgs) {
  return new Promise((resolve) => {
    fn.call(hdfs, ...fnArgs, (err, value) => resolve({ err, value }));
  });
}

// A plain http request to the namenode (or any port): status, headers, body
// and the body parsed as JSON when it is JSON.
function raw(method, path, { body = null, toPort = port } = {}) {
  return new Promise((resolve) => {
    const req = http.request({ host, port: toPort, method, path, agent: false }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const buf = Buffer.concat(chunks);
        let json = null;
        try {
          json = JSON.parse(buf.toString());
        } catch (e) {
          json = null;
        }
        resolve({ status: res.statusCode, headers: res.headers, body: buf, json });
      });
    });
    req.on('error', (err) => resolve({ status: 0, err, headers: {}, body: Buffer.alloc(0) }));
    if (body) req.write(body);
    req.end();
  });
}

const url = (path, query) => `/webhdfs/v1${path}?user.name=freeway&${query}`;

async function stats() {
  return (await raw('GET', '/stats')).json;
}

// How many requests of op each listener saw between two /stats snapshots.
function delta(before, after, op) {
  const n = (s, role) => (s[role] && s[role][op]) || 0;
  return [n(after, 'namenode') - n(before, 'namenode'),
    n(after, 'datanode') - n(before, 'datanode')];
}

function remoteException(res) {
  return (res.json && res.json.RemoteException) || {};
}

function errMessage(err) {
  return err ? err.message : 'no error';
}

async function statLength(path) {
  const r = await call(hdfs.stat, path);
  return r.err ? -1 : r.value.length;
}

function randomBytes(n, seed) {
  const b = Buffer.alloc(n);
  let x = seed;
  for (let i = 0; i < n; i++) {
    x = (x * 1103515245 + 12345) & 0x7fffffff;
    b[i] = x >> 16;
  }
  return b;
}

async function checkWriteRead() {
  const dir = `${BASE}/dir`;
  const file = `${dir}/f`;
  const a = randomBytes(200000, 1);
  const b = Buffer.from('second part\n');
  const c = randomBytes(70001, 2);

  let r = await call(hdfs.mkdir, dir);
  const st = await call(hdfs.stat, dir);
  check('mkdir (MKDIRS)', !r.err && !st.err && st.value.type === 'DIRECTORY',
    r.err ? errMessage(r.err) : `type ${st.value && st.value.type}`);

  let before = await stats();
  r = await call(hdfs.writeFile, file, a);
  let [nn, dn] = delta(before, await stats(), 'CREATE');
  check('writeFile (CREATE through the 307 redirect)', !r.err && nn === 1 && dn === 1,
    `${errMessage(r.err)}; namenode ${nn}, datanode ${dn} CREATE requests`);

  before = await stats();
  const r1 = await call(hdfs.appendFile, file, b);
  const r2 = await call(hdfs.appendFile, file, c);
  [nn, dn] = delta(before, await stats(), 'APPEND');
  check('appendFile twice (APPEND through the 307 redirect)',
    !r1.err && !r2.err && nn === 2 && dn === 2,
    `${errMessage(r1.err || r2.err)}; namenode ${nn}, datanode ${dn} APPEND requests`);

  const want = Buffer.concat([a, b, c]);
  r = await call(hdfs.readFile, file);
  check('readFile (OPEN) returns what was written and appended',
    !r.err && Buffer.isBuffer(r.value) && r.value.equals(want),
    r.err ? errMessage(r.err) : `${r.value.length} bytes, want ${want.length}`);

  r = await call(hdfs.stat, file);
  check('stat (GETFILESTATUS) length', !r.err && r.value.length === want.length &&
    r.value.type === 'FILE', r.err ? errMessage(r.err) : `length ${r.value.length}`);

  r = await call(hdfs.readdir, dir);
  check('readdir (LISTSTATUS) names the file',
    !r.err && r.value.length === 1 && r.value[0].pathSuffix === 'f',
    r.err ? errMessage(r.err) : JSON.stringify(r.value.map((e) => e.pathSuffix)));

  r = await call(hdfs.writeFile, file, b, { overwrite: false });
  check('writeFile with overwrite=false onto an existing file fails',
    r.err && /already exists/.test(r.err.message) &&
      (await statLength(file)) === want.length, errMessage(r.err));
  return { file, length: want.length };
}

async function checkRename(file, length) {
  const moved = `${BASE}/dir/g`;
  let r = await call(hdfs.rename, file, moved);
  const old = await call(hdfs.stat, file);
  check('rename (RENAME)', !r.err && old.err && (await statLength(moved)) === length,
    errMessage(r.err));

  const other = `${BASE}/dir/h`;
  const otherData = Buffer.from('another file\n');
  await call(hdfs.writeFile, other, otherData);
  r = await call(hdfs.rename, moved, other);
  const h = await call(hdfs.readFile, other);
  check('rename onto an existing file leaves both files as they were',
    (await statLength(moved)) === length && !h.err && h.value.equals(otherData),
    errMessage(r.err || h.err));
  const res = await raw('PUT', url(moved, `op=RENAME&destination=${other}`));
  check('(http) rename onto an existing file answers 200 {"boolean": false}',
    res.status === 200 && res.json && res.json.boolean === false,
    `${res.status} ${res.body}`);
  return moved;
}

async function checkUnlinkAndMissing(path) {
  let r = await call(hdfs.unlink, path);
  const gone = await call(hdfs.stat, path);
  check('unlink (DELETE), then stat fails', !r.err && gone.err &&
    gone.err.message === `File does not exist: ${path}`,
  `${errMessage(r.err)}; stat: ${errMessage(gone.err)}`);
  let res = await raw('DELETE', url(path, 'op=DELETE'));
  check('(http) DELETE of a missing path answers 200 {"boolean": false}',
    res.status === 200 && res.json && res.json.boolean === false, `${res.status} ${res.body}`);

  const missing = `${BASE}/no-such-file`;
  res = await raw('GET', url(missing, 'op=OPEN'));
  const ex = remoteException(res);
  r = await call(hdfs.readFile, missing);
  check('readFile of a missing file gives the RemoteException\'s message',
    r.err && ex.message && r.err.message === ex.message, errMessage(r.err));
  check('(http) ... which is 404 FileNotFoundException, java.io.FileNotFoundException',
    res.status === 404 && ex.exception === 'FileNotFoundException' &&
      ex.javaClassName === 'java.io.FileNotFoundException' &&
      /^application\/json/.test(res.headers['content-type'] || ''),
    `${res.status} ${res.body}`);
}

// TRUNCATE is not in the npm client: plain http, then the client to look.
async function checkTruncate() {
  const file = `${BASE}/t`;
  const data = randomBytes(5000, 3);
  await call(hdfs.writeFile, file, data);

  let res = await raw('POST', url(file, 'op=TRUNCATE&newlength=5001'));
  const ex = remoteException(res);
  check('(http) TRUNCATE beyond the length: 400 HadoopIllegalArgumentException',
    res.status === 400 && ex.exception === 'HadoopIllegalArgumentException',
    `${res.status} ${res.body}`);

  res = await raw('POST', url(file, 'op=TRUNCATE&newlength=1234'));
  const done = truncateDelayMs === 0;
  check(`(http) TRUNCATE to 1234 answers {"boolean": ${done}}`,
    res.status === 200 && res.json && res.json.boolean === done, `${res.status} ${res.body}`);

  if (!done) {
    const len = await statLength(file);
    check('stat during the recovery shows the old length', len === data.length, `${len}`);
    const r = await call(hdfs.appendFile, file, Buffer.from('x'));
    check('appendFile during the recovery fails: lease recovery is in progress',
      r.err && /lease recovery is in progress/.test(r.err.message), errMessage(r.err));
    const t0 = Date.now();
    let now = len;
    while (now !== 1234 && Date.now() - t0 < truncateDelayMs + 10000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      now = await statLength(file);
    }
    check('stat shows the new length once the recovery is over', now === 1234,
      `${now} after ${Date.now() - t0} ms`);
  }
  const r = await call(hdfs.readFile, file);
  check('readFile after the truncate: the first 1234 bytes',
    !r.err && r.value.equals(data.subarray(0, 1234)), errMessage(r.err));
  const a = await call(hdfs.appendFile, file, Buffer.from('tail'));
  check('appendFile after the truncate', !a.err && (await statLength(file)) === 1238,
    errMessage(a.err));
}

// Protocol details the copier's C client relies on, over plain http.
async function checkProtocol() {
  const file = `${BASE}/proto`;
  let res = await raw('PUT', url(file, 'op=CREATE&noredirect=true'));
  const loc = (res.json && res.json.Location) || '';
  const dnPort = parseInt((/^http:\/\/[^/:]+:(\d+)\/webhdfs\/v1\//.exec(loc) || [])[1], 10);
  check('(http) CREATE noredirect=true: 200 {"Location"} on the datanode, nothing created',
    res.status === 200 && dnPort > 0 && dnPort !== port &&
      (await call(hdfs.stat, file)).err !== null, `${res.status} ${res.body}`);

  res = await raw('PUT', url(file, 'op=CREATE'), { body: 'namenode must not keep this' });
  check('(http) CREATE with data sent to the namenode: 307, the data ignored',
    res.status === 307 && /op=CREATE/.test(res.headers.location || '') &&
      (await call(hdfs.stat, file)).err !== null, `${res.status} ${res.headers.location}`);

  const dnPath = loc.replace(/^http:\/\/[^/]+/, '');
  res = await raw('PUT', dnPath, { body: 'datanode data', toPort: dnPort });
  check('(http) datanode CREATE: 201 Created, Location hdfs://..., empty body',
    res.status === 201 && /^hdfs:\/\/.*\/freeway-check\/proto$/.test(res.headers.location || '') &&
      res.body.length === 0 && (await statLength(file)) === 13,
    `${res.status} ${res.headers.location}`);

  res = await raw('GET', url(file, 'op=NOSUCHOP'));
  check('(http) an unknown op: 400 IllegalArgumentException',
    res.status === 400 && remoteException(res).exception === 'IllegalArgumentException',
    `${res.status} ${res.body}`);
  res = await raw('GET', url(file, 'op=MKDIRS'));
  check('(http) an op with the wrong method: 400', res.status === 400, `${res.status} ${res.body}`);
  return file;
}

// The stand-in's fault injection (its own extension), driven through the
// npm client's appendFile so the client sees what the copier would.
async function checkFaults(file) {
  const fault = (q) => raw('PUT', `/fault?${q}`);
  let len = await statLength(file);

  await fault('op=APPEND&mode=fail&count=1');
  let r = await call(hdfs.appendFile, file, Buffer.from('12345678'));
  let now = await statLength(file);
  check('fault fail: appendFile gets the 500 RuntimeException, nothing written',
    r.err && /injected fault/.test(r.err.message) && now === len, `${errMessage(r.err)}; ${now}`);

  await fault('op=APPEND&mode=drop-after-write');
  r = await call(hdfs.appendFile, file, Buffer.from('12345678'));
  now = await statLength(file);
  check('fault drop-after-write: appendFile fails, yet the data landed',
    r.err && now === len + 8, `${errMessage(r.err)}; ${len} -> ${now}`);
  len = now;

  await fault('op=APPEND&mode=partial');
  r = await call(hdfs.appendFile, file, Buffer.from('12345678'));
  now = await statLength(file);
  check('fault partial: appendFile fails, half the data landed',
    r.err && now === len + 4, `${errMessage(r.err)}; ${len} -> ${now}`);
  len = now;

  r = await call(hdfs.appendFile, file, Buffer.from('12345678'));
  now = await statLength(file);
  check('after count faults the next append works', !r.err && now === len + 8,
    `${errMessage(r.err)}; ${len} -> ${now}`);
  const cleared = await raw('DELETE', '/fault');
  const s = await stats();
  check('(http) DELETE /fault, /stats shows no fault armed',
    cleared.status === 200 && s && Object.keys(s.faults).length === 0, JSON.stringify(s && s.faults));
}

async function main() {
  const timer = setTimeout(() => {
    console.log(`FAIL the checks did not finish within ${DEADLINE_MS} ms`);
    process.exit(1);
  }, DEADLINE_MS);
  const { file, length } = await checkWriteRead();
  const moved = await checkRename(file, length);
  await checkUnlinkAndMissing(moved);
  await checkTruncate();
  const proto = await checkProtocol();
  await checkFaults(proto);
  clearTimeout(timer);
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed === 0 && passed > 0 ? 0 : 1);
}

main().catch((err) => {
  console.log(`FAIL ${err && err.stack ? err.stack : err}`);
  process.exit(1);
});
