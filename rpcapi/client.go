package rpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/config"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// ClientConfig configures an RPC client.
type ClientConfig struct {
	URL    string
	Rabbit config.RabbitOpts
	Logger *zap.Logger
	// Exchange is used for targets that name none (default DefaultExchange).
	Exchange string
	// Name goes into the connection_name property (default "client:<pid>").
	Name string
	// Timeout is the default call timeout (default 60 s, oslo's rpc_response_timeout).
	Timeout time.Duration
}

// CallOptions are per-call settings, like oslo's prepare().
type CallOptions struct {
	// Timeout bounds the call (0 = ClientConfig.Timeout); also the AMQP expiration.
	Timeout time.Duration
	// CallMonitorTimeout asks the server for heartbeats (sent as _timeout in
	// whole seconds); the call fails if none arrives within it.
	CallMonitorTimeout time.Duration
	// AtLeastOnce publishes with mandatory=true: no queue -> ErrMessageUndeliverable at once.
	AtLeastOnce bool
	// Context becomes the _context_* keys.
	Context map[string]any
}

// Client is an oslo.messaging-compatible RPC client with one reply queue.
type Client struct {
	cfg    ClientConfig
	url    *TransportURL
	opts   config.RabbitOpts
	log    *zap.Logger
	replyQ string

	mu       sync.Mutex // guards sess, order, declared, closed
	sess     *session
	readDone chan struct{}
	order    *hostOrder
	declared map[string]bool
	closed   bool

	pmu     sync.Mutex
	pending map[string]chan *replyMsg
}

// NewClient connects and declares the reply queue.
func NewClient(ctx context.Context, cfg ClientConfig) (*Client, error) {
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("client:%d", os.Getpid())
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 60 * time.Second
	}
	u, err := ParseTransportURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	opts, _, err := u.ApplyQuery(cfg.Rabbit)
	if err != nil {
		return nil, err
	}
	order, err := newHostOrder(u.Hosts, opts.KombuFailoverStrategy, nil)
	if err != nil {
		return nil, err
	}
	c := &Client{cfg: cfg, url: u, opts: opts, order: order, log: cfg.Logger.With(zap.String("transport_url", u.Redacted())),
		replyQ: "reply_" + newID(), pending: map[string]chan *replyMsg{}}
	if _, err := c.session(ctx); err != nil {
		return nil, err
	}
	return c, nil
}

// session returns a live session, reconnecting (one pass over the hosts) if needed.
func (c *Client) session(ctx context.Context) (*session, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, fmt.Errorf("rpc client closed: %w", errdefs.ErrUnavailable)
	}
	if c.sess != nil && c.sess.alive() {
		return c.sess, nil
	}
	if c.sess != nil {
		c.sess.close()
		<-c.readDone
		c.sess = nil
	}
	sess, err := openSession(ctx, c.url, c.order, c.opts, "ironic-dpu-agent:"+c.cfg.Name, nil, c.log)
	if err != nil {
		return nil, err
	}
	ch, err := sess.conn.Channel()
	if err == nil {
		_, err = ch.QueueDeclare(c.replyQ, false, false, false, false, transientQueueArgs(c.opts))
		if err != nil {
			err = declareErr(c.log, "queue", c.replyQ, err)
		}
	}
	var dels <-chan amqp.Delivery
	if err == nil {
		dels, err = ch.Consume(c.replyQ, "", true, false, false, false, nil)
	}
	if err != nil {
		sess.close()
		return nil, fmt.Errorf("reply queue %s: %w", c.replyQ, err)
	}
	c.log.Debug("rpc client connected", zap.String("broker", sess.addr))
	c.sess, c.declared, c.readDone = sess, map[string]bool{}, make(chan struct{})
	go c.readReplies(sess, dels, c.readDone) // ends when the connection closes
	return sess, nil
}

