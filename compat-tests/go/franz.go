package main

// franz-go: kgo for producing and consuming, kadm for administration.

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

type franzClient struct {
	// idempotent keeps kgo's default idempotent producer (InitProducerId,
	// producer ids and sequences) instead of turning it off.
	idempotent bool
}

func (f *franzClient) opts(broker string, extra ...kgo.Opt) []kgo.Opt {
	opts := []kgo.Opt{kgo.SeedBrokers(broker), kgo.ClientID("runnel-compat-franz"),
		kgo.RetryTimeout(20 * time.Second)}
	if !f.idempotent {
		// kgo writes idempotently by default, which needs InitProducerId.
		// Idempotent variants are the franz-idem client (see go_clients.py)
		// until the broker has InitProducerId everywhere; with idempotence off,
		// one request in flight per broker keeps each partition in order.
		opts = append(opts, kgo.DisableIdempotentWrite(), kgo.MaxProduceRequestsInflightPerBroker(1))
	}
	return append(opts, extra...)
}

func (f *franzClient) admin(ctx context.Context, broker, topic string) {
	cl, err := kgo.NewClient(f.opts(broker)...)
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	retention, policy := "3600000", "compact"
	created, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"retention.ms": &retention, "cleanup.policy": &policy}, topic)
	emit("create", map[string]any{"error": errString(firstErr(err, created.Err)), "partitions": created.NumPartitions})
	_, err = adm.CreateTopic(ctx, 2, 1, nil, topic)
	emit("create-again", map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})

	describe := func(step, key, want string) {
		describeUntil(step, key, want, func() (map[string]config, error) {
			rcs, err := adm.DescribeTopicConfigs(ctx, topic)
			if err == nil && len(rcs) != 1 {
				err = fmt.Errorf("%d resources answered", len(rcs))
			}
			if err != nil {
				return nil, err
			}
			configs := map[string]config{}
			for _, c := range rcs[0].Configs {
				configs[c.Key] = config{c.Value, int8(c.Source)}
			}
			return configs, rcs[0].Err
		})
	}
	describe("describe", "retention.ms", "3600000")

	longer := "7200000"
	alt, err := adm.AlterTopicConfigs(ctx, []kadm.AlterConfig{{Op: kadm.SetConfig, Name: "retention.ms", Value: &longer},
		{Op: kadm.DeleteConfig, Name: "cleanup.policy"}}, topic)
	emit("alter-incremental", map[string]any{"error": errString(firstErr(err, alterErr(alt)))})
	describe("describe-after-alter", "retention.ms", "7200000")

	// The legacy AlterConfigs replaces the whole set of topic configs.
	segment := "1048576"
	alt, err = adm.AlterTopicConfigsState(ctx, []kadm.AlterConfig{{Name: "segment.bytes", Value: &segment}}, topic)
	emit("alter-state", map[string]any{"error": errString(firstErr(err, alterErr(alt)))})
	describe("describe-after-state", "segment.bytes", "1048576")

	cp, err := adm.UpdatePartitions(ctx, 5, topic)
	var cpErr error
	if err == nil {
		r, ok := cp[topic]
		if !ok {
			cpErr = errors.New("no answer for the topic")
		} else {
			cpErr = r.Err
		}
	}
	emit("create-partitions", map[string]any{"error": errString(firstErr(err, cpErr))})
	cp, err = adm.UpdatePartitions(ctx, 3, topic)
	if err == nil {
		err = cp[topic].Err
	}
	emit("create-partitions-fewer", map[string]any{"error": errString(err), "kafka_error": kafkaCode(err)})
	f.emitTopic(ctx, adm, "after-partitions", topic)

	del, err := adm.DeleteTopics(ctx, topic)
	if err == nil {
		err = del[topic].Err
	}
	emit("delete", map[string]any{"error": errString(err)})
	// Kafka applies a deletion to its metadata just after answering.
	for i := 0; i < 50; i++ {
		md, err := adm.Metadata(ctx)
		if err == nil && !md.Topics.Has(topic) {
			emit("gone", map[string]any{"after_polls": i})
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit("gone", map[string]any{"error": "still listed after 5 s"})
}

func alterErr(rs kadm.AlterConfigsResponses) error {
	for _, r := range rs {
		if r.Err != nil {
			return r.Err
		}
	}
	if len(rs) == 0 {
		return errors.New("no answer")
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func (f *franzClient) emitTopic(ctx context.Context, adm *kadm.Client, step, topic string) {
	md, err := adm.Metadata(ctx, topic)
	if err != nil {
		fail(step+": metadata", err)
	}
	t, ok := md.Topics[topic]
	fields := map[string]any{"topic": topic, "listed": ok && t.Err == nil}
	if ok {
		fields["error"] = errString(t.Err)
		fields["partitions"] = franzPartitions(t)
	}
	emit(step, fields)
}

func franzPartitions(t kadm.TopicDetail) []map[string]any {
	var ps []map[string]any
	for _, p := range t.Partitions.Sorted() {
		ps = append(ps, map[string]any{"partition": p.Partition, "leader": p.Leader,
			"replicas": p.Replicas, "isr": p.ISR, "error": errString(p.Err)})
	}
	return ps
}

func (f *franzClient) metadata(ctx context.Context, broker, topic string) {
	cl, err := kgo.NewClient(f.opts(broker)...)
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	vs, err := adm.ApiVersions(ctx)
	if err != nil {
		fail("ApiVersions", err)
	}
	for _, v := range vs.Sorted() {
		if v.Err != nil {
			fail("ApiVersions from a broker", v.Err)
		}
		// What kgo will use per key: the broker's max capped at kmsg's own.
		versions := map[string]any{}
		v.EachKeySorted(func(key, min, max int16) {
			use := max
			if req := kmsg.RequestForKey(key); req != nil && req.MaxVersion() < use {
				use = req.MaxVersion()
			}
			versions[strconv.Itoa(int(key))] = []int16{min, max, use}
		})
		emit("versions", map[string]any{"node": v.NodeID, "versions": versions, "guess": v.VersionGuess()})
	}

	md, err := adm.Metadata(ctx)
	if err != nil {
		fail("Metadata", err)
	}
	var brokers []map[string]any
	for _, b := range md.Brokers {
		brokers = append(brokers, map[string]any{"id": b.NodeID, "host": b.Host, "port": b.Port})
	}
	topics := md.Topics.Names()
	sort.Strings(topics)
	emit("metadata", map[string]any{"brokers": brokers, "controller": md.Controller, "cluster": md.Cluster,
		"topics": topics})
	f.emitTopic(ctx, adm, "topic", topic)
}

func franzCodec(codec string) kgo.CompressionCodec {
	switch codec {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}

func toKgo(r record) *kgo.Record {
	kr := &kgo.Record{Key: r.Key, Value: r.Value, Partition: r.Partition, Timestamp: time.UnixMilli(r.TsMs)}
	for _, h := range r.Headers {
		kr.Headers = append(kr.Headers, kgo.RecordHeader{Key: h.Key, Value: []byte(h.Value)})
	}
	return kr
}

func fromKgo(kr *kgo.Record) record {
	r := record{Partition: kr.Partition, Offset: kr.Offset, Key: kr.Key, Value: kr.Value,
		TsMs: kr.Timestamp.UnixMilli(), Headers: []header{}}
	for _, h := range kr.Headers {
		r.Headers = append(r.Headers, header{h.Key, string(h.Value)})
	}
	return r
}

func (f *franzClient) produce(ctx context.Context, broker, topic, codec string, recs []record) []record {
	cl, err := kgo.NewClient(f.opts(broker, kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerBatchCompression(franzCodec(codec)),
		kgo.RequiredAcks(kgo.AllISRAcks()))...)
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	krs := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		krs[i] = toKgo(r)
	}
	if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
		fail("ProduceSync "+codec, err)
	}
	out := make([]record, len(recs))
	for i, r := range recs {
		r.Offset = krs[i].Offset
		out[i] = r
	}
	return out
}

func (f *franzClient) consume(ctx context.Context, broker, topic string, want map[int32]int) {
	starts := map[int32]kgo.Offset{}
	for p := range want {
		starts[p] = kgo.NewOffset().AtStart()
	}
	cl, err := kgo.NewClient(f.opts(broker, kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchMaxWait(500*time.Millisecond))...)
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	got := map[int32]int{}
	remaining := 0
	for _, n := range want {
		remaining += n
	}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consume", fmt.Errorf("%d records still missing: %w", remaining, ctx.Err()))
		}
		fs.EachError(func(t string, p int32, err error) { fail(fmt.Sprintf("fetch %s/%d", t, p), err) })
		fs.EachRecord(func(kr *kgo.Record) {
			emit("got", fromKgo(kr).fields())
			got[kr.Partition]++
			if got[kr.Partition] <= want[kr.Partition] {
				remaining--
			}
		})
	}
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		fail("ListEndOffsets", err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		emit("end", map[string]any{"p": o.Partition, "offset": o.Offset})
	})
}

