package ticker

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

func TestEvery(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		calls := 0
		done := make(chan struct{})
		go func() {
			defer close(done)
			Every(ctx, 2*time.Second, func(c context.Context) {
				if c != ctx {
					t.Error("fn got another context")
				}
				calls++
			})
		}()
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if calls != 3 {
			t.Errorf("after 7 s at a 2 s period: %d calls, want 3", calls)
		}
		cancel()
		<-done // returns once ctx is done
		time.Sleep(10 * time.Second)
		if calls != 3 {
			t.Errorf("calls after ctx done: %d", calls)
		}
	})
}
