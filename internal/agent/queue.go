package agent

import (
	"context"
	"slices"
	"sync"
	"time"
)

// workQueue hands journal keys to workers that finish the controller side
// of attachments. A key is processed by one worker at a time; adding a key
// that is being processed makes it run again afterwards; failed keys come
// back after a backoff.
type workQueue struct {
	mu         sync.Mutex
	queue      []string
	dirty      map[string]bool
	processing map[string]bool
	failures   map[string]int
	timers     map[string]*time.Timer
	wake       chan struct{}
	closed     bool
}

func newWorkQueue() *workQueue {
	return &workQueue{
		dirty:      map[string]bool{},
		processing: map[string]bool{},
		failures:   map[string]int{},
		timers:     map[string]*time.Timer{},
		wake:       make(chan struct{}, 1),
	}
}

// add queues key now.
func (q *workQueue) add(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.addLocked(key)
}

func (q *workQueue) addLocked(key string) {
	if q.closed || q.dirty[key] {
		return
	}
	if t, ok := q.timers[key]; ok {
		t.Stop()
		delete(q.timers, key)
	}
	q.dirty[key] = true
	if !q.processing[key] {
		q.queue = append(q.queue, key)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// getBatch waits for a key and returns it with up to max-1 more: those
// queued, and those queued within linger after the first, so that a burst
// of work goes out together. ok is false once ctx ends. Each key must be
// given to done.
func (q *workQueue) getBatch(ctx context.Context, max int, linger time.Duration) (keys []string, ok bool) {
	for {
		keys = q.take(keys, max)
		if len(keys) > 0 {
			break
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-q.wake:
		}
	}
	if len(keys) < max && linger > 0 {
		t := time.NewTimer(linger)
		defer t.Stop()
		select {
		case <-ctx.Done():
		case <-t.C:
		}
		keys = q.take(keys, max)
	}
	return keys, true
}

// take moves up to max-len(keys) queued keys to processing and appends
// them to keys.
func (q *workQueue) take(keys []string, max int) []string {
	q.mu.Lock()
	n := min(max-len(keys), len(q.queue))
	if n <= 0 {
		q.mu.Unlock()
		return keys
	}
	for _, key := range q.queue[:n] {
		delete(q.dirty, key)
		q.processing[key] = true
	}
	keys = append(keys, q.queue[:n]...)
	q.queue = slices.Delete(q.queue, 0, n)
	more := len(q.queue) > 0
	q.mu.Unlock()
	if more {
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
	return keys
}

// done ends the processing of key; a failure brings it back after a
// backoff that grows with consecutive failures.
func (q *workQueue) done(key string, failed bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.processing, key)
	if failed {
		n := q.failures[key]
		q.failures[key] = n + 1
		if !q.dirty[key] && !q.closed {
			if t, ok := q.timers[key]; ok {
				t.Stop()
			}
			q.timers[key] = time.AfterFunc(retryBackoff.delay(n), func() {
				q.mu.Lock()
				defer q.mu.Unlock()
				delete(q.timers, key)
				q.addLocked(key)
			})
		}
	} else {
		delete(q.failures, key)
	}
	if q.dirty[key] {
		q.queue = append(q.queue, key)
		select {
		case q.wake <- struct{}{}:
		default:
		}
	}
}

// failureCount is how many times in a row key failed.
func (q *workQueue) failureCount(key string) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.failures[key]
}

// close stops the retry timers; later adds are ignored.
func (q *workQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	for k, t := range q.timers {
		t.Stop()
		delete(q.timers, k)
	}
}

// pending is the number of keys queued, in process or waiting to retry.
func (q *workQueue) pending() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := len(q.processing) + len(q.timers)
	for k := range q.dirty {
		if !q.processing[k] {
			n++
		}
	}
	return n
}
