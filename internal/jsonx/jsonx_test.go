package jsonx_test

import (
	"encoding/json"
	"slices"
	"testing"

	"github.com/ironic-dpu/ironic-dpu-agent/internal/jsonx"
)

type inner struct {
	A int `json:"a"`
}

type outer struct {
	Name  string         `json:"name"`
	Items []inner        `json:"items"`
	Ptr   *inner         `json:"ptr,omitempty"`
	Free  map[string]any `json:"free"`
	Raw   json.RawMessage
	Skip  int `json:"-"`
}

func TestDecodeReportsUnknownKeysAndKeepsKnownOnes(t *testing.T) {
	var o outer
	unknown, err := jsonx.Decode([]byte(`{"name":"n","NEW":1,"items":[{"a":1},{"a":2,"b":3}],"ptr":{"a":4,"c":{}},
		"free":{"anything":{"x":1}},"raw":{"y":2},"Skip":5}`), &o)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"NEW", "Skip", "items[1].b", "ptr.c"}
	if !slices.Equal(unknown, want) {
		t.Fatalf("unknown = %v, want %v", unknown, want)
	}
	if o.Name != "n" || len(o.Items) != 2 || o.Items[1].A != 2 || o.Ptr.A != 4 || o.Free["anything"] == nil || string(o.Raw) != `{"y":2}` {
		t.Fatalf("decoded %+v", o)
	}
}

func TestDecodeStaysStrictOnKnownFields(t *testing.T) {
	var o outer
	if _, err := jsonx.Decode([]byte(`{"name":5}`), &o); err == nil {
		t.Fatal("a number for a string field must be an error")
	}
	if _, err := jsonx.Decode([]byte(`{"items":[{"a":"x"}]}`), &o); err == nil {
		t.Fatal("a string for an int field must be an error")
	}
	if _, err := jsonx.Decode([]byte(`{"name":`), &o); err == nil {
		t.Fatal("truncated input must be an error")
	}
}

func TestDecodeMatchesKeysIgnoringCaseLikeEncodingJSON(t *testing.T) {
	var o outer
	unknown, err := jsonx.Decode([]byte(`{"NAME":"n"}`), &o)
	if err != nil || len(unknown) != 0 || o.Name != "n" {
		t.Fatalf("got %v %v %+v", unknown, err, o)
	}
}
