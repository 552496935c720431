package rpcapi

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// A call exactly as captured from Python oslo.messaging 14.0.3.
const pythonCall = `{"oslo.version": "2.0", "oslo.message": "{\"method\": \"ping\", \"args\": {\"payload\": {\"hello\": \"world\", \"big\": 1152921504606846976}}, \"version\": \"1.0\", \"_msg_id\": \"d0c5b93c0b174ad6b4fc5dbcefce6ded\", \"_reply_q\": \"reply_c59c1c32840f49f487bfbba70d83e030\", \"_timeout\": null, \"_unique_id\": \"382ce97857f34bfeb8065958be24e105\", \"_context_request_id\": \"req-capture\", \"_context_global_request_id\": null, \"_context_user\": \"u1\", \"_context_project_id\": \"p1\", \"_context_is_admin\": true, \"_context_n\": 12345678901234567890}"}`

func TestDecodePythonCall(t *testing.T) {
	fields, err := DecodeEnvelope([]byte(pythonCall))
	if err != nil {
		t.Fatal(err)
	}
	in, err := parseRequest(fields)
	if err != nil {
		t.Fatal(err)
	}
	if in.Method != "ping" || in.Version != "1.0" || in.MsgID != "d0c5b93c0b174ad6b4fc5dbcefce6ded" ||
		in.ReplyQ != "reply_c59c1c32840f49f487bfbba70d83e030" || in.UniqueID != "382ce97857f34bfeb8065958be24e105" {
		t.Errorf("request: %+v", in)
	}
	if in.MonitorTimeout != nil {
		t.Errorf("_timeout null must mean no call monitor, got %v", *in.MonitorTimeout)
	}
	if !strings.Contains(string(in.Args["payload"]), "1152921504606846976") {
		t.Errorf("2**60 lost: %s", in.Args["payload"])
	}
	if in.Context["request_id"] != "req-capture" || in.Context["is_admin"] != true || in.Context["global_request_id"] != nil {
		t.Errorf("context: %v", in.Context)
	}
	if n, ok := in.Context["n"].(json.Number); !ok || n.String() != "12345678901234567890" {
		t.Errorf("context number not exact: %#v", in.Context["n"])
	}
	if _, ok := in.Context["_context_user"]; ok {
		t.Error("prefix not stripped")
	}
}

