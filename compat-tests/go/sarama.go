package main

// sarama: Client, ClusterAdmin, SyncProducer, Consumer and ConsumerGroup,
// with Config.Version at the newest Kafka version sarama knows, so that it
// picks the newest request versions it implements.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
)

type saramaClient struct {
	// idempotent makes the producer idempotent (InitProducerId, producer
	// ids and sequences): the sarama-idem client.
	idempotent bool
}

func saramaConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.MaxVersion
	cfg.ClientID = "runnel-compat-sarama"
	cfg.Metadata.Retry.Max = 10
	cfg.Metadata.Retry.Backoff = 200 * time.Millisecond
	cfg.Admin.Timeout = 10 * time.Second
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 15 * time.Second
	return cfg
}

func (s *saramaClient) metadata(ctx context.Context, broker, topic string) {
	cfg := saramaConfig()
	cl, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		fail("sarama.NewClient", err)
	}
	defer cl.Close()
	ctrl, err := cl.Controller()
	if err != nil {
		fail("Controller", err)
	}
	resp, err := ctrl.ApiVersions(&sarama.ApiVersionsRequest{Version: 3, ClientSoftwareName: "runnel-compat",
		ClientSoftwareVersion: "1"})
	if err != nil {
		fail("ApiVersions v3", err)
	}
	versions := map[string]any{}
	for _, k := range resp.ApiKeys {
		versions[strconv.Itoa(int(k.ApiKey))] = []int16{k.MinVersion, k.MaxVersion}
	}
	emit("versions", map[string]any{"node": ctrl.ID(), "versions": versions, "error_code": resp.ErrorCode,
		"config_version": cfg.Version.String()})

	var brokers []map[string]any
	for _, b := range cl.Brokers() {
		host, port, _ := strings.Cut(b.Addr(), ":")
		p, _ := strconv.Atoi(port)
		brokers = append(brokers, map[string]any{"id": b.ID(), "host": host, "port": p})
	}
	topics, err := cl.Topics()
	if err != nil {
		fail("Topics", err)
	}
	sort.Strings(topics)
	emit("metadata", map[string]any{"brokers": brokers, "controller": ctrl.ID(), "topics": topics})

	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		fail("NewClusterAdminFromClient", err)
	}
	s.emitTopic(adm, "topic", topic)
}

func (s *saramaClient) emitTopic(adm sarama.ClusterAdmin, step, topic string) {
	mds, err := adm.DescribeTopics([]string{topic})
	if err != nil {
		fail(step+": DescribeTopics", err)
	}
	fields := map[string]any{"topic": topic, "listed": false}
	for _, t := range mds {
		if t.Name != topic {
			continue
		}
		fields["listed"] = t.Err == sarama.ErrNoError
		fields["error"] = kerrString(t.Err)
		var ps []map[string]any
		sort.Slice(t.Partitions, func(i, j int) bool { return t.Partitions[i].ID < t.Partitions[j].ID })
		for _, p := range t.Partitions {
			ps = append(ps, map[string]any{"partition": p.ID, "leader": p.Leader, "replicas": p.Replicas,
				"isr": p.Isr, "error": kerrString(p.Err)})
		}
		fields["partitions"] = ps
	}
	emit(step, fields)
}

func kerrString(e sarama.KError) any {
	if e == sarama.ErrNoError {
		return nil
	}
	return e.Error()
}

