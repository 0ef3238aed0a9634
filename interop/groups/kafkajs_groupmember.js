// One kafkajs consumer-group member process, driven by interop/groups/client_group.sh.
//
//   node kafkajs_groupmember.js --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]
//
// consumer.run with eachBatch (kafkajs' default assignor: RoundRobinAssigner), autoCommit off:
// after each batch it commits the offset after the batch's last record, synchronously, before
// kafkajs goes on (kafkajs notices a rebalance between batches, so nothing read is left
// uncommitted when it rejoins). Prints the lines of interop/go/cmd/franzgroup on stdout: config,
// assigned GEN P,P... (on every GROUP_JOIN; kafkajs has no revocation callback),
// record P O KEY, committed P O, error WHAT, left (kafkajs logged its LeaveGroup response
// without error), closed. SIGTERM (or --max N records read and committed): disconnect, which
// sends LeaveGroup; exit 0.
const path = require('path');
const { Kafka, logLevel } = require(path.join(__dirname, '..', 'js', 'node_modules', 'kafkajs'));

const args = { sessionTimeoutMs: 45000, max: 0 };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const k = argv[i], v = argv[i + 1];
  if (v === undefined) fail(`missing value for ${k}`);
  if (k === '--bootstrap') args.bootstrap = v;
  else if (k === '--topic') args.topic = v;
  else if (k === '--group') args.group = v;
  else if (k === '--session-timeout-ms') args.sessionTimeoutMs = Number(v);
  else if (k === '--max') args.max = Number(v);
  else fail(`unknown argument ${k}`);
}
if (!args.bootstrap || !args.topic || !args.group) fail('usage: --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]');

function fail(msg) {
  console.error(`FAIL: ${msg}`);
  process.exit(1);
}
const say = (line) => process.stdout.write(`${line}\n`);

// kafkajs reports answers only in its log: the LeaveGroup answer, and the generation of each
// JoinGroup (the GROUP_JOIN event does not carry it).
let generation = -1;
const logCreator = () => ({ level, log }) => {
  const { message } = log;
  if (message.startsWith('Response LeaveGroup')) {
    if (level === logLevel.ERROR) say(`error LeaveGroup: ${log.error}`);
    else if (level === logLevel.DEBUG && !log.error) say('left');
  } else if (message.startsWith('Response JoinGroup') && level === logLevel.DEBUG && log.data) {
    generation = log.data.generationId;
  } else if (level === logLevel.ERROR && !/rebalancing/.test(message) && !/rebalancing/.test(log.error || '')) {
    console.error(`${new Date().toISOString()} ERROR ${message} ${JSON.stringify(log)}`);
  }
};
const kafka = new Kafka({
  clientId: 'interop-kafkajs-group', brokers: [args.bootstrap], logLevel: logLevel.DEBUG, logCreator,
});
const consumer = kafka.consumer({
  groupId: args.group, sessionTimeout: args.sessionTimeoutMs, heartbeatInterval: 500,
  // records produced while a member waits come back (and heartbeats go out) within 0.5 s
  maxWaitTimeInMs: 500,
});

let lastShown = null;
consumer.on(consumer.events.GROUP_JOIN, (e) => {
  const ps = [...(e.payload.memberAssignment[args.topic] || [])].sort((a, b) => a - b);
  const line = `assigned ${generation} ${ps.length ? ps.join(',') : '-'}`;
  if (line !== lastShown) {
    lastShown = line;
    say(line);
  }
});
consumer.on(consumer.events.CRASH, (e) => say(`error consumer crashed: ${e.payload.error && e.payload.error.message}`));

let read = 0, stopping = false;
async function shutdown() {
  if (stopping) return;
  stopping = true;
  try {
    await consumer.disconnect();
  } catch (e) {
    say(`error disconnect: ${e.message}`);
  }
  say('closed');
  process.exit(0);
}
process.on('SIGTERM', () => { shutdown(); });

async function main() {
  await consumer.connect();
  await consumer.subscribe({ topic: args.topic, fromBeginning: true });
  say(`config assignors=RoundRobinAssigner session.timeout=${args.sessionTimeoutMs}`);
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, isRunning, isStale }) => {
      let next = null;
      for (const m of batch.messages) {
        if (stopping || !isRunning() || isStale() || (args.max && read >= args.max)) break;
        say(`record ${batch.partition} ${m.offset} ${m.key ? m.key.toString() : ''}`);
        read++;
        next = Number(m.offset) + 1;
        resolveOffset(m.offset);
      }
      if (next !== null) {
        try {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: String(next) }]);
          say(`committed ${batch.partition} ${next}`);
        } catch (e) {
          say(`error OffsetCommit ${batch.partition} ${next}: ${e.message}`);
        }
      }
      if (args.max && read >= args.max) setImmediate(shutdown);
    },
  });
}

main().catch((e) => { say(`error ${e.message}`); process.exit(1); });
