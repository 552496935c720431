package rpcapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/liveness"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/ticker"
)

// DefaultExchange is the agent's own control exchange (never the conductor's).
const DefaultExchange = "ironic_dpu"

// Target names where an RPC goes, like oslo_messaging.Target.
type Target struct {
	Exchange  string
	Topic     string
	Server    string
	Namespace string
	Version   string
	Fanout    bool
}

// ServerConfig configures an RPC server.
type ServerConfig struct {
	URL    string
	Rabbit RabbitOptions
	// Target: Topic and Server are required; Exchange defaults to DefaultExchange.
	Target Target
	// ListenShared also consumes the shared <topic> queue (load-balanced).
	ListenShared bool
	Dispatcher   *Dispatcher
	// Classify maps a handler error to its wire Failure. DispatchErrors never
	// reach it. Nil means DefaultClassify (builtins.RuntimeError).
	Classify func(error) Failure
	// OnConnect runs after every (re)connect once consuming; keep it short
	// (e.g. trigger a reconcile).
	OnConnect func()
	// Link, when set, is where the server records whether it is connected
	// (see Link); nil: the server keeps its own.
	Link   *Link
	Logger *zap.Logger
	// Beat, when set, is fed by the connection loop while it consumes,
	// dials or waits to reconnect (a broker outage is no hang); a loop
	// blocked past the liveness bound stops feeding it.
	Beat *liveness.Beat
	// Observe, when set, is told how long each dispatched request took and
	// its error (metrics). Malformed requests are not dispatched.
	Observe func(method string, took time.Duration, err error)

	// MaxMessageBytes bounds a request body (default 4 MiB); larger calls get
	// an error reply.
	MaxMessageBytes int
	// LimitHint, when set, ends that reply: what the limit is called and
	// what to do about it.
	LimitHint string
	// MaxConcurrent bounds handlers running at once (default 64).
	MaxConcurrent int
	// ShutdownGrace is how long Run waits for in-flight calls on shutdown (default 10 s).
	ShutdownGrace time.Duration
	// ReplyRetryTimeout is oslo's kombu_missing_consumer_retry_timeout (default 60 s).
	ReplyRetryTimeout time.Duration
	// DedupeSize is the number of remembered _unique_ids (default 4096).
	DedupeSize int
}

// Server is an oslo.messaging-compatible RPC server.
type Server struct {
	cfg         ServerConfig
	url         *TransportURL
	order       *hostOrder // used by Run only
	opts        RabbitOptions
	log         *zap.Logger
	fanoutQueue string
	fanoutOn    atomic.Bool // the fanout queue is declared and consumed
	seen        *dedupe
	link        *Link
	running     atomic.Bool
	// classifyMalformed: the caller's Classify also maps malformed requests
	// (an ErrMalformed is an errdefs.ErrInvalidArgument), so its callers see
	// one exception class for every bad input.
	classifyMalformed bool

	mu       sync.Mutex
	sess     *session
	sessSet  chan struct{} // closed when sess becomes non-nil
	inflight sync.WaitGroup
}

