//go:build functional

package agent_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/osloclient"
)

// conductorSide listens like ironic_dpu/hello.py: a queue of its own bound
// to every node's announcement key on the control exchange.
type conductorSide struct {
	t     *testing.T
	conn  *amqp.Connection
	deliv <-chan amqp.Delivery
}

const helloQueue = "ironic-dpu-conductor.hello_functional"

func listenHellos(t *testing.T) *conductorSide {
	t.Helper()
	url := strings.Replace(broker.URL(), "rabbit://", "amqp://", 1)
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := amqp.Dial(url)
		if err == nil {
			ch, err := c.Channel()
			if err == nil {
				err = declareHelloQueue(ch)
			}
			if err == nil {
				var d <-chan amqp.Delivery
				if d, err = ch.Consume(helloQueue, "", true, false, false, false, nil); err == nil {
					cs := &conductorSide{t: t, conn: c, deliv: d}
					t.Cleanup(func() { _ = c.Close() })
					return cs
				}
			}
			_ = c.Close()
		}
		if time.Now().After(deadline) {
			t.Fatalf("cannot listen for announcements: %v", err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func declareHelloQueue(ch *amqp.Channel) error {
	// the agent's flags for its control exchange (oslo defaults)
	if err := ch.ExchangeDeclare("ironic_dpu", "topic", false, false, false, false, nil); err != nil {
		return err
	}
	if _, err := ch.QueueDeclare(helloQueue, false, false, false, false, nil); err != nil {
		return err
	}
	// leftovers of an earlier test; before the bind, which may let an
	// announcement in at once
	if err := ch.QueueUnbind(helloQueue, "ironic-dpu-conductor.hello.*", "ironic_dpu", nil); err != nil {
		return err
	}
	if _, err := ch.QueuePurge(helloQueue, false); err != nil {
		return err
	}
	return ch.QueueBind(helloQueue, "ironic-dpu-conductor.hello.*", "ironic_dpu", false, nil)
}

type helloMsg struct {
	Version       string `json:"version"`
	NodeUUID      string `json:"node_uuid"`
	Generation    int64  `json:"generation"`
	RPCAPIVersion string `json:"rpc_api_version"`
	Reason        string `json:"reason"`
}

// nextRaw waits for one delivery on the conductor's queue.
func (cs *conductorSide) nextRaw(within time.Duration) amqp.Delivery {
	cs.t.Helper()
	select {
	case d, ok := <-cs.deliv:
		if !ok {
			cs.t.Fatal("announcement consumer closed")
		}
		return d
	case <-time.After(within):
		cs.t.Fatalf("no delivery within %s", within)
	}
	return amqp.Delivery{}
}

// next waits for one announcement and checks where it came through.
func (cs *conductorSide) next(within time.Duration) helloMsg {
	cs.t.Helper()
	select {
	case d, ok := <-cs.deliv:
		if !ok {
			cs.t.Fatal("announcement consumer closed")
		}
		if d.Exchange != "ironic_dpu" || d.RoutingKey != "ironic-dpu-conductor.hello."+node || d.ContentType != "application/json" {
			cs.t.Fatalf("announcement via %q/%q (%s), want ironic_dpu/ironic-dpu-conductor.hello.%s", d.Exchange, d.RoutingKey, d.ContentType, node)
		}
		var m helloMsg
		if err := json.Unmarshal(d.Body, &m); err != nil {
			cs.t.Fatalf("announcement body %q: %v", d.Body, err)
		}
		if m.Version != "1.0" || m.RPCAPIVersion == "" || m.NodeUUID != node {
			cs.t.Fatalf("announcement %+v", m)
		}
		return m
	case <-time.After(within):
		cs.t.Fatalf("no announcement within %s", within)
	}
	return helloMsg{}
}

func (cs *conductorSide) none(d time.Duration) {
	cs.t.Helper()
	select {
	case m := <-cs.deliv:
		cs.t.Fatalf("unexpected announcement %s/%s: %s", m.Exchange, m.RoutingKey, m.Body)
	case <-time.After(d):
	}
}

// The agent announces itself with the generation it restored at start,
// after a broker restart (which drops the non-durable queues and with them
// any cast queued for it; the conductor's queue is not back yet when the
// agent first tries, so it retries until delivered), and again after its
// own restart. No Ironic API is configured anywhere.
func TestAnnouncesOnStartAndAfterBrokerRestart(t *testing.T) {
	cs := listenHellos(t)
	stateDir := filepath.Join(t.TempDir(), "state")
	p := startAgent(t, stateDir)
	if m := cs.next(30 * time.Second); m.Reason != "start" || m.Generation != 0 {
		t.Fatalf("first announcement %+v, want start with generation 0", m)
	}
	cs.none(time.Second) // once per connection, not periodically

	c := client(t)
	waitServing(t, c)
	state := map[string]any{"generation": 3, "node_uuid": node, "volumes": []any{}, "vifs": []any{}}
	if err := c.Call(osloclient.Req{Method: "apply_state", Args: map[string]any{"state": state}}, nil); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	if err := broker.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	// Let the agent reconnect and try before the conductor side is back:
	// its first attempt finds no queue bound.
	if err := p.WaitLog(ctx, "announcement not delivered; retrying"); err != nil {
		t.Fatalf("agent did not try to announce before the conductor queue was back: %v\n%s", err, p.Log())
	}
	cs = listenHellos(t)
	if m := cs.next(90 * time.Second); m.Reason != "reconnect" || m.Generation != 3 {
		t.Fatalf("announcement after the broker restart %+v, want reconnect with generation 3", m)
	}

	p.Stop(syscall.SIGTERM)
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	if m := cs.next(30 * time.Second); m.Reason != "start" || m.Generation != 3 {
		t.Fatalf("announcement after an agent restart %+v, want start with the persisted generation 3", m)
	}
}
