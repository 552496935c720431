// Package spdk is a JSON-RPC 2.0 client for SPDK's unix socket (also used by
// NVIDIA SNAP, which serves the same protocol). Its shape follows
// github.com/spdk/spdk/go/rpc (Call, Close, *Error with the numeric code) so
// that module can replace it once the proxy serves it; unlike go/rpc it takes a
// context, is safe for concurrent use, matches replies by id (SPDK answers
// asynchronous handlers out of order) and re-dials after SPDK restarts.
package spdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Error is an error object returned by SPDK. Code is SPDK's number as sent:
// JSON-RPC codes (-32602 ...), negative errno values, and the odd positive one
// (bdev_nvme_get_controllers answers +22 for an unknown name in v24.09).
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("Code=%d Msg=%s", e.Code, e.Message) }

// Is makes every SPDK error an errdefs.ErrStorage, so the RPC edge can
// classify it without knowing SPDK codes; -108 (SPDK shutting down answers
// what is still pending with it) is errdefs.ErrUnavailable too, like a
// dropped connection.
func (e *Error) Is(target error) bool {
	return target == errdefs.ErrStorage || (target == errdefs.ErrUnavailable && e.Code == CodeESHUTDOWN)
}

// JSON-RPC and errno codes SPDK uses that callers test for.
const (
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	CodeENOENT         = -2
	CodeEIO            = -5
	CodeENXIO          = -6
	CodeEEXIST         = -17
	CodeENODEV         = -19
	CodeEINVAL         = -22
	CodeESHUTDOWN      = -108
	CodeETIMEDOUT      = -110
	CodeEALREADY       = -114
)

// HasCode reports whether err carries an SPDK error with one of codes.
func HasCode(err error, codes ...int) bool {
	var e *Error
	if !errors.As(err, &e) {
		return false
	}
	for _, c := range codes {
		if e.Code == c {
			return true
		}
	}
	return false
}

type request struct {
	Version string `json:"jsonrpc"`
	Method  string `json:"method"`
	Params  any    `json:"params,omitempty"`
	ID      uint64 `json:"id"`
}

type response struct {
	ID     json.RawMessage `json:"id"`
	Result json.RawMessage `json:"result"`
	Error  *Error          `json:"error"`
}

// Client talks to one SPDK RPC socket. The zero value is not usable; use New.
type Client struct {
	network, address string
	log              *zap.Logger
	dialTimeout      time.Duration
	callTimeout      atomic.Int64 // nanoseconds; 0 = only the caller's ctx
	nextID           atomic.Uint64

	onReconnect    func()
	redialInterval time.Duration

	// lostc tells Run that SPDK closed an established connection.
	lostc chan struct{}

	mu   sync.Mutex // guards conn and closed
	conn *conn
	// closed is set by Close; later calls fail.
	closed bool
}

// Option configures a Client.
type Option func(*Client)

// WithOnReconnect makes a lost connection an event: once SPDK closed an
// established connection (it died or restarted), Run re-dials every redial
// interval and calls f as soon as SPDK accepts a connection again. A
// restarted SPDK starts empty, so the owner reconciles in f; without this
// nothing would notice a restart that is quicker than the health probe.
// f must not block. The owner must call Run.
func WithOnReconnect(f func()) Option { return func(c *Client) { c.onReconnect = f } }

// WithRedialInterval sets how often the client re-dials after losing SPDK
// (default 200ms); it bounds the delay between SPDK answering again and f.
func WithRedialInterval(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.redialInterval = d
		}
	}
}

// New returns a client for a unix socket path (or "tcp" host:port when
// network is "tcp"). It does not dial: SPDK may start after the agent.
func New(network, address string, log *zap.Logger, opts ...Option) *Client {
	if log == nil {
		log = zap.NewNop()
	}
	c := &Client{network: network, address: address, log: log, dialTimeout: 5 * time.Second,
		redialInterval: 200 * time.Millisecond, lostc: make(chan struct{}, 1)}
	for _, o := range opts {
		o(c)
	}
	return c
}

// NewUnix is New("unix", path, log, opts...).
func NewUnix(path string, log *zap.Logger, opts ...Option) *Client {
	return New("unix", path, log, opts...)
}

// SetCallTimeout bounds every call ([spdk] rpc_timeout) on top of the
// caller's context; 0 removes the bound.
func (c *Client) SetCallTimeout(d time.Duration) { c.callTimeout.Store(int64(d)) }

