package rpcapi

import (
	"context"
	"errors"
	"testing"
)

func TestDispatcher(t *testing.T) {
	d := NewDispatcher("1.3", "")
	d.Register("get_status", func(ctx context.Context, req *Request) (any, error) { return "ok", nil })
	d.Register("_secret", func(ctx context.Context, req *Request) (any, error) { return "leak", nil })
	ctx := context.Background()
	call := func(method, version, ns string) (any, error) {
		return d.Dispatch(ctx, &Request{Method: method, Version: version, Namespace: ns})
	}
	if r, err := call("get_status", "1.2", ""); err != nil || r != "ok" {
		t.Errorf("compatible: %v %v", r, err)
	}
	if r, err := call("get_status", "", ""); err != nil || r != "ok" {
		t.Errorf("missing version = 1.0: %v %v", r, err)
	}
	if r, err := call(PingMethod, "", ""); err != nil || r != "pong" {
		t.Errorf("ping: %v %v", r, err)
	}
	if r, err := call(PingMethod, "1.3", ""); err != nil || r != "pong" {
		t.Errorf("ping at server version: %v %v", r, err)
	}
	wantDispatch := func(err error, class, msg string) {
		t.Helper()
		var de *DispatchError
		if !errors.As(err, &de) || de.Failure.Class != class || de.Failure.Module != "oslo_messaging.rpc.dispatcher" || de.Failure.Message != msg {
			t.Errorf("got %v, want %s %q", err, class, msg)
		}
		if f := DefaultClassify(err); f.Class != class {
			t.Errorf("DefaultClassify changed the class: %+v", f)
		}
	}
	_, err := call("nosuch", "1.0", "")
	wantDispatch(err, "NoSuchMethod", "Endpoint does not support RPC method nosuch")
	_, err = call("_secret", "1.0", "")
	wantDispatch(err, "NoSuchMethod", "Endpoint does not support RPC method _secret")
	_, err = call("get_status", "2.0", "")
	wantDispatch(err, "UnsupportedVersion", "Endpoint does not support RPC version 2.0. Attempted method: get_status")
	_, err = call("get_status", "1.4", "")
	wantDispatch(err, "UnsupportedVersion", "Endpoint does not support RPC version 1.4. Attempted method: get_status")
	_, err = call("get_status", "1.0", "other")
	wantDispatch(err, "UnsupportedVersion", "Endpoint does not support RPC version 1.0. Attempted method: get_status")

	if f := DefaultClassify(errors.New("boom")); f.Class != "RuntimeError" || f.Module != "builtins" || f.Message != "boom" {
		t.Errorf("default classify: %+v", f)
	}
}

func TestRequestIDs(t *testing.T) {
	rid, grid := RequestIDs(map[string]any{"request_id": "req-a", "global_request_id": "req-g", "user": "u"})
	if rid != "req-a" || grid != "req-g" {
		t.Fatalf("got %q %q", rid, grid)
	}
	// oslo sends None (JSON null) for an absent global id.
	if rid, grid := RequestIDs(map[string]any{"request_id": "req-a", "global_request_id": nil}); rid != "req-a" || grid != "" {
		t.Fatalf("null global id: %q %q", rid, grid)
	}
	if rid, grid := RequestIDs(nil); rid != "" || grid != "" {
		t.Fatalf("no context: %q %q", rid, grid)
	}
}