// NewServer validates cfg; nothing touches the network until Run.
func NewServer(cfg ServerConfig) (*Server, error) {
	if cfg.Target.Topic == "" || cfg.Target.Server == "" {
		return nil, fmt.Errorf("rpc server: topic and server are required: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Dispatcher == nil {
		return nil, fmt.Errorf("rpc server: no dispatcher: %w", errdefs.ErrInvalidArgument)
	}
	if cfg.Target.Exchange == "" {
		cfg.Target.Exchange = DefaultExchange
	}
	classifyMalformed := cfg.Classify != nil
	if cfg.Classify == nil {
		cfg.Classify = DefaultClassify
	}
	if cfg.Logger == nil {
		cfg.Logger = zap.NewNop()
	}
	if cfg.Link == nil {
		cfg.Link = &Link{}
	}
	if cfg.MaxMessageBytes <= 0 {
		cfg.MaxMessageBytes = 4 << 20
	}
	if cfg.MaxConcurrent <= 0 {
		cfg.MaxConcurrent = 64
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 10 * time.Second
	}
	if cfg.ReplyRetryTimeout <= 0 {
		cfg.ReplyRetryTimeout = 60 * time.Second
	}
	b, err := resolveBrokers(cfg.URL, cfg.Rabbit)
	if err != nil {
		return nil, err
	}
	log := cfg.Logger.With(zap.String("transport_url", b.url.Redacted()), zap.String("topic", cfg.Target.Topic), zap.String("server", cfg.Target.Server))
	if len(b.unknown) > 0 {
		log.Warn("ignoring unknown transport_url options", zap.Strings("options", b.unknown))
	}
	return &Server{
		cfg: cfg, url: b.url, order: b.order, opts: b.opts, log: log, link: cfg.Link,
		fanoutQueue:       FanoutQueueName(cfg.Target.Topic, cfg.Target.Server),
		seen:              newDedupe(cfg.DedupeSize),
		sessSet:           make(chan struct{}),
		classifyMalformed: classifyMalformed,
	}, nil
}

// Connected reports whether the server is consuming right now.
func (s *Server) Connected() bool { return s.link.Connected() }

// ServerQueue is the name of the per-server queue (<topic>.<server>).
func (s *Server) ServerQueue() string { return s.cfg.Target.Topic + "." + s.cfg.Target.Server }

// FanoutQueue is this server's fanout queue name.
func (s *Server) FanoutQueue() string { return s.fanoutQueue }

// FanoutQueueName is the fanout queue of server: <topic>_fanout_<server>.
// oslo adds a random suffix instead; naming it after the server lets a broker
// permission confine each DPU's user to its own queue (see agent/brokeracl),
// and a restarted agent takes over its predecessor's queue instead of leaving
// one behind until x-expires.
func FanoutQueueName(topic, server string) string { return topic + "_fanout_" + server }

func (s *Server) setSession(sess *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sess = sess
	if sess != nil {
		close(s.sessSet)
	} else {
		s.sessSet = make(chan struct{})
	}
}

// waitSession returns the live session, waiting for a reconnect if needed.
func (s *Server) waitSession(ctx context.Context) (*session, error) {
	for {
		s.mu.Lock()
		sess, ch := s.sess, s.sessSet
		s.mu.Unlock()
		if sess != nil {
			return sess, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("no broker connection: %w", errdefs.ErrUnavailable)
		}
	}
}

// Run serves until ctx is done, reconnecting with backoff. On return the
// consumers are cancelled, in-flight calls have replied (or ShutdownGrace
// passed) and the fanout queue is deleted.
func (s *Server) Run(ctx context.Context) error {
	if !s.running.CompareAndSwap(false, true) {
		return fmt.Errorf("rpc server already running: %w", errdefs.ErrConflict)
	}
	defer s.running.Store(false)
	// handlers outlive ctx by up to ShutdownGrace so they can still reply
	hctx, hcancel := context.WithCancel(context.WithoutCancel(ctx))
	defer hcancel()
	sem := make(chan struct{}, s.cfg.MaxConcurrent)
	attempt := 0
	beat := s.cfg.Beat
	for {
		beat.Beat()
		sess, err := openSession(ctx, s.url, s.order, s.opts, "ironic-dpu-agent:"+s.cfg.Target.Server, beat.Beat, s.log)
		if err == nil {
			var ch *amqp.Channel
			var dels []consumer
			ch, dels, err = s.setup(sess)
			if err == nil {
				attempt = 0
				s.setSession(sess)
				s.link.connected(sess.addr)
				s.log.Info("rpc server consuming", zap.String("broker", sess.addr), zap.Uint64("reconnects", s.link.Reconnects()),
					zap.String("queue", s.ServerQueue()), zap.String("fanout_queue", s.fanoutQueue))
				if s.cfg.OnConnect != nil {
					s.cfg.OnConnect()
				}
				s.consume(ctx, hctx, sess, dels, sem)
				s.link.down()
				if ctx.Err() != nil {
					s.shutdown(sess, ch, hcancel)
					return nil
				}
				s.setSession(nil)
				sess.close()
				s.log.Warn("broker connection lost; reconnecting", zap.String("broker", sess.addr))
			} else {
				sess.close()
			}
		}
		if ctx.Err() != nil {
			hcancel() // not connected: pending replies cannot be sent anyway
			s.waitInflight(0, hcancel)
			return nil
		}
		if err != nil {
			s.log.Warn("rpc server not connected", zap.Error(err), zap.Int("attempt", attempt))
		}
		if sleepBeating(ctx, retryDelay(s.opts, attempt), beat) != nil {
			hcancel()
			s.waitInflight(0, hcancel)
			return nil
		}
		attempt++
	}
}

// sleepBeating is sleepCtx that keeps feeding beat: waiting out a broker
// outage is progress, not a hang.
func sleepBeating(ctx context.Context, d time.Duration, beat *liveness.Beat) error {
	t := time.NewTimer(d)
	defer t.Stop()
	return beat.Wait(ctx, t.C, nil)
}

// consumer is one started basic.consume: its queue and its deliveries.
type consumer struct {
	queue string
	dels  <-chan amqp.Delivery
}

// setup declares oslo's server topology and starts the consumers.
func (s *Server) setup(sess *session) (*amqp.Channel, []consumer, error) {
	ch, err := sess.conn.Channel()
	if err != nil {
		return nil, nil, fmt.Errorf("open channel: %v: %w", err, errdefs.ErrUnavailable)
	}
	t, o := s.cfg.Target, s.opts
	d := durable(o)
	if ch, err = sess.ensureExchange(ch, s.log, t.Exchange, amqp.ExchangeTopic, d, o.AMQPAutoDelete); err != nil {
		return nil, nil, err
	}
	type q struct {
		name, key, exchange string
		durable, autoDelete bool
		args                amqp.Table
	}
	qs := []q{{s.ServerQueue(), s.ServerQueue(), t.Exchange, d, o.AMQPAutoDelete, serverQueueArgs(o)}}
	if s.cfg.ListenShared {
		qs = append(qs, q{t.Topic, t.Topic, t.Exchange, d, o.AMQPAutoDelete, serverQueueArgs(o)})
	}
	fanoutEx := t.Topic + "_fanout"
	ch, err = sess.ensureExchange(ch, s.log, fanoutEx, amqp.ExchangeFanout, false, true)
	switch {
	case err == nil:
		qs = append(qs, q{s.fanoutQueue, t.Topic, fanoutEx, false, false, transientQueueArgs(o)})
	case errors.Is(err, ErrAccessRefused):
		// A per-DPU broker user may not create the shared fanout exchange
		// (it could delete it too); it exists only while a conductor keeps
		// it, and the dpu driver never sends fanout casts.
		s.log.Warn("fanout exchange absent and this broker user may not create it; not consuming fanout casts",
			zap.String("exchange", fanoutEx), zap.Error(err))
		if ch, err = sess.conn.Channel(); err != nil {
			return nil, nil, fmt.Errorf("open channel: %v: %w", err, errdefs.ErrUnavailable)
		}
	default:
		return nil, nil, err
	}
	// Bound what the broker pushes ahead: requests are acked on receipt but
	// wait for a handler slot, and each may be MaxMessageBytes.
	if err := ch.Qos(o.QosPrefetchCount, 0, false); err != nil {
		return nil, nil, fmt.Errorf("basic.qos prefetch %d: %v: %w", o.QosPrefetchCount, err, errdefs.ErrUnavailable)
	}
	var dels []consumer
	for _, q := range qs {
		if _, err := ch.QueueDeclare(q.name, q.durable, q.autoDelete, false, false, q.args); err != nil {
			return nil, nil, declareErr(s.log, "queue", q.name, err)
		}
		if err := ch.QueueBind(q.name, q.key, q.exchange, false, nil); err != nil {
			return nil, nil, fmt.Errorf("bind %s: %v: %w", q.name, err, errdefs.ErrUnavailable)
		}
		dc, err := ch.Consume(q.name, q.name, false, false, false, false, nil)
		if err != nil {
			return nil, nil, fmt.Errorf("consume %s: %v: %w", q.name, err, errdefs.ErrUnavailable)
		}
		dels = append(dels, consumer{queue: q.name, dels: dc})
	}
	s.fanoutOn.Store(qs[len(qs)-1].name == s.fanoutQueue)
	return ch, dels, nil
}

// consume feeds deliveries to handlers until ctx ends or the connection is lost.
func (s *Server) consume(ctx, hctx context.Context, sess *session, dels []consumer, sem chan struct{}) {
	merged := make(chan amqp.Delivery)
	done := make(chan struct{})
	// A broker-side basic.cancel (queue deleted, its cluster node gone)
	// closes one delivery channel while the connection lives on; the first
	// queue whose consumer ended is sent on cancelled.
	cancelled := make(chan string, 1)
	var fwd sync.WaitGroup
	for _, c := range dels {
		fwd.Add(1)
		go func() { // ends when the consumer is cancelled or the channel closes
			defer fwd.Done()
			defer func() {
				select {
				case cancelled <- c.queue:
				default:
				}
			}()
			for d := range c.dels {
				select {
				case merged <- d:
				case <-done:
					// not taken: it was not acked either; oslo semantics are at-most-once
					_ = d.Nack(false, true)
				}
			}
		}()
	}
	allClosed := make(chan struct{})
	go func() { fwd.Wait(); close(allClosed) }()
	defer func() {
		close(done)
		if ctx.Err() == nil {
			<-allClosed // connection lost: forwarders end with their channels
		}
	}()
	tick, stopTick := s.cfg.Beat.Ticker()
	defer stopTick()
	for {
		s.cfg.Beat.Beat()
		select {
		case <-ctx.Done():
			return
		case <-sess.lost:
			return
		case <-tick:
		case q := <-cancelled:
			if ctx.Err() == nil && sess.alive() {
				// like oslo on ConsumerCancelled: reconnect and redeclare
				s.log.Warn("broker cancelled a consumer; reconnecting", zap.String("queue", q), zap.String("broker", sess.addr))
				_ = sess.conn.Close() // ends the other consumers too
			}
			return
		case d := <-merged:
			// ack on receipt, like oslo: at-most-once, never redelivered
			if err := d.Ack(false); err != nil {
				s.log.Warn("discarding RPC request: ack failed", zap.Error(err))
				continue
			}
			if why := s.foreign(d); why != "" {
				// never answered: the reply address is the sender's choice
				s.log.Warn("dropping RPC request that did not come through the control exchange",
					zap.String("reason", why), zap.String("exchange", d.Exchange),
					zap.String("routing_key", d.RoutingKey), zap.Int("bytes", len(d.Body)))
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			s.inflight.Add(1)
			go func() { // owned by Run via s.inflight
				defer s.inflight.Done()
				defer func() { <-sem }()
				s.process(hctx, d)
			}()
		}
	}
}

// foreign says why a delivery must not be served, or "" when it came the
// way the conductor sends requests: published to the control exchange with
// this server's routing key, or to the fanout exchange. Every broker user
// that can reply (write on the default exchange) can also publish straight
// into any queue by name, and a user with write on the control exchange can
// dead-letter a message into it under any routing key (the broker applies
// topic permissions to neither); the exchange a delivery names is the one
// its publisher chose, and dead-lettering leaves x-death headers.
func (s *Server) foreign(d amqp.Delivery) string {
	for _, h := range []string{"x-death", "x-first-death-exchange", "x-first-death-queue", "x-first-death-reason"} {
		if _, ok := d.Headers[h]; ok {
			return "dead-lettered (" + h + " header)"
		}
	}
	t := s.cfg.Target
	switch d.Exchange {
	case t.Topic + "_fanout":
		return ""
	case t.Exchange:
		if d.RoutingKey == s.ServerQueue() || (s.cfg.ListenShared && d.RoutingKey == t.Topic) {
			return ""
		}
		return "routing key is not this server's"
	case "":
		return "published straight to the queue (default exchange)"
	default:
		return "published to another exchange"
	}
}

func (s *Server) shutdown(sess *session, ch *amqp.Channel, hcancel context.CancelFunc) {
	tags := []string{s.ServerQueue()} // consumer tag = queue name
	if s.fanoutOn.Load() {
		tags = append(tags, s.fanoutQueue)
	}
	if s.cfg.ListenShared {
		tags = append(tags, s.cfg.Target.Topic)
	}
	for _, tag := range tags {
		_ = ch.Cancel(tag, false)
	}
	s.waitInflight(s.cfg.ShutdownGrace, hcancel)
	if s.fanoutOn.Load() {
		if dch, err := sess.conn.Channel(); err == nil {
			if _, err := dch.QueueDelete(s.fanoutQueue, false, false, false); err != nil {
				s.log.Warn("could not delete fanout queue", zap.String("queue", s.fanoutQueue), zap.Error(err))
			}
		}
	}
	s.setSession(nil)
	sess.close()
	s.log.Info("rpc server stopped")
}

// waitInflight waits up to grace for running handlers, then cancels them and
// waits one more second: a handler that ignores its context cannot be
// stopped, and must not hang the agent's exit.
func (s *Server) waitInflight(grace time.Duration, hcancel context.CancelFunc) {
	waited := make(chan struct{})
	go func() { s.inflight.Wait(); close(waited) }() // ends when the last handler does
	select {
	case <-waited:
		return
	case <-time.After(grace):
	}
	if grace > 0 {
		s.log.Warn("shutdown grace expired; cancelling in-flight calls")
	}
	hcancel()
	select {
	case <-waited:
	case <-time.After(time.Second):
		s.log.Error("in-flight calls ignore cancellation; leaving them behind")
	}
}

// process handles one delivery; it never panics the server.
func (s *Server) process(ctx context.Context, d amqp.Delivery) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic while handling RPC request", zap.Any("panic", r))
		}
	}()
	in, err := s.decode(d)
	if err != nil {
		var msgID, replyQ string
		if in != nil {
			msgID, replyQ = in.MsgID, in.ReplyQ
		}
		s.log.Warn("rejecting malformed RPC message", zap.Error(err), zap.String("msg_id", msgID), zap.Int("bytes", len(d.Body)))
		if msgID != "" && replyQ != "" {
			f := s.malformedFailure(err)
			s.reply(ctx, in, nil, &f)
		}
		return
	}
	if !s.seen.firstTime(in.UniqueID) {
		s.log.Info("ignoring duplicate message", zap.String("unique_id", in.UniqueID), zap.String("method", in.Method))
		return
	}
	// bytes: the request body's size (what max_message_bytes bounds)
	log := s.log.With(zap.String("method", in.Method), zap.String("msg_id", in.MsgID), zap.String("version", in.Version),
		zap.Int("bytes", len(d.Body)))
	rid, grid := RequestIDs(in.Context)
	if rid != "" {
		log = log.With(zap.String("request_id", rid))
	}
	if grid != "" {
		log = log.With(zap.String("global_request_id", grid))
	}
	isCall := in.MsgID != "" && in.ReplyQ != ""
	stopBeats := func() {}
	if iv := heartbeatInterval(in.MonitorTimeout); isCall && iv > 0 {
		stopBeats = runHeartbeats(ctx, iv, func(ctx context.Context) {
			body, err := EncodeReply(in.MsgID, nil, nil, false)
			if err == nil {
				err = s.publishOnce(ctx, in.ReplyQ, body)
			}
			if err != nil && ctx.Err() == nil {
				log.Warn("call-monitor heartbeat failed", zap.Error(err))
			}
		})
	}
	start := time.Now()
	result, herr := s.dispatch(ctx, &in.Request)
	stopBeats()
	if s.cfg.Observe != nil {
		s.cfg.Observe(in.Method, time.Since(start), herr)
	}
	if herr != nil {
		log.Info("rpc method failed", zap.Error(herr), zap.Duration("took", time.Since(start)))
	} else {
		log.Debug("rpc method done", zap.Duration("took", time.Since(start)))
	}
	if !isCall {
		return
	}
	if herr != nil {
		var de *DispatchError
		f := DefaultClassify(herr)
		if !errors.As(herr, &de) {
			f = s.cfg.Classify(herr)
		}
		s.reply(ctx, in, nil, &f)
		return
	}
	raw, err := json.Marshal(result)
	if err != nil {
		f := Failure{Class: "ValueError", Module: "builtins", Message: "cannot encode result: " + err.Error()}
		s.reply(ctx, in, nil, &f)
		return
	}
	s.reply(ctx, in, raw, nil)
}