// Address returns the socket the client dials.
func (c *Client) Address() string { return c.address }

// Close drops the connection; pending calls fail with ErrUnavailable.
func (c *Client) Close() error {
	c.mu.Lock()
	cn := c.conn
	c.conn = nil
	c.closed = true
	c.mu.Unlock()
	if cn != nil {
		cn.shutdown(errors.New("client closed"))
	}
	return nil
}

// lost is called when SPDK closed an established connection: it wakes Run
// (never blocks; one pending wake-up covers any number of losses).
func (c *Client) lost() {
	if c.onReconnect == nil {
		return
	}
	select {
	case c.lostc <- struct{}{}:
	default:
	}
}

// Run watches for lost connections until ctx is done (WithOnReconnect): after
// each loss it re-dials until SPDK accepts a connection, then calls the
// reconnect function. Nothing is re-dialled in the background unless the
// owner runs it; calls re-dial on their own either way.
func (c *Client) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.lostc:
		}
		c.log.Warn("SPDK closed the connection; re-dialling", zap.String("socket", c.address))
		if c.redial(ctx) {
			// Losses seen while re-dialling were of the old connection.
			select {
			case <-c.lostc:
			default:
			}
			c.log.Info("SPDK answers again; requesting a reconcile", zap.String("socket", c.address))
			c.onReconnect()
		}
	}
}

// redial dials every redial interval until SPDK accepts a connection (true)
// or ctx is done (false).
func (c *Client) redial(ctx context.Context) bool {
	t := time.NewTicker(c.redialInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
		dctx, cancel := context.WithTimeout(ctx, c.redialInterval)
		_, _, err := c.getConn(dctx)
		cancel()
		if err == nil {
			return true
		}
	}
}

// Call sends method with params (nil, or something that marshals to a JSON
// object or array) and decodes the result into result (a pointer, or nil to
// discard it). An SPDK error comes back as *Error (errors.As); a connection
// problem wraps errdefs.ErrUnavailable; ctx bounds the whole call.
func (c *Client) Call(ctx context.Context, method string, params any, result any) error {
	if err := checkParams(params); err != nil {
		return fmt.Errorf("spdk %s: %w: %w", method, errdefs.ErrInvalidArgument, err)
	}
	id := c.nextID.Add(1)
	// Compact, no HTML escaping: SPDK reads the bytes as sent.
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(request{Version: "2.0", Method: method, Params: params, ID: id}); err != nil {
		return fmt.Errorf("spdk %s: encode params: %w: %w", method, errdefs.ErrInvalidArgument, err)
	}
	msg := bytes.TrimRight(buf.Bytes(), "\n")
	if d := time.Duration(c.callTimeout.Load()); d > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, d)
		defer cancel()
	}

	ch := make(chan response, 1)
	var cn *conn
	for attempt := 0; ; attempt++ {
		var fresh bool
		var err error
		cn, fresh, err = c.getConn(ctx)
		if err != nil {
			return fmt.Errorf("spdk %s: %w", method, err)
		}
		err = cn.send(ctx, id, msg, ch)
		if err == nil {
			break
		}
		// The write failed on a connection SPDK had already closed (it
		// restarted): nothing was delivered, so re-dial once and resend.
		c.drop(cn)
		c.lost()
		if fresh || attempt > 0 {
			return fmt.Errorf("spdk %s: %w", method, err)
		}
	}
	select {
	case <-ctx.Done():
		cn.forget(id)
		return fmt.Errorf("spdk %s: %w: %w", method, errdefs.ErrUnavailable, ctx.Err())
	case <-cn.done:
		select { // the reply may have raced with the close
		case r := <-ch:
			return decodeResult(method, r, result)
		default:
		}
		c.drop(cn)
		return fmt.Errorf("spdk %s: %w: %w", method, errdefs.ErrUnavailable, cn.cause())
	case r := <-ch:
		return decodeResult(method, r, result)
	}
}

func decodeResult(method string, r response, result any) error {
	if r.Error != nil {
		return fmt.Errorf("spdk %s: %w", method, r.Error)
	}
	if result == nil || len(r.Result) == 0 {
		return nil
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("spdk %s: decode result: %w: %w", method, errdefs.ErrStorage, err)
	}
	return nil
}

