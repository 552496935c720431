//go:build functional

package agent_test

import (
	"context"
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/agentproc"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
)

const (
	dpuA = "5d0a6c1e-2b3f-4e5d-8a9b-0c1d2e3f4a5b"
	dpuB = "6e1b7d2f-3c4a-4f6e-9b0c-1d2e3f4a5b6c"
)

// verdict runs the conductor's own check (ironic_dpu.hello.parse) on what
// the broker delivered: "node generation", or "refused: why".
func verdict(t *testing.T, d amqp.Delivery) string {
	t.Helper()
	root, err := agentproc.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	in, _ := json.Marshal(map[string]any{"exchange": d.Exchange, "routing_key": d.RoutingKey, "headers": d.Headers, "body": string(d.Body)})
	cmd := exec.Command(osloclient.Python, "-c", `
import json, sys
from ironic_dpu import hello
m = json.load(sys.stdin)
try:
    node, gen = hello.parse({'exchange': m['exchange'], 'routing_key': m['routing_key']}, m['headers'], m['body'], exchange='ironic_dpu')
    print(node, gen)
except hello.Refused as e:
    print('refused:', e)
`)
	cmd.Dir = root
	cmd.Env = append(cmd.Environ(), "PYTHONPATH="+root)
	cmd.Stdin = strings.NewReader(string(in))
	var stderr strings.Builder
	cmd.Stderr = &stderr // the conductor's warnings
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("hello.parse: %v\n%s%s", err, out, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// With per-DPU broker permissions (topic write on its own announcement key
// only, as broker-acl grants), DPU A's credentials cannot make the conductor
// push B's state: publishing B's key is refused by the broker, and what A can
// still get into the conductor's queue (straight through the default
// exchange, or dead-lettered under B's key) is refused by the conductor. A's
// own announcement is read as A's whatever its body says.
func TestForgedAnnouncementsNeverNameAnotherNode(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cs := listenHellos(t)
	ctl := func(args ...string) {
		t.Helper()
		if out, err := broker.Ctl(ctx, args...); err != nil {
			t.Fatalf("%v: %s", err, out)
		}
	}
	ownQ := "ironic-dpu-agent." + dpuA
	ctl("add_user", "dpu-a", "pw-a")
	t.Cleanup(func() { _, _ = broker.Ctl(context.Background(), "delete_user", "dpu-a") })
	ctl("set_permissions", "-p", "/", "dpu-a", `^ironic-dpu-agent\.`+dpuA+`$`,
		`^(amq\.default|ironic_dpu|ironic-dpu-agent\.`+dpuA+`)$`, `^(ironic_dpu|ironic-dpu-agent\.`+dpuA+`)$`)
	ctl("set_topic_permissions", "-p", "/", "dpu-a", "ironic_dpu", `^ironic-dpu-conductor\.hello\.`+dpuA+`$`, `^ironic-dpu-agent\.`+dpuA+`$`)

	conn, err := amqp.Dial(strings.NewReplacer("rabbit://", "amqp://", "guest:guest", "dpu-a:pw-a").Replace(broker.URL()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	channel := func() *amqp.Channel {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		return ch
	}
	hello := func(node string, gen int) []byte {
		b, _ := json.Marshal(map[string]any{"version": "1.0", "node_uuid": node, "generation": gen})
		return b
	}
	pub := func(ch *amqp.Channel, exchange, key string, body []byte, exp string) error {
		return ch.PublishWithContext(ctx, exchange, key, false, false, amqp.Publishing{ContentType: "application/json", Body: body, Expiration: exp})
	}

	// 1. B's key on the control exchange: the broker closes A's channel.
	ch := channel()
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_ = pub(ch, "ironic_dpu", "ironic-dpu-conductor.hello."+dpuB, hello(dpuB, 0), "")
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.AccessRefused {
			t.Fatalf("publishing B's key: channel closed with %v, want ACCESS_REFUSED", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the broker accepted B's announcement key from A's user")
	}
	cs.none(500 * time.Millisecond)

	// 2. A's own key, a body naming B: delivered, read as A.
	ch = channel()
	if err := pub(ch, "ironic_dpu", "ironic-dpu-conductor.hello."+dpuA, hello(dpuB, 0), ""); err != nil {
		t.Fatal(err)
	}
	if v := verdict(t, cs.nextRaw(10*time.Second)); v != dpuA+" 0" {
		t.Fatalf("A's announcement naming B in its body read as %q, want node A", v)
	}

	// 3. Straight into the conductor's queue through the default exchange
	// (A may write amq.default to reply): delivered, refused.
	if err := pub(ch, "", helloQueue, hello(dpuB, 0), ""); err != nil {
		t.Fatal(err)
	}
	if v := verdict(t, cs.nextRaw(10*time.Second)); !strings.HasPrefix(v, "refused: not published to exchange ironic_dpu but to ''") {
		t.Fatalf("announcement via the default exchange: %q", v)
	}

	// 4. Dead-lettered under B's key: A redeclares its own queue with the
	// control exchange as dead-letter exchange (the broker checks neither
	// the dead-letter key against topic permissions) and lets a message
	// expire in it. Delivered with B's key, refused by its x-death header.
	ch = channel()
	_, _ = ch.QueueDelete(ownQ, false, false, false)
	if _, err := ch.QueueDeclare(ownQ, false, false, false, false, amqp.Table{
		"x-dead-letter-exchange": "ironic_dpu", "x-dead-letter-routing-key": "ironic-dpu-conductor.hello." + dpuB}); err != nil {
		// RabbitMQ 3.10 allows it (write on the control exchange is all it
		// checks); should a later broker refuse, this attack is closed there.
		t.Fatalf("declaring A's queue with a dead-letter key of B: %v", err)
	}
	if err := pub(ch, "", ownQ, hello(dpuB, 0), "1"); err != nil {
		t.Fatal(err)
	}
	d := cs.nextRaw(15 * time.Second)
	if d.RoutingKey != "ironic-dpu-conductor.hello."+dpuB || d.Exchange != "ironic_dpu" {
		t.Fatalf("dead-lettered message arrived as %q/%q", d.Exchange, d.RoutingKey)
	}
	if v := verdict(t, d); !strings.HasPrefix(v, "refused: dead-lettered") {
		t.Fatalf("dead-lettered announcement under B's key: %q", v)
	}
}
