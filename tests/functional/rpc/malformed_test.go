//go:build functional

package rpc

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/daemon"
	"github.com/ironic-dpu/ironic-dpu-agent/rpcapi"
)

// rawPeer publishes hand-made messages and reads replies on its own queue.
type rawPeer struct {
	conn    *amqp.Connection
	ch      *amqp.Channel
	replyQ  string
	replies <-chan amqp.Delivery
}

func newRawPeer(t *testing.T) *rawPeer {
	t.Helper()
	conn, err := amqp.Dial(fmt.Sprintf("amqp://guest:guest@%s/", broker.Addr()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	dels, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &rawPeer{conn: conn, ch: ch, replyQ: q.Name, replies: dels}
}

func (p *rawPeer) publish(t *testing.T, key, contentType string, body []byte) {
	t.Helper()
	err := p.ch.PublishWithContext(context.Background(), rpcapi.DefaultExchange, key, false, false,
		amqp.Publishing{ContentType: contentType, Body: body})
	if err != nil {
		t.Fatal(err)
	}
}

// reply waits for the reply to msgID and returns its inner fields.
func (p *rawPeer) reply(t *testing.T, msgID string) map[string]json.RawMessage {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case d := <-p.replies:
			fields, err := rpcapi.DecodeEnvelope(d.Body)
			if err != nil {
				t.Fatalf("bad reply: %v: %s", err, d.Body)
			}
			if d.ContentType != "application/json" {
				t.Errorf("reply content type %q", d.ContentType)
			}
			var id string
			_ = json.Unmarshal(fields["_msg_id"], &id)
			if id == msgID {
				return fields
			}
		case <-timeout:
			t.Fatalf("no reply to %s", msgID)
		}
	}
}

func inner(m map[string]any) string {
	b, _ := json.Marshal(m)
	return string(b)
}

func envelope(m map[string]any) []byte {
	b, _ := json.Marshal(map[string]any{"oslo.version": "2.0", "oslo.message": inner(m)})
	return b
}

