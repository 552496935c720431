package rpcapi

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

const dialTimeout = 10 * time.Second

// retryDelay is oslo's reconnect schedule (rabbit_retry_interval +
// n*rabbit_retry_backoff, capped at rabbit_interval_max) with +-20% jitter
// so a fleet of DPUs does not reconnect in lockstep after a broker restart.
func retryDelay(o RabbitOptions, attempt int) time.Duration {
	d := o.RetryInterval + float64(attempt)*o.RetryBackoff
	if o.IntervalMax > 0 && d > o.IntervalMax {
		d = o.IntervalMax
	}
	if d <= 0 {
		d = 0.1
	}
	d *= 0.8 + 0.4*rand.Float64()
	return time.Duration(d * float64(time.Second))
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// durable is oslo's Connection.durable.
func durable(o RabbitOptions) bool { return o.AMQPDurableQueues || o.RabbitQuorumQueue }

// serverQueueArgs are the arguments of the <topic>[.<server>] queues.
func serverQueueArgs(o RabbitOptions) amqp.Table {
	t := amqp.Table{}
	if o.RabbitHAQueues {
		t["x-ha-policy"] = "all"
	}
	if o.RabbitQuorumQueue {
		t["x-queue-type"] = "quorum"
	}
	return t
}

// transientQueueArgs are the arguments of fanout and reply queues (never quorum in 14.0).
func transientQueueArgs(o RabbitOptions) amqp.Table {
	t := amqp.Table{}
	if o.RabbitHAQueues {
		t["x-ha-policy"] = "all"
	}
	if o.RabbitTransientQueuesTTL > 0 {
		ms := min(int64(o.RabbitTransientQueuesTTL)*1000, math.MaxInt32) // AMQP 'I' field
		t["x-expires"] = int32(ms)
	}
	return t
}

// declareErr logs a 406 with the broker's own words: a flag mismatch on a
// shared entity must be fixed by the operator, never by redeclaring.
func declareErr(log *zap.Logger, what, name string, err error) error {
	var ae *amqp.Error
	if errors.As(err, &ae) && ae.Code == amqp.PreconditionFailed {
		log.Error("broker refused declaration: flags differ from the existing entity; not redeclaring",
			zap.String("entity", what), zap.String("name", name), zap.String("broker", ae.Reason))
		return fmt.Errorf("declare %s %s: %s: %w", what, name, ae.Reason, errdefs.ErrConflict)
	}
	return fmt.Errorf("declare %s %s: %v: %w", what, name, err, errdefs.ErrUnavailable)
}

// ensureExchange makes sure a shared exchange exists without needing the
// right to create it: a passive declare first (no permission needed, no
// flags compared), and only when the exchange is missing a real declare with
// oslo's flags. A DPU's broker user has no configure permission on the shared
// exchanges, which would let it delete them for every agent. A failed
// declare closes the channel, so the channel to go on with is returned.
func (sess *session) ensureExchange(ch *amqp.Channel, log *zap.Logger, name, kind string, durable, autoDelete bool) (*amqp.Channel, error) {
	err := ch.ExchangeDeclarePassive(name, kind, durable, autoDelete, false, false, nil)
	if err == nil {
		return ch, nil
	}
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound {
		return nil, fmt.Errorf("declare exchange %s (passive): %v: %w", name, err, errdefs.ErrUnavailable)
	}
	if ch, err = sess.conn.Channel(); err != nil {
		return nil, fmt.Errorf("open channel: %v: %w", err, errdefs.ErrUnavailable)
	}
	err = ch.ExchangeDeclare(name, kind, durable, autoDelete, false, false, nil)
	if errors.As(err, &ae) && ae.Code == amqp.AccessRefused {
		return nil, fmt.Errorf("exchange %s does not exist and broker user may not create it (the conductor side declares it): %s: %w",
			name, ae.Reason, ErrAccessRefused)
	}
	if err != nil {
		return nil, declareErr(log, "exchange", name, err)
	}
	return ch, nil
}

// blockState tracks connection.blocked: publishing waits while the broker
// is in a resource alarm instead of blocking inside the socket write.
type blockState struct {
	mu      sync.Mutex
	unblock chan struct{} // nil when not blocked
}

func (b *blockState) set(blocked bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch {
	case blocked && b.unblock == nil:
		b.unblock = make(chan struct{})
	case !blocked && b.unblock != nil:
		close(b.unblock)
		b.unblock = nil
	}
}

func (b *blockState) wait(ctx context.Context) error {
	b.mu.Lock()
	ch := b.unblock
	b.mu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("broker connection blocked: %w", errdefs.ErrUnavailable)
	}
}

