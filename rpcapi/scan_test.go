package rpcapi

import (
	"encoding/json"
	"errors"
	"runtime"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

func TestCheckDepth(t *testing.T) {
	deep := strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1)
	if err := checkDepth([]byte(deep), MaxDepth); !errors.Is(err, ErrMalformed) {
		t.Fatalf("depth %d accepted: %v", MaxDepth+1, err)
	}
	ok := `{"a":"` + strings.Repeat(`[{\"`, 500) + `","b":[[{"c":1}]]}`
	if err := checkDepth([]byte(ok), MaxDepth); err != nil {
		t.Fatalf("brackets inside strings counted: %v", err)
	}
}

// oslo's key order: args first, the reply address after it.
func osloCall(args string) []byte {
	inner := `{"method": "apply_state", "args": ` + args + `, "namespace": null, "version": "1.0", "_msg_id": "5a1f0c", "_reply_q": "reply_9e2b", "_timeout": null, "_unique_id": "u1", "_context_request_id": "req-1"}`
	b, _ := json.Marshal(map[string]string{keyVersion: envelopeVersion, keyMessage: inner})
	return b
}

// A 10,000-deep argument (encoding/json's own limit) still gets an error
// reply: the address is found without parsing the body.
func TestDeepBodyKeepsReplyAddress(t *testing.T) {
	s := testServer(t, 4<<20, nil)
	deep := `{"state": ` + strings.Repeat("[", 10000) + strings.Repeat("]", 10000) + `}`
	in, err := s.decode(amqp.Delivery{ContentType: contentType, Body: osloCall(deep)})
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "nested deeper") {
		t.Fatalf("deep body: %v", err)
	}
	if in.MsgID != "5a1f0c" || in.ReplyQ != "reply_9e2b" {
		t.Fatalf("reply address lost: %+v", in)
	}
}

// An oversized body is never parsed: only its ends are scanned for the
// reply address (oslo puts it after the args).
func TestOversizedBodyIsNotParsed(t *testing.T) {
	s := testServer(t, 1<<20, nil)
	body := osloCall(`{"blob": "` + strings.Repeat("x", 16<<20) + `"}`)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	in, err := s.decode(amqp.Delivery{ContentType: contentType, Body: body})
	runtime.ReadMemStats(&after)
	if !errors.Is(err, ErrMalformed) || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("oversized: %v", err)
	}
	if in.MsgID != "5a1f0c" || in.ReplyQ != "reply_9e2b" {
		t.Fatalf("reply address not found in the tail: %+v", in)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Fatalf("decoding a refused %d-byte body allocated %d bytes", len(body), n)
	}
}

func TestMalformedFailureUsesTheServersClassify(t *testing.T) {
	err := errors.New("args is not an object: " + ErrMalformed.Error())
	if f := testServer(t, 0, nil).malformedFailure(err); f.Class != "ValueError" || f.Module != "builtins" {
		t.Fatalf("default: %+v", f)
	}
	classify := func(error) Failure { return Failure{Class: "InvalidParameterValue", Module: "ironic.common.exception"} }
	if f := testServer(t, 0, classify).malformedFailure(err); f.Class != "InvalidParameterValue" {
		t.Fatalf("with Classify: %+v", f)
	}
}

func testServer(t *testing.T, maxBytes int, classify func(error) Failure) *Server {
	t.Helper()
	s, err := NewServer(ServerConfig{URL: "rabbit://", Target: Target{Topic: "t", Server: "s"},
		Dispatcher: NewDispatcher("1.0", ""), MaxMessageBytes: maxBytes, Classify: classify})
	if err != nil {
		t.Fatal(err)
	}
	return s
}
