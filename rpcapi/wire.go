package rpcapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// Wire constants of the oslo.messaging 14 rabbit driver.
const (
	envelopeVersion = "2.0"
	keyVersion      = "oslo.version"
	keyMessage      = "oslo.message"
	contentType     = "application/json"
	contentEncoding = "utf-8"
	contextPrefix   = "_context_"
)

// ErrMalformed marks a message that cannot be understood as an RPC request.
var ErrMalformed = fmt.Errorf("malformed RPC message: %w", errdefs.ErrInvalidArgument)

// DecodeEnvelope unwraps an AMQP body into the inner message's top-level
// fields, kept as raw JSON so numbers (2**60) are never rounded. Like oslo's
// deserialize_msg it accepts a bare dict as a legacy 1.0 message.
func DecodeEnvelope(body []byte) (map[string]json.RawMessage, error) {
	if err := checkDepth(body, MaxDepth); err != nil {
		return nil, err
	}
	var outer map[string]json.RawMessage
	if err := json.Unmarshal(body, &outer); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %w", ErrMalformed)
	}
	rawVer, hasVer := outer[keyVersion]
	rawMsg, hasMsg := outer[keyMessage]
	if !hasVer || !hasMsg {
		return outer, nil // legacy un-enveloped message
	}
	var ver string
	if err := json.Unmarshal(rawVer, &ver); err != nil {
		return nil, fmt.Errorf("oslo.version is not a string: %w", ErrMalformed)
	}
	if !VersionCompatible(envelopeVersion, ver) {
		return nil, fmt.Errorf("unsupported oslo.version %q: %w", ver, ErrMalformed)
	}
	var inner string
	if err := json.Unmarshal(rawMsg, &inner); err != nil {
		return nil, fmt.Errorf("oslo.message is not a JSON string: %w", ErrMalformed)
	}
	if err := checkDepth([]byte(inner), MaxDepth); err != nil {
		return nil, fmt.Errorf("oslo.message: %w", err)
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal([]byte(inner), &fields); err != nil || fields == nil {
		return nil, fmt.Errorf("oslo.message is not a JSON object: %w", ErrMalformed)
	}
	return fields, nil
}

// EncodeEnvelope wraps an inner message the way oslo's serialize_msg does.
func EncodeEnvelope(inner any) ([]byte, error) {
	b, err := json.Marshal(inner)
	if err != nil {
		return nil, fmt.Errorf("encode oslo.message: %w", err)
	}
	return json.Marshal(map[string]string{keyVersion: envelopeVersion, keyMessage: string(b)})
}

// incoming is a decoded request plus the reply plumbing.
type incoming struct {
	Request
	ReplyQ   string
	UniqueID string
	// MonitorTimeout is the caller's _timeout (call_monitor_timeout); nil when null/absent.
	MonitorTimeout *float64
}

// replyInfo pulls _msg_id/_reply_q out of whatever can be parsed, so even a
// malformed call gets an error reply rather than a timeout.
func replyInfo(fields map[string]json.RawMessage) (msgID, replyQ string) {
	_ = json.Unmarshal(fields["_msg_id"], &msgID)
	_ = json.Unmarshal(fields["_reply_q"], &replyQ)
	return msgID, replyQ
}

// replyInfoFromBody is replyInfo for a body DecodeEnvelope refused: it also
// looks into an oslo.message given as an object instead of a string, and
// falls back to scanning the raw bytes when the body cannot be parsed (e.g.
// nested too deep), so the caller gets an error instead of a timeout.
func replyInfoFromBody(body []byte) (msgID, replyQ string) {
	if msgID, replyQ = parsedReplyInfo(body); msgID != "" && replyQ != "" {
		return msgID, replyQ
	}
	return scanReplyInfo(body)
}

func parsedReplyInfo(body []byte) (msgID, replyQ string) {
	var outer map[string]json.RawMessage
	if json.Unmarshal(body, &outer) != nil {
		return "", ""
	}
	inner := outer
	if raw, ok := outer[keyMessage]; ok {
		var s string
		var m map[string]json.RawMessage
		if json.Unmarshal(raw, &s) == nil {
			if json.Unmarshal([]byte(s), &m) != nil {
				return "", ""
			}
		} else if json.Unmarshal(raw, &m) != nil {
			return "", ""
		}
		inner = m
	}
	return replyInfo(inner)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
}

// optString decodes a string-or-null field.
func optString(fields map[string]json.RawMessage, key string) (string, error) {
	raw, ok := fields[key]
	if !ok || isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("%s is not a string: %w", key, ErrMalformed)
	}
	return s, nil
}

