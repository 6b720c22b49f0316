package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/weft-sdn/weft/internal/api"
)

func TestJournal(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	entries := []*Entry{
		{ContainerID: "c1", IfName: "eth0", State: StateAttached, Owner: "c1/eth0", IPs: []JournalIP{{Address: "10.0.0.2/24", Owner: "spare:n1"}},
			Labels: map[string]string{"a": "b"}, Routes: []api.AttachedRoute{{Dst: "0.0.0.0/0", GW: "10.0.0.1"}}},
		{ContainerID: "c/with:odd chars\u00e9\n", IfName: "eth1", State: StateReleasing},
		{PortUUID: "93c2c386-6e79-485e-bfa4-b9daa713133b", External: true, State: StateAttached, Contrail: &ContrailInfo{VMName: "vm"}},
	}
	for _, e := range entries {
		if err := j.Put(e); err != nil {
			t.Fatalf("put: %v", err)
		}
	}
	// A copy handed out does not alias the journal's.
	got, _ := j.Get(entries[0].Key())
	got.IPs[0].Owner = "changed"
	got.Labels["a"] = "changed"
	if again, _ := j.Get(entries[0].Key()); again.IPs[0].Owner != "spare:n1" || again.Labels["a"] != "b" {
		t.Fatalf("journal entry changed through a copy: %+v", again)
	}
	// One journal per directory.
	if _, err := OpenJournal(dir, testLogger()); err == nil || !strings.Contains(err.Error(), "in use") {
		t.Fatalf("second open of a journal in use: %v", err)
	}
	// Leftovers of a crash and garbage.
	if err := os.WriteFile(filepath.Join(dir, ".tmp-x.json-123"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "bad.json"), []byte("not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete(entries[1].Key()); err != nil {
		t.Fatal(err)
	}
	if err := j.Delete("missing"); err != nil {
		t.Fatalf("delete of a missing entry: %v", err)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if err := j.Put(entries[1]); err == nil {
		t.Fatal("put into a closed journal succeeded")
	}

	j2, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	if j2.Len() != 2 {
		t.Fatalf("reloaded %d entries, want 2: %+v", j2.Len(), j2.Entries())
	}
	for _, e := range []*Entry{entries[0], entries[2]} {
		got, ok := j2.Get(e.Key())
		if !ok || got.State != e.State || got.External != e.External || got.CreatedAt.IsZero() {
			t.Fatalf("entry %s reloaded as %+v", e.describe(), got)
		}
	}
	if got, _ := j2.Get(entries[0].Key()); !slices.Equal(got.Routes, entries[0].Routes) || got.Labels["a"] != "b" {
		t.Fatalf("entry reloaded as %+v", got)
	}
	names, _ := os.ReadDir(dir)
	var files []string
	for _, n := range names {
		files = append(files, n.Name())
		if info, _ := n.Info(); info != nil && !strings.HasSuffix(n.Name(), ".corrupt") && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v", n.Name(), info.Mode().Perm())
		}
	}
	slices.Sort(files)
	if want := []string{"bad.json.corrupt", "journal.lock", "journal.log"}; !slices.Equal(files, want) {
		t.Fatalf("files after reload: %v, want %v", files, want)
	}
}

// legacyFileName is the file of an entry key in the journal's earlier
// format, one file per entry.
func legacyFileName(key string) string {
	sum := sha256.Sum256([]byte(key))
	return hex.EncodeToString(sum[:16]) + ".json"
}

// A journal of the earlier format (a file per entry) is moved into the log.
func TestJournalMovesEarlierFormat(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	old := []*Entry{
		{ContainerID: "c1", IfName: "eth0", State: StateAttached, Owner: "c1/eth0", PortUUID: "p1"},
		{ContainerID: "c2", IfName: "eth0", State: StateReleasing, Owner: "c2/eth0", PortUUID: "p2"},
	}
	for _, e := range old {
		b, _ := json.MarshalIndent(e, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, legacyFileName(e.Key())), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if j.Len() != 2 {
		t.Fatalf("%d entries", j.Len())
	}
	if err := j.Delete(old[1].Key()); err != nil {
		t.Fatal(err)
	}
	j.Close()
	for _, e := range old {
		if _, err := os.Stat(filepath.Join(dir, legacyFileName(e.Key()))); err == nil {
			t.Errorf("entry file of %s left", e.ContainerID)
		}
	}
	j, err = OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if e, ok := j.Get(old[0].Key()); j.Len() != 1 || !ok || e.PortUUID != "p1" {
		t.Fatalf("after moving: %+v", j.Entries())
	}
}

// A crash during an append leaves a torn record at the end of the log: it
// is dropped (it was never acknowledged), the rest is kept, and later
// appends are not lost behind it.
func TestJournalTornTail(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"c1", "c2"} {
		if err := j.Put(&Entry{ContainerID: id, IfName: "eth0", State: StateAttached}); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	log := filepath.Join(dir, "journal.log")
	b, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	for _, tail := range []string{`0badc0de {"put":{"container_id":"c3"`, "deadbeef {}\n", "garbage\n"} {
		if err := os.WriteFile(log, append(append([]byte{}, b...), tail...), 0o600); err != nil {
			t.Fatal(err)
		}
		j, err := OpenJournal(dir, testLogger())
		if err != nil {
			t.Fatalf("tail %q: %v", tail, err)
		}
		if j.Len() != 2 {
			t.Fatalf("tail %q: %d entries: %+v", tail, j.Len(), j.Entries())
		}
		j.Close()
	}
	j, err = OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.Put(&Entry{ContainerID: "c4", IfName: "eth0", State: StateAttached}); err != nil {
		t.Fatal(err)
	}
	j.Close()
	j, err = OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, ok := j.Get(attachKey("c4", "eth0")); !ok || j.Len() != 3 {
		t.Fatalf("entries: %+v", j.Entries())
	}
}

// Concurrent writers share syncs and the log is compacted as it grows;
// whatever was acknowledged is there after a reopen.
func TestJournalConcurrentAndCompacted(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	const writers, rounds = 16, 40
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range rounds {
				e := &Entry{ContainerID: fmt.Sprintf("c%d-%d", w, i), IfName: "eth0", State: StateAttached}
				if err := j.Put(e); err != nil {
					t.Error(err)
					return
				}
				e.State = StateReleasing
				if err := j.Put(e); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := j.Delete(e.Key()); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if want := writers * rounds / 2; j.Len() != want {
		t.Fatalf("%d entries, want %d", j.Len(), want)
	}
	j.wmu.Lock()
	records := j.records
	j.wmu.Unlock()
	if records > compactMin+compactFactor*j.Len() {
		t.Errorf("log of %d records for %d entries: not compacted", records, j.Len())
	}
	j.Close()
	j, err = OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if want := writers * rounds / 2; j.Len() != want {
		t.Fatalf("reopened with %d entries, want %d", j.Len(), want)
	}
	for _, e := range j.Entries() {
		if e.State != StateReleasing {
			t.Fatalf("entry %s reopened as %s", e.ContainerID, e.State)
		}
	}
}

// Unsynced writes are in the journal at once, are read back by a journal
// opened after a clean close, and are ordered with durable ones: a
// durable write after them makes them durable too (one file, appended in
// order, one fdatasync).
func TestJournalUnsynced(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "ports")
	j, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	a := &Entry{ContainerID: "a", IfName: "eth0", State: StateAttached, Owner: "a/eth0"}
	b := &Entry{ContainerID: "b", IfName: "eth0", State: StateReleasing, Owner: "b/eth0"}
	for _, e := range []*Entry{a, b} {
		if err := j.Put(e); err != nil {
			t.Fatal(err)
		}
	}
	synced := func() uint64 {
		j.smu.Lock()
		defer j.smu.Unlock()
		return j.synced
	}
	before := synced()
	a.PortSynced = true
	if err := j.PutUnsynced(a); err != nil {
		t.Fatal(err)
	}
	if err := j.DeleteUnsynced(b.Key()); err != nil {
		t.Fatal(err)
	}
	if got, ok := j.Get(a.Key()); !ok || !got.PortSynced {
		t.Fatalf("unsynced put not visible: %+v", got)
	}
	if _, ok := j.Get(b.Key()); ok {
		t.Fatal("unsynced delete not visible")
	}
	if got := synced(); got != before {
		t.Fatalf("unsynced writes synced the log (%d -> %d)", before, got)
	}
	c := &Entry{ContainerID: "c", IfName: "eth0", State: StateAttached, Owner: "c/eth0"}
	if err := j.Put(c); err != nil {
		t.Fatal(err)
	}
	if got := synced(); got != before+3 {
		t.Fatalf("the durable write synced up to %d, want %d (the two unsynced writes and itself)", got, before+3)
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j2, err := OpenJournal(dir, testLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer j2.Close()
	var keys []string
	for _, e := range j2.Entries() {
		keys = append(keys, e.ContainerID+fmt.Sprint(e.PortSynced))
	}
	slices.Sort(keys)
	if want := []string{"atrue", "cfalse"}; !slices.Equal(keys, want) {
		t.Fatalf("reloaded %v, want %v", keys, want)
	}
}