func TestMalformedInput(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	invocations := map[string]int{}
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		var tag string
		_ = json.Unmarshal(req.Args["tag"], &tag)
		mu.Lock()
		invocations[tag]++
		mu.Unlock()
		return map[string]any{"tag": tag, "context": req.Context}, nil
	})
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-mal"}, Dispatcher: d})
	p := newRawPeer(t)
	key := topic + ".node-mal"
	call := func(id string, extra map[string]any) map[string]any {
		m := map[string]any{"method": "echo", "args": map[string]any{"tag": id}, "version": "1.0",
			"_msg_id": id, "_reply_q": p.replyQ, "_timeout": nil, "_unique_id": id + "-u"}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	wantFailure := func(id, class, contains string) {
		t.Helper()
		f := p.reply(t, id)
		var s string
		if err := json.Unmarshal(f["failure"], &s); err != nil {
			t.Fatalf("%s: failure is not a JSON string: %s", id, f["failure"])
		}
		var fj map[string]any
		if err := json.Unmarshal([]byte(s), &fj); err != nil {
			t.Fatalf("%s: failure string is not JSON: %q", id, s)
		}
		if fj["class"] != class || !strings.Contains(fmt.Sprint(fj["message"]), contains) {
			t.Errorf("%s: failure %v, want %s containing %q", id, fj, class, contains)
		}
		if string(f["ending"]) != "true" {
			t.Errorf("%s: ending=%s", id, f["ending"])
		}
	}

	// no reply address can be recovered: the server must just survive
	p.publish(t, key, "application/json", []byte("{not json"))
	p.publish(t, key, "application/json", []byte(`"a string"`))
	p.publish(t, key, "application/json", []byte(`{"oslo.version":"2.0","oslo.message":"{broken"}`))
	p.publish(t, key, "", nil)

	// a reply address is there: the caller gets an error, not a timeout
	p.publish(t, key, "", envelope(call("no-ctype", nil)))
	wantFailure("no-ctype", "ValueError", "content type")
	p.publish(t, key, "text/plain", envelope(call("text-plain", nil)))
	wantFailure("text-plain", "ValueError", "content type")
	b, _ := json.Marshal(map[string]any{"oslo.version": "3.0", "oslo.message": inner(call("bad-version", nil))})
	p.publish(t, key, "application/json", b)
	wantFailure("bad-version", "ValueError", "oslo.version")
	b, _ = json.Marshal(map[string]any{"oslo.version": "2.0", "oslo.message": call("msg-object", nil)})
	p.publish(t, key, "application/json", b)
	wantFailure("msg-object", "ValueError", "not a JSON string")
	p.publish(t, key, "application/json", envelope(call("args-list", map[string]any{"args": []int{1, 2}})))
	wantFailure("args-list", "ValueError", "args is not an object")
	p.publish(t, key, "application/json", envelope(call("no-method", map[string]any{"method": nil})))
	wantFailure("no-method", "ValueError", "no method")
	big := call("big", map[string]any{"args": map[string]any{"tag": "big", "blob": strings.Repeat("x", 10<<20)}})
	p.publish(t, key, "application/json", envelope(big))
	wantFailure("big", "ValueError", "exceeds")

	// unknown context keys are passed through
	p.publish(t, key, "application/json", envelope(call("ctx", map[string]any{"_context_whatever": map[string]any{"x": 1}, "_context_": 5, "extra_top_level": true})))
	f := p.reply(t, "ctx")
	if string(f["failure"]) != "null" || !bytes.Contains(f["result"], []byte(`"whatever":{"x":1}`)) {
		t.Errorf("unknown context keys: %s / %s", f["result"], f["failure"])
	}

	// the same _unique_id twice is handled once
	dup := envelope(call("dup", nil))
	p.publish(t, key, "application/json", dup)
	p.publish(t, key, "application/json", dup)
	p.reply(t, "dup")
	// and the server still answers normal calls
	p.publish(t, key, "application/json", envelope(call("after", nil)))
	f = p.reply(t, "after")
	if string(f["failure"]) != "null" {
		t.Errorf("normal call after malformed input failed: %s", f["failure"])
	}
	mu.Lock()
	defer mu.Unlock()
	if invocations["dup"] != 1 {
		t.Errorf("duplicate handled %d times", invocations["dup"])
	}
	for _, id := range []string{"no-ctype", "text-plain", "bad-version", "msg-object", "args-list", "big"} {
		if invocations[id] != 0 {
			t.Errorf("malformed %s reached the handler", id)
		}
	}
}

// A shared exchange someone else declared with other flags is used as it is
// (declared passively: the agent needs no right to create it, and never
// redeclares it); a queue of the agent's that exists with other flags is a
// 406 that is logged with the broker's text and never "fixed".
func TestPreconditionFailedIsLoggedNotFixed(t *testing.T) {
	t.Parallel()
	p := newRawPeer(t)
	const ex = "foreign_durable"
	if err := p.ch.ExchangeDeclare(ex, "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	serve := func(server string) (*rpcapi.Server, *observer.ObservedLogs, func()) {
		core, logs := observer.New(zapcore.WarnLevel)
		s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: broker.URL(), Rabbit: fastRetry(), Logger: zap.New(core),
			Target: rpcapi.Target{Exchange: ex, Topic: topic, Server: server}, Dispatcher: rpcapi.NewDispatcher("1.0", "")})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- s.Run(ctx) }()
		return s, logs, func() {
			cancel()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
		}
	}
	s, _, stop := serve("node-durable-ex")
	waitFor(t, 10*time.Second, "server consuming on the durable exchange", s.Connected)
	stop()
	// the exchange still has its owner's flags: a durable redeclare succeeds
	ch, err := p.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare(ex, "topic", true, false, false, false, nil); err != nil {
		t.Errorf("exchange was changed: %v", err)
	}

	q := topic + ".node-406"
	if _, err := ch.QueueDeclare(q, false, true, false, false, nil); err != nil { // auto_delete, unlike the agent's
		t.Fatal(err)
	}
	s, logs, stop := serve("node-406")
	waitFor(t, 10*time.Second, "406 logged", func() bool {
		return logs.FilterMessageSnippet("not redeclaring").FilterField(zap.String("name", q)).Len() > 0
	})
	stop()
	if s.Connected() {
		t.Error("server claims to be connected")
	}
	e := logs.FilterMessageSnippet("not redeclaring").All()[0]
	if broker := fmt.Sprint(e.ContextMap()["broker"]); !strings.Contains(broker, "inequivalent arg 'auto_delete'") {
		t.Errorf("broker text not logged: %q", broker)
	}
	if _, err := ch.QueueDeclarePassive(q, false, true, false, false, nil); err != nil {
		t.Errorf("queue was changed: %v", err)
	}
}

