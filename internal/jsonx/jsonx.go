// Package jsonx decodes JSON from a peer that may be newer than this
// program: unknown object keys are not an error but are reported, so the
// caller can log them (README "RPC API": additive fields are ignored and
// logged, known fields stay strictly typed).
package jsonx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// Decode decodes raw into v as encoding/json does with UseNumber, without
// refusing unknown keys, and returns the paths of the keys v has no field
// for (e.g. "volumes[1].read_only"), sorted. A value of the wrong type for
// a known field is still an error.
func Decode(raw []byte, v any) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return nil, err
	}
	var generic any
	gen := json.NewDecoder(bytes.NewReader(raw))
	gen.UseNumber()
	if err := gen.Decode(&generic); err != nil {
		return nil, err
	}
	var out []string
	walk(reflect.TypeOf(v), generic, "", &out)
	slices.Sort(out)
	return out, nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// walk appends to out the keys of val that type t does not know.
func walk(t reflect.Type, val any, path string, out *[]string) {
	for t.Kind() == reflect.Pointer {
		if t.Implements(unmarshalerType) {
			return // decodes itself: its own business
		}
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := val.(map[string]any)
		if !ok {
			return
		}
		fields := map[string]reflect.Type{}
		structFields(t, fields)
		for k, sub := range obj {
			ft, ok := lookup(fields, k)
			if !ok {
				*out = append(*out, join(path, k))
				continue
			}
			walk(ft, sub, join(path, k), out)
		}
	case reflect.Slice, reflect.Array:
		arr, ok := val.([]any)
		if !ok {
			return
		}
		for i, sub := range arr {
			walk(t.Elem(), sub, path+"["+strconv.Itoa(i)+"]", out)
		}
	case reflect.Map:
		obj, ok := val.(map[string]any)
		if !ok {
			return
		}
		for k, sub := range obj {
			walk(t.Elem(), sub, join(path, k), out)
		}
	}
}

// structFields maps each JSON name of t's fields (embedded structs
// flattened, as encoding/json does) to the field's type.
func structFields(t reflect.Type, into map[string]reflect.Type) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				structFields(ft, into)
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		if _, dup := into[name]; !dup {
			into[name] = f.Type
		}
	}
}

// lookup matches a key as encoding/json does: exactly, else ignoring case.
func lookup(fields map[string]reflect.Type, key string) (reflect.Type, bool) {
	if t, ok := fields[key]; ok {
		return t, true
	}
	for name, t := range fields {
		if strings.EqualFold(name, key) {
			return t, true
		}
	}
	return nil, false
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