func TestDecodeDefaultsAndTimeout(t *testing.T) {
	body, _ := EncodeEnvelope(map[string]any{"method": "m", "_timeout": 7})
	fields, err := DecodeEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	in, err := parseRequest(fields)
	if err != nil {
		t.Fatal(err)
	}
	if in.Version != "1.0" || len(in.Args) != 0 || in.MonitorTimeout == nil || *in.MonitorTimeout != 7 || in.MsgID != "" {
		t.Errorf("defaults: %+v", in)
	}
	// legacy un-enveloped dict is accepted
	if f, err := DecodeEnvelope([]byte(`{"method":"x"}`)); err != nil || string(f["method"]) != `"x"` {
		t.Errorf("legacy: %v %v", f, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for name, body := range map[string]string{
		"not json":       `{x`,
		"array":          `[1]`,
		"version 3":      `{"oslo.version":"3.0","oslo.message":"{}"}`,
		"version 2.1":    `{"oslo.version":"2.1","oslo.message":"{}"}`,
		"version number": `{"oslo.version":2.0,"oslo.message":"{}"}`,
		"msg object":     `{"oslo.version":"2.0","oslo.message":{"method":"x"}}`,
		"msg not object": `{"oslo.version":"2.0","oslo.message":"[1,2]"}`,
		"msg null":       `{"oslo.version":"2.0","oslo.message":"null"}`,
	} {
		if _, err := DecodeEnvelope([]byte(body)); !errors.Is(err, ErrMalformed) || !errors.Is(err, errdefs.ErrInvalidArgument) {
			t.Errorf("%s: err=%v", name, err)
		}
	}
	for name, inner := range map[string]string{
		"no method":      `{"args":{}}`,
		"method number":  `{"method":1}`,
		"args list":      `{"method":"m","args":[1]}`,
		"args string":    `{"method":"m","args":"x"}`,
		"msg_id number":  `{"method":"m","_msg_id":5}`,
		"version object": `{"method":"m","version":{}}`,
	} {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal([]byte(inner), &fields); err != nil {
			t.Fatal(err)
		}
		if _, err := parseRequest(fields); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err=%v", name, err)
		}
	}
}

func TestReplyInfoFromMalformed(t *testing.T) {
	for name, body := range map[string]string{
		"msg object":  `{"oslo.version":"2.0","oslo.message":{"_msg_id":"m1","_reply_q":"r1"}}`,
		"bad version": `{"oslo.version":"9.0","oslo.message":"{\"_msg_id\":\"m1\",\"_reply_q\":\"r1\"}"}`,
		"legacy":      `{"_msg_id":"m1","_reply_q":"r1","args":[]}`,
	} {
		if id, q := replyInfoFromBody([]byte(body)); id != "m1" || q != "r1" {
			t.Errorf("%s: %q %q", name, id, q)
		}
	}
	if id, q := replyInfoFromBody([]byte(`{oops`)); id != "" || q != "" {
		t.Errorf("garbage gave %q %q", id, q)
	}
}

func TestEncodeReplyWire(t *testing.T) {
	body, err := EncodeReply("abc", json.RawMessage(`{"x":1152921504606846976}`), nil, true)
	if err != nil {
		t.Fatal(err)
	}
	var outer map[string]any
	if err := json.Unmarshal(body, &outer); err != nil {
		t.Fatal(err)
	}
	if outer["oslo.version"] != "2.0" {
		t.Errorf("envelope: %v", outer)
	}
	msg, ok := outer["oslo.message"].(string)
	if !ok {
		t.Fatalf("oslo.message must be a JSON string, got %T", outer["oslo.message"])
	}
	var inner map[string]json.RawMessage
	if err := json.Unmarshal([]byte(msg), &inner); err != nil {
		t.Fatal(err)
	}
	keys := []string{}
	for k := range inner {
		keys = append(keys, k)
	}
	if len(inner) != 5 || string(inner["failure"]) != "null" || string(inner["ending"]) != "true" ||
		string(inner["_msg_id"]) != `"abc"` || string(inner["result"]) != `{"x":1152921504606846976}` {
		t.Errorf("reply keys %v: %s", keys, msg)
	}
	var uid string
	if json.Unmarshal(inner["_unique_id"], &uid) != nil || len(uid) != 32 {
		t.Errorf("_unique_id %s", inner["_unique_id"])
	}
	// heartbeat: exactly result null, failure null, ending false
	hb, _ := EncodeReply("abc", nil, nil, false)
	m, err := decodeReply(hb)
	if err != nil || m.Ending || m.Failure != nil || !isNull(m.Result) || m.MsgID != "abc" {
		t.Errorf("heartbeat: %+v %v", m, err)
	}
}

func TestFailureIsAJSONString(t *testing.T) {
	f := Failure{Class: "InvalidParameterValue", Module: "ironic.common.exception", Message: "bad volume"}
	body, err := EncodeReply("m", json.RawMessage(`"ignored"`), &f, true)
	if err != nil {
		t.Fatal(err)
	}
	fields, err := DecodeEnvelope(body)
	if err != nil {
		t.Fatal(err)
	}
	var s string
	if err := json.Unmarshal(fields["failure"], &s); err != nil {
		t.Fatalf("failure must be a string: %s", fields["failure"])
	}
	if string(fields["result"]) != "null" {
		t.Errorf("result with a failure: %s", fields["result"])
	}
	var w map[string]any
	if err := json.Unmarshal([]byte(s), &w); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"class": "InvalidParameterValue", "module": "ironic.common.exception", "message": "bad volume",
		"tb": []any{}, "args": []any{"bad volume"}, "kwargs": map[string]any{}}
	if len(w) != len(want) {
		t.Errorf("failure keys: %v", w)
	}
	for k, v := range want {
		got, _ := json.Marshal(w[k])
		exp, _ := json.Marshal(v)
		if string(got) != string(exp) {
			t.Errorf("failure %s = %s, want %s", k, got, exp)
		}
	}
	// and the client maps it back (stripping _Remote like oslo)
	re, err := parseFailure(strings.Replace(s, `"InvalidParameterValue"`, `"InvalidParameterValue_Remote"`, 1))
	if err != nil || re.Class != "InvalidParameterValue" || re.Module != "ironic.common.exception" || re.Message != "bad volume" {
		t.Errorf("parseFailure: %+v %v", re, err)
	}
}

