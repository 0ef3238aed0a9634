#!/usr/bin/env node
// Interop client on kafkajs 2.2.4 (pure JavaScript protocol code).
//
//   produce --bootstrap B --topic T --codec C --count N [--partitions P]
//   consume --bootstrap B --topic T --count N --codec-tag C [--no-headers] [--no-timestamps]
//   admin   --bootstrap B --topic T
//
// kafkajs has no consumer without a consumer group, so consume joins a fresh group (its own id,
// nothing committed) alone, subscribes fromBeginning and must be assigned every partition of T.
// Record checks are the contract of interop/python/spec.py and interop/go/spec/spec.go; like
// franz-go it also checks that every record came in a batch compressed with --codec-tag.
//
// Codecs: gzip is built in; snappy uses kafkajs-snappy (the codec kafkajs documents); lz4 and
// zstd are registered here on lz4-napi (LZ4 frame format) and zstd-codec (Emscripten build),
// because the codec packages kafkajs documents for them need native builds from source.
'use strict';

// Batch codec probe. kafkajs does not expose a batch's attributes, so wrap its record-batch
// decoder (kafkajs 2.2.4, pinned by package-lock.json) before kafkajs loads it: the codec bits of
// each batch's attributes are stored on the batch context every record of that batch shares and
// that reaches eachMessage as message.batchContext. Should a kafkajs update move the decoder,
// require.resolve fails here, and a probe that is never called fails every consume with a
// --codec-tag ("batch compression unknown").
const BATCH_DECODER = require.resolve('kafkajs/src/protocol/recordBatch/v0/decoder');
const decodeRecordBatch = require(BATCH_DECODER);
require.cache[BATCH_DECODER].exports = async (fetchDecoder) => {
  // firstOffset int64, length int32, partitionLeaderEpoch int32, magic int8, crc int32, attributes int16
  const codec = fetchDecoder.buffer.readInt16BE(fetchDecoder.offset + 21) & 0x07;
  const batch = await decodeRecordBatch(fetchDecoder);
  for (const r of batch.records) r.batchContext.codec = codec;
  return batch;
};

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4 = require('lz4-napi');
const { ZstdCodec } = require('zstd-codec');

const VALUE_LEN = 100;
const TS_MOD = 1000000;
const TS_SLACK_MS = 2 * 24 * 3600 * 1000;
const TIMEOUT_S = Number(process.env.INTEROP_TIMEOUT || 60);
const CLIENT_ID = 'interop-kafkajs';

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) { return lz4.compressFrameSync(encoder.buffer); },
  async decompress(buffer) { return lz4.decompressFrameSync(buffer); },
});
// zstd-codec's Simple.decompress returns null for a frame without the content size in its header,
// which is what streaming compressors write (librdkafka's and the Java client's zstd batches):
// decompress with its Streaming API, which needs no size
let zstdCodec = null;
function zstd() {
  if (zstdCodec) return Promise.resolve(zstdCodec);
  return new Promise((resolve) => ZstdCodec.run((z) => {
    zstdCodec = { simple: new z.Simple(), streaming: new z.Streaming() };
    resolve(zstdCodec);
  }));
}
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) { return Buffer.from((await zstd()).simple.compress(encoder.buffer)); },
  async decompress(buffer) {
    const out = (await zstd()).streaming.decompress(buffer);
    if (!out) throw new Error(`zstd: cannot decompress a ${buffer.length}-byte batch`);
    return Buffer.from(out);
  },
});

const CODECS = {
  none: CompressionTypes.None,
  gzip: CompressionTypes.GZIP,
  snappy: CompressionTypes.Snappy,
  lz4: CompressionTypes.LZ4,
  zstd: CompressionTypes.ZSTD,
};

function fail(msg) {
  process.stderr.write(`FAIL: ${msg}\n`);
  process.exit(1);
}

function key(i) { return `k-${i}`; }
function value(i) { const s = `v-${i}-`; return s + 'x'.repeat(VALUE_LEN - s.length); }

const FLAGS = new Set(['noHeaders', 'noTimestamps']); // switches without a value