// Quorum and TTL flags reach the broker; the fanout queue is deleted on shutdown.
func TestTopologyFlags(t *testing.T) {
	t.Parallel()
	o := fastRetry()
	o.RabbitQuorumQueue = true
	o.RabbitTransientQueuesTTL = 120
	ctx, cancel := context.WithCancel(context.Background())
	s, err := rpcapi.NewServer(rpcapi.ServerConfig{URL: broker.URL() + "?rabbit_transient_queues_ttl=60", Rabbit: o,
		Target: rpcapi.Target{Exchange: "quorum_ex", Topic: "qtopic", Server: "node-q"}, Dispatcher: rpcapi.NewDispatcher("1.0", "")})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	waitFor(t, 10*time.Second, "connected", s.Connected)
	p := newRawPeer(t)
	redeclare := func(name string, durable bool, args amqp.Table) error {
		ch, err := p.conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		defer ch.Close()
		_, err = ch.QueueDeclare(name, durable, false, false, false, args)
		return err
	}
	if err := redeclare("qtopic.node-q", true, amqp.Table{"x-queue-type": "quorum"}); err != nil {
		t.Errorf("server queue is not durable quorum: %v", err)
	}
	if err := redeclare("qtopic.node-q", false, nil); err == nil {
		t.Error("server queue accepted a classic non-durable redeclare")
	}
	// query option overrides the config's 120 s
	if err := redeclare(s.FanoutQueue(), false, amqp.Table{"x-expires": int32(60000)}); err != nil {
		t.Errorf("fanout queue x-expires: %v", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ch, err := p.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclarePassive(s.FanoutQueue(), false, false, false, false, nil); err == nil {
		t.Error("fanout queue still exists after shutdown")
	}
}

// A reply whose queue does not exist yet is returned by the broker
// (mandatory) and retried every 0.25 s until the queue appears.
func TestReplyRetriedUntilQueueExists(t *testing.T) {
	t.Parallel()
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) { return "late", nil })
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-late"}, Dispatcher: d})
	p := newRawPeer(t)
	replyQ := "reply_late_" + strings.ReplaceAll(t.Name(), "/", "_")
	p.publish(t, topic+".node-late", "application/json", envelope(map[string]any{
		"method": "echo", "args": map[string]any{}, "_msg_id": "late-1", "_reply_q": replyQ, "_timeout": nil, "_unique_id": "late-1-u"}))
	time.Sleep(1500 * time.Millisecond) // several returned attempts
	ch, err := p.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch.QueueDeclare(replyQ, false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	dels, err := ch.Consume(replyQ, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-dels:
		fields, err := rpcapi.DecodeEnvelope(m.Body)
		if err != nil || string(fields["result"]) != `"late"` || string(fields["_msg_id"]) != `"late-1"` {
			t.Errorf("late reply: %s %v", m.Body, err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("reply not retried after the queue appeared")
	}
}

// Real oslo.messaging callers get the agent's exception class for every kind
// of bad input, and get it at once rather than after their timeout.
func TestMalformedInputOsloCallers(t *testing.T) {
	t.Parallel()
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("echo", func(ctx context.Context, req *rpcapi.Request) (any, error) { return "echo", nil })
	startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-mal-oslo"}, Dispatcher: d,
		Classify: daemon.Classify, MaxMessageBytes: 1 << 20})
	op := func(extra map[string]any) map[string]any {
		m := map[string]any{"op": "call", "server": "node-mal-oslo", "method": "echo", "timeout": 30}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name     string
		op       map[string]any
		contains string
	}{
		// encoding/json gives up at depth 10,000 after building most of it
		{"10000 deep", op(map[string]any{"deep_args": map[string]int{"state": 10000}}), "nested deeper than"},
		{"100 deep", op(map[string]any{"deep_args": map[string]int{"state": 100}}), "nested deeper than"},
		{"oversized", op(map[string]any{"blob_args": map[string]int{"blob": 2 << 20}}), "exceeds the 1048576 byte limit"},
	}
	ops := []map[string]any{}
	for _, c := range cases {
		ops = append(ops, c.op)
	}
	ops = append(ops, op(nil))
	res := runPyClient(t, map[string]any{"ops": ops, "recursion_limit": 100000,
		"allowed_remote_exmods": []string{"ironic.common.exception"}})
	if len(res) != len(ops) {
		t.Fatalf("%d results for %d ops", len(res), len(ops))
	}
	for i, c := range cases {
		r := res[i]
		if r.OK || !slices.Contains(r.MRO, "ironic.common.exception.InvalidParameterValue") || !strings.Contains(r.Message, c.contains) {
			t.Errorf("%s: got %+v, want ironic.common.exception.InvalidParameterValue containing %q", c.name, r, c.contains)
		}
		if r.Elapsed > 5 {
			t.Errorf("%s: the caller waited %.1fs for its error", c.name, r.Elapsed)
		}
	}
	if last := res[len(res)-1]; !last.OK || string(last.Result) != `"echo"` {
		t.Errorf("normal call after bad input: %+v", last)
	}

	// oslo callers cannot send positional args; a hand-made one gets the same class
	p := newRawPeer(t)
	p.publish(t, topic+".node-mal-oslo", "application/json", envelope(map[string]any{
		"method": "echo", "args": []int{1, 2}, "_msg_id": "positional", "_reply_q": p.replyQ, "_unique_id": "positional-u"}))
	f := p.reply(t, "positional")
	var s string
	_ = json.Unmarshal(f["failure"], &s)
	var fj map[string]any
	if err := json.Unmarshal([]byte(s), &fj); err != nil || fj["class"] != "InvalidParameterValue" || fj["module"] != "ironic.common.exception" {
		t.Errorf("positional args: %s", s)
	}
}

// basic.qos bounds what the broker pushes to a busy server: with one handler
// slot taken, a flood stays in the queue (where the broker holds it) instead
// of in the agent's memory.
func TestPrefetchBoundsWhatTheBrokerPushes(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	d := rpcapi.NewDispatcher("1.0", "")
	d.Register("block", func(ctx context.Context, req *rpcapi.Request) (any, error) {
		select {
		case <-release:
		case <-ctx.Done():
		}
		return nil, nil
	})
	o := fastRetry()
	o.QosPrefetchCount = 2
	s := startServer(t, rpcapi.ServerConfig{Target: rpcapi.Target{Server: "node-qos"}, Dispatcher: d, Rabbit: o, MaxConcurrent: 1})
	t.Cleanup(func() { close(release) }) // runs before the server's cleanup
	p := newRawPeer(t)
	const n = 20
	for i := 0; i < n; i++ {
		p.publish(t, s.ServerQueue(), "application/json", envelope(map[string]any{"method": "block", "args": map[string]any{}, "_unique_id": fmt.Sprint("qos-", i)}))
	}
	// running + waiting for a slot + in the forwarder + prefetched
	const maxTaken = 1 + 1 + 1 + 2
	time.Sleep(time.Second)
	q, err := p.ch.QueueDeclarePassive(s.ServerQueue(), false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages < n-maxTaken {
		t.Fatalf("%d of %d requests left in the queue: the broker pushed more than the prefetch", q.Messages, n)
	}
}
