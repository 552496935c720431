package rpcapi

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func originServer(t *testing.T, shared bool) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{URL: "rabbit://u:p@127.0.0.1:5672/dpu", ListenShared: shared,
		Target: Target{Topic: "ironic-dpu-agent", Server: "node-b"}, Dispatcher: NewDispatcher("1.0", "")})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Only what the conductor can send is served: a broker user with write on
// the default exchange (every agent: replies) reaches any queue by name, and
// dead-lettering bypasses topic permissions.
func TestForeignDeliveries(t *testing.T) {
	s := originServer(t, false)
	if got := s.FanoutQueue(); got != "ironic-dpu-agent_fanout_node-b" {
		t.Fatalf("fanout queue %q", got)
	}
	death := amqp.Table{"x-death": []any{amqp.Table{"reason": "expired"}}}
	cases := []struct {
		name    string
		d       amqp.Delivery
		foreign bool
	}{
		{"control exchange, own key", amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent.node-b"}, false},
		{"fanout exchange", amqp.Delivery{Exchange: "ironic-dpu-agent_fanout"}, false},
		{"default exchange", amqp.Delivery{Exchange: "", RoutingKey: "ironic-dpu-agent.node-b"}, true},
		{"another exchange bound into the control exchange", amqp.Delivery{Exchange: "ironic-dpu-agent.node-a", RoutingKey: "ironic-dpu-agent.node-b"}, true},
		{"control exchange, other key", amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent"}, true},
		{"dead-lettered into the control exchange", amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent.node-b", Headers: death}, true},
		{"first-death header only", amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent.node-b", Headers: amqp.Table{"x-first-death-exchange": ""}}, true},
		{"ordinary headers", amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent.node-b", Headers: amqp.Table{}}, false},
	}
	for _, c := range cases {
		why := s.foreign(c.d)
		if (why != "") != c.foreign {
			t.Errorf("%s: foreign=%q, want foreign=%v", c.name, why, c.foreign)
		}
	}
	shared := originServer(t, true)
	if why := shared.foreign(amqp.Delivery{Exchange: "ironic_dpu", RoutingKey: "ironic-dpu-agent"}); why != "" {
		t.Errorf("shared topic key refused with listen_shared: %s", why)
	}
}
