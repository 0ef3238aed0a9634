package sluice.interop;

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Supplier;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ConfigEntry;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.TopicPartitionInfo;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.header.internals.RecordHeaders;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * Interop client on Apache Kafka's Java client (the reference implementation).
 *
 * <pre>
 *   produce --bootstrap B --topic T --codec C --count N [--partitions P]
 *   consume --bootstrap B --topic T --count N --codec-tag C [--no-headers] [--no-timestamps]
 *   admin   --bootstrap B --topic T
 * </pre>
 *
 * The producer runs with the client's defaults (so idempotence is on, acks=all). The consumer uses
 * assign() with no group.id. Record contract: interop/README.md.
 */
public final class InteropClient {
    static final int VALUE_LEN = 100;
    static final long TS_MOD = 1_000_000L;
    static final long TS_SLACK_MS = 2L * 24 * 3600 * 1000;
    static final Pattern KEY_RE = Pattern.compile("^k-(\\d+)$");
    static final long TIMEOUT_MS = (long) (Double.parseDouble(
            System.getenv().getOrDefault("INTEROP_TIMEOUT", "60")) * 1000);
    static final String CLIENT_ID = "interop-java";

    public static void main(String[] argv) throws Exception {
        if (argv.length < 1) {
            fail("usage: produce|consume|admin --bootstrap B --topic T ...");
        }
        Map<String, String> a = new HashMap<>();
        for (int i = 1; i < argv.length; i++) {
            String k = argv[i];
            if (!k.startsWith("--")) fail("unexpected argument " + k);
            if (k.equals("--no-headers") || k.equals("--no-timestamps")) {
                a.put(k, "true");
            } else {
                if (i + 1 >= argv.length) fail("missing value for " + k);
                a.put(k, argv[++i]);
            }
        }
        try {
            switch (argv[0]) {
                case "produce" -> produce(a);
                case "consume" -> consume(a);
                case "admin" -> admin(a);
                default -> fail("unknown command " + argv[0]);
            }
        } catch (Exception e) {
            e.printStackTrace();
            fail(e.toString());
        }
        System.exit(0);
    }

    static String req(Map<String, String> a, String k) {
        String v = a.get(k);
        if (v == null) fail("missing " + k);
        return v;
    }

    static void fail(String msg) {
        System.err.println("FAIL: " + msg);
        System.err.flush();
        System.exit(1);
    }

    static String key(int i) {
        return "k-" + i;
    }

    static String value(int i) {
        StringBuilder sb = new StringBuilder("v-" + i + "-");
        while (sb.length() < VALUE_LEN) sb.append('x');
        return sb.toString();
    }

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    static String s(byte[] x) {
        return x == null ? null : new String(x, StandardCharsets.UTF_8);
    }

    static <T> T waitFor(String what, Supplier<T> probe) throws InterruptedException {
        long deadline = System.currentTimeMillis() + 30_000;
        String last = null;
        while (System.currentTimeMillis() < deadline) {
            try {
                T r = probe.get();
                if (r != null) return r;
            } catch (Exception e) {
                last = e.toString();
            }
            Thread.sleep(200);
        }
        fail("timed out waiting for " + what + (last == null ? "" : " (last: " + last + ")"));
        return null;
    }

