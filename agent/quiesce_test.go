package agent_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ironic-dpu/ironic-dpu-agent/agent"
	"github.com/ironic-dpu/ironic-dpu-agent/agent/agenttest"
	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/testenv/poll"
	"github.com/ironic-dpu/ironic-dpu-agent/nodestate"
)

// quiesce(hold_seconds=None) and unquiesce() (RPC API 1.3) reach the
// quiescer with the hold checked against its max; get_status and get_state
// show its state; Run runs it for the agent's lifetime.
func TestQuiesceEndpoints(t *testing.T) {
	q := &agenttest.Quiescer{Max: time.Minute}
	a := startAgent(t, t.TempDir(), agent.Options{Reconcilers: []agent.Reconciler{&agenttest.Reconciler{}}, Quiescer: q})
	poll.Until(t, 5*time.Second, 10*time.Millisecond, "quiescer runs", func() bool { r, n := q.Running(); return r && n == 1 })

	if st := a.Status(t.Context()); st.Quiesce == nil || st.Quiesce.Quiesced {
		t.Fatalf("status before: %+v", st.Quiesce)
	}
	out, err := call(t, a, "quiesce", `{}`)
	if err != nil {
		t.Fatal(err)
	}
	if st, ok := out.(nodestate.QuiesceStatus); !ok || !st.Quiesced {
		t.Fatalf("quiesce answered %#v", out)
	}
	if _, err := call(t, a, "quiesce", `{"hold_seconds": 2.5}`); err != nil {
		t.Fatal(err)
	}
	if got := q.Holds(); !reflect.DeepEqual(got, []time.Duration{0, 2500 * time.Millisecond}) {
		t.Fatalf("holds %v", got)
	}
	for _, args := range []string{`{"hold_seconds": 0}`, `{"hold_seconds": -1}`, `{"hold_seconds": 61}`, `{"hold_seconds": "60"}`} {
		if _, err := call(t, a, "quiesce", args); !errors.Is(err, errdefs.ErrInvalidArgument) || agent.ExceptionClass(err) != "InvalidParameterValue" {
			t.Fatalf("%s: %v", args, err)
		}
	}
	if len(q.Holds()) != 2 {
		t.Fatalf("a refused hold reached the quiescer: %v", q.Holds())
	}
	st := a.Status(t.Context())
	v := a.State(t.Context())
	if !st.Quiesce.Quiesced || v.Observed.Quiesce == nil || !v.Observed.Quiesce.Quiesced {
		t.Fatalf("status %+v, observed %+v", st.Quiesce, v.Observed.Quiesce)
	}
	b, _ := json.Marshal(st)
	if !strings.Contains(string(b), `"quiesce":{"quiesced":true,"supported":true,"since":`) || !strings.Contains(string(b), `"until":`) {
		t.Fatalf("get_status JSON: %s", b)
	}
	if _, err := call(t, a, "unquiesce", `{}`); err != nil {
		t.Fatal(err)
	}
	if st := a.Status(t.Context()); st.Quiesce.Quiesced || st.Quiesce.ResumeReason != "unquiesce" {
		t.Fatalf("after unquiesce: %+v", st.Quiesce)
	}
}

// Without a quiescer both calls are NotSupported and the status says
// nothing about quiescing.
func TestQuiesceWithoutQuiescer(t *testing.T) {
	a := newAgent(t, t.TempDir(), &agenttest.Reconciler{})
	for _, m := range []string{"quiesce", "unquiesce"} {
		_, err := call(t, a, m, `{}`)
		if !errors.Is(err, errdefs.ErrNotSupported) || !strings.HasPrefix(err.Error(), "not supported: "+m+"()") {
			t.Fatalf("%s: %v", m, err)
		}
	}
	if st := a.Status(t.Context()); st.Quiesce != nil {
		t.Fatalf("status: %+v", st.Quiesce)
	}
}
