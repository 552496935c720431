// Package ovs is the agent's OVSDB side: a libovsdb client for the local
// Open_vSwitch database that owns its (re)connection, a cache snapshot of the
// Bridge/Port/Interface tables, the plug/unplug transactions (ops.go), and a
// wait for ovn-controller's ovn-installed mark.
package ovs

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-kubernetes/libovsdb/cache"
	"github.com/ovn-kubernetes/libovsdb/client"
	"github.com/ovn-kubernetes/libovsdb/model"
	"github.com/ovn-kubernetes/libovsdb/ovsdb"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/network/ovs/vswitchd"
)

// Client keeps one libovsdb connection to the Open_vSwitch database alive.
// Run owns the connection; everything else is safe for concurrent use.
type Client struct {
	endpoint string
	// tlsConfig, when set, gives the TLS config of an ssl: endpoint; it is
	// called on every connect so renewed certificate files are picked up.
	tlsConfig func() (*tls.Config, error)
	log       *zap.Logger
	onConnect func()

	mu      sync.RWMutex
	cl      client.Client // nil while disconnected
	changed chan struct{} // closed and replaced on every Interface change
	lastErr error
	// installed holds Interface UUIDs carrying ovn-installed=true and when
	// the cache first saw that, maintained from cache events so waiters need
	// not scan the cache.
	installed map[string]time.Time

	txns atomic.Uint64
}

// NewClient prepares a client; nothing connects until Run. onConnect is
// called after every successful (re)connect, once the cache is filled:
// libovsdb replays ADDs but not DELETEs across a reconnect, so the owner must
// re-reconcile from a fresh snapshot. tlsConfig is needed for an ssl:
// endpoint and ignored otherwise.
func NewClient(endpoint string, tlsConfig func() (*tls.Config, error), log *zap.Logger, onConnect func()) *Client {
	if onConnect == nil {
		onConnect = func() {}
	}
	return &Client{endpoint: endpoint, tlsConfig: tlsConfig, log: log, onConnect: onConnect, changed: make(chan struct{}), installed: map[string]time.Time{},
		lastErr: fmt.Errorf("%w: ovsdb %s: not connected yet", errdefs.ErrUnavailable, endpoint)}
}

// Run connects, monitors and reconnects with backoff until ctx is done.
func (c *Client) Run(ctx context.Context) {
	const minDelay, maxDelay = 50 * time.Millisecond, 2 * time.Second
	delay := minDelay
	for ctx.Err() == nil {
		cl, err := c.connect(ctx)
		if err != nil {
			c.setDown(err)
			c.log.Warn("ovsdb connect failed; retrying", zap.String("endpoint", c.endpoint), zap.Duration("in", delay), zap.Error(err))
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(delay*2, maxDelay)
			continue
		}
		delay = minDelay
		c.mu.Lock()
		c.cl, c.lastErr = cl, nil
		c.mu.Unlock()
		c.notify()
		c.log.Info("ovsdb connected", zap.String("endpoint", c.endpoint))
		c.onConnect()
		c.waitDisconnect(ctx, cl)
		cl.Close()
		if ctx.Err() != nil {
			c.setDown(ctx.Err())
			return
		}
		c.setDown(errors.New("connection lost"))
		c.log.Warn("ovsdb connection lost; reconnecting", zap.String("endpoint", c.endpoint))
	}
}

func (c *Client) waitDisconnect(ctx context.Context, cl client.Client) {
	// DisconnectNotify is an unbuffered, non-blocking send; poll Connected too
	// so a notification sent before we listened is not lost.
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-cl.DisconnectNotify():
			return
		case <-tick.C:
			if !cl.Connected() {
				return
			}
		}
	}
}

func (c *Client) setDown(err error) {
	c.mu.Lock()
	c.cl = nil
	c.lastErr = fmt.Errorf("%w: ovsdb %s: %w", errdefs.ErrUnavailable, c.endpoint, err)
	c.mu.Unlock()
	c.notify()
}

func (c *Client) connect(ctx context.Context) (client.Client, error) {
	dbm, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, err
	}
	lg := logr.New(&zapSink{l: c.log.Named("libovsdb")})
	opts := []client.Option{client.WithEndpoint(c.endpoint), client.WithLogger(&lg)}
	if strings.HasPrefix(c.endpoint, "ssl:") {
		if c.tlsConfig == nil {
			return nil, fmt.Errorf("%w: ssl: endpoint without a TLS config", errdefs.ErrInvalidArgument)
		}
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		// libovsdb dials ssl: with tls.Dialer and this config
		opts = append(opts, client.WithTLSConfig(tc))
	}
	cl, err := client.NewOVSDBClient(dbm, opts...)
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := cl.Connect(cctx); err != nil {
		return nil, err
	}
	// A new connection starts with an empty cache that replays every row.
	c.mu.Lock()
	c.installed = map[string]time.Time{}
	c.mu.Unlock()
	cl.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(_ string, m model.Model) { c.onEvent(m, false) },
		UpdateFunc: func(_ string, _, m model.Model) { c.onEvent(m, false) },
		DeleteFunc: func(_ string, m model.Model) { c.onEvent(m, true) },
	})
	// Only the columns we read: Interface statistics change every few
	// seconds and would wake every waiter for nothing.
	br, pt, ifc := &vswitchd.Bridge{}, &vswitchd.Port{}, &vswitchd.Interface{}
	// One monitor per client: libovsdb resumes a single monitor incrementally.
	if _, err := cl.Monitor(cctx, cl.NewMonitor(
		client.WithTable(br, &br.Name, &br.Ports),
		client.WithTable(pt, &pt.Name, &pt.Interfaces),
		client.WithTable(ifc, &ifc.Name, &ifc.ExternalIDs, &ifc.MTURequest, &ifc.Ofport, &ifc.Error),
	)); err != nil {
		cl.Close()
		return nil, fmt.Errorf("monitor: %w", err)
	}
	return cl, nil
}

