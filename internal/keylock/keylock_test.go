package keylock

import (
	"sync"
	"testing"
	"time"
)

func TestLocks(t *testing.T) {
	var k Locks
	var wg sync.WaitGroup
	var mu sync.Mutex
	inside := map[string]int{}
	for i := range 40 {
		key := []string{"a", "b"}[i%2]
		wg.Go(func() {
			unlock := k.Lock(key)
			defer unlock()
			mu.Lock()
			inside[key]++
			n := inside[key]
			mu.Unlock()
			if n != 1 {
				t.Errorf("%d holders of %s at once", n, key)
			}
			time.Sleep(time.Millisecond)
			mu.Lock()
			inside[key]--
			mu.Unlock()
		})
	}
	// Another key is not held up by them.
	done := make(chan struct{})
	go func() { k.Lock("c")(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Error("key c waited for a and b")
	}
	wg.Wait()
	if n := k.held(); n != 0 {
		t.Errorf("%d keys still take memory", n)
	}
}