// dispatch runs the handler; a panic becomes an error so the caller still
// gets a reply instead of a timeout.
func (s *Server) dispatch(ctx context.Context, req *Request) (result any, err error) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("panic in RPC handler", zap.String("method", req.Method), zap.Any("panic", r), zap.Stack("stack"))
			result, err = nil, fmt.Errorf("internal error in %s: %v", req.Method, r)
		}
	}()
	return s.cfg.Dispatcher.Dispatch(ctx, req)
}

// malformedFailure is the reply to a request that could not be parsed.
func (s *Server) malformedFailure(err error) Failure {
	if s.classifyMalformed {
		return s.cfg.Classify(err)
	}
	return malformedFailure(err)
}

// decode checks size and content type and parses the request; on error the
// returned incoming carries whatever reply address could be recovered.
func (s *Server) decode(d amqp.Delivery) (*incoming, error) {
	if len(d.Body) > s.cfg.MaxMessageBytes {
		// never parsed: only its ends are scanned for the reply address
		in := &incoming{}
		in.MsgID, in.ReplyQ = scanReplyInfo(d.Body)
		hint := ""
		if s.cfg.LimitHint != "" {
			hint = " (" + s.cfg.LimitHint + ")"
		}
		return in, fmt.Errorf("message of %d bytes exceeds the %d byte limit%s: %w", len(d.Body), s.cfg.MaxMessageBytes, hint, ErrMalformed)
	}
	if d.ContentType != contentType {
		in := &incoming{}
		in.MsgID, in.ReplyQ = replyInfoFromBody(d.Body)
		return in, fmt.Errorf("content type %q is not %s: %w", d.ContentType, contentType, ErrMalformed)
	}
	fields, err := DecodeEnvelope(d.Body)
	if err != nil {
		in := &incoming{}
		in.MsgID, in.ReplyQ = replyInfoFromBody(d.Body)
		return in, err
	}
	in, err := parseRequest(fields)
	if err != nil {
		in.MsgID, in.ReplyQ = replyInfo(fields)
		return in, err
	}
	return in, nil
}

