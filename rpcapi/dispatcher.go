package rpcapi

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
)

// PingMethod is oslo's built-in health probe method; it answers "pong".
const PingMethod = "oslo_rpc_server_ping"

// Request is one decoded RPC call or cast.
type Request struct {
	Method    string
	Namespace string
	Version   string
	// Args are the keyword arguments, raw so big integers stay exact.
	Args map[string]json.RawMessage
	// Context is the caller's _context_* keys without the prefix (numbers
	// are json.Number).
	Context map[string]any
	// MsgID is empty for casts.
	MsgID string
}

// Handler serves one method. Its result is JSON-encoded into the reply
// (json.RawMessage passes through); the error becomes a Failure.
type Handler func(ctx context.Context, req *Request) (any, error)

// Dispatcher routes requests by method with oslo's version and namespace
// rules. It is one oslo "endpoint": one version, one namespace.
type Dispatcher struct {
	version   string
	namespace string
	mu        sync.RWMutex
	handlers  map[string]Handler
}

// NewDispatcher serves API version (e.g. "1.0"); namespace "" accepts only
// requests without a namespace, as oslo's default target does.
func NewDispatcher(version, namespace string) *Dispatcher {
	if version == "" {
		version = "1.0"
	}
	return &Dispatcher{version: version, namespace: namespace, handlers: map[string]Handler{}}
}

// Register adds or replaces the handler of method.
func (d *Dispatcher) Register(method string, h Handler) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.handlers[method] = h
}

// Version is the API version served.
func (d *Dispatcher) Version() string { return d.version }

// Dispatch runs the handler req names, or returns a *DispatchError shaped
// like oslo's NoSuchMethod / UnsupportedVersion.
func (d *Dispatcher) Dispatch(ctx context.Context, req *Request) (any, error) {
	version := req.Version
	if version == "" {
		version = "1.0"
	}
	nsOK := req.Namespace == d.namespace
	compatible := nsOK && VersionCompatible(d.version, version)
	// oslo adds the ping endpoint with a default target (version 1.0, no namespace).
	if req.Method == PingMethod && (compatible || (req.Namespace == "" && VersionCompatible("1.0", version))) {
		return "pong", nil
	}
	if !compatible {
		return nil, unsupportedVersion(version, req.Method)
	}
	// DefaultRPCAccessPolicy: private methods are not callable.
	if strings.HasPrefix(req.Method, "_") {
		return nil, noSuchMethod(req.Method)
	}
	d.mu.RLock()
	h, ok := d.handlers[req.Method]
	d.mu.RUnlock()
	if !ok {
		return nil, noSuchMethod(req.Method)
	}
	return h(ctx, req)
}

// RequestIDs returns the request_id and global_request_id of a call's
// context (oslo's _context_request_id / _context_global_request_id keys;
// Ironic sends both), "" for one that is absent or not a string.
func RequestIDs(ctx map[string]any) (requestID, globalRequestID string) {
	requestID, _ = ctx["request_id"].(string)
	globalRequestID, _ = ctx["global_request_id"].(string)
	return requestID, globalRequestID
}
