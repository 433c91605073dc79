// Command compat-go drives a Kafka broker with the three Go clients the
// compat suite covers: franz-go (kgo, kadm), sarama and segmentio/kafka-go.
//
//	compat-go CLIENT STEP BROKER [ARGS...]
//
// CLIENT is franz, franz-idem, sarama, sarama-idem or kafkago; STEP one of
//
//	metadata TOPIC                       versions the client negotiated, brokers, the topic
//	admin TOPIC                          create with configs, describe, alter, add partitions, delete
//	produce TOPIC PARTITIONS N CODECS    N records per codec (comma list), then read all back
//	group-share TOPIC GROUP PARTITIONS N two members share the topic, consume N, commit, leave
//	group-resume TOPIC GROUP PARTITIONS N one member resumes where the group committed
//	txn-produce TOPIC PARTITIONS TXN_ID PLAN PER_TXN
//	                                     transactions (franz, sarama): c commits, a aborts, per letter
//	                                     of PLAN; sarama also sends offsets of group TXN_ID-group
//	txn-consume TOPIC ISOLATION WANT     read_committed or read_uncommitted (franz, sarama) until
//	                                     WANT records (n0,n1,... per partition)
//
// Everything seen is printed as one JSON object per line on stdout; the
// Python scenarios (compat-tests/go_clients.py) decide what is right. A step
// that cannot go on prints {"event":"error",...} and exits 1. Every wait is
// bounded by a deadline.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"
	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kerr"
)

// stepTimeout bounds one whole step; the Python side kills us later than this.
const stepTimeout = 50 * time.Second

var outMu sync.Mutex

// emit prints one event as a JSON line.
func emit(event string, fields map[string]any) {
	if fields == nil {
		fields = map[string]any{}
	}
	fields["event"] = event
	b, err := json.Marshal(fields)
	if err != nil {
		b = []byte(fmt.Sprintf(`{"event":"error","error":%q}`, err.Error()))
	}
	outMu.Lock()
	os.Stdout.Write(append(b, '\n'))
	outMu.Unlock()
}

func fail(what string, err error) {
	emit("error", map[string]any{"what": what, "error": errString(err)})
	os.Exit(1)
}

func errString(err error) any {
	if err == nil {
		return nil
	}
	return err.Error()
}

// header and record are what a client sent or read, in one shape for all
// clients. Keys and values are []byte so that JSON shows null (absent) and
// "" (empty) apart; both are base64 otherwise.
type header struct {
	Key   string `json:"k"`
	Value string `json:"v"`
}

type record struct {
	Partition int32    `json:"p"`
	Offset    int64    `json:"o"`
	Key       []byte   `json:"key"`
	Value     []byte   `json:"value"`
	Headers   []header `json:"h"`
	TsMs      int64    `json:"ts"`
	Codec     string   `json:"codec,omitempty"`
}

func (r record) fields() map[string]any {
	return map[string]any{"p": r.Partition, "o": r.Offset, "key": r.Key, "value": r.Value,
		"h": r.Headers, "ts": r.TsMs, "codec": r.Codec}
}

// makeRecords builds n records for one codec spread round robin over the
// partitions: null and empty keys and values, zero to two headers (a
// repeated key among them), and CreateTime timestamps in the past that
// differ from the time of sending.
func makeRecords(codec string, n, partitions int, baseMs int64) []record {
	recs := make([]record, 0, n)
	for i := 0; i < n; i++ {
		r := record{Partition: int32(i % partitions), Offset: -1, Codec: codec,
			TsMs: baseMs + int64(i)*3, Headers: []header{}}
		switch i % 7 {
		case 3:
			r.Key = nil
		case 5:
			r.Key = []byte{}
		default:
			r.Key = []byte(fmt.Sprintf("%s-key-%d", codec, i))
		}
		switch {
		case i%11 == 4:
			r.Value = nil
		case i%13 == 6:
			r.Value = []byte{}
		default:
			// Repetitive text of varying length so every codec has work to do.
			r.Value = []byte(strings.Repeat(fmt.Sprintf("%s value %d; ", codec, i), 1+i%40))
		}
		switch i % 3 {
		case 1:
			r.Headers = []header{{"trace", fmt.Sprintf("t-%d", i)}}
		case 2:
			r.Headers = []header{{"dup", "first"}, {"dup", ""}}
		}
		recs = append(recs, r)
	}
	return recs
}

// groupRecords are the plain records the group steps write: one per index,
// the value says which run wrote it.
func groupRecords(run string, n, partitions int) []record {
	recs := make([]record, 0, n)
	now := time.Now().UnixMilli()
	for i := 0; i < n; i++ {
		recs = append(recs, record{Partition: int32(i % partitions), Offset: -1,
			Key: []byte(fmt.Sprintf("k%d", i)), Value: []byte(fmt.Sprintf("%s-%d", run, i)), TsMs: now,
			Headers: []header{}})
	}
	return recs
}

// consumed tracks the records a set of members read, and when they have
// read enough.
type consumed struct {
	mu      sync.Mutex
	total   int
	want    int
	done    chan struct{}
	perMem  map[string]map[int32]int64 // member -> partition -> next offset to commit
	closeMu sync.Once
}

func newConsumed(want int) *consumed {
	return &consumed{want: want, done: make(chan struct{}), perMem: map[string]map[int32]int64{}}
}

// add records one read; it reports whether the member should keep going.
func (c *consumed) add(member string, r record) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f := r.fields()
	f["member"] = member
	emit("got", f)
	if c.perMem[member] == nil {
		c.perMem[member] = map[int32]int64{}
	}
	c.perMem[member][r.Partition] = r.Offset + 1
	c.total++
	if c.total >= c.want {
		c.closeMu.Do(func() { close(c.done) })
	}
}

