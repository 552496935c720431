package ovs

import (
	"github.com/go-logr/logr"
	"go.uber.org/zap"
)

// zapSink routes libovsdb's logr output to the injected zap logger: its info
// lines are debug noise for us, its errors are worth a warning.
type zapSink struct {
	l *zap.Logger
}

func (s *zapSink) Init(logr.RuntimeInfo) {}

func (s *zapSink) Enabled(level int) bool { return level <= 0 && s.l.Core().Enabled(zap.DebugLevel) }

func (s *zapSink) Info(_ int, msg string, kv ...any) { s.l.Debug(msg, zap.Any("kv", kv)) }

func (s *zapSink) Error(err error, msg string, kv ...any) {
	s.l.Warn(msg, zap.Error(err), zap.Any("kv", kv))
}

func (s *zapSink) WithValues(kv ...any) logr.LogSink {
	return &zapSink{l: s.l.With(zap.Any("kv", kv))}
}

func (s *zapSink) WithName(name string) logr.LogSink { return &zapSink{l: s.l.Named(name)} }
