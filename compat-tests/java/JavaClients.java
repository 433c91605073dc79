// JavaClients drives a Kafka broker with the Java client (kafka-clients 4.4):
// transactional and idempotent producers, and consumers at either isolation
// level. compat-tests/java_clients.py compiles it against Kafka's jars and
// decides what is right from what it prints.
//
//   JavaClients txn-produce BROKER TOPIC PARTITIONS TXN_ID PLAN PER_TXN
//       one transactional producer; PLAN has a letter per transaction, c to
//       commit and a to abort; each sends PER_TXN records round robin over
//       the partitions (aborted ones are flushed first, so they reach the log)
//   JavaClients zombie BROKER TOPIC TXN_ID
//       a producer with an open transaction is fenced by a second one with the
//       same transactional id, which commits; the first then sends and commits
//       (and aborts, when the commit failed with an abortable error); then the
//       same for a producer fenced between transactions (TXN_ID-idle)
//   JavaClients idempotent-produce BROKER TOPIC PARTITIONS N
//       the default producer (idempotent, acks=all) sends N records
//   JavaClients consume BROKER TOPIC PARTITIONS ISOLATION
//       reads every partition from its start up to its end offset as the
//       consumer sees it (the last stable offset for read_committed)
//
// Everything seen is one JSON object per line on stdout; logging goes to
// stderr. A step that cannot go on prints {"event":"error",...} and exits 1.
// Every wait is bounded.