// session is one live AMQP connection with a confirm-mode publish channel.
type session struct {
	conn   *amqp.Connection
	host   Host
	addr   string // host:port, never the credentials: safe to log and export
	log    *zap.Logger
	blocks blockState
	lost   chan struct{} // closed when the connection is gone
	wg     sync.WaitGroup

	pmu     sync.Mutex // serialises publish+confirm so a return maps to its publish
	pch     *amqp.Channel
	returns chan amqp.Return
}

// hostOrder chooses the broker of each connection attempt the way
// oslo.messaging 14 with kombu does: the hosts are shuffled once when the
// connection is made (impl_rabbit's Connection shuffles url.hosts), so a
// fleet sharing one transport_url spreads over the brokers; on failover
// [oslo_messaging_rabbit] kombu_failover_strategy picks the next one:
// round-robin walks the shuffled list, shuffle draws a random host every
// time (kombu's shufflecycle, which may draw the same host again).
type hostOrder struct {
	hosts   []Host
	shuffle bool
	next    int
	rnd     func(n int) int
}

// Failover strategies of kombu_failover_strategy.
const (
	FailoverRoundRobin = "round-robin"
	FailoverShuffle    = "shuffle"
)

func newHostOrder(hosts []Host, strategy string, rnd func(n int) int) (*hostOrder, error) {
	if rnd == nil {
		rnd = rand.IntN
	}
	o := &hostOrder{hosts: append([]Host(nil), hosts...), rnd: rnd}
	switch strategy {
	case "", FailoverRoundRobin:
	case FailoverShuffle:
		o.shuffle = true
	default:
		return nil, fmt.Errorf("kombu_failover_strategy %q: want %s or %s: %w", strategy, FailoverRoundRobin, FailoverShuffle, errdefs.ErrInvalidArgument)
	}
	for i := len(o.hosts) - 1; i > 0; i-- { // Fisher-Yates, like random.shuffle
		j := rnd(i + 1)
		o.hosts[i], o.hosts[j] = o.hosts[j], o.hosts[i]
	}
	return o, nil
}

// pick returns the host of the next attempt.
func (o *hostOrder) pick() Host {
	if o.shuffle && o.next > 0 { // the first connection takes the shuffled list's head, as kombu does
		return o.hosts[o.rnd(len(o.hosts))]
	}
	h := o.hosts[o.next%len(o.hosts)]
	o.next = (o.next + 1) % len(o.hosts)
	if o.shuffle {
		o.next = 1
	}
	return h
}