// parseRequest turns the inner fields into a request.
func parseRequest(fields map[string]json.RawMessage) (*incoming, error) {
	in := &incoming{}
	var err error
	if in.MsgID, err = optString(fields, "_msg_id"); err != nil {
		return in, err
	}
	if in.ReplyQ, err = optString(fields, "_reply_q"); err != nil {
		return in, err
	}
	if in.UniqueID, err = optString(fields, "_unique_id"); err != nil {
		return in, err
	}
	if in.Method, err = optString(fields, "method"); err != nil {
		return in, err
	}
	if in.Method == "" {
		return in, fmt.Errorf("no method: %w", ErrMalformed)
	}
	if in.Namespace, err = optString(fields, "namespace"); err != nil {
		return in, err
	}
	if in.Version, err = optString(fields, "version"); err != nil {
		return in, err
	}
	if in.Version == "" {
		in.Version = "1.0" // oslo's default for a missing version
	}
	if raw, ok := fields["_timeout"]; ok && !isNull(raw) {
		var n json.Number
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if d.Decode(&n) == nil {
			if f, err := n.Float64(); err == nil {
				in.MonitorTimeout = &f
			}
		}
	}
	in.Args = map[string]json.RawMessage{}
	if raw, ok := fields["args"]; ok && !isNull(raw) {
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			return in, fmt.Errorf("args is not an object (positional arguments are not supported; pass keyword arguments): %w", ErrMalformed)
		}
		if err := json.Unmarshal(raw, &in.Args); err != nil {
			return in, fmt.Errorf("args is not an object: %w", ErrMalformed)
		}
	}
	in.Context = map[string]any{}
	for k, raw := range fields {
		key, ok := strings.CutPrefix(k, contextPrefix)
		if !ok {
			continue
		}
		var v any
		d := json.NewDecoder(bytes.NewReader(raw))
		d.UseNumber()
		if err := d.Decode(&v); err != nil {
			return in, fmt.Errorf("context %s: %w", key, ErrMalformed)
		}
		in.Context[key] = v
	}
	return in, nil
}

// replyMsg is the inner reply message; Failure is a JSON string or null.
type replyMsg struct {
	Result   json.RawMessage `json:"result"`
	Failure  *string         `json:"failure"`
	Ending   bool            `json:"ending"`
	MsgID    string          `json:"_msg_id"`
	UniqueID string          `json:"_unique_id"`
}

// EncodeReply builds a reply body: result (nil = null) or a failure, which is
// serialised to a JSON *string* as oslo's serialize_remote_exception does.
func EncodeReply(msgID string, result json.RawMessage, failure *Failure, ending bool) ([]byte, error) {
	m := replyMsg{Result: result, Ending: ending, MsgID: msgID, UniqueID: newID()}
	if len(m.Result) == 0 {
		m.Result = json.RawMessage("null")
	}
	if failure != nil {
		s, err := failure.MarshalString()
		if err != nil {
			return nil, err
		}
		m.Failure = &s
		m.Result = json.RawMessage("null")
	}
	return EncodeEnvelope(m)
}

// newID is oslo's uuid4().hex.
func newID() string {
	u := uuid.New()
	return strings.ReplaceAll(u.String(), "-", "")
}

// Failure is an error as it travels on the wire (oslo's
// serialize_remote_exception). Args defaults to [Message], Kwargs to {}.
type Failure struct {
	Class     string
	Module    string
	Message   string
	Traceback []string
	Args      []any
	Kwargs    map[string]any
}

type wireFailure struct {
	Class   string         `json:"class"`
	Module  string         `json:"module"`
	Message string         `json:"message"`
	TB      []string       `json:"tb"`
	Args    []any          `json:"args"`
	Kwargs  map[string]any `json:"kwargs"`
}

// MarshalString renders the failure as the JSON string placed in "failure".
func (f Failure) MarshalString() (string, error) {
	w := wireFailure{Class: f.Class, Module: f.Module, Message: f.Message, TB: f.Traceback, Args: f.Args, Kwargs: f.Kwargs}
	if w.TB == nil {
		w.TB = []string{}
	}
	if w.Args == nil {
		w.Args = []any{f.Message}
	}
	if w.Kwargs == nil {
		w.Kwargs = map[string]any{}
	}
	b, err := json.Marshal(w)
	if err != nil {
		return "", fmt.Errorf("encode failure %s: %w", f.Class, err)
	}
	return string(b), nil
}

// parseFailure decodes the failure string of a reply.
func parseFailure(s string) (*RemoteError, error) {
	var w wireFailure
	d := json.NewDecoder(strings.NewReader(s))
	d.UseNumber()
	if err := d.Decode(&w); err != nil {
		return nil, fmt.Errorf("failure is not a JSON object: %w", ErrMalformed)
	}
	// oslo strips the _Remote suffix of re-raised remote errors
	w.Class = strings.TrimSuffix(w.Class, "_Remote")
	w.Module = strings.TrimSuffix(w.Module, "_Remote")
	return &RemoteError{Class: w.Class, Module: w.Module, Message: w.Message, Traceback: w.TB, Args: w.Args, Kwargs: w.Kwargs}, nil
}
