package main

// segmentio/kafka-go: Client for metadata and administration, Writer to
// produce, Reader to consume (by partition, and with a GroupID).

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

type kafkagoClient struct{}

func kgClient(broker string) *kafkago.Client {
	return &kafkago.Client{Addr: kafkago.TCP(broker), Timeout: 15 * time.Second}
}

func (k *kafkagoClient) metadata(ctx context.Context, broker, topic string) {
	cl := kgClient(broker)
	vs, err := cl.ApiVersions(ctx, &kafkago.ApiVersionsRequest{})
	if err == nil {
		err = vs.Error
	}
	if err != nil {
		fail("ApiVersions", err)
	}
	versions := map[string]any{}
	for _, k := range vs.ApiKeys {
		versions[strconv.Itoa(k.ApiKey)] = []int{k.MinVersion, k.MaxVersion}
	}
	emit("versions", map[string]any{"versions": versions})

	md, err := cl.Metadata(ctx, &kafkago.MetadataRequest{})
	if err != nil {
		fail("Metadata", err)
	}
	var brokers []map[string]any
	for _, b := range md.Brokers {
		brokers = append(brokers, map[string]any{"id": b.ID, "host": b.Host, "port": b.Port})
	}
	var topics []string
	for _, t := range md.Topics {
		topics = append(topics, t.Name)
	}
	sort.Strings(topics)
	emit("metadata", map[string]any{"brokers": brokers, "controller": md.Controller.ID, "cluster": md.ClusterID,
		"topics": topics})
	k.emitTopic(ctx, broker, "topic", topic)
}

// freshMetadata asks the broker itself: kafka-go's Transport keeps metadata
// for MetadataTTL (6 s), so a shared one answers from its cache.
func freshMetadata(ctx context.Context, broker string, topics []string) (*kafkago.MetadataResponse, error) {
	t := &kafkago.Transport{}
	defer t.CloseIdleConnections()
	cl := &kafkago.Client{Addr: kafkago.TCP(broker), Timeout: 15 * time.Second, Transport: t}
	return cl.Metadata(ctx, &kafkago.MetadataRequest{Topics: topics})
}

func (k *kafkagoClient) emitTopic(ctx context.Context, broker, step, topic string) {
	md, err := freshMetadata(ctx, broker, []string{topic})
	if err != nil {
		fail(step+": Metadata", err)
	}
	fields := map[string]any{"topic": topic, "listed": false}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		fields["listed"] = t.Error == nil
		fields["error"] = errString(t.Error)
		var ps []map[string]any
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].ID < t.Partitions[j].ID })
		for _, p := range t.Partitions {
			ps = append(ps, map[string]any{"partition": p.ID, "leader": p.Leader.ID, "replicas": brokerIDs(p.Replicas),
				"isr": brokerIDs(p.Isr), "error": errString(p.Error)})
		}
		fields["partitions"] = ps
	}
	emit(step, fields)
}

func brokerIDs(bs []kafkago.Broker) []int {
	ids := []int{}
	for _, b := range bs {
		ids = append(ids, b.ID)
	}
	return ids
}

