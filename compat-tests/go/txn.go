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