// franzMember is one group member: its own client, consuming until told to stop.
func (f *franzClient) member(ctx context.Context, broker, topic, group, name string, c *consumed) (*kgo.Client, chan struct{}) {
	cl, err := kgo.NewClient(f.opts(broker, kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.DisableAutoCommit(), kgo.SessionTimeout(6*time.Second), kgo.HeartbeatInterval(500*time.Millisecond),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(500*time.Millisecond),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, m map[string][]int32) {
			emit("assigned", map[string]any{"member": name, "partitions": m[topic]})
		}))...)
	if err != nil {
		fail("kgo.NewClient", err)
	}
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			if fs.IsClientClosed() {
				return
			}
			fs.EachError(func(t string, p int32, err error) {
				if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
					emit("fetch-error", map[string]any{"member": name, "p": p, "error": err.Error()})
				}
			})
			fs.EachRecord(func(kr *kgo.Record) { c.add(name, fromKgo(kr)) })
		}
	}()
	return cl, stopped
}

// stopMember stops the member reading and commits what it read; it stays
// in the group until its client is closed, so no rebalance comes between.
func (f *franzClient) stopMember(ctx context.Context, cl *kgo.Client, stop context.CancelFunc, stopped chan struct{}, name string, c *consumed) {
	stop()
	<-stopped
	err := cl.CommitUncommittedOffsets(ctx)
	emit("committed", map[string]any{"member": name, "offsets": c.commits(name), "error": errString(err)})
}

