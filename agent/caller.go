package agent

import (
	"context"

	"go.uber.org/zap"

	"github.com/ironic-dpu/ironic-dpu-agent/agent/state"
	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
)

// Caller is who asked for an admission: the RPC method, its API version
// and the request ids oslo carries in the message context (Ironic's
// request_id, and global_request_id: Nova's, for a server add volume).
type Caller struct {
	Method          string
	Version         string
	RequestID       string
	GlobalRequestID string
}

type callerKey struct{}

// WithCaller returns ctx carrying c; the admission logs with c's ids and
// records them with the generation it admits.
func WithCaller(ctx context.Context, c Caller) context.Context {
	ctx = context.WithValue(ctx, callerKey{}, c)
	return logctx.With(ctx, requestFields(c.RequestID, c.GlobalRequestID)...)
}

func callerOf(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}

// requestFields are the log fields of a request's ids (only those set).
func requestFields(rid, grid string) []zap.Field {
	var f []zap.Field
	if rid != "" {
		f = append(f, zap.String("request_id", rid))
	}
	if grid != "" {
		f = append(f, zap.String("global_request_id", grid))
	}
	return f
}

// admissionFields are the ids of the request that admitted a generation:
// every line of that generation's reconciles carries them.
func admissionFields(adm *state.Admission) []zap.Field {
	if adm == nil {
		return nil
	}
	return requestFields(adm.RequestID, adm.GlobalRequestID)
}