func (k *kafkagoClient) admin(ctx context.Context, broker, topic string) {
	cl := kgClient(broker)
	create := func(step string, entries []kafkago.ConfigEntry) {
		r, err := cl.CreateTopics(ctx, &kafkago.CreateTopicsRequest{Topics: []kafkago.TopicConfig{{
			Topic: topic, NumPartitions: 2, ReplicationFactor: 1, ConfigEntries: entries}}})
		if err == nil {
			err = r.Errors[topic]
		}
		emit(step, map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})
	}
	create("create", []kafkago.ConfigEntry{{ConfigName: "retention.ms", ConfigValue: "3600000"},
		{ConfigName: "cleanup.policy", ConfigValue: "compact"}})
	create("create-again", nil)

	describe := func(step, key, want string) {
		describeUntil(step, key, want, func() (map[string]config, error) {
			r, err := cl.DescribeConfigs(ctx, &kafkago.DescribeConfigsRequest{Resources: []kafkago.DescribeConfigRequestResource{{
				ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic}}})
			if err == nil && len(r.Resources) != 1 {
				err = fmt.Errorf("%d resources answered", len(r.Resources))
			}
			if err != nil {
				return nil, err
			}
			configs := map[string]config{}
			for _, e := range r.Resources[0].ConfigEntries {
				v := e.ConfigValue
				configs[e.ConfigName] = config{&v, e.ConfigSource}
			}
			return configs, r.Resources[0].Error
		})
	}
	describe("describe", "retention.ms", "3600000")

	ia, err := cl.IncrementalAlterConfigs(ctx, &kafkago.IncrementalAlterConfigsRequest{
		Resources: []kafkago.IncrementalAlterConfigsRequestResource{{
			ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic,
			Configs: []kafkago.IncrementalAlterConfigsRequestConfig{
				{Name: "retention.ms", Value: "7200000", ConfigOperation: kafkago.ConfigOperationSet},
				{Name: "cleanup.policy", ConfigOperation: kafkago.ConfigOperationDelete}}}}})
	if err == nil {
		for _, r := range ia.Resources {
			err = firstErr(err, r.Error)
		}
	}
	emit("alter-incremental", map[string]any{"error": errString(err)})
	describe("describe-after-alter", "retention.ms", "7200000")

	aa, err := cl.AlterConfigs(ctx, &kafkago.AlterConfigsRequest{Resources: []kafkago.AlterConfigRequestResource{{
		ResourceType: kafkago.ResourceTypeTopic, ResourceName: topic,
		Configs: []kafkago.AlterConfigRequestConfig{{Name: "segment.bytes", Value: "1048576"}}}}})
	if err == nil {
		for _, e := range aa.Errors {
			err = firstErr(err, e)
		}
	}
	emit("alter-state", map[string]any{"error": errString(err)})
	describe("describe-after-state", "segment.bytes", "1048576")

	partitions := func(step string, count int32) {
		r, err := cl.CreatePartitions(ctx, &kafkago.CreatePartitionsRequest{Topics: []kafkago.TopicPartitionsConfig{{
			Name: topic, Count: count}}})
		if err == nil {
			err = r.Errors[topic]
		}
		emit(step, map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})
	}
	partitions("create-partitions", 5)
	partitions("create-partitions-fewer", 3)
	k.emitTopic(ctx, broker, "after-partitions", topic)

	dr, err := cl.DeleteTopics(ctx, &kafkago.DeleteTopicsRequest{Topics: []string{topic}})
	if err == nil {
		err = dr.Errors[topic]
	}
	emit("delete", map[string]any{"error": errString(err)})
	for i := 0; i < 50; i++ {
		md, err := freshMetadata(ctx, broker, nil)
		listed := false
		if err == nil {
			for _, t := range md.Topics {
				listed = listed || t.Name == topic
			}
		}
		if err == nil && !listed {
			emit("gone", map[string]any{"after_polls": i})
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit("gone", map[string]any{"error": "still listed after 5 s"})
}

// partitionOfMessage routes each message to the partition it names: the
// Writer has no manual partitioner of its own.
type partitionOfMessage struct{}

func (partitionOfMessage) Balance(m kafkago.Message, partitions ...int) int {
	return m.Partition
}

func kafkagoCodec(codec string) kafkago.Compression {
	switch codec {
	case "gzip":
		return kafkago.Gzip
	case "snappy":
		return kafkago.Snappy
	case "lz4":
		return kafkago.Lz4
	case "zstd":
		return kafkago.Zstd
	}
	return 0
}

func (k *kafkagoClient) produce(ctx context.Context, broker, topic, codec string, recs []record) []record {
	w := &kafkago.Writer{Addr: kafkago.TCP(broker), Topic: topic, Balancer: partitionOfMessage{},
		Compression: kafkagoCodec(codec), RequiredAcks: kafkago.RequireAll,
		// One call, one batch per partition: order within a partition is
		// the order of the call.
		BatchSize: len(recs), BatchBytes: 64 << 20, BatchTimeout: 50 * time.Millisecond, MaxAttempts: 3}
	defer w.Close()
	msgs := make([]kafkago.Message, len(recs))
	for i, r := range recs {
		m := kafkago.Message{Partition: int(r.Partition), Key: r.Key, Value: r.Value, Time: time.UnixMilli(r.TsMs)}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, kafkago.Header{Key: h.Key, Value: []byte(h.Value)})
		}
		msgs[i] = m
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		fail("WriteMessages "+codec, err)
	}
	return recs // the Writer does not say at which offsets
}

func fromKafkago(m kafkago.Message) record {
	r := record{Partition: int32(m.Partition), Offset: m.Offset, Key: m.Key, Value: m.Value,
		TsMs: m.Time.UnixMilli(), Headers: []header{}}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, header{h.Key, string(h.Value)})
	}
	return r
}

