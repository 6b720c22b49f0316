// Package store is Weft's key-value edge: a small, revisioned, transactional
// key-value interface with two implementations, etcd (embedded or external)
// and an in-memory fake whose whole state can be dumped as text for golden
// tests.
//
// The interface is deliberately narrow: everything the controller and the
// IPAM need is expressed as reads, multi-key compare-and-swap transactions
// on modification revisions, and watches that resume from a revision.
package store

import (
	"context"
	"errors"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("key not found")
	// ErrConflict: a transaction's condition did not hold; nothing was written.
	ErrConflict = errors.New("transaction condition failed")
	// ErrCompacted: the requested revision has been compacted away.
	ErrCompacted = errors.New("revision compacted")
	// ErrClosed: the store has been closed.
	ErrClosed = errors.New("store closed")
)

// KeyValue is one stored key at one revision.
type KeyValue struct {
	Key            string
	Value          []byte
	CreateRevision int64
	ModRevision    int64
}

// Cmp is a condition on one key for Txn: the key's current ModRevision must
// equal ModRevision. ModRevision 0 means the key must not exist.
type Cmp struct {
	Key         string
	ModRevision int64
}

// Absent is the condition "key does not exist".
func Absent(key string) Cmp { return Cmp{Key: key} }

// Unchanged is the condition "key is still at the revision kv was read at".
func Unchanged(kv KeyValue) Cmp { return Cmp{Key: kv.Key, ModRevision: kv.ModRevision} }

// Op is one write of a transaction: a put of Value, or a delete of Key.
// Deleting a missing key is not an error.
type Op struct {
	Key    string
	Value  []byte
	Delete bool
}

// Put writes value at key.
func Put(key string, value []byte) Op { return Op{Key: key, Value: value} }

// Delete removes key.
func Delete(key string) Op { return Op{Key: key, Delete: true} }

// EventType says what happened to a key.
type EventType int

// Event types.
const (
	EventPut EventType = iota + 1
	EventDelete
)

func (t EventType) String() string {
	switch t {
	case EventPut:
		return "PUT"
	case EventDelete:
		return "DELETE"
	}
	return "UNKNOWN"
}

// Event is one change seen by a watch. For EventPut, KV is the new value and
// PrevKV the previous one (nil when the key was created). For EventDelete,
// KV holds the key and the deletion revision in ModRevision (no value), and
// PrevKV the value that was deleted.
type Event struct {
	Type   EventType
	KV     KeyValue
	PrevKV *KeyValue
}

// Created reports whether a put event created its key.
func (e Event) Created() bool { return e.Type == EventPut && e.KV.CreateRevision == e.KV.ModRevision }

// WatchResponse carries the events of one or more revisions, in order, or an
// error after which the channel is closed. Err is ErrCompacted (wrapped) when
// the watch started below the compaction revision.
type WatchResponse struct {
	Events []Event
	Err    error
}

// KV is the store interface consumed by the controller and the IPAM.
type KV interface {
	// Get returns the key, or ErrNotFound.
	Get(ctx context.Context, key string) (KeyValue, error)
	// List returns every key with the prefix, sorted by key, and the store
	// revision the list was read at.
	List(ctx context.Context, prefix string) ([]KeyValue, int64, error)
	// Txn applies all ops atomically if every cmp holds, and returns the
	// new store revision. If any cmp fails it writes nothing and returns an
	// error wrapping ErrConflict. A transaction without ops returns the
	// current revision.
	Txn(ctx context.Context, cmps []Cmp, ops []Op) (int64, error)
	// Watch streams every change to keys with the prefix from revision
	// fromRev (inclusive; 0 means "from now"), in revision order, until ctx
	// is done, then closes the channel. A fromRev below the compaction
	// revision yields one response with ErrCompacted and a closed channel.
	Watch(ctx context.Context, prefix string, fromRev int64) <-chan WatchResponse
	// Compact discards history before rev.
	Compact(ctx context.Context, rev int64) error
	// Revision returns the current store revision.
	Revision(ctx context.Context) (int64, error)
	// Close releases the client; it does not stop an embedded server.
	Close() error
}