function parse(argv) {
  const a = { cmd: argv[0], codec: 'none', partitions: 0, codecTag: '', noHeaders: false, noTimestamps: false };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith('--')) fail(`unexpected argument ${k}`);
    const name = k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase());
    if (FLAGS.has(name)) a[name] = true;
    else if (i + 1 < argv.length) a[name] = argv[++i];
    else fail(`${k} needs a value`);
  }
  if (!a.bootstrap || !a.topic) fail('--bootstrap and --topic are required');
  a.count = Number(a.count || 0);
  a.partitions = Number(a.partitions || 0);
  return a;
}

function kafka(a) {
  const logCreator = () => ({ namespace, level, log }) => {
    process.stderr.write(`[kafkajs ${namespace}] ${log.message} ${JSON.stringify(log)}\n`);
  };
  return new Kafka({
    clientId: CLIENT_ID,
    brokers: [a.bootstrap],
    logLevel: process.env.INTEROP_LOG ? logLevel.DEBUG : logLevel.ERROR,
    logCreator,
    retry: { retries: 8 },
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function waitFor(what, probe, timeoutMs = 30000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  while (Date.now() < deadline) {
    try {
      const r = await probe();
      if (r) return r;
    } catch (e) {
      last = e;
    }
    await sleep(200);
  }
  fail(`timed out waiting for ${what}${last ? ` (last: ${last})` : ''}`);
}

async function partitionsLed(admin, topic, n) {
  const md = await admin.fetchTopicMetadata({ topics: [topic] });
  const t = md.topics.find((x) => x.name === topic);
  if (!t || t.partitions.length !== n) return null;
  if (t.partitions.some((p) => p.leader < 0 || p.partitionErrorCode)) return null;
  return t;
}

async function produce(a) {
  const k = kafka(a);
  if (a.partitions > 0) {
    const admin = k.admin();
    await admin.connect();
    const created = await admin.createTopics({
      topics: [{ topic: a.topic, numPartitions: a.partitions, replicationFactor: 1 }],
      waitForLeaders: true,
    });
    if (!created) fail(`createTopics(${a.topic}) returned false (already exists?)`);
    await waitFor(`${a.topic} with ${a.partitions} led partitions`, () => partitionsLed(admin, a.topic, a.partitions));
    await admin.disconnect();
  }
  if (!(a.codec in CODECS)) fail(`unknown codec ${a.codec}`);
  const producer = k.producer({ allowAutoTopicCreation: true });
  await producer.connect();
  const base = Math.floor(Date.now() / TS_MOD) * TS_MOD;
  const used = new Set();
  const CHUNK = 50; // several batches per partition
  for (let start = 0; start < a.count; start += CHUNK) {
    const messages = [];
    for (let i = start; i < Math.min(a.count, start + CHUNK); i++) {
      messages.push({ key: key(i), value: value(i), headers: { h: String(i) }, timestamp: String(base + i) });
    }
    let res;
    try {
      res = await producer.send({ topic: a.topic, compression: CODECS[a.codec], acks: -1, messages });
    } catch (e) {
      fail(`send of records ${start}..${start + messages.length - 1} failed: ${e}`);
    }
    for (const r of res) {
      if (r.errorCode) fail(`partition ${r.partition}: error ${r.errorCode}`);
      used.add(r.partition);
    }
  }
  await producer.disconnect();
  console.log(`OK kafkajs produced ${a.count} records (codec ${a.codec}) to ${a.topic}, partitions used [${[...used].sort((x, y) => x - y).join(' ')}]`);
}

// The record contract's checker, as interop/python/spec.py Verifier and interop/go/spec Verifier.
class Verifier {
  constructor(n, expectHeaders, expectTs) {
    Object.assign(this, { n, expectHeaders, expectTs });
    this.seen = new Set();
    this.last = new Map(); // partition -> [offset, index]
    this.errors = [];
    this.now = Date.now();
  }

  err(msg) { if (this.errors.length < 10) this.errors.push(msg); }

  // k, v: Buffer or null; headers: [[key, Buffer]]; offset, ts: numbers
  add(partition, offset, k, v, headers, ts) {
    const where = `p${partition}@${offset}`;
    const ks = k === null || k === undefined ? null : k.toString('utf8');
    const m = /^k-(\d+)$/.exec(ks || '');
    if (!m) { this.err(`${where}: bad key ${JSON.stringify(ks)}`); return; }
    const i = Number(m[1]);
    if (i >= this.n) { this.err(`${where}: key index ${i} out of range (count ${this.n})`); return; }
    if (this.seen.has(i)) this.err(`${where}: duplicate record ${i}`);
    this.seen.add(i);
    const vs = v === null || v === undefined ? null : v.toString('utf8');
    if (vs !== value(i)) this.err(`${where}: record ${i} value ${JSON.stringify(vs)} != ${JSON.stringify(value(i))}`);
    const hs = headers.map(([hk, hv]) => [hk, hv === null || hv === undefined ? null : hv.toString('utf8')]);
    const want = this.expectHeaders ? [['h', String(i)]] : [];
    if (JSON.stringify(hs) !== JSON.stringify(want)) {
      this.err(`${where}: record ${i} headers ${JSON.stringify(hs)} != ${JSON.stringify(want)}`);
    }
    if (this.expectTs) {
      if (ts % TS_MOD !== i || Math.abs(ts - this.now) > TS_SLACK_MS) this.err(`${where}: record ${i} timestamp ${ts} is not base+${i}`);
    } else if (!(ts > 0) || Math.abs(ts - this.now) > TS_SLACK_MS) {
      this.err(`${where}: record ${i} implausible timestamp ${ts}`);
    }
    const prev = this.last.get(partition);
    if (prev) {
      if (offset <= prev[0]) this.err(`${where}: offset not increasing (previous ${prev[0]})`);
      if (i <= prev[1]) this.err(`${where}: record ${i} after record ${prev[1]}: per-partition order broken`);
    }
    this.last.set(partition, [offset, i]);
  }

  done() { return this.seen.size >= this.n; }

  // logRecords: sum over partitions of (end offset - start offset), or null when unknown
  finish(logRecords) {
    if (this.seen.size !== this.n) {
      const missing = [];
      for (let i = 0; i < this.n && missing.length < 10; i++) if (!this.seen.has(i)) missing.push(i);
      this.err(`got ${this.seen.size} of ${this.n} records; first missing: [${missing.join(', ')}]`);
    }
    if (logRecords !== null && logRecords !== this.n) {
      this.err(`log holds ${logRecords} offsets, expected exactly ${this.n} (duplicates or strays?)`);
    }
    if (this.errors.length) fail(this.errors.join('; '));
  }
}

// kafkajs gives headers as an object, a repeated key as an array of its values
function headerList(headers) {
  const out = [];
  for (const [hk, hv] of Object.entries(headers || {})) {
    for (const x of Array.isArray(hv) ? hv : [hv]) out.push([hk, x]);
  }
  return out;
}

const CODEC_IDS = { none: 0, gzip: 1, snappy: 2, lz4: 3, zstd: 4 };

async function consume(a) {
  const v = new Verifier(a.count, !a.noHeaders, !a.noTimestamps);
  const deadline = Date.now() + TIMEOUT_S * 1000;
  const k = kafka(a);
  const adm = k.admin();
  await adm.connect();
  const parts = await waitFor(`partitions of ${a.topic}`, async () => {
    const md = await adm.fetchTopicMetadata({ topics: [a.topic] });
    const t = md.topics.find((x) => x.name === a.topic);
    return t && t.partitions.length ? t.partitions.map((p) => p.partitionId).sort((x, y) => x - y) : null;
  });

  const wantCodec = CODEC_IDS[a.codecTag];
  const checkCodec = wantCodec !== undefined;
  let codecErrs = 0;
  let crash = null;
  let assigned = null;
  const groupId = `interop-kafkajs-${a.topic}-${process.pid}-${Date.now()}`;
  // maxWaitTimeInMs 500 as the other consumers (kafkajs' default 5000 would delay the stop)
  const consumer = k.consumer({ groupId, allowAutoTopicCreation: false, maxWaitTimeInMs: 500 });
  consumer.on(consumer.events.CRASH, (e) => { crash = crash || e.payload.error; });
  consumer.on(consumer.events.GROUP_JOIN, (e) => { assigned = (e.payload.memberAssignment[a.topic] || []).slice().sort((x, y) => x - y); });
  await consumer.connect();
  await consumer.subscribe({ topics: [a.topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      const offset = Number(message.offset);
      v.add(partition, offset, message.key, message.value, headerList(message.headers), Number(message.timestamp));
      const got = message.batchContext && message.batchContext.codec;
      if (checkCodec && got !== wantCodec) {
        codecErrs++;
        if (codecErrs === 1) {
          process.stderr.write(`p${partition}@${offset}: batch compression ${got === undefined ? 'unknown (batch codec probe not called)' : got}, expected ${wantCodec} (${a.codecTag})\n`);
        }
      }
    },
  });
  while (!v.done() && !crash && Date.now() < deadline) await sleep(50);
  await consumer.disconnect();
  if (crash) fail(`consumer crashed: ${crash && crash.stack ? crash.stack : crash}`);
  if (JSON.stringify(assigned) !== JSON.stringify(parts)) {
    fail(`the only member of group ${groupId} was assigned partitions ${JSON.stringify(assigned)}, the topic has ${JSON.stringify(parts)}`);
  }
  const offsets = await adm.fetchTopicOffsets(a.topic);
  await adm.disconnect();
  const total = offsets.reduce((s, o) => s + (Number(o.high) - Number(o.low)), 0);
  if (codecErrs > 0) {
    fail(`${codecErrs} records were in batches not compressed with ${a.codecTag} (codec ids: none 0, gzip 1, snappy 2, lz4 3, zstd 4)`);
  }
  v.finish(total);
  console.log(`OK kafkajs consumed ${a.count} records from ${parts.length} partitions (group ${groupId}, codec tag ${a.codecTag}${checkCodec ? ', batch codec checked' : ''})`);
}

async function admin(a) {
  const t = a.topic;
  const adm = kafka(a).admin();
  await adm.connect();
  const cl = await adm.describeCluster();
  const ids = new Set(cl.brokers.map((b) => b.nodeId));
  if (!ids.size || !cl.clusterId) fail(`describeCluster: ${JSON.stringify(cl)}`);
  if (!ids.has(cl.controller)) fail(`describeCluster: controller ${cl.controller} is not a broker`);
  const created = await adm.createTopics({
    topics: [{ topic: t, numPartitions: 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
    waitForLeaders: true,
  });
  if (!created) fail(`createTopics(${t}) returned false`);
  await waitFor(`${t} listed`, async () => (await adm.listTopics()).includes(t));
  const md = await waitFor(`${t} with 3 led partitions`, () => partitionsLed(adm, t, 3));
  for (const p of md.partitions) {
    if (!ids.has(p.leader) || p.replicas.length !== 1 || p.isr.length !== 1) {
      fail(`partition ${JSON.stringify(p)}: leader not a broker, or replicas/isr not [leader]`);
    }
  }
  const cfg = await adm.describeConfigs({ resources: [{ type: ConfigResourceTypes.TOPIC, name: t }], includeSynonyms: false });
  const entries = {};
  for (const e of cfg.resources[0].configEntries) entries[e.configName] = e.configValue;
  if (cfg.resources[0].errorCode) fail(`describeConfigs error ${cfg.resources[0].errorCode}`);
  if (entries['retention.ms'] !== '3600000' || entries['cleanup.policy'] !== 'delete') {
    fail(`describeConfigs: retention.ms=${entries['retention.ms']} cleanup.policy=${entries['cleanup.policy']}`);
  }
  await adm.createPartitions({ topicPartitions: [{ topic: t, count: 4 }] });
  await waitFor(`${t} with 4 partitions`, () => partitionsLed(adm, t, 4));
  await adm.deleteTopics({ topics: [t] });
  await waitFor(`${t} gone from list`, async () => !(await adm.listTopics()).includes(t));
  await adm.disconnect();
  console.log(`OK kafkajs admin: cluster create(3) list describe configs create_partitions(4) delete on ${t}`);
}

async function main() {
  const a = parse(process.argv.slice(2));
  const timer = setTimeout(() => fail(`timed out after ${TIMEOUT_S} s (+30 s)`), TIMEOUT_S * 1000 + 30000);
  if (a.cmd === 'produce') await produce(a);
  else if (a.cmd === 'consume') await consume(a);
  else if (a.cmd === 'admin') await admin(a);
  else fail(`unknown command ${a.cmd}`);
  clearTimeout(timer);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
