package rpcapi

import (
	"encoding/json"
	"errors"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
)

// FuzzDecodeEnvelope: no input may panic the server's decode path, and every
// rejection must be an ErrMalformed.
func FuzzDecodeEnvelope(f *testing.F) {
	f.Add([]byte(pythonCall))
	f.Add([]byte(`{"oslo.version":"2.0","oslo.message":"{\"method\":\"m\",\"args\":[],\"_msg_id\":\"a\",\"_reply_q\":\"b\"}"}`))
	f.Add([]byte(`{"oslo.version":"2.0","oslo.message":{"_msg_id":"a"}}`))
	f.Add([]byte(`{"method":"legacy","_timeout":1e309}`))
	f.Add([]byte(`{"oslo.version":"2.0","oslo.message":"{\"method\":\"m\",\"_context_x\":{\"y\":[1,2,{}]},\"_timeout\":\"4\"}"}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"oslo.version":"2.0","oslo.message":"{\"result\":null,\"failure\":\"{}\",\"ending\":true}"}`))
	s, err := NewServer(ServerConfig{URL: "rabbit://", Target: Target{Topic: "t", Server: "s"}, Dispatcher: NewDispatcher("1.0", ""), MaxMessageBytes: 1 << 16})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := s.decode(amqp.Delivery{ContentType: "application/json", Body: body})
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("rejection is not ErrMalformed: %v", err)
			}
			if in == nil {
				t.Fatal("rejection without reply info holder")
			}
		} else {
			if in.Method == "" || in.Version == "" || in.Args == nil || in.Context == nil {
				t.Fatalf("accepted incomplete request: %+v", in)
			}
			for k, v := range in.Args {
				if !json.Valid(v) {
					t.Fatalf("arg %s is not valid JSON", k)
				}
			}
		}
		if m, err := decodeReply(body); err == nil && m.Failure != nil {
			_, _ = parseFailure(*m.Failure)
		}
	})
}
