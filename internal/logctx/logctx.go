// Package logctx carries log fields with a context, so the lines a request
// causes further down (an admission's reconcile in the storage and network
// loops, the SPDK and OVSDB changes it makes) carry that request's ids
// without each layer passing a logger.
package logctx

import (
	"context"
	"slices"

	"go.uber.org/zap"
)

type key struct{}

// With returns ctx carrying fields in addition to those it carries.
func With(ctx context.Context, fields ...zap.Field) context.Context {
	if len(fields) == 0 {
		return ctx
	}
	return context.WithValue(ctx, key{}, slices.Concat(Fields(ctx), fields))
}

// Fields returns the fields ctx carries.
func Fields(ctx context.Context) []zap.Field {
	f, _ := ctx.Value(key{}).([]zap.Field)
	return f
}

// Logger is base with ctx's fields added.
func Logger(ctx context.Context, base *zap.Logger) *zap.Logger {
	if f := Fields(ctx); len(f) > 0 {
		return base.With(f...)
	}
	return base
}
