package sluice.interop;

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import java.util.stream.Collectors;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * The transaction scenario of interop/txn (interop/txn/txnspec.py) on the Java client's
 * transactional KafkaProducer and a read_committed KafkaConsumer. Prints {@code ok STEP DETAIL}
 * or {@code fail STEP WHY} per step (produce, read-committed, read-uncommitted, ctp, fencing).
 *
 * <pre>java -cp ... sluice.interop.TxnClient --bootstrap B --prefix P [--group-protocol consumer]</pre>
 */
public final class TxnClient {
  private static final int PARTITIONS = 2;
  private static final String SENTINEL = "end";
  private static final String CLIENT_ID = "interop-txn-java";
  private static Duration timeout = Duration.ofSeconds(60);
  private static String bootstrap;
  private static String prefix;
  /**
   * --group-protocol classic (the default) or consumer (KIP-848): the ctp step's group protocol.
   * With consumer only the ctp step runs (the other steps use no group).
   */
  private static String groupProtocol = "classic";

  private record Rec(int partition, String value) {}

  private TxnClient() {}

  /** txnspec.records: record i of a transaction goes to partition i % 2. */
  private static List<Rec> records(String tag, int n) {
    List<Rec> out = new ArrayList<>();
    for (int i = 0; i < n; i++) out.add(new Rec(i % PARTITIONS, tag + "-" + i));
    return out;
  }

  private static final List<Rec> TXN1 = records("c1", 10);
  private static final List<Rec> TXN2 = records("ab", 5);
  private static final List<Rec> TXN3 = records("c2", 10);
  private static final List<Rec> ROUND1 = records("in1", 10);
  private static final List<Rec> ROUND2 = records("in2", 10);

  @SafeVarargs
  private static Map<Integer, List<String>> perPartition(List<Rec>... lists) {
    Map<Integer, List<String>> out = new TreeMap<>();
    for (int p = 0; p < PARTITIONS; p++) out.put(p, new ArrayList<>());
    for (List<Rec> l : lists) for (Rec r : l) out.get(r.partition()).add(r.value());
    return out;
  }

  private static List<Rec> transformed(List<Rec> l) {
    return l.stream().map(r -> new Rec(r.partition(), "out-" + r.value())).collect(Collectors.toList());
  }

  private static Map<Integer, List<String>> withSentinel(Map<Integer, List<String>> m) {
    m.values().forEach(v -> v.add(SENTINEL));
    return m;
  }

  private static Map<Integer, String> lastValues(Map<Integer, List<String>> m) {
    Map<Integer, String> out = new HashMap<>();
    m.forEach((p, v) -> out.put(p, v.get(v.size() - 1)));
    return out;
  }

  private static void ok(String step, String detail) {
    System.out.println("ok " + step + " " + detail);
  }

  private static void bad(String step, String why) {
    System.out.println("fail " + step + " " + why.replace('\n', ' '));
  }

  private static String compare(Map<Integer, List<String>> got, Map<Integer, List<String>> want) {
    for (int p = 0; p < PARTITIONS; p++) {
      List<String> g = got.getOrDefault(p, List.of());
      if (!g.equals(want.get(p))) return "partition " + p + ": read " + g + ", expected " + want.get(p);
    }
    return null;
  }

  private static void check(String step, Map<Integer, List<String>> got, Map<Integer, List<String>> want, String detail) {
    String why = compare(got, want);
    if (why != null) bad(step, why);
    else ok(step, detail);
  }