func (c *consumed) commits(member string) map[int32]int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[int32]int64{}
	for p, o := range c.perMem[member] {
		out[p] = o
	}
	return out
}

// stableGroup waits until the group is Stable with `members` members whose
// assignments cover every partition of the topic once; it prints them.
// Every client uses the same observer (kadm's DescribeGroups) so that the
// gate does not depend on the client under test.
func stableGroup(ctx context.Context, broker, group, topic string, partitions, members int) {
	if err := franzWaitStable(ctx, broker, group, topic, partitions, members); err != nil {
		fail("group did not become stable", err)
	}
}

func main() {
	if len(os.Args) < 4 {
		fmt.Fprintln(os.Stderr, "usage: compat-go CLIENT STEP BROKER [ARGS...]")
		os.Exit(2)
	}
	client, step, broker, args := os.Args[1], os.Args[2], os.Args[3], os.Args[4:]
	ctx, cancel := context.WithTimeout(context.Background(), stepTimeout)
	defer cancel()

	var c goClient
	switch client {
	case "franz":
		c = &franzClient{}
	case "franz-idem":
		c = &franzClient{idempotent: true}
	case "sarama":
		c = &saramaClient{}
	case "sarama-idem":
		c = &saramaClient{idempotent: true}
	case "kafkago":
		c = &kafkagoClient{}
	default:
		fmt.Fprintln(os.Stderr, "unknown client", client)
		os.Exit(2)
	}

	need := map[string]int{"metadata": 1, "admin": 1, "produce": 4, "group-share": 4, "group-resume": 4,
		"txn-produce": 5, "txn-consume": 3}
	n, ok := need[step]
	if !ok || len(args) != n {
		fmt.Fprintf(os.Stderr, "step %s: wrong step or argument count\n", step)
		os.Exit(2)
	}
	switch step {
	case "metadata":
		c.metadata(ctx, broker, args[0])
	case "admin":
		c.admin(ctx, broker, args[0])
	case "produce":
		partitions, count := atoi(args[1]), atoi(args[2])
		var all []record
		base := time.Now().Add(-time.Hour).UnixMilli()
		for i, codec := range strings.Split(args[3], ",") {
			recs := makeRecords(codec, count, partitions, base+int64(i)*100000)
			recs = c.produce(ctx, broker, args[0], codec, recs)
			for _, r := range recs {
				emit("sent", r.fields())
			}
			all = append(all, recs...)
		}
		want := map[int32]int{}
		for _, r := range all {
			want[r.Partition]++
		}
		c.consume(ctx, broker, args[0], want)
	case "group-share":
		c.groupShare(ctx, broker, args[0], args[1], atoi(args[2]), atoi(args[3]))
	case "group-resume":
		c.groupResume(ctx, broker, args[0], args[1], atoi(args[2]), atoi(args[3]))
	case "txn-produce":
		tp, ok := c.(txnProducer)
		if !ok {
			fmt.Fprintf(os.Stderr, "client %s has no transactional producer here\n", client)
			os.Exit(2)
		}
		tp.txnProduce(ctx, broker, args[0], atoi(args[1]), args[2], args[3], atoi(args[4]))
	case "txn-consume":
		ic, ok := c.(isolatedConsumer)
		if !ok {
			fmt.Fprintf(os.Stderr, "client %s has no isolation level here\n", client)
			os.Exit(2)
		}
		ic.consumeIsolated(ctx, broker, args[0], isolation(args[1]), parseWant(args[2]))
	}
	emit("done", nil)
}

func atoi(s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		fail("argument "+s, err)
	}
	return n
}

// goClient is what each client implementation can do.
type goClient interface {
	metadata(ctx context.Context, broker, topic string)
	admin(ctx context.Context, broker, topic string)
	// produce sends recs (all one codec) and returns them with the offsets
	// acknowledged, where the client tells them (-1 otherwise).
	produce(ctx context.Context, broker, topic, codec string, recs []record) []record
	// consume reads each partition from its start until it has want[p]
	// records, prints them ("got"), then prints the end offsets ("end").
	consume(ctx context.Context, broker, topic string, want map[int32]int)
	groupShare(ctx context.Context, broker, topic, group string, partitions, n int)
	groupResume(ctx context.Context, broker, topic, group string, partitions, n int)
}

// kafkaCode is the Kafka error code behind err in any of the three
// clients' error types, or nil.
func kafkaCode(err error) any {
	if err == nil {
		return nil
	}
	var fe *kerr.Error
	if errors.As(err, &fe) {
		return fe.Code
	}
	var se sarama.KError
	if errors.As(err, &se) {
		return int16(se)
	}
	var te *sarama.TopicError
	if errors.As(err, &te) {
		return int16(te.Err)
	}
	var ge kafkago.Error
	if errors.As(err, &ge) {
		return int16(ge)
	}
	return nil
}

// config is one topic config as DescribeConfigs told it.
type config struct {
	Value  *string `json:"value"`
	Source int8    `json:"source"`
}

// describeUntil describes the topic's configs until key has the value
// want, for at most 5 s, and prints the last answer. Kafka applies an
// accepted config change to what DescribeConfigs reads just after
// answering the change, so the first describe may not show it yet.
func describeUntil(step, key, want string, describe func() (map[string]config, error)) {
	var configs map[string]config
	var err error
	polls := 0
	for ; polls < 50; polls++ {
		configs, err = describe()
		if c, ok := configs[key]; err == nil && ok && c.Value != nil && *c.Value == want {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	emit(step, map[string]any{"error": errString(err), "configs": configs, "polls": polls})
}
