// The transaction scenario of interop/txn (txnspec.py) on kafkajs 2.2.4's transactional producer.
//
//   node kafkajs_txn.js --bootstrap B --prefix P
//
// Prints `ok STEP DETAIL` / `fail STEP WHY` lines. kafkajs consumes only in a consumer group, so
// every read is a fresh group alone on the topic; readUncommitted: false (its default) fetches
// with isolation_level read_committed. txn.sendOffsets takes a group id only (TxnOffsetCommit
// without generation or member id), see FINDINGS.md.
const path = require('path');
const { Kafka, logLevel } = require(path.join(__dirname, '..', 'js', 'node_modules', 'kafkajs'));

const TIMEOUT_MS = Number(process.env.INTEROP_TIMEOUT || 60) * 1000;
const PARTITIONS = 2;
const argv = process.argv.slice(2);
const args = {};
for (let i = 0; i < argv.length; i += 2) args[argv[i].replace(/^--/, '')] = argv[i + 1];
if (!args.bootstrap || !args.prefix) {
  console.error('usage: --bootstrap B --prefix P');
  process.exit(2);
}

const kafka = new Kafka({
  clientId: 'interop-txn-kafkajs',
  brokers: [args.bootstrap],
  logLevel: process.env.INTEROP_LOG === 'DEBUG' ? logLevel.DEBUG : logLevel.NOTHING,
});

// the same data as txnspec.py
const records = (tag, n) => Array.from({ length: n }, (_, i) => ({ partition: i % PARTITIONS, key: `${tag}-${i}`, value: `${tag}-${i}` }));
const TXN1 = records('c1', 10), TXN2 = records('ab', 5), TXN3 = records('c2', 10);
const ROUND1 = records('in1', 10), ROUND2 = records('in2', 10);
const SENTINEL = 'end';
const transform = (v) => `out-${v}`;
const perPartition = (recs) => {
  const out = {};
  for (let p = 0; p < PARTITIONS; p++) out[p] = [];
  for (const r of recs) out[r.partition].push(r.value);
  return out;
};
const withSentinel = (e) => { for (const p in e) e[p].push(SENTINEL); return e; };
const outOf = (recs) => recs.map((r) => ({ ...r, value: transform(r.value) }));
const lastValues = (e) => Object.fromEntries(Object.entries(e).map(([p, vs]) => [p, vs[vs.length - 1]]));
function compare(got, exp) {
  for (let p = 0; p < PARTITIONS; p++) {
    const g = JSON.stringify(got[p] || []), e = JSON.stringify(exp[p]);
    if (g !== e) return `partition ${p}: read ${g}, expected ${e}`;
  }
  return null;
}
const ok = (step, detail) => console.log(`ok ${step} ${detail}`);
const bad = (step, why) => console.log(`fail ${step} ${String(why).replace(/\n/g, ' ').slice(0, 600)}`);
function check(step, got, exp, detail) {
  const why = compare(got, exp);
  if (why) bad(step, why); else ok(step, detail);
  return !why;
}
const msgs = (recs) => recs.map((r) => ({ partition: r.partition, key: r.key, value: r.value }));

async function transactional(tid) {
  const p = kafka.producer({ transactionalId: tid, idempotent: true, maxInFlightRequests: 1 });
  await p.connect();
  return p;
}

// Reads the topic from the start in a fresh group until each partition's value last[p] arrived.
let groups = 0;
async function readUntil(topic, readUncommitted, last) {
  const c = kafka.consumer({ groupId: `${args.prefix}-read-${groups++}`, readUncommitted });
  const got = {};
  for (let p = 0; p < PARTITIONS; p++) got[p] = [];
  await c.connect();
  await c.subscribe({ topic, fromBeginning: true });
  let done;
  const finished = new Promise((resolve) => { done = resolve; });
  const isDone = () => Object.keys(got).every((p) => last[p] === undefined || got[p].includes(last[p]));
  await c.run({
    autoCommit: false,
    eachMessage: async ({ partition, message }) => {
      got[partition].push(message.value.toString());
      if (isDone()) done();
    },
  });
  const timer = setTimeout(done, TIMEOUT_MS);
  await finished;
  clearTimeout(timer);
  await c.disconnect();
  return got;
}

async function stepProduce(topic) {
  const p = await transactional(`${args.prefix}-tx`);
  for (const [recs, commit] of [[TXN1, true], [TXN2, false], [TXN3, true]]) {
    const t = await p.transaction();
    await t.send({ topic, acks: -1, messages: msgs(recs) });
    await (commit ? t.commit() : t.abort());
  }
  await p.disconnect();
  ok('produce', 'commit 10, abort 5, commit 10');
}

