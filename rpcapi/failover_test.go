package rpcapi

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
)

func threeHosts() []Host {
	return []Host{{Host: "h1", Port: 5672}, {Host: "h2", Port: 5672}, {Host: "h3", Port: 5672}}
}

// Like oslo.messaging, each connection starts on a shuffled host: over many
// connections every broker gets a fair share of first connections (before,
// every connection started on h1).
func TestFirstBrokerIsSpreadOverTheHosts(t *testing.T) {
	first := map[string]int{}
	for range 3000 {
		o, err := newHostOrder(threeHosts(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		first[o.pick().Host]++
	}
	for _, h := range []string{"h1", "h2", "h3"} {
		if n := first[h]; n < 800 || n > 1200 {
			t.Fatalf("first connections per host %v: want about 1000 each", first)
		}
	}
}

// round-robin (oslo's default) walks the shuffled list from its head and
// wraps; every host is tried once per pass.
func TestRoundRobinWalksTheShuffledList(t *testing.T) {
	seq := []int{0, 0} // rnd(3)=0, rnd(2)=0: h1,h2,h3 -> swap(2,0)=h3,h2,h1 -> swap(1,0)=h2,h3,h1
	rnd := func(n int) int { v := seq[0]; seq = seq[1:]; return v }
	o, err := newHostOrder(threeHosts(), FailoverRoundRobin, rnd)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 6 {
		got = append(got, o.pick().Host)
	}
	if fmt.Sprint(got) != "[h2 h3 h1 h2 h3 h1]" {
		t.Fatalf("order %v", got)
	}
}

// shuffle: the first connection takes the shuffled head, every failover a
// random host (kombu's shufflecycle).
func TestShuffleDrawsEachFailover(t *testing.T) {
	draws := []int{1, 0, 2, 2, 0, 1} // two for the initial shuffle, then one per failover
	rnd := func(n int) int { v := draws[0]; draws = draws[1:]; return v % n }
	o, err := newHostOrder(threeHosts(), FailoverShuffle, rnd)
	if err != nil {
		t.Fatal(err)
	}
	// shuffle: i=2 j=1 -> h1,h3,h2; i=1 j=0 -> h3,h1,h2
	var got []string
	for range 5 {
		got = append(got, o.pick().Host)
	}
	if fmt.Sprint(got) != "[h3 h2 h2 h3 h1]" {
		t.Fatalf("picks %v", got)
	}
}

func TestUnknownFailoverStrategyIsRefused(t *testing.T) {
	if _, err := newHostOrder(threeHosts(), "random", nil); !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("got %v", err)
	}
	// from the transport_url query as well, before anything is dialled
	_, err := NewServer(ServerConfig{URL: "rabbit://h1,h2/?kombu_failover_strategy=random", Rabbit: config.Defaults().Rabbit,
		Target: Target{Topic: "t", Server: "s"}, Dispatcher: NewDispatcher("1.0", "")})
	if !errors.Is(err, errdefs.ErrInvalidArgument) {
		t.Fatalf("NewServer: %v", err)
	}
}

// Waiting out a broker outage is not a hang: the connection loop keeps
// beating while it sleeps between attempts far longer than the bound.
func TestServerBeatsWhileTheBrokerIsDown(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close() // nothing listens: every dial is refused
	o := config.Defaults().Rabbit
	o.RetryInterval, o.RetryBackoff, o.IntervalMax = 10, 0, 10 // one long sleep
	mon := liveness.New(500 * time.Millisecond)
	s, err := NewServer(ServerConfig{URL: "rabbit://guest:guest@" + addr + "/", Rabbit: o,
		Target: Target{Topic: "t", Server: "s"}, Dispatcher: NewDispatcher("1.0", ""), Beat: mon.Register("rpc/server")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() { cancel(); <-done }()
	for end := time.Now().Add(2500 * time.Millisecond); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if err := mon.Check(); err != nil {
			t.Fatalf("broker outage made the server loop look stuck: %v", err)
		}
	}
	if s.Connected() {
		t.Fatal("connected to nothing")
	}
}
