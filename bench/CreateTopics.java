// Create the benchmark's topics with Apache Kafka's own admin client (kafka-clients), the same way
// against every broker measured. bench/run.sh compiles it; by hand, with the source launcher:
//   java -cp 'interop/java/target/lib/*' bench/CreateTopics.java BOOTSTRAP PARTITIONS TOPIC...
// Prints "TOPIC partitions=N" for each topic as the broker describes it; exit 1 on any error.
import java.util.*;
import java.util.stream.*;
import org.apache.kafka.clients.admin.*;
import org.apache.kafka.common.errors.TopicExistsException;

public class CreateTopics {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        int partitions = Integer.parseInt(args[1]);
        List<String> topics = Arrays.asList(args).subList(2, args.length);
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        p.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        long t0 = System.currentTimeMillis();
        try (Admin admin = Admin.create(p)) {
            List<NewTopic> nts = topics.stream().map(t -> new NewTopic(t, partitions, (short) 1))
                .collect(Collectors.toList());
            for (Map.Entry<String, org.apache.kafka.common.KafkaFuture<Void>> e :
                     admin.createTopics(nts).values().entrySet()) {
                try {
                    e.getValue().get();
                } catch (java.util.concurrent.ExecutionException ex) {
                    if (!(ex.getCause() instanceof TopicExistsException)) throw ex;
                }
            }
            System.err.println("created in " + (System.currentTimeMillis() - t0) + " ms");
            // wait until every partition has a leader
            long deadline = System.currentTimeMillis() + 30000;
            while (true) {
                Map<String, TopicDescription> d = admin.describeTopics(topics).allTopicNames().get();
                boolean ok = d.values().stream().allMatch(td -> td.partitions().size() == partitions
                    && td.partitions().stream().allMatch(pi -> pi.leader() != null && pi.leader().id() >= 0));
                if (ok || System.currentTimeMillis() > deadline) {
                    for (String t : topics) {
                        System.out.println(t + " partitions=" + d.get(t).partitions().size());
                    }
                    System.err.println("described in " + (System.currentTimeMillis() - t0) + " ms");
                    if (!ok) { System.err.println("topics not ready with leaders in 30 s"); System.exit(1); }
                    break;
                }
                Thread.sleep(200);
            }
        }
    }
}
