package main

// Transactions: franz-go's transactional producer, and read_committed (or
// read_uncommitted) consumers of franz-go and sarama.

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"
)

// txnProducer is a client that can produce in transactions.
type txnProducer interface {
	// txnProduce runs one transaction per letter of plan, c to commit and a
	// to abort, each of perTxn records round robin over the partitions.
	txnProduce(ctx context.Context, broker, topic string, partitions int, txnID, plan string, perTxn int)
}

// isolatedConsumer is a client that can consume at an isolation level.
type isolatedConsumer interface {
	// consumeIsolated reads each partition from its start until it has
	// want[p] records, printing them ("got").
	consumeIsolated(ctx context.Context, broker, topic string, committed bool, want map[int32]int)
}

// parseWant reads "n0,n1,..." (records wanted per partition).
func parseWant(s string) map[int32]int {
	want := map[int32]int{}
	for p, n := range strings.Split(s, ",") {
		want[int32(p)] = atoi(n)
	}
	return want
}

func isolation(s string) bool {
	switch s {
	case "read_committed":
		return true
	case "read_uncommitted":
		return false
	}
	fail("isolation "+s, fmt.Errorf("want read_committed or read_uncommitted"))
	return false
}

func (f *franzClient) txnProduce(ctx context.Context, broker, topic string, partitions int, txnID, plan string, perTxn int) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("runnel-compat-franz-txn"),
		kgo.RetryTimeout(20*time.Second), kgo.TransactionalID(txnID), kgo.TransactionTimeout(60*time.Second),
		kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	for n, letter := range plan {
		commit := letter == 'c'
		if err := cl.BeginTransaction(); err != nil {
			fail("BeginTransaction", err)
		}
		krs := make([]*kgo.Record, perTxn)
		for i := range krs {
			krs[i] = &kgo.Record{Partition: int32(i % partitions), Key: []byte(fmt.Sprintf("k%d", i)),
				Value: []byte(fmt.Sprintf("f%d-r%d", n, i))}
		}
		// Aborted records too are written before the abort, so that the
		// abort marker has something to hide.
		if err := cl.ProduceSync(ctx, krs...).FirstErr(); err != nil {
			fail(fmt.Sprintf("ProduceSync in transaction %d", n), err)
		}
		for _, kr := range krs {
			emit("sent", map[string]any{"txn": n, "commit": commit, "p": kr.Partition, "o": kr.Offset,
				"value": string(kr.Value)})
		}
		end := kgo.TryAbort
		if commit {
			end = kgo.TryCommit
		}
		if err := cl.EndTransaction(ctx, end); err != nil {
			fail(fmt.Sprintf("EndTransaction %d (commit %v)", n, commit), err)
		}
		emit("ended", map[string]any{"txn": n, "commit": commit})
	}
}

func (f *franzClient) consumeIsolated(ctx context.Context, broker, topic string, committed bool, want map[int32]int) {
	starts := map[int32]kgo.Offset{}
	remaining := 0
	for p, n := range want {
		starts[p] = kgo.NewOffset().AtStart()
		remaining += n
	}
	level := kgo.ReadUncommitted()
	if committed {
		level = kgo.ReadCommitted()
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(broker), kgo.ClientID("runnel-compat-franz-reader"),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topic: starts}),
		kgo.FetchIsolationLevel(level), kgo.FetchMaxWait(500*time.Millisecond))
	if err != nil {
		fail("kgo.NewClient", err)
	}
	defer cl.Close()
	got := map[int32]int{}
	for remaining > 0 {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			fail("consume", fmt.Errorf("%d records still missing: %w", remaining, ctx.Err()))
		}
		fs.EachError(func(t string, p int32, err error) { fail(fmt.Sprintf("fetch %s/%d", t, p), err) })
		fs.EachRecord(func(kr *kgo.Record) {
			emit("got", map[string]any{"p": kr.Partition, "o": kr.Offset, "value": string(kr.Value)})
			got[kr.Partition]++
			if got[kr.Partition] <= want[kr.Partition] {
				remaining--
			}
		})
	}
}