func TestReplyAccumulator(t *testing.T) {
	res := func(s string) json.RawMessage { return json.RawMessage(s) }
	fail := `{"class":"ValueError","module":"builtins","message":"no","tb":[],"args":["no"],"kwargs":{}}`
	t.Run("single", func(t *testing.T) {
		var a replyAccumulator
		r, done, hb, err := a.add(&replyMsg{Result: res(`{"a":1}`), Ending: true})
		if !done || hb || err != nil || string(r) != `{"a":1}` {
			t.Errorf("%s %v %v %v", r, done, hb, err)
		}
	})
	t.Run("heartbeats then result", func(t *testing.T) {
		var a replyAccumulator
		for range 3 {
			if _, done, hb, _ := a.add(&replyMsg{Result: res("null")}); done || !hb {
				t.Fatal("heartbeat not recognised")
			}
		}
		r, done, _, _ := a.add(&replyMsg{Result: res(`"x"`), Ending: true})
		if !done || string(r) != `"x"` {
			t.Errorf("%s", r)
		}
	})
	t.Run("old two-message reply", func(t *testing.T) {
		var a replyAccumulator
		if _, done, hb, _ := a.add(&replyMsg{Result: res(`[1,2]`)}); done || hb {
			t.Fatal("payload message misread")
		}
		r, done, _, _ := a.add(&replyMsg{Result: res("null"), Ending: true})
		if !done || string(r) != `[1,2]` {
			t.Errorf("%s", r)
		}
	})
	t.Run("void", func(t *testing.T) {
		var a replyAccumulator
		r, done, _, _ := a.add(&replyMsg{Ending: true})
		if !done || string(r) != "null" {
			t.Errorf("%s", r)
		}
	})
	t.Run("failure", func(t *testing.T) {
		var a replyAccumulator
		_, done, _, err := a.add(&replyMsg{Failure: &fail, Ending: true})
		var re *RemoteError
		if !done || !errors.As(err, &re) || re.Class != "ValueError" || !IsRemote(err, "ValueError") {
			t.Errorf("%v", err)
		}
	})
}

func TestServerDecodeLimitsAndContentType(t *testing.T) {
	s, err := NewServer(ServerConfig{URL: "rabbit://", Target: Target{Topic: "t", Server: "s"}, Dispatcher: NewDispatcher("1.0", ""), MaxMessageBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	call, _ := EncodeEnvelope(map[string]any{"method": "m", "_msg_id": "id1", "_reply_q": "rq", "args": map[string]any{"pad": strings.Repeat("x", 2000)}})
	in, err := s.decode(amqp.Delivery{ContentType: "application/json", Body: call})
	if !errors.Is(err, ErrMalformed) || in.MsgID != "id1" || in.ReplyQ != "rq" {
		t.Errorf("oversized: %v %+v", err, in)
	}
	small, _ := EncodeEnvelope(map[string]any{"method": "m", "_msg_id": "id2", "_reply_q": "rq"})
	if in, err := s.decode(amqp.Delivery{Body: small}); !errors.Is(err, ErrMalformed) || in.MsgID != "id2" {
		t.Errorf("no content type: %v %+v", err, in)
	}
	if in, err := s.decode(amqp.Delivery{ContentType: "application/json", Body: small}); err != nil || in.Method != "m" {
		t.Errorf("valid: %v %+v", err, in)
	}
}