func (s *saramaClient) admin(ctx context.Context, broker, topic string) {
	adm, err := sarama.NewClusterAdmin([]string{broker}, saramaConfig())
	if err != nil {
		fail("NewClusterAdmin", err)
	}
	defer adm.Close()
	retention, policy := "3600000", "compact"
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1,
		ConfigEntries: map[string]*string{"retention.ms": &retention, "cleanup.policy": &policy}}, false)
	emit("create", map[string]any{"error": errString(err)})
	err = adm.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false)
	emit("create-again", map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})

	describe := func(step, key, want string) {
		describeUntil(step, key, want, func() (map[string]config, error) {
			entries, err := adm.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic})
			configs := map[string]config{}
			for _, e := range entries {
				v := e.Value
				configs[e.Name] = config{&v, int8(e.Source)}
			}
			return configs, err
		})
	}
	describe("describe", "retention.ms", "3600000")

	longer := "7200000"
	err = adm.IncrementalAlterConfig(sarama.TopicResource, topic, map[string]sarama.IncrementalAlterConfigsEntry{
		"retention.ms":   {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &longer},
		"cleanup.policy": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
	}, false)
	emit("alter-incremental", map[string]any{"error": errString(err)})
	describe("describe-after-alter", "retention.ms", "7200000")

	segment := "1048576"
	err = adm.AlterConfig(sarama.TopicResource, topic, map[string]*string{"segment.bytes": &segment}, false)
	emit("alter-state", map[string]any{"error": errString(err)})
	describe("describe-after-state", "segment.bytes", "1048576")

	err = adm.CreatePartitions(topic, 5, nil, false)
	emit("create-partitions", map[string]any{"error": errString(err)})
	err = adm.CreatePartitions(topic, 3, nil, false)
	emit("create-partitions-fewer", map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})
	s.emitTopic(adm, "after-partitions", topic)

	err = adm.DeleteTopic(topic)
	emit("delete", map[string]any{"error": errString(err)})
	for i := 0; i < 50; i++ {
		topics, err := adm.ListTopics()
		if _, listed := topics[topic]; err == nil && !listed {
			emit("gone", map[string]any{"after_polls": i})
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit("gone", map[string]any{"error": "still listed after 5 s"})
}

func saramaCodec(codec string) sarama.CompressionCodec {
	switch codec {
	case "gzip":
		return sarama.CompressionGZIP
	case "snappy":
		return sarama.CompressionSnappy
	case "lz4":
		return sarama.CompressionLZ4
	case "zstd":
		return sarama.CompressionZSTD
	}
	return sarama.CompressionNone
}

func (s *saramaClient) produce(ctx context.Context, broker, topic, codec string, recs []record) []record {
	cfg := saramaConfig()
	cfg.Producer.Compression = saramaCodec(codec)
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Net.MaxOpenRequests = 1 // order within a partition across requests
	// One request carries them all, so each partition gets one batch.
	cfg.Producer.Flush.Messages = len(recs)
	cfg.Producer.Flush.Frequency = 50 * time.Millisecond
	chunk := len(recs)
	if s.idempotent {
		// Needs Version >= 0.11, acks WaitForAll and one request in flight,
		// set above. Sent ten records at a time, so that every partition
		// gets many batches whose sequences must follow on.
		cfg.Producer.Idempotent = true
		chunk = 10
		cfg.Producer.Flush.Messages = chunk
	}
	p, err := sarama.NewSyncProducer([]string{broker}, cfg)
	if err != nil {
		fail("NewSyncProducer", err)
	}
	defer p.Close()
	msgs := make([]*sarama.ProducerMessage, len(recs))
	for i, r := range recs {
		m := &sarama.ProducerMessage{Topic: topic, Partition: r.Partition, Timestamp: time.UnixMilli(r.TsMs)}
		if r.Key != nil {
			m.Key = sarama.ByteEncoder(r.Key)
		}
		if r.Value != nil {
			m.Value = sarama.ByteEncoder(r.Value)
		}
		for _, h := range r.Headers {
			m.Headers = append(m.Headers, sarama.RecordHeader{Key: []byte(h.Key), Value: []byte(h.Value)})
		}
		msgs[i] = m
	}
	for i := 0; i < len(msgs); i += chunk {
		if err := p.SendMessages(msgs[i:min(i+chunk, len(msgs))]); err != nil {
			fail("SendMessages "+codec, err)
		}
	}
	out := make([]record, len(recs))
	for i, r := range recs {
		r.Offset = msgs[i].Offset
		out[i] = r
	}
	return out
}

func fromSarama(m *sarama.ConsumerMessage) record {
	r := record{Partition: m.Partition, Offset: m.Offset, Key: m.Key, Value: m.Value,
		TsMs: m.Timestamp.UnixMilli(), Headers: []header{}}
	for _, h := range m.Headers {
		r.Headers = append(r.Headers, header{string(h.Key), string(h.Value)})
	}
	return r
}

func (s *saramaClient) consume(ctx context.Context, broker, topic string, want map[int32]int) {
	cfg := saramaConfig()
	cfg.Consumer.Return.Errors = true
	cl, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		fail("sarama.NewClient", err)
	}
	defer cl.Close()
	cons, err := sarama.NewConsumerFromClient(cl)
	if err != nil {
		fail("NewConsumerFromClient", err)
	}
	defer cons.Close()
	var parts []int32
	for p := range want {
		parts = append(parts, p)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	for _, p := range parts {
		pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			fail(fmt.Sprintf("ConsumePartition %d", p), err)
		}
		for n := 0; n < want[p]; {
			select {
			case m := <-pc.Messages():
				emit("got", fromSarama(m).fields())
				n++
			case e := <-pc.Errors():
				fail(fmt.Sprintf("partition %d", p), e)
			case <-ctx.Done():
				fail(fmt.Sprintf("partition %d: %d of %d records", p, n, want[p]), ctx.Err())
			}
		}
		pc.Close()
	}
	for _, p := range parts {
		end, err := cl.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			fail("GetOffset", err)
		}
		emit("end", map[string]any{"p": p, "offset": end})
	}
}