    static Admin admin(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.CLIENT_ID_CONFIG, CLIENT_ID);
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30000);
        return Admin.create(p);
    }

    static TopicDescription describeWith(Admin adm, String topic, int partitions) {
        try {
            TopicDescription d = adm.describeTopics(List.of(topic)).allTopicNames().get(10, TimeUnit.SECONDS).get(topic);
            if (d.partitions().size() != partitions) return null;
            for (TopicPartitionInfo p : d.partitions()) {
                if (p.leader() == null || p.leader().isEmpty()) return null;
            }
            return d;
        } catch (Exception e) {
            throw new RuntimeException(e);
        }
    }

    static void produce(Map<String, String> a) throws Exception {
        String bootstrap = req(a, "--bootstrap"), topic = req(a, "--topic");
        int count = Integer.parseInt(req(a, "--count"));
        String codec = a.getOrDefault("--codec", "none");
        int partitions = Integer.parseInt(a.getOrDefault("--partitions", "0"));
        if (partitions > 0) {
            try (Admin adm = admin(bootstrap)) {
                adm.createTopics(List.of(new NewTopic(topic, partitions, (short) 1))).all().get(30, TimeUnit.SECONDS);
                waitFor("topic " + topic + " with " + partitions + " led partitions", () -> describeWith(adm, topic, partitions));
            }
        }
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, CLIENT_ID);
        p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        // everything else left at the client's defaults: enable.idempotence=true, acks=all
        long base = (System.currentTimeMillis() / TS_MOD) * TS_MOD;
        Set<Integer> used = new TreeSet<>();
        try (KafkaProducer<byte[], byte[]> prod = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> fs = new ArrayList<>(count);
            for (int i = 0; i < count; i++) {
                RecordHeaders h = new RecordHeaders();
                h.add("h", b(Integer.toString(i)));
                fs.add(prod.send(new ProducerRecord<>(topic, null, base + i, b(key(i)), b(value(i)), h)));
            }
            prod.flush();
            for (int i = 0; i < count; i++) {
                try {
                    used.add(fs.get(i).get(TIMEOUT_MS, TimeUnit.MILLISECONDS).partition());
                } catch (Exception e) {
                    fail("record " + i + " not acknowledged: " + e);
                }
            }
        }
        System.out.println("OK java produced " + count + " records (codec " + codec + ") to " + topic + ", partitions used " + used);
    }

    static void consume(Map<String, String> a) throws Exception {
        String bootstrap = req(a, "--bootstrap"), topic = req(a, "--topic");
        int n = Integer.parseInt(req(a, "--count"));
        boolean expectHeaders = !a.containsKey("--no-headers");
        boolean expectTs = !a.containsKey("--no-timestamps");
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, CLIENT_ID);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        long now = System.currentTimeMillis();
        long deadline = now + TIMEOUT_MS;
        List<String> errors = new ArrayList<>();
        Set<Integer> seen = new HashSet<>();
        Map<Integer, long[]> last = new HashMap<>();
        long logRecords;
        int nparts;
        try (KafkaConsumer<byte[], byte[]> c = new KafkaConsumer<>(p)) {
            List<PartitionInfo> infos = waitFor("partitions of " + topic, () -> {
                List<PartitionInfo> l = c.partitionsFor(topic, Duration.ofSeconds(5));
                return (l == null || l.isEmpty()) ? null : l;
            });
            List<TopicPartition> tps = new ArrayList<>();
            for (PartitionInfo pi : infos) tps.add(new TopicPartition(topic, pi.partition()));
            nparts = tps.size();
            c.assign(tps);
            c.seekToBeginning(tps);
            while (seen.size() < n && System.currentTimeMillis() < deadline) {
                ConsumerRecords<byte[], byte[]> recs = c.poll(Duration.ofMillis(500));
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    check(r, n, expectHeaders, expectTs, now, seen, last, errors);
                }
            }
            Map<TopicPartition, Long> beg = c.beginningOffsets(tps, Duration.ofSeconds(30));
            Map<TopicPartition, Long> end = c.endOffsets(tps, Duration.ofSeconds(30));
            logRecords = 0;
            for (TopicPartition tp : tps) logRecords += end.get(tp) - beg.get(tp);
        }
        if (seen.size() != n) {
            List<Integer> missing = new ArrayList<>();
            for (int i = 0; i < n && missing.size() < 10; i++) if (!seen.contains(i)) missing.add(i);
            err(errors, "got " + seen.size() + " of " + n + " records; first missing: " + missing);
        }
        if (logRecords != n) {
            err(errors, "log holds " + logRecords + " offsets, expected exactly " + n + " (duplicates or strays?)");
        }
        if (!errors.isEmpty()) fail(String.join("; ", errors));
        System.out.println("OK java consumed " + n + " records from " + nparts + " partitions (codec tag "
                + a.getOrDefault("--codec-tag", "") + ")");
    }

    static void err(List<String> errors, String m) {
        if (errors.size() < 10) errors.add(m);
    }

    static void check(ConsumerRecord<byte[], byte[]> r, int n, boolean expectHeaders, boolean expectTs, long now,
                      Set<Integer> seen, Map<Integer, long[]> last, List<String> errors) {
        String where = "p" + r.partition() + "@" + r.offset();
        String k = s(r.key());
        Matcher m = KEY_RE.matcher(k == null ? "" : k);
        if (!m.matches()) {
            err(errors, where + ": bad key " + k);
            return;
        }
        int i = Integer.parseInt(m.group(1));
        if (i >= n) {
            err(errors, where + ": key index " + i + " out of range (count " + n + ")");
            return;
        }
        if (!seen.add(i)) err(errors, where + ": duplicate record " + i);
        String v = s(r.value());
        if (!value(i).equals(v)) err(errors, where + ": record " + i + " value " + v + " != " + value(i));
        List<String> hs = new ArrayList<>();
        for (Header h : r.headers()) hs.add(h.key() + "=" + s(h.value()));
        List<String> want = expectHeaders ? List.of("h=" + i) : List.of();
        if (!hs.equals(want)) err(errors, where + ": record " + i + " headers " + hs + " != " + want);
        long ts = r.timestamp();
        if (expectTs) {
            if (ts % TS_MOD != i || Math.abs(ts - now) > TS_SLACK_MS)
                err(errors, where + ": record " + i + " timestamp " + ts + " is not base+" + i);
        } else if (ts <= 0 || Math.abs(ts - now) > TS_SLACK_MS) {
            err(errors, where + ": record " + i + " implausible timestamp " + ts);
        }
        long[] prev = last.get(r.partition());
        if (prev != null) {
            if (r.offset() <= prev[0]) err(errors, where + ": offset not increasing (previous " + prev[0] + ")");
            if (i <= prev[1]) err(errors, where + ": record " + i + " after record " + prev[1] + ": per-partition order broken");
        }
        last.put(r.partition(), new long[]{r.offset(), i});
    }

    static void admin(Map<String, String> a) throws Exception {
        String bootstrap = req(a, "--bootstrap"), t = req(a, "--topic");
        try (Admin adm = admin(bootstrap)) {
            DescribeClusterResult cl = adm.describeCluster();
            Collection<Node> nodes = cl.nodes().get(30, TimeUnit.SECONDS);
            Node controller = cl.controller().get(30, TimeUnit.SECONDS);
            String clusterId = cl.clusterId().get(30, TimeUnit.SECONDS);
            Set<Integer> ids = new HashSet<>();
            for (Node nd : nodes) ids.add(nd.id());
            if (ids.isEmpty()) fail("describeCluster: no nodes");
            if (clusterId == null || clusterId.isEmpty()) fail("describeCluster: no cluster id");
            if (controller == null || controller.isEmpty()) fail("describeCluster: no controller");

            NewTopic nt = new NewTopic(t, 3, (short) 1).configs(Map.of("retention.ms", "3600000"));
            adm.createTopics(List.of(nt)).all().get(30, TimeUnit.SECONDS);
            waitFor(t + " listed", () -> {
                try {
                    return adm.listTopics().names().get(10, TimeUnit.SECONDS).contains(t) ? Boolean.TRUE : null;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
            TopicDescription d = waitFor(t + " with 3 led partitions", () -> describeWith(adm, t, 3));
            if (d.topicId() == null || d.topicId().toString().equals("AAAAAAAAAAAAAAAAAAAAAA"))
                fail("describeTopics: zero topic id");
            for (TopicPartitionInfo pi : d.partitions()) {
                if (!ids.contains(pi.leader().id()) || pi.replicas().size() != 1 || pi.isr().size() != 1)
                    fail("partition " + pi + ": leader not a broker, or replicas/isr not [leader]");
            }
            ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, t);
            Config cfg = adm.describeConfigs(List.of(res)).all().get(30, TimeUnit.SECONDS).get(res);
            ConfigEntry ret = cfg.get("retention.ms");
            if (ret == null || !"3600000".equals(ret.value()) || ret.source() != ConfigEntry.ConfigSource.DYNAMIC_TOPIC_CONFIG)
                fail("describeConfigs retention.ms = " + ret + ", expected 3600000 from DYNAMIC_TOPIC_CONFIG");
            ConfigEntry cp = cfg.get("cleanup.policy");
            if (cp == null || !"delete".equals(cp.value()))
                fail("describeConfigs cleanup.policy = " + cp + ", expected delete");
            ConfigResource bres = new ConfigResource(ConfigResource.Type.BROKER, Integer.toString(ids.iterator().next()));
            Config bcfg = adm.describeConfigs(List.of(bres)).all().get(30, TimeUnit.SECONDS).get(bres);
            if (bcfg.get("num.partitions") == null || bcfg.get("log.dirs") == null && bcfg.get("log.dir") == null)
                fail("describeConfigs broker: num.partitions / log.dirs missing");

            adm.createPartitions(Map.of(t, NewPartitions.increaseTo(4))).all().get(30, TimeUnit.SECONDS);
            waitFor(t + " with 4 partitions", () -> describeWith(adm, t, 4));

            adm.deleteTopics(List.of(t)).all().get(30, TimeUnit.SECONDS);
            waitFor(t + " gone from list", () -> {
                try {
                    return adm.listTopics().names().get(10, TimeUnit.SECONDS).contains(t) ? null : Boolean.TRUE;
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
            });
        }
        System.out.println("OK java admin: cluster create(3) list describe configs(topic,broker) create_partitions(4) delete on " + t);
    }

    private InteropClient() {
    }
}