// openSession makes one pass of len(hosts) attempts in order's sequence;
// beat (may be nil) is called before each, as a dial may take dialTimeout.
func openSession(ctx context.Context, u *TransportURL, order *hostOrder, o RabbitOptions, connName string, beat func(), log *zap.Logger) (*session, error) {
	var errs []error
	for range order.hosts {
		if beat != nil {
			beat()
		}
		h := order.pick()
		s, err := dialHost(ctx, u, h, o, connName, log)
		if err == nil {
			return s, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("connect to broker: %w: %w", errors.Join(errs...), errdefs.ErrUnavailable)
}

func dialHost(ctx context.Context, u *TransportURL, h Host, o RabbitOptions, connName string, log *zap.Logger) (*session, error) {
	addr := net.JoinHostPort(h.Host, strconv.Itoa(h.Port))
	props := amqp.NewConnectionProperties()
	props.SetClientConnectionName(connName)
	cfg := amqp.Config{
		SASL:       []amqp.Authentication{&amqp.PlainAuth{Username: h.Username, Password: h.Password}},
		Vhost:      u.VHost,
		Properties: props,
		Heartbeat:  time.Duration(o.HeartbeatTimeout) * time.Second,
		Dial: func(network, a string) (net.Conn, error) {
			d := net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
			c, err := d.DialContext(ctx, network, a)
			if err != nil {
				return nil, err
			}
			// bound the TLS+AMQP handshake; amqp091 clears it once open
			return c, c.SetDeadline(time.Now().Add(dialTimeout))
		},
	}
	if cfg.Vhost == "" {
		cfg.Vhost = "/"
	}
	scheme := "amqp"
	if o.SSL {
		scheme = "amqps"
		tc, err := tlsConfig(o, h.Host)
		if err != nil {
			return nil, err
		}
		cfg.TLSClientConfig = tc
	}
	conn, err := amqp.DialConfig(scheme+"://"+addr+"/", cfg)
	if err != nil {
		// amqp091 errors never contain the password (it is sent in SASL only)
		return nil, fmt.Errorf("%s: %w", addr, err)
	}
	s := &session{conn: conn, host: h, addr: addr, log: log.With(zap.String("broker", addr)), lost: make(chan struct{})}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	blocked := conn.NotifyBlocked(make(chan amqp.Blocking, 4))
	s.wg.Add(1)
	go func() { // owned by the session: ends when the connection closes
		defer s.wg.Done()
		for {
			select {
			case b, ok := <-blocked:
				if !ok {
					blocked = nil
					continue
				}
				s.log.Warn("broker connection blocked state changed", zap.Bool("blocked", b.Active), zap.String("reason", b.Reason))
				s.blocks.set(b.Active)
			case e := <-closed:
				if e != nil {
					s.log.Warn("broker connection closed", zap.Error(e))
				}
				s.blocks.set(false)
				close(s.lost)
				return
			}
		}
	}()
	return s, nil
}

func (s *session) alive() bool {
	select {
	case <-s.lost:
		return false
	default:
		return !s.conn.IsClosed()
	}
}

func (s *session) close() {
	_ = s.conn.Close()
	s.wg.Wait()
}

// publish sends one message with publisher confirms. With mandatory set, a
// broker return (no queue bound) yields ErrMessageUndeliverable.
func (s *session) publish(ctx context.Context, exchange, key string, mandatory bool, msg amqp.Publishing) error {
	if err := s.blocks.wait(ctx); err != nil {
		return err
	}
	s.pmu.Lock()
	defer s.pmu.Unlock()
	if s.pch == nil || s.pch.IsClosed() {
		ch, err := s.conn.Channel()
		if err != nil {
			return fmt.Errorf("open publish channel: %v: %w", err, errdefs.ErrUnavailable)
		}
		if err := ch.Confirm(false); err != nil {
			_ = ch.Close()
			return fmt.Errorf("confirm mode: %v: %w", err, errdefs.ErrUnavailable)
		}
		s.pch = ch
		// buffered: amqp091 sends returns synchronously from its reader, before the ack
		s.returns = ch.NotifyReturn(make(chan amqp.Return, 64))
	}
	dc, err := s.pch.PublishWithDeferredConfirmWithContext(ctx, exchange, key, mandatory, false, msg)
	if err != nil {
		return fmt.Errorf("publish to %q/%q: %v: %w", exchange, key, err, errdefs.ErrUnavailable)
	}
	ack, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("publish to %q/%q: waiting for confirm: %w", exchange, key, err)
	}
	returned := false
	for drained := false; !drained; {
		select {
		case r, ok := <-s.returns:
			if !ok {
				drained = true
			} else if r.Exchange == exchange && r.RoutingKey == key && bytes.Equal(r.Body, msg.Body) {
				returned = true
			}
		default:
			drained = true
		}
	}
	if returned {
		return fmt.Errorf("no queue bound for %q/%q: %w", exchange, key, ErrMessageUndeliverable)
	}
	if !ack {
		return fmt.Errorf("publish to %q/%q not confirmed by the broker: %w", exchange, key, errdefs.ErrUnavailable)
	}
	return nil
}

// publishing is a message with oslo's properties (§1.3 of the research).
func publishing(body []byte, expiration time.Duration) amqp.Publishing {
	p := amqp.Publishing{
		ContentType:     contentType,
		ContentEncoding: contentEncoding,
		DeliveryMode:    amqp.Persistent,
		Headers:         amqp.Table{},
		Body:            body,
	}
	if expiration > 0 {
		p.Expiration = strconv.FormatInt(expiration.Milliseconds(), 10)
	}
	return p
}