  private static KafkaProducer<String, String> producer(String tid) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ProducerConfig.CLIENT_ID_CONFIG, CLIENT_ID);
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    if (tid != null) p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, tid);
    KafkaProducer<String, String> producer = new KafkaProducer<>(p);
    if (tid != null) producer.initTransactions();
    return producer;
  }

  private static KafkaConsumer<String, String> consumer(String group, String isolation) {
    Properties p = new Properties();
    p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    p.put(ConsumerConfig.CLIENT_ID_CONFIG, CLIENT_ID);
    p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
    p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
    if (group != null) {
      p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
      p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, groupProtocol);
    }
    return new KafkaConsumer<>(p);
  }

  private static void sendAll(KafkaProducer<String, String> p, String topic, List<Rec> recs) {
    for (Rec r : recs) p.send(new ProducerRecord<>(topic, r.partition(), r.value(), r.value()));
    p.flush();
  }

  /** Reads both partitions from the start until each one's value last[p] arrived. */
  private static Map<Integer, List<String>> readUntil(String topic, String isolation, Map<Integer, String> last) {
    Map<Integer, List<String>> got = perPartition();
    try (KafkaConsumer<String, String> c = consumer(null, isolation)) {
      List<TopicPartition> tps = new ArrayList<>();
      for (int p = 0; p < PARTITIONS; p++) tps.add(new TopicPartition(topic, p));
      c.assign(tps);
      c.seekToBeginning(tps);
      long deadline = System.nanoTime() + timeout.toNanos();
      while (System.nanoTime() < deadline
          && !last.entrySet().stream().allMatch(e -> got.get(e.getKey()).contains(e.getValue()))) {
        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) got.get(r.partition()).add(r.value());
      }
    }
    return got;
  }

  private static void stepProduce(String topic) {
    try (KafkaProducer<String, String> p = producer(prefix + "-tx")) {
      p.beginTransaction();
      sendAll(p, topic, TXN1);
      p.commitTransaction();
      p.beginTransaction();
      sendAll(p, topic, TXN2);
      p.abortTransaction();
      p.beginTransaction();
      sendAll(p, topic, TXN3);
      p.commitTransaction();
    }
    ok("produce", "commit 10, abort 5, commit 10");
  }

  private static void stepCtp() {
    String tin = prefix + "-in", tout = prefix + "-out", group = prefix + "-group";
    Map<TopicPartition, OffsetAndMetadata> ends = null;
    try (KafkaProducer<String, String> plain = producer(null);
        KafkaConsumer<String, String> c = consumer(group, "read_committed");
        KafkaProducer<String, String> p = producer(prefix + "-ctp")) {
      sendAll(plain, tin, ROUND1);
      c.subscribe(List.of(tin));
      for (int n = 1; n <= 2; n++) {
        List<Rec> recs = n == 1 ? ROUND1 : ROUND2;
        if (n == 2) sendAll(plain, tin, recs);
        p.beginTransaction();
        List<String> seen = new ArrayList<>();
        Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
        long deadline = System.nanoTime() + timeout.toNanos();
        while (seen.size() < recs.size() && System.nanoTime() < deadline) {
          for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(500))) {
            seen.add(r.value());
            p.send(new ProducerRecord<>(tout, r.partition(), r.key(), "out-" + r.value()));
            offsets.put(new TopicPartition(tin, r.partition()), new OffsetAndMetadata(r.offset() + 1));
          }
        }
        List<String> want = recs.stream().map(Rec::value).sorted().collect(Collectors.toList());
        Collections.sort(seen);
        if (!seen.equals(want)) {
          bad("ctp", "round " + n + " consumed " + seen);
          return;
        }
        // abortTransaction drops records not sent yet: flush, so the aborted round reaches the log
        p.flush();
        p.sendOffsetsToTransaction(offsets, c.groupMetadata());
        if (n == 1) {
          p.commitTransaction();
          ends = offsets;
        } else {
          p.abortTransaction();
        }
      }
      // a committed sentinel after the aborted round bounds the reads of the output
      p.beginTransaction();
      sendAll(p, tout, List.of(new Rec(0, SENTINEL), new Rec(1, SENTINEL)));
      p.commitTransaction();
    }
    Map<TopicPartition, OffsetAndMetadata> committed;
    try (KafkaConsumer<String, String> check = consumer(group, "read_committed")) {
      // read_committed: OffsetFetch with require_stable
      committed = check.committed(Set.of(new TopicPartition(tin, 0), new TopicPartition(tin, 1)));
    }
    Map<Integer, Long> got = new TreeMap<>();
    committed.forEach((tp, om) -> got.put(tp.partition(), om == null ? null : om.offset()));
    Map<Integer, Long> roundOne = new TreeMap<>();
    ends.forEach((tp, om) -> roundOne.put(tp.partition(), om.offset()));
    if (!got.equals(roundOne) || !roundOne.equals(Map.of(0, 5L, 1, 5L))) {
      bad("ctp", "group's committed offsets " + got + ", round 1 ended at " + roundOne);
      return;
    }
    Map<Integer, List<String>> wantOut = withSentinel(perPartition(transformed(ROUND1)));
    String why = compare(readUntil(tout, "read_committed", lastValues(wantOut)), wantOut);
    if (why != null) {
      bad("ctp", "output read_committed: " + why);
      return;
    }
    check("ctp", readUntil(tout, "read_uncommitted", lastValues(wantOut)),
        withSentinel(perPartition(transformed(ROUND1), transformed(ROUND2))),
        "committed offsets " + got + "; output holds round 1 only (both rounds read_uncommitted)");
  }

  private static void stepFencing() {
    String topic = prefix + "-fence", tid = prefix + "-fenced";
    String fenced;
    try (KafkaProducer<String, String> p1 = producer(tid)) {
      p1.beginTransaction();
      sendAll(p1, topic, List.of(new Rec(0, "f1")));
      try (KafkaProducer<String, String> p2 = producer(tid)) {
        try {
          p1.commitTransaction();
          bad("fencing", "the first producer's commit succeeded after a second one took its id");
          return;
        } catch (ProducerFencedException e) {
          fenced = e.getClass().getSimpleName();
        } catch (RuntimeException e) {
          bad("fencing", "first producer's commit failed with " + e + ", not ProducerFencedException");
          return;
        }
        p2.beginTransaction();
        sendAll(p2, topic, List.of(new Rec(0, "f2")));
        p2.commitTransaction();
      }
    }
    check("fencing", readUntil(topic, "read_committed", Map.of(0, "f2")),
        Map.of(0, List.of("f2"), 1, List.of()), "first commit threw " + fenced);
  }

  public static void main(String[] args) throws Exception {
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--bootstrap")) bootstrap = args[i + 1];
      else if (args[i].equals("--prefix")) prefix = args[i + 1];
      else if (args[i].equals("--group-protocol")) groupProtocol = args[i + 1];
    }
    if (bootstrap == null || prefix == null) {
      System.err.println("usage: TxnClient --bootstrap B --prefix P");
      System.exit(2);
    }
    String t = System.getenv("INTEROP_TIMEOUT");
    if (t != null) timeout = Duration.ofSeconds(Long.parseLong(t));
    String topic = prefix + "-t";
    try (Admin admin = Admin.create(Map.of(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap))) {
      admin.createTopics(List.of(topic, prefix + "-in", prefix + "-out", prefix + "-fence").stream()
          .map(n -> new NewTopic(n, PARTITIONS, (short) 1)).collect(Collectors.toList())).all().get();
    }
    if (!groupProtocol.equals("classic")) {
      stepCtp();
      return;
    }
    stepProduce(topic);
    Map<Integer, List<String>> committed = perPartition(TXN1, TXN3);
    check("read-committed", readUntil(topic, "read_committed", lastValues(committed)), committed,
        "20 committed records, none aborted");
    Map<Integer, List<String>> all = perPartition(TXN1, TXN2, TXN3);
    check("read-uncommitted", readUntil(topic, "read_uncommitted", lastValues(all)), all, "all 25");
    stepCtp();
    stepFencing();
  }
}