// saramaHandler is one member's ConsumerGroupHandler.
type saramaHandler struct {
	name  string
	topic string
	c     *consumed
}

func (h *saramaHandler) Setup(sess sarama.ConsumerGroupSession) error {
	emit("assigned", map[string]any{"member": h.name, "partitions": sess.Claims()[h.topic],
		"generation": sess.GenerationID()})
	return nil
}

// Cleanup runs once every claim of the session has stopped: the marked
// offsets are committed here, synchronously (auto-commit is off).
func (h *saramaHandler) Cleanup(sess sarama.ConsumerGroupSession) error {
	sess.Commit()
	emit("committed", map[string]any{"member": h.name, "offsets": h.c.commits(h.name)})
	return nil
}

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for {
		select {
		case m, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.c.add(h.name, fromSarama(m))
			sess.MarkMessage(m, "")
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (s *saramaClient) member(ctx context.Context, broker, topic, group, name string, c *consumed) (*sync.WaitGroup, sarama.ConsumerGroup) {
	cfg := saramaConfig()
	cfg.ClientID = "runnel-compat-sarama-" + name
	cfg.Consumer.Offsets.AutoCommit.Enable = false
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	cfg.Consumer.Group.Session.Timeout = 6 * time.Second
	cfg.Consumer.Group.Heartbeat.Interval = 500 * time.Millisecond
	cfg.Consumer.Return.Errors = true
	g, err := sarama.NewConsumerGroup([]string{broker}, group, cfg)
	if err != nil {
		fail("NewConsumerGroup", err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		h := &saramaHandler{name: name, topic: topic, c: c}
		for i := 0; i < 100 && ctx.Err() == nil; i++ {
			if err := g.Consume(ctx, []string{topic}, h); err != nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				emit("group-error", map[string]any{"member": name, "error": err.Error()})
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	go func() {
		defer wg.Done()
		for {
			select {
			case err, ok := <-g.Errors():
				if !ok {
					return
				}
				emit("group-error", map[string]any{"member": name, "error": err.Error()})
			case <-ctx.Done():
				return
			}
		}
	}()
	return &wg, g
}

// stopMember ends the member's session (its Cleanup commits) but keeps it
// in the group until closeMember, so that no rebalance happens in between.
func (s *saramaClient) stopMember(stop context.CancelFunc, wg *sync.WaitGroup) {
	stop()
	wg.Wait()
}

func (s *saramaClient) closeMember(g sarama.ConsumerGroup) {
	if err := g.Close(); err != nil { // leaves the group
		emit("group-error", map[string]any{"error": err.Error()})
	}
}

func (s *saramaClient) groupShare(ctx context.Context, broker, topic, group string, partitions, n int) {
	c := newConsumed(n)
	ctxA, stopA := context.WithCancel(ctx)
	ctxB, stopB := context.WithCancel(ctx)
	wa, a := s.member(ctxA, broker, topic, group, "a", c)
	wb, b := s.member(ctxB, broker, topic, group, "b", c)
	stableGroup(ctx, broker, group, topic, partitions, 2)
	s.produce(ctx, broker, topic, "none", groupRecords("share", n, partitions))
	waitConsumed(ctx, c)
	s.stopMember(stopA, wa)
	s.stopMember(stopB, wb)
	s.closeMember(a)
	s.closeMember(b)
}

func (s *saramaClient) groupResume(ctx context.Context, broker, topic, group string, partitions, n int) {
	s.produce(ctx, broker, topic, "none", groupRecords("resume", n, partitions))
	c := newConsumed(n)
	ctxA, stopA := context.WithCancel(ctx)
	wa, a := s.member(ctxA, broker, topic, group, "r", c)
	waitConsumed(ctx, c)
	time.Sleep(time.Second)
	s.stopMember(stopA, wa)
	s.closeMember(a)
}
