package agent

// Wakeup carries reconcile requests from the components' connection
// goroutines (SPDK reconnect, OVSDB connect) to the agent. The owner makes
// it before both, so the components get its Request at construction and the
// agent reads it from Options.Wakeup: neither is wired to the other later.
// A request made before Agent.Run is kept (one pending) and served once Run
// has started.
type Wakeup struct{ c chan struct{} }

// NewWakeup returns a Wakeup with no request pending.
func NewWakeup() *Wakeup { return &Wakeup{c: make(chan struct{}, 1)} }

// Request asks for a reconcile of every component soon; it never blocks.
func (w *Wakeup) Request() {
	select {
	case w.c <- struct{}{}:
	default:
	}
}