// checkParams keeps go/rpc's rule: params are nil or encode to an object or array.
func checkParams(p any) error {
	if p == nil {
		return nil
	}
	v := reflect.ValueOf(p)
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct, reflect.Map, reflect.Slice, reflect.Array:
		return nil
	}
	return fmt.Errorf("params must be a struct, map, slice or array, not %s", v.Kind())
}

// getConn returns the live connection, dialling if needed; fresh is true
// for a new one.
func (c *Client) getConn(ctx context.Context) (cn *conn, fresh bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, false, fmt.Errorf("%w: client closed", errdefs.ErrUnavailable)
	}
	if c.conn != nil && !c.conn.isDone() {
		return c.conn, false, nil
	}
	d := net.Dialer{Timeout: c.dialTimeout}
	nc, err := d.DialContext(ctx, c.network, c.address)
	if err != nil {
		return nil, false, fmt.Errorf("%w: dial SPDK at %s: %w", errdefs.ErrUnavailable, c.address, err)
	}
	c.conn = newConn(nc, c.log, c.lost)
	c.log.Debug("connected to SPDK", zap.String("socket", c.address))
	return c.conn, true, nil
}

func (c *Client) drop(cn *conn) {
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
	}
	c.mu.Unlock()
	cn.shutdown(errors.New("connection dropped"))
}

// conn is one socket plus its reader goroutine, which lives until the socket
// fails or shutdown is called.
type conn struct {
	nc  net.Conn
	log *zap.Logger
	// onLost runs when the peer closed the socket or it failed (not after
	// shutdown or a protocol error of ours).
	onLost func()

	wmu sync.Mutex // serialises writes

	mu      sync.Mutex
	pending map[uint64]chan response
	err     error
	done    chan struct{}
}

func newConn(nc net.Conn, log *zap.Logger, onLost func()) *conn {
	cn := &conn{nc: nc, log: log, onLost: onLost, pending: map[uint64]chan response{}, done: make(chan struct{})}
	go cn.readLoop()
	return cn
}

func (cn *conn) isDone() bool {
	select {
	case <-cn.done:
		return true
	default:
		return false
	}
}

func (cn *conn) cause() error {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err
}

func (cn *conn) send(ctx context.Context, id uint64, msg []byte, ch chan response) error {
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return fmt.Errorf("%w: %w", errdefs.ErrUnavailable, err)
	}
	cn.pending[id] = ch
	cn.mu.Unlock()

	cn.wmu.Lock()
	defer cn.wmu.Unlock()
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Time{}
	}
	_ = cn.nc.SetWriteDeadline(dl)
	if _, err := cn.nc.Write(msg); err != nil {
		cn.forget(id)
		return fmt.Errorf("%w: write: %w", errdefs.ErrUnavailable, err)
	}
	return nil
}

func (cn *conn) forget(id uint64) {
	cn.mu.Lock()
	delete(cn.pending, id)
	cn.mu.Unlock()
}

func (cn *conn) shutdown(err error) {
	cn.mu.Lock()
	if cn.err == nil {
		cn.err = err
	}
	cn.mu.Unlock()
	_ = cn.nc.Close() // the reader goroutine then exits and closes done
}

func (cn *conn) readLoop() {
	dec := json.NewDecoder(cn.nc)
	var err error
	protocol := false // the loop ended on a reply we could not use
	for {
		var r response
		if err = dec.Decode(&r); err != nil {
			break
		}
		var id uint64
		if uerr := json.Unmarshal(r.ID, &id); uerr != nil {
			// id null: SPDK could not parse our request (-32600). Nothing to
			// match it to; all pending calls would wait for ever, so fail them.
			err = fmt.Errorf("reply without usable id: %s", r.ID)
			if r.Error != nil {
				err = fmt.Errorf("%w: %w", err, r.Error)
			}
			protocol = true
			break
		}
		cn.mu.Lock()
		ch, ok := cn.pending[id]
		delete(cn.pending, id)
		cn.mu.Unlock()
		if ok {
			ch <- r
		} else {
			cn.log.Debug("dropping SPDK reply for a call that gave up", zap.Uint64("id", id))
		}
	}
	cn.mu.Lock()
	peerLost := cn.err == nil && !protocol
	if cn.err == nil {
		cn.err = fmt.Errorf("connection lost: %w", err)
	}
	cn.pending = map[uint64]chan response{}
	cn.mu.Unlock()
	_ = cn.nc.Close()
	close(cn.done)
	if peerLost && cn.onLost != nil {
		cn.onLost()
	}
}