func (s *saramaClient) consumeIsolated(ctx context.Context, broker, topic string, committed bool, want map[int32]int) {
	cfg := saramaConfig()
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.MaxWaitTime = 500 * time.Millisecond
	if committed {
		cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	}
	cons, err := sarama.NewConsumer([]string{broker}, cfg)
	if err != nil {
		fail("sarama.NewConsumer", err)
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
		for n := 0; n < want[p]; n++ {
			select {
			case m := <-pc.Messages():
				emit("got", map[string]any{"p": m.Partition, "o": m.Offset, "value": string(m.Value)})
			case e := <-pc.Errors():
				fail(fmt.Sprintf("partition %d", p), e)
			case <-ctx.Done():
				fail(fmt.Sprintf("partition %d: %d of %d records", p, n, want[p]), ctx.Err())
			}
		}
		pc.Close()
	}
}

// txnProduce for sarama: a transactional SyncProducer. Each transaction
// also sends, for the group txnID-group, the offset after the transaction's
// last record of partition 0 (AddMessageToTxn, as a consume-transform-
// produce loop marks what it consumed), and the group's committed offset is
// printed after the transaction ends ("offsets"): at once after an abort,
// and after a commit once it shows the sent offset (the coordinator writes
// it with the transaction's markers, after EndTxn is answered), for at
// most 10 s.
func (s *saramaClient) txnProduce(ctx context.Context, broker, topic string, partitions int, txnID, plan string, perTxn int) {
	cfg := saramaConfig()
	cfg.ClientID = "runnel-compat-sarama-txn"
	cfg.Producer.Idempotent = true
	cfg.Producer.Transaction.ID = txnID
	cfg.Producer.Transaction.Timeout = 60 * time.Second
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Producer.Partitioner = sarama.NewManualPartitioner
	cfg.Net.MaxOpenRequests = 1
	group := txnID + "-group"
	cl, err := sarama.NewClient([]string{broker}, cfg)
	if err != nil {
		fail("sarama.NewClient", err)
	}
	defer cl.Close()
	p, err := sarama.NewSyncProducerFromClient(cl) // InitProducerId
	if err != nil {
		fail("NewSyncProducerFromClient", err)
	}
	defer p.Close()
	adm, err := sarama.NewClusterAdminFromClient(cl)
	if err != nil {
		fail("NewClusterAdminFromClient", err)
	}
	committed := func() (int64, error) {
		resp, err := adm.ListConsumerGroupOffsets(group, map[string][]int32{topic: {0}})
		if err != nil {
			return 0, err
		}
		if resp.Err != sarama.ErrNoError {
			return 0, resp.Err
		}
		b := resp.GetBlock(topic, 0)
		if b == nil {
			return 0, fmt.Errorf("no offset block for %s/0", topic)
		}
		if b.Err != sarama.ErrNoError {
			return 0, b.Err
		}
		return b.Offset, nil
	}
	for n, letter := range plan {
		commit := letter == 'c'
		if err := p.BeginTxn(); err != nil {
			fail("BeginTxn", err)
		}
		msgs := make([]*sarama.ProducerMessage, perTxn)
		for i := range msgs {
			msgs[i] = &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
				Key: sarama.StringEncoder(fmt.Sprintf("k%d", i)), Value: sarama.StringEncoder(fmt.Sprintf("s%d-r%d", n, i))}
		}
		// Aborted records too are written before the abort.
		if err := p.SendMessages(msgs); err != nil {
			fail(fmt.Sprintf("SendMessages in transaction %d", n), err)
		}
		last := int64(-1)
		for _, m := range msgs {
			emit("sent", map[string]any{"txn": n, "commit": commit, "p": m.Partition, "o": m.Offset,
				"value": fmt.Sprintf("%s", m.Value)})
			if m.Partition == 0 && m.Offset > last {
				last = m.Offset
			}
		}
		if err := p.AddMessageToTxn(&sarama.ConsumerMessage{Topic: topic, Partition: 0, Offset: last}, group, nil); err != nil {
			fail(fmt.Sprintf("AddMessageToTxn in transaction %d", n), err)
		}
		if commit {
			err = p.CommitTxn()
		} else {
			err = p.AbortTxn()
		}
		if err != nil {
			fail(fmt.Sprintf("end transaction %d (commit %v)", n, commit), err)
		}
		emit("ended", map[string]any{"txn": n, "commit": commit})
		sent := last + 1
		var got int64
		polls := 0
		for deadline := time.Now().Add(10 * time.Second); ; {
			got, err = committed()
			polls++
			if err != nil {
				fail(fmt.Sprintf("ListConsumerGroupOffsets after transaction %d", n), err)
			}
			if !commit || got == sent || time.Now().After(deadline) || ctx.Err() != nil {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		emit("offsets", map[string]any{"txn": n, "commit": commit, "sent": sent, "committed": got, "polls": polls})
	}
}