func (f *franzClient) groupShare(ctx context.Context, broker, topic, group string, partitions, n int) {
	c := newConsumed(n)
	ctxA, stopA := context.WithCancel(ctx)
	ctxB, stopB := context.WithCancel(ctx)
	a, doneA := f.member(ctxA, broker, topic, group, "a", c)
	b, doneB := f.member(ctxB, broker, topic, group, "b", c)
	stableGroup(ctx, broker, group, topic, partitions, 2)
	f.produce(ctx, broker, topic, "none", groupRecords("share", n, partitions))
	waitConsumed(ctx, c)
	f.stopMember(ctx, a, stopA, doneA, "a", c)
	f.stopMember(ctx, b, stopB, doneB, "b", c)
	a.Close() // leaves the group
	b.Close()
}

func (f *franzClient) groupResume(ctx context.Context, broker, topic, group string, partitions, n int) {
	f.produce(ctx, broker, topic, "none", groupRecords("resume", n, partitions))
	c := newConsumed(n)
	ctxA, stopA := context.WithCancel(ctx)
	a, doneA := f.member(ctxA, broker, topic, group, "r", c)
	waitConsumed(ctx, c)
	time.Sleep(time.Second) // anything read now is one record too many
	f.stopMember(ctx, a, stopA, doneA, "r", c)
	a.Close()
}

// waitConsumed waits until the members read what they should, or fails.
func waitConsumed(ctx context.Context, c *consumed) {
	select {
	case <-c.done:
	case <-ctx.Done():
		c.mu.Lock()
		total := c.total
		c.mu.Unlock()
		fail("consume in the group", fmt.Errorf("read %d of %d records: %w", total, c.want, ctx.Err()))
	}
}

func franzWaitStable(ctx context.Context, broker, group, topic string, partitions, members int) error {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("runnel-compat-observer"))
	if err != nil {
		return err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	last := ""
	for i := 0; i < 300 && ctx.Err() == nil; i++ {
		dg, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			last = err.Error()
		} else if g, ok := dg[group]; ok && g.Err == nil {
			last = fmt.Sprintf("state %s, %d members", g.State, len(g.Members))
			if g.State == "Stable" && len(g.Members) == members {
				seen := map[int32]int{}
				assigned := map[string][]int32{}
				for _, m := range g.Members {
					if a, ok := m.Assigned.AsConsumer(); ok {
						for _, t := range a.Topics {
							if t.Topic == topic {
								for _, p := range t.Partitions {
									seen[p]++
								}
								assigned[m.ClientID+" "+m.MemberID] = t.Partitions
							}
						}
					}
				}
				complete := len(seen) == partitions && len(assigned) == members
				for _, k := range seen {
					complete = complete && k == 1
				}
				if complete {
					emit("stable", map[string]any{"members": assigned, "protocol": g.Protocol})
					return nil
				}
				last += fmt.Sprintf(", assignments %v", assigned)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("group %s: %s", group, last)
}
