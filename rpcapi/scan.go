package rpcapi

import (
	"fmt"
	"regexp"
)

// MaxDepth bounds the JSON nesting of a request. The agent's deepest
// argument (apply_state → volumes → connection_info → data → qos_specs) is
// under 10 levels; encoding/json's own limit (10,000) only fails after
// building most of the tree.
const MaxDepth = 64

// checkDepth refuses JSON nested deeper than max without parsing it: one
// pass over the bytes, tracking strings so brackets inside them don't count.
func checkDepth(b []byte, max int) error {
	depth, inStr, esc := 0, false, false
	for _, c := range b {
		switch {
		case esc:
			esc = false
		case inStr:
			esc = c == '\\'
			inStr = c != '"'
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			depth++
			if depth > max {
				return fmt.Errorf("JSON nested deeper than %d levels: %w", max, ErrMalformed)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// replyWindow is how much of each end of a body the reply address is looked
// for in when the body is not parsed (oversized or unparsable).
const replyWindow = 64 << 10

// replyKeyRe matches "_msg_id": "..." / "_reply_q": "..." both as plain JSON
// and escaped inside the oslo.message string. Values are restricted to what
// oslo generates (uuid hex, reply_<hex>), so nothing odd is ever echoed.
var replyKeyRe = regexp.MustCompile(`\\?"(_msg_id|_reply_q)\\?"\s*:\s*\\?"([A-Za-z0-9_.:\-]{1,255})\\?"`)

// scanReplyInfo finds the reply address of a body without parsing it: it
// looks at the first and last replyWindow bytes only. oslo writes _msg_id and
// _reply_q after "args", so they are in the tail of even a huge call; a
// hand-made message with sorted keys has them at the head. The last match
// wins, as a JSON decoder would take the last duplicate key.
func scanReplyInfo(body []byte) (msgID, replyQ string) {
	windows := [][]byte{body}
	if len(body) > 2*replyWindow {
		windows = [][]byte{body[:replyWindow], body[len(body)-replyWindow:]}
	}
	for _, w := range windows {
		for _, m := range replyKeyRe.FindAllSubmatch(w, -1) {
			if string(m[1]) == "_msg_id" {
				msgID = string(m[2])
			} else {
				replyQ = string(m[2])
			}
		}
	}
	return msgID, replyQ
}