func (c *Client) readReplies(sess *session, dels <-chan amqp.Delivery, done chan struct{}) {
	defer close(done)
	// the consumer can also end alone (reply queue deleted): drop the
	// connection so the next call reconnects and redeclares it
	defer func() { _ = sess.conn.Close() }()
	for d := range dels {
		m, err := decodeReply(d.Body)
		if err != nil {
			c.log.Warn("dropping malformed reply", zap.Error(err))
			continue
		}
		c.pmu.Lock()
		ch := c.pending[m.MsgID]
		c.pmu.Unlock()
		if ch == nil {
			c.log.Debug("reply for unknown or finished call", zap.String("msg_id", m.MsgID))
			continue
		}
		select {
		case ch <- m:
		default:
			c.log.Warn("reply dropped: caller not keeping up", zap.String("msg_id", m.MsgID))
		}
	}
}

// decodeReply parses a reply body.
func decodeReply(body []byte) (*replyMsg, error) {
	fields, err := DecodeEnvelope(body)
	if err != nil {
		return nil, err
	}
	m := &replyMsg{}
	if m.MsgID, err = optString(fields, "_msg_id"); err != nil {
		return nil, err
	}
	m.Result = fields["result"]
	_ = json.Unmarshal(fields["ending"], &m.Ending)
	if raw, ok := fields["failure"]; ok && !isNull(raw) {
		var f string
		if json.Unmarshal(raw, &f) != nil {
			f = string(raw) // tolerate an object from a non-conforming server
		}
		m.Failure = &f
	}
	return m, nil
}

// Close stops the client. Calls in progress fail.
func (c *Client) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil
	}
	c.closed = true
	if c.sess != nil {
		c.sess.close()
		<-c.readDone
	}
	return nil
}

func (c *Client) route(t Target) (exchange, kind, key string, err error) {
	if t.Topic == "" {
		return "", "", "", fmt.Errorf("rpc target has no topic: %w", errdefs.ErrInvalidArgument)
	}
	if t.Fanout {
		return t.Topic + "_fanout", amqp.ExchangeFanout, "", nil
	}
	exchange = t.Exchange
	if exchange == "" {
		exchange = c.cfg.Exchange
	}
	key = t.Topic
	if t.Server != "" {
		key += "." + t.Server
	}
	return exchange, amqp.ExchangeTopic, key, nil
}

// declareExchange declares like an oslo publisher does, on a throwaway
// channel so a 406 cannot close the publish channel.
func (c *Client) declareExchange(sess *session, name, kind string) error {
	c.mu.Lock()
	done := c.declared[name]
	c.mu.Unlock()
	if done {
		return nil
	}
	ch, err := sess.conn.Channel()
	if err != nil {
		return fmt.Errorf("open channel: %v: %w", err, errdefs.ErrUnavailable)
	}
	defer ch.Close()
	if kind == amqp.ExchangeFanout {
		err = ch.ExchangeDeclare(name, kind, false, true, false, false, nil)
	} else {
		err = ch.ExchangeDeclare(name, kind, durable(c.opts), c.opts.AMQPAutoDelete, false, false, nil)
	}
	if err != nil {
		return declareErr(c.log, "exchange", name, err)
	}
	c.mu.Lock()
	c.declared[name] = true
	c.mu.Unlock()
	return nil
}

func (c *Client) message(t Target, method string, args any, o CallOptions) (map[string]any, error) {
	rawArgs := json.RawMessage("{}")
	if args != nil {
		b, err := json.Marshal(args)
		if err != nil {
			return nil, fmt.Errorf("encode args of %s: %v: %w", method, err, errdefs.ErrInvalidArgument)
		}
		if len(b) == 0 || b[0] != '{' {
			return nil, fmt.Errorf("args of %s must encode to a JSON object: %w", method, errdefs.ErrInvalidArgument)
		}
		rawArgs = b
	}
	m := map[string]any{"method": method, "args": rawArgs, "_unique_id": newID()}
	if t.Namespace != "" {
		m["namespace"] = t.Namespace
	}
	if t.Version != "" {
		m["version"] = t.Version
	}
	for k, v := range o.Context {
		m[contextPrefix+k] = v
	}
	return m, nil
}

