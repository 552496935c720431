package jsonx

import (
	"errors"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

func TestDecodeVersioned(t *testing.T) {
	type layout struct {
		SchemaVersion string `json:"schema_version"`
		N             int    `json:"n"`
	}
	for _, tc := range []struct {
		name, in, ver string
		n             int
		unknown       []string
		err           error
	}{
		{name: "current", in: `{"schema_version":"2.0","n":3}`, ver: "2.0", n: 3},
		{name: "older minor and major are read", in: `{"schema_version":"1.4","n":1}`, ver: "1.4", n: 1},
		{name: "newer minor: unknown fields reported", in: `{"schema_version":"2.7","n":2,"later":{}}`, ver: "2.7", n: 2, unknown: []string{"later"}},
		{name: "unversioned is left to the caller", in: `{"n":5}`},
		{name: "newer major refused", in: `{"schema_version":"3.0","n":1}`, ver: "3.0", err: errdefs.ErrConflict},
		{name: "malformed version", in: `{"schema_version":"2","n":1}`, ver: "2", err: errdefs.ErrInvalidArgument},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var v layout
			ver, unknown, err := DecodeVersioned([]byte(tc.in), 2, "2.0", &v)
			if ver != tc.ver || !errors.Is(err, tc.err) || (tc.err == nil && err != nil) {
				t.Fatalf("ver %q err %v, want %q %v", ver, err, tc.ver, tc.err)
			}
			if v.N != tc.n || len(unknown) != len(tc.unknown) || (len(unknown) > 0 && unknown[0] != tc.unknown[0]) {
				t.Fatalf("decoded n=%d unknown=%v, want %d %v", v.N, unknown, tc.n, tc.unknown)
			}
		})
	}
	if _, _, err := DecodeVersioned([]byte(`[1]`), 2, "2.0", new(layout)); err == nil {
		t.Fatal("a non-object decoded without error")
	}
}
