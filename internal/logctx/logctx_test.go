package logctx_test

import (
	"context"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/logctx"
)

func TestLoggerAddsTheContextsFields(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	base := zap.New(core).With(zap.String("component", "storage"))
	ctx := logctx.With(context.Background(), zap.String("request_id", "req-1"))
	ctx = logctx.With(ctx, zap.String("global_request_id", "req-g"))
	logctx.Logger(ctx, base).Info("exposing")
	logctx.Logger(context.Background(), base).Info("plain")
	all := logs.All()
	got := all[0].ContextMap()
	if got["request_id"] != "req-1" || got["global_request_id"] != "req-g" || got["component"] != "storage" {
		t.Fatalf("fields %v", got)
	}
	if _, ok := all[1].ContextMap()["request_id"]; ok {
		t.Fatalf("a context without fields added some: %v", all[1].ContextMap())
	}
}