func (s *Server) reply(ctx context.Context, in *incoming, result json.RawMessage, f *Failure) {
	body, err := EncodeReply(in.MsgID, result, f, true)
	if err != nil {
		s.log.Error("cannot encode reply", zap.Error(err))
		fb := Failure{Class: "ValueError", Module: "builtins", Message: "cannot encode reply"}
		if body, err = EncodeReply(in.MsgID, nil, &fb, true); err != nil {
			return
		}
	}
	if err := s.sendReply(ctx, in.ReplyQ, body); err != nil {
		s.log.Warn("reply not delivered", zap.String("msg_id", in.MsgID), zap.String("reply_q", in.ReplyQ), zap.Error(err))
	}
}

// sendReply publishes to ("", replyQ) with mandatory=true, retrying every
// 0.25 s while the reply queue is missing and across reconnects, for up to
// ReplyRetryTimeout like oslo.
func (s *Server) sendReply(ctx context.Context, replyQ string, body []byte) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReplyRetryTimeout)
	defer cancel()
	for {
		sess, err := s.waitSession(ctx)
		if err != nil {
			return err
		}
		err = sess.publish(ctx, "", replyQ, true, publishing(body, 0))
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return err
		}
		if !errors.Is(err, ErrMessageUndeliverable) && sess.alive() {
			s.log.Debug("reply publish failed; retrying", zap.Error(err))
		}
		if sleepCtx(ctx, 250*time.Millisecond) != nil {
			return err
		}
	}
}