async function stepCtp() {
  const tin = `${args.prefix}-in`, tout = `${args.prefix}-out`, group = `${args.prefix}-group`;
  const plain = kafka.producer();
  await plain.connect();
  await plain.send({ topic: tin, acks: -1, messages: msgs(ROUND1) });
  const p = await transactional(`${args.prefix}-ctp`);
  const c = kafka.consumer({ groupId: group });
  await c.connect();
  await c.subscribe({ topic: tin, fromBeginning: true });
  // each round: a transaction opened before the round's records are consumed, ended once all
  // of them were transformed into it
  let round = null;
  await c.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }) => {
      // The group may be joined and round 1's records fetched before the first transaction is
      // open (kafkajs takes the transactional id at the first transaction()): hold the record
      // until its round starts rather than drop it (bounded by the round's timeout).
      for (let waited = 0; !round && waited < TIMEOUT_MS; waited += 10) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      if (!round) return;
      const v = message.value.toString();
      await round.txn.send({ topic: tout, messages: [{ partition, key: message.key, value: transform(v) }] });
      round.seen.push(v);
      round.next[partition] = (BigInt(message.offset) + 1n).toString();
      if (round.seen.length === round.want) round.done();
    },
  });
  const ends = {};
  for (const [n, recs, commit] of [[1, ROUND1, true], [2, ROUND2, false]]) {
    const txn = await p.transaction();
    let done;
    const finished = new Promise((resolve) => { done = resolve; });
    const next = n === 1 ? {} : { ...ends };
    round = { txn, seen: [], want: recs.length, next, done };
    if (n === 2) await plain.send({ topic: tin, acks: -1, messages: msgs(recs) });
    const timer = setTimeout(done, TIMEOUT_MS);
    await finished;
    clearTimeout(timer);
    const r = round;
    round = null;
    if (JSON.stringify([...r.seen].sort()) !== JSON.stringify(recs.map((x) => x.value).sort())) {
      bad('ctp', `round ${n} consumed ${JSON.stringify(r.seen)}`);
      await txn.abort().catch(() => {});
      await Promise.all([c.disconnect(), p.disconnect(), plain.disconnect()]);
      return;
    }
    await txn.sendOffsets({
      consumerGroupId: group,
      topics: [{ topic: tin, partitions: Object.entries(r.next).map(([partition, offset]) => ({ partition: Number(partition), offset })) }],
    });
    if (commit) {
      await txn.commit();
      Object.assign(ends, r.next);
    } else {
      await txn.abort();
    }
  }
  await c.disconnect();
  const s = await p.transaction();
  await s.send({ topic: tout, messages: Array.from({ length: PARTITIONS }, (_, q) => ({ partition: q, key: SENTINEL, value: SENTINEL })) });
  await s.commit();
  await Promise.all([p.disconnect(), plain.disconnect()]);

  const admin = kafka.admin();
  await admin.connect();
  const fetched = await admin.fetchOffsets({ groupId: group, topics: [tin] });
  await admin.disconnect();
  const committed = {};
  for (const q of fetched[0].partitions) committed[q.partition] = q.offset;
  if (JSON.stringify(committed) !== JSON.stringify({ 0: '5', 1: '5' }) || JSON.stringify(ends) !== JSON.stringify({ 0: '5', 1: '5' })) {
    bad('ctp', `group's committed offsets ${JSON.stringify(committed)}, round 1 ended at ${JSON.stringify(ends)}`);
    return;
  }
  const expCommitted = withSentinel(perPartition(outOf(ROUND1)));
  let got = await readUntil(tout, false, lastValues(expCommitted));
  const why = compare(got, expCommitted);
  if (why) {
    bad('ctp', `output read_committed: ${why}`);
    return;
  }
  got = await readUntil(tout, true, lastValues(expCommitted));
  check('ctp', got, withSentinel(perPartition(outOf([...ROUND1, ...ROUND2]))),
    `committed offsets ${JSON.stringify(committed)}; output holds round 1 only (both rounds read_uncommitted)`);
}

async function stepFencing() {
  const topic = `${args.prefix}-fence`, tid = `${args.prefix}-fenced`;
  const p1 = await transactional(tid);
  const t1 = await p1.transaction();
  await t1.send({ topic, messages: [{ partition: 0, key: 'f1', value: 'f1' }] });
  // kafkajs sends InitProducerId with the transactional id at the first transaction(), not at
  // connect(): that is when the second producer takes the id over
  const p2 = await transactional(tid);
  const t2 = await p2.transaction();
  let fenced;
  try {
    await t1.commit();
    bad('fencing', "the first producer's commit succeeded after a second one took its id");
    return;
  } catch (e) {
    // kafkajs 2.2.4 knows no PRODUCER_FENCED (90): it needs INVALID_PRODUCER_EPOCH (47), which
    // Kafka answers to EndTxn v0-1 (KIP-588)
    if (e.type !== 'INVALID_PRODUCER_EPOCH') {
      bad('fencing', `first producer's commit failed with ${e.name} ${e.type}: ${e.message}, not INVALID_PRODUCER_EPOCH`);
      return;
    }
    fenced = `${e.name} ${e.type}`;
  } finally {
    await p1.disconnect().catch(() => {});
  }
  await t2.send({ topic, messages: [{ partition: 0, key: 'f2', value: 'f2' }] });
  await t2.commit();
  await p2.disconnect();
  const got = await readUntil(topic, false, { 0: 'f2' });
  check('fencing', got, { 0: ['f2'], 1: [] }, `first commit failed with ${fenced}`);
}

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    waitForLeaders: true,
    topics: ['t', 'in', 'out', 'fence'].map((s) => ({ topic: `${args.prefix}-${s}`, numPartitions: PARTITIONS })),
  });
  await admin.disconnect();
  const topic = `${args.prefix}-t`;
  await stepProduce(topic);
  let got = await readUntil(topic, false, lastValues(perPartition([...TXN1, ...TXN3])));
  check('read-committed', got, perPartition([...TXN1, ...TXN3]), '20 committed records, none aborted');
  got = await readUntil(topic, true, lastValues(perPartition([...TXN1, ...TXN2, ...TXN3])));
  check('read-uncommitted', got, perPartition([...TXN1, ...TXN2, ...TXN3]), 'all 25');
  await stepCtp();
  await stepFencing();
}

main().then(() => process.exit(0), (e) => {
  console.error(e && e.stack ? e.stack : e);
  process.exit(1);
});
