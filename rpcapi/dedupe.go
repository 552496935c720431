package rpcapi

import (
	"container/list"
	"sync"
)

// dedupe remembers the last N _unique_ids (oslo keeps 16; a broker-side
// republish after a reconnect can arrive much later, so keep more).
type dedupe struct {
	mu    sync.Mutex
	max   int
	order *list.List
	seen  map[string]*list.Element
}

func newDedupe(max int) *dedupe {
	if max <= 0 {
		max = 4096
	}
	return &dedupe{max: max, order: list.New(), seen: make(map[string]*list.Element, max)}
}

// firstTime records id and reports whether it had not been seen. An empty
// id (legacy senders) is never a duplicate.
func (d *dedupe) firstTime(id string) bool {
	if id == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e, ok := d.seen[id]; ok {
		d.order.MoveToFront(e)
		return false
	}
	d.seen[id] = d.order.PushFront(id)
	if d.order.Len() > d.max {
		old := d.order.Back()
		d.order.Remove(old)
		delete(d.seen, old.Value.(string))
	}
	return true
}
