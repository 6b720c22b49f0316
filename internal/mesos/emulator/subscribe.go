package emulator

import (
	"sort"
	"sync"
)

// Subscription delivers the agent's status updates, in order and
// without loss, on C. C is closed by Close, or when the agent closes.
type Subscription struct {
	// C receives the updates published after Subscribe returned.
	C <-chan StatusUpdate

	a      *Agent
	out    chan StatusUpdate
	notify chan struct{}
	done   chan struct{}
	once   sync.Once

	mu    sync.Mutex
	queue []StatusUpdate
}

// Subscribe returns a subscription to status updates, for Go callers in
// the agent's process (the lab's Marathon emulator polls the HTTP API
// instead). Updates queue without bound until read; Close the
// subscription when done. After Close of the agent, C is already closed.
func (a *Agent) Subscribe() *Subscription {
	s := &Subscription{a: a, out: make(chan StatusUpdate), notify: make(chan struct{}, 1), done: make(chan struct{})}
	s.C = s.out
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		close(s.out)
		s.once.Do(func() { close(s.done) })
		return s
	}
	a.subs[s] = struct{}{}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		s.pump()
	}()
	return s
}

// Close ends the subscription; C is closed once its goroutine stops.
func (s *Subscription) Close() {
	s.once.Do(func() { close(s.done) })
	s.a.mu.Lock()
	delete(s.a.subs, s)
	s.a.mu.Unlock()
}

func (s *Subscription) push(u StatusUpdate) {
	s.mu.Lock()
	s.queue = append(s.queue, u)
	s.mu.Unlock()
	select {
	case s.notify <- struct{}{}:
	default:
	}
}

func (s *Subscription) pump() {
	defer close(s.out)
	for {
		s.mu.Lock()
		if len(s.queue) == 0 {
			s.mu.Unlock()
			select {
			case <-s.notify:
				continue
			case <-s.done:
				return
			}
		}
		u := s.queue[0]
		s.queue = s.queue[1:]
		s.mu.Unlock()
		select {
		case s.out <- u:
		case <-s.done:
			return
		}
	}
}

func (a *Agent) publish(u StatusUpdate) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.subs {
		s.push(u)
	}
}

func sortContainers(cs []Container) {
	sort.Slice(cs, func(i, j int) bool { return cs[i].ID < cs[j].ID })
}
