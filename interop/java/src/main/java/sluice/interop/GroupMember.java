package sluice.interop;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

/**
 * One consumer-group member on the Java client's KafkaConsumer (classic group protocol, the
 * client's default assignors: range, cooperative-sticky), driven by interop/groups/client_group.sh.
 *
 * <pre>
 *   GroupMember --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]
 * </pre>
 *
 * Subscribed to T with autocommit off: after every poll it commits the offsets after the records
 * it got (commitSync), and the rebalance listener commits anything read and not yet committed
 * before partitions are given up. Prints on stdout the lines of interop/go/cmd/franzgroup:
 * config, assigned GEN P,P..., record P O KEY, committed P O, error WHAT, left, closed. SIGTERM
 * (or --max N records read and committed): close, which sends LeaveGroup; exit 0.
 *
 * "left": the client reports its LeaveGroup answer only in its log; run with
 * -Dlog4j2.configurationFile=interop/groups/log4j2-member.properties -Dmember.coordlog=FILE, which
 * writes the coordinator's debug log to FILE, and after close() this reads it.
 */
public final class GroupMember {
    private static final Object OUT = new Object();

    static void say(String line) {
        synchronized (OUT) {
            System.out.println(line);
            System.out.flush();
        }
    }

    public static void main(String[] argv) throws Exception {
        Map<String, String> a = new HashMap<>();
        for (int i = 0; i + 1 < argv.length; i += 2) a.put(argv[i], argv[i + 1]);
        String bootstrap = a.get("--bootstrap"), topic = a.get("--topic"), group = a.get("--group");
        if (bootstrap == null || topic == null || group == null || argv.length % 2 != 0) {
            System.err.println("FAIL: usage: GroupMember --bootstrap B --topic T --group G [--session-timeout-ms MS] [--max N]");
            System.exit(1);
        }
        int session = Integer.parseInt(a.getOrDefault("--session-timeout-ms", "45000"));
        long max = Long.parseLong(a.getOrDefault("--max", "0"));

        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "interop-java-group");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, String.valueOf(session));
        p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p);
        // SIGTERM: wake the consumer up out of poll; main then closes it and exits 0
        final boolean[] stopping = {false};
        sun.misc.Signal.handle(new sun.misc.Signal("TERM"), sig -> {
            synchronized (stopping) {
                stopping[0] = true;
            }
            consumer.wakeup();
        });

        List<?> assignors = new ConsumerConfig(p).getList(ConsumerConfig.PARTITION_ASSIGNMENT_STRATEGY_CONFIG);
        String names = assignors.stream().map(o -> {
            String s = o.toString();
            return s.substring(s.lastIndexOf('.') + 1);
        }).collect(Collectors.joining(","));
        say("config assignors=" + names + " protocol=" + new ConsumerConfig(p).getString(ConsumerConfig.GROUP_PROTOCOL_CONFIG)
                + " session.timeout=" + session);

        TreeSet<Integer> owned = new TreeSet<>();
        Map<TopicPartition, Long> pending = new TreeMap<>((x, y) -> Integer.compare(x.partition(), y.partition()));
        String[] lastShown = {null};
        Runnable show = () -> {
            String list = owned.isEmpty() ? "-" : owned.stream().map(String::valueOf).collect(Collectors.joining(","));
            String line = "assigned " + consumer.groupMetadata().generationId() + " " + list;
            if (!line.equals(lastShown[0])) {
                lastShown[0] = line;
                say(line);
            }
        };
        // commit the pending offsets of these partitions (all if null)
        java.util.function.Consumer<Collection<TopicPartition>> commit = parts -> {
            Map<TopicPartition, OffsetAndMetadata> offsets = new TreeMap<>((x, y) -> Integer.compare(x.partition(), y.partition()));
            pending.forEach((tp, o) -> {
                if (parts == null || parts.contains(tp)) offsets.put(tp, new OffsetAndMetadata(o));
            });
            if (offsets.isEmpty()) return;
            try {
                consumer.commitSync(offsets);
            } catch (WakeupException e) {
                throw e;
            } catch (Exception e) {
                say("error OffsetCommit " + offsets + ": " + e);
                return;
            }
            offsets.forEach((tp, o) -> {
                say("committed " + tp.partition() + " " + o.offset());
                pending.remove(tp);
            });
        };

        consumer.subscribe(List.of(topic), new ConsumerRebalanceListener() {
            @Override
            public void onPartitionsRevoked(Collection<TopicPartition> revoked) {
                commit.accept(revoked);
                for (TopicPartition tp : revoked) if (tp.topic().equals(topic)) owned.remove(tp.partition());
                show.run();
            }

            @Override
            public void onPartitionsAssigned(Collection<TopicPartition> assigned) {
                for (TopicPartition tp : assigned) if (tp.topic().equals(topic)) owned.add(tp.partition());
                show.run();
            }

            @Override
            public void onPartitionsLost(Collection<TopicPartition> lost) {
                say("error partitions lost " + lost);
                for (TopicPartition tp : lost) owned.remove(tp.partition());
                show.run();
            }
        });

        long read = 0;
        try {
            while (max == 0 || read < max) {
                synchronized (stopping) {
                    if (stopping[0]) break;
                }
                ConsumerRecords<byte[], byte[]> recs = consumer.poll(Duration.ofMillis(200));
                for (ConsumerRecord<byte[], byte[]> r : recs) {
                    if (max > 0 && read >= max) break;
                    String key = r.key() == null ? "" : new String(r.key(), StandardCharsets.UTF_8);
                    say("record " + r.partition() + " " + r.offset() + " " + key);
                    pending.put(new TopicPartition(r.topic(), r.partition()), r.offset() + 1);
                    read++;
                }
                commit.accept(null);
            }
        } catch (WakeupException e) {
            // SIGTERM; anything read and not committed is committed by the listener on close
        }
        try {
            consumer.close();
        } catch (Exception e) {
            say("error close: " + e);
        }
        String log = System.getProperty("member.coordlog");
        if (log != null) {
            String text = "";
            try {
                text = Files.readString(Path.of(log));
            } catch (IOException e) {
                say("error reading the coordinator log " + log + ": " + e);
            }
            // lines start with the client's log context: "[Consumer clientId=..., groupId=...] "
            for (String line : text.split("\n")) {
                if (line.matches(".*\\] LeaveGroup response with .* returned successfully: .*")) say("left");
                else if (line.matches(".*\\] LeaveGroup request with .* failed with error: .*")) say("error " + line);
            }
        }
        say("closed");
        System.exit(0);
    }
}