import java.lang.reflect.Field;
import java.lang.reflect.Method;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class JavaClients {
    static final Duration CALL_TIMEOUT = Duration.ofSeconds(30);
    static final long STEP_TIMEOUT_MS = 45_000;
    static final long STEP_DEADLINE_MS = System.currentTimeMillis() + STEP_TIMEOUT_MS;

    public static void main(String[] args) throws Exception {
        if (args.length < 3) {
            usage();
        }
        String step = args[0];
        try {
            switch (step) {
                case "txn-produce" -> {
                    need(args, 7);
                    txnProduce(args[1], args[2], Integer.parseInt(args[3]), args[4], args[5],
                            Integer.parseInt(args[6]));
                }
                case "zombie" -> {
                    need(args, 4);
                    zombie(args[1], args[2], args[3]);
                }
                case "idempotent-produce" -> {
                    need(args, 5);
                    idempotentProduce(args[1], args[2], Integer.parseInt(args[3]), Integer.parseInt(args[4]));
                }
                case "consume" -> {
                    need(args, 5);
                    consume(args[1], args[2], Integer.parseInt(args[3]), args[4]);
                }
                default -> usage();
            }
        } catch (Exception e) {
            emit("error", "what", step, "error", String.valueOf(e), "classes", causes(e));
            System.out.flush();
            System.exit(1);
        }
        emit("done");
        System.out.flush();
        // The clients' threads are closed; exit without waiting on anything else.
        System.exit(0);
    }

    static void usage() {
        System.err.println("usage: JavaClients txn-produce|zombie|idempotent-produce|consume BROKER TOPIC ...");
        System.exit(2);
    }

    static void need(String[] args, int n) {
        if (args.length != n) {
            usage();
        }
    }

    // ---------------------------------------------------------------- output

    static synchronized void emit(String event, Object... kv) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("event", event);
        for (int i = 0; i + 1 < kv.length; i += 2) {
            m.put((String) kv[i], kv[i + 1]);
        }
        System.out.println(json(m));
    }

    static String json(Object o) {
        if (o == null) {
            return "null";
        }
        if (o instanceof Number || o instanceof Boolean) {
            return o.toString();
        }
        if (o instanceof Map<?, ?> m) {
            StringBuilder b = new StringBuilder("{");
            for (Map.Entry<?, ?> e : m.entrySet()) {
                if (b.length() > 1) {
                    b.append(',');
                }
                b.append(json(String.valueOf(e.getKey()))).append(':').append(json(e.getValue()));
            }
            return b.append('}').toString();
        }
        if (o instanceof List<?> l) {
            StringBuilder b = new StringBuilder("[");
            for (Object e : l) {
                if (b.length() > 1) {
                    b.append(',');
                }
                b.append(json(e));
            }
            return b.append(']').toString();
        }
        String s = o.toString();
        StringBuilder b = new StringBuilder("\"");
        for (int i = 0; i < s.length(); i++) {
            char c = s.charAt(i);
            switch (c) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
                default -> {
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
                }
            }
        }
        return b.append('"').toString();
    }

    /** The class names along the exception's cause chain, outermost first. */
    static List<String> causes(Throwable t) {
        List<String> out = new ArrayList<>();
        for (int i = 0; t != null && i < 10; i++, t = t.getCause()) {
            out.add(t.getClass().getName());
        }
        return out;
    }

    static Map<String, Object> outcome(Throwable t) {
        Map<String, Object> m = new LinkedHashMap<>();
        m.put("ok", t == null);
        m.put("classes", causes(t));
        m.put("message", t == null ? null : String.valueOf(t.getMessage()));
        return m;
    }

    // --------------------------------------------------------------- clients

    static Properties producerProps(String broker, String clientId) {
        Properties p = new Properties();
        p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
        p.put(ProducerConfig.CLIENT_ID_CONFIG, clientId);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "15000");
        return p;
    }

    static KafkaProducer<byte[], byte[]> transactional(String broker, String clientId, String txnId) {
        Properties p = producerProps(broker, clientId);
        p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txnId);
        p.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "60000");
        return new KafkaProducer<>(p);
    }

    /**
     * Whether the producer's transaction manager runs KIP-890's transaction
     * version 2, which it picks from the broker's finalized features. Read
     * through reflection (TransactionManager is internal); null if unknown.
     */
    static Object transactionV2(KafkaProducer<?, ?> producer) {
        try {
            Field f = KafkaProducer.class.getDeclaredField("transactionManager");
            f.setAccessible(true);
            Object tm = f.get(producer);
            Method m = tm.getClass().getMethod("isTransactionV2Enabled");
            return m.invoke(tm);
        } catch (Exception | LinkageError e) {
            return null;
        }
    }

    static byte[] bytes(String s) {
        return s.getBytes(java.nio.charset.StandardCharsets.UTF_8);
    }

    static RecordMetadata await(Future<RecordMetadata> f) throws Exception {
        return f.get(CALL_TIMEOUT.toMillis(), TimeUnit.MILLISECONDS);
    }

    // ----------------------------------------------------------------- steps

    static void txnProduce(String broker, String topic, int partitions, String txnId, String plan, int perTxn)
            throws Exception {
        try (KafkaProducer<byte[], byte[]> producer = transactional(broker, "runnel-compat-java-txn", txnId)) {
            producer.initTransactions();
            emit("initialized", "txn_id", txnId);
            for (int n = 0; n < plan.length(); n++) {
                boolean commit = plan.charAt(n) == 'c';
                producer.beginTransaction();
                List<Future<RecordMetadata>> sent = new ArrayList<>();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < perTxn; i++) {
                    String value = String.format("j%d-r%d", n, i);
                    values.add(value);
                    sent.add(producer.send(new ProducerRecord<>(topic, i % partitions, bytes("k" + i),
                            bytes(value))));
                }
                if (commit) {
                    producer.commitTransaction();
                } else {
                    producer.flush();
                }
                for (int i = 0; i < sent.size(); i++) {
                    RecordMetadata md = await(sent.get(i));
                    emit("sent", "txn", n, "commit", commit, "p", md.partition(), "o", md.offset(),
                            "value", values.get(i));
                }
                if (!commit) {
                    producer.abortTransaction();
                }
                emit("ended", "txn", n, "commit", commit);
            }
            emit("transaction-version", "v2", transactionV2(producer));
        }
    }

    /** What one call of the fenced producer did: returns its failure, or null. */
    interface Call {
        void run() throws Exception;
    }

    static Throwable attempt(Call c) {
        try {
            c.run();
            return null;
        } catch (Exception e) {
            return e;
        }
    }

    static void zombie(String broker, String topic, String txnId) throws Exception {
        fenced(broker, topic, txnId, "zombie", true);
        fenced(broker, topic, txnId + "-idle", "idle", false);
    }

    /**
     * A producer is fenced by a new one with its transactional id, which
     * commits; the old one then sends, commits and, if told to, aborts. With
     * isOpen, the old one had a transaction under way when it was fenced
     * (the coordinator aborts it); else it starts one afterwards. Values
     * start with the transactional id.
     */
    static void fenced(String broker, String topic, String txnId, String name, boolean isOpen) throws Exception {
        KafkaProducer<byte[], byte[]> old = transactional(broker, "runnel-compat-java-" + name, txnId);
        try {
            old.initTransactions();
            if (isOpen) {
                old.beginTransaction();
                for (int i = 0; i < 4; i++) {
                    await(old.send(new ProducerRecord<>(topic, i % 2, null, bytes(txnId + "-" + i))));
                }
                emit(name + "-open", "records", 4);
            }

            try (KafkaProducer<byte[], byte[]> fresh = transactional(broker, "runnel-compat-java-fresh", txnId)) {
                fresh.initTransactions(); // fences the old one and aborts its transaction
                emit(name + "-fenced");
                fresh.beginTransaction();
                for (int i = 0; i < 2; i++) {
                    await(fresh.send(new ProducerRecord<>(topic, i % 2, null, bytes(txnId + "-fresh-" + i))));
                }
                fresh.commitTransaction();
                emit(name + "-fresh-committed", "v2", transactionV2(fresh));
            }

            // The old producer carries on as if nothing happened.
            if (!isOpen) {
                old.beginTransaction();
            }
            Throwable send = attempt(() -> await(old.send(new ProducerRecord<>(topic, 0, null,
                    bytes(txnId + "-late")))));
            emit(name + "-send", "outcome", outcome(send));
            Throwable commit = attempt(old::commitTransaction);
            emit(name + "-commit", "outcome", outcome(commit));
            if (commit != null && !hasCause(commit, "org.apache.kafka.common.errors.ProducerFencedException")) {
                // An abortable error: the application aborts, as the Javadoc's loop does.
                Throwable abort = attempt(old::abortTransaction);
                emit(name + "-abort", "outcome", outcome(abort));
            }
        } finally {
            old.close(Duration.ofSeconds(5));
        }
    }

    static boolean hasCause(Throwable t, String className) {
        return causes(t).contains(className);
    }

    static void idempotentProduce(String broker, String topic, int partitions, int n) throws Exception {
        Properties p = producerProps(broker, "runnel-compat-java-idempotent");
        // enable.idempotence, max.in.flight 5 and retries are the defaults.
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, i % partitions, bytes("k" + i),
                        bytes("i-" + i))));
            }
            producer.flush();
            for (int i = 0; i < n; i++) {
                RecordMetadata md = await(sent.get(i));
                emit("sent", "p", md.partition(), "o", md.offset(), "value", "i-" + i);
            }
        }
    }

    static void consume(String broker, String topic, int partitions, String isolation) throws Exception {
        Properties p = new Properties();
        p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, broker);
        p.put(ConsumerConfig.CLIENT_ID_CONFIG, "runnel-compat-java-" + isolation);
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(p)) {
            List<TopicPartition> tps = new ArrayList<>();
            for (int i = 0; i < partitions; i++) {
                tps.add(new TopicPartition(topic, i));
            }
            consumer.assign(tps);
            consumer.seekToBeginning(tps);
            // For read_committed the end is the last stable offset.
            Map<TopicPartition, Long> ends = consumer.endOffsets(tps, CALL_TIMEOUT);
            Map<Integer, Long> endByPartition = new HashMap<>();
            for (TopicPartition tp : tps) {
                endByPartition.put(tp.partition(), ends.get(tp));
            }
            int polls = 0;
            while (true) {
                boolean reached = true;
                for (TopicPartition tp : tps) {
                    reached &= consumer.position(tp, CALL_TIMEOUT) >= ends.get(tp);
                }
                if (reached) {
                    break;
                }
                if (System.currentTimeMillis() > STEP_DEADLINE_MS) {
                    throw new IllegalStateException("the end offsets " + endByPartition
                            + " not reached after " + polls + " polls");
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(200))) {
                    emit("got", "p", r.partition(), "o", r.offset(),
                            "value", r.value() == null ? null : new String(r.value(),
                                    java.nio.charset.StandardCharsets.UTF_8));
                }
                polls++;
            }
            for (TopicPartition tp : tps) {
                emit("end", "p", tp.partition(), "offset", ends.get(tp), "position",
                        consumer.position(tp, CALL_TIMEOUT));
            }
        }
    }
}
