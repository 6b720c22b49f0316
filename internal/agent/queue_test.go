package agent

import (
	"context"
	"slices"
	"testing"
	"time"
)

// getBatch takes what is queued, up to max, plus what arrives within the
// linger; a key added while it is processed comes back once after done;
// a failed key comes back after its backoff.
func TestWorkQueueBatches(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	q := newWorkQueue()
	defer q.close()
	q.add("a")
	q.add("b")
	q.add("a") // already queued
	go func() {
		time.Sleep(20 * time.Millisecond)
		q.add("c")
	}()
	keys, ok := q.getBatch(ctx, 10, 300*time.Millisecond)
	if !ok || !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("first batch %v %v, want a b and c (added within the linger)", keys, ok)
	}
	q.add("a") // while processing: again after done
	for _, k := range []string{"d", "e", "f"} {
		q.add(k)
	}
	if got, _ := q.getBatch(ctx, 2, 0); !slices.Equal(got, []string{"d", "e"}) {
		t.Fatalf("batch of at most 2: %v", got)
	}
	q.done("a", false)
	q.done("b", false)
	q.done("c", true) // back after a backoff
	if n := q.failureCount("c"); n != 1 {
		t.Fatalf("failures of c: %d", n)
	}
	got, _ := q.getBatch(ctx, 10, 0)
	if !slices.Equal(got, []string{"f", "a"}) {
		t.Fatalf("third batch %v, want f and a (re-added while processed)", got)
	}
	for _, k := range append(got, "d", "e") {
		q.done(k, false)
	}
	if got, _ := q.getBatch(ctx, 10, 0); !slices.Equal(got, []string{"c"}) {
		t.Fatalf("after the backoff: %v, want c", got)
	}
	q.done("c", false)
	if n := q.pending(); n != 0 {
		t.Fatalf("%d keys pending at the end", n)
	}
	cancel()
	if _, ok := q.getBatch(ctx, 10, 0); ok {
		t.Fatal("getBatch after its context ended")
	}
}
