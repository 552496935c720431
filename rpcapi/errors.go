package rpcapi

import (
	"errors"
	"fmt"
	"strings"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// oslo's dispatcher module, which the Python caller can import.
const dispatcherModule = "oslo_messaging.rpc.dispatcher"

var (
	// ErrMessagingTimeout is oslo's MessagingTimeout: no (final) reply in time.
	ErrMessagingTimeout = fmt.Errorf("timed out waiting for a reply: %w", errdefs.ErrUnavailable)
	// ErrMessageUndeliverable is oslo's MessageUndeliverable: an at-least-once
	// publish was returned by the broker because no queue is bound.
	ErrMessageUndeliverable = fmt.Errorf("message undeliverable: %w", errdefs.ErrUnavailable)
	// ErrAccessRefused: the broker refused this user an operation (AMQP 403),
	// e.g. creating a shared exchange a per-DPU user has no configure right on.
	ErrAccessRefused = fmt.Errorf("access refused by the broker: %w", errdefs.ErrUnavailable)
)

// DispatchError is an error the dispatcher itself raises (NoSuchMethod,
// UnsupportedVersion, malformed request). It carries its wire Failure, which
// the server always sends as is, bypassing ServerConfig.Classify.
type DispatchError struct{ Failure Failure }

func (e *DispatchError) Error() string { return e.Failure.Class + ": " + e.Failure.Message }

// Is makes dispatch errors match errdefs.ErrInvalidArgument.
func (e *DispatchError) Is(target error) bool { return target == errdefs.ErrInvalidArgument }

func noSuchMethod(method string) *DispatchError {
	return &DispatchError{Failure{Class: "NoSuchMethod", Module: dispatcherModule,
		Message: "Endpoint does not support RPC method " + method}}
}

func unsupportedVersion(version, method string) *DispatchError {
	return &DispatchError{Failure{Class: "UnsupportedVersion", Module: dispatcherModule,
		Message: fmt.Sprintf("Endpoint does not support RPC version %s. Attempted method: %s", version, method)}}
}

// malformedFailure is what a caller gets for a request the server could not
// parse: a builtin ValueError, which every Python caller re-raises.
func malformedFailure(err error) Failure {
	return Failure{Class: "ValueError", Module: "builtins", Message: err.Error()}
}

// DefaultClassify maps any error to builtins.RuntimeError (dispatch errors
// keep their own class). The agent supplies a richer one.
func DefaultClassify(err error) Failure {
	var de *DispatchError
	if errors.As(err, &de) {
		return de.Failure
	}
	return Failure{Class: "RuntimeError", Module: "builtins", Message: err.Error()}
}

// RemoteError is a failure reply received by the Go client: the same wire
// Failure, as an error.
type RemoteError Failure

func (e *RemoteError) Error() string {
	msg := strings.TrimSpace(e.Message)
	if e.Module != "" && e.Module != "builtins" && e.Module != "exceptions" {
		return fmt.Sprintf("remote error %s.%s: %s", e.Module, e.Class, msg)
	}
	return fmt.Sprintf("remote error %s: %s", e.Class, msg)
}
