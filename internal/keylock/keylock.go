// Package keylock serialises work per key (an attachment, an endpoint)
// while work on different keys proceeds in parallel.
package keylock

import "sync"

// Locks is a mutex per key. The zero value is ready for use; keys nobody
// holds or waits for take no memory.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*lock
}

type lock struct {
	mu   sync.Mutex
	refs int
}

// Lock locks key and returns its unlock function.
func (k *Locks) Lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*lock{}
	}
	l, ok := k.locks[key]
	if !ok {
		l = &lock{}
		k.locks[key] = l
	}
	l.refs++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// held is the number of keys held or waited for (for tests).
func (k *Locks) held() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.locks)
}
