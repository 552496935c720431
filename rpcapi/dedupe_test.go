package rpcapi

import (
	"fmt"
	"testing"
)

func TestDedupe(t *testing.T) {
	d := newDedupe(1024)
	if !d.firstTime("a") || d.firstTime("a") {
		t.Fatal("duplicate not detected")
	}
	first, second := d.firstTime(""), d.firstTime("")
	if !first || !second {
		t.Error("empty ids must never be duplicates")
	}
	for i := range 1023 {
		d.firstTime(fmt.Sprint(i))
	}
	if d.firstTime("a") {
		t.Error("'a' forgotten within capacity")
	}
	// "a" was refreshed; 1024 new ids push out everything older than them
	for i := range 1024 {
		d.firstTime(fmt.Sprint("n", i))
	}
	if !d.firstTime("a") {
		t.Error("LRU does not evict")
	}
	if d.order.Len() != 1024 || len(d.seen) != 1024 {
		t.Errorf("size %d/%d", d.order.Len(), len(d.seen))
	}
}
