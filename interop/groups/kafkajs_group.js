// Consumer-group check with kafkajs (pure JavaScript protocol code, non-flexible versions only).
//
//   node kafkajs_group.js BOOTSTRAP TOPIC GROUP PARTITIONS RECORDS
//
// Two members of one group split TOPIC evenly (each gets PARTITIONS/2 partitions, disjoint),
// read every record exactly once between them, and commit. Exit status 0 on success.
const path = require('path');
const { Kafka, logLevel } = require(path.join(__dirname, '..', 'js', 'node_modules', 'kafkajs'));

const [bootstrap, topic, group, partitionsArg, recordsArg] = process.argv.slice(2);
const partitions = Number(partitionsArg), records = Number(recordsArg);
const kafka = new Kafka({ clientId: 'interop-groups', brokers: [bootstrap], logLevel: logLevel.ERROR });

async function main() {
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions }] });
  await admin.disconnect();
  const seen = new Map();
  const assigned = [new Set(), new Set()];
  const consumers = [0, 1].map(() => kafka.consumer({ groupId: group, sessionTimeout: 10000, heartbeatInterval: 500, rebalanceTimeout: 10000 }));
  for (const [i, c] of consumers.entries()) {
    c.on(c.events.GROUP_JOIN, (e) => {
      assigned[i] = new Set(e.payload.memberAssignment[topic] || []);
      if (process.env.GROUPS_DEBUG) console.error(`${Date.now()} member ${i} joined generation ${e.payload.groupId} leader=${e.payload.isLeader} ${[...assigned[i]]}`);
    });
    await c.connect();
    await c.subscribe({ topic, fromBeginning: true });
    await c.run({
      eachMessage: async ({ partition, message }) => {
        const key = `${partition}:${message.offset}`;
        seen.set(key, (seen.get(key) || 0) + 1);
      },
    });
  }
  const deadline = Date.now() + 60000;
  const balanced = () => {
    const all = [...assigned[0], ...assigned[1]];
    return all.length === partitions && new Set(all).size === partitions
      && assigned[0].size === partitions / 2 && assigned[1].size === partitions / 2;
  };
  while (!balanced()) {
    if (Date.now() > deadline) throw new Error(`never balanced: ${[...assigned[0]]} | ${[...assigned[1]]}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const producer = kafka.producer();
  await producer.connect();
  const messages = [];
  for (let n = 0; n < records; n++) messages.push({ partition: n % partitions, value: `r-${n}` });
  await producer.send({ topic, messages });
  await producer.disconnect();
  while ([...seen.keys()].length < records) {
    if (Date.now() > deadline) throw new Error(`read ${seen.size} of ${records}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const twice = [...seen.entries()].filter(([, n]) => n > 1);
  if (twice.length) throw new Error(`records read twice: ${twice}`);
  const split = `${[...assigned[0]]} | ${[...assigned[1]]}`;
  for (const c of consumers) await c.disconnect();
  console.log(`PASS: kafkajs members got ${split}, read ${records} records once`);
}

main().catch((e) => { console.error(`FAIL: ${e.message}`); process.exit(1); });