// Publish sends body (JSON) to exchange with routing key key on the
// server's live connection, mandatory and confirmed: ErrMessageUndeliverable
// when no queue is bound for the key, ErrUnavailable while disconnected or
// when the broker refused it (e.g. its topic permission). Not retried here.
func (s *Server) Publish(ctx context.Context, exchange, key string, body []byte) error {
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("no broker connection: %w", errdefs.ErrUnavailable)
	}
	return sess.publish(ctx, exchange, key, true, publishing(body, 0))
}

// publishOnce sends a heartbeat; a lost heartbeat is harmless.
func (s *Server) publishOnce(ctx context.Context, replyQ string, body []byte) error {
	s.mu.Lock()
	sess := s.sess
	s.mu.Unlock()
	if sess == nil {
		return fmt.Errorf("no broker connection: %w", errdefs.ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	return sess.publish(ctx, "", replyQ, true, publishing(body, 0))
}

// heartbeatInterval mirrors oslo's _watchdog: int(_timeout)/2 seconds, and
// no heartbeats at all when _timeout is null or the interval is under 1 s.
func heartbeatInterval(t *float64) time.Duration {
	if t == nil {
		return 0
	}
	iv := float64(int64(*t)) / 2
	if iv < 1 {
		return 0
	}
	return time.Duration(iv * float64(time.Second))
}

// runHeartbeats calls beat every interval until the returned stop is
// called; stop waits for the goroutine so no heartbeat follows the reply.
func runHeartbeats(ctx context.Context, interval time.Duration, beat func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		ticker.Every(ctx, interval, beat)
	}()
	return func() { cancel(); <-done }
}
