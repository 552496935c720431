package jsonx

import (
	"encoding/json"
	"fmt"

	"github.com/ironic-dpu/ironic-dpu-agent/errdefs"
)

// ReadSchemaVersion returns the "schema_version" of a JSON object, or ""
// when it has none (an unversioned, schema 1 file).
func ReadSchemaVersion(b []byte) (string, error) {
	var probe map[string]json.RawMessage
	if err := json.Unmarshal(b, &probe); err != nil {
		return "", err
	}
	raw, ok := probe["schema_version"]
	if !ok {
		return "", nil
	}
	var v string
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", fmt.Errorf("schema_version: %w", err)
	}
	return v, nil
}

// CheckSchema accepts a file's schema version ver ("major.minor") whose major
// is at most major (older majors are migrated by the caller); a newer
// major is refused: its fields may mean something this agent would
// misread, so nothing is touched. own is the version this agent writes.
func CheckSchema(ver string, major int, own string) error {
	var maj, minor int
	if n, err := fmt.Sscanf(ver, "%d.%d", &maj, &minor); n != 2 || err != nil || maj < 1 || minor < 0 || fmt.Sprintf("%d.%d", maj, minor) != ver {
		return fmt.Errorf("%w: schema_version %q is not major.minor", errdefs.ErrInvalidArgument, ver)
	}
	if maj > major {
		return fmt.Errorf("%w: schema version %s is newer than this agent's %s: it was written by a newer agent; "+
			"this agent refuses to start rather than misread it and touches nothing on the DPU; "+
			"run the newer agent again (or move the file away to start empty)", errdefs.ErrConflict, ver, own)
	}
	return nil
}

// DecodeVersioned reads b's schema_version and, when it has one, checks it
// with CheckSchema(ver, major, own) and decodes b into v, returning the
// fields v does not know. An unversioned file (ver "") is left undecoded:
// its layout predates versioning and only the caller knows it.
func DecodeVersioned(b []byte, major int, own string, v any) (ver string, unknown []string, err error) {
	if ver, err = ReadSchemaVersion(b); err != nil || ver == "" {
		return ver, nil, err
	}
	if err := CheckSchema(ver, major, own); err != nil {
		return ver, nil, err
	}
	unknown, err = Decode(b, v)
	return ver, unknown, err
}
