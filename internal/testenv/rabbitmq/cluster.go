package rabbitmq

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
)

// Cluster is N private brokers joined into one RabbitMQ cluster: distinct
// node names, ports and mnesia dirs, one Erlang cookie (written into each
// node's private HOME) and one epmd, all under dir.
type Cluster struct {
	Nodes []*Broker
}

// StartCluster starts n nodes and joins nodes 2..n to the first
// (rabbitmqctl stop_app, join_cluster, start_app).
func StartCluster(ctx context.Context, dir string, n int) (*Cluster, error) {
	if n < 1 {
		return nil, errors.New("rabbitmq cluster: want at least one node")
	}
	raw := make([]byte, 20)
	if _, err := rand.Read(raw); err != nil {
		return nil, err
	}
	cookie := strings.ToUpper(hex.EncodeToString(raw))
	c := &Cluster{}
	for i := range n {
		b, err := New(filepath.Join(dir, fmt.Sprintf("node%d", i+1)))
		if err != nil {
			c.Stop()
			return nil, err
		}
		if i > 0 {
			b.EpmdPort = c.Nodes[0].EpmdPort
		}
		b.sharedEpmd = true
		// The cookie file must be private to its owner or Erlang refuses it.
		if err := os.WriteFile(filepath.Join(b.Dir, "home", ".erlang.cookie"), []byte(cookie), 0o400); err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, b)
	}
	// The first node alone, then the others at once: each start is most of
	// the cost on a small machine.
	if err := c.Nodes[0].Start(ctx); err != nil {
		c.Stop()
		return nil, fmt.Errorf("node 1: %w", err)
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range c.Nodes[1:] {
		wg.Go(func() { errs[i+1] = c.join(ctx, b) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) join(ctx context.Context, b *Broker) error {
	if err := b.Start(ctx); err != nil {
		return fmt.Errorf("%s: %w", b.Node(), err)
	}
	for _, args := range [][]string{{"stop_app"}, {"join_cluster", c.Nodes[0].Node()}, {"start_app"}, {"await_startup"}} {
		if _, err := b.Ctl(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// URL is a multi-host transport_url listing the nodes in order.
func (c *Cluster) URL() string {
	hosts := make([]string, len(c.Nodes))
	for i, b := range c.Nodes {
		hosts[i] = "guest:guest@" + b.Addr()
	}
	return "rabbit://" + strings.Join(hosts, ",") + "/"
}

// ByAddr is the node listening on addr (host:port), or nil.
func (c *Cluster) ByAddr(addr string) *Broker {
	for _, b := range c.Nodes {
		if b.Addr() == addr {
			return b
		}
	}
	return nil
}

// Stop stops every node, then their epmd.
func (c *Cluster) Stop() {
	var wg sync.WaitGroup
	for _, b := range c.Nodes {
		wg.Go(b.Stop)
	}
	wg.Wait()
	if len(c.Nodes) > 0 {
		c.Nodes[0].killEpmd()
	}
}
