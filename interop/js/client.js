#!/usr/bin/env node
// Interop client on kafkajs 2.2.4 (pure JavaScript protocol code).
//
//   produce --bootstrap B --topic T --codec C --count N [--partitions P]
//   admin   --bootstrap B --topic T
//   consume: not available. kafkajs has no consumer without a consumer group, and Sluice has no
//            groups yet; the suite skips kafkajs as a consumer until groups exist.
//
// Codecs: gzip is built in; snappy uses kafkajs-snappy (the codec kafkajs documents); lz4 and
// zstd are registered here on lz4-napi (LZ4 frame format) and zstd-codec (Emscripten build),
// because the codec packages kafkajs documents for them need native builds from source.
'use strict';

const { Kafka, CompressionTypes, CompressionCodecs, ConfigResourceTypes, logLevel } = require('kafkajs');
const SnappyCodec = require('kafkajs-snappy');
const lz4 = require('lz4-napi');
const { ZstdCodec } = require('zstd-codec');

const VALUE_LEN = 100;
const TS_MOD = 1000000;
const CLIENT_ID = 'interop-kafkajs';

CompressionCodecs[CompressionTypes.Snappy] = SnappyCodec;
CompressionCodecs[CompressionTypes.LZ4] = () => ({
  async compress(encoder) { return lz4.compressFrameSync(encoder.buffer); },
  async decompress(buffer) { return lz4.decompressFrameSync(buffer); },
});
let zstdSimple = null;
function zstd() {
  if (zstdSimple) return Promise.resolve(zstdSimple);
  return new Promise((resolve) => ZstdCodec.run((z) => { zstdSimple = new z.Simple(); resolve(zstdSimple); }));
}
CompressionCodecs[CompressionTypes.ZSTD] = () => ({
  async compress(encoder) { return Buffer.from((await zstd()).compress(encoder.buffer)); },
  async decompress(buffer) { return Buffer.from((await zstd()).decompress(buffer)); },
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

function parse(argv) {
  const a = { cmd: argv[0], codec: 'none', partitions: 0 };
  for (let i = 1; i < argv.length; i++) {
    const k = argv[i];
    if (!k.startsWith('--')) fail(`unexpected argument ${k}`);
    a[k.slice(2).replace(/-([a-z])/g, (_, c) => c.toUpperCase())] = argv[++i];
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
  const timer = setTimeout(() => fail(`timed out after ${process.env.INTEROP_TIMEOUT || 60} s`),
    Number(process.env.INTEROP_TIMEOUT || 60) * 1000 + 30000);
  if (a.cmd === 'produce') await produce(a);
  else if (a.cmd === 'admin') await admin(a);
  else if (a.cmd === 'consume') fail('kafkajs cannot consume without a consumer group (skipped until Sluice has groups)');
  else fail(`unknown command ${a.cmd}`);
  clearTimeout(timer);
}

main().catch((e) => fail(e && e.stack ? e.stack : String(e)));