// publish sends m and returns the session it went out on.
func (c *Client) publish(ctx context.Context, t Target, m map[string]any, mandatory bool, expiration time.Duration) (*session, error) {
	exchange, kind, key, err := c.route(t)
	if err != nil {
		return nil, err
	}
	body, err := EncodeEnvelope(m)
	if err != nil {
		return nil, err
	}
	sess, err := c.session(ctx)
	if err != nil {
		return nil, err
	}
	if err := c.declareExchange(sess, exchange, kind); err != nil {
		return nil, err
	}
	return sess, sess.publish(ctx, exchange, key, mandatory, publishing(body, expiration))
}

// Cast sends a one-way message (fanout when t.Fanout); it returns once the
// broker confirmed it.
func (c *Client) Cast(ctx context.Context, t Target, method string, args any, o CallOptions) error {
	m, err := c.message(t, method, args, o)
	if err != nil {
		return err
	}
	_, err = c.publish(ctx, t, m, o.AtLeastOnce && !t.Fanout, 0)
	return err
}

// Call sends a request and waits for the reply with oslo's semantics: the
// final message has ending=true, ending=false ones are heartbeats, and a
// failure becomes *RemoteError.
func (c *Client) Call(ctx context.Context, t Target, method string, args any, o CallOptions) (json.RawMessage, error) {
	if t.Fanout {
		return nil, fmt.Errorf("a call cannot be used with fanout: %w", errdefs.ErrInvalidArgument)
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = c.cfg.Timeout
	}
	m, err := c.message(t, method, args, o)
	if err != nil {
		return nil, err
	}
	msgID := newID()
	m["_msg_id"], m["_reply_q"], m["_timeout"] = msgID, c.replyQ, nil
	if o.CallMonitorTimeout > 0 {
		m["_timeout"] = int(o.CallMonitorTimeout.Seconds())
	}
	ch := make(chan *replyMsg, 16)
	c.pmu.Lock()
	c.pending[msgID] = ch
	c.pmu.Unlock()
	defer func() {
		c.pmu.Lock()
		delete(c.pending, msgID)
		c.pmu.Unlock()
	}()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	var monitor <-chan time.Time
	var mt *time.Timer
	if o.CallMonitorTimeout > 0 {
		mt = time.NewTimer(o.CallMonitorTimeout)
		defer mt.Stop()
		monitor = mt.C
	}
	pctx, cancel := context.WithTimeout(ctx, timeout)
	sess, err := c.publish(pctx, t, m, o.AtLeastOnce, timeout)
	cancel()
	if err != nil {
		return nil, err
	}
	lost := sess.lost // replies come back on the connection the request left on
	var acc replyAccumulator
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-deadline.C:
			return nil, fmt.Errorf("%w (message ID %s, %s)", ErrMessagingTimeout, msgID, timeout)
		case <-monitor:
			return nil, fmt.Errorf("%w (no call-monitor heartbeat for %s, message ID %s)", ErrMessagingTimeout, o.CallMonitorTimeout, msgID)
		case <-lost:
			return nil, fmt.Errorf("broker connection lost while waiting for message ID %s: %w", msgID, errdefs.ErrUnavailable)
		case r := <-ch:
			res, done, heartbeat, err := acc.add(r)
			if err != nil || done {
				return res, err
			}
			if heartbeat && mt != nil {
				mt.Reset(o.CallMonitorTimeout)
			}
		}
	}
}

// replyAccumulator is oslo's ReplyWaiter loop: a failure ends the call, the
// last non-null result wins, ending=false without a result is a heartbeat,
// and ending=true finishes (so old two-message replies work too).
type replyAccumulator struct{ final json.RawMessage }

func (a *replyAccumulator) add(r *replyMsg) (result json.RawMessage, done, heartbeat bool, err error) {
	if r.Failure != nil {
		re, err := parseFailure(*r.Failure)
		if err != nil {
			return nil, true, false, err
		}
		return nil, true, false, re
	}
	if !isNull(r.Result) {
		a.final = r.Result
	} else if !r.Ending {
		heartbeat = true
	}
	if r.Ending {
		if a.final == nil {
			a.final = json.RawMessage("null")
		}
		return a.final, true, false, nil
	}
	return nil, false, heartbeat, nil
}

// IsRemote reports whether err is a remote failure of the given class.
func IsRemote(err error, class string) bool {
	var re *RemoteError
	return errors.As(err, &re) && re.Class == class
}