func (k *kafkagoClient) consume(ctx context.Context, broker, topic string, want map[int32]int) {
	var parts []int32
	for p := range want {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{broker}, Topic: topic, Partition: int(p),
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond})
		if err := r.SetOffset(kafkago.FirstOffset); err != nil {
			fail("SetOffset", err)
		}
		for n := 0; n < want[p]; n++ {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				fail(fmt.Sprintf("partition %d: %d of %d records", p, n, want[p]), err)
			}
			emit("got", fromKafkago(m).fields())
		}
		r.Close()
	}
	req := &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{}}
	for _, p := range parts {
		req.Topics[topic] = append(req.Topics[topic], kafkago.LastOffsetOf(int(p)))
	}
	lo, err := kgClient(broker).ListOffsets(ctx, req)
	if err != nil {
		fail("ListOffsets", err)
	}
	for _, po := range lo.Topics[topic] {
		if po.Error != nil {
			fail("ListOffsets", po.Error)
		}
		emit("end", map[string]any{"p": po.Partition, "offset": po.LastOffset})
	}
}

// kafkagoMember reads with FetchMessage and remembers the last message of
// each partition, committed when the member stops.
type kafkagoMember struct {
	name   string
	r      *kafkago.Reader
	mu     sync.Mutex
	last   map[int]kafkago.Message
	stop   context.CancelFunc
	done   chan struct{}
	errors int
}

func (k *kafkagoClient) member(ctx context.Context, broker, topic, group, name string, c *consumed) *kafkagoMember {
	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: []string{broker}, GroupID: group, Topic: topic,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 500 * time.Millisecond, StartOffset: kafkago.FirstOffset,
		SessionTimeout: 6 * time.Second, HeartbeatInterval: 500 * time.Millisecond,
		RebalanceTimeout: 10 * time.Second, JoinGroupBackoff: 200 * time.Millisecond,
		CommitInterval: 0, // CommitMessages commits synchronously
	})
	mctx, stop := context.WithCancel(ctx)
	m := &kafkagoMember{name: name, r: r, last: map[int]kafkago.Message{}, stop: stop, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for i := 0; i < 100000 && mctx.Err() == nil; i++ {
			msg, err := r.FetchMessage(mctx)
			if err != nil {
				if mctx.Err() == nil && m.errors < 20 {
					m.errors++
					emit("group-error", map[string]any{"member": name, "error": err.Error()})
				}
				continue
			}
			m.mu.Lock()
			m.last[msg.Partition] = msg
			m.mu.Unlock()
			c.add(name, fromKafkago(msg))
		}
	}()
	return m
}

func (k *kafkagoClient) stopMember(ctx context.Context, m *kafkagoMember, c *consumed) {
	m.stop()
	<-m.done
	var msgs []kafkago.Message
	for _, msg := range m.last {
		msgs = append(msgs, msg)
	}
	var err error
	if len(msgs) > 0 {
		err = m.r.CommitMessages(ctx, msgs...)
	}
	emit("committed", map[string]any{"member": m.name, "offsets": c.commits(m.name), "error": errString(err)})
}

func (k *kafkagoClient) closeMember(m *kafkagoMember) {
	if err := m.r.Close(); err != nil && !errors.Is(err, context.Canceled) {
		emit("group-error", map[string]any{"member": m.name, "error": err.Error()})
	}
}

func (k *kafkagoClient) groupShare(ctx context.Context, broker, topic, group string, partitions, n int) {
	c := newConsumed(n)
	a := k.member(ctx, broker, topic, group, "a", c)
	b := k.member(ctx, broker, topic, group, "b", c)
	stableGroup(ctx, broker, group, topic, partitions, 2)
	k.produce(ctx, broker, topic, "none", groupRecords("share", n, partitions))
	waitConsumed(ctx, c)
	k.stopMember(ctx, a, c)
	k.stopMember(ctx, b, c)
	k.closeMember(a)
	k.closeMember(b)
}

func (k *kafkagoClient) groupResume(ctx context.Context, broker, topic, group string, partitions, n int) {
	k.produce(ctx, broker, topic, "none", groupRecords("resume", n, partitions))
	c := newConsumed(n)
	a := k.member(ctx, broker, topic, group, "r", c)
	waitConsumed(ctx, c)
	time.Sleep(time.Second)
	k.stopMember(ctx, a, c)
	k.closeMember(a)
}