func (c *Client) onEvent(m model.Model, deleted bool) {
	i, ok := m.(*vswitchd.Interface)
	if !ok {
		return
	}
	now := time.Now()
	c.mu.Lock()
	_, was := c.installed[i.UUID]
	is := !deleted && i.ExternalIDs[KeyOVNInstalled] == "true"
	switch {
	case is && !was:
		c.installed[i.UUID] = now
	case !is && was:
		delete(c.installed, i.UUID)
	}
	c.mu.Unlock()
	if is != was {
		c.notify()
	}
}

func (c *Client) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *Client) current() (client.Client, <-chan struct{}, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.cl == nil {
		return nil, c.changed, c.lastErr
	}
	return c.cl, c.changed, nil
}

// Health is nil while connected, else an errdefs.ErrUnavailable error.
func (c *Client) Health() error {
	_, _, err := c.current()
	return err
}

// Transactions counts transactions sent since start (tests assert that an
// unchanged desired state sends none).
func (c *Client) Transactions() uint64 { return c.txns.Load() }

// Snapshot copies the monitored tables out of the cache.
func (c *Client) Snapshot(ctx context.Context) (*Snapshot, error) {
	cl, _, err := c.current()
	if err != nil {
		return nil, err
	}
	var brs []vswitchd.Bridge
	var pts []vswitchd.Port
	var ifs []vswitchd.Interface
	if err := cl.List(ctx, &brs); err != nil {
		return nil, fmt.Errorf("%w: list bridges: %w", errdefs.ErrUnavailable, err)
	}
	if err := cl.List(ctx, &pts); err != nil {
		return nil, fmt.Errorf("%w: list ports: %w", errdefs.ErrUnavailable, err)
	}
	if err := cl.List(ctx, &ifs); err != nil {
		return nil, fmt.Errorf("%w: list interfaces: %w", errdefs.ErrUnavailable, err)
	}
	b := make([]BridgeRow, len(brs))
	for i, r := range brs {
		b[i] = BridgeRow{UUID: r.UUID, Name: r.Name, Ports: r.Ports}
	}
	p := make([]PortRow, len(pts))
	for i, r := range pts {
		p[i] = PortRow{UUID: r.UUID, Name: r.Name, Interfaces: r.Interfaces}
	}
	f := make([]Iface, len(ifs))
	for i := range ifs {
		f[i] = toIface(&ifs[i])
	}
	return NewSnapshot(b, p, f), nil
}

func toIface(r *vswitchd.Interface) Iface {
	f := Iface{UUID: r.UUID, Name: r.Name, ExternalIDs: r.ExternalIDs}
	if r.MTURequest != nil {
		f.MTURequest = *r.MTURequest
	}
	if r.Ofport != nil {
		f.OFPort = *r.Ofport
	}
	if r.Error != nil {
		f.Error = *r.Error
	}
	return f
}

// Transact sends ops as one transaction and checks every operation result
// (Transact's own error is only the transport's).
func (c *Client) Transact(ctx context.Context, ops []ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	cl, _, err := c.current()
	if err != nil {
		return nil, err
	}
	c.txns.Add(1)
	res, err := cl.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("%w: ovsdb transact: %w", errdefs.ErrUnavailable, err)
	}
	if opErrs, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		for _, oe := range opErrs {
			err = fmt.Errorf("%w; %s on %s: %w", err, oe.Operation().Op, oe.Operation().Table, oe)
		}
		return res, fmt.Errorf("%w: ovsdb transaction failed: %w", errdefs.ErrNetwork, err)
	}
	return res, nil
}

// Interface returns the cached Interface row with this UUID.
func (c *Client) Interface(ctx context.Context, uuid string) (*Iface, error) {
	cl, _, err := c.current()
	if err != nil {
		return nil, err
	}
	r := &vswitchd.Interface{UUID: uuid}
	if err := cl.Get(ctx, r); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("%w: interface %s: %w", errdefs.ErrNotFound, uuid, err)
		}
		return nil, fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	f := toIface(r)
	return &f, nil
}

// WaitInstalled waits until every Interface UUID in uuids carries
// ovn-installed=true, or ctx ends. It returns, per UUID, when the cache first
// saw it installed (missing: not installed before ctx ended).
func (c *Client) WaitInstalled(ctx context.Context, uuids []string) map[string]time.Time {
	done := make(map[string]time.Time, len(uuids))
	for {
		c.mu.RLock()
		changed := c.changed
		for _, u := range uuids {
			if t, ok := c.installed[u]; ok {
				done[u] = t
			}
		}
		c.mu.RUnlock()
		if len(done) == len(uuids) {
			return done
		}
		select {
		case <-ctx.Done():
			return done
		case <-changed:
		}
	}
}
